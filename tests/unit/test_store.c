/* Unit tests for src/store: schema, typed queries, visibility, paging, uniqueness, ports,
 * the op queue, transactions, threads and durability, against a real SQLite file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "store/sql.h"
#include "store/store.h"
#include "util/err.h"
#include "util/util.h"

typedef harness_catalog fixture;

static int setup(void **state)
{
    fixture *f = xcalloc(1, sizeof *f);
    if (harness_catalog_open(f, "store") < 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    harness_catalog_close(f);
    free(f);
    return 0;
}

/* ---- builders ---- */

static void now(char out[STORE_TS_MAX])
{
    util_now_iso(out);
}

static void mk_ws(store *s, char id[PF_ID_MAX], const char *name)
{
    store_workspace w = {0};
    util_id_new("wksp", w.id);
    snprintf(w.name, sizeof w.name, "%s", name);
    now(w.created_at);
    pf_err e;
    assert_int_equal(store_workspace_insert(s, &w, &e), 0);
    memcpy(id, w.id, PF_ID_MAX);
}

static int try_project(store *s, const char *ws, const char *logical, char id[PF_ID_MAX], pf_err *e)
{
    store_project p = {0};
    util_id_new("proj", p.id);
    snprintf(p.workspace_id, sizeof p.workspace_id, "%s", ws);
    snprintf(p.name, sizeof p.name, "project");
    snprintf(p.logical_id, sizeof p.logical_id, "%s", logical ? logical : "");
    snprintf(p.default_region, sizeof p.default_region, "eu-central-1");
    now(p.created_at);
    if (id)
        memcpy(id, p.id, PF_ID_MAX);
    return store_project_insert(s, &p, e);
}

static void mk_project(store *s, const char *ws, const char *logical, char id[PF_ID_MAX])
{
    pf_err e;
    assert_int_equal(try_project(s, ws, logical, id, &e), 0);
}

static int try_branch(store *s, const char *proj, const char *git, bool def, char id[PF_ID_MAX],
                      pf_err *e)
{
    store_branch b = {0};
    util_id_new("br", b.id);
    snprintf(b.project_id, sizeof b.project_id, "%s", proj);
    snprintf(b.git_name, sizeof b.git_name, "%s", git);
    b.is_default = def;
    now(b.created_at);
    now(b.updated_at);
    if (id)
        memcpy(id, b.id, PF_ID_MAX);
    return store_branch_insert(s, &b, e);
}

static void mk_branch(store *s, const char *proj, const char *git, bool def, char id[PF_ID_MAX])
{
    pf_err e;
    assert_int_equal(try_branch(s, proj, git, def, id, &e), 0);
}

static int try_db(store *s, const char *ws, const char *proj, const char *branch,
                  const char *logical, int port, char id[PF_ID_MAX], pf_err *e)
{
    store_database d = {0};
    util_id_new("db", d.id);
    snprintf(d.workspace_id, sizeof d.workspace_id, "%s", ws);
    snprintf(d.project_id, sizeof d.project_id, "%s", proj);
    snprintf(d.branch_id, sizeof d.branch_id, "%s", branch ? branch : "");
    snprintf(d.name, sizeof d.name, "db");
    snprintf(d.logical_id, sizeof d.logical_id, "%s", logical ? logical : "");
    d.status = DB_PROVISIONING;
    snprintf(d.region, sizeof d.region, "eu-central-1");
    snprintf(d.source_type, sizeof d.source_type, "empty");
    d.port = port;
    now(d.created_at);
    if (id)
        memcpy(id, d.id, PF_ID_MAX);
    return store_database_insert(s, &d, e);
}

static void mk_db(store *s, const char *ws, const char *proj, const char *branch,
                  const char *logical, int port, char id[PF_ID_MAX])
{
    pf_err e;
    int rc = try_db(s, ws, proj, branch, logical, port, id, &e);
    if (rc != 0)
        fprintf(stderr, "mk_db: %s\n", e.message);
    assert_int_equal(rc, 0);
}

static void mk_conn(store *s, const char *ws, const char *db, char id[PF_ID_MAX])
{
    store_connection c = {0};
    util_id_new("conn", c.id);
    snprintf(c.workspace_id, sizeof c.workspace_id, "%s", ws);
    snprintf(c.database_id, sizeof c.database_id, "%s", db);
    snprintf(c.name, sizeof c.name, "default");
    snprintf(c.role, sizeof c.role, "u_%.40s", c.id + 5);
    snprintf(c.verifier, sizeof c.verifier, "SCRAM-SHA-256$4096:salt$stored:server");
    now(c.created_at);
    pf_err e;
    assert_int_equal(store_connection_insert(s, &c, &e), 0);
    memcpy(id, c.id, PF_ID_MAX);
}

static void mk_op(store *s, store_op_kind kind, const char *db, char id[PF_ID_MAX])
{
    store_op o = {0};
    util_id_new("op", o.id);
    o.kind = kind;
    o.state = OPS_PENDING;
    snprintf(o.database_id, sizeof o.database_id, "%s", db);
    now(o.created_at);
    pf_err e;
    assert_int_equal(store_op_insert(s, &o, &e), 0);
    memcpy(id, o.id, PF_ID_MAX);
}

/* The lanes of the ops workers, and one lane of every kind. */
#define K(k) (1u << (k))
#define CRED (K(OP_CONN_SYNC) | K(OP_CONN_DROP))
static const store_op_lane any_lane = {(1u << OP__COUNT) - 1, CRED, K(OP_DB_BACKUP)};
static const store_op_lane fast_lane = {K(OP_DB_PROVISION) | K(OP_DB_DELETE) | CRED, CRED,
                                        K(OP_DB_BACKUP)};
static const store_op_lane slow_lane = {K(OP_DB_BACKUP) | K(OP_DB_RESTORE) | K(OP_DB_CLONE), CRED,
                                        K(OP_DB_BACKUP)};

static void assert_err(const pf_err *e, int status, const char *code, const char *hint)
{
    assert_int_equal(e->status, status);
    assert_string_equal(e->code, code);
    assert_string_equal(e->hint, hint);
}

/* ---- schema ---- */

#define SCHEMA_LATEST 10 /* the number of migrations */

static void test_migrations_idempotent(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_schema_version(f->s), SCHEMA_LATEST);
    char ws[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    store_close(f->s);
    pf_err e;
    assert_int_equal(store_open(f->path, &f->s, &e), 0);
    assert_int_equal(store_schema_version(f->s), SCHEMA_LATEST);
    store_close(f->s);
    assert_int_equal(store_open(f->path, &f->s, &e), 0);
    assert_int_equal(store_schema_version(f->s), SCHEMA_LATEST);
    store_workspace w;
    assert_int_equal(store_workspace_get(f->s, ws, &w, &e), 0);

    /* seen from outside: WAL mode, one row per migration */
    sqlite3 *raw = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &raw, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(raw, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(raw, "SELECT COUNT(*), MAX(version) FROM schema_migrations",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), SCHEMA_LATEST);
    assert_int_equal(sqlite3_column_int(st, 1), SCHEMA_LATEST);
    sqlite3_finalize(st);
    sqlite3_close(raw);
}

static void test_enum_names(void **state)
{
    (void)state;
    assert_string_equal(store_db_status_name(DB_READY), "ready");
    assert_string_equal(store_db_status_name(DB_DELETING), "deleting");
    assert_string_equal(store_op_kind_name(OP_CONN_DROP), "conn_drop");
    assert_string_equal(store_op_state_name(OPS_FAILED), "failed");
    assert_string_equal(store_op_kind_name(OP__COUNT), "unknown");
    assert_string_equal(store_op_kind_name(OP_DB_CLONE), "db_clone");
    assert_string_equal(store_backup_type_name(BACKUP_DIFF), "differential");
    assert_string_equal(store_backup_status_name(BACKUP_COMPLETED), "completed");
}

/* backups: running rows finish, pgBackRest's list is merged by label, expired rows go, op
 * args survive, and the backup lane only claims backup kinds */
static void test_backups(void **state)
{
    fixture *f = *state;
    pf_err e;
    store_backup b = {0};
    util_id_new("bkp", b.id);
    snprintf(b.database_id, sizeof b.database_id, "db_x");
    b.type = BACKUP_FULL;
    b.status = BACKUP_RUNNING;
    b.size = -1;
    snprintf(b.started_at, sizeof b.started_at, "2026-01-01T00:00:00.000Z");
    assert_int_equal(store_backup_insert(f->s, &b, &e), 0);
    assert_int_equal(store_backup_finish(f->s, b.id, BACKUP_COMPLETED, "20260101-000000F", 42,
                                         "2026-01-01T00:00:01.000Z", "", &e),
                     0);
    store_backup seen[2] = {0};
    snprintf(seen[0].label, sizeof seen[0].label, "20260101-000000F");
    seen[0].type = BACKUP_FULL;
    seen[0].size = 43;
    snprintf(seen[1].label, sizeof seen[1].label, "20260101-000000F_20260102-000000I");
    seen[1].type = BACKUP_INCR;
    seen[1].size = 7;
    snprintf(seen[1].started_at, sizeof seen[1].started_at, "2026-01-02T00:00:00.000Z");
    assert_int_equal(store_backup_sync(f->s, "db_x", seen, 2, &e), 0);
    store_backup *rows = NULL;
    size_t n = 0;
    bool more = false;
    assert_int_equal(store_backup_list(f->s, "db_x", 1, &rows, &n, &more, &e), 0);
    assert_int_equal(n, 1);
    assert_true(more);
    assert_int_equal(rows[0].type, BACKUP_INCR); /* newest first */
    free(rows);
    store_backup got;
    assert_int_equal(store_backup_get(f->s, "db_x", b.id, &got, &e), 0);
    assert_int_equal(got.size, 43);
    assert_int_equal(got.status, BACKUP_COMPLETED);
    assert_int_equal(store_backup_get(f->s, "db_y", b.id, &got, &e), -1);
    assert_int_equal(e.status, 404);
    /* the full expired: only the incremental remains */
    assert_int_equal(store_backup_sync(f->s, "db_x", &seen[1], 1, &e), 0);
    assert_int_equal(store_backup_list_all(f->s, "db_x", &rows, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].label, seen[1].label);
    free(rows);
    assert_int_equal(store_backup_delete_for_db(f->s, "db_x", &e), 0);
    assert_int_equal(store_backup_list_all(f->s, "db_x", &rows, &n, &e), 0);
    assert_int_equal(n, 0);
    free(rows);

    store_op op = {0};
    util_id_new("op", op.id);
    op.kind = OP_DB_BACKUP;
    snprintf(op.database_id, sizeof op.database_id, "db_x");
    snprintf(op.args, sizeof op.args, "{\"type\":\"full\"}");
    now(op.created_at);
    assert_int_equal(store_op_insert(f->s, &op, &e), 0);
    char fast[PF_ID_MAX];
    mk_op(f->s, OP_DB_PROVISION, "db_z", fast);
    store_op got_op;
    assert_int_equal(store_op_claim(f->s, &slow_lane, &got_op, &e), 1);
    assert_string_equal(got_op.id, op.id);
    assert_string_equal(got_op.args, "{\"type\":\"full\"}");
    assert_int_equal(store_op_claim(f->s, &slow_lane, &got_op, &e), 0);
    assert_int_equal(store_op_claim(f->s, &fast_lane, &got_op, &e), 1);
    assert_string_equal(got_op.id, fast);
}

/* ---- entities ---- */

static void test_workspaces_and_tokens(void **state)
{
    fixture *f = *state;
    pf_err e;
    store_workspace w;
    assert_int_equal(store_workspace_first(f->s, &w, &e), -1);
    assert_err(&e, 404, "NotFound", "workspaceId");

    char a[PF_ID_MAX], b[PF_ID_MAX];
    mk_ws(f->s, a, "default");
    mk_ws(f->s, b, "second");
    assert_int_equal(store_workspace_first(f->s, &w, &e), 0);
    assert_string_equal(w.id, a);
    assert_int_equal(store_workspace_get(f->s, b, &w, &e), 0);
    assert_string_equal(w.name, "second");
    assert_int_equal(store_workspace_get(f->s, "wksp_nope", &w, &e), -1);
    assert_err(&e, 404, "NotFound", "workspaceId");

    store_workspace *list = NULL;
    size_t n = 0;
    store_page pg = {NULL, 10};
    store_page_out po;
    assert_int_equal(store_workspace_list(f->s, NULL, &pg, &list, &n, &po, &e), 0);
    assert_int_equal(n, 2);
    assert_false(po.has_more);
    free(list);
    assert_int_equal(store_workspace_list(f->s, b, &pg, &list, &n, &po, &e), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, b);
    free(list);

    /* duplicate id */
    store_workspace dup = {0};
    memcpy(dup.id, a, PF_ID_MAX);
    now(dup.created_at);
    assert_int_equal(store_workspace_insert(f->s, &dup, &e), -1);
    assert_int_equal(e.status, 409);

    store_token t = {0};
    util_id_new("tok", t.id);
    memcpy(t.workspace_id, a, PF_ID_MAX);
    snprintf(t.name, sizeof t.name, "ci");
    util_sha256_hex("secret-value", t.hash);
    snprintf(t.value_hint, sizeof t.value_hint, "alue");
    now(t.created_at);
    assert_int_equal(store_token_insert(f->s, &t, &e), 0);
    store_token got;
    assert_int_equal(store_token_by_hash(f->s, t.hash, &got, &e), 0);
    assert_string_equal(got.id, t.id);
    assert_string_equal(got.workspace_id, a);
    assert_string_equal(got.expires_at, "");
    char other[65];
    util_sha256_hex("other", other);
    assert_int_equal(store_token_by_hash(f->s, other, &got, &e), -1);
    assert_err(&e, 404, "NotFound", "token");

    /* unknown workspace: foreign key -> 404 */
    util_id_new("tok", t.id);
    util_sha256_hex("v2", t.hash);
    snprintf(t.workspace_id, sizeof t.workspace_id, "wksp_missing");
    assert_int_equal(store_token_insert(f->s, &t, &e), -1);
    assert_err(&e, 404, "NotFound", "workspaceId");
}

static void test_projects(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX], p1[PF_ID_MAX], p2[PF_ID_MAX], br[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    mk_project(f->s, ws, "app", p1);
    mk_project(f->s, ws, NULL, p2);
    mk_project(f->s, ws, NULL, NULL); /* several null logicalIds are fine */

    store_project p;
    assert_int_equal(store_project_get(f->s, ws, p1, &p, &e), 0);
    assert_string_equal(p.logical_id, "app");
    assert_string_equal(p.default_region, "eu-central-1");
    assert_int_equal(store_project_get(f->s, ws, p2, &p, &e), 0);
    assert_string_equal(p.logical_id, "");

    assert_int_equal(try_project(f->s, ws, "app", NULL, &e), -1);
    assert_err(&e, 409, "Conflict", "logicalId");

    store_project *list = NULL;
    size_t n = 0;
    store_page pg = {NULL, 100};
    store_page_out po;
    assert_int_equal(store_project_list(f->s, ws, NULL, &pg, &list, &n, &po, &e), 0);
    assert_int_equal(n, 3);
    assert_string_equal(list[0].id, p1);
    free(list);
    assert_int_equal(store_project_list(f->s, ws, "app", &pg, &list, &n, &po, &e), 0);
    assert_int_equal(n, 1);
    free(list);

    assert_int_equal(store_project_update_name(f->s, ws, p1, "renamed", &e), 0);
    assert_int_equal(store_project_get(f->s, ws, p1, &p, &e), 0);
    assert_string_equal(p.name, "renamed");
    assert_int_equal(store_project_update_name(f->s, ws, "proj_nope", "x", &e), -1);
    assert_err(&e, 404, "NotFound", "projectId");

    mk_branch(f->s, p1, "main", true, br);
    assert_int_equal(store_project_delete(f->s, ws, p1, &e), 0);
    assert_int_equal(store_project_get(f->s, ws, p1, &p, &e), -1);
    assert_err(&e, 404, "NotFound", "projectId");
    store_branch b;
    assert_int_equal(store_branch_get(f->s, ws, br, &b, &e), -1);
    assert_int_equal(store_project_delete(f->s, ws, p1, &e), -1);
    assert_int_equal(e.status, 404);
    /* the logicalId is free again */
    mk_project(f->s, ws, "app", NULL);
}

static void test_branches(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX], proj[PF_ID_MAX], main_br[PF_ID_MAX], dev[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    mk_project(f->s, ws, NULL, proj);
    mk_branch(f->s, proj, "main", true, main_br);
    mk_branch(f->s, proj, "feature/dev", false, dev);
    mk_branch(f->s, proj, "feature/x", false, NULL);

    assert_int_equal(try_branch(f->s, proj, "main", false, NULL, &e), -1);
    assert_err(&e, 409, "Conflict", "gitName");
    assert_int_equal(try_branch(f->s, proj, "other", true, NULL, &e), -1);
    assert_err(&e, 409, "Conflict", "isDefault");
    assert_int_equal(try_branch(f->s, "proj_missing", "main", false, NULL, &e), -1);
    assert_err(&e, 404, "NotFound", "projectId");

    store_branch b;
    assert_int_equal(store_branch_get(f->s, ws, dev, &b, &e), 0);
    assert_string_equal(b.git_name, "feature/dev");
    assert_false(b.is_default);
    assert_int_equal(store_branch_by_git_name(f->s, proj, "main", &b, &e), 0);
    assert_string_equal(b.id, main_br);
    assert_int_equal(store_branch_by_git_name(f->s, proj, "nope", &b, &e), -1);
    assert_int_equal(e.status, 404);
    assert_int_equal(store_branch_default(f->s, proj, &b, &e), 0);
    assert_string_equal(b.id, main_br);

    store_branch *list = NULL;
    size_t n = 0;
    store_page pg = {NULL, 100};
    store_page_out po;
    assert_int_equal(store_branch_list(f->s, proj, NULL, NULL, &pg, &list, &n, &po, &e), 0);
    assert_int_equal(n, 3);
    free(list);
    assert_int_equal(store_branch_list(f->s, proj, NULL, "feature", &pg, &list, &n, &po, &e), 0);
    assert_int_equal(n, 2);
    free(list);
    assert_int_equal(store_branch_list(f->s, proj, "feature/x", NULL, &pg, &list, &n, &po, &e), 0);
    assert_int_equal(n, 1);
    free(list);
    /* contains is literal: no LIKE wildcards */
    assert_int_equal(store_branch_list(f->s, proj, NULL, "%", &pg, &list, &n, &po, &e), 0);
    assert_int_equal(n, 0);
    free(list);

    assert_int_equal(store_branch_set_default(f->s, dev, &e), 0);
    assert_int_equal(store_branch_default(f->s, proj, &b, &e), 0);
    assert_string_equal(b.id, dev);
    assert_int_equal(store_branch_get(f->s, ws, main_br, &b, &e), 0);
    assert_false(b.is_default);
    assert_int_equal(store_branch_set_default(f->s, "br_nope", &e), -1);
    assert_err(&e, 404, "NotFound", "branchId");

    int count = -1;
    char db[PF_ID_MAX];
    mk_db(f->s, ws, proj, main_br, NULL, 0, db);
    mk_db(f->s, ws, proj, main_br, NULL, 0, NULL);
    assert_int_equal(store_branch_database_count(f->s, main_br, &count, &e), 0);
    assert_int_equal(count, 2);
    assert_int_equal(store_database_transition(f->s, db, DB_PROVISIONING, DB_DELETING, "", &e), 0);
    assert_int_equal(store_branch_database_count(f->s, main_br, &count, &e), 0);
    assert_int_equal(count, 1);

    assert_int_equal(store_branch_delete(f->s, main_br, &e), 0);
    assert_int_equal(store_branch_delete(f->s, main_br, &e), -1);
    assert_err(&e, 404, "NotFound", "branchId");
}

static void test_databases(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX], proj[PF_ID_MAX], proj2[PF_ID_MAX], br[PF_ID_MAX], dev[PF_ID_MAX];
    char d1[PF_ID_MAX], d2[PF_ID_MAX], d3[PF_ID_MAX], d4[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    mk_project(f->s, ws, NULL, proj);
    mk_project(f->s, ws, NULL, proj2);
    mk_branch(f->s, proj, "main", true, br);
    mk_branch(f->s, proj, "dev", false, dev);
    mk_db(f->s, ws, proj, br, "primary", 15001, d1);
    mk_db(f->s, ws, proj, dev, "primary", 15002, d2); /* same logicalId, other branch */
    mk_db(f->s, ws, proj, NULL, NULL, 0, d3);
    mk_db(f->s, ws, proj2, NULL, NULL, 0, d4); /* two NULL ports are fine */

    assert_int_equal(try_db(f->s, ws, proj, br, "primary", 0, NULL, &e), -1);
    assert_err(&e, 409, "Conflict", "logicalId");
    assert_int_equal(try_db(f->s, ws, proj, br, NULL, 15001, NULL, &e), -1);
    assert_err(&e, 409, "Conflict", "port");

    store_database d;
    assert_int_equal(store_database_get(f->s, ws, d1, &d, &e), 0);
    assert_string_equal(d.branch_id, br);
    assert_string_equal(d.logical_id, "primary");
    assert_int_equal(d.status, DB_PROVISIONING);
    assert_int_equal(d.port, 15001);
    assert_string_equal(d.source_type, "empty");
    assert_string_equal(d.default_connection_id, "");
    assert_int_equal(store_database_get(f->s, ws, d3, &d, &e), 0);
    assert_string_equal(d.branch_id, "");
    assert_int_equal(d.port, 0);
    assert_int_equal(store_database_get(f->s, ws, "db_nope", &d, &e), -1);
    assert_err(&e, 404, "NotFound", "databaseId");
    assert_non_null(strstr(e.message, "db_nope"));

    /* filters */
    store_database *list = NULL;
    size_t n = 0;
    store_page pg = {NULL, 100};
    store_page_out po;
    store_db_filter flt = {0};
    assert_int_equal(store_database_list(f->s, ws, &flt, &pg, &list, &n, &po, &e), 0);
    assert_int_equal(n, 4);
    free(list);
    flt = (store_db_filter){.project_id = proj};
    assert_int_equal(store_database_list(f->s, ws, &flt, &pg, &list, &n, &po, &e), 0);
    assert_int_equal(n, 3);
    free(list);
    flt = (store_db_filter){.project_id = proj, .branch_id = "unassigned"};
    assert_int_equal(store_database_list(f->s, ws, &flt, &pg, &list, &n, &po, &e), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, d3);
    free(list);
    flt = (store_db_filter){.branch_id = dev};
    assert_int_equal(store_database_list(f->s, ws, &flt, &pg, &list, &n, &po, &e), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, d2);
    free(list);
    flt = (store_db_filter){.logical_id = "primary"};
    assert_int_equal(store_database_list(f->s, ws, &flt, &pg, &list, &n, &po, &e), 0);
    assert_int_equal(n, 2);
    free(list);
    flt = (store_db_filter){.project_id = proj, .branch_git_name = "main"};
    assert_int_equal(store_database_list(f->s, ws, &flt, &pg, &list, &n, &po, &e), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, d1);
    free(list);

    /* updates */
    assert_int_equal(
        store_database_transition(f->s, d1, DB_PROVISIONING, DB_FAILURE, "initdb failed", &e), 0);
    assert_int_equal(store_database_get(f->s, ws, d1, &d, &e), 0);
    assert_int_equal(d.status, DB_FAILURE);
    assert_string_equal(d.status_reason, "initdb failed");
    assert_int_equal(store_database_transition(f->s, d1, DB_FAILURE, DB_RECOVERING, "", &e), 0);
    assert_int_equal(store_database_get(f->s, ws, d1, &d, &e), 0);
    assert_string_equal(d.status_reason, "");
    assert_int_equal(
        store_database_transition(f->s, "db_nope", DB_PROVISIONING, DB_READY, NULL, &e), -1);
    assert_err(&e, 404, "NotFound", "databaseId");

    assert_int_equal(store_database_update(f->s, d3, "renamed", br, "replica", &e), 0);
    assert_int_equal(store_database_get(f->s, ws, d3, &d, &e), 0);
    assert_string_equal(d.name, "renamed");
    assert_string_equal(d.branch_id, br);
    assert_string_equal(d.logical_id, "replica");
    assert_int_equal(d.port, 0); /* a port is given at insert, never after */
    assert_int_equal(store_database_update(f->s, d3, NULL, NULL, "primary", &e), -1);
    assert_err(&e, 409, "Conflict", "logicalId");
    assert_int_equal(store_database_update(f->s, d3, NULL, "", "", &e), 0);
    assert_int_equal(store_database_get(f->s, ws, d3, &d, &e), 0);
    assert_string_equal(d.name, "renamed");
    assert_string_equal(d.branch_id, "");
    assert_string_equal(d.logical_id, "");

    assert_int_equal(store_database_set_default(f->s, proj, d1, &e), 0);
    assert_int_equal(store_database_set_default(f->s, proj, d2, &e), 0);
    assert_int_equal(store_database_get(f->s, ws, d1, &d, &e), 0);
    assert_false(d.is_default);
    assert_int_equal(store_database_get(f->s, ws, d2, &d, &e), 0);
    assert_true(d.is_default);
    assert_int_equal(store_database_set_default(f->s, proj, d4, &e), -1); /* other project */
    assert_err(&e, 404, "NotFound", "databaseId");

    char c1[PF_ID_MAX];
    mk_conn(f->s, ws, d1, c1);
    assert_int_equal(store_database_set_default_connection(f->s, d1, c1, &e), 0);
    assert_int_equal(store_database_get(f->s, ws, d1, &d, &e), 0);
    assert_string_equal(d.default_connection_id, c1);

    assert_int_equal(store_database_list_internal(f->s, &list, &n, &e), 0);
    assert_int_equal(n, 4);
    free(list);

    /* a deleting database frees its logicalId at once */
    assert_int_equal(store_database_transition(f->s, d1, DB_RECOVERING, DB_DELETING, "", &e), 0);
    mk_db(f->s, ws, proj, br, "primary", 0, NULL);

    assert_int_equal(store_database_delete_row(f->s, d1, &e), 0);
    assert_int_equal(store_database_get_internal(f->s, d1, &d, &e), -1);
    assert_err(&e, 404, "NotFound", "databaseId");
    store_connection c;
    assert_int_equal(store_connection_get_internal(f->s, c1, &c, &e), -1);
    assert_int_equal(store_database_delete_row(f->s, d1, &e), -1);
    assert_int_equal(e.status, 404);
}

static void rewind_migration(fixture *f, const char *sql);

/* The revision of database id in its workspace's first page (-1: not listed). */
static int64_t rev_of(store *s, const char *ws, const char *id)
{
    store_database_rev *revs = NULL;
    size_t n = 0;
    store_page pg = {NULL, 100};
    store_page_out po;
    pf_err e;
    assert_int_equal(store_database_list_revs(s, ws, NULL, &pg, &revs, &n, &po, &e), 0);
    int64_t rev = -1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(revs[i].id, id) == 0)
            rev = revs[i].rev;
    free(revs);
    return rev;
}

/* Every change a database's list item shows raises its revision (the triggers of schema
 * version 10, applied here to a catalog of version 9 with rows), and nothing else's; a page
 * of revisions is the page of rows. */
static void test_database_revisions(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX], proj[PF_ID_MAX], d1[PF_ID_MAX], d2[PF_ID_MAX], c1[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    mk_project(f->s, ws, NULL, proj);
    mk_db(f->s, ws, proj, NULL, NULL, 0, d1);
    mk_db(f->s, ws, proj, NULL, NULL, 0, d2);
    rewind_migration(f, "DROP TRIGGER databases_rev; DROP TRIGGER connections_rev_insert;"
                        "DROP TRIGGER connections_rev_update; DROP TRIGGER connections_rev_delete;"
                        "DROP TRIGGER projects_rev; ALTER TABLE databases DROP COLUMN rev;"
                        "DELETE FROM schema_migrations WHERE version = 10;");
    int64_t r1 = rev_of(f->s, ws, d1), r2 = rev_of(f->s, ws, d2);
    assert_int_equal(r1, 0);
    assert_int_equal(r2, 0);
#define RISES(what)                                                                                \
    do {                                                                                           \
        int64_t now_ = rev_of(f->s, ws, d1);                                                       \
        if (now_ <= r1)                                                                            \
            fail_msg("%s: the revision stayed %lld", what, (long long)now_);                       \
        r1 = now_;                                                                                 \
        assert_int_equal(rev_of(f->s, ws, d2), r2); /* only d1's */                                \
    } while (0)
    assert_int_equal(store_database_transition(f->s, d1, DB_PROVISIONING, DB_READY, "", &e), 0);
    RISES("a status move");
    assert_int_equal(store_database_update(f->s, d1, "renamed", NULL, NULL, &e), 0);
    RISES("a rename");
    mk_conn(f->s, ws, d1, c1);
    RISES("a connection made");
    assert_int_equal(store_connection_set_verifier(f->s, c1, "SCRAM-SHA-256$other", &e), 0);
    RISES("a connection changed");
    assert_int_equal(store_database_set_default_connection(f->s, d1, c1, &e), 0);
    RISES("its default connection set");
    assert_int_equal(store_connection_mark_deleting(f->s, c1, &e), 0);
    RISES("a connection marked deleting");
    assert_int_equal(store_connection_delete_row(f->s, c1, &e), 0);
    RISES("a connection removed (and the default connection cleared)");
    assert_int_equal(store_database_set_default(f->s, proj, d1, &e), 0);
    RISES("made its project's default");
    /* the project's name shows in every item of it: both rise */
    assert_int_equal(store_project_update_name(f->s, ws, proj, "renamed", &e), 0);
    assert_true(rev_of(f->s, ws, d1) > r1 && rev_of(f->s, ws, d2) > r2);
    r1 = rev_of(f->s, ws, d1);
    r2 = rev_of(f->s, ws, d2);
    /* settings are not in an item */
    assert_int_equal(store_project_set_settings(f->s, ws, proj, "{}", &e), 0);
    assert_int_equal(rev_of(f->s, ws, d1), r1);
    /* a rev written lower (no writer does) rises anyway */
    sqlite3 *raw = NULL;
    assert_int_equal(sqlite3_open(f->path, &raw), SQLITE_OK);
    char *back = sqlite3_mprintf("UPDATE databases SET rev = 0, name = 'x' WHERE id = %Q", d1);
    assert_int_equal(sqlite3_exec(raw, back, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_free(back);
    sqlite3_close(raw);
    RISES("a rev written back to 0");
#undef RISES
    /* a transfer moves the rows to another workspace: their revisions rise there */
    char ws2[PF_ID_MAX];
    mk_ws(f->s, ws2, "other");
    assert_int_equal(store_project_transfer(f->s, ws, proj, ws2, &e), 0);
    assert_int_equal(rev_of(f->s, ws, d1), -1);
    assert_true(rev_of(f->s, ws2, d1) > r1 && rev_of(f->s, ws2, d2) > r2);
    memcpy(ws, ws2, PF_ID_MAX);

    /* the same page as the rows', and its rows read again by id in that order */
    store_page pg = {NULL, 1};
    store_page_out po, po2;
    store_database_rev *revs = NULL;
    store_database *rows = NULL, *again = NULL;
    size_t n = 0, m = 0, k = 0;
    assert_int_equal(store_database_list_revs(f->s, ws, NULL, &pg, &revs, &n, &po, &e), 0);
    assert_int_equal(store_database_list(f->s, ws, NULL, &pg, &rows, &m, &po2, &e), 0);
    assert_int_equal(n, 1);
    assert_int_equal(m, 1);
    assert_string_equal(revs[0].id, rows[0].id);
    assert_true(po.has_more && po2.has_more);
    assert_string_equal(po.next_cursor, po2.next_cursor);
    const char *ids[] = {d2, d1};
    assert_int_equal(store_database_list_of(f->s, ids, 2, &again, &k, &e), 0);
    assert_int_equal(k, 2);
    assert_string_equal(again[0].id, d1);
    assert_string_equal(again[1].id, d2);
    assert_string_equal(again[0].name, "x");
    free(revs);
    free(rows);
    free(again);
}

static void test_connections(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX], proj[PF_ID_MAX], d1[PF_ID_MAX], d2[PF_ID_MAX];
    char c1[PF_ID_MAX], c2[PF_ID_MAX], c3[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    mk_project(f->s, ws, NULL, proj);
    mk_db(f->s, ws, proj, NULL, NULL, 0, d1);
    mk_db(f->s, ws, proj, NULL, NULL, 0, d2);
    mk_conn(f->s, ws, d1, c1);
    mk_conn(f->s, ws, d1, c2);
    mk_conn(f->s, ws, d2, c3);

    store_connection c;
    assert_int_equal(store_connection_get(f->s, ws, c1, &c, &e), 0);
    assert_string_equal(c.database_id, d1);
    assert_false(c.deleting);
    assert_int_equal(store_connection_set_verifier(f->s, c1, "SCRAM-SHA-256$new", &e), 0);
    assert_int_equal(store_connection_get(f->s, ws, c1, &c, &e), 0);
    assert_string_equal(c.verifier, "SCRAM-SHA-256$new");
    assert_int_equal(store_connection_set_verifier(f->s, "conn_nope", "x", &e), -1);
    assert_err(&e, 404, "NotFound", "connectionId");

    store_connection *list = NULL;
    size_t n = 0;
    store_page pg = {NULL, 100};
    store_page_out po;
    assert_int_equal(store_connection_list(f->s, ws, NULL, &pg, &list, &n, &po, &e), 0);
    assert_int_equal(n, 3);
    free(list);
    assert_int_equal(store_connection_list(f->s, ws, d1, &pg, &list, &n, &po, &e), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, c1);
    assert_string_equal(list[1].id, c2);
    free(list);

    store_connection c_missing = {0};
    util_id_new("conn", c_missing.id);
    memcpy(c_missing.workspace_id, ws, PF_ID_MAX);
    snprintf(c_missing.database_id, sizeof c_missing.database_id, "db_missing");
    now(c_missing.created_at);
    assert_int_equal(store_connection_insert(f->s, &c_missing, &e), -1);
    assert_err(&e, 404, "NotFound", "databaseId");

    /* deleting: invisible to the API, visible internally */
    assert_int_equal(store_connection_mark_deleting(f->s, c2, &e), 0);
    assert_int_equal(store_connection_get(f->s, ws, c2, &c, &e), -1);
    assert_err(&e, 404, "NotFound", "connectionId");
    assert_int_equal(store_connection_get_internal(f->s, c2, &c, &e), 0);
    assert_true(c.deleting);
    assert_int_equal(store_connection_list(f->s, ws, d1, &pg, &list, &n, &po, &e), 0);
    assert_int_equal(n, 1);
    free(list);
    assert_int_equal(store_connection_list_for_db(f->s, d1, false, &list, &n, &e), 0);
    assert_int_equal(n, 1);
    free(list);
    assert_int_equal(store_connection_list_for_db(f->s, d1, true, &list, &n, &e), 0);
    assert_int_equal(n, 2);
    free(list);

    /* deleting the default connection clears the database's pointer */
    assert_int_equal(store_database_set_default_connection(f->s, d1, c2, &e), 0);
    assert_int_equal(store_connection_delete_row(f->s, c2, &e), 0);
    store_database d;
    assert_int_equal(store_database_get(f->s, ws, d1, &d, &e), 0);
    assert_string_equal(d.default_connection_id, "");
    assert_int_equal(store_connection_delete_row(f->s, c2, &e), -1);
    assert_err(&e, 404, "NotFound", "connectionId");

    /* connections of a deleting database are hidden too */
    assert_int_equal(store_database_transition(f->s, d2, DB_PROVISIONING, DB_DELETING, "", &e), 0);
    assert_int_equal(store_connection_get(f->s, ws, c3, &c, &e), -1);
    assert_int_equal(store_connection_list(f->s, ws, NULL, &pg, &list, &n, &po, &e), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, c1);
    free(list);
}

/* ---- visibility ---- */

static void test_workspace_isolation(void **state)
{
    fixture *f = *state;
    pf_err e;
    char a[PF_ID_MAX], b[PF_ID_MAX], proj[PF_ID_MAX], br[PF_ID_MAX], db[PF_ID_MAX], cn[PF_ID_MAX];
    mk_ws(f->s, a, "a");
    mk_ws(f->s, b, "b");
    mk_project(f->s, a, "shared-name", proj);
    mk_project(f->s, b, "shared-name", NULL); /* logicalId is per workspace */
    mk_branch(f->s, proj, "main", true, br);
    mk_db(f->s, a, proj, br, NULL, 0, db);
    mk_conn(f->s, a, db, cn);

    store_project p;
    store_branch bb;
    store_database d;
    store_connection c;
    assert_int_equal(store_project_get(f->s, b, proj, &p, &e), -1);
    assert_err(&e, 404, "NotFound", "projectId");
    assert_int_equal(store_branch_get(f->s, b, br, &bb, &e), -1);
    assert_err(&e, 404, "NotFound", "branchId");
    assert_int_equal(store_database_get(f->s, b, db, &d, &e), -1);
    assert_err(&e, 404, "NotFound", "databaseId");
    assert_int_equal(store_connection_get(f->s, b, cn, &c, &e), -1);
    assert_err(&e, 404, "NotFound", "connectionId");
    assert_int_equal(store_project_update_name(f->s, b, proj, "x", &e), -1);
    assert_err(&e, 404, "NotFound", "projectId");
    assert_int_equal(store_project_delete(f->s, b, proj, &e), -1);
    assert_err(&e, 404, "NotFound", "projectId");
    assert_int_equal(store_project_get(f->s, a, proj, &p, &e), 0);
    assert_string_equal(p.name, "project");

    store_page pg = {NULL, 100};
    store_page_out po;
    size_t n = 99;
    store_database *dl = NULL;
    assert_int_equal(store_database_list(f->s, b, NULL, &pg, &dl, &n, &po, &e), 0);
    assert_int_equal(n, 0);
    free(dl);
    store_connection *cl = NULL;
    assert_int_equal(store_connection_list(f->s, b, db, &pg, &cl, &n, &po, &e), 0);
    assert_int_equal(n, 0);
    free(cl);
    store_project *pl = NULL;
    assert_int_equal(store_project_list(f->s, b, NULL, &pg, &pl, &n, &po, &e), 0);
    assert_int_equal(n, 1);
    assert_string_not_equal(pl[0].id, proj);
    free(pl);
}

/* A cursor holding another workspace's (or another project's branch) id is refused
 * exactly like an unknown id: ids of other tenants cannot be probed through lists. */
static void test_foreign_cursor_is_unknown(void **state)
{
    fixture *f = *state;
    pf_err e;
    char a[PF_ID_MAX], b[PF_ID_MAX], pa[PF_ID_MAX], pb[PF_ID_MAX], bra[PF_ID_MAX], brb[PF_ID_MAX];
    char dbb[PF_ID_MAX], cnb[PF_ID_MAX];
    mk_ws(f->s, a, "a");
    mk_ws(f->s, b, "b");
    mk_project(f->s, a, NULL, pa);
    mk_project(f->s, b, NULL, pb);
    mk_branch(f->s, pa, "main", true, bra);
    mk_branch(f->s, pb, "main", true, brb);
    mk_db(f->s, b, pb, brb, NULL, 0, dbb);
    mk_conn(f->s, b, dbb, cnb);
    store_page_out po;
    size_t n = 0;
    store_database *dl = NULL;
    store_page pg = {dbb, 10};
    assert_int_equal(store_database_list(f->s, a, NULL, &pg, &dl, &n, &po, &e), -1);
    assert_err(&e, 400, "ValidationError", "cursor");
    store_connection *cl = NULL;
    pg.cursor = cnb;
    assert_int_equal(store_connection_list(f->s, a, NULL, &pg, &cl, &n, &po, &e), -1);
    assert_err(&e, 400, "ValidationError", "cursor");
    store_project *pl = NULL;
    pg.cursor = pb;
    assert_int_equal(store_project_list(f->s, a, NULL, &pg, &pl, &n, &po, &e), -1);
    assert_err(&e, 400, "ValidationError", "cursor");
    store_branch *bl = NULL;
    pg.cursor = brb;
    assert_int_equal(store_branch_list(f->s, pa, NULL, NULL, &pg, &bl, &n, &po, &e), -1);
    assert_err(&e, 400, "ValidationError", "cursor");
    store_workspace *wl = NULL;
    pg.cursor = b;
    assert_int_equal(store_workspace_list(f->s, a, &pg, &wl, &n, &po, &e), -1);
    assert_err(&e, 400, "ValidationError", "cursor");
    /* the owner's own cursors still work */
    pg.cursor = dbb;
    assert_int_equal(store_database_list(f->s, b, NULL, &pg, &dl, &n, &po, &e), 0);
    assert_int_equal(n, 0);
    free(dl);
    pg.cursor = brb;
    assert_int_equal(store_branch_list(f->s, pb, NULL, NULL, &pg, &bl, &n, &po, &e), 0);
    free(bl);
    pg.cursor = b;
    assert_int_equal(store_workspace_list(f->s, NULL, &pg, &wl, &n, &po, &e), 0);
    free(wl);
}

static void test_deleting_invisible(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX], proj[PF_ID_MAX], db[PF_ID_MAX], keep[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    mk_project(f->s, ws, NULL, proj);
    mk_db(f->s, ws, proj, NULL, NULL, 0, db);
    mk_db(f->s, ws, proj, NULL, NULL, 0, keep);
    assert_int_equal(store_database_transition(f->s, db, DB_PROVISIONING, DB_DELETING, "", &e), 0);

    store_database d;
    assert_int_equal(store_database_get(f->s, ws, db, &d, &e), -1);
    assert_err(&e, 404, "NotFound", "databaseId");
    assert_int_equal(store_database_get_internal(f->s, db, &d, &e), 0);
    assert_int_equal(d.status, DB_DELETING);

    store_database *list = NULL;
    size_t n = 0;
    store_page pg = {NULL, 100};
    store_page_out po;
    assert_int_equal(store_database_list(f->s, ws, NULL, &pg, &list, &n, &po, &e), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, keep);
    free(list);
    assert_int_equal(store_database_list_internal(f->s, &list, &n, &e), 0);
    assert_int_equal(n, 2);
    free(list);

    /* the project goes while its deleting database row stays */
    assert_int_equal(store_project_delete(f->s, ws, proj, &e), 0);
    assert_int_equal(store_database_get_internal(f->s, db, &d, &e), 0);
    assert_string_equal(d.project_id, proj);
}

/* ---- pagination ---- */

static void test_pagination(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX], other[PF_ID_MAX], proj[PF_ID_MAX], ids[35][PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    mk_ws(f->s, other, "other");
    mk_project(f->s, ws, NULL, proj);
    for (int i = 0; i < 35; i++) {
        mk_db(f->s, ws, proj, NULL, NULL, 0, ids[i]);
        mk_db(f->s, other, proj, NULL, NULL, 0, NULL); /* interleaved noise */
    }

    char cursor[PF_ID_MAX] = "";
    size_t sizes[4] = {10, 10, 10, 5};
    int seen = 0;
    for (int page = 0; page < 4; page++) {
        store_page pg = {cursor, 10};
        store_page_out po;
        store_database *list = NULL;
        size_t n = 0;
        assert_int_equal(store_database_list(f->s, ws, NULL, &pg, &list, &n, &po, &e), 0);
        assert_int_equal(n, sizes[page]);
        for (size_t i = 0; i < n; i++)
            assert_string_equal(list[i].id, ids[seen++]);
        if (page < 3) {
            assert_true(po.has_more);
            assert_string_equal(po.next_cursor, list[n - 1].id);
        } else {
            assert_false(po.has_more);
            assert_string_equal(po.next_cursor, "");
        }
        memcpy(cursor, po.next_cursor, PF_ID_MAX);
        free(list);
    }
    assert_int_equal(seen, 35);

    /* exactly a full last page: has_more is false */
    store_page pg = {ids[24], 10};
    store_page_out po;
    store_database *list = NULL;
    size_t n = 0;
    assert_int_equal(store_database_list(f->s, ws, NULL, &pg, &list, &n, &po, &e), 0);
    assert_int_equal(n, 10);
    assert_false(po.has_more);
    free(list);

    pg = (store_page){"db_unknown", 10};
    assert_int_equal(store_database_list(f->s, ws, NULL, &pg, &list, &n, &po, &e), -1);
    assert_err(&e, 400, "ValidationError", "cursor");
    pg = (store_page){NULL, 0};
    assert_int_equal(store_database_list(f->s, ws, NULL, &pg, &list, &n, &po, &e), -1);
    assert_err(&e, 400, "ValidationError", "limit");

    /* the same cursor scheme on projects */
    for (int i = 0; i < 34; i++)
        mk_project(f->s, ws, NULL, NULL);
    int pages = 0;
    size_t total = 0;
    cursor[0] = '\0';
    do {
        store_page pp = {cursor, 10};
        store_project *pl = NULL;
        assert_int_equal(store_project_list(f->s, ws, NULL, &pp, &pl, &n, &po, &e), 0);
        total += n;
        pages++;
        memcpy(cursor, po.next_cursor, PF_ID_MAX);
        free(pl);
    } while (po.has_more);
    assert_int_equal(pages, 4);
    assert_int_equal(total, 35);
    store_page bad = {"proj_unknown", 10};
    store_project *pl = NULL;
    assert_int_equal(store_project_list(f->s, ws, NULL, &bad, &pl, &n, &po, &e), -1);
    assert_err(&e, 400, "ValidationError", "cursor");
}

/* ---- ports ---- */

static void test_port_allocation(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX], proj[PF_ID_MAX], d[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    mk_project(f->s, ws, NULL, proj);
    int port = 0;
    assert_int_equal(store_port_allocate(f->s, 16000, 16004, &port, &e), 0);
    assert_int_equal(port, 16000);

    mk_db(f->s, ws, proj, NULL, NULL, 16000, NULL);
    mk_db(f->s, ws, proj, NULL, NULL, 16002, d);
    assert_int_equal(store_port_allocate(f->s, 16000, 16004, &port, &e), 0);
    assert_int_equal(port, 16001);

    /* any status counts, deleting included */
    assert_int_equal(store_database_transition(f->s, d, DB_PROVISIONING, DB_DELETING, "", &e), 0);
    mk_db(f->s, ws, proj, NULL, NULL, 16001, NULL);
    mk_db(f->s, ws, proj, NULL, NULL, 16003, NULL);
    mk_db(f->s, ws, proj, NULL, NULL, 16004, NULL);
    assert_int_equal(store_port_allocate(f->s, 16000, 16004, &port, &e), -1);
    assert_err(&e, 409, "Conflict", "port");

    /* inside a caller's transaction: allocate, insert, commit */
    assert_int_equal(store_tx_begin(f->s, &e), 0);
    assert_int_equal(store_port_allocate(f->s, 16000, 16006, &port, &e), 0);
    assert_int_equal(port, 16005);
    mk_db(f->s, ws, proj, NULL, NULL, port, NULL);
    assert_int_equal(store_port_allocate(f->s, 16000, 16006, &port, &e), 0);
    assert_int_equal(port, 16006);
    assert_int_equal(store_tx_commit(f->s, &e), 0);
    assert_int_equal(store_port_allocate(f->s, 16000, 16006, &port, &e), 0);
    assert_int_equal(port, 16006);
}

/* ---- ops ---- */

static void test_op_fifo_per_database(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX], proj[PF_ID_MAX], da[PF_ID_MAX], db[PF_ID_MAX];
    char a1[PF_ID_MAX], a2[PF_ID_MAX], b1[PF_ID_MAX], a3[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    mk_project(f->s, ws, NULL, proj);
    mk_db(f->s, ws, proj, NULL, NULL, 0, da);
    mk_db(f->s, ws, proj, NULL, NULL, 0, db);
    mk_op(f->s, OP_DB_PROVISION, da, a1);
    mk_op(f->s, OP_CONN_SYNC, da, a2);
    mk_op(f->s, OP_DB_PROVISION, db, b1);
    mk_op(f->s, OP_DB_DELETE, da, a3);

    int active = 0;
    assert_int_equal(store_op_count_active(f->s, da, &active, &e), 0);
    assert_int_equal(active, 3);
    /* pending ops of some kinds: a1 and a3 of da, not a2 (another kind) nor b1 (another db) */
    int pending = 0;
    assert_int_equal(
        store_op_count_pending(f->s, da, 1u << OP_DB_PROVISION | 1u << OP_DB_DELETE, &pending, &e),
        0);
    assert_int_equal(pending, 2);
    assert_int_equal(store_op_count_pending(f->s, da, 1u << OP_DB_RESTORE, &pending, &e), 0);
    assert_int_equal(pending, 0);

    store_op o;
    assert_int_equal(store_op_claim(f->s, &any_lane, &o, &e), 1);
    assert_string_equal(o.id, a1);
    assert_int_equal(o.state, OPS_RUNNING);
    assert_int_equal(o.attempts, 1);
    assert_int_equal(o.kind, OP_DB_PROVISION);
    /* a2 waits for a1: database b runs in parallel */
    assert_int_equal(store_op_claim(f->s, &any_lane, &o, &e), 1);
    assert_string_equal(o.id, b1);
    assert_int_equal(store_op_claim(f->s, &any_lane, &o, &e), 0);

    assert_int_equal(store_op_finish(f->s, a1, OPS_DONE, NULL, &e), 0);
    assert_int_equal(store_op_claim(f->s, &any_lane, &o, &e), 1);
    assert_string_equal(o.id, a2);
    assert_int_equal(o.kind, OP_CONN_SYNC);

    /* requeue keeps its place at the head of its database's queue */
    assert_int_equal(store_op_requeue(f->s, a2, "role busy", 0, &e), 0);
    assert_int_equal(store_op_get(f->s, a2, &o, &e), 0);
    assert_int_equal(o.state, OPS_PENDING);
    assert_string_equal(o.error, "role busy");
    assert_int_equal(store_op_requeue(f->s, a2, "again", 0, &e), -1);
    assert_err(&e, 409, "Conflict", "state");
    assert_int_equal(store_op_requeue(f->s, "op_nope", "x", 0, &e), -1);
    assert_err(&e, 404, "NotFound", "operationId");
    assert_int_equal(store_op_claim(f->s, &any_lane, &o, &e), 1);
    assert_string_equal(o.id, a2);
    assert_int_equal(o.attempts, 2);

    /* reset_running: both running ops go back to pending */
    int count = 0;
    assert_int_equal(store_op_reset_running(f->s, &count, &e), 0);
    assert_int_equal(count, 2);
    assert_int_equal(store_op_get(f->s, b1, &o, &e), 0);
    assert_int_equal(o.state, OPS_PENDING);

    assert_int_equal(store_op_claim(f->s, &any_lane, &o, &e), 1);
    assert_string_equal(o.id, a2);
    assert_int_equal(o.attempts, 3);
    assert_int_equal(store_op_finish(f->s, a2, OPS_FAILED, "gave up", &e), 0);
    assert_int_equal(store_op_claim(f->s, &any_lane, &o, &e), 1);
    assert_string_equal(o.id, b1);
    assert_int_equal(store_op_claim(f->s, &any_lane, &o, &e), 1);
    assert_string_equal(o.id, a3);
    assert_int_equal(store_op_claim(f->s, &any_lane, &o, &e), 0);

    /* the delete op removes the row; the op stays as history and can still finish */
    assert_int_equal(store_database_delete_row(f->s, da, &e), 0);
    assert_int_equal(store_op_finish(f->s, a3, OPS_DONE, "", &e), 0);
    assert_int_equal(store_op_get(f->s, a3, &o, &e), 0);
    assert_int_equal(o.state, OPS_DONE);
    assert_int_equal(store_op_get(f->s, a2, &o, &e), 0);
    assert_string_equal(o.error, "gave up");
    assert_int_equal(o.state, OPS_FAILED);
    assert_int_equal(store_op_count_active(f->s, da, &active, &e), 0);
    assert_int_equal(active, 0);
    assert_int_equal(store_op_count_active(f->s, db, &active, &e), 0);
    assert_int_equal(active, 1);

    assert_int_equal(store_op_finish(f->s, "op_nope", OPS_DONE, "", &e), -1);
    assert_err(&e, 404, "NotFound", "operationId");
    store_op bad = {0};
    util_id_new("op", bad.id);
    bad.state = OPS_RUNNING;
    assert_int_equal(store_op_insert(f->s, &bad, &e), -1);
    assert_int_equal(e.status, 500);
}

typedef struct claim_arg {
    store *s;
    _Atomic int *claimed; /* per-op counters */
    char (*ids)[PF_ID_MAX];
    int n_ids;
    int errors;
} claim_arg;

static void *claimer(void *p)
{
    claim_arg *a = p;
    for (;;) {
        store_op o;
        pf_err e;
        int r = store_op_claim(a->s, &any_lane, &o, &e);
        if (r < 0) {
            a->errors++;
            break;
        }
        if (r == 0) {
            int active = 0;
            for (int i = 0; i < a->n_ids; i++)
                active += atomic_load(&a->claimed[i]) == 0;
            if (!active)
                break;
            continue;
        }
        for (int i = 0; i < a->n_ids; i++)
            if (strcmp(a->ids[i], o.id) == 0)
                atomic_fetch_add(&a->claimed[i], 1);
        if (store_op_finish(a->s, o.id, OPS_DONE, NULL, &e) != 0)
            a->errors++;
    }
    return NULL;
}

/* Credential ops do not wait for a database's backups; everything else keeps FIFO order. */
static void test_op_credentials_pass_backups(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX], proj[PF_ID_MAX], da[PF_ID_MAX];
    char bk[PF_ID_MAX], cs[PF_ID_MAX], cd[PF_ID_MAX], rs[PF_ID_MAX], del[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    mk_project(f->s, ws, NULL, proj);
    mk_db(f->s, ws, proj, NULL, NULL, 0, da);
    mk_op(f->s, OP_DB_BACKUP, da, bk);
    mk_op(f->s, OP_CONN_SYNC, da, cs);
    mk_op(f->s, OP_DB_RESTORE, da, rs);
    mk_op(f->s, OP_CONN_DROP, da, cd);
    mk_op(f->s, OP_DB_DELETE, da, del);

    store_op o;
    assert_int_equal(store_op_claim(f->s, &any_lane, &o, &e), 1);
    assert_string_equal(o.id, bk); /* the backup runs ... */
    assert_int_equal(store_op_claim(f->s, &any_lane, &o, &e), 1);
    assert_string_equal(o.id, cs); /* ... and the credential change does not wait for it */
    /* the restore waits for both; the drop waits for the restore (not a backup) */
    assert_int_equal(store_op_claim(f->s, &any_lane, &o, &e), 0);
    assert_int_equal(store_op_finish(f->s, cs, OPS_DONE, NULL, &e), 0);
    assert_int_equal(store_op_claim(f->s, &any_lane, &o, &e), 0);
    assert_int_equal(store_op_finish(f->s, bk, OPS_DONE, NULL, &e), 0);
    assert_int_equal(store_op_claim(f->s, &any_lane, &o, &e), 1);
    assert_string_equal(o.id, rs);
    assert_int_equal(store_op_claim(f->s, &any_lane, &o, &e), 0);
    assert_int_equal(store_op_finish(f->s, rs, OPS_DONE, NULL, &e), 0);
    assert_int_equal(store_op_claim(f->s, &any_lane, &o, &e), 1);
    assert_string_equal(o.id, cd);
    assert_int_equal(store_op_claim(f->s, &any_lane, &o, &e),
                     0); /* the delete waits for the drop */

    /* a pending (not yet running) backup is passed too, on the fast lane */
    char bk2[PF_ID_MAX], cs2[PF_ID_MAX];
    assert_int_equal(store_op_finish(f->s, cd, OPS_DONE, NULL, &e), 0);
    assert_int_equal(store_op_claim(f->s, &any_lane, &o, &e), 1);
    assert_string_equal(o.id, del);
    assert_int_equal(store_op_finish(f->s, del, OPS_DONE, NULL, &e), 0);
    mk_op(f->s, OP_DB_BACKUP, da, bk2);
    mk_op(f->s, OP_CONN_SYNC, da, cs2);
    assert_int_equal(store_op_claim(f->s, &fast_lane, &o, &e), 1);
    assert_string_equal(o.id, cs2);
    assert_int_equal(store_op_claim(f->s, &slow_lane, &o, &e), 0); /* a credential op runs */
    assert_int_equal(store_op_finish(f->s, cs2, OPS_DONE, NULL, &e), 0);
    assert_int_equal(store_op_claim(f->s, &slow_lane, &o, &e), 1);
    assert_string_equal(o.id, bk2);
}

/* ---- status transitions ---- */

static void test_status_transitions(void **state)
{
    fixture *f = *state;
    pf_err e;
    /* the table, move by move */
    static const int legal[STORE_DB_STATUS_COUNT][STORE_DB_STATUS_COUNT] = {
        [DB_PROVISIONING] = {[DB_READY] = 1, [DB_FAILURE] = 1, [DB_DELETING] = 1},
        [DB_READY] = {[DB_RECOVERING] = 1, [DB_FAILURE] = 1, [DB_DELETING] = 1},
        [DB_RECOVERING] = {[DB_READY] = 1, [DB_FAILURE] = 1, [DB_DELETING] = 1},
        [DB_FAILURE] = {[DB_RECOVERING] = 1, [DB_DELETING] = 1},
    };
    for (int a = 0; a < STORE_DB_STATUS_COUNT; a++)
        for (int b = 0; b < STORE_DB_STATUS_COUNT; b++)
            assert_int_equal(store_db_status_legal(a, b), legal[a][b] == 1);

    char ws[PF_ID_MAX], proj[PF_ID_MAX], db[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    mk_project(f->s, ws, NULL, proj);
    mk_db(f->s, ws, proj, NULL, NULL, 0, db);
    store_database d;

    /* illegal: refused before anything changes */
    assert_int_equal(store_database_transition(f->s, db, DB_PROVISIONING, DB_RECOVERING, "", &e),
                     -1);
    assert_err(&e, 409, "IllegalTransition", "status");
    assert_int_equal(e.kind, ERR_CONFLICT);
    assert_int_equal(store_database_transition(f->s, db, DB_PROVISIONING, DB_PROVISIONING, "", &e),
                     -1);
    assert_string_equal(e.code, "IllegalTransition");
    assert_int_equal(store_database_get_internal(f->s, db, &d, &e), 0);
    assert_int_equal(d.status, DB_PROVISIONING);

    /* a stale `from`: the row moved meanwhile */
    assert_int_equal(store_database_transition(f->s, db, DB_PROVISIONING, DB_READY, "", &e), 0);
    assert_int_equal(store_database_transition(f->s, db, DB_PROVISIONING, DB_FAILURE, "x", &e), -1);
    assert_err(&e, 409, "StatusChanged", "status");
    assert_int_equal(e.kind, ERR_CONFLICT);
    assert_int_equal(store_database_get_internal(f->s, db, &d, &e), 0);
    assert_int_equal(d.status, DB_READY);
    assert_string_equal(d.status_reason, "");

    /* the failure keeps its reason; a restore clears it */
    assert_int_equal(store_database_transition(f->s, db, DB_READY, DB_FAILURE, "disk full", &e), 0);
    assert_int_equal(store_database_get_internal(f->s, db, &d, &e), 0);
    assert_int_equal(d.status, DB_FAILURE);
    assert_string_equal(d.status_reason, "disk full");
    assert_int_equal(store_database_transition(f->s, db, DB_FAILURE, DB_READY, "", &e), -1);
    assert_string_equal(e.code, "IllegalTransition");

    /* joins the caller's transaction */
    assert_int_equal(store_tx_begin(f->s, &e), 0);
    assert_int_equal(store_database_transition(f->s, db, DB_FAILURE, DB_RECOVERING, "", &e), 0);
    store_tx_rollback(f->s);
    assert_int_equal(store_database_get_internal(f->s, db, &d, &e), 0);
    assert_int_equal(d.status, DB_FAILURE);

    /* deleting is final */
    assert_int_equal(store_database_transition(f->s, db, DB_FAILURE, DB_DELETING, "", &e), 0);
    for (int b = 0; b < STORE_DB_STATUS_COUNT; b++)
        assert_int_equal(store_database_transition(f->s, db, DB_DELETING, b, "", &e), -1);
    assert_int_equal(store_database_transition(f->s, "db_nope", DB_READY, DB_FAILURE, "", &e), -1);
    assert_err(&e, 404, "NotFound", "databaseId");
}

static void test_unhealthy(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX], proj[PF_ID_MAX], db[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    mk_project(f->s, ws, NULL, proj);
    mk_db(f->s, ws, proj, NULL, NULL, 0, db);
    store_database d;
    assert_int_equal(store_database_get_internal(f->s, db, &d, &e), 0);
    assert_string_equal(d.unhealthy, "");
    assert_int_equal(store_database_set_unhealthy(f->s, db, "5 restarts in 300 s", &e), 0);
    assert_int_equal(store_database_get(f->s, ws, db, &d, &e), 0);
    assert_string_equal(d.unhealthy, "5 restarts in 300 s");
    assert_int_equal(d.status, DB_PROVISIONING); /* below the status: it does not move */
    assert_int_equal(store_database_set_unhealthy(f->s, db, "", &e), 0);
    assert_int_equal(store_database_get(f->s, ws, db, &d, &e), 0);
    assert_string_equal(d.unhealthy, "");
    assert_int_equal(store_database_set_unhealthy(f->s, "db_nope", "x", &e), -1);
    assert_err(&e, 404, "NotFound", "databaseId");
}

/* A listening TCP socket on 127.0.0.1:port, or -1. */
static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 1) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* The whole range is searched (beyond the 15 lowest), and a port something listens on is
 * skipped. */
static void test_port_allocation_range(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX], proj[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    mk_project(f->s, ws, NULL, proj);
    /* a range with nothing listening on this host */
    int lo = 0;
    for (int base = 27100; base < 60000 && !lo; base += 100) {
        bool free_range = true;
        for (int p = base; p < base + 40 && free_range; p++)
            free_range = !util_port_busy(p);
        if (free_range)
            lo = base;
    }
    assert_true(lo > 0);
    for (int i = 0; i < 20; i++)
        mk_db(f->s, ws, proj, NULL, NULL, lo + i, NULL);
    int port = 0;
    assert_int_equal(store_port_allocate(f->s, lo, lo + 39, &port, &e), 0);
    assert_int_equal(port, lo + 20);
    int fd = listen_on(lo + 20);
    assert_true(fd >= 0);
    assert_int_equal(store_port_allocate(f->s, lo, lo + 39, &port, &e), 0);
    assert_int_equal(port, lo + 21);
    /* a range whose only free port is busy */
    assert_int_equal(store_port_allocate(f->s, lo, lo + 20, &port, &e), -1);
    assert_err(&e, 409, "Conflict", "port");
    close(fd);
    assert_int_equal(store_port_allocate(f->s, lo, lo + 20, &port, &e), 0);
    assert_int_equal(port, lo + 20);
}

/* Each lane claims its own kinds; passers pass only what the lane says; run_after holds an
 * op (and what queues behind it on its database) until it is due. */
static void test_op_lanes_and_run_after(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX], proj[PF_ID_MAX], da[PF_ID_MAX], db[PF_ID_MAX];
    char bk[PF_ID_MAX], cs[PF_ID_MAX], pv[PF_ID_MAX], rs[PF_ID_MAX], pb[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    mk_project(f->s, ws, NULL, proj);
    mk_db(f->s, ws, proj, NULL, NULL, 0, da);
    mk_db(f->s, ws, proj, NULL, NULL, 0, db);
    mk_op(f->s, OP_DB_BACKUP, da, bk);
    mk_op(f->s, OP_CONN_SYNC, da, cs);
    mk_op(f->s, OP_DB_PROVISION, da, pv);
    mk_op(f->s, OP_DB_RESTORE, db, rs);
    mk_op(f->s, OP_DB_PROVISION, db, pb);

    store_op o;
    /* the fast lane: the conn_sync passes the pending backup; the provision may not */
    assert_int_equal(store_op_claim(f->s, &fast_lane, &o, &e), 1);
    assert_string_equal(o.id, cs);
    assert_int_equal(store_op_claim(f->s, &fast_lane, &o, &e), 0);
    /* without passers, a lane keeps strict FIFO */
    static const store_op_lane strict = {K(OP_CONN_SYNC) | K(OP_DB_BACKUP), 0, 0};
    assert_int_equal(store_op_requeue(f->s, cs, "", 0, &e), 0);
    assert_int_equal(store_op_claim(f->s, &strict, &o, &e), 1);
    assert_string_equal(o.id, bk);
    assert_int_equal(store_op_claim(f->s, &strict, &o, &e), 0);
    assert_int_equal(store_op_claim(f->s, &fast_lane, &o, &e), 1); /* passes the running backup */
    assert_string_equal(o.id, cs);
    assert_int_equal(store_op_finish(f->s, cs, OPS_DONE, NULL, &e), 0);
    /* the slow lane: db's restore; the backup of da is running already */
    assert_int_equal(store_op_claim(f->s, &slow_lane, &o, &e), 1);
    assert_string_equal(o.id, rs);
    assert_int_equal(store_op_claim(f->s, &slow_lane, &o, &e), 0);

    /* run_after: the restore retried in a minute holds db's provision behind it */
    assert_int_equal(store_op_requeue(f->s, rs, "busy", util_wall_ms() + 60000, &e), 0);
    assert_int_equal(store_op_claim(f->s, &slow_lane, &o, &e), 0);
    assert_int_equal(store_op_claim(f->s, &fast_lane, &o, &e), 0);
    /* due now: claimable again */
    assert_int_equal(store_op_claim(f->s, &any_lane, &o, &e), 0);
    assert_int_equal(store_op_finish(f->s, bk, OPS_DONE, NULL, &e), 0);
    assert_int_equal(store_op_claim(f->s, &fast_lane, &o, &e), 1);
    assert_string_equal(o.id, pv);
    assert_int_equal(store_op_finish(f->s, pv, OPS_DONE, NULL, &e), 0);
    store_op_reset_running(f->s, NULL, &e);
    sqlite3 *raw = NULL;
    assert_int_equal(sqlite3_open(f->path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw,
                                  "UPDATE ops SET run_after = '2000-01-01T00:00:00.000Z'"
                                  " WHERE run_after IS NOT NULL",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(raw);
    assert_int_equal(store_op_claim(f->s, &slow_lane, &o, &e), 1);
    assert_string_equal(o.id, rs);
    assert_int_equal(o.attempts, 2);
    assert_int_equal(store_op_finish(f->s, rs, OPS_DONE, NULL, &e), 0);
    assert_int_equal(store_op_claim(f->s, &fast_lane, &o, &e), 1);
    assert_string_equal(o.id, pb);
    /* a requeue at once (0) is due at once */
    assert_int_equal(store_op_requeue(f->s, pb, "", 0, &e), 0);
    assert_int_equal(store_op_claim(f->s, &fast_lane, &o, &e), 1);
    assert_string_equal(o.id, pb);
}

static void test_pool_list(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX], proj[PF_ID_MAX], ready[PF_ID_MAX], prov[PF_ID_MAX], failed[PF_ID_MAX],
        gone[PF_ID_MAX];
    char c1[PF_ID_MAX], c2[PF_ID_MAX], c3[PF_ID_MAX], c4[PF_ID_MAX], c5[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    mk_project(f->s, ws, NULL, proj);
    mk_db(f->s, ws, proj, NULL, NULL, 0, ready);
    mk_db(f->s, ws, proj, NULL, NULL, 0, prov);
    mk_db(f->s, ws, proj, NULL, NULL, 0, failed);
    mk_db(f->s, ws, proj, NULL, NULL, 0, gone);
    mk_conn(f->s, ws, ready, c1);
    mk_conn(f->s, ws, prov, c2);
    mk_conn(f->s, ws, ready, c3);
    mk_conn(f->s, ws, failed, c4);
    mk_conn(f->s, ws, gone, c5);
    char dropped[PF_ID_MAX];
    mk_conn(f->s, ws, ready, dropped);
    assert_int_equal(store_connection_mark_deleting(f->s, dropped, &e), 0);
    assert_int_equal(store_database_transition(f->s, ready, DB_PROVISIONING, DB_READY, "", &e), 0);
    assert_int_equal(store_database_transition(f->s, failed, DB_PROVISIONING, DB_FAILURE, "x", &e),
                     0);
    assert_int_equal(store_database_transition(f->s, gone, DB_PROVISIONING, DB_DELETING, "", &e),
                     0);

    store_database *dbs = NULL;
    store_connection *conns = NULL;
    size_t ndb = 0, nconn = 0;
    assert_int_equal(store_pool_list(f->s, &dbs, &ndb, &conns, &nconn, &e), 0);
    assert_int_equal(ndb, 2);
    assert_string_equal(dbs[0].id, ready);
    assert_string_equal(dbs[1].id, prov);
    assert_int_equal(nconn, 3);
    assert_string_equal(conns[0].id, c1);
    assert_string_equal(conns[1].id, c2);
    assert_string_equal(conns[2].id, c3);
    assert_string_equal(conns[0].verifier, "SCRAM-SHA-256$4096:salt$stored:server");
    free(dbs);
    free(conns);

    /* inside a caller's transaction too */
    assert_int_equal(store_tx_begin(f->s, &e), 0);
    assert_int_equal(store_pool_list(f->s, &dbs, &ndb, &conns, &nconn, &e), 0);
    assert_int_equal(store_tx_commit(f->s, &e), 0);
    assert_int_equal(ndb, 2);
    free(dbs);
    free(conns);
}

/* Takes the catalog back to what an older version wrote (sql: the columns and the
 * schema_migrations rows it did not have), then opens it again, which migrates it to the
 * latest version. */
static void rewind_migration(fixture *f, const char *sql)
{
    pf_err e;
    store_close(f->s);
    f->s = NULL;
    sqlite3 *raw = NULL;
    assert_int_equal(sqlite3_open(f->path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);
    assert_int_equal(store_open(f->path, &f->s, &e), 0);
    assert_int_equal(store_schema_version(f->s), SCHEMA_LATEST);
}

/* A catalog at version 4 (no unhealthy, no run_after) migrates to 5 with its rows. */
static void test_migration_from_v4(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX], proj[PF_ID_MAX], db[PF_ID_MAX], op[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    mk_project(f->s, ws, NULL, proj);
    mk_db(f->s, ws, proj, NULL, "main", 17100, db);
    mk_op(f->s, OP_DB_PROVISION, db, op);
    rewind_migration(f, "ALTER TABLE databases DROP COLUMN unhealthy;"
                        "ALTER TABLE ops DROP COLUMN run_after;"
                        "DELETE FROM schema_migrations WHERE version = 5;");
    store_database d;
    assert_int_equal(store_database_get(f->s, ws, db, &d, &e), 0);
    assert_int_equal(d.port, 17100);
    assert_string_equal(d.logical_id, "main");
    assert_string_equal(d.unhealthy, "");
    store_op o;
    assert_int_equal(store_op_claim(f->s, &any_lane, &o, &e), 1);
    assert_string_equal(o.id, op);
}

/* Version 6 from version 5: the default branch becomes the production branch, the others
 * preview; projects have no settings. */
static void test_migration_from_v5(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX], proj[PF_ID_MAX], main_br[PF_ID_MAX], dev[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    mk_project(f->s, ws, NULL, proj);
    mk_branch(f->s, proj, "main", false, main_br);
    mk_branch(f->s, proj, "dev", false, dev);
    assert_int_equal(store_branch_set_default(f->s, dev, &e), 0);
    rewind_migration(f, "ALTER TABLE branches DROP COLUMN role;"
                        "ALTER TABLE projects DROP COLUMN settings;"
                        "DELETE FROM schema_migrations WHERE version = 6;");
    store_branch b;
    assert_int_equal(store_branch_get(f->s, ws, dev, &b, &e), 0);
    assert_true(b.is_default);
    assert_true(b.production);
    assert_int_equal(store_branch_get(f->s, ws, main_br, &b, &e), 0);
    assert_false(b.production);
    char settings[STORE_SETTINGS_MAX];
    assert_int_equal(store_project_settings(f->s, ws, proj, settings, &e), 0);
    assert_string_equal(settings, "");
}

/* Migration 9: databases made before it are served by an instance named by their own id;
 * a new one has none until one is attached, once. */
static void test_instances(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX], proj[PF_ID_MAX], old[PF_ID_MAX], fresh[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    mk_project(f->s, ws, NULL, proj);
    mk_db(f->s, ws, proj, NULL, NULL, 15101, old);
    rewind_migration(f, "DROP INDEX databases_instance;"
                        "ALTER TABLE databases DROP COLUMN instance_id;"
                        "DELETE FROM schema_migrations WHERE version = 9;");
    store_database d;
    assert_int_equal(store_database_get_internal(f->s, old, &d, &e), 0);
    assert_string_equal(d.instance_id, old);

    mk_db(f->s, ws, proj, NULL, NULL, 15102, fresh);
    assert_int_equal(store_database_get_internal(f->s, fresh, &d, &e), 0);
    assert_string_equal(d.instance_id, "");
    assert_int_equal(store_database_set_instance(f->s, fresh, "in_one", &e), 0);
    assert_int_equal(store_database_set_instance(f->s, fresh, "in_one", &e), 0); /* again: same */
    assert_int_equal(store_database_set_instance(f->s, fresh, "in_two", &e), -1);
    assert_int_equal(e.kind, ERR_NOT_FOUND);
    assert_int_equal(store_database_get_internal(f->s, fresh, &d, &e), 0);
    assert_string_equal(d.instance_id, "in_one");
    /* one instance serves one database */
    assert_int_equal(store_database_set_instance(f->s, old, "in_one", &e), -1);
}

/* Version 8 from version 7: every existing token is a workspace's, none an operator's. */
static void test_migration_from_v7(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    store_token t = {0};
    util_id_new("tok", t.id);
    memcpy(t.workspace_id, ws, PF_ID_MAX);
    snprintf(t.name, sizeof t.name, "ci");
    util_sha256_hex("v6-token", t.hash);
    snprintf(t.value_hint, sizeof t.value_hint, "oken");
    now(t.created_at);
    assert_int_equal(store_token_insert(f->s, &t, &e), 0);
    rewind_migration(f, "ALTER TABLE tokens DROP COLUMN is_operator;"
                        "DELETE FROM schema_migrations WHERE version = 8;");
    store_token got;
    assert_int_equal(store_token_by_hash(f->s, t.hash, &got, &e), 0);
    assert_false(got.is_operator);
    assert_int_equal(store_token_get(f->s, ws, t.id, &got, &e), 0);
}

/* The first branch of a project is its production branch and its default, whatever the
 * caller asked; later ones are preview; moving the default never moves the role. */
static void test_branch_roles(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX], proj[PF_ID_MAX], first[PF_ID_MAX], second[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    mk_project(f->s, ws, NULL, proj);
    mk_branch(f->s, proj, "main", false, first);
    mk_branch(f->s, proj, "dev", false, second);
    store_branch b;
    assert_int_equal(store_branch_get(f->s, ws, first, &b, &e), 0);
    assert_true(b.production);
    assert_true(b.is_default);
    assert_int_equal(store_branch_get(f->s, ws, second, &b, &e), 0);
    assert_false(b.production);
    assert_false(b.is_default);
    assert_int_equal(store_branch_set_default(f->s, second, &e), 0);
    assert_int_equal(store_branch_get(f->s, ws, second, &b, &e), 0);
    assert_true(b.is_default);
    assert_false(b.production);
    assert_int_equal(store_branch_get(f->s, ws, first, &b, &e), 0);
    assert_false(b.is_default);
    assert_true(b.production);
}

static void test_project_settings(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX], other[PF_ID_MAX], proj[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    mk_ws(f->s, other, "other");
    mk_project(f->s, ws, NULL, proj);
    char out[STORE_SETTINGS_MAX];
    assert_int_equal(store_project_settings(f->s, ws, proj, out, &e), 0);
    assert_string_equal(out, "");
    assert_int_equal(store_project_set_settings(f->s, ws, proj, "{\"a\":1}", &e), 0);
    assert_int_equal(store_project_settings(f->s, ws, proj, out, &e), 0);
    assert_string_equal(out, "{\"a\":1}");
    /* another workspace's project behaves like an unknown one */
    assert_int_equal(store_project_settings(f->s, other, proj, out, &e), -1);
    assert_err(&e, 404, "NotFound", "projectId");
    assert_int_equal(store_project_set_settings(f->s, other, proj, "{}", &e), -1);
    assert_err(&e, 404, "NotFound", "projectId");
    char *big = xmalloc(STORE_SETTINGS_MAX + 1);
    memset(big, 'x', STORE_SETTINGS_MAX);
    big[STORE_SETTINGS_MAX] = '\0';
    assert_int_equal(store_project_set_settings(f->s, ws, proj, big, &e), -1);
    assert_err(&e, 422, "ValidationError", "settings");
    free(big);
    assert_int_equal(store_project_settings(f->s, ws, proj, out, &e), 0);
    assert_string_equal(out, "{\"a\":1}");
}

/* A transfer moves the project, its databases (deleting ones too) and their connections;
 * branches and backups follow through them. */
static void test_project_transfer(void **state)
{
    fixture *f = *state;
    pf_err e;
    char a[PF_ID_MAX], b[PF_ID_MAX], proj[PF_ID_MAX], br[PF_ID_MAX], db[PF_ID_MAX], gone[PF_ID_MAX],
        conn[PF_ID_MAX], keep[PF_ID_MAX], keep_db[PF_ID_MAX];
    mk_ws(f->s, a, "a");
    mk_ws(f->s, b, "b");
    mk_project(f->s, a, "claim-me", proj);
    mk_project(f->s, a, NULL, keep);
    mk_branch(f->s, proj, "main", true, br);
    mk_db(f->s, a, proj, br, NULL, 17001, db);
    mk_db(f->s, a, proj, br, NULL, 17002, gone);
    mk_db(f->s, a, keep, NULL, NULL, 17003, keep_db);
    mk_conn(f->s, a, db, conn);
    assert_int_equal(store_database_transition(f->s, gone, DB_PROVISIONING, DB_DELETING, "", &e),
                     0);

    assert_int_equal(store_project_transfer(f->s, b, proj, a, &e), -1); /* not b's */
    assert_err(&e, 404, "NotFound", "projectId");
    assert_int_equal(store_project_transfer(f->s, a, proj, b, &e), 0);

    store_project p;
    assert_int_equal(store_project_get(f->s, a, proj, &p, &e), -1);
    assert_int_equal(store_project_get(f->s, b, proj, &p, &e), 0);
    store_branch sb;
    assert_int_equal(store_branch_get(f->s, a, br, &sb, &e), -1);
    assert_int_equal(store_branch_get(f->s, b, br, &sb, &e), 0);
    store_database d;
    assert_int_equal(store_database_get(f->s, a, db, &d, &e), -1);
    assert_int_equal(store_database_get(f->s, b, db, &d, &e), 0);
    assert_int_equal(store_database_get_internal(f->s, gone, &d, &e), 0);
    assert_string_equal(d.workspace_id, b);
    store_connection c;
    assert_int_equal(store_connection_get(f->s, a, conn, &c, &e), -1);
    assert_int_equal(store_connection_get(f->s, b, conn, &c, &e), 0);
    /* the other project stays */
    assert_int_equal(store_database_get(f->s, a, keep_db, &d, &e), 0);
    assert_int_equal(store_project_get(f->s, a, keep, &p, &e), 0);

    /* a logicalId the recipient already has: 409, nothing moves */
    char again[PF_ID_MAX];
    mk_project(f->s, a, "claim-me", again);
    assert_int_equal(store_project_transfer(f->s, a, again, b, &e), -1);
    assert_err(&e, 409, "Conflict", "logicalId");
    assert_int_equal(store_project_get(f->s, a, again, &p, &e), 0);
}

/* One conflict table for every resource: each unique violation names its own field, and a
 * write naming a missing row answers 404 (identity) or with its parent's field. */
/* A project's expiry (schema version 7): set, listed once due (soonest first), cleared by
 * NULL and by a transfer. */
static void test_project_expiry(void **state)
{
    fixture *f = *state;
    pf_err e;
    char a[PF_ID_MAX], b[PF_ID_MAX], p1[PF_ID_MAX], p2[PF_ID_MAX], p3[PF_ID_MAX];
    mk_ws(f->s, a, "a");
    mk_ws(f->s, b, "b");
    mk_project(f->s, a, NULL, p1);
    mk_project(f->s, a, NULL, p2);
    mk_project(f->s, a, NULL, p3);
    assert_int_equal(store_project_set_expiry(f->s, a, p1, "2026-01-02T00:00:00.000Z", &e), 0);
    assert_int_equal(store_project_set_expiry(f->s, a, p2, "2026-01-01T00:00:00.000Z", &e), 0);
    assert_int_equal(store_project_set_expiry(f->s, a, p3, "2026-06-01T00:00:00.000Z", &e), 0);
    assert_int_equal(store_project_set_expiry(f->s, b, p1, NULL, &e), -1); /* not b's */
    assert_err(&e, 404, "NotFound", "projectId");
    store_project *due = NULL;
    size_t n = 0;
    assert_int_equal(store_project_expired(f->s, "2026-03-01T00:00:00.000Z", &due, &n, 10, &e), 0);
    assert_int_equal(n, 2);
    assert_string_equal(due[0].id, p2);
    assert_string_equal(due[1].id, p1);
    assert_string_equal(due[1].expires_at, "2026-01-02T00:00:00.000Z");
    free(due);
    assert_int_equal(store_project_set_expiry(f->s, a, p1, NULL, &e), 0);
    assert_int_equal(store_project_transfer(f->s, a, p2, b, &e), 0);
    store_project p;
    assert_int_equal(store_project_get(f->s, b, p2, &p, &e), 0);
    assert_string_equal(p.expires_at, "");
    assert_int_equal(store_project_expired(f->s, "2027-01-01T00:00:00.000Z", &due, &n, 10, &e), 0);
    assert_int_equal(n, 1);
    assert_string_equal(due[0].id, p3);
    free(due);
}

static void test_conflicts_and_references(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    store_user u = {0};
    util_id_new("usr", u.id);
    snprintf(u.email, sizeof u.email, "a@example.com");
    snprintf(u.password_hash, sizeof u.password_hash, "x");
    now(u.created_at);
    assert_int_equal(store_user_insert(f->s, &u, &e), 0);
    util_id_new("usr", u.id);
    snprintf(u.email, sizeof u.email, "A@example.com"); /* case-insensitive */
    assert_int_equal(store_user_insert(f->s, &u, &e), -1);
    assert_err(&e, 409, "Conflict", "email");

    store_oauth_client c = {0};
    util_id_new("cli", c.id);
    snprintf(c.name, sizeof c.name, "app");
    now(c.created_at);
    assert_int_equal(store_oauth_client_insert(f->s, &c, &e), 0);
    store_integration itg;
    assert_int_equal(
        store_integration_upsert(f->s, ws, c.id, "usr_nope", "workspace:admin", &itg, &e), -1);
    assert_int_equal(e.status, 404);
    assert_string_equal(e.message, "A referenced row was not found");

    /* refresh_tokens.hash is not tokens.hash */
    store_grant g = {0};
    store_user first;
    assert_int_equal(store_user_by_email(f->s, "a@example.com", &first, &e), 0);
    assert_int_equal(
        store_integration_upsert(f->s, ws, c.id, first.id, "workspace:admin", &itg, &e), 0);
    util_id_new("grt", g.id);
    memcpy(g.integration_id, itg.id, PF_ID_MAX);
    memcpy(g.workspace_id, ws, PF_ID_MAX);
    memcpy(g.client_id, c.id, PF_ID_MAX);
    memcpy(g.user_id, first.id, PF_ID_MAX);
    now(g.created_at);
    assert_int_equal(store_grant_insert(f->s, &g, &e), 0);
    assert_int_equal(store_refresh_insert(f->s, "h1", g.id, 1, &e), 0);
    assert_int_equal(store_refresh_insert(f->s, "h1", g.id, 1, &e), -1);
    assert_err(&e, 409, "Conflict", "refresh_token");
    assert_int_equal(store_refresh_insert(f->s, "h2", "grt_nope", 1, &e), -1);
    assert_int_equal(e.status, 404);

    /* a store write names its parent's field */
    char proj[PF_ID_MAX];
    assert_int_equal(try_project(f->s, "wksp_nope", NULL, proj, &e), -1);
    assert_err(&e, 404, "NotFound", "workspaceId");
}

/* Usage: a baseline counts nothing; increases add up per day less the sampler's own
 * transactions; a reset counter restarts from its new value; ranges sum days; deleting the
 * database removes its usage. */
static void test_usage(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX], proj[PF_ID_MAX], d[PF_ID_MAX], other[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    mk_project(f->s, ws, NULL, proj);
    mk_db(f->s, ws, proj, NULL, NULL, 0, d);
    mk_db(f->s, ws, proj, NULL, NULL, 0, other);
    store_usage u;
    assert_int_equal(store_usage_get(f->s, d, "2026-01-01", "2026-12-31", &u, &e), 0);
    assert_int_equal(u.operations, 0);
    assert_int_equal(u.days, 0);

    assert_int_equal(store_usage_record(f->s, d, "2026-03-01", 500, 1, 1000, true, &e), 0);
    assert_int_equal(store_usage_record(f->s, d, "2026-03-01", 600, 1, 2000, false, &e), 0);
    assert_int_equal(store_usage_record(f->s, d, "2026-03-02", 650, 1, 3000, false, &e), 0);
    /* reset (crash, restore): the counter restarts lower; nothing added, new baseline */
    assert_int_equal(store_usage_record(f->s, d, "2026-03-02", 10, 1, 3000, false, &e), 0);
    assert_int_equal(store_usage_record(f->s, d, "2026-03-02", 30, 1, 4000, false, &e), 0);
    /* no change but the sampler's own transaction: never negative */
    assert_int_equal(store_usage_record(f->s, d, "2026-03-02", 30, 1, 4000, false, &e), 0);
    assert_int_equal(store_usage_record(f->s, other, "2026-03-01", 7, 0, 5, true, &e), 0);
    assert_int_equal(store_usage_record(f->s, other, "2026-03-01", 107, 0, 5, false, &e), 0);

    assert_int_equal(store_usage_get(f->s, d, "2026-03-01", "2026-03-01", &u, &e), 0);
    assert_int_equal(u.operations, 99);
    assert_int_equal(u.storage_bytes, 2000);
    assert_int_equal(u.days, 1);
    assert_int_equal(store_usage_get(f->s, d, "2026-03-01", "2026-03-31", &u, &e), 0);
    assert_int_equal(u.operations, 99 + 49 + 19);
    assert_int_equal(u.storage_bytes, 4000);
    assert_int_equal(u.days, 2);
    assert_int_equal(store_usage_get(f->s, d, "2026-04-01", "2026-04-30", &u, &e), 0);
    assert_int_equal(u.operations, 0);
    assert_int_equal(u.storage_bytes, 0);
    assert_int_equal(store_usage_get(f->s, other, "2026-03-01", "2026-03-01", &u, &e), 0);
    assert_int_equal(u.operations, 100);

    assert_int_equal(store_database_delete_row(f->s, d, &e), 0);
    assert_int_equal(store_usage_get(f->s, d, "2026-01-01", "2026-12-31", &u, &e), 0);
    assert_int_equal(u.days, 0);
    /* a later row for the same id starts from a baseline again */
    assert_int_equal(store_usage_record(f->s, d, "2026-03-02", 900, 1, 1, false, &e), 0);
    assert_int_equal(store_usage_get(f->s, d, "2026-03-02", "2026-03-02", &u, &e), 0);
    assert_int_equal(u.operations, 0);
}

/* Finished ops older than the cut are deleted; pending and running ones stay, however old. */
static void test_op_prune(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX], proj[PF_ID_MAX], d[PF_ID_MAX];
    char done[PF_ID_MAX], failed[PF_ID_MAX], running[PF_ID_MAX], pending[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    mk_project(f->s, ws, NULL, proj);
    mk_db(f->s, ws, proj, NULL, NULL, 0, d);
    mk_op(f->s, OP_DB_PROVISION, d, done);
    mk_op(f->s, OP_CONN_SYNC, d, failed);
    mk_op(f->s, OP_CONN_SYNC, d, running);
    mk_op(f->s, OP_DB_DELETE, d, pending);
    store_op o;
    assert_int_equal(store_op_claim(f->s, &any_lane, &o, &e), 1);
    assert_int_equal(store_op_finish(f->s, done, OPS_DONE, NULL, &e), 0);
    assert_int_equal(store_op_claim(f->s, &any_lane, &o, &e), 1);
    assert_int_equal(store_op_finish(f->s, failed, OPS_FAILED, "no", &e), 0);
    assert_int_equal(store_op_claim(f->s, &any_lane, &o, &e), 1);
    assert_string_equal(o.id, running);

    /* a cut before everything: nothing goes */
    int n = -1;
    assert_int_equal(store_op_prune(f->s, "2000-01-01T00:00:00.000Z", &n, &e), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_op_get(f->s, done, &o, &e), 0);
    /* a cut after everything: only the two finished ones go */
    assert_int_equal(store_op_prune(f->s, "2999-01-01T00:00:00.000Z", &n, &e), 0);
    assert_int_equal(n, 2);
    assert_int_equal(store_op_get(f->s, done, &o, &e), -1);
    assert_err(&e, 404, "NotFound", "operationId");
    assert_int_equal(store_op_get(f->s, failed, &o, &e), -1);
    assert_int_equal(store_op_get(f->s, running, &o, &e), 0);
    assert_int_equal(o.state, OPS_RUNNING);
    assert_int_equal(store_op_get(f->s, pending, &o, &e), 0);
    assert_int_equal(o.state, OPS_PENDING);
    int active = 0;
    assert_int_equal(store_op_count_active(f->s, d, &active, &e), 0);
    assert_int_equal(active, 2);
}

/* A catalog another writer keeps locked past the busy timeout answers a transient 503
 * "CatalogBusy" (retried, Retry-After), never a 500 with SQLite's words; writes pass once the
 * lock is gone. (Waits the busy timeout once: 5 s.) */
static void test_busy_catalog_error(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    sqlite3 *raw = NULL;
    assert_int_equal(sqlite3_open(f->path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    store_project p = {0};
    util_id_new("proj", p.id);
    memcpy(p.workspace_id, ws, PF_ID_MAX);
    snprintf(p.name, sizeof p.name, "blocked");
    now(p.created_at);
    assert_int_equal(store_project_insert(f->s, &p, &e), -1);
    assert_int_equal(e.status, 503);
    assert_string_equal(e.code, "CatalogBusy");
    assert_int_equal(e.kind, ERR_TRANSIENT);
    assert_null(strstr(e.message, "store:"));
    assert_int_equal(sqlite3_exec(raw, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);
    assert_int_equal(store_project_insert(f->s, &p, &e), 0);
}

/* A full catalog (SQLITE_FULL: here the page limit of this thread's connection, as a
 * full disk would) is a transient 507 "DiskFull" whose hint names the home, never a bare
 * internal error; writes work again once there is room. */
static void test_disk_full_error(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    int64_t pages = 0;
    static sql_stmt q_pages = SQL("PRAGMA page_count");
    assert_int_equal(sql_int(f->s, &q_pages, NOARGS, &pages, &e), 1);
    char pragma[64];
    snprintf(pragma, sizeof pragma, "PRAGMA max_page_count = %lld", (long long)pages);
    assert_int_equal(sql_script(f->s, pragma, &e), 0);
    int rc = 0;
    for (int i = 0; i < 2000 && rc == 0; i++) {
        store_project p = {0};
        util_id_new("proj", p.id);
        memcpy(p.workspace_id, ws, PF_ID_MAX);
        snprintf(p.name, sizeof p.name, "a project with a long name to fill pages %d", i);
        now(p.created_at);
        rc = store_project_insert(f->s, &p, &e);
    }
    assert_int_equal(rc, -1);
    assert_int_equal(e.status, 507);
    assert_string_equal(e.code, "DiskFull");
    assert_int_equal(e.kind, ERR_TRANSIENT);
    assert_non_null(strstr(e.hint, f->dir));
    assert_null(strstr(e.message, "store:"));
    assert_int_equal(sql_script(f->s, "PRAGMA max_page_count = 1073741823", &e), 0);
    store_project p = {0};
    util_id_new("proj", p.id);
    memcpy(p.workspace_id, ws, PF_ID_MAX);
    snprintf(p.name, sizeof p.name, "room again");
    now(p.created_at);
    assert_int_equal(store_project_insert(f->s, &p, &e), 0);
}

/* A delete cancels the database's pending ops of one kind (its queued backups): they end
 * failed with the reason; a running one and other kinds stay. */
static void test_op_cancel_pending(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX], proj[PF_ID_MAX], d[PF_ID_MAX], d2[PF_ID_MAX];
    char b1[PF_ID_MAX], b2[PF_ID_MAX], b3[PF_ID_MAX], other[PF_ID_MAX], conn[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    mk_project(f->s, ws, NULL, proj);
    mk_db(f->s, ws, proj, NULL, NULL, 0, d);
    mk_db(f->s, ws, proj, NULL, NULL, 0, d2);
    mk_op(f->s, OP_DB_BACKUP, d, b1);
    mk_op(f->s, OP_DB_BACKUP, d, b2);
    mk_op(f->s, OP_CONN_SYNC, d, conn);
    mk_op(f->s, OP_DB_BACKUP, d2, other);
    store_op o;
    assert_int_equal(store_op_claim(f->s, &any_lane, &o, &e), 1);
    assert_string_equal(o.id, b1);
    mk_op(f->s, OP_DB_BACKUP, d, b3);
    int n = -1;
    assert_int_equal(store_op_cancel_pending(f->s, d, OP_DB_BACKUP, "cancelled: deleted", &n, &e),
                     0);
    assert_int_equal(n, 2);
    assert_int_equal(store_op_get(f->s, b1, &o, &e), 0);
    assert_int_equal(o.state, OPS_RUNNING);
    assert_int_equal(store_op_get(f->s, b2, &o, &e), 0);
    assert_int_equal(o.state, OPS_FAILED);
    assert_string_equal(o.error, "cancelled: deleted");
    assert_int_equal(store_op_get(f->s, b3, &o, &e), 0);
    assert_int_equal(o.state, OPS_FAILED);
    assert_int_equal(store_op_get(f->s, conn, &o, &e), 0);
    assert_int_equal(o.state, OPS_PENDING);
    assert_int_equal(store_op_get(f->s, other, &o, &e), 0);
    assert_int_equal(o.state, OPS_PENDING);
}

static void test_op_claim_concurrent(void **state)
{
    fixture *f = *state;
    enum { N_DB = 4, PER_DB = 10, N = N_DB * PER_DB, THREADS = 4 };
    char ws[PF_ID_MAX], proj[PF_ID_MAX], dbs[N_DB][PF_ID_MAX], ids[N][PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    mk_project(f->s, ws, NULL, proj);
    for (int i = 0; i < N_DB; i++)
        mk_db(f->s, ws, proj, NULL, NULL, 0, dbs[i]);
    for (int i = 0; i < N; i++)
        mk_op(f->s, OP_CONN_SYNC, dbs[i % N_DB], ids[i]);

    _Atomic int claimed[N];
    for (int i = 0; i < N; i++)
        atomic_init(&claimed[i], 0);
    claim_arg args[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t] = (claim_arg){f->s, claimed, ids, N, 0};
        assert_int_equal(pthread_create(&th[t], NULL, claimer, &args[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(args[t].errors, 0);
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(atomic_load(&claimed[i]), 1);
}

/* ---- transactions ---- */

typedef struct probe_arg {
    store *s;
    const char *id;
    int rc;
} probe_arg;

static void *probe_workspace(void *p)
{
    probe_arg *a = p;
    store_workspace w;
    pf_err e;
    a->rc = store_workspace_get(a->s, a->id, &w, &e);
    return NULL;
}

static int probe_from_other_thread(store *s, const char *id)
{
    probe_arg a = {s, id, 99};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, probe_workspace, &a), 0);
    pthread_join(t, NULL);
    return a.rc;
}

static void test_transactions(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX], keep[PF_ID_MAX];
    store_workspace w;

    /* rollback leaves nothing */
    assert_int_equal(store_tx_begin(f->s, &e), 0);
    mk_ws(f->s, ws, "temp");
    assert_int_equal(store_workspace_get(f->s, ws, &w, &e), 0); /* own writes are visible */
    assert_int_equal(probe_from_other_thread(f->s, ws), -1);    /* others' are not */
    store_tx_rollback(f->s);
    assert_int_equal(store_workspace_get(f->s, ws, &w, &e), -1);

    /* single calls and multi-row calls inside a tx commit with it */
    assert_int_equal(store_tx_begin(f->s, &e), 0);
    mk_ws(f->s, keep, "keep");
    char proj[PF_ID_MAX], b1[PF_ID_MAX], b2[PF_ID_MAX];
    mk_project(f->s, keep, NULL, proj);
    mk_branch(f->s, proj, "main", true, b1);
    mk_branch(f->s, proj, "dev", false, b2);
    assert_int_equal(store_branch_set_default(f->s, b2, &e), 0); /* nested: a savepoint */
    assert_int_equal(store_tx_commit(f->s, &e), 0);
    assert_int_equal(probe_from_other_thread(f->s, keep), 0);
    store_branch b;
    assert_int_equal(store_branch_default(f->s, proj, &b, &e), 0);
    assert_string_equal(b.id, b2);

    /* a multi-row call rolled back with the caller's tx */
    assert_int_equal(store_tx_begin(f->s, &e), 0);
    assert_int_equal(store_branch_set_default(f->s, b1, &e), 0);
    store_tx_rollback(f->s);
    assert_int_equal(store_branch_default(f->s, proj, &b, &e), 0);
    assert_string_equal(b.id, b2);

    /* a failed call inside a tx leaves the tx usable; explicit nesting works */
    assert_int_equal(store_tx_begin(f->s, &e), 0);
    assert_int_equal(store_branch_set_default(f->s, "br_nope", &e), -1);
    assert_int_equal(store_tx_begin(f->s, &e), 0);
    mk_ws(f->s, ws, "inner");
    store_tx_rollback(f->s); /* inner only */
    char outer[PF_ID_MAX];
    mk_ws(f->s, outer, "outer");
    assert_int_equal(store_tx_commit(f->s, &e), 0);
    assert_int_equal(store_workspace_get(f->s, ws, &w, &e), -1);
    assert_int_equal(store_workspace_get(f->s, outer, &w, &e), 0);

    assert_int_equal(store_tx_commit(f->s, &e), -1); /* no tx open */
    assert_int_equal(e.status, 500);
}

static void *insert_workspace(void *p)
{
    probe_arg *a = p;
    store_workspace w = {0};
    util_id_new("wksp", w.id);
    snprintf(w.name, sizeof w.name, "from another thread");
    now(w.created_at);
    pf_err e;
    a->rc = store_workspace_insert(a->s, &w, &e);
    memcpy((char *)a->id, w.id, PF_ID_MAX);
    return NULL;
}

/* A read nested in a transaction (the auth check's and a quick handler's, http/work.c)
 * reads the outer snapshot and ends only itself, whether it commits or rolls back. */
static void test_nested_reads(void **state)
{
    fixture *f = *state;
    pf_err e;
    char keep[PF_ID_MAX], other[PF_ID_MAX] = "", a[PF_ID_MAX];
    store_workspace w;
    mk_ws(f->s, keep, "keep");

    /* read in read: one snapshot until the outer read ends */
    assert_int_equal(store_tx_begin_read(f->s, &e), 0);
    assert_int_equal(store_workspace_get(f->s, keep, &w, &e), 0); /* the snapshot starts */
    probe_arg pa = {f->s, other, 99};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, insert_workspace, &pa), 0);
    pthread_join(t, NULL);
    assert_int_equal(pa.rc, 0);
    assert_int_equal(store_tx_begin_read(f->s, &e), 0);
    assert_int_equal(store_workspace_get(f->s, other, &w, &e), -1);
    assert_int_equal(store_tx_commit(f->s, &e), 0);
    assert_int_equal(store_workspace_get(f->s, other, &w, &e), -1); /* still the outer's */
    assert_int_equal(store_tx_begin_read(f->s, &e), 0);
    store_tx_rollback(f->s);
    assert_int_equal(store_workspace_get(f->s, other, &w, &e), -1);
    assert_int_equal(store_tx_commit(f->s, &e), 0);
    assert_int_equal(store_workspace_get(f->s, other, &w, &e), 0);

    /* read in write: its rollback keeps the outer's writes, its commit does not commit them */
    assert_int_equal(store_tx_begin(f->s, &e), 0);
    mk_ws(f->s, a, "written before the read");
    assert_int_equal(store_tx_begin_read(f->s, &e), 0);
    assert_int_equal(store_workspace_get(f->s, a, &w, &e), 0);
    store_tx_rollback(f->s);
    assert_int_equal(store_workspace_get(f->s, a, &w, &e), 0);
    assert_int_equal(store_tx_begin_read(f->s, &e), 0);
    assert_int_equal(store_tx_commit(f->s, &e), 0);
    assert_int_equal(probe_from_other_thread(f->s, a), -1); /* not committed yet */
    store_tx_rollback(f->s);
    assert_int_equal(store_workspace_get(f->s, a, &w, &e), -1);

    /* a write nested in a read, then a read in that: each level ends once */
    assert_int_equal(store_tx_begin_read(f->s, &e), 0);
    assert_int_equal(store_tx_begin(f->s, &e), 0);
    assert_int_equal(store_tx_begin_read(f->s, &e), 0);
    assert_int_equal(store_tx_commit(f->s, &e), 0);
    assert_int_equal(store_tx_commit(f->s, &e), 0);
    assert_int_equal(store_tx_commit(f->s, &e), 0);
    assert_int_equal(store_tx_commit(f->s, &e), -1); /* nothing left open */
}

/* ---- threads ---- */

typedef struct reader_arg {
    store *s;
    const char *ws;
    const char *db;
    _Atomic bool *stop;
    long reads;
    int errors;
} reader_arg;

static void *reader(void *p)
{
    reader_arg *a = p;
    while (!atomic_load(a->stop) || a->reads < 200) {
        store_database d;
        pf_err e;
        if (store_database_get(a->s, a->ws, a->db, &d, &e) != 0 || strcmp(d.id, a->db) != 0)
            a->errors++;
        store_connection *cl = NULL;
        size_t n = 0;
        if (store_connection_list_for_db(a->s, a->db, false, &cl, &n, &e) != 0)
            a->errors++;
        free(cl);
        a->reads++;
    }
    return NULL;
}

static void test_concurrent_readers_and_writer(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX], proj[PF_ID_MAX], db[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    mk_project(f->s, ws, NULL, proj);
    mk_db(f->s, ws, proj, NULL, NULL, 0, db);

    _Atomic bool stop;
    atomic_init(&stop, false);
    reader_arg args[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (reader_arg){f->s, ws, db, &stop, 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, reader, &args[i]), 0);
    }
    assert_int_equal(store_database_transition(f->s, db, DB_PROVISIONING, DB_READY, "", &e), 0);
    for (int i = 0; i < 100; i++) {
        char cn[PF_ID_MAX];
        mk_conn(f->s, ws, db, cn);
        assert_int_equal(store_database_transition(f->s, db, i % 2 ? DB_RECOVERING : DB_READY,
                                                   i % 2 ? DB_READY : DB_RECOVERING, "", &e),
                         0);
        mk_db(f->s, ws, proj, NULL, NULL, 0, NULL);
    }
    atomic_store(&stop, true);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].errors, 0);
        assert_true(args[i].reads >= 200);
    }
    store_connection *cl = NULL;
    size_t n = 0;
    assert_int_equal(store_connection_list_for_db(f->s, db, false, &cl, &n, &e), 0);
    assert_int_equal(n, 100);
    free(cl);
}

/* ---- durability ---- */

static void test_durability_across_reopen(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX], proj[PF_ID_MAX], db[PF_ID_MAX], cn[PF_ID_MAX], op[PF_ID_MAX];
    mk_ws(f->s, ws, "default");
    mk_project(f->s, ws, "app", proj);
    mk_db(f->s, ws, proj, NULL, "main", 17000, db);
    mk_conn(f->s, ws, db, cn);
    mk_op(f->s, OP_DB_PROVISION, db, op);
    store_op o;
    assert_int_equal(store_op_claim(f->s, &any_lane, &o, &e), 1);
    assert_int_equal(store_database_transition(f->s, db, DB_PROVISIONING, DB_READY, "", &e), 0);
    store_close(f->s);

    assert_int_equal(store_open(f->path, &f->s, &e), 0);
    store_database d;
    assert_int_equal(store_database_get(f->s, ws, db, &d, &e), 0);
    assert_int_equal(d.status, DB_READY);
    assert_int_equal(d.port, 17000);
    assert_string_equal(d.logical_id, "main");
    store_connection c;
    assert_int_equal(store_connection_get(f->s, ws, cn, &c, &e), 0);
    int count = 0;
    assert_int_equal(store_op_reset_running(f->s, &count, &e), 0);
    assert_int_equal(count, 1);
    assert_int_equal(store_op_claim(f->s, &any_lane, &o, &e), 1);
    assert_string_equal(o.id, op);
    assert_int_equal(o.attempts, 2);
    store_project p;
    assert_int_equal(store_project_get(f->s, ws, proj, &p, &e), 0);
    assert_string_equal(p.logical_id, "app");
}

/* A process killed right after a write returned keeps that write. */
static void test_durability_after_kill(void **state)
{
    fixture *f = *state;
    pf_err e;
    char ws[PF_ID_MAX];
    util_id_new("wksp", ws);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        store *s = NULL;
        if (store_open(f->path, &s, &e) != 0)
            _exit(1);
        store_workspace w = {0};
        memcpy(w.id, ws, PF_ID_MAX);
        snprintf(w.name, sizeof w.name, "survivor");
        now(w.created_at);
        if (store_workspace_insert(s, &w, &e) != 0)
            _exit(1);
        raise(SIGKILL); /* no close, no checkpoint */
        _exit(2);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    store_close(f->s);
    assert_int_equal(store_open(f->path, &f->s, &e), 0);
    store_workspace w;
    assert_int_equal(store_workspace_get(f->s, ws, &w, &e), 0);
    assert_string_equal(w.name, "survivor");
}

int main(void)
{
    util_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrations_idempotent, setup, teardown),
        cmocka_unit_test(test_enum_names),
        cmocka_unit_test_setup_teardown(test_backups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workspaces_and_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_projects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_branches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_databases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_database_revisions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workspace_isolation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_cursor_is_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleting_invisible, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pagination, setup, teardown),
        cmocka_unit_test_setup_teardown(test_port_allocation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_op_fifo_per_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_op_credentials_pass_backups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_op_cancel_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_catalog_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_op_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_transitions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unhealthy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_port_allocation_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_op_lanes_and_run_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_v4, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_v5, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_v7, setup, teardown),
        cmocka_unit_test_setup_teardown(test_instances, setup, teardown),
        cmocka_unit_test_setup_teardown(test_branch_roles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_project_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_project_transfer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_project_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conflicts_and_references, setup, teardown),
        cmocka_unit_test_setup_teardown(test_op_claim_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nested_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_readers_and_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durability_across_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durability_after_kill, setup, teardown),
    };
    return HARNESS_RUN("store", tests, NULL, NULL);
}
