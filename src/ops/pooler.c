/* The pooled endpoint: PgBouncer's files follow the catalog (one read of every database
 * that is not being deleted or failed, with its live credentials), once per op that
 * changes them; the reconciler keeps PgBouncer running, within the restart intensity.
 * PgBouncer serves every database: when it is down it is reported (a log line, the
 * pgfleet_pooler_up metric) and restarted with a backoff, and no database changes state. */
#include <stdlib.h>

#include "ops/ops_int.h"
#include "util/log.h"

int ops__pooler_sync(ops *o, pf_err *e)
{
    if (!engine_pooler_enabled(o->en))
        return 0;
    int ret = -1;
    store_database *dbs = NULL;
    store_connection *conns = NULL;
    size_t ndb = 0, nconn = 0;
    engine_pool_db *pdbs = NULL;
    engine_pool_user *pusers = NULL;
    pthread_mutex_lock(&o->pooler_mu);
    if (store_pool_list(o->st, &dbs, &ndb, &conns, &nconn, e) != 0)
        goto out;
    pdbs = xcalloc(ndb ? ndb : 1, sizeof *pdbs);
    for (size_t i = 0; i < ndb; i++)
        pdbs[i] =
            (engine_pool_db){.id = dbs[i].id, .port = dbs[i].port, .instance = ops__inst(&dbs[i])};
    pusers = xcalloc(nconn ? nconn : 1, sizeof *pusers);
    for (size_t i = 0; i < nconn; i++)
        pusers[i] = (engine_pool_user){.role = conns[i].role, .verifier = conns[i].verifier};
    ret = engine_pooler_apply(o->en, pdbs, ndb, pusers, nconn, e);
out:
    pthread_mutex_unlock(&o->pooler_mu);
    free(dbs);
    free(conns);
    free(pdbs);
    free(pusers);
    return ret;
}

int ops__pooler_sync_once(ops_run *r, pf_err *e)
{
    if (r->pooler_synced)
        return 0;
    if (ops__pooler_sync(r->o, e) != 0)
        return -1;
    r->pooler_synced = true;
    return 0;
}

void ops__pooler_supervise(ops *o, bool startup)
{
    if (!engine_pooler_enabled(o->en))
        return;
    if (!startup && engine_pooler_running(o->en)) {
        if (o->pooler_down)
            log_sub(LOG_INFO, "pooler", "PgBouncer is back");
        o->pooler_down = false;
        ops__running(o, "pooler");
        return;
    }
    ops_restarts *rs = ops__restarts_of(o, "pooler");
    int64_t wait_ms = 0;
    if (!startup && !ops__restart_allowed(rs, ops__now_ms(o), &wait_ms)) {
        if (rs->reported_ms != rs->not_before_ms) {
            rs->reported_ms = rs->not_before_ms;
            log_sub(LOG_ERROR, "pooler",
                    "PgBouncer is down: %d restarts in %d s; next restart in %lld s",
                    OPS_RESTART_INTENSITY, OPS_RESTART_PERIOD_MS / 1000,
                    (long long)(wait_ms / 1000));
        }
        return;
    }
    if (!startup)
        log_sub(LOG_WARN, "pooler", "PgBouncer is not running; restarting it");
    pf_err e;
    err_clear(&e);
    if (ops__pooler_sync(o, &e) != 0 || engine_pooler_ensure(o->en, 10000, &e) != 0) {
        o->pooler_down = true;
        log_sub(LOG_ERROR, "pooler", "PgBouncer is down: %s", e.message);
    }
}
