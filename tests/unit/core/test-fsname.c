/* Unit tests: topic-derived file names are escaped (issue 9, item 5). */
#include "core/error.h"
#include "core/fsutil.h"
#include "tm_test.h"

static void check_name(const char *in, const char *want)
{
    char out[256];
    TM_CHECK_INT(tm_fs_name_escape(in, out, sizeof(out)), 0);
    TM_CHECK_STR(out, want);
}

static void test_escapes(void)
{
    check_name("shop.public.orders", "shop.public.orders");
    check_name("shop.public.caf\xc3\xa9 au lait", "shop.public.caf\xc3\xa9 au lait");
    check_name("shop.public.x\nlevel=error msg=forged", "shop.public.x%0Alevel=error msg=forged");
    check_name("../../etc/passwd", "%2E.%2F..%2Fetc%2Fpasswd");
    check_name(".", "%2E");
    check_name("..", "%2E.");
    check_name("a%2Fb", "a%252Fb");
    check_name("a\\b\x7f\xff", "a%5Cb%7F%FF");
    check_name("", "%00");
}

static void test_one_to_one(void)
{
    /* Names that differ only in an escaped byte keep different files. */
    char a[64], b[64];
    TM_CHECK_INT(tm_fs_name_escape("a/b", a, sizeof(a)), 0);
    TM_CHECK_INT(tm_fs_name_escape("a%2Fb", b, sizeof(b)), 0);
    TM_CHECK(strcmp(a, b) != 0);
}

static void test_too_long(void)
{
    char out[8];
    TM_CHECK_INT(tm_fs_name_escape("abcdefgh", out, sizeof(out)), TM_EINVAL);
    TM_CHECK_INT(tm_fs_name_escape("ab\n", out, 5), TM_EINVAL);
    TM_CHECK_INT(tm_fs_name_escape("ab\n", out, 6), 0);
    TM_CHECK_STR(out, "ab%0A");
}

int main(void)
{
    TM_RUN(test_escapes);
    TM_RUN(test_one_to_one);
    TM_RUN(test_too_long);
    return tm_test_done();
}
