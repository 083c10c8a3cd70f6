#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int err_set(pf_err *e, int status, const char *code, const char *hint, const char *fmt, ...)
{
    if (!e)
        return -1;
    e->status = status;
    snprintf(e->code, sizeof e->code, "%s", code ? code : "Error");
    snprintf(e->hint, sizeof e->hint, "%s", hint ? hint : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

int err_internal(pf_err *e, const char *fmt, ...)
{
    if (!e)
        return -1;
    e->status = 500;
    snprintf(e->code, sizeof e->code, "InternalError");
    e->hint[0] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
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
