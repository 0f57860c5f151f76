/*
 * Unit tests: generated watermarks through a running pipeline
 * (runtime/pipeline.c's source-output path, evtime.h, input.h):
 *
 *     source a (ts, no idle_timeout) ──► stage "join" [two-input op] ──► sink
 *     source b (ts, idle_timeout)    ──┘
 *
 * The operator's watermark is the minimum of the sources'; source b, with
 * only ticks (heartbeats) and no rows, goes idle and stops holding it back;
 * its next row makes it active again.
 */
#include "core/clock.h"
#include "core/error.h"
#include "runtime/graph.h"
#include "runtime/pipeline.h"
#include "tm_test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S 1000000LL

/* ---- the fake source: emits one row with ts = `next` whenever the test sets it ---- */

struct tm_source {
    tm_schema_t *schema;
    _Atomic int64_t next; /* 0: nothing to emit */
    _Atomic int emitted;
};

static int fake_run(tm_source_t *src, tm_source_ctx_t *ctx, char *errstr, size_t errstr_size)
{
    (void)errstr;
    (void)errstr_size;
    tm_source_set_ready(ctx, true);
    while (!tm_source_should_stop(ctx)) {
        int64_t ts = atomic_load(&src->next);
        if (ts != 0) {
            tm_batch_t *b = tm_batch_new();
            tm_row_t *r = tm_batch_new_row(b, src->schema);
            tm_row_set_null(r, 0, false);
            tm_row_set_null(r, 1, false);
            r->vals[0].u.i64 = 1;
            r->vals[1].u.i64 = ts;
            tm_record_t *rec = tm_batch_add(b, src->schema, TM_OP_CREATE);
            rec->after = r;
            int rc;
            while ((rc = tm_source_emit(ctx, b, 50)) == TM_EAGAIN)
                ;
            if (rc != 0) {
                tm_batch_unref(b);
                return rc == TM_ESTOPPED ? 0 : rc;
            }
            atomic_store(&src->next, 0);
            atomic_fetch_add(&src->emitted, 1);
        }
        /* What a connector does while it waits for input (heartbeats). */
        int rc = tm_source_tick(ctx, 0);
        if (rc == TM_ESTOPPED)
            return 0;
        usleep(2000);
    }
    return 0;
}

static void fake_source_free(tm_source_t *src)
{
    (void)src;
}

static int fake_write(tm_sink_t *s, const tm_batch_t *b, char *errstr, size_t errstr_size)
{
    (void)s;
    (void)b;
    (void)errstr;
    (void)errstr_size;
    return 0;
}

static int fake_flush(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    (void)s;
    (void)errstr;
    (void)errstr_size;
    return 0;
}

static void fake_sink_free(tm_sink_t *s)
{
    (void)s;
}

static const tm_connector_t fake_conn = {
    .abi = TM_CONNECTOR_ABI,
    .name = "fake",
    .kinds = TM_CONNECTOR_SOURCE | TM_CONNECTOR_SINK,
    .source_run = fake_run,
    .source_free = fake_source_free,
    .sink_write = fake_write,
    .sink_flush = fake_flush,
    .sink_free = fake_sink_free,
};

/* ---- a two-input operator that remembers the watermarks it was given ---- */

static _Atomic int64_t op_wm = INT64_MIN;
static _Atomic int op_wm_calls;

static int op_process(tm_operator_t *op, int input, const tm_batch_t *in, tm_collector_t *out,
                      char *errstr, size_t errstr_size)
{
    (void)op;
    (void)input;
    (void)in;
    (void)out;
    (void)errstr;
    (void)errstr_size;
    return 0;
}

static int op_watermark(tm_operator_t *op, int64_t ts_us, int64_t *forward_us,
                        tm_collector_t *out, char *errstr, size_t errstr_size)
{
    (void)op;
    (void)forward_us;
    (void)out;
    (void)errstr;
    (void)errstr_size;
    /* Invariant 3 of input.h: strictly increasing. */
    if (ts_us <= atomic_load(&op_wm))
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "watermark went back");
    atomic_store(&op_wm, ts_us);
    atomic_fetch_add(&op_wm_calls, 1);
    return 0;
}

static void op_free(tm_operator_t *op)
{
    free(op);
}

static const tm_operator_ops_t wm_ops = {
    .name = "wm",
    .ninputs = 2,
    .process = op_process,
    .on_watermark = op_watermark,
    .free = op_free,
};

static int wm_op_new(const void *spec, const tm_operator_ctx_t *ctx,
                     const tm_operator_ops_t **ops, tm_operator_t **out, char *errstr,
                     size_t errstr_size)
{
    (void)spec;
    (void)ctx;
    (void)errstr;
    (void)errstr_size;
    *ops = &wm_ops;
    *out = calloc(1, 16);
    return *out != NULL ? 0 : TM_ENOMEM;
}

static tm_schema_t *ts_schema(void)
{
    tm_schema_t *s = tm_schema_new(2);
    tm_schema_set_str(&s->cols[0].name, "k");
    s->cols[0].type = TM_T_INT64;
    s->cols[0].key_index = 0;
    tm_schema_set_str(&s->cols[1].name, "ts");
    s->cols[1].type = TM_T_TIMESTAMPTZ;
    s->cols[1].key_index = -1;
    tm_schema_finish(s);
    return s;
}

static char err[1024];

/* Waits (at most 10 s) until the operator's watermark is `want`. */
static bool wait_op(tm_pipeline_t *p, int64_t want)
{
    int64_t deadline = tm_mono_ms() + 10000;
    while (tm_mono_ms() < deadline) {
        int64_t wm;
        if (atomic_load(&op_wm) == want && tm_pipeline_op_watermark(p, 0, 0, &wm) && wm == want)
            return true;
        usleep(5000);
    }
    fprintf(stderr, "operator watermark %lld, wanted %lld\n", (long long)atomic_load(&op_wm),
            (long long)want);
    return false;
}

static void emit(tm_source_t *src, int64_t ts)
{
    int before = atomic_load(&src->emitted);
    atomic_store(&src->next, ts);
    int64_t deadline = tm_mono_ms() + 10000;
    while (atomic_load(&src->emitted) == before && tm_mono_ms() < deadline)
        usleep(1000);
    TM_REQUIRE(atomic_load(&src->emitted) > before);
}

static void test_minimum_and_idle_source_through_a_stage(void)
{
    tm_source_t a = {.schema = ts_schema()}, b = {.schema = ts_schema()};
    tm_sink_t *sink = NULL;
    tm_pipeline_t *p = tm_pipeline_new();
    int sa = tm_pipeline_add_source(p, &fake_conn, &a, "a");
    int sb = tm_pipeline_add_source(p, &fake_conn, &b, "b");
    int k = tm_pipeline_add_sink(p, &fake_conn, sink, "out");
    TM_REQUIRE(tm_pipeline_set_source_event_time(p, sa, "ts", 1 * S, 0) == 0);
    TM_REQUIRE(tm_pipeline_set_source_event_time(p, sb, "ts", 0, 1500) == 0);
    TM_CHECK_INT(tm_pipeline_set_source_event_time(p, k, "ts", 0, 0), TM_EINVAL);
    tm_operator_factory_t f = {wm_op_new, NULL, "wm", false};
    int st = tm_pipeline_add_stage(p, "join", 1, &f, 1, err, sizeof(err));
    TM_REQUIRE(st >= 0);
    TM_REQUIRE(tm_pipeline_link(p, sa, st, 0, TM_EXCHANGE_FORWARD, NULL, err, sizeof(err)) >= 0);
    TM_REQUIRE(tm_pipeline_link(p, sb, st, 1, TM_EXCHANGE_FORWARD, NULL, err, sizeof(err)) >= 0);
    TM_REQUIRE(tm_pipeline_link(p, st, k, 0, TM_EXCHANGE_FORWARD, NULL, err, sizeof(err)) >= 0);
    TM_REQUIRE(tm_pipeline_start(p, err, sizeof(err)) == 0);

    int64_t wm;
    TM_CHECK(!tm_pipeline_op_watermark(p, 0, 0, &wm));
    /* Both sources have a row: the minimum, each source's value minus its own delay. */
    emit(&a, 100 * S);
    emit(&b, 50 * S);
    TM_CHECK(wait_op(p, 50 * S));
    TM_CHECK(tm_pipeline_source_watermark(p, 0, &wm) && wm == 99 * S);
    TM_CHECK(tm_pipeline_source_watermark(p, 1, &wm) && wm == 50 * S);
    /* a keeps going, b only ticks: after its idle_timeout it stops holding the stage back. */
    emit(&a, 201 * S);
    TM_CHECK(wait_op(p, 200 * S));
    TM_CHECK(tm_pipeline_source_idle(p, 1));
    TM_CHECK(!tm_pipeline_source_idle(p, 0));
    /* b's next row makes it active again; behind a, it decides the minimum once a moves on. */
    emit(&b, 150 * S);
    TM_CHECK(!tm_pipeline_source_idle(p, 1));
    emit(&a, 301 * S);
    usleep(400 * 1000);
    /* The stage never goes back: b (150 s) is below what it had, so it stays at 200 s. */
    TM_CHECK_INT(atomic_load(&op_wm), 200 * S);
    emit(&b, 250 * S);
    TM_CHECK(wait_op(p, 250 * S));
    tm_pipeline_request_stop(p);
    int64_t deadline = tm_mono_ms() + 10000;
    while (!tm_pipeline_done(p) && tm_mono_ms() < deadline)
        usleep(5000);
    TM_CHECK_INT(tm_pipeline_join(p, err, sizeof(err)), 0);
    tm_pipeline_free(p);
    tm_schema_unref(a.schema);
    tm_schema_unref(b.schema);
}

int main(void)
{
    TM_RUN(test_minimum_and_idle_source_through_a_stage);
    return tm_test_done();
}
