/* auth: request rate limits per credential, a token bucket each (docs/api.md "Rate limits").
 *
 * A bucket holds up to `burst` tokens and refills at `rate` tokens a second; a request takes
 * one, or waits until one has refilled. Buckets live in a fixed table (memory is bounded
 * whatever the number of credentials): a key hashes to a window of PROBE slots. A slot is
 * reused when it is empty or its bucket has refilled to full (forgetting such a bucket
 * changes nothing: a new one starts full); when the whole window is busy the least recently
 * used slot is taken, which at worst gives that credential a fresh burst. One lock, held
 * for a few comparisons. State is lost on restart: a limit, not an accounting. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"

#define PROBE 8
#define KEY_MAX 48

typedef struct bucket {
    char key[KEY_MAX]; /* "" = empty slot */
    double tokens;     /* at last_ms */
    int64_t last_ms;
} bucket;

struct auth_ratelimit {
    double rate, burst;
    size_t mask; /* slots - 1 (slots is a power of two) */
    bucket *slots;
    pthread_mutex_t mu;
};

auth_ratelimit *auth_ratelimit_new(double rate, double burst, size_t slots)
{
    if (rate <= 0)
        return NULL;
    size_t n = PROBE;
    while (n < slots)
        n <<= 1;
    auth_ratelimit *rl = xcalloc(1, sizeof *rl);
    rl->rate = rate;
    rl->burst = burst < 1 ? 1 : burst;
    rl->mask = n - 1;
    rl->slots = xcalloc(n, sizeof *rl->slots);
    pthread_mutex_init(&rl->mu, NULL);
    return rl;
}

void auth_ratelimit_free(auth_ratelimit *rl)
{
    if (!rl)
        return;
    pthread_mutex_destroy(&rl->mu);
    free(rl->slots);
    free(rl);
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

/* The bucket's tokens at now_ms (called with mu held). */
static double level(const auth_ratelimit *rl, const bucket *b, int64_t now_ms)
{
    double t = b->tokens + (double)(now_ms - b->last_ms) * rl->rate / 1000.0;
    return t > rl->burst ? rl->burst : t;
}

/* The slot of key: its own, else a free or forgettable one, else the least recently used
 * of its window, reset to a full bucket. Called with mu held. */
static bucket *slot_for(auth_ratelimit *rl, const char *key, int64_t now_ms)
{
    size_t h = (size_t)fnv1a(key);
    bucket *reuse = NULL, *oldest = NULL;
    for (size_t i = 0; i < PROBE; i++) {
        bucket *b = &rl->slots[(h + i) & rl->mask];
        if (b->key[0] && strcmp(b->key, key) == 0)
            return b;
        if (!reuse && (!b->key[0] || level(rl, b, now_ms) >= rl->burst))
            reuse = b;
        if (!oldest || b->last_ms < oldest->last_ms)
            oldest = b;
    }
    bucket *b = reuse ? reuse : oldest;
    snprintf(b->key, sizeof b->key, "%s", key);
    b->tokens = rl->burst;
    b->last_ms = now_ms;
    return b;
}

int auth_ratelimit_take(auth_ratelimit *rl, const char *key, int64_t now_ms)
{
    if (!rl)
        return 0;
    pthread_mutex_lock(&rl->mu);
    bucket *b = slot_for(rl, key, now_ms);
    double t = level(rl, b, now_ms);
    int wait = 0;
    if (t >= 1) {
        t -= 1;
    } else {
        double s = ceil((1 - t) / rl->rate);
        wait = s < 1 ? 1 : s > 3600 ? 3600 : (int)s;
    }
    b->tokens = t;
    b->last_ms = now_ms;
    pthread_mutex_unlock(&rl->mu);
    return wait;
}
