/* util/textcache: text kept by (id, revision), bounded, shared by threads. A page of a list
 * keeps each item's JSON here under the row's revision (a number the catalog raises on any
 * change the item shows): a later page whose rows carry the same revisions copies the text
 * instead of reading and writing the item again. A lookup with another revision misses.
 *
 * An id has one text at most: a put replaces the id's text of a lower revision (one of a
 * higher revision stays). When the texts would pass the byte budget, buckets of the table
 * are emptied in turn (a clock) until the new one fits. A hit hands out a reference: the
 * text stays valid until textcache_release, whatever puts happen meanwhile. */
#ifndef PF_UTIL_TEXTCACHE_H
#define PF_UTIL_TEXTCACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct textcache textcache;
typedef struct textcache_text {
    const char *s; /* NUL-terminated */
    size_t len;
} textcache_text;

/* buckets: of the hash table (about the number of texts expected); budget: the bytes of
 * memory the texts take at most (a text above it is never kept). */
textcache *textcache_new(size_t buckets, size_t budget);
void textcache_free(textcache *c);
/* The text kept for (id, rev), referenced (release it), or NULL. */
const textcache_text *textcache_get(textcache *c, const char *id, int64_t rev);
void textcache_release(const textcache_text *t);
/* Keeps a copy of s[0..len) for (id, rev). */
void textcache_put(textcache *c, const char *id, int64_t rev, const char *s, size_t len);
/* Drops the text kept for id, if any (its row is gone: no page will ask for it again). */
void textcache_drop(textcache *c, const char *id);
/* Texts kept, the bytes they take, and the lookups that found one and did not (metrics,
 * tests). */
typedef struct textcache_counts {
    size_t texts, bytes;
    uint64_t hits, misses;
} textcache_counts;
void textcache_stats(textcache *c, textcache_counts *out);

#endif
