/* store/projects: projects (their settings, their move to another workspace) and their branches
 * (exactly one default branch per project; the first one is the production branch). */
#include <stdlib.h>
#include <string.h>

#include "store/sql.h"

#define PROJ_COLS                                                                                  \
    "p.id, p.workspace_id, p.name, p.logical_id, p.default_region, p.created_at, p.expires_at"
static const sql_col proj_cols[] = {
    COL_TEXT(store_project, id),
    COL_TEXT(store_project, workspace_id),
    COL_TEXT(store_project, name),
    COL_TEXT(store_project, logical_id),
    COL_TEXT(store_project, default_region),
    COL_TEXT(store_project, created_at),
    COL_TEXT(store_project, expires_at),
};
static const sql_row proj_row = SQL_ROW(store_project, proj_cols);

#define BR_COLS                                                                                    \
    "b.id, b.project_id, b.git_name, b.is_default, b.role = 'production', b.created_at,"           \
    " b.updated_at"
static const sql_col br_cols[] = {
    COL_TEXT(store_branch, id),         COL_TEXT(store_branch, project_id),
    COL_TEXT(store_branch, git_name),   COL_BOOL(store_branch, is_default),
    COL_BOOL(store_branch, production), COL_TEXT(store_branch, created_at),
    COL_TEXT(store_branch, updated_at),
};

typedef struct settings_row {
    char json[STORE_SETTINGS_MAX];
} settings_row;
static const sql_col settings_cols[] = {COL_TEXT(settings_row, json)};
static const sql_row settings_sql_row = SQL_ROW(settings_row, settings_cols);
static const sql_row br_row = SQL_ROW(store_branch, br_cols);

static sql_stmt q_proj_insert =
    SQL_FK("INSERT INTO projects (id, workspace_id, name, logical_id, default_region,"
           " created_at, updated_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)",
           "workspaceId", "The project's workspace");
static sql_stmt q_proj_get =
    SQL("SELECT " PROJ_COLS " FROM projects p WHERE p.id = ?1 AND p.workspace_id = ?2");
static sql_stmt q_proj_list = SQL("SELECT " PROJ_COLS " FROM projects p"
                                  " WHERE p.seq > ?1 AND p.workspace_id = ?3"
                                  "   AND (?4 IS NULL OR p.logical_id = ?4)"
                                  " ORDER BY p.seq LIMIT ?2");
static sql_stmt q_proj_seq = SQL("SELECT seq FROM projects WHERE id = ?1 AND workspace_id = ?2");
static sql_stmt q_proj_rename = SQL("UPDATE projects SET name = ?3, updated_at = ?4"
                                    " WHERE id = ?1 AND workspace_id = ?2");
static sql_stmt q_proj_settings =
    SQL("SELECT p.settings FROM projects p WHERE p.id = ?1 AND p.workspace_id = ?2");
static sql_stmt q_proj_set_settings = SQL("UPDATE projects SET settings = ?3, updated_at = ?4"
                                          " WHERE id = ?1 AND workspace_id = ?2");
static sql_stmt q_proj_move_conns =
    SQL("UPDATE connections SET workspace_id = ?2, updated_at = ?3"
        " WHERE database_id IN (SELECT id FROM databases WHERE project_id = ?1)");
static sql_stmt q_proj_move_dbs =
    SQL("UPDATE databases SET workspace_id = ?2, updated_at = ?3 WHERE project_id = ?1");
/* a transfer is a claim: the new owner keeps the project, so its expiry ends */
static sql_stmt q_proj_move = SQL_FK("UPDATE projects SET workspace_id = ?3, updated_at = ?4,"
                                     " expires_at = NULL"
                                     " WHERE id = ?1 AND workspace_id = ?2",
                                     "recipientAccessToken", "The recipient workspace");
static sql_stmt q_proj_set_expiry = SQL("UPDATE projects SET expires_at = ?3, updated_at = ?4"
                                        " WHERE id = ?1 AND workspace_id = ?2");
/* ISO-8601 UTC texts of one format (util_iso_from_ms) compare as times */
static sql_stmt q_proj_expired = SQL("SELECT " PROJ_COLS " FROM projects p"
                                     " WHERE p.expires_at IS NOT NULL AND p.expires_at <= ?1"
                                     " ORDER BY p.expires_at LIMIT ?2");
static sql_stmt q_proj_del_branches = SQL("DELETE FROM branches WHERE project_id = ?1");
static sql_stmt q_proj_delete = SQL("DELETE FROM projects WHERE id = ?1 AND workspace_id = ?2");

/* the project's first branch: its production branch and its default */
static sql_stmt q_br_insert =
    SQL_FK("INSERT INTO branches (id, project_id, git_name, is_default, role, created_at,"
           " updated_at)"
           " SELECT ?1, ?2, ?3, CASE WHEN f.first THEN 1 ELSE ?4 END,"
           "        CASE WHEN f.first THEN 'production' ELSE 'preview' END, ?5, ?6"
           " FROM (SELECT NOT EXISTS (SELECT 1 FROM branches WHERE project_id = ?2) AS first) f",
           "projectId", "The branch's project");
static sql_stmt q_br_get = SQL("SELECT " BR_COLS " FROM branches b JOIN projects p"
                               " ON p.id = b.project_id WHERE b.id = ?1 AND p.workspace_id = ?2");
static sql_stmt q_br_by_git_name =
    SQL("SELECT " BR_COLS " FROM branches b WHERE b.project_id = ?1 AND b.git_name = ?2");
static sql_stmt q_br_default =
    SQL("SELECT " BR_COLS " FROM branches b WHERE b.project_id = ?1 AND b.is_default = 1");
static sql_stmt q_br_list = SQL("SELECT " BR_COLS " FROM branches b"
                                " WHERE b.seq > ?1 AND b.project_id = ?3"
                                "   AND (?4 IS NULL OR b.git_name = ?4)"
                                "   AND (?5 IS NULL OR instr(b.git_name, ?5) > 0)"
                                " ORDER BY b.seq LIMIT ?2");
static sql_stmt q_br_seq = SQL("SELECT seq FROM branches WHERE id = ?1 AND project_id = ?2");
static sql_stmt q_br_project_of = SQL("SELECT " BR_COLS " FROM branches b WHERE b.id = ?1");
static sql_stmt q_br_clear_default = SQL("UPDATE branches SET is_default = 0, updated_at = ?3"
                                         " WHERE project_id = ?1 AND is_default = 1 AND id <> ?2");
static sql_stmt q_br_set_default =
    SQL("UPDATE branches SET is_default = 1, updated_at = ?2 WHERE id = ?1");
static sql_stmt q_br_delete = SQL("DELETE FROM branches WHERE id = ?1");
static sql_stmt q_br_db_count =
    SQL("SELECT COUNT(*) FROM databases WHERE branch_id = ?1 AND status <> 'deleting'");

/* ---- projects ---- */

int store_project_insert(store *s, const store_project *p, pf_err *e)
{
    return sql_run(s, &q_proj_insert,
                   ARGS(TXT(p->id), TXT(p->workspace_id), TXT(p->name), OPT(p->logical_id),
                        OPT(p->default_region), TXT(p->created_at), OPT(p->expires_at)),
                   e);
}

int store_project_get(store *s, const char *ws, const char *id, store_project *out, pf_err *e)
{
    return sql_get(s, &q_proj_get, ARGS(TXT(id), TXT(ws)), &proj_row, out, "projectId", "Project",
                   id, e);
}

int store_project_list(store *s, const char *ws, const char *logical_id, const store_page *pg,
                       store_project **out, size_t *n, store_page_out *po, pf_err *e)
{
    return sql_page(s, &q_proj_seq, ws, &q_proj_list, pg, ARGS(TXT(ws), TXT(logical_id)), &proj_row,
                    (void **)out, n, po, e);
}

int store_project_update_name(store *s, const char *ws, const char *id, const char *name, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    return sql_touch(s, &q_proj_rename, ARGS(TXT(id), TXT(ws), TXT(name), TXT(now)), "projectId",
                     "Project", id, e);
}

int store_project_delete(store *s, const char *ws, const char *id, pf_err *e)
{
    store_project p;
    if (sql_begin(s, e) != 0)
        return -1;
    int rc = store_project_get(s, ws, id, &p, e);
    if (rc == 0)
        rc = sql_run(s, &q_proj_del_branches, ARGS(TXT(id)), e);
    if (rc == 0)
        rc = sql_run(s, &q_proj_delete, ARGS(TXT(id), TXT(ws)), e);
    return sql_end(s, rc, e);
}

int store_project_settings(store *s, const char *ws, const char *id, char out[STORE_SETTINGS_MAX],
                           pf_err *e)
{
    settings_row *r = xcalloc(1, sizeof *r);
    int rc = sql_get(s, &q_proj_settings, ARGS(TXT(id), TXT(ws)), &settings_sql_row, r, "projectId",
                     "Project", id, e);
    if (rc == 0)
        memcpy(out, r->json, sizeof r->json);
    free(r);
    return rc;
}

int store_project_set_settings(store *s, const char *ws, const char *id, const char *json,
                               pf_err *e)
{
    if (json && strlen(json) >= STORE_SETTINGS_MAX)
        return err_set(e, 422, "ValidationError", "settings",
                       "The project's settings take at most %d bytes as JSON",
                       STORE_SETTINGS_MAX - 1);
    char now[STORE_TS_MAX];
    util_now_iso(now);
    return sql_touch(s, &q_proj_set_settings, ARGS(TXT(id), TXT(ws), OPT(json), TXT(now)),
                     "projectId", "Project", id, e);
}

int store_project_set_expiry(store *s, const char *ws, const char *id, const char *expires_at,
                             pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    return sql_touch(s, &q_proj_set_expiry, ARGS(TXT(id), TXT(ws), OPT(expires_at), TXT(now)),
                     "projectId", "Project", id, e);
}

int store_project_expired(store *s, const char *now, store_project **out, size_t *n, size_t max,
                          pf_err *e)
{
    bool more = false;
    return sql_all(s, &q_proj_expired, ARGS(TXT(now), INT(max)), &proj_row, (void **)out, n, max,
                   &more, e);
}

int store_project_transfer(store *s, const char *from, const char *id, const char *to, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    store_project p;
    if (sql_begin(s, e) != 0)
        return -1;
    int rc = store_project_get(s, from, id, &p, e);
    if (rc == 0)
        rc = sql_run(s, &q_proj_move_conns, ARGS(TXT(id), TXT(to), TXT(now)), e);
    if (rc == 0)
        rc = sql_run(s, &q_proj_move_dbs, ARGS(TXT(id), TXT(to), TXT(now)), e);
    if (rc == 0)
        rc = sql_touch(s, &q_proj_move, ARGS(TXT(id), TXT(from), TXT(to), TXT(now)), "projectId",
                       "Project", id, e);
    return sql_end(s, rc, e);
}

/* ---- branches ---- */

int store_branch_insert(store *s, const store_branch *b, pf_err *e)
{
    const char *updated = b->updated_at[0] ? b->updated_at : b->created_at;
    return sql_run(s, &q_br_insert,
                   ARGS(TXT(b->id), TXT(b->project_id), TXT(b->git_name),
                        INT(b->is_default ? 1 : 0), TXT(b->created_at), TXT(updated)),
                   e);
}

int store_branch_get(store *s, const char *ws, const char *id, store_branch *out, pf_err *e)
{
    return sql_get(s, &q_br_get, ARGS(TXT(id), TXT(ws)), &br_row, out, "branchId", "Branch", id, e);
}

int store_branch_by_git_name(store *s, const char *project_id, const char *git_name,
                             store_branch *out, pf_err *e)
{
    return sql_get(s, &q_br_by_git_name, ARGS(TXT(project_id), TXT(git_name)), &br_row, out,
                   "gitName", "Branch", git_name, e);
}

int store_branch_default(store *s, const char *project_id, store_branch *out, pf_err *e)
{
    int got = sql_one(s, &q_br_default, ARGS(TXT(project_id)), &br_row, out, e);
    if (got == 0)
        return err_set(e, 404, "NotFound", "branchId", "Project %s has no default branch",
                       project_id);
    return got < 0 ? -1 : 0;
}

int store_branch_list(store *s, const char *project_id, const char *git_name,
                      const char *git_name_contains, const store_page *pg, store_branch **out,
                      size_t *n, store_page_out *po, pf_err *e)
{
    return sql_page(s, &q_br_seq, project_id, &q_br_list, pg,
                    ARGS(TXT(project_id), TXT(git_name), TXT(git_name_contains)), &br_row,
                    (void **)out, n, po, e);
}

int store_branch_set_default(store *s, const char *id, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    store_branch b;
    if (sql_begin(s, e) != 0)
        return -1;
    int rc = sql_get(s, &q_br_project_of, ARGS(TXT(id)), &br_row, &b, "branchId", "Branch", id, e);
    if (rc == 0)
        rc = sql_run(s, &q_br_clear_default, ARGS(TXT(b.project_id), TXT(id), TXT(now)), e);
    if (rc == 0)
        rc = sql_run(s, &q_br_set_default, ARGS(TXT(id), TXT(now)), e);
    return sql_end(s, rc, e);
}

int store_branch_delete(store *s, const char *id, pf_err *e)
{
    return sql_touch(s, &q_br_delete, ARGS(TXT(id)), "branchId", "Branch", id, e);
}

int store_branch_database_count(store *s, const char *id, int *count, pf_err *e)
{
    int64_t v = 0;
    if (sql_int(s, &q_br_db_count, ARGS(TXT(id)), &v, e) < 0)
        return -1;
    *count = (int)v;
    return 0;
}
