/*
 * func.c — the function table {name, argument types, result type,
 * implementation}, PostgreSQL-style overload resolution over it, close-name
 * suggestions, and the implementations of the scalar functions and of the
 * operators (arithmetic, comparison, LIKE, ||, JSON).
 *
 * Resolution (PostgreSQL's "Function Type Resolution", restricted to tm's
 * types): candidates with the right name and arity whose every argument is
 * an unknown literal, an exact match or an implicit cast; keep those with
 * the most exact matches, then those taking preferred types where a cast is
 * needed, then those taking the string category at unknown positions.  One
 * left wins; none is "does not exist"; several is "is not unique".
 *
 * Invariants:
 *   1. Implementations see arguments of exactly their declared types (the
 *      builder inserted the casts) and never see NULL unless the entry is
 *      TM__FN_NONSTRICT.
 *   2. Text functions count characters, not bytes, where PostgreSQL does
 *      (UTF-8); case mapping is ASCII-only, as PostgreSQL's under the C
 *      locale the tests run with.
 *   3. Integer arithmetic is overflow-checked in the result type's width.
 *
 * Thread: any; the table is constant.
 */
#include "expr/expr_int.h"
#include "core/numeric.h"

#include "core/datum.h"

#include <ctype.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FN(name)                                                                                   \
    static int name(const tm_expr_t *e, const tm_datum_t *a, const bool *nulls,                    \
                    const tm_eval_env_t *env, tm_datum_t *out, bool *isnull, char *errstr,         \
                    size_t errstr_size)

#define ROW_ERR(...) return tm_seterr(errstr, errstr_size, TM_EINVAL, __VA_ARGS__)
#define NOMEM() return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory")

static int set_text(const tm_eval_env_t *env, tm_datum_t *out, const char *p, size_t len)
{
    char *c = tm_arena_memdup(env->arena, p, len);
    if (!c)
        return TM_ENOMEM;
    memset(out, 0, sizeof(*out));
    out->u.var.ptr = c;
    out->u.var.len = (uint32_t)len;
    return 0;
}

#define RET_TEXT(p, len)                                                                           \
    do {                                                                                           \
        if (set_text(env, out, (p), (len)))                                                        \
            NOMEM();                                                                               \
        return 0;                                                                                  \
    } while (0)

static inline const char *vp(const tm_datum_t *d)
{
    return d->u.var.ptr ? d->u.var.ptr : "";
}

/* ---------------------------------------------------------- UTF-8 */

static size_t u8_next(const char *s, size_t len, size_t i)
{
    i++;
    while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
        i++;
    return i;
}

static int64_t u8_count(const char *s, size_t len)
{
    int64_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

/* Byte offset of character index `c` (0-based), clamped to len. */
static size_t u8_offset(const char *s, size_t len, int64_t c)
{
    size_t i = 0;
    while (c > 0 && i < len) {
        i = u8_next(s, len, i);
        c--;
    }
    return i;
}

/* ---------------------------------------------------------- strings */

FN(f_lower)
{
    const char *s = vp(&a[0]);
    char *p = tm_arena_memdup(env->arena, s, a[0].u.var.len);
    if (!p)
        NOMEM();
    for (uint32_t i = 0; i < a[0].u.var.len; i++)
        if (p[i] >= 'A' && p[i] <= 'Z')
            p[i] = (char)(p[i] + 32);
    memset(out, 0, sizeof(*out));
    out->u.var.ptr = p;
    out->u.var.len = a[0].u.var.len;
    return 0;
}

FN(f_upper)
{
    const char *s = vp(&a[0]);
    char *p = tm_arena_memdup(env->arena, s, a[0].u.var.len);
    if (!p)
        NOMEM();
    for (uint32_t i = 0; i < a[0].u.var.len; i++)
        if (p[i] >= 'a' && p[i] <= 'z')
            p[i] = (char)(p[i] - 32);
    memset(out, 0, sizeof(*out));
    out->u.var.ptr = p;
    out->u.var.len = a[0].u.var.len;
    return 0;
}

FN(f_length)
{
    out->u.i64 = u8_count(vp(&a[0]), a[0].u.var.len);
    return 0;
}

FN(f_octet_length)
{
    out->u.i64 = a[0].u.var.len;
    return 0;
}

static int substring_common(const tm_eval_env_t *env, const tm_datum_t *s, int64_t start,
                            bool has_count, int64_t count, tm_datum_t *out, char *errstr,
                            size_t errstr_size)
{
    if (has_count && count < 0)
        ROW_ERR("negative substring length not allowed");
    /* PostgreSQL: characters [start, start + count) of a 1-based string. */
    int64_t end = has_count ? (count > INT64_MAX - start ? INT64_MAX : start + count) : INT64_MAX;
    if (start < 1)
        start = 1;
    if (end <= start)
        RET_TEXT("", 0);
    const char *p = vp(s);
    size_t len = s->u.var.len;
    size_t b = u8_offset(p, len, start - 1);
    size_t e2 = end == INT64_MAX ? len : u8_offset(p, len, end - 1);
    RET_TEXT(p + b, e2 > b ? e2 - b : 0);
}

FN(f_substring2)
{
    return substring_common(env, &a[0], a[1].u.i64, false, 0, out, errstr, errstr_size);
}

FN(f_substring3)
{
    return substring_common(env, &a[0], a[1].u.i64, true, a[2].u.i64, out, errstr, errstr_size);
}

static int64_t strpos_chars(const char *h, size_t hl, const char *n, size_t nl)
{
    if (nl == 0)
        return 1;
    for (size_t i = 0; i + nl <= hl; i++)
        if (memcmp(h + i, n, nl) == 0)
            return u8_count(h, i) + 1;
    return 0;
}

/* position(substring IN string) as libpg_query passes it: position(string, substring). */
FN(f_position)
{
    out->u.i64 = strpos_chars(vp(&a[0]), a[0].u.var.len, vp(&a[1]), a[1].u.var.len);
    return 0;
}

static int append(tm_arena_t *arena, char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t nc = (*cap ? *cap * 2 : 64);
        while (nc < *len + n + 1)
            nc *= 2;
        char *nb = tm_arena_alloc(arena, nc);
        if (!nb)
            return TM_ENOMEM;
        if (*len)
            memcpy(nb, *buf, *len);
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

FN(f_concat)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (int i = 0; i < e->nargs; i++) {
        if (nulls[i])
            continue;
        const char *p;
        size_t n;
        if (tm__datum_to_text(e->args[i]->type.type, &a[i], env->arena, &p, &n) ||
            append(env->arena, &buf, &len, &cap, p, n))
            NOMEM();
    }
    memset(out, 0, sizeof(*out));
    out->u.var.ptr = buf ? buf : "";
    out->u.var.len = (uint32_t)len;
    return 0;
}

/* text || x and x || text: the non-text side through its output function. */
FN(f_concat_op)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (int i = 0; i < 2; i++) {
        bool isbool = e->args[i]->type.type == TM_T_BOOL;
        const char *p = isbool && a[i].u.b ? "true" : "false";
        size_t n = strlen(p);
        /* || converts like a cast to text (true -> "true"); concat() uses boolout ("t"). */
        if ((!isbool &&
             tm__datum_to_text(e->args[i]->type.type, &a[i], env->arena, &p, &n)) ||
            append(env->arena, &buf, &len, &cap, p, n))
            NOMEM();
    }
    memset(out, 0, sizeof(*out));
    out->u.var.ptr = buf ? buf : "";
    out->u.var.len = (uint32_t)len;
    return 0;
}

/* True when the character at s[i..] is one of `chars` (UTF-8 characters). */
static size_t trim_match(const char *s, size_t len, size_t i, const char *chars, size_t clen)
{
    size_t n = u8_next(s, len, i) - i;
    for (size_t k = 0; k < clen;) {
        size_t m = u8_next(chars, clen, k) - k;
        if (m == n && memcmp(s + i, chars + k, n) == 0)
            return n;
        k += m;
    }
    return 0;
}

static int trim_common(const tm_eval_env_t *env, const tm_datum_t *s, const char *chars,
                       size_t clen, bool left, bool right, tm_datum_t *out, char *errstr,
                       size_t errstr_size)
{
    const char *p = vp(s);
    size_t len = s->u.var.len, b = 0, e2 = len;
    if (left) {
        size_t n;
        while (b < len && (n = trim_match(p, len, b, chars, clen)) > 0)
            b += n;
    }
    if (right) {
        while (e2 > b) {
            size_t k = e2 - 1;
            while (k > b && ((unsigned char)p[k] & 0xC0) == 0x80)
                k--;
            if (trim_match(p, len, k, chars, clen) == 0)
                break;
            e2 = k;
        }
    }
    RET_TEXT(p + b, e2 - b);
}

FN(f_btrim1)
{
    return trim_common(env, &a[0], " ", 1, true, true, out, errstr, errstr_size);
}
FN(f_btrim2)
{
    return trim_common(env, &a[0], vp(&a[1]), a[1].u.var.len, true, true, out, errstr,
                       errstr_size);
}
FN(f_ltrim1)
{
    return trim_common(env, &a[0], " ", 1, true, false, out, errstr, errstr_size);
}
FN(f_ltrim2)
{
    return trim_common(env, &a[0], vp(&a[1]), a[1].u.var.len, true, false, out, errstr,
                       errstr_size);
}
FN(f_rtrim1)
{
    return trim_common(env, &a[0], " ", 1, false, true, out, errstr, errstr_size);
}
FN(f_rtrim2)
{
    return trim_common(env, &a[0], vp(&a[1]), a[1].u.var.len, false, true, out, errstr,
                       errstr_size);
}

FN(f_replace)
{
    const char *s = vp(&a[0]), *from = vp(&a[1]), *to = vp(&a[2]);
    size_t sl = a[0].u.var.len, fl = a[1].u.var.len, tl = a[2].u.var.len;
    if (fl == 0) {
        *out = a[0];
        return 0;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    size_t i = 0;
    while (i < sl) {
        if (i + fl <= sl && memcmp(s + i, from, fl) == 0) {
            if (append(env->arena, &buf, &len, &cap, to, tl))
                NOMEM();
            i += fl;
        } else {
            if (append(env->arena, &buf, &len, &cap, s + i, 1))
                NOMEM();
            i++;
        }
    }
    RET_TEXT(buf ? buf : "", len);
}

FN(f_split_part)
{
    const char *s = vp(&a[0]), *d = vp(&a[1]);
    size_t sl = a[0].u.var.len, dl = a[1].u.var.len;
    int64_t n = a[2].u.i64;
    if (n == 0)
        ROW_ERR("field position must not be zero");
    if (sl == 0)
        RET_TEXT("", 0);
    /* An empty delimiter makes the whole string one field. */
    int64_t nfields = 1;
    if (dl > 0) {
        for (size_t i = 0; i + dl <= sl;) {
            if (memcmp(s + i, d, dl) == 0) {
                nfields++;
                i += dl;
            } else {
                i++;
            }
        }
    }
    int64_t want = n > 0 ? n - 1 : nfields + n;
    if (want < 0 || want >= nfields)
        RET_TEXT("", 0);
    size_t b = 0, i = 0;
    int64_t field = 0;
    while (dl > 0 && i + dl <= sl) {
        if (memcmp(s + i, d, dl) == 0) {
            if (field == want)
                RET_TEXT(s + b, i - b);
            field++;
            i += dl;
            b = i;
        } else {
            i++;
        }
    }
    RET_TEXT(s + b, sl - b);
}

FN(f_repeat)
{
    int64_t n = a[1].u.i64;
    size_t len = a[0].u.var.len;
    if (n <= 0 || len == 0)
        RET_TEXT("", 0);
    if ((uint64_t)n * len > 256u * 1024 * 1024)
        ROW_ERR("requested length too large");
    char *p = tm_arena_alloc(env->arena, (size_t)n * len + 1);
    if (!p)
        NOMEM();
    for (int64_t i = 0; i < n; i++)
        memcpy(p + (size_t)i * len, vp(&a[0]), len);
    p[(size_t)n * len] = '\0';
    memset(out, 0, sizeof(*out));
    out->u.var.ptr = p;
    out->u.var.len = (uint32_t)((size_t)n * len);
    return 0;
}

FN(f_left)
{
    const char *s = vp(&a[0]);
    size_t len = a[0].u.var.len;
    int64_t n = a[1].u.i64, total = u8_count(s, len);
    int64_t keep = n >= 0 ? (n < total ? n : total) : (total + n > 0 ? total + n : 0);
    RET_TEXT(s, u8_offset(s, len, keep));
}

FN(f_right)
{
    const char *s = vp(&a[0]);
    size_t len = a[0].u.var.len;
    int64_t n = a[1].u.i64, total = u8_count(s, len);
    int64_t skip = n >= 0 ? (n < total ? total - n : 0) : (-n < total ? -n : total);
    size_t b = u8_offset(s, len, skip);
    RET_TEXT(s + b, len - b);
}

static int pad_common(const tm_eval_env_t *env, const tm_datum_t *s, int64_t n, const char *fill,
                      size_t fl, bool left, tm_datum_t *out, char *errstr, size_t errstr_size)
{
    const char *p = vp(s);
    size_t len = s->u.var.len;
    if (n <= 0)
        RET_TEXT("", 0);
    if (n > 10 * 1024 * 1024)
        ROW_ERR("requested length too large");
    int64_t have = u8_count(p, len);
    if (have >= n || fl == 0)
        RET_TEXT(p, u8_offset(p, len, n));
    char *buf = NULL;
    size_t bl = 0, cap = 0;
    int64_t need = n - have;
    if (!left && append(env->arena, &buf, &bl, &cap, p, len))
        NOMEM();
    for (size_t k = 0; need > 0; need--) {
        size_t m = u8_next(fill, fl, k) - k;
        if (append(env->arena, &buf, &bl, &cap, fill + k, m))
            NOMEM();
        k += m;
        if (k >= fl)
            k = 0;
    }
    if (left && append(env->arena, &buf, &bl, &cap, p, len))
        NOMEM();
    RET_TEXT(buf, bl);
}

FN(f_lpad2)
{
    return pad_common(env, &a[0], a[1].u.i64, " ", 1, true, out, errstr, errstr_size);
}
FN(f_lpad3)
{
    return pad_common(env, &a[0], a[1].u.i64, vp(&a[2]), a[2].u.var.len, true, out, errstr,
                      errstr_size);
}
FN(f_rpad2)
{
    return pad_common(env, &a[0], a[1].u.i64, " ", 1, false, out, errstr, errstr_size);
}
FN(f_rpad3)
{
    return pad_common(env, &a[0], a[1].u.i64, vp(&a[2]), a[2].u.var.len, false, out, errstr,
                      errstr_size);
}

/* MD5 (RFC 1321). */
static void md5_block(uint32_t h[4], const uint8_t *b)
{
    static const uint32_t K[64] = {
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613,
        0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193,
        0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d,
        0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
        0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122,
        0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
        0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244,
        0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
        0xeb86d391};
    static const int R[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                              5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                              4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                              6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};
    uint32_t w[16];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 | (uint32_t)b[4 * i + 2] << 16 |
               (uint32_t)b[4 * i + 3] << 24;
    uint32_t A = h[0], B = h[1], C = h[2], D = h[3];
    for (int i = 0; i < 64; i++) {
        uint32_t f;
        int g;
        if (i < 16) {
            f = (B & C) | (~B & D);
            g = i;
        } else if (i < 32) {
            f = (D & B) | (~D & C);
            g = (5 * i + 1) % 16;
        } else if (i < 48) {
            f = B ^ C ^ D;
            g = (3 * i + 5) % 16;
        } else {
            f = C ^ (B | ~D);
            g = (7 * i) % 16;
        }
        uint32_t t = D;
        D = C;
        C = B;
        uint32_t x = A + f + K[i] + w[g];
        B = B + ((x << R[i]) | (x >> (32 - R[i])));
        A = t;
    }
    h[0] += A;
    h[1] += B;
    h[2] += C;
    h[3] += D;
}

FN(f_md5)
{
    uint32_t h[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
    const uint8_t *p = (const uint8_t *)vp(&a[0]);
    uint64_t len = a[0].u.var.len;
    uint64_t i = 0;
    for (; i + 64 <= len; i += 64)
        md5_block(h, p + i);
    uint8_t tail[128];
    size_t r = (size_t)(len - i);
    memcpy(tail, p + i, r);
    tail[r++] = 0x80;
    size_t total = r <= 56 ? 64 : 128;
    memset(tail + r, 0, total - r);
    uint64_t bits = len * 8;
    for (int k = 0; k < 8; k++)
        tail[total - 8 + k] = (uint8_t)(bits >> (8 * k));
    md5_block(h, tail);
    if (total == 128)
        md5_block(h, tail + 64);
    char hex[33];
    for (int k = 0; k < 16; k++)
        snprintf(hex + 2 * k, 3, "%02x", (h[k / 4] >> (8 * (k % 4))) & 0xff);
    RET_TEXT(hex, 32);
}

/* ---------------------------------------------------------- LIKE */

/* 1 match, 0 no match, -1 bad pattern. */
static int like_match(const char *s, size_t sl, const char *p, size_t pl, bool ci)
{
    size_t si = 0, pi = 0, star_p = (size_t)-1, star_s = 0;
#define LOW(c) (ci && (c) >= 'A' && (c) <= 'Z' ? (c) + 32 : (c))
    while (si < sl) {
        if (pi < pl && p[pi] == '%') {
            while (pi < pl && p[pi] == '%')
                pi++;
            if (pi == pl)
                return 1;
            star_p = pi;
            star_s = si;
            continue;
        }
        if (pi < pl && p[pi] == '_') {
            si = u8_next(s, sl, si);
            pi++;
            continue;
        }
        if (pi < pl) {
            size_t q = pi;
            if (p[q] == '\\') {
                if (q + 1 >= pl)
                    return -1;
                q++;
            }
            size_t pn = u8_next(p, pl, q) - q, sn = u8_next(s, sl, si) - si;
            bool eq = pn == sn;
            for (size_t k = 0; eq && k < pn; k++)
                eq = LOW((unsigned char)p[q + k]) == LOW((unsigned char)s[si + k]);
            if (eq) {
                si += sn;
                pi = q + pn;
                continue;
            }
        }
        if (star_p == (size_t)-1)
            return 0;
        star_s = u8_next(s, sl, star_s);
        si = star_s;
        pi = star_p;
    }
    while (pi < pl && p[pi] == '%')
        pi++;
    if (pi < pl && p[pi] == '\\' && pi + 1 >= pl)
        return -1;
    return pi == pl;
#undef LOW
}

static int like_common(const tm_datum_t *a, bool ci, bool neg, tm_datum_t *out, char *errstr,
                       size_t errstr_size)
{
    int m = like_match(vp(&a[0]), a[0].u.var.len, vp(&a[1]), a[1].u.var.len, ci);
    if (m < 0)
        ROW_ERR("LIKE pattern must not end with escape character");
    memset(out, 0, sizeof(*out));
    out->u.b = neg ? !m : m;
    return 0;
}

FN(f_like)
{
    return like_common(a, false, false, out, errstr, errstr_size);
}
FN(f_notlike)
{
    return like_common(a, false, true, out, errstr, errstr_size);
}
FN(f_ilike)
{
    return like_common(a, true, false, out, errstr, errstr_size);
}
FN(f_notilike)
{
    return like_common(a, true, true, out, errstr, errstr_size);
}

const tm__func_t tm__fn_like[4] = {
    {"~~", 2, {TM_T_TEXT, TM_T_TEXT}, TM_T_BOOL, f_like, TM__FN_OPERATOR},
    {"!~~", 2, {TM_T_TEXT, TM_T_TEXT}, TM_T_BOOL, f_notlike, TM__FN_OPERATOR},
    {"~~*", 2, {TM_T_TEXT, TM_T_TEXT}, TM_T_BOOL, f_ilike, TM__FN_OPERATOR},
    {"!~~*", 2, {TM_T_TEXT, TM_T_TEXT}, TM_T_BOOL, f_notilike, TM__FN_OPERATOR},
};

const tm__func_t tm__fn_concat_op = {"||", 2, {TM__T_ANY, TM__T_ANY}, TM_T_TEXT, f_concat_op,
                                     TM__FN_OPERATOR};

/* ---------------------------------------------------------- comparison */

FN(f_cmp)
{
    int c = tm_datum_compare(e->cmp_type, &a[0], &a[1]);
    bool r = false;
    switch (e->cmp_op) {
    case TM__CMP_EQ:
        r = c == 0;
        break;
    case TM__CMP_NE:
        r = c != 0;
        break;
    case TM__CMP_LT:
        r = c < 0;
        break;
    case TM__CMP_LE:
        r = c <= 0;
        break;
    case TM__CMP_GT:
        r = c > 0;
        break;
    case TM__CMP_GE:
        r = c >= 0;
        break;
    }
    memset(out, 0, sizeof(*out));
    out->u.b = r;
    return 0;
}

const tm__func_t tm__fn_cmp = {"=", 2, {TM__T_ANY, TM__T_ANY}, TM_T_BOOL, f_cmp, TM__FN_OPERATOR};

/* ---------------------------------------------------------- arithmetic */

static int int_result(__int128 v, tm_type_t t, tm_datum_t *out, char *errstr, size_t errstr_size)
{
    int64_t lo = t == TM_T_INT16 ? INT16_MIN : t == TM_T_INT32 ? INT32_MIN : INT64_MIN;
    int64_t hi = t == TM_T_INT16 ? INT16_MAX : t == TM_T_INT32 ? INT32_MAX : INT64_MAX;
    if (v < lo || v > hi)
        ROW_ERR("%s out of range", tm__type_sql_name(t));
    memset(out, 0, sizeof(*out));
    out->u.i64 = (int64_t)v;
    return 0;
}

static int float_result(double r, bool inputs_inf, bool zero_ok, tm_type_t t, tm_datum_t *out,
                         char *errstr, size_t errstr_size)
{
    if (t == TM_T_FLOAT32) {
        float f = (float)r;
        if (isinf(f) && !inputs_inf)
            ROW_ERR("value out of range: overflow");
        if (f == 0 && !zero_ok)
            ROW_ERR("value out of range: underflow");
        r = f;
    } else {
        if (isinf(r) && !inputs_inf)
            ROW_ERR("value out of range: overflow");
        if (r == 0 && !zero_ok)
            ROW_ERR("value out of range: underflow");
    }
    memset(out, 0, sizeof(*out));
    out->u.f64 = r;
    return 0;
}

static int ts_result(__int128 v, const char *what, tm_datum_t *out, char *errstr,
                     size_t errstr_size)
{
    if (v < INT64_MIN / 2 || v > INT64_MAX)
        ROW_ERR("%s out of range", what);
    memset(out, 0, sizeof(*out));
    out->u.i64 = (int64_t)v;
    return 0;
}

static int32_t clamp_i32(__int128 v)
{
    return v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int32_t)v;
}

/*
 * ts stepped by `months` calendar months as PostgreSQL's timestamp_pl_interval
 * does: the same day of the month, or the month's last day when it is
 * shorter, and the same time of day (timestamptz in UTC, the session zone).
 */
static bool add_months(__int128 ts, int64_t months, __int128 *out)
{
    __int128 day = ts / TM__US_PER_DAY, tod = ts % TM__US_PER_DAY;
    if (tod < 0) {
        tod += TM__US_PER_DAY;
        day--;
    }
    int64_t y;
    int m, d;
    tm__civil_from_days((int64_t)day, &y, &m, &d);
    __int128 total = (__int128)y * 12 + (m - 1) + months;
    __int128 y2 = total >= 0 ? total / 12 : -((-total + 11) / 12);
    int m2 = (int)(total - y2 * 12) + 1;
    if (y2 < -4713 || y2 > 294277)
        return false;
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y2 % 4 == 0 && y2 % 100 != 0) || y2 % 400 == 0;
    int last = dim[m2 - 1] + (m2 == 2 && leap);
    if (d > last)
        d = last;
    *out = (__int128)tm__days_from_civil((int64_t)y2, m2, d) * TM__US_PER_DAY + tod;
    return true;
}

int tm__op_arith(const tm_expr_t *e, const tm_datum_t *a, const bool *nulls,
                 const tm_eval_env_t *env, tm_datum_t *out, bool *isnull, char *errstr,
                 size_t errstr_size)
{
    int op = e->cmp_op;
    tm_type_t rt = e->type.type;
    tm_type_t lt = e->args[0]->type.type;
    tm_type_t t2 = e->nargs > 1 ? e->args[1]->type.type : 0;
    if (op == 'n') { /* unary minus */
        switch (rt) {
        case TM_T_INT16:
        case TM_T_INT32:
        case TM_T_INT64:
            return int_result(-(__int128)a[0].u.i64, rt, out, errstr, errstr_size);
        case TM_T_FLOAT32:
        case TM_T_FLOAT64:
            memset(out, 0, sizeof(*out));
            out->u.f64 = -a[0].u.f64;
            return 0;
        case TM_T_NUMERIC:
            return tm_num_neg(&a[0], env->arena, out, errstr, errstr_size);
        case TM_T_INTERVAL: {
            int rc = ts_result(-(__int128)a[0].u.i64, "interval", out, errstr, errstr_size);
            if (rc == 0)
                out->u.iv.months = clamp_i32(-(__int128)a[0].u.iv.months);
            return rc;
        }
        default:
            break;
        }
        ROW_ERR("operator does not exist");
    }
    if (rt == TM_T_NUMERIC && lt == TM_T_NUMERIC) {
        switch (op) {
        case '+':
            return tm_num_add(&a[0], &a[1], env->arena, out, errstr, errstr_size);
        case '-':
            return tm_num_sub(&a[0], &a[1], env->arena, out, errstr, errstr_size);
        case '*':
            return tm_num_mul(&a[0], &a[1], env->arena, out, errstr, errstr_size);
        case '/':
            return tm_num_div(&a[0], &a[1], env->arena, out, errstr, errstr_size);
        case '%':
            return tm_num_mod(&a[0], &a[1], env->arena, out, errstr, errstr_size);
        }
    }
    if ((rt == TM_T_INT16 || rt == TM_T_INT32 || rt == TM_T_INT64) && tm__num_rank(lt) <= 3 &&
        tm__num_rank(t2) <= 3 && tm__num_rank(lt) && tm__num_rank(t2)) {
        __int128 x = a[0].u.i64, y = a[1].u.i64;
        switch (op) {
        case '+':
            return int_result(x + y, rt, out, errstr, errstr_size);
        case '-':
            return int_result(x - y, rt, out, errstr, errstr_size);
        case '*':
            return int_result(x * y, rt, out, errstr, errstr_size);
        case '/':
            if (y == 0)
                ROW_ERR("division by zero");
            return int_result(x / y, rt, out, errstr, errstr_size);
        case '%':
            if (y == 0)
                ROW_ERR("division by zero");
            return int_result(x % y, rt, out, errstr, errstr_size);
        }
    }
    if (rt == TM_T_FLOAT32 || rt == TM_T_FLOAT64) {
        double x = a[0].u.f64, y = a[1].u.f64, r = 0;
        bool inf = isinf(x) || isinf(y);
        bool zero_ok = true;
        switch (op) {
        case '+':
            r = x + y;
            break;
        case '-':
            r = x - y;
            break;
        case '*':
            r = x * y;
            zero_ok = x == 0 || y == 0;
            break;
        case '/':
            if (y == 0 && !isnan(x))
                ROW_ERR("division by zero");
            r = x / y;
            zero_ok = x == 0 || isinf(y);
            break;
        }
        if (isnan(x) || isnan(y))
            zero_ok = true;
        return float_result(r, inf, zero_ok, rt, out, errstr, errstr_size);
    }
    /* Date and time arithmetic. */
    int64_t x = a[0].u.i64, y = e->nargs > 1 ? a[1].u.i64 : 0;
    switch (rt) {
    case TM_T_DATE: /* date ± integer, integer + date */
        if (lt == TM_T_DATE)
            return ts_result(op == '+' ? (__int128)x + y : (__int128)x - y, "date", out, errstr,
                             errstr_size);
        return ts_result((__int128)x + y, "date", out, errstr, errstr_size);
    case TM_T_INT32: /* date - date */
        memset(out, 0, sizeof(*out));
        out->u.i64 = x - y;
        return 0;
    case TM_T_TIMESTAMP:
    case TM_T_TIMESTAMPTZ: {
        if (lt == TM_T_INTERVAL || t2 == TM_T_INTERVAL) {
            /* timestamp ± interval, interval + timestamp (a date side at midnight): first the
             * interval's calendar months, then the rest of it. */
            const tm_datum_t *iv = lt == TM_T_INTERVAL ? &a[0] : &a[1];
            const tm_datum_t *ts = lt == TM_T_INTERVAL ? &a[1] : &a[0];
            tm_type_t tst = lt == TM_T_INTERVAL ? t2 : lt;
            __int128 base = tst == TM_T_DATE ? (__int128)ts->u.i64 * TM__US_PER_DAY : ts->u.i64;
            __int128 months = iv->u.iv.months;
            __int128 rest = (__int128)iv->u.iv.us - months * TM__US_PER_MONTH;
            if (op == '-') {
                months = -months;
                rest = -rest;
            }
            if (months != 0 && !add_months(base, (int64_t)months, &base))
                ROW_ERR("timestamp out of range");
            return ts_result(base + rest, "timestamp", out, errstr, errstr_size);
        }
        /* date + time; a date side is in days. */
        __int128 l = lt == TM_T_DATE ? (__int128)x * TM__US_PER_DAY : x;
        __int128 r = t2 == TM_T_DATE ? (__int128)y * TM__US_PER_DAY : y;
        if (t2 == TM_T_TIME && lt == TM_T_DATE)
            r = y;
        return ts_result(op == '+' ? l + r : l - r, "timestamp", out, errstr, errstr_size);
    }
    case TM_T_TIME:
        /* time ± interval wraps around midnight; the interval's months (and, by the wrap, its
         * days) do not count, as in PostgreSQL. */
        {
            const tm_datum_t *iv = lt == TM_T_INTERVAL ? &a[0] : &a[1];
            __int128 span = (__int128)iv->u.iv.us - (__int128)iv->u.iv.months * TM__US_PER_MONTH;
            __int128 t = lt == TM_T_INTERVAL ? y : x;
            __int128 v = op == '+' ? t + span : t - span;
            v %= TM__US_PER_DAY;
            if (v < 0)
                v += TM__US_PER_DAY;
            memset(out, 0, sizeof(*out));
            out->u.i64 = (int64_t)v;
            return 0;
        }
    case TM_T_INTERVAL:
        if (op == '*' || op == '/') {
            bool iv_left = lt == TM_T_INTERVAL;
            double f = iv_left ? a[1].u.f64 : a[0].u.f64;
            double iv = (double)(iv_left ? x : y);
            if (op == '/' && f == 0)
                ROW_ERR("division by zero");
            double r = op == '*' ? iv * f : iv / f;
            if (isnan(r) || r >= 9223372036854775807.0 || r <= -9223372036854775808.0)
                ROW_ERR("interval out of range");
            memset(out, 0, sizeof(*out));
            out->u.i64 = (int64_t)llrint(r);
            /* Whole months stay months (PostgreSQL's interval_mul truncates them too). */
            double m = (double)(iv_left ? a[0].u.iv.months : a[1].u.iv.months);
            double mr = op == '*' ? m * f : m / f;
            out->u.iv.months = isfinite(mr) ? clamp_i32((__int128)trunc(mr)) : 0;
            return 0;
        }
        if (op == '-' && (lt == TM_T_TIMESTAMP || lt == TM_T_TIMESTAMPTZ || lt == TM_T_TIME))
            return ts_result((__int128)x - y, "interval", out, errstr, errstr_size);
        {
            int rc = ts_result(op == '+' ? (__int128)x + y : (__int128)x - y, "interval", out,
                               errstr, errstr_size);
            if (rc == 0 && lt == TM_T_INTERVAL && t2 == TM_T_INTERVAL) {
                __int128 m1 = a[0].u.iv.months, m2 = a[1].u.iv.months;
                out->u.iv.months = clamp_i32(op == '+' ? m1 + m2 : m1 - m2);
            }
            return rc;
        }
    default:
        break;
    }
    ROW_ERR("operator %s is not supported for these types", e->name ? e->name : "?");
}

/* ---------------------------------------------------------- math */

FN(f_abs)
{
    switch (e->type.type) {
    case TM_T_INT16:
    case TM_T_INT32:
    case TM_T_INT64:
        return int_result(a[0].u.i64 < 0 ? -(__int128)a[0].u.i64 : a[0].u.i64, e->type.type, out,
                          errstr, errstr_size);
    case TM_T_NUMERIC:
        return tm_num_abs(&a[0], env->arena, out, errstr, errstr_size);
    default:
        memset(out, 0, sizeof(*out));
        out->u.f64 = fabs(a[0].u.f64);
        return 0;
    }
}

FN(f_round_f)
{
    memset(out, 0, sizeof(*out));
    out->u.f64 = rint(a[0].u.f64); /* PostgreSQL: round(float8) rounds half to even */
    return 0;
}
FN(f_round_n)
{
    return tm_num_round(&a[0], 0, env->arena, out, errstr, errstr_size);
}
/* round/trunc's digit count, bounded far past any numeric scale (PostgreSQL clamps too). */
static int digits_arg(int64_t n)
{
    return n > 2000 ? 2000 : n < -2000 ? -2000 : (int)n;
}
FN(f_round_n2)
{
    return tm_num_round(&a[0], digits_arg(a[1].u.i64), env->arena, out, errstr, errstr_size);
}
FN(f_trunc_f)
{
    memset(out, 0, sizeof(*out));
    out->u.f64 = trunc(a[0].u.f64);
    return 0;
}
FN(f_trunc_n)
{
    return tm_num_trunc(&a[0], 0, env->arena, out, errstr, errstr_size);
}
FN(f_trunc_n2)
{
    return tm_num_trunc(&a[0], digits_arg(a[1].u.i64), env->arena, out, errstr, errstr_size);
}
FN(f_floor_f)
{
    memset(out, 0, sizeof(*out));
    out->u.f64 = floor(a[0].u.f64);
    return 0;
}
FN(f_floor_n)
{
    return tm_num_floor(&a[0], env->arena, out, errstr, errstr_size);
}
FN(f_ceil_f)
{
    memset(out, 0, sizeof(*out));
    out->u.f64 = ceil(a[0].u.f64);
    return 0;
}
FN(f_ceil_n)
{
    return tm_num_ceil(&a[0], env->arena, out, errstr, errstr_size);
}

FN(f_mod)
{
    if (e->type.type == TM_T_NUMERIC)
        return tm_num_mod(&a[0], &a[1], env->arena, out, errstr, errstr_size);
    if (a[1].u.i64 == 0)
        ROW_ERR("division by zero");
    return int_result((__int128)a[0].u.i64 % a[1].u.i64, e->type.type, out, errstr, errstr_size);
}

FN(f_power)
{
    double x = a[0].u.f64, y = a[1].u.f64;
    if (x == 0 && y < 0)
        ROW_ERR("zero raised to a negative power is undefined");
    if (x < 0 && floor(y) != y)
        ROW_ERR("a negative number raised to a non-integer power yields a complex result");
    double r = pow(x, y);
    if (isinf(r) && !isinf(x) && !isinf(y))
        ROW_ERR("value out of range: overflow");
    if (r == 0 && x != 0 && !isinf(y))
        ROW_ERR("value out of range: underflow");
    memset(out, 0, sizeof(*out));
    out->u.f64 = r;
    return 0;
}

FN(f_sqrt)
{
    if (a[0].u.f64 < 0)
        ROW_ERR("cannot take square root of a negative number");
    memset(out, 0, sizeof(*out));
    out->u.f64 = sqrt(a[0].u.f64);
    return 0;
}

FN(f_power_n)
{
    return tm_num_power(&a[0], &a[1], env->arena, out, errstr, errstr_size);
}

FN(f_sqrt_n)
{
    return tm_num_sqrt(&a[0], env->arena, out, errstr, errstr_size);
}

/* ---------------------------------------------------------- time */

FN(f_now)
{
    memset(out, 0, sizeof(*out));
    out->u.i64 = env->now_us;
    return 0;
}

static int64_t tm_fdiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int unit_lookup(const char *s, size_t len, char *buf, size_t buflen)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < buflen; i++)
        if (!isspace((unsigned char)s[i]))
            buf[n++] = (char)tolower((unsigned char)s[i]);
    buf[n] = '\0';
    /* Plurals and abbreviations PostgreSQL accepts for the common units. */
    static const char *const alias[][2] = {
        {"microseconds", "microseconds"}, {"microsecond", "microseconds"}, {"us", "microseconds"},
        {"usec", "microseconds"},         {"usecs", "microseconds"},       {"milliseconds", "milliseconds"},
        {"millisecond", "milliseconds"},  {"ms", "milliseconds"},          {"msec", "milliseconds"},
        {"msecs", "milliseconds"},        {"second", "second"},            {"seconds", "second"},
        {"sec", "second"},                {"secs", "second"},              {"s", "second"},
        {"minute", "minute"},             {"minutes", "minute"},           {"min", "minute"},
        {"mins", "minute"},               {"m", "minute"},                 {"hour", "hour"},
        {"hours", "hour"},                {"h", "hour"},                   {"hr", "hour"},
        {"hrs", "hour"},                  {"day", "day"},                  {"days", "day"},
        {"d", "day"},                     {"week", "week"},                {"weeks", "week"},
        {"w", "week"},                    {"month", "month"},              {"months", "month"},
        {"mon", "month"},                 {"mons", "month"},               {"quarter", "quarter"},
        {"qtr", "quarter"},               {"year", "year"},                {"years", "year"},
        {"y", "year"},                    {"yr", "year"},                  {"yrs", "year"},
        {"decade", "decade"},             {"decades", "decade"},           {"century", "century"},
        {"centuries", "century"},         {"millennium", "millennium"},    {"millennia", "millennium"},
        {"dow", "dow"},                   {"isodow", "isodow"},            {"doy", "doy"},
        {"epoch", "epoch"},               {"isoyear", "isoyear"},          {"timezone", "timezone"},
        {"timezone_hour", "timezone_hour"}, {"timezone_minute", "timezone_minute"},
        {"julian", "julian"},
    };
    for (size_t i = 0; i < sizeof(alias) / sizeof(alias[0]); i++) {
        if (strcmp(buf, alias[i][0]) == 0) {
            snprintf(buf, buflen, "%s", alias[i][1]);
            return 0;
        }
    }
    return -1;
}

static int64_t trunc_ts(int64_t us, const char *u, bool *ok)
{
    *ok = true;
    int64_t days = tm_fdiv(us, TM__US_PER_DAY);
    int64_t y;
    int m, d;
    tm__civil_from_days(days, &y, &m, &d);
    if (!strcmp(u, "microseconds"))
        return us;
    if (!strcmp(u, "milliseconds"))
        return tm_fdiv(us, 1000) * 1000;
    if (!strcmp(u, "second"))
        return tm_fdiv(us, TM__US_PER_SEC) * TM__US_PER_SEC;
    if (!strcmp(u, "minute"))
        return tm_fdiv(us, 60 * TM__US_PER_SEC) * 60 * TM__US_PER_SEC;
    if (!strcmp(u, "hour"))
        return tm_fdiv(us, 3600 * TM__US_PER_SEC) * 3600 * TM__US_PER_SEC;
    if (!strcmp(u, "day"))
        return days * TM__US_PER_DAY;
    if (!strcmp(u, "week")) {
        int64_t dow = ((days % 7) + 7 + 3) % 7; /* 1970-01-01 was a Thursday; Monday = 0 */
        return (days - dow) * TM__US_PER_DAY;
    }
    if (!strcmp(u, "month"))
        return tm__days_from_civil(y, m, 1) * TM__US_PER_DAY;
    if (!strcmp(u, "quarter"))
        return tm__days_from_civil(y, (m - 1) / 3 * 3 + 1, 1) * TM__US_PER_DAY;
    if (!strcmp(u, "year"))
        return tm__days_from_civil(y, 1, 1) * TM__US_PER_DAY;
    if (!strcmp(u, "decade"))
        return tm__days_from_civil(tm_fdiv(y, 10) * 10, 1, 1) * TM__US_PER_DAY;
    if (!strcmp(u, "century"))
        return tm__days_from_civil(y > 0 ? (y - 1) / 100 * 100 + 1 : -((-y) / 100) * 100 - 99, 1,
                                   1) *
               TM__US_PER_DAY;
    if (!strcmp(u, "millennium"))
        return tm__days_from_civil(y > 0 ? (y - 1) / 1000 * 1000 + 1 : -((-y) / 1000) * 1000 - 999,
                                   1, 1) *
               TM__US_PER_DAY;
    *ok = false;
    return 0;
}

FN(f_date_trunc)
{
    char u[32];
    tm_type_t t = e->args[1]->type.type;
    bool ok = unit_lookup(vp(&a[0]), a[0].u.var.len, u, sizeof(u)) == 0;
    int64_t v = a[1].u.i64, r = 0;
    if (ok && t == TM_T_INTERVAL) {
        /* An interval is microseconds here: days, hours, … truncate toward zero. */
        int64_t unit = !strcmp(u, "microseconds")   ? 1
                       : !strcmp(u, "milliseconds") ? 1000
                       : !strcmp(u, "second")       ? TM__US_PER_SEC
                       : !strcmp(u, "minute")       ? 60 * TM__US_PER_SEC
                       : !strcmp(u, "hour")         ? 3600 * TM__US_PER_SEC
                       : !strcmp(u, "day")          ? TM__US_PER_DAY
                       : !strcmp(u, "month")        ? TM__US_PER_MONTH
                       : !strcmp(u, "year")         ? 12 * TM__US_PER_MONTH
                                                    : 0;
        if (!unit)
            ok = false;
        else
            r = v / unit * unit;
    } else if (ok) {
        r = trunc_ts(v, u, &ok);
    }
    if (!ok)
        ROW_ERR("unit \"%.*s\" not recognized for type %s", (int)a[0].u.var.len, vp(&a[0]),
                tm__type_sql_name(t));
    memset(out, 0, sizeof(*out));
    out->u.i64 = r;
    return 0;
}

/*
 * One field of a date/time value as a scaled integer: *v / 10^*scale.
 * Returns 0, or -1 when the unit is not supported for the type.
 */
static int extract_field(tm_type_t t, int64_t v, const char *u, __int128 *out, int *scale)
{
    *scale = 0;
    if (t == TM_T_INTERVAL) {
        int64_t days = v / TM__US_PER_DAY, rem = v % TM__US_PER_DAY;
        if (!strcmp(u, "epoch")) {
            *out = v;
            *scale = 6;
        } else if (!strcmp(u, "day")) {
            *out = days;
        } else if (!strcmp(u, "hour")) {
            *out = rem / (3600 * TM__US_PER_SEC);
        } else if (!strcmp(u, "minute")) {
            *out = rem / (60 * TM__US_PER_SEC) % 60;
        } else if (!strcmp(u, "second")) {
            *out = rem % (60 * TM__US_PER_SEC);
            *scale = 6;
        } else if (!strcmp(u, "milliseconds")) {
            *out = rem % (60 * TM__US_PER_SEC);
            *scale = 3;
        } else if (!strcmp(u, "microseconds")) {
            *out = rem % (60 * TM__US_PER_SEC);
        } else {
            return -1;
        }
        return 0;
    }
    int64_t us = t == TM_T_DATE ? v * TM__US_PER_DAY : v;
    int64_t days = tm_fdiv(us, TM__US_PER_DAY), tod = us - days * TM__US_PER_DAY;
    if (t == TM_T_TIME || t == TM_T_TIMETZ) {
        tod = v;
        days = 0;
    }
    int64_t y;
    int m, d;
    tm__civil_from_days(days, &y, &m, &d);
    bool has_date = t != TM_T_TIME && t != TM_T_TIMETZ;
    bool has_time = t != TM_T_DATE;
    if (!strcmp(u, "epoch")) {
        *out = us;
        *scale = 6;
        if (t == TM_T_DATE) {
            *out = (__int128)v * 86400;
            *scale = 0;
        }
        return 0;
    }
    if (has_time) {
        if (!strcmp(u, "hour")) {
            *out = tod / (3600 * TM__US_PER_SEC);
            return 0;
        }
        if (!strcmp(u, "minute")) {
            *out = tod / (60 * TM__US_PER_SEC) % 60;
            return 0;
        }
        if (!strcmp(u, "second")) {
            *out = tod % (60 * TM__US_PER_SEC);
            *scale = 6;
            return 0;
        }
        if (!strcmp(u, "milliseconds")) {
            *out = tod % (60 * TM__US_PER_SEC);
            *scale = 3;
            return 0;
        }
        if (!strcmp(u, "microseconds")) {
            *out = tod % (60 * TM__US_PER_SEC);
            return 0;
        }
        if (t == TM_T_TIMESTAMPTZ || t == TM_T_TIMETZ) {
            if (!strcmp(u, "timezone") || !strcmp(u, "timezone_hour") ||
                !strcmp(u, "timezone_minute")) {
                *out = 0;
                return 0;
            }
        }
    }
    if (!has_date)
        return -1;
    int64_t dow = ((days % 7) + 7 + 4) % 7; /* Sunday = 0 */
    /* ISO week and year: the week with the year's first Thursday is week 1. */
    int64_t isodow = dow == 0 ? 7 : dow;
    int64_t thursday = days - isodow + 4;
    int64_t ty;
    int tmn, tdd;
    tm__civil_from_days(thursday, &ty, &tmn, &tdd);
    int64_t week = (thursday - tm__days_from_civil(ty, 1, 1)) / 7 + 1;
    if (!strcmp(u, "year"))
        *out = y > 0 ? y : y - 1;
    else if (!strcmp(u, "month"))
        *out = m;
    else if (!strcmp(u, "day"))
        *out = d;
    else if (!strcmp(u, "dow"))
        *out = dow;
    else if (!strcmp(u, "isodow"))
        *out = isodow;
    else if (!strcmp(u, "doy"))
        *out = days - tm__days_from_civil(y, 1, 1) + 1;
    else if (!strcmp(u, "week"))
        *out = week;
    else if (!strcmp(u, "isoyear"))
        *out = ty > 0 ? ty : ty - 1;
    else if (!strcmp(u, "quarter"))
        *out = (m - 1) / 3 + 1;
    else if (!strcmp(u, "decade"))
        *out = tm_fdiv(y, 10);
    else if (!strcmp(u, "century"))
        *out = y > 0 ? (y + 99) / 100 : -((99 - (y - 1)) / 100);
    else if (!strcmp(u, "millennium"))
        *out = y > 0 ? (y + 999) / 1000 : -((999 - (y - 1)) / 1000);
    else if (!strcmp(u, "julian") && t == TM_T_DATE)
        *out = days + 2440588;
    else
        return -1;
    return 0;
}

static int extract_common(const tm_expr_t *e, const tm_datum_t *a, bool numeric,
                          const tm_eval_env_t *env, tm_datum_t *out, char *errstr,
                          size_t errstr_size)
{
    char u[32];
    tm_type_t t = e->args[1]->type.type;
    __int128 v = 0;
    int scale = 0;
    if (unit_lookup(vp(&a[0]), a[0].u.var.len, u, sizeof(u)) != 0 ||
        extract_field(t, a[1].u.i64, u, &v, &scale) != 0)
        ROW_ERR("unit \"%.*s\" not supported for type %s", (int)a[0].u.var.len, vp(&a[0]),
                tm__type_sql_name(t));
    memset(out, 0, sizeof(*out));
    if (numeric) {
        tm_num_from_dec(v, scale, out);
        (void)env;
        return 0;
    }
    out->u.f64 = (double)v / (scale == 6 ? 1e6 : scale == 3 ? 1e3 : 1.0);
    return 0;
}

FN(f_extract)
{
    return extract_common(e, a, true, env, out, errstr, errstr_size);
}
FN(f_date_part)
{
    return extract_common(e, a, false, env, out, errstr, errstr_size);
}

FN(f_make_date)
{
    int64_t y = a[0].u.i64, m = a[1].u.i64, d = a[2].u.i64;
    bool bc = y < 0;
    int64_t ay = bc ? y + 1 : y;
    if (y == 0 || m < 1 || m > 12 || d < 1 || d > 31 ||
        d > (m == 2 ? (((ay % 4 == 0 && ay % 100 != 0) || ay % 400 == 0) ? 29 : 28)
                    : (m == 4 || m == 6 || m == 9 || m == 11) ? 30
                                                              : 31))
        ROW_ERR("date field value out of range: %lld-%02lld-%02lld", (long long)y, (long long)m,
                (long long)d);
    memset(out, 0, sizeof(*out));
    out->u.i64 = tm__days_from_civil(ay, (int)m, (int)d);
    return 0;
}

FN(f_to_timestamp)
{
    double s = a[0].u.f64;
    if (isnan(s))
        ROW_ERR("timestamp cannot be NaN");
    /* PostgreSQL rounds after moving to its 2000-01-01 epoch. */
    double r = rint((s - 946684800.0) * 1e6);
    if (isinf(s) || r < -9.2e18 || r > 9.2e18)
        ROW_ERR("timestamp out of range: \"%g\"", s);
    memset(out, 0, sizeof(*out));
    out->u.i64 = (int64_t)r + INT64_C(946684800000000);
    return 0;
}

/* ---------------------------------------------------------- JSON */

static size_t js_ws(const char *s, size_t len, size_t i)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* End of the JSON value starting at s[i] (after whitespace), or (size_t)-1. */
static size_t js_skip(const char *s, size_t len, size_t i)
{
    if (i >= len)
        return (size_t)-1;
    if (s[i] == '"') {
        for (i++; i < len; i++) {
            if (s[i] == '\\')
                i++;
            else if (s[i] == '"')
                return i + 1;
        }
        return (size_t)-1;
    }
    if (s[i] == '{' || s[i] == '[') {
        int depth = 0;
        for (; i < len; i++) {
            if (s[i] == '"') {
                size_t e2 = js_skip(s, len, i);
                if (e2 == (size_t)-1)
                    return e2;
                i = e2 - 1;
            } else if (s[i] == '{' || s[i] == '[') {
                depth++;
            } else if (s[i] == '}' || s[i] == ']') {
                if (--depth == 0)
                    return i + 1;
            }
        }
        return (size_t)-1;
    }
    while (i < len && !strchr(",}] \t\n\r", s[i]))
        i++;
    return i;
}

/* Decodes a JSON string token into the arena. */
static int js_string(const char *s, size_t len, tm_arena_t *arena, const char **out, size_t *olen)
{
    json_error_t err;
    json_t *j = json_loadb(s, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!j || !json_is_string(j)) {
        json_decref(j);
        return -1;
    }
    *olen = json_string_length(j);
    *out = tm_arena_memdup(arena, json_string_value(j), *olen);
    json_decref(j);
    return *out ? 0 : TM_ENOMEM;
}

/*
 * Finds member `key` of the object, or element `idx` of the array, in the
 * value s[b..e).  Returns 0 and the sub-value's extent, 1 when absent.
 */
static int js_get(const char *s, size_t b, size_t e2, const char *key, size_t klen, bool by_index,
                  int64_t idx, tm_arena_t *arena, size_t *rb, size_t *re)
{
    size_t i = js_ws(s, e2, b);
    if (i >= e2)
        return 1;
    if (by_index) {
        if (s[i] != '[')
            return 1;
        /* Count elements first when the index is negative. */
        int64_t n = 0, want = idx;
        if (idx < 0) {
            size_t k = js_ws(s, e2, i + 1);
            int64_t cnt = 0;
            while (k < e2 && s[k] != ']') {
                size_t x = js_skip(s, e2, k);
                if (x == (size_t)-1 || x == k)
                    return 1;
                cnt++;
                k = js_ws(s, e2, x);
                if (k < e2 && s[k] == ',')
                    k = js_ws(s, e2, k + 1);
            }
            want = cnt + idx;
            if (want < 0)
                return 1;
        }
        size_t k = js_ws(s, e2, i + 1);
        while (k < e2 && s[k] != ']') {
            size_t x = js_skip(s, e2, k);
            if (x == (size_t)-1 || x == k)
                return 1;
            if (n == want) {
                *rb = k;
                *re = x;
                return 0;
            }
            n++;
            k = js_ws(s, e2, x);
            if (k < e2 && s[k] == ',')
                k = js_ws(s, e2, k + 1);
        }
        return 1;
    }
    if (s[i] != '{')
        return 1;
    int found = 1;
    size_t k = js_ws(s, e2, i + 1);
    while (k < e2 && s[k] == '"') {
        size_t ke = js_skip(s, e2, k);
        if (ke == (size_t)-1)
            return 1;
        bool match;
        if (memchr(s + k, '\\', ke - k) == NULL) {
            match = ke - k - 2 == klen && memcmp(s + k + 1, key, klen) == 0;
        } else {
            const char *dk;
            size_t dl;
            match = js_string(s + k, ke - k, arena, &dk, &dl) == 0 && dl == klen &&
                    memcmp(dk, key, klen) == 0;
        }
        size_t v = js_ws(s, e2, ke);
        if (v >= e2 || s[v] != ':')
            return 1;
        v = js_ws(s, e2, v + 1);
        size_t ve = js_skip(s, e2, v);
        if (ve == (size_t)-1 || ve == v)
            return 1;
        if (match) {
            /* The last duplicate wins, as in jsonb. */
            *rb = v;
            *re = ve;
            found = 0;
        }
        k = js_ws(s, e2, ve);
        if (k < e2 && s[k] == ',')
            k = js_ws(s, e2, k + 1);
    }
    return found;
}

/* Splits a text[] literal '{a,b,"c d"}' into its elements (arena copies). */
static int parse_text_array(const char *s, size_t len, tm_arena_t *arena, const char ***items,
                            size_t **lens, int *n)
{
    size_t i = js_ws(s, len, 0);
    if (i >= len || s[i] != '{')
        return -1;
    int cap = 8;
    *items = tm_arena_alloc(arena, sizeof(char *) * (size_t)cap);
    *lens = tm_arena_alloc(arena, sizeof(size_t) * (size_t)cap);
    *n = 0;
    i++;
    while (i < len && s[i] != '}') {
        while (i < len && s[i] == ' ')
            i++;
        char *buf = tm_arena_alloc(arena, len + 1);
        if (!buf || !*items || !*lens)
            return TM_ENOMEM;
        size_t bl = 0;
        if (i < len && s[i] == '"') {
            for (i++; i < len && s[i] != '"'; i++) {
                if (s[i] == '\\' && i + 1 < len)
                    i++;
                buf[bl++] = s[i];
            }
            i++;
        } else {
            while (i < len && s[i] != ',' && s[i] != '}')
                buf[bl++] = s[i++];
            while (bl > 0 && buf[bl - 1] == ' ')
                bl--;
        }
        if (*n == cap) {
            const char **ni = tm_arena_alloc(arena, sizeof(char *) * (size_t)cap * 2);
            size_t *nl = tm_arena_alloc(arena, sizeof(size_t) * (size_t)cap * 2);
            if (!ni || !nl)
                return TM_ENOMEM;
            memcpy(ni, *items, sizeof(char *) * (size_t)cap);
            memcpy(nl, *lens, sizeof(size_t) * (size_t)cap);
            *items = ni;
            *lens = nl;
            cap *= 2;
        }
        (*items)[*n] = buf;
        (*lens)[*n] = bl;
        (*n)++;
        while (i < len && s[i] == ' ')
            i++;
        if (i < len && s[i] == ',')
            i++;
    }
    return i < len ? 0 : -1;
}

static bool parse_index(const char *p, size_t len, int64_t *v)
{
    if (len == 0 || len > 18)
        return false;
    size_t i = 0;
    bool neg = p[0] == '-';
    if (neg)
        i++;
    if (i >= len)
        return false;
    int64_t r = 0;
    for (; i < len; i++) {
        if (!isdigit((unsigned char)p[i]))
            return false;
        r = r * 10 + (p[i] - '0');
    }
    *v = neg ? -r : r;
    return true;
}

/* Emits s[b..e) as json (->) or as text (->>, #>>): strings unquoted, JSON null as SQL NULL. */
static int js_emit(const tm_eval_env_t *env, const char *s, size_t b, size_t e2, bool as_text,
                   tm_datum_t *out, bool *isnull, char *errstr, size_t errstr_size)
{
    if (as_text) {
        if (e2 - b == 4 && memcmp(s + b, "null", 4) == 0) {
            *isnull = true;
            return 0;
        }
        if (s[b] == '"') {
            const char *p;
            size_t l;
            int rc = js_string(s + b, e2 - b, env->arena, &p, &l);
            if (rc == TM_ENOMEM)
                NOMEM();
            if (rc == 0) {
                memset(out, 0, sizeof(*out));
                out->u.var.ptr = p;
                out->u.var.len = (uint32_t)l;
                return 0;
            }
        }
    }
    RET_TEXT(s + b, e2 - b);
}

int tm__op_json(const tm_expr_t *e, const tm_datum_t *a, const bool *nulls,
                const tm_eval_env_t *env, tm_datum_t *out, bool *isnull, char *errstr,
                size_t errstr_size)
{
    const char *s = vp(&a[0]);
    size_t len = a[0].u.var.len;
    size_t b = js_ws(s, len, 0), e2 = len;
    while (e2 > b && strchr(" \t\n\r", s[e2 - 1]))
        e2--;
    bool as_text = e->cmp_op != '>';
    if (e->cmp_op == '#') {
        const char **items;
        size_t *lens;
        int n;
        int rc = parse_text_array(vp(&a[1]), a[1].u.var.len, env->arena, &items, &lens, &n);
        if (rc == TM_ENOMEM)
            NOMEM();
        if (rc)
            ROW_ERR("malformed array literal: \"%.*s\"", (int)a[1].u.var.len, vp(&a[1]));
        for (int k = 0; k < n; k++) {
            size_t rb, re;
            int64_t idx = 0;
            size_t vb = js_ws(s, e2, b);
            bool arr = vb < e2 && s[vb] == '[';
            if (arr && !parse_index(items[k], lens[k], &idx)) {
                *isnull = true;
                return 0;
            }
            if (js_get(s, b, e2, items[k], lens[k], arr, idx, env->arena, &rb, &re) != 0) {
                *isnull = true;
                return 0;
            }
            b = rb;
            e2 = re;
        }
        return js_emit(env, s, b, e2, true, out, isnull, errstr, errstr_size);
    }
    size_t rb, re;
    bool by_index = e->args[1]->type.type != TM_T_TEXT;
    if (js_get(s, b, e2, vp(&a[1]), a[1].u.var.len, by_index, by_index ? a[1].u.i64 : 0,
               env->arena, &rb, &re) != 0) {
        *isnull = true;
        return 0;
    }
    (void)nulls;
    return js_emit(env, s, rb, re, as_text, out, isnull, errstr, errstr_size);
}

/* ---------------------------------------------------------- the table */

#define T_B TM_T_BOOL
#define T_I2 TM_T_INT16
#define T_I4 TM_T_INT32
#define T_I8 TM_T_INT64
#define T_F4 TM_T_FLOAT32
#define T_F8 TM_T_FLOAT64
#define T_N TM_T_NUMERIC
#define T_TX TM_T_TEXT
#define T_BY TM_T_BYTES
#define T_D TM_T_DATE
#define T_TM TM_T_TIME
#define T_TS TM_T_TIMESTAMP
#define T_TZ TM_T_TIMESTAMPTZ
#define T_IV TM_T_INTERVAL

static const tm__func_t functions[] = {
    {"lower", 1, {T_TX}, T_TX, f_lower, 0},
    {"upper", 1, {T_TX}, T_TX, f_upper, 0},
    {"length", 1, {T_TX}, T_I4, f_length, 0},
    {"length", 1, {T_BY}, T_I4, f_octet_length, 0},
    {"char_length", 1, {T_TX}, T_I4, f_length, 0},
    {"character_length", 1, {T_TX}, T_I4, f_length, 0},
    {"octet_length", 1, {T_TX}, T_I4, f_octet_length, 0},
    {"substring", 2, {T_TX, T_I4}, T_TX, f_substring2, 0},
    {"substring", 3, {T_TX, T_I4, T_I4}, T_TX, f_substring3, 0},
    {"substr", 2, {T_TX, T_I4}, T_TX, f_substring2, 0},
    {"substr", 3, {T_TX, T_I4, T_I4}, T_TX, f_substring3, 0},
    {"position", 2, {T_TX, T_TX}, T_I4, f_position, 0},
    {"strpos", 2, {T_TX, T_TX}, T_I4, f_position, 0},
    {"concat", -1, {0}, T_TX, f_concat, TM__FN_NONSTRICT | TM__FN_VARIADIC},
    {"btrim", 1, {T_TX}, T_TX, f_btrim1, 0},
    {"btrim", 2, {T_TX, T_TX}, T_TX, f_btrim2, 0},
    {"trim", 1, {T_TX}, T_TX, f_btrim1, 0},
    {"trim", 2, {T_TX, T_TX}, T_TX, f_btrim2, 0},
    {"ltrim", 1, {T_TX}, T_TX, f_ltrim1, 0},
    {"ltrim", 2, {T_TX, T_TX}, T_TX, f_ltrim2, 0},
    {"rtrim", 1, {T_TX}, T_TX, f_rtrim1, 0},
    {"rtrim", 2, {T_TX, T_TX}, T_TX, f_rtrim2, 0},
    {"replace", 3, {T_TX, T_TX, T_TX}, T_TX, f_replace, 0},
    {"split_part", 3, {T_TX, T_TX, T_I4}, T_TX, f_split_part, 0},
    {"repeat", 2, {T_TX, T_I4}, T_TX, f_repeat, 0},
    {"left", 2, {T_TX, T_I4}, T_TX, f_left, 0},
    {"right", 2, {T_TX, T_I4}, T_TX, f_right, 0},
    {"lpad", 2, {T_TX, T_I4}, T_TX, f_lpad2, 0},
    {"lpad", 3, {T_TX, T_I4, T_TX}, T_TX, f_lpad3, 0},
    {"rpad", 2, {T_TX, T_I4}, T_TX, f_rpad2, 0},
    {"rpad", 3, {T_TX, T_I4, T_TX}, T_TX, f_rpad3, 0},
    {"md5", 1, {T_TX}, T_TX, f_md5, 0},
    {"abs", 1, {T_I2}, T_I2, f_abs, 0},
    {"abs", 1, {T_I4}, T_I4, f_abs, 0},
    {"abs", 1, {T_I8}, T_I8, f_abs, 0},
    {"abs", 1, {T_F4}, T_F4, f_abs, 0},
    {"abs", 1, {T_F8}, T_F8, f_abs, 0},
    {"abs", 1, {T_N}, T_N, f_abs, 0},
    {"round", 1, {T_F8}, T_F8, f_round_f, 0},
    {"round", 1, {T_N}, T_N, f_round_n, 0},
    {"round", 2, {T_N, T_I4}, T_N, f_round_n2, 0},
    {"trunc", 1, {T_F8}, T_F8, f_trunc_f, 0},
    {"trunc", 1, {T_N}, T_N, f_trunc_n, 0},
    {"trunc", 2, {T_N, T_I4}, T_N, f_trunc_n2, 0},
    {"floor", 1, {T_F8}, T_F8, f_floor_f, 0},
    {"floor", 1, {T_N}, T_N, f_floor_n, 0},
    {"ceil", 1, {T_F8}, T_F8, f_ceil_f, 0},
    {"ceil", 1, {T_N}, T_N, f_ceil_n, 0},
    {"ceiling", 1, {T_F8}, T_F8, f_ceil_f, 0},
    {"ceiling", 1, {T_N}, T_N, f_ceil_n, 0},
    {"mod", 2, {T_I2, T_I2}, T_I2, f_mod, 0},
    {"mod", 2, {T_I4, T_I4}, T_I4, f_mod, 0},
    {"mod", 2, {T_I8, T_I8}, T_I8, f_mod, 0},
    {"mod", 2, {T_N, T_N}, T_N, f_mod, 0},
    {"power", 2, {T_F8, T_F8}, T_F8, f_power, 0},
    {"power", 2, {T_N, T_N}, T_N, f_power_n, 0},
    {"pow", 2, {T_F8, T_F8}, T_F8, f_power, 0},
    {"pow", 2, {T_N, T_N}, T_N, f_power_n, 0},
    {"sqrt", 1, {T_F8}, T_F8, f_sqrt, 0},
    {"sqrt", 1, {T_N}, T_N, f_sqrt_n, 0},
    {"now", 0, {0}, T_TZ, f_now, TM__FN_VOLATILE},
    {"current_timestamp", 0, {0}, T_TZ, f_now, TM__FN_VOLATILE},
    {"date_trunc", 2, {T_TX, T_TS}, T_TS, f_date_trunc, 0},
    {"date_trunc", 2, {T_TX, T_TZ}, T_TZ, f_date_trunc, 0},
    {"date_trunc", 2, {T_TX, T_IV}, T_IV, f_date_trunc, 0},
    {"date_part", 2, {T_TX, T_TS}, T_F8, f_date_part, 0},
    {"date_part", 2, {T_TX, T_TZ}, T_F8, f_date_part, 0},
    {"date_part", 2, {T_TX, T_IV}, T_F8, f_date_part, 0},
    {"date_part", 2, {T_TX, T_TM}, T_F8, f_date_part, 0},
    {"extract", 2, {T_TX, T_D}, T_N, f_extract, 0},
    {"extract", 2, {T_TX, T_TS}, T_N, f_extract, 0},
    {"extract", 2, {T_TX, T_TZ}, T_N, f_extract, 0},
    {"extract", 2, {T_TX, T_IV}, T_N, f_extract, 0},
    {"extract", 2, {T_TX, T_TM}, T_N, f_extract, 0},
    {"make_date", 3, {T_I4, T_I4, T_I4}, T_D, f_make_date, 0},
    {"to_timestamp", 1, {T_F8}, T_TZ, f_to_timestamp, 0},
};

static const char *const special_forms[] = {"coalesce", "nullif", "greatest", "least"};

bool tm__func_exists(const char *name)
{
    for (size_t i = 0; i < sizeof(functions) / sizeof(functions[0]); i++)
        if (strcasecmp(functions[i].name, name) == 0)
            return true;
    return false;
}

static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40)
        return 99;
    int d[41][41];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int c = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            int x = d[i - 1][j] + 1, y = d[i][j - 1] + 1, z = d[i - 1][j - 1] + c;
            d[i][j] = x < y ? (x < z ? x : z) : (y < z ? y : z);
        }
    }
    return d[la][lb];
}

static const char *closest_name(const char *name)
{
    const char *best = NULL;
    int bd = 3;
    for (size_t i = 0; i < sizeof(functions) / sizeof(functions[0]); i++) {
        int d = edit_distance(name, functions[i].name);
        if (d < bd) {
            bd = d;
            best = functions[i].name;
        }
    }
    for (size_t i = 0; i < sizeof(special_forms) / sizeof(special_forms[0]); i++) {
        int d = edit_distance(name, special_forms[i]);
        if (d < bd) {
            bd = d;
            best = special_forms[i];
        }
    }
    return best;
}

static void arg_types(tm_expr_t *const *args, int nargs, char *buf, size_t buflen)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < nargs && n < buflen; i++) {
        char tb[64];
        const char *t = args[i]->unknown ? "unknown" : tm_expr_type_name(&args[i]->type, tb, sizeof(tb));
        if (args[i]->kind == EK_CONST && args[i]->isnull && args[i]->unknown)
            t = "unknown";
        n += (size_t)snprintf(buf + n, buflen - n, "%s%s", i ? ", " : "", t);
    }
}

int tm__func_resolve(const char *name, tm_expr_t *const *args, int nargs, const tm__func_t **fn,
                     char *errstr, size_t errstr_size)
{
    const tm__func_t *cand[16];
    int ncand = 0;
    bool any_name = false;
    for (size_t i = 0; i < sizeof(functions) / sizeof(functions[0]); i++) {
        const tm__func_t *f = &functions[i];
        if (strcasecmp(f->name, name) != 0)
            continue;
        any_name = true;
        if (f->flags & TM__FN_VARIADIC) {
            cand[ncand++] = f;
            continue;
        }
        if (f->nargs != nargs)
            continue;
        bool ok = true;
        for (int k = 0; k < nargs && ok; k++)
            ok = args[k]->unknown || tm__can_implicit(args[k]->type.type, f->args[k]);
        if (ok && ncand < 16)
            cand[ncand++] = f;
    }
    char types[256];
    arg_types(args, nargs, types, sizeof(types));
    if (ncand == 0) {
        const char *close = any_name ? NULL : closest_name(name);
        if (close)
            return tm_seterr(errstr, errstr_size, TM_ESQL,
                             "function %s(%s) does not exist; did you mean %s?", name, types,
                             close);
        return tm_seterr(errstr, errstr_size, TM_ESQL,
                         "function %s(%s) does not exist; no function matches the given name "
                         "and argument types (add explicit type casts)",
                         name, types);
    }
    if (ncand > 1) {
        /* Most exact matches. */
        int best = -1, keep = 0;
        int score[16];
        for (int c = 0; c < ncand; c++) {
            score[c] = 0;
            for (int k = 0; k < nargs; k++)
                score[c] += !args[k]->unknown && args[k]->type.type == cand[c]->args[k];
            if (score[c] > best)
                best = score[c];
        }
        for (int c = 0; c < ncand; c++)
            if (score[c] == best)
                cand[keep++] = cand[c];
        ncand = keep;
    }
    if (ncand > 1) {
        /* Preferred types where a conversion is needed. */
        int best = -1, keep = 0;
        int score[16];
        for (int c = 0; c < ncand; c++) {
            score[c] = 0;
            for (int k = 0; k < nargs; k++)
                score[c] += (args[k]->unknown || args[k]->type.type != cand[c]->args[k]) &&
                            tm__type_preferred(cand[c]->args[k]);
            if (score[c] > best)
                best = score[c];
        }
        for (int c = 0; c < ncand; c++)
            if (score[c] == best)
                cand[keep++] = cand[c];
        ncand = keep;
    }
    if (ncand > 1) {
        /* Unknown literals prefer the string category. */
        int keep = 0;
        for (int c = 0; c < ncand; c++) {
            bool ok = true;
            for (int k = 0; k < nargs; k++)
                if (args[k]->unknown && tm__type_category(cand[c]->args[k]) != 'S')
                    ok = false;
            if (ok)
                cand[keep++] = cand[c];
        }
        if (keep > 0)
            ncand = keep;
    }
    if (ncand > 1)
        return tm_seterr(errstr, errstr_size, TM_ESQL,
                         "function %s(%s) is not unique; add explicit type casts", name, types);
    *fn = cand[0];
    return 0;
}
