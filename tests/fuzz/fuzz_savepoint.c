/*
 * fuzz_savepoint.c — libFuzzer target for the savepoint reader
 * (src/state/savepoint.c: header, footer, index and section verification).
 *
 * Role: every part of a savepoint carries a CRC-32C, so random bytes would
 * stop at the first checksum.  When the first input byte is odd the harness
 * therefore *repairs* the checksums (header, footer, index, then every
 * section the index describes) before the reader sees the file, which lets
 * mutations reach the length and bounds checks behind them; when it is even
 * the file is read as is.  The file goes to a private temporary directory
 * (under /dev/shm when it exists) because the reader takes a path.
 *
 * Invariants: no crash, leak or undefined behaviour on any input; the
 * reader returns 0 or a negative TM_E* code with a message.
 *
 * Run (tests/fuzz/meson.build): build-fuzz/tests/fuzz/fuzz-savepoint tests/fuzz/savepoint
 *
 * Thread: libFuzzer calls the target from one thread.
 */
#include "core/hash.h"
#include "state/savepoint.h"
#include "fuzz_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* Offsets of savepoint.c's format (docs/state.md). */
#define HDR_FIXED 20
#define SEC_HEAD 10
#define FOOTER 24
#define IDX_ENTRY 30

static uint64_t rd(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Recomputes the CRC over [start, start + n) and stores it at start + n, if it fits. */
static void fix(uint8_t *b, size_t size, uint64_t start, uint64_t n)
{
    if (start > size || n > size - start || size - start - n < 4)
        return;
    wr32(b + start + n, tm_crc32c(b + start, (size_t)n));
}

static void repair(uint8_t *b, size_t size)
{
    if (size < HDR_FIXED + 4 + FOOTER)
        return;
    uint64_t jlen = rd(b + 18, 2);
    fix(b, size, 0, HDR_FIXED + jlen);
    uint8_t *f = b + size - FOOTER;
    fix(b, size, size - FOOTER, 16);
    uint64_t off = rd(f, 8), len = rd(f + 8, 8);
    if (off > size || len < 16 || len > size - off)
        return;
    uint8_t *ix = b + off;
    /* Sections first (the index CRC does not cover them), then the index. */
    uint64_t nops = rd(ix + 4, 4), p = 8;
    for (uint64_t i = 0; i < nops && p + 2 <= len; i++)
        p += 2 + rd(ix + p, 2);
    if (p + 4 <= len) {
        uint64_t nsecs = rd(ix + p, 4);
        p += 4;
        for (uint64_t i = 0; i < nsecs && p + IDX_ENTRY <= len - 4; i++, p += IDX_ENTRY) {
            uint64_t soff = rd(ix + p + 6, 8), bytes = rd(ix + p + 22, 8);
            if (bytes < size)
                fix(b, size, soff, SEC_HEAD + bytes + 16);
        }
    }
    fix(b, size, off, len - 4);
}

static const char *tmp_path(void)
{
    static char path[256];
    if (path[0] == '\0')
        snprintf(path, sizeof(path), "%s/sp", fuzz_tmp_dir("sp"));
    return path;
}

static void count(void *arg, const tm_savepoint_desc_t *desc)
{
    (void)desc;
    (*(int *)arg)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t *b = malloc(size);
    if (b == NULL)
        return 0;
    memcpy(b, data + 1, size - 1);
    size--;
    if (data[0] & 1)
        repair(b, size);
    const char *path = tmp_path();
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        abort();
    if (size > 0 && fwrite(b, 1, size, f) != size)
        abort();
    fclose(f);
    free(b);
    char err[512];
    int n = 0;
    int rc = tm_savepoint_describe(path, count, &n, err, sizeof(err));
    if (rc == 0 && n == 0)
        abort(); /* a savepoint that verifies always reports its header */
    if (rc != 0 && err[0] == '\0')
        abort(); /* every failure says why */
    return 0;
}
