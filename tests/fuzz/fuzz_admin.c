/*
 * fuzz_admin.c — libFuzzer target for the admin API's request handling.
 *
 * Role: each input is the bytes a client sends on one connection to the
 * admin API (src/daemon/admin.c): one request or several, well formed or
 * not.  A server is started on 127.0.0.1:0 with hooks that play the daemon
 * (the savepoint hook confines its directory with tm_admin_savepoint_dir()
 * under a scratch root, as the daemon does), the bytes are written, the write
 * side is shut, and the loop runs until the server closes the connection.
 * So the input goes through evhttp's parser, the framing, Host, Origin and
 * Content-Type checks, the bearer check, the route table, the JSON body
 * checks and the hooks.  The first byte chooses whether the server has a
 * token ("fuzz-token") and is not sent.
 *
 * A fresh server per input keeps inputs independent: the connection guard
 * releases closed connections on its own timer, which would otherwise let
 * connections of earlier inputs count against later ones.
 *
 * Invariants: no crash, no leak, no undefined behaviour on any input; every
 * exchange ends within a bounded number of loop turns; a stop reaches the
 * hooks only from input that has a Content-Type header (abort() otherwise).
 *
 * How to run it (tests/fuzz/meson.build builds it with -Dfuzz=true):
 *
 *   CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
 *   ninja -C build-fuzz tests/fuzz/fuzz-admin
 *   build-fuzz/tests/fuzz/fuzz-admin -max_len=8192 tests/fuzz/admin
 *
 * Every file in tests/fuzz/admin/ is replayed as the unit test
 * `fuzz-corpus-admin` in every build.
 *
 * Thread: libFuzzer calls the target from one thread; the server runs on it.
 */
#include "core/buf.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "daemon/admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Loop turns an exchange may take.  Loopback delivers what one side sends
 * before send() returns, so the turns do not wait; an exchange that the
 * server leaves open (it never should) ends after this many.
 */
#define MAX_TURNS 2000

static char sp_root[64];
static int stops;

static bool f_ready(void *arg)
{
    (void)arg;
    return true;
}

static void f_doc(void *arg, tm_buf_t *out)
{
    (void)arg;
    tm_buf_puts(out, "{\"ok\":true}");
}

static int64_t f_savepoint(void *arg, const char *dir, bool stop, char *errstr, size_t errstr_size)
{
    (void)arg;
    (void)stop;
    char *path = NULL;
    int rc = tm_admin_savepoint_dir(sp_root, dir, &path, errstr, errstr_size);
    free(path);
    return rc != 0 ? rc : 1;
}

static bool f_status(void *arg, int64_t id, tm_buf_t *out)
{
    (void)arg;
    if (id != 1)
        return false;
    tm_buf_puts(out, "{\"id\":1,\"status\":\"completed\",\"path\":\"/x\"}");
    return true;
}

static void f_stop(void *arg)
{
    (void)arg;
    stops++;
}

static void remove_root(void)
{
    tm_rm_rf(sp_root);
}

static void init_once(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    signal(SIGPIPE, SIG_IGN);
    tm_log_set_level("error");
    snprintf(sp_root, sizeof(sp_root), "/tmp/tidemark-fuzz-admin-%d", (int)getpid());
    atexit(remove_root);
}

/* Finds the case-insensitive header name at a line start within data[0..n). */
static bool has_header(const uint8_t *data, size_t n, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i + len <= n; i++)
        if ((i == 0 || data[i - 1] == '\n') && strncasecmp((const char *)data + i, name, len) == 0)
            return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    if (size < 1)
        return 0;
    bool with_token = data[0] & 1;
    data++;
    size--;

    struct event_base *base = event_base_new();
    if (base == NULL)
        return 0;
    tm_admin_hooks_t hooks = {NULL, f_ready, f_doc, f_doc, f_doc, f_savepoint, f_status, f_stop};
    tm_admin_t *admin = NULL;
    char err[512];
    if (tm_admin_start(base, "127.0.0.1:0", with_token ? "fuzz-token" : NULL, &hooks, NULL,
                       &admin, err, sizeof(err)) != 0) {
        /* Out of ports or descriptors: not the input's fault. */
        event_base_free(base);
        return 0;
    }
    const char *addr = tm_admin_address(admin);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_port = htons((uint16_t)atoi(strrchr(addr, ':') + 1));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int before = stops;
    bool connected = fd >= 0 && (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 ||
                                 errno == EINPROGRESS);
    if (connected) {
        size_t off = 0;
        bool eof = false;
        for (int turn = 0; turn < MAX_TURNS && !eof; turn++) {
            if (off < size) {
                ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
                if (n > 0)
                    off += (size_t)n;
                else if (n < 0 && errno != EAGAIN && errno != ENOTCONN)
                    off = size; /* the server closed early (a 4xx); stop sending */
                if (off == size)
                    shutdown(fd, SHUT_WR);
            }
            event_base_loop(base, EVLOOP_NONBLOCK);
            char buf[4096];
            ssize_t r = recv(fd, buf, sizeof(buf), 0);
            if (r > 0 && getenv("FUZZ_ADMIN_VERBOSE"))
                fwrite(buf, 1, (size_t)r, stderr);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != ENOTCONN))
                eof = true;
        }
    }
    if (fd >= 0)
        close(fd);
    admin = tm_admin_free(admin);
    event_base_free(base);
    /* A stop reached the daemon only through a request that declared JSON. */
    if (stops != before && !has_header(data, size, "content-type:"))
        abort();
    return 0;
}
