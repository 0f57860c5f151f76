/*
 * lookup_join.c — the lookup join (see lookup_join.h for its semantics).
 *
 * Per input batch, in three passes over the records:
 *   1. images → probe keys: each image is read in in_schema's layout (a
 *      by-name map for records of another shape), its key encoded
 *      (tm_row_cols_key_encode over key_schema) and entered once in a
 *      per-batch table of distinct keys;
 *   2. distinct keys → dimension rows: the cache answers what it holds; the
 *      rest goes to one lookup_fetch, whose rows are serialised
 *      (tm_row_serialize) and cached, and whose missing keys are cached as
 *      negative entries when cache_missing;
 *   3. records → output, in input order.
 *
 * Invariants:
 *   1. Every value of an output row lives in that output batch's arena
 *      (rows are assembled in the scratch batch, then deep-copied).
 *   2. The scratch batch is replaced per input batch, so memory does not
 *      grow with the stream; the cache is bounded by cache_rows.
 *   3. At most one lookup_fetch per input batch.
 *
 * Thread: its subtask's.
 */
#include "operators/lookup_join.h"
#include "operators/lookup_cache.h"

#include "core/clock.h"
#include "core/datum.h"
#include "core/error.h"
#include "state/rowcodec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One distinct probe key of the batch. */
typedef struct pkey {
    const uint8_t *bytes;
    size_t len;
    tm_row_t *keyrow; /* in key_schema's layout (shallow) */
    const void *dim;  /* serialised row, or NULL: no row */
    size_t dimlen;
    bool resolved;
} pkey_t;

/* One image of one record: its row in in_schema's layout and its key (-1: NULL key). */
typedef struct image {
    const tm_row_t *row;
    int key;
} image_t;

struct tm_operator {
    tm_lookup_join_spec_t spec;
    tm_operator_ctx_t ctx;
    tm_lookup_t *handle;
    tm_lookup_cache_t *cache;
    tm_schema_t *key_schema; /* spec's, or the key columns' own (a reference) */
    int *kcols;              /* 0 .. nkeys-1: every key_schema column, for the encoder */
    int nin, ndim;           /* columns of the probe and the dimension side */
    tm_batch_t *scratch;
    tm_batch_t *out;
    tm_buf_t buf;
    /* By-name map of the last record schema of another shape. */
    tm_schema_t *map_schema;
    int *map;
    int map_missing;
    /* Per batch. */
    pkey_t *keys;
    int nkeys, capkeys;
    int *table; /* open addressing over keys, -1 = empty */
    size_t tabsize;
};

static void lj_free(tm_operator_t *op);
static int lj_process(tm_operator_t *op, int input, const tm_batch_t *batch, tm_collector_t *out,
                      char *errstr, size_t errstr_size);

static const tm_operator_ops_t lookup_join_ops = {
    .name = "lookup_join",
    .ninputs = 1,
    .process = lj_process,
    .free = lj_free,
};

static int64_t now_us(const tm_operator_t *op)
{
    return op->spec.clock_us ? op->spec.clock_us(op->spec.clock_arg) : tm_mono_us();
}

int tm_lookup_join_new(const void *spec, const tm_operator_ctx_t *ctx,
                       const tm_operator_ops_t **ops, tm_operator_t **out, char *errstr,
                       size_t errstr_size)
{
    const tm_lookup_join_spec_t *s = spec;
    if (s == NULL || (s->type != TM_JOIN_INNER && s->type != TM_JOIN_LEFT) ||
        s->in_schema == NULL ||
        s->conn == NULL || s->conn->lookup_new == NULL || s->lookup.declared == NULL ||
        s->dim_schema == NULL || s->out_schema == NULL || s->lookup.nkeys <= 0 ||
        s->probe_keys == NULL || s->lookup.key_cols == NULL ||
        s->dim_schema->ncols != s->lookup.declared->ncols + s->ndim_ext ||
        s->out_schema->ncols != s->in_schema->ncols + s->dim_schema->ncols)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "lookup join: the plan gave an inconsistent spec");
    for (int k = 0; k < s->lookup.nkeys; k++)
        if (s->probe_keys[k] < 0 || s->probe_keys[k] >= s->in_schema->ncols)
            return tm_seterr(errstr, errstr_size, TM_EINVAL,
                             "lookup join: the plan gave a probe key out of range");
    tm_operator_t *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    op->spec = *s;
    op->ctx = *ctx;
    op->nin = s->in_schema->ncols;
    op->ndim = s->dim_schema->ncols;
    tm_buf_init(&op->buf);
    int rc = 0;
    op->kcols = malloc(sizeof(int) * (size_t)s->lookup.nkeys);
    if (op->kcols == NULL) {
        free(op);
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    }
    for (int k = 0; k < s->lookup.nkeys; k++)
        op->kcols[k] = k;
    if (s->lookup.key_schema != NULL) {
        op->key_schema = tm_schema_ref((tm_schema_t *)s->lookup.key_schema);
    } else {
        op->key_schema = tm_schema_new(s->lookup.nkeys);
        for (int k = 0; op->key_schema && k < s->lookup.nkeys; k++) {
            const tm_column_t *c = &s->lookup.declared->cols[s->lookup.key_cols[k]];
            tm_schema_set_str(&op->key_schema->cols[k].name, c->name);
            op->key_schema->cols[k].type = c->type;
            op->key_schema->cols[k].scale = c->scale;
            op->key_schema->cols[k].precision = c->precision;
        }
        if (op->key_schema != NULL && tm_schema_finish(op->key_schema) != 0)
            rc = TM_EINVAL;
    }
    op->cache = tm_lookup_cache_new(s->cache_rows > 0 ? (size_t)s->cache_rows : 0, s->ttl_us);
    if (rc == 0 && (op->key_schema == NULL || op->cache == NULL))
        rc = tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    else if (rc != 0)
        rc = tm_seterr(errstr, errstr_size, rc, "lookup join: bad key layout");
    if (rc == 0)
        rc = s->conn->lookup_new(&op->handle, &s->lookup, errstr, errstr_size);
    if (rc == 0 && s->conn->lookup_open != NULL)
        rc = s->conn->lookup_open(op->handle, errstr, errstr_size);
    if (rc != 0) {
        lj_free(op);
        return rc;
    }
    *ops = &lookup_join_ops;
    *out = op;
    return 0;
}

static void lj_free(tm_operator_t *op)
{
    if (op == NULL)
        return;
    if (op->handle != NULL && op->spec.conn->lookup_free != NULL)
        op->spec.conn->lookup_free(op->handle);
    tm_lookup_cache_free(op->cache);
    tm_schema_unref(op->key_schema);
    free(op->kcols);
    tm_schema_unref(op->map_schema);
    free(op->map);
    tm_batch_unref(op->scratch);
    tm_batch_unref(op->out);
    tm_buf_release(&op->buf);
    free(op->keys);
    free(op->table);
    free(op);
}

/* The by-name map for a record schema of another shape than in_schema. */
static int set_map(tm_operator_t *op, tm_schema_t *schema)
{
    if (op->map_schema == schema)
        return 0;
    const tm_schema_t *in = op->spec.in_schema;
    int *map = malloc(sizeof(int) * (size_t)(in->ncols ? in->ncols : 1));
    if (map == NULL)
        return TM_ENOMEM;
    op->map_missing = -1;
    for (int c = 0; c < in->ncols; c++) {
        map[c] = tm_schema_find(schema, in->cols[c].name);
        if (map[c] < 0 && op->map_missing < 0)
            op->map_missing = c;
    }
    free(op->map);
    op->map = map;
    tm_schema_unref(op->map_schema);
    op->map_schema = tm_schema_ref(schema);
    return 0;
}

/* An image in in_schema's layout (the record's own row when the shapes agree). */
static const tm_row_t *input_row(tm_operator_t *op, const tm_record_t *rec, const tm_row_t *src)
{
    if (rec->schema == op->spec.in_schema || tm_schema_equal_shape(rec->schema, op->spec.in_schema))
        return src;
    tm_row_t *r = tm_batch_new_row(op->scratch, op->spec.in_schema);
    if (r == NULL)
        return NULL;
    for (int c = 0; c < op->nin; c++) {
        int k = op->map[c];
        if (k < 0 || tm_row_is_null(src, k))
            tm_row_set_null(r, c, true);
        else {
            tm_row_set_null(r, c, false);
            r->vals[c] = src->vals[k];
        }
    }
    return r;
}

static int grow_keys(tm_operator_t *op)
{
    if (op->nkeys < op->capkeys)
        return 0;
    int cap = op->capkeys ? op->capkeys * 2 : 256;
    pkey_t *v = realloc(op->keys, sizeof(*v) * (size_t)cap);
    if (v == NULL)
        return TM_ENOMEM;
    op->keys = v;
    op->capkeys = cap;
    return 0;
}

/* The distinct-key index of an image's key, or -1 for a NULL key; TM_ENOMEM < -1. */
static int key_of(tm_operator_t *op, const tm_row_t *row)
{
    int nk = op->spec.lookup.nkeys;
    for (int k = 0; k < nk; k++)
        if (tm_row_is_null(row, op->spec.probe_keys[k]))
            return -1;
    tm_row_t *kr = tm_batch_new_row(op->scratch, op->key_schema);
    if (kr == NULL)
        return TM_ENOMEM;
    for (int k = 0; k < nk; k++) {
        tm_row_set_null(kr, k, false);
        kr->vals[k] = row->vals[op->spec.probe_keys[k]];
        if (kr->vals[k].flags & TM_DATUM_UNAVAILABLE)
            return -1; /* an unchanged TOAST value is not a key the table can be asked for */
    }
    op->buf.len = 0;
    int rc = tm_row_cols_key_encode(op->key_schema, kr, op->kcols, nk, &op->buf);
    if (rc != 0)
        return rc == TM_ENOMEM ? TM_ENOMEM : -1;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < op->buf.len; i++) {
        h ^= (uint8_t)op->buf.data[i];
        h *= 1099511628211ull;
    }
    size_t mask = op->tabsize - 1;
    for (size_t p = h & mask;; p = (p + 1) & mask) {
        int i = op->table[p];
        if (i < 0) {
            if (grow_keys(op) != 0)
                return TM_ENOMEM;
            uint8_t *bytes =
                (uint8_t *)tm_arena_memdup(&op->scratch->arena, op->buf.data, op->buf.len);
            if (bytes == NULL)
                return TM_ENOMEM;
            pkey_t *pk = &op->keys[op->nkeys];
            memset(pk, 0, sizeof(*pk));
            pk->bytes = bytes;
            pk->len = op->buf.len;
            pk->keyrow = kr;
            op->table[p] = op->nkeys;
            return op->nkeys++;
        }
        if (op->keys[i].len == op->buf.len && memcmp(op->keys[i].bytes, op->buf.data,
                                                     op->buf.len) == 0)
            return i;
    }
}

typedef struct fetch_ctx {
    tm_operator_t *op;
    int *which; /* fetch position → distinct key */
    int n;
} fetch_ctx_t;

static int on_row(void *arg, int key, const tm_row_t *row)
{
    fetch_ctx_t *f = arg;
    tm_operator_t *op = f->op;
    if (key < 0 || key >= f->n)
        return TM_EPROTO;
    pkey_t *pk = &op->keys[f->which[key]];
    op->buf.len = 0;
    int rc = tm_row_serialize(op->spec.lookup.declared, row, &op->buf);
    if (rc != 0)
        return rc;
    void *copy = tm_arena_memdup(&op->scratch->arena, op->buf.data, op->buf.len);
    if (copy == NULL)
        return TM_ENOMEM;
    pk->dim = copy;
    pk->dimlen = op->buf.len;
    return 0;
}

/* Pass 2: every distinct key gets its dimension row (or none), from the cache or one fetch. */
static int resolve_keys(tm_operator_t *op, char *errstr, size_t errstr_size)
{
    int64_t now = now_us(op);
    int *which = malloc(sizeof(int) * (size_t)(op->nkeys ? op->nkeys : 1));
    const tm_row_t **rows = malloc(sizeof(*rows) * (size_t)(op->nkeys ? op->nkeys : 1));
    if (which == NULL || rows == NULL) {
        free(which);
        free(rows);
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    }
    int n = 0;
    uint64_t hits = 0;
    for (int i = 0; i < op->nkeys; i++) {
        pkey_t *pk = &op->keys[i];
        const void *v;
        size_t vlen;
        if (tm_lookup_cache_get(op->cache, pk->bytes, pk->len, now, &v, &vlen)) {
            /* The cache's bytes may move at the next put: keep a copy for this batch. */
            pk->dim = v ? tm_arena_memdup(&op->scratch->arena, v, vlen) : NULL;
            pk->dimlen = vlen;
            if (v != NULL && pk->dim == NULL) {
                free(which);
                free(rows);
                return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
            }
            pk->resolved = true;
            hits++;
            continue;
        }
        which[n] = i;
        rows[n] = pk->keyrow;
        n++;
    }
    tm_operator_metrics_t *m = op->ctx.metrics;
    atomic_fetch_add_explicit(&m->lookup_cache_hits, hits, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->lookup_cache_misses, (uint64_t)n, memory_order_relaxed);
    int rc = 0;
    if (n > 0) {
        fetch_ctx_t f = {op, which, n};
        atomic_fetch_add_explicit(&m->lookup_queries, 1, memory_order_relaxed);
        rc = op->spec.conn->lookup_fetch(op->handle, (const tm_row_t *const *)rows, n, on_row, &f,
                                         errstr, errstr_size);
        if (rc == TM_EPROTO || rc == TM_ENOMEM || rc == TM_EINVAL)
            if (errstr_size > 0 && errstr[0] == '\0')
                tm_seterr(errstr, errstr_size, rc, "lookup join: a fetched row could not be kept");
        now = now_us(op);
        for (int j = 0; rc == 0 && j < n; j++) {
            pkey_t *pk = &op->keys[which[j]];
            pk->resolved = true;
            if (pk->dim == NULL && !op->spec.cache_missing)
                continue;
            if (tm_lookup_cache_put(op->cache, pk->bytes, pk->len, pk->dim, pk->dimlen, now) != 0)
                rc = tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
        }
    }
    free(which);
    free(rows);
    return rc;
}

/*
 * The joined image (in the output batch's arena) of probe row `in` with key
 * `key`, or NULL in *res when it has no match and is not padded.  0, a row
 * error (TM_EINVAL, message in rowerr) or a fatal code.
 */
static int join_image(tm_operator_t *op, const tm_row_t *in, int key, const tm_eval_env_t *env,
                      tm_row_t **res, char *rowerr, size_t rowerr_size)
{
    const tm_lookup_join_spec_t *s = &op->spec;
    *res = NULL;
    tm_row_t *dim = NULL;
    int rc = 0;
    if (key >= 0 && op->keys[key].dim != NULL) {
        tm_row_t *raw = NULL;
        rc = tm_row_deserialize(s->lookup.declared, op->keys[key].dim, op->keys[key].dimlen,
                                op->scratch, &raw);
        if (rc != 0)
            return tm_seterr(rowerr, rowerr_size, rc == TM_ENOMEM ? TM_ENOMEM : TM_EPROTO,
                             "lookup join: a cached row could not be read back");
        bool pass = true;
        if (s->dim_filter != NULL &&
            (rc = tm_expr_eval_pred(s->dim_filter, raw, env, &pass, rowerr, rowerr_size)) != 0)
            return rc;
        if (pass) {
            dim = tm_batch_new_row(op->scratch, s->dim_schema);
            if (dim == NULL)
                return TM_ENOMEM;
            int nd = s->lookup.declared->ncols;
            for (int c = 0; c < nd; c++) {
                tm_row_set_null(dim, c, tm_row_is_null(raw, c));
                dim->vals[c] = raw->vals[c];
            }
            for (int e = 0; e < s->ndim_ext; e++) {
                bool isnull = false;
                rc = tm_expr_eval(s->dim_ext[e], raw, env, &dim->vals[nd + e], &isnull, rowerr,
                                  rowerr_size);
                if (rc != 0)
                    return rc;
                tm_row_set_null(dim, nd + e, isnull);
            }
        }
    }
    tm_row_t *j = tm_batch_new_row(op->scratch, s->out_schema);
    if (j == NULL)
        return TM_ENOMEM;
    int poff = s->dim_left ? op->ndim : 0, doff = s->dim_left ? 0 : op->nin;
    for (int c = 0; c < op->nin; c++) {
        tm_row_set_null(j, poff + c, tm_row_is_null(in, c));
        j->vals[poff + c] = in->vals[c];
    }
    for (int c = 0; c < op->ndim; c++) {
        bool isnull = dim == NULL || tm_row_is_null(dim, c);
        tm_row_set_null(j, doff + c, isnull);
        if (!isnull)
            j->vals[doff + c] = dim->vals[c];
    }
    if (dim != NULL && s->residual != NULL) {
        bool pass = false;
        if ((rc = tm_expr_eval_pred(s->residual, j, env, &pass, rowerr, rowerr_size)) != 0)
            return rc;
        if (!pass) {
            dim = NULL;
            for (int c = 0; c < op->ndim; c++)
                tm_row_set_null(j, doff + c, true);
        }
    }
    if (dim == NULL && s->type == TM_JOIN_INNER)
        return 0;
    *res = tm_row_copy(op->out, s->out_schema, j);
    return *res ? 0 : TM_ENOMEM;
}

static int emit_record(tm_operator_t *op, const tm_record_t *rec, const image_t *b,
                       const image_t *a, const tm_eval_env_t *env, tm_collector_t *out,
                       char *errstr, size_t errstr_size)
{
    char rowerr[512] = "";
    int rc = tm_collector_room(out, &op->out, "lookup join", errstr, errstr_size);
    if (rc)
        return rc;
    tm_row_t *jb = NULL, *ja = NULL;
    if (b->row != NULL)
        rc = join_image(op, b->row, b->key, env, &jb, rowerr, sizeof(rowerr));
    if (rc == 0 && a->row != NULL)
        rc = join_image(op, a->row, a->key, env, &ja, rowerr, sizeof(rowerr));
    if (rc == TM_ENOMEM || rc == TM_EPROTO)
        return tm_seterr(errstr, errstr_size, rc, "%s", rowerr[0] ? rowerr : "out of memory");
    if (rc)
        return tm_operator_row_error(&op->ctx, rec, rowerr, errstr, errstr_size);
    tm_op_t kind;
    switch (rec->op) {
    case TM_OP_READ:
    case TM_OP_CREATE:
        if (ja == NULL)
            return 0;
        kind = rec->op;
        jb = NULL;
        break;
    case TM_OP_DELETE:
        if (jb == NULL)
            return 0;
        kind = TM_OP_DELETE;
        ja = NULL;
        break;
    case TM_OP_UPDATE:
        if (b->row == NULL) {
            if (ja == NULL)
                return 0;
            kind = TM_OP_UPDATE;
        } else if (jb && ja) {
            if (tm_row_equal(op->spec.out_schema, jb, ja))
                return 0;
            kind = TM_OP_UPDATE;
        } else if (jb) {
            kind = TM_OP_DELETE;
        } else if (ja) {
            kind = TM_OP_CREATE;
        } else {
            return 0;
        }
        break;
    default:
        return 0;
    }
    tm_record_t *o = tm_batch_add(op->out, op->spec.out_schema, kind);
    if (o == NULL)
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    o->proc_us = rec->proc_us;
    o->src = rec->src;
    o->before = jb;
    o->after = ja;
    return 0;
}

static int lj_process(tm_operator_t *op, int input, const tm_batch_t *batch, tm_collector_t *out,
                      char *errstr, size_t errstr_size)
{
    (void)input;
    tm_batch_unref(op->scratch);
    if ((op->scratch = tm_batch_new()) == NULL)
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    uint32_t n = batch->count;
    image_t *img = calloc((size_t)n * 2 + 1, sizeof(*img));
    size_t ts = 16;
    while (ts < (size_t)n * 4)
        ts <<= 1;
    if (img == NULL)
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    if (ts != op->tabsize) {
        free(op->table);
        op->table = malloc(sizeof(int) * ts);
        op->tabsize = op->table ? ts : 0;
    }
    if (op->table == NULL) {
        free(img);
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    }
    memset(op->table, 0xff, sizeof(int) * ts);
    op->nkeys = 0;
    int rc = 0;
    /* Pass 1: images and their distinct keys. */
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        const tm_record_t *rec = &batch->recs[i];
        image_t *b = &img[2 * i], *a = &img[2 * i + 1];
        b->key = a->key = -1;
        if (rec->op != TM_OP_READ && rec->op != TM_OP_CREATE && rec->op != TM_OP_UPDATE &&
            rec->op != TM_OP_DELETE)
            continue;
        if (rec->schema != op->spec.in_schema &&
            !tm_schema_equal_shape(rec->schema, op->spec.in_schema)) {
            if (set_map(op, rec->schema) != 0) {
                rc = tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
                break;
            }
            if (op->map_missing >= 0) {
                char rowerr[512];
                snprintf(rowerr, sizeof(rowerr),
                         "column \"%s\" is missing from the records of table %s",
                         op->spec.in_schema->cols[op->map_missing].name,
                         rec->schema->table ? rec->schema->table : "?");
                rc = tm_operator_row_error(&op->ctx, rec, rowerr, errstr, errstr_size);
                b->row = a->row = NULL;
                continue;
            }
        }
        if (rec->before && (rec->op == TM_OP_UPDATE || rec->op == TM_OP_DELETE))
            b->row = input_row(op, rec, rec->before);
        if (rec->after && rec->op != TM_OP_DELETE)
            a->row = input_row(op, rec, rec->after);
        if ((rec->before && !b->row && (rec->op == TM_OP_UPDATE || rec->op == TM_OP_DELETE)) ||
            (rec->after && !a->row && rec->op != TM_OP_DELETE)) {
            rc = tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
            break;
        }
        for (int s = 0; s < 2 && rc == 0; s++) {
            image_t *im = s ? a : b;
            if (im->row == NULL)
                continue;
            int k = key_of(op, im->row);
            if (k < -1)
                rc = tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
            im->key = k;
        }
    }
    /* Pass 2: the rows. */
    if (rc == 0 && op->nkeys > 0)
        rc = resolve_keys(op, errstr, errstr_size);
    /* Pass 3: output in input order. */
    tm_eval_env_t env = {&op->scratch->arena, tm_wall_us()};
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        const tm_record_t *rec = &batch->recs[i];
        if (img[2 * i].row == NULL && img[2 * i + 1].row == NULL)
            continue;
        rc = emit_record(op, rec, &img[2 * i], &img[2 * i + 1], &env, out, errstr, errstr_size);
    }
    free(img);
    return rc ? rc : tm_collector_flush(out, &op->out, "lookup join", errstr, errstr_size);
}
