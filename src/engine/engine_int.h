/* engine internals shared by the files of src/engine. Not for other modules: they use
 * engine.h. Internal names carry the `engine__` prefix.
 *
 * The files form layers: a file calls only files on a lower line, never one beside or
 * above it (each section below names the file that defines it).
 *   1. postmaster.c (server processes), conf.c (postgresql.conf, pg_hba.conf), tls.c
 *   2. admin.c (the admin connection over a server's private socket)
 *   3. golden.c (the template every instance copies), roles.c, backup.c (pgBackRest),
 *      pooler.c (PgBouncer)
 *   4. instance.c (one server per database)
 *   5. restore.c, spares.c (servers started before their database)
 *   6. engine.c (open, close, stop all)
 *
 * Errors carry a kind (util/err.h), never an HTTP status or an API field name. */
#ifndef PF_ENGINE_ENGINE_INT_H
#define PF_ENGINE_ENGINE_INT_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/types.h>

#include "engine/engine.h"
#include "util/util.h"

#define ENGINE_ID_MAX 64
#define ENGINE_GOLDEN_LABEL ".golden" /* socket dir name of the temporary golden server */
/* A file in the golden (and so in every data directory copied from it) naming what the
 * golden holds; a golden with another version is made again (and its spares dropped), and a
 * data directory without the current one gets no pgextwlist (its databases lack the event
 * triggers that guard it: golden.c). */
#define ENGINE_GOLDEN_MARK "pgfleet.golden"
#define ENGINE_GOLDEN_VERSION "2 extensions-guard template1\n"
/* instances/<id>/<this> exists while the data of <id> is partly restored (restore.c) */
#define ENGINE_OVERWRITING_MARK "restore.overwriting"
/* instances/<id>/<this> marks a spare that no database has taken yet (spares.c) */
#define ENGINE_SPARE_MARK "spare"
/* The port number of every server behind the data path (it listens on its private socket
 * only, spares included): it names the socket file, .s.PGSQL.5432, in the instance's own
 * run/<id>/ directory. One number for all, so nothing about a spare's server changes when a
 * database takes it (its database's public port is the data path's). */
#define ENGINE_SOCKET_PORT 5432
#define ENGINE_STOP_FAST_MS 10000 /* how long a fast shutdown (SIGINT) may take */
#define ENGINE_STOP_QUIT_MS 5000  /* and an immediate one (SIGQUIT), or SIGKILL */

/* A server this engine started (child) or adopted. */
typedef struct engine_proc {
    char id[ENGINE_ID_MAX];
    pid_t pid;
    bool child; /* started by this process: reap with waitpid */
} engine_proc;

/* An admin session kept open to a server (admin.c). */
typedef struct engine_kept {
    char id[ENGINE_ID_MAX];
    PGconn *c;
} engine_kept;

struct engine {
    char *home;
    char *bindir;
    char *listen;
    proc_user user;
    char *golden_dir;              /* home/golden */
    char *instances_dir;           /* home/instances */
    char *run_dir;                 /* home/run */
    char *spare_dir;               /* home/spare: where older versions kept copies of golden */
    pthread_mutex_t spares_mu;     /* guards spares, spares_taken (spares.c) */
    char (*spares)[ENGINE_ID_MAX]; /* ready spares (their servers run), oldest first */
    size_t nspares, capspares;
    uint64_t spares_taken;
    pthread_mutex_t kept_mu; /* guards kept (admin.c) */
    engine_kept *kept;       /* admin sessions kept open, by instance id (the spares') */
    size_t nkept, capkept;
    pthread_mutex_t mu; /* guards procs (postmaster.c) */
    engine_proc *procs;
    size_t nprocs, capprocs;
    /* backups (backup.c) */
    char *pgbr;      /* the pgbackrest program */
    char *pgbr_dir;  /* home/pgbackrest: config, log, lock, spool */
    char *pgbr_conf; /* home/pgbackrest/pgbackrest.conf */
    char *repo;      /* repository path */
    int retention_days;
    int backup_procs;
    pthread_mutex_t bk_mu; /* guards bk_busy */
    pthread_cond_t bk_cv;
    char **bk_busy; /* keys held (stanzas with a pgBackRest backup running, clone sources) */
    size_t nbk_busy, capbk_busy;

    /* TLS (tls.c) */
    char *tls_dir;            /* home/tls (keys/ is pgfleet's own, root-only OAuth keys) */
    char *tls_cert, *tls_key; /* what the servers and PgBouncer load */
    char *tls_ca;             /* published CA, or NULL */
    char *tls_given_cert, *tls_given_key; /* --tls-cert/--tls-key, or NULL (generated) */
    bool tls_loopback_optional;           /* plaintext TCP from loopback addresses allowed */
    pthread_mutex_t tls_mu;               /* one reload at a time */
    char *extensions;                     /* the allowlist, comma-separated */
    char *dp_dir;                         /* the data path's directory, or NULL (no data path) */
    int dp_port;
    /* pooler (pooler.c) */
    char *pooler_bin, *pooler_dir, *pooler_host; /* pooler_bin NULL: disabled */
    int pooler_port;
    int max_connections, pool_size; /* the connection budget (engine_config) */
    int databases_per_server;       /* CREATE DATABASE budget (engine_config) */
    pthread_mutex_t pooler_mu;      /* guards the pooler's files and pid */
    pid_t pooler_pid;
    bool pooler_child;
    uint64_t pooler_reloads; /* RELOADs sent since open (under pooler_mu) */
};

/* A name of 1..max characters from [A-Za-z0-9_-] (ids, role names). */
static inline bool engine__valid_name(const char *s, size_t max)
{
    if (!s || !*s || strlen(s) > max)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-'))
            return false;
    return true;
}

/* ids become path components and socket names: [A-Za-z0-9_-], 1..63 chars */
static inline bool engine__valid_id(const char *id)
{
    return engine__valid_name(id, ENGINE_ID_MAX - 1);
}

/* engine__valid_id as 0, or -1 with an ERR_INVALID error. */
static inline int engine__check_id(const char *id, pf_err *e)
{
    return engine__valid_id(id) ? 0 : err_kind(e, ERR_INVALID, NULL, "invalid database id");
}

/* The port a database's server runs on: ENGINE_SOCKET_PORT behind the data path (no TCP
 * listener), else its public port (a server that listens on TCP itself). */
static inline int engine__server_port(const engine *en, int port)
{
    return en->listen[0] ? port : ENGINE_SOCKET_PORT;
}

/* A SCRAM-SHA-256 verifier, under 256 characters of printable ASCII without a space and
 * without any of reject (the quotes of where it is written). */
static inline bool engine__valid_verifier(const char *v, const char *reject)
{
    if (!v || strncmp(v, "SCRAM-SHA-256$", 14) != 0 || strlen(v) >= 256)
        return false;
    for (const char *p = v; *p; p++)
        if (*p < 0x21 || *p > 0x7e || strchr(reject, *p))
            return false;
    return true;
}

/* A full disk passes once space is freed: an internal error whose cause is ENOSPC or
 * EDQUOT (from a system call, a tool's output or a server's log) becomes ERR_TRANSIENT
 * with the code "DiskFull" (an op retries it until space is freed). */
static inline void engine__disk_full_is_transient(pf_err *e)
{
    if (e && e->kind == ERR_INTERNAL &&
        (strstr(e->message, "No space left on device") ||
         strstr(e->message, "Disk quota exceeded"))) {
        e->kind = ERR_TRANSIENT;
        snprintf(e->code, sizeof e->code, "DiskFull");
    }
}

/* ---- 1. postmaster.c: server processes ---- */

/* Starts `postgres -D datadir` as the engine's user in its own session, output appended
 * to logpath, then waits until it accepts connections on sockdir/port; logs "started the <what>"
 * about db_id (NULL: no database). On failure the server is stopped again: ERR_TRANSIENT when its
 * port is taken, its disk full or it was not ready in time; else the kind of the cause, with the
 * tail of its log. */
int engine__launch(engine *en, const char *db_id, const char *what, const char *datadir,
                   const char *sockdir, const char *logpath, int port, int timeout_ms,
                   pid_t *pid_out, pf_err *e);

/* Waits until the server of datadir accepts connections (its postmaster.pid, of child when
 * child > 0, says so) and its socket sockdir/.s.PGSQL.<port> is there; fails early if
 * `child` (> 0) exits. ERR_TRANSIENT on timeout. */
int engine__wait_ready(const char *datadir, const char *sockdir, int port, pid_t child,
                       int timeout_ms, pf_err *e);

/* Reads pid and port from datadir/postmaster.pid. false if missing or unparsable. */
bool engine__read_pidfile(const char *datadir, pid_t *pid, int *port);

/* The live postmaster of datadir, or 0. Reaps it if it was our child and is dead. */
pid_t engine__live_postmaster(const char *datadir);

/* Signals pid (SIGINT, then SIGQUIT, then SIGKILL as each wait runs out). */
bool engine__terminate(pid_t pid, int first_sig, int first_wait_ms);
/* Ends a temporary server (the golden copy's, a restore's recovery): closes *c, stops *pid
 * with SIGINT within wait_ms (then as engine__terminate) and sets it to -1; what names
 * the server in the error. */
int engine__stop_temporary(PGconn **c, pid_t *pid, int wait_ms, const char *what, pf_err *e);

/* The table of servers this engine started or adopted, by database id. */
void engine__track(engine *en, const char *id, pid_t pid, bool child);
void engine__untrack(engine *en, const char *id);
pid_t engine__tracked(engine *en, const char *id);
/* True when id's tracked server is pid and this process started it (its child). */
bool engine__started_here(engine *en, const char *id, pid_t pid);
/* A copy of the whole table (caller frees; NULL when empty). */
engine_proc *engine__tracked_all(engine *en, size_t *n);

/* ---- 1. conf.c: the generated server configuration ---- */

/* Writes text to path (atomically, with mode, owned by the servers' user) unless it holds
 * that already; sets *changed (optional) when it wrote. */
int engine__write_if_changed(engine *en, const char *path, const char *text, int mode,
                             bool *changed, pf_err *e);

/* s as a configuration string value: in single quotes, quotes doubled. Caller frees. */
char *engine__conf_quote(const char *s);

/* Whether pgfleet's server module (pgfleet_limits.so) is installed beside PostgreSQL's own
 * (ERR_INVALID, naming the file, when it is not). */
int engine__module_check(const engine *en, pf_err *e);
/* Whether datadir's postgresql.conf preloads what the generated one does. It is rewritten
 * only right before its server starts, or when it preloads that already, so a running
 * server whose file does not preload it was started without it (by an older pgfleet) and
 * must restart to get it: a reload does not load libraries. */
bool engine__conf_preloads_current(const char *datadir);
/* Writes the whole postgresql.conf of datadir (with `archive`, the archive settings of
 * engine__archive_conf) and its pg_hba.conf, each only if it changed. */
int engine__write_conf(engine *en, const char *datadir, const char *sockdir, const char *listen,
                       int port, const char *archive, pf_err *e);
/* True when datadir was copied from a golden of ENGINE_GOLDEN_VERSION (golden.c). */
bool engine__golden_current(const char *datadir);
/* The TCP rules that end a pg_hba.conf or PgBouncer's hba.conf (one syntax): SCRAM over TLS
 * from any address; without TLS from loopback addresses only when loopback_optional, else
 * refused. */
void engine__hba_tls_rules(util_buf *b, bool loopback_optional);
/* Rewrites pg_hba.conf of datadir if it differs from the generated one. */
int engine__write_hba(engine *en, const char *datadir, pf_err *e);

/* ---- 1. tls.c ---- */

/* Makes or checks home/tls; fills en->tls_*. */
int engine__tls_ensure(engine *en, const engine_config *cfg, pf_err *e);
void engine__tls_free(engine *en);
/* With a given certificate: copies it and its key into tls/ again when they changed
 * (checked to belong together first); *changed tells if they did. */
int engine__tls_refresh(engine *en, bool *changed, pf_err *e);

/* ---- 2. admin.c: the admin connection ---- */

/* Connects as the admin role over the socket in sockdir to the `postgres` database; quiets
 * statement logging and keeps its statements out of pg_stat_activity and
 * pg_stat_statements (they carry SCRAM verifiers). */
int engine__admin_connect(const char *sockdir, int port, PGconn **out, pf_err *e);
/* The same, to database dbname. */
int engine__admin_connect_db(const char *sockdir, int port, const char *dbname, PGconn **out,
                             pf_err *e);

/* Connects as the admin role to db_id's running server (ERR_CONFLICT when it is not
 * running, ERR_INVALID for a bad id). */
int engine__admin_connect_running(engine *en, const char *db_id, PGconn **out, pf_err *e);

/* Kept admin sessions: a spare's is opened while the spare is made, so the role create
 * of its hand-over runs on an open session (no backend fork, no library loads, warm
 * caches). Keeping c for id gives the engine ownership (an older one of id is closed);
 * taking it gives it back to the caller (NULL when none is kept), who finds out on its
 * first statement whether the server closed it meanwhile (roles.c connects again then);
 * forget closes id's (every one: id NULL). */
void engine__admin_keep(engine *en, const char *id, PGconn *c);
PGconn *engine__admin_take(engine *en, const char *id);
void engine__admin_forget(engine *en, const char *id);
/* The kept session of db_id (*kept true) or else a new admin connection to its running
 * server (engine__admin_connect_running). */
int engine__admin_session(engine *en, const char *db_id, PGconn **out, bool *kept, pf_err *e);

/* Runs one statement with text params; res (optional) receives the result to PQclear. */
int engine__exec(PGconn *c, const char *sql, int nparams, const char *const *params, PGresult **res,
                 pf_err *e);
/* Runs several statements (no parameters) in one round trip; fails at the first error; res
 * (optional) receives the last statement's result to PQclear. */
int engine__exec_script(PGconn *c, const char *sql, PGresult **res, pf_err *e);

/* ---- 3. golden.c ---- */

/* Makes home/golden if it is not complete or not of ENGINE_GOLDEN_VERSION. */
int engine__golden_ensure(engine *en, pf_err *e);

/* ---- 3. roles.c ---- */

/* Connection roles on an admin connection (to a server of db_id): drop every LOGIN role not
 * in roles (except the admin role), then create or update each of roles with its verifier. */
int engine__roles_sync(PGconn *c, const char *db_id, const engine_role *roles, size_t n, pf_err *e);
/* Runs a role create's statements for a throwaway role on c and rolls them back: the
 * session's catalog caches are loaded and the catalog pages' first WAL images (full-page
 * writes after the last checkpoint) are written, so the real create on a kept session
 * only changes and commits. Nothing stays. */
int engine__roles_rehearse(PGconn *c, pf_err *e);

/* ---- 3. backup.c ---- */

/* Sets up the repository and writes the pgBackRest configuration. */
int engine__backup_open(engine *en, const engine_config *cfg, pf_err *e);
void engine__backup_close(engine *en);
/* The archive settings of postgresql.conf for datadir: archiving to the database's stanza
 * for instances/<id>/data (and data.restore), off for anything else. Caller frees. */
char *engine__archive_conf(engine *en, const char *datadir);
/* The pgBackRest configuration text (pure; exposed for tests). Caller frees. */
char *engine__pgbr_conf_text(const char *repo, const char *dir, int retention_days, int procs);
/* Runs pgbackrest as the servers' user: argv after the program; out gets its output. A
 * failure's kind follows pgBackRest's exit code: ERR_NOT_FOUND for a backup set that does
 * not exist, ERR_PERMANENT for a damaged backup (a checksum, a missing or invalid file),
 * ERR_TRANSIENT for a held lock, an archive timeout or a full disk, else ERR_INTERNAL. */
int engine__pgbr_run(engine *en, const char *const *args, char *out, size_t outsz, pf_err *e);
/* Kills (SIGTERM, then SIGKILL) every pgbackrest process with the argument `arg`; with
 * keep_archive, not the archive-push/archive-get that PostgreSQL runs. */
void engine__pgbr_kill(const char *arg, bool keep_archive);
/* Waits until no other thread holds key, then holds it (the keys of pgBackRest's stanza
 * locks are database ids; other users prefix theirs). */
void engine__busy_lock(engine *en, const char *key);
void engine__busy_unlock(engine *en, const char *key);

/* ---- 3. pooler.c ---- */

/* Sets up en->pooler_* from cfg. */
int engine__pooler_init(engine *en, const engine_config *cfg, pf_err *e);
void engine__pooler_free(engine *en);

/* The pooler's generated files, as pure functions of their inputs (exposed for the unit
 * tests). Entries with an invalid id, role or verifier are left out. Caller frees. */
typedef struct engine__pooler_params {
    const char *listen_host;
    int listen_port;
    const char *run_dir;    /* instances' socket dirs are run_dir/<id> */
    const char *pooler_dir; /* ini, auth file, hba, log, pid, admin socket */
    const char *tls_cert, *tls_key;
    bool loopback_optional; /* plaintext clients allowed (hba then limits them to loopback) */
    int pool_size;          /* server connections per database (<= 0: ENGINE_POOL_SIZE_DEFAULT) */
    const char *dp_dir;     /* non-NULL: one fallback `*` database through the data path */
    int dp_port;
} engine__pooler_params;

char *engine__pooler_ini(const engine__pooler_params *p, const engine_pool_db *dbs, size_t n);
char *engine__pooler_auth(const engine_pool_user *users, size_t n);
char *engine__pooler_hba(bool loopback_optional);
/* RELOAD on PgBouncer's console when it runs (SIGHUP if the console does not answer). */
int engine__pooler_reload(engine *en, pf_err *e);

/* ---- 4. instance.c ---- */

/* mkdir -p path, then makes sure it is the servers' user's and 0700 even if it existed. */
int engine__own_dir(engine *en, const char *path, pf_err *e);

/* ---- 5. spares.c ---- */

/* Removes the copies of golden that older versions kept under home/spare. */
void engine__spares_tidy(engine *en);

/* ---- 5. restore.c ---- */

/* Marks the new timeline's history and its complete segments (those before `current`, the
 * segment being written) in rst/pg_wal for archiving (exposed for tests). */
int engine__mark_new_timeline(engine *en, const char *rst, const char *current, pf_err *e);

#endif
