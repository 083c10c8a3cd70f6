/* cli/args: the flag table, argument parsing and help of the CLI's commands. Every flag is
 * declared once here; a command names those it takes in its row (commands.c), and the help,
 * the parsing and the completion scripts all read the same rows. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_int.h"
#include "util/util.h"

const cli_flag cli__flags[FL__COUNT] = {
    [FL_JSON] = {"json", NULL, "print the API's objects as JSON instead of a table"},
    [FL_WAIT] = {"wait", NULL, "wait until the work is done, showing its progress"},
    [FL_TIMEOUT] = {"timeout", "DURATION", "with --wait: give up after this (default 10m)"},
    [FL_PROJECT] = {"project", "ID", "the project (proj_...)"},
    [FL_NAME] = {"name", "NAME", "a name"},
    [FL_REGION] = {"region", "REGION", "a region id (default: the server's first)"},
    [FL_TTL] = {"ttl", "DURATION", "delete the project after this (5m to 30d: 90s, 30m, 1h, 2d)"},
    [FL_NO_DATABASE] = {"no-database", NULL, "make the project without its default database"},
    [FL_FROM_BACKUP] = {"from-backup", "ID", "made from this backup of --from-database"},
    [FL_FROM_DATABASE] = {"from-database", "DB", "a copy of this database (now, or --from-backup)"},
    [FL_BACKUP] = {"backup", "ID", "the backup to restore"},
    [FL_AT] = {"at", "TIME", "a point in time after the backup (ISO-8601 with a zone)"},
    [FL_TYPE] = {"type", "TYPE", "full, differential or incremental (default full)"},
    [FL_GIT_NAME] = {"git-name", "NAME", "the branch's git name"},
    [FL_START] = {"start", "DATE", "from this date (YYYY-MM-DD) or time"},
    [FL_END] = {"end", "DATE", "until this date or time"},
    [FL_URL] = {"url", "URL", "the server's URL (https unless on loopback)"},
    [FL_CACERT] = {"cacert", "FILE", "a CA certificate to trust for the server's HTTPS"},
};

int cli__usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("pgfleet: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (see --help)\n", stderr);
    va_end(ap);
    return CLI_EXIT_USAGE;
}

static int flag_find(const char *name, size_t len)
{
    for (int i = 0; i < FL__COUNT; i++)
        if (strlen(cli__flags[i].name) == len && strncmp(cli__flags[i].name, name, len) == 0)
            return i;
    return -1;
}

int cli__parse(const cli_cmd *cmd, int argc, char **argv, cli_ctx *c, char *err, size_t n)
{
    memset(c->val, 0, sizeof c->val);
    c->cmd = cmd;
    c->pos = xcalloc((size_t)argc + 1, sizeof *c->pos);
    c->npos = 0;
    bool rest = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (rest || a[0] != '-' || a[1] == '\0') {
            c->pos[c->npos++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            rest = true;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
            return 1;
        if (a[1] != '-') {
            snprintf(err, n, "unknown option '%s'", a);
            return -1;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        int id = flag_find(name, len);
        if (id < 0 || !(cmd->flags & F(id))) {
            snprintf(err, n, "%s%s%s does not take --%.*s", cmd->group, cmd->verb ? " " : "",
                     cmd->verb ? cmd->verb : "", (int)len, name);
            return -1;
        }
        const cli_flag *fl = &cli__flags[id];
        if (!fl->arg) {
            if (eq) {
                snprintf(err, n, "--%s takes no value", fl->name);
                return -1;
            }
            c->val[id] = "";
        } else if (eq) {
            c->val[id] = eq + 1;
        } else if (i + 1 < argc) {
            c->val[id] = argv[++i];
        } else {
            snprintf(err, n, "--%s needs a value (%s)", fl->name, fl->arg);
            return -1;
        }
        if (fl->arg && !c->val[id][0]) {
            snprintf(err, n, "--%s needs a value (%s)", fl->name, fl->arg);
            return -1;
        }
    }
    if (c->npos < cmd->npos_min || (cmd->npos_max >= 0 && c->npos > cmd->npos_max)) {
        if (c->npos < cmd->npos_min)
            snprintf(err, n, "%s%s%s needs %s", cmd->group, cmd->verb ? " " : "",
                     cmd->verb ? cmd->verb : "", cmd->args ? cmd->args : "more arguments");
        else
            snprintf(err, n, "unexpected argument '%s'", c->pos[cmd->npos_max]);
        return -1;
    }
    return 0;
}

void cli__cmd_help(FILE *f, const cli_cmd *cmd)
{
    fprintf(f, "usage: pgfleet %s%s%s%s%s", cmd->group, cmd->verb ? " " : "",
            cmd->verb ? cmd->verb : "", cmd->args ? " " : "", cmd->args ? cmd->args : "");
    for (int i = 0; i < FL__COUNT; i++)
        if (cmd->flags & F(i))
            fprintf(f, " [--%s%s%s]", cli__flags[i].name, cli__flags[i].arg ? " " : "",
                    cli__flags[i].arg ? cli__flags[i].arg : "");
    fprintf(f, "\n\n%s\n", cmd->help);
    if (cmd->flags) {
        fprintf(f, "\noptions:\n");
        for (int i = 0; i < FL__COUNT; i++) {
            if (!(cmd->flags & F(i)))
                continue;
            char left[64];
            snprintf(left, sizeof left, "--%s%s%s", cli__flags[i].name,
                     cli__flags[i].arg ? " " : "", cli__flags[i].arg ? cli__flags[i].arg : "");
            fprintf(f, "  %-24s %s\n", left, cli__flags[i].help);
        }
    }
    fprintf(f, "\nThe server and token come from PGFLEET_URL and PGFLEET_TOKEN, else from "
               "`pgfleet login`.\n"
               "exit status: 0 done, 1 refused or failed, 2 usage, 3 not found, 4 conflict,\n"
               "             5 server or network error\n");
}

bool cli__duration(const char *s, long *seconds)
{
    if (!s || !*s)
        return false;
    size_t len = strlen(s);
    long mult = 1;
    char unit = s[len - 1];
    if (unit == 's' || unit == 'm' || unit == 'h' || unit == 'd') {
        mult = unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : 86400;
        len--;
    }
    if (len == 0 || len > 9)
        return false;
    char num[16];
    memcpy(num, s, len);
    num[len] = '\0';
    long v;
    if (!util_parse_int(num, 1, 999999999, &v) || v > 3650L * 86400 / mult)
        return false;
    *seconds = v * mult;
    return true;
}
