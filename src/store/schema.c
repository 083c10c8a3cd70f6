/* store/schema: the catalog's tables as versioned migrations, and store_open.
 *
 * Ordering: every table has `seq INTEGER PRIMARY KEY` (creation order) and `id TEXT
 * UNIQUE`; lists are by seq and the cursor is the id of the last row returned. Optional
 * values are NULL in SQL and "" in structs. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sql.h"

/* Version 1: workspaces, tokens, projects, branches, databases, connections and ops. */
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

/* Version 6: a branch's role, fixed when it is made (a project's first branch is its
 * production branch, every later one preview; the default flag moves, the role never), and a
 * project's `settings` (a JSON object as text, NULL = none). Until now the default branch was
 * shown as production, so it becomes the production branch. */
#define MIGRATION_6                                                                                \
    "ALTER TABLE branches ADD COLUMN role TEXT NOT NULL DEFAULT 'preview'\n"                       \
    "    CHECK (role IN ('production', 'preview'));\n"                                             \
    "UPDATE branches SET role = 'production' WHERE is_default = 1;\n"                              \
    "ALTER TABLE projects ADD COLUMN settings TEXT;\n"

/* Version 7: a project's expiry (ISO-8601 UTC, NULL = never): the reaper (ops/expiry.c)
 * deletes the project, its databases and their backups once it passes. */
#define MIGRATION_7                                                                                \
    "ALTER TABLE projects ADD COLUMN expires_at TEXT;\n"                                           \
    "CREATE INDEX projects_expiry ON projects (expires_at) WHERE expires_at IS NOT NULL;\n"

/* Version 8: operator tokens (docs/console.md). A service token marked is_operator reads the
 * whole fleet (GET /v1/fleet) and nothing else; its workspace_id is only the row's owner (the
 * first workspace), never a scope it acts in. Workspace token lists never show it. */
#define MIGRATION_8                                                                                \
    "ALTER TABLE tokens ADD COLUMN is_operator INTEGER NOT NULL DEFAULT 0\n"                       \
    "    CHECK (is_operator IN (0, 1));\n"

/* Version 9: a database's server is an instance with an id of its own (its directories and
 * pgBackRest stanza), mapped here, so a server started before its database existed (a
 * warm spare) can become the database's without moving. NULL until a provision attaches
 * one; existing databases keep theirs, named by their own id. */
#define MIGRATION_9                                                                                \
    "ALTER TABLE databases ADD COLUMN instance_id TEXT;\n"                                         \
    "UPDATE databases SET instance_id = id;\n"                                                     \
    "CREATE UNIQUE INDEX databases_instance ON databases (instance_id);\n"

/* Version 10: a database's revision, raised by the catalog itself on every change its list
 * item shows: its own row, a connection of it made, changed or removed, its project renamed.
 * A page of databases keeps each item's text under it (api/databases.c). Triggers, not the
 * statements, so no writer can forget it (nor set it back: a rev written lower rises
 * anyway); a trigger's UPDATE of databases does not fire databases_rev again (its WHEN sees
 * the raised rev). */
#define MIGRATION_10                                                                               \
    "ALTER TABLE databases ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;\n"                           \
    "CREATE TRIGGER databases_rev AFTER UPDATE ON databases WHEN NEW.rev <= OLD.rev\n"             \
    "BEGIN UPDATE databases SET rev = OLD.rev + 1 WHERE seq = NEW.seq; END;\n"                     \
    "CREATE TRIGGER connections_rev_insert AFTER INSERT ON connections\n"                          \
    "BEGIN UPDATE databases SET rev = rev + 1 WHERE id = NEW.database_id; END;\n"                  \
    "CREATE TRIGGER connections_rev_update AFTER UPDATE ON connections\n"                          \
    "BEGIN UPDATE databases SET rev = rev + 1 WHERE id IN (OLD.database_id, NEW.database_id);\n"   \
    "END;\n"                                                                                       \
    "CREATE TRIGGER connections_rev_delete AFTER DELETE ON connections\n"                          \
    "BEGIN UPDATE databases SET rev = rev + 1 WHERE id = OLD.database_id; END;\n"                  \
    "CREATE TRIGGER projects_rev AFTER UPDATE ON projects WHEN NEW.name IS NOT OLD.name\n"         \
    "BEGIN UPDATE databases SET rev = rev + 1 WHERE project_id = NEW.id; END;\n"

/* Applied in order; migration i is schema version i + 1. Append only, never edit. */
static const char *const migrations[] = {
    MIGRATION_1, MIGRATION_2, MIGRATION_3, MIGRATION_4, MIGRATION_5,
    MIGRATION_6, MIGRATION_7, MIGRATION_8, MIGRATION_9, MIGRATION_10,
};
#define MIGRATION_COUNT ((int)(sizeof migrations / sizeof migrations[0]))

static sql_stmt q_migrations = SQL("CREATE TABLE IF NOT EXISTS schema_migrations (\n"
                                   "    version    INTEGER PRIMARY KEY,\n"
                                   "    applied_at TEXT NOT NULL\n"
                                   ")");
static sql_stmt q_applied = SQL("SELECT 1 FROM schema_migrations WHERE version = ?1");
static sql_stmt q_record =
    SQL("INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)");
static sql_stmt q_version = SQL("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");

/* Applies each migration not applied yet, each in its own transaction. */
static int migrate(store *s, pf_err *e)
{
    if (sql_run(s, &q_migrations, NOARGS, e) != 0)
        return -1;
    for (int i = 0; i < MIGRATION_COUNT; i++) {
        int version = i + 1;
        if (sql_begin(s, e) != 0)
            return -1;
        /* checked inside the write lock: another process may have applied it meanwhile */
        int rc = sql_one(s, &q_applied, ARGS(INT(version)), NULL, NULL, e);
        if (rc == 0) {
            char now[STORE_TS_MAX];
            util_now_iso(now);
            rc = sql_script(s, migrations[i], e);
            if (rc != 0 && e) {
                char why[sizeof e->message];
                snprintf(why, sizeof why, "%s",
                         e->message + (strncmp(e->message, "store: ", 7) ? 0 : 7));
                err_internal(e, "store: migration %d failed: %s", version, why);
            } else if (rc == 0)
                rc = sql_run(s, &q_record, ARGS(INT(version), TXT(now)), e);
        }
        if (sql_end(s, rc < 0 ? -1 : 0, e) != 0)
            return -1;
    }
    return 0;
}

int store_open(const char *path, store **out, pf_err *e)
{
    *out = NULL;
    if (!sqlite3_threadsafe())
        return err_internal(e, "store: SQLite was built without thread support");
    store *s = sql_store_new(path);
    if (!s)
        return err_internal(e, "store: pthread_key_create failed");
    if (sql_wal(s, e) != 0 || migrate(s, e) != 0)
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

int store_schema_version(store *s)
{
    int64_t v = 0;
    if (sql_int(s, &q_version, NOARGS, &v, NULL) != 1)
        return -1;
    return (int)v;
}
