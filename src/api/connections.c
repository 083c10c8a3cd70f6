#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "auth/auth.h"

static int load_conn(app *a, http_req *req, store_connection *c, store_database *d, pf_err *e)
{
    if (API_LOAD(a, store_connection_get, "conn", "Connection", req->workspace_id, req->params[0],
                 "id", c, e) != 0)
        return -1;
    return store_database_get(a->st, req->workspace_id, c->database_id, d, e);
}

/* Shapes connections with their database, read once per run of rows of the same one. */
typedef struct conn_rows {
    const char *ws;
    store_database d;
} conn_rows;

static int connection_row(app *a, const void *row, void *arg, jsonw *w, pf_err *e)
{
    const store_connection *c = row;
    conn_rows *cr = arg;
    if (strcmp(cr->d.id, c->database_id) != 0 &&
        store_database_get(a->st, cr->ws, c->database_id, &cr->d, e) != 0)
        return -1;
    shape_connection_read_w(a, w, NULL, c, &cr->d);
    return 0;
}

static int list_common(app *a, http_req *req, const char *db_id, http_resp *resp, pf_err *e)
{
    store_page pg;
    if (v_page(req, &pg, e) != 0)
        return -1;
    store_connection *rows = NULL;
    size_t n = 0;
    store_page_out po;
    /* the page and each item's database are one read: a database deleted meanwhile takes
     * its connections out of the page, never leaves them without it (a 404) */
    if (store_tx_begin_read(a->st, e) != 0)
        return -1;
    int rc = store_connection_list(a->st, req->workspace_id, db_id, &pg, &rows, &n, &po, e);
    conn_rows cr = {.ws = req->workspace_id};
    if (rc == 0)
        rc = api_list_reply(a, resp, rows, n, sizeof *rows, connection_row, &cr, &po, e);
    return read_end(a, rc, resp, e);
}

/* A credential change is answered once it is live in PostgreSQL (a new password works, a
 * revoked one is refused). On a database being restored it waits for the restore, which
 * can take minutes: that answer does not wait, and the change applies when it is done. */
static bool answers_when_live(const store_database *d)
{
    return d->status == DB_READY || d->status == DB_PROVISIONING;
}

/* The database must be able to take a credential change now or once it is provisioned. */
static int check_db_usable(const store_database *d, pf_err *e)
{
    if (d->status == DB_FAILURE)
        return err_set(e, 409, "Conflict", "databaseId",
                       "Database %s is in failure (%s); its credentials cannot change", d->id,
                       d->status_reason);
    return 0;
}

/* Ends a credential change: inserts its op after the change (trc: its result so far),
 * commits, and waits for the op when the answer promises the change is live. */
static int commit_and_wait(app *a, const store_database *d, int trc, store_op *op, http_resp *resp,
                           pf_err *e)
{
    if (trc == 0)
        trc = store_op_insert(a->st, op, e);
    if (tx_end(a, trc, e) != 0)
        return -1;
    return answers_when_live(d) ? action_wait_op(a, resp, op->id, e) : 0;
}

/* Inserts the credential and its op, commits, and waits for the role when the server runs. */
static int create_common(app *a, http_req *req, const store_database *d, const char *name,
                         int status, http_resp *resp, pf_err *e)
{
    if (check_db_usable(d, e) != 0)
        return -1;
    store_connection c;
    char password[64];
    if (action_new_connection(req->workspace_id, d->id, name, &c, password, e) != 0)
        return -1;
    store_op op;
    ops_op_init(&op, OP_CONN_SYNC, d->id, c.id);
    if (store_tx_begin(a->st, e) != 0)
        return -1;
    if (commit_and_wait(a, d, store_connection_insert(a->st, &c, e), &op, resp, e) != 0)
        return -1;
    resp->status = status;
    resp->body = json_pack("{s:o}", "data", shape_connection(a, &c, d, password));
    return 0;
}

HANDLER(h_db_connections_list)
{
    app *a = ctx;
    store_database d;
    if (load_path_database(a, req, &d, e) != 0)
        return -1;
    return list_common(a, req, d.id, resp, e);
}

/* Both create endpoints: the database comes from the path (path_db, checked before the
 * body; answers 200) or from the body's databaseId (NULL; answers 201). */
static int create_from_body(app *a, http_req *req, const char *path_db, http_resp *resp, pf_err *e)
{
    store_database d;
    memset(&d, 0, sizeof d);
    if (path_db && load_database(a, req->workspace_id, path_db, "databaseId", &d, e) != 0)
        return -1;
    json_t *body = NULL;
    if (http_json_body(req, false, &body, e) != 0)
        return -1;
    const char *db_id = path_db, *name;
    int rc = -1;
    if ((path_db || v_string(body, "databaseId", true, false, 64, 400, &db_id, e) == 0) &&
        v_string(body, "name", true, false, NAME_MAX_LEN, 400, &name, e) == 0 &&
        (path_db || load_database(a, req->workspace_id, db_id, "databaseId", &d, e) == 0))
        rc = create_common(a, req, &d, name, path_db ? 200 : 201, resp, e);
    json_decref(body);
    return rc;
}

HANDLER(h_db_connections_create)
{
    return create_from_body(ctx, req, req->params[0], resp, e);
}

HANDLER(h_connections_list)
{
    app *a = ctx;
    const char *db_id = http_query(req, "databaseId");
    return list_common(a, req, db_id && *db_id ? db_id : NULL, resp, e);
}

HANDLER(h_connections_create)
{
    return create_from_body(ctx, req, NULL, resp, e);
}

HANDLER(h_connection_get)
{
    app *a = ctx;
    store_connection c;
    store_database d;
    if (load_conn(a, req, &c, &d, e) != 0)
        return -1;
    jsonw w = {0};
    jsonw_obj(&w, NULL);
    shape_connection_read_w(a, &w, "data", &c, &d);
    jsonw_end(&w);
    api_reply_text(resp, &w);
    return 0;
}

HANDLER(h_connection_delete)
{
    app *a = ctx;
    store_connection c;
    store_database d;
    if (load_conn(a, req, &c, &d, e) != 0)
        return -1;
    store_op op;
    ops_op_init(&op, OP_CONN_DROP, d.id, c.id);
    if (store_tx_begin(a->st, e) != 0)
        return -1;
    int trc = store_connection_mark_deleting(a->st, c.id, e);
    if (trc == 0 && strcmp(d.default_connection_id, c.id) == 0)
        trc = store_database_set_default_connection(a->st, d.id, "", e);
    /* the role is gone and its sessions ended when we answer */
    if (commit_and_wait(a, &d, trc, &op, resp, e) != 0)
        return -1;
    resp->status = 204;
    return 0;
}

HANDLER(h_connection_rotate)
{
    app *a = ctx;
    store_connection c;
    store_database d;
    if (load_conn(a, req, &c, &d, e) != 0)
        return -1;
    if (check_db_usable(&d, e) != 0)
        return -1;
    char password[64];
    util_secret(password, 40);
    char verifier[STORE_VERIFIER_MAX];
    if (auth_scram_verifier(c.role, password, verifier, e) != 0)
        return -1;
    store_op op;
    ops_op_init(&op, OP_CONN_SYNC, d.id, c.id);
    if (store_tx_begin(a->st, e) != 0)
        return -1;
    /* the new password works, and the old one is refused, when we answer */
    if (commit_and_wait(a, &d, store_connection_set_verifier(a->st, c.id, verifier, e), &op, resp,
                        e) != 0)
        return -1;
    resp->body = json_pack("{s:o}", "data", shape_connection(a, &c, &d, password));
    return 0;
}
