/* Helpers shared by the handlers in src/api: input validation, paging and the JSON shapes
 * of each resource. Internal to src/api. */
#ifndef PF_API_INTERNAL_H
#define PF_API_INTERNAL_H

#include <jansson.h>

#include "api/api.h"
#include "util/jsonw.h"
#include "util/textcache.h"

#define NAME_MAX_LEN 255

/* ---- validation: each returns 0, or -1 with `status` (400 or 422) and a hint naming
 * the field. A JSON null counts as absent only where allow_null is true. ---- */
int v_string(json_t *body, const char *field, bool required, bool allow_null, size_t maxlen,
             int status, const char **out, pf_err *e);
int v_bool(json_t *body, const char *field, int status, int *out /* -1 absent, 0, 1 */, pf_err *e);
/* For a path parameter: ids of the wrong shape behave exactly like unknown ids (404). */
int v_path_id(const char *prefix, const char *id, const char *what, const char *hint, pf_err *e);
/* ?limit= (1..100, default 100) and ?cursor=. */
int v_page(http_req *req, store_page *pg, pf_err *e);
/* For a list whose contract types its validation errors 422 (branches, backups): rc, with
 * a 400 (a bad limit from v_page, a bad cursor from the store) answered as 422. */
int v_422(int rc, pf_err *e);

/* ---- shapes ---- */
json_t *shape_workspace(app *a, const store_workspace *w);
/* What follows the path of every connection string this server prints: "?sslmode=require",
 * or "" with the TLS mode loopback-optional. */
const char *api_conn_query(const app *a);
json_t *shape_project(app *a, const store_project *p);
json_t *shape_branch(app *a, const store_branch *b, const store_project *p);
/* A database with its connections. secret_conn/secret_password: the one connection whose
 * password is known (just created), or NULL. with_keys adds the create-response extras
 * (apiKeys, connectionString, directConnection). */
int shape_database(app *a, const store_database *d, const char *secret_conn,
                   const char *secret_password, bool with_keys, json_t **out, pf_err *e);
/* Writes the read shape of a database whose project and live connections (n, oldest
 * first) were read already: a list page reads them for all its rows at once. */
void shape_database_read_w(app *a, jsonw *w, const char *key, const store_database *d,
                           const store_project *p, const store_connection *conns, size_t n);
/* Writes the read shape of a connection (no secrets). */
void shape_connection_read_w(app *a, jsonw *w, const char *key, const store_connection *c,
                             const store_database *d);
/* Answers the text in w (JSON), which it takes. */
void api_reply_text(http_resp *resp, jsonw *w);
/* A connection; password NULL for read shapes (no secrets, no connection strings). */
json_t *shape_connection(app *a, const store_connection *c, const store_database *d,
                         const char *password);
/* extras: the create/rotate-only fields (connectionString, host, user, pass). */
json_t *shape_connection_ex(app *a, const store_connection *c, const store_database *d,
                            const char *password, bool extras);
/* Answers {"data": <d's read shape>} (no secrets); with reread_ws, d is read again first
 * (in that workspace), as a committed change left it. */
int reply_database(app *a, const char *reread_ws, store_database *d, http_resp *resp, pf_err *e);

/* ---- shared actions ---- */
typedef struct db_create_req {
    const char *project_id;
    const char *name;
    const char *region;          /* resolved id */
    const char *branch_id;       /* NULL: default branch (or by git name) */
    const char *branch_git_name; /* created when missing */
    const char *logical_id;
    bool is_default;
    /* source: NULL/"empty", "backup" (backup, point_in_time) or "database" (clone of src) */
    const char *source_type;
    const store_database *source_db;
    const store_backup *source_backup;
    const char *point_in_time; /* "" = the backup's end */
} db_create_req;

/* ---- backups (backups.c) ---- */
typedef struct backup_source {
    store_database db;
    store_backup backup;
    char point_in_time[32]; /* normalized for recovery_target_time; "" = none */
} backup_source;
/* Validates a {"databaseId","backupId","pointInTime"?} source of the caller's workspace:
 * 404 for an unknown database or backup, `status` (400 or 422) for a malformed one, a
 * backup that is not completed or a time outside [backup end, now]. */
int api_backup_source(app *a, const char *ws, json_t *src, int status, backup_source *out,
                      pf_err *e);
/* unix milliseconds -> "YYYY-MM-DD HH:MM:SS.mmm+00" */
void api_time_format_pg(int64_t ms, char out[32]);

/* Inside the caller's transaction: inserts the database, its default connection and the
 * provision op. Fills the new rows and the connection's one-time password. */
/* 0 when the home has room for a new database, else -1 with 507 DiskFull (hint: the home). */
int action_room_check(app *a, pf_err *e);
int action_create_database(app *a, const char *ws, const db_create_req *r, store_database *db,
                           store_connection *conn, char password[64], pf_err *e);
/* New credential row + its verifier (no insert). */
int action_new_connection(const char *ws, const char *db_id, const char *name, store_connection *c,
                          char password[64], pf_err *e);
/* Resolves branchId / branchGitName for a project (creating a branch by git name). Inside
 * the caller's transaction. */
int action_resolve_branch(app *a, const char *ws, const char *project_id, const char *branch_id,
                          const char *git_name, store_branch *out, pf_err *e);
/* Marks a database deleting and queues its delete (inside the caller's transaction).
 * op_id (may be NULL) receives the op's id. */
int action_delete_database(app *a, const store_database *d, char *op_id, pf_err *e);

/* After commit: the answer in resp waits (a->op_wait_ms) for an op whose effect it
 * promises, e.g. a rotated password that must work at once. The connection is suspended
 * meanwhile and holds no thread (http_resp_wait, ops_watch). A failed op answers 500, one
 * still running at the deadline 503 with Retry-After. */
int action_wait_op(app *a, http_resp *resp, const char *op_id, pf_err *e);

/* ---- rows and lists (load.c) ---- */
/* rc of a lookup; a 404 gets `hint` (the field its id came from). */
int api_hint_404(int rc, const char *hint, pf_err *e);
/* Loads a row by an id from a request with getter, a store_*_get(st, scope, id, out, e):
 * a malformed id (not "<prefix>_..."), an unknown one and another scope's all answer the
 * same 404 ("<noun> <id> was not found"), whose hint names `hint`. */
#define API_LOAD(a, getter, prefix, noun, scope, id, hint, out, e)                                 \
    (v_path_id((prefix), (id), (noun), (hint), (e)) != 0                                           \
         ? -1                                                                                      \
         : api_hint_404(getter((a)->st, (scope), (id), (out), (e)), (hint), (e)))
/* Loads a row of the caller's workspace by the id in a request (API_LOAD). */
int load_project(app *a, const char *ws, const char *id, const char *hint, store_project *p,
                 pf_err *e);
int load_database(app *a, const char *ws, const char *id, const char *hint, store_database *d,
                  pf_err *e);
/* The database of the path's {databaseId} (load_database). */
int load_path_database(app *a, http_req *req, store_database *d, pf_err *e);

/* Writes one list row as an item of w's array (0), or fails with e (-1). */
typedef int (*api_shaper)(app *a, const void *row, void *arg, jsonw *w, pf_err *e);
/* Writes a tree as the next item of w's array (a shape that only jansson builds). */
void api_item_tree(jsonw *w, json_t *j);
/* Answers a list: shapes n rows of `size` bytes, frees rows (malloc'd or NULL) and answers
 * {"data":[...],"pagination":{"nextCursor","hasMore"}} as text. */
int api_list_reply(app *a, http_resp *resp, void *rows, size_t n, size_t size, api_shaper shape,
                   void *arg, const store_page_out *po, pf_err *e);

/* Commit helper: commits, or rolls back and returns -1 if rc != 0 or the commit fails. */
int tx_end(app *a, int rc, pf_err *e);
/* tx_end for a transaction that ran action_create_database into db: a create rolled back
 * (refused, failed or not committed) gives its port back. */
int tx_end_create(app *a, int rc, const store_database *db, pf_err *e);
/* Ends a read begun with store_tx_begin_read: 0, or -1 when rc != 0 or the end fails (the
 * body already set is dropped then). A list and the rows its items need are one read. */
int read_end(app *a, int rc, http_resp *resp, pf_err *e);

/* ---- handlers (routes.c) ---- */
#define HANDLER(name) int name(void *ctx, http_req *req, http_resp *resp, pf_err *e)
HANDLER(h_healthz);
HANDLER(h_workspaces_list);
HANDLER(h_workspace_get);
HANDLER(h_projects_list);
HANDLER(h_projects_create);
HANDLER(h_project_get);
HANDLER(h_project_patch);
HANDLER(h_project_delete);
HANDLER(h_project_transfer);
HANDLER(h_workspace_subscription);
HANDLER(h_branches_list);
HANDLER(h_branches_create);
HANDLER(h_branch_get);
HANDLER(h_branch_patch);
HANDLER(h_branch_delete);
HANDLER(h_databases_list);
HANDLER(h_databases_create);
HANDLER(h_project_databases_list);
HANDLER(h_project_databases_create);
HANDLER(h_database_get);
HANDLER(h_database_patch);
HANDLER(h_database_delete);
HANDLER(h_db_connections_list);
HANDLER(h_db_connections_create);
HANDLER(h_connections_list);
HANDLER(h_connections_create);
HANDLER(h_connection_get);
HANDLER(h_connection_delete);
HANDLER(h_connection_rotate);
HANDLER(h_db_backups_list);
HANDLER(h_db_backups_create);
HANDLER(h_db_restore);
HANDLER(h_db_usage);
HANDLER(h_metrics);
HANDLER(h_regions_list);
HANDLER(h_regions_postgres);
HANDLER(h_regions_accelerate);
HANDLER(h_doc);     /* doc.c */
HANDLER(h_ca_pem);  /* ca.c */
HANDLER(h_fleet);   /* fleet.c */
HANDLER(h_console); /* console.c */
/* True for the paths an operator token may read (fleet.c). */
bool api_fleet_path(const char *path);

/* identity and OAuth2 (identity.c, oauth.c, pages.c) */
HANDLER(h_me);
HANDLER(h_workspaces_create);
HANDLER(h_integrations_list);
HANDLER(h_integration_get);
HANDLER(h_integration_delete);
HANDLER(h_ws_integrations_list);
HANDLER(h_ws_integration_delete);
HANDLER(h_service_tokens_list);
HANDLER(h_service_tokens_create);
HANDLER(h_service_token_delete);
HANDLER(h_oauth_metadata);
HANDLER(h_oauth_jwks);
HANDLER(h_oauth_token);
HANDLER(h_oauth_revoke);
HANDLER(h_authorize_get);
HANDLER(h_authorize_post);
HANDLER(h_login_post);

#endif
