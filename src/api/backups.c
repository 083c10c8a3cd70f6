/* Backups: the list (from the catalog, which the ops workers keep in line with
 * pgBackRest), a backup now (extension), and the destructive restore. Handlers only record
 * intent: pgBackRest runs in the ops workers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"

/* "YYYY-MM-DD HH:MM:SS.mmm+00", what recovery_target_time takes: util's ISO-8601 form
 * ("YYYY-MM-DDTHH:MM:SS.mmmZ") with a space for the T and +00 for the Z. */
void api_time_format_pg(int64_t ms, char out[32])
{
    char iso[32];
    util_iso_from_ms(ms, iso);
    snprintf(out, 32, "%.10s %.12s+00", iso, iso + 11);
}

int api_backup_source(app *a, const char *ws, json_t *src, int status, backup_source *out,
                      pf_err *e)
{
    memset(out, 0, sizeof *out);
    const char *db_id, *bkp_id, *pit;
    if (v_string(src, "databaseId", true, false, 64, status, &db_id, e) != 0 ||
        v_string(src, "backupId", true, false, 64, status, &bkp_id, e) != 0 ||
        v_string(src, "pointInTime", false, true, 64, status, &pit, e) != 0) {
        if (e && strncmp(e->hint, "source.", 7) != 0) {
            char h[64];
            snprintf(h, sizeof h, "source.%.48s", e->hint);
            snprintf(e->hint, sizeof e->hint, "%s", h);
        }
        return -1;
    }
    if (load_database(a, ws, db_id, "source.databaseId", &out->db, e) != 0)
        return -1;
    if (API_LOAD(a, store_backup_get, "bkp", "Backup", db_id, bkp_id, "source.backupId",
                 &out->backup, e) != 0)
        return -1;
    if (out->backup.status != BACKUP_COMPLETED || !out->backup.label[0])
        return err_set(e, status, "BackupNotUsable", "source.backupId",
                       "Backup %s is %s and cannot be restored; use a completed backup", bkp_id,
                       store_backup_status_name(out->backup.status));
    if (pit) {
        int64_t ms = 0, stop = 0;
        if (!util_iso_parse(pit, &ms))
            return err_set(e, status, "ValidationError", "source.pointInTime",
                           "'pointInTime' must be an ISO-8601 time with a zone, like "
                           "2026-01-31T12:00:00.000Z");
        if (!util_iso_parse(out->backup.stopped_at, &stop) || ms < stop)
            return err_set(e, status, "BackupNotUsable", "source.pointInTime",
                           "'pointInTime' is before backup %s ended (%s): pick an earlier "
                           "backup",
                           bkp_id, out->backup.stopped_at);
        if (ms > util_wall_ms())
            return err_set(e, status, "BackupNotUsable", "source.pointInTime",
                           "'pointInTime' is in the future");
        api_time_format_pg(ms, out->point_in_time);
    }
    return 0;
}

static json_t *shape_backup(const store_backup *b)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", b->id, "type", "backup", "backupType",
                          store_backup_type_name(b->type), "createdAt", b->started_at, "status",
                          store_backup_status_name(b->status));
    if (b->size >= 0)
        json_object_set_new(j, "size", json_integer(b->size));
    return j;
}

HANDLER(h_db_backups_list)
{
    app *a = ctx;
    store_database d;
    if (load_path_database(a, req, &d, e) != 0)
        return -1;
    store_page pg;
    if (v_page(req, &pg, e) != 0)
        return -1;
    store_backup *rows = NULL;
    size_t n = 0;
    bool more = false;
    if (store_backup_list(a->st, d.id, pg.limit, &rows, &n, &more, e) != 0)
        return -1;
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(data, shape_backup(&rows[i]));
    free(rows);
    resp->body =
        json_pack("{s:o, s:{s:i}, s:{s:b, s:i}}", "data", data, "meta", "backupRetentionDays",
                  a->backup_retention_days, "pagination", "hasMore", more, "limit", pg.limit);
    return 0;
}

/* Extension: POST /v1/databases/{databaseId}/backups {"type"?} takes a backup now. */
HANDLER(h_db_backups_create)
{
    app *a = ctx;
    store_database d;
    if (load_path_database(a, req, &d, e) != 0)
        return -1;
    json_t *body = NULL;
    if (http_json_body(req, true, &body, e) != 0)
        return -1;
    const char *type = NULL;
    int rc = v_string(body, "type", false, false, 32, 400, &type, e);
    store_backup_type t = BACKUP_FULL;
    if (rc == 0 && type) {
        if (!strcmp(type, "differential"))
            t = BACKUP_DIFF;
        else if (!strcmp(type, "incremental"))
            t = BACKUP_INCR;
        else if (strcmp(type, "full") != 0)
            rc = err_set(e, 400, "ValidationError", "type",
                         "'type' is one of full, differential, incremental");
    }
    json_decref(body);
    if (rc != 0)
        return -1;
    if (d.status != DB_READY)
        return err_set(e, 409, "Conflict", "databaseId",
                       "Database %s is %s; a backup needs a ready database", d.id,
                       store_db_status_name(d.status));
    store_backup b;
    store_op op;
    ops_backup_init(&b, &op, d.id, t);
    if (store_tx_begin(a->st, e) != 0)
        return -1;
    int trc = store_backup_insert(a->st, &b, e);
    if (trc == 0)
        trc = store_op_insert(a->st, &op, e);
    if (tx_end(a, trc, e) != 0)
        return -1;
    resp->status = 202;
    resp->body = json_pack("{s:o}", "data", shape_backup(&b));
    return 0;
}

HANDLER(h_db_restore)
{
    app *a = ctx;
    store_database d;
    if (load_database(a, req->workspace_id, req->params[0], "targetDatabaseId", &d, e) != 0)
        return -1;
    json_t *body = NULL;
    if (http_json_body(req, false, &body, e) != 0) {
        if (e)
            e->status = 422;
        return -1;
    }
    int rc = -1;
    backup_source bs;
    json_t *src = json_object_get(body, "source");
    if (!json_is_object(src)) {
        err_set(e, 422, "ValidationError", "source",
                "'source' is required: {\"type\":\"backup\",\"databaseId\",\"backupId\"}");
        goto out;
    }
    const char *type = json_string_value(json_object_get(src, "type"));
    if (!type || strcmp(type, "backup") != 0) {
        err_set(e, 422, "ValidationError", "source.type", "'source.type' must be \"backup\"");
        goto out;
    }
    if (api_backup_source(a, req->workspace_id, src, 422, &bs, e) != 0)
        goto out;
    if (d.status == DB_PROVISIONING || d.status == DB_RECOVERING) {
        err_set(e, 409, "Conflict", "targetDatabaseId",
                "Database %s is %s; restore it once it is ready", d.id,
                store_db_status_name(d.status));
        goto out;
    }
    store_op op;
    ops_op_init(&op, OP_DB_RESTORE, d.id, NULL);
    snprintf(op.args, sizeof op.args,
             "{\"sourceDatabaseId\":\"%s\",\"backupId\":\"%s\",\"label\":\"%s\","
             "\"pointInTime\":\"%s\"}",
             bs.db.id, bs.backup.id, bs.backup.label, bs.point_in_time);
    if (store_tx_begin(a->st, e) != 0)
        goto out;
    int trc = store_database_transition(a->st, d.id, d.status, DB_RECOVERING, "", e);
    if (trc == 0)
        trc = store_database_set_source(a->st, d.id, "backup", bs.db.id, bs.backup.id, e);
    if (trc == 0)
        trc = store_op_insert(a->st, &op, e);
    /* answered with the row as the change left it */
    if (tx_end(a, trc, e) != 0 || reply_database(a, req->workspace_id, &d, resp, e) != 0)
        goto out;
    rc = 0;
out:
    json_decref(body);
    return rc;
}
