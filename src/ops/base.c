/* ops/base: what every file of src/ops stands on: op and backup rows for callers to insert,
 * the clock, the timed waits and the retry backoff. It calls no other file of src/ops. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ops/ops.h"
#include "ops/ops_int.h"
#include "util/util.h"

/* ---- the database an op works on ---- */

int ops__op_database(ops_run *r, store_database *db, pf_err *e)
{
    pf_err le;
    if (store_database_get_internal(r->o->st, r->op->database_id, db, &le) != 0) {
        if (le.kind == ERR_NOT_FOUND)
            return 0;
        *e = le;
        return -1;
    }
    return db->status == DB_DELETING || db->status == DB_FAILURE ? 0 : 1;
}

/* ---- ops and backups, for callers to insert ---- */

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

/* ---- waiting ---- */

void ops__deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

bool ops__pause_or_stop(ops *o, pthread_cond_t *cv, int ms)
{
    struct timespec ts;
    ops__deadline_in(&ts, ms);
    pthread_mutex_lock(&o->mu);
    while (!o->stopping) {
        if (pthread_cond_timedwait(cv, &o->mu, &ts) == ETIMEDOUT)
            break;
    }
    bool stop = o->stopping;
    pthread_mutex_unlock(&o->mu);
    return stop;
}

bool ops__stopping(ops *o)
{
    pthread_mutex_lock(&o->mu);
    bool stop = o->stopping;
    pthread_mutex_unlock(&o->mu);
    return stop;
}

int64_t ops__now_ms(ops *o)
{
    return o->clock_ms ? o->clock_ms() : util_now_ms();
}

/* ---- retries ---- */

int64_t ops__retry_backoff_ms(const ops_config *cfg, int attempts)
{
    int64_t ms = cfg->retry_base_ms;
    for (int i = 1; i < attempts && ms < OPS_RETRY_MAX_MS; i++)
        ms *= 2;
    return ms < OPS_RETRY_MAX_MS ? ms : OPS_RETRY_MAX_MS;
}

void ops_notify(ops *o)
{
    pthread_mutex_lock(&o->mu);
    pthread_cond_broadcast(&o->wake);
    pthread_mutex_unlock(&o->mu);
}

const char *ops__inst_of(ops *o, const char *db_id, char out[PF_ID_MAX])
{
    store_database db;
    pf_err e;
    if (store_database_get_internal(o->st, db_id, &db, &e) == 0 && db.instance_id[0])
        snprintf(out, PF_ID_MAX, "%s", db.instance_id);
    else
        snprintf(out, PF_ID_MAX, "%s", db_id);
    return out;
}
