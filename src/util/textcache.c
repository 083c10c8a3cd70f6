/* util/textcache: text kept by (id, revision) (textcache.h). A hash table of chained
 * entries under one mutex; a text is shared by the table and its readers through a count,
 * freed by the last of them. */
#include "util/textcache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

typedef struct entry {
    textcache_text t; /* first: a reader's pointer is the entry's; t.s is the entry's own */
    atomic_int refs;  /* the table's (when linked) and each reader's */
    struct entry *next;
    int64_t rev;
    char id[PF_ID_MAX];
} entry;

struct textcache {
    pthread_mutex_t mu;
    entry **buckets;
    size_t nbuckets, budget, bytes, texts;
    size_t hand; /* the next bucket to empty when the budget is reached */
    uint64_t hits, misses;
};

textcache *textcache_new(size_t buckets, size_t budget)
{
    textcache *c = xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->nbuckets = buckets ? buckets : 1;
    c->buckets = xcalloc(c->nbuckets, sizeof *c->buckets);
    c->budget = budget;
    return c;
}

static void unref(entry *en)
{
    if (en && atomic_fetch_sub(&en->refs, 1) == 1) {
        free((char *)en->t.s);
        free(en);
    }
}

/* Takes *at out of its chain (the lock held). */
static void drop(textcache *c, entry **at)
{
    entry *en = *at;
    *at = en->next;
    c->bytes -= sizeof *en + en->t.len + 1;
    c->texts--;
    unref(en);
}

static void drop_all(textcache *c)
{
    for (size_t i = 0; i < c->nbuckets; i++)
        while (c->buckets[i])
            drop(c, &c->buckets[i]);
}

void textcache_free(textcache *c)
{
    if (!c)
        return;
    drop_all(c);
    free(c->buckets);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* FNV-1a of the id */
static size_t bucket_of(const textcache *c, const char *id)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 0x100000001b3u;
    return (size_t)(h % c->nbuckets);
}

/* Where id's entry is linked from in its chain (*at NULL: none; the lock held). */
static entry **find(textcache *c, const char *id)
{
    entry **at = &c->buckets[bucket_of(c, id)];
    while (*at && strcmp((*at)->id, id) != 0)
        at = &(*at)->next;
    return at;
}

const textcache_text *textcache_get(textcache *c, const char *id, int64_t rev)
{
    if (!c)
        return NULL;
    pthread_mutex_lock(&c->mu);
    entry *en = *find(c, id);
    if (en && en->rev == rev)
        atomic_fetch_add(&en->refs, 1);
    else
        en = NULL;
    if (en)
        c->hits++;
    else
        c->misses++;
    pthread_mutex_unlock(&c->mu);
    return en ? &en->t : NULL;
}

void textcache_release(const textcache_text *t)
{
    unref((entry *)(void *)t);
}

const textcache_text *textcache_keep(textcache *c, const char *id, int64_t rev, char *s, size_t len)
{
    entry *en = xcalloc(1, sizeof *en);
    en->t.s = s;
    en->t.len = len;
    atomic_init(&en->refs, 1); /* the caller's */
    en->rev = rev;
    size_t cost = sizeof *en + len + 1;
    if (!c || cost > c->budget || strlen(id) >= PF_ID_MAX)
        return &en->t;
    memcpy(en->id, id, strlen(id) + 1);
    pthread_mutex_lock(&c->mu);
    entry **at = find(c, id);
    if (*at && (*at)->rev > rev) { /* a reader of an older snapshot: the newer text stays */
        pthread_mutex_unlock(&c->mu);
        return &en->t;
    }
    if (*at)
        drop(c, at);
    /* room: buckets emptied in turn, a clock over the table (the oldest texts are not known;
     * each bucket's turn comes once per round) */
    while (c->bytes + cost > c->budget) {
        while (c->buckets[c->hand])
            drop(c, &c->buckets[c->hand]);
        c->hand = (c->hand + 1) % c->nbuckets;
    }
    at = &c->buckets[bucket_of(c, id)];
    atomic_fetch_add(&en->refs, 1); /* the table's */
    en->next = *at;
    *at = en;
    c->bytes += cost;
    c->texts++;
    pthread_mutex_unlock(&c->mu);
    return &en->t;
}

void textcache_drop(textcache *c, const char *id)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    entry **at = find(c, id);
    if (*at)
        drop(c, at);
    pthread_mutex_unlock(&c->mu);
}

void textcache_stats(textcache *c, textcache_counts *out)
{
    *out = (textcache_counts){0};
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    out->texts = c->texts;
    out->bytes = c->bytes;
    out->hits = c->hits;
    out->misses = c->misses;
    pthread_mutex_unlock(&c->mu);
}
