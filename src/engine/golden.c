/* golden: the initdb'd data directory every instance is copied from. It is made once,
 * in golden.tmp, configured by a temporary socket-only server, synced, and renamed to
 * golden: the rename is the completion marker, so a half-made golden is made again. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine_int.h"
#include "util/log.h"
#include "util/util.h"

#define GOLDEN_PORT 5432 /* names the socket file only: the server has no TCP listener */
#define INITDB_TIMEOUT_MS 120000
#define GOLDEN_START_TIMEOUT_MS 60000

/* Runs once in the golden: everything a connection creates belongs to the owner role,
 * and connection roles reach only the `postgres` database. */
static const char *const golden_sql[] = {
    "CREATE ROLE " PGFLEET_OWNER_ROLE " NOLOGIN",
    "ALTER SCHEMA public OWNER TO " PGFLEET_OWNER_ROLE,
    "REVOKE ALL ON DATABASE postgres FROM PUBLIC",
    "GRANT CONNECT, CREATE, TEMPORARY ON DATABASE postgres TO " PGFLEET_OWNER_ROLE,
    /* No connection role can reach the templates (pg_hba allows only `postgres`, and roles
     * have no CREATEDB), yet they are two thirds of the files every new database copies:
     * drop them so a copy creates ~370 files instead of ~970. */
    "ALTER DATABASE template0 IS_TEMPLATE false",
    "ALTER DATABASE template1 IS_TEMPLATE false",
    "DROP DATABASE template0",
    "DROP DATABASE template1",
    "CHECKPOINT",
    NULL,
};

static int golden_initdb(engine *en, const char *tmp, pf_err *e)
{
    char *initdb = xasprintf("%s/initdb", en->bindir);
    const char *argv[] = {initdb, "-D", tmp, "-U", PGFLEET_ADMIN_ROLE, "--auth-local=trust",
                          "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
                          /* 1 MiB WAL segments instead of 16: an idle server keeps a few
                           * segments, and a backup's WAL switch wastes at most one */
                          "--wal-segsize=1", "--no-sync", "--no-instructions", NULL};
    proc_opts o = {.argv = argv, .user = &en->user, .cwd = "/"};
    char out[4096];
    int rc = proc_run(&o, out, sizeof out, INITDB_TIMEOUT_MS, e);
    free(initdb);
    if (rc > 0) {
        size_t l = strlen(out);
        return err_internal(e, "initdb exited with %d: %s", rc, l > 300 ? out + l - 300 : out);
    }
    return rc < 0 ? -1 : 0;
}

static int golden_configure(engine *en, const char *tmp, pf_err *e)
{
    int ret = -1;
    pid_t pid = -1;
    PGconn *c = NULL;
    char *sock = xasprintf("%s/" ENGINE_GOLDEN_LABEL, en->run_dir);
    char *log = xasprintf("%s/golden.log", en->home);
    if (fs_remove_tree(sock, e) < 0 || fs_mkdirs(sock, 0700, &en->user, e) < 0)
        goto out;
    if (engine__write_conf(en, tmp, sock, "", GOLDEN_PORT, "archive_mode = off\n", e) < 0)
        goto out;
    if (engine__launch(en, NULL, "golden server", tmp, sock, log, GOLDEN_PORT,
                       GOLDEN_START_TIMEOUT_MS, &pid, e) < 0)
        goto out;
    if (engine__admin_connect(sock, GOLDEN_PORT, &c, e) < 0)
        goto out;
    for (size_t i = 0; golden_sql[i]; i++)
        if (engine__exec(c, golden_sql[i], 0, NULL, NULL, e) < 0)
            goto out;
    if (engine__stop_temporary(&c, &pid, 30000, "golden server", e) < 0)
        goto out;
    ret = 0;
out:
    PQfinish(c);
    if (pid > 0)
        engine__terminate(pid, SIGQUIT, 5000);
    fs_remove_tree(sock, NULL);
    free(sock);
    free(log);
    return ret;
}

/* Punches holes where the WAL segments are zeros (initdb zero-fills a whole segment for
 * a few hundred KB of records): every instance copy then moves ~1 MB of WAL instead of
 * 16. PostgreSQL reads holes as the zeros they replace. */
static void golden_sparsify_wal(const char *datadir)
{
    char *wal = xasprintf("%s/pg_wal", datadir);
    DIR *d = opendir(wal);
    struct dirent *de;
    enum { CHUNK = 65536 };
    char *buf = xmalloc(CHUNK), *zero = xcalloc(1, CHUNK);
    while (d && (de = readdir(d)) != NULL) {
        if (strlen(de->d_name) != 24 || strspn(de->d_name, "0123456789ABCDEF") != 24)
            continue;
        char *f = xasprintf("%s/%s", wal, de->d_name);
        int fd = open(f, O_RDWR | O_CLOEXEC);
        free(f);
        if (fd < 0)
            continue;
        off_t off = 0;
        ssize_t n;
        while ((n = pread(fd, buf, CHUNK, off)) > 0) {
            if (n == CHUNK && memcmp(buf, zero, CHUNK) == 0)
                fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, n);
            off += n;
        }
        close(fd);
    }
    if (d)
        closedir(d);
    free(buf);
    free(zero);
    free(wal);
}

int engine__golden_ensure(engine *en, pf_err *e)
{
    int ret = -1;
    char *version = xasprintf("%s/PG_VERSION", en->golden_dir);
    char *tmp = xasprintf("%s/golden.tmp", en->home);
    char *opts = xasprintf("%s/postmaster.opts", tmp);
    if (fs_exists(version)) {
        ret = 0;
        goto out;
    }
    int64_t t0 = util_now_ms();
    log_sub(LOG_INFO, "engine", "making the golden data directory in %s", en->golden_dir);
    /* a golden without PG_VERSION is half made (never renamed complete): redo it */
    if (fs_remove_tree(en->golden_dir, e) < 0 || fs_remove_tree(tmp, e) < 0)
        goto out;
    if (fs_mkdirs(tmp, 0700, &en->user, e) < 0)
        goto out;
    if (golden_initdb(en, tmp, e) < 0 || golden_configure(en, tmp, e) < 0)
        goto out;
    unlink(opts);
    golden_sparsify_wal(tmp);
    /* initdb ran with --no-sync: flush everything before calling it complete */
    if (fs_sync_fs(tmp, e) < 0)
        goto out;
    if (rename(tmp, en->golden_dir) < 0) {
        err_internal(e, "rename %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (fs_fsync_dir(en->home, e) < 0) /* the rename */
        goto out;
    log_sub(LOG_INFO, "engine", "golden data directory ready in %lld ms",
            (long long)(util_now_ms() - t0));
    ret = 0;
out:
    if (ret < 0) {
        engine__disk_full_is_transient(e);
        err_prefix(e, "while making the golden data directory: ");
    }
    free(version);
    free(tmp);
    free(opts);
    return ret;
}
