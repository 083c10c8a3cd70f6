/* libFuzzer target: util/jsonw. The input, cut at each 0xff byte, gives the strings of an
 * object (as keys of this program would not be: a value each) and of an array; jansson must
 * parse the text, and every string that is well-formed UTF-8 must come back as it went in. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/jsonw.h"

#define MAX_PARTS 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *parts[MAX_PARTS];
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= size && n < MAX_PARTS; i++) {
        if (i < size && data[i] != 0xff)
            continue;
        size_t len = i - start;
        parts[n] = malloc(len + 1);
        memcpy(parts[n], data + start, len);
        parts[n][len] = '\0'; /* a NUL inside ends the C string, as it would in a shape */
        n++;
        start = i + 1;
    }
    jsonw w = {0};
    jsonw_obj(&w, NULL);
    jsonw_int(&w, "n", (int64_t)size - 1);
    jsonw_arr(&w, "items");
    for (size_t i = 0; i < n; i++)
        jsonw_str(&w, NULL, parts[i]);
    jsonw_end(&w);
    jsonw_str_or_null(&w, "first", n ? parts[0] : NULL);
    jsonw_end(&w);

    json_error_t err;
    json_t *root = json_loadb(w.b.s, w.b.len, 0, &err);
    if (!root || !json_is_object(root))
        abort();
    json_t *items = json_object_get(root, "items");
    if (!json_is_array(items) || json_array_size(items) != n ||
        json_integer_value(json_object_get(root, "n")) != (json_int_t)size - 1)
        abort();
    for (size_t i = 0; i < n; i++) {
        const char *got = json_string_value(json_array_get(items, i));
        json_t *probe = json_string(parts[i]); /* NULL: not well-formed UTF-8 */
        if (!got || (probe && strcmp(got, parts[i]) != 0))
            abort();
        json_decref(probe);
        free(parts[i]);
    }
    json_decref(root);
    free(w.b.s);
    return 0;
}
