/* Unit tests: xxHash64, CRC32C and key-group assignment. */
#include "core/error.h"
#include "core/hash.h"
#include "state/keygroup.h"
#include "tm_test.h"

static void test_xxh64_vectors(void)
{
    /* Reference values from the xxHash library (XXH64, seeds 0 and 42). */
    static const struct {
        const char *in;
        size_t len;
        uint64_t seed0, seed42;
    } v[] = {
        {"", 0, 0xef46db3751d8e999ULL, 0x98b1582b0977e704ULL},
        {"a", 1, 0xd24ec4f1a98c6e5bULL, 0x88e4fe59adf7b0ccULL},
        {"abc", 3, 0x44bc2cf5ad770999ULL, 0x13c1d910702770e6ULL},
        {"0123456789abcdef0123456789abcdefXYZ", 35, 0x654f6a2b39e4d8c1ULL, 0x05f4001354091db1ULL},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        TM_CHECK(tm_xxh64(v[i].in, v[i].len, 0) == v[i].seed0);
        TM_CHECK(tm_xxh64(v[i].in, v[i].len, 42) == v[i].seed42);
    }
    uint8_t seq[100];
    for (int i = 0; i < 100; i++)
        seq[i] = (uint8_t)i;
    TM_CHECK(tm_xxh64(seq, sizeof(seq), 0) == 0x6ac1e58032166597ULL);
    TM_CHECK(tm_xxh64(seq, sizeof(seq), 42) == 0x819d2b726001d507ULL);
}

/* Bit-at-a-time CRC32C, the definition the table-driven one must match. */
static uint32_t crc_ref(const uint8_t *p, size_t n)
{
    uint32_t c = ~0u;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
    }
    return ~c;
}

static void test_crc32c(void)
{
    TM_CHECK(tm_crc32c("123456789", 9) == 0xE3069283u);
    uint8_t zeros[32] = {0}, ones[32];
    memset(ones, 0xff, sizeof(ones));
    TM_CHECK(tm_crc32c(zeros, 32) == 0x8A9136AAu); /* RFC 3720 B.4 */
    TM_CHECK(tm_crc32c(ones, 32) == 0x62A8AB43u);
    uint8_t buf[300];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    /* Every length and offset exercises both the 8-byte and the byte loop. */
    for (size_t off = 0; off < 9; off++)
        for (size_t n = 0; n + off <= sizeof(buf); n += 13)
            TM_CHECK(tm_crc32c(buf + off, n) == crc_ref(buf + off, n));
    uint32_t inc = tm_crc32c_update(tm_crc32c_update(0, buf, 101), buf + 101, 199);
    TM_CHECK(inc == tm_crc32c(buf, 300));
}

static void test_keygroup_of(void)
{
    /* The key group is part of the on-disk contract: pin one. */
    TM_CHECK_INT(tm_keygroup_of("abc", 3, 128), 0x44bc2cf5ad770999ULL % 128);
    TM_CHECK_INT(tm_keygroup_of("abc", 3, 1000), (int)(0x44bc2cf5ad770999ULL % 1000));
    TM_CHECK_INT(tm_keygroup_of("abc", 3, 0), TM_EINVAL);
    TM_CHECK_INT(tm_keygroup_of("abc", 3, TM_MAX_PARALLELISM_LIMIT + 1), TM_EINVAL);
    /* Keys spread: 10000 keys over 128 groups leave no group empty. */
    int hits[128] = {0};
    for (int i = 0; i < 10000; i++) {
        char k[16];
        int n = snprintf(k, sizeof(k), "key-%d", i);
        int kg = tm_keygroup_of(k, (size_t)n, 128);
        TM_REQUIRE(kg >= 0 && kg < 128);
        hits[kg]++;
    }
    for (int i = 0; i < 128; i++)
        TM_CHECK(hits[i] > 30 && hits[i] < 130);
}

static void test_keygroup_ranges(void)
{
    int first, last;
    /* Flink's KeyGroupRangeAssignment for maxParallelism 128, parallelism 3. */
    TM_REQUIRE(tm_keygroup_range(0, 3, 128, &first, &last) == 0);
    TM_CHECK(first == 0 && last == 42);
    TM_REQUIRE(tm_keygroup_range(1, 3, 128, &first, &last) == 0);
    TM_CHECK(first == 43 && last == 85);
    TM_REQUIRE(tm_keygroup_range(2, 3, 128, &first, &last) == 0);
    TM_CHECK(first == 86 && last == 127);
    /* Ranges tile [0, maxp) and agree with tm_keygroup_worker, for many shapes. */
    const int maxps[] = {1, 2, 7, 128, 1000, TM_MAX_PARALLELISM_LIMIT};
    for (size_t m = 0; m < sizeof(maxps) / sizeof(maxps[0]); m++) {
        int maxp = maxps[m];
        for (int n = 1; n <= maxp && n <= 17; n++) {
            int next = 0;
            for (int w = 0; w < n; w++) {
                TM_REQUIRE(tm_keygroup_range(w, n, maxp, &first, &last) == 0);
                TM_CHECK_INT(first, next);
                TM_CHECK(last >= first);
                TM_CHECK_INT(tm_keygroup_worker(first, n, maxp), w);
                TM_CHECK_INT(tm_keygroup_worker(last, n, maxp), w);
                next = last + 1;
            }
            TM_CHECK_INT(next, maxp);
        }
    }
    TM_CHECK(tm_keygroup_range(0, 129, 128, &first, &last) == TM_EINVAL);
    TM_CHECK(tm_keygroup_range(3, 3, 128, &first, &last) == TM_EINVAL);
    TM_CHECK(tm_keygroup_worker(128, 3, 128) == TM_EINVAL);
    char err[256];
    TM_CHECK(tm_keygroup_check(0, 0, err, sizeof(err)) == TM_ECONFIG);
    TM_CHECK(strstr(err, "max_parallelism = 0") != NULL);
    TM_CHECK(tm_keygroup_check(128, 200, err, sizeof(err)) == TM_ECONFIG);
    TM_CHECK(strstr(err, "200 workers") != NULL);
    TM_CHECK(tm_keygroup_check(128, 128, err, sizeof(err)) == 0);
}

int main(void)
{
    TM_RUN(test_xxh64_vectors);
    TM_RUN(test_crc32c);
    TM_RUN(test_keygroup_of);
    TM_RUN(test_keygroup_ranges);
    return tm_test_done();
}
