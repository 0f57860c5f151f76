/*
 * group_agg.h — plain GROUP BY aggregation over a changelog, with
 * retraction (Flink's GroupAggFunction, mini-batched).
 *
 * Input: a retract stream (every update and delete carries the row it
 * retracts) laid out as spec->in_schema: the planner puts a calc before it
 * that computes the group-key columns and the aggregate arguments.  Input
 * is hash-partitioned by the group key (tm_row_cols_key_encode over
 * group_cols), which is also the state key, so a group's state is always on
 * the subtask that receives it.
 *
 * Output: out_schema = the group columns, then one column per aggregate;
 * its primary key is the group columns (an upsert stream keyed by them):
 *   first row of a group        insert (op 'c')
 *   group changed               update, before = old result, after = new
 *   group became empty          delete (before = old result)
 *   result unchanged            nothing
 * A global aggregate (no GROUP BY) has one group; it is never deleted:
 * when its input becomes empty it updates to the empty-input result
 * (count 0, sum NULL, …), which is what PostgreSQL returns for an empty
 * table.  Before its first input it has no row.
 *
 * Mini-batch: process() groups a batch's records by key and touches each
 * group's state once per batch (one read, one write), then emits at most
 * one change per group per batch.
 *
 * State (column family `uid`): per group, the accumulators and the row
 * count; per multiset-keeping aggregate (min, max, string_agg, DISTINCT),
 * value → count entries under the group's key.  Checkpointed and restored
 * through the store; savepoints carry it per key group.
 *
 * Thread: its subtask's.
 */
#ifndef TM_OPERATORS_GROUP_AGG_H
#define TM_OPERATORS_GROUP_AGG_H

#include "expr/agg.h"
#include "runtime/operator.h"

typedef struct tm_group_agg_spec {
    const tm_schema_t *in_schema;
    const int *group_cols; /* input columns of the group key, in output order */
    int ngroup;            /* 0 = a global aggregate */
    const tm_agg_call_t *aggs;
    int naggs;
    tm_schema_t *out_schema; /* ngroup + naggs columns, key = the group columns */
} tm_group_agg_spec_t;

int tm_group_agg_new(const void *spec, const tm_operator_ctx_t *ctx,
                     const tm_operator_ops_t **ops, tm_operator_t **out, char *errstr,
                     size_t errstr_size);

/* The exchange key of the group_agg input (tm_exchange_key_t.encode; arg = the spec). */
int tm_group_agg_key(const void *spec, const tm_schema_t *schema, const tm_row_t *row,
                     tm_buf_t *out);

#endif
