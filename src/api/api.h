/* api: one file per resource. Handlers validate input, authorize (a credential sees only
 * its own workspace), record intent in the store (with an op for long work) and shape
 * responses exactly as the Management API contract types them. They never spawn
 * processes or talk to PostgreSQL: the ops workers do. */
#ifndef PF_API_API_H
#define PF_API_API_H

#include <jansson.h>
#include <stdbool.h>

#include "http/http.h"
#include "ops/ops.h"
#include "store/store.h"

#define API_MAX_REGIONS 16

typedef struct api_region {
    char id[32];
    char name[96];
    bool available;
} api_region;

typedef struct app {
    store *st;
    ops *ops;              /* NULL in unit tests that only shape JSON */
    char base_url[256];    /* public API base URL, no trailing slash */
    char public_host[256]; /* host written into connection strings */
    /* --tls-mode loopback-optional: strings carry no sslmode (a Node client then connects
     * without TLS over loopback); else they carry sslmode=require */
    bool tls_loopback_optional;
    int port_lo, port_hi; /* instance port range */
    api_region regions[API_MAX_REGIONS];
    size_t nregions;
    char default_region[32];
    int op_wait_ms; /* how long credential changes wait for their op */
    int backup_retention_days;
    long expiry_min_s; /* the nearest expiresAt allowed, in seconds (0: 300; lower in tests) */
    /* OAuth2 (docs/auth.md): signing and MAC keys (NULL: OAuth off, service tokens only)
     * and the access-token lifetime in seconds (--access-token-ttl). */
    const struct auth_keys *keys;
    int access_ttl_s;
    /* requests per credential (--rate-limit, --rate-burst); NULL: no limit */
    struct auth_ratelimit *ratelimit;

    char home[4096]; /* the home (catalog, instances): a create needs room there; "": unchecked */

    /* the JSON of databases' list items by revision (util/textcache.h), shared by the
     * pages of every workspace; NULL (unit tests): none kept, every item made */
    struct textcache *items;

    int pooler_port;    /* the pooled endpoint's port on public_host; 0: none */
    char ca_path[1024]; /* CA certificate served at /v1/ca.pem; "" when unknown */

    /* for /metrics: the API listener's counters (NULL until it runs), version, start */
    http_server *api_server;
    const char *version;
    int64_t started_ms; /* wall clock */
} app;

/* The route table (declared once, in routes.c). */
const http_route *api_routes(size_t *n);
/* The metrics listener's one route, GET /metrics (metrics.c). */
const http_route *api_metrics_routes(size_t *n);
/* Bearer-token authentication hook for the http layer. */
int api_auth(void *app, http_req *req, pf_err *e);
/* The http layer's read hooks: a quick route's auth check and handler in one read
 * transaction of the catalog. */
int api_snapshot_begin(void *app, pf_err *e);
int api_snapshot_end(void *app, int rc, pf_err *e);

/* The web console's built-in OAuth client (console.c, docs/console.md): a public client
 * (PKCE) whose one redirect URI is <base_url>/console/callback, registered (or brought up to
 * date with --public-url) by serve at every start. */
#define API_CONSOLE_CLIENT_ID "cli_console"
int api_console_register(app *a, pf_err *e);

/* Fills the contract's region list: configured regions available, the contract's other
 * ids listed unavailable. spec is "id=Name,id=Name" or NULL for the default. */
int api_regions_configure(app *a, const char *spec, pf_err *e);
/* Resolves a requested region: NULL/"" gives the default; unknown -> 400, listed but
 * unavailable -> 400 "RegionUnavailable"; hint "region". */
int api_region_resolve(app *a, const char *want, const char **out, pf_err *e);
const api_region *api_region_find(app *a, const char *id);

#endif
