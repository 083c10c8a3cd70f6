/* dp_int.h: the data path process's own types, shared by its files: conn.c (client and
 * server connections, TLS, the first packet, relay, held connections' timers) below loop.c
 * (the control socket from serve, the epoll loop, start and stop). */
#ifndef PGFLEET_DP_INT_H
#define PGFLEET_DP_INT_H

#include <limits.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

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

bool dp__any_held(dp *d);
void dp__conn_close(dp *d, conn *c);
void dp__conn_fail(conn *c, const char *code, const char *msg);
void dp__ctl_send(dp *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
dpdb *dp__db_by_id(dp *d, const char *id);
void dp__db_unref(dp *d, dpdb *b);
void dp__deadlines(dp *d);
void dp__ep_add(dp *d, int fd, tag *t);
void dp__free_dead(dp *d);
void dp__held_tick(dp *d);
void dp__on_accept(dp *d, int lfd, dpdb *portdb);
void dp__pump(dp *d, conn *c);
/* dp__pump on an epoll event of one side (server_side: the Unix socket to the server). */
void dp__pump_event(dp *d, conn *c, bool server_side);
int dp__tls_load(dp *d);

#endif
