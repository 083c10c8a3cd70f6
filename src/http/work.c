/* http/work: the handler threads and the waiting answers. The event threads run only the
 * HTTP_QUICK handlers themselves (server.c); for any other they suspend the connection and
 * queue it here. A bounded pool of workers runs
 * the auth hook and the handler (HTTP_HEAVY ones, at most heavy_max at once), makes the
 * answer and resumes the connection. A handler whose answer waits for an event
 * (http_resp_wait) gives its worker back at once: the connection stays suspended until
 * http_wake, then `then` runs on a worker. A stop answers every waiting request 503. */
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "http/http_int.h"
#include "util/log.h"

/* One lock for the waits of every server: a wake that comes after its server stopped only
 * touches its request. */

void http_resp_wait(http_resp *resp, const struct http_wait *wait)
{
    resp->wait = *wait;
}

void http__pool_push(http_server *s, req_ctx *ctx, job_kind job)
{
    ctx->job = job;
    ctx->qnext = NULL;
    bool heavy = job == JOB_HANDLE && ctx->route && (ctx->route->flags & HTTP_HEAVY);
    pthread_mutex_lock(&s->mu);
    req_ctx **head = heavy ? &s->h_head : &s->q_head, **tail = heavy ? &s->h_tail : &s->q_tail;
    if (*tail)
        (*tail)->qnext = ctx;
    else
        *head = ctx;
    *tail = ctx;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void wait_unlink(http_server *s, req_ctx *ctx)
{
    if (ctx->wprev)
        ctx->wprev->wnext = ctx->wnext;
    else
        s->waiting = ctx->wnext;
    if (ctx->wnext)
        ctx->wnext->wprev = ctx->wprev;
    ctx->wprev = ctx->wnext = NULL;
}

void http_wake(http_waker *w)
{
    req_ctx *ctx = (req_ctx *)w;
    pthread_mutex_lock(&http__waits_mu);
    bool run = ctx->wstate == W_WAITING;
    if (run) {
        ctx->wstate = W_WOKEN;
        wait_unlink(ctx->s, ctx);
    }
    pthread_mutex_unlock(&http__waits_mu);
    if (run)
        http__pool_push(ctx->s, ctx, JOB_THEN);
    http__ctx_unref(ctx); /* the wait's reference */
}

static pf_err stopping_err(void)
{
    pf_err e;
    err_clear(&e);
    err_set(&e, 503, "ServiceUnavailable", "Retry the request in a moment.",
            "The server is stopping; the request's change is recorded and completes later");
    return e;
}

/* After the handler returned 0 with a wait: arms it. The connection's answer then comes
 * from then (http_wake), or from a stop. */
void http__start_wait(req_ctx *ctx)
{
    http_server *s = ctx->s;
    pf_err e;
    err_clear(&e);
    pthread_mutex_lock(&http__waits_mu);
    bool stopping = s->stopping;
    if (!stopping) {
        ctx->wstate = W_WAITING;
        ctx->refs++;
        ctx->wnext = s->waiting;
        if (s->waiting)
            s->waiting->wprev = ctx;
        s->waiting = ctx;
    }
    pthread_mutex_unlock(&http__waits_mu);
    if (stopping) {
        e = stopping_err();
        http__finish(ctx, -1, &e);
        return;
    }
    if (ctx->resp.wait.arm(s->cfg.app, ctx->resp.wait.arg, (http_waker *)ctx, &e) == 0)
        return; /* ctx belongs to the wait now */
    pthread_mutex_lock(&http__waits_mu);
    bool mine = ctx->wstate == W_WAITING;
    if (mine) {
        ctx->wstate = W_NONE;
        wait_unlink(s, ctx);
    }
    ctx->refs--; /* never woken */
    pthread_mutex_unlock(&http__waits_mu);
    if (mine)
        http__finish(ctx, -1, &e);
}

int http__handle(req_ctx *ctx, pf_err *e)
{
    http_server *s = ctx->s;
    /* a quick route's auth check and handler read one snapshot: one read transaction */
    bool one_read = (ctx->route->flags & HTTP_QUICK) && s->cfg.snapshot_begin;
    if (one_read && s->cfg.snapshot_begin(s->cfg.app, e) != 0)
        return -1;
    int rc = 0;
    if ((ctx->route->flags & HTTP_AUTH) && s->cfg.auth)
        rc = s->cfg.auth(s->cfg.app, &ctx->req, e);
    if (rc == 0)
        rc = ctx->route->handler(s->cfg.app, &ctx->req, &ctx->resp, e);
    return one_read ? s->cfg.snapshot_end(s->cfg.app, rc, e) : rc;
}

static void run_handle(req_ctx *ctx)
{
    pf_err e;
    err_clear(&e);
    int rc = http__handle(ctx, &e);
    if (rc == 0 && ctx->resp.wait.arm) {
        http__start_wait(ctx);
        return;
    }
    http__finish(ctx, rc, &e);
}

static void run_then(req_ctx *ctx)
{
    pf_err e;
    err_clear(&e);
    int rc = ctx->resp.wait.then
                 ? ctx->resp.wait.then(ctx->s->cfg.app, ctx->resp.wait.arg, &ctx->resp, &e)
                 : 0;
    http__finish(ctx, rc, &e);
}

static req_ctx *pop(req_ctx **head, req_ctx **tail)
{
    req_ctx *ctx = *head;
    *head = ctx->qnext;
    if (!*head)
        *tail = NULL;
    ctx->qnext = NULL;
    return ctx;
}

static void *worker_main(void *arg)
{
    http_server *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        bool heavy_ok = s->h_head && s->heavy_running < s->cfg.limits.heavy_max;
        if (!heavy_ok && !s->q_head) {
            if (s->pool_stop && !s->h_head)
                break;
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        req_ctx *ctx = heavy_ok ? pop(&s->h_head, &s->h_tail) : pop(&s->q_head, &s->q_tail);
        if (heavy_ok)
            s->heavy_running++;
        pthread_mutex_unlock(&s->mu);
        if (ctx->job == JOB_THEN)
            run_then(ctx);
        else
            run_handle(ctx);
        pthread_mutex_lock(&s->mu);
        if (heavy_ok) {
            s->heavy_running--;
            pthread_cond_broadcast(&s->cv);
        }
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

void http__pool_start(http_server *s)
{
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->nworkers = s->cfg.limits.workers;
    s->workers = xcalloc((size_t)s->nworkers, sizeof *s->workers);
    for (int i = 0; i < s->nworkers; i++)
        if (pthread_create(&s->workers[i], NULL, worker_main, s) != 0)
            abort();
}

void http__answer_waiting(http_server *s)
{
    pthread_mutex_lock(&http__waits_mu);
    s->stopping = true;
    req_ctx *list = s->waiting;
    s->waiting = NULL;
    for (req_ctx *c = list; c; c = c->wnext)
        c->wstate = W_ANSWERED;
    pthread_mutex_unlock(&http__waits_mu);
    int n = 0;
    for (req_ctx *c = list, *next; c; c = next, n++) {
        next = c->wnext; /* finish may let the connection complete and drop ctx */
        c->wprev = c->wnext = NULL;
        pf_err e = stopping_err();
        http__finish(c, -1, &e);
    }
    if (n)
        log_sub(LOG_INFO, "http", "answered %d waiting request(s) 503: stopping", n);
}

void http__pool_stop(http_server *s)
{
    if (!s->workers)
        return;
    pthread_mutex_lock(&s->mu);
    s->pool_stop = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i], NULL);
    free(s->workers);
    s->workers = NULL;
}
