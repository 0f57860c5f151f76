/* Unit tests: the upsert (changelog normalisation) operator (operators/upsert.h). */
#include "operators/upsert.h"
#include "core/hash.h"
#include "state/keygroup.h"
#include "state/savepoint.h"
#include "state_test.h"

#include <fcntl.h>

static char err[1024];

/* Marks an unchanged-TOAST datum in row specs. */
static const char UNAV[] = "<unavailable>";
#define NONUM INT64_MIN

static tm_row_t *mkrow(tm_batch_t *b, const tm_schema_t *s, int64_t id, const char *name,
                       int64_t cents, const char *body)
{
    tm_row_t *r = tm_batch_new_row(b, s);
    tm_row_set_null(r, 0, false);
    r->vals[0].u.i64 = id;
    if (name != NULL) {
        tm_row_set_null(r, 1, false);
        tm_batch_set_var(b, &r->vals[1], name, strlen(name));
    }
    if (cents != NONUM) {
        tm_row_set_null(r, 2, false);
        r->vals[2].u.dec = cents;
        r->vals[2].scale = 2;
    }
    if (body == UNAV) {
        tm_row_set_null(r, 3, false);
        r->vals[3].flags = TM_DATUM_UNAVAILABLE;
    } else if (body != NULL) {
        tm_row_set_null(r, 3, false);
        tm_batch_set_var(b, &r->vals[3], body, strlen(body));
    }
    return r;
}

/* A key-only before image, as REPLICA IDENTITY DEFAULT sends it. */
static tm_row_t *keyrow(tm_batch_t *b, const tm_schema_t *s, int64_t id)
{
    return mkrow(b, s, id, NULL, NONUM, NULL);
}

static tm_record_t *add(tm_batch_t *b, tm_schema_t *s, tm_op_t op, tm_row_t *before,
                        tm_row_t *after)
{
    tm_record_t *r = tm_batch_add(b, s, op);
    r->before = before;
    r->after = after;
    r->proc_us = 42;
    r->src.pos = 1000 + b->count;
    return r;
}

static void row_str(tm_buf_t *o, const tm_schema_t *s, const tm_row_t *r)
{
    if (r == NULL) {
        tm_buf_puts(o, "-");
        return;
    }
    tm_buf_putc(o, '(');
    for (int i = 0; i < s->ncols; i++) {
        const tm_datum_t *d = &r->vals[i];
        if (i > 0)
            tm_buf_putc(o, ',');
        if (tm_row_is_null(r, i)) {
            tm_buf_puts(o, "null");
        } else if (d->flags & TM_DATUM_UNAVAILABLE) {
            tm_buf_puts(o, "?");
        } else if (s->cols[i].type == TM_T_NUMERIC) {
            char tmp[64];
            tm_numeric_format(d, tmp, sizeof(tmp));
            tm_buf_puts(o, tmp);
        } else if (s->cols[i].type == TM_T_TEXT) {
            tm_buf_append(o, d->u.var.ptr, d->u.var.len);
        } else {
            tm_buf_append_i64(o, d->u.i64);
        }
    }
    tm_buf_putc(o, ')');
}

/* "c -> (1,a,1.50,x)\n", "u (1,a,..) -> (1,b,..)\n", one line per output record. */
static char *out_str(const tm_batch_t *b)
{
    tm_buf_t o;
    tm_buf_init(&o);
    for (uint32_t i = 0; i < b->count; i++) {
        const tm_record_t *r = &b->recs[i];
        tm_buf_putc(&o, (char)r->op);
        if (r->op == TM_OP_MESSAGE) {
            tm_buf_appendf(&o, " %s:%.*s\n", r->msg_prefix, (int)r->msg_len,
                           (const char *)r->msg_content);
            continue;
        }
        if (r->schema != NULL && r->schema->table != NULL && strcmp(r->schema->table, "items"))
            tm_buf_appendf(&o, " [%s]", r->schema->table);
        tm_buf_putc(&o, ' ');
        if (r->op != TM_OP_TRUNCATE) {
            row_str(&o, r->schema, r->before);
            tm_buf_puts(&o, " -> ");
            row_str(&o, r->schema, r->after);
        }
        tm_buf_putc(&o, '\n');
    }
    tm_buf_putc(&o, '\0');
    return o.data;
}

typedef struct fx {
    char *dir;
    tm_store_t *store;
    tm_upsert_t *op;
    tm_schema_t *items;
} fx_t;

static void fx_open(fx_t *f, int64_t ttl)
{
    char p[512];
    f->dir = tst_tmpdir();
    tm_store_opts_t o = tst_opts(ttl);
    TM_REQUIRE(tm_store_open(tst_path(p, sizeof(p), f->dir, "work"), &o, &f->store, err,
                             sizeof(err)) == 0);
    TM_REQUIRE(tm_upsert_new(f->store, "upsert-items", 128, &f->op, err, sizeof(err)) == 0);
    f->items = tst_items_schema();
}

static void fx_close(fx_t *f)
{
    f->op = tm_upsert_free(f->op);
    f->store = tm_store_close(f->store);
    f->items = tm_schema_unref(f->items);
    tst_rmdir(f->dir);
}

/* Runs `in` through the operator and frees it (outputs must not point into it); returns them. */
static char *run(tm_upsert_t *op, tm_batch_t *in)
{
    tm_batch_t *out = tm_batch_new();
    int n = tm_upsert_process(op, in, 0, out, err, sizeof(err));
    TM_CHECK_INT(n, in->count);
    if (n < 0)
        fprintf(stderr, "process: %s\n", err);
    tm_batch_unref(in);
    char *s = out_str(out);
    tm_batch_unref(out);
    return s;
}

#define EXPECT_RUN(op, in, want)                                                                   \
    do {                                                                                           \
        char *got__ = run((op), (in));                                                             \
        TM_CHECK_STR(got__, (want));                                                               \
        free(got__);                                                                               \
    } while (0)

static void test_inserts_and_duplicates(void)
{
    fx_t f;
    fx_open(&f, 0);
    tm_batch_t *in = tm_batch_new();
    tm_schema_t *s = f.items;
    add(in, s, TM_OP_READ, NULL, mkrow(in, s, 1, "a", 150, "x"));
    add(in, s, TM_OP_CREATE, NULL, mkrow(in, s, 1, "a", 150, "x")); /* same row: dropped */
    add(in, s, TM_OP_CREATE, NULL, mkrow(in, s, 2, "b", NONUM, NULL));
    add(in, s, TM_OP_READ, NULL, mkrow(in, s, 2, "b", NONUM, NULL)); /* replayed snapshot */
    add(in, s, TM_OP_UPDATE, keyrow(in, s, 1), mkrow(in, s, 1, "a", 150, "x"));
    EXPECT_RUN(f.op, in, "r - -> (1,a,1.50,x)\n"
                         "c - -> (2,b,null,null)\n");
    /* A later batch sees the state of the earlier one. */
    in = tm_batch_new();
    add(in, s, TM_OP_CREATE, NULL, mkrow(in, s, 2, "b", NONUM, NULL));
    add(in, s, TM_OP_CREATE, NULL, mkrow(in, s, 3, "c", 1, ""));
    EXPECT_RUN(f.op, in, "c - -> (3,c,0.01,)\n");
    const tm_upsert_stats_t *st = tm_upsert_stats(f.op);
    TM_CHECK_INT(st->duplicates, 4);
    TM_CHECK_INT(st->records_in, 7);
    TM_CHECK_INT(st->records_out, 3);
    fx_close(&f);
}

static void test_insert_of_known_key_becomes_update(void)
{
    fx_t f;
    fx_open(&f, 0);
    tm_schema_t *s = f.items;
    tm_batch_t *in = tm_batch_new();
    add(in, s, TM_OP_CREATE, NULL, mkrow(in, s, 1, "a", 100, "x"));
    add(in, s, TM_OP_CREATE, NULL, mkrow(in, s, 1, "b", 100, "x"));
    add(in, s, TM_OP_READ, NULL, mkrow(in, s, 1, "c", 200, NULL));
    EXPECT_RUN(f.op, in, "c - -> (1,a,1.00,x)\n"
                         "u (1,a,1.00,x) -> (1,b,1.00,x)\n"
                         "u (1,b,1.00,x) -> (1,c,2.00,null)\n");
    TM_CHECK_INT(tm_upsert_stats(f.op)->upgraded_inserts, 2);
    fx_close(&f);
}

static void test_updates_get_before_images(void)
{
    fx_t f;
    fx_open(&f, 0);
    tm_schema_t *s = f.items;
    tm_batch_t *in = tm_batch_new();
    add(in, s, TM_OP_CREATE, NULL, mkrow(in, s, 1, "a", 100, "x"));
    /* REPLICA IDENTITY DEFAULT: key-only before, or none at all. */
    add(in, s, TM_OP_UPDATE, keyrow(in, s, 1), mkrow(in, s, 1, "b", 100, "x"));
    add(in, s, TM_OP_UPDATE, NULL, mkrow(in, s, 1, "c", 100, "x"));
    /* A wrong before image from the source is replaced by the stored row. */
    add(in, s, TM_OP_UPDATE, mkrow(in, s, 1, "zzz", 1, "zzz"), mkrow(in, s, 1, "d", 100, "x"));
    add(in, s, TM_OP_UPDATE, keyrow(in, s, 1), mkrow(in, s, 1, "d", 100, "x")); /* no change */
    /* An update of a key never seen is an insert: there is nothing to retract. */
    add(in, s, TM_OP_UPDATE, keyrow(in, s, 9), mkrow(in, s, 9, "new", NONUM, NULL));
    EXPECT_RUN(f.op, in, "c - -> (1,a,1.00,x)\n"
                         "u (1,a,1.00,x) -> (1,b,1.00,x)\n"
                         "u (1,b,1.00,x) -> (1,c,1.00,x)\n"
                         "u (1,c,1.00,x) -> (1,d,1.00,x)\n"
                         "c - -> (9,new,null,null)\n");
    const tm_upsert_stats_t *st = tm_upsert_stats(f.op);
    TM_CHECK_INT(st->duplicates, 1);
    TM_CHECK_INT(st->unknown_updates, 1);
    fx_close(&f);
}

static void test_unchanged_toast_filled(void)
{
    fx_t f;
    fx_open(&f, 0);
    tm_schema_t *s = f.items;
    tm_batch_t *in = tm_batch_new();
    add(in, s, TM_OP_CREATE, NULL, mkrow(in, s, 1, "a", 100, "LONG TEXT"));
    add(in, s, TM_OP_UPDATE, keyrow(in, s, 1), mkrow(in, s, 1, "b", 100, UNAV));
    /* Filled, the row equals the stored one: a duplicate. */
    add(in, s, TM_OP_UPDATE, keyrow(in, s, 1), mkrow(in, s, 1, "b", 100, UNAV));
    add(in, s, TM_OP_UPDATE, keyrow(in, s, 1), mkrow(in, s, 1, "c", 100, UNAV));
    /* Unknown key: nothing to fill from, the placeholder stays (and is stored). */
    add(in, s, TM_OP_UPDATE, keyrow(in, s, 2), mkrow(in, s, 2, "a", 100, UNAV));
    add(in, s, TM_OP_UPDATE, keyrow(in, s, 2), mkrow(in, s, 2, "b", 100, UNAV));
    add(in, s, TM_OP_UPDATE, keyrow(in, s, 2), mkrow(in, s, 2, "b", 100, "known now"));
    EXPECT_RUN(f.op, in, "c - -> (1,a,1.00,LONG TEXT)\n"
                         "u (1,a,1.00,LONG TEXT) -> (1,b,1.00,LONG TEXT)\n"
                         "u (1,b,1.00,LONG TEXT) -> (1,c,1.00,LONG TEXT)\n"
                         "c - -> (2,a,1.00,?)\n"
                         "u (2,a,1.00,?) -> (2,b,1.00,?)\n"
                         "u (2,b,1.00,?) -> (2,b,1.00,known now)\n");
    TM_CHECK_INT(tm_upsert_stats(f.op)->toast_filled, 3);
    TM_CHECK_INT(tm_upsert_stats(f.op)->duplicates, 1);
    fx_close(&f);
}

static void test_deletes(void)
{
    fx_t f;
    fx_open(&f, 0);
    tm_schema_t *s = f.items;
    tm_batch_t *in = tm_batch_new();
    add(in, s, TM_OP_CREATE, NULL, mkrow(in, s, 1, "a", 100, "x"));
    add(in, s, TM_OP_DELETE, keyrow(in, s, 1), NULL);
    add(in, s, TM_OP_DELETE, keyrow(in, s, 1), NULL); /* already gone */
    add(in, s, TM_OP_DELETE, mkrow(in, s, 7, "never", 1, "seen"), NULL);
    add(in, s, TM_OP_CREATE, NULL, mkrow(in, s, 1, "a", 100, "x")); /* a fresh insert again */
    EXPECT_RUN(f.op, in, "c - -> (1,a,1.00,x)\n"
                         "d (1,a,1.00,x) -> -\n"
                         "c - -> (1,a,1.00,x)\n");
    TM_CHECK_INT(tm_upsert_stats(f.op)->unknown_deletes, 2);
    fx_close(&f);
}

static void test_primary_key_change(void)
{
    fx_t f;
    fx_open(&f, 0);
    tm_schema_t *s = f.items;
    tm_batch_t *in = tm_batch_new();
    add(in, s, TM_OP_CREATE, NULL, mkrow(in, s, 1, "a", 100, "x"));
    add(in, s, TM_OP_CREATE, NULL, mkrow(in, s, 2, "b", 100, "y"));
    /* 1 -> 5: retract 1, insert 5. */
    add(in, s, TM_OP_UPDATE, keyrow(in, s, 1), mkrow(in, s, 5, "a", 100, "x"));
    /* 5 -> 2 where 2 exists: retract 5, update 2. */
    add(in, s, TM_OP_UPDATE, keyrow(in, s, 5), mkrow(in, s, 2, "a", 100, "x"));
    /* 8 (unknown) -> 9: only the insert. */
    add(in, s, TM_OP_UPDATE, keyrow(in, s, 8), mkrow(in, s, 9, "n", 1, NULL));
    add(in, s, TM_OP_CREATE, NULL, mkrow(in, s, 1, "a", 100, "x")); /* 1 was deleted */
    EXPECT_RUN(f.op, in, "c - -> (1,a,1.00,x)\n"
                         "c - -> (2,b,1.00,y)\n"
                         "d (1,a,1.00,x) -> -\n"
                         "c - -> (5,a,1.00,x)\n"
                         "d (5,a,1.00,x) -> -\n"
                         "u (2,b,1.00,y) -> (2,a,1.00,x)\n"
                         "c - -> (9,n,0.01,null)\n"
                         "c - -> (1,a,1.00,x)\n");
    TM_CHECK_INT(tm_upsert_stats(f.op)->key_changes, 3);
    /* The router sees both key groups of a key change. */
    tm_batch_t *b = tm_batch_new();
    tm_record_t *r = add(b, s, TM_OP_UPDATE, keyrow(b, s, 1), mkrow(b, s, 5, "a", 1, NULL));
    int kg[2];
    int n = tm_upsert_keygroups(r, 128, kg);
    tm_record_t *r2 = add(b, s, TM_OP_UPDATE, keyrow(b, s, 5), mkrow(b, s, 5, "a", 1, NULL));
    int kg2[2];
    TM_CHECK_INT(tm_upsert_keygroups(r2, 128, kg2), 1);
    TM_CHECK(n == 1 || n == 2);
    TM_CHECK(kg[n - 1] == kg2[0]);
    tm_record_t *m = add(b, NULL, TM_OP_MESSAGE, NULL, NULL);
    TM_CHECK_INT(tm_upsert_keygroups(m, 128, kg), 0);
    tm_batch_unref(b);
    fx_close(&f);
}

static tm_schema_t *orders_schema(void)
{
    tm_schema_t *s = tst_items_schema();
    tm_schema_set_str(&s->table, "orders");
    return s;
}

static void test_truncate_and_message(void)
{
    fx_t f;
    fx_open(&f, 0);
    tm_schema_t *s = f.items, *o = orders_schema();
    tm_batch_t *in = tm_batch_new();
    for (int i = 1; i <= 50; i++)
        add(in, s, TM_OP_CREATE, NULL, mkrow(in, s, i, "a", NONUM, NULL));
    add(in, o, TM_OP_CREATE, NULL, mkrow(in, o, 1, "order", NONUM, NULL));
    char *got = run(f.op, in);
    free(got);
    in = tm_batch_new();
    add(in, s, TM_OP_CREATE, NULL, mkrow(in, s, 3, "pending", NONUM, NULL));
    add(in, s, TM_OP_TRUNCATE, NULL, NULL);
    tm_record_t *m = add(in, NULL, TM_OP_MESSAGE, NULL, NULL);
    m->msg_prefix = tm_arena_strdup(&in->arena, "app");
    m->msg_content = (const uint8_t *)tm_arena_memdup(&in->arena, "hello", 5);
    m->msg_len = 5;
    add(in, s, TM_OP_CREATE, NULL, mkrow(in, s, 1, "a", NONUM, NULL)); /* state was cleared */
    add(in, s, TM_OP_DELETE, keyrow(in, s, 3), NULL);                  /* cleared too */
    add(in, o, TM_OP_CREATE, NULL, mkrow(in, o, 1, "order", NONUM, NULL)); /* kept: dup */
    EXPECT_RUN(f.op, in, "u (3,a,null,null) -> (3,pending,null,null)\n"
                         "t \n"
                         "m app:hello\n"
                         "c - -> (1,a,null,null)\n");
    TM_CHECK_INT(tm_upsert_stats(f.op)->truncates, 1);
    TM_CHECK_INT(tm_upsert_stats(f.op)->unknown_deletes, 1);
    tm_schema_unref(o);
    fx_close(&f);
}

static void test_no_primary_key_passes_through(void)
{
    fx_t f;
    fx_open(&f, 0);
    tm_schema_t *s = tm_schema_new(1);
    tm_schema_set_str(&s->table, "log");
    tst_col(s, 0, "line", TM_T_TEXT, -1);
    tm_batch_t *in = tm_batch_new();
    for (int i = 0; i < 2; i++) {
        tm_row_t *r = tm_batch_new_row(in, s);
        tm_row_set_null(r, 0, false);
        tm_batch_set_var(in, &r->vals[0], "same", 4);
        add(in, s, TM_OP_CREATE, NULL, r);
    }
    EXPECT_RUN(f.op, in, "c [log] - -> (same)\nc [log] - -> (same)\n");
    TM_CHECK_INT(tm_upsert_stats(f.op)->no_key, 2);
    tm_schema_unref(s);
    fx_close(&f);
}

static void test_full_out_batch_resumes(void)
{
    fx_t f;
    fx_open(&f, 0);
    tm_schema_t *s = f.items;
    tm_batch_t *in = tm_batch_new();
    /* 400 inserts, then 400 key-changing updates (two outputs each). */
    for (int i = 0; i < 400; i++)
        add(in, s, TM_OP_CREATE, NULL, mkrow(in, s, i, "a", NONUM, NULL));
    for (int i = 0; i < 400; i++)
        add(in, s, TM_OP_UPDATE, keyrow(in, s, i), mkrow(in, s, i + 10000, "a", NONUM, NULL));
    uint32_t pos = 0;
    int rounds = 0;
    uint64_t deletes = 0, creates = 0;
    while (pos < in->count) {
        tm_batch_t *out = tm_batch_new();
        /* Leave an odd number of free slots, so an update cannot fit at the end. */
        for (int k = 0; k < 301; k++)
            tm_batch_add(out, NULL, TM_OP_MESSAGE);
        int n = tm_upsert_process(f.op, in, pos, out, err, sizeof(err));
        TM_REQUIRE(n >= 0);
        TM_REQUIRE(n > 0 || out->count == TM_BATCH_MAX);
        for (uint32_t k = 301; k < out->count; k++) {
            deletes += out->recs[k].op == TM_OP_DELETE;
            creates += out->recs[k].op == TM_OP_CREATE;
        }
        TM_CHECK(out->count <= TM_BATCH_MAX);
        pos += (uint32_t)n;
        rounds++;
        tm_batch_unref(out);
    }
    TM_CHECK(rounds >= 2);
    TM_CHECK_INT(deletes, 400);
    TM_CHECK_INT(creates, 800);
    TM_CHECK_INT(tm_upsert_stats(f.op)->records_in, 800);
    tm_batch_unref(in);
    fx_close(&f);
}

/* Dedup and before images after a restore prove the state came back. */
static void check_state_is_back(tm_upsert_t *op, tm_schema_t *s)
{
    tm_batch_t *in = tm_batch_new();
    add(in, s, TM_OP_READ, NULL, mkrow(in, s, 1, "one", 100, "x")); /* dup */
    add(in, s, TM_OP_UPDATE, keyrow(in, s, 2), mkrow(in, s, 2, "two!", 200, UNAV));
    add(in, s, TM_OP_DELETE, keyrow(in, s, 3), NULL);
    add(in, s, TM_OP_DELETE, keyrow(in, s, 4), NULL); /* deleted before the snapshot */
    EXPECT_RUN(op, in, "u (2,two,2.00,y) -> (2,two!,2.00,y)\n"
                       "d (3,three,3.00,z) -> -\n");
}

static void fill_state(tm_upsert_t *op, tm_schema_t *s)
{
    tm_batch_t *in = tm_batch_new();
    add(in, s, TM_OP_CREATE, NULL, mkrow(in, s, 1, "one", 100, "x"));
    add(in, s, TM_OP_CREATE, NULL, mkrow(in, s, 2, "two", 200, "y"));
    add(in, s, TM_OP_CREATE, NULL, mkrow(in, s, 3, "three", 300, "z"));
    add(in, s, TM_OP_CREATE, NULL, mkrow(in, s, 4, "four", 400, "w"));
    add(in, s, TM_OP_DELETE, keyrow(in, s, 4), NULL);
    char *got = run(op, in);
    free(got);
}

static void test_checkpoint_restore(void)
{
    fx_t f;
    fx_open(&f, 0);
    fill_state(f.op, f.items);
    char chk[512], work[512];
    tm_store_checkpoint_info_t info;
    TM_REQUIRE(tm_store_checkpoint(f.store, tst_path(chk, sizeof(chk), f.dir, "chk-1/w0"), &info,
                                   err, sizeof(err)) == 0);
    TM_CHECK(info.bytes > 0);
    /* Changes after the checkpoint are lost on restore, as they must be. */
    tm_batch_t *in = tm_batch_new();
    add(in, f.items, TM_OP_DELETE, keyrow(in, f.items, 1), NULL);
    char *got = run(f.op, in);
    free(got);
    f.op = tm_upsert_free(f.op);
    f.store = tm_store_close(f.store);

    tm_store_opts_t o = tst_opts(0);
    TM_REQUIRE(tm_store_open_from_checkpoint(chk, tst_path(work, sizeof(work), f.dir, "work2"),
                                             &o, &f.store, err, sizeof(err)) == 0);
    TM_REQUIRE(tm_upsert_new(f.store, "upsert-items", 0, &f.op, err, sizeof(err)) == 0);
    check_state_is_back(f.op, f.items);
    fx_close(&f);
}

/* Processes `in` over n workers, routing each record by its key group; frees `in`. */
static char *run_routed(tm_upsert_t **ops, int n, tm_batch_t *in)
{
    tm_buf_t all;
    tm_buf_init(&all);
    for (uint32_t i = 0; i < in->count; i++) {
        int kg[2];
        int k = tm_upsert_keygroups(&in->recs[i], 128, kg);
        TM_CHECK(k == 1);
        int w = tm_keygroup_worker(kg[0], n, 128);
        tm_batch_t *one = tm_batch_new(), *out = tm_batch_new();
        /* A one-record view of the input, as the router would hand a worker. */
        one->recs[0] = in->recs[i];
        one->count = 1;
        TM_CHECK_INT(tm_upsert_process(ops[w], one, 0, out, err, sizeof(err)), 1);
        char *s = out_str(out);
        tm_buf_puts(&all, s);
        free(s);
        one->count = 0;
        tm_batch_unref(one);
        tm_batch_unref(out);
    }
    tm_batch_unref(in);
    tm_buf_putc(&all, '\0');
    return all.data;
}

static void rescale(int from, int to)
{
    char *dir = tst_tmpdir(), p[512], sp[512];
    tm_schema_t *s = tst_items_schema();
    tm_store_t *a[3] = {0}, *b[3] = {0};
    tm_upsert_t *oa[3] = {0}, *ob[3] = {0};
    for (int w = 0; w < from; w++) {
        tm_store_opts_t o = tst_opts(0);
        snprintf(p, sizeof(p), "%s/a%d", dir, w);
        TM_REQUIRE(tm_store_open(p, &o, &a[w], err, sizeof(err)) == 0);
        TM_REQUIRE(tm_upsert_new(a[w], "upsert-items", 128, &oa[w], err, sizeof(err)) == 0);
    }
    tm_batch_t *in = tm_batch_new();
    for (int i = 0; i < 300; i++)
        add(in, s, TM_OP_CREATE, NULL, mkrow(in, s, i, "v1", i, i % 3 ? "body" : NULL));
    for (int i = 0; i < 300; i += 7)
        add(in, s, TM_OP_DELETE, keyrow(in, s, i), NULL);
    free(run_routed(oa, from, in));
    const char *uids[] = {"upsert-items"};
    TM_REQUIRE(tm_savepoint_write(a, from, uids, 1, "job", tst_path(sp, sizeof(sp), dir, "sp"),
                                  NULL, err, sizeof(err)) == 0);
    for (int w = 0; w < to; w++) {
        tm_store_opts_t o = tst_opts(0);
        snprintf(p, sizeof(p), "%s/b%d", dir, w);
        TM_REQUIRE(tm_store_open(p, &o, &b[w], err, sizeof(err)) == 0);
    }
    tm_savepoint_target_t t = {.stores = b, .nstores = to, .uids = uids, .nuids = 1};
    TM_REQUIRE(tm_savepoint_restore(sp, &t, NULL, err, sizeof(err)) == 0);
    char *da = tst_dump_all(a, from, "upsert-items"), *db = tst_dump_all(b, to, "upsert-items");
    TM_CHECK(strlen(da) > 1000 && strcmp(da, db) == 0);
    free(da);
    free(db);
    for (int w = 0; w < to; w++)
        TM_REQUIRE(tm_upsert_new(b[w], "upsert-items", 128, &ob[w], err, sizeof(err)) == 0);

    /* The same input gives the same output on both layouts. */
    for (int round = 0; round < 2; round++) {
        tm_batch_t *x = tm_batch_new();
        for (int i = 0; i < 300; i += 5) {
            if (i % 2)
                add(x, s, TM_OP_READ, NULL, mkrow(x, s, i, "v1", i, i % 3 ? "body" : NULL));
            else
                add(x, s, TM_OP_UPDATE, keyrow(x, s, i), mkrow(x, s, i, "v2", i, UNAV));
        }
        char *got = run_routed(round == 0 ? oa : ob, round == 0 ? from : to, x);
        if (round == 0) {
            da = got;
        } else {
            TM_CHECK(strlen(got) > 100);
            TM_CHECK(strcmp(da, got) == 0);
            free(da);
            free(got);
        }
    }
    da = tst_dump_all(a, from, "upsert-items");
    db = tst_dump_all(b, to, "upsert-items");
    /* Timestamps differ only if the clock moved; it did not. */
    TM_CHECK(strcmp(da, db) == 0);
    free(da);
    free(db);
    for (int w = 0; w < 3; w++) {
        tm_upsert_free(oa[w]);
        tm_upsert_free(ob[w]);
        tm_store_close(a[w]);
        tm_store_close(b[w]);
    }
    tm_schema_unref(s);
    tst_rmdir(dir);
}

/*
 * The runtime hands every worker the whole batch and each operator keeps
 * only its key groups (tm_upsert_set_owner): the union of the workers'
 * outputs must be the single operator's output, key changes across workers
 * included, with keyless records emitted once.
 */
static void test_owner_filter_matches_single_operator(void)
{
    char *dir = tst_tmpdir(), p[512];
    tm_schema_t *s = tst_items_schema();
    tm_store_t *one = NULL, *w[3] = {0};
    tm_upsert_t *op1 = NULL, *ow[3] = {0};
    tm_store_opts_t o = tst_opts(0);
    TM_REQUIRE(tm_store_open(tst_path(p, sizeof(p), dir, "one"), &o, &one, err, sizeof(err)) == 0);
    TM_REQUIRE(tm_upsert_new(one, "u", 128, &op1, err, sizeof(err)) == 0);
    for (int i = 0; i < 3; i++) {
        int first, last;
        snprintf(p, sizeof(p), "%s/w%d", dir, i);
        TM_REQUIRE(tm_store_open(p, &o, &w[i], err, sizeof(err)) == 0);
        TM_REQUIRE(tm_upsert_new(w[i], "u", 128, &ow[i], err, sizeof(err)) == 0);
        TM_REQUIRE(tm_keygroup_range(i, 3, 128, &first, &last) == 0);
        tm_upsert_set_owner(ow[i], first, last, i == 0);
    }
    for (int round = 0; round < 2; round++) {
        tm_batch_t *in = tm_batch_new();
        for (int i = 0; i < 60; i++)
            add(in, s, round ? TM_OP_UPDATE : TM_OP_CREATE, round ? keyrow(in, s, i) : NULL,
                mkrow(in, s, i, round ? "v2" : "v1", i, NULL));
        /* Key changes: most cross workers. */
        for (int i = 0; i < 60; i += 6)
            add(in, s, TM_OP_UPDATE, keyrow(in, s, i + 1000 * round),
                mkrow(in, s, i + 1000 * (round + 1), "moved", 1, NULL));
        for (int i = 3; i < 60; i += 9)
            add(in, s, TM_OP_DELETE, keyrow(in, s, i), NULL);
        add(in, NULL, TM_OP_MESSAGE, NULL, NULL);
        /* Each worker's output, sorted together, equals the single operator's, sorted. */
        tm_buf_t all;
        tm_buf_init(&all);
        for (int i = 0; i < 3; i++) {
            tm_batch_t *out = tm_batch_new();
            TM_CHECK_INT(tm_upsert_process(ow[i], in, 0, out, err, sizeof(err)), in->count);
            char *x = out_str(out);
            tm_buf_puts(&all, x);
            free(x);
            tm_batch_unref(out);
        }
        tm_buf_putc(&all, '\0');
        char *want = run(op1, in);
        char *a = tst_sort_lines(all.data), *b = tst_sort_lines(want);
        TM_CHECK(strlen(b) > 100);
        TM_CHECK_STR(a, b);
        free(a);
        free(b);
        free(want);
        tm_buf_release(&all);
    }
    uint64_t foreign = 0;
    for (int i = 0; i < 3; i++)
        foreign += tm_upsert_stats(ow[i])->foreign;
    TM_CHECK(foreign > 0);
    for (int i = 0; i < 3; i++) {
        tm_upsert_free(ow[i]);
        tm_store_close(w[i]);
    }
    tm_upsert_free(op1);
    tm_store_close(one);
    tm_schema_unref(s);
    tst_rmdir(dir);
}

static void test_savepoint_one_to_three_workers(void)
{
    rescale(1, 3);
}

static void test_savepoint_three_to_one_worker(void)
{
    rescale(3, 1);
}

static void test_ttl_expiry(void)
{
    fx_t f;
    atomic_store(&tst_clock_now, 1700000000000000LL);
    fx_open(&f, 60 * 1000000LL);
    tm_schema_t *s = f.items;
    tm_batch_t *in = tm_batch_new();
    add(in, s, TM_OP_CREATE, NULL, mkrow(in, s, 1, "a", NONUM, NULL));
    add(in, s, TM_OP_CREATE, NULL, mkrow(in, s, 2, "b", NONUM, NULL));
    free(run(f.op, in));
    atomic_fetch_add(&tst_clock_now, 30 * 1000000LL);
    in = tm_batch_new();
    add(in, s, TM_OP_UPDATE, keyrow(in, s, 2), mkrow(in, s, 2, "b2", NONUM, NULL));
    EXPECT_RUN(f.op, in, "u (2,b,null,null) -> (2,b2,null,null)\n");
    /* 61 s after key 1 was written, 31 s after key 2. */
    atomic_fetch_add(&tst_clock_now, 31 * 1000000LL);
    in = tm_batch_new();
    add(in, s, TM_OP_CREATE, NULL, mkrow(in, s, 1, "a", NONUM, NULL)); /* not a dup any more */
    add(in, s, TM_OP_DELETE, keyrow(in, s, 1), NULL);
    add(in, s, TM_OP_DELETE, keyrow(in, s, 2), NULL);
    EXPECT_RUN(f.op, in, "c - -> (1,a,null,null)\n"
                         "d (1,a,null,null) -> -\n"
                         "d (2,b2,null,null) -> -\n");
    atomic_fetch_add(&tst_clock_now, 61 * 1000000LL);
    in = tm_batch_new();
    add(in, s, TM_OP_UPDATE, keyrow(in, s, 3), mkrow(in, s, 3, "c", NONUM, NULL));
    add(in, s, TM_OP_DELETE, keyrow(in, s, 9), NULL);
    EXPECT_RUN(f.op, in, "c - -> (3,c,null,null)\n");
    TM_CHECK_INT(tm_upsert_stats(f.op)->unknown_deletes, 1);
    fx_close(&f);
}

static void test_corrupt_savepoint_detected(void)
{
    fx_t f;
    fx_open(&f, 0);
    fill_state(f.op, f.items);
    char sp[512], p[512];
    const char *uids[] = {"upsert-items"};
    tm_store_t *stores[1] = {f.store};
    TM_REQUIRE(tm_savepoint_write(stores, 1, uids, 1, "job", tst_path(sp, sizeof(sp), f.dir, "sp"),
                                  NULL, err, sizeof(err)) == 0);
    /* Flip one bit of the first record's value. */
    int fd = open(sp, O_RDWR);
    TM_REQUIRE(fd >= 0);
    uint8_t c;
    TM_REQUIRE(pread(fd, &c, 1, 27 + 10 + 16 + 30) == 1);
    c ^= 1;
    TM_REQUIRE(pwrite(fd, &c, 1, 27 + 10 + 16 + 30) == 1);
    close(fd);
    tm_store_t *t;
    tm_store_opts_t o = tst_opts(0);
    TM_REQUIRE(tm_store_open(tst_path(p, sizeof(p), f.dir, "target"), &o, &t, err, sizeof(err)) ==
               0);
    tm_savepoint_target_t tg = {.stores = &t, .nstores = 1, .uids = uids, .nuids = 1};
    TM_CHECK(tm_savepoint_restore(sp, &tg, NULL, err, sizeof(err)) == TM_ECORRUPT);
    TM_CHECK(strstr(err, "upsert-items") != NULL && strstr(err, "key group") != NULL);
    TM_CHECK(tm_store_cf_find(t, "upsert-items") == NULL);
    tm_store_close(t);
    fx_close(&f);
}

static void test_schema_change(void)
{
    fx_t f;
    fx_open(&f, 0);
    tm_schema_t *s = f.items;
    tm_batch_t *in = tm_batch_new();
    add(in, s, TM_OP_CREATE, NULL, mkrow(in, s, 1, "a", 100, "x"));
    add(in, s, TM_OP_CREATE, NULL, mkrow(in, s, 2, "b", 100, "x"));
    free(run(f.op, in));
    /* Same table, column renamed: the stored images cannot be read under the new shape. */
    tm_schema_t *s2 = tm_schema_clone(s);
    tm_schema_set_str(&s2->cols[3].name, "description");
    s2->version = 2;
    in = tm_batch_new();
    add(in, s2, TM_OP_UPDATE, keyrow(in, s2, 1), mkrow(in, s2, 1, "a2", 100, "x"));
    add(in, s2, TM_OP_UPDATE, keyrow(in, s2, 1), mkrow(in, s2, 1, "a3", 100, "x"));
    add(in, s2, TM_OP_DELETE, keyrow(in, s2, 2), NULL);
    EXPECT_RUN(f.op, in, "u (1,null,null,null) -> (1,a2,1.00,x)\n"
                         "u (1,a2,1.00,x) -> (1,a3,1.00,x)\n"
                         "d (2,null,null,null) -> -\n");
    TM_CHECK_INT(tm_upsert_stats(f.op)->shape_changes, 2);
    tm_schema_unref(s2);
    fx_close(&f);
}

/* The exchange key in front of the operator is its state key: routing and state agree. */
static void test_exchange_key_matches_state_key(void)
{
    tm_schema_t *s = tst_items_schema();
    tm_batch_t *b = tm_batch_new();
    tm_buf_t key;
    tm_buf_init(&key);
    for (int64_t id = 1; id <= 200; id++) {
        tm_record_t *r = add(b, s, TM_OP_CREATE, NULL, mkrow(b, s, id, "x", 100, NULL));
        int kg[2];
        TM_REQUIRE(tm_upsert_keygroups(r, 128, kg) == 1);
        tm_buf_clear(&key);
        TM_REQUIRE(tm_upsert_exchange_key(NULL, s, r->after, &key) == 0);
        TM_CHECK_INT(tm_keygroup_of(key.data, key.len, 128), kg[0]);
        if (b->count == TM_BATCH_MAX) {
            tm_batch_unref(b);
            b = tm_batch_new();
        }
    }
    /* No primary key: no exchange key (the record reaches every subtask). */
    tm_schema_t *nokey = tm_schema_clone(s);
    for (int i = 0; i < nokey->ncols; i++)
        nokey->cols[i].key_index = -1;
    tm_schema_finish(nokey);
    tm_buf_clear(&key);
    TM_CHECK_INT(tm_upsert_exchange_key(NULL, nokey, mkrow(b, nokey, 1, "x", 1, NULL), &key),
                 TM_EINVAL);
    tm_schema_unref(nokey);
    tm_buf_release(&key);
    tm_batch_unref(b);
    tm_schema_unref(s);
}

int main(void)
{
    TM_RUN(test_exchange_key_matches_state_key);
    TM_RUN(test_inserts_and_duplicates);
    TM_RUN(test_insert_of_known_key_becomes_update);
    TM_RUN(test_updates_get_before_images);
    TM_RUN(test_unchanged_toast_filled);
    TM_RUN(test_deletes);
    TM_RUN(test_primary_key_change);
    TM_RUN(test_truncate_and_message);
    TM_RUN(test_no_primary_key_passes_through);
    TM_RUN(test_full_out_batch_resumes);
    TM_RUN(test_checkpoint_restore);
    TM_RUN(test_owner_filter_matches_single_operator);
    TM_RUN(test_savepoint_one_to_three_workers);
    TM_RUN(test_savepoint_three_to_one_worker);
    TM_RUN(test_ttl_expiry);
    TM_RUN(test_corrupt_savepoint_detected);
    TM_RUN(test_schema_change);
    return tm_test_done();
}
