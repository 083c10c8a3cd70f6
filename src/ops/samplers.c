/* The background helpers beside the workers:
 *  - the usage sampler: every usage_interval_s, each ready database's transaction counter
 *    and size into the catalog's daily usage (GET /v1/databases/{id}/usage);
 *  - the spares refill: keeps `spares` ready copies of the golden directory, refilled
 *    after each provision, so a new database is a rename instead of a copy. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "ops/ops_int.h"
#include "util/log.h"

/* ---- usage ---- */

void ops__sample_usage(ops *o, const char *db_id, bool baseline)
{
    if (o->cfg.usage_interval_s <= 0)
        return;
    int64_t xacts = 0, bytes = 0;
    pf_err e;
    char day[16];
    if (engine_usage_sample(o->en, db_id, &xacts, &bytes, &e) != 0) {
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
                ops__sample_usage(o, dbs[i].id, false);
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

/* Fills the spares one copy at a time (engine_spares_fill makes copies up to `want`): each
 * copy ends with a syncfs that a busy disk can stretch to seconds, so a stop waits for the
 * copy in progress only, not for the whole refill. */
static int spares_fill(ops *o, pf_err *e)
{
    int made = 0;
    for (int want = 1; want <= o->cfg.spares && !ops__stopping(o); want++) {
        int m = engine_spares_fill(o->en, want, e);
        if (m < 0)
            return -1;
        made += m;
    }
    return made;
}

void *ops__spares_main(void *arg)
{
    ops *o = arg;
    int backoff_s = 0;
    for (;;) {
        pf_err e;
        err_clear(&e);
        int64_t t0 = util_now_ms();
        int made = spares_fill(o, &e);
        if (made < 0) {
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
                log_sub(LOG_DEBUG, "spares", "made %d in %lld ms", made,
                        (long long)(util_now_ms() - t0));
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
