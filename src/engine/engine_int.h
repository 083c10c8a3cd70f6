/* engine internals shared by instance.c, golden.c, conf.c and roles.c. Not for other
 * modules: they use engine.h. Internal names carry the `engine__` prefix. */
#ifndef PF_ENGINE_ENGINE_INT_H
#define PF_ENGINE_ENGINE_INT_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "engine/engine.h"

#define ENGINE_ID_MAX 64
#define ENGINE_GOLDEN_LABEL ".golden" /* socket dir name of the temporary golden server */

/* A server this engine started (child) or adopted. */
typedef struct engine_proc {
    char id[ENGINE_ID_MAX];
    pid_t pid;
    bool child; /* started by this process: reap with waitpid */
} engine_proc;

struct engine {
    char *home;
    char *bindir;
    char *listen;
    proc_user user;
    char *golden_dir;    /* home/golden */
    char *instances_dir; /* home/instances */
    char *run_dir;       /* home/run */
    char *spare_dir;     /* home/spare: ready-<rand> are complete copies of golden */
    pthread_mutex_t mu;  /* guards procs */
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
    char **bk_busy; /* stanzas with a pgBackRest backup running */
    size_t nbk_busy;

    /* TLS (tls.c) */
    char *keys_dir;           /* home/keys */
    char *tls_cert, *tls_key; /* what the servers and PgBouncer load */
    char *tls_ca;             /* published CA, or NULL */
    /* pooler (pooler.c) */
    char *pooler_bin, *pooler_dir, *pooler_host; /* pooler_bin NULL: disabled */
    int pooler_port;
    pthread_mutex_t pooler_mu; /* guards the pooler's files and pid */
    pid_t pooler_pid;
    bool pooler_child;
};

/* ids become path components and socket names: [A-Za-z0-9_-], 1..63 chars */
bool engine__valid_id(const char *id);

/* Writes the whole postgresql.conf (only if it changed) and pg_hba.conf of datadir. */
/* Rewrites pg_hba.conf of datadir if it differs from the generated one. */
int engine__write_hba(engine *en, const char *datadir, pf_err *e);
int engine__write_conf(engine *en, const char *datadir, const char *sockdir, const char *listen,
                       int port, pf_err *e);

/* Starts `postgres -D datadir` as the engine's user in its own session, output appended
 * to logpath, then waits until it answers on sockdir/port. On failure the server is
 * stopped again. */
int engine__launch(engine *en, const char *label, const char *datadir, const char *sockdir,
                   const char *logpath, int port, int timeout_ms, pid_t *pid_out, pf_err *e);

/* Waits until a server answers on sockdir/port; fails early if `child` (> 0) exits. */
int engine__wait_ready(const char *sockdir, int port, pid_t child, int timeout_ms, pf_err *e);

/* Reads pid and port from datadir/postmaster.pid. false if missing or unparsable. */
bool engine__read_pidfile(const char *datadir, pid_t *pid, int *port);

/* The live postmaster of datadir, or 0. Reaps it if it was our child and is dead. */
pid_t engine__live_postmaster(engine *en, const char *datadir);

/* Signals pid (SIGINT, then SIGQUIT, then SIGKILL as each wait runs out). */
bool engine__terminate(pid_t pid, int first_sig, int first_wait_ms);

void engine__track(engine *en, const char *id, pid_t pid, bool child);
void engine__untrack(engine *en, const char *id);
pid_t engine__tracked(engine *en, const char *id);

/* Connects as the admin role over the socket in sockdir; quiets statement logging. */
int engine__admin_connect(const char *sockdir, int port, PGconn **out, pf_err *e);

/* Runs one statement with text params; res (optional) receives the result to PQclear. */
int engine__exec(PGconn *c, const char *sql, int nparams, const char *const *params, PGresult **res,
                 pf_err *e);

/* ---- backups (backup.c) ---- */
/* Sets up the repository and writes the pgBackRest configuration. */
int engine__backup_open(engine *en, const engine_config *cfg, pf_err *e);
void engine__backup_close(engine *en);
/* The archive settings of postgresql.conf for datadir: archiving to the database's stanza
 * for instances/<id>/data (and data.restore), off for anything else. Caller frees. */
char *engine__archive_conf(engine *en, const char *datadir);
/* The pgBackRest configuration text (pure; exposed for tests). Caller frees. */
char *engine__pgbr_conf_text(const char *repo, const char *dir, int retention_days, int procs);
/* Runs pgbackrest as the servers' user: argv after the program; out gets its output. */
int engine__pgbr_run(engine *en, const char *const *args, char *out, size_t outsz, pf_err *e);
/* Kills (SIGTERM, then SIGKILL) every pgbackrest process with the argument `arg`; with
 * keep_archive, not the archive-push/archive-get that PostgreSQL runs. */
void engine__pgbr_kill(const char *arg, bool keep_archive);
/* Waits until no other thread holds key, then holds it (the keys of pgBackRest's stanza
 * locks are database ids; other users prefix theirs). */
void engine__busy_lock(engine *en, const char *key);
void engine__busy_unlock(engine *en, const char *key);
/* Marks the new timeline's history and its complete segments (those before `current`, the
 * segment being written) in rst/pg_wal for archiving (restore.c; exposed for tests). */
int engine__mark_new_timeline(engine *en, const char *rst, const char *current, pf_err *e);
/* Connection roles on an admin connection: drop every LOGIN role not in roles (except the
 * admin role), then create or update each of roles with its verifier (roles.c). */
int engine__roles_sync(PGconn *c, const engine_role *roles, size_t n, pf_err *e);

/* Makes home/golden if it is not complete. */
int engine__golden_ensure(engine *en, pf_err *e);

/* Makes or checks home/keys (tls.c); fills en->tls_*. */
int engine__tls_ensure(engine *en, const engine_config *cfg, pf_err *e);
void engine__tls_free(engine *en);

/* Sets up en->pooler_* from cfg (pooler.c). */
int engine__pooler_init(engine *en, const engine_config *cfg, pf_err *e);
void engine__pooler_free(engine *en);

/* The pooler's generated files, as pure functions of their inputs (pooler.c; exposed for
 * the unit tests). Entries with an invalid id, role or verifier are left out. Caller
 * frees. */
typedef struct engine__pooler_params {
    const char *listen_host;
    int listen_port;
    const char *run_dir;    /* instances' socket dirs are run_dir/<id> */
    const char *pooler_dir; /* ini, auth file, hba, log, pid, admin socket */
    const char *tls_cert, *tls_key;
} engine__pooler_params;

char *engine__pooler_ini(const engine__pooler_params *p, const engine_pool_db *dbs, size_t n);
char *engine__pooler_auth(const engine_pool_user *users, size_t n);
char *engine__pooler_hba(void);

#endif
