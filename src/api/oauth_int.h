/* Shared by the OAuth files of src/api (oauth.c, pages.c). */
#ifndef PF_API_OAUTH_INT_H
#define PF_API_OAUTH_INT_H

#include "api/internal.h"
#include "auth/auth.h"
#include "util/log.h"

#define OAUTH_REFRESH_TTL_S (30 * 24 * 3600) /* refresh tokens: 30 days, rotated on use */
#define OAUTH_CODE_TTL_S 60                  /* authorization codes: one minute */
#define OAUTH_SESSION_TTL_S (12 * 3600)      /* the sign-in cookie of the HTML pages */

/* The token lifetimes and issuer of this server. */
void oauth_cfg(app *a, auth_oauth_cfg *cfg);

#endif
