/* The reconciler: desired state (the catalog) against what exists and runs.
 *  - at start: instance directories with no catalog row are removed; every database that
 *    should run gets a provision op (which adopts a server that still runs, or starts it),
 *    every database being deleted a delete op;
 *  - every reconcile_ms: a ready database whose server died gets a provision op, within
 *    its restart intensity (supervise.c); past it, the database is reported unhealthy and
 *    restarted with a backoff. PgBouncer is supervised the same way (pooler.c);
 *  - the backup schedule: a backup of each ready, idle database every backup_interval_s
 *    when it had writes (full, differential or incremental: ops_scheduled_type);
 *  - projects whose expiry passed are deleted (expiry.c);
 *  - finished ops older than a week are deleted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/ops_int.h"
#include "util/log.h"
#include "util/util.h"

/* ---- orphans ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Instances that no database maps to (a crash between taking an instance and recording
 * it, or after a delete's row went) are removed. */
static void remove_orphan_dirs(ops *o)
{
    pf_err e;
    char **ids = NULL;
    size_t n = 0;
    store_database *dbs = NULL;
    size_t ndb = 0;
    if (store_database_list_internal(o->st, &dbs, &ndb, &e) != 0) {
        log_sub(LOG_ERROR, "reconcile", "cannot list databases: %s", e.message);
        return;
    }
    if (engine_instance_list(o->en, &ids, &n, &e) != 0) {
        log_sub(LOG_ERROR, "reconcile", "cannot list instances: %s", e.message);
        free(dbs);
        return;
    }
    const char **mapped = xcalloc(ndb ? ndb : 1, sizeof *mapped);
    for (size_t i = 0; i < ndb; i++)
        mapped[i] = ops__inst(&dbs[i]);
    qsort(mapped, ndb, sizeof *mapped, cmp_str);
    for (size_t i = 0; i < n; i++) {
        pf_err le;
        const char *key = ids[i];
        if (bsearch(&key, mapped, ndb, sizeof *mapped, cmp_str))
            continue;
        log_sub(LOG_WARN, "reconcile", "instance %s has no database; removing it", ids[i]);
        if (engine_instance_destroy(o->en, ids[i], &le) != 0)
            log_sub(LOG_ERROR, "reconcile", "cannot remove the orphan instance %s: %s", ids[i],
                    le.message);
    }
    free(mapped);
    free(dbs);
    engine_free_ids(ids, n);
}

/* ---- reconcile ---- */

/* A ready database whose server is not running: restarted now, or later when its restarts
 * went past the intensity (then it is reported unhealthy). True when a restart is due. */
static bool restart_due(ops *o, const store_database *db)
{
    ops_restarts *rs = ops__restarts_of(o, db->id);
    int64_t wait_ms = 0;
    if (ops__restart_allowed(rs, ops__now_ms(o), &wait_ms)) {
        log_db_warn(db->id, "server is not running; restarting it (%d restart(s) in %d s)",
                    ops__restarts_recent(rs, ops__now_ms(o)), OPS_RESTART_PERIOD_MS / 1000);
        return true;
    }
    if (rs->reported_ms == rs->not_before_ms)
        return false;
    rs->reported_ms = rs->not_before_ms;
    log_db_warn(db->id,
                "server is not running, past its restart intensity (%d in %d s): next "
                "restart in %lld s",
                OPS_RESTART_INTENSITY, OPS_RESTART_PERIOD_MS / 1000, (long long)(wait_ms / 1000));
    if (db->unhealthy[0])
        return false; /* keep the reason it already has (why its start failed) */
    char reason[STORE_REASON_MAX];
    snprintf(reason, sizeof reason,
             "the server keeps stopping (%d restarts in %d s); it is restarted with a backoff of "
             "up to %d s",
             OPS_RESTART_INTENSITY, OPS_RESTART_PERIOD_MS / 1000, OPS_BACKOFF_MAX_MS / 1000);
    pf_err e;
    if (store_database_set_unhealthy(o->st, db->id, reason, &e) != 0)
        log_db_error(db->id, "cannot record unhealthy: %s", e.message);
    else
        log_db_error(db->id, "unhealthy: %s", reason);
    return false;
}

/* startup: true for the first pass (every database that should run gets a provision op);
 * later passes only restart ready databases whose server died. */
void ops__reconcile(ops *o, bool startup)
{
    pf_err e;
    if (startup)
        remove_orphan_dirs(o);
    store_database *dbs = NULL;
    size_t n = 0;
    if (store_database_list_internal(o->st, &dbs, &n, &e) != 0) {
        log_sub(LOG_ERROR, "reconcile", "cannot list databases: %s", e.message);
        return;
    }
    int queued = 0;
    for (size_t i = 0; i < n && !ops__stopping(o); i++) {
        const store_database *db = &dbs[i];
        /* a server that outlived a crash is stopped by a stop from now on, even when a stop
         * comes before its provision op adopts it */
        if (startup)
            engine_instance_adopt(o->en, ops__inst(db));
        int active = 0;
        if (store_op_count_active(o->st, db->id, &active, &e) != 0)
            continue;
        if (active > 0) {
            /* a server that outlived a crash gets adopted now even when an op (e.g. a
             * backup) is queued before any provision could be, so a stop stops it */
            if (startup && db->status == DB_READY &&
                engine_instance_running(o->en, ops__inst(db)) &&
                engine_instance_start(o->en, ops__inst(db), db->port, o->cfg.start_timeout_ms,
                                      &e) != 0)
                log_db_warn(db->id, "cannot adopt the running server: %s", e.message);
            continue;
        }
        store_op_kind kind;
        if (db->status == DB_DELETING) {
            ops__restarts_forget(o, db->id);
            kind = OP_DB_DELETE;
        } else if (db->status == DB_FAILURE)
            continue;
        else if (startup)
            kind = OP_DB_PROVISION;
        else if (db->status != DB_READY)
            continue;
        else if (engine_instance_running(o->en, ops__inst(db))) {
            ops__running(o, db->id);
            continue;
        } else if (engine_instance_asleep(o->en, ops__inst(db), NULL))
            continue; /* asleep: the first connection wakes it */
        else if (restart_due(o, db))
            kind = OP_DB_PROVISION;
        else
            continue;
        if (ops__enqueue(o, kind, db->id, &e) != 0)
            log_db_error(db->id, "cannot queue %s: %s", store_op_kind_name(kind), e.message);
        else
            queued++;
    }
    free(dbs);
    if (queued) {
        if (startup)
            log_sub(LOG_INFO, "reconcile", "%d database(s) to bring up or clean up", queued);
        ops_notify(o);
    }
}

/* ---- the backup schedule ---- */

static int64_t iso_unix(const char *iso)
{
    int64_t ms = 0;
    return iso && iso[0] && util_iso_parse(iso, &ms) ? ms / 1000 : 0;
}

store_backup_type ops_scheduled_type(const ops_config *cfg, int64_t now_s, int64_t last_full_s,
                                     int64_t last_diff_s)
{
    if (last_full_s < 0 || now_s - last_full_s >= cfg->backup_full_interval_s)
        return BACKUP_FULL;
    if (cfg->backup_diff_interval_s <= 0 || last_diff_s < 0 ||
        now_s - last_diff_s >= cfg->backup_diff_interval_s)
        return BACKUP_DIFF;
    return BACKUP_INCR;
}

/* Queues a backup for a ready, idle database whose last backup is older than the interval
 * and which had writes since (its type from ops_scheduled_type). */
static void schedule_one(ops *o, const store_database *db, int64_t now_s)
{
    pf_err e;
    store_backup *rows = NULL;
    size_t n = 0;
    if (store_backup_list_all(o->st, db->id, &rows, &n, &e) != 0)
        return;
    const store_backup *last = n ? &rows[n - 1] : NULL, *last_ok = NULL;
    int64_t last_full_s = -1, last_diff_s = -1;
    for (size_t i = 0; i < n; i++) {
        if (rows[i].status != BACKUP_COMPLETED)
            continue;
        last_ok = &rows[i];
        if (rows[i].type == BACKUP_FULL)
            last_full_s = last_diff_s = iso_unix(rows[i].started_at);
        else if (rows[i].type == BACKUP_DIFF)
            last_diff_s = iso_unix(rows[i].started_at);
    }
    bool due = !last || now_s - iso_unix(last->started_at) >= o->cfg.backup_interval_s;
    char mark[32] = "";
    /* a sleeping server is not woken to read its mark: it slept with it */
    bool asleep = engine_instance_asleep(o->en, ops__inst(db), mark);
    if (due && last_ok && last_ok->write_mark[0] &&
        (asleep ? mark[0] != '\0' : engine_write_mark(o->en, ops__inst(db), mark, &e) == 0) &&
        !strcmp(mark, last_ok->write_mark)) {
        log_db_debug(db->id, "no writes since backup %s: scheduled backup skipped", last_ok->id);
        due = false;
    }
    store_backup_type type = ops_scheduled_type(&o->cfg, now_s, last_full_s, last_diff_s);
    free(rows);
    if (!due)
        return;
    store_backup b;
    store_op op;
    ops_backup_init(&b, &op, db->id, type);
    if (store_tx_begin(o->st, &e) != 0)
        return;
    if (store_backup_insert(o->st, &b, &e) != 0 || store_op_insert(o->st, &op, &e) != 0) {
        store_tx_rollback(o->st);
        log_db_error(db->id, "cannot queue a scheduled backup: %s", e.message);
        return;
    }
    if (store_tx_commit(o->st, &e) == 0)
        log_op(LOG_INFO, op.id, db->id, NULL, "scheduled %s backup queued",
               store_backup_type_name(type));
}

void ops__schedule_backups(ops *o)
{
    int interval = o->cfg.backup_interval_s;
    if (interval <= 0)
        return;
    int64_t period = interval >= 120 ? 60000 : interval * 500L;
    int64_t now = util_now_ms();
    if (now - o->last_sched_ms < period)
        return;
    o->last_sched_ms = now;
    pf_err e;
    store_database *dbs = NULL;
    size_t n = 0;
    if (store_database_list_internal(o->st, &dbs, &n, &e) != 0)
        return;
    int64_t now_s = (int64_t)time(NULL);
    for (size_t i = 0; i < n && !ops__stopping(o); i++) {
        int active = 0;
        if (dbs[i].status != DB_READY ||
            store_op_count_active(o->st, dbs[i].id, &active, &e) != 0 || active > 0)
            continue;
        schedule_one(o, &dbs[i], now_s);
    }
    free(dbs);
    ops_notify(o);
}

/* ---- pruning ---- */

/* Finished ops are history: kept a week (to read why something failed), then deleted, so
 * the catalog of a long-running server does not grow with every backup and rotate. */
#define OPS_KEEP_S (7 * 86400)
#define OPS_PRUNE_EVERY_MS (3600 * 1000)

void ops__prune(ops *o)
{
    char before[STORE_TS_MAX];
    util_iso_from_ms(util_wall_ms() - (int64_t)OPS_KEEP_S * 1000, before);
    int n = 0;
    pf_err e;
    if (store_op_prune(o->st, before, &n, &e) != 0)
        log_sub(LOG_WARN, "ops", "cannot delete finished ops: %s", e.message);
    else if (n > 0)
        log_sub(LOG_INFO, "ops", "deleted %d op(s) that ended before %s", n, before);
}

/* ---- the reconciler thread ---- */

void *ops__reconciler_main(void *arg)
{
    ops *o = arg;
    ops__pooler_supervise(o, true);
    ops__prune(o);
    int64_t pruned_at = util_now_ms();
    for (;;) {
        if (ops__pause_or_stop(o, &o->wake, o->cfg.reconcile_ms))
            break;
        ops__reconcile(o, false);
        ops__schedule_backups(o);
        ops__reap_expired(o);
        ops__pooler_supervise(o, false);
        if (util_now_ms() - pruned_at >= OPS_PRUNE_EVERY_MS) {
            ops__prune(o);
            pruned_at = util_now_ms();
        }
    }
    return NULL;
}
