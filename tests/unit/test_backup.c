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

#include "api/internal.h"
#include "engine/engine_int.h"
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

static void test_time_parse(void **state)
{
    (void)state;
    int64_t ms = 0;
    assert_true(api_time_parse("2026-11-27T21:21:42.123Z", &ms));
    assert_int_equal(ms, 1795814502123LL);
    assert_true(api_time_parse("2026-11-27T22:21:42.123+01:00", &ms));
    assert_int_equal(ms, 1795814502123LL);
    assert_true(api_time_parse("2026-11-27T21:21:42Z", &ms));
    assert_int_equal(ms, 1795814502000LL);
    assert_true(api_time_parse("2026-11-27T21:21:42.1234567Z", &ms));
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
        assert_false(api_time_parse(bad[i], &ms));
    assert_false(api_time_parse(NULL, &ms));
}

int main(void)
{
    util_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conf_text),
        cmocka_unit_test(test_archive_conf),
        cmocka_unit_test(test_parse_info),
        cmocka_unit_test(test_time_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
