/*
 * gtid.c — unit tests of the mysql-cdc source's MariaDB GTID sets
 * (connectors/mysql/my_gtid.c): how a transaction's GTID moves the set of a
 * position, and whether the server's oldest binlog still covers a set (the
 * purged-binlog check at start).
 */
#include "tm_test.h"

#include "core/error.h"
#include "mysql/mysql_int.h"

static void test_update_replaces_the_domain_or_appends(void)
{
    char set[64] = "0-1-7";
    TM_REQUIRE(tm_my_gtid_set_update(set, sizeof(set), "0-1-8") == 0);
    TM_CHECK_STR(set, "0-1-8");
    /* Another domain joins; an update of the first keeps the order. */
    TM_REQUIRE(tm_my_gtid_set_update(set, sizeof(set), "1-2-30") == 0);
    TM_CHECK_STR(set, "0-1-8,1-2-30");
    TM_REQUIRE(tm_my_gtid_set_update(set, sizeof(set), "0-3-9") == 0);
    TM_CHECK_STR(set, "0-3-9,1-2-30");
    /* From the empty set. */
    char e[32] = "";
    TM_REQUIRE(tm_my_gtid_set_update(e, sizeof(e), "5-1-1") == 0);
    TM_CHECK_STR(e, "5-1-1");
    /* Big numbers: 32-bit domain and server, 64-bit seq. */
    char b[80] = "";
    TM_REQUIRE(tm_my_gtid_set_update(b, sizeof(b), "4294967295-4294967295-18446744073709551615") ==
               0);
    TM_CHECK_STR(b, "4294967295-4294967295-18446744073709551615");
}

static void test_update_refuses(void)
{
    char set[16] = "0-1-7";
    TM_CHECK(tm_my_gtid_set_update(set, sizeof(set), "") == TM_EINVAL);
    TM_CHECK(tm_my_gtid_set_update(set, sizeof(set), "0-1") == TM_EINVAL);
    TM_CHECK(tm_my_gtid_set_update(set, sizeof(set), "0-1-x") == TM_EINVAL);
    TM_CHECK(tm_my_gtid_set_update(set, sizeof(set), "0-1-2-3") == TM_EINVAL);
    TM_CHECK(tm_my_gtid_set_update(set, sizeof(set), "4294967296-1-2") == TM_EINVAL);
    TM_CHECK(tm_my_gtid_set_update(set, sizeof(set), "-1-1-2") == TM_EINVAL);
    /* Does not fit: the set stays as it was. */
    TM_CHECK(tm_my_gtid_set_update(set, sizeof(set), "1-1-123456789") == TM_EINVAL);
    TM_CHECK_STR(set, "0-1-7");
    /* A malformed set is refused too. */
    char bad[32] = "0-1-7,zz";
    TM_CHECK(tm_my_gtid_set_update(bad, sizeof(bad), "0-1-8") == TM_EINVAL);
    TM_CHECK_STR(bad, "0-1-7,zz");
}

static void test_covered(void)
{
    char why[256];
    /* Same domain: needed at or past the oldest file's start. */
    TM_CHECK(tm_my_gtid_covered("0-1-437", "0-1-437", why, sizeof(why)) == 1);
    TM_CHECK(tm_my_gtid_covered("0-1-500", "[0-1-437]", why, sizeof(why)) == 1);
    TM_CHECK(tm_my_gtid_covered("0-1-436", "0-1-437", why, sizeof(why)) == 0);
    TM_CHECK(strstr(why, "domain 0") != NULL && strstr(why, "0-1-436") != NULL &&
             strstr(why, "0-1-437") != NULL);
    /* A domain the oldest file lists but the set never saw: its start is gone. */
    TM_CHECK(tm_my_gtid_covered("0-1-9", "0-1-5,1-2-3", why, sizeof(why)) == 0);
    TM_CHECK(strstr(why, "domain 1: needed from its start") != NULL);
    TM_CHECK(tm_my_gtid_covered("0-1-9,1-2-3", "0-1-5,1-2-3", why, sizeof(why)) == 1);
    /* An empty list (a server's first binlog): everything is there. */
    TM_CHECK(tm_my_gtid_covered("0-1-9", "", why, sizeof(why)) == 1);
    TM_CHECK(tm_my_gtid_covered("0-1-9", "[]", why, sizeof(why)) == 1);
    TM_CHECK(tm_my_gtid_covered("x", "0-1-5", why, sizeof(why)) == TM_EINVAL);
    TM_CHECK(tm_my_gtid_covered("0-1-5", "0-1", why, sizeof(why)) == TM_EINVAL);
}

int main(void)
{
    TM_RUN(test_update_replaces_the_domain_or_appends);
    TM_RUN(test_update_refuses);
    TM_RUN(test_covered);
    return tm_test_done();
}
