/* serve: the running server's life (serve.h). The order of the start matters: the home is
 * locked and the API port bound before the engine (initdb, the golden) so a second pgfleet
 * or a busy port fails at once; the ops start before the listeners so the first request
 * finds them; on the way out clients go first (listeners, then the data path), then the
 * servers. */
#include <malloc.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "serve/serve.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/textcache.h"
#include "util/util.h"

/* The API's certificate and key files: given, or the database endpoints' under HOME/tls. */
static void api_pair_paths(const serve_config *c, char **cp, char **kp)
{
    *cp = c->api_tls_cert ? xstrdup(c->api_tls_cert) : xasprintf("%s/tls/server.crt", c->home);
    *kp = c->api_tls_key ? xstrdup(c->api_tls_key) : xasprintf("%s/tls/server.key", c->home);
}

/* With HTTPS: the API's certificate and key as text. */
static int tls_pem(const serve_config *c, char **cert, char **key, pf_err *e)
{
    *cert = *key = NULL;
    if (!c->api_tls)
        return 0;
    char *cp, *kp;
    api_pair_paths(c, &cp, &kp);
    *cert = fs_read_file(cp, NULL);
    *key = fs_read_file(kp, NULL);
    int rc = 0;
    if (!*cert || !*key) {
        rc = err_internal(e, "HTTPS on the API: cannot read %s", !*cert ? cp : kp);
        free(*cert);
        free(*key);
        *cert = *key = NULL;
    }
    free(cp);
    free(kp);
    return rc;
}

/* A certificate's and key's identity on disk (a renewal changes it); "" without both. */
static void pair_stamp(const char *cert, const char *key, char out[128])
{
    struct stat a, b;
    out[0] = '\0';
    if (cert && key && stat(cert, &a) == 0 && stat(key, &b) == 0)
        snprintf(out, 128, "%lld.%ld.%lld/%lld.%ld.%lld", (long long)a.st_mtim.tv_sec,
                 a.st_mtim.tv_nsec, (long long)a.st_size, (long long)b.st_mtim.tv_sec,
                 b.st_mtim.tv_nsec, (long long)b.st_size);
}

/* The API listener's pair read again and handed to it; a failure keeps the served one. */
static void api_tls_reload(const serve_config *c, http_server *srv)
{
    pf_err e;
    err_clear(&e);
    char *cert = NULL, *key = NULL;
    if (tls_pem(c, &cert, &key, &e) != 0 || (cert && http_tls_reload(srv, cert, key, &e) != 0))
        log_error("%s (the API keeps its previous certificate)", e.message);
    if (key)
        sodium_memzero(key, strlen(key));
    free(cert);
    free(key);
}

/* Waits for SIGTERM or SIGINT (returned). Meanwhile SIGHUP, or a change of the given
 * --tls-cert/--tls-key files (looked at every TLS_WATCH_MS), reloads TLS everywhere online
 * ("tls reload"); a failed reload keeps the previous certificate and is logged. The API
 * listener's pair (--http-tls-cert/--http-tls-key, or the endpoints' copy under HOME/tls)
 * is read again on SIGHUP, after an endpoints' reload, and when its own files change. */
#define TLS_WATCH_MS 2000
static int wait_signal(const serve_config *c, const sigset_t *sigs, engine *en, ops *op,
                       http_server *srv)
{
    char seen[128], now[128], api_seen[128], api_now[128];
    char *acp = NULL, *akp = NULL; /* the API's own pair ("" stamps on plain HTTP) */
    if (c->api_tls)
        api_pair_paths(c, &acp, &akp);
    pair_stamp(c->engine.tls_cert, c->engine.tls_key, seen);
    pair_stamp(acp, akp, api_seen);
    for (;;) {
        struct timespec ts = {TLS_WATCH_MS / 1000, (TLS_WATCH_MS % 1000) * 1000000L};
        int sig = sigtimedwait(sigs, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            free(acp);
            free(akp);
            return sig;
        }
        pair_stamp(acp, akp, api_now);
        bool api_moved = strcmp(api_now, api_seen) != 0;
        snprintf(api_seen, sizeof api_seen, "%s", api_now);
        pair_stamp(c->engine.tls_cert, c->engine.tls_key, now);
        bool moved = strcmp(now, seen) != 0;
        bool engine_reload = sig == SIGHUP || (moved && engine_tls_given_changed(en));
        snprintf(seen, sizeof seen, "%s", now); /* a touch with the same content: no reload */
        if (sig == SIGHUP)
            log_info("received SIGHUP: reloading TLS");
        if (engine_reload) {
            pf_err e;
            err_clear(&e);
            bool changed = false;
            if (engine_tls_reload(en, &changed, &e) != 0)
                log_error("%s (the previous certificate is still served)", e.message);
            else
                ops_datapath_reload(op); /* the data path ends TLS of the direct endpoint */
        }
        if (c->api_tls && (api_moved || sig == SIGHUP || engine_reload)) {
            api_tls_reload(c, srv);
            pair_stamp(acp, akp, api_seen); /* the endpoints' reload may have copied new files */
        }
    }
}

/* Starts the HTTP listeners: the API on listen_fd and, with metrics_fd >= 0, /metrics.
 * Both descriptors are theirs from here on, even on failure. */
static int start_listeners(serve_config *c, app *a, int listen_fd, int metrics_fd,
                           http_server **srv, http_server **msrv, pf_err *e)
{
    size_t nroutes = 0;
    const http_route *routes = api_routes(&nroutes);
    char *cert = NULL, *key = NULL;
    if (tls_pem(c, &cert, &key, e) != 0) {
        close(listen_fd);
        if (metrics_fd >= 0)
            close(metrics_fd);
        return -1;
    }
    http_config hc = {.host = c->listen_host,
                      .port = c->listen_port,
                      .listen_fd = listen_fd,
                      .routes = routes,
                      .nroutes = nroutes,
                      .auth = api_auth,
                      .snapshot_begin = api_snapshot_begin,
                      .snapshot_end = api_snapshot_end,
                      .app = a,
                      .limits = c->limits,
                      .tls_cert_pem = cert,
                      .tls_key_pem = key};
    int rc = http_start(&hc, srv, e);
    if (key)
        sodium_memzero(key, strlen(key));
    free(cert);
    free(key);
    if (rc != 0) {
        if (metrics_fd >= 0)
            close(metrics_fd);
        return -1;
    }
    a->api_server = *srv;
    if (metrics_fd < 0)
        return 0;
    size_t nm = 0;
    const http_route *mroutes = api_metrics_routes(&nm);
    http_config mc = {.host = c->metrics_host,
                      .port = c->metrics_port,
                      .listen_fd = metrics_fd,
                      .routes = mroutes,
                      .nroutes = nm,
                      .app = a};
    if (http_start(&mc, msrv, e) != 0)
        return -1;
    log_info("metrics at http://%s:%d/metrics", c->metrics_host, c->metrics_port);
    return 0;
}

void serve_release(store *st, int lockfd, int listen_fd, int metrics_fd)
{
    store_close(st);
    if (lockfd >= 0)
        close(lockfd);
    if (listen_fd >= 0)
        close(listen_fd);
    if (metrics_fd >= 0)
        close(metrics_fd);
}

int serve_run(serve_config *c, store *st, int lockfd, int listen_fd, int metrics_fd)
{
    int rc = 1;
    engine *en = NULL;
    ops *op = NULL;
    http_server *srv = NULL, *msrv = NULL;
    static auth_keys keys; /* lives as long as the server */
    pf_err e;
    err_clear(&e);
    app *a = &c->api;
    /* two malloc arenas, not eight per core: each keeps the memory its threads freed, so a
     * long run grew by what every thread once held at its peak (docs/decisions.md) */
    mallopt(M_ARENA_MAX, 2);
    a->started_ms = util_wall_ms();
    a->st = st;
    snprintf(a->home, sizeof a->home, "%s", c->home);
    /* about 4096 buckets (~300 KiB): credentials active within a burst's refill time */
    a->ratelimit = auth_ratelimit_new(c->rate_limit, c->rate_burst, 4096);
    /* list items: 8 MiB of text at most (a page of 100 is about 100 KiB) */
    a->items = textcache_new(8192, 8u << 20);

    /* Signals are handled by this thread alone (sigwait); every thread created from here
     * on inherits the blocked mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    engine_config *ec = &c->engine;
    if (proc_user_resolve(c->run_as, &ec->user, &e) != 0)
        goto out;
    int64_t t0 = util_now_ms();
    if (engine_open(ec, &en, &e) != 0)
        goto out;
    log_info("engine ready in %lld ms (home %s, servers run as %s)",
             (long long)(util_now_ms() - t0), c->home, ec->user.name);
    if (engine_tls_ca_path(en))
        snprintf(a->ca_path, sizeof a->ca_path, "%s", engine_tls_ca_path(en));

    if (auth_keys_load(c->home, &keys, &e) != 0)
        goto out;
    a->keys = &keys;
    if (api_regions_configure(a, c->regions, &e) != 0)
        goto out;
    if (api_console_register(a, &e) != 0)
        goto out;
    if (ops_start(st, en, &c->ops, &op, &e) != 0)
        goto out;
    a->ops = op;

    int lfd = listen_fd, mfd = metrics_fd;
    listen_fd = metrics_fd = -1; /* the listeners own them now, even on failure */
    if (start_listeners(c, a, lfd, mfd, &srv, &msrv, &e) != 0)
        goto out;
    log_info("pgfleet %s serving %s on %s:%d (public URL %s)", a->version, c->home, c->listen_host,
             c->listen_port, a->base_url);

    int sig = wait_signal(c, &sigs, en, op, srv);
    log_info("received %s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    ops_interrupt(op); /* running backups end now, not after the HTTP drain */
    rc = 0;
out:
    if (rc != 0)
        log_error("%s", e.message);
    http_stop(msrv);
    http_stop(srv);
    auth_ratelimit_free(a->ratelimit);
    a->ratelimit = NULL;
    textcache_free(a->items);
    a->items = NULL;
    pid_t dp_pid = (pid_t)ops_stop(op);
    if (dp_pid > 0) {
        /* clients first: the data path closes every connection, then the servers stop */
        if (!proc_signal_wait(dp_pid, SIGTERM, 5000))
            proc_signal_wait(dp_pid, SIGKILL, 2000);
        proc_reap(dp_pid);
        log_sub(LOG_INFO, "datapath", "stopped the data path pid=%d", (int)dp_pid);
    }
    if (en) {
        engine_pooler_stop(en);
        engine_stop_all(en);
        engine_close(en);
    }
    serve_release(st, lockfd, listen_fd, metrics_fd);
    if (rc == 0)
        log_info("stopped");
    return rc;
}
