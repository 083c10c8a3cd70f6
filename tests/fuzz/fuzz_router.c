/* libFuzzer target: the router. The first byte picks a pattern of the real route table
 * (or a made-up one from the input); the rest is the path. A match must give exactly one
 * non-empty, slash-free parameter per {placeholder}, and the matched path must be rebuilt
 * from the pattern and the parameters. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "http/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t n = 0;
    const http_route *routes = api_routes(&n);
    char *path = malloc(size);
    memcpy(path, data + 1, size - 1);
    path[size - 1] = '\0';
    const char *pattern = routes[data[0] % n].pattern;
    char buf[4096];
    const char *params[HTTP_MAX_PARAMS];
    int np = 0;
    if (http_match(pattern, path, buf, sizeof buf, params, &np)) {
        /* rebuild: pattern text with each {x} replaced by its parameter */
        char rebuilt[8192];
        size_t w = 0;
        int k = 0;
        for (const char *p = pattern; *p && w < sizeof rebuilt - 1;) {
            if (*p == '{') {
                if (k >= np || !params[k][0] || strchr(params[k], '/'))
                    abort();
                w += (size_t)snprintf(rebuilt + w, sizeof rebuilt - w, "%s", params[k++]);
                p = strchr(p, '}') + 1;
            } else {
                rebuilt[w++] = *p++;
            }
        }
        rebuilt[w < sizeof rebuilt ? w : sizeof rebuilt - 1] = '\0';
        if (k != np)
            abort();
        /* the router may ignore one trailing slash; nothing else may differ */
        size_t pl = strlen(path);
        if (strcmp(rebuilt, path) != 0 &&
            !(pl > 0 && path[pl - 1] == '/' && strncmp(rebuilt, path, pl - 1) == 0 &&
              strlen(rebuilt) == pl - 1))
            abort();
    }
    free(path);
    return 0;
}
