/* loop: the data path process. One thread, one epoll set, level-triggered, every socket
 * non-blocking; the connections themselves are conn.c's. Serve is a client of the control
 * socket (run/dp/ctl): it hands over the databases and their listening sockets and reads
 * the wake requests and counts. */
#include <errno.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "datapath/datapath.h"
#include "datapath/dp_int.h"
#include "util/ctlmsg.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/util.h"

/* ---- the control socket ---- */

static void db_drop(dp *d, dpdb *b)
{
    if (b->lfd >= 0) {
        epoll_ctl(d->ep, EPOLL_CTL_DEL, b->lfd, NULL);
        close(b->lfd);
        b->lfd = -1;
    }
    /* held across the closes: the last connection's unref would free b under the loop;
     * dp__db_unref frees it once no connection points at it */
    b->refs++;
    b->gone = true;
    for (conn *c = d->conns, *nx; c; c = nx) {
        nx = c->next;
        if (c->db == b || c->portdb == b)
            dp__conn_close(d, c);
    }
    dp__db_unref(d, b);
}

static void ctl_message(dp *d, char *msg, int fd)
{
    char *save = NULL;
    char *verb = strtok_r(msg, " ", &save);
    char *a1 = strtok_r(NULL, " ", &save);
    if (!verb)
        goto out;
    if (!strcmp(verb, "CONFIG")) {
        for (char *kv = a1; kv; kv = strtok_r(NULL, " ", &save)) {
            long v = 0;
            if (!strncmp(kv, "cert=", 5))
                snprintf(d->cert, sizeof d->cert, "%s", kv + 5);
            else if (!strncmp(kv, "key=", 4))
                snprintf(d->key, sizeof d->key, "%s", kv + 4);
            else if (!strncmp(kv, "loopback_plain=", 15))
                d->tls_loopback_optional = !strcmp(kv + 15, "1");
            else if (!strncmp(kv, "cap=", 4) && util_parse_int(kv + 4, 1, 100000, &v))
                d->cap = (int)v;
            else if (!strncmp(kv, "remote_test=", 12))
                snprintf(d->remote_test, sizeof d->remote_test, "%s", kv + 12);
        }
        if (d->cert[0] && d->key[0])
            dp__tls_load(d);
    } else if (!strcmp(verb, "RELOAD")) {
        dp__tls_load(d);
    } else if (!strcmp(verb, "DB") && a1) {
        /* DB id port socketpath pidfile awake|asleep, with the listening socket */
        char *port = strtok_r(NULL, " ", &save), *sock = strtok_r(NULL, " ", &save),
             *pid = strtok_r(NULL, " ", &save), *st = strtok_r(NULL, " ", &save);
        long pv = 0;
        if (!port || !sock || !pid || !st || !util_parse_int(port, 1, 65535, &pv))
            goto out;
        dpdb *b = dp__db_by_id(d, a1);
        if (!b) {
            b = xcalloc(1, sizeof *b);
            snprintf(b->id, sizeof b->id, "%s", a1);
            b->lfd = -1;
            b->lt = (tag){T_LISTEN, b};
            b->last_ms = util_now_ms();
            b->next = d->dbs;
            d->dbs = b;
        }
        b->port = (int)pv;
        snprintf(b->sockpath, sizeof b->sockpath, "%s", sock);
        snprintf(b->pidfile, sizeof b->pidfile, "%s", pid);
        if (b->state != DB_SLEEPING || strcmp(st, "asleep") == 0)
            b->state = !strcmp(st, "asleep") ? DB_ASLEEP : DB_AWAKE;
        /* connections held while no serve knew the database (a WAKE sent to a serve that
         * was starting found nothing to wake): asked again now that one does */
        if (b->held && b->state == DB_ASLEEP) {
            b->wake_sent_ms = util_now_ms();
            dp__ctl_send(d, "WAKE %s", b->id);
        }
        if (fd >= 0 && b->lfd < 0) {
            b->lfd = fd;
            fd = -1;
            dp__ep_add(d, b->lfd, &b->lt);
        }
    } else if (!strcmp(verb, "DROP") && a1) {
        dpdb *b = dp__db_by_id(d, a1);
        if (b)
            db_drop(d, b);
    } else if (!strcmp(verb, "SLEEP") && a1) {
        /* serve asks to put it to sleep: only with no direct client; from now on new
         * connections are held (never passed to a stopping server) */
        dpdb *b = dp__db_by_id(d, a1);
        if (b && b->direct == 0 && b->held == 0) {
            b->state = DB_SLEEPING;
            dp__ctl_send(d, "SLEEP %s ok", a1);
        } else {
            dp__ctl_send(d, "SLEEP %s busy", a1);
        }
    } else if ((!strcmp(verb, "ASLEEP") || !strcmp(verb, "AWAKE")) && a1) {
        dpdb *b = dp__db_by_id(d, a1);
        if (b) {
            b->state = verb[1] == 'S' ? DB_ASLEEP : DB_AWAKE;
            b->wake_sent_ms = 0;
            if (b->state == DB_AWAKE)
                b->wakes++;
            if (b->state == DB_ASLEEP && b->held) {
                b->wake_sent_ms = util_now_ms();
                dp__ctl_send(d, "WAKE %s", b->id);
            }
        }
    } else if (!strcmp(verb, "WAKEFAIL") && a1) {
        dpdb *b = dp__db_by_id(d, a1);
        for (conn *c = d->conns, *nx; b && c; c = nx) {
            nx = c->next;
            if (c->db == b && c->state == C_HELD) {
                dp__conn_fail(c, "57P03", "could not wake the database; try again");
                dp__pump(d, c);
            }
        }
        if (b)
            b->wake_sent_ms = 0;
    } else if (!strcmp(verb, "FDS")) {
        /* a serve that restarted takes its listening sockets back */
        for (dpdb *b = d->dbs; b; b = b->next) {
            char m[256];
            snprintf(m, sizeof m, "FD %s %d", b->id, b->port);
            if (!b->gone && b->lfd >= 0 && d->ctl >= 0 && ctlmsg_send(d->ctl, m, b->lfd) < 0)
                log_sub(LOG_WARN, "datapath", "cannot hand back a port: %s", strerror(errno));
        }
        dp__ctl_send(d, "FDS end");
    } else if (!strcmp(verb, "STATS")) {
        int64_t now = util_now_ms();
        for (dpdb *b = d->dbs; b; b = b->next)
            if (!b->gone)
                dp__ctl_send(d, "STAT %s %d %d %d %lld", b->id, b->direct, b->pooled, b->held,
                             (long long)(now - b->last_ms));
        dp__ctl_send(d, "STATS end");
    }
out:
    if (fd >= 0)
        close(fd);
}

static void ctl_read(dp *d)
{
    for (;;) {
        char msg[CTLMSG_MAX];
        int fd = -1;
        ssize_t n = ctlmsg_recv(d->ctl, msg, sizeof msg, &fd, true);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            log_sub(LOG_INFO, "datapath", "serve left the control socket; connections go on");
            epoll_ctl(d->ep, EPOLL_CTL_DEL, d->ctl, NULL);
            close(d->ctl);
            d->ctl = -1;
            /* a sleep it asked for ends with it (killed mid-sleep: no ASLEEP or AWAKE comes):
             * awake again, so held clients ask the next serve for a wake, and are passed
             * only once the server's pid file says ready */
            for (dpdb *b = d->dbs; b; b = b->next)
                if (b->state == DB_SLEEPING)
                    b->state = DB_AWAKE;
            return;
        }
        ctl_message(d, msg, fd);
    }
}

static void ctl_accept(dp *d)
{
    int s = accept4(d->ctl_lfd, NULL, NULL, SOCK_CLOEXEC);
    if (s < 0)
        return;
    /* sends block (a slow serve is waited for, briefly); reads never do */
    struct timeval tv = {.tv_sec = 2};
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (d->ctl >= 0) {
        /* a new serve replaces one that is gone (or stuck) */
        epoll_ctl(d->ep, EPOLL_CTL_DEL, d->ctl, NULL);
        close(d->ctl);
    }
    d->ctl = s;
    dp__ep_add(d, s, &d->ctl_t);
    log_sub(LOG_INFO, "datapath", "serve connected to the control socket");
    /* a wake asked of a serve that died is asked again of this one */
    for (dpdb *b = d->dbs; b; b = b->next)
        b->wake_sent_ms = 0;
}

/* ---- main ---- */

static int listen_unix_stream(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    unlink(path);
    /* the directory (0700, the servers' user) keeps others out; PgBouncer runs as that
     * user and must be able to connect */
    if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0 || chmod(path, 0777) < 0 ||
        listen(s, 1024) < 0) {
        close(s);
        return -1;
    }
    return s;
}

int datapath_main(const dp_options *opt)
{
    dp d = {.ep = -1, .sigfd = -1, .ctl_lfd = -1, .ctl = -1, .route_fd = -1, .cap = 100};
    int rc = 1;
    char *dir = xasprintf("%s/" CTLMSG_DIR, opt->home);
    char *ctl_path = xasprintf("%s/ctl", dir);
    char *route_path = xasprintf("%s/.s.PGSQL.%d", dir, CTLMSG_ROUTE_PORT);
    signal(SIGPIPE, SIG_IGN);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    d.sigfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    d.ep = epoll_create1(EPOLL_CLOEXEC);
    d.ctl_lfd = ctlmsg_listen(ctl_path);
    d.route_fd = listen_unix_stream(route_path);
    if (d.sigfd < 0 || d.ep < 0 || d.ctl_lfd < 0 || d.route_fd < 0) {
        log_sub(LOG_ERROR, "datapath", "cannot start in %s: %s", dir, strerror(errno));
        goto out;
    }
    d.sig_t = (tag){T_SIGNAL, NULL};
    d.ctl_lt = (tag){T_CTL_LISTEN, NULL};
    d.ctl_t = (tag){T_CTL, NULL};
    d.route_t = (tag){T_ROUTE, NULL};
    dp__ep_add(&d, d.sigfd, &d.sig_t);
    dp__ep_add(&d, d.ctl_lfd, &d.ctl_lt);
    dp__ep_add(&d, d.route_fd, &d.route_t);
    log_sub(LOG_INFO, "datapath", "listening for serve on %s and PgBouncer on %s", ctl_path,
            route_path);
    struct epoll_event evs[MAX_EVENTS];
    int64_t last_tick = 0;
    while (!d.stop) {
        int timeout = dp__any_held(&d) ? TICK_MS : 200;
        int n = epoll_wait(d.ep, evs, MAX_EVENTS, timeout);
        for (int i = 0; i < n; i++) {
            tag *t = evs[i].data.ptr;
            switch (t->type) {
            case T_LISTEN:
                dp__on_accept(&d, ((dpdb *)t->ptr)->lfd, t->ptr);
                break;
            case T_ROUTE:
                dp__on_accept(&d, d.route_fd, NULL);
                break;
            case T_CTL_LISTEN:
                ctl_accept(&d);
                break;
            case T_CTL:
                if (d.ctl >= 0)
                    ctl_read(&d);
                break;
            case T_SIGNAL: {
                struct signalfd_siginfo si;
                while (read(d.sigfd, &si, sizeof si) == sizeof si) {
                    if (si.ssi_signo == SIGHUP)
                        dp__tls_load(&d);
                    else
                        d.stop = true;
                }
                break;
            }
            case T_CLIENT:
            case T_SERVER: {
                conn *c = t->ptr;
                /* closed earlier in this batch: its memory lives until the batch ends */
                if (c->dead)
                    break;
                if (c->state == C_HELD && (evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
                    dp__conn_close(&d, c);
                    break;
                }
                dp__pump_event(&d, c, t->type == T_SERVER);
                break;
            }
            }
        }
        int64_t now = util_now_ms();
        dp__held_tick(&d);
        if (now - last_tick >= 100) {
            last_tick = now;
            dp__deadlines(&d);
        }
        dp__free_dead(&d);
    }
    log_sub(LOG_INFO, "datapath", "stopping: %llu connection(s) served",
            (unsigned long long)d.accepted);
    rc = 0;
out:
    while (d.conns)
        dp__conn_close(&d, d.conns);
    dp__free_dead(&d);
    while (d.dbs) {
        dpdb *b = d.dbs;
        d.dbs = b->next;
        if (b->lfd >= 0)
            close(b->lfd);
        free(b);
    }
    if (d.tls)
        SSL_CTX_free(d.tls);
    if (d.ctl >= 0)
        close(d.ctl);
    if (d.ctl_lfd >= 0)
        close(d.ctl_lfd);
    if (d.route_fd >= 0)
        close(d.route_fd);
    if (d.sigfd >= 0)
        close(d.sigfd);
    if (d.ep >= 0)
        close(d.ep);
    free(dir);
    free(ctl_path);
    free(route_path);
    return rc;
}
