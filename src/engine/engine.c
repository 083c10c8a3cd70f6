/* engine: the top of the engine. Opens it (directories, TLS, pooler settings, the golden
 * data directory, the backup repository), closes it, and stops every server at shutdown. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "engine/engine_int.h"
#include "util/log.h"
#include "util/util.h"

int engine_open(const engine_config *cfg, engine **out, pf_err *e)
{
    *out = NULL;
    if (!cfg->home || cfg->home[0] != '/' || !cfg->pg_bindir)
        return err_kind(e, ERR_INVALID, NULL, "engine: home must be an absolute path");
    engine *en = xcalloc(1, sizeof *en);
    pthread_mutex_init(&en->mu, NULL);
    pthread_mutex_init(&en->pooler_mu, NULL);
    pthread_mutex_init(&en->spares_mu, NULL);
    pthread_mutex_init(&en->kept_mu, NULL);
    pthread_mutex_init(&en->tls_mu, NULL);
    if (engine_extensions_check(cfg->extensions, e) < 0) {
        free(en);
        return -1;
    }
    en->extensions = xstrdup(cfg->extensions ? cfg->extensions : engine_extensions_default());
    en->tls_loopback_optional = cfg->tls_loopback_optional;
    en->home = xstrdup(cfg->home);
    en->bindir = xstrdup(cfg->pg_bindir);
    en->listen = xstrdup(cfg->listen_addr ? cfg->listen_addr : "127.0.0.1");
    en->user = cfg->user;
    en->tls_loopback_optional = cfg->tls_loopback_optional;
    en->dp_dir = cfg->datapath_dir ? xstrdup(cfg->datapath_dir) : NULL;
    en->dp_port = cfg->datapath_route_port;
    en->golden_dir = xasprintf("%s/golden", en->home);
    en->instances_dir = xasprintf("%s/instances", en->home);
    en->run_dir = xasprintf("%s/run", en->home);
    en->spare_dir = xasprintf("%s/spare", en->home);
    en->max_connections =
        cfg->max_connections > 0 ? cfg->max_connections : ENGINE_MAX_CONNECTIONS_DEFAULT;
    en->pool_size = cfg->pool_size > 0 ? cfg->pool_size : ENGINE_POOL_SIZE_DEFAULT;
    en->databases_per_server = cfg->databases_per_server > 0 ? cfg->databases_per_server
                                                             : ENGINE_DATABASES_PER_SERVER_DEFAULT;
    if (engine_direct_cap(en->max_connections, en->pool_size) < 1) {
        err_kind(e, ERR_INVALID, NULL,
                 "max_connections %d leaves no direct connection beside a pool of %d and %d "
                 "admin slots",
                 en->max_connections, en->pool_size, ENGINE_ADMIN_RESERVED);
        goto fail;
    }

    if (engine__module_check(en, e) < 0 || fs_mkdirs(en->home, 0711, NULL, e) < 0)
        goto fail;
    if (en->user.switch_user) {
        /* the servers' user must be able to traverse home to reach its directories */
        struct stat st;
        if (stat(en->home, &st) == 0 && (st.st_mode & 0011) != 0011) {
            if (chmod(en->home, (st.st_mode & 07777) | 0011) < 0) {
                err_internal(e, "chmod %s: %s", en->home, strerror(errno));
                goto fail;
            }
        }
    }
    if (fs_mkdirs(en->instances_dir, 0711, NULL, e) < 0 ||
        fs_mkdirs(en->run_dir, 0711, NULL, e) < 0 || fs_mkdirs(en->spare_dir, 0700, NULL, e) < 0)
        goto fail;
    /* the data path's sockets: only the servers' user (PgBouncer) and root reach them */
    if (en->dp_dir && engine__own_dir(en, en->dp_dir, e) < 0)
        goto fail;
    /* the golden's configuration already names the certificate */
    if (engine__tls_ensure(en, cfg, e) < 0 || engine__pooler_init(en, cfg, e) < 0)
        goto fail;
    if (engine__golden_ensure(en, e) < 0)
        goto fail;
    if (engine__backup_open(en, cfg, e) < 0)
        goto fail;
    engine__spares_tidy(en);
    *out = en;
    return 0;
fail:
    engine__disk_full_is_transient(e);
    err_prefix(e, "while opening the engine in %s: ", cfg->home);
    engine_close(en);
    return -1;
}

void engine_close(engine *en)
{
    if (!en)
        return;
    engine__backup_close(en);
    pthread_mutex_destroy(&en->mu);
    pthread_mutex_destroy(&en->tls_mu);
    free(en->extensions);
    engine__tls_free(en);
    engine__pooler_free(en);
    free(en->procs);
    free(en->spares);
    pthread_mutex_destroy(&en->spares_mu);
    engine__admin_forget(en, NULL);
    free(en->kept);
    pthread_mutex_destroy(&en->kept_mu);
    free(en->home);
    free(en->bindir);
    free(en->listen);
    free(en->dp_dir);
    free(en->golden_dir);
    free(en->instances_dir);
    free(en->run_dir);
    free(en->spare_dir);
    free(en);
}

void engine_stop_all(engine *en)
{
    engine__admin_forget(en, NULL); /* the spares' kept sessions */
    size_t n = 0;
    engine_proc *snap = engine__tracked_all(en, &n);
    for (size_t i = 0; i < n; i++)
        if (!proc_reap(snap[i].pid))
            kill(snap[i].pid, SIGINT);
    static const int sigs[] = {SIGINT, SIGQUIT, SIGKILL};
    static const int waits[] = {ENGINE_STOP_FAST_MS, ENGINE_STOP_QUIT_MS, ENGINE_STOP_QUIT_MS};
    for (size_t s = 0; s < 3; s++) {
        if (s > 0)
            for (size_t i = 0; i < n; i++)
                if (snap[i].pid > 0 && !proc_reap(snap[i].pid)) {
                    log_db_warn(snap[i].id, "the server pid=%d ignored shutdown, sending signal %d",
                                (int)snap[i].pid, sigs[s]);
                    kill(snap[i].pid, sigs[s]);
                }
        int64_t deadline = util_now_ms() + waits[s];
        for (;;) {
            size_t alive = 0;
            for (size_t i = 0; i < n; i++) {
                if (snap[i].pid > 0 && proc_reap(snap[i].pid)) {
                    log_db_info(snap[i].id, "stopped the server pid=%d", (int)snap[i].pid);
                    engine__untrack(en, snap[i].id);
                    snap[i].pid = 0;
                }
                if (snap[i].pid > 0)
                    alive++;
            }
            if (!alive || util_now_ms() >= deadline)
                break;
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    free(snap);
}

int engine_tls_reload(engine *en, bool *changed, pf_err *e)
{
    bool ch = false;
    int ret = -1;
    pthread_mutex_lock(&en->tls_mu);
    int64_t t0 = util_now_ms();
    if (engine__tls_refresh(en, &ch, e) < 0)
        goto out;
    /* a postmaster reloads its certificate on SIGHUP and keeps its sessions */
    size_t n = 0, sent = 0;
    engine_proc *snap = engine__tracked_all(en, &n);
    for (size_t i = 0; i < n; i++)
        if (!proc_reap(snap[i].pid) && kill(snap[i].pid, SIGHUP) == 0)
            sent++;
    free(snap);
    if (engine__pooler_reload(en, e) < 0)
        goto out;
    log_sub(LOG_INFO, "tls", "reloaded%s: %zu server(s) signalled, pooler reloaded in %lld ms",
            ch ? " a new certificate" : "", sent, (long long)(util_now_ms() - t0));
    ret = 0;
out:
    pthread_mutex_unlock(&en->tls_mu);
    if (changed)
        *changed = ch;
    if (ret < 0)
        err_prefix(e, "while reloading TLS: ");
    return ret;
}
