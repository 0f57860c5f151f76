/*
 * Unit tests: the error counters by kind (src/core/errcount.c) behind
 * tidemark_errors_total{kind}.
 */
#include "core/errcount.h"
#include "tm_test.h"

#include <pthread.h>

static void test_names_are_fixed_and_distinct(void)
{
    static const char *const want[] = {"source_connection", "sink_connection", "row_expression",
                                       "decode", "checkpoint_failed", "dead_letter"};
    TM_CHECK_INT(TM_ERRKIND_COUNT, 6);
    for (int k = 0; k < TM_ERRKIND_COUNT; k++)
        TM_CHECK_STR(tm_errkind_name((tm_errkind_t)k), want[k]);
    TM_CHECK_STR(tm_errkind_name(TM_ERRKIND_COUNT), "unknown");
    TM_CHECK_STR(tm_errkind_name((tm_errkind_t)-1), "unknown");
}

static void test_counts_per_kind(void)
{
    uint64_t before[TM_ERRKIND_COUNT];
    for (int k = 0; k < TM_ERRKIND_COUNT; k++)
        before[k] = tm_errors_total((tm_errkind_t)k);
    tm_errors_count(TM_ERRKIND_DECODE);
    tm_errors_count(TM_ERRKIND_DECODE);
    tm_errors_count(TM_ERRKIND_CHECKPOINT_FAILED);
    /* Out of range: ignored, nothing else moves. */
    tm_errors_count(TM_ERRKIND_COUNT);
    tm_errors_count((tm_errkind_t)-3);
    TM_CHECK_INT(tm_errors_total(TM_ERRKIND_DECODE) - before[TM_ERRKIND_DECODE], 2);
    TM_CHECK_INT(tm_errors_total(TM_ERRKIND_CHECKPOINT_FAILED) -
                     before[TM_ERRKIND_CHECKPOINT_FAILED],
                 1);
    TM_CHECK_INT(tm_errors_total(TM_ERRKIND_SOURCE_CONNECTION),
                 before[TM_ERRKIND_SOURCE_CONNECTION]);
    TM_CHECK_INT(tm_errors_total(TM_ERRKIND_COUNT), 0);
}

static void *bump(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100000; i++)
        tm_errors_count(TM_ERRKIND_ROW_EXPRESSION);
    return NULL;
}

/* Subtask threads count concurrently; no increment may be lost. */
static void test_concurrent_counts(void)
{
    uint64_t before = tm_errors_total(TM_ERRKIND_ROW_EXPRESSION);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, bump, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    TM_CHECK_INT(tm_errors_total(TM_ERRKIND_ROW_EXPRESSION) - before, 400000);
}

int main(void)
{
    TM_RUN(test_names_are_fixed_and_distinct);
    TM_RUN(test_counts_per_kind);
    TM_RUN(test_concurrent_counts);
    return tm_test_done();
}
