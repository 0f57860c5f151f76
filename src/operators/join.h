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
 * concatenated row: left columns, then right columns) is true.
 *
 * Output, a retract stream laid out as out_schema:
 *   INNER  l ++ r for every matching pair;
 *   LEFT   also l ++ NULLs for a left row without a match: emitted when the
 *          row arrives unmatched, retracted when its first match arrives,
 *          emitted again when its last match goes (RIGHT and FULL alike on
 *          the other side, FULL on both);
 *   SEMI   l (left columns only) while it has at least one match;
 *   ANTI   l while it has none.  With `null_aware` (NOT IN), also: a right
 *          row whose key is NULL makes every left row fail, and a left row
 *          whose key is NULL passes only while the right side is empty.
 *          Such a join is global: the planner gives it one subtask (SINGLE
 *          exchange on both inputs) and an empty key list.
 * Every input change produces the exact retractions and insertions; output
 * records are inserts (op 'c', after) and deletes (op 'd', before) only.
 *
 * State (column family `uid`, under the key group of the join key): per
 * side, the rows under their join key, in the view the side allows (Flink's
 * JoinRecordStateView): with a unique key (`left_uk` / `right_uk`), one row
 * per unique-key value; without, a multiset (row -> count).  Sides whose
 * rows can be null-padded (the outer side of LEFT/RIGHT/FULL, and the left
 * of SEMI/ANTI) keep each row's number of matches too.  `state_ttl`
 * (tm_store_ttl_us) expires rows of either side.
 *
 * Mini-batch: process() sorts a batch by join key and reads the other
 * side's rows of each key with one iterator, not one lookup per row.
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
    int nkeys;                       /* 0 only for a null_aware ANTI join (global) */
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
 * equal values of both sides give equal bytes.  TM_EINVAL for a row whose
 * key has a NULL (it matches nothing; the runtime broadcasts it, and the
 * operator keeps it on one subtask only: the one that owns key group 0).
 */
int tm_join_left_key(const void *spec, const tm_schema_t *schema, const tm_row_t *row,
                     tm_buf_t *out);
int tm_join_right_key(const void *spec, const tm_schema_t *schema, const tm_row_t *row,
                      tm_buf_t *out);

#endif
