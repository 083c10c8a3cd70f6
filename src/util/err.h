/* err: the one error type of pgfleet.
 * Every fallible function returns 0 (or a value >= 0) on success and -1 on failure,
 * and fills a pf_err. API errors carry the HTTP status, a stable code and a hint
 * naming the field at fault; internal errors carry status 500. */
#ifndef PF_UTIL_ERR_H
#define PF_UTIL_ERR_H

#include <stdbool.h>

typedef struct pf_err {
    int status;        /* HTTP status for API errors; 500 for internal failures */
    char code[48];     /* stable machine code, e.g. "NotFound", "ValidationError" */
    char message[384]; /* human sentence */
    char hint[256];    /* what to change; names the field where there is one */
} pf_err;

/* Fills e (if not NULL) and returns -1, so callers can `return err_set(...)`. */
int err_set(pf_err *e, int status, const char *code, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Shorthand for internal failures (status 500, code "InternalError"). */
int err_internal(pf_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void err_clear(pf_err *e);

/* Prefixes the message with context ("while provisioning db_x: "). */
void err_prefix(pf_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
