/* ops: executes the durable operation queue (store_op) with worker threads, and runs the
 * reconciler that keeps what runs in line with the catalog:
 *  - at start: running ops go back to pending; every database that should run gets a
 *    provision op (which adopts a server that still runs, or starts it); instance
 *    directories with no catalog row are removed;
 *  - every few seconds: a ready database whose server died gets a provision op, within a
 *    restart intensity (5 restarts in 300 s): past it, the database is reported unhealthy
 *    and restarted with a growing backoff until a start succeeds. PgBouncer likewise.
 *  - backups: a full backup when a database becomes ready or is restored, then one every
 *    backup_interval_s when it had writes (ops_scheduled_type: full, differential or
 *    incremental), each followed by pgBackRest's expire.
 * Op kinds run in lanes: backup, restore and clone on their own workers (the slow lane), so
 * a long restore never delays creates and credential changes of other databases.
 * A failed attempt whose error is retryable (err_retryable) runs again after a backoff, up
 * to max_attempts; any other error gives up at once.
 * A third thread keeps `spares` ready copies of the golden directory, refilled after each
 * provision, so a new database is a rename instead of a copy of ~370 files.
 * A fourth samples every ready database's transaction counter and size each
 * usage_interval_s into the catalog's daily usage (GET /v1/databases/{id}/usage).
 * Each op kind is idempotent, so an op interrupted by a crash simply runs again. */
#ifndef PF_OPS_OPS_H
#define PF_OPS_OPS_H

#include "store/store.h"
#include "util/err.h"

/* The engine the workers drive (engine/engine.h); ops' callers need not see it. */
typedef struct engine engine;

typedef struct ops ops;

typedef struct ops_config {
    int workers;          /* worker threads (default 2) */
    int port_lo, port_hi; /* instance port range */
    int start_timeout_ms; /* how long a server may take to accept connections */
    int max_attempts;     /* an op that failed this many times ends failed */
    int retry_base_ms;    /* the wait after a first failed attempt, doubling (default 500) */
    int reconcile_ms;     /* reconcile period */
    int spares;           /* started servers kept for fast creates (0: none) */
    /* the most direct client connections of one server (engine_direct_cap of the
     * connection budget): what the data path lets through to a server */
    int direct_cap;
    /* backups */
    int backup_workers;         /* threads for backup, restore and clone ops (default 2) */
    int backup_interval_s;      /* scheduled backups; <= 0: never */
    int backup_full_interval_s; /* a scheduled backup is full when the last full is older, */
    int backup_diff_interval_s; /* else differential when the last full or diff is older,
                                 * else incremental (<= 0: never incremental) */
    int usage_interval_s;       /* usage samples of every ready database (<= 0: none) */
    /* the data path (datapath.c, sleep.c); NULL datapath_exe: none (servers keep their own
     * listener, nothing sleeps) */
    const char *datapath_exe; /* this program, run as `datapath --home HOME` */
    const char *home;
    int suspend_after_s;          /* idle seconds before a database sleeps (<= 0: never) */
    const char *remote_test_addr; /* tests: an IPv4 loopback address the data path takes
                                   * for a remote client's */
} ops_config;

/* Holds db_id's public port from now to its delete (a listening socket, handed to the data
 * path). Idempotent. ERR_TRANSIENT "PortBusy" when another process has it. No-op without a
 * data path. */
int ops_port_hold(ops *o, const char *db_id, int port, pf_err *e);
/* Closes db_id's port (the data path drops it): the database is deleted, or its create was
 * rolled back. No-op when it holds none. */
void ops_port_release(ops *o, const char *db_id);

/* The data path loads the endpoint certificate and key again (after they changed: SIGHUP). */
void ops_datapath_reload(ops *o);

/* Sleep and wake figures (metrics). dbs: one per held port; the caller frees it. */
#define OPS_WAKE_BUCKETS 9
extern const int ops_wake_buckets_ms[OPS_WAKE_BUCKETS]; /* upper bounds; then +Inf */
typedef struct ops_dp_count {
    char id[PF_ID_MAX];
    int direct, pooled; /* client connections, PgBouncer's server connections */
    bool asleep;
} ops_dp_count;
typedef struct ops_dp_stats {
    bool enabled;
    uint64_t wakes, wake_failures, sleeps, wake_ms_sum;
    uint64_t wake_hist[OPS_WAKE_BUCKETS + 1];
    int64_t awake, asleep;
    ops_dp_count *dbs;
    size_t n;
} ops_dp_stats;
void ops_datapath_stats(ops *o, ops_dp_stats *out);

/* The type of a scheduled backup, given the start (unix seconds, -1: none) of the last
 * completed full backup and of the last completed full or differential one: full when the
 * full is older than backup_full_interval_s, else differential when that one is older than
 * backup_diff_interval_s, else incremental. */
store_backup_type ops_scheduled_type(const ops_config *cfg, int64_t now_s, int64_t last_full_s,
                                     int64_t last_diff_s);

/* Runs the startup reconcile, then starts the workers and the reconcile thread. */
int ops_start(store *st, engine *en, const ops_config *cfg, ops **out, pf_err *e);

/* Wakes the workers: call after committing a new op. */
void ops_notify(ops *o);

/* Calls cb(arg, result) exactly once, from another thread, without holding a thread
 * meanwhile: when op_id is done or failed (OPS_WATCH_ENDED: read the op to know which), when
 * timeout_ms passed first (OPS_WATCH_TIMEOUT) or when ops stops (OPS_WATCH_STOPPED). cb must
 * be quick (hand the work to another thread). 0, or -1 with e (stopping; cb is not called). */
typedef enum { OPS_WATCH_ENDED = 0, OPS_WATCH_TIMEOUT, OPS_WATCH_STOPPED } ops_watch_result;
typedef void (*ops_watch_cb)(void *arg, ops_watch_result r);
int ops_watch(ops *o, const char *op_id, int timeout_ms, ops_watch_cb cb, void *arg, pf_err *e);

/* What the workers did since start: attempts that ended done, failed for good, or failed
 * and were queued again, and the time they took, by op kind; and what runs now. */
enum { OPS_STAT_DONE = 0, OPS_STAT_FAILED, OPS_STAT_RETRIED, OPS_STAT__COUNT };
typedef struct ops_stats {
    uint64_t ended[OP__COUNT][OPS_STAT__COUNT];
    uint64_t ms_sum[OP__COUNT];            /* every attempt's duration */
    int64_t usage_pass_ms, usage_pass_dbs; /* the last pass of the usage sampler (0: none) */
    /* at the call: ready databases whose server runs or not; the pooler (-1: off) */
    int64_t servers_up, servers_down;
    int64_t unhealthy; /* databases reported unhealthy (restarted with a backoff) */
    int pooler;
    uint64_t pooler_reloads; /* RELOADs PgBouncer was sent since start */
    int spares_ready;        /* started spares waiting for a database */
    uint64_t spares_taken;   /* creates that took a spare since start */
} ops_stats;
void ops_stats_get(ops *o, ops_stats *out);
/* The mean duration of an attempt of kind since start (0: none yet); cheap (no catalog read). */
int64_t ops_mean_attempt_ms(ops *o, store_op_kind kind);

/* The start of a stop: no op is claimed any more, background loops end after their step in
 * progress, and running backups are interrupted (their ops run again after the restart).
 * Returns at once; serve calls it on SIGTERM, before the HTTP listeners drain. */
void ops_interrupt(ops *o);

/* Stops the threads (ops_interrupt, then the op in progress of each worker finishes). Does
 * not stop instances. Returns the pid of the data path it was attached to at the end (0:
 * none), which serve's shutdown stops: the one started last, even during the stop. */
int ops_stop(ops *o);

/* Fills a new pending op (fresh id, timestamps) for the caller to insert in its own
 * transaction with store_op_insert. conn_id may be NULL. */
void ops_op_init(store_op *op, store_op_kind kind, const char *db_id, const char *conn_id);

/* Fills a queued backup (row `running`) and the op that takes it, for the caller to insert
 * in its own transaction (store_backup_insert, store_op_insert). */
void ops_backup_init(store_backup *b, store_op *op, const char *db_id, store_backup_type type);

#endif
