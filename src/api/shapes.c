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

/* Adds endpoints.pooled to an endpoints object. */
static void add_pooled(app *a, json_t *endpoints, const store_connection *c,
                       const store_database *d, const char *password)
{
    if (a->pooler_port <= 0)
        return;
    json_t *j = json_pack("{s:s, s:i}", "host", a->public_host, "port", a->pooler_port);
    if (password) {
        char *cs = pooled_string(a, c, d, password);
        json_object_set_new(j, "connectionString", json_string(cs));
        free(cs);
    }
    json_object_set_new(endpoints, "pooled", j);
}

static json_t *endpoint(app *a, int port, const char *cs)
{
    json_t *j = json_pack("{s:s, s:i}", "host", a->public_host, "port", port);
    if (cs)
        json_object_set_new(j, "connectionString", json_string(cs));
    return j;
}

static json_t *direct_connection(app *a, const store_connection *c, const store_database *d,
                                 const char *password)
{
    char host[300];
    snprintf(host, sizeof host, "%s:%d", a->public_host, d->port);
    return json_pack("{s:s, s:s, s:s}", "host", host, "user", c->role, "pass", password);
}

json_t *shape_connection(app *a, const store_connection *c, const store_database *d,
                         const char *password)
{
    return shape_connection_ex(a, c, d, password, password != NULL);
}

json_t *shape_connection_ex(app *a, const store_connection *c, const store_database *d,
                            const char *password, bool extras)
{
    char *cs = password ? conn_string(a, c, d, password) : NULL;
    json_t *j = json_pack("{s:s, s:s, s:o, s:s, s:s, s:s, s:{s:o}, s:{s:s, s:o, s:s}}", "id", c->id,
                          "type", "connection", "url", url_of(a, "connections", c->id), "name",
                          c->name, "createdAt", c->created_at, "kind", "postgres", "endpoints",
                          "direct", endpoint(a, d->port, cs), "database", "id", d->id, "url",
                          url_of(a, "databases", d->id), "name", d->name);
    add_pooled(a, json_object_get(j, "endpoints"), c, d, password);
    if (password) {
        json_object_set_new(j, "directConnection", direct_connection(a, c, d, password));
    } else {
        json_object_set_new(j, "directConnection", json_null());
    }
    if (password && extras) {
        char host[300];
        snprintf(host, sizeof host, "%s:%d", a->public_host, d->port);
        char *dcs = default_string(a, c, d, password);
        json_object_set_new(j, "connectionString", json_string(dcs));
        free(dcs);
        json_object_set_new(j, "host", json_string(host));
        json_object_set_new(j, "user", json_string(c->role));
        json_object_set_new(j, "pass", json_string(password));
    }
    free(cs);
    return j;
}

/* A database with its project and live connections, read already. */
static json_t *database_json(app *a, const store_database *d, const store_project *p,
                             const store_connection *conns, size_t n, const char *secret_conn,
                             const char *secret_password, bool with_keys)
{
    json_t *jconns = json_array();
    json_t *keys = json_array();
    json_t *top_cs = json_null();
    json_t *top_dc = json_null();
    for (size_t i = 0; i < n; i++) {
        const char *pw =
            secret_conn && strcmp(conns[i].id, secret_conn) == 0 ? secret_password : NULL;
        json_array_append_new(jconns, shape_connection_ex(a, &conns[i], d, pw, false));
        if (with_keys && pw) {
            char *cs = default_string(a, &conns[i], d, pw);
            json_t *k = json_pack("{s:s, s:s, s:o, s:s, s:s, s:s, s:{s:o}, s:s, s:o}", "id",
                                  conns[i].id, "type", "connection", "url",
                                  url_of(a, "connections", conns[i].id), "name", conns[i].name,
                                  "createdAt", conns[i].created_at, "kind", "postgres", "endpoints",
                                  "direct", endpoint(a, d->port, NULL), "connectionString", cs,
                                  "directConnection", direct_connection(a, &conns[i], d, pw));
            add_pooled(a, json_object_get(k, "endpoints"), &conns[i], d, NULL);
            json_array_append_new(keys, k);
            json_decref(top_cs);
            json_decref(top_dc);
            top_cs = json_string(cs);
            top_dc = direct_connection(a, &conns[i], d, pw);
            free(cs);
        }
    }
    const api_region *r = api_region_find(a, d->region);
    json_t *region = json_pack("{s:s, s:s}", "id", d->region, "name", r ? r->name : d->region);
    json_t *source;
    if (strcmp(d->source_type, "backup") == 0)
        source = json_pack("{s:s, s:s, s:s}", "type", "backup", "databaseId", d->source_database_id,
                           "backupId", d->source_backup_id);
    else if (strcmp(d->source_type, "database") == 0)
        source = json_pack("{s:s, s:s}", "type", "database", "databaseId", d->source_database_id);
    else
        source = json_pack("{s:s}", "type", "empty");
    json_t *j = json_pack(
        "{s:s, s:s, s:o, s:s, s:s, s:s, s:b, s:o, s:o, s:{s:s, s:o, s:s}, s:o, s:o, s:o, s:o}",
        "id", d->id, "type", "database", "url", url_of(a, "databases", d->id), "name", d->name,
        "status", store_db_status_name(d->status), "createdAt", d->created_at, "isDefault",
        d->is_default, "defaultConnectionId", str_or_null(d->default_connection_id), "connections",
        jconns, "project", "id", p->id, "url", url_of(a, "projects", p->id), "name", p->name,
        "region", region, "source", source, "branchId", str_or_null(d->branch_id), "logicalId",
        str_or_null(d->logical_id));
    if (with_keys) {
        json_object_set_new(j, "apiKeys", keys);
        json_object_set_new(j, "connectionString", top_cs);
        json_object_set_new(j, "directConnection", top_dc);
    } else {
        json_decref(keys);
        json_decref(top_cs);
        json_decref(top_dc);
    }
    return j;
}

int shape_database(app *a, const store_database *d, const char *secret_conn,
                   const char *secret_password, bool with_keys, json_t **out, pf_err *e)
{
    store_project p;
    if (store_project_get(a->st, d->workspace_id, d->project_id, &p, e) != 0)
        return -1;
    store_connection *conns = NULL;
    size_t n = 0;
    if (store_connection_list_for_db(a->st, d->id, false, &conns, &n, e) != 0)
        return -1;
    *out = database_json(a, d, &p, conns, n, secret_conn, secret_password, with_keys);
    free(conns);
    return 0;
}

json_t *shape_database_read(app *a, const store_database *d, const store_project *p,
                            const store_connection *conns, size_t n)
{
    return database_json(a, d, p, conns, n, NULL, NULL, false);
}

int reply_database(app *a, const char *reread_ws, store_database *d, http_resp *resp, pf_err *e)
{
    if (reread_ws && store_database_get(a->st, reread_ws, d->id, d, e) != 0)
        return -1;
    json_t *j = NULL;
    if (shape_database(a, d, NULL, NULL, false, &j, e) != 0)
        return -1;
    resp->body = json_pack("{s:o}", "data", j);
    return 0;
}

json_t *shape_pagination(const store_page_out *po)
{
    return json_pack("{s:o, s:b}", "nextCursor",
                     po->has_more && po->next_cursor[0] ? json_string(po->next_cursor)
                                                        : json_null(),
                     "hasMore", po->has_more);
}

json_t *shape_list(json_t *data, const store_page_out *po)
{
    return json_pack("{s:o, s:o}", "data", data, "pagination", shape_pagination(po));
}
