/* The rows a request names and the lists it asks for: one loader (path id check, lookup in
 * the caller's workspace, a 404 whose hint names the field) and one list answer (shape each
 * row, free, wrap with pagination) for every resource. */
#include <stdio.h>
#include <stdlib.h>

#include "api/internal.h"

int api_hint_404(int rc, const char *hint, pf_err *e)
{
    if (rc != 0 && e && e->status == 404)
        snprintf(e->hint, sizeof e->hint, "%s", hint);
    return rc;
}

int load_project(app *a, const char *ws, const char *id, const char *hint, store_project *p,
                 pf_err *e)
{
    return API_LOAD(a, store_project_get, "proj", "Project", ws, id, hint, p, e);
}

int load_database(app *a, const char *ws, const char *id, const char *hint, store_database *d,
                  pf_err *e)
{
    return API_LOAD(a, store_database_get, "db", "Database", ws, id, hint, d, e);
}

int load_path_database(app *a, http_req *req, store_database *d, pf_err *e)
{
    return load_database(a, req->workspace_id, req->params[0], "databaseId", d, e);
}

int api_list_reply(app *a, http_resp *resp, void *rows, size_t n, size_t size, api_shaper shape,
                   void *arg, const store_page_out *po, pf_err *e)
{
    json_t *data = json_array();
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_t *j = NULL;
        rc = shape(a, (const char *)rows + i * size, arg, &j, e);
        if (rc == 0)
            json_array_append_new(data, j);
    }
    free(rows);
    if (rc != 0) {
        json_decref(data);
        return -1;
    }
    resp->body = shape_list(data, po);
    return 0;
}
