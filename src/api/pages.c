/* api: the HTML side of the authorization server. GET /authorize checks the request,
 * then shows the sign-in page (POST /login) or, once signed in, the consent page
 * (POST /authorize), which redirects to the client with a code.
 *
 * Plain server-rendered HTML, no JavaScript. Every form carries a CSRF token: an HMAC of
 * a random nonce kept in the pgfleet_csrf cookie. The sign-in session is a cookie holding
 * "<user id>.<expiry>.<HMAC>" (keys/session.key); nothing about it is stored. Pages are
 * sent with a CSP that allows no scripts and with frame-ancestors 'none' (no clickjacking
 * of the consent button). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/oauth_int.h"

#define COOKIE_SESSION "pgfleet_session"
#define COOKIE_CSRF "pgfleet_csrf"
#define NONCE_LEN 32

/* ---- HTML text ---- */

/* Appends s with HTML's five special characters escaped (text and attribute values). */
static void html_esc(util_buf *b, const char *s)
{
    for (const char *p = s ? s : ""; *p; p++) {
        switch (*p) {
        case '&':
            util_buf_puts(b, "&amp;");
            break;
        case '<':
            util_buf_puts(b, "&lt;");
            break;
        case '>':
            util_buf_puts(b, "&gt;");
            break;
        case '"':
            util_buf_puts(b, "&quot;");
            break;
        case '\'':
            util_buf_puts(b, "&#39;");
            break;
        default:
            util_buf_add(b, p, 1);
        }
    }
}

/* ---- the authorization request ---- */

typedef struct authz {
    const char *response_type, *client_id, *redirect_uri, *scope, *state, *code_challenge,
        *code_challenge_method;
    store_oauth_client client;
    char scope_norm[STORE_SCOPE_MAX];
} authz;

static const char *const authz_names[] = {
    "response_type", "client_id",      "redirect_uri",         "scope",
    "state",         "code_challenge", "code_challenge_method"};
#define AUTHZ_N (sizeof authz_names / sizeof authz_names[0])

static const char **authz_field(authz *z, size_t i)
{
    const char **f[] = {&z->response_type, &z->client_id,      &z->redirect_uri,         &z->scope,
                        &z->state,         &z->code_challenge, &z->code_challenge_method};
    return f[i];
}

static void authz_from_query(http_req *req, authz *z)
{
    memset(z, 0, sizeof *z);
    for (size_t i = 0; i < AUTHZ_N; i++)
        *authz_field(z, i) = http_query(req, authz_names[i]);
}

static void authz_from_form(const http_form *f, authz *z)
{
    memset(z, 0, sizeof *z);
    for (size_t i = 0; i < AUTHZ_N; i++)
        *authz_field(z, i) = http_form_get(f, authz_names[i]);
}

/* ---- responses ---- */

static const char page_css[] =
    ":root{--ink:#0f172a;--muted:#64748b;--line:#e2e8f0;--brand:#2563eb;--brand-ink:#fff;"
    "--bg:#f1f5f9;--card:#fff;--danger:#b91c1c}"
    "*{box-sizing:border-box}"
    "body{margin:0;min-height:100vh;display:flex;flex-direction:column;align-items:center;"
    "justify-content:center;background:radial-gradient(circle at 20% 0%,#dbeafe 0,#f1f5f9 45%,"
    "#eef2ff 100%);font:15px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,"
    "sans-serif;color:var(--ink);padding:24px}"
    ".card{width:100%;max-width:420px;background:var(--card);border:1px solid var(--line);"
    "border-radius:16px;box-shadow:0 20px 45px -20px rgba(15,23,42,.25);padding:32px}"
    ".brand{display:flex;align-items:center;gap:10px;font-weight:700;font-size:18px;"
    "letter-spacing:-.01em;margin-bottom:24px}"
    ".brand svg{width:32px;height:32px}"
    "h1{font-size:22px;line-height:1.3;margin:0 0 6px;letter-spacing:-.02em}"
    "p.sub{color:var(--muted);margin:0 0 24px}"
    "label{display:block;font-weight:600;font-size:13px;margin:16px 0 6px}"
    "input[type=email],input[type=password],select{width:100%;padding:10px 12px;"
    "border:1px solid #cbd5e1;border-radius:10px;font:inherit;background:#fff}"
    "input:focus,select:focus{outline:2px solid #93c5fd;border-color:var(--brand)}"
    ".btn{display:inline-block;border:0;border-radius:10px;padding:11px 16px;font:inherit;"
    "font-weight:600;cursor:pointer;text-align:center}"
    ".btn-primary{background:var(--brand);color:var(--brand-ink);width:100%;margin-top:24px}"
    ".btn-primary:hover{background:#1d4ed8}"
    ".row{display:flex;gap:12px;margin-top:24px}.row .btn{flex:1;margin:0}"
    ".btn-secondary{background:#fff;color:var(--ink);border:1px solid #cbd5e1}"
    ".btn-secondary:hover{background:#f8fafc}"
    ".alert{background:#fef2f2;border:1px solid #fecaca;color:var(--danger);border-radius:10px;"
    "padding:10px 12px;margin:0 0 16px;font-size:14px}"
    "ul.scopes{list-style:none;padding:0;margin:16px 0 0;border:1px solid var(--line);"
    "border-radius:12px}"
    "ul.scopes li{padding:12px 14px;border-top:1px solid var(--line)}"
    "ul.scopes li:first-child{border-top:0}"
    "ul.scopes b{display:block;font-size:14px}ul.scopes span{color:var(--muted);font-size:13px}"
    "code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f1f5f9;"
    "padding:1px 5px;border-radius:6px}"
    ".who{display:flex;align-items:center;gap:10px;background:#f8fafc;border:1px solid "
    "var(--line);border-radius:12px;padding:10px 12px;font-size:14px}"
    ".avatar{width:28px;height:28px;border-radius:50%;background:#dbeafe;color:#1e40af;"
    "display:flex;align-items:center;justify-content:center;font-weight:700;font-size:13px}"
    ".fine{color:var(--muted);font-size:12px;margin-top:16px}"
    "footer{color:var(--muted);font-size:12px;margin-top:20px}";

static const char logo_svg[] =
    "<svg viewBox=\"0 0 32 32\" aria-hidden=\"true\"><rect width=\"32\" height=\"32\" rx=\"8\" "
    "fill=\"#2563eb\"/><ellipse cx=\"16\" cy=\"10\" rx=\"8\" ry=\"3\" fill=\"#fff\"/><path "
    "d=\"M8 10v12c0 1.7 3.6 3 8 3s8-1.3 8-3V10\" fill=\"none\" stroke=\"#fff\" "
    "stroke-width=\"2\"/><path d=\"M8 16c0 1.7 3.6 3 8 3s8-1.3 8-3\" fill=\"none\" "
    "stroke=\"#fff\" stroke-width=\"2\"/></svg>";

static void secure_headers(http_resp *resp)
{
    http_resp_header(resp, "Cache-Control", "no-store");
    http_resp_header(resp, "X-Frame-Options", "DENY");
    http_resp_header(resp, "X-Content-Type-Options", "nosniff");
    http_resp_header(resp, "Referrer-Policy", "no-referrer");
    http_resp_header(resp, "Content-Security-Policy",
                     "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
                     "base-uri 'none'");
}

/* Wraps body in the page chrome and sets resp (status, HTML, headers). */
static int page(http_resp *resp, int status, const char *title, util_buf *body)
{
    util_buf b = {0};
    util_buf_puts(&b, "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                      "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
                      "<title>");
    html_esc(&b, title);
    util_buf_puts(&b, " · pgfleet</title><style>");
    util_buf_puts(&b, page_css);
    util_buf_puts(&b, "</style></head><body><main class=\"card\"><div class=\"brand\">");
    util_buf_puts(&b, logo_svg);
    util_buf_puts(&b, "<span>pgfleet</span></div>");
    util_buf_add(&b, body->s ? body->s : "", body->len);
    util_buf_puts(&b, "</main><footer>pgfleet · self-hosted PostgreSQL</footer></body></html>");
    util_buf_free(body);
    resp->status = status;
    resp->raw_len = b.len;
    resp->raw = util_buf_take(&b);
    resp->content_type = "text/html; charset=utf-8";
    secure_headers(resp);
    return 0;
}

static int error_page(http_resp *resp, int status, const char *title, const char *msg)
{
    util_buf b = {0};
    util_buf_puts(&b, "<h1>");
    html_esc(&b, title);
    util_buf_puts(&b, "</h1><p class=\"sub\">");
    html_esc(&b, msg);
    util_buf_puts(&b,
                  "</p><p class=\"fine\">Go back to the application and start signing in again. "
                  "If this keeps happening, tell the application's developer.</p>");
    return page(resp, status, title, &b);
}

static void set_cookie(app *a, http_resp *resp, const char *name, const char *value, int max_age)
{
    bool secure = strncmp(a->base_url, "https://", 8) == 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s=%s; Path=/; HttpOnly; SameSite=Lax; Max-Age=%d%s", name, value,
             max_age, secure ? "; Secure" : "");
    http_resp_header(resp, "Set-Cookie", buf);
}

/* Redirects to the client (302 after GET, 303 after POST) with extra query parameters. */
static int redirect_client(http_req *req, http_resp *resp, const char *uri, const char *query)
{
    char *loc = xasprintf("%s%c%s", uri, strchr(uri, '?') ? '&' : '?', query);
    resp->status = strcmp(req->method, "POST") == 0 ? 303 : 302;
    http_resp_header(resp, "Location", loc);
    http_resp_header(resp, "Cache-Control", "no-store");
    http_resp_header(resp, "Referrer-Policy", "no-referrer");
    free(loc);
    return 0;
}

static int redirect_error(http_req *req, http_resp *resp, const authz *z, const char *code,
                          const char *desc)
{
    char *q = NULL;
    http_url_append(&q, '&', "error", code);
    http_url_append(&q, '&', "error_description", desc);
    if (z->state)
        http_url_append(&q, '&', "state", z->state);
    redirect_client(req, resp, z->redirect_uri, q);
    free(q);
    return 0;
}

/* Checks the authorization request. 0: valid (z->client and z->scope_norm filled); 1: resp
 * holds the answer (an error page when the client or redirect URI cannot be trusted, else
 * a redirect carrying error and error_description). */
static int authz_check(app *a, http_req *req, http_resp *resp, authz *z)
{
    pf_err le;
    if (!a->keys) {
        error_page(resp, 404, "OAuth is not enabled", "This server has no OAuth keys.");
        return 1;
    }
    if (!z->client_id || !*z->client_id) {
        error_page(resp, 400, "Invalid request", "client_id is missing.");
        return 1;
    }
    if (store_oauth_client_get(a->st, z->client_id, &z->client, &le) != 0) {
        error_page(resp, 400, "Unknown application",
                   "No application with this client_id is registered.");
        return 1;
    }
    if (!z->redirect_uri || !auth_redirect_registered(&z->client, z->redirect_uri)) {
        error_page(resp, 400, "Invalid redirect URI",
                   "The redirect_uri does not match one registered for this application.");
        return 1;
    }
    if (!z->response_type || strcmp(z->response_type, "code") != 0) {
        redirect_error(req, resp, z, "unsupported_response_type", "response_type must be code");
        return 1;
    }
    if (!z->code_challenge || !z->code_challenge_method ||
        strcmp(z->code_challenge_method, "S256") != 0) {
        redirect_error(req, resp, z, "invalid_request",
                       "PKCE is required: send code_challenge with "
                       "code_challenge_method=S256");
        return 1;
    }
    size_t cl = strlen(z->code_challenge);
    unsigned char tmp[40];
    size_t tl = 0;
    if (cl != 43 || auth_b64url_decode(z->code_challenge, cl, tmp, sizeof tmp, &tl) != 0 ||
        tl != 32) {
        redirect_error(req, resp, z, "invalid_request",
                       "code_challenge must be the base64url SHA-256 of the verifier");
        return 1;
    }
    if (z->state && strlen(z->state) > 1024) {
        redirect_error(req, resp, z, "invalid_request", "state is too long");
        return 1;
    }
    if (auth_scope_normalize(z->scope, z->scope_norm) != 0) {
        redirect_error(req, resp, z, "invalid_scope",
                       "Supported scopes: workspace:admin offline_access");
        return 1;
    }
    return 0;
}

static void hidden(util_buf *b, const char *name, const char *value)
{
    if (!value)
        return;
    util_buf_puts(b, "<input type=\"hidden\" name=\"");
    html_esc(b, name);
    util_buf_puts(b, "\" value=\"");
    html_esc(b, value);
    util_buf_puts(b, "\">");
}

/* The error above a form, if any. */
static void alert(util_buf *b, const char *error)
{
    if (!error)
        return;
    util_buf_puts(b, "<div class=\"alert\" role=\"alert\">");
    html_esc(b, error);
    util_buf_puts(b, "</div>");
}

static void authz_hidden(util_buf *b, authz *z)
{
    for (size_t i = 0; i < AUTHZ_N; i++)
        hidden(b, authz_names[i], *authz_field(z, i));
}

/* ---- CSRF and session ---- */

static void mac_b64(app *a, const char *msg, char out[64])
{
    unsigned char mac[crypto_auth_BYTES];
    crypto_auth(mac, (const unsigned char *)msg, strlen(msg), a->keys->mac_key);
    auth_b64url(mac, sizeof mac, out, 64);
}

/* mac_b64 of msg, which it frees (an xasprintf result). */
static void mac_of(app *a, char *msg, char out[64])
{
    mac_b64(a, msg, out);
    free(msg);
}

/* Whether got is the MAC `want`, compared in constant time. */
static bool mac_equal(const char *got, const char *want)
{
    size_t wl = strlen(want);
    return strlen(got) == wl && sodium_memcmp(got, want, wl) == 0;
}

static bool nonce_ok(const char *n)
{
    if (!n || strlen(n) != NONCE_LEN)
        return false;
    for (const char *p = n; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
            return false;
    return true;
}

/* The form token for this browser, setting the nonce cookie when there is none yet. */
static void csrf_token(app *a, http_req *req, http_resp *resp, char out[64])
{
    const char *n = http_cookie(req, COOKIE_CSRF);
    char fresh[NONCE_LEN + 1];
    if (!nonce_ok(n)) {
        util_secret(fresh, NONCE_LEN);
        set_cookie(a, resp, COOKIE_CSRF, fresh, OAUTH_SESSION_TTL_S);
        n = fresh;
    }
    mac_of(a, xasprintf("csrf|%s", n), out);
}

static bool csrf_check(app *a, http_req *req, const http_form *f)
{
    const char *n = http_cookie(req, COOKIE_CSRF);
    const char *got = http_form_get(f, "csrf");
    if (!nonce_ok(n) || !got)
        return false;
    char want[64];
    mac_of(a, xasprintf("csrf|%s", n), want);
    return mac_equal(got, want);
}

static void session_set(app *a, http_resp *resp, const char *user_id)
{
    char *msg = xasprintf("session|%s|%lld", user_id, (long long)time(NULL) + OAUTH_SESSION_TTL_S);
    char mac[64];
    mac_b64(a, msg, mac);
    char *val = xasprintf("%s.%lld.%s", user_id, (long long)time(NULL) + OAUTH_SESSION_TTL_S, mac);
    set_cookie(a, resp, COOKIE_SESSION, val, OAUTH_SESSION_TTL_S);
    free(val);
    free(msg);
}

/* The signed-in user, or false. */
static bool session_user(app *a, http_req *req, store_user *u)
{
    const char *v = http_cookie(req, COOKIE_SESSION);
    if (!v || strlen(v) > 200)
        return false;
    const char *d1 = strchr(v, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!d1 || !d2)
        return false;
    char uid[PF_ID_MAX], exp[24];
    if ((size_t)(d1 - v) >= sizeof uid || (size_t)(d2 - d1 - 1) >= sizeof exp)
        return false;
    memcpy(uid, v, (size_t)(d1 - v));
    uid[d1 - v] = '\0';
    memcpy(exp, d1 + 1, (size_t)(d2 - d1 - 1));
    exp[d2 - d1 - 1] = '\0';
    long t = 0;
    if (!util_id_valid("usr", uid) || !util_parse_int(exp, 0, 1L << 40, &t) || t <= time(NULL))
        return false;
    char want[64];
    mac_of(a, xasprintf("session|%s|%s", uid, exp), want);
    if (!mac_equal(d2 + 1, want))
        return false;
    pf_err le;
    return store_user_get(a->st, uid, u, &le) == 0;
}

/* ---- pages ---- */

static int signin_page(app *a, http_req *req, http_resp *resp, authz *z, int status,
                       const char *error, const char *email)
{
    char csrf[64];
    csrf_token(a, req, resp, csrf);
    util_buf b = {0};
    util_buf_puts(&b, "<h1>Sign in</h1><p class=\"sub\">to continue to <b>");
    html_esc(&b, z->client.name);
    util_buf_puts(&b, "</b></p>");
    alert(&b, error);
    util_buf_puts(&b, "<form method=\"post\" action=\"/login\" id=\"signin\">");
    hidden(&b, "csrf", csrf);
    authz_hidden(&b, z);
    util_buf_puts(&b, "<label for=\"email\">Email</label><input id=\"email\" name=\"email\" "
                      "type=\"email\" autocomplete=\"username\" required autofocus value=\"");
    html_esc(&b, email);
    util_buf_puts(&b,
                  "\"><label for=\"password\">Password</label><input id=\"password\" "
                  "name=\"password\" type=\"password\" autocomplete=\"current-password\" required>"
                  "<button class=\"btn btn-primary\" type=\"submit\">Sign in</button></form>"
                  "<p class=\"fine\">Accounts are created by your pgfleet administrator "
                  "(<code>pgfleet user create</code>).</p>");
    return page(resp, status, "Sign in", &b);
}

static const struct {
    const char *scope, *title, *desc;
} scope_text[] = {
    {AUTH_SCOPE_ADMIN, "Manage the workspace",
     "Create, change and delete projects, databases, connections and service tokens."},
    {AUTH_SCOPE_OFFLINE, "Stay connected",
     "Keep access when you are away, until you revoke it (refresh tokens)."},
};

static int consent_page(app *a, http_req *req, http_resp *resp, authz *z, const store_user *u,
                        const char *error)
{
    store_workspace *ws = NULL;
    size_t nws = 0;
    pf_err le;
    if (store_user_workspaces(a->st, u->id, &ws, &nws, &le) != 0)
        return error_page(resp, 500, "Something went wrong", "Try again in a moment.");
    char csrf[64];
    csrf_token(a, req, resp, csrf);
    util_buf b = {0};
    util_buf_puts(&b, "<h1><b>");
    html_esc(&b, z->client.name);
    util_buf_puts(&b, "</b> wants to access your pgfleet workspace</h1>"
                      "<p class=\"sub\">Review what it asks for.</p>");
    alert(&b, error);
    util_buf_puts(&b, "<div class=\"who\"><span class=\"avatar\">");
    char initial[2] = {u->email[0] ? u->email[0] : '?', '\0'};
    html_esc(&b, initial);
    util_buf_puts(&b, "</span><span>Signed in as <b>");
    html_esc(&b, u->email);
    util_buf_puts(&b, "</b></span></div><ul class=\"scopes\">");
    for (size_t i = 0; i < sizeof scope_text / sizeof scope_text[0]; i++) {
        if (!auth_scope_has(z->scope_norm, scope_text[i].scope))
            continue;
        util_buf_puts(&b, "<li><b>");
        html_esc(&b, scope_text[i].title);
        util_buf_puts(&b, " <code>");
        html_esc(&b, scope_text[i].scope);
        util_buf_puts(&b, "</code></b><span>");
        html_esc(&b, scope_text[i].desc);
        util_buf_puts(&b, "</span></li>");
    }
    util_buf_puts(&b, "</ul><form method=\"post\" action=\"/authorize\" id=\"consent\">");
    hidden(&b, "csrf", csrf);
    authz_hidden(&b, z);
    if (nws == 0) {
        util_buf_puts(&b, "<div class=\"alert\">You are not a member of any workspace.</div>");
    } else {
        util_buf_puts(&b, "<label for=\"workspace\">Workspace</label>"
                          "<select id=\"workspace\" name=\"workspace_id\">");
        for (size_t i = 0; i < nws; i++) {
            util_buf_puts(&b, "<option value=\"");
            html_esc(&b, ws[i].id);
            util_buf_puts(&b, "\">");
            html_esc(&b, ws[i].name);
            util_buf_puts(&b, "</option>");
        }
        util_buf_puts(&b, "</select>");
    }
    free(ws);
    util_buf_puts(&b, "<div class=\"row\"><button class=\"btn btn-secondary\" type=\"submit\" "
                      "name=\"decision\" value=\"deny\">Deny</button><button class=\"btn "
                      "btn-primary\" type=\"submit\" name=\"decision\" value=\"allow\"");
    if (nws == 0)
        util_buf_puts(&b, " disabled");
    util_buf_puts(&b,
                  ">Allow</button></div></form><p class=\"fine\">Allowing redirects you to <code>");
    html_esc(&b, z->redirect_uri);
    util_buf_puts(&b, "</code>. You can revoke access at any time "
                      "(<code>DELETE /v1/integrations/{id}</code>).</p>");
    return page(resp, 200, "Authorize", &b);
}

/* ---- handlers ---- */

HANDLER(h_authorize_get)
{
    (void)e;
    app *a = ctx;
    authz z;
    authz_from_query(req, &z);
    if (authz_check(a, req, resp, &z) != 0)
        return 0;
    store_user u;
    if (!session_user(a, req, &u))
        return signin_page(a, req, resp, &z, 200, NULL, NULL);
    return consent_page(a, req, resp, &z, &u, NULL);
}

/* POST /login: checks the password, starts the session and goes back to /authorize. */
static int login(app *a, http_req *req, http_resp *resp, const http_form *f, authz *z)
{
    const char *email = http_form_get(f, "email");
    const char *pw = http_form_get(f, "password");
    if (!csrf_check(a, req, f))
        return signin_page(a, req, resp, z, 403, "The form expired. Please sign in again.", email);
    if (!email || !*email || !pw || !*pw || strlen(email) > 254 || strlen(pw) > 1024)
        return signin_page(a, req, resp, z, 400, "Enter your email and password.", email);
    char ip[64];
    http_client_ip(req, ip, sizeof ip);
    char key[400];
    snprintf(key, sizeof key, "%s|", ip);
    size_t kl = strlen(key);
    for (const char *p = email; *p && kl + 1 < sizeof key; p++)
        key[kl++] = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
    key[kl] = '\0';
    int wait = auth_throttle_check(key, util_now_ms());
    if (wait > 0) {
        char msg[160], ra[16];
        snprintf(msg, sizeof msg, "Too many failed attempts. Try again in %d second%s.", wait,
                 wait == 1 ? "" : "s");
        snprintf(ra, sizeof ra, "%d", wait);
        int rc = signin_page(a, req, resp, z, 429, msg, email);
        http_resp_header(resp, "Retry-After", ra);
        return rc;
    }
    store_user u;
    pf_err le;
    bool found = store_user_by_email(a->st, email, &u, &le) == 0;
    if (!auth_password_verify(found ? u.password_hash : NULL, pw)) {
        auth_throttle_fail(key, util_now_ms());
        log_req(LOG_INFO, req->request_id, "sign-in failed for a user from %s", ip);
        return signin_page(a, req, resp, z, 401, "Wrong email or password.", email);
    }
    auth_throttle_reset(key);
    session_set(a, resp, u.id);
    char *q = NULL;
    for (size_t i = 0; i < AUTHZ_N; i++)
        if (*authz_field(z, i))
            http_url_append(&q, '&', authz_names[i], *authz_field(z, i));
    char *loc = xasprintf("/authorize?%s", q ? q : "");
    resp->status = 303;
    http_resp_header(resp, "Location", loc);
    http_resp_header(resp, "Cache-Control", "no-store");
    free(loc);
    free(q);
    return 0;
}

/* The consent page again, with an error and `status`. */
static int consent_again(app *a, http_req *req, http_resp *resp, authz *z, const store_user *u,
                         int status, const char *error)
{
    int rc = consent_page(a, req, resp, z, u, error);
    if (rc == 0)
        resp->status = status;
    return rc;
}

/* POST /authorize: the user's decision, answered with a redirect to the client. */
static int consent(app *a, http_req *req, http_resp *resp, const http_form *f, authz *z)
{
    store_user u;
    if (!session_user(a, req, &u))
        return signin_page(a, req, resp, z, 401, "Please sign in again.", NULL);
    if (!csrf_check(a, req, f))
        return consent_again(a, req, resp, z, &u, 403, "The form expired. Please try again.");
    const char *decision = http_form_get(f, "decision");
    if (!decision || strcmp(decision, "allow") != 0) {
        return redirect_error(req, resp, z, "access_denied", "The user denied access");
    }
    const char *ws = http_form_get(f, "workspace_id");
    pf_err le;
    if (!ws || store_membership_check(a->st, u.id, ws, &le) != 0)
        return consent_again(a, req, resp, z, &u, 400, "Choose one of your workspaces.");
    auth_oauth_cfg cfg;
    oauth_cfg(a, &cfg);
    char code[AUTH_SECRET_MAX];
    if (auth_code_issue(a->st, &cfg, z->client.id, u.id, ws, z->redirect_uri, z->scope_norm,
                        z->code_challenge, code, &le) != 0) {
        log_req(LOG_ERROR, req->request_id, "authorize: %s", le.message);
        return redirect_error(req, resp, z, "server_error", "The code could not be issued");
    }
    log_req(LOG_INFO, req->request_id, "user %s granted client %s on %s (%s)", u.id, z->client.id,
            ws, z->scope_norm);
    char *q = NULL;
    http_url_append(&q, '&', "code", code);
    if (z->state)
        http_url_append(&q, '&', "state", z->state);
    sodium_memzero(code, sizeof code);
    redirect_client(req, resp, z->redirect_uri, q);
    free(q);
    return 0;
}

/* A POST carrying an authorization request (z points into the form): an unreadable form
 * or a request authz_check refuses is answered here, the rest by fn. */
typedef int (*authz_form_fn)(app *a, http_req *req, http_resp *resp, const http_form *f, authz *z);
static int authz_post(void *ctx, http_req *req, http_resp *resp, authz_form_fn fn)
{
    app *a = ctx;
    http_form *f = http_form_parse(req->body, req->body_len);
    if (!f)
        return error_page(resp, 400, "Invalid request", "The form could not be read.");
    authz z;
    authz_from_form(f, &z);
    int rc = 0;
    if (authz_check(a, req, resp, &z) == 0)
        rc = fn(a, req, resp, f, &z);
    http_form_free(f);
    return rc;
}

HANDLER(h_login_post)
{
    (void)e;
    return authz_post(ctx, req, resp, login);
}

HANDLER(h_authorize_post)
{
    (void)e;
    return authz_post(ctx, req, resp, consent);
}
