#include "ops/ops.h"

#include <errno.h>
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
    bool spares_wanted; /* a provision used a spare: refill */
    int nworkers;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* new work, or stopping */
    pthread_cond_t done; /* an op ended */
    pthread_cond_t refill;
    bool stopping;
    pthread_mutex_t pooler_mu; /* one pooler sync at a time: catalog read + apply */
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

/* Picks another port when the database's port is taken by something that is not its own
 * server (a foreign process, or a port freed by a crash but still in TIME_WAIT). */
static int ensure_free_port(ops *o, store_database *db, pf_err *e)
{
    if (engine_instance_running(o->en, db->id) || !engine_port_busy(db->port))
        return 0;
    int avoid[16];
    size_t navoid = 0;
    avoid[navoid++] = db->port;
    for (int tries = 0; tries < 15; tries++) {
        int port = 0;
        if (store_port_allocate(o->st, o->cfg.port_lo, o->cfg.port_hi, avoid, navoid, &port, e) !=
            0)
            return -1;
        if (!engine_port_busy(port)) {
            log_warn("db=%s port %d is taken by another process; moving to port %d", db->id,
                     db->port, port);
            if (store_database_set_port(o->st, db->id, port, e) != 0)
                return -1;
            db->port = port;
            return 0;
        }
        if (navoid < 16)
            avoid[navoid++] = port;
    }
    return err_internal(e, "no free port in %d-%d", o->cfg.port_lo, o->cfg.port_hi);
}

static int pooler_sync(ops *o, pf_err *e);

static int run_provision(ops *o, const store_op *op, pf_err *e)
{
    store_database db;
    pf_err le;
    if (store_database_get_internal(o->st, op->database_id, &db, &le) != 0)
        return le.status == 404 ? 0 : (*e = le, -1);
    if (db.status == DB_DELETING || db.status == DB_FAILURE)
        return 0;
    if (ensure_free_port(o, &db, e) != 0)
        return -1;
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
        /* "ready" promises both endpoints: the pooler knows the database first */
        if (pooler_sync(o, e) != 0)
            return -1;
        if (store_database_set_status(o->st, db.id, DB_READY, "", e) != 0)
            return -1;
        log_info("db=%s status %s -> ready (port %d)", db.id, store_db_status_name(db.status),
                 db.port);
    }
    return 0;
}

static int run_delete(ops *o, const store_op *op, pf_err *e)
{
    if (engine_instance_destroy(o->en, op->database_id, e) != 0)
        return -1;
    pf_err le;
    if (store_database_delete_row(o->st, op->database_id, &le) != 0 && le.status != 404) {
        *e = le;
        return -1;
    }
    log_info("db=%s deleted: server stopped, files removed", op->database_id);
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
    default:
        return err_internal(e, "unknown op kind %d", (int)op->kind);
    }
}

/* An op that ran out of attempts: a provision leaves its database in failure. */
static void give_up(ops *o, const store_op *op, const pf_err *why)
{
    pf_err le;
    if (op->kind == OP_DB_PROVISION) {
        store_database db;
        if (store_database_get_internal(o->st, op->database_id, &db, &le) == 0 &&
            db.status != DB_DELETING) {
            store_database_set_status(o->st, op->database_id, DB_FAILURE, why->message, &le);
            log_error("db=%s status %s -> failure: %s", op->database_id,
                      store_db_status_name(db.status), why->message);
        }
    }
    store_op_finish(o->st, op->id, OPS_FAILED, why->message, &le);
}

static void *worker_main(void *arg)
{
    ops *o = arg;
    for (;;) {
        pthread_mutex_lock(&o->mu);
        bool stop = o->stopping;
        pthread_mutex_unlock(&o->mu);
        if (stop)
            break;
        store_op op;
        pf_err e;
        err_clear(&e);
        int got = store_op_claim(o->st, &op, &e);
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
        if (rc == 0) {
            store_op_finish(o->st, op.id, OPS_DONE, "", &le);
            log_info("op=%s %s db=%s done in %lld ms", op.id, store_op_kind_name(op.kind),
                     op.database_id, (long long)(util_now_ms() - t0));
        } else if (op.attempts >= o->cfg.max_attempts || e.status == 409) {
            log_error("op=%s %s db=%s failed for good: %s", op.id, store_op_kind_name(op.kind),
                      op.database_id, e.message);
            give_up(o, &op, &e);
        } else {
            log_warn("op=%s %s db=%s failed (attempt %d), will retry: %s", op.id,
                     store_op_kind_name(op.kind), op.database_id, op.attempts, e.message);
            usleep((useconds_t)(200000 * op.attempts));
            store_op_requeue(o->st, op.id, e.message, &le);
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

static int enqueue(ops *o, store_op_kind kind, const char *db_id, pf_err *e)
{
    store_op op;
    ops_op_init(&op, kind, db_id, NULL);
    return store_op_insert(o->st, &op, e);
}

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
        if (store_op_count_active(o->st, db->id, &active, &e) != 0 || active > 0)
            continue;
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

static void *reconciler_main(void *arg)
{
    ops *o = arg;
    pooler_supervise(o, true);
    for (;;) {
        struct timespec ts;
        deadline_in(&ts, o->cfg.reconcile_ms);
        pthread_mutex_lock(&o->mu);
        while (!o->stopping) {
            if (pthread_cond_timedwait(&o->wake, &o->mu, &ts) == ETIMEDOUT)
                break;
        }
        bool stop = o->stopping;
        pthread_mutex_unlock(&o->mu);
        if (stop)
            break;
        reconcile(o, false);
        pooler_supervise(o, false);
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
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->wake, NULL);
    pthread_cond_init(&o->done, NULL);
    pthread_cond_init(&o->refill, NULL);
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
        if (pthread_create(&o->workers[i], NULL, worker_main, o) != 0)
            abort();
        o->nworkers++;
    }
    if (pthread_create(&o->reconciler, NULL, reconciler_main, o) != 0)
        abort();
    o->reconciler_started = true;
    if (o->cfg.spares > 0) {
        if (pthread_create(&o->spares, NULL, spares_main, o) != 0)
            abort();
        o->spares_started = true;
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

void ops_stop(ops *o)
{
    if (!o)
        return;
    pthread_mutex_lock(&o->mu);
    o->stopping = true;
    pthread_cond_broadcast(&o->wake);
    pthread_cond_broadcast(&o->done);
    pthread_cond_broadcast(&o->refill);
    pthread_mutex_unlock(&o->mu);
    for (int i = 0; i < o->nworkers; i++)
        pthread_join(o->workers[i], NULL);
    if (o->reconciler_started)
        pthread_join(o->reconciler, NULL);
    if (o->spares_started)
        pthread_join(o->spares, NULL);
    free(o->workers);
    pthread_cond_destroy(&o->wake);
    pthread_cond_destroy(&o->done);
    pthread_cond_destroy(&o->refill);
    pthread_mutex_destroy(&o->mu);
    pthread_mutex_destroy(&o->pooler_mu);
    free(o);
}
