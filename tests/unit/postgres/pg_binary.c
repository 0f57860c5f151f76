/*
 * pg_binary.c — unit tests of the binary send-format decoders: for every
 * type tidemark decodes in binary, the binary and the text decodings of the
 * same values are the same datum.
 *
 * The values come from a real PostgreSQL 15 (tests/data/pgoutput/
 * capture_binary.sh): one slot decoded with binary 'true' and one without,
 * holding the same changes, so each binary value meets its own text.  The
 * captured rows cover numeric with many digits, scale, NaN and infinities,
 * float4 at every power of two (both signs) and 2,500 random floats, dates and timestamps
 * before 2000, BC and infinite, intervals with mixed signs, and arrays with
 * NULLs, several dimensions, explicit bounds and none.  Hand-made corrupt
 * values must be errors, never crashes.
 */
#include "pg_capture.h"
#include "tm_test.h"

#include "core/buf.h"
#include "core/error.h"
#include "core/row.h"
#include "postgres/pg_binary.h"
#include "postgres/pg_types.h"
#include "postgres/pgoutput.h"

#include <inttypes.h>
#include <math.h>

static capture_t cap_bin, cap_txt;
static tm_pg_typecache_t *types;
static tm_batch_t *batch;

/* Loads binary_types.txt ("oid typtype typname elem base basetypmod labels") into the cache. */
static int load_types(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned oid, elem, base;
        int typmod;
        char typtype, name[128], labels[512];
        if (sscanf(line, "%u %c %127s %u %u %d %511s", &oid, &typtype, name, &elem, &base,
                   &typmod, labels) != 7)
            continue;
        tm_pg_typeinfo_t info = {.oid = oid,
                                 .name = name,
                                 .nspname = "public",
                                 .typtype = typtype,
                                 .elem_oid = elem,
                                 .base_oid = base,
                                 .base_typmod = typmod,
                                 .delim = ',',
                                 .enum_labels = strcmp(labels, "-") == 0 ? NULL : labels};
        if (tm_pg_typecache_put(types, &info) != 0)
            break;
        n++;
    }
    fclose(f);
    return n > 0 ? 0 : -1;
}

/* The text path's datum and the binary path's, compared as the kind stores them. */
static bool datum_same(uint8_t kind, const tm_datum_t *a, const tm_datum_t *b)
{
    if (a->flags != b->flags || a->scale != b->scale)
        return false;
    switch (kind) {
    case TM_PG_K_BOOL:
        return a->u.b == b->u.b;
    case TM_PG_K_INT:
    case TM_PG_K_DATE:
    case TM_PG_K_TIME:
    case TM_PG_K_TIMETZ:
    case TM_PG_K_TIMESTAMP:
    case TM_PG_K_TIMESTAMPTZ:
        return a->u.i64 == b->u.i64;
    case TM_PG_K_FLOAT:
        return memcmp(&a->u.f64, &b->u.f64, sizeof(double)) == 0;
    case TM_PG_K_INTERVAL:
        return a->u.iv.us == b->u.iv.us && a->u.iv.months == b->u.iv.months;
    case TM_PG_K_NUMERIC:
    case TM_PG_K_MONEY:
        if (!(a->flags & (TM_DATUM_WIDE | TM_DATUM_NAN)))
            return a->u.dec == b->u.dec;
        /* fall through */
    default:
        return a->u.var.len == b->u.var.len &&
               memcmp(a->u.var.ptr, b->u.var.ptr, a->u.var.len) == 0;
    }
}

static void show_datum(const char *what, uint8_t kind, const tm_datum_t *d)
{
    switch (kind) {
    case TM_PG_K_BOOL:
        fprintf(stderr, "  %s: %d\n", what, d->u.b);
        break;
    case TM_PG_K_FLOAT:
        fprintf(stderr, "  %s: %.17g\n", what, d->u.f64);
        break;
    case TM_PG_K_INT:
    case TM_PG_K_DATE:
    case TM_PG_K_TIME:
    case TM_PG_K_TIMETZ:
    case TM_PG_K_TIMESTAMP:
    case TM_PG_K_TIMESTAMPTZ:
    case TM_PG_K_INTERVAL:
        fprintf(stderr, "  %s: %" PRId64 " (months %d)\n", what, d->u.i64, d->u.iv.months);
        break;
    case TM_PG_K_NUMERIC:
    case TM_PG_K_MONEY:
        if (!(d->flags & (TM_DATUM_WIDE | TM_DATUM_NAN))) {
            char buf[80];
            tm_numeric_format(d, buf, sizeof(buf));
            fprintf(stderr, "  %s: %s (scale %d)\n", what, buf, d->scale);
            break;
        }
        /* fall through */
    default:
        fprintf(stderr, "  %s: \"%.*s\" flags %u\n", what, (int)d->u.var.len, d->u.var.ptr,
                d->flags);
    }
}

#define MAX_RELS 8
#define MAX_COLS 64

typedef struct rel {
    uint32_t relid;
    char name[64];
    int ncols;
    tm_schema_t *schema;
    tm_pg_coltype_t ct[MAX_COLS];
    int compared[MAX_COLS]; /* non-null values compared per column */
} rel_t;

static rel_t rels[MAX_RELS];
static int nrels;
static int mismatches, binary_seen, text_in_binary;

static rel_t *rel_get(uint32_t relid)
{
    for (int i = 0; i < nrels; i++)
        if (rels[i].relid == relid)
            return &rels[i];
    return NULL;
}

static void on_relation(const tm_pg_msg_t *mt, const tm_pg_msg_t *mb)
{
    TM_REQUIRE(mt->u.relation.ncols == mb->u.relation.ncols);
    TM_REQUIRE(mt->u.relation.ncols <= MAX_COLS);
    rel_t *r = rel_get(mt->u.relation.relid);
    if (r == NULL) {
        TM_REQUIRE(nrels < MAX_RELS);
        r = &rels[nrels++];
        memset(r, 0, sizeof(*r));
    } else {
        tm_schema_unref(r->schema);
    }
    r->relid = mt->u.relation.relid;
    snprintf(r->name, sizeof(r->name), "%s", mt->u.relation.relname);
    r->ncols = mt->u.relation.ncols;
    r->schema = tm_schema_new(r->ncols);
    TM_REQUIRE(r->schema != NULL);
    for (int c = 0; c < r->ncols; c++) {
        const tm_pg_relcol_t *rc = &mt->u.relation.cols[c];
        tm_schema_set_str(&r->schema->cols[c].name, rc->name);
        TM_REQUIRE(tm_pg_column_describe(types, rc->type_oid, rc->typmod, &r->schema->cols[c],
                                         &r->ct[c]) == 0);
    }
}

static void compare_tuples(rel_t *r, const tm_pg_tuple_t *tt, const tm_pg_tuple_t *tb)
{
    TM_REQUIRE(tt->ncols == tb->ncols && tt->ncols == r->ncols);
    char et[256], eb[256];
    for (int c = 0; c < r->ncols; c++) {
        const tm_pg_tuple_col_t *vt = &tt->cols[c], *vb = &tb->cols[c];
        if (vt->kind != TM_PG_COL_TEXT) {
            TM_CHECK(vb->kind == vt->kind);
            continue;
        }
        if (vb->kind == TM_PG_COL_TEXT) {
            text_in_binary++; /* a type without a send function: pgoutput sends text */
            continue;
        }
        TM_REQUIRE(vb->kind == TM_PG_COL_BINARY);
        binary_seen++;
        const tm_pg_coltype_t *ct = &r->ct[c];
        if (ct->bin == TM_PG_BIN_NONE)
            continue; /* the fallback's business: no decoder, checked elsewhere */
        tm_datum_t dt, db;
        int rt = tm_pg_value_parse(batch, ct, (const char *)vt->data, vt->len, &dt, et, sizeof(et));
        int rb = tm_pg_binary_parse(batch, ct, vb->data, vb->len, &db, eb, sizeof(eb));
        uint8_t kind = ct->kind == TM_PG_K_ARRAY ? TM_PG_K_TEXT : ct->kind;
        if (rt != rb || (rt == 0 && !datum_same(kind, &dt, &db))) {
            mismatches++;
            fprintf(stderr, "%s.%s: text \"%.*s\" and binary (%u bytes) differ\n", r->name,
                    r->schema->cols[c].name, (int)vt->len, (const char *)vt->data, vb->len);
            if (rt != 0)
                fprintf(stderr, "  text: %s\n", et);
            else
                show_datum("text", kind, &dt);
            if (rb != 0)
                fprintf(stderr, "  binary: %s\n", eb);
            else
                show_datum("binary", kind, &db);
        }
        r->compared[c]++;
    }
}

static void test_capture_pairs(void)
{
    TM_REQUIRE(cap_bin.n == cap_txt.n && cap_bin.n > 3000);
    tm_pg_decoder_t *dt = tm_pg_decoder_new(1), *db = tm_pg_decoder_new(1);
    TM_REQUIRE(dt != NULL && db != NULL);
    char err[256];
    int changes = 0;
    for (size_t i = 0; i < cap_bin.n; i++) {
        tm_pg_msg_t mt, mb;
        TM_REQUIRE(tm_pg_decode(dt, cap_txt.v[i].data, cap_txt.v[i].len, &mt, err,
                                sizeof(err)) == 0);
        TM_REQUIRE(tm_pg_decode(db, cap_bin.v[i].data, cap_bin.v[i].len, &mb, err,
                                sizeof(err)) == 0);
        TM_REQUIRE(mt.tag == mb.tag);
        if (mt.tag == TM_PG_MSG_RELATION) {
            on_relation(&mt, &mb);
        } else if (mt.tag == TM_PG_MSG_INSERT || mt.tag == TM_PG_MSG_UPDATE ||
                   mt.tag == TM_PG_MSG_DELETE) {
            rel_t *r = rel_get(mt.u.change.relid);
            TM_REQUIRE(r != NULL);
            TM_REQUIRE(mt.u.change.old_kind == mb.u.change.old_kind);
            if (mt.u.change.old_kind != 0)
                compare_tuples(r, &mt.u.change.oldtup, &mb.u.change.oldtup);
            if (mt.tag != TM_PG_MSG_DELETE)
                compare_tuples(r, &mt.u.change.newtup, &mb.u.change.newtup);
            changes++;
        }
    }
    tm_pg_decoder_free(dt);
    tm_pg_decoder_free(db);
    TM_CHECK_INT(mismatches, 0);
    /* Every built-in type has a send function, so every non-null value came in binary. */
    TM_CHECK_INT(text_in_binary, 0);
    TM_CHECK(changes > 3000);
    TM_CHECK(binary_seen > 10000);

    /* Every column of every captured table met a value, except the undecodable point. */
    int tables = 0;
    for (int i = 0; i < nrels; i++) {
        rel_t *r = &rels[i];
        bool is_point = strcmp(r->name, "t_point") == 0;
        tables++;
        for (int c = 0; c < r->ncols; c++) {
            if (is_point && c == 1) {
                TM_CHECK_INT(r->ct[c].bin, TM_PG_BIN_NONE);
                continue;
            }
            if (r->compared[c] == 0)
                fprintf(stderr, "%s.%s: no value compared\n", r->name, r->schema->cols[c].name);
            TM_CHECK(r->compared[c] > 0);
            TM_CHECK(r->ct[c].bin != TM_PG_BIN_NONE);
        }
        if (strcmp(r->name, "t_float") == 0)
            TM_CHECK(r->compared[1] > 3000);
        /* The fallback sees what the binary path cannot decode, and only that. */
        TM_CHECK_INT(tm_pg_binary_unsupported(r->ct, r->ncols, true), is_point ? 1 : -1);
        if (strcmp(r->name, "t_bin") == 0) {
            int x = tm_pg_binary_unsupported(r->ct, r->ncols, false);
            TM_REQUIRE(x >= 0);
            TM_CHECK_STR(r->schema->cols[x].name, "x"); /* xml, in a non-UTF8 encoding */
        }
        tm_schema_unref(r->schema);
        r->schema = NULL;
    }
    TM_CHECK_INT(tables, 3);
}

/* ---- Hand-made values ---- */

static int bin(uint8_t b, const uint8_t *p, size_t len, tm_datum_t *d)
{
    tm_pg_coltype_t ct = {0};
    ct.bin = b;
    char err[256];
    return tm_pg_binary_parse(batch, &ct, p, len, d, err, sizeof(err));
}

static int arr(uint8_t elem_bin, uint8_t elem_kind, const uint8_t *p, size_t len, tm_datum_t *d)
{
    tm_pg_coltype_t ct = {0};
    ct.kind = TM_PG_K_ARRAY;
    ct.elem_kind = elem_kind;
    ct.bin = TM_PG_BIN_ARRAY;
    ct.elem_bin = elem_bin;
    char err[256];
    return tm_pg_binary_parse(batch, &ct, p, len, d, err, sizeof(err));
}

static bool var_is(const tm_datum_t *d, const char *s)
{
    return d->u.var.len == strlen(s) && memcmp(d->u.var.ptr, s, d->u.var.len) == 0;
}

static void test_numeric_layouts(void)
{
    tm_datum_t d;
    /* 12.5: ndigits 2, weight 0, sign +, dscale 1, digits 12, 5000. */
    const uint8_t v125[] = {0, 2, 0, 0, 0, 0, 0, 1, 0, 12, 0x13, 0x88};
    TM_REQUIRE(bin(TM_PG_BIN_NUMERIC, v125, sizeof(v125), &d) == 0);
    TM_CHECK(d.u.dec == 125 && d.scale == 1);
    /* -0.00012 (dscale 5): weight -1, digit 1 then 2000. */
    const uint8_t vs[] = {0, 2, 0xff, 0xff, 0x40, 0, 0, 5, 0, 1, 0x07, 0xd0};
    TM_REQUIRE(bin(TM_PG_BIN_NUMERIC, vs, sizeof(vs), &d) == 0);
    TM_CHECK(d.u.dec == -12 && d.scale == 5);
    /* 0 with dscale 3 is 0.000. */
    const uint8_t vz[] = {0, 0, 0, 0, 0, 0, 0, 3};
    TM_REQUIRE(bin(TM_PG_BIN_NUMERIC, vz, sizeof(vz), &d) == 0);
    TM_CHECK(d.u.dec == 0 && d.scale == 3);
    /* 1e8 stored as one digit of weight 2 with trailing groups dropped. */
    const uint8_t ve[] = {0, 1, 0, 2, 0, 0, 0, 0, 0, 1};
    TM_REQUIRE(bin(TM_PG_BIN_NUMERIC, ve, sizeof(ve), &d) == 0);
    TM_CHECK(d.u.dec == 100000000 && d.scale == 0);
    const uint8_t vnan[] = {0, 0, 0, 0, 0xc0, 0, 0, 0};
    TM_REQUIRE(bin(TM_PG_BIN_NUMERIC, vnan, sizeof(vnan), &d) == 0);
    TM_CHECK((d.flags & TM_DATUM_NAN) && var_is(&d, "NaN"));
    const uint8_t vninf[] = {0, 0, 0, 0, 0xf0, 0, 0, 0};
    TM_REQUIRE(bin(TM_PG_BIN_NUMERIC, vninf, sizeof(vninf), &d) == 0);
    TM_CHECK((d.flags & TM_DATUM_NAN) && var_is(&d, "-Infinity"));

    /* Corrupt: short header, digit count against length, digit > 9999, sign, NaN digits. */
    TM_CHECK_INT(bin(TM_PG_BIN_NUMERIC, v125, 7, &d), TM_EPROTO);
    TM_CHECK_INT(bin(TM_PG_BIN_NUMERIC, v125, 10, &d), TM_EPROTO);
    const uint8_t vbig[] = {0, 1, 0, 0, 0, 0, 0, 0, 0x27, 0x10};
    TM_CHECK_INT(bin(TM_PG_BIN_NUMERIC, vbig, sizeof(vbig), &d), TM_EPROTO);
    const uint8_t vsign[] = {0, 0, 0, 0, 0x12, 0x34, 0, 0};
    TM_CHECK_INT(bin(TM_PG_BIN_NUMERIC, vsign, sizeof(vsign), &d), TM_EPROTO);
    const uint8_t vnand[] = {0, 1, 0, 0, 0xc0, 0, 0, 0, 0, 1};
    TM_CHECK_INT(bin(TM_PG_BIN_NUMERIC, vnand, sizeof(vnand), &d), TM_EPROTO);
    const uint8_t vscale[] = {0, 0, 0, 0, 0, 0, 0x40, 0};
    TM_CHECK_INT(bin(TM_PG_BIN_NUMERIC, vscale, sizeof(vscale), &d), TM_EPROTO);
    /* The widest weight and scale PostgreSQL allows still decode (text kept: too wide). */
    uint8_t *w = calloc(1, 8 + 2);
    TM_REQUIRE(w != NULL);
    w[1] = 1;
    w[2] = 0x7f;
    w[3] = 0xff;
    w[6] = 0x3f;
    w[7] = 0xff;
    w[9] = 9;
    TM_CHECK_INT(bin(TM_PG_BIN_NUMERIC, w, 10, &d), 0);
    free(w);
}

static void test_scalar_layouts(void)
{
    tm_datum_t d;
    const uint8_t i2[] = {0xff, 0xfe};
    TM_REQUIRE(bin(TM_PG_BIN_INT2, i2, 2, &d) == 0);
    TM_CHECK(d.u.i64 == -2);
    TM_CHECK_INT(bin(TM_PG_BIN_INT2, i2, 1, &d), TM_EPROTO);
    const uint8_t oid[] = {0xff, 0xff, 0xff, 0xff};
    TM_REQUIRE(bin(TM_PG_BIN_OID, oid, 4, &d) == 0);
    TM_CHECK(d.u.i64 == 4294967295LL);
    TM_REQUIRE(bin(TM_PG_BIN_INT4, oid, 4, &d) == 0);
    TM_CHECK(d.u.i64 == -1);
    /* Dates: PostgreSQL's epoch is day 10957 of Unix's; infinities map to the sentinels. */
    const uint8_t d0[] = {0, 0, 0, 0}, dinf[] = {0x7f, 0xff, 0xff, 0xff}, dninf[] = {0x80, 0, 0, 0};
    TM_REQUIRE(bin(TM_PG_BIN_DATE, d0, 4, &d) == 0);
    TM_CHECK(d.u.i64 == 10957);
    TM_REQUIRE(bin(TM_PG_BIN_DATE, dinf, 4, &d) == 0);
    TM_CHECK(d.u.i64 == TM_PG_DATE_POS_INF);
    TM_REQUIRE(bin(TM_PG_BIN_DATE, dninf, 4, &d) == 0);
    TM_CHECK(d.u.i64 == TM_PG_DATE_NEG_INF);
    const uint8_t tsmax[] = {0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    const uint8_t tsbig[] = {0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe};
    TM_REQUIRE(bin(TM_PG_BIN_TIMESTAMP, tsmax, 8, &d) == 0);
    TM_CHECK(d.u.i64 == TM_PG_TS_POS_INF);
    /* A finite value that would reach the sentinel is refused, as the text path refuses it. */
    TM_CHECK_INT(bin(TM_PG_BIN_TIMESTAMP, tsbig, 8, &d), TM_EPROTO);
    /* time beyond 24:00 and a timetz of the wrong size. */
    const uint8_t tbad[] = {0, 0, 0x14, 0x1d, 0xd7, 0x60, 0x00, 0x01};
    TM_CHECK_INT(bin(TM_PG_BIN_TIME, tbad, 8, &d), TM_EPROTO);
    TM_CHECK_INT(bin(TM_PG_BIN_TIMETZ, tbad, 8, &d), TM_EPROTO);
    /* timetz: 01:00 at UTC+05:30 (zone -19800 s, west positive) is 19:30 UTC. */
    uint8_t tz[12] = {0};
    tm_pg_put_u64(tz, (uint64_t)3600 * 1000000);
    tm_pg_put_u32(tz + 8, (uint32_t)-19800);
    TM_REQUIRE(bin(TM_PG_BIN_TIMETZ, tz, 12, &d) == 0);
    TM_CHECK(d.u.i64 == (int64_t)(19 * 3600 + 1800) * 1000000);
    /* jsonb: version 1 only. */
    const uint8_t jb[] = {1, '{', '}'}, jb2[] = {2, '{', '}'};
    TM_REQUIRE(bin(TM_PG_BIN_JSONB, jb, 3, &d) == 0);
    TM_CHECK(var_is(&d, "{}"));
    TM_CHECK_INT(bin(TM_PG_BIN_JSONB, jb2, 3, &d), TM_EPROTO);
    TM_CHECK_INT(bin(TM_PG_BIN_JSONB, jb, 0, &d), TM_EPROTO);
    /* Bit strings: 10 bits need 2 bytes. */
    const uint8_t bits[] = {0, 0, 0, 10, 0xa5, 0xc0};
    TM_REQUIRE(bin(TM_PG_BIN_BIT, bits, 6, &d) == 0);
    TM_CHECK(var_is(&d, "1010010111"));
    TM_CHECK_INT(bin(TM_PG_BIN_BIT, bits, 5, &d), TM_EPROTO);
    /* "char" as charout prints it: a high byte as \ooo, NUL as nothing. */
    const uint8_t ch[] = {0xe9}, nul[] = {0};
    TM_REQUIRE(bin(TM_PG_BIN_CHAR, ch, 1, &d) == 0);
    TM_CHECK(var_is(&d, "\\351"));
    TM_REQUIRE(bin(TM_PG_BIN_CHAR, nul, 1, &d) == 0);
    TM_CHECK(var_is(&d, ""));
    const uint8_t u[16] = {0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8,
                           0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11};
    TM_REQUIRE(bin(TM_PG_BIN_UUID, u, 16, &d) == 0);
    TM_CHECK(var_is(&d, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
    TM_CHECK_INT(bin(TM_PG_BIN_UUID, u, 15, &d), TM_EPROTO);
    /* Money: int64 cents, the most negative included. */
    const uint8_t mmin[] = {0x80, 0, 0, 0, 0, 0, 0, 0};
    TM_REQUIRE(bin(TM_PG_BIN_MONEY, mmin, 8, &d) == 0);
    char buf[64];
    tm_numeric_format(&d, buf, sizeof(buf));
    TM_CHECK_STR(buf, "-92233720368547758.08");
    /* No decoder: an error, not a guess. */
    TM_CHECK_INT(bin(TM_PG_BIN_NONE, u, 16, &d), TM_EPROTO);
}

static void test_float4_text(void)
{
    /* What PostgreSQL prints (extra_float_digits = 3), read back as a double. */
    TM_CHECK(tm_pg_float4_as_text(0.1f) == 0.1);
    TM_CHECK(tm_pg_float4_as_text(1.5f) == 1.5);
    TM_CHECK(tm_pg_float4_as_text(3.4028235e38f) == 3.4028235e38);
    TM_CHECK(tm_pg_float4_as_text(1e-45f) == 1e-45);
    TM_CHECK(tm_pg_float4_as_text(16777216.0f) == 16777216.0);
    TM_CHECK(tm_pg_float4_as_text(1.17549435e-38f) == 1.1754944e-38);
    TM_CHECK(signbit(tm_pg_float4_as_text(-0.0f)));
    TM_CHECK(isnan(tm_pg_float4_as_text(NAN)));
    TM_CHECK(tm_pg_float4_as_text(-INFINITY) == -INFINITY);
    /* Every float4 in a sweep reads back as itself (the text names that float4). */
    int bad = 0;
    for (uint32_t u = 0; u < 0x7f800000u; u += 0x00012345u) {
        float f;
        memcpy(&f, &u, sizeof(f));
        if ((float)tm_pg_float4_as_text(f) != f)
            bad++;
    }
    TM_CHECK_INT(bad, 0);
}

static void put32(uint8_t **p, uint32_t v)
{
    tm_pg_put_u32(*p, v);
    *p += 4;
}

static void test_array_layouts(void)
{
    tm_datum_t d;
    uint8_t buf[256], *p = buf;
    /* int4[2][2] = {{1,NULL},{3,4}} */
    put32(&p, 2);
    put32(&p, 1);
    put32(&p, 23);
    put32(&p, 2);
    put32(&p, 1);
    put32(&p, 2);
    put32(&p, 1);
    put32(&p, 4);
    put32(&p, 1);
    put32(&p, 0xffffffffu);
    put32(&p, 4);
    put32(&p, 3);
    put32(&p, 4);
    put32(&p, 4);
    size_t n = (size_t)(p - buf);
    TM_REQUIRE(arr(TM_PG_BIN_INT4, TM_PG_K_INT, buf, n, &d) == 0);
    TM_CHECK(var_is(&d, "[[1,null],[3,4]]"));
    /* Every truncation fails, and so do trailing bytes. */
    int ok = 0;
    for (size_t k = 0; k < n; k++)
        ok += arr(TM_PG_BIN_INT4, TM_PG_K_INT, buf, k, &d) == 0;
    TM_CHECK_INT(ok, 0);
    buf[n] = 0;
    TM_CHECK_INT(arr(TM_PG_BIN_INT4, TM_PG_K_INT, buf, n + 1, &d), TM_EPROTO);
    /* An element of the wrong size for its type. */
    tm_pg_put_u32(buf + 40, 3);
    TM_CHECK_INT(arr(TM_PG_BIN_INT4, TM_PG_K_INT, buf, n, &d), TM_EPROTO);

    /* Empty: no dimensions at all. */
    p = buf;
    put32(&p, 0);
    put32(&p, 0);
    put32(&p, 23);
    TM_REQUIRE(arr(TM_PG_BIN_INT4, TM_PG_K_INT, buf, 12, &d) == 0);
    TM_CHECK(var_is(&d, "[]"));
    /* Seven dimensions, bad flags, a negative length. */
    tm_pg_put_u32(buf, 7);
    TM_CHECK_INT(arr(TM_PG_BIN_INT4, TM_PG_K_INT, buf, 12, &d), TM_EPROTO);
    tm_pg_put_u32(buf, 0);
    tm_pg_put_u32(buf + 4, 2);
    TM_CHECK_INT(arr(TM_PG_BIN_INT4, TM_PG_K_INT, buf, 12, &d), TM_EPROTO);
    /* Dimensions that claim 2^62 elements in a few bytes: refused before any output. */
    p = buf;
    put32(&p, 2);
    put32(&p, 0);
    put32(&p, 23);
    put32(&p, 0x7fffffff);
    put32(&p, 1);
    put32(&p, 0x7fffffff);
    put32(&p, 1);
    put32(&p, 4);
    put32(&p, 7);
    TM_CHECK_INT(arr(TM_PG_BIN_INT4, TM_PG_K_INT, buf, (size_t)(p - buf), &d), TM_EPROTO);
    tm_pg_put_u32(buf + 12, 0xffffffffu);
    TM_CHECK_INT(arr(TM_PG_BIN_INT4, TM_PG_K_INT, buf, (size_t)(p - buf), &d), TM_EPROTO);
    /* An array of a type without a decoder. */
    TM_CHECK_INT(arr(TM_PG_BIN_NONE, TM_PG_K_OTHER, buf, 12, &d), TM_EPROTO);
}

static void test_formats(void)
{
    tm_column_t col;
    tm_pg_coltype_t ct;
    memset(&col, 0, sizeof(col));
    /* point and arrays of it have no decoder; enums send their label; domains their base. */
    TM_REQUIRE(tm_pg_column_describe(NULL, 600, -1, &col, &ct) == 0);
    TM_CHECK_INT(ct.bin, TM_PG_BIN_NONE);
    TM_CHECK_INT(tm_pg_binary_unsupported(&ct, 1, true), 0);
    TM_REQUIRE(tm_pg_column_describe(NULL, 1017, -1, &col, &ct) == 0);
    TM_CHECK_INT(ct.bin, TM_PG_BIN_NONE);
    TM_REQUIRE(tm_pg_column_describe(NULL, 1231, -1, &col, &ct) == 0);
    TM_CHECK_INT(ct.bin, TM_PG_BIN_ARRAY);
    TM_CHECK_INT(ct.elem_bin, TM_PG_BIN_NUMERIC);
    TM_REQUIRE(tm_pg_column_describe(types, 16385, -1, &col, &ct) == 0); /* mood */
    TM_CHECK_INT(ct.bin, TM_PG_BIN_TEXT);
    TM_REQUIRE(tm_pg_column_describe(types, 16392, -1, &col, &ct) == 0); /* posint */
    TM_CHECK_INT(ct.bin, TM_PG_BIN_INT4);
    TM_REQUIRE(tm_pg_column_describe(NULL, 142, -1, &col, &ct) == 0); /* xml */
    TM_CHECK_INT(tm_pg_binary_unsupported(&ct, 1, true), -1);
    TM_CHECK_INT(tm_pg_binary_unsupported(&ct, 1, false), 0);
    /* An extension type the cache does not know. */
    TM_REQUIRE(tm_pg_column_describe(types, 99999, -1, &col, &ct) == 0);
    TM_CHECK_INT(ct.bin, TM_PG_BIN_NONE);
    tm_schema_set_str(&col.db_type, NULL);
    tm_schema_set_str(&col.semantic, NULL);
    tm_schema_set_str(&col.enum_values, NULL);
}

int main(void)
{
    char p1[1024], p2[1024], p3[1024];
    types = tm_pg_typecache_new();
    batch = tm_batch_new();
    if (types == NULL || batch == NULL ||
        capture_load(tm_test_data("pgoutput/binary.txt", p1, sizeof(p1)), &cap_bin) != 0 ||
        capture_load(tm_test_data("pgoutput/binary_text.txt", p2, sizeof(p2)), &cap_txt) != 0 ||
        load_types(tm_test_data("pgoutput/binary_types.txt", p3, sizeof(p3))) != 0) {
        fprintf(stderr, "cannot load captures %s, %s, %s\n", p1, p2, p3);
        return 1;
    }
    TM_RUN(test_capture_pairs);
    TM_RUN(test_numeric_layouts);
    TM_RUN(test_scalar_layouts);
    TM_RUN(test_float4_text);
    TM_RUN(test_array_layouts);
    TM_RUN(test_formats);
    capture_free(&cap_bin);
    capture_free(&cap_txt);
    tm_batch_unref(batch);
    tm_pg_typecache_free(types);
    return tm_test_done();
}
