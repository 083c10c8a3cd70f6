/* roles: connection roles of a database, managed over the private socket as the admin
 * role, and SCRAM verifiers computed locally so no plaintext reaches a server. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_int.h"
#include "util/log.h"
#include "util/util.h"

static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    log_debug("server notice: %s", message);
}

int engine__admin_connect(const char *sockdir, int port, PGconn **out, pf_err *e)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    const char *keys[] = {"host", "port", "user", "dbname", "connect_timeout", "application_name",
                          NULL};
    const char *vals[] = {sockdir, portstr, PGFLEET_ADMIN_ROLE, "postgres", "10", "pgfleet", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 0);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        err_internal(e, "admin connection: %s", c ? PQerrorMessage(c) : "out of memory");
        PQfinish(c);
        *out = NULL;
        return -1;
    }
    PQsetNoticeProcessor(c, quiet_notice, NULL);
    /* statements carry SCRAM verifiers: keep them out of the server log, even on error */
    PGresult *r = PQexec(c, "SET log_min_error_statement = panic; SET log_statement = 'none'");
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) {
        err_internal(e, "admin connection setup: %s", PQerrorMessage(c));
        PQfinish(c);
        *out = NULL;
        return -1;
    }
    *out = c;
    return 0;
}

/* Runs one statement (params optional); fails unless it returns no error. */
int engine__exec(PGconn *c, const char *sql, int nparams, const char *const *params, PGresult **res,
                 pf_err *e)
{
    PGresult *r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        const char *msg = PQresultErrorMessage(r);
        err_internal(e, "%s", msg && *msg ? msg : PQerrorMessage(c));
        /* drop the trailing newline libpq adds */
        if (e) {
            size_t l = strlen(e->message);
            while (l && (e->message[l - 1] == '\n' || e->message[l - 1] == ' '))
                e->message[--l] = '\0';
        }
        PQclear(r);
        return -1;
    }
    if (res)
        *res = r;
    else
        PQclear(r);
    return 0;
}

static bool valid_role(const char *role)
{
    if (!role || !*role || strlen(role) > 63)
        return false;
    if (!strcmp(role, PGFLEET_ADMIN_ROLE) || !strcmp(role, PGFLEET_OWNER_ROLE) ||
        !strcmp(role, "postgres") || !strncmp(role, "pg_", 3))
        return false;
    for (const char *p = role; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-'))
            return false;
    return true;
}

static bool valid_verifier(const char *v)
{
    if (!v || strncmp(v, "SCRAM-SHA-256$", 14) != 0 || strlen(v) >= 256)
        return false;
    for (const char *p = v; *p; p++)
        if (*p < 0x21 || *p > 0x7e || *p == '\'' || *p == '\\')
            return false;
    return true;
}

/* Connects to the running instance db_id as the admin role. */
static int connect_instance(engine *en, const char *db_id, PGconn **c, pf_err *e)
{
    if (!engine__valid_id(db_id))
        return err_set(e, 400, "ValidationError", "databaseId", "invalid database id");
    int ret = -1;
    char *data = xasprintf("%s/%s/data", en->instances_dir, db_id);
    char *sock = xasprintf("%s/%s", en->run_dir, db_id);
    pid_t pid = 0;
    int port = 0;
    if (engine__live_postmaster(en, data) <= 0 || !engine__read_pidfile(data, &pid, &port) ||
        port <= 0) {
        err_set(e, 409, "NotRunning", NULL, "the server is not running");
        goto out;
    }
    ret = engine__admin_connect(sock, port, c, e);
out:
    free(data);
    free(sock);
    return ret;
}

int engine_role_ensure(engine *en, const char *db_id, const char *role, const char *verifier,
                       pf_err *e)
{
    int ret = -1;
    PGconn *c = NULL;
    PGresult *r = NULL;
    char *ident = NULL, *lit = NULL, *sql = NULL;
    bool in_tx = false;
    if (!valid_role(role)) {
        err_set(e, 400, "ValidationError", "role", "invalid role name");
        goto out;
    }
    if (!valid_verifier(verifier)) {
        err_set(e, 400, "ValidationError", "verifier", "not a SCRAM-SHA-256 verifier");
        goto out;
    }
    if (connect_instance(en, db_id, &c, e) < 0)
        goto out;
    ident = PQescapeIdentifier(c, role, strlen(role));
    lit = PQescapeLiteral(c, verifier, strlen(verifier));
    if (!ident || !lit) {
        err_internal(e, "quoting: %s", PQerrorMessage(c));
        goto out;
    }
    const char *params[] = {role};
    if (engine__exec(c, "BEGIN", 0, NULL, NULL, e) < 0)
        goto out;
    in_tx = true;
    /* serialize concurrent ensures of the same role */
    if (engine__exec(c, "SELECT pg_advisory_xact_lock(hashtext($1))", 1, params, NULL, e) < 0 ||
        engine__exec(c, "SELECT 1 FROM pg_roles WHERE rolname = $1", 1, params, &r, e) < 0)
        goto out;
    bool exists = PQntuples(r) > 0;
    if (exists)
        sql = xasprintf("ALTER ROLE %s WITH LOGIN PASSWORD %s NOSUPERUSER NOCREATEDB "
                        "NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT",
                        ident, lit);
    else
        sql =
            xasprintf("CREATE ROLE %s WITH LOGIN PASSWORD %s NOSUPERUSER NOCREATEDB "
                      "NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT IN ROLE " PGFLEET_OWNER_ROLE,
                      ident, lit);
    if (engine__exec(c, sql, 0, NULL, NULL, e) < 0)
        goto out;
    free(sql);
    sql = xasprintf("GRANT " PGFLEET_OWNER_ROLE " TO %s", ident);
    if (exists && engine__exec(c, sql, 0, NULL, NULL, e) < 0)
        goto out;
    free(sql);
    sql = xasprintf("ALTER ROLE %s SET role = '" PGFLEET_OWNER_ROLE "'", ident);
    if (engine__exec(c, sql, 0, NULL, NULL, e) < 0)
        goto out;
    free(sql);
    sql = xasprintf("GRANT CONNECT ON DATABASE postgres TO %s", ident);
    if (engine__exec(c, sql, 0, NULL, NULL, e) < 0)
        goto out;
    if (engine__exec(c, "COMMIT", 0, NULL, NULL, e) < 0)
        goto out;
    in_tx = false;
    log_info("%s role for %s", exists ? "rotated password of" : "created", db_id);
    ret = 0;
out:
    if (in_tx)
        PQclear(PQexec(c, "ROLLBACK"));
    if (ret < 0) {
        err_prefix(e, "while ensuring a role of %s: ", db_id);
        log_warn("ensuring a role of %s failed: %s", db_id, e ? e->message : "");
    }
    PQclear(r);
    PQfreemem(ident);
    PQfreemem(lit);
    free(sql);
    PQfinish(c);
    return ret;
}

int engine_role_drop(engine *en, const char *db_id, const char *role, pf_err *e)
{
    int ret = -1;
    PGconn *c = NULL;
    PGresult *r = NULL;
    char *ident = NULL, *sql = NULL;
    bool in_tx = false;
    if (!valid_role(role)) {
        err_set(e, 400, "ValidationError", "role", "invalid role name");
        goto out;
    }
    if (connect_instance(en, db_id, &c, e) < 0)
        goto out;
    ident = PQescapeIdentifier(c, role, strlen(role));
    if (!ident) {
        err_internal(e, "quoting: %s", PQerrorMessage(c));
        goto out;
    }
    const char *params[] = {role};
    if (engine__exec(c, "SELECT 1 FROM pg_roles WHERE rolname = $1", 1, params, &r, e) < 0)
        goto out;
    if (PQntuples(r) == 0) {
        ret = 0;
        goto out;
    }
    sql = xasprintf("ALTER ROLE %s NOLOGIN", ident);
    if (engine__exec(c, sql, 0, NULL, NULL, e) < 0)
        goto out;
    if (engine__exec(c,
                     "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                     "WHERE usename = $1 AND pid <> pg_backend_pid()",
                     1, params, NULL, e) < 0)
        goto out;
    if (engine__exec(c, "BEGIN", 0, NULL, NULL, e) < 0)
        goto out;
    in_tx = true;
    /* objects the role made while not SET to the owner role move to it, so nothing is
     * lost; DROP OWNED then only removes its remaining privileges */
    free(sql);
    sql = xasprintf("REASSIGN OWNED BY %s TO " PGFLEET_OWNER_ROLE, ident);
    if (engine__exec(c, sql, 0, NULL, NULL, e) < 0)
        goto out;
    free(sql);
    sql = xasprintf("DROP OWNED BY %s", ident);
    if (engine__exec(c, sql, 0, NULL, NULL, e) < 0)
        goto out;
    free(sql);
    sql = xasprintf("DROP ROLE IF EXISTS %s", ident);
    if (engine__exec(c, sql, 0, NULL, NULL, e) < 0)
        goto out;
    if (engine__exec(c, "COMMIT", 0, NULL, NULL, e) < 0)
        goto out;
    in_tx = false;
    log_info("dropped a role of %s", db_id);
    ret = 0;
out:
    if (in_tx)
        PQclear(PQexec(c, "ROLLBACK"));
    if (ret < 0) {
        err_prefix(e, "while dropping a role of %s: ", db_id);
        log_warn("dropping a role of %s failed: %s", db_id, e ? e->message : "");
    }
    PQclear(r);
    PQfreemem(ident);
    free(sql);
    PQfinish(c);
    return ret;
}

int engine_scram_verifier(const char *role, const char *password, char out[256], pf_err *e)
{
    out[0] = '\0';
    if (!role || !password)
        return err_internal(e, "scram verifier: missing role or password");
    /* PQencryptPasswordConn needs a PGconn only for its error buffer when the algorithm is
     * named: a connection to a socket directory that cannot exist fails at once, without
     * touching the network. */
    PGconn *c = PQconnectStart("host=/nonexistent/pgfleet port=1 dbname=x user=x "
                               "connect_timeout=1");
    if (!c)
        return err_internal(e, "scram verifier: out of memory");
    int ret = -1;
    char *v = PQencryptPasswordConn(c, password, role, "scram-sha-256");
    if (!v) {
        err_internal(e, "scram verifier: %s", PQerrorMessage(c));
        goto out;
    }
    if (strlen(v) >= 256) {
        err_internal(e, "scram verifier: unexpectedly long");
        goto out;
    }
    memcpy(out, v, strlen(v) + 1);
    ret = 0;
out:
    if (v) {
        memset(v, 0, strlen(v));
        PQfreemem(v);
    }
    PQfinish(c);
    return ret;
}
