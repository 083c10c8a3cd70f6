/* err: the one error type of pgfleet.
 * Every fallible function returns 0 (or a value >= 0) on success and -1 on failure,
 * and fills a pf_err.
 * - Every error has a kind (what a caller may do about it: fix the input, look elsewhere,
 *   wait, retry, give up). Lower layers (engine, ops) report kinds only, with err_kind.
 * - API errors also carry the HTTP status, a stable code and a hint naming the field at
 *   fault (err_set); err_set derives the kind from the status. An error that reaches the
 *   HTTP layer without a status gets err_http_status(kind). */
#ifndef PF_UTIL_ERR_H
#define PF_UTIL_ERR_H

#include <stdbool.h>

typedef enum {
    ERR_NONE = 0,
    ERR_INVALID,   /* the input is wrong: do not retry it unchanged (400/422) */
    ERR_NOT_FOUND, /* the thing does not exist (404) */
    ERR_CONFLICT,  /* the state forbids it now (409): do not retry blindly */
    ERR_TRANSIENT, /* a passing condition (a busy port, a full disk, a slow start): retry */
    ERR_PERMANENT, /* will fail again the same way (a damaged backup): give up */
    ERR_INTERNAL   /* anything else; retried a bounded number of times (500) */
} pf_err_kind;

typedef struct pf_err {
    pf_err_kind kind;
    int status;        /* HTTP status for API errors (0: derive from kind) */
    char code[48];     /* stable machine code, e.g. "NotFound", "ValidationError" */
    char message[384]; /* human sentence */
    char hint[256];    /* what to change; names the field where there is one */
    int retry_after_s; /* > 0: the answer carries Retry-After (429, 503); set after err_set */
} pf_err;

/* Fills e (if not NULL) and returns -1, so callers can `return err_set(...)`. */
int err_set(pf_err *e, int status, const char *code, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* An error of a kind, without an HTTP status (engine, ops): code may be NULL. */
int err_kind(pf_err *e, pf_err_kind kind, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Shorthand for internal failures (kind ERR_INTERNAL, status 500, code "InternalError"). */
int err_internal(pf_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void err_clear(pf_err *e);

/* Prefixes the message with context ("while provisioning db_x: "). */
void err_prefix(pf_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The HTTP status of e: its own when set, else the one of its kind. */
int err_http_status(const pf_err *e);

/* True when retrying the same work later may succeed (ERR_TRANSIENT, ERR_INTERNAL). */
bool err_retryable(const pf_err *e);

const char *err_kind_name(pf_err_kind k); /* "invalid", "not_found", ... */

#endif
