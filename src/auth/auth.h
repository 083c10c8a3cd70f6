/* auth: service tokens (and later OAuth2). A token value is shown once; the catalog keeps
 * only its SHA-256 (values are 256-bit random, so a fast hash is the right tool: there
 * is nothing to brute-force). */
#ifndef PF_AUTH_AUTH_H
#define PF_AUTH_AUTH_H

#include "store/store.h"
#include "util/err.h"

#define AUTH_TOKEN_PREFIX "pfs_"
#define AUTH_TOKEN_MAX 96

/* Creates a service token for workspace ws. value_out receives the secret (shown once).
 * expires_at: ISO-8601 or NULL for never. */
int auth_token_create(store *st, const char *ws, const char *name, const char *expires_at,
                      char value_out[AUTH_TOKEN_MAX], store_token *out, pf_err *e);

/* Checks an Authorization header value ("Bearer <token>"). On success fills ws_out and
 * actor_out (the token id). Any failure is 401 "Unauthorized" with a hint. */
int auth_check_bearer(store *st, const char *authorization, char ws_out[PF_ID_MAX],
                      char actor_out[PF_ID_MAX], pf_err *e);

#endif
