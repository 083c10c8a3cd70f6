/* spares: servers started before their database exists, so a create only hands one its
 * roles. A spare is an instance like any other (instances/<in_...>/data, run/<in_...>/),
 * with a `spare` mark beside its data while no database has it: copied from golden,
 * configured to listen on its private socket only and to archive to its own pgBackRest
 * stanza (created up front), and started. Taking a spare removes its mark (the claim); the
 * caller records the id as its database's instance, and engine_instance_start adopts the
 * running server. Marked spares are kept in memory too, so a take reads no directory. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine_int.h"
#include "util/log.h"
#include "util/util.h"

#define SPARE_START_TIMEOUT_MS 30000

static char *mark_path(engine *en, const char *id)
{
    return xasprintf("%s/%s/" ENGINE_SPARE_MARK, en->instances_dir, id);
}

static void list_push(engine *en, const char *id)
{
    pthread_mutex_lock(&en->spares_mu);
    util_grow((void **)&en->spares, &en->capspares, en->nspares + 1, sizeof *en->spares);
    snprintf(en->spares[en->nspares++], ENGINE_ID_MAX, "%s", id);
    pthread_mutex_unlock(&en->spares_mu);
}

/* Pops a listed spare into id; false when none is listed. */
static bool list_pop(engine *en, char id[ENGINE_ID_MAX])
{
    pthread_mutex_lock(&en->spares_mu);
    bool got = en->nspares > 0;
    if (got) /* the oldest first: it has settled longest */
    {
        snprintf(id, ENGINE_ID_MAX, "%s", en->spares[0]);
        memmove(en->spares, en->spares + 1, (en->nspares - 1) * sizeof *en->spares);
        en->nspares--;
    }
    pthread_mutex_unlock(&en->spares_mu);
    return got;
}

/* Removes a spare that is no longer wanted or was never finished (stops its server). */
static void spare_remove(engine *en, const char *id)
{
    pf_err e;
    err_clear(&e);
    if (engine_instance_destroy(en, id, &e) != 0)
        log_sub(LOG_WARN, "spares", "cannot remove spare %s: %s", id, e.message);
    if (en->pgbr && engine_backup_remove(en, id, &e) != 0)
        log_sub(LOG_WARN, "spares", "cannot remove the stanza of spare %s: %s", id, e.message);
}

/* The settings of a spare's server: its private socket only (no TCP listener: no public
 * port is taken before a database has one), archiving to its own stanza. */
static int spare_conf(engine *en, const char *data, const char *sock, pf_err *e)
{
    char *archive = engine__archive_conf(en, data);
    int rc = engine__write_conf(en, data, sock, "", ENGINE_SOCKET_PORT, archive, e);
    free(archive);
    return rc;
}

/* Opens the admin session a spare keeps until its hand-over (admin.c), so a create's role
 * change runs without a backend fork: the fork, the preloaded and session libraries and
 * the first catalog reads happen here, off the create's path. A spare whose session does
 * not open still serves: its hand-over connects then. */
static void spare_session_open(engine *en, const char *id, const char *sock)
{
    PGconn *c = NULL;
    pf_err e;
    err_clear(&e);
    if (engine__admin_connect(sock, ENGINE_SOCKET_PORT, &c, &e) < 0) {
        log_sub(LOG_WARN, "spares", "spare %s keeps no admin session: %s", id, e.message);
        return;
    }
    if (engine__roles_rehearse(c, &e) < 0) /* only slower: the session still serves */
        log_sub(LOG_WARN, "spares", "spare %s: the role rehearsal failed: %s", id, e.message);
    engine__admin_keep(en, id, c);
}

/* Between two steps of a make: a stop asked meanwhile ends it. */
static bool stop_asked(bool (*stop)(void *), void *arg, pf_err *e)
{
    if (!stop || !stop(arg))
        return false;
    err_kind(e, ERR_TRANSIENT, "Stopping", "stopping");
    return true;
}

int engine_spare_make(engine *en, bool (*stop)(void *), void *arg, char *id_out, size_t idsz,
                      pf_err *e)
{
    char id[PF_ID_MAX];
    util_id_new("in", id);
    int ret = -1;
    int64_t t0 = util_now_ms(), t_copy = 0, t_stanza = 0;
    char *dir = xasprintf("%s/%s", en->instances_dir, id);
    char *data = xasprintf("%s/data", dir);
    char *tmp = xasprintf("%s/data.tmp", dir);
    char *log = xasprintf("%s/postgres.log", dir);
    char *sock = xasprintf("%s/%s", en->run_dir, id);
    char *mark = mark_path(en, id);
    pid_t pid = 0;
    /* the mark first: whatever a crash leaves of this instance is a spare's, not an orphan's */
    if (engine__own_dir(en, dir, e) < 0 || engine__own_dir(en, sock, e) < 0 ||
        fs_write_atomic(mark, "", 0, 0600, NULL, e) < 0)
        goto out;
    if (fs_copy_tree(en->golden_dir, tmp, &en->user, e) < 0 || stop_asked(stop, arg, e) ||
        fs_sync_fs(tmp, e) < 0 || stop_asked(stop, arg, e))
        goto out;
    if (rename(tmp, data) < 0) {
        err_internal(e, "rename %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (fs_fsync_dir(dir, e) < 0 || spare_conf(en, data, sock, e) < 0)
        goto out;
    t_copy = util_now_ms();
    if (stop_asked(stop, arg, e) || (en->pgbr && engine_backup_stanza_ensure(en, id, e) < 0) ||
        stop_asked(stop, arg, e))
        goto out;
    t_stanza = util_now_ms();
    if (engine__launch(en, id, "spare server", data, sock, log, ENGINE_SOCKET_PORT,
                       SPARE_START_TIMEOUT_MS, &pid, e) < 0)
        goto out;
    engine__track(en, id, pid, true);
    spare_session_open(en, id, sock);
    list_push(en, id);
    log_sub(LOG_INFO, "spares",
            "made spare %s in %lld ms (copy %lld ms, stanza %lld ms, start %lld ms)", id,
            (long long)(util_now_ms() - t0), (long long)(t_copy - t0),
            (long long)(t_stanza - t_copy), (long long)(util_now_ms() - t_stanza));
    if (id_out)
        snprintf(id_out, idsz, "%s", id);
    ret = 0;
out:
    if (ret < 0) {
        engine__disk_full_is_transient(e);
        err_prefix(e, "while making spare %s: ", id);
        spare_remove(en, id);
    }
    free(dir);
    free(data);
    free(tmp);
    free(log);
    free(sock);
    free(mark);
    return ret;
}

bool engine_spare_take(engine *en, char *id, size_t idsz)
{
    char got[ENGINE_ID_MAX];
    while (list_pop(en, got)) {
        char *data = xasprintf("%s/%s/data", en->instances_dir, got);
        char *mark = mark_path(en, got);
        bool live = engine__live_postmaster(data) > 0;
        /* removing the mark is the claim: only one caller's unlink succeeds */
        bool claimed = live && unlink(mark) == 0;
        free(data);
        free(mark);
        if (claimed) {
            snprintf(id, idsz, "%s", got);
            pthread_mutex_lock(&en->spares_mu);
            en->spares_taken++;
            pthread_mutex_unlock(&en->spares_mu);
            return true;
        }
        if (!live) { /* died while waiting: not worth a restart here */
            log_sub(LOG_WARN, "spares", "spare %s is not running; removing it", got);
            spare_remove(en, got);
        }
    }
    return false;
}

void engine_spares_stats(engine *en, int *ready, uint64_t *taken)
{
    pthread_mutex_lock(&en->spares_mu);
    if (ready)
        *ready = (int)en->nspares;
    if (taken)
        *taken = en->spares_taken;
    pthread_mutex_unlock(&en->spares_mu);
}

int engine_spares_trim(engine *en, int keep)
{
    int removed = 0;
    char id[ENGINE_ID_MAX];
    for (;;) {
        pthread_mutex_lock(&en->spares_mu);
        bool extra = (int)en->nspares > (keep > 0 ? keep : 0);
        pthread_mutex_unlock(&en->spares_mu);
        if (!extra || !list_pop(en, id))
            break;
        char *mark = mark_path(en, id);
        bool claimed = unlink(mark) == 0;
        free(mark);
        if (claimed) {
            spare_remove(en, id);
            removed++;
        }
    }
    return removed;
}

/* One marked instance found at startup: adopted when its server runs, started again when
 * its data is complete, else removed. */
static void adopt_one(engine *en, const char *id)
{
    char *data = xasprintf("%s/%s/data", en->instances_dir, id);
    char *version = xasprintf("%s/PG_VERSION", data);
    char *sock = xasprintf("%s/%s", en->run_dir, id);
    char *log = xasprintf("%s/%s/postgres.log", en->instances_dir, id);
    pid_t pid = engine__live_postmaster(data);
    pf_err e;
    err_clear(&e);
    if (pid > 0) {
        engine__track(en, id, pid, false);
        spare_session_open(en, id, sock);
        list_push(en, id);
        log_sub(LOG_INFO, "spares", "adopted the running spare %s pid=%d", id, (int)pid);
    } else if (fs_exists(version)) {
        char *pidfile = xasprintf("%s/postmaster.pid", data);
        unlink(pidfile); /* its server is gone */
        free(pidfile);
        if (spare_conf(en, data, sock, &e) == 0 &&
            engine__launch(en, id, "spare server", data, sock, log, ENGINE_SOCKET_PORT,
                           SPARE_START_TIMEOUT_MS, &pid, &e) == 0) {
            engine__track(en, id, pid, true);
            spare_session_open(en, id, sock);
            list_push(en, id);
            log_sub(LOG_INFO, "spares", "started the stopped spare %s again", id);
        } else {
            log_sub(LOG_WARN, "spares", "spare %s does not start (%s); removing it", id, e.message);
            spare_remove(en, id);
        }
    } else {
        log_sub(LOG_INFO, "spares", "removing the half-made spare %s", id);
        spare_remove(en, id);
    }
    free(data);
    free(version);
    free(sock);
    free(log);
}

int engine_spares_adopt(engine *en, int keep, pf_err *e)
{
    pthread_mutex_lock(&en->spares_mu);
    en->nspares = 0; /* what is on disk is the truth */
    pthread_mutex_unlock(&en->spares_mu);
    DIR *d = opendir(en->instances_dir);
    if (!d)
        return err_internal(e, "while adopting spares: open %s: %s", en->instances_dir,
                            strerror(errno));
    char **ids = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!engine__valid_id(de->d_name))
            continue;
        char *mark = mark_path(en, de->d_name);
        bool spare = fs_exists(mark);
        free(mark);
        if (!spare)
            continue;
        util_grow((void **)&ids, &cap, n + 1, sizeof *ids);
        ids[n++] = xstrdup(de->d_name);
    }
    closedir(d);
    for (size_t i = 0; i < n; i++) {
        int ready = 0;
        engine_spares_stats(en, &ready, NULL);
        if (ready < keep) {
            adopt_one(en, ids[i]);
        } else {
            log_sub(LOG_INFO, "spares", "removing spare %s (beyond --spares %d)", ids[i], keep);
            spare_remove(en, ids[i]);
        }
        free(ids[i]);
    }
    free(ids);
    int ready = 0;
    engine_spares_stats(en, &ready, NULL);
    return ready;
}

int engine_spares_on_disk(const char *home)
{
    char *dir = xasprintf("%s/instances", home);
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (!engine__valid_id(de->d_name))
            continue;
        char *mark = xasprintf("%s/%s/" ENGINE_SPARE_MARK, dir, de->d_name);
        n += fs_exists(mark);
        free(mark);
    }
    if (d)
        closedir(d);
    free(dir);
    return n;
}

/* ---- aliases of socket directories ---- */

int engine_instance_alias(engine *en, const char *id, const char *alias, pf_err *e)
{
    if (engine__check_id(id, e) < 0 || engine__check_id(alias, e) < 0)
        return -1;
    if (!strcmp(id, alias))
        return 0;
    char *link = xasprintf("%s/%s", en->run_dir, alias);
    char target[ENGINE_ID_MAX + 1] = "";
    ssize_t l = readlink(link, target, sizeof target - 1);
    int ret = 0;
    if (l >= 0)
        target[l] = '\0';
    if (l < 0 || strcmp(target, id) != 0) {
        unlink(link);
        if (symlink(id, link) < 0) /* relative: run/<alias> -> <id> */
            ret = err_internal(e, "symlink %s: %s", link, strerror(errno));
        else
            ret = fs_fsync_dir(en->run_dir, e);
    }
    free(link);
    if (ret < 0)
        engine__disk_full_is_transient(e);
    return ret;
}

int engine_instance_unalias(engine *en, const char *alias, pf_err *e)
{
    if (engine__check_id(alias, e) < 0)
        return -1;
    char *link = xasprintf("%s/%s", en->run_dir, alias);
    struct stat st;
    int ret = 0;
    /* only a symlink: run/<alias> of an instance named by the database's own id is its real
     * socket directory, removed with the instance */
    if (lstat(link, &st) == 0 && S_ISLNK(st.st_mode) && unlink(link) < 0)
        ret = err_internal(e, "unlink %s: %s", link, strerror(errno));
    free(link);
    return ret;
}

/* Copies of golden made by older versions under home/spare (now unused). */
void engine__spares_tidy(engine *en)
{
    DIR *d = opendir(en->spare_dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "tmp-", 4) != 0 && strncmp(de->d_name, "ready-", 6) != 0)
            continue;
        char *path = xasprintf("%s/%s", en->spare_dir, de->d_name);
        fs_remove_tree(path, NULL);
        free(path);
    }
    if (d)
        closedir(d);
}
