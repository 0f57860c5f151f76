/*
 * fuzz_debezium.c — libFuzzer target for the Debezium JSON decoder.
 *
 * Role: every input goes through three decoders — one with no declared
 * schema (types from the schema part or inferred), one with a declared schema
 * that has a column of every type, and the same declared schema in the
 * string/connect modes (whose encoder writes without the schema part).  Each record that decodes is then re-encoded by the
 * fast and the reference encoder, so the encoders also see decoded data of
 * every odd shape, and for the declared decoder the re-encoded event must
 * decode again: decode(encode(decode(x))) never fails once decode(x) worked.
 *
 * Invariants: no crash, no leak, no undefined behaviour on any input; the
 * property above holds (abort() otherwise, which libFuzzer reports).
 *
 * How to run it (tests/fuzz/meson.build builds it with -Dfuzz=true):
 *
 *   CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
 *   ninja -C build-fuzz tests/fuzz/fuzz-debezium
 *   build-fuzz/tests/fuzz/fuzz-debezium -max_len=16384 -dict=... tests/fuzz/debezium
 *
 * or by hand, without meson:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc \
 *       tests/fuzz/fuzz_debezium.c src/format/debezium_{enc,dec}.c \
 *       src/core/{arena,buf,error,intern,row,schema}.c \
 *       -ljansson -lm -o fuzz-debezium
 *
 * Every file in tests/fuzz/debezium/ (seeds and every crash ever found) is
 * replayed as the unit test `fuzz-corpus-debezium` in every build.
 *
 * Thread: libFuzzer calls the target from one thread.
 */
#include "core/buf.h"
#include "core/row.h"
#include "core/schema.h"
#include "format/debezium.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct {
    const char *name;
    tm_type_t type;
    int32_t precision, scale;
} fuzz_cols[] = {
    {"id", TM_T_INT64, -1, 0},        {"b", TM_T_BOOL, -1, 0},
    {"i16", TM_T_INT16, -1, 0},       {"i32", TM_T_INT32, -1, 0},
    {"f32", TM_T_FLOAT32, -1, 0},     {"f64", TM_T_FLOAT64, -1, 0},
    {"n", TM_T_NUMERIC, 10, 2},       {"nv", TM_T_NUMERIC, -1, TM_SCALE_VARIABLE},
    {"t", TM_T_TEXT, -1, 0},          {"by", TM_T_BYTES, -1, 0},
    {"j", TM_T_JSON, -1, 0},          {"u", TM_T_UUID, -1, 0},
    {"d", TM_T_DATE, -1, 0},          {"tm", TM_T_TIME, 3, 0},
    {"tm6", TM_T_TIME, -1, 0},        {"ttz", TM_T_TIMETZ, -1, 0},
    {"ts", TM_T_TIMESTAMP, 3, 0},     {"ts6", TM_T_TIMESTAMP, 6, 0},
    {"tstz", TM_T_TIMESTAMPTZ, -1, 0}, {"iv", TM_T_INTERVAL, -1, 0},
    {"a", TM_T_ARRAY, -1, 0},         {"at", TM_T_ARRAY, -1, 0},
    {"e", TM_T_ENUM, -1, 0},          {"o", TM_T_OTHER, -1, 0},
};

#define NCOLS ((int)(sizeof(fuzz_cols) / sizeof(fuzz_cols[0])))

static tm_schema_t *fuzz_schema(void)
{
    tm_schema_t *s = tm_schema_new(NCOLS);
    if (s == NULL)
        abort();
    tm_schema_set_str(&s->source_name, "fuzz");
    tm_schema_set_str(&s->db, "db");
    tm_schema_set_str(&s->namespace, "public");
    tm_schema_set_str(&s->table, "t");
    for (int i = 0; i < NCOLS; i++) {
        tm_column_t *c = &s->cols[i];
        tm_schema_set_str(&c->name, fuzz_cols[i].name);
        c->type = fuzz_cols[i].type;
        c->precision = fuzz_cols[i].precision;
        c->scale = fuzz_cols[i].scale;
        c->nullable = i != 0;
    }
    s->cols[0].key_index = 0;
    s->cols[20].elem_type = TM_T_INT32;
    s->cols[21].elem_type = TM_T_TEXT;
    tm_schema_set_str(&s->cols[22].enum_values, "a,b,c");
    if (tm_schema_finish(s) != 0)
        abort();
    return s;
}

typedef struct fuzz_state {
    tm_dbz_decoder_t *dec[3];
    tm_dbz_encoder_t *enc[3];
    tm_buf_t out;
} fuzz_state_t;

static fuzz_state_t *fuzz_init(void)
{
    static fuzz_state_t st;
    static bool ready;
    if (ready)
        return &st;
    tm_schema_t *s = fuzz_schema();
    tm_dbz_opts_t precise = {.schemas = true, .connector = "postgresql", .version = "fuzz"};
    tm_dbz_opts_t text = precise;
    text.schemas = false;
    text.decimal_mode = TM_DECIMAL_STRING;
    text.time_mode = TM_TIME_CONNECT;
    st.dec[0] = tm_dbz_decoder_new(&precise, NULL);
    st.dec[1] = tm_dbz_decoder_new(&precise, s);
    st.dec[2] = tm_dbz_decoder_new(&text, s);
    st.enc[0] = tm_dbz_encoder_new(&precise);
    st.enc[1] = tm_dbz_encoder_new(&precise);
    st.enc[2] = tm_dbz_encoder_new(&text);
    tm_schema_unref(s);
    tm_buf_init(&st.out);
    for (int i = 0; i < 3; i++)
        if (st.dec[i] == NULL || st.enc[i] == NULL)
            abort();
    ready = true;
    return &st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_state_t *st = fuzz_init();
    char err[256];
    for (int k = 0; k < 3; k++) {
        tm_batch_t *batch = tm_batch_new();
        tm_record_t *rec = NULL;
        if (batch == NULL)
            abort();
        int rc = tm_dbz_decode(st->dec[k], (const char *)data, size, batch, &rec, err,
                               sizeof(err));
        if (rc == 0) {
            tm_buf_clear(&st->out);
            int erc = tm_dbz_encode_value(st->enc[k], rec, &st->out);
            json_decref(tm_dbz_encode_value_json(st->enc[k], rec));
            json_decref(tm_dbz_encode_key_json(st->enc[k], rec));
            if (erc == 0 && k > 0) {
                /* The declared decoders must read back what the encoder wrote. */
                tm_record_t *again = NULL;
                rc = tm_dbz_decode(st->dec[k], st->out.data, st->out.len, batch, &again, err,
                                   sizeof(err));
                if (rc != 0)
                    abort();
            }
            tm_buf_clear(&st->out);
            (void)tm_dbz_encode_key(st->enc[k], rec, &st->out);
        }
        tm_batch_unref(batch);
    }
    return 0;
}
