/* Unit tests for the pure parts of backups: the pgBackRest configuration text, the
 * archive_command written into postgresql.conf (quoting), the parsing of
 * `pgbackrest info --output=json`, and the API's ISO-8601 times for point-in-time restore. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "api/internal.h"
#include "engine/engine_int.h"
#include "ops/ops.h"
#include "util/proc.h"
#include "util/util.h"

static void test_conf_text(void **state)
{
    (void)state;
    char *t = engine__pgbr_conf_text("/h/backup", "/h/pgbackrest", 7, 2);
    assert_non_null(strstr(t, "[global]\nrepo1-path=/h/backup\n"));
    assert_non_null(strstr(t, "repo1-retention-full-type=time\nrepo1-retention-full=7\n"));
    assert_non_null(strstr(t, "lock-path=/h/pgbackrest/lock\n"));
    assert_non_null(strstr(t, "process-max=2\n"));
    assert_non_null(strstr(t, "start-fast=y\n"));
    assert_non_null(strstr(t, "[global:archive-push]\n"));
    free(t);
}

/* A fake engine with just the paths engine__archive_conf reads. */
static void fake_engine(engine *en, const char *home)
{
    memset(en, 0, sizeof *en);
    en->instances_dir = xasprintf("%s/instances", home);
    en->pgbr = xstrdup("/usr/bin/pgbackrest");
    en->pgbr_conf = xasprintf("%s/pgbackrest/pgbackrest.conf", home);
}

static void free_engine(engine *en)
{
    free(en->instances_dir);
    free(en->pgbr);
    free(en->pgbr_conf);
}

static void test_archive_conf(void **state)
{
    (void)state;
    engine en;
    fake_engine(&en, "/srv/pg fleet's");
    char *c = engine__archive_conf(&en, "/srv/pg fleet's/instances/db_abc/data");
    /* shell quotes for /bin/sh ('\'' for the quote), then doubled for postgresql.conf */
    assert_string_equal(c, "archive_mode = on\n"
                           "archive_command = '''/usr/bin/pgbackrest'' "
                           "''--config=/srv/pg fleet''\\''''s/pgbackrest/pgbackrest.conf'' "
                           "''--stanza=db_abc'' "
                           "''--pg1-path=/srv/pg fleet''\\''''s/instances/db_abc/data'' "
                           "archive-push %p'\n"
                           "archive_timeout = 60\n");
    free(c);
    c = engine__archive_conf(&en, "/srv/pg fleet's/instances/db_abc/data.restore");
    assert_non_null(strstr(c, "--stanza=db_abc"));
    free(c);
    /* the golden copy, spares and anything else: no archiving */
    const char *off[] = {"/srv/pg fleet's/golden.tmp", "/srv/pg fleet's/instances/db_abc/other",
                         "/srv/pg fleet's/instances/db_abc", "/elsewhere/instances/db_abc/data",
                         "/srv/pg fleet's/instances/db;x/data"};
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
        c = engine__archive_conf(&en, off[i]);
        assert_string_equal(c, "archive_mode = off\n");
        free(c);
    }
    free_engine(&en);
}

static void test_parse_info(void **state)
{
    (void)state;
    const char *json =
        "[{\"archive\":[],\"backup\":["
        "{\"label\":\"20261127-212142F\",\"type\":\"full\",\"error\":false,"
        "\"info\":{\"delta\":23213890,\"repository\":{\"delta\":4549077,\"size\":4549077},"
        "\"size\":23213890},\"timestamp\":{\"start\":1795814502,\"stop\":1795814503}},"
        "{\"label\":\"20261127-212142F_20261127-220000I\",\"type\":\"incr\","
        "\"info\":{\"repository\":{\"delta\":1000}},"
        "\"timestamp\":{\"start\":1795817000,\"stop\":1795817001}},"
        "{\"label\":\"20261127-212142F_20261127-230000D\",\"type\":\"diff\","
        "\"timestamp\":{\"start\":1795820000,\"stop\":1795820002}},"
        "{\"type\":\"full\"}],"
        "\"name\":\"db_abc\",\"status\":{\"code\":0,\"message\":\"ok\"}}]";
    engine_backup *b = NULL;
    size_t n = 0;
    pf_err e;
    assert_int_equal(engine_backup_parse_info(json, &b, &n, &e), 0);
    assert_int_equal(n, 3); /* the entry without a label is skipped */
    assert_string_equal(b[0].label, "20261127-212142F");
    assert_int_equal(b[0].type, ENGINE_BACKUP_FULL);
    assert_int_equal(b[0].size, 4549077);
    assert_int_equal(b[0].start, 1795814502);
    assert_int_equal(b[0].stop, 1795814503);
    assert_int_equal(b[1].type, ENGINE_BACKUP_INCR);
    assert_int_equal(b[2].type, ENGINE_BACKUP_DIFF);
    assert_int_equal(b[2].size, -1);
    free(b);
    /* a stanza with no backup yet, and junk */
    assert_int_equal(engine_backup_parse_info("[{\"name\":\"db_x\",\"backup\":[]}]", &b, &n, &e),
                     0);
    assert_int_equal(n, 0);
    free(b);
    assert_int_equal(engine_backup_parse_info("not json", &b, &n, &e), -1);
    assert_int_equal(engine_backup_parse_info("{}", &b, &n, &e), -1);
}

/* One configuration-value quoting for postgresql.conf; a full disk is a passing condition. */
static void test_conf_quote_and_disk_full(void **state)
{
    (void)state;
    char *q = engine__conf_quote("it's");
    assert_string_equal(q, "'it''s'");
    free(q);
    q = engine__conf_quote("");
    assert_string_equal(q, "''");
    free(q);
    pf_err e;
    err_internal(&e, "write /h/x: No space left on device");
    engine__disk_full_is_transient(&e);
    assert_int_equal(e.kind, ERR_TRANSIENT);
    assert_true(err_retryable(&e));
    err_internal(&e, "write /h/x: Permission denied");
    engine__disk_full_is_transient(&e);
    assert_int_equal(e.kind, ERR_INTERNAL);
    err_kind(&e, ERR_INVALID, NULL, "No space left on device"); /* only internal errors */
    engine__disk_full_is_transient(&e);
    assert_int_equal(e.kind, ERR_INVALID);
}

static void test_time_parse(void **state)
{
    (void)state;
    int64_t ms = 0;
    assert_true(util_iso_parse("2026-11-27T21:21:42.123Z", &ms));
    assert_int_equal(ms, 1795814502123LL);
    assert_true(util_iso_parse("2026-11-27T22:21:42.123+01:00", &ms));
    assert_int_equal(ms, 1795814502123LL);
    assert_true(util_iso_parse("2026-11-27T21:21:42Z", &ms));
    assert_int_equal(ms, 1795814502000LL);
    assert_true(util_iso_parse("2026-11-27T21:21:42.1234567Z", &ms));
    assert_int_equal(ms, 1795814502123LL);
    char out[32];
    api_time_format_pg(1795814502123LL, out);
    assert_string_equal(out, "2026-11-27 21:21:42.123+00");
    const char *bad[] = {"",
                         "yesterday",
                         "2026-11-27",
                         "2026-11-27T21:21:42",         /* no zone */
                         "2026-02-31T00:00:00Z",        /* no such day */
                         "2026-13-01T00:00:00Z",        /* no such month */
                         "2026-11-27T21:21:42.Z",       /* empty fraction */
                         "2026-11-27T21:21:42Z; rm -f", /* trailing junk */
                         "2026-11-27T25:00:00Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(util_iso_parse(bad[i], &ms));
    assert_false(util_iso_parse(NULL, &ms));
}

/* After a restore only the new timeline's history and its complete segments get .ready:
 * not the segment being written (an incomplete copy in the archive makes the full one fail
 * with error 45 and stalls the archiver), not the old segments recycled under later names,
 * not the old timeline's files. */
/* The schedule's ladder: full, else differential, else incremental. */
static void test_scheduled_type(void **state)
{
    (void)state;
    ops_config c = {.backup_full_interval_s = 7 * 86400, .backup_diff_interval_s = 86400};
    int64_t now = 1800000000;
    assert_int_equal(ops_scheduled_type(&c, now, -1, -1), BACKUP_FULL);
    assert_int_equal(ops_scheduled_type(&c, now, now - 7 * 86400, now - 3600), BACKUP_FULL);
    assert_int_equal(ops_scheduled_type(&c, now, now - 86400, now - 86400), BACKUP_DIFF);
    assert_int_equal(ops_scheduled_type(&c, now, now - 3 * 86400, now - 90000), BACKUP_DIFF);
    assert_int_equal(ops_scheduled_type(&c, now, now - 3 * 86400, now - 3600), BACKUP_INCR);
    assert_int_equal(ops_scheduled_type(&c, now, now - 60, now - 60), BACKUP_INCR);
    /* no differential interval: never incremental */
    c.backup_diff_interval_s = 0;
    assert_int_equal(ops_scheduled_type(&c, now, now - 60, now - 60), BACKUP_DIFF);
}

static void test_mark_new_timeline(void **state)
{
    (void)state;
    char dir[HARNESS_PATH_MAX];
    assert_int_equal(harness_home_make(dir, "test-backup"), 0);
    engine en;
    memset(&en, 0, sizeof en);
    pf_err e;
    char *st = xasprintf("%s/pg_wal/archive_status", dir);
    assert_int_equal(fs_mkdirs(st, 0700, NULL, &e), 0);
    const char *files[] = {
        "00000003.history",
        "00000004.history",
        "000000030000000000000004", /* old timeline */
        "000000030000000000000005.partial",
        "000000040000000000000005", /* complete, new timeline */
        "000000040000000000000006", /* complete, already archived (.done below) */
        "000000040000000000000007", /* being written */
        "000000040000000000000008", /* recycled */
        "00000004000000000000000A", /* recycled */
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *f = xasprintf("%s/pg_wal/%s", dir, files[i]);
        assert_int_equal(fs_write_atomic(f, "x", 1, 0600, NULL, &e), 0);
        free(f);
    }
    char *done = xasprintf("%s/000000040000000000000006.done", st);
    assert_int_equal(fs_write_atomic(done, "", 0, 0600, NULL, &e), 0);
    free(done);

    assert_int_equal(engine__mark_new_timeline(&en, dir, "000000040000000000000007", &e), 0);
    const char *ready[] = {"00000004.history", "000000040000000000000005"};
    const char *not_ready[] = {
        "00000003.history",         "000000030000000000000004", "000000030000000000000005.partial",
        "000000040000000000000006", "000000040000000000000007", "000000040000000000000008",
        "00000004000000000000000A"};
    for (size_t i = 0; i < sizeof ready / sizeof ready[0]; i++) {
        char *f = xasprintf("%s/%s.ready", st, ready[i]);
        assert_true(fs_exists(f));
        free(f);
    }
    for (size_t i = 0; i < sizeof not_ready / sizeof not_ready[0]; i++) {
        char *f = xasprintf("%s/%s.ready", st, not_ready[i]);
        if (fs_exists(f))
            fail_msg("%s marked for archiving", not_ready[i]);
        free(f);
    }
    assert_int_equal(engine__mark_new_timeline(&en, dir, "junk", &e), -1);
    free(st);
    assert_int_equal(harness_home_remove(dir), 0);
}

/* postgresql.conf preloads pgfleet's module and carries the CREATE DATABASE limit; a file
 * that does not preload it (written by an older pgfleet) is told apart, so its running
 * server is restarted on adoption; the module must be installed beside PostgreSQL's. */
static void test_conf_limit_and_preloads(void **state)
{
    (void)state;
    char dir[HARNESS_PATH_MAX];
    assert_int_equal(harness_home_make(dir, "test-conf"), 0);
    engine en;
    fake_engine(&en, dir);
    en.databases_per_server = 5;
    en.extensions = xstrdup("citext");
    char *data = xasprintf("%s/instances/db_x/data", dir);
    char *conf = xasprintf("%s/postgresql.conf", data);
    pf_err e;
    assert_int_equal(fs_mkdirs(data, 0700, NULL, &e), 0);
    assert_false(engine__conf_preloads_current(data)); /* no file */
    assert_int_equal(engine__write_conf(&en, data, dir, "", 5432, "archive_mode = off\n", &e), 0);
    char *t = fs_read_file(conf, NULL);
    assert_non_null(
        strstr(t, "\nshared_preload_libraries = 'pg_stat_statements,pgfleet_limits'\n"));
    assert_non_null(strstr(t, "\npgfleet_limits.databases_per_server = 5\n"));
    assert_true(engine__conf_preloads_current(data));
    free(t);
    const char *old = "max_connections = 120\nshared_preload_libraries = 'pg_stat_statements'\n";
    assert_int_equal(fs_write_atomic(conf, old, strlen(old), 0600, NULL, &e), 0);
    assert_false(engine__conf_preloads_current(data));

    en.bindir = xasprintf("%s/pg/bin", dir);
    assert_int_equal(engine__module_check(&en, &e), -1);
    assert_int_equal(e.kind, ERR_INVALID);
    assert_non_null(strstr(e.message, "/pg/lib/pgfleet_limits.so"));
    char *lib = xasprintf("%s/pg/lib", dir), *so = xasprintf("%s/pgfleet_limits.so", lib);
    assert_int_equal(fs_mkdirs(lib, 0700, NULL, &e), 0);
    assert_int_equal(fs_write_atomic(so, "", 0, 0600, NULL, &e), 0);
    assert_int_equal(engine__module_check(&en, &e), 0);
    free(lib);
    free(so);
    free(en.bindir);
    free(en.extensions);
    free(data);
    free(conf);
    free_engine(&en);
    assert_int_equal(harness_home_remove(dir), 0);
}

int main(void)
{
    util_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conf_text),
        cmocka_unit_test(test_archive_conf),
        cmocka_unit_test(test_conf_quote_and_disk_full),
        cmocka_unit_test(test_conf_limit_and_preloads),
        cmocka_unit_test(test_parse_info),
        cmocka_unit_test(test_time_parse),
        cmocka_unit_test(test_mark_new_timeline),
        cmocka_unit_test(test_scheduled_type),
    };
    return HARNESS_RUN("backup", tests, NULL, NULL);
}
