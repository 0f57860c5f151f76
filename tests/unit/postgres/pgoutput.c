/*
 * pgoutput.c — unit tests of the pgoutput decoder against real captured
 * messages (tests/data/pgoutput, written by capture.sh from a PostgreSQL 15
 * server): every message decodes, the fields are what the workload wrote,
 * and every truncation of every message is an error, not a crash.
 */
#include "pg_capture.h"
#include "tm_test.h"

#include "core/error.h"
#include "postgres/pgoutput.h"

static capture_t v1, v2;

static bool col_is(const tm_pg_tuple_col_t *c, const char *text)
{
    return c->kind == TM_PG_COL_TEXT && c->len == strlen(text) &&
           memcmp(c->data, text, c->len) == 0;
}

/* Decodes the whole capture in order; returns the number of failures. */
static int decode_all(const capture_t *cap, int proto, int counts[256])
{
    tm_pg_decoder_t *dec = tm_pg_decoder_new(proto);
    char err[256];
    int failures = 0;
    for (size_t i = 0; i < cap->n; i++) {
        tm_pg_msg_t msg;
        int rc = tm_pg_decode(dec, cap->v[i].data, cap->v[i].len, &msg, err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "message %zu: %s\n", i, err);
            failures++;
            continue;
        }
        counts[(uint8_t)msg.tag]++;
    }
    tm_pg_decoder_free(dec);
    return failures;
}

static void test_decode_every_message(void)
{
    int c1[256] = {0}, c2[256] = {0};
    TM_REQUIRE(v1.n > 0 && v2.n > 0);
    TM_CHECK_INT(decode_all(&v1, 1, c1), 0);
    TM_CHECK_INT(decode_all(&v2, 2, c2), 0);
    /* The workload of capture.sh, message by message. */
    TM_CHECK_INT(c1['R'], 8);
    TM_CHECK_INT(c1['Y'], 1);
    TM_CHECK_INT(c1['U'], 4);
    TM_CHECK_INT(c1['D'], 2);
    TM_CHECK_INT(c1['T'], 1);
    TM_CHECK_INT(c1['M'], 2);
    TM_CHECK_INT(c1['B'], c1['C']);
    TM_CHECK_INT(c1['I'], 9 + 400 + 1); /* 9 small + the committed big transaction */
    TM_CHECK_INT(c2['S'], 4);
    TM_CHECK_INT(c2['E'], 4);
    TM_CHECK_INT(c2['c'], 1);
    TM_CHECK_INT(c2['A'], 2);
    /*
     * Streamed changes are sent before the outcome is known, so protocol 2
     * carries more Inserts: those of the rolled-back savepoint and of the
     * aborted transaction that were streamed before the rollback.
     */
    TM_CHECK(c2['I'] > c1['I'] + 100);
    TM_CHECK_INT(c2['B'], c2['C']);
    /* A v1 decoder must refuse streaming messages. */
    tm_pg_decoder_t *dec = tm_pg_decoder_new(1);
    char err[256];
    tm_pg_msg_t msg;
    const uint8_t stop[] = {'E'};
    TM_CHECK_INT(tm_pg_decode(dec, stop, 1, &msg, err, sizeof(err)), TM_EPROTO);
    tm_pg_decoder_free(dec);
    TM_CHECK(tm_pg_decoder_new(3) == NULL);
}

static void test_fields_v1(void)
{
    tm_pg_decoder_t *dec = tm_pg_decoder_new(1);
    char err[256];
    tm_pg_msg_t msg;
    uint64_t begin_final = 0;
    int relations = 0, updates = 0, deletes = 0, inserts = 0;
    uint32_t t_full_relid = 0, t_nokey_relid = 0;
    for (size_t i = 0; i < v1.n; i++) {
        TM_REQUIRE(tm_pg_decode(dec, v1.v[i].data, v1.v[i].len, &msg, err, sizeof(err)) == 0);
        TM_CHECK(!msg.has_xid);
        switch (msg.tag) {
        case 'B':
            begin_final = msg.u.begin.final_lsn;
            TM_CHECK(msg.xid == v1.v[i].xid);
            TM_CHECK(msg.u.begin.commit_ts > 0);
            break;
        case 'C':
            TM_CHECK(msg.u.commit.commit_lsn == begin_final);
            TM_CHECK(msg.u.commit.end_lsn > msg.u.commit.commit_lsn);
            TM_CHECK_INT(msg.u.commit.flags, 0);
            break;
        case 'Y':
            TM_CHECK_STR(msg.u.type.nspname, "public");
            TM_CHECK_STR(msg.u.type.typname, "mood");
            break;
        case 'R':
            relations++;
            TM_CHECK_STR(msg.u.relation.nspname, "public");
            if (strcmp(msg.u.relation.relname, "t_default") == 0) {
                TM_CHECK(msg.u.relation.replident == 'd');
                TM_REQUIRE(msg.u.relation.ncols == 5);
                TM_CHECK_STR(msg.u.relation.cols[0].name, "id");
                TM_CHECK_INT(msg.u.relation.cols[0].flags, TM_PG_RELCOL_KEY);
                TM_CHECK_INT(msg.u.relation.cols[0].type_oid, 23);
                TM_CHECK_INT(msg.u.relation.cols[0].typmod, -1);
                TM_CHECK_INT(msg.u.relation.cols[1].flags, 0);
                TM_CHECK_INT(msg.u.relation.cols[2].type_oid, 1700);
                TM_CHECK_INT(msg.u.relation.cols[2].typmod, ((10 << 16) | 2) + 4);
                TM_CHECK_STR(msg.u.relation.cols[4].name, "m");
                TM_CHECK(msg.u.relation.cols[4].type_oid >= 16384); /* the enum */
            } else if (strcmp(msg.u.relation.relname, "t_full") == 0) {
                TM_CHECK(msg.u.relation.replident == 'f');
                /* FULL marks every column as part of the identity. */
                for (int c = 0; c < msg.u.relation.ncols; c++)
                    TM_CHECK_INT(msg.u.relation.cols[c].flags, TM_PG_RELCOL_KEY);
                if (t_full_relid != 0) {
                    /* The second Relation message comes after ADD COLUMN. */
                    TM_CHECK(msg.u.relation.relid == t_full_relid);
                }
                t_full_relid = msg.u.relation.relid;
            } else if (strcmp(msg.u.relation.relname, "t_types") == 0) {
                TM_CHECK_INT(msg.u.relation.ncols, 21);
                TM_CHECK_INT(msg.u.relation.cols[20].type_oid, 1043);
                TM_CHECK_INT(msg.u.relation.cols[20].typmod, 5 + 4);
            } else if (strcmp(msg.u.relation.relname, "t_nokey") == 0) {
                TM_CHECK(msg.u.relation.replident == 'd');
                TM_CHECK_INT(msg.u.relation.cols[0].flags, 0);
                t_nokey_relid = msg.u.relation.relid;
            }
            break;
        case 'I':
            if (inserts++ == 0) {
                TM_REQUIRE(msg.u.change.newtup.ncols == 5);
                TM_CHECK(col_is(&msg.u.change.newtup.cols[0], "1"));
                TM_CHECK(col_is(&msg.u.change.newtup.cols[1], "apple"));
                TM_CHECK(col_is(&msg.u.change.newtup.cols[2], "1.50"));
                TM_CHECK(msg.u.change.newtup.cols[3].kind == TM_PG_COL_NULL);
                TM_CHECK(col_is(&msg.u.change.newtup.cols[4], "ok"));
            }
            break;
        case 'U':
            updates++;
            if (updates == 1) {
                /* DEFAULT identity, key unchanged: no old tuple. */
                TM_CHECK(msg.u.change.old_kind == 0);
                TM_CHECK(col_is(&msg.u.change.newtup.cols[2], "2.25"));
            } else if (updates == 2) {
                /* The key changed: the old key travels as a 'K' tuple. */
                TM_CHECK(msg.u.change.old_kind == 'K');
                TM_REQUIRE(msg.u.change.oldtup.ncols == 5);
                TM_CHECK(col_is(&msg.u.change.oldtup.cols[0], "2"));
                TM_CHECK(msg.u.change.oldtup.cols[1].kind == TM_PG_COL_NULL);
                TM_CHECK(col_is(&msg.u.change.newtup.cols[0], "3"));
            } else if (updates == 3) {
                /* FULL identity: the whole old row. */
                TM_CHECK(msg.u.change.old_kind == 'O');
                TM_CHECK(col_is(&msg.u.change.oldtup.cols[1], "one"));
                TM_CHECK(col_is(&msg.u.change.newtup.cols[1], "uno"));
            } else if (updates == 4) {
                /* The TOASTed column did not change and is not sent. */
                TM_CHECK(msg.u.change.old_kind == 0);
                TM_CHECK(col_is(&msg.u.change.newtup.cols[1], "toast2"));
                TM_CHECK(msg.u.change.newtup.cols[3].kind == TM_PG_COL_UNCHANGED);
            }
            break;
        case 'D':
            deletes++;
            TM_CHECK(msg.u.change.old_kind == (deletes == 1 ? 'K' : 'O'));
            if (deletes == 1) {
                TM_CHECK(col_is(&msg.u.change.oldtup.cols[0], "3"));
                TM_CHECK(msg.u.change.oldtup.cols[2].kind == TM_PG_COL_NULL);
            } else {
                TM_CHECK(col_is(&msg.u.change.oldtup.cols[1], "two"));
            }
            break;
        case 'T':
            TM_CHECK_INT(msg.u.truncate.nrels, 2);
            TM_CHECK_INT(msg.u.truncate.options, 0);
            TM_CHECK(msg.u.truncate.relids[0] == t_full_relid);
            TM_CHECK(msg.u.truncate.relids[1] == t_nokey_relid);
            break;
        case 'M':
            if (msg.u.message.flags & TM_PG_MESSAGE_TRANSACTIONAL) {
                TM_CHECK_STR(msg.u.message.prefix, "test");
                TM_CHECK_INT(msg.u.message.len, 5);
                TM_CHECK(memcmp(msg.u.message.content, "hello", 5) == 0);
            } else {
                TM_CHECK_STR(msg.u.message.prefix, "tidemark_heartbeat");
                TM_CHECK_INT(msg.u.message.len, 0);
            }
            TM_CHECK(msg.u.message.lsn == v1.v[i].lsn);
            break;
        }
    }
    TM_CHECK(relations == 8);
    tm_pg_decoder_free(dec);
}

static void test_fields_v2_streaming(void)
{
    tm_pg_decoder_t *dec = tm_pg_decoder_new(2);
    char err[256];
    tm_pg_msg_t msg;
    uint32_t stream_xid = 0;
    int starts = 0, first_segments = 0, in_stream_changes = 0, aborts = 0;
    uint32_t committed_xid = 0;
    for (size_t i = 0; i < v2.n; i++) {
        bool in_stream = tm_pg_decoder_in_stream(dec);
        TM_REQUIRE(tm_pg_decode(dec, v2.v[i].data, v2.v[i].len, &msg, err, sizeof(err)) == 0);
        switch (msg.tag) {
        case 'S':
            TM_CHECK(!in_stream);
            TM_CHECK(tm_pg_decoder_in_stream(dec));
            starts++;
            first_segments += msg.u.stream_start.first_segment;
            stream_xid = msg.xid;
            break;
        case 'E':
            TM_CHECK(in_stream);
            TM_CHECK(!tm_pg_decoder_in_stream(dec));
            break;
        case 'I':
        case 'R':
            /* Inside a block every change names its (sub)transaction. */
            TM_CHECK(msg.has_xid == in_stream);
            if (in_stream) {
                in_stream_changes++;
                TM_CHECK(msg.xid >= stream_xid);
            }
            break;
        case 'A':
            aborts++;
            if (aborts == 1)
                TM_CHECK(msg.u.stream_abort.subxid != msg.xid); /* ROLLBACK TO SAVEPOINT */
            else
                TM_CHECK(msg.u.stream_abort.subxid == msg.xid); /* ROLLBACK */
            break;
        case 'c':
            committed_xid = msg.xid;
            TM_CHECK(msg.u.commit.end_lsn > msg.u.commit.commit_lsn);
            TM_CHECK(msg.u.commit.commit_ts > 0);
            break;
        }
    }
    TM_CHECK_INT(starts, 4);
    TM_CHECK_INT(first_segments, 2);
    TM_CHECK(in_stream_changes > 500);
    TM_CHECK(committed_xid != 0);
    tm_pg_decoder_free(dec);
}

/* Every strict prefix of every message must fail cleanly (invariant 2). */
static void check_truncations(const capture_t *cap, int proto)
{
    tm_pg_decoder_t *dec = tm_pg_decoder_new(proto), *probe = tm_pg_decoder_new(proto);
    char err[256];
    tm_pg_msg_t msg;
    long failures = 0, tried = 0;
    for (size_t i = 0; i < cap->n; i++) {
        bool in_stream = tm_pg_decoder_in_stream(dec);
        /* Copy each prefix so that ASan sees any read past its end. */
        for (size_t k = 0; k < cap->v[i].len; k++) {
            uint8_t *p = malloc(k ? k : 1);
            memcpy(p, cap->v[i].data, k);
            tm_pg_decoder_set_stream(probe, in_stream);
            err[0] = '\0';
            int rc = tm_pg_decode(probe, p, k, &msg, err, sizeof(err));
            if (rc != TM_EPROTO || err[0] == '\0')
                failures++;
            tried++;
            free(p);
        }
        TM_REQUIRE(tm_pg_decode(dec, cap->v[i].data, cap->v[i].len, &msg, err, sizeof(err)) == 0);
    }
    TM_CHECK_INT(failures, 0);
    TM_CHECK(tried > 1000);
    tm_pg_decoder_free(dec);
    tm_pg_decoder_free(probe);
}

static void test_truncations_v1(void)
{
    check_truncations(&v1, 1);
}

static void test_truncations_v2(void)
{
    check_truncations(&v2, 2);
}

static void test_corruptions(void)
{
    tm_pg_decoder_t *dec = tm_pg_decoder_new(2);
    char err[256];
    tm_pg_msg_t msg;
    /* Find the first Insert and damage it in ways a broken stream could. */
    size_t idx = 0;
    while (idx < v1.n && v1.v[idx].data[0] != 'I')
        idx++;
    TM_REQUIRE(idx < v1.n);
    size_t len = v1.v[idx].len;
    uint8_t *p = malloc(len + 1);
    memcpy(p, v1.v[idx].data, len);
    p[len] = 0;
    TM_CHECK_INT(tm_pg_decode(dec, p, len + 1, &msg, err, sizeof(err)), TM_EPROTO); /* trailing */
    TM_CHECK(strstr(err, "trailing") != NULL);
    p[5] = 'X'; /* 'N' marker */
    TM_CHECK_INT(tm_pg_decode(dec, p, len, &msg, err, sizeof(err)), TM_EPROTO);
    memcpy(p, v1.v[idx].data, len);
    p[8] = 'x'; /* first column kind */
    TM_CHECK_INT(tm_pg_decode(dec, p, len, &msg, err, sizeof(err)), TM_EPROTO);
    TM_CHECK(strstr(err, "unknown kind") != NULL);
    memcpy(p, v1.v[idx].data, len);
    p[6] = 0xff; /* column count far beyond the message */
    p[7] = 0xff;
    TM_CHECK_INT(tm_pg_decode(dec, p, len, &msg, err, sizeof(err)), TM_EPROTO);
    memcpy(p, v1.v[idx].data, len);
    p[9] = 0x7f; /* column length beyond the message */
    TM_CHECK_INT(tm_pg_decode(dec, p, len, &msg, err, sizeof(err)), TM_EPROTO);
    free(p);
    const uint8_t unknown[] = {'Z', 0, 0};
    TM_CHECK_INT(tm_pg_decode(dec, unknown, sizeof(unknown), &msg, err, sizeof(err)), TM_EPROTO);
    TM_CHECK(strstr(err, "unknown pgoutput message type 0x5a") != NULL);
    TM_CHECK_INT(tm_pg_decode(dec, NULL, 0, &msg, err, sizeof(err)), TM_EPROTO);
    /* A Truncate claiming 2^32-1 relations must not allocate for them. */
    const uint8_t trunc[] = {'T', 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1};
    TM_CHECK_INT(tm_pg_decode(dec, trunc, sizeof(trunc), &msg, err, sizeof(err)), TM_EPROTO);
    tm_pg_decoder_free(dec);
}

static void test_copydata(void)
{
    char err[256];
    tm_pg_copydata_t cd;
    uint8_t ka[18] = {'k'};
    tm_pg_put_u64(ka + 1, UINT64_C(0x16B374D848));
    tm_pg_put_u64(ka + 9, 12345);
    ka[17] = 1;
    TM_REQUIRE(tm_pg_copydata_parse(ka, sizeof(ka), &cd, err, sizeof(err)) == 0);
    TM_CHECK(cd.tag == 'k');
    TM_CHECK(cd.wal_end == UINT64_C(0x16B374D848));
    TM_CHECK(cd.send_time == 12345);
    TM_CHECK(cd.reply_requested);
    TM_CHECK_INT(tm_pg_copydata_parse(ka, 17, &cd, err, sizeof(err)), TM_EPROTO);

    uint8_t w[30] = {'w'};
    tm_pg_put_u64(w + 1, 100);
    tm_pg_put_u64(w + 9, 200);
    tm_pg_put_u64(w + 17, 300);
    memcpy(w + 25, "Ehell", 5);
    TM_REQUIRE(tm_pg_copydata_parse(w, sizeof(w), &cd, err, sizeof(err)) == 0);
    TM_CHECK(cd.wal_start == 100 && cd.wal_end == 200 && cd.send_time == 300);
    TM_CHECK(cd.len == 5 && cd.data == w + 25);
    TM_CHECK_INT(tm_pg_copydata_parse(w, 24, &cd, err, sizeof(err)), TM_EPROTO);
    TM_CHECK_INT(tm_pg_copydata_parse((const uint8_t *)"q", 1, &cd, err, sizeof(err)), TM_EPROTO);
    TM_CHECK_INT(tm_pg_copydata_parse(w, 0, &cd, err, sizeof(err)), TM_EPROTO);

    uint8_t r[34];
    tm_pg_status_update(r, 1, 2, 3, 4, true);
    TM_CHECK(r[0] == 'r');
    TM_CHECK(tm_pg_get_u64(r + 1) == 1 && tm_pg_get_u64(r + 9) == 2);
    TM_CHECK(tm_pg_get_u64(r + 17) == 3 && tm_pg_get_u64(r + 25) == 4);
    TM_CHECK(r[33] == 1);
}

static void test_lsn(void)
{
    char buf[24];
    uint64_t lsn = 0;
    TM_CHECK_STR(tm_pg_lsn_format(UINT64_C(0x16B374D848), buf), "16/B374D848");
    TM_CHECK_STR(tm_pg_lsn_format(0, buf), "0/0");
    TM_CHECK_INT(tm_pg_lsn_parse("16/B374D848", &lsn), 0);
    TM_CHECK(lsn == UINT64_C(0x16B374D848));
    TM_CHECK_INT(tm_pg_lsn_parse("16/B374D848x", &lsn), TM_EINVAL);
    TM_CHECK_INT(tm_pg_lsn_parse("nope", &lsn), TM_EINVAL);
    TM_CHECK_INT(tm_pg_lsn_parse(NULL, &lsn), TM_EINVAL);
}

int main(void)
{
    char p1[1024], p2[1024];
    if (capture_load(tm_test_data("pgoutput/v1.txt", p1, sizeof(p1)), &v1) != 0 ||
        capture_load(tm_test_data("pgoutput/v2.txt", p2, sizeof(p2)), &v2) != 0) {
        fprintf(stderr, "cannot load captures %s, %s\n", p1, p2);
        return 1;
    }
    TM_RUN(test_decode_every_message);
    TM_RUN(test_fields_v1);
    TM_RUN(test_fields_v2_streaming);
    TM_RUN(test_truncations_v1);
    TM_RUN(test_truncations_v2);
    TM_RUN(test_corruptions);
    TM_RUN(test_copydata);
    TM_RUN(test_lsn);
    capture_free(&v1);
    capture_free(&v2);
    return tm_test_done();
}
