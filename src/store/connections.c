/* store/connections: a database's credentials (a role and its SCRAM verifier; the password
 * is never stored). The workspace-scoped calls also hide connections of deleting databases. */
#include <string.h>

#include "store/sql.h"

#define CONN_COLS                                                                                  \
    "c.id, c.workspace_id, c.database_id, c.name, c.role, c.verifier, c.deleting, c.created_at"
static const sql_col conn_cols[] = {
    COL_TEXT(store_connection, id),          COL_TEXT(store_connection, workspace_id),
    COL_TEXT(store_connection, database_id), COL_TEXT(store_connection, name),
    COL_TEXT(store_connection, role),        COL_TEXT(store_connection, verifier),
    COL_BOOL(store_connection, deleting),    COL_TEXT(store_connection, created_at),
};
const sql_row store__row_connection = SQL_ROW(store_connection, conn_cols);

static sql_stmt q_insert =
    SQL_FK("INSERT INTO connections (id, workspace_id, database_id, name, role, verifier,"
           " deleting, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
           "databaseId", "The connection's database");
static sql_stmt q_get = SQL("SELECT " CONN_COLS " FROM connections c JOIN databases d"
                            " ON d.id = c.database_id"
                            " WHERE c.id = ?1 AND c.workspace_id = ?2 AND c.deleting = 0"
                            "   AND d.status <> 'deleting'");
static sql_stmt q_get_internal = SQL("SELECT " CONN_COLS " FROM connections c WHERE c.id = ?1");
static sql_stmt q_list = SQL("SELECT " CONN_COLS " FROM connections c JOIN databases d"
                             " ON d.id = c.database_id"
                             " WHERE c.seq > ?1 AND c.workspace_id = ?3 AND c.deleting = 0"
                             "   AND d.status <> 'deleting'"
                             "   AND (?4 IS NULL OR c.database_id = ?4)"
                             " ORDER BY c.seq LIMIT ?2");
static sql_stmt q_seq = SQL("SELECT seq FROM connections WHERE id = ?1 AND workspace_id = ?2");
static sql_stmt q_for_db =
    SQL("SELECT " CONN_COLS " FROM connections c"
        " WHERE c.database_id = ?1 AND (?2 OR c.deleting = 0) ORDER BY c.seq");
/* ?1: a JSON array of database ids (sql_all_of_ids) */
static sql_stmt q_for_dbs =
    SQL("SELECT " CONN_COLS " FROM connections c"
        " WHERE c.database_id IN (SELECT value FROM json_each(?1)) AND c.deleting = 0"
        " ORDER BY c.database_id, c.seq");
static sql_stmt q_set_verifier =
    SQL("UPDATE connections SET verifier = ?2, updated_at = ?3 WHERE id = ?1");
static sql_stmt q_mark_deleting =
    SQL("UPDATE connections SET deleting = 1, updated_at = ?2 WHERE id = ?1");
static sql_stmt q_delete = SQL("DELETE FROM connections WHERE id = ?1");
static sql_stmt q_unset_default = SQL("UPDATE databases SET default_connection_id = NULL,"
                                      " updated_at = ?2 WHERE default_connection_id = ?1");

int store_connection_insert(store *s, const store_connection *c, pf_err *e)
{
    return sql_run(s, &q_insert,
                   ARGS(TXT(c->id), TXT(c->workspace_id), TXT(c->database_id), TXT(c->name),
                        TXT(c->role), TXT(c->verifier), INT(c->deleting ? 1 : 0),
                        TXT(c->created_at)),
                   e);
}

int store_connection_get(store *s, const char *ws, const char *id, store_connection *out, pf_err *e)
{
    return sql_get(s, &q_get, ARGS(TXT(id), TXT(ws)), &store__row_connection, out, "connectionId",
                   "Connection", id, e);
}

int store_connection_get_internal(store *s, const char *id, store_connection *out, pf_err *e)
{
    return sql_get(s, &q_get_internal, ARGS(TXT(id)), &store__row_connection, out, "connectionId",
                   "Connection", id, e);
}

int store_connection_list(store *s, const char *ws, const char *database_id, const store_page *pg,
                          store_connection **out, size_t *n, store_page_out *po, pf_err *e)
{
    return sql_page(s, &q_seq, ws, &q_list, pg, ARGS(TXT(ws), TXT(database_id)),
                    &store__row_connection, (void **)out, n, po, e);
}

int store_connection_list_for_db(store *s, const char *database_id, bool include_deleting,
                                 store_connection **out, size_t *n, pf_err *e)
{
    return sql_all(s, &q_for_db, ARGS(TXT(database_id), INT(include_deleting ? 1 : 0)),
                   &store__row_connection, (void **)out, n, 0, NULL, e);
}

int store_connection_list_for_dbs(store *s, const char *const *ids, size_t nids,
                                  store_connection **out, size_t *n, pf_err *e)
{
    return sql_all_of_ids(s, &q_for_dbs, ids, nids, &store__row_connection, (void **)out, n, e);
}

int store_connection_set_verifier(store *s, const char *id, const char *verifier, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    return sql_touch(s, &q_set_verifier, ARGS(TXT(id), TXT(verifier), TXT(now)), "connectionId",
                     "Connection", id, e);
}

int store_connection_mark_deleting(store *s, const char *id, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    return sql_touch(s, &q_mark_deleting, ARGS(TXT(id), TXT(now)), "connectionId", "Connection", id,
                     e);
}

/* Also clears the database's default_connection_id when it named this connection. */
int store_connection_delete_row(store *s, const char *id, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    if (sql_begin(s, e) != 0)
        return -1;
    int rc = sql_touch(s, &q_delete, ARGS(TXT(id)), "connectionId", "Connection", id, e);
    if (rc == 0)
        rc = sql_run(s, &q_unset_default, ARGS(TXT(id), TXT(now)), e);
    return sql_end(s, rc, e);
}
