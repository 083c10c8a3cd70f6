/* libFuzzer target: JSON request bodies. The body parser must accept exactly the objects
 * and answer anything else with 400 and a hint; the field validators of the handlers must
 * accept or refuse every value without crashing; the error envelope of any refusal must be
 * valid JSON (invalid UTF-8 echoed from the input is cleaned). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "http/http.h"

static void envelope_ok(const pf_err *e)
{
    if (e->status < 400 || e->status > 599 || !e->code[0])
        abort();
    json_t *j = http_error_json(e);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (!text)
        abort();
    json_error_t je;
    json_t *back = json_loads(text, 0, &je); /* jansson rejects invalid UTF-8 */
    if (!back)
        abort();
    json_decref(back);
    free(text);
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = malloc(size + 1);
    memcpy(body, data, size);
    body[size] = '\0';
    http_req req = {.method = "POST", .path = "/v1/projects", .body = body, .body_len = size};
    json_t *obj = NULL;
    pf_err e;
    err_clear(&e);
    if (http_json_body(&req, size % 2 == 0, &obj, &e) != 0) {
        envelope_ok(&e);
        free(body);
        return 0;
    }
    if (!json_is_object(obj))
        abort();
    static const char *const fields[] = {"name",   "region",  "projectId",   "type",
                                         "source", "gitName", "pointInTime", "databaseId"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const char *s = NULL;
        err_clear(&e);
        if (v_string(obj, fields[i], i % 2 == 0, i % 3 == 0, 255, 400, &s, &e) != 0)
            envelope_ok(&e);
        else if (s) {
            int64_t ms;
            (void)util_iso_parse(s, &ms);
        }
        int b = -1;
        err_clear(&e);
        if (v_bool(obj, fields[i], 422, &b, &e) != 0)
            envelope_ok(&e);
    }
    json_decref(obj);
    free(body);
    return 0;
}
