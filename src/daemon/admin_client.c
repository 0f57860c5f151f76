/*
 * admin_client.c — a small blocking HTTP/1.1 client for the admin API, and
 * the `tidemark savepoint`, `tidemark stop` and `tidemark status` commands
 * built on it (see admin.h).
 *
 * The client opens one connection per request (Connection: close), bounds
 * the connect and the whole exchange by a deadline with poll(2), and reads
 * the answer up to Content-Length or the end of the stream.  It talks to one
 * server, ours, so it reads only what evhttp sends: no chunked encoding, no
 * redirects.  An "https://" address is spoken to over TLS 1.2+ (OpenSSL, on
 * the same non-blocking socket and deadline), verifying the server's
 * certificate chain and its name or IP address; nothing is sent before the
 * handshake has verified the server, so a token never goes to an impostor.
 *
 * The commands wait for a savepoint with a long poll (GET
 * /v1/savepoints/N?wait_ms=M), issued again whenever it returns "in_progress",
 * but never more often than every 200 ms.  The daemon answers a held poll
 * even as it exits after a stop-with-savepoint, so `stop --savepoint` learns
 * the path; a daemon that closed before any poll was held is reported as
 * such, with a pointer to its log.
 *
 * Thread: main (the CLI); tm_admin_request() on any thread.
 */
#include "daemon/admin.h"
#include "daemon/admin_tls.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/options.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_RESPONSE (8 * 1024 * 1024)
#define POLL_INTERVAL_MS 200
#define LONG_POLL_MS 5000
#define REQUEST_MS 30000
#define DEFAULT_TIMEOUT_MS (10 * 60 * 1000)
#define STATUS_TIMEOUT_MS 10000

/* ---- the HTTP client ---- */

/* Splits "HOST:PORT" or "[V6]:PORT".  Returns 0 or TM_EINVAL. */
static int split_addr(const char *addr, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *h = addr, *p;
    size_t n;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':')
            return TM_EINVAL;
        h = addr + 1;
        n = (size_t)(close - h);
        p = close + 2;
    } else {
        const char *colon = strrchr(addr, ':');
        if (colon == NULL || memchr(addr, ':', (size_t)(colon - addr)) != NULL)
            return TM_EINVAL;
        n = (size_t)(colon - addr);
        p = colon + 1;
    }
    if (n == 0 || n >= hostlen || p[0] == '\0' || strlen(p) >= portlen ||
        strspn(p, "0123456789") != strlen(p))
        return TM_EINVAL;
    memcpy(host, h, n);
    host[n] = '\0';
    snprintf(port, portlen, "%s", p);
    return 0;
}

static int remaining_ms(int64_t deadline_ms)
{
    int64_t left = deadline_ms - tm_mono_ms();
    return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/*
 * Connects to the first address of `host` that accepts before the deadline.
 * Returns the socket, or a negative TM_E* code with errstr filled.
 */
static int connect_before(const char *addr, const char *host, const char *port,
                          int64_t deadline_ms, char *errstr, size_t errstr_size)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0)
        return tm_seterr(errstr, errstr_size, TM_ECONN, "cannot resolve %s (%s)", addr,
                         gai_strerror(gai));
    int rc = TM_ECONN, saved = ECONNREFUSED;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
            saved = errno;
            close(fd);
            continue;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int n;
        do
            n = poll(&pfd, 1, remaining_ms(deadline_ms));
        while (n < 0 && errno == EINTR);
        if (n == 0) {
            close(fd);
            rc = TM_EAGAIN;
            saved = ETIMEDOUT;
            break;
        }
        int soerr = 0;
        socklen_t len = sizeof(soerr);
        if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0) {
            saved = soerr ? soerr : errno;
            close(fd);
            continue;
        }
        freeaddrinfo(res);
        return fd;
    }
    freeaddrinfo(res);
    return tm_seterr(errstr, errstr_size, rc, "cannot connect to %s (%s)", addr,
                     strerror(saved));
}

/* One connection: a socket, with an SSL on it for https://. */
typedef struct io {
    int fd;
    SSL *ssl;          /* NULL: plain */
    int ssl_err;       /* the last SSL_get_error() that was not WANT_* */
    char ssl_why[256]; /* OpenSSL's reasons for it */
} io_t;

/* Waits until `fd` is ready for `events` or the deadline passes.  Returns 0 or TM_EAGAIN. */
static int wait_fd(int fd, short events, int64_t deadline_ms)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    int n;
    do {
        int left = remaining_ms(deadline_ms);
        if (left == 0)
            return TM_EAGAIN;
        n = poll(&pfd, 1, left);
    } while (n < 0 && errno == EINTR);
    return n > 0 ? 0 : TM_EAGAIN;
}

/*
 * After an SSL call returned `n` <= 0: waits as OpenSSL asks and returns 1
 * to retry, or records the error and returns 0 (with errno meaningful for
 * SSL_ERROR_SYSCALL) or TM_EAGAIN at the deadline.
 */
static int ssl_retry(io_t *io, int n, int64_t deadline_ms)
{
    int err = SSL_get_error(io->ssl, n);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        int rc = wait_fd(io->fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline_ms);
        return rc == 0 ? 1 : rc;
    }
    io->ssl_err = err;
    io->ssl_why[0] = '\0';
    tm__admin_tls_errors(io->ssl_why, sizeof(io->ssl_why));
    return 0;
}

static int send_all(io_t *io, const char *p, size_t len, int64_t deadline_ms)
{
    while (len > 0) {
        if (io->ssl != NULL) {
            ERR_clear_error();
            int n = SSL_write(io->ssl, p, len > INT_MAX ? INT_MAX : (int)len);
            if (n > 0) {
                p += n;
                len -= (size_t)n;
                continue;
            }
            int rc = ssl_retry(io, n, deadline_ms);
            if (rc == 1)
                continue;
            return rc == 0 ? TM_EIO : rc;
        }
        ssize_t n = send(io->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return TM_EIO;
        if (wait_fd(io->fd, POLLOUT, deadline_ms) != 0)
            return TM_EAGAIN;
    }
    return 0;
}

/*
 * Reads what is there into buf[0, cap).  Returns the bytes read, 0 at the
 * end of the stream, TM_EAGAIN at the deadline, or TM_EIO (errno set, or
 * io->ssl_err for TLS).
 */
static ssize_t recv_some(io_t *io, char *buf, size_t cap, int64_t deadline_ms)
{
    for (;;) {
        if (io->ssl != NULL) {
            ERR_clear_error();
            int n = SSL_read(io->ssl, buf, cap > INT_MAX ? INT_MAX : (int)cap);
            if (n > 0)
                return n;
            int rc = ssl_retry(io, n, deadline_ms);
            if (rc == 1)
                continue;
            if (rc != 0)
                return rc;
            /* The server closed: with close_notify, or without (evhttp may just close). */
            if (io->ssl_err == SSL_ERROR_ZERO_RETURN ||
                (io->ssl_err == SSL_ERROR_SYSCALL && io->ssl_why[0] == '\0' && errno == 0))
                return 0;
            if (io->ssl_err == SSL_ERROR_SSL && strstr(io->ssl_why, "unexpected eof") != NULL)
                return 0;
            return TM_EIO;
        }
        ssize_t n = recv(io->fd, buf, cap, 0);
        if (n >= 0)
            return n;
        if (errno != EAGAIN && errno != EINTR)
            return TM_EIO;
        if (wait_fd(io->fd, POLLIN, deadline_ms) != 0)
            return TM_EAGAIN;
    }
}

/* True if `host` is a numeric IPv4 or IPv6 address. */
static bool is_ip(const char *host)
{
    unsigned char b[16];
    return inet_pton(AF_INET, host, b) == 1 || inet_pton(AF_INET6, host, b) == 1;
}

/*
 * The TLS handshake on io->fd, verifying the server's chain and that its
 * certificate is for `name` (a host name or an IP address).  Returns 0, or
 * TM_EPROTO / TM_EAGAIN / TM_ENOMEM with errstr saying what to do.
 */
static int tls_handshake(io_t *io, SSL_CTX *ctx, const char *addr, const char *name,
                         int64_t deadline_ms, char *errstr, size_t errstr_size)
{
    io->ssl = SSL_new(ctx);
    if (io->ssl == NULL || SSL_set_fd(io->ssl, io->fd) != 1)
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    X509_VERIFY_PARAM *vp = SSL_get0_param(io->ssl);
    if (is_ip(name)) {
        X509_VERIFY_PARAM_set1_ip_asc(vp, name);
    } else {
        SSL_set_tlsext_host_name(io->ssl, name);
        X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        X509_VERIFY_PARAM_set1_host(vp, name, 0);
    }
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int n = SSL_connect(io->ssl);
        if (n == 1)
            return 0;
        int rc = ssl_retry(io, n, deadline_ms);
        if (rc == 1)
            continue;
        if (rc == TM_EAGAIN)
            return tm_seterr(errstr, errstr_size, TM_EAGAIN,
                             "%s did not complete the TLS handshake in time", addr);
        break;
    }
    long vr = SSL_get_verify_result(io->ssl);
    if (vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH)
        return tm_seterr(errstr, errstr_size, TM_EPROTO,
                         "the admin API at %s presented a certificate that is not for %s; connect "
                         "by a name the certificate has (--admin https://NAME:PORT), or pass "
                         "--tls-server-name NAME (TIDEMARK_ADMIN_TLS_SERVER_NAME)",
                         addr, name);
    if (vr != X509_V_OK)
        return tm_seterr(errstr, errstr_size, TM_EPROTO,
                         "the admin API at %s presented a certificate that is not trusted (%s); "
                         "pass --cacert FILE (or TIDEMARK_ADMIN_CACERT) with the CA that signed "
                         "it, or the certificate itself if it is self-signed",
                         addr, X509_verify_cert_error_string(vr));
    if (strstr(io->ssl_why, "wrong version number") != NULL ||
        strstr(io->ssl_why, "packet length too long") != NULL ||
        strstr(io->ssl_why, "record layer failure") != NULL)
        return tm_seterr(errstr, errstr_size, TM_EPROTO,
                         "%s does not speak TLS (%s); the daemon serves plain HTTP unless "
                         "admin_tls_cert is set: use the address without https://",
                         addr, io->ssl_why[0] ? io->ssl_why + 2 : "handshake failed");
    return tm_seterr(errstr, errstr_size, TM_EPROTO,
                     "the TLS handshake with %s failed (%s)%s", addr,
                     io->ssl_why[0] ? io->ssl_why + 2
                     : errno     ? strerror(errno)
                                 : "the server closed the connection",
                     strstr(io->ssl_why, "certificate") != NULL
                         ? "; the daemon may require a client certificate (admin_tls_client_ca): "
                           "pass --cert and --key (TIDEMARK_ADMIN_CERT, TIDEMARK_ADMIN_KEY)"
                         : "");
}

/* Finds header `name` in the header block [h, end); returns its value or NULL. */
static const char *find_header(const char *h, const char *end, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    while (h < end) {
        const char *eol = memchr(h, '\n', (size_t)(end - h));
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - h) > nlen && strncasecmp(h, name, nlen) == 0 && h[nlen] == ':') {
            const char *v = h + nlen + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        h = eol + 1;
    }
    return NULL;
}

/*
 * Splits off an address's scheme: sets *tls for "https://", and returns the
 * HOST:PORT part ("http://" and no scheme: plain).
 */
static const char *strip_scheme(const char *addr, bool *tls)
{
    *tls = strncasecmp(addr, "https://", 8) == 0;
    if (*tls)
        return addr + 8;
    return strncasecmp(addr, "http://", 7) == 0 ? addr + 7 : addr;
}

int tm_admin_request(const char *addr, const char *token, const char *method, const char *path,
                     const char *body, int timeout_ms, int *status, tm_buf_t *resp, char *errstr,
                     size_t errstr_size)
{
    return tm_admin_request_tls(addr, NULL, token, method, path, body, timeout_ms, status, resp,
                                errstr, errstr_size);
}

int tm_admin_request_tls(const char *addr, const tm_admin_client_tls_t *tls, const char *token,
                         const char *method, const char *path, const char *body, int timeout_ms,
                         int *status, tm_buf_t *resp, char *errstr, size_t errstr_size)
{
    char host[256], port[16];
    bool use_tls;
    const char *hostport = strip_scheme(addr, &use_tls);
    if (split_addr(hostport, host, sizeof(host), port, sizeof(port)) != 0)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "admin address '%s' is not HOST:PORT (e.g. 127.0.0.1:8081, [::1]:8081 "
                         "or https://127.0.0.1:8081)",
                         addr);
    for (const char *t = token; t && *t; t++)
        if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
            return tm_seterr(errstr, errstr_size, TM_EINVAL,
                             "the admin token contains a space or a non-printable character");
    int64_t deadline = tm_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    tm_buf_t req;
    tm_buf_init(&req);
    size_t blen = body ? strlen(body) : 0;
    int rc = tm_buf_appendf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tidemark/%s\r\n"
                                  "Accept: application/json\r\nConnection: close\r\n",
                            method, path, hostport, TM_VERSION);
    if (rc == 0 && token != NULL && token[0] != '\0') {
        rc = tm_buf_puts(&req, "Authorization: Bearer ");
        rc = rc ? rc : tm_buf_puts(&req, token);
        rc = rc ? rc : tm_buf_puts(&req, "\r\n");
    }
    /* evhttp reads a POST body without Content-Length until the connection closes. */
    if (rc == 0 && (body != NULL || strcmp(method, "GET") != 0))
        rc = tm_buf_appendf(&req, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                            blen);
    rc = rc ? rc : tm_buf_puts(&req, "\r\n");
    rc = rc ? rc : tm_buf_append(&req, body ? body : "", blen);
    if (rc != 0) {
        explicit_bzero(req.data, req.cap);
        tm_buf_release(&req);
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    }

    /* The TLS context first: a bad --cacert is reported before any connection is made. */
    SSL_CTX *ctx = NULL;
    if (use_tls && (rc = tm__admin_tls_client_ctx(tls, &ctx, errstr, errstr_size)) != 0) {
        explicit_bzero(req.data, req.cap);
        tm_buf_release(&req);
        return rc;
    }
    io_t io = {.fd = -1};
    io.fd = connect_before(addr, host, port, deadline, errstr, errstr_size);
    rc = io.fd < 0 ? io.fd : 0;
    if (rc == 0 && use_tls)
        rc = tls_handshake(&io, ctx,
                           addr, tls != NULL && tls->server_name && tls->server_name[0]
                                     ? tls->server_name
                                     : host,
                           deadline, errstr, errstr_size);
    if (rc != 0) {
        explicit_bzero(req.data, req.cap);
        tm_buf_release(&req);
        SSL_free(io.ssl);
        SSL_CTX_free(ctx);
        if (io.fd >= 0)
            close(io.fd);
        return rc;
    }
    int fd = io.fd;
    rc = send_all(&io, req.data, req.len, deadline);
    explicit_bzero(req.data, req.cap);
    tm_buf_release(&req);
    if (rc != 0) {
        int saved = errno;
        SSL_free(io.ssl);
        SSL_CTX_free(ctx);
        close(fd);
        return rc == TM_EAGAIN
                   ? tm_seterr(errstr, errstr_size, TM_EAGAIN,
                               "%s did not take the request within %d ms", addr, timeout_ms)
                   : tm_seterr(errstr, errstr_size, TM_EIO, "sending to %s failed (%s)", addr,
                               strerror(saved));
    }

    /* Read until the server closes, or until the body announced by Content-Length is in. */
    tm_buf_t in;
    tm_buf_init(&in);
    bool have_headers = false;
    size_t body_off = 0, want = SIZE_MAX;
    int rerr = 0;
    rc = 0;
    for (;;) {
        if (!have_headers && in.len > 0) {
            char *e = memmem(in.data, in.len, "\r\n\r\n", 4);
            if (e != NULL) {
                have_headers = true;
                body_off = (size_t)(e - in.data) + 4;
                size_t vlen;
                const char *v = find_header(in.data, e + 2, "Content-Length", &vlen);
                if (v != NULL) {
                    char num[24];
                    snprintf(num, sizeof(num), "%.*s", (int)(vlen < 23 ? vlen : 23), v);
                    char *end;
                    unsigned long long x = strtoull(num, &end, 10);
                    if (end == num || *end != '\0' || x > MAX_RESPONSE) {
                        rc = TM_EPROTO;
                        break;
                    }
                    want = (size_t)x;
                }
                if (strcmp(method, "HEAD") == 0)
                    want = 0; /* Content-Length is the GET body's; none follows */
                if (find_header(in.data, e + 2, "Transfer-Encoding", &vlen) != NULL) {
                    rc = TM_EPROTO;
                    break;
                }
            }
        }
        if (have_headers && want != SIZE_MAX && in.len - body_off >= want)
            break;
        if (in.len > MAX_RESPONSE + 65536) {
            rc = TM_EPROTO;
            break;
        }
        if (tm_buf_reserve(&in, 16384) != 0) {
            rc = TM_ENOMEM;
            break;
        }
        errno = 0;
        ssize_t n = recv_some(&io, in.data + in.len, in.cap - in.len - 1, deadline);
        if (n > 0) {
            in.len += (size_t)n;
            in.data[in.len] = '\0';
            continue;
        }
        if (n == 0)
            break; /* closed: complete only if the headers and body are in (checked below) */
        rerr = errno;
        rc = (int)n;
        break;
    }
    /* No close_notify: the answer is complete by its length, and the server may be gone. */
    SSL_free(io.ssl);
    SSL_CTX_free(ctx);
    close(fd);
    int code = 0;
    if (rc == 0 && (!have_headers || (want != SIZE_MAX && in.len - body_off < want) ||
                    sscanf(in.data, "HTTP/1.%*d %3d", &code) != 1 || code < 100 || code > 599))
        rc = in.len == 0 ? TM_EIO : TM_EPROTO;
    /* A TLS record (an alert, a handshake) where an HTTP status line should be. */
    bool tls_answer = !use_tls && in.len > 0 && (in.data[0] == 0x15 || in.data[0] == 0x16);
    if (rc != 0) {
        tm_buf_release(&in);
        if (tls_answer)
            return tm_seterr(errstr, errstr_size, TM_EPROTO,
                             "%s answered with TLS: the daemon serves the admin API over TLS "
                             "(admin_tls_cert); use https://%s",
                             addr, hostport);
        switch (rc) {
        case TM_EAGAIN:
            return tm_seterr(errstr, errstr_size, rc, "%s did not answer within %d ms", addr,
                             timeout_ms);
        case TM_EIO:
            if (io.ssl_why[0] != '\0')
                return tm_seterr(errstr, errstr_size, rc,
                                 "%s ended the TLS session without an answer (%s)%s", addr,
                                 io.ssl_why + 2,
                                 strstr(io.ssl_why, "certificate") != NULL
                                     ? "; the daemon requires a client certificate "
                                       "(admin_tls_client_ca): pass --cert and --key "
                                       "(TIDEMARK_ADMIN_CERT, TIDEMARK_ADMIN_KEY)"
                                     : "");
            return tm_seterr(errstr, errstr_size, rc, "%s closed the connection without an "
                                                      "answer%s%s%s%s%s",
                             addr, rerr ? " (" : "", rerr ? strerror(rerr) : "",
                             rerr ? ")" : "",
                             use_tls ? ""
                                     : "; if the daemon serves TLS (admin_tls_cert), use https://",
                             use_tls ? "" : hostport);
        case TM_ENOMEM:
            return tm_seterr(errstr, errstr_size, rc, "out of memory");
        default:
            return tm_seterr(errstr, errstr_size, TM_EPROTO,
                             "%s sent an answer that is not an HTTP response of the tidemark "
                             "admin API",
                             addr);
        }
    }
    *status = code;
    tm_buf_clear(resp);
    size_t blen_in = want != SIZE_MAX ? want : in.len - body_off;
    rc = tm_buf_append(resp, in.data + body_off, blen_in);
    tm_buf_release(&in);
    if (rc != 0)
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    return 0;
}

/* ---- the commands ---- */

typedef struct cli {
    const char *cmd; /* "savepoint", "stop" or "status" */
    char *dir;       /* as given (relative: below the daemon's savepoint root), or NULL */
    const char *state_dir;
    bool state_dir_given;
    const char *admin;
    const char *token;
    tm_admin_client_tls_t tls; /* for an https:// address */
    bool savepoint;
    const char *probe; /* status: "/healthz" (--live), "/readyz" (--ready), or NULL */
    /* snapshot: the tables, filter, source, an action instead of a start, and --wait. */
    const char *tables[64];
    int ntables;
    const char *where;
    const char *source;
    const char *action; /* "pause", "resume", "cancel", "status" or NULL (start) */
    bool wait;
    int64_t timeout_ms;
    int64_t deadline_ms;
    char addr[300];
    char addr_file[4200]; /* "" unless the address came from a file */
    char from[4300];      /* where the address came from, for messages */
} cli_t;

static void usage(FILE *f, const char *cmd)
{
    if (strcmp(cmd, "snapshot") == 0)
        fprintf(f, "Usage: tidemark snapshot --table SCHEMA.TABLE [--table ...] [--where EXPR]\n"
                   "                         [--source NAME] [--wait] [--state-dir DIR | --admin "
                   "HOST:PORT]\n"
                   "       tidemark snapshot --status | --pause | --resume | --cancel [--source "
                   "NAME]\n"
                   "\n"
                   "Starts an incremental snapshot of a PostgreSQL source's tables while the job\n"
                   "streams (POST /v1/snapshots) and prints its id; or shows, pauses, resumes or\n"
                   "cancels the incremental snapshots.\n"
                   "\n"
                   "  --table T            a captured table to read again (repeatable)\n"
                   "  --where EXPR         read only the rows where EXPR holds (SQL, e.g.\n"
                   "                       \"created_at > now() - interval '1 day'\")\n"
                   "  --source NAME        the job's source table (default: the one that\n"
                   "                       captures the tables)\n"
                   "  --wait               wait until the snapshot is done, printing progress\n");
    else if (strcmp(cmd, "status") == 0)
        fprintf(f, "Usage: tidemark status [--live | --ready] [--state-dir DIR | --admin "
                   "HOST:PORT]\n"
                   "                       [--token TOKEN] [--timeout DURATION]\n"
                   "\n"
                   "Prints the running job's stages, sources and sinks (GET /v1/job).  With\n"
                   "--live or --ready it asks /healthz or /readyz instead and says only \"ok\" or\n"
                   "why not: a probe for systemd, Kubernetes or a script, which gets the token\n"
                   "from the environment (the daemon may require one on any address).\n"
                   "\n"
                   "  --live               exit 0 when the daemon answers /healthz with 200\n"
                   "  --ready              exit 0 when /readyz answers 200 (every source\n"
                   "                       connected and streaming)\n");
    else if (strcmp(cmd, "stop") == 0)
        fprintf(f, "Usage: tidemark stop [--savepoint] [--dir DIR] [--state-dir DIR | --admin "
                   "HOST:PORT]\n"
                   "                     [--token TOKEN] [--timeout DURATION]\n"
                   "\n"
                   "Stops the running job gracefully (a final checkpoint) and waits until the\n"
                   "daemon has exited.  With --savepoint it first takes a savepoint, prints its\n"
                   "path, and the job stops once the savepoint is complete.\n"
                   "\n"
                   "  --savepoint          take a savepoint, then stop\n"
                   "  --dir DIR            write the savepoint under DIR (needs --savepoint;\n"
                   "                       default: the job's savepoint directory)\n");
    else
        fprintf(f, "Usage: tidemark savepoint [--dir DIR] [--state-dir DIR | --admin HOST:PORT]\n"
                   "                          [--token TOKEN] [--timeout DURATION]\n"
                   "\n"
                   "Takes a savepoint of the running job, waits until it is complete and prints\n"
                   "its path.  The job keeps running.\n"
                   "\n"
                   "  --dir DIR            write the savepoint under DIR (default: the job's\n"
                   "                       savepoint directory)\n");
    fprintf(f, "  --state-dir DIR      find the daemon through DIR/admin.addr (default\n"
               "                       ./tidemark-state, then 127.0.0.1:8081)\n"
               "  --admin HOST:PORT    the daemon's admin address instead\n"
               "  --token TOKEN        the admin API's bearer token (default: the environment\n"
               "                       variable TIDEMARK_ADMIN_TOKEN, which ps cannot show)\n"
               "  --cacert FILE        for an https:// address: PEM CA(s) to verify the daemon\n"
               "                       with, or its self-signed certificate (default:\n"
               "                       TIDEMARK_ADMIN_CACERT, else the system's trust store)\n"
               "  --tls-server-name N  the name (or IP) the certificate must be for (default:\n"
               "                       TIDEMARK_ADMIN_TLS_SERVER_NAME, else the address's host)\n"
               "  --cert FILE, --key FILE\n"
               "                       a client certificate, for admin_tls_client_ca (default:\n"
               "                       TIDEMARK_ADMIN_CERT, TIDEMARK_ADMIN_KEY)\n"
               "  --timeout DURATION   give up after DURATION, e.g. 90s or 10m (default 10m;\n"
               "                       status: 10s)\n"
               "\n"
               "Exit codes: 0 done, 1 failed (the reason on stderr), 2 usage error.\n");
}

/* The TLS client options every command takes. */
#define TLS_OPTIONS                                                                                \
    {"cacert", required_argument, NULL, 'C'}, {"cert", required_argument, NULL, 'E'},             \
        {"key", required_argument, NULL, 'K'}, {"tls-server-name", required_argument, NULL, 'N'}

/* Option value `v`, else the environment variable `env` (NULL when neither is set or empty). */
static const char *or_env(const char *v, const char *env)
{
    if (v == NULL)
        v = getenv(env);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

/* Parses the command's arguments.  Returns -1 to go on, else the exit code. */
static int parse_args(cli_t *c, int argc, char **argv)
{
    static const struct option savepoint_opts[] = {
        {"dir", required_argument, NULL, 'd'},     {"state-dir", required_argument, NULL, 's'},
        {"admin", required_argument, NULL, 'a'},   {"token", required_argument, NULL, 't'},
        {"timeout", required_argument, NULL, 'T'}, {"help", no_argument, NULL, 'h'},
        TLS_OPTIONS, {NULL, 0, NULL, 0},
    };
    static const struct option status_opts[] = {
        {"live", no_argument, NULL, 'L'},          {"ready", no_argument, NULL, 'R'},
        {"state-dir", required_argument, NULL, 's'}, {"admin", required_argument, NULL, 'a'},
        {"token", required_argument, NULL, 't'},   {"timeout", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},          TLS_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    static const struct option stop_opts[] = {
        {"savepoint", no_argument, NULL, 'S'},     {"dir", required_argument, NULL, 'd'},
        {"state-dir", required_argument, NULL, 's'}, {"admin", required_argument, NULL, 'a'},
        {"token", required_argument, NULL, 't'},   {"timeout", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},          TLS_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    static const struct option snapshot_opts[] = {
        {"table", required_argument, NULL, 'b'},   {"where", required_argument, NULL, 'w'},
        {"source", required_argument, NULL, 'o'},  {"wait", no_argument, NULL, 'W'},
        {"status", no_argument, NULL, '1'},        {"pause", no_argument, NULL, '2'},
        {"resume", no_argument, NULL, '3'},        {"cancel", no_argument, NULL, '4'},
        {"state-dir", required_argument, NULL, 's'}, {"admin", required_argument, NULL, 'a'},
        {"token", required_argument, NULL, 't'},   {"timeout", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},          TLS_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    bool stop = strcmp(c->cmd, "stop") == 0, status = strcmp(c->cmd, "status") == 0;
    bool snap = strcmp(c->cmd, "snapshot") == 0;
    const char *dir = NULL;
    int opt;
    optind = 0; /* the top-level command line was parsed with getopt too */
    while ((opt = getopt_long(argc, argv, "+h",
                              snap     ? snapshot_opts
                              : status ? status_opts
                              : stop   ? stop_opts
                                       : savepoint_opts,
                              NULL)) != -1) {
        switch (opt) {
        case 'b':
            if (c->ntables == (int)(sizeof(c->tables) / sizeof(c->tables[0]))) {
                fprintf(stderr, "tidemark snapshot: at most 64 --table options\n");
                return TM_EXIT_CONFIG;
            }
            c->tables[c->ntables++] = optarg;
            break;
        case 'w':
            c->where = optarg;
            break;
        case 'o':
            c->source = optarg;
            break;
        case 'W':
            c->wait = true;
            break;
        case '1':
        case '2':
        case '3':
        case '4':
            if (c->action != NULL) {
                fprintf(stderr, "tidemark snapshot: pass one of --status, --pause, --resume, "
                                "--cancel\n");
                return TM_EXIT_CONFIG;
            }
            c->action = opt == '1' ? "status" : opt == '2' ? "pause" : opt == '3' ? "resume"
                                                                                 : "cancel";
            break;
        case 'L':
        case 'R':
            if (c->probe != NULL) {
                fprintf(stderr, "tidemark status: pass --live or --ready, not both\n");
                return TM_EXIT_CONFIG;
            }
            c->probe = opt == 'L' ? "/healthz" : "/readyz";
            break;
        case 'd':
            dir = optarg;
            break;
        case 's':
            c->state_dir = optarg;
            c->state_dir_given = true;
            break;
        case 'a':
            c->admin = optarg;
            break;
        case 't':
            c->token = optarg;
            break;
        case 'C':
            c->tls.ca_file = optarg;
            break;
        case 'E':
            c->tls.cert = optarg;
            break;
        case 'K':
            c->tls.key = optarg;
            break;
        case 'N':
            c->tls.server_name = optarg;
            break;
        case 'S':
            c->savepoint = true;
            break;
        case 'T':
            if (tm_parse_duration_ms(optarg, &c->timeout_ms) != 0 || c->timeout_ms <= 0) {
                fprintf(stderr, "tidemark %s: --timeout '%s' is not a duration; write e.g. "
                                "90s or 10m\n",
                        c->cmd, optarg);
                return TM_EXIT_CONFIG;
            }
            break;
        case 'h':
            usage(stdout, c->cmd);
            return TM_EXIT_OK;
        default:
            usage(stderr, c->cmd);
            return TM_EXIT_CONFIG;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tidemark %s: unexpected argument '%s'\n", c->cmd, argv[optind]);
        usage(stderr, c->cmd);
        return TM_EXIT_CONFIG;
    }
    char host[256], port[16];
    bool tls;
    if (c->admin != NULL &&
        split_addr(strip_scheme(c->admin, &tls), host, sizeof(host), port, sizeof(port)) != 0) {
        fprintf(stderr, "tidemark %s: --admin '%s' is not HOST:PORT (e.g. 127.0.0.1:8081, "
                        "[::1]:8081 or https://127.0.0.1:8081)\n",
                c->cmd, c->admin);
        return TM_EXIT_CONFIG;
    }
    if (c->admin != NULL && c->state_dir_given) {
        fprintf(stderr, "tidemark %s: pass --state-dir or --admin, not both\n", c->cmd);
        usage(stderr, c->cmd);
        return TM_EXIT_CONFIG;
    }
    if (snap && (c->action == NULL) == (c->ntables == 0)) {
        fprintf(stderr, c->action ? "tidemark snapshot: --%s takes no --table\n"
                                  : "tidemark snapshot: name a table with --table SCHEMA.TABLE%s\n",
                c->action ? c->action : "");
        usage(stderr, c->cmd);
        return TM_EXIT_CONFIG;
    }
    if (stop && dir != NULL && !c->savepoint) {
        fprintf(stderr, "tidemark stop: --dir needs --savepoint\n");
        usage(stderr, c->cmd);
        return TM_EXIT_CONFIG;
    }
    if (dir != NULL && dir[0] == '\0') {
        fprintf(stderr, "tidemark %s: --dir is empty\n", c->cmd);
        return TM_EXIT_CONFIG;
    }
    if (dir != NULL) {
        /*
         * A relative path is the daemon's to resolve, below its savepoint root
         * (savepoint_dir), not against our working directory.
         */
        while (dir[0] == '.' && dir[1] == '/')
            dir += 2;
        c->dir = strdup(dir[0] ? dir : ".");
        if (c->dir == NULL) {
            fprintf(stderr, "tidemark %s: out of memory\n", c->cmd);
            return TM_EXIT_FAILURE;
        }
    }
    if (c->token == NULL)
        c->token = getenv("TIDEMARK_ADMIN_TOKEN");
    c->tls.ca_file = or_env(c->tls.ca_file, "TIDEMARK_ADMIN_CACERT");
    c->tls.cert = or_env(c->tls.cert, "TIDEMARK_ADMIN_CERT");
    c->tls.key = or_env(c->tls.key, "TIDEMARK_ADMIN_KEY");
    c->tls.server_name = or_env(c->tls.server_name, "TIDEMARK_ADMIN_TLS_SERVER_NAME");
    return -1;
}

/* Reads the first line of `path` into `out`.  Returns 0, or -1 with errno set. */
static int read_addr_file(const char *path, char *out, size_t outlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, out, outlen - 1);
    int saved = errno;
    close(fd);
    if (n < 0) {
        errno = saved;
        return -1;
    }
    out[n] = '\0';
    out[strcspn(out, "\r\n \t")] = '\0';
    if (out[0] == '\0') {
        errno = ENODATA;
        return -1;
    }
    return 0;
}

/*
 * Finds the daemon's address: --admin, else <state-dir>/admin.addr, else (only
 * when --state-dir was not given) the default address.  An explicit state
 * directory without the file fails rather than guessing, so that `stop` never
 * reaches a daemon of another job.  Returns -1 to go on, else the exit code.
 */
static int find_daemon(cli_t *c)
{
    if (c->admin != NULL) {
        snprintf(c->addr, sizeof(c->addr), "%s", c->admin);
        snprintf(c->from, sizeof(c->from), "--admin");
        return -1;
    }
    snprintf(c->addr_file, sizeof(c->addr_file), "%s/%s", c->state_dir, TM_ADMIN_ADDR_FILE);
    if (read_addr_file(c->addr_file, c->addr, sizeof(c->addr)) == 0) {
        snprintf(c->from, sizeof(c->from), "from %s", c->addr_file);
        return -1;
    }
    int saved = errno;
    if (c->state_dir_given || saved != ENOENT) {
        fprintf(stderr, "tidemark %s: cannot read %s (%s): is tidemark running with --state-dir "
                        "%s? pass --state-dir or --admin\n",
                c->cmd, c->addr_file, strerror(saved), c->state_dir);
        return TM_EXIT_FAILURE;
    }
    c->addr_file[0] = '\0';
    snprintf(c->addr, sizeof(c->addr), "%s", TM_ADMIN_DEFAULT_ADDR);
    snprintf(c->from, sizeof(c->from), "the default; no %s/%s", c->state_dir, TM_ADMIN_ADDR_FILE);
    return -1;
}

/* One request within the command's deadline. */
static int cli_request(const cli_t *c, const char *method, const char *path, const char *body,
                       int timeout_ms, int *status, tm_buf_t *resp, char *err, size_t errlen)
{
    int left = remaining_ms(c->deadline_ms);
    if (timeout_ms > left)
        timeout_ms = left;
    if (timeout_ms <= 0)
        return tm_seterr(err, errlen, TM_EAGAIN, "the --timeout passed");
    return tm_admin_request_tls(c->addr, &c->tls, c->token, method, path, body, timeout_ms, status,
                                resp, err, errlen);
}

static void report_unreachable(const cli_t *c, int rc, const char *err)
{
    /* The daemon may well be running: the address, a TLS file or the handshake is wrong. */
    if (rc == TM_EINVAL || rc == TM_ECONFIG || rc == TM_EPROTO || rc == TM_EIO)
        fprintf(stderr, "tidemark %s: %s (%s)\n", c->cmd, err, c->from);
    else
        fprintf(stderr, "tidemark %s: daemon not running at %s (%s): %s; is tidemark running? "
                        "pass --state-dir or --admin\n",
                c->cmd, c->addr, c->from, err);
}

/* Reports an answer that is not the expected one, using the daemon's {"error": ...}. */
static void report_http_error(const cli_t *c, int status, const tm_buf_t *resp)
{
    json_t *j = json_loadb(resp->data ? resp->data : "", resp->len, 0, NULL);
    const char *msg = json_string_value(json_object_get(j, "error"));
    if (status == 401)
        fprintf(stderr, "tidemark %s: the admin API at %s refused the token (401): pass --token or "
                        "set TIDEMARK_ADMIN_TOKEN to the daemon's admin_token\n",
                c->cmd, c->addr);
    else if (msg != NULL)
        fprintf(stderr, "tidemark %s: %s (HTTP %d from %s)\n", c->cmd, msg, status, c->addr);
    else
        fprintf(stderr, "tidemark %s: unexpected HTTP %d from %s\n", c->cmd, status, c->addr);
    json_decref(j);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Reads {"id": N} from a 202 answer; 0 if absent. */
static int64_t answer_id(const tm_buf_t *resp)
{
    json_t *j = json_loadb(resp->data ? resp->data : "", resp->len, 0, NULL);
    json_int_t id = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    return id > 0 ? (int64_t)id : 0;
}

/*
 * Waits for savepoint `id` and prints its path.  `stopping`: the daemon exits
 * once the savepoint completes.  Returns the exit code.
 */
static int await_savepoint(const cli_t *c, int64_t id, bool stopping)
{
    char path[64], err[1024];
    tm_buf_t resp;
    tm_buf_init(&resp);
    int code = TM_EXIT_FAILURE;
    for (;;) {
        int left = remaining_ms(c->deadline_ms);
        if (left == 0) {
            fprintf(stderr, "tidemark %s: savepoint %" PRId64 " did not complete within the "
                            "--timeout; it may still complete: GET /v1/savepoints/%" PRId64
                            " on %s tells\n",
                    c->cmd, id, id, c->addr);
            break;
        }
        int wait = left < LONG_POLL_MS ? left : LONG_POLL_MS;
        snprintf(path, sizeof(path), "/v1/savepoints/%" PRId64 "?wait_ms=%d", id, wait);
        int64_t sent = tm_mono_ms();
        int status = 0;
        int rc = cli_request(c, "GET", path, NULL, wait + REQUEST_MS, &status, &resp, err,
                             sizeof(err));
        if (rc == TM_EAGAIN)
            continue; /* the deadline check above reports it */
        if (rc != 0) {
            if (stopping)
                fprintf(stderr, "tidemark %s: the daemon at %s closed before it reported "
                                "savepoint %" PRId64 " (%s); its log names the savepoint's path "
                                "if it completed\n",
                        c->cmd, c->addr, id, err);
            else
                fprintf(stderr, "tidemark %s: lost the daemon at %s while waiting for savepoint "
                                "%" PRId64 ": %s\n",
                        c->cmd, c->addr, id, err);
            break;
        }
        if (status != 200) {
            report_http_error(c, status, &resp);
            break;
        }
        json_t *j = json_loadb(resp.data ? resp.data : "", resp.len, 0, NULL);
        const char *st = json_string_value(json_object_get(j, "status"));
        const char *sp = json_string_value(json_object_get(j, "path"));
        const char *why = json_string_value(json_object_get(j, "error"));
        bool again = false;
        if (st != NULL && strcmp(st, "completed") == 0 && sp != NULL) {
            printf("%s\n", sp);
            fflush(stdout);
            code = TM_EXIT_OK;
        } else if (st != NULL && strcmp(st, "completed") == 0) {
            fprintf(stderr, "tidemark %s: savepoint %" PRId64 " completed but the daemon did "
                            "not say where\n",
                    c->cmd, id);
        } else if (st != NULL && strcmp(st, "failed") == 0) {
            fprintf(stderr, "tidemark %s: savepoint %" PRId64 " failed: %s\n", c->cmd, id,
                    why ? why : "(the daemon gave no reason; see its log)");
        } else if (st != NULL && strcmp(st, "in_progress") == 0) {
            again = true;
        } else {
            fprintf(stderr, "tidemark %s: the daemon reported savepoint %" PRId64 " as '%s'\n",
                    c->cmd, id, st ? st : "(no status)");
        }
        json_decref(j);
        if (!again)
            break;
        int elapsed = (int)(tm_mono_ms() - sent);
        if (elapsed < POLL_INTERVAL_MS)
            sleep_ms(POLL_INTERVAL_MS - elapsed);
    }
    tm_buf_release(&resp);
    return code;
}

/* True once the daemon is gone: its address file removed or its address refusing. */
static bool daemon_gone(const cli_t *c)
{
    if (c->addr_file[0] != '\0' && access(c->addr_file, F_OK) != 0 && errno == ENOENT)
        return true;
    char err[512];
    int status;
    tm_buf_t resp;
    tm_buf_init(&resp);
    int rc = cli_request(c, "GET", "/healthz", NULL, 2000, &status, &resp, err, sizeof(err));
    tm_buf_release(&resp);
    /* A slow answer is a daemon still busy stopping; only a refusal or a close means gone. */
    return rc == TM_ECONN || rc == TM_EIO || rc == TM_EPROTO;
}

static int await_exit(const cli_t *c)
{
    while (!daemon_gone(c)) {
        int left = remaining_ms(c->deadline_ms);
        if (left == 0) {
            fprintf(stderr, "tidemark %s: the daemon at %s is still running at the --timeout; it "
                            "goes on stopping (see its log)\n",
                    c->cmd, c->addr);
            return TM_EXIT_FAILURE;
        }
        sleep_ms(left < POLL_INTERVAL_MS ? left : POLL_INTERVAL_MS);
    }
    return TM_EXIT_OK;
}

/* Builds {"dir": D} or {"savepoint": true, "dir": D}; NULL when there is nothing to send. */
static char *request_body(const cli_t *c, bool with_savepoint_flag)
{
    json_t *o = json_object();
    if (with_savepoint_flag)
        json_object_set_new(o, "savepoint", json_true());
    if (c->dir != NULL)
        json_object_set_new(o, "dir", json_string(c->dir));
    char *s = json_object_size(o) > 0 ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

/* Prints one line per source, stage and sink of a /v1/job answer. */
static void print_job(const json_t *j)
{
    printf("job %s (%s), tidemark %s, %s\n", json_string_value(json_object_get(j, "job")),
           json_string_value(json_object_get(j, "file")),
           json_string_value(json_object_get(j, "version")),
           json_string_value(json_object_get(j, "state")));
    json_int_t started = json_integer_value(json_object_get(j, "started_at_ms"));
    time_t t = (time_t)(started / 1000);
    struct tm tmv;
    char when[64] = "?";
    if (gmtime_r(&t, &tmv) != NULL)
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tmv);
    json_int_t interval = json_integer_value(json_object_get(j, "checkpoint_interval_ms"));
    int par = (int)json_integer_value(json_object_get(j, "parallelism"));
    if (par > 0)
        printf("  started %s, parallelism %d, ", when, par);
    else
        printf("  started %s, no operator stages, ", when);
    if (interval > 0)
        printf("checkpoints every %" PRId64 " ms\n", (int64_t)interval);
    else
        printf("checkpoints off\n");
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(j, "sources"), i, v) {
        const json_t *wm = json_object_get(v, "watermark_ms");
        printf("  source %s: %s, %" PRId64 " events", json_string_value(json_object_get(v, "name")),
               json_is_true(json_object_get(v, "ready")) ? "streaming" : "not ready",
               (int64_t)json_integer_value(json_object_get(v, "events")));
        if (json_is_integer(wm))
            printf(", watermark %" PRId64 " ms", (int64_t)json_integer_value(wm));
        const json_t *lag = json_object_get(v, "lag_ms");
        if (json_is_integer(lag))
            printf(", lag %" PRId64 " ms", (int64_t)json_integer_value(lag));
        const json_t *snap = json_object_get(v, "snapshot");
        if (json_is_object(snap) && !json_is_true(json_object_get(snap, "done"))) {
            const json_t *est = json_object_get(snap, "estimate");
            printf(", snapshot of %s: %" PRId64, json_string_value(json_object_get(snap, "table")),
                   (int64_t)json_integer_value(json_object_get(snap, "rows")));
            if (json_is_integer(est))
                printf(" of ~%" PRId64, (int64_t)json_integer_value(est));
            printf(" rows");
        }
        printf("\n");
    }
    json_array_foreach(json_object_get(j, "stages"), i, v) {
        printf("  stage %s: parallelism %d\n", json_string_value(json_object_get(v, "name")),
               (int)json_integer_value(json_object_get(v, "parallelism")));
    }
    json_array_foreach(json_object_get(j, "sinks"), i, v) {
        printf("  sink %s\n", json_string_value(json_object_get(v, "name")));
    }
}

/* `tidemark status`: the job, or a probe's verdict.  Returns the exit code. */
static int run_status(const cli_t *c)
{
    char err[1024];
    int status = 0;
    tm_buf_t resp;
    tm_buf_init(&resp);
    int rc = cli_request(c, "GET", c->probe ? c->probe : "/v1/job", NULL, REQUEST_MS, &status,
                         &resp, err, sizeof(err));
    int code = TM_EXIT_FAILURE;
    if (rc != 0) {
        report_unreachable(c, rc, err);
    } else if (c->probe != NULL) {
        /* The body is "ok", or the reason it is not ready. */
        const char *body = resp.data ? resp.data : "";
        int n = (int)strcspn(body, "\n");
        if (status == 200) {
            printf("%.*s\n", n, body);
            code = TM_EXIT_OK;
        } else if (status == 401) {
            report_http_error(c, status, &resp);
        } else {
            fprintf(stderr, "tidemark status: %s answered %d: %.*s\n", c->probe, status, n, body);
        }
    } else if (status != 200) {
        report_http_error(c, status, &resp);
    } else {
        json_t *j = json_loadb(resp.data ? resp.data : "", resp.len, 0, NULL);
        if (json_is_object(j)) {
            print_job(j);
            code = TM_EXIT_OK;
        } else {
            fprintf(stderr, "tidemark status: %s sent /v1/job that is not a JSON object\n",
                    c->addr);
        }
        json_decref(j);
    }
    tm_buf_release(&resp);
    return code;
}

/* Prints one snapshot of GET /v1/snapshots on one line. */
static void print_snapshot(const json_t *s)
{
    printf("snapshot %" JSON_INTEGER_FORMAT " source=%s state=%s rows=%" JSON_INTEGER_FORMAT
           " chunks=%" JSON_INTEGER_FORMAT " percent=%.1f",
           json_integer_value(json_object_get(s, "id")),
           json_string_value(json_object_get(s, "source")) ?: "?",
           json_string_value(json_object_get(s, "state")) ?: "?",
           json_integer_value(json_object_get(s, "rows")),
           json_integer_value(json_object_get(s, "chunks")),
           json_number_value(json_object_get(s, "percent")));
    const char *err = json_string_value(json_object_get(s, "error"));
    if (err != NULL)
        printf(" error=\"%s\"", err);
    printf("\n");
}

/* `tidemark snapshot`: start (and with --wait follow) or control incremental snapshots. */
static int run_snapshot(const cli_t *c)
{
    char err[1024];
    int status = 0, code = TM_EXIT_OK;
    tm_buf_t resp;
    tm_buf_init(&resp);
    json_t *body = json_object();
    if (c->source)
        json_object_set_new(body, "source", json_string(c->source));
    int64_t id = 0;
    if (c->action == NULL || strcmp(c->action, "status") != 0) {
        char path[64] = "/v1/snapshots";
        if (c->action != NULL) {
            snprintf(path, sizeof(path), "/v1/snapshots/%s", c->action);
        } else {
            json_t *tabs = json_array();
            for (int i = 0; i < c->ntables; i++)
                json_array_append_new(tabs, json_string(c->tables[i]));
            json_object_set_new(body, "tables", tabs);
            if (c->where)
                json_object_set_new(body, "where", json_string(c->where));
        }
        char *text = json_dumps(body, JSON_COMPACT);
        int rc = cli_request(c, "POST", path, text, REQUEST_MS, &status, &resp, err, sizeof(err));
        free(text);
        if (rc != 0) {
            report_unreachable(c, rc, err);
            code = TM_EXIT_FAILURE;
        } else if (status != 202) {
            report_http_error(c, status, &resp);
            code = TM_EXIT_FAILURE;
        } else if (c->action != NULL) {
            printf("incremental snapshots: %s\n", c->action);
        } else if ((id = answer_id(&resp)) == 0) {
            fprintf(stderr, "tidemark snapshot: the daemon at %s sent no snapshot id\n", c->addr);
            code = TM_EXIT_FAILURE;
        } else {
            printf("incremental snapshot %" PRId64 " started\n", id);
        }
    }
    json_decref(body);
    bool show = c->action != NULL && strcmp(c->action, "status") == 0;
    while (code == TM_EXIT_OK && (show || (c->wait && id > 0))) {
        int rc = cli_request(c, "GET", "/v1/snapshots", NULL, REQUEST_MS, &status, &resp, err,
                             sizeof(err));
        if (rc != 0) {
            report_unreachable(c, rc, err);
            code = TM_EXIT_FAILURE;
            break;
        }
        if (status != 200) {
            report_http_error(c, status, &resp);
            code = TM_EXIT_FAILURE;
            break;
        }
        json_t *j = json_loadb(resp.data ? resp.data : "", resp.len, 0, NULL);
        json_t *list = json_object_get(j, "snapshots"), *s;
        size_t i;
        const char *state = NULL;
        json_array_foreach(list, i, s)
        {
            if (show && (c->source == NULL ||
                         strcmp(json_string_value(json_object_get(s, "source")) ?: "",
                                c->source) == 0))
                print_snapshot(s);
            if (!show && json_integer_value(json_object_get(s, "id")) == id) {
                print_snapshot(s);
                state = json_string_value(json_object_get(s, "state"));
                if (state && strcmp(state, "failed") == 0)
                    code = TM_EXIT_FAILURE;
                state = state && (strcmp(state, "done") == 0 || strcmp(state, "failed") == 0 ||
                                  strcmp(state, "cancelled") == 0)
                            ? state
                            : NULL;
            }
        }
        json_decref(j);
        if (show || state != NULL)
            break;
        if (remaining_ms(c->deadline_ms) == 0) {
            fprintf(stderr, "tidemark snapshot: snapshot %" PRId64 " still runs after --timeout\n",
                    id);
            code = TM_EXIT_FAILURE;
            break;
        }
        sleep_ms(1000);
    }
    tm_buf_release(&resp);
    return code;
}

static int run(cli_t *c, int argc, char **argv)
{
    int code = parse_args(c, argc, argv);
    if (code < 0)
        code = find_daemon(c);
    if (code >= 0)
        return code;
    c->deadline_ms = tm_mono_ms() + c->timeout_ms;
    if (strcmp(c->cmd, "status") == 0)
        return run_status(c);
    if (strcmp(c->cmd, "snapshot") == 0)
        return run_snapshot(c);
    bool stop = strcmp(c->cmd, "stop") == 0;
    bool with_sp = !stop || c->savepoint;
    char *body = request_body(c, stop && c->savepoint);
    char err[1024];
    int status = 0;
    tm_buf_t resp;
    tm_buf_init(&resp);
    int rc = cli_request(c, "POST", stop ? "/v1/stop" : "/v1/savepoints", body, REQUEST_MS,
                         &status, &resp, err, sizeof(err));
    free(body);
    int64_t id = 0;
    if (rc != 0) {
        report_unreachable(c, rc, err);
        code = TM_EXIT_FAILURE;
    } else if (status != 202) {
        report_http_error(c, status, &resp);
        code = TM_EXIT_FAILURE;
    } else if (with_sp && (id = answer_id(&resp)) == 0) {
        fprintf(stderr, "tidemark %s: the daemon at %s accepted the savepoint but sent no id\n",
                c->cmd, c->addr);
        code = TM_EXIT_FAILURE;
    } else {
        code = with_sp ? await_savepoint(c, id, stop) : TM_EXIT_OK;
        if (code == TM_EXIT_OK && stop)
            code = await_exit(c);
    }
    tm_buf_release(&resp);
    return code;
}

static int cli_main(const char *cmd, int argc, char **argv)
{
    cli_t c;
    memset(&c, 0, sizeof(c));
    c.cmd = cmd;
    c.state_dir = "./tidemark-state";
    c.timeout_ms = strcmp(cmd, "status") == 0 ? STATUS_TIMEOUT_MS : DEFAULT_TIMEOUT_MS;
    int code = run(&c, argc, argv);
    free(c.dir);
    return code;
}

int tm_admin_cli_savepoint(int argc, char **argv)
{
    return cli_main("savepoint", argc, argv);
}

int tm_admin_cli_stop(int argc, char **argv)
{
    return cli_main("stop", argc, argv);
}

int tm_admin_cli_status(int argc, char **argv)
{
    return cli_main("status", argc, argv);
}

int tm_admin_cli_snapshot(int argc, char **argv)
{
    return cli_main("snapshot", argc, argv);
}
