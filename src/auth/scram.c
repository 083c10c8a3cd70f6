/* auth: SCRAM-SHA-256 verifiers for connection roles, computed here (pure CPU, no server),
 * so no plaintext password reaches a server, PgBouncer or a log.
 *
 * The verifier is what PostgreSQL stores (RFC 5802, RFC 7677):
 *   SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
 * with SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, iterations), StoredKey =
 * SHA-256(HMAC(SaltedPassword, "Client Key")), ServerKey = HMAC(SaltedPassword, "Server
 * Key"), all in base64. OpenSSL's PBKDF2 keeps its HMAC state across the iterations, about
 * a third of the CPU of libpq's PQencryptPasswordConn (one HMAC set up per iteration), and
 * it runs in every create's request. A password that is not plain ASCII goes through libpq,
 * which applies SASLprep to it first (ASCII passes SASLprep unchanged). */
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"

#define SCRAM_ITERATIONS 4096 /* PostgreSQL's default (scram_iterations) */
#define SCRAM_SALT_LEN 16

/* libpq's way, for passwords SASLprep may change. */
static int verifier_libpq(const char *role, const char *password, char out[256], pf_err *e)
{
    /* PQencryptPasswordConn needs a PGconn only for its error buffer when the algorithm is
     * named: a connection to a socket directory that cannot exist fails at once, without
     * touching the network. */
    PGconn *c = PQconnectStart("host=/nonexistent/pgfleet port=1 dbname=x user=x "
                               "connect_timeout=1");
    if (!c)
        return err_internal(e, "scram verifier: out of memory");
    int ret = -1;
    char *v = PQencryptPasswordConn(c, password, role, "scram-sha-256");
    if (!v) {
        err_internal(e, "scram verifier: %s", PQerrorMessage(c));
        goto out;
    }
    if (strlen(v) >= 256) {
        err_internal(e, "scram verifier: unexpectedly long");
        goto out;
    }
    memcpy(out, v, strlen(v) + 1);
    ret = 0;
out:
    if (v) {
        memset(v, 0, strlen(v));
        PQfreemem(v);
    }
    PQfinish(c);
    return ret;
}

int auth__scram_verifier_salted(const char *password, const unsigned char *salt, size_t saltlen,
                                int iterations, char out[256], pf_err *e)
{
    out[0] = '\0';
    unsigned char salted[SHA256_DIGEST_LENGTH], client[SHA256_DIGEST_LENGTH],
        stored[SHA256_DIGEST_LENGTH], server[SHA256_DIGEST_LENGTH];
    unsigned int l1 = 0, l2 = 0;
    char b_salt[64], b_stored[64], b_server[64];
    int ret = -1;
    if (saltlen > 32 || iterations < 1) {
        err_internal(e, "scram verifier: bad salt or iteration count");
        goto out;
    }
    if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)saltlen, iterations,
                          EVP_sha256(), sizeof salted, salted) != 1 ||
        !HMAC(EVP_sha256(), salted, sizeof salted, (const unsigned char *)"Client Key", 10, client,
              &l1) ||
        !HMAC(EVP_sha256(), salted, sizeof salted, (const unsigned char *)"Server Key", 10, server,
              &l2) ||
        l1 != sizeof client || l2 != sizeof server || !SHA256(client, sizeof client, stored)) {
        err_internal(e, "scram verifier: the digest failed");
        goto out;
    }
    EVP_EncodeBlock((unsigned char *)b_salt, salt, (int)saltlen);
    EVP_EncodeBlock((unsigned char *)b_stored, stored, sizeof stored);
    EVP_EncodeBlock((unsigned char *)b_server, server, sizeof server);
    snprintf(out, 256, "SCRAM-SHA-256$%d:%s$%s:%s", iterations, b_salt, b_stored, b_server);
    ret = 0;
out:
    OPENSSL_cleanse(salted, sizeof salted);
    OPENSSL_cleanse(client, sizeof client);
    return ret;
}

int auth_scram_verifier(const char *role, const char *password, char out[256], pf_err *e)
{
    out[0] = '\0';
    if (!role || !password)
        return err_internal(e, "scram verifier: missing role or password");
    bool ascii = true;
    for (const unsigned char *p = (const unsigned char *)password; *p && ascii; p++)
        ascii = *p >= 0x20 && *p < 0x7f;
    if (!ascii)
        return verifier_libpq(role, password, out, e);
    unsigned char salt[SCRAM_SALT_LEN];
    if (RAND_bytes(salt, sizeof salt) != 1)
        return err_internal(e, "scram verifier: no random bytes");
    return auth__scram_verifier_salted(password, salt, sizeof salt, SCRAM_ITERATIONS, out, e);
}
