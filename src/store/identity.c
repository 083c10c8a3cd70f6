/* store/identity: users, memberships, OAuth clients, integrations, authorization codes,
 * grants and refresh tokens (schema version 2). Codes and refresh tokens are kept only as
 * SHA-256 hex. Statements join any transaction store_tx_begin opened on the thread. */
#include <string.h>

#include "store/sql.h"

/* identity writes answer 404 (no field) when a row they name does not exist */
#define SQL_REF(text) SQL_FK(text, NULL, "A referenced row")

#define USER_COLS "u.id, u.email, u.name, u.password_hash, u.created_at"
static const sql_col user_cols[] = {
    COL_TEXT(store_user, id),         COL_TEXT(store_user, email),
    COL_TEXT(store_user, name),       COL_TEXT(store_user, password_hash),
    COL_TEXT(store_user, created_at),
};
static const sql_row user_row = SQL_ROW(store_user, user_cols);

static const sql_col client_cols[] = {
    COL_TEXT(store_oauth_client, id),
    COL_TEXT(store_oauth_client, name),
    COL_TEXT(store_oauth_client, redirect_uris),
    COL_TEXT(store_oauth_client, created_at),
};
static const sql_row client_row = SQL_ROW(store_oauth_client, client_cols);

#define ITG_COLS "i.id, i.workspace_id, i.client_id, i.user_id, i.scope, i.created_at"
static const sql_col itg_cols[] = {
    COL_TEXT(store_integration, id),        COL_TEXT(store_integration, workspace_id),
    COL_TEXT(store_integration, client_id), COL_TEXT(store_integration, user_id),
    COL_TEXT(store_integration, scope),     COL_TEXT(store_integration, created_at),
};
static const sql_row itg_row = SQL_ROW(store_integration, itg_cols);

/* a code with whether it was used */
typedef struct code_row {
    store_oauth_code c;
    bool used;
} code_row;
static const sql_col code_cols[] = {
    COL_TEXT(code_row, c.hash),           COL_TEXT(code_row, c.client_id),
    COL_TEXT(code_row, c.user_id),        COL_TEXT(code_row, c.workspace_id),
    COL_TEXT(code_row, c.redirect_uri),   COL_TEXT(code_row, c.scope),
    COL_TEXT(code_row, c.code_challenge), COL_I64(code_row, c.expires_at),
    COL_TEXT(code_row, c.grant_id),       COL_BOOL(code_row, used),
};
static const sql_row code_row_def = SQL_ROW(code_row, code_cols);

/* a grant, with its refresh token's use and expiry when read through one */
typedef struct grant_row {
    store_grant g;
    bool used;
    int64_t expires_at;
} grant_row;
#define GRANT_COLS                                                                                 \
    "g.id, g.integration_id, g.workspace_id, g.client_id, g.user_id, g.scope, g.created_at,"       \
    " g.revoked_at IS NOT NULL"
static const sql_col grant_cols[] = {
    COL_TEXT(grant_row, g.id),           COL_TEXT(grant_row, g.integration_id),
    COL_TEXT(grant_row, g.workspace_id), COL_TEXT(grant_row, g.client_id),
    COL_TEXT(grant_row, g.user_id),      COL_TEXT(grant_row, g.scope),
    COL_TEXT(grant_row, g.created_at),   COL_BOOL(grant_row, g.revoked),
    COL_BOOL(grant_row, used),           COL_I64(grant_row, expires_at),
};
static const sql_row grant_row_def = {sizeof(store_grant), grant_cols, 8}; /* the grant only */
static const sql_row refresh_row_def = SQL_ROW(grant_row, grant_cols);
_Static_assert(offsetof(grant_row, g) == 0 && offsetof(code_row, c) == 0, "the row first");

static sql_stmt q_user_insert = SQL_REF("INSERT INTO users (id, email, name, password_hash,"
                                        " created_at) VALUES (?1, ?2, ?3, ?4, ?5)");
static sql_stmt q_user_get = SQL("SELECT " USER_COLS " FROM users u WHERE u.id = ?1");
static sql_stmt q_user_by_email = SQL("SELECT " USER_COLS " FROM users u WHERE u.email = ?1");
static sql_stmt q_member_add =
    SQL_REF("INSERT OR IGNORE INTO memberships (user_id, workspace_id, created_at)"
            " VALUES (?1, ?2, ?3)");
static sql_stmt q_member_check =
    SQL("SELECT 1 FROM memberships WHERE user_id = ?1 AND workspace_id = ?2");
static sql_stmt q_user_workspaces =
    SQL("SELECT w.id, w.name, w.created_at FROM workspaces w"
        " JOIN memberships m ON m.workspace_id = w.id WHERE m.user_id = ?1 ORDER BY w.seq");
static sql_stmt q_client_insert = SQL_REF("INSERT INTO oauth_clients (id, name, redirect_uris,"
                                          " created_at) VALUES (?1, ?2, ?3, ?4)");
static sql_stmt q_client_upsert =
    SQL("INSERT INTO oauth_clients (id, name, redirect_uris, created_at) VALUES (?1, ?2, ?3, ?4)"
        " ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
        " redirect_uris = excluded.redirect_uris");
static sql_stmt q_client_get =
    SQL("SELECT id, name, redirect_uris, created_at FROM oauth_clients WHERE id = ?1");
static sql_stmt q_itg_by_client = SQL("SELECT " ITG_COLS " FROM integrations i"
                                      " WHERE i.workspace_id = ?1 AND i.client_id = ?2");
static sql_stmt q_itg_upsert =
    SQL_REF("INSERT INTO integrations (id, workspace_id, client_id, user_id, scope, created_at,"
            " updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)"
            " ON CONFLICT (workspace_id, client_id)"
            " DO UPDATE SET scope = excluded.scope, updated_at = excluded.updated_at");
static sql_stmt q_itg_get =
    SQL("SELECT " ITG_COLS " FROM integrations i WHERE i.id = ?1 AND i.workspace_id = ?2");
static sql_stmt q_itg_seq = SQL("SELECT seq FROM integrations WHERE id = ?1 AND workspace_id = ?2");
static sql_stmt q_itg_list =
    SQL("SELECT " ITG_COLS " FROM integrations i"
        " WHERE i.seq > ?1 AND i.workspace_id = ?3 ORDER BY i.seq LIMIT ?2");
static sql_stmt q_itg_revoke =
    SQL_REF("UPDATE oauth_grants SET revoked_at = ?2, revoked_reason = 'integration deleted'"
            " WHERE integration_id = ?1 AND revoked_at IS NULL");
static sql_stmt q_itg_delete =
    SQL_REF("DELETE FROM integrations WHERE id = ?1 AND workspace_id = ?2");
static sql_stmt q_code_insert =
    SQL_REF("INSERT INTO oauth_codes (hash, client_id, user_id, workspace_id, redirect_uri,"
            " scope, code_challenge, expires_at, created_at)"
            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
static sql_stmt q_code_get = SQL("SELECT hash, client_id, user_id, workspace_id, redirect_uri,"
                                 " scope, code_challenge, expires_at, grant_id, used"
                                 " FROM oauth_codes WHERE hash = ?1");
static sql_stmt q_code_use =
    SQL_REF("UPDATE oauth_codes SET used = 1 WHERE hash = ?1 AND used = 0");
static sql_stmt q_code_set_grant = SQL_REF("UPDATE oauth_codes SET grant_id = ?2 WHERE hash = ?1");
static sql_stmt q_grant_insert =
    SQL_REF("INSERT INTO oauth_grants (id, integration_id, workspace_id, client_id, user_id,"
            " scope, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
static sql_stmt q_grant_get = SQL("SELECT " GRANT_COLS " FROM oauth_grants g WHERE g.id = ?1");
static sql_stmt q_grant_revoke =
    SQL_REF("UPDATE oauth_grants SET revoked_at = ?2, revoked_reason = ?3"
            " WHERE id = ?1 AND revoked_at IS NULL");
static sql_stmt q_refresh_insert = SQL_REF("INSERT INTO refresh_tokens (hash, grant_id,"
                                           " expires_at, created_at) VALUES (?1, ?2, ?3, ?4)");
static sql_stmt q_refresh_get =
    SQL("SELECT " GRANT_COLS ", r.used_at IS NOT NULL, r.expires_at"
        " FROM refresh_tokens r JOIN oauth_grants g ON g.id = r.grant_id WHERE r.hash = ?1");
static sql_stmt q_refresh_use =
    SQL_REF("UPDATE refresh_tokens SET used_at = ?2 WHERE hash = ?1 AND used_at IS NULL");

/* ---- users and memberships ---- */

int store_user_insert(store *s, const store_user *u, pf_err *e)
{
    return sql_run(
        s, &q_user_insert,
        ARGS(TXT(u->id), TXT(u->email), OPT(u->name), TXT(u->password_hash), TXT(u->created_at)),
        e);
}

int store_user_get(store *s, const char *id, store_user *out, pf_err *e)
{
    return sql_get(s, &q_user_get, ARGS(TXT(id)), &user_row, out, "userId", "The user", NULL, e);
}

int store_user_by_email(store *s, const char *email, store_user *out, pf_err *e)
{
    return sql_get(s, &q_user_by_email, ARGS(TXT(email)), &user_row, out, "email", "The user", NULL,
                   e);
}

int store_membership_add(store *s, const char *user_id, const char *ws, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    return sql_run(s, &q_member_add, ARGS(TXT(user_id), TXT(ws), TXT(now)), e);
}

int store_membership_check(store *s, const char *user_id, const char *ws, pf_err *e)
{
    return sql_get(s, &q_member_check, ARGS(TXT(user_id), TXT(ws)), NULL, NULL, "workspaceId",
                   "The workspace", NULL, e);
}

int store_user_workspaces(store *s, const char *user_id, store_workspace **out, size_t *n,
                          pf_err *e)
{
    return sql_all(s, &q_user_workspaces, ARGS(TXT(user_id)), &store__row_workspace, (void **)out,
                   n, 0, NULL, e);
}

/* ---- OAuth clients and integrations ---- */

int store_oauth_client_insert(store *s, const store_oauth_client *c, pf_err *e)
{
    return sql_run(s, &q_client_insert,
                   ARGS(TXT(c->id), TXT(c->name), TXT(c->redirect_uris), TXT(c->created_at)), e);
}

int store_oauth_client_upsert(store *s, const store_oauth_client *c, pf_err *e)
{
    return sql_run(s, &q_client_upsert,
                   ARGS(TXT(c->id), TXT(c->name), TXT(c->redirect_uris), TXT(c->created_at)), e);
}

int store_oauth_client_get(store *s, const char *id, store_oauth_client *out, pf_err *e)
{
    return sql_get(s, &q_client_get, ARGS(TXT(id)), &client_row, out, "client_id", "The client",
                   NULL, e);
}

int store_integration_by_client(store *s, const char *ws, const char *client_id,
                                store_integration *out, pf_err *e)
{
    return sql_get(s, &q_itg_by_client, ARGS(TXT(ws), TXT(client_id)), &itg_row, out, "clientId",
                   "The integration", NULL, e);
}

int store_integration_upsert(store *s, const char *ws, const char *client_id, const char *user_id,
                             const char *scope, store_integration *out, pf_err *e)
{
    char now[STORE_TS_MAX], id[PF_ID_MAX];
    util_now_iso(now);
    util_id_new("itg", id);
    if (sql_begin(s, e) != 0)
        return -1;
    int rc = sql_run(s, &q_itg_upsert,
                     ARGS(TXT(id), TXT(ws), TXT(client_id), TXT(user_id), TXT(scope), TXT(now)), e);
    if (rc == 0)
        rc = store_integration_by_client(s, ws, client_id, out, e);
    return sql_end(s, rc, e);
}

int store_integration_get(store *s, const char *ws, const char *id, store_integration *out,
                          pf_err *e)
{
    return sql_get(s, &q_itg_get, ARGS(TXT(id), TXT(ws)), &itg_row, out, "id", "The integration",
                   NULL, e);
}

int store_integration_list(store *s, const char *ws, const store_page *pg, store_integration **out,
                           size_t *n, store_page_out *po, pf_err *e)
{
    return sql_page(s, &q_itg_seq, ws, &q_itg_list, pg, ARGS(TXT(ws)), &itg_row, (void **)out, n,
                    po, e);
}

int store_integration_delete(store *s, const char *ws, const char *id, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    if (sql_begin(s, e) != 0)
        return -1;
    int rc = sql_run(s, &q_itg_revoke, ARGS(TXT(id), TXT(now)), e);
    if (rc == 0)
        rc = sql_touch(s, &q_itg_delete, ARGS(TXT(id), TXT(ws)), "id", "The integration", NULL, e);
    return sql_end(s, rc, e);
}

/* ---- authorization codes ---- */

int store_oauth_code_insert(store *s, const store_oauth_code *c, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    return sql_run(s, &q_code_insert,
                   ARGS(TXT(c->hash), TXT(c->client_id), TXT(c->user_id), TXT(c->workspace_id),
                        TXT(c->redirect_uri), TXT(c->scope), TXT(c->code_challenge),
                        INT(c->expires_at), TXT(now)),
                   e);
}

int store_oauth_code_consume(store *s, const char *hash, store_oauth_code *out, pf_err *e)
{
    code_row r;
    if (sql_begin(s, e) != 0)
        return -1;
    int rc = sql_get(s, &q_code_get, ARGS(TXT(hash)), &code_row_def, &r, "code",
                     "The authorization code", NULL, e);
    if (rc == 0)
        *out = r.c;
    if (rc == 0 && r.used)
        rc = err_set(e, 409, "CodeUsed", "code", "The authorization code was used before");
    if (rc == 0)
        rc = sql_run(s, &q_code_use, ARGS(TXT(hash)), e);
    return sql_end(s, rc, e);
}

int store_oauth_code_set_grant(store *s, const char *hash, const char *grant_id, pf_err *e)
{
    return sql_run(s, &q_code_set_grant, ARGS(TXT(hash), TXT(grant_id)), e);
}

/* ---- grants and refresh tokens ---- */

int store_grant_insert(store *s, const store_grant *g, pf_err *e)
{
    return sql_run(s, &q_grant_insert,
                   ARGS(TXT(g->id), TXT(g->integration_id), TXT(g->workspace_id), TXT(g->client_id),
                        TXT(g->user_id), TXT(g->scope), TXT(g->created_at)),
                   e);
}

int store_grant_get(store *s, const char *id, store_grant *out, pf_err *e)
{
    return sql_get(s, &q_grant_get, ARGS(TXT(id)), &grant_row_def, out, "grant", "The grant", NULL,
                   e);
}

int store_grant_revoke(store *s, const char *id, const char *reason, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    return sql_run(s, &q_grant_revoke, ARGS(TXT(id), TXT(now), TXT(reason ? reason : "revoked")),
                   e);
}

int store_refresh_insert(store *s, const char *hash, const char *grant_id, int64_t expires_at,
                         pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    return sql_run(s, &q_refresh_insert, ARGS(TXT(hash), TXT(grant_id), INT(expires_at), TXT(now)),
                   e);
}

int store_refresh_grant(store *s, const char *hash, store_grant *grant, pf_err *e)
{
    return sql_get(s, &q_refresh_get, ARGS(TXT(hash)), &grant_row_def, grant, "refresh_token",
                   "The refresh token", NULL, e);
}

int store_refresh_use(store *s, const char *hash, int64_t now, store_grant *grant, pf_err *e)
{
    char ts[STORE_TS_MAX];
    util_now_iso(ts);
    grant_row r;
    if (sql_begin(s, e) != 0)
        return -1;
    int rc = sql_get(s, &q_refresh_get, ARGS(TXT(hash)), &refresh_row_def, &r, "refresh_token",
                     "The refresh token", NULL, e);
    if (rc == 0)
        *grant = r.g;
    if (rc == 0 && r.used)
        rc = err_set(e, 409, "TokenReused", "refresh_token", "The refresh token was used before");
    if (rc == 0 && r.expires_at <= now)
        rc = err_set(e, 404, "NotFound", "refresh_token", "The refresh token has expired");
    if (rc == 0)
        rc = sql_run(s, &q_refresh_use, ARGS(TXT(hash), TXT(ts)), e);
    return sql_end(s, rc, e);
}
