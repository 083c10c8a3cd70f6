/* Unit tests for src/util/proc.c: spawning, capture, timeouts, user switch, fs helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "util/err.h"
#include "util/proc.h"
#include "util/util.h"

static char tmpdir[HARNESS_PATH_MAX];

static int setup(void **state)
{
    (void)state;
    if (harness_home_make(tmpdir, "test-proc") < 0)
        return -1;
    return chmod(tmpdir, 0711);
}

static int teardown(void **state)
{
    (void)state;
    return harness_home_remove(tmpdir);
}

static void test_run_captures_output_and_status(void **state)
{
    (void)state;
    pf_err e;
    char out[256];
    const char *echo[] = {"/bin/echo", "hello", "world", NULL};
    proc_opts o = {.argv = echo};
    assert_int_equal(proc_run(&o, out, sizeof out, 5000, &e), 0);
    assert_string_equal(out, "hello world\n");

    const char *sh[] = {"/bin/sh", "-c", "echo oops >&2; exit 3", NULL};
    proc_opts o2 = {.argv = sh};
    assert_int_equal(proc_run(&o2, out, sizeof out, 5000, &e), 3);
    assert_string_equal(out, "oops\n");

    /* truncated to the buffer, still NUL-terminated */
    char small[4];
    assert_int_equal(proc_run(&o, small, sizeof small, 5000, &e), 0);
    assert_string_equal(small, "hel");
}

static void test_run_minimal_env_and_cwd(void **state)
{
    (void)state;
    pf_err e;
    char out[512];
    const char *sh[] = {"/bin/sh", "-c", "pwd; echo $TZ; echo ${HOME:-nohome}", NULL};
    proc_opts o = {.argv = sh};
    assert_int_equal(proc_run(&o, out, sizeof out, 5000, &e), 0);
    assert_string_equal(out, "/\nUTC\nnohome\n");
    const char *env[] = {"FOO=bar", NULL};
    const char *sh2[] = {"/bin/sh", "-c", "echo $FOO; pwd", NULL};
    proc_opts o2 = {.argv = sh2, .envp = env, .cwd = tmpdir};
    assert_int_equal(proc_run(&o2, out, sizeof out, 5000, &e), 0);
    char want[300];
    snprintf(want, sizeof want, "bar\n%s\n", tmpdir);
    assert_string_equal(out, want);
}

static void test_run_errors(void **state)
{
    (void)state;
    pf_err e;
    err_clear(&e);
    const char *bad[] = {"/nonexistent/prog", NULL};
    proc_opts o = {.argv = bad};
    assert_int_equal(proc_run(&o, NULL, 0, 1000, &e), -1);
    assert_non_null(strstr(e.message, "exec"));

    const char *rel[] = {"echo", NULL};
    proc_opts o2 = {.argv = rel};
    assert_int_equal(proc_start(&o2, &e), -1);

    const char *killed[] = {"/bin/sh", "-c", "kill -9 $$", NULL};
    proc_opts o3 = {.argv = killed};
    assert_int_equal(proc_run(&o3, NULL, 0, 5000, &e), -1);
    assert_non_null(strstr(e.message, "signal 9"));
}

static void test_run_timeout_kills(void **state)
{
    (void)state;
    pf_err e;
    char out[64];
    const char *argv[] = {"/bin/sleep", "10", NULL};
    proc_opts o = {.argv = argv};
    int64_t t0 = util_now_ms();
    assert_int_equal(proc_run(&o, out, sizeof out, 200, &e), -1);
    int64_t dt = util_now_ms() - t0;
    assert_true(dt >= 190 && dt < 2000);
    assert_non_null(strstr(e.message, "timed out"));
}

/* proc_run in one thread, and another thread stops (and so reaps) that child by its command
 * line, as a stop of serve interrupts a running backup: proc_run returns an error at once,
 * instead of waiting for a status that is gone until its timeout. */
typedef struct run_arg {
    int rc;
    int64_t took_ms;
    pf_err e;
} run_arg;

static void *run_long_sleep(void *p)
{
    run_arg *ra = p;
    const char *argv[] = {"/bin/sleep", "37.25", NULL};
    proc_opts o = {.argv = argv};
    int64_t t0 = util_now_ms();
    ra->rc = proc_run(&o, NULL, 0, 60000, &ra->e);
    ra->took_ms = util_now_ms() - t0;
    return NULL;
}

static bool is_long_sleep(const char *const *argv, size_t argc, void *arg)
{
    (void)arg;
    return argc == 2 && strcmp(argv[1], "37.25") == 0;
}

static void test_run_child_reaped_elsewhere(void **state)
{
    (void)state;
    run_arg ra = {0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, run_long_sleep, &ra), 0);
    int stopped = 0;
    for (int i = 0; i < 200 && stopped == 0; i++) {
        usleep(10000);
        stopped = proc_kill_matching("sleep", is_long_sleep, NULL);
    }
    assert_int_equal(stopped, 1);
    pthread_join(t, NULL);
    assert_int_equal(ra.rc, -1);
    assert_true(ra.took_ms < 10000);
    /* whichever thread's waitpid took the status: the stopper's (proc_run learns the child
     * is gone) or proc_run's own poll, which sees the SIGTERM */
    if (!strstr(ra.e.message, "was stopped") && !strstr(ra.e.message, "killed by signal 15"))
        fail_msg("proc_run said: %s", ra.e.message);
}

static void test_no_fd_leak(void **state)
{
    (void)state;
    pf_err e;
    int fd = open("/dev/null", O_RDONLY); /* deliberately without O_CLOEXEC */
    assert_true(fd > 2);
    char want[32];
    snprintf(want, sizeof want, "/proc/self/fd/%d", fd);
    const char *argv[] = {"/usr/bin/test", "-e", want, NULL};
    proc_opts o = {.argv = argv};
    assert_int_equal(proc_run(&o, NULL, 0, 5000, &e), 1); /* not inherited */
    close(fd);
}

static void test_start_session_signal_reap(void **state)
{
    (void)state;
    pf_err e;
    char path[300];
    snprintf(path, sizeof path, "%s/out.log", tmpdir);
    const char *argv[] = {"/bin/sh", "-c", "echo started; exec sleep 30", NULL};
    proc_opts o = {.argv = argv, .output_path = path, .new_session = true};
    pid_t pid = proc_start(&o, &e);
    assert_true(pid > 0);
    assert_true(proc_alive(pid));
    assert_false(proc_reap(pid));
    assert_int_equal(getsid(pid) == pid, 1);
    char *text = NULL;
    for (int i = 0; i < 200; i++) {
        free(text);
        text = fs_read_file(path, NULL);
        if (text && *text)
            break;
        usleep(10000);
    }
    assert_non_null(text);
    assert_string_equal(text, "started\n");
    free(text);
    assert_true(proc_signal_wait(pid, SIGTERM, 5000));
    assert_false(proc_alive(pid));
    /* a pid that does not exist is gone */
    assert_true(proc_signal_wait(pid, SIGTERM, 100));
}

static void test_switch_user(void **state)
{
    (void)state;
    pf_err e;
    proc_user u;
    if (geteuid() != 0) {
        assert_int_equal(proc_user_resolve("postgres", &u, &e), 0);
        assert_false(u.switch_user);
        skip();
    }
    assert_int_equal(proc_user_resolve("no-such-user-pgfleet", &u, &e), -1);
    assert_int_equal(proc_user_resolve("postgres", &u, &e), 0);
    assert_true(u.switch_user);
    assert_string_equal(u.name, "postgres");
    char out[128];
    const char *argv[] = {"/usr/bin/id", "-u", NULL};
    proc_opts o = {.argv = argv, .user = &u};
    assert_int_equal(proc_run(&o, out, sizeof out, 5000, &e), 0);
    char want[32];
    snprintf(want, sizeof want, "%d\n", (int)u.uid);
    assert_string_equal(out, want);
    /* the output file is owned by the user */
    char path[300];
    snprintf(path, sizeof path, "%s/user.log", tmpdir);
    const char *argv2[] = {"/usr/bin/id", "-G", NULL};
    proc_opts o2 = {.argv = argv2, .user = &u, .output_path = path};
    assert_int_equal(proc_run(&o2, NULL, 0, 5000, &e), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_uid, u.uid);
    char *groups = fs_read_file(path, NULL);
    assert_non_null(groups);
    assert_null(strstr(groups, " 0 "));
    assert_int_not_equal(strncmp(groups, "0", 1), 0);
    free(groups);
}

static void test_fs_helpers(void **state)
{
    (void)state;
    pf_err e;
    proc_user u;
    assert_int_equal(proc_user_resolve("postgres", &u, &e), 0);
    char a[300], b[300], f[400], l[400];
    snprintf(a, sizeof a, "%s/src/x/y", tmpdir);
    assert_int_equal(fs_mkdirs(a, 0750, &u, &e), 0);
    assert_int_equal(fs_mkdirs(a, 0750, &u, &e), 0); /* idempotent */
    struct stat st;
    assert_int_equal(stat(a, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0750);
    assert_int_equal(st.st_uid, u.uid);

    snprintf(f, sizeof f, "%s/file", a);
    assert_int_equal(fs_write_atomic(f, "abc", 3, 0640, &u, &e), 0);
    assert_int_equal(fs_write_atomic(f, "hello", 5, 0640, &u, &e), 0);
    size_t len = 0;
    char *text = fs_read_file(f, &len);
    assert_non_null(text);
    assert_int_equal(len, 5);
    assert_string_equal(text, "hello");
    free(text);
    assert_int_equal(stat(f, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_null(fs_read_file("/nonexistent/file", NULL));

    /* a sparse file and a symlink survive the copy */
    snprintf(f, sizeof f, "%s/src/sparse", tmpdir);
    int fd = open(f, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "end", 3, 4 << 20), 3);
    assert_int_equal(pwrite(fd, "start", 5, 0), 5);
    close(fd);
    snprintf(l, sizeof l, "%s/src/link", tmpdir);
    assert_int_equal(symlink("x/y/file", l), 0);

    snprintf(a, sizeof a, "%s/src", tmpdir);
    snprintf(b, sizeof b, "%s/dst", tmpdir);
    assert_int_equal(fs_copy_tree(a, b, &u, &e), 0);
    assert_int_equal(fs_copy_tree(a, b, &u, &e), -1); /* dst must not exist */
    snprintf(f, sizeof f, "%s/dst/x/y/file", tmpdir);
    text = fs_read_file(f, NULL);
    assert_string_equal(text, "hello");
    free(text);
    assert_int_equal(stat(f, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(st.st_uid, u.uid);
    snprintf(f, sizeof f, "%s/dst/x/y", tmpdir);
    assert_int_equal(stat(f, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0750);
    snprintf(f, sizeof f, "%s/dst/sparse", tmpdir);
    assert_int_equal(stat(f, &st), 0);
    assert_int_equal(st.st_size, (4 << 20) + 3);
    assert_true(st.st_blocks * 512 < (1 << 20)); /* holes kept */
    text = fs_read_file(f, &len);
    assert_int_equal(len, (4 << 20) + 3);
    assert_memory_equal(text, "start", 5);
    assert_memory_equal(text + (4 << 20), "end", 3);
    assert_int_equal(text[1000], 0);
    free(text);
    snprintf(f, sizeof f, "%s/dst/link", tmpdir);
    char target[64] = {0};
    assert_int_equal(readlink(f, target, sizeof target - 1), 8);
    assert_string_equal(target, "x/y/file");

    assert_int_equal(fs_remove_tree(b, &e), 0);
    assert_false(fs_exists(b));
    assert_int_equal(fs_remove_tree(b, &e), 0); /* missing is fine */
    assert_true(fs_exists(a));
}

int main(void)
{
    util_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_captures_output_and_status),
        cmocka_unit_test(test_run_minimal_env_and_cwd),
        cmocka_unit_test(test_run_errors),
        cmocka_unit_test(test_run_timeout_kills),
        cmocka_unit_test(test_run_child_reaped_elsewhere),
        cmocka_unit_test(test_no_fd_leak),
        cmocka_unit_test(test_start_session_signal_reap),
        cmocka_unit_test(test_switch_user),
        cmocka_unit_test(test_fs_helpers),
    };
    return HARNESS_RUN("proc", tests, setup, teardown);
}
