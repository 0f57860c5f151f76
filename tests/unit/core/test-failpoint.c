/*
 * Unit tests: failpoints (core/failpoint.h) — parsing, hit counting, @N and
 * %P, the environment, and that `kill` really is SIGKILL (in a child).
 */
#include "core/error.h"
#include "core/failpoint.h"
#include "tm_test.h"

#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int configure(const char *spec, uint64_t seed)
{
    char err[512] = "";
    int rc = tm_failpoint_configure(spec, seed, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "  (configure '%s': %s)\n", spec, err);
    return rc;
}

/*
 * Runs body in a child with stderr silenced; returns the child's wait status.
 * `hits` receives how many times the child got past a failpoint (through a
 * pipe, so the count survives the kill).
 */
static int in_child(void (*body)(int fd), int *hits)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        FILE *devnull = freopen("/dev/null", "w", stderr);
        (void)devnull;
        body(fds[1]);
        _exit(0);
    }
    close(fds[1]);
    char c;
    *hits = 0;
    while (read(fds[0], &c, 1) == 1)
        (*hits)++;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

static void test_off_by_default(void)
{
    /* Nothing configured (the test runner sets no TIDEMARK_FAILPOINTS). */
    TM_REQUIRE(getenv(TM_FAILPOINT_ENV) == NULL || getenv(TM_FAILPOINT_ENV)[0] == '\0');
    tm_failpoint("nothing.here");
    TM_CHECK_INT(atomic_load(&tm__failpoint_state), TM__FAILPOINT_OFF);
    TM_CHECK_INT(tm_failpoint_hits("nothing.here"), 0);
}

static void test_count_and_nth(void)
{
    TM_REQUIRE(configure(" a.b = count ; c.d=count@3 ;; e=off", 1) == 0);
    TM_CHECK_INT(atomic_load(&tm__failpoint_state), TM__FAILPOINT_ON);
    for (int i = 0; i < 5; i++) {
        tm_failpoint("a.b");
        tm_failpoint("c.d");
        tm_failpoint("e");
        tm_failpoint("not.configured");
    }
    TM_CHECK_INT(tm_failpoint_hits("a.b"), 5);
    TM_CHECK_INT(tm_failpoint_fired("a.b"), 5);
    TM_CHECK_INT(tm_failpoint_hits("c.d"), 5);
    TM_CHECK_INT(tm_failpoint_fired("c.d"), 1);
    TM_CHECK_INT(tm_failpoint_hits("e"), 5);
    TM_CHECK_INT(tm_failpoint_fired("e"), 0);
    TM_CHECK_INT(tm_failpoint_hits("not.configured"), 0);
    /* Reconfiguring resets the counters; an empty spec turns everything off. */
    TM_REQUIRE(configure("a.b=count", 1) == 0);
    TM_CHECK_INT(tm_failpoint_hits("a.b"), 0);
    TM_REQUIRE(configure("", 1) == 0);
    TM_CHECK_INT(atomic_load(&tm__failpoint_state), TM__FAILPOINT_OFF);
    tm_failpoint("a.b");
    TM_CHECK_INT(tm_failpoint_hits("a.b"), 0);
}

static void test_probability_is_seeded(void)
{
    enum { N = 20000 };
    uint64_t fired[2];
    for (int round = 0; round < 2; round++) {
        TM_REQUIRE(configure("p=count%25; always=count%100", 42) == 0);
        for (int i = 0; i < N; i++) {
            tm_failpoint("p");
            tm_failpoint("always");
        }
        fired[round] = tm_failpoint_fired("p");
        TM_CHECK_INT(tm_failpoint_fired("always"), N);
    }
    /* About a quarter, and exactly the same hits with the same seed. */
    TM_CHECK(fired[0] > N / 4 - N / 20 && fired[0] < N / 4 + N / 20);
    TM_CHECK_INT(fired[0], fired[1]);
    TM_REQUIRE(configure("p=count%25", 43) == 0);
    for (int i = 0; i < N; i++)
        tm_failpoint("p");
    TM_CHECK(tm_failpoint_fired("p") != fired[0]);
    /* @N and %P together: only the N-th hit is drawn for. */
    TM_REQUIRE(configure("q=count@7%100", 1) == 0);
    for (int i = 0; i < 20; i++)
        tm_failpoint("q");
    TM_CHECK_INT(tm_failpoint_fired("q"), 1);
    TM_REQUIRE(configure("", 0) == 0);
}

static void test_sleep(void)
{
    TM_REQUIRE(configure("s=sleep(30)@2", 1) == 0);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    tm_failpoint("s");
    tm_failpoint("s");
    tm_failpoint("s");
    clock_gettime(CLOCK_MONOTONIC, &b);
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    TM_CHECK(ms >= 25);
    TM_CHECK_INT(tm_failpoint_fired("s"), 1);
    TM_REQUIRE(configure("", 0) == 0);
}

static void test_parse_errors(void)
{
    static const char *const bad[] = {
        "noequals",     "=kill",         "x=explode",     "x=kill@0",   "x=kill@",
        "x=kill@three", "x=kill%0",      "x=kill%101",    "x=kill%abc", "x=sleep(abc)",
        "x=sleep(10",   "x=kill;x=count", "x=kill%25@",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[512] = "";
        int rc = tm_failpoint_configure(bad[i], 1, err, sizeof(err));
        TM_CHECK_INT(rc, TM_ECONFIG);
        TM_CHECK(strstr(err, TM_FAILPOINT_ENV) != NULL);
        /* A bad spec leaves nothing configured. */
        TM_CHECK_INT(atomic_load(&tm__failpoint_state), TM__FAILPOINT_OFF);
        if (rc != TM_ECONFIG)
            fprintf(stderr, "  accepted: '%s'\n", bad[i]);
    }
    char err[512] = "";
    TM_CHECK(tm_failpoint_configure("x.y=kill", 1, err, sizeof(err)) == 0);
    TM_CHECK(tm_failpoint_configure("a=kill@2%12.5; b=sleep(5)%50 ; c=off", 1, err,
                                    sizeof(err)) == 0);
    TM_REQUIRE(configure("", 0) == 0);
}

static void kill_at_third(int fd)
{
    if (configure("die=kill@3", 7) != 0)
        _exit(2);
    for (int i = 0; i < 10; i++) {
        tm_failpoint("die");
        if (write(fd, "x", 1) != 1)
            _exit(3);
    }
}

static void test_kill_is_sigkill_at_the_nth_hit(void)
{
    int hits;
    int status = in_child(kill_at_third, &hits);
    TM_CHECK(WIFSIGNALED(status));
    TM_CHECK_INT(WIFSIGNALED(status) ? WTERMSIG(status) : -1, SIGKILL);
    TM_CHECK_INT(hits, 2);
}

static void kill_from_env(int fd)
{
    /* A fresh configuration from the environment, as the daemon would read it. */
    setenv(TM_FAILPOINT_ENV, "other=count; env.point = kill @ 2", 1);
    setenv(TM_FAILPOINT_SEED_ENV, "5", 1);
    char err[512];
    if (tm_failpoint_configure(getenv(TM_FAILPOINT_ENV), 5, err, sizeof(err)) != 0)
        _exit(2);
    for (int i = 0; i < 10; i++) {
        tm_failpoint("env.point");
        if (write(fd, "x", 1) != 1)
            _exit(3);
    }
}

static void test_kill_from_env_spec(void)
{
    int hits;
    int status = in_child(kill_from_env, &hits);
    TM_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    TM_CHECK_INT(hits, 1);
}

static void lazy_env(int fd)
{
    for (int i = 0; i < 10; i++) {
        tm_failpoint("lazy");
        if (write(fd, "x", 1) != 1)
            _exit(3);
    }
}

static void test_env_is_read_at_first_hit(void)
{
    /*
     * Runs first, before anything in this process touched a failpoint, so
     * the child's pthread_once has not run: it reads the environment.
     */
    setenv(TM_FAILPOINT_ENV, "lazy=kill@4", 1);
    int hits;
    int status = in_child(lazy_env, &hits);
    unsetenv(TM_FAILPOINT_ENV);
    TM_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    TM_CHECK_INT(hits, 3);
}

static void bad_env(int fd)
{
    for (int i = 0; i < 3; i++) {
        tm_failpoint("lazy");
        if (write(fd, "x", 1) != 1)
            _exit(3);
    }
}

static void test_bad_env_turns_failpoints_off(void)
{
    setenv(TM_FAILPOINT_ENV, "lazy=kill@zero", 1);
    int hits;
    int status = in_child(bad_env, &hits);
    unsetenv(TM_FAILPOINT_ENV);
    TM_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    TM_CHECK_INT(hits, 3);
}

int main(void)
{
    /* These two fork before this process reads its own configuration. */
    TM_RUN(test_env_is_read_at_first_hit);
    TM_RUN(test_bad_env_turns_failpoints_off);
    TM_RUN(test_off_by_default);
    TM_RUN(test_count_and_nth);
    TM_RUN(test_probability_is_seeded);
    TM_RUN(test_sleep);
    TM_RUN(test_parse_errors);
    TM_RUN(test_kill_is_sigkill_at_the_nth_hit);
    TM_RUN(test_kill_from_env_spec);
    return tm_test_done();
}
