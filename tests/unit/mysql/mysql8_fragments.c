/*
 * mysql8_fragments.c — unit tests of MySQL 8 binlog fragments
 * (tests/data/mysql/mysql8_fragments.json, made by mysql8_fragments.py from
 * MySQL's own formats, each with the text MySQL prints for it): binary JSON
 * of every node type decoded to MySQL's text, and whole GTID events (MySQL's
 * uuid:seq with its logical clock, the anonymous one, MariaDB's
 * domain-server-seq) through the header parser, the CRC32 check and the GTID
 * decoder; every truncation of each is rejected without a crash.
 */
#include "tm_test.h"

#include "core/buf.h"
#include "core/error.h"
#include "mysql/binlog_gtid.h"
#include "mysql/binlog_rows.h"

#include <jansson.h>
#include <stdlib.h>

static json_t *doc;

static uint8_t *unhex(const char *hex, size_t *n)
{
    *n = strlen(hex) / 2;
    uint8_t *b = malloc(*n ? *n : 1);
    for (size_t k = 0; k < *n; k++) {
        unsigned v;
        sscanf(hex + 2 * k, "%2x", &v);
        b[k] = (uint8_t)v;
    }
    return b;
}

static void test_binary_json_every_node_type(void)
{
    json_t *cases = json_object_get(doc, "json");
    TM_REQUIRE(json_array_size(cases) >= 20);
    size_t i;
    json_t *c;
    /* Node types seen across the vectors: each must be covered. */
    bool seen[16] = {false};
    json_array_foreach(cases, i, c)
    {
        const char *name = json_string_value(json_object_get(c, "name"));
        size_t n;
        uint8_t *b = unhex(json_string_value(json_object_get(c, "hex")), &n);
        seen[b[0] & 15] = true;
        tm_buf_t out;
        tm_buf_init(&out);
        int rc = tm_my_json_to_text(b, n, &out);
        tm_buf_putc(&out, '\0');
        if (rc != 0 || strcmp(out.data, json_string_value(json_object_get(c, "text"))) != 0)
            fprintf(stderr, "case '%s': rc %d, text %s\n", name, rc, out.data);
        TM_CHECK(rc == 0);
        TM_CHECK_STR(out.data, json_string_value(json_object_get(c, "text")));
        /* Every truncation is an error or a shorter value, never a crash or a read past n. */
        for (size_t k = 1; k < n; k++) {
            uint8_t *t = malloc(k);
            memcpy(t, b, k);
            tm_buf_t o2;
            tm_buf_init(&o2);
            (void)tm_my_json_to_text(t, k, &o2);
            tm_buf_release(&o2);
            free(t);
        }
        tm_buf_release(&out);
        free(b);
    }
    for (int t = 0; t <= 0x0c; t++)
        TM_CHECK(seen[t]);
    TM_CHECK(seen[0x0f]);
}

static void test_gtid_events(void)
{
    json_t *cases = json_object_get(doc, "gtid");
    TM_REQUIRE(json_array_size(cases) >= 5);
    size_t i;
    json_t *c;
    char err[256];
    json_array_foreach(cases, i, c)
    {
        size_t n;
        uint8_t *b = unhex(json_string_value(json_object_get(c, "hex")), &n);
        tm_my_event_header_t h;
        TM_REQUIRE(tm_my_event_header_parse(b, n, &h, err, sizeof(err)) == 0);
        TM_CHECK(h.type == json_integer_value(json_object_get(c, "type")));
        TM_CHECK(tm_my_event_checksum_verify(b, n, err, sizeof(err)) == 0);
        const uint8_t *body = b + TM_MY_HEADER_LEN;
        size_t blen = n - TM_MY_HEADER_LEN - TM_MY_CHECKSUM_LEN;
        tm_my_gtid_t g;
        TM_CHECK(tm_my_gtid_parse(h.type, body, blen, h.server_id, &g, err, sizeof(err)) == 0);
        TM_CHECK_STR(g.text, json_string_value(json_object_get(c, "text")));
        TM_CHECK(g.standalone == json_is_true(json_object_get(c, "standalone")));
        TM_CHECK(g.last_committed ==
                 (uint64_t)json_integer_value(json_object_get(c, "last_committed")));
        TM_CHECK(g.sequence_number ==
                 (uint64_t)json_integer_value(json_object_get(c, "sequence_number")));
        TM_CHECK(g.mysql == (h.type != TM_MY_EV_GTID));
        /* Shorter than the fixed part: corrupt, with a message. */
        size_t fixed = h.type == TM_MY_EV_GTID ? 13 : 25;
        for (size_t k = 0; k < fixed; k++) {
            err[0] = '\0';
            TM_CHECK(tm_my_gtid_parse(h.type, body, k, h.server_id, &g, err, sizeof(err)) ==
                     TM_ECORRUPT);
            TM_CHECK(strstr(err, "shorter") != NULL);
        }
        /* A flipped bit is caught by the checksum. */
        b[TM_MY_HEADER_LEN + 3] ^= 0x04;
        TM_CHECK(tm_my_event_checksum_verify(b, n, err, sizeof(err)) == TM_ECORRUPT);
        free(b);
    }
    /* Not a GTID event at all; a MySQL GTID with GNO 0 (only the anonymous one has none). */
    uint8_t zeros[64] = {0};
    tm_my_gtid_t g;
    TM_CHECK(tm_my_gtid_parse(TM_MY_EV_XID, zeros, sizeof(zeros), 1, &g, err, sizeof(err)) ==
             TM_EINVAL);
    TM_CHECK(tm_my_gtid_parse(TM_MY_EV_MYSQL_GTID, zeros, sizeof(zeros), 1, &g, err,
                              sizeof(err)) == TM_ECORRUPT);
    TM_CHECK(tm_my_gtid_parse(TM_MY_EV_MYSQL_ANONYMOUS_GTID, zeros, sizeof(zeros), 1, &g, err,
                              sizeof(err)) == 0 &&
             g.text[0] == '\0');
}

int main(void)
{
    char path[512];
    json_error_t jerr;
    doc = json_load_file(tm_test_data("mysql/mysql8_fragments.json", path, sizeof(path)), 0,
                         &jerr);
    TM_REQUIRE(doc != NULL);
    TM_RUN(test_binary_json_every_node_type);
    TM_RUN(test_gtid_events);
    json_decref(doc);
    return tm_test_done();
}
