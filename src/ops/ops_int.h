/* ops internals, shared by the files of src/ops and by tests/unit/test_ops.c:
 *  base.c       below the others: op rows for callers (ops_op_init, ops_backup_init),
 *               the clock, timed waits, the retry backoff, notify;
 *  ops.c        on top: threads (workers by lane, reconciler, samplers), start/stop,
 *               stats, and one attempt of an op (ops__work_one);
 *  kinds.c      the table of op kinds (lane, run, give-up) and the database and
 *               credential kinds;
 *  backups.c    the backup, restore and clone kinds;
 *  reconcile.c  the startup and periodic reconcile, orphans, the backup schedule, pruning;
 *  expiry.c     below reconcile.c: the reaper of expired projects;
 *  supervise.c  the restart intensity of supervised processes (servers, PgBouncer);
 *  pooler.c     the pooled endpoint: sync from the catalog and supervision of PgBouncer;
 *  samplers.c   the usage sampler and the spares refill.
 * Internal names start with ops__. */
#ifndef PF_OPS_OPS_INT_H
#define PF_OPS_OPS_INT_H

#include <pthread.h>
#include <time.h>

#include "engine/engine.h"
#include "ops/ops.h"

/* ---- restart intensity (supervise.c), as pg_autoctl's supervisor: at most
 * OPS_RESTART_INTENSITY restarts in OPS_RESTART_PERIOD_MS; past it, a restart waits a
 * backoff that starts at OPS_BACKOFF_MIN_MS and doubles up to OPS_BACKOFF_MAX_MS, until the
 * process has run a whole period ---- */
#define OPS_RESTART_INTENSITY 5
#define OPS_RESTART_PERIOD_MS (300 * 1000)
#define OPS_BACKOFF_MIN_MS (10 * 1000)
#define OPS_BACKOFF_MAX_MS (300 * 1000)

typedef struct ops_restarts {
    char id[PF_ID_MAX];                /* a database id, or "pooler" */
    int64_t at[OPS_RESTART_INTENSITY]; /* the last restarts (monotonic ms), a ring */
    int next;                          /* where the next restart goes in at[] */
    int64_t backoff_ms;                /* 0: within the intensity */
    int64_t not_before_ms;             /* while backing off: no restart before this */
    int64_t reported_ms;               /* the not_before_ms last reported */
} ops_restarts;

/* May the process restart now? Yes: the restart is counted. No: *wait_ms gets how long
 * until it may (the first refusal past the intensity starts the backoff). */
bool ops__restart_allowed(ops_restarts *r, int64_t now_ms, int64_t *wait_ms);
/* Restarts counted in the period before now_ms. */
int ops__restarts_recent(const ops_restarts *r, int64_t now_ms);
/* True when the last restart is a whole period old. */
bool ops__restarts_settled(const ops_restarts *r, int64_t now_ms);
/* The process id is seen running: once it has run a whole period since its last restart,
 * its record is forgotten (the intensity and backoff start afresh). */
void ops__running(ops *o, const char *id);
/* The record of id in o's table (made on first use). Reconciler thread only. */
ops_restarts *ops__restarts_of(ops *o, const char *id);
void ops__restarts_forget(ops *o, const char *id);

/* ---- the op kinds (kinds.c) ---- */
typedef enum { OPS_LANE_FAST = 0, OPS_LANE_SLOW, OPS_LANE__COUNT } ops_lane_id;

/* One attempt of an op. */
typedef struct ops_run {
    ops *o;
    const store_op *op;
    uint64_t pooler_gen; /* the pooled sync asked for what this op changed (0: none yet) */
} ops_run;

enum {
    OPS_KIND_PASSES = 1u << 0,      /* does not wait for the PASSABLE ops of its database */
    OPS_KIND_PASSABLE = 1u << 1,    /* ... which may be passed */
    OPS_KIND_POOLED = 1u << 2,      /* changes what the pooled endpoint serves: a sync is asked */
    OPS_KIND_POOLED_WAIT = 1u << 3, /* ... and the op ends once that sync is in force */
    OPS_KIND_STOPPABLE = 1u << 4,   /* a stop of serve interrupts it; it runs again after */
};

typedef struct ops_kind {
    store_op_kind kind; /* its name: store_op_kind_name */
    ops_lane_id lane;
    unsigned flags;
    int (*run)(ops_run *r, pf_err *e);
    /* the op ran out of attempts (or failed for good): what it leaves behind; NULL: nothing
     * beyond the op's own failed state */
    void (*give_up)(ops_run *r, const pf_err *why);
} ops_kind;

/* The row of k, NULL when unknown. */
const ops_kind *ops__kind(store_op_kind k);
/* The lane's claim filter, built from the table once. */
const store_op_lane *ops__lane(ops_lane_id lane);

/* The instance id of db for every engine call: the attached instance, or the database's
 * own id while none is attached (nothing of it exists on disk then). */
static inline const char *ops__inst(const store_database *db)
{
    return db->instance_id[0] ? db->instance_id : db->id;
}
/* The instance id of database db_id into out (the catalog's mapping; the id itself when the
 * row is gone or has none): for the engine calls of code that holds only a database id. */
const char *ops__inst_of(ops *o, const char *db_id, char out[PF_ID_MAX]);
/* Gives db an instance if it has none yet: a started spare (use_spare, when one is
 * ready) or a fresh id, recorded in the catalog and in db->instance_id. The one place a
 * database is attached to its instance (the data path's routing hooks in here). */
int ops__attach_instance(ops *o, store_database *db, bool use_spare, pf_err *e);
/* Reads the op's database into db: 1 when the op has work on it, 0 when it has none (the
 * database is gone, being deleted or in failure), -1 on an error. */
int ops__op_database(ops_run *r, store_database *db, pf_err *e);
/* Queues a new op of kind for db_id. */
int ops__enqueue(ops *o, store_op_kind kind, const char *db_id, pf_err *e);
/* The database is ready (from provisioning or recovering); with first_backup, its first
 * full backup is queued in the same transaction. Syncs the pooled endpoint first. */
int ops__set_ready(ops_run *r, const store_database *db, bool first_backup, pf_err *e);
/* The server of db started: a database reported unhealthy is healthy again. */
void ops__server_started(ops *o, const store_database *db);

/* backups.c */
int ops__run_backup(ops_run *r, pf_err *e);
int ops__run_restore(ops_run *r, pf_err *e);
int ops__run_clone(ops_run *r, pf_err *e);
void ops__give_up_backup(ops_run *r, const pf_err *why);
void ops__give_up_restore(ops_run *r, const pf_err *why);
void ops__give_up_clone(ops_run *r, const pf_err *why);
store_backup_type ops__backup_type(engine_backup_type t);

/* ---- one attempt (ops.c): claims an op of the lane and runs it to its outcome (done,
 * failed, or queued again with a backoff). 1: an op ran; 0: none was ready; -1: error. ---- */
int ops__work_one(ops *o, ops_lane_id lane);
/* How long a failed attempt waits before the next one (retry_base_ms doubling, at most
 * OPS_RETRY_MAX_MS; base.c). */
#define OPS_RETRY_MAX_MS (30 * 1000)
int64_t ops__retry_backoff_ms(const ops_config *cfg, int attempts);

/* ---- expiry.c: deletes the projects whose expiry passed (each pass of the reconciler) ---- */
void ops__reap_expired(ops *o);

/* ---- reconcile.c ---- */
void ops__reconcile(ops *o, bool startup);
void ops__schedule_backups(ops *o);
void ops__prune(ops *o);
void *ops__reconciler_main(void *arg);

/* ---- pooler.c ---- */
/* Rewrites PgBouncer's files from the catalog and reloads it (no-op when nothing changed). */
int ops__pooler_sync(ops *o, pf_err *e);
/* Asks the pooler thread for a sync that covers every catalog change made before this call
 * (once per op: r->pooler_gen); never waits. Syncs asked close together are one sync (one
 * RELOAD): a sync starts at once when the last one is OPS_POOLER_GAP_MS old, else when it
 * is. */
#define OPS_POOLER_GAP_MS 300
void ops__pooler_ask(ops_run *r);
/* Waits until the sync asked by r (asked now if not yet) is in force: 0, or -1 with its
 * error (the sync failed; ERR_TRANSIENT when ops stops first). */
int ops__pooler_wait(ops_run *r, pf_err *e);
void *ops__pooler_main(void *arg);
/* Starts or adopts PgBouncer at startup; later, restarts it if it died, within the
 * restart intensity. */
void ops__pooler_supervise(ops *o, bool startup);

/* ---- samplers.c ---- */
void ops__sample_usage(ops *o, const store_database *db, bool baseline);
void *ops__usage_main(void *arg);
void *ops__spares_main(void *arg);

/* ---- datapath.c, sleep.c: the data path, sleep and wake ---- */
typedef struct ops_dp_db {
    char id[PF_ID_MAX];
    char inst[PF_ID_MAX]; /* its instance (read from the catalog when the port is held) */
    int port, fd;         /* the public listening socket (a copy is the data path's) */
    bool asleep;          /* the engine's mark, as last seen */
    bool busy;            /* a sleep or a wake runs */
    bool waking;          /* a wake thread is queued or runs */
    int sleep_answer;     /* the data path's answer to SLEEP: 0 none yet, 1 ok, 2 busy */
    int pins;             /* ops of other databases that need it awake (a clone's source) */
    int direct, pooled, held;
    int64_t idle_ms;
    uint64_t stat_gen; /* the STATS round it was counted in (+1) */
} ops_dp_db;
typedef struct ops_dp {
    pthread_mutex_t mu;      /* guards all but sock */
    pthread_mutex_t send_mu; /* guards sock */
    pthread_cond_t cv;
    int sock;
    pid_t pid;
    bool child, stopping, reader_started, sleeper_started;
    char *ctl_path;
    ops_dp_db *dbs;
    size_t n, cap;
    pthread_t reader, sleeper;
    uint64_t stats_gen;
    int wake_threads;
    uint64_t wakes, wake_failures, sleeps, wake_ms_sum, wake_hist[OPS_WAKE_BUCKETS + 1];
} ops_dp;
/* Starts or adopts the data path and hands it every database's port; then the sleeper. */
int ops__dp_start(ops *o, pf_err *e);
/* Leaves the data path running (serve stops; a kill -9 leaves it too); frees o->dp. */
int ops__dp_detach(ops *o); /* the pid of the data path it was attached to, or 0 */
ops_dp_db *ops__dp_find(ops_dp *d, const char *id);
int ops__dp_send(ops_dp *d, const char *text, int fd);
int ops__sleep_start(ops *o, pf_err *e);
void ops__sleep_stop(ops *o);
/* Starts db_id's server if it sleeps (waiting for a sleep of it in progress); the data
 * path is told (AWAKE / WAKEFAIL). 0 when it runs or never slept. */
int ops__wake(ops *o, const char *db_id, pf_err *e);
void ops__wake_async(ops *o, const char *db_id);
/* For ops that need the server (credentials, backups, clone sources). */
int ops__ensure_awake(ops *o, const char *db_id, pf_err *e);
/* Keeps db_id as it is until ops__unhold: true when it sleeps (after a sleep of it in
 * progress ends), and no wake starts its server meanwhile (the data path holds the clients
 * that come); false when it is awake, and it does not go to sleep meanwhile. */
bool ops__hold(ops *o, const char *db_id);
void ops__unhold(ops *o, const char *db_id, bool asleep);
/* Keeps db_id awake while an op of another database uses it (pin before the wake). */
void ops__pin(ops *o, const char *db_id, int delta);

/* ---- base.c: below every other file of src/ops ---- */
/* Waits ms (cv wakes it only to check for stopping); true when ops is stopping. */
bool ops__pause_or_stop(ops *o, pthread_cond_t *cv, int ms);
/* True once ops_stop began: a background loop checks it between steps, so a stop waits for
 * at most the step in progress. */
bool ops__stopping(ops *o);
/* The clock of restart intensity and backoffs (monotonic ms; tests may replace it). */
int64_t ops__now_ms(ops *o);
/* ts = the realtime clock ms from now, for pthread_cond_timedwait. */
void ops__deadline_in(struct timespec *ts, int ms);

/* ---- watch.c: op-end callbacks (ops_watch) ---- */
typedef struct ops_watches ops_watches;
/* A worker ended op_id (done or failed): its watches fire. */
void ops__watch_ended(ops *o, const char *op_id);
/* Stops the watch thread; the watches left fire OPS_WATCH_STOPPED. After the workers. */
void ops__watch_stop(ops *o);

/* ---- ops.c: on top (threads, start, stop, wait) ---- */
/* An ops with defaults filled and no thread (ops_start starts them; tests drive it). */
ops *ops__new(store *st, engine *en, const ops_config *cfg);

struct ops {
    store *st;
    engine *en;
    ops_dp *dp; /* NULL: no data path */
    ops_config cfg;
    int64_t (*clock_ms)(void); /* util_now_ms unless a test sets it */
    pthread_t *workers;        /* the fast lane's */
    int nworkers;
    pthread_t *slow; /* the slow lane's: backup, restore, clone */
    int nslow;
    pthread_t reconciler;
    bool reconciler_started;
    pthread_t spares;
    bool spares_started;
    pthread_t usage; /* the usage sampler */
    bool usage_started;
    pthread_cond_t usage_cv; /* only stopping */
    bool spares_wanted;      /* a provision used a spare: refill */
    int64_t last_sched_ms;   /* last pass of the backup scheduler */
    pthread_mutex_t mu;
    pthread_cond_t wake; /* new work, or stopping */
    pthread_cond_t refill;
    bool stopping;
    ops_stats stats;           /* under mu */
    ops_watches *watches;      /* made by the first ops_watch (under mu) */
    pthread_mutex_t pooler_mu; /* one pooler sync at a time: catalog read + apply */
    bool pooler_down;          /* reported down, not yet back (reconciler thread) */
    /* the coalesced syncs (pooler.c), under mu: asked and done are generations; a sync
     * done at generation g covers every ask up to g */
    pthread_t pooler_thr;
    bool pooler_started;
    pthread_cond_t pooler_cv; /* asked, done or stopping */
    uint64_t pooler_asked, pooler_done;
    pf_err pooler_err; /* of the last sync (kind ERR_NONE when it worked) */
    /* restart intensity records (reconciler thread) */
    ops_restarts *restarts;
    size_t nrestarts, caprestarts;
};

#endif
