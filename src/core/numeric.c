/*
 * numeric.c — exact NUMERIC arithmetic (see numeric.h).
 *
 * Two paths.  The fast path works on the 128-bit scaled integers of row.h
 * with overflow-checked builtins; whenever an intermediate would overflow
 * (or an input is TM_DATUM_WIDE) the operation is redone on the slow path,
 * an arbitrary-length decimal digit array (big_t), whose result is turned
 * back into a 128-bit value when it fits.  The slow path is plain schoolbook
 * arithmetic on base-10 digits: simple enough to be obviously exact, and
 * fast enough for the 40-100 digit values it meets.
 *
 * Invariants:
 *   1. A big_t is normalised: no leading zero digits (n == 0 is zero), and
 *      zero is never negative.
 *   2. Rounding is always computed from the exact digits (no floating point).
 *   3. A value with more than TM_NUM_MAX_INT_DIGITS integer digits or a
 *      scale above TM_NUM_MAX_SCALE*16 is "value overflows numeric format".
 *
 * Thread: any.
 */
#include "core/numeric.h"

#include "core/error.h"
#include "core/hash.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_INPUT_SCALE 16383

typedef enum nkind { NK_FINITE = 0, NK_NAN, NK_PINF, NK_NINF } nkind_t;

typedef struct big {
    nkind_t kind;
    bool neg;
    int n;      /* digits in d */
    int scale;  /* digits after the point */
    int cap;
    uint8_t *d; /* least significant first */
    uint8_t small[64];
} big_t;

static const __int128 I128_MAX = (__int128)(((unsigned __int128)1 << 127) - 1);

/* ---------------------------------------------------------------- big_t */

static void big_init(big_t *b)
{
    b->kind = NK_FINITE;
    b->neg = false;
    b->n = 0;
    b->scale = 0;
    b->cap = (int)sizeof(b->small);
    b->d = b->small;
}

static void big_done(big_t *b)
{
    if (b->d != b->small)
        free(b->d);
    b->d = b->small;
    b->cap = (int)sizeof(b->small);
}

static int big_reserve(big_t *b, int n)
{
    if (n <= b->cap)
        return 0;
    int cap = b->cap * 2 > n ? b->cap * 2 : n;
    uint8_t *p = malloc((size_t)cap);
    if (!p)
        return TM_ENOMEM;
    memcpy(p, b->d, (size_t)b->n);
    if (b->d != b->small)
        free(b->d);
    b->d = p;
    b->cap = cap;
    return 0;
}

static void big_norm(big_t *b)
{
    while (b->n > 0 && b->d[b->n - 1] == 0)
        b->n--;
    if (b->n == 0)
        b->neg = false;
}

static int big_copy(big_t *dst, const big_t *src)
{
    int rc = big_reserve(dst, src->n);
    if (rc)
        return rc;
    dst->kind = src->kind;
    dst->neg = src->neg;
    dst->n = src->n;
    dst->scale = src->scale;
    memcpy(dst->d, src->d, (size_t)src->n);
    return 0;
}

/* Multiplies the magnitude by 10^k (k >= 0) by prepending zero digits; scale unchanged. */
static int big_shift(big_t *b, int k)
{
    if (k <= 0 || b->n == 0)
        return 0;
    int rc = big_reserve(b, b->n + k);
    if (rc)
        return rc;
    memmove(b->d + k, b->d, (size_t)b->n);
    memset(b->d, 0, (size_t)k);
    b->n += k;
    return 0;
}

/* Raises the scale to `s` without changing the value. */
static int big_rescale_up(big_t *b, int s)
{
    if (s <= b->scale)
        return 0;
    int rc = big_shift(b, s - b->scale);
    b->scale = s;
    return rc;
}

static int big_from_i128(big_t *b, __int128 v, int scale)
{
    big_init(b);
    b->neg = v < 0;
    unsigned __int128 u = b->neg ? (unsigned __int128)0 - (unsigned __int128)v : (unsigned __int128)v;
    while (u) {
        b->d[b->n++] = (uint8_t)(u % 10);
        u /= 10;
    }
    b->scale = scale;
    return 0;
}

/* True when the magnitude fits a positive __int128 (including the sign handling). */
static bool big_to_i128(const big_t *b, __int128 *out)
{
    if (b->n > 39)
        return false;
    unsigned __int128 u = 0;
    const unsigned __int128 lim = (unsigned __int128)I128_MAX;
    for (int i = b->n - 1; i >= 0; i--) {
        if (u > (lim - b->d[i]) / 10)
            return false;
        u = u * 10 + b->d[i];
    }
    *out = b->neg ? -(__int128)u : (__int128)u;
    return true;
}

/*
 * Parses PostgreSQL numeric input.  Returns 0, 1 for a syntax error, 2 for
 * a value beyond the limits, or TM_ENOMEM.
 */
static int big_parse(big_t *b, const char *s, size_t len)
{
    size_t i = 0;
    big_init(b);
    while (i < len && isspace((unsigned char)s[i]))
        i++;
    size_t end = len;
    while (end > i && isspace((unsigned char)s[end - 1]))
        end--;
    bool neg = false, sign = false;
    if (i < end && (s[i] == '+' || s[i] == '-')) {
        sign = true;
        neg = s[i++] == '-';
    }
    size_t rest = end - i;
    if (rest == 3 && strncasecmp(s + i, "nan", 3) == 0) {
        /* PostgreSQL accepts no sign on NaN. */
        if (sign)
            return 1;
        b->kind = NK_NAN;
        return 0;
    }
    if ((rest == 8 && strncasecmp(s + i, "infinity", 8) == 0) ||
        (rest == 3 && strncasecmp(s + i, "inf", 3) == 0)) {
        b->kind = neg ? NK_NINF : NK_PINF;
        return 0;
    }
    /* Collect digits most significant first into a temporary, then reverse. */
    size_t start = i;
    int ndig = 0, frac = 0;
    bool any = false, point = false;
    for (; i < end; i++) {
        if (s[i] >= '0' && s[i] <= '9') {
            any = true;
            ndig++;
            if (point)
                frac++;
        } else if (s[i] == '.' && !point) {
            point = true;
        } else {
            break;
        }
    }
    if (!any)
        return 1;
    long exp = 0;
    if (i < end && (s[i] == 'e' || s[i] == 'E')) {
        bool eneg = false;
        i++;
        if (i < end && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        if (i >= end || !isdigit((unsigned char)s[i]))
            return 1;
        for (; i < end && isdigit((unsigned char)s[i]); i++) {
            exp = exp * 10 + (s[i] - '0');
            if (exp > 1000000)
                return 2;
        }
        if (eneg)
            exp = -exp;
    }
    if (i != end)
        return 1;
    int rc = big_reserve(b, ndig);
    if (rc)
        return rc;
    int k = 0;
    for (size_t j = start; k < ndig; j++) {
        if (s[j] == '.')
            continue;
        b->d[ndig - 1 - k] = (uint8_t)(s[j] - '0');
        k++;
    }
    b->n = ndig;
    b->neg = neg;
    long sc = (long)frac - exp;
    if (sc < 0) {
        if (-sc > TM_NUM_MAX_INT_DIGITS + 1)
            return 2;
        b->scale = 0;
        big_norm(b);
        rc = big_shift(b, (int)-sc);
        if (rc)
            return rc;
    } else {
        if (sc > MAX_INPUT_SCALE)
            return 2;
        b->scale = (int)sc;
    }
    big_norm(b);
    if (b->n - b->scale > TM_NUM_MAX_INT_DIGITS)
        return 2;
    return 0;
}

static int big_from_datum(big_t *b, const tm_datum_t *d)
{
    if (d->flags & (TM_DATUM_WIDE | TM_DATUM_NAN)) {
        int rc = big_parse(b, d->u.var.ptr ? d->u.var.ptr : "", d->u.var.len);
        if (rc == TM_ENOMEM)
            return rc;
        if (rc != 0) {
            /* An unreadable stored text: treat as NaN rather than guess a value. */
            big_done(b);
            big_init(b);
            b->kind = NK_NAN;
        }
        return 0;
    }
    return big_from_i128(b, d->u.dec, d->scale);
}

/* Loads both operands of a binary operation; on failure neither needs big_done. */
static int big_from_pair(big_t *x, big_t *y, const tm_datum_t *a, const tm_datum_t *b)
{
    if (big_from_datum(x, a))
        return TM_ENOMEM;
    if (big_from_datum(y, b)) {
        big_done(x);
        return TM_ENOMEM;
    }
    return 0;
}

/* Plain text of a finite big; returns the length needed. */
static size_t big_format(const big_t *b, char *buf, size_t buflen)
{
    size_t n = 0;
#define PUT(c)                                                                                     \
    do {                                                                                           \
        if (n + 1 < buflen)                                                                        \
            buf[n] = (c);                                                                          \
        n++;                                                                                       \
    } while (0)
    if (b->kind == NK_NAN) {
        n = (size_t)snprintf(buf, buflen, "NaN");
        return n;
    }
    if (b->kind == NK_PINF || b->kind == NK_NINF) {
        n = (size_t)snprintf(buf, buflen, "%s", b->kind == NK_PINF ? "Infinity" : "-Infinity");
        return n;
    }
    if (b->neg)
        PUT('-');
    int intdig = b->n - b->scale;
    if (intdig <= 0)
        PUT('0');
    for (int p = intdig - 1; p >= 0; p--)
        PUT((char)('0' + b->d[p + b->scale]));
    if (b->scale > 0) {
        PUT('.');
        for (int k = b->scale - 1; k >= 0; k--)
            PUT((char)('0' + (k < b->n ? b->d[k] : 0)));
    }
    if (buflen > 0)
        buf[n < buflen ? n : buflen - 1] = '\0';
#undef PUT
    return n;
}

static int big_to_datum(const big_t *b, tm_arena_t *arena, tm_datum_t *out, char *errstr,
                        size_t errstr_size)
{
    memset(out, 0, sizeof(*out));
    if (b->kind != NK_FINITE) {
        static const char *names[] = {"", "NaN", "Infinity", "-Infinity"};
        out->flags = TM_DATUM_NAN;
        out->u.var.ptr = names[b->kind];
        out->u.var.len = (uint32_t)strlen(names[b->kind]);
        return 0;
    }
    if (b->n - b->scale > TM_NUM_MAX_INT_DIGITS || b->scale > MAX_INPUT_SCALE)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "value overflows numeric format");
    __int128 v;
    if (big_to_i128(b, &v)) {
        out->u.dec = v;
        out->scale = (int16_t)b->scale;
        return 0;
    }
    if (!arena)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "value overflows numeric format");
    size_t need = big_format(b, NULL, 0);
    char *p = tm_arena_alloc(arena, need + 1);
    if (!p)
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    big_format(b, p, need + 1);
    out->flags = TM_DATUM_WIDE;
    out->scale = (int16_t)(b->scale < INT16_MAX ? b->scale : INT16_MAX);
    out->u.var.ptr = p;
    out->u.var.len = (uint32_t)need;
    return 0;
}

/* Digit at decimal position p (0 = units, -1 = tenths, …). */
static inline int big_at(const big_t *b, int p)
{
    int idx = p + b->scale;
    return idx >= 0 && idx < b->n ? b->d[idx] : 0;
}

static int big_cmp_abs(const big_t *a, const big_t *b)
{
    int ia = a->n - a->scale, ib = b->n - b->scale;
    if (a->n == 0 || b->n == 0)
        return (a->n != 0) - (b->n != 0);
    if (ia != ib)
        return ia > ib ? 1 : -1;
    int lo = -(a->scale > b->scale ? a->scale : b->scale);
    for (int p = ia - 1; p >= lo; p--) {
        int x = big_at(a, p), y = big_at(b, p);
        if (x != y)
            return x > y ? 1 : -1;
    }
    return 0;
}

/* out = |a| + |b| (out distinct from a and b), scale max. */
static int big_add_abs(const big_t *a, const big_t *b, big_t *out)
{
    int sc = a->scale > b->scale ? a->scale : b->scale;
    int ia = a->n - a->scale, ib = b->n - b->scale;
    int hi = (ia > ib ? ia : ib) + 1;
    if (hi < 1)
        hi = 1;
    int rc = big_reserve(out, hi + sc);
    if (rc)
        return rc;
    int carry = 0, k = 0;
    for (int p = -sc; p < hi; p++) {
        int s = big_at(a, p) + big_at(b, p) + carry;
        out->d[k++] = (uint8_t)(s % 10);
        carry = s / 10;
    }
    out->n = k;
    out->scale = sc;
    big_norm(out);
    return 0;
}

/* out = |a| - |b| with |a| >= |b|. */
static int big_sub_abs(const big_t *a, const big_t *b, big_t *out)
{
    int sc = a->scale > b->scale ? a->scale : b->scale;
    int ia = a->n - a->scale;
    int hi = ia > 1 ? ia : 1;
    int rc = big_reserve(out, hi + sc);
    if (rc)
        return rc;
    int borrow = 0, k = 0;
    for (int p = -sc; p < hi; p++) {
        int s = big_at(a, p) - big_at(b, p) - borrow;
        borrow = s < 0;
        out->d[k++] = (uint8_t)(s < 0 ? s + 10 : s);
    }
    out->n = k;
    out->scale = sc;
    big_norm(out);
    return 0;
}

static int big_addsub(const big_t *a, const big_t *b, bool sub, big_t *out)
{
    bool bneg = sub ? !b->neg : b->neg;
    int rc;
    if (a->neg == bneg) {
        rc = big_add_abs(a, b, out);
        out->neg = a->neg;
    } else if (big_cmp_abs(a, b) >= 0) {
        rc = big_sub_abs(a, b, out);
        out->neg = a->neg;
    } else {
        rc = big_sub_abs(b, a, out);
        out->neg = bneg;
    }
    big_norm(out);
    return rc;
}

static int big_mul(const big_t *a, const big_t *b, big_t *out)
{
    int n = a->n + b->n;
    int rc = big_reserve(out, n > 0 ? n : 1);
    if (rc)
        return rc;
    uint32_t *acc = calloc((size_t)(n + 1), sizeof(uint32_t));
    if (!acc)
        return TM_ENOMEM;
    for (int i = 0; i < a->n; i++) {
        if (!a->d[i])
            continue;
        for (int j = 0; j < b->n; j++)
            acc[i + j] += (uint32_t)a->d[i] * b->d[j];
        /* Keep the accumulators small: carry every so often. */
        if ((i & 63) == 63) {
            for (int k = 0; k < n; k++) {
                acc[k + 1] += acc[k] / 10;
                acc[k] %= 10;
            }
        }
    }
    uint32_t carry = 0;
    for (int k = 0; k < n; k++) {
        uint32_t s = acc[k] + carry;
        out->d[k] = (uint8_t)(s % 10);
        carry = s / 10;
    }
    free(acc);
    out->n = n;
    out->scale = a->scale + b->scale;
    out->neg = a->neg != b->neg;
    big_norm(out);
    return 0;
}

/*
 * Integer long division of magnitudes: q = floor(num / den), r = num mod den
 * (both as integers, scales ignored).  den must be non-zero.
 */
static int big_divmod_int(const big_t *num, const big_t *den, big_t *q, big_t *r)
{
    int rc = big_reserve(q, num->n > 0 ? num->n : 1);
    if (!rc)
        rc = big_reserve(r, den->n + 2);
    if (rc)
        return rc;
    q->n = num->n;
    q->scale = 0;
    q->neg = false;
    r->n = 0;
    r->scale = 0;
    r->neg = false;
    for (int i = num->n - 1; i >= 0; i--) {
        /* r = r * 10 + digit */
        if (r->n > 0 || num->d[i]) {
            memmove(r->d + 1, r->d, (size_t)r->n);
            r->d[0] = num->d[i];
            r->n++;
            big_norm(r);
        }
        int qd = 0;
        for (;;) {
            /* Compare r with den as integers. */
            int c;
            if (r->n != den->n) {
                c = r->n > den->n ? 1 : -1;
            } else {
                c = 0;
                for (int k = r->n - 1; k >= 0; k--) {
                    if (r->d[k] != den->d[k]) {
                        c = r->d[k] > den->d[k] ? 1 : -1;
                        break;
                    }
                }
            }
            if (c < 0)
                break;
            int borrow = 0;
            for (int k = 0; k < r->n; k++) {
                int s = r->d[k] - (k < den->n ? den->d[k] : 0) - borrow;
                borrow = s < 0;
                r->d[k] = (uint8_t)(s < 0 ? s + 10 : s);
            }
            big_norm(r);
            qd++;
        }
        q->d[i] = (uint8_t)qd;
    }
    big_norm(q);
    return 0;
}

/* Rounds b in place to `s` digits after the point (s may be negative); result scale max(s, 0). */
static int big_round_to(big_t *b, int s, bool trunc)
{
    if (s >= b->scale)
        return big_rescale_up(b, s < 0 ? 0 : s);
    int drop = b->scale - s; /* digits to remove from the bottom */
    int up = 0;
    if (!trunc && drop - 1 < b->n && drop - 1 >= 0)
        up = b->d[drop - 1] >= 5;
    if (drop >= b->n) {
        b->n = 0;
    } else {
        memmove(b->d, b->d + drop, (size_t)(b->n - drop));
        b->n -= drop;
    }
    if (up) {
        int rc = big_reserve(b, b->n + 1);
        if (rc)
            return rc;
        int k = 0;
        for (;; k++) {
            if (k == b->n) {
                b->d[b->n++] = 1;
                break;
            }
            if (b->d[k] == 9) {
                b->d[k] = 0;
            } else {
                b->d[k]++;
                break;
            }
        }
    }
    if (s < 0) {
        /* Put the removed integer positions back as zeros. */
        b->scale = 0;
        big_norm(b);
        int rc = big_shift(b, -s);
        if (rc)
            return rc;
    } else {
        b->scale = s;
    }
    big_norm(b);
    return 0;
}

/* ------------------------------------------------------- public helpers */

void tm_num_from_int(int64_t v, tm_datum_t *out)
{
    memset(out, 0, sizeof(*out));
    out->u.dec = v;
}

void tm_num_from_dec(__int128 v, int scale, tm_datum_t *out)
{
    memset(out, 0, sizeof(*out));
    out->u.dec = v;
    out->scale = (int16_t)scale;
}

static int syntax_error(const char *s, size_t len, char *errstr, size_t errstr_size)
{
    return tm_seterr(errstr, errstr_size, TM_EINVAL,
                     "invalid input syntax for type numeric: \"%.*s\"", (int)(len > 200 ? 200 : len),
                     s);
}

int tm_num_parse(const char *s, size_t len, tm_arena_t *arena, tm_datum_t *out, char *errstr,
                 size_t errstr_size)
{
    big_t b;
    int rc = big_parse(&b, s, len);
    if (rc == 1) {
        big_done(&b);
        return syntax_error(s, len, errstr, errstr_size);
    }
    if (rc == 2) {
        big_done(&b);
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "value overflows numeric format");
    }
    if (rc == 0)
        rc = big_to_datum(&b, arena, out, errstr, errstr_size);
    else
        tm_seterr(errstr, errstr_size, rc, "out of memory");
    big_done(&b);
    return rc;
}

int tm_num_from_double(double v, int digits, tm_arena_t *arena, tm_datum_t *out, char *errstr,
                       size_t errstr_size)
{
    char buf[64];
    if (isnan(v))
        snprintf(buf, sizeof(buf), "NaN");
    else if (isinf(v))
        snprintf(buf, sizeof(buf), "%s", v > 0 ? "Infinity" : "-Infinity");
    else
        snprintf(buf, sizeof(buf), "%.*g", digits, v);
    return tm_num_parse(buf, strlen(buf), arena, out, errstr, errstr_size);
}

size_t tm_num_format(const tm_datum_t *d, char *buf, size_t buflen)
{
    if (!(d->flags & (TM_DATUM_WIDE | TM_DATUM_NAN))) {
        char tmp[48 + 1100];
        size_t n = tm_numeric_format(d, tmp, sizeof(tmp));
        if (buflen > 0) {
            size_t c = n < buflen - 1 ? n : buflen - 1;
            memcpy(buf, tmp, c);
            buf[c] = '\0';
        }
        return n;
    }
    big_t b;
    if (big_from_datum(&b, d) != 0) {
        if (buflen > 0)
            buf[0] = '\0';
        return 0;
    }
    size_t n = big_format(&b, buf, buflen);
    big_done(&b);
    return n;
}

char *tm_num_to_text(const tm_datum_t *d, tm_arena_t *arena, size_t *len)
{
    char tmp[128];
    size_t n = tm_num_format(d, tmp, sizeof(tmp));
    char *p = tm_arena_alloc(arena, n + 1);
    if (!p)
        return NULL;
    if (n < sizeof(tmp))
        memcpy(p, tmp, n + 1);
    else
        tm_num_format(d, p, n + 1);
    if (len)
        *len = n;
    return p;
}

double tm_num_to_double(const tm_datum_t *d)
{
    char tmp[128];
    size_t n = tm_num_format(d, tmp, sizeof(tmp));
    if (n < sizeof(tmp))
        return strtod(tmp, NULL);
    char *p = malloc(n + 1);
    if (!p)
        return NAN;
    tm_num_format(d, p, n + 1);
    double v = strtod(p, NULL);
    free(p);
    return v;
}

static nkind_t datum_kind(const tm_datum_t *d)
{
    if (!(d->flags & TM_DATUM_NAN))
        return NK_FINITE;
    const char *s = d->u.var.ptr ? d->u.var.ptr : "";
    size_t len = d->u.var.len;
    while (len > 0 && isspace((unsigned char)*s)) {
        s++;
        len--;
    }
    if (len > 0 && *s == '-')
        return NK_NINF;
    if (len > 0 && *s == '+')
        s++;
    return (*s == 'n' || *s == 'N') ? NK_NAN : NK_PINF;
}

bool tm_num_is_special(const tm_datum_t *d)
{
    return (d->flags & TM_DATUM_NAN) != 0;
}

int tm_num_sign(const tm_datum_t *d)
{
    switch (datum_kind(d)) {
    case NK_NAN:
        return 0;
    case NK_PINF:
        return 1;
    case NK_NINF:
        return -1;
    default:
        break;
    }
    if (d->flags & TM_DATUM_WIDE) {
        const char *s = d->u.var.ptr;
        size_t i = 0;
        while (i < d->u.var.len && isspace((unsigned char)s[i]))
            i++;
        bool neg = i < d->u.var.len && s[i] == '-';
        for (; i < d->u.var.len; i++)
            if (s[i] >= '1' && s[i] <= '9')
                return neg ? -1 : 1;
            else if (s[i] == 'e' || s[i] == 'E')
                break;
        return 0;
    }
    return d->u.dec > 0 ? 1 : d->u.dec < 0 ? -1 : 0;
}

/* 10^k for 0 <= k <= 38 (computed, so there is no shared table to initialise across threads). */
static __int128 pow10i(int k)
{
    __int128 v = 1;
    while (k-- > 0)
        v *= 10;
    return v;
}

/* v * 10^k without overflow, or false. */
static bool scale_up(__int128 v, int k, __int128 *out)
{
    if (k < 0 || k > 38)
        return false;
    return !__builtin_mul_overflow(v, pow10i(k), out);
}

static int special_rank(nkind_t k)
{
    return k == NK_NAN ? 3 : k == NK_PINF ? 2 : k == NK_NINF ? -2 : 0;
}

int tm_num_cmp(const tm_datum_t *a, const tm_datum_t *b)
{
    nkind_t ka = datum_kind(a), kb = datum_kind(b);
    if (ka != NK_FINITE || kb != NK_FINITE) {
        int ra = special_rank(ka), rb = special_rank(kb);
        if (ka == NK_FINITE)
            ra = 0;
        if (kb == NK_FINITE)
            rb = 0;
        return ra < rb ? -1 : ra > rb;
    }
    if (!((a->flags | b->flags) & TM_DATUM_WIDE)) {
        __int128 x = a->u.dec, y = b->u.dec;
        bool ok = true;
        if (a->scale < b->scale)
            ok = scale_up(x, b->scale - a->scale, &x);
        else if (b->scale < a->scale)
            ok = scale_up(y, a->scale - b->scale, &y);
        if (ok)
            return x < y ? -1 : x > y;
    }
    big_t x, y;
    if (big_from_datum(&x, a) || big_from_datum(&y, b)) {
        /* Out of memory: fall back to comparing doubles rather than failing. */
        big_done(&x);
        double p = tm_num_to_double(a), q = tm_num_to_double(b);
        return p < q ? -1 : p > q;
    }
    int c;
    if (x.neg != y.neg)
        c = x.neg ? -1 : 1;
    else
        c = x.neg ? -big_cmp_abs(&x, &y) : big_cmp_abs(&x, &y);
    big_done(&x);
    big_done(&y);
    return c;
}

uint64_t tm_num_hash(const tm_datum_t *d, uint64_t seed)
{
    nkind_t k = datum_kind(d);
    if (k != NK_FINITE) {
        uint8_t tag = (uint8_t)(0xF0 | k);
        return tm_xxh64(&tag, 1, seed);
    }
    __int128 v;
    int scale;
    big_t b;
    bool have_big = false;
    if (d->flags & TM_DATUM_WIDE) {
        if (big_from_datum(&b, d) != 0)
            return seed;
        have_big = true;
        /* Strip zero fraction digits so that equal values share one form. */
        int z = 0;
        while (z < b.n && z < b.scale && b.d[z] == 0)
            z++;
        if (z) {
            memmove(b.d, b.d + z, (size_t)(b.n - z));
            b.n -= z;
            b.scale -= z;
        }
        big_norm(&b);
        if (!big_to_i128(&b, &v)) {
            uint64_t h = tm_xxh64(b.d, (size_t)b.n, seed);
            int32_t meta[2] = {b.scale, b.neg};
            h = tm_xxh64(meta, sizeof(meta), h);
            big_done(&b);
            return h;
        }
        scale = b.scale;
    } else {
        v = d->u.dec;
        scale = d->scale;
    }
    if (have_big)
        big_done(&b);
    while (scale > 0 && v % 10 == 0) {
        v /= 10;
        scale--;
    }
    if (v == 0)
        scale = 0;
    uint8_t buf[20];
    unsigned __int128 u = (unsigned __int128)v;
    for (int i = 0; i < 16; i++)
        buf[i] = (uint8_t)(u >> (8 * i));
    int32_t s32 = scale;
    memcpy(buf + 16, &s32, 4);
    return tm_xxh64(buf, sizeof(buf), seed);
}

/* ---------------------------------------------------------- arithmetic */

static int make_special(nkind_t k, tm_datum_t *out)
{
    big_t b;
    big_init(&b);
    b.kind = k;
    return big_to_datum(&b, NULL, out, NULL, 0);
}

static int finish_big(big_t *r, tm_arena_t *arena, tm_datum_t *out, char *errstr,
                      size_t errstr_size)
{
    int rc = big_to_datum(r, arena, out, errstr, errstr_size);
    big_done(r);
    return rc;
}

static int nomem(char *errstr, size_t errstr_size)
{
    return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
}

/*
 * The end of a binary operation: releases its operands x and y, then turns
 * the result r into the datum (rc != 0: the operation ran out of memory).
 */
static int finish_pair(big_t *x, big_t *y, int rc, big_t *r, tm_arena_t *arena, tm_datum_t *out,
                       char *errstr, size_t errstr_size)
{
    big_done(x);
    big_done(y);
    if (rc) {
        big_done(r);
        return nomem(errstr, errstr_size);
    }
    return finish_big(r, arena, out, errstr, errstr_size);
}

static int addsub(const tm_datum_t *a, const tm_datum_t *b, bool sub, tm_arena_t *arena,
                  tm_datum_t *out, char *errstr, size_t errstr_size)
{
    nkind_t ka = datum_kind(a), kb = datum_kind(b);
    if (ka != NK_FINITE || kb != NK_FINITE) {
        if (ka == NK_NAN || kb == NK_NAN)
            return make_special(NK_NAN, out);
        if (sub && kb != NK_FINITE)
            kb = kb == NK_PINF ? NK_NINF : NK_PINF;
        if (ka != NK_FINITE && kb != NK_FINITE)
            return make_special(ka == kb ? ka : NK_NAN, out);
        return make_special(ka != NK_FINITE ? ka : kb, out);
    }
    if (!((a->flags | b->flags) & TM_DATUM_WIDE)) {
        __int128 x = a->u.dec, y = b->u.dec, r;
        int sc = a->scale > b->scale ? a->scale : b->scale;
        if (scale_up(x, sc - a->scale, &x) && scale_up(y, sc - b->scale, &y) &&
            !(sub ? __builtin_sub_overflow(x, y, &r) : __builtin_add_overflow(x, y, &r))) {
            tm_num_from_dec(r, sc, out);
            return 0;
        }
    }
    big_t x, y, r;
    big_init(&r);
    if (big_from_pair(&x, &y, a, b))
        return nomem(errstr, errstr_size);
    int rc = big_addsub(&x, &y, sub, &r);
    return finish_pair(&x, &y, rc, &r, arena, out, errstr, errstr_size);
}

int tm_num_add(const tm_datum_t *a, const tm_datum_t *b, tm_arena_t *arena, tm_datum_t *out,
               char *errstr, size_t errstr_size)
{
    return addsub(a, b, false, arena, out, errstr, errstr_size);
}

int tm_num_sub(const tm_datum_t *a, const tm_datum_t *b, tm_arena_t *arena, tm_datum_t *out,
               char *errstr, size_t errstr_size)
{
    return addsub(a, b, true, arena, out, errstr, errstr_size);
}

int tm_num_mul(const tm_datum_t *a, const tm_datum_t *b, tm_arena_t *arena, tm_datum_t *out,
               char *errstr, size_t errstr_size)
{
    nkind_t ka = datum_kind(a), kb = datum_kind(b);
    if (ka != NK_FINITE || kb != NK_FINITE) {
        if (ka == NK_NAN || kb == NK_NAN)
            return make_special(NK_NAN, out);
        int sa = tm_num_sign(a), sb = tm_num_sign(b);
        if (sa == 0 || sb == 0)
            return make_special(NK_NAN, out);
        return make_special(sa * sb > 0 ? NK_PINF : NK_NINF, out);
    }
    if (!((a->flags | b->flags) & TM_DATUM_WIDE)) {
        __int128 r;
        if (!__builtin_mul_overflow(a->u.dec, b->u.dec, &r) &&
            a->scale + b->scale <= MAX_INPUT_SCALE) {
            tm_num_from_dec(r, a->scale + b->scale, out);
            return 0;
        }
    }
    big_t x, y, r;
    big_init(&r);
    if (big_from_pair(&x, &y, a, b))
        return nomem(errstr, errstr_size);
    int rc = big_mul(&x, &y, &r);
    return finish_pair(&x, &y, rc, &r, arena, out, errstr, errstr_size);
}

/* Weight (base 10000) and first base-10000 digit of a finite non-zero big, as PostgreSQL stores it. */
static void big_weight(const big_t *b, int *weight, int *first)
{
    if (b->n == 0) {
        *weight = 0;
        *first = 0;
        return;
    }
    int e10 = b->n - 1 - b->scale; /* position of the most significant digit */
    int w = e10 >= 0 ? e10 / 4 : -((-e10 + 3) / 4);
    int f = 0;
    for (int p = e10; p >= 4 * w; p--)
        f = f * 10 + big_at(b, p);
    *weight = w;
    *first = f;
}

static int div_scale_big(const big_t *x, const big_t *y)
{
    int w1, f1, w2, f2;
    big_weight(x, &w1, &f1);
    big_weight(y, &w2, &f2);
    int qweight = w1 - w2;
    if (f1 <= f2)
        qweight--;
    int rscale = 16 - qweight * 4;
    if (rscale < x->scale)
        rscale = x->scale;
    if (rscale < y->scale)
        rscale = y->scale;
    if (rscale < 0)
        rscale = 0;
    if (rscale > TM_NUM_MAX_SCALE)
        rscale = TM_NUM_MAX_SCALE;
    return rscale;
}

int tm_num_select_div_scale(const tm_datum_t *a, const tm_datum_t *b)
{
    big_t x, y;
    if (big_from_pair(&x, &y, a, b))
        return 16;
    int s = div_scale_big(&x, &y);
    big_done(&x);
    big_done(&y);
    return s;
}

/* Exact x / y rounded half away from zero to rscale digits, into r. */
static int big_div_round(const big_t *x, const big_t *y, int rscale, bool trunc, big_t *r)
{
    /* q = floor(|X| * 10^e / |Y|) with one guard digit beyond rscale. */
    big_t num, den, rem;
    big_init(&num);
    big_init(&den);
    big_init(&rem);
    int guard = trunc ? 0 : 1;
    int e = y->scale + rscale + guard - x->scale;
    int rc = big_copy(&num, x);
    if (!rc)
        rc = big_copy(&den, y);
    if (!rc)
        rc = e >= 0 ? big_shift(&num, e) : big_shift(&den, -e);
    if (!rc)
        rc = big_divmod_int(&num, &den, r, &rem);
    big_done(&num);
    big_done(&den);
    big_done(&rem);
    if (rc)
        return rc;
    r->scale = rscale + guard;
    r->neg = x->neg != y->neg;
    if (!trunc)
        rc = big_round_to(r, rscale, false);
    big_norm(r);
    return rc;
}

/* Weight and first base-10000 group of |v| at scale s, as big_weight() finds them. */
static void dec_weight(__int128 v, int s, int *weight, int *first)
{
    unsigned __int128 u = v < 0 ? -(unsigned __int128)v : (unsigned __int128)v;
    if (u == 0) {
        *weight = 0;
        *first = 0;
        return;
    }
    int nd = 1;
    for (unsigned __int128 t = 10; nd < 39 && u >= t; t *= 10)
        nd++;
    int e10 = nd - 1 - s; /* position of the most significant digit */
    int w = e10 >= 0 ? e10 / 4 : -((-e10 + 3) / 4);
    int k = 4 * w + s; /* where the first group's lowest digit is in u */
    *weight = w;
    *first = (int)(k >= 0 ? u / (unsigned __int128)pow10i(k) : u * (unsigned __int128)pow10i(-k));
}

/*
 * a / b in 128 bits, as big_div_round() computes it (rounded half away from
 * zero at rscale; the scale chosen as div_scale_big() does unless `fixed`),
 * when every intermediate fits; false otherwise, for the exact slow path.
 * avg() divides like this for every group it emits.
 */
static bool div_fast(const tm_datum_t *a, const tm_datum_t *b, int rscale, bool fixed,
                     tm_datum_t *out)
{
    if ((a->flags | b->flags) & TM_DATUM_WIDE)
        return false;
    if (!fixed) {
        int w1, f1, w2, f2;
        dec_weight(a->u.dec, a->scale, &w1, &f1);
        dec_weight(b->u.dec, b->scale, &w2, &f2);
        int qweight = w1 - w2 - (f1 <= f2);
        rscale = 16 - qweight * 4;
        if (rscale < a->scale)
            rscale = a->scale;
        if (rscale < b->scale)
            rscale = b->scale;
        if (rscale < 0)
            rscale = 0;
        if (rscale > TM_NUM_MAX_SCALE)
            rscale = TM_NUM_MAX_SCALE;
    }
    __int128 x = a->u.dec, y = b->u.dec;
    unsigned __int128 num = x < 0 ? -(unsigned __int128)x : (unsigned __int128)x;
    unsigned __int128 den = y < 0 ? -(unsigned __int128)y : (unsigned __int128)y;
    int e = b->scale + rscale - a->scale;
    if (e > 38 || e < -38 ||
        __builtin_mul_overflow(e >= 0 ? num : den, (unsigned __int128)pow10i(e >= 0 ? e : -e),
                               e >= 0 ? &num : &den))
        return false;
    unsigned __int128 q = num / den, r = num % den;
    if (r >= den - r)
        q++; /* the remainder is at least half the divisor */
    if (q > (unsigned __int128)I128_MAX)
        return false;
    tm_num_from_dec((x < 0) != (y < 0) ? -(__int128)q : (__int128)q, rscale, out);
    return true;
}

static int div_common(const tm_datum_t *a, const tm_datum_t *b, int rscale, bool fixed,
                      tm_arena_t *arena, tm_datum_t *out, char *errstr, size_t errstr_size)
{
    nkind_t ka = datum_kind(a), kb = datum_kind(b);
    if (ka != NK_FINITE || kb != NK_FINITE) {
        if (ka == NK_NAN || kb == NK_NAN)
            return make_special(NK_NAN, out);
        if (ka != NK_FINITE) {
            if (kb != NK_FINITE)
                return make_special(NK_NAN, out);
            int sb = tm_num_sign(b);
            if (sb == 0)
                return tm_seterr(errstr, errstr_size, TM_EINVAL, "division by zero");
            return make_special((ka == NK_PINF) == (sb > 0) ? NK_PINF : NK_NINF, out);
        }
        tm_num_from_int(0, out);
        return 0;
    }
    if (tm_num_sign(b) == 0)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "division by zero");
    if (div_fast(a, b, rscale, fixed, out))
        return 0;
    big_t x, y, r;
    big_init(&r);
    if (big_from_pair(&x, &y, a, b))
        return nomem(errstr, errstr_size);
    if (!fixed)
        rscale = div_scale_big(&x, &y);
    int rc = big_div_round(&x, &y, rscale, false, &r);
    return finish_pair(&x, &y, rc, &r, arena, out, errstr, errstr_size);
}

int tm_num_div(const tm_datum_t *a, const tm_datum_t *b, tm_arena_t *arena, tm_datum_t *out,
               char *errstr, size_t errstr_size)
{
    return div_common(a, b, 0, false, arena, out, errstr, errstr_size);
}

int tm_num_div_scale(const tm_datum_t *a, const tm_datum_t *b, int rscale, tm_arena_t *arena,
                     tm_datum_t *out, char *errstr, size_t errstr_size)
{
    if (rscale < 0)
        rscale = 0;
    if (rscale > TM_NUM_MAX_SCALE)
        rscale = TM_NUM_MAX_SCALE;
    return div_common(a, b, rscale, true, arena, out, errstr, errstr_size);
}

int tm_num_mod(const tm_datum_t *a, const tm_datum_t *b, tm_arena_t *arena, tm_datum_t *out,
               char *errstr, size_t errstr_size)
{
    nkind_t ka = datum_kind(a), kb = datum_kind(b);
    if (ka != NK_FINITE || kb != NK_FINITE) {
        if (ka == NK_NAN || kb == NK_NAN)
            return make_special(NK_NAN, out);
        if (ka != NK_FINITE)
            return make_special(NK_NAN, out);
        *out = *a; /* x % ±Infinity = x */
        return 0;
    }
    if (tm_num_sign(b) == 0)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "division by zero");
    if (!((a->flags | b->flags) & TM_DATUM_WIDE)) {
        __int128 x = a->u.dec, y = b->u.dec;
        int sc = a->scale > b->scale ? a->scale : b->scale;
        if (scale_up(x, sc - a->scale, &x) && scale_up(y, sc - b->scale, &y)) {
            tm_num_from_dec(x % y, sc, out);
            return 0;
        }
    }
    big_t x, y, q, r;
    big_init(&q);
    big_init(&r);
    if (big_from_pair(&x, &y, a, b))
        return nomem(errstr, errstr_size);
    int sc = x.scale > y.scale ? x.scale : y.scale;
    int rc = big_rescale_up(&x, sc);
    if (!rc)
        rc = big_rescale_up(&y, sc);
    if (!rc)
        rc = big_divmod_int(&x, &y, &q, &r);
    r.scale = sc;
    r.neg = x.neg;
    big_norm(&r);
    big_done(&q);
    return finish_pair(&x, &y, rc, &r, arena, out, errstr, errstr_size);
}

int tm_num_neg(const tm_datum_t *a, tm_arena_t *arena, tm_datum_t *out, char *errstr,
               size_t errstr_size)
{
    nkind_t k = datum_kind(a);
    if (k == NK_NAN)
        return make_special(NK_NAN, out);
    if (k != NK_FINITE)
        return make_special(k == NK_PINF ? NK_NINF : NK_PINF, out);
    if (!(a->flags & TM_DATUM_WIDE)) {
        /* -(-2^127) cannot occur: values are at most 2^127-1 in magnitude by construction. */
        if (a->u.dec != -I128_MAX - 1) {
            tm_num_from_dec(-a->u.dec, a->scale, out);
            return 0;
        }
    }
    big_t x;
    if (big_from_datum(&x, a))
        return nomem(errstr, errstr_size);
    if (x.n)
        x.neg = !x.neg;
    return finish_big(&x, arena, out, errstr, errstr_size);
}

int tm_num_abs(const tm_datum_t *a, tm_arena_t *arena, tm_datum_t *out, char *errstr,
               size_t errstr_size)
{
    if (tm_num_sign(a) < 0)
        return tm_num_neg(a, arena, out, errstr, errstr_size);
    *out = *a;
    return 0;
}

typedef enum rmode { RM_ROUND, RM_TRUNC, RM_FLOOR, RM_CEIL } rmode_t;

static int round_common(const tm_datum_t *a, int n, rmode_t mode, tm_arena_t *arena,
                        tm_datum_t *out, char *errstr, size_t errstr_size)
{
    if (datum_kind(a) != NK_FINITE) {
        *out = *a;
        return 0;
    }
    if (n > TM_NUM_MAX_SCALE)
        n = TM_NUM_MAX_SCALE;
    if (n < -TM_NUM_MAX_INT_DIGITS)
        n = -TM_NUM_MAX_INT_DIGITS;
    big_t x;
    if (big_from_datum(&x, a))
        return nomem(errstr, errstr_size);
    int rc;
    if (mode == RM_ROUND) {
        rc = big_round_to(&x, n, false);
    } else {
        /* Truncate toward zero; floor and ceil then step one unit away when digits were lost. */
        big_t t;
        big_init(&t);
        rc = big_copy(&t, &x);
        if (!rc)
            rc = big_round_to(&t, n, true);
        bool lost = !rc && big_cmp_abs(&t, &x) != 0;
        bool step = lost && ((mode == RM_FLOOR && x.neg) || (mode == RM_CEIL && !x.neg));
        big_done(&x);
        x = t;
        if (t.d == t.small)
            x.d = x.small;
        if (!rc && step) {
            big_t one, r;
            big_init(&r);
            big_from_i128(&one, x.neg || (mode == RM_FLOOR) ? -1 : 1, 0);
            rc = big_addsub(&x, &one, false, &r);
            big_done(&one);
            big_done(&x);
            x = r;
            if (r.d == r.small)
                x.d = x.small;
        }
    }
    if (rc) {
        big_done(&x);
        return nomem(errstr, errstr_size);
    }
    return finish_big(&x, arena, out, errstr, errstr_size);
}

int tm_num_round(const tm_datum_t *a, int n, tm_arena_t *arena, tm_datum_t *out, char *errstr,
                 size_t errstr_size)
{
    return round_common(a, n, RM_ROUND, arena, out, errstr, errstr_size);
}

int tm_num_trunc(const tm_datum_t *a, int n, tm_arena_t *arena, tm_datum_t *out, char *errstr,
                 size_t errstr_size)
{
    return round_common(a, n, RM_TRUNC, arena, out, errstr, errstr_size);
}

int tm_num_floor(const tm_datum_t *a, tm_arena_t *arena, tm_datum_t *out, char *errstr,
                 size_t errstr_size)
{
    return round_common(a, 0, RM_FLOOR, arena, out, errstr, errstr_size);
}

int tm_num_ceil(const tm_datum_t *a, tm_arena_t *arena, tm_datum_t *out, char *errstr,
                size_t errstr_size)
{
    return round_common(a, 0, RM_CEIL, arena, out, errstr, errstr_size);
}

/* ---------------------------------------------------------- sqrt and power */

static bool big_is_zero(const big_t *b)
{
    return b->n == 0;
}

static bool big_is_integral(const big_t *b)
{
    for (int i = 0; i < b->scale && i < b->n; i++)
        if (b->d[i] != 0)
            return false;
    return true;
}

/* The integral value of b when it is within [-2^31, 2^31 - 1]. */
static bool big_to_int32(const big_t *b, int32_t *out)
{
    int64_t v = 0;
    for (int p = b->n - 1 - b->scale; p >= 0; p--) {
        v = v * 10 + big_at(b, p);
        if (v > (int64_t)INT32_MAX + 1)
            return false;
    }
    if (b->neg)
        v = -v;
    if (v < INT32_MIN || v > INT32_MAX)
        return false;
    *out = (int32_t)v;
    return true;
}

/* log10 |b| for a finite non-zero b, from its leading digits (for size estimates only). */
static double big_log10_abs(const big_t *b)
{
    double m = 0;
    int k = 0;
    for (int i = b->n - 1; i >= 0 && k < 17; i--, k++)
        m = m * 10 + b->d[i];
    return log10(m) + (double)(b->n - k - b->scale);
}

/* The result 1 (scale 0), as PostgreSQL returns it for 1 ^ x and x ^ 0 with a special input. */
static int num_one(tm_datum_t *out)
{
    tm_num_from_int(1, out);
    return 0;
}

/* q = floor(sqrt(n)) for an integer n >= 0 (scale 0), by Newton's iteration from above. */
static int big_isqrt(const big_t *n, big_t *q)
{
    big_t x, t, r, sum, two;
    big_init(&x);
    big_init(&t);
    big_init(&r);
    big_init(&sum);
    big_from_i128(&two, 2, 0);
    /* 10^k with 2k >= digits of n is at least sqrt(n). */
    int k = (n->n + 1) / 2;
    int rc = big_reserve(&x, k + 1);
    if (rc)
        goto done;
    memset(x.d, 0, (size_t)k + 1);
    x.d[k] = 1;
    x.n = k + 1;
    if (big_is_zero(n)) {
        x.n = 0;
    } else {
        for (;;) {
            if ((rc = big_divmod_int(n, &x, &t, &r)) != 0 || (rc = big_add_abs(&x, &t, &sum)) != 0 ||
                (rc = big_divmod_int(&sum, &two, &t, &r)) != 0)
                goto done;
            if (big_cmp_abs(&t, &x) >= 0)
                break;
            if ((rc = big_copy(&x, &t)) != 0)
                goto done;
        }
    }
    rc = big_copy(q, &x);
done:
    big_done(&x);
    big_done(&t);
    big_done(&r);
    big_done(&sum);
    big_done(&two);
    return rc;
}

int tm_num_sqrt(const tm_datum_t *a, tm_arena_t *arena, tm_datum_t *out, char *errstr,
                size_t errstr_size)
{
    nkind_t k = datum_kind(a);
    if (k == NK_NAN)
        return make_special(NK_NAN, out);
    if (tm_num_sign(a) < 0)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "cannot take square root of a negative number");
    if (k == NK_PINF)
        return make_special(NK_PINF, out);
    big_t x, q, sq, rem, one;
    if (big_from_datum(&x, a))
        return nomem(errstr, errstr_size);
    big_init(&q);
    big_init(&sq);
    big_init(&rem);
    big_from_i128(&one, 1, 0);
    /* numeric_sqrt: at least NUMERIC_MIN_SIG_DIGITS (16) significant digits, no fewer than the
     * input's scale; the weight is PostgreSQL's, in base-10000 digits. */
    int w, f;
    big_weight(&x, &w, &f);
    int rscale = 16 - (2 * w + 1);
    if (rscale < x.scale)
        rscale = x.scale;
    if (rscale < 0)
        rscale = 0;
    if (rscale > TM_NUM_MAX_SCALE)
        rscale = TM_NUM_MAX_SCALE;
    /* sqrt(X / 10^s) * 10^rscale = sqrt(X * 10^(2 rscale - s)): an integer square root, then
     * half up from the remainder (sqrt(N) >= q + 1/2 exactly when N - q^2 > q). */
    int rc = big_shift(&x, 2 * rscale - x.scale);
    x.scale = 0;
    if (!rc)
        rc = big_isqrt(&x, &q);
    if (!rc)
        rc = big_mul(&q, &q, &sq);
    if (!rc)
        rc = big_sub_abs(&x, &sq, &rem);
    if (!rc && big_cmp_abs(&rem, &q) > 0) {
        big_t up;
        big_init(&up);
        rc = big_add_abs(&q, &one, &up);
        if (!rc)
            rc = big_copy(&q, &up);
        big_done(&up);
    }
    big_done(&x);
    big_done(&sq);
    big_done(&rem);
    big_done(&one);
    if (rc) {
        big_done(&q);
        return nomem(errstr, errstr_size);
    }
    q.scale = rscale;
    q.neg = false;
    big_norm(&q);
    return finish_big(&q, arena, out, errstr, errstr_size);
}

/* Digits an exact integer power may have before power() gives up rather than spend the time. */
#define POWER_MAX_EXACT_DIGITS 20000

/* x ^ e for an int32 e: the exact power rounded to rscale (PostgreSQL's power_var_int result). */
static int power_int(const big_t *x, int32_t e, int rscale, big_t *r, char *errstr,
                     size_t errstr_size)
{
    if (e == 0 || (x->n == 1 && x->scale == 0 && x->d[0] == 1 && !x->neg)) {
        big_from_i128(r, 1, 0);
        return big_round_to(r, rscale, false) ? nomem(errstr, errstr_size) : 0;
    }
    uint32_t n = e < 0 ? (uint32_t)0 - (uint32_t)e : (uint32_t)e;
    if (big_is_zero(x)) {
        big_init(r);
        r->scale = rscale; /* 0 ^ positive */
        return 0;
    }
    double est = (double)e * big_log10_abs(x); /* log10 of the result */
    if (est > TM_NUM_MAX_INT_DIGITS + 1)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "value overflows numeric format");
    if (est < -(double)rscale - 2) {
        big_init(r); /* rounds to zero at rscale */
        r->scale = rscale;
        return 0;
    }
    if ((double)n * (x->n + 1) > POWER_MAX_EXACT_DIGITS)
        return tm_seterr(errstr, errstr_size, TM_EUNSUPPORTED,
                         "power(numeric, %d): the exact power would have more than %d digits; "
                         "cast the arguments to double precision",
                         e, POWER_MAX_EXACT_DIGITS);
    /* Square and multiply, exactly. */
    big_t acc, base, t;
    big_from_i128(&acc, 1, 0);
    big_init(&base);
    big_init(&t);
    int rc = big_copy(&base, x);
    for (uint32_t m = n; rc == 0 && m; m >>= 1) {
        if (m & 1) {
            rc = big_mul(&acc, &base, &t);
            if (!rc)
                rc = big_copy(&acc, &t);
        }
        if (!rc && m > 1) {
            rc = big_mul(&base, &base, &t);
            if (!rc)
                rc = big_copy(&base, &t);
        }
    }
    big_done(&base);
    big_done(&t);
    if (!rc) {
        if (e > 0) {
            rc = big_copy(r, &acc);
            if (!rc)
                rc = big_round_to(r, rscale, false);
        } else {
            big_t one;
            big_from_i128(&one, 1, 0);
            rc = big_div_round(&one, &acc, rscale, false, r);
            big_done(&one);
        }
    }
    big_done(&acc);
    return rc ? nomem(errstr, errstr_size) : 0;
}

#ifdef TM_HAVE_QUADMATH
#include <quadmath.h>

/* exp(y * ln x) for x > 0 and a non-integral y, in binary128, rounded to PostgreSQL's scale. */
static int power_real(const big_t *x, const big_t *y, big_t *r, char *errstr, size_t errstr_size)
{
    char *xs = NULL, *ys = NULL, buf[128];
    size_t xn = big_format(x, NULL, 0), yn = big_format(y, NULL, 0);
    xs = malloc(xn + 1);
    ys = malloc(yn + 1);
    if (!xs || !ys) {
        free(xs);
        free(ys);
        return nomem(errstr, errstr_size);
    }
    big_format(x, xs, xn + 1);
    big_format(y, ys, yn + 1);
    __float128 ln_num = logq(strtoflt128(xs, NULL)) * strtoflt128(ys, NULL);
    free(xs);
    free(ys);
    /* power_var: overflow and underflow tests on ln(result), then the result's decimal weight
     * picks the scale: 16 significant digits, no fewer than either input's scale. */
    double val = (double)ln_num;
    if (fabs(val) > 1000 * 2 * 3.01) {
        if (val > 0)
            return tm_seterr(errstr, errstr_size, TM_EINVAL, "value overflows numeric format");
        big_init(r);
        r->scale = TM_NUM_MAX_SCALE;
        return 0;
    }
    val *= 0.434294481903252;
    int rscale = 16 - (int)val;
    if (rscale < x->scale)
        rscale = x->scale;
    if (rscale < y->scale)
        rscale = y->scale;
    if (rscale < 0)
        rscale = 0;
    if (rscale > TM_NUM_MAX_SCALE)
        rscale = TM_NUM_MAX_SCALE;
    if (rscale + (int)val > 28)
        return tm_seterr(errstr, errstr_size, TM_EUNSUPPORTED,
                         "power(numeric, numeric): a non-integer exponent is computed to 28 "
                         "significant digits and this result needs %d; cast to double precision",
                         rscale + (int)val);
    quadmath_snprintf(buf, sizeof(buf), "%.33Qe", expq(ln_num));
    big_init(r);
    int rc = big_parse(r, buf, strlen(buf));
    if (rc == TM_ENOMEM)
        return nomem(errstr, errstr_size);
    if (rc != 0 || r->kind != NK_FINITE)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "value overflows numeric format");
    return big_round_to(r, rscale, false) ? nomem(errstr, errstr_size) : 0;
}
#else
static int power_real(const big_t *x, const big_t *y, big_t *r, char *errstr, size_t errstr_size)
{
    (void)x;
    (void)y;
    (void)r;
    return tm_seterr(errstr, errstr_size, TM_EUNSUPPORTED,
                     "power(numeric, numeric) with a non-integer exponent needs libquadmath, "
                     "which this build lacks; cast to double precision");
}
#endif

/* numeric_power's rules for NaN and ±Infinity (PostgreSQL 15). */
static int power_special(const tm_datum_t *a, const tm_datum_t *b, const big_t *x, const big_t *y,
                         tm_datum_t *out, char *errstr, size_t errstr_size)
{
    nkind_t ka = datum_kind(a), kb = datum_kind(b);
    if (ka == NK_NAN)
        return kb == NK_FINITE && big_is_zero(y) ? num_one(out) : make_special(NK_NAN, out);
    if (kb == NK_NAN) {
        bool one = ka == NK_FINITE && !x->neg && x->n - x->scale == 1 && x->d[x->n - 1] == 1 &&
                   big_is_integral(x);
        return one ? num_one(out) : make_special(NK_NAN, out);
    }
    int sa = tm_num_sign(a), sb = tm_num_sign(b);
    if (sa == 0 && sb < 0)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "zero raised to a negative power is undefined");
    if (sa < 0 && kb == NK_FINITE && !big_is_integral(y))
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "a negative number raised to a non-integer power yields a complex result");
    if (ka == NK_FINITE && !x->neg && x->n - x->scale == 1 && x->d[x->n - 1] == 1 &&
        big_is_integral(x))
        return num_one(out);
    if (kb == NK_FINITE && big_is_zero(y))
        return num_one(out);
    if (kb != NK_FINITE) {
        /* x ^ ±Infinity: 1 when |x| = 1, else by whether |x| > 1. */
        int gt_one = 1;
        if (ka == NK_FINITE) {
            big_t one;
            big_from_i128(&one, 1, 0);
            gt_one = big_cmp_abs(x, &one);
            big_done(&one);
        }
        if (gt_one == 0)
            return num_one(out);
        if ((gt_one > 0) == (sb > 0))
            return make_special(NK_PINF, out);
        tm_num_from_int(0, out);
        return 0;
    }
    /* ±Infinity ^ finite non-zero y. */
    if (sb < 0) {
        tm_num_from_int(0, out);
        return 0;
    }
    if (ka == NK_PINF)
        return make_special(NK_PINF, out);
    bool odd = big_is_integral(y) && (big_at(y, 0) & 1);
    return make_special(odd ? NK_NINF : NK_PINF, out);
}

int tm_num_power(const tm_datum_t *a, const tm_datum_t *b, tm_arena_t *arena, tm_datum_t *out,
                 char *errstr, size_t errstr_size)
{
    big_t x, y, r;
    if (big_from_pair(&x, &y, a, b))
        return nomem(errstr, errstr_size);
    big_init(&r);
    int rc;
    if (datum_kind(a) != NK_FINITE || datum_kind(b) != NK_FINITE) {
        rc = power_special(a, b, &x, &y, out, errstr, errstr_size);
        goto done;
    }
    if (big_is_zero(&x) && y.neg && !big_is_zero(&y)) {
        rc = tm_seterr(errstr, errstr_size, TM_EINVAL,
                       "zero raised to a negative power is undefined");
        goto done;
    }
    int32_t e;
    if (big_is_integral(&y) && big_to_int32(&y, &e)) {
        int rscale = x.scale > 16 ? x.scale : 16;
        if (rscale > TM_NUM_MAX_SCALE)
            rscale = TM_NUM_MAX_SCALE;
        rc = power_int(&x, e, rscale, &r, errstr, errstr_size);
    } else if (big_is_zero(&x)) {
        r.scale = 16; /* 0 ^ positive non-integer */
        rc = 0;
    } else if (x.neg) {
        rc = tm_seterr(errstr, errstr_size, TM_EINVAL,
                       "a negative number raised to a non-integer power yields a complex result");
    } else {
        rc = power_real(&x, &y, &r, errstr, errstr_size);
    }
    if (rc == 0) {
        big_norm(&r);
        rc = big_to_datum(&r, arena, out, errstr, errstr_size);
    }
done:
    big_done(&x);
    big_done(&y);
    big_done(&r);
    return rc;
}

int tm_num_apply_typmod(const tm_datum_t *a, int precision, int scale, tm_arena_t *arena,
                        tm_datum_t *out, char *errstr, size_t errstr_size)
{
    if (precision < 0) {
        *out = *a;
        return 0;
    }
    nkind_t k = datum_kind(a);
    if (k != NK_FINITE) {
        if (k == NK_NAN) {
            *out = *a;
            return 0;
        }
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "numeric field overflow");
    }
    tm_datum_t r;
    int rc = tm_num_round(a, scale, arena, &r, errstr, errstr_size);
    if (rc)
        return rc;
    /* Integer digits of the rounded value must be at most precision - scale. */
    int maxint = precision - scale;
    bool over;
    if (!(r.flags & TM_DATUM_WIDE)) {
        __int128 v = r.u.dec < 0 ? -r.u.dec : r.u.dec;
        int digits = 0;
        while (v) {
            digits++;
            v /= 10;
        }
        over = digits - r.scale > maxint;
    } else {
        big_t x;
        if (big_from_datum(&x, &r))
            return nomem(errstr, errstr_size);
        over = x.n - x.scale > maxint;
        big_done(&x);
    }
    if (over)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "numeric field overflow");
    *out = r;
    return 0;
}

int tm_num_to_int(const tm_datum_t *d, int64_t min, int64_t max, const char *type_name,
                  int64_t *out, char *errstr, size_t errstr_size)
{
    nkind_t k = datum_kind(d);
    if (k == NK_NAN)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "cannot convert NaN to %s", type_name);
    if (k != NK_FINITE)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "cannot convert infinity to %s",
                         type_name);
    tm_datum_t r;
    char tmp[16];
    if (tm_num_round(d, 0, NULL, &r, tmp, sizeof(tmp)) != 0 || (r.flags & TM_DATUM_WIDE) ||
        r.u.dec < min || r.u.dec > max)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "%s out of range", type_name);
    *out = (int64_t)r.u.dec;
    return 0;
}
