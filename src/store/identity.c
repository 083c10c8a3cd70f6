/* store: identity queries (schema version 2) behind the last section of store.h.
 *
 * These statements are prepared per call (identity traffic is sign-ins, token exchanges
 * and one grant lookup per OAuth request) on the calling thread's connection, so they join
 * any transaction store_tx_begin opened on that thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_intern.h"

typedef struct q {
    sqlite3 *db;
    sqlite3_stmt *st;
} q;

/* Prepares sql on this thread's connection; -1 with e filled on failure. */
static int q_prep(store *s, q *x, const char *sql, pf_err *e)
{
    x->st = NULL;
    x->db = store__db(s, e);
    if (!x->db)
        return -1;
    if (sqlite3_prepare_v2(x->db, sql, -1, &x->st, NULL) != SQLITE_OK)
        return err_internal(e, "store: prepare: %s", sqlite3_errmsg(x->db));
    return 0;
}

/* Binders: strings are bound SQLITE_STATIC (they outlive the step); q_opt binds NULL and
 * "" as SQL NULL. */
static void q_text(q *x, int i, const char *v)
{
    sqlite3_bind_text(x->st, i, v, -1, SQLITE_STATIC);
}

static void q_opt(q *x, int i, const char *v)
{
    if (v && v[0])
        sqlite3_bind_text(x->st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(x->st, i);
}

static void q_int(q *x, int i, int64_t v)
{
    sqlite3_bind_int64(x->st, i, v);
}

static void q_end(q *x)
{
    sqlite3_finalize(x->st);
    x->st = NULL;
}

/* Runs a write to completion. conflict_hint/what describe a unique violation (409). */
static int q_write(q *x, const char *conflict_hint, const char *conflict_what, pf_err *e)
{
    int rc = sqlite3_step(x->st);
    int ret = 0;
    if (rc != SQLITE_DONE) {
        if ((rc & 0xff) == SQLITE_CONSTRAINT && conflict_hint &&
            (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY))
            ret = err_set(e, 409, "Conflict", conflict_hint, "%s already exists", conflict_what);
        else if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
            ret = err_set(e, 404, "NotFound", NULL, "A referenced row was not found");
        else
            ret = err_internal(e, "store: write: %s", sqlite3_errmsg(x->db));
    }
    q_end(x);
    return ret;
}

static int q_changes(q *x)
{
    return sqlite3_changes(x->db);
}

typedef void (*q_row_fn)(sqlite3_stmt *st, void *dst);

/* One row: 0 = read, 404 error when absent (what names it), -1 on failure. */
static int q_one(q *x, q_row_fn read, void *out, const char *hint, const char *what, pf_err *e)
{
    int rc = sqlite3_step(x->st);
    int ret = 0;
    if (rc == SQLITE_ROW)
        read(x->st, out);
    else if (rc == SQLITE_DONE)
        ret = err_set(e, 404, "NotFound", hint, "%s was not found", what);
    else
        ret = err_internal(e, "store: query: %s", sqlite3_errmsg(x->db));
    q_end(x);
    return ret;
}

/* All rows (at most max; 0 = no limit) into a new array. */
static int q_all(q *x, size_t elem, q_row_fn read, void **out, size_t *n, size_t max, bool *more,
                 pf_err *e)
{
    size_t cap = 8, k = 0;
    char *arr = xcalloc(cap, elem);
    int rc;
    if (more)
        *more = false;
    while ((rc = sqlite3_step(x->st)) == SQLITE_ROW) {
        if (max && k == max) {
            if (more)
                *more = true;
            rc = SQLITE_DONE;
            break;
        }
        if (k == cap) {
            char *bigger = xcalloc(cap * 2, elem);
            memcpy(bigger, arr, cap * elem);
            free(arr);
            arr = bigger;
            cap *= 2;
        }
        read(x->st, arr + k * elem);
        k++;
    }
    if (rc != SQLITE_DONE) {
        err_internal(e, "store: list: %s", sqlite3_errmsg(x->db));
        q_end(x);
        free(arr);
        return -1;
    }
    q_end(x);
    *out = arr;
    *n = k;
    return 0;
}

static void col(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    size_t n = t ? (size_t)sqlite3_column_bytes(st, i) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, t, n);
    dst[n] = '\0';
}

/* Paging in either direction: the cursor is the id of the last row of the previous page;
 * seq_sql looks its seq up within the same scope. */
static int page_after(store *s, const char *seq_sql, const char *ws, const store_page *pg,
                      int64_t *seq, pf_err *e)
{
    *seq = 0;
    if (pg->limit < 1 || pg->limit > 100)
        return err_set(e, 400, "ValidationError", "limit", "limit must be between 1 and 100");
    if (!pg->cursor || !pg->cursor[0])
        return 0;
    q x;
    if (q_prep(s, &x, seq_sql, e) != 0)
        return -1;
    q_text(&x, 1, pg->cursor);
    q_text(&x, 2, ws);
    int rc = sqlite3_step(x.st);
    if (rc == SQLITE_ROW)
        *seq = sqlite3_column_int64(x.st, 0);
    q_end(&x);
    if (rc == SQLITE_ROW)
        return 0;
    if (rc == SQLITE_DONE)
        return err_set(e, 400, "ValidationError", "cursor", "The cursor is not valid");
    return err_internal(e, "store: cursor lookup failed");
}

static void page_out(store_page_out *po, bool more, const void *arr, size_t n, size_t elem)
{
    if (!po)
        return;
    po->has_more = more;
    po->next_cursor[0] = '\0';
    if (more && n > 0)
        snprintf(po->next_cursor, sizeof po->next_cursor, "%s", (const char *)arr + (n - 1) * elem);
}

/* ---- users and memberships ---- */

#define USER_COLS "u.id, u.email, u.name, u.password_hash, u.created_at"

static void read_user(sqlite3_stmt *st, void *dst)
{
    store_user *u = dst;
    col(st, 0, u->id, sizeof u->id);
    col(st, 1, u->email, sizeof u->email);
    col(st, 2, u->name, sizeof u->name);
    col(st, 3, u->password_hash, sizeof u->password_hash);
    col(st, 4, u->created_at, sizeof u->created_at);
}

int store_user_insert(store *s, const store_user *u, pf_err *e)
{
    q x;
    if (q_prep(s, &x,
               "INSERT INTO users (id, email, name, password_hash, created_at)"
               " VALUES (?1, ?2, ?3, ?4, ?5)",
               e) != 0)
        return -1;
    q_text(&x, 1, u->id);
    q_text(&x, 2, u->email);
    q_opt(&x, 3, u->name);
    q_text(&x, 4, u->password_hash);
    q_text(&x, 5, u->created_at);
    return q_write(&x, "email", "A user with this email", e);
}

int store_user_get(store *s, const char *id, store_user *out, pf_err *e)
{
    q x;
    if (q_prep(s, &x, "SELECT " USER_COLS " FROM users u WHERE u.id = ?1", e) != 0)
        return -1;
    q_text(&x, 1, id);
    return q_one(&x, read_user, out, "userId", "The user", e);
}

int store_user_by_email(store *s, const char *email, store_user *out, pf_err *e)
{
    q x;
    if (q_prep(s, &x, "SELECT " USER_COLS " FROM users u WHERE u.email = ?1", e) != 0)
        return -1;
    q_text(&x, 1, email);
    return q_one(&x, read_user, out, "email", "The user", e);
}

int store_membership_add(store *s, const char *user_id, const char *ws, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    q x;
    if (q_prep(s, &x,
               "INSERT OR IGNORE INTO memberships (user_id, workspace_id, created_at)"
               " VALUES (?1, ?2, ?3)",
               e) != 0)
        return -1;
    q_text(&x, 1, user_id);
    q_text(&x, 2, ws);
    q_text(&x, 3, now);
    return q_write(&x, NULL, NULL, e);
}

static void read_nothing(sqlite3_stmt *st, void *dst)
{
    (void)st;
    (void)dst;
}

int store_membership_check(store *s, const char *user_id, const char *ws, pf_err *e)
{
    q x;
    if (q_prep(s, &x, "SELECT 1 FROM memberships WHERE user_id = ?1 AND workspace_id = ?2", e) != 0)
        return -1;
    q_text(&x, 1, user_id);
    q_text(&x, 2, ws);
    return q_one(&x, read_nothing, NULL, "workspaceId", "The workspace", e);
}

static void read_ws(sqlite3_stmt *st, void *dst)
{
    store_workspace *w = dst;
    col(st, 0, w->id, sizeof w->id);
    col(st, 1, w->name, sizeof w->name);
    col(st, 2, w->created_at, sizeof w->created_at);
}

int store_user_workspaces(store *s, const char *user_id, store_workspace **out, size_t *n,
                          pf_err *e)
{
    q x;
    if (q_prep(s, &x,
               "SELECT w.id, w.name, w.created_at FROM workspaces w"
               " JOIN memberships m ON m.workspace_id = w.id WHERE m.user_id = ?1"
               " ORDER BY w.seq",
               e) != 0)
        return -1;
    q_text(&x, 1, user_id);
    return q_all(&x, sizeof **out, read_ws, (void **)out, n, 0, NULL, e);
}

/* ---- OAuth clients ---- */

static void read_client(sqlite3_stmt *st, void *dst)
{
    store_oauth_client *c = dst;
    col(st, 0, c->id, sizeof c->id);
    col(st, 1, c->name, sizeof c->name);
    col(st, 2, c->redirect_uris, sizeof c->redirect_uris);
    col(st, 3, c->created_at, sizeof c->created_at);
}

int store_oauth_client_insert(store *s, const store_oauth_client *c, pf_err *e)
{
    q x;
    if (q_prep(s, &x,
               "INSERT INTO oauth_clients (id, name, redirect_uris, created_at)"
               " VALUES (?1, ?2, ?3, ?4)",
               e) != 0)
        return -1;
    q_text(&x, 1, c->id);
    q_text(&x, 2, c->name);
    q_text(&x, 3, c->redirect_uris);
    q_text(&x, 4, c->created_at);
    return q_write(&x, "id", "A client with this id", e);
}

int store_oauth_client_get(store *s, const char *id, store_oauth_client *out, pf_err *e)
{
    q x;
    if (q_prep(s, &x, "SELECT id, name, redirect_uris, created_at FROM oauth_clients WHERE id = ?1",
               e) != 0)
        return -1;
    q_text(&x, 1, id);
    return q_one(&x, read_client, out, "client_id", "The client", e);
}

/* ---- integrations ---- */

#define ITG_COLS "i.id, i.workspace_id, i.client_id, i.user_id, i.scope, i.created_at"

static void read_integration(sqlite3_stmt *st, void *dst)
{
    store_integration *i = dst;
    col(st, 0, i->id, sizeof i->id);
    col(st, 1, i->workspace_id, sizeof i->workspace_id);
    col(st, 2, i->client_id, sizeof i->client_id);
    col(st, 3, i->user_id, sizeof i->user_id);
    col(st, 4, i->scope, sizeof i->scope);
    col(st, 5, i->created_at, sizeof i->created_at);
}

int store_integration_by_client(store *s, const char *ws, const char *client_id,
                                store_integration *out, pf_err *e)
{
    q x;
    if (q_prep(s, &x,
               "SELECT " ITG_COLS " FROM integrations i"
               " WHERE i.workspace_id = ?1 AND i.client_id = ?2",
               e) != 0)
        return -1;
    q_text(&x, 1, ws);
    q_text(&x, 2, client_id);
    return q_one(&x, read_integration, out, "clientId", "The integration", e);
}

int store_integration_upsert(store *s, const char *ws, const char *client_id, const char *user_id,
                             const char *scope, store_integration *out, pf_err *e)
{
    char now[STORE_TS_MAX], id[PF_ID_MAX];
    util_now_iso(now);
    util_id_new("itg", id);
    if (store_tx_begin(s, e) != 0)
        return -1;
    q x;
    int rc = q_prep(s, &x,
                    "INSERT INTO integrations (id, workspace_id, client_id, user_id, scope,"
                    " created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)"
                    " ON CONFLICT (workspace_id, client_id)"
                    " DO UPDATE SET scope = excluded.scope, updated_at = excluded.updated_at",
                    e);
    if (rc == 0) {
        q_text(&x, 1, id);
        q_text(&x, 2, ws);
        q_text(&x, 3, client_id);
        q_text(&x, 4, user_id);
        q_text(&x, 5, scope);
        q_text(&x, 6, now);
        rc = q_write(&x, NULL, NULL, e);
    }
    if (rc == 0)
        rc = store_integration_by_client(s, ws, client_id, out, e);
    if (rc != 0) {
        store_tx_rollback(s);
        return -1;
    }
    return store_tx_commit(s, e);
}

int store_integration_get(store *s, const char *ws, const char *id, store_integration *out,
                          pf_err *e)
{
    q x;
    if (q_prep(s, &x,
               "SELECT " ITG_COLS " FROM integrations i WHERE i.id = ?1 AND i.workspace_id = ?2",
               e) != 0)
        return -1;
    q_text(&x, 1, id);
    q_text(&x, 2, ws);
    return q_one(&x, read_integration, out, "id", "The integration", e);
}

int store_integration_list(store *s, const char *ws, const store_page *pg, store_integration **out,
                           size_t *n, store_page_out *po, pf_err *e)
{
    int64_t after;
    if (page_after(s, "SELECT seq FROM integrations WHERE id = ?1 AND workspace_id = ?2", ws, pg,
                   &after, e) != 0)
        return -1;
    q x;
    if (q_prep(s, &x,
               "SELECT " ITG_COLS " FROM integrations i WHERE i.workspace_id = ?1 AND i.seq > ?2"
               " ORDER BY i.seq",
               e) != 0)
        return -1;
    q_text(&x, 1, ws);
    q_int(&x, 2, after);
    bool more = false;
    if (q_all(&x, sizeof **out, read_integration, (void **)out, n, (size_t)pg->limit, &more, e) !=
        0)
        return -1;
    page_out(po, more, *out, *n, sizeof **out);
    return 0;
}

int store_integration_delete(store *s, const char *ws, const char *id, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    if (store_tx_begin(s, e) != 0)
        return -1;
    q x;
    int rc =
        q_prep(s, &x,
               "UPDATE oauth_grants SET revoked_at = ?2, revoked_reason = 'integration deleted'"
               " WHERE integration_id = ?1 AND revoked_at IS NULL",
               e);
    if (rc == 0) {
        q_text(&x, 1, id);
        q_text(&x, 2, now);
        rc = q_write(&x, NULL, NULL, e);
    }
    if (rc == 0)
        rc = q_prep(s, &x, "DELETE FROM integrations WHERE id = ?1 AND workspace_id = ?2", e);
    if (rc == 0) {
        q_text(&x, 1, id);
        q_text(&x, 2, ws);
        rc = q_write(&x, NULL, NULL, e);
        if (rc == 0 && q_changes(&x) == 0)
            rc = err_set(e, 404, "NotFound", "id", "The integration was not found");
    }
    if (rc != 0) {
        store_tx_rollback(s);
        return -1;
    }
    return store_tx_commit(s, e);
}

/* ---- authorization codes ---- */

static void read_code(sqlite3_stmt *st, void *dst)
{
    store_oauth_code *c = dst;
    col(st, 0, c->hash, sizeof c->hash);
    col(st, 1, c->client_id, sizeof c->client_id);
    col(st, 2, c->user_id, sizeof c->user_id);
    col(st, 3, c->workspace_id, sizeof c->workspace_id);
    col(st, 4, c->redirect_uri, sizeof c->redirect_uri);
    col(st, 5, c->scope, sizeof c->scope);
    col(st, 6, c->code_challenge, sizeof c->code_challenge);
    c->expires_at = sqlite3_column_int64(st, 7);
    col(st, 8, c->grant_id, sizeof c->grant_id);
    /* column 9: used, read by the caller */
}

int store_oauth_code_insert(store *s, const store_oauth_code *c, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    q x;
    if (q_prep(s, &x,
               "INSERT INTO oauth_codes (hash, client_id, user_id, workspace_id, redirect_uri,"
               " scope, code_challenge, expires_at, created_at)"
               " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
               e) != 0)
        return -1;
    q_text(&x, 1, c->hash);
    q_text(&x, 2, c->client_id);
    q_text(&x, 3, c->user_id);
    q_text(&x, 4, c->workspace_id);
    q_text(&x, 5, c->redirect_uri);
    q_text(&x, 6, c->scope);
    q_text(&x, 7, c->code_challenge);
    q_int(&x, 8, c->expires_at);
    q_text(&x, 9, now);
    return q_write(&x, "code", "The code", e);
}

int store_oauth_code_consume(store *s, const char *hash, store_oauth_code *out, pf_err *e)
{
    if (store_tx_begin(s, e) != 0)
        return -1;
    q x;
    int used = 0;
    int rc = q_prep(s, &x,
                    "SELECT hash, client_id, user_id, workspace_id, redirect_uri, scope,"
                    " code_challenge, expires_at, grant_id, used FROM oauth_codes WHERE hash = ?1",
                    e);
    if (rc == 0) {
        q_text(&x, 1, hash);
        int st = sqlite3_step(x.st);
        if (st == SQLITE_ROW) {
            read_code(x.st, out);
            used = sqlite3_column_int(x.st, 9);
        } else if (st == SQLITE_DONE) {
            rc = err_set(e, 404, "NotFound", "code", "The authorization code was not found");
        } else {
            rc = err_internal(e, "store: query: %s", sqlite3_errmsg(x.db));
        }
        q_end(&x);
    }
    if (rc == 0 && used)
        rc = err_set(e, 409, "CodeUsed", "code", "The authorization code was used before");
    if (rc == 0)
        rc = q_prep(s, &x, "UPDATE oauth_codes SET used = 1 WHERE hash = ?1 AND used = 0", e);
    if (rc == 0) {
        q_text(&x, 1, hash);
        rc = q_write(&x, NULL, NULL, e);
    }
    if (rc != 0) {
        store_tx_rollback(s);
        return -1;
    }
    return store_tx_commit(s, e);
}

int store_oauth_code_set_grant(store *s, const char *hash, const char *grant_id, pf_err *e)
{
    q x;
    if (q_prep(s, &x, "UPDATE oauth_codes SET grant_id = ?2 WHERE hash = ?1", e) != 0)
        return -1;
    q_text(&x, 1, hash);
    q_text(&x, 2, grant_id);
    return q_write(&x, NULL, NULL, e);
}

/* ---- grants and refresh tokens ---- */

#define GRANT_COLS                                                                                 \
    "g.id, g.integration_id, g.workspace_id, g.client_id, g.user_id, g.scope, g.created_at,"       \
    " g.revoked_at IS NOT NULL"

static void read_grant(sqlite3_stmt *st, void *dst)
{
    store_grant *g = dst;
    col(st, 0, g->id, sizeof g->id);
    col(st, 1, g->integration_id, sizeof g->integration_id);
    col(st, 2, g->workspace_id, sizeof g->workspace_id);
    col(st, 3, g->client_id, sizeof g->client_id);
    col(st, 4, g->user_id, sizeof g->user_id);
    col(st, 5, g->scope, sizeof g->scope);
    col(st, 6, g->created_at, sizeof g->created_at);
    g->revoked = sqlite3_column_int(st, 7) != 0;
}

int store_grant_insert(store *s, const store_grant *g, pf_err *e)
{
    q x;
    if (q_prep(s, &x,
               "INSERT INTO oauth_grants (id, integration_id, workspace_id, client_id, user_id,"
               " scope, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
               e) != 0)
        return -1;
    q_text(&x, 1, g->id);
    q_text(&x, 2, g->integration_id);
    q_text(&x, 3, g->workspace_id);
    q_text(&x, 4, g->client_id);
    q_text(&x, 5, g->user_id);
    q_text(&x, 6, g->scope);
    q_text(&x, 7, g->created_at);
    return q_write(&x, "id", "A grant with this id", e);
}

int store_grant_get(store *s, const char *id, store_grant *out, pf_err *e)
{
    q x;
    if (q_prep(s, &x, "SELECT " GRANT_COLS " FROM oauth_grants g WHERE g.id = ?1", e) != 0)
        return -1;
    q_text(&x, 1, id);
    return q_one(&x, read_grant, out, "grant", "The grant", e);
}

int store_grant_revoke(store *s, const char *id, const char *reason, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    q x;
    if (q_prep(s, &x,
               "UPDATE oauth_grants SET revoked_at = ?2, revoked_reason = ?3"
               " WHERE id = ?1 AND revoked_at IS NULL",
               e) != 0)
        return -1;
    q_text(&x, 1, id);
    q_text(&x, 2, now);
    q_text(&x, 3, reason ? reason : "revoked");
    return q_write(&x, NULL, NULL, e);
}

int store_refresh_insert(store *s, const char *hash, const char *grant_id, int64_t expires_at,
                         pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    q x;
    if (q_prep(s, &x,
               "INSERT INTO refresh_tokens (hash, grant_id, expires_at, created_at)"
               " VALUES (?1, ?2, ?3, ?4)",
               e) != 0)
        return -1;
    q_text(&x, 1, hash);
    q_text(&x, 2, grant_id);
    q_int(&x, 3, expires_at);
    q_text(&x, 4, now);
    return q_write(&x, "refresh_token", "The refresh token", e);
}

int store_refresh_grant(store *s, const char *hash, store_grant *grant, pf_err *e)
{
    q x;
    if (q_prep(s, &x,
               "SELECT " GRANT_COLS " FROM refresh_tokens r JOIN oauth_grants g"
               " ON g.id = r.grant_id WHERE r.hash = ?1",
               e) != 0)
        return -1;
    q_text(&x, 1, hash);
    return q_one(&x, read_grant, grant, "refresh_token", "The refresh token", e);
}

int store_refresh_use(store *s, const char *hash, int64_t now, store_grant *grant, pf_err *e)
{
    char ts[STORE_TS_MAX];
    util_now_iso(ts);
    if (store_tx_begin(s, e) != 0)
        return -1;
    q x;
    int rc = q_prep(s, &x,
                    "SELECT " GRANT_COLS ", r.used_at IS NOT NULL, r.expires_at"
                    " FROM refresh_tokens r JOIN oauth_grants g ON g.id = r.grant_id"
                    " WHERE r.hash = ?1",
                    e);
    int used = 0;
    int64_t exp = 0;
    if (rc == 0) {
        q_text(&x, 1, hash);
        int st = sqlite3_step(x.st);
        if (st == SQLITE_ROW) {
            read_grant(x.st, grant);
            used = sqlite3_column_int(x.st, 8);
            exp = sqlite3_column_int64(x.st, 9);
        } else if (st == SQLITE_DONE) {
            rc = err_set(e, 404, "NotFound", "refresh_token", "The refresh token was not found");
        } else {
            rc = err_internal(e, "store: query: %s", sqlite3_errmsg(x.db));
        }
        q_end(&x);
    }
    if (rc == 0 && used)
        rc = err_set(e, 409, "TokenReused", "refresh_token", "The refresh token was used before");
    if (rc == 0 && exp <= now)
        rc = err_set(e, 404, "NotFound", "refresh_token", "The refresh token has expired");
    if (rc == 0)
        rc = q_prep(
            s, &x, "UPDATE refresh_tokens SET used_at = ?2 WHERE hash = ?1 AND used_at IS NULL", e);
    if (rc == 0) {
        q_text(&x, 1, hash);
        q_text(&x, 2, ts);
        rc = q_write(&x, NULL, NULL, e);
    }
    if (rc != 0) {
        store_tx_rollback(s);
        return -1;
    }
    return store_tx_commit(s, e);
}

/* ---- service tokens: list, get, delete ---- */

#define TOKEN_COLS "t.id, t.workspace_id, t.name, t.hash, t.value_hint, t.created_at, t.expires_at"

static void read_tok(sqlite3_stmt *st, void *dst)
{
    store_token *t = dst;
    col(st, 0, t->id, sizeof t->id);
    col(st, 1, t->workspace_id, sizeof t->workspace_id);
    col(st, 2, t->name, sizeof t->name);
    col(st, 3, t->hash, sizeof t->hash);
    col(st, 4, t->value_hint, sizeof t->value_hint);
    col(st, 5, t->created_at, sizeof t->created_at);
    col(st, 6, t->expires_at, sizeof t->expires_at);
}

int store_token_list(store *s, const char *ws, const store_page *pg, store_token **out, size_t *n,
                     store_page_out *po, pf_err *e)
{
    int64_t before;
    if (page_after(s, "SELECT seq FROM tokens WHERE id = ?1 AND workspace_id = ?2", ws, pg, &before,
                   e) != 0)
        return -1;
    q x;
    if (q_prep(s, &x,
               "SELECT " TOKEN_COLS " FROM tokens t WHERE t.workspace_id = ?1"
               " AND (?2 = 0 OR t.seq < ?2) ORDER BY t.seq DESC",
               e) != 0)
        return -1;
    q_text(&x, 1, ws);
    q_int(&x, 2, before);
    bool more = false;
    if (q_all(&x, sizeof **out, read_tok, (void **)out, n, (size_t)pg->limit, &more, e) != 0)
        return -1;
    page_out(po, more, *out, *n, sizeof **out);
    return 0;
}

int store_token_get(store *s, const char *ws, const char *id, store_token *out, pf_err *e)
{
    q x;
    if (q_prep(s, &x, "SELECT " TOKEN_COLS " FROM tokens t WHERE t.id = ?1 AND t.workspace_id = ?2",
               e) != 0)
        return -1;
    q_text(&x, 1, id);
    q_text(&x, 2, ws);
    return q_one(&x, read_tok, out, "serviceTokenId", "The service token", e);
}

int store_token_delete(store *s, const char *ws, const char *id, pf_err *e)
{
    q x;
    if (q_prep(s, &x, "DELETE FROM tokens WHERE id = ?1 AND workspace_id = ?2", e) != 0)
        return -1;
    q_text(&x, 1, id);
    q_text(&x, 2, ws);
    if (q_write(&x, NULL, NULL, e) != 0)
        return -1;
    if (q_changes(&x) == 0)
        return err_set(e, 404, "NotFound", "serviceTokenId", "The service token was not found");
    return 0;
}
