/* The route table: every endpoint pgfleet serves, declared once. Anything not listed
 * (apps, services, buckets, builds, deployments, domains, ...) answers 404 with the
 * envelope, as DESIGN.md asks. */
#include <string.h>

#include "api/internal.h"
#include "auth/auth.h"

static const http_route routes[] = {
    {"GET", "/healthz", h_healthz, HTTP_PUBLIC},
    {"GET", "/v1/workspaces", h_workspaces_list, HTTP_AUTH},
    {"GET", "/v1/workspaces/{id}", h_workspace_get, HTTP_AUTH},
    {"GET", "/v1/projects", h_projects_list, HTTP_AUTH},
    {"POST", "/v1/projects", h_projects_create, HTTP_AUTH},
    {"GET", "/v1/projects/{id}", h_project_get, HTTP_AUTH},
    {"PATCH", "/v1/projects/{id}", h_project_patch, HTTP_AUTH},
    {"DELETE", "/v1/projects/{id}", h_project_delete, HTTP_AUTH},
    {"GET", "/v1/projects/{projectId}/branches", h_branches_list, HTTP_AUTH},
    {"POST", "/v1/projects/{projectId}/branches", h_branches_create, HTTP_AUTH},
    {"GET", "/v1/projects/{projectId}/databases", h_project_databases_list, HTTP_AUTH},
    {"POST", "/v1/projects/{projectId}/databases", h_project_databases_create, HTTP_AUTH},
    {"GET", "/v1/branches/{branchId}", h_branch_get, HTTP_AUTH},
    {"PATCH", "/v1/branches/{branchId}", h_branch_patch, HTTP_AUTH},
    {"DELETE", "/v1/branches/{branchId}", h_branch_delete, HTTP_AUTH},
    {"GET", "/v1/databases", h_databases_list, HTTP_AUTH},
    {"POST", "/v1/databases", h_databases_create, HTTP_AUTH},
    {"GET", "/v1/databases/{databaseId}", h_database_get, HTTP_AUTH},
    {"PATCH", "/v1/databases/{databaseId}", h_database_patch, HTTP_AUTH},
    {"DELETE", "/v1/databases/{databaseId}", h_database_delete, HTTP_AUTH},
    {"GET", "/v1/databases/{databaseId}/connections", h_db_connections_list, HTTP_AUTH},
    {"POST", "/v1/databases/{databaseId}/connections", h_db_connections_create, HTTP_AUTH},
    {"GET", "/v1/databases/{databaseId}/backups", h_db_backups_list, HTTP_AUTH},
    {"POST", "/v1/databases/{databaseId}/backups", h_db_backups_create, HTTP_AUTH},
    {"POST", "/v1/databases/{targetDatabaseId}/restore", h_db_restore, HTTP_AUTH},
    {"GET", "/v1/connections", h_connections_list, HTTP_AUTH},
    {"POST", "/v1/connections", h_connections_create, HTTP_AUTH},
    {"GET", "/v1/connections/{id}", h_connection_get, HTTP_AUTH},
    {"DELETE", "/v1/connections/{id}", h_connection_delete, HTTP_AUTH},
    {"POST", "/v1/connections/{id}/rotate", h_connection_rotate, HTTP_AUTH},
    {"GET", "/v1/regions", h_regions_list, HTTP_AUTH},
    {"GET", "/v1/regions/postgres", h_regions_postgres, HTTP_AUTH},
    {"GET", "/v1/regions/accelerate", h_regions_accelerate, HTTP_AUTH},
};

const http_route *api_routes(size_t *n)
{
    *n = sizeof routes / sizeof routes[0];
    return routes;
}

int api_auth(void *ctx, http_req *req, pf_err *e)
{
    app *a = ctx;
    if (auth_check_bearer(a->st, http_header(req, "Authorization"), req->workspace_id,
                          req->actor_id, e) != 0)
        return -1;
    req->scope = "workspace:admin";
    return 0;
}
