/* instance: the life of one PostgreSQL server per database: copy from golden, start or
 * adopt, stop, destroy; plus the table of servers this engine started or adopted. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine_int.h"
#include "util/log.h"
#include "util/util.h"

#define STOP_FAST_WAIT_MS 10000
#define STOP_QUIT_WAIT_MS 5000
#define READY_POLL_MS 10

bool engine__valid_id(const char *id)
{
    if (!id || !*id || strlen(id) >= ENGINE_ID_MAX)
        return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-'))
            return false;
    return true;
}

static int check_id(const char *id, pf_err *e)
{
    if (!engine__valid_id(id))
        return err_set(e, 400, "ValidationError", "databaseId", "invalid database id");
    return 0;
}

/* ---- the table of started/adopted servers ---- */

void engine__track(engine *en, const char *id, pid_t pid, bool child)
{
    pthread_mutex_lock(&en->mu);
    engine_proc *slot = NULL;
    for (size_t i = 0; i < en->nprocs; i++)
        if (!strcmp(en->procs[i].id, id))
            slot = &en->procs[i];
    if (!slot) {
        if (en->nprocs == en->capprocs) {
            size_t cap = en->capprocs ? en->capprocs * 2 : 16;
            engine_proc *np = xcalloc(cap, sizeof *np);
            if (en->nprocs)
                memcpy(np, en->procs, en->nprocs * sizeof *np);
            free(en->procs);
            en->procs = np;
            en->capprocs = cap;
        }
        slot = &en->procs[en->nprocs++];
        snprintf(slot->id, sizeof slot->id, "%s", id);
    }
    /* a re-adopted pid that we started before keeps its child flag */
    slot->child = (slot->pid == pid && slot->child) || child;
    slot->pid = pid;
    pthread_mutex_unlock(&en->mu);
}

void engine__untrack(engine *en, const char *id)
{
    pthread_mutex_lock(&en->mu);
    for (size_t i = 0; i < en->nprocs; i++) {
        if (!strcmp(en->procs[i].id, id)) {
            en->procs[i] = en->procs[--en->nprocs];
            break;
        }
    }
    pthread_mutex_unlock(&en->mu);
}

pid_t engine__tracked(engine *en, const char *id)
{
    pid_t pid = 0;
    pthread_mutex_lock(&en->mu);
    for (size_t i = 0; i < en->nprocs; i++)
        if (!strcmp(en->procs[i].id, id))
            pid = en->procs[i].pid;
    pthread_mutex_unlock(&en->mu);
    return pid;
}

/* ---- open / close ---- */

/* Spares that a crash left half made. */
static void remove_half_spares(engine *en)
{
    DIR *d = opendir(en->spare_dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "tmp-", 4) != 0)
            continue;
        char *path = xasprintf("%s/%s", en->spare_dir, de->d_name);
        fs_remove_tree(path, NULL);
        free(path);
    }
    if (d)
        closedir(d);
}

int engine_open(const engine_config *cfg, engine **out, pf_err *e)
{
    *out = NULL;
    if (!cfg->home || cfg->home[0] != '/' || !cfg->pg_bindir)
        return err_internal(e, "engine: home must be an absolute path");
    engine *en = xcalloc(1, sizeof *en);
    pthread_mutex_init(&en->mu, NULL);
    pthread_mutex_init(&en->pooler_mu, NULL);
    en->home = xstrdup(cfg->home);
    en->bindir = xstrdup(cfg->pg_bindir);
    en->listen = xstrdup(cfg->listen_addr ? cfg->listen_addr : "127.0.0.1");
    en->user = cfg->user;
    en->golden_dir = xasprintf("%s/golden", en->home);
    en->instances_dir = xasprintf("%s/instances", en->home);
    en->run_dir = xasprintf("%s/run", en->home);
    en->spare_dir = xasprintf("%s/spare", en->home);

    if (fs_mkdirs(en->home, 0711, NULL, e) < 0)
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
    /* the golden's configuration already names the certificate */
    if (engine__tls_ensure(en, cfg, e) < 0 || engine__pooler_init(en, cfg, e) < 0)
        goto fail;
    if (engine__golden_ensure(en, e) < 0)
        goto fail;
    if (engine__backup_open(en, cfg, e) < 0)
        goto fail;
    remove_half_spares(en);
    *out = en;
    return 0;
fail:
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
    engine__tls_free(en);
    engine__pooler_free(en);
    free(en->procs);
    free(en->home);
    free(en->bindir);
    free(en->listen);
    free(en->golden_dir);
    free(en->instances_dir);
    free(en->run_dir);
    free(en->spare_dir);
    free(en);
}

/* ---- postmaster.pid and liveness ---- */

bool engine__read_pidfile(const char *datadir, pid_t *pid, int *port)
{
    char *path = xasprintf("%s/postmaster.pid", datadir);
    char *text = fs_read_file(path, NULL);
    free(path);
    if (!text)
        return false;
    /* line 1: pid, 2: datadir, 3: start time, 4: port, 5: socket dir, ... */
    bool ok = false;
    char *save = NULL;
    char *line = strtok_r(text, "\n", &save);
    long v = 0;
    if (line && util_parse_int(line, 1, INT_MAX, &v)) {
        *pid = (pid_t)v;
        ok = true;
        if (port) {
            *port = 0;
            for (int i = 2; i <= 4 && line; i++)
                line = strtok_r(NULL, "\n", &save);
            if (line && util_parse_int(line, 1, 65535, &v))
                *port = (int)v;
        }
    }
    free(text);
    return ok;
}

/* True if pid is a postmaster running from datadir (postgres chdirs to its data
 * directory), so a recycled pid is never mistaken for our server. */
static bool pid_serves(pid_t pid, const char *datadir)
{
    char link[64], cwd[PATH_MAX], real[PATH_MAX];
    snprintf(link, sizeof link, "/proc/%d/cwd", (int)pid);
    ssize_t n = readlink(link, cwd, sizeof cwd - 1);
    if (n < 0) {
        if (errno != EACCES)
            return false;
        /* not ours to inspect: fall back to the command line */
        snprintf(link, sizeof link, "/proc/%d/cmdline", (int)pid);
        size_t len = 0;
        char *cmd = fs_read_file(link, &len);
        bool hit = false;
        for (size_t i = 0; cmd && i < len; i += strlen(cmd + i) + 1)
            if (!strcmp(cmd + i, datadir))
                hit = true;
        free(cmd);
        return hit;
    }
    cwd[n] = '\0';
    if (!realpath(datadir, real))
        return false;
    return strcmp(cwd, real) == 0;
}

pid_t engine__live_postmaster(engine *en, const char *datadir)
{
    (void)en;
    pid_t pid = 0;
    if (!engine__read_pidfile(datadir, &pid, NULL))
        return 0;
    if (proc_reap(pid))
        return 0;
    return pid_serves(pid, datadir) ? pid : 0;
}

bool engine__terminate(pid_t pid, int first_sig, int first_wait_ms)
{
    if (proc_signal_wait(pid, first_sig, first_wait_ms))
        return true;
    if (first_sig != SIGQUIT && proc_signal_wait(pid, SIGQUIT, STOP_QUIT_WAIT_MS))
        return true;
    return proc_signal_wait(pid, SIGKILL, STOP_QUIT_WAIT_MS);
}

/* ---- start ---- */

static char *log_tail(const char *logpath)
{
    size_t len = 0;
    char *text = fs_read_file(logpath, &len);
    if (!text)
        return xstrdup("");
    size_t keep = 300;
    char *tail = xstrdup(len > keep ? text + len - keep : text);
    free(text);
    for (char *p = tail; *p; p++)
        if (*p == '\n')
            *p = ' ';
    return tail;
}

int engine__wait_ready(const char *sockdir, int port, pid_t child, int timeout_ms, pf_err *e)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    const char *keys[] = {"host", "port", "user", "dbname", "connect_timeout", NULL};
    const char *vals[] = {sockdir, portstr, PGFLEET_ADMIN_ROLE, "postgres", "2", NULL};
    int64_t deadline = util_now_ms() + timeout_ms;
    for (;;) {
        if (PQpingParams(keys, vals, 0) == PQPING_OK)
            return 0;
        if (child > 0 && proc_reap(child))
            return err_internal(e, "server exited during start");
        if (util_now_ms() >= deadline)
            return err_set(e, 500, "Timeout", NULL, "server not ready after %d ms", timeout_ms);
        struct timespec ts = {0, READY_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int engine__launch(engine *en, const char *label, const char *datadir, const char *sockdir,
                   const char *logpath, int port, int timeout_ms, pid_t *pid_out, pf_err *e)
{
    char *postgres = xasprintf("%s/postgres", en->bindir);
    const char *argv[] = {postgres, "-D", datadir, NULL};
    proc_opts o = {
        .argv = argv,
        .user = &en->user,
        .cwd = datadir,
        .output_path = logpath,
        .new_session = true,
    };
    int ret = -1;
    int64_t t0 = util_now_ms();
    pid_t pid = proc_start(&o, e);
    if (pid < 0)
        goto out;
    if (engine__wait_ready(sockdir, port, pid, timeout_ms, e) < 0) {
        char *tail = log_tail(logpath);
        bool busy = strstr(tail, "Address already in use") != NULL;
        if (!proc_reap(pid))
            engine__terminate(pid, SIGQUIT, 2000);
        if (busy) {
            err_set(e, 500, "PortBusy", "port", "port %d is already in use", port);
        } else if (e) {
            char reason[sizeof e->message], code[sizeof e->code];
            memcpy(reason, e->message, sizeof reason);
            memcpy(code, e->code, sizeof code);
            err_set(e, 500, code, NULL, "%.120s; log: %s", reason, tail);
        }
        free(tail);
        goto out;
    }
    log_info("started server for %s pid=%d port=%d in %lld ms", label, (int)pid, port,
             (long long)(util_now_ms() - t0));
    *pid_out = pid;
    ret = 0;
out:
    free(postgres);
    return ret;
}

/* ---- public API ---- */

typedef struct inst_paths {
    char *dir, *data, *data_tmp, *log, *sock;
} inst_paths;

static void paths_make(engine *en, const char *id, inst_paths *p)
{
    p->dir = xasprintf("%s/%s", en->instances_dir, id);
    p->data = xasprintf("%s/data", p->dir);
    p->data_tmp = xasprintf("%s/data.tmp", p->dir);
    p->log = xasprintf("%s/postgres.log", p->dir);
    p->sock = xasprintf("%s/%s", en->run_dir, id);
}

static void paths_free(inst_paths *p)
{
    free(p->dir);
    free(p->data);
    free(p->data_tmp);
    free(p->log);
    free(p->sock);
}

static bool data_complete(const char *data)
{
    char *v = xasprintf("%s/PG_VERSION", data);
    bool ok = fs_exists(v);
    free(v);
    return ok;
}

static int sync_dir(const char *path, bool whole_fs, pf_err *e)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return err_internal(e, "open %s: %s", path, strerror(errno));
    int rc = whole_fs ? syncfs(fd) : fsync(fd);
    int en = errno;
    close(fd);
    if (rc < 0)
        return err_internal(e, "sync %s: %s", path, strerror(en));
    return 0;
}

/* mkdir -p, then make sure the directory is the user's and 0700 even if it existed */
static int own_dir(engine *en, const char *path, pf_err *e)
{
    if (fs_mkdirs(path, 0700, &en->user, e) < 0)
        return -1;
    if (chmod(path, 0700) < 0 ||
        (en->user.switch_user && chown(path, en->user.uid, en->user.gid) < 0))
        return err_internal(e, "chown %s: %s", path, strerror(errno));
    return 0;
}

static int check_port(int port, pf_err *e)
{
    if (port < 1 || port > 65535)
        return err_set(e, 400, "ValidationError", "port", "port %d out of range", port);
    return 0;
}

/* Moves a ready spare copy to dst. False if there is none (or all were taken). */
static bool take_spare(engine *en, const char *dst)
{
    DIR *d = opendir(en->spare_dir);
    if (!d)
        return false;
    bool got = false;
    struct dirent *de;
    while (!got && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "ready-", 6) != 0)
            continue;
        char *src = xasprintf("%s/%s", en->spare_dir, de->d_name);
        /* rename is the claim: a concurrent taker gets ENOENT and tries the next */
        got = rename(src, dst) == 0;
        free(src);
    }
    closedir(d);
    return got;
}

int engine_spares_fill(engine *en, int want, pf_err *e)
{
    int made = 0, have = 0;
    DIR *d = opendir(en->spare_dir);
    if (!d)
        return err_internal(e, "while making spares: open %s: %s", en->spare_dir, strerror(errno));
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, "ready-", 6) == 0)
            have++;
    closedir(d);
    while (have + made < want) {
        char rnd[17];
        util_secret(rnd, 16);
        char *tmp = xasprintf("%s/tmp-%s", en->spare_dir, rnd);
        char *ready = xasprintf("%s/ready-%s", en->spare_dir, rnd);
        int rc = fs_copy_tree(en->golden_dir, tmp, &en->user, e);
        if (rc == 0)
            rc = sync_dir(tmp, true, e);
        if (rc == 0 && rename(tmp, ready) < 0)
            rc = err_internal(e, "rename %s: %s", tmp, strerror(errno));
        if (rc == 0)
            rc = sync_dir(en->spare_dir, false, e);
        if (rc < 0)
            fs_remove_tree(tmp, NULL);
        free(tmp);
        free(ready);
        if (rc < 0) {
            err_prefix(e, "while making spares: ");
            return -1;
        }
        made++;
    }
    return made;
}

int engine_instance_create(engine *en, const char *db_id, int port, pf_err *e)
{
    if (check_id(db_id, e) < 0 || check_port(port, e) < 0)
        return -1;
    int ret = -1;
    inst_paths p;
    paths_make(en, db_id, &p);
    int64_t t0 = util_now_ms();
    if (own_dir(en, p.dir, e) < 0 || own_dir(en, p.sock, e) < 0)
        goto out;
    if (!data_complete(p.data)) {
        if (fs_remove_tree(p.data, e) < 0 || fs_remove_tree(p.data_tmp, e) < 0)
            goto out;
        bool spare = take_spare(en, p.data_tmp);
        if (!spare && fs_copy_tree(en->golden_dir, p.data_tmp, &en->user, e) < 0)
            goto out;
        int64_t t_copy = util_now_ms();
        if (engine__write_conf(en, p.data_tmp, p.sock, en->listen, port, e) < 0)
            goto out;
        /* the copy must be on disk before it is called complete */
        int64_t t_conf = util_now_ms();
        /* a spare was synced when it was made; the conf files were fsynced when written */
        if (!spare && sync_dir(p.data_tmp, true, e) < 0)
            goto out;
        log_debug("create %s: %s %lld ms, conf %lld ms, sync %lld ms", db_id,
                  spare ? "spare" : "copy", (long long)(t_copy - t0), (long long)(t_conf - t_copy),
                  (long long)(util_now_ms() - t_conf));
        if (rename(p.data_tmp, p.data) < 0) {
            err_internal(e, "rename %s: %s", p.data_tmp, strerror(errno));
            goto out;
        }
        if (sync_dir(p.dir, false, e) < 0)
            goto out;
        log_info("created instance %s port=%d in %lld ms", db_id, port,
                 (long long)(util_now_ms() - t0));
    } else if (engine__write_conf(en, p.data, p.sock, en->listen, port, e) < 0) {
        goto out;
    }
    ret = 0;
out:
    if (ret < 0) {
        err_prefix(e, "while creating %s: ", db_id);
        log_warn("creating instance %s failed: %s", db_id, e ? e->message : "");
    }
    paths_free(&p);
    return ret;
}

/* Removes postmaster.pid and socket lock files left by a server that is gone. */
static void remove_stale(const inst_paths *p)
{
    char *pidfile = xasprintf("%s/postmaster.pid", p->data);
    unlink(pidfile);
    free(pidfile);
    DIR *d = opendir(p->sock);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, ".s.PGSQL.", 9) == 0) {
            char *f = xasprintf("%s/%s", p->sock, de->d_name);
            unlink(f);
            free(f);
        }
    }
    closedir(d);
}

int engine_instance_start(engine *en, const char *db_id, int port, int timeout_ms, pf_err *e)
{
    if (check_id(db_id, e) < 0 || check_port(port, e) < 0)
        return -1;
    int ret = -1;
    inst_paths p;
    paths_make(en, db_id, &p);
    if (!data_complete(p.data)) {
        err_set(e, 404, "NotFound", NULL, "no data directory");
        goto out;
    }
    if (engine_restore_overwriting(en, db_id)) {
        err_set(e, 409, "RestoreUnfinished", NULL,
                "the data of %s is partly restored; restore it from a backup", db_id);
        goto out;
    }
    if (strlen(p.sock) + sizeof "/.s.PGSQL.65535.lock" >
        sizeof(((struct sockaddr_un *)0)->sun_path)) {
        err_internal(e, "socket path %s is too long; use a shorter home", p.sock);
        goto out;
    }
    pid_t pid = engine__live_postmaster(en, p.data);
    if (pid > 0) {
        int run_port = port;
        engine__read_pidfile(p.data, &pid, &run_port);
        if (run_port <= 0)
            run_port = port;
        if (run_port != port)
            log_warn("instance %s runs on port %d, not %d, until it restarts", db_id, run_port,
                     port);
        engine__track(en, db_id, pid, false);
        if (engine__wait_ready(p.sock, run_port, 0, timeout_ms, e) < 0)
            goto out;
        /* a reload: TLS files remade at this start (a new --public-host or given files)
         * reach a server that outlived the last pgfleet */
        if (kill(pid, SIGHUP) != 0)
            log_warn("cannot reload the server of %s pid=%d: %s", db_id, (int)pid, strerror(errno));
        log_info("adopted running server for %s pid=%d", db_id, (int)pid);
        ret = 0;
        goto out;
    }
    pid_t old = engine__tracked(en, db_id);
    if (old > 0 && !proc_reap(old)) {
        /* our child, still starting (no pid file yet) */
        if (engine__wait_ready(p.sock, port, old, timeout_ms, e) < 0)
            goto out;
        ret = 0;
        goto out;
    }
    remove_stale(&p);
    if (own_dir(en, p.dir, e) < 0 || own_dir(en, p.sock, e) < 0)
        goto out;
    if (engine__write_conf(en, p.data, p.sock, en->listen, port, e) < 0)
        goto out;
    if (util_port_busy(port)) {
        err_set(e, 500, "PortBusy", "port", "port %d is already in use", port);
        goto out;
    }
    if (engine__launch(en, db_id, p.data, p.sock, p.log, port, timeout_ms, &pid, e) < 0)
        goto out;
    engine__track(en, db_id, pid, true);
    ret = 0;
out:
    if (ret < 0) {
        err_prefix(e, "while starting %s: ", db_id);
        log_warn("starting instance %s failed: %s", db_id, e ? e->message : "");
    }
    paths_free(&p);
    return ret;
}

static int stop_with(engine *en, const char *db_id, int sig, int wait_ms, pf_err *e)
{
    int ret = -1;
    inst_paths p;
    paths_make(en, db_id, &p);
    pid_t pid = engine__live_postmaster(en, p.data);
    if (pid <= 0) {
        pid_t t = engine__tracked(en, db_id);
        if (t > 0 && !proc_reap(t))
            pid = t;
    }
    if (pid > 0) {
        int64_t t0 = util_now_ms();
        if (!engine__terminate(pid, sig, wait_ms)) {
            err_internal(e, "server pid %d does not exit", (int)pid);
            goto out;
        }
        log_info("stopped server for %s pid=%d in %lld ms", db_id, (int)pid,
                 (long long)(util_now_ms() - t0));
    }
    engine__untrack(en, db_id);
    ret = 0;
out:
    paths_free(&p);
    return ret;
}

int engine_instance_stop(engine *en, const char *db_id, pf_err *e)
{
    if (check_id(db_id, e) < 0)
        return -1;
    if (stop_with(en, db_id, SIGINT, STOP_FAST_WAIT_MS, e) < 0) {
        err_prefix(e, "while stopping %s: ", db_id);
        log_warn("stopping instance %s failed: %s", db_id, e ? e->message : "");
        return -1;
    }
    return 0;
}

int engine_instance_destroy(engine *en, const char *db_id, pf_err *e)
{
    if (check_id(db_id, e) < 0)
        return -1;
    int ret = -1;
    inst_paths p;
    paths_make(en, db_id, &p);
    if (stop_with(en, db_id, SIGQUIT, STOP_QUIT_WAIT_MS, e) < 0)
        goto out;
    if (fs_remove_tree(p.dir, e) < 0 || fs_remove_tree(p.sock, e) < 0)
        goto out;
    log_info("destroyed instance %s", db_id);
    ret = 0;
out:
    if (ret < 0) {
        err_prefix(e, "while destroying %s: ", db_id);
        log_warn("destroying instance %s failed: %s", db_id, e ? e->message : "");
    }
    paths_free(&p);
    return ret;
}

bool engine_instance_running(engine *en, const char *db_id)
{
    if (!engine__valid_id(db_id))
        return false;
    inst_paths p;
    paths_make(en, db_id, &p);
    bool up = engine__live_postmaster(en, p.data) > 0;
    if (!up) {
        pid_t t = engine__tracked(en, db_id);
        up = t > 0 && !proc_reap(t);
    }
    paths_free(&p);
    return up;
}

bool engine_instance_exists(engine *en, const char *db_id)
{
    if (!engine__valid_id(db_id))
        return false;
    inst_paths p;
    paths_make(en, db_id, &p);
    bool ok = data_complete(p.data);
    paths_free(&p);
    return ok;
}

int engine_instance_list(engine *en, char ***ids, size_t *n, pf_err *e)
{
    *ids = NULL;
    *n = 0;
    DIR *d = opendir(en->instances_dir);
    if (!d)
        return err_internal(e, "while listing instances: open %s: %s", en->instances_dir,
                            strerror(errno));
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!engine__valid_id(de->d_name))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nv = xcalloc(cap, sizeof *nv);
            if (*n)
                memcpy(nv, *ids, *n * sizeof *nv);
            free(*ids);
            *ids = nv;
        }
        (*ids)[(*n)++] = xstrdup(de->d_name);
    }
    closedir(d);
    return 0;
}

void engine_free_ids(char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

void engine_stop_all(engine *en)
{
    pthread_mutex_lock(&en->mu);
    size_t n = en->nprocs;
    engine_proc *snap = n ? xcalloc(n, sizeof *snap) : NULL;
    if (n)
        memcpy(snap, en->procs, n * sizeof *snap);
    pthread_mutex_unlock(&en->mu);

    for (size_t i = 0; i < n; i++)
        if (!proc_reap(snap[i].pid))
            kill(snap[i].pid, SIGINT);
    static const int sigs[] = {SIGINT, SIGQUIT, SIGKILL};
    static const int waits[] = {STOP_FAST_WAIT_MS, STOP_QUIT_WAIT_MS, STOP_QUIT_WAIT_MS};
    for (size_t s = 0; s < 3; s++) {
        if (s > 0)
            for (size_t i = 0; i < n; i++)
                if (snap[i].pid > 0 && !proc_reap(snap[i].pid)) {
                    log_warn("server for %s pid=%d ignored shutdown, sending signal %d", snap[i].id,
                             (int)snap[i].pid, sigs[s]);
                    kill(snap[i].pid, sigs[s]);
                }
        int64_t deadline = util_now_ms() + waits[s];
        for (;;) {
            size_t alive = 0;
            for (size_t i = 0; i < n; i++) {
                if (snap[i].pid > 0 && proc_reap(snap[i].pid)) {
                    log_info("stopped server for %s pid=%d", snap[i].id, (int)snap[i].pid);
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
