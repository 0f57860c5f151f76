/*
 * pipeline.c — the operator graph at run time (DESIGN §13): source threads
 * with the one source-output path, stage subtask threads running operator
 * chains, sink threads, the exchanges between them, and the ack seam (see
 * pipeline.h and graph.h for the contracts).
 *
 * Threads and queues:
 *
 *     source thread ─┬─ exchange(edge) ──► queue of stage subtask 0 ─► thread ─┬─► queue of sink
 *                    └─ exchange(edge) ──► queue of stage subtask 1 ─► thread ─┘
 *
 * Every stage subtask and every sink owns one bounded queue and one thread;
 * each event carries the consumer's input slot (one per edge and producer
 * subtask), and the consumer's input module (input.h) aligns barriers,
 * computes the watermark and counts END over those slots.
 *
 * Invariants:
 *   1. No deadlock from back-pressure: the graph is a DAG whose last hop is
 *      a sink, every consumer has its own thread, and sinks always drain
 *      (a failed sink keeps popping without writing), so a blocking push
 *      from a stage subtask always completes eventually.  Sources push with
 *      a timeout (the connector's retry contract) and stop on request.
 *   2. A producer's events reach each consumer slot in the order produced,
 *      so barriers, watermarks and END stay between the batches they
 *      separate.
 *   3. A stage subtask forwards barrier N only after its operators flushed
 *      (on_barrier) and its store was snapshotted for N; a sink pre-commits
 *      N only after every live slot delivered it.  So chk-N holds exactly
 *      the effects of the input before barrier N.
 *   4. Ack tokens travel with the data: a stage gives every output edge and
 *      consumer subtask each input batch's token after that batch's output
 *      (under TM_ACK_SINK_DURABLE), so a sink slot's durable token of a
 *      source covers everything the source emitted up to it.
 *   5. Operator instances are made on the main thread before the threads
 *      start, and then used by their subtask's thread only.
 *   6. Under on_error = 'dead-letter' with a dead-letter directory, every
 *      operator instance has its own writer (deadletter.h), used by its
 *      subtask's thread only; the subtask flushes them at each aligned
 *      barrier before its snapshot and at the end, and fails with a writer's
 *      I/O error after the batch that met it.
 *   7. Side outputs (tm_pipeline_link_side): an operator with a side edge
 *      gets ctx->side_out, whose batches are routed at once, on its
 *      subtask's thread, to the edges of that operator's side only; main
 *      batches never go there.  Control events go to every out, side edges
 *      included, so a side sink aligns barriers over the stage's subtasks
 *      like any sink and what an operator emitted to its side before a
 *      barrier belongs to that checkpoint.  A stage without side edges has
 *      no side collectors and routes exactly as before.
 *   8. A source whose run ends its input (returns 0, not stopping) sends
 *      the end-of-time watermark, and with checkpoints the next barrier at
 *      its final position (tm_source_finished), and waits until that
 *      checkpoint completed before END: so every operator flushed what the
 *      input produced into that checkpoint (windows fire on the watermark)
 *      and every two-phase-commit sink commits it before END ends it, as
 *      Flink 2.x waits for a final checkpoint of a bounded job.
 *
 * Thread: the tm_pipeline_* functions are main-thread unless pipeline.h
 * says otherwise; tm_source_* run on the calling source's thread.
 */
#include "runtime/pipeline.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/failpoint.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/shutdown.h"
#include "runtime/deadletter.h"
#include "runtime/evtime.h"
#include "runtime/exchange.h"
#include "runtime/graph.h"
#include "runtime/input.h"
#include "runtime/queue.h"
#include "state/keygroup.h"

#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TM_MAX_NODES 64
#define TM_MAX_STAGES 64
#define TM_MAX_EDGES 256
#define TM_MAX_PARALLELISM 256
#define TM_QUEUE_CAPACITY 16
#define TM_DEFAULT_FLUSH_MS 200
#define TM_DEFAULT_MAXP 128
/* A source's generated watermark is recomputed (and emitted if it advanced) at most this often. */
#define TM_WATERMARK_INTERVAL_MS 200

typedef enum { NODE_SOURCE = 1, NODE_SINK, NODE_STAGE } node_kind_t;

typedef struct tm_node {
    node_kind_t kind;
    int idx; /* among its kind */
} tm_node_t;

typedef struct tm_edge {
    int from, to; /* node ids */
    int input;
    tm_exchange_kind_t kind;
    tm_exchange_key_t key;
    int pfrom, pto; /* parallelism of both ends (sources and sinks: 1) */
    int *slot;      /* [producer * pto + consumer]: the consumer's input slot, or -1 */
    int side_op;    /* -1: the producer's output; else its operator whose side output it takes */
} tm_edge_t;

/* A producer's side of one outgoing edge. */
typedef struct tm_out {
    int edge;
    int side_op; /* the edge's */
    tm_exchange_t x;
} tm_out_t;

/* Events a source still has to push, in order (the retry contract). */
typedef struct tm_pend {
    tm_event_t *evs;
    tm_queue_t **qs;
    int n, cap, next;
} tm_pend_t;

struct tm_source_ctx {
    tm_pipeline_t *p;
    int idx, node;
    const tm_connector_t *conn;
    tm_source_t *src;
    char *name;
    pthread_t thread;
    bool started, ran;
    int rc;
    char err[1024];
    tm_out_t *outs;
    int nouts;
    /* (sink, slot) pairs whose durable tokens of this source decide its ack. */
    int (*acks)[2];
    int nacks;
    /* One pending fan-out per kind of emit (tm_source_emit's retry contract). */
    tm_batch_t *pending;
    tm_pend_t pend_batch;
    tm_schema_t *pending_schema;
    tm_pend_t pend_schema;
    uint64_t bar_pending_id;
    tm_pend_t pend_bar;
    bool wm_pending_active;
    int64_t wm_pending;
    tm_pend_t pend_wm;
    uint64_t last_token;
    uint64_t sync_seq;
    uint64_t bar_done;
    uint64_t bar_token;
    char *bar_position; /* any length: Kafka records offsets of every partition */
    /* tm_source_finished(): where a bounded input ended, for its final barrier. */
    char *fin_position;
    uint64_t fin_token;
    _Atomic uint64_t published; /* TM_ACK_CHECKPOINT: token of the last completed checkpoint */
    _Atomic bool paused; /* holding its input at a consistent point (tm_source_pause_wanted) */
    _Atomic int64_t watermark_us;
    /*
     * Watermark generation (evtime.h) in the source-output path: set up by
     * tm_pipeline_set_source_event_time (a `watermark` column) or
     * tm_source_use_commit_time; without it the source emits none itself
     * unless it calls tm_source_emit_watermark.
     */
    bool has_evtime;
    tm_evtime_t evtime;
    int emit_part; /* tm_source_emit_part's partition, for the call it makes */
    int64_t wm_next_ms;
    /* Idle status downstream: 0 active, 1 idle, -1 unknown (an abandoned push). */
    int idle_down;
    bool idle_pend_active, idle_pend_val;
    tm_pend_t pend_idle;
    _Atomic bool idle; /* for metrics: the source is idle downstream */
    _Atomic bool ready;
    _Atomic uint64_t events, bytes;
    _Atomic int64_t lag_us;    /* INT64_MIN before the first streamed batch */
    _Atomic int64_t lag_bytes; /* -1 unknown */
    pthread_mutex_t snap_lock; /* snap: written by the source, read by metrics */
    tm_snapshot_progress_t snap;
    bool snap_seen;
};

/* One input slot of a sink and the ack state of every source through it. */
typedef struct tm_sink_slot {
    int edge, producer; /* producer subtask */
    _Atomic uint64_t *durable; /* [nsources] */
    _Atomic uint64_t *synced;  /* [nsources] */
    uint64_t *pending;         /* [nsources]; sink thread only */
} tm_sink_slot_t;

typedef struct tm_sink_node {
    tm_pipeline_t *p;
    int idx, node;
    const tm_connector_t *conn;
    tm_sink_t *sink;
    char *name;
    tm_queue_t queue;
    pthread_t thread;
    bool started;
    char err[1024];
    tm_sink_slot_t *slots;
    int nslots;
    tm_input_t input; /* sink thread only */
    uint64_t committed_local;
    tm_buf_t handle;
    _Atomic uint64_t precommitted;
    _Atomic uint64_t committed;
    /* Metrics (tm_pipeline_sink_stats). */
    _Atomic uint64_t records, commits, commit_us;
    _Atomic uint64_t commit_hist[TM_SINK_COMMIT_BUCKETS];
} tm_sink_node_t;

/* Upper bounds of the commit-latency buckets, in seconds (the last bucket, +Inf, is implied). */
const double tm_sink_commit_bounds[TM_SINK_COMMIT_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
};

/* Records one commit's (or flush's) duration in the sink's histogram. */
static void sink_time(tm_sink_node_t *s, int64_t start_us)
{
    int64_t us = tm_mono_us() - start_us;
    if (us < 0)
        us = 0;
    atomic_fetch_add_explicit(&s->commits, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->commit_us, (uint64_t)us, memory_order_relaxed);
    for (int b = 0; b < TM_SINK_COMMIT_BUCKETS; b++)
        if ((double)us / 1e6 <= tm_sink_commit_bounds[b])
            atomic_fetch_add_explicit(&s->commit_hist[b], 1, memory_order_relaxed);
}

typedef struct tm_stage tm_stage_t;

typedef struct tm_subtask tm_subtask_t;

/* The collector of operator `op` of a subtask's chain. */
typedef struct tm_link {
    tm_collector_t c;
    tm_subtask_t *sub;
    int op;
} tm_link_t;

struct tm_subtask {
    tm_stage_t *st;
    int idx;
    tm_queue_t queue;
    pthread_t thread;
    bool started, ran;
    int nslots;
    uint8_t *slot_input;         /* [nslots]: which input of operator 0 each slot feeds */
    tm_input_t input;
    tm_operator_ctx_t *ctx;      /* [nops] */
    tm_operator_t **ops;         /* [nops] */
    const tm_operator_ops_t **hooks;
    tm_operator_metrics_t *metrics; /* [nops]; read by any thread */
    tm_dead_letter_t **dls;      /* [nops]: dead-letter writers, or NULL (deadletter.h) */
    tm_link_t *links;            /* [nops] */
    tm_link_t *side_links;       /* [nops]: side-output collectors (ctx->side_out), or NULL */
    bool has_side;               /* an out takes a side output (ack tokens go there too) */
    _Atomic int64_t *wm_op;      /* [nops]: the last watermark each operator saw; read by metrics */
    int64_t wm_fwd;
    bool idle_fwd;               /* downstream was told every live input of this subtask is idle */
    tm_batch_t *held;            /* the chain's last output, not routed yet */
    tm_out_t *outs;
    int nouts;
    int kg_first, kg_last;
    bool failed;
    char err[1024];
    tm_store_checkpoint_info_t chk;
};

struct tm_stage {
    tm_pipeline_t *p;
    int idx, node;
    char *name;
    int parallelism;
    int nops;
    tm_operator_factory_t *facs; /* uids are copies */
    tm_store_t **stores;         /* borrowed; NULL for a stateless stage */
    bool stateful;
    char dirname[200];
    tm_subtask_t **subs;
};

struct tm_pipeline {
    tm_node_t nodes[TM_MAX_NODES * 2 + TM_MAX_STAGES];
    int nnodes;
    tm_source_ctx_t *sources[TM_MAX_NODES];
    int nsources;
    tm_sink_node_t *sinks[TM_MAX_NODES];
    int nsinks;
    tm_stage_t *stages[TM_MAX_STAGES];
    int nstages;
    tm_edge_t edges[TM_MAX_EDGES];
    int nedges;
    int maxp;
    tm_error_policy_t on_error;
    char *dl_dir;   /* dead letters of on_error = 'dead-letter', or NULL */
    char *job;      /* the job's name (operator contexts, dead letters) */
    bool built;
    char *chk_root; /* stateful subtasks snapshot into <chk_root>/chk-N/<store dir> */
    int dl;         /* decision-log sink, or -1 */
    char *progress; /* progress record of the checkpoint being decided */
    _Atomic uint64_t deciding;
    int flush_ms;
    tm_ack_policy_t policy;
    _Atomic uint64_t barrier_req;
    /*
     * Where the requested barrier must go (tm_source_barrier_at): a source
     * position, 0 for anywhere; written before barrier_req.  barrier_missed
     * is the newest barrier a source could not place there.
     */
    _Atomic uint64_t barrier_at;
    _Atomic uint64_t barrier_missed;
    _Atomic int64_t pause_until_ms; /* sources hold their input until then (monotonic ms) */
    _Atomic uint64_t completed;
    _Atomic bool chk_wanted; /* a source waits for its final checkpoint (invariant 8) */
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
    p->maxp = TM_DEFAULT_MAXP;
    pthread_mutex_init(&p->err_lock, NULL);
    return p;
}

void tm_pipeline_set_flush_interval(tm_pipeline_t *p, int ms)
{
    p->flush_ms = ms > 0 ? ms : TM_DEFAULT_FLUSH_MS;
}

void tm_pipeline_set_max_parallelism(tm_pipeline_t *p, int max_parallelism)
{
    if (max_parallelism > 0)
        p->maxp = max_parallelism;
}

void tm_pipeline_set_error_policy(tm_pipeline_t *p, tm_error_policy_t policy)
{
    p->on_error = policy;
}

int tm_pipeline_set_dead_letter_dir(tm_pipeline_t *p, const char *dir, const char *job)
{
    if (p->built)
        return TM_EINVAL;
    free(p->dl_dir);
    free(p->job);
    p->dl_dir = dir ? strdup(dir) : NULL;
    p->job = job ? strdup(job) : NULL;
    return (dir && !p->dl_dir) || (job && !p->job) ? TM_ENOMEM : 0;
}

static int add_node(tm_pipeline_t *p, node_kind_t kind, int idx)
{
    if (p->nnodes >= (int)(sizeof(p->nodes) / sizeof(p->nodes[0])))
        return TM_EINVAL;
    p->nodes[p->nnodes].kind = kind;
    p->nodes[p->nnodes].idx = idx;
    return p->nnodes++;
}

int tm_pipeline_add_source(tm_pipeline_t *p, const tm_connector_t *conn, tm_source_t *src,
                           const char *name)
{
    if (p->nsources >= TM_MAX_NODES || p->built)
        return TM_EINVAL;
    tm_source_ctx_t *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->name = strdup(name)) == NULL) {
        free(c);
        return TM_ENOMEM;
    }
    c->p = p;
    c->idx = p->nsources;
    c->conn = conn;
    c->src = src;
    atomic_init(&c->watermark_us, INT64_MIN);
    atomic_init(&c->lag_us, INT64_MIN);
    atomic_init(&c->lag_bytes, -1);
    pthread_mutex_init(&c->snap_lock, NULL);
    int node = add_node(p, NODE_SOURCE, c->idx);
    if (node < 0) {
        pthread_mutex_destroy(&c->snap_lock);
        free(c->name);
        free(c);
        return node;
    }
    c->node = node;
    p->sources[p->nsources++] = c;
    return node;
}

int tm_pipeline_add_sink(tm_pipeline_t *p, const tm_connector_t *conn, tm_sink_t *sink,
                         const char *name)
{
    if (p->nsinks >= TM_MAX_NODES || p->built)
        return TM_EINVAL;
    tm_sink_node_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return TM_ENOMEM;
    if (tm_queue_init(&s->queue, TM_QUEUE_CAPACITY) != 0 || (s->name = strdup(name)) == NULL) {
        tm_queue_destroy(&s->queue);
        free(s);
        return TM_ENOMEM;
    }
    s->p = p;
    s->idx = p->nsinks;
    s->conn = conn;
    s->sink = sink;
    int node = add_node(p, NODE_SINK, s->idx);
    if (node < 0) {
        tm_queue_destroy(&s->queue);
        free(s->name);
        free(s);
        return node;
    }
    s->node = node;
    p->sinks[p->nsinks++] = s;
    return node;
}

/* A file-system-safe form of a stage name for its store directories. */
static void stage_dirname(const tm_pipeline_t *p, const tm_stage_t *st, char *out, size_t n)
{
    size_t j = 0;
    for (const char *c = st->name; *c != '\0' && j + 1 < n && j < 120; c++)
        out[j++] = isalnum((unsigned char)*c) || *c == '-' ? *c : '_';
    out[j] = '\0';
    for (int i = 0; i < p->nstages; i++)
        if (p->stages[i] != st && strcmp(p->stages[i]->dirname, out) == 0) {
            snprintf(out + j, n - j, "_%d", st->idx);
            break;
        }
}

int tm_pipeline_add_stage(tm_pipeline_t *p, const char *name, int parallelism,
                          const tm_operator_factory_t *ops, int nops, char *errstr,
                          size_t errstr_size)
{
    if (p->built || p->nstages >= TM_MAX_STAGES)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "too many stages for one job (at most %d)",
                         TM_MAX_STAGES);
    if (parallelism < 1 || parallelism > TM_MAX_PARALLELISM)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "stage %s: parallelism %d is out of range (1 to %d)", name, parallelism,
                         TM_MAX_PARALLELISM);
    if (nops < 1 || ops == NULL)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "stage %s has no operators", name);
    tm_stage_t *st = calloc(1, sizeof(*st));
    if (st == NULL || (st->facs = calloc((size_t)nops, sizeof(*st->facs))) == NULL ||
        (st->name = strdup(name)) == NULL) {
        if (st != NULL)
            free(st->facs);
        free(st);
        return TM_ENOMEM;
    }
    st->p = p;
    st->idx = p->nstages;
    st->parallelism = parallelism;
    st->nops = nops;
    for (int i = 0; i < nops; i++) {
        st->facs[i] = ops[i];
        st->facs[i].uid = strdup(ops[i].uid ? ops[i].uid : "");
        if (ops[i].stateful)
            st->stateful = true;
    }
    int node = add_node(p, NODE_STAGE, st->idx);
    if (node < 0) {
        for (int i = 0; i < nops; i++)
            free((char *)st->facs[i].uid);
        free(st->facs);
        free(st->name);
        free(st);
        return tm_seterr(errstr, errstr_size, node, "too many nodes for one job");
    }
    st->node = node;
    p->stages[p->nstages++] = st;
    stage_dirname(p, st, st->dirname, sizeof(st->dirname));
    return node;
}

static tm_stage_t *stage_of(const tm_pipeline_t *p, int node)
{
    if (node < 0 || node >= p->nnodes || p->nodes[node].kind != NODE_STAGE)
        return NULL;
    return p->stages[p->nodes[node].idx];
}

int tm_pipeline_set_stage_stores(tm_pipeline_t *p, int stage, tm_store_t *const *stores, int n)
{
    tm_stage_t *st = stage_of(p, stage);
    if (st == NULL || n != st->parallelism || p->built)
        return TM_EINVAL;
    int maxp = tm_store_max_parallelism(stores[0]);
    for (int i = 1; i < n; i++)
        if (tm_store_max_parallelism(stores[i]) != maxp)
            return TM_EINVAL;
    free(st->stores);
    if ((st->stores = calloc((size_t)n, sizeof(*st->stores))) == NULL)
        return TM_ENOMEM;
    memcpy(st->stores, stores, sizeof(*stores) * (size_t)n);
    return 0;
}

static int node_parallelism(const tm_pipeline_t *p, int node)
{
    tm_stage_t *st = stage_of(p, node);
    return st != NULL ? st->parallelism : 1;
}

static int stage_maxp(const tm_pipeline_t *p, const tm_stage_t *st)
{
    return st != NULL && st->stores != NULL ? tm_store_max_parallelism(st->stores[0]) : p->maxp;
}

int tm_pipeline_link(tm_pipeline_t *p, int from, int to, int input, tm_exchange_kind_t kind,
                     const tm_exchange_key_t *key, char *errstr, size_t errstr_size)
{
    if (p->built || p->nedges >= TM_MAX_EDGES)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "too many edges for one job (at most %d)",
                         TM_MAX_EDGES);
    if (from < 0 || from >= p->nnodes || to < 0 || to >= p->nnodes ||
        p->nodes[from].kind == NODE_SINK || p->nodes[to].kind == NODE_SOURCE || from == to)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "cannot link node %d to node %d: edges go from a source or stage to a "
                         "stage or sink", from, to);
    if (kind < TM_EXCHANGE_FORWARD || kind > TM_EXCHANGE_SINGLE)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "unknown exchange kind %d", (int)kind);
    if (kind == TM_EXCHANGE_HASH && (key == NULL || key->encode == NULL))
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "a hash exchange needs a key");
    tm_stage_t *dst = stage_of(p, to);
    int pfrom = node_parallelism(p, from), pto = node_parallelism(p, to);
    if (dst != NULL && kind == TM_EXCHANGE_FORWARD && pfrom != pto)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "a forward edge into stage %s needs equal parallelism (%d and %d); use a "
                         "hash or broadcast exchange", dst->name, pfrom, pto);
    if (dst != NULL && kind == TM_EXCHANGE_SINGLE && pto != 1)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "a single exchange needs stage %s to have parallelism 1", dst->name);
    if (dst != NULL && (input < 0 || input > 1))
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "input %d of stage %s does not exist",
                         input, dst->name);
    tm_edge_t *e = &p->edges[p->nedges];
    memset(e, 0, sizeof(*e));
    e->from = from;
    e->to = to;
    e->input = input;
    e->kind = kind;
    if (key != NULL)
        e->key = *key;
    e->pfrom = pfrom;
    e->pto = pto;
    e->side_op = -1;
    return p->nedges++;
}

int tm_pipeline_link_side(tm_pipeline_t *p, int from, int op, int to, char *errstr,
                          size_t errstr_size)
{
    tm_stage_t *st = stage_of(p, from);
    if (st == NULL || op < 0 || op >= st->nops)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "a side output is linked from an operator of a stage (node %d, "
                         "operator %d)", from, op);
    if (to < 0 || to >= p->nnodes || p->nodes[to].kind != NODE_SINK)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "the side output of stage %s goes to a sink, not to node %d", st->name,
                         to);
    int e = tm_pipeline_link(p, from, to, 0, TM_EXCHANGE_FORWARD, NULL, errstr, errstr_size);
    if (e >= 0)
        p->edges[e].side_op = op;
    return e;
}

void tm_pipeline_set_state_checkpoint_dir(tm_pipeline_t *p, const char *chk_root)
{
    free(p->chk_root);
    p->chk_root = chk_root ? strdup(chk_root) : NULL;
}

int tm_pipeline_max_parallelism(const tm_pipeline_t *p)
{
    for (int i = 0; i < p->nstages; i++)
        if (p->stages[i]->stores != NULL)
            return stage_maxp(p, p->stages[i]);
    return 0;
}

int tm_pipeline_nstores(const tm_pipeline_t *p)
{
    int n = 0;
    for (int i = 0; i < p->nstages; i++)
        if (p->stages[i]->stateful && p->stages[i]->stores != NULL)
            n += p->stages[i]->parallelism;
    return n;
}

void tm_pipeline_store_info(const tm_pipeline_t *p, int i, tm_pipeline_store_info_t *out)
{
    memset(out, 0, sizeof(*out));
    for (int s = 0; s < p->nstages; s++) {
        tm_stage_t *st = p->stages[s];
        if (!st->stateful || st->stores == NULL)
            continue;
        if (i >= st->parallelism) {
            i -= st->parallelism;
            continue;
        }
        out->stage = st->name;
        out->stage_idx = s;
        out->subtask = i;
        out->parallelism = st->parallelism;
        tm_keygroup_range(i, st->parallelism, stage_maxp(p, st), &out->kg_first, &out->kg_last);
        for (int k = 0; k < st->nops && out->nuids < 16; k++)
            if (st->facs[k].stateful)
                out->uids[out->nuids++] = st->facs[k].uid;
        snprintf(out->dir, sizeof(out->dir), "state/%s-%d", st->dirname, i);
        out->store = st->stores[i];
        if (st->subs != NULL && st->subs[i] != NULL)
            out->chk = st->subs[i]->chk;
        return;
    }
}

tm_store_t *tm_pipeline_store(const tm_pipeline_t *p, int i)
{
    for (int s = 0; s < p->nstages; s++) {
        tm_stage_t *st = p->stages[s];
        if (!st->stateful || st->stores == NULL)
            continue;
        if (i < st->parallelism)
            return st->stores[i];
        i -= st->parallelism;
    }
    return NULL;
}

void tm_pipeline_set_decision_log(tm_pipeline_t *p, int sink_node)
{
    if (sink_node >= 0 && sink_node < p->nnodes && p->nodes[sink_node].kind == NODE_SINK)
        p->dl = p->nodes[sink_node].idx;
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

/* ---- producers' output: one path for sources and stage subtasks ---- */

/* The queue of subtask `c` of consumer node `node`. */
static tm_queue_t *consumer_queue(tm_pipeline_t *p, int node, int c)
{
    if (p->nodes[node].kind == NODE_SINK)
        return &p->sinks[p->nodes[node].idx]->queue;
    return &p->stages[p->nodes[node].idx]->subs[c]->queue;
}

static void pend_clear(tm_pend_t *pd)
{
    for (int i = pd->next; i < pd->n; i++)
        tm_event_release(&pd->evs[i]);
    pd->n = pd->next = 0;
}

static void pend_free(tm_pend_t *pd)
{
    pend_clear(pd);
    free(pd->evs);
    free(pd->qs);
    memset(pd, 0, sizeof(*pd));
}

/* Appends an event (taking over its references) for queue q; on failure releases it. */
static int pend_add(tm_pend_t *pd, tm_queue_t *q, tm_event_t *ev)
{
    if (pd->n == pd->cap) {
        int ncap = pd->cap ? pd->cap * 2 : 8;
        tm_event_t *e = realloc(pd->evs, sizeof(*e) * (size_t)ncap);
        if (e != NULL)
            pd->evs = e;
        tm_queue_t **qs = e ? realloc(pd->qs, sizeof(*qs) * (size_t)ncap) : NULL;
        if (qs == NULL) {
            tm_event_release(ev);
            return TM_ENOMEM;
        }
        pd->qs = qs;
        pd->cap = ncap;
    }
    pd->evs[pd->n] = *ev;
    pd->qs[pd->n++] = q;
    return 0;
}

/* Where an exchange's deliveries go: producer subtask `producer` of out `o`. */
typedef struct route_ctx {
    tm_pipeline_t *p;
    const tm_edge_t *e;
    int producer;
    tm_pend_t *pd; /* sources: collect; NULL: push now (stage subtasks) */
} route_ctx_t;

static int deliver(void *arg, int target, tm_batch_t *batch)
{
    route_ctx_t *r = arg;
    tm_event_t ev = {.kind = TM_EV_BATCH};
    ev.u.batch = batch;
    ev.producer = r->e->slot[r->producer * r->e->pto + target];
    tm_queue_t *q = consumer_queue(r->p, r->e->to, target);
    if (r->pd != NULL)
        return pend_add(r->pd, q, &ev);
    /* Invariant 1: a stage subtask's blocking push always completes. */
    tm_queue_push(q, &ev, -1);
    return 0;
}

/* fan_out's `side` for a batch: the main output, or every side output (ack tokens). */
#define FAN_MAIN (-1)
#define FAN_ANY_SIDE (-2)

/*
 * Builds the fan-out of one event of producer subtask `producer` over its
 * outs: a batch goes through the exchange of each edge that takes output
 * `side` (FAN_MAIN, an operator's side output, or FAN_ANY_SIDE), a control
 * event to each edge's control targets.  `ev` keeps its references (each target gets its
 * own).  With pd == NULL the events are pushed now (blocking).
 */
static int fan_out(tm_pipeline_t *p, tm_out_t *outs, int nouts, int producer,
                   const tm_event_t *ev, tm_pend_t *pd, int side)
{
    int targets[TM_MAX_PARALLELISM];
    for (int o = 0; o < nouts; o++) {
        const tm_edge_t *e = &p->edges[outs[o].edge];
        route_ctx_t r = {p, e, producer, pd};
        int rc;
        if (ev->kind == TM_EV_BATCH) {
            if (side == FAN_ANY_SIDE ? outs[o].side_op < 0 : outs[o].side_op != side)
                continue;
            rc = tm_exchange_route(&outs[o].x, ev->u.batch, deliver, &r);
            if (rc != 0)
                return rc;
            continue;
        }
        int n = tm_exchange_control_targets(&outs[o].x, targets);
        for (int t = 0; t < n; t++) {
            tm_event_t c = *ev;
            if (c.kind == TM_EV_SCHEMA_CHANGE)
                tm_schema_ref(c.u.schema);
            c.producer = e->slot[producer * e->pto + targets[t]];
            tm_queue_t *q = consumer_queue(p, e->to, targets[t]);
            if (pd != NULL) {
                if ((rc = pend_add(pd, q, &c)) != 0)
                    return rc;
            } else {
                tm_queue_push(q, &c, -1);
            }
        }
    }
    return 0;
}

/*
 * The one source-output routine: pushes what is pending, resuming where an
 * earlier TM_EAGAIN stopped.  0 once everything is pushed, TM_EAGAIN (the
 * rest stays pending), or TM_ESTOPPED.
 */
static int source_push(tm_source_ctx_t *ctx, tm_pend_t *pd, int timeout_ms)
{
    tm_pipeline_t *p = ctx->p;
    while (pd->next < pd->n) {
        if (atomic_load(&p->stop))
            return TM_ESTOPPED;
        if (tm_queue_push(pd->qs[pd->next], &pd->evs[pd->next], timeout_ms) != 0)
            return TM_EAGAIN;
        pd->next++;
    }
    pd->n = pd->next = 0;
    return 0;
}

/* Starts a new fan-out of `ev` into `pd` (dropping an abandoned one). */
static int source_prepare(tm_source_ctx_t *ctx, tm_pend_t *pd, const tm_event_t *ev)
{
    pend_clear(pd);
    int rc = fan_out(ctx->p, ctx->outs, ctx->nouts, 0, ev, pd, FAN_MAIN);
    if (rc != 0)
        pend_clear(pd);
    return rc;
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

/*
 * Tells everything downstream that this source is idle (every partition
 * idle: the valves ignore it) or active again.  Same retry contract as the
 * other emits; a push abandoned half-way leaves the status unknown, so the
 * next change is sent to every target.
 */
static int source_set_idle(tm_source_ctx_t *ctx, bool idle, int timeout_ms)
{
    if (ctx->idle_pend_active && ctx->idle_pend_val != idle) {
        pend_clear(&ctx->pend_idle);
        ctx->idle_pend_active = false;
        ctx->idle_down = -1;
    }
    if (!ctx->idle_pend_active) {
        if (ctx->idle_down == (idle ? 1 : 0))
            return 0;
        tm_event_t ev = {.kind = TM_EV_IDLE};
        ev.u.id = idle ? 1 : 0;
        int rc = source_prepare(ctx, &ctx->pend_idle, &ev);
        if (rc != 0)
            return rc;
        ctx->idle_pend_active = true;
        ctx->idle_pend_val = idle;
        ctx->idle_down = -1;
    }
    int rc = source_push(ctx, &ctx->pend_idle, timeout_ms);
    if (rc != 0)
        return rc;
    ctx->idle_pend_active = false;
    ctx->idle_down = idle ? 1 : 0;
    atomic_store_explicit(&ctx->idle, idle, memory_order_relaxed);
    if (idle)
        TM_DEBUG("runtime", "source idle", "source=%s", ctx->name);
    return 0;
}

/*
 * The generated watermark's housekeeping: at most every
 * TM_WATERMARK_INTERVAL_MS, emit the watermark if it advanced, or mark the
 * source idle when every partition is.  A watermark that could not be
 * pushed stays pending and is finished by the next call (a watermark that
 * arrives later than it could have is still true).
 */
static int source_evtime_step(tm_source_ctx_t *ctx, int64_t now_ms, int timeout_ms)
{
    if (now_ms < ctx->wm_next_ms && !ctx->wm_pending_active && !ctx->idle_pend_active)
        return 0;
    if (now_ms >= ctx->wm_next_ms)
        ctx->wm_next_ms = now_ms + TM_WATERMARK_INTERVAL_MS;
    int64_t wm = INT64_MIN;
    bool all_idle = false;
    bool have = tm_evtime_current(&ctx->evtime, now_ms, &wm, &all_idle);
    int rc = 0;
    if (all_idle)
        rc = source_set_idle(ctx, true, timeout_ms);
    else if (ctx->idle_down != 0)
        rc = source_set_idle(ctx, false, timeout_ms);
    if (rc != 0)
        return rc;
    if (ctx->wm_pending_active || (have && wm > atomic_load(&ctx->watermark_us)))
        rc = tm_source_emit_watermark(ctx, have ? wm : INT64_MIN, timeout_ms);
    return rc;
}

int tm_source_tick(tm_source_ctx_t *ctx, int timeout_ms)
{
    if (!ctx->has_evtime)
        return 0;
    return source_evtime_step(ctx, tm_mono_ms(), timeout_ms);
}

void tm_source_partitions(tm_source_ctx_t *ctx, int n)
{
    if (ctx->has_evtime)
        tm_evtime_partitions(&ctx->evtime, n, tm_mono_ms());
}

void tm_source_partition_active(tm_source_ctx_t *ctx, int partition)
{
    if (ctx->has_evtime)
        tm_evtime_touch(&ctx->evtime, partition, tm_mono_ms());
}

bool tm_source_use_commit_time(tm_source_ctx_t *ctx, int64_t delay_us, int64_t idle_timeout_ms)
{
    if (ctx->has_evtime)
        return false;
    if (tm_evtime_init(&ctx->evtime, NULL, delay_us, idle_timeout_ms, tm_mono_ms()) != 0)
        return false;
    ctx->has_evtime = true;
    return true;
}

int tm_source_emit(tm_source_ctx_t *ctx, tm_batch_t *batch, int timeout_ms)
{
    return tm_source_emit_parts(ctx, batch, NULL, timeout_ms);
}

int tm_source_emit_part(tm_source_ctx_t *ctx, tm_batch_t *batch, int partition, int timeout_ms)
{
    if (partition < 0)
        return TM_EINVAL;
    if (ctx->has_evtime && ctx->pending != batch &&
        tm_evtime_partitions(&ctx->evtime, partition + 1, tm_mono_ms()) != 0)
        return TM_ENOMEM;
    ctx->emit_part = partition;
    return tm_source_emit_parts(ctx, batch, NULL, timeout_ms);
}

int tm_source_emit_parts(tm_source_ctx_t *ctx, tm_batch_t *batch, const int32_t *parts,
                         int timeout_ms)
{
    int part = ctx->emit_part;
    ctx->emit_part = 0;
    /* An idle source says it is active again before its next batch (valves count it again). */
    if (ctx->has_evtime && ctx->pending != batch && ctx->idle_down != 0 && batch->count > 0) {
        int rc = source_set_idle(ctx, false, timeout_ms);
        if (rc != 0)
            return rc;
    }
    if (ctx->pending != batch) {
        batch->ack_source = (int16_t)ctx->idx;
        tm_event_t ev = {.kind = TM_EV_BATCH};
        ev.u.batch = batch;
        int rc = source_prepare(ctx, &ctx->pend_batch, &ev);
        if (rc != 0)
            return rc;
        ctx->pending = batch;
    }
    int rc = source_push(ctx, &ctx->pend_batch, timeout_ms);
    if (rc == TM_ESTOPPED)
        ctx->pending = NULL; /* the caller frees the batch; never resume with its address */
    if (rc != 0)
        return rc;
    atomic_fetch_add_explicit(&ctx->events, batch->count, memory_order_relaxed);
    /*
     * Lag: how old the newest change of the batch was when it was emitted.
     * Snapshot rows carry the snapshot's time, not a commit time: they do not count.
     */
    int64_t newest = 0;
    for (uint32_t i = 0; i < batch->count; i++) {
        const tm_record_t *r = &batch->recs[i];
        if (r->src.snapshot == TM_SNAPSHOT_FALSE && r->src.ts_us > newest)
            newest = r->src.ts_us;
    }
    if (newest > 0)
        atomic_store_explicit(&ctx->lag_us, tm_wall_us() - newest, memory_order_relaxed);
    if (batch->ack_token > ctx->last_token)
        ctx->last_token = batch->ack_token;
    ctx->pending = NULL;
    if (ctx->has_evtime) {
        /*
         * Observed only once the batch is downstream, so a watermark computed
         * from these records always follows them.  A failed step leaves the
         * watermark pending for the next emit or tick.
         */
        int64_t now = tm_mono_ms();
        tm_evtime_observe(&ctx->evtime, batch, part, parts, now);
        source_evtime_step(ctx, now, 0);
    }
    tm_batch_unref(batch);
    return 0;
}

int tm_source_emit_schema(tm_source_ctx_t *ctx, tm_schema_t *schema, int timeout_ms)
{
    int64_t deadline = tm_mono_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    if (ctx->pending_schema != schema) {
        tm_event_t ev = {.kind = TM_EV_SCHEMA_CHANGE};
        ev.u.schema = schema;
        int rc = source_prepare(ctx, &ctx->pend_schema, &ev);
        if (rc != 0)
            return rc;
        ctx->pending_schema = schema;
    }
    for (;;) {
        int rc = source_push(ctx, &ctx->pend_schema, 50);
        if (rc == 0)
            break;
        if (rc == TM_ESTOPPED) {
            ctx->pending_schema = NULL;
            return rc;
        }
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

bool tm_source_pause_wanted(const tm_source_ctx_t *ctx)
{
    int64_t until = atomic_load(&ctx->p->pause_until_ms);
    return until != 0 && tm_mono_ms() < until;
}

void tm_source_set_paused(tm_source_ctx_t *ctx, bool paused)
{
    atomic_store(&ctx->paused, paused);
}

void tm_pipeline_pause_sources(tm_pipeline_t *p, int64_t until_ms)
{
    atomic_store(&p->pause_until_ms, until_ms);
}

int tm_pipeline_sources_paused(const tm_pipeline_t *p)
{
    int n = 0;
    for (int i = 0; i < p->nsources; i++)
        n += atomic_load(&p->sources[i]->paused);
    return n;
}

uint64_t tm_source_barrier_at(const tm_source_ctx_t *ctx)
{
    return tm_source_barrier_due(ctx) != 0 ? atomic_load(&ctx->p->barrier_at) : 0;
}

void tm_source_barrier_missed(tm_source_ctx_t *ctx, uint64_t id)
{
    uint64_t cur = atomic_load(&ctx->p->barrier_missed);
    while (cur < id && !atomic_compare_exchange_weak(&ctx->p->barrier_missed, &cur, id))
        ;
}

int tm_source_emit_barrier(tm_source_ctx_t *ctx, uint64_t id, uint64_t token, const char *position,
                           int timeout_ms)
{
    if (ctx->bar_pending_id != id) {
        /*
         * Recorded before the barrier is pushed; read by the coordinator only
         * after every sink pre-committed this barrier, and the next barrier
         * is requested only after that.
         */
        char *copy = strdup(position ? position : "");
        if (copy == NULL)
            return TM_ENOMEM;
        tm_event_t ev = {.kind = TM_EV_BARRIER};
        ev.u.id = id;
        int rc = source_prepare(ctx, &ctx->pend_bar, &ev);
        if (rc != 0) {
            free(copy);
            return rc;
        }
        ctx->bar_pending_id = id;
        ctx->bar_token = token;
        free(ctx->bar_position);
        ctx->bar_position = copy;
    }
    int rc = source_push(ctx, &ctx->pend_bar, timeout_ms);
    if (rc != 0)
        return rc;
    ctx->bar_done = id;
    return 0;
}

int tm_source_emit_watermark(tm_source_ctx_t *ctx, int64_t ts_us, int timeout_ms)
{
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
        tm_event_t ev = {.kind = TM_EV_WATERMARK};
        ev.u.ts_us = ts_us;
        int rc = source_prepare(ctx, &ctx->pend_wm, &ev);
        if (rc != 0)
            return rc;
        ctx->wm_pending_active = true;
        ctx->wm_pending = ts_us;
    }
    int rc = source_push(ctx, &ctx->pend_wm, timeout_ms);
    if (rc != 0)
        return rc;
    ctx->wm_pending_active = false;
    atomic_store(&ctx->watermark_us, ts_us);
    return 0;
}

uint64_t tm_source_acked(const tm_source_ctx_t *ctx)
{
    tm_pipeline_t *p = ctx->p;
    if (ctx->nacks == 0)
        return ctx->last_token;
    if (p->policy == TM_ACK_CHECKPOINT)
        return atomic_load(&ctx->published);
    uint64_t min = UINT64_MAX;
    for (int i = 0; i < ctx->nacks; i++) {
        tm_sink_slot_t *sl = &p->sinks[ctx->acks[i][0]]->slots[ctx->acks[i][1]];
        uint64_t t = atomic_load(&sl->durable[ctx->idx]);
        if (t < min)
            min = t;
    }
    return min;
}

int tm_source_sync(tm_source_ctx_t *ctx, int timeout_ms)
{
    tm_pipeline_t *p = ctx->p;
    uint64_t id = ++ctx->sync_seq;
    int64_t deadline = tm_mono_ms() + timeout_ms;
    tm_pend_t pd;
    memset(&pd, 0, sizeof(pd));
    tm_event_t ev = {.kind = TM_EV_SYNC, .source = ctx->idx};
    ev.u.id = id;
    int rc = fan_out(p, ctx->outs, ctx->nouts, 0, &ev, &pd, FAN_MAIN);
    while (rc == 0 && pd.next < pd.n) {
        if (tm_queue_push(pd.qs[pd.next], &pd.evs[pd.next], 50) == 0)
            pd.next++;
        else if (tm_mono_ms() >= deadline)
            rc = TM_EAGAIN;
        else if (tm_pipeline_error(p) != 0)
            rc = TM_ESTOPPED;
    }
    pend_free(&pd);
    if (rc != 0)
        return rc;
    /* Stages pass SYNC on, so every sink slot that carries this source's tokens reports it. */
    for (;;) {
        bool all = true;
        for (int i = 0; i < ctx->nacks && all; i++) {
            tm_sink_slot_t *sl = &p->sinks[ctx->acks[i][0]]->slots[ctx->acks[i][1]];
            if (atomic_load(&sl->synced[ctx->idx]) < id)
                all = false;
        }
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

void tm_source_set_lag_bytes(tm_source_ctx_t *ctx, int64_t bytes)
{
    atomic_store_explicit(&ctx->lag_bytes, bytes, memory_order_relaxed);
}

void tm_source_snapshot_progress(tm_source_ctx_t *ctx, const char *table, uint64_t rows,
                                 double estimate, bool done)
{
    pthread_mutex_lock(&ctx->snap_lock);
    tm_snapshot_progress_t *sp = &ctx->snap;
    bool new_table = !ctx->snap_seen || strcmp(sp->table, table) != 0;
    if (new_table && ctx->snap_seen && !sp->done) {
        /* A table left unfinished (should not happen): count what was read. */
        sp->rows_done += sp->rows;
    }
    if (new_table)
        snprintf(sp->table, sizeof(sp->table), "%s", table);
    if (done && !(sp->done && !new_table)) {
        sp->tables_done++;
        sp->rows_done += rows;
    }
    sp->rows = rows;
    sp->estimate = estimate;
    sp->done = done;
    ctx->snap_seen = true;
    pthread_mutex_unlock(&ctx->snap_lock);
}

void tm_source_count(tm_source_ctx_t *ctx, uint64_t events, uint64_t bytes)
{
    /* Events are already counted by tm_source_emit(); only bytes read are new here. */
    (void)events;
    atomic_fetch_add_explicit(&ctx->bytes, bytes, memory_order_relaxed);
}

void tm_source_finished(tm_source_ctx_t *ctx, uint64_t token, const char *position)
{
    char *copy = strdup(position ? position : "");
    if (copy == NULL)
        return; /* the final barrier then carries the last barrier's position */
    free(ctx->fin_position);
    ctx->fin_position = copy;
    ctx->fin_token = token;
}

/* Whether the source must stop waiting for its final checkpoint. */
static bool source_final_abandon(const tm_source_ctx_t *ctx)
{
    return atomic_load(&ctx->p->stop) || tm_pipeline_error(ctx->p) != 0 ||
           tm_shutdown_is_stopping();
}

/*
 * The end of a bounded input (invariant 8): the end-of-time watermark, then
 * the next checkpoint's barrier at the source's final position, then a wait
 * until that checkpoint completed, so that two-phase-commit sinks commit
 * everything the input produced before END ends them.  A stop or a failure
 * meanwhile abandons the wait (END follows at once, as before).
 */
static void source_final_checkpoint(tm_source_ctx_t *ctx)
{
    tm_pipeline_t *p = ctx->p;
    while (!source_final_abandon(ctx)) {
        int rc = tm_source_emit_watermark(ctx, INT64_MAX, 100);
        if (rc == 0)
            break;
        if (rc != TM_EAGAIN)
            return;
    }
    if (p->policy != TM_ACK_CHECKPOINT || p->chk_root == NULL)
        return;
    atomic_store(&p->chk_wanted, true);
    uint64_t id = 0;
    const char *pos = ctx->fin_position ? ctx->fin_position : ctx->bar_position;
    uint64_t token = ctx->fin_position ? ctx->fin_token : ctx->bar_token;
    while (!source_final_abandon(ctx)) {
        if (id == 0 && (id = tm_source_barrier_due(ctx)) == 0) {
            usleep(5000);
            continue;
        }
        int rc = tm_source_emit_barrier(ctx, id, token, pos, 100);
        if (rc == 0)
            break;
        if (rc != TM_EAGAIN)
            return;
    }
    if (id != 0)
        TM_INFO("pipeline", "input complete; waiting for the final checkpoint", "source=%s "
                "checkpoint=%" PRIu64, ctx->name, id);
    while (id != 0 && atomic_load(&p->completed) < id && !source_final_abandon(ctx))
        usleep(5000);
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
    if (ctx->rc == 0 && !source_final_abandon(ctx))
        source_final_checkpoint(ctx);
    /* A source that ends (initial_only, or an error) still tells everything downstream. */
    tm_event_t ev = {.kind = TM_EV_END};
    fan_out(p, ctx->outs, ctx->nouts, 0, &ev, NULL, FAN_MAIN);
    atomic_fetch_sub(&p->running, 1);
    return NULL;
}

/* ---- sink side (thread: sink) ---- */

/* A write not yet durable, under sink_acked: which slot and source's token it carries. */
typedef struct pending_ack {
    uint64_t write; /* its number, from 1 */
    int slot, source;
    uint64_t token;
} pending_ack_t;

typedef struct sink_loop {
    tm_sink_node_t *s;
    bool dirty;
    bool failed;
    int64_t last_flush;
    /* sink_acked: writes so far, and those not acknowledged yet (in order). */
    bool async_acks;
    uint64_t writes;
    pending_ack_t *acks;
    size_t acks_head, acks_len, acks_cap;
    /* The barrier whose pre-commit runs in the background (sink_precommit_poll), 0 if none. */
    uint64_t precommitting;
} sink_loop_t;

static void sink_fail(sink_loop_t *l, int rc)
{
    if (l->failed)
        return;
    l->failed = true;
    if (l->s->err[0] == '\0')
        snprintf(l->s->err, sizeof(l->s->err), "%s", tm_strerror(rc));
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
    int64_t t0 = tm_mono_us();
    int rc = s->conn->sink_flush ? s->conn->sink_flush(s->sink, s->err, sizeof(s->err)) : 0;
    if (rc != 0) {
        sink_fail(l, rc);
        return;
    }
    /* Without two-phase commit the flush is what makes writes durable: time it as the commit. */
    if (s->conn->sink_commit == NULL)
        sink_time(s, t0);
    if (p->policy == TM_ACK_SINK_DURABLE) {
        for (int i = 0; i < s->nslots; i++)
            for (int k = 0; k < p->nsources; k++)
                atomic_store(&s->slots[i].durable[k], s->slots[i].pending[k]);
    }
    l->acks_head = l->acks_len = 0; /* every write is durable now */
    l->dirty = false;
}

/* Remembers that write number `write` carried `token` of (slot, source) (sink_acked). */
static int ack_track(sink_loop_t *l, int slot, int source, uint64_t token)
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
    a->slot = slot;
    a->source = source;
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
        _Atomic uint64_t *d = &s->slots[a->slot].durable[a->source];
        /* Tokens grow per (slot, source); a sync's flush may already have gone further. */
        if (a->token > atomic_load(d))
            atomic_store(d, a->token);
        l->acks_head = (l->acks_head + 1) % l->acks_cap;
        l->acks_len--;
    }
}

/* Checkpoint `id` is complete: sources may acknowledge its tokens, sinks commit it. */
static void pipeline_publish(tm_pipeline_t *p, uint64_t id)
{
    for (int i = 0; i < p->nsources; i++)
        atomic_store(&p->sources[i]->published, p->sources[i]->bar_token);
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
        int64_t t0 = tm_mono_us();
        int rc = s->conn->sink_commit(s->sink, done, dl ? p->progress : NULL, s->err,
                                      sizeof(s->err));
        sink_time(s, t0);
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

/*
 * Asks the sink whether its background pre-commit is over, waiting up to
 * timeout_ms (-1: until it is); when it is, the epoch counts as pre-committed.
 */
static void sink_precommit_wait(sink_loop_t *l, int timeout_ms)
{
    tm_sink_node_t *s = l->s;
    if (l->precommitting == 0)
        return;
    bool done = false;
    int rc = s->conn->sink_precommit_poll(s->sink, timeout_ms, &done, s->err, sizeof(s->err));
    if (rc != 0) {
        l->precommitting = 0;
        sink_fail(l, rc);
        return;
    }
    if (!done)
        return;
    uint64_t id = l->precommitting;
    l->precommitting = 0;
    tm_failpoint("sink.after_precommit");
    if (!l->failed)
        atomic_store(&s->precommitted, id);
}

/* Barrier `id` has arrived on every input: pre-commit the epoch it closes. */
static void sink_barrier_aligned(sink_loop_t *l, uint64_t id)
{
    tm_sink_node_t *s = l->s;
    /* One pre-commit at a time: the previous epoch's comes first. */
    sink_precommit_wait(l, -1);
    tm_buf_clear(&s->handle);
    if (!l->failed) {
        if (s->conn->sink_precommit != NULL) {
            int rc = s->conn->sink_precommit(s->sink, id, &s->handle, s->err, sizeof(s->err));
            l->dirty = false;
            if (rc == TM_EAGAIN && s->conn->sink_precommit_poll != NULL) {
                l->precommitting = id;
                return;
            }
            if (rc != 0)
                sink_fail(l, rc);
            tm_failpoint("sink.after_precommit");
        } else {
            l->dirty = true;
            sink_flush(l);
        }
    }
    if (!l->failed)
        atomic_store(&s->precommitted, id);
}

static void sink_handle(sink_loop_t *l, tm_event_t *ev);

static void sink_aligned(sink_loop_t *l, uint64_t id)
{
    sink_barrier_aligned(l, id);
    /* Release what was held back, in arrival order. */
    size_t n;
    tm_event_t *held = tm_input_take_held(&l->s->input, &n);
    for (size_t i = 0; i < n; i++)
        sink_handle(l, &held[i]);
    free(held);
}

static void sink_handle(sink_loop_t *l, tm_event_t *ev)
{
    tm_sink_node_t *s = l->s;
    tm_pipeline_t *p = s->p;
    int held = tm_input_offer(&s->input, ev);
    if (held != 0) {
        if (held < 0) {
            snprintf(s->err, sizeof(s->err), "out of memory while aligning a barrier");
            sink_fail(l, held);
        }
        return;
    }
    tm_sink_slot_t *sl = &s->slots[ev->producer];
    switch (ev->kind) {
    case TM_EV_BATCH: {
        tm_batch_t *b = ev->u.batch;
        if (!l->failed && b->count > 0) {
            int rc = s->conn->sink_write(s->sink, b, s->err, sizeof(s->err));
            if (rc != 0)
                sink_fail(l, rc);
            else
                atomic_fetch_add_explicit(&s->records, b->count, memory_order_relaxed);
            l->writes++;
        }
        int src = b->ack_source;
        if (src >= 0 && src < p->nsources && b->ack_token > sl->pending[src]) {
            sl->pending[src] = b->ack_token;
            if (l->async_acks && !l->failed &&
                ack_track(l, ev->producer, src, sl->pending[src]) != 0) {
                snprintf(s->err, sizeof(s->err), "out of memory while tracking acknowledgements");
                sink_fail(l, TM_ENOMEM);
            }
        }
        l->dirty = true;
        break;
    }
    case TM_EV_SYNC:
        sink_flush(l);
        if (ev->source >= 0 && ev->source < p->nsources)
            atomic_store(&sl->synced[ev->source], ev->u.id);
        break;
    case TM_EV_BARRIER: {
        uint64_t id = tm_input_barrier(&s->input, ev->producer, ev->u.id);
        if (id != 0)
            sink_aligned(l, id);
        break;
    }
    case TM_EV_END: {
        bool wm;
        uint64_t id = tm_input_end(&s->input, ev->producer, &wm);
        if (id != 0)
            sink_aligned(l, id);
        break;
    }
    case TM_EV_WATERMARK:
        /* No sink reads event time yet; the valve keeps the input module's view current. */
        tm_input_watermark(&s->input, ev->producer, ev->u.ts_us);
        break;
    case TM_EV_IDLE:
        tm_input_set_idle(&s->input, ev->producer, ev->u.id != 0);
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

    while (!tm_input_all_ended(&s->input)) {
        int wait = l.async_acks && l.acks_len > 0 ? 20 : 100;
        if (l.dirty && timed_flush) {
            int64_t left = l.last_flush + p->flush_ms - tm_mono_ms();
            wait = left > 0 ? (int)(left < 100 ? left : 100) : 0;
        }
        if (l.precommitting != 0) {
            sink_precommit_wait(&l, 0);
            if (l.precommitting != 0 && wait > 2)
                wait = 2;
        }
        sink_commit_completed(&l);
        if (s->idx == p->dl && atomic_load(&s->precommitted) > s->committed_local &&
            !l.failed && !atomic_load(&p->stop) && tm_pipeline_error(p) == 0) {
            /*
             * Between pre-commit and commit the decision-log sink (Kafka) can
             * only hold what arrives in memory, for as long as _metadata
             * takes to reach the disk: take at most DL_PENDING_MAX events,
             * then leave the rest in the queue, which back-pressures the
             * producers, so that a slow fsync cannot grow the daemon without
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
    sink_precommit_wait(&l, -1);
    sink_commit_completed(&l);
    free(l.acks);
    atomic_fetch_sub(&p->running, 1);
    return NULL;
}

/* ---- stage subtasks (thread: the subtask's) ---- */

static void sub_fail(tm_subtask_t *sub, int rc)
{
    if (sub->failed)
        return;
    sub->failed = true;
    char who[256];
    snprintf(who, sizeof(who), "stage %s subtask %d", sub->st->name, sub->idx);
    if (sub->err[0] == '\0')
        snprintf(sub->err, sizeof(sub->err), "%s", tm_strerror(rc));
    pipeline_fail(sub->st->p, rc, who, sub->err);
}

/* Sends a control event to every consumer subtask of every outgoing edge. */
static void sub_control(tm_subtask_t *sub, const tm_event_t *ev)
{
    fan_out(sub->st->p, sub->outs, sub->nouts, sub->idx, ev, NULL, FAN_MAIN);
}

/* Routes one output batch of the chain (or a side output) downstream (takes the reference). */
static void sub_route(tm_subtask_t *sub, tm_batch_t *b, int side)
{
    tm_event_t ev = {.kind = TM_EV_BATCH};
    ev.u.batch = b;
    int rc = fan_out(sub->st->p, sub->outs, sub->nouts, sub->idx, &ev, NULL, side);
    if (rc != 0) {
        snprintf(sub->err, sizeof(sub->err), "cannot route a batch: %s", tm_strerror(rc));
        sub_fail(sub, rc);
    }
    tm_batch_unref(b);
}

/* Sends an empty batch carrying an input batch's ack token to output `side`. */
static void sub_token(tm_subtask_t *sub, uint64_t token, int source, int side)
{
    tm_batch_t *t = tm_batch_new();
    if (t == NULL) {
        snprintf(sub->err, sizeof(sub->err), "out of memory");
        sub_fail(sub, TM_ENOMEM);
        return;
    }
    t->ack_token = token;
    t->ack_source = (int16_t)source;
    sub_route(sub, t, side);
}

/*
 * Sends the chain's held output on, with the ack token of the input batch
 * that produced it (invariant 4): on the held batch when the stage alone
 * owns it, else on an empty batch after it.
 */
static void sub_flush_held(tm_subtask_t *sub, uint64_t token, int source)
{
    tm_batch_t *b = sub->held;
    sub->held = NULL;
    bool durable = token != 0 && sub->st->p->policy == TM_ACK_SINK_DURABLE;
    bool carry = durable;
    if (b != NULL && carry && atomic_load(&b->refcount) == 1) {
        b->ack_token = token;
        b->ack_source = (int16_t)source;
        carry = false;
    }
    if (b != NULL)
        sub_route(sub, b, FAN_MAIN);
    if (carry)
        sub_token(sub, token, source, FAN_MAIN);
    /* Side outputs get the token on an empty batch of their own. */
    if (durable && sub->has_side)
        sub_token(sub, token, source, FAN_ANY_SIDE);
}

/* A side output's collector (ctx->side_out): its batches go straight to the edges that take it. */
static int side_emit(tm_collector_t *c, tm_batch_t *batch)
{
    tm_link_t *ln = (tm_link_t *)c;
    tm_subtask_t *sub = ln->sub;
    if (sub->failed) {
        tm_batch_unref(batch);
        return atomic_load(&sub->st->p->stop) ? TM_ESTOPPED : 0;
    }
    sub_route(sub, batch, ln->op);
    return 0;
}

/* Collector of operator `op`: into op+1, or the stage's output after the last. */
static int link_emit(tm_collector_t *c, tm_batch_t *batch)
{
    tm_link_t *ln = (tm_link_t *)c;
    tm_subtask_t *sub = ln->sub;
    if (atomic_load(&sub->st->p->stop) && sub->failed) {
        tm_batch_unref(batch);
        return TM_ESTOPPED;
    }
    atomic_fetch_add_explicit(&sub->metrics[ln->op].records_out, batch->count,
                              memory_order_relaxed);
    int next = ln->op + 1;
    if (next < sub->st->nops) {
        int rc = 0;
        if (batch->count > 0 && !sub->failed) {
            atomic_fetch_add_explicit(&sub->metrics[next].records_in, batch->count,
                                      memory_order_relaxed);
            rc = sub->hooks[next]->process(sub->ops[next], 0, batch, &sub->links[next].c,
                                           sub->err, sizeof(sub->err));
            if (rc != 0)
                sub_fail(sub, rc);
        }
        tm_batch_unref(batch);
        return rc;
    }
    if (sub->held != NULL)
        sub_flush_held(sub, 0, -1);
    sub->held = batch;
    return 0;
}

/*
 * Fails the subtask with a dead-letter writer's I/O error, if one has one;
 * with `flush`, first makes the written dead letters durable (at barriers,
 * before the snapshot, and at the end: deadletter.h invariant 2).
 */
static void sub_dead_letters(tm_subtask_t *sub, bool flush)
{
    for (int i = 0; sub->dls != NULL && i < sub->st->nops && !sub->failed; i++) {
        if (sub->dls[i] == NULL)
            continue;
        int rc = flush ? tm_dead_letter_flush(sub->dls[i], sub->err, sizeof(sub->err))
                       : tm_dead_letter_error(sub->dls[i], sub->err, sizeof(sub->err));
        if (rc != 0)
            sub_fail(sub, rc);
    }
}

static void sub_batch(tm_subtask_t *sub, const tm_event_t *ev)
{
    tm_batch_t *in = ev->u.batch;
    if (!sub->failed && in->count > 0) {
        atomic_fetch_add_explicit(&sub->metrics[0].records_in, in->count, memory_order_relaxed);
        int input = sub->slot_input[ev->producer];
        int rc = sub->hooks[0]->process(sub->ops[0], input, in, &sub->links[0].c, sub->err,
                                        sizeof(sub->err));
        if (rc != 0)
            sub_fail(sub, rc);
        sub_dead_letters(sub, false);
    }
    sub_flush_held(sub, sub->failed ? 0 : in->ack_token, in->ack_source);
}

/* The valve moved to ts_us: operators in chain order, then downstream. */
static void sub_watermark(tm_subtask_t *sub, int64_t ts_us)
{
    int64_t w = ts_us;
    for (int i = 0; i < sub->st->nops && !sub->failed; i++) {
        if (w <= atomic_load_explicit(&sub->wm_op[i], memory_order_relaxed))
            return;
        atomic_store_explicit(&sub->wm_op[i], w, memory_order_relaxed);
        int64_t fwd = w;
        if (sub->hooks[i]->on_watermark != NULL) {
            int rc = sub->hooks[i]->on_watermark(sub->ops[i], w, &fwd, &sub->links[i].c,
                                                 sub->err, sizeof(sub->err));
            if (rc != 0)
                sub_fail(sub, rc);
        }
        w = fwd;
    }
    sub_flush_held(sub, 0, -1);
    if (w > sub->wm_fwd) {
        sub->wm_fwd = w;
        tm_event_t ev = {.kind = TM_EV_WATERMARK};
        ev.u.ts_us = w;
        sub_control(sub, &ev);
    }
}

/* Snapshots the subtask's store for checkpoint `id` (DESIGN §6 step 2). */
static void sub_snapshot(tm_subtask_t *sub, uint64_t id)
{
    tm_stage_t *st = sub->st;
    tm_pipeline_t *p = st->p;
    if (sub->failed || st->stores == NULL || p->chk_root == NULL || p->policy != TM_ACK_CHECKPOINT)
        return;
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/chk-%" PRIu64 "/state/%s-%d", p->chk_root, id, st->dirname,
             sub->idx);
    /* Left by a run that crashed before this checkpoint completed. */
    tm_rm_rf(dir);
    int rc = tm_store_checkpoint(st->stores[sub->idx], dir, &sub->chk, sub->err, sizeof(sub->err));
    if (rc != 0) {
        sub_fail(sub, rc);
        return;
    }
    tm_failpoint("worker.after_snapshot");
}

static void sub_handle(tm_subtask_t *sub, tm_event_t *ev);

/* Barrier `id` aligned (invariant 3): flush, snapshot, forward, replay. */
static void sub_aligned(tm_subtask_t *sub, uint64_t id)
{
    for (int i = 0; i < sub->st->nops && !sub->failed; i++) {
        if (sub->hooks[i]->on_barrier == NULL)
            continue;
        int rc = sub->hooks[i]->on_barrier(sub->ops[i], id, &sub->links[i].c, sub->err,
                                           sizeof(sub->err));
        if (rc != 0)
            sub_fail(sub, rc);
    }
    sub_dead_letters(sub, true);
    sub_flush_held(sub, 0, -1);
    sub_snapshot(sub, id);
    tm_event_t bar = {.kind = TM_EV_BARRIER};
    bar.u.id = id;
    sub_control(sub, &bar);
    size_t n;
    tm_event_t *held = tm_input_take_held(&sub->input, &n);
    for (size_t i = 0; i < n; i++)
        sub_handle(sub, &held[i]);
    free(held);
}

/*
 * Forwards the subtask's idle status when it changed: idle while every
 * input slot that has not ended is idle (and one has not), as Flink's
 * watermark status travels through a task.
 */
static void sub_idle_check(tm_subtask_t *sub)
{
    bool idle = tm_input_idle(&sub->input);
    if (idle == sub->idle_fwd)
        return;
    sub->idle_fwd = idle;
    tm_event_t ev = {.kind = TM_EV_IDLE};
    ev.u.id = idle ? 1 : 0;
    sub_control(sub, &ev);
}

static void sub_handle(tm_subtask_t *sub, tm_event_t *ev)
{
    int held = tm_input_offer(&sub->input, ev);
    if (held != 0) {
        if (held < 0) {
            snprintf(sub->err, sizeof(sub->err), "out of memory while aligning a barrier");
            sub_fail(sub, held);
        }
        return;
    }
    switch (ev->kind) {
    case TM_EV_BATCH:
        sub_batch(sub, ev);
        break;
    case TM_EV_SYNC:
    case TM_EV_SCHEMA_CHANGE:
        sub_control(sub, ev);
        break;
    case TM_EV_BARRIER: {
        uint64_t id = tm_input_barrier(&sub->input, ev->producer, ev->u.id);
        if (id != 0)
            sub_aligned(sub, id);
        break;
    }
    case TM_EV_WATERMARK:
        if (tm_input_watermark(&sub->input, ev->producer, ev->u.ts_us))
            sub_watermark(sub, tm_input_watermark_out(&sub->input));
        break;
    case TM_EV_IDLE:
        /* Active again is forwarded before anything the slot sends next. */
        if (tm_input_set_idle(&sub->input, ev->producer, ev->u.id != 0))
            sub_watermark(sub, tm_input_watermark_out(&sub->input));
        sub_idle_check(sub);
        break;
    case TM_EV_END: {
        bool wm;
        uint64_t id = tm_input_end(&sub->input, ev->producer, &wm);
        if (wm)
            sub_watermark(sub, tm_input_watermark_out(&sub->input));
        if (!tm_input_all_ended(&sub->input))
            sub_idle_check(sub);
        if (id != 0)
            sub_aligned(sub, id);
        break;
    }
    default:
        break;
    }
    tm_event_release(ev);
}

static void *sub_main(void *arg)
{
    tm_subtask_t *sub = arg;
    tm_pipeline_t *p = sub->st->p;
    while (!tm_input_all_ended(&sub->input)) {
        tm_event_t ev;
        if (tm_queue_pop(&sub->queue, &ev, 100) == 0)
            sub_handle(sub, &ev);
    }
    for (int i = 0; i < sub->st->nops && !sub->failed; i++) {
        if (sub->hooks[i]->on_end == NULL)
            continue;
        int rc = sub->hooks[i]->on_end(sub->ops[i], &sub->links[i].c, sub->err, sizeof(sub->err));
        if (rc != 0)
            sub_fail(sub, rc);
    }
    sub_dead_letters(sub, true);
    sub_flush_held(sub, 0, -1);
    tm_event_t end = {.kind = TM_EV_END};
    sub_control(sub, &end);
    atomic_fetch_sub(&p->running, 1);
    return NULL;
}

/* ---- building the graph (thread: main, in tm_pipeline_start) ---- */

int tm_pipeline_set_source_event_time(tm_pipeline_t *p, int node, const char *column,
                                      int64_t delay_us, int64_t idle_timeout_ms)
{
    if (node < 0 || node >= p->nnodes || p->nodes[node].kind != NODE_SOURCE || p->built)
        return TM_EINVAL;
    tm_source_ctx_t *c = p->sources[p->nodes[node].idx];
    if (c->has_evtime)
        tm_evtime_destroy(&c->evtime);
    c->has_evtime = false;
    int rc = tm_evtime_init(&c->evtime, column, delay_us, idle_timeout_ms, tm_mono_ms());
    if (rc != 0)
        return rc;
    c->has_evtime = true;
    return 0;
}

static int build_outs(tm_pipeline_t *p, int node, int producer, tm_out_t **outs, int *nouts)
{
    int n = 0;
    for (int e = 0; e < p->nedges; e++)
        n += p->edges[e].from == node;
    *outs = calloc(n ? (size_t)n : 1, sizeof(**outs));
    if (*outs == NULL)
        return TM_ENOMEM;
    *nouts = 0;
    for (int e = 0; e < p->nedges; e++) {
        tm_edge_t *ed = &p->edges[e];
        if (ed->from != node)
            continue;
        tm_out_t *o = &(*outs)[(*nouts)++];
        o->edge = e;
        o->side_op = ed->side_op;
        int rc = tm_exchange_init(&o->x, ed->kind, ed->kind == TM_EXCHANGE_HASH ? &ed->key : NULL,
                                  ed->pto, stage_maxp(p, stage_of(p, ed->to)), producer,
                                  p->policy == TM_ACK_SINK_DURABLE);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Numbers every consumer's input slots (one per edge and producer subtask that reaches it). */
static int build_slots(tm_pipeline_t *p, char *errstr, size_t errstr_size)
{
    for (int e = 0; e < p->nedges; e++) {
        tm_edge_t *ed = &p->edges[e];
        ed->slot = malloc(sizeof(int) * (size_t)ed->pfrom * (size_t)ed->pto);
        if (ed->slot == NULL)
            return TM_ENOMEM;
        tm_exchange_t x;
        tm_exchange_key_t dummy = {NULL, NULL};
        for (int ps = 0; ps < ed->pfrom; ps++) {
            for (int c = 0; c < ed->pto; c++)
                ed->slot[ps * ed->pto + c] = -1;
            int targets[TM_MAX_PARALLELISM];
            int rc = tm_exchange_init(&x, ed->kind == TM_EXCHANGE_HASH ? TM_EXCHANGE_BROADCAST
                                                                       : ed->kind,
                                      &dummy, ed->pto, p->maxp, ps, false);
            if (rc != 0)
                return rc;
            int n = tm_exchange_control_targets(&x, targets);
            tm_exchange_destroy(&x);
            for (int t = 0; t < n; t++) {
                int c = targets[t];
                if (p->nodes[ed->to].kind == NODE_SINK) {
                    tm_sink_node_t *s = p->sinks[p->nodes[ed->to].idx];
                    tm_sink_slot_t *sl = realloc(s->slots, sizeof(*sl) * (size_t)(s->nslots + 1));
                    if (sl == NULL)
                        return TM_ENOMEM;
                    s->slots = sl;
                    sl = &s->slots[s->nslots];
                    memset(sl, 0, sizeof(*sl));
                    sl->edge = e;
                    sl->producer = ps;
                    sl->durable = calloc((size_t)p->nsources + 1, sizeof(*sl->durable));
                    sl->synced = calloc((size_t)p->nsources + 1, sizeof(*sl->synced));
                    sl->pending = calloc((size_t)p->nsources + 1, sizeof(*sl->pending));
                    if (sl->durable == NULL || sl->synced == NULL || sl->pending == NULL)
                        return TM_ENOMEM;
                    for (int k = 0; k <= p->nsources; k++) {
                        atomic_init(&sl->durable[k], 0);
                        atomic_init(&sl->synced[k], 0);
                    }
                    ed->slot[ps * ed->pto + c] = s->nslots++;
                } else {
                    tm_subtask_t *sub = stage_of(p, ed->to)->subs[c];
                    uint8_t *si = realloc(sub->slot_input, (size_t)sub->nslots + 1);
                    if (si == NULL)
                        return TM_ENOMEM;
                    sub->slot_input = si;
                    si[sub->nslots] = (uint8_t)ed->input;
                    ed->slot[ps * ed->pto + c] = sub->nslots++;
                }
            }
        }
    }
    for (int i = 0; i < p->nsinks; i++)
        if (p->sinks[i]->nslots == 0)
            return tm_seterr(errstr, errstr_size, TM_EINVAL, "sink %s has no input",
                             p->sinks[i]->name);
    for (int i = 0; i < p->nstages; i++) {
        tm_subtask_t *sub = p->stages[i]->subs[0];
        if (sub->nslots == 0)
            return tm_seterr(errstr, errstr_size, TM_EINVAL, "stage %s has no input",
                             p->stages[i]->name);
        /* Operator 0 takes as many inputs as it declares: each one linked, no other. */
        bool seen[2] = {false, false};
        for (int k = 0; k < sub->nslots; k++)
            seen[sub->slot_input[k]] = true;
        int want = sub->hooks[0]->ninputs == 2 ? 2 : 1;
        if (seen[1] && want == 1)
            return tm_seterr(errstr, errstr_size, TM_EINVAL,
                             "stage %s: operator %s has one input, but input 1 is linked",
                             p->stages[i]->name, sub->hooks[0]->name);
        if (want == 2 && (!seen[0] || !seen[1]))
            return tm_seterr(errstr, errstr_size, TM_EINVAL,
                             "stage %s: operator %s has two inputs, but input %d is not linked",
                             p->stages[i]->name, sub->hooks[0]->name, seen[0] ? 1 : 0);
    }
    return 0;
}

/* The sink slots that carry source `c`'s tokens: those whose producer it reaches. */
static int build_acks(tm_pipeline_t *p, tm_source_ctx_t *c)
{
    bool reach[sizeof(p->nodes) / sizeof(p->nodes[0])];
    memset(reach, 0, sizeof(reach));
    reach[c->node] = true;
    /* Edges were added in any order; iterate to a fixed point over the DAG. */
    for (bool changed = true; changed;) {
        changed = false;
        for (int e = 0; e < p->nedges; e++)
            if (reach[p->edges[e].from] && !reach[p->edges[e].to])
                reach[p->edges[e].to] = changed = true;
    }
    int n = 0;
    for (int i = 0; i < p->nsinks; i++)
        for (int k = 0; k < p->sinks[i]->nslots; k++)
            n += reach[p->edges[p->sinks[i]->slots[k].edge].from];
    c->acks = calloc(n ? (size_t)n : 1, sizeof(*c->acks));
    if (c->acks == NULL)
        return TM_ENOMEM;
    for (int i = 0; i < p->nsinks; i++)
        for (int k = 0; k < p->sinks[i]->nslots; k++)
            if (reach[p->edges[p->sinks[i]->slots[k].edge].from]) {
                c->acks[c->nacks][0] = i;
                c->acks[c->nacks++][1] = k;
            }
    return 0;
}

/* Creates subtask w of stage st and its operator instances (invariant 5). */
static int build_subtask(tm_pipeline_t *p, tm_stage_t *st, int w, char *errstr,
                         size_t errstr_size)
{
    tm_subtask_t *sub = calloc(1, sizeof(*sub));
    if (sub == NULL)
        return TM_ENOMEM;
    st->subs[w] = sub;
    sub->st = st;
    sub->idx = w;
    sub->wm_fwd = INT64_MIN;
    int n = st->nops;
    sub->ctx = calloc((size_t)n, sizeof(*sub->ctx));
    sub->ops = calloc((size_t)n, sizeof(*sub->ops));
    sub->hooks = calloc((size_t)n, sizeof(*sub->hooks));
    sub->metrics = calloc((size_t)n, sizeof(*sub->metrics));
    sub->links = calloc((size_t)n, sizeof(*sub->links));
    sub->wm_op = calloc((size_t)n, sizeof(*sub->wm_op));
    sub->dls = calloc((size_t)n, sizeof(*sub->dls));
    for (int e = 0; e < p->nedges; e++)
        sub->has_side |= p->edges[e].from == st->node && p->edges[e].side_op >= 0;
    if (sub->has_side && (sub->side_links = calloc((size_t)n, sizeof(*sub->side_links))) == NULL)
        return TM_ENOMEM;
    if (sub->dls == NULL || sub->ctx == NULL || sub->ops == NULL || sub->hooks == NULL || sub->metrics == NULL ||
        sub->links == NULL || sub->wm_op == NULL || tm_queue_init(&sub->queue, TM_QUEUE_CAPACITY))
        return TM_ENOMEM;
    int maxp = stage_maxp(p, st);
    tm_keygroup_range(w, st->parallelism, maxp, &sub->kg_first, &sub->kg_last);
    for (int i = 0; i < n; i++) {
        atomic_init(&sub->wm_op[i], INT64_MIN);
        sub->links[i].c.emit = link_emit;
        sub->links[i].c.arg = &sub->links[i];
        sub->links[i].sub = sub;
        sub->links[i].op = i;
        tm_operator_ctx_t *ctx = &sub->ctx[i];
        ctx->uid = st->facs[i].uid;
        ctx->job = p->job ? p->job : "";
        ctx->subtask = w;
        ctx->parallelism = st->parallelism;
        ctx->max_parallelism = maxp;
        ctx->kg_first = sub->kg_first;
        ctx->kg_last = sub->kg_last;
        ctx->store = st->stores != NULL ? st->stores[w] : NULL;
        ctx->on_error = p->on_error;
        ctx->metrics = &sub->metrics[i];
        for (int e = 0; sub->has_side && e < p->nedges; e++) {
            if (p->edges[e].from != st->node || p->edges[e].side_op != i)
                continue;
            sub->side_links[i].c.emit = side_emit;
            sub->side_links[i].c.arg = &sub->side_links[i];
            sub->side_links[i].sub = sub;
            sub->side_links[i].op = i;
            ctx->side_out = &sub->side_links[i].c;
        }
        if (p->on_error == TM_ON_ERROR_DEAD_LETTER && p->dl_dir != NULL) {
            sub->dls[i] = tm_dead_letter_new(p->dl_dir, ctx->job, ctx->uid, w);
            if (sub->dls[i] == NULL)
                return TM_ENOMEM;
            ctx->dead_letter = tm_dead_letter_callback;
            ctx->dead_letter_arg = sub->dls[i];
        }
        if (st->facs[i].stateful && ctx->store == NULL)
            return tm_seterr(errstr, errstr_size, TM_EINVAL,
                             "stage %s: operator %s is stateful but the stage has no stores",
                             st->name, ctx->uid);
        int rc = st->facs[i].make(st->facs[i].spec, ctx, &sub->hooks[i], &sub->ops[i], errstr,
                                  errstr_size);
        if (rc != 0)
            return rc;
        if (sub->hooks[i]->restore != NULL &&
            (rc = sub->hooks[i]->restore(sub->ops[i], errstr, errstr_size)) != 0)
            return rc;
    }
    return build_outs(p, st->node, w, &sub->outs, &sub->nouts);
}

static int build(tm_pipeline_t *p, char *errstr, size_t errstr_size)
{
    int rc = 0;
    for (int i = 0; i < p->nstages && rc == 0; i++) {
        tm_stage_t *st = p->stages[i];
        if (st->stateful && st->stores == NULL)
            return tm_seterr(errstr, errstr_size, TM_EINVAL,
                             "stage %s has stateful operators but no stores", st->name);
        st->subs = calloc((size_t)st->parallelism, sizeof(*st->subs));
        if (st->subs == NULL)
            return TM_ENOMEM;
        for (int w = 0; w < st->parallelism && rc == 0; w++)
            rc = build_subtask(p, st, w, errstr, errstr_size);
    }
    for (int i = 0; i < p->nsources && rc == 0; i++)
        rc = build_outs(p, p->sources[i]->node, 0, &p->sources[i]->outs, &p->sources[i]->nouts);
    if (rc == 0)
        rc = build_slots(p, errstr, errstr_size);
    for (int i = 0; i < p->nsources && rc == 0; i++)
        rc = build_acks(p, p->sources[i]);
    for (int i = 0; i < p->nsinks && rc == 0; i++)
        rc = tm_input_init(&p->sinks[i]->input, p->sinks[i]->nslots);
    for (int i = 0; i < p->nstages && rc == 0; i++)
        for (int w = 0; w < p->stages[i]->parallelism && rc == 0; w++)
            rc = tm_input_init(&p->stages[i]->subs[w]->input, p->stages[i]->subs[w]->nslots);
    if (rc == TM_ENOMEM && (errstr_size == 0 || errstr[0] == '\0'))
        tm_seterr(errstr, errstr_size, rc, "out of memory while building the job's graph");
    return rc;
}

/* ---- checkpoint coordination (thread: main) ---- */

void tm_pipeline_set_ack_policy(tm_pipeline_t *p, tm_ack_policy_t policy)
{
    p->policy = policy;
}

bool tm_pipeline_take_checkpoint_wanted(tm_pipeline_t *p)
{
    return atomic_exchange(&p->chk_wanted, false);
}

void tm_pipeline_request_barrier(tm_pipeline_t *p, uint64_t id)
{
    tm_pipeline_request_barrier_at(p, id, 0);
}

void tm_pipeline_request_barrier_at(tm_pipeline_t *p, uint64_t id, uint64_t at)
{
    atomic_store(&p->barrier_at, at);
    atomic_store(&p->barrier_req, id);
}

void tm_pipeline_barrier_at_cancel(tm_pipeline_t *p, uint64_t id)
{
    uint64_t cur = atomic_load(&p->barrier_missed);
    while (cur < id && !atomic_compare_exchange_weak(&p->barrier_missed, &cur, id))
        ;
    atomic_store(&p->barrier_at, 0);
}

bool tm_pipeline_barrier_missed(const tm_pipeline_t *p, uint64_t id)
{
    return atomic_load(&p->barrier_missed) >= id;
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

bool tm_pipeline_source_lag(const tm_pipeline_t *p, int i, int64_t *lag_us, int64_t *lag_bytes)
{
    *lag_us = atomic_load_explicit(&p->sources[i]->lag_us, memory_order_relaxed);
    *lag_bytes = atomic_load_explicit(&p->sources[i]->lag_bytes, memory_order_relaxed);
    return *lag_us != INT64_MIN;
}

bool tm_pipeline_source_snapshot(const tm_pipeline_t *p, int i, tm_snapshot_progress_t *out)
{
    tm_source_ctx_t *ctx = p->sources[i];
    pthread_mutex_lock(&ctx->snap_lock);
    bool seen = ctx->snap_seen;
    *out = ctx->snap;
    pthread_mutex_unlock(&ctx->snap_lock);
    return seen;
}

void tm_pipeline_sink_stats(const tm_pipeline_t *p, int i, tm_sink_stats_t *out)
{
    tm_sink_node_t *s = p->sinks[i];
    out->records = atomic_load_explicit(&s->records, memory_order_relaxed);
    out->commits = atomic_load_explicit(&s->commits, memory_order_relaxed);
    out->commit_seconds =
        (double)atomic_load_explicit(&s->commit_us, memory_order_relaxed) / 1e6;
    for (int b = 0; b < TM_SINK_COMMIT_BUCKETS; b++)
        out->buckets[b] = atomic_load_explicit(&s->commit_hist[b], memory_order_relaxed);
}

bool tm_pipeline_source_idle(const tm_pipeline_t *p, int i)
{
    return atomic_load_explicit(&p->sources[i]->idle, memory_order_relaxed);
}

bool tm_pipeline_op_watermark(const tm_pipeline_t *p, int stage, int op, int64_t *ts_us)
{
    tm_stage_t *st = p->stages[stage];
    int64_t min = INT64_MAX;
    for (int w = 0; st->subs != NULL && w < st->parallelism; w++) {
        if (st->subs[w] == NULL || st->subs[w]->wm_op == NULL)
            continue;
        int64_t v = atomic_load_explicit(&st->subs[w]->wm_op[op], memory_order_relaxed);
        /* A subtask without one yet (an idle or empty input) does not hide the others'. */
        if (v != INT64_MIN && v < min)
            min = v;
    }
    if (min == INT64_MAX)
        return false;
    *ts_us = min;
    return true;
}

bool tm_pipeline_source_watermark(const tm_pipeline_t *p, int i, int64_t *ts_us)
{
    int64_t wm = atomic_load(&p->sources[i]->watermark_us);
    *ts_us = wm;
    return wm != INT64_MIN;
}

int tm_pipeline_error(tm_pipeline_t *p)
{
    pthread_mutex_lock(&p->err_lock);
    int rc = p->first_rc;
    pthread_mutex_unlock(&p->err_lock);
    return rc;
}

/* ---- stage metrics (graph.h; thread: any once built) ---- */

int tm_pipeline_nstages(const tm_pipeline_t *p)
{
    return p->nstages;
}

const char *tm_pipeline_stage_name(const tm_pipeline_t *p, int stage)
{
    return p->stages[stage]->name;
}

int tm_pipeline_stage_parallelism(const tm_pipeline_t *p, int stage)
{
    return p->stages[stage]->parallelism;
}

int tm_pipeline_stage_nops(const tm_pipeline_t *p, int stage)
{
    return p->stages[stage]->nops;
}

const char *tm_pipeline_op_uid(const tm_pipeline_t *p, int stage, int op)
{
    return p->stages[stage]->facs[op].uid;
}

void tm_pipeline_op_metrics(const tm_pipeline_t *p, int stage, int op, tm_operator_metrics_t *sum)
{
    memset(sum, 0, sizeof(*sum));
    tm_stage_t *st = p->stages[stage];
    if (st->subs == NULL)
        return;
    for (int w = 0; w < st->parallelism; w++) {
        if (st->subs[w] == NULL || st->subs[w]->metrics == NULL)
            continue;
        tm_operator_metrics_t *m = &st->subs[w]->metrics[op];
#define SUM(f)                                                                                     \
    atomic_fetch_add_explicit(&sum->f, atomic_load_explicit(&m->f, memory_order_relaxed),          \
                              memory_order_relaxed)
        SUM(records_in);
        SUM(records_out);
        SUM(row_errors);
        SUM(rows_skipped);
        SUM(state_reads);
        SUM(dead_letters);
        SUM(state_rows[0]);
        SUM(state_rows[1]);
        SUM(lookup_cache_hits);
        SUM(lookup_cache_misses);
        SUM(lookup_queries);
        SUM(late_rows);
#undef SUM
        int n = atomic_load_explicit(&m->state_inputs, memory_order_relaxed);
        if (n > atomic_load_explicit(&sum->state_inputs, memory_order_relaxed))
            atomic_store_explicit(&sum->state_inputs, n, memory_order_relaxed);
    }
}

/* ---- life cycle ---- */

int tm_pipeline_start(tm_pipeline_t *p, char *errstr, size_t errstr_size)
{
    if (p->built)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "the pipeline was already started");
    p->built = true;
    int rc = build(p, errstr, errstr_size);
    if (rc != 0) {
        atomic_store(&p->stop, true);
        return rc;
    }
    int nsubs = 0;
    for (int i = 0; i < p->nstages; i++)
        nsubs += p->stages[i]->parallelism;
    int total = p->nsinks + nsubs + p->nsources, started = 0;
    atomic_store(&p->running, total);
    /* Consumers first, so that nothing is pushed into a queue nobody drains. */
    for (int i = 0; i < p->nsinks; i++, started++) {
        if (pthread_create(&p->sinks[i]->thread, NULL, sink_main, p->sinks[i]) != 0)
            goto fail;
        p->sinks[i]->started = true;
    }
    for (int i = p->nstages; i-- > 0;)
        for (int w = 0; w < p->stages[i]->parallelism; w++, started++) {
            tm_subtask_t *sub = p->stages[i]->subs[w];
            if (pthread_create(&sub->thread, NULL, sub_main, sub) != 0)
                goto fail;
            sub->started = sub->ran = true;
        }
    for (int i = 0; i < p->nsources; i++, started++) {
        if (pthread_create(&p->sources[i]->thread, NULL, source_main, p->sources[i]) != 0)
            goto fail;
        p->sources[i]->started = p->sources[i]->ran = true;
    }
    return 0;
fail:
    atomic_fetch_sub(&p->running, total - started);
    tm_pipeline_request_stop(p);
    return tm_seterr(errstr, errstr_size, TM_ENOMEM, "cannot start a thread of the job");
}

int tm_pipeline_join(tm_pipeline_t *p, char *errstr, size_t errstr_size)
{
    for (int i = 0; i < p->nsources; i++)
        if (p->sources[i]->started) {
            pthread_join(p->sources[i]->thread, NULL);
            p->sources[i]->started = false;
        }
    /*
     * A producer whose thread never started (start failed half way) sends
     * no END, so its consumers are told here; they run and drain.
     */
    for (int i = 0; i < p->nsources; i++)
        if (p->sources[i]->outs != NULL && !p->sources[i]->ran && atomic_load(&p->running) > 0) {
            tm_event_t ev = {.kind = TM_EV_END};
            fan_out(p, p->sources[i]->outs, p->sources[i]->nouts, 0, &ev, NULL, FAN_MAIN);
            p->sources[i]->ran = true;
        }
    for (int i = 0; i < p->nstages; i++)
        for (int w = 0; p->stages[i]->subs && w < p->stages[i]->parallelism; w++) {
            tm_subtask_t *sub = p->stages[i]->subs[w];
            if (sub != NULL && sub->outs != NULL && !sub->ran && p->nstages > 0 &&
                atomic_load(&p->running) > 0) {
                tm_event_t ev = {.kind = TM_EV_END};
                sub_control(sub, &ev);
                sub->ran = true;
            }
        }
    for (int i = 0; i < p->nstages; i++)
        for (int w = 0; p->stages[i]->subs && w < p->stages[i]->parallelism; w++) {
            tm_subtask_t *sub = p->stages[i]->subs[w];
            if (sub != NULL && sub->started) {
                pthread_join(sub->thread, NULL);
                sub->started = false;
            }
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

static void free_outs(tm_out_t *outs, int n)
{
    for (int i = 0; outs != NULL && i < n; i++)
        tm_exchange_destroy(&outs[i].x);
    free(outs);
}

static void free_subtask(tm_subtask_t *sub)
{
    if (sub == NULL)
        return;
    for (int i = 0; i < sub->st->nops && sub->ops != NULL; i++)
        if (sub->ops[i] != NULL && sub->hooks[i] != NULL && sub->hooks[i]->free != NULL)
            sub->hooks[i]->free(sub->ops[i]);
    tm_batch_unref(sub->held);
    free(sub->slot_input);
    free(sub->ctx);
    free(sub->ops);
    free(sub->hooks);
    free(sub->metrics);
    free(sub->links);
    free(sub->side_links);
    free((void *)sub->wm_op);
    for (int i = 0; sub->dls != NULL && i < sub->st->nops; i++)
        tm_dead_letter_free(sub->dls[i]);
    free(sub->dls);
    free_outs(sub->outs, sub->nouts);
    tm_input_destroy(&sub->input);
    if (sub->queue.ring != NULL)
        tm_queue_destroy(&sub->queue);
    free(sub);
}

tm_pipeline_t *tm_pipeline_free(tm_pipeline_t *p)
{
    if (p == NULL)
        return NULL;
    for (int i = 0; i < p->nsources; i++) {
        tm_source_ctx_t *c = p->sources[i];
        if (c->conn->source_free)
            c->conn->source_free(c->src);
        pend_free(&c->pend_batch);
        pend_free(&c->pend_schema);
        pend_free(&c->pend_bar);
        pend_free(&c->pend_wm);
        pend_free(&c->pend_idle);
        tm_evtime_destroy(&c->evtime);
        free_outs(c->outs, c->nouts);
        free(c->acks);
        free(c->bar_position);
        free(c->fin_position);
        pthread_mutex_destroy(&c->snap_lock);
        free(c->name);
        free(c);
    }
    for (int i = 0; i < p->nstages; i++) {
        tm_stage_t *st = p->stages[i];
        for (int w = 0; st->subs != NULL && w < st->parallelism; w++)
            free_subtask(st->subs[w]);
        free(st->subs);
        for (int k = 0; k < st->nops; k++)
            free((char *)st->facs[k].uid);
        free(st->facs);
        free(st->stores);
        free(st->name);
        free(st);
    }
    for (int i = 0; i < p->nsinks; i++) {
        tm_sink_node_t *s = p->sinks[i];
        if (s->conn->sink_free)
            s->conn->sink_free(s->sink);
        tm_queue_destroy(&s->queue);
        tm_input_destroy(&s->input);
        for (int k = 0; k < s->nslots; k++) {
            free(s->slots[k].durable);
            free(s->slots[k].synced);
            free(s->slots[k].pending);
        }
        free(s->slots);
        tm_buf_release(&s->handle);
        free(s->name);
        free(s);
    }
    for (int e = 0; e < p->nedges; e++)
        free(p->edges[e].slot);
    free(p->chk_root);
    free(p->dl_dir);
    free(p->job);
    free(p->progress);
    pthread_mutex_destroy(&p->err_lock);
    free(p);
    return NULL;
}
