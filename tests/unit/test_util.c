/* Unit tests for src/util: ids, secrets, integer parsing, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "harness.h"
#include "util/err.h"
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
    };
    return HARNESS_RUN("util", tests, NULL, NULL);
}
