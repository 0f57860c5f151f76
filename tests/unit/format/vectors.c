/*
 * vectors.c — real Debezium events from tests/data/debezium (format-vectors).
 *
 * Role: the compatibility contract against the outside world (DESIGN §3).
 *   1. Every event of every vector file decodes, with the op counts of the
 *      README's table; a file the test does not know about fails it, so new
 *      vectors cannot be added silently.
 *   2. Concrete values come out right (ids, names, doubles, decimals as
 *      base64, as JSON numbers and beyond int64, times, snapshot flags).
 *   3. The PostgreSQL events, re-encoded by tidemark, are structurally what
 *      Debezium wrote: the payload keys, equal row images, every source field
 *      the vector has (same values), and in the schema part the same type and
 *      logical name for every column.  MySQL events keep their source fields.
 *
 * Thread: single-threaded.
 */
#include "core/error.h"
#include "fmt_util.h"
#include "tm_test.h"

#include <dirent.h>
#include <jansson.h>
#include <sys/stat.h>

enum { VEC_JSONL, VEC_DOC, VEC_PAIR };

typedef struct vec_file {
    const char *path;
    int kind;
    int nr, nc, nu, nd; /* the README's op counts */
    const char *connector;
} vec_file_t;

static const vec_file_t vec_files[] = {
    {"flink/debezium-postgres-data-schema-include.txt", VEC_JSONL, 9, 2, 4, 1, "postgresql"},
    {"flink/debezium-postgres-data-schema-exclude.txt", VEC_JSONL, 9, 2, 4, 1, "postgresql"},
    {"flink/debezium-postgres-data-replica-identity.txt", VEC_JSONL, 9, 2, 4, 1, "postgresql"},
    {"flink/debezium-data-schema-include.txt", VEC_JSONL, 0, 11, 4, 1, "mysql"},
    {"flink-cdc/debezium-data-schema-exclude.json", VEC_PAIR, 1, 0, 1, 0, NULL},
    {"flink-cdc/debezium-data-schema-exclude-with-numeric-decimal.json", VEC_PAIR, 1, 0, 1, 0,
     NULL},
    {"debezium/serde-with-schema.json", VEC_DOC, 0, 1, 0, 0, "mysql"},
    {"debezium/serde-without-schema.json", VEC_DOC, 0, 1, 0, 0, "mysql"},
    {"debezium/serde-update.json", VEC_DOC, 0, 0, 1, 0, "mysql"},
    {"risingwave/debezium_log.1", VEC_JSONL, 4, 2, 3, 1, "mysql"},
};
#define NFILES ((int)(sizeof(vec_files) / sizeof(vec_files[0])))

/* Files in the vector folder that hold no events. */
static const char *const non_events[] = {"README.md", "flink-cdc/column_type_test.sql"};

#define MAX_EVENTS 64

/* One decoded file: its raw events and their records (all in one batch). */
typedef struct vec_run {
    int n;
    const char *text[MAX_EVENTS];
    size_t len[MAX_EVENTS];
    tm_record_t *rec[MAX_EVENTS];
    tm_batch_t *batch;
    char *buf;
} vec_run_t;

/*
 * The raw span of a top-level member of a JSON object document.  The
 * flink-cdc files hold two events under keys; splitting them by text keeps
 * numbers beyond int64 intact for the decoder.
 */
static bool member_span(const char *doc, size_t len, const char *key, const char **start,
                        size_t *n)
{
    size_t i = 0, klen = strlen(key);
    while (i < len && doc[i] != '{')
        i++;
    i++;
    while (i < len) {
        while (i < len && doc[i] != '"' && doc[i] != '}')
            i++;
        if (i >= len || doc[i] == '}')
            return false;
        size_t ks = ++i;
        while (i < len && doc[i] != '"')
            i += doc[i] == '\\' ? 2 : 1;
        bool match = i - ks == klen && memcmp(doc + ks, key, klen) == 0;
        i++;
        while (i < len && doc[i] != ':')
            i++;
        i++;
        while (i < len && (doc[i] == ' ' || doc[i] == '\n' || doc[i] == '\r' || doc[i] == '\t'))
            i++;
        size_t vs = i;
        int depth = 0;
        bool in_str = false;
        for (; i < len; i++) {
            char c = doc[i];
            if (in_str) {
                if (c == '\\')
                    i++;
                else if (c == '"')
                    in_str = false;
            } else if (c == '"') {
                in_str = true;
            } else if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                if (depth == 0)
                    break;
                depth--;
            } else if (c == ',' && depth == 0) {
                break;
            }
        }
        if (match) {
            *start = doc + vs;
            *n = i - vs;
            return true;
        }
        if (i < len && doc[i] == ',')
            i++;
    }
    return false;
}

static void vec_split(const vec_file_t *f, vec_run_t *run, size_t len)
{
    char *p = run->buf;
    if (f->kind == VEC_DOC) {
        run->text[0] = p;
        run->len[0] = len;
        run->n = 1;
    } else if (f->kind == VEC_PAIR) {
        static const char *const keys[] = {"expected_snapshot", "expected_binlog"};
        for (int k = 0; k < 2; k++) {
            TM_CHECK(member_span(p, len, keys[k], &run->text[run->n], &run->len[run->n]));
            run->n++;
        }
    } else {
        char *line = p, *end = p + len;
        while (line < end && run->n < MAX_EVENTS) {
            char *nl = memchr(line, '\n', (size_t)(end - line));
            size_t n = nl ? (size_t)(nl - line) : (size_t)(end - line);
            bool blank = true;
            for (size_t i = 0; i < n; i++)
                if (line[i] != ' ' && line[i] != '\r' && line[i] != '\t')
                    blank = false;
            if (!blank) {
                run->text[run->n] = line;
                run->len[run->n] = n;
                run->n++;
            }
            line += n + 1;
        }
    }
}

/* Decodes every event of a vector file with `dec`; checks the op counts. */
static void vec_decode(const vec_file_t *f, tm_dbz_decoder_t *dec, vec_run_t *run)
{
    char rel[512], path[1024];
    size_t len = 0;
    memset(run, 0, sizeof(*run));
    snprintf(rel, sizeof(rel), "debezium/%s", f->path);
    run->buf = fmt_read_file(tm_test_data(rel, path, sizeof(path)), &len);
    if (run->buf == NULL)
        fprintf(stderr, "cannot read %s\n", path);
    TM_REQUIRE(run->buf != NULL);
    vec_split(f, run, len);
    run->batch = tm_batch_new();
    int counts[128] = {0};
    for (int i = 0; i < run->n; i++) {
        char err[256] = "";
        int rc = tm_dbz_decode(dec, run->text[i], run->len[i], run->batch, &run->rec[i], err,
                               sizeof(err));
        if (rc != 0)
            fprintf(stderr, "%s event %d: %d %s\n", f->path, i, rc, err);
        TM_REQUIRE(rc == 0);
        counts[run->rec[i]->op & 127]++;
    }
    TM_CHECK_INT(counts['r'], f->nr);
    TM_CHECK_INT(counts['c'], f->nc);
    TM_CHECK_INT(counts['u'], f->nu);
    TM_CHECK_INT(counts['d'], f->nd);
    TM_CHECK_INT(run->n, f->nr + f->nc + f->nu + f->nd);
}

static void vec_release(vec_run_t *run)
{
    tm_batch_unref(run->batch);
    free(run->buf);
}

static const tm_datum_t *col(const tm_record_t *r, bool after, const char *name)
{
    const tm_row_t *row = after ? r->after : r->before;
    int i = tm_schema_find(r->schema, name);
    if (row == NULL || i < 0 || tm_row_is_null(row, i))
        return NULL;
    return &row->vals[i];
}

static bool col_str(const tm_record_t *r, bool after, const char *name, const char *want)
{
    const tm_datum_t *d = col(r, after, name);
    return d != NULL && d->u.var.len == strlen(want) &&
           memcmp(d->u.var.ptr, want, d->u.var.len) == 0;
}

static const tm_dbz_opts_t dec_opts = {.connector = "postgresql"};

/* ---- 1. every file, every event ---- */

static void test_every_file_known(void)
{
    const char *root = getenv("TM_TEST_DATA");
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/debezium", root ? root : "tests/data");
    bool seen[NFILES] = {false};
    int nfiles = 0;
    static const char *const subdirs[] = {"", "flink", "flink-cdc", "debezium", "risingwave"};
    for (size_t s = 0; s < sizeof(subdirs) / sizeof(subdirs[0]); s++) {
        char sub[1100];
        snprintf(sub, sizeof(sub), "%s/%s", dir, subdirs[s]);
        DIR *d = opendir(sub);
        TM_REQUIRE(d != NULL);
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char rel[600], full[1800];
            struct stat st;
            if (e->d_name[0] == '.')
                continue;
            snprintf(rel, sizeof(rel), "%s%s%s", subdirs[s], subdirs[s][0] ? "/" : "", e->d_name);
            snprintf(full, sizeof(full), "%s/%s", dir, rel);
            if (stat(full, &st) != 0 || !S_ISREG(st.st_mode))
                continue;
            bool known = false;
            for (int i = 0; i < NFILES; i++)
                if (strcmp(rel, vec_files[i].path) == 0)
                    known = seen[i] = true;
            for (size_t i = 0; i < sizeof(non_events) / sizeof(non_events[0]); i++)
                if (strcmp(rel, non_events[i]) == 0)
                    known = true;
            if (!known)
                fprintf(stderr, "vector file %s is not listed in vectors.c\n", rel);
            TM_CHECK(known);
            nfiles++;
        }
        closedir(d);
    }
    for (int i = 0; i < NFILES; i++)
        TM_CHECK(seen[i]);
    TM_CHECK(nfiles == NFILES + 2);
}

static void test_decode_all(void)
{
    for (int i = 0; i < NFILES; i++) {
        tm_dbz_decoder_t *dec = tm_dbz_decoder_new(&dec_opts, NULL);
        vec_run_t run;
        vec_decode(&vec_files[i], dec, &run);
        /* One table per file: the decoder hands out one schema object for all of it. */
        for (int k = 1; k < run.n; k++)
            if (vec_files[i].kind != VEC_PAIR)
                TM_CHECK(run.rec[k]->schema == run.rec[0]->schema);
        vec_release(&run);
        tm_dbz_decoder_free(dec);
    }
}

/* ---- 2. concrete values ---- */

static void test_postgres_with_schema(void)
{
    tm_dbz_decoder_t *dec = tm_dbz_decoder_new(&dec_opts, NULL);
    vec_run_t run;
    vec_decode(&vec_files[0], dec, &run);
    const tm_record_t *r = run.rec[0];
    const tm_schema_t *s = r->schema;
    TM_CHECK_INT(r->op, TM_OP_READ);
    TM_CHECK_STR(s->source_name, "fullfillment");
    TM_CHECK_STR(s->db, "postgres");
    TM_CHECK_STR(s->namespace, "inventory");
    TM_CHECK_STR(s->table, "products");
    TM_REQUIRE(s->ncols == 4);
    TM_CHECK_INT(s->cols[0].type, TM_T_INT32);
    TM_CHECK(!s->cols[0].nullable);
    TM_CHECK_INT(s->cols[1].type, TM_T_TEXT);
    TM_CHECK_INT(s->cols[3].type, TM_T_FLOAT64);
    TM_CHECK(s->cols[3].nullable);
    TM_REQUIRE(col(r, true, "id") != NULL);
    TM_CHECK_INT(col(r, true, "id")->u.i64, 101);
    TM_CHECK(col_str(r, true, "name", "scooter"));
    TM_CHECK(col_str(r, true, "description", "Small 2-wheel scooter"));
    TM_CHECK(col(r, true, "weight")->u.f64 == 3.14);
    TM_CHECK(r->before == NULL);
    TM_CHECK_INT(r->src.snapshot, TM_SNAPSHOT_TRUE);
    TM_CHECK_INT(r->src.pos, 34078720);
    TM_CHECK_INT(r->src.u.pg.xid, 601);
    TM_CHECK_INT(r->src.ts_us, INT64_C(1596001099434000));
    TM_CHECK_INT(r->proc_us, INT64_C(1596001099434000));

    /* The first update: hammer 106's description changes. */
    r = run.rec[9];
    TM_CHECK_INT(r->op, TM_OP_UPDATE);
    TM_CHECK_INT(col(r, false, "id")->u.i64, 106);
    TM_CHECK(col_str(r, false, "description", "16oz carpenter's hammer"));
    TM_CHECK(col_str(r, true, "description", "18oz carpenter hammer"));
    TM_CHECK(col(r, true, "weight")->u.f64 == 1.0);
    TM_CHECK_INT(r->src.snapshot, TM_SNAPSHOT_FALSE);
    TM_CHECK_INT(r->src.pos, 34131104);
    TM_CHECK_INT(r->proc_us, INT64_C(1596010890411000));

    /* Rocks 107: weight 5.3 → 5.1. */
    r = run.rec[10];
    TM_CHECK(col(r, false, "weight")->u.f64 == 5.3);
    TM_CHECK(col(r, true, "weight")->u.f64 == 5.1);

    r = run.rec[15];
    TM_CHECK_INT(r->op, TM_OP_DELETE);
    TM_CHECK(r->after == NULL);
    TM_CHECK_INT(col(r, false, "id")->u.i64, 111);
    TM_CHECK(col_str(r, false, "description", "Big 2-wheel scooter "));
    vec_release(&run);
    tm_dbz_decoder_free(dec);
}

static void test_postgres_without_schema(void)
{
    tm_dbz_decoder_t *dec = tm_dbz_decoder_new(&dec_opts, NULL);
    vec_run_t run;
    vec_decode(&vec_files[1], dec, &run);
    const tm_record_t *r = run.rec[0];
    /* Inferred types: integers are int64, reals float64. */
    TM_CHECK_INT(r->schema->cols[0].type, TM_T_INT64);
    TM_CHECK_INT(r->schema->cols[3].type, TM_T_FLOAT64);
    TM_CHECK_INT(col(r, true, "id")->u.i64, 101);
    TM_CHECK(col(r, true, "weight")->u.f64 == 3.14);
    TM_CHECK_STR(r->schema->table, "products");
    vec_release(&run);

    vec_decode(&vec_files[2], dec, &run);
    /* REPLICA IDENTITY DEFAULT through old decoders: no before images at all. */
    r = run.rec[9];
    TM_CHECK_INT(r->op, TM_OP_UPDATE);
    TM_CHECK(r->before == NULL);
    TM_CHECK_INT(col(r, true, "id")->u.i64, 106);
    r = run.rec[15];
    TM_CHECK_INT(r->op, TM_OP_DELETE);
    TM_CHECK(r->before == NULL && r->after == NULL);
    vec_release(&run);
    tm_dbz_decoder_free(dec);
}

static void test_mysql_vectors(void)
{
    tm_dbz_decoder_t *dec = tm_dbz_decoder_new(&dec_opts, NULL);
    vec_run_t run;
    vec_decode(&vec_files[3], dec, &run);
    const tm_record_t *r = run.rec[0];
    TM_CHECK_INT(r->op, TM_OP_CREATE);
    TM_CHECK_INT(r->src.snapshot, TM_SNAPSHOT_TRUE);
    TM_CHECK_STR(r->schema->source_name, "dbserver1");
    TM_CHECK_STR(r->schema->db, "inventory");
    TM_CHECK(r->schema->namespace == NULL);
    TM_CHECK_STR(r->schema->table, "products");
    /* A MySQL FLOAT widened to double by Debezium 1.1. */
    TM_CHECK(col(r, true, "weight")->u.f64 == 3.140000104904175);
    vec_release(&run);

    vec_decode(&vec_files[6], dec, &run);
    r = run.rec[0];
    TM_CHECK(col_str(r, true, "first_name", "Anne"));
    TM_CHECK_INT(col(r, true, "id")->u.i64, 1004);
    TM_CHECK_INT(r->schema->cols[0].type, TM_T_INT32);
    /* Debezium 0.10 wrote snapshot as a boolean and had ts_us in the envelope. */
    TM_CHECK_INT(r->src.snapshot, TM_SNAPSHOT_FALSE);
    TM_CHECK_INT(r->proc_us, INT64_C(1465491411815000));
    vec_release(&run);

    vec_decode(&vec_files[8], dec, &run);
    r = run.rec[0];
    TM_CHECK(col_str(r, false, "first_name", "Anne-Marie"));
    TM_CHECK(col_str(r, true, "first_name", "Anne"));
    vec_release(&run);

    vec_decode(&vec_files[9], dec, &run);
    r = run.rec[0];
    TM_CHECK_INT(r->op, TM_OP_READ);
    TM_CHECK_INT(col(r, true, "id")->u.i64, 1001);
    TM_CHECK(col_str(r, true, "first_name", "Sally"));
    TM_CHECK_INT(r->src.ts_us, INT64_C(1661327688868000));
    vec_release(&run);
    tm_dbz_decoder_free(dec);
}

/* A declared schema for the flink-cdc full_types row (a subset; the rest is ignored). */
static tm_schema_t *full_types_schema(void)
{
    static const struct {
        const char *name;
        tm_type_t type;
        int32_t precision, scale;
    } defs[] = {
        {"tiny_c", TM_T_INT16, -1, 0},        {"big_c", TM_T_INT64, -1, 0},
        {"big_un_c", TM_T_NUMERIC, 20, 0},    {"double_c", TM_T_FLOAT64, -1, 0},
        {"real_c", TM_T_FLOAT32, -1, 0},      {"decimal_c", TM_T_NUMERIC, 8, 4},
        {"numeric_c", TM_T_NUMERIC, 6, 0},    {"big_decimal_c", TM_T_NUMERIC, 65, 1},
        {"bit1_c", TM_T_BOOL, -1, 0},         {"boolean_c", TM_T_BOOL, -1, 0},
        {"date_c", TM_T_DATE, -1, 0},         {"time_c", TM_T_TIME, 6, 0},
        {"datetime3_c", TM_T_TIMESTAMP, 3, 0}, {"datetime6_c", TM_T_TIMESTAMP, 6, 0},
        {"timestamp_c", TM_T_TIMESTAMPTZ, -1, 0}, {"file_uuid", TM_T_BYTES, -1, 0},
        {"json_c", TM_T_JSON, -1, 0},         {"enum_c", TM_T_ENUM, -1, 0},
        {"point_c", TM_T_JSON, -1, 0},        {"varchar_len0_c", TM_T_TEXT, -1, 0},
        {"not_in_the_event", TM_T_TEXT, -1, 0},
    };
    int n = (int)(sizeof(defs) / sizeof(defs[0]));
    tm_schema_t *s = tm_schema_new(n);
    for (int i = 0; i < n; i++) {
        tm_schema_set_str(&s->cols[i].name, defs[i].name);
        s->cols[i].type = defs[i].type;
        s->cols[i].precision = defs[i].precision;
        s->cols[i].scale = defs[i].scale;
    }
    tm_schema_finish(s);
    return s;
}

static void check_full_types(const tm_record_t *r, bool after)
{
    char canon[64];
    TM_CHECK_INT(col(r, after, "tiny_c")->u.i64, 127);
    TM_CHECK_INT(col(r, after, "big_c")->u.i64, INT64_MAX);
    fmt_numeric_canon(col(r, after, "big_un_c"), canon, sizeof(canon));
    TM_CHECK_STR(canon, "18446744073709551615");
    fmt_numeric_canon(col(r, after, "decimal_c"), canon, sizeof(canon));
    TM_CHECK_STR(canon, "123.4567");
    fmt_numeric_canon(col(r, after, "numeric_c"), canon, sizeof(canon));
    TM_CHECK_STR(canon, "346");
    fmt_numeric_canon(col(r, after, "big_decimal_c"), canon, sizeof(canon));
    TM_CHECK_STR(canon, "34567892.1");
    TM_CHECK(col(r, after, "double_c")->u.f64 == 404.4443);
    TM_CHECK(col(r, after, "real_c")->u.f64 == (double)123.102f);
    TM_CHECK(!col(r, after, "bit1_c")->u.b);
    TM_CHECK(col(r, after, "boolean_c")->u.b);
    TM_CHECK_INT(col(r, after, "date_c")->u.i64, 18460);
    TM_CHECK_INT(col(r, after, "time_c")->u.i64, INT64_C(64822000000));
    TM_CHECK_INT(col(r, after, "datetime3_c")->u.i64, INT64_C(1595008822123000));
    TM_CHECK_INT(col(r, after, "datetime6_c")->u.i64, INT64_C(1595008822123456));
    TM_CHECK_INT(col(r, after, "file_uuid")->u.var.len, 16);
    TM_CHECK(col_str(r, after, "enum_c", "red"));
    TM_CHECK(col_str(r, after, "varchar_len0_c", ""));
    TM_CHECK(col(r, after, "point_c") != NULL &&
             strstr(col(r, after, "point_c")->u.var.ptr, "\"wkb\"") != NULL);
    TM_CHECK(col(r, after, "not_in_the_event") == NULL);
}

static void test_flink_cdc_full_types(void)
{
    tm_schema_t *s = full_types_schema();
    /* Decimals as base64 bytes (precise) and as plain JSON numbers: the same values. */
    for (int f = 4; f <= 5; f++) {
        tm_dbz_decoder_t *dec = tm_dbz_decoder_new(&dec_opts, s);
        vec_run_t run;
        vec_decode(&vec_files[f], dec, &run);
        TM_CHECK_INT(run.rec[0]->op, TM_OP_READ);
        check_full_types(run.rec[0], true);
        TM_CHECK_INT(col(run.rec[0], true, "timestamp_c")->u.i64, INT64_C(1595008822000000));
        TM_CHECK_INT(run.rec[1]->op, TM_OP_UPDATE);
        check_full_types(run.rec[1], false);
        check_full_types(run.rec[1], true);
        TM_CHECK_INT(col(run.rec[1], true, "timestamp_c")->u.i64, INT64_C(1595010802000000));
        vec_release(&run);
        tm_dbz_decoder_free(dec);
    }
    tm_schema_unref(s);

    /* Without a declaration the values keep their JSON types; big_un_c stays exact. */
    tm_dbz_decoder_t *dec = tm_dbz_decoder_new(&dec_opts, NULL);
    vec_run_t run;
    vec_decode(&vec_files[5], dec, &run);
    const tm_datum_t *d = col(run.rec[0], true, "big_un_c");
    char canon[64];
    TM_REQUIRE(d != NULL);
    TM_CHECK_INT(run.rec[0]->schema->cols[tm_schema_find(run.rec[0]->schema, "big_un_c")].type,
                 TM_T_NUMERIC);
    fmt_numeric_canon(d, canon, sizeof(canon));
    TM_CHECK_STR(canon, "18446744073709551615");
    TM_CHECK(col_str(run.rec[0], true, "id", "AQ==") == false);
    TM_CHECK_INT(col(run.rec[0], true, "id")->u.i64, 1);
    vec_release(&run);
    tm_dbz_decoder_free(dec);
}

/* ---- 3. re-encoding: structural compatibility ---- */

static json_t *payload_of(json_t *root)
{
    json_t *p = json_object_get(root, "payload");
    return p ? p : root;
}

static json_t *field_named(json_t *fields, const char *name)
{
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f)
    {
        const char *fn = json_string_value(json_object_get(f, "field"));
        if (fn != NULL && strcmp(fn, name) == 0)
            return f;
    }
    return NULL;
}

static bool same_str(json_t *a, json_t *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return json_equal(a, b);
}

/*
 * For each field of `theirs` (a struct schema), ours has it with the same
 * type and (with `names`) the same logical name.
 */
static void compare_struct_schema(json_t *theirs, json_t *ours, const char *where, bool names)
{
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(theirs, "fields"), i, f)
    {
        const char *name = json_string_value(json_object_get(f, "field"));
        json_t *o = field_named(json_object_get(ours, "fields"), name);
        if (o == NULL)
            fprintf(stderr, "%s: our schema lacks field %s\n", where, name);
        TM_CHECK(o != NULL);
        if (o == NULL)
            continue;
        bool ok = same_str(json_object_get(f, "type"), json_object_get(o, "type")) &&
                  (!names || same_str(json_object_get(f, "name"), json_object_get(o, "name")));
        if (!ok)
            fprintf(stderr, "%s.%s: type/name differ\n", where, name);
        TM_CHECK(ok);
    }
}

static void reencode_file(const vec_file_t *vf)
{
    bool pg = strcmp(vf->connector, "postgresql") == 0;
    tm_dbz_opts_t eo = {.schemas = true, .connector = vf->connector, .version = "2.7.0.Final"};
    tm_dbz_decoder_t *dec = tm_dbz_decoder_new(&dec_opts, NULL);
    tm_dbz_encoder_t *enc = tm_dbz_encoder_new(&eo);
    vec_run_t run;
    vec_decode(vf, dec, &run);
    for (int i = 0; i < run.n; i++) {
        json_error_t err;
        json_t *orig = json_loadb(run.text[i], run.len[i], 0, &err);
        TM_REQUIRE(orig != NULL);
        tm_buf_t out;
        tm_buf_init(&out);
        TM_REQUIRE(tm_dbz_encode_value(enc, run.rec[i], &out) == 0);
        json_t *ours = json_loadb(out.data, out.len, 0, &err);
        TM_REQUIRE(ours != NULL);
        json_t *op = payload_of(orig), *up = payload_of(ours);

        /* Every payload key the vector has; the rows and op are equal as JSON. */
        const char *key;
        json_t *v;
        json_object_foreach(op, key, v)
        {
            json_t *mine = json_object_get(up, key);
            if (mine == NULL)
                fprintf(stderr, "%s event %d: payload lacks %s\n", vf->path, i, key);
            TM_CHECK(mine != NULL);
            if (mine == NULL || strcmp(key, "source") == 0 || strcmp(key, "ts_us") == 0 ||
                strcmp(key, "ts_ns") == 0)
                continue;
            if (!json_equal(v, mine)) {
                char *a = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
                char *b = json_dumps(mine, JSON_COMPACT | JSON_ENCODE_ANY);
                fprintf(stderr, "%s event %d: %s differs: %s vs %s\n", vf->path, i, key, a, b);
                free(a);
                free(b);
            }
            TM_CHECK(json_equal(v, mine));
        }
        static const char *const required[] = {"before", "after", "source", "op", "ts_ms"};
        for (int k = 0; k < 5; k++)
            TM_CHECK(json_object_get(up, required[k]) != NULL);

        /* Every source field the vector has; for PostgreSQL the same values too. */
        json_t *os = json_object_get(op, "source"), *us = json_object_get(up, "source");
        json_object_foreach(os, key, v)
        {
            json_t *mine = json_object_get(us, key);
            if (mine == NULL)
                fprintf(stderr, "%s event %d: source lacks %s\n", vf->path, i, key);
            TM_CHECK(mine != NULL);
            if (pg && mine != NULL && strcmp(key, "version") != 0 && !json_equal(v, mine))
                fprintf(stderr, "%s event %d: source.%s differs\n", vf->path, i, key);
            if (pg && strcmp(key, "version") != 0)
                TM_CHECK(mine != NULL && json_equal(v, mine));
        }

        /* The schema part: same fields, and per column the same type and logical name. */
        json_t *osch = json_object_get(orig, "schema");
        if (osch != NULL && pg) {
            json_t *usch = json_object_get(ours, "schema");
            TM_CHECK(same_str(json_object_get(osch, "name"), json_object_get(usch, "name")));
            /*
             * Envelope fields by type only: Debezium 2.x named the transaction
             * block (event.block) where 1.x left it anonymous.
             */
            compare_struct_schema(osch, usch, "envelope", false);
            static const char *const parts[] = {"before", "after", "source"};
            for (int k = 0; k < 3; k++) {
                json_t *of = field_named(json_object_get(osch, "fields"), parts[k]);
                json_t *uf = field_named(json_object_get(usch, "fields"), parts[k]);
                TM_REQUIRE(of != NULL && uf != NULL);
                TM_CHECK(same_str(json_object_get(of, "name"), json_object_get(uf, "name")));
                compare_struct_schema(of, uf, parts[k], true);
            }
        }
        json_decref(orig);
        json_decref(ours);
        tm_buf_release(&out);
    }
    vec_release(&run);
    tm_dbz_encoder_free(enc);
    tm_dbz_decoder_free(dec);
}

static void test_reencode_postgres(void)
{
    for (int i = 0; i < 3; i++)
        reencode_file(&vec_files[i]);
}

static void test_reencode_mysql(void)
{
    reencode_file(&vec_files[3]);
    reencode_file(&vec_files[9]);
    reencode_file(&vec_files[6]);
}

int main(void)
{
    TM_RUN(test_every_file_known);
    TM_RUN(test_decode_all);
    TM_RUN(test_postgres_with_schema);
    TM_RUN(test_postgres_without_schema);
    TM_RUN(test_mysql_vectors);
    TM_RUN(test_flink_cdc_full_types);
    TM_RUN(test_reencode_postgres);
    TM_RUN(test_reencode_mysql);
    return tm_test_done();
}
