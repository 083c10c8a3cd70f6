#include "util/util.h"

#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void util_init(void)
{
    if (sodium_init() < 0) {
        fprintf(stderr, "pgfleet: libsodium failed to initialize\n");
        abort();
    }
}

static void random_chars(char *out, size_t n, const char *alphabet, size_t alen)
{
    /* rejection sampling keeps the distribution uniform */
    size_t limit = 256 - (256 % alen);
    size_t i = 0;
    while (i < n) {
        unsigned char buf[64];
        randombytes_buf(buf, sizeof buf);
        for (size_t j = 0; j < sizeof buf && i < n; j++)
            if (buf[j] < limit)
                out[i++] = alphabet[buf[j] % alen];
    }
    out[n] = '\0';
}

void util_id_new(const char *prefix, char out[PF_ID_MAX])
{
    static const char alpha[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    char rnd[25];
    random_chars(rnd, 24, alpha, sizeof alpha - 1);
    snprintf(out, PF_ID_MAX, "%s_%s", prefix, rnd);
}

bool util_id_valid(const char *prefix, const char *id)
{
    if (!id)
        return false;
    size_t pl = strlen(prefix);
    if (strncmp(id, prefix, pl) != 0 || id[pl] != '_')
        return false;
    const char *p = id + pl + 1;
    size_t n = 0;
    for (; *p; p++, n++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            return false;
    }
    return n >= 1 && n <= 40;
}

void util_secret(char *out, size_t n)
{
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    random_chars(out, n, alpha, sizeof alpha - 1);
}

void util_iso_from_ms(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char date[24];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%.19s.%03dZ", date, (int)(ms % 1000));
}

void util_day_from_ms(int64_t ms, char out[16])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

void util_now_iso(char out[32])
{
    util_iso_from_ms(util_wall_ms(), out);
}

int64_t util_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void util_sha256_hex(const char *s, char out[65])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)s, strlen(s));
    sodium_bin2hex(out, 65, h, sizeof h);
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        abort();
    return p;
}

void *xcalloc(size_t n, size_t m)
{
    void *p = calloc(n ? n : 1, m ? m : 1);
    if (!p)
        abort();
    return p;
}

char *xstrdup(const char *s)
{
    char *p = strdup(s ? s : "");
    if (!p)
        abort();
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = NULL;
    int n = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    return p;
}

bool util_parse_int(const char *s, long min, long max, long *out)
{
    if (!s || !*s)
        return false;
    errno = 0;
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (errno || !end || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* Parses ISO-8601 "YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM|-HH:MM]" into unix milliseconds. */
bool util_iso_parse(const char *s, int64_t *ms)
{
    if (!s)
        return false;
    int v[6] = {0};
    static const int len[6] = {4, 2, 2, 2, 2, 2};
    static const char sep[6] = {'-', '-', 'T', ':', ':', 0};
    const char *p = s;
    for (int i = 0; i < 6; i++) {
        for (int k = 0; k < len[i]; k++, p++) {
            if (*p < '0' || *p > '9')
                return false;
            v[i] = v[i] * 10 + (*p - '0');
        }
        if (sep[i]) {
            if (*p != sep[i] && !(sep[i] == 'T' && (*p == 't' || *p == ' ')))
                return false;
            p++;
        }
    }
    int frac = 0, digits = 0;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            if (digits < 3) {
                frac = frac * 10 + (*p - '0');
                digits++;
            }
            p++;
        }
        if (digits == 0)
            return false;
        while (digits++ < 3)
            frac *= 10;
    }
    long off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, hh = 0, mm = 0;
        p++;
        for (int k = 0; k < 2; k++, p++) {
            if (*p < '0' || *p > '9')
                return false;
            hh = hh * 10 + (*p - '0');
        }
        if (*p == ':')
            p++;
        for (int k = 0; k < 2; k++, p++) {
            if (*p < '0' || *p > '9')
                return false;
            mm = mm * 10 + (*p - '0');
        }
        if (hh > 23 || mm > 59)
            return false;
        off = sign * (hh * 3600L + mm * 60L);
    } else {
        return false; /* a zone is required: a bare local time is ambiguous */
    }
    if (*p || v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 || v[4] > 59 || v[5] > 60)
        return false;
    struct tm tm = {.tm_year = v[0] - 1900,
                    .tm_mon = v[1] - 1,
                    .tm_mday = v[2],
                    .tm_hour = v[3],
                    .tm_min = v[4],
                    .tm_sec = v[5]};
    time_t t = timegm(&tm);
    struct tm back;
    gmtime_r(&t, &back);
    if (back.tm_mday != v[2]) /* 31 February and friends */
        return false;
    *ms = ((int64_t)t - off) * 1000 + frac;
    return true;
}

char *util_buf_room(util_buf *b, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns)
            abort();
        b->s = ns;
        b->cap = cap;
    }
    return b->s + b->len;
}

void util_buf_add(util_buf *b, const char *s, size_t n)
{
    util_buf_room(b, n);
    if (n)
        memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void util_buf_puts(util_buf *b, const char *s)
{
    util_buf_add(b, s, strlen(s));
}

void util_buf_printf(util_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    util_buf_room(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *util_buf_take(util_buf *b)
{
    util_buf_add(b, "", 0);
    char *s = b->s;
    *b = (util_buf){0};
    return s;
}

void util_buf_free(util_buf *b)
{
    free(b->s);
    *b = (util_buf){0};
}

void util_grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return;
    size_t nc = *cap ? *cap : 8;
    while (nc < need)
        nc *= 2;
    char *na = realloc(*arr, nc * elem);
    if (!na)
        abort();
    memset(na + *cap * elem, 0, (nc - *cap) * elem);
    *arr = na;
    *cap = nc;
}
