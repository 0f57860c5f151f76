/* Unit tests: topic-derived file names are escaped (issue 9, item 5). */
#include "core/error.h"
#include "core/fsutil.h"
#include "tm_test.h"

static void check_name(const char *in, const char *want)
{
    tm_buf_t out;
    tm_buf_init(&out);
    TM_CHECK_INT(tm_fs_name_escape(in, strlen(in), 255, &out), 0);
    TM_CHECK_STR(out.data, want);
    tm_buf_release(&out);
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
    check_name("", "%");
}

static void test_one_to_one(void)
{
    /* Names that differ only in an escaped byte keep different files. */
    tm_buf_t a, b;
    tm_buf_init(&a);
    tm_buf_init(&b);
    TM_CHECK_INT(tm_fs_name_escape("a/b", 3, 255, &a), 0);
    TM_CHECK_INT(tm_fs_name_escape("a%2Fb", 5, 255, &b), 0);
    TM_CHECK(strcmp(a.data, b.data) != 0);
    /* Long names are cut and hashed: two that share their first 300 bytes stay apart. */
    char x[400], y[400];
    memset(x, 'x', sizeof(x));
    memcpy(y, x, sizeof(y));
    y[399] = 'y';
    TM_CHECK_INT(tm_fs_name_escape(x, sizeof(x), 200, &a), 0);
    TM_CHECK_INT(tm_fs_name_escape(y, sizeof(y), 200, &b), 0);
    TM_CHECK(a.len <= 200 && b.len <= 200 && strcmp(a.data, b.data) != 0);
    TM_CHECK(strstr(a.data, "%~") != NULL);
    tm_buf_release(&a);
    tm_buf_release(&b);
}

static void test_too_long(void)
{
    /* An escaped multibyte cut never splits an escape: the cut lands on a character boundary. */
    tm_buf_t out;
    tm_buf_init(&out);
    char in[100];
    memset(in, '\n', sizeof(in));
    TM_CHECK_INT(tm_fs_name_escape(in, sizeof(in), 60, &out), 0);
    TM_CHECK(out.len <= 60);
    const char *hash = strstr(out.data, "%~");
    TM_REQUIRE(hash != NULL);
    TM_CHECK((hash - out.data) % 3 == 0); /* whole "%0A" escapes before it */
    tm_buf_release(&out);
}

int main(void)
{
    TM_RUN(test_escapes);
    TM_RUN(test_one_to_one);
    TM_RUN(test_too_long);
    return tm_test_done();
}
