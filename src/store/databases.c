/* store/databases: databases, their status (one state machine), health and ports.
 *
 * Ops are kept as history: store_database_delete_row removes the database row and its
 * connections but leaves its ops (the OP_DB_DELETE op that calls it must still be finished
 * afterwards, and a finished op is the record of what happened). */
#include <stdlib.h>

#include "store/sql.h"
#include "util/log.h"

const char *const store__db_status_names[STORE_DB_STATUS_COUNT] = {
    [DB_PROVISIONING] = "provisioning", [DB_READY] = "ready",       [DB_RECOVERING] = "recovering",
    [DB_FAILURE] = "failure",           [DB_DELETING] = "deleting",
};
_Static_assert(DB_DELETING + 1 == STORE_DB_STATUS_COUNT, "one name per status");

#define DB_COLS                                                                                    \
    "d.id, d.workspace_id, d.project_id, d.branch_id, d.name, d.logical_id, d.status, "            \
    "d.status_reason, d.is_default, d.region, d.source_type, d.source_database_id, "               \
    "d.source_backup_id, d.port, d.default_connection_id, d.created_at, d.unhealthy, "             \
    "d.instance_id"
static const sql_col db_cols[] = {
    COL_TEXT(store_database, id),
    COL_TEXT(store_database, workspace_id),
    COL_TEXT(store_database, project_id),
    COL_TEXT(store_database, branch_id),
    COL_TEXT(store_database, name),
    COL_TEXT(store_database, logical_id),
    COL_ENUM(store_database, status, store__db_status_names),
    COL_TEXT(store_database, status_reason),
    COL_BOOL(store_database, is_default),
    COL_TEXT(store_database, region),
    COL_TEXT(store_database, source_type),
    COL_TEXT(store_database, source_database_id),
    COL_TEXT(store_database, source_backup_id),
    COL_INT(store_database, port), /* NULL reads as 0 */
    COL_TEXT(store_database, default_connection_id),
    COL_TEXT(store_database, created_at),
    COL_TEXT(store_database, unhealthy),
    COL_TEXT(store_database, instance_id),
};
const sql_row store__row_database = SQL_ROW(store_database, db_cols);

static sql_stmt q_insert =
    SQL_FK("INSERT INTO databases (id, workspace_id, project_id, branch_id, name, logical_id,"
           " status, status_reason, is_default, region, source_type, source_database_id,"
           " source_backup_id, port, default_connection_id, created_at, updated_at)"
           " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?16)",
           "workspaceId", "The database's workspace");
static sql_stmt q_get = SQL("SELECT " DB_COLS " FROM databases d"
                            " WHERE d.id = ?1 AND d.workspace_id = ?2 AND d.status <> 'deleting'");
static sql_stmt q_get_internal = SQL("SELECT " DB_COLS " FROM databases d WHERE d.id = ?1");
/* a page of the workspace's databases (sql_page: ?1 after seq, ?2 limit, ?3 workspace) */
#define DB_PAGE                                                                                    \
    " FROM databases d"                                                                            \
    " WHERE d.seq > ?1 AND d.workspace_id = ?3 AND d.status <> 'deleting'"                         \
    "   AND (?4 IS NULL OR d.project_id = ?4)"                                                     \
    "   AND (?5 IS NULL OR d.logical_id = ?5)"                                                     \
    "   AND (?6 IS NULL OR d.branch_id = ?6"                                                       \
    "        OR (?6 = 'unassigned' AND d.branch_id IS NULL))"                                      \
    "   AND (?7 IS NULL OR d.branch_id IN (SELECT b.id FROM branches b"                            \
    "        WHERE b.project_id = d.project_id AND b.git_name = ?7))"                              \
    " ORDER BY d.seq LIMIT ?2"
static sql_stmt q_list = SQL("SELECT " DB_COLS DB_PAGE);
static sql_stmt q_list_revs = SQL("SELECT d.id, d.rev" DB_PAGE);
/* ?1: a JSON array of database ids (sql_all_of_ids) */
static sql_stmt q_of_ids = SQL("SELECT " DB_COLS " FROM databases d"
                               " WHERE d.id IN (SELECT value FROM json_each(?1)) ORDER BY d.seq");
static sql_stmt q_seq = SQL("SELECT seq FROM databases WHERE id = ?1 AND workspace_id = ?2");
static sql_stmt q_list_all = SQL("SELECT " DB_COLS " FROM databases d ORDER BY d.seq");
/* the conditional update of a status move (db_status_fsm) */
static sql_stmt q_transition =
    SQL("UPDATE databases SET status = ?3, status_reason = ?4, updated_at = ?5"
        " WHERE id = ?1 AND status = ?2");
static sql_stmt q_status = SQL("SELECT status FROM databases WHERE id = ?1");
static sql_stmt q_set_unhealthy =
    SQL("UPDATE databases SET unhealthy = NULLIF(?2, '') WHERE id = ?1");
/* an instance is attached once: a second attach of another id fails (no row changed) */
static sql_stmt q_set_instance =
    SQL("UPDATE databases SET instance_id = ?2"
        " WHERE id = ?1 AND (instance_id IS NULL OR instance_id = ?2)");
static sql_stmt q_set_default_conn =
    SQL("UPDATE databases SET default_connection_id = ?2, updated_at = ?3 WHERE id = ?1");
static sql_stmt q_update =
    SQL("UPDATE databases SET name = COALESCE(?2, name),"
        " branch_id = CASE WHEN ?3 IS NULL THEN branch_id ELSE NULLIF(?3, '') END,"
        " logical_id = CASE WHEN ?4 IS NULL THEN logical_id ELSE NULLIF(?4, '') END,"
        " updated_at = ?5 WHERE id = ?1");
static sql_stmt q_in_project = SQL("SELECT 1 FROM databases WHERE id = ?1 AND project_id = ?2");
static sql_stmt q_clear_default = SQL("UPDATE databases SET is_default = 0, updated_at = ?3"
                                      " WHERE project_id = ?1 AND is_default = 1 AND id <> ?2");
static sql_stmt q_set_default =
    SQL("UPDATE databases SET is_default = 1, updated_at = ?2 WHERE id = ?1");
static sql_stmt q_set_source = SQL("UPDATE databases SET source_type = ?2, source_database_id = ?3,"
                                   " source_backup_id = ?4, updated_at = ?5 WHERE id = ?1");
/* deleting a row: its connections and usage go with it */
static sql_stmt q_del_conns = SQL("DELETE FROM connections WHERE database_id = ?1");
static sql_stmt q_delete = SQL("DELETE FROM databases WHERE id = ?1");
static sql_stmt q_del_usage_days = SQL("DELETE FROM usage_days WHERE database_id = ?1");
static sql_stmt q_del_usage_counter = SQL("DELETE FROM usage_counters WHERE database_id = ?1");
static sql_stmt q_ports =
    SQL("SELECT port FROM databases WHERE port BETWEEN ?1 AND ?2 ORDER BY port");
static sql_stmt q_pool_dbs = SQL("SELECT " DB_COLS " FROM databases d"
                                 " WHERE d.status NOT IN ('deleting', 'failure') ORDER BY d.seq");
static sql_stmt q_pool_conns =
    SQL("SELECT c.id, c.workspace_id, c.database_id, c.name, c.role, c.verifier, c.deleting,"
        " c.created_at FROM connections c JOIN databases d ON d.id = c.database_id"
        " WHERE c.deleting = 0 AND d.status NOT IN ('deleting', 'failure') ORDER BY c.seq");

const char *store_db_status_name(store_db_status st)
{
    return (int)st >= 0 && (int)st < STORE_DB_STATUS_COUNT ? store__db_status_names[st] : "unknown";
}

/* ---- the status state machine ---- */

/* A state machine over one column of a database row: the names of its states (as stored),
 * its legal moves, a conditional UPDATE (?1 id, ?2 from, ?3 to, ?4 reason, ?5 now) and a
 * SELECT of the column by id (?1). store.h says how a second one plugs in. */
typedef struct fsm_move {
    int from, to;
} fsm_move;

typedef struct store_fsm {
    const char *field; /* the log line's and the error hint's word: "status" */
    const char *const *names;
    int count;
    const fsm_move *moves;
    size_t nmoves;
    sql_stmt *update, *current;
} store_fsm;

/* Every move of a database's status that pgfleet makes (see store.h). */
static const fsm_move db_status_moves[] = {
    {DB_PROVISIONING, DB_READY},                               /* provisioned, restored or cloned */
    {DB_PROVISIONING, DB_FAILURE},                             /* its op gave up */
    {DB_PROVISIONING, DB_DELETING}, {DB_READY, DB_RECOVERING}, /* a restore was asked for */
    {DB_READY, DB_FAILURE},                                    /* a restart gave up */
    {DB_READY, DB_DELETING},        {DB_RECOVERING, DB_READY},   {DB_RECOVERING, DB_FAILURE},
    {DB_RECOVERING, DB_DELETING},   {DB_FAILURE, DB_RECOVERING}, /* a restore repairs a failed
                                                                    database */
    {DB_FAILURE, DB_DELETING},
};

static const store_fsm db_status_fsm = {
    .field = "status",
    .names = store__db_status_names,
    .count = STORE_DB_STATUS_COUNT,
    .moves = db_status_moves,
    .nmoves = sizeof db_status_moves / sizeof db_status_moves[0],
    .update = &q_transition,
    .current = &q_status,
};

static bool fsm_legal(const store_fsm *m, int from, int to)
{
    for (size_t i = 0; i < m->nmoves; i++)
        if (m->moves[i].from == from && m->moves[i].to == to)
            return true;
    return false;
}

static const char *fsm_name(const store_fsm *m, int st)
{
    return st >= 0 && st < m->count ? m->names[st] : "?";
}

/* Moves the database id from -> to under m (see store_database_transition). */
static int fsm_transition(store *s, const store_fsm *m, const char *id, int from, int to,
                          const char *reason, pf_err *e)
{
    if (!fsm_legal(m, from, to))
        return err_set(e, 409, "IllegalTransition", m->field, "Database %s cannot go from %s to %s",
                       id, fsm_name(m, from), fsm_name(m, to));
    char now[STORE_TS_MAX];
    util_now_iso(now);
    int n = sql_write(
        s, m->update,
        ARGS(TXT(id), TXT(m->names[from]), TXT(m->names[to]), TXT(reason ? reason : ""), TXT(now)),
        e);
    if (n < 0)
        return -1;
    if (n == 0) {
        static const sql_col col = {SQL_C_TEXT, 0, 32, NULL, 0};
        static const sql_row row = {32, &col, 1};
        char cur[32];
        if (sql_get(s, m->current, ARGS(TXT(id)), &row, cur, "databaseId", "Database", id, e) != 0)
            return -1;
        return err_set(e, 409, "StatusChanged", m->field, "Database %s is %s now, not %s", id, cur,
                       m->names[from]);
    }
    if (reason && reason[0])
        log_db(to == DB_FAILURE ? LOG_ERROR : LOG_INFO, id, "%s %s -> %s: %s", m->field,
               m->names[from], m->names[to], reason);
    else
        log_db_info(id, "%s %s -> %s", m->field, m->names[from], m->names[to]);
    return 0;
}

bool store_db_status_legal(store_db_status from, store_db_status to)
{
    return fsm_legal(&db_status_fsm, (int)from, (int)to);
}

int store_database_transition(store *s, const char *id, store_db_status from, store_db_status to,
                              const char *reason, pf_err *e)
{
    return fsm_transition(s, &db_status_fsm, id, (int)from, (int)to, reason, e);
}

/* ---- rows ---- */

int store_database_insert(store *s, const store_database *d, pf_err *e)
{
    return sql_run(s, &q_insert,
                   ARGS(TXT(d->id), TXT(d->workspace_id), TXT(d->project_id), OPT(d->branch_id),
                        TXT(d->name), OPT(d->logical_id), TXT(store_db_status_name(d->status)),
                        TXT(d->status_reason), INT(d->is_default ? 1 : 0), TXT(d->region),
                        TXT(d->source_type), OPT(d->source_database_id), OPT(d->source_backup_id),
                        OPT_INT(d->port > 0 ? d->port : -1), OPT(d->default_connection_id),
                        TXT(d->created_at)),
                   e);
}

int store_database_get(store *s, const char *ws, const char *id, store_database *out, pf_err *e)
{
    return sql_get(s, &q_get, ARGS(TXT(id), TXT(ws)), &store__row_database, out, "databaseId",
                   "Database", id, e);
}

int store_database_get_internal(store *s, const char *id, store_database *out, pf_err *e)
{
    return sql_get(s, &q_get_internal, ARGS(TXT(id)), &store__row_database, out, "databaseId",
                   "Database", id, e);
}

static const sql_col rev_cols[] = {
    COL_TEXT(store_database_rev, id),
    COL_I64(store_database_rev, rev),
};
static const sql_row row_rev = SQL_ROW(store_database_rev, rev_cols);

static int list_page(store *s, sql_stmt *q, const sql_row *r, const char *ws,
                     const store_db_filter *f, const store_page *pg, void **out, size_t *n,
                     store_page_out *po, pf_err *e)
{
    static const store_db_filter none = {0};
    f = f ? f : &none;
    return sql_page(s, &q_seq, ws, q, pg,
                    ARGS(TXT(ws), TXT(f->project_id), TXT(f->logical_id), TXT(f->branch_id),
                         TXT(f->branch_git_name)),
                    r, out, n, po, e);
}

int store_database_list(store *s, const char *ws, const store_db_filter *f, const store_page *pg,
                        store_database **out, size_t *n, store_page_out *po, pf_err *e)
{
    return list_page(s, &q_list, &store__row_database, ws, f, pg, (void **)out, n, po, e);
}

int store_database_list_of(store *s, const char *const *ids, size_t nids, store_database **out,
                           size_t *n, pf_err *e)
{
    return sql_all_of_ids(s, &q_of_ids, ids, nids, &store__row_database, (void **)out, n, e);
}

int store_database_list_revs(store *s, const char *ws, const store_db_filter *f,
                             const store_page *pg, store_database_rev **out, size_t *n,
                             store_page_out *po, pf_err *e)
{
    return list_page(s, &q_list_revs, &row_rev, ws, f, pg, (void **)out, n, po, e);
}

int store_database_list_internal(store *s, store_database **out, size_t *n, pf_err *e)
{
    return sql_all(s, &q_list_all, NOARGS, &store__row_database, (void **)out, n, 0, NULL, e);
}

/* An UPDATE of the database id whose ?1 is the id and whose last parameter is now. */
#define DB_TOUCH(q, ...)                                                                           \
    sql_touch(s, q, ARGS(TXT(id), __VA_ARGS__), "databaseId", "Database", id, e)

int store_database_set_unhealthy(store *s, const char *id, const char *reason, pf_err *e)
{
    return DB_TOUCH(&q_set_unhealthy, TXT(reason ? reason : ""));
}

int store_database_set_instance(store *s, const char *id, const char *instance_id, pf_err *e)
{
    return sql_touch(s, &q_set_instance, ARGS(TXT(id), TXT(instance_id)), "databaseId", "Database",
                     id, e);
}

int store_database_set_default_connection(store *s, const char *id, const char *conn_id, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    return DB_TOUCH(&q_set_default_conn, OPT(conn_id), TXT(now));
}

int store_database_update(store *s, const char *id, const char *name, const char *branch_id,
                          const char *logical_id, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    return DB_TOUCH(&q_update, TXT(name), TXT(branch_id), TXT(logical_id), TXT(now));
}

int store_database_set_source(store *s, const char *id, const char *type, const char *src_db,
                              const char *src_backup, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    return DB_TOUCH(&q_set_source, TXT(type), OPT(src_db), OPT(src_backup), TXT(now));
}

int store_database_set_default(store *s, const char *project_id, const char *id, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    if (sql_begin(s, e) != 0)
        return -1;
    int rc = sql_get(s, &q_in_project, ARGS(TXT(id), TXT(project_id)), NULL, NULL, "databaseId",
                     "Database", id, e);
    if (rc == 0)
        rc = sql_run(s, &q_clear_default, ARGS(TXT(project_id), TXT(id), TXT(now)), e);
    if (rc == 0)
        rc = sql_run(s, &q_set_default, ARGS(TXT(id), TXT(now)), e);
    return sql_end(s, rc, e);
}

/* Removes the row, its connections and its usage; its ops stay as history. */
int store_database_delete_row(store *s, const char *id, pf_err *e)
{
    if (sql_begin(s, e) != 0)
        return -1;
    int rc = sql_run(s, &q_del_conns, ARGS(TXT(id)), e);
    if (rc == 0)
        rc = sql_touch(s, &q_delete, ARGS(TXT(id)), "databaseId", "Database", id, e);
    if (rc == 0)
        rc = sql_run(s, &q_del_usage_days, ARGS(TXT(id)), e);
    if (rc == 0)
        rc = sql_run(s, &q_del_usage_counter, ARGS(TXT(id)), e);
    return sql_end(s, rc, e);
}

/* ---- ports ---- */

typedef struct port_row {
    int port;
} port_row;
static const sql_col port_cols[] = {COL_INT(port_row, port)};
static const sql_row port_row_def = SQL_ROW(port_row, port_cols);

int store_port_allocate(store *s, int lo, int hi, int *port, pf_err *e)
{
    if (lo < 1 || hi > 65535 || lo > hi)
        return err_internal(e, "store: bad port range %d-%d", lo, hi);
    port_row *held = NULL;
    size_t n = 0;
    if (sql_all(s, &q_ports, ARGS(INT(lo), INT(hi)), &port_row_def, (void **)&held, &n, 0, NULL,
                e) != 0)
        return -1;
    /* held is sorted: walk the range beside it */
    int p = lo;
    size_t k = 0;
    for (; p <= hi; p++) {
        while (k < n && held[k].port < p)
            k++;
        if ((k < n && held[k].port == p) || util_port_busy(p))
            continue;
        break;
    }
    free(held);
    if (p > hi)
        return err_set(e, 409, "Conflict", "port", "No free port left in %d-%d", lo, hi);
    *port = p;
    return 0;
}

/* ---- the pooler's view ---- */

int store_pool_list(store *s, store_database **dbs, size_t *ndb, store_connection **conns,
                    size_t *nconn, pf_err *e)
{
    *dbs = NULL;
    *conns = NULL;
    *ndb = *nconn = 0;
    /* one snapshot: no connection without its database, whatever commits meanwhile */
    if (sql_begin_read(s, e) != 0)
        return -1;
    int rc = sql_all(s, &q_pool_dbs, NOARGS, &store__row_database, (void **)dbs, ndb, 0, NULL, e);
    if (rc == 0)
        rc = sql_all(s, &q_pool_conns, NOARGS, &store__row_connection, (void **)conns, nconn, 0,
                     NULL, e);
    if (sql_end(s, rc, e) == 0)
        return 0;
    free(*dbs);
    free(*conns);
    *dbs = NULL;
    *conns = NULL;
    *ndb = *nconn = 0;
    return -1;
}
