#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static log_level min_level = LOG_INFO;
static log_format format = LOG_FORMAT_LOGFMT;

void log_set_level(log_level lvl)
{
    min_level = lvl;
}

void log_set_format(log_format f)
{
    format = f;
}

bool log_enabled(log_level lvl)
{
    return lvl >= min_level;
}

bool log_format_parse(const char *s, log_format *out)
{
    if (!strcmp(s, "logfmt"))
        *out = LOG_FORMAT_LOGFMT;
    else if (!strcmp(s, "json"))
        *out = LOG_FORMAT_JSON;
    else
        return false;
    return true;
}

typedef struct line {
    char buf[2560];
    size_t n;
} line;

static void put(line *l, const char *s, size_t len)
{
    size_t room = sizeof l->buf - 1 - l->n;
    if (len > room)
        len = room;
    memcpy(l->buf + l->n, s, len);
    l->n += len;
}

static void puts_(line *l, const char *s)
{
    put(l, s, strlen(s));
}

/* logfmt: bare when the value has no space, quote, '=' or control byte; else quoted with
 * \" \\ \n \t escapes. JSON: always quoted, control bytes as \u00XX. */
static void put_value(line *l, const char *v)
{
    bool bare = format == LOG_FORMAT_LOGFMT && v[0];
    for (const char *p = v; bare && *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f)
            bare = false;
    if (bare) {
        puts_(l, v);
        return;
    }
    put(l, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            put(l, esc, 2);
        } else if (*p == '\n') {
            put(l, "\\n", 2);
        } else if (*p == '\t') {
            put(l, "\\t", 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            puts_(l, esc);
        } else {
            put(l, (const char *)p, 1);
        }
    }
    put(l, "\"", 1);
}

static void field(line *l, const char *key, const char *v, bool first)
{
    if (!v || !v[0])
        return;
    if (format == LOG_FORMAT_JSON) {
        puts_(l, first ? "{\"" : ",\"");
        puts_(l, key);
        puts_(l, "\":");
    } else {
        if (!first)
            put(l, " ", 1);
        puts_(l, key);
        put(l, "=", 1);
    }
    put_value(l, v);
}

void log_emit(log_level lvl, const log_ctx *ctx, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (lvl < min_level)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char date[24], stamp[32];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp, sizeof stamp, "%.19s.%03dZ", date, (int)(ts.tv_nsec / 1000000));
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    line l = {.n = 0};
    field(&l, "ts", stamp, true);
    field(&l, "level", names[lvl], false);
    if (ctx) {
        field(&l, "sub", ctx->sub, false);
        field(&l, "db", ctx->db, false);
        field(&l, "op", ctx->op, false);
        field(&l, "conn", ctx->conn, false);
        field(&l, "req", ctx->req, false);
    }
    field(&l, "msg", msg[0] ? msg : "-", false);
    if (format == LOG_FORMAT_JSON)
        put(&l, "}", 1);
    l.buf[l.n] = '\0';
    /* one fputs per line so concurrent threads do not interleave within a line */
    flockfile(stderr);
    fputs(l.buf, stderr);
    fputc('\n', stderr);
    funlockfile(stderr);
}
