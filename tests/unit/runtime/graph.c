/*
 * Unit tests: the operator graph at run time (runtime/graph.h, pipeline.h)
 * and the checkpoint coordinator driving it (runtime/checkpoint.h), with a
 * fake source and sink defined here.
 *
 *     fake source ──HASH(k)──► stage "count" × 2 [test op] ──► fake sink
 */
#include "core/clock.h"
#include "core/error.h"
#include "runtime/checkpoint.h"
#include "runtime/pipeline.h"
#include "rt_test.h"
#include "state/state_test.h"
#include "state/store.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define MAXP 128
#define NKEYS 23

/* ---- the fake source: n records, keys i % NKEYS, v = i, a token per batch ---- */

struct tm_source {
    tm_schema_t *schema;
    int n;          /* records to emit */
    int per_batch;
    bool linger;    /* keep answering barriers until stopped (for checkpoints) */
    int hold_at;    /* > 0: after this many records, wait for a barrier and emit it first */
    uint64_t acked; /* tm_source_acked after the final sync */
};

static int emit_retry(tm_source_ctx_t *ctx, tm_batch_t *b)
{
    for (;;) {
        int rc = tm_source_emit(ctx, b, 50);
        if (rc != TM_EAGAIN)
            return rc;
    }
}

static int barrier_if_due(tm_source_ctx_t *ctx, uint64_t token)
{
    uint64_t id = tm_source_barrier_due(ctx);
    if (id == 0)
        return 0;
    char pos[32];
    snprintf(pos, sizeof(pos), "at %llu", (unsigned long long)token);
    int rc;
    while ((rc = tm_source_emit_barrier(ctx, id, token, pos, 50)) == TM_EAGAIN)
        ;
    return rc;
}

static int fake_run(tm_source_t *src, tm_source_ctx_t *ctx, char *errstr, size_t errstr_size)
{
    (void)errstr;
    (void)errstr_size;
    tm_source_set_ready(ctx, true);
    uint64_t token = 0;
    for (int i = 0; i < src->n;) {
        if (src->hold_at > 0 && i == src->hold_at) {
            while (tm_source_barrier_due(ctx) == 0 && !tm_source_should_stop(ctx))
                usleep(1000);
            int rc = barrier_if_due(ctx, token);
            if (rc != 0)
                return rc == TM_ESTOPPED ? 0 : rc;
        }
        tm_batch_t *b = tm_batch_new();
        for (int j = 0; j < src->per_batch && i < src->n; j++, i++)
            rt_add(b, src->schema, TM_OP_CREATE, NULL, rt_row(b, src->schema, i % NKEYS, i));
        b->ack_token = ++token;
        int rc = emit_retry(ctx, b);
        if (rc != 0) {
            tm_batch_unref(b);
            return rc;
        }
        int64_t wm = (int64_t)i * 1000;
        while ((rc = tm_source_emit_watermark(ctx, wm, 50)) == TM_EAGAIN)
            ;
        if (rc == 0 && (src->hold_at == 0 || i > src->hold_at))
            rc = barrier_if_due(ctx, token);
        if (rc != 0)
            return rc;
    }
    while (src->linger && !tm_source_should_stop(ctx)) {
        int rc = barrier_if_due(ctx, token);
        if (rc != 0)
            return rc == TM_ESTOPPED ? 0 : rc;
        usleep(2000);
    }
    if (!src->linger && tm_source_sync(ctx, 10000) == 0)
        src->acked = tm_source_acked(ctx);
    if (!src->linger)
        tm_source_finished(ctx, token, "end");
    return 0;
}

static void fake_source_free(tm_source_t *src)
{
    (void)src;
}

/* ---- the fake sink: remembers (k, v) in arrival order, epochs pre-committed and committed ---- */

struct tm_sink {
    pthread_mutex_t lock;
    int64_t *k, *v;
    int n, cap;
    uint64_t precommits[64], commits[64];
    int nprecommits, ncommits;
    int flushes;
    int64_t ops_seen[4];
};

static int fake_write(tm_sink_t *s, const tm_batch_t *b, char *errstr, size_t errstr_size)
{
    (void)errstr;
    (void)errstr_size;
    pthread_mutex_lock(&s->lock);
    for (uint32_t i = 0; i < b->count; i++) {
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 256;
            s->k = realloc(s->k, sizeof(*s->k) * (size_t)s->cap);
            s->v = realloc(s->v, sizeof(*s->v) * (size_t)s->cap);
        }
        const tm_row_t *r = b->recs[i].after;
        s->k[s->n] = r->vals[0].u.i64;
        s->v[s->n++] = r->vals[1].u.i64;
    }
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static int fake_flush(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    (void)errstr;
    (void)errstr_size;
    s->flushes++;
    return 0;
}

static int fake_precommit(tm_sink_t *s, uint64_t epoch, tm_buf_t *handle, char *errstr,
                          size_t errstr_size)
{
    (void)errstr;
    (void)errstr_size;
    pthread_mutex_lock(&s->lock);
    if (s->nprecommits < 64)
        s->precommits[s->nprecommits++] = epoch;
    pthread_mutex_unlock(&s->lock);
    tm_buf_appendf(handle, "epoch-%llu", (unsigned long long)epoch);
    return 0;
}

static int fake_commit(tm_sink_t *s, uint64_t epoch, const char *progress, char *errstr,
                       size_t errstr_size)
{
    (void)progress;
    (void)errstr;
    (void)errstr_size;
    pthread_mutex_lock(&s->lock);
    if (s->ncommits < 64)
        s->commits[s->ncommits++] = epoch;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static void fake_sink_free(tm_sink_t *s)
{
    (void)s;
}

/*
 * The asynchronous pre-commit (connector.h, sink_precommit_poll): pre-commit
 * answers TM_EAGAIN and the epoch is done only once the test says so.
 */
static atomic_bool precommit_release;

static int async_precommit(tm_sink_t *s, uint64_t epoch, tm_buf_t *handle, char *errstr,
                           size_t errstr_size)
{
    int rc = fake_precommit(s, epoch, handle, errstr, errstr_size);
    return rc == 0 ? TM_EAGAIN : rc;
}

static int async_poll(tm_sink_t *s, int timeout_ms, bool *done, char *errstr, size_t errstr_size)
{
    (void)s;
    (void)errstr;
    (void)errstr_size;
    int64_t until = tm_mono_ms() + (timeout_ms < 0 ? 60000 : timeout_ms);
    while (!(*done = atomic_load(&precommit_release)) && tm_mono_ms() < until)
        usleep(500);
    return 0;
}

static const tm_connector_t fake_conn = {
    .abi = TM_CONNECTOR_ABI,
    .name = "fake",
    .kinds = TM_CONNECTOR_SOURCE | TM_CONNECTOR_SINK,
    .source_run = fake_run,
    .source_free = fake_source_free,
    .sink_write = fake_write,
    .sink_flush = fake_flush,
    .sink_precommit = fake_precommit,
    .sink_commit = fake_commit,
    .sink_free = fake_sink_free,
};

static const tm_connector_t async_conn = {
    .abi = TM_CONNECTOR_ABI,
    .name = "fake-async",
    .kinds = TM_CONNECTOR_SINK,
    .sink_write = fake_write,
    .sink_flush = fake_flush,
    .sink_precommit = async_precommit,
    .sink_precommit_poll = async_poll,
    .sink_commit = fake_commit,
    .sink_free = fake_sink_free,
};

/* ---- the test operator: copies records, checks key ownership, counts barriers in state ---- */

static _Atomic int foreign_keys, ends, barriers_seen, watermarks_seen;
/* When > 0, the test operator rejects rows whose v is a multiple of it (row errors). */
static _Atomic int reject_mod;

typedef struct test_op {
    const tm_operator_ctx_t *ctx;
    tm_store_cf_t *cf;
} test_op_t;

static int op_process(tm_operator_t *op, int input, const tm_batch_t *in, tm_collector_t *out,
                      char *errstr, size_t errstr_size)
{
    test_op_t *t = (test_op_t *)op;
    (void)input;
    (void)errstr;
    (void)errstr_size;
    tm_batch_t *b = tm_batch_new();
    tm_batch_t *side = t->ctx->side_out != NULL ? tm_batch_new() : NULL;
    for (uint32_t i = 0; i < in->count; i++) {
        const tm_record_t *r = &in->recs[i];
        int64_t k = r->after->vals[0].u.i64;
        /* With a side output, multiples of 7 go there instead (as late rows do). */
        if (side != NULL && r->after->vals[1].u.i64 % 7 == 0) {
            tm_record_t *o = tm_batch_add(side, r->schema, r->op);
            o->after = rt_row(side, r->schema, k, r->after->vals[1].u.i64);
            continue;
        }
        if (rt_owner(k, t->ctx->parallelism, t->ctx->max_parallelism) != t->ctx->subtask)
            atomic_fetch_add(&foreign_keys, 1);
        int mod = atomic_load(&reject_mod);
        if (mod > 0 && r->after->vals[1].u.i64 % mod == 0) {
            int rc = tm_operator_row_error(t->ctx, r, "division by zero", errstr, errstr_size);
            if (rc != 0) {
                tm_batch_unref(b);
                return rc;
            }
            continue;
        }
        tm_record_t *o = tm_batch_add(b, r->schema, r->op);
        o->after = rt_row(b, r->schema, k, r->after->vals[1].u.i64);
    }
    if (side != NULL) {
        int rc = tm_collector_emit(t->ctx->side_out, side);
        if (rc != 0) {
            tm_batch_unref(b);
            return rc;
        }
    }
    return tm_collector_emit(out, b);
}

static int op_barrier(tm_operator_t *op, uint64_t id, tm_collector_t *out, char *errstr,
                      size_t errstr_size)
{
    test_op_t *t = (test_op_t *)op;
    (void)out;
    atomic_fetch_add(&barriers_seen, 1);
    /* A state write the snapshot must contain. */
    char key[16];
    int n = snprintf(key, sizeof(key), "b%d", t->ctx->subtask);
    return tm_store_put(t->ctx->store, t->cf, t->ctx->kg_first, key, (size_t)n, &id, sizeof(id),
                        errstr, errstr_size);
}

static int op_watermark(tm_operator_t *op, int64_t ts_us, int64_t *forward_us,
                        tm_collector_t *out, char *errstr, size_t errstr_size)
{
    (void)op;
    (void)out;
    (void)errstr;
    (void)errstr_size;
    (void)forward_us;
    (void)ts_us;
    atomic_fetch_add(&watermarks_seen, 1);
    return 0;
}

static int op_end(tm_operator_t *op, tm_collector_t *out, char *errstr, size_t errstr_size)
{
    (void)op;
    (void)out;
    (void)errstr;
    (void)errstr_size;
    atomic_fetch_add(&ends, 1);
    return 0;
}

static void op_free(tm_operator_t *op)
{
    free(op);
}

static const tm_operator_ops_t test_ops = {
    .name = "test",
    .ninputs = 1,
    .process = op_process,
    .on_watermark = op_watermark,
    .on_barrier = op_barrier,
    .on_end = op_end,
    .free = op_free,
};

static int test_op_new(const void *spec, const tm_operator_ctx_t *ctx,
                       const tm_operator_ops_t **ops, tm_operator_t **out, char *errstr,
                       size_t errstr_size)
{
    (void)spec;
    test_op_t *t = calloc(1, sizeof(*t));
    t->ctx = ctx;
    int rc = tm_store_cf(ctx->store, ctx->uid, &t->cf, errstr, errstr_size);
    if (rc != 0) {
        free(t);
        return rc;
    }
    *ops = &test_ops;
    *out = (tm_operator_t *)t;
    return 0;
}

/* ---- the harness ---- */

typedef struct harness {
    char *dir;
    tm_store_t *stores[2];
    tm_pipeline_t *p;
    tm_source_t src;
    tm_sink_t sink;
    int stage;
} harness_t;

static char err[1024];

static void harness_init_with(harness_t *h, int n, int per_batch, bool linger,
                              tm_ack_policy_t policy, const tm_connector_t *sink_conn)
{
    memset(h, 0, sizeof(*h));
    atomic_store(&foreign_keys, 0);
    atomic_store(&ends, 0);
    atomic_store(&barriers_seen, 0);
    atomic_store(&watermarks_seen, 0);
    atomic_store(&reject_mod, 0);
    h->dir = tst_tmpdir();
    TM_REQUIRE(h->dir != NULL);
    tm_store_opts_t so = tst_opts(0);
    so.max_parallelism = MAXP;
    for (int w = 0; w < 2; w++) {
        char d[600];
        snprintf(d, sizeof(d), "%s/store-%d", h->dir, w);
        TM_REQUIRE(tm_store_open(d, &so, &h->stores[w], err, sizeof(err)) == 0);
    }
    h->src.schema = rt_schema();
    h->src.n = n;
    h->src.per_batch = per_batch;
    h->src.linger = linger;
    pthread_mutex_init(&h->sink.lock, NULL);
    h->p = tm_pipeline_new();
    tm_pipeline_set_ack_policy(h->p, policy);
    tm_pipeline_set_flush_interval(h->p, 20);
    int s = tm_pipeline_add_source(h->p, &fake_conn, &h->src, "src");
    int k = tm_pipeline_add_sink(h->p, sink_conn, &h->sink, "out");
    tm_operator_factory_t f = {test_op_new, NULL, "test/op", true};
    h->stage = tm_pipeline_add_stage(h->p, "count", 2, &f, 1, err, sizeof(err));
    /* One number space: source 0, sink 1, stage 2. */
    TM_CHECK(s == 0 && k == 1 && h->stage == 2);
    TM_REQUIRE(tm_pipeline_set_stage_stores(h->p, h->stage, h->stores, 2) == 0);
    TM_REQUIRE(tm_pipeline_link(h->p, s, h->stage, 0, TM_EXCHANGE_HASH, &rt_exchange_key, err,
                                sizeof(err)) >= 0);
    TM_REQUIRE(tm_pipeline_link(h->p, h->stage, k, 0, TM_EXCHANGE_FORWARD, NULL, err,
                                sizeof(err)) >= 0);
}

static void harness_init(harness_t *h, int n, int per_batch, bool linger, tm_ack_policy_t policy)
{
    harness_init_with(h, n, per_batch, linger, policy, &fake_conn);
}

static void harness_free(harness_t *h)
{
    h->p = tm_pipeline_free(h->p);
    for (int w = 0; w < 2; w++)
        tm_store_close(h->stores[w]);
    tm_schema_unref(h->src.schema);
    free(h->sink.k);
    free(h->sink.v);
    pthread_mutex_destroy(&h->sink.lock);
    tst_rmdir(h->dir);
}

/* Every row arrives once, per-key order holds, END ends the job, acks reach the source. */
static void test_hash_stage_delivers_every_row_once_in_key_order(void)
{
    harness_t h;
    harness_init(&h, 5000, 100, false, TM_ACK_SINK_DURABLE);
    TM_REQUIRE(tm_pipeline_start(h.p, err, sizeof(err)) == 0);
    int64_t deadline = tm_mono_ms() + 30000;
    while (!tm_pipeline_done(h.p) && tm_mono_ms() < deadline)
        usleep(5000);
    TM_CHECK(tm_pipeline_done(h.p));
    TM_CHECK_INT(tm_pipeline_join(h.p, err, sizeof(err)), 0);
    TM_CHECK_INT(h.sink.n, 5000);
    char *seen = calloc(5000, 1);
    int64_t last[NKEYS];
    for (int k = 0; k < NKEYS; k++)
        last[k] = -1;
    for (int i = 0; i < h.sink.n; i++) {
        int64_t k = h.sink.k[i], v = h.sink.v[i];
        TM_REQUIRE(v >= 0 && v < 5000 && k == v % NKEYS);
        TM_CHECK(!seen[v]);
        seen[v] = 1;
        TM_CHECK(v > last[k]);
        last[k] = v;
    }
    free(seen);
    TM_CHECK_INT(atomic_load(&foreign_keys), 0);
    TM_CHECK_INT(atomic_load(&ends), 2); /* on_end in both subtasks */
    TM_CHECK(atomic_load(&watermarks_seen) > 0);
    /* The last token (50 batches) is acknowledged through both subtasks' sink slots. */
    TM_CHECK_INT((long long)h.src.acked, 50);
    tm_operator_metrics_t m;
    tm_pipeline_op_metrics(h.p, 0, 0, &m);
    TM_CHECK_INT((long long)m.records_in, 5000);
    TM_CHECK_INT((long long)m.records_out, 5000);
    TM_CHECK_STR(tm_pipeline_op_uid(h.p, 0, 0), "test/op");
    harness_free(&h);
}

/* Barriers align over both subtasks, each snapshots its store, the sink pre-commits. */
static void test_barrier_aligns_snapshots_and_precommits(void)
{
    harness_t h;
    harness_init(&h, 2000, 50, true, TM_ACK_CHECKPOINT);
    char root[700];
    snprintf(root, sizeof(root), "%s/checkpoints", h.dir);
    tm_pipeline_set_state_checkpoint_dir(h.p, root);
    TM_REQUIRE(tm_pipeline_start(h.p, err, sizeof(err)) == 0);
    tm_pipeline_request_barrier(h.p, 1);
    int64_t deadline = tm_mono_ms() + 30000;
    while (!tm_pipeline_precommitted(h.p, 1) && tm_mono_ms() < deadline)
        usleep(2000);
    TM_REQUIRE(tm_pipeline_precommitted(h.p, 1));
    TM_CHECK_INT(atomic_load(&barriers_seen), 2);
    TM_CHECK_STR(tm_pipeline_sink_handle(h.p, 0), "epoch-1");
    TM_CHECK_INT(tm_pipeline_nstores(h.p), 2);
    for (int w = 0; w < 2; w++) {
        tm_pipeline_store_info_t si;
        tm_pipeline_store_info(h.p, w, &si);
        TM_CHECK_INT(si.subtask, w);
        TM_CHECK_STR(si.uids[0], "test/op");
        char d[1200];
        snprintf(d, sizeof(d), "%s/chk-1/%s", root, si.dir);
        TM_CHECK(access(d, F_OK) == 0);
        TM_CHECK(si.chk.bytes > 0);
    }
    /* Nothing committed or acknowledged before complete(). */
    TM_CHECK(!tm_pipeline_committed(h.p, 1));
    uint64_t token = tm_pipeline_source_token(h.p, 0);
    TM_CHECK(token > 0);
    tm_pipeline_complete(h.p, 1, NULL);
    deadline = tm_mono_ms() + 10000;
    while (!tm_pipeline_committed(h.p, 1) && tm_mono_ms() < deadline)
        usleep(2000);
    TM_CHECK(tm_pipeline_committed(h.p, 1));
    tm_pipeline_request_stop(h.p);
    TM_CHECK_INT(tm_pipeline_join(h.p, err, sizeof(err)), 0);
    TM_CHECK_INT(h.sink.nprecommits, 1);
    TM_CHECK_INT(h.sink.ncommits, 1);
    harness_free(&h);
}

/*
 * A sink whose pre-commit runs in the background keeps receiving the next
 * epoch's batches meanwhile, and the epoch counts as pre-committed (so the
 * checkpoint can complete) only once the sink says it is done.
 */
static void test_asynchronous_precommit(void)
{
    harness_t h;
    harness_init_with(&h, 2000, 50, true, TM_ACK_CHECKPOINT, &async_conn);
    h.src.hold_at = 1000;
    atomic_store(&precommit_release, false);
    char root[700];
    snprintf(root, sizeof(root), "%s/checkpoints", h.dir);
    tm_pipeline_set_state_checkpoint_dir(h.p, root);
    TM_REQUIRE(tm_pipeline_start(h.p, err, sizeof(err)) == 0);
    tm_pipeline_request_barrier(h.p, 1);
    /* The 1000 records after the barrier reach the sink while epoch 1 is being pre-committed. */
    int64_t deadline = tm_mono_ms() + 30000;
    int n = 0, np = 0;
    while (tm_mono_ms() < deadline) {
        pthread_mutex_lock(&h.sink.lock);
        n = h.sink.n;
        np = h.sink.nprecommits;
        pthread_mutex_unlock(&h.sink.lock);
        if (n == 2000 && np == 1)
            break;
        usleep(2000);
    }
    TM_CHECK_INT(np, 1);
    TM_CHECK_INT(n, 2000);
    usleep(50000);
    TM_CHECK(!tm_pipeline_precommitted(h.p, 1));
    TM_CHECK_INT(tm_pipeline_error(h.p), 0);
    atomic_store(&precommit_release, true);
    deadline = tm_mono_ms() + 10000;
    while (!tm_pipeline_precommitted(h.p, 1) && tm_mono_ms() < deadline)
        usleep(2000);
    TM_REQUIRE(tm_pipeline_precommitted(h.p, 1));
    TM_CHECK_STR(tm_pipeline_sink_handle(h.p, 0), "epoch-1");
    TM_CHECK(!tm_pipeline_committed(h.p, 1));
    tm_pipeline_complete(h.p, 1, NULL);
    deadline = tm_mono_ms() + 10000;
    while (!tm_pipeline_committed(h.p, 1) && tm_mono_ms() < deadline)
        usleep(2000);
    TM_CHECK(tm_pipeline_committed(h.p, 1));
    tm_pipeline_request_stop(h.p);
    TM_CHECK_INT(tm_pipeline_join(h.p, err, sizeof(err)), 0);
    TM_CHECK_INT(h.sink.ncommits, 1);
    TM_CHECK_INT(h.sink.commits[0], 1);
    harness_free(&h);
}

/* The coordinator drives checkpoints through barrier → pre-commit → _metadata → commit. */
static void test_coordinator_completes_checkpoints(void)
{
    harness_t h;
    harness_init(&h, 3000, 50, true, TM_ACK_CHECKPOINT);
    char root[700];
    snprintf(root, sizeof(root), "%s/checkpoints", h.dir);
    tm_pipeline_set_state_checkpoint_dir(h.p, root);
    TM_REQUIRE(tm_pipeline_start(h.p, err, sizeof(err)) == 0);
    tm_coordinator_t *c = tm_coordinator_new(h.p, h.dir, "job", 30, 10000, 2, 0);
    TM_REQUIRE(c != NULL);
    tm_checkpoint_stats_t st = {0};
    int64_t deadline = tm_mono_ms() + 30000;
    while (st.completed < 3 && tm_mono_ms() < deadline) {
        TM_CHECK_INT(tm_coordinator_tick(c, err, sizeof(err)), 0);
        tm_coordinator_stats(c, &st);
        usleep(2000);
    }
    TM_CHECK(st.completed >= 3);
    tm_checkpoint_info_t info;
    TM_REQUIRE(tm_checkpoint_load_latest(h.dir, &info, err, sizeof(err)) == 0);
    TM_CHECK(info.id >= 3);
    TM_CHECK_INT(info.max_parallelism, MAXP);
    TM_CHECK_INT(info.noperators, 1);
    TM_CHECK_STR(info.operators[0], "test/op");
    TM_REQUIRE(info.nstores == 2);
    for (int i = 0; i < 2; i++) {
        TM_CHECK_STR(info.stores[i].stage, "count");
        TM_CHECK_INT(info.stores[i].subtask, i);
        TM_CHECK_INT(info.stores[i].parallelism, 2);
        TM_CHECK_STR(info.stores[i].uids[0], "test/op");
        char d[1200];
        snprintf(d, sizeof(d), "%s/%s", info.dir, info.stores[i].dir);
        TM_CHECK(access(d, F_OK) == 0);
    }
    /* Acknowledgement moved with the completed checkpoint. */
    TM_CHECK(tm_checkpoint_source_token(&info, "src") > 0);
    char want[32];
    snprintf(want, sizeof(want), "epoch-%llu", (unsigned long long)info.id);
    TM_CHECK_STR(tm_checkpoint_sink_handle(&info, "out"), want);
    tm_checkpoint_info_release(&info);
    tm_pipeline_request_stop(h.p);
    TM_CHECK_INT(tm_pipeline_join(h.p, err, sizeof(err)), 0);
    tm_coordinator_free(c);
    TM_CHECK(h.sink.ncommits >= 3);
    harness_free(&h);
}

/* Graph errors are refused with a message. */
static void test_link_checks(void)
{
    tm_pipeline_t *p = tm_pipeline_new();
    tm_source_t src = {0};
    tm_sink_t sink;
    memset(&sink, 0, sizeof(sink));
    int s = tm_pipeline_add_source(p, &fake_conn, &src, "src");
    int k = tm_pipeline_add_sink(p, &fake_conn, &sink, "out");
    tm_operator_factory_t f = {test_op_new, NULL, "x", false};
    int st = tm_pipeline_add_stage(p, "two", 2, &f, 1, err, sizeof(err));
    TM_CHECK(st >= 0);
    TM_CHECK(tm_pipeline_link(p, k, s, 0, TM_EXCHANGE_FORWARD, NULL, err, sizeof(err)) < 0);
    TM_CHECK(tm_pipeline_link(p, s, st, 0, TM_EXCHANGE_FORWARD, NULL, err, sizeof(err)) < 0);
    TM_CHECK(strstr(err, "equal parallelism") != NULL);
    TM_CHECK(tm_pipeline_link(p, s, st, 0, TM_EXCHANGE_HASH, NULL, err, sizeof(err)) < 0);
    TM_CHECK(tm_pipeline_add_stage(p, "zero", 0, &f, 1, err, sizeof(err)) < 0);
    tm_pipeline_free(p);

    /* A stateful stage without stores is refused at start, and nothing runs. */
    p = tm_pipeline_new();
    s = tm_pipeline_add_source(p, &fake_conn, &src, "src");
    k = tm_pipeline_add_sink(p, &fake_conn, &sink, "out");
    f.stateful = true;
    st = tm_pipeline_add_stage(p, "needs-state", 1, &f, 1, err, sizeof(err));
    TM_CHECK(tm_pipeline_link(p, s, st, 0, TM_EXCHANGE_FORWARD, NULL, err, sizeof(err)) >= 0);
    TM_CHECK(tm_pipeline_link(p, st, k, 0, TM_EXCHANGE_FORWARD, NULL, err, sizeof(err)) >= 0);
    err[0] = '\0';
    TM_CHECK(tm_pipeline_start(p, err, sizeof(err)) == TM_EINVAL);
    TM_CHECK(strstr(err, "needs-state") != NULL && strstr(err, "stores") != NULL);
    TM_CHECK_INT(tm_pipeline_join(p, err, sizeof(err)), 0);
    TM_CHECK(tm_pipeline_done(p));
    tm_pipeline_free(p);
}

/* ---- a two-input operator: tags each row with the input it came from ---- */

static int tag_process(tm_operator_t *op, int input, const tm_batch_t *in, tm_collector_t *out,
                       char *errstr, size_t errstr_size)
{
    (void)op;
    (void)errstr;
    (void)errstr_size;
    tm_batch_t *b = tm_batch_new();
    for (uint32_t i = 0; i < in->count; i++) {
        const tm_record_t *r = &in->recs[i];
        tm_record_t *o = tm_batch_add(b, r->schema, r->op);
        o->after = rt_row(b, r->schema, r->after->vals[0].u.i64,
                          r->after->vals[1].u.i64 * 10 + input);
    }
    return tm_collector_emit(out, b);
}

static const tm_operator_ops_t tag_ops = {
    .name = "tag",
    .ninputs = 2,
    .process = tag_process,
    .free = op_free,
};

/* The same with one input (spec non-NULL). */
static const tm_operator_ops_t tag1_ops = {
    .name = "tag1",
    .ninputs = 1,
    .process = tag_process,
    .free = op_free,
};

static int tag_op_new(const void *spec, const tm_operator_ctx_t *ctx,
                      const tm_operator_ops_t **ops, tm_operator_t **out, char *errstr,
                      size_t errstr_size)
{
    (void)ctx;
    (void)errstr;
    (void)errstr_size;
    *ops = spec != NULL ? &tag1_ops : &tag_ops;
    *out = calloc(1, sizeof(test_op_t));
    return *out != NULL ? 0 : TM_ENOMEM;
}

/*
 * Two sources into the two inputs of one stage (hash-exchanged on each):
 * process() is told which input each batch came from, every row arrives
 * once, and a stage's inputs must match what its first operator takes.
 */
static void test_two_input_stage(void)
{
    tm_source_t a = {rt_schema(), 700, 50, false, 0};
    tm_source_t b = {rt_schema(), 300, 40, false, 0};
    tm_sink_t sink;
    memset(&sink, 0, sizeof(sink));
    pthread_mutex_init(&sink.lock, NULL);
    tm_pipeline_t *p = tm_pipeline_new();
    int sa = tm_pipeline_add_source(p, &fake_conn, &a, "a");
    int sb = tm_pipeline_add_source(p, &fake_conn, &b, "b");
    int k = tm_pipeline_add_sink(p, &fake_conn, &sink, "out");
    tm_operator_factory_t f = {tag_op_new, NULL, "tag", false};
    int st = tm_pipeline_add_stage(p, "join", 2, &f, 1, err, sizeof(err));
    TM_REQUIRE(st >= 0);
    TM_REQUIRE(tm_pipeline_link(p, sa, st, 0, TM_EXCHANGE_HASH, &rt_exchange_key, err,
                                sizeof(err)) >= 0);
    TM_REQUIRE(tm_pipeline_link(p, sb, st, 1, TM_EXCHANGE_HASH, &rt_exchange_key, err,
                                sizeof(err)) >= 0);
    TM_REQUIRE(tm_pipeline_link(p, st, k, 0, TM_EXCHANGE_FORWARD, NULL, err, sizeof(err)) >= 0);
    TM_REQUIRE(tm_pipeline_start(p, err, sizeof(err)) == 0);
    int64_t deadline = tm_mono_ms() + 30000;
    while (!tm_pipeline_done(p) && tm_mono_ms() < deadline)
        usleep(5000);
    TM_CHECK(tm_pipeline_done(p));
    TM_CHECK_INT(tm_pipeline_join(p, err, sizeof(err)), 0);
    TM_CHECK_INT(sink.n, 1000);
    char *seen = calloc(2 * 700, 1);
    for (int i = 0; i < sink.n; i++) {
        int64_t input = sink.v[i] % 10, v = sink.v[i] / 10;
        TM_REQUIRE(input == 0 || input == 1);
        TM_REQUIRE(v >= 0 && v < (input == 0 ? 700 : 300) && sink.k[i] == v % NKEYS);
        TM_CHECK(!seen[input * 700 + v]);
        seen[input * 700 + v] = 1;
    }
    free(seen);
    p = tm_pipeline_free(p);

    /* A two-input operator with one input linked, and a one-input one given two. */
    for (int two = 0; two < 2; two++) {
        p = tm_pipeline_new();
        sa = tm_pipeline_add_source(p, &fake_conn, &a, "a");
        sb = tm_pipeline_add_source(p, &fake_conn, &b, "b");
        k = tm_pipeline_add_sink(p, &fake_conn, &sink, "out");
        tm_operator_factory_t g = {tag_op_new, two ? NULL : "one input", "x", false};
        st = tm_pipeline_add_stage(p, "s", 1, &g, 1, err, sizeof(err));
        TM_REQUIRE(tm_pipeline_link(p, sa, st, 0, TM_EXCHANGE_FORWARD, NULL, err,
                                    sizeof(err)) >= 0);
        if (!two)
            TM_REQUIRE(tm_pipeline_link(p, sb, st, 1, TM_EXCHANGE_FORWARD, NULL, err,
                                        sizeof(err)) >= 0);
        TM_REQUIRE(tm_pipeline_link(p, st, k, 0, TM_EXCHANGE_FORWARD, NULL, err,
                                    sizeof(err)) >= 0);
        err[0] = '\0';
        TM_CHECK_INT(tm_pipeline_start(p, err, sizeof(err)), TM_EINVAL);
        TM_CHECK(strstr(err, two ? "input 1 is not linked" : "input 1 is linked") != NULL);
        tm_pipeline_join(p, err, sizeof(err));
        tm_pipeline_free(p);
    }
    tm_schema_unref(a.schema);
    tm_schema_unref(b.schema);
    free(sink.k);
    free(sink.v);
    pthread_mutex_destroy(&sink.lock);
}

/* Runs the harness's job to its end; returns what join returns. */
static int run_to_end(harness_t *h)
{
    TM_REQUIRE(tm_pipeline_start(h->p, err, sizeof(err)) == 0);
    int64_t deadline = tm_mono_ms() + 30000;
    while (!tm_pipeline_done(h->p) && tm_mono_ms() < deadline)
        usleep(5000);
    TM_CHECK(tm_pipeline_done(h->p));
    return tm_pipeline_join(h->p, err, sizeof(err));
}

/* on_error = 'dead-letter': each subtask's file holds exactly the rows it rejected. */
static void test_dead_letters_go_to_one_file_per_subtask(void)
{
    harness_t h;
    harness_init(&h, 5000, 100, false, TM_ACK_SINK_DURABLE);
    atomic_store(&reject_mod, 7);
    char dl_dir[600];
    snprintf(dl_dir, sizeof(dl_dir), "%s/dead-letter", h.dir);
    tm_pipeline_set_error_policy(h.p, TM_ON_ERROR_DEAD_LETTER);
    TM_REQUIRE(tm_pipeline_set_dead_letter_dir(h.p, dl_dir, "jobx") == 0);
    TM_CHECK_INT(run_to_end(&h), 0);
    int rejected = (4999 / 7) + 1; /* v = 0, 7, …, 4998 */
    TM_CHECK_INT(h.sink.n, 5000 - rejected);
    char *seen = calloc(5000, 1);
    int lines = 0;
    for (int w = 0; w < 2; w++) {
        char path[700];
        snprintf(path, sizeof(path), "%s/test_op-%d.jsonl", dl_dir, w);
        FILE *f = fopen(path, "r");
        TM_REQUIRE(f != NULL);
        char line[4096];
        while (fgets(line, sizeof(line), f) != NULL) {
            json_t *j = json_loads(line, 0, NULL);
            TM_REQUIRE(j != NULL);
            json_t *after = json_object_get(j, "after");
            int64_t k = json_integer_value(json_object_get(after, "k"));
            int64_t v = json_integer_value(json_object_get(after, "v"));
            TM_REQUIRE(v >= 0 && v < 5000);
            TM_CHECK(v % 7 == 0 && !seen[v]);
            seen[v] = 1;
            TM_CHECK(rt_owner(k, 2, MAXP) == w);
            TM_CHECK_INT((int)json_integer_value(json_object_get(j, "subtask")), w);
            TM_CHECK_STR(json_string_value(json_object_get(j, "operator")), "test/op");
            TM_CHECK_STR(json_string_value(json_object_get(j, "job")), "jobx");
            TM_CHECK_STR(json_string_value(json_object_get(j, "reason")), "division by zero");
            TM_CHECK_STR(json_string_value(json_object_get(j, "source")), "public.t");
            json_decref(j);
            lines++;
        }
        fclose(f);
    }
    TM_CHECK_INT(lines, rejected);
    free(seen);
    tm_operator_metrics_t m;
    tm_pipeline_op_metrics(h.p, 0, 0, &m);
    TM_CHECK_INT((int)m.dead_letters, rejected);
    TM_CHECK_INT((int)m.rows_skipped, rejected);
    TM_CHECK_INT((int)m.row_errors, rejected);
    harness_free(&h);
}

/* A dead-letter file that cannot be written fails the job, naming it. */
static void test_dead_letter_io_error_fails_the_job(void)
{
    harness_t h;
    harness_init(&h, 2000, 100, false, TM_ACK_SINK_DURABLE);
    atomic_store(&reject_mod, 5);
    char dl_dir[600];
    snprintf(dl_dir, sizeof(dl_dir), "%s/not-a-dir", h.dir);
    FILE *f = fopen(dl_dir, "w");
    TM_REQUIRE(f != NULL);
    fclose(f);
    tm_pipeline_set_error_policy(h.p, TM_ON_ERROR_DEAD_LETTER);
    TM_REQUIRE(tm_pipeline_set_dead_letter_dir(h.p, dl_dir, "jobx") == 0);
    TM_CHECK_INT(run_to_end(&h), TM_EIO);
    TM_CHECK(strstr(err, "not-a-dir/test_op-") != NULL);
    harness_free(&h);
}

/*
 * A side output (tm_pipeline_link_side): the operator's side rows reach their
 * own sink, once each, never the main one; barriers reach it (it pre-commits
 * with the others) and ack tokens too (the source's acknowledgement needs every
 * sink slot it reaches).  Without a side link, ctx->side_out is NULL.
 */
static void test_side_output(void)
{
    harness_t h;
    harness_init(&h, 5000, 100, false, TM_ACK_SINK_DURABLE);
    tm_sink_t late;
    memset(&late, 0, sizeof(late));
    pthread_mutex_init(&late.lock, NULL);
    int l = tm_pipeline_add_sink(h.p, &fake_conn, &late, "late");
    TM_CHECK(tm_pipeline_link_side(h.p, h.stage, 1, l, err, sizeof(err)) < 0);
    TM_CHECK(tm_pipeline_link_side(h.p, h.stage, 0, 0, err, sizeof(err)) < 0);
    TM_CHECK(strstr(err, "sink") != NULL);
    TM_REQUIRE(tm_pipeline_link_side(h.p, h.stage, 0, l, err, sizeof(err)) >= 0);
    TM_REQUIRE(tm_pipeline_start(h.p, err, sizeof(err)) == 0);
    int64_t deadline = tm_mono_ms() + 30000;
    while (!tm_pipeline_done(h.p) && tm_mono_ms() < deadline)
        usleep(5000);
    TM_CHECK(tm_pipeline_done(h.p));
    TM_CHECK_INT(tm_pipeline_join(h.p, err, sizeof(err)), 0);
    char *seen = calloc(5000, 1);
    for (int i = 0; i < h.sink.n; i++) {
        TM_CHECK(h.sink.v[i] % 7 != 0);
        TM_CHECK(!seen[h.sink.v[i]]++);
    }
    for (int i = 0; i < late.n; i++) {
        TM_CHECK(late.v[i] % 7 == 0);
        TM_CHECK(!seen[late.v[i]]++);
    }
    free(seen);
    TM_CHECK_INT(late.n, 715); /* 0, 7, …, 4998 */
    TM_CHECK_INT(h.sink.n + late.n, 5000);
    TM_CHECK_INT((long long)h.src.acked, 50);
    free(late.k);
    free(late.v);
    pthread_mutex_destroy(&late.lock);
    harness_free(&h);
}

/*
 * A bounded source with checkpoints an hour apart: at the end of its input a
 * checkpoint is taken at once, at the position the source gave
 * (tm_source_finished), and the sink commits it before the job ends, so
 * every row is committed (pipeline.c invariant 8).
 */
static void test_bounded_source_ends_with_a_final_checkpoint(void)
{
    harness_t h;
    harness_init(&h, 3000, 50, false, TM_ACK_CHECKPOINT);
    char root[700];
    snprintf(root, sizeof(root), "%s/checkpoints", h.dir);
    tm_pipeline_set_state_checkpoint_dir(h.p, root);
    TM_REQUIRE(tm_pipeline_start(h.p, err, sizeof(err)) == 0);
    tm_coordinator_t *c = tm_coordinator_new(h.p, h.dir, "job", 3600000, 10000, 2, 0);
    TM_REQUIRE(c != NULL);
    int64_t deadline = tm_mono_ms() + 30000;
    while (!tm_pipeline_done(h.p) && tm_mono_ms() < deadline) {
        TM_CHECK_INT(tm_coordinator_tick(c, err, sizeof(err)), 0);
        usleep(2000);
    }
    TM_CHECK(tm_pipeline_done(h.p));
    TM_CHECK_INT(tm_pipeline_join(h.p, err, sizeof(err)), 0);
    TM_CHECK_INT(h.sink.n, 3000);
    /* The one checkpoint is the final one; the sink committed it. */
    TM_CHECK_INT(h.sink.nprecommits, 1);
    TM_CHECK_INT(h.sink.ncommits, 1);
    TM_CHECK_INT((long long)h.sink.commits[0], (long long)h.sink.precommits[0]);
    tm_checkpoint_info_t info;
    TM_REQUIRE(tm_checkpoint_load_latest(h.dir, &info, err, sizeof(err)) == 0);
    TM_CHECK_INT((long long)info.id, (long long)h.sink.commits[0]);
    TM_REQUIRE(info.nsources == 1);
    TM_CHECK_STR(info.sources[0].position, "end");
    TM_CHECK_INT((long long)tm_checkpoint_source_token(&info, "src"), 60);
    tm_checkpoint_info_release(&info);
    tm_coordinator_free(c);
    harness_free(&h);
}

int main(void)
{
    TM_RUN(test_hash_stage_delivers_every_row_once_in_key_order);
    TM_RUN(test_barrier_aligns_snapshots_and_precommits);
    TM_RUN(test_coordinator_completes_checkpoints);
    TM_RUN(test_asynchronous_precommit);
    TM_RUN(test_link_checks);
    TM_RUN(test_two_input_stage);
    TM_RUN(test_dead_letters_go_to_one_file_per_subtask);
    TM_RUN(test_dead_letter_io_error_fails_the_job);
    TM_RUN(test_side_output);
    TM_RUN(test_bounded_source_ends_with_a_final_checkpoint);
    return tm_test_done();
}
