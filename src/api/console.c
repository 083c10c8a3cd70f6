/* The web console (docs/console.md): GET /console, /console/<file>. Its files (web/, plain
 * HTML, CSS and ES modules) are compiled into the binary by make (scripts/embed-assets.sh);
 * nothing is read from disk or fetched elsewhere at run time. Every answer, a 404 included,
 * carries a Content-Security-Policy that allows only this origin and no inline script, and
 * refuses framing. /console, /console/ and /console/callback (the OAuth redirect of the
 * built-in client) are the one page, index.html; its script routes by the URL's hash.
 * /console/settings.json is made here: what the page needs to know of this server (how its
 * connection strings end, for the templates it shows). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"

struct console_file {
    const char *name;
    const unsigned char *bytes;
    size_t len;
};
#include "console_assets.inc"

#define CONSOLE_CSP                                                                                \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "                    \
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "                    \
    "form-action 'self'; frame-ancestors 'none'"

static const struct {
    const char *ext, *type;
} types[] = {
    {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},   {".svg", "image/svg+xml"},
    {".json", "application/json"},         {".png", "image/png"},
};

static const char *content_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

static const struct console_file *find(const char *name)
{
    for (size_t i = 0; i < sizeof console_files / sizeof console_files[0]; i++)
        if (strcmp(console_files[i].name, name) == 0)
            return &console_files[i];
    return NULL;
}

static void security_headers(http_resp *resp)
{
    http_resp_header(resp, "Content-Security-Policy", CONSOLE_CSP);
    http_resp_header(resp, "X-Frame-Options", "DENY");
    http_resp_header(resp, "X-Content-Type-Options", "nosniff");
    /* the callback's URL holds an authorization code: never sent on as a Referer */
    http_resp_header(resp, "Referrer-Policy", "no-referrer");
    http_resp_header(resp, "Cache-Control", "no-cache");
}

HANDLER(h_console)
{
    app *a = ctx;
    const char *want = req->nparams > 0 ? req->params[0] : "index.html";
    if (strcmp(want, "callback") == 0)
        want = "index.html";
    const struct console_file *f = find(want);
    security_headers(resp);
    if (strcmp(want, "settings.json") == 0) {
        resp->status = 200;
        resp->body = json_pack("{s:s}", "connectionQuery", api_conn_query(a));
        return 0;
    }
    if (!f) {
        /* answered here, not as a failed handler, so the headers above go with it */
        pf_err nf;
        err_clear(&nf);
        err_set(&nf, 404, "NotFound", "path", "The console has no file %s", want);
        resp->status = 404;
        resp->body = http_error_json(&nf);
        (void)e;
        return 0;
    }
    resp->status = 200;
    resp->raw = xmalloc(f->len ? f->len : 1);
    memcpy(resp->raw, f->bytes, f->len);
    resp->raw_len = f->len;
    resp->content_type = content_type(f->name);
    return 0;
}

int api_console_register(app *a, pf_err *e)
{
    store_oauth_client c;
    memset(&c, 0, sizeof c);
    snprintf(c.id, sizeof c.id, "%s", API_CONSOLE_CLIENT_ID);
    snprintf(c.name, sizeof c.name, "pgfleet console");
    snprintf(c.redirect_uris, sizeof c.redirect_uris, "%s/console/callback", a->base_url);
    util_now_iso(c.created_at);
    return store_oauth_client_upsert(a->st, &c, e);
}
