/* auth: service tokens ("pfs_…"): creation (the value shown once, its SHA-256 kept) and
 * the bearer check of every request that carries one. An operator token is a service token
 * marked is_operator: it reads the fleet and nothing else (docs/console.md); the workspace
 * bearer check refuses it like an unknown token. */
#include "auth/auth.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/util.h"

static int token_create(store *st, const char *ws, const char *name, const char *expires_at,
                        bool is_operator, char value_out[AUTH_TOKEN_MAX], store_token *out,
                        pf_err *e)
{
    store_token t;
    memset(&t, 0, sizeof t);
    util_id_new("tok", t.id);
    snprintf(t.workspace_id, sizeof t.workspace_id, "%s", ws);
    snprintf(t.name, sizeof t.name, "%s", name && *name ? name : "service token");
    char secret[49];
    util_secret(secret, 48);
    snprintf(value_out, AUTH_TOKEN_MAX, "%s%s", AUTH_TOKEN_PREFIX, secret);
    util_sha256_hex(value_out, t.hash);
    snprintf(t.value_hint, sizeof t.value_hint, "...%s", secret + 44);
    util_now_iso(t.created_at);
    snprintf(t.expires_at, sizeof t.expires_at, "%s", expires_at ? expires_at : "");
    t.is_operator = is_operator;
    if (store_token_insert(st, &t, e) != 0)
        return -1;
    if (out)
        *out = t;
    return 0;
}

int auth_token_create(store *st, const char *ws, const char *name, const char *expires_at,
                      char value_out[AUTH_TOKEN_MAX], store_token *out, pf_err *e)
{
    return token_create(st, ws, name, expires_at, false, value_out, out, e);
}

int auth_operator_token_create(store *st, const char *owner_ws, const char *name,
                               char value_out[AUTH_TOKEN_MAX], store_token *out, pf_err *e)
{
    return token_create(st, owner_ws, name && *name ? name : "operator token", NULL, true,
                        value_out, out, e);
}

int auth_check_bearer(store *st, const char *authorization, char ws_out[PF_ID_MAX],
                      char actor_out[PF_ID_MAX], pf_err *e)
{
    bool op = false;
    char ws[PF_ID_MAX], actor[PF_ID_MAX];
    if (auth_check_bearer_any(st, authorization, ws, actor, &op, e) != 0)
        return -1;
    if (op)
        return err_set(e, 401, "Unauthorized",
                       "Send the header 'Authorization: Bearer <service token>'.",
                       "Invalid authorization token");
    snprintf(ws_out, PF_ID_MAX, "%s", ws);
    snprintf(actor_out, PF_ID_MAX, "%s", actor);
    return 0;
}

int auth_check_bearer_any(store *st, const char *authorization, char ws_out[PF_ID_MAX],
                          char actor_out[PF_ID_MAX], bool *is_operator, pf_err *e)
{
    const char *hint = "Send the header 'Authorization: Bearer <service token>'.";
    if (!authorization || !*authorization)
        return err_set(e, 401, "Unauthorized", hint, "Missing authorization token");
    if (strncasecmp(authorization, "Bearer ", 7) != 0)
        return err_set(e, 401, "Unauthorized", hint,
                       "The Authorization header is not a Bearer token");
    const char *value = authorization + 7;
    while (*value == ' ')
        value++;
    size_t n = strlen(value);
    if (n < 8 || n >= AUTH_TOKEN_MAX)
        return err_set(e, 401, "Unauthorized", hint, "Invalid authorization token");
    char hash[65];
    util_sha256_hex(value, hash);
    store_token t;
    pf_err le;
    if (store_token_by_hash(st, hash, &t, &le) != 0) {
        if (le.status == 404)
            return err_set(e, 401, "Unauthorized", hint, "Invalid authorization token");
        if (e)
            *e = le;
        return -1;
    }
    if (t.expires_at[0]) {
        char now[32];
        util_now_iso(now);
        if (strcmp(now, t.expires_at) >= 0)
            return err_set(e, 401, "Unauthorized", "Create a new service token.",
                           "The authorization token has expired");
    }
    /* an operator token acts in no workspace: every workspace-scoped lookup finds nothing */
    snprintf(ws_out, PF_ID_MAX, "%s", t.is_operator ? "" : t.workspace_id);
    snprintf(actor_out, PF_ID_MAX, "%s", t.id);
    *is_operator = t.is_operator;
    return 0;
}
