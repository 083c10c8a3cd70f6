/* dptable: the data path's table as serve keeps it (ops_dp, in ops_int.h) and the one
 * way to talk to the data path's control socket. Both datapath.c (the process and its
 * reader) and sleep.c (sleep and wake) use these; neither calls the other for them. */
#include <string.h>

#include "ops/ops_int.h"
#include "util/ctlmsg.h"

ops_dp_db *ops__dp_find(ops_dp *d, const char *id)
{
    for (size_t i = 0; i < d->n; i++)
        if (!strcmp(d->dbs[i].id, id))
            return &d->dbs[i];
    return NULL;
}

int ops__dp_send(ops_dp *d, const char *text, int fd)
{
    pthread_mutex_lock(&d->send_mu);
    int rc = d->sock >= 0 ? ctlmsg_send(d->sock, text, fd) : -1;
    pthread_mutex_unlock(&d->send_mu);
    return rc;
}
