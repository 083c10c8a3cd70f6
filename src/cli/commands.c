/* cli/commands: the command table of the CLI (one row per command: words, arguments, flags,
 * help, what runs) and the resource commands over the API: projects, databases,
 * connections, backups, restore, usage, branches. Lists follow every page; --json prints
 * the API's objects, else an aligned table; --wait polls until long work is done. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli_int.h"
#include "util/util.h"

#define WAIT_POLL_MS 250
#define WAIT_DEFAULT_S 600
#define MAX_PAGES 1000

/* ---- the columns of each resource's table ---- */
static const cli_col project_cols[] = {
    {"ID", "id"},
    {"NAME", "name"},
    {"REGION", "defaultRegion"},
    {"EXPIRES", "expiresAt"},
    {"CREATED", "createdAt"},
};
static const cli_col db_cols[] = {
    {"ID", "id"},
    {"NAME", "name"},
    {"STATUS", "status"},
    {"PROJECT", "project.id"},
    {"REGION", "region.id"},
    {"DEFAULT", "isDefault"},
    {"CREATED", "createdAt"},
};
static const cli_col conn_cols[] = {
    {"ID", "id"},
    {"NAME", "name"},
    {"DATABASE", "database.id"},
    {"HOST", "endpoints.direct.host"},
    {"PORT", "endpoints.direct.port"},
    {"CREATED", "createdAt"},
};
static const cli_col backup_cols[] = {
    {"ID", "id"},     {"TYPE", "backupType"},   {"STATUS", "status"},
    {"SIZE", "size"}, {"CREATED", "createdAt"},
};
static const cli_col branch_cols[] = {
    {"ID", "id"},
    {"GIT NAME", "gitName"},
    {"ROLE", "role"},
    {"DEFAULT", "isDefault"},
    {"CREATED", "createdAt"},
};
static const cli_col usage_cols[] = {
    {"START", "period.start"},
    {"END", "period.end"},
    {"OPERATIONS", "metrics.operations.used"},
    {"STORAGE GiB", "metrics.storage.used"},
};
#define NCOLS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ---- */

/* A call whose path is built here (path is freed; body is decref'd). */
static int api(cli_ctx *c, const char *method, char *path, json_t *body, json_t **out)
{
    long status;
    int rc = cli__call(&c->conn, method, path, body, false, &status, out);
    free(path);
    json_decref(body);
    return rc;
}

/* "/v1/<a>/<id escaped><b>" */
static char *path1(const char *a, const char *id, const char *b)
{
    char *e = cli__esc(id);
    char *p = xasprintf("/v1/%s/%s%s", a, e, b ? b : "");
    free(e);
    return p;
}

/* Every page of a list (base has no query, or ends in one: add gets '&' then) into *items. */
static int list_all(cli_ctx *c, const char *base, json_t **items)
{
    *items = json_array();
    char *cursor = NULL;
    int rc = CLI_EXIT_OK;
    for (int page = 0; page < MAX_PAGES; page++) {
        char *cur = cursor ? cli__esc(cursor) : NULL;
        char *path = xasprintf("%s%slimit=100%s%s", base, strchr(base, '?') ? "&" : "?",
                               cur ? "&cursor=" : "", cur ? cur : "");
        free(cur);
        json_t *j = NULL;
        rc = api(c, "GET", path, NULL, &j);
        if (rc != CLI_EXIT_OK)
            break;
        json_array_extend(*items, json_object_get(j, "data"));
        json_t *pg = json_object_get(j, "pagination");
        const char *next = json_string_value(json_object_get(pg, "nextCursor"));
        bool more = json_is_true(json_object_get(pg, "hasMore")) && next;
        free(cursor);
        cursor = more ? xstrdup(next) : NULL;
        json_decref(j);
        if (!more)
            break;
    }
    free(cursor);
    if (rc != CLI_EXIT_OK) {
        json_decref(*items);
        *items = NULL;
    }
    return rc;
}

/* Prints obj (an object or an array of them): JSON with --json, else a table. */
static void show(cli_ctx *c, const cli_col *cols, size_t n, json_t *obj)
{
    if (c->val[FL_JSON]) {
        cli__json(stdout, obj);
        return;
    }
    if (json_is_array(obj)) {
        cli__table(stdout, cols, n, obj);
        return;
    }
    json_t *rows = json_pack("[O]", obj);
    cli__table(stdout, cols, n, rows);
    json_decref(rows);
}

/* The connection strings a create or rotate answer shows once (tables only). */
static void show_secrets(cli_ctx *c, json_t *conn)
{
    if (c->val[FL_JSON] || !conn)
        return;
    const char *d = json_string_value(json_object_get(
        json_object_get(json_object_get(conn, "endpoints"), "direct"), "connectionString"));
    const char *p = json_string_value(json_object_get(
        json_object_get(json_object_get(conn, "endpoints"), "pooled"), "connectionString"));
    if (d)
        printf("\ndirect: %s\n", d);
    if (p)
        printf("pooled: %s\n", p);
    if (d || p)
        printf("(the password is shown only now)\n");
}

/* The connection of a database create answer that carries the password. */
static json_t *secret_conn(json_t *db)
{
    json_t *conns = json_object_get(db, "connections"), *x;
    size_t i;
    json_array_foreach(conns, i, x)
    {
        if (json_object_get(json_object_get(json_object_get(x, "endpoints"), "direct"),
                            "connectionString"))
            return x;
    }
    return NULL;
}

static int64_t wait_limit_ms(cli_ctx *c)
{
    long s = WAIT_DEFAULT_S;
    if (c->val[FL_TIMEOUT])
        cli__duration(c->val[FL_TIMEOUT], &s); /* checked in cli_run */
    return util_now_ms() + s * 1000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int cli__wait_database(cli_ctx *c, const char *db_id, const char *want)
{
    cli_progress p;
    cli__progress_start(&p, db_id);
    int64_t until = wait_limit_ms(c);
    for (;;) {
        json_t *j = NULL;
        int rc = api(c, "GET", path1("databases", db_id, NULL), NULL, &j);
        if (rc != CLI_EXIT_OK)
            return rc;
        char st[64];
        snprintf(st, sizeof st, "%s",
                 cli__str(json_object_get(json_object_get(j, "data"), "status"), "?"));
        json_decref(j);
        if (strcmp(st, want) == 0) {
            cli__progress_end(&p, st);
            return CLI_EXIT_OK;
        }
        if (strcmp(st, "failure") == 0) {
            cli__progress_end(&p, st);
            fprintf(stderr, "pgfleet: database %s failed (see the server's log)\n", db_id);
            return CLI_EXIT_OTHER;
        }
        cli__progress(&p, st);
        if (util_now_ms() > until) {
            cli__progress_end(&p, st);
            fprintf(stderr, "pgfleet: database %s is still %s: gave up waiting\n", db_id, st);
            return CLI_EXIT_OTHER;
        }
        sleep_ms(WAIT_POLL_MS);
    }
}

static int wait_backup(cli_ctx *c, const char *db_id, const char *backup_id, json_t **last)
{
    cli_progress p;
    char what[160];
    snprintf(what, sizeof what, "%s", backup_id);
    cli__progress_start(&p, what);
    int64_t until = wait_limit_ms(c);
    for (;;) {
        json_t *j = NULL;
        int rc = api(c, "GET", path1("databases", db_id, "/backups?limit=100"), NULL, &j);
        if (rc != CLI_EXIT_OK)
            return rc;
        json_t *x, *found = NULL;
        size_t i;
        json_array_foreach(json_object_get(j, "data"), i, x)
        {
            if (strcmp(cli__str(json_object_get(x, "id"), ""), backup_id) == 0)
                found = x;
        }
        char st[64];
        snprintf(st, sizeof st, "%s",
                 found ? cli__str(json_object_get(found, "status"), "?") : "not listed");
        if (strcmp(st, "completed") == 0 || strcmp(st, "failed") == 0) {
            *last = json_incref(found);
            json_decref(j);
            cli__progress_end(&p, st);
            if (strcmp(st, "failed") == 0) {
                fprintf(stderr, "pgfleet: backup %s failed\n", backup_id);
                return CLI_EXIT_OTHER;
            }
            return CLI_EXIT_OK;
        }
        json_decref(j);
        cli__progress(&p, st);
        if (util_now_ms() > until) {
            cli__progress_end(&p, st);
            fprintf(stderr, "pgfleet: backup %s is still %s: gave up waiting\n", backup_id, st);
            return CLI_EXIT_OTHER;
        }
        sleep_ms(WAIT_POLL_MS);
    }
}

static json_t *data_of(json_t *j)
{
    json_t *d = json_object_get(j, "data");
    return d ? d : j;
}

static void set_opt(json_t *body, const char *k, const char *v)
{
    if (v)
        json_object_set_new(body, k, json_string(v));
}

static int deleted(const char *id)
{
    fprintf(stderr, "pgfleet: deleted %s\n", id);
    return CLI_EXIT_OK;
}

/* ---- projects ---- */

static int projects_list(cli_ctx *c)
{
    json_t *items;
    int rc = list_all(c, "/v1/projects", &items);
    if (rc == CLI_EXIT_OK)
        show(c, project_cols, NCOLS(project_cols), items);
    json_decref(items);
    return rc;
}

static int projects_create(cli_ctx *c)
{
    json_t *body = json_object();
    set_opt(body, "name", c->val[FL_NAME]);
    set_opt(body, "region", c->val[FL_REGION]);
    if (c->val[FL_NO_DATABASE])
        json_object_set_new(body, "createDatabase", json_false());
    if (c->val[FL_TTL]) {
        long s;
        if (!cli__duration(c->val[FL_TTL], &s)) {
            json_decref(body);
            return cli__usage_error("--ttl must be a duration such as 90s, 30m, 1h or 2d");
        }
        char at[32];
        util_iso_from_ms(util_wall_ms() + (int64_t)s * 1000, at);
        json_object_set_new(body, "expiresAt", json_string(at));
    }
    json_t *j = NULL;
    int rc = api(c, "POST", xstrdup("/v1/projects"), body, &j);
    if (rc != CLI_EXIT_OK)
        return rc;
    json_t *p = data_of(j), *db = json_object_get(p, "database");
    const char *db_id = json_string_value(json_object_get(db, "id"));
    if (c->val[FL_WAIT] && db_id) {
        rc = cli__wait_database(c, db_id, "ready");
        if (rc == CLI_EXIT_OK)
            json_object_set_new(db, "status", json_string("ready"));
    }
    show(c, project_cols, NCOLS(project_cols), p);
    if (db_id && !c->val[FL_JSON]) {
        printf("\ndatabase %s (%s)\n", db_id, cli__str(json_object_get(db, "status"), "?"));
        show_secrets(c, secret_conn(db));
    }
    json_decref(j);
    return rc;
}

static int projects_get(cli_ctx *c)
{
    json_t *j = NULL;
    int rc = api(c, "GET", path1("projects", c->pos[0], NULL), NULL, &j);
    if (rc == CLI_EXIT_OK)
        show(c, project_cols, NCOLS(project_cols), data_of(j));
    json_decref(j);
    return rc;
}

static int projects_delete(cli_ctx *c)
{
    json_t *j = NULL;
    int rc = api(c, "DELETE", path1("projects", c->pos[0], NULL), NULL, &j);
    json_decref(j);
    return rc == CLI_EXIT_OK ? deleted(c->pos[0]) : rc;
}

/* ---- databases ---- */

static int databases_list(cli_ctx *c)
{
    json_t *items;
    char *base = c->val[FL_PROJECT] ? path1("projects", c->val[FL_PROJECT], "/databases")
                                    : xstrdup("/v1/databases");
    int rc = list_all(c, base, &items);
    free(base);
    if (rc == CLI_EXIT_OK)
        show(c, db_cols, NCOLS(db_cols), items);
    json_decref(items);
    return rc;
}

static int databases_create(cli_ctx *c)
{
    if (!c->val[FL_PROJECT])
        return cli__usage_error("databases create needs --project ID");
    if ((c->val[FL_FROM_BACKUP] || c->val[FL_AT]) && !c->val[FL_FROM_DATABASE])
        return cli__usage_error("--from-backup needs --from-database (the backup's database)");
    if (c->val[FL_AT] && !c->val[FL_FROM_BACKUP])
        return cli__usage_error("--at needs --from-backup");
    json_t *body = json_pack("{s:s}", "projectId", c->val[FL_PROJECT]);
    set_opt(body, "name", c->val[FL_NAME]);
    set_opt(body, "region", c->val[FL_REGION]);
    if (c->val[FL_FROM_BACKUP]) {
        json_t *src = json_pack("{s:s, s:s, s:s}", "type", "backup", "databaseId",
                                c->val[FL_FROM_DATABASE], "backupId", c->val[FL_FROM_BACKUP]);
        set_opt(src, "pointInTime", c->val[FL_AT]);
        json_object_set_new(body, "source", src);
    } else if (c->val[FL_FROM_DATABASE]) {
        json_object_set_new(
            body, "source",
            json_pack("{s:s, s:s}", "type", "database", "databaseId", c->val[FL_FROM_DATABASE]));
    }
    json_t *j = NULL;
    int rc = api(c, "POST", xstrdup("/v1/databases"), body, &j);
    if (rc != CLI_EXIT_OK)
        return rc;
    json_t *db = data_of(j);
    const char *id = json_string_value(json_object_get(db, "id"));
    if (c->val[FL_WAIT] && id) {
        rc = cli__wait_database(c, id, "ready");
        if (rc == CLI_EXIT_OK)
            json_object_set_new(db, "status", json_string("ready"));
    }
    show(c, db_cols, NCOLS(db_cols), db);
    show_secrets(c, secret_conn(db));
    json_decref(j);
    return rc;
}

static int databases_get(cli_ctx *c)
{
    json_t *j = NULL;
    int rc = api(c, "GET", path1("databases", c->pos[0], NULL), NULL, &j);
    if (rc == CLI_EXIT_OK)
        show(c, db_cols, NCOLS(db_cols), data_of(j));
    json_decref(j);
    return rc;
}

static int databases_delete(cli_ctx *c)
{
    json_t *j = NULL;
    int rc = api(c, "DELETE", path1("databases", c->pos[0], NULL), NULL, &j);
    json_decref(j);
    return rc == CLI_EXIT_OK ? deleted(c->pos[0]) : rc;
}

/* ---- connections ---- */

static int connections_list(cli_ctx *c)
{
    json_t *items;
    char *base = path1("databases", c->pos[0], "/connections");
    int rc = list_all(c, base, &items);
    free(base);
    if (rc == CLI_EXIT_OK)
        show(c, conn_cols, NCOLS(conn_cols), items);
    json_decref(items);
    return rc;
}

static int connections_create(cli_ctx *c)
{
    char name[64];
    snprintf(name, sizeof name, "cli-%lld", (long long)(util_wall_ms() / 1000));
    json_t *body = json_pack("{s:s}", "name", c->val[FL_NAME] ? c->val[FL_NAME] : name);
    json_t *j = NULL;
    int rc = api(c, "POST", path1("databases", c->pos[0], "/connections"), body, &j);
    if (rc == CLI_EXIT_OK) {
        show(c, conn_cols, NCOLS(conn_cols), data_of(j));
        show_secrets(c, data_of(j));
    }
    json_decref(j);
    return rc;
}

static int connections_rotate(cli_ctx *c)
{
    json_t *j = NULL;
    int rc = api(c, "POST", path1("connections", c->pos[0], "/rotate"), NULL, &j);
    if (rc == CLI_EXIT_OK) {
        show(c, conn_cols, NCOLS(conn_cols), data_of(j));
        show_secrets(c, data_of(j));
    }
    json_decref(j);
    return rc;
}

static int connections_delete(cli_ctx *c)
{
    json_t *j = NULL;
    int rc = api(c, "DELETE", path1("connections", c->pos[0], NULL), NULL, &j);
    json_decref(j);
    return rc == CLI_EXIT_OK ? deleted(c->pos[0]) : rc;
}

/* ---- backups, restore, usage ---- */

static int backups_list(cli_ctx *c)
{
    json_t *j = NULL;
    int rc = api(c, "GET", path1("databases", c->pos[0], "/backups?limit=100"), NULL, &j);
    if (rc == CLI_EXIT_OK)
        show(c, backup_cols, NCOLS(backup_cols), json_object_get(j, "data"));
    json_decref(j);
    return rc;
}

static int backups_create(cli_ctx *c)
{
    json_t *body = json_object();
    set_opt(body, "type", c->val[FL_TYPE]);
    json_t *j = NULL;
    int rc = api(c, "POST", path1("databases", c->pos[0], "/backups"), body, &j);
    if (rc != CLI_EXIT_OK)
        return rc;
    json_t *b = data_of(j), *last = NULL;
    const char *id = json_string_value(json_object_get(b, "id"));
    if (c->val[FL_WAIT] && id)
        rc = wait_backup(c, c->pos[0], id, &last);
    show(c, backup_cols, NCOLS(backup_cols), last ? last : b);
    json_decref(last);
    json_decref(j);
    return rc;
}

static int restore(cli_ctx *c)
{
    if (!c->val[FL_BACKUP])
        return cli__usage_error("restore needs --backup ID");
    const char *from = c->val[FL_FROM_DATABASE] ? c->val[FL_FROM_DATABASE] : c->pos[0];
    json_t *src = json_pack("{s:s, s:s, s:s}", "type", "backup", "databaseId", from, "backupId",
                            c->val[FL_BACKUP]);
    set_opt(src, "pointInTime", c->val[FL_AT]);
    json_t *j = NULL;
    int rc = api(c, "POST", path1("databases", c->pos[0], "/restore"),
                 json_pack("{s:o}", "source", src), &j);
    if (rc != CLI_EXIT_OK)
        return rc;
    json_t *db = data_of(j);
    if (c->val[FL_WAIT]) {
        rc = cli__wait_database(c, c->pos[0], "ready");
        if (rc == CLI_EXIT_OK)
            json_object_set_new(db, "status", json_string("ready"));
    }
    show(c, db_cols, NCOLS(db_cols), db);
    json_decref(j);
    return rc;
}

static int usage_cmd(cli_ctx *c)
{
    char *s = c->val[FL_START] ? cli__esc(c->val[FL_START]) : NULL;
    char *e = c->val[FL_END] ? cli__esc(c->val[FL_END]) : NULL;
    char *q = xasprintf("/usage%s%s%s%s%s", s || e ? "?" : "", s ? "startDate=" : "", s ? s : "",
                        s && e ? "&" : "", e ? "endDate=" : "");
    char *q2 = xasprintf("%s%s", q, e ? e : "");
    json_t *j = NULL;
    int rc = api(c, "GET", path1("databases", c->pos[0], q2), NULL, &j);
    if (rc == CLI_EXIT_OK)
        show(c, usage_cols, NCOLS(usage_cols), data_of(j));
    json_decref(j);
    free(q);
    free(q2);
    free(s);
    free(e);
    return rc;
}

/* ---- branches ---- */

static int branches_list(cli_ctx *c)
{
    if (!c->val[FL_PROJECT])
        return cli__usage_error("branches list needs --project ID");
    json_t *items;
    char *base = path1("projects", c->val[FL_PROJECT], "/branches");
    int rc = list_all(c, base, &items);
    free(base);
    if (rc == CLI_EXIT_OK)
        show(c, branch_cols, NCOLS(branch_cols), items);
    json_decref(items);
    return rc;
}

static int branches_create(cli_ctx *c)
{
    if (!c->val[FL_PROJECT] || !c->val[FL_GIT_NAME])
        return cli__usage_error("branches create needs --project ID and --git-name NAME");
    json_t *j = NULL;
    int rc = api(c, "POST", path1("projects", c->val[FL_PROJECT], "/branches"),
                 json_pack("{s:s}", "gitName", c->val[FL_GIT_NAME]), &j);
    if (rc == CLI_EXIT_OK)
        show(c, branch_cols, NCOLS(branch_cols), data_of(j));
    json_decref(j);
    return rc;
}

static int branches_get(cli_ctx *c)
{
    json_t *j = NULL;
    int rc = api(c, "GET", path1("branches", c->pos[0], NULL), NULL, &j);
    if (rc == CLI_EXIT_OK)
        show(c, branch_cols, NCOLS(branch_cols), data_of(j));
    json_decref(j);
    return rc;
}

static int branches_delete(cli_ctx *c)
{
    json_t *j = NULL;
    int rc = api(c, "DELETE", path1("branches", c->pos[0], NULL), NULL, &j);
    json_decref(j);
    return rc == CLI_EXIT_OK ? deleted(c->pos[0]) : rc;
}

/* ---- the table ---- */

#define J F(FL_JSON)
const cli_cmd cli__cmds[] = {
    {"login", NULL, NULL, 0, 0, F(FL_URL) | F(FL_CACERT), cli__login,
     "Saves a server's URL and a token for the other commands.\n"
     "The token is checked against the server, then kept in $XDG_CONFIG_HOME/pgfleet/config\n"
     "(default ~/.config/pgfleet/config, mode 0600). It is read from standard input, or\n"
     "prompted for without echo on a terminal; never from the command line."},
    {"logout", NULL, NULL, 0, 0, 0, cli__logout, "Removes the saved server and token."},
    {"projects", "list", NULL, 0, 0, J, projects_list, "Lists the projects of the workspace."},
    {"projects", "create", NULL, 0, 0,
     J | F(FL_NAME) | F(FL_REGION) | F(FL_TTL) | F(FL_NO_DATABASE) | F(FL_WAIT) | F(FL_TIMEOUT),
     projects_create,
     "Makes a project, with its default branch and database.\n"
     "With --ttl it is temporary: the whole project (its databases and their backups) is\n"
     "deleted when it expires. --no-database makes it without a database."},
    {"projects", "get", "PROJECT", 1, 1, J, projects_get, "Shows a project."},
    {"projects", "delete", "PROJECT", 1, 1, J, projects_delete,
     "Deletes a project with its databases and their backups."},
    {"databases", "list", NULL, 0, 0, J | F(FL_PROJECT), databases_list,
     "Lists the databases (of one project with --project)."},
    {"databases", "create", NULL, 0, 0,
     J | F(FL_PROJECT) | F(FL_NAME) | F(FL_REGION) | F(FL_FROM_DATABASE) | F(FL_FROM_BACKUP) |
         F(FL_AT) | F(FL_WAIT) | F(FL_TIMEOUT),
     databases_create,
     "Makes a database in a project.\n"
     "It is empty, or a copy of --from-database, or made from that database's backup\n"
     "--from-backup (at a point in time --at)."},
    {"databases", "get", "DB", 1, 1, J, databases_get, "Shows a database."},
    {"databases", "delete", "DB", 1, 1, J, databases_delete,
     "Deletes a database, its files and its backups (answers once it is gone)."},
    {"connections", "list", "DB", 1, 1, J, connections_list, "Lists a database's connections."},
    {"connections", "create", "DB", 1, 1, J | F(FL_NAME), connections_create,
     "Makes a connection (a role with its own password, shown once)."},
    {"connections", "rotate", "CONNECTION", 1, 1, J, connections_rotate,
     "Gives a connection a new password (shown once); the old one stops working."},
    {"connections", "delete", "CONNECTION", 1, 1, J, connections_delete,
     "Deletes a connection; its sessions end."},
    {"backups", "list", "DB", 1, 1, J, backups_list, "Lists a database's backups, newest first."},
    {"backups", "create", "DB", 1, 1, J | F(FL_TYPE) | F(FL_WAIT) | F(FL_TIMEOUT), backups_create,
     "Takes a backup now."},
    {"restore", NULL, "DB", 1, 1,
     J | F(FL_BACKUP) | F(FL_FROM_DATABASE) | F(FL_AT) | F(FL_WAIT) | F(FL_TIMEOUT), restore,
     "Restores a database from a backup.\n"
     "The backup is its own, or one of --from-database; --at replays up to a point in time."},
    {"usage", NULL, "DB", 1, 1, J | F(FL_START) | F(FL_END), usage_cmd,
     "Shows a database's usage (operations and storage) in a period (default this month)."},
    {"branches", "list", NULL, 0, 0, J | F(FL_PROJECT), branches_list,
     "Lists a project's branches."},
    {"branches", "create", NULL, 0, 0, J | F(FL_PROJECT) | F(FL_GIT_NAME), branches_create,
     "Makes a branch in a project."},
    {"branches", "get", "BRANCH", 1, 1, J, branches_get, "Shows a branch."},
    {"branches", "delete", "BRANCH", 1, 1, J, branches_delete, "Deletes a branch."},
    {"psql", NULL, "DB [-- PSQL-ARGS]", 1, -1, 0, cli__psql,
     "Runs psql on a database with a short-lived connection.\n"
     "The connection's password reaches psql in the environment (PGPASSWORD), never on a\n"
     "command line; the connection is deleted when psql exits (or, if pgfleet was killed,\n"
     "by the next pgfleet command against that server)."},
    {"completion", NULL, "bash|zsh", 1, 1, 0, cli__completion,
     "Prints a shell completion script.\n"
     "bash: `source <(pgfleet completion bash)`; zsh: save `pgfleet completion zsh` as a file\n"
     "_pgfleet on your $fpath."},
};
const size_t cli__ncmds = sizeof cli__cmds / sizeof cli__cmds[0];

static bool needs_server(const cli_cmd *k)
{
    return k->run != cli__login && k->run != cli__logout && k->run != cli__completion;
}

static void group_help(FILE *f, const char *group)
{
    fprintf(f, "usage: pgfleet %s COMMAND [options]   (pgfleet %s COMMAND --help)\n\n", group,
            group);
    for (size_t i = 0; i < cli__ncmds; i++) {
        const cli_cmd *k = &cli__cmds[i];
        if (strcmp(k->group, group) != 0)
            continue;
        const char *nl = strchr(k->help, '\n');
        int len = nl ? (int)(nl - k->help) : (int)strlen(k->help);
        char left[64];
        snprintf(left, sizeof left, "%s %s", k->verb, k->args ? k->args : "");
        fprintf(f, "  %-22s %.*s\n", left, len, k->help);
    }
}

void cli_usage(FILE *f)
{
    const char *prev = "";
    for (size_t i = 0; i < cli__ncmds; i++) {
        const cli_cmd *k = &cli__cmds[i];
        if (k->verb && strcmp(prev, k->group) == 0)
            continue;
        prev = k->group;
        char left[80];
        if (k->verb) {
            util_buf b = {0};
            for (size_t j = i; j < cli__ncmds && strcmp(cli__cmds[j].group, k->group) == 0; j++)
                util_buf_printf(&b, "%s%s", j == i ? "" : "|", cli__cmds[j].verb);
            snprintf(left, sizeof left, "%s %s", k->group, b.s);
            util_buf_free(&b);
        } else {
            snprintf(left, sizeof left, "%s%s%s", k->group, k->args ? " " : "",
                     k->args ? k->args : "");
        }
        fprintf(f, "  pgfleet %s\n", left);
    }
}

int cli_run(int argc, char **argv)
{
    const char *group = argv[0];
    const cli_cmd *k = NULL;
    bool grouped = false;
    for (size_t i = 0; i < cli__ncmds; i++) {
        if (strcmp(cli__cmds[i].group, group) != 0)
            continue;
        if (!cli__cmds[i].verb) {
            k = &cli__cmds[i];
            break;
        }
        grouped = true;
        if (argc > 1 && strcmp(cli__cmds[i].verb, argv[1]) == 0) {
            k = &cli__cmds[i];
            break;
        }
    }
    if (!k) {
        bool help = argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
        if (!grouped)
            return cli__usage_error("unknown command '%s'", group);
        if (!help && argc > 1)
            fprintf(stderr, "pgfleet: %s has no command '%s'\n\n", group, argv[1]);
        group_help(help ? stdout : stderr, group);
        return help ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    }
    int first = k->verb ? 2 : 1;
    cli_ctx c;
    memset(&c, 0, sizeof c);
    char err[512];
    int prc = cli__parse(k, argc - first, argv + first, &c, err, sizeof err);
    int rc;
    if (prc == 1) {
        cli__cmd_help(stdout, k);
        rc = CLI_EXIT_OK;
    } else if (prc < 0) {
        rc = cli__usage_error("%s", err);
    } else if (c.val[FL_TIMEOUT] && !cli__duration(c.val[FL_TIMEOUT], &(long){0})) {
        rc = cli__usage_error("--timeout must be a duration such as 90s, 30m or 1h");
    } else {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        rc = needs_server(k) ? cli__conn_load(&c) : CLI_EXIT_OK;
        if (rc == CLI_EXIT_OK && needs_server(k))
            cli__psql_cleanup(&c);
        if (rc == CLI_EXIT_OK)
            rc = k->run(&c);
        memset(c.conn.token, 0, sizeof c.conn.token);
        curl_global_cleanup();
    }
    free(c.pos);
    return rc;
}
