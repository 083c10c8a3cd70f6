/* store/sql: connections, the statement cache, binds, row reads and transactions (sql.h).
 *
 * Connections: one sqlite3 handle per (thread, store), created on first use and kept in a
 * pthread key whose destructor closes it when the thread exits; the store also keeps every
 * live handle in a list so store_close can finalize and close them all. */
#include <errno.h>
#include "store/sql.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STORE_BUSY_TIMEOUT_MS 5000

typedef struct sql_conn {
    store *s;
    sqlite3 *db;
    int depth;      /* transaction nesting: 0 = autocommit, 1 = BEGIN, > 1 = savepoints */
    uint64_t plain; /* bit d: nesting level d (> 0) is a read, begun without a savepoint */
    struct sql_conn *prev, *next;
    sqlite3_stmt **st; /* by sql_stmt slot */
    size_t cap;
} sql_conn;

struct store {
    char *path;
    pthread_key_t key; /* this thread's sql_conn */
    pthread_mutex_t mu;
    sql_conn *conns; /* every open connection, guarded by mu */
};

static atomic_int next_slot; /* slots handed out to sql_stmts, process-wide */

/* ---- connections ---- */

static void conn_free(sql_conn *c)
{
    for (size_t i = 0; i < c->cap; i++)
        sqlite3_finalize(c->st[i]);
    free(c->st);
    sqlite3_close_v2(c->db);
    free(c);
}

/* pthread key destructor: the thread is exiting. */
static void conn_thread_exit(void *p)
{
    sql_conn *c = p;
    store *s = c->s;
    pthread_mutex_lock(&s->mu);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&s->mu);
    conn_free(c);
}

static sql_conn *conn_open(store *s, pf_err *e)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(
        s->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        err_internal(e, "store: cannot open %s: %s", s->path,
                     db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close_v2(db);
        return NULL;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);
    char *msg = NULL;
    /* a connection per thread, each with its own page cache: 512 KiB each (SQLite's default
     * is 2 MiB), read misses come from the kernel's cache of the file (docs/decisions.md) */
    rc = sqlite3_exec(db,
                      "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; "
                      "PRAGMA cache_size = -512;",
                      NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        err_internal(e, "store: cannot configure %s: %s", s->path, msg ? msg : "?");
        sqlite3_free(msg);
        sqlite3_close_v2(db);
        return NULL;
    }
    sql_conn *c = xcalloc(1, sizeof *c);
    c->s = s;
    c->db = db;
    return c;
}

/* The calling thread's connection, opened on first use. */
static sql_conn *conn_get(store *s, pf_err *e)
{
    sql_conn *c = pthread_getspecific(s->key);
    if (c)
        return c;
    c = conn_open(s, e);
    if (!c)
        return NULL;
    if (pthread_setspecific(s->key, c) != 0) {
        conn_free(c);
        err_internal(e, "store: pthread_setspecific failed");
        return NULL;
    }
    pthread_mutex_lock(&s->mu);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    pthread_mutex_unlock(&s->mu);
    return c;
}

int64_t store_memory_used(void)
{
    sqlite3_int64 cur = 0, hi = 0;
    return sqlite3_status64(SQLITE_STATUS_MEMORY_USED, &cur, &hi, 0) == SQLITE_OK ? cur : -1;
}

store *sql_store_new(const char *path)
{
    store *s = xcalloc(1, sizeof *s);
    s->path = xstrdup(path);
    pthread_mutex_init(&s->mu, NULL);
    if (pthread_key_create(&s->key, conn_thread_exit) != 0) {
        pthread_mutex_destroy(&s->mu);
        free(s->path);
        free(s);
        return NULL;
    }
    return s;
}

const char *sql_store_path(store *s)
{
    return s->path;
}

/* Every thread must be done with the store. Threads exiting later run no destructor: the
 * key is deleted here. */
void store_close(store *s)
{
    if (!s)
        return;
    pthread_setspecific(s->key, NULL);
    pthread_key_delete(s->key);
    pthread_mutex_lock(&s->mu);
    sql_conn *c = s->conns;
    s->conns = NULL;
    pthread_mutex_unlock(&s->mu);
    while (c) {
        sql_conn *next = c->next;
        conn_free(c);
        c = next;
    }
    pthread_mutex_destroy(&s->mu);
    free(s->path);
    free(s);
}

/* ---- statements ---- */

/* A full disk (SQLITE_FULL, or an I/O error whose cause is ENOSPC or EDQUOT) passes once
 * space is freed: a transient error whose code names the cause and whose hint names the
 * directory to free space in (the catalog's, the home). */
static int disk_full(sql_conn *c, pf_err *e)
{
    int ext = sqlite3_extended_errcode(c->db), sys = sqlite3_system_errno(c->db);
    if ((ext & 0xff) != SQLITE_FULL &&
        !((ext & 0xff) == SQLITE_IOERR && (sys == ENOSPC || sys == EDQUOT)))
        return 0;
    const char *slash = strrchr(c->s->path, '/');
    int dirlen = slash ? (int)(slash - c->s->path) : (int)strlen(c->s->path);
    err_set(e, 507, "DiskFull", NULL,
            "The disk of the pgfleet home is full: the catalog cannot be written");
    if (e) {
        snprintf(e->hint, sizeof e->hint, "home %.*s: free space there, then retry", dirlen,
                 c->s->path);
        e->kind = ERR_TRANSIENT;
    }
    return 1;
}

/* Another writer held the catalog past the busy timeout (a disk slow to sync): the request
 * may be retried, and is answered 503 with Retry-After, never 500 with SQLite's words. */
static int busy(sql_conn *c, pf_err *e)
{
    int code = sqlite3_errcode(c->db) & 0xff;
    if (code != SQLITE_BUSY && code != SQLITE_LOCKED)
        return 0;
    err_set(e, 503, "CatalogBusy", "retry after the Retry-After seconds",
            "The catalog stayed locked for more than %d ms: the server is busy",
            STORE_BUSY_TIMEOUT_MS);
    return 1;
}

/* A failure that passes by itself: a full disk or a busy catalog (e filled). */
static int passing(sql_conn *c, pf_err *e)
{
    return disk_full(c, e) || busy(c, e);
}

static int db_fail(sql_conn *c, pf_err *e, const char *what)
{
    if (passing(c, e))
        return -1;
    return err_internal(e, "store: %s: %s", what, sqlite3_errmsg(c->db));
}

static void stmt_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static int slot_of(sql_stmt *q)
{
    int slot = atomic_load(&q->slot);
    if (slot)
        return slot;
    int want = atomic_fetch_add(&next_slot, 1) + 1, expected = 0;
    return atomic_compare_exchange_strong(&q->slot, &expected, want) ? want : expected;
}

/* q prepared on this thread's connection and bound with a; NULL (e filled) on failure. */
static sqlite3_stmt *prepare(store *s, sql_stmt *q, sql_args a, sql_conn **cp, pf_err *e)
{
    sql_conn *c = conn_get(s, e);
    if (!c)
        return NULL;
    *cp = c;
    size_t slot = (size_t)slot_of(q);
    if (slot >= c->cap) {
        size_t cap = c->cap;
        util_grow((void **)&c->st, &cap, slot + 1, sizeof *c->st);
        c->cap = cap;
    }
    if (!c->st[slot] && sqlite3_prepare_v3(c->db, q->text, -1, SQLITE_PREPARE_PERSISTENT,
                                           &c->st[slot], NULL) != SQLITE_OK) {
        db_fail(c, e, "prepare");
        return NULL;
    }
    sqlite3_stmt *st = c->st[slot];
    int rc = SQLITE_OK;
    /* strings are bound SQLITE_STATIC: they outlive the step */
    for (int i = 0; i < a.n && rc == SQLITE_OK; i++) {
        const sql_arg *v = &a.v[i];
        bool null = (v->type == SQL_A_TEXT && !v->s) ||
                    (v->type == SQL_A_OPT && (!v->s || !v->s[0])) ||
                    (v->type == SQL_A_OPT_INT && v->i < 0);
        if (null)
            rc = sqlite3_bind_null(st, i + 1);
        else if (v->type == SQL_A_INT || v->type == SQL_A_OPT_INT)
            rc = sqlite3_bind_int64(st, i + 1, v->i);
        else
            rc = sqlite3_bind_text(st, i + 1, v->s, -1, SQLITE_STATIC);
    }
    if (rc != SQLITE_OK) {
        db_fail(c, e, "bind");
        stmt_done(st);
        return NULL;
    }
    return st;
}

static void read_text(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    size_t n = t ? (size_t)sqlite3_column_bytes(st, i) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, t, n);
    dst[n] = '\0';
}

int store__enum_of(const char *name, const char *const *names, int count)
{
    for (int k = 0; name && k < count; k++)
        if (strcmp(name, names[k]) == 0)
            return k;
    return 0;
}

static void read_row(sqlite3_stmt *st, const sql_row *r, void *dst)
{
    char *base = dst;
    for (int i = 0; i < r->ncols; i++) {
        const sql_col *c = &r->cols[i];
        void *p = base + c->off;
        int v;
        bool b;
        int64_t w;
        switch (c->type) {
        case SQL_C_TEXT:
            read_text(st, i, p, c->cap);
            break;
        case SQL_C_INT: /* NULL reads as 0 */
            v = sqlite3_column_int(st, i);
            memcpy(p, &v, sizeof v);
            break;
        case SQL_C_ENUM: /* CHECK constraints keep the text one of names */
            v = store__enum_of((const char *)sqlite3_column_text(st, i), c->names, c->count);
            memcpy(p, &v, sizeof v);
            break;
        case SQL_C_BOOL:
            b = sqlite3_column_int(st, i) != 0;
            memcpy(p, &b, sizeof b);
            break;
        case SQL_C_I64:
        case SQL_C_SIZE:
            w = c->type == SQL_C_SIZE && sqlite3_column_type(st, i) == SQLITE_NULL
                    ? -1
                    : sqlite3_column_int64(st, i);
            memcpy(p, &w, sizeof w);
            break;
        }
    }
}

/* Unique-constraint messages name the table and columns; map them to the API field. Longer
 * table names first: "tokens.hash" is a substring of "refresh_tokens.hash". */
static const struct {
    const char *match; /* substring of sqlite3_errmsg */
    const char *hint;
    const char *message;
} conflicts[] = {
    {"projects.workspace_id, projects.logical_id", "logicalId",
     "A project with this logicalId already exists in the workspace"},
    {"branches.project_id, branches.git_name", "gitName",
     "A branch with this gitName already exists in the project"},
    {"branches.project_id", "isDefault", "The project already has a default branch"},
    {"databases.branch_id, databases.logical_id", "logicalId",
     "A database with this logicalId already exists on the branch"},
    {"databases.port", "port", "The port is already used by another database"},
    {"refresh_tokens.hash", "refresh_token", "The refresh token already exists"},
    {"tokens.hash", "token", "A token with this value already exists"},
    {"users.email", "email", "A user with this email already exists"},
    {"oauth_clients.id", "id", "A client with this id already exists"},
    {"oauth_codes.hash", "code", "The code already exists"},
    {"oauth_grants.id", "id", "A grant with this id already exists"},
};

static int write_fail(sql_conn *c, const sql_stmt *q, int rc, pf_err *e)
{
    const char *msg = sqlite3_errmsg(c->db);
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        for (size_t i = 0; i < sizeof conflicts / sizeof conflicts[0]; i++)
            if (strstr(msg, conflicts[i].match))
                return err_set(e, 409, "Conflict", conflicts[i].hint, "%s", conflicts[i].message);
        return err_set(e, 409, "Conflict", "id", "A row with this id already exists (%s)", msg);
    }
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY && q->fk_what)
        return err_set(e, 404, "NotFound", q->fk_hint, "%s was not found", q->fk_what);
    if (passing(c, e))
        return -1;
    return err_internal(e, "store: write: %s", msg);
}

int sql_write(store *s, sql_stmt *q, sql_args a, pf_err *e)
{
    sql_conn *c = NULL;
    sqlite3_stmt *st = prepare(s, q, a, &c, e);
    if (!st)
        return -1;
    int rc = sqlite3_step(st);
    int ret = rc == SQLITE_DONE ? sqlite3_changes(c->db) : write_fail(c, q, rc, e);
    stmt_done(st);
    return ret;
}

int sql_run(store *s, sql_stmt *q, sql_args a, pf_err *e)
{
    return sql_write(s, q, a, e) < 0 ? -1 : 0;
}

static int not_found(pf_err *e, const char *hint, const char *what, const char *id)
{
    if (id)
        return err_set(e, 404, "NotFound", hint, "%s %s was not found", what, id);
    return err_set(e, 404, "NotFound", hint, "%s was not found", what);
}

int sql_touch(store *s, sql_stmt *q, sql_args a, const char *hint, const char *what, const char *id,
              pf_err *e)
{
    int n = sql_write(s, q, a, e);
    if (n < 0)
        return -1;
    return n == 0 ? not_found(e, hint, what, id) : 0;
}

int sql_one(store *s, sql_stmt *q, sql_args a, const sql_row *r, void *out, pf_err *e)
{
    sql_conn *c = NULL;
    sqlite3_stmt *st = prepare(s, q, a, &c, e);
    if (!st)
        return -1;
    int rc = sqlite3_step(st), ret;
    if (rc == SQLITE_ROW) {
        if (r)
            read_row(st, r, out);
        ret = 1;
    } else {
        ret = rc == SQLITE_DONE ? 0 : db_fail(c, e, "query");
    }
    stmt_done(st);
    return ret;
}

int sql_get(store *s, sql_stmt *q, sql_args a, const sql_row *r, void *out, const char *hint,
            const char *what, const char *id, pf_err *e)
{
    int got = sql_one(s, q, a, r, out, e);
    if (got < 0)
        return -1;
    return got == 0 ? not_found(e, hint, what, id) : 0;
}

int sql_int(store *s, sql_stmt *q, sql_args a, int64_t *v, pf_err *e)
{
    static const sql_col col = {SQL_C_I64, 0, sizeof(int64_t), NULL, 0};
    static const sql_row row = {sizeof(int64_t), &col, 1};
    return sql_one(s, q, a, &row, v, e);
}

int sql_all(store *s, sql_stmt *q, sql_args a, const sql_row *r, void **out, size_t *n, size_t max,
            bool *more, pf_err *e)
{
    sql_conn *c = NULL;
    sqlite3_stmt *st = prepare(s, q, a, &c, e);
    if (!st)
        return -1;
    size_t cap = 0, k = 0;
    char *arr = NULL;
    util_grow((void **)&arr, &cap, 8, r->size);
    if (more)
        *more = false;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (max && k == max) {
            if (more)
                *more = true;
            rc = SQLITE_DONE;
            break;
        }
        util_grow((void **)&arr, &cap, k + 1, r->size);
        read_row(st, r, arr + k * r->size);
        k++;
    }
    if (rc != SQLITE_DONE) {
        db_fail(c, e, "list");
        stmt_done(st);
        free(arr);
        return -1;
    }
    stmt_done(st);
    *out = arr;
    *n = k;
    return 0;
}

int sql_all_of_ids(store *s, sql_stmt *q, const char *const *ids, size_t nids, const sql_row *r,
                   void **out, size_t *n, pf_err *e)
{
    *out = NULL;
    *n = 0;
    if (nids == 0)
        return 0;
    util_buf arr = {0};
    util_buf_add(&arr, "[", 1);
    for (size_t i = 0; i < nids; i++) {
        for (const char *p = ids[i]; *p; p++)
            if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) {
                util_buf_free(&arr);
                return err_internal(e, "store: not an id: %s", ids[i]);
            }
        if (i)
            util_buf_add(&arr, ",", 1);
        util_buf_add(&arr, "\"", 1);
        util_buf_add(&arr, ids[i], strlen(ids[i]));
        util_buf_add(&arr, "\"", 1);
    }
    util_buf_add(&arr, "]", 1);
    int rc = sql_all(s, q, ARGS(TXT(arr.s)), r, out, n, 0, NULL, e);
    util_buf_free(&arr);
    return rc;
}

int sql_page(store *s, sql_stmt *seq, const char *scope, sql_stmt *list, const store_page *pg,
             sql_args a, const sql_row *r, void **out, size_t *n, store_page_out *po, pf_err *e)
{
    static const store_page first = {NULL, 100};
    pg = pg ? pg : &first;
    if (pg->limit < 1 || pg->limit > 100)
        return err_set(e, 400, "ValidationError", "limit", "limit must be between 1 and 100");
    int64_t after = 0;
    if (pg->cursor && pg->cursor[0]) {
        int got = scope ? sql_int(s, seq, ARGS(TXT(pg->cursor), TXT(scope)), &after, e)
                        : sql_int(s, seq, ARGS(TXT(pg->cursor)), &after, e);
        if (got < 0)
            return -1;
        if (got == 0)
            return err_set(e, 400, "ValidationError", "cursor", "The cursor is not valid");
    }
    sql_arg *v = xcalloc((size_t)a.n + 2, sizeof *v);
    v[0] = INT(after);
    v[1] = INT(pg->limit + 1);
    if (a.n)
        memcpy(v + 2, a.v, (size_t)a.n * sizeof *v);
    bool more = false;
    int rc = sql_all(s, list, (sql_args){v, a.n + 2}, r, out, n, (size_t)pg->limit, &more, e);
    free(v);
    if (rc != 0)
        return -1;
    if (po) {
        po->has_more = more;
        po->next_cursor[0] = '\0';
        if (more && *n > 0)
            snprintf(po->next_cursor, sizeof po->next_cursor, "%s",
                     (const char *)*out + (*n - 1) * r->size);
    }
    return 0;
}

int sql_script(store *s, const char *text, pf_err *e)
{
    sql_conn *c = conn_get(s, e);
    if (!c)
        return -1;
    char *msg = NULL;
    if (sqlite3_exec(c->db, text, NULL, NULL, &msg) != SQLITE_OK) {
        err_internal(e, "store: %s", msg ? msg : "?");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

int sql_wal(store *s, pf_err *e)
{
    /* WAL is a property of the file: set once, every later connection inherits it */
    static sql_stmt q = SQL("PRAGMA journal_mode = WAL");
    static const sql_col col = {SQL_C_TEXT, 0, 16, NULL, 0};
    static const sql_row row = {16, &col, 1};
    char mode[16] = "";
    if (sql_one(s, &q, NOARGS, &row, mode, e) < 0)
        return -1;
    if (strcmp(mode, "wal") != 0)
        return err_internal(e, "store: cannot put %s in WAL mode", s->path);
    return 0;
}

/* ---- transactions ---- */

static sql_stmt q_begin = SQL("BEGIN IMMEDIATE"), q_begin_read = SQL("BEGIN DEFERRED"),
                q_commit = SQL("COMMIT"), q_rollback = SQL("ROLLBACK"),
                q_savepoint = SQL("SAVEPOINT pf_nested"), q_release = SQL("RELEASE pf_nested"),
                q_rollback_to = SQL("ROLLBACK TO pf_nested");

/* A read nested in a transaction needs no savepoint: it has nothing to undo, and it reads
 * the snapshot of the transaction it is in. */
#define PLAIN_MAX 63

static bool plain_level(const sql_conn *c)
{
    return c->depth > 0 && (c->plain >> c->depth & 1);
}

static int begin(store *s, sql_stmt *top, pf_err *e)
{
    sql_conn *c = conn_get(s, e);
    if (!c)
        return -1;
    if (c->depth >= PLAIN_MAX) /* no caller nests past a few levels */
        return err_internal(e, "store: transactions nested %d deep", c->depth);
    bool plain = c->depth > 0 && top == &q_begin_read;
    if (!plain && sql_run(s, c->depth == 0 ? top : &q_savepoint, NOARGS, e) != 0)
        return -1;
    c->depth++;
    c->plain = plain ? c->plain | UINT64_C(1) << c->depth : c->plain & ~(UINT64_C(1) << c->depth);
    return 0;
}

/* Leaves a plain level (true), or leaves it to the caller's statement (false). */
static bool end_plain(sql_conn *c)
{
    if (!plain_level(c))
        return false;
    c->plain &= ~(UINT64_C(1) << c->depth);
    c->depth--;
    return true;
}

int sql_begin(store *s, pf_err *e)
{
    return begin(s, &q_begin, e);
}

int sql_begin_read(store *s, pf_err *e)
{
    return begin(s, &q_begin_read, e);
}

void sql_rollback(store *s)
{
    sql_conn *c = conn_get(s, NULL);
    if (!c || c->depth <= 0)
        return;
    if (sqlite3_get_autocommit(c->db)) {
        /* SQLite already rolled the whole transaction back (I/O error, out of memory...) */
        c->depth = 0;
        c->plain = 0;
        return;
    }
    if (end_plain(c))
        return;
    c->depth--;
    if (c->depth == 0) {
        sql_run(s, &q_rollback, NOARGS, NULL);
        return;
    }
    sql_run(s, &q_rollback_to, NOARGS, NULL);
    sql_run(s, &q_release, NOARGS, NULL);
}

int sql_commit(store *s, pf_err *e)
{
    sql_conn *c = conn_get(s, e);
    if (!c)
        return -1;
    if (c->depth <= 0)
        return err_internal(e, "store: commit without a transaction");
    if (end_plain(c))
        return 0;
    if (sql_run(s, c->depth == 1 ? &q_commit : &q_release, NOARGS, e) != 0) {
        sql_rollback(s);
        return -1;
    }
    c->depth--;
    return 0;
}

int sql_end(store *s, int rc, pf_err *e)
{
    if (rc != 0) {
        sql_rollback(s);
        return -1;
    }
    return sql_commit(s, e);
}

int store_tx_begin(store *s, pf_err *e)
{
    return sql_begin(s, e);
}

int store_tx_begin_read(store *s, pf_err *e)
{
    return sql_begin_read(s, e);
}

int store_tx_commit(store *s, pf_err *e)
{
    return sql_commit(s, e);
}

void store_tx_rollback(store *s)
{
    sql_rollback(s);
}
