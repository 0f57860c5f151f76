/*
 * calc.c — projection and filter (see calc.h for the changelog table).
 *
 * Per input batch: now() is read once; each record's images are read in
 * in_schema's layout (directly when the record's schema has that shape,
 * else through a by-name column map computed once per schema object and
 * kept across batches; the cache holds a reference on each schema, so a
 * freed schema's address can never match a stale map), filtered, projected into rows of out_schema in the output
 * batch's arena, and emitted in output batches of at most TM_BATCH_MAX
 * records.
 *
 * Invariants:
 *   1. Every value of an output row lives in that output batch's arena
 *      (variable-length results are copied out of the scratch arena and out
 *      of the borrowed input batch).
 *   2. A record that hits a row error produces no output; the job's
 *      on_error policy (tm_operator_row_error) decides whether the job
 *      fails.
 *   3. The scratch arena is reset per input batch, so memory does not grow
 *      with the stream.
 *
 * Thread: its subtask's.
 */
#include "operators/calc.h"

#include "core/clock.h"
#include "core/datum.h"
#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAP_CACHE 8

typedef struct map_entry {
    tm_schema_t *schema; /* referenced while cached */
    int *map;       /* in_schema column -> record schema column; NULL = identity */
    int missing;    /* an in_schema column absent from the record's schema, or -1 */
} map_entry_t;

struct tm_operator {
    tm_calc_spec_t spec;
    tm_operator_ctx_t ctx;
    tm_arena_t scratch;
    map_entry_t maps[MAP_CACHE];
    int nmaps;
    tm_batch_t *out; /* output batch being filled */
};

static void calc_free(tm_operator_t *op);
static void reset_maps(tm_operator_t *op);
static int calc_process(tm_operator_t *op, int input, const tm_batch_t *batch, tm_collector_t *out,
                        char *errstr, size_t errstr_size);

static const tm_operator_ops_t calc_ops = {
    .name = "calc",
    .ninputs = 1,
    .process = calc_process,
    .free = calc_free,
};

int tm_calc_new(const void *spec, const tm_operator_ctx_t *ctx, const tm_operator_ops_t **ops,
                tm_operator_t **out, char *errstr, size_t errstr_size)
{
    const tm_calc_spec_t *s = spec;
    if (!s || !s->in_schema || !s->out_schema || s->out_schema->ncols != s->nexprs ||
        (s->nexprs > 0 && !s->exprs))
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "calc: the plan gave an inconsistent spec (output columns %d, "
                         "expressions %d)",
                         s && s->out_schema ? s->out_schema->ncols : -1, s ? s->nexprs : -1);
    tm_operator_t *op = calloc(1, sizeof(*op));
    if (!op)
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    op->spec = *s;
    op->ctx = *ctx;
    tm_arena_init(&op->scratch, 65536);
    *ops = &calc_ops;
    *out = op;
    return 0;
}

static void calc_free(tm_operator_t *op)
{
    if (!op)
        return;
    reset_maps(op);
    tm_arena_release(&op->scratch);
    tm_batch_unref(op->out);
    free(op);
}

static void drop_map(map_entry_t *m)
{
    free(m->map);
    tm_schema_unref(m->schema);
}

static void reset_maps(tm_operator_t *op)
{
    for (int i = 0; i < op->nmaps; i++)
        drop_map(&op->maps[i]);
    op->nmaps = 0;
}

/* The by-name map for a record schema (cached; the newest schema evicts the last entry). */
static map_entry_t *schema_map(tm_operator_t *op, const tm_schema_t *schema, char *errstr,
                               size_t errstr_size, int *rc)
{
    *rc = 0;
    for (int i = 0; i < op->nmaps; i++)
        if (op->maps[i].schema == schema)
            return &op->maps[i];
    if (op->nmaps == MAP_CACHE)
        drop_map(&op->maps[--op->nmaps]);
    map_entry_t *m = &op->maps[op->nmaps];
    memset(m, 0, sizeof(*m));
    m->missing = -1;
    const tm_schema_t *in = op->spec.in_schema;
    if (schema != in && !tm_schema_equal_shape(schema, in)) {
        m->map = malloc(sizeof(int) * (size_t)(in->ncols ? in->ncols : 1));
        if (!m->map) {
            *rc = tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
            return NULL;
        }
        for (int c = 0; c < in->ncols; c++) {
            m->map[c] = tm_schema_find(schema, in->cols[c].name);
            if (m->map[c] < 0 && m->missing < 0)
                m->missing = c;
        }
    }
    m->schema = tm_schema_ref((tm_schema_t *)schema);
    op->nmaps++;
    return m;
}

/* An image in in_schema's layout (the record's own row when no remapping is needed). */
static const tm_row_t *input_row(tm_operator_t *op, const map_entry_t *m, const tm_row_t *src)
{
    if (!m->map)
        return src;
    int n = op->spec.in_schema->ncols;
    tm_row_t *r = tm_arena_alloc(&op->scratch, sizeof(*r));
    if (!r)
        return NULL;
    r->nulls = tm_arena_zalloc(&op->scratch, sizeof(uint64_t) * (((size_t)n + 63) / 64 + 1));
    r->vals = tm_arena_zalloc(&op->scratch, sizeof(tm_datum_t) * (size_t)(n ? n : 1));
    if (!r->nulls || !r->vals)
        return NULL;
    for (int c = 0; c < n; c++) {
        int k = m->map[c];
        if (k < 0 || tm_row_is_null(src, k))
            tm_row_set_null(r, c, true);
        else
            r->vals[c] = src->vals[k];
    }
    return r;
}

static bool is_var(const tm_column_t *col, const tm_datum_t *d)
{
    switch (tm_type_storage(col->type)) {
    case TM_STORAGE_NUMERIC:
        return (d->flags & (TM_DATUM_WIDE | TM_DATUM_NAN)) != 0;
    case TM_STORAGE_VAR:
        return true;
    default:
        return false;
    }
}

/* Projects `in` into a new row of the output batch.  0, TM_EINVAL (row error) or TM_ENOMEM. */
static int project(tm_operator_t *op, const tm_row_t *in, const tm_eval_env_t *env,
                   tm_row_t **outrow, char *errstr, size_t errstr_size)
{
    const tm_schema_t *os = op->spec.out_schema;
    tm_row_t *r = tm_batch_new_row(op->out, os);
    if (!r)
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    for (int c = 0; c < op->spec.nexprs; c++) {
        tm_datum_t v;
        bool isnull;
        int rc = tm_expr_eval(op->spec.exprs[c], in, env, &v, &isnull, errstr, errstr_size);
        if (rc)
            return rc;
        tm_row_set_null(r, c, isnull);
        if (isnull)
            continue;
        r->vals[c] = v;
        if (is_var(&os->cols[c], &v) && !(v.flags & TM_DATUM_UNAVAILABLE) &&
            tm_batch_set_var(op->out, &r->vals[c], v.u.var.ptr ? v.u.var.ptr : "",
                             v.u.var.len) != 0)
            return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    }
    *outrow = r;
    return 0;
}

static tm_record_t *add_record(tm_operator_t *op, const tm_record_t *rec, tm_op_t kind)
{
    tm_record_t *o = tm_batch_add(op->out, op->spec.out_schema, kind);
    if (!o)
        return NULL;
    o->proc_us = rec->proc_us;
    o->src = rec->src;
    return o;
}

/* One input record: 0, or a non-zero code that fails the job. */
static int process_record(tm_operator_t *op, const tm_record_t *rec, const tm_eval_env_t *env,
                          tm_collector_t *out, char *errstr, size_t errstr_size)
{
    char rowerr[512];
    int rc = tm_collector_room(out, &op->out, "calc", errstr, errstr_size);
    if (rc)
        return rc;
    if (rec->op == TM_OP_TRUNCATE || rec->op == TM_OP_MESSAGE) {
        if (!op->spec.pass_control)
            return 0;
        tm_record_t *o = add_record(op, rec, rec->op);
        if (!o)
            return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
        if (rec->msg_prefix)
            o->msg_prefix = tm_arena_strdup(&op->out->arena, rec->msg_prefix);
        if (rec->msg_content && rec->msg_len) {
            o->msg_content = (const uint8_t *)tm_arena_memdup(&op->out->arena, rec->msg_content,
                                                              rec->msg_len);
            o->msg_len = rec->msg_len;
        }
        return 0;
    }
    map_entry_t *m = schema_map(op, rec->schema, errstr, errstr_size, &rc);
    if (!m)
        return rc;
    if (m->missing >= 0) {
        snprintf(rowerr, sizeof(rowerr),
                 "column \"%s\" is missing from the records of table %s (schema version %u)",
                 op->spec.in_schema->cols[m->missing].name,
                 rec->schema->table ? rec->schema->table : "?", rec->schema->version);
        return tm_operator_row_error(&op->ctx, rec, rowerr, errstr, errstr_size);
    }
    const tm_row_t *before = NULL, *after = NULL;
    bool bpass = false, apass = false;
    if (rec->before && rec->op != TM_OP_READ && rec->op != TM_OP_CREATE)
        before = input_row(op, m, rec->before);
    if (rec->after && rec->op != TM_OP_DELETE)
        after = input_row(op, m, rec->after);
    if ((rec->before && !before && rec->op != TM_OP_READ && rec->op != TM_OP_CREATE) ||
        (rec->after && !after && rec->op != TM_OP_DELETE))
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    rc = 0;
    if (before)
        rc = op->spec.filter
                 ? tm_expr_eval_pred(op->spec.filter, before, env, &bpass, rowerr, sizeof(rowerr))
                 : (bpass = true, 0);
    if (!rc && after)
        rc = op->spec.filter
                 ? tm_expr_eval_pred(op->spec.filter, after, env, &apass, rowerr, sizeof(rowerr))
                 : (apass = true, 0);
    tm_row_t *pb = NULL, *pa = NULL;
    if (!rc && bpass)
        rc = project(op, before, env, &pb, rowerr, sizeof(rowerr));
    if (!rc && apass)
        rc = project(op, after, env, &pa, rowerr, sizeof(rowerr));
    if (rc == TM_ENOMEM)
        return tm_seterr(errstr, errstr_size, rc, "%s", rowerr);
    if (rc)
        return tm_operator_row_error(&op->ctx, rec, rowerr, errstr, errstr_size);

    tm_op_t kind;
    switch (rec->op) {
    case TM_OP_READ:
    case TM_OP_CREATE:
        if (!apass)
            return 0;
        kind = rec->op;
        break;
    case TM_OP_DELETE:
        if (!bpass)
            return 0;
        kind = TM_OP_DELETE;
        break;
    case TM_OP_UPDATE:
        if (!before) {
            /* An upsert-stream update: its key decides downstream. */
            if (!apass)
                return 0;
            kind = TM_OP_UPDATE;
        } else if (bpass && apass) {
            if (tm_row_equal(op->spec.out_schema, pb, pa))
                return 0; /* nothing changed in the projected columns */
            kind = TM_OP_UPDATE;
        } else if (bpass) {
            kind = TM_OP_DELETE;
            pa = NULL;
        } else if (apass) {
            kind = TM_OP_CREATE;
            pb = NULL;
        } else {
            return 0;
        }
        break;
    default:
        return 0;
    }
    tm_record_t *o = add_record(op, rec, kind);
    if (!o)
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    o->before = pb;
    o->after = pa;
    return 0;
}

static int calc_process(tm_operator_t *op, int input, const tm_batch_t *batch, tm_collector_t *out,
                        char *errstr, size_t errstr_size)
{
    tm_arena_reset(&op->scratch);
    tm_eval_env_t env = {&op->scratch, tm_wall_us()};
    int rc = 0;
    for (uint32_t i = 0; i < batch->count && !rc; i++) {
        rc = process_record(op, &batch->recs[i], &env, out, errstr, errstr_size);
    }
    return rc ? rc : tm_collector_flush(out, &op->out, "calc", errstr, errstr_size);
}
