/* cli/http: the API over libcurl, and where the server and token come from: PGFLEET_URL and
 * PGFLEET_TOKEN, else the file `pgfleet login` writes ($XDG_CONFIG_HOME/pgfleet/config, mode
 * 0600). A token is never taken from argv (ps and shell history would show it) and is sent
 * only over HTTPS, or plain HTTP to a loopback address. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli_int.h"
#include "util/proc.h"
#include "util/util.h"

static bool loopback_host(const char *h)
{
    return strcmp(h, "localhost") == 0 || strncmp(h, "127.", 4) == 0 || strcmp(h, "[::1]") == 0 ||
           strcmp(h, "::1") == 0;
}

bool cli__url_ok(const char *url, char *why, size_t n)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    bool ok = false;
    if (!u)
        abort();
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        snprintf(why, n, "'%s' is not a URL like https://pgfleet.example.com", url);
    } else if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0) {
        snprintf(why, n, "the URL must be https:// (or http:// on loopback), not %s://", scheme);
    } else if (strcmp(scheme, "http") == 0 && !loopback_host(host)) {
        snprintf(why, n,
                 "%s is not a loopback address: its URL must be https:// (a token is never sent "
                 "in clear text over a network)",
                 host);
    } else {
        ok = true;
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

bool cli__config_dir(char *out, size_t n)
{
    const char *x = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    if (x && x[0] == '/')
        snprintf(out, n, "%s/pgfleet", x);
    else if (home && home[0] == '/')
        snprintf(out, n, "%s/.config/pgfleet", home);
    else
        return false;
    return true;
}

/* Reads "key = value" lines of the config into conn (unknown keys are ignored). */
static void config_parse(char *text, cli_conn *conn)
{
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *eq = strchr(line, '=');
        if (!eq || line[0] == '#')
            continue;
        char *k = line, *v = eq + 1, *ke = eq;
        while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t'))
            ke--;
        *ke = '\0';
        while (*v == ' ' || *v == '\t')
            v++;
        size_t vl = strlen(v);
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\r'))
            v[--vl] = '\0';
        if (strcmp(k, "url") == 0)
            snprintf(conn->url, sizeof conn->url, "%s", v);
        else if (strcmp(k, "token") == 0)
            snprintf(conn->token, sizeof conn->token, "%s", v);
        else if (strcmp(k, "cacert") == 0)
            snprintf(conn->cacert, sizeof conn->cacert, "%s", v);
    }
}

static void strip_slash(char *url)
{
    size_t l = strlen(url);
    while (l && url[l - 1] == '/')
        url[--l] = '\0';
}

int cli__conn_load(cli_ctx *c)
{
    cli_conn *conn = &c->conn;
    memset(conn, 0, sizeof *conn);
    char dir[900], path[1024];
    if (cli__config_dir(dir, sizeof dir)) {
        snprintf(path, sizeof path, "%s/config", dir);
        char *text = fs_read_file(path, NULL);
        if (text) {
            config_parse(text, conn);
            memset(text, 0, strlen(text));
            free(text);
        }
    }
    const char *eu = getenv("PGFLEET_URL"), *et = getenv("PGFLEET_TOKEN"),
               *ec = getenv("PGFLEET_CACERT");
    if (eu && *eu)
        snprintf(conn->url, sizeof conn->url, "%s", eu);
    if (et && *et)
        snprintf(conn->token, sizeof conn->token, "%s", et);
    if (ec && *ec)
        snprintf(conn->cacert, sizeof conn->cacert, "%s", ec);
    strip_slash(conn->url);
    if (!conn->url[0] || !conn->token[0]) {
        fprintf(stderr, "pgfleet: no server to talk to: run `pgfleet login --url URL`, or set "
                        "PGFLEET_URL and PGFLEET_TOKEN\n");
        return CLI_EXIT_OTHER;
    }
    char why[512];
    if (!cli__url_ok(conn->url, why, sizeof why)) {
        fprintf(stderr, "pgfleet: %s\n", why);
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

char *cli__esc(const char *id)
{
    char *e = curl_easy_escape(NULL, id, 0);
    if (!e)
        abort();
    char *out = xstrdup(e);
    curl_free(e);
    return out;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    util_buf *b = arg;
    size_t n = size * nmemb;
    if (b->len + n > (64u << 20))
        return 0; /* a runaway answer: stop it */
    util_buf_add(b, ptr, n);
    return n;
}

static int exit_for(long status)
{
    if (status >= 200 && status < 300)
        return CLI_EXIT_OK;
    if (status == 404)
        return CLI_EXIT_NOT_FOUND;
    if (status == 409)
        return CLI_EXIT_CONFLICT;
    if (status >= 500 || status == 0)
        return CLI_EXIT_SERVER;
    return CLI_EXIT_OTHER;
}

int cli__call(const cli_conn *conn, const char *method, const char *path, json_t *body, bool quiet,
              long *status, json_t **out)
{
    *out = NULL;
    *status = 0;
    CURL *h = curl_easy_init();
    if (!h)
        abort();
    util_buf resp = {0};
    char *url = xasprintf("%s%s", conn->url, path);
    char *auth = xasprintf("Authorization: Bearer %s", conn->token);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct curl_slist *hdrs = curl_slist_append(NULL, auth);
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (text)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "pgfleet-cli");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
    if (conn->cacert[0])
        curl_easy_setopt(h, CURLOPT_CAINFO, conn->cacert);
    if (text) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
    }
    int rc;
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        if (!quiet)
            fprintf(stderr, "pgfleet: %s %s: %s\n", method, conn->url, curl_easy_strerror(cc));
        rc = CLI_EXIT_SERVER;
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    json_t *j = resp.len ? json_loadb(resp.s, resp.len, 0, NULL) : NULL;
    rc = exit_for(*status);
    if (rc == CLI_EXIT_OK) {
        if (resp.len && !j) {
            if (!quiet)
                fprintf(stderr, "pgfleet: %s %s: the answer is not JSON\n", method, path);
            rc = CLI_EXIT_SERVER;
        }
        *out = j;
        goto out;
    }
    json_t *err = json_object_get(j, "error");
    const char *msg = json_string_value(json_object_get(err, "message"));
    const char *hint = json_string_value(json_object_get(err, "hint"));
    if (!quiet) {
        if (msg)
            fprintf(stderr, "pgfleet: %s%s%s%s\n", msg, hint ? " (hint: " : "", hint ? hint : "",
                    hint ? ")" : "");
        else
            fprintf(stderr, "pgfleet: %s %s: HTTP %ld\n", method, path, *status);
    }
    json_decref(j);
out:
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    memset(auth, 0, strlen(auth));
    free(auth);
    free(url);
    free(text);
    util_buf_free(&resp);
    return rc;
}

/* Reads the token: one line of stdin, or on a terminal a prompt with echo off. */
static bool read_token(char *out, size_t n)
{
    bool tty = isatty(STDIN_FILENO);
    struct termios old, quiet;
    if (tty) {
        fprintf(stderr, "Token: ");
        fflush(stderr);
        if (tcgetattr(STDIN_FILENO, &old) == 0) {
            quiet = old;
            quiet.c_lflag &= ~(tcflag_t)ECHO;
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        } else {
            tty = false;
        }
    }
    bool got = fgets(out, (int)n, stdin) != NULL;
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (!got)
        return false;
    size_t l = strlen(out);
    while (l && (out[l - 1] == '\n' || out[l - 1] == '\r' || out[l - 1] == ' '))
        out[--l] = '\0';
    return l > 0;
}

int cli__login(cli_ctx *c)
{
    const char *url = c->val[FL_URL];
    if (!url)
        return cli__usage_error("login needs --url URL");
    char why[512];
    if (!cli__url_ok(url, why, sizeof why)) {
        fprintf(stderr, "pgfleet: %s\n", why);
        return CLI_EXIT_USAGE;
    }
    cli_conn *conn = &c->conn;
    memset(conn, 0, sizeof *conn);
    snprintf(conn->url, sizeof conn->url, "%s", url);
    strip_slash(conn->url);
    if (c->val[FL_CACERT] && !realpath(c->val[FL_CACERT], conn->cacert)) {
        fprintf(stderr, "pgfleet: --cacert %s: %s\n", c->val[FL_CACERT], strerror(errno));
        return CLI_EXIT_USAGE;
    }
    if (!read_token(conn->token, sizeof conn->token)) {
        fprintf(stderr, "pgfleet: no token on standard input\n");
        return CLI_EXIT_USAGE;
    }
    long status;
    json_t *me = NULL;
    int rc = cli__call(conn, "GET", "/v1/workspaces", NULL, false, &status, &me);
    if (rc != CLI_EXIT_OK)
        return rc;
    json_t *ws = json_array_get(json_object_get(me, "data"), 0);
    char dir[900], path[1024];
    if (!cli__config_dir(dir, sizeof dir)) {
        json_decref(me);
        fprintf(stderr, "pgfleet: neither XDG_CONFIG_HOME nor HOME is set\n");
        return CLI_EXIT_OTHER;
    }
    pf_err e;
    err_clear(&e);
    util_buf b = {0};
    util_buf_printf(&b,
                    "# written by pgfleet login: the token is a secret (mode 0600)\n"
                    "url = %s\ntoken = %s\n",
                    conn->url, conn->token);
    if (conn->cacert[0])
        util_buf_printf(&b, "cacert = %s\n", conn->cacert);
    snprintf(path, sizeof path, "%s/config", dir);
    rc = fs_mkdirs(dir, 0700, NULL, &e) == 0 &&
                 fs_write_atomic(path, b.s, b.len, 0600, NULL, &e) == 0 && chmod(path, 0600) == 0
             ? CLI_EXIT_OK
             : CLI_EXIT_OTHER;
    memset(b.s, 0, b.len);
    util_buf_free(&b);
    if (rc != CLI_EXIT_OK)
        fprintf(stderr, "pgfleet: cannot write %s: %s\n", path,
                e.message[0] ? e.message : strerror(errno));
    else
        fprintf(stderr, "pgfleet: logged in to %s (workspace %s); saved in %s\n", conn->url,
                cli__str(json_object_get(ws, "id"), "?"), path);
    json_decref(me);
    memset(conn->token, 0, sizeof conn->token);
    return rc;
}

int cli__logout(cli_ctx *c)
{
    (void)c;
    char dir[900], path[1024];
    if (!cli__config_dir(dir, sizeof dir))
        return CLI_EXIT_OK;
    snprintf(path, sizeof path, "%s/config", dir);
    if (unlink(path) != 0 && errno != ENOENT) {
        fprintf(stderr, "pgfleet: cannot remove %s: %s\n", path, strerror(errno));
        return CLI_EXIT_OTHER;
    }
    fprintf(stderr, "pgfleet: logged out (%s removed)\n", path);
    return CLI_EXIT_OK;
}
