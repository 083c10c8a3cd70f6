/* datapath: serve's side of the data path process (src/datapath). It holds every
 * database's public listening socket from the moment its port is allocated until its delete
 * (ops_port_hold, ops_port_release) and hands a copy of each to the data path over its
 * control socket (SCM_RIGHTS); it starts the data path, or adopts the one that outlived a
 * crash of serve (its control socket answers), and starts it again when it dies, giving it
 * the sockets back. A reader thread takes the data path's messages: wake requests (sleep.c
 * runs them), counts and the answers to SLEEP. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ops/ops_int.h"
#include "util/ctlmsg.h"
#include "util/log.h"

#define DP_START_WAIT_MS 5000

/* The DB message of one database (mu held). */
static void send_db(ops *o, ops_dp_db *b)
{
    char sock[400], pid[400], msg[CTLMSG_MAX];
    engine_instance_endpoint(o->en, b->inst, b->port, sock, sizeof sock, pid, sizeof pid);
    snprintf(msg, sizeof msg, "DB %s %d %s %s %s", b->id, b->port, sock, pid,
             b->asleep ? "asleep" : "awake");
    if (ops__dp_send(o->dp, msg, b->fd) < 0)
        log_db_warn(b->id, "the data path did not get the port: %s", strerror(errno));
}

/* Binds port on every address (IPv6 and IPv4 where the host has both), listening. */
static int bind_port(int port, pf_err *e)
{
    int one = 1, zero = 0;
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        struct sockaddr_in6 sa = {.sin6_family = AF_INET6,
                                  .sin6_port = htons((uint16_t)port),
                                  .sin6_addr = IN6ADDR_ANY_INIT};
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(fd, 1024) == 0)
            return fd;
        int err = errno;
        close(fd);
        if (err == EADDRINUSE)
            return err_kind(e, ERR_TRANSIENT, "PortBusy", "port %d is already in use", port);
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return err_internal(e, "socket: %s", strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 1024) != 0) {
        int err = errno;
        close(fd);
        return err_kind(e, err == EADDRINUSE ? ERR_TRANSIENT : ERR_INTERNAL,
                        err == EADDRINUSE ? "PortBusy" : NULL, "port %d: %s", port, strerror(err));
    }
    return fd;
}

int ops_port_hold(ops *o, const char *db_id, int port, pf_err *e)
{
    ops_dp *d = o ? o->dp : NULL;
    if (!d)
        return 0;
    pthread_mutex_lock(&d->mu);
    ops_dp_db *b = ops__dp_find(d, db_id);
    int ret = 0;
    /* held already (since the create's transaction): the data path gets the endpoint again,
     * now that the provision attached the database's instance (its pid file's path) */
    if (b && b->port == port) {
        ops__inst_of(o, db_id, b->inst);
        send_db(o, b);
        goto out;
    }
    int fd = bind_port(port, e);
    if (fd < 0) {
        ret = -1;
        goto out;
    }
    if (!b) {
        util_grow((void **)&d->dbs, &d->cap, d->n + 1, sizeof *d->dbs);
        b = &d->dbs[d->n++];
        memset(b, 0, sizeof *b);
        snprintf(b->id, sizeof b->id, "%s", db_id);
    } else {
        close(b->fd);
    }
    b->fd = fd;
    b->port = port;
    b->asleep = engine_instance_asleep(o->en, ops__inst_of(o, db_id, b->inst), NULL);
    send_db(o, b);
out:
    pthread_mutex_unlock(&d->mu);
    return ret;
}

void ops_port_release(ops *o, const char *db_id)
{
    ops_dp *d = o ? o->dp : NULL;
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    ops_dp_db *b = ops__dp_find(d, db_id);
    if (b) {
        char msg[128];
        snprintf(msg, sizeof msg, "DROP %s", db_id);
        ops__dp_send(d, msg, -1);
        close(b->fd);
        *b = d->dbs[--d->n];
        log_db_info(db_id, "port released");
    }
    pthread_mutex_unlock(&d->mu);
}

/* ---- the process ---- */

static pid_t peer_pid(int sock)
{
    struct ucred cr;
    socklen_t l = sizeof cr;
    return getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cr, &l) == 0 ? cr.pid : 0;
}

/* The listening sockets a running data path holds (from a serve before this one): ours
 * again, so the ports are not bound twice. Synchronous, before the reader runs. */
static int take_back(ops *o, int s)
{
    ops_dp *d = o->dp;
    struct timeval tv = {.tv_sec = 5}, none = {0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int ret = ops__dp_send(d, "FDS", -1);
    while (ret == 0) {
        char msg[CTLMSG_MAX];
        int fd = -1;
        if (ctlmsg_recv(s, msg, sizeof msg, &fd, false) <= 0) {
            ret = -1;
            break;
        }
        char *save = NULL;
        char *verb = strtok_r(msg, " ", &save), *id = strtok_r(NULL, " ", &save),
             *port = strtok_r(NULL, " ", &save);
        if (verb && !strcmp(verb, "FDS") && id && !strcmp(id, "end"))
            break;
        long pv = 0;
        if (fd < 0 || !verb || strcmp(verb, "FD") || !id || !port ||
            !util_parse_int(port, 1, 65535, &pv)) {
            if (fd >= 0)
                close(fd);
            continue;
        }
        pthread_mutex_lock(&d->mu);
        ops_dp_db *b = ops__dp_find(d, id);
        if (!b) {
            util_grow((void **)&d->dbs, &d->cap, d->n + 1, sizeof *d->dbs);
            b = &d->dbs[d->n++];
            memset(b, 0, sizeof *b);
            snprintf(b->id, sizeof b->id, "%s", id);
            b->fd = fd;
            b->port = (int)pv;
            b->asleep = engine_instance_asleep(o->en, ops__inst_of(o, id, b->inst), NULL);
        } else {
            close(fd);
        }
        pthread_mutex_unlock(&d->mu);
    }
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
    return ret;
}

/* Connects to the running data path, or starts one and connects. */
static int connect_or_start(ops *o, pf_err *e)
{
    ops_dp *d = o->dp;
    int s = ctlmsg_connect(d->ctl_path);
    if (s >= 0) {
        d->pid = peer_pid(s);
        d->child = false;
        log_sub(LOG_INFO, "datapath", "adopted the running data path pid=%d", (int)d->pid);
        goto connected;
    }
    const char *argv[] = {o->cfg.datapath_exe, "datapath", "--home", o->cfg.home, NULL};
    char *logpath = xasprintf("%s/datapath.log", o->cfg.home);
    proc_opts po = {.argv = argv, .output_path = logpath, .new_session = true};
    pid_t pid = proc_start(&po, e);
    free(logpath);
    if (pid < 0)
        return -1;
    int64_t deadline = util_now_ms() + DP_START_WAIT_MS;
    while ((s = ctlmsg_connect(d->ctl_path)) < 0) {
        if (proc_reap(pid))
            return err_internal(e, "the data path exited at start (see %s/datapath.log)",
                                o->cfg.home);
        if (util_now_ms() >= deadline) {
            proc_signal_wait(pid, SIGKILL, 1000);
            return err_internal(e, "the data path did not start in %d ms", DP_START_WAIT_MS);
        }
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    d->pid = pid;
    d->child = true;
    log_sub(LOG_INFO, "datapath", "started the data path pid=%d", (int)pid);
connected:
    pthread_mutex_lock(&d->send_mu);
    d->sock = s;
    pthread_mutex_unlock(&d->send_mu);
    if (take_back(o, s) != 0)
        log_sub(LOG_WARN, "datapath", "the data path did not hand back its ports");
    const char *cert = NULL, *key = NULL;
    bool plain = false;
    engine_tls_files(o->en, &cert, &key, &plain);
    char msg[CTLMSG_MAX];
    snprintf(msg, sizeof msg, "CONFIG cert=%s key=%s loopback_plain=%d cap=%d remote_test=%s",
             cert ? cert : "", key ? key : "", plain ? 1 : 0,
             o->cfg.direct_cap > 0 ? o->cfg.direct_cap : 100,
             o->cfg.remote_test_addr ? o->cfg.remote_test_addr : "");
    ops__dp_send(d, msg, -1);
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->n; i++)
        send_db(o, &d->dbs[i]);
    pthread_mutex_unlock(&d->mu);
    return 0;
}

static void on_message(ops *o, char *msg)
{
    ops_dp *d = o->dp;
    char *save = NULL;
    char *verb = strtok_r(msg, " ", &save), *id = strtok_r(NULL, " ", &save);
    if (!verb || !id)
        return;
    if (!strcmp(verb, "WAKE")) {
        ops__wake_async(o, id);
        return;
    }
    pthread_mutex_lock(&d->mu);
    if (!strcmp(verb, "STATS")) {
        d->stats_gen++;
        pthread_cond_broadcast(&d->cv);
    } else if (!strcmp(verb, "STAT")) {
        ops_dp_db *b = ops__dp_find(d, id);
        char *f[4];
        for (int i = 0; i < 4; i++)
            f[i] = strtok_r(NULL, " ", &save);
        if (b && f[3]) {
            b->direct = (int)strtol(f[0], NULL, 10);
            b->pooled = (int)strtol(f[1], NULL, 10);
            b->held = (int)strtol(f[2], NULL, 10);
            b->idle_ms = strtoll(f[3], NULL, 10);
            b->stat_gen = d->stats_gen + 1;
        }
    } else if (!strcmp(verb, "SLEEP")) {
        ops_dp_db *b = ops__dp_find(d, id);
        char *answer = strtok_r(NULL, " ", &save);
        if (b && answer) {
            b->sleep_answer = !strcmp(answer, "ok") ? 1 : 2;
            pthread_cond_broadcast(&d->cv);
        }
    }
    pthread_mutex_unlock(&d->mu);
}

static void *reader_main(void *arg)
{
    ops *o = arg;
    ops_dp *d = o->dp;
    int backoff_ms = 100;
    for (;;) {
        char msg[CTLMSG_MAX];
        int fd = -1;
        ssize_t n = d->sock >= 0 ? ctlmsg_recv(d->sock, msg, sizeof msg, &fd, false) : -1;
        if (fd >= 0)
            close(fd);
        if (n > 0) {
            backoff_ms = 100;
            on_message(o, msg);
            continue;
        }
        /* ops stops before it detaches (d->stopping): once SIGTERM came, no new data path
         * is started to be left behind */
        if (ops__stopping(o))
            break;
        /* the data path died (or never started): start it again and hand it the ports */
        pthread_mutex_lock(&d->send_mu);
        if (d->sock >= 0)
            close(d->sock);
        d->sock = -1;
        pthread_mutex_unlock(&d->send_mu);
        if (d->pid > 0 && d->child)
            proc_reap(d->pid);
        log_sub(LOG_WARN, "datapath", "the data path is gone; starting it again");
        pf_err e;
        err_clear(&e);
        if (connect_or_start(o, &e) != 0) {
            log_sub(LOG_ERROR, "datapath", "%s", e.message);
            struct timespec ts = {backoff_ms / 1000, (backoff_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
        }
    }
    return NULL;
}

int ops__dp_start(ops *o, pf_err *e)
{
    if (!o->cfg.datapath_exe || !o->cfg.home)
        return 0;
    ops_dp *d = xcalloc(1, sizeof *d);
    pthread_mutex_init(&d->mu, NULL);
    pthread_mutex_init(&d->send_mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->sock = -1;
    d->ctl_path = xasprintf("%s/" CTLMSG_DIR "/ctl", o->cfg.home);
    o->dp = d;
    /* every database's port, before anything starts */
    store_database *dbs = NULL;
    size_t n = 0;
    if (store_database_list_internal(o->st, &dbs, &n, e) != 0)
        return -1;
    if (connect_or_start(o, e) != 0) {
        free(dbs);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        pf_err le;
        if (ops_port_hold(o, dbs[i].id, dbs[i].port, &le) != 0)
            log_db_error(dbs[i].id, "cannot hold port %d: %s", dbs[i].port, le.message);
    }
    free(dbs);
    if (pthread_create(&d->reader, NULL, reader_main, o) != 0)
        abort();
    d->reader_started = true;
    return ops__sleep_start(o, e);
}

int ops__dp_detach(ops *o)
{
    ops_dp *d = o->dp;
    if (!d)
        return 0;
    ops__sleep_stop(o);
    pthread_mutex_lock(&d->mu);
    d->stopping = true;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_mutex_lock(&d->send_mu);
    if (d->sock >= 0)
        shutdown(d->sock, SHUT_RDWR);
    pthread_mutex_unlock(&d->send_mu);
    if (d->reader_started)
        pthread_join(d->reader, NULL);
    if (d->sock >= 0)
        close(d->sock);
    for (size_t i = 0; i < d->n; i++)
        close(d->dbs[i].fd);
    free(d->dbs);
    free(d->ctl_path);
    pthread_mutex_destroy(&d->mu);
    pthread_mutex_destroy(&d->send_mu);
    pthread_cond_destroy(&d->cv);
    int pid = d->pid; /* read after the reader's last restart */
    free(d);
    o->dp = NULL;
    return pid;
}

void ops_datapath_reload(ops *o)
{
    if (o && o->dp && ops__dp_send(o->dp, "RELOAD", -1) != 0)
        log_sub(LOG_WARN, "datapath", "the data path did not get the reload");
}
