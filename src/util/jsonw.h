/* util/jsonw: writes JSON text straight into a growing buffer (a util_buf), for the shapes
 * that a read answers many times over (a page of 100 databases): no tree of nodes to build,
 * dump and free. Values go in order; each member of an object names its key (a name of this
 * program, written as it is), an array's items pass NULL. String values are escaped as JSON
 * wants them: well-formed UTF-8 passes through, a byte that starts none becomes U+FFFD. */
#ifndef PF_UTIL_JSONW_H
#define PF_UTIL_JSONW_H

#include <stdbool.h>
#include <stdint.h>

#include "util/util.h"

#define JSONW_DEPTH 32

typedef struct jsonw {
    util_buf b;
    int depth;
    bool more[JSONW_DEPTH];  /* a value was written at this depth: the next needs a comma */
    char close[JSONW_DEPTH]; /* what closes the container open at this depth */
} jsonw;

void jsonw_obj(jsonw *w, const char *key); /* opens an object; jsonw_end closes it */
void jsonw_arr(jsonw *w, const char *key); /* opens an array; jsonw_end closes it */
void jsonw_end(jsonw *w);
void jsonw_str(jsonw *w, const char *key, const char *s);
/* s, or null when s is NULL or "" */
void jsonw_str_or_null(jsonw *w, const char *key, const char *s);
/* the string a, b and c make one after the other (NULL: ""), e.g. a url: no printf */
void jsonw_str3(jsonw *w, const char *key, const char *a, const char *b, const char *c);
/* a string made by printf */
void jsonw_strf(jsonw *w, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void jsonw_int(jsonw *w, const char *key, int64_t v);
void jsonw_bool(jsonw *w, const char *key, bool v);
void jsonw_null(jsonw *w, const char *key);
/* text that is JSON already (one value) */
void jsonw_raw(jsonw *w, const char *key, const char *json, size_t len);

#endif
