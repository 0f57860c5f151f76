/*
 * txbuf.c — spill files for streamed transactions (see txbuf.h).
 *
 * Invariants:
 *   1. A record is written as one fwrite of its header followed by one of its
 *      body; a short file (crash, full disk) is detected on replay as
 *      TM_ECORRUPT, never read past.
 *   2. The set of aborted subtransactions is kept per top-level transaction in
 *      memory: it is small (one xid per rolled-back savepoint) and dies with
 *      the connection, exactly like the files.
 *   3. No fsync: spill files are scratch space for one connection.  After a
 *      crash the server re-sends the transaction and stale files are deleted.
 *
 * Thread: the source thread.
 */
#include "postgres/txbuf.h"

#include "core/error.h"
#include "core/fsutil.h"
#include "postgres/pgoutput.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REC_HDR 16
/* A pgoutput message is at most 1 GB (a single varlena); anything larger is damage. */
#define REC_MAX (UINT32_C(1) << 30)

typedef struct txn {
    uint32_t xid;
    uint64_t bytes;
    uint32_t *aborted;
    size_t naborted, cap;
} txn_t;

struct tm_pg_txbuf {
    char *dir;
    txn_t *txns;
    size_t ntxns, cap;
    FILE *cur; /* the open stream block's file */
    txn_t *cur_txn;
    uint32_t cur_xid;
};

struct tm_pg_txreplay {
    FILE *f;
    char *path;
    uint32_t *aborted;
    size_t naborted;
    uint8_t *buf;
    size_t cap;
    off_t size; /* the spill file's length, so a record's length is checked before its buffer */
};

static char *spill_path(const char *dir, uint32_t xid)
{
    size_t n = strlen(dir) + 32;
    char *p = malloc(n);
    if (p != NULL)
        snprintf(p, n, "%s/%" PRIu32 ".spill", dir, xid);
    return p;
}

static int remove_spills(const char *dir, char *errstr, size_t errstr_size)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return tm_seterr(errstr, errstr_size, TM_EIO, "cannot open spill directory %s: %s", dir,
                         strerror(errno));
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 7 || strcmp(de->d_name + n - 6, ".spill") != 0)
            continue;
        size_t plen = strlen(dir) + n + 2;
        char *p = malloc(plen);
        if (p == NULL) {
            rc = TM_ENOMEM;
            break;
        }
        snprintf(p, plen, "%s/%s", dir, de->d_name);
        if (unlink(p) != 0 && errno != ENOENT)
            rc = tm_seterr(errstr, errstr_size, TM_EIO, "cannot delete spill file %s: %s", p,
                           strerror(errno));
        free(p);
    }
    closedir(d);
    return rc;
}

int tm_pg_txbuf_new(tm_pg_txbuf_t **out, const char *dir, char *errstr, size_t errstr_size)
{
    *out = NULL;
    if (tm_mkdir_p(dir, 0700) != 0)
        return tm_seterr(errstr, errstr_size, TM_EIO, "cannot create spill directory %s: %s",
                         dir, strerror(errno));
    int rc = remove_spills(dir, errstr, errstr_size);
    if (rc != 0)
        return rc;
    tm_pg_txbuf_t *tb = calloc(1, sizeof(*tb));
    if (tb == NULL || (tb->dir = strdup(dir)) == NULL) {
        free(tb);
        return TM_ENOMEM;
    }
    *out = tb;
    return 0;
}

static void txn_forget(tm_pg_txbuf_t *tb, txn_t *t)
{
    free(t->aborted);
    size_t i = (size_t)(t - tb->txns);
    tb->txns[i] = tb->txns[--tb->ntxns];
}

tm_pg_txbuf_t *tm_pg_txbuf_free(tm_pg_txbuf_t *tb)
{
    if (tb == NULL)
        return NULL;
    tm_pg_txbuf_reset(tb, NULL, 0);
    free(tb->txns);
    free(tb->dir);
    free(tb);
    return NULL;
}

int tm_pg_txbuf_reset(tm_pg_txbuf_t *tb, char *errstr, size_t errstr_size)
{
    if (tb->cur != NULL)
        fclose(tb->cur);
    tb->cur = NULL;
    tb->cur_txn = NULL;
    while (tb->ntxns > 0)
        txn_forget(tb, &tb->txns[0]);
    return remove_spills(tb->dir, errstr, errstr_size);
}

static txn_t *txn_find(const tm_pg_txbuf_t *tb, uint32_t xid)
{
    for (size_t i = 0; i < tb->ntxns; i++)
        if (tb->txns[i].xid == xid)
            return &tb->txns[i];
    return NULL;
}

bool tm_pg_txbuf_has(const tm_pg_txbuf_t *tb, uint32_t xid)
{
    return txn_find(tb, xid) != NULL;
}

size_t tm_pg_txbuf_count(const tm_pg_txbuf_t *tb)
{
    return tb->ntxns;
}

uint64_t tm_pg_txbuf_size(const tm_pg_txbuf_t *tb, uint32_t xid)
{
    const txn_t *t = txn_find(tb, xid);
    return t != NULL ? t->bytes : 0;
}

int tm_pg_txbuf_block_start(tm_pg_txbuf_t *tb, uint32_t xid, char *errstr, size_t errstr_size)
{
    int rc = tm_pg_txbuf_block_stop(tb, errstr, errstr_size);
    if (rc != 0)
        return rc;
    txn_t *t = txn_find(tb, xid);
    if (t == NULL) {
        if (tb->ntxns == tb->cap) {
            size_t ncap = tb->cap ? tb->cap * 2 : 8;
            txn_t *v = realloc(tb->txns, ncap * sizeof(*v));
            if (v == NULL)
                return TM_ENOMEM;
            tb->txns = v;
            tb->cap = ncap;
        }
        t = &tb->txns[tb->ntxns++];
        memset(t, 0, sizeof(*t));
        t->xid = xid;
    }
    char *path = spill_path(tb->dir, xid);
    if (path == NULL)
        return TM_ENOMEM;
    /* A new transaction truncates whatever an earlier, forgotten one left under that xid. */
    tb->cur = fopen(path, t->bytes == 0 ? "wb" : "ab");
    if (tb->cur == NULL) {
        rc = tm_seterr(errstr, errstr_size, TM_EIO, "cannot open spill file %s: %s", path,
                       strerror(errno));
        free(path);
        return rc;
    }
    free(path);
    tb->cur_txn = t;
    tb->cur_xid = xid;
    return 0;
}

int tm_pg_txbuf_block_stop(tm_pg_txbuf_t *tb, char *errstr, size_t errstr_size)
{
    if (tb->cur == NULL)
        return 0;
    int bad = ferror(tb->cur);
    int rc = fclose(tb->cur);
    tb->cur = NULL;
    tb->cur_txn = NULL;
    if (bad || rc != 0)
        return tm_seterr(errstr, errstr_size, TM_EIO,
                         "cannot write spill file for transaction %" PRIu32 " in %s", tb->cur_xid,
                         tb->dir);
    return 0;
}

int tm_pg_txbuf_append(tm_pg_txbuf_t *tb, uint32_t subxid, uint64_t lsn, const uint8_t *msg,
                       size_t len, char *errstr, size_t errstr_size)
{
    if (tb->cur == NULL)
        return tm_seterr(errstr, errstr_size, TM_EPROTO,
                         "streamed change outside a Stream Start/Stop block");
    if (len >= REC_MAX)
        return tm_seterr(errstr, errstr_size, TM_EPROTO, "streamed message too large (%zu bytes)",
                         len);
    uint8_t hdr[REC_HDR];
    tm_pg_put_u32(hdr, (uint32_t)len);
    tm_pg_put_u32(hdr + 4, subxid);
    tm_pg_put_u64(hdr + 8, lsn);
    if (fwrite(hdr, 1, REC_HDR, tb->cur) != REC_HDR ||
        (len > 0 && fwrite(msg, 1, len, tb->cur) != len))
        return tm_seterr(errstr, errstr_size, TM_EIO,
                         "cannot write spill file for transaction %" PRIu32 " in %s: %s",
                         tb->cur_xid, tb->dir, strerror(errno));
    tb->cur_txn->bytes += REC_HDR + len;
    return 0;
}

int tm_pg_txbuf_abort(tm_pg_txbuf_t *tb, uint32_t xid, uint32_t subxid, char *errstr,
                      size_t errstr_size)
{
    txn_t *t = txn_find(tb, xid);
    if (t == NULL)
        return 0; /* nothing was spilled (e.g. it was all filtered) */
    if (subxid == xid) {
        if (tb->cur_txn == t) {
            fclose(tb->cur);
            tb->cur = NULL;
            tb->cur_txn = NULL;
        }
        char *path = spill_path(tb->dir, xid);
        if (path == NULL)
            return TM_ENOMEM;
        int rc = 0;
        if (unlink(path) != 0 && errno != ENOENT)
            rc = tm_seterr(errstr, errstr_size, TM_EIO, "cannot delete spill file %s: %s", path,
                           strerror(errno));
        free(path);
        txn_forget(tb, t);
        /* txn_forget moved the last entry; cur_txn may have pointed at it. */
        if (tb->cur != NULL)
            tb->cur_txn = txn_find(tb, tb->cur_xid);
        return rc;
    }
    if (t->naborted == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 8;
        uint32_t *v = realloc(t->aborted, ncap * sizeof(*v));
        if (v == NULL)
            return TM_ENOMEM;
        t->aborted = v;
        t->cap = ncap;
    }
    t->aborted[t->naborted++] = subxid;
    return 0;
}

int tm_pg_txbuf_replay(tm_pg_txbuf_t *tb, uint32_t xid, tm_pg_txreplay_t **out, char *errstr,
                       size_t errstr_size)
{
    *out = NULL;
    tm_pg_txreplay_t *rp = calloc(1, sizeof(*rp));
    if (rp == NULL)
        return TM_ENOMEM;
    txn_t *t = txn_find(tb, xid);
    if (t == NULL) {
        *out = rp; /* an empty replay: nothing was spilled */
        return 0;
    }
    if (tb->cur_txn == t) {
        int rc = tm_pg_txbuf_block_stop(tb, errstr, errstr_size);
        if (rc != 0) {
            free(rp);
            return rc;
        }
    }
    rp->path = spill_path(tb->dir, xid);
    rp->aborted = t->aborted;
    rp->naborted = t->naborted;
    t->aborted = NULL;
    txn_forget(tb, t);
    if (tb->cur != NULL)
        tb->cur_txn = txn_find(tb, tb->cur_xid);
    if (rp->path == NULL) {
        tm_pg_txreplay_free(rp);
        return TM_ENOMEM;
    }
    rp->f = fopen(rp->path, "rb");
    struct stat st;
    if (rp->f == NULL || fstat(fileno(rp->f), &st) != 0) {
        int rc = tm_seterr(errstr, errstr_size, TM_EIO, "cannot open spill file %s: %s",
                           rp->path, strerror(errno));
        tm_pg_txreplay_free(rp);
        return rc;
    }
    rp->size = st.st_size;
    *out = rp;
    return 0;
}

static bool is_aborted(const tm_pg_txreplay_t *rp, uint32_t subxid)
{
    for (size_t i = 0; i < rp->naborted; i++)
        if (rp->aborted[i] == subxid)
            return true;
    return false;
}

int tm_pg_txreplay_next(tm_pg_txreplay_t *rp, uint32_t *subxid, uint64_t *lsn,
                        const uint8_t **msg, size_t *len, char *errstr, size_t errstr_size)
{
    if (rp->f == NULL)
        return 0;
    for (;;) {
        uint8_t hdr[REC_HDR];
        size_t n = fread(hdr, 1, REC_HDR, rp->f);
        if (n == 0 && feof(rp->f))
            return 0;
        if (n != REC_HDR)
            return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                             "spill file %s ends inside a record header", rp->path);
        uint32_t rlen = tm_pg_get_u32(hdr);
        off_t at = ftello(rp->f);
        if (rlen >= REC_MAX || at < 0 || (off_t)rlen > rp->size - at)
            return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                             "spill file %s has a record of %" PRIu32 " bytes%s", rp->path, rlen,
                             rlen < REC_MAX ? ", past its end" : "");
        if (rlen + 1 > rp->cap) {
            size_t ncap = rp->cap ? rp->cap : 256;
            while (ncap < (size_t)rlen + 1)
                ncap *= 2;
            uint8_t *b = realloc(rp->buf, ncap);
            if (b == NULL)
                return TM_ENOMEM;
            rp->buf = b;
            rp->cap = ncap;
        }
        if (rlen > 0 && fread(rp->buf, 1, rlen, rp->f) != rlen)
            return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                             "spill file %s ends inside a record", rp->path);
        uint32_t sx = tm_pg_get_u32(hdr + 4);
        bool catalog =
            rlen > 0 && (rp->buf[0] == TM_PG_MSG_RELATION || rp->buf[0] == TM_PG_MSG_TYPE);
        if (!catalog && is_aborted(rp, sx))
            continue;
        *subxid = sx;
        *lsn = tm_pg_get_u64(hdr + 8);
        *msg = rp->buf;
        *len = rlen;
        return 1;
    }
}

tm_pg_txreplay_t *tm_pg_txreplay_free(tm_pg_txreplay_t *rp)
{
    if (rp == NULL)
        return NULL;
    if (rp->f != NULL)
        fclose(rp->f);
    if (rp->path != NULL)
        unlink(rp->path);
    free(rp->path);
    free(rp->aborted);
    free(rp->buf);
    free(rp);
    return NULL;
}
