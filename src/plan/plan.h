/*
 * plan.h — the job's plan: a graph of nodes (Scan, Upsert, Calc, GroupAgg,
 * Join, WindowAgg, TopN, IntervalJoin, Sink) each carrying its changelog
 * mode, unique key, the exchange into it, parallelism, state and a stable
 * uid (DESIGN §8, §13).  The planner (plan.c) makes it from a parsed job
 * through the binder (sql/bind.h); explain.c prints it; build.c turns it
 * into the runtime graph (runtime/graph.h).
 *
 * Changelog modes follow Flink's inference:
 *
 *   insert-only   +I only
 *   retract       +I -U +U -D; every update and delete carries the row it
 *                 retracts (`before_images`)
 *   upsert        +I +U -D keyed by `key`; an update may lack its before
 *                 image unless before_images is set
 *
 *   Scan      a snapshot-only source (snapshot = 'initial_only') is an
 *             insert-only stream (unique on its declared key, no Upsert);
 *             otherwise a source with a declared PRIMARY KEY is an upsert stream on
 *             it (a before image may carry only the key); without one it is
 *             taken as a retract stream with full images (REPLICA IDENTITY
 *             FULL is the user's promise; explain says so)
 *   Upsert    (ChangelogNormalize) upsert → retract with exact before images,
 *             keyed by the source's primary key; hash-partitioned by it
 *   Calc      keeps its input's mode; the unique key survives when every key
 *             column is projected as a bare column
 *   GroupAgg  needs before images; emits upsert keyed by the group columns,
 *             with before images; hash-partitioned by them (SINGLE, one
 *             subtask, for a global aggregate)
 *   Join      two inputs (input: left, input2: right), each HASH-exchanged
 *             on its join keys (SINGLE, one subtask, for NOT IN's
 *             null-aware anti join); needs before images; emits retract
 *             with before images.  Unique key: SEMI/ANTI keep the left's;
 *             INNER/LEFT keep the left's when the right's unique key is
 *             within its join keys (each left row matches at most one
 *             right row), INNER/RIGHT the right's symmetrically, and
 *             otherwise INNER/LEFT/RIGHT/FULL are unique on the left's key
 *             plus the right's when both have one
 *   LookupJoin  one input (the stream, the probe side), FORWARD: no
 *             exchange, no state; keeps the input's mode, before images and
 *             unique key (shifted when the lookup table is the left side of
 *             an INNER join).  The lookup table (a table of TM_ROLE_LOOKUP)
 *             may only be the right side of a LEFT JOIN or either side of an
 *             INNER JOIN, with ON equalities covering its whole PRIMARY KEY
 *             against expressions of the other side; anything else that reads
 *             it is a planning error at its position
 *   WindowAgg window aggregation over a window TVF (operators/window_agg.h):
 *             after a calc computing [event time, non-window keys, aggregate
 *             arguments], HASH-exchanged on the non-window keys (SINGLE when
 *             the window is the only key); needs before images; emits
 *             insert-only rows unique on the group columns, or a retract
 *             stream with before images under SET allowed_lateness > 0
 *   TopN      row_number() OVER (PARTITION BY p ORDER BY o) filtered by
 *             rn <= N: a calc computes the query's other select-list items,
 *             then TopN, HASH-exchanged on p (SINGLE, one subtask, without
 *             PARTITION BY); needs before images; emits retract with before
 *             images, unique on (p, rn) when the enclosing query reads rn,
 *             else on its input's unique key (no rank number: rows entering
 *             and leaving the top N only)
 *   TopN over window_start and window_end (a window Top-N, Flink's
 *             WindowRank): when the input is insert-only and PARTITION BY
 *             holds window_start and window_end of a WindowAgg or WindowTVF
 *             (followed through bare-column calcs), the TopN runs
 *             operators/window_rank.h instead: it emits each window's top N
 *             once, when the watermark passes the window's end; insert-only
 *   WindowTVF  a window Top-N or deduplication straight over TUMBLE, HOP or
 *             CUMULATE (no GROUP BY): after a calc of the table's columns
 *             (and WHERE), FORWARD, stateless, it emits each row once per
 *             window with window_start, window_end and window_time appended;
 *             insert-only in, insert-only out
 *   IntervalJoin  two insert-only inputs joined on keys and a time range
 *             (right.t + lower <= left.t <= right.t + upper), each HASH-
 *             exchanged on its join keys; emits insert-only (outer rows
 *             padded once the watermark passes their range).  An interval
 *             condition over an input that is not insert-only stays a Join
 *             with the bounds in its residual (interval_as_join; Flink does
 *             the same), whose state the watermark does not clean
 *             With SET late_data_sink = 'table' every window aggregation
 *             also writes its late rows (win.late_schema) to that table's
 *             sink through a side output (late_table; build.c links it)
 *   Sink      takes what arrives; a sink that declares a PRIMARY KEY receives
 *             upserts on it, and the key must be the query's unique key
 *
 * Uids are derived from the job, so the same job gives the same uids and a
 * changed job keeps the uids (and state) of the parts it kept:
 *   upsert/<source>/<sink>      the upsert of INSERT INTO sink (the format of
 *                               the first version, so its state restores)
 *   agg/<sink>/<n>-<hash>       the n-th aggregation from the source of
 *                               INSERT INTO sink; hash = a fingerprint of its
 *                               keys, arguments and aggregates, so changing
 *                               the aggregation starts new state instead of
 *                               misreading the old
 *   join/<sink>/<n>-<hash>      the n-th join of INSERT INTO sink; hash = a
 *                               fingerprint of its type, keys, residual and
 *                               both sides' layouts
 *   upsert/<source>/<sink>/<k>  the k-th (k >= 2) upsert of one source in
 *                               one INSERT (a self-join)
 *   scan/<source>, calc/<sink>/<n>, sink/<sink>   stateless (explain, metrics)
 *   lookup/<sink>/<n>-<table>   the n-th lookup join of INSERT INTO sink
 *                               (stateless)
 *   window/<sink>/<n>-<hash>    the n-th aggregation (window aggregations
 *                               count with the plain ones) of INSERT INTO
 *                               sink; hash = as agg/, plus the window
 *                               function and its sizes
 *   join/<sink>/<n>-<hash>      also an interval join (it counts as a join;
 *                               the hash covers its time bounds)
 *   topn/<sink>/<n>-<hash>      the n-th Top-N of INSERT INTO sink; hash = a
 *                               fingerprint of its partition, order, N, rank
 *                               mode and input layout
 *
 * Ownership: a plan borrows its job (which must outlive it) and owns its
 * nodes, expressions (one pool) and operator specs; the runtime graph
 * built from it borrows the specs, so the plan must outlive the pipeline.
 * Thread: the main thread.
 */
#ifndef TM_PLAN_PLAN_H
#define TM_PLAN_PLAN_H

#include "expr/agg.h"
#include "expr/expr.h"
#include "operators/calc.h"
#include "operators/group_agg.h"
#include "operators/interval_join.h"
#include "operators/join.h"
#include "operators/lookup_join.h"
#include "operators/topn.h"
#include "operators/window_agg.h"
#include "operators/window_rank.h"
#include "runtime/graph.h"
#include "sql/bind.h"
#include "sql/job.h"

#include <stdbool.h>
#include <stdio.h>

typedef enum tm_plan_kind {
    TM_PLAN_SCAN = 1,
    TM_PLAN_UPSERT,
    TM_PLAN_CALC,
    TM_PLAN_GROUP_AGG,
    TM_PLAN_SINK,
    TM_PLAN_JOIN,
    TM_PLAN_WINDOW_AGG,
    TM_PLAN_TOPN,
    TM_PLAN_LOOKUP_JOIN,
    TM_PLAN_INTERVAL_JOIN,
    TM_PLAN_WINDOW_TVF,
} tm_plan_kind_t;

typedef enum tm_changelog_mode {
    TM_MODE_INSERT_ONLY = 1,
    TM_MODE_RETRACT,
    TM_MODE_UPSERT,
} tm_changelog_mode_t;

typedef struct tm_plan_node tm_plan_node_t;

struct tm_plan_node {
    tm_plan_kind_t kind;
    int id;               /* 1-based, in plan order (inputs before consumers) */
    tm_plan_node_t *input; /* NULL for a Scan */
    int insert;           /* the INSERT it belongs to; -1 for a Scan (shared) */
    int table;            /* Scan, Upsert, Sink: the job table */
    char *uid;

    /* Output. */
    tm_schema_t *schema;  /* NULL: rows keep their source's schema (passthrough) */
    tm_changelog_mode_t mode;
    bool before_images;   /* updates/deletes carry the full row they retract */
    int *key;             /* unique key: output columns; NULL with nkey > 0 = the */
    int nkey;             /* source's own primary key (passthrough) */

    /* How the input reaches it, and who runs it. */
    tm_exchange_kind_t exchange; /* FORWARD, HASH (on exchange_cols), SINGLE */
    int *exchange_cols;          /* input columns; NULL = the records' primary key */
    int nexchange;
    int parallelism;
    bool stateful;
    int stage; /* build: the stage (operator chain) it runs in, -1 for scans and sinks */

    /* Calc. */
    tm_calc_spec_t calc;
    tm_expr_t **calc_exprs;
    const char *calc_role; /* "project", "pre-aggregate", "having" (explain) */
    /* GroupAgg. */
    tm_group_agg_spec_t agg;
    int *agg_group_cols;
    tm_agg_call_t *agg_calls;
    /* Join (input = left, input2 = right; exchange/exchange_cols are the left's). */
    tm_plan_node_t *input2;
    tm_join_spec_t join;
    int *join_left_keys, *join_right_keys;
    int *join_left_uk, *join_right_uk;
    /* LookupJoin (input = the probe side; table = the lookup table). */
    tm_lookup_join_spec_t lookup;
    int *lookup_probe_keys, *lookup_key_cols;
    tm_schema_t *lookup_key_schema;
    tm_schema_t *lookup_dim_schema; /* a reference: the bound query is gone after planning */
    tm_expr_t **lookup_ext;
    /* WindowAgg (its aggregate calls in agg_calls; input = the pre-window calc). */
    tm_window_agg_spec_t win;
    int *win_key_cols, *win_out_cols;
    int late_table; /* the job's late_data_sink (its late rows go there), or -1 */
    /* Sink. */
    bool sink_upsert; /* receives upserts on its declared primary key */
    /* TopN (input = the calc computing the ranked query's other select-list items). */
    tm_topn_spec_t topn;
    int *topn_part, *topn_order;
    bool *topn_desc, *topn_nulls_first;
    /*
     * Window Top-N: a TopN whose partition holds window_start and window_end
     * of a window aggregation or of a WindowTVF.
     */
    bool windowed;
    tm_window_rank_spec_t wrank; /* topn copied, plus the window_end column */
    /* WindowTVF (input = the pre-window calc). */
    tm_window_tvf_spec_t wtvf;
    /* IntervalJoin (input = left, input2 = right; keys in join_left_keys/join_right_keys). */
    tm_interval_join_spec_t ij;
    /* Join: the ON clause bounds the time columns, but an input is not append-only. */
    bool interval_as_join;
};

typedef struct tm_plan_pipeline {
    int insert;
    tm_plan_node_t *sink;
} tm_plan_pipeline_t;

/* A stage of the runtime graph: consecutive nodes chained on one thread. */
typedef struct tm_plan_stage {
    tm_plan_node_t **nodes;
    int nnodes;
    int parallelism;
    tm_exchange_kind_t exchange; /* into the stage's first node */
    bool stateful;
    /*
     * Stable and unique: the uid of its first stateful operator, else of its
     * first operator.  The runtime names the stage's stores after it and the
     * state layer restores by it (tm_jobstate_stage_t.name), so a stage that
     * is only an upsert keeps the name the first version gave it.
     */
    const char *name;
    char *label;        /* "upsert → calc" (explain, logs) */
    const char **uids;  /* its stateful operators' uids */
    int nuids;
} tm_plan_stage_t;

typedef struct tm_plan {
    const tm_job_t *job;
    tm_expr_pool_t *pool;
    tm_plan_node_t **nodes;
    int nnodes;
    tm_plan_pipeline_t *pipelines;
    int npipelines;
    tm_plan_stage_t *stages;
    int nstages;
    int parallelism;
    int max_parallelism;
    char *job_name; /* the job file's base name without .sql (output identity) */
} tm_plan_t;

/*
 * Plans every INSERT of the job.  Errors (TM_ESQL, TM_EUNSUPPORTED) name the
 * statement's position and what to change.  `job` must outlive the plan.
 */
int tm_plan_new(const tm_job_t *job, tm_plan_t **out, char *errstr, size_t errstr_size);
tm_plan_t *tm_plan_free(tm_plan_t *plan);

/*
 * Prints the plan: each pipeline's nodes with mode, unique key, exchange,
 * parallelism, state, uid and expressions; the stages; then the sources,
 * sinks, settings and checkpoint sections.  Validates each source and sink
 * configuration (without I/O) as run would; returns 0 or that error.
 */
int tm_plan_explain(const tm_plan_t *plan, FILE *out, char *errstr, size_t errstr_size);

/* The stable uids of the stateful operators (for the state layer). */
int tm_plan_state_uids(const tm_plan_t *plan, const char **uids, int max);

/*
 * The state layer opens one set of stores per stateful stage: for each
 * plan->stages[s] with `stateful`, a tm_jobstate_stage_t {name, parallelism,
 * uids, nuids}; after tm_plan_build, tm_pipeline_set_stage_stores(p,
 * stage_nodes[s], …) hands them to the stage.
 *
 * Adds the plan's stages to `p` and links them: table_nodes[t] is the node
 * id the caller got from tm_pipeline_add_source/add_sink for job table t
 * (-1 for unused tables).  stage_nodes (optional, nstages entries) receives
 * the node id of each stage, so the caller can give stateful stages their
 * stores (tm_pipeline_set_stage_stores).
 */
int tm_plan_build(tm_plan_t *plan, tm_pipeline_t *p, const int *table_nodes, int *stage_nodes,
                  char *errstr, size_t errstr_size);

const char *tm_changelog_mode_name(tm_changelog_mode_t mode);
/*
 * True when job table `table` is a sink the plan feeds upserts without before
 * images (tm_sink_config_t.upserts).
 */
bool tm_plan_sink_upserts(const tm_plan_t *plan, int table);
const char *tm_plan_kind_name(tm_plan_kind_t kind);
const char *tm_plan_join_type_name(tm_join_type_t type);

/*
 * True when every change of one value of n's unique key comes out of one
 * producer subtask in order, so a join may keep n in a unique-key view
 * (plan.c explains why a join's output is not, unless its join key is part
 * of its unique key).
 */
bool tm_plan_key_ordered(const tm_plan_node_t *n);

#endif
