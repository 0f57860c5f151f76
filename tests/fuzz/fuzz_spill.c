/*
 * fuzz_spill.c — libFuzzer target for the reader of spill files, the
 * on-disk buffers of streamed PostgreSQL transactions
 * (connectors/postgres/txbuf.c, format in txbuf.h).
 *
 * Role: a txbuf in a private temporary directory (under /dev/shm when it
 * exists) spills one real record for transaction 7, aborts subtransaction 9
 * (so the replay must skip its records), and then the spill file is replaced
 * by the fuzz input before the Stream Commit replay reads it to the end.
 *
 * Invariants: no crash, leak or undefined behaviour on any input; the replay
 * ends (0), or fails with TM_ECORRUPT and a message; a record it returns lies
 * inside the file; a record of subtransaction 9 comes back only if it is a
 * catalog message (Relation 'R' or Type 'Y').
 *
 * Run (tests/fuzz/meson.build): build-fuzz/tests/fuzz/fuzz-spill tests/fuzz/spill
 *
 * Thread: libFuzzer calls the target from one thread.
 */
#include "core/error.h"
#include "postgres/txbuf.h"
#include "fuzz_util.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512] = "", path[128];
    tm_pg_txbuf_t *tb = NULL;
    const char *dir = fuzz_tmp_dir("spill");
    if (tm_pg_txbuf_new(&tb, dir, err, sizeof(err)) != 0)
        abort();
    static const uint8_t msg[] = {'I', 0, 0, 0, 1, 'N', 0, 1, 't', 0, 0, 0, 1, '1'};
    if (tm_pg_txbuf_block_start(tb, 7, err, sizeof(err)) != 0 ||
        tm_pg_txbuf_append(tb, 7, 100, msg, sizeof(msg), err, sizeof(err)) != 0 ||
        tm_pg_txbuf_block_stop(tb, err, sizeof(err)) != 0 ||
        tm_pg_txbuf_abort(tb, 7, 9, err, sizeof(err)) != 0)
        abort();
    snprintf(path, sizeof(path), "%s/7.spill", dir);
    fuzz_write_file(path, data, size);
    tm_pg_txreplay_t *rp = NULL;
    if (tm_pg_txbuf_replay(tb, 7, &rp, err, sizeof(err)) != 0)
        abort();
    int rc;
    uint32_t subxid;
    uint64_t lsn;
    const uint8_t *m;
    size_t len, total = 0;
    while ((rc = tm_pg_txreplay_next(rp, &subxid, &lsn, &m, &len, err, sizeof(err))) == 1) {
        total += 16 + len;
        if (total > size)
            abort(); /* a record from outside the file */
        if (subxid == 9 && !(len > 0 && (m[0] == 'R' || m[0] == 'Y')))
            abort(); /* an aborted subtransaction's row */
    }
    if (rc != 0 && (rc != TM_ECORRUPT || err[0] == '\0'))
        abort();
    tm_pg_txreplay_free(rp);
    tm_pg_txbuf_free(tb);
    return 0;
}
