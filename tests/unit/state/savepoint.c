/* Unit tests: the portable savepoint format (state/savepoint.h). */
#include "core/hash.h"
#include "state/savepoint.h"
#include "state_test.h"

#include <fcntl.h>

static char err[1024];

typedef struct env {
    char *dir;
    tm_store_t *stores[4];
    int n;
} env_t;

static void env_open(env_t *e, const char *name, int n, int maxp)
{
    char p[512];
    e->n = n;
    for (int w = 0; w < n; w++) {
        tm_store_opts_t o = tst_opts(0);
        o.max_parallelism = maxp;
        snprintf(p, sizeof(p), "%s/%s-%d", e->dir, name, w);
        TM_REQUIRE(tm_store_open(p, &o, &e->stores[w], err, sizeof(err)) == 0);
    }
}

static void env_close(env_t *e)
{
    for (int w = 0; w < e->n; w++)
        e->stores[w] = tm_store_close(e->stores[w]);
}

/* Fills operators "op-a" (many keys) and "op-b" (few) the way workers would: by key group. */
static void fill(env_t *e, int nkeys)
{
    int maxp = tm_store_max_parallelism(e->stores[0]);
    for (int i = 0; i < nkeys; i++) {
        char key[32], val[64];
        int kl = snprintf(key, sizeof(key), "key-%d", i);
        int vl = snprintf(val, sizeof(val), "value %d %s", i, i % 7 ? "" : "with more bytes");
        int kg = tm_keygroup_of(key, (size_t)kl, maxp);
        tm_store_t *st = e->stores[tm_keygroup_worker(kg, e->n, maxp)];
        tm_store_cf_t *cf;
        TM_REQUIRE(tm_store_cf(st, i % 10 == 0 ? "op-b" : "op-a", &cf, err, sizeof(err)) == 0);
        atomic_store(&tst_clock_now, 1700000000000000LL + i);
        TM_REQUIRE(tm_store_put(st, cf, kg, key, (size_t)kl, val, (size_t)vl, err, sizeof(err)) ==
                   0);
    }
}

static const char *const uids[] = {"op-a", "op-b"};

static void roundtrip(int from, int to)
{
    env_t a = {.dir = tst_tmpdir()}, b = {.dir = a.dir};
    char path[512];
    env_open(&a, "from", from, 128);
    fill(&a, 3000);
    tm_savepoint_stats_t ws, rs;
    tst_path(path, sizeof(path), a.dir, "sp-1");
    TM_REQUIRE(tm_savepoint_write(a.stores, a.n, uids, 2, "job-x", path, &ws, err, sizeof(err)) ==
               0);
    TM_CHECK_INT(ws.records, 3000);
    TM_CHECK_INT(ws.operators, 2);
    TM_CHECK(ws.sections > 128 && ws.sections <= 256);

    env_open(&b, "to", to, 128);
    tm_savepoint_target_t t = {.stores = b.stores, .nstores = b.n, .uids = uids, .nuids = 2};
    TM_REQUIRE(tm_savepoint_restore(path, &t, &rs, err, sizeof(err)) == 0);
    TM_CHECK_INT(rs.records, 3000);
    TM_CHECK_INT(rs.bytes, ws.bytes);
    for (int u = 0; u < 2; u++) {
        char *da = tst_dump_all(a.stores, a.n, uids[u]);
        char *db = tst_dump_all(b.stores, b.n, uids[u]);
        TM_CHECK(strlen(da) > 1000);
        TM_CHECK(strcmp(da, db) == 0);
        free(da);
        free(db);
    }
    /* Every key group landed in the store of the worker that owns it. */
    for (int w = 0; w < b.n; w++) {
        int first, last;
        TM_REQUIRE(tm_keygroup_range(w, b.n, 128, &first, &last) == 0);
        tm_store_cf_t *cf = tm_store_cf_find(b.stores[w], "op-a");
        TM_REQUIRE(cf != NULL);
        tm_store_iter_t *it;
        TM_REQUIRE(tm_store_iter_new(b.stores[w], cf, 0, 127, NULL, 0, &it) == 0);
        tm_store_entry_t en;
        int bad = 0;
        while (tm_store_iter_next(it, &en, NULL, 0) == 1)
            bad += en.kg < first || en.kg > last;
        TM_CHECK_INT(bad, 0);
        tm_store_iter_free(it);
    }
    env_close(&a);
    env_close(&b);
    tst_rmdir(a.dir);
}

static void test_one_to_three(void)
{
    roundtrip(1, 3);
}

static void test_three_to_one(void)
{
    roundtrip(3, 1);
}

static void test_two_to_four_and_empty_operator(void)
{
    env_t a = {.dir = tst_tmpdir()}, b = {.dir = a.dir};
    char path[512];
    env_open(&a, "from", 2, 128);
    fill(&a, 200);
    const char *three[] = {"op-a", "op-b", "op-empty"};
    tst_path(path, sizeof(path), a.dir, "sp");
    TM_REQUIRE(tm_savepoint_write(a.stores, a.n, three, 3, "job", path, NULL, err, sizeof(err)) ==
               0);
    env_open(&b, "to", 4, 128);
    tm_savepoint_target_t t = {.stores = b.stores, .nstores = b.n, .uids = three, .nuids = 3};
    TM_REQUIRE(tm_savepoint_restore(path, &t, NULL, err, sizeof(err)) == 0);
    char *da = tst_dump_all(a.stores, a.n, "op-a"), *db = tst_dump_all(b.stores, b.n, "op-a");
    TM_CHECK(strcmp(da, db) == 0);
    free(da);
    free(db);
    env_close(&a);
    env_close(&b);
    tst_rmdir(a.dir);
}

typedef struct desc_acc {
    char text[8192];
    size_t len;
    uint64_t records;
} desc_acc_t;

static void on_desc(void *arg, const tm_savepoint_desc_t *d)
{
    desc_acc_t *acc = arg;
    size_t left = sizeof(acc->text) - acc->len;
    switch (d->part) {
    case TM_SAVEPOINT_HEADER:
        acc->len += (size_t)snprintf(acc->text + acc->len, left,
                                     "job=%s v=%d maxp=%d ops=%u sections=%u records=%llu\n",
                                     d->job, d->version, d->max_parallelism, d->noperators,
                                     d->keygroups, (unsigned long long)d->records);
        break;
    case TM_SAVEPOINT_OPERATOR:
        acc->len += (size_t)snprintf(acc->text + acc->len, left, "op=%s kgs=%u records=%llu\n",
                                     d->uid, d->keygroups, (unsigned long long)d->records);
        break;
    case TM_SAVEPOINT_KEYGROUP:
        acc->records += d->records;
        break;
    }
}

static void test_describe(void)
{
    env_t a = {.dir = tst_tmpdir()};
    char path[512];
    env_open(&a, "from", 1, 128);
    /* Three keys in known key groups. */
    tm_store_cf_t *cf;
    TM_REQUIRE(tm_store_cf(a.stores[0], "op-a", &cf, err, sizeof(err)) == 0);
    TM_REQUIRE(tm_store_put(a.stores[0], cf, 7, "k1", 2, "v", 1, err, sizeof(err)) == 0);
    TM_REQUIRE(tm_store_put(a.stores[0], cf, 7, "k2", 2, "v", 1, err, sizeof(err)) == 0);
    TM_REQUIRE(tm_store_put(a.stores[0], cf, 100, "k3", 2, "v", 1, err, sizeof(err)) == 0);
    tst_path(path, sizeof(path), a.dir, "sp");
    TM_REQUIRE(tm_savepoint_write(a.stores, 1, uids, 2, "nightly", path, NULL, err, sizeof(err)) ==
               0);
    desc_acc_t acc = {0};
    TM_REQUIRE(tm_savepoint_describe(path, on_desc, &acc, err, sizeof(err)) == 0);
    TM_CHECK_STR(acc.text, "job=nightly v=1 maxp=128 ops=2 sections=2 records=3\n"
                           "op=op-a kgs=2 records=3\n"
                           "op=op-b kgs=0 records=0\n");
    TM_CHECK_INT(acc.records, 3);
    env_close(&a);
    tst_rmdir(a.dir);
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void flip_byte(const char *path, long off)
{
    int fd = open(path, O_RDWR);
    uint8_t c;
    if (fd < 0)
        return;
    if (pread(fd, &c, 1, off) == 1) {
        c ^= 0x20;
        (void)!pwrite(fd, &c, 1, off);
    }
    close(fd);
}

static void test_corruption_detected(void)
{
    env_t a = {.dir = tst_tmpdir()}, b = {.dir = a.dir};
    char path[512];
    env_open(&a, "from", 1, 128);
    fill(&a, 300);
    tst_path(path, sizeof(path), a.dir, "sp");
    TM_REQUIRE(tm_savepoint_write(a.stores, 1, uids, 2, "job", path, NULL, err, sizeof(err)) == 0);
    long size = file_size(path);
    TM_REQUIRE(size > 1000);
    env_open(&b, "to", 2, 128);
    tm_savepoint_target_t t = {.stores = b.stores, .nstores = b.n, .uids = uids, .nuids = 2};

    /*
     * A flipped byte in the first record's value (header: 27 bytes with the
     * job name "job"; section head: 10; record head: 16, then the key): the
     * message names the section.
     */
    uint8_t rh[4];
    int fd = open(path, O_RDONLY);
    TM_REQUIRE(fd >= 0 && pread(fd, rh, 4, 27 + 10) == 4);
    close(fd);
    long value_at = 27 + 10 + 16 + (long)(rh[0] | rh[1] << 8);
    flip_byte(path, value_at);
    TM_CHECK(tm_savepoint_restore(path, &t, NULL, err, sizeof(err)) == TM_ECORRUPT);
    TM_CHECK(strstr(err, "section of operator 'op-a', key group") != NULL);
    TM_CHECK(strstr(err, "checksum mismatch") != NULL);
    /* Nothing was applied (invariant 1). */
    TM_CHECK(tm_store_cf_find(b.stores[0], "op-a") == NULL &&
             tm_store_cf_find(b.stores[1], "op-a") == NULL);
    desc_acc_t acc = {0};
    TM_CHECK(tm_savepoint_describe(path, on_desc, &acc, err, sizeof(err)) == TM_ECORRUPT);
    flip_byte(path, value_at);
    TM_CHECK(tm_savepoint_describe(path, on_desc, &acc, err, sizeof(err)) == 0);

    /* Every single-byte flip anywhere is detected. */
    int undetected = 0;
    for (long off = 0; off < size; off += (off < 64 || off > size - 600) ? 1 : 37) {
        flip_byte(path, off);
        if (tm_savepoint_describe(path, on_desc, &acc, err, sizeof(err)) != TM_ECORRUPT)
            undetected++;
        flip_byte(path, off);
    }
    TM_CHECK_INT(undetected, 0);
    flip_byte(path, 2);
    TM_CHECK(tm_savepoint_describe(path, on_desc, &acc, err, sizeof(err)) == TM_ECORRUPT);
    TM_CHECK(strstr(err, "header") != NULL);
    flip_byte(path, 2);
    flip_byte(path, size - 30);
    TM_CHECK(tm_savepoint_describe(path, on_desc, &acc, err, sizeof(err)) == TM_ECORRUPT);
    TM_CHECK(strstr(err, "index") != NULL);
    flip_byte(path, size - 30);

    /* Truncation at any point: the footer is missing or inconsistent. */
    char cut[512];
    tst_path(cut, sizeof(cut), a.dir, "cut");
    for (long n = 0; n < size; n += 97) {
        FILE *in = fopen(path, "rb"), *out = fopen(cut, "wb");
        TM_REQUIRE(in && out);
        char buf[8192];
        long left = n;
        while (left > 0) {
            size_t k = fread(buf, 1, left < (long)sizeof(buf) ? (size_t)left : sizeof(buf), in);
            if (k == 0)
                break;
            fwrite(buf, 1, k, out);
            left -= (long)k;
        }
        fclose(in);
        fclose(out);
        TM_CHECK(tm_savepoint_restore(cut, &t, NULL, err, sizeof(err)) == TM_ECORRUPT);
    }
    TM_CHECK(strstr(err, "footer") != NULL || strstr(err, "header") != NULL);
    TM_CHECK(tm_savepoint_restore(path, &t, NULL, err, sizeof(err)) == 0);
    env_close(&a);
    env_close(&b);
    tst_rmdir(a.dir);
}

static void test_plan_mismatches(void)
{
    env_t a = {.dir = tst_tmpdir()}, b = {.dir = a.dir}, c = {.dir = a.dir};
    char path[512];
    env_open(&a, "from", 1, 128);
    fill(&a, 100);
    tst_path(path, sizeof(path), a.dir, "sp");
    TM_REQUIRE(tm_savepoint_write(a.stores, 1, uids, 2, "job", path, NULL, err, sizeof(err)) == 0);
    env_open(&b, "to", 2, 128);

    /* op-b is gone from the new plan, op-new is added. */
    const char *plan[] = {"op-a", "op-new"};
    tm_savepoint_target_t t = {.stores = b.stores, .nstores = 2, .uids = plan, .nuids = 2};
    TM_CHECK(tm_savepoint_restore(path, &t, NULL, err, sizeof(err)) == TM_ECONFIG);
    TM_CHECK(strstr(err, "'op-b'") != NULL && strstr(err, "--allow-non-restored-state") != NULL);
    TM_CHECK(tm_store_cf_find(b.stores[0], "op-a") == NULL);
    t.allow_non_restored = true;
    tm_savepoint_stats_t rs;
    TM_REQUIRE(tm_savepoint_restore(path, &t, &rs, err, sizeof(err)) == 0);
    TM_CHECK_INT(rs.skipped, 1);
    TM_CHECK_INT(rs.operators, 1);
    TM_CHECK_INT(rs.records, 90);
    char *da = tst_dump_all(a.stores, 1, "op-a"), *db = tst_dump_all(b.stores, 2, "op-a");
    TM_CHECK(strcmp(da, db) == 0);
    free(da);
    free(db);

    /* max_parallelism cannot change. */
    env_open(&c, "other", 1, 256);
    tm_savepoint_target_t t2 = {.stores = c.stores, .nstores = 1, .uids = uids, .nuids = 2};
    TM_CHECK(tm_savepoint_restore(path, &t2, NULL, err, sizeof(err)) == TM_ECONFIG);
    TM_CHECK(strstr(err, "max_parallelism") != NULL);

    /* A newer format version is refused as such, not as corruption. */
    FILE *f = fopen(path, "r+b");
    TM_REQUIRE(f != NULL);
    uint8_t hdr[20];
    TM_REQUIRE(fread(hdr, 1, sizeof(hdr), f) == sizeof(hdr));
    uint8_t job[3], crc[4];
    TM_REQUIRE(fread(job, 1, 3, f) == 3);
    hdr[4] = 2;
    uint32_t c32 = tm_crc32c_update(tm_crc32c(hdr, sizeof(hdr)), job, 3);
    for (int i = 0; i < 4; i++)
        crc[i] = (uint8_t)(c32 >> (8 * i));
    fseek(f, 0, SEEK_SET);
    fwrite(hdr, 1, sizeof(hdr), f);
    fseek(f, 23, SEEK_SET);
    fwrite(crc, 1, 4, f);
    fclose(f);
    TM_CHECK(tm_savepoint_restore(path, &t, NULL, err, sizeof(err)) == TM_EUNSUPPORTED);
    TM_CHECK(strstr(err, "version 2") != NULL);
    TM_CHECK(tm_savepoint_restore("/nonexistent/sp", &t, NULL, err, sizeof(err)) ==
             TM_ENOTFOUND);
    env_close(&a);
    env_close(&b);
    env_close(&c);
    tst_rmdir(a.dir);
}

int main(void)
{
    TM_RUN(test_one_to_three);
    TM_RUN(test_three_to_one);
    TM_RUN(test_two_to_four_and_empty_operator);
    TM_RUN(test_describe);
    TM_RUN(test_corruption_detected);
    TM_RUN(test_plan_mismatches);
    return tm_test_done();
}
