/* Unit tests for src/datapath/first.c: the first packet of a connection (SSLRequest,
 * GSSENCRequest, CancelRequest, StartupMessage), partial and malformed packets, and the
 * packets the data path writes (a StartupMessage with another database, an ErrorResponse). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "datapath/datapath.h"
#include "util/util.h"

static size_t put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return 4;
}

/* A StartupMessage of protocol 3.0 with NULL-terminated key/value pairs. */
static size_t startup(uint8_t *b, const char *const *kv)
{
    size_t w = 8;
    for (size_t i = 0; kv[i]; i++) {
        size_t l = strlen(kv[i]) + 1;
        memcpy(b + w, kv[i], l);
        w += l;
    }
    b[w++] = '\0';
    put32(b, (uint32_t)w);
    put32(b + 4, 196608);
    return w;
}

static void test_ssl_gssenc_cancel(void **state)
{
    (void)state;
    uint8_t b[16];
    dp_first f;
    put32(b, 8);
    put32(b + 4, 80877103);
    assert_int_equal(dp_first_parse(b, 8, &f), DP_FIRST_SSL);
    assert_int_equal(f.len, 8);
    put32(b + 4, 80877104);
    assert_int_equal(dp_first_parse(b, 8, &f), DP_FIRST_GSSENC);
    put32(b, 16);
    put32(b + 4, 80877102);
    put32(b + 8, 4242);
    put32(b + 12, 0xdeadbeef);
    assert_int_equal(dp_first_parse(b, 16, &f), DP_FIRST_CANCEL);
    assert_int_equal(f.cancel_pid, 4242);
    assert_int_equal(f.cancel_key, 0xdeadbeef);
    /* a cancel request of the wrong length, an SSLRequest with a body */
    put32(b, 12);
    assert_int_equal(dp_first_parse(b, 12, &f), DP_FIRST_BAD);
    put32(b, 12);
    put32(b + 4, 80877103);
    assert_int_equal(dp_first_parse(b, 12, &f), DP_FIRST_BAD);
}

static void test_startup_params(void **state)
{
    (void)state;
    uint8_t b[512];
    const char *kv[] = {"user", "u_abc", "database", "db_x", "application_name", "psql", NULL};
    size_t n = startup(b, kv);
    dp_first f;
    assert_int_equal(dp_first_parse(b, n, &f), DP_FIRST_STARTUP);
    assert_int_equal(f.len, n);
    assert_string_equal(f.user, "u_abc");
    assert_string_equal(f.database, "db_x");
    assert_int_equal(f.nparams, 3);
    /* no database: the user's name, as PostgreSQL does */
    const char *kv2[] = {"user", "alice", NULL};
    n = startup(b, kv2);
    assert_int_equal(dp_first_parse(b, n, &f), DP_FIRST_STARTUP);
    assert_string_equal(f.database, "alice");
}

static void test_partial_packets_need_more(void **state)
{
    (void)state;
    uint8_t b[512];
    const char *kv[] = {"user", "u", "database", "d", NULL};
    size_t n = startup(b, kv);
    dp_first f;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(dp_first_parse(b, i, &f), DP_FIRST_MORE);
    assert_int_equal(dp_first_parse(b, n, &f), DP_FIRST_STARTUP);
    /* bytes after the packet are the next message's, not this one's */
    b[n] = 'p';
    assert_int_equal(dp_first_parse(b, n + 1, &f), DP_FIRST_STARTUP);
    assert_int_equal(f.len, n);
}

static void test_malformed(void **state)
{
    (void)state;
    uint8_t b[DP_STARTUP_MAX + 16];
    dp_first f;
    /* lengths: too small, too large */
    put32(b, 4);
    put32(b + 4, 196608);
    assert_int_equal(dp_first_parse(b, 8, &f), DP_FIRST_BAD);
    put32(b, DP_STARTUP_MAX + 1);
    assert_int_equal(dp_first_parse(b, 8, &f), DP_FIRST_BAD);
    /* protocol 2 */
    const char *kv[] = {"user", "u", NULL};
    size_t n = startup(b, kv);
    put32(b + 4, 131072);
    assert_int_equal(dp_first_parse(b, n, &f), DP_FIRST_BAD);
    /* no terminating NUL, a key without a value, no user */
    n = startup(b, kv);
    b[n - 1] = 'x';
    assert_int_equal(dp_first_parse(b, n, &f), DP_FIRST_BAD);
    memcpy(b + 8, "user\0\0", 6);
    put32(b, 8 + 6);
    assert_int_equal(dp_first_parse(b, 14, &f), DP_FIRST_BAD);
    const char *nouser[] = {"database", "d", NULL};
    n = startup(b, nouser);
    assert_int_equal(dp_first_parse(b, n, &f), DP_FIRST_BAD);
    assert_non_null(strstr(f.why, "user"));
}

static void test_startup_rewrite(void **state)
{
    (void)state;
    uint8_t b[512];
    const char *kv[] = {"user",    "u_abc",  "database", "db_long_identifier",
                        "options", "-c x=1", NULL};
    size_t n = startup(b, kv);
    dp_first f;
    assert_int_equal(dp_first_parse(b, n, &f), DP_FIRST_STARTUP);
    size_t m = 0;
    uint8_t *r = dp_startup_build(&f, "postgres", &m);
    dp_first g;
    assert_int_equal(dp_first_parse(r, m, &g), DP_FIRST_STARTUP);
    assert_int_equal(g.len, m);
    assert_string_equal(g.database, "postgres");
    assert_string_equal(g.user, "u_abc");
    assert_int_equal(g.nparams, 3);
    assert_string_equal(g.vals[2], "-c x=1");
    free(r);
    /* unchanged: the same bytes */
    r = dp_startup_build(&f, NULL, &m);
    assert_int_equal(m, n);
    assert_memory_equal(r, b, n);
    free(r);
}

static void test_error_response(void **state)
{
    (void)state;
    size_t n = 0;
    uint8_t *e = dp_error_build("53300", "too many connections", &n);
    assert_int_equal(e[0], 'E');
    uint32_t len = ((uint32_t)e[1] << 24) | ((uint32_t)e[2] << 16) | ((uint32_t)e[3] << 8) | e[4];
    assert_int_equal(len + 1, n);
    assert_int_equal(e[n - 1], '\0');
    assert_non_null(memmem(e, n, "C53300", 7));
    assert_non_null(memmem(e, n, "Mtoo many connections", 22));
    assert_non_null(memmem(e, n, "SFATAL", 7));
    free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ssl_gssenc_cancel),         cmocka_unit_test(test_startup_params),
        cmocka_unit_test(test_partial_packets_need_more), cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_startup_rewrite),           cmocka_unit_test(test_error_response),
    };
    return HARNESS_RUN("datapath", tests, NULL, NULL);
}
