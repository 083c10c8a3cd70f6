/* The backup kinds: a backup (then expire and a sync of the catalog's list), a restore from
 * a backup, and a clone of a live database; what each leaves when it gives up. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops_int.h"
#include "util/log.h"

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

static engine_backup_type arg_type(const store_op *op)
{
    char t[16];
    arg_str(op, "type", t, sizeof t);
    return !strcmp(t, "incr")   ? ENGINE_BACKUP_INCR
           : !strcmp(t, "diff") ? ENGINE_BACKUP_DIFF
                                : ENGINE_BACKUP_FULL;
}

store_backup_type ops__backup_type(engine_backup_type t)
{
    return t == ENGINE_BACKUP_INCR   ? BACKUP_INCR
           : t == ENGINE_BACKUP_DIFF ? BACKUP_DIFF
                                     : BACKUP_FULL;
}

/* Makes the catalog's backups of db match pgBackRest's list. */
static int sync_backups(ops *o, const store_database *db, pf_err *e)
{
    engine_backup *list = NULL;
    size_t n = 0;
    if (engine_backup_list(o->en, ops__inst(db), &list, &n, e) != 0)
        return -1;
    store_backup *seen = xcalloc(n ? n : 1, sizeof *seen);
    for (size_t i = 0; i < n; i++) {
        snprintf(seen[i].label, sizeof seen[i].label, "%s", list[i].label);
        seen[i].type = ops__backup_type(list[i].type);
        seen[i].size = list[i].size;
        util_iso_from_ms(list[i].start * 1000, seen[i].started_at);
        util_iso_from_ms(list[i].stop * 1000, seen[i].stopped_at);
    }
    int rc = store_backup_sync(o->st, db->id, seen, n, e);
    free(seen);
    free(list);
    return rc;
}

/* Takes the backup of row bkp_id (if not taken yet), then expires and syncs. Online, the
 * write counter is read from the server; offline (asleep), it is the one the server slept
 * with (sleep_mark). */
static int take_backup(ops *o, const store_database *db, const char *bkp_id,
                       engine_backup_type type, const char *sleep_mark, pf_err *e)
{
    store_backup b;
    if (store_backup_get(o->st, db->id, bkp_id, &b, e) != 0)
        return -1;
    if (b.status == BACKUP_COMPLETED && b.label[0])
        return 0;
    char mark[32] = "";
    pf_err le;
    if (sleep_mark)
        snprintf(mark, sizeof mark, "%s", sleep_mark);
    else
        engine_write_mark(o->en, ops__inst(db), mark, &le);
    if (mark[0])
        store_backup_set_mark(o->st, b.id, mark, &le);
    engine_backup out;
    if (engine_backup_run(o->en, ops__inst(db), db->port, type, !sleep_mark, &out, e) != 0)
        return -1;
    char stopped[STORE_TS_MAX];
    util_iso_from_ms(out.stop * 1000, stopped);
    if (store_backup_finish(o->st, b.id, BACKUP_COMPLETED, out.label, out.size, stopped, "", e) !=
        0)
        return -1;
    if (engine_backup_expire(o->en, ops__inst(db), &le) != 0)
        log_db_warn(db->id, "expire failed: %s", le.message);
    if (sync_backups(o, db, &le) != 0)
        log_db_warn(db->id, "backup list not synced: %s", le.message);
    return 0;
}

static int backup_asleep(ops *o, const store_database *db, const char *bkp_id,
                         engine_backup_type type, pf_err *e)
{
    char mark[32] = "";
    if (!engine_instance_asleep(o->en, ops__inst(db), mark))
        return err_kind(e, ERR_TRANSIENT, NULL, "%s is no longer asleep", db->id);
    return take_backup(o, db, bkp_id, type, mark, e);
}

static int backup_awake(ops *o, const store_database *db, const char *bkp_id,
                        engine_backup_type type, pf_err *e)
{
    if (ops__ensure_awake(o, db->id, e) != 0)
        return -1;
    /* the server of a ready database does not run: after a restart, before its provision op
     * (queued behind this one) adopted it, or it died. The backup starts it, as the
     * provision would (an instance already running is adopted). */
    if (!engine_instance_running(o->en, ops__inst(db))) {
        if (db->status != DB_READY)
            return err_kind(e, ERR_TRANSIENT, NULL, "the server of %s is not running", db->id);
        if (engine_instance_start(o->en, ops__inst(db), db->port, o->cfg.start_timeout_ms, e) != 0)
            return -1;
        ops__server_started(o, db);
    }
    return take_backup(o, db, bkp_id, type, NULL, e);
}

int ops__run_backup(ops_run *r, pf_err *e)
{
    ops *o = r->o;
    store_database db;
    pf_err le;
    char bkp_id[PF_ID_MAX];
    arg_str(r->op, "backupId", bkp_id, sizeof bkp_id);
    if (store_database_get_internal(o->st, r->op->database_id, &db, &le) != 0 ||
        db.status == DB_DELETING || db.status == DB_FAILURE) {
        store_backup_finish(o->st, bkp_id, BACKUP_FAILED, NULL, -1, NULL,
                            "the database is gone or failed", &le);
        return 0;
    }
    /* a sleeping server is backed up offline and stays stopped meanwhile (a connection that
     * comes is held until the backup ends, then wakes it); an awake one does not go to sleep
     * during its backup */
    bool asleep = ops__hold(o, db.id);
    int rc = asleep ? backup_asleep(o, &db, bkp_id, arg_type(r->op), e)
                    : backup_awake(o, &db, bkp_id, arg_type(r->op), e);
    ops__unhold(o, db.id, asleep);
    return rc;
}

void ops__give_up_backup(ops_run *r, const pf_err *why)
{
    char bkp_id[PF_ID_MAX];
    pf_err le;
    arg_str(r->op, "backupId", bkp_id, sizeof bkp_id);
    if (bkp_id[0])
        store_backup_finish(r->o->st, bkp_id, BACKUP_FAILED, NULL, -1, NULL, why->message, &le);
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

/* Restores label of the instance source_id into the op's database, starts it and makes it
 * ready. */
static int restore_into(ops_run *r, store_database *db, const char *source_id, const char *label,
                        const char *pitr, int source_port, pf_err *e)
{
    ops *o = r->o;
    if (ops__attach_instance(o, db, false, e) != 0)
        return -1;
    const char *inst = ops__inst(db);
    if (db->status == DB_READY) {
        /* The API moved the database to recovering with this op, and only this op makes
         * it ready: ready means a kill came after the swap was recorded and before the op
         * was. Restoring again would throw away what was written since (and its move from
         * ready to ready would fail the database): the op is done once its server runs. */
        log_op(LOG_INFO, r->op->id, db->id, NULL,
               "the restore was made ready before an interruption: nothing to restore again");
        if (engine_instance_start(o->en, inst, db->port, o->cfg.start_timeout_ms, e) != 0)
            return -1;
        ops__server_started(o, db);
        engine_restore_cleanup(o->en, inst);
        return 0;
    }
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
                              .token = r->op->id,
                              .source_port = source_port};
    int rc = engine_restore(o->en, inst, &sp, e);
    free(roles);
    free(conns);
    if (rc != 0)
        return -1;
    if (engine_instance_start(o->en, inst, db->port, o->cfg.start_timeout_ms, e) != 0)
        return -1;
    ops__server_started(o, db);
    if (ops__set_ready(r, db, true, e) != 0)
        return -1;
    /* the replaced data goes once the database is ready again: removing a large directory
     * is neither downtime nor part of the wait for `ready` (a crash right here leaves it
     * to the next provision or restore of this database) */
    engine_restore_cleanup(o->en, inst);
    return 0;
}

int ops__run_restore(ops_run *r, pf_err *e)
{
    store_database db;
    int has = ops__op_database(r, &db, e);
    if (has <= 0)
        return has;
    ops *o = r->o;
    store_database src;
    pf_err le;
    char src_id[PF_ID_MAX], label[64], pitr[48];
    arg_str(r->op, "sourceDatabaseId", src_id, sizeof src_id);
    arg_str(r->op, "label", label, sizeof label);
    arg_str(r->op, "pointInTime", pitr, sizeof pitr);
    /* the backups are the source's instance's stanza (a source whose row is gone had its
     * backups removed with it) */
    bool have_src = store_database_get_internal(o->st, src_id, &src, &le) == 0;
    const char *src_inst = have_src ? ops__inst(&src) : src_id;
    /* a point in time may lie in WAL the source has not archived yet */
    if (pitr[0] && have_src && engine_instance_running(o->en, src_inst) &&
        engine_backup_flush_wal(o->en, src_inst, src.port, e) != 0)
        return -1;
    return restore_into(r, &db, src_inst, label, pitr, 0, e);
}

static int clone_from(ops_run *r, store_database *db, const store_database *src_db,
                      const char *bkp_id, pf_err *e);

int ops__run_clone(ops_run *r, pf_err *e)
{
    ops *o = r->o;
    store_database db, src;
    int has = ops__op_database(r, &db, e);
    if (has <= 0)
        return has;
    char src_id[PF_ID_MAX], bkp_id[PF_ID_MAX];
    arg_str(r->op, "sourceDatabaseId", src_id, sizeof src_id);
    arg_str(r->op, "backupId", bkp_id, sizeof bkp_id);
    if (store_database_get_internal(o->st, src_id, &src, e) != 0)
        return -1;
    if (src.status == DB_DELETING)
        return err_kind(e, ERR_CONFLICT, "SourceGone", "the source database is gone");
    /* the clone copies the running source: a sleeping one wakes, and stays awake until the
     * copy is made */
    ops__pin(o, src.id, +1);
    int rc = ops__ensure_awake(o, src.id, e);
    if (rc == 0)
        rc = clone_from(r, &db, &src, bkp_id, e);
    ops__pin(o, src.id, -1);
    return rc;
}

static int clone_from(ops_run *r, store_database *db, const store_database *src_db,
                      const char *bkp_id, pf_err *e)
{
    ops *o = r->o;
    store_database src = *src_db;
    pf_err le;
    if (!engine_instance_running(o->en, ops__inst(&src)))
        return err_kind(e, ERR_TRANSIENT, NULL, "the server of the source %s is not running",
                        src.id);
    /* an op queued by an older pgfleet names a backup it would have taken */
    store_backup b;
    if (bkp_id[0] && store_backup_get(o->st, src.id, bkp_id, &b, &le) == 0 &&
        b.status == BACKUP_RUNNING)
        store_backup_finish(o->st, bkp_id, BACKUP_FAILED, NULL, -1, NULL,
                            "not taken: the clone copied the live source", &le);
    /* pg_basebackup of the running source (an immediate checkpoint, then a copy that never
     * blocks its writers), recovered and swapped in like a restore */
    return restore_into(r, db, ops__inst(&src), "", NULL, src.port, e);
}

/* A failed restore leaves an existing database as it was (ready again, its server
 * restarted) unless it had begun to overwrite its data in place; a new database, or one
 * whose data is gone, ends in failure. */
void ops__give_up_restore(ops_run *r, const pf_err *why)
{
    ops *o = r->o;
    pf_err le;
    store_database db;
    if (store_database_get_internal(o->st, r->op->database_id, &db, &le) != 0)
        return;
    engine_restore_cleanup(o->en, ops__inst(&db));
    if (db.status == DB_DELETING || db.status == DB_FAILURE)
        return;
    if (db.status == DB_RECOVERING && engine_instance_exists(o->en, ops__inst(&db)) &&
        !engine_restore_overwriting(o->en, ops__inst(&db))) {
        log_op(LOG_ERROR, r->op->id, db.id, NULL, "restore failed, the data is unchanged: %s",
               why->message);
        if (ops__enqueue(o, OP_DB_PROVISION, db.id, &le) != 0)
            log_db_error(db.id, "cannot queue its restart: %s", le.message);
        return;
    }
    if (store_database_transition(o->st, db.id, db.status, DB_FAILURE, why->message, &le) != 0)
        log_db_error(db.id, "cannot record failure: %s", le.message);
}

void ops__give_up_clone(ops_run *r, const pf_err *why)
{
    ops__give_up_backup(r, why);
    ops__give_up_restore(r, why);
}
