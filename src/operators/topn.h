/*
 * topn.h — Top-N per partition over a changelog, with retraction (Flink's
 * RetractableTopNFunction and AppendOnlyTopNFunction in one operator,
 * mini-batched), and deduplication as its N = 1 case.
 *
 *   SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY k ORDER BY v DESC) AS rn
 *                  FROM t) s WHERE rn <= N
 *
 * Input: a retract stream (every update and delete carries the row it
 * retracts) laid out as spec->in_schema, hash-partitioned by the partition
 * columns (tm_topn_key), one subtask for no PARTITION BY.  An insert-only
 * input (spec->append_only) may drop every row that falls below rank N, as
 * no retraction can bring it back: its state is at most N rows per
 * partition, which is what makes deduplication (N = 1) cost one small
 * state range per key.
 *
 * Output: out_schema = in_schema's columns but the last nhidden, with the
 * rank number (bigint) inserted at rn_col (rn_col -1: no rank column).  After
 * each batch, for each partition it touched, the operator compares the top
 * N before and after the batch and emits the difference:
 *
 *   rank_number  by rank r = 1..N: a row newly at r is an insert, a
 *                different row at r an update (before: the old row at r),
 *                a rank left empty a delete.  The output is keyed by
 *                (partition columns, rn): a change of one row's rank
 *                updates every rank it shifts (Flink does the same).
 *   otherwise    as a multiset: rows that left the top N are deleted, rows
 *                that entered it are inserted (deletes first).  A change of
 *                rank among rows that stay emits nothing (Flink's "no
 *                ranking number" optimisation); the rn column, if the
 *                layout has one, is NULL.
 *
 * Rows tie-break on their serialised bytes, so equal order keys rank in an
 * order that depends only on the rows (as in PostgreSQL, which ranks ties
 * in no promised order, a query that needs one order adds a column to
 * ORDER BY).  Order: ASC puts NULLs last, DESC first, as PostgreSQL does,
 * unless the ORDER BY says NULLS FIRST/LAST.
 *
 * State (column family `uid`): one entry per distinct row, keyed so that a
 * partition's rows are one key range in rank order; the (N+1)-th row is the
 * next key, found without reading the rest of the partition (topn.c).
 * Nothing is cached in memory, so restore has nothing to rebuild.
 *
 * Thread: its subtask's.
 */
#ifndef TM_OPERATORS_TOPN_H
#define TM_OPERATORS_TOPN_H

#include "runtime/operator.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tm_topn_spec {
    const tm_schema_t *in_schema;
    const int *part_cols; /* input columns of the partition key */
    int npart;            /* 0 = one partition (one subtask) */
    const int *order_cols; /* input columns of ORDER BY, most significant first */
    const bool *order_desc;
    const bool *nulls_first;
    int norder; /* >= 1 */
    int64_t limit; /* N >= 1: ranks 1..N are output */
    int rn_col;    /* output column of the rank number, -1 for none */
    bool rank_number; /* emit by rank (rn selected); false: as a multiset */
    bool append_only; /* the input is insert-only: rows below rank N are dropped */
    /* The last nhidden input columns only feed PARTITION BY / ORDER BY: not output. */
    int nhidden;
    tm_schema_t *out_schema;
} tm_topn_spec_t;

int tm_topn_new(const void *spec, const tm_operator_ctx_t *ctx, const tm_operator_ops_t **ops,
                tm_operator_t **out, char *errstr, size_t errstr_size);

/* The exchange key of the Top-N input (tm_exchange_key_t.encode; arg = the spec). */
int tm_topn_key(const void *spec, const tm_schema_t *schema, const tm_row_t *row, tm_buf_t *out);

/*
 * Whether ORDER BY may sort a column of `type` (the types whose order the
 * state encoding keeps: numbers, text bytewise, dates and times, intervals,
 * booleans).
 */
bool tm_topn_orderable(tm_type_t type);

/*
 * The state encoding shared with the window Top-N (window_rank.c): appends
 * the order key S of `row` (topn.c gives its bytes) to `key`, `tmp` being
 * scratch; 0, TM_EINVAL for an unchanged TOASTed value, or TM_ENOMEM.
 */
int tm_topn_order_put(const tm_topn_spec_t *spec, const tm_row_t *row, tm_buf_t *key,
                      tm_buf_t *tmp);
/* The length of the order key at `p`; -1 when the bytes are not one. */
ptrdiff_t tm_topn_order_len(const tm_topn_spec_t *spec, const uint8_t *p, const uint8_t *end);
/*
 * The output row of a stored key P ‖ S ‖ R (plen = |P|, any prefix
 * included) at `rank`, in `batch`'s arena: the row R with the rank column
 * put in and the hidden columns left out.  0, TM_ENOMEM, or TM_ECORRUPT
 * when the key does not decode.
 */
int tm_topn_row_out(const tm_topn_spec_t *spec, const uint8_t *key, size_t klen, size_t plen,
                    int64_t rank, tm_batch_t *batch, tm_row_t **out);

#endif
