/* The pooled endpoint: PgBouncer's files follow the catalog (one read of every database
 * that is not being deleted or failed, with its live credentials), once per op that
 * changes them; the reconciler keeps PgBouncer running, within the restart intensity.
 * PgBouncer serves every database: when it is down it is reported (a log line, the
 * pgfleet_pooler_up metric) and restarted with a backoff, and no database changes state.
 * Ops ask for a sync when they end and a thread runs it: asks close together share one
 * sync (one RELOAD), and a new database is ready on its direct endpoint without waiting for
 * PgBouncer; credential changes and deletes wait for theirs. */
#include <stdlib.h>
#include <time.h>

#include "ops/ops_int.h"
#include "util/log.h"
#include "util/util.h"

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
        pdbs[i] = (engine_pool_db){.id = dbs[i].id, .port = dbs[i].port};
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

/* ---- coalesced syncs ---- */

/* Without the thread (an ops driven by a test, ops__new) the asker syncs itself. */
static void sync_inline(ops_run *r)
{
    ops *o = r->o;
    pf_err e;
    err_clear(&e);
    if (ops__pooler_sync(o, &e) != 0)
        log_sub(LOG_WARN, "pooler", "sync failed: %s", e.message);
    pthread_mutex_lock(&o->mu);
    o->pooler_err = e;
    r->pooler_gen = o->pooler_done = ++o->pooler_asked;
    pthread_mutex_unlock(&o->mu);
}

void ops__pooler_ask(ops_run *r)
{
    ops *o = r->o;
    if (r->pooler_gen || !engine_pooler_enabled(o->en))
        return;
    if (!o->pooler_started) {
        sync_inline(r);
        return;
    }
    pthread_mutex_lock(&o->mu);
    r->pooler_gen = ++o->pooler_asked;
    pthread_cond_broadcast(&o->pooler_cv);
    pthread_mutex_unlock(&o->mu);
}

int ops__pooler_wait(ops_run *r, pf_err *e)
{
    ops *o = r->o;
    if (!engine_pooler_enabled(o->en))
        return 0;
    ops__pooler_ask(r);
    int ret = 0;
    pthread_mutex_lock(&o->mu);
    while (!o->stopping && o->pooler_done < r->pooler_gen)
        pthread_cond_wait(&o->pooler_cv, &o->mu);
    if (o->pooler_done < r->pooler_gen)
        ret = err_kind(e, ERR_TRANSIENT, NULL, "stopping before the pooled endpoint was synced");
    else if (o->pooler_err.kind != ERR_NONE) {
        *e = o->pooler_err;
        ret = -1;
    }
    pthread_mutex_unlock(&o->mu);
    return ret;
}

/* The pooler thread: one sync for every ask made before it starts, never two within
 * OPS_POOLER_GAP_MS (each RELOAD stalls PgBouncer's traffic for a moment); a failed sync
 * fails its waiters, and the next ask tries again. */
void *ops__pooler_main(void *arg)
{
    ops *o = arg;
    int64_t last_ms = 0;
    pthread_mutex_lock(&o->mu);
    for (;;) {
        while (!o->stopping && o->pooler_asked == o->pooler_done)
            pthread_cond_wait(&o->pooler_cv, &o->mu);
        if (o->stopping)
            break;
        int64_t wait = last_ms + OPS_POOLER_GAP_MS - util_now_ms();
        if (wait > 0) {
            struct timespec ts;
            ops__deadline_in(&ts, (int)wait);
            while (!o->stopping && pthread_cond_timedwait(&o->pooler_cv, &o->mu, &ts) == 0)
                ; /* asks meanwhile join this sync */
            if (o->stopping)
                break;
        }
        uint64_t target = o->pooler_asked;
        pthread_mutex_unlock(&o->mu);
        last_ms = util_now_ms();
        pf_err e;
        err_clear(&e);
        if (ops__pooler_sync(o, &e) != 0)
            log_sub(LOG_WARN, "pooler", "sync failed: %s", e.message);
        pthread_mutex_lock(&o->mu);
        o->pooler_err = e;
        o->pooler_done = target;
        pthread_cond_broadcast(&o->pooler_cv);
    }
    pthread_cond_broadcast(&o->pooler_cv);
    pthread_mutex_unlock(&o->mu);
    return NULL;
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
