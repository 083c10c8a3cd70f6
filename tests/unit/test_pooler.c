/* Unit tests for src/engine/pooler.c (the generated PgBouncer files, pure functions) and
 * src/engine/tls.c (the private CA and server certificate, with the real openssl CLI). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "engine/engine_int.h"
#include "util/err.h"
#include "util/proc.h"
#include "util/util.h"

#define V1 "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy"
#define V2 "SCRAM-SHA-256$4096:b3RoZXI=$a2V5:a2V5Mg=="

static const engine__pooler_params params = {
    .listen_host = "127.0.0.1",
    .listen_port = 6432,
    .run_dir = "/h/run",
    .pooler_dir = "/h/pooler",
    .tls_cert = "/h/tls/server.crt",
    .tls_key = "/h/tls/server.key",
};

static int count_lines_with(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void test_ini_lists_each_database_by_id(void **state)
{
    (void)state;
    engine_pool_db dbs[] = {{"db_a1", 55000}, {"db_b2", 55001}};
    char *ini = engine__pooler_ini(&params, dbs, 2);
    assert_non_null(strstr(ini, "[databases]\ndb_a1 = host=/h/run/db_a1 port=55000 "
                                "dbname=postgres\ndb_b2 = host=/h/run/db_b2 port=55001 "
                                "dbname=postgres\n"));
    assert_non_null(strstr(ini, "\n[pgbouncer]\n"));
    assert_non_null(strstr(ini, "listen_addr = 127.0.0.1\nlisten_port = 6432\n"));
    assert_non_null(strstr(ini, "pool_mode = transaction\n"));
    assert_non_null(strstr(ini, "auth_type = hba\n"));
    assert_non_null(strstr(ini, "auth_file = /h/pooler/users.txt\n"));
    assert_non_null(strstr(ini, "auth_hba_file = /h/pooler/hba.conf\n"));
    assert_non_null(strstr(ini, "unix_socket_dir = /h/pooler\n"));
    assert_non_null(strstr(ini, "pidfile = /h/pooler/pgbouncer.pid\n"));
    assert_non_null(strstr(ini, "client_tls_sslmode = require\n"));
    assert_non_null(strstr(ini, "client_tls_cert_file = /h/tls/server.crt\n"));
    assert_non_null(strstr(ini, "client_tls_key_file = /h/tls/server.key\n"));
    assert_non_null(strstr(ini, "server_tls_sslmode = disable\n"));
    /* the pool is --pool-size (default 20) server connections per database */
    assert_non_null(strstr(ini, "default_pool_size = 20\nmax_db_connections = 20\n"));
    engine__pooler_params p7 = params;
    p7.pool_size = 7;
    char *ini7 = engine__pooler_ini(&p7, dbs, 2);
    assert_non_null(strstr(ini7, "default_pool_size = 7\nmax_db_connections = 7\n"));
    free(ini7);
    /* what direct clients get: the rest of the budget */
    assert_int_equal(engine_direct_cap(120, 20), 97);
    assert_int_equal(engine_direct_cap(24, 20), 1);
    assert_int_equal(engine_direct_cap(23, 20), 0);
    free(ini);
}

static void test_ini_skips_invalid_entries(void **state)
{
    (void)state;
    engine_pool_db dbs[] = {{"db ok", 55000},         {"../etc", 55001}, {"db_x", 0},
                            {"db_y\nlisten_port", 1}, {"db_z", 70000},   {"db_good", 55002}};
    char *ini = engine__pooler_ini(&params, dbs, 6);
    assert_null(strstr(ini, "db ok"));
    assert_null(strstr(ini, "../etc"));
    assert_null(strstr(ini, "db_x ="));
    assert_null(strstr(ini, "db_y"));
    assert_null(strstr(ini, "db_z"));
    assert_non_null(strstr(ini, "db_good = host=/h/run/db_good port=55002"));
    assert_int_equal(count_lines_with(ini, "listen_port"), 1);
    free(ini);
}

static void test_ini_with_no_database_is_valid(void **state)
{
    (void)state;
    char *ini = engine__pooler_ini(&params, NULL, 0);
    assert_non_null(strstr(ini, "[databases]\n\n[pgbouncer]\n"));
    free(ini);
}

static void test_auth_file_holds_verifiers_only(void **state)
{
    (void)state;
    engine_pool_user users[] = {{"u_one", V1}, {"u_two", V2}};
    char *auth = engine__pooler_auth(users, 2);
    assert_non_null(strstr(auth, "\"u_one\" \"" V1 "\"\n"));
    assert_non_null(strstr(auth, "\"u_two\" \"" V2 "\"\n"));
    /* the admin console's user, for trust over the private socket */
    assert_non_null(strstr(auth, "\"" PGFLEET_ADMIN_ROLE "\" \"\"\n"));
    free(auth);
}

static void test_auth_file_skips_bad_roles_and_plaintext(void **state)
{
    (void)state;
    engine_pool_user users[] = {
        {"u_plain", "hunter2"},           /* a plaintext password never reaches the file */
        {"u_md5", "md5abcdef"},           /* nor anything but a SCRAM verifier */
        {"u\"q", V1},                     /* a quote would end the field */
        {"u sp", V1},                     /* a space */
        {PGFLEET_ADMIN_ROLE, V1},         /* the admin's entry is ours alone */
        {"u_quote", "SCRAM-SHA-256$\"x"}, /* a quote in the verifier */
        {"u_ok", V2},
    };
    char *auth = engine__pooler_auth(users, sizeof users / sizeof users[0]);
    assert_null(strstr(auth, "hunter2"));
    assert_null(strstr(auth, "md5abcdef"));
    assert_null(strstr(auth, "u\"q"));
    assert_null(strstr(auth, "u sp"));
    assert_null(strstr(auth, "u_quote"));
    assert_int_equal(count_lines_with(auth, PGFLEET_ADMIN_ROLE), 1);
    assert_non_null(strstr(auth, "\"u_ok\" \"" V2 "\"\n"));
    free(auth);
}

static void test_hba_refuses_plaintext_and_admin_over_tcp(void **state)
{
    (void)state;
    char *hba = engine__pooler_hba(false);
    /* first match wins: the admin console only over the socket; no plaintext TCP */
    const char *admin = strstr(hba, "local      pgbouncer  " PGFLEET_ADMIN_ROLE "  trust");
    const char *admin_tcp = strstr(hba, "host       all        " PGFLEET_ADMIN_ROLE "  0.0.0.0/0");
    const char *console_tcp =
        strstr(hba, "host       pgbouncer  all            0.0.0.0/0     reject");
    const char *nossl = strstr(hba, "hostnossl  all        all            0.0.0.0/0     reject");
    const char *scram =
        strstr(hba, "hostssl    all        all            0.0.0.0/0     scram-sha-256");
    assert_non_null(admin);
    assert_non_null(nossl);
    assert_non_null(admin_tcp);
    assert_non_null(console_tcp);
    assert_non_null(scram);
    assert_true(admin < admin_tcp && admin_tcp < console_tcp && console_tcp < nossl &&
                nossl < scram);
    assert_null(strstr(hba, "trust\nhost"));
    assert_null(strstr(hba, "hostnossl  all        all            127.0.0.0/8"));
    free(hba);
}

static void test_hba_loopback_optional_lets_plaintext_in_from_loopback_only(void **state)
{
    (void)state;
    char *hba = engine__pooler_hba(true);
    const char *console_tcp =
        strstr(hba, "host       pgbouncer  all            ::/0          reject");
    const char *lo4 =
        strstr(hba, "hostnossl  all        all            127.0.0.0/8   scram-sha-256");
    const char *lo6 =
        strstr(hba, "hostnossl  all        all            ::1/128       scram-sha-256");
    const char *nossl = strstr(hba, "hostnossl  all        all            0.0.0.0/0     reject");
    assert_non_null(console_tcp);
    assert_non_null(lo4);
    assert_non_null(lo6);
    assert_non_null(nossl);
    assert_true(console_tcp < lo4 && lo4 < lo6 && lo6 < nossl);
    free(hba);
    engine__pooler_params p = params;
    p.loopback_optional = true;
    char *ini = engine__pooler_ini(&p, NULL, 0);
    assert_non_null(strstr(ini, "client_tls_sslmode = allow\n"));
    free(ini);
}

/* ---- tls.c, with the real openssl ---- */

static char tmpl[HARNESS_PATH_MAX];

static int verify(const char *dir, const char *host)
{
    char *ca = xasprintf("%s/tls/ca.crt", dir);
    char *crt = xasprintf("%s/tls/server.crt", dir);
    const char *argv[] = {"/usr/bin/openssl", "verify", "-CAfile", ca,
                          "-verify_hostname", host,     crt,       NULL};
    if (strchr(host, ':') || (strchr(host, '.') && strspn(host, "0123456789.") == strlen(host)))
        argv[4] = "-verify_ip";
    proc_opts o = {.argv = argv};
    char out[1024];
    pf_err e;
    int rc = proc_run(&o, out, sizeof out, 10000, &e);
    free(ca);
    free(crt);
    return rc;
}

static void fake_engine(engine *en, const char *home)
{
    memset(en, 0, sizeof *en);
    en->home = xstrdup(home);
    pf_err e;
    assert_int_equal(proc_user_resolve("postgres", &en->user, &e), 0);
}

static void test_tls_makes_ca_and_server_cert_once(void **state)
{
    (void)state;
    assert_int_equal(harness_home_make(tmpl, "tls"), 0);
    engine en;
    fake_engine(&en, tmpl);
    engine_config cfg = {.tls_host = "127.0.0.1"};
    pf_err e;
    err_clear(&e);
    assert_int_equal(engine__tls_ensure(&en, &cfg, &e), 0);
    assert_non_null(engine_tls_ca_path(&en));
    /* the names a local client uses: localhost, both loopback addresses */
    assert_int_equal(verify(tmpl, "127.0.0.1"), 0);
    assert_int_equal(verify(tmpl, "localhost"), 0);
    assert_int_equal(verify(tmpl, "::1"), 0);
    assert_int_not_equal(verify(tmpl, "db.example.test"), 0);
    struct stat st;
    assert_int_equal(stat(en.tls_key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    if (en.user.switch_user)
        assert_int_equal(st.st_uid, en.user.uid);
    char *ca_key = xasprintf("%s/tls/ca.key", tmpl);
    assert_int_equal(stat(ca_key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    struct stat crt1;
    assert_int_equal(stat(en.tls_cert, &crt1), 0);
    engine__tls_free(&en);

    /* same host: nothing is made again */
    assert_int_equal(engine__tls_ensure(&en, &cfg, &e), 0);
    struct stat crt2;
    assert_int_equal(stat(en.tls_cert, &crt2), 0);
    assert_int_equal(crt1.st_ino, crt2.st_ino);
    engine__tls_free(&en);

    /* another public host: a new server certificate from the same CA */
    struct stat ca1, ca2;
    assert_int_equal(stat(ca_key, &ca1), 0);
    cfg.tls_host = "db.example.test";
    assert_int_equal(engine__tls_ensure(&en, &cfg, &e), 0);
    assert_int_equal(stat(ca_key, &ca2), 0);
    assert_int_equal(ca1.st_ino, ca2.st_ino);
    assert_int_equal(verify(tmpl, "db.example.test"), 0);
    assert_int_equal(verify(tmpl, "localhost"), 0);
    engine__tls_free(&en);

    /* a host that cannot name a certificate is refused */
    cfg.tls_host = "bad host/x";
    assert_int_equal(engine__tls_ensure(&en, &cfg, &e), -1);
    engine__tls_free(&en);
    free(ca_key);
    free(en.home);
    harness_home_remove(tmpl);
}

/* A self-signed pair made with the openssl CLI at crt and key. */
static void make_pair(const char *crt, const char *key, const char *cn)
{
    char *subj = xasprintf("/CN=%s", cn);
    const char *argv[] = {"/usr/bin/openssl",
                          "req",
                          "-x509",
                          "-newkey",
                          "ec",
                          "-pkeyopt",
                          "ec_paramgen_curve:prime256v1",
                          "-nodes",
                          "-keyout",
                          key,
                          "-out",
                          crt,
                          "-days",
                          "2",
                          "-subj",
                          subj,
                          NULL};
    proc_opts o = {.argv = argv};
    char out[2048];
    pf_err e;
    assert_int_equal(proc_run(&o, out, sizeof out, 30000, &e), 0);
    free(subj);
}

static void test_tls_uses_given_cert(void **state)
{
    (void)state;
    assert_int_equal(harness_home_make(tmpl, "tls"), 0);
    engine en;
    fake_engine(&en, tmpl);
    char *crt = xasprintf("%s/given.crt", tmpl);
    char *key = xasprintf("%s/given.key", tmpl);
    char *crt2 = xasprintf("%s/other.crt", tmpl);
    char *key2 = xasprintf("%s/other.key", tmpl);
    make_pair(crt, key, "one.example.test");
    make_pair(crt2, key2, "two.example.test");
    engine_config cfg = {.tls_host = "127.0.0.1", .tls_cert = crt, .tls_key = key};
    pf_err e;
    assert_int_equal(engine__tls_ensure(&en, &cfg, &e), 0);
    assert_null(engine_tls_ca_path(&en)); /* no CA given: none to publish */
    char *want = fs_read_file(key, NULL);
    char *got = fs_read_file(en.tls_key, NULL);
    assert_string_equal(got, want);
    free(got);
    free(want);
    assert_false(engine_tls_given_changed(&en));
    bool changed = true;
    assert_int_equal(engine__tls_refresh(&en, &changed, &e), 0);
    assert_false(changed);

    /* a renewal half written (a new certificate, the old key) is not taken */
    size_t len = 0;
    char *text = fs_read_file(crt2, &len);
    fs_write_atomic(crt, text, len, 0644, NULL, NULL);
    free(text);
    assert_true(engine_tls_given_changed(&en));
    assert_int_equal(engine__tls_refresh(&en, &changed, &e), -1);
    assert_non_null(strstr(e.message, "does not belong"));
    /* the key arrives: both are taken */
    text = fs_read_file(key2, &len);
    fs_write_atomic(key, text, len, 0600, NULL, NULL);
    free(text);
    assert_int_equal(engine__tls_refresh(&en, &changed, &e), 0);
    assert_true(changed);
    assert_false(engine_tls_given_changed(&en));
    engine__tls_free(&en);

    cfg.tls_key = NULL; /* one without the other */
    assert_int_equal(engine__tls_ensure(&en, &cfg, &e), -1);
    engine__tls_free(&en);
    cfg.tls_key = key2;
    cfg.tls_cert = xasprintf("%s/missing.crt", tmpl);
    assert_int_equal(engine__tls_ensure(&en, &cfg, &e), -1);
    engine__tls_free(&en);
    free((char *)cfg.tls_cert);
    free(crt);
    free(key);
    free(crt2);
    free(key2);
    free(en.home);
    harness_home_remove(tmpl);
}

int main(void)
{
    util_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ini_lists_each_database_by_id),
        cmocka_unit_test(test_ini_skips_invalid_entries),
        cmocka_unit_test(test_ini_with_no_database_is_valid),
        cmocka_unit_test(test_auth_file_holds_verifiers_only),
        cmocka_unit_test(test_auth_file_skips_bad_roles_and_plaintext),
        cmocka_unit_test(test_hba_refuses_plaintext_and_admin_over_tcp),
        cmocka_unit_test(test_hba_loopback_optional_lets_plaintext_in_from_loopback_only),
        cmocka_unit_test(test_tls_makes_ca_and_server_cert_once),
        cmocka_unit_test(test_tls_uses_given_cert),
    };
    return HARNESS_RUN("pooler", tests, NULL, NULL);
}
