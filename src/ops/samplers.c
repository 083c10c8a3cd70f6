/* The background helpers beside the workers:
 *  - the usage sampler: every usage_interval_s, each ready database's transaction counter
 *    and size into the catalog's daily usage (GET /v1/databases/{id}/usage);
 *  - the spares refill: keeps `spares` started servers (engine spares), refilled after
 *    each provision that took one, so a new database only gets its roles. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "ops/ops_int.h"
#include "util/log.h"
#include "util/util.h"

/* ---- usage ---- */

void ops__sample_usage(ops *o, const store_database *db, bool baseline)
{
    const char *db_id = db->id;
    if (o->cfg.usage_interval_s <= 0)
        return;
    int64_t xacts = 0, bytes = 0;
    pf_err e;
    char day[16];
    if (engine_usage_sample(o->en, ops__inst(db), &xacts, &bytes, &e) != 0) {
        log_db_debug(db_id, "no usage sample: %s", e.message);
        return;
    }
    util_day_from_ms(util_wall_ms(), day);
    /* the previous sample's query is one of the transactions counted now */
    if (store_usage_record(o->st, db_id, day, xacts, 1, bytes, baseline, &e) != 0)
        log_db_warn(db_id, "usage not recorded: %s", e.message);
}

void *ops__usage_main(void *arg)
{
    ops *o = arg;
    for (;;) {
        if (ops__pause_or_stop(o, &o->usage_cv, o->cfg.usage_interval_s * 1000))
            break;
        store_database *dbs = NULL;
        size_t n = 0;
        pf_err e;
        if (store_database_list_internal(o->st, &dbs, &n, &e) != 0) {
            log_sub(LOG_WARN, "usage", "cannot list databases: %s", e.message);
            continue;
        }
        int64_t t0 = util_now_ms();
        int sampled = 0;
        for (size_t i = 0; i < n && !ops__stopping(o); i++)
            if (dbs[i].status == DB_READY) {
                ops__sample_usage(o, &dbs[i], false);
                sampled++;
            }
        free(dbs);
        pthread_mutex_lock(&o->mu);
        o->stats.usage_pass_ms = util_now_ms() - t0;
        o->stats.usage_pass_dbs = sampled;
        pthread_mutex_unlock(&o->mu);
    }
    return NULL;
}

/* ---- spares ---- */

/* A refill that fails (a full disk) is tried again after a backoff that doubles up to
 * this, and is logged once per run of failures, not once per try: a create's request for
 * a refill does not cut the backoff short. */
#define SPARES_BACKOFF_MAX_S 60

static bool stop_cb(void *arg)
{
    return ops__stopping(arg);
}

/* The spares thread: adopts (or removes) the spares a previous run left, then keeps
 * cfg.spares started spares, one at a time, checking for a stop between two; a provision
 * that took one wakes it. It never holds what a request waits for (no catalog write, no
 * lock of the workers). */
void *ops__spares_main(void *arg)
{
    ops *o = arg;
    int backoff_s = 0;
    pf_err e;
    err_clear(&e);
    int adopted = engine_spares_adopt(o->en, o->cfg.spares, &e);
    if (adopted < 0)
        log_sub(LOG_WARN, "spares", "%s", e.message);
    else if (adopted > 0)
        log_sub(LOG_INFO, "spares", "%d spare(s) from the last run are ready", adopted);
    for (;;) {
        int64_t t0 = util_now_ms();
        int made = 0, ready = 0;
        bool failed = false;
        for (;;) {
            engine_spares_stats(o->en, &ready, NULL);
            if (ready >= o->cfg.spares || ops__stopping(o))
                break;
            err_clear(&e);
            if (engine_spare_make(o->en, stop_cb, o, NULL, 0, &e) != 0) {
                if (ops__stopping(o))
                    break;
                failed = true;
                break;
            }
            made++;
        }
        if (failed) {
            log_sub(backoff_s ? LOG_DEBUG : LOG_WARN, "spares",
                    "%s (tried again with a backoff of up to %d s)", e.message,
                    SPARES_BACKOFF_MAX_S);
            backoff_s = backoff_s ? backoff_s * 2 : 5;
            if (backoff_s > SPARES_BACKOFF_MAX_S)
                backoff_s = SPARES_BACKOFF_MAX_S;
        } else {
            if (backoff_s)
                log_sub(LOG_INFO, "spares", "refill works again");
            backoff_s = 0;
            if (made > 0)
                log_sub(LOG_DEBUG, "spares", "made %d in %lld ms; %d ready", made,
                        (long long)(util_now_ms() - t0), ready + made);
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += backoff_s ? backoff_s : 30;
        pthread_mutex_lock(&o->mu);
        while (!o->stopping && (backoff_s || !o->spares_wanted)) {
            if (pthread_cond_timedwait(&o->refill, &o->mu, &ts) == ETIMEDOUT)
                break;
        }
        o->spares_wanted = false;
        bool stop = o->stopping;
        pthread_mutex_unlock(&o->mu);
        if (stop)
            break;
    }
    return NULL;
}
