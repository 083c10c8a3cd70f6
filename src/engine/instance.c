/* instance: the life of one PostgreSQL server per database: copy from golden, start or
 * adopt (a started spare, spares.c, is adopted), stop, destroy. The processes themselves are
 * postmaster.c's; the configuration conf.c's, with the archive settings of backup.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "engine/engine_int.h"
#include "util/log.h"
#include "util/util.h"

#define ASLEEP_MARK "asleep"

/* ---- an instance's paths and directories ---- */

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

int engine__own_dir(engine *en, const char *path, pf_err *e)
{
    if (fs_mkdirs(path, 0700, &en->user, e) < 0)
        return -1;
    if (chmod(path, 0700) < 0 ||
        (en->user.switch_user && chown(path, en->user.uid, en->user.gid) < 0))
        return err_internal(e, "chown %s: %s", path, strerror(errno));
    return 0;
}

/* postgresql.conf and pg_hba.conf of an instance's data directory (datadir: data or
 * data.tmp), archiving to its stanza */
static int write_conf(engine *en, const char *datadir, const char *sock, int port, pf_err *e)
{
    char *archive = engine__archive_conf(en, datadir);
    int rc = engine__write_conf(en, datadir, sock, en->listen, engine__server_port(en, port),
                                archive, e);
    free(archive);
    return rc;
}

static int check_port(int port, pf_err *e)
{
    if (port < 1 || port > 65535)
        return err_kind(e, ERR_INVALID, NULL, "port %d out of range", port);
    return 0;
}

/* ---- create, start, stop, destroy ---- */

static int stop_with(engine *en, const char *db_id, int sig, int wait_ms, pf_err *e);

/* The first listen address in datadir/postmaster.pid (line 6; "" when the server has no TCP
 * listener), or false when there is no such line. */
static bool pidfile_listen(const char *datadir, char *out, size_t n)
{
    char *path = xasprintf("%s/postmaster.pid", datadir);
    size_t len = 0;
    char *text = fs_read_file(path, &len);
    free(path);
    bool ok = false;
    const char *line = text;
    for (int i = 1; line && i < 6; i++) {
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    if (line) {
        size_t l = strcspn(line, "\n");
        if (line[l] == '\n') {
            snprintf(out, n, "%.*s", (int)l, line);
            ok = true;
        }
    }
    free(text);
    return ok;
}

/* Whether a running server must restart to serve `port` as configured: it runs on another
 * port than engine__server_port (a server started by a version that named its socket after
 * the public port: it moves onto ENGINE_SOCKET_PORT), or listens on TCP when it should not
 * or the other way round (a spare, on its socket only, taken by a server that listens on
 * TCP). Behind the data path a spare's server is taken as it runs. */
static bool listener_differs(engine *en, const char *datadir, int run_port, int port)
{
    char addr[256];
    if (run_port != engine__server_port(en, port))
        return true;
    if (!pidfile_listen(datadir, addr, sizeof addr))
        return false;
    return (addr[0] == '\0') != (en->listen[0] == '\0');
}

int engine_instance_create(engine *en, const char *db_id, int port, pf_err *e)
{
    if (engine__check_id(db_id, e) < 0 || check_port(port, e) < 0)
        return -1;
    int ret = -1;
    inst_paths p;
    paths_make(en, db_id, &p);
    int64_t t0 = util_now_ms();
    if (engine__own_dir(en, p.dir, e) < 0 || engine__own_dir(en, p.sock, e) < 0)
        goto out;
    if (!data_complete(p.data)) {
        if (fs_remove_tree(p.data, e) < 0 || fs_remove_tree(p.data_tmp, e) < 0)
            goto out;
        if (fs_copy_tree(en->golden_dir, p.data_tmp, &en->user, e) < 0)
            goto out;
        int64_t t_copy = util_now_ms();
        if (write_conf(en, p.data_tmp, p.sock, port, e) < 0)
            goto out;
        /* the copy must be on disk before it is called complete */
        int64_t t_conf = util_now_ms();
        if (fs_sync_fs(p.data_tmp, e) < 0)
            goto out;
        log_db_debug(db_id, "create: copy %lld ms, conf %lld ms, sync %lld ms",
                     (long long)(t_copy - t0), (long long)(t_conf - t_copy),
                     (long long)(util_now_ms() - t_conf));
        if (rename(p.data_tmp, p.data) < 0) {
            err_internal(e, "rename %s: %s", p.data_tmp, strerror(errno));
            goto out;
        }
        if (fs_fsync_dir(p.dir, e) < 0)
            goto out;
        log_db_info(db_id, "created the instance port=%d in %lld ms", port,
                    (long long)(util_now_ms() - t0));
    } else if (write_conf(en, p.data, p.sock, port, e) < 0) {
        goto out;
    }
    ret = 0;
out:
    if (ret < 0) {
        engine__disk_full_is_transient(e);
        err_prefix(e, "while creating %s: ", db_id);
        log_db_warn(db_id, "creating the instance failed: %s", e ? e->message : "");
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
    if (engine__check_id(db_id, e) < 0 || check_port(port, e) < 0)
        return -1;
    int ret = -1;
    inst_paths p;
    paths_make(en, db_id, &p);
    if (!data_complete(p.data)) {
        err_kind(e, ERR_NOT_FOUND, NULL, "no data directory");
        goto out;
    }
    if (engine_restore_overwriting(en, db_id)) {
        err_kind(e, ERR_CONFLICT, "RestoreUnfinished",
                 "the data of %s is partly restored; restore it from a backup", db_id);
        goto out;
    }
    if (strlen(p.sock) + sizeof "/.s.PGSQL.65535.lock" >
        sizeof(((struct sockaddr_un *)0)->sun_path)) {
        err_kind(e, ERR_PERMANENT, NULL, "socket path %s is too long; use a shorter home", p.sock);
        goto out;
    }
    int sport = engine__server_port(en, port);
    pid_t pid = engine__live_postmaster(p.data);
    if (pid > 0) {
        int run_port = sport;
        engine__read_pidfile(p.data, &pid, &run_port);
        if (run_port <= 0)
            run_port = sport;
        /* a server started by an older pgfleet, without the preloaded libraries of this
         * one (pgfleet_limits, the CREATE DATABASE limit): a fast restart loads them */
        bool stale = !engine__conf_preloads_current(p.data);
        if (stale || listener_differs(en, p.data, run_port, port)) {
            if (stale)
                log_db_info(db_id,
                            "the server pid=%d lacks pgfleet's preloaded libraries: "
                            "restarting it",
                            (int)pid);
            else
                log_db_info(db_id, "the server pid=%d runs on port %d, not %d: restarting it",
                            (int)pid, run_port, sport);
            if (stop_with(en, db_id, SIGINT, ENGINE_STOP_FAST_MS, e) < 0)
                goto out;
            goto launch;
        }
        /* a server this process started (a spare being taken) runs with this start's
         * files already */
        bool ours = engine__started_here(en, db_id, pid);
        engine__track(en, db_id, pid, false);
        if (engine__wait_ready(p.data, p.sock, run_port, 0, timeout_ms, e) < 0)
            goto out;
        /* a reload: this pgfleet's settings (e.g. --databases-per-server) and TLS files
         * remade at this start (a new --public-host or given files) reach a server that
         * outlived the last pgfleet; one this process started has them already */
        if (!ours && write_conf(en, p.data, p.sock, port, e) < 0)
            goto out;
        if (!ours && kill(pid, SIGHUP) != 0)
            log_db_warn(db_id, "cannot reload the server pid=%d: %s", (int)pid, strerror(errno));
        log_db_info(db_id, "adopted the running server pid=%d", (int)pid);
        ret = 0;
        goto out;
    }
    pid_t old = engine__tracked(en, db_id);
    if (old > 0 && !proc_reap(old)) {
        /* our child, still starting (no pid file yet) */
        if (engine__wait_ready(p.data, p.sock, sport, old, timeout_ms, e) < 0)
            goto out;
        ret = 0;
        goto out;
    }
launch:
    remove_stale(&p);
    if (engine__own_dir(en, p.dir, e) < 0 || engine__own_dir(en, p.sock, e) < 0)
        goto out;
    if (write_conf(en, p.data, p.sock, port, e) < 0)
        goto out;
    /* with the data path, the server has no TCP listener: the port only names its socket */
    if (en->listen[0] && util_port_busy(port)) {
        err_kind(e, ERR_TRANSIENT, "PortBusy", "port %d is already in use", port);
        goto out;
    }
    if (engine__launch(en, db_id, "server", p.data, p.sock, p.log, sport, timeout_ms, &pid, e) < 0)
        goto out;
    engine__track(en, db_id, pid, true);
    ret = 0;
out:
    if (ret == 0) {
        /* running: awake (also for a server adopted after a kill in the middle of a wake) */
        char *mark = xasprintf("%s/" ASLEEP_MARK, p.dir);
        unlink(mark);
        free(mark);
    }
    if (ret < 0) {
        engine__disk_full_is_transient(e);
        err_prefix(e, "while starting %s: ", db_id);
        log_db_warn(db_id, "starting the server failed: %s", e ? e->message : "");
    }
    paths_free(&p);
    return ret;
}

static int stop_with(engine *en, const char *db_id, int sig, int wait_ms, pf_err *e)
{
    int ret = -1;
    inst_paths p;
    paths_make(en, db_id, &p);
    engine__admin_forget(en, db_id); /* a spare's kept session ends with its server */
    pid_t pid = engine__live_postmaster(p.data);
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
        log_db_info(db_id, "stopped the server pid=%d in %lld ms", (int)pid,
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
    if (engine__check_id(db_id, e) < 0)
        return -1;
    if (stop_with(en, db_id, SIGINT, ENGINE_STOP_FAST_MS, e) < 0) {
        err_prefix(e, "while stopping %s: ", db_id);
        log_db_warn(db_id, "stopping the server failed: %s", e ? e->message : "");
        return -1;
    }
    return 0;
}

int engine_instance_destroy(engine *en, const char *db_id, pf_err *e)
{
    if (engine__check_id(db_id, e) < 0)
        return -1;
    int ret = -1;
    inst_paths p;
    paths_make(en, db_id, &p);
    if (stop_with(en, db_id, SIGQUIT, ENGINE_STOP_QUIT_MS, e) < 0)
        goto out;
    if (fs_remove_tree(p.dir, e) < 0 || fs_remove_tree(p.sock, e) < 0)
        goto out;
    log_db_info(db_id, "destroyed the instance");
    ret = 0;
out:
    if (ret < 0) {
        err_prefix(e, "while destroying %s: ", db_id);
        log_db_warn(db_id, "destroying the instance failed: %s", e ? e->message : "");
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
    bool up = engine__live_postmaster(p.data) > 0;
    if (!up) {
        pid_t t = engine__tracked(en, db_id);
        up = t > 0 && !proc_reap(t);
    }
    paths_free(&p);
    return up;
}

bool engine_instance_adopt(engine *en, const char *db_id)
{
    if (!engine__valid_id(db_id))
        return false;
    inst_paths p;
    paths_make(en, db_id, &p);
    pid_t pid = engine__live_postmaster(p.data);
    if (pid > 0 && engine__tracked(en, db_id) != pid)
        engine__track(en, db_id, pid, false);
    paths_free(&p);
    return pid > 0;
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
        char *mark = xasprintf("%s/%s/" ENGINE_SPARE_MARK, en->instances_dir, de->d_name);
        bool spare = fs_exists(mark); /* no database's yet (spares.c) */
        free(mark);
        if (spare)
            continue;
        util_grow((void **)ids, &cap, *n + 1, sizeof **ids);
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

bool engine_restore_overwriting(engine *en, const char *db_id)
{
    if (!engine__valid_id(db_id))
        return false;
    char *mark = xasprintf("%s/%s/" ENGINE_OVERWRITING_MARK, en->instances_dir, db_id);
    bool yes = fs_exists(mark);
    free(mark);
    return yes;
}

/* ---- sleep ---- */

void engine_instance_endpoint(engine *en, const char *db_id, int port, char *sock, size_t nsock,
                              char *pidfile, size_t npid)
{
    snprintf(sock, nsock, "%s/%s/.s.PGSQL.%d", en->run_dir, db_id, engine__server_port(en, port));
    snprintf(pidfile, npid, "%s/%s/data/postmaster.pid", en->instances_dir, db_id);
}

void engine_tls_files(engine *en, const char **cert, const char **key, bool *loopback_optional)
{
    *cert = en->tls_cert;
    *key = en->tls_key;
    *loopback_optional = en->tls_loopback_optional;
}

int engine_instance_suspend(engine *en, const char *db_id, int port, pf_err *e)
{
    if (engine__check_id(db_id, e) < 0 || check_port(port, e) < 0)
        return -1;
    int ret = -1;
    inst_paths p;
    paths_make(en, db_id, &p);
    char *mark_path = xasprintf("%s/" ASLEEP_MARK, p.dir);
    int64_t t0 = util_now_ms();
    char mark[32] = "";
    PGconn *c = NULL;
    /* the counter of writes it sleeps with: a backup is due later only if it differs */
    if (engine_write_mark(en, db_id, mark, e) < 0)
        goto out;
    /* the last WAL segment reaches the archive, so a point-in-time restore reaches now */
    if (engine_backup_flush_wal(en, db_id, port, e) < 0)
        goto out;
    if (engine__admin_connect_running(en, db_id, &c, e) < 0 ||
        engine__exec(c, "CHECKPOINT", 0, NULL, NULL, e) < 0)
        goto out;
    PQfinish(c);
    c = NULL;
    if (stop_with(en, db_id, SIGINT, ENGINE_STOP_FAST_MS, e) < 0)
        goto out;
    if (fs_write_atomic(mark_path, mark, strlen(mark), 0600, NULL, e) < 0 ||
        fs_fsync_dir(p.dir, e) < 0)
        goto out;
    log_db_info(db_id, "asleep: WAL archived, checkpointed and stopped in %lld ms",
                (long long)(util_now_ms() - t0));
    ret = 0;
out:
    PQfinish(c);
    if (ret < 0)
        err_prefix(e, "while putting %s to sleep: ", db_id);
    free(mark_path);
    paths_free(&p);
    return ret;
}

bool engine_instance_asleep(engine *en, const char *db_id, char *mark)
{
    if (!engine__valid_id(db_id))
        return false;
    inst_paths p;
    paths_make(en, db_id, &p);
    char *mark_path = xasprintf("%s/" ASLEEP_MARK, p.dir);
    char *text = fs_read_file(mark_path, NULL);
    bool asleep = text && engine__live_postmaster(p.data) <= 0;
    if (mark)
        snprintf(mark, 32, "%s", text ? text : "");
    free(text);
    free(mark_path);
    paths_free(&p);
    return asleep;
}
