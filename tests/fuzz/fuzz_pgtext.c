/*
 * fuzz_pgtext.c — libFuzzer target for PostgreSQL text-format values, from
 * the text pgoutput carries to the Debezium JSON written for them.
 *
 * Role: the first input byte picks a built-in type (or the array of one) and
 * the second a type modifier (none, small, large, numeric(p,s) forms); the
 * rest is the value's text.  It is parsed as a column of that type
 * (tm_pg_column_describe + tm_pg_value_parse, connectors/postgres/pg_types.c)
 * and, when it parses, encoded as a row by the fast and the reference
 * Debezium encoders in both precise/adaptive and string/connect modes.
 * fuzz_pgoutput feeds the same parsers through corrupt messages without
 * column types; this target reaches the typmod and encoder paths.
 *
 * Binary values (pgoutput's `binary 'true'`, connectors/postgres/pg_binary.c)
 * are fuzzed by fuzz_pgoutput, which decodes them by the types of the
 * Relation message before them.
 *
 * Invariants: no crash, leak or undefined behaviour on any input; a value
 * that parses is encoded, and the fast encoder's output is valid JSON (valid
 * UTF-8 included, whatever bytes the text held: issue 9 item 14).
 *
 * Run (tests/fuzz/meson.build): build-fuzz/tests/fuzz/fuzz-pgtext tests/fuzz/pgtext
 *
 * Thread: libFuzzer calls the target from one thread.
 */
#include "core/buf.h"
#include "core/row.h"
#include "core/schema.h"
#include "format/debezium.h"
#include "postgres/pg_types.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Built-in scalar oids (pg_types.c's table); their array oids follow from describe. */
static const uint32_t oids[] = {
    16,   17,   18,   19,   20,   21,   23,   24,   25,   26,   27,   28,   29,   114,  142,
    600,  601,  602,  603,  604,  628,  650,  700,  701,  718,  774,  790,  829,  869,  1033,
    1042, 1043, 1082, 1083, 1114, 1184, 1186, 1266, 1560, 1562, 1700, 1790, 2202, 2950, 2970,
    3220, 3614, 3615, 3734, 3769, 3802, 3904, 3906, 3908, 3910, 3912, 3926, 4072, 4089, 4096,
    4191, 4451, 4532, 5038, 5069,
    /* Arrays of the interesting ones. */
    1000, 1001, 1005, 1007, 1009, 1016, 1020, 1021, 1022, 1115, 1182, 1183, 1185, 1187, 1231,
    1270, 2951, 3807, 199,
};
#define NOIDS ((int)(sizeof(oids) / sizeof(oids[0])))

/* -1 (none), time/timestamp precisions, numeric(p,s) as (p << 16 | s) + 4, a varchar length. */
static const int32_t typmods[] = {-1, 0, 3, 6, (10 << 16 | 2) + 4, (38 << 16 | 0) + 4,
                                  (5 << 16 | 5) + 4, (1000 << 16 | 999) + 4, 4 + 20};
#define NTYPMODS ((int)(sizeof(typmods) / sizeof(typmods[0])))

typedef struct fuzz_state {
    tm_schema_t *schema[NOIDS][NTYPMODS];
    tm_pg_coltype_t ct[NOIDS][NTYPMODS];
    tm_dbz_encoder_t *enc[2];
    tm_buf_t out;
} fuzz_state_t;

static fuzz_state_t *fuzz_init(void)
{
    static fuzz_state_t st;
    static bool ready;
    if (ready)
        return &st;
    for (int i = 0; i < NOIDS; i++)
        for (int k = 0; k < NTYPMODS; k++) {
            tm_schema_t *s = tm_schema_new(1);
            if (s == NULL)
                abort();
            tm_schema_set_str(&s->source_name, "fuzz");
            tm_schema_set_str(&s->db, "db");
            tm_schema_set_str(&s->namespace, "public");
            tm_schema_set_str(&s->table, "t");
            tm_schema_set_str(&s->cols[0].name, "v");
            s->cols[0].nullable = true;
            if (tm_pg_column_describe(NULL, oids[i], typmods[k], &s->cols[0], &st.ct[i][k]) != 0 ||
                tm_schema_finish(s) != 0)
                abort();
            st.schema[i][k] = s;
        }
    tm_dbz_opts_t precise = {.schemas = true, .connector = "postgresql", .version = "fuzz"};
    tm_dbz_opts_t text = precise;
    text.schemas = false;
    text.decimal_mode = TM_DECIMAL_STRING;
    text.time_mode = TM_TIME_CONNECT;
    st.enc[0] = tm_dbz_encoder_new(&precise);
    st.enc[1] = tm_dbz_encoder_new(&text);
    if (st.enc[0] == NULL || st.enc[1] == NULL)
        abort();
    tm_buf_init(&st.out);
    ready = true;
    return &st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    fuzz_state_t *st = fuzz_init();
    int i = data[0] % NOIDS, k = data[1] % NTYPMODS;
    const char *text = (const char *)data + 2;
    size_t len = size - 2;
    tm_schema_t *s = st->schema[i][k];
    tm_batch_t *batch = tm_batch_new();
    if (batch == NULL)
        abort();
    tm_record_t *rec = tm_batch_add(batch, s, TM_OP_CREATE);
    rec->after = tm_batch_new_row(batch, s);
    char err[256];
    if (rec->after != NULL &&
        tm_pg_value_parse(batch, &st->ct[i][k], text, len, &rec->after->vals[0], err,
                          sizeof(err)) == 0) {
        tm_row_set_null(rec->after, 0, false);
        for (int e = 0; e < 2; e++) {
            tm_buf_clear(&st->out);
            if (tm_dbz_encode_value(st->enc[e], rec, &st->out) == 0) {
                json_error_t jerr;
                json_t *j = json_loadb(st->out.data, st->out.len, JSON_ALLOW_NUL, &jerr);
                /*
                 * A number past int64 or double (a numeric array element) is
                 * valid JSON that Jansson cannot hold: not a failure.
                 */
                if (j == NULL && (strstr(jerr.text, "too big") != NULL ||
                                  strstr(jerr.text, "overflow") != NULL))
                    j = json_null();
                if (j == NULL) {
                    /* The encoder wrote something that is not JSON. */
                    fprintf(stderr, "not JSON (%s): %s\n", jerr.text, st->out.data);
                    abort();
                }
                json_decref(j);
            }
            json_decref(tm_dbz_encode_value_json(st->enc[e], rec));
            tm_buf_clear(&st->out);
            (void)tm_dbz_encode_key(st->enc[e], rec, &st->out);
        }
    }
    tm_batch_unref(batch);
    return 0;
}
