/*
 * Unit tests: watermark generation in the source-output path
 * (runtime/evtime.h): per partition, minimum over partitions, NULL event
 * times, out-of-order rows, the delay, commit-time mode and idle partitions;
 * and the idle status in the valve (runtime/input.h).
 */
#include "core/error.h"
#include "runtime/evtime.h"
#include "runtime/input.h"
#include "tm_test.h"

#include <stdint.h>

#define S 1000000LL /* one second in µs */

/* t(id int64, ts timestamptz): the event-time column is the second one. */
static tm_schema_t *ts_schema(const char *tsname)
{
    tm_schema_t *s = tm_schema_new(2);
    tm_schema_set_str(&s->cols[0].name, "id");
    s->cols[0].type = TM_T_INT64;
    s->cols[0].key_index = 0;
    tm_schema_set_str(&s->cols[1].name, tsname);
    s->cols[1].type = TM_T_TIMESTAMPTZ;
    s->cols[1].key_index = -1;
    tm_schema_finish(s);
    return s;
}

/* Appends an insert whose ts is `ts_us` (INT64_MIN: NULL). */
static void add(tm_batch_t *b, tm_schema_t *s, int64_t ts_us)
{
    tm_row_t *r = tm_batch_new_row(b, s);
    tm_row_set_null(r, 0, false);
    r->vals[0].u.i64 = b->count;
    tm_row_set_null(r, 1, ts_us == INT64_MIN);
    r->vals[1].u.i64 = ts_us == INT64_MIN ? 0 : ts_us;
    tm_record_t *rec = tm_batch_add(b, s, TM_OP_CREATE);
    rec->after = r;
}

static bool wm_now(const tm_evtime_t *g, int64_t now_ms, int64_t *wm)
{
    bool idle;
    return tm_evtime_current(g, now_ms, wm, &idle);
}

/* One partition: newest event time minus the delay; out-of-order rows and NULLs do not move it. */
static void test_delay_out_of_order_and_nulls(void)
{
    tm_schema_t *s = ts_schema("ts");
    tm_evtime_t g;
    TM_REQUIRE(tm_evtime_init(&g, "ts", 5 * S, 0, 0) == 0);
    int64_t wm = 0;
    TM_CHECK(!wm_now(&g, 0, &wm)); /* nothing read: no watermark */
    tm_batch_t *b = tm_batch_new();
    add(b, s, 100 * S);
    add(b, s, 90 * S); /* out of order: the maximum stays */
    add(b, s, INT64_MIN);
    TM_REQUIRE(tm_evtime_observe(&g, b, 0, NULL, 1) == 0);
    TM_REQUIRE(wm_now(&g, 1, &wm));
    TM_CHECK_INT(wm, 95 * S);
    tm_batch_unref(b);
    /* A batch of NULLs only: unchanged. */
    b = tm_batch_new();
    add(b, s, INT64_MIN);
    TM_REQUIRE(tm_evtime_observe(&g, b, 0, NULL, 2) == 0);
    TM_REQUIRE(wm_now(&g, 2, &wm));
    TM_CHECK_INT(wm, 95 * S);
    tm_batch_unref(b);
    /* A later row advances it; an older one after it does not pull it back. */
    b = tm_batch_new();
    add(b, s, 120 * S);
    add(b, s, 50 * S);
    TM_REQUIRE(tm_evtime_observe(&g, b, 0, NULL, 3) == 0);
    TM_REQUIRE(wm_now(&g, 3, &wm));
    TM_CHECK_INT(wm, 115 * S);
    tm_batch_unref(b);
    tm_evtime_destroy(&g);
    tm_schema_unref(s);
}

/* A batch whose schema lacks the column (another table of the stream) does not move it. */
static void test_schema_without_the_column(void)
{
    tm_schema_t *s = ts_schema("ts"), *other = ts_schema("created");
    tm_evtime_t g;
    TM_REQUIRE(tm_evtime_init(&g, "ts", 0, 0, 0) == 0);
    tm_batch_t *b = tm_batch_new();
    add(b, other, 500 * S);
    add(b, s, 10 * S);
    add(b, other, 600 * S);
    TM_REQUIRE(tm_evtime_observe(&g, b, 0, NULL, 0) == 0);
    int64_t wm = 0;
    TM_REQUIRE(wm_now(&g, 0, &wm));
    TM_CHECK_INT(wm, 10 * S);
    tm_batch_unref(b);
    tm_evtime_destroy(&g);
    tm_schema_unref(s);
    tm_schema_unref(other);
}

/* Several partitions: the minimum; a partition without records holds it back entirely. */
static void test_minimum_over_partitions(void)
{
    tm_schema_t *s = ts_schema("ts");
    tm_evtime_t g;
    TM_REQUIRE(tm_evtime_init(&g, "ts", 1 * S, 0, 0) == 0);
    TM_REQUIRE(tm_evtime_partitions(&g, 3, 0) == 0);
    tm_batch_t *b = tm_batch_new();
    add(b, s, 100 * S); /* partition 0 */
    add(b, s, 40 * S);  /* partition 1 */
    add(b, s, 70 * S);  /* partition 0 */
    int32_t parts[] = {0, 1, 0};
    TM_REQUIRE(tm_evtime_observe(&g, b, 0, parts, 0) == 0);
    int64_t wm = 0;
    TM_CHECK(!wm_now(&g, 0, &wm)); /* partition 2 has read nothing */
    tm_batch_unref(b);
    b = tm_batch_new();
    add(b, s, 60 * S);
    TM_REQUIRE(tm_evtime_observe(&g, b, 2, NULL, 0) == 0);
    TM_REQUIRE(wm_now(&g, 0, &wm));
    TM_CHECK_INT(wm, 39 * S); /* min(100, 40, 60) - 1 s */
    tm_batch_unref(b);
    /* A partition number beyond the known ones adds partitions (they hold it back). */
    b = tm_batch_new();
    add(b, s, 200 * S);
    TM_REQUIRE(tm_evtime_observe(&g, b, 5, NULL, 0) == 0);
    TM_CHECK_INT(g.nparts, 6);
    TM_CHECK(!wm_now(&g, 0, &wm));
    tm_batch_unref(b);
    tm_evtime_destroy(&g);
    tm_schema_unref(s);
}

/* idle_timeout: a quiet partition stops holding the watermark back, comes back with input. */
static void test_idle_partitions(void)
{
    tm_schema_t *s = ts_schema("ts");
    tm_evtime_t g;
    TM_REQUIRE(tm_evtime_init(&g, "ts", 0, 1000, 0) == 0);
    TM_REQUIRE(tm_evtime_partitions(&g, 2, 0) == 0);
    int64_t wm = 0;
    bool idle = false;
    /* Both live and empty: none, not idle. */
    TM_CHECK(!tm_evtime_current(&g, 500, &wm, &idle));
    TM_CHECK(!idle);
    tm_batch_t *b = tm_batch_new();
    add(b, s, 100 * S);
    TM_REQUIRE(tm_evtime_observe(&g, b, 0, NULL, 900) == 0);
    tm_batch_unref(b);
    TM_CHECK(!tm_evtime_current(&g, 999, &wm, &idle)); /* partition 1 still within its timeout */
    /* Partition 1 had nothing for 1 s: idle, partition 0 alone decides. */
    TM_REQUIRE(tm_evtime_current(&g, 1000, &wm, &idle));
    TM_CHECK(!idle);
    TM_CHECK_INT(wm, 100 * S);
    /* Every partition idle: no watermark, and the source is idle. */
    TM_CHECK(!tm_evtime_current(&g, 1900, &wm, &idle));
    TM_CHECK(idle);
    /* Partition 1 gets a record behind partition 0: active again, the minimum is its. */
    b = tm_batch_new();
    add(b, s, 80 * S);
    TM_REQUIRE(tm_evtime_observe(&g, b, 1, NULL, 2000) == 0);
    tm_batch_unref(b);
    TM_REQUIRE(tm_evtime_current(&g, 2000, &wm, &idle));
    TM_CHECK(!idle);
    TM_CHECK_INT(wm, 80 * S);
    /* Activity without a record (a tombstone) keeps a partition live. */
    tm_evtime_touch(&g, 0, 2500);
    TM_REQUIRE(tm_evtime_current(&g, 3200, &wm, &idle));
    TM_CHECK_INT(wm, 100 * S); /* partition 1 idle again, 0 touched at 2500 */
    tm_evtime_destroy(&g);
    tm_schema_unref(s);
}

/* Commit-time mode: src.ts_us, else proc_us; records with neither are skipped. */
static void test_commit_time_mode(void)
{
    tm_schema_t *s = ts_schema("ts");
    tm_evtime_t g;
    TM_REQUIRE(tm_evtime_init(&g, NULL, 2 * S, 0, 0) == 0);
    tm_batch_t *b = tm_batch_new();
    add(b, s, 1);
    b->recs[0].src.ts_us = 50 * S;
    add(b, s, 1);
    b->recs[1].proc_us = 70 * S;
    add(b, s, 999 * S); /* the column is not the event time here */
    TM_REQUIRE(tm_evtime_observe(&g, b, 0, NULL, 0) == 0);
    int64_t wm = 0;
    TM_REQUIRE(wm_now(&g, 0, &wm));
    TM_CHECK_INT(wm, 68 * S);
    tm_batch_unref(b);
    tm_evtime_destroy(&g);
    tm_schema_unref(s);
    TM_CHECK_INT(tm_evtime_init(&g, "ts", -1, 0, 0), TM_EINVAL);
}

/* The valve: an idle slot stops holding the output back; all idle; active again. */
static void test_valve_idle_slots(void)
{
    tm_input_t in;
    TM_REQUIRE(tm_input_init(&in, 2) == 0);
    TM_CHECK(!tm_input_watermark(&in, 0, 100));
    TM_CHECK(!tm_input_idle(&in));
    /* Slot 1 never sent one; idle, it no longer holds slot 0 back. */
    TM_CHECK(tm_input_set_idle(&in, 1, true));
    TM_CHECK_INT(tm_input_watermark_out(&in), 100);
    TM_CHECK(!tm_input_idle(&in));
    TM_CHECK(tm_input_watermark(&in, 0, 150));
    TM_CHECK_INT(tm_input_watermark_out(&in), 150);
    /* Both idle: the subtask is idle, the output stays. */
    TM_CHECK(!tm_input_set_idle(&in, 0, true));
    TM_CHECK(tm_input_idle(&in));
    TM_CHECK_INT(tm_input_watermark_out(&in), 150);
    /* Slot 1 active again with an older watermark: the output never goes back. */
    TM_CHECK(!tm_input_set_idle(&in, 1, false));
    TM_CHECK(!tm_input_idle(&in));
    TM_CHECK(!tm_input_watermark(&in, 1, 120));
    TM_CHECK_INT(tm_input_watermark_out(&in), 150);
    TM_CHECK(tm_input_watermark(&in, 1, 200));
    TM_CHECK_INT(tm_input_watermark_out(&in), 200);
    /* An idle slot that ends: not idle any more, just ended. */
    bool adv;
    tm_input_end(&in, 1, &adv);
    TM_CHECK(tm_input_idle(&in)); /* slot 0 idle, the only one left */
    tm_input_end(&in, 0, &adv);
    TM_CHECK(!tm_input_idle(&in));
    tm_input_destroy(&in);
}

int main(void)
{
    TM_RUN(test_delay_out_of_order_and_nulls);
    TM_RUN(test_schema_without_the_column);
    TM_RUN(test_minimum_over_partitions);
    TM_RUN(test_idle_partitions);
    TM_RUN(test_commit_time_mode);
    TM_RUN(test_valve_idle_slots);
    return tm_test_done();
}
