/* The route table: every endpoint pgfleet serves, declared once. Anything not listed
 * (apps, services, buckets, builds, deployments, domains, ...) answers 404 with the
 * envelope, as DESIGN.md asks. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/internal.h"
#include "auth/auth.h"

/* HTTP_QUICK: the reads answered on the event thread (catalog reads, no wait); /v1/fleet
 * reads every database of the host and stays on the workers. */
static const http_route routes[] = {
    {"GET", "/healthz", h_healthz, HTTP_PUBLIC | HTTP_QUICK},
    {"GET", "/v1/workspaces", h_workspaces_list, HTTP_AUTH | HTTP_QUICK},
    {"GET", "/v1/workspaces/{id}", h_workspace_get, HTTP_AUTH | HTTP_QUICK},
    {"GET", "/v1/workspaces/{id}/subscription", h_workspace_subscription, HTTP_AUTH | HTTP_QUICK},
    {"GET", "/v1/projects", h_projects_list, HTTP_AUTH | HTTP_QUICK},
    {"POST", "/v1/projects", h_projects_create, HTTP_AUTH},
    {"GET", "/v1/projects/{id}", h_project_get, HTTP_AUTH | HTTP_QUICK},
    {"PATCH", "/v1/projects/{id}", h_project_patch, HTTP_AUTH},
    {"DELETE", "/v1/projects/{id}", h_project_delete, HTTP_AUTH},
    {"POST", "/v1/projects/{id}/transfer", h_project_transfer, HTTP_AUTH},
    {"GET", "/v1/projects/{projectId}/branches", h_branches_list, HTTP_AUTH | HTTP_QUICK},
    {"POST", "/v1/projects/{projectId}/branches", h_branches_create, HTTP_AUTH},
    {"GET", "/v1/projects/{projectId}/databases", h_project_databases_list, HTTP_AUTH | HTTP_QUICK},
    {"POST", "/v1/projects/{projectId}/databases", h_project_databases_create, HTTP_AUTH},
    {"GET", "/v1/branches/{branchId}", h_branch_get, HTTP_AUTH | HTTP_QUICK},
    {"PATCH", "/v1/branches/{branchId}", h_branch_patch, HTTP_AUTH},
    {"DELETE", "/v1/branches/{branchId}", h_branch_delete, HTTP_AUTH},
    {"GET", "/v1/databases", h_databases_list, HTTP_AUTH | HTTP_QUICK},
    {"POST", "/v1/databases", h_databases_create, HTTP_AUTH},
    {"GET", "/v1/databases/{databaseId}", h_database_get, HTTP_AUTH | HTTP_QUICK},
    {"PATCH", "/v1/databases/{databaseId}", h_database_patch, HTTP_AUTH},
    {"DELETE", "/v1/databases/{databaseId}", h_database_delete, HTTP_AUTH},
    {"GET", "/v1/databases/{databaseId}/connections", h_db_connections_list,
     HTTP_AUTH | HTTP_QUICK},
    {"POST", "/v1/databases/{databaseId}/connections", h_db_connections_create, HTTP_AUTH},
    {"GET", "/v1/databases/{databaseId}/backups", h_db_backups_list, HTTP_AUTH | HTTP_QUICK},
    {"POST", "/v1/databases/{databaseId}/backups", h_db_backups_create, HTTP_AUTH},
    {"POST", "/v1/databases/{targetDatabaseId}/restore", h_db_restore, HTTP_AUTH},
    {"GET", "/v1/databases/{databaseId}/usage", h_db_usage, HTTP_AUTH | HTTP_QUICK},
    {"GET", "/v1/connections", h_connections_list, HTTP_AUTH | HTTP_QUICK},
    {"POST", "/v1/connections", h_connections_create, HTTP_AUTH},
    {"GET", "/v1/connections/{id}", h_connection_get, HTTP_AUTH | HTTP_QUICK},
    {"DELETE", "/v1/connections/{id}", h_connection_delete, HTTP_AUTH},
    {"POST", "/v1/connections/{id}/rotate", h_connection_rotate, HTTP_AUTH},
    {"GET", "/v1/regions", h_regions_list, HTTP_AUTH | HTTP_QUICK},
    {"GET", "/v1/regions/postgres", h_regions_postgres, HTTP_AUTH | HTTP_QUICK},
    {"GET", "/v1/regions/accelerate", h_regions_accelerate, HTTP_AUTH | HTTP_QUICK},
    /* identity, integrations, service tokens (docs/auth.md) */
    {"GET", "/v1/me", h_me, HTTP_AUTH | HTTP_QUICK},
    {"POST", "/v1/workspaces", h_workspaces_create, HTTP_AUTH},
    {"GET", "/v1/integrations", h_integrations_list, HTTP_AUTH | HTTP_QUICK},
    {"GET", "/v1/integrations/{id}", h_integration_get, HTTP_AUTH | HTTP_QUICK},
    {"DELETE", "/v1/integrations/{id}", h_integration_delete, HTTP_AUTH},
    {"GET", "/v1/workspaces/{workspaceId}/integrations", h_ws_integrations_list,
     HTTP_AUTH | HTTP_QUICK},
    {"DELETE", "/v1/workspaces/{workspaceId}/integrations/{clientId}", h_ws_integration_delete,
     HTTP_AUTH},
    {"GET", "/v1/workspaces/{workspaceId}/service-tokens", h_service_tokens_list,
     HTTP_AUTH | HTTP_QUICK},
    {"POST", "/v1/workspaces/{workspaceId}/service-tokens", h_service_tokens_create, HTTP_AUTH},
    {"DELETE", "/v1/workspaces/{workspaceId}/service-tokens/{serviceTokenId}",
     h_service_token_delete, HTTP_AUTH},
    /* the OAuth2 authorization server */
    {"GET", "/authorize", h_authorize_get, HTTP_PUBLIC},
    {"POST", "/authorize", h_authorize_post, HTTP_PUBLIC},
    {"POST", "/login", h_login_post, HTTP_PUBLIC | HTTP_HEAVY}, /* argon2id */
    {"POST", "/token", h_oauth_token, HTTP_PUBLIC},
    {"POST", "/revoke", h_oauth_revoke, HTTP_PUBLIC},
    {"GET", "/.well-known/oauth-authorization-server", h_oauth_metadata, HTTP_PUBLIC | HTTP_QUICK},
    {"GET", "/.well-known/jwks.json", h_oauth_jwks, HTTP_PUBLIC | HTTP_QUICK},
    {"GET", "/v1/ca.pem", h_ca_pem, HTTP_PUBLIC | HTTP_QUICK}, /* extension (ca.c) */
    {"GET", "/v1/doc", h_doc,
     HTTP_PUBLIC | HTTP_QUICK}, /* extension: the OpenAPI document (doc.c) */
    /* the operator's read-only view of every workspace (fleet.c, docs/console.md) */
    {"GET", "/v1/fleet", h_fleet, HTTP_AUTH},
    /* the web console's files (console.c), public: it signs in through /authorize */
    {"GET", "/console", h_console, HTTP_PUBLIC | HTTP_QUICK},
    {"GET", "/console/{file}", h_console, HTTP_PUBLIC | HTTP_QUICK},
};

const http_route *api_routes(size_t *n)
{
    *n = sizeof routes / sizeof routes[0];
    return routes;
}

/* The canonical scope strings (auth_scope_normalize output): req->scope points at one. */
static const char *const scope_strings[] = {
    AUTH_SCOPE_ADMIN " " AUTH_SCOPE_OFFLINE,
    AUTH_SCOPE_ADMIN,
    AUTH_SCOPE_OFFLINE,
};

/* A bearer that looks like a JWT is an OAuth access token (signature, expiry, live
 * grant); anything else is a service token (full workspace:admin). Without
 * workspace:admin, only reads are allowed. */
int api_auth(void *ctx, http_req *req, pf_err *e)
{
    app *a = ctx;
    const char *h = http_header(req, "Authorization");
    const char *v = h && strncasecmp(h, "Bearer ", 7) == 0 ? h + 7 : NULL;
    while (v && *v == ' ')
        v++;
    char rate_key[PF_ID_MAX];
    if (v && a->keys && auth_looks_like_jwt(v)) {
        auth_claims c;
        store_grant g;
        if (auth_check_access(a->st, a->keys, a->base_url, v, &c, &g, e) != 0)
            return -1;
        snprintf(req->workspace_id, sizeof req->workspace_id, "%s", c.workspace_id);
        snprintf(req->actor_id, sizeof req->actor_id, "%s", c.sub);
        snprintf(rate_key, sizeof rate_key, "%s", g.id);
        req->scope = "";
        for (size_t i = 0; i < sizeof scope_strings / sizeof scope_strings[0]; i++)
            if (strcmp(g.scope, scope_strings[i]) == 0)
                req->scope = scope_strings[i];
    } else {
        bool op = false;
        if (auth_check_bearer_any(a->st, h, req->workspace_id, req->actor_id, &op, e) != 0)
            return -1;
        snprintf(rate_key, sizeof rate_key, "%s", req->actor_id);
        req->scope = op ? AUTH_SCOPE_FLEET : AUTH_SCOPE_ADMIN;
    }
    /* the credential's bucket: a service token by its id, an OAuth sign-in by its grant */
    int wait = auth_ratelimit_take(a->ratelimit, rate_key, util_now_ms());
    if (wait > 0) {
        err_set(e, 429, "TooManyRequests", "Retry-After",
                "This credential made more requests than its rate limit allows; retry in %d s",
                wait);
        e->retry_after_s = wait;
        return -1;
    }
    bool read = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    if (strcmp(req->scope, AUTH_SCOPE_FLEET) == 0 && (!read || !api_fleet_path(req->path)))
        return err_set(e, 403, "Forbidden", "operator",
                       "An operator token reads the fleet (GET /v1/fleet) and nothing else; "
                       "use a workspace's service token or sign in for this request");
    if (!read && !auth_scope_has(req->scope, AUTH_SCOPE_ADMIN))
        return err_set(e, 403, "Forbidden", "scope",
                       "This token lacks the workspace:admin scope needed to make changes");
    return 0;
}
