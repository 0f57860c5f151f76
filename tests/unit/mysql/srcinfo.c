/*
 * srcinfo.c — unit tests of the source block of mysql-cdc snapshot rows
 * (tm_my_snapshot_source): the fields Debezium's MySQL connector writes for
 * a snapshot read (tests/data/debezium/risingwave's first event: server_id
 * 0, the snapshot's binlog file and position, row 0, no GTID or thread),
 * the MariaDB shape, and the ordering token.
 */
#include "tm_test.h"

#include "core/error.h"
#include "format/debezium.h"
#include "mysql/mysql_int.h"

#include <string.h>

static void test_snapshot_block(void)
{
    tm_source_t src;
    memset(&src, 0, sizeof(src));
    tm_my_pos_t pos = {.offset = 157};
    snprintf(pos.file, sizeof(pos.file), "mysql-bin.000003");
    tm_source_info_t info;
    TM_REQUIRE(tm_my_snapshot_source(&src, &pos, INT64_C(1661327688868000), TM_SNAPSHOT_TRUE,
                                     &info) == 0);
    TM_CHECK_INT(info.kind, TM_SOURCE_MYSQL);
    TM_CHECK(info.pos == tm_my_pos_token(&pos) && info.pos == ((UINT64_C(3) << 32) | 157));
    TM_CHECK_STR(info.u.my.file, "mysql-bin.000003");
    TM_CHECK(info.u.my.file == tm_intern("mysql-bin.000003", 16));

    tm_schema_t *s = tm_schema_new(1);
    tm_schema_set_str(&s->source_name, "dbserver1");
    tm_schema_set_str(&s->db, "inventory");
    tm_schema_set_str(&s->namespace, "inventory");
    tm_schema_set_str(&s->table, "customers");
    tm_schema_set_str(&s->cols[0].name, "id");
    s->cols[0].type = TM_T_INT32;
    s->cols[0].key_index = 0;
    tm_schema_finish(s);
    tm_batch_t *b = tm_batch_new();
    tm_record_t *r = tm_batch_add(b, s, TM_OP_READ);
    r->after = tm_batch_new_row(b, s);
    tm_row_set_null(r->after, 0, false);
    r->after->vals[0].u.i64 = 1001;
    r->src = info;
    tm_dbz_opts_t o = {.connector = "postgresql", .version = "1.9.5.Final"};
    tm_dbz_encoder_t *enc = tm_dbz_encoder_new(&o);
    tm_buf_t out;
    tm_buf_init(&out);
    TM_REQUIRE(tm_dbz_encode_value(enc, r, &out) == 0);
    /* The vector's block, with Debezium 3's ts_us and ts_ns after sequence. */
    TM_CHECK(strstr(out.data,
                    "\"source\":{\"version\":\"1.9.5.Final\",\"connector\":\"mysql\","
                    "\"name\":\"dbserver1\",\"ts_ms\":1661327688868,\"snapshot\":\"true\","
                    "\"db\":\"inventory\",\"sequence\":null,\"ts_us\":1661327688868000,"
                    "\"ts_ns\":1661327688868000000,\"table\":\"customers\",\"server_id\":0,"
                    "\"gtid\":null,\"file\":\"mysql-bin.000003\",\"pos\":157,\"row\":0,"
                    "\"thread\":null,\"query\":null}") != NULL);

    /* A MariaDB server: the MariaDB connector's name. */
    src.is_mariadb = true;
    TM_REQUIRE(tm_my_snapshot_source(&src, &pos, 0, TM_SNAPSHOT_LAST, &r->src) == 0);
    out.len = 0;
    TM_REQUIRE(tm_dbz_encode_value(enc, r, &out) == 0);
    TM_CHECK(strstr(out.data, "\"connector\":\"mariadb\"") != NULL);
    TM_CHECK(strstr(out.data, "\"snapshot\":\"last\"") != NULL);

    tm_buf_release(&out);
    tm_dbz_encoder_free(enc);
    tm_batch_unref(b);
    tm_schema_unref(s);
}

int main(void)
{
    TM_RUN(test_snapshot_block);
    return tm_test_done();
}
