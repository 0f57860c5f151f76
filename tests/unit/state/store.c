/* Unit tests: the RocksDB state store (state/store.h). */
#include "state/store.h"
#include "state_test.h"

static char err[1024];

static int get_str(tm_store_t *st, tm_store_cf_t *cf, int kg, const char *key, char *out,
                   size_t n)
{
    tm_buf_t v;
    tm_buf_init(&v);
    int rc = tm_store_get(st, cf, kg, key, strlen(key), &v, err, sizeof(err));
    if (rc == 0)
        snprintf(out, n, "%.*s", (int)v.len, v.data ? v.data : "");
    tm_buf_release(&v);
    return rc;
}

static void put_str(tm_store_t *st, tm_store_cf_t *cf, int kg, const char *key, const char *val)
{
    TM_CHECK(tm_store_put(st, cf, kg, key, strlen(key), val, strlen(val), err, sizeof(err)) == 0);
}

static void test_basic_ops_and_reopen(void)
{
    char *dir = tst_tmpdir();
    tm_store_opts_t o = tst_opts(0);
    tm_store_t *st;
    TM_REQUIRE(tm_store_open(dir, &o, &st, err, sizeof(err)) == 0);
    TM_CHECK_INT(tm_store_max_parallelism(st), 128);
    tm_store_cf_t *a, *b, *again;
    TM_REQUIRE(tm_store_cf(st, "upsert-a", &a, err, sizeof(err)) == 0);
    TM_REQUIRE(tm_store_cf(st, "join-b", &b, err, sizeof(err)) == 0);
    TM_REQUIRE(tm_store_cf(st, "upsert-a", &again, err, sizeof(err)) == 0);
    TM_CHECK(a == again);
    TM_CHECK(tm_store_cf(st, "default", &again, err, sizeof(err)) == TM_EINVAL);
    TM_CHECK(tm_store_cf(st, "", &again, err, sizeof(err)) == TM_EINVAL);

    char v[64];
    put_str(st, a, 5, "k1", "v1");
    put_str(st, b, 5, "k1", "other cf");
    put_str(st, a, 6, "k1", "other kg");
    TM_CHECK(get_str(st, a, 5, "k1", v, sizeof(v)) == 0 && strcmp(v, "v1") == 0);
    TM_CHECK(get_str(st, b, 5, "k1", v, sizeof(v)) == 0 && strcmp(v, "other cf") == 0);
    TM_CHECK(get_str(st, a, 6, "k1", v, sizeof(v)) == 0 && strcmp(v, "other kg") == 0);
    TM_CHECK(get_str(st, a, 7, "k1", v, sizeof(v)) == TM_ENOTFOUND);
    put_str(st, a, 5, "empty", "");
    TM_CHECK(get_str(st, a, 5, "empty", v, sizeof(v)) == 0 && v[0] == '\0');
    TM_CHECK(tm_store_delete(st, a, 5, "k1", 2, err, sizeof(err)) == 0);
    TM_CHECK(get_str(st, a, 5, "k1", v, sizeof(v)) == TM_ENOTFOUND);
    st = tm_store_close(st);

    /* Closing flushes: reopening finds the column families and the data. */
    TM_REQUIRE(tm_store_open(dir, &o, &st, err, sizeof(err)) == 0);
    TM_CHECK_INT(tm_store_cf_count(st), 2);
    TM_CHECK_STR(tm_store_cf_uid(st, 0), "upsert-a");
    a = tm_store_cf_find(st, "upsert-a");
    TM_REQUIRE(a != NULL);
    TM_CHECK(get_str(st, a, 6, "k1", v, sizeof(v)) == 0 && strcmp(v, "other kg") == 0);
    /* A second open of the same directory fails with RocksDB's reason. */
    tm_store_t *st2;
    TM_CHECK(tm_store_open(dir, &o, &st2, err, sizeof(err)) == TM_EIO);
    TM_CHECK(strstr(err, "lock") != NULL || strstr(err, "LOCK") != NULL);
    tm_store_close(st);
    tst_rmdir(dir);
}

static void test_batch_read_your_writes(void)
{
    char *dir = tst_tmpdir();
    tm_store_opts_t o = tst_opts(0);
    tm_store_t *st;
    tm_store_cf_t *cf;
    TM_REQUIRE(tm_store_open(dir, &o, &st, err, sizeof(err)) == 0);
    TM_REQUIRE(tm_store_cf(st, "op", &cf, err, sizeof(err)) == 0);
    put_str(st, cf, 1, "old", "from db");
    tm_store_batch_t *b;
    TM_REQUIRE(tm_store_batch_new(st, &b) == 0);
    tm_buf_t v;
    tm_buf_init(&v);
    TM_CHECK(tm_store_batch_put(b, cf, 1, "new", 3, "pending", 7) == 0);
    TM_CHECK(tm_store_batch_delete(b, cf, 1, "old", 3) == 0);
    TM_CHECK_INT(tm_store_batch_count(b), 2);
    TM_CHECK(tm_store_batch_get(b, cf, 1, "new", 3, &v, err, sizeof(err)) == 0 && v.len == 7);
    TM_CHECK(tm_store_batch_get(b, cf, 1, "old", 3, &v, err, sizeof(err)) == TM_ENOTFOUND);
    /* Not visible outside the batch until committed. */
    TM_CHECK(tm_store_get(st, cf, 1, "new", 3, &v, err, sizeof(err)) == TM_ENOTFOUND);
    TM_CHECK(tm_store_get(st, cf, 1, "old", 3, &v, err, sizeof(err)) == 0);
    TM_CHECK(tm_store_batch_put(b, cf, 1, "new", 3, "latest", 6) == 0);
    TM_REQUIRE(tm_store_batch_commit(b, err, sizeof(err)) == 0);
    TM_CHECK_INT(tm_store_batch_count(b), 0);
    TM_CHECK(tm_store_get(st, cf, 1, "new", 3, &v, err, sizeof(err)) == 0 && v.len == 6 &&
             memcmp(v.data, "latest", 6) == 0);
    TM_CHECK(tm_store_get(st, cf, 1, "old", 3, &v, err, sizeof(err)) == TM_ENOTFOUND);
    tm_buf_release(&v);
    tm_store_batch_free(b);
    tm_store_close(st);
    tst_rmdir(dir);
}

/* An unindexed batch: same writes and commit, no reads through it while writes are pending. */
static void test_batch_unindexed(void)
{
    char *dir = tst_tmpdir();
    tm_store_opts_t o = tst_opts(0);
    tm_store_t *st;
    tm_store_cf_t *cf;
    TM_REQUIRE(tm_store_open(dir, &o, &st, err, sizeof(err)) == 0);
    TM_REQUIRE(tm_store_cf(st, "op", &cf, err, sizeof(err)) == 0);
    put_str(st, cf, 1, "old", "from db");
    tm_store_batch_t *b;
    TM_REQUIRE(tm_store_batch_new_unindexed(st, &b) == 0);
    tm_buf_t v;
    tm_buf_init(&v);
    /* Empty: reads go to the database. */
    TM_CHECK(tm_store_batch_get(b, cf, 1, "old", 3, &v, err, sizeof(err)) == 0 && v.len == 7);
    TM_CHECK(tm_store_batch_put(b, cf, 1, "new", 3, "pending", 7) == 0);
    TM_CHECK(tm_store_batch_delete(b, cf, 1, "old", 3) == 0);
    TM_CHECK(tm_store_batch_put(b, cf, 1, "new", 3, "latest", 6) == 0);
    TM_CHECK_INT(tm_store_batch_count(b), 3);
    TM_CHECK_INT(tm_store_batch_get(b, cf, 1, "new", 3, &v, err, sizeof(err)), TM_EINVAL);
    TM_CHECK(tm_store_get(st, cf, 1, "new", 3, &v, err, sizeof(err)) == TM_ENOTFOUND);
    TM_REQUIRE(tm_store_batch_commit(b, err, sizeof(err)) == 0);
    TM_CHECK_INT(tm_store_batch_count(b), 0);
    /* The last write of a key wins, as with the indexed batch. */
    TM_CHECK(tm_store_get(st, cf, 1, "new", 3, &v, err, sizeof(err)) == 0 && v.len == 6 &&
             memcmp(v.data, "latest", 6) == 0);
    TM_CHECK(tm_store_get(st, cf, 1, "old", 3, &v, err, sizeof(err)) == TM_ENOTFOUND);
    tm_buf_release(&v);
    tm_store_batch_free(b);
    tm_store_close(st);
    tst_rmdir(dir);
}

static int count_iter(tm_store_t *st, tm_store_cf_t *cf, int first, int last, const char *prefix,
                      int *kgs_seen)
{
    tm_store_iter_t *it;
    if (tm_store_iter_new(st, cf, first, last, prefix, prefix ? strlen(prefix) : 0, &it) != 0)
        return -1;
    tm_store_entry_t e;
    int n = 0, prev_kg = -1, rc;
    while ((rc = tm_store_iter_next(it, &e, err, sizeof(err))) == 1) {
        if (e.kg < first || e.kg > last || e.kg < prev_kg)
            n = -1000;
        if (prefix && (e.klen < strlen(prefix) || memcmp(e.key, prefix, strlen(prefix)) != 0))
            n = -1000;
        if (kgs_seen && e.kg != prev_kg)
            (*kgs_seen)++;
        prev_kg = e.kg;
        n++;
    }
    tm_store_iter_free(it);
    return rc < 0 ? rc : n;
}

static void test_iterate_and_delete_prefix(void)
{
    char *dir = tst_tmpdir();
    tm_store_opts_t o = tst_opts(0);
    tm_store_t *st;
    tm_store_cf_t *cf, *other;
    TM_REQUIRE(tm_store_open(dir, &o, &st, err, sizeof(err)) == 0);
    TM_REQUIRE(tm_store_cf(st, "op", &cf, err, sizeof(err)) == 0);
    TM_REQUIRE(tm_store_cf(st, "other", &other, err, sizeof(err)) == 0);
    /* Two "tables" (prefixes a/ and b/) in every 4th key group, 3 keys each. */
    for (int kg = 0; kg < 128; kg += 4)
        for (int k = 0; k < 3; k++) {
            char key[32];
            snprintf(key, sizeof(key), "a/%d", k);
            put_str(st, cf, kg, key, "x");
            snprintf(key, sizeof(key), "b/%d", k);
            put_str(st, cf, kg, key, "y");
        }
    /* A key whose prefix is an extension of "a/" must survive the deletion of "a/"'s... */
    put_str(st, cf, 9, "a", "shorter");
    /* ...and the 0xff edge: a prefix without a successor. */
    put_str(st, cf, 9, "\xff\xff", "ff");
    put_str(st, other, 8, "a/0", "other cf");
    int kgs = 0;
    TM_CHECK_INT(count_iter(st, cf, 0, 127, NULL, &kgs), 32 * 6 + 2);
    TM_CHECK_INT(kgs, 33);
    TM_CHECK_INT(count_iter(st, cf, 0, 127, "a/", NULL), 32 * 3);
    TM_CHECK_INT(count_iter(st, cf, 4, 11, NULL, NULL), 2 * 6 + 2);
    TM_CHECK_INT(count_iter(st, cf, 5, 7, NULL, NULL), 0);
    TM_CHECK_INT(count_iter(st, cf, 127, 127, NULL, NULL), 0);

    TM_REQUIRE(tm_store_delete_prefix(st, cf, "a/", 2, err, sizeof(err)) == 0);
    TM_CHECK_INT(count_iter(st, cf, 0, 127, "a/", NULL), 0);
    TM_CHECK_INT(count_iter(st, cf, 0, 127, "b/", NULL), 32 * 3);
    TM_CHECK_INT(count_iter(st, cf, 0, 127, "a", NULL), 1);
    TM_CHECK_INT(count_iter(st, other, 0, 127, NULL, NULL), 1);
    TM_REQUIRE(tm_store_delete_prefix(st, cf, "\xff", 1, err, sizeof(err)) == 0);
    TM_CHECK_INT(count_iter(st, cf, 9, 9, NULL, NULL), 1);
    /* An empty prefix clears the column family. */
    TM_REQUIRE(tm_store_delete_prefix(st, cf, NULL, 0, err, sizeof(err)) == 0);
    TM_CHECK_INT(count_iter(st, cf, 0, 127, NULL, NULL), 0);
    TM_CHECK_INT(count_iter(st, other, 0, 127, NULL, NULL), 1);
    tm_store_close(st);
    tst_rmdir(dir);
}

/* Appends "kg:key;" for each entry, forwards or in reverse. */
static int list_iter(tm_store_t *st, tm_store_cf_t *cf, int first, int last, const char *prefix,
                     size_t plen, bool reverse, tm_buf_t *out)
{
    tm_store_iter_t *it;
    int rc = reverse ? tm_store_iter_new_reverse(st, cf, first, last, prefix, plen, &it)
                     : tm_store_iter_new(st, cf, first, last, prefix, plen, &it);
    if (rc != 0)
        return rc;
    tm_store_entry_t e;
    int n = 0;
    while ((rc = tm_store_iter_next(it, &e, err, sizeof(err))) == 1) {
        tm_buf_appendf(out, "%d:", e.kg);
        for (size_t i = 0; i < e.klen; i++)
            tm_buf_appendf(out, "%02x", e.key[i]);
        tm_buf_putc(out, ';');
        n++;
    }
    tm_store_iter_free(it);
    return rc < 0 ? rc : n;
}

/* Reverses a "a;b;c;" list into "c;b;a;" (NUL-terminated in place of out). */
static void reverse_list(const tm_buf_t *in, tm_buf_t *out)
{
    tm_buf_clear(out);
    size_t end = in->len;
    while (end > 0) {
        size_t start = end - 1;
        while (start > 0 && in->data[start - 1] != ';')
            start--;
        tm_buf_append(out, in->data + start, end - start);
        end = start;
    }
    tm_buf_putc(out, '\0');
}

/*
 * Reverse iteration returns exactly the forward entries backwards, for
 * prefixes with and without a successor, empty key groups, keys equal to the
 * prefix's successor and keys that are a prefix of the prefix.
 */
static void test_iterate_reverse(void)
{
    char *dir = tst_tmpdir();
    tm_store_opts_t o = tst_opts(0);
    tm_store_t *st;
    tm_store_cf_t *cf;
    TM_REQUIRE(tm_store_open(dir, &o, &st, err, sizeof(err)) == 0);
    TM_REQUIRE(tm_store_cf(st, "op", &cf, err, sizeof(err)) == 0);
    static const char *const keys[] = {"", "a", "a/", "a/0", "a/1", "a/1x", "a0", "b", "\xff",
                                       "\xff\xff", "\xff\xff\x01"};
    const int nkeys = (int)(sizeof(keys) / sizeof(keys[0]));
    for (int kg = 0; kg < 128; kg += 5)
        for (int k = 0; k < nkeys; k++)
            if ((kg + k) % 3 != 0)
                put_str(st, cf, kg, keys[k], "v");
    put_str(st, cf, 127, "a/9", "v");
    static const char *const prefixes[] = {NULL, "a", "a/", "a/1", "b", "\xff", "\xff\xff", "c"};
    static const int ranges[][2] = {{0, 127}, {0, 0}, {5, 5}, {3, 12}, {126, 127}, {6, 9}};
    tm_buf_t fwd, rev, back;
    tm_buf_init(&fwd);
    tm_buf_init(&rev);
    tm_buf_init(&back);
    for (size_t p = 0; p < sizeof(prefixes) / sizeof(prefixes[0]); p++)
        for (size_t r = 0; r < sizeof(ranges) / sizeof(ranges[0]); r++) {
            const char *pf = prefixes[p];
            size_t plen = pf ? strlen(pf) : 0;
            tm_buf_clear(&fwd);
            tm_buf_clear(&rev);
            int nf = list_iter(st, cf, ranges[r][0], ranges[r][1], pf, plen, false, &fwd);
            int nr = list_iter(st, cf, ranges[r][0], ranges[r][1], pf, plen, true, &rev);
            TM_CHECK_INT(nr, nf);
            reverse_list(&fwd, &back);
            tm_buf_putc(&rev, '\0');
            TM_CHECK_STR(rev.data, back.data);
        }
    /* The whole column family backwards starts at the last key of the last key group. */
    tm_buf_clear(&rev);
    TM_CHECK(list_iter(st, cf, 0, 127, "a/", 2, true, &rev) > 0);
    tm_buf_putc(&rev, '\0');
    TM_CHECK(strncmp(rev.data, "127:612f39;", 11) == 0);
    tm_buf_release(&fwd);
    tm_buf_release(&rev);
    tm_buf_release(&back);
    tm_store_close(st);
    tst_rmdir(dir);
}

/* Lists key group kg under prefix with an existing iterator, re-seeked. */
static int list_seek(tm_store_iter_t *it, int kg, const char *prefix, size_t plen, bool reverse,
                     tm_buf_t *out)
{
    int rc = tm_store_iter_seek(it, kg, prefix, plen, reverse);
    if (rc != 0)
        return rc;
    tm_store_entry_t e;
    int n = 0;
    while ((rc = tm_store_iter_next(it, &e, err, sizeof(err))) == 1) {
        tm_buf_appendf(out, "%d:", e.kg);
        for (size_t i = 0; i < e.klen; i++)
            tm_buf_appendf(out, "%02x", e.key[i]);
        tm_buf_putc(out, ';');
        n++;
    }
    return rc < 0 ? rc : n;
}

/*
 * One iterator re-seeked to many (key group, prefix, direction) targets,
 * including longer prefixes than it was created with, lists exactly what a
 * fresh iterator lists, and keeps the view of its creation.
 */
static void test_iterate_seek(void)
{
    char *dir = tst_tmpdir();
    tm_store_opts_t o = tst_opts(0);
    tm_store_t *st;
    tm_store_cf_t *cf;
    TM_REQUIRE(tm_store_open(dir, &o, &st, err, sizeof(err)) == 0);
    TM_REQUIRE(tm_store_cf(st, "op", &cf, err, sizeof(err)) == 0);
    static const char *const keys[] = {"", "a", "a/", "a/0", "a/1", "a/1x", "a0", "b", "\xff",
                                       "\xff\xff", "\xff\xff\x01", "long/prefix/key/0"};
    const int nkeys = (int)(sizeof(keys) / sizeof(keys[0]));
    for (int kg = 0; kg < 128; kg += 3)
        for (int k = 0; k < nkeys; k++)
            if ((kg + k) % 4 != 0)
                put_str(st, cf, kg, keys[k], "v");
    static const char *const prefixes[] = {NULL, "a", "a/", "a/1", "b", "\xff", "\xff\xff",
                                           "c", "long/prefix/key/"};
    tm_store_iter_t *it;
    TM_REQUIRE(tm_store_iter_new(st, cf, 0, 0, NULL, 0, &it) == 0);
    tm_buf_t fresh, seek;
    tm_buf_init(&fresh);
    tm_buf_init(&seek);
    int total = 0;
    for (int kg = 0; kg < 128; kg += 7)
        for (size_t p = 0; p < sizeof(prefixes) / sizeof(prefixes[0]); p++)
            for (int rev = 0; rev < 2; rev++) {
                const char *pf = prefixes[p];
                size_t plen = pf ? strlen(pf) : 0;
                tm_buf_clear(&fresh);
                tm_buf_clear(&seek);
                int nf = list_iter(st, cf, kg, kg, pf, plen, rev, &fresh);
                int ns = list_seek(it, kg, pf, plen, rev, &seek);
                TM_CHECK_INT(ns, nf);
                tm_buf_putc(&fresh, '\0');
                tm_buf_putc(&seek, '\0');
                TM_CHECK_STR(seek.data, fresh.data);
                total += ns;
            }
    TM_CHECK(total > 100);
    /* Writes after the iterator's creation are not seen; a new iterator sees them. */
    put_str(st, cf, 7, "zz-new", "v");
    tm_buf_clear(&seek);
    TM_CHECK_INT(list_seek(it, 7, "zz", 2, false, &seek), 0);
    tm_store_iter_free(it);
    TM_REQUIRE(tm_store_iter_new(st, cf, 0, 0, NULL, 0, &it) == 0);
    tm_buf_clear(&seek);
    TM_CHECK_INT(list_seek(it, 7, "zz", 2, true, &seek), 1);
    TM_CHECK_INT(tm_store_iter_seek(it, 128, NULL, 0, false), TM_EINVAL);
    TM_CHECK_INT(tm_store_iter_seek(it, -1, NULL, 0, false), TM_EINVAL);
    tm_store_iter_free(it);
    tm_buf_release(&fresh);
    tm_buf_release(&seek);
    tm_store_close(st);
    tst_rmdir(dir);
}

static void test_ttl_expiry(void)
{
    char *dir = tst_tmpdir();
    const int64_t ttl = 10 * 1000000LL;
    tm_store_opts_t o = tst_opts(ttl);
    tm_store_t *st;
    tm_store_cf_t *cf;
    atomic_store(&tst_clock_now, 1000000000000000LL);
    TM_REQUIRE(tm_store_open(dir, &o, &st, err, sizeof(err)) == 0);
    TM_REQUIRE(tm_store_cf(st, "op", &cf, err, sizeof(err)) == 0);
    put_str(st, cf, 3, "old", "1");
    atomic_fetch_add(&tst_clock_now, 6 * 1000000LL);
    put_str(st, cf, 3, "young", "2");
    char v[16];
    TM_CHECK(get_str(st, cf, 3, "old", v, sizeof(v)) == 0);
    /* 11 s after "old" was written, 5 s after "young". */
    atomic_fetch_add(&tst_clock_now, 5 * 1000000LL);
    TM_CHECK(get_str(st, cf, 3, "old", v, sizeof(v)) == TM_ENOTFOUND);
    TM_CHECK(get_str(st, cf, 3, "young", v, sizeof(v)) == 0);
    TM_CHECK_INT(count_iter(st, cf, 0, 127, NULL, NULL), 1);
    /* A rewrite refreshes the timestamp. */
    put_str(st, cf, 3, "old", "again");
    TM_CHECK(get_str(st, cf, 3, "old", v, sizeof(v)) == 0 && strcmp(v, "again") == 0);
    atomic_fetch_add(&tst_clock_now, 6 * 1000000LL);
    TM_CHECK(get_str(st, cf, 3, "young", v, sizeof(v)) == TM_ENOTFOUND);
    /*
     * The compaction filter drops the expired value from disk: with the
     * clock turned back, reads would show it again if it were still there.
     */
    tm_store_close(st); /* flushes to an SST */
    TM_REQUIRE(tm_store_open(dir, &o, &st, err, sizeof(err)) == 0);
    cf = tm_store_cf_find(st, "op");
    TM_REQUIRE(cf != NULL && tm_store_compact(st, err, sizeof(err)) == 0);
    atomic_fetch_sub(&tst_clock_now, 30 * 1000000LL);
    TM_CHECK(get_str(st, cf, 3, "young", v, sizeof(v)) == TM_ENOTFOUND);
    TM_CHECK(get_str(st, cf, 3, "old", v, sizeof(v)) == 0);
    tm_store_close(st);

    /* Without a TTL nothing expires, however old. */
    tm_store_opts_t o2 = tst_opts(0);
    TM_REQUIRE(tm_store_open(dir, &o2, &st, err, sizeof(err)) == 0);
    cf = tm_store_cf_find(st, "op");
    atomic_fetch_add(&tst_clock_now, 1000000LL * 1000000LL);
    TM_CHECK(get_str(st, cf, 3, "old", v, sizeof(v)) == 0);
    tm_store_close(st);
    tst_rmdir(dir);
}

static void test_checkpoint_restore(void)
{
    char *dir = tst_tmpdir(), p[512], chk1[512], chk2[512], work[512];
    tm_store_opts_t o = tst_opts(0);
    tm_store_t *st;
    tm_store_cf_t *cf;
    tst_path(p, sizeof(p), dir, "work-a");
    TM_REQUIRE(tm_store_open(p, &o, &st, err, sizeof(err)) == 0);
    TM_REQUIRE(tm_store_cf(st, "op", &cf, err, sizeof(err)) == 0);
    char big[4096];
    memset(big, 'z', sizeof(big));
    for (int i = 0; i < 500; i++) {
        char key[16];
        snprintf(key, sizeof(key), "key%04d", i);
        TM_REQUIRE(tm_store_put(st, cf, i % 128, key, strlen(key), big, sizeof(big), err,
                                sizeof(err)) == 0);
    }
    tm_store_checkpoint_info_t i1, i2;
    tst_path(chk1, sizeof(chk1), dir, "chk-1/worker-0");
    TM_REQUIRE(tm_store_checkpoint(st, chk1, &i1, err, sizeof(err)) == 0);
    TM_CHECK(i1.bytes > 500 * 10); /* compressed, but present */
    TM_CHECK(i1.bytes_new == i1.bytes && i1.files_new == i1.files);
    /* The directory must not exist yet. */
    TM_CHECK(tm_store_checkpoint(st, chk1, NULL, err, sizeof(err)) == TM_ECHECKPOINT);

    /* A small change: the second checkpoint shares the first one's SSTs. */
    put_str(st, cf, 1, "key0001", "changed");
    put_str(st, cf, 2, "added", "new");
    tst_path(chk2, sizeof(chk2), dir, "chk-2/worker-0");
    TM_REQUIRE(tm_store_checkpoint(st, chk2, &i2, err, sizeof(err)) == 0);
    TM_CHECK(i2.bytes_new < i2.bytes);
    TM_CHECK(i2.bytes_new < i1.bytes);
    TM_CHECK(i2.files_new < i2.files);
    /* Writes after the checkpoint are not in it. */
    put_str(st, cf, 3, "after", "x");
    tm_store_close(st);

    tst_path(work, sizeof(work), dir, "work-b");
    TM_REQUIRE(tm_store_open_from_checkpoint(chk2, work, &o, &st, err, sizeof(err)) == 0);
    cf = tm_store_cf_find(st, "op");
    TM_REQUIRE(cf != NULL);
    char v[64];
    TM_CHECK(get_str(st, cf, 1, "key0001", v, sizeof(v)) == 0 && strcmp(v, "changed") == 0);
    TM_CHECK(get_str(st, cf, 2, "added", v, sizeof(v)) == 0);
    TM_CHECK(get_str(st, cf, 3, "after", v, sizeof(v)) == TM_ENOTFOUND);
    TM_CHECK_INT(count_iter(st, cf, 0, 127, NULL, NULL), 501);
    /* Writing to and compacting the restored store leaves the checkpoint as it was. */
    for (int i = 0; i < 500; i += 2) {
        char key[16];
        snprintf(key, sizeof(key), "key%04d", i);
        TM_CHECK(tm_store_delete(st, cf, i % 128, key, strlen(key), err, sizeof(err)) == 0);
    }
    TM_CHECK(tm_store_compact(st, err, sizeof(err)) == 0);
    tm_store_checkpoint_info_t i3;
    tst_path(p, sizeof(p), dir, "chk-3/worker-0");
    TM_REQUIRE(tm_store_checkpoint(st, p, &i3, err, sizeof(err)) == 0);
    tm_store_close(st);
    tst_path(p, sizeof(p), dir, "work-c");
    TM_REQUIRE(tm_store_open_from_checkpoint(chk2, p, &o, &st, err, sizeof(err)) == 0);
    cf = tm_store_cf_find(st, "op");
    TM_CHECK_INT(count_iter(st, cf, 0, 127, NULL, NULL), 501);
    tm_store_close(st);

    /* Restoring refuses a non-empty working directory and a non-checkpoint. */
    TM_CHECK(tm_store_open_from_checkpoint(chk2, work, &o, &st, err, sizeof(err)) == TM_EINVAL);
    TM_CHECK(strstr(err, "not empty") != NULL);
    tst_path(p, sizeof(p), dir, "nothing");
    TM_CHECK(tm_store_open_from_checkpoint(p, work, &o, &st, err, sizeof(err)) == TM_ENOTFOUND);

    /* Removal: checkpoints and working dirs yes, anything else no. */
    TM_CHECK(tm_store_remove_dir(chk1, err, sizeof(err)) == 0);
    struct stat sb;
    TM_CHECK(stat(chk1, &sb) != 0);
    TM_CHECK(tm_store_remove_dir(chk1, err, sizeof(err)) == 0);
    tst_path(p, sizeof(p), dir, "chk-1");
    mkdir(p, 0755);
    tst_path(p, sizeof(p), dir, "chk-1/notes.txt");
    FILE *f = fopen(p, "w");
    if (f != NULL)
        fclose(f);
    tst_path(p, sizeof(p), dir, "chk-1");
    TM_CHECK(tm_store_remove_dir(p, err, sizeof(err)) == TM_EINVAL);
    TM_CHECK(stat(p, &sb) == 0);
    tst_rmdir(dir);
}

static void test_memory_budget(void)
{
    char *dir = tst_tmpdir(), p[512];
    tm_store_mem_t *mem;
    TM_CHECK(tm_store_mem_new((size_t)20 << 20, 4, &mem, err, sizeof(err)) == TM_ECONFIG);
    TM_CHECK(strstr(err, "state_memory") != NULL && strstr(err, "4 workers") != NULL);
    TM_REQUIRE(tm_store_mem_new((size_t)64 << 20, 2, &mem, err, sizeof(err)) == 0);
    tm_store_opts_t o = tst_opts(0);
    o.mem = mem;
    tm_store_t *s1, *s2;
    TM_REQUIRE(tm_store_open(tst_path(p, sizeof(p), dir, "w0"), &o, &s1, err, sizeof(err)) == 0);
    TM_REQUIRE(tm_store_open(tst_path(p, sizeof(p), dir, "w1"), &o, &s2, err, sizeof(err)) == 0);
    /* The stores hold their own references: the budget outlives the caller's. */
    tm_store_mem_free(mem);
    tm_store_cf_t *cf;
    TM_REQUIRE(tm_store_cf(s1, "op", &cf, err, sizeof(err)) == 0);
    char val[1000];
    memset(val, 'v', sizeof(val));
    for (int i = 0; i < 2000; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        TM_REQUIRE(tm_store_put(s1, cf, i % 128, key, strlen(key), val, sizeof(val), err,
                                sizeof(err)) == 0);
    }
    tm_store_memory_t m;
    tm_store_memory_usage(s1, &m);
    TM_CHECK(m.limit == ((uint64_t)64 << 20));
    TM_CHECK(m.cache_capacity == ((uint64_t)32 << 20)); /* a quarter each to memtables and kvcaches */
    TM_CHECK(tm_store_operator_cache_bytes(s1) == ((size_t)8 << 20)); /* 2 stores */
    TM_CHECK(m.memtables > 2000 * 1000);
    TM_CHECK(m.memtables < m.limit / 4);
    tm_store_close(s1); /* flush: the data now lives in SSTs */
    TM_REQUIRE(tm_store_open(tst_path(p, sizeof(p), dir, "w0"), &o, &s1, err, sizeof(err)) == 0);
    cf = tm_store_cf_find(s1, "op");
    tm_buf_t v;
    tm_buf_init(&v);
    for (int i = 0; i < 2000; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        TM_CHECK(tm_store_get(s1, cf, i % 128, key, strlen(key), &v, err, sizeof(err)) == 0);
    }
    tm_buf_release(&v);
    tm_store_memory_usage(s1, &m);
    TM_CHECK(m.cache_usage > 0 && m.cache_usage <= m.cache_capacity);
    tm_store_memory_t m2;
    tm_store_memory_usage(s2, &m2);
    TM_CHECK(m2.cache_capacity == m.cache_capacity); /* one shared cache */
    tm_store_close(s1);
    tm_store_close(s2);

    /* Bad options name themselves. */
    tm_store_opts_t bad = tst_opts(-1);
    TM_CHECK(tm_store_open(tst_path(p, sizeof(p), dir, "w2"), &bad, &s1, err, sizeof(err)) ==
             TM_ECONFIG);
    TM_CHECK(strstr(err, "state_ttl") != NULL);
    bad = tst_opts(0);
    bad.max_parallelism = 40000;
    TM_CHECK(tm_store_open(tst_path(p, sizeof(p), dir, "w2"), &bad, &s1, err, sizeof(err)) ==
             TM_ECONFIG);
    TM_CHECK(strstr(err, "max_parallelism") != NULL);
    tst_rmdir(dir);
}

int main(void)
{
    TM_RUN(test_basic_ops_and_reopen);
    TM_RUN(test_batch_read_your_writes);
    TM_RUN(test_batch_unindexed);
    TM_RUN(test_iterate_and_delete_prefix);
    TM_RUN(test_iterate_reverse);
    TM_RUN(test_iterate_seek);
    TM_RUN(test_ttl_expiry);
    TM_RUN(test_checkpoint_restore);
    TM_RUN(test_memory_budget);
    return tm_test_done();
}
