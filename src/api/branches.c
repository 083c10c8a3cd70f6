/* Branches of a project: list, create, get, patch (only the default flag moves) and delete.
 * The role is the store's: a project's first branch is production, later ones preview. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"

/* Git ref names, simplified: [A-Za-z0-9._/-], no "..", no leading '-' or '/', no
 * trailing '/', '.' or ".lock". */
static bool git_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || s[0] == '-' || s[0] == '/' || s[n - 1] == '/' || s[n - 1] == '.')
        return false;
    if (strstr(s, "..") || strstr(s, "//") || (n >= 5 && strcmp(s + n - 5, ".lock") == 0))
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '/' || c == '-'))
            return false;
    }
    return true;
}

static int load_branch(app *a, http_req *req, store_branch *b, store_project *p, pf_err *e)
{
    if (API_LOAD(a, store_branch_get, "br", "Branch", req->workspace_id, req->params[0], "branchId",
                 b, e) != 0)
        return -1;
    return store_project_get(a->st, req->workspace_id, b->project_id, p, e);
}

static int branch_row(app *a, const void *row, void *p, jsonw *w, pf_err *e)
{
    (void)e;
    api_item_tree(w, shape_branch(a, row, p));
    return 0;
}

HANDLER(h_branches_list)
{
    app *a = ctx;
    store_project p;
    if (load_project(a, req->workspace_id, req->params[0], "projectId", &p, e) != 0)
        return -1;
    store_page pg;
    if (v_422(v_page(req, &pg, e), e) != 0)
        return -1;
    const char *git = http_query(req, "gitName");
    const char *contains = http_query(req, "gitNameContains");
    if (git && contains)
        return err_set(e, 422, "ValidationError", "gitName",
                       "The filters 'gitName' and 'gitNameContains' are mutually exclusive");
    store_branch *rows = NULL;
    size_t n = 0;
    store_page_out po;
    if (v_422(store_branch_list(a->st, p.id, git, contains, &pg, &rows, &n, &po, e), e) != 0)
        return -1;
    return api_list_reply(a, resp, rows, n, sizeof *rows, branch_row, &p, &po, e);
}

HANDLER(h_branches_create)
{
    app *a = ctx;
    store_project p;
    if (load_project(a, req->workspace_id, req->params[0], "projectId", &p, e) != 0)
        return -1;
    json_t *body = NULL;
    if (http_json_body(req, false, &body, e) != 0)
        return -1;
    int rc = -1;
    const char *git;
    int is_default;
    if (v_string(body, "gitName", true, false, NAME_MAX_LEN, 422, &git, e) != 0 ||
        v_bool(body, "isDefault", 422, &is_default, e) != 0)
        goto out;
    if (!git_name_ok(git)) {
        err_set(e, 422, "ValidationError", "gitName", "'%s' is not a valid git branch name", git);
        goto out;
    }
    store_branch b;
    memset(&b, 0, sizeof b);
    util_id_new("br", b.id);
    snprintf(b.project_id, sizeof b.project_id, "%s", p.id);
    snprintf(b.git_name, sizeof b.git_name, "%s", git);
    util_now_iso(b.created_at);
    memcpy(b.updated_at, b.created_at, sizeof b.updated_at);
    if (store_tx_begin(a->st, e) != 0)
        goto out;
    int trc = store_branch_insert(a->st, &b, e);
    if (trc == 0 && is_default == 1)
        trc = store_branch_set_default(a->st, b.id, e);
    if (tx_end(a, trc, e) != 0)
        goto out;
    if (store_branch_get(a->st, req->workspace_id, b.id, &b, e) != 0)
        goto out;
    resp->status = 201;
    resp->body = json_pack("{s:o}", "data", shape_branch(a, &b, &p));
    rc = 0;
out:
    json_decref(body);
    return rc;
}

HANDLER(h_branch_get)
{
    app *a = ctx;
    store_branch b;
    store_project p;
    if (load_branch(a, req, &b, &p, e) != 0)
        return -1;
    resp->body = json_pack("{s:o}", "data", shape_branch(a, &b, &p));
    return 0;
}

HANDLER(h_branch_patch)
{
    app *a = ctx;
    store_branch b;
    store_project p;
    if (load_branch(a, req, &b, &p, e) != 0)
        return -1;
    json_t *body = NULL;
    if (http_json_body(req, true, &body, e) != 0)
        return -1;
    int rc = -1;
    const char *key;
    json_t *val;
    json_object_foreach(body, key, val)
    {
        if (strcmp(key, "isDefault") != 0) {
            err_set(e, 422, "ValidationError", key,
                    "The field '%s' cannot be changed; only 'isDefault' can", key);
            goto out;
        }
    }
    json_t *d = json_object_get(body, "isDefault");
    if (d && !json_is_null(d)) {
        if (!json_is_boolean(d)) {
            err_set(e, 422, "ValidationError", "isDefault",
                    "The field 'isDefault' must be a boolean");
            goto out;
        }
        if (json_is_false(d) && b.is_default) {
            err_set(e, 422, "ValidationError", "isDefault",
                    "The default branch cannot be demoted; make another branch the default");
            goto out;
        }
        if (json_is_true(d) && !b.is_default) {
            if (store_branch_set_default(a->st, b.id, e) != 0)
                goto out;
            if (store_branch_get(a->st, req->workspace_id, b.id, &b, e) != 0)
                goto out;
        }
    }
    resp->body = json_pack("{s:o}", "data", shape_branch(a, &b, &p));
    rc = 0;
out:
    json_decref(body);
    return rc;
}

HANDLER(h_branch_delete)
{
    app *a = ctx;
    store_branch b;
    store_project p;
    if (load_branch(a, req, &b, &p, e) != 0)
        return -1;
    if (b.production)
        return err_set(e, 422, "ValidationError", "branchId",
                       "Branch %s is the project's production branch and cannot be deleted", b.id);
    if (b.is_default)
        return err_set(e, 422, "ValidationError", "branchId",
                       "Branch %s is the project's default branch and cannot be deleted; make "
                       "another branch the default first",
                       b.id);
    int count = 0;
    if (store_branch_database_count(a->st, b.id, &count, e) != 0)
        return -1;
    if (count > 0)
        return err_set(e, 409, "Conflict", "branchId",
                       "Branch %s still has %d database(s); delete or move them first", b.id,
                       count);
    if (store_branch_delete(a->st, b.id, e) != 0)
        return -1;
    resp->status = 204;
    return 0;
}
