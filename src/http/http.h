/* http: the listener (libmicrohttpd in epoll mode: a few event threads, no thread per
 * connection), request limits, routing by a declarative table, JSON in and out, and the
 * error envelope {"error":{"code","message","hint"}}. Event threads only parse and send: a
 * routed request is suspended and its handler runs on a bounded pool of worker threads; a
 * handler whose answer waits for an event (an op's end) leaves the connection suspended
 * and holds no thread (http_resp_wait). It knows nothing of SQL, processes or resources:
 * routes and the authentication hook come from the caller. */
#ifndef PF_HTTP_HTTP_H
#define PF_HTTP_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/util.h"

#define HTTP_BODY_MAX (1024 * 1024) /* default body cap: larger bodies get 413 */
#define HTTP_MAX_PARAMS 4
#define HTTP_RESP_HEADERS_MAX 10

struct MHD_Connection;

typedef struct http_req {
    const char *method;
    const char *path; /* without the query string */
    char request_id[24];
    struct MHD_Connection *mhd;
    const char *body; /* NUL-terminated; NULL when there was none */
    size_t body_len;
    const char *params[HTTP_MAX_PARAMS]; /* path parameters in pattern order */
    int nparams;
    /* filled by the authentication hook */
    char workspace_id[PF_ID_MAX];
    char actor_id[PF_ID_MAX];
    const char *scope; /* granted scopes, space separated */
} http_req;

struct http_waker;
typedef struct http_waker http_waker;

typedef struct http_resp {
    int status;
    json_t *body;             /* owned by the response; NULL for an empty body (204) */
    const char *content_type; /* NULL: application/json */
    char *raw;                /* a non-JSON body (owned, freed after sending) */
    size_t raw_len;
    /* extra response headers (Location, Set-Cookie, Cache-Control...), owned; add them
     * with http_resp_header. Sent with successful responses only; an error answer carries
     * Retry-After when its pf_err has retry_after_s. */
    struct {
        char *name;
        char *value;
    } headers[HTTP_RESP_HEADERS_MAX];
    int nheaders;
    /* set by http_resp_wait: the answer above is sent once the wait is over */
    struct http_wait {
        /* On a worker, after the handler returned: starts the wait, arranging for
         * http_wake(w) to be called exactly once later, from any thread (it may be called
         * before arm returns). 0; or -1 with e: http_wake is never called, e is answered. */
        int (*arm)(void *app, void *arg, struct http_waker *w, pf_err *e);
        /* On a worker, after http_wake: 0 sends the prepared answer (which it may change),
         * -1 the envelope of e instead. */
        int (*then)(void *app, void *arg, struct http_resp *resp, pf_err *e);
        void (*free)(void *arg); /* once neither the wait nor then needs arg (may be NULL) */
        void *arg;
    } wait;
} http_resp;

/* A handler returns 0 with resp filled, or -1 with e filled (sent as the envelope). */
typedef int (*http_handler)(void *app, http_req *req, http_resp *resp, pf_err *e);
typedef int (*http_auth_hook)(void *app, http_req *req, pf_err *e);

/* HTTP_HEAVY: a handler that costs much memory or CPU (an argon2id password check: ~0.1 s
 * and 64 MiB): at most http_config.heavy_max of them run at once, the others queue.
 * HTTP_QUICK: a read that costs little and never waits (its auth check and a read
 * transaction of the catalog, no commit, no child, no wait): run on the event thread that
 * read the request, without the hand-over to a worker and back. */
enum { HTTP_PUBLIC = 0, HTTP_AUTH = 1, HTTP_HEAVY = 2, HTTP_QUICK = 4 };

typedef struct http_route {
    const char *method;  /* "GET", "POST", ... */
    const char *pattern; /* "/v1/databases/{databaseId}" */
    http_handler handler;
    int flags; /* HTTP_AUTH: run the auth hook first */
} http_route;

/* Limits; 0 takes the default named. */
typedef struct http_limits {
    int max_connections; /* in all (4096); further ones are refused at accept */
    int max_per_address; /* from one client address (64; -1: no cap) */
    int header_ms;       /* a request's header must be complete within this of the
                          * connection's start (10 s); after an answer, within idle_ms +
                          * header_ms: a trickle of bytes extends neither */
    int body_ms;         /* its body within this of the header's end (60 s) */
    int idle_ms;         /* a keep-alive connection without a request (30 s) */
    size_t body_max;     /* a body's bytes, chunked or not (HTTP_BODY_MAX) */
    int workers;         /* handler threads (max(4, 2 * cores)) */
    int heavy_max;       /* HTTP_HEAVY handlers at once (max(1, cores)) */
    int event_threads;   /* libmicrohttpd's threads (2 x cores, at most 8) */
} http_limits;

typedef struct http_config {
    const char *host; /* listen address */
    int port;
    int listen_fd; /* a socket from http_listen, or -1 to bind host:port here */
    const http_route *routes;
    size_t nroutes;
    http_auth_hook auth;
    /* Optional, for HTTP_QUICK routes: snapshot_begin before the auth hook, snapshot_end after the
     * handler with its rc (0, or -1 with e when rc != 0 or the end fails), so both read one
     * snapshot of the app's store. */
    int (*snapshot_begin)(void *app, pf_err *e);
    int (*snapshot_end)(void *app, int rc, pf_err *e);
    void *app;
    http_limits limits;
    /* HTTPS: PEM certificate (chain) and key, as text; NULL: plain HTTP */
    const char *tls_cert_pem, *tls_key_pem;
} http_config;

typedef struct http_server http_server;

/* Binds and listens on host:port (numeric IPv4 or IPv6) so the port is ours from the
 * first moment, before slow start-up work; pass the fd to http_start. */
int http_listen(const char *host, int port, int *fd_out, pf_err *e);
int http_start(const http_config *cfg, http_server **out, pf_err *e);
/* Stops accepting, answers every waiting request 503 (Retry-After), lets the answers in
 * flight go out (a few seconds at most), then stops the threads and frees s. */
void http_stop(http_server *s);
/* A new certificate and key (PEM) for an HTTPS server's next handshakes; a pair that does
 * not load or belong together is refused (-1) and the served one stays. 0 on plain HTTP. */
int http_tls_reload(http_server *s, const char *cert_pem, const char *key_pem, pf_err *e);

/* The answer in resp (status, body, headers) waits for wait->arm's event; then runs
 * wait->then. The connection stays suspended meanwhile and no thread is held; a stop
 * answers it 503. Call from a handler that returns 0. */
void http_resp_wait(http_resp *resp, const struct http_wait *wait);
/* The event a waiting answer waits for happened (or its own deadline passed): then runs on
 * a worker. Any thread; exactly once per successful arm. */
void http_wake(http_waker *w);

/* Requests answered since start: by status class (by_class[2] = 2xx ...; [0]: other) and
 * as a latency histogram: le[i] = requests that took at most http_latency_bounds_ms[i]
 * (cumulative), count = all of them, ms_sum = their total time. */
#define HTTP_LAT_BUCKETS 10
extern const int http_latency_bounds_ms[HTTP_LAT_BUCKETS];
typedef struct http_stats {
    uint64_t by_class[6];
    uint64_t le[HTTP_LAT_BUCKETS];
    uint64_t count;
    uint64_t ms_sum;
} http_stats;
void http_stats_get(http_server *s, http_stats *out);

/* Query string value, or NULL. */
const char *http_query(http_req *req, const char *key);
/* Request header value (case-insensitive name), or NULL. */
const char *http_header(http_req *req, const char *name);
/* Parses the body as a JSON object. A missing/empty body gives an empty object when
 * allow_empty; malformed JSON or a non-object gives 400 with the position in the hint. */
int http_json_body(http_req *req, bool allow_empty, json_t **out, pf_err *e);

/* Serializes the error envelope for e. */
json_t *http_error_json(const pf_err *e);

/* Decodes %XX escapes in s in place, like MHD's default, except %00, which stays as the
 * three characters "%00" (a NUL would silently cut a path or query value short). Returns the
 * new length. MHD calls it on every URL and query string; exposed for tests. */
size_t http_unescape(char *s);
/* Matches path against pattern, filling params (pointers into buf). Exposed for tests. */
bool http_match(const char *pattern, const char *path, char *buf, size_t bufsz, const char **params,
                int *nparams);

/* Adds a response header (copies name and value). Aborts when the table is full: a
 * handler sets a fixed, small number of headers. */
void http_resp_header(http_resp *resp, const char *name, const char *value);
/* Cookie value from the request, or NULL. */
const char *http_cookie(http_req *req, const char *name);
/* The peer's address as text ("127.0.0.1", "::1"); "unknown" when not available. */
void http_client_ip(http_req *req, char *out, size_t n);

/* ---- application/x-www-form-urlencoded (form.c) ---- */
typedef struct http_form http_form;
/* Parses a form body ('+' is a space, %XX decoded). NULL on malformed input: a bad
 * escape, a decoded NUL byte or more than 64 fields. Free with http_form_free. */
http_form *http_form_parse(const char *body, size_t len);
void http_form_free(http_form *f);
/* First value of key, or NULL. */
const char *http_form_get(const http_form *f, const char *key);
/* How many times key occurs (OAuth rejects repeated parameters). */
int http_form_count(const http_form *f, const char *key);
/* Appends key=value, percent-encoding both (RFC 3986 unreserved kept), to a growing
 * string *s (which may start NULL); sep is put before the pair unless *s is empty. */
void http_url_append(char **s, char sep, const char *key, const char *value);

#endif
