/* sleep: a database idle for suspend_after_s sleeps (its server stops cleanly, after its
 * last WAL is archived), and the first connection to it wakes it (the data path holds the
 * connection and asks; ops__wake starts the server). Sleep and wake of one database never
 * overlap (its entry's `busy`); the truth of "asleep" is the engine's mark beside the data
 * directory, so a kill of serve at any moment leaves a database either asleep (stopped,
 * marked) or to be started by the reconciler (stopped, unmarked), never half-stopped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/ops_int.h"
#include "util/ctlmsg.h"
#include "util/log.h"

#define SLEEP_ANSWER_MS 2000
#define PAUSE_TIMEOUT_MS 3000
/* sleeps of one round run on this many threads at once: a sleep mostly waits (for its WAL
 * to reach the archive, for the checkpoint and the stop), ~1.4 s each one after another */
#define SLEEP_PARALLEL 4

const int ops_wake_buckets_ms[OPS_WAKE_BUCKETS] = {25, 50, 100, 150, 250, 500, 1000, 2500, 5000};

static void dp_say(ops *o, const char *verb, const char *id)
{
    char msg[128];
    snprintf(msg, sizeof msg, "%s %s", verb, id);
    ops__dp_send(o->dp, msg, -1);
}

static void timed_wait(ops_dp *d, int ms)
{
    struct timespec ts;
    ops__deadline_in(&ts, ms);
    pthread_cond_timedwait(&d->cv, &d->mu, &ts);
}

int ops__wake(ops *o, const char *db_id, pf_err *e)
{
    ops_dp *d = o->dp;
    if (!d)
        return 0;
    pthread_mutex_lock(&d->mu);
    ops_dp_db *b = ops__dp_find(d, db_id);
    while (b && b->busy && !d->stopping) {
        timed_wait(d, 200);
        b = ops__dp_find(d, db_id);
    }
    if (!b || d->stopping) {
        pthread_mutex_unlock(&d->mu);
        return 0;
    }
    int port = b->port;
    char inst[PF_ID_MAX];
    snprintf(inst, sizeof inst, "%s", b->inst);
    b->busy = true;
    pthread_mutex_unlock(&d->mu);
    int ret = 0;
    bool woke = false;
    int64_t t0 = util_now_ms();
    if (engine_instance_asleep(o->en, inst, NULL)) {
        ret = engine_instance_start(o->en, inst, port, o->cfg.start_timeout_ms, e);
        woke = ret == 0;
    }
    int64_t ms = util_now_ms() - t0;
    pthread_mutex_lock(&d->mu);
    b = ops__dp_find(d, db_id);
    if (b) {
        b->busy = false;
        if (ret == 0)
            b->asleep = false;
    }
    if (woke) {
        d->wakes++;
        d->wake_ms_sum += (uint64_t)ms;
        int k = 0;
        while (k < OPS_WAKE_BUCKETS && ms > ops_wake_buckets_ms[k])
            k++;
        d->wake_hist[k]++;
    } else if (ret != 0) {
        d->wake_failures++;
    }
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    dp_say(o, ret == 0 ? "AWAKE" : "WAKEFAIL", db_id);
    if (woke)
        log_db_info(db_id, "awake: the server started in %lld ms", (long long)ms);
    else if (ret != 0)
        log_db_warn(db_id, "could not wake: %s", e ? e->message : "");
    return ret;
}

typedef struct wake_arg {
    ops *o;
    char id[PF_ID_MAX];
} wake_arg;

static void *wake_main(void *arg)
{
    wake_arg *w = arg;
    pf_err e;
    err_clear(&e);
    ops__wake(w->o, w->id, &e);
    ops_dp *d = w->o->dp;
    pthread_mutex_lock(&d->mu);
    ops_dp_db *b = ops__dp_find(d, w->id);
    if (b)
        b->waking = false;
    d->wake_threads--;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    free(w);
    return NULL;
}

void ops__wake_async(ops *o, const char *db_id)
{
    ops_dp *d = o->dp;
    pthread_mutex_lock(&d->mu);
    ops_dp_db *b = ops__dp_find(d, db_id);
    if (!b || b->waking || d->stopping) {
        pthread_mutex_unlock(&d->mu);
        return;
    }
    b->waking = true;
    d->wake_threads++;
    pthread_mutex_unlock(&d->mu);
    wake_arg *w = xcalloc(1, sizeof *w);
    w->o = o;
    snprintf(w->id, sizeof w->id, "%s", db_id);
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &at, wake_main, w) != 0)
        abort();
    pthread_attr_destroy(&at);
}

int ops__ensure_awake(ops *o, const char *db_id, pf_err *e)
{
    return ops__wake(o, db_id, e);
}

bool ops__hold(ops *o, const char *db_id)
{
    ops_dp *d = o->dp;
    if (!d)
        return false;
    pthread_mutex_lock(&d->mu);
    ops_dp_db *b = ops__dp_find(d, db_id);
    while (b && b->busy && !d->stopping) {
        timed_wait(d, 200);
        b = ops__dp_find(d, db_id);
    }
    bool asleep = b && b->asleep && !d->stopping;
    if (asleep)
        b->busy = true; /* a wake waits for ops__unhold */
    else if (b)
        b->pins++; /* it does not sleep meanwhile */
    pthread_mutex_unlock(&d->mu);
    return asleep;
}

void ops__unhold(ops *o, const char *db_id, bool asleep)
{
    ops_dp *d = o->dp;
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    ops_dp_db *b = ops__dp_find(d, db_id);
    if (b && asleep)
        b->busy = false;
    else if (b)
        b->pins--;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

void ops__pin(ops *o, const char *db_id, int delta)
{
    ops_dp *d = o->dp;
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    ops_dp_db *b = ops__dp_find(d, db_id);
    if (b)
        b->pins += delta;
    pthread_mutex_unlock(&d->mu);
}

/* One database that the data path finds idle: asleep unless something still needs it. */
static void try_sleep(ops *o, const char *id)
{
    ops_dp *d = o->dp;
    pf_err e;
    err_clear(&e);
    store_database db;
    int active = 0, sv = 0;
    if (store_database_get_internal(o->st, id, &db, &e) != 0 || db.status != DB_READY ||
        store_op_count_needing_server(o->st, id, &active, &e) != 0 || active > 0 ||
        !engine_instance_running(o->en, ops__inst(&db)))
        return;
    /* a pooled client inside a transaction holds a server connection */
    if (engine_pooler_active(o->en, id, &sv, &e) != 0 || sv > 0)
        return;
    pthread_mutex_lock(&d->mu);
    ops_dp_db *b = ops__dp_find(d, id);
    if (!b || b->busy || b->asleep || b->pins > 0 || d->stopping) {
        pthread_mutex_unlock(&d->mu);
        return;
    }
    b->busy = true;
    b->sleep_answer = 0;
    int port = b->port;
    pthread_mutex_unlock(&d->mu);
    int64_t t0 = util_now_ms();
    /* the data path agrees only with no direct client, and holds new ones from now on */
    dp_say(o, "SLEEP", id);
    pthread_mutex_lock(&d->mu);
    int64_t deadline = util_now_ms() + SLEEP_ANSWER_MS;
    while ((b = ops__dp_find(d, id)) && !b->sleep_answer && util_now_ms() < deadline &&
           !d->stopping)
        timed_wait(d, 100);
    int answer = b ? b->sleep_answer : 0;
    pthread_mutex_unlock(&d->mu);
    bool asleep = false;
    if (answer != 1) {
        if (answer == 0)
            dp_say(o, "AWAKE", id);
        goto out;
    }
    if (engine_pooler_pause(o->en, id, PAUSE_TIMEOUT_MS, &e) != 0) {
        log_db_info(id, "stays awake: %s", e.message);
        dp_say(o, "AWAKE", id);
        goto out;
    }
    if (engine_instance_suspend(o->en, ops__inst(&db), port, &e) != 0) {
        log_db_warn(id, "stays awake: %s", e.message);
        dp_say(o, "AWAKE", id);
    } else {
        asleep = true;
        dp_say(o, "ASLEEP", id);
    }
    pf_err re;
    if (engine_pooler_resume(o->en, id, &re) != 0)
        log_db_warn(id, "%s", re.message);
out:
    pthread_mutex_lock(&d->mu);
    b = ops__dp_find(d, id);
    if (b) {
        b->busy = false;
        b->asleep = asleep;
    }
    if (asleep)
        d->sleeps++;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    if (asleep)
        log_db_info(id, "asleep after %d s idle (%lld ms)", o->cfg.suspend_after_s,
                    (long long)(util_now_ms() - t0));
}

/* One round's sleeps, shared by its threads: each takes the next id until none is left. */
typedef struct sleep_round {
    ops *o;
    char (*ids)[PF_ID_MAX];
    size_t n, next;
    pthread_mutex_t mu;
} sleep_round;

static void *round_main(void *arg)
{
    sleep_round *r = arg;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        size_t i = r->next < r->n ? r->next++ : r->n;
        pthread_mutex_unlock(&r->mu);
        if (i == r->n)
            return NULL;
        try_sleep(r->o, r->ids[i]);
    }
}

/* Puts ids to sleep, up to SLEEP_PARALLEL at once; returns when every one was tried. */
static void sleep_all(ops *o, char (*ids)[PF_ID_MAX], size_t n)
{
    sleep_round r = {.o = o, .ids = ids, .n = n};
    pthread_mutex_init(&r.mu, NULL);
    pthread_t th[SLEEP_PARALLEL];
    size_t started = 0;
    for (; started + 1 < SLEEP_PARALLEL && started + 1 < n; started++)
        if (pthread_create(&th[started], NULL, round_main, &r) != 0)
            break;
    round_main(&r); /* this thread takes its share too */
    for (size_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&r.mu);
}

static void *sleeper_main(void *arg)
{
    ops *o = arg;
    ops_dp *d = o->dp;
    int period = o->cfg.suspend_after_s * 250;
    period = period < 200 ? 200 : period > 5000 ? 5000 : period;
    for (;;) {
        pthread_mutex_lock(&d->mu);
        if (!d->stopping)
            timed_wait(d, period);
        if (d->stopping) {
            pthread_mutex_unlock(&d->mu);
            break;
        }
        uint64_t gen = d->stats_gen;
        pthread_mutex_unlock(&d->mu);
        if (ops__dp_send(d, "STATS", -1) != 0)
            continue;
        pthread_mutex_lock(&d->mu);
        int64_t deadline = util_now_ms() + 1000;
        while (d->stats_gen == gen && util_now_ms() < deadline && !d->stopping)
            timed_wait(d, 100);
        char(*ids)[PF_ID_MAX] = NULL;
        size_t n = 0, cap = 0;
        for (size_t i = 0; d->stats_gen > gen && i < d->n; i++) {
            ops_dp_db *b = &d->dbs[i];
            if (b->asleep || b->busy || b->pins || b->stat_gen != gen + 1 || b->direct || b->held ||
                b->idle_ms < (int64_t)o->cfg.suspend_after_s * 1000)
                continue;
            util_grow((void **)&ids, &cap, n + 1, sizeof *ids);
            snprintf(ids[n++], PF_ID_MAX, "%s", b->id);
        }
        pthread_mutex_unlock(&d->mu);
        sleep_all(o, ids, n);
        free(ids);
    }
    return NULL;
}

int ops__sleep_start(ops *o, pf_err *e)
{
    (void)e;
    ops_dp *d = o->dp;
    /* what the engine says sleeps (a restart of serve keeps them asleep) */
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->n; i++)
        d->dbs[i].asleep = engine_instance_asleep(o->en, d->dbs[i].inst, NULL);
    pthread_mutex_unlock(&d->mu);
    if (o->cfg.suspend_after_s <= 0)
        return 0;
    if (pthread_create(&d->sleeper, NULL, sleeper_main, o) != 0)
        abort();
    d->sleeper_started = true;
    return 0;
}

void ops__sleep_stop(ops *o)
{
    ops_dp *d = o->dp;
    pthread_mutex_lock(&d->mu);
    d->stopping = true;
    pthread_cond_broadcast(&d->cv);
    /* the wake threads end (a start in progress finishes first) */
    while (d->wake_threads > 0)
        timed_wait(d, 100);
    pthread_mutex_unlock(&d->mu);
    if (d->sleeper_started)
        pthread_join(d->sleeper, NULL);
    d->sleeper_started = false;
}

void ops_datapath_stats(ops *o, ops_dp_stats *out)
{
    memset(out, 0, sizeof *out);
    ops_dp *d = o ? o->dp : NULL;
    if (!d)
        return;
    out->enabled = true;
    pthread_mutex_lock(&d->mu);
    out->wakes = d->wakes;
    out->wake_failures = d->wake_failures;
    out->sleeps = d->sleeps;
    out->wake_ms_sum = d->wake_ms_sum;
    memcpy(out->wake_hist, d->wake_hist, sizeof out->wake_hist);
    out->n = d->n;
    out->dbs = d->n ? xcalloc(d->n, sizeof *out->dbs) : NULL;
    for (size_t i = 0; i < d->n; i++) {
        ops_dp_count *c = &out->dbs[i];
        snprintf(c->id, sizeof c->id, "%s", d->dbs[i].id);
        c->direct = d->dbs[i].direct;
        c->pooled = d->dbs[i].pooled;
        c->asleep = d->dbs[i].asleep;
        if (c->asleep)
            out->asleep++;
        else
            out->awake++;
    }
    pthread_mutex_unlock(&d->mu);
}
