/* auth: signing keys, base64url and EdDSA JWTs (RFC 7515/7519, RFC 8037). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/auth.h"
#include "util/util.h"

void auth_b64url(const unsigned char *in, size_t n, char *out, size_t outsz)
{
    sodium_bin2base64(out, outsz, in, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int auth_b64url_decode(const char *in, size_t inlen, unsigned char *out, size_t outsz,
                       size_t *outlen)
{
    const char *end = NULL;
    if (sodium_base642bin(out, outsz, in, inlen, NULL, outlen, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return -1;
    return end == in + inlen ? 0 : -1;
}

/* ---- keys ---- */

/* Reads exactly n bytes from path, or makes the file with fresh bytes from gen. */
static int key_file(const char *path, unsigned char *buf, size_t n, void (*gen)(unsigned char *),
                    pf_err *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t r = read(fd, buf, n);
        close(fd);
        if (r != (ssize_t)n)
            return err_internal(e, "key file %s is damaged (expected %zu bytes)", path, n);
        return 0;
    }
    if (errno != ENOENT)
        return err_internal(e, "cannot read %s: %s", path, strerror(errno));
    gen(buf);
    char *tmp = xasprintf("%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = 0;
    if (fd < 0 || write(fd, buf, n) != (ssize_t)n || fsync(fd) != 0)
        rc = err_internal(e, "cannot write %s: %s", tmp, strerror(errno));
    if (fd >= 0)
        close(fd);
    /* link(2) fails if another process made the file meanwhile: then read theirs */
    if (rc == 0 && link(tmp, path) != 0) {
        unlink(tmp);
        free(tmp);
        return errno == EEXIST ? key_file(path, buf, n, gen, e)
                               : err_internal(e, "cannot create %s: %s", path, strerror(errno));
    }
    unlink(tmp);
    free(tmp);
    return rc;
}

/* The secret key embeds the public half (crypto_sign_ed25519_sk_to_pk recovers it). */
static void gen_ed25519(unsigned char *sk)
{
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    crypto_sign_keypair(pk, sk);
}

static void gen_mac(unsigned char *k)
{
    crypto_auth_keygen(k);
}

int auth_keys_load(const char *home, auth_keys *k, pf_err *e)
{
    memset(k, 0, sizeof *k);
    char *dir = xasprintf("%s/keys", home);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        err_internal(e, "cannot create %s: %s", dir, strerror(errno));
        free(dir);
        return -1;
    }
    chmod(dir, 0700);
    char *sign = xasprintf("%s/jwt-ed25519.key", dir);
    char *mac = xasprintf("%s/session.key", dir);
    int rc = key_file(sign, k->sk, sizeof k->sk, gen_ed25519, e);
    if (rc == 0)
        rc = key_file(mac, k->mac_key, sizeof k->mac_key, gen_mac, e);
    free(sign);
    free(mac);
    free(dir);
    if (rc != 0)
        return -1;
    crypto_sign_ed25519_sk_to_pk(k->pk, k->sk);
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, k->pk, sizeof k->pk);
    char full[64];
    auth_b64url(h, sizeof h, full, sizeof full);
    snprintf(k->kid, sizeof k->kid, "%.16s", full);
    return 0;
}

json_t *auth_jwks(const auth_keys *k)
{
    char x[64];
    auth_b64url(k->pk, sizeof k->pk, x, sizeof x);
    json_t *key = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "OKP", "crv", "Ed25519", "x",
                            x, "kid", k->kid, "alg", "EdDSA", "use", "sig");
    return json_pack("{s:[o]}", "keys", key);
}

/* ---- JWT ---- */

bool auth_looks_like_jwt(const char *v)
{
    const char *d1 = strchr(v, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    return d1 && d2 && !strchr(d2 + 1, '.');
}

static char *b64_json(json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT);
    if (!text)
        abort();
    size_t n = strlen(text);
    size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *out = xmalloc(cap);
    auth_b64url((const unsigned char *)text, n, out, cap);
    free(text);
    return out;
}

int auth_jwt_sign(const auth_keys *k, const char *issuer, const auth_claims *c, char **out,
                  pf_err *e)
{
    json_t *hdr = json_pack("{s:s, s:s, s:s}", "alg", "EdDSA", "typ", "JWT", "kid", k->kid);
    json_t *pl = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "iss", issuer, "sub",
                           c->sub, "workspace_id", c->workspace_id, "client_id", c->client_id,
                           "scope", c->scope, "sid", c->sid, "jti", c->jti, "iat",
                           (json_int_t)c->iat, "exp", (json_int_t)c->exp);
    if (!hdr || !pl) {
        json_decref(hdr);
        json_decref(pl);
        return err_internal(e, "cannot build a JWT");
    }
    char *h = b64_json(hdr), *p = b64_json(pl);
    json_decref(hdr);
    json_decref(pl);
    char *input = xasprintf("%s.%s", h, p);
    free(h);
    free(p);
    unsigned char sig[crypto_sign_BYTES];
    crypto_sign_detached(sig, NULL, (const unsigned char *)input, strlen(input), k->sk);
    char s64[128];
    auth_b64url(sig, sizeof sig, s64, sizeof s64);
    *out = xasprintf("%s.%s", input, s64);
    free(input);
    return 0;
}

/* Decodes one base64url JSON object segment; NULL if it is not one. */
static json_t *segment_json(const char *s, size_t n)
{
    unsigned char *buf = xmalloc(n + 1);
    size_t len = 0;
    json_t *j = NULL;
    if (auth_b64url_decode(s, n, buf, n + 1, &len) == 0) {
        j = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, NULL);
        if (j && !json_is_object(j)) {
            json_decref(j);
            j = NULL;
        }
    }
    free(buf);
    return j;
}

static int claim_str(json_t *pl, const char *name, char *dst, size_t cap)
{
    const char *v = json_string_value(json_object_get(pl, name));
    if (!v || strlen(v) >= cap)
        return -1;
    snprintf(dst, cap, "%s", v);
    return 0;
}

int auth_jwt_verify(const auth_keys *k, const char *issuer, const char *token, int64_t now,
                    auth_claims *out, pf_err *e)
{
    const char *hint = "Sign in again to get a new access token.";
    memset(out, 0, sizeof *out);
    size_t tl = strlen(token);
    if (tl > AUTH_JWT_MAX || !auth_looks_like_jwt(token))
        return err_set(e, 401, "Unauthorized", hint, "Invalid access token");
    const char *d1 = strchr(token, '.');
    const char *d2 = strchr(d1 + 1, '.');
    json_t *hdr = segment_json(token, (size_t)(d1 - token));
    if (!hdr)
        return err_set(e, 401, "Unauthorized", hint, "Invalid access token: malformed header");
    const char *alg = json_string_value(json_object_get(hdr, "alg"));
    const char *kid = json_string_value(json_object_get(hdr, "kid"));
    bool alg_ok = alg && strcmp(alg, "EdDSA") == 0;
    bool kid_ok = kid && strcmp(kid, k->kid) == 0;
    json_decref(hdr);
    if (!alg_ok)
        return err_set(e, 401, "Unauthorized", hint,
                       "Invalid access token: only EdDSA signatures are accepted");
    if (!kid_ok)
        return err_set(e, 401, "Unauthorized", hint, "Invalid access token: unknown key");
    unsigned char sig[crypto_sign_BYTES + 4];
    size_t siglen = 0;
    const char *s = d2 + 1;
    if (auth_b64url_decode(s, strlen(s), sig, sizeof sig, &siglen) != 0 ||
        siglen != crypto_sign_BYTES ||
        crypto_sign_verify_detached(sig, (const unsigned char *)token, (size_t)(d2 - token),
                                    k->pk) != 0)
        return err_set(e, 401, "Unauthorized", hint, "Invalid access token: bad signature");
    json_t *pl = segment_json(d1 + 1, (size_t)(d2 - d1 - 1));
    if (!pl)
        return err_set(e, 401, "Unauthorized", hint, "Invalid access token: malformed payload");
    int rc = 0;
    const char *iss = json_string_value(json_object_get(pl, "iss"));
    json_t *exp = json_object_get(pl, "exp"), *iat = json_object_get(pl, "iat");
    if (!iss || strcmp(iss, issuer) != 0 || !json_is_integer(exp) ||
        claim_str(pl, "sub", out->sub, sizeof out->sub) != 0 ||
        claim_str(pl, "workspace_id", out->workspace_id, sizeof out->workspace_id) != 0 ||
        claim_str(pl, "client_id", out->client_id, sizeof out->client_id) != 0 ||
        claim_str(pl, "scope", out->scope, sizeof out->scope) != 0 ||
        claim_str(pl, "sid", out->sid, sizeof out->sid) != 0 ||
        claim_str(pl, "jti", out->jti, sizeof out->jti) != 0) {
        rc = err_set(e, 401, "Unauthorized", hint, "Invalid access token: bad claims");
    } else {
        out->exp = json_integer_value(exp);
        out->iat = json_is_integer(iat) ? json_integer_value(iat) : 0;
        if (out->exp <= now)
            rc = err_set(e, 401, "Unauthorized", "Refresh the access token.",
                         "The access token has expired");
    }
    json_decref(pl);
    return rc;
}
