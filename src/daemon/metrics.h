/*
 * metrics.h — the /metrics exposition: every metric tidemark exports, in one
 * table (DESIGN §9).
 *
 * Role: each family has a name, a type, a help text and a collector that
 * reads the running job (pipeline, coordinator) and writes its samples.
 * tm_metrics_render() writes the Prometheus text format 0.0.4 from the table;
 * tm_metrics_families() lists it, so a unit test can check that
 * docs/operations.md's "Metrics reference" documents exactly these names.
 *
 * Invariants:
 *   1. Every family appears once, in table order, with its HELP and TYPE
 *      lines, even when it has no sample yet (a job without operators).
 *   2. Label values are escaped as the format requires (\\, \", \n).
 *
 * Thread: the admin API's (the control loop); the collectors read only
 * atomics and locked snapshots of the other threads' state.
 */
#ifndef TM_DAEMON_METRICS_H
#define TM_DAEMON_METRICS_H

#include "core/buf.h"
#include "runtime/checkpoint.h"
#include "runtime/pipeline.h"

#include <stdint.h>

/* What the collectors read. */
typedef struct tm_metrics_src {
    tm_pipeline_t *pipeline;
    tm_coordinator_t *coord; /* NULL when checkpoints are off */
    int64_t started_wall_ms;
} tm_metrics_src_t;

typedef struct tm_metric_family {
    const char *name;
    const char *type; /* "counter", "gauge" or "histogram" */
    const char *help;
    void (*collect)(const tm_metrics_src_t *m, const struct tm_metric_family *f, tm_buf_t *out);
} tm_metric_family_t;

/* Appends every family's samples to `out`. */
void tm_metrics_render(const tm_metrics_src_t *m, tm_buf_t *out);

/* The table: *n families. */
const tm_metric_family_t *tm_metrics_families(int *n);

#endif
