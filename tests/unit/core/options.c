/* Unit tests: option tables, secrets expansion, DSN masking, durations. */
#include "core/error.h"
#include "core/options.h"
#include "tm_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const tm_option_def_t defs[] = {
    {"dsn", TM_OPT_DSN, true, NULL, NULL, "connection string"},
    {"mode", TM_OPT_ENUM, false, "a", "a|b", "mode"},
    {"every", TM_OPT_DURATION, false, "10s", NULL, "interval"},
    {"flag", TM_OPT_BOOL, false, "true", NULL, "flag"},
    {"n", TM_OPT_INT, false, "5", NULL, "count"},
    {"token", TM_OPT_SECRET, false, NULL, NULL, "secret"},
    {NULL, 0, false, NULL, NULL, NULL},
};

static void test_defaults_and_types(void)
{
    char err[512];
    tm_options_t *o = tm_options_new();
    tm_options_set(o, "dsn", "host=x");
    tm_options_set(o, "Every", "500ms");
    TM_REQUIRE(tm_options_validate(o, defs, NULL, "table 't'", err, sizeof(err)) == 0);
    TM_CHECK_INT(tm_opt_duration_ms(o, "every"), 500);
    TM_CHECK_STR(tm_opt_str(o, "mode"), "a");
    TM_CHECK(tm_opt_bool(o, "flag"));
    TM_CHECK_INT(tm_opt_int(o, "n"), 5);
    TM_CHECK(!tm_opt_isset(o, "mode"));
    TM_CHECK(tm_opt_isset(o, "every"));
    tm_options_free(o);
}

static void test_errors_name_the_option(void)
{
    char err[512];
    tm_options_t *o = tm_options_new();
    tm_options_set(o, "dsn", "host=x");
    tm_options_set(o, "mdoe", "a");
    TM_CHECK(tm_options_validate(o, defs, NULL, "table 't'", err, sizeof(err)) == TM_ECONFIG);
    TM_CHECK(strstr(err, "unknown option 'mdoe'") != NULL);
    TM_CHECK(strstr(err, "mode") != NULL);
    tm_options_free(o);

    o = tm_options_new();
    TM_CHECK(tm_options_validate(o, defs, NULL, "table 't'", err, sizeof(err)) == TM_ECONFIG);
    TM_CHECK(strstr(err, "'dsn' is required") != NULL);
    tm_options_free(o);

    o = tm_options_new();
    tm_options_set(o, "dsn", "x");
    tm_options_set(o, "mode", "c");
    TM_CHECK(tm_options_validate(o, defs, NULL, "table 't'", err, sizeof(err)) == TM_ECONFIG);
    TM_CHECK(strstr(err, "'mode' = 'c' is not one of a|b") != NULL);
    tm_options_set(o, "mode", "b");
    tm_options_set(o, "every", "soon");
    TM_CHECK(tm_options_validate(o, defs, NULL, "table 't'", err, sizeof(err)) == TM_ECONFIG);
    TM_CHECK(strstr(err, "'every'") != NULL);
    tm_options_free(o);
}

static void test_secrets(void)
{
    char err[512], path[] = "/tmp/tm-secret-XXXXXX";
    int fd = mkstemp(path);
    TM_REQUIRE(fd >= 0);
    TM_REQUIRE(write(fd, "fromfile\n", 9) == 9);
    close(fd);
    setenv("TM_TEST_PW", "fromenv", 1);
    tm_options_t *o = tm_options_new();
    char dsn[256];
    snprintf(dsn, sizeof(dsn), "host=x password=${env:TM_TEST_PW}");
    tm_options_set(o, "dsn", dsn);
    char tok[256];
    snprintf(tok, sizeof(tok), "${file:%s}", path);
    tm_options_set(o, "token", tok);
    TM_REQUIRE(tm_options_validate(o, defs, NULL, "t", err, sizeof(err)) == 0);
    TM_CHECK_STR(tm_opt_str(o, "dsn"), "host=x password=fromenv");
    TM_CHECK_STR(tm_opt_str(o, "token"), "fromfile");
    for (int i = 0; i < o->n; i++) {
        char *shown = tm_option_display(&o->kv[i]);
        TM_CHECK(strstr(shown, "fromenv") == NULL && strstr(shown, "fromfile") == NULL);
        free(shown);
    }
    tm_options_set(o, "token", "${env:TM_TEST_NOT_SET_ANYWHERE}");
    TM_CHECK(tm_options_validate(o, defs, NULL, "t", err, sizeof(err)) == TM_ECONFIG);
    TM_CHECK(strstr(err, "TM_TEST_NOT_SET_ANYWHERE") != NULL);
    tm_options_free(o);
    unlink(path);
}

static void test_dsn_mask(void)
{
    char *m = tm_dsn_mask("host=a password=s3cret user=b");
    TM_CHECK_STR(m, "user=b password=**** host=a");
    free(m);
    m = tm_dsn_mask("host=a password = 'it\\'s s3cret' user=b");
    TM_CHECK(strstr(m, "s3cret") == NULL);
    TM_CHECK(strstr(m, "user=b") != NULL);
    free(m);
    m = tm_dsn_mask("postgresql://u:s3cret@h:5432/db?password=x&sslmode=require");
    TM_CHECK(strstr(m, "s3cret") == NULL);
    TM_CHECK(strstr(m, "sslmode=require") != NULL);
    free(m);
    m = tm_dsn_mask("password=p");
    TM_CHECK_STR(m, "password=****");
    free(m);
    /* A backslash-escaped space is part of the password for libpq: all of it is masked. */
    m = tm_dsn_mask("host=a password=s3cret\\ tailE user=b");
    TM_CHECK(strstr(m, "s3cret") == NULL && strstr(m, "tailE") == NULL);
    TM_CHECK(strstr(m, "host=a") != NULL && strstr(m, "user=b") != NULL);
    free(m);
    /* sslpassword (and every keyword libpq marks secret) is masked too. */
    m = tm_dsn_mask("host=a sslpassword=k3ypass sslkey=/k.pem");
    TM_CHECK(strstr(m, "k3ypass") == NULL);
    TM_CHECK(strstr(m, "sslpassword=****") != NULL);
    TM_CHECK(strstr(m, "sslkey=/k.pem") != NULL);
    free(m);
    m = tm_dsn_mask("postgresql://u@h/db?sslpassword=k3ypass");
    TM_CHECK(strstr(m, "k3ypass") == NULL);
    free(m);
    /* A value with spaces is shown quoted, as libpq would read it back. */
    m = tm_dsn_mask("application_name='my app' password='a b'");
    TM_CHECK(strstr(m, "application_name='my app'") != NULL);
    TM_CHECK(strstr(m, "a b") == NULL);
    free(m);
    /* Text libpq cannot read is not shown at all: its parse error may quote the password. */
    m = tm_dsn_mask("host=a password s3cret");
    TM_CHECK(strstr(m, "s3cret") == NULL && strncmp(m, "****", 4) == 0);
    free(m);
    m = tm_dsn_mask("host=a password='s3cret");
    TM_CHECK(strstr(m, "s3cret") == NULL);
    free(m);
}

static void test_secret_names(void)
{
    const char *secret[] = {"kafka.sasl.password", "kafka.ssl.key.password",
                            "kafka.ssl.keystore.password", "kafka.sasl.oauthbearer.client.secret",
                            "kafka.sasl.oauthbearer.config", "kafka.ssl.key.pem",
                            "kafka.sasl.jaas.config", "password", "mysql.password",
                            "mysql.ssl-password", "admin_token", NULL};
    const char *plain[] = {"kafka.bootstrap.servers", "kafka.ssl.key.location", "topic", "dsn",
                           "kafka.sasl.mechanism", "path", NULL};
    for (const char **n = secret; *n; n++) {
        TM_CHECK(tm_option_name_is_secret(*n));
        tm_option_kv_t kv = {(char *)*n, (char *)"v4lue", (char *)"v4lue", NULL};
        char *shown = tm_option_display(&kv);
        TM_CHECK_STR(shown, "****");
        free(shown);
    }
    for (const char **n = plain; *n; n++)
        TM_CHECK(!tm_option_name_is_secret(*n));
}

/* Every `${` is a value or an error: never a literal, never unbounded. */
static void test_references(void)
{
    char err[512];
    static const struct {
        const char *raw, *words;
    } bad[] = {
        {"${env:TM_TEST_PW", "no closing"},
        {"x ${foo:bar} y", "unknown reference '${foo"},
        {"${nothing}", "unknown reference"},
        {"${env:}", "empty"},
        {"${file:}", "empty"},
        {"${file:/tmp}", "directory"},
        {"${file:/dev/zero}", "larger than 4 MiB"},
        {"${file:/nonexistent/tm}", "cannot be read"},
    };
    setenv("TM_TEST_PW", "fromenv", 1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tm_options_t *o = tm_options_new();
        tm_options_set(o, "dsn", "host=x");
        tm_options_set(o, "token", bad[i].raw);
        err[0] = '\0';
        TM_CHECK(tm_options_validate(o, defs, NULL, "t", err, sizeof(err)) == TM_ECONFIG);
        if (strstr(err, bad[i].words) == NULL)
            fprintf(stderr, "  %s: %s\n", bad[i].raw, err);
        TM_CHECK(strstr(err, bad[i].words) != NULL);
        TM_CHECK(strstr(err, "'token'") != NULL);
        tm_options_free(o);
    }
    /* A secret file with a NUL byte is refused, not cut short. */
    char path[] = "/tmp/tm-secret-XXXXXX", ref[64];
    int fd = mkstemp(path);
    TM_REQUIRE(fd >= 0);
    TM_REQUIRE(write(fd, "ab\0cd", 5) == 5);
    close(fd);
    snprintf(ref, sizeof(ref), "${file:%s}", path);
    tm_options_t *o = tm_options_new();
    tm_options_set(o, "dsn", "host=x");
    tm_options_set(o, "token", ref);
    TM_CHECK(tm_options_validate(o, defs, NULL, "t", err, sizeof(err)) == TM_ECONFIG);
    TM_CHECK(strstr(err, "NUL") != NULL);
    tm_options_free(o);
    unlink(path);
    /* $${ is a literal ${, and a lone $ stays as it is. */
    o = tm_options_new();
    tm_options_set(o, "dsn", "host=x");
    tm_options_set(o, "token", "a$${b}$c ${env:TM_TEST_PW}$");
    TM_REQUIRE(tm_options_validate(o, defs, NULL, "t", err, sizeof(err)) == 0);
    TM_CHECK_STR(tm_opt_str(o, "token"), "a${b}$c fromenv$");
    tm_options_free(o);
}

static void test_parsers(void)
{
    int64_t v;
    TM_CHECK(tm_parse_duration_ms("1.5s", &v) == 0 && v == 1500);
    TM_CHECK(tm_parse_duration_ms("2m", &v) == 0 && v == 120000);
    TM_CHECK(tm_parse_duration_ms("250", &v) == 0 && v == 250);
    TM_CHECK(tm_parse_duration_ms("-1s", &v) != 0);
    TM_CHECK(tm_parse_size("64MB", &v) == 0 && v == 64000000);
    TM_CHECK(tm_parse_size("1GiB", &v) == 0 && v == 1073741824);
    TM_CHECK(tm_parse_size("lots", &v) != 0);
}

/* Comma-separated lists: blanks trimmed, empty entries skipped, commas inside quotes kept. */
static void test_next_item(void)
{
    const char *want[] = {"a", "b c", "\"x,y\".z", "d"};
    const char *p = " a ,, b c ,\t\"x,y\".z,d , ", *item;
    size_t len;
    int n = 0;
    while (tm_opt_next_item(&p, '"', &item, &len)) {
        TM_REQUIRE(n < 4);
        TM_CHECK(len == strlen(want[n]) && memcmp(item, want[n], len) == 0);
        n++;
    }
    TM_CHECK_INT(n, 4);
    /* Without quoting the quoted comma splits. */
    p = "\"x,y\"";
    TM_CHECK(tm_opt_next_item(&p, 0, &item, &len) && len == 2 && memcmp(item, "\"x", 2) == 0);
    TM_CHECK(tm_opt_next_item(&p, 0, &item, &len) && len == 2 && memcmp(item, "y\"", 2) == 0);
    TM_CHECK(!tm_opt_next_item(&p, 0, &item, &len));
    p = " , ,";
    TM_CHECK(!tm_opt_next_item(&p, 0, &item, &len));
}

int main(void)
{
    TM_RUN(test_defaults_and_types);
    TM_RUN(test_errors_name_the_option);
    TM_RUN(test_secrets);
    TM_RUN(test_next_item);
    TM_RUN(test_dsn_mask);
    TM_RUN(test_secret_names);
    TM_RUN(test_references);
    TM_RUN(test_parsers);
    return tm_test_done();
}
