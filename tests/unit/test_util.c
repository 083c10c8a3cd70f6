/* Unit tests for src/util: ids, secrets, integer parsing, errors and their kinds, the
 * ISO-8601 parser, the growing buffer and array, log lines (logfmt, JSON, levels) and the
 * typed option table (util/opt.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "util/err.h"
#include "util/jsonw.h"
#include "util/log.h"
#include "util/opt.h"
#include "util/textcache.h"
#include "util/util.h"

static void test_id_new_has_prefix_and_is_valid(void **state)
{
    (void)state;
    char a[PF_ID_MAX], b[PF_ID_MAX];
    util_id_new("db", a);
    util_id_new("db", b);
    assert_int_equal(strncmp(a, "db_", 3), 0);
    assert_int_equal(strlen(a), 3 + 24);
    assert_true(util_id_valid("db", a));
    assert_false(util_id_valid("proj", a));
    assert_string_not_equal(a, b);
}

static void test_id_valid_rejects_junk(void **state)
{
    (void)state;
    assert_false(util_id_valid("db", NULL));
    assert_false(util_id_valid("db", "db_"));
    assert_false(util_id_valid("db", "db"));
    assert_false(util_id_valid("db", "db_ABC"));
    assert_false(util_id_valid("db", "db_abc'--"));
    assert_false(util_id_valid("db", "dbx_abc"));
    assert_true(util_id_valid("db", "db_abc123"));
}

static void test_secret_alphabet_and_length(void **state)
{
    (void)state;
    char s[41];
    util_secret(s, 40);
    assert_int_equal(strlen(s), 40);
    for (size_t i = 0; i < 40; i++)
        assert_non_null(
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", s[i]));
}

static void test_parse_int_bounds(void **state)
{
    (void)state;
    long v = 0;
    assert_true(util_parse_int("42", 1, 100, &v));
    assert_int_equal(v, 42);
    assert_false(util_parse_int("0", 1, 100, &v));
    assert_false(util_parse_int("101", 1, 100, &v));
    assert_false(util_parse_int("4x", 1, 100, &v));
    assert_false(util_parse_int("", 1, 100, &v));
    assert_false(util_parse_int(NULL, 1, 100, &v));
    assert_false(util_parse_int("99999999999999999999999", 1, 100, &v));
}

static void test_err_set_and_prefix(void **state)
{
    (void)state;
    pf_err e;
    err_clear(&e);
    assert_int_equal(err_set(&e, 404, "NotFound", "databaseId", "no database %s", "db_x"), -1);
    assert_int_equal(e.status, 404);
    assert_string_equal(e.code, "NotFound");
    assert_string_equal(e.hint, "databaseId");
    err_prefix(&e, "while %s: ", "testing");
    assert_string_equal(e.message, "while testing: no database db_x");
}

static void test_sha256_hex(void **state)
{
    (void)state;
    char h[65];
    util_sha256_hex("abc", h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_err_kinds_statuses_and_retries(void **state)
{
    (void)state;
    pf_err e;
    /* a kind without a status: the HTTP status comes from the kind */
    assert_int_equal(err_kind(&e, ERR_TRANSIENT, NULL, "port %d busy", 5), -1);
    assert_int_equal(e.kind, ERR_TRANSIENT);
    assert_int_equal(e.status, 0);
    assert_string_equal(e.code, "Transient");
    assert_string_equal(e.message, "port 5 busy");
    assert_int_equal(err_http_status(&e), 503);
    assert_true(err_retryable(&e));
    assert_int_equal(err_kind(&e, ERR_NOT_FOUND, "NoSuchBackup", "gone"), -1);
    assert_string_equal(e.code, "NoSuchBackup");
    assert_int_equal(err_http_status(&e), 404);
    assert_false(err_retryable(&e));
    err_kind(&e, ERR_INVALID, NULL, "bad");
    assert_int_equal(err_http_status(&e), 400);
    assert_false(err_retryable(&e));
    err_kind(&e, ERR_CONFLICT, NULL, "busy");
    assert_int_equal(err_http_status(&e), 409);
    assert_false(err_retryable(&e));
    err_kind(&e, ERR_PERMANENT, NULL, "damaged");
    assert_int_equal(err_http_status(&e), 500);
    assert_false(err_retryable(&e));
    /* a status without a kind: the kind comes from the status, the status stays */
    err_set(&e, 422, "ValidationError", "name", "bad name");
    assert_int_equal(e.kind, ERR_INVALID);
    assert_int_equal(err_http_status(&e), 422);
    err_set(&e, 409, "Conflict", NULL, "taken");
    assert_int_equal(e.kind, ERR_CONFLICT);
    assert_false(err_retryable(&e));
    err_set(&e, 503, "Unavailable", NULL, "later");
    assert_int_equal(e.kind, ERR_TRANSIENT);
    assert_true(err_retryable(&e));
    err_set(&e, 404, "NotFound", NULL, "no");
    assert_int_equal(e.kind, ERR_NOT_FOUND);
    err_set(&e, 403, "Forbidden", NULL, "no");
    assert_int_equal(e.kind, ERR_INVALID);
    assert_int_equal(err_internal(&e, "boom"), -1);
    assert_int_equal(e.kind, ERR_INTERNAL);
    assert_int_equal(err_http_status(&e), 500);
    assert_true(err_retryable(&e));
    assert_string_equal(err_kind_name(ERR_NOT_FOUND), "not_found");
    assert_string_equal(err_kind_name(ERR_TRANSIENT), "transient");
    assert_string_equal(err_kind_name((pf_err_kind)99), "internal");
    /* NULL errors are allowed everywhere */
    assert_int_equal(err_kind(NULL, ERR_INVALID, NULL, "x"), -1);
    assert_int_equal(err_set(NULL, 400, "x", NULL, "x"), -1);
}

static void test_iso_parse(void **state)
{
    (void)state;
    int64_t ms = -1;
    assert_true(util_iso_parse("1970-01-01T00:00:00Z", &ms));
    assert_int_equal(ms, 0);
    assert_true(util_iso_parse("2026-11-27T21:20:00.123Z", &ms));
    assert_int_equal(ms, 1795814400123LL);
    /* round trip with the formatter */
    char out[32];
    util_iso_from_ms(ms, out);
    assert_string_equal(out, "2026-11-27T21:20:00.123Z");
    /* zones, separators, fractions */
    int64_t z = 0;
    assert_true(util_iso_parse("2026-11-27T22:20:00.123+01:00", &z));
    assert_int_equal(z, ms);
    assert_true(util_iso_parse("2026-11-27T16:50:00.123-0430", &z));
    assert_int_equal(z, ms);
    assert_true(util_iso_parse("2026-11-27 21:20:00.123z", &z));
    assert_int_equal(z, ms);
    assert_true(util_iso_parse("2026-11-27t21:20:00.1Z", &z));
    assert_int_equal(z, ms - 23);
    assert_true(util_iso_parse("2026-11-27T21:20:00.123456Z", &z)); /* beyond ms: cut */
    assert_int_equal(z, ms);
    assert_true(util_iso_parse("2024-02-29T00:00:00Z", &z)); /* a leap day */
    /* rejected */
    const char *bad[] = {NULL,
                         "",
                         "2026-11-27T21:20:00",       /* no zone */
                         "2026-11-27",                /* no time */
                         "2026-13-01T00:00:00Z",      /* month 13 */
                         "2026-02-30T00:00:00Z",      /* 30 February */
                         "2025-02-29T00:00:00Z",      /* not a leap year */
                         "2026-11-27T24:00:00Z",      /* hour 24 */
                         "2026-11-27T21:60:00Z",      /* minute 60 */
                         "2026-11-27T21:20:00.Z",     /* empty fraction */
                         "2026-11-27T21:20:00Zjunk",  /* trailing junk */
                         "2026-11-27T21:20:00+24:00", /* zone hour 24 */
                         "2026-11-27T21:20:00+1:00",  /* short zone */
                         "2026-11-27X21:20:00Z",      /* separator */
                         "26-11-27T21:20:00Z",        /* short year */
                         "2026-11-27T21:20:00 Z"};    /* space before the zone */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        z = 42;
        if (util_iso_parse(bad[i], &z))
            fail_msg("accepted '%s'", bad[i] ? bad[i] : "(null)");
        assert_int_equal(z, 42); /* untouched */
    }
}

static void test_buf(void **state)
{
    (void)state;
    util_buf b = {0};
    util_buf_puts(&b, "");
    assert_non_null(b.s);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.s, "");
    util_buf_add(&b, "abcdef", 3);
    util_buf_printf(&b, "-%d-%s", 42, "x");
    assert_string_equal(b.s, "abc-42-x");
    assert_int_equal(b.len, 8);
    /* growth past the first allocation keeps the content and the NUL */
    for (int i = 0; i < 1000; i++)
        util_buf_printf(&b, "%04d", i);
    assert_int_equal(b.len, 8 + 4000);
    assert_int_equal(strlen(b.s), b.len);
    assert_true(b.cap > b.len);
    assert_memory_equal(b.s + 8, "00000001", 8);
    assert_string_equal(b.s + b.len - 4, "0999");
    /* a printf longer than the room left */
    char big[3000];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    util_buf_printf(&b, "%s", big);
    assert_int_equal(b.len, 8 + 4000 + 2999);
    assert_int_equal(b.s[b.len], '\0');
    char *s = util_buf_take(&b);
    assert_null(b.s);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(strlen(s), 8 + 4000 + 2999);
    free(s);
    /* take of an empty buffer is "", never NULL */
    s = util_buf_take(&b);
    assert_string_equal(s, "");
    free(s);
    util_buf_puts(&b, "gone");
    util_buf_free(&b);
    assert_null(b.s);
    util_buf_free(&b); /* twice is fine */
}

static void test_grow(void **state)
{
    (void)state;
    int *a = NULL;
    size_t cap = 0;
    util_grow((void **)&a, &cap, 0, sizeof *a);
    assert_null(a);
    assert_int_equal(cap, 0);
    util_grow((void **)&a, &cap, 1, sizeof *a);
    assert_non_null(a);
    assert_true(cap >= 1);
    size_t first = cap;
    for (size_t i = 0; i < first; i++)
        assert_int_equal(a[i], 0); /* new elements are zeroed */
    for (size_t i = 0; i < 1000; i++) {
        util_grow((void **)&a, &cap, i + 1, sizeof *a);
        a[i] = (int)i;
    }
    assert_true(cap >= 1000);
    for (size_t i = 0; i < 1000; i++)
        assert_int_equal(a[i], (int)i);
    for (size_t i = 1000; i < cap; i++)
        assert_int_equal(a[i], 0);
    size_t before = cap;
    util_grow((void **)&a, &cap, 10, sizeof *a); /* never shrinks */
    assert_int_equal(cap, before);
    free(a);
}

/* The log lines one call writes, captured from stderr. */
static char *logged(void (*emit)(void))
{
    harness_capture c;
    assert_int_equal(harness_capture_begin(&c, STDERR_FILENO), 0);
    emit();
    return harness_capture_end(&c);
}

static void emit_quoted(void)
{
    log_db_info("db_abc", "said \"hi\" a=b\\c\nsecond\tline");
}

static void emit_plain(void)
{
    log_info("ready");
    log_sub(LOG_WARN, "pooler", "reloaded");
    log_req(LOG_INFO, "req_7", "GET /v1/x -> 200");
}

static void emit_op(void)
{
    log_op(LOG_ERROR, "op_1", "db_2", NULL, "failed: \"x\" = y\n\x01 done");
    log_op(LOG_INFO, "op_3", "db_4", "conn_5", "ok");
}

static void emit_levels(void)
{
    log_debug("d");
    log_info("i");
    log_warn("w");
    log_error("e");
}

static void test_log_logfmt_quoting(void **state)
{
    (void)state;
    log_set_format(LOG_FORMAT_LOGFMT);
    log_set_level(LOG_INFO);
    char *out = logged(emit_quoted);
    /* one line, fields in order, the message quoted with its escapes */
    assert_int_equal(strchr(out, '\n') - out + 1, (long)strlen(out));
    assert_int_equal(strncmp(out, "ts=", 3), 0);
    assert_non_null(
        strstr(out, " level=info db=db_abc msg=\"said \\\"hi\\\" a=b\\\\c\\nsecond\\tline\"\n"));
    free(out);
    out = logged(emit_plain);
    assert_non_null(strstr(out, " level=info msg=ready\n"));
    assert_non_null(strstr(out, " level=warn sub=pooler msg=reloaded\n"));
    assert_non_null(strstr(out, " level=info req=req_7 msg=\"GET /v1/x -> 200\"\n"));
    free(out);
}

static void test_log_json_lines_parse(void **state)
{
    (void)state;
    log_set_format(LOG_FORMAT_JSON);
    log_set_level(LOG_INFO);
    char *out = logged(emit_op);
    log_set_format(LOG_FORMAT_LOGFMT);
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    *nl = '\0';
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    if (!j)
        fail_msg("not JSON (%s): %s", je.text, out);
    assert_string_equal(json_string_value(json_object_get(j, "level")), "error");
    assert_string_equal(json_string_value(json_object_get(j, "op")), "op_1");
    assert_string_equal(json_string_value(json_object_get(j, "db")), "db_2");
    assert_null(json_object_get(j, "conn")); /* NULL fields are left out */
    assert_string_equal(json_string_value(json_object_get(j, "msg")),
                        "failed: \"x\" = y\n\x01 done");
    int64_t ms = 0;
    assert_true(util_iso_parse(json_string_value(json_object_get(j, "ts")), &ms));
    json_decref(j);
    j = json_loads(nl + 1, 0, &je);
    if (!j)
        fail_msg("not JSON (%s): %s", je.text, nl + 1);
    assert_string_equal(json_string_value(json_object_get(j, "conn")), "conn_5");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "ok");
    json_decref(j);
    free(out);
}

static void test_log_levels(void **state)
{
    (void)state;
    log_set_format(LOG_FORMAT_LOGFMT);
    log_set_level(LOG_WARN);
    assert_false(log_enabled(LOG_INFO));
    assert_true(log_enabled(LOG_ERROR));
    char *out = logged(emit_levels);
    assert_null(strstr(out, "msg=d"));
    assert_null(strstr(out, "msg=i"));
    assert_non_null(strstr(out, "level=warn msg=w\n"));
    assert_non_null(strstr(out, "level=error msg=e\n"));
    free(out);
    log_set_level(LOG_DEBUG);
    out = logged(emit_levels);
    assert_non_null(strstr(out, "level=debug msg=d\n"));
    free(out);
    log_set_level(LOG_INFO);
    log_format f = LOG_FORMAT_JSON;
    assert_true(log_format_parse("logfmt", &f));
    assert_int_equal(f, LOG_FORMAT_LOGFMT);
    assert_true(log_format_parse("json", &f));
    assert_int_equal(f, LOG_FORMAT_JSON);
    assert_false(log_format_parse("xml", &f));
}

/* ---- the option table ---- */

enum { C_A = 1, C_B = 2 };
static const char *const colours[] = {"red", "green", NULL};
static const opt_def defs[] = {
    {"workers", "PF_TEST_WORKERS", OPT_INT, "2", 1, 64, .cmds = C_A, .help = "threads"},
    {"listen", NULL, OPT_HOSTPORT, "127.0.0.1:8080", .cmds = C_A, .help = "address"},
    {"pooler", NULL, OPT_HOSTPORT, "off", .off_ok = true, .cmds = C_A, .help = "pooled"},
    {"ports", NULL, OPT_RANGE, "55000-55999", 1024, 65535, .cmds = C_A, .help = "ports"},
    {"colour", "PF_TEST_COLOUR", OPT_ENUM, "red", .values = colours, .cmds = C_A | C_B,
     .help = "a colour"},
    {"ttl", NULL, OPT_SECONDS, "60", 1, 86400, .cmds = C_A, .help = "lifetime"},
    {"dir", NULL, OPT_PATH, NULL, .cmds = C_A, .help = "a directory"},
    {"name", NULL, OPT_STRING, NULL, .cmds = C_B, .help = "a name"},
};
#define NDEFS (sizeof defs / sizeof defs[0])

static int parse(opt_value *v, int cmd, pf_err *e, int argc, char **argv)
{
    err_clear(e);
    return opt_parse(defs, NDEFS, v, cmd, argc, argv, 0, e);
}

static void test_opt_defaults_env_argv(void **state)
{
    (void)state;
    opt_value v[NDEFS];
    pf_err e;
    unsetenv("PF_TEST_WORKERS");
    unsetenv("PF_TEST_COLOUR");
    assert_int_equal(parse(v, C_A, &e, 0, NULL), 0);
    assert_int_equal(v[0].n, 2);
    assert_string_equal(v[1].host, "127.0.0.1");
    assert_int_equal(v[1].port, 8080);
    assert_int_equal(v[2].port, 0); /* off */
    assert_int_equal(v[3].n, 55000);
    assert_int_equal(v[3].hi, 55999);
    assert_int_equal(v[4].n, 0);
    assert_int_equal(v[5].n, 60);
    assert_null(v[6].s); /* no default, not set */
    /* the environment beats the default, argv beats the environment */
    setenv("PF_TEST_WORKERS", "7", 1);
    setenv("PF_TEST_COLOUR", "green", 1);
    assert_int_equal(parse(v, C_A, &e, 0, NULL), 0);
    assert_int_equal(v[0].n, 7);
    assert_int_equal(v[4].n, 1);
    char *argv[] = {"--workers",      "9",        "--listen=[::1]:99", "--pooler",
                    "127.0.0.1:6432", "--dir=/x", "--colour=red"};
    assert_int_equal(parse(v, C_A, &e, 7, argv), 0);
    assert_int_equal(v[0].n, 9);
    assert_string_equal(v[1].host, "::1");
    assert_int_equal(v[1].port, 99);
    assert_int_equal(v[2].port, 6432);
    assert_string_equal(v[6].s, "/x");
    assert_int_equal(v[4].n, 0);
    /* a bad value from the environment says so */
    setenv("PF_TEST_WORKERS", "0", 1);
    assert_int_equal(parse(v, C_A, &e, 0, NULL), -1);
    assert_int_equal(e.kind, ERR_INVALID);
    assert_string_equal(
        e.message, "--workers (from PF_TEST_WORKERS) must be an integer from 1 to 64, got '0'");
    /* ... but only for a command that takes the option */
    assert_int_equal(parse(v, C_B, &e, 0, NULL), 0);
    unsetenv("PF_TEST_WORKERS");
    unsetenv("PF_TEST_COLOUR");
}

/* A flag takes no value: given is 1, absent 0, "--flag=x" is refused. */
static void test_opt_flag(void **state)
{
    (void)state;
    static const opt_def fdefs[] = {
        {"operator", NULL, OPT_FLAG, NULL, .cmds = C_A, .help = "a flag"},
        {"name", NULL, OPT_STRING, NULL, .cmds = C_A, .help = "a name"},
    };
    opt_value v[2];
    pf_err e;
    err_clear(&e);
    assert_int_equal(opt_parse(fdefs, 2, v, C_A, 0, NULL, 0, &e), 0);
    assert_null(v[0].s);
    char *argv[] = {"--operator", "--name", "x"};
    assert_int_equal(opt_parse(fdefs, 2, v, C_A, 3, argv, 0, &e), 0);
    assert_int_equal(v[0].n, 1);
    assert_string_equal(v[1].s, "x");
    char *bad[] = {"--operator=yes"};
    assert_int_equal(opt_parse(fdefs, 2, v, C_A, 1, bad, 0, &e), -1);
    assert_string_equal(e.message, "--operator takes no value");
}

static void test_opt_rejects_with_the_tables_texts(void **state)
{
    (void)state;
    opt_value v[NDEFS];
    pf_err e;
    struct {
        const char *arg, *message;
    } bad[] = {
        {"--workers=x", "--workers must be an integer from 1 to 64, got 'x'"},
        {"--workers=65", "--workers must be an integer from 1 to 64, got '65'"},
        {"--listen=nope", "--listen must be HOST:PORT with a numeric address, got 'nope'"},
        {"--listen=off", "--listen must be HOST:PORT with a numeric address, got 'off'"},
        {"--listen=h:0", "--listen must be HOST:PORT with a numeric address, got 'h:0'"},
        {"--pooler=:5", "--pooler must be HOST:PORT with a numeric address, or off, got ':5'"},
        {"--ports=2000-1000", "--ports must be LO-HI with 1024 <= LO <= HI <= 65535, got "
                              "'2000-1000'"},
        {"--ports=80-90", "--ports must be LO-HI with 1024 <= LO <= HI <= 65535, got '80-90'"},
        {"--ports=2000", "--ports must be LO-HI with 1024 <= LO <= HI <= 65535, got '2000'"},
        {"--colour=blue", "--colour must be one of red, green, got 'blue'"},
        {"--ttl=0", "--ttl must be a number of seconds from 1 to 86400, got '0'"},
        {"--dir=", "--dir must be a path, got ''"},
        {"--name=x", "unknown option '--name' (see pgfleet --help)"}, /* C_B only */
        {"--what=1", "unknown option '--what' (see pgfleet --help)"},
        {"stray", "unexpected argument 'stray'"},
        {"--workers", "option '--workers' needs a value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *argv[] = {(char *)bad[i].arg};
        if (parse(v, C_A, &e, 1, argv) != -1)
            fail_msg("accepted %s", bad[i].arg);
        assert_string_equal(e.message, bad[i].message);
    }
    char *help[] = {"--workers=3", "-h"};
    assert_int_equal(parse(v, C_A, &e, 2, help), 1);
    char *range[] = {"--ports", "1024-1024"};
    assert_int_equal(parse(v, C_A, &e, 2, range), 0);
    assert_int_equal(v[3].n, 1024);
    assert_int_equal(v[3].hi, 1024);
}

static void test_opt_help_from_the_table(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    opt_help(f, defs, NDEFS);
    fclose(f);
    /* "  --NAME" padded to one column, then: help: expectation [default] (env VAR) */
    assert_non_null(strstr(text, "  --workers "));
    assert_non_null(strstr(text, " threads: an integer from 1 to 64 [2] (env PF_TEST_WORKERS)\n"));
    assert_non_null(strstr(text, " a colour: one of red, green [red] (env PF_TEST_COLOUR)\n"));
    assert_non_null(strstr(text, " pooled: HOST:PORT with a numeric address, or off [off]\n"));
    assert_non_null(strstr(text, " a name\n")); /* text and paths: no type text */
    assert_non_null(strstr(text, " a directory\n"));
    char *workers = strstr(text, "--workers"), *threads = strstr(text, "threads:");
    assert_int_equal(threads - workers, 2 + 21 + 1);
    free(text);
}

/* textcache: a hit only for the same id and revision; a keep replaces the id's text; a
 * reader's text outlives its replacement and the budget's drop (ASan sees a use after free);
 * the budget bounds what is kept; many ids share few buckets. */
/* Keeps a copy of s[0..len) for (id, rev) and lets go of the caller's reference. */
static void keep_copy(textcache *c, const char *id, int64_t rev, const char *s, size_t len)
{
    char *own = xmalloc(len + 1);
    memcpy(own, s, len);
    own[len] = '\0';
    textcache_release(textcache_keep(c, id, rev, own, len));
}

static void test_textcache(void **state)
{
    (void)state;
    textcache *c = textcache_new(4, 16384);
    textcache_counts tc;
    assert_null(textcache_get(c, "db_a", 1));
    keep_copy(c, "db_a", 1, "{\"a\":1}", 7);
    const textcache_text *t = textcache_get(c, "db_a", 1);
    assert_non_null(t);
    assert_int_equal(t->len, 7);
    assert_string_equal(t->s, "{\"a\":1}");
    assert_null(textcache_get(c, "db_a", 2));
    assert_null(textcache_get(c, "db_b", 1));
    keep_copy(c, "db_a", 2, "{\"a\":2}", 7); /* replaces: the reader's text stays */
    assert_string_equal(t->s, "{\"a\":1}");
    textcache_release(t);
    assert_null(textcache_get(c, "db_a", 1));
    keep_copy(c, "db_a", 1, "{\"a\":1}", 7); /* an older revision: the newer text stays */
    assert_null(textcache_get(c, "db_a", 1));
    t = textcache_get(c, "db_a", 2);
    assert_non_null(t);
    assert_string_equal(t->s, "{\"a\":2}");
    textcache_stats(c, &tc);
    assert_int_equal(tc.texts, 1);
    assert_int_equal(tc.hits, 2);
    assert_int_equal(tc.misses, 5);
    /* 40 ids in 4 buckets, each found under its own revision */
    char id[PF_ID_MAX], text[64];
    for (int i = 0; i < 40; i++) {
        snprintf(id, sizeof id, "db_%d", i);
        snprintf(text, sizeof text, "{\"i\":%d}", i);
        keep_copy(c, id, i, text, strlen(text));
    }
    for (int i = 0; i < 40; i++) {
        snprintf(id, sizeof id, "db_%d", i);
        snprintf(text, sizeof text, "{\"i\":%d}", i);
        const textcache_text *u = textcache_get(c, id, i);
        assert_non_null(u);
        assert_string_equal(u->s, text);
        textcache_release(u);
    }
    textcache_stats(c, &tc);
    assert_int_equal(tc.texts, 41);
    assert_true(tc.bytes <= 16384);
    /* past the budget: buckets emptied in turn until the new text fits, within the budget;
     * t (db_a) still readable whatever was dropped */
    char big[6000];
    memset(big, 'x', sizeof big);
    for (int i = 0; i < 8; i++) {
        snprintf(id, sizeof id, "db_big%d", i);
        keep_copy(c, id, 1, big, sizeof big);
        textcache_stats(c, &tc);
        assert_true(tc.bytes <= 16384);
        const textcache_text *u = textcache_get(c, id, 1); /* the newest is always kept */
        assert_non_null(u);
        assert_int_equal(u->len, sizeof big);
        textcache_release(u);
    }
    textcache_stats(c, &tc);
    assert_true(tc.texts >= 1 && tc.texts < 41);
    assert_string_equal(t->s, "{\"a\":2}");
    /* a dropped id is gone, the others stay */
    keep_copy(c, "db_gone", 1, "{}", 2);
    textcache_stats(c, &tc);
    size_t before = tc.texts;
    textcache_drop(c, "db_gone");
    textcache_drop(c, "db_never");
    assert_null(textcache_get(c, "db_gone", 1));
    textcache_stats(c, &tc);
    assert_int_equal(tc.texts, before - 1);
    /* a text above the budget is never kept, but handed back all the same */
    char *huge = xcalloc(1, 16384 + 1);
    const textcache_text *h = textcache_keep(c, "db_huge", 1, huge, 16384);
    assert_ptr_equal(h->s, huge);
    assert_int_equal(h->len, 16384);
    assert_null(textcache_get(c, "db_huge", 1));
    textcache_release(h); /* frees huge */
    /* an older revision is handed back too, kept or not; and no cache at all keeps nothing */
    const textcache_text *o = textcache_keep(c, "db_a", 1, xstrdup("{\"a\":1}"), 7);
    assert_string_equal(o->s, "{\"a\":1}");
    textcache_release(o);
    const textcache_text *none = textcache_keep(NULL, "db_x", 1, xstrdup("{}"), 2);
    assert_string_equal(none->s, "{}");
    textcache_release(none);
    assert_null(textcache_get(NULL, "db_x", 1));
    textcache_free(c); /* t is still referenced: freed by its release */
    assert_string_equal(t->s, "{\"a\":2}");
    textcache_release(t);
}

/* textcache shared by threads: gets, keeps and releases of few ids under a small budget
 * (drops while readers hold texts); each text read is the one kept for its revision. */
typedef struct tc_arg {
    textcache *c;
    int seed;
    int bad;
} tc_arg;

static void *textcache_worker(void *p)
{
    tc_arg *a = p;
    char id[PF_ID_MAX], text[128];
    unsigned r = (unsigned)a->seed;
    for (int i = 0; i < 20000; i++) {
        r = r * 1103515245u + 12345u;
        int k = (int)(r >> 8) % 16, rev = (int)(r >> 16) % 4;
        snprintf(id, sizeof id, "db_%d", k);
        snprintf(text, sizeof text, "{\"id\":\"%s\",\"rev\":%d,\"pad\":\"%0*d\"}", id, rev, 40 + k,
                 0);
        const textcache_text *t = textcache_get(a->c, id, rev);
        if (t) {
            if (strcmp(t->s, text) != 0)
                a->bad++;
            textcache_release(t);
        } else {
            keep_copy(a->c, id, rev, text, strlen(text));
        }
    }
    return NULL;
}

static void test_textcache_threads(void **state)
{
    (void)state;
    textcache *c = textcache_new(8, 1024);
    pthread_t th[4];
    tc_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (tc_arg){c, i + 1, 0};
        assert_int_equal(pthread_create(&th[i], NULL, textcache_worker, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].bad, 0);
    }
    textcache_counts tc;
    textcache_stats(c, &tc);
    assert_true(tc.hits > 0 && tc.misses > 0);
    assert_true(tc.bytes <= 1024);
    textcache_free(c);
}

/* jsonw: nesting, commas, every kind of value, escapes; valid UTF-8 kept, a byte that
 * starts none replaced; what it writes parses back to the same values. */
static void test_jsonw(void **state)
{
    (void)state;
    jsonw w = {0};
    jsonw_obj(&w, NULL);
    jsonw_str(&w, "s", "a\"b\\c\n\t\x01/\xc3\xa9\xf0\x9f\x98\x80");
    jsonw_str(&w, "bad",
              "x\xff"
              "y\xc3"
              "z\xed\xa0\x80");
    jsonw_str_or_null(&w, "empty", "");
    jsonw_str_or_null(&w, "none", NULL);
    jsonw_strf(&w, "f", "%s/%d", "u", 7);
    jsonw_int(&w, "i", -42);
    jsonw_bool(&w, "t", true);
    jsonw_arr(&w, "arr");
    jsonw_int(&w, NULL, 1);
    jsonw_obj(&w, NULL);
    jsonw_end(&w);
    jsonw_arr(&w, NULL);
    jsonw_end(&w);
    jsonw_raw(&w, NULL, "{\"r\":1}", 7);
    jsonw_end(&w);
    jsonw_end(&w);
    assert_string_equal(w.b.s, "{\"s\":\"a\\\"b\\\\c\\n\\t\\u0001/\xc3\xa9\xf0\x9f\x98\x80\","
                               "\"bad\":\"x\\ufffdy\\ufffdz\\ufffd\\ufffd\\ufffd\","
                               "\"empty\":null,\"none\":null,\"f\":\"u/7\",\"i\":-42,\"t\":true,"
                               "\"arr\":[1,{},[],{\"r\":1}]}");
    json_error_t err;
    json_t *j = json_loadb(w.b.s, w.b.len, 0, &err);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "s")),
                        "a\"b\\c\n\t\x01/\xc3\xa9\xf0\x9f\x98\x80");
    assert_int_equal(json_array_size(json_object_get(j, "arr")), 4);
    json_decref(j);
    /* a string longer than the formatting buffer */
    util_buf_free(&w.b);
    w = (jsonw){0};
    char big[2000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    jsonw_strf(&w, NULL, "%s!", big);
    assert_int_equal(w.b.len, sizeof big - 1 + 3);
    util_buf_free(&w.b);
}

int main(void)
{
    util_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_new_has_prefix_and_is_valid),
        cmocka_unit_test(test_id_valid_rejects_junk),
        cmocka_unit_test(test_secret_alphabet_and_length),
        cmocka_unit_test(test_parse_int_bounds),
        cmocka_unit_test(test_err_set_and_prefix),
        cmocka_unit_test(test_sha256_hex),
        cmocka_unit_test(test_err_kinds_statuses_and_retries),
        cmocka_unit_test(test_iso_parse),
        cmocka_unit_test(test_buf),
        cmocka_unit_test(test_grow),
        cmocka_unit_test(test_log_logfmt_quoting),
        cmocka_unit_test(test_log_json_lines_parse),
        cmocka_unit_test(test_log_levels),
        cmocka_unit_test(test_opt_defaults_env_argv),
        cmocka_unit_test(test_opt_rejects_with_the_tables_texts),
        cmocka_unit_test(test_opt_flag),
        cmocka_unit_test(test_opt_help_from_the_table),
        cmocka_unit_test(test_jsonw),
        cmocka_unit_test(test_textcache),
        cmocka_unit_test(test_textcache_threads),
    };
    return HARNESS_RUN("util", tests, NULL, NULL);
}
