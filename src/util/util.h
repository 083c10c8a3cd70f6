/* util: ids, time (and the one ISO-8601 parser), random secrets, allocation that aborts on
 * out-of-memory, a growing string and array, integer parsing and the port probe: the
 * bottom layer, shared by every other. */
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

/* The one ISO-8601 parser: "YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM|-HH:MM)" (a zone is
 * required; 't' or ' ' may stand for 'T') into unix milliseconds; false on anything else. */
bool util_iso_parse(const char *s, int64_t *ms);

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

/* A growing NUL-terminated string (len excludes the NUL). Zero-initialize; out-of-memory
 * aborts. util_buf_take hands the string to the caller (who frees it) and resets b. */
typedef struct util_buf {
    char *s;
    size_t len, cap;
} util_buf;
void util_buf_add(util_buf *b, const char *s, size_t n);
/* Room for n more bytes and the NUL: where they go (the caller writes them, then adds what
 * it wrote to len and puts the NUL). */
char *util_buf_room(util_buf *b, size_t n);
void util_buf_puts(util_buf *b, const char *s);
void util_buf_printf(util_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *util_buf_take(util_buf *b);
void util_buf_free(util_buf *b);

/* Makes room for `need` elements of `elem` bytes in the array *arr of capacity *cap
 * (doubling; new bytes zeroed). Out-of-memory aborts. */
void util_grow(void **arr, size_t *cap, size_t need, size_t elem);

/* True if something listens on or holds TCP `port` on 127.0.0.1, ::1 or a wildcard (a bind
 * probe; ports outside 1..65535 count as busy). */
bool util_port_busy(int port);

/* The kernel's ephemeral port range (/proc/sys/net/ipv4/ip_local_port_range): the ports
 * outgoing sockets are given. False when it cannot be read (not Linux). */
bool util_ephemeral_range(int *lo, int *hi);

/* Parses a decimal integer in [min, max]; false on any junk. */
bool util_parse_int(const char *s, long min, long max, long *out);

#endif
