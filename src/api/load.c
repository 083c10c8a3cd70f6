/* The rows a request names and the lists it asks for: one loader (path id check, lookup in
 * the caller's workspace, a 404 whose hint names the field) and one list answer (shape each
 * row, free, wrap with pagination) for every resource. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void api_item_tree(jsonw *w, json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT);
    if (!text)
        abort();
    jsonw_raw(w, NULL, text, strlen(text));
    free(text);
    json_decref(j);
}

int api_list_reply(app *a, http_resp *resp, void *rows, size_t n, size_t size, api_shaper shape,
                   void *arg, const store_page_out *po, pf_err *e)
{
    jsonw w = {0};
    jsonw_obj(&w, NULL);
    jsonw_arr(&w, "data");
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = shape(a, (const char *)rows + i * size, arg, &w, e);
    free(rows);
    if (rc != 0) {
        util_buf_free(&w.b);
        return -1;
    }
    jsonw_end(&w);
    jsonw_obj(&w, "pagination");
    jsonw_str_or_null(&w, "nextCursor", po->has_more ? po->next_cursor : NULL);
    jsonw_bool(&w, "hasMore", po->has_more);
    jsonw_end(&w);
    jsonw_end(&w);
    api_reply_text(resp, &w);
    return 0;
}
