/*
 * binlog_rows.c — TABLE_MAP and rows events to tidemark schemas and rows.
 *
 * Role: the pure decoder described in binlog_rows.h.  The byte layouts are
 * MySQL's (sql/log_event.cc, libbinlogevents) as MariaDB 10.11 writes them;
 * comments name the layout where it is not obvious.
 *
 * Invariants: see binlog_rows.h.  In short, every read goes through a
 * bounded cursor (rd_*), and a failed read becomes TM_ECORRUPT with the
 * column and offset in the message.
 *
 * Thread: none of its own; any thread.
 */
#include "mysql/binlog_rows.h"

#include "core/error.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Bounded reading ---- */

typedef struct rd {
    const uint8_t *p, *end, *start;
    bool bad;
} rd_t;

static const uint8_t *rd_take(rd_t *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *q = r->p;
    r->p += n;
    return q;
}

static uint64_t le_uint(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t be_uint(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t rd_le(rd_t *r, int n)
{
    const uint8_t *q = rd_take(r, (size_t)n);
    return q ? le_uint(q, n) : 0;
}

/* A length-encoded ("packed") integer. */
static uint64_t rd_packed(rd_t *r)
{
    const uint8_t *q = rd_take(r, 1);
    if (q == NULL)
        return 0;
    if (*q < 251)
        return *q;
    if (*q == 252)
        return rd_le(r, 2);
    if (*q == 253)
        return rd_le(r, 3);
    if (*q == 254)
        return rd_le(r, 8);
    r->bad = true; /* 251 is NULL in the protocol, 255 is never valid here */
    return 0;
}

static size_t rd_off(const rd_t *r)
{
    return (size_t)(r->p - r->start);
}

/* ---- Headers and checksums ---- */

int tm_my_event_header_parse(const uint8_t *ev, size_t len, tm_my_event_header_t *h,
                             char *errstr, size_t errstr_size)
{
    if (len < TM_MY_HEADER_LEN)
        return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                         "binlog event of %zu bytes is shorter than its 19-byte header", len);
    h->timestamp = (uint32_t)le_uint(ev, 4);
    h->type = ev[4];
    h->server_id = (uint32_t)le_uint(ev + 5, 4);
    h->size = (uint32_t)le_uint(ev + 9, 4);
    h->next_pos = (uint32_t)le_uint(ev + 13, 4);
    h->flags = (uint16_t)le_uint(ev + 17, 2);
    if (h->size != len)
        return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                         "binlog event type %u says it has %" PRIu32 " bytes but %zu arrived",
                         h->type, h->size, len);
    return 0;
}

/*
 * CRC-32 (IEEE, reflected, as zlib and the server compute it), eight bytes
 * a step ("slicing-by-8"): every event's bytes go through here once, so the
 * byte-at-a-time loop showed up in profiles of a drain.
 */
static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = crc_table[0][crc_table[t - 1][i] & 0xFF] ^ (crc_table[t - 1][i] >> 8);
}

uint32_t tm_my_crc32(const uint8_t *p, size_t len)
{
    pthread_once(&crc_once, crc_init);
    uint32_t c = 0xFFFFFFFFu;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint32_t lo = c ^ ((uint32_t)p[i] | (uint32_t)p[i + 1] << 8 | (uint32_t)p[i + 2] << 16 |
                           (uint32_t)p[i + 3] << 24);
        c = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^
            crc_table[5][(lo >> 16) & 0xFF] ^ crc_table[4][lo >> 24] ^ crc_table[3][p[i + 4]] ^
            crc_table[2][p[i + 5]] ^ crc_table[1][p[i + 6]] ^ crc_table[0][p[i + 7]];
    }
    for (; i < len; i++)
        c = crc_table[0][(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

int tm_my_event_checksum_verify(const uint8_t *ev, size_t len, char *errstr, size_t errstr_size)
{
    if (len < TM_MY_HEADER_LEN + TM_MY_CHECKSUM_LEN)
        return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                         "binlog event of %zu bytes is too short to carry a checksum", len);
    uint32_t want = (uint32_t)le_uint(ev + len - 4, 4);
    uint32_t got = tm_my_crc32(ev, len - 4);
    if (want != got)
        return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                         "binlog event type %u failed its CRC32 check (stored %08" PRIx32
                         ", computed %08" PRIx32 "): the stream is corrupt",
                         ev[4], want, got);
    return 0;
}

/* ---- TABLE_MAP ---- */

/*
 * The metadata block holds 0, 1 or 2 bytes per column depending on the
 * type.  STRING/ENUM/SET store (real type, length) big-endian; the others
 * little-endian.  For STRING the real type is folded into the length as
 * MySQL does (Field_string::do_save_field_metadata).
 */
static int read_meta(rd_t *r, tm_my_column_t *c)
{
    switch (c->type) {
    case TM_MY_T_FLOAT:
    case TM_MY_T_DOUBLE:
    case TM_MY_T_BLOB:
    case TM_MY_T_TINY_BLOB:
    case TM_MY_T_MEDIUM_BLOB:
    case TM_MY_T_LONG_BLOB:
    case TM_MY_T_GEOMETRY:
    case TM_MY_T_JSON:
    case TM_MY_T_TIME2:
    case TM_MY_T_DATETIME2:
    case TM_MY_T_TIMESTAMP2:
        c->meta = (uint16_t)rd_le(r, 1);
        return 0;
    case TM_MY_T_VARCHAR:
    case TM_MY_T_VAR_STRING:
    case TM_MY_T_BIT:
        c->meta = (uint16_t)rd_le(r, 2);
        return 0;
    case TM_MY_T_NEWDECIMAL: {
        const uint8_t *q = rd_take(r, 2);
        if (q)
            c->meta = (uint16_t)(q[0] << 8 | q[1]); /* precision, scale */
        return 0;
    }
    case TM_MY_T_STRING:
    case TM_MY_T_ENUM:
    case TM_MY_T_SET: {
        const uint8_t *q = rd_take(r, 2);
        if (q == NULL)
            return 0;
        uint8_t real = q[0], len = q[1];
        if (real == TM_MY_T_ENUM || real == TM_MY_T_SET) {
            c->type = real;
            c->meta = len; /* bytes of the stored value */
        } else {
            /* Lengths above 255 keep bits 4-5 of the first byte, inverted. */
            c->type = TM_MY_T_STRING;
            c->meta = (uint16_t)((((real & 0x30) ^ 0x30) << 4) | len);
        }
        return 0;
    }
    default:
        c->meta = 0;
        return 0;
    }
}

bool tm_my_type_is_numeric(uint8_t t)
{
    switch (t) {
    case TM_MY_T_TINY:
    case TM_MY_T_SHORT:
    case TM_MY_T_INT24:
    case TM_MY_T_LONG:
    case TM_MY_T_LONGLONG:
    case TM_MY_T_FLOAT:
    case TM_MY_T_DOUBLE:
    case TM_MY_T_NEWDECIMAL:
    case TM_MY_T_DECIMAL:
        return true;
    default:
        return false;
    }
}

/* Columns that DEFAULT_CHARSET / COLUMN_CHARSET describe, in order. */
bool tm_my_type_is_character(uint8_t t)
{
    switch (t) {
    case TM_MY_T_STRING:
    case TM_MY_T_VARCHAR:
    case TM_MY_T_VAR_STRING:
    case TM_MY_T_BLOB:
    case TM_MY_T_TINY_BLOB:
    case TM_MY_T_MEDIUM_BLOB:
    case TM_MY_T_LONG_BLOB:
        return true;
    default:
        return false;
    }
}

/* The index of the n-th column (0-based) for which pred holds, or -1. */
static int nth_col(const tm_my_tablemap_t *tm, bool (*pred)(uint8_t), uint8_t only, uint64_t n)
{
    uint64_t k = 0;
    for (uint32_t i = 0; i < tm->ncols; i++) {
        bool hit = pred ? pred(tm->cols[i].type) : tm->cols[i].type == only;
        if (hit && k++ == n)
            return (int)i;
    }
    return -1;
}

static char *rd_string(rd_t *r)
{
    uint64_t n = rd_packed(r);
    const uint8_t *q = rd_take(r, (size_t)n);
    if (q == NULL)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (s == NULL)
        return NULL;
    memcpy(s, q, (size_t)n);
    s[n] = '\0';
    return s;
}

/* ENUM_STR_VALUE / SET_STR_VALUE: for each such column, a count then the labels. */
static int read_labels(rd_t *r, tm_my_tablemap_t *tm, uint8_t type)
{
    for (uint64_t k = 0; r->p < r->end && !r->bad; k++) {
        int ci = nth_col(tm, NULL, type, k);
        uint64_t n = rd_packed(r);
        if (ci < 0 || n > (uint64_t)(r->end - r->p)) {
            r->bad = true;
            return 0;
        }
        tm_my_column_t *c = &tm->cols[ci];
        /* A repeated field replaces the labels read before (found by fuzzing: a leak and a
         * count past the end of the new array). */
        for (int j = 0; j < c->nlabels; j++)
            free(c->labels[j]);
        free(c->labels);
        c->nlabels = 0;
        c->labels = calloc((size_t)n ? (size_t)n : 1, sizeof(char *));
        if (c->labels == NULL)
            return TM_ENOMEM;
        for (uint64_t j = 0; j < n; j++) {
            c->labels[j] = rd_string(r);
            if (c->labels[j] == NULL)
                return r->bad ? 0 : TM_ENOMEM;
            c->nlabels++;
        }
    }
    return 0;
}

/* The optional metadata TLVs (binlog_row_metadata = MINIMAL or FULL). */
static int read_optional(rd_t *r, tm_my_tablemap_t *tm)
{
    while (r->p < r->end && !r->bad) {
        uint8_t kind = (uint8_t)rd_le(r, 1);
        uint64_t flen = rd_packed(r);
        const uint8_t *f = rd_take(r, (size_t)flen);
        if (f == NULL)
            return 0;
        rd_t fr = {f, f + flen, r->start, false};
        int rc = 0;
        switch (kind) {
        case 1: { /* SIGNEDNESS: one bit per numeric column, most significant first */
            uint64_t k = 0;
            tm->has_signedness = true;
            for (uint32_t i = 0; i < tm->ncols; i++) {
                if (!tm_my_type_is_numeric(tm->cols[i].type))
                    continue;
                if (k / 8 >= flen) {
                    fr.bad = true;
                    break;
                }
                tm->cols[i].is_unsigned = (f[k / 8] >> (7 - k % 8)) & 1;
                k++;
            }
            break;
        }
        case 2: { /* DEFAULT_CHARSET: default, then (character column index, collation) */
            tm->has_charsets = true;
            uint64_t def = rd_packed(&fr);
            for (uint32_t i = 0; i < tm->ncols; i++)
                if (tm_my_type_is_character(tm->cols[i].type))
                    tm->cols[i].collation = (uint32_t)def;
            while (fr.p < fr.end && !fr.bad) {
                uint64_t idx = rd_packed(&fr), coll = rd_packed(&fr);
                int ci = nth_col(tm, tm_my_type_is_character, 0, idx);
                if (ci < 0)
                    fr.bad = true;
                else
                    tm->cols[ci].collation = (uint32_t)coll;
            }
            break;
        }
        case 3: /* COLUMN_CHARSET: one collation per character column */
            tm->has_charsets = true;
            for (uint32_t i = 0; i < tm->ncols && !fr.bad; i++)
                if (tm_my_type_is_character(tm->cols[i].type))
                    tm->cols[i].collation = (uint32_t)rd_packed(&fr);
            break;
        case 4: /* COLUMN_NAME */
            for (uint32_t i = 0; i < tm->ncols && !fr.bad; i++) {
                free(tm->cols[i].name);
                tm->cols[i].name = rd_string(&fr);
                if (tm->cols[i].name == NULL && !fr.bad)
                    return TM_ENOMEM;
            }
            tm->has_names = !fr.bad;
            break;
        case 5: /* SET_STR_VALUE */
            tm->has_labels = true;
            rc = read_labels(&fr, tm, TM_MY_T_SET);
            break;
        case 6: /* ENUM_STR_VALUE */
            tm->has_labels = true;
            rc = read_labels(&fr, tm, TM_MY_T_ENUM);
            break;
        case 7: /* GEOMETRY_TYPE */
            for (uint32_t i = 0; i < tm->ncols && !fr.bad; i++)
                if (tm->cols[i].type == TM_MY_T_GEOMETRY)
                    tm->cols[i].geom_type = (uint32_t)rd_packed(&fr);
            break;
        case 8: { /* SIMPLE_PRIMARY_KEY: column indexes */
            int k = 0;
            tm->has_key = true;
            while (fr.p < fr.end && !fr.bad) {
                uint64_t idx = rd_packed(&fr);
                if (idx >= tm->ncols)
                    fr.bad = true;
                else
                    tm->cols[idx].key_index = k++;
            }
            break;
        }
        case 9: { /* PRIMARY_KEY_WITH_PREFIX: (index, prefix length) pairs */
            int k = 0;
            tm->has_key = true;
            while (fr.p < fr.end && !fr.bad) {
                uint64_t idx = rd_packed(&fr);
                (void)rd_packed(&fr);
                if (idx >= tm->ncols)
                    fr.bad = true;
                else
                    tm->cols[idx].key_index = k++;
            }
            break;
        }
        default:
            /* ENUM_AND_SET charsets (10, 11), visibility (12), later kinds: not needed. */
            break;
        }
        if (rc != 0)
            return rc;
        if (fr.bad)
            r->bad = true;
    }
    return 0;
}

int tm_my_tablemap_parse(const uint8_t *body, size_t len, tm_my_tablemap_t **out, char *errstr,
                         size_t errstr_size)
{
    *out = NULL;
    rd_t r = {body, body + len, body, false};
    tm_my_tablemap_t *tm = calloc(1, sizeof(*tm));
    if (tm == NULL)
        return TM_ENOMEM;
    int rc = TM_ENOMEM;
    tm->table_id = rd_le(&r, 6);
    tm->flags = (uint16_t)rd_le(&r, 2);
    uint64_t dblen = rd_le(&r, 1);
    const uint8_t *db = rd_take(&r, (size_t)dblen + 1);
    uint64_t tlen = rd_le(&r, 1);
    const uint8_t *tb = rd_take(&r, (size_t)tlen + 1);
    uint64_t ncols = rd_packed(&r);
    if (r.bad || ncols == 0 || ncols > 4096 || ncols > len)
        goto corrupt;
    tm->db = strndup((const char *)db, (size_t)dblen);
    tm->table = strndup((const char *)tb, (size_t)tlen);
    tm->ncols = (uint32_t)ncols;
    tm->cols = calloc((size_t)ncols, sizeof(*tm->cols));
    if (tm->db == NULL || tm->table == NULL || tm->cols == NULL)
        goto fail;
    const uint8_t *types = rd_take(&r, (size_t)ncols);
    if (types == NULL)
        goto corrupt;
    for (uint32_t i = 0; i < tm->ncols; i++) {
        tm->cols[i].type = types[i];
        tm->cols[i].key_index = -1;
    }
    uint64_t metalen = rd_packed(&r);
    const uint8_t *meta = rd_take(&r, (size_t)metalen);
    if (meta == NULL)
        goto corrupt;
    rd_t mr = {meta, meta + metalen, body, false};
    for (uint32_t i = 0; i < tm->ncols; i++)
        read_meta(&mr, &tm->cols[i]);
    if (mr.bad || mr.p != mr.end)
        goto corrupt;
    const uint8_t *nulls = rd_take(&r, (size_t)(ncols + 7) / 8);
    if (nulls == NULL)
        goto corrupt;
    for (uint32_t i = 0; i < tm->ncols; i++)
        tm->cols[i].nullable = (nulls[i / 8] >> (i % 8)) & 1;
    if ((rc = read_optional(&r, tm)) != 0)
        goto fail;
    if (r.bad)
        goto corrupt;
    *out = tm;
    return 0;
corrupt:
    rc = tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                   "TABLE_MAP event is malformed near byte %zu of %zu", rd_off(&r), len);
fail:
    tm_my_tablemap_free(tm);
    return rc;
}

tm_my_tablemap_t *tm_my_tablemap_free(tm_my_tablemap_t *tm)
{
    if (tm == NULL)
        return NULL;
    for (uint32_t i = 0; tm->cols != NULL && i < tm->ncols; i++) {
        free(tm->cols[i].name);
        for (int j = 0; j < tm->cols[i].nlabels; j++)
            free(tm->cols[i].labels[j]);
        free(tm->cols[i].labels);
    }
    free(tm->cols);
    free(tm->db);
    free(tm->table);
    free(tm);
    return NULL;
}

static bool str_eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

bool tm_my_tablemap_same_shape(const tm_my_tablemap_t *a, const tm_my_tablemap_t *b)
{
    if (a->ncols != b->ncols || !str_eq(a->db, b->db) || !str_eq(a->table, b->table))
        return false;
    for (uint32_t i = 0; i < a->ncols; i++) {
        const tm_my_column_t *x = &a->cols[i], *y = &b->cols[i];
        if (x->type != y->type || x->meta != y->meta || x->nullable != y->nullable ||
            x->is_unsigned != y->is_unsigned || x->collation != y->collation ||
            x->key_index != y->key_index || x->json != y->json || !str_eq(x->name, y->name) ||
            x->nlabels != y->nlabels)
            return false;
        for (int j = 0; j < x->nlabels; j++)
            if (!str_eq(x->labels[j], y->labels[j]))
                return false;
    }
    return true;
}

bool tm_my_tablemap_same_binlog_shape(const tm_my_tablemap_t *cached,
                                      const tm_my_tablemap_t *next)
{
    if (cached->ncols != next->ncols || !str_eq(cached->db, next->db) ||
        !str_eq(cached->table, next->table))
        return false;
    for (uint32_t i = 0; i < next->ncols; i++) {
        const tm_my_column_t *x = &cached->cols[i], *y = &next->cols[i];
        if (x->type != y->type || x->meta != y->meta || x->nullable != y->nullable)
            return false;
        if ((next->has_names && !str_eq(x->name, y->name)) ||
            (next->has_signedness && x->is_unsigned != y->is_unsigned) ||
            (next->has_charsets && x->collation != y->collation) ||
            (next->has_key && x->key_index != y->key_index))
            return false;
        if (next->has_labels) {
            if (x->nlabels != y->nlabels)
                return false;
            for (int j = 0; j < x->nlabels; j++)
                if (!str_eq(x->labels[j], y->labels[j]))
                    return false;
        }
    }
    return true;
}

/* ---- Schema ---- */

static int bit_count(uint16_t meta)
{
    return (meta >> 8) * 8 + (meta & 0xFF);
}

static char *join_labels(const tm_my_column_t *c)
{
    size_t n = 1;
    for (int j = 0; j < c->nlabels; j++)
        n += strlen(c->labels[j]) + 1;
    char *s = malloc(n), *o = s;
    if (s == NULL)
        return NULL;
    for (int j = 0; j < c->nlabels; j++) {
        size_t l = strlen(c->labels[j]);
        if (j)
            *o++ = ',';
        memcpy(o, c->labels[j], l);
        o += l;
    }
    *o = '\0';
    return s;
}

/* Sets type, db_type and semantic of one column; TM_EUNSUPPORTED if unknown. */
static int map_column(const tm_my_column_t *c, const tm_my_mapping_t *map, tm_column_t *col)
{
    const char *db = NULL, *sem = NULL;
    bool u = c->is_unsigned;
    col->precision = -1;
    col->scale = 0;
    col->length = -1;
    switch (c->type) {
    case TM_MY_T_TINY:
        col->type = TM_T_INT16;
        db = u ? "TINYINT UNSIGNED" : "TINYINT";
        break;
    case TM_MY_T_SHORT:
        col->type = u ? TM_T_INT32 : TM_T_INT16;
        db = u ? "SMALLINT UNSIGNED" : "SMALLINT";
        break;
    case TM_MY_T_INT24:
        col->type = TM_T_INT32;
        db = u ? "MEDIUMINT UNSIGNED" : "MEDIUMINT";
        break;
    case TM_MY_T_LONG:
        col->type = u ? TM_T_INT64 : TM_T_INT32;
        db = u ? "INT UNSIGNED" : "INT";
        break;
    case TM_MY_T_LONGLONG:
        if (u && map->bigint_precise) {
            col->type = TM_T_NUMERIC;
            col->precision = 20;
        } else {
            col->type = TM_T_INT64;
        }
        db = u ? "BIGINT UNSIGNED" : "BIGINT";
        break;
    case TM_MY_T_FLOAT:
        col->type = TM_T_FLOAT32;
        db = "FLOAT";
        break;
    case TM_MY_T_DOUBLE:
        col->type = TM_T_FLOAT64;
        db = "DOUBLE";
        break;
    case TM_MY_T_NEWDECIMAL:
        col->type = TM_T_NUMERIC;
        col->precision = c->meta >> 8;
        col->scale = c->meta & 0xFF;
        db = "DECIMAL";
        break;
    case TM_MY_T_DATE:
    case TM_MY_T_NEWDATE:
        col->type = TM_T_DATE;
        db = "DATE";
        break;
    case TM_MY_T_DATETIME:
    case TM_MY_T_DATETIME2:
        col->type = TM_T_TIMESTAMP;
        col->precision = c->type == TM_MY_T_DATETIME2 ? c->meta : 0;
        db = "DATETIME";
        break;
    case TM_MY_T_TIMESTAMP:
    case TM_MY_T_TIMESTAMP2:
        col->type = TM_T_TIMESTAMPTZ;
        col->precision = c->type == TM_MY_T_TIMESTAMP2 ? c->meta : 0;
        db = "TIMESTAMP";
        break;
    case TM_MY_T_TIME:
    case TM_MY_T_TIME2:
        col->type = TM_T_TIME;
        col->precision = c->type == TM_MY_T_TIME2 ? c->meta : 0;
        db = "TIME";
        break;
    case TM_MY_T_YEAR:
        col->type = TM_T_INT32;
        db = "YEAR";
        sem = "io.debezium.time.Year";
        break;
    case TM_MY_T_STRING:
    case TM_MY_T_VARCHAR:
    case TM_MY_T_VAR_STRING: {
        bool bin = c->collation == TM_MY_COLLATION_BINARY;
        col->type = bin ? TM_T_BYTES : TM_T_TEXT;
        db = c->type == TM_MY_T_STRING ? (bin ? "BINARY" : "CHAR") : (bin ? "VARBINARY" : "VARCHAR");
        break;
    }
    case TM_MY_T_BLOB:
    case TM_MY_T_TINY_BLOB:
    case TM_MY_T_MEDIUM_BLOB:
    case TM_MY_T_LONG_BLOB: {
        if (c->json) {
            /* MariaDB's JSON: LONGTEXT with a json_valid check (Debezium: Json). */
            col->type = TM_T_JSON;
            db = "JSON";
            break;
        }
        /* Without charset metadata a BLOB cannot be told from a TEXT: bytes is lossless. */
        bool text = c->collation != 0 && c->collation != TM_MY_COLLATION_BINARY;
        col->type = text ? TM_T_TEXT : TM_T_BYTES;
        static const char *const blobs[] = {"TINYBLOB", "BLOB", "MEDIUMBLOB", "LONGBLOB"};
        static const char *const texts[] = {"TINYTEXT", "TEXT", "MEDIUMTEXT", "LONGTEXT"};
        int k = c->type == TM_MY_T_BLOB ? (c->meta >= 1 && c->meta <= 4 ? c->meta - 1 : 1)
                                        : c->type - TM_MY_T_TINY_BLOB;
        db = text ? texts[k] : blobs[k];
        break;
    }
    case TM_MY_T_ENUM:
        col->type = TM_T_ENUM;
        db = "ENUM";
        sem = "io.debezium.data.Enum";
        break;
    case TM_MY_T_SET:
        col->type = TM_T_TEXT;
        db = "SET";
        sem = "io.debezium.data.EnumSet";
        break;
    case TM_MY_T_BIT:
        if (bit_count(c->meta) == 1) {
            col->type = TM_T_BOOL;
        } else {
            col->type = TM_T_BYTES;
            sem = "io.debezium.data.Bits";
        }
        col->length = bit_count(c->meta);
        db = "BIT";
        break;
    case TM_MY_T_JSON:
        col->type = TM_T_JSON;
        db = "JSON";
        break;
    case TM_MY_T_GEOMETRY:
        /*
         * The value keeps MySQL's bytes, SRID then WKB, which the Debezium
         * encoder writes as its Geometry struct (Point for POINT columns:
         * geometry type 1 in the TABLE_MAP metadata or the catalog).
         */
        col->type = TM_T_BYTES;
        db = c->geom_type == 1 ? "POINT" : "GEOMETRY";
        sem = c->geom_type == 1 ? "io.debezium.data.geometry.Point"
                                : "io.debezium.data.geometry.Geometry";
        break;
    case TM_MY_T_NULL:
        col->type = TM_T_TEXT;
        db = "NULL";
        break;
    default:
        return TM_EUNSUPPORTED;
    }
    tm_schema_set_str(&col->db_type, db);
    if (sem != NULL)
        tm_schema_set_str(&col->semantic, sem);
    if (col->db_type == NULL || (sem != NULL && col->semantic == NULL))
        return TM_ENOMEM;
    if ((c->type == TM_MY_T_ENUM || c->type == TM_MY_T_SET) && c->nlabels > 0) {
        col->enum_values = join_labels(c);
        if (col->enum_values == NULL)
            return TM_ENOMEM;
    }
    return 0;
}

int tm_my_schema_from_tablemap(const tm_my_tablemap_t *tm, const char *source_name,
                               const tm_my_mapping_t *map, tm_schema_t **out, char *errstr,
                               size_t errstr_size)
{
    *out = NULL;
    tm_schema_t *s = tm_schema_new((int)tm->ncols);
    if (s == NULL)
        return TM_ENOMEM;
    tm_schema_set_str(&s->source_name, source_name);
    tm_schema_set_str(&s->db, tm->db);
    /*
     * MySQL has no schemas inside a database; the database stands in the
     * namespace too, so topic names are <prefix>.<db>.<table> as Debezium's.
     */
    tm_schema_set_str(&s->namespace, tm->db);
    tm_schema_set_str(&s->table, tm->table);
    s->full_identity = true;
    int rc = 0;
    for (uint32_t i = 0; i < tm->ncols; i++) {
        const tm_my_column_t *c = &tm->cols[i];
        tm_column_t *col = &s->cols[i];
        if (c->name != NULL) {
            tm_schema_set_str(&col->name, c->name);
        } else {
            char nm[24];
            snprintf(nm, sizeof(nm), "col_%" PRIu32, i + 1);
            tm_schema_set_str(&col->name, nm);
        }
        if (col->name == NULL) {
            rc = TM_ENOMEM;
            break;
        }
        col->nullable = c->nullable;
        col->key_index = (int16_t)c->key_index;
        rc = map_column(c, map, col);
        if (rc == TM_EUNSUPPORTED) {
            rc = tm_seterr(errstr, errstr_size, TM_EUNSUPPORTED,
                           "column %s.%s.%s has binlog type %u, which tidemark cannot decode yet",
                           tm->db, tm->table, col->name, c->type);
            break;
        }
        if (rc != 0)
            break;
    }
    if (rc == 0 && (s->source_name == NULL || s->db == NULL || s->namespace == NULL || s->table == NULL))
        rc = TM_ENOMEM;
    if (rc == 0 && tm_schema_finish(s) != 0)
        rc = tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                       "TABLE_MAP of %s.%s has an inconsistent primary key", tm->db, tm->table);
    if (rc != 0) {
        tm_schema_unref(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* ---- Rows events ---- */

bool tm_my_is_rows_event(uint8_t type)
{
    return (type >= TM_MY_EV_WRITE_ROWS_V1 && type <= TM_MY_EV_DELETE_ROWS_V1) ||
           (type >= TM_MY_EV_WRITE_ROWS_V2 && type <= TM_MY_EV_DELETE_ROWS_V2);
}

int tm_my_rows_parse(uint8_t type, const uint8_t *body, size_t len, tm_my_rows_t *out,
                     char *errstr, size_t errstr_size)
{
    memset(out, 0, sizeof(*out));
    if (!tm_my_is_rows_event(type))
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "binlog event type %u is no rows event",
                         type);
    rd_t r = {body, body + len, body, false};
    bool v2 = type >= TM_MY_EV_WRITE_ROWS_V2;
    int kind = v2 ? type - TM_MY_EV_WRITE_ROWS_V2 : type - TM_MY_EV_WRITE_ROWS_V1;
    out->type = type;
    out->op = kind == 0 ? TM_OP_CREATE : kind == 1 ? TM_OP_UPDATE : TM_OP_DELETE;
    out->table_id = rd_le(&r, 6);
    out->flags = (uint16_t)rd_le(&r, 2);
    if (v2) {
        /* The extra-data length counts its own two bytes. */
        uint64_t extra = rd_le(&r, 2);
        if (extra < 2 || rd_take(&r, (size_t)extra - 2) == NULL)
            r.bad = true;
    }
    uint64_t ncols = rd_packed(&r);
    if (r.bad || ncols == 0 || ncols > 4096)
        return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                         "rows event (type %u) is malformed near byte %zu", type, rd_off(&r));
    out->ncols = (uint32_t)ncols;
    size_t bm = (size_t)(ncols + 7) / 8;
    out->present[0] = rd_take(&r, bm);
    out->present[1] = out->op == TM_OP_UPDATE ? rd_take(&r, bm) : out->present[0];
    if (r.bad)
        return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                         "rows event (type %u) is truncated in its column bitmaps", type);
    out->p = r.p;
    out->start = body;
    out->end = body + len;
    return 0;
}

static bool bit_set(const uint8_t *bm, uint32_t i)
{
    return (bm[i / 8] >> (i % 8)) & 1;
}

/* ---- Values ---- */

int64_t tm_my_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    /* Howard Hinnant's days_from_civil. */
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* Fractional seconds of a TIME2/DATETIME2/TIMESTAMP2 as microseconds (unsigned form). */
static int frac_bytes(int fsp)
{
    return (fsp + 1) / 2;
}

static const int dig2bytes[10] = {0, 1, 1, 2, 2, 3, 3, 4, 4, 4};

static size_t decimal_size(int prec, int scale)
{
    int intg = prec - scale;
    return (size_t)((intg / 9) * 4 + dig2bytes[intg % 9] + (scale / 9) * 4 +
                    dig2bytes[scale % 9]);
}

/*
 * The binlog's packed DECIMAL (decimal2bin): big-endian groups of 9 digits
 * in 4 bytes, the leftover leading/trailing digits in fewer bytes, the sign in
 * the top bit of the first byte (set = positive), and every byte inverted for
 * a negative value.  Up to 38 digits the unscaled value is summed straight
 * into the datum's 128 bits; wider values are written out as a decimal string
 * and parsed with tm_numeric_parse, which keeps them exact as text.  Either
 * way a group above its digits' range means the bytes are not a decimal.
 */
static const uint32_t pow10_u32[10] = {1,      10,      100,      1000,      10000,
                                       100000, 1000000, 10000000, 100000000, 1000000000};

static int decode_decimal_i128(tm_datum_t *d, const uint8_t *buf, bool neg, int prec, int scale)
{
    int intg = prec - scale, pos = 0;
    __int128 v = 0;
    int lead = intg % 9, trail = scale % 9;
    /* Groups in order: leading digits, whole integer groups, whole fraction groups, trailing. */
    int ndig[2 * 65 / 9 + 4], ng = 0;
    if (lead)
        ndig[ng++] = lead;
    for (int g = 0; g < intg / 9; g++)
        ndig[ng++] = 9;
    for (int g = 0; g < scale / 9; g++)
        ndig[ng++] = 9;
    if (trail)
        ndig[ng++] = trail;
    for (int g = 0; g < ng; g++) {
        int b = dig2bytes[ndig[g]];
        uint64_t x = be_uint(buf + pos, b);
        pos += b;
        if (x >= pow10_u32[ndig[g]])
            return TM_ECORRUPT;
        v = v * (__int128)pow10_u32[ndig[g]] + (__int128)x;
    }
    d->flags &= (uint8_t)~(TM_DATUM_WIDE | TM_DATUM_NAN);
    d->u.dec = neg ? -v : v;
    d->scale = (int16_t)scale;
    return 0;
}

static int decode_decimal(tm_batch_t *batch, tm_datum_t *d, const uint8_t *p, int prec, int scale)
{
    size_t n = decimal_size(prec, scale);
    uint8_t buf[64];
    if (n == 0 || n > sizeof(buf))
        return TM_ECORRUPT;
    memcpy(buf, p, n);
    bool neg = !(buf[0] & 0x80);
    buf[0] ^= 0x80;
    if (neg)
        for (size_t i = 0; i < n; i++)
            buf[i] ^= 0xFF;
    if (prec <= 38)
        return decode_decimal_i128(d, buf, neg, prec, scale);
    char txt[160], *o = txt;
    if (neg)
        *o++ = '-';
    int intg = prec - scale, pos = 0;
    char digits[100];
    int nd = 0;
    int lead = intg % 9;
    if (lead) {
        int b = dig2bytes[lead];
        nd += snprintf(digits + nd, sizeof(digits) - (size_t)nd, "%0*" PRIu64, lead,
                       be_uint(buf + pos, b));
        pos += b;
    }
    for (int g = 0; g < intg / 9; g++, pos += 4)
        nd += snprintf(digits + nd, sizeof(digits) - (size_t)nd, "%09" PRIu64,
                       be_uint(buf + pos, 4));
    /* Drop leading zeros of the integer part, keeping one. */
    int skip = 0;
    while (skip < nd - 1 && digits[skip] == '0')
        skip++;
    if (nd == 0) {
        *o++ = '0';
    } else {
        memcpy(o, digits + skip, (size_t)(nd - skip));
        o += nd - skip;
    }
    if (scale > 0) {
        *o++ = '.';
        for (int g = 0; g < scale / 9; g++, pos += 4)
            o += snprintf(o, sizeof(txt) - (size_t)(o - txt), "%09" PRIu64,
                          be_uint(buf + pos, 4));
        int trail = scale % 9;
        if (trail) {
            o += snprintf(o, sizeof(txt) - (size_t)(o - txt), "%0*" PRIu64, trail,
                          be_uint(buf + pos, dig2bytes[trail]));
        }
    }
    *o = '\0';
    /* A group above 999999999 means the bytes are not a decimal at all. */
    if ((size_t)(o - txt) > (size_t)(prec + 3))
        return TM_ECORRUPT;
    int rc = tm_numeric_parse(batch, d, txt, (size_t)(o - txt));
    if (rc == 0 && !(d->flags & TM_DATUM_WIDE))
        d->scale = (int16_t)scale;
    return rc == TM_EINVAL ? TM_ECORRUPT : rc;
}

int tm_my_decimal_decode(tm_batch_t *batch, tm_datum_t *d, const uint8_t *p, size_t n, int prec,
                         int scale)
{
    if (prec < 1 || prec > 65 || scale < 0 || scale > 30 || scale > prec ||
        n < decimal_size(prec, scale))
        return TM_ECORRUPT;
    return decode_decimal(batch, d, p, prec, scale);
}

/* Windows-1252 (MySQL's latin1) bytes 0x80-0x9F as Unicode; 0 = undefined, kept as U+FFFD. */
static const uint16_t cp1252_hi[32] = {
    0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0,      0x017D, 0,      0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178,
};

static bool collation_is_latin1(uint32_t c)
{
    return c == 5 || c == 8 || c == 15 || c == 31 || c == 47 || c == 48 || c == 49 || c == 94 ||
           c == 1032 || c == 1071;
}

/* Structural UTF-8 check (lead byte, continuation bytes, no overlong 2-byte forms). */
static bool utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        /* Most text is ASCII: eight bytes without a high bit at a time. */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        uint8_t c = s[i];
        size_t k;
        if (c < 0x80)
            k = 0;
        else if ((c & 0xE0) == 0xC0 && c >= 0xC2)
            k = 1;
        else if ((c & 0xF0) == 0xE0)
            k = 2;
        else if ((c & 0xF8) == 0xF0 && c <= 0xF4)
            k = 3;
        else
            return false;
        if (k > n - i - 1)
            return false;
        for (size_t j = 1; j <= k; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
        i += k + 1;
    }
    return true;
}

/* Stores a character value as UTF-8, converting from latin1 (cp1252) when the collation says. */
static int set_text(tm_batch_t *batch, tm_datum_t *d, const uint8_t *s, size_t n,
                    uint32_t collation)
{
    if (!collation_is_latin1(collation)) {
        /*
         * utf8mb3/utf8mb4/ascii, or a collation we do not know: the bytes are
         * taken as UTF-8 and must be valid, so a row of another charset stops
         * the job with a message instead of emitting mojibake.
         */
        if (!utf8_valid(s, n))
            return TM_EUNSUPPORTED;
        return tm_batch_set_var(batch, d, s, n);
    }
    char *out = tm_arena_alloc(&batch->arena, n * 3 + 1), *o = out;
    if (out == NULL)
        return TM_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = s[i];
        if (cp >= 0x80 && cp < 0xA0)
            cp = cp1252_hi[cp - 0x80] ? cp1252_hi[cp - 0x80] : 0xFFFD;
        if (cp < 0x80) {
            *o++ = (char)cp;
        } else if (cp < 0x800) {
            *o++ = (char)(0xC0 | (cp >> 6));
            *o++ = (char)(0x80 | (cp & 0x3F));
        } else {
            *o++ = (char)(0xE0 | (cp >> 12));
            *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
            *o++ = (char)(0x80 | (cp & 0x3F));
        }
    }
    *o = '\0';
    d->u.var.ptr = out;
    d->u.var.len = (uint32_t)(o - out);
    return 0;
}

/* The labels of the set bits of a SET value, comma-separated. */
static int set_labels(tm_batch_t *batch, tm_datum_t *d, const tm_my_column_t *c, uint64_t bits)
{
    size_t n = 0;
    for (int j = 0; j < c->nlabels && j < 64; j++)
        if (bits >> j & 1)
            n += strlen(c->labels[j]) + 1;
    char *out = tm_arena_alloc(&batch->arena, n + 1), *o = out;
    if (out == NULL)
        return TM_ENOMEM;
    for (int j = 0; j < c->nlabels && j < 64; j++) {
        if (!(bits >> j & 1))
            continue;
        if (o != out)
            *o++ = ',';
        size_t l = strlen(c->labels[j]);
        memcpy(o, c->labels[j], l);
        o += l;
    }
    *o = '\0';
    d->u.var.ptr = out;
    d->u.var.len = (uint32_t)(o - out);
    return 0;
}

/* Fractional part of TIME2/DATETIME2/TIMESTAMP2 as read, and its multiplier to µs. */
static int64_t read_frac(const uint8_t *p, int fsp, int64_t *scale_to_us)
{
    switch (frac_bytes(fsp)) {
    case 1:
        *scale_to_us = 10000;
        return (int64_t)p[0];
    case 2:
        *scale_to_us = 100;
        return (int64_t)be_uint(p, 2);
    case 3:
        *scale_to_us = 1;
        return (int64_t)be_uint(p, 3);
    default:
        *scale_to_us = 0;
        return 0;
    }
}

/*
 * Decodes one value of column c at r into d.  *isnull is set for values
 * that Debezium turns into NULL (zero dates in a nullable column).
 */
static int decode_value(rd_t *r, const tm_my_column_t *c, const tm_column_t *col,
                        tm_batch_t *batch, tm_datum_t *d, bool *isnull)
{
    const uint8_t *q;
    *isnull = false;
    switch (c->type) {
    case TM_MY_T_TINY:
    case TM_MY_T_SHORT:
    case TM_MY_T_INT24:
    case TM_MY_T_LONG:
    case TM_MY_T_LONGLONG: {
        int n = c->type == TM_MY_T_TINY    ? 1
                : c->type == TM_MY_T_SHORT ? 2
                : c->type == TM_MY_T_INT24 ? 3
                : c->type == TM_MY_T_LONG  ? 4
                                           : 8;
        if ((q = rd_take(r, (size_t)n)) == NULL)
            return TM_ECORRUPT;
        uint64_t v = le_uint(q, n);
        if (col->type == TM_T_NUMERIC) { /* BIGINT UNSIGNED, precise */
            d->u.dec = (__int128)v;
            d->scale = 0;
        } else if (c->is_unsigned || n == 8) {
            d->u.i64 = (int64_t)v; /* BIGINT UNSIGNED in long mode wraps, as in Debezium */
        } else {
            int shift = 64 - 8 * n;
            d->u.i64 = (int64_t)(v << shift) >> shift;
        }
        return 0;
    }
    case TM_MY_T_FLOAT: {
        if ((q = rd_take(r, 4)) == NULL)
            return TM_ECORRUPT;
        uint32_t bits = (uint32_t)le_uint(q, 4);
        float f;
        memcpy(&f, &bits, 4);
        d->u.f64 = f;
        return 0;
    }
    case TM_MY_T_DOUBLE: {
        if ((q = rd_take(r, 8)) == NULL)
            return TM_ECORRUPT;
        uint64_t bits = le_uint(q, 8);
        memcpy(&d->u.f64, &bits, 8);
        return 0;
    }
    case TM_MY_T_NEWDECIMAL: {
        int prec = c->meta >> 8, scale = c->meta & 0xFF;
        if (prec < 1 || prec > 65 || scale > 30 || scale > prec)
            return TM_ECORRUPT;
        if ((q = rd_take(r, decimal_size(prec, scale))) == NULL)
            return TM_ECORRUPT;
        return decode_decimal(batch, d, q, prec, scale);
    }
    case TM_MY_T_YEAR:
        if ((q = rd_take(r, 1)) == NULL)
            return TM_ECORRUPT;
        d->u.i64 = q[0] ? 1900 + q[0] : 0;
        return 0;
    case TM_MY_T_DATE:
    case TM_MY_T_NEWDATE: {
        if ((q = rd_take(r, 3)) == NULL)
            return TM_ECORRUPT;
        uint32_t v = (uint32_t)le_uint(q, 3);
        unsigned day = v & 31, month = (v >> 5) & 15;
        int64_t year = v >> 9;
        if (month == 0 || day == 0) {
            /* Zero dates: NULL when the column allows it, else the epoch (Debezium). */
            *isnull = col->nullable;
            d->u.i64 = 0;
            return 0;
        }
        d->u.i64 = tm_my_days_from_civil(year, month, day);
        return 0;
    }
    case TM_MY_T_TIMESTAMP2: {
        int fsp = c->meta;
        if (fsp > 6 || (q = rd_take(r, 4 + (size_t)frac_bytes(fsp))) == NULL)
            return TM_ECORRUPT;
        int64_t mul, frac = read_frac(q + 4, fsp, &mul);
        d->u.i64 = (int64_t)be_uint(q, 4) * 1000000 + frac * mul;
        return 0;
    }
    case TM_MY_T_TIMESTAMP:
        if ((q = rd_take(r, 4)) == NULL)
            return TM_ECORRUPT;
        d->u.i64 = (int64_t)le_uint(q, 4) * 1000000;
        return 0;
    case TM_MY_T_DATETIME2: {
        /* 40 bits: sign, year*13+month (17), day (5), hour (5), minute (6), second (6). */
        int fsp = c->meta;
        if (fsp > 6 || (q = rd_take(r, 5 + (size_t)frac_bytes(fsp))) == NULL)
            return TM_ECORRUPT;
        int64_t intpart = (int64_t)be_uint(q, 5) - 0x8000000000LL;
        int64_t mul, frac = read_frac(q + 5, fsp, &mul);
        if (intpart < 0)
            return TM_ECORRUPT;
        int64_t ymd = intpart >> 17, hms = intpart & 0x1FFFF;
        int64_t ym = ymd >> 5;
        unsigned day = (unsigned)(ymd & 31), month = (unsigned)(ym % 13);
        int64_t year = ym / 13;
        int64_t secs = (hms >> 12) * 3600 + ((hms >> 6) & 63) * 60 + (hms & 63);
        if (month == 0 || day == 0) {
            *isnull = col->nullable;
            d->u.i64 = 0;
            return 0;
        }
        d->u.i64 = (tm_my_days_from_civil(year, month, day) * 86400 + secs) * 1000000 +
                   frac * mul;
        return 0;
    }
    case TM_MY_T_DATETIME: {
        /* Old format: YYYYMMDDhhmmss as an integer. */
        if ((q = rd_take(r, 8)) == NULL)
            return TM_ECORRUPT;
        uint64_t v = le_uint(q, 8);
        uint64_t dpart = v / 1000000, tpart = v % 1000000;
        unsigned day = (unsigned)(dpart % 100), month = (unsigned)(dpart / 100 % 100);
        if (month == 0 || day == 0) {
            *isnull = col->nullable;
            d->u.i64 = 0;
            return 0;
        }
        int64_t secs = (int64_t)(tpart / 10000) * 3600 + (int64_t)(tpart / 100 % 100) * 60 +
                       (int64_t)(tpart % 100);
        d->u.i64 = (tm_my_days_from_civil((int64_t)(dpart / 10000), month, day) * 86400 + secs) *
                   1000000;
        return 0;
    }
    case TM_MY_T_TIME2: {
        /*
         * 24 bits: sign, hour (10), minute (6), second (6), offset by 2^23,
         * then the fraction; a negative value with a fraction borrows one
         * second (my_time_packed_from_binary).
         */
        int fsp = c->meta;
        if (fsp > 6 || (q = rd_take(r, 3 + (size_t)frac_bytes(fsp))) == NULL)
            return TM_ECORRUPT;
        int64_t packed;
        if (fsp >= 5) {
            packed = (int64_t)be_uint(q, 6) - 0x800000000000LL;
        } else {
            int64_t intpart = (int64_t)be_uint(q, 3) - 0x800000;
            int64_t mul, frac = read_frac(q + 3, fsp, &mul);
            if (intpart < 0 && frac != 0) {
                intpart++;
                frac -= fsp <= 2 ? 0x100 : 0x10000;
            }
            packed = intpart * (1LL << 24) + frac * mul;
        }
        bool neg = packed < 0;
        if (neg)
            packed = -packed;
        int64_t ip = packed >> 24, us = packed % (1LL << 24);
        int64_t secs = ((ip >> 12) & 0x3FF) * 3600 + ((ip >> 6) & 63) * 60 + (ip & 63);
        int64_t v = secs * 1000000 + us;
        d->u.i64 = neg ? -v : v;
        return 0;
    }
    case TM_MY_T_TIME: {
        if ((q = rd_take(r, 3)) == NULL)
            return TM_ECORRUPT;
        int64_t v = (int64_t)(le_uint(q, 3) << 40) >> 40; /* signed HHMMSS */
        bool neg = v < 0;
        if (neg)
            v = -v;
        int64_t secs = (v / 10000) * 3600 + (v / 100 % 100) * 60 + v % 100;
        d->u.i64 = (neg ? -secs : secs) * 1000000;
        return 0;
    }
    case TM_MY_T_STRING:
    case TM_MY_T_VARCHAR:
    case TM_MY_T_VAR_STRING: {
        int lb = c->meta > 255 ? 2 : 1;
        size_t n = (size_t)rd_le(r, lb);
        if ((q = rd_take(r, n)) == NULL)
            return TM_ECORRUPT;
        if (col->type == TM_T_BYTES) {
            /* BINARY(n) is stored without its trailing zero padding; the server shows it. */
            if (c->type == TM_MY_T_STRING && n < c->meta) {
                char *buf = tm_arena_zalloc(&batch->arena, (size_t)c->meta + 1);
                if (buf == NULL)
                    return TM_ENOMEM;
                memcpy(buf, q, n);
                d->u.var.ptr = buf;
                d->u.var.len = c->meta;
                return 0;
            }
            return tm_batch_set_var(batch, d, q, n);
        }
        return set_text(batch, d, q, n, c->collation);
    }
    case TM_MY_T_BLOB:
    case TM_MY_T_TINY_BLOB:
    case TM_MY_T_MEDIUM_BLOB:
    case TM_MY_T_LONG_BLOB:
    case TM_MY_T_GEOMETRY:
    case TM_MY_T_JSON: {
        int lb = c->meta;
        if (c->type == TM_MY_T_TINY_BLOB)
            lb = 1;
        if (lb < 1 || lb > 4)
            return TM_ECORRUPT;
        size_t n = (size_t)rd_le(r, lb);
        if ((q = rd_take(r, n)) == NULL)
            return TM_ECORRUPT;
        if (c->type == TM_MY_T_GEOMETRY) {
            /* 4 bytes of SRID, then WKB: kept whole (the column's semantic says so). */
            if (n < 4)
                return TM_ECORRUPT;
            return tm_batch_set_var(batch, d, q, n);
        }
        if (c->type == TM_MY_T_JSON) {
            /* MySQL 8 writes its binary JSON format; the row holds the text. */
            tm_buf_t text;
            tm_buf_init(&text);
            int rc = tm_my_json_to_text(q, n, &text);
            if (rc == 0)
                rc = tm_batch_set_var(batch, d, text.data ? text.data : "", text.len);
            tm_buf_release(&text);
            return rc;
        }
        if (col->type == TM_T_BYTES)
            return tm_batch_set_var(batch, d, q, n);
        return set_text(batch, d, q, n, c->collation);
    }
    case TM_MY_T_ENUM: {
        int n = c->meta;
        if ((n != 1 && n != 2) || (q = rd_take(r, (size_t)n)) == NULL)
            return TM_ECORRUPT;
        uint64_t idx = le_uint(q, n);
        if (idx == 0) { /* the empty-string error value */
            return tm_batch_set_var(batch, d, "", 0);
        }
        if (idx > (uint64_t)c->nlabels)
            return c->nlabels == 0 ? TM_EUNSUPPORTED : TM_ECORRUPT;
        const char *l = c->labels[idx - 1];
        return tm_batch_set_var(batch, d, l, strlen(l));
    }
    case TM_MY_T_SET: {
        int n = c->meta;
        if (n < 1 || n > 8 || (q = rd_take(r, (size_t)n)) == NULL)
            return TM_ECORRUPT;
        if (c->nlabels == 0)
            return TM_EUNSUPPORTED;
        return set_labels(batch, d, c, le_uint(q, n));
    }
    case TM_MY_T_BIT: {
        int nbits = bit_count(c->meta);
        size_t n = (size_t)(nbits + 7) / 8;
        if (nbits < 1 || nbits > 64 || (q = rd_take(r, n)) == NULL)
            return TM_ECORRUPT;
        if (col->type == TM_T_BOOL) {
            d->u.b = q[n - 1] & 1;
            return 0;
        }
        /* Stored big-endian; Debezium's Bits is little-endian. */
        char *buf = tm_arena_alloc(&batch->arena, n + 1);
        if (buf == NULL)
            return TM_ENOMEM;
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)q[n - 1 - i];
        buf[n] = '\0';
        d->u.var.ptr = buf;
        d->u.var.len = (uint32_t)n;
        return 0;
    }
    case TM_MY_T_NULL:
        *isnull = true;
        return 0;
    default:
        return TM_EUNSUPPORTED;
    }
}

/* Decodes one row image (null bitmap of the present columns, then their values). */
static int decode_image(tm_my_rows_t *ev, const uint8_t *present, const tm_my_tablemap_t *tm,
                        const tm_schema_t *schema, tm_batch_t *batch, tm_row_t **out,
                        char *errstr, size_t errstr_size)
{
    rd_t r = {ev->p, ev->end, ev->start, false};
    uint32_t npresent = 0;
    for (uint32_t i = 0; i < ev->ncols; i++)
        npresent += bit_set(present, i);
    const uint8_t *nulls = rd_take(&r, (npresent + 7) / 8);
    if (nulls == NULL)
        return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                         "rows event for %s.%s is truncated at byte %zu (null bitmap)", tm->db,
                         tm->table, rd_off(&r));
    tm_row_t *row = tm_batch_new_row(batch, schema);
    if (row == NULL)
        return TM_ENOMEM;
    uint32_t k = 0;
    for (uint32_t i = 0; i < ev->ncols; i++) {
        if (!bit_set(present, i))
            continue;
        bool null = (nulls[k / 8] >> (k % 8)) & 1;
        k++;
        if (null)
            continue;
        size_t at = rd_off(&r);
        bool isnull = false;
        int rc = decode_value(&r, &tm->cols[i], &schema->cols[i], batch, &row->vals[i], &isnull);
        if (rc == TM_ENOMEM)
            return rc;
        if (rc == TM_EUNSUPPORTED)
            return tm_seterr(
                errstr, errstr_size, TM_EUNSUPPORTED,
                "column %s.%s.%s: cannot decode its value (binlog type %u, collation %" PRIu32
                "): the type or character set is not supported yet",
                tm->db, tm->table, schema->cols[i].name, tm->cols[i].type, tm->cols[i].collation);
        if (rc != 0 || r.bad)
            return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                             "rows event for %s.%s is malformed in column %s (binlog type %u) "
                             "at byte %zu",
                             tm->db, tm->table, schema->cols[i].name, tm->cols[i].type, at);
        tm_row_set_null(row, (int)i, isnull);
    }
    ev->p = r.p;
    *out = row;
    return 0;
}

int tm_my_rows_next(tm_my_rows_t *r, const tm_my_tablemap_t *tm, const tm_schema_t *schema,
                    tm_batch_t *batch, tm_row_t **before, tm_row_t **after, char *errstr,
                    size_t errstr_size)
{
    *before = *after = NULL;
    if (r->p >= r->end)
        return 0;
    if (tm->ncols != r->ncols || schema->ncols != (int)r->ncols)
        return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                         "rows event for %s.%s has %" PRIu32 " columns but its TABLE_MAP %" PRIu32,
                         tm->db, tm->table, r->ncols, tm->ncols);
    int rc;
    switch (r->op) {
    case TM_OP_CREATE:
        rc = decode_image(r, r->present[0], tm, schema, batch, after, errstr, errstr_size);
        break;
    case TM_OP_DELETE:
        rc = decode_image(r, r->present[0], tm, schema, batch, before, errstr, errstr_size);
        break;
    default:
        rc = decode_image(r, r->present[0], tm, schema, batch, before, errstr, errstr_size);
        if (rc == 0)
            rc = decode_image(r, r->present[1], tm, schema, batch, after, errstr, errstr_size);
        break;
    }
    return rc == 0 ? 1 : rc;
}
