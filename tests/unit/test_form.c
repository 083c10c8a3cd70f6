/* Unit tests for src/http/form.c: form bodies and URL building. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "http/http.h"

static void test_parse_decodes_plus_and_percent(void **state)
{
    (void)state;
    const char *b = "grant_type=authorization_code&redirect_uri=http%3A%2F%2Flocalhost%3A9%2Fcb"
                    "&name=a+b%20c&empty=&flag";
    http_form *f = http_form_parse(b, strlen(b));
    assert_non_null(f);
    assert_string_equal(http_form_get(f, "grant_type"), "authorization_code");
    assert_string_equal(http_form_get(f, "redirect_uri"), "http://localhost:9/cb");
    assert_string_equal(http_form_get(f, "name"), "a b c");
    assert_string_equal(http_form_get(f, "empty"), "");
    assert_string_equal(http_form_get(f, "flag"), "");
    assert_null(http_form_get(f, "missing"));
    assert_int_equal(http_form_count(f, "name"), 1);
    http_form_free(f);
}

static void test_parse_counts_repeats_and_skips_empty_pairs(void **state)
{
    (void)state;
    const char *b = "a=1&&a=2&b=%7e";
    http_form *f = http_form_parse(b, strlen(b));
    assert_non_null(f);
    assert_int_equal(http_form_count(f, "a"), 2);
    assert_string_equal(http_form_get(f, "a"), "1");
    assert_string_equal(http_form_get(f, "b"), "~");
    http_form_free(f);
}

static void test_parse_rejects_bad_escapes_and_nul(void **state)
{
    (void)state;
    const char *bad[] = {"a=%", "a=%4", "a=%zz", "a=%00", "%=1", "a=1&b=%g1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_null(http_form_parse(bad[i], strlen(bad[i])));
    /* the length bounds the parse: a trailing escape cut by len is malformed */
    assert_null(http_form_parse("a=%41", 4));
    http_form *f = http_form_parse("a=%41", 5);
    assert_string_equal(http_form_get(f, "a"), "A");
    http_form_free(f);
    f = http_form_parse(NULL, 0);
    assert_non_null(f);
    assert_null(http_form_get(f, "a"));
    http_form_free(f);
}

static void test_parse_caps_field_count(void **state)
{
    (void)state;
    char *b = NULL;
    for (int i = 0; i < 65; i++)
        http_url_append(&b, '&', "k", "v");
    assert_null(http_form_parse(b, strlen(b)));
    b[strlen(b) - 4] = '\0'; /* 64 fields */
    http_form *f = http_form_parse(b, strlen(b));
    assert_non_null(f);
    assert_int_equal(http_form_count(f, "k"), 64);
    http_form_free(f);
    free(b);
}

static void test_url_append_encodes_and_round_trips(void **state)
{
    (void)state;
    char *s = NULL;
    http_url_append(&s, '&', "code", "abc");
    http_url_append(&s, '&', "state", "x y&z=/?é");
    assert_string_equal(s, "code=abc&state=x%20y%26z%3D%2F%3F%C3%A9");
    http_form *f = http_form_parse(s, strlen(s));
    assert_string_equal(http_form_get(f, "state"), "x y&z=/?é");
    http_form_free(f);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_decodes_plus_and_percent),
        cmocka_unit_test(test_parse_counts_repeats_and_skips_empty_pairs),
        cmocka_unit_test(test_parse_rejects_bad_escapes_and_nul),
        cmocka_unit_test(test_parse_caps_field_count),
        cmocka_unit_test(test_url_append_encodes_and_round_trips),
    };
    return HARNESS_RUN("form", tests, NULL, NULL);
}
