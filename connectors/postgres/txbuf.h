/*
 * txbuf.h — spill files for streamed (in-progress) transactions.
 *
 * With protocol 2 and `streaming 'on'`, the server sends a large transaction
 * before it commits, in Stream Start/Stop blocks that may interleave with
 * other transactions.  Its rows must not reach the changelog before the
 * Stream Commit, and must not be held in memory either, so each streamed
 * top-level transaction is appended to its own file
 *
 *     <dir>/<xid>.spill
 *
 * as a sequence of records
 *
 *     u32 length | u32 subxid | u64 lsn | length bytes of pgoutput message
 *
 * (big-endian).  On Stream Commit the file is replayed in order, skipping the
 * records of subtransactions that were aborted; on Stream Abort of the
 * top-level xid the file is deleted.
 *
 * Invariants:
 *   1. At most one spill file is open for writing at a time (the one of the
 *      current stream block); blocks of other transactions reopen theirs in
 *      append mode.
 *   2. Spill files never outlive the replication connection that produced
 *      them: the server re-sends in-progress transactions after a reconnect,
 *      so tm_pg_txbuf_reset() deletes them all, as does tm_pg_txbuf_new().
 *   3. Memory is bounded by the number of open transactions and aborted
 *      subtransaction ids, never by transaction size.
 *
 * Thread: one txbuf belongs to the source thread.
 */
#ifndef TM_PG_TXBUF_H
#define TM_PG_TXBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tm_pg_txbuf tm_pg_txbuf_t;
typedef struct tm_pg_txreplay tm_pg_txreplay_t;

/* Creates the directory if needed and deletes stale *.spill files in it. */
int tm_pg_txbuf_new(tm_pg_txbuf_t **out, const char *dir, char *errstr, size_t errstr_size);
tm_pg_txbuf_t *tm_pg_txbuf_free(tm_pg_txbuf_t *tb);
/* Forgets every transaction and deletes every spill file. */
int tm_pg_txbuf_reset(tm_pg_txbuf_t *tb, char *errstr, size_t errstr_size);

/* Opens (or reopens) the file of top-level xid for a stream block. */
int tm_pg_txbuf_block_start(tm_pg_txbuf_t *tb, uint32_t xid, char *errstr, size_t errstr_size);
/* Closes the current block's file (flushing it). */
int tm_pg_txbuf_block_stop(tm_pg_txbuf_t *tb, char *errstr, size_t errstr_size);
/* Appends one message of the current block, tagged with the (sub)transaction xid. */
int tm_pg_txbuf_append(tm_pg_txbuf_t *tb, uint32_t subxid, uint64_t lsn, const uint8_t *msg,
                       size_t len, char *errstr, size_t errstr_size);
/* Stream Abort: subxid == xid discards the whole transaction, else one subtransaction. */
int tm_pg_txbuf_abort(tm_pg_txbuf_t *tb, uint32_t xid, uint32_t subxid, char *errstr,
                      size_t errstr_size);
/* True while xid has spilled data. */
bool tm_pg_txbuf_has(const tm_pg_txbuf_t *tb, uint32_t xid);
/* Number of streamed transactions not yet committed or aborted. */
size_t tm_pg_txbuf_count(const tm_pg_txbuf_t *tb);
/* Number of bytes spilled for xid so far (0 if unknown). */
uint64_t tm_pg_txbuf_size(const tm_pg_txbuf_t *tb, uint32_t xid);

/*
 * Starts replaying xid after its Stream Commit.  The transaction is removed
 * from the txbuf; the replay owns the file and deletes it when freed.  A
 * transaction that spilled nothing yields an empty replay.
 */
int tm_pg_txbuf_replay(tm_pg_txbuf_t *tb, uint32_t xid, tm_pg_txreplay_t **out, char *errstr,
                       size_t errstr_size);
/*
 * Reads the next record of a live subtransaction.  Returns 1 and sets the
 * outputs (msg valid until the next call), 0 at the end, or a negative TM_E*
 * code (TM_ECORRUPT for a damaged file).  Records of aborted subtransactions
 * are skipped, except Relation and Type messages: they describe the catalog,
 * and the server does not send them again for the rest of the transaction.
 */
int tm_pg_txreplay_next(tm_pg_txreplay_t *rp, uint32_t *subxid, uint64_t *lsn,
                        const uint8_t **msg, size_t *len, char *errstr, size_t errstr_size);
/* Closes and deletes the file.  Accepts NULL.  Returns NULL. */
tm_pg_txreplay_t *tm_pg_txreplay_free(tm_pg_txreplay_t *rp);

#endif
