/* Unit tests for src/http: route matching and the error envelope. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "harness.h"
#include "http/http.h"

static void test_match_literal_and_params(void **state)
{
    (void)state;
    char buf[256];
    const char *p[HTTP_MAX_PARAMS];
    int n = -1;
    assert_true(http_match("/v1/databases", "/v1/databases", buf, sizeof buf, p, &n));
    assert_int_equal(n, 0);
    assert_true(http_match("/v1/databases/{databaseId}/connections",
                           "/v1/databases/db_abc/connections", buf, sizeof buf, p, &n));
    assert_int_equal(n, 1);
    assert_string_equal(p[0], "db_abc");
    /* a trailing slash is tolerated */
    assert_true(http_match("/v1/databases/{id}", "/v1/databases/db_x/", buf, sizeof buf, p, &n));
    assert_string_equal(p[0], "db_x");
}

static void test_match_rejects(void **state)
{
    (void)state;
    char buf[256];
    const char *p[HTTP_MAX_PARAMS];
    int n = 0;
    assert_false(http_match("/v1/databases", "/v1/databasesx", buf, sizeof buf, p, &n));
    assert_false(http_match("/v1/databases/{id}", "/v1/databases/", buf, sizeof buf, p, &n));
    assert_false(http_match("/v1/databases/{id}", "/v1/databases/a/b", buf, sizeof buf, p, &n));
    assert_false(http_match("/v1/connections/{id}/rotate", "/v1/connections/c/rotatex", buf,
                            sizeof buf, p, &n));
    /* a parameter longer than the buffer does not match (and does not overflow) */
    char longpath[600] = "/v1/databases/";
    memset(longpath + strlen(longpath), 'a', 500);
    longpath[514] = '\0';
    assert_false(http_match("/v1/databases/{id}", longpath, buf, 64, p, &n));
}

static void test_error_envelope(void **state)
{
    (void)state;
    pf_err e;
    err_set(&e, 404, "NotFound", "databaseId", "Database %s was not found", "db_x");
    json_t *j = http_error_json(&e);
    json_t *err = json_object_get(j, "error");
    assert_non_null(err);
    assert_string_equal(json_string_value(json_object_get(err, "code")), "NotFound");
    assert_string_equal(json_string_value(json_object_get(err, "message")),
                        "Database db_x was not found");
    assert_string_equal(json_string_value(json_object_get(err, "hint")), "databaseId");
    json_decref(j);

    /* no hint: the key is absent, as the contract's optional hint */
    err_set(&e, 401, "Unauthorized", NULL, "Missing authorization token");
    j = http_error_json(&e);
    assert_null(json_object_get(json_object_get(j, "error"), "hint"));
    json_decref(j);
}

static void test_error_envelope_invalid_utf8(void **state)
{
    (void)state;
    pf_err e;
    err_set(&e, 404, "NotFound", "id", "Project %s was not found", "\xff\xfe ok \xc3\xa9");
    json_t *j = http_error_json(&e);
    const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    assert_non_null(m);
    assert_string_equal(m, "Project ?? ok \xc3\xa9 was not found");
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_literal_and_params),
        cmocka_unit_test(test_match_rejects),
        cmocka_unit_test(test_error_envelope),
        cmocka_unit_test(test_error_envelope_invalid_utf8),
    };
    return HARNESS_RUN("http", tests, NULL, NULL);
}
