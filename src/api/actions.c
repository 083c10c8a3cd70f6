/* Actions shared by several handlers. All run inside the caller's transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/statvfs.h>
#include <string.h>

#include "api/internal.h"
#include "auth/auth.h"

int tx_end(app *a, int rc, pf_err *e)
{
    if (rc != 0) {
        store_tx_rollback(a->st);
        return -1;
    }
    if (store_tx_commit(a->st, e) != 0) {
        store_tx_rollback(a->st);
        return -1;
    }
    if (a->ops)
        ops_notify(a->ops);
    return 0;
}

int tx_end_create(app *a, int rc, const store_database *db, pf_err *e)
{
    if (tx_end(a, rc, e) == 0)
        return 0;
    if (a->ops && db->id[0])
        ops_port_release(a->ops, db->id);
    return -1;
}

int api_snapshot_begin(void *ctx, pf_err *e)
{
    app *a = ctx;
    return store_tx_begin_read(a->st, e);
}

int api_snapshot_end(void *ctx, int rc, pf_err *e)
{
    app *a = ctx;
    if (rc == 0 && store_tx_commit(a->st, e) == 0)
        return 0;
    store_tx_rollback(a->st);
    return -1;
}

int read_end(app *a, int rc, http_resp *resp, pf_err *e)
{
    if (api_snapshot_end(a, rc, e) == 0)
        return 0;
    json_decref(resp->body);
    resp->body = NULL;
    return -1;
}

int action_new_connection(const char *ws, const char *db_id, const char *name, store_connection *c,
                          char password[64], pf_err *e)
{
    memset(c, 0, sizeof *c);
    util_id_new("conn", c->id);
    snprintf(c->workspace_id, sizeof c->workspace_id, "%s", ws);
    snprintf(c->database_id, sizeof c->database_id, "%s", db_id);
    snprintf(c->name, sizeof c->name, "%s", name);
    char rnd[PF_ID_MAX];
    util_id_new("u", rnd);
    snprintf(c->role, sizeof c->role, "%s", rnd);
    util_secret(password, 40);
    util_now_iso(c->created_at);
    return auth_scram_verifier(c->role, password, c->verifier, e);
}

int action_resolve_branch(app *a, const char *ws, const char *project_id, const char *branch_id,
                          const char *git_name, store_branch *out, pf_err *e)
{
    if (branch_id) {
        if (v_path_id("br", branch_id, "Branch", "branchId", e) != 0)
            return -1;
        if (store_branch_get(a->st, ws, branch_id, out, e) != 0)
            return -1;
        if (strcmp(out->project_id, project_id) != 0)
            return err_set(e, 404, "NotFound", "branchId", "Branch %s was not found in project %s",
                           branch_id, project_id);
        return 0;
    }
    if (git_name) {
        pf_err le;
        if (store_branch_by_git_name(a->st, project_id, git_name, out, &le) == 0)
            return 0;
        if (le.status != 404) {
            *e = le;
            return -1;
        }
        memset(out, 0, sizeof *out);
        util_id_new("br", out->id);
        snprintf(out->project_id, sizeof out->project_id, "%s", project_id);
        snprintf(out->git_name, sizeof out->git_name, "%s", git_name);
        util_now_iso(out->created_at);
        memcpy(out->updated_at, out->created_at, sizeof out->updated_at);
        return store_branch_insert(a->st, out, e);
    }
    return store_branch_default(a->st, project_id, out, e);
}

/* A new database needs room for its server's files: below this much free space in the
 * home a create is refused at once (507 DiskFull), before any row is written. */
#define CREATE_MIN_FREE_BYTES (64ull << 20)

int action_room_check(app *a, pf_err *e)
{
    struct statvfs sv;
    if (!a->home[0] || statvfs(a->home, &sv) != 0)
        return 0;
    unsigned long long free_bytes = (unsigned long long)sv.f_bavail * sv.f_frsize;
    if (free_bytes >= CREATE_MIN_FREE_BYTES)
        return 0;
    err_set(e, 507, "DiskFull", NULL,
            "The disk of the pgfleet home is full (%llu MiB free, a new database needs %llu MiB)",
            free_bytes >> 20, CREATE_MIN_FREE_BYTES >> 20);
    if (e) {
        snprintf(e->hint, sizeof e->hint, "home %.200s: free space there, then retry", a->home);
        e->kind = ERR_TRANSIENT;
    }
    return -1;
}

int action_create_database(app *a, const char *ws, const db_create_req *r, store_database *db,
                           store_connection *conn, char password[64], pf_err *e)
{
    memset(db, 0, sizeof *db);
    if (action_room_check(a, e) != 0)
        return -1;
    store_branch br;
    if (action_resolve_branch(a, ws, r->project_id, r->branch_id, r->branch_git_name, &br, e) != 0)
        return -1;
    util_id_new("db", db->id);
    snprintf(db->workspace_id, sizeof db->workspace_id, "%s", ws);
    snprintf(db->project_id, sizeof db->project_id, "%s", r->project_id);
    snprintf(db->branch_id, sizeof db->branch_id, "%s", br.id);
    if (r->name)
        snprintf(db->name, sizeof db->name, "%s", r->name);
    else
        snprintf(db->name, sizeof db->name, "database-%.6s", db->id + 3);
    snprintf(db->logical_id, sizeof db->logical_id, "%s", r->logical_id ? r->logical_id : "");
    db->status = DB_PROVISIONING;
    db->is_default = r->is_default;
    snprintf(db->region, sizeof db->region, "%s", r->region);
    const char *st = r->source_type ? r->source_type : "empty";
    snprintf(db->source_type, sizeof db->source_type, "%s", st);
    if (r->source_db)
        snprintf(db->source_database_id, sizeof db->source_database_id, "%s", r->source_db->id);
    if (r->source_backup)
        snprintf(db->source_backup_id, sizeof db->source_backup_id, "%s", r->source_backup->id);
    util_now_iso(db->created_at);
    if (store_port_allocate(a->st, a->port_lo, a->port_hi, &db->port, e) != 0) {
        if (e && e->status == 409)
            err_set(e, 409, "Conflict", "port range",
                    "No free port is left in %d-%d for a new database", a->port_lo, a->port_hi);
        return -1;
    }
    /* the port is pgfleet's from now on (the data path holds it): the response names it */
    if (ops_port_hold(a->ops, db->id, db->port, e) != 0) {
        if (e && !e->status)
            err_set(e, 503, "PortBusy", "port", "Port %d was taken meanwhile; try again", db->port);
        return -1;
    }
    if (store_database_insert(a->st, db, e) != 0)
        return -1;
    if (action_new_connection(ws, db->id, "default", conn, password, e) != 0)
        return -1;
    if (store_connection_insert(a->st, conn, e) != 0)
        return -1;
    if (store_database_set_default_connection(a->st, db->id, conn->id, e) != 0)
        return -1;
    snprintf(db->default_connection_id, sizeof db->default_connection_id, "%s", conn->id);
    if (r->is_default && store_database_set_default(a->st, r->project_id, db->id, e) != 0)
        return -1;
    store_op op;
    if (!strcmp(st, "backup")) {
        /* the backup's data instead of the golden copy */
        ops_op_init(&op, OP_DB_RESTORE, db->id, NULL);
        snprintf(op.args, sizeof op.args,
                 "{\"sourceDatabaseId\":\"%s\",\"backupId\":\"%s\",\"label\":\"%s\","
                 "\"pointInTime\":\"%s\"}",
                 r->source_db->id, r->source_backup->id, r->source_backup->label,
                 r->point_in_time ? r->point_in_time : "");
    } else if (!strcmp(st, "database")) {
        /* a pg_basebackup of the live source, recovered here */
        ops_op_init(&op, OP_DB_CLONE, db->id, NULL);
        snprintf(op.args, sizeof op.args, "{\"sourceDatabaseId\":\"%s\"}", r->source_db->id);
    } else {
        ops_op_init(&op, OP_DB_PROVISION, db->id, NULL);
    }
    return store_op_insert(a->st, &op, e);
}

int action_delete_database(app *a, const store_database *d, char *op_id, pf_err *e)
{
    /* the status now, in the caller's transaction: d may have been read before it began */
    store_database cur;
    if (store_database_get_internal(a->st, d->id, &cur, e) != 0 ||
        store_database_transition(a->st, d->id, cur.status, DB_DELETING, "", e) != 0)
        return -1;
    store_op op;
    ops_op_init(&op, OP_DB_DELETE, d->id, NULL);
    if (op_id)
        snprintf(op_id, PF_ID_MAX, "%s", op.id);
    return store_op_insert(a->st, &op, e);
}

/* A waiting answer (http_resp_wait): armed with an ops watch; then reads the op. */
typedef struct op_wait {
    app *a;
    char op_id[PF_ID_MAX];
    http_waker *w;
} op_wait;

/* The wait ran out: an op a worker has started is waited for until it ends (its own steps
 * are bounded); one still pending means the workers are behind (overloaded: docs/operations.md),
 * and the answer is a 503. Runs on the watch thread, which holds no lock while it calls. */
static void op_wait_fired(void *arg, ops_watch_result r)
{
    op_wait *ow = arg;
    app *a = ow->a;
    store_op op;
    pf_err le;
    if (r == OPS_WATCH_TIMEOUT && store_op_get(a->st, ow->op_id, &op, &le) == 0 &&
        op.state == OPS_RUNNING &&
        ops_watch(a->ops, ow->op_id, a->op_wait_ms > 0 ? a->op_wait_ms : 20000, op_wait_fired, ow,
                  &le) == 0)
        return;
    http_wake(ow->w);
}

static int op_wait_arm(void *ctx, void *arg, http_waker *w, pf_err *e)
{
    op_wait *ow = arg;
    app *a = ctx;
    ow->w = w;
    return ops_watch(a->ops, ow->op_id, a->op_wait_ms > 0 ? a->op_wait_ms : 20000, op_wait_fired,
                     ow, e);
}

/* Seconds until the workers could reach an op that waits for one: the ops of its kind queued
 * now times the mean attempt of that kind, 1 to 300. */
static int retry_after_for(app *a, store_op_kind kind)
{
    store_stats st;
    pf_err le;
    int64_t queued = 1;
    if (store_stats_get(a->st, &st, &le) == 0 && (int)kind >= 0 && kind < OP__COUNT)
        queued = st.ops[kind][0] > 0 ? st.ops[kind][0] : 1;
    int64_t s = (queued * ops_mean_attempt_ms(a->ops, kind) + 999) / 1000;
    return s < 1 ? 1 : s > 300 ? 300 : (int)s;
}

static int op_wait_then(void *ctx, void *arg, http_resp *resp, pf_err *e)
{
    (void)resp;
    op_wait *ow = arg;
    app *a = ctx;
    store_op op;
    if (store_op_get(a->st, ow->op_id, &op, e) != 0)
        return -1;
    if (op.state == OPS_FAILED)
        return err_internal(e, "%s failed: %s", store_op_kind_name(op.kind), op.error);
    if (op.state != OPS_DONE) {
        err_set(e, 503, "Timeout", "Retry the request in a moment.",
                "The operation %s did not finish in time", ow->op_id);
        e->retry_after_s = retry_after_for(a, op.kind);
        return -1;
    }
    return 0;
}

int action_wait_op(app *a, http_resp *resp, const char *op_id, pf_err *e)
{
    (void)e;
    if (!a->ops)
        return 0;
    op_wait *ow = xcalloc(1, sizeof *ow);
    ow->a = a;
    snprintf(ow->op_id, sizeof ow->op_id, "%s", op_id);
    http_resp_wait(resp, &(struct http_wait){
                             .arm = op_wait_arm, .then = op_wait_then, .free = free, .arg = ow});
    return 0;
}
