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

static void put(util_buf *b, const char *s, size_t n)
{
    memcpy(util_buf_room(b, n), s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

/* Whether any of the 8 bytes of v needs more than a copy: a control byte, '"', '\\' or a
 * byte >= 0x80 (exact as a whole, whichever byte it is). */
static bool word_needs_escape(uint64_t v)
{
    const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
    uint64_t quote = v ^ (ones * '"'), bslash = v ^ (ones * '\\');
    uint64_t ctrl = (v - ones * 0x20) & ~v;
    uint64_t zq = (quote - ones) & ~quote, zb = (bslash - ones) & ~bslash;
    return ((v | ctrl | zq | zb) & high) != 0;
}

/* Writes the escaped form of s[0..len) at o (room for 6 bytes a byte): runs that need no
 * escape are copied whole, 8 bytes are checked at once; a byte that does not start
 * well-formed UTF-8 becomes U+FFFD, so the text is always valid JSON. Returns the end. */
static char *escape_into(char *o, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s, *end = p + len, *run = p;
    while (p < end) {
        if (end - p >= 8) {
            uint64_t v;
            memcpy(&v, p, sizeof v);
            if (!word_needs_escape(v)) {
                p += 8;
                continue;
            }
        }
        if (*p >= 0x20 && *p != '"' && *p != '\\' && *p < 0x80) {
            p++;
            continue;
        }
        size_t u = *p >= 0x80 ? utf8_len(p) : 0;
        if (u && u <= (size_t)(end - p)) {
            p += u;
            continue;
        }
        memcpy(o, run, (size_t)(p - run));
        o += p - run;
        *o++ = '\\';
        if (*p >= 0x80) {
            memcpy(o, "ufffd", 5);
            o += 5;
        } else if (*p == '"' || *p == '\\')
            *o++ = (char)*p;
        else if (*p == '\n')
            *o++ = 'n';
        else if (*p == '\r')
            *o++ = 'r';
        else if (*p == '\t')
            *o++ = 't';
        else {
            memcpy(o, "u00", 3);
            o[3] = hex[*p >> 4];
            o[4] = hex[*p & 15];
            o += 5;
        }
        run = ++p;
    }
    memcpy(o, run, (size_t)(p - run));
    return o + (p - run);
}

/* The string made of the n parts (NULL: none), quoted and escaped, in one reservation. */
static void put_strings(util_buf *b, const char *const *parts, const size_t *lens, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += lens[i];
    char *o = util_buf_room(b, total * 6 + 2), *start = o;
    *o++ = '"';
    for (int i = 0; i < n; i++)
        o = escape_into(o, parts[i], lens[i]);
    *o++ = '"';
    *o = '\0';
    b->len += (size_t)(o - start);
}

static void put_string(util_buf *b, const char *s)
{
    size_t len = strlen(s);
    put_strings(b, &s, &len, 1);
}

/* The comma before a value that is not its container's first, and its key: a name this
 * program writes, which needs no escape. */
static void member(jsonw *w, const char *key)
{
    size_t kl = key ? strlen(key) : 0;
    char *o = util_buf_room(&w->b, kl + 4), *start = o;
    if (w->more[w->depth])
        *o++ = ',';
    w->more[w->depth] = true;
    if (key) {
        *o++ = '"';
        memcpy(o, key, kl);
        o += kl;
        *o++ = '"';
        *o++ = ':';
    }
    *o = '\0';
    w->b.len += (size_t)(o - start);
}

static void open_with(jsonw *w, const char *key, char open, char close)
{
    member(w, key);
    put(&w->b, &open, 1);
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
    put(&w->b, &w->close[w->depth], 1);
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

void jsonw_str3(jsonw *w, const char *key, const char *a, const char *b, const char *c)
{
    const char *parts[3] = {a ? a : "", b ? b : "", c ? c : ""};
    size_t lens[3] = {strlen(parts[0]), strlen(parts[1]), strlen(parts[2])};
    member(w, key);
    put_strings(&w->b, parts, lens, 3);
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
    put(&w->b, num, (size_t)n);
}

void jsonw_bool(jsonw *w, const char *key, bool v)
{
    member(w, key);
    put(&w->b, v ? "true" : "false", v ? 4 : 5);
}

void jsonw_null(jsonw *w, const char *key)
{
    member(w, key);
    put(&w->b, "null", 4);
}

void jsonw_raw(jsonw *w, const char *key, const char *json, size_t len)
{
    member(w, key);
    put(&w->b, json, len);
}
