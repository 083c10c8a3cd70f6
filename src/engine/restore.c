/* restore: puts a backup in place of a database's data. A restore of a database's own
 * backup is a delta restore into its stopped data directory (restore.overwriting marks the
 * data as neither old nor new until it is recovered). A restore from another database's
 * backup, a new database made from a backup and a clone go through directories under
 * instances/<id>/ instead, so the old data serves until the swap; each step idempotent:
 *   data.restore  pgbackrest restore + recovery in progress (redone from scratch on retry)
 *   data.ready    recovered, roles set, server stopped cleanly (the rename marks it)
 *   data          swapped in: the old one is renamed data.old, removed once the new serves.
 * Recovery runs on a server listening only on a private socket (run/<id>.r), with
 * archiving off, so no credential of the backup's database can log in and nothing of the
 * old timeline reaches the target's stanza. Only the new timeline's history and complete
 * segments are then marked for archiving; for a backup of another database the target's own
 * timeline history is put in pg_wal first, so PostgreSQL picks a timeline the target's
 * archive never saw. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine_int.h"
#include "util/log.h"
#include "util/util.h"

#define RECOVERY_PORT 5432 /* names the socket file only: the server has no TCP listener */
#define RECOVERY_TIMEOUT_MS (6 * 60 * 60 * 1000)
#define RESTORE_TIMEOUT_MS (12 * 60 * 60 * 1000)

typedef struct rs_paths {
    char *dir, *data, *rst, *ready, *old, *sock, *log, *overwriting;
} rs_paths;

static void rs_make(engine *en, const char *id, rs_paths *p)
{
    p->dir = xasprintf("%s/%s", en->instances_dir, id);
    p->data = xasprintf("%s/data", p->dir);
    p->rst = xasprintf("%s/data.restore", p->dir);
    p->ready = xasprintf("%s/data.ready", p->dir);
    p->old = xasprintf("%s/data.old", p->dir);
    p->sock = xasprintf("%s/%s.r", en->run_dir, id);
    p->log = xasprintf("%s/restore.log", p->dir);
    p->overwriting = xasprintf("%s/" ENGINE_OVERWRITING_MARK, p->dir);
}

static void rs_free(rs_paths *p)
{
    free(p->dir);
    free(p->data);
    free(p->rst);
    free(p->ready);
    free(p->old);
    free(p->sock);
    free(p->log);
    free(p->overwriting);
}

/* Stops a recovery server a crash of pgfleet left running on dir (of db_id). */
static void kill_server_on(const char *db_id, const char *dir)
{
    pid_t pid = engine__live_postmaster(dir);
    if (pid > 0) {
        log_db_warn(db_id, "restore: stopping a leftover recovery server pid=%d on %s", (int)pid,
                    dir);
        engine__terminate(pid, SIGQUIT, 5000);
    }
}

/* Kills pgbackrest processes restoring into dir: a kill -9 of pgfleet leaves its children
 * running, and a restore redone from scratch must not share the directory with them. */
static void kill_pgbr_on(const char *dir)
{
    char *want = xasprintf("--pg1-path=%s", dir);
    engine__pgbr_kill(want, false);
    free(want);
}

static bool names_dir(const char *const *argv, size_t argc, void *dir)
{
    for (size_t i = 0; i < argc; i++)
        if (strcmp(argv[i], dir) == 0)
            return true;
    return false;
}

/* Kills pg_basebackup processes writing into dir (a clone interrupted by a kill -9). */
static void kill_basebackup_on(const char *dir)
{
    proc_kill_matching("pg_basebackup", names_dir, (void *)dir);
}

/* A clone: pg_basebackup of the running source over its private socket (an immediate
 * checkpoint, WAL streamed alongside; its writers are never blocked) into p->rst, set up
 * to recover to the end of that copy and promote. restore_command 'false': the WAL is all
 * in pg_wal, and PostgreSQL wants one for archive recovery. */
static int live_copy(engine *en, const engine_restore_spec *sp, const rs_paths *p, pf_err *e)
{
    int ret = -1;
    char *bin = xasprintf("%s/pg_basebackup", en->bindir);
    char *sock = xasprintf("%s/%s", en->run_dir, sp->source_id);
    char *srcdata = xasprintf("%s/%s/data", en->instances_dir, sp->source_id);
    int sport = engine__server_port(en, sp->source_port);
    char *port = xasprintf("%d", sport);
    char *signal = xasprintf("%s/recovery.signal", p->rst);
    char *autoconf = xasprintf("%s/postgresql.auto.conf", p->rst);
    PGconn *c = NULL;
    /* a source started by an older pgfleet lacks the replication line of pg_hba.conf */
    if (engine__write_hba(en, srcdata, e) < 0 || engine__admin_connect(sock, sport, &c, e) < 0 ||
        engine__exec(c, "SELECT pg_reload_conf()", 0, NULL, NULL, e) < 0)
        goto out;
    const char *argv[] = {bin,
                          "-h",
                          sock,
                          "-p",
                          port,
                          "-U",
                          PGFLEET_ADMIN_ROLE,
                          "-D",
                          p->rst,
                          "--checkpoint=fast",
                          "-X",
                          "stream",
                          "--no-password",
                          NULL};
    proc_opts po = {.argv = argv, .user = &en->user, .cwd = p->dir};
    char out[4096] = "";
    /* -X stream takes 2 of the source's max_wal_senders (3): one clone of a source at a time */
    char *key = xasprintf("clone:%s", sp->source_id);
    engine__busy_lock(en, key);
    int rc = proc_run(&po, out, sizeof out, RESTORE_TIMEOUT_MS, e);
    engine__busy_unlock(en, key);
    free(key);
    if (rc < 0)
        goto out;
    if (rc > 0) {
        size_t l = strlen(out);
        err_internal(e, "pg_basebackup of %s exited with %d: %s", sp->source_id, rc,
                     l > 300 ? out + l - 300 : out);
        goto out;
    }
    static const char rec[] = "# Do not edit this file manually!\n"
                              "# It will be overwritten by the ALTER SYSTEM command.\n"
                              "archive_mode = 'off'\n"
                              "restore_command = 'false'\n"
                              "recovery_target = 'immediate'\n"
                              "recovery_target_action = 'promote'\n"
                              "recovery_target_timeline = 'current'\n";
    if (fs_write_atomic(autoconf, rec, strlen(rec), 0600, &en->user, e) < 0 ||
        fs_write_atomic(signal, "", 0, 0600, &en->user, e) < 0)
        goto out;
    ret = 0;
out:
    PQfinish(c);
    free(bin);
    free(sock);
    free(srcdata);
    free(port);
    free(signal);
    free(autoconf);
    return ret;
}

void engine_restore_cleanup(engine *en, const char *db_id)
{
    if (!engine__valid_id(db_id))
        return;
    rs_paths p;
    rs_make(en, db_id, &p);
    kill_server_on(db_id, p.rst);
    kill_pgbr_on(p.rst);
    kill_basebackup_on(p.rst);
    fs_remove_tree(p.rst, NULL);
    fs_remove_tree(p.ready, NULL);
    fs_remove_tree(p.sock, NULL);
    if (fs_exists(p.data))
        fs_remove_tree(p.old, NULL);
    rs_free(&p);
}

static bool is_history(const char *name, unsigned *tli)
{
    if (strlen(name) != 16 || strcmp(name + 8, ".history") != 0 ||
        strspn(name, "0123456789ABCDEF") < 8)
        return false;
    char hex[9];
    memcpy(hex, name, 8);
    hex[8] = '\0';
    *tli = (unsigned)strtoul(hex, NULL, 16);
    return true;
}

/* Copies the target stanza's timeline history files into pg_wal of the restored data. */
static int seed_history(engine *en, const char *target, const char *rst, pf_err *e)
{
    char *arch = xasprintf("%s/archive/%s", en->repo, target);
    DIR *d = opendir(arch);
    int ret = 0, seeded = 0;
    struct dirent *de;
    while (ret == 0 && d && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !strchr(de->d_name, '-'))
            continue; /* archive ids look like 15-1 */
        char *sub = xasprintf("%s/%s", arch, de->d_name);
        DIR *sd = opendir(sub);
        struct dirent *f;
        unsigned tli;
        while (ret == 0 && sd && (f = readdir(sd)) != NULL) {
            if (!is_history(f->d_name, &tli))
                continue;
            char *src = xasprintf("%s/%s", sub, f->d_name);
            char *dst = xasprintf("%s/pg_wal/%s", rst, f->d_name);
            size_t len = 0;
            char *text = fs_read_file(src, &len);
            if (text && !fs_exists(dst)) {
                ret = fs_write_atomic(dst, text, len, 0600, &en->user, e);
                seeded++;
            }
            free(text);
            free(src);
            free(dst);
        }
        if (sd)
            closedir(sd);
        free(sub);
    }
    if (d)
        closedir(d);
    free(arch);
    if (seeded)
        log_db_info(target, "restore: %d timeline history file(s) of its own archive kept", seeded);
    return ret;
}

/* Marks for archiving by the real server what recovery (run with archiving off) made of
 * the new timeline: its history file and its segments before `current`, the segment the
 * recovery server was writing when it stopped. Not `current` itself, which PostgreSQL marks
 * once it is full (archived now, the incomplete copy would make the complete one fail with
 * "already exists with a different checksum" and stop the archiver), nor the segments after
 * it: those are old segments recycled under future names, holding stale WAL. */
int engine__mark_new_timeline(engine *en, const char *rst, const char *current, pf_err *e)
{
    if (strlen(current) != 24 || strspn(current, "0123456789ABCDEF") != 24)
        return err_internal(e, "restore: invalid current WAL segment name '%s'", current);
    char *wal = xasprintf("%s/pg_wal", rst);
    DIR *d = opendir(wal);
    if (!d) {
        int er = errno;
        free(wal);
        return err_internal(e, "restore: open %s/pg_wal: %s", rst, strerror(er));
    }
    char hist[17];
    snprintf(hist, sizeof hist, "%.8s.history", current);
    int ret = 0, marked = 0;
    struct dirent *de;
    while (ret == 0 && (de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        bool seg = strlen(n) == 24 && strspn(n, "0123456789ABCDEF") == 24 &&
                   strncmp(n, current, 8) == 0 && strcmp(n, current) < 0;
        if (!seg && strcmp(n, hist) != 0)
            continue;
        char *done = xasprintf("%s/archive_status/%s.done", wal, n);
        char *ready = xasprintf("%s/archive_status/%s.ready", wal, n);
        if (!fs_exists(done) && !fs_exists(ready)) {
            ret = fs_write_atomic(ready, "", 0, 0600, &en->user, e);
            marked++;
        }
        free(done);
        free(ready);
    }
    closedir(d);
    free(wal);
    log_debug("restore: %d file(s) of the new timeline before %s marked for archiving", marked,
              current);
    return ret;
}

/* The name of the WAL segment the server on c is writing (24 hex digits). */
static int current_segment(PGconn *c, char out[25], pf_err *e)
{
    PGresult *r = NULL;
    if (engine__exec(c, "SELECT pg_walfile_name(pg_current_wal_insert_lsn())", 0, NULL, &r, e) < 0)
        return -1;
    snprintf(out, 25, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

/* Waits until the recovery server on sock has promoted (or died). */
static int wait_promoted(pid_t pid, const char *sock, const char *logpath, PGconn **out, pf_err *e)
{
    int64_t deadline = util_now_ms() + RECOVERY_TIMEOUT_MS;
    PGconn *c = NULL;
    for (;;) {
        if (proc_reap(pid)) {
            PQfinish(c);
            size_t len = 0;
            char *log = fs_read_file(logpath, &len);
            const char *tail = log ? (len > 300 ? log + len - 300 : log) : "";
            err_internal(e, "the recovery server exited: %s", tail);
            free(log);
            return -1;
        }
        if (!c && engine__admin_connect(sock, RECOVERY_PORT, &c, NULL) < 0)
            c = NULL;
        if (c) {
            PGresult *r = NULL;
            if (engine__exec(c, "SELECT pg_is_in_recovery()", 0, NULL, &r, NULL) == 0) {
                bool rec = PQgetvalue(r, 0, 0)[0] == 't';
                PQclear(r);
                if (!rec) {
                    *out = c;
                    return 0;
                }
            } else {
                PQfinish(c);
                c = NULL;
            }
        }
        if (util_now_ms() > deadline) {
            PQfinish(c);
            return err_internal(e, "recovery did not finish in time");
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static const char *const auto_conf = "# Do not edit this file manually!\n"
                                     "# It will be overwritten by the ALTER SYSTEM command.\n";

/* pgbackrest restore + recovery into dir. Into data.restore (from scratch), which then
 * becomes data.ready; or, in_place, a delta restore into the stopped server's own data
 * directory, which pgBackRest checksums file by file and rewrites only where it differs. */
static int recover(engine *en, const char *db_id, const engine_restore_spec *sp, const rs_paths *p,
                   bool in_place, pf_err *e)
{
    int ret = -1;
    pid_t pid = -1;
    PGconn *c = NULL;
    const char *dir = in_place ? p->data : p->rst;
    char *stanza = xasprintf("--stanza=%s", sp->source_id);
    char *path = xasprintf("--pg1-path=%s", dir);
    char *set = xasprintf("--set=%s", sp->label);
    char *target = sp->target_time ? xasprintf("--target=%s", sp->target_time) : NULL;
    char *signal = xasprintf("%s/recovery.signal", dir);
    char *autoconf = xasprintf("%s/postgresql.auto.conf", dir);
    char *archive = NULL;
    int64_t t0 = util_now_ms();

    kill_server_on(db_id, dir);
    kill_pgbr_on(dir);
    kill_basebackup_on(dir);
    if (!in_place && (fs_remove_tree(dir, e) < 0 || engine__own_dir(en, dir, e) < 0))
        goto out;
    /* the promoted server archives to the target's stanza */
    if (engine_backup_stanza_ensure(en, db_id, e) < 0)
        goto out;
    /* in place (never to a point in time): "--delta" before the command word */
    const char *immediate[] = {stanza,
                               path,
                               set,
                               "--archive-mode=off",
                               "--type=immediate",
                               "--target-action=promote",
                               "--recovery-option=recovery_target_timeline=current",
                               in_place ? "--delta" : "restore",
                               in_place ? "restore" : NULL,
                               NULL};
    const char *timed[] = {stanza,
                           path,
                           set,
                           "--archive-mode=off",
                           "--type=time",
                           target ? target : "",
                           "--target-action=promote",
                           "--target-timeline=current",
                           "restore",
                           NULL};
    char out[4096];
    if (sp->source_port > 0
            ? live_copy(en, sp, p, e) < 0
            : engine__pgbr_run(en, target ? timed : immediate, out, sizeof out, e) < 0)
        goto out;
    int64_t t_files = util_now_ms();
    if (strcmp(sp->source_id, db_id) != 0 && seed_history(en, db_id, dir, e) < 0)
        goto out;
    if (fs_remove_tree(p->sock, e) < 0 || engine__own_dir(en, p->sock, e) < 0)
        goto out;
    archive = engine__archive_conf(en, dir);
    if (engine__write_conf(en, dir, p->sock, "", RECOVERY_PORT, archive, e) < 0)
        goto out;
    if (engine__launch(en, db_id, "recovery server", dir, p->sock, p->log, RECOVERY_PORT,
                       RECOVERY_TIMEOUT_MS, &pid, e) < 0)
        goto out;
    if (wait_promoted(pid, p->sock, p->log, &c, e) < 0)
        goto out;
    int64_t t_rec = util_now_ms();
    /* the catalog decides who logs in: the target's live connections, nobody else */
    if (engine__roles_sync(c, db_id, sp->roles, sp->nroles, e) < 0)
        goto out;
    /* only the shutdown checkpoint follows: if it fills this segment up, the real server's
     * first checkpoint marks the segment (it has neither .ready nor .done) */
    char current[25];
    if (current_segment(c, current, e) < 0)
        goto out;
    if (engine__stop_temporary(&c, &pid, 60000, "the recovery server", e) < 0)
        goto out;
    /* recovery settings and archive_mode=off were for this run only */
    if (fs_write_atomic(autoconf, auto_conf, strlen(auto_conf), 0600, &en->user, e) < 0)
        goto out;
    unlink(signal);
    if (engine__mark_new_timeline(en, dir, current, e) < 0)
        goto out;
    if (!in_place && rename(p->rst, p->ready) < 0) {
        err_internal(e, "rename %s: %s", p->rst, strerror(errno));
        goto out;
    }
    if (fs_fsync_dir(p->dir, e) < 0)
        goto out;
    log_db_info(db_id,
                "%srestore of %s from %s: files %lld ms, recovery %lld ms, roles and stop %lld ms",
                in_place ? "in-place " : "", sp->source_port > 0 ? "a live copy" : sp->label,
                sp->source_id, (long long)(t_files - t0), (long long)(t_rec - t_files),
                (long long)(util_now_ms() - t_rec));
    ret = 0;
out:
    PQfinish(c);
    if (pid > 0)
        engine__terminate(pid, SIGQUIT, 5000);
    free(stanza);
    free(path);
    free(set);
    free(target);
    free(signal);
    free(autoconf);
    free(archive);
    return ret;
}

int engine_restore(engine *en, const char *db_id, const engine_restore_spec *sp, pf_err *e)
{
    if (engine__check_id(db_id, e) < 0 || engine__check_id(sp->source_id, e) < 0)
        return -1;
    if (sp->source_port <= 0 &&
        (!sp->label || !sp->label[0] || strspn(sp->label, "0123456789-_FDI") != strlen(sp->label)))
        return err_kind(e, ERR_INVALID, NULL, "invalid backup label");
    if (sp->target_time && strspn(sp->target_time, "0123456789-:. +") != strlen(sp->target_time))
        return err_kind(e, ERR_INVALID, NULL, "invalid target time");
    int ret = -1;
    rs_paths p;
    rs_make(en, db_id, &p);
    char *marker = xasprintf("%s/restore.done", p.dir);
    if (engine__own_dir(en, p.dir, e) < 0)
        goto out;
    size_t mlen = 0;
    char *last = sp->token ? fs_read_file(marker, &mlen) : NULL;
    bool done = last && strcmp(last, sp->token) == 0;
    free(last);
    if (done) { /* this restore swapped its data in before an interruption */
        ret = 0;
        goto out;
    }
    /* a restore of the database's own backup (to the backup's end, which pgBackRest checked
     * was archived when it took it) is a delta restore into its stopped data directory:
     * pgBackRest keeps every file that matches the backup's checksum. The marker says the
     * data is no longer the old one. A point in time may lie beyond a gap in the WAL: that
     * restore keeps the old data serving until recovery has reached it. */
    if (!fs_exists(p.ready) && sp->source_port <= 0 && !sp->target_time &&
        strcmp(sp->source_id, db_id) == 0 &&
        (fs_exists(p.overwriting) || engine_instance_exists(en, db_id))) {
        int64_t t0 = util_now_ms();
        if (fs_write_atomic(p.overwriting, "", 0, 0600, NULL, e) < 0 ||
            fs_fsync_dir(p.dir, e) < 0 || engine_instance_stop(en, db_id, e) < 0)
            goto out;
        if (recover(en, db_id, sp, &p, true, e) < 0)
            goto out;
        log_db_info(db_id, "restored in place (%lld ms down)", (long long)(util_now_ms() - t0));
        goto done;
    }
    if (!fs_exists(p.ready) && recover(en, db_id, sp, &p, false, e) < 0)
        goto out;
    /* the swap: the only moment the database is down */
    int64_t t0 = util_now_ms();
    if (engine_instance_stop(en, db_id, e) < 0)
        goto out;
    if (fs_exists(p.data)) {
        if (fs_remove_tree(p.old, e) < 0)
            goto out;
        if (rename(p.data, p.old) < 0) {
            err_internal(e, "rename %s: %s", p.data, strerror(errno));
            goto out;
        }
    }
    if (rename(p.ready, p.data) < 0) {
        err_internal(e, "rename %s: %s", p.ready, strerror(errno));
        goto out;
    }
    if (fs_fsync_dir(p.dir, e) < 0)
        goto out;
    log_db_info(db_id, "restored data swapped in (%lld ms down so far)",
                (long long)(util_now_ms() - t0));
done:
    if (sp->token && fs_write_atomic(marker, sp->token, strlen(sp->token), 0600, NULL, e) < 0)
        goto out;
    /* whole again, whichever way (a later restore may rescue a failed in-place one) */
    if (unlink(p.overwriting) == 0 && fs_fsync_dir(p.dir, e) < 0)
        goto out;
    fs_remove_tree(p.sock, NULL);
    ret = 0;
out:
    if (ret < 0) {
        engine__disk_full_is_transient(e);
        err_prefix(e, "while restoring %s: ", db_id);
        log_db_warn(db_id, "restore failed: %s", e ? e->message : "");
    }
    free(marker);
    rs_free(&p);
    return ret;
}
