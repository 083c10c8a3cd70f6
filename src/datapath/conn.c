/* conn: the data path's connections. Each client connection goes FIRST (its first packet)
 * -> [TLS handshake -> STARTUP] -> HELD (its server is not ready: asleep, waking or
 * starting) -> RELAY (bytes both ways through two buffers) -> closed; or DRAIN (an
 * ErrorResponse is flushed, then closed). The loop (loop.c) calls in on every event and
 * tick. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "datapath/datapath.h"
#include "datapath/dp_int.h"
#include "util/ctlmsg.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/util.h"

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

void dp__ep_add(dp *d, int fd, tag *t)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = t};
    epoll_ctl(d->ep, EPOLL_CTL_ADD, fd, &ev);
}

dpdb *dp__db_by_id(dp *d, const char *id)
{
    for (dpdb *b = d->dbs; b; b = b->next)
        if (!b->gone && !strcmp(b->id, id))
            return b;
    return NULL;
}

void dp__ctl_send(dp *d, const char *fmt, ...)
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

int dp__tls_load(dp *d)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return -1;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* one read(2) takes whatever the socket holds, not a record's header and then its body;
     * what it read beyond one record waits in OpenSSL (SSL_has_pending), not in the socket,
     * so pump reads on while there is some */
    SSL_CTX_set_read_ahead(ctx, 1);
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

void dp__db_unref(dp *d, dpdb *b)
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

void dp__conn_close(dp *d, conn *c)
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
    dp__db_unref(d, c->db);
    dp__db_unref(d, c->portdb);
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

void dp__free_dead(dp *d)
{
    while (d->dead) {
        conn *c = d->dead;
        d->dead = c->next;
        free(c);
    }
}

/* Queues an ErrorResponse for the client and closes once it is flushed. */
void dp__conn_fail(conn *c, const char *code, const char *msg)
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
        dp__conn_fail(c, "57P03", "the database server is not available; try again");
        return;
    }
    if (c->state == C_HELD)
        c->db->held--;
    c->state = C_RELAY;
    if (c->startup_len + c->c2s.len > BUF_SIZE) {
        dp__conn_fail(c, "08P01", "invalid startup packet");
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
        b = dp__db_by_id(d, f->database);
        rewrite = "postgres";
        if (!b) {
            dp__conn_fail(c, "3D000", "database does not exist");
            return;
        }
    }
    if (!b || b->gone) {
        dp__conn_fail(c, "3D000", "database does not exist");
        return;
    }
    c->db = b;
    b->refs++;
    if (!c->pooled && !c->tls && !(c->loopback && d->tls_loopback_optional)) {
        log_db_info(b->id, "refused a plaintext connection from %s", c->addr);
        dp__conn_fail(c, "28000",
                      "SSL required: this endpoint accepts TLS connections only (sslmode=require)");
        return;
    }
    if (!c->pooled && b->direct >= d->cap) {
        log_db_warn(b->id, "refused a connection from %s: %d direct connections", c->addr,
                    b->direct);
        dp__conn_fail(c, "53300", "too many connections for this database");
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
        dp__ctl_send(d, "WAKE %s", b->id);
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
                dp__conn_fail(c, "08P01", "invalid startup packet");
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
            dp__conn_fail(c, "08P01", f.why);
            return;
        }
        size_t rest = c->c2s.len - f.len;
        if (k == DP_FIRST_SSL || k == DP_FIRST_GSSENC) {
            if (c->state != C_FIRST || (k == DP_FIRST_SSL && rest)) {
                dp__conn_fail(c, "08P01", "unexpected encryption request");
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

/* Moves bytes while any can move; then registers the events still wanted. rd_c and rd_s
 * say which side may have bytes to read: a side is read until a read comes back short or
 * empty (a TLS record ended with nothing left in OpenSSL counts as short), not once more to learn
 * that it would block; what is left unread raises the level-triggered event again. */
static void pump(dp *d, conn *c, bool rd_c, bool rd_s)
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
            if (!c->c_eof && (rd_c || c->ssl_write_wants_read) && b->off + b->len < BUF_SIZE) {
                size_t want = BUF_SIZE - b->off - b->len;
                ssize_t r = c_read(c, b->d + b->off + b->len, want);
                if (r > 0) {
                    b->len += (size_t)r;
                    moved = true;
                } else if (r == 0 || r == -2)
                    c->c_eof = true;
                rd_c = r > 0 && ((size_t)r == want || (c->ssl && SSL_has_pending(c->ssl)));
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
            if (!c->s_eof && rd_s && b->off + b->len < BUF_SIZE) {
                size_t want = BUF_SIZE - b->off - b->len;
                ssize_t r = recv(c->sfd, b->d + b->off + b->len, want, 0);
                if (r > 0) {
                    b->len += (size_t)r;
                    moved = true;
                } else if (r == 0 ||
                           (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                    c->s_eof = true;
                rd_s = r > 0 && (size_t)r == want;
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
        dp__conn_close(d, c);
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

void dp__pump(dp *d, conn *c)
{
    pump(d, c, true, true);
}

void dp__pump_event(dp *d, conn *c, bool server_side)
{
    /* the other side's bytes raise their own event; a client's TLS may hold some already */
    if (server_side)
        pump(d, c, c->ssl && SSL_has_pending(c->ssl), true);
    else
        pump(d, c, true, false);
}

void dp__on_accept(dp *d, int lfd, dpdb *portdb)
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
        dp__pump(d, c);
    }
}

/* ---- timers: held connections, dp__deadlines ---- */

void dp__held_tick(dp *d)
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
                    dp__pump(d, c);
                }
            }
        } else if (b->state != DB_SLEEPING && now - b->wake_sent_ms >= WAKE_RESEND_MS) {
            b->wake_sent_ms = now;
            dp__ctl_send(d, "WAKE %s", b->id);
        }
    }
}

void dp__deadlines(dp *d)
{
    int64_t now = util_now_ms();
    for (conn *c = d->conns, *nx; c; c = nx) {
        nx = c->next;
        if (!c->deadline || now < c->deadline)
            continue;
        if (c->state == C_DRAIN || c->state == C_TLS_HS) {
            dp__conn_close(d, c);
            continue;
        }
        if (c->state == C_HELD)
            dp__conn_fail(c, "57P03", "the database did not wake in time; try again");
        else
            dp__conn_fail(c, "08P01", "no startup packet in time");
        dp__pump(d, c);
    }
}

bool dp__any_held(dp *d)
{
    for (dpdb *b = d->dbs; b; b = b->next)
        if (b->held)
            return true;
    return false;
}
