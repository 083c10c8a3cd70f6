#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "auth/auth.h"

static int load_conn(app *a, http_req *req, store_connection *c, store_database *d, pf_err *e)
{
    const char *id = req->params[0];
    if (v_path_id("conn", id, "Connection", "id", e) != 0)
        return -1;
    if (store_connection_get(a->st, req->workspace_id, id, c, e) != 0) {
        if (e && e->status == 404)
            snprintf(e->hint, sizeof e->hint, "id");
        return -1;
    }
    return store_database_get(a->st, req->workspace_id, c->database_id, d, e);
}

static int list_common(app *a, http_req *req, const char *db_id, http_resp *resp, pf_err *e)
{
    store_page pg;
    if (v_page(req, &pg, e) != 0)
        return -1;
    store_connection *rows = NULL;
    size_t n = 0;
    store_page_out po;
    if (store_connection_list(a->st, req->workspace_id, db_id, &pg, &rows, &n, &po, e) != 0)
        return -1;
    json_t *data = json_array();
    store_database d;
    d.id[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (strcmp(d.id, rows[i].database_id) != 0 &&
            store_database_get(a->st, req->workspace_id, rows[i].database_id, &d, e) != 0) {
            free(rows);
            json_decref(data);
            return -1;
        }
        json_array_append_new(data, shape_connection(a, &rows[i], &d, NULL));
    }
    free(rows);
    resp->body = shape_list(data, &po);
    return 0;
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
    int trc = store_connection_insert(a->st, &c, e);
    if (trc == 0)
        trc = store_op_insert(a->st, &op, e);
    if (tx_end(a, trc, e) != 0)
        return -1;
    if (answers_when_live(d) && action_wait_op(a, resp, op.id, e) != 0)
        return -1;
    resp->status = status;
    resp->body = json_pack("{s:o}", "data", shape_connection(a, &c, d, password));
    return 0;
}

HANDLER(h_db_connections_list)
{
    app *a = ctx;
    store_database d;
    if (load_database(a, req->workspace_id, req->params[0], "databaseId", &d, e) != 0)
        return -1;
    return list_common(a, req, d.id, resp, e);
}

HANDLER(h_db_connections_create)
{
    app *a = ctx;
    store_database d;
    if (load_database(a, req->workspace_id, req->params[0], "databaseId", &d, e) != 0)
        return -1;
    json_t *body = NULL;
    if (http_json_body(req, false, &body, e) != 0)
        return -1;
    const char *name;
    int rc = v_string(body, "name", true, false, NAME_MAX_LEN, 400, &name, e);
    if (rc == 0)
        rc = create_common(a, req, &d, name, 200, resp, e);
    json_decref(body);
    return rc;
}

HANDLER(h_connections_list)
{
    app *a = ctx;
    const char *db_id = http_query(req, "databaseId");
    return list_common(a, req, db_id && *db_id ? db_id : NULL, resp, e);
}

HANDLER(h_connections_create)
{
    app *a = ctx;
    json_t *body = NULL;
    if (http_json_body(req, false, &body, e) != 0)
        return -1;
    const char *db_id, *name;
    store_database d;
    int rc = -1;
    if (v_string(body, "databaseId", true, false, 64, 400, &db_id, e) == 0 &&
        v_string(body, "name", true, false, NAME_MAX_LEN, 400, &name, e) == 0 &&
        load_database(a, req->workspace_id, db_id, "databaseId", &d, e) == 0)
        rc = create_common(a, req, &d, name, 201, resp, e);
    json_decref(body);
    return rc;
}

HANDLER(h_connection_get)
{
    app *a = ctx;
    store_connection c;
    store_database d;
    if (load_conn(a, req, &c, &d, e) != 0)
        return -1;
    resp->body = json_pack("{s:o}", "data", shape_connection(a, &c, &d, NULL));
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
    if (trc == 0)
        trc = store_op_insert(a->st, &op, e);
    if (tx_end(a, trc, e) != 0)
        return -1;
    /* the role is gone and its sessions ended when we answer */
    if (answers_when_live(&d) && action_wait_op(a, resp, op.id, e) != 0)
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
    int trc = store_connection_set_verifier(a->st, c.id, verifier, e);
    if (trc == 0)
        trc = store_op_insert(a->st, &op, e);
    if (tx_end(a, trc, e) != 0)
        return -1;
    /* the new password works, and the old one is refused, when we answer */
    if (answers_when_live(&d) && action_wait_op(a, resp, op.id, e) != 0)
        return -1;
    resp->body = json_pack("{s:o}", "data", shape_connection(a, &c, &d, password));
    return 0;
}
