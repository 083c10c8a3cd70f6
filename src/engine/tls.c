/* tls: the certificate every server and PgBouncer serve. On first start a private CA
 * (tls/ca.crt, tls/ca.key) and a server certificate for the public host are made with
 * the openssl CLI (argv arrays, no shell); the server certificate is made again when the
 * public host changes. A given certificate and key (--tls-cert, --tls-key) are copied
 * into tls/ instead, so the servers' OS user can read them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sodium.h>
#include <unistd.h>

#include "engine/engine_int.h"
#include "util/log.h"
#include "util/util.h"

#define OPENSSL_BIN "/usr/bin/openssl"
#define OPENSSL_TIMEOUT_MS 30000
#define CA_DAYS "3650"
#define SERVER_DAYS "825"
/* the names a generated certificate carries: localhost, 127.0.0.1, ::1 and the host */
#define TLS_NAMES_VERSION "names2"

/* A host name or IP literal: it goes into a certificate subject and an openssl config. */
static bool valid_host(const char *h)
{
    if (!h || !*h || strlen(h) > 253)
        return false;
    for (const char *p = h; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '-' || *p == ':'))
            return false;
    return true;
}

static bool is_ip(const char *h)
{
    if (strchr(h, ':'))
        return true;
    for (const char *p = h; *p; p++)
        if (!((*p >= '0' && *p <= '9') || *p == '.'))
            return false;
    return true;
}

static int openssl(const char *const *argv, pf_err *e)
{
    char out[2048];
    proc_opts o = {.argv = argv, .cwd = "/"};
    int rc = proc_run(&o, out, sizeof out, OPENSSL_TIMEOUT_MS, e);
    if (rc > 0) {
        size_t l = strlen(out);
        return err_internal(e, "openssl %s exited with %d: %s", argv[1], rc,
                            l > 300 ? out + l - 300 : out);
    }
    return rc < 0 ? -1 : 0;
}

/* Makes path private to user (mode, owner). */
static int own_file(const char *path, int mode, const proc_user *user, pf_err *e)
{
    if (chmod(path, (mode_t)mode) < 0)
        return err_internal(e, "chmod %s: %s", path, strerror(errno));
    if (user && user->switch_user && chown(path, user->uid, user->gid) < 0)
        return err_internal(e, "chown %s: %s", path, strerror(errno));
    return 0;
}

static int copy_file(const char *src, const char *dst, int mode, const proc_user *user, pf_err *e)
{
    size_t len = 0;
    char *text = fs_read_file(src, &len);
    if (!text)
        return err_internal(e, "cannot read %s", src);
    int rc = fs_write_atomic(dst, text, len, mode, user, e);
    free(text);
    return rc;
}

/* Gives a new key (owned by key_user) and certificate their modes and renames them into
 * place. */
static int install_pair(engine *en, const char *key_tmp, const char *key, const proc_user *key_user,
                        const char *crt_tmp, const char *crt, pf_err *e)
{
    if (own_file(key_tmp, 0600, key_user, e) < 0 || own_file(crt_tmp, 0644, NULL, e) < 0)
        return -1;
    if (rename(key_tmp, key) < 0 || rename(crt_tmp, crt) < 0)
        return err_internal(e, "rename in %s: %s", en->tls_dir, strerror(errno));
    return 0;
}

static int make_ca(engine *en, const char *cnf, pf_err *e)
{
    int ret = -1;
    char *key = xasprintf("%s/ca.key", en->tls_dir);
    char *crt = xasprintf("%s/ca.crt", en->tls_dir);
    char *key_tmp = xasprintf("%s/ca.key.tmp", en->tls_dir);
    char *crt_tmp = xasprintf("%s/ca.crt.tmp", en->tls_dir);
    const char *argv[] = {OPENSSL_BIN,   "req",      "-x509",
                          "-new",        "-config",  cnf,
                          "-extensions", "ca_ext",   "-newkey",
                          "ec",          "-pkeyopt", "ec_paramgen_curve:prime256v1",
                          "-nodes",      "-keyout",  key_tmp,
                          "-out",        crt_tmp,    "-days",
                          CA_DAYS,       "-subj",    "/CN=pgfleet local CA",
                          NULL};
    if (openssl(argv, e) < 0 || install_pair(en, key_tmp, key, NULL, crt_tmp, crt, e) < 0)
        goto out;
    log_sub(LOG_INFO, "tls", "made a private CA in %s", en->tls_dir);
    ret = 0;
out:
    unlink(key_tmp);
    unlink(crt_tmp);
    free(key);
    free(crt);
    free(key_tmp);
    free(crt_tmp);
    return ret;
}

static int make_server(engine *en, const char *cnf, const char *host, pf_err *e)
{
    int ret = -1;
    char *ca_key = xasprintf("%s/ca.key", en->tls_dir);
    char *ca_crt = xasprintf("%s/ca.crt", en->tls_dir);
    char *key_tmp = xasprintf("%s/server.key.tmp", en->tls_dir);
    char *crt_tmp = xasprintf("%s/server.crt.tmp", en->tls_dir);
    char *csr = xasprintf("%s/server.csr", en->tls_dir);
    char *subj = xasprintf("/CN=%s", host);
    char serial[40];
    util_secret(serial, 16);
    char hexserial[40];
    /* a positive random serial: 0x + 32 hex digits from the secret's bytes */
    snprintf(hexserial, sizeof hexserial, "0x");
    for (int i = 0; i < 15; i++)
        snprintf(hexserial + 2 + 2 * i, 3, "%02x", (unsigned char)serial[i] & 0x7f);
    const char *req[] = {OPENSSL_BIN, "req",      "-new",
                         "-config",   cnf,        "-newkey",
                         "ec",        "-pkeyopt", "ec_paramgen_curve:prime256v1",
                         "-nodes",    "-keyout",  key_tmp,
                         "-out",      csr,        "-subj",
                         subj,        NULL};
    const char *sign[] = {OPENSSL_BIN,   "x509",    "-req",      "-in",      csr,
                          "-CA",         ca_crt,    "-CAkey",    ca_key,     "-set_serial",
                          hexserial,     "-days",   SERVER_DAYS, "-extfile", cnf,
                          "-extensions", "srv_ext", "-out",      crt_tmp,    NULL};
    if (openssl(req, e) < 0 || openssl(sign, e) < 0 ||
        install_pair(en, key_tmp, en->tls_key, &en->user, crt_tmp, en->tls_cert, e) < 0)
        goto out;
    log_sub(LOG_INFO, "tls", "made a server certificate for %s", host);
    ret = 0;
out:
    unlink(key_tmp);
    unlink(crt_tmp);
    unlink(csr);
    free(ca_key);
    free(ca_crt);
    free(key_tmp);
    free(crt_tmp);
    free(csr);
    free(subj);
    return ret;
}

static int generate(engine *en, const char *host, pf_err *e)
{
    int ret = -1;
    char *cnf = xasprintf("%s/openssl.cnf", en->tls_dir);
    char *ca_key = xasprintf("%s/ca.key", en->tls_dir);
    char *ca_crt = xasprintf("%s/ca.crt", en->tls_dir);
    char *marker = xasprintf("%s/server.host", en->tls_dir);
    /* what the certificate names besides localhost, 127.0.0.1 and ::1 */
    bool extra = strcmp(host, "localhost") && strcmp(host, "127.0.0.1") && strcmp(host, "::1");
    /* the marker names the host and the set of names (certificates made before localhost
     * was among them are made again) */
    char *made_for_want = xasprintf("%s %s", TLS_NAMES_VERSION, host);
    char *text = xasprintf("# Generated by pgfleet.\n"
                           "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = pgfleet\n"
                           "[ca_ext]\nbasicConstraints = critical,CA:TRUE\n"
                           "keyUsage = critical,keyCertSign,cRLSign\n"
                           "subjectKeyIdentifier = hash\n"
                           "[srv_ext]\nbasicConstraints = critical,CA:FALSE\n"
                           "keyUsage = critical,digitalSignature,keyEncipherment\n"
                           "extendedKeyUsage = serverAuth\n"
                           "subjectAltName = @alt\n"
                           "subjectKeyIdentifier = hash\n"
                           "authorityKeyIdentifier = keyid\n"
                           "[alt]\nDNS.1 = localhost\nIP.1 = 127.0.0.1\nIP.2 = ::1\n%s%s%s\n",
                           extra ? (is_ip(host) ? "IP.3 = " : "DNS.2 = ") : "", extra ? host : "",
                           extra ? "\n" : "");
    if (fs_write_atomic(cnf, text, strlen(text), 0600, NULL, e) < 0)
        goto out;
    if (!fs_exists(ca_key) || !fs_exists(ca_crt)) {
        if (make_ca(en, cnf, e) < 0)
            goto out;
        unlink(marker); /* a new CA: the server certificate must be signed again */
    }
    char *made_for = fs_read_file(marker, NULL);
    bool current = made_for && strcmp(made_for, made_for_want) == 0 && fs_exists(en->tls_cert) &&
                   fs_exists(en->tls_key);
    free(made_for);
    if (!current) {
        if (make_server(en, cnf, host, e) < 0)
            goto out;
        if (fs_write_atomic(marker, made_for_want, strlen(made_for_want), 0644, NULL, e) < 0)
            goto out;
    }
    en->tls_ca = xstrdup(ca_crt);
    ret = 0;
out:
    free(cnf);
    free(ca_key);
    free(ca_crt);
    free(marker);
    free(made_for_want);
    free(text);
    return ret;
}

/* The public key (PEM) of a certificate or a key, through the openssl CLI. */
static char *public_key_of(const char *path, bool cert)
{
    const char *xargv[] = {OPENSSL_BIN, "x509", "-in", path, "-noout", "-pubkey", NULL};
    const char *kargv[] = {OPENSSL_BIN, "pkey", "-in", path, "-pubout", NULL};
    proc_opts o = {.argv = cert ? xargv : kargv, .cwd = "/"};
    char out[4096];
    int rc = proc_run(&o, out, sizeof out, OPENSSL_TIMEOUT_MS, NULL);
    if (rc != 0 || !strstr(out, "-----BEGIN PUBLIC KEY-----"))
        return NULL;
    return xstrdup(strstr(out, "-----BEGIN PUBLIC KEY-----"));
}

/* A given certificate and key that belong together (so a renewal half written, or a
 * mistaken pair, is never served). */
static int check_pair(const char *cert, const char *key, pf_err *e)
{
    char *a = public_key_of(cert, true), *b = public_key_of(key, false);
    int rc = 0;
    if (!a)
        rc = err_internal(e, "%s is not a PEM certificate", cert);
    else if (!b)
        rc = err_internal(e, "%s is not a PEM private key", key);
    else if (strcmp(a, b) != 0)
        rc = err_internal(e, "the key %s does not belong to the certificate %s", key, cert);
    free(a);
    free(b);
    return rc;
}

/* True when the file at src differs from the copy at dst (or either is unreadable). */
static bool differs(const char *src, const char *dst)
{
    size_t la = 0, lb = 0;
    char *a = fs_read_file(src, &la), *b = fs_read_file(dst, &lb);
    bool d = !a || !b || la != lb || memcmp(a, b, la) != 0;
    if (a)
        sodium_memzero(a, la);
    if (b)
        sodium_memzero(b, lb);
    free(a);
    free(b);
    return d;
}

/* Copies the given pair into tls/ (checked first). */
static int install_given(engine *en, pf_err *e)
{
    if (check_pair(en->tls_given_cert, en->tls_given_key, e) < 0)
        return -1;
    if (copy_file(en->tls_given_cert, en->tls_cert, 0644, NULL, e) < 0 ||
        copy_file(en->tls_given_key, en->tls_key, 0600, &en->user, e) < 0)
        return -1;
    return 0;
}

bool engine_tls_given_changed(engine *en)
{
    if (!en->tls_given_cert)
        return false;
    return differs(en->tls_given_cert, en->tls_cert) || differs(en->tls_given_key, en->tls_key);
}

int engine__tls_refresh(engine *en, bool *changed, pf_err *e)
{
    *changed = false;
    if (!engine_tls_given_changed(en))
        return 0;
    if (install_given(en, e) < 0)
        return -1;
    *changed = true;
    log_sub(LOG_INFO, "tls", "copied the renewed certificate %s", en->tls_given_cert);
    return 0;
}

int engine__tls_ensure(engine *en, const engine_config *cfg, pf_err *e)
{
    en->tls_dir = xasprintf("%s/tls", en->home);
    en->tls_cert = xasprintf("%s/server.crt", en->tls_dir);
    en->tls_key = xasprintf("%s/server.key", en->tls_dir);
    if (fs_mkdirs(en->tls_dir, 0711, NULL, e) < 0 || own_file(en->tls_dir, 0711, NULL, e) < 0)
        goto fail;
    if (cfg->tls_cert || cfg->tls_key) {
        if (!cfg->tls_cert || !cfg->tls_key) {
            err_internal(e, "--tls-cert and --tls-key go together");
            goto fail;
        }
        en->tls_given_cert = xstrdup(cfg->tls_cert);
        en->tls_given_key = xstrdup(cfg->tls_key);
        if (install_given(en, e) < 0)
            goto fail;
        /* a later start without the flags makes its own certificate again */
        char *marker = xasprintf("%s/server.host", en->tls_dir);
        unlink(marker);
        free(marker);
        if (cfg->tls_ca) {
            char *ca = xasprintf("%s/given-ca.crt", en->tls_dir);
            if (copy_file(cfg->tls_ca, ca, 0644, NULL, e) < 0) {
                free(ca);
                goto fail;
            }
            en->tls_ca = ca;
        }
        log_sub(LOG_INFO, "tls", "serving the given certificate %s", cfg->tls_cert);
        return 0;
    }
    const char *host = cfg->tls_host ? cfg->tls_host : "127.0.0.1";
    if (!valid_host(host)) {
        err_internal(e, "public host '%s' cannot name a certificate (use --tls-cert)", host);
        goto fail;
    }
    if (generate(en, host, e) < 0)
        goto fail;
    return 0;
fail:
    engine__disk_full_is_transient(e);
    err_prefix(e, "while preparing TLS in %s/tls: ", en->home);
    return -1;
}

void engine__tls_free(engine *en)
{
    free(en->tls_dir);
    free(en->tls_cert);
    free(en->tls_key);
    free(en->tls_ca);
    free(en->tls_given_cert);
    free(en->tls_given_key);
    en->tls_dir = en->tls_cert = en->tls_key = en->tls_ca = NULL;
    en->tls_given_cert = en->tls_given_key = NULL;
}

const char *engine_tls_ca_path(engine *en)
{
    return en->tls_ca;
}
