/* pgfleet: the program. `pgfleet serve` runs the control plane; `pgfleet token create` and
 * `pgfleet workspace create` work on a home directly, whether or not a server runs.
 * Options are declared once in `options[]`: parsing, defaults, environment variables and
 * the help text all come from it. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "auth/auth.h"
#include "engine/engine.h"
#include "http/http.h"
#include "ops/ops.h"
#include "store/store.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/util.h"

#define PGFLEET_VERSION "0.1.0"

enum {
    CMD_SERVE = 1,
    CMD_TOKEN = 2,
    CMD_WORKSPACE = 4,
    CMD_USER = 8,
    CMD_CLIENT = 16,
    CMD_STATUS = 32
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
    O_LOG_LEVEL,
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
    O_POOLER_LISTEN,
    O_METRICS_LISTEN,
    O_PGBOUNCER,
    O_TLS_CERT,
    O_TLS_KEY,
    O_TLS_CA,
    O__COUNT
} opt_id;

typedef struct opt_def {
    const char *name;
    const char *env;
    const char *def;
    int cmds;
    const char *help;
} opt_def;

static const opt_def options[O__COUNT] = {
    [O_HOME] = {"home", "PGFLEET_HOME", "./.pgfleet",
                CMD_SERVE | CMD_TOKEN | CMD_WORKSPACE | CMD_USER | CMD_CLIENT | CMD_STATUS,
                "data directory: catalog, instances, golden copy, keys"},
    [O_LISTEN] = {"listen", "PGFLEET_LISTEN", "127.0.0.1:8080", CMD_SERVE,
                  "HOST:PORT the API listens on (numeric address)"},
    [O_PUBLIC_URL] = {"public-url", "PGFLEET_PUBLIC_URL", NULL, CMD_SERVE,
                      "base URL written into every `url` field (default http://LISTEN)"},
    [O_PUBLIC_HOST] = {"public-host", "PGFLEET_PUBLIC_HOST", "127.0.0.1", CMD_SERVE,
                       "host written into connection strings"},
    [O_PORT_RANGE] = {"port-range", "PGFLEET_PORT_RANGE", "55000-55999", CMD_SERVE,
                      "LO-HI: TCP ports for database servers (one each)"},
    [O_REGIONS] = {"regions", "PGFLEET_REGIONS", "us-east-1=US East (N. Virginia)", CMD_SERVE,
                   "served regions as id=Name,id=Name (the first is the default)"},
    [O_RUN_AS] = {"run-as", "PGFLEET_RUN_AS", "postgres", CMD_SERVE,
                  "OS user for PostgreSQL when pgfleet runs as root"},
    [O_PG_BINDIR] = {"pg-bindir", "PGFLEET_PG_BINDIR", "/usr/lib/postgresql/15/bin", CMD_SERVE,
                     "where postgres and initdb live"},
    [O_WORKERS] = {"workers", "PGFLEET_WORKERS", "2", CMD_SERVE, "operation worker threads"},
    [O_SPARES] = {"spares", "PGFLEET_SPARES", "8", CMD_SERVE,
                  "ready copies of the golden kept for fast creates (~15 MiB each)"},
    [O_LOG_LEVEL] = {"log-level", "PGFLEET_LOG_LEVEL", "info", CMD_SERVE,
                     "debug, info, warn or error"},
    [O_BACKUP_REPO] = {"backup-repo", "PGFLEET_BACKUP_REPO", NULL, CMD_SERVE,
                       "pgBackRest repository directory (default HOME/backup)"},
    [O_BACKUP_RETENTION] = {"backup-retention-days", "PGFLEET_BACKUP_RETENTION_DAYS", "7",
                            CMD_SERVE, "days of backups and WAL kept (point-in-time window)"},
    [O_BACKUP_INTERVAL] = {"backup-interval", "PGFLEET_BACKUP_INTERVAL", "86400", CMD_SERVE,
                           "seconds between scheduled backups of a database with writes (0: "
                           "none)"},
    [O_BACKUP_FULL_INTERVAL] = {"backup-full-interval", "PGFLEET_BACKUP_FULL_INTERVAL", "604800",
                                CMD_SERVE,
                                "a scheduled backup is full when the last full is older than "
                                "this many seconds"},
    [O_BACKUP_DIFF_INTERVAL] = {"backup-diff-interval", "PGFLEET_BACKUP_DIFF_INTERVAL", "86400",
                                CMD_SERVE,
                                "else differential when the last full or differential is older "
                                "than this many seconds, else incremental"},
    [O_BACKUP_WORKERS] = {"backup-workers", "PGFLEET_BACKUP_WORKERS", "2", CMD_SERVE,
                          "threads for backup, restore and clone operations"},
    [O_USAGE_INTERVAL] = {"usage-interval", "PGFLEET_USAGE_INTERVAL", "60", CMD_SERVE,
                          "seconds between usage samples of each database (0: none)"},
    [O_WORKSPACE] = {"workspace", NULL, NULL, CMD_TOKEN | CMD_USER,
                     "workspace id (token: default workspace; user: a new one)"},
    [O_NAME] = {"name", NULL, NULL, CMD_TOKEN | CMD_WORKSPACE | CMD_USER | CMD_CLIENT,
                "a display name"},
    [O_EMAIL] = {"email", NULL, NULL, CMD_USER, "the user's email (sign-in name)"},
    [O_REDIRECT_URI] = {"redirect-uri", NULL, NULL, CMD_CLIENT,
                        "the OAuth client's redirect URI (matched exactly)"},
    [O_ACCESS_TTL] = {"access-token-ttl", "PGFLEET_ACCESS_TOKEN_TTL", "3600", CMD_SERVE,
                      "OAuth access token lifetime in seconds (1 to 86400)"},
    [O_POOLER_LISTEN] = {"pooler-listen", "PGFLEET_POOLER_LISTEN", "127.0.0.1:6432", CMD_SERVE,
                         "HOST:PORT of the pooled endpoint (PgBouncer), or off"},
    [O_METRICS_LISTEN] = {"metrics-listen", "PGFLEET_METRICS_LISTEN", "off", CMD_SERVE,
                          "HOST:PORT serving Prometheus metrics at /metrics, or off"},
    [O_PGBOUNCER] = {"pgbouncer", "PGFLEET_PGBOUNCER", "/usr/sbin/pgbouncer", CMD_SERVE,
                     "the PgBouncer program"},
    [O_TLS_CERT] = {"tls-cert", "PGFLEET_TLS_CERT", NULL, CMD_SERVE,
                    "PEM certificate for every database endpoint (default: made from a "
                    "private CA in HOME/tls)"},
    [O_TLS_KEY] = {"tls-key", "PGFLEET_TLS_KEY", NULL, CMD_SERVE, "PEM key of --tls-cert"},
    [O_TLS_CA] = {"tls-ca", "PGFLEET_TLS_CA", NULL, CMD_SERVE,
                  "with --tls-cert: the CA certificate served at GET /v1/ca.pem"},
};

static const char *optval[O__COUNT];

static void usage(FILE *f)
{
    fprintf(f,
            "pgfleet %s: a self-hosted PostgreSQL control plane serving the Prisma Postgres "
            "Management API (v1)\n\n"
            "usage:\n"
            "  pgfleet serve [options]             run the API and the databases\n"
            "  pgfleet token create [options]      print a new service token (last line)\n"
            "  pgfleet workspace create --name N   print a new workspace's id\n"
            "  pgfleet user create --email E       a user (password from stdin, or generated)\n"
            "                                      and a workspace; prints both ids\n"
            "  pgfleet oauth-client create --name N --redirect-uri U\n"
            "                                      register an OAuth client; prints its id\n"
            "  pgfleet status                      the fleet from the catalog: databases, ops,\n"
            "                                      last backups (works beside a running serve)\n"
            "  pgfleet version\n\noptions:\n",
            PGFLEET_VERSION);
    for (int i = 0; i < O__COUNT; i++) {
        const opt_def *o = &options[i];
        fprintf(f, "  --%-21s %s", o->name, o->help);
        if (o->def)
            fprintf(f, " [%s]", o->def);
        if (o->env)
            fprintf(f, " (env %s)", o->env);
        fputc('\n', f);
    }
}

static int parse_options(int argc, char **argv, int first, int cmd)
{
    for (int i = 0; i < O__COUNT; i++) {
        const char *env = options[i].env ? getenv(options[i].env) : NULL;
        optval[i] = env && *env ? env : options[i].def;
    }
    for (int i = first; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr, "pgfleet: unexpected argument '%s'\n", arg);
            return -1;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        int found = -1;
        for (int k = 0; k < O__COUNT; k++)
            if (strlen(options[k].name) == nlen && strncmp(options[k].name, name, nlen) == 0)
                found = k;
        if (found < 0 || !(options[found].cmds & cmd)) {
            fprintf(stderr, "pgfleet: unknown option '--%.*s' (see pgfleet --help)\n", (int)nlen,
                    name);
            return -1;
        }
        if (eq) {
            optval[found] = eq + 1;
        } else if (i + 1 < argc) {
            optval[found] = argv[++i];
        } else {
            fprintf(stderr, "pgfleet: option '--%s' needs a value\n", options[found].name);
            return -1;
        }
    }
    return 0;
}

/* Makes the home absolute and present, opens the catalog, and makes sure a default
 * workspace exists. */
static int open_home(char *home_abs, size_t n, store **st, pf_err *e)
{
    const char *home = optval[O_HOME];
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

static int token_create(store *st, pf_err *e)
{
    store_workspace w;
    if (optval[O_WORKSPACE] ? store_workspace_get(st, optval[O_WORKSPACE], &w, e)
                            : store_workspace_first(st, &w, e))
        return -1;
    char value[AUTH_TOKEN_MAX];
    store_token t;
    if (auth_token_create(st, w.id, optval[O_NAME], NULL, value, &t, e) != 0)
        return -1;
    fprintf(stderr, "pgfleet: service token %s for workspace %s (%s); it is shown once:\n", t.id,
            w.id, w.name);
    printf("%s\n", value);
    return 0;
}

static int cmd_token_create(void)
{
    return with_home(token_create);
}

static int workspace_create(store *st, pf_err *e)
{
    store_workspace w;
    memset(&w, 0, sizeof w);
    util_id_new("wksp", w.id);
    snprintf(w.name, sizeof w.name, "%s", optval[O_NAME]);
    util_now_iso(w.created_at);
    if (store_workspace_insert(st, &w, e) != 0)
        return -1;
    printf("%s\n", w.id);
    return 0;
}

static int cmd_workspace_create(void)
{
    const char *name = optval[O_NAME];
    if (!name || !*name || strlen(name) > 255) {
        fprintf(stderr, "pgfleet: workspace create needs --name (1 to 255 characters)\n");
        return 2;
    }
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
    const char *email = optval[O_EMAIL];
    const char *at = email ? strchr(email, '@') : NULL;
    if (!email || !at || at == email || !at[1] || strlen(email) > 254 || strchr(email, ' ')) {
        fprintf(stderr, "pgfleet: user create needs --email with an address like a@example.com\n");
        return 2;
    }
    if (optval[O_NAME] && strlen(optval[O_NAME]) > 255) {
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
    snprintf(u.name, sizeof u.name, "%s", optval[O_NAME] ? optval[O_NAME] : "");
    util_now_iso(u.created_at);
    if (auth_password_hash(pw, u.password_hash, &e) != 0)
        goto fail;
    store_workspace w;
    memset(&w, 0, sizeof w);
    if (store_tx_begin(st, &e) != 0)
        goto fail;
    int rc = 0;
    if (optval[O_WORKSPACE]) {
        rc = store_workspace_get(st, optval[O_WORKSPACE], &w, &e);
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
    snprintf(c.name, sizeof c.name, "%s", optval[O_NAME]);
    snprintf(c.redirect_uris, sizeof c.redirect_uris, "%s", optval[O_REDIRECT_URI]);
    util_now_iso(c.created_at);
    if (store_oauth_client_insert(st, &c, e) != 0)
        return -1;
    printf("%s\n", c.id);
    return 0;
}

static int cmd_oauth_client_create(void)
{
    const char *name = optval[O_NAME], *uri = optval[O_REDIRECT_URI];
    if (!name || !*name || strlen(name) > 255) {
        fprintf(stderr, "pgfleet: oauth-client create needs --name (1 to 255 characters)\n");
        return 2;
    }
    if (!uri || !redirect_uri_ok(uri)) {
        fprintf(stderr, "pgfleet: oauth-client create needs --redirect-uri with an absolute URI "
                        "without a fragment (e.g. http://localhost:3000/callback)\n");
        return 2;
    }
    return with_home(oauth_client_create);
}

static int parse_listen(const char *s, char *host, size_t hn, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return -1;
    size_t len = (size_t)(colon - s);
    if (s[0] == '[' && len >= 2 && s[len - 1] == ']') {
        s++;
        len -= 2;
    }
    if (len >= hn)
        return -1;
    memcpy(host, s, len);
    host[len] = '\0';
    long p = 0;
    if (!util_parse_int(colon + 1, 1, 65535, &p))
        return -1;
    *port = (int)p;
    return 0;
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
    store_database *dbs = NULL;
    store_last_backup *lb = NULL;
    size_t n = 0, nlb = 0;
    if (store_database_list_internal(st, &dbs, &n, e) != 0)
        return -1;
    if (store_stats_last_backups(st, &lb, &nlb, e) != 0) {
        free(dbs);
        return -1;
    }
    if (n)
        printf("\n%-28s %-12s %-6s %-24s %s\n", "DATABASE", "STATUS", "PORT", "LAST BACKUP",
               "NAME");
    for (size_t i = 0; i < n; i++) {
        const char *last = "-";
        for (size_t j = 0; j < nlb; j++)
            if (strcmp(lb[j].database_id, dbs[i].id) == 0 && lb[j].stopped_at[0])
                last = lb[j].stopped_at;
        printf("%-28s %-12s %-6d %-24s %s\n", dbs[i].id, store_db_status_name(dbs[i].status),
               dbs[i].port, last, dbs[i].name);
        if (dbs[i].unhealthy[0])
            printf("%-28s unhealthy: %s\n", "", dbs[i].unhealthy);
    }
    free(dbs);
    free(lb);
    return 0;
}

static int cmd_serve(void)
{
    int rc = 1;
    char home[4096];
    store *st = NULL;
    engine *en = NULL;
    ops *op = NULL;
    http_server *srv = NULL, *msrv = NULL;
    int lockfd = -1, listen_fd = -1, metrics_fd = -1;
    pf_err e;
    err_clear(&e);
    app a;
    memset(&a, 0, sizeof a);
    a.version = PGFLEET_VERSION;
    a.started_ms = util_wall_ms();

    const char *lvl = optval[O_LOG_LEVEL];
    log_set_level(strcmp(lvl, "debug") == 0   ? LOG_DEBUG
                  : strcmp(lvl, "warn") == 0  ? LOG_WARN
                  : strcmp(lvl, "error") == 0 ? LOG_ERROR
                                              : LOG_INFO);
    char host[256];
    int port = 0;
    if (parse_listen(optval[O_LISTEN], host, sizeof host, &port) != 0) {
        fprintf(stderr, "pgfleet: --listen takes HOST:PORT, got '%s'\n", optval[O_LISTEN]);
        return 2;
    }
    long lo = 0, hi = 0;
    {
        char buf[64];
        snprintf(buf, sizeof buf, "%s", optval[O_PORT_RANGE]);
        char *dash = strchr(buf, '-');
        if (dash)
            *dash = '\0';
        if (!dash || !util_parse_int(buf, 1024, 65535, &lo) ||
            !util_parse_int(dash + 1, 1024, 65535, &hi) || hi < lo) {
            fprintf(stderr, "pgfleet: --port-range takes LO-HI within 1024-65535, got '%s'\n",
                    optval[O_PORT_RANGE]);
            return 2;
        }
    }
    long retention = 7, interval = 86400, full_interval = 604800, diff_interval = 86400,
         bworkers = 2, usage_interval = 60;
    if (!util_parse_int(optval[O_BACKUP_RETENTION], 1, 3650, &retention) ||
        !util_parse_int(optval[O_BACKUP_INTERVAL], 0, 365L * 86400, &interval) ||
        !util_parse_int(optval[O_BACKUP_FULL_INTERVAL], 1, 3650L * 86400, &full_interval) ||
        !util_parse_int(optval[O_BACKUP_DIFF_INTERVAL], 1, 3650L * 86400, &diff_interval) ||
        !util_parse_int(optval[O_BACKUP_WORKERS], 1, 64, &bworkers) ||
        !util_parse_int(optval[O_USAGE_INTERVAL], 0, 86400, &usage_interval)) {
        fprintf(stderr, "pgfleet: --backup-retention-days takes 1 to 3650, --backup-interval, "
                        "--backup-full-interval and --backup-diff-interval seconds, "
                        "--backup-workers 1 to 64, --usage-interval 0 to 86400 seconds\n");
        return 2;
    }
    char pooler_host[256];
    int pooler_port = 0;
    if (strcmp(optval[O_POOLER_LISTEN], "off") != 0 &&
        parse_listen(optval[O_POOLER_LISTEN], pooler_host, sizeof pooler_host, &pooler_port) != 0) {
        fprintf(stderr, "pgfleet: --pooler-listen takes HOST:PORT or off, got '%s'\n",
                optval[O_POOLER_LISTEN]);
        return 2;
    }
    char metrics_host[256];
    int metrics_port = 0;
    if (strcmp(optval[O_METRICS_LISTEN], "off") != 0 &&
        parse_listen(optval[O_METRICS_LISTEN], metrics_host, sizeof metrics_host, &metrics_port) !=
            0) {
        fprintf(stderr, "pgfleet: --metrics-listen takes HOST:PORT or off, got '%s'\n",
                optval[O_METRICS_LISTEN]);
        return 2;
    }
    long workers = 2, spares = 0;
    if (!util_parse_int(optval[O_WORKERS], 1, 64, &workers)) {
        fprintf(stderr, "pgfleet: --workers takes 1 to 64\n");
        return 2;
    }
    if (!util_parse_int(optval[O_SPARES], 0, 1000, &spares)) {
        fprintf(stderr, "pgfleet: --spares takes 0 to 1000\n");
        return 2;
    }
    long access_ttl = 3600;
    if (!util_parse_int(optval[O_ACCESS_TTL], 1, 86400, &access_ttl)) {
        fprintf(stderr, "pgfleet: --access-token-ttl takes 1 to 86400 seconds\n");
        return 2;
    }
    static auth_keys keys; /* lives as long as the server */

    /* Signals are handled by this thread alone (sigwait); every thread created from here
     * on inherits the blocked mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* the API port is ours from the start: a busy port fails now, not after initdb */
    if (http_listen(host, port, &listen_fd, &e) != 0)
        goto out;
    if (metrics_port > 0 && http_listen(metrics_host, metrics_port, &metrics_fd, &e) != 0)
        goto out;
    if (open_home(home, sizeof home, &st, &e) != 0)
        goto out;
    char *lockpath = xasprintf("%s/pgfleet.lock", home);
    lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(lockpath);
    if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB) != 0) {
        err_internal(&e, "another pgfleet serves %s already", home);
        goto out;
    }

    engine_config ec = {.home = home,
                        .pg_bindir = optval[O_PG_BINDIR],
                        .listen_addr = "*",
                        .backup_repo = optval[O_BACKUP_REPO],
                        .backup_retention_days = (int)retention,
                        .tls_host = optval[O_PUBLIC_HOST],
                        .tls_cert = optval[O_TLS_CERT],
                        .tls_key = optval[O_TLS_KEY],
                        .tls_ca = optval[O_TLS_CA]};
    if (pooler_port > 0) {
        ec.pooler_bin = optval[O_PGBOUNCER];
        ec.pooler_host = pooler_host;
        ec.pooler_port = pooler_port;
    }
    if (proc_user_resolve(optval[O_RUN_AS], &ec.user, &e) != 0)
        goto out;
    int64_t t0 = util_now_ms();
    if (engine_open(&ec, &en, &e) != 0)
        goto out;
    log_info("engine ready in %lld ms (home %s, servers run as %s)",
             (long long)(util_now_ms() - t0), home, ec.user.name);

    if (auth_keys_load(home, &keys, &e) != 0)
        goto out;
    a.keys = &keys;
    a.access_ttl_s = (int)access_ttl;
    a.st = st;
    a.port_lo = (int)lo;
    a.port_hi = (int)hi;
    a.op_wait_ms = 20000;
    a.backup_retention_days = (int)retention;
    a.pooler_port = pooler_port;
    if (engine_tls_ca_path(en))
        snprintf(a.ca_path, sizeof a.ca_path, "%s", engine_tls_ca_path(en));
    snprintf(a.public_host, sizeof a.public_host, "%s", optval[O_PUBLIC_HOST]);
    if (optval[O_PUBLIC_URL]) {
        snprintf(a.base_url, sizeof a.base_url, "%s", optval[O_PUBLIC_URL]);
    } else if (strchr(host, ':')) {
        snprintf(a.base_url, sizeof a.base_url, "http://[%.200s]:%d", host, port);
    } else {
        snprintf(a.base_url, sizeof a.base_url, "http://%.200s:%d", host, port);
    }
    size_t bl = strlen(a.base_url);
    while (bl > 0 && a.base_url[bl - 1] == '/')
        a.base_url[--bl] = '\0';
    if (api_regions_configure(&a, optval[O_REGIONS], &e) != 0)
        goto out;

    ops_config oc = {.workers = (int)workers,
                     .port_lo = (int)lo,
                     .port_hi = (int)hi,
                     .start_timeout_ms = 30000,
                     .max_attempts = 3,
                     .reconcile_ms = 2000,
                     .spares = (int)spares,
                     .backup_workers = (int)bworkers,
                     .backup_interval_s = (int)interval,
                     .backup_full_interval_s = (int)full_interval,
                     .backup_diff_interval_s = (int)diff_interval,
                     .usage_interval_s = (int)usage_interval};
    if (ops_start(st, en, &oc, &op, &e) != 0)
        goto out;
    a.ops = op;

    size_t nroutes = 0;
    const http_route *routes = api_routes(&nroutes);
    http_config hc = {.host = host,
                      .port = port,
                      .listen_fd = listen_fd,
                      .routes = routes,
                      .nroutes = nroutes,
                      .auth = api_auth,
                      .app = &a};
    listen_fd = -1; /* http_start owns it now, even on failure */
    if (http_start(&hc, &srv, &e) != 0)
        goto out;
    a.api_server = srv;
    if (metrics_fd >= 0) {
        size_t nm = 0;
        const http_route *mroutes = api_metrics_routes(&nm);
        http_config mc = {.host = metrics_host,
                          .port = metrics_port,
                          .listen_fd = metrics_fd,
                          .routes = mroutes,
                          .nroutes = nm,
                          .app = &a};
        metrics_fd = -1;
        if (http_start(&mc, &msrv, &e) != 0)
            goto out;
        log_info("metrics at http://%s:%d/metrics", metrics_host, metrics_port);
    }
    log_info("pgfleet %s serving %s on %s:%d (public URL %s)", PGFLEET_VERSION, home, host, port,
             a.base_url);

    int sig = 0;
    sigwait(&sigs, &sig);
    log_info("received %s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    rc = 0;
out:
    if (rc != 0)
        log_error("pgfleet: %s", e.message);
    http_stop(msrv);
    http_stop(srv);
    ops_stop(op);
    if (en) {
        engine_pooler_stop(en);
        engine_stop_all(en);
        engine_close(en);
    }
    if (st)
        store_close(st);
    if (lockfd >= 0)
        close(lockfd);
    if (listen_fd >= 0)
        close(listen_fd);
    if (metrics_fd >= 0)
        close(metrics_fd);
    if (rc == 0)
        log_info("stopped");
    return rc;
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
    if (strcmp(c, "serve") == 0) {
        if (parse_options(argc, argv, 2, CMD_SERVE) != 0)
            return 2;
        return cmd_serve();
    }
    if (argc >= 3 && strcmp(c, "token") == 0 && strcmp(argv[2], "create") == 0) {
        if (parse_options(argc, argv, 3, CMD_TOKEN) != 0)
            return 2;
        return cmd_token_create();
    }
    if (argc >= 3 && strcmp(c, "workspace") == 0 && strcmp(argv[2], "create") == 0) {
        if (parse_options(argc, argv, 3, CMD_WORKSPACE) != 0)
            return 2;
        return cmd_workspace_create();
    }
    if (argc >= 3 && strcmp(c, "user") == 0 && strcmp(argv[2], "create") == 0) {
        if (parse_options(argc, argv, 3, CMD_USER) != 0)
            return 2;
        return cmd_user_create();
    }
    if (argc >= 3 && strcmp(c, "oauth-client") == 0 && strcmp(argv[2], "create") == 0) {
        if (parse_options(argc, argv, 3, CMD_CLIENT) != 0)
            return 2;
        return cmd_oauth_client_create();
    }
    if (strcmp(c, "status") == 0) {
        if (parse_options(argc, argv, 2, CMD_STATUS) != 0)
            return 2;
        return with_home(fleet_status);
    }
    fprintf(stderr, "pgfleet: unknown command '%s'\n\n", c);
    usage(stderr);
    return 2;
}
