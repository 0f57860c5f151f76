/*
 * admin_tls.h — OpenSSL contexts for the admin API's server and client
 * (private to src/daemon; the settings are tm_admin_tls_t and
 * tm_admin_client_tls_t in admin.h).
 *
 * Invariants:
 *   1. A context is built whole or not at all: every file is loaded and
 *      checked (certificate, key, their match, the CAs) before it is returned,
 *      so a daemon with a bad file stops at start, never at the first client.
 *   2. Only TLS 1.2 and 1.3, forward-secret AEAD ciphers, no renegotiation.
 *   3. A key file is never read with a passphrase prompt: an encrypted key is
 *      an error, not a read from the terminal.
 *   4. Messages name the option and the file, never the file's contents.
 *
 * Thread: any; a context is used by one thread at a time.
 */
#ifndef TM_DAEMON_ADMIN_TLS_H
#define TM_DAEMON_ADMIN_TLS_H

#include "daemon/admin.h"

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

/* True when `tls` asks for TLS (a certificate or a key is set). */
bool tm__admin_tls_enabled(const tm_admin_tls_t *tls);

/*
 * Builds the server's context from `tls` (tm__admin_tls_enabled() must be
 * true).  Returns 0 and sets *out (SSL_CTX_free() it), or TM_ECONFIG /
 * TM_ENOMEM with errstr filled.
 */
int tm__admin_tls_server_ctx(const tm_admin_tls_t *tls, SSL_CTX **out, char *errstr,
                             size_t errstr_size);

/*
 * Builds a client context that verifies the server against tls->ca_file (or
 * the system's trust store) and presents tls->cert if set.  `tls` may be
 * NULL.  Returns 0 and sets *out, or TM_ECONFIG / TM_ENOMEM.
 */
int tm__admin_tls_client_ctx(const tm_admin_client_tls_t *tls, SSL_CTX **out, char *errstr,
                             size_t errstr_size);

/*
 * Appends OpenSSL's queued errors to `buf` as "; reason; reason" (at most
 * `len` bytes in all) and clears the queue.
 */
void tm__admin_tls_errors(char *buf, size_t len);

#endif
