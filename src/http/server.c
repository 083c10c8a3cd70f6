/* http: the libmicrohttpd listener in epoll mode with a few event threads (work.c runs the
 * handlers, guard.c the deadlines, reply.c builds and finishes answers): header checks and
 * body limits, the route table, request helpers for handlers. The event threads parse,
 * route and send; the only handlers they run are the HTTP_QUICK reads. */
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

/* Answers at once from the event thread (no handler): a malformed or refused request. */
static enum MHD_Result answer_now(req_ctx *ctx, int status, const char *code, const char *hint,
                                  const char *msg)
{
    pf_err e;
    err_clear(&e);
    err_set(&e, status, code, hint, "%s", msg);
    int st;
    struct MHD_Response *r = http__error_response(&e, ctx->req.request_id, &st);
    enum MHD_Result ret = MHD_queue_response(ctx->c, (unsigned)st, r);
    MHD_destroy_response(r);
    http__count_and_log(ctx, st);
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

/* Queues the answer made into ctx (http__make_answer) on its connection. */
static enum MHD_Result queue_answer(req_ctx *ctx)
{
    enum MHD_Result ret = MHD_queue_response(ctx->c, (unsigned)ctx->status, ctx->answer);
    MHD_destroy_response(ctx->answer);
    ctx->answer = NULL;
    return ret;
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
        http__new_request_id(ctx);
        *con_cls = ctx;
        return on_header(s, ctx, version);
    }
    if (ctx->answer) /* a worker made it; the connection was resumed to send it */
        return queue_answer(ctx);
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
    if (route->flags & HTTP_QUICK) {
        pf_err e;
        err_clear(&e);
        int rc = http__handle(ctx, &e);
        if (rc == 0 && ctx->resp.wait.arm) { /* a quick route that waits after all */
            MHD_suspend_connection(c);
            http__start_wait(ctx);
            return MHD_YES;
        }
        http__make_answer(ctx, rc, &e);
        return queue_answer(ctx);
    }
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
        l->event_threads = 2 * n < 8 ? 2 * n : 8;
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

/* A connection's memory pool (libmicrohttpd's default: 32 KiB), which holds its request
 * line and headers: libmicrohttpd zeroes all of it before every request, so it is sized for
 * what clients send (a JWT bearer and a few headers: ~2 KiB) with room to spare; a header
 * past it is answered 431 by libmicrohttpd. */
#define HTTP_CONN_MEMORY (16 * 1024)

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
    OPT_ADD(MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY, NULL);
    if (cfg->tls_cert_pem && cfg->tls_key_pem) {
        if (http__tls_start(s, cfg->tls_cert_pem, cfg->tls_key_pem, e) != 0) {
            close(fd);
            http__tls_stop(s);
            free(s);
            return -1;
        }
        flags |= MHD_USE_TLS;
        /* the function in both fields: libmicrohttpd reads the one its version reads */
        OPT_ADD(MHD_OPTION_HTTPS_CERT_CALLBACK, http__tls_callback(), http__tls_callback());
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
        http__tls_stop(s);
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
    http__tls_stop(s);
    free(s);
}
