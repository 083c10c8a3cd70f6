/* ops/watch: callbacks when an op ends, for callers that must not hold a thread while they
 * wait (the HTTP layer's suspended requests). A watch thread, started with the first
 * watch, checks a watched op in the catalog when a worker says it ended (and every second,
 * for ends by any other path), and fires each watch exactly once: the op ended, its
 * deadline passed, or ops stopped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/ops.h"
#include "ops/ops_int.h"
#include "util/log.h"
#include "util/util.h"

#define WATCH_POLL_MS 1000

typedef struct watch {
    struct watch *next;
    char op_id[PF_ID_MAX];
    int64_t deadline_ms;
    bool check; /* read the op: it is new, or a worker ended an op of this id */
    ops_watch_cb cb;
    void *arg;
} watch;

struct ops_watches {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool stopping, poked;
    watch *head;
};

/* Fires and frees the watches of list. */
static void fire(watch *list, ops_watch_result r)
{
    for (watch *w = list, *next; w; w = next) {
        next = w->next;
        w->cb(w->arg, r);
        free(w);
    }
}

static bool op_ended(ops *o, const char *op_id)
{
    store_op op;
    pf_err e;
    if (store_op_get(o->st, op_id, &op, &e) != 0)
        return e.status == 404; /* gone: nothing left to wait for */
    return op.state == OPS_DONE || op.state == OPS_FAILED;
}

static void *watch_main(void *arg)
{
    ops *o = arg;
    ops_watches *ws = o->watches;
    int64_t last_poll = util_now_ms();
    pthread_mutex_lock(&ws->mu);
    while (!ws->stopping) {
        int64_t now = util_now_ms(), next = last_poll + WATCH_POLL_MS;
        for (watch *w = ws->head; w; w = w->next)
            if (w->deadline_ms < next)
                next = w->deadline_ms;
        if (!ws->poked && next > now) {
            struct timespec ts;
            ops__deadline_in(&ts, (int)(next - now));
            pthread_cond_timedwait(&ws->cv, &ws->mu, &ts);
            continue;
        }
        ws->poked = false;
        bool poll = now - last_poll >= WATCH_POLL_MS;
        if (poll)
            last_poll = now;
        /* the ops to read, copied: the catalog is read without the lock */
        size_t n = 0, cap = 0;
        char(*ids)[PF_ID_MAX] = NULL;
        for (watch *w = ws->head; w; w = w->next) {
            if (!poll && !w->check)
                continue;
            w->check = false;
            bool seen = false;
            for (size_t i = 0; i < n && !seen; i++)
                seen = strcmp(ids[i], w->op_id) == 0;
            if (seen)
                continue;
            util_grow((void **)&ids, &cap, n + 1, sizeof *ids);
            memcpy(ids[n++], w->op_id, PF_ID_MAX);
        }
        pthread_mutex_unlock(&ws->mu);
        bool *ended = xcalloc(n ? n : 1, sizeof *ended);
        for (size_t i = 0; i < n; i++)
            ended[i] = op_ended(o, ids[i]);
        pthread_mutex_lock(&ws->mu);
        watch *done = NULL, *late = NULL;
        now = util_now_ms();
        for (watch **pp = &ws->head; *pp;) {
            watch *w = *pp;
            bool end = false;
            for (size_t i = 0; i < n && !end; i++)
                end = ended[i] && strcmp(ids[i], w->op_id) == 0;
            if (end || now >= w->deadline_ms) {
                *pp = w->next;
                w->next = end ? done : late;
                *(end ? &done : &late) = w;
            } else {
                pp = &w->next;
            }
        }
        free(ids);
        free(ended);
        pthread_mutex_unlock(&ws->mu);
        fire(done, OPS_WATCH_ENDED);
        fire(late, OPS_WATCH_TIMEOUT);
        pthread_mutex_lock(&ws->mu);
    }
    pthread_mutex_unlock(&ws->mu);
    return NULL;
}

int ops_watch(ops *o, const char *op_id, int timeout_ms, ops_watch_cb cb, void *arg, pf_err *e)
{
    pthread_mutex_lock(&o->mu);
    bool stopping = o->stopping;
    if (!stopping && !o->watches) {
        ops_watches *ws = xcalloc(1, sizeof *ws);
        pthread_mutex_init(&ws->mu, NULL);
        pthread_cond_init(&ws->cv, NULL);
        o->watches = ws;
        if (pthread_create(&ws->thread, NULL, watch_main, o) != 0)
            abort();
    }
    if (stopping) {
        pthread_mutex_unlock(&o->mu);
        return err_set(e, 503, "ServiceUnavailable", "Retry the request in a moment.",
                       "The server is stopping");
    }
    watch *w = xcalloc(1, sizeof *w);
    snprintf(w->op_id, sizeof w->op_id, "%s", op_id);
    w->deadline_ms = util_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    w->check = true;
    w->cb = cb;
    w->arg = arg;
    ops_watches *ws = o->watches;
    pthread_mutex_lock(&ws->mu);
    w->next = ws->head;
    ws->head = w;
    ws->poked = true;
    pthread_cond_signal(&ws->cv);
    pthread_mutex_unlock(&ws->mu);
    pthread_mutex_unlock(&o->mu); /* held throughout: ops_stop cannot free ws meanwhile */
    return 0;
}

void ops__watch_ended(ops *o, const char *op_id)
{
    pthread_mutex_lock(&o->mu);
    ops_watches *ws = o->watches; /* freed only after the workers stopped */
    pthread_mutex_unlock(&o->mu);
    if (!ws)
        return;
    pthread_mutex_lock(&ws->mu);
    for (watch *w = ws->head; w; w = w->next)
        if (strcmp(w->op_id, op_id) == 0) {
            w->check = true;
            ws->poked = true;
        }
    if (ws->poked)
        pthread_cond_signal(&ws->cv);
    pthread_mutex_unlock(&ws->mu);
}

void ops__watch_stop(ops *o)
{
    ops_watches *ws = o->watches;
    if (!ws)
        return;
    pthread_mutex_lock(&ws->mu);
    ws->stopping = true;
    pthread_cond_signal(&ws->cv);
    pthread_mutex_unlock(&ws->mu);
    pthread_join(ws->thread, NULL);
    watch *left = ws->head;
    ws->head = NULL;
    fire(left, OPS_WATCH_STOPPED);
    pthread_cond_destroy(&ws->cv);
    pthread_mutex_destroy(&ws->mu);
    free(ws);
    o->watches = NULL;
}
