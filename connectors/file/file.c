/*
 * file.c — the file sink: one JSON-lines file per topic.
 *
 * Each record is appended to <path>/<topic>.jsonl through a user-space buffer.
 * sink_flush writes the buffers and fdatasync()s every file written since the
 * last flush (and the directory after a file was created), so that when it
 * returns 0 everything written so far survives a crash.  Only then does the
 * runtime let the source acknowledge it (pipeline.h).
 *
 * Invariants:
 *   1. A line is never split across a flush; bytes reach a file in the order
 *      the records were received.
 *   2. A topic becomes a file name through file_stem(), which is total and
 *      injective: any topic (a hostile source.table from a Kafka record:
 *      "../x", "a/b", control bytes, ill-formed UTF-8, 10 KB) gets a file of
 *      its own inside <path>, so no record can stop the sink (issue 9).
 *   3. At most max_open_files topic files are open at once: the least
 *      recently used is fdatasync()ed (if written since its last sync) and
 *      closed, and reopened in append mode when needed again.  A dirty file
 *      is therefore always open, so flush can sync it.
 *   4. The first open of a <topic>.jsonl in a process (with checkpoints: its
 *      first pre-commit) cuts a torn last line (a short write before a crash
 *      or a full disk) back to the last '\n' before appending, so every line
 *      stays JSON.
 *
 * Delivery: at-least-once until the checkpoint protocol replaces appends with
 * pre-committed part files (DESIGN §6): after a crash the source re-sends
 * what was not acknowledged, and lines already written may appear again.
 *
 * Thread: sink thread (write/flush), main thread (new/open/free).
 */
#include "core/clock.h"
#include "core/error.h"
#include "core/failpoint.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "file/jsonl.h"
#include "runtime/connector.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_BUF_LIMIT (1 << 20)

/* Longest file-name stem; with ".<epoch>.part" it stays below NAME_MAX (255). */
#define FILE_STEM_MAX 200

typedef struct file_out {
    char *topic; /* the rendered topic: the lookup key */
    char *stem;  /* its file name without ".jsonl" (file_stem) */
    int fd;      /* -1 while closed (invariant 3) */
    tm_buf_t buf;
    bool dirty;    /* written since the last fdatasync */
    bool opened;   /* opened before in this process (invariant 4) */
    bool checked;  /* two-phase commit: the topic file's tail was checked (invariant 4) */
    bool has_part; /* two-phase commit: the current epoch's part exists */
    uint64_t used; /* LRU clock of the last use */
} file_out_t;

struct tm_sink {
    char *name;
    char *dir;
    int dirfd;
    tm_jsonl_t w;
    file_out_t *outs;
    int nouts, capouts;
    bool dir_dirty;
    /* One-entry cache: consecutive records usually share a table. */
    const tm_schema_t *last_schema;
    int last_out;
    bool to_stdout;
    int nopen, max_open; /* open topic files, and the bound (invariant 3) */
    uint64_t clock;
    tm_buf_t topic; /* scratch for the rendered topic */
    /*
     * Two-phase commit (the job runs checkpoints): records of epoch N go to
     * <path>/.pending/<topic>.<N>.part; pre-commit fsyncs them and records
     * each topic file's committed length ("base"); commit truncates the topic
     * file to base and appends the part, which makes a repeated commit (after
     * a crash in the middle of one) harmless.
     */
    bool twopc;
    int pendfd;
    uint64_t epoch; /* the epoch being written */
    tm_buf_t parts; /* JSON handle of the last pre-committed epoch */
    uint64_t parts_epoch;
    /*
     * commit = 'rename': a committed epoch's part is renamed to
     * <path>/<topic>/part-<N>.jsonl instead of being appended to
     * <topic>.jsonl, so every byte is written once (Flink's FileSink layout).
     */
    bool rename_commit;
};

static const tm_option_def_t file_options[] = {
    {"path", TM_OPT_STRING, true, NULL, NULL,
     "Directory that receives one <topic>.jsonl file per topic; created if missing."},
    {"commit", TM_OPT_ENUM, false, "append", "append|rename",
     "With checkpoints: append each committed epoch to <topic>.jsonl, or rename it into "
     "<topic>/part-<N>.jsonl (written once, faster)."},
    {"max_open_files", TM_OPT_INT, false, "128", NULL,
     "Most topic files open at once; the least recently used is closed and reopened later."},
    TM_JSONL_OPTIONS,
    {NULL, 0, false, NULL, NULL, NULL},
};

static const tm_option_def_t stdout_options[] = {
    TM_JSONL_OPTIONS,
    {NULL, 0, false, NULL, NULL, NULL},
};

static void file_sink_free(tm_sink_t *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < s->nouts; i++) {
        if (s->outs[i].fd >= 0 && !s->to_stdout)
            close(s->outs[i].fd);
        tm_buf_release(&s->outs[i].buf);
        free(s->outs[i].topic);
        free(s->outs[i].stem);
    }
    free(s->outs);
    tm_buf_release(&s->topic);
    if (s->dirfd >= 0)
        close(s->dirfd);
    if (s->pendfd >= 0)
        close(s->pendfd);
    tm_buf_release(&s->parts);
    tm_jsonl_release(&s->w);
    free(s->dir);
    free(s->name);
    free(s);
}

static int sink_new_common(tm_sink_t **out, const tm_sink_config_t *cfg, bool to_stdout,
                           char *errstr, size_t errstr_size)
{
    tm_sink_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return TM_ENOMEM;
    s->dirfd = -1;
    s->pendfd = -1;
    s->to_stdout = to_stdout;
    s->twopc = !to_stdout && cfg->checkpointing;
    s->epoch = 1;
    s->name = strdup(cfg->name);
    s->last_out = -1;
    if (!to_stdout) {
        s->dir = strdup(tm_opt_str(cfg->opts, "path"));
        s->rename_commit = s->twopc && strcmp(tm_opt_str(cfg->opts, "commit"), "rename") == 0;
        int64_t max_open = tm_opt_int(cfg->opts, "max_open_files");
        if (max_open < 1 || max_open > 1000000) {
            file_sink_free(s);
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "file sink '%s': max_open_files = %lld is out of range; use 1 to "
                             "1000000 (keep it well below `ulimit -n`)",
                             cfg->name, (long long)max_open);
        }
        s->max_open = (int)max_open;
    }
    int rc = tm_jsonl_init(&s->w, cfg->opts, errstr, errstr_size);
    if (rc != 0) {
        file_sink_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

static int file_sink_new(tm_sink_t **out, const tm_sink_config_t *cfg, char *errstr,
                         size_t errstr_size)
{
    return sink_new_common(out, cfg, false, errstr, errstr_size);
}

static int stdout_sink_new(tm_sink_t **out, const tm_sink_config_t *cfg, char *errstr,
                           size_t errstr_size)
{
    return sink_new_common(out, cfg, true, errstr, errstr_size);
}

static int file_sink_open(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    if (s->to_stdout)
        return 0;
    if (tm_mkdir_p(s->dir, 0755) != 0)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "file sink '%s': cannot create directory %s (%s); check 'path' and its "
                         "permissions",
                         s->name, s->dir, strerror(errno));
    s->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "file sink '%s': cannot open directory %s (%s)", s->name, s->dir,
                         strerror(errno));
    if (s->twopc) {
        if (mkdirat(s->dirfd, ".pending", 0755) != 0 && errno != EEXIST)
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "file sink '%s': cannot create %s/.pending (%s)", s->name, s->dir,
                             strerror(errno));
        s->pendfd = openat(s->dirfd, ".pending", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (s->pendfd < 0)
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "file sink '%s': cannot open %s/.pending (%s)", s->name, s->dir,
                             strerror(errno));
    }
    return 0;
}

/* The file-name form of a topic (invariant 2): tm_fs_name_escape(), bounded by FILE_STEM_MAX. */
static int file_stem(const char *topic, size_t len, tm_buf_t *out)
{
    return tm_fs_name_escape(topic, len, FILE_STEM_MAX, out);
}

/* Closes the least recently used open topic file, syncing it first if dirty (invariant 3). */
static int pool_evict(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    file_out_t *lru = NULL;
    for (int i = 0; i < s->nouts; i++)
        if (s->outs[i].fd >= 0 && (lru == NULL || s->outs[i].used < lru->used))
            lru = &s->outs[i];
    if (lru == NULL)
        return 0;
    if (lru->dirty && fdatasync(lru->fd) != 0)
        return tm_seterr(errstr, errstr_size, TM_ESINK,
                         "file sink '%s': fdatasync of the file of topic %s in %s failed (%s)",
                         s->name, lru->stem, s->dir, strerror(errno));
    lru->dirty = false;
    close(lru->fd);
    lru->fd = -1;
    s->nopen--;
    return 0;
}

/*
 * Cuts a torn last line (bytes after the last '\n') off a topic file opened
 * for the first time in this process (invariant 4).  fd is open O_RDWR.
 */
static int repair_tail(tm_sink_t *s, file_out_t *o, int fd, char *errstr, size_t errstr_size)
{
    struct stat st;
    char blk[4096];
    if (fstat(fd, &st) != 0)
        goto fail;
    if (st.st_size == 0)
        return 0;
    if (pread(fd, blk, 1, st.st_size - 1) != 1)
        goto fail;
    if (blk[0] == '\n')
        return 0;
    off_t end = st.st_size, keep = 0;
    while (end > 0 && keep == 0) {
        off_t start = end > (off_t)sizeof(blk) ? end - (off_t)sizeof(blk) : 0;
        ssize_t n = pread(fd, blk, (size_t)(end - start), start);
        if (n != end - start)
            goto fail;
        for (ssize_t i = n - 1; i >= 0; i--)
            if (blk[i] == '\n') {
                keep = start + i + 1;
                break;
            }
        end = start;
    }
    if (ftruncate(fd, keep) != 0 || fdatasync(fd) != 0)
        goto fail;
    TM_WARN("file", "cut a torn last line (an interrupted write) before appending",
            "sink=%s file=%s/%s.jsonl bytes=%lld", s->name, s->dir, o->stem,
            (long long)(st.st_size - keep));
    return 0;
fail:
    return tm_seterr(errstr, errstr_size, TM_ESINK,
                     "file sink '%s': cannot check the last line of %s/%s.jsonl (%s)", s->name,
                     s->dir, o->stem, strerror(errno));
}

/* Opens o's file (its topic file, or with checkpoints its part) if closed. */
static int out_open(tm_sink_t *s, file_out_t *o, char *errstr, size_t errstr_size)
{
    o->used = ++s->clock;
    if (o->fd >= 0)
        return 0;
    int rc;
    if (s->nopen >= s->max_open && (rc = pool_evict(s, errstr, errstr_size)) != 0)
        return rc;
    char fname[FILE_STEM_MAX + 64];
    int dfd, flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC;
    if (s->twopc) {
        snprintf(fname, sizeof(fname), "%s.%" PRIu64 ".part", o->stem, s->epoch);
        dfd = s->pendfd;
        if (!o->has_part)
            flags |= O_TRUNC;
    } else {
        snprintf(fname, sizeof(fname), "%s.jsonl", o->stem);
        dfd = s->dirfd;
        if (!o->opened)
            flags = (flags & ~O_WRONLY) | O_RDWR;
    }
    int fd;
    /* Other descriptors of the process count too: make room and retry. */
    while ((fd = openat(dfd, fname, flags, 0644)) < 0 && (errno == EMFILE || errno == ENFILE) &&
           s->nopen > 0)
        if ((rc = pool_evict(s, errstr, errstr_size)) != 0)
            return rc;
    if (fd < 0) {
        int e = errno;
        return tm_seterr(errstr, errstr_size, TM_ESINK,
                         "file sink '%s': cannot open %s/%s%s (%s)%s", s->name, s->dir,
                         s->twopc ? ".pending/" : "", fname, strerror(e),
                         e == EMFILE ? "; raise `ulimit -n` or lower max_open_files" : "");
    }
    if (!s->twopc && !o->opened && (rc = repair_tail(s, o, fd, errstr, errstr_size)) != 0) {
        close(fd);
        return rc;
    }
    if (!o->opened || (s->twopc && !o->has_part))
        s->dir_dirty = true;
    o->opened = true;
    o->has_part = s->twopc;
    o->fd = fd;
    s->nopen++;
    return 0;
}

/* The index of the output of the topic in s->topic (rendered, NUL-terminated), made on first use. */
static int out_for_topic(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    const char *topic = s->topic.data;
    int idx = -1;
    for (int i = 0; i < s->nouts; i++)
        if (strcmp(s->outs[i].topic, topic) == 0) {
            idx = i;
            break;
        }
    if (idx < 0) {
        if (s->nouts == s->capouts) {
            int ncap = s->capouts ? s->capouts * 2 : 8;
            file_out_t *p = realloc(s->outs, sizeof(*p) * (size_t)ncap);
            if (p == NULL)
                return TM_ENOMEM;
            s->outs = p;
            s->capouts = ncap;
        }
        file_out_t *o = &s->outs[s->nouts];
        tm_buf_t stem;
        tm_buf_init(&stem);
        memset(o, 0, sizeof(*o));
        o->fd = s->to_stdout ? STDOUT_FILENO : -1;
        o->topic = strdup(topic);
        if (file_stem(topic, s->topic.len, &stem) != 0 || o->topic == NULL) {
            tm_buf_release(&stem);
            free(o->topic);
            return TM_ENOMEM;
        }
        o->stem = stem.data; /* the buffer's bytes, NUL-terminated, now owned by o */
        tm_buf_init(&o->buf);
        idx = s->nouts++;
        /* Without checkpoints a topic's file exists from its first record on, as before. */
        if (!s->to_stdout && !s->twopc) {
            int rc = out_open(s, o, errstr, errstr_size);
            if (rc != 0)
                return rc;
        }
    }
    return idx;
}

static int out_for(tm_sink_t *s, const tm_record_t *rec, char *errstr, size_t errstr_size)
{
    if (s->last_out >= 0 && rec->schema == s->last_schema && rec->schema != NULL &&
        rec->op != TM_OP_MESSAGE)
        return s->last_out;
    if (tm_jsonl_topic(&s->w, rec, &s->topic) != 0)
        return TM_ENOMEM;
    int idx = out_for_topic(s, errstr, errstr_size);
    if (idx < 0)
        return idx;
    if (rec->op != TM_OP_MESSAGE) {
        s->last_schema = rec->schema;
        s->last_out = idx;
    }
    return idx;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int out_drain(tm_sink_t *s, file_out_t *o, char *errstr, size_t errstr_size)
{
    if (o->buf.len == 0)
        return 0;
    int rc;
    if (!s->to_stdout && (rc = out_open(s, o, errstr, errstr_size)) != 0)
        return rc;
    if (write_all(o->fd, o->buf.data, o->buf.len) != 0) {
        int e = errno;
        return tm_seterr(errstr, errstr_size, TM_ESINK,
                         "%s sink '%s': cannot write %s%s%s.jsonl (%s)%s",
                         s->to_stdout ? "stdout" : "file", s->name, s->dir ? s->dir : "",
                         s->dir ? "/" : "", o->stem, strerror(e),
                         e == ENOSPC ? "; free disk space and restart: unacknowledged changes "
                                       "are re-sent by the source"
                                     : "");
    }
    tm_buf_clear(&o->buf);
    o->dirty = true;
    return 0;
}

/* Moves the transaction events jsonl queued (provide_transaction_metadata) to their topic. */
static int route_tx(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    tm_jsonl_t *w = &s->w;
    if (w->txout.len == 0)
        return 0;
    if (tm_jsonl_tx_topic(w, &s->topic) != 0)
        return TM_ENOMEM;
    int idx = out_for_topic(s, errstr, errstr_size);
    if (idx < 0)
        return idx;
    file_out_t *o = &s->outs[idx];
    int rc = tm_buf_append(&o->buf, w->txout.data, w->txout.len);
    tm_buf_clear(&w->txout);
    if (rc != 0)
        return TM_ENOMEM;
    if (o->buf.len >= FILE_BUF_LIMIT)
        return out_drain(s, o, errstr, errstr_size);
    return 0;
}

/*
 * Writes a heartbeat when one is due (heartbeat_interval_ms), straight to its
 * file: a heartbeat says the job is alive now, so it is not held in a buffer
 * until the next flush (nor fsynced: a lost one is harmless).
 */
static int heartbeat(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    tm_buf_t line;
    tm_buf_init(&line);
    int rc = tm_jsonl_heartbeat(&s->w, tm_wall_us() / 1000, &s->topic, &line);
    if (rc == 1) {
        int idx = out_for_topic(s, errstr, errstr_size);
        rc = idx;
        if (idx >= 0) {
            file_out_t *o = &s->outs[idx];
            rc = tm_buf_append(&o->buf, line.data, line.len) != 0
                     ? TM_ENOMEM
                     : out_drain(s, o, errstr, errstr_size);
        }
    }
    tm_buf_release(&line);
    return rc < 0 ? rc : 0;
}

static int file_sink_poll(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    return heartbeat(s, errstr, errstr_size);
}

static int file_sink_write(tm_sink_t *s, const tm_batch_t *batch, char *errstr, size_t errstr_size)
{
    int rc;
    for (uint32_t i = 0; i < batch->count; i++) {
        const tm_record_t *rec = &batch->recs[i];
        int idx = out_for(s, rec, errstr, errstr_size);
        if (idx < 0)
            return idx;
        file_out_t *o = &s->outs[idx];
        rc = tm_jsonl_encode(&s->w, rec, &o->buf);
        if (rc != 0)
            return tm_seterr(errstr, errstr_size, rc, "sink '%s': cannot encode a record (%s)",
                             s->name, tm_strerror(rc));
        if (o->buf.len >= FILE_BUF_LIMIT && (rc = out_drain(s, o, errstr, errstr_size)) != 0)
            return rc;
        if ((rc = route_tx(s, errstr, errstr_size)) != 0)
            return rc;
    }
    if ((rc = tm_jsonl_batch_end(&s->w, batch)) != 0 ||
        (rc = route_tx(s, errstr, errstr_size)) != 0)
        return rc;
    return heartbeat(s, errstr, errstr_size);
}

static int file_sink_flush(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    for (int i = 0; i < s->nouts; i++) {
        file_out_t *o = &s->outs[i];
        int rc = out_drain(s, o, errstr, errstr_size);
        if (rc != 0)
            return rc;
        if (o->dirty && !s->to_stdout && fdatasync(o->fd) != 0)
            return tm_seterr(errstr, errstr_size, TM_ESINK,
                             "file sink '%s': fdatasync of %s/%s.jsonl failed (%s)", s->name,
                             s->dir, o->stem, strerror(errno));
        o->dirty = false;
    }
    if (s->dir_dirty && s->dirfd >= 0) {
        if (fsync(s->dirfd) != 0)
            return tm_seterr(errstr, errstr_size, TM_ESINK,
                             "file sink '%s': fsync of directory %s failed (%s)", s->name, s->dir,
                             strerror(errno));
        s->dir_dirty = false;
    }
    return 0;
}

/* ---- two-phase commit (thread: sink; recover on main before start) ---- */

static int file_sink_precommit(tm_sink_t *s, uint64_t epoch, tm_buf_t *handle, char *errstr,
                               size_t errstr_size)
{
    json_t *parts = json_array();
    int rc = 0;
    for (int i = 0; i < s->nouts && rc == 0; i++) {
        file_out_t *o = &s->outs[i];
        if ((rc = out_drain(s, o, errstr, errstr_size)) != 0 || !o->has_part)
            continue;
        if (o->fd >= 0 && o->dirty && fdatasync(o->fd) != 0) {
            rc = tm_seterr(errstr, errstr_size, TM_ESINK,
                           "file sink '%s': fdatasync of %s/.pending/%s.%" PRIu64
                           ".part failed (%s)",
                           s->name, s->dir, o->stem, epoch, strerror(errno));
            break;
        }
        if (o->fd >= 0) {
            close(o->fd);
            o->fd = -1;
            s->nopen--;
        }
        o->dirty = false;
        o->has_part = false;
        /*
         * The part was opened under the epoch this sink expected next; the
         * coordinator's id wins (after a savepoint restore they differ).
         */
        if (s->epoch != epoch) {
            char from[FILE_STEM_MAX + 64], to[FILE_STEM_MAX + 64];
            snprintf(from, sizeof(from), "%s.%" PRIu64 ".part", o->stem, s->epoch);
            snprintf(to, sizeof(to), "%s.%" PRIu64 ".part", o->stem, epoch);
            if (renameat(s->pendfd, from, s->pendfd, to) != 0) {
                rc = tm_seterr(errstr, errstr_size, TM_ESINK,
                               "file sink '%s': cannot rename %s/.pending/%s to %s (%s)", s->name,
                               s->dir, from, to, strerror(errno));
                break;
            }
            s->dir_dirty = true;
        }
        /* Only commits append to a topic file, so its size now is the committed length. */
        char fname[FILE_STEM_MAX + 64];
        struct stat st;
        snprintf(fname, sizeof(fname), "%s.jsonl", o->stem);
        if (!o->checked && !s->rename_commit) {
            /*
             * Commits never leave a torn line (recovery redoes an interrupted
             * one from its base), but a run without checkpoints may have.
             */
            int fd = openat(s->dirfd, fname, O_RDWR | O_CLOEXEC);
            if (fd >= 0) {
                rc = repair_tail(s, o, fd, errstr, errstr_size);
                close(fd);
                if (rc != 0)
                    break;
            }
            o->checked = true;
        }
        off_t base = fstatat(s->dirfd, fname, &st, 0) == 0 ? st.st_size : 0;
        json_t *part = json_object();
        /* The handle names files: the stem, which is valid UTF-8 (json_string checks). */
        json_object_set_new(part, "topic", json_string(o->stem));
        json_object_set_new(part, "base", json_integer((json_int_t)base));
        json_array_append_new(parts, part);
        tm_failpoint("file.precommit.mid");
    }
    if (rc == 0 && s->dir_dirty && fsync(s->pendfd) != 0)
        rc = tm_seterr(errstr, errstr_size, TM_ESINK,
                       "file sink '%s': fsync of %s/.pending failed (%s)", s->name, s->dir,
                       strerror(errno));
    s->dir_dirty = false;
    if (rc == 0) {
        json_t *h = json_pack("{s:I,s:o}", "epoch", (json_int_t)epoch, "parts", parts);
        if (s->rename_commit)
            json_object_set_new(h, "commit", json_string("rename"));
        char *text = json_dumps(h, JSON_COMPACT);
        json_decref(h);
        tm_buf_clear(&s->parts);
        tm_buf_puts(&s->parts, text ? text : "");
        tm_buf_puts(handle, text ? text : "");
        free(text);
        s->parts_epoch = epoch;
        s->epoch = epoch + 1;
    } else {
        json_decref(parts);
    }
    return rc;
}

/* Appends one pre-committed part to its topic file; repeatable (see struct tm_sink). */
static int commit_part(tm_sink_t *s, const char *topic, uint64_t epoch, off_t base, char *errstr,
                       size_t errstr_size)
{
    char part[600], fname[600];
    snprintf(part, sizeof(part), "%s.%" PRIu64 ".part", topic, epoch);
    snprintf(fname, sizeof(fname), "%s.jsonl", topic);
    int in = openat(s->pendfd, part, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return errno == ENOENT ? 0 : tm_seterr(errstr, errstr_size, TM_ESINK,
                                               "file sink '%s': cannot open %s/.pending/%s (%s)",
                                               s->name, s->dir, part, strerror(errno));
    int out = openat(s->dirfd, fname, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    struct stat st;
    int rc = 0;
    if (out < 0 || fstat(out, &st) != 0) {
        rc = tm_seterr(errstr, errstr_size, TM_ESINK, "file sink '%s': cannot open %s/%s (%s)",
                       s->name, s->dir, fname, strerror(errno));
        goto done;
    }
    if (st.st_size < base) {
        rc = tm_seterr(errstr, errstr_size, TM_ESINK,
                       "file sink '%s': %s/%s is shorter (%lld bytes) than its committed length "
                       "(%lld); it was changed outside tidemark",
                       s->name, s->dir, fname, (long long)st.st_size, (long long)base);
        goto done;
    }
    /* Whatever an interrupted earlier commit of this epoch appended goes first. */
    if (ftruncate(out, base) != 0 || lseek(out, base, SEEK_SET) < 0) {
        rc = tm_seterr(errstr, errstr_size, TM_ESINK, "file sink '%s': cannot truncate %s/%s (%s)",
                       s->name, s->dir, fname, strerror(errno));
        goto done;
    }
    tm_failpoint("file.commit.mid");
    /*
     * copy_file_range keeps the bytes in the kernel (and shares extents on
     * file systems that can); a plain read/write loop is the fallback.
     */
    ssize_t n;
    loff_t off_out = base;
    while ((n = copy_file_range(in, NULL, out, &off_out, 1 << 30, 0)) > 0)
        ;
    if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL)) {
        char buf[1 << 16];
        if (lseek(out, off_out, SEEK_SET) < 0)
            n = -1;
        else
            while ((n = read(in, buf, sizeof(buf))) > 0) {
                if (write_all(out, buf, (size_t)n) != 0) {
                    n = -1;
                    break;
                }
            }
    }
    if (n < 0 || fdatasync(out) != 0) {
        rc = tm_seterr(errstr, errstr_size, TM_ESINK, "file sink '%s': cannot append to %s/%s (%s)",
                       s->name, s->dir, fname, strerror(errno));
        goto done;
    }
    tm_failpoint("file.commit.appended");
    unlinkat(s->pendfd, part, 0);
done:
    if (out >= 0)
        close(out);
    close(in);
    return rc;
}

/*
 * commit = 'rename': moves one pre-committed part to <topic>/part-<N>.jsonl.
 * Repeatable: a part already moved is found in place.
 */
static int commit_part_rename(tm_sink_t *s, const char *topic, uint64_t epoch, char *errstr,
                              size_t errstr_size)
{
    char part[600], target[700];
    snprintf(part, sizeof(part), "%s.%" PRIu64 ".part", topic, epoch);
    snprintf(target, sizeof(target), "%s/part-%020" PRIu64 ".jsonl", topic, epoch);
    if (mkdirat(s->dirfd, topic, 0755) != 0 && errno != EEXIST)
        return tm_seterr(errstr, errstr_size, TM_ESINK,
                         "file sink '%s': cannot create directory %s/%s (%s)", s->name, s->dir,
                         topic, strerror(errno));
    tm_failpoint("file.commit.mid");
    if (renameat(s->pendfd, part, s->dirfd, target) != 0) {
        struct stat st;
        if (errno == ENOENT && fstatat(s->dirfd, target, &st, 0) == 0)
            return 0; /* committed before a crash */
        if (errno == ENOENT)
            return 0; /* an epoch without data for this topic */
        return tm_seterr(errstr, errstr_size, TM_ESINK,
                         "file sink '%s': cannot rename %s/.pending/%s to %s (%s)", s->name, s->dir,
                         part, target, strerror(errno));
    }
    int dfd = openat(s->dirfd, topic, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;
    if (dfd < 0 || fsync(dfd) != 0)
        rc = tm_seterr(errstr, errstr_size, TM_ESINK, "file sink '%s': fsync of %s/%s failed (%s)",
                       s->name, s->dir, topic, strerror(errno));
    if (dfd >= 0)
        close(dfd);
    tm_failpoint("file.commit.appended");
    return rc;
}

static int commit_handle(tm_sink_t *s, const char *handle, char *errstr, size_t errstr_size)
{
    json_error_t jerr;
    json_t *h = json_loads(handle, 0, &jerr);
    json_t *parts = json_object_get(h, "parts");
    uint64_t epoch = (uint64_t)json_integer_value(json_object_get(h, "epoch"));
    int rc = 0;
    if (h == NULL || !json_is_array(parts) || epoch == 0)
        rc = tm_seterr(errstr, errstr_size, TM_ECHECKPOINT,
                       "file sink '%s': the checkpoint's pre-commit handle is unreadable", s->name);
    for (size_t i = 0; rc == 0 && i < json_array_size(parts); i++) {
        json_t *p = json_array_get(parts, i);
        const char *topic = json_string_value(json_object_get(p, "topic"));
        json_int_t base = json_integer_value(json_object_get(p, "base"));
        if (topic == NULL || strchr(topic, '/') != NULL || topic[0] == '.' || topic[0] == '\0' ||
            strlen(topic) > FILE_STEM_MAX)
            continue;
        const char *mode = json_string_value(json_object_get(h, "commit"));
        if (mode != NULL && strcmp(mode, "rename") == 0)
            rc = commit_part_rename(s, topic, epoch, errstr, errstr_size);
        else
            rc = commit_part(s, topic, epoch, (off_t)base, errstr, errstr_size);
    }
    json_decref(h);
    if (rc == 0 && (fsync(s->dirfd) != 0 || fsync(s->pendfd) != 0))
        rc = tm_seterr(errstr, errstr_size, TM_ESINK, "file sink '%s': fsync of %s failed (%s)",
                       s->name, s->dir, strerror(errno));
    return rc;
}

static int file_sink_commit(tm_sink_t *s, uint64_t epoch, const char *progress, char *errstr,
                            size_t errstr_size)
{
    if (s->parts_epoch != epoch || s->parts.len == 0)
        return 0;
    int rc = commit_handle(s, s->parts.data, errstr, errstr_size);
    if (rc == 0)
        tm_buf_clear(&s->parts);
    return rc;
}

static int file_sink_recover(tm_sink_t *s, uint64_t epoch, const char *handle, char *errstr,
                             size_t errstr_size)
{
    int rc = 0;
    if (epoch > 0 && handle != NULL && handle[0] != '\0')
        rc = commit_handle(s, handle, errstr, errstr_size);
    if (rc != 0)
        return rc;
    /* Parts of epochs newer than the last completed checkpoint are aborted. */
    DIR *d = fdopendir(dup(s->pendfd));
    if (d != NULL) {
        struct dirent *e;
        int removed = 0;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            if (unlinkat(s->pendfd, e->d_name, 0) == 0)
                removed++;
        }
        closedir(d);
        if (removed > 0) {
            fsync(s->pendfd);
            TM_INFO("file", "discarded uncommitted output", "sink=%s parts=%d", s->name, removed);
        }
    }
    s->epoch = epoch + 1;
    return 0;
}

const tm_connector_t tm_connector_file = {
    .abi = TM_CONNECTOR_ABI,
    .name = "file",
    .kinds = TM_CONNECTOR_SINK,
    .doc = "Appends Debezium JSON lines to <path>/<topic>.jsonl and fsyncs before acknowledging.",
    .sink_options = file_options,
    .sink_new = file_sink_new,
    .sink_open = file_sink_open,
    .sink_write = file_sink_write,
    .sink_flush = file_sink_flush,
    .sink_precommit = file_sink_precommit,
    .sink_commit = file_sink_commit,
    .sink_recover = file_sink_recover,
    .sink_poll = file_sink_poll,
    .sink_free = file_sink_free,
};

const tm_connector_t tm_connector_stdout = {
    .abi = TM_CONNECTOR_ABI,
    .name = "stdout",
    .kinds = TM_CONNECTOR_SINK,
    .doc = "Writes Debezium JSON lines to standard output.",
    .sink_options = stdout_options,
    .sink_new = stdout_sink_new,
    .sink_open = file_sink_open,
    .sink_write = file_sink_write,
    .sink_flush = file_sink_flush,
    .sink_poll = file_sink_poll,
    .sink_free = file_sink_free,
};
