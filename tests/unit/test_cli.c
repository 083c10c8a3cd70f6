/* Unit tests for src/cli: argument parsing against the command and flag tables, durations,
 * the URL rule (https off loopback), the aligned tables and the completion scripts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_int.h"
#include "harness.h"

static const cli_cmd *find(const char *group, const char *verb)
{
    for (size_t i = 0; i < cli__ncmds; i++)
        if (strcmp(cli__cmds[i].group, group) == 0 &&
            (verb ? cli__cmds[i].verb && strcmp(cli__cmds[i].verb, verb) == 0 : !cli__cmds[i].verb))
            return &cli__cmds[i];
    return NULL;
}

static int parse(const char *group, const char *verb, cli_ctx *c, char *err, size_t n, int argc,
                 char **argv)
{
    const cli_cmd *k = find(group, verb);
    assert_non_null(k);
    memset(c, 0, sizeof *c);
    return cli__parse(k, argc, argv, c, err, n);
}

static void test_parse_flags_values_and_positionals(void **state)
{
    (void)state;
    cli_ctx c;
    char err[256];
    char *a[] = {"--project", "proj_1", "--name=x y", "--wait", "--json"};
    assert_int_equal(parse("databases", "create", &c, err, sizeof err, 5, a), 0);
    assert_string_equal(c.val[FL_PROJECT], "proj_1");
    assert_string_equal(c.val[FL_NAME], "x y");
    assert_string_equal(c.val[FL_WAIT], "");
    assert_null(c.val[FL_REGION]);
    assert_int_equal(c.npos, 0);
    free(c.pos);
    /* psql: what follows -- is psql's, dashes and all */
    char *b[] = {"db_1", "--", "-At", "-c", "select 1"};
    assert_int_equal(parse("psql", NULL, &c, err, sizeof err, 5, b), 0);
    assert_int_equal(c.npos, 4);
    assert_string_equal(c.pos[0], "db_1");
    assert_string_equal(c.pos[1], "-At");
    free(c.pos);
}

static void test_parse_usage_errors_and_help(void **state)
{
    (void)state;
    cli_ctx c;
    char err[256];
    char *unknown[] = {"--from-backup", "b"}; /* not a flag of projects create */
    assert_int_equal(parse("projects", "create", &c, err, sizeof err, 2, unknown), -1);
    assert_non_null(strstr(err, "does not take --from-backup"));
    free(c.pos);
    char *noval[] = {"--name"};
    assert_int_equal(parse("projects", "create", &c, err, sizeof err, 1, noval), -1);
    assert_non_null(strstr(err, "needs a value"));
    free(c.pos);
    char *switchval[] = {"--json=yes"};
    assert_int_equal(parse("projects", "list", &c, err, sizeof err, 1, switchval), -1);
    free(c.pos);
    assert_int_equal(parse("projects", "get", &c, err, sizeof err, 0, NULL), -1);
    assert_non_null(strstr(err, "needs PROJECT"));
    free(c.pos);
    char *two[] = {"a", "b"};
    assert_int_equal(parse("projects", "get", &c, err, sizeof err, 2, two), -1);
    assert_non_null(strstr(err, "unexpected argument 'b'"));
    free(c.pos);
    char *help[] = {"x", "--help"};
    assert_int_equal(parse("projects", "get", &c, err, sizeof err, 2, help), 1);
    free(c.pos);
    char *shortopt[] = {"-x"};
    assert_int_equal(parse("projects", "list", &c, err, sizeof err, 1, shortopt), -1);
    free(c.pos);
}

static void test_durations(void **state)
{
    (void)state;
    long s = 0;
    assert_true(cli__duration("90", &s));
    assert_int_equal(s, 90);
    assert_true(cli__duration("30m", &s));
    assert_int_equal(s, 1800);
    assert_true(cli__duration("1h", &s));
    assert_int_equal(s, 3600);
    assert_true(cli__duration("2d", &s));
    assert_int_equal(s, 172800);
    const char *bad[] = {"", "h", "1x", "-5m", "1.5h", "0", "99999999999", "3651d", "1 h"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(cli__duration(bad[i], &s));
}

static void test_url_rule(void **state)
{
    (void)state;
    char why[256];
    assert_true(cli__url_ok("https://pgfleet.example.com", why, sizeof why));
    assert_true(cli__url_ok("http://127.0.0.1:8080", why, sizeof why));
    assert_true(cli__url_ok("http://localhost:8080/", why, sizeof why));
    assert_true(cli__url_ok("http://[::1]:8080", why, sizeof why));
    assert_false(cli__url_ok("http://10.0.0.5:8080", why, sizeof why));
    assert_non_null(strstr(why, "https"));
    assert_false(cli__url_ok("http://localhost.example.com", why, sizeof why));
    assert_false(cli__url_ok("ftp://127.0.0.1", why, sizeof why));
    assert_false(cli__url_ok("not a url", why, sizeof why));
}

static void test_table_aligns_and_escapes(void **state)
{
    (void)state;
    const cli_col cols[] = {{"ID", "id"}, {"NAME", "name"}, {"REGION", "region.id"}, {"N", "n"}};
    json_t *rows = json_loads("[{\"id\":\"db_1\",\"name\":\"a\\u001b[2Jb\",\"region\":{\"id\":"
                              "\"us-east-1\"},\"n\":3},"
                              "{\"id\":\"db_22222\",\"name\":null,\"n\":true}]",
                              0, NULL);
    assert_non_null(rows);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cli__table(f, cols, 4, rows);
    fclose(f);
    assert_string_equal(buf, "ID        NAME    REGION     N\n"
                             "db_1      a?[2Jb  us-east-1  3\n"
                             "db_22222  -       -          yes\n");
    free(buf);
    json_decref(rows);
}

static void test_completion_covers_every_command(void **state)
{
    (void)state;
    const char *host[] = {"serve", "token"};
    cli_set_host_words(host, 2);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    FILE *saved = stdout;
    stdout = f;
    cli_ctx c;
    memset(&c, 0, sizeof c);
    char *argv[] = {"bash"};
    c.pos = argv;
    c.npos = 1;
    assert_int_equal(cli__completion(&c), 0);
    stdout = saved;
    fclose(f);
    for (size_t i = 0; i < cli__ncmds; i++) {
        assert_non_null(strstr(buf, cli__cmds[i].group));
        if (cli__cmds[i].verb)
            assert_non_null(strstr(buf, cli__cmds[i].verb));
    }
    assert_non_null(strstr(buf, "serve"));
    assert_non_null(strstr(buf, "--from-database"));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_flags_values_and_positionals),
        cmocka_unit_test(test_parse_usage_errors_and_help),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_url_rule),
        cmocka_unit_test(test_table_aligns_and_escapes),
        cmocka_unit_test(test_completion_covers_every_command),
    };
    return HARNESS_RUN("cli", tests, NULL, NULL);
}
