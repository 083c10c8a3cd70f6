/* Input validation of request bodies, path ids and paging: every failure names the field
 * in the hint. */
#include <stdio.h>
#include <string.h>

#include "api/internal.h"

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

int v_string(json_t *body, const char *field, bool required, bool allow_null, size_t maxlen,
             int status, const char **out, pf_err *e)
{
    *out = NULL;
    json_t *v = json_object_get(body, field);
    if (!v || (json_is_null(v) && allow_null)) {
        if (required)
            return err_set(e, status, "ValidationError", field, "The field '%s' is required",
                           field);
        return 0;
    }
    if (!json_is_string(v))
        return err_set(e, status, "ValidationError", field,
                       "The field '%s' must be a string, not %s", field, json_type_name(v));
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (strlen(s) != n)
        return err_set(e, status, "ValidationError", field,
                       "The field '%s' must not contain NUL characters", field);
    if (n == 0)
        return err_set(e, status, "ValidationError", field, "The field '%s' must not be empty",
                       field);
    if (n > maxlen)
        return err_set(e, status, "ValidationError", field,
                       "The field '%s' is %zu characters long; at most %zu are allowed", field, n,
                       maxlen);
    *out = s;
    return 0;
}

int v_bool(json_t *body, const char *field, int status, int *out, pf_err *e)
{
    *out = -1;
    json_t *v = json_object_get(body, field);
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return err_set(e, status, "ValidationError", field,
                       "The field '%s' must be a boolean, not %s", field, json_type_name(v));
    *out = json_is_true(v) ? 1 : 0;
    return 0;
}

int v_path_id(const char *prefix, const char *id, const char *what, const char *hint, pf_err *e)
{
    if (util_id_valid(prefix, id))
        return 0;
    return err_set(e, 404, "NotFound", hint, "%s %s was not found", what, id ? id : "");
}

int v_page(http_req *req, store_page *pg, pf_err *e)
{
    pg->limit = 100;
    pg->cursor = NULL;
    const char *lim = http_query(req, "limit");
    if (lim) {
        long v = 0;
        if (!util_parse_int(lim, 1, 100, &v))
            return err_set(e, 400, "ValidationError", "limit",
                           "The query parameter 'limit' must be an integer from 1 to 100");
        pg->limit = (int)v;
    }
    const char *cur = http_query(req, "cursor");
    if (cur && *cur)
        pg->cursor = cur;
    return 0;
}

int v_422(int rc, pf_err *e)
{
    if (rc != 0 && e && e->status == 400)
        e->status = 422;
    return rc;
}
