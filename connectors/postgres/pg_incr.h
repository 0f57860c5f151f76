/*
 * pg_incr.h — incremental snapshots of the PostgreSQL source: the control
 * API the daemon's admin endpoints call (POST/GET /v1/snapshots).
 *
 * Every postgres-cdc source that is streaming registers itself here; a
 * request is handed to the source that captures the tables it names and is
 * carried out on that source's thread (pg_incr.c).  These functions only
 * queue requests and read published status, so they never touch a source's
 * connections.
 *
 * Thread: any (the admin hooks call them on the control loop); they take a
 * process-wide mutex for microseconds, and tm_pg_incr_request() waits at most
 * TM_PG_INCR_ANSWER_MS for the source to check the request.
 */
#ifndef TM_PG_INCR_H
#define TM_PG_INCR_H

#include "core/buf.h"

#include <stdint.h>

/* How long a request waits for the source thread to validate it. */
#define TM_PG_INCR_ANSWER_MS 3000

/*
 * Starts an incremental snapshot of `tables` ("schema.table"; "table" means
 * public.table) with an optional row filter `where` (a boolean SQL
 * expression, NULL for none), on `source` (NULL: the one source that
 * captures the tables).  Returns the snapshot's id (> 0), or a negative
 * TM_E* with errstr filled:
 *   TM_EINVAL       the where clause is not one expression, or the source
 *                   rejected it or a table (no primary key, unknown column)
 *   TM_ENOTFOUND    no streaming postgres-cdc source captures a table
 *   TM_EUNSUPPORTED the server is older than PostgreSQL 14 (no messages)
 * A request the source has not answered within TM_PG_INCR_ANSWER_MS is
 * queued and still returns its id; its status says later if it failed.
 */
int64_t tm_pg_incr_request(const char *source, const char *const *tables, int ntables,
                           const char *where, char *errstr, size_t errstr_size);

/*
 * "pause", "resume" or "cancel" the incremental snapshots of `source` (NULL:
 * every source).  Returns the number of sources told, or TM_ENOTFOUND /
 * TM_EINVAL with errstr filled.
 */
int tm_pg_incr_control(const char *source, const char *op, char *errstr, size_t errstr_size);

/*
 * Appends {"snapshots":[...]} with every registered source's snapshots
 * (running, queued and the last finished ones): id, source, state, where,
 * tables with rows, chunks, estimate and percent.
 */
void tm_pg_incr_status(tm_buf_t *out);

/* True if some streaming postgres-cdc source is registered. */
int tm_pg_incr_sources(void);

#endif
