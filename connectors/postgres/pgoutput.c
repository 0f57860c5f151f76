/*
 * pgoutput.c — decoder of pgoutput messages and replication CopyData frames.
 *
 * Layouts follow PostgreSQL's "Logical Replication Message Formats" and
 * "Streaming Replication Protocol" documentation (PostgreSQL 15).  All
 * integers are big-endian.
 *
 * Invariants (see pgoutput.h): nothing is read past the end of the input,
 * every message is consumed exactly, and scratch arrays are sized only after
 * checking that the input holds at least one byte per element, so a corrupt
 * count cannot make the decoder allocate more than the message is long.
 *
 * Thread: a decoder belongs to one thread.
 */
#include "postgres/pgoutput.h"

#include "core/error.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tm_pg_decoder {
    int proto_version;
    bool in_stream;
    tm_pg_relcol_t *relcols;
    size_t relcols_cap;
    tm_pg_tuple_col_t *tupcols[2]; /* old and new tuple */
    size_t tupcols_cap[2];
    uint32_t *relids;
    size_t relids_cap;
};

/* A read cursor over one message.  `field` names what is being read, for errors. */
typedef struct reader {
    const uint8_t *p;
    const uint8_t *end;
    const char *what; /* message kind, for errors */
    char *errstr;
    size_t errstr_size;
} reader_t;

static int short_read(reader_t *r, const char *field)
{
    return tm_seterr(r->errstr, r->errstr_size, TM_EPROTO,
                     "pgoutput %s message truncated while reading %s", r->what, field);
}

static int rd_u8(reader_t *r, const char *field, uint8_t *out)
{
    if (r->end - r->p < 1)
        return short_read(r, field);
    *out = *r->p++;
    return 0;
}

static int rd_u16(reader_t *r, const char *field, uint16_t *out)
{
    if (r->end - r->p < 2)
        return short_read(r, field);
    *out = (uint16_t)((r->p[0] << 8) | r->p[1]);
    r->p += 2;
    return 0;
}

static int rd_u32(reader_t *r, const char *field, uint32_t *out)
{
    if (r->end - r->p < 4)
        return short_read(r, field);
    *out = tm_pg_get_u32(r->p);
    r->p += 4;
    return 0;
}

static int rd_u64(reader_t *r, const char *field, uint64_t *out)
{
    if (r->end - r->p < 8)
        return short_read(r, field);
    *out = tm_pg_get_u64(r->p);
    r->p += 8;
    return 0;
}

static int rd_i64(reader_t *r, const char *field, int64_t *out)
{
    uint64_t v = 0; /* set by rd_u64 on success; -O3 cannot see that */
    int rc = rd_u64(r, field, &v);
    if (rc == 0)
        *out = (int64_t)v;
    return rc;
}

/* A NUL-terminated string; the NUL must lie inside the message. */
static int rd_str(reader_t *r, const char *field, const char **out)
{
    const uint8_t *nul = memchr(r->p, '\0', (size_t)(r->end - r->p));
    if (nul == NULL)
        return short_read(r, field);
    *out = (const char *)r->p;
    r->p = nul + 1;
    return 0;
}

static int rd_bytes(reader_t *r, const char *field, uint32_t len, const uint8_t **out)
{
    if ((uint64_t)(r->end - r->p) < len)
        return short_read(r, field);
    *out = r->p;
    r->p += len;
    return 0;
}

static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < n)
        ncap *= 2;
    void *p = realloc(*arr, ncap * elem);
    if (p == NULL)
        return TM_ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

tm_pg_decoder_t *tm_pg_decoder_new(int proto_version)
{
    if (proto_version != 1 && proto_version != 2)
        return NULL;
    tm_pg_decoder_t *dec = calloc(1, sizeof(*dec));
    if (dec != NULL)
        dec->proto_version = proto_version;
    return dec;
}

tm_pg_decoder_t *tm_pg_decoder_free(tm_pg_decoder_t *dec)
{
    if (dec == NULL)
        return NULL;
    free(dec->relcols);
    free(dec->tupcols[0]);
    free(dec->tupcols[1]);
    free(dec->relids);
    free(dec);
    return NULL;
}

void tm_pg_decoder_set_stream(tm_pg_decoder_t *dec, bool in_stream)
{
    dec->in_stream = in_stream;
}

bool tm_pg_decoder_in_stream(const tm_pg_decoder_t *dec)
{
    return dec->in_stream;
}

static int rd_tuple(tm_pg_decoder_t *dec, reader_t *r, int which, tm_pg_tuple_t *tup)
{
    uint16_t ncols = 0;
    int rc = rd_u16(r, "tuple column count", &ncols);
    if (rc != 0)
        return rc;
    /* Every column takes at least its kind byte. */
    if ((size_t)(r->end - r->p) < ncols)
        return short_read(r, "tuple columns");
    if (grow((void **)&dec->tupcols[which], &dec->tupcols_cap[which], ncols ? ncols : 1,
             sizeof(tm_pg_tuple_col_t)) != 0)
        return TM_ENOMEM;
    tm_pg_tuple_col_t *cols = dec->tupcols[which];
    for (uint16_t i = 0; i < ncols; i++) {
        uint8_t kind = 0;
        if ((rc = rd_u8(r, "tuple column kind", &kind)) != 0)
            return rc;
        cols[i].kind = (char)kind;
        cols[i].len = 0;
        cols[i].data = NULL;
        switch (kind) {
        case TM_PG_COL_NULL:
        case TM_PG_COL_UNCHANGED:
            break;
        case TM_PG_COL_TEXT:
        case TM_PG_COL_BINARY:
            if ((rc = rd_u32(r, "tuple column length", &cols[i].len)) != 0)
                return rc;
            if (cols[i].len > (uint32_t)INT32_MAX)
                return tm_seterr(r->errstr, r->errstr_size, TM_EPROTO,
                                 "pgoutput %s message: column %u has invalid length %" PRIu32,
                                 r->what, i + 1, cols[i].len);
            if ((rc = rd_bytes(r, "tuple column value", cols[i].len, &cols[i].data)) != 0)
                return rc;
            break;
        default:
            return tm_seterr(r->errstr, r->errstr_size, TM_EPROTO,
                             "pgoutput %s message: column %u has unknown kind 0x%02x", r->what,
                             i + 1, kind);
        }
    }
    tup->ncols = ncols;
    tup->cols = cols;
    return 0;
}

static int rd_stream_xid(tm_pg_decoder_t *dec, reader_t *r, tm_pg_msg_t *msg)
{
    if (dec->proto_version < 2 || !dec->in_stream)
        return 0;
    msg->has_xid = true;
    return rd_u32(r, "xid", &msg->xid);
}

static int dec_relation(tm_pg_decoder_t *dec, reader_t *r, tm_pg_msg_t *msg)
{
    int rc;
    uint8_t replident = 0;
    uint16_t ncols = 0;
    if ((rc = rd_stream_xid(dec, r, msg)) != 0 ||
        (rc = rd_u32(r, "relation id", &msg->u.relation.relid)) != 0 ||
        (rc = rd_str(r, "namespace", &msg->u.relation.nspname)) != 0 ||
        (rc = rd_str(r, "relation name", &msg->u.relation.relname)) != 0 ||
        (rc = rd_u8(r, "replica identity", &replident)) != 0 ||
        (rc = rd_u16(r, "column count", &ncols)) != 0)
        return rc;
    msg->u.relation.replident = (char)replident;
    /* A column is at least flags, an empty name's NUL, type oid and typmod. */
    if ((size_t)(r->end - r->p) / 10 < ncols)
        return short_read(r, "columns");
    if (grow((void **)&dec->relcols, &dec->relcols_cap, ncols ? ncols : 1,
             sizeof(tm_pg_relcol_t)) != 0)
        return TM_ENOMEM;
    for (uint16_t i = 0; i < ncols; i++) {
        tm_pg_relcol_t *c = &dec->relcols[i];
        uint32_t typmod = 0;
        if ((rc = rd_u8(r, "column flags", &c->flags)) != 0 ||
            (rc = rd_str(r, "column name", &c->name)) != 0 ||
            (rc = rd_u32(r, "column type", &c->type_oid)) != 0 ||
            (rc = rd_u32(r, "column type modifier", &typmod)) != 0)
            return rc;
        c->typmod = (int32_t)typmod;
    }
    msg->u.relation.ncols = ncols;
    msg->u.relation.cols = dec->relcols;
    return 0;
}

static int dec_change(tm_pg_decoder_t *dec, reader_t *r, tm_pg_msg_t *msg)
{
    int rc;
    uint8_t part = 0;
    if ((rc = rd_stream_xid(dec, r, msg)) != 0 ||
        (rc = rd_u32(r, "relation id", &msg->u.change.relid)) != 0 ||
        (rc = rd_u8(r, "tuple kind", &part)) != 0)
        return rc;
    msg->u.change.old_kind = 0;
    if (msg->tag != TM_PG_MSG_INSERT && (part == 'K' || part == 'O')) {
        msg->u.change.old_kind = (char)part;
        if ((rc = rd_tuple(dec, r, 0, &msg->u.change.oldtup)) != 0)
            return rc;
        if (msg->tag == TM_PG_MSG_DELETE)
            return 0;
        if ((rc = rd_u8(r, "new tuple kind", &part)) != 0)
            return rc;
    }
    if (msg->tag == TM_PG_MSG_DELETE)
        return tm_seterr(r->errstr, r->errstr_size, TM_EPROTO,
                         "pgoutput Delete message: expected 'K' or 'O', got 0x%02x", part);
    if (part != 'N')
        return tm_seterr(r->errstr, r->errstr_size, TM_EPROTO,
                         "pgoutput %s message: expected new tuple 'N', got 0x%02x", r->what,
                         part);
    return rd_tuple(dec, r, 1, &msg->u.change.newtup);
}

static int dec_truncate(tm_pg_decoder_t *dec, reader_t *r, tm_pg_msg_t *msg)
{
    int rc;
    uint32_t n = 0;
    if ((rc = rd_stream_xid(dec, r, msg)) != 0 ||
        (rc = rd_u32(r, "relation count", &n)) != 0 ||
        (rc = rd_u8(r, "options", &msg->u.truncate.options)) != 0)
        return rc;
    if ((size_t)(r->end - r->p) / 4 < n)
        return short_read(r, "relation ids");
    if (grow((void **)&dec->relids, &dec->relids_cap, n ? n : 1, sizeof(uint32_t)) != 0)
        return TM_ENOMEM;
    for (uint32_t i = 0; i < n; i++)
        if ((rc = rd_u32(r, "relation id", &dec->relids[i])) != 0)
            return rc;
    msg->u.truncate.nrels = n;
    msg->u.truncate.relids = dec->relids;
    return 0;
}

static const char *tag_name(char tag)
{
    switch (tag) {
    case TM_PG_MSG_BEGIN: return "Begin";
    case TM_PG_MSG_COMMIT: return "Commit";
    case TM_PG_MSG_ORIGIN: return "Origin";
    case TM_PG_MSG_RELATION: return "Relation";
    case TM_PG_MSG_TYPE: return "Type";
    case TM_PG_MSG_INSERT: return "Insert";
    case TM_PG_MSG_UPDATE: return "Update";
    case TM_PG_MSG_DELETE: return "Delete";
    case TM_PG_MSG_TRUNCATE: return "Truncate";
    case TM_PG_MSG_MESSAGE: return "Message";
    case TM_PG_MSG_STREAM_START: return "Stream Start";
    case TM_PG_MSG_STREAM_STOP: return "Stream Stop";
    case TM_PG_MSG_STREAM_COMMIT: return "Stream Commit";
    case TM_PG_MSG_STREAM_ABORT: return "Stream Abort";
    default: return NULL;
    }
}

int tm_pg_decode(tm_pg_decoder_t *dec, const uint8_t *buf, size_t len, tm_pg_msg_t *msg,
                 char *errstr, size_t errstr_size)
{
    memset(msg, 0, sizeof(*msg));
    if (len == 0 || buf == NULL)
        return tm_seterr(errstr, errstr_size, TM_EPROTO, "empty pgoutput message");
    msg->tag = (char)buf[0];
    reader_t r = {buf + 1, buf + len, tag_name(msg->tag), errstr, errstr_size};
    if (r.what == NULL)
        return tm_seterr(errstr, errstr_size, TM_EPROTO,
                         "unknown pgoutput message type 0x%02x", buf[0]);
    bool streaming_msg = msg->tag == TM_PG_MSG_STREAM_START || msg->tag == TM_PG_MSG_STREAM_STOP ||
                         msg->tag == TM_PG_MSG_STREAM_COMMIT ||
                         msg->tag == TM_PG_MSG_STREAM_ABORT;
    if (streaming_msg && dec->proto_version < 2)
        return tm_seterr(errstr, errstr_size, TM_EPROTO,
                         "pgoutput %s message is not valid in protocol version %d", r.what,
                         dec->proto_version);

    int rc = 0;
    switch (msg->tag) {
    case TM_PG_MSG_BEGIN:
        if ((rc = rd_u64(&r, "final LSN", &msg->u.begin.final_lsn)) == 0 &&
            (rc = rd_i64(&r, "commit timestamp", &msg->u.begin.commit_ts)) == 0)
            rc = rd_u32(&r, "xid", &msg->xid);
        break;
    case TM_PG_MSG_COMMIT:
        if ((rc = rd_u8(&r, "flags", &msg->u.commit.flags)) == 0 &&
            (rc = rd_u64(&r, "commit LSN", &msg->u.commit.commit_lsn)) == 0 &&
            (rc = rd_u64(&r, "end LSN", &msg->u.commit.end_lsn)) == 0)
            rc = rd_i64(&r, "commit timestamp", &msg->u.commit.commit_ts);
        break;
    case TM_PG_MSG_ORIGIN:
        if ((rc = rd_u64(&r, "origin LSN", &msg->u.origin.lsn)) == 0)
            rc = rd_str(&r, "origin name", &msg->u.origin.name);
        break;
    case TM_PG_MSG_RELATION:
        rc = dec_relation(dec, &r, msg);
        break;
    case TM_PG_MSG_TYPE:
        if ((rc = rd_stream_xid(dec, &r, msg)) == 0 &&
            (rc = rd_u32(&r, "type oid", &msg->u.type.oid)) == 0 &&
            (rc = rd_str(&r, "namespace", &msg->u.type.nspname)) == 0)
            rc = rd_str(&r, "type name", &msg->u.type.typname);
        break;
    case TM_PG_MSG_INSERT:
    case TM_PG_MSG_UPDATE:
    case TM_PG_MSG_DELETE:
        rc = dec_change(dec, &r, msg);
        break;
    case TM_PG_MSG_TRUNCATE:
        rc = dec_truncate(dec, &r, msg);
        break;
    case TM_PG_MSG_MESSAGE:
        if ((rc = rd_stream_xid(dec, &r, msg)) == 0 &&
            (rc = rd_u8(&r, "flags", &msg->u.message.flags)) == 0 &&
            (rc = rd_u64(&r, "message LSN", &msg->u.message.lsn)) == 0 &&
            (rc = rd_str(&r, "prefix", &msg->u.message.prefix)) == 0 &&
            (rc = rd_u32(&r, "content length", &msg->u.message.len)) == 0)
            rc = rd_bytes(&r, "content", msg->u.message.len, &msg->u.message.content);
        break;
    case TM_PG_MSG_STREAM_START:
        if ((rc = rd_u32(&r, "xid", &msg->xid)) == 0)
            rc = rd_u8(&r, "first segment flag", &msg->u.stream_start.first_segment);
        break;
    case TM_PG_MSG_STREAM_STOP:
        break;
    case TM_PG_MSG_STREAM_COMMIT:
        if ((rc = rd_u32(&r, "xid", &msg->xid)) == 0 &&
            (rc = rd_u8(&r, "flags", &msg->u.commit.flags)) == 0 &&
            (rc = rd_u64(&r, "commit LSN", &msg->u.commit.commit_lsn)) == 0 &&
            (rc = rd_u64(&r, "end LSN", &msg->u.commit.end_lsn)) == 0)
            rc = rd_i64(&r, "commit timestamp", &msg->u.commit.commit_ts);
        break;
    case TM_PG_MSG_STREAM_ABORT:
        if ((rc = rd_u32(&r, "xid", &msg->xid)) == 0)
            rc = rd_u32(&r, "subtransaction xid", &msg->u.stream_abort.subxid);
        break;
    }
    if (rc != 0)
        return rc;
    if (r.p != r.end)
        return tm_seterr(errstr, errstr_size, TM_EPROTO,
                         "pgoutput %s message has %zu unexpected trailing bytes", r.what,
                         (size_t)(r.end - r.p));
    /* Only a well-formed Stream Start/Stop changes the framing of what follows. */
    if (msg->tag == TM_PG_MSG_STREAM_START)
        dec->in_stream = true;
    else if (msg->tag == TM_PG_MSG_STREAM_STOP)
        dec->in_stream = false;
    return 0;
}

int tm_pg_copydata_parse(const uint8_t *buf, size_t len, tm_pg_copydata_t *cd, char *errstr,
                         size_t errstr_size)
{
    memset(cd, 0, sizeof(*cd));
    if (len == 0)
        return tm_seterr(errstr, errstr_size, TM_EPROTO, "empty replication CopyData message");
    cd->tag = (char)buf[0];
    switch (cd->tag) {
    case 'w':
        if (len < 25)
            return tm_seterr(errstr, errstr_size, TM_EPROTO,
                             "XLogData message truncated (%zu bytes)", len);
        cd->wal_start = tm_pg_get_u64(buf + 1);
        cd->wal_end = tm_pg_get_u64(buf + 9);
        cd->send_time = (int64_t)tm_pg_get_u64(buf + 17);
        cd->data = buf + 25;
        cd->len = len - 25;
        return 0;
    case 'k':
        if (len != 18)
            return tm_seterr(errstr, errstr_size, TM_EPROTO,
                             "primary keepalive message has %zu bytes, expected 18", len);
        cd->wal_end = tm_pg_get_u64(buf + 1);
        cd->send_time = (int64_t)tm_pg_get_u64(buf + 9);
        cd->reply_requested = buf[17] != 0;
        return 0;
    default:
        return tm_seterr(errstr, errstr_size, TM_EPROTO,
                         "unknown replication CopyData message type 0x%02x", buf[0]);
    }
}

void tm_pg_status_update(uint8_t out[34], uint64_t write_lsn, uint64_t flush_lsn,
                         uint64_t apply_lsn, int64_t now_pg_us, bool reply_requested)
{
    out[0] = 'r';
    tm_pg_put_u64(out + 1, write_lsn);
    tm_pg_put_u64(out + 9, flush_lsn);
    tm_pg_put_u64(out + 17, apply_lsn);
    tm_pg_put_u64(out + 25, (uint64_t)now_pg_us);
    out[33] = reply_requested ? 1 : 0;
}

char *tm_pg_lsn_format(uint64_t lsn, char buf[24])
{
    snprintf(buf, 24, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
    return buf;
}

int tm_pg_lsn_parse(const char *s, uint64_t *lsn)
{
    unsigned hi, lo;
    int n = 0;
    if (s == NULL || sscanf(s, "%X/%X%n", &hi, &lo, &n) != 2 || s[n] != '\0')
        return TM_EINVAL;
    *lsn = ((uint64_t)hi << 32) | lo;
    return 0;
}
