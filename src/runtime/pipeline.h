/*
 * pipeline.h — the data plane: source threads, sink threads, the queues
 * between them, and the acknowledgement seam.
 *
 *     source thread ──emit──► queue ──► sink thread ──write/flush──► target
 *          ▲                                   │
 *          └────── acked token (atomic) ◄──────┘  (after sink_flush)
 *
 * Acknowledgement policy.  Under TM_ACK_SINK_DURABLE (the only policy until
 * checkpoints exist) a source's acked token is the minimum, over the sinks it
 * feeds, of the highest ack_token each has made durable with sink_flush().
 * The checkpoint coordinator will replace this with TM_ACK_CHECKPOINT, where
 * the acked token only moves when a checkpoint completes; sources do not
 * change, they only read tm_source_acked().
 *
 * Invariants:
 *   1. A token is published as acked only after sink_flush() returned 0 for
 *      every sink that received the batches carrying it.
 *   2. A failing sink keeps draining its queue (without writing) so sources
 *      never block forever on a dead consumer; the job stops with its error.
 *   3. The first error wins; the process exit code is derived from it.
 *
 * Thread: tm_pipeline_* are called from the main (control) thread.
 */
#ifndef TM_RUNTIME_PIPELINE_H
#define TM_RUNTIME_PIPELINE_H

#include "runtime/connector.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct tm_pipeline tm_pipeline_t;

typedef enum {
    TM_ACK_SINK_DURABLE = 0,
    TM_ACK_CHECKPOINT,
} tm_ack_policy_t;

tm_pipeline_t *tm_pipeline_new(void);
tm_pipeline_t *tm_pipeline_free(tm_pipeline_t *p);

/* Adds an opened source/sink; the pipeline takes ownership.  Returns its index. */
int tm_pipeline_add_source(tm_pipeline_t *p, const tm_connector_t *conn, tm_source_t *src,
                           const char *name);
int tm_pipeline_add_sink(tm_pipeline_t *p, const tm_connector_t *conn, tm_sink_t *sink,
                         const char *name);
/* Routes every batch of source `src_idx` to sink `sink_idx`. */
int tm_pipeline_connect(tm_pipeline_t *p, int src_idx, int sink_idx);
/* How often a sink makes its writes durable (and so acknowledgeable). */
void tm_pipeline_set_flush_interval(tm_pipeline_t *p, int ms);

int tm_pipeline_start(tm_pipeline_t *p, char *errstr, size_t errstr_size);
/* Asks sources to stop; sinks drain and flush.  Safe from any thread. */
void tm_pipeline_request_stop(tm_pipeline_t *p);
/* True once every thread has finished. */
bool tm_pipeline_done(tm_pipeline_t *p);
/* Joins all threads; returns the first error (0 if none) and its message. */
int tm_pipeline_join(tm_pipeline_t *p, char *errstr, size_t errstr_size);

#endif
