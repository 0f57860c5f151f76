/*
 * calc.h — projection and filter (Flink's Calc): for each input record,
 * evaluate the WHERE predicate and the projection over its row images.
 *
 * Changelog handling (the images of one record are filtered independently):
 *
 *   input        before passes   after passes   output
 *   insert/read  -               yes            insert (op kept: r stays r)
 *   insert/read  -               no             nothing
 *   delete       yes             -              delete
 *   delete       no              -              nothing
 *   update       yes             yes            update (projected before and after)
 *   update       yes             no             delete (before)
 *   update       no              yes            insert (after)
 *   update       no              no             nothing
 *   update without a before image: as an insert of the after image if it
 *   passes (the upstream is an upsert stream; its key decides).
 *   truncate, message: passed on unchanged only when the spec says
 *   pass_control (SELECT * pipelines), else dropped.
 *
 * An update whose projected before and after are equal is dropped (nothing
 * changed in the projected columns).
 *
 * Input layout: column references index `in_schema`.  A record whose
 * schema has another shape (a source whose table has more columns, or
 * columns in another order) is read through a by-name column map computed
 * once per schema object; a declared column missing from the record's
 * schema is a row error naming it.
 *
 * Row errors go to tm_operator_row_error() (the job's on_error policy).
 * Output rows live in the output batch's arena; schema = out_schema.
 * now() is read once per input batch.
 *
 * Stateless.  Thread: its subtask's.
 */
#ifndef TM_OPERATORS_CALC_H
#define TM_OPERATORS_CALC_H

#include "expr/expr.h"
#include "runtime/operator.h"

typedef struct tm_calc_spec {
    const tm_schema_t *in_schema;  /* the layout column references index */
    const tm_expr_t *filter;       /* NULL: keep every row */
    const tm_expr_t *const *exprs; /* output column i = exprs[i] */
    int nexprs;
    tm_schema_t *out_schema;       /* ncols == nexprs; the plan owns it */
    bool pass_control;             /* pass truncate/message records on */
} tm_calc_spec_t;

/* tm_operator_new_fn for a const tm_calc_spec_t *spec. */
int tm_calc_new(const void *spec, const tm_operator_ctx_t *ctx, const tm_operator_ops_t **ops,
                tm_operator_t **out, char *errstr, size_t errstr_size);

#endif
