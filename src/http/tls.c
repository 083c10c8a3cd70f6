/* http/tls: the HTTPS listener's certificate and key. GnuTLS asks for them at each handshake
 * through libmicrohttpd's certificate callback, so http_tls_reload can swap them while the
 * server runs (a renewal): handshakes after the swap get the new pair, sessions already
 * made keep theirs. A pair that does not load, or whose key is not the certificate's, is
 * refused and the previous one stays. A replaced pair is kept until the server stops:
 * GnuTLS may still be using it in a handshake, and renewals are rare. */
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>

#include "http/http_int.h"
#include "util/log.h"

#define CHAIN_MAX 16

struct http__cred {
    struct http__cred *older;
    gnutls_pcert_st pcert[CHAIN_MAX];
    unsigned npcert;
    gnutls_privkey_t key;
};

static void cred_free(http__cred *c)
{
    while (c) {
        http__cred *next = c->older;
        for (unsigned i = 0; i < c->npcert; i++)
            gnutls_pcert_deinit(&c->pcert[i]);
        if (c->key)
            gnutls_privkey_deinit(c->key);
        free(c);
        c = next;
    }
}

/* The key's public half is the certificate's: the same key id. */
static bool cred_matches(const http__cred *c)
{
    gnutls_pubkey_t pub = NULL;
    unsigned char a[64], b[64];
    size_t na = sizeof a, nb = sizeof b;
    bool ok = gnutls_pubkey_init(&pub) == 0 &&
              gnutls_pubkey_import_privkey(pub, c->key, 0, 0) == 0 &&
              gnutls_pubkey_get_key_id(pub, 0, a, &na) == 0 &&
              gnutls_pubkey_get_key_id(c->pcert[0].pubkey, 0, b, &nb) == 0 && na == nb &&
              memcmp(a, b, na) == 0;
    if (pub)
        gnutls_pubkey_deinit(pub);
    return ok;
}

static int cred_load(const char *cert_pem, const char *key_pem, http__cred **out, pf_err *e)
{
    http__cred *c = xcalloc(1, sizeof *c);
    gnutls_datum_t cd = {(unsigned char *)cert_pem, (unsigned)strlen(cert_pem)};
    gnutls_datum_t kd = {(unsigned char *)key_pem, (unsigned)strlen(key_pem)};
    c->npcert = CHAIN_MAX;
    int rc = gnutls_pcert_list_import_x509_raw(c->pcert, &c->npcert, &cd, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0) {
        c->npcert = 0;
        cred_free(c);
        return err_internal(e, "HTTPS certificate: %s", gnutls_strerror(rc));
    }
    if ((rc = gnutls_privkey_init(&c->key)) < 0 ||
        (rc = gnutls_privkey_import_x509_raw(c->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        cred_free(c);
        return err_internal(e, "HTTPS key: %s", gnutls_strerror(rc));
    }
    if (!cred_matches(c)) {
        cred_free(c);
        return err_internal(e, "HTTPS: the key does not belong to the certificate");
    }
    *out = c;
    return 0;
}

/* GnuTLS's retrieve callback: the session's pointer is libmicrohttpd's connection, whose
 * socket context is ours (guard.c), which names the server. */
static int on_cert(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                   const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                   gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
    (void)req_ca_dn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    struct MHD_Connection *mc = gnutls_session_get_ptr(session);
    const union MHD_ConnectionInfo *inf =
        mc ? MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT) : NULL;
    conn_info *ci = inf ? inf->socket_context : NULL;
    if (!ci || !ci->s)
        return -1;
    http_server *s = ci->s;
    pthread_mutex_lock(&s->tls_mu);
    http__cred *c = s->tls;
    if (c) {
        *pcert = c->pcert;
        *pcert_length = c->npcert;
        *pkey = c->key;
    }
    pthread_mutex_unlock(&s->tls_mu);
    return c ? 0 : -1;
}

int http__tls_start(http_server *s, const char *cert_pem, const char *key_pem, pf_err *e)
{
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES ||
        MHD_is_feature_supported(MHD_FEATURE_HTTPS_CERT_CALLBACK) != MHD_YES)
        return err_internal(e, "this libmicrohttpd has no TLS support: serve plain HTTP "
                               "(--http-tls off) or install one built with GnuTLS");
    pthread_mutex_init(&s->tls_mu, NULL);
    s->tls_on = true;
    return cred_load(cert_pem, key_pem, &s->tls, e);
}

void *http__tls_callback(void)
{
    return (void *)on_cert;
}

int http_tls_reload(http_server *s, const char *cert_pem, const char *key_pem, pf_err *e)
{
    if (!s || !s->tls_on)
        return 0;
    http__cred *c = NULL;
    if (cred_load(cert_pem, key_pem, &c, e) != 0)
        return -1;
    pthread_mutex_lock(&s->tls_mu);
    c->older = s->tls;
    s->tls = c;
    pthread_mutex_unlock(&s->tls_mu);
    log_sub(LOG_INFO, "http", "HTTPS certificate reloaded");
    return 0;
}

void http__tls_stop(http_server *s)
{
    if (!s->tls_on)
        return;
    cred_free(s->tls);
    s->tls = NULL;
    pthread_mutex_destroy(&s->tls_mu);
}
