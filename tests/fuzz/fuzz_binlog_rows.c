/*
 * fuzz_binlog_rows.c — libFuzzer target for the mysql-cdc row decoder.
 *
 * Role: an input is a TABLE_MAP event body and a rows event body:
 *
 *     byte 0        rows event type, mapped onto the six row event types
 *     bytes 1-2     TABLE_MAP body length n (little-endian)
 *     n bytes       TABLE_MAP body (as after the 19-byte header, no checksum)
 *     the rest      rows event body
 *
 * The table map is parsed and turned into a schema with both BIGINT
 * UNSIGNED modes; every row of the rows event is decoded against it; the
 * whole input also goes through the header parser, the CRC32 check, the
 * MySQL 8 binary JSON decoder and the GTID decoder (MariaDB's and MySQL's).
 *
 * Invariants: no crash, no leak, no undefined behaviour on any input.
 *
 * How to run it (tests/fuzz/meson.build builds it with -Dfuzz=true):
 *
 *   CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
 *   ninja -C build-fuzz tests/fuzz/fuzz-binlog_rows
 *   build-fuzz/tests/fuzz/fuzz-binlog_rows tests/fuzz/binlog_rows
 *
 * The seeds in tests/fuzz/binlog_rows/ are the captured MariaDB events of
 * tests/data/mysql/types.json (every column type; insert, update, delete),
 * framed as above (seed-N-T: the TABLE_MAP and the rows event of type T after
 * it; event-table-map: one whole event), plus MySQL 8 fragments of
 * tests/data/mysql/mysql8_fragments.json (json-*: binary JSON values, gtid-*:
 * whole GTID events); every file there is replayed as the
 * unit test `fuzz-corpus-binlog_rows` in every build.
 *
 * Thread: libFuzzer calls the target from one thread.
 */
#include "core/buf.h"
#include "core/row.h"
#include "core/schema.h"
#include "mysql/binlog_gtid.h"
#include "mysql/binlog_rows.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t row_types[6] = {
    TM_MY_EV_WRITE_ROWS_V1, TM_MY_EV_UPDATE_ROWS_V1, TM_MY_EV_DELETE_ROWS_V1,
    TM_MY_EV_WRITE_ROWS_V2, TM_MY_EV_UPDATE_ROWS_V2, TM_MY_EV_DELETE_ROWS_V2,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    tm_my_event_header_t h;
    (void)tm_my_event_header_parse(data, size, &h, err, sizeof(err));
    (void)tm_my_event_checksum_verify(data, size, err, sizeof(err));
    /* The whole input as MySQL 8 binary JSON too. */
    tm_buf_t json;
    tm_buf_init(&json);
    (void)tm_my_json_to_text(data, size, &json);
    tm_buf_release(&json);
    /* The whole input as a GTID event body of each server's form, and past a header. */
    tm_my_gtid_t g;
    (void)tm_my_gtid_parse(TM_MY_EV_GTID, data, size, 1, &g, err, sizeof(err));
    (void)tm_my_gtid_parse(TM_MY_EV_MYSQL_GTID, data, size, 1, &g, err, sizeof(err));
    (void)tm_my_gtid_parse(TM_MY_EV_MYSQL_ANONYMOUS_GTID, data, size, 1, &g, err, sizeof(err));
    if (size > TM_MY_HEADER_LEN)
        (void)tm_my_gtid_parse(data[4], data + TM_MY_HEADER_LEN, size - TM_MY_HEADER_LEN, 1, &g,
                               err, sizeof(err));
    if (size < 3)
        return 0;
    uint8_t type = row_types[data[0] % 6];
    size_t n = (size_t)(data[1] | data[2] << 8);
    if (n > size - 3)
        return 0;
    const uint8_t *tmb = data + 3, *rb = data + 3 + n;
    size_t rlen = size - 3 - n;
    tm_my_tablemap_t *tm = NULL;
    if (tm_my_tablemap_parse(tmb, n, &tm, err, sizeof(err)) != 0)
        return 0;
    for (int mode = 0; mode < 2; mode++) {
        tm_my_mapping_t map = {mode == 1};
        tm_schema_t *s = NULL;
        if (tm_my_schema_from_tablemap(tm, "fuzz", &map, &s, err, sizeof(err)) != 0)
            continue;
        tm_my_rows_t r;
        if (tm_my_rows_parse(type, rb, rlen, &r, err, sizeof(err)) == 0) {
            tm_batch_t *b = tm_batch_new();
            tm_row_t *before, *after;
            int guard = 0;
            while (b != NULL && guard++ < 4096 &&
                   tm_my_rows_next(&r, tm, s, b, &before, &after, err, sizeof(err)) == 1) {
            }
            tm_batch_unref(b);
        }
        tm_schema_unref(s);
    }
    tm_my_tablemap_free(tm);
    return 0;
}
