/*
 * pgoutput.h — a pure decoder of PostgreSQL's pgoutput logical replication
 * messages (protocol versions 1 and 2) and of the streaming replication
 * CopyData frames that carry them.
 *
 * Like PostgreSQL's own decode.c, this layer has no intelligence: bytes go in,
 * structs come out.  It does no I/O, keeps no transaction state and knows
 * nothing about schemas or batches; postgres.c assembles transactions and
 * txbuf.c spills streamed ones.
 *
 * Invariants:
 *   1. The decoder never reads outside [buf, buf + len).  Every field is
 *      bounds-checked; a truncated, oversized or otherwise corrupt message
 *      yields TM_EPROTO and a message naming the field, never a crash.
 *   2. A message must be consumed exactly: trailing bytes are an error, so
 *      every strict prefix of a valid message is rejected.
 *   3. Strings, tuple values and message contents in a decoded tm_pg_msg_t
 *      point into the caller's buffer; arrays (columns, tuple columns, relids)
 *      point into the decoder's scratch space.  Both stay valid until the next
 *      tm_pg_decode() on the same decoder or until the buffer is released.
 *   4. Scratch space grows with the largest message seen and is bounded by
 *      the message size (every element consumes at least one input byte).
 *
 * Protocol 2 adds the xid of the streamed transaction to Relation, Type,
 * Insert, Update, Delete, Truncate and Message when they are sent inside a
 * Stream Start/Stop block.  The decoder tracks that block itself from the
 * Stream Start and Stream Stop messages it decodes; tm_pg_decoder_set_stream()
 * overrides it when messages are replayed out of context (spill files).
 *
 * Thread: a decoder belongs to one thread.
 */
#ifndef TM_PG_PGOUTPUT_H
#define TM_PG_PGOUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Message tags (the first byte of every pgoutput message). */
enum {
    TM_PG_MSG_BEGIN = 'B',
    TM_PG_MSG_COMMIT = 'C',
    TM_PG_MSG_ORIGIN = 'O',
    TM_PG_MSG_RELATION = 'R',
    TM_PG_MSG_TYPE = 'Y',
    TM_PG_MSG_INSERT = 'I',
    TM_PG_MSG_UPDATE = 'U',
    TM_PG_MSG_DELETE = 'D',
    TM_PG_MSG_TRUNCATE = 'T',
    TM_PG_MSG_MESSAGE = 'M',
    TM_PG_MSG_STREAM_START = 'S',
    TM_PG_MSG_STREAM_STOP = 'E',
    TM_PG_MSG_STREAM_COMMIT = 'c',
    TM_PG_MSG_STREAM_ABORT = 'A',
};

/* Column kinds inside TupleData. */
enum {
    TM_PG_COL_NULL = 'n',
    TM_PG_COL_UNCHANGED = 'u', /* unchanged TOASTed value, not sent */
    TM_PG_COL_TEXT = 't',
    TM_PG_COL_BINARY = 'b',
};

/* Relation column flag: the column is part of the replica identity. */
#define TM_PG_RELCOL_KEY 0x01

/* Truncate option bits. */
#define TM_PG_TRUNCATE_CASCADE 0x01
#define TM_PG_TRUNCATE_RESTART_IDENTITY 0x02

/* Message flag: the logical decoding message is transactional. */
#define TM_PG_MESSAGE_TRANSACTIONAL 0x01

/* Microseconds between the Unix epoch and PostgreSQL's (2000-01-01). */
#define TM_PG_EPOCH_OFFSET_US INT64_C(946684800000000)

typedef struct tm_pg_tuple_col {
    char kind;           /* TM_PG_COL_* */
    uint32_t len;        /* TEXT/BINARY only */
    const uint8_t *data; /* TEXT/BINARY only; not NUL-terminated */
} tm_pg_tuple_col_t;

typedef struct tm_pg_tuple {
    uint16_t ncols;
    const tm_pg_tuple_col_t *cols;
} tm_pg_tuple_t;

typedef struct tm_pg_relcol {
    uint8_t flags; /* TM_PG_RELCOL_KEY */
    const char *name;
    uint32_t type_oid;
    int32_t typmod;
} tm_pg_relcol_t;

typedef struct tm_pg_msg {
    char tag;     /* TM_PG_MSG_* */
    bool has_xid; /* protocol 2 streamed xid present (inside a stream block) */
    uint32_t xid; /* the streamed xid, or Begin/Stream* xid */
    union {
        struct {
            uint64_t final_lsn; /* LSN of the commit record */
            int64_t commit_ts;  /* µs since 2000-01-01 */
        } begin;
        struct {
            uint8_t flags;
            uint64_t commit_lsn;
            uint64_t end_lsn;
            int64_t commit_ts;
        } commit; /* also Stream Commit */
        struct {
            uint64_t lsn;
            const char *name;
        } origin;
        struct {
            uint32_t relid;
            const char *nspname; /* "" for pg_catalog */
            const char *relname;
            char replident; /* 'd' default, 'n' nothing, 'f' full, 'i' index */
            uint16_t ncols;
            const tm_pg_relcol_t *cols;
        } relation;
        struct {
            uint32_t oid;
            const char *nspname;
            const char *typname;
        } type;
        struct {
            uint32_t relid;
            char old_kind;       /* 'K' (key), 'O' (full old row) or 0 */
            tm_pg_tuple_t oldtup; /* Update/Delete when old_kind != 0 */
            tm_pg_tuple_t newtup; /* Insert/Update */
        } change; /* Insert, Update, Delete */
        struct {
            uint32_t nrels;
            uint8_t options; /* TM_PG_TRUNCATE_* */
            const uint32_t *relids;
        } truncate;
        struct {
            uint8_t flags; /* TM_PG_MESSAGE_TRANSACTIONAL */
            uint64_t lsn;
            const char *prefix;
            uint32_t len;
            const uint8_t *content;
        } message;
        struct {
            uint8_t first_segment;
        } stream_start;
        struct {
            uint32_t subxid;
        } stream_abort;
    } u;
} tm_pg_msg_t;

typedef struct tm_pg_decoder tm_pg_decoder_t;

/* Creates a decoder for protocol version 1 or 2; NULL on bad version or no memory. */
tm_pg_decoder_t *tm_pg_decoder_new(int proto_version);
/* Accepts NULL.  Returns NULL. */
tm_pg_decoder_t *tm_pg_decoder_free(tm_pg_decoder_t *dec);
/* Declares whether the next messages are inside a Stream Start/Stop block. */
void tm_pg_decoder_set_stream(tm_pg_decoder_t *dec, bool in_stream);
bool tm_pg_decoder_in_stream(const tm_pg_decoder_t *dec);

/*
 * Decodes one pgoutput message.  Returns 0, TM_EPROTO (malformed: errstr says
 * which field), or TM_ENOMEM.
 */
int tm_pg_decode(tm_pg_decoder_t *dec, const uint8_t *buf, size_t len, tm_pg_msg_t *msg,
                 char *errstr, size_t errstr_size);

/* ---- Streaming replication CopyData frames (protocol §55.4) ---- */

typedef struct tm_pg_copydata {
    char tag; /* 'w' XLogData, 'k' primary keepalive */
    uint64_t wal_start; /* 'w': start of the data in WAL */
    uint64_t wal_end;   /* 'w'/'k': the server's current end of WAL */
    int64_t send_time;  /* µs since 2000-01-01 */
    bool reply_requested; /* 'k' */
    const uint8_t *data;  /* 'w': the pgoutput message */
    size_t len;
} tm_pg_copydata_t;

/* Parses one CopyData payload.  Returns 0 or TM_EPROTO (unknown tag, truncated). */
int tm_pg_copydata_parse(const uint8_t *buf, size_t len, tm_pg_copydata_t *cd, char *errstr,
                         size_t errstr_size);

/* Writes a Standby Status Update ('r', 34 bytes) into out. */
void tm_pg_status_update(uint8_t out[34], uint64_t write_lsn, uint64_t flush_lsn,
                         uint64_t apply_lsn, int64_t now_pg_us, bool reply_requested);

/* Formats an LSN as PostgreSQL does ("16/B374D848"); returns buf. */
char *tm_pg_lsn_format(uint64_t lsn, char buf[24]);
/* Parses "X/Y"; returns 0 or TM_EINVAL. */
int tm_pg_lsn_parse(const char *s, uint64_t *lsn);

/* Big-endian helpers shared with txbuf.c. */
static inline void tm_pg_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint32_t tm_pg_get_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void tm_pg_put_u64(uint8_t *p, uint64_t v)
{
    tm_pg_put_u32(p, (uint32_t)(v >> 32));
    tm_pg_put_u32(p + 4, (uint32_t)v);
}

static inline uint64_t tm_pg_get_u64(const uint8_t *p)
{
    return ((uint64_t)tm_pg_get_u32(p) << 32) | tm_pg_get_u32(p + 4);
}

#endif
