/*
 * Unit tests: log lines escape every value (issue 9, item 5).  A value that
 * holds a newline, quotes, `level=error`, control characters or bytes that
 * are not UTF-8 must stay one value of one line, in logfmt and in JSON.
 */
#include "core/log.h"
#include "tm_test.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

static const char forged[] = "orders\nts=2026-01-01T00:00:00.000Z level=error comp=main "
                             "msg=\"forged\" x=\"y";

/* Runs fn with stderr sent to a file; returns what was written (caller frees). */
static char *capture(void (*fn)(void))
{
    char path[] = "/tmp/tm-log-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    unlink(path);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *buf = calloc(1, (size_t)len + 1);
    if (buf != NULL && pread(fd, buf, (size_t)len, 0) != (ssize_t)len) {
        free(buf);
        buf = NULL;
    }
    close(fd);
    return buf;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/*
 * A logfmt reader as a log collector would be: finds `key=` at the start of a
 * field and returns its value, unquoted and unescaped, in out.
 */
static bool logfmt_get(const char *line, const char *key, char *out, size_t outsz)
{
    const char *p = line;
    size_t kl = strlen(key);
    while (*p && *p != '\n') {
        while (*p == ' ')
            p++;
        const char *k = p;
        while (*p && *p != '=' && *p != ' ' && *p != '\n')
            p++;
        bool match = (size_t)(p - k) == kl && strncmp(k, key, kl) == 0;
        if (*p != '=')
            continue;
        p++;
        size_t n = 0;
        if (*p == '"') {
            p++;
            while (*p && *p != '"' && *p != '\n') {
                if (*p == '\\' && p[1])
                    p++;
                if (n + 1 < outsz)
                    out[n++] = *p;
                p++;
            }
            if (*p == '"')
                p++;
        } else {
            while (*p && *p != ' ' && *p != '\n') {
                if (n + 1 < outsz)
                    out[n++] = *p;
                p++;
            }
        }
        out[n] = '\0';
        if (match)
            return true;
    }
    return false;
}

static void emit_forged(void)
{
    TM_INFO("postgres", "snapshot progress", "source=%s table=%s.%s rows=%" PRIu64, "src",
            "public", forged, (uint64_t)10);
    TM_WARN("postgres", "slot lost", "error=\"%s\" hint=%s", "say \"hi\" \\ \x01\x1b[31m\xff",
            "a b=c");
}

static void test_logfmt_escapes_values(void)
{
    tm_log_json = 0;
    char *out = capture(emit_forged);
    TM_REQUIRE(out != NULL);
    TM_CHECK_INT(count_lines(out), 2);
    /* No raw control byte and no byte that is not UTF-8 reaches the output. */
    for (const char *c = out; *c; c++)
        TM_CHECK((*c >= 0x20 || *c == '\n') && *c != 0x7f && (unsigned char)*c != 0xff);
    char v[512];
    TM_CHECK(logfmt_get(out, "level", v, sizeof(v)) && strcmp(v, "info") == 0);
    TM_CHECK(logfmt_get(out, "rows", v, sizeof(v)) && strcmp(v, "10") == 0);
    TM_CHECK(logfmt_get(out, "source", v, sizeof(v)) && strcmp(v, "src") == 0);
    TM_CHECK(logfmt_get(out, "table", v, sizeof(v)));
    TM_CHECK(strncmp(v, "public.orders", 13) == 0);
    TM_CHECK(!logfmt_get(out, "x", v, sizeof(v)));
    const char *second = strchr(out, '\n') + 1;
    TM_CHECK(logfmt_get(second, "level", v, sizeof(v)) && strcmp(v, "warn") == 0);
    TM_CHECK(logfmt_get(second, "hint", v, sizeof(v)) && strcmp(v, "a b=c") == 0);
    TM_CHECK(logfmt_get(second, "error", v, sizeof(v)));
    TM_CHECK(strncmp(v, "say \"hi\" \\ ", 11) == 0);
    TM_CHECK(strstr(second, "\\x01\\x1b[31m\\xff") != NULL);
    free(out);
}

static void test_json_is_valid(void)
{
    tm_log_json = 1;
    char *out = capture(emit_forged);
    tm_log_json = 0;
    TM_REQUIRE(out != NULL);
    TM_CHECK_INT(count_lines(out), 2);
    char *line = out;
    for (int i = 0; i < 2; i++) {
        char *nl = strchr(line, '\n');
        TM_REQUIRE(nl != NULL);
        *nl = '\0';
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);
        TM_CHECK(j != NULL);
        if (j == NULL)
            fprintf(stderr, "  not JSON (%s): %s\n", jerr.text, line);
        TM_CHECK_STR(json_string_value(json_object_get(j, "level")), i ? "warn" : "info");
        if (i == 0)
            TM_CHECK(strstr(json_string_value(json_object_get(j, "fields")), "\\nts=") != NULL);
        json_decref(j);
        line = nl + 1;
    }
    free(out);
}

static void emit_long(void)
{
    static char big[6000];
    memset(big, '"', sizeof(big) - 1);
    TM_ERROR("main", "big", "error=\"%s\" a=%s", big, big);
}

/* A value longer than the line is cut, and the line still parses. */
static void test_truncation(void)
{
    tm_log_json = 1;
    char *out = capture(emit_long);
    tm_log_json = 0;
    TM_REQUIRE(out != NULL);
    TM_CHECK_INT(count_lines(out), 1);
    *strchr(out, '\n') = '\0';
    json_t *j = json_loads(out, 0, NULL);
    TM_CHECK(j != NULL);
    json_decref(j);
    free(out);
    out = capture(emit_long);
    TM_REQUIRE(out != NULL);
    TM_CHECK_INT(count_lines(out), 1);
    free(out);
}

static void emit_formats(void)
{
    TM_INFO("x", "m", "w=%*d p=%.3s z=%zu ll=%lld f=%.1f pct=50%% c=%c", 6, 42, "abcdef",
            (size_t)7, -9LL, 2.25, 'q');
}

static void test_formats(void)
{
    char *out = capture(emit_formats);
    TM_REQUIRE(out != NULL);
    TM_CHECK(strstr(out, "w=\"    42\" p=abc z=7 ll=-9 f=2.2 pct=50% c=q\n") != NULL);
    if (strstr(out, "p=abc") == NULL)
        fprintf(stderr, "  %s", out);
    free(out);
}

static void test_utf8(void)
{
    TM_CHECK_INT(tm_utf8_seqlen("a", 1), 1);
    TM_CHECK_INT(tm_utf8_seqlen("\xc3\xa9", 2), 2);
    TM_CHECK_INT(tm_utf8_seqlen("\xe2\x82\xac", 3), 3);
    TM_CHECK_INT(tm_utf8_seqlen("\xf0\x9f\x98\x80", 4), 4);
    TM_CHECK_INT(tm_utf8_seqlen("\xc3", 1), 0);        /* cut short */
    TM_CHECK_INT(tm_utf8_seqlen("\xc0\xaf", 2), 0);    /* overlong '/' */
    TM_CHECK_INT(tm_utf8_seqlen("\xed\xa0\x80", 3), 0); /* a surrogate */
    TM_CHECK_INT(tm_utf8_seqlen("\xf4\x90\x80\x80", 4), 0);
    TM_CHECK_INT(tm_utf8_seqlen("\xff", 1), 0);
}

int main(void)
{
    TM_RUN(test_logfmt_escapes_values);
    TM_RUN(test_json_is_valid);
    TM_RUN(test_truncation);
    TM_RUN(test_formats);
    TM_RUN(test_utf8);
    return tm_test_done();
}
