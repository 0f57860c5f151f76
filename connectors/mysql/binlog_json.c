/*
 * binlog_json.c — MySQL 8's binary JSON (the JSON column's binlog form) to JSON text.
 *
 * Role: MySQL writes a JSON column into the binlog in its binary storage
 * format (sql-common/json_binary.h), not as text.  This turns it into the
 * text MySQL itself prints for the value (JSON_EXTRACT, the mysql client):
 * `{"a": 1, "b": [true, null]}` with ", " and ": " separators, keys in
 * stored order, doubles in the shortest form that reads back the same.
 *
 *     value    := type(1) body
 *     object   := count size {key-offset key-length(2)}*count {type offset-or-inline}*count keys values
 *     array    := count size {type offset-or-inline}*count values
 *     (small: 2-byte count/size/offsets; large: 4-byte; offsets from the object's start)
 *     string   := varlen(7 bits a byte, low first) bytes
 *     opaque   := field-type(1) varlen bytes   (DECIMAL, DATE, TIME, DATETIME, TIMESTAMP, others)
 *
 * Invariants:
 *   1. Every read is bounded by the slice of its container; offsets pointing
 *      outside give TM_ECORRUPT, never a read past the end.
 *   2. Nesting is limited to 100 levels (MySQL's own limit), so hostile input
 *      cannot exhaust the stack.
 *
 * Thread: no state; any thread.
 */
#include "mysql/binlog_rows.h"

#include "core/buf.h"
#include "core/error.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    J_SMALL_OBJECT = 0x0,
    J_LARGE_OBJECT = 0x1,
    J_SMALL_ARRAY = 0x2,
    J_LARGE_ARRAY = 0x3,
    J_LITERAL = 0x4,
    J_INT16 = 0x5,
    J_UINT16 = 0x6,
    J_INT32 = 0x7,
    J_UINT32 = 0x8,
    J_INT64 = 0x9,
    J_UINT64 = 0xA,
    J_DOUBLE = 0xB,
    J_STRING = 0xC,
    J_OPAQUE = 0xF,
};

#define J_MAX_DEPTH 100

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* The variable-length length of strings and opaque values; false if malformed. */
static bool varlen(const uint8_t *p, size_t n, uint64_t *len, size_t *used)
{
    uint64_t v = 0;
    for (size_t i = 0; i < 5 && i < n; i++) {
        v |= (uint64_t)(p[i] & 0x7F) << (7 * i);
        if (!(p[i] & 0x80)) {
            *len = v;
            *used = i + 1;
            return true;
        }
    }
    return false;
}

static int put_double(tm_buf_t *out, double d)
{
    char s[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(s, sizeof(s), "%.*g", p, d);
        if (strtod(s, NULL) == d)
            break;
    }
    /* MySQL prints a double that is a whole number with ".0" (1.0, not 1). */
    if (strspn(s, "-0123456789") == strlen(s))
        strcat(s, ".0");
    return tm_buf_puts(out, s);
}

/* DATE/TIME/DATETIME/TIMESTAMP opaque values: MySQL's packed longlong. */
static int put_temporal(tm_buf_t *out, uint8_t ftype, const uint8_t *p, size_t n)
{
    if (n < 8)
        return TM_ECORRUPT;
    int64_t packed = (int64_t)le(p, 8);
    bool neg = packed < 0;
    uint64_t v = neg ? (uint64_t)0 - (uint64_t)packed : (uint64_t)packed;
    uint64_t frac = v % (1ULL << 24), ip = v >> 24;
    char s[64];
    if (ftype == TM_MY_T_TIME) {
        snprintf(s, sizeof(s), "\"%s%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ".%06" PRIu64 "\"",
                 neg ? "-" : "", (ip >> 12) % (1 << 10), (ip >> 6) % 64, ip % 64, frac);
    } else {
        uint64_t ymd = ip >> 17, hms = ip % (1 << 17), ym = ymd >> 5;
        if (ftype == TM_MY_T_DATE)
            snprintf(s, sizeof(s), "\"%04" PRIu64 "-%02" PRIu64 "-%02" PRIu64 "\"", ym / 13,
                     ym % 13, ymd % 32);
        else
            snprintf(s, sizeof(s),
                     "\"%04" PRIu64 "-%02" PRIu64 "-%02" PRIu64 " %02" PRIu64 ":%02" PRIu64
                     ":%02" PRIu64 ".%06" PRIu64 "\"",
                     ym / 13, ym % 13, ymd % 32, hms >> 12, (hms >> 6) % 64, hms % 64, frac);
    }
    return tm_buf_puts(out, s);
}

/* DECIMAL opaque values: precision, scale, then the binlog's packed decimal. */
static int put_decimal(tm_buf_t *out, const uint8_t *p, size_t n)
{
    if (n < 2)
        return TM_ECORRUPT;
    tm_batch_t *b = tm_batch_new();
    if (b == NULL)
        return TM_ENOMEM;
    tm_datum_t d;
    memset(&d, 0, sizeof(d));
    int rc = tm_my_decimal_decode(b, &d, p + 2, n - 2, p[0], p[1]);
    if (rc == 0) {
        char s[200];
        if (d.flags & TM_DATUM_WIDE)
            rc = tm_buf_append(out, d.u.var.ptr, d.u.var.len);
        else {
            tm_numeric_format(&d, s, sizeof(s));
            rc = tm_buf_puts(out, s);
        }
    }
    tm_batch_unref(b);
    return rc;
}

static int put_body(tm_buf_t *out, uint8_t type, const uint8_t *p, size_t n, int depth);

/* True when a value of this type sits in its entry instead of at an offset. */
static bool inlined(uint8_t type, bool large)
{
    return type == J_LITERAL || type == J_INT16 || type == J_UINT16 ||
           (large && (type == J_INT32 || type == J_UINT32));
}

static int put_literal(tm_buf_t *out, uint8_t v)
{
    switch (v) {
    case 0:
        return tm_buf_puts(out, "null");
    case 1:
        return tm_buf_puts(out, "true");
    case 2:
        return tm_buf_puts(out, "false");
    default:
        return TM_ECORRUPT;
    }
}

/* An object or array whose body starts at base, with size bytes available. */
static int put_container(tm_buf_t *out, uint8_t type, const uint8_t *base, size_t size,
                         int depth)
{
    if (depth > J_MAX_DEPTH)
        return TM_ECORRUPT;
    bool large = type == J_LARGE_OBJECT || type == J_LARGE_ARRAY;
    bool object = type == J_SMALL_OBJECT || type == J_LARGE_OBJECT;
    size_t w = large ? 4 : 2;
    if (size < 2 * w)
        return TM_ECORRUPT;
    uint64_t count = le(base, (int)w), bytes = le(base + w, (int)w);
    if (bytes > size || bytes < 2 * w)
        return TM_ECORRUPT;
    size = (size_t)bytes;
    size_t keyent = object ? w + 2 : 0, valent = 1 + w;
    if (count > size || 2 * w + count * (keyent + valent) > size)
        return TM_ECORRUPT;
    int rc = tm_buf_putc(out, object ? '{' : '[');
    for (uint64_t i = 0; i < count && rc == 0; i++) {
        if (i > 0 && (rc = tm_buf_puts(out, ", ")) != 0)
            break;
        if (object) {
            const uint8_t *ke = base + 2 * w + i * keyent;
            uint64_t koff = le(ke, (int)w), klen = le(ke + w, 2);
            if (koff > size || klen > size - koff)
                return TM_ECORRUPT;
            rc = tm_buf_append_json_str(out, (const char *)base + koff, (size_t)klen);
            if (rc == 0)
                rc = tm_buf_puts(out, ": ");
            if (rc != 0)
                break;
        }
        const uint8_t *ve = base + 2 * w + count * keyent + i * valent;
        uint8_t t = ve[0];
        if (inlined(t, large)) {
            uint64_t raw = le(ve + 1, (int)w);
            switch (t) {
            case J_LITERAL:
                rc = put_literal(out, (uint8_t)raw);
                break;
            case J_INT16:
                rc = tm_buf_append_i64(out, (int16_t)(uint16_t)raw);
                break;
            case J_UINT16:
                rc = tm_buf_append_u64(out, (uint16_t)raw);
                break;
            case J_INT32:
                rc = tm_buf_append_i64(out, (int32_t)(uint32_t)raw);
                break;
            default:
                rc = tm_buf_append_u64(out, (uint32_t)raw);
                break;
            }
        } else {
            uint64_t voff = le(ve + 1, (int)w);
            if (voff >= size)
                return TM_ECORRUPT;
            rc = put_body(out, t, base + voff, size - (size_t)voff, depth + 1);
        }
    }
    if (rc == 0)
        rc = tm_buf_putc(out, object ? '}' : ']');
    return rc;
}

static int put_body(tm_buf_t *out, uint8_t type, const uint8_t *p, size_t n, int depth)
{
    uint64_t len;
    size_t used;
    switch (type) {
    case J_SMALL_OBJECT:
    case J_LARGE_OBJECT:
    case J_SMALL_ARRAY:
    case J_LARGE_ARRAY:
        return put_container(out, type, p, n, depth);
    case J_LITERAL:
        return n < 1 ? TM_ECORRUPT : put_literal(out, p[0]);
    case J_INT16:
        return n < 2 ? TM_ECORRUPT : tm_buf_append_i64(out, (int16_t)(uint16_t)le(p, 2));
    case J_UINT16:
        return n < 2 ? TM_ECORRUPT : tm_buf_append_u64(out, (uint16_t)le(p, 2));
    case J_INT32:
        return n < 4 ? TM_ECORRUPT : tm_buf_append_i64(out, (int32_t)(uint32_t)le(p, 4));
    case J_UINT32:
        return n < 4 ? TM_ECORRUPT : tm_buf_append_u64(out, (uint32_t)le(p, 4));
    case J_INT64:
        return n < 8 ? TM_ECORRUPT : tm_buf_append_i64(out, (int64_t)le(p, 8));
    case J_UINT64:
        return n < 8 ? TM_ECORRUPT : tm_buf_append_u64(out, le(p, 8));
    case J_DOUBLE: {
        if (n < 8)
            return TM_ECORRUPT;
        uint64_t bits = le(p, 8);
        double d;
        memcpy(&d, &bits, 8);
        return put_double(out, d);
    }
    case J_STRING:
        if (!varlen(p, n, &len, &used) || len > n - used)
            return TM_ECORRUPT;
        return tm_buf_append_json_str(out, (const char *)p + used, (size_t)len);
    case J_OPAQUE: {
        if (n < 1 || !varlen(p + 1, n - 1, &len, &used) || len > n - 1 - used)
            return TM_ECORRUPT;
        uint8_t ftype = p[0];
        const uint8_t *data = p + 1 + used;
        switch (ftype) {
        case TM_MY_T_NEWDECIMAL:
            return put_decimal(out, data, (size_t)len);
        case TM_MY_T_DATE:
        case TM_MY_T_TIME:
        case TM_MY_T_DATETIME:
        case TM_MY_T_TIMESTAMP:
            return put_temporal(out, ftype, data, (size_t)len);
        default: {
            /* Other opaque values print as MySQL does: "base64:typeN:<base64>". */
            int rc = tm_buf_appendf(out, "\"base64:type%u:", ftype);
            if (rc == 0)
                rc = tm_buf_append_base64(out, data, (size_t)len);
            return rc == 0 ? tm_buf_putc(out, '"') : rc;
        }
        }
    }
    default:
        return TM_ECORRUPT;
    }
}

int tm_my_json_to_text(const uint8_t *doc, size_t n, tm_buf_t *out)
{
    /* An empty value is what MySQL writes for a JSON NULL stored as SQL value. */
    if (n == 0)
        return tm_buf_puts(out, "null");
    return put_body(out, doc[0], doc + 1, n - 1, 0);
}
