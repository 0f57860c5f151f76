/*
 * hash.c — xxHash64 and CRC32C (see hash.h).
 *
 * Invariants:
 *   1. Inputs are read with explicit little-endian loads, never by casting
 *      the pointer, so the results are the same on every host.
 *   2. The CRC tables are complete before any thread reads them (table 0
 *      is a constant, the others are built under pthread_once).
 */
#include "core/hash.h"

#include <pthread.h>

#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL
#define P4 0x85EBCA77C2B2AE63ULL
#define P5 0x27D4EB2F165667C5ULL

static inline uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t le64(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

static inline uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t xxh_round(uint64_t acc, uint64_t input)
{
    acc += input * P2;
    acc = rotl64(acc, 31);
    return acc * P1;
}

static inline uint64_t xxh_merge(uint64_t acc, uint64_t val)
{
    acc ^= xxh_round(0, val);
    return acc * P1 + P4;
}

uint64_t tm_xxh64(const void *data, size_t len, uint64_t seed)
{
    const uint8_t *p = data;
    const uint8_t *end = p + len;
    uint64_t h;

    if (len >= 32) {
        uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
        const uint8_t *limit = end - 32;
        do {
            v1 = xxh_round(v1, le64(p));
            v2 = xxh_round(v2, le64(p + 8));
            v3 = xxh_round(v3, le64(p + 16));
            v4 = xxh_round(v4, le64(p + 24));
            p += 32;
        } while (p <= limit);
        h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
        h = xxh_merge(h, v1);
        h = xxh_merge(h, v2);
        h = xxh_merge(h, v3);
        h = xxh_merge(h, v4);
    } else {
        h = seed + P5;
    }
    h += (uint64_t)len;
    while (end - p >= 8) {
        h ^= xxh_round(0, le64(p));
        h = rotl64(h, 27) * P1 + P4;
        p += 8;
    }
    if (end - p >= 4) {
        h ^= (uint64_t)le32(p) * P1;
        h = rotl64(h, 23) * P2 + P3;
        p += 4;
    }
    while (p < end) {
        h ^= (uint64_t)(*p++) * P5;
        h = rotl64(h, 11) * P1;
    }
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

/*
 * Slicing-by-8 tables for the reflected Castagnoli polynomial.  Table 0 is a
 * compile-time constant; table k (1..7) maps a byte to its contribution k
 * bytes further on and is derived from table 0 once, under pthread_once, so
 * no thread ever reads a half-built table.
 */
#define CRC_POLY 0x82F63B78u
#define C1(c) (((c) >> 1) ^ ((0u - ((c) & 1u)) & CRC_POLY))
#define C8(c) C1(C1(C1(C1(C1(C1(C1(C1(c))))))))
#define R2(n) C8(n), C8(n + 1)
#define R4(n) R2(n), R2(n + 2)
#define R8(n) R4(n), R4(n + 4)
#define R16(n) R8(n), R8(n + 8)
#define R32(n) R16(n), R16(n + 16)
#define R64(n) R32(n), R32(n + 32)
#define R128(n) R64(n), R64(n + 64)
#define R256(n) R128(n), R128(n + 128)

static const uint32_t crc_t0[256] = {R256(0u)};
static uint32_t crc_tk[7][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_tables_build(void)
{
    for (int i = 0; i < 256; i++) {
        uint32_t c = crc_t0[i];
        for (int k = 0; k < 7; k++) {
            c = (c >> 8) ^ crc_t0[c & 0xff];
            crc_tk[k][i] = c;
        }
    }
}

uint32_t tm_crc32c_update(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;
    uint32_t c = ~crc;
    pthread_once(&crc_once, crc_tables_build);
    while (len >= 8) {
        uint32_t lo = c ^ le32(p);
        uint32_t hi = le32(p + 4);
        c = crc_tk[6][lo & 0xff] ^ crc_tk[5][(lo >> 8) & 0xff] ^ crc_tk[4][(lo >> 16) & 0xff] ^
            crc_tk[3][lo >> 24] ^ crc_tk[2][hi & 0xff] ^ crc_tk[1][(hi >> 8) & 0xff] ^
            crc_tk[0][(hi >> 16) & 0xff] ^ crc_t0[hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len-- > 0)
        c = (c >> 8) ^ crc_t0[(c ^ *p++) & 0xff];
    return ~c;
}
