/*
 * admin.h — the admin HTTP API (server, on the control loop) and its CLI
 * client (`tidemark savepoint`, `tidemark stop`).  DESIGN §1 and §9.
 *
 * The server is an evhttp instance on the control loop's event_base.  It
 * routes requests through a table to the daemon's hooks and never touches job
 * state itself, so everything it knows comes from tm_admin_hooks_t.
 *
 *     GET  /healthz              200 "ok"                     (liveness)
 *     GET  /readyz               200 / 503 from hooks->ready  (readiness)
 *     GET  /metrics              Prometheus text 0.0.4        (hooks->metrics)
 *     GET  /v1/job               JSON                         (hooks->job)
 *     GET  /v1/checkpoints       JSON                         (hooks->checkpoints)
 *     POST /v1/savepoints        {"dir"?}             → 202 {"id":N}
 *     GET  /v1/savepoints/N      [?wait_ms=M]         → 200 status JSON, or 404
 *     POST /v1/stop              {"savepoint"?, "dir"?} → 202 {"id":N} or 202 {}
 *     POST /v1/snapshots         {"tables":[...], "where"?, "source"?} → 202 {"id":N}
 *     GET  /v1/snapshots         JSON progress of incremental snapshots (hooks->snapshots)
 *     POST /v1/snapshots/pause|resume|cancel  {"source"?} → 202 {"sources":N}
 *
 * Other paths give 404, other methods on a known path 405 (with Allow), a
 * body over 64 KiB 413, a body that is not the JSON object described 400, and
 * an endpoint whose hook is NULL 501.  Error bodies are {"error": "..."}.
 * `wait_ms` (at most 30000) turns the status request into a long poll: while
 * the savepoint is in progress the server holds the request, re-reading the
 * status every 50 ms, and answers as soon as it changes or the wait ends.
 * The CLI uses it so that `stop --savepoint` learns the savepoint's path even
 * when the daemon exits right after writing it (see tm_admin_free()).
 *
 * Invariants:
 *   1. A non-loopback bind without a token is refused (TM_ECONFIG).  With a
 *      token, every request needs `Authorization: Bearer <token>`, compared in
 *      constant time; nothing else is checked or served before that.
 *   2. The token is never logged, and never written to the address file.
 *   3. The address file exists exactly while the server listens (written
 *      atomically after the bind, removed by tm_admin_free()).
 *
 * Thread: the server is confined to the thread that runs `base` (the control
 * loop, "main"); every hook is called on that thread, synchronously, and must
 * not block.  The process must ignore SIGPIPE (tm_cli_main() does), as libevent
 * writes to sockets that a client may have closed.  The client functions are
 * blocking and may run on any thread.
 */
#ifndef TM_DAEMON_ADMIN_H
#define TM_DAEMON_ADMIN_H

#include "core/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

/*
 * TLS for the server (SET admin_tls_cert, admin_tls_key, admin_tls_client_ca).
 * `cert` is a PEM certificate chain (the server's first), `key` its PEM
 * private key, unencrypted (a passphrase cannot be asked for); both or
 * neither.  `client_ca` (NULL: none) is a PEM bundle of CAs: when set, every
 * client must present a certificate one of them signed (mutual TLS).  The
 * server speaks TLS 1.2 and 1.3 only, with forward-secret AEAD ciphers.
 */
typedef struct tm_admin_tls {
    const char *cert;
    const char *key;
    const char *client_ca;
} tm_admin_tls_t;

/*
 * TLS for the client (`tidemark status|savepoint|stop` against an https://
 * address).  `ca_file` (NULL: the system's trust store) verifies the
 * server's certificate; for a self-signed one, pass that certificate.
 * `server_name` (NULL: the address's host) is the name or IP address the
 * certificate must be for, and the SNI sent.  `cert` and `key` (both or
 * neither) are the client's certificate for a server with admin_tls_client_ca.
 */
typedef struct tm_admin_client_tls {
    const char *ca_file;
    const char *server_name;
    const char *cert;
    const char *key;
} tm_admin_client_tls_t;

/* The address the daemon binds when nothing else is configured (DESIGN §9). */
#define TM_ADMIN_DEFAULT_ADDR "127.0.0.1:8081"
/* The address file's name inside the state directory: <state-dir>/admin.addr. */
#define TM_ADMIN_ADDR_FILE "admin.addr"
/* Largest request body the server reads; larger ones get 413. */
#define TM_ADMIN_MAX_BODY (64 * 1024)

/*
 * Connection bounds (see "connection guard" in admin.c).  At most
 * TM_ADMIN_MAX_CONNS connections are open at once; more clients wait in the
 * kernel's backlog.  A connection that would leave fewer than
 * TM_ADMIN_FD_RESERVE free descriptors (RLIMIT_NOFILE) is closed at once, so
 * the data plane keeps what it needs.  A connection ends after
 * TM_ADMIN_IDLE_TIMEOUT_S seconds without a byte from the client (also the
 * time allowed between two reads of one request's headers), and after
 * TM_ADMIN_CONN_MAX_AGE_MS in any case.
 */
#define TM_ADMIN_MAX_CONNS 32
#define TM_ADMIN_FD_RESERVE 128
#define TM_ADMIN_IDLE_TIMEOUT_S 10
#define TM_ADMIN_CONN_MAX_AGE_MS 60000

typedef struct tm_admin tm_admin_t;

/*
 * The daemon's side.  `arg` is passed to every hook.  A NULL hook makes its
 * endpoint answer 501.  Output buffers are initialised and released by the
 * server; a hook only appends.
 */
typedef struct tm_admin_hooks {
    void *arg;
    /* /readyz: true once the sources are connected and the first checkpoint completed. */
    bool (*ready)(void *arg);
    /* /metrics: Prometheus text exposition format 0.0.4. */
    void (*metrics)(void *arg, tm_buf_t *out);
    /* GET /v1/job: a JSON document. */
    void (*job)(void *arg, tm_buf_t *out);
    /* GET /v1/checkpoints: a JSON document. */
    void (*checkpoints)(void *arg, tm_buf_t *out);
    /*
     * Starts a savepoint into `dir` (NULL: the job's default savepoint dir); when
     * `stop` is true the job stops after it completes.  Returns a request id > 0,
     * or a negative TM_E* code with errstr filled.  The code picks the HTTP status:
     *   TM_EAGAIN       409  a savepoint or stop is already in progress
     *   TM_EUNSUPPORTED 409  the job cannot take one (e.g. it has no checkpoints)
     *   TM_ESTOPPED     409  the job is stopping
     *   TM_EINVAL,
     *   TM_ECONFIG      400  `dir` is unusable
     *   TM_ENOTFOUND    404  (the same table serves every hook that starts something)
     *   anything else   500
     */
    int64_t (*savepoint)(void *arg, const char *dir, bool stop, char *errstr, size_t errstr_size);
    /*
     * Appends the status of request `id` as JSON
     * {"id":N,"status":"in_progress|completed|failed","path":...,"error":...};
     * returns false (appending nothing) for an unknown id.
     */
    bool (*savepoint_status)(void *arg, int64_t id, tm_buf_t *out);
    /* Stops without a savepoint (graceful: final checkpoint). */
    void (*stop)(void *arg);
    /*
     * POST /v1/checkpoints {"at_lsn":"X/Y","hold_ms":N}: a checkpoint whose
     * barriers the sources place at that LSN, after which no checkpoint
     * starts for hold_ms or until POST /v1/checkpoints/release (tidemark
     * verify).  Returns its id > 0, or a negative TM_E* with errstr (HTTP
     * status as for savepoint).
     */
    int64_t (*checkpoint_at)(void *arg, const char *at_lsn, int64_t hold_ms, char *errstr,
                             size_t errstr_size);
    /*
     * GET /v1/checkpoints/N: appends {"id":N,"status":"pending|completed|
     * committed","missed":bool} for such a checkpoint; false if N is not one.
     */
    bool (*checkpoint_at_status)(void *arg, int64_t id, tm_buf_t *out);
    void (*checkpoint_release)(void *arg);
    /*
     * POST /v1/checkpoints/pause {"max_ms":N}: the sources hold their input
     * (for a verify to choose its point); GET /v1/checkpoints/pause appends
     * {"paused":K,"sources":N}.
     */
    int (*checkpoint_pause)(void *arg, int64_t max_ms, char *errstr, size_t errstr_size);
    void (*checkpoint_paused)(void *arg, tm_buf_t *out);
    /*
     * POST /v1/snapshots: an incremental snapshot of `tables` (ntables >= 1)
     * with an optional row filter and source name (both may be NULL).
     * Returns its id > 0 or a negative TM_E* with errstr: TM_EINVAL 400,
     * TM_ENOTFOUND 404, TM_EUNSUPPORTED 409, anything else 500.
     */
    int64_t (*snapshot_start)(void *arg, const char *const *tables, int ntables,
                              const char *where, const char *source, char *errstr,
                              size_t errstr_size);
    /* GET /v1/snapshots: appends {"snapshots":[...]}. */
    void (*snapshots)(void *arg, tm_buf_t *out);
    /* POST /v1/snapshots/<op>: "pause", "resume" or "cancel"; sources told, or TM_E*. */
    int (*snapshot_control)(void *arg, const char *op, const char *source, char *errstr,
                            size_t errstr_size);
} tm_admin_hooks_t;

/*
 * Binds `addr` ("127.0.0.1:8081", "127.0.0.1:0" = any free port, "[::1]:8081",
 * "localhost:8081"; hosts are numeric otherwise; NULL or "" means
 * TM_ADMIN_DEFAULT_ADDR) and serves the API on `base`.  A non-loopback address
 * needs a non-empty `token`, else TM_ECONFIG; a token must be printable ASCII
 * without spaces.  `hooks` is copied (NULL: every hook NULL); hooks->arg must
 * outlive the server.  If `addr_file` is non-NULL the bound address is written
 * to it atomically ("127.0.0.1:PORT", "[::1]:PORT"; a wildcard bind writes the
 * loopback address of its family) so that CLI commands can find the daemon;
 * its directory must exist.
 *
 * Returns 0 and sets *out, or TM_ECONFIG (bad address or token, or the address
 * cannot be bound), TM_EIO (address file), TM_ENOMEM, with errstr filled.
 * Thread: the thread that runs `base`, or before `base` runs.
 */
int tm_admin_start(struct event_base *base, const char *addr, const char *token,
                   const tm_admin_hooks_t *hooks, const char *addr_file, tm_admin_t **out,
                   char *errstr, size_t errstr_size);

/*
 * tm_admin_start() with TLS: `tls` NULL, or with a NULL cert and key, serves
 * plain HTTP.  The certificate and key are loaded before the bind; a file
 * that is missing, unreadable, not PEM, an encrypted key or a key that does
 * not match the certificate is TM_ECONFIG with a message naming the file and
 * what to do.  With TLS the address file holds "https://HOST:PORT", and a
 * non-loopback address needs admin_token or admin_tls_client_ca.
 * Thread: as tm_admin_start().
 */
int tm_admin_start_tls(struct event_base *base, const char *addr, const char *token,
                       const tm_admin_tls_t *tls, const tm_admin_hooks_t *hooks,
                       const char *addr_file, tm_admin_t **out, char *errstr, size_t errstr_size);

/*
 * tm_admin_check() with TLS: also loads the certificate, key and client CAs
 * (and frees them), so `run` and `explain` refuse a bad file before anything
 * is created.  Returns 0 or TM_ECONFIG (TM_ENOMEM) with errstr filled.
 * Thread: any.
 */
int tm_admin_check_tls(const char *addr, const char *token, const tm_admin_tls_t *tls,
                       char *errstr, size_t errstr_size);

/*
 * Checks `addr` and `token` as tm_admin_start() would, without binding: the
 * address form, a non-loopback address without a token, a token's characters.
 * Returns 0 or TM_ECONFIG with errstr filled.  `run` and `explain` call it
 * before anything is opened or created, so a bad setting costs nothing.
 * Thread: any.
 */
int tm_admin_check(const char *addr, const char *token, char *errstr, size_t errstr_size);

/*
 * The bound address, "127.0.0.1:PORT" or "[::1]:PORT" (the real port when 0
 * was asked), with "https://" in front when the server speaks TLS.
 */
const char *tm_admin_address(const tm_admin_t *a);

/*
 * Stops serving.  Long-poll requests still held are answered with their
 * current status, and responses already queued are written out (for at most
 * 500 ms, without running the loop), so a client polling a stop-savepoint gets
 * its answer even though the daemon exits next.  Then the listener and every
 * connection are closed and the address file is removed (if it still holds
 * this server's address).  Accepts NULL; returns NULL.  Call it before
 * event_base_free(), never from inside a hook.
 * Thread: the thread that runs `base`, or after the loop has returned.
 */
tm_admin_t *tm_admin_free(tm_admin_t *a);

/*
 * Where a savepoint requested with `dir` goes, confined to the savepoint root
 * `root` (the job's savepoint_dir, default <state-dir>/savepoints; created if
 * missing).  NULL or "" means the root itself; a relative `dir` is taken below
 * the root; an absolute one must lie below it.  A "." or ".." component is
 * refused, and so is a path that leaves the root through a symlink (its
 * existing part is resolved).  Sets *out to the canonical absolute path (the
 * caller frees it) and returns 0, or TM_EINVAL (`dir` refused: the message
 * names the root), TM_EIO (the root cannot be created), TM_ENOMEM.
 * Thread: any.
 */
int tm_admin_savepoint_dir(const char *root, const char *dir, char **out, char *errstr,
                           size_t errstr_size);

/* ---- client (blocking; any thread) ---- */

/*
 * One HTTP/1.1 request to the admin API at `addr` ("HOST:PORT" or "[V6]:PORT";
 * "https://HOST:PORT" as tm_admin_request_tls() with `tls` NULL) over a fresh
 * connection (Connection: close).  `token` (NULL or "" for none)
 * is sent as a bearer token; `body` (NULL for none) as application/json.
 * `timeout_ms` bounds the connect and the whole exchange.  On success sets
 * *status and replaces the contents of `resp` (initialised by the caller, who
 * releases it) with the body, NUL-terminated, whatever the status code; after
 * HEAD it is empty.
 *
 * Returns 0, or:
 *   TM_EINVAL  `addr` or `token` is malformed
 *   TM_ECONN   nothing accepted the connection (refused, unreachable)
 *   TM_EAGAIN  no connection or no complete answer within timeout_ms
 *   TM_EIO     the connection failed after it was made
 *   TM_EPROTO  the answer is not an HTTP response this client reads
 *   TM_ENOMEM  out of memory
 * with errstr filled (it names the address, never the token).
 */
int tm_admin_request(const char *addr, const char *token, const char *method, const char *path,
                     const char *body, int timeout_ms, int *status, tm_buf_t *resp, char *errstr,
                     size_t errstr_size);

/*
 * tm_admin_request() over TLS when `addr` starts with "https://" ("http://"
 * or no scheme: plain HTTP), verifying the server as `tls` says (NULL: the
 * system's trust store and the address's host).  Besides tm_admin_request()'s
 * codes: TM_ECONFIG when a file of `tls` cannot be loaded, TM_EPROTO when
 * the TLS handshake fails (the message says whether the server is not
 * speaking TLS or its certificate is not trusted and what to pass), and
 * TM_EIO with a hint to use https:// when a plain request finds a TLS port.
 * OpenSSL writes to the socket with write(2), so a process that uses TLS
 * must ignore SIGPIPE (tm_cli_main() does) as the server's must.
 */
int tm_admin_request_tls(const char *addr, const tm_admin_client_tls_t *tls, const char *token,
                         const char *method, const char *path, const char *body, int timeout_ms,
                         int *status, tm_buf_t *resp, char *errstr, size_t errstr_size);

/*
 * `tidemark savepoint [--dir D] [--state-dir S | --admin HOST:PORT] [--token T]
 * [--timeout 10m]`: POST /v1/savepoints, then poll GET /v1/savepoints/N until it
 * completes or fails or the timeout passes; prints the savepoint's path on stdout.
 *
 * `tidemark stop [--savepoint] [--dir D] [--state-dir S | --admin HOST:PORT]
 * [--token T] [--timeout 10m]`: POST /v1/stop; with --savepoint, polls the
 * savepoint likewise and prints its path; then waits, within the timeout, until
 * the daemon has exited (its address file disappears or its address stops
 * answering).
 *
 * The daemon is found from --admin, else <state-dir>/admin.addr; with no
 * --state-dir, ./tidemark-state/admin.addr and then 127.0.0.1:8081.  The token
 * comes from --token, else the environment variable TIDEMARK_ADMIN_TOKEN.  An
 * https:// address is spoken to over TLS (tm_admin_client_tls_t) with
 * --cacert, --tls-server-name, --cert and --key, else TIDEMARK_ADMIN_CACERT,
 * TIDEMARK_ADMIN_TLS_SERVER_NAME, TIDEMARK_ADMIN_CERT and TIDEMARK_ADMIN_KEY.
 * argv[0] is the command's name ("savepoint", "stop"); the functions reset
 * getopt (optind = 0).  Return the process exit code: 0 done, 1 failed (the
 * reason on stderr), 2 usage error.
 * Thread: main.
 */
/* `tidemark verify JOB.sql --sink NAME …` (verify.c); argv[0] is "verify". */
int tm_verify_main(int argc, char **argv);
int tm_admin_cli_savepoint(int argc, char **argv);
int tm_admin_cli_stop(int argc, char **argv);
/*
 * `tidemark status [--live | --ready] [--state-dir D | --admin A] [--token T]
 * [--timeout 10s]`: prints GET /v1/job readably; with --live or --ready, asks
 * /healthz or /readyz and exits 0 only on 200 (a probe: Kubernetes' exec
 * probes cannot send a bearer token from a Secret, this command reads it from
 * TIDEMARK_ADMIN_TOKEN).  Found and authorised as above.
 */
int tm_admin_cli_status(int argc, char **argv);
/*
 * `tidemark snapshot --table T [--table …] [--where EXPR] [--source NAME]
 * [--wait]`: POST /v1/snapshots and print the id (with --wait, follow GET
 * /v1/snapshots until it is done, failed or cancelled; exit 1 unless done);
 * `--status`, `--pause`, `--resume`, `--cancel` [--source NAME]: show or
 * control the incremental snapshots.  Found and authorised as above.
 */
int tm_admin_cli_snapshot(int argc, char **argv);

#endif
