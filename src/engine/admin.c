/* admin: the admin connection. pgfleet reaches each server as PGFLEET_ADMIN_ROLE over the
 * server's private Unix socket (trust, 0700 directory) and runs its statements here. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_int.h"
#include "util/log.h"
#include "util/util.h"

static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    log_debug("server notice: %s", message);
}

int engine__admin_connect_db(const char *sockdir, int port, const char *dbname, PGconn **out,
                             pf_err *e)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    const char *keys[] = {"host", "port", "user", "dbname", "connect_timeout", "application_name",
                          NULL};
    const char *vals[] = {sockdir, portstr, PGFLEET_ADMIN_ROLE, dbname, "10", "pgfleet", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 0);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        err_internal(e, "admin connection: %s", c ? PQerrorMessage(c) : "out of memory");
        PQfinish(c);
        *out = NULL;
        return -1;
    }
    PQsetNoticeProcessor(c, quiet_notice, NULL);
    /* statements carry SCRAM verifiers: keep them out of the server log, even on error, and
     * out of what a connection role sees (pg_read_all_stats): pg_stat_activity's query
     * column and pg_stat_statements, which keeps utility statements verbatim */
    PGresult *r = PQexec(c, "SET log_min_error_statement = panic; SET log_statement = 'none'; "
                            "SET track_activities = off; "
                            "SET pg_stat_statements.track_utility = off; "
                            "SET pg_stat_statements.track = 'none'");
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) {
        err_internal(e, "admin connection setup: %s", PQerrorMessage(c));
        PQfinish(c);
        *out = NULL;
        return -1;
    }
    *out = c;
    return 0;
}

int engine__admin_connect(const char *sockdir, int port, PGconn **out, pf_err *e)
{
    return engine__admin_connect_db(sockdir, port, "postgres", out, e);
}

int engine__admin_connect_running(engine *en, const char *db_id, PGconn **out, pf_err *e)
{
    *out = NULL;
    if (engine__check_id(db_id, e) < 0)
        return -1;
    int ret = -1;
    char *data = xasprintf("%s/%s/data", en->instances_dir, db_id);
    char *sock = xasprintf("%s/%s", en->run_dir, db_id);
    pid_t pid = 0;
    int port = 0;
    if (engine__live_postmaster(data) <= 0 || !engine__read_pidfile(data, &pid, &port) ||
        port <= 0) {
        err_kind(e, ERR_CONFLICT, "NotRunning", "the server of %s is not running", db_id);
        goto out;
    }
    ret = engine__admin_connect(sock, port, out, e);
out:
    free(data);
    free(sock);
    return ret;
}

/* ---- kept sessions ---- */

/* Removes id's entry (under kept_mu) and answers its session, or NULL. */
static PGconn *kept_pop(engine *en, const char *id)
{
    PGconn *c = NULL;
    for (size_t i = 0; i < en->nkept && !c; i++) {
        if (strcmp(en->kept[i].id, id) != 0)
            continue;
        c = en->kept[i].c;
        en->kept[i] = en->kept[--en->nkept];
    }
    return c;
}

void engine__admin_keep(engine *en, const char *id, PGconn *c)
{
    pthread_mutex_lock(&en->kept_mu);
    PGconn *old = kept_pop(en, id);
    util_grow((void **)&en->kept, &en->capkept, en->nkept + 1, sizeof *en->kept);
    engine_kept *k = &en->kept[en->nkept++];
    snprintf(k->id, sizeof k->id, "%s", id);
    k->c = c;
    pthread_mutex_unlock(&en->kept_mu);
    PQfinish(old);
}

PGconn *engine__admin_take(engine *en, const char *id)
{
    pthread_mutex_lock(&en->kept_mu);
    PGconn *c = kept_pop(en, id);
    pthread_mutex_unlock(&en->kept_mu);
    return c;
}

void engine__admin_forget(engine *en, const char *id)
{
    for (;;) {
        pthread_mutex_lock(&en->kept_mu);
        PGconn *c = NULL;
        if (id)
            c = kept_pop(en, id);
        else if (en->nkept)
            c = en->kept[--en->nkept].c;
        pthread_mutex_unlock(&en->kept_mu);
        if (!c)
            return;
        PQfinish(c);
        if (id)
            return;
    }
}

int engine__admin_session(engine *en, const char *db_id, PGconn **out, bool *kept, pf_err *e)
{
    *out = engine__valid_id(db_id) ? engine__admin_take(en, db_id) : NULL;
    *kept = *out != NULL;
    return *kept ? 0 : engine__admin_connect_running(en, db_id, out, e);
}

/* Fails with e unless r (consumed) is a success; what engine__exec and _script share. */
static int result_check(PGconn *c, PGresult *r, PGresult **res, pf_err *e)
{
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        const char *msg = PQresultErrorMessage(r);
        err_internal(e, "%s", msg && *msg ? msg : PQerrorMessage(c));
        /* drop the trailing newline libpq adds */
        if (e) {
            size_t l = strlen(e->message);
            while (l && (e->message[l - 1] == '\n' || e->message[l - 1] == ' '))
                e->message[--l] = '\0';
        }
        /* a server out of disk (SQLSTATE 53100 disk_full) recovers once space is freed */
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (e && state && !strcmp(state, "53100"))
            e->kind = ERR_TRANSIENT;
        PQclear(r);
        return -1;
    }
    if (res)
        *res = r;
    else
        PQclear(r);
    return 0;
}

/* Runs one statement (params optional); fails unless it returns no error. */
int engine__exec(PGconn *c, const char *sql, int nparams, const char *const *params, PGresult **res,
                 pf_err *e)
{
    return result_check(c, PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0), res, e);
}

int engine__exec_script(PGconn *c, const char *sql, PGresult **res, pf_err *e)
{
    /* PQexec answers the last statement's result, or the first error's (the rest is not run) */
    return result_check(c, PQexec(c, sql), res, e);
}
