/*
 * debezium_enc.c — the Debezium JSON encoder (DESIGN §2, §3).
 *
 * Role: turns tm_record_t into Debezium 2.x change events as Kafka Connect's
 * JsonConverter prints them, plus the shared helpers of debezium_int.h (the
 * type mapping and the leaf formatters).  Two encoders live here:
 *
 *   fast       tm_dbz_encode_value()/_key(): appends text to a tm_buf_t.  All
 *              constant text of a table — the schema part, the JSON keys of
 *              the row, the names in the source block — is rendered once per
 *              (tm_schema_t, version) and cached; per event only values are
 *              formatted, in place.
 *   reference  tm_dbz_encode_value_json()/_key_json(): builds the same event
 *              with Jansson objects, independently of the cached text.  Unit
 *              tests parse the fast output and require json_equal() with it.
 *
 * The two share only the type mapping (tm__dbz_col_desc) and the leaf value
 * formatters (numbers, times, decimal bytes), so a mistake in the fast
 * writer's structure, keys, quoting or caching shows up as a difference.
 *
 * Layout of a value event with schemas on (field order as Debezium 2.x):
 *
 *   {"schema":{…Envelope…},"payload":{"before":…,"after":…,"source":{…},
 *    "transaction":null,"op":"c","ts_ms":…,"ts_us":…,"ts_ns":…}}
 *
 *   value_head ──┘ (cached, ends with `"before":`)
 *
 * Invariants:
 *   1. A cache entry holds one reference on its schema, so the schema's
 *      address cannot be reused by another schema while the entry exists;
 *      (pointer, version) is therefore a sound key.
 *   2. The cache is bounded (TM__DBZ_ENC_MAX_TABLES); when full it is emptied.
 *   3. On failure the output buffer is restored to its length at entry.
 *
 * Thread: an encoder belongs to one thread (a sink's).
 */
#include "core/datum.h"
#include "core/error.h"
#include "format/debezium.h"
#include "format/debezium_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifndef TM_VERSION
#define TM_VERSION "0.0.0"
#endif

#define TRY(x)                                                                                     \
    do {                                                                                           \
        int tm__rc = (x);                                                                          \
        if (tm__rc != 0)                                                                           \
            return tm__rc;                                                                         \
    } while (0)

#define PUTS(out, lit) tm_buf_append((out), (lit), sizeof(lit) - 1)

/* ======================================================================== */
/* Type mapping                                                             */
/* ======================================================================== */

static int dbz_frac_digits(const tm_column_t *col)
{
    /* PostgreSQL's default for time/timestamp without a typmod is 6 digits. */
    return col->precision < 0 ? 6 : col->precision;
}

void tm__dbz_col_desc(const tm_column_t *col, const tm_dbz_opts_t *opts, tm_dbz_coldesc_t *desc)
{
    bool adaptive = opts == NULL || opts->time_mode != TM_TIME_CONNECT;
    tm_decimal_mode_t dmode = opts ? opts->decimal_mode : TM_DECIMAL_PRECISE;

    memset(desc, 0, sizeof(*desc));
    desc->type = "string";
    desc->precision = -1;
    desc->scale = col->scale;
    desc->wire = TM_DBZ_W_PLAIN;

    int32_t bits = tm__dbz_bits_length(col);
    if (bits == 1) {
        desc->type = "boolean";
        desc->wire = TM_DBZ_W_BIT1;
        return;
    }
    if (bits > 1) {
        desc->type = "bytes";
        desc->name = TM_DBZ_BITS;
        desc->version = 1;
        desc->bits = bits;
        desc->wire = TM_DBZ_W_BITS;
        return;
    }

    switch (col->type) {
    case TM_T_BOOL:
        desc->type = "boolean";
        break;
    case TM_T_INT16:
        desc->type = "int16";
        break;
    case TM_T_INT32:
        desc->type = "int32";
        break;
    case TM_T_INT64:
        desc->type = "int64";
        break;
    case TM_T_FLOAT32:
        desc->type = "float";
        break;
    case TM_T_FLOAT64:
        desc->type = "double";
        break;
    case TM_T_NUMERIC:
        if (dmode == TM_DECIMAL_STRING) {
            desc->wire = TM_DBZ_W_DEC_STRING;
        } else if (dmode == TM_DECIMAL_DOUBLE) {
            desc->type = "double";
            desc->wire = TM_DBZ_W_DEC_DOUBLE;
        } else if (col->scale == TM_SCALE_VARIABLE) {
            desc->type = "struct";
            desc->name = TM_DBZ_VSD;
            desc->version = 1;
            desc->doc = TM_DBZ_VSD_DOC;
            desc->wire = TM_DBZ_W_DEC_VSD;
        } else {
            desc->type = "bytes";
            desc->name = TM_DBZ_DECIMAL;
            desc->version = 1;
            desc->precision = col->precision > 0 ? col->precision : -1;
            desc->wire = TM_DBZ_W_DEC_BYTES;
        }
        break;
    case TM_T_TEXT:
    case TM_T_OTHER:
        if (tm__dbz_is_hstore(col)) {
            bool map = opts != NULL && opts->hstore_mode == TM_HSTORE_MAP;
            desc->type = map ? "map" : "string";
            desc->name = map ? NULL : TM_DBZ_JSON;
            desc->version = map ? 0 : 1;
            desc->wire = map ? TM_DBZ_W_HSTORE_MAP : TM_DBZ_W_HSTORE_JSON;
            break;
        }
        if (tm__dbz_pg_unknown(col)) {
            /* Debezium leaves the column out, or sends its text as bytes (binaryMode schema). */
            desc->omit = opts == NULL || !opts->include_unknown;
            desc->bin = opts ? (uint8_t)opts->binary_mode : 0;
            desc->type = desc->bin == TM_BINARY_BYTES ? "bytes" : "string";
            desc->wire = TM_DBZ_W_UNKNOWN;
            break;
        }
        if (col->semantic != NULL) {
            desc->name = col->semantic;
            desc->version = 1;
        }
        break;
    case TM_T_BYTES:
        if (col->semantic != NULL && (strcmp(col->semantic, TM_DBZ_GEOMETRY) == 0 ||
                                      strcmp(col->semantic, TM_DBZ_POINT) == 0)) {
            /* A struct whose wkb is Connect bytes whatever binary.handling.mode says. */
            bool point = strcmp(col->semantic, TM_DBZ_POINT) == 0;
            desc->type = "struct";
            desc->name = col->semantic;
            desc->version = 1;
            desc->doc = point ? "Geometry (POINT)" : "Geometry";
            desc->wire = point ? TM_DBZ_W_POINT : TM_DBZ_W_GEOMETRY;
            break;
        }
        desc->bin = opts ? (uint8_t)opts->binary_mode : 0;
        desc->type = desc->bin == TM_BINARY_BYTES ? "bytes" : "string";
        if (col->semantic != NULL) {
            desc->name = col->semantic;
            desc->version = 1;
        }
        break;
    case TM_T_JSON:
        desc->name = col->semantic != NULL ? col->semantic : TM_DBZ_JSON;
        desc->version = 1;
        break;
    case TM_T_UUID:
        desc->name = TM_DBZ_UUID;
        desc->version = 1;
        break;
    case TM_T_ENUM:
        desc->name = col->semantic != NULL ? col->semantic : TM_DBZ_ENUM;
        desc->version = 1;
        desc->allowed = col->enum_values;
        break;
    case TM_T_DATE:
        desc->type = "int32";
        desc->name = adaptive ? "io.debezium.time.Date" : "org.apache.kafka.connect.data.Date";
        desc->version = 1;
        break;
    case TM_T_TIME:
        desc->version = 1;
        if (!adaptive) {
            desc->type = "int32";
            desc->name = "org.apache.kafka.connect.data.Time";
            desc->wire = TM_DBZ_W_MS;
        } else if (dbz_frac_digits(col) <= 3) {
            desc->type = "int32";
            desc->name = "io.debezium.time.Time";
            desc->wire = TM_DBZ_W_MS;
        } else {
            desc->type = "int64";
            desc->name = "io.debezium.time.MicroTime";
            desc->wire = TM_DBZ_W_US;
        }
        break;
    case TM_T_TIMESTAMP:
        desc->type = "int64";
        desc->version = 1;
        if (!adaptive) {
            desc->name = "org.apache.kafka.connect.data.Timestamp";
            desc->wire = TM_DBZ_W_MS;
        } else if (dbz_frac_digits(col) <= 3) {
            desc->name = "io.debezium.time.Timestamp";
            desc->wire = TM_DBZ_W_MS;
        } else {
            desc->name = "io.debezium.time.MicroTimestamp";
            desc->wire = TM_DBZ_W_US;
        }
        break;
    case TM_T_TIMETZ:
        desc->name = "io.debezium.time.ZonedTime";
        desc->version = 1;
        break;
    case TM_T_TIMESTAMPTZ:
        desc->name = "io.debezium.time.ZonedTimestamp";
        desc->version = 1;
        break;
    case TM_T_INTERVAL:
        desc->version = 1;
        if (opts != NULL && opts->interval_mode == TM_INTERVAL_STRING) {
            desc->name = "io.debezium.time.Interval";
            desc->wire = TM_DBZ_W_IV_STRING;
            break;
        }
        desc->type = "int64";
        desc->name = "io.debezium.time.MicroDuration";
        break;
    case TM_T_ARRAY:
        desc->type = "array";
        desc->elem_type = col->elem_type;
        break;
    }
}

int32_t tm__dbz_bits_length(const tm_column_t *col)
{
    if (col->type != TM_T_TEXT && col->type != TM_T_OTHER)
        return -1;
    bool bit = col->type_oid == 1560 || (col->db_type != NULL && strcmp(col->db_type, "bit") == 0);
    bool varbit =
        col->type_oid == 1562 || (col->db_type != NULL && strcmp(col->db_type, "varbit") == 0);
    if (!bit && !varbit)
        return -1;
    if (col->length > 0)
        return col->length;
    return bit ? 1 : INT32_MAX;
}

int tm__dbz_bits_to_bytes(const char *s, size_t n, tm_buf_t *out)
{
    /* Bit i (from the right) goes to byte i / 8, bit i % 8; trailing zero bytes are dropped. */
    size_t nbytes = 0;
    for (size_t i = 0; i < n; i++)
        if (s[n - 1 - i] == '1')
            nbytes = i / 8 + 1;
    size_t start = out->len;
    TRY(tm_buf_reserve(out, nbytes + 1));
    memset(out->data + start, 0, nbytes);
    for (size_t i = 0; i < n && i / 8 < nbytes; i++)
        if (s[n - 1 - i] == '1')
            out->data[start + i / 8] = (char)(out->data[start + i / 8] | (1 << (i % 8)));
    out->len = start + nbytes;
    return 0;
}

int tm__dbz_bytes_to_bits(const uint8_t *b, size_t n, int32_t length, tm_buf_t *out)
{
    size_t used = 0; /* bits up to the highest one set */
    for (size_t i = 0; i < n * 8; i++)
        if (b[i / 8] & (1u << (i % 8)))
            used = i + 1;
    size_t digits = used > 0 ? used : 1;
    if (length > 0 && length <= 65536 && (size_t)length > digits)
        digits = (size_t)length;
    TRY(tm_buf_reserve(out, digits + 1));
    for (size_t k = 0; k < digits; k++) {
        size_t i = digits - 1 - k;
        bool one = i / 8 < n && (b[i / 8] & (1u << (i % 8)));
        out->data[out->len + k] = one ? '1' : '0';
    }
    out->len += digits;
    return 0;
}

void tm__dbz_elem_desc(tm_type_t elem_type, const tm_dbz_opts_t *opts, tm_dbz_coldesc_t *desc)
{
    tm_column_t col;
    memset(&col, 0, sizeof(col));
    /* PostgreSQL has no arrays of arrays: a nested array type is described as text. */
    col.type = (elem_type == TM_T_ARRAY || elem_type == 0) ? TM_T_TEXT : elem_type;
    col.precision = -1;
    col.scale = TM_SCALE_VARIABLE;
    col.length = -1;
    col.nullable = true;
    col.key_index = -1;
    tm__dbz_col_desc(&col, opts, desc);
}

/* ======================================================================== */
/* Numbers                                                                  */
/* ======================================================================== */

const char *tm__dbz_special_double(double v)
{
    if (isnan(v))
        return "NaN";
    if (isinf(v))
        return v > 0 ? "Infinity" : "-Infinity";
    return NULL;
}

/* Makes sure a %g rendering reads as a real, the way Java prints doubles. */
static size_t dbz_real_marker(char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (buf[i] == '.' || buf[i] == 'e' || buf[i] == 'E')
            return n;
    buf[n++] = '.';
    buf[n++] = '0';
    buf[n] = '\0';
    return n;
}

/* Exact powers of ten as doubles (10^22 is the last one a double holds exactly). */
static const double exact_pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Writes x / 10^s as plain decimal text, with at least one fractional digit. */
static size_t put_scaled_u64(char *buf, bool neg, uint64_t x, int s)
{
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + x % 10);
        x /= 10;
    } while (x);
    while (n <= s)
        digits[n++] = '0';
    size_t o = 0;
    if (neg)
        buf[o++] = '-';
    for (int i = n - 1; i >= s; i--)
        buf[o++] = digits[i];
    buf[o++] = '.';
    if (s == 0)
        buf[o++] = '0';
    for (int i = s - 1; i >= 0; i--)
        buf[o++] = digits[i];
    buf[o] = '\0';
    return o;
}

/*
 * The common case without printf: a value with few decimals (prices,
 * measurements) is x / 10^s for a small integer x.  The first s for which
 * the correctly rounded quotient x / 10^s is v gives the shortest text; both
 * operands are exact, so the quotient is exactly what strtod() reads back.
 */
static size_t fmt_f64_fast(double v, char *buf)
{
    double a = fabs(v);
    if (!(a < 1e15) || (a != 0 && a < 1e-7))
        return 0;
    for (int s = 0; s <= 15; s++) {
        double scaled = a * exact_pow10[s];
        if (scaled >= 9007199254740992.0)
            return 0;
        uint64_t x = (uint64_t)(scaled + 0.5);
        if ((double)x / exact_pow10[s] == a)
            return put_scaled_u64(buf, signbit(v), x, s);
    }
    return 0;
}

/* The same for floats: x < 2^24 and 10^s (s <= 10) are exact floats. */
static size_t fmt_f32_fast(float f, char *buf)
{
    float a = fabsf(f);
    if (!(a < 1e7f) || (a != 0 && a < 1e-5f))
        return 0;
    for (int s = 0; s <= 10; s++) {
        double scaled = (double)a * exact_pow10[s];
        if (scaled >= 16777216.0)
            return 0;
        uint32_t x = (uint32_t)(scaled + 0.5);
        if ((float)x / (float)exact_pow10[s] == a)
            return put_scaled_u64(buf, signbit(f), x, s);
    }
    return 0;
}

size_t tm__dbz_fmt_f64(double v, char *buf)
{
    if (!isfinite(v))
        return 0;
    size_t fast = fmt_f64_fast(v, buf);
    if (fast > 0)
        return fast;
    /*
     * Fifteen significant digits round-trip for most values that came from
     * decimal text; the 16/17-digit retries cover the rest.  %g trims
     * trailing zeros, so 0.1 prints as "0.1".
     */
    /*
     * The fast path finds every value of at most 15 significant digits in
     * [1, 1e15) (at most 14 decimals), so there the search starts at 16.
     */
    double a = fabs(v);
    int n = 0;
    for (int prec = a >= 1 && a < 1e15 ? 16 : 15; prec <= 17; prec++) {
        n = snprintf(buf, TM__DBZ_DOUBLE_MAX - 2, "%.*g", prec, v);
        if (prec == 17 || strtod(buf, NULL) == v)
            break;
    }
    return dbz_real_marker(buf, (size_t)n);
}

size_t tm__dbz_fmt_f32(double v, char *buf)
{
    float f = (float)v;
    if (!isfinite(f))
        return 0;
    size_t fast = fmt_f32_fast(f, buf);
    if (fast > 0)
        return fast;
    /* Java's Float.toString: the shortest text that reads back as the same float. */
    int n = 0;
    for (int prec = 6; prec <= 9; prec++) {
        n = snprintf(buf, TM__DBZ_DOUBLE_MAX - 2, "%.*g", prec, (double)f);
        if (prec == 9 || strtof(buf, NULL) == f)
            break;
    }
    return dbz_real_marker(buf, (size_t)n);
}

static bool i128_pow10(int n, __int128 *out)
{
    if (n < 0 || n > 38)
        return false;
    __int128 p = 1;
    while (n-- > 0)
        p *= 10;
    *out = p;
    return true;
}

/*
 * Rescales an unscaled value from scale `from` to scale `to`, rounding half
 * away from zero.  Returns false when the result does not fit in 128 bits.
 */
static bool i128_rescale(__int128 v, int32_t from, int32_t to, __int128 *out)
{
    __int128 p;
    if (to == from) {
        *out = v;
        return true;
    }
    if (to > from) {
        if (!i128_pow10(to - from, &p))
            return v == 0 ? (*out = 0, true) : false;
        return !__builtin_mul_overflow(v, p, out);
    }
    if (!i128_pow10(from - to, &p)) {
        /* |v| < 2^127 < 10^39 / 2, so dividing by 10^39 or more rounds to zero. */
        *out = 0;
        return true;
    }
    __int128 q = v / p, r = v % p;
    unsigned __int128 ar = r < 0 ? -(unsigned __int128)r : (unsigned __int128)r;
    if (ar >= (unsigned __int128)p - ar)
        q += v < 0 ? -1 : 1;
    *out = q;
    return true;
}

/* Decimal digits of a magnitude, most significant first; returns the count (1..39). */
static int u128_digits(unsigned __int128 m, char *buf)
{
    char tmp[40];
    int n = 0;
    if (m <= UINT64_MAX) {
        uint64_t s = (uint64_t)m;
        do {
            tmp[n++] = (char)('0' + s % 10);
            s /= 10;
        } while (s);
    } else {
        do {
            tmp[n++] = (char)('0' + (int)(m % 10));
            m /= 10;
        } while (m);
    }
    for (int i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

/* Appends sign + digits with a decimal point `scale` places from the right. */
static int append_scaled_digits(tm_buf_t *out, bool neg, const char *digits, size_t n,
                                int32_t scale)
{
    /* Strip leading zeros of the unscaled digits; keep one for zero. */
    while (n > 1 && digits[0] == '0') {
        digits++;
        n--;
    }
    bool zero = n == 1 && digits[0] == '0';
    if (neg && !zero)
        TRY(tm_buf_putc(out, '-'));
    if (scale <= 0) {
        TRY(tm_buf_append(out, digits, n));
        if (!zero)
            for (int32_t i = 0; i < -scale; i++)
                TRY(tm_buf_putc(out, '0'));
        return 0;
    }
    if (n > (size_t)scale) {
        TRY(tm_buf_append(out, digits, n - (size_t)scale));
        TRY(tm_buf_putc(out, '.'));
        return tm_buf_append(out, digits + n - (size_t)scale, (size_t)scale);
    }
    TRY(PUTS(out, "0."));
    for (size_t i = n; i < (size_t)scale; i++)
        TRY(tm_buf_putc(out, '0'));
    return tm_buf_append(out, digits, n);
}

/*
 * Parses decimal text into sign, all digits and the scale they are at:
 * "-123.4500" gives 1234500 at scale 4.  It accepts what tm_numeric_parse()
 * keeps as wide text: surrounding blanks, a sign, and an exponent ("1.5e-3"
 * is 15 at scale 4, "1e5" is 1 at scale -5).  Returns 0, TM_EINVAL or
 * TM_ENOMEM.
 */
static int dec_text_split(const char *s, size_t n, bool *neg, tm_buf_t *digits, int32_t *frac)
{
    size_t i = 0;
    bool dot = false, any = false;
    int64_t f = 0;
    *neg = false;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    while (n > i && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        *neg = s[i++] == '-';
    for (; i < n; i++) {
        if (s[i] >= '0' && s[i] <= '9') {
            TRY(tm_buf_putc(digits, s[i]));
            any = true;
            f += dot;
        } else if (s[i] == '.' && !dot) {
            dot = true;
        } else {
            break;
        }
    }
    if (any && i < n && (s[i] == 'e' || s[i] == 'E')) {
        bool eneg = false;
        int64_t e = 0;
        if (++i < n && (s[i] == '-' || s[i] == '+'))
            eneg = s[i++] == '-';
        if (i >= n)
            return TM_EINVAL;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            if (e < 1000000)
                e = e * 10 + (s[i] - '0');
        f += eneg ? e : -e;
    }
    /* Scales beyond what NUMERIC can hold would only make the conversions slow. */
    if (!any || i != n || f > 200000 || f < -200000)
        return TM_EINVAL;
    *frac = (int32_t)f;
    return 0;
}

/*
 * Brings a digit string at scale `frac` to scale `to`, in place: pads with
 * zeros or cuts with half-up rounding.
 */
static int digits_rescale(tm_buf_t *digits, int32_t frac, int32_t to)
{
    if (to >= frac) {
        for (int32_t i = frac; i < to; i++)
            TRY(tm_buf_putc(digits, '0'));
        return 0;
    }
    size_t drop = (size_t)(frac - to);
    bool up;
    if (drop > digits->len) {
        digits->len = 0;
        up = false;
    } else {
        up = digits->data[digits->len - drop] >= '5';
        digits->len -= drop;
    }
    if (digits->len == 0)
        TRY(tm_buf_putc(digits, '0'));
    if (up) {
        size_t i = digits->len;
        while (i > 0 && digits->data[i - 1] == '9')
            digits->data[--i] = '0';
        if (i > 0) {
            digits->data[i - 1]++;
        } else {
            TRY(tm_buf_putc(digits, '0'));
            memmove(digits->data + 1, digits->data, digits->len - 1);
            digits->data[0] = '1';
        }
    }
    return 0;
}

/* Appends the minimal two's-complement big-endian form of a BE magnitude. */
static int append_twos(tm_buf_t *out, bool neg, uint8_t *mag, size_t n)
{
    /* mag has one spare leading byte, mag[0] == 0, so the sign fits. */
    if (neg) {
        unsigned carry = 1;
        for (size_t i = n; i-- > 0;) {
            unsigned v = (uint8_t)~mag[i] + carry;
            mag[i] = (uint8_t)v;
            carry = v >> 8;
        }
    }
    size_t i = 0;
    while (i + 1 < n && ((mag[i] == 0x00 && !(mag[i + 1] & 0x80)) ||
                         (mag[i] == 0xff && (mag[i + 1] & 0x80))))
        i++;
    return tm_buf_append(out, mag + i, n - i);
}

/* Decimal digit string → big-endian two's-complement bytes appended to out. */
static int digits_to_twos(const char *d, size_t n, bool neg, tm_buf_t *out)
{
    /* Little-endian base-2^32 limbs; log2(10) < 3.33 bits per digit. */
    size_t nlimbs = n * 333 / 3200 + 2;
    uint32_t *limb = calloc(nlimbs, sizeof(*limb));
    uint8_t *mag = malloc(nlimbs * 4 + 1);
    int rc = TM_ENOMEM;
    if (limb == NULL || mag == NULL)
        goto done;
    size_t used = 1;
    for (size_t i = 0; i < n;) {
        uint32_t chunk = 0, mul = 1;
        for (int k = 0; k < 9 && i < n; k++, i++) {
            chunk = chunk * 10 + (uint32_t)(d[i] - '0');
            mul *= 10;
        }
        uint64_t carry = chunk;
        for (size_t j = 0; j < used; j++) {
            uint64_t v = (uint64_t)limb[j] * mul + carry;
            limb[j] = (uint32_t)v;
            carry = v >> 32;
        }
        if (carry && used < nlimbs)
            limb[used++] = (uint32_t)carry;
    }
    mag[0] = 0;
    for (size_t j = 0; j < used; j++) {
        uint32_t v = limb[used - 1 - j];
        mag[1 + 4 * j] = (uint8_t)(v >> 24);
        mag[2 + 4 * j] = (uint8_t)(v >> 16);
        mag[3 + 4 * j] = (uint8_t)(v >> 8);
        mag[4 + 4 * j] = (uint8_t)v;
    }
    rc = append_twos(out, neg, mag, used * 4 + 1);
done:
    free(limb);
    free(mag);
    return rc;
}

/* The wide path: a NUMERIC held as text, rescaled and converted digit by digit. */
static int wide_bytes(const tm_datum_t *d, int32_t target, tm_buf_t *out, int32_t *scale_out)
{
    tm_buf_t digits;
    bool neg;
    int32_t frac;
    tm_buf_init(&digits);
    int rc = dec_text_split(d->u.var.ptr, d->u.var.len, &neg, &digits, &frac);
    if (rc == 0) {
        int32_t to = target == TM_SCALE_VARIABLE ? frac : target;
        rc = digits_rescale(&digits, frac, to);
        if (rc == 0)
            rc = digits_to_twos(digits.data, digits.len, neg, out);
        *scale_out = to;
    }
    tm_buf_release(&digits);
    return rc;
}

int tm__dbz_numeric_bytes(const tm_datum_t *d, int32_t target_scale, tm_buf_t *out,
                          int32_t *scale_out)
{
    if (d->flags & TM_DATUM_NAN)
        return TM_ENOTFOUND;
    if (d->flags & TM_DATUM_WIDE)
        return wide_bytes(d, target_scale, out, scale_out);

    __int128 v = d->u.dec;
    int32_t to = target_scale == TM_SCALE_VARIABLE ? d->scale : target_scale;
    if (!i128_rescale(d->u.dec, d->scale, to, &v)) {
        /* Too wide once rescaled: go through the text form. */
        char digits[48];
        unsigned __int128 m = d->u.dec < 0 ? -(unsigned __int128)d->u.dec
                                           : (unsigned __int128)d->u.dec;
        int n = u128_digits(m, digits);
        tm_buf_t tmp;
        tm_buf_init(&tmp);
        int rc = tm_buf_append(&tmp, digits, (size_t)n);
        if (rc == 0)
            rc = digits_rescale(&tmp, d->scale, to);
        if (rc == 0)
            rc = digits_to_twos(tmp.data, tmp.len, d->u.dec < 0, out);
        tm_buf_release(&tmp);
        *scale_out = to;
        return rc;
    }
    uint8_t b[17];
    unsigned __int128 u = (unsigned __int128)v;
    b[0] = v < 0 ? 0xff : 0x00;
    for (int i = 0; i < 16; i++)
        b[16 - i] = (uint8_t)(u >> (8 * i));
    *scale_out = to;
    size_t i = 0;
    while (i + 1 < sizeof(b) &&
           ((b[i] == 0x00 && !(b[i + 1] & 0x80)) || (b[i] == 0xff && (b[i + 1] & 0x80))))
        i++;
    return tm_buf_append(out, b + i, sizeof(b) - i);
}

int tm__dbz_numeric_text(const tm_datum_t *d, int32_t target_scale, tm_buf_t *out)
{
    if (d->flags & TM_DATUM_NAN)
        return tm_buf_append(out, d->u.var.ptr, d->u.var.len);
    if (d->flags & TM_DATUM_WIDE) {
        tm_buf_t digits;
        bool neg;
        int32_t frac;
        tm_buf_init(&digits);
        int rc = dec_text_split(d->u.var.ptr, d->u.var.len, &neg, &digits, &frac);
        int32_t to = target_scale == TM_SCALE_VARIABLE ? frac : target_scale;
        if (rc == 0)
            rc = digits_rescale(&digits, frac, to);
        if (rc == 0)
            rc = append_scaled_digits(out, neg, digits.data, digits.len, to);
        tm_buf_release(&digits);
        return rc;
    }
    __int128 v;
    int32_t to = target_scale == TM_SCALE_VARIABLE ? d->scale : target_scale;
    if (!i128_rescale(d->u.dec, d->scale, to, &v)) {
        /* Only growing the scale can overflow: append the missing zeros as text. */
        v = d->u.dec;
        char digits[48];
        unsigned __int128 m = v < 0 ? -(unsigned __int128)v : (unsigned __int128)v;
        int n = u128_digits(m, digits);
        tm_buf_t tmp;
        tm_buf_init(&tmp);
        int rc = tm_buf_append(&tmp, digits, (size_t)n);
        if (rc == 0)
            rc = digits_rescale(&tmp, d->scale, to);
        if (rc == 0)
            rc = append_scaled_digits(out, v < 0, tmp.data, tmp.len, to);
        tm_buf_release(&tmp);
        return rc;
    }
    char digits[48];
    unsigned __int128 m = v < 0 ? -(unsigned __int128)v : (unsigned __int128)v;
    int n = u128_digits(m, digits);
    return append_scaled_digits(out, v < 0, digits, (size_t)n, to);
}

int tm__dbz_bytes_to_text(const uint8_t *b, size_t n, int32_t scale, tm_buf_t *out)
{
    if (n == 0)
        return append_scaled_digits(out, false, "0", 1, scale);
    bool neg = b[0] & 0x80;
    size_t nlimbs = (n + 3) / 4;
    uint32_t *limb = calloc(nlimbs, sizeof(*limb));
    /* Nine decimal digits per 30 bits: 2.41 digits per byte, plus slack. */
    size_t dcap = n * 25 / 10 + 16;
    char *digits = malloc(dcap);
    int rc = TM_ENOMEM;
    if (limb == NULL || digits == NULL)
        goto done;
    /* Magnitude in little-endian limbs: two's-complement negation when negative. */
    unsigned carry = neg ? 1 : 0;
    for (size_t i = 0; i < n; i++) {
        unsigned v = neg ? (uint8_t)~b[n - 1 - i] + carry : b[n - 1 - i];
        if (neg)
            carry = v >> 8;
        limb[i / 4] |= (uint32_t)(uint8_t)v << (8 * (i % 4));
    }
    size_t used = nlimbs, nd = 0;
    while (used > 0 && limb[used - 1] == 0)
        used--;
    while (used > 0) {
        uint64_t rem = 0;
        for (size_t j = used; j-- > 0;) {
            uint64_t cur = (rem << 32) | limb[j];
            limb[j] = (uint32_t)(cur / 1000000000u);
            rem = cur % 1000000000u;
        }
        while (used > 0 && limb[used - 1] == 0)
            used--;
        for (int k = 0; k < 9 && nd < dcap; k++) {
            digits[nd++] = (char)('0' + rem % 10);
            rem /= 10;
        }
    }
    if (nd == 0)
        digits[nd++] = '0';
    for (size_t i = 0; i < nd / 2; i++) {
        char t = digits[i];
        digits[i] = digits[nd - 1 - i];
        digits[nd - 1 - i] = t;
    }
    rc = append_scaled_digits(out, neg, digits, nd, scale);
done:
    free(limb);
    free(digits);
    return rc;
}

/* ======================================================================== */
/* Time                                                                     */
/* ======================================================================== */

#define US_PER_DAY INT64_C(86400000000)

/* Proleptic Gregorian calendar day number ↔ civil date (days since 1970-01-01). */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static char *put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
    return p + 2;
}

/*
 * "HH:MM:SS[.ffffff]": with `width` < 0 trailing fraction zeros trimmed, as
 * java.time prints; else exactly `width` (0..6) fraction digits, as
 * Debezium's ZonedTimestamp pads to the column's precision.
 */
static char *put_time_of_day(char *p, int64_t us, int width)
{
    unsigned secs = (unsigned)(us / 1000000), frac = (unsigned)(us % 1000000);
    p = put2(p, secs / 3600);
    *p++ = ':';
    p = put2(p, secs / 60 % 60);
    *p++ = ':';
    p = put2(p, secs % 60);
    if (width > 0 || (width < 0 && frac != 0)) {
        *p++ = '.';
        int ndig = 6;
        while (ndig > (width < 0 ? 1 : width) && frac % 10 == 0) {
            frac /= 10;
            ndig--;
        }
        for (; ndig > width && width >= 0; ndig--)
            frac /= 10; /* finer than the column's precision: PostgreSQL rounded it already */
        for (int i = ndig - 1; i >= 0; i--) {
            p[i] = (char)('0' + frac % 10);
            frac /= 10;
        }
        p += ndig;
    }
    return p;
}

size_t tm__dbz_fmt_zoned_ts(int64_t us, char *buf)
{
    return tm__dbz_fmt_zoned_ts_width(us, -1, buf);
}

size_t tm__dbz_fmt_zoned_ts_width(int64_t us, int width, char *buf)
{
    int64_t days = us / US_PER_DAY, rem = us % US_PER_DAY;
    if (rem < 0) {
        rem += US_PER_DAY;
        days--;
    }
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    char *p = buf;
    /* ISO_LOCAL_DATE: 4-digit years, '+' beyond 9999, '-' before year 0 (1 BC). */
    if (y >= 0 && y <= 9999) {
        p = put2(p, (unsigned)(y / 100));
        p = put2(p, (unsigned)(y % 100));
    } else if (y > 9999)
        p += sprintf(p, "+%lld", (long long)y);
    else if (y < 0)
        p += sprintf(p, "-%04lld", -(long long)y);
    else
        p += sprintf(p, "%04lld", (long long)y);
    *p++ = '-';
    p = put2(p, m);
    *p++ = '-';
    p = put2(p, d);
    *p++ = 'T';
    p = put_time_of_day(p, rem, width);
    *p++ = 'Z';
    *p = '\0';
    return (size_t)(p - buf);
}

size_t tm__dbz_fmt_zoned_time(int64_t us, char *buf)
{
    int64_t rem = us % US_PER_DAY;
    if (rem < 0)
        rem += US_PER_DAY;
    char *p = put_time_of_day(buf, rem, -1);
    *p++ = 'Z';
    *p = '\0';
    return (size_t)(p - buf);
}

/* A timestamptz column's fraction digits on the wire: its precision, 6 when it has none. */
static int zoned_width(const tm_column_t *col)
{
    return col->precision >= 0 && col->precision <= 6 ? col->precision : 6;
}

/* Reads exactly `n` digits at s[*i]. */
static bool rd_digits(const char *s, size_t len, size_t *i, int n, int64_t *out)
{
    int64_t v = 0;
    for (int k = 0; k < n; k++) {
        if (*i >= len || s[*i] < '0' || s[*i] > '9')
            return false;
        v = v * 10 + (s[(*i)++] - '0');
    }
    *out = v;
    return true;
}

/* "HH:MM[:SS[.fffffffff]]" → µs since midnight (extra fraction digits truncated). */
static bool rd_time_of_day(const char *s, size_t len, size_t *i, int64_t *us)
{
    int64_t hh, mi, ss = 0, frac = 0;
    if (!rd_digits(s, len, i, 2, &hh) || *i >= len || s[(*i)++] != ':' ||
        !rd_digits(s, len, i, 2, &mi))
        return false;
    if (*i < len && s[*i] == ':') {
        (*i)++;
        if (!rd_digits(s, len, i, 2, &ss))
            return false;
        if (*i < len && s[*i] == '.') {
            (*i)++;
            int nd = 0;
            while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
                if (nd < 6)
                    frac = frac * 10 + (s[*i] - '0');
                nd++;
                (*i)++;
            }
            if (nd == 0 || nd > 9)
                return false;
            for (; nd < 6; nd++)
                frac *= 10;
        }
    }
    /* 24:00:00 is PostgreSQL's end of day for time and timetz. */
    if (hh > 24 || mi > 59 || ss > 60 || (hh == 24 && (mi || ss || frac)))
        return false;
    *us = ((hh * 60 + mi) * 60 + ss) * 1000000 + frac;
    return true;
}

/* "Z" | "+HH" | "+HH:MM" | "+HHMM" | "+HH:MM:SS", or nothing (UTC) → offset in µs. */
static bool rd_offset(const char *s, size_t len, size_t *i, int64_t *off_us)
{
    *off_us = 0;
    if (*i == len)
        return true;
    if (s[*i] == 'Z' || s[*i] == 'z') {
        (*i)++;
        return *i == len;
    }
    if (s[*i] != '+' && s[*i] != '-')
        return false;
    int sign = s[(*i)++] == '-' ? -1 : 1;
    int64_t hh, mi = 0, ss = 0;
    if (!rd_digits(s, len, i, 2, &hh))
        return false;
    if (*i < len && s[*i] == ':')
        (*i)++;
    if (*i < len && !rd_digits(s, len, i, 2, &mi))
        return false;
    if (*i < len && s[*i] == ':') {
        (*i)++;
        if (!rd_digits(s, len, i, 2, &ss))
            return false;
    }
    if (*i != len || hh > 18 || mi > 59 || ss > 59)
        return false;
    *off_us = sign * ((hh * 60 + mi) * 60 + ss) * 1000000;
    return true;
}

int tm__dbz_parse_zoned_ts(const char *s, size_t len, int64_t *us)
{
    size_t i = 0;
    int sign = 1;
    if (i < len && (s[i] == '+' || s[i] == '-'))
        sign = s[i++] == '-' ? -1 : 1;
    int64_t y = 0, mo, d, tod, off;
    int ny = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9' && ny < 10) {
        y = y * 10 + (s[i++] - '0');
        ny++;
    }
    if (ny < 4 || i >= len || s[i++] != '-' || !rd_digits(s, len, &i, 2, &mo) || i >= len ||
        s[i++] != '-' || !rd_digits(s, len, &i, 2, &d) || i >= len ||
        (s[i] != 'T' && s[i] != 't' && s[i] != ' '))
        return -1;
    i++;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || !rd_time_of_day(s, len, &i, &tod) ||
        !rd_offset(s, len, &i, &off))
        return -1;
    int64_t days = days_from_civil(sign * y, (unsigned)mo, (unsigned)d), r;
    /*
     * Before the epoch, days * US_PER_DAY alone can pass INT64_MIN even when
     * the instant fits (PostgreSQL's -infinity neighbourhood): count from the
     * end of the day instead.
     */
    if (days < 0 ? __builtin_mul_overflow(days + 1, US_PER_DAY, &r) ||
                       __builtin_add_overflow(r, tod - US_PER_DAY, &r)
                 : __builtin_mul_overflow(days, US_PER_DAY, &r) ||
                       __builtin_add_overflow(r, tod, &r))
        return -1;
    if (__builtin_sub_overflow(r, off, &r))
        return -1;
    *us = r;
    return 0;
}

int tm__dbz_parse_zoned_time(const char *s, size_t len, int64_t *us)
{
    size_t i = 0;
    int64_t tod, off;
    if (!rd_time_of_day(s, len, &i, &tod) || !rd_offset(s, len, &i, &off))
        return -1;
    int64_t v = (tod - off) % US_PER_DAY;
    *us = v < 0 ? v + US_PER_DAY : v;
    return 0;
}

/* ======================================================================== */
/* Names                                                                    */
/* ======================================================================== */

int tm__dbz_append_stem(tm_buf_t *out, const tm_schema_t *schema)
{
    /* MySQL has no schema level: its topics are <prefix>.<db>.<table>. */
    const char *parts[3] = {schema->source_name,
                            schema->namespace != NULL ? schema->namespace : schema->db,
                            schema->table};
    /*
     * Debezium names a table's schemas after its topic, sanitized as topic
     * names are ("sp ace" is shop.public.sp_ace.Value: tests/compat/test_txmeta.py).
     */
    tm_buf_t stem;
    tm_buf_init(&stem);
    int rc = tm_dbz_topic_name(parts, 3, ".", &stem);
    if (rc == 0)
        rc = tm_buf_append(out, stem.data, stem.len);
    tm_buf_release(&stem);
    return rc;
}

/* ======================================================================== */
/* Per-connector constant parts                                             */
/* ======================================================================== */

/*
 * The source block shapes.  MySQL and MariaDB share the binlog fields and
 * differ in the connector name and the schema name (Debezium 3 has a
 * MariaDB connector of its own, io.debezium.connector.mariadb).
 */
enum { TM__DBZ_PG = 0, TM__DBZ_MYSQL = 1, TM__DBZ_MARIADB = 2, TM__DBZ_NKINDS = 3 };

/* One field of a source struct: the data the schema part and the reference share. */
typedef struct src_field {
    const char *field;
    const char *type;
    bool optional;
} src_field_t;

/* `snapshot` is special-cased: an optional Enum with a default. */
#define SNAPSHOT_ALLOWED "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"

static const src_field_t pg_source_fields[] = {
    {"version", "string", false},  {"connector", "string", false}, {"name", "string", false},
    {"ts_ms", "int64", false},     {"snapshot", NULL, true},       {"db", "string", false},
    {"sequence", "string", true},  {"ts_us", "int64", true},       {"ts_ns", "int64", true},
    {"schema", "string", false},   {"table", "string", false},     {"txId", "int64", true},
    {"lsn", "int64", true},        {"xmin", "int64", true},        {"origin", "string", true},
    {"origin_lsn", "int64", true}, {NULL, NULL, false},
};

/*
 * The binlog connectors' source block.  A record of the MySQL source fills
 * the binlog fields from its tm_my_source_t (w_binlog_position); a record
 * without one, written in this shape because the encoder was configured
 * for it, gets neutral values.
 */
static const src_field_t mysql_source_fields[] = {
    {"version", "string", false}, {"connector", "string", false}, {"name", "string", false},
    {"ts_ms", "int64", false},    {"snapshot", NULL, true},       {"db", "string", false},
    {"sequence", "string", true}, {"ts_us", "int64", true},       {"ts_ns", "int64", true},
    {"table", "string", true},    {"server_id", "int64", false},  {"gtid", "string", true},
    {"file", "string", false},    {"pos", "int64", false},        {"row", "int32", false},
    {"thread", "int64", true},    {"query", "string", true},      {NULL, NULL, false},
};

/* Indexed by TM_SNAPSHOT_*. */
static const char *const snapshot_names[] = {"false",
                                             "true",
                                             "last",
                                             "incremental",
                                             "first",
                                             "first_in_data_collection",
                                             "last_in_data_collection"};

static const char *snapshot_name(uint8_t s)
{
    return s < sizeof(snapshot_names) / sizeof(snapshot_names[0]) ? snapshot_names[s] : "false";
}

/* ======================================================================== */
/* The encoder and its per-table cache                                      */
/* ======================================================================== */

#define TM__DBZ_ENC_BUCKETS 64
#define TM__DBZ_ENC_MAX_TABLES 1024

typedef struct enc_table {
    struct enc_table *next;
    tm_schema_t *schema; /* one reference (invariant 1) */
    uint32_t version;
    int kind; /* TM__DBZ_*: the source block shape of its records */
    tm_dbz_coldesc_t *desc; /* per column */
    tm_buf_t value_head;    /* …`"payload":{"before":` or `{"before":` */
    tm_buf_t src_head;      /* `,"source":{"version":…,"name":"…","ts_ms":` */
    tm_buf_t src_db;        /* `,"db":"…","sequence":` */
    tm_buf_t src_tail;      /* PG: `,"schema":"…","table":"…","txId":`; MySQL: up to `}` */
    tm_buf_t key_head;      /* `{"schema":…,"payload":` or empty */
    tm_buf_t names;         /* `"a":` `,"b":` … for every column, concatenated */
    uint32_t *name_off;     /* ncols + 1 offsets into names */
    tm_buf_t key_names;     /* the same for the key columns */
    uint32_t *key_off;
    int nkey;
    int *key_cols; /* owned copy: the key columns (dbz_key_cols), or all columns */
    bool has_key;  /* false: the record has no key (TM_ENOTFOUND) */
    int nval;
    int *val_cols; /* the columns of the value (dbz_value_cols) */
} enc_table_t;

struct tm_dbz_encoder {
    tm_dbz_opts_t opts; /* connector/version point at the owned copies below */
    char *connector;
    char *version;
    int kind; /* TM__DBZ_*: the configured shape, for records without a connector part */
    enc_table_t *buckets[TM__DBZ_ENC_BUCKETS];
    enc_table_t *last;
    unsigned ntables;
    tm_buf_t source_schema[TM__DBZ_NKINDS]; /* the source field of the envelope schema, per kind */
    tm_buf_t scratch;
    bool snap; /* the record being written is a snapshot read (tm__dbz_date_out) */
    tm__dbz_filter_t *filter; /* column lists and message.key.columns, or NULL */
    const tm_dbz_txblock_t *txblock; /* tm_dbz_encoder_set_txblock(), borrowed */
};

/*
 * The columns a value carries (column.include/exclude.list, unknown types
 * left out), in table order; their count.  cols has room for ncols.
 */
static int dbz_value_cols(const tm_dbz_encoder_t *enc, const tm_schema_t *s, int *cols)
{
    int n = 0;
    for (int i = 0; i < s->ncols; i++) {
        tm_dbz_coldesc_t d;
        tm__dbz_col_desc(&s->cols[i], &enc->opts, &d);
        if (!d.omit && tm__dbz_filter_column(enc->filter, s, i))
            cols[n++] = i;
    }
    return n;
}

/*
 * The key's columns: message.key.columns when it names columns of this
 * table, else the primary key (*has false when there is none: no key).
 */
static int dbz_key_cols(const tm_dbz_encoder_t *enc, const tm_schema_t *s, int *cols, bool *has)
{
    int n = tm__dbz_filter_key(enc->filter, s, cols);
    if (n == 0) {
        n = s->nkeys;
        for (int k = 0; k < n; k++)
            cols[k] = s->key_cols[k];
    }
    *has = n > 0;
    return n;
}

void tm_dbz_encoder_set_txblock(tm_dbz_encoder_t *enc, const tm_dbz_txblock_t *blk)
{
    enc->txblock = blk;
}

/* ,"transaction":… — the block set by the sink (provide.transaction.metadata), or null. */
static int w_txblock(const tm_dbz_encoder_t *enc, tm_buf_t *out)
{
    const tm_dbz_txblock_t *b = enc->txblock;
    if (b == NULL)
        return tm_buf_puts(out, ",\"transaction\":null");
    return tm_buf_appendf(out,
                          ",\"transaction\":{\"id\":\"%s\",\"total_order\":%lld,"
                          "\"data_collection_order\":%lld}",
                          b->id, (long long)b->total_order, (long long)b->data_collection_order);
}

static void enc_table_free(enc_table_t *t)
{
    if (t == NULL)
        return;
    tm_schema_unref(t->schema);
    free(t->desc);
    tm_buf_release(&t->value_head);
    tm_buf_release(&t->src_head);
    tm_buf_release(&t->src_db);
    tm_buf_release(&t->src_tail);
    tm_buf_release(&t->key_head);
    tm_buf_release(&t->names);
    free(t->name_off);
    tm_buf_release(&t->key_names);
    free(t->key_off);
    free(t->key_cols);
    free(t->val_cols);
    free(t);
}

static void enc_cache_clear(tm_dbz_encoder_t *enc)
{
    for (int b = 0; b < TM__DBZ_ENC_BUCKETS; b++) {
        enc_table_t *t = enc->buckets[b];
        while (t != NULL) {
            enc_table_t *next = t->next;
            enc_table_free(t);
            t = next;
        }
        enc->buckets[b] = NULL;
    }
    enc->last = NULL;
    enc->ntables = 0;
}

/* ---- schema text writers (cold path: once per table) ---- */

static bool dbz_has_default(const tm_column_t *col, const tm_dbz_coldesc_t *desc);
static int w_value(tm_dbz_encoder_t *enc, const tm_column_t *col, const tm_dbz_coldesc_t *desc,
                   const tm_datum_t *d, tm_buf_t *out);

static int w_str(tm_buf_t *out, const char *s)
{
    return tm_buf_append_json_str(out, s ? s : "", s ? strlen(s) : 0);
}

/* `"optional","name","version","doc","parameters"`: JsonConverter's order. */
static int w_schema_attrs(tm_buf_t *out, const tm_dbz_coldesc_t *desc, bool optional)
{
    TRY(optional ? PUTS(out, ",\"optional\":true") : PUTS(out, ",\"optional\":false"));
    if (desc->name != NULL) {
        TRY(PUTS(out, ",\"name\":"));
        TRY(w_str(out, desc->name));
    }
    if (desc->version > 0)
        TRY(tm_buf_appendf(out, ",\"version\":%d", desc->version));
    if (desc->doc != NULL) {
        TRY(PUTS(out, ",\"doc\":"));
        TRY(w_str(out, desc->doc));
    }
    if (desc->wire == TM_DBZ_W_DEC_BYTES) {
        TRY(tm_buf_appendf(out, ",\"parameters\":{\"scale\":\"%d\"", (int)desc->scale));
        if (desc->precision > 0)
            TRY(tm_buf_appendf(out, ",\"connect.decimal.precision\":\"%d\"",
                               (int)desc->precision));
        TRY(tm_buf_putc(out, '}'));
    } else if (desc->wire == TM_DBZ_W_BITS) {
        TRY(tm_buf_appendf(out, ",\"parameters\":{\"length\":\"%d\"}", (int)desc->bits));
    } else if (desc->allowed != NULL) {
        TRY(PUTS(out, ",\"parameters\":{\"allowed\":"));
        TRY(w_str(out, desc->allowed));
        TRY(tm_buf_putc(out, '}'));
    }
    return 0;
}

static int w_value_schema(tm_buf_t *out, const tm_dbz_opts_t *opts, const tm_dbz_coldesc_t *desc,
                          bool optional, const tm_buf_t *dflt, const char *field)
{
    TRY(PUTS(out, "{\"type\":"));
    TRY(w_str(out, desc->type));
    if (desc->wire == TM_DBZ_W_DEC_VSD)
        TRY(PUTS(out, ",\"fields\":[{\"type\":\"int32\",\"optional\":false,\"field\":\"scale\"},"
                      "{\"type\":\"bytes\",\"optional\":false,\"field\":\"value\"}]"));
    if (desc->wire == TM_DBZ_W_HSTORE_MAP)
        TRY(PUTS(out, ",\"keys\":{\"type\":\"string\",\"optional\":false},"
                      "\"values\":{\"type\":\"string\",\"optional\":true}"));
    if (desc->wire == TM_DBZ_W_GEOMETRY)
        TRY(PUTS(out, ",\"fields\":[{\"type\":\"bytes\",\"optional\":false,\"field\":\"wkb\"},"
                      "{\"type\":\"int32\",\"optional\":true,\"field\":\"srid\"}]"));
    if (desc->wire == TM_DBZ_W_POINT)
        TRY(PUTS(out, ",\"fields\":[{\"type\":\"double\",\"optional\":false,\"field\":\"x\"},"
                      "{\"type\":\"double\",\"optional\":false,\"field\":\"y\"},"
                      "{\"type\":\"bytes\",\"optional\":true,\"field\":\"wkb\"},"
                      "{\"type\":\"int32\",\"optional\":true,\"field\":\"srid\"}]"));
    if (strcmp(desc->type, "array") == 0) {
        tm_dbz_coldesc_t elem;
        tm__dbz_elem_desc(desc->elem_type, opts, &elem);
        TRY(PUTS(out, ",\"items\":"));
        TRY(w_value_schema(out, opts, &elem, true, NULL, NULL));
    }
    TRY(w_schema_attrs(out, desc, optional));
    if (dflt != NULL) {
        TRY(PUTS(out, ",\"default\":"));
        TRY(tm_buf_append(out, dflt->data, dflt->len));
    }
    if (field != NULL) {
        TRY(PUTS(out, ",\"field\":"));
        TRY(w_str(out, field));
    }
    return tm_buf_putc(out, '}');
}

/* `"<stem><suffix>"` as a JSON string: Debezium's record schema names. */
static int w_stem_name(tm_buf_t *out, const tm_schema_t *schema, const char *suffix)
{
    tm_buf_t name;
    tm_buf_init(&name);
    int rc = tm__dbz_append_stem(&name, schema);
    if (rc == 0)
        rc = tm_buf_puts(&name, suffix);
    if (rc == 0)
        rc = tm_buf_append_json_str(out, name.data, name.len);
    tm_buf_release(&name);
    return rc;
}

/* `{"type":"struct","fields":[cols],"optional":…,"name":"<stem><suffix>"[,"field":…]}` */
static int w_row_schema(tm_buf_t *out, tm_dbz_encoder_t *enc, const tm_schema_t *schema,
                        const tm_dbz_coldesc_t *desc, const int *cols, int ncols, bool optional,
                        const char *suffix, const char *field, const tm__dbz_filter_t *key_filter)
{
    TRY(PUTS(out, "{\"type\":\"struct\",\"fields\":["));
    tm_buf_t dflt;
    tm_buf_init(&dflt);
    int rc = 0;
    for (int k = 0; k < ncols && rc == 0; k++) {
        int i = cols ? cols[k] : k;
        const tm_column_t *col = &schema->cols[i];
        if (k > 0 && (rc = tm_buf_putc(out, ',')) != 0)
            break;
        tm_buf_clear(&dflt);
        bool has = dbz_has_default(col, &desc[i]);
        if (has && (rc = w_value(enc, col, &desc[i], col->default_value, &dflt)) != 0)
            break;
        /* A key column the column lists leave out of the value is optional in Debezium's key. */
        bool opt = col->nullable ||
                   (key_filter != NULL && !tm__dbz_filter_column(key_filter, schema, i));
        rc = w_value_schema(out, &enc->opts, &desc[i], opt, has ? &dflt : NULL, col->name);
    }
    tm_buf_release(&dflt);
    TRY(rc);
    TRY(optional ? PUTS(out, "],\"optional\":true,\"name\":")
                 : PUTS(out, "],\"optional\":false,\"name\":"));
    TRY(w_stem_name(out, schema, suffix));
    if (field != NULL) {
        TRY(PUTS(out, ",\"field\":"));
        TRY(w_str(out, field));
    }
    return tm_buf_putc(out, '}');
}

/* The binlog connectors' table field, the constant part after the common ones. */
static int w_mysql_source_tail(tm_buf_t *out, const char *table)
{
    TRY(PUTS(out, ",\"table\":"));
    return w_str(out, table);
}

/* The source block shape of a record: its connector's, else the configured one. */
static int rec_kind(const tm_dbz_encoder_t *enc, const tm_record_t *rec)
{
    if (rec->src.kind == TM_SOURCE_MYSQL)
        return rec->src.u.my.mariadb ? TM__DBZ_MARIADB : TM__DBZ_MYSQL;
    return enc->kind;
}

/* Debezium's connector name for a shape: the configured name for the configured shape. */
static const char *kind_connector(const tm_dbz_encoder_t *enc, int kind)
{
    if (kind == enc->kind)
        return enc->connector;
    return kind == TM__DBZ_MARIADB ? "mariadb" : kind == TM__DBZ_MYSQL ? "mysql" : "postgresql";
}

/*
 * A MySQL record's GTID as Debezium writes it: MariaDB's domain-server-seq
 * or MySQL's uuid:seq.  Writes "" when the record has none.
 */
static void my_gtid_text(const tm_my_source_t *my, char *buf, size_t n)
{
    buf[0] = '\0';
    if (my->gtid_kind == TM_MY_GTID_MARIADB)
        snprintf(buf, n, "%" PRIu32 "-%" PRIu32 "-%" PRIu64, my->gtid_domain, my->gtid_server,
                 my->gtid_seq);
    else if (my->gtid_kind == TM_MY_GTID_MYSQL && my->gtid_uuid != NULL)
        snprintf(buf, n, "%s:%" PRIu64, my->gtid_uuid, my->gtid_seq);
}

static const src_field_t *source_fields(int kind)
{
    return kind != TM__DBZ_PG ? mysql_source_fields : pg_source_fields;
}

static const char *source_schema_name(int kind)
{
    return kind == TM__DBZ_MARIADB ? "io.debezium.connector.mariadb.Source"
           : kind == TM__DBZ_MYSQL ? "io.debezium.connector.mysql.Source"
                                   : "io.debezium.connector.postgresql.Source";
}

static int w_source_schema(tm_buf_t *out, int kind)
{
    TRY(PUTS(out, "{\"type\":\"struct\",\"fields\":["));
    const src_field_t *f = source_fields(kind);
    for (int i = 0; f[i].field != NULL; i++) {
        if (i > 0)
            TRY(tm_buf_putc(out, ','));
        if (f[i].type == NULL) {
            TRY(PUTS(out, "{\"type\":\"string\",\"optional\":true,"
                          "\"name\":\"io.debezium.data.Enum\",\"version\":1,"
                          "\"parameters\":{\"allowed\":\"" SNAPSHOT_ALLOWED "\"},"
                          "\"default\":\"false\",\"field\":"));
        } else {
            TRY(tm_buf_appendf(out, "{\"type\":\"%s\",\"optional\":%s,\"field\":", f[i].type,
                               f[i].optional ? "true" : "false"));
        }
        TRY(w_str(out, f[i].field));
        TRY(tm_buf_putc(out, '}'));
    }
    /* Debezium 3's PostgreSQL source struct carries a schema version (tests/compat). */
    return tm_buf_appendf(out, "],\"optional\":false,\"name\":\"%s\",%s\"field\":\"source\"}",
                          source_schema_name(kind), kind != TM__DBZ_PG ? "" : "\"version\":1,");
}

#define TXN_SCHEMA                                                                                 \
    "{\"type\":\"struct\",\"fields\":[{\"type\":\"string\",\"optional\":false,\"field\":\"id\"},"  \
    "{\"type\":\"int64\",\"optional\":false,\"field\":\"total_order\"},"                           \
    "{\"type\":\"int64\",\"optional\":false,\"field\":\"data_collection_order\"}],"                \
    "\"optional\":true,\"name\":\"event.block\",\"version\":1,\"field\":\"transaction\"}"

#define ENVELOPE_TAIL_FIELDS                                                                       \
    "{\"type\":\"string\",\"optional\":false,\"field\":\"op\"},"                                   \
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ms\"},"                                  \
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_us\"},"                                  \
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ns\"}"

/* Writes `"k":` (with a leading comma unless first) into names, recording offsets. */
static int names_add(tm_buf_t *names, uint32_t *off, int k, bool comma, const char *name)
{
    off[k] = (uint32_t)names->len;
    if (comma)
        TRY(tm_buf_putc(names, ','));
    TRY(w_str(names, name));
    TRY(tm_buf_putc(names, ':'));
    off[k + 1] = (uint32_t)names->len;
    return 0;
}

static int enc_table_build(tm_dbz_encoder_t *enc, enc_table_t *t)
{
    const tm_schema_t *s = t->schema;
    enc->snap = false; /* defaults in the schema are written as streaming writes values */
    int ncols = s->ncols;
    t->desc = calloc((size_t)(ncols > 0 ? ncols : 1), sizeof(*t->desc));
    t->name_off = calloc((size_t)ncols + 1, sizeof(*t->name_off));
    if (t->desc == NULL || t->name_off == NULL)
        return TM_ENOMEM;
    t->val_cols = calloc((size_t)ncols + 1, sizeof(*t->val_cols));
    if (t->val_cols == NULL)
        return TM_ENOMEM;
    t->nval = dbz_value_cols(enc, s, t->val_cols);
    for (int i = 0, kept = 0; i < ncols; i++) {
        tm__dbz_col_desc(&s->cols[i], &enc->opts, &t->desc[i]);
        bool in = kept < t->nval && t->val_cols[kept] == i;
        TRY(names_add(&t->names, t->name_off, i, in && kept > 0, s->cols[i].name));
        kept += in;
    }

    /* The key: message.key.columns or the primary key; every column when neither (unused). */
    t->key_cols = calloc((size_t)ncols + 1, sizeof(*t->key_cols));
    t->key_off = calloc((size_t)ncols + 1, sizeof(*t->key_off));
    if (t->key_cols == NULL || t->key_off == NULL)
        return TM_ENOMEM;
    t->nkey = dbz_key_cols(enc, s, t->key_cols, &t->has_key);
    if (!t->has_key) {
        t->nkey = ncols;
        for (int i = 0; i < ncols; i++)
            t->key_cols[i] = i;
    }
    for (int k = 0; k < t->nkey; k++) {
        int i = t->key_cols[k];
        if (NEVER(i < 0 || i >= ncols))
            return TM_EINVAL;
        TRY(names_add(&t->key_names, t->key_off, k, k > 0, s->cols[i].name));
    }

    /* Value head. */
    tm_buf_t *h = &t->value_head;
    if (enc->opts.schemas) {
        TRY(PUTS(h, "{\"schema\":{\"type\":\"struct\",\"fields\":["));
        TRY(w_row_schema(h, enc, s, t->desc, t->val_cols, t->nval, true, ".Value", "before",
                         NULL));
        TRY(tm_buf_putc(h, ','));
        TRY(w_row_schema(h, enc, s, t->desc, t->val_cols, t->nval, true, ".Value", "after",
                         NULL));
        TRY(tm_buf_putc(h, ','));
        TRY(tm_buf_append(h, enc->source_schema[t->kind].data, enc->source_schema[t->kind].len));
        TRY(PUTS(h, "," TXN_SCHEMA "," ENVELOPE_TAIL_FIELDS "],\"optional\":false,\"name\":"));
        TRY(w_stem_name(h, s, ".Envelope"));
        TRY(PUTS(h, ",\"version\":2},\"payload\":{\"before\":"));
    } else {
        TRY(PUTS(h, "{\"before\":"));
    }

    /* Source block pieces. */
    TRY(PUTS(&t->src_head, ",\"source\":{\"version\":"));
    TRY(w_str(&t->src_head, enc->version));
    TRY(PUTS(&t->src_head, ",\"connector\":"));
    TRY(w_str(&t->src_head, kind_connector(enc, t->kind)));
    TRY(PUTS(&t->src_head, ",\"name\":"));
    TRY(w_str(&t->src_head, s->source_name));
    TRY(PUTS(&t->src_head, ",\"ts_ms\":"));
    TRY(PUTS(&t->src_db, ",\"db\":"));
    TRY(w_str(&t->src_db, s->db));
    TRY(PUTS(&t->src_db, ",\"sequence\":"));
    if (t->kind != TM__DBZ_PG) {
        TRY(w_mysql_source_tail(&t->src_tail, s->table));
    } else {
        TRY(PUTS(&t->src_tail, ",\"schema\":"));
        TRY(w_str(&t->src_tail, s->namespace));
        TRY(PUTS(&t->src_tail, ",\"table\":"));
        TRY(w_str(&t->src_tail, s->table));
        TRY(PUTS(&t->src_tail, ",\"txId\":"));
    }

    /* Key head. */
    if (enc->opts.schemas) {
        TRY(PUTS(&t->key_head, "{\"schema\":"));
        TRY(w_row_schema(&t->key_head, enc, s, t->desc, t->key_cols, t->nkey, false, ".Key",
                         NULL, enc->filter));
        TRY(PUTS(&t->key_head, ",\"payload\":"));
    }
    return 0;
}

static enc_table_t *enc_table_get(tm_dbz_encoder_t *enc, tm_schema_t *schema, int kind, int *err)
{
    enc_table_t *t = enc->last;
    if (t != NULL && t->schema == schema && t->version == schema->version && t->kind == kind)
        return t;
    unsigned b = (unsigned)(((uintptr_t)schema >> 4) ^ schema->version) % TM__DBZ_ENC_BUCKETS;
    for (t = enc->buckets[b]; t != NULL; t = t->next)
        if (t->schema == schema && t->version == schema->version && t->kind == kind)
            return enc->last = t;

    if (enc->ntables >= TM__DBZ_ENC_MAX_TABLES)
        enc_cache_clear(enc);
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        *err = TM_ENOMEM;
        return NULL;
    }
    t->schema = tm_schema_ref(schema);
    t->version = schema->version;
    t->kind = kind;
    int rc = enc_table_build(enc, t);
    if (rc != 0) {
        enc_table_free(t);
        *err = rc;
        return NULL;
    }
    t->next = enc->buckets[b];
    enc->buckets[b] = t;
    enc->ntables++;
    return enc->last = t;
}

tm_dbz_encoder_t *tm_dbz_encoder_new(const tm_dbz_opts_t *opts)
{
    tm_dbz_encoder_t *enc = NULL;
    char err[256];
    tm_dbz_opts_t none;
    memset(&none, 0, sizeof(none));
    return tm_dbz_encoder_open(opts ? opts : &none, &enc, err, sizeof(err)) == 0 ? enc : NULL;
}

static tm_dbz_encoder_t *dbz_encoder_new(const tm_dbz_opts_t *opts)
{
    tm_dbz_encoder_t *enc = calloc(1, sizeof(*enc));
    if (enc == NULL)
        return NULL;
    if (opts != NULL)
        enc->opts = *opts;
    /* The lists live on compiled in enc->filter only. */
    enc->opts.key_columns = enc->opts.column_include = enc->opts.column_exclude = NULL;
    enc->connector = strdup(opts && opts->connector ? opts->connector : "postgresql");
    enc->version = strdup(opts && opts->version ? opts->version : TM_VERSION);
    if (enc->connector == NULL || enc->version == NULL)
        return tm_dbz_encoder_free(enc);
    enc->opts.connector = enc->connector;
    enc->opts.version = enc->version;
    /*
     * The configured shape is for records without a connector part (a
     * MySQL record always gets a binlog shape); anything that is not MySQL
     * or MariaDB gets PostgreSQL's, the richer one.
     */
    enc->kind = strcmp(enc->connector, "mysql") == 0     ? TM__DBZ_MYSQL
                : strcmp(enc->connector, "mariadb") == 0 ? TM__DBZ_MARIADB
                                                         : TM__DBZ_PG;
    for (int k = 0; k < TM__DBZ_NKINDS; k++)
        if (w_source_schema(&enc->source_schema[k], k) != 0)
            return tm_dbz_encoder_free(enc);
    return enc;
}

int tm_dbz_encoder_open(const tm_dbz_opts_t *opts, tm_dbz_encoder_t **out, char *errstr,
                        size_t errstr_size)
{
    *out = NULL;
    tm__dbz_filter_t *f = NULL;
    int rc = tm__dbz_filter_new(opts, &f, errstr, errstr_size);
    if (rc != 0)
        return rc;
    tm_dbz_encoder_t *enc = dbz_encoder_new(opts);
    if (enc == NULL) {
        tm__dbz_filter_free(f);
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    }
    enc->filter = f;
    *out = enc;
    return 0;
}

tm_dbz_encoder_t *tm_dbz_encoder_free(tm_dbz_encoder_t *enc)
{
    if (enc == NULL)
        return NULL;
    enc_cache_clear(enc);
    for (int k = 0; k < TM__DBZ_NKINDS; k++)
        tm_buf_release(&enc->source_schema[k]);
    tm_buf_release(&enc->scratch);
    tm__dbz_filter_free(enc->filter);
    free(enc->connector);
    free(enc->version);
    free(enc);
    return NULL;
}

/* ======================================================================== */
/* Fast value writers (hot path)                                            */
/* ======================================================================== */

/*
 * Appenders for the hot path: the capacity check is inline and the rare
 * growth goes through tm_buf_reserve(), so the many small pieces of an event
 * cost a compare and a memcpy each.  Like buf.c they leave data[len]
 * addressable; the public entry points write the final NUL.
 */
static inline int bput(tm_buf_t *b, const void *p, size_t n)
{
    /* Empty pieces (an unused cached part) may be NULL: memcpy must not see them. */
    if (n == 0)
        return 0;
    if (b->len + n >= b->cap && tm_buf_reserve(b, n) != 0)
        return TM_ENOMEM;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

#define BPUTS(b, lit) bput((b), (lit), sizeof(lit) - 1)

static inline int bputc(tm_buf_t *b, char c)
{
    if (b->len + 1 >= b->cap && tm_buf_reserve(b, 1) != 0)
        return TM_ENOMEM;
    b->data[b->len++] = c;
    return 0;
}

static const char digit_pairs[] = "00010203040506070809101112131415161718192021222324"
                                  "25262728293031323334353637383940414243444546474849"
                                  "50515253545556575859606162636465666768697071727374"
                                  "75767778798081828384858687888990919293949596979899";

static inline int bput_u64(tm_buf_t *b, uint64_t v)
{
    char tmp[20], *p = tmp + sizeof(tmp);
    if (b->len + 21 >= b->cap && tm_buf_reserve(b, 21) != 0)
        return TM_ENOMEM;
    while (v >= 100) {
        unsigned r = (unsigned)(v % 100);
        v /= 100;
        p -= 2;
        memcpy(p, digit_pairs + 2 * r, 2);
    }
    if (v >= 10) {
        p -= 2;
        memcpy(p, digit_pairs + 2 * v, 2);
    } else {
        *--p = (char)('0' + v);
    }
    size_t n = (size_t)(tmp + sizeof(tmp) - p);
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static inline int bput_i64(tm_buf_t *b, int64_t v)
{
    if (v < 0) {
        TRY(bputc(b, '-'));
        return bput_u64(b, (uint64_t)0 - (uint64_t)v);
    }
    return bput_u64(b, (uint64_t)v);
}


/* Writes an int64 that is `v * mul`, or null when that overflows (ts_ns of far dates). */
static int w_scaled_i64(tm_buf_t *out, int64_t v, int64_t mul)
{
    int64_t r;
    if (__builtin_mul_overflow(v, mul, &r))
        return BPUTS(out, "null");
    return bput_i64(out, r);
}

static int w_double(tm_buf_t *out, double v, bool f32)
{
    char tmp[TM__DBZ_DOUBLE_MAX];
    const char *sp = tm__dbz_special_double(f32 ? (double)(float)v : v);
    if (sp != NULL)
        return tm_buf_append_json_str(out, sp, strlen(sp));
    size_t n = f32 ? tm__dbz_fmt_f32(v, tmp) : tm__dbz_fmt_f64(v, tmp);
    return bput(out, tmp, n);
}

/*
 * A numeric as the double strtod() reads from its text, without the text:
 * x / 10^s with x below 2^53 and s <= 22 is a correctly rounded division of
 * two exact doubles, as strtod's result is correctly rounded.  False for
 * the rest (wide, special, or more digits), which go through the text.
 */
static bool numeric_double_fast(const tm_datum_t *d, double *out)
{
    if (d->flags & (TM_DATUM_WIDE | TM_DATUM_NAN))
        return false;
    __int128 x = d->u.dec;
    int s = d->scale;
    while (s > 0 && x % 10 == 0) {
        x /= 10;
        s--;
    }
    const __int128 lim = (__int128)1 << 53;
    if (x > lim || x < -lim || s > 22)
        return false;
    for (; s < 0; s++) {
        x *= 10;
        if (x > lim || x < -lim)
            return false;
    }
    *out = (double)(int64_t)x / exact_pow10[s];
    return true;
}

static int w_numeric(tm_dbz_encoder_t *enc, const tm_dbz_coldesc_t *desc, const tm_datum_t *d,
                     tm_buf_t *out)
{
    tm_buf_t *sc = &enc->scratch;
    int32_t scale;
    double dv;
    int rc;
    tm_buf_clear(sc);
    switch (desc->wire) {
    case TM_DBZ_W_DEC_BYTES:
    case TM_DBZ_W_DEC_VSD:
        rc = tm__dbz_numeric_bytes(d, desc->wire == TM_DBZ_W_DEC_VSD ? TM_SCALE_VARIABLE
                                                                    : desc->scale,
                                   sc, &scale);
        /* Debezium writes NaN as null in precise mode: Decimal has no NaN. */
        if (rc == TM_ENOTFOUND)
            return BPUTS(out, "null");
        TRY(rc);
        if (desc->wire == TM_DBZ_W_DEC_BYTES) {
            TRY(bputc(out, '"'));
            TRY(tm_buf_append_base64(out, sc->data, sc->len));
            return bputc(out, '"');
        }
        TRY(BPUTS(out, "{\"scale\":"));
        TRY(bput_i64(out, scale));
        TRY(BPUTS(out, ",\"value\":\""));
        TRY(tm_buf_append_base64(out, sc->data, sc->len));
        return BPUTS(out, "\"}");
    case TM_DBZ_W_DEC_STRING:
        TRY(tm__dbz_numeric_text(d, desc->scale, sc));
        return tm_buf_append_json_str(out, sc->data, sc->len);
    default:
        if (numeric_double_fast(d, &dv))
            return w_double(out, dv, false);
        TRY(tm__dbz_numeric_text(d, TM_SCALE_VARIABLE, sc));
        TRY(bputc(sc, '\0'));
        return w_double(out, strtod(sc->data, NULL), false);
    }
}

/*
 * The unchanged-TOAST placeholder in the column's own wire form, as Debezium's
 * UnchangedToastedPlaceholder builds it: the string for text-like columns,
 * its bytes for bytea, and for arrays a one-element string list or one
 * element per placeholder byte.  Types that cannot be TOASTed get null.
 */
static int w_unavailable(const tm_dbz_opts_t *opts, const tm_column_t *col,
                         const tm_dbz_coldesc_t *desc, tm_buf_t *out)
{
    static const char ph[] = TM_DBZ_UNAVAILABLE;
    if (col->type == TM_T_UUID)
        return BPUTS(out, "\"" TM_DBZ_UNAVAILABLE_UUID "\"");
    if (col->type == TM_T_BYTES)
        return tm__dbz_append_binary(out, desc->bin, ph, sizeof(ph) - 1);
    if (col->type == TM_T_ARRAY) {
        tm_dbz_coldesc_t e;
        tm__dbz_elem_desc(col->elem_type, opts, &e);
        if (strcmp(e.type, "string") == 0) {
            if (e.name != NULL && strcmp(e.name, TM_DBZ_UUID) == 0)
                return BPUTS(out, "[\"" TM_DBZ_UNAVAILABLE_UUID "\"]");
            return BPUTS(out, "[\"" TM_DBZ_UNAVAILABLE "\"]");
        }
        bool ints = strcmp(e.type, "int16") == 0 || strcmp(e.type, "int32") == 0 ||
                    strcmp(e.type, "int64") == 0;
        bool reals = strcmp(e.type, "float") == 0 || strcmp(e.type, "double") == 0;
        if (!ints && !reals)
            return BPUTS(out, "null");
        TRY(bputc(out, '['));
        for (size_t i = 0; i < sizeof(ph) - 1; i++) {
            if (i > 0)
                TRY(bputc(out, ','));
            TRY(bput_i64(out, (unsigned char)ph[i]));
            if (reals)
                TRY(BPUTS(out, ".0"));
        }
        return bputc(out, ']');
    }
    if (strcmp(desc->type, "string") == 0)
        return BPUTS(out, "\"" TM_DBZ_UNAVAILABLE "\"");
    return BPUTS(out, "null");
}

/*
 * The value Debezium writes for a NULL in a NOT NULL column: Kafka Connect
 * refuses null in a required field, so Debezium's JdbcValueConverters
 * .convertValue() substitutes the column default (dbz_has_default) or else a
 * per-type fallback (0, false, "", empty bytes, [], the epoch).  Such NULLs
 * are the columns a REPLICA IDENTITY DEFAULT before image does not carry.
 * The text is the same for the fast and the reference encoder (parsed by the
 * latter).
 */
static const char *dbz_fallback(const tm_column_t *col, const tm_dbz_coldesc_t *desc)
{
    switch (desc->wire) {
    case TM_DBZ_W_BIT1:
        return "false";
    case TM_DBZ_W_BITS:
        return "\"\"";
    case TM_DBZ_W_DEC_BYTES:
        return "\"AA==\"";
    case TM_DBZ_W_DEC_VSD:
        return "{\"scale\":0,\"value\":\"AA==\"}";
    case TM_DBZ_W_DEC_STRING:
        return "\"0\"";
    case TM_DBZ_W_DEC_DOUBLE:
        return "0.0";
    case TM_DBZ_W_HSTORE_JSON:
        return "\"{}\"";
    case TM_DBZ_W_HSTORE_MAP:
        return "{}";
    case TM_DBZ_W_GEOMETRY:
        return "{\"wkb\":\"\",\"srid\":null}";
    case TM_DBZ_W_POINT:
        return "{\"x\":0.0,\"y\":0.0,\"wkb\":null,\"srid\":null}";
    default:
        break;
    }
    if (col->type == TM_T_TIMESTAMPTZ)
        return "\"1970-01-01T00:00:00Z\"";
    if (col->type == TM_T_TIMETZ)
        return "\"00:00:00Z\"";
    if (strcmp(desc->type, "boolean") == 0)
        return "false";
    if (strcmp(desc->type, "float") == 0 || strcmp(desc->type, "double") == 0)
        return "0.0";
    if (strcmp(desc->type, "string") == 0 || strcmp(desc->type, "bytes") == 0)
        return "\"\"";
    if (strcmp(desc->type, "array") == 0)
        return "[]";
    if (strncmp(desc->type, "int", 3) == 0)
        return "0";
    return "null";
}

/*
 * Values whose form a Debezium option chose (debezium_opts.c): unknown types,
 * string intervals, hstore.  Malformed hstore text becomes null, as Debezium
 * logs and skips a value its converter cannot read.
 */
static int w_option_datum(tm_dbz_encoder_t *enc, const tm_dbz_coldesc_t *desc,
                          const tm_datum_t *d, tm_buf_t *out)
{
    int rc;
    switch (desc->wire) {
    case TM_DBZ_W_UNKNOWN:
        return tm__dbz_append_binary(out, desc->bin, d->u.var.ptr, d->u.var.len);
    case TM_DBZ_W_IV_STRING:
        return tm__dbz_interval_iso(d->u.iv.us, d->u.iv.months, out);
    case TM_DBZ_W_HSTORE_MAP:
        rc = tm__dbz_hstore_json(d->u.var.ptr, d->u.var.len, out);
        return rc == TM_EINVAL ? BPUTS(out, "null") : rc;
    default:
        tm_buf_clear(&enc->scratch);
        rc = tm__dbz_hstore_json(d->u.var.ptr, d->u.var.len, &enc->scratch);
        if (rc == TM_EINVAL)
            return BPUTS(out, "null");
        TRY(rc);
        return tm_buf_append_json_str(out, enc->scratch.data, enc->scratch.len);
    }
}

/*
 * Whether the column's default goes into its schema (and stands in for a
 * NULL in a NOT NULL column): when the source knows one, and the value is
 * not a struct (VariableScaleDecimal), which Kafka Connect cannot take as a
 * default (Debezium drops it, KAFKA-12694).
 */
static bool dbz_has_default(const tm_column_t *col, const tm_dbz_coldesc_t *desc)
{
    return col->default_value != NULL && desc->wire != TM_DBZ_W_DEC_VSD;
}

/*
 * True when a NULL in column i of this row means "not sent": the non-key
 * columns of a before image under REPLICA IDENTITY DEFAULT (or an identity
 * index), which pgoutput sends as nulls.  Debezium writes the column's
 * default there when it has one, nullable or not (tests/compat).
 */
static inline bool dbz_absent(const tm_schema_t *s, bool before, int i)
{
    return before && !s->full_identity && s->cols[i].key_index < 0;
}

static int w_datum(tm_dbz_encoder_t *enc, const tm_column_t *col, const tm_dbz_coldesc_t *desc,
                   const tm_row_t *row, int i, bool absent, tm_buf_t *out)
{
    if (tm_row_is_null(row, i)) {
        if ((absent || !col->nullable) && dbz_has_default(col, desc))
            return w_value(enc, col, desc, col->default_value, out);
        if (col->nullable)
            return BPUTS(out, "null");
        return tm_buf_puts(out, dbz_fallback(col, desc));
    }
    const tm_datum_t *d = &row->vals[i];
    if (d->flags & TM_DATUM_UNAVAILABLE)
        return w_unavailable(&enc->opts, col, desc, out);
    return w_value(enc, col, desc, d, out);
}

/*
 * A MySQL spatial value: the SRID (4 bytes, little-endian) and the WKB.
 * Debezium writes an SRID of 0 (none given) as null: *has_srid false.
 */
static void geom_split(const tm_datum_t *d, uint32_t *srid, bool *has_srid, const uint8_t **wkb,
                       size_t *n)
{
    const uint8_t *p = (const uint8_t *)d->u.var.ptr;
    size_t len = d->u.var.len;
    *srid = 0;
    *wkb = p;
    *n = len;
    if (p != NULL && len >= 4) {
        *srid = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        *wkb = p + 4;
        *n = len - 4;
    }
    *has_srid = *srid != 0;
}

/* x and y of a 2D WKB point in either byte order; 0, 0 if the WKB is not one. */
static void wkb_point_xy(const uint8_t *w, size_t n, double *x, double *y)
{
    *x = *y = 0;
    if (w == NULL || n != 21 || (w[0] != 0 && w[0] != 1))
        return;
    bool le = w[0] == 1;
    uint64_t v[3] = {0, 0, 0};
    for (int f = 0; f < 3; f++) {
        int off = f == 0 ? 1 : 5 + (f - 1) * 8, len = f == 0 ? 4 : 8;
        for (int k = 0; k < len; k++)
            v[f] |= (uint64_t)w[off + (le ? k : len - 1 - k)] << (8 * k);
    }
    if (v[0] != 1)
        return;
    memcpy(x, &v[1], sizeof(*x));
    memcpy(y, &v[2], sizeof(*y));
}

/* Debezium's Geometry {wkb, srid} or Point {x, y, wkb, srid}. */
static int w_geometry(const tm_dbz_coldesc_t *desc, const tm_datum_t *d, tm_buf_t *out)
{
    uint32_t srid;
    bool has_srid;
    const uint8_t *wkb;
    size_t n;
    geom_split(d, &srid, &has_srid, &wkb, &n);
    TRY(bputc(out, '{'));
    if (desc->wire == TM_DBZ_W_POINT) {
        double x, y;
        wkb_point_xy(wkb, n, &x, &y);
        TRY(BPUTS(out, "\"x\":"));
        TRY(w_double(out, x, false));
        TRY(BPUTS(out, ",\"y\":"));
        TRY(w_double(out, y, false));
        TRY(bputc(out, ','));
    }
    TRY(BPUTS(out, "\"wkb\":\""));
    TRY(tm_buf_append_base64(out, wkb, n));
    TRY(BPUTS(out, "\",\"srid\":"));
    TRY(has_srid ? bput_u64(out, srid) : BPUTS(out, "null"));
    return bputc(out, '}');
}

/* A non-NULL value of the column, as Debezium's converters write it. */
static int w_value(tm_dbz_encoder_t *enc, const tm_column_t *col, const tm_dbz_coldesc_t *desc,
                   const tm_datum_t *d, tm_buf_t *out)
{
    if (desc->wire == TM_DBZ_W_GEOMETRY || desc->wire == TM_DBZ_W_POINT)
        return w_geometry(desc, d, out);
    char tmp[TM__DBZ_ZONED_MAX + 2];
    size_t n;
    if (desc->wire == TM_DBZ_W_BIT1)
        return d->u.var.len > 0 && d->u.var.ptr[0] == '1' ? BPUTS(out, "true")
                                                          : BPUTS(out, "false");
    if (desc->wire == TM_DBZ_W_BITS) {
        tm_buf_clear(&enc->scratch);
        TRY(tm__dbz_bits_to_bytes(d->u.var.ptr, d->u.var.len, &enc->scratch));
        TRY(bputc(out, '"'));
        TRY(tm_buf_append_base64(out, enc->scratch.data, enc->scratch.len));
        return bputc(out, '"');
    }
    if (desc->wire >= TM_DBZ_W_UNKNOWN)
        return w_option_datum(enc, desc, d, out);
    switch (col->type) {
    case TM_T_BOOL:
        return d->u.b ? BPUTS(out, "true") : BPUTS(out, "false");
    case TM_T_INT16:
    case TM_T_INT32:
    case TM_T_INT64:
    case TM_T_INTERVAL:
        return bput_i64(out, d->u.i64);
    case TM_T_DATE:
        return bput_i64(out, tm__dbz_date_out(d->u.i64, enc->snap));
    case TM_T_FLOAT32:
        return w_double(out, d->u.f64, true);
    case TM_T_FLOAT64:
        return w_double(out, d->u.f64, false);
    case TM_T_NUMERIC:
        return w_numeric(enc, desc, d, out);
    case TM_T_BYTES:
        if (desc->bin != TM_BINARY_BYTES)
            return tm__dbz_append_binary(out, desc->bin, d->u.var.ptr, d->u.var.len);
        TRY(bputc(out, '"'));
        TRY(tm_buf_append_base64(out, d->u.var.ptr, d->u.var.len));
        return bputc(out, '"');
    case TM_T_TIME:
    case TM_T_TIMESTAMP: {
        int64_t us = col->type == TM_T_TIMESTAMP ? tm__dbz_ts_out(d->u.i64) : d->u.i64;
        return bput_i64(out, desc->wire == TM_DBZ_W_MS ? tm__dbz_floordiv(us, 1000) : us);
    }
    case TM_T_TIMESTAMPTZ:
        if (d->u.i64 == TM__DBZ_TS_INF_IN)
            return BPUTS(out, "\"infinity\"");
        if (d->u.i64 == TM__DBZ_TS_NINF_IN)
            return BPUTS(out, "\"-infinity\"");
        /* fall through */
    case TM_T_TIMETZ:
        /* ISO text never needs escaping: quote it and copy. */
        tmp[0] = '"';
        n = col->type == TM_T_TIMETZ
                ? tm__dbz_fmt_zoned_time(d->u.i64, tmp + 1)
                : tm__dbz_fmt_zoned_ts_width(d->u.i64, zoned_width(col), tmp + 1);
        tmp[n + 1] = '"';
        return bput(out, tmp, n + 2);
    case TM_T_ARRAY:
        /* The source already rendered the array as JSON in Debezium's element forms. */
        if (d->u.var.len == 0)
            return BPUTS(out, "[]");
        return bput(out, d->u.var.ptr, d->u.var.len);
    default:
        return tm_buf_append_json_str(out, d->u.var.ptr, d->u.var.len);
    }
}

static int w_row(tm_dbz_encoder_t *enc, const enc_table_t *t, const tm_row_t *row, bool before,
                 tm_buf_t *out)
{
    if (row == NULL)
        return BPUTS(out, "null");
    const tm_schema_t *s = t->schema;
    TRY(bputc(out, '{'));
    for (int k = 0; k < t->nval; k++) {
        int i = t->val_cols[k];
        TRY(bput(out, t->names.data + t->name_off[i],
                          t->name_off[i + 1] - t->name_off[i]));
        TRY(w_datum(enc, &s->cols[i], &t->desc[i], row, i, dbz_absent(s, before, i), out));
    }
    return bputc(out, '}');
}

/* `"[\"<commit>\",\"<lsn>\"]"`: a JSON string that holds a JSON array (Debezium's sequence). */
static int w_sequence(tm_buf_t *out, const tm_source_info_t *src)
{
    TRY(BPUTS(out, "\"["));
    if (tm_source_pg(src)->commit_lsn != 0) {
        TRY(BPUTS(out, "\\\""));
        TRY(bput_u64(out, tm_source_pg(src)->commit_lsn));
        TRY(BPUTS(out, "\\\""));
    } else {
        TRY(BPUTS(out, "null"));
    }
    TRY(bputc(out, ','));
    if (src->pos != 0) {
        TRY(BPUTS(out, "\\\""));
        TRY(bput_u64(out, src->pos));
        TRY(BPUTS(out, "\\\""));
    } else {
        TRY(BPUTS(out, "null"));
    }
    return BPUTS(out, "]\"");
}

/*
 * The binlog fields after `table`, to the block's end: from the record's
 * MySQL part, or neutral values for a record without one.  `query` stays
 * null: the source does not read the statement (Debezium's
 * include.query is off by default).
 */
static int w_binlog_position(const tm_source_info_t *src, tm_buf_t *out)
{
    if (src->kind != TM_SOURCE_MYSQL)
        return BPUTS(out, ",\"server_id\":0,\"gtid\":null,\"file\":\"\",\"pos\":0,\"row\":0,"
                          "\"thread\":null,\"query\":null}");
    const tm_my_source_t *my = &src->u.my;
    char gtid[128];
    my_gtid_text(my, gtid, sizeof(gtid));
    TRY(BPUTS(out, ",\"server_id\":"));
    TRY(bput_u64(out, my->server_id));
    TRY(BPUTS(out, ",\"gtid\":"));
    TRY(gtid[0] != '\0' ? w_str(out, gtid) : BPUTS(out, "null"));
    TRY(BPUTS(out, ",\"file\":"));
    TRY(w_str(out, my->file != NULL ? my->file : ""));
    TRY(BPUTS(out, ",\"pos\":"));
    TRY(bput_u64(out, my->event_pos));
    TRY(BPUTS(out, ",\"row\":"));
    TRY(bput_u64(out, my->row));
    TRY(BPUTS(out, ",\"thread\":"));
    if (my->thread != 0)
        TRY(bput_u64(out, my->thread));
    else
        TRY(BPUTS(out, "null"));
    return BPUTS(out, ",\"query\":null}");
}

/* The timestamps, snapshot and position parts of a source block, between the cached pieces. */
static int w_source(int kind, const tm_buf_t *head, const tm_buf_t *db, const tm_buf_t *tail,
                    const tm_record_t *rec, tm_buf_t *out)
{
    const tm_source_info_t *src = &rec->src;
    TRY(bput(out, head->data, head->len));
    TRY(bput_i64(out, tm__dbz_floordiv(src->ts_us, 1000)));
    TRY(BPUTS(out, ",\"snapshot\":\""));
    TRY(tm_buf_puts(out, snapshot_name(src->snapshot)));
    TRY(bputc(out, '"'));
    TRY(bput(out, db->data, db->len));
    if (kind != TM__DBZ_PG)
        TRY(BPUTS(out, "null"));
    else
        TRY(w_sequence(out, src));
    TRY(BPUTS(out, ",\"ts_us\":"));
    TRY(bput_i64(out, src->ts_us));
    TRY(BPUTS(out, ",\"ts_ns\":"));
    TRY(w_scaled_i64(out, src->ts_us, 1000));
    TRY(bput(out, tail->data, tail->len));
    if (kind != TM__DBZ_PG)
        return w_binlog_position(src, out);
    if (tm_source_pg(src)->xid != 0)
        TRY(bput_u64(out, tm_source_pg(src)->xid));
    else
        TRY(BPUTS(out, "null"));
    TRY(BPUTS(out, ",\"lsn\":"));
    if (src->pos != 0)
        TRY(bput_u64(out, src->pos));
    else
        TRY(BPUTS(out, "null"));
    /* origin and origin_lsn: a change replicated into this database (PostgreSQL 16's origins). */
    return BPUTS(out, ",\"xmin\":null,\"origin\":null,\"origin_lsn\":null}");
}

static int w_envelope_ts(tm_buf_t *out, int64_t us)
{
    TRY(BPUTS(out, ",\"ts_ms\":"));
    TRY(bput_i64(out, tm__dbz_floordiv(us, 1000)));
    TRY(BPUTS(out, ",\"ts_us\":"));
    TRY(bput_i64(out, us));
    TRY(BPUTS(out, ",\"ts_ns\":"));
    return w_scaled_i64(out, us, 1000);
}

#define MSG_BLOCK_SCHEMA                                                                           \
    "{\"type\":\"struct\",\"fields\":["                                                            \
    "{\"type\":\"string\",\"optional\":true,\"field\":\"prefix\"},"                                \
    "{\"type\":\"bytes\",\"optional\":true,\"field\":\"content\"}],\"optional\":false,"            \
    "\"name\":\"io.debezium.connector.postgresql.Message\",\"version\":1,\"field\":\"message\"}"

/*
 * The source pieces of a message.  A message belongs to no table: its source
 * block carries empty schema and table names, as Debezium's does.
 */
static int message_source_pieces(tm_dbz_encoder_t *enc, int kind, const tm_schema_t *s,
                                 tm_buf_t *head, tm_buf_t *db, tm_buf_t *tail)
{
    TRY(PUTS(head, ",\"source\":{\"version\":"));
    TRY(w_str(head, enc->version));
    TRY(PUTS(head, ",\"connector\":"));
    TRY(w_str(head, kind_connector(enc, kind)));
    TRY(PUTS(head, ",\"name\":"));
    TRY(w_str(head, s ? s->source_name : NULL));
    TRY(PUTS(head, ",\"ts_ms\":"));
    TRY(PUTS(db, ",\"db\":"));
    TRY(w_str(db, s ? s->db : NULL));
    TRY(PUTS(db, ",\"sequence\":"));
    if (kind != TM__DBZ_PG)
        return w_mysql_source_tail(tail, NULL);
    return PUTS(tail, ",\"schema\":\"\",\"table\":\"\",\"txId\":");
}

/*
 * A logical decoding message (op m) in Debezium's PostgreSQL shape.  Messages
 * are rare, so everything is rendered on the spot.
 */
static int enc_message(tm_dbz_encoder_t *enc, const tm_record_t *rec, tm_buf_t *out)
{
    if (enc->opts.schemas) {
        TRY(BPUTS(out, "{\"schema\":{\"type\":\"struct\",\"fields\":["
                       "{\"type\":\"string\",\"optional\":false,\"field\":\"op\"},"
                       "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ms\"},"));
        TRY(bput(out, enc->source_schema[rec_kind(enc, rec)].data,
                 enc->source_schema[rec_kind(enc, rec)].len));
        TRY(BPUTS(out, "," TXN_SCHEMA "," MSG_BLOCK_SCHEMA "],\"optional\":false,"
                       "\"name\":\"io.debezium.connector.postgresql.MessageValue\","
                       "\"version\":1},\"payload\":"));
    }
    TRY(BPUTS(out, "{\"op\":\"m\",\"ts_ms\":"));
    TRY(bput_i64(out, tm__dbz_floordiv(rec->proc_us, 1000)));
    tm_buf_t head, db, tail;
    tm_buf_init(&head);
    tm_buf_init(&db);
    tm_buf_init(&tail);
    int kind = rec_kind(enc, rec);
    int rc = message_source_pieces(enc, kind, rec->schema, &head, &db, &tail);
    if (rc == 0)
        rc = w_source(kind, &head, &db, &tail, rec, out);
    tm_buf_release(&head);
    tm_buf_release(&db);
    tm_buf_release(&tail);
    TRY(rc);
    TRY(w_txblock(enc, out));
    TRY(BPUTS(out, ",\"message\":{\"prefix\":"));
    TRY(rec->msg_prefix != NULL ? w_str(out, rec->msg_prefix) : BPUTS(out, "null"));
    TRY(BPUTS(out, ",\"content\":"));
    if (rec->msg_content != NULL || rec->msg_len == 0) {
        TRY(bputc(out, '"'));
        TRY(tm_buf_append_base64(out, rec->msg_content, rec->msg_len));
        TRY(bputc(out, '"'));
    } else {
        TRY(BPUTS(out, "null"));
    }
    TRY(BPUTS(out, "}}"));
    return enc->opts.schemas ? bputc(out, '}') : 0;
}

static int enc_value(tm_dbz_encoder_t *enc, const tm_record_t *rec, tm_buf_t *out)
{
    if (rec->op == TM_OP_MESSAGE)
        return enc_message(enc, rec, out);
    if (rec->schema == NULL)
        return TM_EINVAL;
    int err = 0;
    enc_table_t *t = enc_table_get(enc, rec->schema, rec_kind(enc, rec), &err);
    if (t == NULL)
        return err;
    bool rows = rec->op != TM_OP_TRUNCATE;
    enc->snap = rec->src.snapshot != TM_SNAPSHOT_FALSE;
    TRY(bput(out, t->value_head.data, t->value_head.len));
    TRY(w_row(enc, t, rows ? rec->before : NULL, true, out));
    TRY(BPUTS(out, ",\"after\":"));
    TRY(w_row(enc, t, rows ? rec->after : NULL, false, out));
    TRY(w_source(t->kind, &t->src_head, &t->src_db, &t->src_tail, rec, out));
    TRY(w_txblock(enc, out));
    char opbuf[] = ",\"op\":\"?\"";
    opbuf[sizeof(opbuf) - 3] = (char)rec->op;
    TRY(bput(out, opbuf, sizeof(opbuf) - 1));
    TRY(w_envelope_ts(out, rec->proc_us));
    TRY(bputc(out, '}'));
    if (enc->opts.schemas)
        TRY(bputc(out, '}'));
    return 0;
}

int tm_dbz_encode_value(tm_dbz_encoder_t *enc, const tm_record_t *rec, tm_buf_t *out)
{
    size_t start = out->len;
    int rc = enc_value(enc, rec, out);
    if (rc != 0)
        out->len = start;
    /* Keep the text NUL-terminated for callers that print it (buf.c leaves room). */
    if (out->data != NULL)
        out->data[out->len] = '\0';
    return rc;
}

#define MSG_KEY_SCHEMA                                                                             \
    "{\"type\":\"struct\",\"fields\":["                                                            \
    "{\"type\":\"string\",\"optional\":true,\"field\":\"prefix\"}],"                               \
    "\"optional\":false,\"name\":\"io.debezium.connector.postgresql.MessageKey\",\"version\":1}"

static int enc_key(tm_dbz_encoder_t *enc, const tm_record_t *rec, tm_buf_t *out)
{
    if (rec->op == TM_OP_MESSAGE) {
        if (enc->opts.schemas)
            TRY(BPUTS(out, "{\"schema\":" MSG_KEY_SCHEMA ",\"payload\":"));
        TRY(BPUTS(out, "{\"prefix\":"));
        TRY(rec->msg_prefix ? w_str(out, rec->msg_prefix) : BPUTS(out, "null"));
        TRY(bputc(out, '}'));
        return enc->opts.schemas ? bputc(out, '}') : 0;
    }
    /* Debezium's truncate events have no key, nor has a table without a primary key. */
    if (rec->op == TM_OP_TRUNCATE)
        return TM_ENOTFOUND;
    if (rec->schema == NULL)
        return TM_EINVAL;
    int err = 0;
    enc_table_t *t = enc_table_get(enc, rec->schema, rec_kind(enc, rec), &err);
    if (t == NULL)
        return err;
    if (!t->has_key)
        return TM_ENOTFOUND;
    const tm_row_t *row = rec->op == TM_OP_DELETE || rec->after == NULL ? rec->before : rec->after;
    const tm_schema_t *s = t->schema;
    enc->snap = rec->src.snapshot != TM_SNAPSHOT_FALSE;
    TRY(bput(out, t->key_head.data, t->key_head.len));
    TRY(bputc(out, '{'));
    for (int k = 0; k < t->nkey; k++) {
        int i = t->key_cols[k];
        TRY(bput(out, t->key_names.data + t->key_off[k],
                          t->key_off[k + 1] - t->key_off[k]));
        if (row == NULL)
            TRY(BPUTS(out, "null"));
        else
            TRY(w_datum(enc, &s->cols[i], &t->desc[i], row, i, false, out));
    }
    TRY(bputc(out, '}'));
    return enc->opts.schemas ? bputc(out, '}') : 0;
}

int tm_dbz_encode_key(tm_dbz_encoder_t *enc, const tm_record_t *rec, tm_buf_t *out)
{
    size_t start = out->len;
    int rc = enc_key(enc, rec, out);
    if (rc != 0)
        out->len = start;
    /* Keep the text NUL-terminated for callers that print it (buf.c leaves room). */
    if (out->data != NULL)
        out->data[out->len] = '\0';
    return rc;
}

/* ======================================================================== */
/* What a sink writes: skipped operations and key changes                   */
/* ======================================================================== */

int tm_dbz_skipped_parse(const char *spec, uint32_t *mask, char *errstr, size_t errstr_size)
{
    static const char ops[] = "cudt";
    uint32_t m = 0;
    const char *p = spec ? spec : "";
    *mask = 0;
    while (*p != '\0') {
        while (*p == ' ' || *p == ',')
            p++;
        const char *w = p;
        while (*p != '\0' && *p != ',' && *p != ' ')
            p++;
        size_t n = (size_t)(p - w);
        if (n == 0)
            continue;
        if (n == 4 && strncasecmp(w, "none", 4) == 0)
            continue;
        const char *hit = n == 1 ? strchr(ops, w[0] | 0x20) : NULL;
        if (hit == NULL)
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "skipped_operations = '%s': '%.*s' is not an operation; list any of "
                             "c, u, d and t separated by commas, or 'none' to write every "
                             "operation",
                             spec, (int)(n > 20 ? 20 : n), w);
        m |= 1u << (hit - ops);
    }
    *mask = m;
    return 0;
}

/*
 * True when an update's before and after images differ in one of `cols`
 * (NULL against a value counts; an unchanged TOASTed value does not).
 */
static bool dbz_cols_differ(const tm_record_t *rec, const int *cols, int n)
{
    const tm_schema_t *sc = rec->schema;
    for (int k = 0; k < n; k++) {
        int c = cols[k];
        bool na = tm_row_is_null(rec->before, c), nb = tm_row_is_null(rec->after, c);
        const tm_datum_t *a = &rec->before->vals[c], *b = &rec->after->vals[c];
        if (na != nb)
            return true;
        if (na || (a->flags & TM_DATUM_UNAVAILABLE) || (b->flags & TM_DATUM_UNAVAILABLE))
            continue;
        if (!tm_datum_equal(sc->cols[c].type, a, b))
            return true;
    }
    return false;
}

bool tm_dbz_key_changed(const tm_record_t *rec)
{
    const tm_schema_t *sc = rec->schema;
    if (rec->op != TM_OP_UPDATE || rec->before == NULL || rec->after == NULL || sc == NULL ||
        sc->nkeys == 0)
        return false;
    return dbz_cols_differ(rec, sc->key_cols, sc->nkeys);
}

bool tm_dbz_encoder_key_changed(tm_dbz_encoder_t *enc, const tm_record_t *rec)
{
    const tm_schema_t *sc = rec->schema;
    if (enc->filter == NULL || sc == NULL || rec->op != TM_OP_UPDATE)
        return tm_dbz_key_changed(rec);
    int err = 0;
    enc_table_t *t = enc_table_get(enc, rec->schema, rec_kind(enc, rec), &err);
    if (t == NULL || !t->has_key || rec->before == NULL || rec->after == NULL)
        return t == NULL ? tm_dbz_key_changed(rec) : false;
    /* Debezium compares the old key with the new one, built from its key columns. */
    return dbz_cols_differ(rec, t->key_cols, t->nkey);
}

void tm_dbz_split_key_change(const tm_record_t *rec, tm_record_t *del, tm_record_t *cre)
{
    *del = *rec;
    *cre = *rec;
    del->op = TM_OP_DELETE;
    del->after = NULL;
    cre->op = TM_OP_CREATE;
    cre->before = NULL;
}

/* ======================================================================== */
/* Reference encoder (Jansson)                                              */
/* ======================================================================== */

/* Text from a source may be ill-formed UTF-8 (SQL_ASCII): as the fast writer, U+FFFD for it. */
static json_t *j_strn(const char *s, size_t n)
{
    if (s == NULL)
        return json_string("");
    json_t *j = json_stringn(s, n);
    if (j != NULL)
        return j;
    tm_buf_t tmp;
    tm_buf_init(&tmp);
    if (tm_buf_append_utf8(&tmp, s, n) == 0)
        j = json_stringn(tmp.data, tmp.len);
    tm_buf_release(&tmp);
    return j;
}

static json_t *j_str(const char *s)
{
    return j_strn(s, s ? strlen(s) : 0);
}

static json_t *j_i64(int64_t v)
{
    return json_integer((json_int_t)v);
}

static json_t *j_scaled(int64_t v, int64_t mul)
{
    int64_t r;
    if (__builtin_mul_overflow(v, mul, &r))
        return json_null();
    return j_i64(r);
}

/* A real as the fast writer prints it: the double nearest to its shortest text. */
static json_t *j_double(double v, bool f32)
{
    const char *sp = tm__dbz_special_double(f32 ? (double)(float)v : v);
    if (sp != NULL)
        return json_string(sp);
    if (!f32)
        return json_real(v);
    char tmp[TM__DBZ_DOUBLE_MAX];
    tm__dbz_fmt_f32(v, tmp);
    return json_real(strtod(tmp, NULL));
}

static json_t *j_value(const tm_column_t *col, const tm_dbz_coldesc_t *desc, const tm_datum_t *d,
                       bool snap);

/* `dflt` (the field's default, or NULL) is a reference the function takes. */
static json_t *j_schema_field(const tm_dbz_opts_t *opts, const tm_dbz_coldesc_t *desc,
                              bool optional, json_t *dflt, const char *field)
{
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string(desc->type));
    if (desc->wire == TM_DBZ_W_DEC_VSD) {
        json_t *fields = json_array();
        json_array_append_new(fields, json_pack("{s:s,s:b,s:s}", "type", "int32", "optional", 0,
                                                "field", "scale"));
        json_array_append_new(fields, json_pack("{s:s,s:b,s:s}", "type", "bytes", "optional", 0,
                                                "field", "value"));
        json_object_set_new(o, "fields", fields);
    }
    if (desc->wire == TM_DBZ_W_HSTORE_MAP) {
        json_object_set_new(o, "keys", json_pack("{s:s,s:b}", "type", "string", "optional", 0));
        json_object_set_new(o, "values", json_pack("{s:s,s:b}", "type", "string", "optional", 1));
    }
    if (desc->wire == TM_DBZ_W_GEOMETRY)
        json_object_set_new(o, "fields",
                            json_pack("[{s:s,s:b,s:s},{s:s,s:b,s:s}]", "type", "bytes", "optional",
                                      0, "field", "wkb", "type", "int32", "optional", 1, "field",
                                      "srid"));
    if (desc->wire == TM_DBZ_W_POINT)
        json_object_set_new(
            o, "fields",
            json_pack("[{s:s,s:b,s:s},{s:s,s:b,s:s},{s:s,s:b,s:s},{s:s,s:b,s:s}]", "type",
                      "double", "optional", 0, "field", "x", "type", "double", "optional", 0,
                      "field", "y", "type", "bytes", "optional", 1, "field", "wkb", "type",
                      "int32", "optional", 1, "field", "srid"));
    if (strcmp(desc->type, "array") == 0) {
        tm_dbz_coldesc_t elem;
        tm__dbz_elem_desc(desc->elem_type, opts, &elem);
        json_object_set_new(o, "items", j_schema_field(opts, &elem, true, NULL, NULL));
    }
    json_object_set_new(o, "optional", json_boolean(optional));
    if (desc->name)
        json_object_set_new(o, "name", json_string(desc->name));
    if (desc->version > 0)
        json_object_set_new(o, "version", json_integer(desc->version));
    if (desc->doc)
        json_object_set_new(o, "doc", json_string(desc->doc));
    if (desc->wire == TM_DBZ_W_DEC_BYTES) {
        char b[16];
        json_t *p = json_object();
        snprintf(b, sizeof(b), "%d", (int)desc->scale);
        json_object_set_new(p, "scale", json_string(b));
        if (desc->precision > 0) {
            snprintf(b, sizeof(b), "%d", (int)desc->precision);
            json_object_set_new(p, "connect.decimal.precision", json_string(b));
        }
        json_object_set_new(o, "parameters", p);
    } else if (desc->wire == TM_DBZ_W_BITS) {
        char b[16];
        snprintf(b, sizeof(b), "%d", (int)desc->bits);
        json_object_set_new(o, "parameters", json_pack("{s:s}", "length", b));
    } else if (desc->allowed) {
        json_object_set_new(o, "parameters", json_pack("{s:s}", "allowed", desc->allowed));
    }
    if (dflt != NULL)
        json_object_set_new(o, "default", dflt);
    if (field)
        json_object_set_new(o, "field", j_str(field));
    return o;
}

/* The columns of a key or a value, for the reference encoder; their count (-1: no memory). */
static int j_cols(const tm_dbz_encoder_t *enc, const tm_schema_t *s, bool key, int **cols)
{
    *cols = calloc((size_t)s->ncols + 1, sizeof(**cols));
    if (*cols == NULL)
        return -1;
    bool has;
    return key ? dbz_key_cols(enc, s, *cols, &has) : dbz_value_cols(enc, s, *cols);
}

static json_t *j_row_schema(const tm_dbz_encoder_t *enc, const tm_schema_t *s, bool key,
                            const char *suffix, const char *field)
{
    json_t *fields = json_array();
    int *cols;
    int n = j_cols(enc, s, key, &cols);
    for (int k = 0; k < n; k++) {
        int i = cols[k];
        tm_dbz_coldesc_t desc;
        tm__dbz_col_desc(&s->cols[i], &enc->opts, &desc);
        const tm_column_t *col = &s->cols[i];
        bool opt = col->nullable || (key && !tm__dbz_filter_column(enc->filter, s, i));
        json_t *dflt =
            dbz_has_default(col, &desc) ? j_value(col, &desc, col->default_value, false) : NULL;
        json_array_append_new(fields, j_schema_field(&enc->opts, &desc, opt, dflt, col->name));
    }
    free(cols);
    tm_buf_t name;
    tm_buf_init(&name);
    tm__dbz_append_stem(&name, s);
    tm_buf_puts(&name, suffix);
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string("struct"));
    json_object_set_new(o, "fields", fields);
    json_object_set_new(o, "optional", json_boolean(!key));
    json_object_set_new(o, "name", j_strn(name.data, name.len));
    if (field)
        json_object_set_new(o, "field", j_str(field));
    tm_buf_release(&name);
    return o;
}

static json_t *j_source_schema(int kind)
{
    json_t *fields = json_array();
    const src_field_t *f = source_fields(kind);
    for (int i = 0; f[i].field; i++) {
        if (f[i].type == NULL)
            json_array_append_new(
                fields, json_pack("{s:s,s:b,s:s,s:i,s:{s:s},s:s,s:s}", "type", "string", "optional",
                                  1, "name", "io.debezium.data.Enum", "version", 1, "parameters",
                                  "allowed", SNAPSHOT_ALLOWED, "default", "false", "field",
                                  f[i].field));
        else
            json_array_append_new(fields, json_pack("{s:s,s:b,s:s}", "type", f[i].type, "optional",
                                                    f[i].optional, "field", f[i].field));
    }
    json_t *o = json_pack("{s:s,s:o,s:b,s:s}", "type", "struct", "fields", fields, "optional", 0,
                          "name", source_schema_name(kind));
    if (o != NULL && kind == TM__DBZ_PG)
        json_object_set_new(o, "version", json_integer(1));
    if (o != NULL)
        json_object_set_new(o, "field", json_string("source"));
    return o;
}

static json_t *j_txn_schema(void)
{
    return json_pack("{s:s,s:[{s:s,s:b,s:s},{s:s,s:b,s:s},{s:s,s:b,s:s}],s:b,s:s,s:i,s:s}",
                     "type", "struct", "fields", "type", "string", "optional", 0, "field", "id",
                     "type", "int64", "optional", 0, "field", "total_order", "type", "int64",
                     "optional", 0, "field", "data_collection_order", "optional", 1, "name",
                     "event.block", "version", 1, "field", "transaction");
}

static json_t *j_numeric(const tm_dbz_coldesc_t *desc, const tm_datum_t *d)
{
    tm_buf_t b, b64;
    tm_buf_init(&b);
    tm_buf_init(&b64);
    json_t *v = NULL;
    int32_t scale = 0;
    int rc;
    switch (desc->wire) {
    case TM_DBZ_W_DEC_BYTES:
    case TM_DBZ_W_DEC_VSD:
        rc = tm__dbz_numeric_bytes(
            d, desc->wire == TM_DBZ_W_DEC_VSD ? TM_SCALE_VARIABLE : desc->scale, &b, &scale);
        if (rc == TM_ENOTFOUND) {
            v = json_null();
            break;
        }
        if (rc != 0 || tm_buf_append_base64(&b64, b.data, b.len) != 0)
            break;
        v = j_strn(b64.data, b64.len);
        if (desc->wire == TM_DBZ_W_DEC_VSD)
            v = json_pack("{s:i,s:o}", "scale", (int)scale, "value", v);
        break;
    case TM_DBZ_W_DEC_STRING:
        if (tm__dbz_numeric_text(d, desc->scale, &b) == 0)
            v = j_strn(b.data, b.len);
        break;
    default:
        if (tm__dbz_numeric_text(d, TM_SCALE_VARIABLE, &b) == 0 && tm_buf_putc(&b, '\0') == 0)
            v = j_double(strtod(b.data, NULL), false);
        break;
    }
    tm_buf_release(&b);
    tm_buf_release(&b64);
    return v;
}

static json_t *j_base64(const void *p, size_t n)
{
    tm_buf_t b;
    tm_buf_init(&b);
    json_t *v = tm_buf_append_base64(&b, p, n) == 0 ? j_strn(b.data, b.len) : NULL;
    tm_buf_release(&b);
    return v;
}

static json_t *j_unavailable(const tm_dbz_opts_t *opts, const tm_column_t *col,
                             const tm_dbz_coldesc_t *desc)
{
    static const char ph[] = TM_DBZ_UNAVAILABLE;
    if (col->type == TM_T_UUID)
        return json_string(TM_DBZ_UNAVAILABLE_UUID);
    if (col->type == TM_T_BYTES) {
        tm_buf_t b;
        tm_buf_init(&b);
        json_t *j = tm__dbz_append_binary(&b, desc->bin, ph, sizeof(ph) - 1) == 0
                        ? json_loadb(b.data, b.len, JSON_DECODE_ANY, NULL)
                        : NULL;
        tm_buf_release(&b);
        return j;
    }
    if (col->type == TM_T_ARRAY) {
        tm_dbz_coldesc_t e;
        tm__dbz_elem_desc(col->elem_type, opts, &e);
        json_t *a = json_array();
        if (strcmp(e.type, "string") == 0) {
            bool uuid = e.name && strcmp(e.name, TM_DBZ_UUID) == 0;
            json_array_append_new(a, json_string(uuid ? TM_DBZ_UNAVAILABLE_UUID : ph));
            return a;
        }
        bool reals = strcmp(e.type, "float") == 0 || strcmp(e.type, "double") == 0;
        if (!reals && strncmp(e.type, "int", 3) != 0) {
            json_decref(a);
            return json_null();
        }
        for (size_t i = 0; i < sizeof(ph) - 1; i++)
            json_array_append_new(a, reals ? json_real((unsigned char)ph[i])
                                           : json_integer((unsigned char)ph[i]));
        return a;
    }
    if (strcmp(desc->type, "string") == 0)
        return json_string(ph);
    return json_null();
}

static json_t *j_datum(const tm_dbz_encoder_t *enc, const tm_column_t *col,
                       const tm_dbz_coldesc_t *desc, const tm_row_t *row, int i, bool absent,
                       bool snap)
{
    if (tm_row_is_null(row, i)) {
        if ((absent || !col->nullable) && dbz_has_default(col, desc))
            return j_value(col, desc, col->default_value, snap);
        if (col->nullable)
            return json_null();
        return json_loads(dbz_fallback(col, desc), JSON_DECODE_ANY, NULL);
    }
    const tm_datum_t *d = &row->vals[i];
    if (d->flags & TM_DATUM_UNAVAILABLE)
        return j_unavailable(&enc->opts, col, desc);
    return j_value(col, desc, d, snap);
}

static json_t *j_value(const tm_column_t *col, const tm_dbz_coldesc_t *desc, const tm_datum_t *d,
                       bool snap)
{
    char tmp[TM__DBZ_ZONED_MAX];
    if (desc->wire == TM_DBZ_W_GEOMETRY || desc->wire == TM_DBZ_W_POINT) {
        uint32_t srid;
        bool has_srid;
        const uint8_t *wkb;
        size_t n;
        geom_split(d, &srid, &has_srid, &wkb, &n);
        json_t *o = json_object();
        if (desc->wire == TM_DBZ_W_POINT) {
            double x, y;
            wkb_point_xy(wkb, n, &x, &y);
            json_object_set_new(o, "x", j_double(x, false));
            json_object_set_new(o, "y", j_double(y, false));
        }
        json_object_set_new(o, "wkb", j_base64(wkb, n));
        json_object_set_new(o, "srid", has_srid ? json_integer(srid) : json_null());
        return o;
    }
    if (desc->wire == TM_DBZ_W_BIT1)
        return json_boolean(d->u.var.len > 0 && d->u.var.ptr[0] == '1');
    if (desc->wire == TM_DBZ_W_BITS) {
        tm_buf_t b;
        tm_buf_init(&b);
        json_t *j = tm__dbz_bits_to_bytes(d->u.var.ptr, d->u.var.len, &b) == 0
                        ? j_base64(b.data, b.len)
                        : NULL;
        tm_buf_release(&b);
        return j;
    }
    if (desc->wire >= TM_DBZ_W_UNKNOWN || (col->type == TM_T_BYTES && desc->bin != 0)) {
        /* The option forms: the shared formatters' text, parsed. */
        tm_buf_t b;
        tm_buf_init(&b);
        int rc;
        if (desc->wire == TM_DBZ_W_IV_STRING)
            rc = tm__dbz_interval_iso(d->u.iv.us, d->u.iv.months, &b);
        else if (desc->wire == TM_DBZ_W_HSTORE_JSON || desc->wire == TM_DBZ_W_HSTORE_MAP)
            rc = tm__dbz_hstore_json(d->u.var.ptr, d->u.var.len, &b);
        else
            rc = tm__dbz_append_binary(&b, desc->bin, d->u.var.ptr, d->u.var.len);
        json_t *j = rc == TM_EINVAL ? json_null()
                    : rc != 0       ? NULL
                    : desc->wire == TM_DBZ_W_HSTORE_JSON
                        ? j_strn(b.data, b.len)
                        : json_loadb(b.data, b.len, JSON_DECODE_ANY, NULL);
        tm_buf_release(&b);
        return j;
    }
    switch (col->type) {
    case TM_T_BOOL:
        return json_boolean(d->u.b);
    case TM_T_INT16:
    case TM_T_INT32:
    case TM_T_INT64:
    case TM_T_INTERVAL:
        return j_i64(d->u.i64);
    case TM_T_DATE:
        return j_i64(tm__dbz_date_out(d->u.i64, snap));
    case TM_T_FLOAT32:
    case TM_T_FLOAT64:
        return j_double(d->u.f64, col->type == TM_T_FLOAT32);
    case TM_T_NUMERIC:
        return j_numeric(desc, d);
    case TM_T_BYTES:
        return j_base64(d->u.var.ptr, d->u.var.len);
    case TM_T_TIME:
    case TM_T_TIMESTAMP: {
        int64_t us = col->type == TM_T_TIMESTAMP ? tm__dbz_ts_out(d->u.i64) : d->u.i64;
        return j_i64(desc->wire == TM_DBZ_W_MS ? tm__dbz_floordiv(us, 1000) : us);
    }
    case TM_T_TIMETZ:
        return json_stringn(tmp, tm__dbz_fmt_zoned_time(d->u.i64, tmp));
    case TM_T_TIMESTAMPTZ:
        if (d->u.i64 == TM__DBZ_TS_INF_IN || d->u.i64 == TM__DBZ_TS_NINF_IN)
            return json_string(d->u.i64 == TM__DBZ_TS_INF_IN ? "infinity" : "-infinity");
        return json_stringn(tmp, tm__dbz_fmt_zoned_ts_width(d->u.i64, zoned_width(col), tmp));
    case TM_T_ARRAY:
        if (d->u.var.len == 0)
            return json_array();
        return json_loadb(d->u.var.ptr, d->u.var.len, JSON_DECODE_ANY, NULL);
    default:
        return j_strn(d->u.var.ptr, d->u.var.len);
    }
}

static json_t *j_row(const tm_dbz_encoder_t *enc, const tm_schema_t *s, const tm_row_t *row,
                     bool key, bool before, bool snap)
{
    json_t *o = json_object();
    int *cols;
    int n = j_cols(enc, s, key, &cols);
    for (int k = 0; k < n; k++) {
        int i = cols[k];
        tm_dbz_coldesc_t desc;
        tm__dbz_col_desc(&s->cols[i], &enc->opts, &desc);
        json_t *v = row ? j_datum(enc, &s->cols[i], &desc, row, i, dbz_absent(s, before, i), snap)
                        : json_null();
        if (v == NULL) {
            json_decref(o);
            free(cols);
            return NULL;
        }
        json_object_set_new(o, s->cols[i].name ? s->cols[i].name : "", v);
    }
    free(cols);
    return o;
}

static json_t *j_sequence(const tm_source_info_t *src)
{
    char b[64];
    char c[24] = "null", l[24] = "null";
    if (tm_source_pg(src)->commit_lsn)
        snprintf(c, sizeof(c), "\"%llu\"", (unsigned long long)tm_source_pg(src)->commit_lsn);
    if (src->pos)
        snprintf(l, sizeof(l), "\"%llu\"", (unsigned long long)src->pos);
    snprintf(b, sizeof(b), "[%s,%s]", c, l);
    return json_string(b);
}

static json_t *j_source(const tm_dbz_encoder_t *enc, const tm_record_t *rec)
{
    const tm_schema_t *s = rec->schema;
    const tm_source_info_t *src = &rec->src;
    bool msg = rec->op == TM_OP_MESSAGE;
    int kind = rec_kind(enc, rec);
    json_t *o = json_object();
    json_object_set_new(o, "version", j_str(enc->version));
    json_object_set_new(o, "connector", j_str(kind_connector(enc, kind)));
    json_object_set_new(o, "name", j_str(s ? s->source_name : NULL));
    json_object_set_new(o, "ts_ms", j_i64(tm__dbz_floordiv(src->ts_us, 1000)));
    json_object_set_new(o, "snapshot", json_string(snapshot_name(src->snapshot)));
    json_object_set_new(o, "db", j_str(s ? s->db : NULL));
    json_object_set_new(o, "sequence", kind != TM__DBZ_PG ? json_null() : j_sequence(src));
    json_object_set_new(o, "ts_us", j_i64(src->ts_us));
    json_object_set_new(o, "ts_ns", j_scaled(src->ts_us, 1000));
    if (kind != TM__DBZ_PG) {
        static const tm_my_source_t none;
        const tm_my_source_t *my = src->kind == TM_SOURCE_MYSQL ? &src->u.my : &none;
        char gtid[128];
        my_gtid_text(my, gtid, sizeof(gtid));
        json_object_set_new(o, "table", j_str(msg || !s ? NULL : s->table));
        json_object_set_new(o, "server_id", json_integer(my->server_id));
        json_object_set_new(o, "gtid", gtid[0] ? json_string(gtid) : json_null());
        json_object_set_new(o, "file", json_string(my->file ? my->file : ""));
        json_object_set_new(o, "pos", json_integer(my->event_pos));
        json_object_set_new(o, "row", json_integer(my->row));
        json_object_set_new(o, "thread", my->thread ? json_integer(my->thread) : json_null());
        json_object_set_new(o, "query", json_null());
    } else {
        json_object_set_new(o, "schema", j_str(msg || !s ? NULL : s->namespace));
        json_object_set_new(o, "table", j_str(msg || !s ? NULL : s->table));
        uint32_t xid = tm_source_pg(src)->xid;
        json_object_set_new(o, "txId", xid ? json_integer(xid) : json_null());
        json_object_set_new(o, "lsn", src->pos ? json_integer((json_int_t)src->pos) : json_null());
        json_object_set_new(o, "xmin", json_null());
        json_object_set_new(o, "origin", json_null());
        json_object_set_new(o, "origin_lsn", json_null());
    }
    return o;
}

static json_t *j_message(tm_dbz_encoder_t *enc, const tm_record_t *rec)
{
    json_t *p = json_object();
    json_object_set_new(p, "op", json_string("m"));
    json_object_set_new(p, "ts_ms", j_i64(tm__dbz_floordiv(rec->proc_us, 1000)));
    json_object_set_new(p, "source", j_source(enc, rec));
    json_object_set_new(p, "transaction", json_null());
    json_t *m = json_object();
    json_object_set_new(m, "prefix", rec->msg_prefix ? j_str(rec->msg_prefix) : json_null());
    json_object_set_new(m, "content", rec->msg_content || rec->msg_len == 0
                                          ? j_base64(rec->msg_content, rec->msg_len)
                                          : json_null());
    json_object_set_new(p, "message", m);
    if (!enc->opts.schemas)
        return p;
    json_t *fields = json_array();
    json_array_append_new(fields, json_pack("{s:s,s:b,s:s}", "type", "string", "optional", 0,
                                            "field", "op"));
    json_array_append_new(fields, json_pack("{s:s,s:b,s:s}", "type", "int64", "optional", 1,
                                            "field", "ts_ms"));
    json_array_append_new(fields, j_source_schema(rec_kind(enc, rec)));
    json_array_append_new(fields, j_txn_schema());
    json_array_append_new(
        fields,
        json_pack("{s:s,s:[{s:s,s:b,s:s},{s:s,s:b,s:s}],s:b,s:s,s:i,s:s}", "type", "struct",
                  "fields", "type", "string", "optional", 1, "field", "prefix", "type", "bytes",
                  "optional", 1, "field", "content", "optional", 0, "name",
                  "io.debezium.connector.postgresql.Message", "version", 1, "field", "message"));
    json_t *schema =
        json_pack("{s:s,s:o,s:b,s:s,s:i}", "type", "struct", "fields", fields, "optional", 0,
                  "name", "io.debezium.connector.postgresql.MessageValue", "version", 1);
    return json_pack("{s:o,s:o}", "schema", schema, "payload", p);
}

json_t *tm_dbz_encode_value_json(tm_dbz_encoder_t *enc, const tm_record_t *rec)
{
    if (rec->op == TM_OP_MESSAGE)
        return j_message(enc, rec);
    const tm_schema_t *s = rec->schema;
    if (s == NULL)
        return NULL;
    bool rows = rec->op != TM_OP_TRUNCATE;
    bool snap = rec->src.snapshot != TM_SNAPSHOT_FALSE;
    json_t *before =
        rows && rec->before ? j_row(enc, s, rec->before, false, true, snap) : json_null();
    json_t *after = rows && rec->after ? j_row(enc, s, rec->after, false, false, snap) : json_null();
    if (before == NULL || after == NULL) {
        json_decref(before);
        json_decref(after);
        return NULL;
    }
    char op[2] = {(char)rec->op, '\0'};
    json_t *p = json_object();
    json_object_set_new(p, "before", before);
    json_object_set_new(p, "after", after);
    json_object_set_new(p, "source", j_source(enc, rec));
    json_object_set_new(p, "transaction", json_null());
    json_object_set_new(p, "op", json_string(op));
    json_object_set_new(p, "ts_ms", j_i64(tm__dbz_floordiv(rec->proc_us, 1000)));
    json_object_set_new(p, "ts_us", j_i64(rec->proc_us));
    json_object_set_new(p, "ts_ns", j_scaled(rec->proc_us, 1000));
    if (!enc->opts.schemas)
        return p;

    json_t *fields = json_array();
    json_array_append_new(fields, j_row_schema(enc, s, false, ".Value", "before"));
    json_array_append_new(fields, j_row_schema(enc, s, false, ".Value", "after"));
    json_array_append_new(fields, j_source_schema(rec_kind(enc, rec)));
    json_array_append_new(fields, j_txn_schema());
    json_array_append_new(fields, json_pack("{s:s,s:b,s:s}", "type", "string", "optional", 0,
                                            "field", "op"));
    static const char *const ts[] = {"ts_ms", "ts_us", "ts_ns"};
    for (int i = 0; i < 3; i++)
        json_array_append_new(fields, json_pack("{s:s,s:b,s:s}", "type", "int64", "optional", 1,
                                                "field", ts[i]));
    tm_buf_t name;
    tm_buf_init(&name);
    tm__dbz_append_stem(&name, s);
    tm_buf_puts(&name, ".Envelope");
    json_t *schema = json_object();
    json_object_set_new(schema, "type", json_string("struct"));
    json_object_set_new(schema, "fields", fields);
    json_object_set_new(schema, "optional", json_false());
    json_object_set_new(schema, "name", j_strn(name.data, name.len));
    json_object_set_new(schema, "version", json_integer(2));
    tm_buf_release(&name);
    return json_pack("{s:o,s:o}", "schema", schema, "payload", p);
}

json_t *tm_dbz_encode_key_json(tm_dbz_encoder_t *enc, const tm_record_t *rec)
{
    json_t *p;
    if (rec->op == TM_OP_MESSAGE) {
        p = json_pack("{s:o}", "prefix",
                      rec->msg_prefix ? j_str(rec->msg_prefix) : json_null());
        if (!enc->opts.schemas)
            return p;
        json_t *schema = json_pack("{s:s,s:[{s:s,s:b,s:s}],s:b,s:s,s:i}", "type", "struct",
                                   "fields", "type", "string", "optional", 1, "field", "prefix",
                                   "optional", 0, "name",
                                   "io.debezium.connector.postgresql.MessageKey", "version", 1);
        return json_pack("{s:o,s:o}", "schema", schema, "payload", p);
    }
    if (rec->op == TM_OP_TRUNCATE || rec->schema == NULL)
        return NULL;
    int *cols;
    int nk = j_cols(enc, rec->schema, true, &cols);
    free(cols);
    if (nk <= 0)
        return NULL;
    const tm_row_t *row = rec->op == TM_OP_DELETE || rec->after == NULL ? rec->before : rec->after;
    p = j_row(enc, rec->schema, row, true, false, rec->src.snapshot != TM_SNAPSHOT_FALSE);
    if (p == NULL || !enc->opts.schemas)
        return p;
    return json_pack("{s:o,s:o}", "schema", j_row_schema(enc, rec->schema, true, ".Key", NULL),
                     "payload", p);
}
