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
