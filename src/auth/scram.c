/* auth: SCRAM-SHA-256 verifiers for connection roles, computed here (pure CPU, no server),
 * so no plaintext password reaches a server, PgBouncer or a log. */
#include <libpq-fe.h>
#include <string.h>

#include "auth/auth.h"

int auth_scram_verifier(const char *role, const char *password, char out[256], pf_err *e)
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
