/*
 * errcount.h — process-wide counts of the errors an operator can act on, by
 * kind: tidemark_errors_total{kind} in /metrics (DESIGN §9).
 *
 * Role: the code where an error happens calls tm_errors_count() once per
 * occurrence; the metrics table reads tm_errors_total().  The kinds are a
 * small fixed set, each with one meaning and one place (or a few) that
 * counts it, so a dashboard can say what went wrong and a runbook what to do:
 *
 *     source_connection  a source lost its server connection (PostgreSQL
 *                        replication, MySQL binlog); counted once per loss,
 *                        before the reconnect attempts
 *     sink_connection    a sink's target failed with a connection error and
 *                        the write is retried (PostgreSQL sink)
 *     row_expression     a row's expression failed (division by zero, a bad
 *                        cast), whatever on_error then does with the row
 *     decode             a source record could not be decoded (a malformed
 *                        Kafka/Debezium event), whatever on_error then does
 *     checkpoint_failed  a checkpoint failed or overran checkpoint_timeout
 *     dead_letter        a dead letter could not be written (the operator's
 *                        dead-letter file, a Kafka source's dead-letter topic)
 *
 * Invariants:
 *   1. Counters only grow, from 0 at process start (Prometheus counters).
 *   2. Every kind is exported, at 0 until it happens, so rate() and alerts
 *      work from the start.
 *
 * Thread: any; the counters are relaxed atomics.
 */
#ifndef TM_CORE_ERRCOUNT_H
#define TM_CORE_ERRCOUNT_H

#include <stdint.h>

typedef enum tm_errkind {
    TM_ERRKIND_SOURCE_CONNECTION,
    TM_ERRKIND_SINK_CONNECTION,
    TM_ERRKIND_ROW_EXPRESSION,
    TM_ERRKIND_DECODE,
    TM_ERRKIND_CHECKPOINT_FAILED,
    TM_ERRKIND_DEAD_LETTER,
    TM_ERRKIND_COUNT /* not a kind: how many there are */
} tm_errkind_t;

/* Counts one error of `kind`.  An out-of-range kind is ignored. */
void tm_errors_count(tm_errkind_t kind);

/* How many errors of `kind` were counted since the process started (0 for a bad kind). */
uint64_t tm_errors_total(tm_errkind_t kind);

/* The kind's label value ("source_connection", ...), or "unknown". */
const char *tm_errkind_name(tm_errkind_t kind);

#endif
