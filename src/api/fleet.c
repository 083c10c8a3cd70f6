/* GET /v1/fleet (extension): the operator's read-only view of every workspace, for the web
 * console's fleet screen and scripts. Only an operator token (`pgfleet token create
 * --operator`) reads it; api_auth keeps that token away from every other route and from
 * every write (docs/console.md). One read transaction: counts, databases, ops in flight and
 * failures agree with each other. */
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "auth/auth.h"

#define FLEET_DBS_MAX 500
#define FLEET_OPS_MAX 100
#define FLEET_FAILED_MAX 50

static int count_cmp(const void *x, const void *y)
{
    return strcmp(((const ops_dp_count *)x)->id, ((const ops_dp_count *)y)->id);
}

bool api_fleet_path(const char *path)
{
    return strncmp(path, "/v1/fleet", 9) == 0 && (path[9] == '\0' || path[9] == '/');
}

static json_t *op_json(const store_op *o)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:s}", "id", o->id, "kind",
                          store_op_kind_name(o->kind), "state", store_op_state_name(o->state),
                          "databaseId", o->database_id, "attempts", o->attempts, "createdAt",
                          o->created_at, "updatedAt", o->updated_at);
    json_object_set_new(j, "error", o->error[0] ? json_string(o->error) : json_null());
    return j;
}

static json_t *failure(const char *what, const char *db_id, const char *ws, const char *name,
                       const char *reason, const char *at)
{
    json_t *j = json_pack("{s:s, s:s, s:s}", "kind", what, "databaseId", db_id, "reason", reason);
    json_object_set_new(j, "workspaceId", ws && *ws ? json_string(ws) : json_null());
    json_object_set_new(j, "databaseName", name && *name ? json_string(name) : json_null());
    json_object_set_new(j, "at", at && *at ? json_string(at) : json_null());
    return j;
}

static const store_database *find_db(const store_database *dbs, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(dbs[i].id, id) == 0)
            return &dbs[i];
    return NULL;
}

static int fleet_read(app *a, json_t *data, pf_err *e)
{
    store_stats ss;
    store_database *dbs = NULL;
    store_last_backup *lb = NULL;
    store_op *active = NULL, *failed = NULL;
    size_t ndb = 0, nlb = 0, nact = 0, nfail = 0;
    bool more_act = false, more_fail = false;
    ops_dp_stats ds = {0};
    int rc = -1;
    if (store_stats_get(a->st, &ss, e) != 0 || store_database_list_internal(a->st, &dbs, &ndb, e) ||
        store_stats_last_backups(a->st, &lb, &nlb, e) != 0 ||
        store_op_list_fleet(a->st, false, FLEET_OPS_MAX, &active, &nact, &more_act, e) != 0 ||
        store_op_list_fleet(a->st, true, FLEET_FAILED_MAX, &failed, &nfail, &more_fail, e) != 0)
        goto out;

    json_t *by = json_object();
    int64_t total = 0;
    for (int i = 0; i < STORE_DB_STATUS_COUNT; i++) {
        json_object_set_new(by, store_db_status_name((store_db_status)i),
                            json_integer(ss.databases[i]));
        total += ss.databases[i];
    }
    json_object_set_new(data, "databases",
                        json_pack("{s:I, s:o}", "total", (json_int_t)total, "byStatus", by));

    int64_t pending = 0, running = 0;
    for (int k = 0; k < OP__COUNT; k++) {
        pending += ss.ops[k][0];
        running += ss.ops[k][1];
    }
    json_object_set_new(
        data, "ops",
        json_pack("{s:I, s:I}", "pending", (json_int_t)pending, "running", (json_int_t)running));
    /* awake and asleep from the data path's table (read without waking anything) */
    if (a->ops) {
        ops_stats os;
        ops_stats_get(a->ops, &os);
        ops_datapath_stats(a->ops, &ds);
        json_t *sv =
            json_pack("{s:I, s:I, s:I, s:s}", "running", (json_int_t)os.servers_up, "stopped",
                      (json_int_t)os.servers_down, "unhealthy", (json_int_t)os.unhealthy, "pooler",
                      os.pooler < 0 ? "off"
                      : os.pooler   ? "up"
                                    : "down");
        if (ds.enabled) {
            /* by id, for the lookup of each database below */
            if (ds.n > 1)
                qsort(ds.dbs, ds.n, sizeof *ds.dbs, count_cmp);
            json_object_set_new(sv, "awake", json_integer((json_int_t)ds.awake));
            json_object_set_new(sv, "asleep", json_integer((json_int_t)ds.asleep));
        }
        json_object_set_new(data, "servers", sv);
    }

    json_t *list = json_array(), *failures = json_array();
    for (size_t i = 0; i < ndb; i++) {
        const store_database *d = &dbs[i];
        const char *last = "";
        for (size_t j = 0; j < nlb; j++)
            if (strcmp(lb[j].database_id, d->id) == 0)
                last = lb[j].stopped_at;
        if (i < FLEET_DBS_MAX) {
            json_t *r = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s}", "id", d->id, "name",
                                  d->name, "workspaceId", d->workspace_id, "projectId",
                                  d->project_id, "status", store_db_status_name(d->status),
                                  "region", d->region, "port", d->port, "createdAt", d->created_at);
            json_object_set_new(r, "statusReason",
                                d->status_reason[0] ? json_string(d->status_reason) : json_null());
            json_object_set_new(r, "unhealthy",
                                d->unhealthy[0] ? json_string(d->unhealthy) : json_null());
            json_object_set_new(r, "lastBackupAt", last[0] ? json_string(last) : json_null());
            ops_dp_count key;
            snprintf(key.id, sizeof key.id, "%s", d->id);
            const ops_dp_count *c =
                ds.enabled && ds.n ? bsearch(&key, ds.dbs, ds.n, sizeof *ds.dbs, count_cmp) : NULL;
            if (c)
                json_object_set_new(r, "awake", json_boolean(!c->asleep));
            json_array_append_new(list, r);
        }
        if (d->status == DB_FAILURE)
            json_array_append_new(
                failures, failure("database", d->id, d->workspace_id, d->name,
                                  d->status_reason[0] ? d->status_reason : "failure", NULL));
        if (d->unhealthy[0])
            json_array_append_new(failures, failure("unhealthy", d->id, d->workspace_id, d->name,
                                                    d->unhealthy, NULL));
    }
    for (size_t i = 0; i < nfail; i++) {
        const store_database *d = find_db(dbs, ndb, failed[i].database_id);
        json_t *f =
            failure("op", failed[i].database_id, d ? d->workspace_id : NULL, d ? d->name : NULL,
                    failed[i].error[0] ? failed[i].error : "failed", failed[i].updated_at);
        json_object_set_new(f, "op", op_json(&failed[i]));
        json_array_append_new(failures, f);
    }
    json_t *inflight = json_array();
    for (size_t i = 0; i < nact; i++) {
        json_t *o = op_json(&active[i]);
        const store_database *d = find_db(dbs, ndb, active[i].database_id);
        json_object_set_new(o, "workspaceId", d ? json_string(d->workspace_id) : json_null());
        json_array_append_new(inflight, o);
    }
    json_object_set_new(data, "list", list);
    json_object_set_new(data, "listTruncated", json_boolean(ndb > FLEET_DBS_MAX));
    json_object_set_new(data, "inFlight", inflight);
    json_object_set_new(data, "inFlightTruncated", json_boolean(more_act));
    json_object_set_new(data, "failures", failures);
    rc = 0;
out:
    free(ds.dbs);
    free(dbs);
    free(lb);
    free(active);
    free(failed);
    return rc;
}

HANDLER(h_fleet)
{
    app *a = ctx;
    if (!auth_scope_has(req->scope, AUTH_SCOPE_FLEET))
        return err_set(e, 403, "Forbidden", "operator",
                       "The fleet view needs an operator token, made on the host with "
                       "`pgfleet token create --operator`");
    json_t *data = json_object();
    char now[STORE_TS_MAX];
    util_now_iso(now);
    json_object_set_new(data, "generatedAt", json_string(now));
    if (store_tx_begin_read(a->st, e) != 0) {
        json_decref(data);
        return -1;
    }
    int rc = fleet_read(a, data, e);
    resp->body = json_pack("{s:o}", "data", data);
    return read_end(a, rc, resp, e);
}
