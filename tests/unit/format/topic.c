/*
 * topic.c — Debezium's topic names (tm_dbz_topic_name, tm_dbz_topic_sanitize)
 * and heartbeat shapes, the rules every Debezium-writing sink shares (issue
 * 10, "topic.prefix naming rules").  The expected names are what Debezium
 * 3.6.1's AbstractTopicNamingStrategy writes (tests/compat/test_txmeta.py
 * checks a few against the real one).
 *
 * Thread: main only.
 */
#include "core/buf.h"
#include "core/error.h"
#include "format/debezium.h"
#include "tm_test.h"

#include <stdio.h>
#include <string.h>

static const char *name3(const char *a, const char *b, const char *c, const char *delim)
{
    static char res[512];
    tm_buf_t out;
    tm_buf_init(&out);
    const char *parts[] = {a, b, c};
    int rc = tm_dbz_topic_name(parts, 3, delim, &out);
    snprintf(res, sizeof(res), "%s", rc == 0 && out.data ? out.data : "(error)");
    tm_buf_release(&out);
    return res;
}

static void test_names(void)
{
    TM_CHECK_STR(name3("shop", "public", "orders", "."), "shop.public.orders");
    TM_CHECK_STR(name3("shop", "public", "We-ird.T", "."), "shop.public.We-ird.T");
    /* One '_' per UTF-16 unit: é is one, an emoji (a surrogate pair) two, a bad byte one. */
    TM_CHECK_STR(name3("shop", "public", "sp ace", "."), "shop.public.sp_ace");
    TM_CHECK_STR(name3("shop", "public", "caf\xc3\xa9", "."), "shop.public.caf_");
    TM_CHECK_STR(name3("shop", "public", "w\xf0\x9f\x8c\x8av", "."), "shop.public.w__v");
    TM_CHECK_STR(name3("shop", "public", "x\xe9y", "."), "shop.public.x_y");
    TM_CHECK_STR(name3("shop", "public", "a/b\n", "."), "shop.public.a_b_");
    /* Blank parts are left out (Strings.isNullOrBlank), the delimiter is the option's. */
    TM_CHECK_STR(name3("shop", NULL, "t", "."), "shop.t");
    TM_CHECK_STR(name3("shop", " ", "t", "_"), "shop_t");
    TM_CHECK_STR(name3("shop", "s", "t", "-x-"), "shop-x-s-x-t");
    TM_CHECK_STR(name3("p", "", "", "."), "p");
    /* "." and ".." are no Kafka topics. */
    TM_CHECK_STR(name3(".", NULL, NULL, "."), "_");
    TM_CHECK_STR(name3("..", NULL, NULL, "."), "__");
    TM_CHECK_STR(name3("...", NULL, NULL, "."), "...");
    /* Cut at 249 characters. */
    char longt[400];
    memset(longt, 'x', sizeof(longt) - 1);
    longt[sizeof(longt) - 1] = '\0';
    const char *n = name3("shop", "public", longt, ".");
    TM_CHECK_INT((int)strlen(n), 249);
    TM_CHECK(strncmp(n, "shop.public.xxx", 15) == 0);
}

static void test_heartbeat(void)
{
    tm_buf_t k, v;
    tm_buf_init(&k);
    tm_buf_init(&v);
    TM_CHECK_INT(tm_dbz_encode_heartbeat("shop", 1700000000123, true, &k, &v), 0);
    TM_CHECK_STR(k.data, "{\"schema\":{\"type\":\"struct\",\"fields\":[{\"type\":\"string\","
                         "\"optional\":false,\"field\":\"serverName\"}],\"optional\":false,"
                         "\"name\":\"io.debezium.connector.common.ServerNameKey\",\"version\":1},"
                         "\"payload\":{\"serverName\":\"shop\"}}");
    TM_CHECK_STR(v.data, "{\"schema\":{\"type\":\"struct\",\"fields\":[{\"type\":\"int64\","
                         "\"optional\":false,\"field\":\"ts_ms\"}],\"optional\":false,"
                         "\"name\":\"io.debezium.connector.common.Heartbeat\",\"version\":1},"
                         "\"payload\":{\"ts_ms\":1700000000123}}");
    tm_buf_clear(&k);
    tm_buf_clear(&v);
    TM_CHECK_INT(tm_dbz_encode_heartbeat("a\"b", 5, false, &k, &v), 0);
    TM_CHECK_STR(k.data, "{\"serverName\":\"a\\\"b\"}");
    TM_CHECK_STR(v.data, "{\"ts_ms\":5}");
    tm_buf_release(&k);
    tm_buf_release(&v);
}

int main(void)
{
    TM_RUN(test_names);
    TM_RUN(test_heartbeat);
    return tm_test_done();
}
