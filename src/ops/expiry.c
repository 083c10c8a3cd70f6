/* The expiry reaper: a project whose expiresAt has passed (POST/PATCH /v1/projects, an
 * extension) is deleted whole, as DELETE /v1/projects/{id} deletes it: each database moves
 * to deleting with its delete op (which removes its server, files and backups), then the
 * project row and its branches go, in one transaction per project. The expiry is a column,
 * so it survives restarts; a PATCH with null or a transfer clears it. Runs on the reconciler's
 * thread every pass; below reconcile.c, above base.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops_int.h"
#include "util/log.h"

#define EXPIRY_BATCH 16

/* Queues the delete of every database of p and deletes p, in the caller's transaction. */
static int reap_one(ops *o, const store_project *p, int *ndb, pf_err *e)
{
    store_db_filter f = {.project_id = p->id};
    for (;;) {
        store_page pg = {.cursor = NULL, .limit = 100};
        store_database *dbs = NULL;
        size_t n = 0;
        store_page_out po;
        if (store_database_list(o->st, p->workspace_id, &f, &pg, &dbs, &n, &po, e) != 0)
            return -1;
        int rc = 0;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            store_database cur;
            store_op op;
            rc = store_database_get_internal(o->st, dbs[i].id, &cur, e);
            if (rc == 0)
                rc = store_database_transition(o->st, cur.id, cur.status, DB_DELETING,
                                               "project expired", e);
            if (rc == 0) {
                ops_op_init(&op, OP_DB_DELETE, cur.id, NULL);
                rc = store_op_insert(o->st, &op, e);
            }
            if (rc == 0)
                (*ndb)++;
        }
        free(dbs);
        /* a database marked deleting leaves the list: the next pass starts from the top */
        if (rc != 0 || n == 0)
            return rc;
    }
}

void ops__reap_expired(ops *o)
{
    char now[STORE_TS_MAX];
    util_iso_from_ms(util_wall_ms(), now);
    store_project *ps = NULL;
    size_t n = 0;
    pf_err e;
    err_clear(&e);
    if (store_project_expired(o->st, now, &ps, &n, EXPIRY_BATCH, &e) != 0) {
        log_sub(LOG_WARN, "expiry", "cannot read expired projects: %s", e.message);
        return;
    }
    bool queued = false;
    for (size_t i = 0; i < n; i++) {
        int ndb = 0;
        if (store_tx_begin(o->st, &e) != 0)
            break;
        int rc = reap_one(o, &ps[i], &ndb, &e);
        if (rc == 0)
            rc = store_project_delete(o->st, ps[i].workspace_id, ps[i].id, &e);
        if (rc != 0) {
            store_tx_rollback(o->st);
            log_sub(LOG_ERROR, "expiry", "cannot delete expired project %s: %s", ps[i].id,
                    e.message);
            continue;
        }
        if (store_tx_commit(o->st, &e) != 0) {
            log_sub(LOG_ERROR, "expiry", "cannot delete expired project %s: %s", ps[i].id,
                    e.message);
            continue;
        }
        queued = queued || ndb > 0;
        log_sub(LOG_INFO, "expiry", "project %s expired at %s: deleted with %d database(s)",
                ps[i].id, ps[i].expires_at, ndb);
    }
    free(ps);
    if (queued)
        ops_notify(o);
}
