/*
 * numeric.h — exact NUMERIC arithmetic with PostgreSQL 15's rules, over the
 * tm_datum_t representation of row.h.
 *
 * Representation (row.h): a finite value is u.dec (an unscaled __int128)
 * with `scale` digits after the decimal point; a value that does not fit
 * 128 bits is TM_DATUM_WIDE with its plain decimal text in u.var; NaN and
 * ±Infinity are TM_DATUM_NAN with the text "NaN", "Infinity" or
 * "-Infinity" (any case; "inf" is accepted on input) in u.var.  The scale
 * of a value is PostgreSQL's display scale (dscale): 1.50 has scale 2.
 *
 * Invariants:
 *   1. Every result is exact, or rounded exactly as PostgreSQL rounds it
 *      (half away from zero), or an error: never a wrong value.
 *   2. A finite result that fits 128 bits is returned as u.dec + scale;
 *      only a wider one is TM_DATUM_WIDE (its text allocated in `arena`).
 *   3. Result scales are PostgreSQL's: a + b and a - b keep max(scale),
 *      a * b the sum of the scales, a / b select_div_scale (at least 16
 *      significant digits, no less than either input's scale, at most
 *      1000), a % b max(scale); round(a, n) gives scale max(n, 0).
 *   4. NaN and ±Infinity follow PostgreSQL 15 (NaN op x = NaN,
 *      Inf - Inf = NaN, Inf * 0 = NaN, x / Inf = 0, NaN sorts above +Inf).
 *
 * Errors: functions that can fail return 0, TM_EINVAL for a row error with
 * PostgreSQL's message in errstr ("division by zero", "numeric field
 * overflow", "value overflows numeric format", "integer out of range", …)
 * or TM_ENOMEM.  `arena` may be NULL only when the caller knows no WIDE
 * result can arise; then a wide result is TM_EINVAL "value overflows
 * numeric format".
 *
 * Thread: any; pure functions (memory only from `arena` and the heap for
 * temporaries freed before return).
 */
#ifndef TM_CORE_NUMERIC_H
#define TM_CORE_NUMERIC_H

#include "core/arena.h"
#include "core/row.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest display scale PostgreSQL produces (NUMERIC_MAX_DISPLAY_SCALE). */
#define TM_NUM_MAX_SCALE 1000
/* Most digits a value may have before the decimal point here (PostgreSQL allows 131072). */
#define TM_NUM_MAX_INT_DIGITS 4000

/* Integer -> numeric with scale 0.  Never fails. */
void tm_num_from_int(int64_t v, tm_datum_t *out);
/* An unscaled 128-bit value with `scale` -> numeric.  Never fails. */
void tm_num_from_dec(__int128 v, int scale, tm_datum_t *out);
/*
 * double -> numeric as PostgreSQL's float8_numeric (15 significant digits,
 * `digits` = 15) or float4_numeric (`digits` = 6); NaN and ±Infinity map
 * to the numeric specials.
 */
int tm_num_from_double(double v, int digits, tm_arena_t *arena, tm_datum_t *out, char *errstr,
                       size_t errstr_size);
/*
 * Text -> numeric as numeric_in: optional sign, digits with an optional
 * point, optional exponent, surrounding spaces, "NaN", "Infinity", "inf".
 * A bad string is TM_EINVAL "invalid input syntax for type numeric: \"…\"".
 */
int tm_num_parse(const char *s, size_t len, tm_arena_t *arena, tm_datum_t *out, char *errstr,
                 size_t errstr_size);
/*
 * Numeric -> canonical text (PostgreSQL's numeric_out: plain digits, the
 * value's scale, "NaN"/"Infinity"/"-Infinity").  Returns the length that
 * was needed, snprintf-style; buf is always NUL-terminated when buflen > 0.
 */
size_t tm_num_format(const tm_datum_t *d, char *buf, size_t buflen);
/* The same into the arena; NULL on memory exhaustion.  *len gets the length. */
char *tm_num_to_text(const tm_datum_t *d, tm_arena_t *arena, size_t *len);

/* Numeric -> double (numeric_float8: via the text, correctly rounded). */
double tm_num_to_double(const tm_datum_t *d);
/*
 * Numeric -> integer, rounding half away from zero, range-checked against
 * [min, max]; out of range is TM_EINVAL `range_msg` ("integer out of
 * range"); NaN/Infinity are "cannot convert NaN to integer"-style errors
 * naming `type_name` ("smallint", "integer", "bigint").
 */
int tm_num_to_int(const tm_datum_t *d, int64_t min, int64_t max, const char *type_name,
                  int64_t *out, char *errstr, size_t errstr_size);

/* True for NaN and ±Infinity. */
bool tm_num_is_special(const tm_datum_t *d);
/* -1, 0, 1 (NaN: 0; ±Infinity: ±1). */
int tm_num_sign(const tm_datum_t *d);
/* Total order: by value (1.5 = 1.50), NaN = NaN above +Infinity above every number. */
int tm_num_cmp(const tm_datum_t *a, const tm_datum_t *b);
/* A hash equal for equal values whatever their scale or representation. */
uint64_t tm_num_hash(const tm_datum_t *d, uint64_t seed);

int tm_num_add(const tm_datum_t *a, const tm_datum_t *b, tm_arena_t *arena, tm_datum_t *out,
               char *errstr, size_t errstr_size);
int tm_num_sub(const tm_datum_t *a, const tm_datum_t *b, tm_arena_t *arena, tm_datum_t *out,
               char *errstr, size_t errstr_size);
int tm_num_mul(const tm_datum_t *a, const tm_datum_t *b, tm_arena_t *arena, tm_datum_t *out,
               char *errstr, size_t errstr_size);
/* a / b with PostgreSQL's select_div_scale result scale. */
int tm_num_div(const tm_datum_t *a, const tm_datum_t *b, tm_arena_t *arena, tm_datum_t *out,
               char *errstr, size_t errstr_size);
/*
 * a / b rounded (half away from zero) to exactly `rscale` digits
 * (0..TM_NUM_MAX_SCALE): for callers that fix the scale themselves (avg).
 */
int tm_num_div_scale(const tm_datum_t *a, const tm_datum_t *b, int rscale, tm_arena_t *arena,
                     tm_datum_t *out, char *errstr, size_t errstr_size);
/* The scale select_div_scale picks for a / b (finite, b non-zero). */
int tm_num_select_div_scale(const tm_datum_t *a, const tm_datum_t *b);
/* a % b: truncating division's remainder, sign of a, scale max(scales). */
int tm_num_mod(const tm_datum_t *a, const tm_datum_t *b, tm_arena_t *arena, tm_datum_t *out,
               char *errstr, size_t errstr_size);
/* -a.  Never fails for 128-bit values; may allocate for wide ones. */
int tm_num_neg(const tm_datum_t *a, tm_arena_t *arena, tm_datum_t *out, char *errstr,
               size_t errstr_size);
int tm_num_abs(const tm_datum_t *a, tm_arena_t *arena, tm_datum_t *out, char *errstr,
               size_t errstr_size);
/*
 * round(a, n): half away from zero at `n` digits after the point (n may be
 * negative: round(1234, -2) = 1200); result scale max(n, 0).
 */
int tm_num_round(const tm_datum_t *a, int n, tm_arena_t *arena, tm_datum_t *out, char *errstr,
                 size_t errstr_size);
/* trunc(a, n), floor(a), ceil(a) (the latter two with scale 0). */
int tm_num_trunc(const tm_datum_t *a, int n, tm_arena_t *arena, tm_datum_t *out, char *errstr,
                 size_t errstr_size);
int tm_num_floor(const tm_datum_t *a, tm_arena_t *arena, tm_datum_t *out, char *errstr,
                 size_t errstr_size);
int tm_num_ceil(const tm_datum_t *a, tm_arena_t *arena, tm_datum_t *out, char *errstr,
                size_t errstr_size);
/*
 * sqrt(a) as PostgreSQL's numeric_sqrt: the exact square root rounded half
 * up to max(16 - (2 * weight + 1), dscale) digits (weight in base-10000
 * digits, so at least 16 significant digits); a < 0 is "cannot take square
 * root of a negative number".
 */
int tm_num_sqrt(const tm_datum_t *a, tm_arena_t *arena, tm_datum_t *out, char *errstr,
                size_t errstr_size);
/*
 * power(a, b) as PostgreSQL 15's numeric_power.  An integral exponent
 * (within int32) gives the exact power rounded to max(16, a's scale)
 * digits; any other exponent exp(b * ln(a)) rounded to 16 - floor(log10 of
 * the result) digits (at least either input's scale), computed in binary128
 * (a row error when that is not enough digits or the build lacks
 * libquadmath).  NaN and Infinity follow PostgreSQL; 0 ^ negative and
 * negative ^ non-integer are PostgreSQL's errors.
 */
int tm_num_power(const tm_datum_t *a, const tm_datum_t *b, tm_arena_t *arena, tm_datum_t *out,
                 char *errstr, size_t errstr_size);
/*
 * The numeric(precision, scale) typmod: rounds to `scale` and fails with
 * "numeric field overflow" when more than precision - scale digits remain
 * before the point.  precision < 0 means unconstrained (no-op).
 */
int tm_num_apply_typmod(const tm_datum_t *a, int precision, int scale, tm_arena_t *arena,
                        tm_datum_t *out, char *errstr, size_t errstr_size);

#endif
