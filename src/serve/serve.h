/* serve: `pgfleet serve` once its options are parsed: opens the engine, starts the ops, the
 * API and metrics listeners and the data path, waits for a signal (SIGHUP and a renewal of
 * the given certificate reload TLS online), and stops everything in order. main.c turns the
 * options into this configuration; nothing here reads an option. */
#ifndef PGFLEET_SERVE_H
#define PGFLEET_SERVE_H

#include <stdbool.h>

#include "api/api.h"
#include "engine/engine.h"
#include "http/http.h"
#include "ops/ops.h"
#include "store/store.h"

typedef struct serve_config {
    const char *home; /* absolute */
    const char *run_as;
    const char *regions;  /* --regions */
    engine_config engine; /* .user is resolved from run_as here */
    ops_config ops;
    http_limits limits;
    const char *listen_host;
    int listen_port;
    const char *metrics_host; /* metrics_port 0: no metrics listener */
    int metrics_port;
    /* HTTPS on the API listener: the certificate and key files (NULL: the database
     * endpoints' under HOME/tls); api_tls false: plain HTTP */
    bool api_tls;
    const char *api_tls_cert, *api_tls_key;
    double rate_limit, rate_burst; /* per credential; rate_limit 0: none */
    /* the API's settings (version, base URL, public host, port range, lifetimes, ...);
     * serve fills in the rest (catalog, ops, keys, CA path, start time) */
    app api;
} serve_config;

/* Runs the server until SIGTERM or SIGINT. Takes ownership of st, the home's lock and the
 * listening sockets (already bound: a busy port fails before the engine starts). Returns
 * 0 after a clean stop, 1 when the start failed (logged). */
int serve_run(serve_config *c, store *st, int lockfd, int listen_fd, int metrics_fd);
/* Closes what serve_run would own (st may be NULL, a descriptor -1): for a start that fails
 * before it. */
void serve_release(store *st, int lockfd, int listen_fd, int metrics_fd);

#endif
