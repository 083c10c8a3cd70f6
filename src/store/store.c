/* store: the SQLite catalog behind store.h.
 *
 * Connections: one sqlite3 handle per (thread, store), created on first use and kept in a
 * pthread key whose destructor closes it when the thread exits; the store also keeps every
 * live handle in a list so store_close can finalize and close them all. Each handle caches
 * its prepared statements (all SQL below is static text, prepared once per handle).
 *
 * Transactions: store_tx_begin issues BEGIN IMMEDIATE at depth 0 and a SAVEPOINT when
 * nested; functions that change several rows use the same machinery, so inside a caller's
 * transaction they only open a savepoint and commit with it.
 *
 * Ordering: every table has `seq INTEGER PRIMARY KEY` (creation order) and `id TEXT
 * UNIQUE`; lists are by seq and the cursor is the id of the last row returned.
 *
 * Ops are kept as history: store_database_delete_row removes the database row and its
 * connections but leaves its ops (the OP_DB_DELETE op that calls it must still be
 * finished afterwards, and a finished op is the record of what happened). */
#include "store/store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

#define STORE_BUSY_TIMEOUT_MS 5000

/* ---- schema ---- */

/* Version 1: every table of store.h. Optional values are NULL in SQL and "" in structs. */
static const char MIGRATION_1[] =
    "CREATE TABLE workspaces (\n"
    "    seq        INTEGER PRIMARY KEY,\n"
    "    id         TEXT NOT NULL UNIQUE,\n"
    "    name       TEXT NOT NULL,\n"
    "    created_at TEXT NOT NULL\n"
    ");\n"
    "\n"
    "CREATE TABLE tokens (\n"
    "    seq          INTEGER PRIMARY KEY,\n"
    "    id           TEXT NOT NULL UNIQUE,\n"
    "    workspace_id TEXT NOT NULL REFERENCES workspaces (id),\n"
    "    name         TEXT NOT NULL,\n"
    "    hash         TEXT NOT NULL UNIQUE,   -- SHA-256 hex of the token value\n"
    "    value_hint   TEXT NOT NULL,\n"
    "    created_at   TEXT NOT NULL,\n"
    "    expires_at   TEXT                    -- NULL = never\n"
    ");\n"
    "CREATE INDEX tokens_workspace ON tokens (workspace_id);\n"
    "\n"
    "CREATE TABLE projects (\n"
    "    seq            INTEGER PRIMARY KEY,\n"
    "    id             TEXT NOT NULL UNIQUE,\n"
    "    workspace_id   TEXT NOT NULL REFERENCES workspaces (id),\n"
    "    name           TEXT NOT NULL,\n"
    "    logical_id     TEXT,\n"
    "    default_region TEXT,\n"
    "    created_at     TEXT NOT NULL,\n"
    "    updated_at     TEXT NOT NULL,\n"
    "    UNIQUE (workspace_id, logical_id)    -- NULLs never collide\n"
    ");\n"
    "CREATE INDEX projects_workspace ON projects (workspace_id, seq);\n"
    "\n"
    "CREATE TABLE branches (\n"
    "    seq        INTEGER PRIMARY KEY,\n"
    "    id         TEXT NOT NULL UNIQUE,\n"
    "    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,\n"
    "    git_name   TEXT NOT NULL,\n"
    "    is_default INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),\n"
    "    created_at TEXT NOT NULL,\n"
    "    updated_at TEXT NOT NULL,\n"
    "    UNIQUE (project_id, git_name)\n"
    ");\n"
    "CREATE INDEX branches_project ON branches (project_id, seq);\n"
    "CREATE UNIQUE INDEX branches_one_default ON branches (project_id) WHERE is_default = 1;\n"
    "\n"
    "-- project_id and branch_id carry no foreign key: a database marked deleting keeps them\n"
    "-- after its project and branches are gone, until its delete op removes the row.\n"
    "CREATE TABLE databases (\n"
    "    seq                   INTEGER PRIMARY KEY,\n"
    "    id                    TEXT NOT NULL UNIQUE,\n"
    "    workspace_id          TEXT NOT NULL REFERENCES workspaces (id),\n"
    "    project_id            TEXT NOT NULL,\n"
    "    branch_id             TEXT,             -- NULL = unassigned\n"
    "    name                  TEXT NOT NULL,\n"
    "    logical_id            TEXT,\n"
    "    status                TEXT NOT NULL CHECK (status IN\n"
    "                              ('provisioning', 'ready', 'recovering', 'failure', "
    "'deleting')),\n"
    "    status_reason         TEXT NOT NULL DEFAULT '',\n"
    "    is_default            INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),\n"
    "    region                TEXT NOT NULL DEFAULT '',\n"
    "    source_type           TEXT NOT NULL DEFAULT '',\n"
    "    source_database_id    TEXT,\n"
    "    source_backup_id      TEXT,\n"
    "    port                  INTEGER UNIQUE,   -- NULL until allocated\n"
    "    default_connection_id TEXT,\n"
    "    created_at            TEXT NOT NULL,\n"
    "    updated_at            TEXT NOT NULL\n"
    ");\n"
    "CREATE INDEX databases_workspace ON databases (workspace_id, seq);\n"
    "CREATE INDEX databases_project ON databases (project_id, seq);\n"
    "-- a database being deleted frees its logicalId at once\n"
    "CREATE UNIQUE INDEX databases_logical_id ON databases (branch_id, logical_id)\n"
    "    WHERE status <> 'deleting';\n"
    "\n"
    "CREATE TABLE connections (\n"
    "    seq          INTEGER PRIMARY KEY,\n"
    "    id           TEXT NOT NULL UNIQUE,\n"
    "    workspace_id TEXT NOT NULL REFERENCES workspaces (id),\n"
    "    database_id  TEXT NOT NULL REFERENCES databases (id) ON DELETE CASCADE,\n"
    "    name         TEXT NOT NULL,\n"
    "    role         TEXT NOT NULL,\n"
    "    verifier     TEXT NOT NULL,           -- SCRAM-SHA-256 secret\n"
    "    deleting     INTEGER NOT NULL DEFAULT 0 CHECK (deleting IN (0, 1)),\n"
    "    created_at   TEXT NOT NULL,\n"
    "    updated_at   TEXT NOT NULL\n"
    ");\n"
    "CREATE INDEX connections_database ON connections (database_id, seq);\n"
    "CREATE INDEX connections_workspace ON connections (workspace_id, seq);\n"
    "\n"
    "-- database_id carries no foreign key: ops outlive their database as history.\n"
    "CREATE TABLE ops (\n"
    "    seq           INTEGER PRIMARY KEY,\n"
    "    id            TEXT NOT NULL UNIQUE,\n"
    "    kind          TEXT NOT NULL CHECK (kind IN\n"
    "                      ('db_provision', 'db_delete', 'conn_sync', 'conn_drop')),\n"
    "    state         TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', "
    "'failed')),\n"
    "    database_id   TEXT NOT NULL,\n"
    "    connection_id TEXT,\n"
    "    attempts      INTEGER NOT NULL DEFAULT 0,\n"
    "    error         TEXT NOT NULL DEFAULT '',\n"
    "    created_at    TEXT NOT NULL,\n"
    "    updated_at    TEXT NOT NULL\n"
    ");\n"
    "CREATE INDEX ops_state ON ops (state, seq);\n"
    "CREATE INDEX ops_database ON ops (database_id, state, seq);\n";

/* Version 2: identity. People (users, argon2id password hashes), their workspaces,
 * registered OAuth clients, integrations (a client granted to a workspace), and the OAuth
 * secrets: authorization codes and refresh tokens, kept only as SHA-256. A grant is one
 * chain of refresh tokens (one sign-in); revoking it kills its refresh and access tokens. */
static const char MIGRATION_2[] =
    "CREATE TABLE users (\n"
    "    seq           INTEGER PRIMARY KEY,\n"
    "    id            TEXT NOT NULL UNIQUE,\n"
    "    email         TEXT NOT NULL UNIQUE COLLATE NOCASE,\n"
    "    name          TEXT,\n"
    "    password_hash TEXT NOT NULL,          -- crypto_pwhash_str (argon2id)\n"
    "    created_at    TEXT NOT NULL\n"
    ");\n"
    "\n"
    "CREATE TABLE memberships (\n"
    "    user_id      TEXT NOT NULL REFERENCES users (id),\n"
    "    workspace_id TEXT NOT NULL REFERENCES workspaces (id),\n"
    "    created_at   TEXT NOT NULL,\n"
    "    PRIMARY KEY (user_id, workspace_id)\n"
    ");\n"
    "\n"
    "CREATE TABLE oauth_clients (\n"
    "    seq           INTEGER PRIMARY KEY,\n"
    "    id            TEXT NOT NULL UNIQUE,\n"
    "    name          TEXT NOT NULL,\n"
    "    redirect_uris TEXT NOT NULL,          -- one per line, matched exactly\n"
    "    created_at    TEXT NOT NULL\n"
    ");\n"
    "\n"
    "CREATE TABLE integrations (\n"
    "    seq          INTEGER PRIMARY KEY,\n"
    "    id           TEXT NOT NULL UNIQUE,\n"
    "    workspace_id TEXT NOT NULL REFERENCES workspaces (id),\n"
    "    client_id    TEXT NOT NULL REFERENCES oauth_clients (id),\n"
    "    user_id      TEXT NOT NULL REFERENCES users (id),\n"
    "    scope        TEXT NOT NULL,\n"
    "    created_at   TEXT NOT NULL,\n"
    "    updated_at   TEXT NOT NULL,\n"
    "    UNIQUE (workspace_id, client_id)\n"
    ");\n"
    "\n"
    "CREATE TABLE oauth_codes (\n"
    "    hash           TEXT PRIMARY KEY,      -- SHA-256 hex of the code\n"
    "    client_id      TEXT NOT NULL,\n"
    "    user_id        TEXT NOT NULL,\n"
    "    workspace_id   TEXT NOT NULL,\n"
    "    redirect_uri   TEXT NOT NULL,\n"
    "    scope          TEXT NOT NULL,\n"
    "    code_challenge TEXT NOT NULL,\n"
    "    expires_at     INTEGER NOT NULL,      -- unix seconds\n"
    "    used           INTEGER NOT NULL DEFAULT 0 CHECK (used IN (0, 1)),\n"
    "    grant_id       TEXT,                  -- issued from it; revoked if replayed\n"
    "    created_at     TEXT NOT NULL\n"
    ");\n"
    "\n"
    "-- integration_id carries no foreign key: a revoked grant outlives its integration.\n"
    "CREATE TABLE oauth_grants (\n"
    "    seq            INTEGER PRIMARY KEY,\n"
    "    id             TEXT NOT NULL UNIQUE,\n"
    "    integration_id TEXT NOT NULL,\n"
    "    workspace_id   TEXT NOT NULL,\n"
    "    client_id      TEXT NOT NULL,\n"
    "    user_id        TEXT NOT NULL,\n"
    "    scope          TEXT NOT NULL,\n"
    "    created_at     TEXT NOT NULL,\n"
    "    revoked_at     TEXT,                  -- NULL = live\n"
    "    revoked_reason TEXT\n"
    ");\n"
    "CREATE INDEX oauth_grants_integration ON oauth_grants (integration_id);\n"
    "\n"
    "CREATE TABLE refresh_tokens (\n"
    "    hash       TEXT PRIMARY KEY,          -- SHA-256 hex of the token\n"
    "    grant_id   TEXT NOT NULL REFERENCES oauth_grants (id),\n"
    "    expires_at INTEGER NOT NULL,          -- unix seconds\n"
    "    used_at    TEXT,                      -- set when rotated; a second use is theft\n"
    "    created_at TEXT NOT NULL\n"
    ");\n"
    "CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);\n";

/* Version 3 (backups): the backups table; ops gain the backup kinds (SQLite cannot change
 * a CHECK, so the table is rebuilt) and an `args` JSON column. */
static const char MIGRATION_3[] =
    "CREATE TABLE backups (\n"
    "    seq         INTEGER PRIMARY KEY,\n"
    "    id          TEXT NOT NULL UNIQUE,\n"
    "    database_id TEXT NOT NULL,             -- no foreign key: removed by the delete op\n"
    "    label       TEXT,                      -- pgBackRest label; NULL until completed\n"
    "    type        TEXT NOT NULL CHECK (type IN ('full', 'differential', 'incremental')),\n"
    "    status      TEXT NOT NULL CHECK (status IN ('running', 'completed', 'failed')),\n"
    "    size        INTEGER,\n"
    "    started_at  TEXT NOT NULL,\n"
    "    stopped_at  TEXT,\n"
    "    write_mark  TEXT NOT NULL DEFAULT '',\n"
    "    error       TEXT NOT NULL DEFAULT '',\n"
    "    UNIQUE (database_id, label)\n"
    ");\n"
    "CREATE INDEX backups_database ON backups (database_id, seq);\n"
    "\n"
    "CREATE TABLE ops_v2 (\n"
    "    seq           INTEGER PRIMARY KEY,\n"
    "    id            TEXT NOT NULL UNIQUE,\n"
    "    kind          TEXT NOT NULL CHECK (kind IN\n"
    "                      ('db_provision', 'db_delete', 'conn_sync', 'conn_drop',\n"
    "                       'db_backup', 'db_restore', 'db_clone')),\n"
    "    state         TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', "
    "'failed')),\n"
    "    database_id   TEXT NOT NULL,\n"
    "    connection_id TEXT,\n"
    "    attempts      INTEGER NOT NULL DEFAULT 0,\n"
    "    error         TEXT NOT NULL DEFAULT '',\n"
    "    created_at    TEXT NOT NULL,\n"
    "    updated_at    TEXT NOT NULL,\n"
    "    args          TEXT NOT NULL DEFAULT ''\n"
    ");\n"
    "INSERT INTO ops_v2 (seq, id, kind, state, database_id, connection_id, attempts, error,\n"
    "                    created_at, updated_at)\n"
    "    SELECT seq, id, kind, state, database_id, connection_id, attempts, error, created_at,\n"
    "           updated_at FROM ops;\n"
    "DROP TABLE ops;\n"
    "ALTER TABLE ops_v2 RENAME TO ops;\n"
    "CREATE INDEX ops_state ON ops (state, seq);\n"
    "CREATE INDEX ops_database ON ops (database_id, state, seq);\n";

/* Version 4: usage. Per database and UTC day, the operations (transactions) counted by the
 * sampler and the storage of its last sample that day; usage_counters holds the server's
 * transaction counter at the last sample, from which the next one adds the difference. */
#define MIGRATION_4                                                                                \
    "CREATE TABLE usage_days (\n"                                                                  \
    "    database_id   TEXT NOT NULL,           -- no foreign key: removed with the database\n"    \
    "    day           TEXT NOT NULL,           -- YYYY-MM-DD, UTC\n"                              \
    "    operations    INTEGER NOT NULL DEFAULT 0,\n"                                              \
    "    storage_bytes INTEGER NOT NULL DEFAULT 0,\n"                                              \
    "    PRIMARY KEY (database_id, day)\n"                                                         \
    ") WITHOUT ROWID;\n"                                                                           \
    "CREATE TABLE usage_counters (\n"                                                              \
    "    database_id TEXT PRIMARY KEY,\n"                                                          \
    "    xacts       INTEGER NOT NULL,\n"                                                          \
    "    sampled_at  TEXT NOT NULL\n"                                                              \
    ") WITHOUT ROWID;\n"

/* Version 5: a database's health below its status (NULL = healthy, else why its server is
 * not restarted on every pass), and an op's earliest next run (NULL = at once). */
#define MIGRATION_5                                                                                \
    "ALTER TABLE databases ADD COLUMN unhealthy TEXT;\n"                                           \
    "ALTER TABLE ops ADD COLUMN run_after TEXT;  -- ISO-8601 UTC, as util_now_iso writes\n"

/* Applied in order; migration i is schema version i + 1. Append only, never edit. */
static const char *const migrations[] = {
    MIGRATION_1, MIGRATION_2, MIGRATION_3, MIGRATION_4, MIGRATION_5,
};
#define MIGRATION_COUNT ((int)(sizeof migrations / sizeof migrations[0]))

/* ---- statements (prepared once per connection) ---- */

#define WS_COLS "w.id, w.name, w.created_at"
#define TOK_COLS "t.id, t.workspace_id, t.name, t.hash, t.value_hint, t.created_at, t.expires_at"
#define PROJ_COLS "p.id, p.workspace_id, p.name, p.logical_id, p.default_region, p.created_at"
#define BR_COLS "b.id, b.project_id, b.git_name, b.is_default, b.created_at, b.updated_at"
#define DB_COLS                                                                                    \
    "d.id, d.workspace_id, d.project_id, d.branch_id, d.name, d.logical_id, d.status, "            \
    "d.status_reason, d.is_default, d.region, d.source_type, d.source_database_id, "               \
    "d.source_backup_id, d.port, d.default_connection_id, d.created_at, d.unhealthy"
#define CONN_COLS                                                                                  \
    "c.id, c.workspace_id, c.database_id, c.name, c.role, c.verifier, c.deleting, c.created_at"
#define OP_COLS                                                                                    \
    "o.id, o.kind, o.state, o.database_id, o.connection_id, o.attempts, o.error, o.created_at, "   \
    "o.updated_at, o.args"
#define BKP_COLS                                                                                   \
    "b.id, b.database_id, b.label, b.type, b.status, b.size, b.started_at, b.stopped_at, "         \
    "b.write_mark, b.error"

/* Paged lists bind ?1 = seq of the cursor row (0 = from the start), ?2 = limit + 1, and
 * their filters from ?3 on. */
enum stmt_id {
    S_BEGIN,
    S_BEGIN_READ,
    S_COMMIT,
    S_ROLLBACK,
    S_SAVEPOINT,
    S_RELEASE,
    S_ROLLBACK_TO,
    S_SCHEMA_VERSION,

    S_WS_INSERT,
    S_WS_GET,
    S_WS_LIST,
    S_WS_FIRST,
    S_WS_SEQ,

    S_TOK_INSERT,
    S_TOK_BY_HASH,

    S_PROJ_INSERT,
    S_PROJ_GET,
    S_PROJ_LIST,
    S_PROJ_SEQ,
    S_PROJ_RENAME,
    S_PROJ_DEL_BRANCHES,
    S_PROJ_DELETE,

    S_BR_INSERT,
    S_BR_GET,
    S_BR_BY_GIT_NAME,
    S_BR_DEFAULT,
    S_BR_LIST,
    S_BR_SEQ,
    S_BR_PROJECT_OF,
    S_BR_CLEAR_DEFAULT,
    S_BR_SET_DEFAULT,
    S_BR_DELETE,
    S_BR_DB_COUNT,

    S_DB_INSERT,
    S_DB_GET,
    S_DB_GET_INTERNAL,
    S_DB_LIST,
    S_DB_SEQ,
    S_DB_LIST_ALL,
    S_DB_TRANSITION,
    S_DB_STATUS,
    S_DB_SET_UNHEALTHY,
    S_POOL_DBS,
    S_POOL_CONNS,
    S_DB_SET_DEFAULT_CONN,
    S_DB_UPDATE,
    S_DB_IN_PROJECT,
    S_DB_CLEAR_DEFAULT,
    S_DB_SET_DEFAULT,
    S_DB_DEL_CONNS,
    S_DB_DELETE,
    S_DB_PORTS,

    S_CONN_INSERT,
    S_CONN_GET,
    S_CONN_GET_INTERNAL,
    S_CONN_LIST,
    S_CONN_SEQ,
    S_CONN_FOR_DB,
    S_CONN_SET_VERIFIER,
    S_CONN_MARK_DELETING,
    S_CONN_DELETE,
    S_CONN_UNSET_DEFAULT,

    S_OP_INSERT,
    S_OP_GET,
    S_OP_NEXT,
    S_OP_START,
    S_OP_GET_BY_SEQ,
    S_OP_FINISH,
    S_OP_REQUEUE,
    S_OP_EXISTS,
    S_OP_RESET,
    S_OP_COUNT_ACTIVE,
    S_OP_PRUNE,

    S_USAGE_COUNTER_GET,
    S_USAGE_COUNTER_SET,
    S_USAGE_DAY_ADD,
    S_USAGE_SUM,
    S_USAGE_DEL_DAYS,
    S_USAGE_DEL_COUNTER,

    S_STATS_DBS,
    S_STATS_OPS,
    S_STATS_LAST_BACKUP,

    S_BKP_INSERT,
    S_BKP_GET,
    S_BKP_LIST,
    S_BKP_LIST_ALL,
    S_BKP_FINISH,
    S_BKP_UPDATE_BY_LABEL,
    S_BKP_DELETE,
    S_BKP_DELETE_FOR_DB,
    S_DB_SET_SOURCE,
    S_BKP_SET_MARK,

    S__COUNT
};

/* Ops of one database run one at a time in FIFO order, except where the lane lets a kind
 * (o, in ?2) pass another (other, in ?3): today a credential op does not wait for a backup
 * (a backup copies whatever roles exist, a restore re-applies the catalog's, so their order
 * does not matter, while a backup of a large database would hold a rotate or revoke for
 * minutes). The kind lists are bound as ",kind,kind," text (see kind_list). */
#define IN_LIST(list, kind) "instr(" list ", ',' || " kind " || ',') > 0"
#define PASSES(other) "(" IN_LIST("?2", "o.kind") " AND " IN_LIST("?3", other ".kind") ")"

static const char *const stmt_sql[S__COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_BEGIN_READ] = "BEGIN DEFERRED",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SAVEPOINT] = "SAVEPOINT pf_nested",
    [S_RELEASE] = "RELEASE pf_nested",
    [S_ROLLBACK_TO] = "ROLLBACK TO pf_nested",
    [S_SCHEMA_VERSION] = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",

    /* workspaces */
    [S_WS_INSERT] = "INSERT INTO workspaces (id, name, created_at) VALUES (?1, ?2, ?3)",
    [S_WS_GET] = "SELECT " WS_COLS " FROM workspaces w WHERE w.id = ?1",
    [S_WS_LIST] = "SELECT " WS_COLS " FROM workspaces w"
                  " WHERE w.seq > ?1 AND (?3 IS NULL OR w.id = ?3)"
                  " ORDER BY w.seq LIMIT ?2",
    [S_WS_FIRST] = "SELECT " WS_COLS " FROM workspaces w ORDER BY w.seq LIMIT 1",
    [S_WS_SEQ] = "SELECT seq FROM workspaces WHERE id = ?1",

    /* tokens */
    [S_TOK_INSERT] = "INSERT INTO tokens"
                     " (id, workspace_id, name, hash, value_hint, created_at, expires_at)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [S_TOK_BY_HASH] = "SELECT " TOK_COLS " FROM tokens t WHERE t.hash = ?1",

    /* projects */
    [S_PROJ_INSERT] = "INSERT INTO projects (id, workspace_id, name, logical_id, default_region,"
                      " created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    [S_PROJ_GET] = "SELECT " PROJ_COLS " FROM projects p WHERE p.id = ?1 AND p.workspace_id = ?2",
    [S_PROJ_LIST] = "SELECT " PROJ_COLS " FROM projects p"
                    " WHERE p.seq > ?1 AND p.workspace_id = ?3"
                    "   AND (?4 IS NULL OR p.logical_id = ?4)"
                    " ORDER BY p.seq LIMIT ?2",
    [S_PROJ_SEQ] = "SELECT seq FROM projects WHERE id = ?1",
    [S_PROJ_RENAME] = "UPDATE projects SET name = ?3, updated_at = ?4"
                      " WHERE id = ?1 AND workspace_id = ?2",
    [S_PROJ_DEL_BRANCHES] = "DELETE FROM branches WHERE project_id = ?1",
    [S_PROJ_DELETE] = "DELETE FROM projects WHERE id = ?1 AND workspace_id = ?2",

    /* branches */
    [S_BR_INSERT] = "INSERT INTO branches (id, project_id, git_name, is_default, created_at,"
                    " updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [S_BR_GET] = "SELECT " BR_COLS " FROM branches b JOIN projects p ON p.id = b.project_id"
                 " WHERE b.id = ?1 AND p.workspace_id = ?2",
    [S_BR_BY_GIT_NAME] = "SELECT " BR_COLS " FROM branches b"
                         " WHERE b.project_id = ?1 AND b.git_name = ?2",
    [S_BR_DEFAULT] = "SELECT " BR_COLS " FROM branches b"
                     " WHERE b.project_id = ?1 AND b.is_default = 1",
    [S_BR_LIST] = "SELECT " BR_COLS " FROM branches b"
                  " WHERE b.seq > ?1 AND b.project_id = ?3"
                  "   AND (?4 IS NULL OR b.git_name = ?4)"
                  "   AND (?5 IS NULL OR instr(b.git_name, ?5) > 0)"
                  " ORDER BY b.seq LIMIT ?2",
    [S_BR_SEQ] = "SELECT seq FROM branches WHERE id = ?1",
    [S_BR_PROJECT_OF] = "SELECT project_id FROM branches WHERE id = ?1",
    [S_BR_CLEAR_DEFAULT] = "UPDATE branches SET is_default = 0, updated_at = ?3"
                           " WHERE project_id = ?1 AND is_default = 1 AND id <> ?2",
    [S_BR_SET_DEFAULT] = "UPDATE branches SET is_default = 1, updated_at = ?2 WHERE id = ?1",
    [S_BR_DELETE] = "DELETE FROM branches WHERE id = ?1",
    [S_BR_DB_COUNT] = "SELECT COUNT(*) FROM databases"
                      " WHERE branch_id = ?1 AND status <> 'deleting'",

    /* databases */
    [S_DB_INSERT] = "INSERT INTO databases (id, workspace_id, project_id, branch_id, name,"
                    " logical_id, status, status_reason, is_default, region, source_type,"
                    " source_database_id, source_backup_id, port, default_connection_id,"
                    " created_at, updated_at)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
                    " ?16, ?16)",
    [S_DB_GET] = "SELECT " DB_COLS " FROM databases d"
                 " WHERE d.id = ?1 AND d.workspace_id = ?2 AND d.status <> 'deleting'",
    [S_DB_GET_INTERNAL] = "SELECT " DB_COLS " FROM databases d WHERE d.id = ?1",
    [S_DB_LIST] = "SELECT " DB_COLS " FROM databases d"
                  " WHERE d.seq > ?1 AND d.workspace_id = ?3 AND d.status <> 'deleting'"
                  "   AND (?4 IS NULL OR d.project_id = ?4)"
                  "   AND (?5 IS NULL OR d.logical_id = ?5)"
                  "   AND (?6 IS NULL OR d.branch_id = ?6"
                  "        OR (?6 = 'unassigned' AND d.branch_id IS NULL))"
                  "   AND (?7 IS NULL OR d.branch_id IN (SELECT b.id FROM branches b"
                  "        WHERE b.project_id = d.project_id AND b.git_name = ?7))"
                  " ORDER BY d.seq LIMIT ?2",
    [S_DB_SEQ] = "SELECT seq FROM databases WHERE id = ?1",
    [S_DB_LIST_ALL] = "SELECT " DB_COLS " FROM databases d ORDER BY d.seq",
    /* the conditional update of store_database_transition (the store_fsm of status) */
    [S_DB_TRANSITION] = "UPDATE databases SET status = ?3, status_reason = ?4, updated_at = ?5"
                        " WHERE id = ?1 AND status = ?2",
    [S_DB_STATUS] = "SELECT status FROM databases WHERE id = ?1",
    [S_DB_SET_UNHEALTHY] = "UPDATE databases SET unhealthy = NULLIF(?2, '') WHERE id = ?1",
    [S_POOL_DBS] = "SELECT " DB_COLS " FROM databases d"
                   " WHERE d.status NOT IN ('deleting', 'failure') ORDER BY d.seq",
    [S_POOL_CONNS] = "SELECT " CONN_COLS " FROM connections c JOIN databases d"
                     " ON d.id = c.database_id"
                     " WHERE c.deleting = 0 AND d.status NOT IN ('deleting', 'failure')"
                     " ORDER BY c.seq",
    [S_DB_SET_DEFAULT_CONN] = "UPDATE databases SET default_connection_id = ?2, updated_at = ?3"
                              " WHERE id = ?1",
    [S_DB_UPDATE] = "UPDATE databases SET"
                    " name = COALESCE(?2, name),"
                    " branch_id = CASE WHEN ?3 IS NULL THEN branch_id ELSE NULLIF(?3, '') END,"
                    " logical_id = CASE WHEN ?4 IS NULL THEN logical_id ELSE NULLIF(?4, '') END,"
                    " updated_at = ?5"
                    " WHERE id = ?1",
    [S_DB_IN_PROJECT] = "SELECT 1 FROM databases WHERE id = ?1 AND project_id = ?2",
    [S_DB_CLEAR_DEFAULT] = "UPDATE databases SET is_default = 0, updated_at = ?3"
                           " WHERE project_id = ?1 AND is_default = 1 AND id <> ?2",
    [S_DB_SET_DEFAULT] = "UPDATE databases SET is_default = 1, updated_at = ?2 WHERE id = ?1",
    [S_DB_DEL_CONNS] = "DELETE FROM connections WHERE database_id = ?1",
    [S_DB_DELETE] = "DELETE FROM databases WHERE id = ?1",
    [S_DB_PORTS] = "SELECT port FROM databases WHERE port BETWEEN ?1 AND ?2 ORDER BY port",

    /* connections: the workspace-scoped calls also hide connections of deleting databases */
    [S_CONN_INSERT] = "INSERT INTO connections (id, workspace_id, database_id, name, role,"
                      " verifier, deleting, created_at, updated_at)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
    [S_CONN_GET] = "SELECT " CONN_COLS " FROM connections c JOIN databases d"
                   " ON d.id = c.database_id"
                   " WHERE c.id = ?1 AND c.workspace_id = ?2 AND c.deleting = 0"
                   "   AND d.status <> 'deleting'",
    [S_CONN_GET_INTERNAL] = "SELECT " CONN_COLS " FROM connections c WHERE c.id = ?1",
    [S_CONN_LIST] = "SELECT " CONN_COLS " FROM connections c JOIN databases d"
                    " ON d.id = c.database_id"
                    " WHERE c.seq > ?1 AND c.workspace_id = ?3 AND c.deleting = 0"
                    "   AND d.status <> 'deleting'"
                    "   AND (?4 IS NULL OR c.database_id = ?4)"
                    " ORDER BY c.seq LIMIT ?2",
    [S_CONN_SEQ] = "SELECT seq FROM connections WHERE id = ?1",
    [S_CONN_FOR_DB] = "SELECT " CONN_COLS " FROM connections c"
                      " WHERE c.database_id = ?1 AND (?2 OR c.deleting = 0) ORDER BY c.seq",
    [S_CONN_SET_VERIFIER] = "UPDATE connections SET verifier = ?2, updated_at = ?3 WHERE id = ?1",
    [S_CONN_MARK_DELETING] = "UPDATE connections SET deleting = 1, updated_at = ?2 WHERE id = ?1",
    [S_CONN_DELETE] = "DELETE FROM connections WHERE id = ?1",
    [S_CONN_UNSET_DEFAULT] = "UPDATE databases SET default_connection_id = NULL, updated_at = ?2"
                             " WHERE default_connection_id = ?1",

    /* ops */
    [S_OP_INSERT] = "INSERT INTO ops (id, kind, state, database_id, connection_id, attempts,"
                    " error, created_at, updated_at, args)"
                    " VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?7, ?7, ?8)",
    [S_OP_GET] = "SELECT " OP_COLS " FROM ops o WHERE o.id = ?1",
    /* the oldest pending op of the lane (?1 its kinds), due by ?4, whose database has
     * nothing running and nothing older queued that it may not pass */
    [S_OP_NEXT] = "SELECT o.seq FROM ops o"
                  " WHERE o.state = 'pending' AND " IN_LIST("?1", "o.kind") //
    "   AND (o.run_after IS NULL OR o.run_after <= ?4)"
    "   AND NOT EXISTS (SELECT 1 FROM ops r WHERE r.database_id = o.database_id"
    "       AND r.state = 'running' AND NOT " PASSES(
        "r") ")"
             "   AND NOT EXISTS (SELECT 1 FROM ops q WHERE q.database_id = o.database_id"
             "       AND q.state = 'pending' AND q.seq < o.seq AND NOT " PASSES(
                 "q") ")"
                      " ORDER BY o.seq LIMIT 1",
    [S_OP_START] = "UPDATE ops SET state = 'running', attempts = attempts + 1, updated_at = ?2"
                   " WHERE seq = ?1 AND state = 'pending'",
    [S_OP_GET_BY_SEQ] = "SELECT " OP_COLS " FROM ops o WHERE o.seq = ?1",
    [S_OP_FINISH] = "UPDATE ops SET state = ?2, error = ?3, updated_at = ?4 WHERE id = ?1",
    [S_OP_REQUEUE] = "UPDATE ops SET state = 'pending', error = ?2, updated_at = ?3,"
                     " run_after = ?4 WHERE id = ?1 AND state = 'running'",
    [S_OP_EXISTS] = "SELECT 1 FROM ops WHERE id = ?1",
    [S_OP_RESET] = "UPDATE ops SET state = 'pending', updated_at = ?1 WHERE state = 'running'",
    [S_OP_PRUNE] = "DELETE FROM ops WHERE state IN ('done', 'failed') AND updated_at < ?1",

    [S_USAGE_COUNTER_GET] = "SELECT xacts FROM usage_counters WHERE database_id = ?1",
    [S_USAGE_COUNTER_SET] = "INSERT INTO usage_counters (database_id, xacts, sampled_at)"
                            " VALUES (?1, ?2, ?3) ON CONFLICT (database_id) DO UPDATE"
                            " SET xacts = excluded.xacts, sampled_at = excluded.sampled_at",
    [S_USAGE_DAY_ADD] = "INSERT INTO usage_days (database_id, day, operations, storage_bytes)"
                        " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (database_id, day) DO UPDATE"
                        " SET operations = operations + excluded.operations,"
                        " storage_bytes = excluded.storage_bytes",
    [S_USAGE_SUM] = "SELECT COALESCE(SUM(operations), 0),"
                    " (SELECT storage_bytes FROM usage_days WHERE database_id = ?1"
                    "  AND day BETWEEN ?2 AND ?3 ORDER BY day DESC LIMIT 1), COUNT(*)"
                    " FROM usage_days WHERE database_id = ?1 AND day BETWEEN ?2 AND ?3",
    [S_USAGE_DEL_DAYS] = "DELETE FROM usage_days WHERE database_id = ?1",
    [S_USAGE_DEL_COUNTER] = "DELETE FROM usage_counters WHERE database_id = ?1",

    [S_STATS_DBS] = "SELECT status, COUNT(*) FROM databases GROUP BY status",
    [S_STATS_OPS] = "SELECT kind, state, COUNT(*) FROM ops WHERE state IN ('pending', 'running')"
                    " GROUP BY kind, state",
    [S_STATS_LAST_BACKUP] = "SELECT d.id, (SELECT MAX(b.stopped_at) FROM backups b"
                            " WHERE b.database_id = d.id AND b.status = 'completed')"
                            " FROM databases d WHERE d.status != 'deleting' ORDER BY d.id",
    [S_OP_COUNT_ACTIVE] = "SELECT COUNT(*) FROM ops"
                          " WHERE database_id = ?1 AND state IN ('pending', 'running')",

    /* backups */
    [S_BKP_INSERT] = "INSERT INTO backups (id, database_id, label, type, status, size, started_at,"
                     " stopped_at, write_mark, error)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [S_BKP_GET] = "SELECT " BKP_COLS " FROM backups b WHERE b.id = ?1 AND b.database_id = ?2",
    [S_BKP_LIST] = "SELECT " BKP_COLS " FROM backups b WHERE b.database_id = ?1"
                   " ORDER BY b.started_at DESC, b.seq DESC LIMIT ?2",
    [S_BKP_LIST_ALL] = "SELECT " BKP_COLS " FROM backups b WHERE b.database_id = ?1"
                       " ORDER BY b.started_at, b.seq",
    [S_BKP_FINISH] = "UPDATE backups SET status = ?2, label = ?3, size = ?4, stopped_at = ?5,"
                     " error = ?6 WHERE id = ?1",
    [S_BKP_UPDATE_BY_LABEL] = "UPDATE backups SET type = ?3, status = 'completed', size = ?4,"
                              " stopped_at = ?5 WHERE database_id = ?1 AND label = ?2",
    [S_BKP_DELETE] = "DELETE FROM backups WHERE id = ?1",
    [S_BKP_SET_MARK] = "UPDATE backups SET write_mark = ?2 WHERE id = ?1",
    [S_BKP_DELETE_FOR_DB] = "DELETE FROM backups WHERE database_id = ?1",
    [S_DB_SET_SOURCE] = "UPDATE databases SET source_type = ?2, source_database_id = ?3,"
                        " source_backup_id = ?4, updated_at = ?5 WHERE id = ?1",
};

/* ---- connections ---- */

typedef struct store_conn {
    store *s;
    sqlite3 *db;
    int depth; /* transaction nesting: 0 = autocommit, 1 = BEGIN, > 1 = savepoints */
    struct store_conn *prev, *next;
    sqlite3_stmt *st[S__COUNT];
} store_conn;

struct store {
    char *path;
    pthread_key_t key; /* this thread's store_conn */
    pthread_mutex_t mu;
    store_conn *conns; /* every open connection, guarded by mu */
};

static void conn_free(store_conn *c)
{
    for (int i = 0; i < S__COUNT; i++)
        sqlite3_finalize(c->st[i]);
    sqlite3_close_v2(c->db);
    free(c);
}

/* pthread key destructor: the thread is exiting. */
static void conn_thread_exit(void *p)
{
    store_conn *c = p;
    store *s = c->s;
    pthread_mutex_lock(&s->mu);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&s->mu);
    conn_free(c);
}

static store_conn *conn_open(store *s, pf_err *e)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(
        s->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        err_internal(e, "store: cannot open %s: %s", s->path,
                     db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close_v2(db);
        return NULL;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);
    char *msg = NULL;
    rc = sqlite3_exec(db, "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;", NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        err_internal(e, "store: cannot configure %s: %s", s->path, msg ? msg : "?");
        sqlite3_free(msg);
        sqlite3_close_v2(db);
        return NULL;
    }
    store_conn *c = xcalloc(1, sizeof *c);
    c->s = s;
    c->db = db;
    return c;
}

/* The calling thread's connection, opened on first use. */
static store_conn *conn_get(store *s, pf_err *e)
{
    store_conn *c = pthread_getspecific(s->key);
    if (c)
        return c;
    c = conn_open(s, e);
    if (!c)
        return NULL;
    if (pthread_setspecific(s->key, c) != 0) {
        conn_free(c);
        err_internal(e, "store: pthread_setspecific failed");
        return NULL;
    }
    pthread_mutex_lock(&s->mu);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    pthread_mutex_unlock(&s->mu);
    return c;
}

/* ---- statement helpers ---- */

static int db_fail(store_conn *c, pf_err *e, const char *what)
{
    return err_internal(e, "store: %s: %s", what, sqlite3_errmsg(c->db));
}

/* The cached statement id, reset and ready to bind; NULL (e filled) on failure. */
static sqlite3_stmt *stmt(store_conn *c, enum stmt_id id, pf_err *e)
{
    if (!c->st[id]) {
        int rc = sqlite3_prepare_v3(c->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &c->st[id],
                                    NULL);
        if (rc != SQLITE_OK) {
            db_fail(c, e, "prepare");
            return NULL;
        }
    }
    return c->st[id];
}

static void stmt_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* NULL binds SQL NULL. Strings are bound SQLITE_STATIC: they outlive the step. */
static int bind_text(sqlite3_stmt *st, int i, const char *v)
{
    return v ? sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

/* NULL and "" bind SQL NULL (optional columns). */
static int bind_opt(sqlite3_stmt *st, int i, const char *v)
{
    return bind_text(st, i, v && v[0] ? v : NULL);
}

static int bind_fail(store_conn *c, sqlite3_stmt *st, pf_err *e)
{
    db_fail(c, e, "bind");
    stmt_done(st);
    return -1;
}

static void col_text(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    size_t n = t ? (size_t)sqlite3_column_bytes(st, i) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, t, n);
    dst[n] = '\0';
}

/* Unique-constraint messages name the table and columns; map them to the API field. */
static const struct {
    const char *match; /* substring of sqlite3_errmsg */
    const char *hint;
    const char *message;
} conflicts[] = {
    {"projects.workspace_id, projects.logical_id", "logicalId",
     "A project with this logicalId already exists in the workspace"},
    {"branches.project_id, branches.git_name", "gitName",
     "A branch with this gitName already exists in the project"},
    {"branches.project_id", "isDefault", "The project already has a default branch"},
    {"databases.branch_id, databases.logical_id", "logicalId",
     "A database with this logicalId already exists on the branch"},
    {"databases.port", "port", "The port is already used by another database"},
    {"tokens.hash", "token", "A token with this value already exists"},
};

/* Fills e for a failed step of a write; fk_hint/fk_what describe a missing parent row. */
static int write_fail(store_conn *c, int rc, const char *fk_hint, const char *fk_what, pf_err *e)
{
    const char *msg = sqlite3_errmsg(c->db);
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        for (size_t i = 0; i < sizeof conflicts / sizeof conflicts[0]; i++)
            if (strstr(msg, conflicts[i].match))
                return err_set(e, 409, "Conflict", conflicts[i].hint, "%s", conflicts[i].message);
        return err_set(e, 409, "Conflict", "id", "A row with this id already exists (%s)", msg);
    }
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY && fk_hint)
        return err_set(e, 404, "NotFound", fk_hint, "%s was not found", fk_what);
    return err_internal(e, "store: write: %s", msg);
}

/* Steps a bound write statement to completion and resets it. */
static int exec_write(store_conn *c, sqlite3_stmt *st, const char *fk_hint, const char *fk_what,
                      pf_err *e)
{
    int rc = sqlite3_step(st);
    int ret = 0;
    if (rc != SQLITE_DONE)
        ret = write_fail(c, rc, fk_hint, fk_what, e);
    stmt_done(st);
    return ret;
}

typedef void (*row_fn)(sqlite3_stmt *st, void *dst);

/* Steps a bound query for at most one row: 1 = read into out, 0 = no row, -1 = error. */
static int query_one(store_conn *c, sqlite3_stmt *st, row_fn read, void *out, pf_err *e)
{
    int rc = sqlite3_step(st);
    int ret;
    if (rc == SQLITE_ROW) {
        if (read)
            read(st, out);
        ret = 1;
    } else if (rc == SQLITE_DONE) {
        ret = 0;
    } else {
        ret = db_fail(c, e, "query");
    }
    stmt_done(st);
    return ret;
}

/* Steps a bound query returning one integer column: 1 = *v set, 0 = no row, -1 = error. */
static int query_int(store_conn *c, sqlite3_stmt *st, int64_t *v, pf_err *e)
{
    int rc = sqlite3_step(st);
    int ret;
    if (rc == SQLITE_ROW) {
        *v = sqlite3_column_int64(st, 0);
        ret = 1;
    } else if (rc == SQLITE_DONE) {
        ret = 0;
    } else {
        ret = db_fail(c, e, "query");
    }
    stmt_done(st);
    return ret;
}

/* Every row struct starts with its id: paging reads the cursor from there. */
_Static_assert(offsetof(store_workspace, id) == 0, "id first");
_Static_assert(offsetof(store_token, id) == 0, "id first");
_Static_assert(offsetof(store_project, id) == 0, "id first");
_Static_assert(offsetof(store_branch, id) == 0, "id first");
_Static_assert(offsetof(store_database, id) == 0, "id first");
_Static_assert(offsetof(store_connection, id) == 0, "id first");
_Static_assert(offsetof(store_op, id) == 0, "id first");

/* Validates pg and turns its cursor into the seq to start after (seq_stmt looks an id up). */
static int page_start(store_conn *c, enum stmt_id seq_stmt, const store_page *pg, int64_t *after,
                      pf_err *e)
{
    *after = 0;
    if (pg->limit < 1 || pg->limit > 100)
        return err_set(e, 400, "ValidationError", "limit", "limit must be between 1 and 100");
    if (!pg->cursor || !pg->cursor[0])
        return 0;
    sqlite3_stmt *st = stmt(c, seq_stmt, e);
    if (!st)
        return -1;
    if (bind_text(st, 1, pg->cursor) != SQLITE_OK)
        return bind_fail(c, st, e);
    int r = query_int(c, st, after, e);
    if (r < 0)
        return -1;
    if (r == 0)
        return err_set(e, 400, "ValidationError", "cursor", "The cursor is not valid");
    return 0;
}

/* Runs a paged list statement whose filters (?3..) are bound; fills out/n/po. */
static int page_fetch(store_conn *c, sqlite3_stmt *st, const store_page *pg, int64_t after,
                      size_t elem, row_fn read, void **out, size_t *n, store_page_out *po,
                      pf_err *e)
{
    if (sqlite3_bind_int64(st, 1, after) != SQLITE_OK ||
        sqlite3_bind_int(st, 2, pg->limit + 1) != SQLITE_OK)
        return bind_fail(c, st, e);
    char *arr = xcalloc((size_t)pg->limit, elem);
    size_t k = 0;
    bool more = false;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (k == (size_t)pg->limit) {
            more = true;
            break;
        }
        read(st, arr + k * elem);
        k++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        db_fail(c, e, "list");
        stmt_done(st);
        free(arr);
        return -1;
    }
    stmt_done(st);
    *out = arr;
    *n = k;
    if (po) {
        po->has_more = more;
        po->next_cursor[0] = '\0';
        if (more)
            snprintf(po->next_cursor, sizeof po->next_cursor, "%s", arr + (k - 1) * elem);
    }
    return 0;
}

/* Runs a bound statement and collects every row (no paging). */
static int fetch_all(store_conn *c, sqlite3_stmt *st, size_t elem, row_fn read, void **out,
                     size_t *n, pf_err *e)
{
    size_t cap = 8, k = 0;
    char *arr = xcalloc(cap, elem);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (k == cap) {
            char *bigger = xcalloc(cap * 2, elem);
            memcpy(bigger, arr, cap * elem);
            free(arr);
            arr = bigger;
            cap *= 2;
        }
        read(st, arr + k * elem);
        k++;
    }
    if (rc != SQLITE_DONE) {
        db_fail(c, e, "list");
        stmt_done(st);
        free(arr);
        return -1;
    }
    stmt_done(st);
    *out = arr;
    *n = k;
    return 0;
}

static const store_page default_page = {NULL, 100};

/* ---- transactions ---- */

static int run_simple(store_conn *c, enum stmt_id id, pf_err *e)
{
    sqlite3_stmt *st = stmt(c, id, e);
    if (!st)
        return -1;
    int rc = sqlite3_step(st);
    int ret = rc == SQLITE_DONE ? 0 : db_fail(c, e, stmt_sql[id]);
    sqlite3_reset(st);
    return ret;
}

static int tx_begin(store_conn *c, pf_err *e)
{
    if (run_simple(c, c->depth == 0 ? S_BEGIN : S_SAVEPOINT, e) != 0)
        return -1;
    c->depth++;
    return 0;
}

static void tx_rollback(store_conn *c)
{
    if (c->depth <= 0)
        return;
    if (sqlite3_get_autocommit(c->db)) {
        /* SQLite already rolled the whole transaction back (I/O error, out of memory...) */
        c->depth = 0;
        return;
    }
    c->depth--;
    if (c->depth == 0) {
        run_simple(c, S_ROLLBACK, NULL);
        return;
    }
    run_simple(c, S_ROLLBACK_TO, NULL);
    run_simple(c, S_RELEASE, NULL);
}

static int tx_commit(store_conn *c, pf_err *e)
{
    if (c->depth <= 0)
        return err_internal(e, "store: commit without a transaction");
    if (run_simple(c, c->depth == 1 ? S_COMMIT : S_RELEASE, e) != 0) {
        tx_rollback(c);
        return -1;
    }
    c->depth--;
    return 0;
}

int store_tx_begin(store *s, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    return c ? tx_begin(c, e) : -1;
}

int store_tx_commit(store *s, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    return c ? tx_commit(c, e) : -1;
}

void store_tx_rollback(store *s)
{
    store_conn *c = conn_get(s, NULL);
    if (c)
        tx_rollback(c);
}

/* ---- open, migrate, close ---- */

static int migrate(store_conn *c, pf_err *e)
{
    char *msg = NULL;
    if (sqlite3_exec(c->db,
                     "CREATE TABLE IF NOT EXISTS schema_migrations (\n"
                     "    version    INTEGER PRIMARY KEY,\n"
                     "    applied_at TEXT NOT NULL\n"
                     ")",
                     NULL, NULL, &msg) != SQLITE_OK)
        goto exec_fail;
    for (int i = 0; i < MIGRATION_COUNT; i++) {
        int version = i + 1;
        if (tx_begin(c, e) != 0)
            return -1;
        /* checked inside the write lock: another process may have applied it meanwhile */
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(c->db, "SELECT 1 FROM schema_migrations WHERE version = ?1", -1, &st,
                               NULL) != SQLITE_OK) {
            db_fail(c, e, "migrate");
            tx_rollback(c);
            return -1;
        }
        sqlite3_bind_int(st, 1, version);
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc == SQLITE_ROW) {
            if (tx_commit(c, e) != 0)
                return -1;
            continue;
        }
        if (rc != SQLITE_DONE) {
            db_fail(c, e, "migrate");
            tx_rollback(c);
            return -1;
        }
        if (sqlite3_exec(c->db, migrations[i], NULL, NULL, &msg) != SQLITE_OK) {
            tx_rollback(c);
            err_internal(e, "store: migration %d failed: %s", version, msg ? msg : "?");
            sqlite3_free(msg);
            return -1;
        }
        char now[STORE_TS_MAX];
        util_now_iso(now);
        st = NULL;
        if (sqlite3_prepare_v2(
                c->db, "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)", -1,
                &st, NULL) != SQLITE_OK) {
            db_fail(c, e, "migrate");
            tx_rollback(c);
            return -1;
        }
        sqlite3_bind_int(st, 1, version);
        sqlite3_bind_text(st, 2, now, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) {
            db_fail(c, e, "migrate");
            tx_rollback(c);
            return -1;
        }
        if (tx_commit(c, e) != 0)
            return -1;
    }
    return 0;

exec_fail:
    err_internal(e, "store: migrate: %s", msg ? msg : "?");
    sqlite3_free(msg);
    return -1;
}

int store_open(const char *path, store **out, pf_err *e)
{
    *out = NULL;
    if (!sqlite3_threadsafe())
        return err_internal(e, "store: SQLite was built without thread support");
    store *s = xcalloc(1, sizeof *s);
    s->path = xstrdup(path);
    pthread_mutex_init(&s->mu, NULL);
    if (pthread_key_create(&s->key, conn_thread_exit) != 0) {
        pthread_mutex_destroy(&s->mu);
        free(s->path);
        free(s);
        return err_internal(e, "store: pthread_key_create failed");
    }
    store_conn *c = conn_get(s, e);
    if (!c)
        goto fail;

    /* WAL is a property of the file: set once, every later connection inherits it */
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->db, "PRAGMA journal_mode = WAL", -1, &st, NULL) != SQLITE_OK) {
        db_fail(c, e, "journal_mode");
        goto fail;
    }
    int rc = sqlite3_step(st);
    bool wal = rc == SQLITE_ROW && sqlite3_column_text(st, 0) &&
               strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
    sqlite3_finalize(st);
    if (!wal) {
        err_internal(e, "store: cannot put %s in WAL mode", path);
        goto fail;
    }

    if (migrate(c, e) != 0)
        goto fail;
    int v = store_schema_version(s);
    if (v > MIGRATION_COUNT) {
        err_internal(e, "store: %s has schema version %d, newer than this pgfleet (%d)", path, v,
                     MIGRATION_COUNT);
        goto fail;
    }
    *out = s;
    return 0;

fail:
    store_close(s);
    return -1;
}

/* Every thread must be done with the store. Threads exiting later run no destructor: the
 * key is deleted here. */
void store_close(store *s)
{
    if (!s)
        return;
    pthread_setspecific(s->key, NULL);
    pthread_key_delete(s->key);
    pthread_mutex_lock(&s->mu);
    store_conn *c = s->conns;
    s->conns = NULL;
    pthread_mutex_unlock(&s->mu);
    while (c) {
        store_conn *next = c->next;
        conn_free(c);
        c = next;
    }
    pthread_mutex_destroy(&s->mu);
    free(s->path);
    free(s);
}

int store_schema_version(store *s)
{
    store_conn *c = conn_get(s, NULL);
    if (!c)
        return -1;
    sqlite3_stmt *st = stmt(c, S_SCHEMA_VERSION, NULL);
    if (!st)
        return -1;
    int64_t v = 0;
    if (query_int(c, st, &v, NULL) != 1)
        return -1;
    return (int)v;
}

/* ---- enum names ---- */

static const char *const db_status_names[] = {
    [DB_PROVISIONING] = "provisioning", [DB_READY] = "ready",       [DB_RECOVERING] = "recovering",
    [DB_FAILURE] = "failure",           [DB_DELETING] = "deleting",
};
static const char *const op_kind_names[] = {
    [OP_DB_PROVISION] = "db_provision", [OP_DB_DELETE] = "db_delete",
    [OP_CONN_SYNC] = "conn_sync",       [OP_CONN_DROP] = "conn_drop",
    [OP_DB_BACKUP] = "db_backup",       [OP_DB_RESTORE] = "db_restore",
    [OP_DB_CLONE] = "db_clone",
};
static const char *const backup_type_names[] = {
    [BACKUP_FULL] = "full",
    [BACKUP_DIFF] = "differential",
    [BACKUP_INCR] = "incremental",
};
static const char *const backup_status_names[] = {
    [BACKUP_RUNNING] = "running",
    [BACKUP_COMPLETED] = "completed",
    [BACKUP_FAILED] = "failed",
};
static const char *const op_state_names[] = {
    [OPS_PENDING] = "pending",
    [OPS_RUNNING] = "running",
    [OPS_DONE] = "done",
    [OPS_FAILED] = "failed",
};
#define NAMES_COUNT(a) ((int)(sizeof a / sizeof a[0]))

const char *store_db_status_name(store_db_status st)
{
    return (int)st >= 0 && (int)st < NAMES_COUNT(db_status_names) ? db_status_names[st] : "unknown";
}

const char *store_op_kind_name(store_op_kind k)
{
    return (int)k >= 0 && (int)k < NAMES_COUNT(op_kind_names) ? op_kind_names[k] : "unknown";
}

const char *store_op_state_name(store_op_state st)
{
    return (int)st >= 0 && (int)st < NAMES_COUNT(op_state_names) ? op_state_names[st] : "unknown";
}

/* Index of the column's text in names (CHECK constraints keep it valid), else 0. */
static int col_enum(sqlite3_stmt *st, int i, const char *const *names, int count)
{
    const char *t = (const char *)sqlite3_column_text(st, i);
    for (int k = 0; t && k < count; k++)
        if (strcmp(t, names[k]) == 0)
            return k;
    return 0;
}

/* ---- row readers (column order of the *_COLS macros) ---- */

static void read_workspace(sqlite3_stmt *st, void *dst)
{
    store_workspace *w = dst;
    col_text(st, 0, w->id, sizeof w->id);
    col_text(st, 1, w->name, sizeof w->name);
    col_text(st, 2, w->created_at, sizeof w->created_at);
}

static void read_token(sqlite3_stmt *st, void *dst)
{
    store_token *t = dst;
    col_text(st, 0, t->id, sizeof t->id);
    col_text(st, 1, t->workspace_id, sizeof t->workspace_id);
    col_text(st, 2, t->name, sizeof t->name);
    col_text(st, 3, t->hash, sizeof t->hash);
    col_text(st, 4, t->value_hint, sizeof t->value_hint);
    col_text(st, 5, t->created_at, sizeof t->created_at);
    col_text(st, 6, t->expires_at, sizeof t->expires_at);
}

static void read_project(sqlite3_stmt *st, void *dst)
{
    store_project *p = dst;
    col_text(st, 0, p->id, sizeof p->id);
    col_text(st, 1, p->workspace_id, sizeof p->workspace_id);
    col_text(st, 2, p->name, sizeof p->name);
    col_text(st, 3, p->logical_id, sizeof p->logical_id);
    col_text(st, 4, p->default_region, sizeof p->default_region);
    col_text(st, 5, p->created_at, sizeof p->created_at);
}

static void read_branch(sqlite3_stmt *st, void *dst)
{
    store_branch *b = dst;
    col_text(st, 0, b->id, sizeof b->id);
    col_text(st, 1, b->project_id, sizeof b->project_id);
    col_text(st, 2, b->git_name, sizeof b->git_name);
    b->is_default = sqlite3_column_int(st, 3) != 0;
    col_text(st, 4, b->created_at, sizeof b->created_at);
    col_text(st, 5, b->updated_at, sizeof b->updated_at);
}

static void read_database(sqlite3_stmt *st, void *dst)
{
    store_database *d = dst;
    col_text(st, 0, d->id, sizeof d->id);
    col_text(st, 1, d->workspace_id, sizeof d->workspace_id);
    col_text(st, 2, d->project_id, sizeof d->project_id);
    col_text(st, 3, d->branch_id, sizeof d->branch_id);
    col_text(st, 4, d->name, sizeof d->name);
    col_text(st, 5, d->logical_id, sizeof d->logical_id);
    d->status = (store_db_status)col_enum(st, 6, db_status_names, NAMES_COUNT(db_status_names));
    col_text(st, 7, d->status_reason, sizeof d->status_reason);
    d->is_default = sqlite3_column_int(st, 8) != 0;
    col_text(st, 9, d->region, sizeof d->region);
    col_text(st, 10, d->source_type, sizeof d->source_type);
    col_text(st, 11, d->source_database_id, sizeof d->source_database_id);
    col_text(st, 12, d->source_backup_id, sizeof d->source_backup_id);
    d->port = sqlite3_column_int(st, 13); /* NULL reads as 0 */
    col_text(st, 14, d->default_connection_id, sizeof d->default_connection_id);
    col_text(st, 15, d->created_at, sizeof d->created_at);
    col_text(st, 16, d->unhealthy, sizeof d->unhealthy);
}

static void read_connection(sqlite3_stmt *st, void *dst)
{
    store_connection *c = dst;
    col_text(st, 0, c->id, sizeof c->id);
    col_text(st, 1, c->workspace_id, sizeof c->workspace_id);
    col_text(st, 2, c->database_id, sizeof c->database_id);
    col_text(st, 3, c->name, sizeof c->name);
    col_text(st, 4, c->role, sizeof c->role);
    col_text(st, 5, c->verifier, sizeof c->verifier);
    c->deleting = sqlite3_column_int(st, 6) != 0;
    col_text(st, 7, c->created_at, sizeof c->created_at);
}

static void read_op(sqlite3_stmt *st, void *dst)
{
    store_op *o = dst;
    col_text(st, 0, o->id, sizeof o->id);
    o->kind = (store_op_kind)col_enum(st, 1, op_kind_names, NAMES_COUNT(op_kind_names));
    o->state = (store_op_state)col_enum(st, 2, op_state_names, NAMES_COUNT(op_state_names));
    col_text(st, 3, o->database_id, sizeof o->database_id);
    col_text(st, 4, o->connection_id, sizeof o->connection_id);
    o->attempts = sqlite3_column_int(st, 5);
    col_text(st, 6, o->error, sizeof o->error);
    col_text(st, 7, o->created_at, sizeof o->created_at);
    col_text(st, 8, o->updated_at, sizeof o->updated_at);
    col_text(st, 9, o->args, sizeof o->args);
}

static void read_backup(sqlite3_stmt *st, void *dst)
{
    store_backup *b = dst;
    col_text(st, 0, b->id, sizeof b->id);
    col_text(st, 1, b->database_id, sizeof b->database_id);
    col_text(st, 2, b->label, sizeof b->label);
    b->type = (store_backup_type)col_enum(st, 3, backup_type_names, NAMES_COUNT(backup_type_names));
    b->status =
        (store_backup_status)col_enum(st, 4, backup_status_names, NAMES_COUNT(backup_status_names));
    b->size = sqlite3_column_type(st, 5) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 5);
    col_text(st, 6, b->started_at, sizeof b->started_at);
    col_text(st, 7, b->stopped_at, sizeof b->stopped_at);
    col_text(st, 8, b->write_mark, sizeof b->write_mark);
    col_text(st, 9, b->error, sizeof b->error);
}

/* Looks up one row by the statement's bound keys; 404 with hint/what when absent. */
static int get_row(store_conn *c, sqlite3_stmt *st, row_fn read, void *out, const char *hint,
                   const char *kind, const char *id, pf_err *e)
{
    int r = query_one(c, st, read, out, e);
    if (r < 0)
        return -1;
    if (r == 0)
        return err_set(e, 404, "NotFound", hint, "%s %s was not found", kind, id);
    return 0;
}

/* After an UPDATE/DELETE by id: 404 when it touched nothing. */
static int touched(store_conn *c, const char *hint, const char *kind, const char *id, pf_err *e)
{
    if (sqlite3_changes(c->db) == 0)
        return err_set(e, 404, "NotFound", hint, "%s %s was not found", kind, id);
    return 0;
}

/* ---- workspaces ---- */

int store_workspace_insert(store *s, const store_workspace *w, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_WS_INSERT, e) : NULL;
    if (!st)
        return -1;
    if ((bind_text(st, 1, w->id) | bind_text(st, 2, w->name) | bind_text(st, 3, w->created_at)) !=
        SQLITE_OK)
        return bind_fail(c, st, e);
    return exec_write(c, st, NULL, NULL, e);
}

int store_workspace_get(store *s, const char *id, store_workspace *out, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_WS_GET, e) : NULL;
    if (!st)
        return -1;
    if (bind_text(st, 1, id) != SQLITE_OK)
        return bind_fail(c, st, e);
    return get_row(c, st, read_workspace, out, "workspaceId", "Workspace", id, e);
}

int store_workspace_list(store *s, const char *only_id, const store_page *pg, store_workspace **out,
                         size_t *n, store_page_out *po, pf_err *e)
{
    pg = pg ? pg : &default_page;
    int64_t after;
    store_conn *c = conn_get(s, e);
    if (!c || page_start(c, S_WS_SEQ, pg, &after, e) != 0)
        return -1;
    sqlite3_stmt *st = stmt(c, S_WS_LIST, e);
    if (!st)
        return -1;
    if (bind_text(st, 3, only_id) != SQLITE_OK)
        return bind_fail(c, st, e);
    return page_fetch(c, st, pg, after, sizeof **out, read_workspace, (void **)out, n, po, e);
}

int store_workspace_first(store *s, store_workspace *out, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_WS_FIRST, e) : NULL;
    if (!st)
        return -1;
    int r = query_one(c, st, read_workspace, out, e);
    if (r < 0)
        return -1;
    if (r == 0)
        return err_set(e, 404, "NotFound", "workspaceId", "No workspace exists yet");
    return 0;
}

/* ---- tokens ---- */

int store_token_insert(store *s, const store_token *t, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_TOK_INSERT, e) : NULL;
    if (!st)
        return -1;
    if ((bind_text(st, 1, t->id) | bind_text(st, 2, t->workspace_id) | bind_text(st, 3, t->name) |
         bind_text(st, 4, t->hash) | bind_text(st, 5, t->value_hint) |
         bind_text(st, 6, t->created_at) | bind_opt(st, 7, t->expires_at)) != SQLITE_OK)
        return bind_fail(c, st, e);
    return exec_write(c, st, "workspaceId", "The token's workspace", e);
}

int store_token_by_hash(store *s, const char *hash, store_token *out, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_TOK_BY_HASH, e) : NULL;
    if (!st)
        return -1;
    if (bind_text(st, 1, hash) != SQLITE_OK)
        return bind_fail(c, st, e);
    int r = query_one(c, st, read_token, out, e);
    if (r < 0)
        return -1;
    if (r == 0) /* the hash is a secret's digest: keep it out of the message */
        return err_set(e, 404, "NotFound", "token", "The token was not found");
    return 0;
}

/* ---- projects ---- */

int store_project_insert(store *s, const store_project *p, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_PROJ_INSERT, e) : NULL;
    if (!st)
        return -1;
    if ((bind_text(st, 1, p->id) | bind_text(st, 2, p->workspace_id) | bind_text(st, 3, p->name) |
         bind_opt(st, 4, p->logical_id) | bind_opt(st, 5, p->default_region) |
         bind_text(st, 6, p->created_at)) != SQLITE_OK)
        return bind_fail(c, st, e);
    return exec_write(c, st, "workspaceId", "The project's workspace", e);
}

int store_project_get(store *s, const char *ws, const char *id, store_project *out, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_PROJ_GET, e) : NULL;
    if (!st)
        return -1;
    if ((bind_text(st, 1, id) | bind_text(st, 2, ws)) != SQLITE_OK)
        return bind_fail(c, st, e);
    return get_row(c, st, read_project, out, "projectId", "Project", id, e);
}

int store_project_list(store *s, const char *ws, const char *logical_id, const store_page *pg,
                       store_project **out, size_t *n, store_page_out *po, pf_err *e)
{
    pg = pg ? pg : &default_page;
    int64_t after;
    store_conn *c = conn_get(s, e);
    if (!c || page_start(c, S_PROJ_SEQ, pg, &after, e) != 0)
        return -1;
    sqlite3_stmt *st = stmt(c, S_PROJ_LIST, e);
    if (!st)
        return -1;
    if ((bind_text(st, 3, ws) | bind_text(st, 4, logical_id)) != SQLITE_OK)
        return bind_fail(c, st, e);
    return page_fetch(c, st, pg, after, sizeof **out, read_project, (void **)out, n, po, e);
}

int store_project_update_name(store *s, const char *ws, const char *id, const char *name, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_PROJ_RENAME, e) : NULL;
    if (!st)
        return -1;
    if ((bind_text(st, 1, id) | bind_text(st, 2, ws) | bind_text(st, 3, name) |
         bind_text(st, 4, now)) != SQLITE_OK)
        return bind_fail(c, st, e);
    if (exec_write(c, st, NULL, NULL, e) != 0)
        return -1;
    return touched(c, "projectId", "Project", id, e);
}

int store_project_delete(store *s, const char *ws, const char *id, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    if (!c || tx_begin(c, e) != 0)
        return -1;
    store_project p;
    sqlite3_stmt *st = stmt(c, S_PROJ_GET, e);
    if (!st)
        goto fail;
    if ((bind_text(st, 1, id) | bind_text(st, 2, ws)) != SQLITE_OK) {
        bind_fail(c, st, e);
        goto fail;
    }
    if (get_row(c, st, read_project, &p, "projectId", "Project", id, e) != 0)
        goto fail;
    if (!(st = stmt(c, S_PROJ_DEL_BRANCHES, e)))
        goto fail;
    if (bind_text(st, 1, id) != SQLITE_OK) {
        bind_fail(c, st, e);
        goto fail;
    }
    if (exec_write(c, st, NULL, NULL, e) != 0)
        goto fail;
    if (!(st = stmt(c, S_PROJ_DELETE, e)))
        goto fail;
    if ((bind_text(st, 1, id) | bind_text(st, 2, ws)) != SQLITE_OK) {
        bind_fail(c, st, e);
        goto fail;
    }
    if (exec_write(c, st, NULL, NULL, e) != 0)
        goto fail;
    return tx_commit(c, e);

fail:
    tx_rollback(c);
    return -1;
}

/* ---- branches ---- */

int store_branch_insert(store *s, const store_branch *b, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_BR_INSERT, e) : NULL;
    if (!st)
        return -1;
    const char *updated = b->updated_at[0] ? b->updated_at : b->created_at;
    if ((bind_text(st, 1, b->id) | bind_text(st, 2, b->project_id) | bind_text(st, 3, b->git_name) |
         sqlite3_bind_int(st, 4, b->is_default ? 1 : 0) | bind_text(st, 5, b->created_at) |
         bind_text(st, 6, updated)) != SQLITE_OK)
        return bind_fail(c, st, e);
    return exec_write(c, st, "projectId", "The branch's project", e);
}

int store_branch_get(store *s, const char *ws, const char *id, store_branch *out, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_BR_GET, e) : NULL;
    if (!st)
        return -1;
    if ((bind_text(st, 1, id) | bind_text(st, 2, ws)) != SQLITE_OK)
        return bind_fail(c, st, e);
    return get_row(c, st, read_branch, out, "branchId", "Branch", id, e);
}

int store_branch_by_git_name(store *s, const char *project_id, const char *git_name,
                             store_branch *out, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_BR_BY_GIT_NAME, e) : NULL;
    if (!st)
        return -1;
    if ((bind_text(st, 1, project_id) | bind_text(st, 2, git_name)) != SQLITE_OK)
        return bind_fail(c, st, e);
    return get_row(c, st, read_branch, out, "gitName", "Branch", git_name, e);
}

int store_branch_default(store *s, const char *project_id, store_branch *out, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_BR_DEFAULT, e) : NULL;
    if (!st)
        return -1;
    if (bind_text(st, 1, project_id) != SQLITE_OK)
        return bind_fail(c, st, e);
    int r = query_one(c, st, read_branch, out, e);
    if (r < 0)
        return -1;
    if (r == 0)
        return err_set(e, 404, "NotFound", "branchId", "Project %s has no default branch",
                       project_id);
    return 0;
}

int store_branch_list(store *s, const char *project_id, const char *git_name,
                      const char *git_name_contains, const store_page *pg, store_branch **out,
                      size_t *n, store_page_out *po, pf_err *e)
{
    pg = pg ? pg : &default_page;
    int64_t after;
    store_conn *c = conn_get(s, e);
    if (!c || page_start(c, S_BR_SEQ, pg, &after, e) != 0)
        return -1;
    sqlite3_stmt *st = stmt(c, S_BR_LIST, e);
    if (!st)
        return -1;
    if ((bind_text(st, 3, project_id) | bind_text(st, 4, git_name) |
         bind_text(st, 5, git_name_contains)) != SQLITE_OK)
        return bind_fail(c, st, e);
    return page_fetch(c, st, pg, after, sizeof **out, read_branch, (void **)out, n, po, e);
}

static void read_first_text(sqlite3_stmt *st, void *dst)
{
    col_text(st, 0, dst, PF_ID_MAX);
}

int store_branch_set_default(store *s, const char *id, pf_err *e)
{
    char now[STORE_TS_MAX], project_id[PF_ID_MAX];
    util_now_iso(now);
    store_conn *c = conn_get(s, e);
    if (!c || tx_begin(c, e) != 0)
        return -1;
    sqlite3_stmt *st = stmt(c, S_BR_PROJECT_OF, e);
    if (!st)
        goto fail;
    if (bind_text(st, 1, id) != SQLITE_OK) {
        bind_fail(c, st, e);
        goto fail;
    }
    if (get_row(c, st, read_first_text, project_id, "branchId", "Branch", id, e) != 0)
        goto fail;
    if (!(st = stmt(c, S_BR_CLEAR_DEFAULT, e)))
        goto fail;
    if ((bind_text(st, 1, project_id) | bind_text(st, 2, id) | bind_text(st, 3, now)) !=
        SQLITE_OK) {
        bind_fail(c, st, e);
        goto fail;
    }
    if (exec_write(c, st, NULL, NULL, e) != 0)
        goto fail;
    if (!(st = stmt(c, S_BR_SET_DEFAULT, e)))
        goto fail;
    if ((bind_text(st, 1, id) | bind_text(st, 2, now)) != SQLITE_OK) {
        bind_fail(c, st, e);
        goto fail;
    }
    if (exec_write(c, st, NULL, NULL, e) != 0)
        goto fail;
    return tx_commit(c, e);

fail:
    tx_rollback(c);
    return -1;
}

int store_branch_delete(store *s, const char *id, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_BR_DELETE, e) : NULL;
    if (!st)
        return -1;
    if (bind_text(st, 1, id) != SQLITE_OK)
        return bind_fail(c, st, e);
    if (exec_write(c, st, NULL, NULL, e) != 0)
        return -1;
    return touched(c, "branchId", "Branch", id, e);
}

int store_branch_database_count(store *s, const char *id, int *count, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_BR_DB_COUNT, e) : NULL;
    if (!st)
        return -1;
    if (bind_text(st, 1, id) != SQLITE_OK)
        return bind_fail(c, st, e);
    int64_t v = 0;
    if (query_int(c, st, &v, e) < 0)
        return -1;
    *count = (int)v;
    return 0;
}

/* ---- databases ---- */

int store_database_insert(store *s, const store_database *d, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_DB_INSERT, e) : NULL;
    if (!st)
        return -1;
    int rc = bind_text(st, 1, d->id) | bind_text(st, 2, d->workspace_id) |
             bind_text(st, 3, d->project_id) | bind_opt(st, 4, d->branch_id) |
             bind_text(st, 5, d->name) | bind_opt(st, 6, d->logical_id) |
             bind_text(st, 7, store_db_status_name(d->status)) |
             bind_text(st, 8, d->status_reason) | sqlite3_bind_int(st, 9, d->is_default ? 1 : 0) |
             bind_text(st, 10, d->region) | bind_text(st, 11, d->source_type) |
             bind_opt(st, 12, d->source_database_id) | bind_opt(st, 13, d->source_backup_id) |
             (d->port > 0 ? sqlite3_bind_int(st, 14, d->port) : sqlite3_bind_null(st, 14)) |
             bind_opt(st, 15, d->default_connection_id) | bind_text(st, 16, d->created_at);
    if (rc != SQLITE_OK)
        return bind_fail(c, st, e);
    return exec_write(c, st, "workspaceId", "The database's workspace", e);
}

int store_database_get(store *s, const char *ws, const char *id, store_database *out, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_DB_GET, e) : NULL;
    if (!st)
        return -1;
    if ((bind_text(st, 1, id) | bind_text(st, 2, ws)) != SQLITE_OK)
        return bind_fail(c, st, e);
    return get_row(c, st, read_database, out, "databaseId", "Database", id, e);
}

int store_database_get_internal(store *s, const char *id, store_database *out, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_DB_GET_INTERNAL, e) : NULL;
    if (!st)
        return -1;
    if (bind_text(st, 1, id) != SQLITE_OK)
        return bind_fail(c, st, e);
    return get_row(c, st, read_database, out, "databaseId", "Database", id, e);
}

int store_database_list(store *s, const char *ws, const store_db_filter *f, const store_page *pg,
                        store_database **out, size_t *n, store_page_out *po, pf_err *e)
{
    static const store_db_filter none = {0};
    f = f ? f : &none;
    pg = pg ? pg : &default_page;
    int64_t after;
    store_conn *c = conn_get(s, e);
    if (!c || page_start(c, S_DB_SEQ, pg, &after, e) != 0)
        return -1;
    sqlite3_stmt *st = stmt(c, S_DB_LIST, e);
    if (!st)
        return -1;
    if ((bind_text(st, 3, ws) | bind_text(st, 4, f->project_id) | bind_text(st, 5, f->logical_id) |
         bind_text(st, 6, f->branch_id) | bind_text(st, 7, f->branch_git_name)) != SQLITE_OK)
        return bind_fail(c, st, e);
    return page_fetch(c, st, pg, after, sizeof **out, read_database, (void **)out, n, po, e);
}

int store_database_list_internal(store *s, store_database **out, size_t *n, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_DB_LIST_ALL, e) : NULL;
    if (!st)
        return -1;
    return fetch_all(c, st, sizeof **out, read_database, (void **)out, n, e);
}

/* A state machine over one column of a row: the names of its states (as stored), its
 * legal moves, and two statements: a conditional UPDATE (?1 id, ?2 from, ?3 to, ?4 reason,
 * ?5 now) and a SELECT of the column by id (?1). */
typedef struct fsm_move {
    int from, to;
} fsm_move;

typedef struct store_fsm {
    const char *field; /* the log line's word: "status" */
    const char *const *names;
    int count;
    const fsm_move *moves;
    size_t nmoves;
    enum stmt_id update, current;
} store_fsm;

/* Every move of a database's status that pgfleet makes (see store.h). */
static const fsm_move db_status_moves[] = {
    {DB_PROVISIONING, DB_READY},                               /* provisioned, restored or cloned */
    {DB_PROVISIONING, DB_FAILURE},                             /* its op gave up */
    {DB_PROVISIONING, DB_DELETING}, {DB_READY, DB_RECOVERING}, /* a restore was asked for */
    {DB_READY, DB_FAILURE},                                    /* a restart gave up */
    {DB_READY, DB_DELETING},        {DB_RECOVERING, DB_READY},   {DB_RECOVERING, DB_FAILURE},
    {DB_RECOVERING, DB_DELETING},   {DB_FAILURE, DB_RECOVERING}, /* a restore repairs a failed
                                                                    database */
    {DB_FAILURE, DB_DELETING},
};

static const store_fsm db_status_fsm = {
    .field = "status",
    .names = db_status_names,
    .count = NAMES_COUNT(db_status_names),
    .moves = db_status_moves,
    .nmoves = sizeof db_status_moves / sizeof db_status_moves[0],
    .update = S_DB_TRANSITION,
    .current = S_DB_STATUS,
};

static bool fsm_legal(const store_fsm *m, int from, int to)
{
    for (size_t i = 0; i < m->nmoves; i++)
        if (m->moves[i].from == from && m->moves[i].to == to)
            return true;
    return false;
}

/* Moves the database id from -> to under m (see store_database_transition). */
static int fsm_transition(store *s, const store_fsm *m, const char *id, int from, int to,
                          const char *reason, pf_err *e)
{
    if (from < 0 || from >= m->count || to < 0 || to >= m->count || !fsm_legal(m, from, to))
        return err_set(e, 409, "IllegalTransition", m->field, "Database %s cannot go from %s to %s",
                       id, from >= 0 && from < m->count ? m->names[from] : "?",
                       to >= 0 && to < m->count ? m->names[to] : "?");
    char now[STORE_TS_MAX];
    util_now_iso(now);
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, m->update, e) : NULL;
    if (!st)
        return -1;
    if ((bind_text(st, 1, id) | bind_text(st, 2, m->names[from]) | bind_text(st, 3, m->names[to]) |
         bind_text(st, 4, reason ? reason : "") | bind_text(st, 5, now)) != SQLITE_OK)
        return bind_fail(c, st, e);
    if (exec_write(c, st, NULL, NULL, e) != 0)
        return -1;
    if (sqlite3_changes(c->db) == 0) {
        char cur[PF_ID_MAX];
        if (!(st = stmt(c, m->current, e)))
            return -1;
        if (bind_text(st, 1, id) != SQLITE_OK)
            return bind_fail(c, st, e);
        int r = query_one(c, st, read_first_text, cur, e);
        if (r < 0)
            return -1;
        if (r == 0)
            return err_set(e, 404, "NotFound", "databaseId", "Database %s was not found", id);
        return err_set(e, 409, "StatusChanged", m->field, "Database %s is %s now, not %s", id, cur,
                       m->names[from]);
    }
    if (reason && reason[0])
        log_db(to == DB_FAILURE ? LOG_ERROR : LOG_INFO, id, "%s %s -> %s: %s", m->field,
               m->names[from], m->names[to], reason);
    else
        log_db_info(id, "%s %s -> %s", m->field, m->names[from], m->names[to]);
    return 0;
}

bool store_db_status_legal(store_db_status from, store_db_status to)
{
    return fsm_legal(&db_status_fsm, (int)from, (int)to);
}

int store_database_transition(store *s, const char *id, store_db_status from, store_db_status to,
                              const char *reason, pf_err *e)
{
    return fsm_transition(s, &db_status_fsm, id, (int)from, (int)to, reason, e);
}

int store_database_set_unhealthy(store *s, const char *id, const char *reason, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_DB_SET_UNHEALTHY, e) : NULL;
    if (!st)
        return -1;
    if ((bind_text(st, 1, id) | bind_text(st, 2, reason ? reason : "")) != SQLITE_OK)
        return bind_fail(c, st, e);
    if (exec_write(c, st, NULL, NULL, e) != 0)
        return -1;
    return touched(c, "databaseId", "Database", id, e);
}

int store_database_set_default_connection(store *s, const char *id, const char *conn_id, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_DB_SET_DEFAULT_CONN, e) : NULL;
    if (!st)
        return -1;
    if ((bind_text(st, 1, id) | bind_opt(st, 2, conn_id) | bind_text(st, 3, now)) != SQLITE_OK)
        return bind_fail(c, st, e);
    if (exec_write(c, st, NULL, NULL, e) != 0)
        return -1;
    return touched(c, "databaseId", "Database", id, e);
}

int store_database_update(store *s, const char *id, const char *name, const char *branch_id,
                          const char *logical_id, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_DB_UPDATE, e) : NULL;
    if (!st)
        return -1;
    if ((bind_text(st, 1, id) | bind_text(st, 2, name) | bind_text(st, 3, branch_id) |
         bind_text(st, 4, logical_id) | bind_text(st, 5, now)) != SQLITE_OK)
        return bind_fail(c, st, e);
    if (exec_write(c, st, NULL, NULL, e) != 0)
        return -1;
    return touched(c, "databaseId", "Database", id, e);
}

int store_database_set_default(store *s, const char *project_id, const char *id, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    store_conn *c = conn_get(s, e);
    if (!c || tx_begin(c, e) != 0)
        return -1;
    sqlite3_stmt *st = stmt(c, S_DB_IN_PROJECT, e);
    if (!st)
        goto fail;
    if ((bind_text(st, 1, id) | bind_text(st, 2, project_id)) != SQLITE_OK) {
        bind_fail(c, st, e);
        goto fail;
    }
    if (get_row(c, st, NULL, NULL, "databaseId", "Database", id, e) != 0)
        goto fail;
    if (!(st = stmt(c, S_DB_CLEAR_DEFAULT, e)))
        goto fail;
    if ((bind_text(st, 1, project_id) | bind_text(st, 2, id) | bind_text(st, 3, now)) !=
        SQLITE_OK) {
        bind_fail(c, st, e);
        goto fail;
    }
    if (exec_write(c, st, NULL, NULL, e) != 0)
        goto fail;
    if (!(st = stmt(c, S_DB_SET_DEFAULT, e)))
        goto fail;
    if ((bind_text(st, 1, id) | bind_text(st, 2, now)) != SQLITE_OK) {
        bind_fail(c, st, e);
        goto fail;
    }
    if (exec_write(c, st, NULL, NULL, e) != 0)
        goto fail;
    return tx_commit(c, e);

fail:
    tx_rollback(c);
    return -1;
}

/* Removes the row and its connections; its ops stay as history (see the file comment). */
int store_database_delete_row(store *s, const char *id, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    if (!c || tx_begin(c, e) != 0)
        return -1;
    sqlite3_stmt *st = stmt(c, S_DB_DEL_CONNS, e);
    if (!st)
        goto fail;
    if (bind_text(st, 1, id) != SQLITE_OK) {
        bind_fail(c, st, e);
        goto fail;
    }
    if (exec_write(c, st, NULL, NULL, e) != 0)
        goto fail;
    if (!(st = stmt(c, S_DB_DELETE, e)))
        goto fail;
    if (bind_text(st, 1, id) != SQLITE_OK) {
        bind_fail(c, st, e);
        goto fail;
    }
    if (exec_write(c, st, NULL, NULL, e) != 0 || touched(c, "databaseId", "Database", id, e) != 0)
        goto fail;
    static const enum stmt_id usage[] = {S_USAGE_DEL_DAYS, S_USAGE_DEL_COUNTER};
    for (size_t i = 0; i < sizeof usage / sizeof usage[0]; i++) {
        if (!(st = stmt(c, usage[i], e)))
            goto fail;
        if (bind_text(st, 1, id) != SQLITE_OK) {
            bind_fail(c, st, e);
            goto fail;
        }
        if (exec_write(c, st, NULL, NULL, e) != 0)
            goto fail;
    }
    return tx_commit(c, e);

fail:
    tx_rollback(c);
    return -1;
}

int store_port_allocate(store *s, int lo, int hi, int *port, pf_err *e)
{
    if (lo < 1 || hi > 65535 || lo > hi)
        return err_internal(e, "store: bad port range %d-%d", lo, hi);
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_DB_PORTS, e) : NULL;
    if (!st)
        return -1;
    if ((sqlite3_bind_int(st, 1, lo) | sqlite3_bind_int(st, 2, hi)) != SQLITE_OK)
        return bind_fail(c, st, e);
    /* one byte per port of the range: held by a row */
    size_t span = (size_t)(hi - lo) + 1;
    unsigned char *used = xcalloc(span, 1);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        used[sqlite3_column_int(st, 0) - lo] = 1;
    if (rc != SQLITE_DONE) {
        db_fail(c, e, "port scan");
        stmt_done(st);
        free(used);
        return -1;
    }
    stmt_done(st);
    size_t i = 0;
    while (i < span && (used[i] || util_port_busy(lo + (int)i)))
        i++;
    free(used);
    if (i == span)
        return err_set(e, 409, "Conflict", "port", "No free port left in %d-%d", lo, hi);
    *port = lo + (int)i;
    return 0;
}

int store_pool_list(store *s, store_database **dbs, size_t *ndb, store_connection **conns,
                    size_t *nconn, pf_err *e)
{
    *dbs = NULL;
    *conns = NULL;
    *ndb = *nconn = 0;
    store_conn *c = conn_get(s, e);
    /* one snapshot: no connection without its database, whatever commits meanwhile */
    if (!c || run_simple(c, c->depth == 0 ? S_BEGIN_READ : S_SAVEPOINT, e) != 0)
        return -1;
    c->depth++;
    sqlite3_stmt *st = stmt(c, S_POOL_DBS, e);
    if (!st || fetch_all(c, st, sizeof **dbs, read_database, (void **)dbs, ndb, e) != 0)
        goto fail;
    if (!(st = stmt(c, S_POOL_CONNS, e)) ||
        fetch_all(c, st, sizeof **conns, read_connection, (void **)conns, nconn, e) != 0)
        goto fail;
    if (tx_commit(c, e) != 0)
        goto fail_freed;
    return 0;

fail:
    tx_rollback(c);
fail_freed:
    free(*dbs);
    free(*conns);
    *dbs = NULL;
    *conns = NULL;
    *ndb = *nconn = 0;
    return -1;
}

/* ---- connections ---- */

int store_connection_insert(store *s, const store_connection *cn, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_CONN_INSERT, e) : NULL;
    if (!st)
        return -1;
    if ((bind_text(st, 1, cn->id) | bind_text(st, 2, cn->workspace_id) |
         bind_text(st, 3, cn->database_id) | bind_text(st, 4, cn->name) |
         bind_text(st, 5, cn->role) | bind_text(st, 6, cn->verifier) |
         sqlite3_bind_int(st, 7, cn->deleting ? 1 : 0) | bind_text(st, 8, cn->created_at)) !=
        SQLITE_OK)
        return bind_fail(c, st, e);
    return exec_write(c, st, "databaseId", "The connection's database", e);
}

int store_connection_get(store *s, const char *ws, const char *id, store_connection *out, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_CONN_GET, e) : NULL;
    if (!st)
        return -1;
    if ((bind_text(st, 1, id) | bind_text(st, 2, ws)) != SQLITE_OK)
        return bind_fail(c, st, e);
    return get_row(c, st, read_connection, out, "connectionId", "Connection", id, e);
}

int store_connection_get_internal(store *s, const char *id, store_connection *out, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_CONN_GET_INTERNAL, e) : NULL;
    if (!st)
        return -1;
    if (bind_text(st, 1, id) != SQLITE_OK)
        return bind_fail(c, st, e);
    return get_row(c, st, read_connection, out, "connectionId", "Connection", id, e);
}

int store_connection_list(store *s, const char *ws, const char *database_id, const store_page *pg,
                          store_connection **out, size_t *n, store_page_out *po, pf_err *e)
{
    pg = pg ? pg : &default_page;
    int64_t after;
    store_conn *c = conn_get(s, e);
    if (!c || page_start(c, S_CONN_SEQ, pg, &after, e) != 0)
        return -1;
    sqlite3_stmt *st = stmt(c, S_CONN_LIST, e);
    if (!st)
        return -1;
    if ((bind_text(st, 3, ws) | bind_text(st, 4, database_id)) != SQLITE_OK)
        return bind_fail(c, st, e);
    return page_fetch(c, st, pg, after, sizeof **out, read_connection, (void **)out, n, po, e);
}

int store_connection_list_for_db(store *s, const char *database_id, bool include_deleting,
                                 store_connection **out, size_t *n, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_CONN_FOR_DB, e) : NULL;
    if (!st)
        return -1;
    if ((bind_text(st, 1, database_id) | sqlite3_bind_int(st, 2, include_deleting ? 1 : 0)) !=
        SQLITE_OK)
        return bind_fail(c, st, e);
    return fetch_all(c, st, sizeof **out, read_connection, (void **)out, n, e);
}

int store_connection_set_verifier(store *s, const char *id, const char *verifier, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_CONN_SET_VERIFIER, e) : NULL;
    if (!st)
        return -1;
    if ((bind_text(st, 1, id) | bind_text(st, 2, verifier) | bind_text(st, 3, now)) != SQLITE_OK)
        return bind_fail(c, st, e);
    if (exec_write(c, st, NULL, NULL, e) != 0)
        return -1;
    return touched(c, "connectionId", "Connection", id, e);
}

int store_connection_mark_deleting(store *s, const char *id, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_CONN_MARK_DELETING, e) : NULL;
    if (!st)
        return -1;
    if ((bind_text(st, 1, id) | bind_text(st, 2, now)) != SQLITE_OK)
        return bind_fail(c, st, e);
    if (exec_write(c, st, NULL, NULL, e) != 0)
        return -1;
    return touched(c, "connectionId", "Connection", id, e);
}

/* Also clears the database's default_connection_id when it named this connection. */
int store_connection_delete_row(store *s, const char *id, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    store_conn *c = conn_get(s, e);
    if (!c || tx_begin(c, e) != 0)
        return -1;
    sqlite3_stmt *st = stmt(c, S_CONN_DELETE, e);
    if (!st)
        goto fail;
    if (bind_text(st, 1, id) != SQLITE_OK) {
        bind_fail(c, st, e);
        goto fail;
    }
    if (exec_write(c, st, NULL, NULL, e) != 0 ||
        touched(c, "connectionId", "Connection", id, e) != 0)
        goto fail;
    if (!(st = stmt(c, S_CONN_UNSET_DEFAULT, e)))
        goto fail;
    if ((bind_text(st, 1, id) | bind_text(st, 2, now)) != SQLITE_OK) {
        bind_fail(c, st, e);
        goto fail;
    }
    if (exec_write(c, st, NULL, NULL, e) != 0)
        goto fail;
    return tx_commit(c, e);

fail:
    tx_rollback(c);
    return -1;
}

/* ---- operations ---- */

int store_op_insert(store *s, const store_op *op, pf_err *e)
{
    if (op->state != OPS_PENDING)
        return err_internal(e, "store: op %s must be inserted pending", op->id);
    if ((int)op->kind < 0 || op->kind >= OP__COUNT)
        return err_internal(e, "store: op %s has an unknown kind %d", op->id, (int)op->kind);
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_OP_INSERT, e) : NULL;
    if (!st)
        return -1;
    if ((bind_text(st, 1, op->id) | bind_text(st, 2, store_op_kind_name(op->kind)) |
         bind_text(st, 3, op->database_id) | bind_opt(st, 4, op->connection_id) |
         sqlite3_bind_int(st, 5, op->attempts) | bind_text(st, 6, op->error) |
         bind_text(st, 7, op->created_at) | bind_text(st, 8, op->args)) != SQLITE_OK)
        return bind_fail(c, st, e);
    return exec_write(c, st, NULL, NULL, e);
}

int store_op_get(store *s, const char *id, store_op *out, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_OP_GET, e) : NULL;
    if (!st)
        return -1;
    if (bind_text(st, 1, id) != SQLITE_OK)
        return bind_fail(c, st, e);
    return get_row(c, st, read_op, out, "operationId", "Operation", id, e);
}

/* ",kind,kind," for the kinds of mask (bit 1u << kind), as the lane SQL binds it. */
static void kind_list(uint32_t mask, char *out, size_t cap)
{
    size_t len = (size_t)snprintf(out, cap, ",");
    for (int k = 0; k < OP__COUNT && len < cap; k++)
        if (mask & (1u << k))
            len += (size_t)snprintf(out + len, cap - len, "%s,", op_kind_names[k]);
}

int store_op_claim(store *s, const store_op_lane *lane, store_op *out, pf_err *e)
{
    char now[STORE_TS_MAX], kinds[160], passers[160], passed[160];
    util_now_iso(now);
    kind_list(lane->kinds, kinds, sizeof kinds);
    kind_list(lane->passers, passers, sizeof passers);
    kind_list(lane->passed, passed, sizeof passed);
    store_conn *c = conn_get(s, e);
    if (!c || tx_begin(c, e) != 0) /* BEGIN IMMEDIATE: two workers never pick the same op */
        return -1;
    int64_t seq = 0;
    sqlite3_stmt *st = stmt(c, S_OP_NEXT, e);
    if (!st)
        goto fail;
    if ((bind_text(st, 1, kinds) | bind_text(st, 2, passers) | bind_text(st, 3, passed) |
         bind_text(st, 4, now)) != SQLITE_OK) {
        bind_fail(c, st, e);
        goto fail;
    }
    int r = query_int(c, st, &seq, e);
    if (r < 0)
        goto fail;
    if (r == 0) {
        if (tx_commit(c, e) != 0)
            return -1;
        return 0;
    }
    if (!(st = stmt(c, S_OP_START, e)))
        goto fail;
    if ((sqlite3_bind_int64(st, 1, seq) | bind_text(st, 2, now)) != SQLITE_OK) {
        bind_fail(c, st, e);
        goto fail;
    }
    if (exec_write(c, st, NULL, NULL, e) != 0)
        goto fail;
    if (!(st = stmt(c, S_OP_GET_BY_SEQ, e)))
        goto fail;
    if (sqlite3_bind_int64(st, 1, seq) != SQLITE_OK) {
        bind_fail(c, st, e);
        goto fail;
    }
    r = query_one(c, st, read_op, out, e);
    if (r == 0)
        err_internal(e, "store: claimed op vanished");
    if (r != 1)
        goto fail;
    if (tx_commit(c, e) != 0)
        return -1;
    return 1;

fail:
    tx_rollback(c);
    return -1;
}

int store_op_finish(store *s, const char *id, store_op_state final_state, const char *error,
                    pf_err *e)
{
    if (final_state != OPS_DONE && final_state != OPS_FAILED)
        return err_internal(e, "store: op %s cannot finish as %s", id,
                            store_op_state_name(final_state));
    char now[STORE_TS_MAX];
    util_now_iso(now);
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_OP_FINISH, e) : NULL;
    if (!st)
        return -1;
    if ((bind_text(st, 1, id) | bind_text(st, 2, store_op_state_name(final_state)) |
         bind_text(st, 3, error ? error : "") | bind_text(st, 4, now)) != SQLITE_OK)
        return bind_fail(c, st, e);
    if (exec_write(c, st, NULL, NULL, e) != 0)
        return -1;
    return touched(c, "operationId", "Operation", id, e);
}

int store_op_requeue(store *s, const char *id, const char *error, int64_t run_after_ms, pf_err *e)
{
    char now[STORE_TS_MAX], after[STORE_TS_MAX];
    util_now_iso(now);
    if (run_after_ms > 0)
        util_iso_from_ms(run_after_ms, after);
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_OP_REQUEUE, e) : NULL;
    if (!st)
        return -1;
    if ((bind_text(st, 1, id) | bind_text(st, 2, error ? error : "") | bind_text(st, 3, now) |
         bind_text(st, 4, run_after_ms > 0 ? after : NULL)) != SQLITE_OK)
        return bind_fail(c, st, e);
    if (exec_write(c, st, NULL, NULL, e) != 0)
        return -1;
    if (sqlite3_changes(c->db) > 0)
        return 0;
    /* nothing changed: unknown op (404) or not running (409) */
    if (!(st = stmt(c, S_OP_EXISTS, e)))
        return -1;
    if (bind_text(st, 1, id) != SQLITE_OK)
        return bind_fail(c, st, e);
    if (get_row(c, st, NULL, NULL, "operationId", "Operation", id, e) != 0)
        return -1;
    return err_set(e, 409, "Conflict", "state", "Operation %s is not running", id);
}

int store_op_reset_running(store *s, int *count, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_OP_RESET, e) : NULL;
    if (!st)
        return -1;
    if (bind_text(st, 1, now) != SQLITE_OK)
        return bind_fail(c, st, e);
    if (exec_write(c, st, NULL, NULL, e) != 0)
        return -1;
    if (count)
        *count = sqlite3_changes(c->db);
    return 0;
}

int store_op_prune(store *s, const char *before, int *count, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_OP_PRUNE, e) : NULL;
    if (!st)
        return -1;
    if (bind_text(st, 1, before) != SQLITE_OK)
        return bind_fail(c, st, e);
    if (exec_write(c, st, NULL, NULL, e) != 0)
        return -1;
    if (count)
        *count = sqlite3_changes(c->db);
    return 0;
}

int store_op_count_active(store *s, const char *database_id, int *count, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_OP_COUNT_ACTIVE, e) : NULL;
    if (!st)
        return -1;
    if (bind_text(st, 1, database_id) != SQLITE_OK)
        return bind_fail(c, st, e);
    int64_t v = 0;
    if (query_int(c, st, &v, e) < 0)
        return -1;
    *count = (int)v;
    return 0;
}

/* ---- usage ---- */

int store_usage_record(store *s, const char *database_id, const char *day, int64_t xacts,
                       int64_t own_xacts, int64_t storage_bytes, bool baseline, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    store_conn *c = conn_get(s, e);
    if (!c || tx_begin(c, e) != 0)
        return -1;
    sqlite3_stmt *st = stmt(c, S_USAGE_COUNTER_GET, e);
    if (!st)
        goto fail;
    if (bind_text(st, 1, database_id) != SQLITE_OK) {
        bind_fail(c, st, e);
        goto fail;
    }
    int64_t prev = 0;
    int got = query_int(c, st, &prev, e);
    if (got < 0)
        goto fail;
    /* a counter that went down was reset (a crash, a restore): count from the new value on */
    int64_t add = (!baseline && got == 1 && xacts >= prev) ? xacts - prev - own_xacts : 0;
    if (add < 0)
        add = 0;
    if (!(st = stmt(c, S_USAGE_COUNTER_SET, e)))
        goto fail;
    if ((bind_text(st, 1, database_id) | sqlite3_bind_int64(st, 2, xacts) |
         bind_text(st, 3, now)) != SQLITE_OK) {
        bind_fail(c, st, e);
        goto fail;
    }
    if (exec_write(c, st, NULL, NULL, e) != 0)
        goto fail;
    if (!(st = stmt(c, S_USAGE_DAY_ADD, e)))
        goto fail;
    if ((bind_text(st, 1, database_id) | bind_text(st, 2, day) | sqlite3_bind_int64(st, 3, add) |
         sqlite3_bind_int64(st, 4, storage_bytes)) != SQLITE_OK) {
        bind_fail(c, st, e);
        goto fail;
    }
    if (exec_write(c, st, NULL, NULL, e) != 0)
        goto fail;
    return tx_commit(c, e);
fail:
    tx_rollback(c);
    return -1;
}

static void read_usage(sqlite3_stmt *st, void *dst)
{
    store_usage *u = dst;
    u->operations = sqlite3_column_int64(st, 0);
    u->storage_bytes = sqlite3_column_int64(st, 1);
    u->days = sqlite3_column_int64(st, 2);
}

int store_usage_get(store *s, const char *database_id, const char *from_day, const char *to_day,
                    store_usage *out, pf_err *e)
{
    memset(out, 0, sizeof *out);
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_USAGE_SUM, e) : NULL;
    if (!st)
        return -1;
    if ((bind_text(st, 1, database_id) | bind_text(st, 2, from_day) | bind_text(st, 3, to_day)) !=
        SQLITE_OK)
        return bind_fail(c, st, e);
    return query_one(c, st, read_usage, out, e) < 0 ? -1 : 0;
}

/* ---- fleet statistics (the operator's /metrics) ---- */

int store_stats_get(store *s, store_stats *out, pf_err *e)
{
    memset(out, 0, sizeof *out);
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_STATS_DBS, e) : NULL;
    if (!st)
        return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int k = col_enum(st, 0, db_status_names, NAMES_COUNT(db_status_names));
        if (k >= 0 && k < STORE_DB_STATUS_COUNT)
            out->databases[k] += sqlite3_column_int64(st, 1);
    }
    stmt_done(st);
    if (rc != SQLITE_DONE)
        return db_fail(c, e, "database counts");
    if (!(st = stmt(c, S_STATS_OPS, e)))
        return -1;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int k = col_enum(st, 0, op_kind_names, NAMES_COUNT(op_kind_names));
        int state = col_enum(st, 1, op_state_names, NAMES_COUNT(op_state_names));
        if (k >= 0 && k < OP__COUNT && (state == OPS_PENDING || state == OPS_RUNNING))
            out->ops[k][state] += sqlite3_column_int64(st, 2);
    }
    stmt_done(st);
    if (rc != SQLITE_DONE)
        return db_fail(c, e, "op counts");
    return 0;
}

static void read_last_backup(sqlite3_stmt *st, void *dst)
{
    store_last_backup *b = dst;
    col_text(st, 0, b->database_id, sizeof b->database_id);
    col_text(st, 1, b->stopped_at, sizeof b->stopped_at);
}

int store_stats_last_backups(store *s, store_last_backup **out, size_t *n, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_STATS_LAST_BACKUP, e) : NULL;
    if (!st)
        return -1;
    return fetch_all(c, st, sizeof **out, read_last_backup, (void **)out, n, e);
}

/* ---- backups ---- */

const char *store_backup_type_name(store_backup_type t)
{
    return (int)t >= 0 && (int)t < NAMES_COUNT(backup_type_names) ? backup_type_names[t]
                                                                  : "unknown";
}

const char *store_backup_status_name(store_backup_status st)
{
    return (int)st >= 0 && (int)st < NAMES_COUNT(backup_status_names) ? backup_status_names[st]
                                                                      : "unknown";
}

static int bind_size(sqlite3_stmt *st, int i, int64_t size)
{
    return size < 0 ? sqlite3_bind_null(st, i) : sqlite3_bind_int64(st, i, size);
}

static int backup_insert(store_conn *c, const store_backup *b, pf_err *e)
{
    sqlite3_stmt *st = stmt(c, S_BKP_INSERT, e);
    if (!st)
        return -1;
    if ((bind_text(st, 1, b->id) | bind_text(st, 2, b->database_id) | bind_opt(st, 3, b->label) |
         bind_text(st, 4, store_backup_type_name(b->type)) |
         bind_text(st, 5, store_backup_status_name(b->status)) | bind_size(st, 6, b->size) |
         bind_text(st, 7, b->started_at) | bind_opt(st, 8, b->stopped_at) |
         bind_text(st, 9, b->write_mark) | bind_text(st, 10, b->error)) != SQLITE_OK)
        return bind_fail(c, st, e);
    return exec_write(c, st, NULL, NULL, e);
}

int store_backup_insert(store *s, const store_backup *b, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    return c ? backup_insert(c, b, e) : -1;
}

int store_backup_get(store *s, const char *database_id, const char *id, store_backup *out,
                     pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_BKP_GET, e) : NULL;
    if (!st)
        return -1;
    if ((bind_text(st, 1, id) | bind_text(st, 2, database_id)) != SQLITE_OK)
        return bind_fail(c, st, e);
    return get_row(c, st, read_backup, out, "backupId", "Backup", id, e);
}

int store_backup_list(store *s, const char *database_id, int limit, store_backup **out, size_t *n,
                      bool *has_more, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_BKP_LIST, e) : NULL;
    if (!st)
        return -1;
    if ((bind_text(st, 1, database_id) | sqlite3_bind_int(st, 2, limit + 1)) != SQLITE_OK)
        return bind_fail(c, st, e);
    if (fetch_all(c, st, sizeof **out, read_backup, (void **)out, n, e) != 0)
        return -1;
    *has_more = *n > (size_t)limit;
    if (*has_more)
        *n = (size_t)limit;
    return 0;
}

int store_backup_list_all(store *s, const char *database_id, store_backup **out, size_t *n,
                          pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_BKP_LIST_ALL, e) : NULL;
    if (!st)
        return -1;
    if (bind_text(st, 1, database_id) != SQLITE_OK)
        return bind_fail(c, st, e);
    return fetch_all(c, st, sizeof **out, read_backup, (void **)out, n, e);
}

int store_backup_finish(store *s, const char *id, store_backup_status status, const char *label,
                        int64_t size, const char *stopped_at, const char *error, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_BKP_FINISH, e) : NULL;
    if (!st)
        return -1;
    if ((bind_text(st, 1, id) | bind_text(st, 2, store_backup_status_name(status)) |
         bind_opt(st, 3, label) | bind_size(st, 4, size) | bind_opt(st, 5, stopped_at) |
         bind_text(st, 6, error ? error : "")) != SQLITE_OK)
        return bind_fail(c, st, e);
    if (exec_write(c, st, NULL, NULL, e) != 0)
        return -1;
    return touched(c, "backupId", "Backup", id, e);
}

int store_backup_sync(store *s, const char *database_id, const store_backup *seen, size_t n,
                      pf_err *e)
{
    store_conn *c = conn_get(s, e);
    if (!c || tx_begin(c, e) != 0)
        return -1;
    store_backup *rows = NULL;
    size_t nrows = 0;
    for (size_t i = 0; i < n; i++) {
        sqlite3_stmt *st = stmt(c, S_BKP_UPDATE_BY_LABEL, e);
        if (!st)
            goto fail;
        if ((bind_text(st, 1, database_id) | bind_text(st, 2, seen[i].label) |
             bind_text(st, 3, store_backup_type_name(seen[i].type)) |
             bind_size(st, 4, seen[i].size) | bind_opt(st, 5, seen[i].stopped_at)) != SQLITE_OK) {
            bind_fail(c, st, e);
            goto fail;
        }
        if (exec_write(c, st, NULL, NULL, e) != 0)
            goto fail;
        if (sqlite3_changes(c->db) > 0)
            continue;
        store_backup b = seen[i];
        util_id_new("bkp", b.id);
        snprintf(b.database_id, sizeof b.database_id, "%s", database_id);
        b.status = BACKUP_COMPLETED;
        if (backup_insert(c, &b, e) != 0)
            goto fail;
    }
    sqlite3_stmt *st = stmt(c, S_BKP_LIST_ALL, e);
    if (!st)
        goto fail;
    if (bind_text(st, 1, database_id) != SQLITE_OK) {
        bind_fail(c, st, e);
        goto fail;
    }
    if (fetch_all(c, st, sizeof *rows, read_backup, (void **)&rows, &nrows, e) != 0)
        goto fail;
    for (size_t i = 0; i < nrows; i++) {
        if (!rows[i].label[0])
            continue;
        bool found = false;
        for (size_t k = 0; k < n && !found; k++)
            found = strcmp(rows[i].label, seen[k].label) == 0;
        if (found)
            continue;
        if (!(st = stmt(c, S_BKP_DELETE, e)))
            goto fail;
        if (bind_text(st, 1, rows[i].id) != SQLITE_OK) {
            bind_fail(c, st, e);
            goto fail;
        }
        if (exec_write(c, st, NULL, NULL, e) != 0)
            goto fail;
    }
    free(rows);
    return tx_commit(c, e);

fail:
    free(rows);
    tx_rollback(c);
    return -1;
}

int store_backup_delete_for_db(store *s, const char *database_id, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_BKP_DELETE_FOR_DB, e) : NULL;
    if (!st)
        return -1;
    if (bind_text(st, 1, database_id) != SQLITE_OK)
        return bind_fail(c, st, e);
    return exec_write(c, st, NULL, NULL, e);
}

int store_database_set_source(store *s, const char *id, const char *type, const char *src_db,
                              const char *src_backup, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_DB_SET_SOURCE, e) : NULL;
    if (!st)
        return -1;
    if ((bind_text(st, 1, id) | bind_text(st, 2, type) | bind_opt(st, 3, src_db) |
         bind_opt(st, 4, src_backup) | bind_text(st, 5, now)) != SQLITE_OK)
        return bind_fail(c, st, e);
    if (exec_write(c, st, NULL, NULL, e) != 0)
        return -1;
    return touched(c, "databaseId", "Database", id, e);
}

int store_backup_set_mark(store *s, const char *id, const char *write_mark, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    sqlite3_stmt *st = c ? stmt(c, S_BKP_SET_MARK, e) : NULL;
    if (!st)
        return -1;
    if ((bind_text(st, 1, id) | bind_text(st, 2, write_mark)) != SQLITE_OK)
        return bind_fail(c, st, e);
    if (exec_write(c, st, NULL, NULL, e) != 0)
        return -1;
    return touched(c, "backupId", "Backup", id, e);
}

/* ---- for the store's sibling files (store_intern.h) ---- */

sqlite3 *store__db(store *s, pf_err *e)
{
    store_conn *c = conn_get(s, e);
    return c ? c->db : NULL;
}
