/* The op kinds: one row per kind (its lane, what it may pass, whether it changes the pooled
 * endpoint, how it runs and what giving up leaves), and the database and credential kinds.
 * The backup kinds are in backups.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops_int.h"
#include "util/log.h"
#include "util/util.h"

static int run_provision(ops_run *r, pf_err *e);
static int run_delete(ops_run *r, pf_err *e);
static int run_conn_sync(ops_run *r, pf_err *e);
static int run_conn_drop(ops_run *r, pf_err *e);
static void give_up_provision(ops_run *r, const pf_err *why);

/* Credential ops and a delete do not wait for a backup of their database (a backup may
 * take long; a delete stops it and cancels the queued ones); everything else of one
 * database runs in order, across both lanes. */
static const ops_kind kinds[OP__COUNT] = {
    [OP_DB_PROVISION] = {OP_DB_PROVISION, OPS_LANE_FAST, OPS_KIND_POOLED, run_provision,
                         give_up_provision},
    [OP_DB_DELETE] = {OP_DB_DELETE, OPS_LANE_FAST,
                      OPS_KIND_POOLED | OPS_KIND_POOLED_WAIT | OPS_KIND_PASSES, run_delete, NULL},
    [OP_CONN_SYNC] = {OP_CONN_SYNC, OPS_LANE_FAST,
                      OPS_KIND_POOLED | OPS_KIND_POOLED_WAIT | OPS_KIND_PASSES, run_conn_sync,
                      NULL},
    [OP_CONN_DROP] = {OP_CONN_DROP, OPS_LANE_FAST,
                      OPS_KIND_POOLED | OPS_KIND_POOLED_WAIT | OPS_KIND_PASSES, run_conn_drop,
                      NULL},
    [OP_DB_BACKUP] = {OP_DB_BACKUP, OPS_LANE_SLOW, OPS_KIND_PASSABLE | OPS_KIND_STOPPABLE,
                      ops__run_backup, ops__give_up_backup},
    [OP_DB_RESTORE] = {OP_DB_RESTORE, OPS_LANE_SLOW, OPS_KIND_POOLED, ops__run_restore,
                       ops__give_up_restore},
    [OP_DB_CLONE] = {OP_DB_CLONE, OPS_LANE_SLOW, OPS_KIND_POOLED, ops__run_clone,
                     ops__give_up_clone},
};

const ops_kind *ops__kind(store_op_kind k)
{
    if ((int)k < 0 || k >= OP__COUNT || !kinds[k].run)
        return NULL;
    return &kinds[k];
}

static store_op_lane lanes[OPS_LANE__COUNT];
static pthread_once_t lanes_once = PTHREAD_ONCE_INIT;

static void lanes_build(void)
{
    uint32_t passers = 0, passed = 0;
    for (int k = 0; k < OP__COUNT; k++) {
        if (kinds[k].flags & OPS_KIND_PASSES)
            passers |= 1u << k;
        if (kinds[k].flags & OPS_KIND_PASSABLE)
            passed |= 1u << k;
    }
    for (int k = 0; k < OP__COUNT; k++)
        lanes[kinds[k].lane].kinds |= 1u << k;
    for (int l = 0; l < OPS_LANE__COUNT; l++) {
        lanes[l].passers = passers;
        lanes[l].passed = passed;
    }
}

const store_op_lane *ops__lane(ops_lane_id lane)
{
    pthread_once(&lanes_once, lanes_build);
    return &lanes[lane];
}

int ops__enqueue(ops *o, store_op_kind kind, const char *db_id, pf_err *e)
{
    store_op op;
    ops_op_init(&op, kind, db_id, NULL);
    return store_op_insert(o->st, &op, e);
}

void ops__server_started(ops *o, const store_database *db)
{
    if (!db->unhealthy[0])
        return;
    pf_err e;
    if (store_database_set_unhealthy(o->st, db->id, "", &e) != 0) {
        log_db_warn(db->id, "cannot clear unhealthy: %s", e.message);
        return;
    }
    log_db_info(db->id, "server started again: healthy (was: %s)", db->unhealthy);
}

int ops__set_ready(ops_run *r, const store_database *db, bool first_backup, pf_err *e)
{
    ops *o = r->o;
    store_backup b;
    store_op bop;
    ops_backup_init(&b, &bop, db->id, BACKUP_FULL);
    /* ready once the server runs with its roles: the pooled endpoint follows (its sync is
     * asked here and runs beside the transition, coalesced with other ops') */
    ops__pooler_ask(r);
    if (store_tx_begin(o->st, e) != 0)
        return -1;
    int rc = store_database_transition(o->st, db->id, db->status, DB_READY, "", e);
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
    ops__sample_usage(o, db, true);
    return 0;
}

/* A role change that failed because the server stopped meanwhile (the engine answers
 * ERR_CONFLICT "NotRunning") waits for the server's restart: transient. */
static int role_change(ops *o, const char *inst, int rc, pf_err *e)
{
    if (rc != 0 && !engine_instance_running(o->en, inst))
        e->kind = ERR_TRANSIENT;
    return rc;
}

int ops__attach_instance(ops *o, store_database *db, bool use_spare, pf_err *e)
{
    if (db->instance_id[0])
        return engine_instance_alias(o->en, db->instance_id, db->id, e);
    char inst[PF_ID_MAX];
    bool spare = use_spare && o->cfg.spares > 0 && engine_spare_take(o->en, inst, sizeof inst);
    if (!spare)
        util_id_new("in", inst);
    if (store_database_set_instance(o->st, db->id, inst, e) != 0) {
        /* a taken spare no database records is nobody's: removed now, not at next start */
        pf_err le;
        if (spare && engine_instance_destroy(o->en, inst, &le) != 0)
            log_db_warn(db->id, "cannot remove the spare %s: %s", inst, le.message);
        return -1;
    }
    snprintf(db->instance_id, sizeof db->instance_id, "%s", inst);
    /* PgBouncer's entry names run/<database id>: it is written (one RELOAD for every
     * database created meanwhile) without waiting for the instance */
    if (engine_instance_alias(o->en, inst, db->id, e) != 0)
        return -1;
    if (spare) { /* the refill starts once the provision is done (refill_kick) */
        pthread_mutex_lock(&o->mu);
        o->spares_wanted = true;
        pthread_mutex_unlock(&o->mu);
    }
    log_db_info(db->id, "attached to %s %s", spare ? "the warm spare" : "the new instance", inst);
    /* the data path waits on the instance's pid file: it gets the endpoint again */
    return ops_port_hold(o, db->id, db->port, e);
}

/* Wakes the spares refill when a provision took a spare. Not before the provision ends: a
 * refill copies the golden and syncs its file system, which the role create's commit (an
 * fsync) would wait behind. */
static void refill_kick(ops *o)
{
    pthread_mutex_lock(&o->mu);
    if (o->spares_wanted)
        pthread_cond_signal(&o->refill);
    pthread_mutex_unlock(&o->mu);
}

/* Makes the server exist, run and carry every live credential; a new or recovering
 * database becomes ready (a recovering one only when no restore or clone of it is queued:
 * that op's own). The port is the one the catalog gave the database when it was
 * created: it never moves (a port that is busy now is a transient error of the start). */
static int provision_steps(ops_run *r, pf_err *e)
{
    ops *o = r->o;
    store_database db;
    int has = ops__op_database(r, &db, e);
    if (has <= 0)
        return has;
    /* what a restore interrupted after its swap left is cleaned up below (no restore runs
     * now: ops of one database run in order) */
    int64_t t0 = util_now_ms();
    bool had = db.instance_id[0] != '\0';
    if (ops__attach_instance(o, &db, true, e) != 0)
        return -1;
    /* a new database's pooled entry: its sync (a PgBouncer RELOAD) runs beside the start */
    if (db.status == DB_PROVISIONING)
        ops__pooler_ask(r);
    const char *inst = ops__inst(&db);
    /* a restore can have left something only in an instance that was there before */
    if (had)
        engine_restore_cleanup(o->en, inst);
    int64_t t_attach = util_now_ms();
    if (ops_port_hold(o, db.id, db.port, e) != 0)
        return -1;
    if (engine_instance_create(o->en, inst, db.port, e) != 0)
        return -1;
    /* a sleeping database stays asleep (a restart of serve wakes nothing) */
    if (db.status == DB_READY && engine_instance_asleep(o->en, inst, NULL))
        return 0;
    if (engine_instance_start(o->en, inst, db.port, o->cfg.start_timeout_ms, e) != 0)
        return -1;
    int64_t t_start = util_now_ms();
    ops__server_started(o, &db);
    store_connection *conns = NULL;
    size_t n = 0;
    if (store_connection_list_for_db(o->st, db.id, false, &conns, &n, e) != 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = role_change(o, inst,
                         engine_role_ensure(o->en, inst, conns[i].role, conns[i].verifier, e), e);
    free(conns);
    if (rc != 0)
        return -1;
    log_db_info(db.id, "provision steps: attach %lld ms, create+start %lld ms, roles %lld ms",
                (long long)(t_attach - t0), (long long)(t_start - t_attach),
                (long long)(util_now_ms() - t_start));
    if (db.status == DB_RECOVERING) {
        /* recovering with a restore or clone queued behind this provision (one a start or a
         * restart queued before the restore was asked): that op makes it ready, and a
         * ready database would tell it that it had run before an interruption */
        int queued = 0;
        if (store_op_count_pending(o->st, db.id, 1u << OP_DB_RESTORE | 1u << OP_DB_CLONE, &queued,
                                   e) != 0)
            return -1;
        if (queued > 0)
            return 0;
    }
    if (db.status == DB_PROVISIONING || db.status == DB_RECOVERING)
        return ops__set_ready(r, &db, db.status == DB_PROVISIONING, e);
    return 0;
}

static int run_provision(ops_run *r, pf_err *e)
{
    int rc = provision_steps(r, e);
    refill_kick(r->o);
    return rc;
}

/* A first provision (or the restart after a failed restore) that runs out of attempts
 * leaves its database in failure. A ready database whose server does not start again is
 * only reported unhealthy: the reconciler keeps restarting it with a backoff, and the
 * first start that succeeds makes it healthy again (a disk that was full, freed). */
static void give_up_provision(ops_run *r, const pf_err *why)
{
    ops *o = r->o;
    store_database db;
    pf_err le;
    if (store_database_get_internal(o->st, r->op->database_id, &db, &le) != 0 ||
        db.status == DB_DELETING || db.status == DB_FAILURE)
        return;
    if (db.status == DB_READY) {
        char reason[STORE_REASON_MAX];
        snprintf(reason, sizeof reason, "the server does not start: %.340s", why->message);
        if (store_database_set_unhealthy(o->st, db.id, reason, &le) != 0)
            log_db_error(db.id, "cannot record unhealthy: %s", le.message);
        log_db_error(db.id, "unhealthy: %s", reason);
        return;
    }
    if (store_database_transition(o->st, db.id, db.status, DB_FAILURE, why->message, &le) != 0)
        log_db_error(db.id, "cannot record failure: %s", le.message);
}

static int run_delete(ops_run *r, pf_err *e)
{
    ops *o = r->o;
    const char *id = r->op->database_id;
    store_database db;
    pf_err le;
    if (store_database_get_internal(o->st, id, &db, &le) != 0) {
        if (le.kind != ERR_NOT_FOUND) {
            *e = le;
            return -1;
        }
        return 0; /* deleted already */
    }
    const char *inst = ops__inst(&db);
    /* the queued backups are cancelled and a running one stopped, never waited for (its op
     * then fails or finds the database gone) */
    int cancelled = 0;
    if (store_op_cancel_pending(o->st, id, OP_DB_BACKUP, "cancelled: the database is deleted",
                                &cancelled, e) != 0)
        return -1;
    if (cancelled > 0)
        log_db_info(id, "delete: %d queued backup(s) cancelled", cancelled);
    if (engine_backup_stop(o->en, inst, &le) != 0)
        log_db_warn(id, "%s", le.message);
    /* the data path lets go of its connections and the port: no wake can start it now */
    ops_port_release(o, id);
    if (engine_instance_destroy(o->en, inst, e) != 0 ||
        engine_instance_unalias(o->en, db.id, e) != 0)
        return -1;
    engine_restore_cleanup(o->en, inst);
    if (engine_backup_remove(o->en, inst, e) != 0 || store_backup_delete_for_db(o->st, id, e) != 0)
        return -1;
    if (store_database_delete_row(o->st, id, &le) != 0 && le.kind != ERR_NOT_FOUND) {
        *e = le;
        return -1;
    }
    log_db_info(id, "deleted: server stopped, files and backups removed");
    return 0;
}

/* Reads the op's connection into c: 1, or 0 when it is gone, or -1 on an error. */
static int op_connection(ops_run *r, store_connection *c, pf_err *e)
{
    pf_err le;
    if (store_connection_get_internal(r->o->st, r->op->connection_id, c, &le) == 0)
        return 1;
    if (le.kind == ERR_NOT_FOUND)
        return 0;
    *e = le;
    return -1;
}

static int run_conn_sync(ops_run *r, pf_err *e)
{
    ops *o = r->o;
    store_connection c;
    int has = op_connection(r, &c, e);
    if (has <= 0)
        return has;
    if (c.deleting)
        return 0;
    store_database db;
    pf_err le;
    if (store_database_get_internal(o->st, c.database_id, &db, &le) != 0)
        return le.kind == ERR_NOT_FOUND ? 0 : (*e = le, -1);
    if (db.status == DB_DELETING)
        return 0;
    if (db.status == DB_FAILURE)
        return err_kind(e, ERR_CONFLICT, "DatabaseFailed", "database %s is in failure", db.id);
    /* a sleeping database wakes for it: the next connection finds the new credential */
    if (ops__ensure_awake(o, db.id, e) != 0)
        return -1;
    const char *inst = ops__inst(&db);
    if (!engine_instance_running(o->en, inst))
        return err_kind(e, ERR_TRANSIENT, NULL, "the server of %s is not running", db.id);
    return role_change(o, inst, engine_role_ensure(o->en, inst, c.role, c.verifier, e), e);
}

static int run_conn_drop(ops_run *r, pf_err *e)
{
    ops *o = r->o;
    store_connection c;
    int has = op_connection(r, &c, e);
    if (has <= 0)
        return has;
    store_database db;
    pf_err le;
    if (store_database_get_internal(o->st, c.database_id, &db, &le) == 0 &&
        db.status != DB_DELETING && ops__ensure_awake(o, db.id, e) != 0)
        return -1;
    if (store_database_get_internal(o->st, c.database_id, &db, &le) == 0 &&
        db.status != DB_DELETING && engine_instance_running(o->en, ops__inst(&db))) {
        if (role_change(o, ops__inst(&db), engine_role_drop(o->en, ops__inst(&db), c.role, e), e) !=
            0)
            return -1;
    }
    if (store_connection_delete_row(o->st, c.id, &le) != 0 && le.kind != ERR_NOT_FOUND) {
        *e = le;
        return -1;
    }
    return 0;
}
