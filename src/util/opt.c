/* opt: the typed option table's parser, checks, help and error texts (see opt.h). */
#include "util/opt.h"

#include <stdlib.h>
#include <string.h>

#include "util/util.h"

void opt_expect(const opt_def *o, char *out, size_t n)
{
    switch (o->type) {
    case OPT_INT:
        snprintf(out, n, "an integer from %ld to %ld", o->min, o->max);
        break;
    case OPT_SECONDS:
        snprintf(out, n, "a number of seconds from %ld to %ld", o->min, o->max);
        break;
    case OPT_HOSTPORT:
        snprintf(out, n, "HOST:PORT with a numeric address%s", o->off_ok ? ", or off" : "");
        break;
    case OPT_RANGE:
        snprintf(out, n, "LO-HI with %ld <= LO <= HI <= %ld", o->min, o->max);
        break;
    case OPT_ENUM: {
        size_t len = (size_t)snprintf(out, n, "one of");
        for (size_t i = 0; o->values[i] && len < n; i++)
            len += (size_t)snprintf(out + len, n - len, "%s %s", i ? "," : "", o->values[i]);
        break;
    }
    case OPT_PATH:
        snprintf(out, n, "a path");
        break;
    case OPT_STRING:
        snprintf(out, n, "text");
        break;
    case OPT_FLAG:
        snprintf(out, n, "a flag without a value");
        break;
    }
}

void opt_help(FILE *f, const opt_def *defs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const opt_def *o = &defs[i];
        fprintf(f, "  --%-21s %s", o->name, o->help);
        if (o->type != OPT_STRING && o->type != OPT_PATH && o->type != OPT_FLAG) {
            char expect[160];
            opt_expect(o, expect, sizeof expect);
            fprintf(f, ": %s", expect);
        }
        if (o->def)
            fprintf(f, " [%s]", o->def);
        if (o->env)
            fprintf(f, " (env %s)", o->env);
        fputc('\n', f);
    }
}

/* HOST:PORT, [v6]:PORT; the host is copied as given (numeric addresses are checked when
 * the listener binds). */
static bool parse_hostport(const char *s, char *host, size_t hn, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return false;
    size_t len = (size_t)(colon - s);
    if (s[0] == '[' && len >= 2 && s[len - 1] == ']') {
        s++;
        len -= 2;
    }
    if (len >= hn)
        return false;
    memcpy(host, s, len);
    host[len] = '\0';
    long p = 0;
    if (!util_parse_int(colon + 1, 1, 65535, &p))
        return false;
    *port = (int)p;
    return true;
}

bool opt_check(const opt_def *o, opt_value *v)
{
    const char *s = v->s;
    switch (o->type) {
    case OPT_STRING:
        return true;
    case OPT_FLAG:
        v->n = strcmp(s, "1") == 0;
        return v->n || strcmp(s, "0") == 0;
    case OPT_PATH:
        return s[0] != '\0';
    case OPT_INT:
    case OPT_SECONDS:
        return util_parse_int(s, o->min, o->max, &v->n);
    case OPT_HOSTPORT:
        if (o->off_ok && strcmp(s, "off") == 0) {
            v->host[0] = '\0';
            v->port = 0;
            return true;
        }
        return parse_hostport(s, v->host, sizeof v->host, &v->port);
    case OPT_RANGE: {
        char buf[64];
        if (strlen(s) >= sizeof buf)
            return false;
        snprintf(buf, sizeof buf, "%s", s);
        char *dash = strchr(buf, '-');
        if (!dash)
            return false;
        *dash = '\0';
        return util_parse_int(buf, o->min, o->max, &v->n) &&
               util_parse_int(dash + 1, o->min, o->max, &v->hi) && v->hi >= v->n;
    }
    case OPT_ENUM:
        for (long i = 0; o->values[i]; i++)
            if (strcmp(o->values[i], s) == 0) {
                v->n = i;
                return true;
            }
        return false;
    }
    return false;
}

int opt_parse(const opt_def *defs, size_t n, opt_value *vals, int cmd, int argc, char **argv,
              int first, pf_err *e)
{
    int rc = -1;
    bool *from_env = xcalloc(n ? n : 1, sizeof *from_env);
    for (size_t i = 0; i < n; i++) {
        const char *env = defs[i].env ? getenv(defs[i].env) : NULL;
        from_env[i] = env && *env;
        memset(&vals[i], 0, sizeof vals[i]);
        vals[i].s = from_env[i] ? env : defs[i].def;
    }
    for (int i = first; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            rc = 1;
            goto out;
        }
        if (strncmp(arg, "--", 2) != 0) {
            err_kind(e, ERR_INVALID, NULL, "unexpected argument '%s'", arg);
            goto out;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        size_t found = n;
        for (size_t k = 0; k < n; k++)
            if (strlen(defs[k].name) == nlen && strncmp(defs[k].name, name, nlen) == 0)
                found = k;
        if (found == n || !(defs[found].cmds & cmd)) {
            err_kind(e, ERR_INVALID, NULL, "unknown option '--%.*s' (see pgfleet --help)",
                     (int)nlen, name);
            goto out;
        }
        if (defs[found].type == OPT_FLAG) {
            if (eq) {
                err_kind(e, ERR_INVALID, NULL, "--%s takes no value", defs[found].name);
                goto out;
            }
            vals[found].s = "1";
        } else if (eq) {
            vals[found].s = eq + 1;
        } else if (i + 1 < argc) {
            vals[found].s = argv[++i];
        } else {
            err_kind(e, ERR_INVALID, NULL, "option '--%s' needs a value", defs[found].name);
            goto out;
        }
        from_env[found] = false;
    }
    for (size_t i = 0; i < n; i++) {
        const opt_def *o = &defs[i];
        if (!(o->cmds & cmd) || !vals[i].s || opt_check(o, &vals[i]))
            continue;
        char expect[160];
        opt_expect(o, expect, sizeof expect);
        if (from_env[i])
            err_kind(e, ERR_INVALID, NULL, "--%s (from %s) must be %s, got '%s'", o->name, o->env,
                     expect, vals[i].s);
        else
            err_kind(e, ERR_INVALID, NULL, "--%s must be %s, got '%s'", o->name, expect, vals[i].s);
        goto out;
    }
    rc = 0;
out:
    free(from_env);
    return rc;
}
