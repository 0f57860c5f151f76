/*
 * Unit test: the metrics table (src/daemon/metrics.c) and docs/operations.md's
 * "Metrics reference" name the same families, with the same types, and every
 * name follows the naming rules (tidemark_ prefix, _total on counters and on
 * nothing else).
 */
#include "daemon/metrics.h"
#include "tm_test.h"

#include <regex.h>

static char *slurp(const char *path)
{
    return tm_test_read_file(path, NULL);
}

#define MAXDOC 128

typedef struct doc_row {
    char name[96];
    char type[16];
} doc_row_t;

/* Rows "| `name` | type | …" of the section "### Metrics reference". */
static int doc_rows(const char *doc, doc_row_t *rows)
{
    const char *sec = strstr(doc, "\n### Metrics reference\n");
    TM_REQUIRE(sec != NULL);
    sec++;
    const char *end = strstr(sec + 4, "\n## ");
    const char *end3 = strstr(sec + 4, "\n### ");
    if (end3 != NULL && (end == NULL || end3 < end))
        end = end3;
    int n = 0;
    for (const char *line = sec; line != NULL && (end == NULL || line < end);) {
        char name[96], type[16];
        if (sscanf(line, "| `%95[a-z_]` | %15[a-z] |", name, type) == 2 && n < MAXDOC) {
            snprintf(rows[n].name, sizeof(rows[n].name), "%s", name);
            snprintf(rows[n].type, sizeof(rows[n].type), "%s", type);
            n++;
        }
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    return n;
}

static void test_table_and_docs_agree(void)
{
    const char *dir = getenv("TM_DOCS_DIR");
    char path[512];
    snprintf(path, sizeof(path), "%s/operations.md", dir ? dir : "docs");
    char *doc = slurp(path);
    TM_REQUIRE(doc != NULL);
    doc_row_t rows[MAXDOC];
    int nd = doc_rows(doc, rows);
    int nf;
    const tm_metric_family_t *f = tm_metrics_families(&nf);
    TM_CHECK(nf > 20);
    for (int i = 0; i < nf; i++) {
        int k = 0;
        while (k < nd && strcmp(rows[k].name, f[i].name) != 0)
            k++;
        if (k == nd)
            fprintf(stderr, "%s is exported but not in docs/operations.md's Metrics reference\n",
                    f[i].name);
        else if (strcmp(rows[k].type, f[i].type) != 0)
            fprintf(stderr, "%s is a %s, but the docs say %s\n", f[i].name, f[i].type,
                    rows[k].type);
        TM_CHECK(k < nd && strcmp(rows[k].type, f[i].type) == 0);
    }
    for (int k = 0; k < nd; k++) {
        int i = 0;
        while (i < nf && strcmp(rows[k].name, f[i].name) != 0)
            i++;
        if (i == nf)
            fprintf(stderr, "%s is documented but not exported\n", rows[k].name);
        TM_CHECK(i < nf);
    }
    free(doc);
}

static void test_names_follow_the_rules(void)
{
    int nf;
    const tm_metric_family_t *f = tm_metrics_families(&nf);
    regex_t re;
    TM_REQUIRE(regcomp(&re, "^tidemark_[a-z][a-z_]*[a-z]$", REG_EXTENDED | REG_NOSUB) == 0);
    for (int i = 0; i < nf; i++) {
        size_t len = strlen(f[i].name);
        bool total = len > 6 && strcmp(f[i].name + len - 6, "_total") == 0;
        bool counter = strcmp(f[i].type, "counter") == 0;
        if (regexec(&re, f[i].name, 0, NULL, 0) != 0 || total != counter)
            fprintf(stderr, "%s (%s) breaks the naming rules\n", f[i].name, f[i].type);
        TM_CHECK(regexec(&re, f[i].name, 0, NULL, 0) == 0);
        TM_CHECK(total == counter);
        TM_CHECK(counter || strcmp(f[i].type, "gauge") == 0 ||
                 strcmp(f[i].type, "histogram") == 0);
        TM_CHECK(f[i].help != NULL && f[i].help[0] != '\0' && f[i].collect != NULL);
        for (int j = 0; j < i; j++)
            TM_CHECK(strcmp(f[i].name, f[j].name) != 0);
    }
    regfree(&re);
}

int main(void)
{
    TM_RUN(test_table_and_docs_agree);
    TM_RUN(test_names_follow_the_rules);
    return tm_test_done();
}
