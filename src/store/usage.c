/* store/usage: operations and storage per database and UTC day, and the fleet statistics
 * of the operator's /metrics. */
#include <stdlib.h>
#include <string.h>

#include "store/sql.h"

static sql_stmt q_counter_get = SQL("SELECT xacts FROM usage_counters WHERE database_id = ?1");
static sql_stmt q_counter_set =
    SQL("INSERT INTO usage_counters (database_id, xacts, sampled_at) VALUES (?1, ?2, ?3)"
        " ON CONFLICT (database_id) DO UPDATE"
        " SET xacts = excluded.xacts, sampled_at = excluded.sampled_at");
static sql_stmt q_day_add =
    SQL("INSERT INTO usage_days (database_id, day, operations, storage_bytes)"
        " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (database_id, day) DO UPDATE"
        " SET operations = operations + excluded.operations,"
        " storage_bytes = excluded.storage_bytes");
static sql_stmt q_sum = SQL("SELECT COALESCE(SUM(operations), 0),"
                            " (SELECT storage_bytes FROM usage_days WHERE database_id = ?1"
                            "  AND day BETWEEN ?2 AND ?3 ORDER BY day DESC LIMIT 1), COUNT(*)"
                            " FROM usage_days WHERE database_id = ?1 AND day BETWEEN ?2 AND ?3");
static sql_stmt q_stats_dbs = SQL("SELECT status, COUNT(*) FROM databases GROUP BY status");
static sql_stmt q_stats_ops =
    SQL("SELECT kind, state, COUNT(*) FROM ops WHERE state IN ('pending', 'running')"
        " GROUP BY kind, state");
static sql_stmt q_last_backups =
    SQL("SELECT d.id, (SELECT MAX(b.stopped_at) FROM backups b"
        " WHERE b.database_id = d.id AND b.status = 'completed')"
        " FROM databases d WHERE d.status != 'deleting' ORDER BY d.id");

static const sql_col usage_cols[] = {
    COL_I64(store_usage, operations),
    COL_I64(store_usage, storage_bytes),
    COL_I64(store_usage, days),
};
static const sql_row usage_row = SQL_ROW(store_usage, usage_cols);

typedef struct db_count {
    store_db_status status;
    int64_t n;
} db_count;
static const sql_col db_count_cols[] = {
    COL_ENUM(db_count, status, store__db_status_names),
    COL_I64(db_count, n),
};
static const sql_row db_count_row = SQL_ROW(db_count, db_count_cols);

typedef struct op_count {
    store_op_kind kind;
    store_op_state state;
    int64_t n;
} op_count;
static const sql_col op_count_cols[] = {
    COL_ENUM(op_count, kind, store__op_kind_names),
    COL_ENUM(op_count, state, store__op_state_names),
    COL_I64(op_count, n),
};
static const sql_row op_count_row = SQL_ROW(op_count, op_count_cols);

static const sql_col last_backup_cols[] = {
    COL_TEXT(store_last_backup, database_id),
    COL_TEXT(store_last_backup, stopped_at),
};
static const sql_row last_backup_row = SQL_ROW(store_last_backup, last_backup_cols);

int store_usage_record(store *s, const char *database_id, const char *day, int64_t xacts,
                       int64_t own_xacts, int64_t storage_bytes, bool baseline, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    if (sql_begin(s, e) != 0)
        return -1;
    int64_t prev = 0;
    int got = sql_int(s, &q_counter_get, ARGS(TXT(database_id)), &prev, e);
    /* a counter that went down was reset (a crash, a restore): count from the new value on */
    int64_t add = (!baseline && got == 1 && xacts >= prev) ? xacts - prev - own_xacts : 0;
    if (add < 0)
        add = 0;
    int rc = got < 0 ? -1 : 0;
    if (rc == 0)
        rc = sql_run(s, &q_counter_set, ARGS(TXT(database_id), INT(xacts), TXT(now)), e);
    if (rc == 0)
        rc = sql_run(s, &q_day_add, ARGS(TXT(database_id), TXT(day), INT(add), INT(storage_bytes)),
                     e);
    return sql_end(s, rc, e);
}

int store_usage_get(store *s, const char *database_id, const char *from_day, const char *to_day,
                    store_usage *out, pf_err *e)
{
    memset(out, 0, sizeof *out);
    return sql_one(s, &q_sum, ARGS(TXT(database_id), TXT(from_day), TXT(to_day)), &usage_row, out,
                   e) < 0
               ? -1
               : 0;
}

int store_stats_get(store *s, store_stats *out, pf_err *e)
{
    memset(out, 0, sizeof *out);
    db_count *dbs = NULL;
    op_count *ops = NULL;
    size_t ndb = 0, nops = 0;
    if (sql_all(s, &q_stats_dbs, NOARGS, &db_count_row, (void **)&dbs, &ndb, 0, NULL, e) != 0)
        return -1;
    for (size_t i = 0; i < ndb; i++)
        if ((int)dbs[i].status >= 0 && dbs[i].status < STORE_DB_STATUS_COUNT)
            out->databases[dbs[i].status] += dbs[i].n;
    free(dbs);
    if (sql_all(s, &q_stats_ops, NOARGS, &op_count_row, (void **)&ops, &nops, 0, NULL, e) != 0)
        return -1;
    for (size_t i = 0; i < nops; i++)
        if ((int)ops[i].kind >= 0 && ops[i].kind < OP__COUNT &&
            (ops[i].state == OPS_PENDING || ops[i].state == OPS_RUNNING))
            out->ops[ops[i].kind][ops[i].state] += ops[i].n;
    free(ops);
    return 0;
}

int store_stats_last_backups(store *s, store_last_backup **out, size_t *n, pf_err *e)
{
    return sql_all(s, &q_last_backups, NOARGS, &last_backup_row, (void **)out, n, 0, NULL, e);
}
