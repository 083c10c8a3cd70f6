#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static pf_err_kind kind_of_status(int status)
{
    switch (status) {
    case 400:
    case 413:
    case 415:
    case 422:
        return ERR_INVALID;
    case 404:
        return ERR_NOT_FOUND;
    case 409:
        return ERR_CONFLICT;
    case 429:
    case 503:
        return ERR_TRANSIENT;
    default:
        return status >= 400 && status < 500 ? ERR_INVALID : ERR_INTERNAL;
    }
}

static void fill(pf_err *e, pf_err_kind kind, int status, const char *code, const char *hint,
                 const char *fmt, va_list ap)
{
    e->kind = kind;
    e->status = status;
    e->retry_after_s = 0;
    snprintf(e->code, sizeof e->code, "%s", code ? code : "Error");
    snprintf(e->hint, sizeof e->hint, "%s", hint ? hint : "");
    vsnprintf(e->message, sizeof e->message, fmt, ap);
}

int err_set(pf_err *e, int status, const char *code, const char *hint, const char *fmt, ...)
{
    if (!e)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    fill(e, kind_of_status(status), status, code, hint, fmt, ap);
    va_end(ap);
    return -1;
}

int err_kind(pf_err *e, pf_err_kind kind, const char *code, const char *fmt, ...)
{
    if (!e)
        return -1;
    static const char *const codes[] = {"Error",     "ValidationError", "NotFound",     "Conflict",
                                        "Transient", "Permanent",       "InternalError"};
    va_list ap;
    va_start(ap, fmt);
    fill(e, kind, 0, code ? code : codes[kind], NULL, fmt, ap);
    va_end(ap);
    return -1;
}

int err_internal(pf_err *e, const char *fmt, ...)
{
    if (!e)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    fill(e, ERR_INTERNAL, 500, "InternalError", NULL, fmt, ap);
    va_end(ap);
    return -1;
}

void err_clear(pf_err *e)
{
    if (e)
        memset(e, 0, sizeof *e);
}

void err_prefix(pf_err *e, const char *fmt, ...)
{
    if (!e)
        return;
    char pre[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    char old[sizeof e->message];
    memcpy(old, e->message, sizeof old);
    size_t pl = strnlen(pre, sizeof pre);
    if (pl >= sizeof e->message)
        pl = sizeof e->message - 1;
    memcpy(e->message, pre, pl);
    size_t room = sizeof e->message - 1 - pl;
    size_t ol = strnlen(old, room);
    memcpy(e->message + pl, old, ol);
    e->message[pl + ol] = '\0';
}

int err_http_status(const pf_err *e)
{
    if (e->status >= 400 && e->status <= 599)
        return e->status;
    switch (e->kind) {
    case ERR_INVALID:
        return 400;
    case ERR_NOT_FOUND:
        return 404;
    case ERR_CONFLICT:
        return 409;
    case ERR_TRANSIENT:
        return 503;
    default:
        return 500;
    }
}

bool err_retryable(const pf_err *e)
{
    return e->kind == ERR_TRANSIENT || e->kind == ERR_INTERNAL || e->kind == ERR_NONE;
}

const char *err_kind_name(pf_err_kind k)
{
    static const char *const names[] = {"none",      "invalid",   "not_found", "conflict",
                                        "transient", "permanent", "internal"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "internal";
}
