/* util: ids, time, random secrets and small string helpers shared by every layer. */
#ifndef PF_UTIL_UTIL_H
#define PF_UTIL_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PF_ID_MAX 48 /* room for "<prefix>_" + 24 random chars + NUL */

/* Initializes libsodium; call once before any other util function. Aborts on failure. */
void util_init(void);

/* Writes "<prefix>_<24 chars of [a-z0-9]>" into out (PF_ID_MAX bytes). */
void util_id_new(const char *prefix, char out[PF_ID_MAX]);

/* True when id is "<prefix>_" followed by 1..40 chars of [a-z0-9]. */
bool util_id_valid(const char *prefix, const char *id);

/* Random secret of n chars from [A-Za-z0-9] (URL- and conninfo-safe), NUL-terminated;
 * out must hold n + 1 bytes. */
void util_secret(char *out, size_t n);

/* Current UTC time as ISO-8601 with milliseconds: "2026-11-27T21:20:00.123Z" (25 bytes). */
void util_now_iso(char out[32]);
/* The same for ms since the epoch (>= 0), and its UTC day "2026-11-27". */
void util_iso_from_ms(int64_t ms, char out[32]);
void util_day_from_ms(int64_t ms, char out[16]);

/* Milliseconds on the monotonic clock (durations, deadlines). */
int64_t util_now_ms(void);
/* Milliseconds since the Unix epoch, UTC (dates). */
int64_t util_wall_ms(void);

/* Hex SHA-256 of s (65 bytes incl. NUL). */
void util_sha256_hex(const char *s, char out[65]);

/* Allocation that aborts on out-of-memory. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parses a decimal integer in [min, max]; false on any junk. */
bool util_parse_int(const char *s, long min, long max, long *out);

#endif
