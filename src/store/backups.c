/* store/backups: the catalog's view of each database's pgBackRest backups (store.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sql.h"

static const char *const type_names[] = {
    [BACKUP_FULL] = "full",
    [BACKUP_DIFF] = "differential",
    [BACKUP_INCR] = "incremental",
};
static const char *const status_names[] = {
    [BACKUP_RUNNING] = "running",
    [BACKUP_COMPLETED] = "completed",
    [BACKUP_FAILED] = "failed",
};

#define BKP_COLS                                                                                   \
    "b.id, b.database_id, b.label, b.type, b.status, b.size, b.started_at, b.stopped_at, "         \
    "b.write_mark, b.error"
static const sql_col bkp_cols[] = {
    COL_TEXT(store_backup, id),
    COL_TEXT(store_backup, database_id),
    COL_TEXT(store_backup, label),
    COL_ENUM(store_backup, type, type_names),
    COL_ENUM(store_backup, status, status_names),
    COL_SIZE(store_backup, size),
    COL_TEXT(store_backup, started_at),
    COL_TEXT(store_backup, stopped_at),
    COL_TEXT(store_backup, write_mark),
    COL_TEXT(store_backup, error),
};
static const sql_row bkp_row = SQL_ROW(store_backup, bkp_cols);

static sql_stmt q_insert = SQL("INSERT INTO backups (id, database_id, label, type, status, size,"
                               " started_at, stopped_at, write_mark, error)"
                               " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
static sql_stmt q_get =
    SQL("SELECT " BKP_COLS " FROM backups b WHERE b.id = ?1 AND b.database_id = ?2");
static sql_stmt q_list = SQL("SELECT " BKP_COLS " FROM backups b WHERE b.database_id = ?1"
                             " ORDER BY b.started_at DESC, b.seq DESC LIMIT ?2");
static sql_stmt q_list_all = SQL("SELECT " BKP_COLS " FROM backups b WHERE b.database_id = ?1"
                                 " ORDER BY b.started_at, b.seq");
static sql_stmt q_finish = SQL("UPDATE backups SET status = ?2, label = ?3, size = ?4,"
                               " stopped_at = ?5, error = ?6 WHERE id = ?1");
static sql_stmt q_update_by_label =
    SQL("UPDATE backups SET type = ?3, status = 'completed', size = ?4, stopped_at = ?5"
        " WHERE database_id = ?1 AND label = ?2");
static sql_stmt q_delete = SQL("DELETE FROM backups WHERE id = ?1");
static sql_stmt q_set_mark = SQL("UPDATE backups SET write_mark = ?2 WHERE id = ?1");
static sql_stmt q_delete_for_db = SQL("DELETE FROM backups WHERE database_id = ?1");

const char *store_backup_type_name(store_backup_type t)
{
    return (int)t >= 0 && (int)t < NAMES_COUNT(type_names) ? type_names[t] : "unknown";
}

const char *store_backup_status_name(store_backup_status st)
{
    return (int)st >= 0 && (int)st < NAMES_COUNT(status_names) ? status_names[st] : "unknown";
}

int store_backup_insert(store *s, const store_backup *b, pf_err *e)
{
    return sql_run(s, &q_insert,
                   ARGS(TXT(b->id), TXT(b->database_id), OPT(b->label),
                        TXT(store_backup_type_name(b->type)),
                        TXT(store_backup_status_name(b->status)), OPT_INT(b->size),
                        TXT(b->started_at), OPT(b->stopped_at), TXT(b->write_mark), TXT(b->error)),
                   e);
}

int store_backup_get(store *s, const char *database_id, const char *id, store_backup *out,
                     pf_err *e)
{
    return sql_get(s, &q_get, ARGS(TXT(id), TXT(database_id)), &bkp_row, out, "backupId", "Backup",
                   id, e);
}

int store_backup_list(store *s, const char *database_id, int limit, store_backup **out, size_t *n,
                      bool *has_more, pf_err *e)
{
    return sql_all(s, &q_list, ARGS(TXT(database_id), INT(limit + 1)), &bkp_row, (void **)out, n,
                   (size_t)limit, has_more, e);
}

int store_backup_list_all(store *s, const char *database_id, store_backup **out, size_t *n,
                          pf_err *e)
{
    return sql_all(s, &q_list_all, ARGS(TXT(database_id)), &bkp_row, (void **)out, n, 0, NULL, e);
}

int store_backup_finish(store *s, const char *id, store_backup_status status, const char *label,
                        int64_t size, const char *stopped_at, const char *error, pf_err *e)
{
    return sql_touch(s, &q_finish,
                     ARGS(TXT(id), TXT(store_backup_status_name(status)), OPT(label), OPT_INT(size),
                          OPT(stopped_at), TXT(error ? error : "")),
                     "backupId", "Backup", id, e);
}

/* Updates or inserts each row pgBackRest lists, then deletes the labelled rows it no
 * longer has. */
static int sync_rows(store *s, const char *database_id, const store_backup *seen, size_t n,
                     pf_err *e)
{
    for (size_t i = 0; i < n; i++) {
        int changed = sql_write(s, &q_update_by_label,
                                ARGS(TXT(database_id), TXT(seen[i].label),
                                     TXT(store_backup_type_name(seen[i].type)),
                                     OPT_INT(seen[i].size), OPT(seen[i].stopped_at)),
                                e);
        if (changed < 0)
            return -1;
        if (changed > 0)
            continue;
        store_backup b = seen[i];
        util_id_new("bkp", b.id);
        snprintf(b.database_id, sizeof b.database_id, "%s", database_id);
        b.status = BACKUP_COMPLETED;
        if (store_backup_insert(s, &b, e) != 0)
            return -1;
    }
    store_backup *rows = NULL;
    size_t nrows = 0;
    if (store_backup_list_all(s, database_id, &rows, &nrows, e) != 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < nrows && rc == 0; i++) {
        if (!rows[i].label[0])
            continue;
        bool found = false;
        for (size_t k = 0; k < n && !found; k++)
            found = strcmp(rows[i].label, seen[k].label) == 0;
        if (!found)
            rc = sql_run(s, &q_delete, ARGS(TXT(rows[i].id)), e);
    }
    free(rows);
    return rc;
}

int store_backup_sync(store *s, const char *database_id, const store_backup *seen, size_t n,
                      pf_err *e)
{
    if (sql_begin(s, e) != 0)
        return -1;
    return sql_end(s, sync_rows(s, database_id, seen, n, e), e);
}

int store_backup_delete_for_db(store *s, const char *database_id, pf_err *e)
{
    return sql_run(s, &q_delete_for_db, ARGS(TXT(database_id)), e);
}

int store_backup_set_mark(store *s, const char *id, const char *write_mark, pf_err *e)
{
    return sql_touch(s, &q_set_mark, ARGS(TXT(id), TXT(write_mark)), "backupId", "Backup", id, e);
}
