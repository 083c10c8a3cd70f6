/* Tests for src/engine against real PostgreSQL 15: instances, adoption, roles, security
 * of connection roles, and create+start timings. Every server started here is destroyed
 * in the group teardown, also when a test fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "auth/auth.h"
#include "engine/engine.h"
#include "util/err.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/util.h"

#define BINDIR "/usr/lib/postgresql/15/bin"
#define START_TIMEOUT_MS 30000

static char home[HARNESS_PATH_MAX];
static engine *en;
static engine_config cfg;

static engine *open_engine(void)
{
    pf_err e;
    engine *x = NULL;
    if (engine_open(&cfg, &x, &e) < 0)
        fail_msg("engine_open: %s", e.message);
    return x;
}

static int group_setup(void **state)
{
    (void)state;
    pf_err e;
    if (harness_home_make(home, "test-engine") < 0)
        return -1;
    if (proc_user_resolve("postgres", &cfg.user, &e) < 0) {
        fprintf(stderr, "%s\n", e.message);
        return -1;
    }
    cfg.home = home;
    cfg.pg_bindir = BINDIR;
    cfg.listen_addr = "127.0.0.1";
    int64_t t0 = util_now_ms();
    if (engine_open(&cfg, &en, &e) < 0) {
        fprintf(stderr, "engine_open: %s\n", e.message);
        return -1;
    }
    printf("golden made in %lld ms\n", (long long)(util_now_ms() - t0));
    return 0;
}

/* Destroys every instance on disk (servers of closed engines included) and home. */
static int group_teardown(void **state)
{
    (void)state;
    pf_err e;
    if (!en)
        en = open_engine();
    char **ids = NULL;
    size_t n = 0;
    if (engine_instance_list(en, &ids, &n, &e) == 0) {
        for (size_t i = 0; i < n; i++)
            if (engine_instance_destroy(en, ids[i], &e) < 0)
                fprintf(stderr, "teardown: %s\n", e.message);
        engine_free_ids(ids, n);
    }
    engine_stop_all(en);
    engine_close(en);
    en = NULL;
    return harness_home_remove(home);
}

static int free_port(void)
{
    for (;;) {
        int p = 20000 + (int)(util_now_ms() * 7919 % 20000) + rand() % 5000;
        if (!util_port_busy(p))
            return p;
    }
}

static void new_db(char id[PF_ID_MAX], int *port)
{
    pf_err e;
    util_id_new("db", id);
    *port = free_port();
    if (engine_instance_create(en, id, *port, &e) < 0)
        fail_msg("%s", e.message);
    if (engine_instance_start(en, id, *port, START_TIMEOUT_MS, &e) < 0)
        fail_msg("%s", e.message);
}

static PGconn *connect_tcp_ssl(int port, const char *user, const char *password, const char *db,
                               const char *sslmode)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    const char *keys[] = {"host", "port", "user", "password", "dbname", "sslmode", NULL};
    const char *vals[] = {"127.0.0.1", portstr, user, password, db, sslmode, NULL};
    return PQconnectdbParams(keys, vals, 0);
}

/* Every TCP connection is TLS (plaintext TCP is refused: see test_roles_and_security). */
static PGconn *connect_tcp(int port, const char *user, const char *password, const char *db)
{
    return connect_tcp_ssl(port, user, password, db, "require");
}

static bool can_login(int port, const char *user, const char *password)
{
    PGconn *c = connect_tcp(port, user, password, "postgres");
    bool ok = PQstatus(c) == CONNECTION_OK;
    PQfinish(c);
    return ok;
}

static bool sql_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    PQclear(r);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

static char *sql_value(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    char *v = NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
        v = xstrdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static void make_role(const char *db, const char *role, char password[33])
{
    pf_err e;
    char v[256];
    util_secret(password, 32);
    assert_int_equal(auth_scram_verifier(role, password, v, &e), 0);
    if (engine_role_ensure(en, db, role, v, &e) < 0)
        fail_msg("%s", e.message);
}

static void test_scram_verifier(void **state)
{
    (void)state;
    pf_err e;
    char a[256], b[256];
    assert_int_equal(auth_scram_verifier("u1", "secret", a, &e), 0);
    assert_int_equal(auth_scram_verifier("u1", "secret", b, &e), 0);
    assert_int_equal(strncmp(a, "SCRAM-SHA-256$4096:", 19), 0);
    assert_string_not_equal(a, b); /* fresh salt each time */
    assert_null(strstr(a, "secret"));
}

static void test_roles_and_security(void **state)
{
    (void)state;
    pf_err e;
    char db[PF_ID_MAX], p1[33], p2[33], p1b[33];
    int port;
    new_db(db, &port);
    assert_true(engine_instance_running(en, db));
    assert_true(engine_instance_exists(en, db));

    make_role(db, "app_one", p1);
    assert_true(can_login(port, "app_one", p1));
    assert_false(can_login(port, "app_one", "wrong-password"));
    /* plaintext TCP is refused even with the right password */
    PGconn *plain = connect_tcp_ssl(port, "app_one", p1, "postgres", "disable");
    assert_int_not_equal(PQstatus(plain), CONNECTION_OK);
    PQfinish(plain);
    /* the admin role is unreachable over TCP; other databases too */
    assert_false(can_login(port, PGFLEET_ADMIN_ROLE, ""));
    PGconn *t1 = connect_tcp(port, "app_one", p1, "template1");
    assert_int_not_equal(PQstatus(t1), CONNECTION_OK);
    PQfinish(t1);

    /* rotate: the old password stops working, the new one works */
    make_role(db, "app_one", p1b);
    assert_false(can_login(port, "app_one", p1));
    assert_true(can_login(port, "app_one", p1b));

    /* objects belong to the owner role, so a second role sees and uses them */
    make_role(db, "app_two", p2);
    PGconn *c1 = connect_tcp(port, "app_one", p1b, "postgres");
    assert_int_equal(PQstatus(c1), CONNECTION_OK);
    assert_true(sql_ok(c1, "CREATE TABLE t (id int primary key, v text)"));
    assert_true(sql_ok(c1, "INSERT INTO t VALUES (1, 'one')"));
    char *owner = sql_value(c1, "SELECT tableowner FROM pg_tables WHERE tablename = 't'");
    assert_string_equal(owner, PGFLEET_OWNER_ROLE);
    free(owner);
    assert_true(sql_ok(c1, "CREATE SCHEMA s2"));
    /* no server files, no programs, no superuser powers */
    assert_false(sql_ok(c1, "COPY t(v) FROM PROGRAM 'id'"));
    assert_false(sql_ok(c1, "SELECT pg_read_file('/etc/passwd')"));
    assert_false(sql_ok(c1, "COPY t(v) FROM '/etc/passwd'"));
    assert_false(sql_ok(c1, "ALTER SYSTEM SET fsync = off"));
    /* databases of its own (prisma migrate dev's shadow database), dropped again */
    assert_true(sql_ok(c1, "CREATE DATABASE other"));
    assert_true(sql_ok(c1, "DROP DATABASE other"));
    assert_false(sql_ok(c1, "DROP DATABASE postgres"));
    assert_false(sql_ok(c1, "CREATE ROLE sneaky"));
    char *super = sql_value(c1, "SELECT rolsuper::text FROM pg_roles WHERE rolname = 'app_one'");
    assert_string_equal(super, "false");
    free(super);

    PGconn *c2 = connect_tcp(port, "app_two", p2, "postgres");
    assert_int_equal(PQstatus(c2), CONNECTION_OK);
    assert_true(sql_ok(c2, "INSERT INTO t VALUES (2, 'two')"));
    char *cnt = sql_value(c2, "SELECT count(*) FROM t");
    assert_string_equal(cnt, "2");
    free(cnt);
    PQfinish(c2);

    /* dropping a role ends its sessions and keeps the data */
    assert_int_equal(engine_role_drop(en, db, "app_one", &e), 0);
    assert_false(sql_ok(c1, "SELECT 1"));
    PQfinish(c1);
    assert_false(can_login(port, "app_one", p1b));
    assert_int_equal(engine_role_drop(en, db, "app_one", &e), 0); /* idempotent */
    c2 = connect_tcp(port, "app_two", p2, "postgres");
    cnt = sql_value(c2, "SELECT count(*) FROM t");
    assert_string_equal(cnt, "2");
    free(cnt);
    PQfinish(c2);

    /* bad inputs never reach SQL */
    assert_int_equal(engine_role_ensure(en, db, "x'; drop", "SCRAM-SHA-256$x", &e), -1);
    assert_int_equal(e.kind, ERR_INVALID);
    assert_int_equal(engine_role_ensure(en, db, "app_three", "plaintext", &e), -1);
    assert_int_equal(engine_role_ensure(en, db, PGFLEET_ADMIN_ROLE, "SCRAM-SHA-256$x", &e), -1);

    /* stop, start: data persists; stopping twice is fine */
    assert_int_equal(engine_instance_stop(en, db, &e), 0);
    assert_false(engine_instance_running(en, db));
    assert_int_equal(engine_instance_stop(en, db, &e), 0);
    assert_int_equal(engine_role_ensure(en, db, "app_two", "SCRAM-SHA-256$x", &e), -1);
    assert_int_equal(e.kind, ERR_CONFLICT); /* the server does not run */
    assert_int_equal(engine_instance_start(en, db, port, START_TIMEOUT_MS, &e), 0);
    c2 = connect_tcp(port, "app_two", p2, "postgres");
    cnt = sql_value(c2, "SELECT count(*) FROM t");
    assert_string_equal(cnt, "2");
    free(cnt);
    PQfinish(c2);

    /* passwords and verifiers stay out of the server log */
    char path[512];
    snprintf(path, sizeof path, "%s/instances/%s/postgres.log", home, db);
    char *log = fs_read_file(path, NULL);
    assert_non_null(log);
    assert_null(strstr(log, p1));
    assert_null(strstr(log, "SCRAM-SHA-256$"));
    free(log);

    assert_int_equal(engine_instance_destroy(en, db, &e), 0);
}

static void test_adoption_and_destroy(void **state)
{
    (void)state;
    pf_err e;
    char db[PF_ID_MAX], path[512];
    int port;
    new_db(db, &port);
    snprintf(path, sizeof path, "%s/instances/%s/data/postmaster.pid", home, db);
    char *before = fs_read_file(path, NULL);
    assert_non_null(before);
    /* forget the engine without stopping, as a crash of pgfleet would */
    engine_close(en);
    en = open_engine();
    assert_true(engine_instance_running(en, db));
    assert_int_equal(engine_instance_start(en, db, port, START_TIMEOUT_MS, &e), 0);
    char *after = fs_read_file(path, NULL);
    assert_non_null(after);
    assert_int_equal(atoi(before), atoi(after)); /* same postmaster: adopted */
    free(before);
    free(after);
    assert_true(util_port_busy(port));

    /* create again is idempotent on a complete instance */
    assert_int_equal(engine_instance_create(en, db, port, &e), 0);

    char **ids = NULL;
    size_t n = 0;
    assert_int_equal(engine_instance_list(en, &ids, &n, &e), 0);
    bool found = false;
    for (size_t i = 0; i < n; i++)
        found |= !strcmp(ids[i], db);
    engine_free_ids(ids, n);
    assert_true(found);

    assert_int_equal(engine_instance_destroy(en, db, &e), 0);
    assert_false(engine_instance_running(en, db));
    assert_false(engine_instance_exists(en, db));
    assert_false(util_port_busy(port));
    snprintf(path, sizeof path, "%s/instances/%s", home, db);
    assert_false(fs_exists(path));
    snprintf(path, sizeof path, "%s/run/%s", home, db);
    assert_false(fs_exists(path));
    assert_int_equal(engine_instance_destroy(en, db, &e), 0); /* idempotent */
    /* no data directory, a bad id */
    assert_int_equal(engine_instance_start(en, db, port, START_TIMEOUT_MS, &e), -1);
    assert_int_equal(e.kind, ERR_NOT_FOUND);
    assert_int_equal(engine_instance_start(en, "../x", port, START_TIMEOUT_MS, &e), -1);
    assert_int_equal(e.kind, ERR_INVALID);
}

static void test_stale_pidfile_and_half_copy(void **state)
{
    (void)state;
    pf_err e;
    char db[PF_ID_MAX], path[512];
    util_id_new("db", db);
    int port = free_port();
    /* a half-made copy is thrown away */
    snprintf(path, sizeof path, "%s/instances/%s/data.tmp/junk", home, db);
    assert_int_equal(fs_mkdirs(path, 0700, NULL, &e), 0);
    assert_false(engine_instance_exists(en, db));
    assert_int_equal(engine_instance_create(en, db, port, &e), 0);
    assert_true(engine_instance_exists(en, db));
    snprintf(path, sizeof path, "%s/instances/%s/data.tmp", home, db);
    assert_false(fs_exists(path));

    /* partly restored data never serves: a conflict, not a passing condition */
    snprintf(path, sizeof path, "%s/instances/%s/restore.overwriting", home, db);
    assert_int_equal(fs_write_atomic(path, "", 0, 0600, NULL, &e), 0);
    assert_true(engine_restore_overwriting(en, db));
    assert_int_equal(engine_instance_start(en, db, port, START_TIMEOUT_MS, &e), -1);
    assert_int_equal(e.kind, ERR_CONFLICT);
    assert_string_equal(e.code, "RestoreUnfinished");
    assert_false(err_retryable(&e));
    assert_int_equal(unlink(path), 0);
    assert_false(engine_restore_overwriting(en, db));

    /* a pid file naming a dead process is removed and the server starts */
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    while (!proc_reap(dead))
        usleep(1000);
    snprintf(path, sizeof path, "%s/instances/%s/data/postmaster.pid", home, db);
    char text[128];
    int len = snprintf(text, sizeof text, "%d\n/x\n0\n%d\n", (int)dead, port);
    assert_int_equal(fs_write_atomic(path, text, (size_t)len, 0600, &cfg.user, &e), 0);
    assert_false(engine_instance_running(en, db));
    assert_int_equal(engine_instance_start(en, db, port, START_TIMEOUT_MS, &e), 0);
    assert_true(engine_instance_running(en, db));
    assert_int_equal(engine_instance_destroy(en, db, &e), 0);
}

static void test_port_busy(void **state)
{
    (void)state;
    pf_err e;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    int port = ntohs(sa.sin_port);
    assert_true(util_port_busy(port));
    char db[PF_ID_MAX];
    util_id_new("db", db);
    assert_int_equal(engine_instance_create(en, db, port, &e), 0);
    err_clear(&e);
    assert_int_equal(engine_instance_start(en, db, port, START_TIMEOUT_MS, &e), -1);
    assert_string_equal(e.code, "PortBusy");
    assert_int_equal(e.kind, ERR_TRANSIENT); /* a busy port passes: retry */
    assert_int_equal(e.status, 0);           /* the engine names no HTTP status */
    assert_false(engine_instance_running(en, db));
    close(fd);
    assert_int_equal(engine_instance_destroy(en, db, &e), 0);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

enum { N = 10 };

static void timed_runs(const char *what, bool spares)
{
    pf_err e;
    int64_t ms[N];
    char ids[N][PF_ID_MAX];
    for (int i = 0; i < N; i++) {
        int port = free_port();
        int64_t t0 = util_now_ms();
        if (spares)
            assert_true(engine_spare_take(en, ids[i], sizeof ids[i]));
        else
            util_id_new("db", ids[i]);
        assert_int_equal(engine_instance_create(en, ids[i], port, &e), 0);
        assert_int_equal(engine_instance_start(en, ids[i], port, START_TIMEOUT_MS, &e), 0);
        ms[i] = util_now_ms() - t0;
    }
    /* stop_all stops them in parallel */
    int64_t t0 = util_now_ms();
    engine_stop_all(en);
    int64_t stop_ms = util_now_ms() - t0;
    for (int i = 0; i < N; i++) {
        assert_false(engine_instance_running(en, ids[i]));
        assert_int_equal(engine_instance_destroy(en, ids[i], &e), 0);
    }
    qsort(ms, N, sizeof ms[0], cmp_i64);
    printf("create+start %s over %d runs: p50=%lld ms p99=%lld ms (min %lld); stop_all of %d: "
           "%lld ms\n",
           what, N, (long long)ms[N / 2], (long long)ms[N - 1], (long long)ms[0], N,
           (long long)stop_ms);
}

static void test_create_start_timing(void **state)
{
    (void)state;
    pf_err e;
    timed_runs("copying golden", false);
    int64_t t0 = util_now_ms();
    char first[PF_ID_MAX];
    for (int i = 0; i < N; i++)
        assert_int_equal(engine_spare_make(en, NULL, NULL, i ? NULL : first, sizeof first, &e), 0);
    printf("made %d started spares in %lld ms\n", N, (long long)(util_now_ms() - t0));
    int ready = 0;
    engine_spares_stats(en, &ready, NULL);
    assert_int_equal(ready, N);
    /* a spare listens on its socket only, is no database's instance yet, and archives */
    assert_true(engine_instance_running(en, first));
    char **ids = NULL;
    size_t n = 0;
    assert_int_equal(engine_instance_list(en, &ids, &n, &e), 0);
    for (size_t i = 0; i < n; i++)
        assert_string_not_equal(ids[i], first);
    engine_free_ids(ids, n);
    timed_runs("from started spares (a restart to listen on TCP)", true);
    char none[PF_ID_MAX];
    assert_false(engine_spare_take(en, none, sizeof none)); /* all were used */
    /* a spare whose server stopped is started again by the next adopt; one beyond keep goes */
    char a[PF_ID_MAX], b[PF_ID_MAX];
    assert_int_equal(engine_spare_make(en, NULL, NULL, a, sizeof a, &e), 0);
    assert_int_equal(engine_spare_make(en, NULL, NULL, b, sizeof b, &e), 0);
    engine_stop_all(en);
    assert_false(engine_instance_running(en, a));
    assert_int_equal(engine_spares_adopt(en, 1, &e), 1);
    assert_true(engine_spare_take(en, none, sizeof none));
    assert_true(engine_instance_running(en, none));
    assert_true(!strcmp(none, a) ? !engine_instance_exists(en, b) : !engine_instance_exists(en, a));
    assert_false(engine_spare_take(en, none, sizeof none));
    assert_int_equal(engine_instance_destroy(en, none, &e), 0);
}

static void test_golden_redone_when_half_made(void **state)
{
    (void)state;
    pf_err e;
    char h2[HARNESS_PATH_MAX];
    assert_int_equal(harness_home_make(h2, "test-golden"), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/golden/base", h2); /* golden without PG_VERSION */
    assert_int_equal(fs_mkdirs(path, 0700, NULL, &e), 0);
    snprintf(path, sizeof path, "%s/golden.tmp/junk", h2);
    assert_int_equal(fs_mkdirs(path, 0700, NULL, &e), 0);
    engine_config c2 = cfg;
    c2.home = h2;
    engine *x = NULL;
    int rc = engine_open(&c2, &x, &e);
    if (rc < 0)
        fprintf(stderr, "%s\n", e.message);
    assert_int_equal(rc, 0);
    snprintf(path, sizeof path, "%s/golden/PG_VERSION", h2);
    assert_true(fs_exists(path));
    snprintf(path, sizeof path, "%s/golden.tmp", h2);
    assert_false(fs_exists(path));
    engine_close(x);
    assert_int_equal(harness_home_remove(h2), 0);
}

int main(void)
{
    util_init();
    log_set_level(getenv("PGFLEET_TEST_VERBOSE") ? LOG_DEBUG : LOG_WARN);
    srand((unsigned)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scram_verifier),
        cmocka_unit_test(test_roles_and_security),
        cmocka_unit_test(test_adoption_and_destroy),
        cmocka_unit_test(test_stale_pidfile_and_half_copy),
        cmocka_unit_test(test_port_busy),
        cmocka_unit_test(test_create_start_timing),
        cmocka_unit_test(test_golden_redone_when_half_made),
    };
    return HARNESS_RUN("engine", tests, group_setup, group_teardown);
}
