/* ops: executes the durable operation queue (store_op) with worker threads, and runs the
 * reconciler that keeps what runs in line with the catalog:
 *  - at start: running ops go back to pending; every database that should run gets a
 *    provision op (which adopts a server that still runs, or starts it); instance
 *    directories with no catalog row are removed;
 *  - every few seconds: a ready database whose server died gets a provision op.
 * A third thread keeps `spares` ready copies of the golden directory, refilled after each
 * provision, so a new database is a rename instead of a copy of ~370 files.
 * Each op kind is idempotent, so an op interrupted by a crash simply runs again. */
#ifndef PF_OPS_OPS_H
#define PF_OPS_OPS_H

#include "engine/engine.h"
#include "store/store.h"
#include "util/err.h"

typedef struct ops ops;

typedef struct ops_config {
    int workers;          /* worker threads (default 2) */
    int port_lo, port_hi; /* instance port range */
    int start_timeout_ms; /* how long a server may take to accept connections */
    int max_attempts;     /* an op that failed this many times ends failed */
    int reconcile_ms;     /* reconcile period */
    int spares;           /* ready copies of the golden kept for fast creates (0: none) */
} ops_config;

/* Runs the startup reconcile, then starts the workers and the reconcile thread. */
int ops_start(store *st, engine *en, const ops_config *cfg, ops **out, pf_err *e);

/* Wakes the workers: call after committing a new op. */
void ops_notify(ops *o);

/* Waits until op_id is done or failed, or timeout_ms passes. Returns 0 with *out filled
 * when it ended (check out->state), -1 on timeout or error. */
int ops_wait(ops *o, const char *op_id, int timeout_ms, store_op *out, pf_err *e);

/* Stops the threads (the op in progress finishes first). Does not stop instances. */
void ops_stop(ops *o);

/* Fills a new pending op (fresh id, timestamps) for the caller to insert in its own
 * transaction with store_op_insert. conn_id may be NULL. */
void ops_op_init(store_op *op, store_op_kind kind, const char *db_id, const char *conn_id);

#endif
