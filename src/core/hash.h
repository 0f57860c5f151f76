/*
 * hash.h — the two checksums the state layer depends on: xxHash64 for key
 * groups and CRC32C for savepoint sections.
 *
 * Both are written here rather than taken from a library because their exact
 * output is part of tidemark's on-disk contract: a key's key group decides
 * which worker owns it and where it sits in a savepoint, so the hash must
 * give the same value on every platform and in every future release.  Both
 * read their input byte by byte in a fixed (little-endian) order, so the
 * result never depends on the host's endianness or alignment.
 *
 *   tm_xxh64    XXH64 exactly as specified by Yann Collet's xxHash
 *               (https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md).
 *   tm_crc32c   CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the
 *               checksum of iSCSI, ext4 and RocksDB; slicing-by-8 tables.
 *
 * Thread: any; no state besides constant tables.
 */
#ifndef TM_CORE_HASH_H
#define TM_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

/* XXH64 of p[0..len) with `seed`. */
uint64_t tm_xxh64(const void *p, size_t len, uint64_t seed);

/*
 * Extends a CRC32C: tm_crc32c_update(0, p, n) is the CRC of p, and
 * tm_crc32c_update(tm_crc32c_update(0, a, na), b, nb) the CRC of a ‖ b.
 */
uint32_t tm_crc32c_update(uint32_t crc, const void *p, size_t len);

static inline uint32_t tm_crc32c(const void *p, size_t len)
{
    return tm_crc32c_update(0, p, len);
}

#endif
