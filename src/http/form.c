/* application/x-www-form-urlencoded: the bodies of /token, /revoke and the HTML forms,
 * and the query strings pgfleet builds for redirects. */
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

#define FORM_MAX_FIELDS 64

struct http_form {
    int n;
    char *key[FORM_MAX_FIELDS];
    char *val[FORM_MAX_FIELDS];
};

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes s[0..n) into a new string; NULL on a bad escape or a decoded NUL. */
static char *decode(const char *s, size_t n)
{
    char *out = xmalloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int h = i + 1 < n ? hexval(s[i + 1]) : -1;
            int l = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (h < 0 || l < 0) {
                free(out);
                return NULL;
            }
            c = (char)(h * 16 + l);
            i += 2;
        }
        if (c == '\0') {
            free(out);
            return NULL;
        }
        out[k++] = c;
    }
    out[k] = '\0';
    return out;
}

void http_form_free(http_form *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->n; i++) {
        free(f->key[i]);
        free(f->val[i]);
    }
    free(f);
}

http_form *http_form_parse(const char *body, size_t len)
{
    http_form *f = xcalloc(1, sizeof *f);
    size_t i = 0;
    while (body && i < len) {
        size_t end = i;
        while (end < len && body[end] != '&')
            end++;
        if (end > i) { /* empty pairs ("a=1&&b=2") are skipped */
            const char *eq = memchr(body + i, '=', end - i);
            size_t klen = eq ? (size_t)(eq - (body + i)) : end - i;
            if (f->n >= FORM_MAX_FIELDS)
                goto bad;
            char *k = decode(body + i, klen);
            char *v = eq ? decode(eq + 1, end - i - klen - 1) : xstrdup("");
            if (!k || !v) {
                free(k);
                free(v);
                goto bad;
            }
            f->key[f->n] = k;
            f->val[f->n] = v;
            f->n++;
        }
        i = end + 1;
    }
    return f;
bad:
    http_form_free(f);
    return NULL;
}

const char *http_form_get(const http_form *f, const char *key)
{
    for (int i = 0; f && i < f->n; i++)
        if (strcmp(f->key[i], key) == 0)
            return f->val[i];
    return NULL;
}

int http_form_count(const http_form *f, const char *key)
{
    int n = 0;
    for (int i = 0; f && i < f->n; i++)
        if (strcmp(f->key[i], key) == 0)
            n++;
    return n;
}

static void encode_into(util_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            util_buf_add(b, (const char *)p, 1);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            util_buf_add(b, esc, 3);
        }
    }
}

void http_url_append(char **s, char sep, const char *key, const char *value)
{
    /* *s is a malloc'd string (or NULL): adopt it as a util_buf, hand it back */
    size_t old = *s ? strlen(*s) : 0;
    util_buf b = {.s = *s, .len = old, .cap = *s ? old + 1 : 0};
    if (old > 0)
        util_buf_add(&b, &sep, 1);
    encode_into(&b, key);
    util_buf_add(&b, "=", 1);
    encode_into(&b, value);
    *s = util_buf_take(&b);
}
