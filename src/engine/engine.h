/* engine: the data plane. The local engine runs one PostgreSQL 15 server per database on
 * this host: a copy of a golden data directory (made once with initdb), its own TCP port
 * (scram-sha-256 only) and a private Unix socket in a 0700 directory that only pgfleet's
 * superuser role (PGFLEET_ADMIN_ROLE, trust over that socket) uses.
 *
 * Every call is idempotent, so an operation interrupted by a crash can simply run again.
 * Calls block (they start servers, wait for them, run SQL): only ops workers, the
 * reconciler and the CLI call them, never an HTTP handler.
 *
 * Layout under home: golden/ (initdb'd template), instances/<db-id>/data,
 * instances/<db-id>/postgres.log, run/<db-id>/ (socket dir, 0700).
 * Instances run as cfg.user (the unprivileged OS user when pgfleet is root). They are
 * started in their own session, so they outlive a crash of pgfleet and are adopted
 * (found through postmaster.pid) instead of being started twice. */
#ifndef PF_ENGINE_ENGINE_H
#define PF_ENGINE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/err.h"
#include "util/proc.h"

#define PGFLEET_ADMIN_ROLE "pgfleet_admin"
/* The NOLOGIN role that owns the public schema and everything connections create: every
 * connection role is a member and has `SET role` to it, so all credentials of a database
 * see and own the same objects, and dropping a credential never orphans objects. */
#define PGFLEET_OWNER_ROLE "pgfleet_owner"

typedef struct engine engine;

typedef struct engine_config {
    const char *home;        /* absolute path; engine owns home/{golden,instances,run} */
    const char *pg_bindir;   /* e.g. /usr/lib/postgresql/15/bin */
    const char *listen_addr; /* listen_addresses for instances, e.g. "127.0.0.1" or "*" */
    proc_user user;          /* OS identity of the servers */
    /* TLS (tls.c): every server and PgBouncer serve TLS with one certificate. */
    const char *tls_host;           /* SAN of the generated server certificate (the public host) */
    const char *tls_cert, *tls_key; /* a given PEM certificate and key, or NULL: generate */
    const char *tls_ca;             /* with tls_cert: the CA to publish (optional) */
    /* pooler (pooler.c): NULL pooler_bin = no pooled endpoint */
    const char *pooler_bin;  /* e.g. /usr/sbin/pgbouncer */
    const char *pooler_host; /* PgBouncer's listen_addr, e.g. "127.0.0.1" */
    int pooler_port;
} engine_config;

/* Creates directories and, if missing, the golden data directory (initdb, ~1-2 s, once). */
int engine_open(const engine_config *cfg, engine **out, pf_err *e);
/* Forgets the engine (does not stop instances; see engine_stop_all). */
void engine_close(engine *en);

/* Makes instances/<id>/data from golden if it is not complete yet (a half-made copy is
 * removed and made again) and writes the port into its configuration. */
int engine_instance_create(engine *en, const char *db_id, int port, pf_err *e);

/* Starts the server (or adopts it if it already runs from its postmaster.pid) and waits
 * until it accepts connections on its socket (timeout_ms). */
int engine_instance_start(engine *en, const char *db_id, int port, int timeout_ms, pf_err *e);

/* Fast shutdown; waits for it to end. No error if it was not running. */
int engine_instance_stop(engine *en, const char *db_id, pf_err *e);

/* Stop (immediate) + remove instances/<id> and run/<id>. No error if missing. */
int engine_instance_destroy(engine *en, const char *db_id, pf_err *e);

/* True if the server's postmaster pid is alive. Reaps it if it was our child and died. */
bool engine_instance_running(engine *en, const char *db_id);

/* True if instances/<id>/data is a complete copy. */
bool engine_instance_exists(engine *en, const char *db_id);

/* Ids of every instances/<id> directory on disk; caller frees with engine_free_ids. */
int engine_instance_list(engine *en, char ***ids, size_t *n, pf_err *e);
void engine_free_ids(char **ids, size_t n);

/* True if something (anything) listens on or holds 127.0.0.1:port / the wildcard. */
bool engine_port_busy(int port);

/* Keeps `want` spare copies of golden under home/spare (made now, synced), so the next
 * engine_instance_create only renames one into place instead of copying ~1000 files.
 * Optional: create copies golden itself when no spare is left. Safe to call from any
 * thread at any time (e.g. by the reconciler when idle); returns how many it made. */
int engine_spares_fill(engine *en, int want, pf_err *e);

/* Fast shutdown of every instance this engine started or adopted, in parallel. */
void engine_stop_all(engine *en);

/* ---- roles (run over the private socket as PGFLEET_ADMIN_ROLE) ---- */

/* Creates the LOGIN role if missing, else sets its password; `verifier` is a SCRAM-SHA-256
 * secret (see engine_scram_verifier), so no plaintext password reaches the server or its
 * logs. The role is NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION, member of
 * PGFLEET_OWNER_ROLE with `SET role` to it. */
int engine_role_ensure(engine *en, const char *db_id, const char *role, const char *verifier,
                       pf_err *e);

/* Stops new logins, terminates the role's sessions and drops it. No error if missing. */
int engine_role_drop(engine *en, const char *db_id, const char *role, pf_err *e);

/* Computes the SCRAM-SHA-256 secret for password (libpq's PQencryptPasswordConn, no
 * server needed). out must hold 256 bytes. Pure CPU: safe in a request handler. */
int engine_scram_verifier(const char *role, const char *password, char out[256], pf_err *e);

/* ---- TLS (tls.c) ----
 * On engine_open: home/tls/ holds server.crt and server.key (0600, owned by the servers'
 * user) that every server and PgBouncer use; made from a private CA (tls/ca.crt, ca.key)
 * on first start, remade when the public host changes, or copied from given files. */

/* The CA certificate clients verify the servers with, or NULL when unknown (a given
 * certificate without --tls-ca). */
const char *engine_tls_ca_path(engine *en);

/* ---- pooler: one PgBouncer for every database (pooler.c) ----
 * Transaction pooling; database name = pgfleet database id; clients authenticate with
 * SCRAM against the same verifiers as the servers, and PgBouncer logs in to the server
 * over its private socket with the client's SCRAM keys (pass-through), so no plaintext
 * password is ever written. Files under home/pooler/ (0700, servers' user). */
typedef struct engine_pool_db {
    const char *id; /* database id: the pooled endpoint's dbname */
    int port;       /* the instance's port (names its socket) */
} engine_pool_db;

typedef struct engine_pool_user {
    const char *role;
    const char *verifier; /* SCRAM-SHA-256 secret, the same as on the server */
} engine_pool_user;

bool engine_pooler_enabled(engine *en);

/* Writes PgBouncer's files for exactly these databases and credentials when they changed
 * and, if PgBouncer runs, reloads it online (RELOAD on its admin console, which answers
 * once the new files are in force; clients stay connected). */
int engine_pooler_apply(engine *en, const engine_pool_db *dbs, size_t ndbs,
                        const engine_pool_user *users, size_t nusers, pf_err *e);

/* Starts PgBouncer (its files must exist: apply first), or adopts the one that still runs
 * from its pid file, and waits until it answers. No-op when it runs. */
int engine_pooler_ensure(engine *en, int timeout_ms, pf_err *e);

/* True if PgBouncer runs. Reaps it if it was our child and died. */
bool engine_pooler_running(engine *en);

/* Immediate shutdown of PgBouncer (SIGTERM, then SIGKILL). */
void engine_pooler_stop(engine *en);

#endif
