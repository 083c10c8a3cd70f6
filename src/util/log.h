/* log: one line per event on stderr, in logfmt (`ts=… level=info db=db_… msg="…"`) or, with
 * log_set_format(LOG_FORMAT_JSON), one JSON object per line for log shippers.
 *
 * Context goes in fields, not in the message: a line about a database carries `db=`, one
 * about an operation `op=` (and its `db=`), one about a request `req=`. Use the helpers that
 * take the object's id (log_db_*, log_op_*) so the field is never forgotten; log_emit takes
 * any set of fields. Extra key=value pairs may follow in the message text. Secrets never go
 * through here. */
#ifndef PF_UTIL_LOG_H
#define PF_UTIL_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;
typedef enum { LOG_FORMAT_LOGFMT = 0, LOG_FORMAT_JSON } log_format;

void log_set_level(log_level lvl);
void log_set_format(log_format f);
bool log_enabled(log_level lvl);
/* "logfmt" | "json" -> format; false when unknown. */
bool log_format_parse(const char *s, log_format *out);

/* The context fields of a line; NULL or "" fields are left out. */
typedef struct log_ctx {
    const char *db;   /* database id */
    const char *op;   /* operation id */
    const char *conn; /* connection id */
    const char *req;  /* request id */
    const char *sub;  /* subsystem: "ops", "pooler", "reconcile", "http", ... */
} log_ctx;

void log_emit(log_level lvl, const log_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A line with no object, in a subsystem (sub may be NULL). */
#define log_debug(...) log_emit(LOG_DEBUG, NULL, __VA_ARGS__)
#define log_info(...) log_emit(LOG_INFO, NULL, __VA_ARGS__)
#define log_warn(...) log_emit(LOG_WARN, NULL, __VA_ARGS__)
#define log_error(...) log_emit(LOG_ERROR, NULL, __VA_ARGS__)
#define log_sub(lvl, subsystem, ...) log_emit(lvl, &(log_ctx){.sub = (subsystem)}, __VA_ARGS__)

/* A line about a database (db_id: its id). */
#define log_db(lvl, db_id, ...) log_emit(lvl, &(log_ctx){.db = (db_id)}, __VA_ARGS__)
#define log_db_debug(db_id, ...) log_db(LOG_DEBUG, db_id, __VA_ARGS__)
#define log_db_info(db_id, ...) log_db(LOG_INFO, db_id, __VA_ARGS__)
#define log_db_warn(db_id, ...) log_db(LOG_WARN, db_id, __VA_ARGS__)
#define log_db_error(db_id, ...) log_db(LOG_ERROR, db_id, __VA_ARGS__)

/* A line about an HTTP request (req_id: its id, "req_…"). */
#define log_req(lvl, req_id, ...) log_emit(lvl, &(log_ctx){.req = (req_id)}, __VA_ARGS__)

/* A line about an operation of a database (conn_id may be NULL). */
#define log_op(lvl, op_id, db_id, conn_id, ...)                                                    \
    log_emit(lvl, &(log_ctx){.op = (op_id), .db = (db_id), .conn = (conn_id)}, __VA_ARGS__)

#endif
