/* pgfleet: the program. `pgfleet serve` runs the control plane; `token create`, `workspace
 * create`, `user create`, `oauth-client create` and `status` work on a home directly,
 * whether or not a server runs.
 * Options are declared once in `options[]` with their type, default, range and
 * environment variable: parsing, validation, the help text and the error texts all come
 * from it through util/opt.h (README's options table follows it). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "auth/auth.h"
#include "cli/cli.h"
#include "datapath/datapath.h"
#include "engine/engine.h"
#include "http/http.h"
#include "ops/ops.h"
#include "serve/serve.h"
#include "store/store.h"
#include "util/log.h"
#include "util/opt.h"
#include "util/ctlmsg.h"
#include "util/proc.h"
#include "util/util.h"

#define PGFLEET_VERSION "0.1.0"

enum {
    CMD_SERVE = 1,
    CMD_TOKEN = 2,
    CMD_WORKSPACE = 4,
    CMD_USER = 8,
    CMD_CLIENT = 16,
    CMD_STATUS = 32,
    CMD_REVOKE = 64,
    CMD_DATAPATH = 128, /* hidden: the data path process, started by serve */
    CMD_CLI = 1 << 30   /* takes no option of options[] */
};

typedef enum {
    O_HOME,
    O_LISTEN,
    O_PUBLIC_URL,
    O_PUBLIC_HOST,
    O_PORT_RANGE,
    O_REGIONS,
    O_RUN_AS,
    O_PG_BINDIR,
    O_WORKERS,
    O_SPARES,
    O_MAX_CONNECTIONS,
    O_POOL_SIZE,
    O_DATABASES_PER_SERVER,
    O_LOG_LEVEL,
    O_LOG_FORMAT,
    O_BACKUP_REPO,
    O_BACKUP_RETENTION,
    O_BACKUP_INTERVAL,
    O_BACKUP_FULL_INTERVAL,
    O_BACKUP_DIFF_INTERVAL,
    O_BACKUP_WORKERS,
    O_USAGE_INTERVAL,
    O_WORKSPACE,
    O_NAME,
    O_EMAIL,
    O_REDIRECT_URI,
    O_ACCESS_TTL,
    O_RATE_LIMIT,
    O_RATE_BURST,
    O_POOLER_LISTEN,
    O_METRICS_LISTEN,
    O_PGBOUNCER,
    O_TLS_CERT,
    O_TLS_KEY,
    O_TLS_CA,
    O_TLS_MODE,
    O_EXTENSIONS,
    O_HTTP_MAX_CONNECTIONS,
    O_HTTP_MAX_PER_ADDRESS,
    O_HTTP_HEADER_TIMEOUT,
    O_HTTP_BODY_TIMEOUT,
    O_HTTP_IDLE_TIMEOUT,
    O_HTTP_MAX_BODY,
    O_HTTP_WORKERS,
    O_HTTP_TLS,
    O_HTTP_TLS_CERT,
    O_HTTP_TLS_KEY,
    O_EXPIRY_MIN,
    O_OPERATOR,
    O_TOKEN_ID,
    O_SUSPEND_AFTER,
    O__COUNT
} opt_id;

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const log_formats[] = {"logfmt", "json", NULL};
static const char *const tls_modes[] = {"auto", "on", "off", NULL};
static const char *const db_tls_modes[] = {"auto", "require", "loopback-optional", NULL};

#define ALL_CMDS                                                                                   \
    (CMD_SERVE | CMD_TOKEN | CMD_WORKSPACE | CMD_USER | CMD_CLIENT | CMD_STATUS | CMD_REVOKE |     \
     CMD_DATAPATH)
#define DAY 86400L

static const opt_def options[O__COUNT] = {
    [O_HOME] = {"home", "PGFLEET_HOME", OPT_PATH, "./.pgfleet", .cmds = ALL_CMDS,
                .help = "data directory: catalog, instances, golden copy, keys"},
    [O_LISTEN] = {"listen", "PGFLEET_LISTEN", OPT_HOSTPORT, "127.0.0.1:8080", .cmds = CMD_SERVE,
                  .help = "the address the API listens on"},
    [O_PUBLIC_URL] = {"public-url", "PGFLEET_PUBLIC_URL", OPT_STRING, NULL, .cmds = CMD_SERVE,
                      .help = "base URL written into every `url` field (default http://LISTEN)"},
    [O_PUBLIC_HOST] = {"public-host", "PGFLEET_PUBLIC_HOST", OPT_STRING, "127.0.0.1",
                       .cmds = CMD_SERVE, .help = "host written into connection strings"},
    [O_PORT_RANGE] = {"port-range", "PGFLEET_PORT_RANGE", OPT_RANGE, "20000-29999", 1024, 65535,
                      .cmds = CMD_SERVE, .help = "TCP ports for database servers (one each)"},
    [O_REGIONS] = {"regions", "PGFLEET_REGIONS", OPT_STRING, "us-east-1=US East (N. Virginia)",
                   .cmds = CMD_SERVE,
                   .help = "served regions as id=Name,id=Name (the first is the default)"},
    [O_RUN_AS] = {"run-as", "PGFLEET_RUN_AS", OPT_STRING, "postgres", .cmds = CMD_SERVE,
                  .help = "OS user for PostgreSQL when pgfleet runs as root"},
    [O_PG_BINDIR] = {"pg-bindir", "PGFLEET_PG_BINDIR", OPT_PATH, "/usr/lib/postgresql/15/bin",
                     .cmds = CMD_SERVE, .help = "where postgres and initdb live"},
    [O_WORKERS] = {"workers", "PGFLEET_WORKERS", OPT_INT, "2", 1, 64, .cmds = CMD_SERVE,
                   .help = "operation worker threads"},
    [O_SPARES] = {"spares", "PGFLEET_SPARES", OPT_INT, "2", 0, 1000, .cmds = CMD_SERVE,
                  .help = "servers kept started for fast creates (each ~13 MiB of disk and an "
                          "idle server's memory)"},
    [O_MAX_CONNECTIONS] = {"max-connections", "PGFLEET_MAX_CONNECTIONS", OPT_INT, "120", 10, 10000,
                           .cmds = CMD_SERVE,
                           .help = "max_connections of every server: direct clients get it less "
                                   "--pool-size and 3 admin slots"},
    [O_POOL_SIZE] = {"pool-size", "PGFLEET_POOL_SIZE", OPT_INT, "20", 1, 1000, .cmds = CMD_SERVE,
                     .help = "PgBouncer's server connections per database (the pooled endpoint)"},
    [O_DATABASES_PER_SERVER] = {"databases-per-server", "PGFLEET_DATABASES_PER_SERVER", OPT_INT,
                                "16", 1, 10000, .cmds = CMD_SERVE,
                                .help = "databases a server's users may make with CREATE DATABASE "
                                        "(docs/extensions.md)"},
    [O_LOG_LEVEL] = {"log-level", "PGFLEET_LOG_LEVEL", OPT_ENUM, "info", .values = log_levels,
                     .cmds = CMD_SERVE, .help = "the lowest level logged"},
    [O_LOG_FORMAT] = {"log-format", "PGFLEET_LOG_FORMAT", OPT_ENUM, "logfmt", .values = log_formats,
                      .cmds = CMD_SERVE,
                      .help = "log lines as logfmt key=value pairs, or one JSON object each"},
    [O_BACKUP_REPO] = {"backup-repo", "PGFLEET_BACKUP_REPO", OPT_PATH, NULL, .cmds = CMD_SERVE,
                       .help = "pgBackRest repository directory (default HOME/backup)"},
    [O_BACKUP_RETENTION] = {"backup-retention-days", "PGFLEET_BACKUP_RETENTION_DAYS", OPT_INT, "7",
                            1, 3650, .cmds = CMD_SERVE,
                            .help = "days of backups and WAL kept (point-in-time window)"},
    [O_BACKUP_INTERVAL] = {"backup-interval", "PGFLEET_BACKUP_INTERVAL", OPT_SECONDS, "86400", 0,
                           365 * DAY, .cmds = CMD_SERVE,
                           .help = "between scheduled backups of a database with writes (0: "
                                   "none)"},
    [O_BACKUP_FULL_INTERVAL] = {"backup-full-interval", "PGFLEET_BACKUP_FULL_INTERVAL", OPT_SECONDS,
                                "604800", 1, 3650 * DAY, .cmds = CMD_SERVE,
                                .help = "a scheduled backup is full when the last full is older "
                                        "than this"},
    [O_BACKUP_DIFF_INTERVAL] = {"backup-diff-interval", "PGFLEET_BACKUP_DIFF_INTERVAL", OPT_SECONDS,
                                "86400", 1, 3650 * DAY, .cmds = CMD_SERVE,
                                .help = "else differential when the last full or differential "
                                        "is older than this, else incremental"},
    [O_BACKUP_WORKERS] = {"backup-workers", "PGFLEET_BACKUP_WORKERS", OPT_INT, "2", 1, 64,
                          .cmds = CMD_SERVE,
                          .help = "threads for backup, restore and clone operations"},
    [O_USAGE_INTERVAL] = {"usage-interval", "PGFLEET_USAGE_INTERVAL", OPT_SECONDS, "60", 0, DAY,
                          .cmds = CMD_SERVE,
                          .help = "between usage samples of each database (0: none)"},
    [O_WORKSPACE] = {"workspace", NULL, OPT_STRING, NULL, .cmds = CMD_TOKEN | CMD_USER,
                     .help = "workspace id (token: default workspace; user: a new one)"},
    [O_NAME] = {"name", NULL, OPT_STRING, NULL,
                .cmds = CMD_TOKEN | CMD_WORKSPACE | CMD_USER | CMD_CLIENT,
                .help = "a display name"},
    [O_EMAIL] = {"email", NULL, OPT_STRING, NULL, .cmds = CMD_USER,
                 .help = "the user's email (sign-in name)"},
    [O_REDIRECT_URI] = {"redirect-uri", NULL, OPT_STRING, NULL, .cmds = CMD_CLIENT,
                        .help = "the OAuth client's redirect URI (matched exactly)"},
    [O_ACCESS_TTL] = {"access-token-ttl", "PGFLEET_ACCESS_TOKEN_TTL", OPT_SECONDS, "3600", 1, DAY,
                      .cmds = CMD_SERVE, .help = "OAuth access token lifetime"},
    [O_RATE_LIMIT] = {"rate-limit", "PGFLEET_RATE_LIMIT", OPT_INT, "100", 0, 1000000,
                      .cmds = CMD_SERVE,
                      .help = "API requests a second per credential, sustained; beyond it 429 "
                              "with Retry-After (0: no limit)"},
    [O_RATE_BURST] = {"rate-burst", "PGFLEET_RATE_BURST", OPT_INT, "500", 1, 1000000,
                      .cmds = CMD_SERVE,
                      .help = "the most requests a credential may make at once (its bucket)"},
    [O_POOLER_LISTEN] = {"pooler-listen", "PGFLEET_POOLER_LISTEN", OPT_HOSTPORT, "127.0.0.1:6432",
                         .off_ok = true, .cmds = CMD_SERVE,
                         .help = "the address of the pooled endpoint (PgBouncer)"},
    [O_METRICS_LISTEN] = {"metrics-listen", "PGFLEET_METRICS_LISTEN", OPT_HOSTPORT, "off",
                          .off_ok = true, .cmds = CMD_SERVE,
                          .help = "the address serving Prometheus metrics at /metrics"},
    [O_PGBOUNCER] = {"pgbouncer", "PGFLEET_PGBOUNCER", OPT_PATH, "/usr/sbin/pgbouncer",
                     .cmds = CMD_SERVE, .help = "the PgBouncer program"},
    [O_TLS_CERT] = {"tls-cert", "PGFLEET_TLS_CERT", OPT_PATH, NULL, .cmds = CMD_SERVE,
                    .help = "PEM certificate for every database endpoint (default: made from a "
                            "private CA in HOME/tls)"},
    [O_TLS_KEY] = {"tls-key", "PGFLEET_TLS_KEY", OPT_PATH, NULL, .cmds = CMD_SERVE,
                   .help = "PEM key of --tls-cert"},
    [O_TLS_CA] = {"tls-ca", "PGFLEET_TLS_CA", OPT_PATH, NULL, .cmds = CMD_SERVE,
                  .help = "with --tls-cert: the CA certificate served at GET /v1/ca.pem"},
    [O_TLS_MODE] = {"tls-mode", "PGFLEET_TLS_MODE", OPT_ENUM, "auto", .values = db_tls_modes,
                    .cmds = CMD_SERVE,
                    .help = "TLS on the database endpoints: require, or loopback-optional "
                            "(plaintext from loopback addresses only; strings carry no sslmode); "
                            "auto: loopback-optional when --public-host is a loopback address, "
                            "else require"},
    [O_EXTENSIONS] = {"extensions", "PGFLEET_EXTENSIONS", OPT_STRING, NULL, .cmds = CMD_SERVE,
                      .help = "extensions a connection may CREATE, comma-separated (default: "
                              "every one in docs/extensions.md)"},
    [O_HTTP_MAX_CONNECTIONS] = {"http-max-connections", "PGFLEET_HTTP_MAX_CONNECTIONS", OPT_INT,
                                "4096", 16, 1000000, .cmds = CMD_SERVE,
                                .help = "API connections open at once; more are refused"},
    [O_HTTP_MAX_PER_ADDRESS] = {"http-max-per-address", "PGFLEET_HTTP_MAX_PER_ADDRESS", OPT_INT,
                                "64", 0, 1000000, .cmds = CMD_SERVE,
                                .help = "API connections from one client address (0: no cap; "
                                        "behind a proxy every client has its address)"},
    [O_HTTP_HEADER_TIMEOUT] = {"http-header-timeout", "PGFLEET_HTTP_HEADER_TIMEOUT", OPT_SECONDS,
                               "10", 1, 3600, .cmds = CMD_SERVE,
                               .help = "a request's header must arrive within this, however "
                                       "it trickles"},
    [O_HTTP_BODY_TIMEOUT] = {"http-body-timeout", "PGFLEET_HTTP_BODY_TIMEOUT", OPT_SECONDS, "60", 1,
                             3600, .cmds = CMD_SERVE,
                             .help = "and its body within this of the header"},
    [O_HTTP_IDLE_TIMEOUT] = {"http-idle-timeout", "PGFLEET_HTTP_IDLE_TIMEOUT", OPT_SECONDS, "30", 1,
                             3600, .cmds = CMD_SERVE,
                             .help = "a keep-alive connection waits this long for its next "
                                     "request"},
    [O_HTTP_MAX_BODY] = {"http-max-body", "PGFLEET_HTTP_MAX_BODY", OPT_INT, "1048576", 1024,
                         64L << 20, .cmds = CMD_SERVE,
                         .help = "request body bytes, chunked or not (413 past it)"},
    [O_HTTP_WORKERS] = {"http-workers", "PGFLEET_HTTP_WORKERS", OPT_INT, "0", 0, 1024,
                        .cmds = CMD_SERVE,
                        .help = "threads running API handlers (0: max(4, 2 x cores))"},
    [O_HTTP_TLS] = {"http-tls", "PGFLEET_HTTP_TLS", OPT_ENUM, "auto", .values = tls_modes,
                    .cmds = CMD_SERVE,
                    .help = "HTTPS on the API listener (auto: off on a loopback address, on "
                            "elsewhere)"},
    [O_HTTP_TLS_CERT] = {"http-tls-cert", "PGFLEET_HTTP_TLS_CERT", OPT_PATH, NULL,
                         .cmds = CMD_SERVE,
                         .help = "PEM certificate (chain) of the API (default: the database "
                                 "endpoints', HOME/tls/server.crt)"},
    [O_HTTP_TLS_KEY] = {"http-tls-key", "PGFLEET_HTTP_TLS_KEY", OPT_PATH, NULL, .cmds = CMD_SERVE,
                        .help = "PEM key of --http-tls-cert (default HOME/tls/server.key)"},
    [O_EXPIRY_MIN] = {"expiry-min-seconds", "PGFLEET_EXPIRY_MIN_SECONDS", OPT_SECONDS, "300", 1,
                      300, .cmds = CMD_SERVE,
                      .help = "for tests only: the nearest expiresAt a project may take"},
    [O_OPERATOR] = {"operator", NULL, OPT_FLAG, NULL, .cmds = CMD_TOKEN,
                    .help = "token create: a read-only operator token for the whole fleet "
                            "(GET /v1/fleet, the console's fleet view) instead of a workspace's"},
    [O_TOKEN_ID] = {"id", NULL, OPT_STRING, NULL, .cmds = CMD_REVOKE,
                    .help = "token revoke: the id (tok_...) of the token to revoke"},
    [O_SUSPEND_AFTER] = {"suspend-after", "PGFLEET_SUSPEND_AFTER", OPT_SECONDS, "300", 0, 365 * DAY,
                         .cmds = CMD_SERVE,
                         .help = "a database with no client for this long sleeps (its server "
                                 "stops; the next connection wakes it); 0: never"},
};

static opt_value ov[O__COUNT];
#define OPT(id) (ov[id].s)

static void usage(FILE *f)
{
    fprintf(f,
            "pgfleet %s: a self-hosted PostgreSQL control plane serving the Prisma Postgres "
            "Management API (v1)\n\n"
            "usage:\n"
            "  pgfleet serve [options]             run the API and the databases\n"
            "  pgfleet token create [options]      print a new service token (last line);\n"
            "                                      --operator: a read-only fleet token\n"
            "  pgfleet token revoke --id ID        revoke a token (an operator token too)\n"
            "  pgfleet workspace create --name N   print a new workspace's id\n"
            "  pgfleet user create --email E       a user (password from stdin, or generated)\n"
            "                                      and a workspace; prints both ids\n"
            "  pgfleet oauth-client create --name N --redirect-uri U\n"
            "                                      register an OAuth client; prints its id\n"
            "  pgfleet status                      the fleet from the catalog: databases, ops,\n"
            "                                      last backups (works beside a running serve)\n"
            "  pgfleet version\n\n"
            "over the API of a running server (pgfleet COMMAND --help; docs/cli.md):\n",
            PGFLEET_VERSION);
    cli_usage(f);
    fprintf(f, "  exit status: 0 done, 1 refused or failed, 2 usage, 3 not found, 4 conflict,\n"
               "               5 server or network error\n\noptions (host-side commands):\n");
    opt_help(f, options, O__COUNT);
}

/* Fills ov[] for cmd (util/opt.h); --help prints the usage and exits. 0, or -1 after a
 * message. */
static int parse_options(int argc, char **argv, int first, int cmd)
{
    pf_err e;
    err_clear(&e);
    int rc = opt_parse(options, O__COUNT, ov, cmd, argc, argv, first, &e);
    if (rc == 1) {
        usage(stdout);
        exit(0);
    }
    if (rc < 0)
        fprintf(stderr, "pgfleet: %s\n", e.message);
    return rc < 0 ? -1 : 0;
}

/* Makes the home absolute and present, opens the catalog, and makes sure a default
 * workspace exists. */
static int open_home(char *home_abs, size_t n, store **st, pf_err *e)
{
    const char *home = OPT(O_HOME);
    if (mkdir(home, 0711) != 0 && errno != EEXIST)
        return err_internal(e, "cannot create home %s: %s", home, strerror(errno));
    if (!realpath(home, home_abs))
        return err_internal(e, "cannot resolve home %s: %s", home, strerror(errno));
    (void)n;
    char *db = xasprintf("%s/catalog.db", home_abs);
    /* the catalog holds SCRAM verifiers and token hashes: owner-only, created so before
     * SQLite opens it (its -wal and -shm files take the same mode) */
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        char *f = xasprintf("%s%s", db, suffixes[i]);
        if (i == 0) {
            int fd = open(f, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
            if (fd >= 0)
                close(fd);
        }
        if (chmod(f, 0600) != 0 && errno != ENOENT)
            log_warn("cannot make %s owner-only: %s", f, strerror(errno));
        free(f);
    }
    int rc = store_open(db, st, e);
    free(db);
    if (rc != 0)
        return -1;
    store_workspace w;
    pf_err le;
    if (store_workspace_first(*st, &w, &le) == 0)
        return 0;
    if (le.status != 404) {
        *e = le;
        return -1;
    }
    memset(&w, 0, sizeof w);
    util_id_new("wksp", w.id);
    snprintf(w.name, sizeof w.name, "Default Workspace");
    util_now_iso(w.created_at);
    return store_workspace_insert(*st, &w, e);
}

/* Opens the home, runs work on its catalog, reports a failure and closes: the shape of
 * every CLI command that changes the catalog. Exit status 0 or 1. */
static int with_home(int (*work)(store *st, pf_err *e))
{
    char home[4096];
    store *st = NULL;
    pf_err e;
    err_clear(&e);
    int rc = open_home(home, sizeof home, &st, &e) == 0 && work(st, &e) == 0 ? 0 : 1;
    if (rc != 0)
        fprintf(stderr, "pgfleet: %s\n", e.message);
    if (st)
        store_close(st);
    return rc;
}

/* An operator token (docs/console.md): made only here, on the host; owned by the first
 * workspace's row but acting in none. */
static int operator_token_create(store *st, pf_err *e)
{
    store_workspace w;
    if (store_workspace_first(st, &w, e) != 0)
        return -1;
    char value[AUTH_TOKEN_MAX];
    store_token t;
    if (auth_operator_token_create(st, w.id, OPT(O_NAME), value, &t, e) != 0)
        return -1;
    fprintf(stderr, "pgfleet: operator token %s (read-only, the whole fleet); it is shown once:\n",
            t.id);
    printf("%s\n", value);
    sodium_memzero(value, sizeof value);
    return 0;
}

static int token_create(store *st, pf_err *e)
{
    if (ov[O_OPERATOR].n)
        return operator_token_create(st, e);
    store_workspace w;
    if (OPT(O_WORKSPACE) ? store_workspace_get(st, OPT(O_WORKSPACE), &w, e)
                         : store_workspace_first(st, &w, e))
        return -1;
    char value[AUTH_TOKEN_MAX];
    store_token t;
    if (auth_token_create(st, w.id, OPT(O_NAME), NULL, value, &t, e) != 0)
        return -1;
    fprintf(stderr, "pgfleet: service token %s for workspace %s (%s); it is shown once:\n", t.id,
            w.id, w.name);
    printf("%s\n", value);
    return 0;
}

static int cmd_token_create(void)
{
    if (ov[O_OPERATOR].n && OPT(O_WORKSPACE)) {
        fprintf(stderr, "pgfleet: an operator token belongs to no workspace: drop --workspace\n");
        return 2;
    }
    return with_home(token_create);
}

static int token_revoke(store *st, pf_err *e)
{
    if (store_token_revoke(st, OPT(O_TOKEN_ID), e) != 0)
        return -1;
    fprintf(stderr, "pgfleet: token %s revoked\n", OPT(O_TOKEN_ID));
    return 0;
}

/* Any token by id, an operator token included (no workspace lists those). */
static int cmd_token_revoke(void)
{
    const char *id = OPT(O_TOKEN_ID);
    if (!id || strncmp(id, "tok_", 4) != 0 || strlen(id) >= PF_ID_MAX) {
        fprintf(stderr, "pgfleet: token revoke needs --id tok_... (printed by token create)\n");
        return 2;
    }
    return with_home(token_revoke);
}

static int workspace_create(store *st, pf_err *e)
{
    store_workspace w;
    memset(&w, 0, sizeof w);
    util_id_new("wksp", w.id);
    snprintf(w.name, sizeof w.name, "%s", OPT(O_NAME));
    util_now_iso(w.created_at);
    if (store_workspace_insert(st, &w, e) != 0)
        return -1;
    printf("%s\n", w.id);
    return 0;
}

/* The --name a create command needs: 1 to 255 characters; else a line on stderr. */
static bool name_ok(const char *command)
{
    const char *name = OPT(O_NAME);
    if (name && *name && strlen(name) <= 255)
        return true;
    fprintf(stderr, "pgfleet: %s create needs --name (1 to 255 characters)\n", command);
    return false;
}

static int cmd_workspace_create(void)
{
    if (!name_ok("workspace"))
        return 2;
    return with_home(workspace_create);
}

/* Reads one line (the password) from stdin when it is not a terminal; "" otherwise. */
static void read_password(char *out, size_t n)
{
    out[0] = '\0';
    if (isatty(STDIN_FILENO))
        return;
    if (!fgets(out, (int)n, stdin)) {
        out[0] = '\0';
        return;
    }
    size_t l = strlen(out);
    while (l && (out[l - 1] == '\n' || out[l - 1] == '\r'))
        out[--l] = '\0';
}

static int cmd_user_create(void)
{
    char home[4096];
    store *st = NULL;
    pf_err e;
    err_clear(&e);
    const char *email = OPT(O_EMAIL);
    const char *at = email ? strchr(email, '@') : NULL;
    if (!email || !at || at == email || !at[1] || strlen(email) > 254 || strchr(email, ' ')) {
        fprintf(stderr, "pgfleet: user create needs --email with an address like a@example.com\n");
        return 2;
    }
    if (OPT(O_NAME) && strlen(OPT(O_NAME)) > 255) {
        fprintf(stderr, "pgfleet: --name is at most 255 characters\n");
        return 2;
    }
    char pw[1100];
    read_password(pw, sizeof pw);
    bool generated = pw[0] == '\0';
    if (generated)
        util_secret(pw, 20);
    else if (strlen(pw) < 8 || strlen(pw) > 1024) {
        fprintf(stderr, "pgfleet: the password must be 8 to 1024 characters\n");
        return 2;
    }
    if (open_home(home, sizeof home, &st, &e) != 0)
        goto fail;
    store_user u;
    memset(&u, 0, sizeof u);
    util_id_new("usr", u.id);
    snprintf(u.email, sizeof u.email, "%s", email);
    snprintf(u.name, sizeof u.name, "%s", OPT(O_NAME) ? OPT(O_NAME) : "");
    util_now_iso(u.created_at);
    if (auth_password_hash(pw, u.password_hash, &e) != 0)
        goto fail;
    store_workspace w;
    memset(&w, 0, sizeof w);
    if (store_tx_begin(st, &e) != 0)
        goto fail;
    int rc = 0;
    if (OPT(O_WORKSPACE)) {
        rc = store_workspace_get(st, OPT(O_WORKSPACE), &w, &e);
    } else {
        util_id_new("wksp", w.id);
        snprintf(w.name, sizeof w.name, "%.200s's workspace", email);
        util_now_iso(w.created_at);
        rc = store_workspace_insert(st, &w, &e);
    }
    if (rc == 0)
        rc = store_user_insert(st, &u, &e);
    if (rc == 0)
        rc = store_membership_add(st, u.id, w.id, &e);
    if (rc != 0) {
        store_tx_rollback(st);
        goto fail;
    }
    if (store_tx_commit(st, &e) != 0)
        goto fail;
    fprintf(stderr, "pgfleet: user %s (%s) in workspace %s (%s)%s\n", u.id, u.email, w.id, w.name,
            generated ? "; the generated password is shown once:" : "");
    printf("%s\n%s\n", u.id, w.id);
    if (generated)
        printf("%s\n", pw);
    sodium_memzero(pw, sizeof pw);
    store_close(st);
    return 0;
fail:
    sodium_memzero(pw, sizeof pw);
    fprintf(stderr, "pgfleet: %s\n", e.message);
    if (st)
        store_close(st);
    return 1;
}

/* An absolute URI without a fragment, whitespace or control characters. */
static bool redirect_uri_ok(const char *u)
{
    const char *colon = strchr(u, ':');
    if (!colon || colon == u || strlen(u) >= STORE_URI_MAX || strchr(u, '#'))
        return false;
    for (const char *p = u; p < colon; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (p > u && ((*p >= '0' && *p <= '9') || *p == '+' || *p == '-' || *p == '.'))))
            return false;
    for (const unsigned char *p = (const unsigned char *)u; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return false;
    return colon[1] != '\0';
}

static int oauth_client_create(store *st, pf_err *e)
{
    store_oauth_client c;
    memset(&c, 0, sizeof c);
    util_id_new("cli", c.id);
    snprintf(c.name, sizeof c.name, "%s", OPT(O_NAME));
    snprintf(c.redirect_uris, sizeof c.redirect_uris, "%s", OPT(O_REDIRECT_URI));
    util_now_iso(c.created_at);
    if (store_oauth_client_insert(st, &c, e) != 0)
        return -1;
    printf("%s\n", c.id);
    return 0;
}

static int cmd_oauth_client_create(void)
{
    const char *uri = OPT(O_REDIRECT_URI);
    if (!name_ok("oauth-client"))
        return 2;
    if (!uri || !redirect_uri_ok(uri)) {
        fprintf(stderr, "pgfleet: oauth-client create needs --redirect-uri with an absolute URI "
                        "without a fragment (e.g. http://localhost:3000/callback)\n");
        return 2;
    }
    return with_home(oauth_client_create);
}

/* The catalog's view of the fleet, for an operator's shell: counts, then one line per
 * database. Reads only; a running `serve` is not disturbed (WAL readers). */
static int fleet_status(store *st, pf_err *e)
{
    store_stats ss;
    if (store_stats_get(st, &ss, e) != 0)
        return -1;
    printf("databases:");
    for (int i = 0; i < STORE_DB_STATUS_COUNT; i++)
        printf(" %lld %s%s", (long long)ss.databases[i], store_db_status_name((store_db_status)i),
               i + 1 < STORE_DB_STATUS_COUNT ? "," : "\n");
    long long pending = 0, running = 0;
    for (int k = 0; k < OP__COUNT; k++) {
        pending += ss.ops[k][0];
        running += ss.ops[k][1];
    }
    printf("ops: %lld pending, %lld running\n", pending, running);
    printf("spares: %d\n", engine_spares_on_disk(OPT(O_HOME)));
    store_database *dbs = NULL;
    store_last_backup *lb = NULL;
    size_t n = 0, nlb = 0;
    if (store_database_list_internal(st, &dbs, &n, e) != 0)
        return -1;
    if (store_stats_last_backups(st, &lb, &nlb, e) != 0) {
        free(dbs);
        return -1;
    }
    /* awake or asleep from the engine's mark (instances/<id>/asleep): read without waking */
    bool *sleeping = xcalloc(n ? n : 1, sizeof *sleeping);
    size_t nasleep = 0;
    for (size_t i = 0; i < n; i++) {
        const char *inst = dbs[i].instance_id[0] ? dbs[i].instance_id : dbs[i].id;
        char *mark = xasprintf("%s/instances/%s/asleep", OPT(O_HOME), inst);
        sleeping[i] = fs_exists(mark);
        nasleep += sleeping[i];
        free(mark);
    }
    printf("servers: %zu awake, %zu asleep\n", n - nasleep, nasleep);
    if (n)
        printf("\n%-28s %-12s %-6s %-6s %-24s %-28s %s\n", "DATABASE", "STATUS", "STATE", "PORT",
               "LAST BACKUP", "INSTANCE", "NAME");
    for (size_t i = 0; i < n; i++) {
        const char *last = "-";
        for (size_t j = 0; j < nlb; j++)
            if (strcmp(lb[j].database_id, dbs[i].id) == 0 && lb[j].stopped_at[0])
                last = lb[j].stopped_at;
        printf("%-28s %-12s %-6s %-6d %-24s %-28s %s\n", dbs[i].id,
               store_db_status_name(dbs[i].status), sleeping[i] ? "asleep" : "awake", dbs[i].port,
               last, dbs[i].instance_id[0] ? dbs[i].instance_id : "-", dbs[i].name);
        if (dbs[i].unhealthy[0])
            printf("%-28s unhealthy: %s\n", "", dbs[i].unhealthy);
    }
    free(sleeping);
    free(dbs);
    free(lb);
    return 0;
}

/* HTTPS on the API listener: --http-tls, or by default on unless it listens on loopback. */
static bool api_tls(void)
{
    const char *h = ov[O_LISTEN].host;
    bool loopback = strncmp(h, "127.", 4) == 0 || strcmp(h, "::1") == 0;
    return ov[O_HTTP_TLS].n == 1 || (ov[O_HTTP_TLS].n == 0 && !loopback);
}

/* The base of every `url` field: --public-url, else http(s)://LISTEN; no trailing slash. */
static void base_url(char *out, size_t n)
{
    const opt_value *l = &ov[O_LISTEN];
    const char *sch = api_tls() ? "https" : "http";
    if (OPT(O_PUBLIC_URL))
        snprintf(out, n, "%s", OPT(O_PUBLIC_URL));
    else
        snprintf(out, n, strchr(l->host, ':') ? "%s://[%.200s]:%d" : "%s://%.200s:%d", sch, l->host,
                 l->port);
    size_t len = strlen(out);
    while (len > 0 && out[len - 1] == '/')
        out[--len] = '\0';
}

/* ---- serve: the parsed options wired into each layer's config ---- */

/* --tls-mode: loopback-optional, or auto with a loopback public host. */
static bool tls_loopback_optional(void)
{
    if (ov[O_TLS_MODE].n != 0)
        return ov[O_TLS_MODE].n == 2;
    const char *h = OPT(O_PUBLIC_HOST);
    return strncmp(h, "127.", 4) == 0 || strcmp(h, "::1") == 0 || strcmp(h, "localhost") == 0;
}

static engine_config serve_engine_config(const char *home)
{
    static char dp_dir[4200];
    snprintf(dp_dir, sizeof dp_dir, "%s/" CTLMSG_DIR, home);
    engine_config ec = {.home = home,
                        .pg_bindir = OPT(O_PG_BINDIR),
                        /* the data path holds the public ports: servers have no TCP port */
                        .listen_addr = "",
                        .datapath_dir = dp_dir,
                        .datapath_route_port = CTLMSG_ROUTE_PORT,
                        .backup_repo = OPT(O_BACKUP_REPO),
                        .backup_retention_days = (int)ov[O_BACKUP_RETENTION].n,
                        .tls_host = OPT(O_PUBLIC_HOST),
                        .tls_cert = OPT(O_TLS_CERT),
                        .tls_key = OPT(O_TLS_KEY),
                        .tls_ca = OPT(O_TLS_CA),
                        .tls_loopback_optional = tls_loopback_optional(),
                        .extensions = OPT(O_EXTENSIONS),
                        .max_connections = (int)ov[O_MAX_CONNECTIONS].n,
                        .pool_size = (int)ov[O_POOL_SIZE].n,
                        .databases_per_server = (int)ov[O_DATABASES_PER_SERVER].n};
    if (ov[O_POOLER_LISTEN].port > 0) {
        ec.pooler_bin = OPT(O_PGBOUNCER);
        ec.pooler_host = ov[O_POOLER_LISTEN].host;
        ec.pooler_port = ov[O_POOLER_LISTEN].port;
    }
    return ec;
}

static ops_config serve_ops_config(const char *home)
{
    static char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = '\0';
    return (ops_config){.datapath_exe = n > 0 ? self : NULL,
                        .home = home,
                        .suspend_after_s = (int)ov[O_SUSPEND_AFTER].n,
                        /* tests: one IPv4 loopback address that counts as a remote client's */
                        .remote_test_addr = getenv("PGFLEET_TEST_REMOTE_ADDR"),
                        .workers = (int)ov[O_WORKERS].n,
                        .port_lo = (int)ov[O_PORT_RANGE].n,
                        .port_hi = (int)ov[O_PORT_RANGE].hi,
                        .start_timeout_ms = 30000,
                        .max_attempts = 3,
                        .reconcile_ms = 2000,
                        .spares = (int)ov[O_SPARES].n,
                        .direct_cap =
                            engine_direct_cap((int)ov[O_MAX_CONNECTIONS].n, (int)ov[O_POOL_SIZE].n),
                        .backup_workers = (int)ov[O_BACKUP_WORKERS].n,
                        .backup_interval_s = (int)ov[O_BACKUP_INTERVAL].n,
                        .backup_full_interval_s = (int)ov[O_BACKUP_FULL_INTERVAL].n,
                        .backup_diff_interval_s = (int)ov[O_BACKUP_DIFF_INTERVAL].n,
                        .usage_interval_s = (int)ov[O_USAGE_INTERVAL].n};
}

/* The API listener's limits. */
static http_limits serve_http_limits(void)
{
    long per = ov[O_HTTP_MAX_PER_ADDRESS].n;
    return (http_limits){.max_connections = (int)ov[O_HTTP_MAX_CONNECTIONS].n,
                         .max_per_address = per == 0 ? -1 : (int)per,
                         .header_ms = (int)ov[O_HTTP_HEADER_TIMEOUT].n * 1000,
                         .body_ms = (int)ov[O_HTTP_BODY_TIMEOUT].n * 1000,
                         .idle_ms = (int)ov[O_HTTP_IDLE_TIMEOUT].n * 1000,
                         .body_max = (size_t)ov[O_HTTP_MAX_BODY].n,
                         .workers = (int)ov[O_HTTP_WORKERS].n};
}

/* The API's settings from the options (serve adds the catalog, keys, ops, CA path). */
static void serve_api_settings(app *a)
{
    a->version = PGFLEET_VERSION;
    a->access_ttl_s = (int)ov[O_ACCESS_TTL].n;
    a->port_lo = (int)ov[O_PORT_RANGE].n;
    a->port_hi = (int)ov[O_PORT_RANGE].hi;
    a->op_wait_ms = 20000;
    a->backup_retention_days = (int)ov[O_BACKUP_RETENTION].n;
    a->expiry_min_s = ov[O_EXPIRY_MIN].n;
    a->pooler_port = ov[O_POOLER_LISTEN].port;
    snprintf(a->public_host, sizeof a->public_host, "%s", OPT(O_PUBLIC_HOST));
    a->tls_loopback_optional = tls_loopback_optional();
    base_url(a->base_url, sizeof a->base_url);
}

/* Database ports inside the kernel's ephemeral range would be taken by ordinary outgoing
 * sockets (a client connection, a DNS query) at random: refuse such a range at start. */
static int port_range_check(pf_err *e)
{
    int lo = (int)ov[O_PORT_RANGE].n, hi = (int)ov[O_PORT_RANGE].hi, elo = 0, ehi = 0;
    if (!util_ephemeral_range(&elo, &ehi) || hi < elo || lo > ehi)
        return 0;
    return err_kind(e, ERR_INVALID, "PortRangeEphemeral",
                    "--port-range %d-%d overlaps the kernel's ephemeral port range %d-%d "
                    "(/proc/sys/net/ipv4/ip_local_port_range): choose database ports outside it, "
                    "e.g. the default 20000-29999",
                    lo, hi, elo, ehi);
}

/* The home locked, the API (and metrics) port bound, then the rest is serve's
 * (src/serve): a second pgfleet on the home or a busy port fails before initdb. */
static int cmd_serve(void)
{
    char home[4096];
    store *st = NULL;
    int lockfd = -1, listen_fd = -1, metrics_fd = -1;
    const opt_value *listen = &ov[O_LISTEN], *metrics = &ov[O_METRICS_LISTEN];
    pf_err e;
    err_clear(&e);
    log_set_level((log_level)ov[O_LOG_LEVEL].n); /* log_levels[] is in log_level order */
    log_set_format((log_format)ov[O_LOG_FORMAT].n);

    if (port_range_check(&e) != 0)
        goto fail;
    if (http_listen(listen->host, listen->port, &listen_fd, &e) != 0)
        goto fail;
    if (metrics->port > 0 && http_listen(metrics->host, metrics->port, &metrics_fd, &e) != 0)
        goto fail;
    if (open_home(home, sizeof home, &st, &e) != 0)
        goto fail;
    char *lockpath = xasprintf("%s/pgfleet.lock", home);
    lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(lockpath);
    if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB) != 0) {
        err_internal(&e, "another pgfleet serves %s already", home);
        goto fail;
    }

    static serve_config c; /* the app inside is large */
    c = (serve_config){.home = home,
                       .run_as = OPT(O_RUN_AS),
                       .regions = OPT(O_REGIONS),
                       .engine = serve_engine_config(home),
                       .ops = serve_ops_config(home),
                       .limits = serve_http_limits(),
                       .listen_host = listen->host,
                       .listen_port = listen->port,
                       .metrics_host = metrics->host,
                       .metrics_port = metrics->port,
                       .api_tls = api_tls(),
                       .api_tls_cert = OPT(O_HTTP_TLS_CERT),
                       .api_tls_key = OPT(O_HTTP_TLS_KEY),
                       .rate_limit = (double)ov[O_RATE_LIMIT].n,
                       .rate_burst = (double)ov[O_RATE_BURST].n};
    serve_api_settings(&c.api);
    return serve_run(&c, st, lockfd, listen_fd, metrics_fd);
fail:
    log_error("%s", e.message);
    serve_release(st, lockfd, listen_fd, metrics_fd);
    return 1;
}

static int cmd_status(void)
{
    return with_home(fleet_status);
}

/* The CLI's commands over the API (src/cli) parse their own arguments, from argv[1] on. */
static int cli_argc;
static char **cli_argv;
static int cmd_cli(void)
{
    return cli_run(cli_argc - 1, cli_argv + 1);
}

/* The data path (src/datapath): serve starts it with the absolute home. */
static int cmd_datapath(void)
{
    log_set_level(LOG_INFO);
    dp_options o = {.home = OPT(O_HOME)};
    return datapath_main(&o);
}

/* The commands: their word and second word (or NULL), the options they take (CMD_CLI: its
 * own, not options[]), what runs. */
typedef struct command {
    const char *word, *sub;
    int cmd;
    int (*run)(void);
} command;
static const command commands[] = {
    {"serve", NULL, CMD_SERVE, cmd_serve},
    {"token", "create", CMD_TOKEN, cmd_token_create},
    {"token", "revoke", CMD_REVOKE, cmd_token_revoke},
    {"workspace", "create", CMD_WORKSPACE, cmd_workspace_create},
    {"user", "create", CMD_USER, cmd_user_create},
    {"oauth-client", "create", CMD_CLIENT, cmd_oauth_client_create},
    {"status", NULL, CMD_STATUS, cmd_status},
    /* over the API (src/cli, docs/cli.md) */
    {"login", NULL, CMD_CLI, cmd_cli},
    {"logout", NULL, CMD_CLI, cmd_cli},
    {"projects", NULL, CMD_CLI, cmd_cli},
    {"databases", NULL, CMD_CLI, cmd_cli},
    {"connections", NULL, CMD_CLI, cmd_cli},
    {"backups", NULL, CMD_CLI, cmd_cli},
    {"restore", NULL, CMD_CLI, cmd_cli},
    {"usage", NULL, CMD_CLI, cmd_cli},
    {"branches", NULL, CMD_CLI, cmd_cli},
    {"psql", NULL, CMD_CLI, cmd_cli},
    {"completion", NULL, CMD_CLI, cmd_cli},
    {"datapath", NULL, CMD_DATAPATH, cmd_datapath},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

/* The host-side words, for the CLI's shell completion. */
static const char *host_words[NCOMMANDS];
static size_t host_words_fill(void)
{
    size_t n = 0;
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (commands[i].cmd != CMD_CLI &&
            (n == 0 || strcmp(host_words[n - 1], commands[i].word) != 0))
            host_words[n++] = commands[i].word;
    return n;
}

int main(int argc, char **argv)
{
    util_init();
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *c = argv[1];
    if (strcmp(c, "--help") == 0 || strcmp(c, "-h") == 0 || strcmp(c, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(c, "version") == 0 || strcmp(c, "--version") == 0) {
        printf("pgfleet %s\n", PGFLEET_VERSION);
        return 0;
    }
    cli_set_host_words(host_words, host_words_fill());
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const command *k = &commands[i];
        if (strcmp(c, k->word) != 0 || (k->sub && (argc < 3 || strcmp(argv[2], k->sub) != 0)))
            continue;
        if (k->cmd == CMD_CLI) {
            cli_argc = argc;
            cli_argv = argv;
            return k->run();
        }
        if (parse_options(argc, argv, k->sub ? 3 : 2, k->cmd) != 0)
            return 2;
        return k->run();
    }
    fprintf(stderr, "pgfleet: unknown command '%s'\n\n", c);
    usage(stderr);
    return 2;
}
