/*
 * Unit tests: state/kvcache.h, the write-behind cache.  A random workload of
 * reads, writes and deletes over more keys than the budget holds runs against
 * a model; every read must agree with it, the store must agree with it after
 * every flush (and never be read for a value the cache holds dirty), and
 * with a TTL no clean value outlives a flush.
 */
#include "state/kvcache.h"
#include "state_test.h"

static char err[512];

enum { NKEYS = 3000, VMAX = 200 };

typedef struct model {
    bool has[NKEYS];
    uint8_t val[NKEYS][VMAX];
    uint32_t len[NKEYS];
} model_t;

static uint64_t rng = 0x2545F4914F6CDD1Du;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static int key_of(int k, char *buf)
{
    return sprintf(buf, "key-%05d", k);
}

/* The store, read directly, holds exactly the model. */
static void check_store(tm_store_t *st, tm_store_cf_t *cf, const model_t *m)
{
    tm_buf_t v;
    tm_buf_init(&v);
    int bad = 0;
    for (int k = 0; k < NKEYS; k++) {
        char key[32];
        int kl = key_of(k, key);
        int rc = tm_store_get(st, cf, k % 16, key, (size_t)kl, &v, err, sizeof(err));
        bool ok = m->has[k] ? rc == 0 && v.len == m->len[k] && memcmp(v.data, m->val[k], v.len) == 0
                            : rc == TM_ENOTFOUND;
        if (!ok && bad++ < 3)
            fprintf(stderr, "store disagrees on key %d (rc %d)\n", k, rc);
    }
    TM_CHECK_INT(bad, 0);
    tm_buf_release(&v);
}

static void test_random_against_model(void)
{
    char *dir = tst_tmpdir(), p[512];
    tm_store_opts_t o = tst_opts(0);
    tm_store_t *st;
    tm_store_cf_t *cf;
    TM_REQUIRE(tm_store_open(tst_path(p, sizeof(p), dir, "w"), &o, &st, err, sizeof(err)) == 0);
    TM_REQUIRE(tm_store_cf(st, "op", &cf, err, sizeof(err)) == 0);
    tm_kvcache_t *c;
    /* 3,000 keys of up to 200 bytes do not fit 128 KiB: evictions and forced flushes happen. */
    TM_REQUIRE(tm_kvcache_new(st, cf, 128 << 10, &c) == 0);
    static model_t m;
    memset(&m, 0, sizeof(m));
    int bad = 0;
    for (int i = 0; i < 200000; i++) {
        int k = (int)(rnd(4) ? rnd(300) : rnd(NKEYS)); /* a hot set and a long tail */
        char key[32];
        int kl = key_of(k, key);
        uint32_t op = rnd(10);
        if (op < 5) {
            const uint8_t *v;
            size_t vl;
            int rc = tm_kvcache_get(c, k % 16, key, (size_t)kl, &v, &vl, err, sizeof(err));
            bool ok = m.has[k] ? rc == 0 && vl == m.len[k] && memcmp(v, m.val[k], vl) == 0
                               : rc == TM_ENOTFOUND;
            if (!ok && bad++ < 3)
                fprintf(stderr, "op %d: read of key %d disagrees (rc %d)\n", i, k, rc);
        } else if (op < 9) {
            uint32_t len = rnd(VMAX);
            for (uint32_t j = 0; j < len; j++)
                m.val[k][j] = (uint8_t)rnd(256);
            m.len[k] = len;
            m.has[k] = true;
            TM_REQUIRE(tm_kvcache_put(c, k % 16, key, (size_t)kl, m.val[k], len, err,
                                      sizeof(err)) == 0);
        } else {
            m.has[k] = false;
            TM_REQUIRE(tm_kvcache_delete(c, k % 16, key, (size_t)kl, err, sizeof(err)) == 0);
        }
        if (i % 50000 == 49999) {
            TM_REQUIRE(tm_kvcache_flush(c, err, sizeof(err)) == 0);
            check_store(st, cf, &m); /* invariant 2 */
        }
    }
    TM_CHECK_INT(bad, 0);
    tm_kvcache_stats_t s;
    tm_kvcache_stats(c, &s);
    TM_CHECK(s.evictions > 0);      /* the budget was reached */
    TM_CHECK(s.flushes > 4);        /* also by the budget, not only by the test */
    TM_CHECK(s.hits > s.misses);    /* the hot set stays in memory */
    TM_CHECK(s.bytes <= 128 << 10); /* within the budget */
    /* Dropping the cache after a flush loses nothing; without one it drops only unflushed writes. */
    TM_REQUIRE(tm_kvcache_flush(c, err, sizeof(err)) == 0);
    tm_kvcache_free(c);
    check_store(st, cf, &m);
    tm_store_close(st);
    tst_rmdir(dir);
}

/* With a state TTL, a flush drops every clean value: an expired one is not served from memory. */
static void test_ttl_drops_clean_values(void)
{
    char *dir = tst_tmpdir(), p[512];
    tm_store_opts_t o = tst_opts(1000000); /* 1 s */
    tm_store_t *st;
    tm_store_cf_t *cf;
    TM_REQUIRE(tm_store_open(tst_path(p, sizeof(p), dir, "w"), &o, &st, err, sizeof(err)) == 0);
    TM_REQUIRE(tm_store_cf(st, "op", &cf, err, sizeof(err)) == 0);
    tm_kvcache_t *c;
    TM_REQUIRE(tm_kvcache_new(st, cf, 1 << 20, &c) == 0);
    const uint8_t *v;
    size_t vl;
    TM_REQUIRE(tm_kvcache_put(c, 3, "k", 1, "v1", 2, err, sizeof(err)) == 0);
    TM_REQUIRE(tm_kvcache_flush(c, err, sizeof(err)) == 0);
    TM_CHECK(tm_kvcache_get(c, 3, "k", 1, &v, &vl, err, sizeof(err)) == 0 && vl == 2);
    TM_REQUIRE(tm_kvcache_flush(c, err, sizeof(err)) == 0);
    atomic_fetch_add(&tst_clock_now, 2000000); /* the value expires in the store */
    TM_CHECK_INT(tm_kvcache_get(c, 3, "k", 1, &v, &vl, err, sizeof(err)), TM_ENOTFOUND);
    tm_kvcache_free(c);
    tm_store_close(st);
    tst_rmdir(dir);
}

int main(void)
{
    TM_RUN(test_random_against_model);
    TM_RUN(test_ttl_drops_clean_values);
    return tm_test_done();
}
