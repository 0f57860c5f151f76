/*
 * Unit tests: the lookup join's cache (operators/lookup_cache.h: LRU
 * eviction, TTL expiry with an injected clock, negative entries) and the
 * operator (operators/lookup_join.h) against a fake lookup connector: an
 * in-memory table standing in for PostgreSQL, which counts its fetches.
 * Output order, change kinds, INNER/LEFT, the dimension filter and the
 * residual, one fetch per batch for the distinct non-NULL keys, and what
 * the cache saves (and forgets after the TTL).
 */
#include "core/datum.h"
#include "core/error.h"
#include "expr/expr.h"
#include "operators/lookup_cache.h"
#include "operators/lookup_join.h"
#include "tm_test.h"

/* ---- the cache ---- */

static bool get(tm_lookup_cache_t *c, const char *key, int64_t now, const char **val)
{
    const void *v;
    size_t len;
    bool hit = tm_lookup_cache_get(c, key, strlen(key), now, &v, &len);
    *val = v;
    return hit;
}

static void put(tm_lookup_cache_t *c, const char *key, const char *val, int64_t now)
{
    TM_CHECK_INT(tm_lookup_cache_put(c, key, strlen(key), val, val ? strlen(val) + 1 : 0, now), 0);
}

static void test_cache_lru(void)
{
    tm_lookup_cache_t *c = tm_lookup_cache_new(3, 0);
    const char *v;
    put(c, "a", "A", 0);
    put(c, "b", "B", 0);
    put(c, "c", "C", 0);
    TM_CHECK(get(c, "a", 1, &v) && strcmp(v, "A") == 0); /* a is now the most recent */
    put(c, "d", "D", 2);                                 /* evicts b, the least recent */
    TM_CHECK_INT((int)tm_lookup_cache_count(c), 3);
    TM_CHECK(!get(c, "b", 3, &v));
    TM_CHECK(get(c, "a", 3, &v) && strcmp(v, "A") == 0);
    TM_CHECK(get(c, "c", 3, &v) && strcmp(v, "C") == 0);
    TM_CHECK(get(c, "d", 3, &v) && strcmp(v, "D") == 0);
    TM_CHECK_INT((int)tm_lookup_cache_evictions(c), 1);
    /* Replacing a key keeps one entry and the new value. */
    put(c, "c", "C2", 4);
    TM_CHECK_INT((int)tm_lookup_cache_count(c), 3);
    TM_CHECK(get(c, "c", 5, &v) && strcmp(v, "C2") == 0);
    /* Many keys: the table grows and stays bounded. */
    char k[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        put(c, k, "x", 10);
    }
    TM_CHECK_INT((int)tm_lookup_cache_count(c), 3);
    TM_CHECK(get(c, "k999", 11, &v) && !get(c, "k996", 11, &v));
    tm_lookup_cache_free(c);
}

static void test_cache_ttl_and_negative(void)
{
    tm_lookup_cache_t *c = tm_lookup_cache_new(10, 1000);
    const char *v;
    put(c, "a", "A", 100);
    put(c, "gone", NULL, 100); /* a negative entry */
    TM_CHECK(get(c, "gone", 500, &v) && v == NULL);
    TM_CHECK(get(c, "a", 1099, &v) && strcmp(v, "A") == 0);
    TM_CHECK(!get(c, "a", 1100, &v)); /* expired at stored + ttl */
    TM_CHECK(!get(c, "gone", 1100, &v));
    TM_CHECK_INT((int)tm_lookup_cache_count(c), 0);
    tm_lookup_cache_free(c);
    /* Size 0: holds nothing. */
    c = tm_lookup_cache_new(0, 0);
    put(c, "a", "A", 0);
    TM_CHECK(!get(c, "a", 0, &v));
    tm_lookup_cache_free(c);
}

/* ---- the operator against a fake table ---- */

int tm_operator_row_error(const tm_operator_ctx_t *ctx, const tm_record_t *rec, const char *reason,
                          char *errstr, size_t errstr_size)
{
    (void)ctx;
    (void)rec;
    return tm_seterr(errstr, errstr_size, TM_EINVAL, "%s", reason);
}

/* The fake table: dims(id bigint PRIMARY KEY, label text, active bool). */
#define FAKE_MAX 16
static struct {
    int64_t id;
    const char *label;
    bool active;
    bool present;
} fake[FAKE_MAX];
static int fetches;
static int fetched_keys[64];
static int nfetched;
static bool fail_fetch;

struct tm_lookup {
    tm_schema_t *declared;
    tm_batch_t *scratch;
};

static int fake_new(tm_lookup_t **out, const tm_lookup_config_t *cfg, char *errstr,
                    size_t errstr_size)
{
    (void)errstr;
    (void)errstr_size;
    tm_lookup_t *lk = calloc(1, sizeof(*lk));
    lk->declared = tm_schema_ref((tm_schema_t *)cfg->declared);
    *out = lk;
    return 0;
}

static int fake_fetch(tm_lookup_t *lk, const tm_row_t *const *keys, int nkeys, tm_lookup_row_fn fn,
                      void *arg, char *errstr, size_t errstr_size)
{
    fetches++;
    if (fail_fetch)
        return tm_seterr(errstr, errstr_size, TM_ECONN, "lookup table 'dims': server gone");
    tm_batch_unref(lk->scratch);
    lk->scratch = tm_batch_new();
    for (int i = 0; i < nkeys; i++) {
        TM_CHECK(!tm_row_is_null(keys[i], 0));
        int64_t id = keys[i]->vals[0].u.i64;
        if (nfetched < 64)
            fetched_keys[nfetched++] = (int)id;
        for (int j = 0; j < FAKE_MAX; j++)
            if (fake[j].present && fake[j].id == id) {
                tm_row_t *r = tm_batch_new_row(lk->scratch, lk->declared);
                tm_row_set_null(r, 0, false);
                r->vals[0].u.i64 = id;
                tm_row_set_null(r, 1, false);
                tm_batch_set_var(lk->scratch, &r->vals[1], fake[j].label, strlen(fake[j].label));
                tm_row_set_null(r, 2, false);
                r->vals[2].u.b = fake[j].active;
                int rc = fn(arg, i, r);
                if (rc != 0)
                    return rc;
            }
    }
    return 0;
}

static void fake_free(tm_lookup_t *lk)
{
    tm_schema_unref(lk->declared);
    tm_batch_unref(lk->scratch);
    free(lk);
}

static const tm_connector_t fake_conn = {
    .abi = TM_CONNECTOR_ABI,
    .name = "fake",
    .kinds = TM_CONNECTOR_LOOKUP,
    .lookup_new = fake_new,
    .lookup_fetch = fake_fetch,
    .lookup_free = fake_free,
};

static void fake_set(int slot, int64_t id, const char *label, bool active)
{
    fake[slot].id = id;
    fake[slot].label = label;
    fake[slot].active = active;
    fake[slot].present = true;
}

static int64_t clock_now;
static int64_t test_clock(void *arg)
{
    (void)arg;
    return clock_now;
}

static tm_schema_t *schema_of(const char *const *names, const tm_type_t *types, int n, int key)
{
    tm_schema_t *s = tm_schema_new(n);
    for (int i = 0; i < n; i++) {
        tm_schema_set_str(&s->cols[i].name, names[i]);
        s->cols[i].type = types[i];
        s->cols[i].nullable = true;
    }
    if (key >= 0)
        s->cols[key].key_index = 0;
    tm_schema_finish(s);
    return s;
}

/* events(id int, dim_id bigint) ++ dims(id bigint, label text, active bool) */
typedef struct fixture {
    tm_schema_t *in, *decl, *keys, *out;
    tm_expr_pool_t *pool;
    tm_lookup_join_spec_t spec;
    int probe_keys[1], key_cols[1];
    tm_operator_metrics_t metrics;
    tm_operator_ctx_t ctx;
    const tm_operator_ops_t *ops;
    tm_operator_t *op;
} fixture_t;

static void fixture_init(fixture_t *f, tm_join_type_t type, bool dim_left, int64_t cache_rows,
                         int64_t ttl_us, bool cache_missing, bool filter_active)
{
    memset(f, 0, sizeof(*f));
    static const char *const in_names[] = {"id", "dim_id"};
    static const tm_type_t in_types[] = {TM_T_INT32, TM_T_INT64};
    static const char *const d_names[] = {"id", "label", "active"};
    static const tm_type_t d_types[] = {TM_T_INT64, TM_T_TEXT, TM_T_BOOL};
    static const char *const k_names[] = {"dim_id"};
    static const tm_type_t k_types[] = {TM_T_INT64};
    f->in = schema_of(in_names, in_types, 2, 0);
    f->decl = schema_of(d_names, d_types, 3, 0);
    f->keys = schema_of(k_names, k_types, 1, -1);
    const char *o_names[5];
    tm_type_t o_types[5];
    for (int i = 0; i < 5; i++) {
        bool probe = dim_left ? i >= 3 : i < 2;
        int j = dim_left ? (probe ? i - 3 : i) : (probe ? i : i - 2);
        o_names[i] = probe ? in_names[j] : d_names[j];
        o_types[i] = probe ? in_types[j] : d_types[j];
    }
    f->out = schema_of(o_names, o_types, 5, -1);
    f->pool = tm_expr_pool_new();
    f->probe_keys[0] = 1;
    f->key_cols[0] = 0;
    tm_lookup_join_spec_t *s = &f->spec;
    s->type = type;
    s->dim_left = dim_left;
    s->in_schema = f->in;
    s->probe_keys = f->probe_keys;
    s->conn = &fake_conn;
    s->lookup.name = "dims";
    s->lookup.declared = f->decl;
    s->lookup.key_cols = f->key_cols;
    s->lookup.key_schema = f->keys;
    s->lookup.nkeys = 1;
    s->dim_schema = f->decl;
    s->out_schema = f->out;
    s->cache_rows = cache_rows;
    s->ttl_us = ttl_us;
    s->cache_missing = cache_missing;
    s->clock_us = test_clock;
    if (filter_active) {
        tm_expr_type_t bt = {TM_T_BOOL, 0, -1, -1};
        s->dim_filter = tm_expr_column(f->pool, 2, &bt, "active");
    }
    f->ctx.uid = "lookup/test";
    f->ctx.metrics = &f->metrics;
    char err[256];
    int rc = tm_lookup_join_new(&f->spec, &f->ctx, &f->ops, &f->op, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "new: %s\n", err);
    TM_REQUIRE(rc == 0);
    fetches = 0;
    nfetched = 0;
    fail_fetch = false;
}

static void fixture_free(fixture_t *f)
{
    f->ops->free(f->op);
    tm_schema_unref(f->in);
    tm_schema_unref(f->decl);
    tm_schema_unref(f->keys);
    tm_schema_unref(f->out);
    tm_expr_pool_free(f->pool);
}

static tm_row_t *ev(tm_batch_t *b, tm_schema_t *s, int id, int64_t dim)
{
    tm_row_t *r = tm_batch_new_row(b, s);
    tm_row_set_null(r, 0, false);
    r->vals[0].u.i64 = id;
    tm_row_set_null(r, 1, dim < 0);
    r->vals[1].u.i64 = dim;
    return r;
}

static void add(tm_batch_t *b, tm_schema_t *s, tm_op_t op, int id, int64_t bdim, int64_t adim)
{
    tm_record_t *r = tm_batch_add(b, s, op);
    if (op == TM_OP_UPDATE || op == TM_OP_DELETE)
        r->before = ev(b, s, id, bdim);
    if (op != TM_OP_DELETE)
        r->after = ev(b, s, id, adim);
}

static tm_batch_t *emitted[8];
static int nemitted;

static int collect(tm_collector_t *c, tm_batch_t *b)
{
    (void)c;
    if (nemitted < 8)
        emitted[nemitted++] = b;
    else
        tm_batch_unref(b);
    return 0;
}

static void clear_emitted(void)
{
    for (int i = 0; i < nemitted; i++)
        tm_batch_unref(emitted[i]);
    nemitted = 0;
}

static int run(fixture_t *f, tm_batch_t *in)
{
    tm_collector_t c = {collect, NULL};
    char err[256] = "";
    clear_emitted();
    int rc = f->ops->process(f->op, 0, in, &c, err, sizeof(err));
    tm_batch_unref(in);
    return rc;
}

/* "op id label" of an image, label "-" for NULL, for the probe-first layout. */
static void describe(const tm_schema_t *s, const tm_row_t *r, int off_probe, int off_dim,
                     char *buf, size_t len)
{
    (void)s;
    int id = (int)r->vals[off_probe].u.i64;
    if (tm_row_is_null(r, off_dim + 1))
        snprintf(buf, len, "%d:-", id);
    else
        snprintf(buf, len, "%d:%.*s", id, (int)r->vals[off_dim + 1].u.var.len,
                 r->vals[off_dim + 1].u.var.ptr);
}

/* The output as "c 1:one|d 2:-|u 3:one>3:two". */
static void output(const fixture_t *f, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    int op_ = f->spec.dim_left ? 3 : 0, od = f->spec.dim_left ? 0 : 2;
    for (int b = 0; b < nemitted; b++)
        for (uint32_t i = 0; i < emitted[b]->count; i++) {
            const tm_record_t *r = &emitted[b]->recs[i];
            char x[64] = "", y[64] = "";
            if (r->before)
                describe(r->schema, r->before, op_, od, x, sizeof(x));
            if (r->after)
                describe(r->schema, r->after, op_, od, y, sizeof(y));
            n += (size_t)snprintf(buf + n, len - n, "%s%c %s%s%s", n ? "|" : "", (char)r->op, x,
                                  r->before && r->after ? ">" : "", y);
        }
}

static void test_inner_order_kinds_one_fetch(void)
{
    memset(fake, 0, sizeof(fake));
    fake_set(0, 1, "one", true);
    fake_set(1, 2, "two", true);
    fixture_t f;
    fixture_init(&f, TM_JOIN_INNER, false, 100, 0, true, false);
    tm_batch_t *b = tm_batch_new();
    add(b, f.in, TM_OP_CREATE, 10, 0, 1);
    add(b, f.in, TM_OP_CREATE, 11, 0, 9);  /* no dims row */
    add(b, f.in, TM_OP_CREATE, 12, 0, -1); /* NULL key */
    add(b, f.in, TM_OP_READ, 13, 0, 1);
    add(b, f.in, TM_OP_DELETE, 14, 2, 0);
    add(b, f.in, TM_OP_UPDATE, 15, 1, 2);  /* both images match */
    add(b, f.in, TM_OP_UPDATE, 16, 1, 9);  /* the after loses its match: a delete */
    add(b, f.in, TM_OP_UPDATE, 17, 9, 2);  /* the before had none: an insert */
    add(b, f.in, TM_OP_UPDATE, 18, 1, 1);  /* nothing changed in the joined row */
    TM_CHECK_INT(run(&f, b), 0);
    char out[512];
    output(&f, out, sizeof(out));
    TM_CHECK_STR(out, "c 10:one|r 13:one|d 14:two|u 15:one>15:two|d 16:one|c 17:two");
    TM_CHECK_INT(fetches, 1);
    TM_CHECK_INT(nfetched, 3); /* 1, 9, 2: distinct, NULL never asked */
    TM_CHECK_INT((int)f.metrics.lookup_queries, 1);
    TM_CHECK_INT((int)f.metrics.lookup_cache_misses, 3);
    TM_CHECK_INT((int)f.metrics.lookup_cache_hits, 0);
    clear_emitted();
    fixture_free(&f);
}

static void test_left_filter_and_padding(void)
{
    memset(fake, 0, sizeof(fake));
    fake_set(0, 1, "one", true);
    fake_set(1, 2, "two", false); /* fails `active` */
    fixture_t f;
    fixture_init(&f, TM_JOIN_LEFT, false, 100, 0, true, true);
    tm_batch_t *b = tm_batch_new();
    add(b, f.in, TM_OP_CREATE, 10, 0, 1);
    add(b, f.in, TM_OP_CREATE, 11, 0, 2);
    add(b, f.in, TM_OP_CREATE, 12, 0, 9);
    add(b, f.in, TM_OP_CREATE, 13, 0, -1);
    add(b, f.in, TM_OP_UPDATE, 14, 1, 9);
    add(b, f.in, TM_OP_DELETE, 15, 2, 0);
    TM_CHECK_INT(run(&f, b), 0);
    char out[512];
    output(&f, out, sizeof(out));
    TM_CHECK_STR(out, "c 10:one|c 11:-|c 12:-|c 13:-|u 14:one>14:-|d 15:-");
    clear_emitted();
    fixture_free(&f);
}

static void test_dim_left_layout(void)
{
    memset(fake, 0, sizeof(fake));
    fake_set(0, 1, "one", true);
    fixture_t f;
    fixture_init(&f, TM_JOIN_INNER, true, 100, 0, true, false);
    tm_batch_t *b = tm_batch_new();
    add(b, f.in, TM_OP_CREATE, 10, 0, 1);
    add(b, f.in, TM_OP_CREATE, 11, 0, 3);
    TM_CHECK_INT(run(&f, b), 0);
    char out[256];
    output(&f, out, sizeof(out));
    TM_CHECK_STR(out, "c 10:one");
    TM_CHECK_INT((int)emitted[0]->recs[0].after->vals[0].u.i64, 1); /* dims.id first */
    clear_emitted();
    fixture_free(&f);
}

static void test_cache_saves_and_ttl_refreshes(void)
{
    memset(fake, 0, sizeof(fake));
    fake_set(0, 1, "one", true);
    fixture_t f;
    clock_now = 0;
    fixture_init(&f, TM_JOIN_LEFT, false, 100, 1000000, true, false);
    tm_batch_t *b = tm_batch_new();
    add(b, f.in, TM_OP_CREATE, 10, 0, 1);
    add(b, f.in, TM_OP_CREATE, 11, 0, 5);
    TM_CHECK_INT(run(&f, b), 0);
    TM_CHECK_INT(fetches, 1);
    /* The table changes; within the TTL the cache answers with what it holds. */
    fake_set(0, 1, "ONE", true);
    fake_set(1, 5, "five", true);
    clock_now = 500000;
    b = tm_batch_new();
    add(b, f.in, TM_OP_CREATE, 12, 0, 1);
    add(b, f.in, TM_OP_CREATE, 13, 0, 5);
    TM_CHECK_INT(run(&f, b), 0);
    char out[256];
    output(&f, out, sizeof(out));
    TM_CHECK_STR(out, "c 12:one|c 13:-"); /* stale, and the negative entry holds */
    TM_CHECK_INT(fetches, 1);
    TM_CHECK_INT((int)f.metrics.lookup_cache_hits, 2);
    /* After the TTL both are looked up again, in one fetch. */
    clock_now = 1000000;
    nfetched = 0;
    b = tm_batch_new();
    add(b, f.in, TM_OP_CREATE, 14, 0, 1);
    add(b, f.in, TM_OP_CREATE, 15, 0, 5);
    TM_CHECK_INT(run(&f, b), 0);
    output(&f, out, sizeof(out));
    TM_CHECK_STR(out, "c 14:ONE|c 15:five");
    TM_CHECK_INT(fetches, 2);
    TM_CHECK_INT(nfetched, 2);
    clear_emitted();
    fixture_free(&f);
}

static void test_no_cache_and_no_negative(void)
{
    memset(fake, 0, sizeof(fake));
    fake_set(0, 1, "one", true);
    fixture_t f;
    fixture_init(&f, TM_JOIN_INNER, false, 0, 0, true, false);
    for (int i = 0; i < 3; i++) {
        tm_batch_t *b = tm_batch_new();
        add(b, f.in, TM_OP_CREATE, 10 + i, 0, 1);
        TM_CHECK_INT(run(&f, b), 0);
    }
    TM_CHECK_INT(fetches, 3); /* lookup_cache_rows = 0: every batch asks */
    clear_emitted();
    fixture_free(&f);
    /* Missing keys not cached: asked again; found rows still are. */
    fixture_init(&f, TM_JOIN_INNER, false, 100, 0, false, false);
    for (int i = 0; i < 2; i++) {
        tm_batch_t *b = tm_batch_new();
        add(b, f.in, TM_OP_CREATE, 10 + i, 0, 1);
        add(b, f.in, TM_OP_CREATE, 20 + i, 0, 7);
        TM_CHECK_INT(run(&f, b), 0);
    }
    TM_CHECK_INT(fetches, 2);
    TM_CHECK_INT(nfetched, 3); /* 1 and 7, then 7 again */
    clear_emitted();
    fixture_free(&f);
}

static void test_fetch_error_fails(void)
{
    memset(fake, 0, sizeof(fake));
    fixture_t f;
    fixture_init(&f, TM_JOIN_INNER, false, 100, 0, true, false);
    fail_fetch = true;
    tm_batch_t *b = tm_batch_new();
    add(b, f.in, TM_OP_CREATE, 10, 0, 1);
    tm_collector_t c = {collect, NULL};
    char err[256] = "";
    int rc = f.ops->process(f.op, 0, b, &c, err, sizeof(err));
    tm_batch_unref(b);
    TM_CHECK_INT(rc, TM_ECONN);
    TM_CHECK(strstr(err, "dims") != NULL);
    TM_CHECK_INT(nemitted, 0);
    clear_emitted();
    fixture_free(&f);
}

static void test_bad_spec_refused(void)
{
    fixture_t f;
    memset(&f, 0, sizeof(f));
    tm_lookup_join_spec_t s;
    memset(&s, 0, sizeof(s));
    s.type = TM_JOIN_FULL;
    tm_operator_metrics_t m;
    memset(&m, 0, sizeof(m));
    tm_operator_ctx_t ctx = {.metrics = &m};
    char err[256];
    TM_CHECK_INT(tm_lookup_join_new(&s, &ctx, &f.ops, &f.op, err, sizeof(err)), TM_EINVAL);
}

int main(void)
{
    TM_RUN(test_cache_lru);
    TM_RUN(test_cache_ttl_and_negative);
    TM_RUN(test_inner_order_kinds_one_fetch);
    TM_RUN(test_left_filter_and_padding);
    TM_RUN(test_dim_left_layout);
    TM_RUN(test_cache_saves_and_ttl_refreshes);
    TM_RUN(test_no_cache_and_no_negative);
    TM_RUN(test_fetch_error_fails);
    TM_RUN(test_bad_spec_refused);
    return tm_test_done();
}
