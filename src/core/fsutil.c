/*
 * fsutil.c — crash-safe file-system helpers (see fsutil.h).
 */
#include "core/fsutil.h"
#include "core/error.h"
#include "core/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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

int tm_fs_name_escape(const char *in, size_t len, size_t max, tm_buf_t *out)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = 0;
    size_t cut = 0; /* the name's length at the last character boundary within the bound */
    tm_buf_clear(out);
    for (size_t i = 0; i < len && rc == 0;) {
        const unsigned char *u = (const unsigned char *)in + i;
        int n = tm_utf8_seq_len(u, len - i);
        bool plain = n > 1 || (n == 1 && *u >= 0x20 && *u != 0x7F && *u != '/' && *u != '\\' &&
                               *u != '%' && !(i == 0 && *u == '.'));
        if (n < 1)
            n = 1; /* one ill-formed byte at a time: each is escaped */
        if (plain) {
            rc = tm_buf_append(out, u, (size_t)n);
        } else {
            for (int k = 0; k < n && rc == 0; k++) {
                char e[3] = {'%', hex[u[k] >> 4], hex[u[k] & 15]};
                rc = tm_buf_append(out, e, 3);
            }
        }
        if (out->len + 18 <= max)
            cut = out->len;
        i += (size_t)n;
    }
    if (rc == 0 && len == 0)
        rc = tm_buf_putc(out, '%');
    if (rc == 0 && out->len > max) {
        uint64_t h = 0xcbf29ce484222325ULL;
        for (size_t i = 0; i < len; i++)
            h = (h ^ (unsigned char)in[i]) * 0x100000001b3ULL;
        out->len = cut;
        rc = tm_buf_appendf(out, "%%~%016" PRIx64, h);
    }
    if (rc == 0 && out->data == NULL)
        rc = tm_buf_reserve(out, 1);
    if (rc == 0)
        out->data[out->len] = '\0';
    return rc;
}

/* "pid N (its command line)" from the lock file's pid and /proc, or "an unknown process". */
static void lock_holder(int fd, char *holder, size_t holder_size)
{
    char text[32], cmd[256];
    ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
    long pid = 0;
    if (n > 0) {
        text[n] = '\0';
        pid = strtol(text, NULL, 10);
    }
    if (pid <= 0) {
        snprintf(holder, holder_size, "an unknown process");
        return;
    }
    snprintf(cmd, sizeof(cmd), "/proc/%ld/cmdline", pid);
    int cfd = open(cmd, O_RDONLY | O_CLOEXEC);
    n = cfd >= 0 ? read(cfd, cmd, sizeof(cmd) - 1) : -1;
    if (cfd >= 0)
        close(cfd);
    if (n <= 0) {
        snprintf(holder, holder_size, "pid %ld", pid);
        return;
    }
    /* Arguments are NUL-separated; anything unprintable is shown as '?'. */
    for (ssize_t i = 0; i < n; i++)
        if (cmd[i] == '\0')
            cmd[i] = ' ';
        else if ((unsigned char)cmd[i] < 0x20 || (unsigned char)cmd[i] >= 0x7f)
            cmd[i] = '?';
    while (n > 0 && cmd[n - 1] == ' ')
        n--;
    cmd[n] = '\0';
    snprintf(holder, holder_size, "pid %ld (%s)", pid, cmd);
}

int tm_fs_lock(const char *path, int *fd_out, char *holder, size_t holder_size)
{
    *fd_out = -1;
    if (holder_size > 0)
        holder[0] = '\0';
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return TM_EIO;
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EINTR)
            continue;
        int saved = errno;
        if (errno == EWOULDBLOCK)
            lock_holder(fd, holder, holder_size);
        close(fd);
        errno = saved;
        return saved == EWOULDBLOCK ? TM_EAGAIN : TM_EIO;
    }
    char text[32];
    int len = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)len, 0) != len) {
        int saved = errno;
        close(fd);
        errno = saved;
        return TM_EIO;
    }
    *fd_out = fd;
    return 0;
}
