/* Unit tests for src/http: route matching, the error envelope, and a live server on a
 * loopback port: HEAD, the header checks and body caps, deadlines a trickle cannot extend,
 * waiting answers (arm, wake, then) and a stop that answers them. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "harness.h"
#include "http/http.h"

static void test_match_literal_and_params(void **state)
{
    (void)state;
    char buf[256];
    const char *p[HTTP_MAX_PARAMS];
    int n = -1;
    assert_true(http_match("/v1/databases", "/v1/databases", buf, sizeof buf, p, &n));
    assert_int_equal(n, 0);
    assert_true(http_match("/v1/databases/{databaseId}/connections",
                           "/v1/databases/db_abc/connections", buf, sizeof buf, p, &n));
    assert_int_equal(n, 1);
    assert_string_equal(p[0], "db_abc");
    /* a trailing slash is tolerated */
    assert_true(http_match("/v1/databases/{id}", "/v1/databases/db_x/", buf, sizeof buf, p, &n));
    assert_string_equal(p[0], "db_x");
}

static void test_match_rejects(void **state)
{
    (void)state;
    char buf[256];
    const char *p[HTTP_MAX_PARAMS];
    int n = 0;
    assert_false(http_match("/v1/databases", "/v1/databasesx", buf, sizeof buf, p, &n));
    assert_false(http_match("/v1/databases/{id}", "/v1/databases/", buf, sizeof buf, p, &n));
    assert_false(http_match("/v1/databases/{id}", "/v1/databases/a/b", buf, sizeof buf, p, &n));
    assert_false(http_match("/v1/connections/{id}/rotate", "/v1/connections/c/rotatex", buf,
                            sizeof buf, p, &n));
    /* a parameter longer than the buffer does not match (and does not overflow) */
    char longpath[600] = "/v1/databases/";
    memset(longpath + strlen(longpath), 'a', 500);
    longpath[514] = '\0';
    assert_false(http_match("/v1/databases/{id}", longpath, buf, 64, p, &n));
}

static void test_error_envelope(void **state)
{
    (void)state;
    pf_err e;
    err_set(&e, 404, "NotFound", "databaseId", "Database %s was not found", "db_x");
    json_t *j = http_error_json(&e);
    json_t *err = json_object_get(j, "error");
    assert_non_null(err);
    assert_string_equal(json_string_value(json_object_get(err, "code")), "NotFound");
    assert_string_equal(json_string_value(json_object_get(err, "message")),
                        "Database db_x was not found");
    assert_string_equal(json_string_value(json_object_get(err, "hint")), "databaseId");
    json_decref(j);

    /* no hint: the key is absent, as the contract's optional hint */
    err_set(&e, 401, "Unauthorized", NULL, "Missing authorization token");
    j = http_error_json(&e);
    assert_null(json_object_get(json_object_get(j, "error"), "hint"));
    json_decref(j);
}

static void test_error_envelope_invalid_utf8(void **state)
{
    (void)state;
    pf_err e;
    err_set(&e, 404, "NotFound", "id", "Project %s was not found", "\xff\xfe ok \xc3\xa9");
    json_t *j = http_error_json(&e);
    const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    assert_non_null(m);
    assert_string_equal(m, "Project ?? ok \xc3\xa9 was not found");
    json_decref(j);
}

/* ---- a live server ---- */

static http_waker *parked; /* the waiting answer of GET /wait */
static int then_calls;

static int h_hello(void *app, http_req *req, http_resp *resp, pf_err *e)
{
    (void)app;
    (void)req;
    (void)e;
    resp->body = json_pack("{s:b}", "ok", 1);
    return 0;
}

static int h_echo(void *app, http_req *req, http_resp *resp, pf_err *e)
{
    (void)app;
    (void)e;
    resp->body = json_pack("{s:I}", "len", (json_int_t)req->body_len);
    return 0;
}

static int wait_arm(void *app, void *arg, http_waker *w, pf_err *e)
{
    (void)app;
    (void)arg;
    (void)e;
    __atomic_store_n(&parked, w, __ATOMIC_SEQ_CST);
    return 0;
}

static int wait_then(void *app, void *arg, http_resp *resp, pf_err *e)
{
    (void)app;
    (void)e;
    __atomic_add_fetch(&then_calls, 1, __ATOMIC_SEQ_CST);
    assert_string_equal((const char *)arg, "the arg");
    resp->status = 201;
    return 0;
}

static int h_wait(void *app, http_req *req, http_resp *resp, pf_err *e)
{
    (void)app;
    (void)req;
    (void)e;
    resp->body = json_pack("{s:s}", "waited", "yes");
    http_resp_wait(resp,
                   &(struct http_wait){
                       .arm = wait_arm, .then = wait_then, .free = free, .arg = strdup("the arg")});
    return 0;
}

static const http_route test_routes[] = {
    {"GET", "/hello", h_hello, HTTP_PUBLIC},
    {"POST", "/echo", h_echo, HTTP_PUBLIC},
    {"GET", "/wait", h_wait, HTTP_PUBLIC | HTTP_HEAVY},
};

static http_server *start(int *port, http_limits lim)
{
    int fd = -1;
    pf_err e;
    assert_int_equal(http_listen("127.0.0.1", 0, &fd, &e), 0);
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    *port = ntohs(sa.sin_port);
    http_config cfg = {.host = "127.0.0.1",
                       .port = *port,
                       .listen_fd = fd,
                       .routes = test_routes,
                       .nroutes = sizeof test_routes / sizeof test_routes[0],
                       .limits = lim};
    http_server *s = NULL;
    assert_int_equal(http_start(&cfg, &s, &e), 0);
    return s;
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static void say(int fd, const char *text)
{
    assert_int_equal(send(fd, text, strlen(text), MSG_NOSIGNAL), (ssize_t)strlen(text));
}

/* Reads what comes within ms (or until the peer closes); *closed tells which. */
static char *hear(int fd, int ms, bool *closed)
{
    static char buf[65536];
    size_t n = 0;
    *closed = false;
    int64_t until = util_now_ms() + ms;
    while (n + 1 < sizeof buf) {
        int left = (int)(until - util_now_ms());
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        ssize_t r = recv(fd, buf + n, sizeof buf - 1 - n, 0);
        if (r <= 0) {
            *closed = true;
            break;
        }
        n += (size_t)r;
        /* a whole small answer: stop early when Content-Length bytes came */
        buf[n] = '\0';
        char *hdr_end = strstr(buf, "\r\n\r\n");
        char *cl = strcasestr(buf, "content-length:");
        if (hdr_end && cl && cl < hdr_end &&
            n >= (size_t)(hdr_end + 4 - buf) + strtoul(cl + 15, NULL, 10))
            break;
    }
    buf[n] = '\0';
    return buf;
}

static void test_server_get_head_and_checks(void **state)
{
    (void)state;
    int port;
    http_server *s = start(&port, (http_limits){.body_max = 4096, .workers = 2});
    bool closed;
    int fd = dial(port);
    say(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    char *r = hear(fd, 3000, &closed);
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    assert_non_null(strstr(r, "{\"ok\":true}"));
    /* HEAD on the same keep-alive connection: same headers, no body */
    say(fd, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    r = hear(fd, 1000, &closed);
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    assert_non_null(strcasestr(r, "Content-Length: 11"));
    assert_null(strstr(r, "{\"ok\""));
    close(fd);
    /* HTTP/1.1 without Host */
    fd = dial(port);
    say(fd, "GET /hello HTTP/1.1\r\n\r\n");
    r = hear(fd, 3000, &closed);
    assert_non_null(strstr(r, "HTTP/1.1 400"));
    close(fd);
    /* 413 from Content-Length, before a byte of the body */
    fd = dial(port);
    say(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
    r = hear(fd, 3000, &closed);
    assert_non_null(strstr(r, "HTTP/1.1 413"));
    assert_non_null(strstr(r, "PayloadTooLarge"));
    close(fd);
    /* a little past the cap: dropped as it comes, then 413 (no reset before the answer) */
    fd = dial(port);
    say(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n");
    static char pad[5001];
    memset(pad, 'a', 5000);
    say(fd, pad);
    r = hear(fd, 3000, &closed);
    assert_non_null(strstr(r, "HTTP/1.1 413"));
    close(fd);
    fd = dial(port);
    say(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1388\r\n");
    say(fd, pad);
    say(fd, "\r\n0\r\n\r\n");
    r = hear(fd, 3000, &closed);
    assert_non_null(strstr(r, "HTTP/1.1 413"));
    close(fd);
    /* with Expect: 100-continue, at once */
    fd = dial(port);
    say(fd,
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n");
    r = hear(fd, 3000, &closed);
    assert_non_null(strstr(r, "HTTP/1.1 413"));
    assert_null(strstr(r, "100 Continue"));
    close(fd);
    /* a body within the cap */
    fd = dial(port);
    say(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    r = hear(fd, 3000, &closed);
    assert_non_null(strstr(r, "{\"len\":5}"));
    close(fd);
    /* a chunked body far past the cap: cut, never read to its end */
    fd = dial(port);
    say(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[1100];
    snprintf(chunk, sizeof chunk, "3e8\r\n%01000d\r\n", 0);
    for (int i = 0; i < 64; i++)
        if (send(fd, chunk, strlen(chunk), MSG_NOSIGNAL) < 0)
            break;
    r = hear(fd, 3000, &closed);
    assert_true(strstr(r, "HTTP/1.1 413") != NULL || closed);
    assert_null(strstr(r, "\"len\""));
    close(fd);
    http_stop(s);
}

static void test_server_header_deadline(void **state)
{
    (void)state;
    int port;
    http_server *s = start(&port, (http_limits){.header_ms = 1000, .idle_ms = 30000});
    int fd = dial(port);
    int64_t t0 = util_now_ms();
    const char *req =
        "GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    bool closed = false;
    for (size_t i = 0; req[i] && !closed; i++) {
        if (send(fd, req + i, 1, MSG_NOSIGNAL) < 0)
            break;
        hear(fd, 150, &closed); /* one byte every 150 ms: never idle for long */
    }
    int64_t took = util_now_ms() - t0;
    assert_true(closed);
    assert_true(took >= 900 && took < 3000);
    close(fd);
    http_stop(s);
}

static void test_server_wait_then_and_stop(void **state)
{
    (void)state;
    int port;
    http_server *s = start(&port, (http_limits){.workers = 1, .heavy_max = 1});
    bool closed;
    int fw = dial(port);
    say(fw, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n");
    while (!__atomic_load_n(&parked, __ATOMIC_SEQ_CST))
        usleep(1000);
    /* the only worker is free: another request is answered while the first waits */
    int fd = dial(port);
    say(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    char *r = hear(fd, 3000, &closed);
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    close(fd);
    r = hear(fw, 200, &closed);
    assert_int_equal(strlen(r), 0);
    http_waker *w = parked;
    parked = NULL;
    http_wake(w);
    r = hear(fw, 3000, &closed);
    assert_non_null(strstr(r, "HTTP/1.1 201"));
    assert_non_null(strstr(r, "{\"waited\":\"yes\"}"));
    assert_int_equal(then_calls, 1);
    /* a stop answers a waiting request 503; the late wake only drops its reference */
    say(fw, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n");
    while (!__atomic_load_n(&parked, __ATOMIC_SEQ_CST))
        usleep(1000);
    http_stop(s);
    r = hear(fw, 3000, &closed);
    assert_non_null(strstr(r, "HTTP/1.1 503"));
    assert_non_null(strcasestr(r, "Retry-After:"));
    http_wake(parked);
    parked = NULL;
    assert_int_equal(then_calls, 1);
    close(fw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_literal_and_params),
        cmocka_unit_test(test_match_rejects),
        cmocka_unit_test(test_error_envelope),
        cmocka_unit_test(test_error_envelope_invalid_utf8),
        cmocka_unit_test(test_server_get_head_and_checks),
        cmocka_unit_test(test_server_header_deadline),
        cmocka_unit_test(test_server_wait_then_and_stop),
    };
    return HARNESS_RUN("http", tests, NULL, NULL);
}
