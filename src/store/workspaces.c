/* store/workspaces: workspaces and their service tokens (only a token's SHA-256 is kept). */
#include "store/sql.h"

#define WS_COLS "w.id, w.name, w.created_at"
static const sql_col ws_cols[] = {
    COL_TEXT(store_workspace, id),
    COL_TEXT(store_workspace, name),
    COL_TEXT(store_workspace, created_at),
};
const sql_row store__row_workspace = SQL_ROW(store_workspace, ws_cols);

#define TOK_COLS                                                                                   \
    "t.id, t.workspace_id, t.name, t.hash, t.value_hint, t.created_at, t.expires_at, "             \
    "t.is_operator"
static const sql_col tok_cols[] = {
    COL_TEXT(store_token, id),         COL_TEXT(store_token, workspace_id),
    COL_TEXT(store_token, name),       COL_TEXT(store_token, hash),
    COL_TEXT(store_token, value_hint), COL_TEXT(store_token, created_at),
    COL_TEXT(store_token, expires_at), COL_BOOL(store_token, is_operator),
};
static const sql_row tok_row = SQL_ROW(store_token, tok_cols);

static sql_stmt q_ws_insert =
    SQL("INSERT INTO workspaces (id, name, created_at) VALUES (?1, ?2, ?3)");
static sql_stmt q_ws_get = SQL("SELECT " WS_COLS " FROM workspaces w WHERE w.id = ?1");
static sql_stmt q_ws_list = SQL("SELECT " WS_COLS " FROM workspaces w"
                                " WHERE w.seq > ?1 AND (?3 IS NULL OR w.id = ?3)"
                                " ORDER BY w.seq LIMIT ?2");
static sql_stmt q_ws_first = SQL("SELECT " WS_COLS " FROM workspaces w ORDER BY w.seq LIMIT 1");
static sql_stmt q_ws_seq =
    SQL("SELECT seq FROM workspaces WHERE id = ?1 AND (?2 IS NULL OR id = ?2)");

static sql_stmt q_tok_insert =
    SQL_FK("INSERT INTO tokens (id, workspace_id, name, hash, value_hint, created_at, expires_at,"
           " is_operator) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
           "workspaceId", "The token's workspace");
static sql_stmt q_tok_by_hash = SQL("SELECT " TOK_COLS " FROM tokens t WHERE t.hash = ?1");
static sql_stmt q_tok_get =
    SQL("SELECT " TOK_COLS " FROM tokens t WHERE t.id = ?1 AND t.workspace_id = ?2"
        " AND t.is_operator = 0");
/* a workspace's own tokens only: an operator token is no workspace's to list or delete */
/* newest first: the cursor's row is the oldest seen */
static sql_stmt q_tok_list =
    SQL("SELECT " TOK_COLS " FROM tokens t WHERE t.workspace_id = ?3 AND t.is_operator = 0"
        " AND (?1 = 0 OR t.seq < ?1) ORDER BY t.seq DESC LIMIT ?2");
static sql_stmt q_tok_seq =
    SQL("SELECT seq FROM tokens WHERE id = ?1 AND workspace_id = ?2 AND is_operator = 0");
/* the host's revoke (`pgfleet token revoke`): any token, operator tokens included */
static sql_stmt q_tok_revoke = SQL("DELETE FROM tokens WHERE id = ?1");
static sql_stmt q_tok_delete =
    SQL("DELETE FROM tokens WHERE id = ?1 AND workspace_id = ?2 AND is_operator = 0");

int store_workspace_insert(store *s, const store_workspace *w, pf_err *e)
{
    return sql_run(s, &q_ws_insert, ARGS(TXT(w->id), TXT(w->name), TXT(w->created_at)), e);
}

int store_workspace_get(store *s, const char *id, store_workspace *out, pf_err *e)
{
    return sql_get(s, &q_ws_get, ARGS(TXT(id)), &store__row_workspace, out, "workspaceId",
                   "Workspace", id, e);
}

int store_workspace_list(store *s, const char *only_id, const store_page *pg, store_workspace **out,
                         size_t *n, store_page_out *po, pf_err *e)
{
    return sql_page(s, &q_ws_seq, only_id, &q_ws_list, pg, ARGS(TXT(only_id)),
                    &store__row_workspace, (void **)out, n, po, e);
}

int store_workspace_first(store *s, store_workspace *out, pf_err *e)
{
    int got = sql_one(s, &q_ws_first, NOARGS, &store__row_workspace, out, e);
    if (got == 0)
        return err_set(e, 404, "NotFound", "workspaceId", "No workspace exists yet");
    return got < 0 ? -1 : 0;
}

int store_token_insert(store *s, const store_token *t, pf_err *e)
{
    return sql_run(s, &q_tok_insert,
                   ARGS(TXT(t->id), TXT(t->workspace_id), TXT(t->name), TXT(t->hash),
                        TXT(t->value_hint), TXT(t->created_at), OPT(t->expires_at),
                        INT(t->is_operator)),
                   e);
}

int store_token_by_hash(store *s, const char *hash, store_token *out, pf_err *e)
{
    /* the hash is a secret's digest: keep it out of the message */
    return sql_get(s, &q_tok_by_hash, ARGS(TXT(hash)), &tok_row, out, "token", "The token", NULL,
                   e);
}

int store_token_list(store *s, const char *ws, const store_page *pg, store_token **out, size_t *n,
                     store_page_out *po, pf_err *e)
{
    return sql_page(s, &q_tok_seq, ws, &q_tok_list, pg, ARGS(TXT(ws)), &tok_row, (void **)out, n,
                    po, e);
}

int store_token_get(store *s, const char *ws, const char *id, store_token *out, pf_err *e)
{
    return sql_get(s, &q_tok_get, ARGS(TXT(id), TXT(ws)), &tok_row, out, "serviceTokenId",
                   "The service token", NULL, e);
}

int store_token_delete(store *s, const char *ws, const char *id, pf_err *e)
{
    return sql_touch(s, &q_tok_delete, ARGS(TXT(id), TXT(ws)), "serviceTokenId",
                     "The service token", NULL, e);
}

int store_token_revoke(store *s, const char *id, pf_err *e)
{
    return sql_touch(s, &q_tok_revoke, ARGS(TXT(id)), "id", "The token", id, e);
}
