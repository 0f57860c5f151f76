/*
 * fsutil.c — crash-safe file-system helpers (see fsutil.h).
 */
#include "core/fsutil.h"
#include "core/error.h"
#include "core/log.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int tm_mkdir_p(const char *path, mode_t mode)
{
    char *tmp = strdup(path);
    if (tmp == NULL)
        return TM_ENOMEM;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, mode) != 0 && errno != EEXIST) {
            free(tmp);
            return TM_EIO;
        }
        *p = '/';
    }
    int rc = (mkdir(tmp, mode) != 0 && errno != EEXIST) ? TM_EIO : 0;
    free(tmp);
    return rc;
}

int tm_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return TM_EIO;
    int rc = fsync(fd) == 0 ? 0 : TM_EIO;
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int tm_write_file_atomic(const char *dir, const char *name, const void *data, size_t len)
{
    char tmp[4096], path[4096];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name) >= sizeof(tmp) ||
        (size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
        errno = ENAMETOOLONG;
        return TM_EIO;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return TM_EIO;
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto fail;
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) != 0)
        goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        goto fail;
    /* The rename is durable only once the directory entry is. */
    return tm_fsync_dir(dir);
fail:;
    int saved = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    errno = saved;
    return TM_EIO;
}

int tm_rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : TM_EIO;
    if (!S_ISDIR(st.st_mode))
        return unlink(path) == 0 || errno == ENOENT ? 0 : TM_EIO;
    DIR *d = opendir(path);
    if (d == NULL)
        return TM_EIO;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        size_t n = strlen(path) + strlen(e->d_name) + 2;
        char *child = malloc(n);
        if (child == NULL) {
            rc = TM_ENOMEM;
            break;
        }
        snprintf(child, n, "%s/%s", path, e->d_name);
        if (tm_rm_rf(child) != 0)
            rc = TM_EIO;
        free(child);
    }
    closedir(d);
    if (rc == 0 && rmdir(path) != 0 && errno != ENOENT)
        rc = TM_EIO;
    return rc;
}

int tm_fs_name_escape(const char *in, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0, len = strlen(in);
    if (outlen == 0)
        return TM_EINVAL;
    if (len == 0) {
        if (outlen < 4)
            return TM_EINVAL;
        memcpy(out, "%00", 4);
        return 0;
    }
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)in[i];
        size_t k = tm_utf8_seqlen(in + i, len - i);
        bool escape = k == 0 || c < 0x20 || c == 0x7f || c == '/' || c == '\\' || c == '%' ||
                      (i == 0 && c == '.');
        size_t need = escape ? 3 : k;
        if (n + need + 1 > outlen) {
            out[n] = '\0';
            return TM_EINVAL;
        }
        if (escape) {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
            i++;
        } else {
            memcpy(out + n, in + i, k);
            n += k;
            i += k;
        }
    }
    out[n] = '\0';
    return 0;
}
