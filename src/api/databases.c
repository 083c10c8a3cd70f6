/* Databases: create (empty, from a backup, or a clone of a live database), list (in the
 * workspace or a project), get, patch and delete. A create records the database, its default
 * connection and the provision (or restore, clone) op in one transaction and answers
 * `provisioning`; a delete waits for its op. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"

/* Validates `source` (and the deprecated `fromDatabase`) and fills r's source fields:
 * a backup of a database of this workspace, or a live database to clone. */
static int check_source(app *a, http_req *req, json_t *body, db_create_req *r, backup_source *bs,
                        pf_err *e)
{
    json_t *src = json_object_get(body, "source");
    json_t *from = json_object_get(body, "fromDatabase");
    if (from && !json_is_null(from)) {
        if (src && !json_is_null(src))
            return err_set(e, 400, "ValidationError", "fromDatabase",
                           "'fromDatabase' is deprecated and cannot be combined with 'source'");
        if (!json_is_object(from))
            return err_set(e, 400, "ValidationError", "fromDatabase",
                           "'fromDatabase' must be an object like {\"id\":\"db_...\"}");
        json_t *id = json_object_get(from, "id"), *bk = json_object_get(from, "backupId");
        if (!json_is_string(id))
            return err_set(e, 400, "ValidationError", "fromDatabase.id",
                           "'fromDatabase.id' is required and must be a string");
        /* the same request written with `source` */
        json_t *conv =
            bk && !json_is_null(bk)
                ? json_pack("{s:s, s:O, s:O}", "type", "backup", "databaseId", id, "backupId", bk)
                : json_pack("{s:s, s:O}", "type", "database", "databaseId", id);
        json_object_set_new(body, "source", conv);
        src = conv;
    }
    if (!src || json_is_null(src))
        return 0;
    if (!json_is_object(src))
        return err_set(e, 400, "ValidationError", "source",
                       "The field 'source' must be an object like {\"type\":\"empty\"}");
    json_t *t = json_object_get(src, "type");
    if (!json_is_string(t))
        return err_set(e, 400, "ValidationError", "source.type",
                       "The field 'source.type' is required and must be a string");
    const char *type = json_string_value(t);
    if (strcmp(type, "empty") == 0)
        return 0;
    if (strcmp(type, "backup") == 0) {
        if (api_backup_source(a, req->workspace_id, src, 400, bs, e) != 0)
            return -1;
        r->source_type = "backup";
        r->source_db = &bs->db;
        r->source_backup = &bs->backup;
        r->point_in_time = bs->point_in_time;
        return 0;
    }
    if (strcmp(type, "database") == 0) {
        const char *db_id;
        if (v_string(src, "databaseId", true, false, 64, 400, &db_id, e) != 0) {
            snprintf(e->hint, sizeof e->hint, "source.databaseId");
            return -1;
        }
        if (load_database(a, req->workspace_id, db_id, "source.databaseId", &bs->db, e) != 0)
            return -1;
        if (bs->db.status != DB_READY)
            return err_set(e, 409, "Conflict", "source.databaseId",
                           "Database %s is %s; only a ready database can be cloned", bs->db.id,
                           store_db_status_name(bs->db.status));
        r->source_type = "database";
        r->source_db = &bs->db;
        return 0;
    }
    return err_set(e, 400, "ValidationError", "source.type",
                   "Unknown source type '%s'; use 'empty', 'backup' or 'database'", type);
}

/* branchId / branchGitName: strings, never null, mutually exclusive. */
static int check_branch_fields(json_t *body, const char **branch_id, const char **git_name,
                               pf_err *e)
{
    if (json_is_null(json_object_get(body, "branchId")))
        return err_set(e, 400, "ValidationError", "branchId",
                       "Every database belongs to a branch: 'branchId' cannot be null");
    if (json_is_null(json_object_get(body, "branchGitName")))
        return err_set(e, 400, "ValidationError", "branchGitName",
                       "Every database belongs to a branch: 'branchGitName' cannot be null");
    if (v_string(body, "branchId", false, false, 64, 400, branch_id, e) != 0 ||
        v_string(body, "branchGitName", false, false, NAME_MAX_LEN, 400, git_name, e) != 0)
        return -1;
    if (*branch_id && *git_name)
        return err_set(e, 400, "ValidationError", "branchGitName",
                       "'branchId' and 'branchGitName' are mutually exclusive");
    return 0;
}

/* The body both create endpoints share; project_id comes from the path or the body. */
static int create_body(app *a, http_req *req, json_t *body, const char *project_id, bool with_keys,
                       http_resp *resp, pf_err *e)
{
    const char *name, *region_in, *branch_id, *git_name, *logical_id;
    int is_default;
    if (v_string(body, "name", false, false, NAME_MAX_LEN, 400, &name, e) != 0 ||
        v_string(body, "region", false, false, 64, 400, &region_in, e) != 0 ||
        v_bool(body, "isDefault", 400, &is_default, e) != 0 ||
        v_string(body, "logicalId", false, false, NAME_MAX_LEN, 400, &logical_id, e) != 0 ||
        check_branch_fields(body, &branch_id, &git_name, e) != 0)
        return -1;
    if (logical_id && git_name)
        return err_set(e, 400, "ValidationError", "logicalId",
                       "'logicalId' cannot be combined with 'branchGitName'; pass 'branchId' "
                       "instead");
    store_project p;
    if (load_project(a, req->workspace_id, project_id, "projectId", &p, e) != 0)
        return -1;
    const char *region;
    if (region_in && strcmp(region_in, "inherit") == 0)
        region_in = p.default_region[0] ? p.default_region : NULL;
    if (api_region_resolve(a, region_in, &region, e) != 0)
        return -1;
    db_create_req r = {.project_id = p.id,
                       .name = name,
                       .region = region,
                       .branch_id = branch_id,
                       .branch_git_name = git_name,
                       .logical_id = logical_id,
                       .is_default = is_default == 1};
    backup_source bs;
    if (check_source(a, req, body, &r, &bs, e) != 0)
        return -1;
    store_database db;
    store_connection conn;
    char password[64] = "";
    if (store_tx_begin(a->st, e) != 0)
        return -1;
    if (tx_end_create(a, action_create_database(a, req->workspace_id, &r, &db, &conn, password, e),
                      &db, e) != 0)
        return -1;
    json_t *j = NULL;
    if (shape_database(a, &db, conn.id, password, with_keys, &j, e) != 0)
        return -1;
    resp->status = 201;
    resp->body = json_pack("{s:o}", "data", j);
    return 0;
}

/* Both create endpoints: the project comes from the path (path_project; an empty body is
 * allowed and the answer carries the keys) or from the body's projectId (NULL). */
static int create_common(app *a, http_req *req, const char *path_project, http_resp *resp,
                         pf_err *e)
{
    json_t *body = NULL;
    if (http_json_body(req, path_project != NULL, &body, e) != 0)
        return -1;
    const char *project_id = path_project;
    int rc = path_project ? 0 : v_string(body, "projectId", true, false, 64, 400, &project_id, e);
    if (rc == 0)
        rc = create_body(a, req, body, project_id, path_project != NULL, resp, e);
    json_decref(body);
    return rc;
}

HANDLER(h_databases_create)
{
    return create_common(ctx, req, NULL, resp, e);
}

HANDLER(h_project_databases_create)
{
    return create_common(ctx, req, req->params[0], resp, e);
}

/* What the rows of a page need, read once for the page: the connections of its databases
 * (by database id, oldest first) and their projects (few: read as met). */
typedef struct db_page {
    store_connection *conns;
    size_t nconns;
    store_project *projects;
    size_t nprojects, cap;
} db_page;

static const store_project *page_project(app *a, db_page *pg, const store_database *d, pf_err *e)
{
    for (size_t i = 0; i < pg->nprojects; i++)
        if (strcmp(pg->projects[i].id, d->project_id) == 0)
            return &pg->projects[i];
    util_grow((void **)&pg->projects, &pg->cap, pg->nprojects + 1, sizeof *pg->projects);
    if (store_project_get(a->st, d->workspace_id, d->project_id, &pg->projects[pg->nprojects], e) !=
        0)
        return NULL;
    return &pg->projects[pg->nprojects++];
}

/* The text of database d's item, kept (a->items) under the revision rev the page read;
 * referenced for the caller. */
static const textcache_text *make_item(app *a, db_page *pg, const store_database *d, int64_t rev,
                                       pf_err *e)
{
    const store_project *p = page_project(a, pg, d, e);
    if (!p)
        return NULL;
    /* the first connection of d: a lower bound in the sorted connections */
    size_t lo = 0, hi = pg->nconns;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(pg->conns[mid].database_id, d->id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t end = lo;
    while (end < pg->nconns && strcmp(pg->conns[end].database_id, d->id) == 0)
        end++;
    jsonw w = {0};
    shape_database_read_w(a, &w, NULL, d, p, pg->conns + lo, end - lo);
    size_t len = w.b.len;
    return textcache_keep(a->items, d->id, rev, util_buf_take(&w.b), len);
}

/* Makes the items of refs[0..n) that no text was kept for (items[i] NULL), from their rows
 * read now (the same read as refs: the rows are there, in the page's order). Most of a page
 * missing (a first page, every item changed): the page's rows are read as a range, else by
 * ids. */
static int make_items(app *a, const char *ws, const store_db_filter *f, const store_page *pg,
                      const store_database_rev *refs, size_t n, const textcache_text **items,
                      pf_err *e)
{
    const char **ids = xcalloc(n, sizeof *ids);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!items[i])
            ids[k++] = refs[i].id;
    bool whole = k * 2 > n;
    store_database *rows = NULL;
    size_t m = 0;
    db_page dp = {0};
    int rc = whole ? store_database_list(a->st, ws, f, pg, &rows, &m, NULL, e)
                   : store_database_list_of(a->st, ids, k, &rows, &m, e);
    if (rc == 0 && m != (whole ? n : k))
        rc = err_internal(e, "api: %zu of a page's %zu rows read again", m, whole ? n : k);
    if (rc == 0)
        rc = store_connection_list_for_dbs(a->st, ids, k, &dp.conns, &dp.nconns, e);
    free(ids);
    for (size_t i = 0, j = 0; i < n && rc == 0; i++) {
        if (items[i])
            continue;
        const store_database *d = whole ? &rows[i] : &rows[j++];
        if (strcmp(d->id, refs[i].id) != 0)
            rc = err_internal(e, "api: a page's rows moved within one read");
        else if (!(items[i] = make_item(a, &dp, d, refs[i].rev, e)))
            rc = -1;
    }
    free(dp.conns);
    free(dp.projects);
    free(rows);
    return rc;
}

static int item_row(app *a, const void *row, void *arg, jsonw *w, pf_err *e)
{
    (void)a, (void)arg, (void)e;
    const textcache_text *t = row;
    jsonw_raw(w, NULL, t->s, t->len);
    return 0;
}

/* A page of databases: its ids and revisions read first; each item's text copied from
 * a->items when kept under the same revision, else made from its rows (make_items). */
static int list_common(app *a, http_req *req, const store_db_filter *f, http_resp *resp, pf_err *e)
{
    store_page pg;
    if (v_page(req, &pg, e) != 0)
        return -1;
    store_database_rev *refs = NULL;
    size_t n = 0;
    store_page_out po;
    /* the page and the rows each item needs (its project, its connections) are one read:
     * a database deleted meanwhile is listed whole or not at all */
    if (store_tx_begin_read(a->st, e) != 0)
        return -1;
    int rc = store_database_list_revs(a->st, req->workspace_id, f, &pg, &refs, &n, &po, e);
    const textcache_text **items = xcalloc(n ? n : 1, sizeof *items);
    bool all_kept = true;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        items[i] = textcache_get(a->items, refs[i].id, refs[i].rev);
        all_kept = all_kept && items[i];
    }
    if (rc == 0 && !all_kept)
        rc = make_items(a, req->workspace_id, f, &pg, refs, n, items, e);
    if (rc == 0) {
        textcache_text *texts = xcalloc(n ? n : 1, sizeof *texts); /* api_list_reply frees it */
        for (size_t i = 0; i < n; i++)
            texts[i] = *items[i];
        rc = api_list_reply(a, resp, texts, n, sizeof *texts, item_row, NULL, &po, e);
    }
    for (size_t i = 0; i < n; i++)
        if (items[i])
            textcache_release(items[i]);
    free(items);
    free(refs);
    return read_end(a, rc, resp, e);
}

HANDLER(h_databases_list)
{
    app *a = ctx;
    store_db_filter f = {.project_id = http_query(req, "projectId"),
                         .logical_id = http_query(req, "logicalId"),
                         .branch_id = http_query(req, "branchId"),
                         .branch_git_name = http_query(req, "branchGitName")};
    if (f.branch_id && f.branch_git_name)
        return err_set(e, 400, "ValidationError", "branchGitName",
                       "The filters 'branchId' and 'branchGitName' are mutually exclusive");
    return list_common(a, req, &f, resp, e);
}

HANDLER(h_project_databases_list)
{
    app *a = ctx;
    store_project p;
    if (load_project(a, req->workspace_id, req->params[0], "projectId", &p, e) != 0)
        return -1;
    store_db_filter f = {.project_id = p.id};
    return list_common(a, req, &f, resp, e);
}

HANDLER(h_database_get)
{
    app *a = ctx;
    store_database d;
    /* the database and what its shape needs (project, connections): one read */
    if (store_tx_begin_read(a->st, e) != 0)
        return -1;
    int rc = load_path_database(a, req, &d, e);
    if (rc == 0)
        rc = reply_database(a, NULL, &d, resp, e);
    return read_end(a, rc, resp, e);
}

HANDLER(h_database_patch)
{
    app *a = ctx;
    store_database d;
    if (load_path_database(a, req, &d, e) != 0)
        return -1;
    json_t *body = NULL;
    if (http_json_body(req, false, &body, e) != 0)
        return -1;
    int rc = -1;
    const char *name, *branch_id, *git_name, *logical_id;
    int is_default;
    if (v_string(body, "name", false, false, NAME_MAX_LEN, 400, &name, e) != 0 ||
        v_string(body, "logicalId", false, false, NAME_MAX_LEN, 400, &logical_id, e) != 0 ||
        v_bool(body, "isDefault", 400, &is_default, e) != 0 ||
        check_branch_fields(body, &branch_id, &git_name, e) != 0)
        goto out;
    /* 409, the contract's one 4xx about logicalId here */
    if (logical_id && (branch_id || git_name)) {
        err_set(e, 409, "Conflict", "logicalId",
                "'logicalId' cannot be combined with '%s' in one request; move the database "
                "first, then set its logicalId",
                branch_id ? "branchId" : "branchGitName");
        goto out;
    }
    if (is_default == 0 && d.is_default) {
        err_set(e, 409, "Conflict", "isDefault",
                "Database %s is its project's default database; make another database the "
                "default instead (PATCH it with isDefault: true)",
                d.id);
        goto out;
    }
    if (store_tx_begin(a->st, e) != 0)
        goto out;
    int trc = 0;
    if (is_default == 1 && !d.is_default)
        trc = store_database_set_default(a->st, d.project_id, d.id, e);
    const char *new_branch = NULL;
    store_branch br;
    if (trc == 0 && (branch_id || git_name)) {
        trc =
            action_resolve_branch(a, req->workspace_id, d.project_id, branch_id, git_name, &br, e);
        new_branch = br.id;
    }
    if (trc == 0)
        trc = store_database_update(a->st, d.id, name, new_branch, logical_id, e);
    /* answered with the row as the change left it */
    if (tx_end(a, trc, e) != 0 || reply_database(a, req->workspace_id, &d, resp, e) != 0)
        goto out;
    rc = 0;
out:
    json_decref(body);
    return rc;
}

HANDLER(h_database_delete)
{
    app *a = ctx;
    store_database d;
    if (load_path_database(a, req, &d, e) != 0)
        return -1;
    if (d.is_default)
        return err_set(e, 403, "Forbidden", "databaseId",
                       "Database %s is its project's default database and cannot be deleted on "
                       "its own; delete the project to remove it",
                       d.id);
    char op_id[PF_ID_MAX];
    if (store_tx_begin(a->st, e) != 0)
        return -1;
    if (tx_end(a, action_delete_database(a, &d, op_id, e), e) != 0)
        return -1;
    textcache_drop(a->items, d.id); /* no page lists it again: it would wait for the clock */
    /* answer once the server is stopped and its port free, as the client expects */
    if (action_wait_op(a, resp, op_id, e) != 0)
        return -1;
    resp->status = 204;
    return 0;
}
