/* libFuzzer target: what a request's URL and body go through before a handler sees them.
 * The URL is unescaped as MHD does it for pgfleet (%00 kept), then routed against the real
 * route table; a form body (OAuth) is parsed, and every field's value must round-trip
 * through http_url_append. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "http/http.h"

static void check_route(const char *path)
{
    size_t n = 0;
    const http_route *routes = api_routes(&n);
    char buf[2048];
    for (size_t i = 0; i < n; i++) {
        const char *params[HTTP_MAX_PARAMS];
        int np = 0;
        if (!http_match(routes[i].pattern, path, buf, sizeof buf, params, &np))
            continue;
        int want = 0;
        for (const char *p = routes[i].pattern; *p; p++)
            want += *p == '{';
        if (np != want)
            abort();
        for (int k = 0; k < np; k++)
            if (!params[k][0] || strchr(params[k], '/'))
                abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    size_t len = strlen(s); /* what MHD hands over ends at the first NUL */
    size_t out = http_unescape(s);
    if (out > len || strlen(s) != out)
        abort();
    check_route(s);

    http_form *f = http_form_parse((const char *)data, size);
    if (f) {
        static const char *const keys[] = {"grant_type", "code",          "redirect_uri",
                                           "client_id",  "code_verifier", "refresh_token",
                                           "scope",      "state",         "csrf"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            const char *v = http_form_get(f, keys[i]);
            if (!v)
                continue;
            if (http_form_count(f, keys[i]) < 1)
                abort();
            char *enc = NULL;
            http_url_append(&enc, '&', keys[i], v);
            http_form *g = http_form_parse(enc, strlen(enc));
            if (!g || strcmp(http_form_get(g, keys[i]), v) != 0)
                abort();
            http_form_free(g);
            free(enc);
        }
        http_form_free(f);
    }
    free(s);
    return 0;
}
