/*
 * fsutil.h — small file-system helpers with crash-safe semantics.
 *
 * Return 0 or a negative TM_E* code; errno is left as the failing call set it,
 * so callers can name the reason in their own message.
 * Thread: any.
 */
#ifndef TM_CORE_FSUTIL_H
#define TM_CORE_FSUTIL_H

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
 * Writes `in` as a safe file name into out: '/', '\\', '%', control bytes, DEL
 * and bytes that are not UTF-8 become %XX, and so does a leading '.', so the
 * name is never "." or "..", never hidden, never a path and never holds a
 * newline.  The mapping is one to one ("%" itself is escaped), so two
 * different names never share a file; a name that is already safe
 * ("shop.public.orders") is unchanged.  An empty name becomes "%00".
 * Returns 0, or TM_EINVAL if the escaped name does not fit in outlen bytes.
 */
int tm_fs_name_escape(const char *in, char *out, size_t outlen);

#endif
