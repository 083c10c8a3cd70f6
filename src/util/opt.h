/* opt: command-line options declared once, in a table of opt_def rows (name, environment
 * variable, type, default, range, the commands that take it, help), as pgBackRest and
 * PgBouncer declare theirs. Parsing, validation by type, the help lines and the error
 * texts ("--workers must be an integer from 1 to 64, got 'x'") all come from the table.
 * A value comes from argv (strongest), else the environment variable, else the default. */
#ifndef PF_UTIL_OPT_H
#define PF_UTIL_OPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "util/err.h"

/* What a value must look like. */
typedef enum {
    OPT_STRING,   /* any text */
    OPT_PATH,     /* a file or directory: not empty */
    OPT_INT,      /* an integer in [min, max] */
    OPT_SECONDS,  /* the same, a duration in seconds */
    OPT_HOSTPORT, /* HOST:PORT with a numeric address ([v6]:port too); "off" when off_ok */
    OPT_RANGE,    /* LO-HI with min <= LO <= HI <= max */
    OPT_ENUM,     /* one of values[] */
    OPT_FLAG      /* no value: given or not (s "1" when given; n 1) */
} opt_type;

typedef struct opt_def {
    const char *name; /* without the leading "--" */
    const char *env;  /* environment variable, or NULL */
    opt_type type;
    const char *def;           /* default text, or NULL (unset) */
    long min, max;             /* OPT_INT, OPT_SECONDS, OPT_RANGE */
    const char *const *values; /* OPT_ENUM, NULL-terminated; the index is the value */
    bool off_ok;               /* OPT_HOSTPORT: "off" means none */
    int cmds;                  /* bit mask of the commands that take it */
    const char *help;
} opt_def;

/* A parsed value. */
typedef struct opt_value {
    const char *s; /* the text (NULL: not set and no default); points into argv/env/def */
    long n;        /* OPT_INT, OPT_SECONDS: the number; OPT_ENUM: the index; OPT_RANGE: LO */
    long hi;       /* OPT_RANGE: HI */
    char host[256];
    int port; /* OPT_HOSTPORT: 0 when off */
} opt_value;

/* Fills vals[0..n) for command cmd from the defaults, the environment and
 * argv[first..argc), then checks every value of an option cmd takes against its type.
 * Returns 0; 1 when argv asks for --help (-h); -1 with e (ERR_INVALID) naming the option
 * and what it must be. */
int opt_parse(const opt_def *defs, size_t n, opt_value *vals, int cmd, int argc, char **argv,
              int first, pf_err *e);

/* Checks v->s against o's type, filling the parsed fields; false when it does not fit. */
bool opt_check(const opt_def *o, opt_value *v);

/* What a value of o must be: "an integer from 1 to 64", "one of logfmt, json", ... */
void opt_expect(const opt_def *o, char *out, size_t n);

/* One help line per option: name, help, what it must be, [default], (env VAR). */
void opt_help(FILE *f, const opt_def *defs, size_t n);

#endif
