/*
 * graph.h — how the planner describes the job's data flow to the runtime
 * (DESIGN §13): sources, stages (operator chains run by `parallelism`
 * subtasks, each on its own thread with its own state store), sinks, and
 * the edges between them with their exchange.
 *
 *     source ──edge(exchange)──► stage [op ─► op ─► op] × P ──edge──► sink
 *
 * Nodes are numbered in one space (the returned ids).  An edge's exchange
 * says which subtask of the consumer gets each record:
 *
 *   FORWARD    producer subtask i → consumer subtask i (equal parallelism;
 *              a source has one "subtask" and forwards to a stage of 1)
 *   HASH       by key group: key bytes = key.encode(row); key group =
 *              tm_keygroup_of(bytes); subtask = tm_keygroup_worker(kg, P).
 *              An update whose before and after images fall in different
 *              subtasks (or have different keys) is split into a delete to
 *              the first and an insert to the second.  Records without an
 *              image or without a usable key (truncate, message) go to
 *              every subtask (their handling is the operator's).
 *   BROADCAST  every record to every subtask
 *   SINGLE     everything to subtask 0 (the consumer has parallelism 1)
 *
 * A sink has one input slot per producer subtask and aligns barriers over
 * them (runtime/input.h).  Control events (barrier, watermark, schema
 * change, sync, end) go to every consumer subtask of every edge.
 *
 * Thread: main, before tm_pipeline_start().
 */
#ifndef TM_RUNTIME_GRAPH_H
#define TM_RUNTIME_GRAPH_H

#include "core/buf.h"
#include "runtime/operator.h"
#include "runtime/pipeline.h"

typedef enum tm_exchange_kind {
    TM_EXCHANGE_FORWARD = 1,
    TM_EXCHANGE_HASH,
    TM_EXCHANGE_BROADCAST,
    TM_EXCHANGE_SINGLE,
} tm_exchange_kind_t;

/*
 * The key of a row for a HASH exchange: appends its bytes to `out`.
 * Returns 0, TM_EINVAL when the row has no usable key (broadcast, as for
 * keyless records), or TM_ENOMEM.  Must agree with the key the consuming
 * operator stores state under, so that a key's state is always on the
 * subtask that receives it.  Thread: any (called by producers).
 */
typedef struct tm_exchange_key {
    int (*encode)(const void *arg, const tm_schema_t *schema, const tm_row_t *row, tm_buf_t *out);
    const void *arg; /* borrowed; outlives the job */
} tm_exchange_key_t;

/*
 * A stage: `nops` operators chained in order (the output of op i is the
 * input of op i+1; op 0 gets the stage's inputs), run by `parallelism`
 * subtasks.  `name` is for logs, explain and metrics ("stage 2: upsert →
 * calc").  A stage with a stateful operator needs stores: see
 * tm_pipeline_set_stage_stores().  Returns the node id or a negative TM_E*.
 */
int tm_pipeline_add_stage(tm_pipeline_t *p, const char *name, int parallelism,
                          const tm_operator_factory_t *ops, int nops, char *errstr,
                          size_t errstr_size);
/*
 * The stores of a stateful stage: stores[w] is subtask w's (borrowed; the
 * caller closes them after tm_pipeline_join; all share one
 * max_parallelism).  Subtask w owns key-group range w of n (keygroup.h).
 */
int tm_pipeline_set_stage_stores(tm_pipeline_t *p, int stage, tm_store_t *const *stores, int n);
/*
 * Connects node `from` (a source or a stage) to input `input` (0, or 1 for
 * the second input of a two-input operator) of node `to` (a stage or a
 * sink).  `key` is required for HASH and ignored otherwise.  Returns the
 * edge's id (>= 0) or a negative TM_E* with errstr filled.
 */
int tm_pipeline_link(tm_pipeline_t *p, int from, int to, int input, tm_exchange_kind_t kind,
                     const tm_exchange_key_t *key, char *errstr, size_t errstr_size);
/*
 * Connects the side output of operator `op` (0-based in the chain) of stage
 * `from` to sink `to`: batches the operator emits to ctx->side_out go there,
 * one input slot per subtask of the stage, while control events (barriers,
 * watermarks, end) reach it as they reach every consumer of the stage, so
 * the sink takes part in checkpoints like any other.  Under
 * TM_ACK_SINK_DURABLE each input batch's ack token reaches it too.  Returns
 * the edge's id (>= 0) or a negative TM_E* with errstr filled.
 */
int tm_pipeline_link_side(tm_pipeline_t *p, int from, int op, int to, char *errstr,
                          size_t errstr_size);
/* The job's on_error policy and dead-letter handling for every operator. */
void tm_pipeline_set_error_policy(tm_pipeline_t *p, tm_error_policy_t policy);
/*
 * Where rows rejected under TM_ON_ERROR_DEAD_LETTER go: each operator
 * instance appends them to <dir>/<uid, '/' as '_'>-<subtask>.jsonl
 * (runtime/deadletter.h), flushed and synced at every aligned barrier and
 * at the end; an I/O error fails the job naming the file.  `job` is the
 * job's name for the lines (and operator contexts).  Without a directory,
 * dead-letter rows are only counted and logged, as under 'skip'.  Call
 * before tm_pipeline_start.  Returns 0, TM_EINVAL after the start, or
 * TM_ENOMEM.
 */
int tm_pipeline_set_dead_letter_dir(tm_pipeline_t *p, const char *dir, const char *job);

/* Metrics (thread: any): stages, their subtasks and operators. */
int tm_pipeline_nstages(const tm_pipeline_t *p);
const char *tm_pipeline_stage_name(const tm_pipeline_t *p, int stage);
int tm_pipeline_stage_parallelism(const tm_pipeline_t *p, int stage);
int tm_pipeline_stage_nops(const tm_pipeline_t *p, int stage);
const char *tm_pipeline_op_uid(const tm_pipeline_t *p, int stage, int op);
/* Sums of the subtasks' counters of operator `op` of `stage`. */
void tm_pipeline_op_metrics(const tm_pipeline_t *p, int stage, int op, tm_operator_metrics_t *sum);

#endif
