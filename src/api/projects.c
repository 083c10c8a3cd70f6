/* Projects: list, create (with its default branch and, unless createDatabase is false, a
 * default database), get, patch (name, settings, expiresAt), delete, and transfer to another
 * workspace (which ends an expiry). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "auth/auth.h"
#include "util/log.h"

/* expiresAt (an extension, docs/api.md): an ISO-8601 time between the minimum (5 minutes;
 * a->expiry_min_s when set, for tests) and 30 days ahead, as util_iso_from_ms writes it into
 * out; null (PATCH only: allow_null) clears it (out ""). Absent: *set false. */
#define EXPIRY_MAX_S (30L * 86400)
static int v_expires_at(app *a, json_t *body, bool allow_null, int status, bool *set,
                        char out[STORE_TS_MAX], pf_err *e)
{
    json_t *v = json_object_get(body, "expiresAt");
    *set = v != NULL;
    out[0] = '\0';
    if (!v || (allow_null && json_is_null(v)))
        return 0;
    long min_s = a->expiry_min_s > 0 ? a->expiry_min_s : 300;
    int64_t at = 0, now = util_wall_ms();
    if (!json_is_string(v) || !util_iso_parse(json_string_value(v), &at))
        return err_set(e, status, "ValidationError", "expiresAt",
                       "The field 'expiresAt' must be an ISO-8601 date-time such as "
                       "2026-01-02T03:04:05Z%s",
                       allow_null ? ", or null to clear it" : "");
    if (at < now + min_s * 1000 || at > now + EXPIRY_MAX_S * 1000)
        return err_set(e, status, "ValidationError", "expiresAt",
                       "The field 'expiresAt' must be between %ld seconds and 30 days from now",
                       min_s);
    util_iso_from_ms(at, out);
    return 0;
}

static int project_row(app *a, const void *row, void *arg, jsonw *w, pf_err *e)
{
    (void)arg;
    (void)e;
    api_item_tree(w, shape_project(a, row));
    return 0;
}

HANDLER(h_projects_list)
{
    app *a = ctx;
    store_page pg;
    if (v_page(req, &pg, e) != 0)
        return -1;
    store_project *rows = NULL;
    size_t n = 0;
    store_page_out po;
    /* the page and each item's workspace are one read */
    if (store_tx_begin_read(a->st, e) != 0)
        return -1;
    int rc = store_project_list(a->st, req->workspace_id, http_query(req, "logicalId"), &pg, &rows,
                                &n, &po, e);
    if (rc == 0)
        rc = api_list_reply(a, resp, rows, n, sizeof *rows, project_row, NULL, &po, e);
    return read_end(a, rc, resp, e);
}

HANDLER(h_projects_create)
{
    app *a = ctx;
    json_t *body = NULL;
    if (http_json_body(req, true, &body, e) != 0)
        return -1;
    int rc = -1;
    const char *name, *region_in, *logical_id, *ws_in, *region;
    int create_db;
    if (v_string(body, "name", false, false, NAME_MAX_LEN, 400, &name, e) != 0 ||
        v_string(body, "region", false, false, 64, 400, &region_in, e) != 0 ||
        v_string(body, "logicalId", false, false, NAME_MAX_LEN, 400, &logical_id, e) != 0 ||
        v_string(body, "workspaceId", false, false, 64, 400, &ws_in, e) != 0 ||
        v_bool(body, "createDatabase", 400, &create_db, e) != 0)
        goto out;
    bool exp_set;
    char expires[STORE_TS_MAX];
    if (v_expires_at(a, body, false, 400, &exp_set, expires, e) != 0)
        goto out;
    if (api_region_resolve(a, region_in, &region, e) != 0)
        goto out;
    if (ws_in && strcmp(ws_in, req->workspace_id) != 0) {
        err_set(e, 404, "NotFound", "workspaceId", "Workspace %s was not found", ws_in);
        goto out;
    }
    store_project p;
    memset(&p, 0, sizeof p);
    util_id_new("proj", p.id);
    snprintf(p.workspace_id, sizeof p.workspace_id, "%s", req->workspace_id);
    snprintf(p.name, sizeof p.name, "%s", name ? name : "Untitled project");
    snprintf(p.logical_id, sizeof p.logical_id, "%s", logical_id ? logical_id : "");
    snprintf(p.default_region, sizeof p.default_region, "%s", region);
    util_now_iso(p.created_at);
    memcpy(p.expires_at, expires, sizeof p.expires_at);
    store_branch br;
    memset(&br, 0, sizeof br);
    util_id_new("br", br.id);
    snprintf(br.project_id, sizeof br.project_id, "%s", p.id);
    snprintf(br.git_name, sizeof br.git_name, "main");
    br.is_default = true;
    memcpy(br.created_at, p.created_at, sizeof br.created_at);
    memcpy(br.updated_at, p.created_at, sizeof br.updated_at);

    store_database db = {0};
    store_connection conn;
    char password[64] = "";
    if (store_tx_begin(a->st, e) != 0)
        goto out;
    int trc = store_project_insert(a->st, &p, e);
    if (trc == 0)
        trc = store_branch_insert(a->st, &br, e);
    if (trc == 0 && create_db != 0) {
        db_create_req r = {.project_id = p.id, .name = name, .region = region, .is_default = true};
        trc = action_create_database(a, req->workspace_id, &r, &db, &conn, password, e);
    }
    if (tx_end_create(a, trc, &db, e) != 0)
        goto out;
    json_t *jp = shape_project(a, &p);
    if (create_db != 0) {
        json_t *jdb = NULL;
        if (shape_database(a, &db, conn.id, password, true, &jdb, e) != 0) {
            json_decref(jp);
            goto out;
        }
        /* the contract's nested database has no `project`: it is the enclosing object */
        json_object_del(jdb, "project");
        json_object_set_new(jp, "database", jdb);
    } else {
        json_object_set_new(jp, "database", json_null());
    }
    resp->status = 201;
    resp->body = json_pack("{s:o}", "data", jp);
    rc = 0;
out:
    json_decref(body);
    return rc;
}

HANDLER(h_project_get)
{
    app *a = ctx;
    store_project p;
    if (load_project(a, req->workspace_id, req->params[0], "id", &p, e) != 0)
        return -1;
    resp->body = json_pack("{s:o}", "data", shape_project(a, &p));
    return 0;
}

/* PATCH settings merge into the stored object key by key: a key replaces its value, null
 * removes it. Inside the caller's transaction. */
static int merge_settings(app *a, const store_project *p, json_t *settings, pf_err *e)
{
    char cur[STORE_SETTINGS_MAX];
    if (store_project_settings(a->st, p->workspace_id, p->id, cur, e) != 0)
        return -1;
    json_t *m = cur[0] ? json_loads(cur, 0, NULL) : NULL;
    if (!json_is_object(m)) {
        json_decref(m);
        m = json_object();
    }
    const char *k;
    json_t *v;
    json_object_foreach(settings, k, v)
    {
        if (json_is_null(v))
            json_object_del(m, k);
        else
            json_object_set(m, k, v);
    }
    char *text = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    if (!text)
        abort();
    int rc = store_project_set_settings(a->st, p->workspace_id, p->id, text, e);
    free(text);
    return rc;
}

HANDLER(h_project_patch)
{
    app *a = ctx;
    store_project p;
    if (load_project(a, req->workspace_id, req->params[0], "id", &p, e) != 0)
        return -1;
    json_t *body = NULL;
    if (http_json_body(req, false, &body, e) != 0)
        return -1;
    int rc = -1;
    const char *name;
    if (v_string(body, "name", false, false, NAME_MAX_LEN, 422, &name, e) != 0)
        goto out;
    json_t *settings = json_object_get(body, "settings");
    if (settings && !json_is_object(settings)) {
        err_set(e, 422, "ValidationError", "settings", "The field 'settings' must be an object");
        goto out;
    }
    bool exp_set;
    char expires[STORE_TS_MAX];
    if (v_expires_at(a, body, true, 422, &exp_set, expires, e) != 0)
        goto out;
    if (store_tx_begin(a->st, e) != 0)
        goto out;
    int trc = 0;
    if (name)
        trc = store_project_update_name(a->st, req->workspace_id, p.id, name, e);
    if (trc == 0 && settings)
        trc = merge_settings(a, &p, settings, e);
    if (trc == 0 && exp_set)
        trc = store_project_set_expiry(a->st, req->workspace_id, p.id, expires, e);
    if (tx_end(a, trc, e) != 0)
        goto out;
    if (name)
        snprintf(p.name, sizeof p.name, "%s", name);
    if (exp_set)
        memcpy(p.expires_at, expires, sizeof p.expires_at);
    resp->body = json_pack("{s:o}", "data", shape_project(a, &p));
    rc = 0;
out:
    json_decref(body);
    return rc;
}

/* The recipient's workspace from its access token: a service token, or an OAuth access
 * token with workspace:admin. Anything else is 409, never 401: the SDK answers a 401 by
 * refreshing the caller's own token. */
static int recipient_workspace(app *a, const char *token, char ws[PF_ID_MAX], pf_err *e)
{
    pf_err le;
    err_clear(&le);
    bool ok;
    if (a->keys && auth_looks_like_jwt(token)) {
        auth_claims c;
        store_grant g;
        ok = auth_check_access(a->st, a->keys, a->base_url, token, &c, &g, &le) == 0 &&
             auth_scope_has(g.scope, AUTH_SCOPE_ADMIN);
        if (ok)
            snprintf(ws, PF_ID_MAX, "%s", c.workspace_id);
    } else {
        char *h = xasprintf("Bearer %s", token);
        char actor[PF_ID_MAX];
        ok = auth_check_bearer(a->st, h, ws, actor, &le) == 0;
        free(h);
    }
    if (!ok)
        return err_set(e, 409, "InvalidRecipientToken", "recipientAccessToken",
                       "The recipient access token is not a valid service token or OAuth access "
                       "token (with workspace:admin) of the receiving workspace");
    return 0;
}

/* POST /v1/projects/{id}/transfer: the project moves to the workspace of
 * recipientAccessToken with its branches, databases, connections and backups; database
 * credentials keep working; to the old workspace it is then unknown (404). */
HANDLER(h_project_transfer)
{
    app *a = ctx;
    store_project p;
    if (load_project(a, req->workspace_id, req->params[0], "id", &p, e) != 0)
        return -1;
    json_t *body = NULL;
    if (http_json_body(req, false, &body, e) != 0)
        return -1;
    int rc = -1;
    const char *token;
    char to[PF_ID_MAX];
    if (v_string(body, "recipientAccessToken", true, false, 4096, 409, &token, e) != 0 ||
        recipient_workspace(a, token, to, e) != 0)
        goto out;
    /* to its own workspace: nothing moves */
    if (strcmp(to, req->workspace_id) != 0 &&
        store_project_transfer(a->st, req->workspace_id, p.id, to, e) != 0)
        goto out;
    log_req(LOG_INFO, req->request_id, "project %s transferred from %s to %s", p.id,
            req->workspace_id, to);
    resp->status = 204;
    rc = 0;
out:
    json_decref(body);
    return rc;
}

/* Deleting a project deletes its databases (each through its delete op) and branches. */
HANDLER(h_project_delete)
{
    app *a = ctx;
    store_project p;
    if (load_project(a, req->workspace_id, req->params[0], "id", &p, e) != 0)
        return -1;
    if (store_tx_begin(a->st, e) != 0)
        return -1;
    int rc = 0;
    store_db_filter f = {.project_id = p.id};
    for (;;) {
        store_page pg = {.cursor = NULL, .limit = 100};
        store_database *dbs = NULL;
        size_t n = 0;
        store_page_out po;
        rc = store_database_list(a->st, req->workspace_id, &f, &pg, &dbs, &n, &po, e);
        for (size_t i = 0; rc == 0 && i < n; i++)
            rc = action_delete_database(a, &dbs[i], NULL, e);
        free(dbs);
        /* deleted rows leave the visible list, so the next pass starts from the top */
        if (rc != 0 || n == 0)
            break;
    }
    if (rc == 0)
        rc = store_project_delete(a->st, req->workspace_id, p.id, e);
    if (tx_end(a, rc, e) != 0)
        return -1;
    resp->status = 204;
    return 0;
}
