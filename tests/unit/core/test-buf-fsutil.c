/*
 * test-buf-fsutil.c — JSON strings are always UTF-8 (issue 9 item 14), and
 * the state-directory lock refuses a second holder (item 8).
 *
 * Thread: main only.
 */
#include "core/buf.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "tm_test.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

/* tm_buf_append_json_str of `in` (len bytes) as text. */
static const char *json_of(const char *in, size_t len)
{
    static tm_buf_t out;
    tm_buf_clear(&out);
    if (tm_buf_append_json_str(&out, in, len) != 0)
        return "(ENOMEM)";
    return out.data;
}

#define FFFD "\xef\xbf\xbd"

static void test_json_str_utf8(void)
{
    static const struct {
        const char *in;
        size_t len;
        const char *want;
    } cases[] = {
        /* Well-formed text, ASCII escapes and 2-, 3-, 4-byte characters stay. */
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14,
         "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""},
        {"a\"b\\\n\x01", 6, "\"a\\\"b\\\\\\n\\u0001\""},
        /* SQL_ASCII's Latin-1 bytes: one U+FFFD each. */
        {"caf\xe9", 4, "\"caf" FFFD "\""},
        {"\xe9t\xe9", 3, "\"" FFFD "t" FFFD "\""},
        /* Maximal subparts (Unicode §3.9): a truncated sequence is one U+FFFD. */
        {"\xe2\x82", 2, "\"" FFFD "\""},
        {"\xe2\x82x", 3, "\"" FFFD "x\""},
        {"\xf0\x9f\x98", 3, "\"" FFFD "\""},
        /* Overlong, surrogate, past U+10FFFF, stray continuation, 0xFF. */
        {"\xc0\xaf", 2, "\"" FFFD FFFD "\""},
        {"\xe0\x80\xaf", 3, "\"" FFFD FFFD FFFD "\""},
        {"\xed\xa0\x80", 3, "\"" FFFD FFFD FFFD "\""},
        {"\xf4\x90\x80\x80", 4, "\"" FFFD FFFD FFFD FFFD "\""},
        {"\x80z\xff", 3, "\"" FFFD "z" FFFD "\""},
        /* The last byte of the input is a lead byte. */
        {"ok\xc3", 3, "\"ok" FFFD "\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = json_of(cases[i].in, cases[i].len);
        TM_CHECK_STR(got, cases[i].want);
        /* Jansson accepts only valid UTF-8: the output is always a JSON string. */
        json_error_t e;
        json_t *j = json_loads(got, JSON_DECODE_ANY, &e);
        TM_CHECK(json_is_string(j));
        json_decref(j);
    }
    /* Every byte value in every position: always valid JSON. */
    char in[3];
    int bad = 0;
    for (int a = 0; a < 256; a++)
        for (int b = 0; b < 256; b++) {
            in[0] = (char)a, in[1] = (char)b, in[2] = (char)0x80;
            json_error_t e;
            json_t *j = json_loads(json_of(in, 3), JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
            bad += !json_is_string(j);
            json_decref(j);
        }
    TM_CHECK_INT(bad, 0);
    tm_buf_t u;
    tm_buf_init(&u);
    TM_CHECK_INT(tm_buf_append_utf8(&u, "x\xe9y", 3), 0);
    TM_CHECK_STR(u.data, "x" FFFD "y");
    tm_buf_release(&u);
}

static void test_fs_lock(void)
{
    char dir[] = "/tmp/tm-lock-XXXXXX", path[64], holder[300];
    TM_REQUIRE(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/LOCK", dir);
    int fd = -1, fd2 = -1;
    TM_CHECK_INT(tm_fs_lock(path, &fd, holder, sizeof(holder)), 0);
    TM_CHECK(fd >= 0);
    /* A second holder, even in this process (flock is per open file), is refused. */
    TM_CHECK_INT(tm_fs_lock(path, &fd2, holder, sizeof(holder)), TM_EAGAIN);
    TM_CHECK_INT(fd2, -1);
    char want[64];
    snprintf(want, sizeof(want), "pid %ld (", (long)getpid());
    TM_CHECK(strncmp(holder, want, strlen(want)) == 0);
    TM_CHECK(strstr(holder, "test-core-buf-fsutil") != NULL);
    /* Another process too; it learns our pid. */
    pid_t child = fork();
    if (child == 0) {
        int cfd;
        char h[300];
        bool refused = tm_fs_lock(path, &cfd, h, sizeof(h)) == TM_EAGAIN;
        _exit(refused && strncmp(h, want, strlen(want)) == 0 ? 0 : 1);
    }
    int status = 0;
    waitpid(child, &status, 0);
    TM_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* Released with the descriptor (or the process): the next run takes it. */
    close(fd);
    TM_CHECK_INT(tm_fs_lock(path, &fd2, holder, sizeof(holder)), 0);
    close(fd2);
    unlink(path);
    rmdir(dir);
}

static void test_asprintf(void)
{
    char *s = tm_asprintf("%s-%d", "slot", 42);
    TM_REQUIRE(s != NULL);
    TM_CHECK(strcmp(s, "slot-42") == 0);
    free(s);
}

int main(void)
{
    TM_RUN(test_json_str_utf8);
    TM_RUN(test_fs_lock);
    TM_RUN(test_asprintf);
    return tm_test_done();
}
