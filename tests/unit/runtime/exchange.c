/* Unit tests: routing of batches to consumer subtasks (runtime/exchange.h). */
#include "runtime/exchange.h"
#include "core/error.h"
#include "rt_test.h"

#include <stdlib.h>

#define MAXP 128
#define NT 3

/* What each target received, in order. */
typedef struct got {
    tm_batch_t *b[NT][64];
    int n[NT];
} got_t;

static int collect(void *arg, int target, tm_batch_t *batch)
{
    got_t *g = arg;
    TM_REQUIRE(target >= 0 && target < NT && g->n[target] < 64);
    g->b[target][g->n[target]++] = batch;
    return 0;
}

static void got_free(got_t *g)
{
    for (int t = 0; t < NT; t++)
        for (int i = 0; i < g->n[t]; i++)
            tm_batch_unref(g->b[t][i]);
    memset(g, 0, sizeof(*g));
}

/* Every keyed record lands on tm_keygroup_worker's subtask, in order, and once. */
static void test_hash_routes_by_key_group_in_order(void)
{
    tm_schema_t *s = rt_schema();
    tm_exchange_t x;
    TM_REQUIRE(tm_exchange_init(&x, TM_EXCHANGE_HASH, &rt_exchange_key, NT, MAXP, 0, false) == 0);
    tm_batch_t *b = tm_batch_new();
    for (int i = 0; i < 300; i++)
        rt_add(b, s, TM_OP_CREATE, NULL, rt_row(b, s, i % 37, i));
    got_t g = {0};
    TM_CHECK_INT(tm_exchange_route(&x, b, collect, &g), 0);
    int total = 0;
    int64_t last_v[37];
    for (int k = 0; k < 37; k++)
        last_v[k] = -1;
    for (int t = 0; t < NT; t++)
        for (int i = 0; i < g.n[t]; i++) {
            tm_batch_t *c = g.b[t][i];
            TM_CHECK(c->parent == b); /* shallow child keeps the parent alive */
            for (uint32_t r = 0; r < c->count; r++) {
                int64_t k = c->recs[r].after->vals[0].u.i64, v = c->recs[r].after->vals[1].u.i64;
                TM_CHECK_INT(rt_owner(k, NT, MAXP), t);
                TM_CHECK(v > last_v[k]);
                last_v[k] = v;
                total++;
            }
        }
    TM_CHECK_INT(total, 300);
    /* Children outlive the parent's own reference. */
    tm_batch_unref(b);
    TM_CHECK(g.b[0][0]->recs[0].after != NULL);
    got_free(&g);
    tm_exchange_destroy(&x);
    tm_schema_unref(s);
}

/* A key-changing update is split into DELETE(before) and CREATE(after). */
static void test_hash_splits_key_changes(void)
{
    tm_schema_t *s = rt_schema();
    tm_exchange_t x;
    TM_REQUIRE(tm_exchange_init(&x, TM_EXCHANGE_HASH, &rt_exchange_key, NT, MAXP, 0, false) == 0);
    /* Two keys on different subtasks, and two on the same one. */
    int64_t a = 1, bk = 2, c = -1, d = -1;
    while (rt_owner(bk, NT, MAXP) == rt_owner(a, NT, MAXP))
        bk++;
    for (int64_t k = 100; c < 0; k++)
        for (int64_t j = k + 1; j < k + 200; j++)
            if (rt_owner(k, NT, MAXP) == rt_owner(j, NT, MAXP)) {
                c = k;
                d = j;
                break;
            }
    tm_batch_t *b = tm_batch_new();
    rt_add(b, s, TM_OP_UPDATE, rt_row(b, s, a, 1), rt_row(b, s, bk, 2));
    rt_add(b, s, TM_OP_UPDATE, rt_row(b, s, c, 3), rt_row(b, s, d, 4));
    rt_add(b, s, TM_OP_UPDATE, rt_row(b, s, a, 5), rt_row(b, s, a, 6)); /* same key: kept */
    got_t g = {0};
    TM_CHECK_INT(tm_exchange_route(&x, b, collect, &g), 0);
    int ta = rt_owner(a, NT, MAXP), tb = rt_owner(bk, NT, MAXP), tc = rt_owner(c, NT, MAXP);
    TM_REQUIRE(g.n[ta] == 1 && g.n[tb] == 1);
    tm_batch_t *ca = g.b[ta][0], *cb = g.b[tb][0], *cc = g.b[tc][0];
    /* Target of a: DELETE(a) then, later, the unsplit update of a. */
    TM_CHECK(ca->recs[0].op == TM_OP_DELETE && ca->recs[0].after == NULL &&
             ca->recs[0].before->vals[0].u.i64 == a);
    TM_CHECK(cb->recs[0].op == TM_OP_CREATE && cb->recs[0].before == NULL &&
             cb->recs[0].after->vals[0].u.i64 == bk);
    uint32_t i = 0;
    while (i < cc->count && cc->recs[i].op != TM_OP_DELETE)
        i++;
    /* Same subtask, different keys: still split, delete first. */
    TM_REQUIRE(i + 1 < cc->count);
    TM_CHECK(cc->recs[i].before->vals[0].u.i64 == c);
    TM_CHECK(cc->recs[i + 1].op == TM_OP_CREATE && cc->recs[i + 1].after->vals[0].u.i64 == d);
    bool kept = false;
    for (uint32_t r = 0; r < ca->count; r++)
        kept |= ca->recs[r].op == TM_OP_UPDATE && ca->recs[r].after->vals[1].u.i64 == 6;
    TM_CHECK(kept);
    got_free(&g);
    tm_batch_unref(b);
    tm_exchange_destroy(&x);
    tm_schema_unref(s);
}

/* Keyless records (truncate, message, no primary key) go to every subtask. */
static void test_keyless_records_go_everywhere(void)
{
    tm_schema_t *s = rt_schema();
    tm_schema_t *nokey = tm_schema_clone(s);
    nokey->cols[0].key_index = -1;
    tm_schema_finish(nokey);
    tm_exchange_t x;
    TM_REQUIRE(tm_exchange_init(&x, TM_EXCHANGE_HASH, &rt_exchange_key, NT, MAXP, 0, false) == 0);
    tm_batch_t *b = tm_batch_new();
    rt_add(b, s, TM_OP_TRUNCATE, NULL, NULL);
    rt_add(b, NULL, TM_OP_MESSAGE, NULL, NULL);
    rt_add(b, nokey, TM_OP_CREATE, NULL, rt_row(b, nokey, 5, 5));
    got_t g = {0};
    TM_CHECK_INT(tm_exchange_route(&x, b, collect, &g), 0);
    for (int t = 0; t < NT; t++) {
        TM_REQUIRE(g.n[t] == 1);
        TM_CHECK_INT(g.b[t][0]->count, 3);
        TM_CHECK(g.b[t][0]->recs[0].op == TM_OP_TRUNCATE);
        TM_CHECK(g.b[t][0]->recs[1].op == TM_OP_MESSAGE);
    }
    got_free(&g);
    tm_batch_unref(b);
    tm_exchange_destroy(&x);
    tm_schema_unref(nokey);
    tm_schema_unref(s);
}

/* With carry_tokens every target gets the token on its last batch, even without records. */
static void test_tokens_reach_every_target(void)
{
    tm_schema_t *s = rt_schema();
    tm_exchange_t x;
    TM_REQUIRE(tm_exchange_init(&x, TM_EXCHANGE_HASH, &rt_exchange_key, NT, MAXP, 0, true) == 0);
    /* More than a batch for one target: split children, token only on the last. */
    int64_t k = 7;
    tm_batch_t *b = tm_batch_new();
    for (int i = 0; i < TM_BATCH_MAX; i++)
        rt_add(b, s, TM_OP_UPDATE, rt_row(b, s, k, i), rt_row(b, s, k + 1 + (i % 2) * 1000, i));
    b->ack_token = 99;
    b->ack_source = 3;
    got_t g = {0};
    TM_CHECK_INT(tm_exchange_route(&x, b, collect, &g), 0);
    int total = 0;
    for (int t = 0; t < NT; t++) {
        TM_REQUIRE(g.n[t] >= 1);
        for (int i = 0; i < g.n[t]; i++) {
            TM_CHECK_INT((long long)g.b[t][i]->ack_token, i == g.n[t] - 1 ? 99 : 0);
            TM_CHECK_INT(g.b[t][i]->ack_source, 3);
            total += (int)g.b[t][i]->count;
        }
    }
    TM_CHECK_INT(total, 2 * TM_BATCH_MAX);
    got_free(&g);
    tm_batch_unref(b);
    /* Forward and single hand over the batch itself; broadcast to all. */
    tm_exchange_t f;
    TM_REQUIRE(tm_exchange_init(&f, TM_EXCHANGE_BROADCAST, NULL, NT, MAXP, 0, true) == 0);
    b = tm_batch_new();
    TM_CHECK_INT(tm_exchange_route(&f, b, collect, &g), 0);
    for (int t = 0; t < NT; t++)
        TM_CHECK(g.n[t] == 1 && g.b[t][0] == b);
    got_free(&g);
    tm_batch_unref(b);
    tm_exchange_destroy(&f);
    tm_exchange_destroy(&x);
    tm_schema_unref(s);
}

int main(void)
{
    TM_RUN(test_hash_routes_by_key_group_in_order);
    TM_RUN(test_hash_splits_key_changes);
    TM_RUN(test_keyless_records_go_everywhere);
    TM_RUN(test_tokens_reach_every_target);
    return tm_test_done();
}
