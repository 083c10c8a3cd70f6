/* GET /healthz, and workspaces: the list, one by id and its subscription (a credential sees
 * its own only). */
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"

HANDLER(h_healthz)
{
    (void)ctx;
    (void)req;
    (void)e;
    resp->body = json_pack("{s:s}", "status", "ok");
    return 0;
}

static int workspace_row(app *a, const void *row, void *arg, jsonw *w, pf_err *e)
{
    (void)arg;
    (void)e;
    api_item_tree(w, shape_workspace(a, row));
    return 0;
}

HANDLER(h_workspaces_list)
{
    app *a = ctx;
    store_page pg;
    if (v_page(req, &pg, e) != 0)
        return -1;
    store_workspace *rows = NULL;
    size_t n = 0;
    store_page_out po;
    if (store_workspace_list(a->st, req->workspace_id, &pg, &rows, &n, &po, e) != 0)
        return -1;
    return api_list_reply(a, resp, rows, n, sizeof *rows, workspace_row, NULL, &po, e);
}

/* The path's {id} when it is the caller's own workspace; another workspace's id behaves
 * exactly like an unknown one (404). */
static const char *own_workspace(http_req *req, pf_err *e)
{
    const char *id = req->params[0];
    if (v_path_id("wksp", id, "Workspace", "id", e) != 0 || strcmp(id, req->workspace_id) != 0) {
        err_set(e, 404, "NotFound", "id", "Workspace %s was not found", id);
        return NULL;
    }
    return id;
}

HANDLER(h_workspace_get)
{
    app *a = ctx;
    const char *id = own_workspace(req, e);
    if (!id)
        return -1;
    store_workspace w;
    if (store_workspace_get(a->st, id, &w, e) != 0)
        return -1;
    resp->body = json_pack("{s:o}", "data", shape_workspace(a, &w));
    return 0;
}

/* A self-hosted server has one plan, never blocked; upgradeUrl (a URI, as typed) is this
 * resource itself: there is nothing to upgrade to. */
HANDLER(h_workspace_subscription)
{
    app *a = ctx;
    const char *id = own_workspace(req, e);
    if (!id)
        return -1;
    char url[512];
    snprintf(url, sizeof url, "%s/v1/workspaces/%s/subscription", a->base_url, id);
    resp->body = json_pack("{s:{s:s, s:b, s:s}}", "data", "planName", "self-hosted", "usageBlocked",
                           0, "upgradeUrl", url);
    return 0;
}
