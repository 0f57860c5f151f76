/*
 * join.h — the regular join of two changelogs, with retraction (Flink's
 * StreamingJoinOperator and StreamingSemiAntiJoinOperator; issue 11).
 *
 * Inputs: input 0 is the left side laid out as spec->left_schema, input 1
 * the right side as spec->right_schema.  Both are retract streams: a record
 * is an insert (after), a delete (before), or an update (before and after),
 * which the operator handles as the delete of `before` then the insert of
 * `after`.  Each side is hash-partitioned by its join-key columns
 * (tm_join_key over left_keys / right_keys), so equal keys of both sides
 * meet on one subtask; left_keys[i] and right_keys[i] have the same column
 * type (the planner casts before the join where SQL would).
 *
 * A pair (l, r) matches when every key pair is equal and not NULL (NULL
 * keys never match, as in PostgreSQL) and `residual` (a predicate over the
 * concatenated row: left columns, then right columns) is true.  With
 * nkeys 0 the join is global (every pair is tested against the residual):
 * the planner gives it one subtask (SINGLE exchange on both inputs).
 *
 * Output, a retract stream laid out as out_schema:
 *   INNER  l ++ r for every matching pair;
 *   LEFT   also l ++ NULLs for a left row without a match: emitted when the
 *          row arrives unmatched, retracted when its first match arrives,
 *          emitted again when its last match goes (RIGHT and FULL alike on
 *          the other side, FULL on both);
 *   SEMI   l (left columns only) while it has at least one match;
 *   ANTI   l while it has none.  With `null_aware` (NOT IN), the key
 *          pairs are the NOT IN columns, compared with NOT IN's NULL rule:
 *          r blocks l when the residual is true and no key pair is unequal
 *          with both values non-NULL.  So a right row whose key is NULL
 *          blocks every left row, and a left row whose key is NULL passes
 *          only while no right row passes the residual with it.  Such a
 *          join is global: the planner gives it one subtask (SINGLE
 *          exchange on both inputs); the operator keeps every row under
 *          one state key and tests each pair (nkeys may be 0 or more).
 * Every input change produces the exact retractions and insertions; output
 * records are inserts (op 'c', after) and deletes (op 'd', before) only.
 *
 * State (column family `uid`, under the key group of the join key): per
 * side, the rows under their join key, in the view the side allows (Flink's
 * JoinRecordStateView): with a unique key (`left_uk` / `right_uk`), one row
 * per unique-key value; without, a multiset (row -> count).  Sides whose
 * rows can be null-padded (the outer side of LEFT/RIGHT/FULL, and the left
 * of SEMI/ANTI) keep each row's number of matches too.  `state_ttl`
 * (tm_store_ttl_us) expires rows of either side; a row that expired no
 * longer matches and is not retracted (results are then best-effort, as in
 * Flink).  With a unique-key view a delete retracts the stored row (its
 * before image needs only the join key and the unique key), and an insert
 * for a stored unique key replaces the stored row (upsert input).  A
 * retraction of a row the state does not hold emits nothing.
 *
 * Rows with a NULL join key are not stored: the padded row (outer side) or
 * the row itself (ANTI left) is emitted and retracted as it comes.
 *
 * Mini-batch: process() groups a batch by join key and sorts the keys in
 * store order; per key it reads the other side's rows with one seek of one
 * iterator (state_reads + 1) and each distinct touched row of the input
 * side by its own key (state_reads + 1 each), never the whole input side.
 *
 * Thread: its subtask's.
 */
#ifndef TM_OPERATORS_JOIN_H
#define TM_OPERATORS_JOIN_H

#include "expr/expr.h"
#include "runtime/operator.h"

typedef enum tm_join_type {
    TM_JOIN_INNER = 1,
    TM_JOIN_LEFT,
    TM_JOIN_RIGHT,
    TM_JOIN_FULL,
    TM_JOIN_SEMI,
    TM_JOIN_ANTI,
} tm_join_type_t;

typedef struct tm_join_spec {
    tm_join_type_t type;
    const tm_schema_t *left_schema;  /* input 0 */
    const tm_schema_t *right_schema; /* input 1 */
    const int *left_keys;            /* equi-join columns, pairwise with right_keys */
    const int *right_keys;
    int nkeys;                       /* 0: a global join (one subtask) */
    const int *left_uk;              /* a unique key of the left input, or NULL */
    int nleft_uk;
    const int *right_uk;
    int nright_uk;
    const tm_expr_t *residual;       /* over left ++ right columns; NULL = true */
    bool null_aware;                 /* ANTI only: NOT IN's NULL rule */
    tm_schema_t *out_schema;         /* left ++ right columns (SEMI/ANTI: left) */
} tm_join_spec_t;

/* tm_operator_new_fn for a const tm_join_spec_t *spec (ninputs = 2). */
int tm_join_new(const void *spec, const tm_operator_ctx_t *ctx, const tm_operator_ops_t **ops,
                tm_operator_t **out, char *errstr, size_t errstr_size);

/*
 * Exchange keys of the two inputs (tm_exchange_key_t.encode; arg = the
 * spec): the join-key columns of a left or a right row, encoded so that
 * equal values of both sides give equal bytes (tm_row_cols_key_encode).  A
 * NULL key column is encoded as NULL, not refused: such a row matches
 * nothing, but routing it by hash like any other row keeps the insert and
 * the retraction of its padded row on one subtask (a broadcast row would be
 * answered by one subtask, but an update from a NULL key to a non-NULL one
 * is routed whole to the new key's subtask, so the two would differ and
 * reach downstream out of order).  TM_EINVAL only for an unchanged-TOAST
 * key value (the runtime broadcasts the record; one subtask reports the row
 * error: the one owning the other image's key group, else key group 0).
 */
int tm_join_left_key(const void *spec, const tm_schema_t *schema, const tm_row_t *row,
                     tm_buf_t *out);
int tm_join_right_key(const void *spec, const tm_schema_t *schema, const tm_row_t *row,
                      tm_buf_t *out);

#endif
