/* harness: the fixtures unit tests share, and the one way every test program runs.
 *
 * - harness_home_*: a temporary directory under /tmp, removed with everything in it.
 * - harness_catalog_*: a fresh catalog (store_open) in its own temporary home; only for
 *   test programs linked with src/store (the Makefile defines HARNESS_STORE for them).
 * - harness_capture_*: what a piece of code writes to a file descriptor (log lines).
 * - harness_run: cmocka's group runner. PGFLEET_TEST_FILTER (a cmocka pattern with '*'
 *   and '?', set by `make unit K=...`) picks the cases to run; it is applied before main
 *   (a constructor here), so it holds for every test program, converted or not.
 *
 * Adopting it in a test file: include "harness.h" after <cmocka.h>, replace a
 * mkdtemp/unlink/rmdir fixture by harness_home_make/harness_home_remove (or a
 * harness_catalog), and `return cmocka_run_group_tests_name(...)` by
 * `return HARNESS_RUN("name", tests, group_setup, group_teardown);`. */
#ifndef PF_TESTS_HARNESS_H
#define PF_TESTS_HARNESS_H

#include <stddef.h>

#define HARNESS_PATH_MAX 128

/* Creates /tmp/pgfleet-<tag>-XXXXXX into dir (HARNESS_PATH_MAX bytes); 0 or -1 (with a
 * line on stderr). */
int harness_home_make(char dir[HARNESS_PATH_MAX], const char *tag);
/* Removes dir and everything under it; 0 or -1. A NULL or empty dir is a no-op. */
int harness_home_remove(const char *dir);

/* A catalog in its own temporary home: dir, dir/catalog.db, the open store. */
struct store;
typedef struct harness_catalog {
    char dir[HARNESS_PATH_MAX];
    char path[HARNESS_PATH_MAX + 16];
    struct store *s;
} harness_catalog;

/* Makes the home and opens the catalog in it; 0 or -1 (with a line on stderr). */
int harness_catalog_open(harness_catalog *c, const char *tag);
/* Closes the store (if open) and removes the home. */
void harness_catalog_close(harness_catalog *c);

/* Captures what is written to fd (e.g. STDERR_FILENO: log lines) between begin and end;
 * end restores fd and returns the text (the caller frees it). */
typedef struct harness_capture {
    int fd, saved;
    char path[HARNESS_PATH_MAX];
} harness_capture;
int harness_capture_begin(harness_capture *c, int fd);
char *harness_capture_end(harness_capture *c);

/* Runs the group like cmocka_run_group_tests_name, after applying PGFLEET_TEST_FILTER. */
int harness_run(const char *group, const struct CMUnitTest *tests, size_t n,
                CMFixtureFunction group_setup, CMFixtureFunction group_teardown);
#define HARNESS_RUN(group, tests, group_setup, group_teardown)                                     \
    harness_run(group, tests, sizeof(tests) / sizeof((tests)[0]), group_setup, group_teardown)

#endif
