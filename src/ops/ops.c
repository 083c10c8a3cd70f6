#include "ops/ops.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "util/util.h"

struct ops {
    store *st;
    engine *en;
    ops_config cfg;
    pthread_t *workers;
    pthread_t reconciler;
    bool reconciler_started;
    pthread_t spares;
    bool spares_started;
    pthread_t usage; /* the usage sampler */
    bool usage_started;
    pthread_cond_t usage_cv; /* only stopping */
    bool spares_wanted;      /* a provision used a spare: refill */
    int nworkers;
    pthread_t *slow; /* the backup lane's workers */
    int nslow;
    int64_t last_sched_ms; /* last pass of the backup scheduler */
    pthread_mutex_t mu;
    pthread_cond_t wake; /* new work, or stopping */
    pthread_cond_t done; /* an op ended */
    pthread_cond_t refill;
    bool stopping;
    pthread_mutex_t pooler_mu; /* one pooler sync at a time: catalog read + apply */
    ops_stats stats;           /* under mu */
};

void ops_op_init(store_op *op, store_op_kind kind, const char *db_id, const char *conn_id)
{
    memset(op, 0, sizeof *op);
    util_id_new("op", op->id);
    op->kind = kind;
    op->state = OPS_PENDING;
    snprintf(op->database_id, sizeof op->database_id, "%s", db_id ? db_id : "");
    snprintf(op->connection_id, sizeof op->connection_id, "%s", conn_id ? conn_id : "");
    util_now_iso(op->created_at);
    memcpy(op->updated_at, op->created_at, sizeof op->updated_at);
}

void ops_backup_init(store_backup *b, store_op *op, const char *db_id, store_backup_type type)
{
    memset(b, 0, sizeof *b);
    util_id_new("bkp", b->id);
    snprintf(b->database_id, sizeof b->database_id, "%s", db_id);
    b->type = type;
    b->status = BACKUP_RUNNING;
    b->size = -1;
    util_now_iso(b->started_at);
    ops_op_init(op, OP_DB_BACKUP, db_id, NULL);
    static const char *const names[] = {"full", "diff", "incr"};
    snprintf(op->args, sizeof op->args, "{\"backupId\":\"%s\",\"type\":\"%s\"}", b->id,
             names[type]);
}

static void deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* ---- the op kinds ---- */

static int enqueue(ops *o, store_op_kind kind, const char *db_id, pf_err *e)
{
    store_op op;
    ops_op_init(&op, kind, db_id, NULL);
    return store_op_insert(o->st, &op, e);
}

static int pooler_sync(ops *o, pf_err *e);

/* Waits ms (cv wakes it only to check for stopping); true when ops is stopping. */
static bool pause_or_stop(ops *o, pthread_cond_t *cv, int ms)
{
    struct timespec ts;
    deadline_in(&ts, ms);
    pthread_mutex_lock(&o->mu);
    while (!o->stopping) {
        if (pthread_cond_timedwait(cv, &o->mu, &ts) == ETIMEDOUT)
            break;
    }
    bool stop = o->stopping;
    pthread_mutex_unlock(&o->mu);
    return stop;
}

/* ---- usage ---- */

/* One sample of a running database into today's usage (baseline: only the starting point). */
static void sample_usage(ops *o, const char *db_id, bool baseline)
{
    if (o->cfg.usage_interval_s <= 0)
        return;
    int64_t xacts = 0, bytes = 0;
    pf_err e;
    char day[16];
    if (engine_usage_sample(o->en, db_id, &xacts, &bytes, &e) != 0) {
        log_debug("db=%s no usage sample: %s", db_id, e.message);
        return;
    }
    util_day_from_ms(util_wall_ms(), day);
    /* the previous sample's query is one of the transactions counted now */
    if (store_usage_record(o->st, db_id, day, xacts, 1, bytes, baseline, &e) != 0)
        log_warn("db=%s usage not recorded: %s", db_id, e.message);
}

/* Every usage_interval_s: a sample of each ready database whose server runs. */
static void *usage_main(void *arg)
{
    ops *o = arg;
    for (;;) {
        if (pause_or_stop(o, &o->usage_cv, o->cfg.usage_interval_s * 1000))
            break;
        store_database *dbs = NULL;
        size_t n = 0;
        pf_err e;
        if (store_database_list_internal(o->st, &dbs, &n, &e) != 0) {
            log_warn("usage: cannot list databases: %s", e.message);
            continue;
        }
        int64_t t0 = util_now_ms();
        int sampled = 0;
        for (size_t i = 0; i < n; i++)
            if (dbs[i].status == DB_READY) {
                sample_usage(o, dbs[i].id, false);
                sampled++;
            }
        free(dbs);
        pthread_mutex_lock(&o->mu);
        o->stats.usage_pass_ms = util_now_ms() - t0;
        o->stats.usage_pass_dbs = sampled;
        pthread_mutex_unlock(&o->mu);
    }
    return NULL;
}

/* The database is ready; with first_backup, its first full backup is queued in the same
 * transaction (a new database, or data that a restore replaced). */
static int set_ready(ops *o, const store_database *db, bool first_backup, pf_err *e)
{
    store_backup b;
    store_op bop;
    ops_backup_init(&b, &bop, db->id, BACKUP_FULL);
    /* "ready" promises both endpoints: the pooler knows the database first */
    if (pooler_sync(o, e) != 0)
        return -1;
    if (store_tx_begin(o->st, e) != 0)
        return -1;
    /* a retried restore may find it ready already */
    int rc = db->status == DB_READY
                 ? 0
                 : store_database_transition(o->st, db->id, db->status, DB_READY, "", e);
    if (rc == 0 && first_backup)
        rc = store_backup_insert(o->st, &b, e);
    if (rc == 0 && first_backup)
        rc = store_op_insert(o->st, &bop, e);
    if (rc != 0) {
        store_tx_rollback(o->st);
        return -1;
    }
    if (store_tx_commit(o->st, e) != 0)
        return -1;
    /* usage counts from here: new data (a new database, a restore) has its own counter */
    sample_usage(o, db->id, true);
    return 0;
}

static int run_provision(ops *o, const store_op *op, pf_err *e)
{
    store_database db;
    pf_err le;
    if (store_database_get_internal(o->st, op->database_id, &db, &le) != 0)
        return le.status == 404 ? 0 : (*e = le, -1);
    if (db.status == DB_DELETING || db.status == DB_FAILURE)
        return 0;
    /* what a restore interrupted after its swap left (no restore runs now: ops of one
     * database run in order) */
    engine_restore_cleanup(o->en, db.id);
    if (engine_instance_create(o->en, db.id, db.port, e) != 0)
        return -1;
    if (engine_instance_start(o->en, db.id, db.port, o->cfg.start_timeout_ms, e) != 0)
        return -1;
    store_connection *conns = NULL;
    size_t n = 0;
    if (store_connection_list_for_db(o->st, db.id, false, &conns, &n, e) != 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = engine_role_ensure(o->en, db.id, conns[i].role, conns[i].verifier, e);
    free(conns);
    if (rc != 0)
        return -1;
    if (db.status == DB_PROVISIONING || db.status == DB_RECOVERING) {
        if (set_ready(o, &db, db.status == DB_PROVISIONING, e) != 0)
            return -1;
    }
    return 0;
}

static int run_delete(ops *o, const store_op *op, pf_err *e)
{
    if (engine_instance_destroy(o->en, op->database_id, e) != 0)
        return -1;
    engine_restore_cleanup(o->en, op->database_id);
    if (engine_backup_remove(o->en, op->database_id, e) != 0 ||
        store_backup_delete_for_db(o->st, op->database_id, e) != 0)
        return -1;
    pf_err le;
    if (store_database_delete_row(o->st, op->database_id, &le) != 0 && le.status != 404) {
        *e = le;
        return -1;
    }
    log_info("db=%s deleted: server stopped, files and backups removed", op->database_id);
    return 0;
}

static int run_conn_sync(ops *o, const store_op *op, pf_err *e)
{
    store_connection c;
    store_database db;
    pf_err le;
    if (store_connection_get_internal(o->st, op->connection_id, &c, &le) != 0)
        return le.status == 404 ? 0 : (*e = le, -1);
    if (c.deleting)
        return 0;
    if (store_database_get_internal(o->st, c.database_id, &db, &le) != 0)
        return le.status == 404 ? 0 : (*e = le, -1);
    if (db.status == DB_DELETING)
        return 0;
    if (db.status == DB_FAILURE)
        return err_set(e, 409, "DatabaseFailed", NULL, "database %s is in failure", db.id);
    if (!engine_instance_running(o->en, db.id))
        return err_internal(e, "the server of %s is not running", db.id);
    return engine_role_ensure(o->en, db.id, c.role, c.verifier, e);
}

static int run_conn_drop(ops *o, const store_op *op, pf_err *e)
{
    store_connection c;
    store_database db;
    pf_err le;
    if (store_connection_get_internal(o->st, op->connection_id, &c, &le) != 0)
        return le.status == 404 ? 0 : (*e = le, -1);
    if (store_database_get_internal(o->st, c.database_id, &db, &le) == 0 &&
        db.status != DB_DELETING && engine_instance_running(o->en, db.id)) {
        if (engine_role_drop(o->en, db.id, c.role, e) != 0)
            return -1;
    }
    if (store_connection_delete_row(o->st, c.id, &le) != 0 && le.status != 404) {
        *e = le;
        return -1;
    }
    return 0;
}

/* ---- backups, restore, clone ---- */

/* A string member of the op's JSON args into out ("" when absent). */
static void arg_str(const store_op *op, const char *key, char *out, size_t n)
{
    out[0] = '\0';
    json_t *j = json_loads(op->args, 0, NULL);
    const char *v = j ? json_string_value(json_object_get(j, key)) : NULL;
    if (v)
        snprintf(out, n, "%s", v);
    json_decref(j);
}

static store_backup_type type_of(engine_backup_type t)
{
    return t == ENGINE_BACKUP_INCR   ? BACKUP_INCR
           : t == ENGINE_BACKUP_DIFF ? BACKUP_DIFF
                                     : BACKUP_FULL;
}

/* Makes the catalog's backups of db_id match pgBackRest's list. */
static int sync_backups(ops *o, const char *db_id, pf_err *e)
{
    engine_backup *list = NULL;
    size_t n = 0;
    if (engine_backup_list(o->en, db_id, &list, &n, e) != 0)
        return -1;
    store_backup *seen = xcalloc(n ? n : 1, sizeof *seen);
    for (size_t i = 0; i < n; i++) {
        snprintf(seen[i].label, sizeof seen[i].label, "%s", list[i].label);
        seen[i].type = type_of(list[i].type);
        seen[i].size = list[i].size;
        util_iso_from_ms(list[i].start * 1000, seen[i].started_at);
        util_iso_from_ms(list[i].stop * 1000, seen[i].stopped_at);
    }
    int rc = store_backup_sync(o->st, db_id, seen, n, e);
    free(seen);
    free(list);
    return rc;
}

/* Takes the backup of row bkp_id (if not taken yet), then expires and syncs. *label gets
 * the backup's pgBackRest label. */
static int take_backup(ops *o, const store_database *db, const char *bkp_id,
                       engine_backup_type type, char label[64], pf_err *e)
{
    store_backup b;
    if (store_backup_get(o->st, db->id, bkp_id, &b, e) != 0)
        return -1;
    if (b.status == BACKUP_COMPLETED && b.label[0]) {
        snprintf(label, 64, "%s", b.label);
        return 0;
    }
    char mark[32];
    pf_err le;
    if (engine_write_mark(o->en, db->id, mark, &le) == 0)
        store_backup_set_mark(o->st, b.id, mark, &le);
    engine_backup out;
    if (engine_backup_run(o->en, db->id, db->port, type, &out, e) != 0)
        return -1;
    char stopped[STORE_TS_MAX];
    util_iso_from_ms(out.stop * 1000, stopped);
    if (store_backup_finish(o->st, b.id, BACKUP_COMPLETED, out.label, out.size, stopped, "", e) !=
        0)
        return -1;
    snprintf(label, 64, "%s", out.label);
    if (engine_backup_expire(o->en, db->id, &le) != 0)
        log_warn("db=%s expire failed: %s", db->id, le.message);
    if (sync_backups(o, db->id, &le) != 0)
        log_warn("db=%s backup list not synced: %s", db->id, le.message);
    return 0;
}

static engine_backup_type arg_type(const store_op *op)
{
    char t[16];
    arg_str(op, "type", t, sizeof t);
    return !strcmp(t, "incr")   ? ENGINE_BACKUP_INCR
           : !strcmp(t, "diff") ? ENGINE_BACKUP_DIFF
                                : ENGINE_BACKUP_FULL;
}

static int run_backup(ops *o, const store_op *op, pf_err *e)
{
    store_database db;
    pf_err le;
    char bkp_id[PF_ID_MAX], label[64];
    arg_str(op, "backupId", bkp_id, sizeof bkp_id);
    if (store_database_get_internal(o->st, op->database_id, &db, &le) != 0 ||
        db.status == DB_DELETING || db.status == DB_FAILURE) {
        store_backup_finish(o->st, bkp_id, BACKUP_FAILED, NULL, -1, NULL,
                            "the database is gone or failed", &le);
        return 0;
    }
    if (!engine_instance_running(o->en, db.id))
        return err_internal(e, "the server of %s is not running", db.id);
    return take_backup(o, &db, bkp_id, arg_type(op), label, e);
}

/* The target's live credentials, as the engine wants them. Caller frees both arrays. */
static int live_roles(ops *o, const char *db_id, store_connection **conns, engine_role **roles,
                      size_t *n, pf_err *e)
{
    if (store_connection_list_for_db(o->st, db_id, false, conns, n, e) != 0)
        return -1;
    *roles = xcalloc(*n ? *n : 1, sizeof **roles);
    for (size_t i = 0; i < *n; i++) {
        (*roles)[i].role = (*conns)[i].role;
        (*roles)[i].verifier = (*conns)[i].verifier;
    }
    return 0;
}

/* Restores label of source_id into the op's database, starts it and makes it ready. */
static int restore_into(ops *o, const store_op *op, store_database *db, const char *source_id,
                        const char *label, const char *pitr, int source_port, pf_err *e)
{
    store_connection *conns = NULL;
    engine_role *roles = NULL;
    size_t n = 0;
    if (live_roles(o, db->id, &conns, &roles, &n, e) != 0)
        return -1;
    engine_restore_spec sp = {.source_id = source_id,
                              .label = label,
                              .target_time = pitr && pitr[0] ? pitr : NULL,
                              .roles = roles,
                              .nroles = n,
                              .token = op->id,
                              .source_port = source_port};
    int rc = engine_restore(o->en, db->id, &sp, e);
    free(roles);
    free(conns);
    if (rc != 0)
        return -1;
    if (engine_instance_start(o->en, db->id, db->port, o->cfg.start_timeout_ms, e) != 0)
        return -1;
    if (set_ready(o, db, true, e) != 0)
        return -1;
    /* the replaced data goes once the database is ready again: removing a large directory
     * is neither downtime nor part of the wait for `ready` (a crash right here leaves it
     * to the next provision or restore of this database) */
    engine_restore_cleanup(o->en, db->id);
    return 0;
}

static int run_restore(ops *o, const store_op *op, pf_err *e)
{
    store_database db, src;
    pf_err le;
    if (store_database_get_internal(o->st, op->database_id, &db, &le) != 0)
        return le.status == 404 ? 0 : (*e = le, -1);
    if (db.status == DB_DELETING || db.status == DB_FAILURE)
        return 0;
    char src_id[PF_ID_MAX], label[64], pitr[48];
    arg_str(op, "sourceDatabaseId", src_id, sizeof src_id);
    arg_str(op, "label", label, sizeof label);
    arg_str(op, "pointInTime", pitr, sizeof pitr);
    /* a point in time may lie in WAL the source has not archived yet */
    if (pitr[0] && store_database_get_internal(o->st, src_id, &src, &le) == 0 &&
        engine_instance_running(o->en, src_id) &&
        engine_backup_flush_wal(o->en, src_id, src.port, e) != 0)
        return -1;
    return restore_into(o, op, &db, src_id, label, pitr, 0, e);
}

static int run_clone(ops *o, const store_op *op, pf_err *e)
{
    store_database db, src;
    pf_err le;
    if (store_database_get_internal(o->st, op->database_id, &db, &le) != 0)
        return le.status == 404 ? 0 : (*e = le, -1);
    if (db.status == DB_DELETING || db.status == DB_FAILURE)
        return 0;
    char src_id[PF_ID_MAX], bkp_id[PF_ID_MAX];
    arg_str(op, "sourceDatabaseId", src_id, sizeof src_id);
    arg_str(op, "backupId", bkp_id, sizeof bkp_id);
    if (store_database_get_internal(o->st, src_id, &src, e) != 0)
        return -1;
    if (src.status == DB_DELETING)
        return err_set(e, 409, "SourceGone", "source.databaseId", "the source database is gone");
    if (!engine_instance_running(o->en, src.id))
        return err_internal(e, "the server of the source %s is not running", src.id);
    /* an op queued by an older pgfleet names a backup it would have taken */
    store_backup b;
    if (bkp_id[0] && store_backup_get(o->st, src.id, bkp_id, &b, &le) == 0 &&
        b.status == BACKUP_RUNNING)
        store_backup_finish(o->st, bkp_id, BACKUP_FAILED, NULL, -1, NULL,
                            "not taken: the clone copied the live source", &le);
    /* pg_basebackup of the running source (an immediate checkpoint, then a copy that never
     * blocks its writers), recovered and swapped in like a restore */
    return restore_into(o, op, &db, src.id, "", NULL, src.port, e);
}

/* ---- the pooled endpoint ---- */

/* Rewrites PgBouncer's files from the catalog (every database that is not being deleted
 * or failed, with its live credentials) and reloads it. Idempotent: nothing happens when
 * nothing changed. */
static int pooler_sync(ops *o, pf_err *e)
{
    if (!engine_pooler_enabled(o->en))
        return 0;
    int ret = -1;
    store_database *dbs = NULL;
    size_t ndb = 0, nconn = 0, capconn = 0;
    store_connection *conns = NULL;
    engine_pool_db *pdbs = NULL;
    engine_pool_user *pusers = NULL;
    size_t npdb = 0;
    pthread_mutex_lock(&o->pooler_mu);
    if (store_database_list_internal(o->st, &dbs, &ndb, e) != 0)
        goto out;
    pdbs = xcalloc(ndb ? ndb : 1, sizeof *pdbs);
    for (size_t i = 0; i < ndb; i++) {
        if (dbs[i].status == DB_DELETING || dbs[i].status == DB_FAILURE)
            continue;
        pdbs[npdb++] = (engine_pool_db){.id = dbs[i].id, .port = dbs[i].port};
        store_connection *c = NULL;
        size_t n = 0;
        if (store_connection_list_for_db(o->st, dbs[i].id, false, &c, &n, e) != 0)
            goto out;
        if (nconn + n > capconn) {
            capconn = (nconn + n) * 2;
            store_connection *nc = xcalloc(capconn, sizeof *nc);
            if (nconn)
                memcpy(nc, conns, nconn * sizeof *nc);
            free(conns);
            conns = nc;
        }
        if (n)
            memcpy(conns + nconn, c, n * sizeof *c);
        nconn += n;
        free(c);
    }
    pusers = xcalloc(nconn ? nconn : 1, sizeof *pusers);
    for (size_t i = 0; i < nconn; i++)
        pusers[i] = (engine_pool_user){.role = conns[i].role, .verifier = conns[i].verifier};
    ret = engine_pooler_apply(o->en, pdbs, npdb, pusers, nconn, e);
out:
    pthread_mutex_unlock(&o->pooler_mu);
    free(dbs);
    free(conns);
    free(pdbs);
    free(pusers);
    return ret;
}

/* Brings PgBouncer up with current files: at startup it starts or adopts it (and
 * reloads an adopted one); later passes of the reconciler restart it if it died, so the
 * pooled endpoint is back within one period. */
static void pooler_supervise(ops *o, bool startup)
{
    if (!engine_pooler_enabled(o->en) || (!startup && engine_pooler_running(o->en)))
        return;
    pf_err e;
    err_clear(&e);
    if (!startup)
        log_warn("pooler: PgBouncer is not running; restarting it");
    if (pooler_sync(o, &e) != 0 || engine_pooler_ensure(o->en, 10000, &e) != 0)
        log_error("pooler: %s", e.message);
}

static int run_op(ops *o, const store_op *op, pf_err *e)
{
    switch (op->kind) {
    case OP_DB_PROVISION:
        return run_provision(o, op, e);
    case OP_DB_DELETE:
        return run_delete(o, op, e);
    case OP_CONN_SYNC:
        return run_conn_sync(o, op, e);
    case OP_CONN_DROP:
        return run_conn_drop(o, op, e);
    case OP_DB_BACKUP:
        return run_backup(o, op, e);
    case OP_DB_RESTORE:
        return run_restore(o, op, e);
    case OP_DB_CLONE:
        return run_clone(o, op, e);
    default:
        return err_internal(e, "unknown op kind %d", (int)op->kind);
    }
}

/* An op that ran out of attempts: a provision leaves its database in failure; a failed
 * restore leaves an existing database as it was (ready again) unless it had begun to
 * overwrite its data in place, and a new one, in failure; a failed backup is listed as
 * failed. */
static void give_up(ops *o, const store_op *op, const pf_err *why)
{
    pf_err le;
    if (op->kind == OP_DB_BACKUP || op->kind == OP_DB_CLONE) {
        char bkp_id[PF_ID_MAX];
        arg_str(op, "backupId", bkp_id, sizeof bkp_id);
        store_backup_finish(o->st, bkp_id, BACKUP_FAILED, NULL, -1, NULL, why->message, &le);
    }
    if (op->kind == OP_DB_RESTORE || op->kind == OP_DB_CLONE) {
        engine_restore_cleanup(o->en, op->database_id);
        store_database db;
        if (store_database_get_internal(o->st, op->database_id, &db, &le) == 0 &&
            db.status == DB_RECOVERING && engine_instance_exists(o->en, db.id) &&
            !engine_restore_overwriting(o->en, db.id)) {
            log_error("db=%s restore failed, its data is unchanged: %s", db.id, why->message);
            if (enqueue(o, OP_DB_PROVISION, db.id, &le) != 0)
                log_error("db=%s cannot queue its restart: %s", db.id, le.message);
            store_op_finish(o->st, op->id, OPS_FAILED, why->message, &le);
            return;
        }
    }
    if (op->kind == OP_DB_PROVISION || op->kind == OP_DB_RESTORE || op->kind == OP_DB_CLONE) {
        store_database db;
        if (store_database_get_internal(o->st, op->database_id, &db, &le) == 0 &&
            db.status != DB_DELETING && db.status != DB_FAILURE &&
            store_database_transition(o->st, op->database_id, db.status, DB_FAILURE, why->message,
                                      &le) != 0)
            log_error("db=%s cannot record its failure: %s", op->database_id, le.message);
    }
    store_op_finish(o->st, op->id, OPS_FAILED, why->message, &le);
}

#define KIND(k) (1u << (k))
#define PASSERS (KIND(OP_CONN_SYNC) | KIND(OP_CONN_DROP))
/* [0] fast, [1] slow (the backup kinds); a credential op does not wait for a backup */
static const store_op_lane lanes[2] = {
    {KIND(OP_DB_PROVISION) | KIND(OP_DB_DELETE) | PASSERS, PASSERS, KIND(OP_DB_BACKUP)},
    {KIND(OP_DB_BACKUP) | KIND(OP_DB_RESTORE) | KIND(OP_DB_CLONE), PASSERS, KIND(OP_DB_BACKUP)},
};

typedef struct worker_arg {
    ops *o;
    bool slow;
} worker_arg;

static void *worker_main(void *arg)
{
    worker_arg *wa = arg;
    ops *o = wa->o;
    bool slow = wa->slow;
    free(wa);
    for (;;) {
        pthread_mutex_lock(&o->mu);
        bool stop = o->stopping;
        pthread_mutex_unlock(&o->mu);
        if (stop)
            break;
        store_op op;
        pf_err e;
        err_clear(&e);
        int got = store_op_claim(o->st, &lanes[slow], &op, &e);
        if (got <= 0) {
            if (got < 0)
                log_error("ops: cannot claim an op: %s", e.message);
            struct timespec ts;
            deadline_in(&ts, 500);
            pthread_mutex_lock(&o->mu);
            if (!o->stopping)
                pthread_cond_timedwait(&o->wake, &o->mu, &ts);
            pthread_mutex_unlock(&o->mu);
            continue;
        }
        int64_t t0 = util_now_ms();
        log_info("op=%s %s db=%s%s%s attempt %d", op.id, store_op_kind_name(op.kind),
                 op.database_id, op.connection_id[0] ? " conn=" : "", op.connection_id,
                 op.attempts);
        int rc = run_op(o, &op, &e);
        /* every kind changes what the pooled endpoint serves: it is live when the op ends */
        if (rc == 0)
            rc = pooler_sync(o, &e);
        pf_err le;
        int outcome = rc == 0 ? OPS_STAT_DONE
                      : (op.attempts >= o->cfg.max_attempts || !err_retryable(&e))
                          ? OPS_STAT_FAILED
                          : OPS_STAT_RETRIED;
        /* counted before the catalog says so: whoever waits for the op sees it counted */
        pthread_mutex_lock(&o->mu);
        if ((int)op.kind >= 0 && op.kind < OP__COUNT) {
            o->stats.ended[op.kind][outcome]++;
            o->stats.ms_sum[op.kind] += (uint64_t)(util_now_ms() - t0);
        }
        pthread_mutex_unlock(&o->mu);
        if (outcome == OPS_STAT_DONE) {
            store_op_finish(o->st, op.id, OPS_DONE, "", &le);
            log_info("op=%s %s db=%s done in %lld ms", op.id, store_op_kind_name(op.kind),
                     op.database_id, (long long)(util_now_ms() - t0));
        } else if (outcome == OPS_STAT_FAILED) {
            log_error("op=%s %s db=%s failed for good: %s", op.id, store_op_kind_name(op.kind),
                      op.database_id, e.message);
            give_up(o, &op, &e);
        } else {
            log_warn("op=%s %s db=%s failed (attempt %d), will retry: %s", op.id,
                     store_op_kind_name(op.kind), op.database_id, op.attempts, e.message);
            usleep((useconds_t)(200000 * op.attempts));
            store_op_requeue(o->st, op.id, e.message, 0, &le);
        }
        pthread_mutex_lock(&o->mu);
        pthread_cond_broadcast(&o->done);
        if (op.kind == OP_DB_PROVISION) {
            o->spares_wanted = true;
            pthread_cond_signal(&o->refill);
        }
        pthread_mutex_unlock(&o->mu);
    }
    return NULL;
}

static void *spares_main(void *arg)
{
    ops *o = arg;
    for (;;) {
        pf_err e;
        err_clear(&e);
        int64_t t0 = util_now_ms();
        int made = engine_spares_fill(o->en, o->cfg.spares, &e);
        if (made < 0)
            log_warn("spares: %s", e.message);
        else if (made > 0)
            log_debug("spares: made %d in %lld ms", made, (long long)(util_now_ms() - t0));
        struct timespec ts;
        deadline_in(&ts, made < 0 ? 5000 : 30000);
        pthread_mutex_lock(&o->mu);
        while (!o->stopping && !o->spares_wanted) {
            if (pthread_cond_timedwait(&o->refill, &o->mu, &ts) == ETIMEDOUT)
                break;
        }
        o->spares_wanted = false;
        bool stop = o->stopping;
        pthread_mutex_unlock(&o->mu);
        if (stop)
            break;
    }
    return NULL;
}

/* ---- reconciler ---- */

static void remove_orphan_dirs(ops *o)
{
    pf_err e;
    char **ids = NULL;
    size_t n = 0;
    if (engine_instance_list(o->en, &ids, &n, &e) != 0) {
        log_error("reconcile: cannot list instances: %s", e.message);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        store_database db;
        pf_err le;
        if (store_database_get_internal(o->st, ids[i], &db, &le) == 0 || le.status != 404)
            continue;
        log_warn("reconcile: instance %s has no catalog row; removing it", ids[i]);
        if (engine_instance_destroy(o->en, ids[i], &le) != 0)
            log_error("reconcile: cannot remove orphan %s: %s", ids[i], le.message);
    }
    engine_free_ids(ids, n);
}

/* startup: true for the first pass (every database that should run gets a provision op);
 * later passes only restart ready databases whose server died. */
static void reconcile(ops *o, bool startup)
{
    pf_err e;
    if (startup)
        remove_orphan_dirs(o);
    store_database *dbs = NULL;
    size_t n = 0;
    if (store_database_list_internal(o->st, &dbs, &n, &e) != 0) {
        log_error("reconcile: cannot list databases: %s", e.message);
        return;
    }
    int queued = 0;
    for (size_t i = 0; i < n; i++) {
        const store_database *db = &dbs[i];
        int active = 0;
        if (store_op_count_active(o->st, db->id, &active, &e) != 0)
            continue;
        if (active > 0) {
            /* a server that outlived a crash gets adopted now even when an op (e.g. a
             * backup) is queued before any provision could be, so a stop stops it */
            if (startup && db->status == DB_READY && engine_instance_running(o->en, db->id) &&
                engine_instance_start(o->en, db->id, db->port, o->cfg.start_timeout_ms, &e) != 0)
                log_warn("reconcile: cannot adopt %s: %s", db->id, e.message);
            continue;
        }
        store_op_kind kind;
        if (db->status == DB_DELETING)
            kind = OP_DB_DELETE;
        else if (db->status == DB_FAILURE)
            continue;
        else if (startup || (db->status == DB_READY && !engine_instance_running(o->en, db->id)))
            kind = OP_DB_PROVISION;
        else
            continue;
        if (!startup)
            log_warn("db=%s server is not running; restarting it", db->id);
        if (enqueue(o, kind, db->id, &e) != 0)
            log_error("reconcile: cannot queue %s for %s: %s", store_op_kind_name(kind), db->id,
                      e.message);
        else
            queued++;
    }
    free(dbs);
    if (queued) {
        if (startup)
            log_info("reconcile: %d database(s) to bring up or clean up", queued);
        ops_notify(o);
    }
}

/* ---- the backup schedule ---- */

static int64_t iso_to_unix(const char *s)
{
    int v[6] = {0};
    static const int len[6] = {4, 2, 2, 2, 2, 2};
    const char *p = s;
    for (int i = 0; i < 6; i++) {
        for (int k = 0; k < len[i]; k++, p++) {
            if (*p < '0' || *p > '9')
                return 0;
            v[i] = v[i] * 10 + (*p - '0');
        }
        if (i < 5)
            p++; /* '-', 'T' or ':' */
    }
    struct tm tm = {.tm_year = v[0] - 1900,
                    .tm_mon = v[1] - 1,
                    .tm_mday = v[2],
                    .tm_hour = v[3],
                    .tm_min = v[4],
                    .tm_sec = v[5]};
    return (int64_t)timegm(&tm);
}

engine_backup_type ops_scheduled_type(const ops_config *cfg, int64_t now_s, int64_t last_full_s,
                                      int64_t last_diff_s)
{
    if (last_full_s < 0 || now_s - last_full_s >= cfg->backup_full_interval_s)
        return ENGINE_BACKUP_FULL;
    if (cfg->backup_diff_interval_s <= 0 || last_diff_s < 0 ||
        now_s - last_diff_s >= cfg->backup_diff_interval_s)
        return ENGINE_BACKUP_DIFF;
    return ENGINE_BACKUP_INCR;
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
            last_full_s = last_diff_s = iso_to_unix(rows[i].started_at);
        else if (rows[i].type == BACKUP_DIFF)
            last_diff_s = iso_to_unix(rows[i].started_at);
    }
    bool due = !last || now_s - iso_to_unix(last->started_at) >= o->cfg.backup_interval_s;
    char mark[32] = "";
    if (due && last_ok && last_ok->write_mark[0] &&
        engine_write_mark(o->en, db->id, mark, &e) == 0 && !strcmp(mark, last_ok->write_mark)) {
        log_debug("db=%s no writes since backup %s: scheduled backup skipped", db->id, last_ok->id);
        due = false;
    }
    engine_backup_type type = ops_scheduled_type(&o->cfg, now_s, last_full_s, last_diff_s);
    free(rows);
    if (!due)
        return;
    store_backup b;
    store_op op;
    ops_backup_init(&b, &op, db->id, type_of(type));
    if (store_tx_begin(o->st, &e) != 0)
        return;
    if (store_backup_insert(o->st, &b, &e) != 0 || store_op_insert(o->st, &op, &e) != 0) {
        store_tx_rollback(o->st);
        log_error("db=%s cannot queue a scheduled backup: %s", db->id, e.message);
        return;
    }
    if (store_tx_commit(o->st, &e) == 0)
        log_info("db=%s scheduled %s backup queued", db->id, store_backup_type_name(type_of(type)));
}

static void schedule_backups(ops *o)
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
    for (size_t i = 0; i < n; i++) {
        int active = 0;
        if (dbs[i].status != DB_READY ||
            store_op_count_active(o->st, dbs[i].id, &active, &e) != 0 || active > 0)
            continue;
        schedule_one(o, &dbs[i], now_s);
    }
    free(dbs);
    ops_notify(o);
}

/* Finished ops are history: kept a week (to read why something failed), then deleted, so
 * the catalog of a long-running server does not grow with every backup and rotate. */
#define OPS_KEEP_S (7 * 86400)
#define OPS_PRUNE_EVERY_MS (3600 * 1000)

static void prune_ops(ops *o)
{
    char before[STORE_TS_MAX];
    util_iso_from_ms(util_wall_ms() - (int64_t)OPS_KEEP_S * 1000, before);
    int n = 0;
    pf_err e;
    if (store_op_prune(o->st, before, &n, &e) != 0)
        log_warn("ops: cannot delete finished ops: %s", e.message);
    else if (n > 0)
        log_info("ops: deleted %d op(s) that ended before %s", n, before);
}

static void *reconciler_main(void *arg)
{
    ops *o = arg;
    pooler_supervise(o, true);
    prune_ops(o);
    int64_t pruned_at = util_now_ms();
    for (;;) {
        if (pause_or_stop(o, &o->wake, o->cfg.reconcile_ms))
            break;
        reconcile(o, false);
        schedule_backups(o);
        pooler_supervise(o, false);
        if (util_now_ms() - pruned_at >= OPS_PRUNE_EVERY_MS) {
            prune_ops(o);
            pruned_at = util_now_ms();
        }
    }
    return NULL;
}

int ops_start(store *st, engine *en, const ops_config *cfg, ops **out, pf_err *e)
{
    ops *o = xcalloc(1, sizeof *o);
    o->st = st;
    o->en = en;
    o->cfg = *cfg;
    if (o->cfg.workers <= 0)
        o->cfg.workers = 2;
    if (o->cfg.max_attempts <= 0)
        o->cfg.max_attempts = 3;
    if (o->cfg.start_timeout_ms <= 0)
        o->cfg.start_timeout_ms = 30000;
    if (o->cfg.reconcile_ms <= 0)
        o->cfg.reconcile_ms = 2000;
    if (o->cfg.backup_workers <= 0)
        o->cfg.backup_workers = 2;
    if (o->cfg.backup_full_interval_s <= 0)
        o->cfg.backup_full_interval_s = 7 * 86400;
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->wake, NULL);
    pthread_cond_init(&o->done, NULL);
    pthread_cond_init(&o->refill, NULL);
    pthread_cond_init(&o->usage_cv, NULL);
    pthread_mutex_init(&o->pooler_mu, NULL);
    int reset = 0;
    if (store_op_reset_running(st, &reset, e) != 0) {
        free(o);
        return -1;
    }
    if (reset)
        log_warn("reconcile: %d operation(s) were interrupted; they run again", reset);
    reconcile(o, true);
    o->workers = xcalloc((size_t)o->cfg.workers, sizeof *o->workers);
    for (int i = 0; i < o->cfg.workers; i++) {
        worker_arg *wa = xcalloc(1, sizeof *wa);
        *wa = (worker_arg){o, false};
        if (pthread_create(&o->workers[i], NULL, worker_main, wa) != 0)
            abort();
        o->nworkers++;
    }
    o->slow = xcalloc((size_t)o->cfg.backup_workers, sizeof *o->slow);
    for (int i = 0; i < o->cfg.backup_workers; i++) {
        worker_arg *wa = xcalloc(1, sizeof *wa);
        *wa = (worker_arg){o, true};
        if (pthread_create(&o->slow[i], NULL, worker_main, wa) != 0)
            abort();
        o->nslow++;
    }
    if (pthread_create(&o->reconciler, NULL, reconciler_main, o) != 0)
        abort();
    o->reconciler_started = true;
    if (o->cfg.spares > 0) {
        if (pthread_create(&o->spares, NULL, spares_main, o) != 0)
            abort();
        o->spares_started = true;
    }
    if (o->cfg.usage_interval_s > 0) {
        if (pthread_create(&o->usage, NULL, usage_main, o) != 0)
            abort();
        o->usage_started = true;
    }
    *out = o;
    return 0;
}

void ops_notify(ops *o)
{
    pthread_mutex_lock(&o->mu);
    pthread_cond_broadcast(&o->wake);
    pthread_mutex_unlock(&o->mu);
}

int ops_wait(ops *o, const char *op_id, int timeout_ms, store_op *out, pf_err *e)
{
    int64_t until = util_now_ms() + timeout_ms;
    for (;;) {
        if (store_op_get(o->st, op_id, out, e) != 0)
            return -1;
        if (out->state == OPS_DONE || out->state == OPS_FAILED)
            return 0;
        int64_t left = until - util_now_ms();
        if (left <= 0)
            return err_set(e, 503, "Timeout", "Retry the request in a moment.",
                           "The operation %s did not finish in time", op_id);
        struct timespec ts;
        deadline_in(&ts, left < 100 ? (int)left : 100);
        pthread_mutex_lock(&o->mu);
        pthread_cond_timedwait(&o->done, &o->mu, &ts);
        pthread_mutex_unlock(&o->mu);
    }
}

void ops_stats_get(ops *o, ops_stats *out)
{
    pthread_mutex_lock(&o->mu);
    *out = o->stats;
    pthread_mutex_unlock(&o->mu);
    /* the live part: servers of ready databases, and the pooler */
    store_database *dbs = NULL;
    size_t n = 0;
    pf_err e;
    if (store_database_list_internal(o->st, &dbs, &n, &e) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (dbs[i].status != DB_READY)
                continue;
            if (engine_instance_running(o->en, dbs[i].id))
                out->servers_up++;
            else
                out->servers_down++;
        }
        free(dbs);
    }
    out->pooler = !engine_pooler_enabled(o->en) ? -1 : engine_pooler_running(o->en) ? 1 : 0;
}

void ops_stop(ops *o)
{
    if (!o)
        return;
    pthread_mutex_lock(&o->mu);
    o->stopping = true;
    pthread_cond_broadcast(&o->wake);
    pthread_cond_broadcast(&o->done);
    pthread_cond_broadcast(&o->refill);
    pthread_cond_broadcast(&o->usage_cv);
    pthread_mutex_unlock(&o->mu);
    for (int i = 0; i < o->nworkers; i++)
        pthread_join(o->workers[i], NULL);
    for (int i = 0; i < o->nslow; i++)
        pthread_join(o->slow[i], NULL);
    free(o->slow);
    if (o->reconciler_started)
        pthread_join(o->reconciler, NULL);
    if (o->spares_started)
        pthread_join(o->spares, NULL);
    if (o->usage_started)
        pthread_join(o->usage, NULL);
    free(o->workers);
    pthread_cond_destroy(&o->wake);
    pthread_cond_destroy(&o->done);
    pthread_cond_destroy(&o->refill);
    pthread_cond_destroy(&o->usage_cv);
    pthread_mutex_destroy(&o->mu);
    pthread_mutex_destroy(&o->pooler_mu);
    free(o);
}
