/* store/queue: the durable queue of long work (ops), claimed by lanes of workers.
 *
 * Ops of one database run one at a time in FIFO order, except where the lane lets a kind
 * (o, in ?2) pass another (other, in ?3): today a credential op does not wait for a backup
 * (a backup copies whatever roles exist, a restore re-applies the catalog's, so their order
 * does not matter, while a backup of a large database would hold a rotate or revoke for
 * minutes). A lane's kinds are bound as ",kind,kind," text (kind_list), so they are written
 * once, by the caller. */
#include <stdio.h>

#include "store/sql.h"

const char *const store__op_kind_names[OP__COUNT] = {
    [OP_DB_PROVISION] = "db_provision", [OP_DB_DELETE] = "db_delete",
    [OP_CONN_SYNC] = "conn_sync",       [OP_CONN_DROP] = "conn_drop",
    [OP_DB_BACKUP] = "db_backup",       [OP_DB_RESTORE] = "db_restore",
    [OP_DB_CLONE] = "db_clone",
};
const char *const store__op_state_names[4] = {
    [OPS_PENDING] = "pending",
    [OPS_RUNNING] = "running",
    [OPS_DONE] = "done",
    [OPS_FAILED] = "failed",
};

#define OP_COLS                                                                                    \
    "o.id, o.kind, o.state, o.database_id, o.connection_id, o.attempts, o.error, o.created_at, "   \
    "o.updated_at, o.args"
static const sql_col op_cols[] = {
    COL_TEXT(store_op, id),
    COL_ENUM(store_op, kind, store__op_kind_names),
    COL_ENUM(store_op, state, store__op_state_names),
    COL_TEXT(store_op, database_id),
    COL_TEXT(store_op, connection_id),
    COL_INT(store_op, attempts),
    COL_TEXT(store_op, error),
    COL_TEXT(store_op, created_at),
    COL_TEXT(store_op, updated_at),
    COL_TEXT(store_op, args),
};
static const sql_row op_row = SQL_ROW(store_op, op_cols);

#define IN_LIST(list, kind) "instr(" list ", ',' || " kind " || ',') > 0"
#define PASSES(other) "(" IN_LIST("?2", "o.kind") " AND " IN_LIST("?3", other ".kind") ")"

static sql_stmt q_insert = SQL("INSERT INTO ops (id, kind, state, database_id, connection_id,"
                               " attempts, error, created_at, updated_at, args)"
                               " VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?7, ?7, ?8)");
static sql_stmt q_get = SQL("SELECT " OP_COLS " FROM ops o WHERE o.id = ?1");
/* the oldest pending op of the lane (?1 its kinds), due by ?4, whose database has nothing
 * running and nothing older queued that it may not pass */
static sql_stmt q_next =
    SQL("SELECT o.seq FROM ops o WHERE o.state = 'pending' AND " IN_LIST("?1", "o.kind") //
        "   AND (o.run_after IS NULL OR o.run_after <= ?4)"
        "   AND NOT EXISTS (SELECT 1 FROM ops r WHERE r.database_id = o.database_id"
        "       AND r.state = 'running' AND NOT " PASSES(
            "r") ")"
                 "   AND NOT EXISTS (SELECT 1 FROM ops q WHERE q.database_id = o.database_id"
                 "       AND q.state = 'pending' AND q.seq < o.seq AND NOT " PASSES(
                     "q") ")"
                          " ORDER BY o.seq LIMIT 1");
static sql_stmt q_start = SQL("UPDATE ops SET state = 'running', attempts = attempts + 1,"
                              " updated_at = ?2 WHERE seq = ?1 AND state = 'pending'");
static sql_stmt q_get_by_seq = SQL("SELECT " OP_COLS " FROM ops o WHERE o.seq = ?1");
static sql_stmt q_finish =
    SQL("UPDATE ops SET state = ?2, error = ?3, updated_at = ?4 WHERE id = ?1");
static sql_stmt q_requeue = SQL("UPDATE ops SET state = 'pending', error = ?2, updated_at = ?3,"
                                " run_after = ?4 WHERE id = ?1 AND state = 'running'");
static sql_stmt q_exists = SQL("SELECT 1 FROM ops WHERE id = ?1");
static sql_stmt q_reset =
    SQL("UPDATE ops SET state = 'pending', updated_at = ?1 WHERE state = 'running'");
static sql_stmt q_count_active =
    SQL("SELECT COUNT(*) FROM ops WHERE database_id = ?1 AND state IN ('pending', 'running')");
/* what keeps a database awake: a backup waiting in the queue does not (it runs offline) */
static sql_stmt q_count_awake =
    SQL("SELECT COUNT(*) FROM ops WHERE database_id = ?1 AND (state = 'running' OR"
        " (state = 'pending' AND kind <> 'db_backup'))");
static sql_stmt q_count_pending = SQL("SELECT COUNT(*) FROM ops o WHERE o.database_id = ?1"
                                      " AND o.state = 'pending' AND " IN_LIST("?2", "o.kind"));
static sql_stmt q_cancel = SQL("UPDATE ops SET state = 'failed', error = ?3, updated_at = ?4"
                               " WHERE database_id = ?1 AND kind = ?2 AND state = 'pending'");
static sql_stmt q_prune =
    SQL("DELETE FROM ops WHERE state IN ('done', 'failed') AND updated_at < ?1");
/* the fleet view (docs/console.md): what is in flight, oldest first; what failed, newest first */
static sql_stmt q_fleet_active =
    SQL("SELECT " OP_COLS " FROM ops o WHERE o.state IN ('pending', 'running') ORDER BY o.seq");
static sql_stmt q_fleet_failed =
    SQL("SELECT " OP_COLS " FROM ops o WHERE o.state = 'failed' ORDER BY o.seq DESC");

const char *store_op_kind_name(store_op_kind k)
{
    return (int)k >= 0 && k < OP__COUNT ? store__op_kind_names[k] : "unknown";
}

const char *store_op_state_name(store_op_state st)
{
    return (int)st >= 0 && (int)st < NAMES_COUNT(store__op_state_names) ? store__op_state_names[st]
                                                                        : "unknown";
}

int store_op_insert(store *s, const store_op *op, pf_err *e)
{
    if (op->state != OPS_PENDING)
        return err_internal(e, "store: op %s must be inserted pending", op->id);
    if ((int)op->kind < 0 || op->kind >= OP__COUNT)
        return err_internal(e, "store: op %s has an unknown kind %d", op->id, (int)op->kind);
    return sql_run(s, &q_insert,
                   ARGS(TXT(op->id), TXT(store_op_kind_name(op->kind)), TXT(op->database_id),
                        OPT(op->connection_id), INT(op->attempts), TXT(op->error),
                        TXT(op->created_at), TXT(op->args)),
                   e);
}

int store_op_get(store *s, const char *id, store_op *out, pf_err *e)
{
    return sql_get(s, &q_get, ARGS(TXT(id)), &op_row, out, "operationId", "Operation", id, e);
}

/* ",kind,kind," for the kinds of mask (bit 1u << kind), as the lane SQL binds it. */
static void kind_list(uint32_t mask, char *out, size_t cap)
{
    size_t len = (size_t)snprintf(out, cap, ",");
    for (int k = 0; k < OP__COUNT && len < cap; k++)
        if (mask & (1u << k))
            len += (size_t)snprintf(out + len, cap - len, "%s,", store__op_kind_names[k]);
}

int store_op_claim(store *s, const store_op_lane *lane, store_op *out, pf_err *e)
{
    char now[STORE_TS_MAX], kinds[160], passers[160], passed[160];
    util_now_iso(now);
    kind_list(lane->kinds, kinds, sizeof kinds);
    kind_list(lane->passers, passers, sizeof passers);
    kind_list(lane->passed, passed, sizeof passed);
    if (sql_begin(s, e) != 0) /* BEGIN IMMEDIATE: two workers never pick the same op */
        return -1;
    int64_t seq = 0;
    int got = sql_int(s, &q_next, ARGS(TXT(kinds), TXT(passers), TXT(passed), TXT(now)), &seq, e);
    int rc = got < 0 ? -1 : 0;
    if (got == 1)
        rc = sql_run(s, &q_start, ARGS(INT(seq), TXT(now)), e);
    if (got == 1 && rc == 0 && sql_one(s, &q_get_by_seq, ARGS(INT(seq)), &op_row, out, e) != 1)
        rc = err_internal(e, "store: claimed op vanished");
    if (sql_end(s, rc, e) != 0)
        return -1;
    return got;
}

int store_op_finish(store *s, const char *id, store_op_state final_state, const char *error,
                    pf_err *e)
{
    if (final_state != OPS_DONE && final_state != OPS_FAILED)
        return err_internal(e, "store: op %s cannot finish as %s", id,
                            store_op_state_name(final_state));
    char now[STORE_TS_MAX];
    util_now_iso(now);
    return sql_touch(
        s, &q_finish,
        ARGS(TXT(id), TXT(store_op_state_name(final_state)), TXT(error ? error : ""), TXT(now)),
        "operationId", "Operation", id, e);
}

int store_op_requeue(store *s, const char *id, const char *error, int64_t run_after_ms, pf_err *e)
{
    char now[STORE_TS_MAX], after[STORE_TS_MAX];
    util_now_iso(now);
    if (run_after_ms > 0)
        util_iso_from_ms(run_after_ms, after);
    int n = sql_write(
        s, &q_requeue,
        ARGS(TXT(id), TXT(error ? error : ""), TXT(now), TXT(run_after_ms > 0 ? after : NULL)), e);
    if (n != 0)
        return n < 0 ? -1 : 0;
    /* nothing changed: unknown op (404) or not running (409) */
    if (sql_get(s, &q_exists, ARGS(TXT(id)), NULL, NULL, "operationId", "Operation", id, e) != 0)
        return -1;
    return err_set(e, 409, "Conflict", "state", "Operation %s is not running", id);
}

/* n rows changed into *count (when asked), 0; or -1. */
static int changed(int n, int *count)
{
    if (n >= 0 && count)
        *count = n;
    return n < 0 ? -1 : 0;
}

int store_op_reset_running(store *s, int *count, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    return changed(sql_write(s, &q_reset, ARGS(TXT(now)), e), count);
}

int store_op_prune(store *s, const char *before, int *count, pf_err *e)
{
    return changed(sql_write(s, &q_prune, ARGS(TXT(before)), e), count);
}

int store_op_count_active(store *s, const char *database_id, int *count, pf_err *e)
{
    int64_t v = 0;
    if (sql_int(s, &q_count_active, ARGS(TXT(database_id)), &v, e) < 0)
        return -1;
    *count = (int)v;
    return 0;
}

int store_op_count_needing_server(store *s, const char *database_id, int *count, pf_err *e)
{
    int64_t v = 0;
    if (sql_int(s, &q_count_awake, ARGS(TXT(database_id)), &v, e) < 0)
        return -1;
    *count = (int)v;
    return 0;
}

int store_op_count_pending(store *s, const char *database_id, uint32_t kinds, int *count, pf_err *e)
{
    char list[160];
    kind_list(kinds, list, sizeof list);
    int64_t v = 0;
    if (sql_int(s, &q_count_pending, ARGS(TXT(database_id), TXT(list)), &v, e) < 0)
        return -1;
    *count = (int)v;
    return 0;
}

int store_op_cancel_pending(store *s, const char *database_id, store_op_kind kind,
                            const char *reason, int *count, pf_err *e)
{
    char now[STORE_TS_MAX];
    util_now_iso(now);
    return changed(sql_write(s, &q_cancel,
                             ARGS(TXT(database_id), TXT(store_op_kind_name(kind)),
                                  TXT(reason ? reason : ""), TXT(now)),
                             e),
                   count);
}

int store_op_list_fleet(store *s, bool failed, size_t max, store_op **out, size_t *n, bool *more,
                        pf_err *e)
{
    return sql_all(s, failed ? &q_fleet_failed : &q_fleet_active, NOARGS, &op_row, (void **)out, n,
                   max, more, e);
}
