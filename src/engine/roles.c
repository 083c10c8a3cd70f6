/* roles: connection roles of a database, managed over the admin connection (admin.c). They
 * are given SCRAM verifiers only (auth_scram_verifier), so no plaintext reaches a server. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_int.h"
#include "util/log.h"
#include "util/util.h"

static bool valid_role(const char *role)
{
    return engine__valid_name(role, 63) && strcmp(role, PGFLEET_ADMIN_ROLE) != 0 &&
           strcmp(role, PGFLEET_OWNER_ROLE) != 0 && strcmp(role, "postgres") != 0 &&
           strncmp(role, "pg_", 3) != 0;
}

/* it goes into an SQL literal */
static bool valid_verifier(const char *v)
{
    return engine__valid_verifier(v, "'\\");
}

/* Runs fmt with the quoted role name ident in place of its one %s. */
static int exec_for_role(PGconn *c, const char *fmt, const char *ident, pf_err *e)
{
    char *sql = xasprintf(fmt, ident);
    int rc = engine__exec(c, sql, 0, NULL, NULL, e);
    free(sql);
    return rc;
}

/* Creates or updates role with verifier on an open admin connection; a rehearsal rolls it
 * back instead of committing. */
static int role_ensure_tx(PGconn *c, const char *role, const char *verifier, bool rehearse,
                          bool *existed, pf_err *e)
{
    int ret = -1;
    PGresult *r = NULL;
    char *ident = NULL, *lit = NULL, *rlit = NULL, *sql = NULL;
    bool in_tx = false;
    if (!valid_role(role)) {
        err_kind(e, ERR_INVALID, NULL, "invalid role name");
        goto out;
    }
    if (!valid_verifier(verifier)) {
        err_kind(e, ERR_INVALID, NULL, "not a SCRAM-SHA-256 verifier");
        goto out;
    }
    ident = PQescapeIdentifier(c, role, strlen(role));
    lit = PQescapeLiteral(c, verifier, strlen(verifier));
    rlit = PQescapeLiteral(c, role, strlen(role));
    if (!ident || !lit || !rlit) {
        err_internal(e, "quoting: %s", PQerrorMessage(c));
        goto out;
    }
    /* two round trips in all (each one waits for the backend to be scheduled, which a busy
     * machine makes slow): the transaction, the lock that serializes concurrent ensures of
     * the same role and whether it exists, then the change and the commit */
    char *head = xasprintf("BEGIN;"
                           "SELECT pg_advisory_xact_lock(hashtext(%s));"
                           /* its own statement, so its snapshot follows the lock's wait */
                           "SELECT 1 FROM pg_roles WHERE rolname = %s",
                           rlit, rlit);
    in_tx = true; /* a failed BEGIN leaves none: the ROLLBACK below only warns then */
    int hrc = engine__exec_script(c, head, &r, e);
    free(head);
    if (hrc < 0)
        goto out;
    bool exists = PQntuples(r) > 0;
    /* the rest in one round trip (a simple query of several statements stops at the first
     * error; the transaction is still open then, and rolled back below). What the owner
     * role (every session's current role) may do within its own server: see and signal
     * every session but the superuser's (pgfleet's own), and create and drop databases of
     * its own; kept here, not in the golden only, so servers made from an older golden get
     * them on their next role change. */
    if (exists)
        sql = xasprintf("ALTER ROLE %s WITH LOGIN PASSWORD %s NOSUPERUSER NOCREATEDB "
                        "NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT;"
                        "GRANT " PGFLEET_OWNER_ROLE " TO %s;",
                        ident, lit, ident);
    else
        sql = xasprintf("CREATE ROLE %s WITH LOGIN PASSWORD %s NOSUPERUSER NOCREATEDB "
                        "NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT IN ROLE " PGFLEET_OWNER_ROLE
                        ";",
                        ident, lit);
    char *script = xasprintf("%s"
                             "GRANT pg_read_all_stats, pg_signal_backend TO " PGFLEET_OWNER_ROLE ";"
                             "ALTER ROLE " PGFLEET_OWNER_ROLE " CREATEDB;"
                             "ALTER ROLE %s SET role = '" PGFLEET_OWNER_ROLE "';"
                             "GRANT CONNECT ON DATABASE postgres TO %s;"
                             "%s",
                             sql, ident, ident, rehearse ? "ROLLBACK" : "COMMIT");
    int rc = engine__exec_script(c, script, NULL, e);
    free(script);
    if (rc < 0)
        goto out;
    in_tx = false;
    if (existed)
        *existed = exists;
    ret = 0;
out:
    if (in_tx)
        PQclear(PQexec(c, "ROLLBACK"));
    PQclear(r);
    PQfreemem(ident);
    PQfreemem(lit);
    PQfreemem(rlit);
    free(sql);
    return ret;
}

static int role_ensure_on(PGconn *c, const char *role, const char *verifier, bool *existed,
                          pf_err *e)
{
    return role_ensure_tx(c, role, verifier, false, existed, e);
}

int engine__roles_rehearse(PGconn *c, pf_err *e)
{
    /* a well-formed verifier (a salt, two 32-byte keys) that no password matches */
    static const char verifier[] = "SCRAM-SHA-256$4096:cGdmbGVldHJlaGVhcnNhbA==$"
                                   "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:"
                                   "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    return role_ensure_tx(c, "pgfleet_rehearsal", verifier, true, NULL, e);
}

/* Ends the role's sessions and drops it on an open admin connection; *dropped tells if it
 * existed. */
static int role_drop_on(PGconn *c, const char *role, bool *dropped, pf_err *e)
{
    int ret = -1;
    PGresult *r = NULL;
    char *ident = NULL;
    bool in_tx = false;
    *dropped = false;
    if (!valid_role(role)) {
        err_kind(e, ERR_INVALID, NULL, "invalid role name");
        goto out;
    }
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
    if (exec_for_role(c, "ALTER ROLE %s NOLOGIN", ident, e) < 0)
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
    if (exec_for_role(c, "REASSIGN OWNED BY %s TO " PGFLEET_OWNER_ROLE, ident, e) < 0 ||
        exec_for_role(c, "DROP OWNED BY %s", ident, e) < 0 ||
        exec_for_role(c, "DROP ROLE IF EXISTS %s", ident, e) < 0 ||
        engine__exec(c, "COMMIT", 0, NULL, NULL, e) < 0)
        goto out;
    in_tx = false;
    *dropped = true;
    ret = 0;
out:
    if (in_tx)
        PQclear(PQexec(c, "ROLLBACK"));
    PQclear(r);
    PQfreemem(ident);
    return ret;
}

/* One role change over an admin connection: ensure (with verifier) or drop. */
typedef struct role_job {
    const char *role, *verifier;
    bool drop;
    bool had;                   /* the role existed before an ensure; a drop dropped it */
    bool kept;                  /* it ran on the kept session of a spare (admin.c) */
    int64_t connect_ms, run_ms; /* getting the session; the statements */
} role_job;

static int role_job_on(PGconn *c, role_job *j, pf_err *e)
{
    return j->drop ? role_drop_on(c, j->role, &j->had, e)
                   : role_ensure_on(c, j->role, j->verifier, &j->had, e);
}

/* Runs j on an admin connection to the running server of db_id (the spare's kept session
 * when it has one); an error says in e and the log what failed. */
static int role_job_run(engine *en, const char *db_id, role_job *j, pf_err *e)
{
    const char *what = j->drop ? "dropping a role" : "ensuring a role";
    PGconn *c = NULL;
    int ret;
    int64_t t0, t1;
    for (;;) {
        t0 = util_now_ms();
        ret = engine__admin_session(en, db_id, &c, &j->kept, e);
        t1 = util_now_ms();
        if (ret == 0)
            ret = role_job_on(c, j, e);
        /* a kept session that broke under the statements (its backend ended, its server
         * restarted or was killed while the spare waited): each change is idempotent, so it
         * runs again, on a new connection (the kept one was taken: none is kept now) */
        if (ret == 0 || !j->kept || PQstatus(c) != CONNECTION_BAD)
            break;
        log_db_info(db_id, "the kept admin session broke (%s); connecting again",
                    e ? e->message : "");
        PQfinish(c);
        c = NULL;
    }
    PQfinish(c);
    j->connect_ms = t1 - t0;
    j->run_ms = util_now_ms() - t1;
    if (ret < 0) {
        err_prefix(e, "while %s of %s: ", what, db_id);
        log_db_warn(db_id, "%s failed: %s", what, e ? e->message : "");
        return -1;
    }
    return 0;
}

int engine_role_ensure(engine *en, const char *db_id, const char *role, const char *verifier,
                       pf_err *e)
{
    role_job j = {.role = role, .verifier = verifier};
    if (role_job_run(en, db_id, &j, e) < 0)
        return -1;
    log_db_info(db_id, "%s (%s %lld ms, statements %lld ms)",
                j.had ? "rotated the password of a role" : "created a role",
                j.kept ? "kept session" : "connect", (long long)j.connect_ms, (long long)j.run_ms);
    return 0;
}

int engine_role_drop(engine *en, const char *db_id, const char *role, pf_err *e)
{
    role_job j = {.role = role, .drop = true};
    if (role_job_run(en, db_id, &j, e) < 0)
        return -1;
    if (j.had)
        log_db_info(db_id, "dropped a role");
    return 0;
}

int engine__roles_sync(PGconn *c, const char *db_id, const engine_role *roles, size_t n, pf_err *e)
{
    PGresult *r = NULL;
    /* every login role but ours: connection roles of this database, or of the database a
     * backup came from */
    if (engine__exec(c,
                     "SELECT rolname FROM pg_roles WHERE rolcanlogin AND rolname <> $1"
                     " AND rolname !~ '^pg_' ORDER BY rolname",
                     1, (const char *const[]){PGFLEET_ADMIN_ROLE}, &r, e) < 0)
        return -1;
    int ret = 0, dropped = 0;
    for (int i = 0; i < PQntuples(r) && ret == 0; i++) {
        const char *have = PQgetvalue(r, i, 0);
        bool keep = false;
        for (size_t k = 0; k < n && !keep; k++)
            keep = strcmp(roles[k].role, have) == 0;
        bool gone = false;
        if (!keep && valid_role(have)) {
            ret = role_drop_on(c, have, &gone, e);
            dropped += gone;
        }
    }
    PQclear(r);
    for (size_t k = 0; k < n && ret == 0; k++)
        ret = role_ensure_on(c, roles[k].role, roles[k].verifier, NULL, e);
    if (ret == 0)
        log_db_info(db_id, "roles synced: %zu kept or made, %d dropped", n, dropped);
    return ret;
}
