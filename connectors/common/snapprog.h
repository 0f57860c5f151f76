/*
 * snapprog.h — how a source's snapshot shows its progress to a person: a
 * `snapshot progress` log line, and on a terminal a live progress line.
 *
 * Role: the PostgreSQL and MySQL snapshots read tables in chunks and report
 * the same way (docs/connectors/postgres.md, "Snapshot progress"); the
 * metrics go through tm_source_snapshot_progress() (runtime/connector.h),
 * this is the text.
 *
 *   snapshot shop public.orders [#########           ] 46% 1,234,567 of ~2,700,000 rows, 412,000 rows/s, ~4 s left
 *
 * The total is the database's estimate: "~", and no bar, percentage or time
 * left when there is none (estimate <= 0).
 *
 * Thread: the source's.
 */
#ifndef TM_CONNECTORS_SNAPPROG_H
#define TM_CONNECTORS_SNAPPROG_H

#include <stdbool.h>
#include <stdint.h>

/* One table of a snapshot. */
typedef struct tm_snapprog {
    const char *comp;   /* the log component (TM_PG_COMP, TM_MY_COMP) */
    const char *source; /* the source's name in the job */
    const char *ns;     /* schema or database */
    const char *table;
    double estimate;  /* rows the database expects, <= 0 unknown */
    int64_t start_us; /* when reading the table began (tm_mono_us) */
} tm_snapprog_t;

/* The `snapshot progress` log line: rows read, percent, rate, the snapshot's total so far. */
void tm_snapprog_log(const tm_snapprog_t *p, uint64_t rows, uint64_t total, bool done);
/* Redraws the terminal's progress line (core/log.h: tm_log_progress). */
void tm_snapprog_line(const tm_snapprog_t *p, uint64_t rows);

#endif
