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
int tm_buf_reserve(tm_buf_t *buf, size_t extra);
int tm_buf_append(tm_buf_t *buf, const void *p, size_t len);
int tm_buf_appendf(tm_buf_t *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int tm_buf_append_i64(tm_buf_t *buf, int64_t v);
int tm_buf_append_u64(tm_buf_t *buf, uint64_t v);
/* Appends s as a JSON string literal, with quotes and escapes. */
int tm_buf_append_json_str(tm_buf_t *buf, const char *s, size_t len);
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

/* Decodes standard base64 (padding optional).  Returns decoded length or -1. */
long tm_base64_decode(const char *in, size_t inlen, uint8_t *out, size_t outcap);

#endif
