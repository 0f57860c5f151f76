/*
 * fuzz_pgoutput.c — libFuzzer target for the pgoutput decoder and the
 * PostgreSQL text-format value parsers.
 *
 * Role: the input is a sequence of frames `u16 length (big-endian) | bytes`.
 * Every frame is decoded as a pgoutput message by a protocol 1 and a
 * protocol 2 decoder (the latter keeps its Stream Start/Stop state across
 * frames, as on a real connection) and parsed as a replication CopyData
 * message.  Every text value of a decoded tuple is then parsed as each kind
 * of PostgreSQL type, including as an array of each kind, so the value
 * parsers see the odd text that a corrupt message carries.  Every binary
 * value (pgoutput's `binary 'true'`) is decoded by each binary decoder
 * (pg_binary.c) and, when a Relation message named the column's type, as
 * that type, so valid arrays and numerics reach the deep paths too.
 *
 * Invariants: no crash, no leak and no undefined behaviour on any input; a
 * decoder that accepts a message consumed it exactly (checked by decoding
 * every strict prefix, which must fail).
 *
 * How to run it (tests/fuzz/meson.build builds it with -Dfuzz=true):
 *
 *   CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
 *   ninja -C build-fuzz tests/fuzz/fuzz-pgoutput
 *   build-fuzz/tests/fuzz/fuzz-pgoutput -max_len=4096 tests/fuzz/pgoutput
 *
 * or by hand, without meson:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc -Iconnectors \
 *       -I/usr/include/postgresql tests/fuzz/fuzz_pgoutput.c connectors/postgres/pgoutput.c \
 *       connectors/postgres/pg_types.c connectors/postgres/pg_binary.c \
 *       src/core/[a-z]*.c -lm -lpq -o fuzz-pgoutput
 *
 * Every file in tests/fuzz/pgoutput/ (seeds cut from tests/data/pgoutput,
 * binary ones from binary.txt, and every crash ever found) is replayed as the
 * unit test `fuzz-corpus-pgoutput`.
 *
 * Thread: libFuzzer calls the target from one thread.
 */
#include "core/row.h"
#include "postgres/pg_binary.h"
#include "postgres/pg_types.h"
#include "postgres/pgoutput.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The column types of the last Relation message: binary values decode by type. */
#define MAX_RELCOLS 64
static tm_pg_coltype_t relct[MAX_RELCOLS];
static int nrelct;

static void learn_relation(const tm_pg_msg_t *msg)
{
    nrelct = 0;
    for (uint16_t i = 0; i < msg->u.relation.ncols && i < MAX_RELCOLS; i++) {
        tm_column_t col;
        memset(&col, 0, sizeof(col));
        const tm_pg_relcol_t *rc = &msg->u.relation.cols[i];
        if (tm_pg_column_describe(NULL, rc->type_oid, rc->typmod, &col, &relct[i]) != 0)
            memset(&relct[i], 0, sizeof(relct[i]));
        tm_schema_set_str(&col.db_type, NULL);
        tm_schema_set_str(&col.semantic, NULL);
        tm_schema_set_str(&col.enum_values, NULL);
        nrelct++;
    }
}

/* The text kind whose datum a binary format fills (the pairs tm_pg_column_describe makes). */
static uint8_t bin_kind(uint8_t bin)
{
    switch (bin) {
    case TM_PG_BIN_BOOL: return TM_PG_K_BOOL;
    case TM_PG_BIN_INT2:
    case TM_PG_BIN_INT4:
    case TM_PG_BIN_INT8:
    case TM_PG_BIN_OID: return TM_PG_K_INT;
    case TM_PG_BIN_FLOAT4:
    case TM_PG_BIN_FLOAT8: return TM_PG_K_FLOAT;
    case TM_PG_BIN_NUMERIC: return TM_PG_K_NUMERIC;
    case TM_PG_BIN_MONEY: return TM_PG_K_MONEY;
    case TM_PG_BIN_BYTEA: return TM_PG_K_BYTEA;
    case TM_PG_BIN_DATE: return TM_PG_K_DATE;
    case TM_PG_BIN_TIME: return TM_PG_K_TIME;
    case TM_PG_BIN_TIMETZ: return TM_PG_K_TIMETZ;
    case TM_PG_BIN_TIMESTAMP: return TM_PG_K_TIMESTAMPTZ;
    case TM_PG_BIN_INTERVAL: return TM_PG_K_INTERVAL;
    case TM_PG_BIN_UUID: return TM_PG_K_UUID;
    case TM_PG_BIN_JSONB: return TM_PG_K_JSON;
    default: return TM_PG_K_TEXT;
    }
}

static void parse_binary(tm_batch_t *batch, uint16_t i, const tm_pg_tuple_col_t *c)
{
    char err[256];
    tm_datum_t d;
    if (i < nrelct)
        tm_pg_binary_parse(batch, &relct[i], c->data, c->len, &d, err, sizeof(err));
    if (i >= 8)
        return;
    for (uint8_t bin = TM_PG_BIN_BOOL; bin < TM_PG_BIN_ARRAY; bin++) {
        tm_pg_coltype_t ct = {bin_kind(bin), 0, ',', bin, 0};
        tm_pg_binary_parse(batch, &ct, c->data, c->len, &d, err, sizeof(err));
        /* The same bytes as an array of this element type. */
        tm_pg_coltype_t at = {TM_PG_K_ARRAY, bin_kind(bin), ',', TM_PG_BIN_ARRAY, bin};
        tm_pg_binary_parse(batch, &at, c->data, c->len, &d, err, sizeof(err));
    }
}

static void parse_values(tm_batch_t *batch, const tm_pg_tuple_t *tup)
{
    char err[256];
    for (uint16_t i = 0; i < tup->ncols && i < MAX_RELCOLS; i++) {
        const tm_pg_tuple_col_t *c = &tup->cols[i];
        if (c->kind == TM_PG_COL_BINARY)
            parse_binary(batch, i, c);
        if (c->kind != TM_PG_COL_TEXT || i >= 8)
            continue;
        for (uint8_t kind = TM_PG_K_OTHER; kind <= TM_PG_K_ARRAY; kind++) {
            tm_pg_coltype_t ct = {kind, kind == TM_PG_K_ARRAY ? (uint8_t)(i % TM_PG_K_ARRAY) : 0,
                                  i == 3 ? ';' : ','};
            tm_datum_t d;
            tm_pg_value_parse(batch, &ct, (const char *)c->data, c->len, &d, err, sizeof(err));
        }
    }
}

static void check_prefixes(tm_pg_decoder_t *dec, const uint8_t *p, size_t n, bool in_stream)
{
    char err[256];
    tm_pg_msg_t msg;
    for (size_t k = 0; k < n; k++) {
        tm_pg_decoder_set_stream(dec, in_stream);
        if (tm_pg_decode(dec, p, k, &msg, err, sizeof(err)) == 0)
            abort(); /* a strict prefix of a valid message must never decode */
    }
    tm_pg_decoder_set_stream(dec, in_stream);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tm_pg_decoder_t *v1 = tm_pg_decoder_new(1), *v2 = tm_pg_decoder_new(2);
    tm_pg_decoder_t *chk = tm_pg_decoder_new(2);
    tm_batch_t *batch = tm_batch_new();
    char err[256];
    size_t off = 0;
    while (v1 && v2 && chk && batch && off + 2 <= size) {
        size_t n = ((size_t)data[off] << 8) | data[off + 1];
        off += 2;
        if (n > size - off)
            n = size - off;
        /* Copy so that ASan catches any read past the frame, not just past the input. */
        uint8_t *p = malloc(n ? n : 1);
        if (p == NULL)
            break;
        memcpy(p, data + off, n);
        off += n;

        tm_pg_msg_t msg;
        if (tm_pg_decode(v1, p, n, &msg, err, sizeof(err)) == 0) {
            if (msg.tag == TM_PG_MSG_RELATION)
                learn_relation(&msg);
            if (msg.tag == TM_PG_MSG_INSERT || msg.tag == TM_PG_MSG_UPDATE)
                parse_values(batch, &msg.u.change.newtup);
        }
        bool in_stream = tm_pg_decoder_in_stream(v2);
        if (tm_pg_decode(v2, p, n, &msg, err, sizeof(err)) == 0) {
            if (msg.tag == TM_PG_MSG_UPDATE || msg.tag == TM_PG_MSG_DELETE)
                if (msg.u.change.old_kind != 0)
                    parse_values(batch, &msg.u.change.oldtup);
            check_prefixes(chk, p, n, in_stream);
        }
        tm_pg_copydata_t cd;
        tm_pg_copydata_parse(p, n, &cd, err, sizeof(err));
        free(p);
        /* Keep the arena from growing without bound on long inputs. */
        if (batch->arena.used_total > (1u << 20)) {
            tm_batch_unref(batch);
            batch = tm_batch_new();
        }
    }
    tm_batch_unref(batch);
    tm_pg_decoder_free(v1);
    tm_pg_decoder_free(v2);
    tm_pg_decoder_free(chk);
    return 0;
}
