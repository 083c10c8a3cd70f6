/* engine: the data plane. The local engine runs one PostgreSQL 15 server per database on
 * this host: a copy of a golden data directory (made once with initdb), its own TCP port
 * (TLS and scram-sha-256 only) and a private Unix socket in a 0700 directory that only
 * pgfleet's superuser role (PGFLEET_ADMIN_ROLE, trust over that socket) uses; one
 * PgBouncer in front of them all; pgBackRest for their backups.
 *
 * Every call is idempotent, so an operation interrupted by a crash can simply run again.
 * Calls block (they start servers, wait for them, run SQL): only ops workers, the
 * reconciler and the CLI call them, never an HTTP handler.
 *
 * Errors carry a kind (util/err.h), never an HTTP status: ERR_INVALID for an id, port,
 * role, verifier, label or time that can never work; ERR_TRANSIENT for what passes (a
 * busy port, a full disk, a server not ready in time, a held pgBackRest lock); the other
 * kinds where a call below names them; anything else is ERR_INTERNAL.
 *
 * Instances have ids of their own (in_..., or a database's id for databases made before
 * that), which the caller maps to its databases: every `db_id` parameter below is such an
 * instance id, and names the instance's directories and its pgBackRest stanza.
 * Layout under home: golden/ (initdb'd template), instances/<id>/data and postgres.log
 * (a `spare` file beside data while the instance is a started spare), run/<id>/ (socket
 * dir, 0700; run/<alias> a symlink to it), tls/ (the
 * servers' certificate), pooler/ (PgBouncer), pgbackrest/ (its configuration, logs,
 * locks) and backup/ (the repository, unless configured elsewhere).
 * Instances run as cfg.user (the unprivileged OS user when pgfleet is root). They are
 * started in their own session, so they outlive a crash of pgfleet and are adopted
 * (found through postmaster.pid) instead of being started twice. */
#ifndef PF_ENGINE_ENGINE_H
#define PF_ENGINE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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
    /* backups (backup.c) */
    const char *backup_repo;   /* pgBackRest repository; NULL = home/backup */
    const char *pgbackrest;    /* NULL = /usr/bin/pgbackrest */
    int backup_retention_days; /* <= 0: 7 */
    int backup_processes;      /* pgBackRest process-max; <= 0: 2 */
    /* TLS (tls.c): every server and PgBouncer serve TLS with one certificate. */
    const char *tls_host;           /* SAN of the generated server certificate (the public host) */
    const char *tls_cert, *tls_key; /* a given PEM certificate and key, or NULL: generate */
    const char *tls_ca;             /* with tls_cert: the CA to publish (optional) */
    /* Loopback clients may connect without TLS (--tls-mode loopback-optional); TLS stays
     * required from every other address. false: TLS from everywhere (require). */
    bool tls_loopback_optional;
    /* extensions a connection role may CREATE (comma-separated names); NULL: the default
     * allowlist (engine_extensions_default) */
    const char *extensions;
    /* non-NULL: the data path (HOME/run/dp) holds the public ports; servers listen on their
     * Unix socket only (listen_addr "") and PgBouncer reaches every database through it */
    const char *datapath_dir;
    int datapath_route_port;
    /* pooler (pooler.c): NULL pooler_bin = no pooled endpoint */
    const char *pooler_bin;  /* e.g. /usr/sbin/pgbouncer */
    const char *pooler_host; /* PgBouncer's listen_addr, e.g. "127.0.0.1" */
    int pooler_port;
    /* the connection budget of every server: max_connections (<= 0: 120), of which
     * PgBouncer uses at most pool_size per database (<= 0: 20) and pgfleet's own admin
     * connections the ENGINE_ADMIN_RESERVED superuser slots; direct clients get the rest
     * (engine_direct_cap) */
    int max_connections;
    int pool_size;
    /* databases a server's users may make with CREATE DATABASE (<= 0: 16), enforced in the
     * server by pgfleet's module pgfleet_limits (pgmodule/; docs/extensions.md) */
    int databases_per_server;
} engine_config;

#define ENGINE_MAX_CONNECTIONS_DEFAULT 120
#define ENGINE_DATABASES_PER_SERVER_DEFAULT 16
#define ENGINE_POOL_SIZE_DEFAULT 20
/* superuser_reserved_connections: slots only pgfleet's admin role (a superuser) may take, so
 * role changes, usage samples and backups always get in */
#define ENGINE_ADMIN_RESERVED 3

/* The most direct client connections one server takes so that PgBouncer's pool_size server
 * connections and pgfleet's admin ones always fit: max_connections - pool_size -
 * ENGINE_ADMIN_RESERVED (0 when nothing is left: refuse such a budget). */
static inline int engine_direct_cap(int max_connections, int pool_size)
{
    int cap = max_connections - pool_size - ENGINE_ADMIN_RESERVED;
    return cap > 0 ? cap : 0;
}

/* Creates directories and, if missing, the golden data directory (initdb, ~1-2 s, once). */
int engine_open(const engine_config *cfg, engine **out, pf_err *e);
/* Forgets the engine (does not stop instances; see engine_stop_all). */
void engine_close(engine *en);

/* Makes instances/<id>/data from golden if it is not complete yet (a half-made copy is
 * removed and made again) and writes the port into its configuration. */
int engine_instance_create(engine *en, const char *db_id, int port, pf_err *e);

/* Starts the server (or adopts it if it already runs from its postmaster.pid) and waits
 * until it accepts connections on its socket (timeout_ms). ERR_NOT_FOUND without a data
 * directory; ERR_CONFLICT ("RestoreUnfinished") while engine_restore_overwriting();
 * ERR_TRANSIENT ("PortBusy") when port is taken, or when the server is not ready in time. */
int engine_instance_start(engine *en, const char *db_id, int port, int timeout_ms, pf_err *e);

/* Fast shutdown; waits for it to end. No error if it was not running. */
int engine_instance_stop(engine *en, const char *db_id, pf_err *e);

/* Stop (immediate) + remove instances/<id> and run/<id>. No error if missing. */
int engine_instance_destroy(engine *en, const char *db_id, pf_err *e);

/* True if the server's postmaster pid is alive. Reaps it if it was our child and died. */
bool engine_instance_running(engine *en, const char *db_id);

/* Takes a server that outlived the last pgfleet into the engine's table (no wait, no
 * signal), so engine_stop_all stops it even if no start adopted it yet. True if it runs. */
bool engine_instance_adopt(engine *en, const char *db_id);

/* True if instances/<id>/data is a complete copy. */
bool engine_instance_exists(engine *en, const char *db_id);

/* Ids of every instances/<id> directory on disk; caller frees with engine_free_ids. */
int engine_instance_list(engine *en, char ***ids, size_t *n, pf_err *e);
void engine_free_ids(char **ids, size_t n);

/* Names the socket directory of instance id also run/<alias> (a symlink; idempotent), so
 * what knows a server only by another name (PgBouncer's entry of a database, written before
 * its instance is known) reaches it. engine_instance_unalias removes the name (no error if
 * missing). */
int engine_instance_alias(engine *en, const char *id, const char *alias, pf_err *e);
int engine_instance_unalias(engine *en, const char *alias, pf_err *e);

/* ---- warm spares (spares.c) ----
 * A spare is an instance made before its database: copied from golden, its pgBackRest
 * stanza created, its server started on its private socket only (no TCP port) and
 * archiving to its stanza, with a `spare` mark beside its data (engine_instance_list skips
 * it). A create takes one (engine_spare_take), records its id as the database's instance,
 * and engine_instance_create/_start make it the database's: the start adopts the running
 * server, and restarts it only when the port it must serve needs another listener
 * (a server that listens on its socket only, behind the data path, is not restarted). */

/* Makes one started spare (~ a copy of golden, a stanza-create and a start); its id into
 * id_out (idsz bytes; may be NULL). A failure removes what was made (ERR_TRANSIENT
 * "DiskFull" on a full disk). stop (may be NULL) is asked between the steps: when it says
 * true the half-made spare is removed and the call fails with ERR_TRANSIENT "Stopping". */
int engine_spare_make(engine *en, bool (*stop)(void *), void *arg, char *id_out, size_t idsz,
                      pf_err *e);
/* Claims a running spare (atomic: two callers never get the same one) and writes its id;
 * false when none is ready. The caller owns the instance from here: a crash before it
 * records it leaves an instance with no mark, which the orphan sweep removes. */
bool engine_spare_take(engine *en, char *id, size_t idsz);
/* Spares ready now, and spares taken since engine_open. */
void engine_spares_stats(engine *en, int *ready, uint64_t *taken);
/* At startup: every marked instance is adopted (its server runs), started again (complete
 * data) or removed (half made); then those beyond keep are removed. Returns how many are
 * ready. */
int engine_spares_adopt(engine *en, int keep, pf_err *e);
/* Removes ready spares beyond keep; returns how many. */
int engine_spares_trim(engine *en, int keep);
/* Marked instances under home/instances, without an engine (pgfleet status). */
int engine_spares_on_disk(const char *home);

/* Fast shutdown of every instance this engine started or adopted, in parallel. */
void engine_stop_all(engine *en);

/* ---- sleep (instance.c): a sleeping database has no server process ---- */

/* What the data path needs of db_id: the server's socket file and its postmaster.pid. */
void engine_instance_endpoint(engine *en, const char *db_id, int port, char *sock, size_t nsock,
                              char *pidfile, size_t npid);

/* The files the data path serves TLS with, and whether loopback clients may skip TLS. */
void engine_tls_files(engine *en, const char **cert, const char **key, bool *loopback_optional);

/* Puts the running server of db_id to sleep: reads its write mark, switches the WAL and
 * waits until it is archived, checkpoints, stops it cleanly and writes the asleep mark
 * (instances/<id>/asleep, holding the write mark) once it is stopped. The next
 * engine_instance_start removes the mark. A kill between the stop and the mark leaves a
 * stopped server without the mark: the reconciler starts it again (never half-stopped). */
int engine_instance_suspend(engine *en, const char *db_id, int port, pf_err *e);

/* True when db_id sleeps (the mark is there and no server runs); mark (32 bytes, may be
 * NULL) gets the write mark it was put to sleep with. */
bool engine_instance_asleep(engine *en, const char *db_id, char *mark);

/* ---- roles (run over the private socket as PGFLEET_ADMIN_ROLE) ---- */

/* Creates the LOGIN role if missing, else sets its password; `verifier` is a SCRAM-SHA-256
 * secret (auth_scram_verifier in auth.h), so no plaintext password reaches the server or
 * its logs. The role is NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION, member of
 * PGFLEET_OWNER_ROLE with `SET role` to it. ERR_CONFLICT ("NotRunning") when the server
 * does not run (also for engine_role_drop). */
int engine_role_ensure(engine *en, const char *db_id, const char *role, const char *verifier,
                       pf_err *e);

/* Stops new logins, terminates the role's sessions and drops it. No error if missing. */
int engine_role_drop(engine *en, const char *db_id, const char *role, pf_err *e);

/* ---- backups (pgBackRest; backup.c, restore.c) ----
 * One repository, one stanza per database named by its id, one generated configuration
 * home/pgbackrest/pgbackrest.conf holding the [global] options; the per-database options
 * (pg1-path, socket, port) go on each command line. Every instance archives its WAL
 * (archive_command = pgbackrest archive-push) from its first start. */
typedef enum { ENGINE_BACKUP_FULL = 0, ENGINE_BACKUP_DIFF, ENGINE_BACKUP_INCR } engine_backup_type;

typedef struct engine_backup {
    char label[64]; /* e.g. 20261127-212142F, 20261127-212142F_20261128-000000I */
    engine_backup_type type;
    int64_t size;        /* bytes in the repository */
    int64_t start, stop; /* unix seconds */
} engine_backup;

/* Creates the database's stanza if missing (idempotent; the server need not run). */
int engine_backup_stanza_ensure(engine *en, const char *db_id, pf_err *e);

/* Takes an online backup of the running server (immediate checkpoint, never blocks its
 * writers) and fills *out with it. Backups of one stanza never overlap. A pgBackRest
 * failure has the kind of its exit code (see engine_restore). */
int engine_backup_run(engine *en, const char *db_id, int port, engine_backup_type type,
                      engine_backup *out, pf_err *e);

/* The stanza's backups, oldest first (none when the stanza does not exist). Caller frees. */
int engine_backup_list(engine *en, const char *db_id, engine_backup **out, size_t *n, pf_err *e);

/* Removes backups (and WAL) past the retention window. */
int engine_backup_expire(engine *en, const char *db_id, pf_err *e);

/* While a backup (or expire) of db_id runs, stops the stanza (`pgbackrest stop --force`):
 * its pgBackRest processes are terminated and no new one starts (until engine_backup_remove
 * removes the stop file), so a delete never waits behind a backup; the backup's op then
 * fails. Nothing to do (0) when the stanza is idle. */
int engine_backup_stop(engine *en, const char *db_id, pf_err *e);

/* Interrupts every running backup of this home (SIGTERM to its pgBackRest processes, SIGKILL
 * after 5 s; archive-push and restores are left alone): for serve's stop. Each interrupted
 * engine_backup_run returns an error; pgBackRest's next backup of the stanza cleans up. */
void engine_backups_interrupt(engine *en);

/* Removes the stanza: every backup and archived WAL of the database, and its lock, stop,
 * log and spool files. Stops the stanza first. No error if missing. */
int engine_backup_remove(engine *en, const char *db_id, pf_err *e);

/* Forces a WAL switch on the running server and waits until it is archived, so a
 * point-in-time restore can reach the present. */
int engine_backup_flush_wal(engine *en, const char *db_id, int port, pf_err *e);

/* A counter of the server's writes (rows changed, all databases); equal values mean no
 * write happened in between. ERR_CONFLICT ("NotRunning") when the server does not run. */
int engine_write_mark(engine *en, const char *db_id, char out[32], pf_err *e);

/* Usage of db_id's running server: its transaction counter (commits and rollbacks of every
 * database, since its statistics were last reset) and the size of its databases in bytes.
 * The sample is itself one transaction, counted by the next sample. ERR_CONFLICT
 * ("NotRunning") when the server does not run. */
int engine_usage_sample(engine *en, const char *db_id, int64_t *xacts, int64_t *bytes, pf_err *e);

/* Parses `pgbackrest info --output=json` for one stanza (pure; exposed for tests). */
int engine_backup_parse_info(const char *json, engine_backup **out, size_t *n, pf_err *e);

typedef struct engine_role {
    const char *role;
    const char *verifier;
} engine_role;

typedef struct engine_restore_spec {
    const char *source_id;    /* the stanza (database id) the backup belongs to */
    const char *label;        /* backup set */
    const char *target_time;  /* NULL: the backup's end; else "YYYY-MM-DD HH:MM:SS.mmm+00" */
    const engine_role *roles; /* the target's live credentials: exactly these logins remain */
    size_t nroles;
    const char *token; /* names this restore (the op id): once swapped in, it is not redone */
    int source_port;   /* > 0: a clone, a pg_basebackup of the running source_id on this port
                        * (over its private socket) instead of a restore of label */
} engine_restore_spec;

/* Replaces (or makes) the data directory of db_id from a backup, recovered by a
 * socket-only server that sets the target's roles to spec->roles; the caller starts the
 * server afterwards. Idempotent: an interrupted restore is finished or started over.
 * - A backup of db_id itself, to its end (no target_time): the server stops and
 *   pgBackRest restores into its data
 *   directory with --delta (only files that differ from the backup are rewritten). From
 *   the stop on, the old data is gone: engine_restore_overwriting() is true until a
 *   restore of db_id succeeds, and the server refuses to start.
 * - Any other source (a point in time, another database's backup, a new database, a
 *   clone): restored and
 *   recovered in instances/<id>/data.restore while the old server runs, then swapped in;
 *   a failure before the swap leaves the database as it was.
 * Kinds: ERR_NOT_FOUND when pgBackRest knows no backup set `label`; ERR_PERMANENT when the
 * backup is damaged (pgBackRest reports a checksum error, a missing or invalid file), so
 * a retry would fail the same way. */
int engine_restore(engine *en, const char *db_id, const engine_restore_spec *spec, pf_err *e);

/* True while db_id's data directory is neither its old data nor a recovered backup (an
 * in-place restore started and has not succeeded). */
bool engine_restore_overwriting(engine *en, const char *db_id);

/* Removes what a finished or abandoned restore left: a recovery server, data.restore,
 * data.ready, and the replaced data.old once the new data is in place. */
void engine_restore_cleanup(engine *en, const char *db_id);
/* ---- TLS (tls.c) ----
 * On engine_open: home/tls/ holds server.crt and server.key (0600, owned by the servers'
 * user) that every server and PgBouncer use; made from a private CA (tls/ca.crt, ca.key)
 * on first start, remade when the public host changes, or copied from given files. */

/* The CA certificate clients verify the servers with, or NULL when unknown (a given
 * certificate without --tls-ca). */
const char *engine_tls_ca_path(engine *en);

/* "tls reload": copies the given certificate and key again (when they changed) and reloads
 * every running server (SIGHUP to its postmaster) and PgBouncer (RELOAD) online: open
 * sessions stay, new ones get the new certificate. *changed (optional) tells whether the
 * files differed. A failure leaves the previous certificate served. */
int engine_tls_reload(engine *en, bool *changed, pf_err *e);

/* True when the given --tls-cert/--tls-key files differ from what is served (a renewal
 * that engine_tls_reload would pick up); false without given files. */
bool engine_tls_given_changed(engine *en);

/* ---- extensions (golden.c) ---- */

/* The default allowlist, comma-separated (docs/extensions.md explains each). */
const char *engine_extensions_default(void);
/* A valid allowlist: comma-separated names of packaged extensions that pgfleet knows how to
 * offer (ERR_INVALID naming the first that is not). */
int engine_extensions_check(const char *list, pf_err *e);

/* ---- pooler: one PgBouncer for every database (pooler.c) ----
 * Transaction pooling; database name = pgfleet database id; clients authenticate with
 * SCRAM against the same verifiers as the servers, and PgBouncer logs in to the server
 * over its private socket with the client's SCRAM keys (pass-through), so no plaintext
 * password is ever written. Files under home/pooler/ (0700, servers' user). */
typedef struct engine_pool_db {
    const char *id; /* database id: the pooled endpoint's dbname; run/<id> is its socket dir
                     * (the instance's, or an alias of it: engine_instance_alias) */
    int port;       /* the instance's port (names its socket) */
} engine_pool_db;

typedef struct engine_pool_user {
    const char *role;
    const char *verifier; /* SCRAM-SHA-256 secret, the same as on the server */
} engine_pool_user;

bool engine_pooler_enabled(engine *en);

/* Writes PgBouncer's files for exactly these databases and credentials when they changed
 * and, if PgBouncer runs, reloads it online (RELOAD on its admin console, which answers
 * once the new files are in force; clients stay connected). ERR_TRANSIENT on a full disk. */
int engine_pooler_apply(engine *en, const engine_pool_db *dbs, size_t ndbs,
                        const engine_pool_user *users, size_t nusers, pf_err *e);

/* How many times PgBouncer was told to reload since engine_open (each stalls its traffic
 * for a moment). */
uint64_t engine_pooler_reloads(engine *en);

/* Starts PgBouncer (its files must exist: apply first), or adopts the one that still runs
 * from its pid file, and waits until it answers. No-op when it runs. */
int engine_pooler_ensure(engine *en, int timeout_ms, pf_err *e);

/* True if PgBouncer runs. Reaps it if it was our child and died. */
bool engine_pooler_running(engine *en);

/* Immediate shutdown of PgBouncer (SIGTERM, then SIGKILL). */
void engine_pooler_stop(engine *en);

/* Server connections of db_id's pool in use by a client (in a transaction): SHOW POOLS'
 * sv_active. 0 when PgBouncer knows no such pool or is disabled. */
int engine_pooler_active(engine *en, const char *db_id, int *active, pf_err *e);

/* PAUSE db_id (waits for its running queries, closes its server connections; new queries
 * wait) within timeout_ms, else RESUME and ERR_TRANSIENT. 0 when the pool does not exist. */
int engine_pooler_pause(engine *en, const char *db_id, int timeout_ms, pf_err *e);
/* RESUME db_id; 0 when it was not paused. */
int engine_pooler_resume(engine *en, const char *db_id, pf_err *e);

#endif
