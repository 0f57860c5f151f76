/*
 * binlog_rows.c — unit tests of the mysql-cdc row decoder on binlog bytes
 * captured from a real MariaDB 10.11 (tests/data/mysql/types.json, made by
 * tests/data/mysql/capture.py): every event's CRC32, the TABLE_MAP with its
 * FULL metadata, and each row image of an INSERT of three rows (typical
 * values, extremes, all NULL), two UPDATEs and a DELETE, compared value by
 * value with the server's own text of the row before and after each
 * statement.  Also: rows v2 framing (MySQL) built from the v1 bytes,
 * bigint.unsigned.handling.mode=long, and every truncation and a flipped bit
 * of each event rejected without a crash.
 */
#include "tm_test.h"

#include "core/error.h"
#include "core/row.h"
#include "mysql/binlog_rows.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>

typedef struct ev {
    uint8_t *bytes;
    size_t len;
    uint8_t type;
} ev_t;

static json_t *doc;
static ev_t evs[32];
static int nevs;

static int hexval(char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

static void load(void)
{
    char path[512];
    json_error_t jerr;
    doc = json_load_file(tm_test_data("mysql/types.json", path, sizeof(path)), 0, &jerr);
    TM_REQUIRE(doc != NULL);
    json_t *events = json_object_get(doc, "events");
    size_t i;
    json_t *e;
    json_array_foreach(events, i, e)
    {
        TM_REQUIRE(nevs < 32);
        const char *hex = json_string_value(json_object_get(e, "hex"));
        size_t n = strlen(hex) / 2;
        evs[nevs].bytes = malloc(n);
        for (size_t k = 0; k < n; k++)
            evs[nevs].bytes[k] = (uint8_t)(hexval(hex[2 * k]) << 4 | hexval(hex[2 * k + 1]));
        evs[nevs].len = n;
        evs[nevs].type = (uint8_t)json_integer_value(json_object_get(e, "type"));
        nevs++;
    }
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static void fmt_frac(char *o, size_t n, int64_t us, int prec)
{
    if (prec <= 0) {
        o[0] = '\0';
        return;
    }
    char f[8];
    snprintf(f, sizeof(f), "%06" PRId64, us);
    snprintf(o, n, ".%.*s", prec, f);
}

/* The server's text form (as the mariadb client prints it) of one decoded value. */
static void format_value(const tm_column_t *col, const tm_datum_t *d, char *out, size_t n)
{
    char frac[16];
    switch (col->type) {
    case TM_T_BOOL:
        snprintf(out, n, "%d", d->u.b ? 1 : 0);
        break;
    case TM_T_INT16:
    case TM_T_INT32:
    case TM_T_INT64:
        snprintf(out, n, "%" PRId64, d->u.i64);
        break;
    case TM_T_FLOAT32:
    case TM_T_FLOAT64:
        /* The shortest text that reads back as the same double, as the server prints. */
        for (int p = 1; p <= 17; p++) {
            snprintf(out, n, "%.*g", p, d->u.f64);
            if (strtod(out, NULL) == d->u.f64)
                break;
        }
        break;
    case TM_T_NUMERIC:
        tm_numeric_format(d, out, n);
        break;
    case TM_T_DATE: {
        int64_t y;
        unsigned m, dd;
        civil_from_days(d->u.i64, &y, &m, &dd);
        snprintf(out, n, "%04" PRId64 "-%02u-%02u", y, m, dd);
        break;
    }
    case TM_T_TIMESTAMP:
    case TM_T_TIMESTAMPTZ: {
        int64_t us = d->u.i64, days = us >= 0 ? us / 86400000000LL : -((-us + 86399999999LL) / 86400000000LL);
        int64_t rem = us - days * 86400000000LL, y;
        unsigned m, dd;
        civil_from_days(days, &y, &m, &dd);
        fmt_frac(frac, sizeof(frac), rem % 1000000, col->precision);
        snprintf(out, n, "%04" PRId64 "-%02u-%02u %02d:%02d:%02d%s", y, m, dd,
                 (int)(rem / 3600000000LL), (int)(rem / 60000000 % 60), (int)(rem / 1000000 % 60),
                 frac);
        break;
    }
    case TM_T_TIME: {
        int64_t us = d->u.i64;
        bool neg = us < 0;
        if (neg)
            us = -us;
        fmt_frac(frac, sizeof(frac), us % 1000000, col->precision);
        snprintf(out, n, "%s%02" PRId64 ":%02d:%02d%s", neg ? "-" : "", (int64_t)(us / 3600000000LL),
                 (int)(us / 60000000 % 60), (int)(us / 1000000 % 60), frac);
        break;
    }
    case TM_T_BYTES:
        if (col->semantic != NULL && strcmp(col->semantic, "io.debezium.data.Bits") == 0) {
            uint64_t v = 0;
            for (int i = (int)d->u.var.len - 1; i >= 0; i--)
                v = v << 8 | (uint8_t)d->u.var.ptr[i];
            snprintf(out, n, "%" PRIu64, v);
        } else {
            /* Spatial values hold the SRID (4 bytes) before the WKB the server prints. */
            uint32_t i = col->semantic != NULL &&
                                 strncmp(col->semantic, "io.debezium.data.geometry.", 26) == 0
                             ? 4
                             : 0;
            size_t k = 0;
            for (; i < d->u.var.len && k + 3 < n; i++)
                k += (size_t)snprintf(out + k, n - k, "%02X", (uint8_t)d->u.var.ptr[i]);
            out[k] = '\0';
        }
        break;
    default:
        snprintf(out, n, "%.*s", (int)d->u.var.len, d->u.var.ptr);
        break;
    }
}

/* Compares a decoded row with the server's row (a JSON array of strings/nulls). */
static void check_row(const tm_schema_t *s, const tm_row_t *row, json_t *want)
{
    TM_REQUIRE(row != NULL && want != NULL);
    TM_REQUIRE((int)json_array_size(want) == s->ncols);
    for (int i = 0; i < s->ncols; i++) {
        json_t *w = json_array_get(want, (size_t)i);
        char got[512];
        if (tm_row_is_null(row, i)) {
            if (!json_is_null(w))
                fprintf(stderr, "column %s: got NULL, want %s\n", s->cols[i].name,
                        json_string_value(w));
            TM_CHECK(json_is_null(w));
            continue;
        }
        format_value(&s->cols[i], &row->vals[i], got, sizeof(got));
        if (json_is_null(w) || strcmp(got, json_string_value(w)) != 0)
            fprintf(stderr, "column %s: got '%s', want '%s'\n", s->cols[i].name, got,
                    json_is_null(w) ? "NULL" : json_string_value(w));
        TM_CHECK(!json_is_null(w) && strcmp(got, json_string_value(w)) == 0);
    }
}

static json_t *row_by_id(json_t *rows, int64_t id)
{
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        if (strtoll(json_string_value(json_array_get(r, 0)), NULL, 10) == id)
            return r;
    }
    return NULL;
}

static void test_checksums_and_headers(void)
{
    char err[256];
    TM_REQUIRE(nevs == 9);
    for (int i = 0; i < nevs; i++) {
        tm_my_event_header_t h;
        TM_CHECK(tm_my_event_header_parse(evs[i].bytes, evs[i].len, &h, err, sizeof(err)) == 0);
        TM_CHECK(h.type == evs[i].type);
        TM_CHECK(h.server_id == 1);
        TM_CHECK(tm_my_event_checksum_verify(evs[i].bytes, evs[i].len, err, sizeof(err)) == 0);
        /* One flipped bit anywhere is caught. */
        evs[i].bytes[evs[i].len / 2] ^= 0x10;
        TM_CHECK(tm_my_event_checksum_verify(evs[i].bytes, evs[i].len, err, sizeof(err)) ==
                 TM_ECORRUPT);
        evs[i].bytes[evs[i].len / 2] ^= 0x10;
    }
    TM_CHECK(tm_my_crc32((const uint8_t *)"123456789", 9) == 0xCBF43926u);
}

static void test_tablemap_metadata(void)
{
    char err[256];
    tm_my_tablemap_t *tm = NULL;
    TM_REQUIRE(evs[1].type == TM_MY_EV_TABLE_MAP);
    TM_REQUIRE(tm_my_tablemap_parse(evs[1].bytes + TM_MY_HEADER_LEN,
                                    evs[1].len - TM_MY_HEADER_LEN - TM_MY_CHECKSUM_LEN, &tm, err,
                                    sizeof(err)) == 0);
    TM_CHECK_STR(tm->db, "capture");
    TM_CHECK_STR(tm->table, "types");
    json_t *names = json_object_get(doc, "columns");
    TM_REQUIRE(tm->ncols == json_array_size(names));
    TM_CHECK(tm->has_names && tm->has_signedness);
    for (uint32_t i = 0; i < tm->ncols; i++) {
        const char *want = json_string_value(json_array_get(names, i));
        TM_CHECK_STR(tm->cols[i].name, want);
        bool u = strstr(want, "c_u") == want;
        TM_CHECK(tm->cols[i].is_unsigned == u);
    }
    TM_CHECK(tm->cols[0].key_index == 0 && !tm->cols[0].nullable);
    TM_CHECK(tm->cols[1].key_index == -1 && tm->cols[1].nullable);
    tm_my_mapping_t map = {true};
    tm_schema_t *s = NULL;
    TM_REQUIRE(tm_my_schema_from_tablemap(tm, "inv", &map, &s, err, sizeof(err)) == 0);
    TM_CHECK(s->nkeys == 1 && s->key_cols[0] == 0);
    int c;
    TM_CHECK((c = tm_schema_find(s, "c_ubig")) >= 0 && s->cols[c].type == TM_T_NUMERIC);
    TM_CHECK((c = tm_schema_find(s, "c_latin1")) >= 0 && s->cols[c].type == TM_T_TEXT);
    TM_CHECK((c = tm_schema_find(s, "c_blob")) >= 0 && s->cols[c].type == TM_T_BYTES);
    TM_CHECK((c = tm_schema_find(s, "c_text")) >= 0 && s->cols[c].type == TM_T_TEXT);
    TM_CHECK((c = tm_schema_find(s, "c_binary")) >= 0 && s->cols[c].type == TM_T_BYTES);
    TM_CHECK((c = tm_schema_find(s, "c_bit1")) >= 0 && s->cols[c].type == TM_T_BOOL);
    TM_CHECK((c = tm_schema_find(s, "c_enum")) >= 0 && s->cols[c].type == TM_T_ENUM);
    TM_CHECK_STR(s->cols[c].enum_values, "red,green,blue");
    TM_CHECK((c = tm_schema_find(s, "c_dt3")) >= 0 && s->cols[c].type == TM_T_TIMESTAMP &&
             s->cols[c].precision == 3);
    TM_CHECK((c = tm_schema_find(s, "c_ts6")) >= 0 && s->cols[c].type == TM_T_TIMESTAMPTZ);
    TM_CHECK((c = tm_schema_find(s, "c_year")) >= 0 && s->cols[c].type == TM_T_INT32);
    tm_schema_unref(s);
    /* Same bytes, same shape. */
    tm_my_tablemap_t *tm2 = NULL;
    TM_REQUIRE(tm_my_tablemap_parse(evs[3].bytes + TM_MY_HEADER_LEN,
                                    evs[3].len - TM_MY_HEADER_LEN - TM_MY_CHECKSUM_LEN, &tm2, err,
                                    sizeof(err)) == 0);
    TM_CHECK(tm_my_tablemap_same_shape(tm, tm2));
    tm2->cols[3].meta ^= 1;
    TM_CHECK(!tm_my_tablemap_same_shape(tm, tm2));
    tm_my_tablemap_free(tm2);
    tm_my_tablemap_free(tm);
}

/* Decodes events[ti] (TABLE_MAP) + events[ri] (rows) and checks every image against statement si. */
static void check_statement(int ti, int ri, int si, bool precise, int *nrows)
{
    char err[256];
    tm_my_tablemap_t *tm = NULL;
    TM_REQUIRE(tm_my_tablemap_parse(evs[ti].bytes + TM_MY_HEADER_LEN,
                                    evs[ti].len - TM_MY_HEADER_LEN - TM_MY_CHECKSUM_LEN, &tm, err,
                                    sizeof(err)) == 0);
    tm_my_mapping_t map = {precise};
    tm_schema_t *s = NULL;
    TM_REQUIRE(tm_my_schema_from_tablemap(tm, "inv", &map, &s, err, sizeof(err)) == 0);
    tm_my_rows_t r;
    TM_REQUIRE(tm_my_rows_parse(evs[ri].type, evs[ri].bytes + TM_MY_HEADER_LEN,
                                evs[ri].len - TM_MY_HEADER_LEN - TM_MY_CHECKSUM_LEN, &r, err,
                                sizeof(err)) == 0);
    TM_CHECK(r.table_id == tm->table_id);
    json_t *st = json_array_get(json_object_get(doc, "statements"), (size_t)si);
    tm_batch_t *b = tm_batch_new();
    tm_row_t *before, *after;
    int rc;
    *nrows = 0;
    while ((rc = tm_my_rows_next(&r, tm, s, b, &before, &after, err, sizeof(err))) == 1) {
        (*nrows)++;
        const tm_row_t *any = after ? after : before;
        int64_t id = any->vals[0].u.i64;
        if (r.op != TM_OP_CREATE)
            check_row(s, before, row_by_id(json_object_get(st, "before"), id));
        else
            TM_CHECK(before == NULL);
        if (r.op != TM_OP_DELETE)
            check_row(s, after, row_by_id(json_object_get(st, "after"), id));
        else
            TM_CHECK(after == NULL);
    }
    if (rc < 0)
        fprintf(stderr, "decode error: %s\n", err);
    TM_CHECK(rc == 0);
    tm_batch_unref(b);
    tm_schema_unref(s);
    tm_my_tablemap_free(tm);
}

static void test_insert_every_type(void)
{
    int n;
    TM_REQUIRE(evs[2].type == TM_MY_EV_WRITE_ROWS_V1);
    check_statement(1, 2, 0, true, &n);
    TM_CHECK(n == 3);
}

static void test_updates_and_delete(void)
{
    int n;
    TM_REQUIRE(evs[4].type == TM_MY_EV_UPDATE_ROWS_V1 && evs[8].type == TM_MY_EV_DELETE_ROWS_V1);
    check_statement(3, 4, 1, true, &n);
    TM_CHECK(n == 1);
    check_statement(5, 6, 2, true, &n);
    TM_CHECK(n == 1);
    check_statement(7, 8, 3, true, &n);
    TM_CHECK(n == 1);
}

/* bigint.unsigned.handling.mode = long: 2^64-1 wraps to -1, 2^63 to INT64_MIN, as in Debezium. */
static void test_bigint_unsigned_long(void)
{
    char err[256];
    tm_my_tablemap_t *tm = NULL;
    TM_REQUIRE(tm_my_tablemap_parse(evs[1].bytes + 19, evs[1].len - 23, &tm, err,
                                    sizeof(err)) == 0);
    tm_my_mapping_t map = {false};
    tm_schema_t *s = NULL;
    TM_REQUIRE(tm_my_schema_from_tablemap(tm, "inv", &map, &s, err, sizeof(err)) == 0);
    int c = tm_schema_find(s, "c_ubig");
    TM_REQUIRE(c >= 0 && s->cols[c].type == TM_T_INT64);
    tm_my_rows_t r;
    TM_REQUIRE(tm_my_rows_parse(evs[2].type, evs[2].bytes + 19, evs[2].len - 23, &r, err,
                                sizeof(err)) == 0);
    tm_batch_t *b = tm_batch_new();
    tm_row_t *before, *after;
    TM_REQUIRE(tm_my_rows_next(&r, tm, s, b, &before, &after, err, sizeof(err)) == 1);
    TM_CHECK(after->vals[c].u.i64 == -1);
    TM_REQUIRE(tm_my_rows_next(&r, tm, s, b, &before, &after, err, sizeof(err)) == 1);
    TM_CHECK(after->vals[c].u.i64 == INT64_MIN);
    tm_batch_unref(b);
    tm_schema_unref(s);
    tm_my_tablemap_free(tm);
}

/* MySQL 5.6+ writes rows v2: the same body with an extra-data block after the post-header. */
static void test_rows_v2(void)
{
    char err[256];
    const ev_t *v1 = &evs[4]; /* UPDATE v1 */
    size_t blen = v1->len - 23;
    uint8_t *body = malloc(blen + 4);
    memcpy(body, v1->bytes + 19, 8);
    body[8] = 4; /* extra length, counting itself */
    body[9] = 0;
    body[10] = 0; /* two bytes of extra data (a type and a length of nothing, say) */
    body[11] = 0;
    memcpy(body + 12, v1->bytes + 19 + 8, blen - 8);
    tm_my_rows_t a, b;
    TM_REQUIRE(tm_my_rows_parse(TM_MY_EV_UPDATE_ROWS_V1, v1->bytes + 19, blen, &a, err,
                                sizeof(err)) == 0);
    TM_REQUIRE(tm_my_rows_parse(TM_MY_EV_UPDATE_ROWS_V2, body, blen + 4, &b, err, sizeof(err)) ==
               0);
    TM_CHECK(b.op == TM_OP_UPDATE && a.table_id == b.table_id && a.ncols == b.ncols);
    TM_CHECK(b.end - b.p == a.end - a.p && memcmp(a.p, b.p, (size_t)(a.end - a.p)) == 0);
    /* An extra length below 2 is corrupt. */
    body[8] = 1;
    TM_CHECK(tm_my_rows_parse(TM_MY_EV_UPDATE_ROWS_V2, body, blen + 4, &b, err, sizeof(err)) ==
             TM_ECORRUPT);
    free(body);
}

/* Every prefix of every event, and each byte flipped, decodes to an error or a value, never a crash. */
static void test_truncations_and_corruption(void)
{
    char err[256];
    tm_my_mapping_t map = {true};
    static const int full[4] = {3, 1, 1, 1};
    for (int pair = 0; pair < 4; pair++) {
        const ev_t *t = &evs[1 + 2 * pair], *rv = &evs[2 + 2 * pair];
        size_t tlen = t->len - 23, rlen = rv->len - 23;
        for (size_t cut = 0; cut < tlen; cut++) {
            uint8_t *copy = malloc(cut ? cut : 1);
            memcpy(copy, t->bytes + 19, cut);
            tm_my_tablemap_t *tm = NULL;
            int rc = tm_my_tablemap_parse(copy, cut, &tm, err, sizeof(err));
            /* Cutting inside the optional metadata may leave a valid shorter map. */
            TM_CHECK(rc == TM_ECORRUPT || (rc == 0 && tm != NULL));
            tm_my_tablemap_free(tm);
            free(copy);
        }
        tm_my_tablemap_t *tm = NULL;
        tm_schema_t *s = NULL;
        TM_REQUIRE(tm_my_tablemap_parse(t->bytes + 19, tlen, &tm, err, sizeof(err)) == 0);
        TM_REQUIRE(tm_my_schema_from_tablemap(tm, "inv", &map, &s, err, sizeof(err)) == 0);
        for (size_t cut = 0; cut < rlen; cut++) {
            for (int flip = 0; flip < 2; flip++) {
                uint8_t *copy = malloc(rlen);
                memcpy(copy, rv->bytes + 19, rlen);
                size_t len = flip ? rlen : cut;
                if (flip)
                    copy[cut] ^= 0xA5;
                tm_my_rows_t r;
                tm_batch_t *b = tm_batch_new();
                tm_row_t *before, *after;
                int rc = tm_my_rows_parse(rv->type, copy, len, &r, err, sizeof(err)), n = 0;
                if (rc == 0) {
                    while ((rc = tm_my_rows_next(&r, tm, s, b, &before, &after, err,
                                                 sizeof(err))) == 1)
                        n++;
                }
                /* A cut at a row boundary is a shorter valid event: fewer rows, no error. */
                if (!flip)
                    TM_CHECK(rc == TM_ECORRUPT || rc == TM_EUNSUPPORTED ||
                             (rc == 0 && n < full[pair]));
                else
                    TM_CHECK(rc == 0 || rc == TM_ECORRUPT || rc == TM_EUNSUPPORTED);
                tm_batch_unref(b);
                free(copy);
            }
        }
        tm_schema_unref(s);
        tm_my_tablemap_free(tm);
    }
}

/* Bit-at-a-time CRC-32, the definition the table-driven one must agree with. */
static uint32_t crc32_bitwise(const uint8_t *p, size_t len)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}

static void test_crc32_every_length_and_alignment(void)
{
    uint8_t buf[160];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(buf); i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    int bad = 0;
    for (size_t off = 0; off < 8; off++)
        for (size_t len = 0; off + len <= sizeof(buf); len++)
            bad += tm_my_crc32(buf + off, len) != crc32_bitwise(buf + off, len);
    TM_CHECK_INT(bad, 0);
}

/* The server's decimal2bin of sign, integer digits (intg of them) and fraction digits (scale). */
static size_t decimal2bin(bool neg, const char *ip, int intg, const char *fp, int scale,
                          uint8_t *out)
{
    static const int d2b[10] = {0, 1, 1, 2, 2, 3, 3, 4, 4, 4};
    size_t n = 0;
    const char *groups[16];
    int widths[16], ng = 0;
    if (intg % 9) {
        groups[ng] = ip;
        widths[ng++] = intg % 9;
    }
    for (int g = 0; g < intg / 9; g++) {
        groups[ng] = ip + intg % 9 + g * 9;
        widths[ng++] = 9;
    }
    for (int g = 0; g < scale / 9; g++) {
        groups[ng] = fp + g * 9;
        widths[ng++] = 9;
    }
    if (scale % 9) {
        groups[ng] = fp + (scale / 9) * 9;
        widths[ng++] = scale % 9;
    }
    for (int g = 0; g < ng; g++) {
        uint32_t v = 0;
        for (int k = 0; k < widths[g]; k++)
            v = v * 10 + (uint32_t)(groups[g][k] - '0');
        for (int b = d2b[widths[g]] - 1; b >= 0; b--)
            out[n++] = (uint8_t)(v >> (8 * b));
    }
    if (neg)
        for (size_t i = 0; i < n; i++)
            out[i] ^= 0xFF;
    out[0] ^= 0x80;
    return n;
}

/*
 * DECIMAL(p,s) for every precision 1..65 and a spread of scales, random
 * digits, both signs: the decoder's text (through tm_numeric_format) is the
 * digits with the integer part's leading zeros dropped.  Precisions up to 38
 * take the 128-bit path, wider ones the text path: the same answer both ways.
 */
static void test_decimal_every_precision(void)
{
    uint32_t x = 777;
    int bad = 0, cases = 0;
    for (int prec = 1; prec <= 65; prec++) {
        for (int scale = 0; scale <= prec && scale <= 30; scale += (prec > 12 ? 7 : 1)) {
            for (int rep = 0; rep < 6; rep++) {
                char ip[80], fp[40], want[130];
                int intg = prec - scale;
                bool nonzero = false;
                for (int i = 0; i < intg; i++) {
                    x = x * 1103515245u + 12345u;
                    /* Some values with leading zeros, some with every digit 9. */
                    bool zero = rep == 1 && i < intg / 2;
                    ip[i] = rep == 0 ? '9' : (char)('0' + (zero ? 0 : (x >> 16) % 10));
                    nonzero |= ip[i] != '0';
                }
                for (int i = 0; i < scale; i++) {
                    x = x * 1103515245u + 12345u;
                    fp[i] = rep == 0 ? '9' : (char)('0' + (x >> 16) % 10);
                    nonzero |= fp[i] != '0';
                }
                bool neg = (rep & 1) && nonzero;
                char *w = want;
                if (neg)
                    *w++ = '-';
                int skip = 0;
                while (skip < intg - 1 && ip[skip] == '0')
                    skip++;
                if (intg == 0)
                    *w++ = '0';
                else
                    for (int i = skip; i < intg; i++)
                        *w++ = ip[i];
                if (scale > 0) {
                    *w++ = '.';
                    memcpy(w, fp, (size_t)scale);
                    w += scale;
                }
                *w = '\0';
                uint8_t bin[40];
                size_t n = decimal2bin(neg, ip, intg, fp, scale, bin);
                tm_batch_t *b = tm_batch_new();
                tm_datum_t d;
                memset(&d, 0, sizeof(d));
                char got[160] = "";
                int rc = tm_my_decimal_decode(b, &d, bin, n, prec, scale);
                if (rc == 0)
                    tm_numeric_format(&d, got, sizeof(got));
                if (rc != 0 || strcmp(got, want) != 0) {
                    if (bad++ < 5)
                        fprintf(stderr, "DECIMAL(%d,%d): want %s, got %s (rc %d)\n", prec, scale,
                                want, got, rc);
                }
                cases++;
                tm_batch_unref(b);
            }
        }
    }
    TM_CHECK(cases > 1000);
    TM_CHECK_INT(bad, 0);
    /* A group above 999999999 (or above its digits) is not a decimal: corrupt, not a number. */
    uint8_t bin[40];
    size_t n = decimal2bin(false, "123456789", 9, "", 0, bin);
    bin[0] = 0x80 | 0x3B, bin[1] = 0x9A, bin[2] = 0xCA, bin[3] = 0x00; /* 1000000000 */
    tm_batch_t *b = tm_batch_new();
    tm_datum_t d;
    memset(&d, 0, sizeof(d));
    TM_CHECK_INT(tm_my_decimal_decode(b, &d, bin, n, 9, 0), TM_ECORRUPT);
    n = decimal2bin(false, "12", 2, "5", 1, bin);
    bin[0] = 0x80 | 0; bin[1] = 100; /* 100 in a two-digit group */
    TM_CHECK_INT(tm_my_decimal_decode(b, &d, bin, n, 3, 1), TM_ECORRUPT);
    tm_batch_unref(b);
}

static void test_days_from_civil(void)
{
    TM_CHECK(tm_my_days_from_civil(1970, 1, 1) == 0);
    TM_CHECK(tm_my_days_from_civil(2000, 3, 1) == 11017);
    TM_CHECK(tm_my_days_from_civil(1000, 1, 1) == -354285);
    TM_CHECK(tm_my_days_from_civil(9999, 12, 31) == 2932896);
}

int main(void)
{
    load();
    TM_RUN(test_checksums_and_headers);
    TM_RUN(test_tablemap_metadata);
    TM_RUN(test_insert_every_type);
    TM_RUN(test_updates_and_delete);
    TM_RUN(test_bigint_unsigned_long);
    TM_RUN(test_rows_v2);
    TM_RUN(test_truncations_and_corruption);
    TM_RUN(test_days_from_civil);
    TM_RUN(test_crc32_every_length_and_alignment);
    TM_RUN(test_decimal_every_precision);
    for (int i = 0; i < nevs; i++)
        free(evs[i].bytes);
    json_decref(doc);
    return tm_test_done();
}
