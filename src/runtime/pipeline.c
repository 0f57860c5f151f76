/*
 * pipeline.c — source and sink threads, fan-out, and the ack seam
 * (see pipeline.h for the invariants).
 */
#include "runtime/pipeline.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/failpoint.h"
#include "core/fsutil.h"
#include "operators/upsert.h"
#include "runtime/queue.h"
#include "state/keygroup.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TM_MAX_NODES 64
#define TM_QUEUE_CAPACITY 16
#define TM_DEFAULT_FLUSH_MS 200
#define TM_MAX_WORKERS 256

/*
 * Barrier alignment, shared by sinks and workers (DESIGN §6 step 2): once an
 * input has delivered barrier N, its later events are held back until every
 * input has delivered N, so nothing after the barrier lands in the epoch it
 * closes.
 */
typedef struct tm_align {
    uint64_t aligning; /* 0 when no barrier is being aligned */
    bool got[TM_MAX_NODES];
    int ngot;
    tm_event_t *held;
    int nheld, capheld;
} tm_align_t;

/*
 * Workers (DESIGN §5).  A source whose output goes through a stateful
 * operator hands every batch to every worker (one reference each, no copy);
 * each worker's operators consume only the records whose key groups it owns
 * (tm_upsert_set_owner), so a key always meets the same worker and its state.
 * Each worker is a producer on the queues of the sinks its operators feed,
 * through one edge per (worker, connection), so sinks align barriers over
 * workers exactly as over sources.
 */
typedef struct tm_sconn {
    int src, sink;
    char *uid;
    int edge0; /* worker w's edge is edge0 + w */
} tm_sconn_t;

typedef struct tm_worker {
    tm_pipeline_t *p;
    int idx;
    tm_queue_t queue;
    pthread_t thread;
    bool started;
    tm_store_t *store;
    int kg_first, kg_last;
    tm_upsert_t *ops[TM_MAX_NODES]; /* per connection */
    tm_align_t align;
    int ended;
    bool failed;
    char err[1024];
    tm_store_checkpoint_info_t chk; /* of the last snapshot */
    _Atomic uint64_t snapshotted;
    /*
     * Event time (DESIGN §4): the newest watermark of each input slot
     * (INT64_MIN before its first, INT64_MAX once it ended) and the last one
     * passed on, which is the minimum over the inputs.
     */
    int64_t wm_in[TM_MAX_NODES];
    int64_t wm_out;
} tm_worker_t;

typedef struct tm_edge {
    int src, sink; /* src: the source whose tokens this edge carries */
    int slot; /* index among the sink's producers */
    _Atomic uint64_t durable_token;
    _Atomic uint64_t synced_id;
    uint64_t pending_token; /* sink thread only */
} tm_edge_t;

struct tm_source_ctx {
    tm_pipeline_t *p;
    int idx;
    const tm_connector_t *conn;
    tm_source_t *src;
    char *name;
    pthread_t thread;
    bool started;
    int rc;
    char err[1024];
    int edges[TM_MAX_NODES]; /* direct edges to sinks */
    int nedges;
    int aedges[TM_MAX_NODES * 2]; /* every edge carrying this source's tokens */
    int naedges;
    int wslot; /* producer slot in every worker queue, or -1 */
    /* Fan-out progress of a batch that got TM_EAGAIN half way. */
    tm_batch_t *pending;
    int pending_next;
    tm_schema_t *pending_schema;
    int pending_schema_next;
    uint64_t last_token;
    uint64_t sync_seq;
    /* Barrier injection: the last id fully injected, and one in progress. */
    uint64_t bar_done;
    uint64_t bar_pending_id;
    int bar_pending_next;
    uint64_t bar_token;
    char *bar_position; /* any length: Kafka records offsets of every partition */
    /* Watermark injection: one in progress, and the last fully emitted (INT64_MIN: none). */
    bool wm_pending_active;
    int64_t wm_pending;
    int wm_pending_next;
    _Atomic int64_t watermark_us;
    _Atomic bool ready;
    _Atomic uint64_t events, bytes;
};

typedef struct tm_sink_node {
    tm_pipeline_t *p;
    int idx;
    const tm_connector_t *conn;
    tm_sink_t *sink;
    char *name;
    tm_queue_t queue;
    pthread_t thread;
    bool started;
    char err[1024];
    int edges[TM_MAX_NODES];
    int nedges;
    tm_align_t align; /* sink thread only */
    uint64_t committed_local;
    tm_buf_t handle;
    _Atomic uint64_t precommitted;
    _Atomic uint64_t committed;
} tm_sink_node_t;

struct tm_pipeline {
    tm_source_ctx_t *sources[TM_MAX_NODES];
    int nsources;
    tm_sink_node_t *sinks[TM_MAX_NODES];
    int nsinks;
    tm_edge_t edges[TM_MAX_NODES * 4];
    int nedges;
    tm_worker_t *workers[TM_MAX_WORKERS];
    int nworkers;
    int wsources; /* sources feeding the workers */
    tm_sconn_t sconns[TM_MAX_NODES];
    int nsconns;
    char *chk_root; /* workers snapshot into <chk_root>/chk-N/state/worker-W */
    int dl;         /* decision-log sink, or -1 */
    char *progress; /* progress record of the checkpoint being decided */
    _Atomic uint64_t deciding;
    int flush_ms;
    tm_ack_policy_t policy;
    _Atomic uint64_t barrier_req;
    _Atomic uint64_t completed;
    _Atomic bool stop;
    _Atomic int running;
    pthread_mutex_t err_lock;
    int first_rc;
    char first_err[1024];
};

tm_pipeline_t *tm_pipeline_new(void)
{
    tm_pipeline_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->flush_ms = TM_DEFAULT_FLUSH_MS;
    p->dl = -1;
    pthread_mutex_init(&p->err_lock, NULL);
    return p;
}

void tm_pipeline_set_flush_interval(tm_pipeline_t *p, int ms)
{
    p->flush_ms = ms > 0 ? ms : TM_DEFAULT_FLUSH_MS;
}

int tm_pipeline_add_source(tm_pipeline_t *p, const tm_connector_t *conn, tm_source_t *src,
                           const char *name)
{
    if (p->nsources >= TM_MAX_NODES)
        return TM_EINVAL;
    tm_source_ctx_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return TM_ENOMEM;
    c->p = p;
    c->idx = p->nsources;
    c->conn = conn;
    c->src = src;
    c->name = strdup(name);
    c->wslot = -1;
    atomic_init(&c->watermark_us, INT64_MIN);
    p->sources[p->nsources] = c;
    return p->nsources++;
}

int tm_pipeline_add_sink(tm_pipeline_t *p, const tm_connector_t *conn, tm_sink_t *sink,
                         const char *name)
{
    if (p->nsinks >= TM_MAX_NODES)
        return TM_EINVAL;
    tm_sink_node_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return TM_ENOMEM;
    if (tm_queue_init(&s->queue, TM_QUEUE_CAPACITY) != 0) {
        free(s);
        return TM_ENOMEM;
    }
    s->p = p;
    s->idx = p->nsinks;
    s->conn = conn;
    s->sink = sink;
    s->name = strdup(name);
    p->sinks[p->nsinks] = s;
    return p->nsinks++;
}

/* A new edge from source `src_idx`'s tokens into sink `sink_idx`'s queue. */
static int new_edge(tm_pipeline_t *p, int src_idx, int sink_idx)
{
    tm_source_ctx_t *c = p->sources[src_idx];
    tm_sink_node_t *s = p->sinks[sink_idx];
    if (p->nedges >= (int)(sizeof(p->edges) / sizeof(p->edges[0])) || s->nedges >= TM_MAX_NODES ||
        c->naedges >= (int)(sizeof(c->aedges) / sizeof(c->aedges[0])))
        return TM_EINVAL;
    tm_edge_t *e = &p->edges[p->nedges];
    e->src = src_idx;
    e->sink = sink_idx;
    e->slot = s->nedges;
    atomic_init(&e->durable_token, 0);
    atomic_init(&e->synced_id, 0);
    c->aedges[c->naedges++] = p->nedges;
    s->edges[s->nedges++] = p->nedges;
    return p->nedges++;
}

int tm_pipeline_connect(tm_pipeline_t *p, int src_idx, int sink_idx)
{
    if (src_idx >= p->nsources || sink_idx >= p->nsinks ||
        p->sources[src_idx]->nedges >= TM_MAX_NODES)
        return TM_EINVAL;
    int e = new_edge(p, src_idx, sink_idx);
    if (e >= 0)
        p->sources[src_idx]->edges[p->sources[src_idx]->nedges++] = e;
    return e;
}

static void *worker_main(void *arg);

int tm_pipeline_set_workers(tm_pipeline_t *p, tm_store_t *const *stores, int n)
{
    if (n <= 0 || n > TM_MAX_WORKERS || p->nworkers != 0)
        return TM_EINVAL;
    int maxp = tm_store_max_parallelism(stores[0]);
    for (int w = 0; w < n; w++) {
        tm_worker_t *wk = calloc(1, sizeof(*wk));
        if (wk == NULL || tm_queue_init(&wk->queue, TM_QUEUE_CAPACITY) != 0) {
            free(wk);
            return TM_ENOMEM;
        }
        wk->p = p;
        wk->idx = w;
        wk->store = stores[w];
        for (int i = 0; i < TM_MAX_NODES; i++)
            wk->wm_in[i] = INT64_MIN;
        wk->wm_out = INT64_MIN;
        tm_keygroup_range(w, n, maxp, &wk->kg_first, &wk->kg_last);
        p->workers[p->nworkers++] = wk;
    }
    return 0;
}

int tm_pipeline_connect_upsert(tm_pipeline_t *p, int src_idx, int sink_idx, const char *uid,
                               char *errstr, size_t errstr_size)
{
    if (p->nworkers == 0 || p->nsconns >= TM_MAX_NODES || src_idx >= p->nsources ||
        sink_idx >= p->nsinks)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "too many stateful connections");
    tm_sconn_t *sc = &p->sconns[p->nsconns];
    tm_source_ctx_t *c = p->sources[src_idx];
    sc->src = src_idx;
    sc->sink = sink_idx;
    sc->uid = strdup(uid);
    sc->edge0 = p->nedges;
    for (int w = 0; w < p->nworkers; w++) {
        tm_worker_t *wk = p->workers[w];
        int rc = new_edge(p, src_idx, sink_idx);
        if (rc < 0)
            return tm_seterr(errstr, errstr_size, rc, "too many connections for one job");
        rc = tm_upsert_new(wk->store, uid, 0, &wk->ops[p->nsconns], errstr, errstr_size);
        if (rc != 0)
            return rc;
        tm_upsert_set_owner(wk->ops[p->nsconns], wk->kg_first, wk->kg_last, w == 0);
    }
    if (c->wslot < 0)
        c->wslot = p->wsources++;
    p->nsconns++;
    return 0;
}

void tm_pipeline_set_state_checkpoint_dir(tm_pipeline_t *p, const char *chk_root)
{
    free(p->chk_root);
    p->chk_root = chk_root ? strdup(chk_root) : NULL;
}

int tm_pipeline_nworkers(const tm_pipeline_t *p)
{
    return p->nworkers;
}

void tm_pipeline_worker_info(const tm_pipeline_t *p, int w, int *kg_first, int *kg_last,
                             tm_store_checkpoint_info_t *chk)
{
    *kg_first = p->workers[w]->kg_first;
    *kg_last = p->workers[w]->kg_last;
    if (chk != NULL)
        *chk = p->workers[w]->chk;
}

int tm_pipeline_max_parallelism(const tm_pipeline_t *p)
{
    return p->nworkers > 0 ? tm_store_max_parallelism(p->workers[0]->store) : 0;
}

int tm_pipeline_nupserts(const tm_pipeline_t *p)
{
    return p->nsconns;
}

const char *tm_pipeline_upsert_uid(const tm_pipeline_t *p, int i)
{
    return p->sconns[i].uid;
}

void tm_pipeline_set_decision_log(tm_pipeline_t *p, int sink_idx)
{
    p->dl = sink_idx;
}

/* Records the first error of the job and asks everything to stop. */
static void pipeline_fail(tm_pipeline_t *p, int rc, const char *who, const char *msg)
{
    pthread_mutex_lock(&p->err_lock);
    if (p->first_rc == 0) {
        p->first_rc = rc;
        snprintf(p->first_err, sizeof(p->first_err), "%.100s: %.900s", who, msg);
    }
    pthread_mutex_unlock(&p->err_lock);
    atomic_store(&p->stop, true);
}

void tm_pipeline_request_stop(tm_pipeline_t *p)
{
    atomic_store(&p->stop, true);
}

bool tm_pipeline_done(tm_pipeline_t *p)
{
    return atomic_load(&p->running) == 0;
}

/* ---- barrier alignment (thread: the sink's or worker's) ---- */

/*
 * Holds `ev` back if its input already delivered the barrier being aligned.
 * Returns 1 (held: the aligner owns it), 0 (process it now) or TM_ENOMEM
 * (the event was released; the caller must fail the job).
 */
static int align_hold(tm_align_t *a, tm_event_t *ev)
{
    if (a->aligning == 0 || !a->got[ev->producer] || ev->kind == TM_EV_END)
        return 0;
    if (a->nheld == a->capheld) {
        int ncap = a->capheld ? a->capheld * 2 : 16;
        tm_event_t *h = realloc(a->held, sizeof(*h) * (size_t)ncap);
        if (h == NULL) {
            tm_event_release(ev);
            return TM_ENOMEM;
        }
        a->held = h;
        a->capheld = ncap;
    }
    a->held[a->nheld++] = *ev;
    return 1;
}

/* Barrier `id` from `producer`; returns id once all `ninputs` delivered it, else 0. */
static uint64_t align_barrier(tm_align_t *a, int producer, uint64_t id, int ninputs)
{
    if (a->aligning == 0) {
        a->aligning = id;
        memset(a->got, 0, sizeof(a->got));
        a->ngot = 0;
    }
    a->got[producer] = true;
    if (++a->ngot < ninputs)
        return 0;
    a->aligning = 0;
    return id;
}

/* Hands the held events to the caller (to replay in order, then free). */
static tm_event_t *align_take(tm_align_t *a, int *n)
{
    tm_event_t *held = a->held;
    *n = a->nheld;
    a->held = NULL;
    a->nheld = a->capheld = 0;
    return held;
}

static void align_drop(tm_align_t *a)
{
    for (int i = 0; i < a->nheld; i++)
        tm_event_release(&a->held[i]);
    free(a->held);
    a->held = NULL;
    a->nheld = a->capheld = 0;
}

/* ---- source side (thread: source) ---- */

bool tm_source_should_stop(const tm_source_ctx_t *ctx)
{
    return atomic_load(&ctx->p->stop);
}

const char *tm_source_name(const tm_source_ctx_t *ctx)
{
    return ctx->name;
}

/* A source's outputs: its direct sink edges, then every worker (if it feeds them). */
static int ntargets(const tm_source_ctx_t *ctx)
{
    return ctx->nedges + (ctx->wslot >= 0 ? ctx->p->nworkers : 0);
}

static tm_queue_t *target(const tm_source_ctx_t *ctx, int t, int *producer)
{
    tm_pipeline_t *p = ctx->p;
    if (t < ctx->nedges) {
        tm_edge_t *e = &p->edges[ctx->edges[t]];
        *producer = e->slot;
        return &p->sinks[e->sink]->queue;
    }
    *producer = ctx->wslot;
    return &p->workers[t - ctx->nedges]->queue;
}

int tm_source_emit(tm_source_ctx_t *ctx, tm_batch_t *batch, int timeout_ms)
{
    tm_pipeline_t *p = ctx->p;
    if (ctx->pending != batch) {
        ctx->pending = batch;
        ctx->pending_next = 0;
    }
    while (ctx->pending_next < ntargets(ctx)) {
        if (atomic_load(&p->stop))
            return TM_ESTOPPED;
        tm_event_t ev = {.kind = TM_EV_BATCH};
        tm_queue_t *q = target(ctx, ctx->pending_next, &ev.producer);
        ev.u.batch = tm_batch_ref(batch);
        if (tm_queue_push(q, &ev, timeout_ms) != 0) {
            tm_batch_unref(batch);
            return TM_EAGAIN;
        }
        ctx->pending_next++;
    }
    atomic_fetch_add_explicit(&ctx->events, batch->count, memory_order_relaxed);
    if (batch->ack_token > ctx->last_token)
        ctx->last_token = batch->ack_token;
    ctx->pending = NULL;
    tm_batch_unref(batch);
    return 0;
}

int tm_source_emit_schema(tm_source_ctx_t *ctx, tm_schema_t *schema, int timeout_ms)
{
    tm_pipeline_t *p = ctx->p;
    int64_t deadline = tm_mono_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    /* Like tm_source_emit(): a retry resumes at the first queue not yet served. */
    if (ctx->pending_schema != schema) {
        ctx->pending_schema = schema;
        ctx->pending_schema_next = 0;
    }
    while (ctx->pending_schema_next < ntargets(ctx)) {
        tm_event_t ev = {.kind = TM_EV_SCHEMA_CHANGE};
        tm_queue_t *q = target(ctx, ctx->pending_schema_next, &ev.producer);
        ev.u.schema = tm_schema_ref(schema);
        if (tm_queue_push(q, &ev, 50) == 0) {
            ctx->pending_schema_next++;
            continue;
        }
        tm_schema_unref(schema);
        if (atomic_load(&p->stop))
            return TM_ESTOPPED;
        if (timeout_ms >= 0 && tm_mono_ms() >= deadline)
            return TM_EAGAIN;
    }
    ctx->pending_schema = NULL;
    return 0;
}

uint64_t tm_source_barrier_due(const tm_source_ctx_t *ctx)
{
    uint64_t req = atomic_load(&ctx->p->barrier_req);
    return req > ctx->bar_done ? req : 0;
}

int tm_source_emit_barrier(tm_source_ctx_t *ctx, uint64_t id, uint64_t token, const char *position,
                           int timeout_ms)
{
    tm_pipeline_t *p = ctx->p;
    if (ctx->bar_pending_id != id) {
        ctx->bar_pending_id = id;
        ctx->bar_pending_next = 0;
        /* Recorded before the barrier is pushed: the queue orders it for the coordinator. */
        ctx->bar_token = token;
        /*
         * Read by the coordinator only after every sink pre-committed this
         * barrier, and the next barrier is requested only after that.
         */
        char *copy = strdup(position ? position : "");
        if (copy == NULL)
            return TM_ENOMEM;
        free(ctx->bar_position);
        ctx->bar_position = copy;
    }
    while (ctx->bar_pending_next < ntargets(ctx)) {
        if (atomic_load(&p->stop))
            return TM_ESTOPPED;
        tm_event_t ev = {.kind = TM_EV_BARRIER};
        tm_queue_t *q = target(ctx, ctx->bar_pending_next, &ev.producer);
        ev.u.id = id;
        if (tm_queue_push(q, &ev, timeout_ms) != 0)
            return TM_EAGAIN;
        ctx->bar_pending_next++;
    }
    ctx->bar_done = id;
    return 0;
}

int tm_source_emit_watermark(tm_source_ctx_t *ctx, int64_t ts_us, int timeout_ms)
{
    tm_pipeline_t *p = ctx->p;
    if (ctx->wm_pending_active && ts_us <= ctx->wm_pending) {
        /* Some targets may already have the one in flight: finish it, never go below it. */
        ts_us = ctx->wm_pending;
    } else {
        /* Watermarks only move forward; a stale one is dropped, not an error. */
        if (ts_us <= atomic_load(&ctx->watermark_us))
            return 0;
        /*
         * A newer value after TM_EAGAIN restarts the fan-out: targets that
         * already got the older one get the newer one too, so every target
         * still sees a monotonic sequence.
         */
        ctx->wm_pending_active = true;
        ctx->wm_pending = ts_us;
        ctx->wm_pending_next = 0;
    }
    while (ctx->wm_pending_next < ntargets(ctx)) {
        if (atomic_load(&p->stop))
            return TM_ESTOPPED;
        tm_event_t ev = {.kind = TM_EV_WATERMARK};
        tm_queue_t *q = target(ctx, ctx->wm_pending_next, &ev.producer);
        ev.u.ts_us = ts_us;
        if (tm_queue_push(q, &ev, timeout_ms) != 0)
            return TM_EAGAIN;
        ctx->wm_pending_next++;
    }
    ctx->wm_pending_active = false;
    atomic_store(&ctx->watermark_us, ts_us);
    return 0;
}

uint64_t tm_source_acked(const tm_source_ctx_t *ctx)
{
    uint64_t min = UINT64_MAX;
    for (int i = 0; i < ctx->naedges; i++) {
        uint64_t t = atomic_load(&ctx->p->edges[ctx->aedges[i]].durable_token);
        if (t < min)
            min = t;
    }
    return ctx->naedges ? min : ctx->last_token;
}

int tm_source_sync(tm_source_ctx_t *ctx, int timeout_ms)
{
    tm_pipeline_t *p = ctx->p;
    uint64_t id = ++ctx->sync_seq;
    int64_t deadline = tm_mono_ms() + timeout_ms;
    for (int t = 0; t < ntargets(ctx); t++) {
        tm_event_t ev = {.kind = TM_EV_SYNC};
        tm_queue_t *q = target(ctx, t, &ev.producer);
        ev.u.id = id;
        while (tm_queue_push(q, &ev, 50) != 0) {
            if (tm_mono_ms() >= deadline)
                return TM_EAGAIN;
            if (tm_pipeline_error(p) != 0)
                return TM_ESTOPPED;
        }
    }
    /* Workers pass SYNC on to their edges, so every edge of this source reports it. */
    for (;;) {
        bool all = true;
        for (int i = 0; i < ctx->naedges; i++)
            if (atomic_load(&p->edges[ctx->aedges[i]].synced_id) < id)
                all = false;
        if (all)
            return 0;
        if (tm_mono_ms() >= deadline)
            return TM_EAGAIN;
        if (tm_pipeline_error(p) != 0)
            return TM_ESTOPPED;
        usleep(5000);
    }
}

void tm_source_set_ready(tm_source_ctx_t *ctx, bool ready)
{
    atomic_store(&ctx->ready, ready);
}

void tm_source_count(tm_source_ctx_t *ctx, uint64_t events, uint64_t bytes)
{
    /* Events are already counted by tm_source_emit(); only bytes read are new here. */
    (void)events;
    atomic_fetch_add_explicit(&ctx->bytes, bytes, memory_order_relaxed);
}

static void *source_main(void *arg)
{
    tm_source_ctx_t *ctx = arg;
    tm_pipeline_t *p = ctx->p;
    ctx->rc = ctx->conn->source_run(ctx->src, ctx, ctx->err, sizeof(ctx->err));
    if (ctx->rc != 0 && ctx->rc != TM_ESTOPPED) {
        if (ctx->err[0] == '\0')
            snprintf(ctx->err, sizeof(ctx->err), "%s", tm_strerror(ctx->rc));
        pipeline_fail(p, ctx->rc, ctx->name, ctx->err);
    }
    /* A source that ends (initial_only, or an error) still tells its sinks and workers. */
    for (int t = 0; t < ntargets(ctx); t++) {
        tm_event_t ev = {.kind = TM_EV_END};
        tm_queue_t *q = target(ctx, t, &ev.producer);
        tm_queue_push(q, &ev, -1);
    }
    atomic_fetch_sub(&p->running, 1);
    return NULL;
}

/* ---- sink side (thread: sink) ---- */

/* A write not yet durable, under sink_acked: which edge's token it carries. */
typedef struct pending_ack {
    uint64_t write; /* its number, from 1 */
    int edge;
    uint64_t token;
} pending_ack_t;

typedef struct sink_loop {
    tm_sink_node_t *s;
    bool dirty;
    bool failed;
    int ended;
    int64_t last_flush;
    /* sink_acked: writes so far, and those not acknowledged yet (in order). */
    bool async_acks;
    uint64_t writes;
    pending_ack_t *acks;
    size_t acks_head, acks_len, acks_cap;
} sink_loop_t;

static void sink_fail(sink_loop_t *l, int rc)
{
    if (l->failed)
        return;
    l->failed = true;
    pipeline_fail(l->s->p, rc, l->s->name, l->s->err);
}

/*
 * Makes what was written durable.  Under TM_ACK_SINK_DURABLE this is also
 * where acknowledgement happens: only now may the sources acknowledge what
 * these batches carried.
 */
static void sink_flush(sink_loop_t *l)
{
    tm_sink_node_t *s = l->s;
    tm_pipeline_t *p = s->p;
    l->last_flush = tm_mono_ms();
    if (!l->dirty || l->failed)
        return;
    int rc = s->conn->sink_flush ? s->conn->sink_flush(s->sink, s->err, sizeof(s->err)) : 0;
    if (rc != 0) {
        sink_fail(l, rc);
        return;
    }
    if (p->policy == TM_ACK_SINK_DURABLE) {
        for (int i = 0; i < s->nedges; i++) {
            tm_edge_t *e = &p->edges[s->edges[i]];
            atomic_store(&e->durable_token, e->pending_token);
        }
    }
    l->acks_head = l->acks_len = 0; /* every write is durable now */
    l->dirty = false;
}

/* Remembers that write number `write` carried `token` of edge `edge` (sink_acked). */
static int ack_track(sink_loop_t *l, int edge, uint64_t token)
{
    if (l->acks_len == l->acks_cap) {
        size_t ncap = l->acks_cap ? l->acks_cap * 2 : 64;
        pending_ack_t *n = malloc(ncap * sizeof(*n));
        if (n == NULL)
            return TM_ENOMEM;
        for (size_t i = 0; i < l->acks_len; i++)
            n[i] = l->acks[(l->acks_head + i) % l->acks_cap];
        free(l->acks);
        l->acks = n;
        l->acks_cap = ncap;
        l->acks_head = 0;
    }
    pending_ack_t *a = &l->acks[(l->acks_head + l->acks_len++) % l->acks_cap];
    a->write = l->writes;
    a->edge = edge;
    a->token = token;
    return 0;
}

/* Acknowledges the sources' tokens of the writes the sink reports durable. */
static void ack_poll(sink_loop_t *l)
{
    tm_sink_node_t *s = l->s;
    uint64_t durable = 0;
    int rc = s->conn->sink_acked(s->sink, &durable, s->err, sizeof(s->err));
    if (rc != 0) {
        sink_fail(l, rc);
        return;
    }
    while (l->acks_len > 0 && l->acks[l->acks_head].write <= durable) {
        pending_ack_t *a = &l->acks[l->acks_head];
        tm_edge_t *e = &s->p->edges[a->edge];
        /* Tokens grow per edge; a sync's flush may already have gone further. */
        if (a->token > atomic_load(&e->durable_token))
            atomic_store(&e->durable_token, a->token);
        l->acks_head = (l->acks_head + 1) % l->acks_cap;
        l->acks_len--;
    }
}

/* Checkpoint `id` is complete: sources may acknowledge its tokens, sinks commit it. */
static void pipeline_publish(tm_pipeline_t *p, uint64_t id)
{
    for (int i = 0; i < p->nsources; i++) {
        tm_source_ctx_t *c = p->sources[i];
        for (int k = 0; k < c->naedges; k++)
            atomic_store(&p->edges[c->aedges[k]].durable_token, c->bar_token);
    }
    atomic_store(&p->completed, id);
}

/*
 * Commits the newest completed checkpoint this sink has pre-committed.  The
 * decision-log sink commits first, alone, when its checkpoint's _metadata is
 * pending; its commit completes the checkpoint for everyone else.
 */
static void sink_commit_completed(sink_loop_t *l)
{
    tm_sink_node_t *s = l->s;
    tm_pipeline_t *p = s->p;
    bool dl = s->idx == p->dl;
    uint64_t done = atomic_load(dl ? &p->deciding : &p->completed);
    if (done <= s->committed_local || atomic_load(&s->precommitted) < done)
        return;
    if (!l->failed && s->conn->sink_commit != NULL) {
        tm_failpoint("sink.before_commit");
        int rc = s->conn->sink_commit(s->sink, done, dl ? p->progress : NULL, s->err,
                                      sizeof(s->err));
        if (rc != 0) {
            sink_fail(l, rc);
            return;
        }
        tm_failpoint("sink.after_commit");
    }
    s->committed_local = done;
    atomic_store(&s->committed, done);
    if (dl && !l->failed)
        pipeline_publish(p, done);
}

/* Barrier `id` has arrived on every input: pre-commit the epoch it closes. */
static void sink_barrier_aligned(sink_loop_t *l, uint64_t id)
{
    tm_sink_node_t *s = l->s;
    tm_buf_clear(&s->handle);
    if (!l->failed) {
        if (s->conn->sink_precommit != NULL) {
            int rc = s->conn->sink_precommit(s->sink, id, &s->handle, s->err, sizeof(s->err));
            if (rc != 0)
                sink_fail(l, rc);
            l->dirty = false;
            tm_failpoint("sink.after_precommit");
        } else {
            l->dirty = true;
            sink_flush(l);
        }
    }
    if (!l->failed)
        atomic_store(&s->precommitted, id);
}

static void sink_handle(sink_loop_t *l, tm_event_t *ev)
{
    tm_sink_node_t *s = l->s;
    tm_pipeline_t *p = s->p;
    tm_edge_t *e = &p->edges[s->edges[ev->producer]];
    int held = align_hold(&s->align, ev);
    if (held != 0) {
        if (held < 0) {
            snprintf(s->err, sizeof(s->err), "out of memory while aligning a barrier");
            sink_fail(l, held);
        }
        return;
    }
    switch (ev->kind) {
    case TM_EV_BATCH:
        if (!l->failed) {
            int rc = s->conn->sink_write(s->sink, ev->u.batch, s->err, sizeof(s->err));
            if (rc != 0)
                sink_fail(l, rc);
            l->writes++;
        }
        if (ev->u.batch->ack_token > e->pending_token)
            e->pending_token = ev->u.batch->ack_token;
        if (l->async_acks && !l->failed &&
            ack_track(l, s->edges[ev->producer], e->pending_token) != 0) {
            snprintf(s->err, sizeof(s->err), "out of memory while tracking acknowledgements");
            sink_fail(l, TM_ENOMEM);
        }
        l->dirty = true;
        break;
    case TM_EV_SYNC:
        sink_flush(l);
        atomic_store(&e->synced_id, ev->u.id);
        break;
    case TM_EV_BARRIER: {
        uint64_t id = align_barrier(&s->align, ev->producer, ev->u.id, s->nedges);
        if (id != 0) {
            sink_barrier_aligned(l, id);
            /* Release what was held back, in arrival order. */
            int n;
            tm_event_t *held = align_take(&s->align, &n);
            for (int i = 0; i < n; i++)
                sink_handle(l, &held[i]);
            free(held);
        }
        break;
    }
    case TM_EV_END:
        l->ended++;
        break;
    case TM_EV_WATERMARK:
        /* No sink reads event time yet; held ones were replayed in order like any event. */
        break;
    default:
        break;
    }
    tm_event_release(ev);
}

/* See sink_main: events a decision-log sink takes while its commit is pending. */
#define DL_PENDING_MAX TM_QUEUE_CAPACITY

static void *sink_main(void *arg)
{
    tm_sink_node_t *s = arg;
    tm_pipeline_t *p = s->p;
    sink_loop_t l = {.s = s, .last_flush = tm_mono_ms()};
    /*
     * Periodic flushes acknowledge, or (without 2PC) at least make output
     * visible; a sink that reports durability itself (sink_acked) is asked
     * instead, without blocking.
     */
    l.async_acks = p->policy == TM_ACK_SINK_DURABLE && s->conn->sink_acked != NULL;
    bool timed_flush =
        !l.async_acks && (p->policy == TM_ACK_SINK_DURABLE || s->conn->sink_precommit == NULL);
    int64_t last_ack_poll = 0;
    /* Events taken since this decision-log sink pre-committed, before it committed. */
    int taken_pending = 0;

    while (l.ended < s->nedges) {
        int wait = l.async_acks && l.acks_len > 0 ? 20 : 100;
        if (l.dirty && timed_flush) {
            int64_t left = l.last_flush + p->flush_ms - tm_mono_ms();
            wait = left > 0 ? (int)(left < 100 ? left : 100) : 0;
        }
        sink_commit_completed(&l);
        if (s->idx == p->dl && atomic_load(&s->precommitted) > s->committed_local &&
            !l.failed && !atomic_load(&p->stop) && tm_pipeline_error(p) == 0) {
            /*
             * Between pre-commit and commit the decision-log sink (Kafka) can
             * only hold what arrives in memory, for as long as _metadata
             * takes to reach the disk: take at most DL_PENDING_MAX events,
             * then leave the rest in the queue, which back-pressures the
             * sources, so that a slow fsync cannot grow the daemon without
             * bound.
             */
            if (taken_pending >= DL_PENDING_MAX) {
                usleep(1000);
                continue;
            }
        } else {
            taken_pending = 0;
        }
        tm_event_t ev;
        if (tm_queue_pop(&s->queue, &ev, wait) == 0) {
            sink_handle(&l, &ev);
            taken_pending++;
        } else if (!l.failed && s->conn->sink_poll != NULL) {
            int rc = s->conn->sink_poll(s->sink, s->err, sizeof(s->err));
            if (rc != 0)
                sink_fail(&l, rc);
        }
        if (l.async_acks && !l.failed && l.acks_len > 0 && tm_mono_ms() - last_ack_poll >= 20) {
            last_ack_poll = tm_mono_ms();
            ack_poll(&l);
        }
        if (timed_flush && l.dirty && tm_mono_ms() - l.last_flush >= p->flush_ms)
            sink_flush(&l);
    }
    if (timed_flush || l.async_acks)
        sink_flush(&l);
    sink_commit_completed(&l);
    align_drop(&s->align);
    free(l.acks);
    atomic_fetch_sub(&p->running, 1);
    return NULL;
}

/* ---- workers (thread: worker) ---- */

static void worker_fail(tm_worker_t *wk, int rc)
{
    if (wk->failed)
        return;
    wk->failed = true;
    char who[32];
    snprintf(who, sizeof(who), "worker %d", wk->idx);
    if (wk->err[0] == '\0')
        snprintf(wk->err, sizeof(wk->err), "%s", tm_strerror(rc));
    pipeline_fail(wk->p, rc, who, wk->err);
}

/* Pushes onto an edge's sink queue; sinks always drain, so this cannot wait forever. */
static void worker_push(tm_worker_t *wk, int edge, tm_event_t *ev)
{
    tm_pipeline_t *p = wk->p;
    tm_edge_t *e = &p->edges[edge];
    ev->producer = e->slot;
    tm_queue_push(&p->sinks[e->sink]->queue, ev, -1);
}

/* Sends a control event (barrier, sync, end) to this worker's edges of source `src` (-1: all). */
static void worker_broadcast(tm_worker_t *wk, int src, tm_event_kind_t kind, uint64_t id)
{
    tm_pipeline_t *p = wk->p;
    for (int c = 0; c < p->nsconns; c++) {
        if (src >= 0 && p->sconns[c].src != src)
            continue;
        tm_event_t ev = {.kind = kind};
        ev.u.id = id;
        worker_push(wk, p->sconns[c].edge0 + wk->idx, &ev);
    }
}

/*
 * Input slot `slot` moved its watermark to `ts_us` (INT64_MAX: it ended).
 * The worker's own watermark is the minimum over its inputs (DESIGN §4); it
 * is passed on to every edge when it advances.  Nothing after the workers
 * reads it yet: sinks release watermark events unread.
 */
static void worker_watermark(tm_worker_t *wk, int slot, int64_t ts_us)
{
    tm_pipeline_t *p = wk->p;
    if (slot < 0 || slot >= TM_MAX_NODES || ts_us <= wk->wm_in[slot])
        return;
    wk->wm_in[slot] = ts_us;
    int64_t min = INT64_MAX;
    for (int i = 0; i < p->wsources; i++)
        if (wk->wm_in[i] < min)
            min = wk->wm_in[i];
    /* INT64_MIN: an input has none yet; INT64_MAX: every input ended. */
    if (min == INT64_MIN || min == INT64_MAX || min <= wk->wm_out)
        return;
    wk->wm_out = min;
    for (int c = 0; c < p->nsconns; c++) {
        tm_event_t ev = {.kind = TM_EV_WATERMARK};
        ev.u.ts_us = min;
        worker_push(wk, p->sconns[c].edge0 + wk->idx, &ev);
    }
}

static void worker_batch(tm_worker_t *wk, int src, const tm_batch_t *in)
{
    tm_pipeline_t *p = wk->p;
    for (int c = 0; c < p->nsconns; c++) {
        if (p->sconns[c].src != src)
            continue;
        uint32_t start = 0;
        bool sent = false;
        do {
            tm_batch_t *out = tm_batch_new();
            if (out == NULL) {
                snprintf(wk->err, sizeof(wk->err), "out of memory");
                worker_fail(wk, TM_ENOMEM);
                return;
            }
            out->ack_token = in->ack_token;
            int n = (int)(in->count - start);
            if (!wk->failed)
                n = tm_upsert_process(wk->ops[c], in, start, out, wk->err, sizeof(wk->err));
            if (n < 0) {
                worker_fail(wk, n);
                n = (int)(in->count - start);
            }
            start += (uint32_t)n;
            /*
             * Under sink-durable acknowledgement every input batch yields at
             * least one (maybe empty) batch, so its token reaches the sinks
             * even when everything in it was a duplicate.
             */
            if (out->count > 0 || (!sent && p->policy == TM_ACK_SINK_DURABLE)) {
                tm_event_t ev = {.kind = TM_EV_BATCH};
                ev.u.batch = out;
                worker_push(wk, p->sconns[c].edge0 + wk->idx, &ev);
                sent = true;
            } else {
                tm_batch_unref(out);
            }
        } while (start < in->count);
    }
}

/* Snapshots the worker's store for checkpoint `id` (DESIGN §6 step 2). */
static void worker_snapshot(tm_worker_t *wk, uint64_t id)
{
    tm_pipeline_t *p = wk->p;
    if (wk->failed || p->chk_root == NULL || p->policy != TM_ACK_CHECKPOINT)
        return;
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/chk-%" PRIu64 "/state/worker-%d", p->chk_root, id, wk->idx);
    /* Left by a run that crashed before this checkpoint completed. */
    tm_rm_rf(dir);
    int rc = tm_store_checkpoint(wk->store, dir, &wk->chk, wk->err, sizeof(wk->err));
    if (rc != 0) {
        worker_fail(wk, rc);
        return;
    }
    tm_failpoint("worker.after_snapshot");
    atomic_store(&wk->snapshotted, id);
}

/* Maps a worker-queue producer slot back to its source. */
static int worker_input_source(const tm_pipeline_t *p, int slot)
{
    for (int i = 0; i < p->nsources; i++)
        if (p->sources[i]->wslot == slot)
            return i;
    return -1;
}

static void worker_handle(tm_worker_t *wk, tm_event_t *ev)
{
    tm_pipeline_t *p = wk->p;
    int held = align_hold(&wk->align, ev);
    if (held != 0) {
        if (held < 0) {
            snprintf(wk->err, sizeof(wk->err), "out of memory while aligning a barrier");
            worker_fail(wk, held);
        }
        return;
    }
    int src = worker_input_source(p, ev->producer);
    switch (ev->kind) {
    case TM_EV_BATCH:
        worker_batch(wk, src, ev->u.batch);
        break;
    case TM_EV_SYNC:
        worker_broadcast(wk, src, TM_EV_SYNC, ev->u.id);
        break;
    case TM_EV_BARRIER: {
        uint64_t id = align_barrier(&wk->align, ev->producer, ev->u.id, p->wsources);
        if (id != 0) {
            worker_snapshot(wk, id);
            worker_broadcast(wk, -1, TM_EV_BARRIER, id);
            int n;
            tm_event_t *held = align_take(&wk->align, &n);
            for (int i = 0; i < n; i++)
                worker_handle(wk, &held[i]);
            free(held);
        }
        break;
    }
    case TM_EV_WATERMARK:
        worker_watermark(wk, ev->producer, ev->u.ts_us);
        break;
    case TM_EV_END:
        wk->ended++;
        /* An ended input no longer holds the others' watermark back. */
        worker_watermark(wk, ev->producer, INT64_MAX);
        break;
    default:
        break;
    }
    tm_event_release(ev);
}

static void *worker_main(void *arg)
{
    tm_worker_t *wk = arg;
    tm_pipeline_t *p = wk->p;
    while (wk->ended < p->wsources) {
        tm_event_t ev;
        if (tm_queue_pop(&wk->queue, &ev, 100) == 0)
            worker_handle(wk, &ev);
    }
    align_drop(&wk->align);
    worker_broadcast(wk, -1, TM_EV_END, 0);
    atomic_fetch_sub(&p->running, 1);
    return NULL;
}

/* ---- checkpoint coordination (thread: main) ---- */

void tm_pipeline_set_ack_policy(tm_pipeline_t *p, tm_ack_policy_t policy)
{
    p->policy = policy;
}

void tm_pipeline_request_barrier(tm_pipeline_t *p, uint64_t id)
{
    atomic_store(&p->barrier_req, id);
}

bool tm_pipeline_precommitted(tm_pipeline_t *p, uint64_t id)
{
    for (int i = 0; i < p->nsinks; i++)
        if (atomic_load(&p->sinks[i]->precommitted) < id)
            return false;
    return true;
}

bool tm_pipeline_committed(tm_pipeline_t *p, uint64_t id)
{
    for (int i = 0; i < p->nsinks; i++)
        if (atomic_load(&p->sinks[i]->committed) < id)
            return false;
    return true;
}

int tm_pipeline_nsources(const tm_pipeline_t *p)
{
    return p->nsources;
}

int tm_pipeline_nsinks(const tm_pipeline_t *p)
{
    return p->nsinks;
}

const char *tm_pipeline_source_name(const tm_pipeline_t *p, int i)
{
    return p->sources[i]->name;
}

const char *tm_pipeline_sink_name(const tm_pipeline_t *p, int i)
{
    return p->sinks[i]->name;
}

uint64_t tm_pipeline_source_token(const tm_pipeline_t *p, int i)
{
    return p->sources[i]->bar_token;
}

const char *tm_pipeline_source_position(const tm_pipeline_t *p, int i)
{
    return p->sources[i]->bar_position ? p->sources[i]->bar_position : "";
}

const char *tm_pipeline_sink_handle(const tm_pipeline_t *p, int i)
{
    return p->sinks[i]->handle.data ? p->sinks[i]->handle.data : "";
}

void tm_pipeline_complete(tm_pipeline_t *p, uint64_t id, const char *progress)
{
    if (p->dl < 0) {
        pipeline_publish(p, id);
        return;
    }
    /* The decision-log sink commits first; its thread publishes (sink_commit_completed). */
    free(p->progress);
    p->progress = strdup(progress ? progress : "{}");
    atomic_store(&p->deciding, id);
}

bool tm_pipeline_sources_ready(const tm_pipeline_t *p)
{
    for (int i = 0; i < p->nsources; i++)
        if (!atomic_load(&p->sources[i]->ready))
            return false;
    return true;
}

void tm_pipeline_source_counts(const tm_pipeline_t *p, int i, uint64_t *events, uint64_t *bytes,
                               bool *ready)
{
    *events = atomic_load_explicit(&p->sources[i]->events, memory_order_relaxed);
    *bytes = atomic_load_explicit(&p->sources[i]->bytes, memory_order_relaxed);
    *ready = atomic_load(&p->sources[i]->ready);
}

bool tm_pipeline_source_watermark(const tm_pipeline_t *p, int i, int64_t *ts_us)
{
    int64_t wm = atomic_load(&p->sources[i]->watermark_us);
    *ts_us = wm;
    return wm != INT64_MIN;
}

tm_store_t *tm_pipeline_worker_store(const tm_pipeline_t *p, int w)
{
    return p->workers[w]->store;
}

int tm_pipeline_error(tm_pipeline_t *p)
{
    pthread_mutex_lock(&p->err_lock);
    int rc = p->first_rc;
    pthread_mutex_unlock(&p->err_lock);
    return rc;
}

int tm_pipeline_start(tm_pipeline_t *p, char *errstr, size_t errstr_size)
{
    /* Workers without a stateful connection have nothing to do. */
    int nworkers = p->nsconns > 0 ? p->nworkers : 0;
    atomic_store(&p->running, p->nsinks + nworkers + p->nsources);
    for (int i = 0; i < p->nsinks; i++) {
        if (pthread_create(&p->sinks[i]->thread, NULL, sink_main, p->sinks[i]) != 0) {
            atomic_fetch_sub(&p->running, p->nsinks + nworkers + p->nsources - i);
            tm_pipeline_request_stop(p);
            return tm_seterr(errstr, errstr_size, TM_ENOMEM, "cannot start sink thread");
        }
        p->sinks[i]->started = true;
    }
    for (int i = 0; i < nworkers; i++) {
        if (pthread_create(&p->workers[i]->thread, NULL, worker_main, p->workers[i]) != 0) {
            atomic_fetch_sub(&p->running, nworkers + p->nsources - i);
            tm_pipeline_request_stop(p);
            return tm_seterr(errstr, errstr_size, TM_ENOMEM, "cannot start worker thread");
        }
        p->workers[i]->started = true;
    }
    for (int i = 0; i < p->nsources; i++) {
        if (pthread_create(&p->sources[i]->thread, NULL, source_main, p->sources[i]) != 0) {
            atomic_fetch_sub(&p->running, p->nsources - i);
            tm_pipeline_request_stop(p);
            return tm_seterr(errstr, errstr_size, TM_ENOMEM, "cannot start source thread");
        }
        p->sources[i]->started = true;
    }
    return 0;
}

int tm_pipeline_join(tm_pipeline_t *p, char *errstr, size_t errstr_size)
{
    for (int i = 0; i < p->nsources; i++)
        if (p->sources[i]->started) {
            pthread_join(p->sources[i]->thread, NULL);
            p->sources[i]->started = false;
        }
    for (int i = 0; i < p->nworkers; i++)
        if (p->workers[i]->started) {
            pthread_join(p->workers[i]->thread, NULL);
            p->workers[i]->started = false;
        }
    for (int i = 0; i < p->nsinks; i++)
        if (p->sinks[i]->started) {
            pthread_join(p->sinks[i]->thread, NULL);
            p->sinks[i]->started = false;
        }
    if (p->first_rc != 0)
        tm_seterr(errstr, errstr_size, p->first_rc, "%s", p->first_err);
    return p->first_rc;
}

tm_pipeline_t *tm_pipeline_free(tm_pipeline_t *p)
{
    if (p == NULL)
        return NULL;
    for (int i = 0; i < p->nsources; i++) {
        tm_source_ctx_t *c = p->sources[i];
        if (c->conn->source_free)
            c->conn->source_free(c->src);
        free(c->bar_position);
        free(c->name);
        free(c);
    }
    for (int i = 0; i < p->nsinks; i++) {
        tm_sink_node_t *s = p->sinks[i];
        if (s->conn->sink_free)
            s->conn->sink_free(s->sink);
        tm_queue_destroy(&s->queue);
        tm_buf_release(&s->handle);
        free(s->name);
        free(s);
    }
    for (int w = 0; w < p->nworkers; w++) {
        tm_worker_t *wk = p->workers[w];
        for (int c = 0; c < p->nsconns; c++)
            tm_upsert_free(wk->ops[c]);
        tm_queue_destroy(&wk->queue);
        free(wk);
    }
    for (int c = 0; c < p->nsconns; c++)
        free(p->sconns[c].uid);
    free(p->chk_root);
    free(p->progress);
    pthread_mutex_destroy(&p->err_lock);
    free(p);
    return NULL;
}
