/* The JSON shapes of every resource, exactly as the contract types them (urls built from
 * the public base URL, secrets only in create and rotate responses). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"

static json_t *url_of(app *a, const char *kind, const char *id)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s/v1/%s/%s", a->base_url, kind, id);
    return json_string(buf);
}

static json_t *str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

json_t *shape_workspace(app *a, const store_workspace *w)
{
    return json_pack("{s:s, s:s, s:o, s:s, s:s}", "id", w->id, "type", "workspace", "url",
                     url_of(a, "workspaces", w->id), "name", w->name, "createdAt", w->created_at);
}

/* The project's settings (an extension, docs/api.md): {} when none were set. */
static json_t *project_settings(app *a, const store_project *p)
{
    char text[STORE_SETTINGS_MAX];
    pf_err e;
    json_t *j = NULL;
    if (store_project_settings(a->st, p->workspace_id, p->id, text, &e) == 0 && text[0])
        j = json_loads(text, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        j = json_object();
    }
    return j;
}

json_t *shape_project(app *a, const store_project *p)
{
    store_workspace w;
    pf_err e;
    if (store_workspace_get(a->st, p->workspace_id, &w, &e) != 0)
        snprintf(w.name, sizeof w.name, "%s", "");
    json_t *j =
        json_pack("{s:s, s:s, s:o, s:s, s:o, s:s, s:o, s:{s:s, s:o, s:s}}", "id", p->id, "type",
                  "project", "url", url_of(a, "projects", p->id), "name", p->name, "logicalId",
                  str_or_null(p->logical_id), "createdAt", p->created_at, "defaultRegion",
                  str_or_null(p->default_region), "workspace", "id", p->workspace_id, "url",
                  url_of(a, "workspaces", p->workspace_id), "name", w.name);
    json_object_set_new(j, "settings", project_settings(a, p));
    json_object_set_new(j, "expiresAt", str_or_null(p->expires_at));
    return j;
}

json_t *shape_branch(app *a, const store_branch *b, const store_project *p)
{
    return json_pack("{s:s, s:s, s:o, s:s, s:b, s:s, s:s, s:s, s:{s:s, s:o, s:s}}", "id", b->id,
                     "type", "branch", "url", url_of(a, "branches", b->id), "gitName", b->git_name,
                     "isDefault", b->is_default, "role", b->production ? "production" : "preview",
                     "createdAt", b->created_at, "updatedAt", b->updated_at, "project", "id", p->id,
                     "url", url_of(a, "projects", p->id), "name", p->name);
}

/* node-postgres (and Prisma through @prisma/adapter-pg) reads every sslmode but disable as
 * full verification, and its `uselibpqcompat` breaks libpq and postgres.js: with
 * loopback-optional the strings carry no sslmode, so every driver connects unchanged (psql
 * and psycopg still prefer TLS). */
const char *api_conn_query(const app *a)
{
    return a->tls_loopback_optional ? "" : "?sslmode=require";
}

static char *conn_string(app *a, const store_connection *c, const store_database *d,
                         const char *password)
{
    return xasprintf("postgresql://%s:%s@%s:%d/postgres%s", c->role, password, a->public_host,
                     d->port, api_conn_query(a));
}

/* ---- pooled endpoint (PgBouncer): dbname is the database id ---- */

static char *pooled_string(app *a, const store_connection *c, const store_database *d,
                           const char *password)
{
    return xasprintf("postgresql://%s:%s@%s:%d/%s%s", c->role, password, a->public_host,
                     a->pooler_port, d->id, api_conn_query(a));
}

/* The default connection string of create/rotate responses: the pooled one when there is
 * a pooled endpoint (as on the hosted service), else the direct one. */
static char *default_string(app *a, const store_connection *c, const store_database *d,
                            const char *password)
{
    return a->pooler_port > 0 ? pooled_string(a, c, d, password) : conn_string(a, c, d, password);
}

/* ---- connections and databases: written as text (util/jsonw), the shapes of the reads
 * that answer most (a page of databases, each with its connections) ---- */

/* {"host","port"[,"connectionString"]} */
static void w_endpoint(app *a, jsonw *w, const char *key, int port, const char *cs)
{
    jsonw_obj(w, key);
    jsonw_str(w, "host", a->public_host);
    jsonw_int(w, "port", port);
    if (cs)
        jsonw_str(w, "connectionString", cs);
    jsonw_end(w);
}

/* "endpoints": direct (its connection string: cs), and pooled when there is a pooled
 * endpoint (its connection string when the password is known) */
static void w_endpoints(app *a, jsonw *w, const store_connection *c, const store_database *d,
                        const char *cs, const char *password)
{
    jsonw_obj(w, "endpoints");
    w_endpoint(a, w, "direct", d->port, cs);
    if (a->pooler_port > 0) {
        char *pcs = password ? pooled_string(a, c, d, password) : NULL;
        w_endpoint(a, w, "pooled", a->pooler_port, pcs);
        free(pcs);
    }
    jsonw_end(w);
}

static void w_direct_connection(app *a, jsonw *w, const char *key, const store_connection *c,
                                const store_database *d, const char *password)
{
    jsonw_obj(w, key);
    jsonw_strf(w, "host", "%s:%d", a->public_host, d->port);
    jsonw_str(w, "user", c->role);
    jsonw_str(w, "pass", password);
    jsonw_end(w);
}

/* The connection's id, type, url, name, createdAt and kind. */
static void w_connection_head(app *a, jsonw *w, const store_connection *c)
{
    jsonw_str(w, "id", c->id);
    jsonw_str(w, "type", "connection");
    jsonw_str3(w, "url", a->base_url, "/v1/connections/", c->id);
    jsonw_str(w, "name", c->name);
    jsonw_str(w, "createdAt", c->created_at);
    jsonw_str(w, "kind", "postgres");
}

static void w_connection(app *a, jsonw *w, const char *key, const store_connection *c,
                         const store_database *d, const char *password, bool extras)
{
    char *cs = password ? conn_string(a, c, d, password) : NULL;
    jsonw_obj(w, key);
    w_connection_head(a, w, c);
    w_endpoints(a, w, c, d, cs, password);
    jsonw_obj(w, "database");
    jsonw_str(w, "id", d->id);
    jsonw_str3(w, "url", a->base_url, "/v1/databases/", d->id);
    jsonw_str(w, "name", d->name);
    jsonw_end(w);
    if (password)
        w_direct_connection(a, w, "directConnection", c, d, password);
    else
        jsonw_null(w, "directConnection");
    if (password && extras) {
        char *dcs = default_string(a, c, d, password);
        jsonw_str(w, "connectionString", dcs);
        free(dcs);
        jsonw_strf(w, "host", "%s:%d", a->public_host, d->port);
        jsonw_str(w, "user", c->role);
        jsonw_str(w, "pass", password);
    }
    jsonw_end(w);
    free(cs);
}

/* The tree of text that w holds (a shape written above, valid by construction). */
static json_t *tree_of(jsonw *w)
{
    json_t *j = json_loadb(w->b.s, w->b.len, 0, NULL);
    if (!j)
        abort();
    util_buf_free(&w->b);
    return j;
}

json_t *shape_connection(app *a, const store_connection *c, const store_database *d,
                         const char *password)
{
    return shape_connection_ex(a, c, d, password, password != NULL);
}

json_t *shape_connection_ex(app *a, const store_connection *c, const store_database *d,
                            const char *password, bool extras)
{
    jsonw w = {0};
    w_connection(a, &w, NULL, c, d, password, extras);
    return tree_of(&w);
}

void shape_connection_read_w(app *a, jsonw *w, const char *key, const store_connection *c,
                             const store_database *d)
{
    w_connection(a, w, key, c, d, NULL, false);
}

/* A create response's apiKeys item: the connection with its secrets. */
static void w_api_key(app *a, jsonw *w, const store_connection *c, const store_database *d,
                      const char *password, const char *cs)
{
    jsonw_obj(w, NULL);
    w_connection_head(a, w, c);
    w_endpoints(a, w, c, d, NULL, NULL);
    jsonw_str(w, "connectionString", cs);
    w_direct_connection(a, w, "directConnection", c, d, password);
    jsonw_end(w);
}

/* A database with its project and live connections, read already. A page keeps this text
 * under the database's revision (api/databases.c), which the catalog raises when the row, a
 * connection of it or its project's name changes (schema.c, version 10): a field taken from
 * anything else needs a trigger there too. */
static void w_database(app *a, jsonw *w, const char *key, const store_database *d,
                       const store_project *p, const store_connection *conns, size_t n,
                       const char *secret_conn, const char *secret_password, bool with_keys)
{
    const store_connection *keyed = NULL; /* the connection whose password is known */
    jsonw_obj(w, key);
    jsonw_str(w, "id", d->id);
    jsonw_str(w, "type", "database");
    jsonw_str3(w, "url", a->base_url, "/v1/databases/", d->id);
    jsonw_str(w, "name", d->name);
    jsonw_str(w, "status", store_db_status_name(d->status));
    jsonw_str(w, "createdAt", d->created_at);
    jsonw_bool(w, "isDefault", d->is_default);
    jsonw_str_or_null(w, "defaultConnectionId", d->default_connection_id);
    jsonw_arr(w, "connections");
    for (size_t i = 0; i < n; i++) {
        bool known = secret_conn && strcmp(conns[i].id, secret_conn) == 0;
        if (known)
            keyed = &conns[i];
        w_connection(a, w, NULL, &conns[i], d, known ? secret_password : NULL, false);
    }
    jsonw_end(w);
    jsonw_obj(w, "project");
    jsonw_str(w, "id", p->id);
    jsonw_str3(w, "url", a->base_url, "/v1/projects/", p->id);
    jsonw_str(w, "name", p->name);
    jsonw_end(w);
    const api_region *r = api_region_find(a, d->region);
    jsonw_obj(w, "region");
    jsonw_str(w, "id", d->region);
    jsonw_str(w, "name", r ? r->name : d->region);
    jsonw_end(w);
    jsonw_obj(w, "source");
    if (strcmp(d->source_type, "backup") == 0) {
        jsonw_str(w, "type", "backup");
        jsonw_str(w, "databaseId", d->source_database_id);
        jsonw_str(w, "backupId", d->source_backup_id);
    } else if (strcmp(d->source_type, "database") == 0) {
        jsonw_str(w, "type", "database");
        jsonw_str(w, "databaseId", d->source_database_id);
    } else {
        jsonw_str(w, "type", "empty");
    }
    jsonw_end(w);
    jsonw_str_or_null(w, "branchId", d->branch_id);
    jsonw_str_or_null(w, "logicalId", d->logical_id);
    if (with_keys) {
        char *cs = keyed ? default_string(a, keyed, d, secret_password) : NULL;
        jsonw_arr(w, "apiKeys");
        if (keyed)
            w_api_key(a, w, keyed, d, secret_password, cs);
        jsonw_end(w);
        jsonw_str_or_null(w, "connectionString", cs);
        if (keyed)
            w_direct_connection(a, w, "directConnection", keyed, d, secret_password);
        else
            jsonw_null(w, "directConnection");
        free(cs);
    }
    jsonw_end(w);
}

/* Writes d with its project and live connections, read now, as the member key of w. */
static int w_database_read_now(app *a, jsonw *w, const char *key, const store_database *d,
                               const char *secret_conn, const char *secret_password, bool with_keys,
                               pf_err *e)
{
    store_project p;
    if (store_project_get(a->st, d->workspace_id, d->project_id, &p, e) != 0)
        return -1;
    store_connection *conns = NULL;
    size_t n = 0;
    if (store_connection_list_for_db(a->st, d->id, false, &conns, &n, e) != 0)
        return -1;
    w_database(a, w, key, d, &p, conns, n, secret_conn, secret_password, with_keys);
    free(conns);
    return 0;
}

int shape_database(app *a, const store_database *d, const char *secret_conn,
                   const char *secret_password, bool with_keys, json_t **out, pf_err *e)
{
    jsonw w = {0};
    if (w_database_read_now(a, &w, NULL, d, secret_conn, secret_password, with_keys, e) != 0) {
        util_buf_free(&w.b);
        return -1;
    }
    *out = tree_of(&w);
    return 0;
}

void shape_database_read_w(app *a, jsonw *w, const char *key, const store_database *d,
                           const store_project *p, const store_connection *conns, size_t n)
{
    w_database(a, w, key, d, p, conns, n, NULL, NULL, false);
}

void api_reply_text(http_resp *resp, jsonw *w)
{
    resp->raw_len = w->b.len;
    resp->raw = util_buf_take(&w->b);
    resp->content_type = "application/json";
}

int reply_database(app *a, const char *reread_ws, store_database *d, http_resp *resp, pf_err *e)
{
    if (reread_ws && store_database_get(a->st, reread_ws, d->id, d, e) != 0)
        return -1;
    jsonw w = {0};
    jsonw_obj(&w, NULL);
    if (w_database_read_now(a, &w, "data", d, NULL, NULL, false, e) != 0) {
        util_buf_free(&w.b);
        return -1;
    }
    jsonw_end(&w);
    api_reply_text(resp, &w);
    return 0;
}
