/*
 * Unit tests: job files that are not text, too large or not files get a clear
 * error without their bytes (issue 9, item 11); many statements parse in
 * linear time; the "no connector" message lists the registry (item 16).
 */
#include "core/buf.h"
#include "core/error.h"
#include "sql/job.h"
#include "tm_test.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

static const char head[] =
    "CREATE TABLE orders (id int PRIMARY KEY, amount int)\n"
    "    WITH (connector = 'postgres-cdc', dsn = 'host=127.0.0.1 dbname=x user=postgres',\n"
    "          table = 'public.orders');\n"
    "CREATE TABLE out () WITH (connector = 'file', path = '/tmp/tm-jobinput-out');\n";

static char tmp_path[64];

/* Writes len bytes to a fresh temporary file and returns its path. */
static const char *write_tmp(const void *data, size_t len)
{
    snprintf(tmp_path, sizeof(tmp_path), "/tmp/tm-jobinput-XXXXXX");
    int fd = mkstemp(tmp_path);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len)
        return NULL;
    close(fd);
    return tmp_path;
}

/* True if the message holds only printable ASCII, spaces, newlines and UTF-8 text. */
static bool clean(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 && c != '\n') || c == 0x7f || c == 0xff || c == 0xfe)
            return false;
    }
    return true;
}

static int load(const char *path, char *err, size_t errsz)
{
    tm_job_t *job = NULL;
    err[0] = '\0';
    int rc = tm_job_load(path, &job, err, errsz);
    tm_job_free(job);
    return rc;
}

static void test_not_files(void)
{
    char err[1024];
    TM_CHECK(load("/tmp", err, sizeof(err)) != 0);
    TM_CHECK(strstr(err, "directory") != NULL);
    TM_CHECK(load("/dev/zero", err, sizeof(err)) != 0);
    TM_CHECK(strstr(err, "larger than 4 MiB") != NULL);
    /* A regular file past the cap, even of harmless bytes. */
    size_t big = (4u << 20) + 10;
    char *spaces = malloc(big);
    TM_REQUIRE(spaces != NULL);
    memset(spaces, ' ', big);
    const char *p = write_tmp(spaces, big);
    free(spaces);
    TM_REQUIRE(p != NULL);
    TM_CHECK(load(p, err, sizeof(err)) != 0);
    TM_CHECK(strstr(err, "larger than 4 MiB") != NULL);
    unlink(p);
}

static void test_not_text(void)
{
    static const struct {
        const char *data;
        size_t len;
        const char *words;
    } cases[] = {
        {"SELECT 1;\n\0\n", 12, ":2:1: the job file holds a NUL byte (0x00)"},
        {"SELECT 1;\n  \xff\xfe;", 15, ":2:3: the job file holds a byte that is not UTF-8 (0xff)"},
        {"SELECT '\x1b[2J';", 15, ":1:9: the job file holds a control character (0x1b)"},
        {"\x7f" "ELF\x02\x01\x01", 7, ":1:1: the job file holds a control character (0x7f)"},
        {"SELECT 'caf\xc0\xa9';", 15, "not UTF-8 (0xc0)"},
    };
    char err[1024];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *p = write_tmp(cases[i].data, cases[i].len);
        TM_REQUIRE(p != NULL);
        TM_CHECK_INT(load(p, err, sizeof(err)), TM_ESQL);
        if (strstr(err, cases[i].words) == NULL)
            fprintf(stderr, "  case %zu: %s\n", i, err);
        TM_CHECK(strstr(err, cases[i].words) != NULL);
        TM_CHECK(clean(err));
        unlink(p);
    }
}

static void test_no_connector_lists_registry(void)
{
    char err[1024];
    tm_job_t *job = NULL;
    TM_CHECK(tm_job_parse("CREATE TABLE a (x int);\nINSERT INTO b SELECT * FROM a;", "j.sql", &job,
                          err, sizeof(err)) == TM_ECONFIG);
    for (const tm_connector_t *const *c = tm_connector_all(); *c; c++)
        TM_CHECK(strstr(err, (*c)->name) != NULL);
    TM_CHECK(strstr(err, "kafka") != NULL);
    tm_job_free(job);
}

static double parse_seconds(int n, int *line_of_last)
{
    tm_buf_t b = {0};
    tm_buf_puts(&b, head);
    for (int i = 0; i < n; i++)
        tm_buf_appendf(&b, "INSERT INTO out SELECT id, amount FROM orders WHERE id = %d;\n", i);
    tm_buf_putc(&b, '\0');
    char err[1024];
    tm_job_t *job = NULL;
    struct timespec t0, t1;
    /* This thread's CPU time: other load on the machine does not count. */
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    int rc = tm_job_parse(b.data, "big.sql", &job, err, sizeof(err));
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    tm_buf_release(&b);
    *line_of_last = rc == 0 && job->ninserts == n ? job->inserts[n - 1].line : -1;
    tm_job_free(job);
    return (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

/*
 * 8 times the statements must take about 8 times as long, not 64 (a ratio of
 * CPU times, so sanitizers and a busy machine slow both sides alike).
 */
static void test_linear_parse(void)
{
    int last;
    double small = parse_seconds(2500, &last);
    TM_CHECK_INT(last, 2500 + 4);
    double large = parse_seconds(20000, &last);
    TM_CHECK_INT(last, 20000 + 4);
    fprintf(stderr, "  2,500 statements: %.3f s; 20,000: %.3f s\n", small, large);
    TM_CHECK(large < 24.0 * small + 0.2);
}

int main(void)
{
    TM_RUN(test_not_files);
    TM_RUN(test_not_text);
    TM_RUN(test_no_connector_lists_registry);
    TM_RUN(test_linear_parse);
    return tm_test_done();
}
