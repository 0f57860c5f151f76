/*
 * pg_binary.c — decoders of PostgreSQL's binary send format (pgoutput with
 * `binary 'true'`), giving the datums the text parsers of pg_types.c give.
 *
 * Layouts follow the send functions of PostgreSQL 15 (all integers
 * big-endian): boolsend, int2/4/8send, oidsend, float4/8send, numeric_send
 * (ndigits, weight, sign, dscale, base-10000 digits), cash_send (int64
 * cents), textsend and its kin (the bytes in the client encoding), charsend
 * (one byte), varbit_send (bit count, bits), byteasend, date_send (int32
 * days since 2000-01-01), time_send, timetz_send (µs, zone in seconds west),
 * timestamp_send (int64 µs since 2000-01-01), interval_send (µs, days,
 * months), uuid_send, jsonb_send (version 1, text), enum_send (the label)
 * and array_send (ndim, flags, element type, dimensions, elements).
 *
 * Identity with the text path (invariant of pg_binary.h): integers, dates,
 * times and intervals are the same numbers by construction.  Where the text
 * path reads back what PostgreSQL printed, the decoder prints it the same
 * way first: numeric as numeric_out does (dscale digits after the point),
 * money as cash_out in lc_monetary=C without its symbols, float4 as its
 * shortest round-trip text (extra_float_digits=3, PostgreSQL 12+) read back
 * as a double, "char" as charout (PostgreSQL 15: \ooo for high bytes) and
 * bit strings as '0'/'1'.  NaN is the one NaN the text path produces.
 *
 * Invariants:
 *   1. Nothing is read outside [p, p + len); every length is checked before
 *      the bytes it covers are touched.
 *   2. An array's element count is bounded by its bytes (four per element
 *      at least) before any output is produced, and its dimensions by
 *      PostgreSQL's MAXDIM.
 *
 * Thread: pure functions; any thread.
 */
#include "postgres/pg_binary.h"

#include "core/buf.h"
#include "core/error.h"
#include "postgres/pgoutput.h"

#include <fenv.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define US_PER_SEC INT64_C(1000000)
#define US_PER_DAY INT64_C(86400000000)
/* Debezium's MicroDuration month (pg_types.c): 30.4375 days. */
#define US_PER_MONTH INT64_C(2629800000000)
/* Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01. */
#define PG_EPOCH_DAYS 10957
/* PostgreSQL's MAXDIM. */
#define MAX_DIMS 6

/* numeric_send's sign word. */
#define NUMERIC_POS 0x0000
#define NUMERIC_NEG 0x4000
#define NUMERIC_NAN 0xC000
#define NUMERIC_PINF 0xD000
#define NUMERIC_NINF 0xF000

uint8_t tm_pg_binary_format(uint32_t oid, uint8_t kind)
{
    if (kind == TM_PG_K_ENUM)
        return TM_PG_BIN_TEXT;
    switch (oid) {
    case 16: return TM_PG_BIN_BOOL;
    case 17: return TM_PG_BIN_BYTEA;
    case 18: return TM_PG_BIN_CHAR;
    case 19: return TM_PG_BIN_TEXT;   /* name */
    case 20: return TM_PG_BIN_INT8;
    case 21: return TM_PG_BIN_INT2;
    case 23: return TM_PG_BIN_INT4;
    case 25: return TM_PG_BIN_TEXT;
    case 26: return TM_PG_BIN_OID;
    case 114: return TM_PG_BIN_TEXT;  /* json */
    case 142: return TM_PG_BIN_XML;
    case 700: return TM_PG_BIN_FLOAT4;
    case 701: return TM_PG_BIN_FLOAT8;
    case 790: return TM_PG_BIN_MONEY;
    case 1042: return TM_PG_BIN_TEXT; /* bpchar */
    case 1043: return TM_PG_BIN_TEXT; /* varchar */
    case 1082: return TM_PG_BIN_DATE;
    case 1083: return TM_PG_BIN_TIME;
    case 1114: return TM_PG_BIN_TIMESTAMP;
    case 1184: return TM_PG_BIN_TIMESTAMP;
    case 1186: return TM_PG_BIN_INTERVAL;
    case 1266: return TM_PG_BIN_TIMETZ;
    case 1560: return TM_PG_BIN_BIT;
    case 1562: return TM_PG_BIN_BIT;
    case 1700: return TM_PG_BIN_NUMERIC;
    case 1790: return TM_PG_BIN_TEXT; /* refcursor */
    case 2950: return TM_PG_BIN_UUID;
    case 3802: return TM_PG_BIN_JSONB;
    default: return TM_PG_BIN_NONE;
    }
}

int tm_pg_binary_unsupported(const tm_pg_coltype_t *ct, int ncols, bool xml_ok)
{
    for (int i = 0; i < ncols; i++) {
        uint8_t b = ct[i].bin == TM_PG_BIN_ARRAY ? ct[i].elem_bin : ct[i].bin;
        if (b == TM_PG_BIN_NONE || b == TM_PG_BIN_ARRAY || (b == TM_PG_BIN_XML && !xml_ok))
            return i;
    }
    return -1;
}

static const char *bin_name(uint8_t bin)
{
    static const char *const names[] = {
        [TM_PG_BIN_NONE] = "unknown",     [TM_PG_BIN_BOOL] = "boolean",
        [TM_PG_BIN_INT2] = "int2",        [TM_PG_BIN_INT4] = "int4",
        [TM_PG_BIN_INT8] = "int8",        [TM_PG_BIN_OID] = "oid",
        [TM_PG_BIN_FLOAT4] = "float4",    [TM_PG_BIN_FLOAT8] = "float8",
        [TM_PG_BIN_NUMERIC] = "numeric",  [TM_PG_BIN_MONEY] = "money",
        [TM_PG_BIN_TEXT] = "text",        [TM_PG_BIN_XML] = "xml",
        [TM_PG_BIN_CHAR] = "\"char\"",    [TM_PG_BIN_BIT] = "bit string",
        [TM_PG_BIN_BYTEA] = "bytea",      [TM_PG_BIN_DATE] = "date",
        [TM_PG_BIN_TIME] = "time",        [TM_PG_BIN_TIMETZ] = "timetz",
        [TM_PG_BIN_TIMESTAMP] = "timestamp", [TM_PG_BIN_INTERVAL] = "interval",
        [TM_PG_BIN_UUID] = "uuid",        [TM_PG_BIN_JSONB] = "jsonb",
        [TM_PG_BIN_ARRAY] = "array",
    };
    return bin < sizeof(names) / sizeof(names[0]) && names[bin] ? names[bin] : "unknown";
}

static int bad_len(char *errstr, size_t errstr_size, uint8_t bin, size_t len, size_t want)
{
    return tm_seterr(errstr, errstr_size, TM_EPROTO,
                     "binary %s value has %zu bytes, expected %zu", bin_name(bin), len, want);
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static int64_t get_i64(const uint8_t *p)
{
    return (int64_t)tm_pg_get_u64(p);
}

/* ---- float4 as the text path sees it ---- */

/*
 * Moves the decimal in buf ("[-]d.ddde±x", as %.*e prints it) one unit of its
 * last digit away from zero (away = true) or towards it, keeping as many
 * significant digits, and rewrites buf as "[-]<digits>e<exp>".  False for
 * zero or text not in that form.
 */
static bool step_decimal(char *buf, size_t size, bool away)
{
    bool neg = buf[0] == '-';
    const char *s = buf + neg;
    uint64_t m = 0;
    int ndig = 0;
    for (; *s != '\0' && *s != 'e'; s++) {
        if (*s >= '0' && *s <= '9') {
            m = m * 10 + (uint64_t)(*s - '0');
            ndig++;
        }
    }
    if (*s != 'e')
        return false;
    long e = strtol(s + 1, NULL, 10) - (ndig - 1);
    uint64_t lead = 1; /* 10^(ndig - 1): "1.00…0", whose lower neighbour is "9.99…9" a decade down */
    for (int k = 1; k < ndig; k++)
        lead *= 10;
    if (m == 0 || ndig == 0) {
        return false;
    } else if (away) {
        m++;
    } else if (m == lead) {
        m = lead * 10 - 1;
        e--;
    } else {
        m--;
    }
    snprintf(buf, size, "%s%" PRIu64 "e%ld", neg ? "-" : "", m, e);
    return true;
}

/* True if the decimal s is exactly the double v (it reads as v rounding both down and up). */
static bool decimal_is_exactly(const char *s, double v)
{
    int mode = fegetround();
    fesetround(FE_DOWNWARD);
    double lo = strtod(s, NULL);
    fesetround(FE_UPWARD);
    double hi = strtod(s, NULL);
    fesetround(mode);
    return lo == v && hi == v;
}

/*
 * True if the decimal s names f in float4out's sense: it reads back as f and
 * does not lie exactly halfway to a neighbour.  PostgreSQL's Ryu (f2s.c,
 * built without STRICTLY_SHORTEST) keeps the interval's bounds out even
 * where strtof would round a halfway decimal to f (f's significand even).
 */
static bool names_float4(const char *s, float f, uint32_t bits)
{
    if (strtof(s, NULL) != f)
        return false;
    if (bits & 1)
        return true; /* a halfway decimal rounds to the even neighbour, so it failed above */
    /* Halfway points between adjacent float4s are exact doubles. */
    double up = ((double)f + (double)nextafterf(f, INFINITY)) / 2;
    double down = ((double)f + (double)nextafterf(f, -INFINITY)) / 2;
    return !decimal_is_exactly(s, up) && !decimal_is_exactly(s, down);
}

/*
 * PostgreSQL prints a float4 (extra_float_digits > 0) as the shortest decimal
 * that names it, the nearest to it among those, and the text path reads that
 * decimal with strtod.  The nearest decimal of each length is what %.*e
 * prints; when it does not name f, the neighbour on f's other side may (the
 * interval is lopsided at a power of two, and halfway points are out).
 */
double tm_pg_float4_as_text(float f)
{
    if (isnan(f))
        return NAN;
    if (isinf(f))
        return f > 0 ? INFINITY : -INFINITY;
    if (f == 0)
        return signbit(f) ? -0.0 : 0.0;
    uint32_t bits;
    memcpy(&bits, &f, sizeof(bits));
    char buf[64];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof(buf), "%.*e", prec - 1, (double)f);
        double near = strtod(buf, NULL);
        if (names_float4(buf, f, bits))
            return near;
        /* The neighbour on the other side of f, away from zero when near is closer to it. */
        bool away = (near < (double)f) != (f < 0);
        if (step_decimal(buf, sizeof(buf), away) && names_float4(buf, f, bits))
            return strtod(buf, NULL);
    }
    return (double)f; /* nine digits always name f; not reached */
}

/* ---- Numeric and money as text ---- */

/*
 * Writes what numeric_out prints for a numeric_send value into out, as the
 * input of tm_numeric_parse.  Validates the layout as numeric_recv does.
 */
static int numeric_text(tm_buf_t *out, const uint8_t *p, size_t len, char *errstr,
                        size_t errstr_size)
{
    if (len < 8)
        return tm_seterr(errstr, errstr_size, TM_EPROTO,
                         "binary numeric value has %zu bytes, fewer than its 8-byte header", len);
    uint16_t ndigits = get_u16(p), sign = get_u16(p + 4), dscale = get_u16(p + 6);
    int16_t weight = (int16_t)get_u16(p + 2);
    if (len != 8 + 2 * (size_t)ndigits)
        return tm_seterr(errstr, errstr_size, TM_EPROTO,
                         "binary numeric value has %zu bytes for %u digits", len, ndigits);
    if (sign == NUMERIC_NAN || sign == NUMERIC_PINF || sign == NUMERIC_NINF) {
        if (ndigits != 0)
            return tm_seterr(errstr, errstr_size, TM_EPROTO,
                             "binary numeric NaN or infinity carries %u digits", ndigits);
        return tm_buf_puts(out, sign == NUMERIC_NAN    ? "NaN"
                                : sign == NUMERIC_PINF ? "Infinity"
                                                       : "-Infinity");
    }
    if (sign != NUMERIC_POS && sign != NUMERIC_NEG)
        return tm_seterr(errstr, errstr_size, TM_EPROTO,
                         "binary numeric value has invalid sign 0x%04x", sign);
    if (dscale > 0x3FFF)
        return tm_seterr(errstr, errstr_size, TM_EPROTO,
                         "binary numeric value has invalid scale %u", dscale);
    const uint8_t *dg = p + 8;
    for (uint16_t i = 0; i < ndigits; i++)
        if (get_u16(dg + 2 * i) > 9999)
            return tm_seterr(errstr, errstr_size, TM_EPROTO,
                             "binary numeric value has invalid base-10000 digit %u",
                             get_u16(dg + 2 * i));
    /* Sign, 4 digits per integer group, point, dscale digits (rounded up to a group). */
    size_t need = 2 + (weight >= 0 ? 4 * ((size_t)weight + 1) : 1) + dscale + 4;
    if (tm_buf_reserve(out, need) != 0)
        return TM_ENOMEM;
    char *o = out->data + out->len;
    if (sign == NUMERIC_NEG)
        *o++ = '-';
    int d;
    if (weight < 0) {
        *o++ = '0';
        d = 0;
    } else {
        /* The first group without leading zeros, the others with four digits each. */
        for (d = 0; d <= weight; d++) {
            unsigned v = d < ndigits ? get_u16(dg + 2 * d) : 0;
            if (d == 0) {
                o += snprintf(o, 5, "%u", v);
            } else {
                o[0] = (char)('0' + v / 1000);
                o[1] = (char)('0' + v / 100 % 10);
                o[2] = (char)('0' + v / 10 % 10);
                o[3] = (char)('0' + v % 10);
                o += 4;
            }
        }
    }
    if (dscale > 0) {
        *o++ = '.';
        char *end = o + dscale;
        for (d = weight + 1; o < end; d++) {
            unsigned v = d >= 0 && d < ndigits ? get_u16(dg + 2 * d) : 0;
            char g[4] = {(char)('0' + v / 1000), (char)('0' + v / 100 % 10),
                         (char)('0' + v / 10 % 10), (char)('0' + v % 10)};
            for (int k = 0; k < 4 && o < end; k++)
                *o++ = g[k];
        }
    }
    *o = '\0';
    out->len = (size_t)(o - out->data);
    return 0;
}

/*
 * The common case without the text: a finite value of at most 36 decimal
 * digits (integer groups and dscale fraction digits) is what tm_numeric_parse
 * makes of numeric_out's text, the digits as one __int128 and dscale as the
 * scale, with no risk of overflow.  False when the value needs the text path
 * (or is malformed, which the text path reports).
 */
static bool numeric_fast(const uint8_t *p, size_t len, tm_datum_t *d)
{
    if (len < 8)
        return false;
    uint16_t ndigits = get_u16(p), sign = get_u16(p + 4), dscale = get_u16(p + 6);
    int weight = (int16_t)get_u16(p + 2);
    if (len != 8 + 2 * (size_t)ndigits || (sign != NUMERIC_POS && sign != NUMERIC_NEG))
        return false;
    int intgroups = weight >= 0 ? weight + 1 : 0;
    if (intgroups * 4 + (int)dscale > 36)
        return false;
    const uint8_t *dg = p + 8;
    __int128 v = 0;
    for (int g = 0; g < intgroups; g++) {
        unsigned x = g < ndigits ? get_u16(dg + 2 * g) : 0;
        if (x > 9999)
            return false;
        v = v * 10000 + x;
    }
    /* dscale fraction digits, from the groups after the point (weight + 1 on). */
    int left = dscale;
    for (int g = weight + 1; left > 0; g++) {
        unsigned x = g >= 0 && g < ndigits ? get_u16(dg + 2 * g) : 0;
        if (x > 9999)
            return false;
        static const unsigned div[4] = {1000, 100, 10, 1};
        for (int k = 0; k < 4 && left > 0; k++, left--)
            v = v * 10 + (x / div[k]) % 10;
    }
    d->u.dec = sign == NUMERIC_NEG ? -v : v;
    d->scale = (int16_t)dscale;
    return true;
}

static int parse_numeric(tm_batch_t *batch, const uint8_t *p, size_t len, tm_datum_t *d,
                         char *errstr, size_t errstr_size)
{
    if (numeric_fast(p, len, d))
        return 0;
    tm_buf_t txt;
    tm_buf_init(&txt);
    int rc = numeric_text(&txt, p, len, errstr, errstr_size);
    if (rc == 0) {
        rc = tm_numeric_parse(batch, d, txt.data, txt.len);
        if (rc != 0 && rc != TM_ENOMEM)
            rc = tm_seterr(errstr, errstr_size, TM_EPROTO, "invalid numeric value \"%.*s\"",
                           (int)(txt.len > 64 ? 64 : txt.len), txt.data);
    }
    tm_buf_release(&txt);
    return rc;
}

/*
 * cash_out in lc_monetary=C prints the cents with two decimals ("-$1,234.56");
 * the text path keeps the digits and sign, which tm_numeric_parse reads as
 * the cents at scale 2.
 */
static void parse_money(int64_t cents, tm_datum_t *d)
{
    d->u.dec = cents;
    d->scale = 2;
}

/* ---- Scalars ---- */

static int set_bytes(tm_batch_t *batch, tm_datum_t *d, const void *p, size_t len)
{
    return tm_batch_set_var(batch, d, len ? p : "", len) == 0 ? 0 : TM_ENOMEM;
}

static int bin_scalar(tm_batch_t *batch, uint8_t bin, const uint8_t *p, size_t len,
                      tm_datum_t *d, char *errstr, size_t errstr_size)
{
    switch (bin) {
    case TM_PG_BIN_BOOL:
        if (len != 1)
            return bad_len(errstr, errstr_size, bin, len, 1);
        d->u.b = p[0] != 0;
        return 0;
    case TM_PG_BIN_INT2:
        if (len != 2)
            return bad_len(errstr, errstr_size, bin, len, 2);
        d->u.i64 = (int16_t)get_u16(p);
        return 0;
    case TM_PG_BIN_INT4:
        if (len != 4)
            return bad_len(errstr, errstr_size, bin, len, 4);
        d->u.i64 = (int32_t)tm_pg_get_u32(p);
        return 0;
    case TM_PG_BIN_OID:
        if (len != 4)
            return bad_len(errstr, errstr_size, bin, len, 4);
        d->u.i64 = tm_pg_get_u32(p);
        return 0;
    case TM_PG_BIN_INT8:
        if (len != 8)
            return bad_len(errstr, errstr_size, bin, len, 8);
        d->u.i64 = get_i64(p);
        return 0;
    case TM_PG_BIN_FLOAT4: {
        if (len != 4)
            return bad_len(errstr, errstr_size, bin, len, 4);
        uint32_t u = tm_pg_get_u32(p);
        float f;
        memcpy(&f, &u, sizeof(f));
        d->u.f64 = tm_pg_float4_as_text(f);
        return 0;
    }
    case TM_PG_BIN_FLOAT8: {
        if (len != 8)
            return bad_len(errstr, errstr_size, bin, len, 8);
        uint64_t u = tm_pg_get_u64(p);
        double f;
        memcpy(&f, &u, sizeof(f));
        /* The shortest text of a double reads back as that double; NaN reads as NAN. */
        d->u.f64 = isnan(f) ? NAN : f;
        return 0;
    }
    case TM_PG_BIN_NUMERIC:
        return parse_numeric(batch, p, len, d, errstr, errstr_size);
    case TM_PG_BIN_MONEY:
        if (len != 8)
            return bad_len(errstr, errstr_size, bin, len, 8);
        parse_money(get_i64(p), d);
        return 0;
    case TM_PG_BIN_TEXT:
    case TM_PG_BIN_XML:
    case TM_PG_BIN_BYTEA:
        return set_bytes(batch, d, p, len);
    case TM_PG_BIN_JSONB:
        if (len < 1)
            return tm_seterr(errstr, errstr_size, TM_EPROTO, "binary jsonb value is empty");
        if (p[0] != 1)
            return tm_seterr(errstr, errstr_size, TM_EPROTO,
                             "binary jsonb value has unsupported version %u", p[0]);
        return set_bytes(batch, d, p + 1, len - 1);
    case TM_PG_BIN_CHAR: {
        if (len != 1)
            return bad_len(errstr, errstr_size, bin, len, 1);
        /* charout: a high byte as \ooo, NUL as the empty string, others as themselves. */
        char t[4];
        size_t n = 0;
        if (p[0] & 0x80) {
            t[0] = '\\';
            t[1] = (char)('0' + (p[0] >> 6));
            t[2] = (char)('0' + ((p[0] >> 3) & 7));
            t[3] = (char)('0' + (p[0] & 7));
            n = 4;
        } else if (p[0] != 0) {
            t[0] = (char)p[0];
            n = 1;
        }
        return set_bytes(batch, d, t, n);
    }
    case TM_PG_BIN_BIT: {
        if (len < 4)
            return bad_len(errstr, errstr_size, bin, len, 4);
        uint32_t nbits = tm_pg_get_u32(p);
        if (nbits > (uint32_t)INT32_MAX || len - 4 != ((size_t)nbits + 7) / 8)
            return tm_seterr(errstr, errstr_size, TM_EPROTO,
                             "binary bit string of %" PRIu32 " bits has %zu bytes", nbits,
                             len - 4);
        char *s = tm_arena_alloc(&batch->arena, (size_t)nbits + 1);
        if (s == NULL)
            return TM_ENOMEM;
        for (uint32_t i = 0; i < nbits; i++)
            s[i] = (p[4 + i / 8] >> (7 - i % 8)) & 1 ? '1' : '0';
        s[nbits] = '\0';
        d->u.var.ptr = s;
        d->u.var.len = nbits;
        return 0;
    }
    case TM_PG_BIN_DATE: {
        if (len != 4)
            return bad_len(errstr, errstr_size, bin, len, 4);
        int32_t v = (int32_t)tm_pg_get_u32(p);
        d->u.i64 = v == INT32_MAX   ? TM_PG_DATE_POS_INF
                   : v == INT32_MIN ? TM_PG_DATE_NEG_INF
                                    : (int64_t)v + PG_EPOCH_DAYS;
        return 0;
    }
    case TM_PG_BIN_TIME:
        if (len != 8)
            return bad_len(errstr, errstr_size, bin, len, 8);
        d->u.i64 = get_i64(p);
        if (d->u.i64 < 0 || d->u.i64 > US_PER_DAY)
            return tm_seterr(errstr, errstr_size, TM_EPROTO,
                             "binary time value %" PRId64 " is outside 00:00 to 24:00",
                             d->u.i64);
        return 0;
    case TM_PG_BIN_TIMETZ: {
        if (len != 12)
            return bad_len(errstr, errstr_size, bin, len, 12);
        int64_t us = get_i64(p);
        int32_t zone = (int32_t)tm_pg_get_u32(p + 8); /* seconds west of UTC */
        if (us < 0 || us > US_PER_DAY || zone < -16 * 3600 || zone > 16 * 3600)
            return tm_seterr(errstr, errstr_size, TM_EPROTO,
                             "binary timetz value (%" PRId64 " µs, zone %" PRId32
                             " s) is out of range",
                             us, zone);
        int64_t v = (us + (int64_t)zone * US_PER_SEC) % US_PER_DAY;
        d->u.i64 = v < 0 ? v + US_PER_DAY : v;
        return 0;
    }
    case TM_PG_BIN_TIMESTAMP: {
        if (len != 8)
            return bad_len(errstr, errstr_size, bin, len, 8);
        int64_t v = get_i64(p);
        if (v == INT64_MAX || v == INT64_MIN) {
            d->u.i64 = v == INT64_MAX ? TM_PG_TS_POS_INF : TM_PG_TS_NEG_INF;
            return 0;
        }
        /* As the text path: no finite value may reach the infinity sentinels. */
        __int128 u = (__int128)v + TM_PG_EPOCH_OFFSET_US;
        if (u >= TM_PG_TS_POS_INF || u <= TM_PG_TS_NEG_INF)
            return tm_seterr(errstr, errstr_size, TM_EPROTO,
                             "binary timestamp value %" PRId64 " is out of range", v);
        d->u.i64 = (int64_t)u;
        return 0;
    }
    case TM_PG_BIN_INTERVAL: {
        if (len != 16)
            return bad_len(errstr, errstr_size, bin, len, 16);
        int64_t us = get_i64(p);
        int32_t days = (int32_t)tm_pg_get_u32(p + 8), months = (int32_t)tm_pg_get_u32(p + 12);
        __int128 total = (__int128)months * US_PER_MONTH + (__int128)days * US_PER_DAY + us;
        d->u.iv.us = total > INT64_MAX ? INT64_MAX : total < INT64_MIN ? INT64_MIN : (int64_t)total;
        d->u.iv.months = months;
        return 0;
    }
    case TM_PG_BIN_UUID: {
        if (len != 16)
            return bad_len(errstr, errstr_size, bin, len, 16);
        static const char hex[] = "0123456789abcdef";
        char t[36];
        size_t n = 0;
        for (int i = 0; i < 16; i++) {
            if (i == 4 || i == 6 || i == 8 || i == 10)
                t[n++] = '-';
            t[n++] = hex[p[i] >> 4];
            t[n++] = hex[p[i] & 15];
        }
        return set_bytes(batch, d, t, n);
    }
    default:
        return tm_seterr(errstr, errstr_size, TM_EPROTO,
                         "no binary decoder for this column's type");
    }
}

/* ---- Arrays ---- */

typedef struct arr {
    const uint8_t *p, *end;
    uint8_t elem_bin, elem_kind;
    int ndim;
    int32_t dims[MAX_DIMS];
    tm_batch_t *batch;
    tm_buf_t *out;
    char *errstr;
    size_t errstr_size;
} arr_t;

static int arr_level(arr_t *a, int dim)
{
    if (tm_buf_putc(a->out, '[') != 0)
        return TM_ENOMEM;
    for (int32_t i = 0; i < a->dims[dim]; i++) {
        if (i > 0 && tm_buf_putc(a->out, ',') != 0)
            return TM_ENOMEM;
        int rc;
        if (dim + 1 < a->ndim) {
            if ((rc = arr_level(a, dim + 1)) != 0)
                return rc;
            continue;
        }
        if (a->end - a->p < 4)
            return tm_seterr(a->errstr, a->errstr_size, TM_EPROTO,
                             "binary array ends before its elements do");
        int32_t elen = (int32_t)tm_pg_get_u32(a->p);
        a->p += 4;
        if (elen == -1) {
            if (tm_buf_puts(a->out, "null") != 0)
                return TM_ENOMEM;
            continue;
        }
        if (elen < 0 || a->end - a->p < elen)
            return tm_seterr(a->errstr, a->errstr_size, TM_EPROTO,
                             "binary array element has invalid length %" PRId32, elen);
        tm_datum_t d;
        memset(&d, 0, sizeof(d));
        char why[200];
        rc = bin_scalar(a->batch, a->elem_bin, a->p, (size_t)elen, &d, why, sizeof(why));
        if (rc == TM_ENOMEM)
            return rc;
        if (rc != 0)
            return tm_seterr(a->errstr, a->errstr_size, TM_EPROTO, "binary array element: %s",
                             why);
        a->p += elen;
        if ((rc = tm_pg_elem_json(a->out, a->elem_kind, &d)) != 0)
            return rc;
    }
    return tm_buf_putc(a->out, ']');
}

/* array_send's layout as the JSON array text the text path makes of array_out's output. */
static int parse_array(tm_batch_t *batch, const tm_pg_coltype_t *ct, const uint8_t *p,
                       size_t len, tm_datum_t *d, char *errstr, size_t errstr_size)
{
    if (len < 12)
        return tm_seterr(errstr, errstr_size, TM_EPROTO,
                         "binary array value has %zu bytes, fewer than its 12-byte header", len);
    int32_t ndim = (int32_t)tm_pg_get_u32(p);
    uint32_t flags = tm_pg_get_u32(p + 4);
    if (ndim < 0 || ndim > MAX_DIMS)
        return tm_seterr(errstr, errstr_size, TM_EPROTO,
                         "binary array value has %" PRId32 " dimensions (at most %d)", ndim,
                         MAX_DIMS);
    if (flags > 1)
        return tm_seterr(errstr, errstr_size, TM_EPROTO,
                         "binary array value has invalid flags 0x%" PRIx32, flags);
    if (len - 12 < (size_t)ndim * 8)
        return tm_seterr(errstr, errstr_size, TM_EPROTO,
                         "binary array value ends inside its %" PRId32 " dimensions", ndim);
    arr_t a = {p + 12 + (size_t)ndim * 8, p + len, ct->elem_bin, ct->elem_kind, ndim, {0},
               batch, NULL, errstr, errstr_size};
    /* Every element takes at least its 4-byte length: bound the count before any output. */
    uint64_t nitems = ndim > 0 ? 1 : 0, room = (uint64_t)(a.end - a.p) / 4;
    for (int i = 0; i < ndim; i++) {
        a.dims[i] = (int32_t)tm_pg_get_u32(p + 12 + (size_t)i * 8);
        if (a.dims[i] < 0)
            return tm_seterr(errstr, errstr_size, TM_EPROTO,
                             "binary array dimension %d has negative length %" PRId32, i + 1,
                             a.dims[i]);
        nitems *= (uint64_t)a.dims[i];
        if (nitems > room)
            return tm_seterr(errstr, errstr_size, TM_EPROTO,
                             "binary array value is too short for its dimensions");
    }
    tm_buf_t out;
    tm_buf_init(&out);
    a.out = &out;
    int rc = ndim == 0 ? tm_buf_puts(&out, "[]") : arr_level(&a, 0);
    if (rc == 0 && a.p != a.end)
        rc = tm_seterr(errstr, errstr_size, TM_EPROTO,
                       "binary array value has %zu bytes after its elements",
                       (size_t)(a.end - a.p));
    if (rc == 0)
        rc = set_bytes(batch, d, out.data, out.len);
    tm_buf_release(&out);
    return rc;
}

int tm_pg_binary_parse(tm_batch_t *batch, const tm_pg_coltype_t *ct, const uint8_t *p,
                       size_t len, tm_datum_t *d, char *errstr, size_t errstr_size)
{
    memset(d, 0, sizeof(*d));
    if (ct->bin == TM_PG_BIN_ARRAY) {
        if (ct->elem_bin == TM_PG_BIN_NONE || ct->elem_bin == TM_PG_BIN_ARRAY)
            return tm_seterr(errstr, errstr_size, TM_EPROTO,
                             "no binary decoder for this array's element type");
        return parse_array(batch, ct, p, len, d, errstr, errstr_size);
    }
    return bin_scalar(batch, ct->bin, p, len, d, errstr, errstr_size);
}
