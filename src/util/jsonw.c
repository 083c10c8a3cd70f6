/* util/jsonw: JSON text written into a util_buf (jsonw.h). */
#include "util/jsonw.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The length of the well-formed UTF-8 sequence at p (a lead byte >= 0x80), or 0. */
static size_t utf8_len(const unsigned char *p)
{
    size_t n = p[0] >= 0xC2 && p[0] <= 0xDF   ? 2
               : p[0] >= 0xE0 && p[0] <= 0xEF ? 3
               : p[0] >= 0xF0 && p[0] <= 0xF4 ? 4
                                              : 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    /* no overlong forms, no surrogates, nothing past U+10FFFF */
    if ((n == 3 && p[0] == 0xE0 && p[1] < 0xA0) || (n == 3 && p[0] == 0xED && p[1] >= 0xA0) ||
        (n == 4 && p[0] == 0xF0 && p[1] < 0x90) || (n == 4 && p[0] == 0xF4 && p[1] >= 0x90))
        return 0;
    return n;
}

/* The escaped form of s: runs that need no escape are copied whole; a byte that does not
 * start well-formed UTF-8 becomes U+FFFD, so the text is always valid JSON. */
static void put_string(util_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    util_buf_add(b, "\"", 1);
    const char *run = s;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        if (*p >= 0x20 && *p != '"' && *p != '\\' && *p < 0x80) {
            p++;
            continue;
        }
        size_t u = *p >= 0x80 ? utf8_len(p) : 0;
        if (u) {
            p += u;
            continue;
        }
        util_buf_add(b, run, (size_t)((const char *)p - run));
        char esc[7] = {'\\', (char)*p, 0};
        size_t n = 2;
        if (*p >= 0x80) {
            util_buf_add(b, "\\ufffd", 6);
            n = 0;
        } else if (*p == '\n')
            esc[1] = 'n';
        else if (*p == '\r')
            esc[1] = 'r';
        else if (*p == '\t')
            esc[1] = 't';
        else if (*p < 0x20) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 15];
            n = 6;
        }
        util_buf_add(b, esc, n);
        p++;
        run = (const char *)p;
    }
    util_buf_puts(b, run);
    util_buf_add(b, "\"", 1);
}

/* the comma before a value that is not its container's first, and its key */
static void member(jsonw *w, const char *key)
{
    if (w->more[w->depth])
        util_buf_add(&w->b, ",", 1);
    w->more[w->depth] = true;
    if (key) {
        put_string(&w->b, key);
        util_buf_add(&w->b, ":", 1);
    }
}

static void open_with(jsonw *w, const char *key, char open, char close)
{
    member(w, key);
    util_buf_add(&w->b, &open, 1);
    if (++w->depth >= JSONW_DEPTH)
        abort(); /* a shape deeper than any this program writes */
    w->more[w->depth] = false;
    w->close[w->depth] = close;
}

void jsonw_obj(jsonw *w, const char *key)
{
    open_with(w, key, '{', '}');
}

void jsonw_arr(jsonw *w, const char *key)
{
    open_with(w, key, '[', ']');
}

void jsonw_end(jsonw *w)
{
    if (w->depth <= 0)
        abort();
    util_buf_add(&w->b, &w->close[w->depth], 1);
    w->depth--;
}

void jsonw_str(jsonw *w, const char *key, const char *s)
{
    member(w, key);
    put_string(&w->b, s);
}

void jsonw_str_or_null(jsonw *w, const char *key, const char *s)
{
    if (s && *s)
        jsonw_str(w, key, s);
    else
        jsonw_null(w, key);
}

void jsonw_strf(jsonw *w, const char *key, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    if ((size_t)n < sizeof small) {
        jsonw_str(w, key, small);
        return;
    }
    char *big = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    jsonw_str(w, key, big);
    free(big);
}

void jsonw_int(jsonw *w, const char *key, int64_t v)
{
    member(w, key);
    char num[24];
    int n = snprintf(num, sizeof num, "%" PRId64, v);
    util_buf_add(&w->b, num, (size_t)n);
}

void jsonw_bool(jsonw *w, const char *key, bool v)
{
    member(w, key);
    util_buf_add(&w->b, v ? "true" : "false", v ? 4 : 5);
}

void jsonw_null(jsonw *w, const char *key)
{
    member(w, key);
    util_buf_add(&w->b, "null", 4);
}

void jsonw_raw(jsonw *w, const char *key, const char *json, size_t len)
{
    member(w, key);
    util_buf_add(&w->b, json, len);
}
