/* Unit tests for src/api: input validation, regions and the JSON shapes, against a real
 * catalog in a temporary directory (no server, no PostgreSQL). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/internal.h"
#include "auth/auth.h"
#include "harness.h"

static json_t *parse(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_ALLOW_NUL, &je);
    assert_non_null(j);
    return j;
}

static void test_v_string(void **state)
{
    (void)state;
    pf_err e;
    const char *out = NULL;
    json_t *b =
        parse("{\"name\":\"ok\",\"n\":5,\"empty\":\"\",\"nul\":\"a\\u0000b\",\"null\":null}");
    assert_int_equal(v_string(b, "name", true, false, 255, 400, &out, &e), 0);
    assert_string_equal(out, "ok");
    assert_int_equal(v_string(b, "missing", false, false, 255, 400, &out, &e), 0);
    assert_null(out);
    assert_int_equal(v_string(b, "missing", true, false, 255, 422, &out, &e), -1);
    assert_int_equal(e.status, 422);
    assert_string_equal(e.hint, "missing");
    assert_int_equal(v_string(b, "n", false, false, 255, 400, &out, &e), -1);
    assert_string_equal(e.hint, "n");
    assert_non_null(strstr(e.message, "must be a string, not a number"));
    assert_int_equal(v_string(b, "empty", false, false, 255, 400, &out, &e), -1);
    assert_int_equal(v_string(b, "nul", false, false, 255, 400, &out, &e), -1);
    assert_int_equal(v_string(b, "null", false, true, 255, 400, &out, &e), 0);
    assert_null(out);
    assert_int_equal(v_string(b, "null", false, false, 255, 400, &out, &e), -1);
    json_decref(b);

    char big[300];
    memset(big, 'x', 256);
    big[256] = '\0';
    b = json_pack("{s:s}", "name", big);
    assert_int_equal(v_string(b, "name", true, false, 255, 400, &out, &e), -1);
    assert_string_equal(e.hint, "name");
    big[255] = '\0';
    json_object_set_new(b, "name", json_string(big));
    assert_int_equal(v_string(b, "name", true, false, 255, 400, &out, &e), 0);
    json_decref(b);
}

static void test_v_bool_and_path_id(void **state)
{
    (void)state;
    pf_err e;
    int v = 7;
    json_t *b = parse("{\"a\":true,\"b\":\"yes\"}");
    assert_int_equal(v_bool(b, "a", 400, &v, &e), 0);
    assert_int_equal(v, 1);
    assert_int_equal(v_bool(b, "zz", 400, &v, &e), 0);
    assert_int_equal(v, -1);
    assert_int_equal(v_bool(b, "b", 400, &v, &e), -1);
    assert_string_equal(e.hint, "b");
    json_decref(b);
    assert_int_equal(v_path_id("db", "db_abc", "Database", "databaseId", &e), 0);
    assert_int_equal(v_path_id("db", "proj_abc", "Database", "databaseId", &e), -1);
    assert_int_equal(e.status, 404); /* a malformed id is exactly an unknown id */
    assert_string_equal(e.code, "NotFound");
}

static void test_regions(void **state)
{
    (void)state;
    app a;
    memset(&a, 0, sizeof a);
    pf_err e;
    assert_int_equal(api_regions_configure(&a, NULL, &e), 0);
    assert_string_equal(a.default_region, "us-east-1");
    assert_int_equal(a.nregions, 6); /* the contract's six ids, one available */
    const char *r = NULL;
    assert_int_equal(api_region_resolve(&a, NULL, &r, &e), 0);
    assert_string_equal(r, "us-east-1");
    assert_int_equal(api_region_resolve(&a, "eu-west-3", &r, &e), -1);
    assert_string_equal(e.code, "RegionUnavailable");
    assert_string_equal(e.hint, "region");
    assert_int_equal(api_region_resolve(&a, "mars-1", &r, &e), -1);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.hint, "region");
    /* configured regions become available, the first is the default */
    assert_int_equal(api_regions_configure(&a, "eu-central-1=Frankfurt,lab-1=Lab", &e), 0);
    assert_string_equal(a.default_region, "eu-central-1");
    assert_int_equal(api_region_resolve(&a, "lab-1", &r, &e), 0);
    assert_string_equal(api_region_find(&a, "eu-central-1")->name, "Frankfurt");
    assert_int_equal(api_regions_configure(&a, "Bad Id=x", &e), -1);
}

typedef struct fixture {
    harness_catalog cat;
    app a;
    store_workspace w;
    store_project p;
    store_branch b;
    store_database d;
    store_connection c;
} fixture;

static int setup(void **state)
{
    fixture *f = xcalloc(1, sizeof *f);
    *state = f;
    if (harness_catalog_open(&f->cat, "test-api") < 0)
        return -1;
    f->a.st = f->cat.s;
    pf_err e;
    snprintf(f->a.base_url, sizeof f->a.base_url, "https://api.example");
    snprintf(f->a.public_host, sizeof f->a.public_host, "db.example");
    assert_int_equal(api_regions_configure(&f->a, NULL, &e), 0);

    snprintf(f->w.id, sizeof f->w.id, "wksp_one");
    snprintf(f->w.name, sizeof f->w.name, "One");
    util_now_iso(f->w.created_at);
    assert_int_equal(store_workspace_insert(f->a.st, &f->w, &e), 0);
    snprintf(f->p.id, sizeof f->p.id, "proj_one");
    snprintf(f->p.workspace_id, sizeof f->p.workspace_id, "wksp_one");
    snprintf(f->p.name, sizeof f->p.name, "Demo");
    snprintf(f->p.default_region, sizeof f->p.default_region, "us-east-1");
    util_now_iso(f->p.created_at);
    assert_int_equal(store_project_insert(f->a.st, &f->p, &e), 0);
    snprintf(f->b.id, sizeof f->b.id, "br_one");
    snprintf(f->b.project_id, sizeof f->b.project_id, "proj_one");
    snprintf(f->b.git_name, sizeof f->b.git_name, "main");
    f->b.is_default = true;
    f->b.production = true;
    util_now_iso(f->b.created_at);
    memcpy(f->b.updated_at, f->b.created_at, sizeof f->b.updated_at);
    assert_int_equal(store_branch_insert(f->a.st, &f->b, &e), 0);
    snprintf(f->d.id, sizeof f->d.id, "db_one");
    snprintf(f->d.workspace_id, sizeof f->d.workspace_id, "wksp_one");
    snprintf(f->d.project_id, sizeof f->d.project_id, "proj_one");
    snprintf(f->d.branch_id, sizeof f->d.branch_id, "br_one");
    snprintf(f->d.name, sizeof f->d.name, "main db");
    snprintf(f->d.region, sizeof f->d.region, "us-east-1");
    snprintf(f->d.source_type, sizeof f->d.source_type, "empty");
    f->d.status = DB_READY;
    f->d.is_default = true;
    f->d.port = 5555;
    util_now_iso(f->d.created_at);
    assert_int_equal(store_database_insert(f->a.st, &f->d, &e), 0);
    snprintf(f->c.id, sizeof f->c.id, "conn_one");
    snprintf(f->c.workspace_id, sizeof f->c.workspace_id, "wksp_one");
    snprintf(f->c.database_id, sizeof f->c.database_id, "db_one");
    snprintf(f->c.name, sizeof f->c.name, "default");
    snprintf(f->c.role, sizeof f->c.role, "u_role");
    snprintf(f->c.verifier, sizeof f->c.verifier, "SCRAM-SHA-256$4096:x$y:z");
    util_now_iso(f->c.created_at);
    assert_int_equal(store_connection_insert(f->a.st, &f->c, &e), 0);
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f) {
        harness_catalog_close(&f->cat);
        free(f);
    }
    return 0;
}

static const char *sget(json_t *j, const char *path)
{
    /* dotted path of object keys and array indexes: "connections.0.name" */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL;
    for (char *k = strtok_r(buf, ".", &save); k && j; k = strtok_r(NULL, ".", &save))
        j = json_is_array(j) ? json_array_get(j, (size_t)atoi(k)) : json_object_get(j, k);
    return json_is_string(j) ? json_string_value(j) : NULL;
}

static void test_shape_database_read(void **state)
{
    fixture *f = *state;
    pf_err e;
    json_t *j = NULL;
    assert_int_equal(shape_database(&f->a, &f->d, NULL, NULL, false, &j, &e), 0);
    assert_string_equal(sget(j, "type"), "database");
    assert_string_equal(sget(j, "url"), "https://api.example/v1/databases/db_one");
    assert_string_equal(sget(j, "status"), "ready");
    assert_string_equal(sget(j, "project.name"), "Demo");
    assert_string_equal(sget(j, "region.name"), "US East (N. Virginia)");
    assert_string_equal(sget(j, "source.type"), "empty");
    assert_string_equal(sget(j, "branchId"), "br_one");
    assert_true(json_is_null(json_object_get(j, "logicalId")));
    assert_true(json_is_true(json_object_get(j, "isDefault")));
    json_t *conn = json_array_get(json_object_get(j, "connections"), 0);
    assert_string_equal(sget(conn, "kind"), "postgres");
    assert_string_equal(sget(conn, "endpoints.direct.host"), "db.example");
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_object_get(conn, "endpoints"), "direct"), "port")),
                     5555);
    /* no secret in a read shape */
    assert_null(sget(conn, "endpoints.direct.connectionString"));
    assert_true(json_is_null(json_object_get(conn, "directConnection")));
    assert_null(json_object_get(conn, "pass"));
    assert_null(json_object_get(j, "apiKeys"));
    char *text = json_dumps(j, 0);
    assert_null(strstr(text, "SCRAM")); /* the verifier never leaves the catalog */
    free(text);
    json_decref(j);
}

static void test_shape_database_create(void **state)
{
    fixture *f = *state;
    pf_err e;
    json_t *j = NULL;
    assert_int_equal(shape_database(&f->a, &f->d, "conn_one", "s3cret", true, &j, &e), 0);
    const char *want = "postgresql://u_role:s3cret@db.example:5555/postgres?sslmode=require";
    assert_string_equal(sget(j, "connections.0.endpoints.direct.connectionString"), want);
    assert_string_equal(sget(j, "connections.0.directConnection.pass"), "s3cret");
    assert_string_equal(sget(j, "connections.0.directConnection.host"), "db.example:5555");
    /* nested connections carry no create-only extras */
    assert_null(json_object_get(json_array_get(json_object_get(j, "connections"), 0), "pass"));
    assert_string_equal(sget(j, "apiKeys.0.connectionString"), want);
    assert_null(sget(j, "apiKeys.0.endpoints.direct.connectionString"));
    assert_string_equal(sget(j, "connectionString"), want);
    assert_string_equal(sget(j, "directConnection.user"), "u_role");
    json_decref(j);
}

static void test_shape_connection(void **state)
{
    fixture *f = *state;
    json_t *j = shape_connection(&f->a, &f->c, &f->d, "pw");
    assert_string_equal(sget(j, "url"), "https://api.example/v1/connections/conn_one");
    assert_string_equal(sget(j, "database.url"), "https://api.example/v1/databases/db_one");
    assert_string_equal(sget(j, "host"), "db.example:5555");
    assert_string_equal(sget(j, "user"), "u_role");
    assert_string_equal(sget(j, "pass"), "pw");
    assert_string_equal(sget(j, "connectionString"),
                        "postgresql://u_role:pw@db.example:5555/postgres?sslmode=require");
    /* no pooler configured: no pooled endpoint */
    assert_null(json_object_get(json_object_get(j, "endpoints"), "pooled"));
    json_decref(j);
    j = shape_connection(&f->a, &f->c, &f->d, NULL);
    assert_null(json_object_get(j, "pass"));
    assert_null(json_object_get(j, "connectionString"));
    json_decref(j);
}

static void test_shape_pooled_endpoint(void **state)
{
    fixture *f = *state;
    f->a.pooler_port = 6432;
    const char *pooled = "postgresql://u_role:pw@db.example:6432/db_one?sslmode=require";
    json_t *j = shape_connection(&f->a, &f->c, &f->d, "pw");
    assert_string_equal(sget(j, "endpoints.pooled.host"), "db.example");
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_object_get(j, "endpoints"), "pooled"), "port")),
                     6432);
    assert_string_equal(sget(j, "endpoints.pooled.connectionString"), pooled);
    assert_string_equal(sget(j, "endpoints.direct.connectionString"),
                        "postgresql://u_role:pw@db.example:5555/postgres?sslmode=require");
    /* the deprecated top-level string is the pooled one; host stays the direct one */
    assert_string_equal(sget(j, "connectionString"), pooled);
    assert_string_equal(sget(j, "host"), "db.example:5555");
    json_decref(j);
    /* read shape: host and port, no secret */
    j = shape_connection(&f->a, &f->c, &f->d, NULL);
    assert_string_equal(sget(j, "endpoints.pooled.host"), "db.example");
    assert_null(sget(j, "endpoints.pooled.connectionString"));
    json_decref(j);
    pf_err e;
    assert_int_equal(shape_database(&f->a, &f->d, "conn_one", "s3", true, &j, &e), 0);
    const char *pooled_s3 = "postgresql://u_role:s3@db.example:6432/db_one?sslmode=require";
    assert_string_equal(sget(j, "connections.0.endpoints.pooled.connectionString"), pooled_s3);
    assert_string_equal(sget(j, "apiKeys.0.connectionString"), pooled_s3);
    assert_string_equal(sget(j, "apiKeys.0.endpoints.pooled.host"), "db.example");
    assert_null(sget(j, "apiKeys.0.endpoints.pooled.connectionString"));
    assert_string_equal(sget(j, "connectionString"), pooled_s3);
    json_decref(j);
    f->a.pooler_port = 0;
}

static void test_shape_project_and_branch(void **state)
{
    fixture *f = *state;
    json_t *j = shape_project(&f->a, &f->p);
    assert_string_equal(sget(j, "workspace.name"), "One");
    assert_string_equal(sget(j, "defaultRegion"), "us-east-1");
    assert_true(json_is_null(json_object_get(j, "logicalId")));
    assert_true(json_is_object(json_object_get(j, "settings"))); /* {} until set */
    assert_int_equal(json_object_size(json_object_get(j, "settings")), 0);
    json_decref(j);
    j = shape_branch(&f->a, &f->b, &f->p);
    assert_string_equal(sget(j, "role"), "production");
    assert_string_equal(sget(j, "project.url"), "https://api.example/v1/projects/proj_one");
    json_decref(j);
    /* the role is the branch's own, not the default flag: a default preview branch and a
     * production branch that lost the default */
    store_branch b = f->b;
    b.production = false;
    j = shape_branch(&f->a, &b, &f->p);
    assert_string_equal(sget(j, "role"), "preview");
    assert_true(json_is_true(json_object_get(j, "isDefault")));
    json_decref(j);
    b.production = true;
    b.is_default = false;
    j = shape_branch(&f->a, &b, &f->p);
    assert_string_equal(sget(j, "role"), "production");
    assert_true(json_is_false(json_object_get(j, "isDefault")));
    json_decref(j);
}

/* API_LOAD and load_*: a malformed id, an unknown one and another workspace's row all
 * answer the same 404, whose hint names the field the id came from. */
static void test_load_rows(void **state)
{
    fixture *f = *state;
    pf_err e;
    store_project p;
    assert_int_equal(load_project(&f->a, "wksp_one", "proj_one", "projectId", &p, &e), 0);
    assert_string_equal(p.name, "Demo");
    const char *bad[][2] = {{"wksp_one", "db_one"},    /* malformed for a project */
                            {"wksp_one", "proj_zzz"},  /* unknown */
                            {"wksp_two", "proj_one"}}; /* another workspace's */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err_clear(&e);
        assert_int_equal(load_project(&f->a, bad[i][0], bad[i][1], "source.projectId", &p, &e), -1);
        assert_int_equal(e.status, 404);
        assert_string_equal(e.code, "NotFound");
        assert_string_equal(e.hint, "source.projectId");
    }
    store_database d;
    assert_int_equal(load_database(&f->a, "wksp_one", "db_one", "databaseId", &d, &e), 0);
    assert_int_equal(load_database(&f->a, "wksp_one", "db_zzz", "targetDatabaseId", &d, &e), -1);
    assert_string_equal(e.hint, "targetDatabaseId");
    store_connection c;
    assert_int_equal(API_LOAD(&f->a, store_connection_get, "conn", "Connection", "wksp_one",
                              "conn_one", "id", &c, &e),
                     0);
    assert_string_equal(c.role, "u_role");
    assert_int_equal(API_LOAD(&f->a, store_connection_get, "conn", "Connection", "wksp_one",
                              "db_one", "id", &c, &e),
                     -1);
    assert_int_equal(e.status, 404);
    assert_string_equal(e.hint, "id");
    assert_string_equal(e.message, "Connection db_one was not found");
}

static int project_row(app *a, const void *row, void *arg, jsonw *w, pf_err *e)
{
    int *calls = arg;
    if (++*calls == 2)
        return err_set(e, 500, "InternalError", NULL, "shaping failed");
    api_item_tree(w, shape_project(a, row));
    return 0;
}

/* The JSON text a handler answered (resp.raw), parsed; the text is freed. */
static json_t *answered(http_resp *resp)
{
    assert_non_null(resp->raw);
    assert_string_equal(resp->content_type, "application/json");
    json_t *j = json_loadb(resp->raw, resp->raw_len, 0, NULL);
    assert_non_null(j);
    free(resp->raw);
    resp->raw = NULL;
    return j;
}

/* api_list_reply: every row shaped, the rows freed, the list wrapped with pagination; a
 * row that cannot be shaped fails the whole list and leaves no body. */
static void test_list_reply(void **state)
{
    fixture *f = *state;
    pf_err e;
    http_resp resp;
    memset(&resp, 0, sizeof resp);
    store_page_out po = {.has_more = true};
    snprintf(po.next_cursor, sizeof po.next_cursor, "proj_one");
    store_project *rows = xcalloc(1, sizeof *rows);
    rows[0] = f->p;
    int calls = 0;
    assert_int_equal(
        api_list_reply(&f->a, &resp, rows, 1, sizeof *rows, project_row, &calls, &po, &e), 0);
    json_t *j = answered(&resp);
    assert_string_equal(sget(j, "data.0.id"), "proj_one");
    assert_string_equal(sget(j, "pagination.nextCursor"), "proj_one");
    assert_true(json_is_true(json_object_get(json_object_get(j, "pagination"), "hasMore")));
    json_decref(j);

    rows = xcalloc(2, sizeof *rows);
    rows[0] = rows[1] = f->p;
    calls = 0;
    assert_int_equal(
        api_list_reply(&f->a, &resp, rows, 2, sizeof *rows, project_row, &calls, &po, &e), -1);
    assert_int_equal(e.status, 500);
    assert_null(resp.body);
    assert_null(resp.raw);

    po.has_more = false;
    assert_int_equal(
        api_list_reply(&f->a, &resp, NULL, 0, sizeof *rows, project_row, &calls, &po, &e), 0);
    j = answered(&resp);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 0);
    assert_true(json_is_null(json_object_get(json_object_get(j, "pagination"), "nextCursor")));
    assert_true(json_is_false(json_object_get(json_object_get(j, "pagination"), "hasMore")));
    json_decref(j);
}

/* GET /v1/fleet: an operator's credential only; counts, in-flight ops and failures with
 * their reasons across workspaces. */
static void test_fleet(void **state)
{
    fixture *f = *state;
    pf_err e;
    store_database bad = f->d;
    snprintf(bad.id, sizeof bad.id, "db_two");
    snprintf(bad.name, sizeof bad.name, "broken");
    bad.status = DB_FAILURE;
    snprintf(bad.status_reason, sizeof bad.status_reason, "initdb failed");
    bad.is_default = false;
    bad.port = 5556;
    assert_int_equal(store_database_insert(f->a.st, &bad, &e), 0);
    store_op run, failed;
    ops_op_init(&run, OP_DB_BACKUP, "db_one", NULL);
    ops_op_init(&failed, OP_DB_RESTORE, "db_two", NULL);
    assert_int_equal(store_op_insert(f->a.st, &run, &e), 0);
    assert_int_equal(store_op_insert(f->a.st, &failed, &e), 0);
    assert_int_equal(store_op_finish(f->a.st, failed.id, OPS_FAILED, "WAL ends too early", &e), 0);

    http_req req;
    http_resp resp;
    memset(&req, 0, sizeof req);
    memset(&resp, 0, sizeof resp);
    req.method = "GET";
    req.path = "/v1/fleet";
    req.scope = AUTH_SCOPE_ADMIN;
    assert_int_equal(h_fleet(&f->a, &req, &resp, &e), -1);
    assert_int_equal(e.status, 403);
    assert_string_equal(e.hint, "operator");
    assert_null(resp.body);

    req.scope = AUTH_SCOPE_FLEET;
    assert_int_equal(h_fleet(&f->a, &req, &resp, &e), 0);
    json_t *d = json_object_get(resp.body, "data");
    json_t *by = json_object_get(json_object_get(d, "databases"), "byStatus");
    assert_int_equal(json_integer_value(json_object_get(by, "ready")), 1);
    assert_int_equal(json_integer_value(json_object_get(by, "failure")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(d, "ops"), "pending")), 1);
    assert_int_equal(json_array_size(json_object_get(d, "list")), 2);
    assert_string_equal(sget(d, "inFlight.0.id"), run.id);
    assert_string_equal(sget(d, "inFlight.0.kind"), "db_backup");
    assert_string_equal(sget(d, "inFlight.0.workspaceId"), "wksp_one");
    json_t *fl = json_object_get(d, "failures");
    assert_int_equal(json_array_size(fl), 2);
    assert_string_equal(sget(fl, "0.kind"), "database");
    assert_string_equal(sget(fl, "0.reason"), "initdb failed");
    assert_string_equal(sget(fl, "1.kind"), "op");
    assert_string_equal(sget(fl, "1.reason"), "WAL ends too early");
    assert_string_equal(sget(fl, "1.databaseName"), "broken");
    assert_null(json_object_get(d, "servers")); /* no op workers here */
    json_decref(resp.body);

    assert_true(api_fleet_path("/v1/fleet"));
    assert_true(api_fleet_path("/v1/fleet/"));
    assert_false(api_fleet_path("/v1/fleets"));
    assert_false(api_fleet_path("/v1/projects"));
}

static const char *resp_header(const http_resp *r, const char *name)
{
    for (int i = 0; i < r->nheaders; i++)
        if (strcmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

static void resp_clear(http_resp *r)
{
    for (int i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->raw);
    json_decref(r->body);
    memset(r, 0, sizeof *r);
}

/* The console's files: the page for /console and its callback, the CSP on every answer,
 * a 404 for anything else. */
static void test_console_files(void **state)
{
    (void)state;
    pf_err e;
    http_req req;
    http_resp resp;
    memset(&req, 0, sizeof req);
    memset(&resp, 0, sizeof resp);
    assert_int_equal(h_console(NULL, &req, &resp, &e), 0);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.content_type, "text/html; charset=utf-8");
    assert_non_null(memmem(resp.raw, resp.raw_len, "/console/app.js", 15));
    assert_non_null(strstr(resp_header(&resp, "Content-Security-Policy"), "default-src 'self'"));
    assert_string_equal(resp_header(&resp, "X-Frame-Options"), "DENY");
    size_t index_len = resp.raw_len;
    resp_clear(&resp);
    const char *names[] = {"callback", "app.js", "style.css", "nope.js", "..", "index.html.bak"};
    const int want[] = {200, 200, 200, 404, 404, 404};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        req.params[0] = names[i];
        req.nparams = 1;
        assert_int_equal(h_console(NULL, &req, &resp, &e), 0);
        assert_int_equal(resp.status, want[i]);
        assert_non_null(resp_header(&resp, "Content-Security-Policy"));
        if (i == 0)
            assert_int_equal(resp.raw_len, index_len);
        if (i == 1)
            assert_string_equal(resp.content_type, "text/javascript; charset=utf-8");
        if (want[i] == 404)
            assert_string_equal(sget(resp.body, "error.code"), "NotFound");
        resp_clear(&resp);
    }
}

int main(void)
{
    util_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v_string),
        cmocka_unit_test(test_v_bool_and_path_id),
        cmocka_unit_test(test_regions),
        cmocka_unit_test_setup_teardown(test_shape_database_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shape_database_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shape_pooled_endpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shape_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shape_project_and_branch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fleet, setup, teardown),
        cmocka_unit_test(test_console_files),
    };
    return HARNESS_RUN("api", tests, NULL, NULL);
}
