/*
 * Unit test: every option in every connector's table is documented in
 * docs/connectors/<doc>.md, so the docs cannot fall behind the code.
 */
#include "runtime/connector.h"
#include "sql/job.h"
#include "tm_test.h"

static char *slurp(const char *path)
{
    return tm_test_read_file(path, NULL);
}

static void check_table(const char *doc, const char *what, const tm_option_def_t *defs)
{
    for (const tm_option_def_t *d = defs; d && d->name; d++) {
        char needle[128];
        snprintf(needle, sizeof(needle), "`%s`", d->name);
        if (strstr(doc, needle) == NULL) {
            fprintf(stderr, "%s: option %s is not documented\n", what, needle);
            TM_CHECK(0);
        }
    }
}

static void test_connector_docs(void)
{
    const char *dir = getenv("TM_DOCS_DIR");
    for (const tm_connector_t *const *c = tm_connector_all(); *c; c++) {
        char path[512];
        /* "postgres-cdc" (source) and "postgres" (lookup) are documented in postgres.md. */
        char base[64];
        snprintf(base, sizeof(base), "%s", (*c)->name);
        char *dash = strchr(base, '-');
        if (dash)
            *dash = '\0';
        snprintf(path, sizeof(path), "%s/connectors/%s.md", dir ? dir : "docs", base);
        char *doc = slurp(path);
        if (doc == NULL) {
            fprintf(stderr, "missing %s\n", path);
            TM_CHECK(0);
            continue;
        }
        check_table(doc, path, (*c)->source_options);
        /* A connector with both sides may document its sink in <name>-sink.md. */
        char spath[512];
        snprintf(spath, sizeof(spath), "%s/connectors/%s-sink.md", dir ? dir : "docs", base);
        char *sdoc = slurp(spath);
        check_table(sdoc ? sdoc : doc, sdoc ? spath : path, (*c)->sink_options);
        free(sdoc);
        check_table(doc, path, (*c)->lookup_options);
        free(doc);
    }
}

static void test_settings_docs(void)
{
    const char *dir = getenv("TM_DOCS_DIR");
    char path[512];
    snprintf(path, sizeof(path), "%s/sql.md", dir ? dir : "docs");
    char *doc = slurp(path);
    TM_REQUIRE(doc != NULL);
    check_table(doc, path, tm_job_settings);
    free(doc);
}

int main(void)
{
    TM_RUN(test_connector_docs);
    TM_RUN(test_settings_docs);
    return tm_test_done();
}
