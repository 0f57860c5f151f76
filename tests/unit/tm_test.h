/*
 * tm_test.h — a minimal unit-test harness.
 *
 * A test file defines functions `static void test_xxx(void)` and lists them in
 * main() with TM_RUN(test_xxx).  TM_CHECK records a failure and goes on;
 * TM_REQUIRE stops the current test.  main() returns tm_test_done(), which is
 * non-zero when anything failed, so meson counts the executable as failed.
 */
#ifndef TM_TEST_H
#define TM_TEST_H

#include <inttypes.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tm__test_failures;
static int tm__test_checks;
static jmp_buf tm__test_jmp;
static const char *tm__test_name;

#define TM_CHECK(cond)                                                                             \
    do {                                                                                           \
        tm__test_checks++;                                                                         \
        if (!(cond)) {                                                                             \
            tm__test_failures++;                                                                   \
            fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, __LINE__, tm__test_name,   \
                    #cond);                                                                        \
        }                                                                                          \
    } while (0)

#define TM_REQUIRE(cond)                                                                           \
    do {                                                                                           \
        tm__test_checks++;                                                                         \
        if (!(cond)) {                                                                             \
            tm__test_failures++;                                                                   \
            fprintf(stderr, "%s:%d: %s: requirement failed: %s\n", __FILE__, __LINE__,            \
                    tm__test_name, #cond);                                                         \
            longjmp(tm__test_jmp, 1);                                                              \
        }                                                                                          \
    } while (0)

#define TM_CHECK_STR(a, b)                                                                         \
    do {                                                                                           \
        const char *tm__a = (a), *tm__b = (b);                                                     \
        tm__test_checks++;                                                                         \
        if (tm__a == NULL || tm__b == NULL || strcmp(tm__a, tm__b) != 0) {                         \
            tm__test_failures++;                                                                   \
            fprintf(stderr, "%s:%d: %s: \"%s\" != \"%s\"\n", __FILE__, __LINE__, tm__test_name,    \
                    tm__a ? tm__a : "(null)", tm__b ? tm__b : "(null)");                           \
        }                                                                                          \
    } while (0)

#define TM_CHECK_INT(a, b)                                                                         \
    do {                                                                                           \
        long long tm__a = (long long)(a), tm__b = (long long)(b);                                  \
        tm__test_checks++;                                                                         \
        if (tm__a != tm__b) {                                                                      \
            tm__test_failures++;                                                                   \
            fprintf(stderr, "%s:%d: %s: %s == %lld, expected %lld\n", __FILE__, __LINE__,          \
                    tm__test_name, #a, tm__a, tm__b);                                              \
        }                                                                                          \
    } while (0)

#define TM_RUN(fn)                                                                                 \
    do {                                                                                           \
        int tm__before = tm__test_failures;                                                        \
        tm__test_name = #fn;                                                                       \
        if (setjmp(tm__test_jmp) == 0)                                                             \
            fn();                                                                                  \
        fprintf(stderr, "%s %s\n", tm__test_failures == tm__before ? "ok  " : "FAIL", #fn);        \
    } while (0)

static inline int tm_test_done(void)
{
    fprintf(stderr, "%d checks, %d failed\n", tm__test_checks, tm__test_failures);
    return tm__test_failures ? 1 : 0;
}

/* Path of a file under tests/data, from the TM_TEST_DATA environment variable. */
static inline const char *tm_test_data(const char *rel, char *buf, size_t buflen)
{
    const char *root = getenv("TM_TEST_DATA");
    snprintf(buf, buflen, "%s/%s", root ? root : "tests/data", rel);
    return buf;
}

/* Reads a whole file into a NUL-terminated malloc'ed buffer (*len its size); NULL if it cannot. */
static inline char *tm_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf != NULL) {
        buf[n] = '\0';
        if (len != NULL)
            *len = (size_t)n;
    }
    return buf;
}

#endif
