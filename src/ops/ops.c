/* ops: the threads (workers by lane, the reconciler, the samplers), start and stop,
 * stats, and one attempt of an op: claim, run by the table of kinds, then done, failed
 * (give up) or queued again with a backoff. */
#include "ops/ops.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/ops_int.h"
#include "util/log.h"
#include "util/util.h"

/* ---- one attempt ---- */

static void give_up(ops_run *r, const ops_kind *k, const pf_err *why)
{
    pf_err le;
    if (k && k->give_up)
        k->give_up(r, why);
    if (store_op_finish(r->o->st, r->op->id, OPS_FAILED, why->message, &le) != 0)
        log_op(LOG_ERROR, r->op->id, r->op->database_id, NULL, "cannot record the failure: %s",
               le.message);
}

int ops__work_one(ops *o, ops_lane_id lane)
{
    store_op op;
    pf_err e;
    err_clear(&e);
    int got = store_op_claim(o->st, ops__lane(lane), &op, &e);
    if (got <= 0) {
        if (got < 0)
            log_sub(LOG_ERROR, "ops", "cannot claim an op: %s", e.message);
        return got;
    }
    const char *conn = op.connection_id[0] ? op.connection_id : NULL;
    const char *kname = store_op_kind_name(op.kind);
    int64_t t0 = util_now_ms();
    log_op(LOG_INFO, op.id, op.database_id, conn, "%s: attempt %d", kname, op.attempts);
    const ops_kind *k = ops__kind(op.kind);
    ops_run r = {.o = o, .op = &op};
    int rc = k ? k->run(&r, &e) : err_internal(&e, "unknown op kind %d", (int)op.kind);
    /* the pooled endpoint serves what the op changed soon after it ends (one coalesced sync
     * asked per op); a credential change or a delete ends once it does */
    if (rc == 0 && (k->flags & OPS_KIND_POOLED_WAIT))
        rc = ops__pooler_wait(&r, &e);
    else if (rc == 0 && (k->flags & OPS_KIND_POOLED))
        ops__pooler_ask(&r);
    /* a backup that serve's stop interrupted (ops_interrupt) is not a failure: the op stays
     * running in the catalog, and the next start puts it back in the queue, as after a kill */
    if (rc != 0 && k && (k->flags & OPS_KIND_STOPPABLE) && ops__stopping(o)) {
        log_op(LOG_INFO, op.id, op.database_id, conn,
               "%s: interrupted by the stop; it runs again after the restart", kname);
        return 1;
    }
    /* a full disk heals once space is freed: retried (with the capped backoff) without
     * running out of attempts */
    bool heals = rc != 0 && strcmp(e.code, "DiskFull") == 0;
    int outcome = rc == 0                              ? OPS_STAT_DONE
                  : !err_retryable(&e)                 ? OPS_STAT_FAILED
                  : heals                              ? OPS_STAT_RETRIED
                  : op.attempts >= o->cfg.max_attempts ? OPS_STAT_FAILED
                                                       : OPS_STAT_RETRIED;
    int64_t took = util_now_ms() - t0;
    /* counted before the catalog says so: whoever waits for the op sees it counted */
    pthread_mutex_lock(&o->mu);
    if ((int)op.kind >= 0 && op.kind < OP__COUNT) {
        o->stats.ended[op.kind][outcome]++;
        o->stats.ms_sum[op.kind] += (uint64_t)took;
    }
    pthread_mutex_unlock(&o->mu);
    pf_err le;
    if (outcome == OPS_STAT_DONE) {
        if (store_op_finish(o->st, op.id, OPS_DONE, "", &le) != 0)
            log_op(LOG_ERROR, op.id, op.database_id, conn, "cannot record done: %s", le.message);
        log_op(LOG_INFO, op.id, op.database_id, conn, "%s: done in %lld ms", kname,
               (long long)took);
    } else if (outcome == OPS_STAT_FAILED) {
        log_op(LOG_ERROR, op.id, op.database_id, conn, "%s: failed for good (%s, attempt %d): %s",
               kname, err_kind_name(e.kind), op.attempts, e.message);
        give_up(&r, k, &e);
    } else {
        int64_t wait = ops__retry_backoff_ms(&o->cfg, op.attempts);
        log_op(LOG_WARN, op.id, op.database_id, conn,
               "%s: failed (%s, attempt %d), retried in %lld ms: %s", kname, err_kind_name(e.kind),
               op.attempts, (long long)wait, e.message);
        if (store_op_requeue(o->st, op.id, e.message, util_wall_ms() + wait, &le) != 0)
            log_op(LOG_ERROR, op.id, op.database_id, conn, "cannot queue it again: %s", le.message);
    }
    if (outcome != OPS_STAT_RETRIED)
        ops__watch_ended(o, op.id);
    return 1;
}

/* ---- threads: start, notify, wait ---- */

typedef struct worker_arg {
    ops *o;
    ops_lane_id lane;
} worker_arg;

static void *worker_main(void *arg)
{
    worker_arg *wa = arg;
    ops *o = wa->o;
    ops_lane_id lane = wa->lane;
    free(wa);
    for (;;) {
        pthread_mutex_lock(&o->mu);
        bool stop = o->stopping;
        pthread_mutex_unlock(&o->mu);
        if (stop)
            break;
        if (ops__work_one(o, lane) > 0)
            continue;
        /* nothing ready (or a retry waits its backoff): until notified, at most 500 ms */
        struct timespec ts;
        ops__deadline_in(&ts, 500);
        pthread_mutex_lock(&o->mu);
        if (!o->stopping)
            pthread_cond_timedwait(&o->wake, &o->mu, &ts);
        pthread_mutex_unlock(&o->mu);
    }
    return NULL;
}

static pthread_t *start_workers(ops *o, ops_lane_id lane, int n)
{
    pthread_t *t = xcalloc((size_t)n, sizeof *t);
    for (int i = 0; i < n; i++) {
        worker_arg *wa = xcalloc(1, sizeof *wa);
        *wa = (worker_arg){o, lane};
        if (pthread_create(&t[i], NULL, worker_main, wa) != 0)
            abort();
    }
    return t;
}

ops *ops__new(store *st, engine *en, const ops_config *cfg)
{
    ops *o = xcalloc(1, sizeof *o);
    o->st = st;
    o->en = en;
    o->cfg = *cfg;
    /* an option left at 0 (or below) takes its default */
    const struct {
        int *v, def;
    } defaults[] = {
        {&o->cfg.workers, 2},
        {&o->cfg.max_attempts, 3},
        {&o->cfg.retry_base_ms, 500},
        {&o->cfg.start_timeout_ms, 30000},
        {&o->cfg.reconcile_ms, 2000},
        {&o->cfg.backup_workers, 2},
        {&o->cfg.backup_full_interval_s, 7 * 86400},
    };
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        if (*defaults[i].v <= 0)
            *defaults[i].v = defaults[i].def;
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->wake, NULL);
    pthread_cond_init(&o->refill, NULL);
    pthread_cond_init(&o->usage_cv, NULL);
    pthread_mutex_init(&o->pooler_mu, NULL);
    pthread_cond_init(&o->pooler_cv, NULL);
    return o;
}

int ops_start(store *st, engine *en, const ops_config *cfg, ops **out, pf_err *e)
{
    ops *o = ops__new(st, en, cfg);
    int reset = 0;
    if (store_op_reset_running(st, &reset, e) != 0) {
        ops_stop(o);
        return -1;
    }
    if (reset)
        log_sub(LOG_WARN, "reconcile", "%d operation(s) were interrupted; they run again", reset);
    /* the ports first: the data path holds them before any server starts */
    if (ops__dp_start(o, e) != 0) {
        ops_stop(o);
        return -1;
    }
    ops__reconcile(o, true);
    /* before the workers: their ops ask it for syncs */
    if (pthread_create(&o->pooler_thr, NULL, ops__pooler_main, o) != 0)
        abort();
    o->pooler_started = true;
    o->workers = start_workers(o, OPS_LANE_FAST, o->cfg.workers);
    o->nworkers = o->cfg.workers;
    o->slow = start_workers(o, OPS_LANE_SLOW, o->cfg.backup_workers);
    o->nslow = o->cfg.backup_workers;
    if (pthread_create(&o->reconciler, NULL, ops__reconciler_main, o) != 0)
        abort();
    o->reconciler_started = true;
    if (o->cfg.spares > 0) {
        if (pthread_create(&o->spares, NULL, ops__spares_main, o) != 0)
            abort();
        o->spares_started = true;
    } else {
        /* no pool: what a previous run left goes (its servers stopped) */
        pf_err le;
        if (engine_spares_adopt(en, 0, &le) < 0)
            log_sub(LOG_WARN, "spares", "%s", le.message);
    }
    if (o->cfg.usage_interval_s > 0) {
        if (pthread_create(&o->usage, NULL, ops__usage_main, o) != 0)
            abort();
        o->usage_started = true;
    }
    *out = o;
    return 0;
}

/* ---- stats ---- */

int64_t ops_mean_attempt_ms(ops *o, store_op_kind kind)
{
    if ((int)kind < 0 || kind >= OP__COUNT)
        return 0;
    pthread_mutex_lock(&o->mu);
    uint64_t n = 0;
    for (int i = 0; i < OPS_STAT__COUNT; i++)
        n += o->stats.ended[kind][i];
    int64_t mean = n ? (int64_t)(o->stats.ms_sum[kind] / n) : 0;
    pthread_mutex_unlock(&o->mu);
    return mean;
}

void ops_stats_get(ops *o, ops_stats *out)
{
    pthread_mutex_lock(&o->mu);
    *out = o->stats;
    pthread_mutex_unlock(&o->mu);
    /* the live part: servers of ready databases, unhealthy databases, and the pooler */
    store_database *dbs = NULL;
    size_t n = 0;
    pf_err e;
    if (store_database_list_internal(o->st, &dbs, &n, &e) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (dbs[i].status == DB_DELETING)
                continue;
            if (dbs[i].unhealthy[0])
                out->unhealthy++;
            if (dbs[i].status != DB_READY)
                continue;
            if (engine_instance_running(o->en, ops__inst(&dbs[i])))
                out->servers_up++;
            else if (!engine_instance_asleep(o->en, dbs[i].id, NULL))
                out->servers_down++;
        }
        free(dbs);
    }
    out->pooler = !engine_pooler_enabled(o->en) ? -1 : engine_pooler_running(o->en) ? 1 : 0;
    out->pooler_reloads = engine_pooler_reloads(o->en);
    engine_spares_stats(o->en, &out->spares_ready, &out->spares_taken);
}

/* ---- stop ---- */

void ops_interrupt(ops *o)
{
    if (!o)
        return;
    pthread_mutex_lock(&o->mu);
    bool first = !o->stopping;
    o->stopping = true;
    pthread_cond_broadcast(&o->wake);
    pthread_cond_broadcast(&o->refill);
    pthread_cond_broadcast(&o->usage_cv);
    pthread_cond_broadcast(&o->pooler_cv);
    pthread_mutex_unlock(&o->mu);
    /* a running backup would hold the stop for as long as it takes: it is interrupted (its
     * op runs again after the restart) */
    if (first && o->nslow)
        engine_backups_interrupt(o->en);
}

int ops_stop(ops *o)
{
    if (!o)
        return 0;
    ops_interrupt(o);
    for (int i = 0; i < o->nworkers; i++)
        pthread_join(o->workers[i], NULL);
    for (int i = 0; i < o->nslow; i++)
        pthread_join(o->slow[i], NULL);
    if (o->reconciler_started)
        pthread_join(o->reconciler, NULL);
    if (o->spares_started)
        pthread_join(o->spares, NULL);
    if (o->usage_started)
        pthread_join(o->usage, NULL);
    int dp_pid = ops__dp_detach(o);
    if (o->pooler_started)
        pthread_join(o->pooler_thr, NULL);
    ops__watch_stop(o);
    free(o->workers);
    free(o->slow);
    free(o->restarts);
    pthread_cond_destroy(&o->wake);
    pthread_cond_destroy(&o->refill);
    pthread_cond_destroy(&o->usage_cv);
    pthread_cond_destroy(&o->pooler_cv);
    pthread_mutex_destroy(&o->mu);
    pthread_mutex_destroy(&o->pooler_mu);
    free(o);
    return dp_pid;
}
