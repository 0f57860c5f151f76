/*
 * positions.c — unit tests of mysql-cdc positions: the text form a checkpoint
 * and the position file hold, its parser (and what it refuses), and the ack
 * token, which must order as the binlog does across files.
 */
#include "tm_test.h"

#include "core/error.h"
#include "mysql/mysql_int.h"

static void test_format_parse_round_trip(void)
{
    tm_my_pos_t a = {0}, b;
    snprintf(a.file, sizeof(a.file), "binlog.000003");
    a.offset = 1901;
    snprintf(a.gtid, sizeof(a.gtid), "0-1-7");
    char buf[512];
    tm_my_pos_format(&a, buf, sizeof(buf));
    TM_CHECK_STR(buf, "file=binlog.000003 pos=1901 gtid=0-1-7");
    TM_REQUIRE(tm_my_pos_parse(buf, &b) == 0);
    TM_CHECK_STR(b.file, "binlog.000003");
    TM_CHECK(b.offset == 1901);
    TM_CHECK_STR(b.gtid, "0-1-7");
    /* A multi-domain GTID position and no GTID at all. */
    TM_REQUIRE(tm_my_pos_parse("file=mysql-bin.000010 pos=4 gtid=0-1-5,1-2-9\n", &b) == 0);
    TM_CHECK_STR(b.gtid, "0-1-5,1-2-9");
    TM_REQUIRE(tm_my_pos_parse("file=x.000001 pos=120 gtid=", &b) == 0);
    TM_CHECK_STR(b.gtid, "");
}

static void test_parse_refuses(void)
{
    tm_my_pos_t p;
    TM_CHECK(tm_my_pos_parse("", &p) == TM_EINVAL);
    TM_CHECK(tm_my_pos_parse("pos=4 file=a.1 gtid=", &p) == TM_EINVAL);
    TM_CHECK(tm_my_pos_parse("file= pos=4 gtid=", &p) == TM_EINVAL);
    TM_CHECK(tm_my_pos_parse("file=a.000001 pos=x gtid=", &p) == TM_EINVAL);
    TM_CHECK(tm_my_pos_parse("file=a.000001 pos=3 gtid=", &p) == TM_EINVAL); /* before the magic */
    TM_CHECK(tm_my_pos_parse("file=a.000001 pos=99999999999999999999999 gtid=", &p) == TM_EINVAL);
    TM_CHECK(tm_my_pos_parse("file=a.000001 pos=12", &p) == TM_EINVAL);
}

static void test_tokens_order_as_the_binlog(void)
{
    tm_my_pos_t a = {0}, b = {0};
    snprintf(a.file, sizeof(a.file), "binlog.000001");
    a.offset = 4000000000u;
    snprintf(b.file, sizeof(b.file), "binlog.000002");
    b.offset = 4;
    TM_CHECK(tm_my_pos_token(&a) < tm_my_pos_token(&b));
    TM_CHECK(tm_my_pos_token(&b) == ((uint64_t)2 << 32 | 4));
    /* A name without a numeric suffix has no token (0: nothing to acknowledge). */
    snprintf(b.file, sizeof(b.file), "binlog");
    TM_CHECK(tm_my_pos_token(&b) == 0);
    snprintf(b.file, sizeof(b.file), "binlog.00x1");
    TM_CHECK(tm_my_pos_token(&b) == 0);
}

int main(void)
{
    TM_RUN(test_format_parse_round_trip);
    TM_RUN(test_parse_refuses);
    TM_RUN(test_tokens_order_as_the_binlog);
    return tm_test_done();
}
