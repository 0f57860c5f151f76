/*
 * Unit tests: the admin HTTP API (src/daemon/admin.c) and its CLI client
 * (src/daemon/admin_client.c).
 *
 * A real server runs on 127.0.0.1:0 on an event_base in its own thread, with
 * fake hooks that play the daemon: a savepoint completes 1 s after it is
 * requested, a directory containing "fail" makes it fail, "/bad" is refused.
 * Requests go over real sockets, through tm_admin_request() or, where the
 * headers matter, a raw HTTP exchange.  The CLI commands run in this process
 * with stdout and stderr captured.  The TLS tests make real certificates with
 * `openssl req` in a temporary directory and speak to the server through
 * tm_admin_request_tls() and the CLI with --cacert.
 */
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "daemon/admin.h"
#include "tm_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define SAVEPOINT_MS 1000

/* ---- the fake daemon ---- */

typedef struct fake {
    atomic_bool ready;
    atomic_int stop_calls;
    /* Touched only on the loop thread while it runs. */
    int64_t next_id;
    int64_t sp_id, sp_done_at;
    bool sp_fail, sp_stop;
    char sp_path[512];
} fake_t;

static bool fake_ready(void *arg)
{
    return atomic_load(&((fake_t *)arg)->ready);
}

static void fake_metrics(void *arg, tm_buf_t *out)
{
    (void)arg;
    tm_buf_puts(out, "# TYPE tidemark_up gauge\ntidemark_up 1\n");
}

static void fake_job(void *arg, tm_buf_t *out)
{
    (void)arg;
    tm_buf_puts(out, "{\"job\":\"test.sql\",\"state\":\"running\"}");
}

static void fake_checkpoints(void *arg, tm_buf_t *out)
{
    (void)arg;
    tm_buf_puts(out, "{\"completed\":[{\"id\":7}]}");
}

static int64_t fake_savepoint(void *arg, const char *dir, bool stop, char *errstr,
                              size_t errstr_size)
{
    fake_t *f = arg;
    if (dir != NULL && strcmp(dir, "/bad") == 0)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "savepoint dir /bad is not writable");
    if (f->sp_id != 0 && tm_mono_ms() < f->sp_done_at)
        return tm_seterr(errstr, errstr_size, TM_EAGAIN, "savepoint %lld is in progress",
                         (long long)f->sp_id);
    f->sp_id = ++f->next_id;
    f->sp_done_at = tm_mono_ms() + SAVEPOINT_MS;
    f->sp_fail = dir != NULL && strstr(dir, "fail") != NULL;
    f->sp_stop = stop;
    snprintf(f->sp_path, sizeof(f->sp_path), "%s/savepoint-%lld", dir ? dir : "/default",
             (long long)f->sp_id);
    return f->sp_id;
}

static bool fake_status(void *arg, int64_t id, tm_buf_t *out)
{
    fake_t *f = arg;
    if (id <= 0 || id > f->next_id)
        return false;
    bool done = id != f->sp_id || tm_mono_ms() >= f->sp_done_at;
    if (!done)
        tm_buf_appendf(out, "{\"id\":%lld,\"status\":\"in_progress\"}", (long long)id);
    else if (id == f->sp_id && f->sp_fail)
        tm_buf_appendf(out, "{\"id\":%lld,\"status\":\"failed\",\"error\":\"disk full\"}",
                       (long long)id);
    else
        tm_buf_appendf(out, "{\"id\":%lld,\"status\":\"completed\",\"path\":\"%s\"}",
                       (long long)id, id == f->sp_id ? f->sp_path : "/old");
    return true;
}

static void fake_stop(void *arg)
{
    atomic_fetch_add(&((fake_t *)arg)->stop_calls, 1);
}

/* Incremental snapshots: what the last POST /v1/snapshots handed over. */
static char snap_seen[512];

static int64_t fake_snapshot_start(void *arg, const char *const *tables, int ntables,
                                   const char *where, const char *source, char *errstr,
                                   size_t errstr_size)
{
    (void)arg;
    size_t n = 0;
    snap_seen[0] = '\0';
    for (int i = 0; i < ntables; i++)
        n += (size_t)snprintf(snap_seen + n, sizeof(snap_seen) - n, "%s,", tables[i]);
    snprintf(snap_seen + n, sizeof(snap_seen) - n, "where=%s source=%s", where ? where : "-",
             source ? source : "-");
    if (strcmp(tables[0], "public.missing") == 0)
        return tm_seterr(errstr, errstr_size, TM_ENOTFOUND, "no source captures public.missing");
    if (where != NULL && strcmp(where, "bad") == 0)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "the filter does not work");
    return 42;
}

static void fake_snapshots(void *arg, tm_buf_t *out)
{
    (void)arg;
    tm_buf_puts(out, "{\"snapshots\":[{\"id\":42,\"state\":\"running\"}]}\n");
}

static int fake_snapshot_control(void *arg, const char *op, const char *source, char *errstr,
                                 size_t errstr_size)
{
    (void)arg;
    snprintf(snap_seen, sizeof(snap_seen), "%s source=%s", op, source ? source : "-");
    if (source != NULL && strcmp(source, "nope") == 0)
        return tm_seterr(errstr, errstr_size, TM_ENOTFOUND, "no source nope");
    return 1;
}

/* ---- the server thread ---- */

typedef struct server {
    struct event_base *base;
    struct event *tick;
    tm_admin_t *admin;
    fake_t fake;
    pthread_t thread;
    atomic_bool quit;
    atomic_bool exited; /* the fake daemon freed the server itself */
    bool exit_on_stop;
    char addr[64];
} server_t;

/*
 * Runs on the loop thread.  With exit_on_stop it plays `tidemark run`: a stop,
 * or a completed stop-savepoint, frees the admin server and ends the loop in
 * the same turn, as the daemon does when the job is done.
 */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    server_t *s = arg;
    (void)fd;
    (void)what;
    bool stop_now = s->exit_on_stop && s->admin != NULL &&
                    (atomic_load(&s->fake.stop_calls) > 0 ||
                     (s->fake.sp_stop && tm_mono_ms() >= s->fake.sp_done_at));
    if (stop_now) {
        atomic_store(&s->exited, true);
        s->admin = tm_admin_free(s->admin);
    }
    if (stop_now || atomic_load(&s->quit))
        event_base_loopbreak(s->base);
}

static void *server_main(void *arg)
{
    server_t *s = arg;
    event_base_dispatch(s->base);
    return NULL;
}

static const tm_admin_hooks_t *full_hooks(fake_t *f)
{
    static _Thread_local tm_admin_hooks_t h;
    h = (tm_admin_hooks_t){f,           fake_ready,     fake_metrics, fake_job, fake_checkpoints,
                           fake_savepoint, fake_status, fake_stop};
    h.snapshot_start = fake_snapshot_start;
    h.snapshots = fake_snapshots;
    h.snapshot_control = fake_snapshot_control;
    return &h;
}

/* The TLS settings server_start() serves with (NULL: plain HTTP). */
static const tm_admin_tls_t *server_tls;

static int server_start(server_t *s, const char *token, const tm_admin_hooks_t *hooks,
                        const char *addr_file, bool exit_on_stop)
{
    memset(s, 0, sizeof(*s));
    s->exit_on_stop = exit_on_stop;
    s->base = event_base_new();
    char err[512];
    tm_admin_hooks_t h = hooks ? *hooks : *full_hooks(&s->fake);
    int rc = tm_admin_start_tls(s->base, "127.0.0.1:0", token, server_tls, &h, addr_file,
                                &s->admin, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "tm_admin_start: %s\n", err);
        event_base_free(s->base);
        return rc;
    }
    snprintf(s->addr, sizeof(s->addr), "%s", tm_admin_address(s->admin));
    s->tick = event_new(s->base, -1, EV_PERSIST, on_tick, s);
    struct timeval tv = {0, 10000};
    event_add(s->tick, &tv);
    pthread_create(&s->thread, NULL, server_main, s);
    return 0;
}

static void server_stop(server_t *s)
{
    atomic_store(&s->quit, true);
    pthread_join(s->thread, NULL);
    s->admin = tm_admin_free(s->admin);
    event_free(s->tick);
    event_base_free(s->base);
}

/* ---- clients ---- */

static int req(const server_t *s, const char *token, const char *method, const char *path,
               const char *body, int *status, tm_buf_t *resp)
{
    char err[512];
    int rc = tm_admin_request(s->addr, token, method, path, body, 5000, status, resp, err,
                              sizeof(err));
    if (rc != 0)
        fprintf(stderr, "tm_admin_request %s %s: %s\n", method, path, err);
    return rc;
}

/* Sends `text` as is and returns the whole answer, headers included. */
static int raw_http(const server_t *s, const char *text, tm_buf_t *out)
{
    int port = atoi(strrchr(s->addr, ':') + 1);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        close(fd);
        return -1;
    }
    size_t len = strlen(text);
    for (size_t off = 0; off < len;) {
        ssize_t n = send(fd, text + off, len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* the server may answer (413) before reading everything */
        off += (size_t)n;
    }
    tm_buf_clear(out);
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
        tm_buf_append(out, buf, (size_t)n);
    close(fd);
    return out->len > 0 ? 0 : -1;
}

static const char *json_str(const tm_buf_t *b, const char *key, char *out, size_t outlen)
{
    json_t *j = json_loadb(b->data ? b->data : "", b->len, 0, NULL);
    const char *v = json_string_value(json_object_get(j, key));
    snprintf(out, outlen, "%s", v ? v : "");
    json_decref(j);
    return v ? out : NULL;
}

static long long json_int(const tm_buf_t *b, const char *key)
{
    json_t *j = json_loadb(b->data ? b->data : "", b->len, 0, NULL);
    long long v = json_is_integer(json_object_get(j, key))
                      ? (long long)json_integer_value(json_object_get(j, key))
                      : -1;
    json_decref(j);
    return v;
}

/* Runs a CLI command with stdout and stderr captured into `out` and `err`. */
static int capture(int (*fn)(int, char **), char **argv, tm_buf_t *out, tm_buf_t *err)
{
    int argc = 0;
    while (argv[argc] != NULL)
        argc++;
    FILE *fo = tmpfile(), *fe = tmpfile();
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    dup2(fileno(fo), 1);
    dup2(fileno(fe), 2);
    int code = fn(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    FILE *files[2] = {fo, fe};
    tm_buf_t *bufs[2] = {out, err};
    for (int i = 0; i < 2; i++) {
        char buf[4096];
        size_t n;
        tm_buf_clear(bufs[i]);
        rewind(files[i]);
        while ((n = fread(buf, 1, sizeof(buf), files[i])) > 0)
            tm_buf_append(bufs[i], buf, n);
        tm_buf_putc(bufs[i], '\0');
        bufs[i]->len--;
        fclose(files[i]);
    }
    return code;
}

static char tmp_root[256];

static void make_dir(char *out, size_t outlen, const char *name)
{
    snprintf(out, outlen, "%s/%s", tmp_root, name);
    mkdir(out, 0700);
}

/* ---- tests ---- */

static void test_health_ready_metrics(void)
{
    server_t s;
    TM_REQUIRE(server_start(&s, NULL, NULL, NULL, false) == 0);
    tm_buf_t resp;
    tm_buf_init(&resp);
    int st = 0;
    TM_CHECK(strncmp(s.addr, "127.0.0.1:", 10) == 0 && atoi(s.addr + 10) > 0);
    TM_CHECK(req(&s, NULL, "GET", "/healthz", NULL, &st, &resp) == 0);
    TM_CHECK_INT(st, 200);
    TM_CHECK_STR(resp.data, "ok\n");

    TM_CHECK(req(&s, NULL, "GET", "/readyz", NULL, &st, &resp) == 0);
    TM_CHECK_INT(st, 503);
    atomic_store(&s.fake.ready, true);
    TM_CHECK(req(&s, NULL, "GET", "/readyz", NULL, &st, &resp) == 0);
    TM_CHECK_INT(st, 200);

    TM_CHECK(raw_http(&s, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                      &resp) == 0);
    TM_CHECK(strncmp(resp.data, "HTTP/1.1 200", 12) == 0);
    TM_CHECK(strstr(resp.data, "Content-Type: text/plain; version=0.0.4") != NULL);
    TM_CHECK(strstr(resp.data, "\r\n\r\n# TYPE tidemark_up gauge\ntidemark_up 1\n") != NULL);

    TM_CHECK(req(&s, NULL, "GET", "/v1/job", NULL, &st, &resp) == 0);
    TM_CHECK_INT(st, 200);
    char v[64];
    TM_CHECK_STR(json_str(&resp, "state", v, sizeof(v)), "running");
    TM_CHECK(req(&s, NULL, "GET", "/v1/checkpoints", NULL, &st, &resp) == 0);
    TM_CHECK_INT(st, 200);
    TM_CHECK(strstr(resp.data, "\"completed\"") != NULL);

    /* HEAD is GET without a body. */
    TM_CHECK(raw_http(&s, "HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                      &resp) == 0);
    TM_CHECK(strncmp(resp.data, "HTTP/1.1 200", 12) == 0);
    TM_CHECK(strstr(resp.data, "Content-Length: 3\r\n") != NULL);
    TM_CHECK(strstr(resp.data, "\r\n\r\n") != NULL && strstr(resp.data, "\r\n\r\n")[4] == '\0');
    TM_CHECK(req(&s, NULL, "HEAD", "/v1/job", NULL, &st, &resp) == 0);
    TM_CHECK_INT(st, 200);
    TM_CHECK_INT(resp.len, 0);
    tm_buf_release(&resp);
    server_stop(&s);
}

static void test_savepoint_flow(void)
{
    server_t s;
    TM_REQUIRE(server_start(&s, NULL, NULL, NULL, false) == 0);
    tm_buf_t resp;
    tm_buf_init(&resp);
    int st = 0;
    char v[256];

    TM_CHECK(raw_http(&s,
                      "POST /v1/savepoints HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                      "Content-Type: application/json\r\n"
                      "Content-Length: 17\r\n\r\n{\"dir\": \"/tmp/x\"}",
                      &resp) == 0);
    TM_CHECK(strncmp(resp.data, "HTTP/1.1 202", 12) == 0);
    TM_CHECK(strstr(resp.data, "Location: /v1/savepoints/1\r\n") != NULL);
    TM_CHECK(strstr(resp.data, "{\"id\":1}") != NULL);

    TM_CHECK(req(&s, NULL, "GET", "/v1/savepoints/1", NULL, &st, &resp) == 0);
    TM_CHECK_INT(st, 200);
    TM_CHECK_STR(json_str(&resp, "status", v, sizeof(v)), "in_progress");

    /* A second savepoint while one is in progress: 409 with the daemon's reason. */
    TM_CHECK(req(&s, NULL, "POST", "/v1/savepoints", NULL, &st, &resp) == 0);
    TM_CHECK_INT(st, 409);
    TM_CHECK_STR(json_str(&resp, "error", v, sizeof(v)), "savepoint 1 is in progress");

    /* The long poll answers when the savepoint completes, well before wait_ms. */
    int64_t t0 = tm_mono_ms();
    TM_CHECK(req(&s, NULL, "GET", "/v1/savepoints/1?wait_ms=20000", NULL, &st, &resp) == 0);
    int64_t took = tm_mono_ms() - t0;
    TM_CHECK_INT(st, 200);
    TM_CHECK_STR(json_str(&resp, "status", v, sizeof(v)), "completed");
    TM_CHECK_STR(json_str(&resp, "path", v, sizeof(v)), "/tmp/x/savepoint-1");
    TM_CHECK(took < 15000); /* answered on completion, not at the end of wait_ms */

    /* Without a body: the default directory. */
    TM_CHECK(req(&s, NULL, "POST", "/v1/savepoints", NULL, &st, &resp) == 0);
    TM_CHECK_INT(st, 202);
    TM_CHECK_INT(json_int(&resp, "id"), 2);
    /* A long poll that runs out answers "in_progress". */
    t0 = tm_mono_ms();
    TM_CHECK(req(&s, NULL, "GET", "/v1/savepoints/2?wait_ms=60", NULL, &st, &resp) == 0);
    TM_CHECK(tm_mono_ms() - t0 >= 50);
    TM_CHECK_STR(json_str(&resp, "status", v, sizeof(v)), "in_progress");
    usleep((SAVEPOINT_MS + 50) * 1000);
    TM_CHECK(req(&s, NULL, "GET", "/v1/savepoints/2", NULL, &st, &resp) == 0);
    TM_CHECK_STR(json_str(&resp, "path", v, sizeof(v)), "/default/savepoint-2");

    /* A failing savepoint reports the daemon's error. */
    TM_CHECK(req(&s, NULL, "POST", "/v1/savepoints", "{\"dir\":\"/tmp/fail\"}", &st, &resp) == 0);
    TM_CHECK_INT(st, 202);
    TM_CHECK(req(&s, NULL, "GET", "/v1/savepoints/3?wait_ms=3000", NULL, &st, &resp) == 0);
    TM_CHECK_STR(json_str(&resp, "status", v, sizeof(v)), "failed");
    TM_CHECK_STR(json_str(&resp, "error", v, sizeof(v)), "disk full");

    /* A refused directory is the client's mistake: 400. */
    TM_CHECK(req(&s, NULL, "POST", "/v1/savepoints", "{\"dir\":\"/bad\"}", &st, &resp) == 0);
    TM_CHECK_INT(st, 400);
    TM_CHECK_STR(json_str(&resp, "error", v, sizeof(v)), "savepoint dir /bad is not writable");

    TM_CHECK(req(&s, NULL, "GET", "/v1/savepoints/99", NULL, &st, &resp) == 0);
    TM_CHECK_INT(st, 404);
    TM_CHECK(req(&s, NULL, "GET", "/v1/savepoints/99?wait_ms=1000", NULL, &st, &resp) == 0);
    TM_CHECK_INT(st, 404);
    TM_CHECK(req(&s, NULL, "GET", "/v1/savepoints/abc", NULL, &st, &resp) == 0);
    TM_CHECK_INT(st, 404);
    TM_CHECK(req(&s, NULL, "GET", "/v1/savepoints/-1", NULL, &st, &resp) == 0);
    TM_CHECK_INT(st, 404);
    TM_CHECK(req(&s, NULL, "GET", "/v1/savepoints/1?wait_ms=soon", NULL, &st, &resp) == 0);
    TM_CHECK_INT(st, 400);
    /* Above the documented maximum is refused, not shortened (schemas/admin/openapi.yaml). */
    TM_CHECK(req(&s, NULL, "GET", "/v1/savepoints/1?wait_ms=30001", NULL, &st, &resp) == 0);
    TM_CHECK_INT(st, 400);

    /* Stop with a savepoint returns its id; without one, {}. */
    TM_CHECK(req(&s, NULL, "POST", "/v1/stop", "{\"savepoint\":true,\"dir\":\"/tmp/s\"}", &st,
                 &resp) == 0);
    TM_CHECK_INT(st, 202);
    TM_CHECK_INT(json_int(&resp, "id"), 4);
    TM_CHECK_INT(atomic_load(&s.fake.stop_calls), 0);
    TM_CHECK(req(&s, NULL, "POST", "/v1/stop", NULL, &st, &resp) == 0);
    TM_CHECK_INT(st, 202);
    TM_CHECK_STR(resp.data, "{}\n");
    TM_CHECK_INT(atomic_load(&s.fake.stop_calls), 1);
    tm_buf_release(&resp);
    server_stop(&s);
    TM_CHECK(s.fake.sp_stop);
}

static void test_http_errors(void)
{
    server_t s;
    TM_REQUIRE(server_start(&s, NULL, NULL, NULL, false) == 0);
    tm_buf_t resp;
    tm_buf_init(&resp);
    int st = 0;
    char v[256];
    static const struct {
        const char *method, *path, *body;
        int status;
        const char *error; /* a substring of {"error": ...}, or NULL */
    } cases[] = {
        {"GET", "/nope", NULL, 404, "no such endpoint"},
        {"GET", "/", NULL, 404, NULL},
        {"GET", "/v1/savepoints/", NULL, 404, NULL},
        {"GET", "/healthz/", NULL, 404, NULL},
        {"GET", "/v1/stop", NULL, 405, "use POST"},
        {"GET", "/v1/savepoints", NULL, 405, "use POST"},
        {"POST", "/healthz", NULL, 405, "use GET, HEAD"},
        {"DELETE", "/v1/savepoints/1", NULL, 405, "DELETE is not allowed"},
        {"PUT", "/metrics", "{}", 405, NULL},
        /* libevent answers these with its own 501 unless they are allowed (schemathesis found it). */
        {"TRACE", "/healthz", NULL, 405, "TRACE is not allowed"},
        {"TRACE", "/v1/job", NULL, 405, NULL},
        {"POST", "/v1/savepoints", "{\"dir\":", 400, "not valid JSON"},
        {"POST", "/v1/savepoints", "[1]", 400, "must be a JSON object"},
        {"POST", "/v1/savepoints", "{\"directory\":\"/x\"}", 400, "unknown field \"directory\""},
        {"POST", "/v1/savepoints", "{\"dir\":7}", 400, "non-empty string"},
        {"POST", "/v1/savepoints", "{\"dir\":\"\"}", 400, "non-empty string"},
        {"POST", "/v1/savepoints", "{\"dir\":\"/a\",\"dir\":\"/b\"}", 400, "duplicate"},
        {"POST", "/v1/stop", "{\"dir\":\"/x\"}", 400, "needs \"savepoint\": true"},
        {"POST", "/v1/stop", "{\"savepoint\":\"yes\"}", 400, "true or false"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TM_CHECK(req(&s, NULL, cases[i].method, cases[i].path, cases[i].body, &st, &resp) == 0);
        if (st != cases[i].status)
            fprintf(stderr, "case %zu: %s %s -> %d %s\n", i, cases[i].method, cases[i].path, st,
                    resp.data);
        TM_CHECK_INT(st, cases[i].status);
        if (cases[i].error != NULL)
            TM_CHECK(json_str(&resp, "error", v, sizeof(v)) != NULL &&
                     strstr(v, cases[i].error) != NULL);
    }
    /* Nothing above reached the hooks. */
    TM_CHECK_INT(atomic_load(&s.fake.stop_calls), 0);

    TM_CHECK(raw_http(&s, "GET /v1/stop HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                      &resp) == 0);
    TM_CHECK(strstr(resp.data, "Allow: POST\r\n") != NULL);
    TM_CHECK(strstr(resp.data, "Content-Type: application/json") != NULL);

    /* A body over the limit is refused without reaching a handler. */
    size_t big = TM_ADMIN_MAX_BODY + 1024;
    char *text = malloc(big + 200);
    TM_REQUIRE(text != NULL);
    int n = snprintf(text, 200,
                     "POST /v1/savepoints HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     big);
    memset(text + n, ' ', big);
    text[n + (int)big] = '\0';
    TM_CHECK(raw_http(&s, text, &resp) == 0);
    TM_CHECK(strncmp(resp.data, "HTTP/1.1 413", 12) == 0);
    free(text);
    server_stop(&s);
    TM_CHECK_INT(s.fake.next_id, 0);
    tm_buf_release(&resp);
}

static void test_null_hooks_501(void)
{
    server_t s;
    tm_admin_hooks_t none = {0};
    TM_REQUIRE(server_start(&s, NULL, &none, NULL, false) == 0);
    tm_buf_t resp;
    tm_buf_init(&resp);
    int st = 0;
    TM_CHECK(req(&s, NULL, "GET", "/healthz", NULL, &st, &resp) == 0);
    TM_CHECK_INT(st, 200);
    const char *gets[] = {"/readyz", "/metrics", "/v1/job", "/v1/checkpoints", "/v1/savepoints/1"};
    for (size_t i = 0; i < sizeof(gets) / sizeof(gets[0]); i++) {
        TM_CHECK(req(&s, NULL, "GET", gets[i], NULL, &st, &resp) == 0);
        TM_CHECK_INT(st, 501);
    }
    TM_CHECK(req(&s, NULL, "POST", "/v1/savepoints", NULL, &st, &resp) == 0);
    TM_CHECK_INT(st, 501);
    TM_CHECK(req(&s, NULL, "POST", "/v1/stop", NULL, &st, &resp) == 0);
    TM_CHECK_INT(st, 501);
    TM_CHECK(req(&s, NULL, "POST", "/v1/stop", "{\"savepoint\":true}", &st, &resp) == 0);
    TM_CHECK_INT(st, 501);
    tm_buf_release(&resp);
    server_stop(&s);
}

/* POST/GET /v1/snapshots and the control paths (incremental snapshots, pg_incr.h). */
static void test_snapshot_routes(void)
{
    server_t s;
    TM_REQUIRE(server_start(&s, NULL, NULL, NULL, false) == 0);
    tm_buf_t resp;
    tm_buf_init(&resp);
    int st = 0;
    TM_CHECK(req(&s, NULL, "POST", "/v1/snapshots",
                 "{\"tables\":[\"public.orders\",\"public.items\"],\"where\":\"id > 3\"}", &st,
                 &resp) == 0);
    TM_CHECK_INT(st, 202);
    TM_CHECK(strstr(resp.data, "\"id\":42") != NULL);
    TM_CHECK_STR(snap_seen, "public.orders,public.items,where=id > 3 source=-");
    TM_CHECK(req(&s, NULL, "POST", "/v1/snapshots",
                 "{\"tables\":[\"public.missing\"],\"source\":\"shop\"}", &st, &resp) == 0);
    TM_CHECK_INT(st, 404);
    TM_CHECK(strstr(resp.data, "public.missing") != NULL);
    TM_CHECK_STR(snap_seen, "public.missing,where=- source=shop");
    TM_CHECK(req(&s, NULL, "POST", "/v1/snapshots", "{\"tables\":[\"t\"],\"where\":\"bad\"}",
                 &st, &resp) == 0);
    TM_CHECK_INT(st, 400);
    const char *bad[] = {"", "{}", "{\"tables\":[]}", "{\"tables\":\"public.orders\"}",
                         "{\"tables\":[1]}", "{\"tables\":[\"t\"],\"where\":3}",
                         "{\"tables\":[\"t\"],\"where\":\"\"}", "{\"tables\":[\"t\"],\"x\":1}",
                         "[1]"};
    snap_seen[0] = '\0';
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        TM_CHECK(req(&s, NULL, "POST", "/v1/snapshots", bad[i], &st, &resp) == 0);
        TM_CHECK_INT(st, 400);
    }
    TM_CHECK_STR(snap_seen, ""); /* none of them reached the hook */
    TM_CHECK(req(&s, NULL, "GET", "/v1/snapshots", NULL, &st, &resp) == 0);
    TM_CHECK_INT(st, 200);
    TM_CHECK(strstr(resp.data, "\"state\":\"running\"") != NULL);
    const char *ops[] = {"pause", "resume", "cancel"};
    for (size_t i = 0; i < 3; i++) {
        char path[64], want[64];
        snprintf(path, sizeof(path), "/v1/snapshots/%s", ops[i]);
        TM_CHECK(req(&s, NULL, "POST", path, NULL, &st, &resp) == 0);
        TM_CHECK_INT(st, 202);
        TM_CHECK(strstr(resp.data, "\"sources\":1") != NULL);
        snprintf(want, sizeof(want), "%s source=-", ops[i]);
        TM_CHECK_STR(snap_seen, want);
    }
    TM_CHECK(req(&s, NULL, "POST", "/v1/snapshots/pause", "{\"source\":\"nope\"}", &st, &resp) ==
             0);
    TM_CHECK_INT(st, 404);
    TM_CHECK(req(&s, NULL, "POST", "/v1/snapshots/explode", NULL, &st, &resp) == 0);
    TM_CHECK_INT(st, 404);
    TM_CHECK(req(&s, NULL, "GET", "/v1/snapshots/pause", NULL, &st, &resp) == 0);
    TM_CHECK_INT(st, 405);
    server_stop(&s);

    tm_admin_hooks_t none = {0};
    TM_REQUIRE(server_start(&s, NULL, &none, NULL, false) == 0);
    TM_CHECK(req(&s, NULL, "GET", "/v1/snapshots", NULL, &st, &resp) == 0);
    TM_CHECK_INT(st, 501);
    TM_CHECK(req(&s, NULL, "POST", "/v1/snapshots", "{\"tables\":[\"t\"]}", &st, &resp) == 0);
    TM_CHECK_INT(st, 501);
    TM_CHECK(req(&s, NULL, "POST", "/v1/snapshots/cancel", NULL, &st, &resp) == 0);
    TM_CHECK_INT(st, 501);
    tm_buf_release(&resp);
    server_stop(&s);
}

static void test_config_errors(void)
{
    struct event_base *base = event_base_new();
    fake_t f;
    memset(&f, 0, sizeof(f));
    tm_admin_t *a = NULL;
    char err[512];
    /* DESIGN §9: binding elsewhere than loopback requires admin_token. */
    TM_CHECK_INT(tm_admin_start(base, "0.0.0.0:0", NULL, full_hooks(&f), NULL, &a, err,
                                sizeof(err)),
                 TM_ECONFIG);
    TM_CHECK(a == NULL);
    TM_CHECK(strstr(err, "admin_token") != NULL && strstr(err, "0.0.0.0:0") != NULL);
    TM_CHECK_INT(tm_admin_start(base, "[::]:0", "", full_hooks(&f), NULL, &a, err, sizeof(err)),
                 TM_ECONFIG);
    TM_CHECK(strstr(err, "admin_token") != NULL);
    /* A token that cannot travel in a header, never echoed in the message. */
    TM_CHECK_INT(tm_admin_start(base, "127.0.0.1:0", "sec ret", full_hooks(&f), NULL, &a, err,
                                sizeof(err)),
                 TM_ECONFIG);
    TM_CHECK(strstr(err, "sec ret") == NULL);
    const char *bad[] = {"8081", "127.0.0.1", "127.0.0.1:", "127.0.0.1:x", "127.0.0.1:70000",
                         "example.com:8081", "::1:8081", "[::1]8081", "[127.0.0.1]:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        TM_CHECK_INT(tm_admin_start(base, bad[i], NULL, full_hooks(&f), NULL, &a, err,
                                    sizeof(err)),
                     TM_ECONFIG);
        TM_CHECK(strstr(err, "is not HOST:PORT") != NULL);
    }
    /* localhost and [::1] are loopback (IPv6 may be missing in a container). */
    TM_CHECK(tm_admin_start(base, "localhost:0", NULL, full_hooks(&f), NULL, &a, err,
                            sizeof(err)) == 0);
    TM_CHECK(a != NULL && strncmp(tm_admin_address(a), "127.0.0.1:", 10) == 0);
    a = tm_admin_free(a);
    if (tm_admin_start(base, "[::1]:0", NULL, full_hooks(&f), NULL, &a, err, sizeof(err)) == 0) {
        TM_CHECK(strncmp(tm_admin_address(a), "[::1]:", 6) == 0);
        a = tm_admin_free(a);
    } else {
        TM_CHECK(strstr(err, "cannot listen") != NULL);
    }

    /* A port in use is a configuration error that says so. */
    tm_admin_t *first = NULL;
    TM_REQUIRE(tm_admin_start(base, "127.0.0.1:0", NULL, full_hooks(&f), NULL, &first, err,
                              sizeof(err)) == 0);
    TM_CHECK_INT(tm_admin_start(base, tm_admin_address(first), NULL, full_hooks(&f), NULL, &a,
                                err, sizeof(err)),
                 TM_ECONFIG);
    TM_CHECK(strstr(err, "in use") != NULL);
    tm_admin_free(first);

    /* A wildcard bind with a token is allowed; the address file names loopback. */
    char dir[PATH_MAX], file[PATH_MAX + 32], text[64] = "";
    make_dir(dir, sizeof(dir), "wild");
    snprintf(file, sizeof(file), "%s/%s", dir, TM_ADMIN_ADDR_FILE);
    TM_CHECK(tm_admin_start(base, "0.0.0.0:0", "t0ken", full_hooks(&f), file, &a, err,
                            sizeof(err)) == 0);
    if (a != NULL) {
        FILE *fp = fopen(file, "r");
        TM_CHECK(fp != NULL && fgets(text, sizeof(text), fp) != NULL);
        if (fp)
            fclose(fp);
        char want[80];
        snprintf(want, sizeof(want), "127.0.0.1:%s\n", strrchr(tm_admin_address(a), ':') + 1);
        TM_CHECK_STR(text, want);
        TM_CHECK(strncmp(tm_admin_address(a), "0.0.0.0:", 8) == 0);
        a = tm_admin_free(a);
    }
    TM_CHECK(access(file, F_OK) != 0);

    /* An address file that cannot be written fails the start. */
    TM_CHECK_INT(tm_admin_start(base, "127.0.0.1:0", NULL, full_hooks(&f), "/nonexistent/x/a",
                                &a, err, sizeof(err)),
                 TM_EIO);
    TM_CHECK(strstr(err, "/nonexistent/x/a") != NULL);
    TM_CHECK(tm_admin_free(NULL) == NULL);
    event_base_free(base);
}

static void test_bearer_token(void)
{
    server_t s;
    TM_REQUIRE(server_start(&s, "s3cret-T0ken", NULL, NULL, false) == 0);
    tm_buf_t resp, out, err;
    tm_buf_init(&resp);
    tm_buf_init(&out);
    tm_buf_init(&err);
    int st = 0;
    const char *wrong[] = {NULL, "", "s3cret-T0ke", "s3cret-T0ken2", "S3cret-T0ken", "x"};
    for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
        TM_CHECK(req(&s, wrong[i], "GET", "/healthz", NULL, &st, &resp) == 0);
        TM_CHECK_INT(st, 401);
        TM_CHECK(req(&s, wrong[i], "POST", "/v1/stop", NULL, &st, &resp) == 0);
        TM_CHECK_INT(st, 401);
    }
    /* Without the token even unknown paths say 401, not 404. */
    TM_CHECK(req(&s, NULL, "GET", "/nope", NULL, &st, &resp) == 0);
    TM_CHECK_INT(st, 401);
    TM_CHECK(raw_http(&s, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                          "Authorization: Basic czNjcmV0\r\n\r\n",
                      &resp) == 0);
    TM_CHECK(strncmp(resp.data, "HTTP/1.1 401", 12) == 0);
    TM_CHECK(strstr(resp.data, "WWW-Authenticate: Bearer") != NULL);
    TM_CHECK(strstr(resp.data, "s3cret") == NULL);
    /* The scheme is case-insensitive (RFC 7235). */
    TM_CHECK(raw_http(&s, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                          "Authorization: bearer s3cret-T0ken\r\n\r\n",
                      &resp) == 0);
    TM_CHECK(strncmp(resp.data, "HTTP/1.1 200", 12) == 0);
    TM_CHECK(req(&s, "s3cret-T0ken", "GET", "/healthz", NULL, &st, &resp) == 0);
    TM_CHECK_INT(st, 200);
    TM_CHECK_INT(atomic_load(&s.fake.stop_calls), 0);

    /* The CLI: --token, TIDEMARK_ADMIN_TOKEN, and a clear message without one. */
    char *argv1[] = {"savepoint", "--admin", s.addr, NULL};
    TM_CHECK_INT(capture(tm_admin_cli_savepoint, argv1, &out, &err), 1);
    TM_CHECK(strstr(err.data, "refused the token (401)") != NULL);
    char *argv2[] = {"savepoint", "--admin", s.addr, "--token", "s3cret-T0ken", NULL};
    TM_CHECK_INT(capture(tm_admin_cli_savepoint, argv2, &out, &err), 0);
    TM_CHECK_STR(out.data, "/default/savepoint-1\n");
    setenv("TIDEMARK_ADMIN_TOKEN", "s3cret-T0ken", 1);
    TM_CHECK_INT(capture(tm_admin_cli_savepoint, argv1, &out, &err), 0);
    TM_CHECK_STR(out.data, "/default/savepoint-2\n");
    unsetenv("TIDEMARK_ADMIN_TOKEN");
    tm_buf_release(&resp);
    tm_buf_release(&out);
    tm_buf_release(&err);
    server_stop(&s);
}

static void test_addr_file(void)
{
    char dir[PATH_MAX], file[PATH_MAX + 32], text[64] = "";
    make_dir(dir, sizeof(dir), "state-addr");
    snprintf(file, sizeof(file), "%s/%s", dir, TM_ADMIN_ADDR_FILE);
    server_t s;
    TM_REQUIRE(server_start(&s, NULL, NULL, file, false) == 0);
    FILE *fp = fopen(file, "r");
    TM_CHECK(fp != NULL && fgets(text, sizeof(text), fp) != NULL);
    if (fp)
        fclose(fp);
    char want[80];
    snprintf(want, sizeof(want), "%s\n", s.addr);
    TM_CHECK_STR(text, want);
    TM_CHECK(access(file, F_OK) == 0);
    char tmpname[PATH_MAX + 40];
    snprintf(tmpname, sizeof(tmpname), "%s.tmp", file);
    TM_CHECK(access(tmpname, F_OK) != 0);
    server_stop(&s);
    TM_CHECK(access(file, F_OK) != 0);

    /* A file that another daemon has rewritten since is left alone. */
    TM_REQUIRE(server_start(&s, NULL, NULL, file, false) == 0);
    fp = fopen(file, "w");
    fputs("127.0.0.1:1\n", fp);
    fclose(fp);
    server_stop(&s);
    TM_CHECK(access(file, F_OK) == 0);
    unlink(file);
}

static void test_cli_savepoint(void)
{
    char state[PATH_MAX], file[PATH_MAX + 32];
    make_dir(state, sizeof(state), "state-cli");
    snprintf(file, sizeof(file), "%s/%s", state, TM_ADMIN_ADDR_FILE);
    server_t s;
    TM_REQUIRE(server_start(&s, NULL, NULL, file, false) == 0);
    tm_buf_t out, err;
    tm_buf_init(&out);
    tm_buf_init(&err);

    char *a1[] = {"savepoint", "--admin", s.addr, "--dir", "/tmp/sp", NULL};
    int64_t t0 = tm_mono_ms();
    TM_CHECK_INT(capture(tm_admin_cli_savepoint, a1, &out, &err), 0);
    TM_CHECK_STR(out.data, "/tmp/sp/savepoint-1\n");
    TM_CHECK(tm_mono_ms() - t0 >= SAVEPOINT_MS - 20);

    /*
     * Through the state directory's address file; a relative --dir goes as
     * is, for the daemon to resolve below its savepoint root.
     */
    char *a2[] = {"savepoint", "--state-dir", state, "--dir", "./rel", "--timeout", "30s", NULL};
    TM_CHECK_INT(capture(tm_admin_cli_savepoint, a2, &out, &err), 0);
    TM_CHECK_STR(out.data, "rel/savepoint-2\n");

    /* The daemon's failure, on stderr, exit 1. */
    char *a3[] = {"savepoint", "--admin", s.addr, "--dir", "/tmp/fail", NULL};
    TM_CHECK_INT(capture(tm_admin_cli_savepoint, a3, &out, &err), 1);
    TM_CHECK_STR(out.data, "");
    TM_CHECK(strstr(err.data, "savepoint 3 failed: disk full") != NULL);
    char *a4[] = {"savepoint", "--admin", s.addr, "--dir", "/bad", NULL};
    TM_CHECK_INT(capture(tm_admin_cli_savepoint, a4, &out, &err), 1);
    TM_CHECK(strstr(err.data, "savepoint dir /bad is not writable (HTTP 400") != NULL);

    /* A timeout shorter than the savepoint. */
    char *a5[] = {"savepoint", "--admin", s.addr, "--timeout", "100ms", NULL};
    TM_CHECK_INT(capture(tm_admin_cli_savepoint, a5, &out, &err), 1);
    TM_CHECK(strstr(err.data, "did not complete within the --timeout") != NULL);
    server_stop(&s);

    /* No daemon. */
    char *a6[] = {"savepoint", "--state-dir", state, NULL};
    TM_CHECK_INT(capture(tm_admin_cli_savepoint, a6, &out, &err), 1);
    TM_CHECK(strstr(err.data, "is tidemark running") != NULL);
    TM_CHECK(strstr(err.data, "pass --state-dir or --admin") != NULL);
    char *a7[] = {"savepoint", "--admin", s.addr, NULL};
    TM_CHECK_INT(capture(tm_admin_cli_savepoint, a7, &out, &err), 1);
    TM_CHECK(strstr(err.data, "daemon not running at ") != NULL);
    TM_CHECK(strstr(err.data, "is tidemark running? pass --state-dir or --admin") != NULL);

    /* Usage errors exit 2. */
    char *u1[] = {"savepoint", "--bogus", NULL};
    char *u2[] = {"savepoint", "--timeout", "soon", NULL};
    char *u3[] = {"savepoint", "--admin", "x:1", "--state-dir", state, NULL};
    char *u4[] = {"savepoint", "extra", NULL};
    char *u5[] = {"savepoint", "--savepoint", NULL};
    char *u7[] = {"savepoint", "--admin", "bogus", NULL};
    char **usage_cases[] = {u1, u2, u3, u4, u5, u7};
    for (size_t i = 0; i < sizeof(usage_cases) / sizeof(usage_cases[0]); i++) {
        TM_CHECK_INT(capture(tm_admin_cli_savepoint, usage_cases[i], &out, &err), 2);
        TM_CHECK(strstr(err.data, "Usage: tidemark savepoint") != NULL ||
                 strstr(err.data, "--timeout") != NULL || strstr(err.data, "--admin") != NULL);
    }
    char *h[] = {"savepoint", "--help", NULL};
    TM_CHECK_INT(capture(tm_admin_cli_savepoint, h, &out, &err), 0);
    TM_CHECK(strstr(out.data, "Usage: tidemark savepoint") != NULL);
    char *u6[] = {"stop", "--dir", "/x", NULL};
    TM_CHECK_INT(capture(tm_admin_cli_stop, u6, &out, &err), 2);
    TM_CHECK(strstr(err.data, "--dir needs --savepoint") != NULL);
    tm_buf_release(&out);
    tm_buf_release(&err);
}

static void test_cli_stop(void)
{
    char state[PATH_MAX], file[PATH_MAX + 32];
    make_dir(state, sizeof(state), "state-stop");
    snprintf(file, sizeof(file), "%s/%s", state, TM_ADMIN_ADDR_FILE);
    server_t s;
    TM_REQUIRE(server_start(&s, NULL, NULL, file, true) == 0);
    tm_buf_t out, err;
    tm_buf_init(&out);
    tm_buf_init(&err);
    char *a1[] = {"stop", "--state-dir", state, "--timeout", "20s", NULL};
    TM_CHECK_INT(capture(tm_admin_cli_stop, a1, &out, &err), 0);
    TM_CHECK_STR(out.data, "");
    TM_CHECK(atomic_load(&s.exited));
    TM_CHECK_INT(atomic_load(&s.fake.stop_calls), 1);
    TM_CHECK(access(file, F_OK) != 0);
    server_stop(&s);

    /*
     * Stop with a savepoint: the fake daemon exits in the same loop turn in
     * which the savepoint completes, so the path reaches the client only
     * through the held long poll that tm_admin_free() answers.
     */
    TM_REQUIRE(server_start(&s, NULL, NULL, file, true) == 0);
    char *a2[] = {"stop", "--savepoint", "--dir", "/tmp/final", "--admin", s.addr, NULL};
    TM_CHECK_INT(capture(tm_admin_cli_stop, a2, &out, &err), 0);
    TM_CHECK_STR(out.data, "/tmp/final/savepoint-1\n");
    if (out.len == 0)
        fprintf(stderr, "stop --savepoint stderr: %s\n", err.data);
    TM_CHECK(atomic_load(&s.exited));
    TM_CHECK_INT(atomic_load(&s.fake.stop_calls), 0);
    TM_CHECK(access(file, F_OK) != 0);
    server_stop(&s);

    /* A stop-savepoint that fails leaves the daemon running; the CLI says why. */
    TM_REQUIRE(server_start(&s, NULL, NULL, file, false) == 0);
    char *a3[] = {"stop", "--savepoint", "--dir", "/tmp/fail", "--state-dir", state, NULL};
    TM_CHECK_INT(capture(tm_admin_cli_stop, a3, &out, &err), 1);
    TM_CHECK(strstr(err.data, "savepoint 1 failed: disk full") != NULL);
    TM_CHECK(!atomic_load(&s.exited));
    server_stop(&s);

    /* A daemon that does not exit within the timeout. */
    TM_REQUIRE(server_start(&s, NULL, NULL, file, false) == 0);
    char *a4[] = {"stop", "--admin", s.addr, "--timeout", "500ms", NULL};
    TM_CHECK_INT(capture(tm_admin_cli_stop, a4, &out, &err), 1);
    TM_CHECK(strstr(err.data, "still running at the --timeout") != NULL);
    TM_CHECK_INT(atomic_load(&s.fake.stop_calls), 1);
    server_stop(&s);
    tm_buf_release(&out);
    tm_buf_release(&err);
}

static void test_client_errors(void)
{
    tm_buf_t resp;
    tm_buf_init(&resp);
    int st = 0;
    char err[512];
    TM_CHECK_INT(tm_admin_request("nonsense", NULL, "GET", "/healthz", NULL, 1000, &st, &resp,
                                  err, sizeof(err)),
                 TM_EINVAL);
    TM_CHECK(strstr(err, "not HOST:PORT") != NULL);
    TM_CHECK_INT(tm_admin_request("127.0.0.1:1", "a\r\nX-Evil: 1", "GET", "/healthz", NULL, 1000,
                                  &st, &resp, err, sizeof(err)),
                 TM_EINVAL);

    /* A listener that accepts and never answers: a timeout, not a hang. */
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sin);
    TM_REQUIRE(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == 0 && listen(lfd, 4) == 0);
    getsockname(lfd, (struct sockaddr *)&sin, &len);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)ntohs(sin.sin_port));
    int64_t t0 = tm_mono_ms();
    TM_CHECK_INT(tm_admin_request(addr, NULL, "GET", "/healthz", NULL, 200, &st, &resp, err,
                                  sizeof(err)),
                 TM_EAGAIN);
    int64_t took = tm_mono_ms() - t0;
    TM_CHECK(took >= 150 && took < 10000);
    close(lfd);
    /* Nothing listens there now. */
    TM_CHECK_INT(tm_admin_request(addr, NULL, "GET", "/healthz", NULL, 1000, &st, &resp, err,
                                  sizeof(err)),
                 TM_ECONN);
    TM_CHECK(strstr(err, "refused") != NULL);
    tm_buf_release(&resp);
}

/* Opens a TCP connection to the server and leaves it idle.  Returns the fd or -1. */
static int idle_connect(const server_t *s)
{
    int port = atoi(strrchr(s->addr, ':') + 1);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* The status code of a raw exchange, or -1. */
static int raw_status(const server_t *s, const char *text, tm_buf_t *out)
{
    if (raw_http(s, text, out) != 0 || out->len < 12 || strncmp(out->data, "HTTP/1.", 7) != 0)
        return -1;
    return atoi(out->data + 9);
}

/* Issue 9, items 2 and 6: what a web page or a confused proxy could send. */
static void test_browser_and_framing_checks(void)
{
    server_t s;
    TM_REQUIRE(server_start(&s, NULL, NULL, NULL, false) == 0);
    tm_buf_t resp;
    tm_buf_init(&resp);
    char text[1024];
    const char *port = strrchr(s.addr, ':') + 1;

    /* A cross-origin form post: text/plain, with an Origin; neither reaches the hook. */
    TM_CHECK_INT(raw_status(&s,
                            "POST /v1/stop HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                            "Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}",
                            &resp),
                 415);
    TM_CHECK(strstr(resp.data, "Content-Type: application/json") != NULL);
    TM_CHECK_INT(raw_status(&s,
                            "POST /v1/stop HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                            "Content-Length: 0\r\n\r\n",
                            &resp),
                 415);
    TM_CHECK_INT(raw_status(&s,
                            "POST /v1/stop HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                            "Origin: https://evil.example\r\nContent-Type: application/json\r\n"
                            "Content-Length: 2\r\n\r\n{}",
                            &resp),
                 403);
    TM_CHECK(strstr(resp.data, "cross-origin") != NULL);
    TM_CHECK_INT(raw_status(&s,
                            "POST /v1/savepoints HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "Connection: close\r\nOrigin: null\r\n"
                            "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
                            &resp),
                 403);
    TM_CHECK_INT(atomic_load(&s.fake.stop_calls), 0);
    TM_CHECK_INT(s.fake.next_id, 0);

    /* DNS rebinding: a foreign Host is refused, reads included; ours is served. */
    static const struct {
        const char *host;
        bool our_port; /* append ":<the server's port>" */
        int status;
    } hosts[] = {
        {"rebind.evil.example", false, 403}, {"rebind.evil.example", true, 403},
        {"127.0.0.2", true, 403},            {"127.0.0.1:1", false, 403},
        {"localhost.evil", true, 403},       {"[::1]", true, 403},
        {"127.0.0.1", false, 200},           {"127.0.0.1", true, 200},
        {"localhost", true, 200},            {"LOCALHOST", false, 200},
    };
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        char host[128];
        snprintf(host, sizeof(host), "%s%s%s", hosts[i].host, hosts[i].our_port ? ":" : "",
                 hosts[i].our_port ? port : "");
        snprintf(text, sizeof(text),
                 "GET /v1/job HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host);
        int st = raw_status(&s, text, &resp);
        if (st != hosts[i].status)
            fprintf(stderr, "Host: %s -> %d\n", host, st);
        TM_CHECK_INT(st, hosts[i].status);
    }
    /* No Host at all (HTTP/1.0) is no browser's. */
    TM_CHECK_INT(raw_status(&s, "GET /healthz HTTP/1.0\r\n\r\n", &resp), 200);

    /* Two different Content-Length headers, or Content-Length with chunking: 400, closed. */
    TM_CHECK_INT(raw_status(&s,
                            "POST /v1/stop HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "Content-Type: application/json\r\nContent-Length: 2\r\n"
                            "Content-Length: 40\r\n\r\n{}",
                            &resp),
                 400);
    TM_CHECK(strstr(resp.data, "two different Content-Length") != NULL);
    TM_CHECK(strstr(resp.data, "Connection: close") != NULL);
    TM_CHECK_INT(raw_status(&s,
                            "POST /v1/stop HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "Content-Type: application/json\r\nContent-Length: 2\r\n"
                            "Content-Length: 2\r\nConnection: close\r\n\r\n{}",
                            &resp),
                 202);
    TM_CHECK_INT(atomic_load(&s.fake.stop_calls), 1);
    server_stop(&s);
    tm_buf_release(&resp);
}

/* Issue 9, item 1: idle connections cannot take more than their share. */
static void test_connection_bound(void)
{
    server_t s;
    TM_REQUIRE(server_start(&s, NULL, NULL, NULL, false) == 0);
    tm_buf_t resp;
    tm_buf_init(&resp);
    int fds[TM_ADMIN_MAX_CONNS + 16];
    int n = 0;
    for (; n < (int)(sizeof(fds) / sizeof(fds[0])); n++)
        if ((fds[n] = idle_connect(&s)) < 0)
            break;
    TM_CHECK_INT(n, (int)(sizeof(fds) / sizeof(fds[0]))); /* the rest wait in the backlog */
    usleep(300 * 1000);
    /* The server holds no more than its maximum: it stopped accepting. */
    int st = 0;
    char err[256];
    TM_CHECK(tm_admin_request(s.addr, NULL, "GET", "/healthz", NULL, 500, &st, &resp, err,
                              sizeof(err)) == TM_EAGAIN);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    /* Once the idle clients are gone, the API answers again. */
    int64_t t0 = tm_mono_ms();
    int rc;
    do {
        rc = tm_admin_request(s.addr, NULL, "GET", "/healthz", NULL, 2000, &st, &resp, err,
                              sizeof(err));
    } while (rc != 0 && tm_mono_ms() - t0 < 5000);
    TM_CHECK_INT(rc, 0);
    TM_CHECK_INT(st, 200);

    /* An idle connection is closed after the idle timeout. */
    int fd = idle_connect(&s);
    TM_REQUIRE(fd >= 0);
    struct timeval tv = {TM_ADMIN_IDLE_TIMEOUT_S + 5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char c;
    t0 = tm_mono_ms();
    TM_CHECK(recv(fd, &c, 1, 0) == 0);
    int64_t took = tm_mono_ms() - t0;
    TM_CHECK(took >= (TM_ADMIN_IDLE_TIMEOUT_S - 1) * 1000 &&
             took < (TM_ADMIN_IDLE_TIMEOUT_S + 3) * 1000);
    close(fd);
    server_stop(&s);
    tm_buf_release(&resp);
}

/* Issue 9, item 1: a connection that would eat into the descriptor reserve is closed. */
static void test_fd_reserve(void)
{
    server_t s;
    TM_REQUIRE(server_start(&s, NULL, NULL, NULL, false) == 0);
    tm_buf_t resp;
    tm_buf_init(&resp);
    struct rlimit old;
    TM_REQUIRE(getrlimit(RLIMIT_NOFILE, &old) == 0);
    int probe = dup(0);
    close(probe);
    /* Leave the reserve minus a few descriptors free: every admin connection is refused. */
    struct rlimit tight = old;
    tight.rlim_cur = (rlim_t)probe + TM_ADMIN_FD_RESERVE - 8;
    TM_REQUIRE(setrlimit(RLIMIT_NOFILE, &tight) == 0);
    int st = raw_status(&s, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &resp);
    TM_CHECK_INT(st, -1); /* closed without an answer */
    TM_REQUIRE(setrlimit(RLIMIT_NOFILE, &old) == 0);
    /* With room again (after the back-off), it answers. */
    int64_t t0 = tm_mono_ms();
    do {
        usleep(50 * 1000);
        st = raw_status(&s, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                        &resp);
    } while (st != 200 && tm_mono_ms() - t0 < 5000);
    TM_CHECK_INT(st, 200);
    server_stop(&s);
    tm_buf_release(&resp);
}

/* Issue 9, item 3: savepoint directories stay below the root. */
static void test_savepoint_dir(void)
{
    char root[512], outside[512], link[600], err[512];
    make_dir(root, sizeof(root), "sproot");
    make_dir(outside, sizeof(outside), "outside");
    snprintf(link, sizeof(link), "%s/escape", root);
    TM_REQUIRE(symlink(outside, link) == 0 || errno == EEXIST);
    char *canon = realpath(root, NULL);
    TM_REQUIRE(canon != NULL);
    char *out = NULL;
    char want[700];

    TM_CHECK_INT(tm_admin_savepoint_dir(root, NULL, &out, err, sizeof(err)), 0);
    TM_CHECK_STR(out, canon);
    free(out);
    TM_CHECK_INT(tm_admin_savepoint_dir(root, "nightly/2026", &out, err, sizeof(err)), 0);
    snprintf(want, sizeof(want), "%s/nightly/2026", canon);
    TM_CHECK_STR(out, want);
    free(out);
    snprintf(want, sizeof(want), "%s/abs/", canon);
    TM_CHECK_INT(tm_admin_savepoint_dir(root, want, &out, err, sizeof(err)), 0);
    want[strlen(want) - 1] = '\0';
    TM_CHECK_STR(out, want);
    free(out);

    static const char *const refused[] = {"/etc/tidemark", "../x", "a/../../x", "./a",
                                          "escape",        "escape/deeper/x", "/"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        out = NULL;
        int rc = tm_admin_savepoint_dir(root, refused[i], &out, err, sizeof(err));
        if (rc != TM_EINVAL)
            fprintf(stderr, "dir %s -> %d %s\n", refused[i], rc, out ? out : err);
        TM_CHECK_INT(rc, TM_EINVAL);
        TM_CHECK(out == NULL);
        TM_CHECK(strstr(err, canon) != NULL); /* the message names the root */
    }
    /* An absolute path through the symlink is refused as well. */
    snprintf(want, sizeof(want), "%s/escape/x", canon);
    TM_CHECK_INT(tm_admin_savepoint_dir(root, want, &out, err, sizeof(err)), TM_EINVAL);
    /* A root that does not exist yet is created. */
    char fresh[600];
    snprintf(fresh, sizeof(fresh), "%s/new/root", tmp_root);
    TM_CHECK_INT(tm_admin_savepoint_dir(fresh, "x", &out, err, sizeof(err)), 0);
    free(out);
    free(canon);
}

/* ---- TLS ---- */

static char tls_dir[PATH_MAX];

/* Runs a shell command quietly; true when it exits 0. */
static bool sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    char full[4200];
    snprintf(full, sizeof(full), "(%s) >/dev/null 2>&1", cmd);
    return system(full) == 0;
}

static char *tls_file(const char *name)
{
    static _Thread_local char buf[16][PATH_MAX + 64];
    static _Thread_local int next;
    char *p = buf[next++ % 16];
    snprintf(p, PATH_MAX + 64, "%s/%s", tls_dir, name);
    return p;
}

/*
 * Makes, with the openssl command: a CA, a server certificate it signs for
 * localhost and 127.0.0.1, a client certificate it signs, a self-signed
 * certificate for "other.example" only, a second key, and an encrypted key.
 */
static bool make_certs(void)
{
    snprintf(tls_dir, sizeof(tls_dir), "%s/tls", tmp_root);
    mkdir(tls_dir, 0700);
    const char *d = tls_dir;
    const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    return sh("cd %s && openssl req -x509 %s -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca",
              d, ec) &&
           sh("cd %s && openssl req %s -keyout server.key -out server.csr -subj /CN=localhost && "
              "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext && "
              "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
              "-days 2 -extfile san.ext -out server.pem",
              d, ec) &&
           sh("cd %s && openssl req %s -keyout client.key -out client.csr -subj /CN=operator && "
              "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
              "-days 2 -out client.pem",
              d, ec) &&
           sh("cd %s && openssl req -x509 %s -keyout other.key -out other.pem -days 2 "
              "-subj /CN=other.example -addext subjectAltName=DNS:other.example",
              d, ec) &&
           sh("cd %s && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
              "-out stray.key && openssl pkey -in stray.key -aes256 -passout pass:pw "
              "-out encrypted.key && printf 'not a certificate\\n' > garbage.pem",
              d);
}

static int tls_req(const server_t *s, const tm_admin_client_tls_t *tls, const char *token,
                   const char *path, int *status, tm_buf_t *resp, char *err, size_t errlen)
{
    err[0] = '\0';
    return tm_admin_request_tls(s->addr, tls, token, "GET", path, NULL, 5000, status, resp, err,
                                errlen);
}

static void test_tls_serves_and_verifies(void)
{
    TM_REQUIRE(make_certs());
    tm_admin_tls_t tls = {tls_file("server.pem"), tls_file("server.key"), NULL};
    char state[PATH_MAX], file[PATH_MAX + 32], text[256] = "";
    make_dir(state, sizeof(state), "state-tls");
    snprintf(file, sizeof(file), "%s/%s", state, TM_ADMIN_ADDR_FILE);
    server_tls = &tls;
    server_t s;
    int rc = server_start(&s, "tls-token", NULL, file, false);
    server_tls = NULL;
    TM_REQUIRE(rc == 0);
    TM_CHECK(strncmp(s.addr, "https://127.0.0.1:", 18) == 0);
    int fd = open(file, O_RDONLY);
    TM_CHECK(fd >= 0 && read(fd, text, sizeof(text) - 1) > 0);
    if (fd >= 0)
        close(fd);
    TM_CHECK(strncmp(text, "https://127.0.0.1:", 18) == 0);

    tm_buf_t resp;
    tm_buf_init(&resp);
    char err[1024];
    int status = 0;
    tm_admin_client_tls_t ca = {tls_file("ca.pem"), NULL, NULL, NULL};
    /* Verified against the CA, by IP address; the token works over TLS. */
    TM_CHECK_INT(tls_req(&s, &ca, "tls-token", "/v1/job", &status, &resp, err, sizeof(err)), 0);
    TM_CHECK_INT(status, 200);
    TM_CHECK(resp.data && strstr(resp.data, "\"running\"") != NULL);
    TM_CHECK_INT(tls_req(&s, &ca, NULL, "/v1/job", &status, &resp, err, sizeof(err)), 0);
    TM_CHECK_INT(status, 401);
    /* By name, localhost being in the certificate too. */
    tm_admin_client_tls_t by_name = {tls_file("ca.pem"), "localhost", NULL, NULL};
    TM_CHECK_INT(tls_req(&s, &by_name, "tls-token", "/healthz", &status, &resp, err, sizeof(err)),
                 0);
    TM_CHECK_INT(status, 200);

    /* Not trusted: the system's store does not hold our CA. */
    rc = tls_req(&s, NULL, "tls-token", "/healthz", &status, &resp, err, sizeof(err));
    TM_CHECK_INT(rc, TM_EPROTO);
    TM_CHECK(strstr(err, "not trusted") != NULL && strstr(err, "--cacert") != NULL);
    /* Trusted, but for another name. */
    tm_admin_client_tls_t wrong_name = {tls_file("ca.pem"), "admin.example", NULL, NULL};
    rc = tls_req(&s, &wrong_name, "tls-token", "/healthz", &status, &resp, err, sizeof(err));
    TM_CHECK_INT(rc, TM_EPROTO);
    TM_CHECK(strstr(err, "not for admin.example") != NULL);
    /* A CA file that is not one. */
    tm_admin_client_tls_t bad_ca = {tls_file("garbage.pem"), NULL, NULL, NULL};
    rc = tls_req(&s, &bad_ca, "tls-token", "/healthz", &status, &resp, err, sizeof(err));
    TM_CHECK_INT(rc, TM_ECONFIG);
    TM_CHECK(strstr(err, "garbage.pem") != NULL);

    /*
     * Plain HTTP to the TLS port is refused: OpenSSL recognises the request,
     * and the answer is a plain 400 naming the https:// address, never the API.
     */
    char plain[128], want[160];
    snprintf(plain, sizeof(plain), "%s", s.addr + 8);
    snprintf(want, sizeof(want), "use %s\"", s.addr);
    rc = tm_admin_request(plain, "tls-token", "GET", "/v1/job", NULL, 5000, &status, &resp, err,
                          sizeof(err));
    TM_CHECK_INT(rc, 0);
    TM_CHECK_INT(status, 400);
    TM_CHECK(resp.data != NULL && strstr(resp.data, want) != NULL);
    TM_CHECK(resp.data != NULL && strstr(resp.data, "running") == NULL);
    tm_buf_t raw;
    tm_buf_init(&raw);
    server_t fake_plain = s;
    memmove(fake_plain.addr, fake_plain.addr + 8, strlen(fake_plain.addr + 8) + 1);
    raw_http(&fake_plain, "POST /v1/stop HTTP/1.1\r\nHost: localhost\r\n\r\n", &raw);
    TM_CHECK(raw.data != NULL && strncmp(raw.data, "HTTP/1.1 400 ", 13) == 0);
    TM_CHECK_INT(atomic_load(&s.fake.stop_calls), 0);
    /* A method OpenSSL does not recognise: the connection is just closed. */
    raw_http(&fake_plain, "DELETE /v1/job HTTP/1.1\r\nHost: localhost\r\n\r\n", &raw);
    TM_CHECK(raw.len == 0 || strstr(raw.data, "HTTP/1.1 2") == NULL);
    tm_buf_release(&raw);

    /* The CLI over TLS: status, and a savepoint whose path comes back through the long poll. */
    tm_buf_t out, cerr;
    tm_buf_init(&out);
    tm_buf_init(&cerr);
    setenv("TIDEMARK_ADMIN_TOKEN", "tls-token", 1);
    char *a1[] = {"status", "--live", "--state-dir", state, "--cacert", tls_file("ca.pem"), NULL};
    TM_CHECK_INT(capture(tm_admin_cli_status, a1, &out, &cerr), 0);
    TM_CHECK_STR(out.data, "ok\n");
    setenv("TIDEMARK_ADMIN_CACERT", tls_file("ca.pem"), 1);
    char *a2[] = {"savepoint", "--dir", "/tmp/tls-sp", "--admin", s.addr, NULL};
    TM_CHECK_INT(capture(tm_admin_cli_savepoint, a2, &out, &cerr), 0);
    TM_CHECK_STR(out.data, "/tmp/tls-sp/savepoint-1\n");
    unsetenv("TIDEMARK_ADMIN_CACERT");
    char *a3[] = {"status", "--live", "--state-dir", state, NULL};
    TM_CHECK_INT(capture(tm_admin_cli_status, a3, &out, &cerr), 1);
    TM_CHECK(strstr(cerr.data, "not trusted") != NULL);
    unsetenv("TIDEMARK_ADMIN_TOKEN");
    server_stop(&s);

    /* A TLS client against a plain server. */
    TM_REQUIRE(server_start(&s, NULL, NULL, NULL, false) == 0);
    char https[128];
    snprintf(https, sizeof(https), "https://%s", s.addr);
    rc = tm_admin_request_tls(https, &ca, NULL, "GET", "/healthz", NULL, 5000, &status, &resp,
                              err, sizeof(err));
    TM_CHECK_INT(rc, TM_EPROTO);
    TM_CHECK(strstr(err, "does not speak TLS") != NULL);
    server_stop(&s);
    tm_buf_release(&out);
    tm_buf_release(&cerr);
    tm_buf_release(&resp);
    unlink(file);
    rmdir(state);
}

/* Stop with a savepoint over TLS: the final answer is written through SSL by tm_admin_free(). */
static void test_tls_stop_flush(void)
{
    tm_admin_tls_t tls = {tls_file("server.pem"), tls_file("server.key"), NULL};
    server_tls = &tls;
    server_t s;
    int rc = server_start(&s, NULL, NULL, NULL, true);
    server_tls = NULL;
    TM_REQUIRE(rc == 0);
    tm_buf_t out, err;
    tm_buf_init(&out);
    tm_buf_init(&err);
    char *a[] = {"stop", "--savepoint", "--dir", "/tmp/final", "--admin", s.addr,
                 "--cacert", tls_file("ca.pem"), NULL};
    TM_CHECK_INT(capture(tm_admin_cli_stop, a, &out, &err), 0);
    TM_CHECK_STR(out.data, "/tmp/final/savepoint-1\n");
    if (out.len == 0)
        fprintf(stderr, "stop --savepoint over TLS: %s\n", err.data);
    TM_CHECK(atomic_load(&s.exited));
    server_stop(&s);
    tm_buf_release(&out);
    tm_buf_release(&err);
}

static void test_tls_mutual(void)
{
    tm_admin_tls_t tls = {tls_file("server.pem"), tls_file("server.key"), tls_file("ca.pem")};
    char err[1024];
    /* Client certificates stand in for a token on a non-loopback address. */
    TM_CHECK_INT(tm_admin_check_tls("0.0.0.0:0", NULL, &tls, err, sizeof(err)), 0);
    tm_admin_tls_t no_ca = {tls_file("server.pem"), tls_file("server.key"), NULL};
    TM_CHECK_INT(tm_admin_check_tls("0.0.0.0:0", NULL, &no_ca, err, sizeof(err)), TM_ECONFIG);
    TM_CHECK(strstr(err, "admin_tls_client_ca") != NULL);

    server_tls = &tls;
    server_t s;
    int rc = server_start(&s, NULL, NULL, NULL, false);
    server_tls = NULL;
    TM_REQUIRE(rc == 0);
    tm_buf_t resp;
    tm_buf_init(&resp);
    int status = 0;
    tm_admin_client_tls_t anon = {tls_file("ca.pem"), NULL, NULL, NULL};
    rc = tls_req(&s, &anon, NULL, "/healthz", &status, &resp, err, sizeof(err));
    TM_CHECK(rc != 0);
    TM_CHECK(strstr(err, "--cert") != NULL);
    tm_admin_client_tls_t wrong = {tls_file("ca.pem"), NULL, tls_file("other.pem"),
                                   tls_file("other.key")};
    rc = tls_req(&s, &wrong, NULL, "/healthz", &status, &resp, err, sizeof(err));
    TM_CHECK(rc != 0);
    tm_admin_client_tls_t good = {tls_file("ca.pem"), NULL, tls_file("client.pem"),
                                  tls_file("client.key")};
    TM_CHECK_INT(tls_req(&s, &good, NULL, "/healthz", &status, &resp, err, sizeof(err)), 0);
    TM_CHECK_INT(status, 200);
    server_stop(&s);
    tm_buf_release(&resp);
}

/* Each bad file is a configuration error at start that names the file and what to do. */
static void test_tls_config_errors(void)
{
    static const struct {
        const char *cert, *key, *ca, *expect1, *expect2;
    } cases[] = {
        {"missing.pem", "server.key", NULL, "missing.pem cannot be read", "No such file"},
        {"server.pem", "missing.key", NULL, "missing.key cannot be read", "No such file"},
        {"garbage.pem", "server.key", NULL, "garbage.pem holds no PEM certificate", "openssl req"},
        {"server.key", "server.pem", NULL, "holds no PEM certificate", "swapped"},
        {"server.pem", "garbage.pem", NULL, "garbage.pem holds no PEM private key", "made with"},
        {"server.pem", "stray.key", NULL, "stray.key does not belong to", "server.pem"},
        {"server.pem", "encrypted.key", NULL, "encrypted.key is encrypted", "openssl pkey"},
        {"server.pem", NULL, NULL, "admin_tls_key is not set", "both"},
        {NULL, "server.key", NULL, "admin_tls_cert is not set", "both"},
        {"server.pem", "server.key", "garbage.pem", "admin_tls_client_ca", "garbage.pem"},
        {"server.pem", "server.key", "missing-ca.pem", "admin_tls_client_ca", "cannot be read"},
        {".", "server.key", NULL, "not a regular PEM file", "directory"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tm_admin_tls_t tls = {cases[i].cert ? tls_file(cases[i].cert) : NULL,
                              cases[i].key ? tls_file(cases[i].key) : NULL,
                              cases[i].ca ? tls_file(cases[i].ca) : NULL};
        char err[1024] = "";
        int rc = tm_admin_check_tls("127.0.0.1:0", NULL, &tls, err, sizeof(err));
        TM_CHECK_INT(rc, TM_ECONFIG);
        bool ok = strstr(err, cases[i].expect1) != NULL && strstr(err, cases[i].expect2) != NULL;
        TM_CHECK(ok);
        if (!ok)
            fprintf(stderr, "case %zu: %s\n", i, err);
        /* tm_admin_start_tls() refuses the same, before binding anything. */
        struct event_base *base = event_base_new();
        tm_admin_t *a = NULL;
        char err2[1024] = "";
        rc = tm_admin_start_tls(base, "127.0.0.1:0", NULL, &tls, NULL, NULL, &a, err2,
                                sizeof(err2));
        TM_CHECK_INT(rc, TM_ECONFIG);
        TM_CHECK(a == NULL);
        TM_CHECK_STR(err2, err);
        event_base_free(base);
    }
    tm_admin_tls_t good = {tls_file("server.pem"), tls_file("server.key"), NULL};
    char err[512];
    TM_CHECK_INT(tm_admin_check_tls("127.0.0.1:0", NULL, &good, err, sizeof(err)), 0);
}

static char *slurp_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    tm_buf_t b;
    tm_buf_init(&b);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        tm_buf_append(&b, buf, n);
    fclose(f);
    tm_buf_putc(&b, '\0');
    return b.data;
}

/*
 * Values that are the PEM text itself (as ${file:} and ${env:} give them):
 * served from memory, and never shown in a message.
 */
static void test_tls_inline_pem(void)
{
    char *cert = slurp_file(tls_file("server.pem"));
    char *key = slurp_file(tls_file("server.key"));
    char *ca = slurp_file(tls_file("ca.pem"));
    char *stray = slurp_file(tls_file("stray.key"));
    char *enc = slurp_file(tls_file("encrypted.key"));
    TM_REQUIRE(cert && key && ca && stray && enc);
    char err[1024] = "";
    tm_admin_tls_t bad = {cert, stray, NULL};
    TM_CHECK_INT(tm_admin_check_tls("127.0.0.1:0", NULL, &bad, err, sizeof(err)), TM_ECONFIG);
    TM_CHECK(strstr(err, "does not belong to") != NULL && strstr(err, "(inline PEM)") != NULL);
    TM_CHECK(strstr(err, "PRIVATE KEY") == NULL && strstr(err, "-----BEGIN") == NULL);
    tm_admin_tls_t encrypted = {cert, enc, NULL};
    TM_CHECK_INT(tm_admin_check_tls("127.0.0.1:0", NULL, &encrypted, err, sizeof(err)),
                 TM_ECONFIG);
    TM_CHECK(strstr(err, "is encrypted") != NULL && strstr(err, "-----BEGIN") == NULL);
    tm_admin_tls_t swapped = {key, cert, NULL};
    TM_CHECK_INT(tm_admin_check_tls("127.0.0.1:0", NULL, &swapped, err, sizeof(err)), TM_ECONFIG);
    TM_CHECK(strstr(err, "swapped") != NULL && strstr(err, "-----BEGIN") == NULL);

    /* A chain (server certificate, then the CA) and client CAs, all inline: mutual TLS works. */
    tm_buf_t chain;
    tm_buf_init(&chain);
    tm_buf_puts(&chain, cert);
    tm_buf_puts(&chain, ca);
    tm_admin_tls_t tls = {chain.data, key, ca};
    server_tls = &tls;
    server_t s;
    int rc = server_start(&s, NULL, NULL, NULL, false);
    server_tls = NULL;
    TM_REQUIRE(rc == 0);
    tm_buf_t resp;
    tm_buf_init(&resp);
    int status = 0;
    tm_admin_client_tls_t good = {tls_file("ca.pem"), NULL, tls_file("client.pem"),
                                  tls_file("client.key")};
    TM_CHECK_INT(tls_req(&s, &good, NULL, "/healthz", &status, &resp, err, sizeof(err)), 0);
    TM_CHECK_INT(status, 200);
    tm_admin_client_tls_t anon = {tls_file("ca.pem"), NULL, NULL, NULL};
    TM_CHECK(tls_req(&s, &anon, NULL, "/healthz", &status, &resp, err, sizeof(err)) != 0);
    server_stop(&s);
    tm_buf_release(&resp);
    tm_buf_release(&chain);
    free(cert);
    free(key);
    free(ca);
    free(stray);
    free(enc);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    tm_log_level = TM_LOG_WARN;
    snprintf(tmp_root, sizeof(tmp_root), "/tmp/tm-test-admin-XXXXXX");
    if (mkdtemp(tmp_root) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    TM_RUN(test_health_ready_metrics);
    TM_RUN(test_savepoint_flow);
    TM_RUN(test_http_errors);
    TM_RUN(test_null_hooks_501);
    TM_RUN(test_snapshot_routes);
    TM_RUN(test_config_errors);
    TM_RUN(test_bearer_token);
    TM_RUN(test_addr_file);
    TM_RUN(test_cli_savepoint);
    TM_RUN(test_cli_stop);
    TM_RUN(test_client_errors);
    TM_RUN(test_browser_and_framing_checks);
    TM_RUN(test_connection_bound);
    TM_RUN(test_fd_reserve);
    TM_RUN(test_savepoint_dir);
    TM_RUN(test_tls_serves_and_verifies);
    TM_RUN(test_tls_stop_flush);
    TM_RUN(test_tls_mutual);
    TM_RUN(test_tls_config_errors);
    TM_RUN(test_tls_inline_pem);
    const char *dirs[] = {"wild", "state-addr", "state-cli", "state-stop"};
    char p[PATH_MAX + 64];
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s/%s", tmp_root, dirs[i], TM_ADMIN_ADDR_FILE);
        unlink(p);
        snprintf(p, sizeof(p), "%s/%s", tmp_root, dirs[i]);
        rmdir(p);
    }
    if (tls_dir[0] != '\0')
        sh("rm -rf '%s'", tls_dir);
    rmdir(tmp_root);
    return tm_test_done();
}
