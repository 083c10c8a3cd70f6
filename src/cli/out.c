/* cli/out: what the CLI prints: aligned tables for people, the API's JSON for scripts, and
 * the progress of a wait (a redrawn line on a terminal, plain lines elsewhere). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_int.h"
#include "util/util.h"

const char *cli__field(json_t *obj, const char *path, char *buf, size_t n)
{
    json_t *v = obj;
    const char *p = path;
    while (v && *p) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)len, p);
        v = json_object_get(v, key);
        p += len + (dot ? 1 : 0);
    }
    if (!v || json_is_null(v))
        return NULL;
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v))
        snprintf(buf, n, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, n, "%g", json_real_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, n, "%s", json_is_true(v) ? "yes" : "no");
    else
        return NULL;
    return buf;
}

/* One cell: its text with control characters shown as '?', so a name cannot move the cursor. */
static char *cell(json_t *row, const char *path)
{
    char buf[64];
    const char *v = cli__field(row, path, buf, sizeof buf);
    char *s = xstrdup(v ? v : "-");
    for (char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return s;
}

void cli__table(FILE *f, const cli_col *cols, size_t ncols, json_t *rows)
{
    size_t nrows = json_array_size(rows);
    size_t *w = xcalloc(ncols, sizeof *w);
    char **cells = xcalloc(nrows * ncols + 1, sizeof *cells);
    for (size_t c = 0; c < ncols; c++)
        w[c] = strlen(cols[c].header);
    for (size_t r = 0; r < nrows; r++)
        for (size_t c = 0; c < ncols; c++) {
            char *s = cell(json_array_get(rows, r), cols[c].path);
            cells[r * ncols + c] = s;
            if (strlen(s) > w[c])
                w[c] = strlen(s);
        }
    for (size_t r = 0; r <= nrows; r++) {
        for (size_t c = 0; c < ncols; c++) {
            const char *s = r == 0 ? cols[c].header : cells[(r - 1) * ncols + c];
            if (c + 1 < ncols)
                fprintf(f, "%-*s  ", (int)w[c], s);
            else
                fprintf(f, "%s\n", s);
        }
    }
    for (size_t i = 0; i < nrows * ncols; i++)
        free(cells[i]);
    free(cells);
    free(w);
}

const char *cli__str(json_t *v, const char *def)
{
    const char *s = json_string_value(v);
    return s ? s : def;
}

void cli__json(FILE *f, json_t *j)
{
    json_dumpf(j, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', f);
}

void cli__progress_start(cli_progress *p, const char *what)
{
    memset(p, 0, sizeof *p);
    p->tty = isatty(STDERR_FILENO);
    snprintf(p->what, sizeof p->what, "%s", what);
    p->t0 = util_now_ms();
}

static double elapsed(const cli_progress *p)
{
    return (double)(util_now_ms() - p->t0) / 1000.0;
}

void cli__progress(cli_progress *p, const char *state)
{
    if (p->tty) {
        fprintf(stderr, "\r\033[K%s: %s (%.1f s)", p->what, state, elapsed(p));
        fflush(stderr);
    } else if (strcmp(state, p->last) != 0) {
        fprintf(stderr, "%s: %s (%.1f s)\n", p->what, state, elapsed(p));
    }
    snprintf(p->last, sizeof p->last, "%s", state);
}

void cli__progress_end(cli_progress *p, const char *state)
{
    if (p->tty)
        fprintf(stderr, "\r\033[K%s: %s (%.1f s)\n", p->what, state, elapsed(p));
    else if (strcmp(state, p->last) != 0)
        fprintf(stderr, "%s: %s (%.1f s)\n", p->what, state, elapsed(p));
}
