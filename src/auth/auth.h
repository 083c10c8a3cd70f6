/* auth: who is calling. Service tokens, and the OAuth2 authorization server (EdDSA JWT
 * access tokens, authorization codes with PKCE, rotating refresh tokens), password hashing
 * and sign-in throttling. It reads and writes the catalog (store) but never parses HTTP.
 * A token value is shown once; the catalog keeps only its SHA-256 (values are 256-bit
 * random, so a fast hash is the right tool: there is nothing to brute-force). */
#ifndef PF_AUTH_AUTH_H
#define PF_AUTH_AUTH_H

#include "store/store.h"
#include "util/err.h"

#define AUTH_TOKEN_PREFIX "pfs_"
#define AUTH_TOKEN_MAX 96

/* Creates a service token for workspace ws. value_out receives the secret (shown once).
 * expires_at: ISO-8601 or NULL for never. */
int auth_token_create(store *st, const char *ws, const char *name, const char *expires_at,
                      char value_out[AUTH_TOKEN_MAX], store_token *out, pf_err *e);

/* An operator token (docs/console.md): read-only, for the whole fleet (GET /v1/fleet) and
 * nothing else. owner_ws is only the row's owner (a token row needs a workspace); listings
 * of that workspace never show it. Made on the host only (`pgfleet token create --operator`). */
#define AUTH_SCOPE_FLEET "fleet:read"
int auth_operator_token_create(store *st, const char *owner_ws, const char *name,
                               char value_out[AUTH_TOKEN_MAX], store_token *out, pf_err *e);

/* Checks an Authorization header value ("Bearer <token>"). On success fills ws_out and
 * actor_out (the token id). Any failure is 401 "Unauthorized" with a hint. An operator
 * token is refused here as if unknown (a workspace credential is wanted). */
int auth_check_bearer(store *st, const char *authorization, char ws_out[PF_ID_MAX],
                      char actor_out[PF_ID_MAX], pf_err *e);
/* The same check, accepting operator tokens too: *is_operator says which it was; an
 * operator token gets ws_out "" (it acts in no workspace). */
int auth_check_bearer_any(store *st, const char *authorization, char ws_out[PF_ID_MAX],
                          char actor_out[PF_ID_MAX], bool *is_operator, pf_err *e);

/* ---- OAuth2 and identity (jwt.c, password.c, throttle.c, oauth.c) ----
 * Access tokens are EdDSA (Ed25519) JWTs; authorization codes and refresh tokens are
 * 256-bit random strings stored as SHA-256. OAuth failures fill pf_err with the RFC 6749
 * error in `code` ("invalid_grant", ...), the description in `message` and the HTTP
 * status to answer with. */
#include <jansson.h>
#include <sodium.h>
#include <stdint.h>

#define AUTH_SCOPE_ADMIN "workspace:admin"
#define AUTH_SCOPE_OFFLINE "offline_access"
#define AUTH_JWT_MAX 4096
#define AUTH_SECRET_MAX 64 /* codes and refresh tokens: a prefix + 43 chars */

typedef struct auth_keys {
    unsigned char sk[crypto_sign_SECRETKEYBYTES]; /* Ed25519 signing key */
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    char kid[32];                                /* base64url of SHA-256(pk), 16 chars */
    unsigned char mac_key[crypto_auth_KEYBYTES]; /* sessions and CSRF tokens (HMAC) */
} auth_keys;

/* Loads <home>/keys/{jwt-ed25519.key,session.key}, making them (0600, directory 0700) on
 * first use. */
int auth_keys_load(const char *home, auth_keys *k, pf_err *e);
/* {"keys":[{"kty":"OKP","crv":"Ed25519","x":..., "kid":..., "alg":"EdDSA","use":"sig"}]} */
json_t *auth_jwks(const auth_keys *k);

/* base64url without padding; the out buffers are sized by the caller. */
void auth_b64url(const unsigned char *in, size_t n, char *out, size_t outsz);
/* Decodes base64url (no padding); -1 on junk or when it does not fit. */
int auth_b64url_decode(const char *in, size_t inlen, unsigned char *out, size_t outsz,
                       size_t *outlen);

typedef struct auth_claims {
    char sub[PF_ID_MAX];          /* user id */
    char workspace_id[PF_ID_MAX]; /* the workspace the grant is for */
    char client_id[PF_ID_MAX];
    char scope[STORE_SCOPE_MAX];
    char sid[PF_ID_MAX]; /* the grant (refresh-token chain) it was issued from */
    char jti[PF_ID_MAX];
    int64_t iat, exp; /* unix seconds */
} auth_claims;

/* A bearer value of three dot-separated parts. */
bool auth_looks_like_jwt(const char *value);
/* Signs claims (with iss = issuer) into a compact JWS; caller frees *out. */
int auth_jwt_sign(const auth_keys *k, const char *issuer, const auth_claims *c, char **out,
                  pf_err *e);
/* Verifies signature (alg must be EdDSA and kid ours: "none" and every other alg are
 * refused), issuer and expiry. Any failure is 401 "Unauthorized". */
int auth_jwt_verify(const auth_keys *k, const char *issuer, const char *token, int64_t now,
                    auth_claims *out, pf_err *e);

/* Passwords: argon2id via crypto_pwhash_str (interactive limits). */
int auth_password_hash(const char *password, char out[STORE_PWHASH_MAX], pf_err *e);
/* hash NULL runs a verification against a fixed dummy hash (same cost) and fails, so an
 * unknown email takes as long as a wrong password. */
bool auth_password_verify(const char *hash, const char *password);

/* The SCRAM-SHA-256 secret of a connection role's password (scram.c: no server is
 * needed), as servers and PgBouncer store it, with a fresh salt. out must hold 256 bytes.
 * Pure CPU: safe in a request handler. */
int auth_scram_verifier(const char *role, const char *password, char out[256], pf_err *e);
/* The same with a given salt and iteration count, for an ASCII password (exposed for
 * tests: the same inputs give libpq's verifier). */
int auth__scram_verifier_salted(const char *password, const unsigned char *salt, size_t saltlen,
                                int iterations, char out[256], pf_err *e);

/* Sign-in throttling, per key (email + client address), in memory. After
 * AUTH_THROTTLE_FREE failures each further attempt must wait 2^(n - FREE) seconds (at
 * most AUTH_THROTTLE_MAX_S) after the last failure. Check returns the seconds still to
 * wait (0: go ahead). Locks only a small table, briefly. */
#define AUTH_THROTTLE_FREE 3
#define AUTH_THROTTLE_MAX_S 300
int auth_throttle_check(const char *key, int64_t now_ms);
void auth_throttle_fail(const char *key, int64_t now_ms);
void auth_throttle_reset(const char *key);

/* Request rate limits per credential (ratelimit.c): a token bucket per key (a service
 * token's id, an OAuth grant's id) of `burst` requests refilled at `rate` a second, in a
 * table of about `slots` buckets (memory stays bounded; see the file). new returns NULL
 * when rate <= 0 (no limit); take on a NULL limiter always allows. take returns 0 when
 * the request may go ahead, else the whole seconds until it may (>= 1). Thread-safe. */
typedef struct auth_ratelimit auth_ratelimit;
auth_ratelimit *auth_ratelimit_new(double rate, double burst, size_t slots);
void auth_ratelimit_free(auth_ratelimit *rl);
int auth_ratelimit_take(auth_ratelimit *rl, const char *key, int64_t now_ms);

/* PKCE: BASE64URL(SHA256(verifier)) == challenge, constant time; the verifier must be
 * 43..128 chars of [A-Za-z0-9-._~] (RFC 7636). */
bool auth_pkce_s256_ok(const char *verifier, const char *challenge);
/* Normalizes a requested scope: known scopes only, deduplicated, in canonical order.
 * NULL or "" gives the default "workspace:admin offline_access". -1 on an unknown scope. */
int auth_scope_normalize(const char *in, char out[STORE_SCOPE_MAX]);
bool auth_scope_has(const char *scope, const char *want);
/* True when uri is one of the client's registered redirect URIs, exactly. */
bool auth_redirect_registered(const store_oauth_client *c, const char *uri);

typedef struct auth_oauth_cfg {
    const char *issuer; /* the public base URL */
    int access_ttl_s;   /* access token lifetime (--access-token-ttl) */
    int refresh_ttl_s;  /* refresh token lifetime */
    int code_ttl_s;     /* authorization code lifetime */
} auth_oauth_cfg;

typedef struct auth_token_set {
    char *access_token; /* owned: free() */
    char refresh_token[AUTH_SECRET_MAX];
    int expires_in;
    char scope[STORE_SCOPE_MAX];
    char workspace_id[PF_ID_MAX];
} auth_token_set;

/* After consent: records the integration and issues a code for it (code_out, shown once). */
int auth_code_issue(store *st, const auth_oauth_cfg *cfg, const char *client_id,
                    const char *user_id, const char *ws, const char *redirect_uri,
                    const char *scope, const char *challenge, char code_out[AUTH_SECRET_MAX],
                    pf_err *e);
/* grant_type=authorization_code. A replayed code revokes what it issued. */
int auth_code_exchange(store *st, const auth_keys *k, const auth_oauth_cfg *cfg, const char *code,
                       const char *client_id, const char *redirect_uri, const char *verifier,
                       auth_token_set *out, pf_err *e);
/* grant_type=refresh_token: rotates; a reused refresh token revokes its whole chain. */
int auth_refresh(store *st, const auth_keys *k, const auth_oauth_cfg *cfg, const char *refresh,
                 const char *client_id, auth_token_set *out, pf_err *e);
/* RFC 7009: revokes the chain of a refresh token or of a valid access token. Unknown
 * tokens are not an error. */
int auth_revoke(store *st, const auth_keys *k, const auth_oauth_cfg *cfg, const char *token,
                const char *client_id, pf_err *e);
/* Checks an access token: signature, expiry and a live grant. Fills claims and grant. */
int auth_check_access(store *st, const auth_keys *k, const char *issuer, const char *token,
                      auth_claims *claims, store_grant *grant, pf_err *e);

#endif
