/* first: the first packet of a PostgreSQL connection, parsed, and the two packets the
 * data path writes itself (a rewritten StartupMessage, an ErrorResponse). Pure: no I/O. */
#include <stdlib.h>
#include <string.h>

#include "datapath/datapath.h"
#include "util/util.h"

#define CODE_SSL 80877103u
#define CODE_GSSENC 80877104u
#define CODE_CANCEL 80877102u
#define PROTO_3 196608u

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static dp_first_kind bad(dp_first *out, const char *why)
{
    out->kind = DP_FIRST_BAD;
    out->why = why;
    return DP_FIRST_BAD;
}

dp_first_kind dp_first_parse(const uint8_t *buf, size_t len, dp_first *out)
{
    memset(out, 0, sizeof *out);
    if (len < 8)
        return DP_FIRST_MORE;
    uint32_t plen = be32(buf), code = be32(buf + 4);
    if (plen < 8 || plen > DP_STARTUP_MAX)
        return bad(out, "invalid length of startup packet");
    if (len < plen)
        return DP_FIRST_MORE;
    out->len = plen;
    if (code == CODE_SSL || code == CODE_GSSENC) {
        if (plen != 8)
            return bad(out, "invalid length of startup packet");
        out->kind = code == CODE_SSL ? DP_FIRST_SSL : DP_FIRST_GSSENC;
        return out->kind;
    }
    if (code == CODE_CANCEL) {
        if (plen != 16)
            return bad(out, "invalid length of cancel request");
        out->cancel_pid = be32(buf + 8);
        out->cancel_key = be32(buf + 12);
        out->kind = DP_FIRST_CANCEL;
        return DP_FIRST_CANCEL;
    }
    if (code >> 16 != 3)
        return bad(out, "unsupported frontend protocol");
    out->version = code;
    /* name\0value\0 ... \0 */
    const char *p = (const char *)buf + 8, *end = (const char *)buf + plen;
    if (end[-1] != '\0')
        return bad(out, "invalid startup packet layout");
    while (p < end && *p) {
        const char *k = p;
        const char *kz = memchr(k, '\0', (size_t)(end - k));
        if (!kz || kz + 1 >= end)
            return bad(out, "invalid startup packet layout");
        const char *v = kz + 1;
        const char *vz = memchr(v, '\0', (size_t)(end - v));
        if (!vz)
            return bad(out, "invalid startup packet layout");
        if (out->nparams == DP_PARAMS_MAX)
            return bad(out, "too many startup parameters");
        out->keys[out->nparams] = k;
        out->vals[out->nparams] = v;
        out->nparams++;
        if (!strcmp(k, "user"))
            out->user = v;
        else if (!strcmp(k, "database"))
            out->database = v;
        p = vz + 1;
    }
    if (p != end - 1)
        return bad(out, "invalid startup packet layout");
    if (!out->user || !*out->user)
        return bad(out, "no PostgreSQL user name specified in startup packet");
    if (!out->database || !*out->database)
        out->database = out->user; /* PostgreSQL's default */
    out->kind = DP_FIRST_STARTUP;
    return DP_FIRST_STARTUP;
}

uint8_t *dp_startup_build(const dp_first *f, const char *database, size_t *n)
{
    size_t len = 8 + 1;
    bool had_db = false;
    for (size_t i = 0; i < f->nparams; i++) {
        const char *v = f->vals[i];
        if (database && !strcmp(f->keys[i], "database")) {
            v = database;
            had_db = true;
        }
        len += strlen(f->keys[i]) + 1 + strlen(v) + 1;
    }
    if (database && !had_db)
        len += sizeof "database" + strlen(database) + 1;
    uint8_t *b = xmalloc(len);
    put32(b, (uint32_t)len);
    put32(b + 4, f->version);
    size_t w = 8;
    for (size_t i = 0; i < f->nparams; i++) {
        const char *v = f->vals[i];
        if (database && !strcmp(f->keys[i], "database"))
            v = database;
        size_t kl = strlen(f->keys[i]) + 1, vl = strlen(v) + 1;
        memcpy(b + w, f->keys[i], kl);
        w += kl;
        memcpy(b + w, v, vl);
        w += vl;
    }
    if (database && !had_db) {
        memcpy(b + w, "database", sizeof "database");
        w += sizeof "database";
        memcpy(b + w, database, strlen(database) + 1);
        w += strlen(database) + 1;
    }
    b[w++] = '\0';
    *n = w;
    return b;
}

uint8_t *dp_error_build(const char *code, const char *message, size_t *n)
{
    const char *fields[][2] = {{"S", "FATAL"}, {"V", "FATAL"}, {"C", code}, {"M", message}};
    size_t len = 1 + 4 + 1;
    for (size_t i = 0; i < 4; i++)
        len += 1 + strlen(fields[i][1]) + 1;
    uint8_t *b = xmalloc(len);
    b[0] = 'E';
    put32(b + 1, (uint32_t)(len - 1));
    size_t w = 5;
    for (size_t i = 0; i < 4; i++) {
        b[w++] = (uint8_t)fields[i][0][0];
        size_t l = strlen(fields[i][1]) + 1;
        memcpy(b + w, fields[i][1], l);
        w += l;
    }
    b[w++] = '\0';
    *n = w;
    return b;
}
