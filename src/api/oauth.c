/* api: the OAuth2 endpoints that speak JSON: /token (RFC 6749 sections 4.1.3 and 6),
 * /revoke (RFC 7009), /.well-known/oauth-authorization-server (RFC 8414) and
 * /.well-known/jwks.json. Errors here use the OAuth shape {"error","error_description"},
 * not the Management API envelope, because OAuth clients (the SDK among them) parse it. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/internal.h"
#include "api/oauth_int.h"
#include "auth/auth.h"

void oauth_cfg(app *a, auth_oauth_cfg *cfg)
{
    cfg->issuer = a->base_url;
    cfg->access_ttl_s = a->access_ttl_s > 0 ? a->access_ttl_s : 3600;
    cfg->refresh_ttl_s = OAUTH_REFRESH_TTL_S;
    cfg->code_ttl_s = OAUTH_CODE_TTL_S;
}

static int oauth_error(http_resp *resp, int status, const char *code, const char *desc)
{
    resp->status = status;
    resp->body = json_pack("{s:s, s:s}", "error", code, "error_description", desc);
    http_resp_header(resp, "Cache-Control", "no-store");
    http_resp_header(resp, "Pragma", "no-cache");
    return 0;
}

/* Turns a pf_err from src/auth into the OAuth error response (500s become server_error). */
static int oauth_fail(http_req *req, http_resp *resp, const pf_err *le)
{
    if (le->status >= 500 || le->status < 400) {
        log_emit(LOG_ERROR, &(log_ctx){.req = req->request_id, .sub = "oauth"}, "%s", le->message);
        return oauth_error(resp, 500, "server_error", "The server could not complete the request");
    }
    oauth_error(resp, le->status, le->code, le->message);
    if (le->status == 401)
        http_resp_header(resp, "WWW-Authenticate", "Bearer error=\"invalid_client\"");
    return 0;
}

/* Parses a form body; fills resp with an OAuth error and returns NULL when it is not one
 * or when OAuth is off (then the error is off_code). Repeated parameters are refused
 * (RFC 6749 section 3.2). */
static http_form *oauth_form(app *a, http_req *req, http_resp *resp, const char *const *single,
                             const char *off_code)
{
    const char *ct = http_header(req, "Content-Type");
    if (!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0) {
        oauth_error(resp, 400, "invalid_request",
                    "Send the parameters as application/x-www-form-urlencoded");
        return NULL;
    }
    http_form *f = http_form_parse(req->body, req->body_len);
    if (!f) {
        oauth_error(resp, 400, "invalid_request", "The form body is malformed");
        return NULL;
    }
    for (size_t i = 0; single[i]; i++)
        if (http_form_count(f, single[i]) > 1) {
            http_form_free(f);
            oauth_error(resp, 400, "invalid_request", "A parameter was sent more than once");
            return NULL;
        }
    if (!a->keys) {
        http_form_free(f);
        oauth_error(resp, 400, off_code, "OAuth is not enabled");
        return NULL;
    }
    return f;
}

HANDLER(h_oauth_token)
{
    (void)e;
    app *a = ctx;
    static const char *const single[] = {
        "grant_type",    "code",          "redirect_uri",  "client_id",
        "code_verifier", "refresh_token", "client_secret", NULL};
    http_form *f = oauth_form(a, req, resp, single, "unsupported_grant_type");
    if (!f)
        return 0;
    auth_oauth_cfg cfg;
    oauth_cfg(a, &cfg);
    const char *gt = http_form_get(f, "grant_type");
    auth_token_set ts;
    memset(&ts, 0, sizeof ts);
    pf_err le;
    err_clear(&le);
    int rc;
    if (!gt || !*gt) {
        http_form_free(f);
        return oauth_error(resp, 400, "invalid_request", "grant_type is required");
    } else if (strcmp(gt, "authorization_code") == 0) {
        rc = auth_code_exchange(a->st, a->keys, &cfg, http_form_get(f, "code"),
                                http_form_get(f, "client_id"), http_form_get(f, "redirect_uri"),
                                http_form_get(f, "code_verifier"), &ts, &le);
    } else if (strcmp(gt, "refresh_token") == 0) {
        rc = auth_refresh(a->st, a->keys, &cfg, http_form_get(f, "refresh_token"),
                          http_form_get(f, "client_id"), &ts, &le);
    } else {
        http_form_free(f);
        return oauth_error(resp, 400, "unsupported_grant_type",
                           "grant_type must be authorization_code or refresh_token");
    }
    http_form_free(f);
    if (rc != 0)
        return oauth_fail(req, resp, &le);
    resp->body = json_pack("{s:s, s:s, s:i, s:s, s:s}", "access_token", ts.access_token,
                           "token_type", "Bearer", "expires_in", ts.expires_in, "refresh_token",
                           ts.refresh_token, "scope", ts.scope);
    free(ts.access_token);
    sodium_memzero(ts.refresh_token, sizeof ts.refresh_token);
    http_resp_header(resp, "Cache-Control", "no-store");
    http_resp_header(resp, "Pragma", "no-cache");
    return 0;
}

HANDLER(h_oauth_revoke)
{
    (void)e;
    app *a = ctx;
    static const char *const single[] = {"token", "token_type_hint", "client_id", NULL};
    http_form *f = oauth_form(a, req, resp, single, "unsupported_token_type");
    if (!f)
        return 0;
    auth_oauth_cfg cfg;
    oauth_cfg(a, &cfg);
    pf_err le;
    err_clear(&le);
    int rc = auth_revoke(a->st, a->keys, &cfg, http_form_get(f, "token"),
                         http_form_get(f, "client_id"), &le);
    http_form_free(f);
    if (rc != 0)
        return oauth_fail(req, resp, &le);
    resp->status = 200;
    resp->body = json_object();
    http_resp_header(resp, "Cache-Control", "no-store");
    return 0;
}

HANDLER(h_oauth_metadata)
{
    (void)req;
    (void)e;
    app *a = ctx;
    char authz[320], token[320], revoke[320], jwks[320];
    snprintf(authz, sizeof authz, "%s/authorize", a->base_url);
    snprintf(token, sizeof token, "%s/token", a->base_url);
    snprintf(revoke, sizeof revoke, "%s/revoke", a->base_url);
    snprintf(jwks, sizeof jwks, "%s/.well-known/jwks.json", a->base_url);
    resp->body = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:[s, s], s:[s], s:[s], s:[s, s], s:[s], s:[s], s:[s]}",
        "issuer", a->base_url, "authorization_endpoint", authz, "token_endpoint", token,
        "revocation_endpoint", revoke, "jwks_uri", jwks, "scopes_supported", AUTH_SCOPE_ADMIN,
        AUTH_SCOPE_OFFLINE, "response_types_supported", "code", "response_modes_supported", "query",
        "grant_types_supported", "authorization_code", "refresh_token",
        "code_challenge_methods_supported", "S256", "token_endpoint_auth_methods_supported", "none",
        "revocation_endpoint_auth_methods_supported", "none");
    return 0;
}

HANDLER(h_oauth_jwks)
{
    (void)req;
    app *a = ctx;
    if (!a->keys)
        return err_set(e, 404, "NotFound", NULL, "OAuth is not enabled");
    resp->body = auth_jwks(a->keys);
    http_resp_header(resp, "Cache-Control", "public, max-age=300");
    return 0;
}
