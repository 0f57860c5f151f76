/*
 * pipeline.c — source and sink threads, fan-out, and the ack seam
 * (see pipeline.h for the invariants).
 */
#include "runtime/pipeline.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "runtime/queue.h"

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

typedef struct tm_edge {
    int src, sink;
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
    int edges[TM_MAX_NODES];
    int nedges;
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
    char bar_position[128];
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
    /* Barrier alignment (sink thread only). */
    uint64_t aligning;
    bool got[TM_MAX_NODES];
    int ngot;
    tm_event_t *held; /* events of inputs that already delivered the barrier */
    int nheld, capheld;
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
    tm_edge_t edges[TM_MAX_NODES];
    int nedges;
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

int tm_pipeline_connect(tm_pipeline_t *p, int src_idx, int sink_idx)
{
    if (p->nedges >= TM_MAX_NODES || src_idx >= p->nsources || sink_idx >= p->nsinks)
        return TM_EINVAL;
    tm_source_ctx_t *c = p->sources[src_idx];
    tm_sink_node_t *s = p->sinks[sink_idx];
    tm_edge_t *e = &p->edges[p->nedges];
    e->src = src_idx;
    e->sink = sink_idx;
    e->slot = s->nedges;
    atomic_init(&e->durable_token, 0);
    atomic_init(&e->synced_id, 0);
    c->edges[c->nedges++] = p->nedges;
    s->edges[s->nedges++] = p->nedges;
    return p->nedges++;
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

/* ---- source side (thread: source) ---- */

bool tm_source_should_stop(const tm_source_ctx_t *ctx)
{
    return atomic_load(&ctx->p->stop);
}

const char *tm_source_name(const tm_source_ctx_t *ctx)
{
    return ctx->name;
}

int tm_source_emit(tm_source_ctx_t *ctx, tm_batch_t *batch, int timeout_ms)
{
    tm_pipeline_t *p = ctx->p;
    if (ctx->pending != batch) {
        ctx->pending = batch;
        ctx->pending_next = 0;
    }
    while (ctx->pending_next < ctx->nedges) {
        if (atomic_load(&p->stop))
            return TM_ESTOPPED;
        tm_edge_t *e = &p->edges[ctx->edges[ctx->pending_next]];
        tm_event_t ev = {.kind = TM_EV_BATCH, .producer = e->slot};
        ev.u.batch = tm_batch_ref(batch);
        if (tm_queue_push(&p->sinks[e->sink]->queue, &ev, timeout_ms) != 0) {
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
    while (ctx->pending_schema_next < ctx->nedges) {
        tm_edge_t *e = &p->edges[ctx->edges[ctx->pending_schema_next]];
        tm_event_t ev = {.kind = TM_EV_SCHEMA_CHANGE, .producer = e->slot};
        ev.u.schema = tm_schema_ref(schema);
        if (tm_queue_push(&p->sinks[e->sink]->queue, &ev, 50) == 0) {
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
        snprintf(ctx->bar_position, sizeof(ctx->bar_position), "%s", position ? position : "");
    }
    while (ctx->bar_pending_next < ctx->nedges) {
        if (atomic_load(&p->stop))
            return TM_ESTOPPED;
        tm_edge_t *e = &p->edges[ctx->edges[ctx->bar_pending_next]];
        tm_event_t ev = {.kind = TM_EV_BARRIER, .producer = e->slot};
        ev.u.id = id;
        if (tm_queue_push(&p->sinks[e->sink]->queue, &ev, timeout_ms) != 0)
            return TM_EAGAIN;
        ctx->bar_pending_next++;
    }
    ctx->bar_done = id;
    return 0;
}

uint64_t tm_source_acked(const tm_source_ctx_t *ctx)
{
    uint64_t min = UINT64_MAX;
    for (int i = 0; i < ctx->nedges; i++) {
        uint64_t t = atomic_load(&ctx->p->edges[ctx->edges[i]].durable_token);
        if (t < min)
            min = t;
    }
    return ctx->nedges ? min : ctx->last_token;
}

int tm_source_sync(tm_source_ctx_t *ctx, int timeout_ms)
{
    tm_pipeline_t *p = ctx->p;
    uint64_t id = ++ctx->sync_seq;
    int64_t deadline = tm_mono_ms() + timeout_ms;
    for (int i = 0; i < ctx->nedges; i++) {
        tm_edge_t *e = &p->edges[ctx->edges[i]];
        tm_event_t ev = {.kind = TM_EV_SYNC, .producer = e->slot};
        ev.u.id = id;
        while (tm_queue_push(&p->sinks[e->sink]->queue, &ev, 50) != 0) {
            if (tm_mono_ms() >= deadline)
                return TM_EAGAIN;
            if (tm_pipeline_error(p) != 0)
                return TM_ESTOPPED;
        }
    }
    for (;;) {
        bool all = true;
        for (int i = 0; i < ctx->nedges; i++)
            if (atomic_load(&p->edges[ctx->edges[i]].synced_id) < id)
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
    /* A source that ends (initial_only, or an error) still tells its sinks. */
    for (int i = 0; i < ctx->nedges; i++) {
        tm_edge_t *e = &p->edges[ctx->edges[i]];
        tm_event_t ev = {.kind = TM_EV_END, .producer = e->slot};
        tm_queue_push(&p->sinks[e->sink]->queue, &ev, -1);
    }
    atomic_fetch_sub(&p->running, 1);
    return NULL;
}

/* ---- sink side (thread: sink) ---- */

typedef struct sink_loop {
    tm_sink_node_t *s;
    bool dirty;
    bool failed;
    int ended;
    int64_t last_flush;
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
    l->dirty = false;
}

/* Commits the newest completed checkpoint this sink has pre-committed. */
static void sink_commit_completed(sink_loop_t *l)
{
    tm_sink_node_t *s = l->s;
    uint64_t done = atomic_load(&s->p->completed);
    if (done <= s->committed_local || atomic_load(&s->precommitted) < done)
        return;
    if (!l->failed && s->conn->sink_commit != NULL) {
        int rc = s->conn->sink_commit(s->sink, done, NULL, s->err, sizeof(s->err));
        if (rc != 0)
            sink_fail(l, rc);
    }
    s->committed_local = done;
    atomic_store(&s->committed, done);
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
        } else {
            l->dirty = true;
            sink_flush(l);
        }
    }
    if (!l->failed)
        atomic_store(&s->precommitted, id);
}

static void sink_handle(sink_loop_t *l, tm_event_t *ev);

static void sink_hold(tm_sink_node_t *s, tm_event_t *ev)
{
    if (s->nheld == s->capheld) {
        int ncap = s->capheld ? s->capheld * 2 : 16;
        tm_event_t *p = realloc(s->held, sizeof(*p) * (size_t)ncap);
        if (p == NULL) {
            tm_event_release(ev);
            return;
        }
        s->held = p;
        s->capheld = ncap;
    }
    s->held[s->nheld++] = *ev;
}

static void sink_handle(sink_loop_t *l, tm_event_t *ev)
{
    tm_sink_node_t *s = l->s;
    tm_pipeline_t *p = s->p;
    tm_edge_t *e = &p->edges[s->edges[ev->producer]];
    /*
     * Alignment: an input that already delivered the barrier is held back
     * until every input has, so that nothing after the barrier lands in the
     * epoch it closes.
     */
    if (s->aligning != 0 && s->got[ev->producer] && ev->kind != TM_EV_END) {
        sink_hold(s, ev);
        return;
    }
    switch (ev->kind) {
    case TM_EV_BATCH:
        if (!l->failed) {
            int rc = s->conn->sink_write(s->sink, ev->u.batch, s->err, sizeof(s->err));
            if (rc != 0)
                sink_fail(l, rc);
        }
        if (ev->u.batch->ack_token > e->pending_token)
            e->pending_token = ev->u.batch->ack_token;
        l->dirty = true;
        break;
    case TM_EV_SYNC:
        sink_flush(l);
        atomic_store(&e->synced_id, ev->u.id);
        break;
    case TM_EV_BARRIER:
        if (s->aligning == 0) {
            s->aligning = ev->u.id;
            memset(s->got, 0, sizeof(s->got));
            s->ngot = 0;
        }
        s->got[ev->producer] = true;
        s->ngot++;
        if (s->ngot == s->nedges) {
            uint64_t id = s->aligning;
            s->aligning = 0;
            sink_barrier_aligned(l, id);
            /* Release what was held back, in arrival order. */
            tm_event_t *held = s->held;
            int nheld = s->nheld;
            s->held = NULL;
            s->nheld = s->capheld = 0;
            for (int i = 0; i < nheld; i++)
                sink_handle(l, &held[i]);
            free(held);
        }
        break;
    case TM_EV_END:
        l->ended++;
        break;
    default:
        break;
    }
    tm_event_release(ev);
}

static void *sink_main(void *arg)
{
    tm_sink_node_t *s = arg;
    tm_pipeline_t *p = s->p;
    sink_loop_t l = {.s = s, .last_flush = tm_mono_ms()};
    /* Periodic flushes acknowledge, or (without 2PC) at least make output visible. */
    bool timed_flush = p->policy == TM_ACK_SINK_DURABLE || s->conn->sink_precommit == NULL;

    while (l.ended < s->nedges) {
        int wait = 100;
        if (l.dirty && timed_flush) {
            int64_t left = l.last_flush + p->flush_ms - tm_mono_ms();
            wait = left > 0 ? (int)(left < 100 ? left : 100) : 0;
        }
        sink_commit_completed(&l);
        tm_event_t ev;
        if (tm_queue_pop(&s->queue, &ev, wait) == 0)
            sink_handle(&l, &ev);
        if (timed_flush && l.dirty && tm_mono_ms() - l.last_flush >= p->flush_ms)
            sink_flush(&l);
    }
    if (timed_flush)
        sink_flush(&l);
    sink_commit_completed(&l);
    for (int i = 0; i < s->nheld; i++)
        tm_event_release(&s->held[i]);
    s->nheld = 0;
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
    return p->sources[i]->bar_position;
}

const char *tm_pipeline_sink_handle(const tm_pipeline_t *p, int i)
{
    return p->sinks[i]->handle.data ? p->sinks[i]->handle.data : "";
}

void tm_pipeline_complete(tm_pipeline_t *p, uint64_t id)
{
    /* The tokens recorded with barrier `id` are now covered by a completed checkpoint. */
    for (int i = 0; i < p->nsources; i++) {
        tm_source_ctx_t *c = p->sources[i];
        for (int k = 0; k < c->nedges; k++)
            atomic_store(&p->edges[c->edges[k]].durable_token, c->bar_token);
    }
    atomic_store(&p->completed, id);
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
    atomic_store(&p->running, p->nsinks + p->nsources);
    for (int i = 0; i < p->nsinks; i++) {
        if (pthread_create(&p->sinks[i]->thread, NULL, sink_main, p->sinks[i]) != 0) {
            atomic_fetch_sub(&p->running, p->nsinks + p->nsources - i);
            tm_pipeline_request_stop(p);
            return tm_seterr(errstr, errstr_size, TM_ENOMEM, "cannot start sink thread");
        }
        p->sinks[i]->started = true;
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
        free(c->name);
        free(c);
    }
    for (int i = 0; i < p->nsinks; i++) {
        tm_sink_node_t *s = p->sinks[i];
        if (s->conn->sink_free)
            s->conn->sink_free(s->sink);
        tm_queue_destroy(&s->queue);
        tm_buf_release(&s->handle);
        free(s->held);
        free(s->name);
        free(s);
    }
    pthread_mutex_destroy(&p->err_lock);
    free(p);
    return NULL;
}
