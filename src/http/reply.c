/* http/reply: the bottom of src/http. Builds answers (JSON, raw, the error envelope with its
 * Retry-After), finishes a request (counts it, logs its line, resumes its connection) and
 * owns the request context's references and the lock of waiting requests. server.c (the
 * event threads) and work.c (the handler pool) both stand on it; it calls neither. */
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "http/http_int.h"
#include "util/log.h"

pthread_mutex_t http__waits_mu = PTHREAD_MUTEX_INITIALIZER;

const int http_latency_bounds_ms[HTTP_LAT_BUCKETS] = {1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000};

static void count_request(http_server *s, int status, int64_t ms)
{
    int cls = status / 100;
    atomic_fetch_add(&s->by_class[cls >= 1 && cls <= 5 ? cls : 0], 1);
    int b = 0;
    while (b < HTTP_LAT_BUCKETS && ms > http_latency_bounds_ms[b])
        b++;
    atomic_fetch_add(&s->bucket[b], 1);
    atomic_fetch_add(&s->ms_sum, (uint64_t)(ms > 0 ? ms : 0));
}

void http_stats_get(http_server *s, http_stats *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < 6; i++)
        out->by_class[i] = atomic_load(&s->by_class[i]);
    uint64_t cum = 0;
    for (int b = 0; b <= HTTP_LAT_BUCKETS; b++) {
        cum += atomic_load(&s->bucket[b]);
        if (b < HTTP_LAT_BUCKETS)
            out->le[b] = cum;
    }
    out->count = cum;
    out->ms_sum = atomic_load(&s->ms_sum);
}

static atomic_ulong request_seq;

/* Copies s into out as valid UTF-8: request data echoed in a message may not be. Each byte
 * that does not start a well-formed sequence becomes '?'. */
static void utf8_clean(const char *s, char *out, size_t outsz)
{
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p && o + 5 < outsz) {
        int n = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 0;
        bool ok = n > 0;
        for (int i = 1; ok && i < n; i++)
            ok = (p[i] & 0xC0) == 0x80;
        if (ok && n == 2 && *p < 0xC2)
            ok = false; /* overlong */
        if (!ok) {
            out[o++] = '?';
            p++;
            continue;
        }
        for (int i = 0; i < n; i++)
            out[o++] = (char)p[i];
        p += n;
    }
    out[o] = '\0';
}

json_t *http_error_json(const pf_err *e)
{
    char msg[sizeof e->message + 8], hint[sizeof e->hint + 8];
    utf8_clean(e->message[0] ? e->message : "Internal error", msg, sizeof msg);
    utf8_clean(e->hint, hint, sizeof hint);
    json_t *err =
        json_pack("{s:s, s:s}", "code", e->code[0] ? e->code : "InternalError", "message", msg);
    if (!err) /* a surrogate or other text jansson refuses */
        err = json_pack("{s:s, s:s}", "code", e->code[0] ? e->code : "InternalError", "message",
                        "The request could not be processed");
    if (hint[0])
        json_object_set_new(err, "hint", json_string(hint));
    return json_pack("{s:o}", "error", err);
}

static void add_headers(struct MHD_Response *r, const http_resp *resp)
{
    for (int i = 0; resp && i < resp->nheaders; i++)
        MHD_add_response_header(r, resp->headers[i].name, resp->headers[i].value);
}

static void free_headers(http_resp *resp)
{
    for (int i = 0; i < resp->nheaders; i++) {
        free(resp->headers[i].name);
        free(resp->headers[i].value);
    }
    resp->nheaders = 0;
}

void http_resp_header(http_resp *resp, const char *name, const char *value)
{
    if (resp->nheaders >= HTTP_RESP_HEADERS_MAX)
        abort();
    resp->headers[resp->nheaders].name = xstrdup(name);
    resp->headers[resp->nheaders].value = xstrdup(value);
    resp->nheaders++;
}

struct MHD_Response *http__json_response(json_t *body, const char *request_id,
                                         const http_resp *resp)
{
    char *text = NULL;
    size_t len = 0;
    if (body) {
        text = json_dumps(body, JSON_COMPACT);
        if (!text)
            abort();
        len = strlen(text);
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, text ? text : (char *)"", text ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (body)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(r, "X-Request-Id", request_id);
    add_headers(r, resp);
    return r;
}

struct MHD_Response *http__raw_response(char *raw, size_t len, const char *ctype,
                                        const char *request_id, const http_resp *resp)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, raw, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, "X-Request-Id", request_id);
    add_headers(r, resp);
    return r;
}

/* The envelope of e; a 503 says when to come back. */
struct MHD_Response *http__error_response(const pf_err *e, const char *request_id, int *status)
{
    json_t *j = http_error_json(e);
    *status = err_http_status(e);
    if (*status < 400 || *status > 599)
        *status = 500;
    struct MHD_Response *r = http__json_response(j, request_id, NULL);
    json_decref(j);
    if (e->retry_after_s > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", e->retry_after_s);
        MHD_add_response_header(r, "Retry-After", ra);
    } else if (*status == 503) {
        MHD_add_response_header(r, "Retry-After", "2");
    }
    return r;
}

void http__release_resp(http_resp *resp)
{
    json_decref(resp->body);
    resp->body = NULL;
    free(resp->raw);
    resp->raw = NULL;
    free_headers(resp);
}

void http__new_request_id(req_ctx *ctx)
{
    snprintf(ctx->req.request_id, sizeof ctx->req.request_id, "req_%lu",
             (unsigned long)atomic_fetch_add(&request_seq, 1) + 1);
}

void http__count_and_log(req_ctx *ctx, int status)
{
    int64_t ms = util_now_ms() - ctx->started_ms;
    count_request(ctx->s, status, ms);
    if (strcmp(ctx->log_method, "GET") != 0 || status >= 400)
        log_req(LOG_INFO, ctx->req.request_id, "%s %s -> %d (%lld ms)", ctx->log_method,
                ctx->log_url, status, (long long)ms);
}

void http__make_answer(req_ctx *ctx, int rc, pf_err *e)
{
    http_resp *resp = &ctx->resp;
    struct MHD_Response *r;
    int status;
    if (rc != 0) {
        http__release_resp(resp);
        r = http__error_response(e, ctx->req.request_id, &status);
        if (status >= 500) /* 503: an op still running, or stopping: not a fault */
            log_req(status == 503 ? LOG_WARN : LOG_ERROR, ctx->req.request_id, "%s %s failed: %s",
                    ctx->log_method, ctx->log_url, e->message);
    } else {
        status = resp->status ? resp->status : 200;
        if (resp->raw) {
            r = http__raw_response(resp->raw, resp->raw_len,
                                   resp->content_type ? resp->content_type : "text/plain",
                                   ctx->req.request_id, resp);
            resp->raw = NULL; /* the response frees it */
        } else {
            r = http__json_response(resp->body, ctx->req.request_id, resp);
        }
        http__release_resp(resp);
    }
    http__count_and_log(ctx, status);
    ctx->answer = r;
    ctx->status = status;
}

void http__finish(req_ctx *ctx, int rc, pf_err *e)
{
    http__make_answer(ctx, rc, e);
    MHD_resume_connection(ctx->c);
}

void http__ctx_unref(req_ctx *ctx)
{
    pthread_mutex_lock(&http__waits_mu);
    bool last = --ctx->refs == 0;
    pthread_mutex_unlock(&http__waits_mu);
    if (!last)
        return;
    util_buf_free(&ctx->body);
    http__release_resp(&ctx->resp);
    if (ctx->answer)
        MHD_destroy_response(ctx->answer);
    if (ctx->resp.wait.free)
        ctx->resp.wait.free(ctx->resp.wait.arg);
    free(ctx);
}
