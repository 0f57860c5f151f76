/*
 * connector.h — the one small interface every source and sink implements.
 *
 * A connector is a descriptor (nginx modules are the model): a name, the
 * kinds it supports, an options table and hooks.  The registry in
 * runtime/registry.c lists them; docs/connectors/NAME.md are checked against the
 * options tables by a unit test.
 *
 * Life cycle of a source (each step on the thread named):
 *
 *     source_new   (main)    parse options, no I/O; config errors only
 *     source_open  (main)    connect, check the database, create slots; may fail
 *                            with TM_ECONFIG / TM_ESOURCE / TM_ECONN
 *     source_run   (source)  loop until tm_source_should_stop(); emit batches
 *     source_free  (main)    after the thread has been joined
 *
 * and of a sink:
 *
 *     sink_new     (main)    parse options
 *     sink_open    (main)    create files / connect
 *     sink_write   (sink)    consume one batch; may buffer
 *     sink_flush   (sink)    make everything written so far durable
 *     sink_free    (main)
 *
 * and of a lookup table (a dimension read at processing time by a lookup
 * join, operators/lookup_join.h; one handle per subtask of the join):
 *
 *     lookup_new   (main)    parse options, no I/O; config errors only (explain
 *                            calls only this)
 *     lookup_open  (main)    connect; check that the table exists, that every
 *                            declared column exists with a compatible type and
 *                            that the declared PRIMARY KEY is a unique key of
 *                            the table (TM_ECONFIG / TM_ECONN)
 *     lookup_fetch (subtask) the rows for many keys in one round trip; retries
 *                            a lost connection itself (bounded), then fails
 *     lookup_free  (main)    after the subtask's thread has ended
 *
 * A lookup handle has no state worth checkpointing: a lookup is repeated
 * after a recovery.  Every lookup connector's options table has `lookup`
 * (bool), `lookup_cache_rows` (int), `lookup_ttl` (duration) and
 * `lookup_caching_missing_keys` (bool): the planner reads them for the
 * join's cache, which the operator owns (the connector does not cache).
 *
 * The checkpoint protocol (DESIGN §6) adds pre-commit/commit/abort/recover;
 * the slots exist now so that connectors can grow into them.
 *
 * Errors: hooks return 0 or a negative TM_E* code and fill errstr with a
 * message that names what is wrong and what to do.
 */
#ifndef TM_RUNTIME_CONNECTOR_H
#define TM_RUNTIME_CONNECTOR_H

#include "core/buf.h"
#include "core/options.h"
#include "core/row.h"
#include "core/schema.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TM_CONNECTOR_ABI 1

enum {
    TM_CONNECTOR_SOURCE = 1 << 0,
    TM_CONNECTOR_SINK = 1 << 1,
    TM_CONNECTOR_LOOKUP = 1 << 2,
    /*
     * The source only ever emits inserts (datagen): the planner gives its scan
     * the insert-only changelog mode, so no ChangelogNormalize is added for a
     * declared PRIMARY KEY and operators that need append-only input accept it.
     */
    TM_CONNECTOR_INSERT_ONLY = 1 << 3,
};

typedef struct tm_source tm_source_t; /* connector-private */
typedef struct tm_sink tm_sink_t;     /* connector-private */
typedef struct tm_lookup tm_lookup_t; /* connector-private */
typedef struct tm_source_ctx tm_source_ctx_t;

/* What the SQL layer hands a source. */
typedef struct tm_source_config {
    const char *name;           /* job-level table name, e.g. "shop" */
    const tm_options_t *opts;   /* validated against the connector's table */
    const tm_schema_t *declared; /* declared columns, or NULL for `()` */
    const char *state_dir;      /* the job's state directory (exists) */
    /*
     * The ack token recorded for this source by the last completed checkpoint,
     * or 0.  Everything up to it is already committed in every sink, so the
     * source must not emit it again (PostgreSQL: skip transactions whose end
     * LSN is at or below it).
     */
    uint64_t restore_token;
    /*
     * The position string this source recorded with that checkpoint's barrier
     * (tm_source_emit_barrier), or NULL.  Sources whose position does not fit
     * a token (Kafka: offsets per partition) resume from it.
     */
    const char *restore_position;
    const char *job; /* the job's name (the job file's base name without .sql) */
} tm_source_config_t;

typedef struct tm_sink_config {
    const char *name;
    const tm_options_t *opts;
    const tm_schema_t *declared;
    const char *state_dir;
    /* The job runs checkpoints: a sink with 2PC stages its output per epoch. */
    bool checkpointing;
    const char *job;                /* the job's name (job file base name without .sql) */
    int64_t checkpoint_interval_ms; /* 0 when checkpoints are off */
    /*
     * The planner feeds this keyed sink one source's upserts in the source's
     * order per key (plan.c, sink_takes_upserts): an update's before image may
     * be missing or hold only the key, and an insert may replace a row the
     * key already has.  Only the PostgreSQL sink is planned this way.
     */
    bool upserts;
    /*
     * The job's on_error policy for rows the target rejects (a sink that can
     * tell one row's error from its batch's): 0 fail, 1 skip, 2 dead-letter
     * (tm_error_policy_t's values), and the directory dead letters go to
     * (runtime/deadletter.h; NULL unless 2).
     */
    int on_error;
    const char *dead_letter_dir;
} tm_sink_config_t;

/*
 * What the planner hands a lookup table.  The keys a lookup join passes to
 * lookup_fetch are rows of `key_schema` (one column per key, typed as the
 * join compares them: the common type of both sides' key expressions); key
 * k is compared with declared column key_cols[k] by the database's own
 * equality (so an int8 probe finds an int4 column).  key_cols covers the
 * declared PRIMARY KEY exactly (the planner checks it).
 */
typedef struct tm_lookup_config {
    const char *name;              /* job-level table name, e.g. "dims" */
    const tm_options_t *opts;      /* validated against lookup_options */
    const tm_schema_t *declared;   /* declared columns with their PRIMARY KEY; never NULL */
    const int *key_cols;           /* declared columns, pairwise with key_schema's columns */
    const tm_schema_t *key_schema; /* the probe keys' types; NULL = the key columns' own */
    int nkeys;
    const char *job; /* the job's name */
} tm_lookup_config_t;

/*
 * lookup_fetch's callback: `row` (laid out as cfg->declared, valid only during
 * the call) matched key number `key` of the request.  Non-zero stops the
 * fetch and is returned by it (TM_ENOMEM).
 */
typedef int (*tm_lookup_row_fn)(void *arg, int key, const tm_row_t *row);

typedef struct tm_connector {
    int abi;
    const char *name;
    unsigned kinds;
    const char *doc;
    const tm_option_def_t *source_options;
    const tm_option_def_t *sink_options;
    const char *option_prefix; /* passthrough prefix such as "kafka.", or NULL */
    const tm_option_def_t *lookup_options; /* TM_CONNECTOR_LOOKUP */

    int (*source_new)(tm_source_t **out, const tm_source_config_t *cfg, char *errstr,
                      size_t errstr_size);
    int (*source_open)(tm_source_t *src, char *errstr, size_t errstr_size);
    int (*source_run)(tm_source_t *src, tm_source_ctx_t *ctx, char *errstr, size_t errstr_size);
    /* Human-readable lines for explain (tables, slot, snapshot mode). May be NULL. */
    void (*source_describe)(const tm_source_t *src, void (*line)(void *arg, const char *text),
                            void *arg);
    void (*source_free)(tm_source_t *src);

    int (*sink_new)(tm_sink_t **out, const tm_sink_config_t *cfg, char *errstr,
                    size_t errstr_size);
    int (*sink_open)(tm_sink_t *sink, char *errstr, size_t errstr_size);
    int (*sink_write)(tm_sink_t *sink, const tm_batch_t *batch, char *errstr, size_t errstr_size);
    int (*sink_flush)(tm_sink_t *sink, char *errstr, size_t errstr_size);
    /*
     * Checkpoint protocol (DESIGN §6); NULL for a sink without two-phase
     * commit, which is then at-least-once and is only flushed at barriers.
     *
     * sink_precommit (sink thread): make everything received before barrier
     *     `epoch` durable but invisible, and describe it in `handle` (text the
     *     coordinator stores in chk-N/_metadata).
     * sink_commit (sink thread): make epoch visible.  Must be idempotent.
     *     `progress` is the checkpoint's progress record, JSON text
     *     {"job":J,"checkpoint":N,"sources":{NAME:POSITION,...}}; a
     *     decision-log sink writes it inside the same transaction as the
     *     data.  Others may ignore it.
     * sink_recover (main, before the threads start): the last completed
     *     checkpoint is `epoch` with this sink's `handle` (0/NULL if none):
     *     commit it if that has not happened yet, discard anything newer.
     */
    int (*sink_precommit)(tm_sink_t *sink, uint64_t epoch, tm_buf_t *handle, char *errstr,
                          size_t errstr_size);
    int (*sink_commit)(tm_sink_t *sink, uint64_t epoch, const char *progress, char *errstr,
                       size_t errstr_size);
    int (*sink_recover)(tm_sink_t *sink, uint64_t epoch, const char *handle, char *errstr,
                        size_t errstr_size);
    /*
     * Asynchronous pre-commit (sink thread; NULL if the sink has none).  A
     * sink that has it may return TM_EAGAIN from sink_precommit after filling
     * `handle`: the epoch's writes go on in the background (the PostgreSQL
     * sink: its own thread writing and preparing the epoch), and the runtime
     * keeps delivering the next epoch's batches to sink_write meanwhile,
     * instead of stalling the pipeline behind the sink for as long as the
     * target takes.  The runtime then calls sink_precommit_poll, waiting up
     * to `timeout_ms` (-1: until it is over), until it sets *done; only then
     * is the epoch pre-committed (its checkpoint can complete), so nothing is
     * acknowledged before it is durable.  A non-zero return is the
     * pre-commit's failure and fails the job.  At most one pre-commit is in
     * flight: the runtime waits for it before the next barrier's, before
     * sink_commit, and before the sink thread ends.
     */
    int (*sink_precommit_poll)(tm_sink_t *sink, int timeout_ms, bool *done, char *errstr,
                               size_t errstr_size);
    /*
     * The job's decision log (DESIGN §6; NULL for sinks that never are one).
     * A sink whose commit cannot be redone after a crash (Kafka: a new
     * producer's init_transactions aborts what the old one left open) decides
     * whether checkpoint N completed.  The coordinator writes chk-N/_metadata
     * as pending, then the decision-log sink commits N (its commit is the
     * commit point), and only then do the other sinks commit N and sources
     * acknowledge it.
     *
     * sink_is_decision_log (main, after sink_new): true if this sink, as
     *     configured, is the decision log (Kafka: delivery = 'exactly-once').
     * sink_decided (main, after sink_open, before sink_recover): fence
     *     earlier instances and abort what they left open, then set *epoch
     *     to the newest checkpoint whose commit this sink recorded (0 if
     *     none).  Recovery then uses that checkpoint, not a newer pending one.
     */
    bool (*sink_is_decision_log)(const tm_sink_t *sink);
    int (*sink_decided)(tm_sink_t *sink, uint64_t *epoch, char *errstr, size_t errstr_size);
    /*
     * sink_poll (sink thread; NULL if not needed): called about every 100 ms
     * while no event arrives, so a sink whose writes complete in the
     * background (Kafka) reports a failed delivery or a stall now rather than
     * at the next flush or checkpoint.  Non-zero fails the job.
     */
    int (*sink_poll)(tm_sink_t *sink, char *errstr, size_t errstr_size);
    /*
     * sink_acked (sink thread; NULL if not supported): without checkpoints,
     * a sink whose writes become durable in the background (Kafka: delivery
     * reports) sets *writes to how many sink_write calls, counted from the
     * first, are durable in full.  The runtime then acknowledges their
     * sources' positions without a blocking sink_flush every
     * sink_flush_interval; it still flushes on a sync request and at the end.
     * Non-zero fails the job.
     */
    int (*sink_acked)(tm_sink_t *sink, uint64_t *writes, char *errstr, size_t errstr_size);
    void (*sink_free)(tm_sink_t *sink);

    /* Lookup tables (TM_CONNECTOR_LOOKUP); see the life cycle above. */
    int (*lookup_new)(tm_lookup_t **out, const tm_lookup_config_t *cfg, char *errstr,
                      size_t errstr_size);
    int (*lookup_open)(tm_lookup_t *lk, char *errstr, size_t errstr_size);
    /*
     * Calls fn once per key of keys[0 .. nkeys-1] that has a row (at most one:
     * the key is the table's primary key); a key without a row gets no call.
     * No key column of keys is NULL (the join never looks NULL up).  One round
     * trip for all keys.  0, or TM_ECONN / TM_ESOURCE with a message naming
     * the table and the server's error once the connector's retries are spent.
     */
    int (*lookup_fetch)(tm_lookup_t *lk, const tm_row_t *const *keys, int nkeys,
                        tm_lookup_row_fn fn, void *arg, char *errstr, size_t errstr_size);
    /* Human-readable lines for explain (table, key, query). May be NULL. */
    void (*lookup_describe)(const tm_lookup_t *lk, void (*line)(void *arg, const char *text),
                            void *arg);
    void (*lookup_free)(tm_lookup_t *lk);
    /*
     * sink_delivery (main, after sink_new, no I/O; NULL if not needed): the
     * delivery guarantee as configured, in words, for explain, when it does
     * not follow from the hooks alone (PostgreSQL: at-least-once despite a
     * sink_precommit, or exactly-once by two-phase commit or as the decision
     * log depending on the target server).  A static string.
     */
    const char *(*sink_delivery)(const tm_sink_t *sink, bool checkpointing);
} tm_connector_t;

/*
 * The event-time options of a source's options table (tm_source_emit_part):
 * put both in the table of every source connector and document them in its
 * docs/connectors page.  The SQL layer parses `watermark` (sql/job_watermark.c)
 * and the runtime generates the watermarks (runtime/evtime.h).
 */
#define TM_SOURCE_OPT_WATERMARK                                                                    \
    {"watermark", TM_OPT_STRING, false, NULL, NULL,                                                \
     "event-time column and bounded out-of-orderness, e.g. 'created_at - INTERVAL ''5 "            \
     "seconds''': per partition the newest event time minus the delay, the minimum over "          \
     "partitions (no watermarks without it)"}
#define TM_SOURCE_OPT_IDLE_TIMEOUT                                                                 \
    {"idle_timeout", TM_OPT_DURATION, false, NULL, NULL,                                           \
     "a partition without records for this long stops holding the watermark back, and a source "  \
     "whose partitions are all idle is ignored downstream until its next record (default: "        \
     "never; 0 = never)"}

/* Looks a connector up by name; NULL if unknown. */
const tm_connector_t *tm_connector_find(const char *name);
/* NULL-terminated list of all connectors. */
const tm_connector_t *const *tm_connector_all(void);

/* ---- What the runtime offers a running source (thread: source) ---- */

/*
 * Hands a filled batch to every downstream queue.  Ownership passes to the
 * runtime on success.  Waits at most `timeout_ms` for room (0 = do not wait):
 * on TM_EAGAIN the caller still owns the batch and must retry later WITH THE
 * SAME BATCH, after doing its housekeeping (a PostgreSQL source answers
 * keepalives meanwhile); with several downstream queues the runtime resumes
 * where it stopped.  Returns TM_ESTOPPED when the job is stopping; the caller
 * then still owns the batch and should free it and return.
 */
int tm_source_emit(tm_source_ctx_t *ctx, tm_batch_t *batch, int timeout_ms);
/* Sends a schema-change control event downstream (takes a schema ref). */
int tm_source_emit_schema(tm_source_ctx_t *ctx, tm_schema_t *schema, int timeout_ms);
/* True once the job has been asked to stop. */
bool tm_source_should_stop(const tm_source_ctx_t *ctx);
/*
 * The highest ack token (see tm_batch_t.ack_token) that every sink has made
 * durable — or, under checkpointing, that a completed checkpoint covers.  The
 * source may release upstream resources up to it (PostgreSQL: flush LSN).
 * 0 until something is acknowledged.
 */
uint64_t tm_source_acked(const tm_source_ctx_t *ctx);
/*
 * Asks every sink downstream to make everything emitted so far durable, and
 * waits at most timeout_ms until tm_source_acked() covers the last emitted
 * ack token.  Used when stopping (so the final status update acknowledges
 * everything) and by snapshot-only runs.  0, TM_EAGAIN on timeout, or
 * TM_ESTOPPED if the job failed meanwhile.
 */
int tm_source_sync(tm_source_ctx_t *ctx, int timeout_ms);
/*
 * Checkpoints (thread: source).  tm_source_barrier_due() returns the id of a
 * checkpoint whose barrier this source has not injected yet, or 0.  The source
 * injects it at its next consistent point (PostgreSQL: between transactions,
 * never inside one) with tm_source_emit_barrier(), after emitting everything
 * before that point.  `token` is the ack token complete at that point and
 * `position` a human-readable form of it for _metadata and `inspect`.
 * Same retry rule as tm_source_emit(): on TM_EAGAIN call again with the same id.
 */
uint64_t tm_source_barrier_due(const tm_source_ctx_t *ctx);
int tm_source_emit_barrier(tm_source_ctx_t *ctx, uint64_t id, uint64_t token, const char *position,
                           int timeout_ms);
/*
 * The end of a bounded input (thread: source).  When source_run returns 0
 * (its input is complete, not a stop), the runtime sends the end-of-time
 * watermark and, with checkpoints, places the next checkpoint's barrier for
 * the source and waits until that checkpoint completed before it sends END,
 * so that two-phase-commit sinks commit the input's last stretch (pipeline.c
 * invariant 8).  A source that knows where its input ended calls
 * tm_source_finished() before returning, with the token and position right
 * after its last row: the final barrier carries them, so a job restored from
 * that checkpoint reads nothing twice.  Without the call the final barrier
 * carries the position of the source's previous barrier.
 */
void tm_source_finished(tm_source_ctx_t *ctx, uint64_t token, const char *position);
/*
 * A barrier at a position (tidemark verify, docs/connectors/postgres-sink.md):
 * tm_source_barrier_at() is 0 when the due barrier may go at any consistent
 * point, else the source position it must go at: for a PostgreSQL source an
 * LSN, meaning after every transaction that commits before it and before
 * every other one.  A source that has already emitted a transaction beyond it
 * places the barrier at its next consistent point and calls
 * tm_source_barrier_missed(); a source that cannot place barriers by position
 * ignores `at` (the caller checks the job's sources first).
 */
uint64_t tm_source_barrier_at(const tm_source_ctx_t *ctx);
void tm_source_barrier_missed(tm_source_ctx_t *ctx, uint64_t id);
/*
 * A pause (tidemark verify chooses its point while the sources hold still):
 * while tm_source_pause_wanted() a source that supports barriers at a
 * position stops taking new input at its next consistent point, says so
 * with tm_source_set_paused(ctx, true), keeps serving its connection and
 * placing barriers, and sets it false when it goes on.  A pause lasts
 * seconds at most.
 */
bool tm_source_pause_wanted(const tm_source_ctx_t *ctx);
void tm_source_set_paused(tm_source_ctx_t *ctx, bool paused);
/*
 * Event time (thread: source; DESIGN §2, §4).  Sends watermark(ts_us, µs since
 * the epoch) to everything downstream of this source, between batches and in
 * order with them: it says no later record of this source has an event time
 * below ts_us.  Watermarks are monotonic per source: a value not above the
 * last one emitted is dropped and 0 returned.  The runtime records the last
 * one for metrics (tm_pipeline_source_watermark).  Same retry rule as
 * tm_source_emit_barrier(): on TM_EAGAIN call again (a newer value may take
 * the place of the one that waited; an older one finishes it); TM_ESTOPPED
 * when the job is stopping.
 */
int tm_source_emit_watermark(tm_source_ctx_t *ctx, int64_t ts_us, int timeout_ms);
/*
 * Generated watermarks (DESIGN §4; runtime/evtime.h).  When the table
 * declares `watermark = 'col - INTERVAL …'`, the runtime makes the source's
 * watermarks itself from the emitted records: per partition the newest
 * event time minus the delay, the minimum over partitions that are not idle
 * (`idle_timeout`), emitted at most every 200 ms; a source whose partitions
 * are all idle is marked idle downstream until its next batch.  A source
 * only has to:
 *
 *   - say which partition each record came from: tm_source_emit() means
 *     partition 0 (a database stream is one partition), tm_source_emit_part()
 *     a batch of one partition, tm_source_emit_parts() one per record;
 *   - call tm_source_tick() about every 100 ms while it emits nothing
 *     (waiting for input, heartbeats), so idle partitions are noticed;
 *   - if it reads several partitions, announce them with
 *     tm_source_partitions() as they are assigned, so that a partition
 *     without records holds the watermark back until its idle_timeout, and
 *     tm_source_partition_active() for input that is not a record.
 *
 * Same retry rules as tm_source_emit().  All are cheap no-ops for a source
 * without generated watermarks.  Thread: source.
 */
int tm_source_emit_part(tm_source_ctx_t *ctx, tm_batch_t *batch, int partition, int timeout_ms);
/* parts[i] is the partition of batch->recs[i]; NULL: all partition 0.  Read during the call only. */
int tm_source_emit_parts(tm_source_ctx_t *ctx, tm_batch_t *batch, const int32_t *parts,
                         int timeout_ms);
/* 0, TM_EAGAIN (nothing lost: retried at the next call) or TM_ESTOPPED. */
int tm_source_tick(tm_source_ctx_t *ctx, int timeout_ms);
void tm_source_partitions(tm_source_ctx_t *ctx, int n);
void tm_source_partition_active(tm_source_ctx_t *ctx, int partition);
/*
 * For a source whose default event time is the commit time (Kafka: Debezium's
 * source.ts_ms): unless the table declares `watermark`, generate watermarks
 * from the records' commit time (src.ts_us, else proc_us) minus delay_us.
 * False when the table's `watermark` column is used instead.
 */
bool tm_source_use_commit_time(tm_source_ctx_t *ctx, int64_t delay_us, int64_t idle_timeout_ms);
/* The job's name for this source (its CREATE TABLE name). */
const char *tm_source_name(const tm_source_ctx_t *ctx);
/* Marks the source as connected and streaming (readiness, metrics). */
void tm_source_set_ready(tm_source_ctx_t *ctx, bool ready);
/* Counters for metrics. */
void tm_source_count(tm_source_ctx_t *ctx, uint64_t events, uint64_t bytes);
/*
 * How far the source's server is ahead of what this source has read, in
 * bytes (PostgreSQL: the server's WAL end minus the last position received),
 * for tidemark_source_lag_bytes; -1 (the initial value) when unknown.  The
 * lag in seconds needs no call: tm_source_emit() measures it from the
 * records' source timestamps.
 */
void tm_source_set_lag_bytes(tm_source_ctx_t *ctx, int64_t bytes);
/*
 * Snapshot progress for /metrics and /v1/job: `table` is being read (rows so
 * far, PostgreSQL's or the connector's estimate of the total, < 0 unknown),
 * or was read completely (`done`).  Call it per chunk; cheap.
 */
void tm_source_snapshot_progress(tm_source_ctx_t *ctx, const char *table, uint64_t rows,
                                 double estimate, bool done);

#endif
