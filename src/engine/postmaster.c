/* postmaster: PostgreSQL server processes. Starting one and waiting until it answers,
 * finding a live one from its postmaster.pid, stopping one, and the table of servers this
 * engine started or adopted. Calls no other file of the engine. */
#include <errno.h>
#include <libpq-fe.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine_int.h"
#include "util/log.h"
#include "util/util.h"

#define READY_POLL_MS 2

/* ---- the table of started/adopted servers ---- */

void engine__track(engine *en, const char *id, pid_t pid, bool child)
{
    pthread_mutex_lock(&en->mu);
    engine_proc *slot = NULL;
    for (size_t i = 0; i < en->nprocs; i++)
        if (!strcmp(en->procs[i].id, id))
            slot = &en->procs[i];
    if (!slot) {
        util_grow((void **)&en->procs, &en->capprocs, en->nprocs + 1, sizeof *en->procs);
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

bool engine__started_here(engine *en, const char *id, pid_t pid)
{
    bool child = false;
    pthread_mutex_lock(&en->mu);
    for (size_t i = 0; i < en->nprocs; i++)
        if (!strcmp(en->procs[i].id, id))
            child = en->procs[i].pid == pid && en->procs[i].child;
    pthread_mutex_unlock(&en->mu);
    return child;
}

engine_proc *engine__tracked_all(engine *en, size_t *n)
{
    pthread_mutex_lock(&en->mu);
    *n = en->nprocs;
    engine_proc *snap = *n ? xcalloc(*n, sizeof *snap) : NULL;
    if (*n)
        memcpy(snap, en->procs, *n * sizeof *snap);
    pthread_mutex_unlock(&en->mu);
    return snap;
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

pid_t engine__live_postmaster(const char *datadir)
{
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
    if (first_sig != SIGQUIT && proc_signal_wait(pid, SIGQUIT, ENGINE_STOP_QUIT_MS))
        return true;
    return proc_signal_wait(pid, SIGKILL, ENGINE_STOP_QUIT_MS);
}

int engine__stop_temporary(PGconn **c, pid_t *pid, int wait_ms, const char *what, pf_err *e)
{
    PQfinish(*c);
    *c = NULL;
    if (!engine__terminate(*pid, SIGINT, wait_ms))
        return err_internal(e, "%s pid %d does not stop", what, (int)*pid);
    *pid = -1;
    return 0;
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

/* The status line of datadir/postmaster.pid (line 8: "starting", "stopping", "ready" or
 * "standby") into st, when line 1 is pid (any pid when pid <= 0). */
static bool pidfile_status(const char *datadir, pid_t pid, char *st, size_t n)
{
    char *path = xasprintf("%s/postmaster.pid", datadir);
    char *text = fs_read_file(path, NULL);
    free(path);
    bool ok = false;
    long v = 0;
    char *line = text;
    size_t l = line ? strcspn(line, "\n") : 0;
    if (line && line[l] == '\n') {
        line[l] = '\0';
        ok = util_parse_int(line, 1, INT_MAX, &v) && (pid <= 0 || v == pid);
        line += l + 1;
    }
    for (int i = 2; ok && i < 8; i++) {
        line = strchr(line, '\n');
        ok = line != NULL;
        if (ok)
            line++;
    }
    if (ok)
        snprintf(st, n, "%.*s", (int)strcspn(line, " \n"), line);
    free(text);
    return ok;
}

int engine__wait_ready(const char *datadir, const char *sockdir, int port, pid_t child,
                       int timeout_ms, pf_err *e)
{
    /* what pg_ctl waits on: the postmaster writes "ready" (or "standby", a recovery server
     * that accepts read-only connections) into its pid file once it accepts connections;
     * a read every READY_POLL_MS costs less than a connection attempt */
    char *sock = xasprintf("%s/.s.PGSQL.%d", sockdir, port);
    int64_t deadline = util_now_ms() + timeout_ms;
    int ret = -1;
    for (;;) {
        char st[16] = "";
        if (pidfile_status(datadir, child, st, sizeof st) &&
            (!strcmp(st, "ready") || !strcmp(st, "standby")) && fs_exists(sock)) {
            ret = 0;
            break;
        }
        if (child > 0 && proc_reap(child)) {
            err_internal(e, "server exited during start");
            break;
        }
        if (util_now_ms() >= deadline) {
            err_kind(e, ERR_TRANSIENT, "Timeout", "server not ready after %d ms", timeout_ms);
            break;
        }
        struct timespec ts = {0, READY_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    free(sock);
    return ret;
}

int engine__launch(engine *en, const char *db_id, const char *what, const char *datadir,
                   const char *sockdir, const char *logpath, int port, int timeout_ms,
                   pid_t *pid_out, pf_err *e)
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
    if (engine__wait_ready(datadir, sockdir, port, pid, timeout_ms, e) < 0) {
        char *tail = log_tail(logpath);
        bool busy = strstr(tail, "Address already in use") != NULL;
        if (!proc_reap(pid))
            engine__terminate(pid, SIGQUIT, 2000);
        if (busy) {
            err_kind(e, ERR_TRANSIENT, "PortBusy", "port %d is already in use", port);
        } else if (e) {
            char reason[sizeof e->message], code[sizeof e->code];
            memcpy(reason, e->message, sizeof reason);
            memcpy(code, e->code, sizeof code);
            err_kind(e, e->kind, code, "%.120s; log: %s", reason, tail);
            engine__disk_full_is_transient(e);
        }
        free(tail);
        goto out;
    }
    log_db_info(db_id, "started the %s pid=%d port=%d in %lld ms", what, (int)pid, port,
                (long long)(util_now_ms() - t0));
    *pid_out = pid;
    ret = 0;
out:
    free(postgres);
    return ret;
}
