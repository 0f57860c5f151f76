/*
 * Unit tests: aggregate functions (expr/agg.h) and the group_agg operator
 * (operators/group_agg.h), driven directly with a real store.
 *
 * The main test folds the operator's changelog into a table and compares
 * it, after every batch, with a brute-force recomputation over the rows
 * that survive in the input (a seeded random workload of inserts, updates
 * and deletes with NULLs, duplicates, deletes of the current min/max and
 * groups emptied and refilled), for a grouped and a global aggregate.
 */
#include "../state/state_test.h"
#include "expr/agg.h"
#include "operators/group_agg.h"
#include "state/rowcodec.h"

#include <math.h>

static char err[1024];

/* The runtime implements this on its branch; here the policy is always 'fail'. */
int tm_operator_row_error(const tm_operator_ctx_t *ctx, const tm_record_t *rec,
                          const char *reason, char *errstr, size_t errstr_size)
{
    (void)rec;
    return tm_seterr(errstr, errstr_size, TM_EINVAL, "operator %s: %s", ctx->uid, reason);
}

/* ---- input: t(id int64, g int64, x int32, n numeric, f float64, b bool, s text) ---- */

enum { C_ID, C_G, C_X, C_N, C_F, C_B, C_S, NCOLS };

static tm_schema_t *in_schema(void)
{
    tm_schema_t *s = tm_schema_new(NCOLS);
    tm_schema_set_str(&s->table, "t");
    tst_col(s, C_ID, "id", TM_T_INT64, 0);
    tst_col(s, C_G, "g", TM_T_INT64, -1);
    tst_col(s, C_X, "x", TM_T_INT32, -1);
    tst_col(s, C_N, "n", TM_T_NUMERIC, -1);
    tst_col(s, C_F, "f", TM_T_FLOAT64, -1);
    tst_col(s, C_B, "b", TM_T_BOOL, -1);
    tst_col(s, C_S, "s", TM_T_TEXT, -1);
    tm_schema_finish(s);
    return s;
}

typedef struct aggdef {
    const char *name;
    bool star, distinct;
    int col;
    const char *sep;
} aggdef_t;

static const aggdef_t aggdefs[] = {
    {"count", true, false, -1, NULL},    {"count", false, false, C_X, NULL},
    {"count", false, true, C_X, NULL},   {"sum", false, false, C_X, NULL},
    {"sum", false, true, C_X, NULL},     {"min", false, false, C_X, NULL},
    {"max", false, false, C_X, NULL},    {"max", false, true, C_X, NULL},
    {"avg", false, false, C_X, NULL},    {"sum", false, false, C_N, NULL},
    {"avg", false, false, C_N, NULL},    {"avg", false, true, C_N, NULL},
    {"min", false, false, C_N, NULL},    {"max", false, false, C_N, NULL},
    {"sum", false, false, C_F, NULL},    {"avg", false, false, C_F, NULL},
    {"min", false, false, C_F, NULL},    {"bool_and", false, false, C_B, NULL},
    {"bool_or", false, false, C_B, NULL}, {"string_agg", false, false, C_S, ","},
    {"string_agg", false, true, C_S, "|"}, {"count", false, true, C_S, NULL},
    {"min", false, false, C_S, NULL},    {"max", false, false, C_S, NULL},
    {"sum", false, true, C_N, NULL},
};
#define NAGGS ((int)(sizeof(aggdefs) / sizeof(aggdefs[0])))

typedef struct fixture {
    tm_schema_t *in;
    tm_agg_call_t aggs[NAGGS];
    int group_cols[1];
    tm_group_agg_spec_t spec, gspec; /* grouped by g; global */
} fixture_t;

/* As tm_expr_type_to_column() (expr.c, on another branch). */
static void col_from_type(const tm_expr_type_t *t, tm_column_t *col)
{
    col->type = t->type;
    col->elem_type = t->elem_type;
    col->precision = t->precision;
    col->scale = t->scale;
}

static tm_schema_t *out_schema(const tm_schema_t *in, const tm_agg_call_t *aggs, int naggs,
                               bool grouped)
{
    int ng = grouped ? 1 : 0;
    tm_schema_t *s = tm_schema_new(ng + naggs);
    if (grouped)
        tst_col(s, 0, "g", in->cols[C_G].type, 0);
    for (int i = 0; i < naggs; i++) {
        char name[32];
        snprintf(name, sizeof(name), "a%d", i);
        tm_schema_set_str(&s->cols[ng + i].name, name);
        col_from_type(&aggs[i].result_type, &s->cols[ng + i]);
        s->cols[ng + i].key_index = -1;
    }
    tm_schema_finish(s);
    return s;
}

static void type_from_col(const tm_column_t *col, tm_expr_type_t *t)
{
    memset(t, 0, sizeof(*t));
    t->type = col->type;
    t->elem_type = col->elem_type;
    t->precision = col->precision;
    t->scale = col->scale;
}

static void fixture_init(fixture_t *f)
{
    memset(f, 0, sizeof(*f));
    f->in = in_schema();
    for (int i = 0; i < NAGGS; i++) {
        const aggdef_t *a = &aggdefs[i];
        tm_expr_type_t types[2] = {{0}, {0}};
        int nargs = 0;
        if (!a->star) {
            type_from_col(&f->in->cols[a->col], &types[0]);
            nargs = 1;
        }
        if (a->sep != NULL) {
            types[1].type = TM_T_TEXT;
            nargs = 2;
        }
        int rc = tm_agg_resolve(a->name, a->star, a->distinct, types, nargs, &f->aggs[i], err,
                                sizeof(err));
        if (rc != 0)
            fprintf(stderr, "%s: %s\n", a->name, err);
        TM_REQUIRE(rc == 0);
        f->aggs[i].arg = a->col;
        f->aggs[i].separator = (char *)a->sep;
    }
    f->group_cols[0] = C_G;
    f->spec.in_schema = f->in;
    f->spec.group_cols = f->group_cols;
    f->spec.ngroup = 1;
    f->spec.aggs = f->aggs;
    f->spec.naggs = NAGGS;
    f->spec.out_schema = out_schema(f->in, f->aggs, NAGGS, true);
    f->gspec = f->spec;
    f->gspec.ngroup = 0;
    f->gspec.out_schema = out_schema(f->in, f->aggs, NAGGS, false);
}

static void fixture_free(fixture_t *f)
{
    tm_schema_unref(f->spec.out_schema);
    tm_schema_unref(f->gspec.out_schema);
    tm_schema_unref(f->in);
}

/* ---- formatting ---- */

static void datum_str(tm_buf_t *o, tm_type_t type, const tm_datum_t *d)
{
    char tmp[1200];
    switch (type) {
    case TM_T_NUMERIC:
        tm_numeric_format(d, tmp, sizeof(tmp));
        tm_buf_puts(o, tmp);
        break;
    case TM_T_FLOAT32:
    case TM_T_FLOAT64:
        tm_buf_appendf(o, "%.17g", d->u.f64);
        break;
    case TM_T_BOOL:
        tm_buf_puts(o, d->u.b ? "t" : "f");
        break;
    case TM_T_TEXT:
        tm_buf_putc(o, '\'');
        tm_buf_append(o, d->u.var.ptr, d->u.var.len);
        tm_buf_putc(o, '\'');
        break;
    default:
        tm_buf_append_i64(o, d->u.i64);
        break;
    }
}

static char *row_str(const tm_schema_t *s, const tm_row_t *r)
{
    tm_buf_t o;
    tm_buf_init(&o);
    for (int i = 0; i < s->ncols; i++) {
        if (i > 0)
            tm_buf_putc(&o, '|');
        if (tm_row_is_null(r, i))
            tm_buf_puts(&o, "null");
        else
            datum_str(&o, s->cols[i].type, &r->vals[i]);
    }
    tm_buf_putc(&o, '\0');
    return o.data;
}

/* ---- the folded output table (key = the group column's text, "" for global) ---- */

#define MAXROWS 64

typedef struct table {
    int n;
    char *key[MAXROWS];
    char *row[MAXROWS];
    int touched[MAXROWS]; /* changes in the current input batch */
    int errors;
} table_t;

static int table_find(table_t *t, const char *key)
{
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->key[i], key) == 0)
            return i;
    return -1;
}

static void table_clear(table_t *t)
{
    for (int i = 0; i < t->n; i++) {
        free(t->key[i]);
        free(t->row[i]);
    }
    memset(t, 0, sizeof(*t));
}

static void table_copy(table_t *dst, const table_t *src)
{
    table_clear(dst);
    dst->n = src->n;
    for (int i = 0; i < src->n; i++) {
        dst->key[i] = strdup(src->key[i]);
        dst->row[i] = strdup(src->row[i]);
    }
}

static char *key_of(const tm_schema_t *s, const tm_row_t *r, bool grouped)
{
    if (!grouped)
        return strdup("");
    tm_buf_t o;
    tm_buf_init(&o);
    if (tm_row_is_null(r, 0))
        tm_buf_puts(&o, "null");
    else
        datum_str(&o, s->cols[0].type, &r->vals[0]);
    tm_buf_putc(&o, '\0');
    return o.data;
}

/* Folds one record, checking it against the table (the upsert contract of group_agg.h). */
static void fold(table_t *t, const tm_record_t *r, bool grouped)
{
    const tm_schema_t *s = r->schema;
    const tm_row_t *img = r->after ? r->after : r->before;
    if (img == NULL) {
        t->errors++;
        return;
    }
    char *key = key_of(s, img, grouped);
    int i = table_find(t, key);
    char *after = r->after ? row_str(s, r->after) : NULL;
    char *before = r->before ? row_str(s, r->before) : NULL;
    switch (r->op) {
    case TM_OP_CREATE:
        if (i >= 0 || r->before != NULL) {
            fprintf(stderr, "insert of existing group %s\n", key);
            t->errors++;
            break;
        }
        i = t->n++;
        t->key[i] = strdup(key);
        t->row[i] = strdup(after);
        t->touched[i] = 1;
        break;
    case TM_OP_UPDATE:
        if (i < 0 || before == NULL || strcmp(before, t->row[i]) != 0 ||
            strcmp(before, after) == 0) {
            fprintf(stderr, "bad update of %s: %s -> %s (table: %s)\n", key, before, after,
                    i >= 0 ? t->row[i] : "-");
            t->errors++;
            break;
        }
        free(t->row[i]);
        t->row[i] = strdup(after);
        t->touched[i]++;
        break;
    case TM_OP_DELETE:
        if (!grouped || i < 0 || before == NULL || strcmp(before, t->row[i]) != 0) {
            fprintf(stderr, "bad delete of %s\n", key);
            t->errors++;
            break;
        }
        free(t->key[i]);
        free(t->row[i]);
        t->n--;
        t->key[i] = t->key[t->n];
        t->row[i] = t->row[t->n];
        t->touched[i] = t->touched[t->n];
        break;
    default:
        t->errors++;
    }
    if (i >= 0 && i < t->n && t->touched[i] > 1) {
        fprintf(stderr, "group %s changed twice in one batch\n", key);
        t->errors++;
    }
    free(key);
    free(after);
    free(before);
}

typedef struct collector {
    tm_collector_t c;
    table_t *table;
    bool grouped;
    int records;
} collector_t;

static int collect(tm_collector_t *c, tm_batch_t *b)
{
    collector_t *col = c->arg;
    if (b->count > TM_BATCH_MAX)
        col->table->errors++;
    for (uint32_t i = 0; i < b->count; i++)
        fold(col->table, &b->recs[i], col->grouped);
    col->records += (int)b->count;
    tm_batch_unref(b);
    return 0;
}

static void collector_init(collector_t *c, table_t *t, bool grouped)
{
    memset(c, 0, sizeof(*c));
    c->c.emit = collect;
    c->c.arg = c;
    c->table = t;
    c->grouped = grouped;
}

/* ---- the brute-force model: the surviving input rows ---- */

#define MAXLIVE 4096

typedef struct model {
    int n;
    const tm_row_t *rows[MAXLIVE];
} model_t;

static void model_apply(model_t *m, const tm_record_t *r)
{
    if (r->before != NULL) {
        for (int i = 0; i < m->n; i++)
            if (m->rows[i]->vals[C_ID].u.i64 == r->before->vals[C_ID].u.i64) {
                m->rows[i] = m->rows[--m->n];
                break;
            }
    }
    if (r->after != NULL && m->n < MAXLIVE)
        m->rows[m->n++] = r->after;
}

static int64_t cents(const tm_datum_t *d)
{
    return d->scale == 2 ? (int64_t)d->u.dec : (int64_t)d->u.dec * 10;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* PostgreSQL's select_div_scale for sum (unscaled at `scale`) / cnt, written independently. */
static int pg_rscale(__int128 sum, int scale, int dscale, int64_t cnt)
{
    unsigned __int128 u = sum < 0 ? -(unsigned __int128)sum : (unsigned __int128)sum;
    __int128 p10 = 1;
    for (int i = 0; i < scale; i++)
        p10 *= 10;
    unsigned __int128 ip = u / (unsigned __int128)p10, fp = u % (unsigned __int128)p10;
    int w1 = 0, f1 = 0;
    if (ip > 0) {
        while (ip >= 10000) {
            ip /= 10000;
            w1++;
        }
        f1 = (int)ip;
    } else if (fp > 0) {
        int groups = (scale + 3) / 4;
        for (int k = scale; k < groups * 4; k++)
            fp *= 10;
        for (int j = 1; j <= groups; j++) {
            unsigned __int128 div = 1;
            for (int k = 0; k < groups - j; k++)
                div *= 10000;
            int dg = (int)((fp / div) % 10000);
            if (dg != 0) {
                w1 = -j;
                f1 = dg;
                break;
            }
        }
    }
    int w2 = 0;
    int64_t c = cnt;
    while (c >= 10000) {
        c /= 10000;
        w2++;
    }
    int qw = w1 - w2 - (f1 <= (int)c ? 1 : 0);
    int r = 16 - qw * 4;
    if (r < dscale)
        r = dscale;
    return r < 0 ? 0 : r;
}

static void expect_avg(tm_buf_t *o, __int128 sum, int scale, int dscale, int64_t cnt)
{
    int rs = pg_rscale(sum, scale, dscale, cnt);
    __int128 num = sum < 0 ? -sum : sum;
    for (int i = scale; i < rs + 1; i++)
        num *= 10; /* one extra digit for rounding */
    __int128 q = num / cnt;
    q = (q + 5) / 10;
    tm_datum_t d = {0};
    d.u.dec = sum < 0 ? -q : q;
    d.scale = (int16_t)rs;
    datum_str(o, TM_T_NUMERIC, &d);
}

/* The expected text of aggregate `a` over rows[0..n). */
static void expect_agg(tm_buf_t *o, int a, const tm_row_t *const *rows, int n)
{
    const aggdef_t *def = &aggdefs[a];
    const char *name = def->name;
    int col = def->col;
    int64_t vals[MAXLIVE];
    const char *strs[MAXLIVE];
    double fsum = 0;
    int nv = 0;
    int maxscale = 0;
    bool all = true, any = false;
    for (int i = 0; i < n; i++) {
        if (def->star) {
            nv++;
            continue;
        }
        if (tm_row_is_null(rows[i], col))
            continue;
        const tm_datum_t *d = &rows[i]->vals[col];
        switch (col) {
        case C_X:
            vals[nv] = d->u.i64;
            break;
        case C_N:
            vals[nv] = cents(d);
            if (d->scale > maxscale)
                maxscale = d->scale;
            break;
        case C_F:
            vals[nv] = (int64_t)d->u.f64;
            fsum += d->u.f64;
            break;
        case C_B:
            all = all && d->u.b;
            any = any || d->u.b;
            break;
        case C_S:
            strs[nv] = d->u.var.ptr;
            break;
        }
        nv++;
    }
    if (def->star || strcmp(name, "count") == 0) {
        if (def->distinct && nv > 0) {
            int k = 1;
            if (col == C_S) {
                qsort(strs, (size_t)nv, sizeof(char *), cmp_str);
                for (int i = 1; i < nv; i++)
                    k += strcmp(strs[i], strs[i - 1]) != 0;
            } else {
                qsort(vals, (size_t)nv, sizeof(int64_t), cmp_i64);
                for (int i = 1; i < nv; i++)
                    k += vals[i] != vals[i - 1];
            }
            nv = k;
        }
        tm_buf_append_i64(o, nv);
        return;
    }
    if (nv == 0) {
        tm_buf_puts(o, "null");
        return;
    }
    if (col == C_B) {
        tm_buf_puts(o, (strcmp(name, "bool_and") == 0 ? all : any) ? "t" : "f");
        return;
    }
    if (col == C_S) {
        qsort(strs, (size_t)nv, sizeof(char *), cmp_str);
        if (strcmp(name, "min") == 0 || strcmp(name, "max") == 0) {
            tm_buf_appendf(o, "'%s'", strcmp(name, "min") == 0 ? strs[0] : strs[nv - 1]);
            return;
        }
        tm_buf_putc(o, '\'');
        for (int i = 0; i < nv; i++) {
            if (def->distinct && i > 0 && strcmp(strs[i], strs[i - 1]) == 0)
                continue;
            if (i > 0)
                tm_buf_puts(o, def->sep);
            tm_buf_puts(o, strs[i]);
        }
        tm_buf_putc(o, '\'');
        return;
    }
    qsort(vals, (size_t)nv, sizeof(int64_t), cmp_i64);
    if (def->distinct) {
        int k = 1;
        for (int i = 1; i < nv; i++)
            if (vals[i] != vals[i - 1])
                vals[k++] = vals[i];
        nv = k;
        if (col == C_N) {
            /* Distinct values keep their own scale: scale 2 unless a multiple of 10 cents. */
            maxscale = 1;
            for (int i = 0; i < nv; i++)
                if (vals[i] % 10 != 0)
                    maxscale = 2;
        }
    }
    __int128 sum = 0;
    for (int i = 0; i < nv; i++)
        sum += vals[i];
    if (col == C_F) {
        double r = strcmp(name, "sum") == 0 ? fsum : strcmp(name, "avg") == 0 ? fsum / nv
                                                                                : (double)vals[0];
        tm_buf_appendf(o, "%.17g", r);
        return;
    }
    if (strcmp(name, "min") == 0 || strcmp(name, "max") == 0) {
        int64_t v = strcmp(name, "min") == 0 ? vals[0] : vals[nv - 1];
        if (col == C_X) {
            tm_buf_append_i64(o, v);
        } else {
            tm_datum_t d = {0};
            d.u.dec = v % 10 == 0 ? v / 10 : v;
            d.scale = v % 10 == 0 ? 1 : 2;
            datum_str(o, TM_T_NUMERIC, &d);
        }
        return;
    }
    if (strcmp(name, "sum") == 0) {
        if (col == C_X) {
            tm_buf_append_i64(o, (int64_t)sum);
        } else {
            tm_datum_t d = {0};
            d.u.dec = maxscale == 2 ? sum : sum / 10;
            d.scale = (int16_t)maxscale;
            datum_str(o, TM_T_NUMERIC, &d);
        }
        return;
    }
    /* avg */
    if (col == C_X)
        expect_avg(o, sum, 0, 0, nv);
    else
        expect_avg(o, sum, 2, maxscale, nv);
}

/* The expected table: one row per group of the model (or the global row). */
static void expect_table(const model_t *m, bool grouped, bool global_started, table_t *t)
{
    table_clear(t);
    const tm_row_t *rows[MAXLIVE];
    bool done[MAXLIVE] = {false};
    for (int i = 0; i < m->n || (!grouped && i == 0 && global_started); i++) {
        if (i < m->n && done[i])
            continue;
        int n = 0;
        for (int j = i; j < m->n; j++) {
            bool same = !grouped ||
                        (tm_row_is_null(m->rows[i], C_G) && tm_row_is_null(m->rows[j], C_G)) ||
                        (!tm_row_is_null(m->rows[i], C_G) && !tm_row_is_null(m->rows[j], C_G) &&
                         m->rows[i]->vals[C_G].u.i64 == m->rows[j]->vals[C_G].u.i64);
            if (same && !done[j]) {
                done[j] = true;
                rows[n++] = m->rows[j];
            }
        }
        tm_buf_t o;
        tm_buf_init(&o);
        if (grouped) {
            if (tm_row_is_null(m->rows[i], C_G))
                tm_buf_puts(&o, "null");
            else
                tm_buf_append_i64(&o, m->rows[i]->vals[C_G].u.i64);
        }
        char *key = strndup(o.data ? o.data : "", o.len);
        for (int a = 0; a < NAGGS; a++) {
            if (grouped || a > 0)
                tm_buf_putc(&o, '|');
            expect_agg(&o, a, rows, n);
        }
        tm_buf_putc(&o, '\0');
        t->key[t->n] = key;
        t->row[t->n] = o.data;
        t->n++;
        if (!grouped)
            break;
    }
}

/* Same rows regardless of order; prints the first difference. */
static bool tables_equal(const table_t *got, const table_t *want)
{
    bool ok = got->n == want->n;
    for (int i = 0; i < want->n; i++) {
        int j = table_find((table_t *)got, want->key[i]);
        if (j < 0 || strcmp(got->row[j], want->row[i]) != 0) {
            fprintf(stderr, "group %s:\n  got  %s\n  want %s\n", want->key[i],
                    j >= 0 ? got->row[j] : "(none)", want->row[i]);
            return false;
        }
    }
    if (!ok)
        fprintf(stderr, "got %d groups, want %d\n", got->n, want->n);
    return ok;
}

/* ---- the workload ---- */

static uint64_t rng = 42;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static tm_row_t *random_row(tm_batch_t *b, const tm_schema_t *s, int64_t id, int ngroups)
{
    static const char *const words[] = {"apple", "b", "banana", "cherry", "apple pie", "zz", ""};
    tm_row_t *r = tm_batch_new_row(b, s);
    tm_row_set_null(r, C_ID, false);
    r->vals[C_ID].u.i64 = id;
    if (rnd(10) != 0) {
        tm_row_set_null(r, C_G, false);
        r->vals[C_G].u.i64 = rnd((uint32_t)ngroups);
    }
    if (rnd(6) != 0) {
        tm_row_set_null(r, C_X, false);
        r->vals[C_X].u.i64 = (int64_t)rnd(11) - 5;
    }
    if (rnd(6) != 0) {
        tm_row_set_null(r, C_N, false);
        /* Scale 2 values are never whole tenths, so each value has one representation. */
        if (rnd(2)) {
            int64_t c = (int64_t)rnd(60) - 30;
            r->vals[C_N].u.dec = c * 10 + (c % 3 == 0 ? 5 : 3);
            r->vals[C_N].scale = 2;
        } else {
            r->vals[C_N].u.dec = (int64_t)rnd(41) - 20;
            r->vals[C_N].scale = 1;
        }
    }
    if (rnd(6) != 0) {
        tm_row_set_null(r, C_F, false);
        r->vals[C_F].u.f64 = (double)((int)rnd(21) - 10);
    }
    if (rnd(6) != 0) {
        tm_row_set_null(r, C_B, false);
        r->vals[C_B].u.b = rnd(4) != 0;
    }
    if (rnd(6) != 0) {
        const char *w = words[rnd(sizeof(words) / sizeof(words[0]))];
        tm_row_set_null(r, C_S, false);
        tm_batch_set_var(b, &r->vals[C_S], w, strlen(w));
    }
    return r;
}

static tm_record_t *add_rec(tm_batch_t *b, tm_schema_t *s, tm_op_t op, tm_row_t *before,
                            tm_row_t *after)
{
    tm_record_t *r = tm_batch_add(b, s, op);
    r->before = before;
    r->after = after;
    return r;
}

/*
 * One random batch built against `live` (the generator's own copy of the
 * surviving rows): inserts, updates (group changes included), deletes,
 * deletes of every row of one group, deletes of a group's min.
 */
static tm_batch_t *random_batch(tm_schema_t *s, model_t *live, int64_t *next_id, int ngroups)
{
    tm_batch_t *b = tm_batch_new();
    int n = 1 + (int)rnd(rnd(8) == 0 ? 200 : 30);
    for (int k = 0; k < n && b->count < TM_BATCH_MAX - 64; k++) {
        int what = (int)rnd(20);
        if (live->n == 0 || what < 8) {
            tm_row_t *r = random_row(b, s, (*next_id)++, ngroups);
            model_apply(live, add_rec(b, s, rnd(2) ? TM_OP_CREATE : TM_OP_READ, NULL, r));
        } else if (what < 14) {
            const tm_row_t *old = live->rows[rnd((uint32_t)live->n)];
            tm_row_t *r = random_row(b, s, old->vals[C_ID].u.i64, ngroups);
            if (rnd(2)) /* keep the group: an in-group update */
                r->vals[C_G] = old->vals[C_G], tm_row_set_null(r, C_G, tm_row_is_null(old, C_G));
            model_apply(live, add_rec(b, s, TM_OP_UPDATE, (tm_row_t *)old, r));
        } else if (what < 18) {
            const tm_row_t *old = live->rows[rnd((uint32_t)live->n)];
            model_apply(live, add_rec(b, s, TM_OP_DELETE, (tm_row_t *)old, NULL));
        } else if (what == 18) {
            /* Empty a whole group (it is refilled by later inserts). */
            int64_t g = rnd((uint32_t)ngroups);
            for (int i = live->n - 1; i >= 0 && b->count < TM_BATCH_MAX - 2; i--)
                if (!tm_row_is_null(live->rows[i], C_G) && live->rows[i]->vals[C_G].u.i64 == g)
                    model_apply(live, add_rec(b, s, TM_OP_DELETE, (tm_row_t *)live->rows[i],
                                              NULL));
        } else {
            /* Delete the row holding the largest x (the current max of its group). */
            int best = -1;
            for (int i = 0; i < live->n; i++)
                if (!tm_row_is_null(live->rows[i], C_X) &&
                    (best < 0 || live->rows[i]->vals[C_X].u.i64 > live->rows[best]->vals[C_X].u.i64))
                    best = i;
            if (best >= 0)
                model_apply(live, add_rec(b, s, TM_OP_DELETE, (tm_row_t *)live->rows[best],
                                          NULL));
        }
    }
    return b;
}

/* ---- harness ---- */

typedef struct run {
    char *dir;
    tm_store_t *store;
    tm_operator_metrics_t metrics, gmetrics;
    tm_operator_ctx_t ctx, gctx;
    const tm_operator_ops_t *ops, *gops;
    tm_operator_t *op, *gop;
} run_t;

static void run_open_ops(run_t *r, fixture_t *f)
{
    memset(&r->metrics, 0, sizeof(r->metrics));
    memset(&r->gmetrics, 0, sizeof(r->gmetrics));
    r->ctx = (tm_operator_ctx_t){.uid = "agg-g", .job = "t", .parallelism = 1,
                                 .max_parallelism = 128, .kg_first = 0, .kg_last = 127,
                                 .store = r->store, .metrics = &r->metrics};
    r->gctx = r->ctx;
    r->gctx.uid = "agg-global";
    r->gctx.metrics = &r->gmetrics;
    TM_REQUIRE(tm_group_agg_new(&f->spec, &r->ctx, &r->ops, &r->op, err, sizeof(err)) == 0);
    TM_REQUIRE(tm_group_agg_new(&f->gspec, &r->gctx, &r->gops, &r->gop, err, sizeof(err)) == 0);
}

static void run_close_ops(run_t *r)
{
    r->ops->free(r->op);
    r->gops->free(r->gop);
    r->op = r->gop = NULL;
}

static void check_process(run_t *r, tm_batch_t *b, collector_t *c, collector_t *gc)
{
    for (int i = 0; i < c->table->n; i++)
        c->table->touched[i] = 0;
    for (int i = 0; i < gc->table->n; i++)
        gc->table->touched[i] = 0;
    int rc = r->ops->process(r->op, 0, b, &c->c, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "process: %s\n", err);
    TM_REQUIRE(rc == 0);
    rc = r->gops->process(r->gop, 0, b, &gc->c, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "process (global): %s\n", err);
    TM_REQUIRE(rc == 0);
}

/*
 * The random workload: after every batch, the folded output of the grouped
 * and the global aggregate equals the brute-force result over the
 * surviving rows.  Midway a checkpoint is taken after on_barrier; later the
 * store is restored from it into new operator instances, the batches since
 * are replayed, and the results agree again.
 */
static void test_random_workload(void)
{
    fixture_t f;
    fixture_init(&f);
    run_t r = {0};
    char p[512], chk[512];
    r.dir = tst_tmpdir();
    tm_store_opts_t o = tst_opts(0);
    TM_REQUIRE(tm_store_open(tst_path(p, sizeof(p), r.dir, "work"), &o, &r.store, err,
                             sizeof(err)) == 0);
    run_open_ops(&r, &f);
    table_t got = {0}, ggot = {0}, want = {0}, saved = {0}, gsaved = {0};
    collector_t c, gc;
    collector_init(&c, &got, true);
    collector_init(&gc, &ggot, false);
    enum { NBATCH = 260, CHK_AT = 150, CRASH_AT = 200 };
    static tm_batch_t *batches[NBATCH];
    static model_t gen, model;
    int64_t next_id = 1;
    rng = 12345;
    for (int i = 0; i < NBATCH; i++)
        batches[i] = random_batch(f.in, &gen, &next_id, i < NBATCH / 2 ? 6 : 3);
    model_t saved_model;
    bool restarted = false;
    for (int i = 0; i < NBATCH; i++) {
        check_process(&r, batches[i], &c, &gc);
        for (uint32_t k = 0; k < batches[i]->count; k++)
            model_apply(&model, &batches[i]->recs[k]);
        expect_table(&model, true, true, &want);
        bool ok = tables_equal(&got, &want);
        expect_table(&model, false, true, &want);
        ok = tables_equal(&ggot, &want) && ok;
        if (!ok)
            fprintf(stderr, "after batch %d (%u records, %d live rows)\n", i,
                    batches[i]->count, model.n);
        TM_REQUIRE(ok);
        TM_CHECK_INT(got.errors + ggot.errors, 0);
        if (i == CHK_AT) {
            TM_REQUIRE(r.ops->on_barrier(r.op, 1, &c.c, err, sizeof(err)) == 0);
            TM_REQUIRE(r.gops->on_barrier(r.gop, 1, &gc.c, err, sizeof(err)) == 0);
            TM_REQUIRE(tm_store_checkpoint(r.store, tst_path(chk, sizeof(chk), r.dir, "chk-1"),
                                           NULL, err, sizeof(err)) == 0);
            table_copy(&saved, &got);
            table_copy(&gsaved, &ggot);
            saved_model = model;
        }
        if (i == CRASH_AT && !restarted) {
            /* Crash: everything after the checkpoint is lost; restore and replay. */
            restarted = true;
            run_close_ops(&r);
            r.store = tm_store_close(r.store);
            TM_REQUIRE(tm_store_open_from_checkpoint(chk, tst_path(p, sizeof(p), r.dir, "work2"),
                                                     &o, &r.store, err, sizeof(err)) == 0);
            run_open_ops(&r, &f);
            table_copy(&got, &saved);
            table_copy(&ggot, &gsaved);
            model = saved_model;
            i = CHK_AT;
        }
    }
    TM_CHECK(restarted);
    TM_CHECK(c.records > 100);
    run_close_ops(&r);
    tm_store_close(r.store);
    for (int i = 0; i < NBATCH; i++)
        tm_batch_unref(batches[i]);
    table_clear(&got);
    table_clear(&ggot);
    table_clear(&want);
    table_clear(&saved);
    table_clear(&gsaved);
    tst_rmdir(r.dir);
    fixture_free(&f);
}

/* Mini-batching: one state read per group per batch, one change per group per batch. */
static void test_mini_batch(void)
{
    fixture_t f;
    fixture_init(&f);
    /* count(*) and sum(x) only: no value entries, so reads are group reads. */
    f.spec.naggs = 2;
    f.aggs[1] = f.aggs[3];
    tm_schema_unref(f.spec.out_schema);
    f.spec.out_schema = out_schema(f.in, f.aggs, 2, true);
    run_t r = {0};
    char p[512];
    r.dir = tst_tmpdir();
    tm_store_opts_t o = tst_opts(0);
    TM_REQUIRE(tm_store_open(tst_path(p, sizeof(p), r.dir, "work"), &o, &r.store, err,
                             sizeof(err)) == 0);
    run_open_ops(&r, &f);
    table_t got = {0}, ggot = {0};
    collector_t c, gc;
    collector_init(&c, &got, true);
    collector_init(&gc, &ggot, false);
    rng = 7;
    tm_batch_t *b = tm_batch_new();
    for (int i = 0; i < 300; i++) {
        tm_row_t *row = random_row(b, f.in, i, 3);
        tm_row_set_null(row, C_G, false);
        row->vals[C_G].u.i64 = i % 3;
        add_rec(b, f.in, TM_OP_CREATE, NULL, row);
    }
    check_process(&r, b, &c, &gc);
    TM_CHECK_INT(atomic_load(&r.metrics.state_reads), 3);
    TM_CHECK_INT(c.records, 3);
    TM_CHECK_INT(got.errors, 0);
    /* Updates within one group and a delete in another: two reads, two changes. */
    tm_batch_t *b2 = tm_batch_new();
    for (int i = 0; i < 300; i += 3) {
        tm_row_t *row = tm_row_copy(b2, f.in, b->recs[i].after);
        row->vals[C_X].u.i64 = 100;
        tm_row_set_null(row, C_X, false);
        add_rec(b2, f.in, TM_OP_UPDATE, b->recs[i].after, row);
    }
    add_rec(b2, f.in, TM_OP_DELETE, b->recs[1].after, NULL);
    check_process(&r, b2, &c, &gc);
    TM_CHECK_INT(atomic_load(&r.metrics.state_reads), 5);
    TM_CHECK_INT(c.records, 5);
    TM_CHECK_INT(got.errors, 0);
    /* An insert and its delete in one batch change nothing. */
    tm_batch_t *b3 = tm_batch_new();
    tm_row_t *row = random_row(b3, f.in, 999, 3);
    tm_row_set_null(row, C_G, false);
    row->vals[C_G].u.i64 = 2;
    add_rec(b3, f.in, TM_OP_CREATE, NULL, row);
    add_rec(b3, f.in, TM_OP_DELETE, row, NULL);
    check_process(&r, b3, &c, &gc);
    TM_CHECK_INT(c.records, 5);
    TM_CHECK_INT(gc.records, 2); /* the global row: inserted, updated by the delete, then unchanged */
    run_close_ops(&r);
    tm_store_close(r.store);
    tm_batch_unref(b);
    tm_batch_unref(b2);
    tm_batch_unref(b3);
    table_clear(&got);
    table_clear(&ggot);
    tst_rmdir(r.dir);
    fixture_free(&f);
}

/* A row of group 0 with only id and x set (every other argument NULL). */
static tm_row_t *x_row(tm_batch_t *b, const tm_schema_t *s, int64_t id, int64_t x)
{
    tm_row_t *r = tm_batch_new_row(b, s);
    tm_row_set_null(r, C_ID, false);
    r->vals[C_ID].u.i64 = id;
    tm_row_set_null(r, C_G, false);
    r->vals[C_G].u.i64 = 0;
    tm_row_set_null(r, C_X, false);
    r->vals[C_X].u.i64 = x;
    return r;
}

/*
 * min/max state accesses: the six aggregates of x (count, sum and max
 * DISTINCT, min, max) share one multiset.  With `fillers` = 0 it stays
 * inline in the group state, so every batch costs one read.  With 70 more
 * values (never an extreme) it spills to entries: then an insert or a
 * retraction of a value that is not an extreme costs one entry read and no
 * seek; only a retracted extreme seeks; a value inserted and deleted in one
 * batch costs nothing.  Every result is checked against the brute force.
 */
static void minmax_reads(int fillers)
{
    fixture_t f;
    fixture_init(&f);
    run_t r = {0};
    char p[512];
    r.dir = tst_tmpdir();
    tm_store_opts_t o = tst_opts(0);
    TM_REQUIRE(tm_store_open(tst_path(p, sizeof(p), r.dir, "work"), &o, &r.store, err,
                             sizeof(err)) == 0);
    run_open_ops(&r, &f);
    table_t got = {0}, ggot = {0}, want = {0};
    collector_t c, gc;
    collector_init(&c, &got, true);
    collector_init(&gc, &ggot, false);
    static model_t model;
    model.n = 0;
    tm_batch_t *bs[6];
    tm_row_t *rows[16], *fill[81];
    /* reads: 1 group (a spilling multiset writes its entries without reading them) */
    bs[0] = tm_batch_new();
    for (int i = 0; i < 10; i++)
        add_rec(bs[0], f.in, TM_OP_CREATE, NULL, rows[i] = x_row(bs[0], f.in, i, 10 * (i + 1)));
    for (int j = 0, x = 11; j < fillers; j++, x += x % 10 == 9 ? 2 : 1)
        add_rec(bs[0], f.in, TM_OP_CREATE, NULL, fill[j] = x_row(bs[0], f.in, 100 + j, x));
    /* 50 again, a new minimum 5, and 40 retracted: 1 group + 3 values, no seek */
    bs[1] = tm_batch_new();
    add_rec(bs[1], f.in, TM_OP_CREATE, NULL, rows[10] = x_row(bs[1], f.in, 10, 50));
    add_rec(bs[1], f.in, TM_OP_CREATE, NULL, rows[11] = x_row(bs[1], f.in, 11, 5));
    add_rec(bs[1], f.in, TM_OP_DELETE, rows[3], NULL);
    /* the minimum 5 retracted: 1 group + 1 value + 1 seek */
    bs[2] = tm_batch_new();
    add_rec(bs[2], f.in, TM_OP_DELETE, rows[11], NULL);
    /* 7 inserted and deleted, one 50 of two retracted: 1 group + 1 value (its count) */
    bs[3] = tm_batch_new();
    add_rec(bs[3], f.in, TM_OP_CREATE, NULL, rows[12] = x_row(bs[3], f.in, 12, 7));
    add_rec(bs[3], f.in, TM_OP_DELETE, rows[12], NULL);
    add_rec(bs[3], f.in, TM_OP_DELETE, rows[10], NULL);
    /* both extremes retracted (10 by an update to 60): 1 group + 3 values + 2 seeks */
    bs[4] = tm_batch_new();
    add_rec(bs[4], f.in, TM_OP_DELETE, rows[9], NULL);
    add_rec(bs[4], f.in, TM_OP_UPDATE, rows[0], rows[13] = x_row(bs[4], f.in, 0, 60));
    /* the group emptied: 1 group + 7 values, no seek */
    bs[5] = tm_batch_new();
    add_rec(bs[5], f.in, TM_OP_DELETE, rows[13], NULL);
    for (int i = 1; i < 9; i++)
        if (i != 3)
            add_rec(bs[5], f.in, TM_OP_DELETE, rows[i], NULL);
    for (int j = 0; j < fillers; j++)
        add_rec(bs[5], f.in, TM_OP_DELETE, fill[j], NULL);
    const int reads[] = {1, fillers ? 4 : 1, fillers ? 3 : 1, fillers ? 2 : 1, fillers ? 6 : 1,
                         fillers ? 8 + fillers : 1};
    static const int changes[] = {1, 1, 1, 1, 1, 1};
    int total = 0, records = 0;
    for (int i = 0; i < 6; i++) {
        check_process(&r, bs[i], &c, &gc);
        for (uint32_t k = 0; k < bs[i]->count; k++)
            model_apply(&model, &bs[i]->recs[k]);
        expect_table(&model, true, true, &want);
        if (!tables_equal(&got, &want))
            fprintf(stderr, "after batch %d\n", i);
        TM_CHECK(tables_equal(&got, &want));
        expect_table(&model, false, true, &want);
        TM_CHECK(tables_equal(&ggot, &want));
        total += reads[i];
        records += changes[i];
        if (atomic_load(&r.metrics.state_reads) != (uint64_t)total)
            fprintf(stderr, "batch %d\n", i);
        TM_CHECK_INT(atomic_load(&r.metrics.state_reads), total);
        TM_CHECK_INT(c.records, records);
        /* The global aggregate reads the same, but its group is never deleted. */
        TM_CHECK_INT(atomic_load(&r.gmetrics.state_reads), total);
    }
    TM_CHECK_INT(got.n, 0);
    TM_CHECK_INT(got.errors + ggot.errors, 0);
    run_close_ops(&r);
    tm_store_close(r.store);
    for (int i = 0; i < 6; i++)
        tm_batch_unref(bs[i]);
    table_clear(&got);
    table_clear(&ggot);
    table_clear(&want);
    tst_rmdir(r.dir);
    fixture_free(&f);
}

static void test_minmax_reads(void)
{
    minmax_reads(0);
    minmax_reads(70);
}

/* A row of a key group the subtask does not own fails the call with a clear message. */
static void test_foreign_key_group(void)
{
    fixture_t f;
    fixture_init(&f);
    run_t r = {0};
    char p[512];
    r.dir = tst_tmpdir();
    tm_store_opts_t o = tst_opts(0);
    TM_REQUIRE(tm_store_open(tst_path(p, sizeof(p), r.dir, "work"), &o, &r.store, err,
                             sizeof(err)) == 0);
    tm_operator_metrics_t m = {0};
    tm_operator_ctx_t ctx = {.uid = "agg", .max_parallelism = 128, .kg_first = 0, .kg_last = 0,
                             .store = r.store, .metrics = &m};
    const tm_operator_ops_t *ops;
    tm_operator_t *op;
    TM_REQUIRE(tm_group_agg_new(&f.spec, &ctx, &ops, &op, err, sizeof(err)) == 0);
    tm_batch_t *b = tm_batch_new();
    /* Find a group value whose key group is not 0. */
    tm_buf_t key;
    tm_buf_init(&key);
    tm_row_t *row = random_row(b, f.in, 1, 3);
    tm_row_set_null(row, C_G, false);
    for (int64_t g = 0;; g++) {
        row->vals[C_G].u.i64 = g;
        tm_buf_clear(&key);
        TM_REQUIRE(tm_group_agg_key(&f.spec, f.in, row, &key) == 0);
        if (tm_keygroup_of(key.data, key.len, 128) != 0)
            break;
    }
    add_rec(b, f.in, TM_OP_CREATE, NULL, row);
    collector_t c;
    table_t t = {0};
    collector_init(&c, &t, true);
    TM_CHECK(ops->process(op, 0, b, &c.c, err, sizeof(err)) == TM_EINVAL);
    TM_CHECK(strstr(err, "owns key groups 0..0") != NULL);
    ops->free(op);
    tm_buf_release(&key);
    tm_batch_unref(b);
    tm_store_close(r.store);
    tst_rmdir(r.dir);
    fixture_free(&f);
}

/* ---- the aggregate functions themselves ---- */

static void test_resolve(void)
{
    tm_expr_type_t t[2] = {{.type = TM_T_INT32}, {.type = TM_T_TEXT}};
    tm_agg_call_t call;
    TM_CHECK(tm_agg_is_aggregate("SUM") && tm_agg_is_aggregate("string_agg"));
    TM_CHECK(!tm_agg_is_aggregate("lower"));
    TM_CHECK(tm_agg_resolve("sum", false, false, t, 1, &call, err, sizeof(err)) == 0);
    TM_CHECK_INT(call.result_type.type, TM_T_INT64);
    t[0].type = TM_T_INT64;
    TM_CHECK(tm_agg_resolve("sum", false, false, t, 1, &call, err, sizeof(err)) == 0);
    TM_CHECK_INT(call.result_type.type, TM_T_NUMERIC);
    TM_CHECK(tm_agg_resolve("avg", false, false, t, 1, &call, err, sizeof(err)) == 0);
    TM_CHECK_INT(call.result_type.type, TM_T_NUMERIC);
    t[0].type = TM_T_FLOAT32;
    TM_CHECK(tm_agg_resolve("sum", false, false, t, 1, &call, err, sizeof(err)) == 0);
    TM_CHECK_INT(call.result_type.type, TM_T_FLOAT32);
    TM_CHECK(tm_agg_resolve("avg", false, false, t, 1, &call, err, sizeof(err)) == 0);
    TM_CHECK_INT(call.result_type.type, TM_T_FLOAT64);
    TM_CHECK(tm_agg_resolve("count", true, false, NULL, 0, &call, err, sizeof(err)) == 0);
    TM_CHECK_INT(call.kind, TM_AGG_COUNT_STAR);
    TM_CHECK(tm_agg_resolve("count", true, true, NULL, 0, &call, err, sizeof(err)) == TM_ESQL);
    t[0].type = TM_T_TEXT;
    TM_CHECK(tm_agg_resolve("sum", false, false, t, 1, &call, err, sizeof(err)) == TM_ESQL);
    TM_CHECK(strstr(err, "function sum(text) does not exist") != NULL);
    TM_CHECK(tm_agg_resolve("string_agg", false, false, t, 2, &call, err, sizeof(err)) == 0);
    TM_CHECK(tm_agg_resolve("string_agg", false, false, t, 1, &call, err, sizeof(err)) ==
             TM_ESQL);
    TM_CHECK(tm_agg_resolve("min", false, false, t, 1, &call, err, sizeof(err)) == 0);
    t[0].type = TM_T_BOOL;
    TM_CHECK(tm_agg_resolve("max", false, false, t, 1, &call, err, sizeof(err)) == TM_ESQL);
    TM_CHECK(tm_agg_resolve("every", false, false, t, 1, &call, err, sizeof(err)) == 0);
    TM_CHECK_INT(call.kind, TM_AGG_BOOL_AND);
}

/* avg's PostgreSQL division scale, against values PostgreSQL prints. */
static void test_avg_scale(void)
{
    static const struct {
        tm_type_t type;
        int64_t v[4];
        int16_t scale;
        int n;
        const char *want;
    } cases[] = {
        {TM_T_INT32, {1, 2}, 0, 2, "1.5000000000000000"},
        {TM_T_INT32, {0}, 0, 1, "0.00000000000000000000"},
        {TM_T_INT32, {100000}, 0, 1, "100000.000000000000"},
        {TM_T_INT32, {1, 1, 1}, 0, 3, "1.00000000000000000000"},
        {TM_T_INT32, {2, 3, 3}, 0, 3, "2.6666666666666667"},
        {TM_T_INT32, {-2, -3, -3}, 0, 3, "-2.6666666666666667"},
        {TM_T_NUMERIC, {150, 250}, 2, 2, "2.0000000000000000"},
        {TM_T_NUMERIC, {1}, 3, 1, "0.00100000000000000000"},
        {TM_T_INT64, {INT64_MAX, INT64_MAX}, 0, 2, "9223372036854775807"},
        {TM_T_INT64, {INT64_MAX, 0}, 0, 2, "4611686018427387904"},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        tm_expr_type_t t = {.type = cases[k].type, .precision = -1, .scale = -1};
        tm_agg_call_t call;
        TM_REQUIRE(tm_agg_resolve("avg", false, false, &t, 1, &call, err, sizeof(err)) == 0);
        tm_agg_acc_t acc;
        tm_agg_acc_init(&acc);
        for (int i = 0; i < cases[k].n; i++) {
            tm_datum_t d = {0};
            d.u.i64 = cases[k].v[i];
            if (cases[k].type == TM_T_NUMERIC) {
                d.u.dec = cases[k].v[i];
                d.scale = cases[k].scale;
            }
            TM_CHECK(tm_agg_acc_update(&call, &acc, &d, 1, err, sizeof(err)) == 0);
        }
        tm_batch_t *b = tm_batch_new();
        tm_datum_t out;
        bool isnull;
        TM_CHECK(tm_agg_acc_get(&call, &acc, b, &out, &isnull, err, sizeof(err)) == 0);
        tm_buf_t o;
        tm_buf_init(&o);
        datum_str(&o, TM_T_NUMERIC, &out);
        tm_buf_putc(&o, '\0');
        TM_CHECK_STR(o.data, cases[k].want);
        tm_buf_release(&o);
        tm_batch_unref(b);
    }
}

/* NaN and infinities retract: removing +Infinity gives the finite sum back. */
static void test_specials_retract(void)
{
    tm_expr_type_t t = {.type = TM_T_FLOAT64};
    tm_agg_call_t call;
    TM_REQUIRE(tm_agg_resolve("sum", false, false, &t, 1, &call, err, sizeof(err)) == 0);
    tm_agg_acc_t acc;
    tm_agg_acc_init(&acc);
    tm_datum_t one = {.u.f64 = 1.5}, inf = {.u.f64 = INFINITY}, ninf = {.u.f64 = -INFINITY};
    tm_agg_acc_update(&call, &acc, &one, 1, err, sizeof(err));
    tm_agg_acc_update(&call, &acc, &inf, 1, err, sizeof(err));
    tm_agg_acc_update(&call, &acc, &ninf, 1, err, sizeof(err));
    tm_datum_t out;
    bool isnull;
    TM_CHECK(tm_agg_acc_get(&call, &acc, NULL, &out, &isnull, err, sizeof(err)) == 0);
    TM_CHECK(isnan(out.u.f64));
    tm_agg_acc_update(&call, &acc, &ninf, -1, err, sizeof(err));
    tm_agg_acc_get(&call, &acc, NULL, &out, &isnull, err, sizeof(err));
    TM_CHECK(isinf(out.u.f64) && out.u.f64 > 0);
    tm_agg_acc_update(&call, &acc, &inf, -1, err, sizeof(err));
    tm_agg_acc_get(&call, &acc, NULL, &out, &isnull, err, sizeof(err));
    TM_CHECK(out.u.f64 == 1.5);
    tm_agg_acc_update(&call, &acc, &one, -1, err, sizeof(err));
    tm_agg_acc_get(&call, &acc, NULL, &out, &isnull, err, sizeof(err));
    TM_CHECK(isnull);
}

/* The value encoding orders as the values and round-trips (numerics keep their scale). */
static void test_value_encoding(void)
{
    tm_batch_t *b = tm_batch_new();
    static const char *const nums[] = {"-Infinity", "-1e40", "-123.45", "-123.4", "-1", "-0.5",
                                       "-0.0001",   "0",     "0.0001",  "0.00012", "0.5",
                                       "1",         "1.5",   "10",      "123.4",   "123.45",
                                       "99999999999999999999999999999999999999999", "Infinity",
                                       "NaN"};
    const int n = (int)(sizeof(nums) / sizeof(nums[0]));
    tm_buf_t prev, cur;
    tm_buf_init(&prev);
    tm_buf_init(&cur);
    for (int i = 0; i < n; i++) {
        tm_datum_t d = {0}, back;
        TM_REQUIRE(tm_numeric_parse(b, &d, nums[i], strlen(nums[i])) == 0);
        tm_buf_clear(&cur);
        TM_REQUIRE(tm_agg_value_encode(TM_T_NUMERIC, &d, &cur) == 0);
        if (i > 0) {
            size_t m = prev.len < cur.len ? prev.len : cur.len;
            int c = memcmp(prev.data, cur.data, m);
            TM_CHECK(c < 0 || (c == 0 && prev.len < cur.len));
        }
        TM_REQUIRE(tm_agg_value_decode(TM_T_NUMERIC, (const uint8_t *)cur.data, cur.len,
                                       d.scale, b, &back) == 0);
        char x[200], y[200];
        tm_numeric_format(&d, x, sizeof(x));
        tm_numeric_format(&back, y, sizeof(y));
        if (!(d.flags & TM_DATUM_WIDE))
            TM_CHECK_STR(y, x);
        tm_buf_clear(&prev);
        tm_buf_append(&prev, cur.data, cur.len);
    }
    /* 1.5 and 1.50 are one value. */
    tm_datum_t a = {.u.dec = 15, .scale = 1}, c = {.u.dec = 150, .scale = 2};
    tm_buf_clear(&prev);
    tm_buf_clear(&cur);
    tm_agg_value_encode(TM_T_NUMERIC, &a, &prev);
    tm_agg_value_encode(TM_T_NUMERIC, &c, &cur);
    TM_CHECK(prev.len == cur.len && memcmp(prev.data, cur.data, cur.len) == 0);
    /* Floats: -inf < -1 < -0.0 = 0 < 2 < inf < NaN. */
    static const double fl[] = {-INFINITY, -1.0, 0.0, 2.0, INFINITY, NAN};
    for (int i = 0; i < 6; i++) {
        tm_datum_t d = {.u.f64 = fl[i]}, back;
        tm_buf_clear(&cur);
        tm_agg_value_encode(TM_T_FLOAT64, &d, &cur);
        if (i > 0)
            TM_CHECK(memcmp(prev.data, cur.data, 8) < 0);
        TM_CHECK(tm_agg_value_decode(TM_T_FLOAT64, (const uint8_t *)cur.data, cur.len, 0, b,
                                     &back) == 0);
        TM_CHECK(isnan(fl[i]) ? isnan(back.u.f64) : back.u.f64 == fl[i]);
        tm_buf_clear(&prev);
        tm_buf_append(&prev, cur.data, cur.len);
    }
    tm_datum_t nz = {.u.f64 = -0.0}, z = {.u.f64 = 0.0};
    tm_buf_clear(&prev);
    tm_buf_clear(&cur);
    tm_agg_value_encode(TM_T_FLOAT64, &nz, &prev);
    tm_agg_value_encode(TM_T_FLOAT64, &z, &cur);
    TM_CHECK(memcmp(prev.data, cur.data, 8) == 0);
    tm_buf_release(&prev);
    tm_buf_release(&cur);
    tm_batch_unref(b);
}

int main(void)
{
    TM_RUN(test_resolve);
    TM_RUN(test_avg_scale);
    TM_RUN(test_specials_retract);
    TM_RUN(test_value_encoding);
    TM_RUN(test_mini_batch);
    TM_RUN(test_minmax_reads);
    TM_RUN(test_foreign_key_group);
    TM_RUN(test_random_workload);
    return tm_test_done();
}
