/* store/sql: the SQL core under every file of src/store (never included outside it).
 *
 * Connections: one sqlite3 handle per (thread, store), opened on first use; a statement is
 * static text in the file of its resource (an sql_stmt), prepared once per handle and
 * cached there. Values are bound from an ARGS(...) list, rows are read into structs by a
 * column table (sql_row), so a query is one call. Transactions nest: sql_begin is BEGIN
 * IMMEDIATE at depth 0 and a savepoint inside a caller's transaction.
 *
 * Errors: a unique violation becomes 409 "Conflict" with the API field it is about (one
 * table in sql.c); a missing parent row 404 with the statement's fk_hint; anything else 500. */
#ifndef PF_STORE_SQL_H
#define PF_STORE_SQL_H

#include <stdatomic.h>
#include <stddef.h>

#include "store/store.h"

/* A statement: its text, what a foreign-key failure means (fk_what NULL: an internal
 * error), and its slot in each connection's cache (assigned on first use). */
typedef struct sql_stmt {
    const char *text;
    const char *fk_hint;
    const char *fk_what;
    atomic_int slot;
} sql_stmt;
#define SQL(text_)                                                                                 \
    {                                                                                              \
        .text = (text_)                                                                            \
    }
#define SQL_FK(text_, hint, what)                                                                  \
    {                                                                                              \
        .text = (text_), .fk_hint = (hint), .fk_what = (what)                                      \
    }

/* ---- bound values: ?1, ?2, ... in order ---- */
typedef enum { SQL_A_TEXT, SQL_A_OPT, SQL_A_INT, SQL_A_OPT_INT } sql_arg_type;
typedef struct sql_arg {
    sql_arg_type type;
    const char *s;
    int64_t i;
} sql_arg;
typedef struct sql_args {
    const sql_arg *v;
    int n;
} sql_args;

#define TXT(v) ((sql_arg){SQL_A_TEXT, (v), 0}) /* NULL binds NULL */
#define OPT(v) ((sql_arg){SQL_A_OPT, (v), 0})  /* NULL and "" bind NULL */
#define INT(v) ((sql_arg){SQL_A_INT, NULL, (int64_t)(v)})
#define OPT_INT(v) ((sql_arg){SQL_A_OPT_INT, NULL, (int64_t)(v)}) /* < 0 binds NULL */
#define ARGS(...)                                                                                  \
    ((sql_args){(const sql_arg[]){__VA_ARGS__},                                                    \
                (int)(sizeof((const sql_arg[]){__VA_ARGS__}) / sizeof(sql_arg))})
#define NOARGS ((sql_args){NULL, 0})

/* ---- rows: column i of a result goes to cols[i] ---- */
typedef enum { SQL_C_TEXT, SQL_C_INT, SQL_C_I64, SQL_C_BOOL, SQL_C_ENUM, SQL_C_SIZE } sql_col_type;
typedef struct sql_col {
    sql_col_type type;
    size_t off, cap;
    const char *const *names; /* SQL_C_ENUM: the stored names, index = value */
    int count;
} sql_col;
typedef struct sql_row {
    size_t size; /* of the struct, for arrays */
    const sql_col *cols;
    int ncols;
} sql_row;

#define NAMES_COUNT(a) ((int)(sizeof a / sizeof a[0]))
#define FIELD_SIZE(T, f) sizeof(((T *)0)->f)
/* one column: its type, where it goes in T, and (SQL_C_ENUM) the names it may hold */
#define SQL_COL(type, T, f, names, count)                                                          \
    {                                                                                              \
        type, offsetof(T, f), FIELD_SIZE(T, f), names, count                                       \
    }
#define COL_TEXT(T, f) SQL_COL(SQL_C_TEXT, T, f, NULL, 0)
#define COL_INT(T, f) SQL_COL(SQL_C_INT, T, f, NULL, 0)
#define COL_I64(T, f) SQL_COL(SQL_C_I64, T, f, NULL, 0)
#define COL_BOOL(T, f) SQL_COL(SQL_C_BOOL, T, f, NULL, 0)
#define COL_SIZE(T, f) SQL_COL(SQL_C_SIZE, T, f, NULL, 0) /* NULL = -1 */
#define COL_ENUM(T, f, names) SQL_COL(SQL_C_ENUM, T, f, names, NAMES_COUNT(names))
#define SQL_ROW(T, cols)                                                                           \
    {                                                                                              \
        sizeof(T), cols, NAMES_COUNT(cols)                                                         \
    }

/* ---- statements ---- */

/* Runs a write; the number of rows it changed, or -1. */
int sql_write(store *s, sql_stmt *q, sql_args a, pf_err *e);
/* sql_write as 0 / -1. */
int sql_run(store *s, sql_stmt *q, sql_args a, pf_err *e);
/* sql_write of one row by id: 404 (hint, "<what> <id> was not found") when none changed. */
int sql_touch(store *s, sql_stmt *q, sql_args a, const char *hint, const char *what, const char *id,
              pf_err *e);
/* At most one row into out (r NULL: only whether there is one): 1, 0 = none, -1. */
int sql_one(store *s, sql_stmt *q, sql_args a, const sql_row *r, void *out, pf_err *e);
/* The get-by-id of every resource: 0, or 404 with hint and "<what> <id> was not found"
 * ("<what> was not found" when id is NULL). */
int sql_get(store *s, sql_stmt *q, sql_args a, const sql_row *r, void *out, const char *hint,
            const char *what, const char *id, pf_err *e);
/* The first column of at most one row as an integer: 1 = *v set, 0 = no row, -1. */
int sql_int(store *s, sql_stmt *q, sql_args a, int64_t *v, pf_err *e);
/* Every row (at most max when max > 0; *more then says whether more exist) into a new
 * array (caller frees). */
int sql_all(store *s, sql_stmt *q, sql_args a, const sql_row *r, void **out, size_t *n, size_t max,
            bool *more, pf_err *e);
/* A page of a list. pg NULL = the first 100; its cursor (the id of the last row seen) is
 * looked up with seq (?1 = the cursor, ?2 = scope unless scope is NULL). list binds ?1 = the
 * cursor's seq (0 = from the start), ?2 = limit + 1, then a from ?3 on. Every row struct
 * starts with its id: it is the next cursor. */
int sql_page(store *s, sql_stmt *seq, const char *scope, sql_stmt *list, const store_page *pg,
             sql_args a, const sql_row *r, void **out, size_t *n, store_page_out *po, pf_err *e);
/* The rows of q for ids[0..nids) (none: no rows, q not run), q binding ?1 to the ids as a
 * JSON array (for json_each): ids of rows, never request text; one that is not an id
 * (a quote, a backslash, a control byte) is an internal error. */
int sql_all_of_ids(store *s, sql_stmt *q, const char *const *ids, size_t nids, const sql_row *r,
                   void **out, size_t *n, pf_err *e);
/* Runs a multi-statement script (migrations) on this thread's connection. */
int sql_script(store *s, const char *text, pf_err *e);

/* ---- transactions (on the calling thread's connection; they nest) ---- */
int sql_begin(store *s, pf_err *e);
int sql_begin_read(store *s, pf_err *e); /* BEGIN DEFERRED at depth 0: a snapshot */
int sql_commit(store *s, pf_err *e);
void sql_rollback(store *s);
/* Commits when rc is 0, else rolls back: 0 or -1. */
int sql_end(store *s, int rc, pf_err *e);

/* ---- lifetime (store_open is in schema.c) ---- */
store *sql_store_new(const char *path);
const char *sql_store_path(store *s);
/* The one connection check store_open makes: WAL mode on the file. */
int sql_wal(store *s, pf_err *e);

/* ---- rows and names the resource files share ---- */
extern const sql_row store__row_workspace, store__row_database, store__row_connection;
extern const char *const store__db_status_names[STORE_DB_STATUS_COUNT];
extern const char *const store__op_kind_names[OP__COUNT];
extern const char *const store__op_state_names[4];
/* The index of name in names, or 0. */
int store__enum_of(const char *name, const char *const *names, int count);

#endif
