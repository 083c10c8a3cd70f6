/* store: the catalog. SQLite in WAL mode, versioned migrations, typed queries.
 *
 * Threading: one store is shared by all threads; each thread gets its own SQLite
 * connection (created on first use), so reads run in parallel. A change that touches
 * several rows runs between store_tx_begin and store_tx_commit (BEGIN IMMEDIATE) on the
 * calling thread's connection; every single-call write is its own transaction.
 *
 * Visibility: rows in a "deleting" state (databases, connections) and rows of other
 * workspaces are invisible to every get/list that takes a workspace id: those calls
 * answer 404 exactly as for an unknown id. Functions named *_internal see everything
 * and are for the ops workers and the reconciler.
 *
 * Errors: not found -> status 404 code "NotFound"; uniqueness -> 409 "Conflict";
 * bad cursor -> 400 "ValidationError" hint "cursor"; a status move -> 409 "StatusChanged" or
 * "IllegalTransition" (store_database_transition); anything else -> 500.
 *
 * Inside: sql.h is the one SQL core, schema.c the migrations, then a file per resource. */
#ifndef PF_STORE_STORE_H
#define PF_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/util.h"

#define STORE_NAME_MAX 256 /* names are at most 255 bytes */
#define STORE_TS_MAX 32    /* ISO-8601 timestamps */
#define STORE_VERIFIER_MAX 256
#define STORE_REASON_MAX 384
#define STORE_ARGS_MAX 512

typedef struct store store;

int store_open(const char *path, store **out, pf_err *e); /* creates + migrates */
void store_close(store *s);
int store_schema_version(store *s); /* latest applied migration */

int store_tx_begin(store *s, pf_err *e);
/* A read transaction (BEGIN DEFERRED): the reads until store_tx_commit (or rollback) see
 * one snapshot, e.g. a list and the rows each item needs. */
int store_tx_begin_read(store *s, pf_err *e);
int store_tx_commit(store *s, pf_err *e);
void store_tx_rollback(store *s);

/* ---- pagination ---- */
typedef struct store_page {
    const char *cursor; /* NULL or "": from the start; else the id of the last row seen */
    int limit;          /* 1..100, validated by the caller */
} store_page;

typedef struct store_page_out {
    bool has_more;
    char next_cursor[PF_ID_MAX]; /* "" when !has_more */
} store_page_out;

/* ---- workspaces ---- */
typedef struct store_workspace {
    char id[PF_ID_MAX]; /* wksp_... */
    char name[STORE_NAME_MAX];
    char created_at[STORE_TS_MAX];
} store_workspace;

int store_workspace_insert(store *s, const store_workspace *w, pf_err *e);
int store_workspace_get(store *s, const char *id, store_workspace *out, pf_err *e);
/* Lists workspaces with only_id (a token sees only its own) or all when only_id is NULL. */
int store_workspace_list(store *s, const char *only_id, const store_page *pg, store_workspace **out,
                         size_t *n, store_page_out *po, pf_err *e);
/* The first workspace created ("default"), for the CLI's default. */
int store_workspace_first(store *s, store_workspace *out, pf_err *e);

/* ---- service tokens (only the SHA-256 hex of the value is stored) ---- */
typedef struct store_token {
    char id[PF_ID_MAX]; /* tok_... */
    char workspace_id[PF_ID_MAX];
    char name[STORE_NAME_MAX];
    char hash[65];
    char value_hint[16]; /* last few chars of the value, shown after creation */
    char created_at[STORE_TS_MAX];
    char expires_at[STORE_TS_MAX]; /* "" = never */
    bool is_operator;              /* reads the whole fleet, nothing else (schema version 8) */
} store_token;

int store_token_insert(store *s, const store_token *t, pf_err *e);
/* 404 if no token has this hash. Expiry is the caller's check. */
int store_token_by_hash(store *s, const char *hash, store_token *out, pf_err *e);

/* ---- projects ---- */
typedef struct store_project {
    char id[PF_ID_MAX]; /* proj_... */
    char workspace_id[PF_ID_MAX];
    char name[STORE_NAME_MAX];
    char logical_id[STORE_NAME_MAX]; /* "" = null */
    char default_region[32];         /* "" = null */
    char created_at[STORE_TS_MAX];
    char expires_at[STORE_TS_MAX]; /* "" = never (schema version 7): the project is deleted then */
} store_project;

int store_project_insert(store *s, const store_project *p,
                         pf_err *e); /* 409 on dup logicalId in workspace */
int store_project_get(store *s, const char *ws, const char *id, store_project *out, pf_err *e);
int store_project_list(store *s, const char *ws, const char *logical_id /* NULL = any */,
                       const store_page *pg, store_project **out, size_t *n, store_page_out *po,
                       pf_err *e);
int store_project_update_name(store *s, const char *ws, const char *id, const char *name,
                              pf_err *e);
/* Deletes the project row and its branches; its databases must already be gone or
 * marked deleting (their rows keep project_id until their delete op removes them). */
int store_project_delete(store *s, const char *ws, const char *id, pf_err *e);
/* A project's settings (schema version 6): a JSON object as text, at most
 * STORE_SETTINGS_MAX - 1 bytes; "" when none were set. */
#define STORE_SETTINGS_MAX 8192
int store_project_settings(store *s, const char *ws, const char *id, char out[STORE_SETTINGS_MAX],
                           pf_err *e);
int store_project_set_settings(store *s, const char *ws, const char *id, const char *json,
                               pf_err *e);
/* Moves project id of workspace from to workspace to, with everything that hangs off it: its
 * branches and backups (through the project and its databases), its databases (deleting ones
 * too) and their connections. 404 when from has no such project; 409 (hint logicalId) when
 * to already has a project with its logicalId. One transaction. */
int store_project_transfer(store *s, const char *from, const char *id, const char *to, pf_err *e);
/* A project's expiry (ISO-8601 UTC as util_iso_from_ms writes it; NULL or "" clears it). A
 * transfer clears it too. */
int store_project_set_expiry(store *s, const char *ws, const char *id, const char *expires_at,
                             pf_err *e);
/* At most max projects of any workspace whose expiry is at or before now (ISO-8601 UTC),
 * soonest first, into a new array (caller frees). */
int store_project_expired(store *s, const char *now, store_project **out, size_t *n, size_t max,
                          pf_err *e);

/* ---- branches ---- */
typedef struct store_branch {
    char id[PF_ID_MAX]; /* br_... */
    char project_id[PF_ID_MAX];
    char git_name[STORE_NAME_MAX]; /* unique within the project (409) */
    bool is_default;               /* exactly one per project */
    bool production; /* role: the project's first branch is production, later ones preview */
    char created_at[STORE_TS_MAX];
    char updated_at[STORE_TS_MAX];
} store_branch;

/* The store decides the role (b->production is not read): a project's first branch is its
 * production branch and its default whatever b->is_default says; later ones are preview. */
int store_branch_insert(store *s, const store_branch *b, pf_err *e);
/* Gets a branch whose project is in workspace ws. */
int store_branch_get(store *s, const char *ws, const char *id, store_branch *out, pf_err *e);
int store_branch_by_git_name(store *s, const char *project_id, const char *git_name,
                             store_branch *out, pf_err *e);
int store_branch_default(store *s, const char *project_id, store_branch *out, pf_err *e);
int store_branch_list(store *s, const char *project_id, const char *git_name /* exact or NULL */,
                      const char *git_name_contains /* or NULL */, const store_page *pg,
                      store_branch **out, size_t *n, store_page_out *po, pf_err *e);
/* Makes id the project's default branch (clearing the old default), bumps updated_at. */
int store_branch_set_default(store *s, const char *id, pf_err *e);
int store_branch_delete(store *s, const char *id, pf_err *e);
/* Number of live (not deleting) databases on the branch. */
int store_branch_database_count(store *s, const char *id, int *count, pf_err *e);

/* ---- databases ---- */
typedef enum {
    DB_PROVISIONING = 0,
    DB_READY,
    DB_RECOVERING,
    DB_FAILURE,
    DB_DELETING /* internal: invisible to the API */
} store_db_status;

const char *store_db_status_name(store_db_status st); /* "provisioning", ... "deleting" */

/* The legal moves (a table beside this enum in the store, one row per move):
 *   provisioning -> ready | failure | deleting
 *   ready        -> recovering | failure | deleting
 *   recovering   -> ready | failure | deleting
 *   failure      -> recovering | deleting
 * deleting is final: the delete op removes the row. A move to the same status is not a move.
 *
 * The transition is generic inside the store: a state machine description (the states'
 * names, the legal moves, a conditional UPDATE and a SELECT of the column) and one function
 * that checks, updates and logs. The awake/asleep state of a sleeping database plugs in as a
 * second description over its own column (added by its migration, with its own enum and
 * move table here) and a store_database_power_transition(id, from, to, ...) wrapper: no
 * second copy of the check, the conflict answers or the log line. */
bool store_db_status_legal(store_db_status from, store_db_status to);

typedef struct store_database {
    char id[PF_ID_MAX]; /* db_... */
    char workspace_id[PF_ID_MAX];
    char project_id[PF_ID_MAX];
    char branch_id[PF_ID_MAX]; /* "" = null */
    char name[STORE_NAME_MAX];
    char logical_id[STORE_NAME_MAX]; /* "" = null; unique within a branch (409) */
    store_db_status status;
    char status_reason[STORE_REASON_MAX]; /* why it failed; "" otherwise */
    bool is_default;
    char region[32];
    char source_type[16]; /* "empty" | "backup" | "database" */
    char source_database_id[PF_ID_MAX];
    char source_backup_id[PF_ID_MAX];
    int port; /* direct endpoint TCP port; unique among all rows; set at insert, never moved */
    char default_connection_id[PF_ID_MAX]; /* "" = null */
    char created_at[STORE_TS_MAX];
    /* Health below the status (restart intensity): "" when the server is healthy, else why
     * it is not restarted on every reconcile pass. Not shown by the API; shown by metrics
     * and status. */
    char unhealthy[STORE_REASON_MAX];
    /* The instance (server directories, pgBackRest stanza) that serves the database: ""
     * until a provision, restore or clone attaches one (store_database_set_instance); the
     * database's own id for databases made before instances had ids of their own. */
    char instance_id[PF_ID_MAX];
} store_database;

typedef struct store_db_filter {
    const char *project_id;      /* NULL = any */
    const char *logical_id;      /* NULL = any */
    const char *branch_id;       /* NULL = any; "unassigned" = branch_id IS NULL */
    const char *branch_git_name; /* NULL = any */
} store_db_filter;

int store_database_insert(store *s, const store_database *d, pf_err *e);
int store_database_get(store *s, const char *ws, const char *id, store_database *out, pf_err *e);
int store_database_get_internal(store *s, const char *id, store_database *out, pf_err *e);
int store_database_list(store *s, const char *ws, const store_db_filter *f, const store_page *pg,
                        store_database **out, size_t *n, store_page_out *po, pf_err *e);
/* The ids and revisions of the page store_database_list would answer (the same rows, in
 * order). The revision rises with every change a database's list item shows: its row, its
 * connections, its project's name (the catalog's triggers, schema.c). */
typedef struct store_database_rev {
    char id[PF_ID_MAX];
    int64_t rev;
} store_database_rev;
int store_database_list_revs(store *s, const char *ws, const store_db_filter *f,
                             const store_page *pg, store_database_rev **out, size_t *n,
                             store_page_out *po, pf_err *e);
/* The rows of the databases ids[0..nids), any state, in list order (seq). */
int store_database_list_of(store *s, const char *const *ids, size_t nids, store_database **out,
                           size_t *n, pf_err *e);
/* Every database row, any state (reconciler). */
int store_database_list_internal(store *s, store_database **out, size_t *n, pf_err *e);
/* A database's status moves only through here. A conditional update: the row must still
 * be in `from` (the status the caller read), else 409 "StatusChanged" (ERR_CONFLICT);
 * from -> to must be a legal move (store_db_status_legal), else 409 "IllegalTransition";
 * 404 when there is no such row. reason is kept for failure ("" clears). Joins the
 * caller's transaction when one is open. Logs one line (log_db_info: "status A -> B"). */
int store_database_transition(store *s, const char *id, store_db_status from, store_db_status to,
                              const char *reason, pf_err *e);
/* Sets unhealthy ("" or NULL = healthy again). 404 when there is no such row. */
int store_database_set_unhealthy(store *s, const char *id, const char *reason, pf_err *e);
/* Attaches instance_id to the database, once: 404 when the row is gone or already has
 * another instance (its instance never changes afterwards). */
int store_database_set_instance(store *s, const char *id, const char *instance_id, pf_err *e);
int store_database_set_default_connection(store *s, const char *id, const char *conn_id, pf_err *e);
/* name / branch_id ("" = null) / logical_id; NULL leaves a field unchanged. 409 on dup logicalId.
 */
int store_database_update(store *s, const char *id, const char *name, const char *branch_id,
                          const char *logical_id, pf_err *e);
/* Clears is_default on the project's other databases when making id the default. */
int store_database_set_default(store *s, const char *project_id, const char *id, pf_err *e);
int store_database_delete_row(store *s, const char *id, pf_err *e); /* also its connections */
/* Lowest port of [lo, hi] that no database row holds and util_port_busy() reports free,
 * searching the whole range; 409 "Conflict" hint "port" when none. Called in the
 * transaction that inserts the database: a database's port never changes afterwards. */
int store_port_allocate(store *s, int lo, int hi, int *port, pf_err *e);

/* ---- connections ---- */
typedef struct store_connection {
    char id[PF_ID_MAX]; /* conn_... */
    char workspace_id[PF_ID_MAX];
    char database_id[PF_ID_MAX];
    char name[STORE_NAME_MAX];
    char role[64];                     /* PostgreSQL role name, generated by us */
    char verifier[STORE_VERIFIER_MAX]; /* SCRAM-SHA-256 secret; the password is never stored */
    bool deleting;                     /* internal: invisible to the API */
    char created_at[STORE_TS_MAX];
} store_connection;

int store_connection_insert(store *s, const store_connection *c, pf_err *e);
int store_connection_get(store *s, const char *ws, const char *id, store_connection *out,
                         pf_err *e);
int store_connection_get_internal(store *s, const char *id, store_connection *out, pf_err *e);
/* database_id NULL = all of the workspace's live connections. */
int store_connection_list(store *s, const char *ws, const char *database_id, const store_page *pg,
                          store_connection **out, size_t *n, store_page_out *po, pf_err *e);
/* All live connections of a database, oldest first, no paging (for the database shape). */
int store_connection_list_for_db(store *s, const char *database_id, bool include_deleting,
                                 store_connection **out, size_t *n, pf_err *e);
/* The live connections of the databases ids[0..nids) in one read, by database id then
 * oldest first (for a page of databases). */
int store_connection_list_for_dbs(store *s, const char *const *ids, size_t nids,
                                  store_connection **out, size_t *n, pf_err *e);
int store_connection_set_verifier(store *s, const char *id, const char *verifier, pf_err *e);
int store_connection_mark_deleting(store *s, const char *id, pf_err *e);
int store_connection_delete_row(store *s, const char *id, pf_err *e);

/* In one read transaction: every database that is neither deleting nor failed, and every
 * live (not deleting) connection of those databases, oldest first. For PgBouncer's files.
 * Caller frees both arrays. */
int store_pool_list(store *s, store_database **dbs, size_t *ndb, store_connection **conns,
                    size_t *nconn, pf_err *e);

/* ---- operations: the durable queue of long work ---- */
typedef enum {
    OP_DB_PROVISION = 0, /* make the instance exist, run, and carry every connection's role */
    OP_DB_DELETE,        /* stop the instance, remove its files, delete the rows */
    OP_CONN_SYNC,        /* make the role exist with the catalog's verifier (create, rotate) */
    OP_CONN_DROP,        /* end the role's sessions, drop it, delete the row */
    /* backups (schema version 3); args carry the details as JSON */
    OP_DB_BACKUP,  /* take a pgBackRest backup; args {"backupId","type"} */
    OP_DB_RESTORE, /* replace the data from a backup; args {"sourceDatabaseId","backupId",...} */
    OP_DB_CLONE,   /* back up a live source, then restore it into this database */
    OP__COUNT
} store_op_kind;

typedef enum { OPS_PENDING = 0, OPS_RUNNING, OPS_DONE, OPS_FAILED } store_op_state;

const char *store_op_kind_name(store_op_kind k);
const char *store_op_state_name(store_op_state st);

typedef struct store_op {
    char id[PF_ID_MAX]; /* op_... */
    store_op_kind kind;
    store_op_state state;
    char database_id[PF_ID_MAX];
    char connection_id[PF_ID_MAX]; /* "" unless a connection op */
    int attempts;
    char error[STORE_REASON_MAX];
    char created_at[STORE_TS_MAX];
    char updated_at[STORE_TS_MAX];
    char args[STORE_ARGS_MAX]; /* JSON object text, "" = none (schema version 3) */
} store_op;

int store_op_insert(store *s, const store_op *op, pf_err *e); /* state must be PENDING */
int store_op_get(store *s, const char *id, store_op *out, pf_err *e);
/* A lane of op workers: the kinds it claims (bit 1u << kind), and which kinds do not wait
 * behind which others of the same database (today: conn_sync and conn_drop pass db_backup). */
typedef struct store_op_lane {
    uint32_t kinds;
    uint32_t passers;
    uint32_t passed;
} store_op_lane;
/* Claims the oldest pending op of the lane whose run_after has passed, whose database has no
 * running op and no older pending op (except where passers/passed let it pass); marks it
 * running and bumps attempts. 1 = claimed into *out, 0 = none ready, -1 = error. Ops of
 * one database thus run one at a time and in order across every lane. */
int store_op_claim(store *s, const store_op_lane *lane, store_op *out, pf_err *e);
int store_op_finish(store *s, const char *id, store_op_state final_state, const char *error,
                    pf_err *e);
/* Puts a running op back to pending, not to be claimed before run_after_ms (wall clock ms,
 * util_wall_ms(); 0 = at once). 404 for an unknown op, 409 when it is not running. */
int store_op_requeue(store *s, const char *id, const char *error, int64_t run_after_ms, pf_err *e);
/* At startup: every RUNNING op becomes PENDING again (its worker died with us). */
int store_op_reset_running(store *s, int *count, pf_err *e);
/* Deletes the ops that ended (done or failed) before `before` (an ISO timestamp); *count
 * gets how many. Pending and running ops stay, whatever their age. */
int store_op_prune(store *s, const char *before, int *count, pf_err *e);
/* Number of PENDING or RUNNING ops for a database (0 = idle). */
int store_op_count_active(store *s, const char *database_id, int *count, pf_err *e);
/* The same, less the backups still pending (a sleeping server is backed up offline): the
 * ops that keep a database from sleeping. */
int store_op_count_needing_server(store *s, const char *database_id, int *count, pf_err *e);
/* Number of PENDING ops of the kinds (bit 1u << kind) for a database. */
int store_op_count_pending(store *s, const char *database_id, uint32_t kinds, int *count,
                           pf_err *e);
/* Ends every pending op of `kind` of the database as failed with `reason` (a delete cancels
 * the database's queued backups); *count (when asked) gets how many. */
/* Every workspace's ops for the operator's fleet view: the pending and running ones (oldest
 * first), or the failed ones still kept (newest first); at most max (caller frees *out). */
int store_op_list_fleet(store *s, bool failed, size_t max, store_op **out, size_t *n, bool *more,
                        pf_err *e);
int store_op_cancel_pending(store *s, const char *database_id, store_op_kind kind,
                            const char *reason, int *count, pf_err *e);

/* ---- usage: operations and storage per database and UTC day (schema version 4) ---- */
typedef struct store_usage {
    int64_t operations;    /* transactions counted in the range */
    int64_t storage_bytes; /* the last sample of the latest day in the range (0: none) */
    int64_t days;          /* days of the range with a sample */
} store_usage;

/* Records a sample of a database's server: xacts is its transaction counter, of which
 * own_xacts are the sampler's own since the last sample. Adds the counter's increase (less
 * own_xacts) to day's operations and sets day's storage. A counter lower than the last one
 * (a crash or a restore reset it) and baseline (a database just made ready) only set the
 * new starting point. */
int store_usage_record(store *s, const char *database_id, const char *day, int64_t xacts,
                       int64_t own_xacts, int64_t storage_bytes, bool baseline, pf_err *e);
/* Sums the days from_day..to_day (YYYY-MM-DD, inclusive) of a database. */
int store_usage_get(store *s, const char *database_id, const char *from_day, const char *to_day,
                    store_usage *out, pf_err *e);

/* ---- fleet statistics, for the operator's /metrics ---- */
#define STORE_DB_STATUS_COUNT 5
typedef struct store_stats {
    int64_t databases[STORE_DB_STATUS_COUNT]; /* by store_db_status */
    int64_t ops[OP__COUNT][2];                /* active ops by kind and state (pending, running) */
} store_stats;
int store_stats_get(store *s, store_stats *out, pf_err *e);
/* Bytes SQLite holds in this process (every thread's page cache and statements). */
int64_t store_memory_used(void);

typedef struct store_last_backup {
    char database_id[PF_ID_MAX];
    char stopped_at[STORE_TS_MAX]; /* "" when the database has no completed backup */
} store_last_backup;
/* Every database that is not being deleted, with the end of its last completed backup. */
int store_stats_last_backups(store *s, store_last_backup **out, size_t *n, pf_err *e);

/* ---- backups: the catalog's view of each database's pgBackRest backups ----
 * A row is inserted `running` when a backup is queued and finished by its op; the ops
 * workers reconcile the rows with pgBackRest's own list (store_backup_sync) after every
 * backup and expire, so handlers never run pgBackRest. */
typedef enum { BACKUP_FULL = 0, BACKUP_DIFF, BACKUP_INCR } store_backup_type;
typedef enum { BACKUP_RUNNING = 0, BACKUP_COMPLETED, BACKUP_FAILED } store_backup_status;

/* The contract's names: "full", "differential", "incremental" / "running", ... */
const char *store_backup_type_name(store_backup_type t);
const char *store_backup_status_name(store_backup_status st);

typedef struct store_backup {
    char id[PF_ID_MAX]; /* bkp_... */
    char database_id[PF_ID_MAX];
    char label[64]; /* pgBackRest label; "" while running or when it failed */
    store_backup_type type;
    store_backup_status status;
    int64_t size;                  /* bytes in the repository; -1 = unknown */
    char started_at[STORE_TS_MAX]; /* createdAt */
    char stopped_at[STORE_TS_MAX]; /* "" until completed: the state a restore returns to */
    char write_mark[32];           /* the server's write counter when it started */
    char error[STORE_REASON_MAX];
} store_backup;

int store_backup_insert(store *s, const store_backup *b, pf_err *e);
/* 404 (hint backupId) unless the backup exists and belongs to database_id. */
int store_backup_get(store *s, const char *database_id, const char *id, store_backup *out,
                     pf_err *e);
/* Newest first, at most limit rows; *has_more when more exist. */
int store_backup_list(store *s, const char *database_id, int limit, store_backup **out, size_t *n,
                      bool *has_more, pf_err *e);
/* Every backup of a database, oldest first. */
int store_backup_list_all(store *s, const char *database_id, store_backup **out, size_t *n,
                          pf_err *e);
/* Ends a running backup: completed with its label, size and stop time, or failed. */
int store_backup_finish(store *s, const char *id, store_backup_status st, const char *label,
                        int64_t size, const char *stopped_at, const char *error, pf_err *e);
/* Makes the completed rows of database_id match pgBackRest's list `seen` (label, type, size,
 * started_at, stopped_at): rows are updated by label, unknown labels are inserted with a new
 * id, labelled rows pgBackRest no longer has (expired) are deleted. Running and failed rows
 * are left alone. */
int store_backup_sync(store *s, const char *database_id, const store_backup *seen, size_t n,
                      pf_err *e);
int store_backup_delete_for_db(store *s, const char *database_id, pf_err *e);
/* Records the server's write counter when the backup started (see engine_write_mark). */
int store_backup_set_mark(store *s, const char *id, const char *write_mark, pf_err *e);

/* Records where a database's data came from (restore, create from backup, clone). */
int store_database_set_source(store *s, const char *id, const char *type, const char *src_db,
                              const char *src_backup, pf_err *e);

/* ---- identity (schema version 2): users, memberships, OAuth clients, integrations,
 * authorization codes, grants and refresh tokens. Codes and refresh tokens are stored
 * only as SHA-256 hex; expiry times of OAuth secrets are unix seconds. ---- */
#define STORE_HASH_MAX 65
#define STORE_SCOPE_MAX 128
#define STORE_URI_MAX 1024
#define STORE_PWHASH_MAX 192

typedef struct store_user {
    char id[PF_ID_MAX];         /* usr_... */
    char email[STORE_NAME_MAX]; /* unique, case-insensitive (409 hint "email") */
    char name[STORE_NAME_MAX];  /* "" = null */
    char password_hash[STORE_PWHASH_MAX];
    char created_at[STORE_TS_MAX];
} store_user;

int store_user_insert(store *s, const store_user *u, pf_err *e);
int store_user_get(store *s, const char *id, store_user *out, pf_err *e);
int store_user_by_email(store *s, const char *email, store_user *out, pf_err *e);
/* Makes the user a member of the workspace (idempotent). */
int store_membership_add(store *s, const char *user_id, const char *ws, pf_err *e);
/* 0 when the user belongs to ws, else 404. */
int store_membership_check(store *s, const char *user_id, const char *ws, pf_err *e);
/* The user's workspaces in creation order (caller frees *out). */
int store_user_workspaces(store *s, const char *user_id, store_workspace **out, size_t *n,
                          pf_err *e);

typedef struct store_oauth_client {
    char id[PF_ID_MAX]; /* cli_... */
    char name[STORE_NAME_MAX];
    char redirect_uris[4 * STORE_URI_MAX]; /* one per line */
    char created_at[STORE_TS_MAX];
} store_oauth_client;

int store_oauth_client_insert(store *s, const store_oauth_client *c, pf_err *e);
int store_oauth_client_get(store *s, const char *id, store_oauth_client *out, pf_err *e);
/* Inserts the client, or updates the name and redirect URIs of the one with its id (the
 * console's built-in client follows --public-url across restarts). */
int store_oauth_client_upsert(store *s, const store_oauth_client *c, pf_err *e);

typedef struct store_integration {
    char id[PF_ID_MAX]; /* itg_... */
    char workspace_id[PF_ID_MAX];
    char client_id[PF_ID_MAX];
    char user_id[PF_ID_MAX]; /* who consented first */
    char scope[STORE_SCOPE_MAX];
    char created_at[STORE_TS_MAX];
} store_integration;

/* Creates the (workspace, client) integration, or updates the scope of the existing one;
 * out receives the row. */
int store_integration_upsert(store *s, const char *ws, const char *client_id, const char *user_id,
                             const char *scope, store_integration *out, pf_err *e);
int store_integration_get(store *s, const char *ws, const char *id, store_integration *out,
                          pf_err *e);
int store_integration_by_client(store *s, const char *ws, const char *client_id,
                                store_integration *out, pf_err *e);
int store_integration_list(store *s, const char *ws, const store_page *pg, store_integration **out,
                           size_t *n, store_page_out *po, pf_err *e);
/* Revokes every grant of the integration and deletes it (one transaction). */
int store_integration_delete(store *s, const char *ws, const char *id, pf_err *e);

typedef struct store_oauth_code {
    char hash[STORE_HASH_MAX];
    char client_id[PF_ID_MAX];
    char user_id[PF_ID_MAX];
    char workspace_id[PF_ID_MAX];
    char redirect_uri[STORE_URI_MAX];
    char scope[STORE_SCOPE_MAX];
    char code_challenge[64];
    int64_t expires_at;
    char grant_id[PF_ID_MAX]; /* the grant issued from it; "" before the exchange */
} store_oauth_code;

int store_oauth_code_insert(store *s, const store_oauth_code *c, pf_err *e);
/* Marks the code used and returns it: 404 when unknown, 409 "CodeUsed" when it was used
 * before (out is filled then too, so the caller can revoke what it issued). */
int store_oauth_code_consume(store *s, const char *hash, store_oauth_code *out, pf_err *e);
int store_oauth_code_set_grant(store *s, const char *hash, const char *grant_id, pf_err *e);

typedef struct store_grant {
    char id[PF_ID_MAX]; /* grt_... */
    char integration_id[PF_ID_MAX];
    char workspace_id[PF_ID_MAX];
    char client_id[PF_ID_MAX];
    char user_id[PF_ID_MAX];
    char scope[STORE_SCOPE_MAX];
    char created_at[STORE_TS_MAX];
    bool revoked;
} store_grant;

int store_grant_insert(store *s, const store_grant *g, pf_err *e);
int store_grant_get(store *s, const char *id, store_grant *out, pf_err *e);
/* Idempotent; reason is kept for the logs ("refresh token reuse", "revoked"...). */
int store_grant_revoke(store *s, const char *id, const char *reason, pf_err *e);
int store_refresh_insert(store *s, const char *hash, const char *grant_id, int64_t expires_at,
                         pf_err *e);
/* Rotation: marks the refresh token used and fills its grant. 404 when unknown or expired;
 * 409 "TokenReused" when it was used before (grant filled, so the caller can revoke it). */
int store_refresh_use(store *s, const char *hash, int64_t now, store_grant *grant, pf_err *e);
/* The grant of a refresh token (used or not), for revocation; 404 when unknown. */
int store_refresh_grant(store *s, const char *hash, store_grant *grant, pf_err *e);

/* Service tokens of a workspace, newest first. */
int store_token_list(store *s, const char *ws, const store_page *pg, store_token **out, size_t *n,
                     store_page_out *po, pf_err *e);
int store_token_get(store *s, const char *ws, const char *id, store_token *out, pf_err *e);
int store_token_delete(store *s, const char *ws, const char *id, pf_err *e);
/* Deletes a token of any workspace or kind by id (the host's `pgfleet token revoke`). */
int store_token_revoke(store *s, const char *id, pf_err *e);

#endif
