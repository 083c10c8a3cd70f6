/* GET /v1/ca.pem (extension, no auth): the CA certificate that signed every database
 * endpoint's certificate, for clients that verify the server (sslmode=verify-full). It
 * is public information, and a client needs it before it holds any credential. */
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "util/proc.h"

HANDLER(h_ca_pem)
{
    app *a = ctx;
    (void)req;
    size_t len = 0;
    char *pem = a->ca_path[0] ? fs_read_file(a->ca_path, &len) : NULL;
    if (!pem)
        return err_set(e, 404, "NotFound", "tls-ca",
                       "No CA certificate is known: the server was given its certificate "
                       "without --tls-ca");
    resp->status = 200;
    resp->raw = pem;
    resp->raw_len = len;
    resp->content_type = "application/x-pem-file";
    return 0;
}
