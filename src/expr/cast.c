/*
 * cast.c — CAST among the supported types, with PostgreSQL 15's text forms
 * (typinput/typoutput with TimeZone=UTC, DateStyle ISO, IntervalStyle
 * postgres, extra_float_digits=1) and its error messages.
 *
 * Intervals: tm holds an interval as microseconds and the calendar months
 * among them (row.h u.iv).  Input converts months as 30.4375 days and years
 * as 365.25 days, exactly as the PostgreSQL source decoder does
 * (connectors/postgres/pg_types.c), so that a literal and a replicated
 * value agree, and keeps the whole months for timestamp ± interval.  Output splits the microseconds
 * into whole days (24 h each) and a time of day, both with the sign of the
 * value: 36 hours prints "1 day 12:00:00" where PostgreSQL keeps "36:00:00",
 * and a month never prints as "1 mon".  docs/sql.md says so.
 *
 * Invariants:
 *   1. tm__datum_from_text(tm__datum_to_text(x)) == x for every finite value.
 *   2. Floats print the shortest text that reads back to the same value.
 *   3. A value outside a type's range is an error, never a wrapped value.
 *
 * Thread: any.
 */
#include "expr/expr_int.h"
#include "core/numeric.h"
#include "core/buf.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------- calendar */

int64_t tm__days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void tm__civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const int64_t doe = z - era * 146097;
    const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dm[m - 1];
}

static int64_t floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

/* ---------------------------------------------------------- output */

static size_t fmt_frac(char *p, int64_t us)
{
    /* ".ffffff" without trailing zeros; nothing for whole seconds. */
    if (us == 0)
        return 0;
    char tmp[8];
    snprintf(tmp, sizeof(tmp), "%06lld", (long long)us);
    int n = 6;
    while (n > 0 && tmp[n - 1] == '0')
        n--;
    p[0] = '.';
    memcpy(p + 1, tmp, (size_t)n);
    return (size_t)n + 1;
}

static size_t fmt_date(char *p, int64_t days)
{
    int64_t y;
    int m, d;
    tm__civil_from_days(days, &y, &m, &d);
    if (y <= 0)
        return (size_t)sprintf(p, "%04lld-%02d-%02d BC", (long long)(1 - y), m, d);
    return (size_t)sprintf(p, "%04lld-%02d-%02d", (long long)y, m, d);
}

static size_t fmt_time(char *p, int64_t us)
{
    int64_t s = us / TM__US_PER_SEC;
    size_t n = (size_t)sprintf(p, "%02lld:%02lld:%02lld", (long long)(s / 3600),
                               (long long)(s / 60 % 60), (long long)(s % 60));
    return n + fmt_frac(p + n, us % TM__US_PER_SEC);
}

static size_t fmt_timestamp(char *p, int64_t us, bool tz)
{
    int64_t days = floordiv(us, TM__US_PER_DAY);
    int64_t tod = us - days * TM__US_PER_DAY;
    int64_t y;
    int m, d;
    tm__civil_from_days(days, &y, &m, &d);
    size_t n = (size_t)sprintf(p, "%04lld-%02d-%02d ", (long long)(y <= 0 ? 1 - y : y), m, d);
    n += fmt_time(p + n, tod);
    if (tz)
        n += (size_t)sprintf(p + n, "+00");
    if (y <= 0)
        n += (size_t)sprintf(p + n, " BC");
    return n;
}

static size_t fmt_interval(char *p, int64_t us)
{
    int64_t days = us / TM__US_PER_DAY;
    int64_t rem = us % TM__US_PER_DAY;
    size_t n = 0;
    if (days != 0)
        n += (size_t)sprintf(p, "%lld day%s", (long long)days, days == 1 ? "" : "s");
    if (rem != 0 || days == 0) {
        if (n)
            p[n++] = ' ';
        if (rem < 0) {
            p[n++] = '-';
            rem = -rem;
        }
        n += fmt_time(p + n, rem);
    }
    return n;
}

/* Shortest round-trip text of a double (PostgreSQL's float8out/float4out). */
static size_t fmt_float(char *p, double v, bool single)
{
    if (isnan(v))
        return (size_t)sprintf(p, "NaN");
    if (isinf(v))
        return (size_t)sprintf(p, "%s", v > 0 ? "Infinity" : "-Infinity");
    if (v == 0)
        return (size_t)sprintf(p, "%s", signbit(v) ? "-0" : "0");
    char e[40];
    int maxp = single ? 9 : 17;
    for (int prec = 1; prec <= maxp; prec++) {
        snprintf(e, sizeof(e), "%.*e", prec - 1, v);
        if (single ? (float)strtod(e, NULL) == (float)v : strtod(e, NULL) == v)
            break;
    }
    /* e is "-d.ddde±XX": pull the digits and the exponent. */
    char digits[24];
    int nd = 0;
    const char *s = e;
    bool neg = *s == '-';
    if (neg)
        s++;
    for (; *s && *s != 'e'; s++)
        if (isdigit((unsigned char)*s))
            digits[nd++] = *s;
    int exp = atoi(s + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    size_t n = 0;
    if (neg)
        p[n++] = '-';
    if (exp < -4 || exp >= (single ? FLT_DIG : DBL_DIG)) {
        p[n++] = digits[0];
        if (nd > 1) {
            p[n++] = '.';
            memcpy(p + n, digits + 1, (size_t)nd - 1);
            n += (size_t)nd - 1;
        }
        n += (size_t)sprintf(p + n, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    } else if (exp < 0) {
        p[n++] = '0';
        p[n++] = '.';
        for (int k = 0; k < -exp - 1; k++)
            p[n++] = '0';
        memcpy(p + n, digits, (size_t)nd);
        n += (size_t)nd;
    } else {
        for (int k = 0; k <= exp; k++)
            p[n++] = k < nd ? digits[k] : '0';
        if (nd > exp + 1) {
            p[n++] = '.';
            memcpy(p + n, digits + exp + 1, (size_t)(nd - exp - 1));
            n += (size_t)(nd - exp - 1);
        }
    }
    p[n] = '\0';
    return n;
}

int tm__datum_to_text(tm_type_t type, const tm_datum_t *in, tm_arena_t *arena, const char **ptr,
                      size_t *len)
{
    char buf[128];
    size_t n;
    switch (type) {
    case TM_T_BOOL:
        /* boolout; a cast to text says "true"/"false" instead (tm__cast_datum). */
        *ptr = in->u.b ? "t" : "f";
        *len = 1;
        return 0;
    case TM_T_INT16:
    case TM_T_INT32:
    case TM_T_INT64: {
        /* Digits from the right: sprintf's format parsing was a visible cost per value. */
        uint64_t v = in->u.i64 < 0 ? (uint64_t)0 - (uint64_t)in->u.i64 : (uint64_t)in->u.i64;
        char *end = buf + 24, *q = end;
        do {
            *--q = (char)('0' + v % 10);
            v /= 10;
        } while (v != 0);
        if (in->u.i64 < 0)
            *--q = '-';
        n = (size_t)(end - q);
        memmove(buf, q, n);
        buf[n] = '\0';
        break;
    }
    case TM_T_FLOAT32:
        n = fmt_float(buf, in->u.f64, true);
        break;
    case TM_T_FLOAT64:
        n = fmt_float(buf, in->u.f64, false);
        break;
    case TM_T_NUMERIC: {
        char *p = tm_num_to_text(in, arena, len);
        if (!p)
            return TM_ENOMEM;
        *ptr = p;
        return 0;
    }
    case TM_T_DATE:
        n = fmt_date(buf, in->u.i64);
        break;
    case TM_T_TIME:
        n = fmt_time(buf, in->u.i64);
        break;
    case TM_T_TIMETZ:
        n = fmt_time(buf, in->u.i64);
        n += (size_t)sprintf(buf + n, "+00");
        break;
    case TM_T_TIMESTAMP:
        n = fmt_timestamp(buf, in->u.i64, false);
        break;
    case TM_T_TIMESTAMPTZ:
        n = fmt_timestamp(buf, in->u.i64, true);
        break;
    case TM_T_INTERVAL:
        n = fmt_interval(buf, in->u.i64);
        break;
    case TM_T_BYTES: {
        static const char hex[] = "0123456789abcdef";
        char *p = tm_arena_alloc(arena, 2 + 2 * (size_t)in->u.var.len + 1);
        if (!p)
            return TM_ENOMEM;
        p[0] = '\\';
        p[1] = 'x';
        const uint8_t *b = (const uint8_t *)in->u.var.ptr;
        for (uint32_t i = 0; i < in->u.var.len; i++) {
            p[2 + 2 * i] = hex[b[i] >> 4];
            p[3 + 2 * i] = hex[b[i] & 15];
        }
        *len = 2 + 2 * (size_t)in->u.var.len;
        p[*len] = '\0';
        *ptr = p;
        return 0;
    }
    default:
        *ptr = in->u.var.ptr ? in->u.var.ptr : "";
        *len = in->u.var.len;
        return 0;
    }
    char *p = tm_arena_memdup(arena, buf, n);
    if (!p)
        return TM_ENOMEM;
    *ptr = p;
    *len = n;
    return 0;
}

int tm_expr_value_text(tm_type_t type, const tm_datum_t *in, tm_arena_t *arena, const char **ptr,
                       size_t *len)
{
    return tm__datum_to_text(type, in, arena, ptr, len);
}

/* ---------------------------------------------------------- input */

static int bad_input(const char *type, const char *s, size_t len, char *errstr, size_t errstr_size)
{
    return tm_seterr(errstr, errstr_size, TM_EINVAL, "invalid input syntax for type %s: \"%.*s\"",
                     type, (int)(len > 200 ? 200 : len), s);
}

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && isspace((unsigned char)**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && isspace((unsigned char)(*s)[*len - 1]))
        (*len)--;
}

static int parse_int(const char *s0, size_t len0, tm_type_t t, int64_t *out, char *errstr,
                     size_t errstr_size)
{
    const char *tname = tm__type_sql_name(t);
    const char *s = s0;
    size_t len = len0;
    trim(&s, &len);
    size_t i = 0;
    bool neg = false;
    if (i < len && (s[i] == '-' || s[i] == '+'))
        neg = s[i++] == '-';
    if (i >= len)
        return bad_input(tname, s0, len0, errstr, errstr_size);
    unsigned __int128 v = 0;
    bool over = false;
    for (; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return bad_input(tname, s0, len0, errstr, errstr_size);
        v = v * 10 + (unsigned)(s[i] - '0');
        if (v > ((unsigned __int128)1 << 64))
            over = true, v = (unsigned __int128)1 << 64;
    }
    __int128 sv = neg ? -(__int128)v : (__int128)v;
    int64_t lo = t == TM_T_INT16 ? INT16_MIN : t == TM_T_INT32 ? INT32_MIN : INT64_MIN;
    int64_t hi = t == TM_T_INT16 ? INT16_MAX : t == TM_T_INT32 ? INT32_MAX : INT64_MAX;
    if (over || sv < lo || sv > hi)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "value \"%.*s\" is out of range for type %s", (int)len0, s0, tname);
    *out = (int64_t)sv;
    return 0;
}

static int parse_float(const char *s0, size_t len0, bool single, double *out, char *errstr,
                       size_t errstr_size)
{
    const char *tname = single ? "real" : "double precision";
    const char *s = s0;
    size_t len = len0;
    trim(&s, &len);
    char buf[512];
    if (len == 0 || len >= sizeof(buf))
        return bad_input(tname, s0, len0, errstr, errstr_size);
    memcpy(buf, s, len);
    buf[len] = '\0';
    /* strtod takes hex floats and "infinityxyz" prefixes PostgreSQL rejects. */
    if (strchr(buf, 'x') || strchr(buf, 'X'))
        return bad_input(tname, s0, len0, errstr, errstr_size);
    errno = 0;
    char *end;
    double v = strtod(buf, &end);
    if (end == buf || *end != '\0')
        return bad_input(tname, s0, len0, errstr, errstr_size);
    if (strcasestr(buf, "inf") == NULL && strcasestr(buf, "nan") == NULL) {
        bool range = errno == ERANGE && (v == 0 || isinf(v) || fabs(v) >= 1);
        if (single && !range && (fabs(v) > FLT_MAX || (v != 0 && fabs(v) < FLT_TRUE_MIN)))
            range = true;
        if (range)
            return tm_seterr(errstr, errstr_size, TM_EINVAL,
                             "\"%.*s\" is out of range for type %s", (int)len0, s0, tname);
    }
    *out = single ? (double)(float)v : v;
    return 0;
}

static int parse_bool(const char *s0, size_t len0, bool *out, char *errstr, size_t errstr_size)
{
    const char *s = s0;
    size_t len = len0;
    trim(&s, &len);
    static const struct {
        const char *w;
        bool v;
        size_t min;
    } words[] = {{"true", true, 1}, {"false", false, 1}, {"yes", true, 1}, {"no", false, 1},
                 {"on", true, 2},   {"off", false, 2},   {"1", true, 1},   {"0", false, 1}};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (len >= words[i].min && len <= strlen(words[i].w) &&
            strncasecmp(s, words[i].w, len) == 0) {
            *out = words[i].v;
            return 0;
        }
    }
    return bad_input("boolean", s0, len0, errstr, errstr_size);
}

/* Reads up to `max` digits at s[*i]; returns the count. */
static int digits_at(const char *s, size_t len, size_t *i, int max, int64_t *v)
{
    int n = 0;
    *v = 0;
    while (*i < len && n < max && isdigit((unsigned char)s[*i])) {
        *v = *v * 10 + (s[*i] - '0');
        (*i)++;
        n++;
    }
    return n;
}

/* YYYY-MM-DD at s[*i]. 1 syntax, 2 range. */
static int scan_date(const char *s, size_t len, size_t *i, int64_t *days)
{
    int64_t y, m, d;
    if (digits_at(s, len, i, 9, &y) < 1 || *i >= len || s[*i] != '-')
        return 1;
    (*i)++;
    if (digits_at(s, len, i, 2, &m) < 1 || *i >= len || s[*i] != '-')
        return 1;
    (*i)++;
    if (digits_at(s, len, i, 2, &d) < 1)
        return 1;
    if (m < 1 || m > 12 || d < 1 || d > days_in_month(y, (int)m) || y < 1 || y > 5874897)
        return 2;
    *days = tm__days_from_civil(y, (int)m, (int)d);
    return 0;
}

/* HH:MM[:SS[.ffffff]] at s[*i]. */
static int scan_time(const char *s, size_t len, size_t *i, int64_t *us)
{
    int64_t h, m, sec = 0, frac = 0;
    if (digits_at(s, len, i, 2, &h) < 1 || *i >= len || s[*i] != ':')
        return 1;
    (*i)++;
    if (digits_at(s, len, i, 2, &m) != 2)
        return 1;
    if (*i < len && s[*i] == ':') {
        (*i)++;
        if (digits_at(s, len, i, 2, &sec) != 2)
            return 1;
        if (*i < len && s[*i] == '.') {
            (*i)++;
            int64_t scale = 100000;
            int nd = 0;
            while (*i < len && isdigit((unsigned char)s[*i])) {
                if (nd < 6)
                    frac += (s[*i] - '0') * scale;
                else if (nd == 6 && s[*i] >= '5')
                    frac++; /* round half up at microseconds, as PostgreSQL */
                scale /= 10;
                nd++;
                (*i)++;
            }
        }
    }
    if (h > 24 || m > 59 || sec > 60 || (h == 24 && (m || sec || frac)))
        return 2;
    *us = ((h * 60 + m) * 60 + sec) * TM__US_PER_SEC + frac;
    return 0;
}

/* Zone: Z, UTC, GMT, ±HH, ±HH:MM, ±HHMM.  Returns the offset in seconds east. */
static int scan_zone(const char *s, size_t len, size_t *i, int64_t *off)
{
    while (*i < len && s[*i] == ' ')
        (*i)++;
    *off = 0;
    if (*i >= len)
        return 0;
    if (s[*i] == 'Z' || s[*i] == 'z') {
        (*i)++;
        return 0;
    }
    if (len - *i >= 3 && (strncasecmp(s + *i, "UTC", 3) == 0 || strncasecmp(s + *i, "GMT", 3) == 0)) {
        *i += 3;
        return 0;
    }
    if (s[*i] != '+' && s[*i] != '-')
        return 1;
    int sign = s[*i] == '-' ? -1 : 1;
    (*i)++;
    int64_t h, m = 0;
    int nd = digits_at(s, len, i, 4, &h);
    if (nd == 4) {
        m = h % 100;
        h /= 100;
    } else if (nd < 1) {
        return 1;
    } else if (*i < len && s[*i] == ':') {
        (*i)++;
        if (digits_at(s, len, i, 2, &m) != 2)
            return 1;
    }
    if (h > 15 || m > 59)
        return 2;
    *off = sign * (h * 3600 + m * 60);
    return 0;
}

static int parse_timestamp(const char *s0, size_t len0, bool tz, int64_t *out, char *errstr,
                           size_t errstr_size)
{
    const char *tname = tz ? "timestamp with time zone" : "timestamp";
    const char *s = s0;
    size_t len = len0;
    trim(&s, &len);
    size_t i = 0;
    int64_t days, tod = 0, off = 0;
    int rc = scan_date(s, len, &i, &days);
    if (rc == 0 && i < len && (s[i] == ' ' || s[i] == 'T' || s[i] == 't')) {
        size_t j = i + 1;
        while (j < len && s[j] == ' ')
            j++;
        if (j < len && isdigit((unsigned char)s[j])) {
            i = j;
            rc = scan_time(s, len, &i, &tod);
        }
    }
    if (rc == 0)
        rc = scan_zone(s, len, &i, &off);
    bool bc = false;
    while (rc == 0 && i < len && s[i] == ' ')
        i++;
    if (rc == 0 && len - i == 2 && strncasecmp(s + i, "BC", 2) == 0) {
        bc = true;
        i += 2;
    }
    if (rc == 1 || (rc == 0 && i != len))
        return bad_input(tname, s0, len0, errstr, errstr_size);
    if (rc == 2)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "date/time field value out of range: \"%.*s\"", (int)len0, s0);
    if (bc) {
        int64_t y;
        int m, d;
        tm__civil_from_days(days, &y, &m, &d);
        days = tm__days_from_civil(1 - y, m, d);
    }
    __int128 v = (__int128)days * TM__US_PER_DAY + tod;
    if (tz)
        v -= (__int128)off * TM__US_PER_SEC;
    if (v < INT64_MIN / 2 || v > INT64_MAX)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "timestamp out of range: \"%.*s\"",
                         (int)len0, s0);
    *out = (int64_t)v;
    return 0;
}

static int parse_date(const char *s0, size_t len0, int64_t *out, char *errstr,
                      size_t errstr_size)
{
    const char *s = s0;
    size_t len = len0;
    trim(&s, &len);
    size_t i = 0;
    int rc = scan_date(s, len, &i, out);
    while (rc == 0 && i < len && s[i] == ' ')
        i++;
    if (rc == 0 && len - i == 2 && strncasecmp(s + i, "BC", 2) == 0) {
        int64_t y;
        int m, d;
        tm__civil_from_days(*out, &y, &m, &d);
        *out = tm__days_from_civil(1 - y, m, d);
        i += 2;
    }
    if (rc == 1 || (rc == 0 && i != len))
        return bad_input("date", s0, len0, errstr, errstr_size);
    if (rc == 2)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "date/time field value out of range: \"%.*s\"", (int)len0, s0);
    return 0;
}

static int parse_time(const char *s0, size_t len0, bool tz, int64_t *out, char *errstr,
                      size_t errstr_size)
{
    const char *tname = tz ? "time with time zone" : "time";
    const char *s = s0;
    size_t len = len0;
    trim(&s, &len);
    size_t i = 0;
    int64_t off = 0;
    int rc = scan_time(s, len, &i, out);
    if (rc == 0)
        rc = scan_zone(s, len, &i, &off);
    if (rc == 1 || (rc == 0 && i != len))
        return bad_input(tname, s0, len0, errstr, errstr_size);
    if (rc == 2)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "date/time field value out of range: \"%.*s\"", (int)len0, s0);
    if (tz) {
        *out -= off * TM__US_PER_SEC;
        *out = ((*out % TM__US_PER_DAY) + TM__US_PER_DAY) % TM__US_PER_DAY;
    }
    return 0;
}

static const struct {
    const char *unit;
    int64_t us;
} interval_units[] = {
    {"microseconds", 1},
    {"microsecond", 1},
    {"usecs", 1},
    {"usec", 1},
    {"us", 1},
    {"milliseconds", 1000},
    {"millisecond", 1000},
    {"msecs", 1000},
    {"msec", 1000},
    {"ms", 1000},
    {"seconds", TM__US_PER_SEC},
    {"second", TM__US_PER_SEC},
    {"secs", TM__US_PER_SEC},
    {"sec", TM__US_PER_SEC},
    {"s", TM__US_PER_SEC},
    {"minutes", 60 * TM__US_PER_SEC},
    {"minute", 60 * TM__US_PER_SEC},
    {"mins", 60 * TM__US_PER_SEC},
    {"min", 60 * TM__US_PER_SEC},
    {"m", 60 * TM__US_PER_SEC},
    {"hours", 3600 * TM__US_PER_SEC},
    {"hour", 3600 * TM__US_PER_SEC},
    {"hrs", 3600 * TM__US_PER_SEC},
    {"hr", 3600 * TM__US_PER_SEC},
    {"h", 3600 * TM__US_PER_SEC},
    {"days", TM__US_PER_DAY},
    {"day", TM__US_PER_DAY},
    {"d", TM__US_PER_DAY},
    {"weeks", 7 * TM__US_PER_DAY},
    {"week", 7 * TM__US_PER_DAY},
    {"w", 7 * TM__US_PER_DAY},
    {"months", TM__US_PER_MONTH},
    {"month", TM__US_PER_MONTH},
    {"mons", TM__US_PER_MONTH},
    {"mon", TM__US_PER_MONTH},
    {"years", 12 * TM__US_PER_MONTH},
    {"year", 12 * TM__US_PER_MONTH},
    {"yrs", 12 * TM__US_PER_MONTH},
    {"yr", 12 * TM__US_PER_MONTH},
    {"y", 12 * TM__US_PER_MONTH},
    {"decades", 120 * TM__US_PER_MONTH},
    {"decade", 120 * TM__US_PER_MONTH},
    {"centuries", 1200 * TM__US_PER_MONTH},
    {"century", 1200 * TM__US_PER_MONTH},
    {"millennia", 12000 * TM__US_PER_MONTH},
    {"millennium", 12000 * TM__US_PER_MONTH},
};

/*
 * The postgres-style interval input: "[@] n unit [n unit …] [[-]hh:mm[:ss[.f]]] [ago]",
 * fractions allowed on every unit, and a bare number meaning seconds.
 */
static int parse_interval(const char *s0, size_t len0, int64_t *out, int32_t *months_out,
                          char *errstr, size_t errstr_size)
{
    const char *s = s0;
    size_t len = len0;
    trim(&s, &len);
    size_t i = 0;
    long double total = 0, months = 0;
    bool any = false;
    if (i < len && s[i] == '@')
        i++;
    while (i < len) {
        while (i < len && s[i] == ' ')
            i++;
        if (i >= len)
            break;
        if (len - i == 3 && strncasecmp(s + i, "ago", 3) == 0 && any) {
            total = -total;
            months = -months;
            i += 3;
            break;
        }
        size_t j = i;
        int sign = 1;
        if (s[j] == '-' || s[j] == '+')
            sign = s[j++] == '-' ? -1 : 1;
        size_t k = j;
        while (k < len && isdigit((unsigned char)s[k]))
            k++;
        if (k < len && s[k] == ':' && k > j) {
            size_t p = j;
            int64_t tod;
            int rc = scan_time(s, len, &p, &tod);
            if (rc == 1) {
                /* Hours beyond 99: read them by hand. */
                return bad_input("interval", s0, len0, errstr, errstr_size);
            }
            if (rc == 2 && !(rc = 0)) {
                /* scan_time limits hours to 24; intervals allow more. */
                int64_t h = 0, m = 0, sec = 0;
                p = j;
                digits_at(s, len, &p, 9, &h);
                p++;
                digits_at(s, len, &p, 2, &m);
                if (p < len && s[p] == ':') {
                    p++;
                    digits_at(s, len, &p, 2, &sec);
                }
                tod = (h * 3600 + m * 60 + sec) * TM__US_PER_SEC;
            }
            total += (long double)sign * (long double)tod;
            i = p;
            any = true;
            continue;
        }
        char num[64];
        size_t nl = 0;
        size_t q = j;
        while (q < len && (isdigit((unsigned char)s[q]) || s[q] == '.') && nl < sizeof(num) - 1)
            num[nl++] = s[q++];
        num[nl] = '\0';
        if (nl == 0 || strcmp(num, ".") == 0)
            return bad_input("interval", s0, len0, errstr, errstr_size);
        long double v = strtold(num, NULL) * sign;
        while (q < len && s[q] == ' ')
            q++;
        size_t w = q;
        while (q < len && isalpha((unsigned char)s[q]))
            q++;
        int64_t unit = -1;
        if (q == w) {
            unit = TM__US_PER_SEC;
        } else {
            for (size_t u = 0; u < sizeof(interval_units) / sizeof(interval_units[0]); u++) {
                if (strlen(interval_units[u].unit) == q - w &&
                    strncasecmp(interval_units[u].unit, s + w, q - w) == 0) {
                    unit = interval_units[u].us;
                    break;
                }
            }
        }
        if (unit < 0)
            return bad_input("interval", s0, len0, errstr, errstr_size);
        if (unit >= TM__US_PER_MONTH) {
            /* Calendar months (row.h u.iv), as DecodeInterval: a fraction of a year is rounded
             * to whole months, a fraction of a month is days of 30 (and time of day). */
            long double mv = v * (long double)(unit / TM__US_PER_MONTH);
            long double whole = unit > TM__US_PER_MONTH ? rintl(mv) : truncl(mv);
            months += whole;
            total += whole * (long double)TM__US_PER_MONTH;
            if (unit == TM__US_PER_MONTH)
                total += (mv - whole) * 30 * (long double)TM__US_PER_DAY;
        } else {
            total += v * (long double)unit;
        }
        i = q;
        any = true;
    }
    if (!any)
        return bad_input("interval", s0, len0, errstr, errstr_size);
    long double r = roundl(total);
    if (r > (long double)INT64_MAX || r < (long double)INT64_MIN)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "interval out of range");
    if (months > INT32_MAX || months < INT32_MIN)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "interval out of range");
    *out = (int64_t)r;
    *months_out = (int32_t)months;
    return 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int parse_uuid(const char *s0, size_t len0, tm_arena_t *arena, tm_datum_t *out,
                      char *errstr, size_t errstr_size)
{
    const char *s = s0;
    size_t len = len0;
    trim(&s, &len);
    char hexd[32];
    int n = 0;
    size_t i = 0;
    bool brace = len > 0 && s[0] == '{';
    if (brace)
        i++;
    for (; i < len && n < 32; i++) {
        if (s[i] == '-' && n > 0 && n % 4 == 0 && i + 1 < len && s[i + 1] != '-')
            continue;
        if (hexval((unsigned char)s[i]) < 0)
            break;
        hexd[n++] = (char)tolower((unsigned char)s[i]);
    }
    if (brace && i < len && s[i] == '}')
        i++;
    if (n != 32 || i != len || (brace && s[len - 1] != '}'))
        return bad_input("uuid", s0, len0, errstr, errstr_size);
    char *p = tm_arena_alloc(arena, 37);
    if (!p)
        return TM_ENOMEM;
    snprintf(p, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hexd, hexd + 8, hexd + 12, hexd + 16, hexd + 20);
    out->u.var.ptr = p;
    out->u.var.len = 36;
    return 0;
}

static int parse_bytea(const char *s, size_t len, tm_arena_t *arena, tm_datum_t *out,
                       char *errstr, size_t errstr_size)
{
    uint8_t *p = tm_arena_alloc(arena, len + 1);
    if (!p)
        return TM_ENOMEM;
    size_t n = 0;
    if (len >= 2 && s[0] == '\\' && s[1] == 'x') {
        for (size_t i = 2; i < len;) {
            if (isspace((unsigned char)s[i])) {
                i++;
                continue;
            }
            int hi = hexval((unsigned char)s[i]);
            int lo = i + 1 < len ? hexval((unsigned char)s[i + 1]) : -1;
            if (hi < 0)
                return tm_seterr(errstr, errstr_size, TM_EINVAL,
                                 "invalid hexadecimal digit: \"%c\"", s[i]);
            if (lo < 0)
                return tm_seterr(errstr, errstr_size, TM_EINVAL,
                                 "invalid hexadecimal data: odd number of digits");
            p[n++] = (uint8_t)(hi * 16 + lo);
            i += 2;
        }
    } else {
        long m = tm_bytea_escape_decode(s, len, p);
        if (m < 0)
            return bad_input("bytea", s, len, errstr, errstr_size);
        n = (size_t)m;
    }
    out->u.var.ptr = (const char *)p;
    out->u.var.len = (uint32_t)n;
    return 0;
}

/* Truncates to n characters (UTF-8), as an explicit cast to varchar(n) does. */
static size_t utf8_prefix(const char *s, size_t len, int n)
{
    size_t i = 0;
    int c = 0;
    while (i < len && c < n) {
        i++;
        while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
            i++;
        c++;
    }
    return i;
}

int tm__datum_from_text(const char *s, size_t len, const tm_expr_type_t *to, tm_arena_t *arena,
                        tm_datum_t *out, char *errstr, size_t errstr_size)
{
    memset(out, 0, sizeof(*out));
    switch (to->type) {
    case TM_T_BOOL:
        return parse_bool(s, len, &out->u.b, errstr, errstr_size);
    case TM_T_INT16:
    case TM_T_INT32:
    case TM_T_INT64:
        return parse_int(s, len, to->type, &out->u.i64, errstr, errstr_size);
    case TM_T_FLOAT32:
    case TM_T_FLOAT64:
        return parse_float(s, len, to->type == TM_T_FLOAT32, &out->u.f64, errstr, errstr_size);
    case TM_T_NUMERIC: {
        tm_datum_t tmp;
        int rc = tm_num_parse(s, len, arena, &tmp, errstr, errstr_size);
        if (rc)
            return rc;
        return tm_num_apply_typmod(&tmp, to->precision, to->scale, arena, out, errstr,
                                   errstr_size);
    }
    case TM_T_DATE:
        return parse_date(s, len, &out->u.i64, errstr, errstr_size);
    case TM_T_TIME:
    case TM_T_TIMETZ:
        return parse_time(s, len, to->type == TM_T_TIMETZ, &out->u.i64, errstr, errstr_size);
    case TM_T_TIMESTAMP:
    case TM_T_TIMESTAMPTZ:
        return parse_timestamp(s, len, to->type == TM_T_TIMESTAMPTZ, &out->u.i64, errstr,
                               errstr_size);
    case TM_T_INTERVAL:
        return parse_interval(s, len, &out->u.iv.us, &out->u.iv.months, errstr, errstr_size);
    case TM_T_UUID:
        return parse_uuid(s, len, arena, out, errstr, errstr_size);
    case TM_T_BYTES:
        return parse_bytea(s, len, arena, out, errstr, errstr_size);
    case TM_T_JSON: {
        json_error_t jerr;
        json_t *j = json_loadb(s, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (!j)
            return tm_seterr(errstr, errstr_size, TM_EINVAL, "invalid input syntax for type json");
        json_decref(j);
        break;
    }
    default:
        break;
    }
    if (to->type == TM_T_TEXT && to->precision > 0)
        len = utf8_prefix(s, len, to->precision);
    char *p = tm_arena_memdup(arena, s, len);
    if (!p)
        return TM_ENOMEM;
    out->u.var.ptr = p;
    out->u.var.len = (uint32_t)len;
    return 0;
}

/* ---------------------------------------------------------- casts */

static bool is_var_text(tm_type_t t)
{
    return t == TM_T_TEXT || t == TM_T_ENUM || t == TM_T_OTHER;
}

bool tm__cast_exists(tm_type_t from, tm_type_t to)
{
    if (from == to || is_var_text(to) || is_var_text(from))
        return to != TM_T_ENUM && to != TM_T_OTHER && to != TM_T_ARRAY;
    char cf = tm__type_category(from), ct = tm__type_category(to);
    if (cf == 'N' && ct == 'N')
        return true;
    if ((from == TM_T_BOOL && to == TM_T_INT32) || (from == TM_T_INT32 && to == TM_T_BOOL))
        return true;
    switch (from) {
    case TM_T_DATE:
        return to == TM_T_TIMESTAMP || to == TM_T_TIMESTAMPTZ;
    case TM_T_TIMESTAMP:
    case TM_T_TIMESTAMPTZ:
        return to == TM_T_DATE || to == TM_T_TIME || to == TM_T_TIMESTAMP ||
               to == TM_T_TIMESTAMPTZ || (from == TM_T_TIMESTAMPTZ && to == TM_T_TIMETZ);
    case TM_T_TIME:
        return to == TM_T_INTERVAL || to == TM_T_TIMETZ;
    case TM_T_TIMETZ:
        return to == TM_T_TIME;
    case TM_T_INTERVAL:
        return to == TM_T_TIME;
    default:
        return false;
    }
}

static int int_range(int64_t v, tm_type_t to, int64_t *out, char *errstr, size_t errstr_size)
{
    if ((to == TM_T_INT16 && (v < INT16_MIN || v > INT16_MAX)) ||
        (to == TM_T_INT32 && (v < INT32_MIN || v > INT32_MAX)))
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "%s out of range",
                         tm__type_sql_name(to));
    *out = v;
    return 0;
}

static int float_to_int(double v, tm_type_t to, int64_t *out, char *errstr, size_t errstr_size)
{
    v = rint(v); /* PostgreSQL rounds half to even here */
    if (isnan(v) || v < -9223372036854775808.0 || v >= 9223372036854775808.0)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "%s out of range",
                         tm__type_sql_name(to));
    return int_range((int64_t)v, to, out, errstr, errstr_size);
}

int tm__cast_datum(tm_type_t from, const tm_datum_t *in, const tm_expr_type_t *to,
                   tm_arena_t *arena, tm_datum_t *out, char *errstr, size_t errstr_size)
{
    tm_type_t t = to->type;
    if (from == t && !(t == TM_T_NUMERIC && to->precision > 0) &&
        !(t == TM_T_TEXT && to->precision > 0)) {
        *out = *in;
        return 0;
    }
    if (is_var_text(from) && !is_var_text(t))
        return tm__datum_from_text(in->u.var.ptr ? in->u.var.ptr : "", in->u.var.len, to, arena,
                                   out, errstr, errstr_size);
    if (is_var_text(t)) {
        const char *p;
        size_t len;
        int rc = 0;
        if (from == TM_T_BOOL) {
            p = in->u.b ? "true" : "false";
            len = strlen(p);
        } else {
            rc = tm__datum_to_text(from, in, arena, &p, &len);
        }
        if (rc)
            return tm_seterr(errstr, errstr_size, rc, "out of memory");
        return tm__datum_from_text(p, len, to, arena, out, errstr, errstr_size);
    }
    memset(out, 0, sizeof(*out));
    int rf = tm__num_rank(from), rt = tm__num_rank(t);
    if (rf && rt) {
        if (rf <= 3) { /* from an integer */
            if (rt <= 3)
                return int_range(in->u.i64, t, &out->u.i64, errstr, errstr_size);
            if (rt == 4) {
                tm_datum_t n;
                tm_num_from_int(in->u.i64, &n);
                return tm_num_apply_typmod(&n, to->precision, to->scale, arena, out, errstr,
                                           errstr_size);
            }
            out->u.f64 = rt == 5 ? (double)(float)in->u.i64 : (double)in->u.i64;
            return 0;
        }
        if (rf == 4) { /* from numeric */
            if (rt <= 3)
                return tm_num_to_int(in,
                                     t == TM_T_INT16   ? INT16_MIN
                                     : t == TM_T_INT32 ? INT32_MIN
                                                       : INT64_MIN,
                                     t == TM_T_INT16   ? INT16_MAX
                                     : t == TM_T_INT32 ? INT32_MAX
                                                       : INT64_MAX,
                                     tm__type_sql_name(t), &out->u.i64, errstr, errstr_size);
            if (rt == 4)
                return tm_num_apply_typmod(in, to->precision, to->scale, arena, out, errstr,
                                           errstr_size);
            double v = tm_num_to_double(in);
            if (isinf(v) && !tm_num_is_special(in)) {
                char buf[64];
                tm_num_format(in, buf, sizeof(buf));
                return tm_seterr(errstr, errstr_size, TM_EINVAL,
                                 "\"%s\" is out of range for type %s", buf, tm__type_sql_name(t));
            }
            if (rt == 5 && !isinf(v) && fabs(v) > FLT_MAX)
                return tm_seterr(errstr, errstr_size, TM_EINVAL, "value out of range: overflow");
            out->u.f64 = rt == 5 ? (double)(float)v : v;
            return 0;
        }
        /* from a float */
        if (rt <= 3)
            return float_to_int(in->u.f64, t, &out->u.i64, errstr, errstr_size);
        if (rt == 4) {
            tm_datum_t n;
            int rc = tm_num_from_double(in->u.f64, rf == 5 ? FLT_DIG : DBL_DIG, arena, &n, errstr,
                                        errstr_size);
            if (rc)
                return rc;
            return tm_num_apply_typmod(&n, to->precision, to->scale, arena, out, errstr,
                                       errstr_size);
        }
        if (rt == 5) {
            double v = in->u.f64;
            if (!isinf(v) && !isnan(v) && fabs(v) > FLT_MAX)
                return tm_seterr(errstr, errstr_size, TM_EINVAL, "value out of range: overflow");
            if (v != 0 && fabs(v) < FLT_TRUE_MIN)
                return tm_seterr(errstr, errstr_size, TM_EINVAL, "value out of range: underflow");
            out->u.f64 = (double)(float)v;
            return 0;
        }
        out->u.f64 = in->u.f64;
        return 0;
    }
    if (from == TM_T_BOOL && t == TM_T_INT32) {
        out->u.i64 = in->u.b ? 1 : 0;
        return 0;
    }
    if (from == TM_T_INT32 && t == TM_T_BOOL) {
        out->u.b = in->u.i64 != 0;
        return 0;
    }
    int64_t v = in->u.i64;
    switch (from) {
    case TM_T_DATE:
        if (t == TM_T_TIMESTAMP || t == TM_T_TIMESTAMPTZ) {
            if (__builtin_mul_overflow(v, TM__US_PER_DAY, &out->u.i64))
                return tm_seterr(errstr, errstr_size, TM_EINVAL, "date out of range for timestamp");
            return 0;
        }
        break;
    case TM_T_TIMESTAMP:
    case TM_T_TIMESTAMPTZ:
        if (t == TM_T_DATE) {
            out->u.i64 = floordiv(v, TM__US_PER_DAY);
            return 0;
        }
        if (t == TM_T_TIME || t == TM_T_TIMETZ) {
            out->u.i64 = v - floordiv(v, TM__US_PER_DAY) * TM__US_PER_DAY;
            return 0;
        }
        if (t == TM_T_TIMESTAMP || t == TM_T_TIMESTAMPTZ) {
            out->u.i64 = v; /* the session time zone is UTC */
            return 0;
        }
        break;
    case TM_T_TIME:
    case TM_T_TIMETZ:
        if (t == TM_T_INTERVAL || t == TM_T_TIME || t == TM_T_TIMETZ) {
            out->u.i64 = v;
            return 0;
        }
        break;
    case TM_T_INTERVAL:
        if (t == TM_T_TIME) {
            out->u.i64 = ((v % TM__US_PER_DAY) + TM__US_PER_DAY) % TM__US_PER_DAY;
            return 0;
        }
        break;
    default:
        break;
    }
    if ((from == TM_T_UUID || from == TM_T_JSON || from == TM_T_BYTES) && from == t) {
        *out = *in;
        return 0;
    }
    return tm_seterr(errstr, errstr_size, TM_EINVAL, "cannot cast type %s to %s",
                     tm__type_sql_name(from), tm__type_sql_name(t));
}
