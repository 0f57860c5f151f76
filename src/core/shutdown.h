/*
 * shutdown.h — one process-wide "a stop was requested" flag.
 *
 * The daemon's SIGTERM/SIGINT handler sets it (async-signal-safe) from the
 * moment `tidemark run` starts, before the event loop exists.  Code that can
 * block for long while the job starts (waiting for unreachable brokers,
 * retrying init_transactions) checks it and gives up with TM_ESTOPPED, so a
 * stop during start-up is prompt and graceful: nothing has been read, so
 * nothing is lost, and the exit status is 0.
 *
 * Once the job runs, stopping goes through the pipeline instead (a final
 * checkpoint); code on that path must not treat the flag as an error.
 *
 * Thread: any.
 */
#ifndef TM_CORE_SHUTDOWN_H
#define TM_CORE_SHUTDOWN_H

#include <stdbool.h>

/* Sets the flag; safe in a signal handler. */
void tm_shutdown_request(void);
/* True once tm_shutdown_request was called. */
bool tm_shutdown_requested(void);

/*
 * A graceful stop of a running job has begun (the daemon's begin_stop):
 * sources will end because of the stop, not because their input ended, so
 * operators that fire on end of input (window aggregation) must not: their
 * state is in the final checkpoint and fires after a restart.  Unlike
 * tm_shutdown_request(), connectors do not look at it.
 */
void tm_shutdown_stopping(void);
bool tm_shutdown_is_stopping(void);

#endif /* TM_CORE_SHUTDOWN_H */
