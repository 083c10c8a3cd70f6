/* cli internals: the command and flag tables (args.c), HTTP and the login config (http.c),
 * tables and progress lines (out.c), the resource commands (commands.c), psql (psql.c) and
 * the completion scripts (complete.c). Internal names start with cli__. */
#ifndef PF_CLI_CLI_INT_H
#define PF_CLI_CLI_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "cli/cli.h"

/* ---- flags: declared once; a command names the ones it takes with a mask ---- */
typedef enum {
    FL_JSON,
    FL_WAIT,
    FL_TIMEOUT,
    FL_PROJECT,
    FL_NAME,
    FL_REGION,
    FL_TTL,
    FL_NO_DATABASE,
    FL_FROM_BACKUP,
    FL_FROM_DATABASE,
    FL_BACKUP,
    FL_AT,
    FL_TYPE,
    FL_GIT_NAME,
    FL_START,
    FL_END,
    FL_URL,
    FL_CACERT,
    FL__COUNT
} cli_flag_id;

typedef struct cli_flag {
    const char *name; /* without "--" */
    const char *arg;  /* the value's name in help, NULL: a switch */
    const char *help;
} cli_flag;
extern const cli_flag cli__flags[FL__COUNT];
#define F(id) (1u << (id))

typedef struct cli_ctx cli_ctx;
typedef struct cli_cmd {
    const char *group;      /* projects, databases, ..., or the command itself (restore, psql) */
    const char *verb;       /* list, create, ...; NULL when the group is the command */
    const char *args;       /* positional synopsis ("DB"), NULL: none */
    int npos_min, npos_max; /* npos_max -1: any (psql's own arguments) */
    unsigned flags;
    int (*run)(cli_ctx *c);
    const char *help;
} cli_cmd;
extern const cli_cmd cli__cmds[];
extern const size_t cli__ncmds;

/* The server a command talks to: from PGFLEET_URL / PGFLEET_TOKEN, else the login config. */
typedef struct cli_conn {
    char url[1024]; /* no trailing slash */
    char token[4096];
    char cacert[1024]; /* "" = the system's CAs */
} cli_conn;

struct cli_ctx {
    const cli_cmd *cmd;
    const char *val[FL__COUNT]; /* a flag's value; "" for a switch that is set */
    char **pos;
    int npos;
    cli_conn conn;
};

/* ---- args.c ---- */
/* Parses argv (after the group and verb words) for cmd into c: 0; 1 when --help asks for
 * the command's help; -1 with a message in err (a usage error). */
int cli__parse(const cli_cmd *cmd, int argc, char **argv, cli_ctx *c, char *err, size_t n);
/* The help of one command. */
void cli__cmd_help(FILE *f, const cli_cmd *cmd);
/* A duration: "90", "90s", "30m", "1h", "2d" into seconds (1 .. 10 years); false else. */
bool cli__duration(const char *s, long *seconds);
/* Prints "pgfleet: ..." to stderr and returns CLI_EXIT_USAGE. */
int cli__usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- http.c ---- */
/* A URL pgfleet may send a token to: http(s) with a host, https unless the host is a
 * loopback name or address. false with a reason in why. */
bool cli__url_ok(const char *url, char *why, size_t n);
/* The config file's path ($XDG_CONFIG_HOME/pgfleet/config, default ~/.config/...). */
bool cli__config_dir(char *out, size_t n);
/* Fills c->conn from the environment or the config: CLI_EXIT_OK, or an exit status after a
 * message. */
int cli__conn_load(cli_ctx *c);
/* One API call: method, path under the URL (already escaped), an optional JSON body (not
 * stolen). 2xx: CLI_EXIT_OK and *out the parsed body (NULL for none; caller decrefs). Else
 * the envelope's message and hint are printed (unless quiet) and the status's exit code
 * is returned; *status is the HTTP status (0: no answer). */
int cli__call(const cli_conn *conn, const char *method, const char *path, json_t *body, bool quiet,
              long *status, json_t **out);
/* An id escaped for a URL path (caller frees). */
char *cli__esc(const char *id);
int cli__login(cli_ctx *c);
int cli__logout(cli_ctx *c);

/* ---- out.c ---- */
typedef struct cli_col {
    const char *header;
    const char *path; /* a dotted path into the object ("region.id") */
} cli_col;
/* An aligned table of the rows (an array of objects): header line, one line per row, columns
 * two spaces apart, the last not padded; null and missing values print as "-". */
void cli__table(FILE *f, const cli_col *cols, size_t ncols, json_t *rows);
/* The value at a dotted path as text (NULL when missing; numbers and bools as text). */
const char *cli__field(json_t *obj, const char *path, char *buf, size_t n);
/* A JSON string's value, or def when v is not a string. */
const char *cli__str(json_t *v, const char *def);
/* Prints JSON, indented, with a newline. */
void cli__json(FILE *f, json_t *j);

/* A progress report while waiting: on a terminal one line redrawn with \r (state and
 * elapsed seconds), elsewhere a plain line whenever the state changes. */
typedef struct cli_progress {
    bool tty;
    char what[128];
    char last[64];
    int64_t t0;
} cli_progress;
void cli__progress_start(cli_progress *p, const char *what);
void cli__progress(cli_progress *p, const char *state);
void cli__progress_end(cli_progress *p, const char *state);

/* ---- commands.c ---- */
/* Polls GET /v1/databases/{id} until its status is want (failure: an error). */
int cli__wait_database(cli_ctx *c, const char *db_id, const char *want);

/* ---- psql.c ---- */
int cli__psql(cli_ctx *c);
/* Deletes the short-lived connections of `pgfleet psql` runs that were killed before they
 * could delete their own (a file in the config directory lists them). */
void cli__psql_cleanup(cli_ctx *c);

/* ---- complete.c ---- */
int cli__completion(cli_ctx *c);
extern const char *const *cli__host_words;
extern size_t cli__nhost_words;

#endif
