/* api: who is calling (/v1/me), workspace creation, integrations (OAuth clients granted to
 * a workspace) and service tokens. A credential sees only its own workspace: another
 * workspace's ids behave like unknown ones. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/internal.h"
#include "auth/auth.h"

static bool actor_is_user(const http_req *req)
{
    return strncmp(req->actor_id, "usr_", 4) == 0;
}

static json_t *str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

/* The bearer value of the request (after "Bearer "), or "". */
static const char *bearer(http_req *req)
{
    const char *h = http_header(req, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return "";
    h += 7;
    while (*h == ' ')
        h++;
    return h;
}

HANDLER(h_me)
{
    app *a = ctx;
    store_workspace w;
    if (store_workspace_get(a->st, req->workspace_id, &w, e) != 0)
        return -1;
    json_t *user = json_null(), *cred = NULL;
    if (actor_is_user(req)) {
        store_user u;
        if (store_user_get(a->st, req->actor_id, &u, e) != 0)
            return -1;
        user =
            json_pack("{s:s, s:s, s:o}", "id", u.id, "email", u.email, "name", str_or_null(u.name));
        /* the credential is the integration the access token was issued under */
        auth_claims c;
        store_grant g;
        store_integration itg;
        store_oauth_client cl;
        pf_err le;
        json_t *id = json_null(), *name = json_null();
        if (a->keys &&
            auth_check_access(a->st, a->keys, a->base_url, bearer(req), &c, &g, &le) == 0) {
            if (store_integration_get(a->st, req->workspace_id, g.integration_id, &itg, &le) == 0)
                id = json_string(itg.id);
            if (store_oauth_client_get(a->st, g.client_id, &cl, &le) == 0)
                name = json_string(cl.name);
        }
        cred = json_pack("{s:s, s:o, s:o}", "type", "oauth", "id", id, "name", name);
    } else {
        store_token t;
        pf_err le;
        bool found = store_token_get(a->st, req->workspace_id, req->actor_id, &t, &le) == 0;
        cred = json_pack("{s:s, s:s, s:o}", "type", "service_token", "id", req->actor_id, "name",
                         found ? json_string(t.name) : json_null());
    }
    resp->body = json_pack("{s:{s:o, s:{s:s, s:s}, s:o}}", "data", "user", user, "workspace", "id",
                           w.id, "name", w.name, "credential", cred);
    return 0;
}

HANDLER(h_workspaces_create)
{
    app *a = ctx;
    if (!actor_is_user(req))
        return err_set(e, 403, "Forbidden", "Sign in with OAuth to create workspaces.",
                       "Workspace integration tokens cannot create workspaces; a "
                       "user-attributable actor is required");
    json_t *body = NULL;
    if (http_json_body(req, true, &body, e) != 0)
        return -1;
    const char *name = NULL;
    int rc = v_string(body, "displayName", false, true, NAME_MAX_LEN, 400, &name, e);
    if (rc != 0) {
        json_decref(body);
        return -1;
    }
    store_workspace w;
    memset(&w, 0, sizeof w);
    util_id_new("wksp", w.id);
    snprintf(w.name, sizeof w.name, "%s", name ? name : "New Workspace");
    util_now_iso(w.created_at);
    json_decref(body);
    if (store_tx_begin(a->st, e) != 0)
        return -1;
    rc = store_workspace_insert(a->st, &w, e);
    if (rc == 0)
        rc = store_membership_add(a->st, req->actor_id, w.id, e);
    if (tx_end(a, rc, e) != 0)
        return -1;
    resp->status = 201;
    resp->body = json_pack("{s:o}", "data", shape_workspace(a, &w));
    return 0;
}

/* ---- integrations ---- */

static json_t *scopes_array(const char *scope)
{
    json_t *arr = json_array();
    const char *p = scope;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *end = strchr(p, ' ');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len)
            json_array_append_new(arr, json_stringn(p, len));
        p += len;
    }
    return arr;
}

static json_t *shape_integration(app *a, const store_integration *i)
{
    store_oauth_client cl;
    store_user u;
    pf_err le;
    if (store_oauth_client_get(a->st, i->client_id, &cl, &le) != 0) {
        memset(&cl, 0, sizeof cl);
        snprintf(cl.id, sizeof cl.id, "%s", i->client_id);
    }
    if (store_user_get(a->st, i->user_id, &u, &le) != 0) {
        memset(&u, 0, sizeof u);
        snprintf(u.id, sizeof u.id, "%s", i->user_id);
    }
    char url[512];
    snprintf(url, sizeof url, "%s/v1/integrations/%s", a->base_url, i->id);
    return json_pack("{s:s, s:s, s:s, s:o, s:{s:s, s:s, s:s}, s:{s:s, s:s, s:o}}", "id", i->id,
                     "url", url, "createdAt", i->created_at, "scopes", scopes_array(i->scope),
                     "client", "id", cl.id, "name", cl.name, "createdAt", cl.created_at,
                     "createdByUser", "id", u.id, "email", u.email, "displayName",
                     str_or_null(u.name));
}

static int integration_row(app *a, const void *row, void *arg, jsonw *w, pf_err *e)
{
    (void)arg;
    (void)e;
    api_item_tree(w, shape_integration(a, row));
    return 0;
}

static int list_integrations(app *a, http_req *req, const char *ws, http_resp *resp, pf_err *e)
{
    store_page pg;
    if (v_page(req, &pg, e) != 0)
        return -1;
    store_integration *rows = NULL;
    size_t n = 0;
    store_page_out po = {0};
    if (ws && store_integration_list(a->st, ws, &pg, &rows, &n, &po, e) != 0)
        return -1;
    return api_list_reply(a, resp, rows, n, sizeof *rows, integration_row, NULL, &po, e);
}

HANDLER(h_integrations_list)
{
    const char *ws = http_query(req, "workspaceId");
    if (!ws || !*ws)
        return err_set(e, 400, "ValidationError", "workspaceId",
                       "The query parameter 'workspaceId' is required");
    /* another workspace lists as empty, like one that does not exist */
    return list_integrations(ctx, req, strcmp(ws, req->workspace_id) == 0 ? ws : NULL, resp, e);
}

HANDLER(h_ws_integrations_list)
{
    const char *ws = req->params[0];
    if (strcmp(ws, req->workspace_id) != 0)
        return err_set(e, 404, "NotFound", "workspaceId", "Workspace %s was not found", ws);
    return list_integrations(ctx, req, ws, resp, e);
}

HANDLER(h_integration_get)
{
    app *a = ctx;
    store_integration i;
    if (v_path_id("itg", req->params[0], "Integration", "id", e) != 0 ||
        store_integration_get(a->st, req->workspace_id, req->params[0], &i, e) != 0)
        return -1;
    resp->body = json_pack("{s:o}", "data", shape_integration(a, &i));
    return 0;
}

HANDLER(h_integration_delete)
{
    app *a = ctx;
    if (v_path_id("itg", req->params[0], "Integration", "id", e) != 0 ||
        store_integration_delete(a->st, req->workspace_id, req->params[0], e) != 0)
        return -1;
    resp->status = 204;
    return 0;
}

HANDLER(h_ws_integration_delete)
{
    app *a = ctx;
    const char *ws = req->params[0], *client = req->params[1];
    if (strcmp(ws, req->workspace_id) != 0)
        return err_set(e, 404, "NotFound", "workspaceId", "Workspace %s was not found", ws);
    store_integration i;
    pf_err le;
    if (store_integration_by_client(a->st, ws, client, &i, &le) != 0) {
        if (le.status == 404)
            return err_set(e, 404, "NotFound", "clientId",
                           "No integration of client %s in this workspace", client);
        *e = le;
        return -1;
    }
    if (store_integration_delete(a->st, ws, i.id, e) != 0)
        return -1;
    resp->status = 204;
    return 0;
}

/* ---- service tokens ---- */

static json_t *shape_service_token(const store_token *t)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "id", t->id, "type", "serviceToken", "name",
                     t->name, "valueHint", t->value_hint, "createdAt", t->created_at, "expiresAt",
                     str_or_null(t->expires_at));
}

static int token_row(app *a, const void *row, void *arg, jsonw *w, pf_err *e)
{
    (void)a;
    (void)arg;
    (void)e;
    api_item_tree(w, shape_service_token(row));
    return 0;
}

HANDLER(h_service_tokens_list)
{
    app *a = ctx;
    store_page pg;
    if (v_page(req, &pg, e) != 0)
        return -1;
    store_token *rows = NULL;
    size_t n = 0;
    store_page_out po = {0};
    /* another workspace lists as empty, like one that does not exist */
    if (strcmp(req->params[0], req->workspace_id) == 0 &&
        store_token_list(a->st, req->workspace_id, &pg, &rows, &n, &po, e) != 0)
        return -1;
    return api_list_reply(a, resp, rows, n, sizeof *rows, token_row, NULL, &po, e);
}

/* An ISO-8601 date-time with a zone (util_iso_parse) in the canonical millisecond UTC form
 * that util_now_iso produces, so expiry compares as text. */
static bool parse_iso(const char *s, char out[STORE_TS_MAX])
{
    int64_t ms = 0;
    if (!util_iso_parse(s, &ms) || ms < 0 || ms > 253402300799999LL)
        return false;
    util_iso_from_ms(ms, out);
    return true;
}

HANDLER(h_service_tokens_create)
{
    app *a = ctx;
    if (strcmp(req->params[0], req->workspace_id) != 0)
        return err_set(e, 404, "NotFound", "workspaceId", "Workspace %s was not found",
                       req->params[0]);
    json_t *body = NULL;
    if (http_json_body(req, false, &body, e) != 0) {
        if (e->status == 400 && strcmp(e->code, "ValidationError") == 0)
            e->status = 422;
        return -1;
    }
    const char *name = NULL, *exp = NULL;
    char exp_iso[STORE_TS_MAX] = "";
    int rc = v_string(body, "name", true, false, NAME_MAX_LEN, 422, &name, e);
    if (rc == 0)
        rc = v_string(body, "expiresAt", false, true, 64, 422, &exp, e);
    if (rc == 0 && exp) {
        char now[STORE_TS_MAX];
        util_now_iso(now);
        if (!parse_iso(exp, exp_iso))
            rc = err_set(e, 422, "ValidationError", "expiresAt",
                         "expiresAt must be an ISO-8601 date-time with a zone, such as "
                         "2030-01-31T00:00:00Z");
        else if (strcmp(exp_iso, now) <= 0)
            rc = err_set(e, 422, "ValidationError", "expiresAt", "expiresAt must be in the future");
    }
    char value[AUTH_TOKEN_MAX];
    store_token t;
    if (rc == 0)
        rc = auth_token_create(a->st, req->workspace_id, name, exp ? exp_iso : NULL, value, &t, e);
    json_decref(body);
    if (rc != 0)
        return -1;
    json_t *data = shape_service_token(&t);
    json_object_set_new(data, "value", json_string(value));
    sodium_memzero(value, sizeof value);
    resp->status = 201;
    resp->body = json_pack("{s:o}", "data", data);
    return 0;
}

HANDLER(h_service_token_delete)
{
    app *a = ctx;
    if (strcmp(req->params[0], req->workspace_id) != 0)
        return err_set(e, 404, "NotFound", "workspaceId", "Workspace %s was not found",
                       req->params[0]);
    if (v_path_id("tok", req->params[1], "Service token", "serviceTokenId", e) != 0 ||
        store_token_delete(a->st, req->workspace_id, req->params[1], e) != 0)
        return -1;
    resp->status = 204;
    return 0;
}
