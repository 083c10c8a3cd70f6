/* http/guard: deadlines that a trickle of bytes cannot extend. libmicrohttpd's own timeout
 * counts inactivity, so one byte every few seconds would hold a connection for ever: here
 * each connection carries a deadline (its header within header_ms of the start, its body
 * within body_ms of the header, the next header within idle_ms + header_ms of an answer)
 * and a sweep thread shuts down the socket of every connection past it; libmicrohttpd then
 * sees the end of the stream and closes it. A connection being answered has no deadline. */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "http/http_int.h"
#include "util/log.h"

#define SWEEP_MS 200

void http__conn_started(http_server *s, struct MHD_Connection *c, void **socket_context)
{
    conn_info *ci = xcalloc(1, sizeof *ci);
    ci->s = s;
    const union MHD_ConnectionInfo *inf =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    ci->fd = inf ? inf->connect_fd : -1;
    ci->deadline_ms = util_now_ms() + s->cfg.limits.header_ms;
    pthread_mutex_lock(&s->conns_mu);
    ci->next = s->conns;
    if (s->conns)
        s->conns->prev = ci;
    s->conns = ci;
    pthread_mutex_unlock(&s->conns_mu);
    *socket_context = ci;
}

/* Called by libmicrohttpd before it closes the fd: the sweep never touches a reused fd. */
void http__conn_closed(http_server *s, conn_info *ci)
{
    if (!ci)
        return;
    pthread_mutex_lock(&s->conns_mu);
    if (ci->prev)
        ci->prev->next = ci->next;
    else
        s->conns = ci->next;
    if (ci->next)
        ci->next->prev = ci->prev;
    pthread_mutex_unlock(&s->conns_mu);
    free(ci);
}

void http__conn_deadline(http_server *s, conn_info *ci, int ms)
{
    if (!ci)
        return;
    int64_t at = ms > 0 ? util_now_ms() + ms : 0;
    pthread_mutex_lock(&s->conns_mu);
    ci->deadline_ms = at;
    pthread_mutex_unlock(&s->conns_mu);
}

static void *sweep_main(void *arg)
{
    http_server *s = arg;
    pthread_mutex_lock(&s->conns_mu);
    while (!s->sweep_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += SWEEP_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->sweep_cv, &s->conns_mu, &ts);
        int64_t now = util_now_ms();
        int cut = 0;
        for (conn_info *ci = s->conns; ci; ci = ci->next) {
            if (ci->cut || !ci->deadline_ms || now < ci->deadline_ms || ci->fd < 0)
                continue;
            shutdown(ci->fd, SHUT_RDWR);
            ci->cut = true;
            cut++;
        }
        if (cut)
            log_sub(LOG_DEBUG, "http", "closed %d connection(s) past their deadline", cut);
    }
    pthread_mutex_unlock(&s->conns_mu);
    return NULL;
}

void http__guard_start(http_server *s)
{
    pthread_mutex_init(&s->conns_mu, NULL);
    pthread_cond_init(&s->sweep_cv, NULL);
    if (pthread_create(&s->sweeper, NULL, sweep_main, s) != 0)
        abort();
    s->sweeper_started = true;
}

void http__guard_stop(http_server *s)
{
    if (!s->sweeper_started)
        return;
    pthread_mutex_lock(&s->conns_mu);
    s->sweep_stop = true;
    pthread_cond_signal(&s->sweep_cv);
    pthread_mutex_unlock(&s->conns_mu);
    pthread_join(s->sweeper, NULL);
    s->sweeper_started = false;
}
