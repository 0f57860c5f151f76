/*
 * fsutil.h — small file-system helpers with crash-safe semantics.
 *
 * Return 0 or a negative TM_E* code; errno is left as the failing call set it,
 * so callers can name the reason in their own message.
 * Thread: any.
 */
#ifndef TM_CORE_FSUTIL_H
#define TM_CORE_FSUTIL_H

#include "core/buf.h"

#include <stddef.h>
#include <sys/types.h>

/* mkdir -p: creates every missing component of path with `mode`. */
int tm_mkdir_p(const char *path, mode_t mode);
/* fsync()s a directory, which makes the entries created or renamed in it durable. */
int tm_fsync_dir(const char *dir);
/*
 * Replaces dir/name with data atomically and durably: write dir/name.tmp,
 * fsync it, rename it over dir/name, fsync dir.  After a crash the file holds
 * either the old content or the new one, never a mix.
 */
int tm_write_file_atomic(const char *dir, const char *name, const void *data, size_t len);
/*
 * Removes `path` and, if it is a directory, everything under it (symlinks
 * are removed, not followed).  A missing path is not an error.
 */
int tm_rm_rf(const char *path);
/*
 * Writes the `len` bytes of `in` into `out` (replacing its content) as a safe
 * file name: '/', '\\', '%', control bytes, DEL, ill-formed UTF-8 and a
 * leading '.' become %XX, so the name is never "." or "..", never hidden,
 * never a path and never holds a newline; well-formed UTF-8 stays, so an
 * ordinary name ("shop.public.orders") maps to itself.  The mapping is one to
 * one ('%' itself is escaped); an empty name becomes "%".  A result longer
 * than `max` bytes (>= 40) is cut at a character boundary and ends in "%~" and
 * the 64-bit FNV-1a hash of the whole name in hex ('%' is never followed by
 * '~' otherwise), so long names stay distinct.  Returns 0 or TM_ENOMEM.
 */
int tm_fs_name_escape(const char *in, size_t len, size_t max, tm_buf_t *out);

/*
 * Takes an exclusive lock (flock) on the file `path`, creating it, and writes
 * this process's pid into it, so that one directory serves one process.  The
 * lock lives as long as *fd_out stays open (O_CLOEXEC; the kernel drops it
 * when the process ends, however it ends).  Returns 0, TM_EAGAIN when another
 * process holds it (`holder` then names it: "pid 123 (tidemark run job.sql)",
 * or "an unknown process"), or TM_EIO with errno set.
 */
int tm_fs_lock(const char *path, int *fd_out, char *holder, size_t holder_size);

#endif
