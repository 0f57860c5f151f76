/*
 * buf.c — growable byte buffer (see buf.h).
 *
 * Invariant: when data != NULL, data[len] is addressable (cap > len), so the
 * buffer can always be NUL-terminated by the caller without a reserve.
 */
#include "core/buf.h"
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void tm_buf_init(tm_buf_t *buf)
{
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
}

void tm_buf_release(tm_buf_t *buf)
{
    free(buf->data);
    tm_buf_init(buf);
}

int tm_buf_grow(tm_buf_t *buf, size_t extra)
{
    if (buf->len + extra < buf->cap)
        return 0;
    size_t ncap = buf->cap ? buf->cap : 256;
    while (ncap <= buf->len + extra)
        ncap *= 2;
    char *p = realloc(buf->data, ncap);
    if (p == NULL)
        return TM_ENOMEM;
    buf->data = p;
    buf->cap = ncap;
    return 0;
}


int tm_buf_appendf(tm_buf_t *buf, const char *fmt, ...)
{
    va_list ap;
    char tmp[256];
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return TM_EINVAL;
    if ((size_t)n < sizeof(tmp))
        return tm_buf_append(buf, tmp, (size_t)n);
    if (tm_buf_reserve(buf, (size_t)n + 1) != 0)
        return TM_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(buf->data + buf->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf->len += (size_t)n;
    return 0;
}

int tm_buf_append_u64(tm_buf_t *buf, uint64_t v)
{
    char tmp[24];
    int i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return tm_buf_append(buf, tmp + i, sizeof(tmp) - (size_t)i);
}

int tm_buf_append_i64(tm_buf_t *buf, int64_t v)
{
    if (v < 0) {
        if (tm_buf_putc(buf, '-') != 0)
            return TM_ENOMEM;
        return tm_buf_append_u64(buf, (uint64_t)0 - (uint64_t)v);
    }
    return tm_buf_append_u64(buf, (uint64_t)v);
}

int tm_buf_put_varint(tm_buf_t *buf, uint64_t v)
{
    if (tm_buf_reserve(buf, 10) != 0)
        return TM_ENOMEM;
    uint8_t *p = (uint8_t *)buf->data + buf->len;
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    buf->len += n;
    buf->data[buf->len] = '\0';
    return 0;
}

int tm_buf_put_zigzag(tm_buf_t *buf, int64_t v)
{
    return tm_buf_put_varint(buf, tm_zigzag(v));
}

int tm_buf_get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            return TM_ECORRUPT;
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return TM_ECORRUPT;
}

int tm_buf_get_zigzag(const uint8_t **p, const uint8_t *end, int64_t *v)
{
    uint64_t u;
    if (tm_buf_get_varint(p, end, &u) != 0)
        return TM_ECORRUPT;
    *v = tm_unzigzag(u);
    return 0;
}

/*
 * Returns the length (1-4) of the well-formed UTF-8 sequence at s, or minus
 * the length of its maximal ill-formed prefix ("maximal subpart", Unicode
 * §3.9 and Table 3-7): overlong forms, surrogates, code points past U+10FFFF,
 * stray continuation bytes and sequences cut short by the end all count as
 * ill-formed.  len >= 1.
 */
int tm_utf8_seq_len(const unsigned char *s, size_t len)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    int need;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return -1;
    }
    for (int i = 1; i <= need; i++) {
        if ((size_t)i >= len || s[i] < lo || s[i] > hi)
            return -i;
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

/* U+FFFD REPLACEMENT CHARACTER in UTF-8. */
static const char utf8_replacement[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

int tm_buf_append_utf8(tm_buf_t *buf, const char *s, size_t len)
{
    /* A replacement (3 bytes) never stands for fewer than one input byte. */
    if (tm_buf_reserve(buf, len * 3 + 1) != 0)
        return TM_ENOMEM;
    char *o = buf->data + buf->len;
    for (size_t i = 0; i < len;) {
        int n = tm_utf8_seq_len((const unsigned char *)s + i, len - i);
        if (n > 0) {
            memcpy(o, s + i, (size_t)n);
            o += n;
            i += (size_t)n;
        } else {
            memcpy(o, utf8_replacement, 3);
            o += 3;
            i += (size_t)-n;
        }
    }
    buf->len = (size_t)(o - buf->data);
    buf->data[buf->len] = '\0';
    return 0;
}

int tm_buf_append_json_str(tm_buf_t *buf, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    /* Worst case every byte becomes \u00XX; a replacement character is 3 bytes for >= 1. */
    if (tm_buf_reserve(buf, len * 6 + 2) != 0)
        return TM_ENOMEM;
    char *o = buf->data + buf->len;
    *o++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            /*
             * JSON text must be UTF-8 (RFC 8259 §8.1), but a SQL_ASCII
             * database or a Kafka key can hand us any bytes: each ill-formed
             * sequence becomes one U+FFFD, as Java's UTF-8 decoder (and so
             * Debezium) does.
             */
            int n = tm_utf8_seq_len((const unsigned char *)s + i, len - i);
            if (n > 0) {
                memcpy(o, s + i, (size_t)n);
                o += n;
            } else {
                memcpy(o, utf8_replacement, 3);
                o += 3;
                n = -n;
            }
            i += (size_t)n - 1;
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '\n':
            *o++ = 'n';
            break;
        case '\r':
            *o++ = 'r';
            break;
        case '\t':
            *o++ = 't';
            break;
        case '\b':
            *o++ = 'b';
            break;
        case '\f':
            *o++ = 'f';
            break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o++ = '"';
    buf->len = (size_t)(o - buf->data);
    buf->data[buf->len] = '\0';
    return 0;
}

int tm_buf_append_base64(tm_buf_t *buf, const void *p, size_t len)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *in = p;
    if (tm_buf_reserve(buf, (len + 2) / 3 * 4 + 1) != 0)
        return TM_ENOMEM;
    char *o = buf->data + buf->len;
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = tbl[v >> 18];
        *o++ = tbl[(v >> 12) & 63];
        *o++ = tbl[(v >> 6) & 63];
        *o++ = tbl[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        *o++ = tbl[v >> 18];
        *o++ = tbl[(v >> 12) & 63];
        *o++ = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    buf->len = (size_t)(o - buf->data);
    buf->data[buf->len] = '\0';
    return 0;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

long tm_base64_decode(const char *in, size_t inlen, uint8_t *out, size_t outcap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < inlen; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '=')
            break;
        int v = b64val(c);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n >= outcap)
                return -1;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return (long)n;
}

long tm_bytea_escape_decode(const char *s, size_t len, uint8_t *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        if (s[i] != '\\') {
            out[n++] = (uint8_t)s[i++];
        } else if (i + 1 < len && s[i + 1] == '\\') {
            out[n++] = '\\';
            i += 2;
        } else if (i + 3 < len && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
                   s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
            out[n++] = (uint8_t)((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
            i += 4;
        } else {
            return -1;
        }
    }
    return (long)n;
}

char *tm_asprintf(const char *fmt, ...)
{
    va_list ap;
    char *out = NULL;
    va_start(ap, fmt);
    if (vasprintf(&out, fmt, ap) < 0)
        out = NULL;
    va_end(ap);
    return out;
}
