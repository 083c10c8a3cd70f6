/* cli/psql: `pgfleet psql DB [-- ARGS]`. pgfleet keeps only SCRAM verifiers, so there is no
 * password to hand out: this makes a short-lived connection of the database, runs psql with
 * that connection's password in its environment (PGPASSWORD, never on a command line where
 * ps would show it) and deletes the connection when psql exits. Should pgfleet itself be
 * killed first, the connection is listed in <config dir>/psql-connections with the pid of
 * the pgfleet that made it; the next pgfleet command against that server deletes every
 * connection listed there whose pgfleet is gone (cli__psql_cleanup). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli_int.h"
#include "util/proc.h"
#include "util/util.h"

extern char **environ;

static bool pending_path(char *out, size_t n)
{
    char dir[900];
    if (!cli__config_dir(dir, sizeof dir))
        return false;
    pf_err e;
    if (fs_mkdirs(dir, 0700, NULL, &e) != 0)
        return false;
    snprintf(out, n, "%s/psql-connections", dir);
    return true;
}

/* Rewrites the pending list under an exclusive lock: drops the line of conn_id (when not
 * add), or adds one for it with our pid (when add); with gone, collects the ids listed for
 * url whose pgfleet is gone into *gone (newline-separated; caller frees), keeping them. */
static void pending_edit(const char *url, const char *conn_id, bool add, char **gone)
{
    char path[1024];
    if (!pending_path(path, sizeof path))
        return;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    if (flock(fd, LOCK_EX) != 0) {
        close(fd);
        return;
    }
    util_buf in = {0}, out = {0}, dead = {0};
    char chunk[4096];
    ssize_t r;
    while ((r = read(fd, chunk, sizeof chunk)) > 0)
        util_buf_add(&in, chunk, (size_t)r);
    for (char *line = in.s, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        /* "<pid> <connection id> <url>" */
        char id[PF_ID_MAX + 16], u[1100];
        long pid;
        char *sp1 = strchr(line, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
        if (!sp1 || !sp2)
            continue;
        *sp1 = '\0';
        if (!util_parse_int(line, 1, 1L << 30, &pid))
            continue;
        snprintf(id, sizeof id, "%.*s", (int)(sp2 - sp1 - 1), sp1 + 1);
        snprintf(u, sizeof u, "%s", sp2 + 1);
        if (conn_id && strcmp(id, conn_id) == 0)
            continue;
        if (gone && strcmp(u, url) == 0 && (pid_t)pid != getpid() && !proc_alive((pid_t)pid))
            util_buf_printf(&dead, "%s\n", id);
        util_buf_printf(&out, "%ld %s %s\n", pid, id, u);
    }
    if (add)
        util_buf_printf(&out, "%ld %s %s\n", (long)getpid(), conn_id, url);
    if (ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0 && out.len)
        (void)!write(fd, out.s, out.len);
    close(fd);
    util_buf_free(&in);
    util_buf_free(&out);
    if (gone)
        *gone = util_buf_take(&dead);
    else
        util_buf_free(&dead);
}

void cli__psql_cleanup(cli_ctx *c)
{
    char *gone = NULL;
    pending_edit(c->conn.url, NULL, false, &gone);
    for (char *id = gone, *next; id && *id; id = next) {
        next = strchr(id, '\n');
        if (next)
            *next++ = '\0';
        char *e = cli__esc(id);
        char *path = xasprintf("/v1/connections/%s", e);
        long status;
        json_t *j = NULL;
        int rc = cli__call(&c->conn, "DELETE", path, NULL, true, &status, &j);
        json_decref(j);
        /* listed until it is gone (deleted now, or before): a later run tries again */
        if (rc == CLI_EXIT_OK || status == 404)
            pending_edit(c->conn.url, id, false, NULL);
        free(path);
        free(e);
    }
    free(gone);
}

/* host:port of a directConnection into host and port (the port after the last ':'). */
static bool split_host(const char *hp, char *host, size_t hn, char *port, size_t pn)
{
    const char *colon = hp ? strrchr(hp, ':') : NULL;
    if (!colon || colon == hp || !colon[1])
        return false;
    snprintf(host, hn, "%.*s", (int)(colon - hp), hp);
    snprintf(port, pn, "%s", colon + 1);
    if (host[0] == '[') { /* [v6] */
        size_t l = strlen(host);
        memmove(host, host + 1, l);
        if (l > 1 && host[l - 2] == ']')
            host[l - 2] = '\0';
    }
    return true;
}

/* Runs psql with the password in its environment; its exit status. */
static int run_psql(const char *host, const char *port, const char *user, const char *pass,
                    char **extra, int nextra)
{
    char **argv = xcalloc((size_t)nextra + 10, sizeof *argv);
    int n = 0;
    argv[n++] = "psql";
    argv[n++] = "-h";
    argv[n++] = (char *)host;
    argv[n++] = "-p";
    argv[n++] = (char *)port;
    argv[n++] = "-U";
    argv[n++] = (char *)user;
    argv[n++] = "-d";
    argv[n++] = "postgres";
    for (int i = 0; i < nextra; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    /* psql owns the terminal meanwhile: ^C is its, not ours */
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_int, old_quit;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGQUIT, &ign, &old_quit);
    pid_t pid = fork();
    if (pid == 0) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGQUIT, &old_quit, NULL);
        setenv("PGPASSWORD", pass, 1);
        if (!getenv("PGSSLMODE"))
            setenv("PGSSLMODE", "require", 1);
        execvp("psql", argv);
        fprintf(stderr, "pgfleet: cannot run psql: %s\n", strerror(errno));
        _exit(127);
    }
    int status = 0, rc = CLI_EXIT_OTHER;
    if (pid < 0) {
        fprintf(stderr, "pgfleet: cannot start psql: %s\n", strerror(errno));
    } else {
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        rc = WIFEXITED(status) ? WEXITSTATUS(status) : CLI_EXIT_OTHER;
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    free(argv);
    return rc;
}

int cli__psql(cli_ctx *c)
{
    const char *db = c->pos[0];
    char name[96], hostname[64] = "";
    gethostname(hostname, sizeof hostname - 1);
    snprintf(name, sizeof name, "pgfleet-psql-%.40s-%ld", hostname, (long)getpid());
    char *e = cli__esc(db);
    char *path = xasprintf("/v1/databases/%s/connections", e);
    free(e);
    json_t *body = json_pack("{s:s}", "name", name), *j = NULL;
    long status;
    int rc = cli__call(&c->conn, "POST", path, body, false, &status, &j);
    free(path);
    json_decref(body);
    if (rc != CLI_EXIT_OK)
        return rc;
    json_t *conn = json_object_get(j, "data");
    json_t *dc = json_object_get(conn, "directConnection");
    const char *id = json_string_value(json_object_get(conn, "id"));
    const char *hp = json_string_value(json_object_get(dc, "host"));
    const char *user = json_string_value(json_object_get(dc, "user"));
    const char *pass = json_string_value(json_object_get(dc, "pass"));
    char host[512], port[16];
    if (!id || !user || !pass || !split_host(hp, host, sizeof host, port, sizeof port)) {
        fprintf(stderr, "pgfleet: the server's answer has no direct connection to use\n");
        json_decref(j);
        return CLI_EXIT_SERVER;
    }
    char conn_id[PF_ID_MAX + 16];
    snprintf(conn_id, sizeof conn_id, "%s", id);
    pending_edit(c->conn.url, conn_id, true, NULL);
    rc = run_psql(host, port, user, pass, c->pos + 1, c->npos - 1);
    json_decref(j); /* the password goes with it */
    char *e2 = cli__esc(conn_id);
    char *dpath = xasprintf("/v1/connections/%s", e2);
    json_t *dj = NULL;
    int drc = cli__call(&c->conn, "DELETE", dpath, NULL, false, &status, &dj);
    json_decref(dj);
    free(dpath);
    free(e2);
    if (drc == CLI_EXIT_OK || status == 404)
        pending_edit(c->conn.url, conn_id, false, NULL);
    else
        fprintf(stderr, "pgfleet: connection %s is left; the next pgfleet command deletes it\n",
                conn_id);
    return rc;
}
