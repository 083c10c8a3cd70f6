/* Unit tests for src/ops against a real SQLite catalog (src/store) and the fake engine
 * (fake_engine.c): each op kind's run and give-up, resume after a failure at every step
 * of a provision, a restore and a delete (the same end state), the lanes, the restart
 * intensity of servers and PgBouncer, and bounded retries with a backoff. No thread runs:
 * the tests drive one attempt at a time (ops__work_one) and the reconciler's passes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "fake_engine.h"
#include "ops/ops_int.h"
#include "store/store.h"
#include "util/log.h"
#include "util/util.h"

/* ---- fixture: a catalog in a temporary directory, a fake engine, an ops without threads */

typedef struct fixture {
    harness_catalog cat;
    store *st; /* cat.s */
    engine *en;
    ops *o;
    char ws[PF_ID_MAX], proj[PF_ID_MAX];
    int next_port;
} fixture;

static int64_t t_now = 1000000; /* the ops clock (restart intensity) */
static int64_t test_clock(void)
{
    return t_now;
}

static ops_config test_cfg(void)
{
    return (ops_config){.max_attempts = 3, .retry_base_ms = 1, .port_lo = 6000, .port_hi = 6100};
}

static void mk_ops(fixture *f, const ops_config *cfg)
{
    f->o = ops__new(f->st, f->en, cfg);
    f->o->clock_ms = test_clock;
}

static fixture *fx_new(void)
{
    fixture *f = xcalloc(1, sizeof *f);
    assert_int_equal(harness_catalog_open(&f->cat, "ops"), 0);
    f->st = f->cat.s;
    pf_err e;
    f->en = fake_engine_new(true);
    ops_config cfg = test_cfg();
    mk_ops(f, &cfg);
    f->next_port = 6000;
    store_workspace w = {0};
    util_id_new("wksp", w.id);
    snprintf(w.name, sizeof w.name, "ws");
    util_now_iso(w.created_at);
    assert_int_equal(store_workspace_insert(f->st, &w, &e), 0);
    memcpy(f->ws, w.id, PF_ID_MAX);
    store_project p = {0};
    util_id_new("proj", p.id);
    memcpy(p.workspace_id, f->ws, PF_ID_MAX);
    snprintf(p.name, sizeof p.name, "project");
    util_now_iso(p.created_at);
    assert_int_equal(store_project_insert(f->st, &p, &e), 0);
    memcpy(f->proj, p.id, PF_ID_MAX);
    ops__pooler_supervise(f->o, true);
    return f;
}

static void fx_free(fixture *f)
{
    ops_stop(f->o);
    harness_catalog_close(&f->cat);
    fake_engine_free(f->en);
    free(f);
}

static int setup(void **state)
{
    t_now = 1000000;
    *state = fx_new();
    return 0;
}

static int teardown(void **state)
{
    fx_free(*state);
    return 0;
}

/* ---- builders ---- */

static void queue(fixture *f, store_op_kind kind, const char *db, const char *conn,
                  const char *args, char id[PF_ID_MAX])
{
    store_op op;
    ops_op_init(&op, kind, db, conn);
    if (args)
        snprintf(op.args, sizeof op.args, "%s", args);
    pf_err e;
    assert_int_equal(store_op_insert(f->st, &op, &e), 0);
    if (id)
        memcpy(id, op.id, PF_ID_MAX);
}

/* The instance of database db (the engine's id for it): the attached one, else db itself
 * (one of a few static buffers, enough for the calls of one statement). */
static const char *inst_of(fixture *f, const char *db)
{
    static char bufs[4][PF_ID_MAX];
    static int next;
    char *out = bufs[next++ % 4];
    store_database d;
    pf_err e;
    if (store_database_get_internal(f->st, db, &d, &e) == 0 && d.instance_id[0])
        snprintf(out, PF_ID_MAX, "%s", d.instance_id);
    else
        snprintf(out, PF_ID_MAX, "%s", db);
    return out;
}

/* A new database (provisioning) with one connection and its provision op, as the API
 * makes them. */
static void mk_db(fixture *f, char db[PF_ID_MAX], char conn[PF_ID_MAX], char op[PF_ID_MAX])
{
    store_database d = {0};
    util_id_new("db", d.id);
    memcpy(d.workspace_id, f->ws, PF_ID_MAX);
    memcpy(d.project_id, f->proj, PF_ID_MAX);
    snprintf(d.name, sizeof d.name, "db");
    d.status = DB_PROVISIONING;
    snprintf(d.region, sizeof d.region, "eu-central-1");
    snprintf(d.source_type, sizeof d.source_type, "empty");
    d.port = f->next_port++;
    util_now_iso(d.created_at);
    pf_err e;
    assert_int_equal(store_database_insert(f->st, &d, &e), 0);
    memcpy(db, d.id, PF_ID_MAX);
    store_connection c = {0};
    util_id_new("conn", c.id);
    memcpy(c.workspace_id, f->ws, PF_ID_MAX);
    memcpy(c.database_id, d.id, PF_ID_MAX);
    snprintf(c.name, sizeof c.name, "default");
    snprintf(c.role, sizeof c.role, "u_%.40s", c.id + 5);
    snprintf(c.verifier, sizeof c.verifier, "SCRAM-SHA-256$4096:salt$v1");
    util_now_iso(c.created_at);
    assert_int_equal(store_connection_insert(f->st, &c, &e), 0);
    if (conn)
        memcpy(conn, c.id, PF_ID_MAX);
    queue(f, OP_DB_PROVISION, d.id, NULL, NULL, op);
}

static store_database get_db(fixture *f, const char *id)
{
    store_database d;
    pf_err e;
    assert_int_equal(store_database_get_internal(f->st, id, &d, &e), 0);
    return d;
}

static store_op get_op(fixture *f, const char *id)
{
    store_op op;
    pf_err e;
    assert_int_equal(store_op_get(f->st, id, &op, &e), 0);
    return op;
}

static int active_ops(fixture *f, const char *db)
{
    int n = 0;
    pf_err e;
    assert_int_equal(store_op_count_active(f->st, db, &n, &e), 0);
    return n;
}

/* Runs every op of both lanes until none is left (waiting out retry backoffs). */
static void drain(fixture *f)
{
    for (int i = 0; i < 5000; i++) {
        int a = ops__work_one(f->o, OPS_LANE_FAST);
        int b = ops__work_one(f->o, OPS_LANE_SLOW);
        assert_true(a >= 0 && b >= 0);
        if (a || b)
            continue;
        store_stats ss;
        pf_err e;
        assert_int_equal(store_stats_get(f->st, &ss, &e), 0);
        int64_t left = 0;
        for (int k = 0; k < OP__COUNT; k++)
            left += ss.ops[k][0] + ss.ops[k][1];
        if (left == 0)
            return;
        usleep(1000);
    }
    fail_msg("ops did not drain");
}

/* A ready database whose server runs, with its first full backup taken. */
static void mk_ready(fixture *f, char db[PF_ID_MAX], char conn[PF_ID_MAX])
{
    char op[PF_ID_MAX];
    mk_db(f, db, conn, op);
    drain(f);
    assert_int_equal(get_op(f, op).state, OPS_DONE);
    assert_int_equal(get_db(f, db).status, DB_READY);
}

static int backups_with(fixture *f, const char *db, store_backup_status st)
{
    store_backup *rows = NULL;
    size_t n = 0;
    pf_err e;
    assert_int_equal(store_backup_list_all(f->st, db, &rows, &n, &e), 0);
    int k = 0;
    for (size_t i = 0; i < n; i++)
        k += rows[i].status == st;
    free(rows);
    return k;
}

static void completed_label(fixture *f, const char *db, char label[64], char id[PF_ID_MAX])
{
    store_backup *rows = NULL;
    size_t n = 0;
    pf_err e;
    assert_int_equal(store_backup_list_all(f->st, db, &rows, &n, &e), 0);
    assert_true(n > 0);
    snprintf(label, 64, "%s", rows[n - 1].label);
    memcpy(id, rows[n - 1].id, PF_ID_MAX);
    free(rows);
}

/* What an op leaves: the database (status, reason, health), its server, roles, backups,
 * and what PgBouncer serves. Ids differ between worlds, so they are left out. */
static char *snapshot(fixture *f, const char *db)
{
    util_buf b = {0};
    store_database d;
    pf_err e;
    if (store_database_get_internal(f->st, db, &d, &e) == 0)
        util_buf_printf(&b, "status=%s reason=[%s] unhealthy=[%s]\n",
                        store_db_status_name(d.status), d.status_reason, d.unhealthy);
    else
        util_buf_printf(&b, "no row (%s)\n", err_kind_name(e.kind));
    char *roles = fake_roles(f->en, inst_of(f, db));
    int nroles = 0;
    for (const char *p = roles; *p; p++)
        nroles += *p == '=';
    util_buf_printf(&b, "exists=%d running=%d roles=%d backups=%d\n",
                    engine_instance_exists(f->en, inst_of(f, db)),
                    engine_instance_running(f->en, inst_of(f, db)), nroles,
                    fake_backups(f->en, inst_of(f, db)));
    free(roles);
    util_buf_printf(&b, "completed=%d failed=%d running=%d\n",
                    backups_with(f, db, BACKUP_COMPLETED), backups_with(f, db, BACKUP_FAILED),
                    backups_with(f, db, BACKUP_RUNNING));
    char *pooled = fake_pooled(f->en);
    const char *users = strchr(pooled, '|');
    util_buf_printf(&b, "pooled=%s users=%s\n", strstr(pooled, db) ? "db" : "-",
                    users && users[1] ? "some" : "none");
    free(pooled);
    return util_buf_take(&b);
}

/* ---- the table ---- */

static void test_table_and_lanes(void **state)
{
    (void)state;
    uint32_t seen = 0;
    for (int k = 0; k < OP__COUNT; k++) {
        const ops_kind *row = ops__kind((store_op_kind)k);
        assert_non_null(row);
        assert_int_equal(row->kind, k);
        assert_non_null(row->run);
    }
    assert_null(ops__kind(OP__COUNT));
    for (int l = 0; l < OPS_LANE__COUNT; l++) {
        const store_op_lane *lane = ops__lane((ops_lane_id)l);
        assert_int_equal(seen & lane->kinds, 0); /* every kind in one lane */
        seen |= lane->kinds;
        assert_int_equal(lane->passers,
                         (1u << OP_CONN_SYNC) | (1u << OP_CONN_DROP) | (1u << OP_DB_DELETE));
        assert_int_equal(lane->passed, 1u << OP_DB_BACKUP);
    }
    assert_int_equal(seen, (1u << OP__COUNT) - 1);
    assert_true(ops__lane(OPS_LANE_SLOW)->kinds & (1u << OP_DB_RESTORE));
    assert_false(ops__lane(OPS_LANE_FAST)->kinds & (1u << OP_DB_BACKUP));
}

/* ---- provision ---- */

static void test_provision_run(void **state)
{
    fixture *f = *state;
    char db[PF_ID_MAX], conn[PF_ID_MAX], op[PF_ID_MAX];
    mk_db(f, db, conn, op);
    int applies = fake_pooler_applies(f->en);
    assert_int_equal(ops__work_one(f->o, OPS_LANE_FAST), 1);
    /* the pooled endpoint is synced once per op, not twice */
    assert_int_equal(fake_pooler_applies(f->en), applies + 1);
    store_op o = get_op(f, op);
    assert_int_equal(o.state, OPS_DONE);
    assert_int_equal(o.attempts, 1);
    store_database d = get_db(f, db);
    assert_int_equal(d.status, DB_READY);
    assert_true(engine_instance_running(f->en, inst_of(f, db)));
    char *roles = fake_roles(f->en, inst_of(f, db));
    assert_non_null(strstr(roles, "=SCRAM-SHA-256$4096:salt$v1"));
    free(roles);
    char *pooled = fake_pooled(f->en);
    assert_non_null(strstr(pooled, db));
    free(pooled);
    /* the first full backup is queued with ready, in the slow lane */
    assert_int_equal(backups_with(f, db, BACKUP_RUNNING), 1);
    assert_int_equal(ops__work_one(f->o, OPS_LANE_FAST), 0);
    int before = fake_pooler_applies(f->en);
    assert_int_equal(ops__work_one(f->o, OPS_LANE_SLOW), 1);
    assert_int_equal(backups_with(f, db, BACKUP_COMPLETED), 1);
    /* a backup changes nothing PgBouncer serves */
    assert_int_equal(fake_pooler_applies(f->en), before);
    /* a second provision of a ready database is a no-op restart */
    queue(f, OP_DB_PROVISION, db, NULL, NULL, op);
    drain(f);
    assert_int_equal(get_op(f, op).state, OPS_DONE);
    assert_int_equal(backups_with(f, db, BACKUP_COMPLETED), 1);
}

static void test_provision_give_up(void **state)
{
    fixture *f = *state;
    char db[PF_ID_MAX], op[PF_ID_MAX];
    mk_db(f, db, NULL, op);
    fake_fail(f->en, FAKE_INSTANCE_START, ERR_PERMANENT, -1);
    drain(f);
    assert_int_equal(fake_calls(f->en, FAKE_INSTANCE_START), 1); /* not retried */
    store_op o = get_op(f, op);
    assert_int_equal(o.state, OPS_FAILED);
    assert_non_null(strstr(o.error, "fake failure"));
    store_database d = get_db(f, db);
    assert_int_equal(d.status, DB_FAILURE);
    assert_non_null(strstr(d.status_reason, "fake failure"));
}

/* Each non-retryable kind gives up at the first attempt; a retryable one is retried up to
 * max_attempts. */
static void test_retry_only_retryable(void **state)
{
    fixture *f = *state;
    const pf_err_kind once[] = {ERR_INVALID, ERR_CONFLICT, ERR_NOT_FOUND, ERR_PERMANENT};
    for (size_t i = 0; i < sizeof once / sizeof once[0]; i++) {
        char db[PF_ID_MAX], op[PF_ID_MAX];
        mk_db(f, db, NULL, op);
        int calls = fake_calls(f->en, FAKE_INSTANCE_CREATE);
        fake_fail(f->en, FAKE_INSTANCE_CREATE, once[i], -1);
        drain(f);
        assert_int_equal(fake_calls(f->en, FAKE_INSTANCE_CREATE), calls + 1);
        assert_int_equal(get_op(f, op).attempts, 1);
        assert_int_equal(get_db(f, db).status, DB_FAILURE);
    }
    const pf_err_kind retried[] = {ERR_TRANSIENT, ERR_INTERNAL};
    for (size_t i = 0; i < sizeof retried / sizeof retried[0]; i++) {
        char db[PF_ID_MAX], op[PF_ID_MAX];
        mk_db(f, db, NULL, op);
        int calls = fake_calls(f->en, FAKE_INSTANCE_CREATE);
        fake_fail(f->en, FAKE_INSTANCE_CREATE, retried[i], -1);
        drain(f);
        assert_int_equal(fake_calls(f->en, FAKE_INSTANCE_CREATE), calls + 3);
        store_op o = get_op(f, op);
        assert_int_equal(o.attempts, 3);
        assert_int_equal(o.state, OPS_FAILED);
        assert_int_equal(get_db(f, db).status, DB_FAILURE);
    }
}

/* A transient failure (a busy port, a full disk) waits a growing backoff between attempts
 * (in the catalog: no worker sleeps) and succeeds when the cause passes. */
static void test_retry_backoff(void **state)
{
    fixture *f = *state;
    ops_stop(f->o);
    ops_config cfg = test_cfg();
    cfg.retry_base_ms = 200;
    mk_ops(f, &cfg);
    assert_int_equal(ops__retry_backoff_ms(&f->o->cfg, 1), 200);
    assert_int_equal(ops__retry_backoff_ms(&f->o->cfg, 2), 400);
    assert_int_equal(ops__retry_backoff_ms(&f->o->cfg, 30), OPS_RETRY_MAX_MS);
    char db[PF_ID_MAX], op[PF_ID_MAX];
    mk_db(f, db, NULL, op);
    fake_fail(f->en, FAKE_INSTANCE_START, ERR_TRANSIENT, 2);
    int64_t t0 = util_now_ms();
    assert_int_equal(ops__work_one(f->o, OPS_LANE_FAST), 1);
    store_op o = get_op(f, op);
    assert_int_equal(o.state, OPS_PENDING);
    assert_int_equal(o.attempts, 1);
    /* not claimable before its backoff */
    assert_int_equal(ops__work_one(f->o, OPS_LANE_FAST), 0);
    while (ops__work_one(f->o, OPS_LANE_FAST) == 0)
        usleep(5000);
    assert_true(util_now_ms() - t0 >= 180);
    assert_int_equal(get_op(f, op).attempts, 2);
    int64_t t1 = util_now_ms();
    while (ops__work_one(f->o, OPS_LANE_FAST) == 0)
        usleep(5000);
    assert_true(util_now_ms() - t1 >= 350);
    o = get_op(f, op);
    assert_int_equal(o.state, OPS_DONE);
    assert_int_equal(o.attempts, 3);
    assert_int_equal(get_db(f, db).status, DB_READY);
}

/* ---- delete ---- */

static void test_delete_run_and_give_up(void **state)
{
    fixture *f = *state;
    char db[PF_ID_MAX], conn[PF_ID_MAX], op[PF_ID_MAX];
    mk_ready(f, db, conn);
    assert_int_equal(fake_backups(f->en, inst_of(f, db)), 1);
    pf_err e;
    assert_int_equal(store_database_transition(f->st, db, DB_READY, DB_DELETING, "", &e), 0);
    fake_fail(f->en, FAKE_INSTANCE_DESTROY, ERR_PERMANENT, 1);
    queue(f, OP_DB_DELETE, db, NULL, NULL, op);
    drain(f);
    assert_int_equal(get_op(f, op).state, OPS_FAILED);
    assert_int_equal(get_db(f, db).status, DB_DELETING); /* nothing else changes */
    queue(f, OP_DB_DELETE, db, NULL, NULL, op);
    drain(f);
    assert_int_equal(get_op(f, op).state, OPS_DONE);
    store_database d;
    assert_int_equal(store_database_get_internal(f->st, db, &d, &e), -1);
    assert_int_equal(e.kind, ERR_NOT_FOUND);
    assert_false(engine_instance_exists(f->en, inst_of(f, db)));
    assert_int_equal(fake_backups(f->en, inst_of(f, db)), 0);
    char *pooled = fake_pooled(f->en);
    assert_null(strstr(pooled, db));
    free(pooled);
}

/* ---- credentials ---- */

static void test_conn_sync_and_drop(void **state)
{
    fixture *f = *state;
    char db[PF_ID_MAX], conn[PF_ID_MAX], op[PF_ID_MAX];
    mk_ready(f, db, conn);
    pf_err e;
    assert_int_equal(store_connection_set_verifier(f->st, conn, "SCRAM-SHA-256$4096:salt$v2", &e),
                     0);
    queue(f, OP_CONN_SYNC, db, conn, NULL, op);
    drain(f);
    assert_int_equal(get_op(f, op).state, OPS_DONE);
    char *roles = fake_roles(f->en, inst_of(f, db));
    assert_non_null(strstr(roles, "$v2"));
    free(roles);
    /* give-up: a failed role change is retried, then the op fails; the row stays */
    assert_int_equal(store_connection_mark_deleting(f->st, conn, &e), 0);
    fake_fail(f->en, FAKE_ROLE_DROP, ERR_TRANSIENT, -1);
    queue(f, OP_CONN_DROP, db, conn, NULL, op);
    drain(f);
    assert_int_equal(get_op(f, op).state, OPS_FAILED);
    assert_int_equal(fake_calls(f->en, FAKE_ROLE_DROP), 3);
    store_connection c;
    assert_int_equal(store_connection_get_internal(f->st, conn, &c, &e), 0);
    char role[64];
    snprintf(role, sizeof role, "%s", c.role);
    fake_fail(f->en, FAKE_ROLE_DROP, ERR_NONE, 0);
    queue(f, OP_CONN_DROP, db, conn, NULL, op);
    drain(f);
    assert_int_equal(get_op(f, op).state, OPS_DONE);
    roles = fake_roles(f->en, inst_of(f, db));
    assert_string_equal(roles, "");
    free(roles);
    assert_int_equal(store_connection_get_internal(f->st, conn, &c, &e), -1);
    char *pooled = fake_pooled(f->en);
    assert_non_null(strstr(pooled, db));
    assert_null(strstr(pooled, role));
    free(pooled);
}

/* A credential change whose server stops during the call is retried once the server is
 * back, not failed at once on the engine's NotRunning conflict. */
static void test_conn_server_stopped(void **state)
{
    fixture *f = *state;
    char db[PF_ID_MAX], conn[PF_ID_MAX], op[PF_ID_MAX];
    mk_ready(f, db, conn);
    store_database d = get_db(f, db);
    pf_err e;
    const store_op_kind kinds[] = {OP_CONN_SYNC, OP_CONN_DROP};
    const fake_call calls[] = {FAKE_ROLE_ENSURE, FAKE_ROLE_DROP};
    for (int i = 0; i < 2; i++) {
        if (kinds[i] == OP_CONN_DROP)
            assert_int_equal(store_connection_mark_deleting(f->st, conn, &e), 0);
        fake_stop_before(f->en, calls[i]);
        queue(f, kinds[i], db, conn, NULL, op);
        assert_int_equal(ops__work_one(f->o, OPS_LANE_FAST), 1);
        store_op o = get_op(f, op);
        assert_int_equal(o.state, OPS_PENDING);
        assert_non_null(strstr(o.error, "not running"));
        assert_int_equal(engine_instance_start(f->en, inst_of(f, db), d.port, 1000, &e), 0);
        drain(f);
        assert_int_equal(get_op(f, op).state, OPS_DONE);
    }
}

static void test_conn_sync_give_up(void **state)
{
    fixture *f = *state;
    char db[PF_ID_MAX], conn[PF_ID_MAX], op[PF_ID_MAX];
    mk_ready(f, db, conn);
    pf_err e;
    assert_int_equal(store_database_transition(f->st, db, DB_READY, DB_FAILURE, "broken", &e), 0);
    queue(f, OP_CONN_SYNC, db, conn, NULL, op);
    int calls = fake_calls(f->en, FAKE_ROLE_ENSURE);
    drain(f);
    store_op o = get_op(f, op);
    assert_int_equal(o.state, OPS_FAILED); /* a conflict: at once */
    assert_int_equal(o.attempts, 1);
    assert_int_equal(fake_calls(f->en, FAKE_ROLE_ENSURE), calls);
    assert_int_equal(get_db(f, db).status, DB_FAILURE);
}

/* ---- backup, restore, clone ---- */

static void queue_backup(fixture *f, const char *db, char bkp[PF_ID_MAX], char op[PF_ID_MAX])
{
    store_backup b;
    store_op o;
    ops_backup_init(&b, &o, db, BACKUP_FULL);
    pf_err e;
    assert_int_equal(store_backup_insert(f->st, &b, &e), 0);
    assert_int_equal(store_op_insert(f->st, &o, &e), 0);
    memcpy(bkp, b.id, PF_ID_MAX);
    memcpy(op, o.id, PF_ID_MAX);
}

static void test_backup_run_and_give_up(void **state)
{
    fixture *f = *state;
    char db[PF_ID_MAX], conn[PF_ID_MAX], bkp[PF_ID_MAX], op[PF_ID_MAX];
    mk_ready(f, db, conn);
    queue_backup(f, db, bkp, op);
    drain(f);
    assert_int_equal(get_op(f, op).state, OPS_DONE);
    store_backup b;
    pf_err e;
    assert_int_equal(store_backup_get(f->st, db, bkp, &b, &e), 0);
    assert_int_equal(b.status, BACKUP_COMPLETED);
    assert_true(b.label[0] != '\0');
    assert_int_equal(fake_backups(f->en, inst_of(f, db)), 2);
    fake_fail(f->en, FAKE_BACKUP_RUN, ERR_PERMANENT, -1);
    queue_backup(f, db, bkp, op);
    drain(f);
    assert_int_equal(get_op(f, op).state, OPS_FAILED);
    assert_int_equal(store_backup_get(f->st, db, bkp, &b, &e), 0);
    assert_int_equal(b.status, BACKUP_FAILED);
    assert_non_null(strstr(b.error, "fake failure"));
    assert_int_equal(get_db(f, db).status, DB_READY); /* a backup never fails its database */
}

/* A crash after the backup was taken and recorded, before its op ended: the op runs again
 * and takes no second backup. */
static void test_backup_resume_after_finish(void **state)
{
    fixture *f = *state;
    char db[PF_ID_MAX], conn[PF_ID_MAX], bkp[PF_ID_MAX], op[PF_ID_MAX];
    mk_ready(f, db, conn);
    queue_backup(f, db, bkp, op);
    pf_err e;
    char stopped[STORE_TS_MAX];
    util_now_iso(stopped);
    assert_int_equal(store_backup_finish(f->st, bkp, BACKUP_COMPLETED, "20261201-000000F", 1000,
                                         stopped, "", &e),
                     0);
    int runs = fake_calls(f->en, FAKE_BACKUP_RUN);
    drain(f);
    assert_int_equal(get_op(f, op).state, OPS_DONE);
    assert_int_equal(fake_calls(f->en, FAKE_BACKUP_RUN), runs);
}

static void queue_restore(fixture *f, const char *db, const char *src, const char *label,
                          char op[PF_ID_MAX])
{
    pf_err e;
    store_database d = get_db(f, db);
    assert_int_equal(store_database_transition(f->st, db, d.status, DB_RECOVERING, "", &e), 0);
    char args[256];
    snprintf(args, sizeof args, "{\"sourceDatabaseId\":\"%s\",\"label\":\"%s\"}", src, label);
    queue(f, OP_DB_RESTORE, db, NULL, args, op);
}

static void test_restore_run_and_give_up(void **state)
{
    fixture *f = *state;
    char db[PF_ID_MAX], conn[PF_ID_MAX], op[PF_ID_MAX], label[64], bkp[PF_ID_MAX];
    mk_ready(f, db, conn);
    completed_label(f, db, label, bkp);
    queue_restore(f, db, db, label, op);
    drain(f);
    assert_int_equal(get_op(f, op).state, OPS_DONE);
    assert_int_equal(get_db(f, db).status, DB_READY);
    assert_true(engine_instance_running(f->en, inst_of(f, db)));
    assert_int_equal(backups_with(f, db, BACKUP_COMPLETED), 2); /* a new first backup */
    char *roles = fake_roles(f->en, inst_of(f, db));
    assert_non_null(strstr(roles, "$v1"));
    free(roles);
    /* give-up with the data unchanged: ready again, its server restarted */
    fake_fail(f->en, FAKE_RESTORE, ERR_PERMANENT, -1);
    queue_restore(f, db, db, label, op);
    drain(f);
    assert_int_equal(get_op(f, op).state, OPS_FAILED);
    assert_int_equal(get_db(f, db).status, DB_READY);
    assert_true(engine_instance_running(f->en, inst_of(f, db)));
    /* give-up after it began to overwrite the data in place: failure */
    fake_set_overwriting(f->en, inst_of(f, db), true);
    queue_restore(f, db, db, label, op);
    drain(f);
    assert_int_equal(get_op(f, op).state, OPS_FAILED);
    store_database d = get_db(f, db);
    assert_int_equal(d.status, DB_FAILURE);
    assert_non_null(strstr(d.status_reason, "fake failure"));
}

static void test_clone_run_and_give_up(void **state)
{
    fixture *f = *state;
    char src[PF_ID_MAX], sconn[PF_ID_MAX], db[PF_ID_MAX], op[PF_ID_MAX], pop[PF_ID_MAX];
    mk_ready(f, src, sconn);
    char args[256];
    /* the clone's database is new (provisioning) with its own credential */
    mk_db(f, db, NULL, pop);
    pf_err e;
    assert_int_equal(store_op_finish(f->st, pop, OPS_DONE, "", &e), 0);
    snprintf(args, sizeof args, "{\"sourceDatabaseId\":\"%s\"}", src);
    queue(f, OP_DB_CLONE, db, NULL, args, op);
    drain(f);
    assert_int_equal(get_op(f, op).state, OPS_DONE);
    assert_int_equal(get_db(f, db).status, DB_READY);
    assert_true(engine_instance_running(f->en, inst_of(f, db)));
    assert_int_equal(backups_with(f, db, BACKUP_COMPLETED), 1);
    /* give-up of a new database's clone: failure */
    char db2[PF_ID_MAX];
    mk_db(f, db2, NULL, pop);
    assert_int_equal(store_op_finish(f->st, pop, OPS_DONE, "", &e), 0);
    fake_kill(f->en, inst_of(f, src)); /* the source is down: transient, retried */
    snprintf(args, sizeof args, "{\"sourceDatabaseId\":\"%s\"}", src);
    queue(f, OP_DB_CLONE, db2, NULL, args, op);
    drain(f);
    store_op o = get_op(f, op);
    assert_int_equal(o.state, OPS_FAILED);
    assert_int_equal(o.attempts, 3); /* the source not running is transient */
    assert_int_equal(get_db(f, db2).status, DB_FAILURE);
}

/* What a restart of pgfleet does to f: a new ops (cfg), running ops pending again (how
 * many: the return), the startup reconcile. */
static int restart_ops(fixture *f, const ops_config *cfg)
{
    ops_stop(f->o);
    mk_ops(f, cfg);
    int reset = 0;
    pf_err e;
    assert_int_equal(store_op_reset_running(f->st, &reset, &e), 0);
    ops__reconcile(f->o, true);
    return reset;
}

/* ---- resume after a failure at every step ---- */

typedef void (*world_fn)(fixture *f, char db[PF_ID_MAX]);

/* A new database and its provision op. */
static void world_provision(fixture *f, char db[PF_ID_MAX])
{
    char op[PF_ID_MAX];
    mk_db(f, db, NULL, op);
}

/* A ready database with a backup, and a restore of it. */
static void world_restore(fixture *f, char db[PF_ID_MAX])
{
    char conn[PF_ID_MAX], op[PF_ID_MAX], label[64], bkp[PF_ID_MAX];
    mk_ready(f, db, conn);
    completed_label(f, db, label, bkp);
    queue_restore(f, db, db, label, op);
}

/* A ready database with a backup, being deleted. */
static void world_delete(fixture *f, char db[PF_ID_MAX])
{
    char conn[PF_ID_MAX], op[PF_ID_MAX];
    mk_ready(f, db, conn);
    pf_err e;
    assert_int_equal(store_database_transition(f->st, db, DB_READY, DB_DELETING, "", &e), 0);
    queue(f, OP_DB_DELETE, db, NULL, NULL, op);
}

/* Runs the world's op with the engine failing at its step k (k = 1.. until an op runs
 * through without reaching k), then what a restart does (running ops pending again, the
 * startup reconcile) and every op left: the end state is the one of a run without failure. */
static void resume_at_every_step(world_fn world)
{
    fixture *ref = fx_new();
    char db[PF_ID_MAX];
    world(ref, db);
    int base = fake_steps(ref->en);
    drain(ref);
    int nsteps = fake_steps(ref->en) - base;
    char *want = snapshot(ref, db);
    fx_free(ref);
    assert_true(nsteps >= 2);
    for (int k = 1; k <= nsteps; k++) {
        fixture *f = fx_new();
        ops_stop(f->o);
        ops_config cfg = test_cfg();
        cfg.max_attempts = 10; /* the failure is a crash, not a reason to give up */
        mk_ops(f, &cfg);
        world(f, db);
        fake_crash_at(f->en, fake_steps(f->en) + k);
        assert_true(ops__work_one(f->o, OPS_LANE_FAST) + ops__work_one(f->o, OPS_LANE_SLOW) > 0);
        restart_ops(f, &cfg);
        drain(f);
        char *got = snapshot(f, db);
        if (strcmp(got, want) != 0)
            fail_msg("failure at step %d of %d:\nwant:\n%s\ngot:\n%s", k, nsteps, want, got);
        free(got);
        fx_free(f);
    }
    free(want);
}

static void test_resume_provision(void **state)
{
    (void)state;
    resume_at_every_step(world_provision);
}

static void test_resume_restore(void **state)
{
    (void)state;
    resume_at_every_step(world_restore);
}

/* A kill -9 after a restore made its database ready and before its op's end was recorded:
 * the op runs again after the restart, finds the database ready, and ends done without
 * restoring again (what was written since stays) or failing the database. */
static void test_restore_resume_after_ready(void **state)
{
    (void)state;
    fixture *f = fx_new();
    char db[PF_ID_MAX];
    world_restore(f, db);
    pf_err e;
    store_op claimed;
    assert_int_equal(store_op_claim(f->st, ops__lane(OPS_LANE_SLOW), &claimed, &e), 1);
    assert_int_equal(claimed.kind, OP_DB_RESTORE);
    /* what the op had done before the kill: the swap, and ready recorded */
    assert_int_equal(store_database_transition(f->st, db, DB_RECOVERING, DB_READY, "", &e), 0);
    int restores = fake_calls(f->en, FAKE_RESTORE);
    ops_config cfg = test_cfg();
    assert_int_equal(restart_ops(f, &cfg), 1);
    drain(f);
    assert_int_equal(get_op(f, claimed.id).state, OPS_DONE);
    assert_int_equal(get_db(f, db).status, DB_READY);
    assert_true(engine_instance_running(f->en, inst_of(f, db)));
    assert_int_equal(fake_calls(f->en, FAKE_RESTORE), restores);
    fx_free(f);
}

/* A restore asked while a provision of its database is queued (a start's, or the
 * reconciler's restart): the provision runs first and leaves the database recovering, the
 * restore then restores (it is not taken for one that ran before an interruption); so too
 * when pgfleet is killed between the two. */
static void restore_behind_provision(bool kill_between)
{
    fixture *f = fx_new();
    char db[PF_ID_MAX], conn[PF_ID_MAX], op[PF_ID_MAX], pop[PF_ID_MAX], label[64], bkp[PF_ID_MAX];
    mk_ready(f, db, conn);
    completed_label(f, db, label, bkp);
    queue(f, OP_DB_PROVISION, db, NULL, NULL, pop);
    queue_restore(f, db, db, label, op);
    int restores = fake_calls(f->en, FAKE_RESTORE);
    assert_int_equal(ops__work_one(f->o, OPS_LANE_FAST), 1);
    assert_int_equal(get_op(f, pop).state, OPS_DONE);
    assert_int_equal(get_db(f, db).status, DB_RECOVERING);
    if (kill_between) {
        ops_config cfg = test_cfg();
        restart_ops(f, &cfg);
    }
    drain(f);
    assert_int_equal(get_op(f, op).state, OPS_DONE);
    assert_int_equal(fake_calls(f->en, FAKE_RESTORE), restores + 1);
    assert_int_equal(get_db(f, db).status, DB_READY);
    assert_true(engine_instance_running(f->en, inst_of(f, db)));
    fx_free(f);
}

static void test_restore_behind_provision(void **state)
{
    (void)state;
    restore_behind_provision(false);
    restore_behind_provision(true);
}

static void test_resume_delete(void **state)
{
    (void)state;
    resume_at_every_step(world_delete);
}

/* ---- lanes ---- */

static void test_lanes(void **state)
{
    fixture *f = *state;
    char db[PF_ID_MAX], conn[PF_ID_MAX], bkp[PF_ID_MAX], bop[PF_ID_MAX], op[PF_ID_MAX];
    mk_ready(f, db, conn);
    /* a running backup does not block a credential change of the same database */
    queue_backup(f, db, bkp, bop);
    queue(f, OP_CONN_SYNC, db, conn, NULL, op);
    store_op claimed;
    pf_err e;
    assert_int_equal(store_op_claim(f->st, ops__lane(OPS_LANE_SLOW), &claimed, &e), 1);
    assert_string_equal(claimed.id, bop);
    assert_int_equal(ops__work_one(f->o, OPS_LANE_FAST), 1);
    assert_int_equal(get_op(f, op).state, OPS_DONE);
    assert_int_equal(get_op(f, bop).state, OPS_RUNNING);
    /* ... but a provision waits for it, and the fast lane never takes a backup */
    queue(f, OP_DB_PROVISION, db, NULL, NULL, op);
    assert_int_equal(ops__work_one(f->o, OPS_LANE_FAST), 0);
    assert_int_equal(store_op_requeue(f->st, bop, "", 0, &e), 0);
    assert_int_equal(ops__work_one(f->o, OPS_LANE_FAST), 0); /* the backup is older */
    assert_int_equal(ops__work_one(f->o, OPS_LANE_SLOW), 1);
    assert_int_equal(get_op(f, bop).state, OPS_DONE);
    assert_int_equal(ops__work_one(f->o, OPS_LANE_FAST), 1);
    assert_int_equal(get_op(f, op).state, OPS_DONE);
}

/* A delete never waits behind a backup: it passes the running one (stopped through the
 * engine) and cancels the queued ones; the running backup's op then finds the database
 * gone and ends without a backup. */
static void test_delete_passes_and_cancels_backups(void **state)
{
    fixture *f = *state;
    char db[PF_ID_MAX], conn[PF_ID_MAX], bkp[PF_ID_MAX], bop[PF_ID_MAX], bkp2[PF_ID_MAX],
        bop2[PF_ID_MAX], op[PF_ID_MAX];
    mk_ready(f, db, conn);
    queue_backup(f, db, bkp, bop);
    queue_backup(f, db, bkp2, bop2);
    store_op claimed;
    pf_err e;
    assert_int_equal(store_op_claim(f->st, ops__lane(OPS_LANE_SLOW), &claimed, &e), 1);
    assert_string_equal(claimed.id, bop); /* the first backup runs */
    assert_int_equal(store_database_transition(f->st, db, DB_READY, DB_DELETING, "", &e), 0);
    queue(f, OP_DB_DELETE, db, NULL, NULL, op);
    int stops = fake_calls(f->en, FAKE_BACKUP_STOP);
    assert_int_equal(ops__work_one(f->o, OPS_LANE_FAST), 1);
    assert_int_equal(get_op(f, op).state, OPS_DONE);
    assert_true(fake_calls(f->en, FAKE_BACKUP_STOP) > stops);
    store_op queued = get_op(f, bop2);
    assert_int_equal(queued.state, OPS_FAILED);
    assert_non_null(strstr(queued.error, "cancelled"));
    /* the stopped backup's op, run again, finds the database gone: done, no backup */
    int runs = fake_calls(f->en, FAKE_BACKUP_RUN);
    assert_int_equal(store_op_requeue(f->st, bop, "stopped", 0, &e), 0);
    assert_int_equal(ops__work_one(f->o, OPS_LANE_SLOW), 1);
    assert_int_equal(get_op(f, bop).state, OPS_DONE);
    assert_int_equal(fake_calls(f->en, FAKE_BACKUP_RUN), runs);
    assert_int_equal(active_ops(f, db), 0);
}

/* A full disk (the engine's "DiskFull" transient error) heals once space is freed: the op
 * is retried past max_attempts instead of failing its database. */
static void test_disk_full_retried_past_attempts(void **state)
{
    fixture *f = *state;
    char db[PF_ID_MAX], conn[PF_ID_MAX], op[PF_ID_MAX];
    mk_db(f, db, conn, op);
    fake_fail_code(f->en, FAKE_INSTANCE_CREATE, ERR_TRANSIENT, "DiskFull", 5);
    for (int i = 0; i < 5; i++) {
        while (ops__work_one(f->o, OPS_LANE_FAST) == 0)
            usleep(1000); /* the backoff (retry_base_ms 1, doubling) */
        assert_int_equal(get_op(f, op).state, OPS_PENDING);
        assert_int_equal(get_db(f, db).status, DB_PROVISIONING);
    }
    drain(f);
    assert_int_equal(get_op(f, op).state, OPS_DONE);
    assert_int_equal(get_db(f, db).status, DB_READY);
}

/* ---- restart intensity ---- */

static void test_restart_intensity(void **state)
{
    fixture *f = *state;
    char db[PF_ID_MAX], conn[PF_ID_MAX];
    mk_ready(f, db, conn);
    for (int i = 0; i < OPS_RESTART_INTENSITY; i++) {
        fake_kill(f->en, inst_of(f, db));
        t_now += 1000;
        ops__reconcile(f->o, false);
        assert_int_equal(active_ops(f, db), 1);
        drain(f);
        assert_true(engine_instance_running(f->en, inst_of(f, db)));
        assert_string_equal(get_db(f, db).unhealthy, "");
    }
    /* the sixth death within the period: no restart now; unhealthy, with the reason */
    fake_kill(f->en, inst_of(f, db));
    t_now += 1000;
    ops__reconcile(f->o, false);
    assert_int_equal(active_ops(f, db), 0);
    store_database d = get_db(f, db);
    assert_non_null(strstr(d.unhealthy, "keeps stopping (5 restarts in 300 s)"));
    assert_int_equal(d.status, DB_READY);
    ops_stats os = {0};
    ops_stats_get(f->o, &os);
    assert_int_equal(os.unhealthy, 1);
    assert_int_equal(os.servers_down, 1);
    t_now += OPS_BACKOFF_MIN_MS - 1000;
    ops__reconcile(f->o, false);
    assert_int_equal(active_ops(f, db), 0);
    /* after the backoff: restarted; the start succeeds and clears unhealthy */
    t_now += 1000;
    ops__reconcile(f->o, false);
    assert_int_equal(active_ops(f, db), 1);
    drain(f);
    assert_true(engine_instance_running(f->en, inst_of(f, db)));
    assert_string_equal(get_db(f, db).unhealthy, "");
    /* the next death waits twice as long */
    fake_kill(f->en, inst_of(f, db));
    t_now += 1000;
    ops__reconcile(f->o, false);
    assert_int_equal(active_ops(f, db), 0);
    t_now += OPS_BACKOFF_MIN_MS;
    ops__reconcile(f->o, false);
    assert_int_equal(active_ops(f, db), 0);
    t_now += OPS_BACKOFF_MIN_MS;
    ops__reconcile(f->o, false);
    assert_int_equal(active_ops(f, db), 1);
    drain(f);
    /* a whole period seen running: back to restarting at once */
    t_now += OPS_RESTART_PERIOD_MS;
    ops__reconcile(f->o, false);
    fake_kill(f->en, inst_of(f, db));
    ops__reconcile(f->o, false);
    assert_int_equal(active_ops(f, db), 1);
    drain(f);
    assert_string_equal(get_db(f, db).unhealthy, "");
}

static void test_restart_backoff_caps(void **state)
{
    (void)state;
    ops_restarts r = {0};
    int64_t now = 1, wait = 0;
    for (int i = 0; i < OPS_RESTART_INTENSITY; i++)
        assert_true(ops__restart_allowed(&r, now++, &wait));
    assert_false(ops__restart_allowed(&r, now, &wait));
    assert_int_equal(wait, OPS_BACKOFF_MIN_MS);
    int64_t last = 0;
    for (int i = 0; i < 12; i++) {
        while (!ops__restart_allowed(&r, now, &wait))
            now += wait;
        last = r.backoff_ms;
    }
    assert_int_equal(last, OPS_BACKOFF_MAX_MS);
}

/* A ready database whose server does not start (a full disk) is never failure: unhealthy,
 * restarted by the reconciler, and healthy again once a start succeeds. */
static void test_ready_restart_never_failure(void **state)
{
    fixture *f = *state;
    char db[PF_ID_MAX], conn[PF_ID_MAX];
    mk_ready(f, db, conn);
    fake_kill(f->en, inst_of(f, db));
    fake_fail(f->en, FAKE_INSTANCE_START, ERR_TRANSIENT, -1);
    t_now += 1000;
    ops__reconcile(f->o, false);
    drain(f);
    store_database d = get_db(f, db);
    assert_int_equal(d.status, DB_READY);
    assert_non_null(strstr(d.unhealthy, "does not start"));
    assert_non_null(strstr(d.unhealthy, "fake failure"));
    /* even a permanent error: still not failure */
    fake_fail(f->en, FAKE_INSTANCE_START, ERR_PERMANENT, -1);
    t_now += 1000;
    ops__reconcile(f->o, false);
    drain(f);
    assert_int_equal(get_db(f, db).status, DB_READY);
    /* space freed: the next restart succeeds */
    fake_fail(f->en, FAKE_INSTANCE_START, ERR_NONE, 0);
    t_now += 1000;
    ops__reconcile(f->o, false);
    drain(f);
    d = get_db(f, db);
    assert_int_equal(d.status, DB_READY);
    assert_string_equal(d.unhealthy, "");
    assert_true(engine_instance_running(f->en, inst_of(f, db)));
}

/* PgBouncer: restarted when it dies, within the intensity, then with a backoff; the
 * databases never change state because of it. */
/* Syncs asked together are one sync: a burst of asks from many ops, each waiting for the
 * pooled endpoint, applies PgBouncer's files a couple of times, not once per op. */
static void test_pooler_syncs_coalesce(void **state)
{
    fixture *f = *state;
    ops *o = f->o;
    pthread_create(&o->pooler_thr, NULL, ops__pooler_main, o);
    o->pooler_started = true;
    int before = fake_pooler_applies(f->en);
    enum { N = 20 };
    ops_run runs[N];
    store_op op = {0};
    for (int i = 0; i < N; i++) {
        runs[i] = (ops_run){.o = o, .op = &op};
        ops__pooler_ask(&runs[i]);
    }
    pf_err e;
    for (int i = 0; i < N; i++)
        assert_int_equal(ops__pooler_wait(&runs[i], &e), 0);
    int applies = fake_pooler_applies(f->en) - before;
    assert_true(applies >= 1 && applies <= 2);
    /* an ask after those is a sync of its own (it may see newer rows) */
    ops_run late = {.o = o, .op = &op};
    assert_int_equal(ops__pooler_wait(&late, &e), 0);
    assert_int_equal(fake_pooler_applies(f->en) - before, applies + 1);
    pthread_mutex_lock(&o->mu);
    o->stopping = true;
    pthread_cond_broadcast(&o->pooler_cv);
    pthread_mutex_unlock(&o->mu);
    pthread_join(o->pooler_thr, NULL);
    o->pooler_started = false;
    o->stopping = false;
}

static void test_pooler_supervise(void **state)
{
    fixture *f = *state;
    char db[PF_ID_MAX], conn[PF_ID_MAX];
    mk_ready(f, db, conn);
    assert_true(engine_pooler_running(f->en));
    int calls = fake_calls(f->en, FAKE_POOLER_ENSURE);
    ops__pooler_supervise(f->o, false); /* running: nothing to do */
    assert_int_equal(fake_calls(f->en, FAKE_POOLER_ENSURE), calls);
    fake_pooler_kill(f->en);
    ops__pooler_supervise(f->o, false);
    assert_true(engine_pooler_running(f->en));
    fake_pooler_kill(f->en);
    fake_fail(f->en, FAKE_POOLER_ENSURE, ERR_TRANSIENT, -1);
    for (int i = 0; i < 10; i++) {
        t_now += 1000;
        ops__pooler_supervise(f->o, false);
    }
    /* 5 restarts in the period (the one that worked, 4 that failed), then the backoff */
    assert_int_equal(fake_calls(f->en, FAKE_POOLER_ENSURE), calls + OPS_RESTART_INTENSITY);
    ops_stats os = {0};
    ops_stats_get(f->o, &os);
    assert_int_equal(os.pooler, 0);
    assert_int_equal(get_db(f, db).status, DB_READY);
    assert_string_equal(get_db(f, db).unhealthy, "");
    fake_fail(f->en, FAKE_POOLER_ENSURE, ERR_NONE, 0);
    t_now += OPS_BACKOFF_MIN_MS;
    ops__pooler_supervise(f->o, false);
    assert_true(engine_pooler_running(f->en));
    ops_stats_get(f->o, &os);
    assert_int_equal(os.pooler, 1);
}

/* ops_watch: each watch fires once: when its op ends, at its deadline, or when ops stops. */
static int watch_seen[3] = {-1, -1, -1};
static void watch_cb(void *arg, ops_watch_result r)
{
    __atomic_store_n(&watch_seen[(intptr_t)arg], (int)r, __ATOMIC_SEQ_CST);
}

static int watch_wait(int i, int ms)
{
    for (int64_t until = util_now_ms() + ms; util_now_ms() < until; usleep(5000)) {
        int v = __atomic_load_n(&watch_seen[i], __ATOMIC_SEQ_CST);
        if (v >= 0)
            return v;
    }
    return -1;
}

static void test_watch(void **state)
{
    fixture *f = *state;
    char db[PF_ID_MAX], conn[PF_ID_MAX], op[PF_ID_MAX], other[PF_ID_MAX];
    mk_ready(f, db, conn);
    queue(f, OP_CONN_SYNC, db, conn, NULL, op);
    queue(f, OP_CONN_SYNC, db, conn, NULL, other);
    pf_err e;
    assert_int_equal(ops_watch(f->o, op, 10000, watch_cb, (void *)0, &e), 0);
    assert_int_equal(ops_watch(f->o, other, 100, watch_cb, (void *)1, &e), 0);
    assert_int_equal(watch_wait(1, 3000), OPS_WATCH_TIMEOUT); /* no worker ran it */
    assert_int_equal(watch_seen[0], -1);
    assert_int_equal(ops__work_one(f->o, OPS_LANE_FAST), 1);
    assert_int_equal(watch_wait(0, 3000), OPS_WATCH_ENDED);
    assert_int_equal(get_op(f, op).state, OPS_DONE);
    /* an op that ended before the watch: fires at once */
    watch_seen[0] = -1;
    assert_int_equal(ops_watch(f->o, op, 10000, watch_cb, (void *)0, &e), 0);
    assert_int_equal(watch_wait(0, 3000), OPS_WATCH_ENDED);
    /* still waiting when ops stops */
    assert_int_equal(ops_watch(f->o, other, 60000, watch_cb, (void *)2, &e), 0);
    ops__watch_stop(f->o);
    assert_int_equal(watch_seen[2], OPS_WATCH_STOPPED);
}

int main(void)
{
    log_set_level((log_level)(LOG_ERROR + 1));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_and_lanes),
        cmocka_unit_test_setup_teardown(test_provision_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_provision_give_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_only_retryable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_run_and_give_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_sync_and_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_server_stopped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_sync_give_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup_run_and_give_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup_resume_after_finish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_run_and_give_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clone_run_and_give_up, setup, teardown),
        cmocka_unit_test(test_resume_provision),
        cmocka_unit_test(test_resume_restore),
        cmocka_unit_test(test_restore_resume_after_ready),
        cmocka_unit_test(test_restore_behind_provision),
        cmocka_unit_test(test_resume_delete),
        cmocka_unit_test_setup_teardown(test_lanes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_passes_and_cancels_backups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full_retried_past_attempts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_intensity, setup, teardown),
        cmocka_unit_test(test_restart_backoff_caps),
        cmocka_unit_test_setup_teardown(test_ready_restart_never_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pooler_supervise, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pooler_syncs_coalesce, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch, setup, teardown),
    };
    return HARNESS_RUN("ops", tests, NULL, NULL);
}
