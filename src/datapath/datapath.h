/* datapath: the process that holds every database's public port (`pgfleet datapath`,
 * spawned and supervised by `serve`). It reads only the first packet of each connection
 * (SSLRequest, GSSENCRequest, CancelRequest, StartupMessage), ends TLS itself, holds a
 * connection while its sleeping server is woken by serve, and passes the bytes on to the
 * server's private Unix socket. It writes no catalog: serve tells it the databases (with
 * their listening sockets, over SCM_RIGHTS) on its control socket, and it reports counts,
 * last activity and wake requests back. docs/datapath.md has the protocol. */
#ifndef PF_DATAPATH_DATAPATH_H
#define PF_DATAPATH_DATAPATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- the first packet (first.c; pure) ---- */

#define DP_STARTUP_MAX 10000 /* PostgreSQL's MAX_STARTUP_PACKET_LENGTH */
#define DP_PARAMS_MAX 32

typedef enum {
    DP_FIRST_MORE = 0, /* need more bytes */
    DP_FIRST_SSL,
    DP_FIRST_GSSENC,
    DP_FIRST_CANCEL,
    DP_FIRST_STARTUP,
    DP_FIRST_BAD /* not a packet we serve: answer an error and close */
} dp_first_kind;

typedef struct dp_first {
    dp_first_kind kind;
    size_t len;       /* bytes of the packet (when not MORE/BAD) */
    uint32_t version; /* startup: protocol version (3.0 = 196608) */
    uint32_t cancel_pid, cancel_key;
    const char *user, *database; /* startup: point into the caller's buffer (NUL-ended) */
    size_t nparams;
    const char *keys[DP_PARAMS_MAX], *vals[DP_PARAMS_MAX];
    const char *why; /* BAD: a short reason */
} dp_first;

/* Parses the packet at the start of buf[0..len). */
dp_first_kind dp_first_parse(const uint8_t *buf, size_t len, dp_first *out);

/* A StartupMessage with the parameters of f, but database = `database` (NULL: as it was).
 * Caller frees; *n its length. */
uint8_t *dp_startup_build(const dp_first *f, const char *database, size_t *n);

/* An ErrorResponse (severity FATAL) with SQLSTATE code and message; caller frees. */
uint8_t *dp_error_build(const char *code, const char *message, size_t *n);

/* ---- the process (loop.c) ---- */

typedef struct dp_options {
    const char *home; /* the pgfleet home: control socket and route socket under run/ */
} dp_options;

/* Runs the data path until SIGTERM/SIGINT (or an unrecoverable error). Exit status. */
int datapath_main(const dp_options *opt);

#endif
