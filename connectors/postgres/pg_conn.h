/*
 * pg_conn.h — PostgreSQL connections and retries shared by the source, the
 * sink and the lookup side of the postgres connectors.
 *
 * Every connection tidemark opens carries TM_PG_SESSION_OPTIONS (ISO dates,
 * UTC, hex bytea, ...) so that text values read and written are in one known
 * format, and application_name = 'tidemark' unless the DSN names one.
 *
 * Retries: a tm_pgc_backoff_t counts attempts and sleeps 0.5 s, 1 s, 2 s, ...
 * up to 30 s between them, within a total budget; tm_pgc_retriable() says
 * which failures are worth retrying (a lost connection, a server starting or
 * shutting down, serialization failures), as opposed to errors in the data
 * or the configuration, which retrying cannot fix.
 *
 * Thread: any; a PGconn belongs to one thread at a time.
 */
#ifndef TM_PG_PG_CONN_H
#define TM_PG_PG_CONN_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Connects with `dsn` plus the session options (and replication=database when
 * `replication`).  `masked` is the DSN as it may be shown (tm_dsn_mask) and
 * `what` a few words for messages ("replication connection"), or "".  On
 * failure returns TM_ECONFIG (a malformed DSN), TM_ESOURCE (authentication,
 * unknown database: retrying cannot help) or TM_ECONN (the server cannot be
 * reached: retriable), with libpq's message and what to do.
 */
int tm_pgc_connect(const char *dsn, const char *masked, bool replication, const char *what,
                   PGconn **out, char *errstr, size_t errstr_size);

/* True if the connection is gone (or unusable) and must be reopened. */
bool tm_pgc_broken(PGconn *conn);

/*
 * True if an error with this SQLSTATE (NULL when libpq had no result: a lost
 * connection) is transient: connection failures (08xxx), the server shutting
 * down or starting (57P01-57P03), serialization failures and deadlocks (40001,
 * 40P01), too many connections (53300).
 */
bool tm_pgc_retriable(const char *sqlstate);

typedef struct tm_pgc_backoff {
    int64_t started_ms; /* monotonic time of the first failure */
    int64_t budget_ms;  /* give up once this much time has passed; <= 0: never retry */
    int64_t next_ms;    /* the next sleep */
    int attempts;
} tm_pgc_backoff_t;

void tm_pgc_backoff_init(tm_pgc_backoff_t *b, int64_t budget_ms);
/*
 * Sleeps before the next attempt and returns true, or returns false when the
 * budget is spent or shutdown was requested (core/shutdown.h): the caller
 * then fails with its last error.
 */
bool tm_pgc_backoff_wait(tm_pgc_backoff_t *b);

#endif
