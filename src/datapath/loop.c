/* loop: the data path process. One thread, one epoll set, level-triggered, every socket
 * non-blocking. Each client connection goes FIRST (its first packet) -> [TLS handshake ->
 * STARTUP] -> HELD (its server is not ready: asleep, waking or starting) -> RELAY (bytes
 * both ways through two buffers) -> closed; or DRAIN (an ErrorResponse is flushed, then
 * closed). Serve is a client of the control socket (run/dp/ctl): it hands over the
 * databases and their listening sockets and reads the wake requests and counts. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdarg.h>
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
#include "util/ctlmsg.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/util.h"

#define BUF_SIZE 16384
#define FIRST_TIMEOUT_MS 10000
#define HOLD_TIMEOUT_MS 30000
#define WAKE_RESEND_MS 5000
#define TICK_MS 5
#define MAX_EVENTS 256

typedef enum { T_LISTEN, T_ROUTE, T_CTL_LISTEN, T_CTL, T_SIGNAL, T_CLIENT, T_SERVER } tag_type;

typedef struct tag {
    tag_type type;
    void *ptr;
} tag;

/* serve's view of a database, as told on the control socket */
typedef enum { DB_AWAKE = 0, DB_ASLEEP, DB_SLEEPING } db_state;

typedef struct dpdb {
    char id[64];
    int port, lfd;
    char sockpath[PATH_MAX], pidfile[PATH_MAX];
    db_state state;
    tag lt;
    int direct, pooled, held, refs;
    int64_t last_ms, wake_sent_ms;
    uint64_t wakes;
    bool gone;
    struct dpdb *next;
} dpdb;

typedef enum { C_FIRST, C_TLS_HS, C_STARTUP, C_HELD, C_RELAY, C_DRAIN } conn_state;

typedef struct rbuf {
    uint8_t d[BUF_SIZE];
    size_t off, len;
} rbuf;

typedef struct conn {
    tag ct, st;
    int cfd, sfd;
    uint32_t cev, sev; /* the events registered */
    SSL *ssl;
    bool tls, pooled, c_eof, s_eof, counted, dead;
    bool ssl_read_wants_write, ssl_write_wants_read;
    conn_state state;
    dpdb *db;     /* NULL until routed */
    dpdb *portdb; /* the database of the port it arrived on (NULL: the route socket) */
    int64_t deadline;
    char addr[64];
    bool loopback;
    uint8_t *startup; /* the packet to send the server once it is ready */
    size_t startup_len;
    rbuf c2s, s2c;
    struct conn *next, *prev;
} conn;

typedef struct dp {
    int ep, sigfd, ctl_lfd, ctl, route_fd;
    tag sig_t, ctl_lt, ctl_t, route_t;
    dpdb *dbs;
    conn *conns, *dead; /* dead: closed in this batch of events, freed after it */
    SSL_CTX *tls;
    char cert[PATH_MAX], key[PATH_MAX];
    bool tls_loopback_optional;
    int cap;
    char remote_test[64]; /* tests: this IPv4 loopback address counts as remote */
    bool stop;
    uint64_t accepted;
} dp;

/* ---- helpers ---- */

static void ep_set(dp *d, int fd, uint32_t *have, uint32_t want, tag *t)
{
    if (*have == want)
        return;
    struct epoll_event ev = {.events = want, .data.ptr = t};
    int op = *have == 0 ? EPOLL_CTL_ADD : want == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    if (epoll_ctl(d->ep, op, fd, &ev) < 0 && op == EPOLL_CTL_MOD && errno == ENOENT)
        epoll_ctl(d->ep, EPOLL_CTL_ADD, fd, &ev);
    *have = want;
}

static void ep_add(dp *d, int fd, tag *t)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = t};
    epoll_ctl(d->ep, EPOLL_CTL_ADD, fd, &ev);
}

static dpdb *db_by_id(dp *d, const char *id)
{
    for (dpdb *b = d->dbs; b; b = b->next)
        if (!b->gone && !strcmp(b->id, id))
            return b;
    return NULL;
}

static void ctl_send(dp *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ctl_send(dp *d, const char *fmt, ...)
{
    if (d->ctl < 0)
        return;
    char msg[CTLMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ctlmsg_send(d->ctl, msg, -1) < 0)
        log_sub(LOG_WARN, "datapath", "control message lost: %s", strerror(errno));
}

/* True when the server's postmaster.pid says it accepts connections ("ready" on line 8). */
static bool server_ready(const dpdb *b)
{
    char buf[1024];
    int fd = open(b->pidfile, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    char *p = buf;
    for (int line = 1; line < 8 && p; line++) {
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return p && strncmp(p, "ready", 5) == 0;
}

/* ---- TLS ---- */

static int tls_load(dp *d)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return -1;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(ctx, d->cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, d->key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        char why[256];
        ERR_error_string_n(ERR_get_error(), why, sizeof why);
        log_sub(LOG_ERROR, "datapath", "cannot load the certificate %s: %s", d->cert, why);
        SSL_CTX_free(ctx);
        return -1;
    }
    if (d->tls)
        SSL_CTX_free(d->tls); /* live connections keep a reference to the old one */
    d->tls = ctx;
    log_sub(LOG_INFO, "datapath", "TLS certificate %s loaded", d->cert);
    return 0;
}

/* ---- client side I/O (TLS or not): >0 bytes, 0 end, -1 again, -2 error ---- */

static int ssl_result(conn *c, int r, bool reading)
{
    int err = SSL_get_error(c->ssl, r);
    if (err == SSL_ERROR_WANT_READ) {
        if (!reading)
            c->ssl_write_wants_read = true;
        return -1;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
        if (reading)
            c->ssl_read_wants_write = true;
        return -1;
    }
    if (err == SSL_ERROR_ZERO_RETURN)
        return 0;
    ERR_clear_error();
    return -2;
}

static ssize_t c_read(conn *c, uint8_t *p, size_t n)
{
    if (c->ssl) {
        c->ssl_read_wants_write = false;
        int r = SSL_read(c->ssl, p, (int)n);
        return r > 0 ? r : ssl_result(c, r, true);
    }
    ssize_t r = recv(c->cfd, p, n, 0);
    if (r < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -1 : -2;
    return r;
}

static ssize_t c_write(conn *c, const uint8_t *p, size_t n)
{
    if (c->ssl) {
        c->ssl_write_wants_read = false;
        int r = SSL_write(c->ssl, p, (int)n);
        return r > 0 ? r : ssl_result(c, r, false);
    }
    ssize_t r = send(c->cfd, p, n, MSG_NOSIGNAL);
    if (r < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -1 : -2;
    return r;
}

/* ---- connections ---- */

static void conn_count(conn *c, int delta)
{
    if (!c->db)
        return;
    if (c->pooled)
        c->db->pooled += delta;
    else
        c->db->direct += delta;
    c->db->last_ms = util_now_ms();
}

static void db_unref(dp *d, dpdb *b)
{
    if (!b || --b->refs > 0 || !b->gone)
        return;
    for (dpdb **pp = &d->dbs; *pp; pp = &(*pp)->next)
        if (*pp == b) {
            *pp = b->next;
            break;
        }
    free(b);
}

static void conn_close(dp *d, conn *c)
{
    if (c->dead)
        return;
    if (c->counted)
        conn_count(c, -1);
    if (c->state == C_HELD && c->db)
        c->db->held--;
    if (c->cfd >= 0 && c->cev)
        epoll_ctl(d->ep, EPOLL_CTL_DEL, c->cfd, NULL);
    if (c->sfd >= 0 && c->sev)
        epoll_ctl(d->ep, EPOLL_CTL_DEL, c->sfd, NULL);
    if (c->ssl) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    if (c->cfd >= 0)
        close(c->cfd);
    if (c->sfd >= 0)
        close(c->sfd);
    if (c->prev)
        c->prev->next = c->next;
    else
        d->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    db_unref(d, c->db);
    db_unref(d, c->portdb);
    c->db = c->portdb = NULL;
    free(c->startup);
    c->startup = NULL;
    c->cfd = c->sfd = -1;
    c->ssl = NULL;
    c->counted = false;
    c->dead = true;
    c->next = d->dead;
    c->prev = NULL;
    d->dead = c;
}

static void free_dead(dp *d)
{
    while (d->dead) {
        conn *c = d->dead;
        d->dead = c->next;
        free(c);
    }
}

/* Queues an ErrorResponse for the client and closes once it is flushed. */
static void conn_fail(conn *c, const char *code, const char *msg)
{
    size_t n = 0;
    uint8_t *e = dp_error_build(code, msg, &n);
    c->s2c.off = 0;
    c->s2c.len = n < BUF_SIZE ? n : BUF_SIZE;
    memcpy(c->s2c.d, e, c->s2c.len);
    free(e);
    if (c->state == C_HELD && c->db)
        c->db->held--;
    c->state = C_DRAIN;
    c->deadline = util_now_ms() + 2000;
    if (c->sfd >= 0) {
        close(c->sfd);
        c->sfd = -1;
        c->sev = 0;
    }
}

static int unix_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return -1;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    if (connect(s, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        close(s);
        return -1;
    }
    return s;
}

/* The held connection's server is ready: connect and send the startup packet. */
static void conn_pass(conn *c)
{
    c->sfd = unix_connect(c->db->sockpath);
    if (c->sfd < 0) {
        log_db_warn(c->db->id, "cannot reach the server at %s: %s", c->db->sockpath,
                    strerror(errno));
        conn_fail(c, "57P03", "the database server is not available; try again");
        return;
    }
    if (c->state == C_HELD)
        c->db->held--;
    c->state = C_RELAY;
    if (c->startup_len + c->c2s.len > BUF_SIZE) {
        conn_fail(c, "08P01", "invalid startup packet");
        return;
    }
    /* the startup first, then what the client sent after it */
    memmove(c->c2s.d + c->startup_len, c->c2s.d + c->c2s.off, c->c2s.len);
    memcpy(c->c2s.d, c->startup, c->startup_len);
    c->c2s.off = 0;
    c->c2s.len += c->startup_len;
    free(c->startup);
    c->startup = NULL;
    c->state = C_RELAY;
    c->deadline = 0;
}

static bool addr_loopback(dp *d, const struct sockaddr_storage *ss, char *out, size_t n)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, out, (socklen_t)n);
        if (d->remote_test[0] && !strcmp(out, d->remote_test))
            return false;
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, out, (socklen_t)n);
        if (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr))
            return true;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
            const char *v4 = strrchr(out, ':') + 1;
            if (d->remote_test[0] && !strcmp(v4, d->remote_test))
                return false;
            return a->sin6_addr.s6_addr[12] == 127;
        }
        return false;
    }
    snprintf(out, n, "local");
    return true; /* the route socket: PgBouncer */
}

/* A StartupMessage arrived (plaintext or inside TLS): route, check, pass or hold. */
static void on_startup(dp *d, conn *c, const dp_first *f)
{
    const char *rewrite = NULL;
    dpdb *b = c->portdb;
    if (c->pooled) {
        b = db_by_id(d, f->database);
        rewrite = "postgres";
        if (!b) {
            conn_fail(c, "3D000", "database does not exist");
            return;
        }
    }
    if (!b || b->gone) {
        conn_fail(c, "3D000", "database does not exist");
        return;
    }
    c->db = b;
    b->refs++;
    if (!c->pooled && !c->tls && !(c->loopback && d->tls_loopback_optional)) {
        log_db_info(b->id, "refused a plaintext connection from %s", c->addr);
        conn_fail(c, "28000",
                  "SSL required: this endpoint accepts TLS connections only (sslmode=require)");
        return;
    }
    if (!c->pooled && b->direct >= d->cap) {
        log_db_warn(b->id, "refused a connection from %s: %d direct connections", c->addr,
                    b->direct);
        conn_fail(c, "53300", "too many connections for this database");
        return;
    }
    c->startup = dp_startup_build(f, rewrite, &c->startup_len);
    conn_count(c, +1);
    c->counted = true;
    if (!c->pooled)
        log_db_info(b->id, "connection from %s%s user=%s", c->addr, c->tls ? " (TLS)" : "",
                    f->user);
    if (b->state == DB_AWAKE && server_ready(b)) {
        conn_pass(c);
        return;
    }
    c->state = C_HELD;
    b->held++;
    c->deadline = util_now_ms() + HOLD_TIMEOUT_MS;
    if (b->state != DB_SLEEPING && util_now_ms() - b->wake_sent_ms >= WAKE_RESEND_MS) {
        b->wake_sent_ms = util_now_ms();
        ctl_send(d, "WAKE %s", b->id);
    }
}

/* A CancelRequest: to the server of the port it came on; from the route socket (it names
 * no database) to every awake server, where a key that is not theirs is ignored. */
static void on_cancel(dp *d, conn *c, const uint8_t *pkt)
{
    for (dpdb *b = d->dbs; b; b = b->next) {
        if (b->gone || (c->portdb && b != c->portdb) || !server_ready(b))
            continue;
        int s = unix_connect(b->sockpath);
        if (s < 0)
            continue;
        /* 16 bytes on a fresh Unix socket: sent at once */
        if (send(s, pkt, 16, MSG_NOSIGNAL) != 16)
            log_db_warn(b->id, "cancel request not forwarded: %s", strerror(errno));
        close(s);
    }
}

/* Reads and handles the first packet (FIRST or, inside TLS, STARTUP). */
static void read_first(dp *d, conn *c)
{
    for (;;) {
        dp_first f;
        dp_first_kind k = dp_first_parse(c->c2s.d, c->c2s.len, &f);
        if (k == DP_FIRST_MORE) {
            if (c->c2s.len >= BUF_SIZE) {
                conn_fail(c, "08P01", "invalid startup packet");
                return;
            }
            ssize_t r = c_read(c, c->c2s.d + c->c2s.len, BUF_SIZE - c->c2s.len);
            if (r == -1)
                return;
            if (r <= 0) {
                c->c_eof = true;
                return;
            }
            c->c2s.len += (size_t)r;
            continue;
        }
        if (k == DP_FIRST_BAD) {
            conn_fail(c, "08P01", f.why);
            return;
        }
        size_t rest = c->c2s.len - f.len;
        if (k == DP_FIRST_SSL || k == DP_FIRST_GSSENC) {
            if (c->state != C_FIRST || (k == DP_FIRST_SSL && rest)) {
                conn_fail(c, "08P01", "unexpected encryption request");
                return;
            }
            memmove(c->c2s.d, c->c2s.d + f.len, rest);
            c->c2s.len = rest;
            bool ssl = k == DP_FIRST_SSL && d->tls;
            char answer = ssl ? 'S' : 'N';
            if (send(c->cfd, &answer, 1, MSG_NOSIGNAL) != 1) {
                c->c_eof = true;
                return;
            }
            if (!ssl)
                continue; /* GSSENC refused: the client goes on in plaintext or asks for TLS */
            c->ssl = SSL_new(d->tls);
            SSL_set_fd(c->ssl, c->cfd);
            SSL_set_accept_state(c->ssl);
            c->state = C_TLS_HS;
            return;
        }
        if (k == DP_FIRST_CANCEL) {
            on_cancel(d, c, c->c2s.d);
            c->c_eof = true;
            return;
        }
        /* startup: parsed again from a copy, so c2s keeps only what follows it (the
         * client's next message; normally nothing, SCRAM waits for the server) */
        uint8_t pkt[DP_STARTUP_MAX];
        size_t plen = f.len;
        memcpy(pkt, c->c2s.d, plen);
        memmove(c->c2s.d, c->c2s.d + plen, rest);
        c->c2s.off = 0;
        c->c2s.len = rest;
        dp_first_parse(pkt, plen, &f);
        on_startup(d, c, &f);
        return;
    }
}

static void handshake(conn *c)
{
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->tls = true;
        c->state = C_STARTUP;
        return;
    }
    int err = SSL_get_error(c->ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        c->ssl_read_wants_write = err == SSL_ERROR_WANT_WRITE;
        return;
    }
    ERR_clear_error();
    c->c_eof = true; /* nothing can be said to a client whose handshake failed */
}

/* Moves bytes while any can move; then registers the events still wanted. */
static void pump(dp *d, conn *c)
{
    for (int round = 0; round < 64; round++) {
        bool moved = false;
        if (c->state == C_FIRST || c->state == C_STARTUP) {
            conn_state before = c->state;
            size_t len = c->c2s.len;
            read_first(d, c);
            moved = c->state != before || c->c2s.len != len;
            if (c->c_eof)
                break;
        }
        if (c->state == C_TLS_HS) {
            handshake(c);
            if (c->c_eof)
                break;
            moved = c->state != C_TLS_HS;
        }
        if (c->state == C_RELAY) {
            /* client -> buffer (held connections read nothing more: the startup is sent
             * first) */
            rbuf *b = &c->c2s;
            if (!c->c_eof && b->off + b->len < BUF_SIZE) {
                ssize_t r = c_read(c, b->d + b->off + b->len, BUF_SIZE - b->off - b->len);
                if (r > 0) {
                    b->len += (size_t)r;
                    moved = true;
                } else if (r == 0 || r == -2)
                    c->c_eof = true;
            }
            if (b->len) {
                ssize_t w = send(c->sfd, b->d + b->off, b->len, MSG_NOSIGNAL);
                if (w > 0) {
                    b->off += (size_t)w;
                    b->len -= (size_t)w;
                    moved = true;
                } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                    c->s_eof = c->c_eof = true;
                }
            }
            if (!b->len)
                b->off = 0;
            /* server -> buffer */
            b = &c->s2c;
            if (!c->s_eof && b->off + b->len < BUF_SIZE) {
                ssize_t r = recv(c->sfd, b->d + b->off + b->len, BUF_SIZE - b->off - b->len, 0);
                if (r > 0) {
                    b->len += (size_t)r;
                    moved = true;
                } else if (r == 0 ||
                           (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                    c->s_eof = true;
            }
        }
        if (c->state == C_RELAY || c->state == C_DRAIN) {
            rbuf *b = &c->s2c;
            if (b->len) {
                ssize_t w = c_write(c, b->d + b->off, b->len);
                if (w > 0) {
                    b->off += (size_t)w;
                    b->len -= (size_t)w;
                    moved = true;
                } else if (w == 0 || w == -2) {
                    c->c_eof = c->s_eof = true;
                    b->len = 0;
                }
            }
            if (!b->len)
                b->off = 0;
        }
        if (moved && c->db && c->state == C_RELAY)
            c->db->last_ms = util_now_ms();
        if (!moved)
            break;
    }
    bool done = (c->state == C_DRAIN && !c->s2c.len) || (c->c_eof && c->state != C_RELAY) ||
                (c->state == C_RELAY && ((c->c_eof && !c->c2s.len) || (c->s_eof && !c->s2c.len)));
    if (done) {
        conn_close(d, c);
        return;
    }
    uint32_t cw = EPOLLRDHUP, sw = 0;
    switch (c->state) {
    case C_FIRST:
    case C_STARTUP:
    case C_TLS_HS:
        cw |= EPOLLIN;
        if (c->ssl_read_wants_write)
            cw |= EPOLLOUT;
        break;
    case C_HELD: /* only the hang-up matters while held */
        break;
    case C_RELAY:
        if (!c->c_eof && c->c2s.off + c->c2s.len < BUF_SIZE)
            cw |= EPOLLIN;
        if (c->s2c.len || c->ssl_read_wants_write)
            cw |= EPOLLOUT;
        if (c->ssl_write_wants_read)
            cw |= EPOLLIN;
        if (!c->s_eof && c->s2c.off + c->s2c.len < BUF_SIZE)
            sw |= EPOLLIN;
        if (c->c2s.len)
            sw |= EPOLLOUT;
        break;
    case C_DRAIN:
        cw |= EPOLLOUT;
        if (c->ssl_write_wants_read)
            cw |= EPOLLIN;
        break;
    }
    ep_set(d, c->cfd, &c->cev, cw, &c->ct);
    if (c->sfd >= 0)
        ep_set(d, c->sfd, &c->sev, sw ? sw : EPOLLRDHUP, &c->st);
}

static void on_accept(dp *d, int lfd, dpdb *portdb)
{
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        conn *c = xcalloc(1, sizeof *c);
        c->cfd = fd;
        c->sfd = -1;
        c->ct = (tag){T_CLIENT, c};
        c->st = (tag){T_SERVER, c};
        c->pooled = portdb == NULL;
        c->portdb = portdb;
        if (portdb)
            portdb->refs++;
        c->loopback = addr_loopback(d, &ss, c->addr, sizeof c->addr);
        c->state = C_FIRST;
        c->deadline = util_now_ms() + FIRST_TIMEOUT_MS;
        c->next = d->conns;
        if (d->conns)
            d->conns->prev = c;
        d->conns = c;
        d->accepted++;
        if (!c->pooled) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        pump(d, c);
    }
}

/* ---- the control socket ---- */

static void db_drop(dp *d, dpdb *b)
{
    if (b->lfd >= 0) {
        epoll_ctl(d->ep, EPOLL_CTL_DEL, b->lfd, NULL);
        close(b->lfd);
        b->lfd = -1;
    }
    b->gone = true;
    for (conn *c = d->conns, *nx; c; c = nx) {
        nx = c->next;
        if (c->db == b || c->portdb == b)
            conn_close(d, c);
    }
    b->refs++; /* db_unref frees it once no connection points at it */
    db_unref(d, b);
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
            tls_load(d);
    } else if (!strcmp(verb, "RELOAD")) {
        tls_load(d);
    } else if (!strcmp(verb, "DB") && a1) {
        /* DB id port socketpath pidfile awake|asleep, with the listening socket */
        char *port = strtok_r(NULL, " ", &save), *sock = strtok_r(NULL, " ", &save),
             *pid = strtok_r(NULL, " ", &save), *st = strtok_r(NULL, " ", &save);
        long pv = 0;
        if (!port || !sock || !pid || !st || !util_parse_int(port, 1, 65535, &pv))
            goto out;
        dpdb *b = db_by_id(d, a1);
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
        if (fd >= 0 && b->lfd < 0) {
            b->lfd = fd;
            fd = -1;
            ep_add(d, b->lfd, &b->lt);
        }
    } else if (!strcmp(verb, "DROP") && a1) {
        dpdb *b = db_by_id(d, a1);
        if (b)
            db_drop(d, b);
    } else if (!strcmp(verb, "SLEEP") && a1) {
        /* serve asks to put it to sleep: only with no direct client; from now on new
         * connections are held (never passed to a stopping server) */
        dpdb *b = db_by_id(d, a1);
        if (b && b->direct == 0 && b->held == 0) {
            b->state = DB_SLEEPING;
            ctl_send(d, "SLEEP %s ok", a1);
        } else {
            ctl_send(d, "SLEEP %s busy", a1);
        }
    } else if ((!strcmp(verb, "ASLEEP") || !strcmp(verb, "AWAKE")) && a1) {
        dpdb *b = db_by_id(d, a1);
        if (b) {
            b->state = verb[1] == 'S' ? DB_ASLEEP : DB_AWAKE;
            b->wake_sent_ms = 0;
            if (b->state == DB_AWAKE)
                b->wakes++;
            if (b->state == DB_ASLEEP && b->held) {
                b->wake_sent_ms = util_now_ms();
                ctl_send(d, "WAKE %s", b->id);
            }
        }
    } else if (!strcmp(verb, "WAKEFAIL") && a1) {
        dpdb *b = db_by_id(d, a1);
        for (conn *c = d->conns, *nx; b && c; c = nx) {
            nx = c->next;
            if (c->db == b && c->state == C_HELD) {
                conn_fail(c, "57P03", "could not wake the database; try again");
                pump(d, c);
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
        ctl_send(d, "FDS end");
    } else if (!strcmp(verb, "STATS")) {
        int64_t now = util_now_ms();
        for (dpdb *b = d->dbs; b; b = b->next)
            if (!b->gone)
                ctl_send(d, "STAT %s %d %d %d %lld", b->id, b->direct, b->pooled, b->held,
                         (long long)(now - b->last_ms));
        ctl_send(d, "STATS end");
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
    ep_add(d, s, &d->ctl_t);
    log_sub(LOG_INFO, "datapath", "serve connected to the control socket");
    /* a wake asked of a serve that died is asked again of this one */
    for (dpdb *b = d->dbs; b; b = b->next)
        b->wake_sent_ms = 0;
}

/* ---- timers: held connections, deadlines ---- */

static void held_tick(dp *d)
{
    int64_t now = util_now_ms();
    for (dpdb *b = d->dbs; b; b = b->next) {
        if (b->gone || !b->held)
            continue;
        if (b->state == DB_AWAKE && server_ready(b)) {
            for (conn *c = d->conns, *nx; c; c = nx) {
                nx = c->next;
                if (c->db == b && c->state == C_HELD) {
                    conn_pass(c);
                    pump(d, c);
                }
            }
        } else if (b->state != DB_SLEEPING && now - b->wake_sent_ms >= WAKE_RESEND_MS) {
            b->wake_sent_ms = now;
            ctl_send(d, "WAKE %s", b->id);
        }
    }
}

static void deadlines(dp *d)
{
    int64_t now = util_now_ms();
    for (conn *c = d->conns, *nx; c; c = nx) {
        nx = c->next;
        if (!c->deadline || now < c->deadline)
            continue;
        if (c->state == C_DRAIN || c->state == C_TLS_HS) {
            conn_close(d, c);
            continue;
        }
        if (c->state == C_HELD)
            conn_fail(c, "57P03", "the database did not wake in time; try again");
        else
            conn_fail(c, "08P01", "no startup packet in time");
        pump(d, c);
    }
}

static bool any_held(dp *d)
{
    for (dpdb *b = d->dbs; b; b = b->next)
        if (b->held)
            return true;
    return false;
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
    ep_add(&d, d.sigfd, &d.sig_t);
    ep_add(&d, d.ctl_lfd, &d.ctl_lt);
    ep_add(&d, d.route_fd, &d.route_t);
    log_sub(LOG_INFO, "datapath", "listening for serve on %s and PgBouncer on %s", ctl_path,
            route_path);
    struct epoll_event evs[MAX_EVENTS];
    int64_t last_tick = 0;
    while (!d.stop) {
        int timeout = any_held(&d) ? TICK_MS : 200;
        int n = epoll_wait(d.ep, evs, MAX_EVENTS, timeout);
        for (int i = 0; i < n; i++) {
            tag *t = evs[i].data.ptr;
            switch (t->type) {
            case T_LISTEN:
                on_accept(&d, ((dpdb *)t->ptr)->lfd, t->ptr);
                break;
            case T_ROUTE:
                on_accept(&d, d.route_fd, NULL);
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
                        tls_load(&d);
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
                    conn_close(&d, c);
                    break;
                }
                pump(&d, c);
                break;
            }
            }
        }
        int64_t now = util_now_ms();
        held_tick(&d);
        if (now - last_tick >= 100) {
            last_tick = now;
            deadlines(&d);
        }
        free_dead(&d);
    }
    log_sub(LOG_INFO, "datapath", "stopping: %llu connection(s) served",
            (unsigned long long)d.accepted);
    rc = 0;
out:
    while (d.conns)
        conn_close(&d, d.conns);
    free_dead(&d);
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
