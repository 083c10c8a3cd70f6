/* http: the libmicrohttpd listener in epoll mode with a few event threads (work.c runs the
 * handlers, guard.c the deadlines): header checks and body limits, the route table, JSON
 * and raw responses, the error envelope, request counters and the request log line (req=
 * field). The event threads parse, route and send; they never run a handler. */
#include "http/http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <unistd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <microhttpd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http_int.h"
#include "util/log.h"
#include "util/proc.h"

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

bool http_match(const char *pattern, const char *path, char *buf, size_t bufsz, const char **params,
                int *nparams)
{
    size_t used = 0;
    int np = 0;
    const char *p = pattern, *q = path;
    while (*p && *q) {
        if (*p == '{') {
            const char *pe = strchr(p, '}');
            if (!pe)
                return false;
            const char *qe = strchr(q, '/');
            size_t qlen = qe ? (size_t)(qe - q) : strlen(q);
            if (qlen == 0 || np >= HTTP_MAX_PARAMS || used + qlen + 1 > bufsz)
                return false;
            memcpy(buf + used, q, qlen);
            buf[used + qlen] = '\0';
            params[np++] = buf + used;
            used += qlen + 1;
            p = pe + 1;
            q += qlen;
        } else {
            if (*p != *q)
                return false;
            p++;
            q++;
        }
    }
    /* tolerate one trailing slash on the request */
    if (*p == '\0' && (*q == '\0' || (q[0] == '/' && q[1] == '\0'))) {
        *nparams = np;
        return true;
    }
    return false;
}

const char *http_query(http_req *req, const char *key)
{
    return MHD_lookup_connection_value(req->mhd, MHD_GET_ARGUMENT_KIND, key);
}

const char *http_header(http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->mhd, MHD_HEADER_KIND, name);
}

int http_json_body(http_req *req, bool allow_empty, json_t **out, pf_err *e)
{
    *out = NULL;
    if (!req->body || req->body_len == 0) {
        if (allow_empty) {
            *out = json_object();
            return 0;
        }
        return err_set(e, 400, "ValidationError", "Send a JSON object as the request body.",
                       "The request body is empty");
    }
    json_error_t je;
    json_t *j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        char hint[160];
        snprintf(hint, sizeof hint, "Fix the JSON near line %d, column %d.", je.line, je.column);
        return err_set(e, 400, "InvalidJson", hint, "The request body is not valid JSON: %s",
                       je.text);
    }
    if (!json_is_object(j)) {
        json_decref(j);
        return err_set(e, 400, "ValidationError", "Send a JSON object as the request body.",
                       "The request body must be a JSON object");
    }
    *out = j;
    return 0;
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

const char *http_cookie(http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->mhd, MHD_COOKIE_KIND, name);
}

void http_client_ip(http_req *req, char *out, size_t n)
{
    snprintf(out, n, "unknown");
    const union MHD_ConnectionInfo *ci =
        req->mhd ? MHD_get_connection_info(req->mhd, MHD_CONNECTION_INFO_CLIENT_ADDRESS) : NULL;
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)n);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)n);
}

static struct MHD_Response *json_response(json_t *body, const char *request_id,
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

static struct MHD_Response *raw_response(char *raw, size_t len, const char *ctype,
                                         const char *request_id, const http_resp *resp)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, raw, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, "X-Request-Id", request_id);
    add_headers(r, resp);
    return r;
}

/* The envelope of e; a 503 says when to come back. */
static struct MHD_Response *error_response(const pf_err *e, const char *request_id, int *status)
{
    json_t *j = http_error_json(e);
    *status = err_http_status(e);
    if (*status < 400 || *status > 599)
        *status = 500;
    struct MHD_Response *r = json_response(j, request_id, NULL);
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

static void release_resp(http_resp *resp)
{
    json_decref(resp->body);
    resp->body = NULL;
    free(resp->raw);
    resp->raw = NULL;
    free_headers(resp);
}

static void new_request_id(req_ctx *ctx)
{
    snprintf(ctx->req.request_id, sizeof ctx->req.request_id, "req_%lu",
             (unsigned long)atomic_fetch_add(&request_seq, 1) + 1);
}

static void count_and_log(req_ctx *ctx, int status)
{
    int64_t ms = util_now_ms() - ctx->started_ms;
    count_request(ctx->s, status, ms);
    if (strcmp(ctx->log_method, "GET") != 0 || status >= 400)
        log_req(LOG_INFO, ctx->req.request_id, "%s %s -> %d (%lld ms)", ctx->log_method,
                ctx->log_url, status, (long long)ms);
}

void http__finish(req_ctx *ctx, int rc, pf_err *e)
{
    http_resp *resp = &ctx->resp;
    struct MHD_Response *r;
    int status;
    if (rc != 0) {
        release_resp(resp);
        r = error_response(e, ctx->req.request_id, &status);
        if (status >= 500) /* 503: an op still running, or stopping: not a fault */
            log_req(status == 503 ? LOG_WARN : LOG_ERROR, ctx->req.request_id, "%s %s failed: %s",
                    ctx->log_method, ctx->log_url, e->message);
    } else {
        status = resp->status ? resp->status : 200;
        if (resp->raw) {
            r = raw_response(resp->raw, resp->raw_len,
                             resp->content_type ? resp->content_type : "text/plain",
                             ctx->req.request_id, resp);
            resp->raw = NULL; /* the response frees it */
        } else {
            r = json_response(resp->body, ctx->req.request_id, resp);
        }
        release_resp(resp);
    }
    count_and_log(ctx, status);
    ctx->answer = r;
    ctx->status = status;
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
    release_resp(&ctx->resp);
    if (ctx->answer)
        MHD_destroy_response(ctx->answer);
    if (ctx->resp.wait.free)
        ctx->resp.wait.free(ctx->resp.wait.arg);
    free(ctx);
}

/* Answers at once from the event thread (no handler): a malformed or refused request. */
static enum MHD_Result answer_now(req_ctx *ctx, int status, const char *code, const char *hint,
                                  const char *msg)
{
    pf_err e;
    err_clear(&e);
    err_set(&e, status, code, hint, "%s", msg);
    int st;
    struct MHD_Response *r = error_response(&e, ctx->req.request_id, &st);
    enum MHD_Result ret = MHD_queue_response(ctx->c, (unsigned)st, r);
    MHD_destroy_response(r);
    count_and_log(ctx, st);
    ctx->early = true;
    return ret;
}

static const http_route *find_route(http_server *s, req_ctx *ctx, const char *method,
                                    const char *url, bool *path_known)
{
    *path_known = false;
    for (size_t i = 0; i < s->cfg.nroutes; i++) {
        const http_route *rt = &s->cfg.routes[i];
        const char *params[HTTP_MAX_PARAMS];
        int np = 0;
        if (!http_match(rt->pattern, url, ctx->pbuf, sizeof ctx->pbuf, params, &np))
            continue;
        *path_known = true;
        if (strcmp(rt->method, method) != 0)
            continue;
        memcpy(ctx->req.params, params, sizeof params);
        ctx->req.nparams = np;
        return rt;
    }
    return NULL;
}

static bool is_chunked(struct MHD_Connection *c)
{
    const char *te =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    return te && strcasestr(te, "chunked");
}

static enum MHD_Result answer_too_large(http_server *s, req_ctx *ctx)
{
    char hint[96], msg[96];
    snprintf(hint, sizeof hint, "Send a body of at most %zu bytes.", s->cfg.limits.body_max);
    snprintf(msg, sizeof msg, "The request body exceeds %zu bytes", s->cfg.limits.body_max);
    return answer_now(ctx, 413, "PayloadTooLarge", hint, msg);
}

/* A body past the cap is read and dropped up to twice the cap, so that a client that sends
 * it before reading (most do) gets its 413 instead of a reset; past that, the connection
 * is cut. */
#define DISCARD_MAX(s) (2 * (s)->cfg.limits.body_max)

/* The header is complete: checks it, before a byte of the body is read. */
static enum MHD_Result on_header(http_server *s, req_ctx *ctx, const char *version)
{
    struct MHD_Connection *c = ctx->c;
    if (version && strcmp(version, MHD_HTTP_VERSION_1_1) == 0 &&
        !MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST))
        return answer_now(ctx, 400, "BadRequest", "Host",
                          "An HTTP/1.1 request must have a Host header");
    const char *cl =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    long n = 0;
    if (cl && (!util_parse_int(cl, 0, 1L << 62, &n) || (size_t)n > s->cfg.limits.body_max)) {
        /* 413 from the announced length, before the body: at once when the client waits
         * for 100 Continue or announces more than is worth dropping; else once the body,
         * dropped as it comes, has arrived */
        const char *expect =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
        if ((expect && strcasecmp(expect, "100-continue") == 0) || n <= 0 ||
            (size_t)n > DISCARD_MAX(s))
            return answer_too_large(s, ctx);
        ctx->discard = true;
    }
    bool body = n > 0 || is_chunked(c);
    http__conn_deadline(s, ctx->ci, body ? s->cfg.limits.body_ms : 0);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    http_server *s = cls;
    req_ctx *ctx = *con_cls;
    if (!ctx) {
        ctx = xcalloc(1, sizeof *ctx);
        ctx->s = s;
        ctx->c = c;
        ctx->refs = 1;
        ctx->started_ms = util_now_ms();
        ctx->log_method = method;
        ctx->log_url = url;
        const union MHD_ConnectionInfo *inf =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        ctx->ci = inf ? inf->socket_context : NULL;
        new_request_id(ctx);
        *con_cls = ctx;
        return on_header(s, ctx, version);
    }
    if (ctx->answer) { /* a worker made it; the connection was resumed to send it */
        enum MHD_Result ret = MHD_queue_response(c, (unsigned)ctx->status, ctx->answer);
        MHD_destroy_response(ctx->answer);
        ctx->answer = NULL;
        return ret;
    }
    if (ctx->dispatched)
        return MHD_YES;
    if (ctx->early) /* answered from the header: the body is not read */
        return *upload_data_size ? MHD_NO : MHD_YES;
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (!ctx->discard && ctx->body.len + n > s->cfg.limits.body_max) {
            /* a chunked body past the cap: dropped from here on */
            ctx->discard = true;
            ctx->discarded = ctx->body.len;
            util_buf_free(&ctx->body);
        }
        if (ctx->discard) {
            ctx->discarded += n;
            return ctx->discarded > DISCARD_MAX(s) ? MHD_NO : MHD_YES; /* MHD_NO: cut */
        }
        util_buf_add(&ctx->body, upload_data, n);
        return MHD_YES;
    }
    http__conn_deadline(s, ctx->ci, 0);
    if (ctx->discard)
        return answer_too_large(s, ctx);
    /* HEAD is served wherever GET is: the same headers, no body (libmicrohttpd drops it) */
    const char *rmethod = strcmp(method, "HEAD") == 0 ? "GET" : method;
    bool path_known;
    const http_route *route = find_route(s, ctx, rmethod, url, &path_known);
    if (!route) {
        char msg[600];
        snprintf(msg, sizeof msg,
                 path_known ? "%s is not allowed on %s" : "No such endpoint: %s %s", method, url);
        return path_known ? answer_now(ctx, 405, "MethodNotAllowed", NULL, msg)
                          : answer_now(ctx, 404, "NotFound", NULL, msg);
    }
    ctx->route = route;
    ctx->req.method = rmethod;
    ctx->req.path = url;
    ctx->req.mhd = c;
    ctx->req.body = ctx->body.s;
    ctx->req.body_len = ctx->body.len;
    ctx->dispatched = true;
    atomic_fetch_add(&s->inflight, 1);
    MHD_suspend_connection(c);
    http__pool_push(s, ctx, JOB_HANDLE);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    http_server *s = cls;
    (void)c;
    (void)toe;
    req_ctx *ctx = *con_cls;
    if (!ctx)
        return;
    *con_cls = NULL;
    /* the next request's header: within the keep-alive idle time plus the header's */
    http__conn_deadline(s, ctx->ci, s->cfg.limits.idle_ms + s->cfg.limits.header_ms);
    if (ctx->dispatched)
        atomic_fetch_sub(&s->inflight, 1);
    http__ctx_unref(ctx);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    http_server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        http__conn_started(s, c, socket_context);
    else
        http__conn_closed(s, *socket_context);
}

/* libmicrohttpd's messages: what one client did (a closed socket, a bad TLS handshake, a
 * refused connection) is debug, or an attack would fill the log; the rest a warning. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    bool client = strcasestr(line, "connection") || strcasestr(line, "TLS") ||
                  strcasestr(line, "handshake") || strcasestr(line, "limit");
    log_sub(client ? LOG_DEBUG : LOG_WARN, "http", "%s", line);
}

size_t http_unescape(char *s)
{
    char *w = s;
    for (const char *r = s; *r;) {
        if (r[0] == '%' && isxdigit((unsigned char)r[1]) && isxdigit((unsigned char)r[2])) {
            char hex[3] = {r[1], r[2], '\0'};
            char v = (char)strtol(hex, NULL, 16);
            if (v != '\0') {
                *w++ = v;
                r += 3;
                continue;
            }
        }
        *w++ = *r++;
    }
    *w = '\0';
    return (size_t)(w - s);
}

static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return http_unescape(s);
}

int http_listen(const char *host, int port, int *fd_out, pf_err *e)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    socklen_t len;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        len = sizeof *sin;
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        len = sizeof *sin6;
    } else {
        return err_set(e, 400, "ValidationError", "--listen takes HOST:PORT with a numeric IP",
                       "cannot listen on '%s'", host);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return err_internal(e, "socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 512) != 0) {
        int err = errno;
        close(fd);
        return err_internal(e, "cannot listen on %s:%d: %s", host, port, strerror(err));
    }
    *fd_out = fd;
    return 0;
}

static int cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void resolve_limits(http_limits *l)
{
    int n = cores();
    if (l->max_connections <= 0)
        l->max_connections = 4096;
    if (l->max_per_address == 0)
        l->max_per_address = 64;
    if (l->header_ms <= 0)
        l->header_ms = 10000;
    if (l->body_ms <= 0)
        l->body_ms = 60000;
    if (l->idle_ms <= 0)
        l->idle_ms = 30000;
    if (l->body_max == 0)
        l->body_max = HTTP_BODY_MAX;
    if (l->workers <= 0)
        l->workers = n * 2 > 4 ? n * 2 : 4;
    if (l->heavy_max <= 0)
        l->heavy_max = n;
    if (l->event_threads <= 0)
        l->event_threads = n < 4 ? n : 4;
}

/* Every connection is an fd: the soft limit goes up to what the connection cap needs. */
static void raise_fd_limit(int connections)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = (rlim_t)connections + 1024;
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < want)
        log_sub(LOG_WARN, "http",
                "the open-file limit (%lu) is below what %d connections need (%lu): raise it "
                "(ulimit -n) or lower --http-max-connections",
                (unsigned long)rl.rlim_cur, connections, (unsigned long)want);
}

#define OPT_ADD(o, v, p) (opts[nopt++] = (struct MHD_OptionItem){(o), (intptr_t)(v), (p)})

int http_start(const http_config *cfg, http_server **out, pf_err *e)
{
    int fd = cfg->listen_fd;
    if (fd < 0 && http_listen(cfg->host, cfg->port, &fd, e) != 0)
        return -1;
    http_server *s = xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    http_limits *l = &s->cfg.limits;
    resolve_limits(l);
    raise_fd_limit(l->max_connections);
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    struct MHD_OptionItem opts[24];
    int nopt = 0;
    OPT_ADD(MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL);
    OPT_ADD(MHD_OPTION_LISTEN_SOCKET, fd, NULL);
    OPT_ADD(MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL);
    OPT_ADD(MHD_OPTION_NOTIFY_COMPLETED, on_completed, s);
    OPT_ADD(MHD_OPTION_NOTIFY_CONNECTION, on_connection, s);
    OPT_ADD(MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)((l->idle_ms + 999) / 1000), NULL);
    OPT_ADD(MHD_OPTION_CONNECTION_LIMIT, (unsigned)l->max_connections, NULL);
    if (l->max_per_address > 0)
        OPT_ADD(MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)l->max_per_address, NULL);
    OPT_ADD(MHD_OPTION_THREAD_POOL_SIZE, (unsigned)l->event_threads, NULL);
    OPT_ADD(MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, NULL);
    if (cfg->tls_cert_pem && cfg->tls_key_pem) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            close(fd);
            free(s);
            return err_internal(e, "this libmicrohttpd has no TLS support: serve plain HTTP "
                                   "(--http-tls off) or install one built with GnuTLS");
        }
        flags |= MHD_USE_TLS;
        s->tls_cert = xstrdup(cfg->tls_cert_pem);
        s->tls_key = xstrdup(cfg->tls_key_pem);
        OPT_ADD(MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls_cert);
        OPT_ADD(MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key);
    }
    OPT_ADD(MHD_OPTION_END, 0, NULL);
    http__pool_start(s);
    http__guard_start(s);
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_ARRAY, opts,
                                 MHD_OPTION_END);
    if (!s->daemon) {
        close(fd);
        http__pool_stop(s);
        http__guard_stop(s);
        free(s->tls_cert);
        free(s->tls_key);
        free(s);
        return err_internal(e, "cannot serve HTTP%s on %s:%d", cfg->tls_cert_pem ? "S" : "",
                            cfg->host, cfg->port);
    }
    *out = s;
    return 0;
}

/* Waits until no dispatched request is left unsent, at most ms. */
static void drain(http_server *s, int ms)
{
    for (int64_t until = util_now_ms() + ms; atomic_load(&s->inflight) > 0;) {
        if (util_now_ms() >= until) {
            log_sub(LOG_WARN, "http", "%d request(s) still unanswered at stop",
                    atomic_load(&s->inflight));
            return;
        }
        usleep(20 * 1000);
    }
}

void http_stop(http_server *s)
{
    if (!s)
        return;
    MHD_socket lfd = MHD_quiesce_daemon(s->daemon);
    if (lfd != MHD_INVALID_SOCKET)
        close(lfd);
    http__answer_waiting(s);
    drain(s, 5000);
    http__pool_stop(s); /* runs what is still queued */
    drain(s, 1000);
    http__guard_stop(s);
    MHD_stop_daemon(s->daemon);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->conns_mu);
    pthread_cond_destroy(&s->sweep_cv);
    free(s->tls_cert);
    if (s->tls_key)
        explicit_bzero(s->tls_key, strlen(s->tls_key));
    free(s->tls_key);
    free(s);
}
