/*
 * error.h — tidemark's error codes.
 *
 * Every function that can fail returns int: 0 on success or a negative TM_E*
 * code.  Functions that users reach through configuration also fill a
 * caller-provided `char *errstr, size_t errstr_size` with a sentence a person
 * can act on.  The code tells the caller *what kind* of failure it was (and so
 * which exit code the process ends with); the string tells the user what to do.
 *
 * Invariants:
 *   1. Codes are negative and stable; tm_strerror() never returns NULL.
 *   2. Library code never logs an error it returns: the program logs it once.
 */
#ifndef TM_CORE_ERROR_H
#define TM_CORE_ERROR_H

#include <stddef.h>

/* X-macro table: name, value, description. */
#define TM_ERRNO_MAP(XX)                                                       \
    XX(EINVAL, -1, "invalid argument")                                         \
    XX(ENOMEM, -2, "out of memory")                                            \
    XX(ECONFIG, -3, "configuration error")                                     \
    XX(ESQL, -4, "SQL error")                                                  \
    XX(EIO, -5, "I/O error")                                                   \
    XX(ECONN, -6, "connection error (retriable)")                              \
    XX(ESOURCE, -7, "source error (not retriable)")                            \
    XX(ESINK, -8, "sink error")                                                \
    XX(EAGAIN, -9, "try again")                                                \
    XX(ESTOPPED, -10, "stopped")                                               \
    XX(EPROTO, -11, "protocol error")                                          \
    XX(ENOTFOUND, -12, "not found")                                            \
    XX(ECORRUPT, -13, "corrupt data")                                          \
    XX(ECHECKPOINT, -14, "checkpoint failed")                                  \
    XX(EUNSUPPORTED, -15, "not supported")

enum {
#define TM__ERR_ENUM(name, val, desc) TM_##name = (val),
    TM_ERRNO_MAP(TM__ERR_ENUM)
#undef TM__ERR_ENUM
};

/* Returns a static description of an error code. */
const char *tm_strerror(int err);

/*
 * Process exit codes.  They distinguish the failures an operator reacts to
 * differently (DESIGN §9): fix the job file, fix the source, or look at the
 * checkpoint storage.
 */
enum {
    TM_EXIT_OK = 0,
    TM_EXIT_FAILURE = 1,
    TM_EXIT_CONFIG = 2,
    TM_EXIT_SOURCE = 3,
    TM_EXIT_CHECKPOINT = 4,
};

/* Maps a TM_E* code to the exit code the process should end with. */
int tm_exit_code_for(int err);

/* snprintf into errstr, safe with a NULL/zero-sized buffer.  Returns `err`. */
int tm_seterr(char *errstr, size_t errstr_size, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * ALWAYS(X) and NEVER(X) mark conditions that cannot happen.  Debug builds
 * assert; release builds still evaluate X so the caller can survive it.
 */
#ifdef NDEBUG
#define ALWAYS(X) (X)
#define NEVER(X) (X)
#else
#include <assert.h>
#define ALWAYS(X) ((X) ? 1 : (assert(0), 0))
#define NEVER(X) ((X) ? (assert(0), 1) : 0)
#endif

#endif
