/* harness: shared unit-test fixtures and the filtered group runner (see harness.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "util/err.h"
#include "util/proc.h"
#include "util/util.h"
#ifdef HARNESS_STORE
#include "store/store.h"
#endif

int harness_home_make(char dir[HARNESS_PATH_MAX], const char *tag)
{
    snprintf(dir, HARNESS_PATH_MAX, "/tmp/pgfleet-%s-XXXXXX", tag);
    if (!mkdtemp(dir)) {
        perror("harness: mkdtemp");
        dir[0] = '\0';
        return -1;
    }
    return 0;
}

int harness_home_remove(const char *dir)
{
    if (!dir || !dir[0])
        return 0;
    pf_err e;
    err_clear(&e);
    if (fs_remove_tree(dir, &e) < 0) {
        fprintf(stderr, "harness: removing %s: %s\n", dir, e.message);
        return -1;
    }
    return 0;
}

#ifdef HARNESS_STORE
int harness_catalog_open(harness_catalog *c, const char *tag)
{
    c->s = NULL;
    if (harness_home_make(c->dir, tag) < 0)
        return -1;
    snprintf(c->path, sizeof c->path, "%s/catalog.db", c->dir);
    pf_err e;
    err_clear(&e);
    if (store_open(c->path, &c->s, &e) < 0) {
        fprintf(stderr, "harness: store_open %s: %s\n", c->path, e.message);
        harness_home_remove(c->dir);
        c->dir[0] = '\0';
        return -1;
    }
    return 0;
}

void harness_catalog_close(harness_catalog *c)
{
    if (c->s)
        store_close(c->s);
    c->s = NULL;
    harness_home_remove(c->dir);
    c->dir[0] = '\0';
}
#endif

int harness_capture_begin(harness_capture *c, int fd)
{
    snprintf(c->path, sizeof c->path, "/tmp/pgfleet-capture-XXXXXX");
    int tmp = mkstemp(c->path);
    if (tmp < 0) {
        perror("harness: mkstemp");
        return -1;
    }
    fflush(NULL);
    c->fd = fd;
    c->saved = dup(fd);
    if (c->saved < 0 || dup2(tmp, fd) < 0) {
        perror("harness: dup2");
        close(tmp);
        unlink(c->path);
        return -1;
    }
    close(tmp);
    return 0;
}

char *harness_capture_end(harness_capture *c)
{
    fflush(NULL);
    dup2(c->saved, c->fd);
    close(c->saved);
    util_buf b = {0};
    FILE *f = fopen(c->path, "r");
    if (f) {
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
            util_buf_add(&b, chunk, n);
        fclose(f);
    }
    unlink(c->path);
    return util_buf_take(&b);
}

static void filter_from_env(void)
{
    const char *k = getenv("PGFLEET_TEST_FILTER");
    if (k && k[0])
        cmocka_set_test_filter(k);
}

/* Every test program links this file, so the filter applies before main, also to a
 * program that still calls cmocka's runner itself. */
__attribute__((constructor)) static void harness_init(void)
{
    filter_from_env();
}

int harness_run(const char *group, const struct CMUnitTest *tests, size_t n,
                CMFixtureFunction group_setup, CMFixtureFunction group_teardown)
{
    filter_from_env();
    return _cmocka_run_group_tests(group, tests, n, group_setup, group_teardown);
}
