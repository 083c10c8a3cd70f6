/* Unit tests for src/auth: base64url, keys, EdDSA JWTs (forged, alg:none, expired),
 * passwords, throttling, PKCE, scopes, redirect URIs, and the OAuth code/refresh flows
 * against a real catalog. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#include "auth/auth.h"
#include "harness.h"
#include "store/store.h"
#include "util/util.h"

#define ISS "http://127.0.0.1:9"

typedef struct fixture {
    harness_catalog cat;
    const char *dir; /* cat.dir */
    store *s;        /* cat.s */
    auth_keys k;
    auth_oauth_cfg cfg;
    char ws[PF_ID_MAX];
    char user[PF_ID_MAX];
    char client[PF_ID_MAX];
} fixture;

static int setup(void **state)
{
    fixture *f = xcalloc(1, sizeof *f);
    *state = f;
    if (harness_catalog_open(&f->cat, "auth") < 0)
        return -1;
    f->dir = f->cat.dir;
    f->s = f->cat.s;
    pf_err e;
    if (auth_keys_load(f->dir, &f->k, &e) != 0) {
        fprintf(stderr, "setup: %s\n", e.message);
        return -1;
    }
    f->cfg = (auth_oauth_cfg){
        .issuer = ISS, .access_ttl_s = 60, .refresh_ttl_s = 3600, .code_ttl_s = 60};
    store_workspace w = {0};
    util_id_new("wksp", w.id);
    snprintf(w.name, sizeof w.name, "A");
    util_now_iso(w.created_at);
    store_user u = {0};
    util_id_new("usr", u.id);
    snprintf(u.email, sizeof u.email, "a@example.com");
    snprintf(u.password_hash, sizeof u.password_hash, "x");
    util_now_iso(u.created_at);
    store_oauth_client c = {0};
    util_id_new("cli", c.id);
    snprintf(c.name, sizeof c.name, "App");
    snprintf(c.redirect_uris, sizeof c.redirect_uris, "http://localhost:5/cb\nhttp://x/y");
    util_now_iso(c.created_at);
    if (store_workspace_insert(f->s, &w, &e) != 0 || store_user_insert(f->s, &u, &e) != 0 ||
        store_membership_add(f->s, u.id, w.id, &e) != 0 ||
        store_oauth_client_insert(f->s, &c, &e) != 0) {
        fprintf(stderr, "setup: %s\n", e.message);
        return -1;
    }
    snprintf(f->ws, sizeof f->ws, "%s", w.id);
    snprintf(f->user, sizeof f->user, "%s", u.id);
    snprintf(f->client, sizeof f->client, "%s", c.id);
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f) {
        harness_catalog_close(&f->cat);
        free(f);
    }
    return 0;
}

static void claims(auth_claims *c, int64_t exp)
{
    memset(c, 0, sizeof *c);
    snprintf(c->sub, sizeof c->sub, "usr_a");
    snprintf(c->workspace_id, sizeof c->workspace_id, "wksp_a");
    snprintf(c->client_id, sizeof c->client_id, "cli_a");
    snprintf(c->scope, sizeof c->scope, "workspace:admin");
    snprintf(c->sid, sizeof c->sid, "grt_a");
    snprintf(c->jti, sizeof c->jti, "at_a");
    c->iat = exp - 60;
    c->exp = exp;
}

static char *b64(const char *s)
{
    size_t n = strlen(s);
    char *out = xmalloc(n * 2 + 4);
    auth_b64url((const unsigned char *)s, n, out, n * 2 + 4);
    return out;
}

/* ---- primitives ---- */

static void test_b64url_round_trip(void **state)
{
    (void)state;
    const unsigned char in[] = {0xfb, 0xff, 0x00, 0x3e, 0x3f};
    char out[16];
    auth_b64url(in, sizeof in, out, sizeof out);
    assert_string_equal(out, "-_8APj8");
    unsigned char back[8];
    size_t n = 0;
    assert_int_equal(auth_b64url_decode(out, strlen(out), back, sizeof back, &n), 0);
    assert_int_equal(n, sizeof in);
    assert_memory_equal(back, in, sizeof in);
    assert_int_equal(auth_b64url_decode("+/8A", 4, back, sizeof back, &n), -1);
    assert_int_equal(auth_b64url_decode("-_8A=", 5, back, sizeof back, &n), -1);
}

static void test_keys_persist_with_private_modes(void **state)
{
    fixture *f = *state;
    auth_keys again;
    pf_err e;
    assert_int_equal(auth_keys_load(f->dir, &again, &e), 0);
    assert_string_equal(again.kid, f->k.kid);
    assert_memory_equal(again.pk, f->k.pk, sizeof again.pk);
    assert_int_equal(strlen(f->k.kid), 16);
    struct stat sb;
    char p[128];
    snprintf(p, sizeof p, "%s/keys/jwt-ed25519.key", f->dir);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    snprintf(p, sizeof p, "%s/keys", f->dir);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    json_t *j = auth_jwks(&f->k);
    json_t *key = json_array_get(json_object_get(j, "keys"), 0);
    assert_string_equal(json_string_value(json_object_get(key, "kty")), "OKP");
    assert_string_equal(json_string_value(json_object_get(key, "crv")), "Ed25519");
    assert_string_equal(json_string_value(json_object_get(key, "kid")), f->k.kid);
    assert_int_equal(strlen(json_string_value(json_object_get(key, "x"))), 43);
    json_decref(j);
}

static void test_jwt_sign_verify(void **state)
{
    fixture *f = *state;
    auth_claims c, out;
    claims(&c, 2000);
    char *t = NULL;
    pf_err e;
    assert_int_equal(auth_jwt_sign(&f->k, ISS, &c, &t, &e), 0);
    assert_true(auth_looks_like_jwt(t));
    assert_int_equal(auth_jwt_verify(&f->k, ISS, t, 1999, &out, &e), 0);
    assert_string_equal(out.workspace_id, "wksp_a");
    assert_string_equal(out.sid, "grt_a");
    assert_int_equal(out.exp, 2000);
    /* expired, wrong issuer */
    assert_int_equal(auth_jwt_verify(&f->k, ISS, t, 2000, &out, &e), -1);
    assert_int_equal(e.status, 401);
    assert_non_null(strstr(e.message, "expired"));
    assert_int_equal(auth_jwt_verify(&f->k, "http://other", t, 1999, &out, &e), -1);
    free(t);
}

static void test_jwt_rejects_forgeries(void **state)
{
    fixture *f = *state;
    auth_claims c, out;
    claims(&c, 2000);
    char *t = NULL;
    pf_err e;
    assert_int_equal(auth_jwt_sign(&f->k, ISS, &c, &t, &e), 0);
    const char *d1 = strchr(t, '.'), *d2 = strrchr(t, '.');

    /* payload changed (another workspace), signature kept */
    char *pl = b64("{\"iss\":\"" ISS "\",\"sub\":\"usr_a\",\"workspace_id\":\"wksp_b\","
                   "\"client_id\":\"cli_a\",\"scope\":\"workspace:admin\",\"sid\":\"grt_a\","
                   "\"jti\":\"at_a\",\"iat\":1,\"exp\":2000}");
    char *forged = xasprintf("%.*s.%s%s", (int)(d1 - t), t, pl, d2);
    assert_int_equal(auth_jwt_verify(&f->k, ISS, forged, 1999, &out, &e), -1);
    assert_non_null(strstr(e.message, "signature"));
    free(forged);

    /* alg:none with an empty signature, and with the original signature */
    char *none = b64("{\"alg\":\"none\",\"typ\":\"JWT\"}");
    forged = xasprintf("%s.%.*s.", none, (int)(d2 - d1 - 1), d1 + 1);
    assert_int_equal(auth_jwt_verify(&f->k, ISS, forged, 1999, &out, &e), -1);
    assert_non_null(strstr(e.message, "EdDSA"));
    free(forged);
    forged = xasprintf("%s.%.*s%s", none, (int)(d2 - d1 - 1), d1 + 1, d2);
    assert_int_equal(auth_jwt_verify(&f->k, ISS, forged, 1999, &out, &e), -1);
    free(forged);
    free(none);

    /* HS256 header */
    char *hs = b64("{\"alg\":\"HS256\",\"kid\":\"x\"}");
    forged = xasprintf("%s%.*s", hs, (int)(d2 - d1 + strlen(d2)), d1);
    assert_int_equal(auth_jwt_verify(&f->k, ISS, forged, 1999, &out, &e), -1);
    free(forged);
    free(hs);

    /* signed by another key with our kid */
    auth_keys other = f->k;
    crypto_sign_keypair(other.pk, other.sk);
    char *t2 = NULL;
    assert_int_equal(auth_jwt_sign(&other, ISS, &c, &t2, &e), 0);
    assert_int_equal(auth_jwt_verify(&f->k, ISS, t2, 1999, &out, &e), -1);
    assert_non_null(strstr(e.message, "signature"));
    free(t2);

    /* truncated signature, junk */
    char *cut = xstrdup(t);
    cut[strlen(cut) - 3] = '\0';
    assert_int_equal(auth_jwt_verify(&f->k, ISS, cut, 1999, &out, &e), -1);
    free(cut);
    assert_int_equal(auth_jwt_verify(&f->k, ISS, "a.b.c", 1999, &out, &e), -1);
    assert_false(auth_looks_like_jwt("pfs_abc"));
    assert_false(auth_looks_like_jwt("a.b.c.d"));
    free(pl);
    free(t);
}

/* Our verifier is libpq's: for libpq's salt and iteration count, the same text; and a
 * fresh salt each time. */
static void test_scram_verifier_matches_libpq(void **state)
{
    (void)state;
    pf_err e;
    PGconn *c = PQconnectStart("host=/nonexistent/pgfleet port=1 dbname=x user=x");
    assert_non_null(c);
    const char *passwords[] = {"secret", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn", "a b~c!"};
    for (size_t i = 0; i < sizeof passwords / sizeof passwords[0]; i++) {
        char *ref = PQencryptPasswordConn(c, passwords[i], "u1", "scram-sha-256");
        assert_non_null(ref);
        int iter = 0;
        char b64salt[64] = "";
        assert_int_equal(sscanf(ref, "SCRAM-SHA-256$%d:%63[^$]$", &iter, b64salt), 2);
        unsigned char salt[64];
        int n = EVP_DecodeBlock(salt, (const unsigned char *)b64salt, (int)strlen(b64salt));
        assert_true(n > 0);
        n -= (int)(strlen(b64salt) - strcspn(b64salt, "=")); /* the padding decodes to zeros */
        char ours[256];
        assert_int_equal(auth__scram_verifier_salted(passwords[i], salt, (size_t)n, iter, ours, &e),
                         0);
        assert_string_equal(ours, ref);
        PQfreemem(ref);
    }
    PQfinish(c);
    char a[256], b[256];
    assert_int_equal(auth_scram_verifier("u1", "secret", a, &e), 0);
    assert_int_equal(auth_scram_verifier("u1", "secret", b, &e), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(strncmp(a, "SCRAM-SHA-256$4096:", 19), 0);
    /* not ASCII: libpq's (with SASLprep) */
    assert_int_equal(auth_scram_verifier("u1", "p\xc3\xa4ss", a, &e), 0);
    assert_int_equal(strncmp(a, "SCRAM-SHA-256$4096:", 19), 0);
}

static void test_password_hash_verify(void **state)
{
    (void)state;
    char h[STORE_PWHASH_MAX];
    pf_err e;
    assert_int_equal(auth_password_hash("correct horse", h, &e), 0);
    assert_non_null(strstr(h, "$argon2id$"));
    assert_true(auth_password_verify(h, "correct horse"));
    assert_false(auth_password_verify(h, "correct horsE"));
    assert_false(auth_password_verify(NULL, "correct horse"));
    assert_false(auth_password_verify("", ""));
}

/* A bucket per key: burst requests at once, then one per 1/rate s; Retry-After in whole
 * seconds; keys are independent; the table stays bounded and forgets only full buckets
 * first; rate 0 is no limiter. */
static void test_ratelimit_bucket(void **state)
{
    (void)state;
    assert_null(auth_ratelimit_new(0, 10, 16));
    assert_int_equal(auth_ratelimit_take(NULL, "tok_a", 0), 0);

    auth_ratelimit *rl = auth_ratelimit_new(2, 5, 16); /* 2/s, bursts of 5 */
    int64_t t = 1000000;
    for (int i = 0; i < 5; i++)
        assert_int_equal(auth_ratelimit_take(rl, "tok_a", t), 0);
    assert_int_equal(auth_ratelimit_take(rl, "tok_a", t), 1); /* 0.5 s until a token: 1 s */
    assert_int_equal(auth_ratelimit_take(rl, "tok_b", t), 0); /* its own bucket */
    assert_int_equal(auth_ratelimit_take(rl, "tok_a", t + 499), 1);
    assert_int_equal(auth_ratelimit_take(rl, "tok_a", t + 500), 0);
    assert_int_equal(auth_ratelimit_take(rl, "tok_a", t + 500), 1);
    /* a long pause refills to the burst, not beyond */
    t += 60000;
    for (int i = 0; i < 5; i++)
        assert_int_equal(auth_ratelimit_take(rl, "tok_a", t), 0);
    assert_int_equal(auth_ratelimit_take(rl, "tok_a", t), 1);
    auth_ratelimit_free(rl);

    /* a slow rate: the wait is rounded up to whole seconds */
    rl = auth_ratelimit_new(0.1, 1, 16);
    assert_int_equal(auth_ratelimit_take(rl, "k", t), 0);
    assert_int_equal(auth_ratelimit_take(rl, "k", t), 10);
    auth_ratelimit_free(rl);

    /* 5000 keys through a table of 64: a key that keeps asking keeps its (never full)
     * bucket, because the buckets of keys that have refilled are forgotten first */
    rl = auth_ratelimit_new(1, 2, 64);
    for (int i = 0; i < 5000; i++) {
        int64_t now = t + (int64_t)i * 1000;
        char k[32];
        snprintf(k, sizeof k, "tok_%d", i);
        assert_int_equal(auth_ratelimit_take(rl, k, now), 0); /* a new key starts full */
        if (i == 0) {
            assert_int_equal(auth_ratelimit_take(rl, "hot", now), 0);
            assert_int_equal(auth_ratelimit_take(rl, "hot", now), 0);
        } else {
            assert_int_equal(auth_ratelimit_take(rl, "hot", now), 0); /* refilled one */
        }
        assert_int_equal(auth_ratelimit_take(rl, "hot", now), 1); /* not a fresh bucket */
    }
    auth_ratelimit_free(rl);
}

static void test_throttle_backs_off(void **state)
{
    (void)state;
    const char *k = "a@example.com|10.0.0.1";
    int64_t t = 1000000;
    assert_int_equal(auth_throttle_check(k, t), 0);
    for (int i = 0; i < AUTH_THROTTLE_FREE - 1; i++) {
        auth_throttle_fail(k, t);
        assert_int_equal(auth_throttle_check(k, t), 0);
    }
    auth_throttle_fail(k, t); /* third failure: wait 1 s */
    assert_int_equal(auth_throttle_check(k, t), 1);
    assert_int_equal(auth_throttle_check(k, t + 1000), 0);
    auth_throttle_fail(k, t + 1000); /* fourth: 2 s */
    assert_int_equal(auth_throttle_check(k, t + 1000), 2);
    assert_int_equal(auth_throttle_check("b@example.com|10.0.0.1", t + 1000), 0);
    for (int i = 0; i < 20; i++)
        auth_throttle_fail(k, t + 2000);
    assert_int_equal(auth_throttle_check(k, t + 2000), AUTH_THROTTLE_MAX_S);
    /* forgotten after the window; reset on success */
    assert_int_equal(auth_throttle_check(k, t + 2000 + 16 * 60 * 1000), 0);
    auth_throttle_fail(k, t);
    auth_throttle_fail(k, t);
    auth_throttle_fail(k, t);
    assert_true(auth_throttle_check(k, t) > 0);
    auth_throttle_reset(k);
    assert_int_equal(auth_throttle_check(k, t), 0);
}

static void test_pkce_scope_redirect(void **state)
{
    fixture *f = *state;
    /* challenge computed independently (python hashlib + base64) */
    const char *v = "dBjftJeZ4CVP-mJ92K9K8Kp-z2j27Ue4fuWqGgXp2Kc";
    assert_true(auth_pkce_s256_ok(v, "Clv7uGs9dJOQUWCxZYo3exZ-NpMCvMM2KAUbCI3Rskc"));
    assert_false(auth_pkce_s256_ok(v, "Clv7uGs9dJOQUWCxZYo3exZ-NpMCvMM2KAUbCI3Rskd"));
    assert_false(auth_pkce_s256_ok("short", "Clv7uGs9dJOQUWCxZYo3exZ-NpMCvMM2KAUbCI3Rskc"));
    assert_false(auth_pkce_s256_ok(v, v)); /* plain is not S256 */

    char s[STORE_SCOPE_MAX];
    assert_int_equal(auth_scope_normalize("offline_access  workspace:admin", s), 0);
    assert_string_equal(s, "workspace:admin offline_access");
    assert_int_equal(auth_scope_normalize(NULL, s), 0);
    assert_string_equal(s, "workspace:admin offline_access");
    assert_int_equal(auth_scope_normalize("offline_access", s), 0);
    assert_string_equal(s, "offline_access");
    assert_int_equal(auth_scope_normalize("workspace:admin root", s), -1);
    assert_true(auth_scope_has("workspace:admin offline_access", "workspace:admin"));
    assert_false(auth_scope_has("offline_access", "workspace:admin"));
    assert_false(auth_scope_has("workspace:administrator", "workspace:admin"));

    store_oauth_client c;
    pf_err e;
    assert_int_equal(store_oauth_client_get(f->s, f->client, &c, &e), 0);
    assert_true(auth_redirect_registered(&c, "http://localhost:5/cb"));
    assert_true(auth_redirect_registered(&c, "http://x/y"));
    assert_false(auth_redirect_registered(&c, "http://localhost:5/cb/"));
    assert_false(auth_redirect_registered(&c, "http://localhost:5/c"));
    assert_false(auth_redirect_registered(&c, ""));
}

/* ---- flows ---- */

static void code_for(fixture *f, const char *verifier, char code[AUTH_SECRET_MAX])
{
    unsigned char h[32];
    crypto_hash_sha256(h, (const unsigned char *)verifier, strlen(verifier));
    char ch[64];
    auth_b64url(h, sizeof h, ch, sizeof ch);
    pf_err e;
    assert_int_equal(auth_code_issue(f->s, &f->cfg, f->client, f->user, f->ws,
                                     "http://localhost:5/cb", "workspace:admin offline_access", ch,
                                     code, &e),
                     0);
}

/* An operator token passes only the check that accepts it, acts in no workspace and is
 * in no workspace's token list; a workspace token passes both checks. */
static void test_operator_token(void **state)
{
    fixture *f = *state;
    pf_err e;
    char val[AUTH_TOKEN_MAX], ws[PF_ID_MAX], actor[PF_ID_MAX], hdr[AUTH_TOKEN_MAX + 16];
    store_token t;
    assert_int_equal(auth_operator_token_create(f->s, f->ws, NULL, val, &t, &e), 0);
    assert_true(t.is_operator);
    assert_string_equal(t.name, "operator token");
    snprintf(hdr, sizeof hdr, "Bearer %s", val);
    assert_int_equal(auth_check_bearer(f->s, hdr, ws, actor, &e), -1);
    assert_int_equal(e.status, 401);
    bool op = false;
    assert_int_equal(auth_check_bearer_any(f->s, hdr, ws, actor, &op, &e), 0);
    assert_true(op);
    assert_string_equal(ws, "");
    assert_string_equal(actor, t.id);
    /* the owner workspace neither lists, reads nor deletes it */
    store_token *list = NULL, got;
    size_t n = 9;
    store_page_out po;
    assert_int_equal(store_token_list(f->s, f->ws, NULL, &list, &n, &po, &e), 0);
    assert_int_equal(n, 0);
    free(list);
    assert_int_equal(store_token_get(f->s, f->ws, t.id, &got, &e), -1);
    assert_int_equal(e.status, 404);
    assert_int_equal(store_token_delete(f->s, f->ws, t.id, &e), -1);
    assert_int_equal(e.status, 404);
    /* a workspace token: both checks, not an operator */
    assert_int_equal(auth_token_create(f->s, f->ws, "ci", NULL, val, &t, &e), 0);
    snprintf(hdr, sizeof hdr, "Bearer %s", val);
    assert_int_equal(auth_check_bearer(f->s, hdr, ws, actor, &e), 0);
    assert_string_equal(ws, f->ws);
    assert_int_equal(auth_check_bearer_any(f->s, hdr, ws, actor, &op, &e), 0);
    assert_false(op);
    sodium_memzero(val, sizeof val);
}

static void test_code_exchange_and_replay(void **state)
{
    fixture *f = *state;
    const char *v = "verifier-verifier-verifier-verifier-verifier";
    char code[AUTH_SECRET_MAX];
    code_for(f, v, code);
    auth_token_set ts;
    pf_err e;
    /* wrong verifier: refused, and the code is spent */
    assert_int_equal(auth_code_exchange(f->s, &f->k, &f->cfg, code, f->client,
                                        "http://localhost:5/cb",
                                        "x-verifier-verifier-verifier-"
                                        "verifier-verifier",
                                        &ts, &e),
                     -1);
    assert_string_equal(e.code, "invalid_grant");
    assert_int_equal(auth_code_exchange(f->s, &f->k, &f->cfg, code, f->client,
                                        "http://localhost:5/cb", v, &ts, &e),
                     -1);
    assert_non_null(strstr(e.message, "already used"));

    code_for(f, v, code);
    assert_int_equal(
        auth_code_exchange(f->s, &f->k, &f->cfg, code, f->client, "http://x/y", v, &ts, &e), -1);
    assert_non_null(strstr(e.message, "redirect_uri"));

    code_for(f, v, code);
    assert_int_equal(auth_code_exchange(f->s, &f->k, &f->cfg, code, f->client,
                                        "http://localhost:5/cb", v, &ts, &e),
                     0);
    assert_string_equal(ts.workspace_id, f->ws);
    assert_int_equal(ts.expires_in, 60);
    auth_claims c;
    store_grant g;
    assert_int_equal(auth_check_access(f->s, &f->k, ISS, ts.access_token, &c, &g, &e), 0);
    assert_string_equal(c.sub, f->user);
    /* replaying the code revokes what it issued */
    auth_token_set ts2;
    assert_int_equal(auth_code_exchange(f->s, &f->k, &f->cfg, code, f->client,
                                        "http://localhost:5/cb", v, &ts2, &e),
                     -1);
    assert_int_equal(auth_check_access(f->s, &f->k, ISS, ts.access_token, &c, &g, &e), -1);
    assert_non_null(strstr(e.message, "revoked"));
    assert_int_equal(auth_refresh(f->s, &f->k, &f->cfg, ts.refresh_token, f->client, &ts2, &e), -1);
    free(ts.access_token);
}

static void test_refresh_rotation_and_reuse(void **state)
{
    fixture *f = *state;
    const char *v = "verifier-verifier-verifier-verifier-verifier";
    char code[AUTH_SECRET_MAX];
    code_for(f, v, code);
    auth_token_set t1, t2, t3;
    pf_err e;
    assert_int_equal(auth_code_exchange(f->s, &f->k, &f->cfg, code, f->client,
                                        "http://localhost:5/cb", v, &t1, &e),
                     0);
    assert_int_equal(auth_refresh(f->s, &f->k, &f->cfg, t1.refresh_token, f->client, &t2, &e), 0);
    assert_string_not_equal(t1.refresh_token, t2.refresh_token);
    auth_claims c;
    store_grant g;
    assert_int_equal(auth_check_access(f->s, &f->k, ISS, t2.access_token, &c, &g, &e), 0);
    /* reuse of the rotated token: refused, chain revoked (t2 dies too) */
    assert_int_equal(auth_refresh(f->s, &f->k, &f->cfg, t1.refresh_token, f->client, &t3, &e), -1);
    assert_string_equal(e.code, "invalid_grant");
    assert_int_equal(auth_check_access(f->s, &f->k, ISS, t2.access_token, &c, &g, &e), -1);
    assert_int_equal(auth_refresh(f->s, &f->k, &f->cfg, t2.refresh_token, f->client, &t3, &e), -1);
    free(t1.access_token);
    free(t2.access_token);

    /* revocation (RFC 7009) of a refresh token kills the chain; unknown tokens are fine */
    code_for(f, v, code);
    assert_int_equal(auth_code_exchange(f->s, &f->k, &f->cfg, code, f->client,
                                        "http://localhost:5/cb", v, &t1, &e),
                     0);
    assert_int_equal(auth_revoke(f->s, &f->k, &f->cfg, "pfr_unknown", f->client, &e), 0);
    assert_int_equal(auth_check_access(f->s, &f->k, ISS, t1.access_token, &c, &g, &e), 0);
    assert_int_equal(auth_revoke(f->s, &f->k, &f->cfg, t1.refresh_token, f->client, &e), 0);
    assert_int_equal(auth_check_access(f->s, &f->k, ISS, t1.access_token, &c, &g, &e), -1);
    free(t1.access_token);

    /* deleting the integration revokes its grants */
    code_for(f, v, code);
    assert_int_equal(auth_code_exchange(f->s, &f->k, &f->cfg, code, f->client,
                                        "http://localhost:5/cb", v, &t1, &e),
                     0);
    store_integration itg;
    assert_int_equal(store_integration_by_client(f->s, f->ws, f->client, &itg, &e), 0);
    assert_int_equal(store_integration_delete(f->s, f->ws, itg.id, &e), 0);
    assert_int_equal(auth_check_access(f->s, &f->k, ISS, t1.access_token, &c, &g, &e), -1);
    assert_int_equal(store_integration_delete(f->s, f->ws, itg.id, &e), -1);
    assert_int_equal(e.status, 404);
    free(t1.access_token);
}

int main(void)
{
    util_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url_round_trip),
        cmocka_unit_test_setup_teardown(test_keys_persist_with_private_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jwt_sign_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jwt_rejects_forgeries, setup, teardown),
        cmocka_unit_test(test_password_hash_verify),
        cmocka_unit_test(test_scram_verifier_matches_libpq),
        cmocka_unit_test(test_throttle_backs_off),
        cmocka_unit_test(test_ratelimit_bucket),
        cmocka_unit_test_setup_teardown(test_pkce_scope_redirect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_operator_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_code_exchange_and_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_rotation_and_reuse, setup, teardown),
    };
    return HARNESS_RUN("auth", tests, NULL, NULL);
}
