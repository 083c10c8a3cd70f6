/* golden: the initdb'd data directory every instance is copied from. It is made once,
 * in golden.tmp, configured by a temporary socket-only server, synced, and renamed to
 * golden: the rename is the completion marker, so a half-made golden is made again. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <pthread.h>
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

/* ---- extensions ----
 * The extensions pgfleet knows how to offer, one line each: the name, and what a
 * connection role needs beyond the extension's script (run as the superuser right after
 * the extension is created; %1$I is its schema). The allowlist (--extensions) is a subset
 * of these; adding a packaged extension is one line here (docs/extensions.md). */
typedef struct golden_ext {
    const char *name;
    const char *grants; /* NULL: none */
} golden_ext;

static const golden_ext golden_exts[] = {
    {"pg_stat_statements", "GRANT EXECUTE ON FUNCTION %1$I.pg_stat_statements_reset(oid, oid, "
                           "bigint) TO " PGFLEET_OWNER_ROLE},
    {"postgis", "GRANT INSERT, UPDATE, DELETE ON %1$I.spatial_ref_sys TO " PGFLEET_OWNER_ROLE},
    {"pg_trgm", NULL},
    {"pgcrypto", NULL},
    {"uuid-ossp", NULL},
    {"citext", NULL},
    {"hstore", NULL},
    {"btree_gin", NULL},
    {"btree_gist", NULL},
    {"ltree", NULL},
    {"unaccent", NULL},
    {"cube", NULL},
    {"earthdistance", NULL},
    {"tablefunc", NULL},
    {"fuzzystrmatch", NULL},
    {"intarray", NULL},
    {"hypopg", NULL},
    {"pg_partman", "GRANT ALL ON %1$I.part_config, %1$I.part_config_sub TO " PGFLEET_OWNER_ROLE},
};
#define GOLDEN_NEXTS (sizeof golden_exts / sizeof golden_exts[0])

static char golden_default_list[1024];
static pthread_once_t golden_default_once = PTHREAD_ONCE_INIT;

static void golden_default_build(void)
{
    size_t off = 0;
    for (size_t i = 0; i < GOLDEN_NEXTS; i++)
        off += (size_t)snprintf(golden_default_list + off, sizeof golden_default_list - off, "%s%s",
                                i ? "," : "", golden_exts[i].name);
}

const char *engine_extensions_default(void)
{
    pthread_once(&golden_default_once, golden_default_build);
    return golden_default_list;
}

int engine_extensions_check(const char *list, pf_err *e)
{
    if (!list)
        return 0;
    char *copy = xstrdup(list);
    int ret = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        size_t l = strlen(tok);
        while (l && tok[l - 1] == ' ')
            tok[--l] = '\0';
        bool known = false;
        for (size_t i = 0; i < GOLDEN_NEXTS && !known; i++)
            known = strcmp(tok, golden_exts[i].name) == 0;
        if (!known) {
            ret = err_kind(e, ERR_INVALID, NULL,
                           "--extensions: '%.64s' is not an extension pgfleet offers (known: %s)",
                           tok, engine_extensions_default());
            break;
        }
    }
    free(copy);
    return ret;
}

/* Runs once in the golden's `postgres` database: everything a connection creates belongs
 * to the owner role. */
static const char *const golden_sql[] = {
    "CREATE ROLE " PGFLEET_OWNER_ROLE " NOLOGIN",
    "ALTER SCHEMA public OWNER TO " PGFLEET_OWNER_ROLE,
    "REVOKE ALL ON DATABASE postgres FROM PUBLIC",
    "GRANT CONNECT, CREATE, TEMPORARY ON DATABASE postgres TO " PGFLEET_OWNER_ROLE,
    /* template1 stays (CREATE DATABASE copies it), but no connection role reaches it.
     * template0 goes: it is a third of the files every new server copies. */
    "REVOKE CONNECT ON DATABASE template1 FROM PUBLIC",
    "ALTER DATABASE template0 IS_TEMPLATE false",
    "DROP DATABASE template0",
    NULL,
};

/* Runs in `postgres` and template1 (so in every database CREATE DATABASE makes).
 *
 * Extensions go into the schema `extensions`, which only the superuser can write: pgextwlist
 * runs an allowlisted CREATE EXTENSION (and ALTER EXTENSION UPDATE) as the superuser, and
 * objects a user planted where the script looks (functions, operators, temporary tables)
 * would run as the superuser too. Two event triggers guard it; they run as the superuser
 * under pgextwlist, so they pin their own search_path first and name every object by
 * schema:
 * - before: refuses a session that holds temporary objects; sets the search path of the
 *   command to `extensions`, so an extension created without SCHEMA lands there; and when
 *   the command names a schema (or an extension lives in a schema users can write, which is
 *   then on the script's path) refuses while such a schema holds a function or operator
 *   that a non-superuser owns.
 * - after: refuses an extension off the allowlist (PostgreSQL's own trusted extensions
 *   would pass otherwise), runs the extension's grants, and puts the search path back.
 * Schema, functions and triggers are made members of plpgsql, so pg_dump of a user's
 * database leaves them out. */
static const char *const golden_db_sql[] = {
    "CREATE SCHEMA extensions",
    "GRANT USAGE ON SCHEMA extensions TO PUBLIC",
    "CREATE SCHEMA pgfleet",
    "REVOKE ALL ON SCHEMA pgfleet FROM PUBLIC",
    "CREATE FUNCTION pgfleet.extension_before() RETURNS event_trigger LANGUAGE plpgsql AS $f$\n"
    "DECLARE\n"
    "  saved text := pg_catalog.current_setting('search_path');\n"
    "  culprit text;\n"
    "  named boolean;\n"
    "BEGIN\n"
    "  PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);\n"
    "  PERFORM pg_catalog.set_config('pgfleet.saved_search_path', saved, true);\n"
    "  IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = session_user) THEN\n"
    "    PERFORM pg_catalog.set_config('search_path', saved, true);\n"
    "    RETURN;\n"
    "  END IF;\n"
    "  IF pg_catalog.pg_my_temp_schema() <> 0 AND (\n"
    "     EXISTS (SELECT 1 FROM pg_catalog.pg_class c\n"
    "             WHERE c.relnamespace = pg_catalog.pg_my_temp_schema())\n"
    "     OR EXISTS (SELECT 1 FROM pg_catalog.pg_type t\n"
    "                WHERE t.typnamespace = pg_catalog.pg_my_temp_schema())\n"
    "     OR EXISTS (SELECT 1 FROM pg_catalog.pg_proc p\n"
    "                WHERE p.pronamespace = pg_catalog.pg_my_temp_schema())) THEN\n"
    "    RAISE EXCEPTION 'pgfleet: % refused in a session that holds temporary objects', tg_tag\n"
    "      USING HINT = 'run it in a new session: while the extension''s script runs as the '\n"
    "        'superuser, temporary objects could stand in for its own';\n"
    "  END IF;\n"
    "  named := tg_tag <> 'CREATE EXTENSION' OR pg_catalog.current_query() ~* '\\mschema\\M';\n"
    "  SELECT pg_catalog.format('%I.%s', n.nspname, x.name) INTO culprit\n"
    "  FROM pg_catalog.pg_namespace n,\n"
    "    LATERAL (SELECT p.proname::text AS name FROM pg_catalog.pg_proc p\n"
    "             JOIN pg_catalog.pg_roles o ON o.oid = p.proowner\n"
    "             WHERE p.pronamespace = n.oid AND NOT o.rolsuper\n"
    "             UNION ALL\n"
    "             SELECT op.oprname::text FROM pg_catalog.pg_operator op\n"
    "             JOIN pg_catalog.pg_roles o ON o.oid = op.oprowner\n"
    "             WHERE op.oprnamespace = n.oid AND NOT o.rolsuper) x\n"
    "  WHERE pg_catalog.has_schema_privilege(session_user, n.oid, 'CREATE')\n"
    "    AND (named OR EXISTS (SELECT 1 FROM pg_catalog.pg_extension e\n"
    "                          WHERE e.extnamespace = n.oid))\n"
    "  LIMIT 1;\n"
    "  IF culprit IS NOT NULL THEN\n"
    "    RAISE EXCEPTION 'pgfleet: % refused while % (owned by a user) is in a schema users can "
    "write that the extension''s script would search', tg_tag, culprit\n"
    "      USING HINT = 'create the extension without SCHEMA (it goes to the schema "
    "extensions), or move user functions and operators out of that schema first';\n"
    "  END IF;\n"
    "  IF tg_tag = 'CREATE EXTENSION' THEN\n"
    "    PERFORM pg_catalog.set_config('search_path', 'extensions', true);\n"
    "  ELSE\n"
    "    PERFORM pg_catalog.set_config('search_path', saved, true);\n"
    "  END IF;\n"
    "END\n"
    "$f$",
    "CREATE FUNCTION pgfleet.extension_after() RETURNS event_trigger LANGUAGE plpgsql AS $f$\n"
    "DECLARE\n"
    "  r record;\n"
    "  g text;\n"
    "  saved text;\n"
    "  super boolean;\n"
    "BEGIN\n"
    "  PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);\n"
    "  saved := pg_catalog.current_setting('pgfleet.saved_search_path', true);\n"
    "  super := (SELECT o.rolsuper FROM pg_catalog.pg_roles o WHERE o.rolname = session_user);\n"
    "  FOR r IN SELECT e.extname::text AS extname, n.nspname::text AS nspname\n"
    "           FROM pg_catalog.pg_event_trigger_ddl_commands() c\n"
    "           JOIN pg_catalog.pg_extension e ON e.oid = c.objid\n"
    "           JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace\n"
    "           WHERE c.classid = 'pg_catalog.pg_extension'::pg_catalog.regclass LOOP\n"
    "    IF NOT super AND NOT r.extname = ANY (pg_catalog.string_to_array(pg_catalog.replace(\n"
    "        pg_catalog.current_setting('extwlist.extensions', true), ' ', ''), ',')) THEN\n"
    "      RAISE EXCEPTION 'pgfleet: extension \"%\" is not on this server''s allowlist', "
    "r.extname\n"
    "        USING HINT = 'SHOW extwlist.extensions; lists the allowed ones';\n"
    "    END IF;\n"
    "    FOR g IN SELECT s.stmt FROM pgfleet.extension_grants s WHERE s.ext = r.extname LOOP\n"
    "      EXECUTE pg_catalog.format(g, r.nspname);\n"
    "    END LOOP;\n"
    "  END LOOP;\n"
    "  IF saved IS NOT NULL THEN\n"
    "    PERFORM pg_catalog.set_config('search_path', saved, true);\n"
    "  END IF;\n"
    "END\n"
    "$f$",
    "CREATE TABLE pgfleet.extension_grants (ext text NOT NULL, stmt text NOT NULL)",
    "REVOKE ALL ON pgfleet.extension_grants FROM PUBLIC",
    "CREATE EVENT TRIGGER pgfleet_extension_before ON ddl_command_start"
    " WHEN TAG IN ('CREATE EXTENSION', 'ALTER EXTENSION')"
    " EXECUTE FUNCTION pgfleet.extension_before()",
    "CREATE EVENT TRIGGER pgfleet_extension_after ON ddl_command_end"
    " WHEN TAG IN ('CREATE EXTENSION') EXECUTE FUNCTION pgfleet.extension_after()",
    "ALTER EXTENSION plpgsql ADD SCHEMA pgfleet",
    "ALTER EXTENSION plpgsql ADD SCHEMA extensions",
    "ALTER EXTENSION plpgsql ADD FUNCTION pgfleet.extension_before()",
    "ALTER EXTENSION plpgsql ADD FUNCTION pgfleet.extension_after()",
    "ALTER EXTENSION plpgsql ADD TABLE pgfleet.extension_grants",
    "ALTER EXTENSION plpgsql ADD EVENT TRIGGER pgfleet_extension_before",
    "ALTER EXTENSION plpgsql ADD EVENT TRIGGER pgfleet_extension_after",
    NULL,
};

/* The golden_db_sql statements and the grants table on an open admin connection. */
static int golden_db_setup(PGconn *c, pf_err *e)
{
    for (size_t i = 0; golden_db_sql[i]; i++)
        if (engine__exec(c, golden_db_sql[i], 0, NULL, NULL, e) < 0) {
            err_prefix(e, "golden statement %zu: ", i);
            return -1;
        }
    for (size_t i = 0; i < GOLDEN_NEXTS; i++) {
        if (!golden_exts[i].grants)
            continue;
        const char *params[] = {golden_exts[i].name, golden_exts[i].grants};
        if (engine__exec(c, "INSERT INTO pgfleet.extension_grants VALUES ($1, $2)", 2, params, NULL,
                         e) < 0)
            return -1;
    }
    return 0;
}

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
    /* pg_stat_statements queryable from the start, in the schema extensions */
    if (golden_db_setup(c, e) < 0 ||
        engine__exec(c, "CREATE EXTENSION pg_stat_statements SCHEMA extensions", 0, NULL, NULL, e) <
            0)
        goto out;
    PQfinish(c);
    c = NULL;
    if (engine__admin_connect_db(sock, GOLDEN_PORT, "template1", &c, e) < 0 ||
        golden_db_setup(c, e) < 0 || engine__exec(c, "CHECKPOINT", 0, NULL, NULL, e) < 0)
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
    if (fs_exists(version) && engine__golden_current(en->golden_dir)) {
        ret = 0;
        goto out;
    }
    if (fs_exists(version)) {
        /* an older golden: made again, and the spares copied from it go */
        log_sub(LOG_INFO, "engine", "the golden data directory is of an older version");
        if (fs_remove_tree(en->spare_dir, e) < 0 || fs_mkdirs(en->spare_dir, 0700, NULL, e) < 0)
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
    char *mark = xasprintf("%s/" ENGINE_GOLDEN_MARK, tmp);
    int mrc = fs_write_atomic(mark, ENGINE_GOLDEN_VERSION, strlen(ENGINE_GOLDEN_VERSION), 0600,
                              &en->user, e);
    free(mark);
    if (mrc < 0)
        goto out;
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
