/*
 * admin.c — the admin HTTP API server on the control loop (see admin.h).
 *
 * A request goes through three steps, all on the loop thread:
 *
 *     evhttp ──► on_request: bearer check ──► route table ──► handler ──► hook
 *                     │ 401                      │ 404 / 405     │ reply now, or
 *                     ▼                          ▼               ▼ hold (long poll)
 *                   reply                      reply       waiters ──50 ms timer──► reply
 *
 * Invariants:
 *   1. Every request gets exactly one reply: handlers reply before returning,
 *      except the savepoint-status long poll, which moves the request to
 *      `waiters`; the wait timer or tm_admin_free() replies to it later.
 *   2. A held request stays valid until we reply: libevent detaches (does not
 *      free) a request whose client goes away before the reply, and
 *      tm_admin_free() answers every waiter before evhttp_free().
 *   3. The authorization check runs before routing, so without the token a
 *      client learns nothing, not even which paths exist.
 *   4. Every open connection that carried a request is in `conns` (evhttp's
 *      close callback removes it), so tm_admin_free() can write out replies
 *      the loop has queued but not sent: a daemon that stops right after a
 *      stop-savepoint completes still tells the waiting CLI its path.
 *   5. With TLS every connection's bufferevent is an OpenSSL one, made in
 *      on_new_connection(), so no byte of a request or reply crosses the
 *      socket in clear; the flush in tm_admin_free() writes through SSL_write
 *      for the same reason.  The handshake happens inside the bufferevent and
 *      counts against the idle timeout like a slow request's headers.
 *
 * Thread: main (the control loop that runs `base`).
 */
#include "daemon/admin.h"
#include "daemon/admin_tls.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define WAIT_TICK_MS 50
#define WAIT_MAX_MS 30000
#define FLUSH_MS 500
/* How often the connection guard looks at its connections while any is open. */
#define GUARD_TICK_MS 200
/* First and longest pause of the listener after accept() failed. */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define JSON_TYPE "application/json"
#define TEXT_TYPE "text/plain; charset=utf-8"
#define PROM_TYPE "text/plain; version=0.0.4; charset=utf-8"

/*
 * One admin connection, as the guard sees it: the bufferevent it gave evhttp,
 * on which it holds a reference of its own.  evhttp's bufferevent_free() then
 * only drops evhttp's reference and clears the callbacks; the guard notices
 * the cleared callbacks, drops its own reference, and that closes the socket.
 */
typedef struct conn_slot {
    struct bufferevent *bev;
    int64_t opened_ms;
    bool refused; /* accepted past the descriptor reserve: shut it at the next tick */
    bool shut;    /* shutdown() was called on it already */
} conn_slot_t;

typedef struct waiter {
    struct evhttp_request *req;
    int64_t id;
    int64_t deadline_ms;
    struct waiter *next;
} waiter_t;

struct tm_admin {
    struct event_base *base;
    struct evhttp *http;
    tm_admin_hooks_t hooks;
    char *token; /* NULL: no authorization */
    size_t token_len;
    char address[INET6_ADDRSTRLEN + 8];
    char url[INET6_ADDRSTRLEN + 16];       /* address, with "https://" in front under TLS */
    char *addr_file;                       /* NULL: none */
    char file_text[INET6_ADDRSTRLEN + 18]; /* what we wrote to addr_file */
    SSL_CTX *ssl_ctx;                      /* NULL: plain HTTP */
    waiter_t *waiters;
    struct event *wait_timer;
    /* Open connections that carried a request, for the flush in tm_admin_free(). */
    struct evhttp_connection **conns;
    size_t nconns, capconns;
    /* The connection guard (see "connection guard" below). */
    struct evconnlistener *listener;
    conn_slot_t *slots;
    size_t nslots, capslots;
    struct event *guard_timer;
    bool accept_paused;
    int64_t paused_until_ms;
    int backoff_ms;
    uint64_t refused_total;
    bool loopback; /* bound to a loopback address: Host is checked */
    struct tm_admin *registry_next;
};

/* ---- replies ---- */

/*
 * Copies text that a client chose (the request path) for a log field
 * inside quotes: at most 160 characters, anything but printable ASCII,
 * quotes and backslashes shown as '?'.
 */
static void log_text(char *out, size_t outlen, const char *text)
{
    size_t n = 0;
    for (; *text && n + 1 < outlen && n < 160; text++) {
        unsigned char c = (unsigned char)*text;
        out[n++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : '?';
    }
    out[n] = '\0';
}

static void reply(struct evhttp_request *req, int code, const char *type, const char *body,
                  size_t len)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    struct evbuffer *b = evbuffer_new();
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        /* libevent 2.1 would send the body after HEAD's headers; announce its length only. */
        char n[24];
        snprintf(n, sizeof(n), "%zu", len);
        evhttp_add_header(h, "Content-Length", n);
    } else if (b != NULL && len > 0) {
        evbuffer_add(b, body, len);
    }
    evhttp_send_reply(req, code, NULL, b);
    if (b != NULL)
        evbuffer_free(b);
}

/* Sends a JSON body, ending it with a newline for people reading it with curl. */
static int reply_json(struct evhttp_request *req, int code, const char *json, size_t len)
{
    tm_buf_t b;
    tm_buf_init(&b);
    if (tm_buf_append(&b, json, len) != 0 ||
        (len > 0 && json[len - 1] != '\n' && tm_buf_putc(&b, '\n') != 0)) {
        tm_buf_release(&b);
        reply(req, 500, JSON_TYPE, "{\"error\":\"out of memory\"}\n", 26);
        return 500;
    }
    reply(req, code, JSON_TYPE, b.data, b.len);
    tm_buf_release(&b);
    return code;
}

static int reply_error(struct evhttp_request *req, int code, const char *msg)
{
    tm_buf_t b;
    tm_buf_init(&b);
    tm_buf_puts(&b, "{\"error\":");
    tm_buf_append_json_str(&b, msg, strlen(msg));
    tm_buf_puts(&b, "}\n");
    reply(req, code, JSON_TYPE, b.data ? b.data : "", b.len);
    tm_buf_release(&b);
    return code;
}

/* ---- authorization ---- */

/*
 * Compares the presented token with ours in time that depends only on our
 * token's length, so response times do not reveal how much of a guess was
 * right.
 */
static bool token_matches(const tm_admin_t *a, const char *given, size_t given_len)
{
    volatile unsigned char diff = (unsigned char)(given_len != a->token_len);
    for (size_t i = 0; i < a->token_len; i++) {
        unsigned char g = i < given_len ? (unsigned char)given[i] : 0;
        diff |= (unsigned char)(g ^ (unsigned char)a->token[i]);
    }
    return diff == 0;
}

static bool authorized(const tm_admin_t *a, struct evhttp_request *req)
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    while (*h == ' ')
        h++;
    size_t n = strlen(h);
    while (n > 0 && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    return token_matches(a, h, n);
}

/* ---- request bodies ---- */

/*
 * Parses an optional JSON object body.  Sets *out to NULL for an empty body.
 * Returns 0, or replies 400 and returns the status.
 */
static int parse_body(struct evhttp_request *req, json_t **out)
{
    *out = NULL;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *p = len ? (const char *)evbuffer_pullup(in, (ev_ssize_t)len) : "";
    size_t skip = 0;
    while (skip < len && (p[skip] == ' ' || p[skip] == '\t' || p[skip] == '\r' || p[skip] == '\n'))
        skip++;
    if (skip == len)
        return 0;
    json_error_t jerr;
    json_t *j = json_loadb(p, len, JSON_REJECT_DUPLICATES, &jerr);
    char msg[300];
    if (j == NULL) {
        snprintf(msg, sizeof(msg), "the request body is not valid JSON: %s (line %d, column %d)",
                 jerr.text, jerr.line, jerr.column);
        return reply_error(req, 400, msg);
    }
    if (!json_is_object(j)) {
        json_decref(j);
        return reply_error(req, 400, "the request body must be a JSON object");
    }
    *out = j;
    return 0;
}

/*
 * Checks that every member of `body` is one of `allowed` ("dir", "savepoint")
 * with the right type: "dir" a non-empty string, "savepoint" a boolean.
 * Returns 0, or replies 400 and returns the status.
 */
static int check_fields(struct evhttp_request *req, json_t *body, const char *const *allowed,
                        const char *expected)
{
    const char *key;
    json_t *v;
    char msg[300];
    json_object_foreach(body, key, v)
    {
        bool known = false;
        for (const char *const *k = allowed; *k; k++)
            known |= strcmp(key, *k) == 0;
        if (!known) {
            snprintf(msg, sizeof(msg), "unknown field \"%.64s\" in the request body (expected %s)",
                     key, expected);
            return reply_error(req, 400, msg);
        }
        if (strcmp(key, "dir") == 0 && (!json_is_string(v) || json_string_length(v) == 0))
            return reply_error(req, 400, "\"dir\" must be a non-empty string (a directory path)");
        if (strcmp(key, "dir") == 0 && strlen(json_string_value(v)) != json_string_length(v))
            return reply_error(req, 400, "\"dir\" must not contain a NUL character");
        if (strcmp(key, "savepoint") == 0 && !json_is_boolean(v))
            return reply_error(req, 400, "\"savepoint\" must be true or false");
    }
    return 0;
}

/* Maps a hook's error code (savepoints, checkpoints, snapshots) to an HTTP status (table in admin.h). */
static int hook_http_status(int64_t rc)
{
    switch (rc) {
    case TM_EAGAIN:
    case TM_EUNSUPPORTED:
    case TM_ESTOPPED:
        return 409;
    case TM_EINVAL:
    case TM_ECONFIG:
        return 400;
    case TM_ENOTFOUND:
        return 404;
    default:
        return 500;
    }
}

/* Replies 202 {"id":N} for what a hook started, or its error (`fallback` when it gave no message). */
static int reply_started(struct evhttp_request *req, int64_t id, const char *err,
                         const char *fallback)
{
    if (id <= 0)
        return reply_error(req, hook_http_status(id), err[0] ? err : fallback);
    char out[64];
    snprintf(out, sizeof(out), "{\"id\":%" PRId64 "}\n", id);
    return reply_json(req, 202, out, strlen(out));
}

/* Starts a savepoint through the hook and replies 202 {"id":N} or the error. */
static int start_savepoint(tm_admin_t *a, struct evhttp_request *req, const char *dir, bool stop)
{
    char err[512] = "";
    int64_t id = a->hooks.savepoint(a->hooks.arg, dir, stop, err, sizeof(err));
    if (id < 0) {
        if (err[0] == '\0')
            snprintf(err, sizeof(err), "cannot start a savepoint: %s", tm_strerror((int)id));
        return reply_error(req, hook_http_status(id), err);
    }
    if (NEVER(id == 0))
        return reply_error(req, 500, "the daemon returned no savepoint id");
    char body[64], loc[64];
    snprintf(body, sizeof(body), "{\"id\":%" PRId64 "}\n", id);
    snprintf(loc, sizeof(loc), "/v1/savepoints/%" PRId64, id);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Location", loc);
    return reply_json(req, 202, body, strlen(body));
}

/* ---- savepoint status and the long poll ---- */

/*
 * Reads the status of savepoint `id` into `out`.  Returns 1 if it is still in
 * progress, 0 if it is finished, -1 if the id is unknown.
 */
static int read_status(tm_admin_t *a, int64_t id, tm_buf_t *out)
{
    tm_buf_clear(out);
    if (!a->hooks.savepoint_status(a->hooks.arg, id, out))
        return -1;
    json_t *j = json_loadb(out->data ? out->data : "", out->len, 0, NULL);
    const char *s = json_string_value(json_object_get(j, "status"));
    int in_progress = s != NULL && strcmp(s, "in_progress") == 0;
    json_decref(j);
    return in_progress;
}

/* Replies with a status read by read_status(): 200 and the JSON, or 404. */
static int reply_read_status(struct evhttp_request *req, int64_t id, int st, const tm_buf_t *out)
{
    if (st < 0) {
        char msg[128];
        snprintf(msg, sizeof(msg),
                 "no savepoint request %" PRId64 " (the daemon may have restarted)", id);
        return reply_error(req, 404, msg);
    }
    return reply_json(req, 200, out->data ? out->data : "", out->len);
}

static int reply_status(tm_admin_t *a, struct evhttp_request *req, int64_t id)
{
    tm_buf_t out;
    tm_buf_init(&out);
    int code = reply_read_status(req, id, read_status(a, id, &out), &out);
    tm_buf_release(&out);
    return code;
}

static void on_wait_tick(evutil_socket_t fd, short what, void *arg)
{
    tm_admin_t *a = arg;
    (void)fd;
    (void)what;
    int64_t now = tm_mono_ms();
    tm_buf_t out;
    tm_buf_init(&out);
    for (waiter_t **pp = &a->waiters; *pp != NULL;) {
        waiter_t *w = *pp;
        int st = read_status(a, w->id, &out);
        if (st == 1 && now < w->deadline_ms) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        reply_read_status(w->req, w->id, st, &out);
        free(w);
    }
    tm_buf_release(&out);
    if (a->waiters == NULL)
        event_del(a->wait_timer);
}

/* Parses the "wait_ms" query parameter: 0 when absent; -1 when malformed or above WAIT_MAX_MS. */
static int64_t wait_param(struct evhttp_request *req)
{
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *q = u ? evhttp_uri_get_query(u) : NULL;
    if (q == NULL)
        return 0;
    struct evkeyvalq params;
    TAILQ_INIT(&params);
    if (evhttp_parse_query_str(q, &params) != 0)
        return -1;
    const char *v = evhttp_find_header(&params, "wait_ms");
    int64_t ms = 0;
    if (v != NULL) {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        /* Above the maximum is refused like any other bad value (schemas/admin/openapi.yaml). */
        ms = (end == v || *end != '\0' || errno != 0 || x < 0 || x > WAIT_MAX_MS) ? -1
                                                                                 : (int64_t)x;
    }
    evhttp_clear_headers(&params);
    return ms;
}

/* ---- handlers ---- */

typedef int (*handler_fn)(tm_admin_t *a, struct evhttp_request *req, const char *tail);

static int h_healthz(tm_admin_t *a, struct evhttp_request *req, const char *tail)
{
    (void)a;
    (void)tail;
    reply(req, 200, TEXT_TYPE, "ok\n", 3);
    return 200;
}

static int h_readyz(tm_admin_t *a, struct evhttp_request *req, const char *tail)
{
    (void)tail;
    if (a->hooks.ready == NULL)
        return reply_error(req, 501, "readiness is not available in this daemon");
    if (a->hooks.ready(a->hooks.arg)) {
        reply(req, 200, TEXT_TYPE, "ready\n", 6);
        return 200;
    }
    reply(req, 503, TEXT_TYPE, "not ready\n", 10);
    return 503;
}

/* Serves a document produced by a hook that appends into a buffer. */
static int serve_doc(struct evhttp_request *req, void (*fn)(void *, tm_buf_t *), void *arg,
                     const char *type, const char *what)
{
    if (fn == NULL) {
        char msg[128];
        snprintf(msg, sizeof(msg), "%s is not available in this daemon", what);
        return reply_error(req, 501, msg);
    }
    tm_buf_t out;
    tm_buf_init(&out);
    fn(arg, &out);
    int code = 200;
    if (strcmp(type, JSON_TYPE) == 0)
        code = reply_json(req, 200, out.data ? out.data : "", out.len);
    else
        reply(req, 200, type, out.data ? out.data : "", out.len);
    tm_buf_release(&out);
    return code;
}

static int h_metrics(tm_admin_t *a, struct evhttp_request *req, const char *tail)
{
    (void)tail;
    return serve_doc(req, a->hooks.metrics, a->hooks.arg, PROM_TYPE, "/metrics");
}

static int h_job(tm_admin_t *a, struct evhttp_request *req, const char *tail)
{
    (void)tail;
    return serve_doc(req, a->hooks.job, a->hooks.arg, JSON_TYPE, "/v1/job");
}

static int h_checkpoints(tm_admin_t *a, struct evhttp_request *req, const char *tail)
{
    (void)tail;
    return serve_doc(req, a->hooks.checkpoints, a->hooks.arg, JSON_TYPE, "/v1/checkpoints");
}

static int h_savepoint_post(tm_admin_t *a, struct evhttp_request *req, const char *tail)
{
    static const char *const allowed[] = {"dir", NULL};
    (void)tail;
    if (a->hooks.savepoint == NULL)
        return reply_error(req, 501, "savepoints are not available in this daemon");
    json_t *body;
    int code = parse_body(req, &body);
    if (code == 0 && body != NULL)
        code = check_fields(req, body, allowed, "\"dir\"");
    if (code == 0)
        code = start_savepoint(a, req, json_string_value(json_object_get(body, "dir")), false);
    json_decref(body);
    return code;
}

static int h_savepoint_get(tm_admin_t *a, struct evhttp_request *req, const char *tail)
{
    if (a->hooks.savepoint_status == NULL)
        return reply_error(req, 501, "savepoints are not available in this daemon");
    char *end;
    errno = 0;
    long long id = strtoll(tail, &end, 10);
    if (end == tail || *end != '\0' || errno != 0 || id <= 0 || tail[0] == '+' ||
        tail[0] == '-' || tail[0] == ' ') {
        char msg[128];
        snprintf(msg, sizeof(msg), "no savepoint request \"%.32s\" (ids are positive integers)",
                 tail);
        return reply_error(req, 404, msg);
    }
    int64_t wait = wait_param(req);
    if (wait < 0)
        return reply_error(req, 400, "wait_ms must be a number of milliseconds (at most 30000)");
    if (wait > 0) {
        tm_buf_t out;
        tm_buf_init(&out);
        int st = read_status(a, id, &out);
        tm_buf_release(&out);
        waiter_t *w = st == 1 ? calloc(1, sizeof(*w)) : NULL;
        if (w != NULL) {
            w->req = req;
            w->id = id;
            w->deadline_ms = tm_mono_ms() + wait;
            w->next = a->waiters;
            a->waiters = w;
            /* The idle timeout would end the held request first. */
            struct evhttp_connection *evcon = evhttp_request_get_connection(req);
            if (evcon != NULL)
                evhttp_connection_set_timeout(evcon, (int)(wait / 1000) + TM_ADMIN_IDLE_TIMEOUT_S);
            if (!evtimer_pending(a->wait_timer, NULL)) {
                struct timeval tv = {0, WAIT_TICK_MS * 1000};
                evtimer_add(a->wait_timer, &tv);
            }
            return 0;
        }
    }
    return reply_status(a, req, id);
}

static int h_stop(tm_admin_t *a, struct evhttp_request *req, const char *tail)
{
    static const char *const allowed[] = {"savepoint", "dir", NULL};
    (void)tail;
    json_t *body;
    int code = parse_body(req, &body);
    if (code == 0 && body != NULL)
        code = check_fields(req, body, allowed, "\"savepoint\", \"dir\"");
    bool with_sp = json_is_true(json_object_get(body, "savepoint"));
    const char *dir = json_string_value(json_object_get(body, "dir"));
    if (code == 0 && dir != NULL && !with_sp)
        code = reply_error(req, 400, "\"dir\" needs \"savepoint\": true");
    if (code == 0 && with_sp) {
        code = a->hooks.savepoint == NULL
                   ? reply_error(req, 501, "savepoints are not available in this daemon")
                   : start_savepoint(a, req, dir, true);
    } else if (code == 0) {
        if (a->hooks.stop == NULL) {
            code = reply_error(req, 501, "stopping through the admin API is not available");
        } else {
            a->hooks.stop(a->hooks.arg);
            code = reply_json(req, 202, "{}\n", 3);
        }
    }
    json_decref(body);
    return code;
}

/* ---- checkpoints at a position (tidemark verify) ---- */

/* A JSON number with an integral value (JSON Schema's "integer": 512 and 512.0) in [lo, hi]. */
static bool int_in(const json_t *v, int64_t lo, int64_t hi, int64_t *out)
{
    double d = json_number_value(v);
    if (!json_is_number(v) || d != (double)(int64_t)d || d < (double)lo || d > (double)hi)
        return false;
    *out = (int64_t)d;
    return true;
}

static int h_checkpoint_post(tm_admin_t *a, struct evhttp_request *req, const char *tail)
{
    static const char *const allowed[] = {"at_lsn", "hold_ms", NULL};
    (void)tail;
    if (a->hooks.checkpoint_at == NULL)
        return reply_error(req, 501, "checkpoints on request are not available in this daemon");
    json_t *body;
    int code = parse_body(req, &body);
    if (code == 0 && body != NULL)
        code = check_fields(req, body, allowed, "\"at_lsn\", \"hold_ms\"");
    const char *at = json_string_value(json_object_get(body, "at_lsn"));
    json_t *hold = json_object_get(body, "hold_ms");
    int64_t hold_ms = 60000;
    if (code == 0 && at == NULL)
        code = reply_error(req, 400, "\"at_lsn\" (an LSN such as \"0/16B3748\") is required");
    if (code == 0 && hold != NULL && !int_in(hold, 0, 600000, &hold_ms))
        code = reply_error(req, 400, "\"hold_ms\" must be an integer from 0 to 600000");
    if (code == 0) {
        char err[512] = "";
        int64_t id = a->hooks.checkpoint_at(a->hooks.arg, at, hold_ms, err, sizeof(err));
        code = reply_started(req, id, err, "cannot start the checkpoint");
    }
    json_decref(body);
    return code;
}

static int h_checkpoint_get(tm_admin_t *a, struct evhttp_request *req, const char *tail)
{
    char *end;
    errno = 0;
    long long id = strtoll(tail, &end, 10);
    tm_buf_t out;
    tm_buf_init(&out);
    int code;
    if (a->hooks.checkpoint_at_status == NULL || end == tail || *end != '\0' || errno != 0 ||
        id <= 0 || tail[0] == '+' || !a->hooks.checkpoint_at_status(a->hooks.arg, id, &out))
        code = reply_error(req, 404,
                           "no checkpoint requested at a position with that id (POST "
                           "/v1/checkpoints starts one)");
    else
        code = reply_json(req, 200, out.data, out.len);
    tm_buf_release(&out);
    return code;
}

static int h_checkpoint_release(tm_admin_t *a, struct evhttp_request *req, const char *tail)
{
    static const char *const allowed[] = {NULL};
    (void)tail;
    if (a->hooks.checkpoint_release == NULL)
        return reply_error(req, 501, "checkpoints on request are not available in this daemon");
    json_t *body;
    int code = parse_body(req, &body);
    if (code == 0 && body != NULL)
        code = check_fields(req, body, allowed, "no fields");
    if (code == 0) {
        a->hooks.checkpoint_release(a->hooks.arg);
        code = reply_json(req, 200, "{}\n", 3);
    }
    json_decref(body);
    return code;
}

static int h_pause_post(tm_admin_t *a, struct evhttp_request *req, const char *tail)
{
    static const char *const allowed[] = {"max_ms", NULL};
    (void)tail;
    if (a->hooks.checkpoint_pause == NULL)
        return reply_error(req, 501, "pausing the sources is not available in this daemon");
    json_t *body;
    int code = parse_body(req, &body);
    if (code == 0 && body != NULL)
        code = check_fields(req, body, allowed, "\"max_ms\"");
    json_t *max = json_object_get(body, "max_ms");
    int64_t max_ms = 5000;
    if (code == 0 && max != NULL && !int_in(max, 1, 10000, &max_ms))
        code = reply_error(req, 400, "\"max_ms\" must be an integer from 1 to 10000");
    if (code == 0) {
        char err[512] = "";
        int rc = a->hooks.checkpoint_pause(a->hooks.arg, max_ms, err, sizeof(err));
        code = rc != 0 ? reply_error(req, hook_http_status(rc), err)
                       : reply_json(req, 202, "{}\n", 3);
    }
    json_decref(body);
    return code;
}

static int h_pause_get(tm_admin_t *a, struct evhttp_request *req, const char *tail)
{
    (void)tail;
    return serve_doc(req, a->hooks.checkpoint_paused, a->hooks.arg, JSON_TYPE,
                     "/v1/checkpoints/pause");
}

/* ---- incremental snapshots (connectors/postgres/pg_incr.h) ---- */

static int h_snapshots_get(tm_admin_t *a, struct evhttp_request *req, const char *tail)
{
    (void)tail;
    return serve_doc(req, a->hooks.snapshots, a->hooks.arg, JSON_TYPE, "/v1/snapshots");
}

/* A string member that, if present, is a non-empty string without NUL; replies 400 otherwise. */
static int string_field(struct evhttp_request *req, json_t *body, const char *name,
                        const char **out)
{
    json_t *v = json_object_get(body, name);
    *out = NULL;
    if (v == NULL)
        return 0;
    char msg[128];
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        snprintf(msg, sizeof(msg), "\"%s\" must be a non-empty string", name);
        return reply_error(req, 400, msg);
    }
    *out = json_string_value(v);
    return 0;
}

static int h_snapshots_post(tm_admin_t *a, struct evhttp_request *req, const char *tail)
{
    static const char *const allowed[] = {"tables", "where", "source", NULL};
    (void)tail;
    if (a->hooks.snapshot_start == NULL)
        return reply_error(req, 501, "incremental snapshots are not available in this daemon");
    json_t *body;
    int code = parse_body(req, &body);
    if (code == 0 && body != NULL)
        code = check_fields(req, body, allowed, "\"tables\", \"where\", \"source\"");
    json_t *tables = json_object_get(body, "tables");
    const char *where = NULL, *source = NULL;
    size_t n = json_array_size(tables);
    if (code == 0 && (!json_is_array(tables) || n == 0 || n > 1000))
        code = reply_error(req, 400,
                           "\"tables\" must be a list of table names, such as "
                           "[\"public.orders\"]");
    for (size_t i = 0; code == 0 && i < n; i++) {
        json_t *t = json_array_get(tables, i);
        if (!json_is_string(t) || json_string_length(t) == 0 ||
            strlen(json_string_value(t)) != json_string_length(t))
            code = reply_error(req, 400, "every entry of \"tables\" must be a table name");
    }
    if (code == 0)
        code = string_field(req, body, "where", &where);
    if (code == 0)
        code = string_field(req, body, "source", &source);
    if (code == 0) {
        const char **names = calloc(n, sizeof(char *));
        if (names == NULL) {
            code = reply_error(req, 500, "out of memory");
        } else {
            for (size_t i = 0; i < n; i++)
                names[i] = json_string_value(json_array_get(tables, i));
            char err[512] = "";
            int64_t id = a->hooks.snapshot_start(a->hooks.arg, names, (int)n, where, source, err,
                                                 sizeof(err));
            free(names);
            code = reply_started(req, id, err, "cannot start the incremental snapshot");
        }
    }
    json_decref(body);
    return code;
}

static int h_snapshots_control(tm_admin_t *a, struct evhttp_request *req, const char *tail)
{
    static const char *const allowed[] = {"source", NULL};
    if (a->hooks.snapshot_control == NULL)
        return reply_error(req, 501, "incremental snapshots are not available in this daemon");
    if (strcmp(tail, "pause") != 0 && strcmp(tail, "resume") != 0 && strcmp(tail, "cancel") != 0)
        return reply_error(req, 404, "use /v1/snapshots/pause, /v1/snapshots/resume or "
                                     "/v1/snapshots/cancel");
    json_t *body;
    const char *source = NULL;
    int code = parse_body(req, &body);
    if (code == 0 && body != NULL)
        code = check_fields(req, body, allowed, "\"source\"");
    if (code == 0)
        code = string_field(req, body, "source", &source);
    if (code == 0) {
        char err[512] = "";
        int rc = a->hooks.snapshot_control(a->hooks.arg, tail, source, err, sizeof(err));
        if (rc < 0) {
            code = reply_error(req, hook_http_status(rc), err[0] ? err : tm_strerror(rc));
        } else {
            char out[64];
            snprintf(out, sizeof(out), "{\"sources\":%d}\n", rc);
            code = reply_json(req, 202, out, strlen(out));
        }
    }
    json_decref(body);
    return code;
}

/* ---- routing ---- */

typedef struct route {
    const char *path;
    bool prefix; /* path is a prefix; the rest is the handler's `tail` */
    int method;  /* EVHTTP_REQ_GET also serves HEAD */
    handler_fn fn;
} route_t;

static const route_t routes[] = {
    {"/healthz", false, EVHTTP_REQ_GET, h_healthz},
    {"/readyz", false, EVHTTP_REQ_GET, h_readyz},
    {"/metrics", false, EVHTTP_REQ_GET, h_metrics},
    {"/v1/job", false, EVHTTP_REQ_GET, h_job},
    {"/v1/checkpoints", false, EVHTTP_REQ_GET, h_checkpoints},
    {"/v1/checkpoints", false, EVHTTP_REQ_POST, h_checkpoint_post},
    {"/v1/checkpoints/release", false, EVHTTP_REQ_POST, h_checkpoint_release},
    {"/v1/checkpoints/pause", false, EVHTTP_REQ_POST, h_pause_post},
    {"/v1/checkpoints/pause", false, EVHTTP_REQ_GET, h_pause_get},
    {"/v1/checkpoints/", true, EVHTTP_REQ_GET, h_checkpoint_get},
    {"/v1/savepoints", false, EVHTTP_REQ_POST, h_savepoint_post},
    {"/v1/savepoints/", true, EVHTTP_REQ_GET, h_savepoint_get},
    {"/v1/stop", false, EVHTTP_REQ_POST, h_stop},
    {"/v1/snapshots", false, EVHTTP_REQ_GET, h_snapshots_get},
    {"/v1/snapshots", false, EVHTTP_REQ_POST, h_snapshots_post},
    {"/v1/snapshots/", true, EVHTTP_REQ_POST, h_snapshots_control},
};

static const char *method_name(int m)
{
    static const struct {
        int method;
        const char *name;
    } names[] = {
        {EVHTTP_REQ_GET, "GET"},         {EVHTTP_REQ_POST, "POST"},
        {EVHTTP_REQ_HEAD, "HEAD"},       {EVHTTP_REQ_PUT, "PUT"},
        {EVHTTP_REQ_DELETE, "DELETE"},   {EVHTTP_REQ_OPTIONS, "OPTIONS"},
        {EVHTTP_REQ_PATCH, "PATCH"},     {EVHTTP_REQ_TRACE, "TRACE"},
        {EVHTTP_REQ_CONNECT, "CONNECT"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (names[i].method == m)
            return names[i].name;
    return "OTHER";
}

static int route(tm_admin_t *a, struct evhttp_request *req, int method, const char *path)
{
    char allow[64] = "";
    bool get = false, post = false, exact = false;
    /* A path that an exact route names is never a prefix route's (/v1/checkpoints/pause). */
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        exact |= !routes[i].prefix && strcmp(path, routes[i].path) == 0;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const route_t *r = &routes[i];
        size_t n = strlen(r->path);
        bool match = r->prefix ? !exact && strncmp(path, r->path, n) == 0 && path[n] != '\0'
                               : strcmp(path, r->path) == 0;
        if (!match)
            continue;
        if (method == r->method || (method == EVHTTP_REQ_HEAD && r->method == EVHTTP_REQ_GET))
            return r->fn(a, req, path + n);
        get |= r->method == EVHTTP_REQ_GET;
        post |= r->method == EVHTTP_REQ_POST;
    }
    if (get || post)
        snprintf(allow, sizeof(allow), "%s%s%s", get ? "GET, HEAD" : "", get && post ? ", " : "",
                 post ? "POST" : "");
    if (allow[0] != '\0') {
        char msg[128];
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
        snprintf(msg, sizeof(msg), "%s is not allowed here; use %s", method_name(method), allow);
        return reply_error(req, 405, msg);
    }
    return reply_error(req, 404, "no such endpoint; see docs/operations.md for the admin API");
}

/* ---- connection guard ----
 *
 * The admin API must never take the descriptors the data plane needs (a
 * checkpoint opens files, a sink reconnects).  So it serves at most
 * TM_ADMIN_MAX_CONNS connections: at that number the listener is disabled and
 * further clients wait in the kernel's backlog.  A connection that would leave
 * fewer than TM_ADMIN_FD_RESERVE free descriptors is shut at once, and when
 * accept() itself fails (EMFILE and the like) the listener pauses with an
 * exponential back-off instead of spinning on the error.  Idle connections end
 * after TM_ADMIN_IDLE_TIMEOUT_S without a byte (evhttp's timeout) and any
 * connection after TM_ADMIN_CONN_MAX_AGE_MS, so a client that trickles its
 * headers holds a slot for a bounded time only.
 */

/*
 * evconnlistener passes its error callback the listener's argument, which
 * evhttp set to the evhttp, so the callback finds its server here.  A process
 * usually has one server; the unit tests run several, on several threads.
 */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static tm_admin_t *registry;

static void registry_add(tm_admin_t *a)
{
    pthread_mutex_lock(&registry_lock);
    a->registry_next = registry;
    registry = a;
    pthread_mutex_unlock(&registry_lock);
}

static void registry_remove(tm_admin_t *a)
{
    pthread_mutex_lock(&registry_lock);
    for (tm_admin_t **pp = &registry; *pp != NULL; pp = &(*pp)->registry_next) {
        if (*pp == a) {
            *pp = a->registry_next;
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
}

static tm_admin_t *registry_find(const struct evconnlistener *l)
{
    pthread_mutex_lock(&registry_lock);
    tm_admin_t *a = registry;
    while (a != NULL && a->listener != l)
        a = a->registry_next;
    pthread_mutex_unlock(&registry_lock);
    return a;
}

/* The lowest free descriptor is at or past the reserve (or there is none). */
static bool fds_low(const tm_admin_t *a)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return false;
    evutil_socket_t lfd = evconnlistener_get_fd(a->listener);
    int probe = fcntl(lfd, F_DUPFD_CLOEXEC, 0);
    if (probe < 0)
        return true;
    close(probe);
    return (rlim_t)probe + TM_ADMIN_FD_RESERVE >= rl.rlim_cur;
}

static void guard_arm(tm_admin_t *a, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(a->guard_timer, &tv);
}

static void pause_accept(tm_admin_t *a, int ms)
{
    if (!a->accept_paused)
        evconnlistener_disable(a->listener);
    a->accept_paused = true;
    int64_t until = tm_mono_ms() + ms;
    if (until > a->paused_until_ms)
        a->paused_until_ms = until;
}

/* The back-off after a failed accept or a refused connection: 100 ms doubling to 2 s. */
static int next_backoff(tm_admin_t *a)
{
    a->backoff_ms = a->backoff_ms == 0 ? BACKOFF_MIN_MS
                    : a->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                         : a->backoff_ms * 2;
    return a->backoff_ms;
}

static void release_slot(conn_slot_t *s)
{
    /*
     * A TLS connection ends with close_notify, so that a client reading to
     * the end of the stream can tell the end from a cut.  It is one
     * non-blocking write; a peer already gone just misses it.
     */
    SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
    if (ssl != NULL && !s->shut && SSL_is_init_finished(ssl))
        SSL_shutdown(ssl);
    bufferevent_disable(s->bev, EV_READ | EV_WRITE);
    bufferevent_decref(s->bev);
}

static void on_guard_tick(evutil_socket_t fd, short what, void *arg)
{
    tm_admin_t *a = arg;
    (void)fd;
    (void)what;
    int64_t now = tm_mono_ms();
    for (size_t i = 0; i < a->nslots;) {
        conn_slot_t *s = &a->slots[i];
        bufferevent_data_cb rcb = NULL;
        bufferevent_event_cb ecb = NULL;
        bufferevent_getcb(s->bev, &rcb, NULL, &ecb, NULL);
        if (rcb == NULL && ecb == NULL) {
            /* evhttp has freed the connection; ours is the last reference. */
            release_slot(s);
            a->slots[i] = a->slots[--a->nslots];
            continue;
        }
        evutil_socket_t cfd = bufferevent_getfd(s->bev);
        if (!s->shut && cfd >= 0 && (s->refused || now - s->opened_ms > TM_ADMIN_CONN_MAX_AGE_MS)) {
            /* evhttp sees end-of-file or an error and frees the connection itself. */
            shutdown(cfd, SHUT_RDWR);
            s->shut = true;
        }
        i++;
    }
    if (a->accept_paused && a->nslots < TM_ADMIN_MAX_CONNS && now >= a->paused_until_ms) {
        a->accept_paused = false;
        evconnlistener_enable(a->listener);
    }
    if (a->nslots > 0 || a->accept_paused)
        guard_arm(a, GUARD_TICK_MS);
}

/*
 * OpenSSL's handshake callback.  A plain HTTP request on the TLS port fails
 * the handshake with SSL_R_HTTP_REQUEST (OpenSSL recognises GET, POST, HEAD
 * and PUT); instead of a silent close (curl: "Empty reply from server") the
 * client gets a plain 400 that says to use https://, as nginx does.  The
 * answer holds nothing secret: the bound address only.  One non-blocking
 * write; a client already gone just misses it.
 */
static void on_tls_info(const SSL *ssl, int where, int ret)
{
    if (!(where & SSL_CB_EXIT) || ret > 0)
        return;
    unsigned long e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) != ERR_LIB_SSL || ERR_GET_REASON(e) != SSL_R_HTTP_REQUEST)
        return;
    const tm_admin_t *a = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    int fd = SSL_get_fd(ssl);
    if (a == NULL || fd < 0)
        return;
    char body[256], msg[512];
    int blen = snprintf(body, sizeof(body),
                        "{\"error\":\"this port serves the admin API over TLS only: use %s\"}\n",
                        a->url);
    int n = snprintf(msg, sizeof(msg),
                     "HTTP/1.1 400 Bad Request\r\nContent-Type: " JSON_TYPE "\r\n"
                     "Content-Length: %d\r\nCache-Control: no-store\r\nConnection: close\r\n"
                     "\r\n%s",
                     blen, body);
    if (n > 0 && (size_t)n < sizeof(msg))
        (void)!send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* evhttp asks for a bufferevent for each connection it accepts (Thread: main). */
static struct bufferevent *on_new_connection(struct event_base *base, void *arg)
{
    tm_admin_t *a = arg;
    struct bufferevent *bev = NULL;
    if (a->ssl_ctx != NULL) {
        SSL *ssl = SSL_new(a->ssl_ctx);
        if (ssl == NULL)
            return NULL; /* evhttp's own, plain bufferevent: on_request() refuses it */
        /* tm_admin_free() may finish a write libevent began with another pointer. */
        SSL_set_mode(ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                             BEV_OPT_CLOSE_ON_FREE);
        if (bev == NULL) {
            SSL_free(ssl);
            return NULL;
        }
        /* Clients that close without close_notify are usual, and harmless after a reply. */
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    } else {
        bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (bev == NULL)
            return NULL; /* evhttp makes its own; this one connection goes uncounted */
    }
    if (a->nslots == a->capslots) {
        size_t ncap = a->capslots ? a->capslots * 2 : TM_ADMIN_MAX_CONNS + 1;
        conn_slot_t *p = realloc(a->slots, ncap * sizeof(*p));
        if (p == NULL)
            return bev;
        a->slots = p;
        a->capslots = ncap;
    }
    bool refused = a->nslots >= TM_ADMIN_MAX_CONNS || fds_low(a);
    bufferevent_incref(bev);
    a->slots[a->nslots++] =
        (conn_slot_t){.bev = bev, .opened_ms = tm_mono_ms(), .refused = refused};
    if (refused) {
        if (a->refused_total++ % 1000 == 0)
            TM_WARN("admin", "admin connection refused: too few free descriptors",
                    "connections=%zu reserve=%d refused_total=%" PRIu64, a->nslots - 1,
                    TM_ADMIN_FD_RESERVE, a->refused_total);
        pause_accept(a, next_backoff(a));
        guard_arm(a, 0);
        return bev;
    }
    a->backoff_ms = 0;
    if (a->nslots >= TM_ADMIN_MAX_CONNS)
        pause_accept(a, 0);
    if (!evtimer_pending(a->guard_timer, NULL))
        guard_arm(a, GUARD_TICK_MS);
    return bev;
}

/*
 * accept() failed with something other than EAGAIN or ECONNABORTED: usually
 * EMFILE or ENFILE, which stay true while the listener is readable, so without
 * a pause the loop would spin on them.
 */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    (void)arg;
    int err = EVUTIL_SOCKET_ERROR();
    tm_admin_t *a = registry_find(l);
    if (a == NULL)
        return;
    int ms = next_backoff(a);
    if (ms == BACKOFF_MIN_MS)
        TM_WARN("admin", "cannot accept admin connections; pausing the admin listener",
                "error=\"%s\" pause_ms=%d", strerror(err), ms);
    pause_accept(a, ms);
    guard_arm(a, ms);
}

/* ---- request checks ---- */

/*
 * A request with two different Content-Length values, or with both
 * Content-Length and Transfer-Encoding, frames its body ambiguously: a proxy
 * in front could read another request in it than we do (request smuggling).
 */
static const char *framing_error(struct evhttp_request *req)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const char *cl = NULL;
    bool te = false;
    for (struct evkeyval *kv = TAILQ_FIRST(h); kv != NULL; kv = TAILQ_NEXT(kv, next)) {
        if (strcasecmp(kv->key, "Transfer-Encoding") == 0)
            te = true;
        if (strcasecmp(kv->key, "Content-Length") != 0)
            continue;
        if (cl != NULL && strcmp(cl, kv->value) != 0)
            return "the request has two different Content-Length headers";
        cl = kv->value;
    }
    if (cl != NULL && te)
        return "the request has both Content-Length and Transfer-Encoding";
    return NULL;
}

/* True if `host` (a Host header's host, brackets kept for IPv6) names this server. */
static bool host_names_us(const tm_admin_t *a, const char *host, size_t hlen)
{
    if (hlen == 9 && strncasecmp(host, "localhost", 9) == 0)
        return true;
    /* a->address is "1.2.3.4:P" or "[::1]:P"; its host is everything before the last ':'. */
    const char *colon = strrchr(a->address, ':');
    size_t alen = (size_t)(colon - a->address);
    return hlen == alen && strncasecmp(host, a->address, alen) == 0;
}

/*
 * On a loopback address without a token, a web page the operator visits can
 * reach the API: through DNS rebinding it sends requests whose Host is the
 * attacker's name.  Such a Host is refused.  A non-loopback bind always has a
 * token, which no page can supply, and its clients use names we cannot know,
 * so its Host is not checked.  A request without Host (HTTP/1.0) is not a
 * browser's and passes.
 */
static bool host_allowed(const tm_admin_t *a, struct evhttp_request *req)
{
    if (!a->loopback)
        return true;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
    if (h == NULL)
        return true;
    const char *end = h + strlen(h);
    const char *port = NULL;
    if (h[0] == '[') {
        const char *close = strchr(h, ']');
        if (close == NULL)
            return false;
        port = close[1] == ':' ? close + 2 : NULL;
        if (close[1] != '\0' && close[1] != ':')
            return false;
        end = close + 1;
    } else if ((port = strchr(h, ':')) != NULL) {
        end = port++;
    }
    if (!host_names_us(a, h, (size_t)(end - h)))
        return false;
    if (port == NULL)
        return true;
    const char *ours = strrchr(a->address, ':') + 1;
    return strcmp(port, ours) == 0;
}

/* True if the Content-Type's media type is application/json (parameters may follow). */
static bool is_json_type(const char *ct)
{
    if (ct == NULL)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strlen(JSON_TYPE);
    if (strncasecmp(ct, JSON_TYPE, n) != 0)
        return false;
    ct += n;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

/*
 * The checks that keep a browser from driving the API (see host_allowed())
 * and a proxy from being confused about framing.  Returns 0, or replies and
 * returns the status.  Every refusal closes the connection.
 */
static int check_request(tm_admin_t *a, struct evhttp_request *req, int method)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    const char *why = framing_error(req);
    if (why != NULL) {
        evhttp_add_header(out, "Connection", "close");
        return reply_error(req, 400, why);
    }
    if (!host_allowed(a, req)) {
        evhttp_add_header(out, "Connection", "close");
        return reply_error(req, 403,
                           "the Host header does not name this server; use the admin address "
                           "(as in admin.addr) or localhost");
    }
    bool reads = method == EVHTTP_REQ_GET || method == EVHTTP_REQ_HEAD;
    if (!reads && evhttp_find_header(in, "Origin") != NULL) {
        evhttp_add_header(out, "Connection", "close");
        return reply_error(req, 403,
                           "cross-origin requests cannot change the job; send the request "
                           "without an Origin header (curl, tidemark savepoint, tidemark stop)");
    }
    if (method == EVHTTP_REQ_POST && !is_json_type(evhttp_find_header(in, "Content-Type"))) {
        evhttp_add_header(out, "Connection", "close");
        return reply_error(req, 415, "POST requests need \"Content-Type: application/json\"");
    }
    return 0;
}

/* evhttp calls this as it closes or frees a connection (libevent 2.1, incoming ones included). */
static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    tm_admin_t *a = arg;
    for (size_t i = 0; i < a->nconns; i++) {
        if (a->conns[i] == evcon) {
            a->conns[i] = a->conns[--a->nconns];
            return;
        }
    }
}

/*
 * Remembers the request's connection until it closes, so that tm_admin_free()
 * can write out a reply the loop has not sent yet.  Without memory the
 * connection is just not remembered: only that flush is lost.
 */
static void track_connection(tm_admin_t *a, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (evcon == NULL)
        return;
    for (size_t i = 0; i < a->nconns; i++)
        if (a->conns[i] == evcon)
            return;
    if (a->nconns == a->capconns) {
        size_t ncap = a->capconns ? a->capconns * 2 : 16;
        struct evhttp_connection **p = realloc(a->conns, ncap * sizeof(*p));
        if (p == NULL)
            return;
        a->conns = p;
        a->capconns = ncap;
    }
    a->conns[a->nconns++] = evcon;
    evhttp_connection_set_closecb(evcon, on_conn_close, a);
}

/*
 * True if a TLS server got a request over a plain bufferevent: evhttp makes
 * one itself when on_new_connection() could not make an OpenSSL one (out of
 * memory).  Such a connection is cut without an answer (invariant 5).
 */
static bool in_clear_under_tls(const tm_admin_t *a, struct evhttp_request *req)
{
    if (a->ssl_ctx == NULL)
        return false;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    if (bev == NULL || bufferevent_openssl_get_ssl(bev) != NULL)
        return false;
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
    bufferevent_disable(bev, EV_WRITE);
    return true;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    tm_admin_t *a = arg;
    if (in_clear_under_tls(a, req)) {
        evhttp_send_reply(req, 503, NULL, NULL); /* never sent: the socket is shut */
        return;
    }
    track_connection(a, req);
    int method = (int)evhttp_request_get_command(req);
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    if (path == NULL || path[0] == '\0')
        path = "/";
    int code = check_request(a, req, method);
    if (code != 0) {
        /* Replied already. */
    } else if (a->token != NULL && !authorized(a, req)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Bearer realm=\"tidemark\"");
        code = reply_error(req, 401,
                           "this admin API needs \"Authorization: Bearer <admin_token>\"");
    } else {
        code = route(a, req, method, path);
    }
    /* The query string is not logged: nothing but wait_ms belongs there. */
    char shown[168], *peer = NULL;
    ev_uint16_t port = 0;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    log_text(shown, sizeof(shown), path);
    if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
        if (evcon != NULL)
            evhttp_connection_get_peer(evcon, &peer, &port);
        TM_INFO("admin", "request", "method=%s path=\"%s\" status=%d peer=\"%s:%u\"",
                method_name(method), shown, code, peer ? peer : "?", (unsigned)port);
    } else {
        TM_DEBUG("admin", "request", "method=%s path=\"%s\" status=%d", method_name(method), shown,
                 code);
    }
}

/* ---- start and free ---- */

static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
           (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127);
}

/*
 * Parses "HOST:PORT", "[V6]:PORT" or "localhost:PORT" with a numeric host.
 * Returns 0 or TM_ECONFIG.
 */
static int parse_listen_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *sslen,
                             char *errstr, size_t errstr_size)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *port;
    size_t hlen;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':')
            goto bad;
        hlen = (size_t)(close - addr - 1);
        if (hlen >= sizeof(host))
            goto bad;
        memcpy(host, addr + 1, hlen);
        port = close + 2;
    } else {
        const char *colon = strrchr(addr, ':');
        if (colon == NULL || memchr(addr, ':', (size_t)(colon - addr)) != NULL)
            goto bad;
        hlen = (size_t)(colon - addr);
        if (hlen >= sizeof(host))
            goto bad;
        memcpy(host, addr, hlen);
        port = colon + 1;
    }
    host[hlen] = '\0';
    char *end;
    errno = 0;
    long p = strtol(port, &end, 10);
    if (port[0] < '0' || port[0] > '9' || *end != '\0' || errno != 0 || p > 65535)
        goto bad;
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (addr[0] != '[' && inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)p);
        *sslen = sizeof(*in);
        return 0;
    }
    if (addr[0] == '[' && inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)p);
        *sslen = sizeof(*in6);
        return 0;
    }
bad:
    return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                     "admin address '%s' is not HOST:PORT with a numeric IP address; write e.g. "
                     "127.0.0.1:8081, [::1]:8081 or 127.0.0.1:0 (any free port)",
                     addr);
}

/* Formats an address as "1.2.3.4:P" or "[::1]:P". */
static void format_addr(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(out, outlen, "%s:%u", host, (unsigned)ntohs(in->sin_port));
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(out, outlen, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
    }
}

/* Opens a listening socket on `ss`.  Returns the fd, or -1 with errno set. */
static int listen_on(const struct sockaddr_storage *ss, socklen_t sslen)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    /* SO_REUSEADDR lets a restarted daemon bind while old connections sit in TIME_WAIT. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)ss, sslen) != 0 || listen(fd, 64) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* Splits `path` into a directory and a file name for tm_write_file_atomic(). */
static int write_addr_file(const char *path, const char *text)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else if ((size_t)(slash - path) < sizeof(dir))
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    else
        return TM_EIO;
    if (name[0] == '\0') {
        errno = EISDIR;
        return TM_EIO;
    }
    return tm_write_file_atomic(dir, name, text, strlen(text));
}

/*
 * tm_admin_check() and the first half of tm_admin_start(): everything but the
 * bind.  `client_certs`: TLS with admin_tls_client_ca, which authenticates
 * every client as a token would.
 */
static int check_addr(const char *addr, const char *token, bool client_certs,
                      struct sockaddr_storage *ss, socklen_t *sslen, char *errstr,
                      size_t errstr_size)
{
    int rc = parse_listen_addr(addr, ss, sslen, errstr, errstr_size);
    if (rc != 0)
        return rc;
    if (!is_loopback(ss) && token == NULL && !client_certs)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "admin address '%s' is not a loopback address; serving the admin API "
                         "there requires admin_token (a bearer token every request must carry) "
                         "or admin_tls_client_ca (client certificates), or bind 127.0.0.1",
                         addr);
    for (const char *t = token; t && *t; t++)
        if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "admin_token contains a space or a non-printable character; use "
                             "printable ASCII only (e.g. the output of 'openssl rand -hex 32')");
    return 0;
}

/* True when TLS is on and clients must present a certificate. */
static bool wants_client_certs(const tm_admin_tls_t *tls)
{
    return tm__admin_tls_enabled(tls) && tls->client_ca != NULL && tls->client_ca[0] != '\0';
}

int tm_admin_check_tls(const char *addr, const char *token, const tm_admin_tls_t *tls,
                       char *errstr, size_t errstr_size)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (addr == NULL || addr[0] == '\0')
        addr = TM_ADMIN_DEFAULT_ADDR;
    int rc = check_addr(addr, token != NULL && token[0] != '\0' ? token : NULL,
                        wants_client_certs(tls), &ss, &sslen, errstr, errstr_size);
    if (rc != 0 || !tm__admin_tls_enabled(tls))
        return rc;
    SSL_CTX *ctx = NULL;
    rc = tm__admin_tls_server_ctx(tls, &ctx, errstr, errstr_size);
    SSL_CTX_free(ctx);
    return rc;
}

int tm_admin_check(const char *addr, const char *token, char *errstr, size_t errstr_size)
{
    return tm_admin_check_tls(addr, token, NULL, errstr, errstr_size);
}

int tm_admin_start(struct event_base *base, const char *addr, const char *token,
                   const tm_admin_hooks_t *hooks, const char *addr_file, tm_admin_t **out,
                   char *errstr, size_t errstr_size)
{
    return tm_admin_start_tls(base, addr, token, NULL, hooks, addr_file, out, errstr,
                              errstr_size);
}

int tm_admin_start_tls(struct event_base *base, const char *addr, const char *token,
                       const tm_admin_tls_t *tls, const tm_admin_hooks_t *hooks,
                       const char *addr_file, tm_admin_t **out, char *errstr, size_t errstr_size)
{
    *out = NULL;
    if (addr == NULL || addr[0] == '\0')
        addr = TM_ADMIN_DEFAULT_ADDR;
    if (token != NULL && token[0] == '\0')
        token = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen;
    int rc = check_addr(addr, token, wants_client_certs(tls), &ss, &sslen, errstr, errstr_size);
    if (rc != 0)
        return rc;
    /* The files are loaded before the bind, so a bad one costs no port (admin_tls.h, 1). */
    SSL_CTX *ssl_ctx = NULL;
    if (tm__admin_tls_enabled(tls) &&
        (rc = tm__admin_tls_server_ctx(tls, &ssl_ctx, errstr, errstr_size)) != 0)
        return rc;

    tm_admin_t *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        SSL_CTX_free(ssl_ctx);
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    }
    a->base = base;
    a->ssl_ctx = ssl_ctx;
    if (ssl_ctx != NULL) {
        SSL_CTX_set_app_data(ssl_ctx, a);
        SSL_CTX_set_info_callback(ssl_ctx, on_tls_info);
    }
    if (hooks != NULL)
        a->hooks = *hooks;
    if (token != NULL) {
        a->token = strdup(token);
        a->token_len = strlen(token);
    }
    if (addr_file != NULL)
        a->addr_file = strdup(addr_file);
    a->http = evhttp_new(base);
    a->wait_timer = event_new(base, -1, EV_PERSIST, on_wait_tick, a);
    a->guard_timer = evtimer_new(base, on_guard_tick, a);
    a->loopback = is_loopback(&ss);
    if ((token != NULL && a->token == NULL) || (addr_file != NULL && a->addr_file == NULL) ||
        a->http == NULL || a->wait_timer == NULL || a->guard_timer == NULL) {
        tm_admin_free(a);
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    }
    evhttp_set_gencb(a->http, on_request, a);
    evhttp_set_max_body_size(a->http, TM_ADMIN_MAX_BODY);
    evhttp_set_max_headers_size(a->http, 16 * 1024);
    /* Idle and header timeout; a held long poll extends its connection's (h_savepoint_get). */
    evhttp_set_timeout(a->http, TM_ADMIN_IDLE_TIMEOUT_S);
    evhttp_set_bevcb(a->http, on_new_connection, a);
    /* Methods evhttp would refuse on its own get our 405 with an Allow header instead. */
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH |
                                            EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT);

    int fd = listen_on(&ss, sslen);
    if (fd < 0) {
        int saved = errno;
        tm_admin_free(a);
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "cannot listen on admin address %s (%s)%s", addr, strerror(saved),
                         saved == EADDRINUSE
                             ? ": another process (another tidemark?) holds the port; choose "
                               "another admin address, or port 0 for any free port"
                             : "");
    }
    struct evhttp_bound_socket *bound_sock = evhttp_accept_socket_with_handle(a->http, fd);
    if (bound_sock == NULL) {
        close(fd);
        tm_admin_free(a);
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "cannot serve admin address %s", addr);
    }
    a->listener = evhttp_bound_socket_get_listener(bound_sock);
    evconnlistener_set_error_cb(a->listener, on_accept_error);
    registry_add(a);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    getsockname(fd, (struct sockaddr *)&bound, &blen);
    format_addr(&bound, a->address, sizeof(a->address));
    snprintf(a->url, sizeof(a->url), "%s%s", a->ssl_ctx ? "https://" : "", a->address);

    if (a->addr_file != NULL) {
        /* A wildcard bind is reached locally through the loopback address of its family. */
        struct sockaddr_storage local = bound;
        if (local.ss_family == AF_INET &&
            ((struct sockaddr_in *)&local)->sin_addr.s_addr == htonl(INADDR_ANY))
            ((struct sockaddr_in *)&local)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (local.ss_family == AF_INET6 &&
            IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&local)->sin6_addr))
            ((struct sockaddr_in6 *)&local)->sin6_addr = in6addr_loopback;
        char shown[sizeof(a->address)];
        format_addr(&local, shown, sizeof(shown));
        snprintf(a->file_text, sizeof(a->file_text), "%s%s\n", a->ssl_ctx ? "https://" : "",
                 shown);
        if (write_addr_file(a->addr_file, a->file_text) != 0) {
            int saved = errno;
            free(a->addr_file);
            a->addr_file = NULL; /* not ours to remove */
            tm_admin_free(a);
            return tm_seterr(errstr, errstr_size, TM_EIO,
                             "cannot write the admin address file %s (%s); it must be writable "
                             "for 'tidemark savepoint' and 'tidemark stop' to find the daemon",
                             addr_file, strerror(saved));
        }
    }
    TM_INFO("admin", "listening", "address=%s auth=%s tls=%s", a->address,
            a->token                                ? "bearer"
            : a->ssl_ctx && wants_client_certs(tls) ? "client-certificate"
                                                    : "none",
            !a->ssl_ctx ? "off" : wants_client_certs(tls) ? "mutual" : "on");
    *out = a;
    return 0;
}

const char *tm_admin_address(const tm_admin_t *a)
{
    return a->url;
}

/*
 * Writes what is queued on a connection straight to its socket, without
 * running the loop, so that a reply leaves before the process exits.
 */
static void flush_connection(struct evhttp_connection *evcon, int64_t deadline_ms)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd < 0)
        return;
    struct evbuffer *outb = bufferevent_get_output(bev);
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    if (ssl != NULL) {
        /*
         * The output buffer holds plaintext: it goes through SSL_write, whole,
         * so that a write libevent left half done (SSL_write wants the same
         * bytes again, at least as many) is completed first.
         */
        if (!SSL_is_init_finished(ssl))
            return;
        while (evbuffer_get_length(outb) > 0) {
            size_t len = evbuffer_get_length(outb);
            int n = SSL_write(ssl, evbuffer_pullup(outb, -1), len > INT_MAX ? INT_MAX : (int)len);
            if (n > 0) {
                /* A buffer that cannot be drained would send the same bytes again. */
                if (evbuffer_drain(outb, (size_t)n) != 0)
                    break;
                continue;
            }
            int err = SSL_get_error(ssl, n);
            int left = (int)(deadline_ms - tm_mono_ms());
            struct pollfd pfd = {.fd = fd,
                                 .events = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT};
            if ((err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) || left <= 0 ||
                poll(&pfd, 1, left) <= 0)
                break;
        }
        return;
    }
    /* A socket bufferevent freezes the front of its output; only its own writer drains it. */
    evbuffer_unfreeze(outb, 1);
    while (evbuffer_get_length(outb) > 0) {
        int left = (int)(deadline_ms - tm_mono_ms());
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        if (left <= 0 || poll(&pfd, 1, left) <= 0)
            break;
        if (evbuffer_write(outb, fd) < 0 && errno != EAGAIN && errno != EINTR)
            break;
    }
    evbuffer_freeze(outb, 1);
}

/* Removes the address file if it still names this server (another daemon may have taken it). */
static void remove_addr_file(const tm_admin_t *a)
{
    char buf[sizeof(a->file_text)];
    int fd = open(a->addr_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n >= 0) {
        buf[n] = '\0';
        if (strcmp(buf, a->file_text) == 0)
            unlink(a->addr_file);
    }
}

tm_admin_t *tm_admin_free(tm_admin_t *a)
{
    if (a == NULL)
        return NULL;
    int64_t deadline = tm_mono_ms() + FLUSH_MS;
    while (a->waiters != NULL) {
        waiter_t *w = a->waiters;
        a->waiters = w->next;
        reply_status(a, w->req, w->id);
        free(w);
    }
    for (size_t i = 0; i < a->nconns; i++)
        flush_connection(a->conns[i], deadline);
    if (a->wait_timer != NULL)
        event_free(a->wait_timer);
    if (a->guard_timer != NULL)
        event_free(a->guard_timer);
    registry_remove(a);
    if (a->http != NULL)
        evhttp_free(a->http);
    /* evhttp_free() dropped its references; ours close the sockets. */
    for (size_t i = 0; i < a->nslots; i++)
        release_slot(&a->slots[i]);
    free(a->slots);
    if (a->addr_file != NULL && a->file_text[0] != '\0')
        remove_addr_file(a);
    if (a->token != NULL) {
        explicit_bzero(a->token, a->token_len);
        free(a->token);
    }
    free(a->conns);
    free(a->addr_file);
    SSL_CTX_free(a->ssl_ctx);
    free(a);
    return NULL;
}

/* ---- savepoint directories ---- */

/* True if `path` has a "." or ".." component. */
static bool has_dot_component(const char *path)
{
    for (const char *p = path; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return true;
        p += n;
        while (*p == '/')
            p++;
    }
    return false;
}

/* True if `path` is `root` or below it (both canonical, without a trailing '/'). */
static bool is_within(const char *root, const char *path)
{
    size_t n = strlen(root);
    if (n == 1 && root[0] == '/')
        return path[0] == '/';
    return strncmp(path, root, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

int tm_admin_savepoint_dir(const char *root, const char *dir, char **out, char *errstr,
                           size_t errstr_size)
{
    *out = NULL;
    if (tm_mkdir_p(root, 0755) != 0)
        return tm_seterr(errstr, errstr_size, TM_EIO,
                         "cannot create the savepoint root %s (%s); check savepoint_dir", root,
                         strerror(errno));
    char *canon_root = realpath(root, NULL);
    if (canon_root == NULL)
        return tm_seterr(errstr, errstr_size, TM_EIO, "cannot resolve the savepoint root %s (%s)",
                         root, strerror(errno));
    if (dir == NULL || dir[0] == '\0') {
        *out = canon_root;
        return 0;
    }
    int rc = 0;
    char *cand = NULL;
    if (has_dot_component(dir)) {
        rc = tm_seterr(errstr, errstr_size, TM_EINVAL,
                       "savepoint dir \"%.200s\" has a '.' or '..' component; give a directory "
                       "below the savepoint root %s",
                       dir, canon_root);
        goto done;
    }
    if (dir[0] == '/')
        cand = strdup(dir);
    else if (asprintf(&cand, "%s/%s", canon_root, dir) < 0)
        cand = NULL;
    if (cand == NULL) {
        rc = tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
        goto done;
    }
    size_t n = strlen(cand);
    while (n > 1 && cand[n - 1] == '/')
        cand[--n] = '\0';
    /*
     * Resolve the longest prefix that exists, following its symlinks; what
     * follows it does not exist yet, so it cannot be a symlink, and it has no
     * "..".  The result must still be below the root.
     */
    char *cut = cand + n;
    char *resolved = NULL;
    for (;;) {
        char saved = *cut;
        *cut = '\0';
        resolved = realpath(cand[0] ? cand : "/", NULL);
        *cut = saved;
        if (resolved != NULL || errno != ENOENT)
            break;
        char *slash = cut;
        while (slash > cand && *--slash != '/')
            ;
        if (slash == cand && cand[0] != '/')
            break;
        cut = slash;
    }
    if (resolved == NULL) {
        rc = tm_seterr(errstr, errstr_size, TM_EINVAL,
                       "savepoint dir \"%.200s\" cannot be used (%s)", dir, strerror(errno));
        goto done;
    }
    char *full = NULL;
    if (asprintf(&full, "%s%s", strcmp(resolved, "/") == 0 && *cut == '/' ? "" : resolved, cut) <
        0)
        full = NULL;
    free(resolved);
    if (full == NULL) {
        rc = tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
        goto done;
    }
    if (!is_within(canon_root, full)) {
        rc = tm_seterr(errstr, errstr_size, TM_EINVAL,
                       "savepoint dir \"%.200s\" is outside the savepoint root %s (through a "
                       "symlink or an absolute path); give a directory below it, or change "
                       "savepoint_dir",
                       dir, canon_root);
        free(full);
        goto done;
    }
    *out = full;
done:
    free(cand);
    free(canon_root);
    return rc;
}
