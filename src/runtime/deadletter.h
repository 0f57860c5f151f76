/*
 * deadletter.h — the dead-letter output of one operator instance (SET
 * on_error = 'dead-letter', operator.h): every row the instance rejects is
 * appended as one JSON line to
 *
 *     <dir>/<operator uid, '/' replaced by '_'>-<subtask>.jsonl
 *
 * with the fields ts_ms (when it was rejected, wall clock), job, operator
 * (the uid), subtask, reason (the error message), op (c/u/d/r/t/m), before
 * and after (the row images as JSON objects by column name, absent images
 * as null) and source ("<schema>.<table>", or the source's job-level name,
 * when the record's schema says).  Values: booleans, integers and finite
 * floats as JSON numbers; NUMERIC as its exact decimal text (a string, scale
 * kept); dates, times and timestamps as ISO 8601 text (with a Z when the
 * type has a zone); intervals as microseconds; json and arrays as parsed
 * JSON; bytea as PostgreSQL's hex text ("\\x0aff"); everything else as text.
 *
 * Invariants:
 *   1. One writer per operator instance, used by that instance's subtask
 *      thread only: no locking.  The file is opened (append, created with
 *      its directory) at the first rejected row, so a job without row
 *      errors leaves no files.
 *   2. Lines are buffered (stdio); tm_dead_letter_flush() writes them and
 *      fdatasyncs the file.  The runtime flushes at every aligned barrier
 *      before the subtask's snapshot, and at the end, so the dead letters
 *      of the input a checkpoint covers are durable when it completes.
 *   3. Delivery is at-least-once: after a crash the job replays from the
 *      last completed checkpoint, and rows rejected after it are appended
 *      again.  A line is never torn across a flush (a crash may leave a
 *      torn last line, which readers must skip).
 *   4. The first I/O error is sticky: later writes do nothing, and every
 *      call that reports errors returns TM_EIO with a message naming the
 *      file, so the job fails (the runtime checks after each batch).
 *
 * Thread: the owning subtask's, except tm_dead_letter_count (any).
 */
#ifndef TM_RUNTIME_DEADLETTER_H
#define TM_RUNTIME_DEADLETTER_H

#include "core/row.h"

#include <jansson.h>

#include <stddef.h>
#include <stdint.h>

typedef struct tm_dead_letter tm_dead_letter_t;

/*
 * A writer for instance (`uid`, `subtask`) of job `job` into directory `dir`
 * (all copied).  Nothing is opened yet (invariant 1).  NULL when out of
 * memory.
 */
tm_dead_letter_t *tm_dead_letter_new(const char *dir, const char *job, const char *uid,
                                     int subtask);
/* Flushes (ignoring errors: call tm_dead_letter_flush first) and closes.  Accepts NULL. */
tm_dead_letter_t *tm_dead_letter_free(tm_dead_letter_t *dl);

/*
 * The file name of instance (`uid`, `subtask`), without the directory:
 * "calc_out_1-0.jsonl".  Returns what snprintf returns.
 */
int tm_dead_letter_file_name(char *buf, size_t n, const char *uid, int subtask);
/* The full path this writer appends to. */
const char *tm_dead_letter_path(const tm_dead_letter_t *dl);

/*
 * Appends one rejected record with its reason; ts_ms is the rejection time
 * (ms since the epoch).  Returns 0, or TM_EIO / TM_ENOMEM (sticky,
 * invariant 4; tm_dead_letter_error says why).
 */
int tm_dead_letter_write(tm_dead_letter_t *dl, const tm_record_t *rec, const char *reason,
                         int64_t ts_ms);
/*
 * The same for a row that is no longer a tm_record_t (a sink's encoded row):
 * before and after are JSON objects by column name (or NULL), whose
 * references the call takes; source names the table, or NULL.
 */
int tm_dead_letter_write_json(tm_dead_letter_t *dl, char op, json_t *before, json_t *after,
                              const char *source, const char *reason, int64_t ts_ms);
/* The same, with the current time; the signature of tm_operator_ctx_t.dead_letter. */
void tm_dead_letter_callback(void *arg, const char *uid, const tm_record_t *rec,
                             const char *reason);
/*
 * Writes the buffered lines and makes them durable (fflush + fdatasync) if
 * any were written since the last flush.  0, or the sticky error with
 * errstr naming the file.
 */
int tm_dead_letter_flush(tm_dead_letter_t *dl, char *errstr, size_t errstr_size);
/* The sticky error (0 if none), with its message in errstr. */
int tm_dead_letter_error(const tm_dead_letter_t *dl, char *errstr, size_t errstr_size);
/* Lines written so far (thread: any). */
uint64_t tm_dead_letter_count(const tm_dead_letter_t *dl);

#endif
