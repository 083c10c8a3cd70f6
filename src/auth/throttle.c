/* auth: sign-in throttling. A small in-memory table keyed by SHA-256(key) remembers
 * failures; a slot is reused when its last failure is older than the window or, when the
 * table is full, the least recently failed slot is taken. The lock covers table lookups
 * only, never a password check. State is lost on restart (by design: it is a brake, not
 * a lockout). */
#include <pthread.h>
#include <string.h>

#include "auth/auth.h"

#define SLOTS 1024
#define WINDOW_MS (15 * 60 * 1000) /* failures older than this are forgotten */

typedef struct slot {
    unsigned char key[crypto_hash_sha256_BYTES];
    int fails;
    int64_t last_ms;
    bool used;
} slot;

static slot table[SLOTS];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void digest(const char *key, unsigned char out[crypto_hash_sha256_BYTES])
{
    crypto_hash_sha256(out, (const unsigned char *)key, strlen(key));
}

/* The slot for d, or NULL; called with mu held. */
static slot *find(const unsigned char *d, int64_t now_ms)
{
    for (int i = 0; i < SLOTS; i++) {
        slot *s = &table[i];
        if (s->used && memcmp(s->key, d, sizeof s->key) == 0) {
            if (now_ms - s->last_ms > WINDOW_MS) {
                s->used = false;
                return NULL;
            }
            return s;
        }
    }
    return NULL;
}

static int64_t delay_ms(int fails)
{
    if (fails < AUTH_THROTTLE_FREE)
        return 0;
    int shift = fails - AUTH_THROTTLE_FREE;
    int64_t s = shift >= 9 ? AUTH_THROTTLE_MAX_S : (int64_t)1 << shift;
    return (s > AUTH_THROTTLE_MAX_S ? AUTH_THROTTLE_MAX_S : s) * 1000;
}

int auth_throttle_check(const char *key, int64_t now_ms)
{
    unsigned char d[crypto_hash_sha256_BYTES];
    digest(key, d);
    pthread_mutex_lock(&mu);
    slot *s = find(d, now_ms);
    int64_t wait = s ? s->last_ms + delay_ms(s->fails) - now_ms : 0;
    pthread_mutex_unlock(&mu);
    return wait > 0 ? (int)((wait + 999) / 1000) : 0;
}

void auth_throttle_fail(const char *key, int64_t now_ms)
{
    unsigned char d[crypto_hash_sha256_BYTES];
    digest(key, d);
    pthread_mutex_lock(&mu);
    slot *s = find(d, now_ms);
    if (!s) {
        slot *victim = NULL;
        for (int i = 0; i < SLOTS; i++) {
            slot *c = &table[i];
            if (!c->used || now_ms - c->last_ms > WINDOW_MS) {
                victim = c;
                break;
            }
            if (!victim || c->last_ms < victim->last_ms)
                victim = c;
        }
        s = victim;
        memset(s, 0, sizeof *s);
        memcpy(s->key, d, sizeof s->key);
        s->used = true;
    }
    if (s->fails < 1000)
        s->fails++;
    s->last_ms = now_ms;
    pthread_mutex_unlock(&mu);
}

void auth_throttle_reset(const char *key)
{
    unsigned char d[crypto_hash_sha256_BYTES];
    digest(key, d);
    pthread_mutex_lock(&mu);
    for (int i = 0; i < SLOTS; i++)
        if (table[i].used && memcmp(table[i].key, d, sizeof d) == 0)
            table[i].used = false;
    pthread_mutex_unlock(&mu);
}
