/*
 * admin_tls.c — OpenSSL contexts for the admin API (see admin_tls.h).
 *
 * Each file is first opened by us, so that a missing or unreadable one is
 * reported with the system's reason (errno) rather than OpenSSL's, and then
 * handed to OpenSSL, whose failure then means "not PEM" or "not this kind of
 * PEM".  A value may also be the PEM text itself (it starts with
 * "-----BEGIN "), as `${file:…}` or `${env:…}` give it: it is parsed from
 * memory, and messages then say "(inline PEM)" instead of the value, so a key
 * never reaches a message or a log.  The server's context is built at start (tm_admin_check_tls() builds
 * and frees one too, so that `explain` and the checks before any side effect
 * see the same errors).
 *
 * Thread: any.
 */
#include "daemon/admin_tls.h"
#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <ctype.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * TLS 1.2 suites with forward secrecy and AEAD only (Mozilla's
 * "intermediate" list without DHE, whose parameters we would have to ship).
 * TLS 1.3 suites are all acceptable and keep OpenSSL's defaults.
 */
#define TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"
/* A PEM file larger than this is not a certificate, key or CA bundle we read. */
#define PEM_MAX (4 << 20)

bool tm__admin_tls_enabled(const tm_admin_tls_t *tls)
{
    return tls != NULL && ((tls->cert != NULL && tls->cert[0] != '\0') ||
                           (tls->key != NULL && tls->key[0] != '\0'));
}

void tm__admin_tls_errors(char *buf, size_t len)
{
    size_t n = strlen(buf);
    unsigned long e;
    while ((e = ERR_get_error()) != 0) {
        const char *why = ERR_reason_error_string(e);
        if (n + 3 < len && why != NULL) {
            int w = snprintf(buf + n, len - n, "; %s", why);
            if (w > 0)
                n += (size_t)w < len - n ? (size_t)w : len - n - 1;
        }
    }
}

/* True if `v` is PEM text rather than a path. */
static bool is_inline(const char *v)
{
    while (isspace((unsigned char)*v))
        v++;
    return strncmp(v, "-----BEGIN ", 11) == 0;
}

/* What a message shows for a value: the path, never inline PEM. */
static const char *shown(const char *v)
{
    return is_inline(v) ? "(inline PEM)" : v;
}

/*
 * Reads a PEM file whole (at most PEM_MAX bytes, NUL-terminated) so that its
 * kind can be told from its armour; inline PEM is copied.  Returns 0, or
 * TM_ECONFIG naming `what` (the option) and the file.
 */
static int read_pem(const char *what, const char *path, char **out, char *errstr,
                    size_t errstr_size)
{
    *out = NULL;
    if (is_inline(path)) {
        *out = strdup(path);
        return *out ? 0 : tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "%s %s cannot be read (%s); give the path of a PEM file the daemon's "
                         "user can read",
                         what, path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > PEM_MAX) {
        close(fd);
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "%s %s is not a regular PEM file (a directory, a device, or larger "
                         "than %d MiB)",
                         what, path, PEM_MAX >> 20);
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        close(fd);
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    }
    size_t len = 0;
    while (len < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int saved = n < 0 ? errno : EIO;
            close(fd);
            free(buf);
            return tm_seterr(errstr, errstr_size, TM_ECONFIG, "%s %s cannot be read (%s)", what,
                             path, strerror(saved));
        }
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    *out = buf;
    return 0;
}

/* A passphrase callback that refuses, so OpenSSL never prompts on the terminal (invariant 3). */
static int no_passphrase(char *buf, int size, int rwflag, void *arg)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)arg;
    return -1;
}

/* SSL_CTX_use_certificate_chain_file() for a path or inline PEM.  Returns 1 on success. */
static int use_chain(SSL_CTX *ctx, const char *v)
{
    if (!is_inline(v))
        return SSL_CTX_use_certificate_chain_file(ctx, v);
    BIO *b = BIO_new_mem_buf(v, -1);
    X509 *x = b ? PEM_read_bio_X509_AUX(b, NULL, no_passphrase, NULL) : NULL;
    int ok = x != NULL && SSL_CTX_use_certificate(ctx, x) == 1;
    X509_free(x);
    SSL_CTX_clear_chain_certs(ctx);
    while (ok && (x = PEM_read_bio_X509(b, NULL, no_passphrase, NULL)) != NULL) {
        if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
            X509_free(x);
            ok = 0;
        }
    }
    /* The loop ends at the end of the text, which OpenSSL queues as an error. */
    if (ok)
        ERR_clear_error();
    BIO_free(b);
    return ok;
}

/* SSL_CTX_use_PrivateKey_file() for a path or inline PEM.  Returns 1 on success. */
static int use_key(SSL_CTX *ctx, const char *v)
{
    if (!is_inline(v))
        return SSL_CTX_use_PrivateKey_file(ctx, v, SSL_FILETYPE_PEM);
    BIO *b = BIO_new_mem_buf(v, -1);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL) : NULL;
    int ok = k != NULL && SSL_CTX_use_PrivateKey(ctx, k) == 1;
    EVP_PKEY_free(k);
    BIO_free(b);
    return ok;
}

/*
 * SSL_CTX_load_verify_locations() for a path or inline PEM; with
 * `client_list`, the CAs' names also become the list a server sends to
 * clients.  Returns 1 on success.
 */
static int use_cas(SSL_CTX *ctx, const char *v, bool client_list)
{
    if (!is_inline(v)) {
        if (SSL_CTX_load_verify_locations(ctx, v, NULL) != 1)
            return 0;
        STACK_OF(X509_NAME) *names = client_list ? SSL_load_client_CA_file(v) : NULL;
        if (names != NULL)
            SSL_CTX_set_client_CA_list(ctx, names);
        return 1;
    }
    BIO *b = BIO_new_mem_buf(v, -1);
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    int n = 0;
    X509 *x;
    while (b != NULL && (x = PEM_read_bio_X509(b, NULL, no_passphrase, NULL)) != NULL) {
        if (X509_STORE_add_cert(store, x) == 1 && (!client_list || SSL_CTX_add_client_CA(ctx, x)))
            n++;
        X509_free(x);
    }
    BIO_free(b);
    if (n > 0)
        ERR_clear_error();
    return n > 0;
}

static SSL_CTX *new_ctx(const SSL_METHOD *method)
{
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS);
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    return ctx;
}

/*
 * Loads a certificate chain and its key into `ctx`.  `cert_opt` and
 * `key_opt` name the settings in messages ("admin_tls_cert", "--cert").
 */
static int load_pair(SSL_CTX *ctx, const char *cert_opt, const char *cert, const char *key_opt,
                     const char *key, char *errstr, size_t errstr_size)
{
    char *pem = NULL;
    int rc = read_pem(cert_opt, cert, &pem, errstr, errstr_size);
    if (rc != 0)
        return rc;
    bool has_cert = strstr(pem, "-----BEGIN CERTIFICATE-----") != NULL;
    bool cert_has_key = strstr(pem, "PRIVATE KEY-----") != NULL;
    free(pem);
    char why[256] = "";
    ERR_clear_error();
    if (!has_cert || use_chain(ctx, cert) != 1) {
        tm__admin_tls_errors(why, sizeof(why));
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "%s %s holds no PEM certificate%s (%s); give the server's certificate "
                         "(then its chain) in PEM, e.g. from 'openssl req -x509 -newkey "
                         "ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem -out "
                         "cert.pem'",
                         cert_opt, shown(cert),
                         cert_has_key ? " (it holds a private key: swapped with the key?)" : "",
                         why[0] ? why + 2 : "no BEGIN CERTIFICATE block");
    }
    rc = read_pem(key_opt, key, &pem, errstr, errstr_size);
    if (rc != 0)
        return rc;
    bool encrypted = strstr(pem, "ENCRYPTED") != NULL;
    bool has_key = strstr(pem, "PRIVATE KEY-----") != NULL;
    explicit_bzero(pem, strlen(pem));
    free(pem);
    if (encrypted)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "%s %s is encrypted with a passphrase, which the daemon cannot ask "
                         "for; store it unencrypted with tight permissions ('openssl pkey -in "
                         "KEY -out NEW.pem', mode 0600 or a systemd credential)",
                         key_opt, shown(key));
    ERR_clear_error();
    bool loaded = has_key && use_key(ctx, key) == 1;
    why[0] = '\0';
    tm__admin_tls_errors(why, sizeof(why));
    /* OpenSSL checks the pair as it loads the key; a mismatch is reported below. */
    if (!loaded && strstr(why, "mismatch") == NULL) {
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "%s %s holds no PEM private key (%s); give the key the certificate %s "
                         "was made with",
                         key_opt, shown(key), why[0] ? why + 2 : "no BEGIN PRIVATE KEY block",
                         shown(cert));
    }
    ERR_clear_error();
    if (!loaded || SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "%s %s does not belong to the certificate in %s %s; give the key the "
                         "certificate was made with (compare 'openssl x509 -noout -pubkey -in "
                         "CERT' with 'openssl pkey -pubout -in KEY')",
                         key_opt, shown(key), cert_opt, shown(cert));
    }
    return 0;
}

/* Loads a CA bundle for verification into `ctx` (`client_list`: see use_cas()). */
static int load_cas(SSL_CTX *ctx, const char *opt, const char *path, bool client_list,
                    char *errstr, size_t errstr_size)
{
    char *pem = NULL;
    int rc = read_pem(opt, path, &pem, errstr, errstr_size);
    if (rc != 0)
        return rc;
    bool has_cert = strstr(pem, "-----BEGIN CERTIFICATE-----") != NULL;
    free(pem);
    char why[256] = "";
    ERR_clear_error();
    if (!has_cert || use_cas(ctx, path, client_list) != 1) {
        tm__admin_tls_errors(why, sizeof(why));
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "%s %s holds no PEM certificate (%s); give the CA certificate(s) in "
                         "PEM (for a self-signed server certificate, that certificate itself)",
                         opt, shown(path), why[0] ? why + 2 : "no BEGIN CERTIFICATE block");
    }
    return 0;
}

static bool set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

int tm__admin_tls_server_ctx(const tm_admin_tls_t *tls, SSL_CTX **out, char *errstr,
                             size_t errstr_size)
{
    *out = NULL;
    if (!set(tls->cert) || !set(tls->key))
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "admin TLS needs both admin_tls_cert and admin_tls_key (%s is not set)",
                         set(tls->cert) ? "admin_tls_key" : "admin_tls_cert");
    SSL_CTX *ctx = new_ctx(TLS_server_method());
    if (ctx == NULL)
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "cannot create a TLS context");
    /* The server's order is the better one: it lists strong suites first. */
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    int rc = load_pair(ctx, "admin_tls_cert", tls->cert, "admin_tls_key", tls->key, errstr,
                       errstr_size);
    if (rc == 0 && set(tls->client_ca)) {
        /* The CAs' names are also what a client is told to choose its certificate by. */
        rc = load_cas(ctx, "admin_tls_client_ca", tls->client_ca, true, errstr, errstr_size);
        if (rc == 0)
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    if (rc != 0) {
        SSL_CTX_free(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

int tm__admin_tls_client_ctx(const tm_admin_client_tls_t *tls, SSL_CTX **out, char *errstr,
                             size_t errstr_size)
{
    *out = NULL;
    SSL_CTX *ctx = new_ctx(TLS_client_method());
    if (ctx == NULL)
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "cannot create a TLS context");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int rc = 0;
    if (tls != NULL && set(tls->ca_file))
        rc = load_cas(ctx, "the CA file (--cacert, TIDEMARK_ADMIN_CACERT)", tls->ca_file, false,
                      errstr, errstr_size);
    else
        SSL_CTX_set_default_verify_paths(ctx);
    if (rc == 0 && tls != NULL && (set(tls->cert) || set(tls->key))) {
        if (!set(tls->cert) || !set(tls->key))
            rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                           "a client certificate needs both --cert and --key "
                           "(TIDEMARK_ADMIN_CERT, TIDEMARK_ADMIN_KEY)");
        else
            rc = load_pair(ctx, "the client certificate (--cert, TIDEMARK_ADMIN_CERT)",
                           tls->cert, "the client key (--key, TIDEMARK_ADMIN_KEY)", tls->key,
                           errstr, errstr_size);
    }
    if (rc != 0) {
        SSL_CTX_free(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}
