/*
 * savepoint.c — writing, verifying, restoring and describing savepoints
 * (format in savepoint.h and docs/state.md).
 *
 * Invariants:
 *   1. The writer keeps only the index in memory (one entry per non-empty
 *      key group and operator); records stream from RocksDB iterators to a
 *      buffered file.
 *   2. Readers never trust a length before checking it against the part it
 *      belongs to, so a damaged file cannot make them read or allocate past
 *      the file: every record's length is checked against its section's
 *      payload size, which the index bounds by the file size.
 *   3. Restore applies nothing until verify_all() has checked every CRC and
 *      the operator mapping has been accepted.
 *
 * Thread: see savepoint.h.
 */
#include "state/savepoint.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/hash.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HDR_FIXED 20      /* magic .. job_len */
#define SEC_HEAD 10       /* magic, operator, key group */
#define SEC_TRAIL 20      /* records, payload bytes, crc */
#define REC_HEAD 16       /* klen, vlen, ts */
#define FOOTER 24         /* index offset, index length, crc, magic */
#define IDX_ENTRY 30      /* operator, key group, offset, records, payload bytes */
#define APPLY_BATCH 1024  /* records per store commit while restoring */
#define APPLY_BYTES ((size_t)8 << 20)

static const char MAGIC_HDR[4] = {'T', 'M', 'S', 'P'};
static const char MAGIC_SEC[4] = {'T', 'M', 'K', 'G'};
static const char MAGIC_IDX[4] = {'T', 'M', 'I', 'X'};
static const char MAGIC_END[4] = {'T', 'M', 'S', 'E'};

static void le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

typedef struct sec {
    uint32_t op;
    int kg;
    uint64_t off, records, bytes;
} sec_t;

/* ===================================================================== */
/* Writer                                                                */
/* ===================================================================== */

typedef struct wr {
    FILE *f;
    uint64_t off;
    uint32_t crc; /* running CRC of the current part */
    int err;      /* errno of the first failed write, 0 if none */
} wr_t;

static void wr_bytes(wr_t *w, const void *p, size_t n)
{
    if (w->err != 0 || n == 0)
        return;
    if (fwrite(p, 1, n, w->f) != n) {
        w->err = errno ? errno : EIO;
        return;
    }
    w->crc = tm_crc32c_update(w->crc, p, n);
    w->off += n;
}

/* Writes the running CRC of the part and starts a new one. */
static void wr_crc(wr_t *w)
{
    uint8_t b[4];
    le32(b, w->crc);
    wr_bytes(w, b, 4);
    w->crc = 0;
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int push_sec(sec_t **secs, uint32_t *n, uint32_t *cap, const sec_t *s)
{
    if (*n == *cap) {
        uint32_t ncap = *cap ? *cap * 2 : 64;
        sec_t *p = realloc(*secs, sizeof(*p) * ncap);
        if (p == NULL)
            return TM_ENOMEM;
        *secs = p;
        *cap = ncap;
    }
    (*secs)[(*n)++] = *s;
    return 0;
}

/* Writes every record of (operator, key group) from all stores as one section, if any. */
static int write_keygroup(wr_t *w, tm_store_t *const *stores, int nstores, const char *uid,
                          uint32_t op, int kg, sec_t *sec, bool *wrote, char *errstr,
                          size_t errstr_size)
{
    bool started = false;
    sec->op = op;
    sec->kg = kg;
    sec->records = 0;
    sec->bytes = 0;
    for (int s = 0; s < nstores; s++) {
        tm_store_cf_t *cf = tm_store_cf_find(stores[s], uid);
        if (cf == NULL)
            continue;
        tm_store_iter_t *it;
        int rc = tm_store_iter_new(stores[s], cf, kg, kg, NULL, 0, &it);
        if (rc != 0)
            return rc;
        tm_store_entry_t e;
        while ((rc = tm_store_iter_next(it, &e, errstr, errstr_size)) == 1) {
            if (e.klen > UINT32_MAX || e.vlen > UINT32_MAX) {
                tm_store_iter_free(it);
                return tm_seterr(errstr, errstr_size, TM_EINVAL,
                                 "operator %s: a state entry of key group %d is too large for "
                                 "a savepoint",
                                 uid, kg);
            }
            if (!started) {
                uint8_t h[SEC_HEAD];
                memcpy(h, MAGIC_SEC, 4);
                le32(h + 4, op);
                le16(h + 8, (uint16_t)kg);
                w->crc = 0;
                sec->off = w->off;
                wr_bytes(w, h, sizeof(h));
                started = true;
            }
            uint8_t r[REC_HEAD];
            le32(r, (uint32_t)e.klen);
            le32(r + 4, (uint32_t)e.vlen);
            le64(r + 8, (uint64_t)e.ts_us);
            wr_bytes(w, r, sizeof(r));
            wr_bytes(w, e.key, e.klen);
            wr_bytes(w, e.val, e.vlen);
            sec->records++;
            sec->bytes += REC_HEAD + e.klen + e.vlen;
        }
        tm_store_iter_free(it);
        if (rc < 0)
            return rc;
    }
    if (started) {
        uint8_t t[16];
        le64(t, sec->records);
        le64(t + 8, sec->bytes);
        wr_bytes(w, t, sizeof(t));
        wr_crc(w);
    }
    *wrote = started;
    return 0;
}

static int fsync_parent(const char *path)
{
    char *copy = strdup(path);
    if (copy == NULL)
        return TM_ENOMEM;
    int rc = tm_fsync_dir(dirname(copy));
    free(copy);
    return rc;
}

int tm_savepoint_write(tm_store_t *const *stores, int nstores, const char *const *uids, int nuids,
                       const char *job, const char *path, tm_savepoint_stats_t *stats,
                       char *errstr, size_t errstr_size)
{
    if (nstores < 1 || nuids < 0 || (nuids > 0 && uids == NULL))
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "savepoint: no stores to write");
    if (nuids > TM_SAVEPOINT_MAX_OPERATORS)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "savepoint: %d operators, more than the format's %d", nuids,
                         TM_SAVEPOINT_MAX_OPERATORS);
    int maxp = tm_store_max_parallelism(stores[0]);
    for (int s = 1; s < nstores; s++)
        if (tm_store_max_parallelism(stores[s]) != maxp)
            return tm_seterr(errstr, errstr_size, TM_EINVAL,
                             "savepoint: the stores disagree on max_parallelism (%d and %d)", maxp,
                             tm_store_max_parallelism(stores[s]));
    size_t jlen = job ? strlen(job) : 0;
    if (jlen > UINT16_MAX)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "savepoint: job name too long");
    for (int i = 0; i < nuids; i++) {
        if (uids[i] == NULL || strlen(uids[i]) == 0 || strlen(uids[i]) > TM_STORE_UID_MAX)
            return tm_seterr(errstr, errstr_size, TM_EINVAL,
                             "savepoint: operator uid #%d is empty or too long", i);
        for (int j = 0; j < i; j++)
            if (strcmp(uids[i], uids[j]) == 0)
                return tm_seterr(errstr, errstr_size, TM_EINVAL,
                                 "savepoint: operator uid '%s' is listed twice", uids[i]);
    }

    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "savepoint path too long: %s", path);
    wr_t w = {0};
    w.f = fopen(tmp, "wbe");
    if (w.f == NULL)
        return tm_seterr(errstr, errstr_size, TM_EIO, "cannot create savepoint %s: %s", tmp,
                         strerror(errno));
    setvbuf(w.f, NULL, _IOFBF, 1 << 20);

    sec_t *secs = NULL;
    uint32_t nsecs = 0, cap = 0;
    uint64_t records = 0;
    int rc = 0;

    /* Header. */
    uint8_t h[HDR_FIXED];
    memcpy(h, MAGIC_HDR, 4);
    le16(h + 4, TM_SAVEPOINT_VERSION);
    le16(h + 6, 0);
    le64(h + 8, (uint64_t)wall_us());
    le16(h + 16, (uint16_t)maxp);
    le16(h + 18, (uint16_t)jlen);
    wr_bytes(&w, h, sizeof(h));
    wr_bytes(&w, job, jlen);
    wr_crc(&w);

    /* Sections: operator-major, then key group, so restore reads sequentially. */
    for (int op = 0; op < nuids && rc == 0 && w.err == 0; op++) {
        for (int kg = 0; kg < maxp && rc == 0 && w.err == 0; kg++) {
            sec_t sec;
            bool wrote = false;
            rc = write_keygroup(&w, stores, nstores, uids[op], (uint32_t)op, kg, &sec, &wrote,
                                errstr, errstr_size);
            if (rc == 0 && wrote) {
                records += sec.records;
                rc = push_sec(&secs, &nsecs, &cap, &sec);
            }
        }
    }

    /* Index and footer. */
    uint64_t index_off = w.off;
    if (rc == 0) {
        uint8_t b[IDX_ENTRY];
        w.crc = 0;
        wr_bytes(&w, MAGIC_IDX, 4);
        le32(b, (uint32_t)nuids);
        wr_bytes(&w, b, 4);
        for (int op = 0; op < nuids; op++) {
            size_t ul = strlen(uids[op]);
            le16(b, (uint16_t)ul);
            wr_bytes(&w, b, 2);
            wr_bytes(&w, uids[op], ul);
        }
        le32(b, nsecs);
        wr_bytes(&w, b, 4);
        for (uint32_t i = 0; i < nsecs; i++) {
            le32(b, secs[i].op);
            le16(b + 4, (uint16_t)secs[i].kg);
            le64(b + 6, secs[i].off);
            le64(b + 14, secs[i].records);
            le64(b + 22, secs[i].bytes);
            wr_bytes(&w, b, IDX_ENTRY);
        }
        wr_crc(&w);
        uint64_t index_len = w.off - index_off;
        uint8_t f[FOOTER];
        le64(f, index_off);
        le64(f + 8, index_len);
        le32(f + 16, tm_crc32c(f, 16));
        memcpy(f + 20, MAGIC_END, 4);
        wr_bytes(&w, f, sizeof(f));
    }
    free(secs);

    if (rc == 0 && w.err == 0 && fflush(w.f) != 0)
        w.err = errno;
    if (rc == 0 && w.err == 0 && fsync(fileno(w.f)) != 0)
        w.err = errno;
    if (fclose(w.f) != 0 && rc == 0 && w.err == 0)
        w.err = errno;
    if (rc == 0 && w.err != 0)
        rc = tm_seterr(errstr, errstr_size, TM_EIO, "cannot write savepoint %s: %s", tmp,
                       strerror(w.err));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = tm_seterr(errstr, errstr_size, TM_EIO, "cannot rename %s to %s: %s", tmp, path,
                       strerror(errno));
    if (rc == 0 && fsync_parent(path) != 0)
        rc = tm_seterr(errstr, errstr_size, TM_EIO, "cannot fsync the directory of %s: %s", path,
                       strerror(errno));
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    if (stats != NULL) {
        memset(stats, 0, sizeof(*stats));
        stats->bytes = w.off;
        stats->records = records;
        stats->operators = (uint32_t)nuids;
        stats->sections = nsecs;
    }
    return 0;
}

/* ===================================================================== */
/* Reader                                                                */
/* ===================================================================== */

typedef struct sp {
    const char *path;
    FILE *f;
    uint64_t size;
    int version;
    int64_t created_us;
    int maxp;
    char *job;
    uint64_t header_end;
    uint32_t nops;
    char **uids;
    uint32_t nsecs;
    sec_t *secs;
    uint64_t index_off;
} sp_t;

static int corrupt(const sp_t *sp, char *errstr, size_t errstr_size, const char *part,
                   const char *why)
{
    return tm_seterr(errstr, errstr_size, TM_ECORRUPT, "savepoint %s is corrupt: %s: %s",
                     sp->path, part, why);
}

/* Names a section for messages: "section of operator 'x', key group 3 (byte 123)". */
static const char *sec_name(const sp_t *sp, uint32_t i, char *buf, size_t n)
{
    const sec_t *s = &sp->secs[i];
    snprintf(buf, n, "section of operator '%s', key group %d (byte %" PRIu64 ")",
             s->op < sp->nops ? sp->uids[s->op] : "?", s->kg, s->off);
    return buf;
}

/* Reads exactly n bytes at the current position; false on a short read. */
static bool rd_exact(sp_t *sp, void *p, size_t n)
{
    return n == 0 || fread(p, 1, n, sp->f) == n;
}

static bool rd_at(sp_t *sp, uint64_t off, void *p, size_t n)
{
    return fseeko(sp->f, (off_t)off, SEEK_SET) == 0 && rd_exact(sp, p, n);
}

static void sp_close(sp_t *sp)
{
    if (sp->f != NULL)
        fclose(sp->f);
    for (uint32_t i = 0; sp->uids != NULL && i < sp->nops; i++)
        free(sp->uids[i]);
    free(sp->uids);
    free(sp->secs);
    free(sp->job);
    memset(sp, 0, sizeof(*sp));
}

static int read_header(sp_t *sp, char *errstr, size_t errstr_size)
{
    uint8_t h[HDR_FIXED], c[4];
    if (sp->size < HDR_FIXED + 4 + FOOTER || !rd_at(sp, 0, h, sizeof(h)))
        return corrupt(sp, errstr, errstr_size, "header", "the file is too short");
    if (memcmp(h, MAGIC_HDR, 4) != 0)
        return corrupt(sp, errstr, errstr_size, "header", "no TMSP magic: not a savepoint");
    sp->version = rd16(h + 4);
    uint32_t crc = tm_crc32c(h, sizeof(h));
    size_t jlen = rd16(h + 18);
    if (HDR_FIXED + jlen + 4 + FOOTER > sp->size)
        return corrupt(sp, errstr, errstr_size, "header", "job name runs past the end");
    if ((sp->job = malloc(jlen + 1)) == NULL)
        return TM_ENOMEM;
    if (!rd_exact(sp, sp->job, jlen) || !rd_exact(sp, c, 4))
        return corrupt(sp, errstr, errstr_size, "header", "truncated");
    sp->job[jlen] = '\0';
    crc = tm_crc32c_update(crc, sp->job, jlen);
    if (crc != rd32(c))
        return corrupt(sp, errstr, errstr_size, "header", "checksum mismatch");
    /* A newer writer may change anything after the header, so check the version only now. */
    if (sp->version != TM_SAVEPOINT_VERSION)
        return tm_seterr(errstr, errstr_size, TM_EUNSUPPORTED,
                         "savepoint %s has format version %d; this tidemark reads version %d",
                         sp->path, sp->version, TM_SAVEPOINT_VERSION);
    sp->created_us = (int64_t)rd64(h + 8);
    sp->maxp = rd16(h + 16);
    if (tm_keygroup_check(sp->maxp, 0, NULL, 0) != 0)
        return corrupt(sp, errstr, errstr_size, "header", "max_parallelism out of range");
    sp->header_end = HDR_FIXED + jlen + 4;
    return 0;
}

static int read_index(sp_t *sp, char *errstr, size_t errstr_size)
{
    uint8_t f[FOOTER];
    if (!rd_at(sp, sp->size - FOOTER, f, sizeof(f)) || memcmp(f + 20, MAGIC_END, 4) != 0)
        return corrupt(sp, errstr, errstr_size, "footer",
                       "missing end marker (the file is truncated or was not finished)");
    if (tm_crc32c(f, 16) != rd32(f + 16))
        return corrupt(sp, errstr, errstr_size, "footer", "checksum mismatch");
    uint64_t off = rd64(f), len = rd64(f + 8);
    if (off < sp->header_end || len < 16 || off > sp->size - FOOTER ||
        len != sp->size - FOOTER - off)
        return corrupt(sp, errstr, errstr_size, "footer", "index position out of range");
    sp->index_off = off;
    /* The index is bounded by the file size, which the footer check tied it to. */
    uint8_t *ix = malloc(len);
    if (ix == NULL)
        return TM_ENOMEM;
    int rc = 0;
    if (!rd_at(sp, off, ix, len)) {
        rc = corrupt(sp, errstr, errstr_size, "index", "truncated");
        goto out;
    }
    if (memcmp(ix, MAGIC_IDX, 4) != 0 || tm_crc32c(ix, len - 4) != rd32(ix + len - 4)) {
        rc = corrupt(sp, errstr, errstr_size, "index", "checksum mismatch");
        goto out;
    }
    const uint8_t *p = ix + 4, *end = ix + len - 4;
    sp->nops = rd32(p);
    p += 4;
    if (sp->nops > TM_SAVEPOINT_MAX_OPERATORS || sp->nops > (uint64_t)(end - p) / 2) {
        rc = corrupt(sp, errstr, errstr_size, "index", "operator count out of range");
        goto out;
    }
    if ((sp->uids = calloc(sp->nops ? sp->nops : 1, sizeof(char *))) == NULL) {
        rc = TM_ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < sp->nops; i++) {
        if (end - p < 2 || rd16(p) == 0 || rd16(p) > TM_STORE_UID_MAX || end - p - 2 < rd16(p)) {
            rc = corrupt(sp, errstr, errstr_size, "index", "operator uid out of range");
            goto out;
        }
        size_t ul = rd16(p);
        if ((sp->uids[i] = malloc(ul + 1)) == NULL) {
            rc = TM_ENOMEM;
            goto out;
        }
        memcpy(sp->uids[i], p + 2, ul);
        sp->uids[i][ul] = '\0';
        p += 2 + ul;
        for (uint32_t j = 0; j < i; j++) {
            if (strcmp(sp->uids[i], sp->uids[j]) == 0) {
                rc = corrupt(sp, errstr, errstr_size, "index", "an operator uid appears twice");
                goto out;
            }
        }
    }
    if (end - p < 4) {
        rc = corrupt(sp, errstr, errstr_size, "index", "truncated section table");
        goto out;
    }
    sp->nsecs = rd32(p);
    p += 4;
    if ((uint64_t)(end - p) != (uint64_t)sp->nsecs * IDX_ENTRY) {
        rc = corrupt(sp, errstr, errstr_size, "index", "section table has the wrong size");
        goto out;
    }
    if ((sp->secs = calloc(sp->nsecs ? sp->nsecs : 1, sizeof(sec_t))) == NULL) {
        rc = TM_ENOMEM;
        goto out;
    }
    /* Invariant 2 of savepoint.h: sections in order, tiling [header_end, index_off). */
    uint64_t expect = sp->header_end;
    for (uint32_t i = 0; i < sp->nsecs; i++, p += IDX_ENTRY) {
        sec_t *s = &sp->secs[i];
        s->op = rd32(p);
        s->kg = rd16(p + 4);
        s->off = rd64(p + 6);
        s->records = rd64(p + 14);
        s->bytes = rd64(p + 22);
        bool ordered = i == 0 || s->op > sp->secs[i - 1].op ||
                       (s->op == sp->secs[i - 1].op && s->kg > sp->secs[i - 1].kg);
        /* Room for the section's head and trailer between its payload and the index. */
        bool fits = s->bytes <= sp->index_off - s->off &&
                    sp->index_off - s->off - s->bytes >= SEC_HEAD + SEC_TRAIL;
        if (s->op >= sp->nops || s->kg >= sp->maxp || !ordered || s->off != expect || !fits) {
            rc = corrupt(sp, errstr, errstr_size, "index", "section table inconsistent");
            goto out;
        }
        expect = s->off + SEC_HEAD + s->bytes + SEC_TRAIL;
    }
    if (expect != sp->index_off)
        rc = corrupt(sp, errstr, errstr_size, "index",
                     "sections do not end where the index starts");
out:
    free(ix);
    return rc;
}

static int sp_open(sp_t *sp, const char *path, char *errstr, size_t errstr_size)
{
    struct stat st;
    memset(sp, 0, sizeof(*sp));
    sp->path = path;
    sp->f = fopen(path, "rbe");
    if (sp->f == NULL)
        return tm_seterr(errstr, errstr_size, errno == ENOENT ? TM_ENOTFOUND : TM_EIO,
                         "cannot open savepoint %s: %s", path, strerror(errno));
    if (fstat(fileno(sp->f), &st) != 0)
        return tm_seterr(errstr, errstr_size, TM_EIO, "cannot stat savepoint %s: %s", path,
                         strerror(errno));
    sp->size = (uint64_t)st.st_size;
    int rc = read_header(sp, errstr, errstr_size);
    return rc != 0 ? rc : read_index(sp, errstr, errstr_size);
}

/* Streams n bytes through the CRC. */
static bool crc_through(sp_t *sp, uint64_t n, uint32_t *crc)
{
    uint8_t buf[65536];
    while (n > 0) {
        size_t k = n < sizeof(buf) ? (size_t)n : sizeof(buf);
        if (!rd_exact(sp, buf, k))
            return false;
        *crc = tm_crc32c_update(*crc, buf, k);
        n -= k;
    }
    return true;
}

static int verify_section(sp_t *sp, uint32_t i, char *errstr, size_t errstr_size)
{
    const sec_t *s = &sp->secs[i];
    char name[TM_STORE_UID_MAX + 96];
    uint8_t h[SEC_HEAD], r[REC_HEAD], t[SEC_TRAIL];
    sec_name(sp, i, name, sizeof(name));
    if (!rd_at(sp, s->off, h, sizeof(h)))
        return corrupt(sp, errstr, errstr_size, name, "truncated");
    if (memcmp(h, MAGIC_SEC, 4) != 0 || rd32(h + 4) != s->op || rd16(h + 8) != s->kg)
        return corrupt(sp, errstr, errstr_size, name, "section header does not match the index");
    uint32_t crc = tm_crc32c(h, sizeof(h));
    uint64_t left = s->bytes, count = 0;
    while (left > 0) {
        if (left < REC_HEAD || !rd_exact(sp, r, sizeof(r)))
            return corrupt(sp, errstr, errstr_size, name, "record header runs past the section");
        crc = tm_crc32c_update(crc, r, sizeof(r));
        left -= REC_HEAD;
        uint64_t kv = (uint64_t)rd32(r) + rd32(r + 4);
        if (kv > left)
            return corrupt(sp, errstr, errstr_size, name, "record runs past the section");
        if (!crc_through(sp, kv, &crc))
            return corrupt(sp, errstr, errstr_size, name, "truncated");
        left -= kv;
        count++;
    }
    if (!rd_exact(sp, t, sizeof(t)))
        return corrupt(sp, errstr, errstr_size, name, "truncated");
    crc = tm_crc32c_update(crc, t, 16);
    if (crc != rd32(t + 16))
        return corrupt(sp, errstr, errstr_size, name, "checksum mismatch");
    if (rd64(t) != count || count != s->records || rd64(t + 8) != s->bytes)
        return corrupt(sp, errstr, errstr_size, name, "record count does not match the index");
    return 0;
}

static int verify_all(sp_t *sp, char *errstr, size_t errstr_size)
{
    for (uint32_t i = 0; i < sp->nsecs; i++) {
        int rc = verify_section(sp, i, errstr, errstr_size);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- restore ---- */

/* The stores operator `op` of the target restores into, and how many. */
static tm_store_t *const *tgt_stores(const tm_savepoint_target_t *t, int op, int *n)
{
    if (t->uid_stores != NULL) {
        *n = t->uid_nstores[op];
        return t->uid_stores[op];
    }
    *n = t->nstores;
    return t->stores;
}

static int apply_section(sp_t *sp, uint32_t i, tm_store_batch_t *b, tm_store_cf_t *cf,
                         tm_buf_t *buf, char *errstr, size_t errstr_size)
{
    const sec_t *s = &sp->secs[i];
    if (fseeko(sp->f, (off_t)(s->off + SEC_HEAD), SEEK_SET) != 0)
        return tm_seterr(errstr, errstr_size, TM_EIO, "savepoint %s: seek failed: %s", sp->path,
                         strerror(errno));
    size_t pending = 0;
    for (uint64_t n = 0; n < s->records; n++) {
        uint8_t r[REC_HEAD];
        if (!rd_exact(sp, r, sizeof(r)))
            return tm_seterr(errstr, errstr_size, TM_EIO, "savepoint %s: read failed",
                             sp->path);
        size_t kl = rd32(r), vl = rd32(r + 4);
        tm_buf_clear(buf);
        if (tm_buf_reserve(buf, kl + vl + 1) != 0)
            return TM_ENOMEM;
        if (!rd_exact(sp, buf->data, kl + vl))
            return tm_seterr(errstr, errstr_size, TM_EIO, "savepoint %s: read failed",
                             sp->path);
        int rc = tm_store_batch_put_ts(b, cf, s->kg, buf->data, kl, buf->data + kl, vl,
                                       (int64_t)rd64(r + 8));
        if (rc != 0)
            return rc;
        pending += kl + vl;
        /* Bounded memory: commit every few thousand records or megabytes. */
        if (tm_store_batch_count(b) >= APPLY_BATCH || pending >= APPLY_BYTES) {
            rc = tm_store_batch_commit(b, errstr, errstr_size);
            if (rc != 0)
                return rc;
            pending = 0;
        }
    }
    return tm_store_batch_commit(b, errstr, errstr_size);
}

static int find_uid(const tm_savepoint_target_t *t, const char *uid)
{
    for (int i = 0; i < t->nuids; i++)
        if (strcmp(t->uids[i], uid) == 0)
            return i;
    return -1;
}

/* Invariant 3 and keygroup.h's bounds, for every store of every target operator. */
static int check_target(const sp_t *sp, const tm_savepoint_target_t *t, const char *path,
                        char *errstr, size_t errstr_size)
{
    int nsets = t->uid_stores != NULL ? t->nuids : 1;
    for (int op = 0; op < nsets; op++) {
        int n;
        tm_store_t *const *stores = tgt_stores(t, op, &n);
        if (n < 1 || stores == NULL)
            return tm_seterr(errstr, errstr_size, TM_EINVAL,
                             "savepoint restore: no target stores");
        for (int w = 0; w < n; w++) {
            int m = tm_store_max_parallelism(stores[w]);
            if (m != sp->maxp)
                return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                                 "savepoint %s was taken with max_parallelism = %d but the job "
                                 "runs with %d; max_parallelism cannot change across a savepoint",
                                 path, sp->maxp, m);
        }
        int rc = tm_keygroup_check(sp->maxp, n, errstr, errstr_size);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int tm_savepoint_restore(const char *path, const tm_savepoint_target_t *t,
                         tm_savepoint_stats_t *stats, char *errstr, size_t errstr_size)
{
    if (t == NULL || t->nuids < 0 || (t->nuids > 0 && t->uids == NULL) ||
        (t->uid_stores == NULL && (t->nstores < 1 || t->stores == NULL)) ||
        (t->uid_stores != NULL && t->uid_nstores == NULL))
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "savepoint restore: no target stores");
    sp_t sp;
    int rc = sp_open(&sp, path, errstr, errstr_size);
    if (rc == 0)
        rc = verify_all(&sp, errstr, errstr_size);
    if (rc == 0)
        rc = check_target(&sp, t, path, errstr, errstr_size);
    if (rc != 0) {
        sp_close(&sp);
        return rc;
    }
    /* One write batch and column family per (target operator, subtask), made on first use. */
    int maxn = 1;
    for (int op = 0; op < t->nuids; op++) {
        int n;
        tgt_stores(t, op, &n);
        if (n > maxn)
            maxn = n;
    }
    size_t ncells = (size_t)(t->nuids ? t->nuids : 1) * (size_t)maxn;
    /* Map savepoint operators to the new plan before touching any store (invariant 3). */
    int *map = calloc(sp.nops ? sp.nops : 1, sizeof(int));
    tm_store_batch_t **batches = calloc(ncells, sizeof(*batches));
    tm_store_cf_t **cfs = calloc(ncells, sizeof(*cfs));
    tm_buf_t buf;
    tm_buf_init(&buf);
    uint32_t skipped = 0, restored_ops = 0;
    uint64_t records = 0;
    if (map == NULL || batches == NULL || cfs == NULL) {
        rc = TM_ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < sp.nops; i++) {
        map[i] = find_uid(t, sp.uids[i]);
        if (map[i] >= 0) {
            restored_ops++;
            continue;
        }
        if (!t->allow_non_restored) {
            rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                           "savepoint %s holds state of operator '%s', which the job no longer "
                           "has; restore with --allow-non-restored-state to drop that state",
                           path, sp.uids[i]);
            goto out;
        }
        skipped++;
    }
    /* Column families are created only for operators that have records to restore. */
    for (uint32_t i = 0; i < sp.nsecs && rc == 0; i++) {
        const sec_t *s = &sp.secs[i];
        int op = map[s->op];
        if (op < 0)
            continue;
        int n;
        tm_store_t *const *stores = tgt_stores(t, op, &n);
        int w = tm_keygroup_worker(s->kg, n, sp.maxp);
        if (NEVER(w < 0)) {
            rc = TM_EINVAL;
            break;
        }
        size_t cell = (size_t)op * (size_t)maxn + (size_t)w;
        if (batches[cell] == NULL && (rc = tm_store_batch_new(stores[w], &batches[cell])) != 0)
            break;
        if (cfs[cell] == NULL &&
            (rc = tm_store_cf(stores[w], t->uids[op], &cfs[cell], errstr, errstr_size)) != 0)
            break;
        rc = apply_section(&sp, i, batches[cell], cfs[cell], &buf, errstr, errstr_size);
        records += s->records;
    }
out:
    for (size_t c = 0; batches != NULL && c < ncells; c++)
        tm_store_batch_free(batches[c]);
    free(batches);
    free(cfs);
    free(map);
    tm_buf_release(&buf);
    if (rc == 0 && stats != NULL) {
        memset(stats, 0, sizeof(*stats));
        stats->bytes = sp.size;
        stats->records = records;
        stats->operators = restored_ops;
        stats->sections = sp.nsecs;
        stats->skipped = skipped;
    }
    sp_close(&sp);
    return rc;
}

/* ---- describe ---- */

int tm_savepoint_describe(const char *path, tm_savepoint_describe_fn fn, void *arg, char *errstr,
                          size_t errstr_size)
{
    sp_t sp;
    int rc = sp_open(&sp, path, errstr, errstr_size);
    if (rc == 0)
        rc = verify_all(&sp, errstr, errstr_size);
    if (rc != 0) {
        sp_close(&sp);
        return rc;
    }
    tm_savepoint_desc_t d = {
        .part = TM_SAVEPOINT_HEADER,
        .job = sp.job,
        .created_us = sp.created_us,
        .version = sp.version,
        .max_parallelism = sp.maxp,
        .noperators = sp.nops,
        .keygroups = sp.nsecs,
        .bytes = sp.size,
    };
    for (uint32_t i = 0; i < sp.nsecs; i++)
        d.records += sp.secs[i].records;
    fn(arg, &d);
    uint32_t i = 0;
    for (uint32_t op = 0; op < sp.nops; op++) {
        uint32_t first = i;
        tm_savepoint_desc_t o = {.part = TM_SAVEPOINT_OPERATOR, .uid = sp.uids[op], .kg = -1};
        for (; i < sp.nsecs && sp.secs[i].op == op; i++) {
            o.keygroups++;
            o.records += sp.secs[i].records;
            o.bytes += sp.secs[i].bytes;
        }
        fn(arg, &o);
        for (uint32_t k = first; k < i; k++) {
            tm_savepoint_desc_t g = {
                .part = TM_SAVEPOINT_KEYGROUP,
                .uid = sp.uids[op],
                .kg = sp.secs[k].kg,
                .keygroups = 1,
                .records = sp.secs[k].records,
                .bytes = sp.secs[k].bytes,
            };
            fn(arg, &g);
        }
    }
    sp_close(&sp);
    return 0;
}
