/* util/textcache: text kept by (id, revision), bounded, shared by threads. A page of a list
 * keeps each item's JSON here under the row's revision (a number the catalog raises on any
 * change the item shows): a later page whose rows carry the same revisions copies the text
 * instead of reading and writing the item again. A lookup with another revision misses.
 *
 * An id has one text at most: a keep replaces the id's text of a lower revision (one of a
 * higher revision stays). When the texts would pass the byte budget, buckets of the table
 * are emptied in turn (a clock) until the new one fits. A hit hands out a reference: the
 * text stays valid until textcache_release, whatever keeps happen meanwhile. */
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
 * memory the texts take at most (a text above it is never kept). Every call below takes a
 * NULL cache as one that keeps nothing. */
textcache *textcache_new(size_t buckets, size_t budget);
void textcache_free(textcache *c);
/* The text kept for (id, rev), referenced (release it), or NULL. */
const textcache_text *textcache_get(textcache *c, const char *id, int64_t rev);
void textcache_release(const textcache_text *t);
/* Takes s[0..len) (malloc'd, NUL-terminated; freed with the last reference) as the text of
 * (id, rev), kept unless the budget or a higher revision refuses it, and returns it
 * referenced for the caller (release it) either way. */
const textcache_text *textcache_keep(textcache *c, const char *id, int64_t rev, char *s,
                                     size_t len);
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
