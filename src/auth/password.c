/* auth: password hashing (argon2id through libsodium's crypto_pwhash_str). */
#include <pthread.h>
#include <string.h>

#include "auth/auth.h"
#include "util/log.h"

int auth_password_hash(const char *password, char out[STORE_PWHASH_MAX], pf_err *e)
{
    _Static_assert(STORE_PWHASH_MAX >= crypto_pwhash_STRBYTES, "room for a pwhash string");
    if (crypto_pwhash_str_alg(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE,
                              crypto_pwhash_ALG_ARGON2ID13) != 0)
        return err_internal(e, "password hashing ran out of memory");
    return 0;
}

static char dummy_hash[STORE_PWHASH_MAX];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void make_dummy(void)
{
    char pw[33];
    util_secret(pw, 32);
    if (auth_password_hash(pw, dummy_hash, NULL) != 0)
        dummy_hash[0] = '\0';
}

bool auth_password_verify(const char *hash, const char *password)
{
    if (!hash || !hash[0]) {
        pthread_once(&dummy_once, make_dummy);
        if (dummy_hash[0] && crypto_pwhash_str_verify(dummy_hash, password, strlen(password)) == 0)
            log_sub(LOG_WARN, "auth", "a password matched the dummy hash");
        return false;
    }
    return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
}
