/* http: the listener (libmicrohttpd, a thread per connection), request limits, routing
 * by a declarative table, JSON in and out, and the error envelope
 * {"error":{"code","message","hint"}}. It knows nothing of SQL, processes or resources:
 * routes and the authentication hook come from the caller. */
#ifndef PF_HTTP_HTTP_H
#define PF_HTTP_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"
#include "util/util.h"

#define HTTP_BODY_MAX (1024 * 1024) /* 1 MiB: larger bodies get 413 */
#define HTTP_MAX_PARAMS 4

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

typedef struct http_resp {
    int status;
    json_t *body;             /* owned by the response; NULL for an empty body (204) */
    const char *content_type; /* NULL: application/json */
    char *raw;                /* a non-JSON body (owned, freed after sending) */
    size_t raw_len;
} http_resp;

/* A handler returns 0 with resp filled, or -1 with e filled (sent as the envelope). */
typedef int (*http_handler)(void *app, http_req *req, http_resp *resp, pf_err *e);
typedef int (*http_auth_hook)(void *app, http_req *req, pf_err *e);

enum { HTTP_PUBLIC = 0, HTTP_AUTH = 1 };

typedef struct http_route {
    const char *method;  /* "GET", "POST", ... */
    const char *pattern; /* "/v1/databases/{databaseId}" */
    http_handler handler;
    int flags; /* HTTP_AUTH: run the auth hook first */
} http_route;

typedef struct http_config {
    const char *host; /* listen address */
    int port;
    int listen_fd; /* a socket from http_listen, or -1 to bind host:port here */
    const http_route *routes;
    size_t nroutes;
    http_auth_hook auth;
    void *app;
} http_config;

typedef struct http_server http_server;

/* Binds and listens on host:port (numeric IPv4 or IPv6) so the port is ours from the
 * first moment, before slow start-up work; pass the fd to http_start. */
int http_listen(const char *host, int port, int *fd_out, pf_err *e);
int http_start(const http_config *cfg, http_server **out, pf_err *e);
void http_stop(http_server *s);

/* Query string value, or NULL. */
const char *http_query(http_req *req, const char *key);
/* Request header value (case-insensitive name), or NULL. */
const char *http_header(http_req *req, const char *name);
/* Parses the body as a JSON object. A missing/empty body gives an empty object when
 * allow_empty; malformed JSON or a non-object gives 400 with the position in the hint. */
int http_json_body(http_req *req, bool allow_empty, json_t **out, pf_err *e);

/* Serializes the error envelope for e. */
json_t *http_error_json(const pf_err *e);

/* Matches path against pattern, filling params (pointers into buf). Exposed for tests. */
bool http_match(const char *pattern, const char *path, char *buf, size_t bufsz, const char **params,
                int *nparams);

#endif
