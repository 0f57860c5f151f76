/*
 * failpoint.h — test-only fault injection at named points in the code
 * (after FreeBSD's fail(9) and TiKV's fail-rs).
 *
 * A failpoint is a call `tm_failpoint("sink.before_commit")` at a place where
 * a crash is interesting.  It does nothing unless the environment variable
 * TIDEMARK_FAILPOINTS names it when the process starts:
 *
 *     TIDEMARK_FAILPOINTS="checkpoint.after_metadata=kill@3;file.commit.mid=kill%25"
 *     TIDEMARK_FAILPOINT_SEED=42
 *
 * Grammar: entries separated by ';', each `name=action[@N][%P]`, blanks
 * around the parts ignored.
 *
 *     action   kill       SIGKILL the whole process, as `kill -9` would: no
 *                         cleanup, no atexit, no buffered output flushed
 *              sleep(MS)  sleep MS milliseconds in the calling thread
 *                         (widens a window for a timed kill)
 *              count      nothing; only counts (tm_failpoint_hits/fired)
 *              off        nothing (keeps an entry in a list but disables it)
 *     @N       fire at the N-th hit only (N >= 1); without it every hit is
 *              eligible
 *     %P       fire with probability P percent (0 < P <= 100, decimals
 *              allowed) per eligible hit
 *
 * So `kill` kills at the first hit, `kill@3` at the third, and `kill%25`
 * at each hit with probability 1/4.  The draw for hit number H of failpoint
 * NAME is a hash of (seed, NAME, H), so with the same seed the same hit of
 * the same failpoint fires, whichever threads hit other failpoints meanwhile.
 * Without TIDEMARK_FAILPOINT_SEED the seed comes from the clock and pid.
 * When failpoints are configured the process writes one line naming them and
 * the seed to stderr, and a line `failpoint fired name=… hit=… action=…` each
 * time one fires (written with write(2) before the action, so it precedes a
 * kill in the log).  An entry that does not parse is reported on stderr and
 * ignored: the process then runs as if it were absent, and the line says so.
 *
 * Names in use (keep this list in step with the call sites; tests/crash
 * reads the names from the binary, so a name that is listed here but not
 * compiled in is simply not exercised):
 *
 *   checkpoint.before_metadata   coordinator: every sink pre-committed N,
 *                                chk-N/_metadata not yet renamed into place
 *   checkpoint.after_metadata    coordinator: _metadata renamed (N complete),
 *                                sinks not yet told to commit
 *   sink.after_precommit         sink thread: a sink returned from pre-commit
 *   sink.before_commit           sink thread: about to commit epoch N
 *   sink.after_commit            sink thread: commit of epoch N returned
 *   worker.after_snapshot        worker thread: its keyed state for checkpoint N
 *                                is snapshotted, the barrier not yet forwarded
 *   file.precommit.mid           file sink pre-commit: after one topic's
 *                                part was fsynced, before the next topic's
 *                                part and before the handle exists
 *   file.commit.mid              file sink commit (and recovery's re-commit):
 *                                topic file truncated to its base, the part
 *                                not yet appended
 *   file.commit.appended         file sink commit: part appended and
 *                                fdatasync()ed, not yet unlinked
 *   pgsink.before_prepare        PostgreSQL sink pre-commit: the epoch is
 *                                written in its transaction, not yet prepared
 *   pgsink.before_commit_prepared  PostgreSQL sink commit: COMMIT PREPARED of
 *                                an epoch about to be sent
 *   pgsink.before_dl_commit      PostgreSQL sink as the decision log: the
 *                                progress row is written, COMMIT not yet sent
 *   mysql.stream.rows            mysql-cdc source thread: a rows event arrived,
 *                                not yet decoded (sleep here slows the source)
 *   pg.snapshot.chunk            postgres-cdc source thread: a snapshot chunk
 *                                was emitted (sleep here slows the snapshot);
 *                                an incremental chunk was read, its close
 *                                watermark not yet written (widens the window)
 *   mysql.snapshot.chunk         mysql-cdc source thread: a snapshot chunk
 *                                was emitted (sleep here slows the snapshot)
 *
 * Cost when off: one relaxed atomic load and a predictable branch.
 *
 * Thread: any.  The configuration is parsed once (pthread_once) from the
 * environment on the first hit; tm_failpoint_configure() replaces it and must
 * only be called while no other thread can hit a failpoint (tests, or main
 * before it starts threads).
 */
#ifndef TM_CORE_FAILPOINT_H
#define TM_CORE_FAILPOINT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Environment variables read at the first hit. */
#define TM_FAILPOINT_ENV "TIDEMARK_FAILPOINTS"
#define TM_FAILPOINT_SEED_ENV "TIDEMARK_FAILPOINT_SEED"

/* At most this many entries, each name at most TM_FAILPOINT_NAME_MAX - 1 bytes. */
#define TM_FAILPOINT_MAX 32
#define TM_FAILPOINT_NAME_MAX 64

/* State of the fast path: not yet read from the environment, off, on. */
enum { TM__FAILPOINT_UNKNOWN = 0, TM__FAILPOINT_OFF = 1, TM__FAILPOINT_ON = 2 };

extern _Atomic int tm__failpoint_state;

/* The slow path: configuration lookup, counting, and the action. */
void tm__failpoint_hit(const char *name);

/* Marks a failpoint; does nothing unless TIDEMARK_FAILPOINTS configures `name`. */
static inline void tm_failpoint(const char *name)
{
    if (atomic_load_explicit(&tm__failpoint_state, memory_order_relaxed) == TM__FAILPOINT_OFF)
        return;
    tm__failpoint_hit(name);
}

/*
 * Replaces the configuration with `spec` (the TIDEMARK_FAILPOINTS grammar;
 * NULL or "" turns every failpoint off) and `seed`, and resets the counters.
 * Returns 0, or TM_ECONFIG with errstr naming the entry that does not parse;
 * then nothing is configured.  Not thread-safe (see the file header).
 */
int tm_failpoint_configure(const char *spec, uint64_t seed, char *errstr, size_t errstr_size);

/* How often `name` was hit, and how often its action fired, since it was configured. */
uint64_t tm_failpoint_hits(const char *name);
uint64_t tm_failpoint_fired(const char *name);

#endif
