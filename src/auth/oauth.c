/* auth: the OAuth2 authorization server's rules (RFC 6749, 7636, 7009): PKCE, scopes,
 * redirect URIs, authorization codes, refresh-token rotation with reuse detection, and the
 * access-token check behind every OAuth-authenticated request. HTTP shapes live in
 * src/api/oauth.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "util/log.h"

#define CODE_PREFIX "pfc_"
#define REFRESH_PREFIX "pfr_"

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

static int oauth_err(pf_err *e, int status, const char *code, const char *fmt, const char *arg)
{
    return err_set(e, status, code, NULL, fmt, arg ? arg : "");
}

bool auth_pkce_s256_ok(const char *verifier, const char *challenge)
{
    if (!verifier || !challenge)
        return false;
    size_t n = strlen(verifier);
    if (n < 43 || n > 128)
        return false;
    for (const char *p = verifier; *p; p++) {
        char c = *p;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_' || c == '~'))
            return false;
    }
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)verifier, n);
    char want[64];
    auth_b64url(h, sizeof h, want, sizeof want);
    size_t wl = strlen(want); /* 43 */
    if (strlen(challenge) != wl)
        return false;
    return sodium_memcmp(want, challenge, wl) == 0;
}

static const char *const known_scopes[] = {AUTH_SCOPE_ADMIN, AUTH_SCOPE_OFFLINE};
#define NSCOPES (sizeof known_scopes / sizeof known_scopes[0])

int auth_scope_normalize(const char *in, char out[STORE_SCOPE_MAX])
{
    bool want[NSCOPES] = {false};
    bool any = false;
    const char *p = in ? in : "";
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *end = strchr(p, ' ');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        bool known = false;
        for (size_t i = 0; i < NSCOPES; i++)
            if (strlen(known_scopes[i]) == len && strncmp(known_scopes[i], p, len) == 0) {
                want[i] = true;
                known = true;
            }
        if (!known)
            return -1;
        any = true;
        p += len;
    }
    if (!any)
        for (size_t i = 0; i < NSCOPES; i++)
            want[i] = true;
    out[0] = '\0';
    for (size_t i = 0; i < NSCOPES; i++)
        if (want[i]) {
            size_t ol = strlen(out);
            snprintf(out + ol, STORE_SCOPE_MAX - ol, "%s%s", ol ? " " : "", known_scopes[i]);
        }
    return 0;
}

bool auth_scope_has(const char *scope, const char *want)
{
    size_t wl = strlen(want);
    for (const char *p = scope ? scope : ""; *p;) {
        while (*p == ' ')
            p++;
        const char *end = strchr(p, ' ');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == wl && strncmp(p, want, wl) == 0)
            return true;
        p += len;
    }
    return false;
}

bool auth_redirect_registered(const store_oauth_client *c, const char *uri)
{
    size_t ul = strlen(uri);
    for (const char *p = c->redirect_uris; *p;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == ul && len > 0 && memcmp(p, uri, len) == 0)
            return true;
        p += len;
        if (*p == '\n')
            p++;
    }
    return false;
}

static void new_secret(const char *prefix, char out[AUTH_SECRET_MAX])
{
    char rnd[44];
    util_secret(rnd, 43); /* 43 chars of 62: 256 bits */
    snprintf(out, AUTH_SECRET_MAX, "%s%s", prefix, rnd);
}

int auth_code_issue(store *st, const auth_oauth_cfg *cfg, const char *client_id,
                    const char *user_id, const char *ws, const char *redirect_uri,
                    const char *scope, const char *challenge, char code_out[AUTH_SECRET_MAX],
                    pf_err *e)
{
    store_integration itg;
    if (store_integration_upsert(st, ws, client_id, user_id, scope, &itg, e) != 0)
        return -1;
    store_oauth_code c;
    memset(&c, 0, sizeof c);
    new_secret(CODE_PREFIX, code_out);
    util_sha256_hex(code_out, c.hash);
    snprintf(c.client_id, sizeof c.client_id, "%s", client_id);
    snprintf(c.user_id, sizeof c.user_id, "%s", user_id);
    snprintf(c.workspace_id, sizeof c.workspace_id, "%s", ws);
    snprintf(c.redirect_uri, sizeof c.redirect_uri, "%s", redirect_uri);
    snprintf(c.scope, sizeof c.scope, "%s", scope);
    snprintf(c.code_challenge, sizeof c.code_challenge, "%s", challenge);
    c.expires_at = now_s() + cfg->code_ttl_s;
    return store_oauth_code_insert(st, &c, e);
}

/* New refresh token + access token for grant g. */
static int issue_tokens(store *st, const auth_keys *k, const auth_oauth_cfg *cfg,
                        const store_grant *g, auth_token_set *out, pf_err *e)
{
    memset(out, 0, sizeof *out);
    int64_t now = now_s();
    char hash[65];
    new_secret(REFRESH_PREFIX, out->refresh_token);
    util_sha256_hex(out->refresh_token, hash);
    if (store_refresh_insert(st, hash, g->id, now + cfg->refresh_ttl_s, e) != 0)
        return -1;
    auth_claims c;
    memset(&c, 0, sizeof c);
    snprintf(c.sub, sizeof c.sub, "%s", g->user_id);
    snprintf(c.workspace_id, sizeof c.workspace_id, "%s", g->workspace_id);
    snprintf(c.client_id, sizeof c.client_id, "%s", g->client_id);
    snprintf(c.scope, sizeof c.scope, "%s", g->scope);
    snprintf(c.sid, sizeof c.sid, "%s", g->id);
    util_id_new("at", c.jti);
    c.iat = now;
    c.exp = now + cfg->access_ttl_s;
    if (auth_jwt_sign(k, cfg->issuer, &c, &out->access_token, e) != 0)
        return -1;
    out->expires_in = cfg->access_ttl_s;
    snprintf(out->scope, sizeof out->scope, "%s", g->scope);
    snprintf(out->workspace_id, sizeof out->workspace_id, "%s", g->workspace_id);
    return 0;
}

int auth_code_exchange(store *st, const auth_keys *k, const auth_oauth_cfg *cfg, const char *code,
                       const char *client_id, const char *redirect_uri, const char *verifier,
                       auth_token_set *out, pf_err *e)
{
    memset(out, 0, sizeof *out);
    if (!code || !*code)
        return oauth_err(e, 400, "invalid_request", "code is required%s", NULL);
    if (!client_id || !*client_id)
        return oauth_err(e, 400, "invalid_request", "client_id is required%s", NULL);
    if (!redirect_uri || !*redirect_uri)
        return oauth_err(e, 400, "invalid_request", "redirect_uri is required%s", NULL);
    if (!verifier || !*verifier)
        return oauth_err(e, 400, "invalid_request", "code_verifier is required (PKCE)%s", NULL);
    if (strlen(code) >= AUTH_SECRET_MAX)
        return oauth_err(e, 400, "invalid_grant", "The authorization code is invalid%s", NULL);
    store_oauth_client cl;
    pf_err le;
    if (store_oauth_client_get(st, client_id, &cl, &le) != 0)
        return le.status == 404
                   ? oauth_err(e, 401, "invalid_client", "Unknown client %s", client_id)
                   : (*e = le, -1);
    char hash[65];
    util_sha256_hex(code, hash);
    store_oauth_code c;
    if (store_oauth_code_consume(st, hash, &c, &le) != 0) {
        if (le.status == 409) {
            /* RFC 6749 4.1.2: a replayed code revokes what it issued */
            if (c.grant_id[0] && store_grant_revoke(st, c.grant_id, "code replay", &le) == 0)
                log_sub(LOG_WARN, "oauth",
                        "authorization code replayed for client %s; grant %s revoked", client_id,
                        c.grant_id);
            return oauth_err(e, 400, "invalid_grant", "The authorization code was already used%s",
                             NULL);
        }
        if (le.status == 404)
            return oauth_err(e, 400, "invalid_grant", "The authorization code is invalid%s", NULL);
        *e = le;
        return -1;
    }
    if (strcmp(c.client_id, client_id) != 0)
        return oauth_err(e, 400, "invalid_grant",
                         "The authorization code was issued to another client%s", NULL);
    if (strcmp(c.redirect_uri, redirect_uri) != 0)
        return oauth_err(e, 400, "invalid_grant",
                         "redirect_uri does not match the authorization request%s", NULL);
    if (c.expires_at <= now_s())
        return oauth_err(e, 400, "invalid_grant", "The authorization code has expired%s", NULL);
    if (!auth_pkce_s256_ok(verifier, c.code_challenge))
        return oauth_err(e, 400, "invalid_grant",
                         "code_verifier does not match the code_challenge%s", NULL);
    store_integration itg;
    if (store_integration_by_client(st, c.workspace_id, c.client_id, &itg, &le) != 0)
        return le.status == 404
                   ? oauth_err(e, 400, "invalid_grant", "The integration was revoked%s", NULL)
                   : (*e = le, -1);
    store_grant g;
    memset(&g, 0, sizeof g);
    util_id_new("grt", g.id);
    snprintf(g.integration_id, sizeof g.integration_id, "%s", itg.id);
    snprintf(g.workspace_id, sizeof g.workspace_id, "%s", c.workspace_id);
    snprintf(g.client_id, sizeof g.client_id, "%s", c.client_id);
    snprintf(g.user_id, sizeof g.user_id, "%s", c.user_id);
    snprintf(g.scope, sizeof g.scope, "%s", c.scope);
    util_now_iso(g.created_at);
    if (store_tx_begin(st, e) != 0)
        return -1;
    int rc = store_grant_insert(st, &g, e);
    if (rc == 0)
        rc = store_oauth_code_set_grant(st, hash, g.id, e);
    if (rc == 0)
        rc = issue_tokens(st, k, cfg, &g, out, e);
    if (rc != 0) {
        store_tx_rollback(st);
        free(out->access_token);
        out->access_token = NULL;
        return -1;
    }
    if (store_tx_commit(st, e) != 0) {
        free(out->access_token);
        out->access_token = NULL;
        return -1;
    }
    return 0;
}

int auth_refresh(store *st, const auth_keys *k, const auth_oauth_cfg *cfg, const char *refresh,
                 const char *client_id, auth_token_set *out, pf_err *e)
{
    memset(out, 0, sizeof *out);
    if (!refresh || !*refresh)
        return oauth_err(e, 400, "invalid_request", "refresh_token is required%s", NULL);
    if (!client_id || !*client_id)
        return oauth_err(e, 400, "invalid_request", "client_id is required%s", NULL);
    if (strlen(refresh) >= AUTH_SECRET_MAX)
        return oauth_err(e, 400, "invalid_grant", "The refresh token is invalid%s", NULL);
    char hash[65];
    util_sha256_hex(refresh, hash);
    store_grant g;
    pf_err le;
    if (store_refresh_use(st, hash, now_s(), &g, &le) != 0) {
        if (le.status == 409) {
            store_grant_revoke(st, g.id, "refresh token reuse", NULL);
            log_sub(LOG_WARN, "oauth",
                    "refresh token reused for grant %s (client %s): chain revoked", g.id,
                    g.client_id);
            return oauth_err(e, 400, "invalid_grant",
                             "The refresh token was already used; the session is revoked%s", NULL);
        }
        if (le.status == 404)
            return oauth_err(e, 400, "invalid_grant", "The refresh token is invalid or expired%s",
                             NULL);
        *e = le;
        return -1;
    }
    if (g.revoked)
        return oauth_err(e, 400, "invalid_grant", "The refresh token was revoked%s", NULL);
    if (strcmp(g.client_id, client_id) != 0) {
        /* someone else's token: the rightful client will see its chain revoked */
        store_grant_revoke(st, g.id, "refresh token presented by another client", NULL);
        return oauth_err(e, 400, "invalid_grant",
                         "The refresh token was issued to another client%s", NULL);
    }
    return issue_tokens(st, k, cfg, &g, out, e);
}

int auth_revoke(store *st, const auth_keys *k, const auth_oauth_cfg *cfg, const char *token,
                const char *client_id, pf_err *e)
{
    if (!token || !*token)
        return oauth_err(e, 400, "invalid_request", "token is required%s", NULL);
    store_grant g;
    pf_err le;
    if (auth_looks_like_jwt(token)) {
        auth_claims c;
        /* an expired access token can still name its chain: check everything but time */
        if (auth_jwt_verify(k, cfg->issuer, token, INT64_MIN, &c, &le) != 0)
            return 0;
        if (store_grant_get(st, c.sid, &g, &le) != 0)
            return le.status == 404 ? 0 : (*e = le, -1);
    } else {
        if (strlen(token) >= AUTH_SECRET_MAX)
            return 0;
        char hash[65];
        util_sha256_hex(token, hash);
        if (store_refresh_grant(st, hash, &g, &le) != 0)
            return le.status == 404 ? 0 : (*e = le, -1);
    }
    if (client_id && *client_id && strcmp(client_id, g.client_id) != 0)
        return 0; /* not this client's token: nothing to do (RFC 7009 2.1) */
    return store_grant_revoke(st, g.id, "revoked by the client", e);
}

int auth_check_access(store *st, const auth_keys *k, const char *issuer, const char *token,
                      auth_claims *claims, store_grant *grant, pf_err *e)
{
    if (auth_jwt_verify(k, issuer, token, now_s(), claims, e) != 0)
        return -1;
    pf_err le;
    if (store_grant_get(st, claims->sid, grant, &le) != 0) {
        if (le.status != 404) {
            *e = le;
            return -1;
        }
        return err_set(e, 401, "Unauthorized", "Sign in again.", "The access token was revoked");
    }
    if (grant->revoked || strcmp(grant->workspace_id, claims->workspace_id) != 0)
        return err_set(e, 401, "Unauthorized", "Sign in again.", "The access token was revoked");
    return 0;
}
