/* http: the libmicrohttpd listener, a thread per connection: body limits, the route
 * table, the auth hook, JSON and raw responses, the error envelope, request counters and
 * the request log line (req= field). */
#include "http/http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <unistd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <microhttpd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/log.h"

struct http_server {
    struct MHD_Daemon *daemon;
    http_config cfg;
    /* what http_stats_get reports; buckets are not cumulative here */
    atomic_uint_least64_t by_class[6];
    atomic_uint_least64_t bucket[HTTP_LAT_BUCKETS + 1];
    atomic_uint_least64_t ms_sum;
};

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

/* Per-request state, from the first callback to MHD's completion notice. */
typedef struct req_ctx {
    util_buf body; /* the upload so far (NULL until a byte came) */
    bool too_large;
    int64_t started_ms;
} req_ctx;

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

static enum MHD_Result send_json(struct MHD_Connection *c, int status, json_t *body,
                                 const char *request_id, const http_resp *resp)
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
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_raw(struct MHD_Connection *c, int status, char *raw, size_t len,
                                const char *ctype, const char *request_id, const http_resp *resp)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, raw, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, "X-Request-Id", request_id);
    add_headers(r, resp);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, const pf_err *e, const char *request_id)
{
    json_t *j = http_error_json(e);
    int status = err_http_status(e);
    char ra[16];
    http_resp extra = {0};
    if (e->retry_after_s > 0) {
        snprintf(ra, sizeof ra, "%d", e->retry_after_s);
        extra.headers[0].name = (char *)"Retry-After";
        extra.headers[0].value = ra;
        extra.nheaders = 1;
    }
    enum MHD_Result r = send_json(c, status, j, request_id, &extra);
    json_decref(j);
    return r;
}

static void dispatch(http_server *s, struct MHD_Connection *c, const char *method, const char *url,
                     req_ctx *ctx, int *status_out, http_req *req)
{
    pf_err e;
    err_clear(&e);
    char pbuf[512];
    const http_route *route = NULL;
    bool path_known = false;
    for (size_t i = 0; i < s->cfg.nroutes; i++) {
        const http_route *rt = &s->cfg.routes[i];
        const char *params[HTTP_MAX_PARAMS];
        int np = 0;
        if (!http_match(rt->pattern, url, pbuf, sizeof pbuf, params, &np))
            continue;
        path_known = true;
        if (strcmp(rt->method, method) != 0)
            continue;
        route = rt;
        memcpy(req->params, params, sizeof params);
        req->nparams = np;
        break;
    }
    http_resp resp = {0};
    int rc = 0;
    if (!route) {
        if (path_known)
            rc = err_set(&e, 405, "MethodNotAllowed", NULL, "%s is not allowed on %s", method, url);
        else
            rc = err_set(&e, 404, "NotFound", NULL, "No such endpoint: %s %s", method, url);
    } else if (ctx->too_large) {
        rc = err_set(&e, 413, "PayloadTooLarge", "Send a body of at most 1 MiB.",
                     "The request body exceeds 1 MiB");
    } else {
        req->body = ctx->body.s;
        req->body_len = ctx->body.len;
        if ((route->flags & HTTP_AUTH) && s->cfg.auth)
            rc = s->cfg.auth(s->cfg.app, req, &e);
        if (rc == 0)
            rc = route->handler(s->cfg.app, req, &resp, &e);
    }
    if (rc != 0) {
        json_decref(resp.body);
        free(resp.raw);
        free_headers(&resp);
        *status_out = e.status >= 400 && e.status <= 599 ? e.status : 500;
        if (*status_out >= 500)
            log_req(LOG_ERROR, req->request_id, "%s %s failed: %s", method, url, e.message);
        send_error(c, &e, req->request_id);
        return;
    }
    *status_out = resp.status ? resp.status : 200;
    if (resp.raw)
        send_raw(c, *status_out, resp.raw, resp.raw_len,
                 resp.content_type ? resp.content_type : "text/plain", req->request_id, &resp);
    else
        send_json(c, *status_out, resp.body, req->request_id, &resp);
    json_decref(resp.body);
    free_headers(&resp);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    http_server *s = cls;
    req_ctx *ctx = *con_cls;
    if (!ctx) {
        ctx = xcalloc(1, sizeof *ctx);
        ctx->started_ms = util_now_ms();
        *con_cls = ctx;
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        long n = 0;
        if (cl && util_parse_int(cl, 0, 1L << 40, &n) && n > HTTP_BODY_MAX)
            ctx->too_large = true;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        if (!ctx->too_large && ctx->body.len + n > HTTP_BODY_MAX)
            ctx->too_large = true;
        if (!ctx->too_large)
            util_buf_add(&ctx->body, upload_data, n);
        *upload_data_size = 0;
        return MHD_YES;
    }
    http_req req = {.method = method, .path = url, .mhd = c};
    snprintf(req.request_id, sizeof req.request_id, "req_%lu",
             (unsigned long)atomic_fetch_add(&request_seq, 1) + 1);
    int status = 500;
    dispatch(s, c, method, url, ctx, &status, &req);
    int64_t ms = util_now_ms() - ctx->started_ms;
    count_request(s, status, ms);
    if (strcmp(method, "GET") != 0 || status >= 400)
        log_req(LOG_INFO, req.request_id, "%s %s -> %d (%lld ms)", method, url, status,
                (long long)ms);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    req_ctx *ctx = *con_cls;
    if (ctx) {
        util_buf_free(&ctx->body);
        free(ctx);
        *con_cls = NULL;
    }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    log_sub(LOG_WARN, "http", "%s", line);
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

int http_start(const http_config *cfg, http_server **out, pf_err *e)
{
    int fd = cfg->listen_fd;
    if (fd < 0 && http_listen(cfg->host, cfg->port, &fd, e) != 0)
        return -1;
    http_server *s = xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ERROR_LOG;
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000, MHD_OPTION_THREAD_STACK_SIZE,
        (size_t)(512 * 1024), MHD_OPTION_END);
    if (!s->daemon) {
        close(fd);
        free(s);
        return err_internal(e, "cannot serve HTTP on %s:%d", cfg->host, cfg->port);
    }
    *out = s;
    return 0;
}

void http_stop(http_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->daemon);
    free(s);
}
