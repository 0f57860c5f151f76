/*
 * buf.h — growable byte buffer for encoders and I/O.
 *
 * Ownership: the tm_buf_t owns `data`.  Append functions return 0 or TM_ENOMEM;
 * after TM_ENOMEM the buffer keeps what it had.
 * Thread: one at a time.
 */
#ifndef TM_CORE_BUF_H
#define TM_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct tm_buf {
    char *data;
    size_t len;
    size_t cap;
} tm_buf_t;

void tm_buf_init(tm_buf_t *buf);
void tm_buf_release(tm_buf_t *buf);
/* The slow half of tm_buf_reserve: grows the buffer so that `extra` more bytes and a NUL fit. */
int tm_buf_grow(tm_buf_t *buf, size_t extra);

/* Room for `extra` more bytes and a NUL.  Inline: encoders call it for every byte they write. */
static inline int tm_buf_reserve(tm_buf_t *buf, size_t extra)
{
    return buf->len + extra < buf->cap ? 0 : tm_buf_grow(buf, extra);
}

/* Appends len bytes and keeps the data NUL-terminated. */
static inline int tm_buf_append(tm_buf_t *buf, const void *p, size_t len)
{
    if (tm_buf_reserve(buf, len) != 0)
        return -2; /* TM_ENOMEM */
    if (len)
        memcpy(buf->data + buf->len, p, len);
    buf->len += len;
    buf->data[buf->len] = '\0';
    return 0;
}
int tm_buf_appendf(tm_buf_t *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int tm_buf_append_i64(tm_buf_t *buf, int64_t v);
int tm_buf_append_u64(tm_buf_t *buf, uint64_t v);
/*
 * Appends v as an unsigned LEB128 varint: 7 bits a byte, least significant
 * first, the high bit set on every byte but the last (1..10 bytes).  State on
 * disk uses this format: it must never change.
 */
int tm_buf_put_varint(tm_buf_t *buf, uint64_t v);
/* Appends v zigzag-mapped (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...) as a varint. */
int tm_buf_put_zigzag(tm_buf_t *buf, int64_t v);
/*
 * Reads a varint written by tm_buf_put_varint from [*p, end) and advances *p
 * past it.  Returns 0, or TM_ECORRUPT when the bytes end first or run past
 * ten bytes; it never reads at or beyond end.
 */
int tm_buf_get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v);
/* Reads a value written by tm_buf_put_zigzag; as tm_buf_get_varint. */
int tm_buf_get_zigzag(const uint8_t **p, const uint8_t *end, int64_t *v);

static inline uint64_t tm_zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t tm_unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/*
 * Appends s as a JSON string literal, with quotes and escapes.  The output is
 * always valid UTF-8: each ill-formed UTF-8 sequence in s (a SQL_ASCII
 * database's Latin-1 byte, say) becomes one U+FFFD, as in Java's decoder.
 */
int tm_buf_append_json_str(tm_buf_t *buf, const char *s, size_t len);
/*
 * Returns the length (1-4) of the well-formed UTF-8 sequence at s, or minus
 * the length of its maximal ill-formed prefix (Unicode §3.9).  len >= 1.
 */
int tm_utf8_seq_len(const unsigned char *s, size_t len);
/* The length (1-4) of the well-formed UTF-8 sequence at s, or 0 when it is ill-formed or n is 0. */
static inline size_t tm_utf8_seqlen(const char *s, size_t n)
{
    int k = n > 0 ? tm_utf8_seq_len((const unsigned char *)s, n) : 0;
    return k > 0 ? (size_t)k : 0;
}
/* Appends s unquoted, with every ill-formed UTF-8 sequence replaced by U+FFFD. */
int tm_buf_append_utf8(tm_buf_t *buf, const char *s, size_t len);
/* Appends the standard base64 encoding of p (with padding). */
int tm_buf_append_base64(tm_buf_t *buf, const void *p, size_t len);

static inline int tm_buf_putc(tm_buf_t *buf, char c)
{
    if (buf->len + 1 >= buf->cap && tm_buf_reserve(buf, 1) != 0)
        return -2; /* TM_ENOMEM */
    buf->data[buf->len++] = c;
    return 0;
}

static inline int tm_buf_puts(tm_buf_t *buf, const char *s)
{
    return tm_buf_append(buf, s, strlen(s));
}

static inline void tm_buf_clear(tm_buf_t *buf)
{
    buf->len = 0;
}

/* The value of one hexadecimal digit, or -1. */
static inline int tm_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Decodes PostgreSQL's escape format of bytea (bytea_output = escape): "\\" is a
 * backslash, "\ooo" (first digit 0-3) an octal byte, any other byte itself.
 * out needs room for inlen bytes.  Returns the decoded length, or -1 on any
 * other backslash.
 */
long tm_bytea_escape_decode(const char *in, size_t inlen, uint8_t *out);

/* Decodes standard base64 (padding optional).  Returns decoded length or -1. */
long tm_base64_decode(const char *in, size_t inlen, uint8_t *out, size_t outcap);

/* A new string formatted like printf (free it); NULL when memory runs out. */
char *tm_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
