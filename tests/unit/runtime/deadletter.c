/*
 * Unit tests: the dead-letter writer (runtime/deadletter.h): the file name,
 * one JSON line per rejected record with every field and value rendering,
 * lazy creation, appending across writers (a restart), flushing, and the
 * sticky I/O error that names the file.
 */
#include "core/errcount.h"
#include "core/error.h"
#include "core/numeric.h"
#include "core/row.h"
#include "core/schema.h"
#include "runtime/deadletter.h"
#include "state/state_test.h"
#include "tm_test.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char err[1024];

/* t(id int, n numeric(8,2), label text, at timestamp, atz timestamptz, day date, ok bool,
 *   f float8, raw bytea, doc jsonb) */
static tm_schema_t *wide_schema(void)
{
    static const struct {
        const char *name;
        tm_type_t type;
    } cols[] = {
        {"id", TM_T_INT32},  {"n", TM_T_NUMERIC}, {"label", TM_T_TEXT}, {"at", TM_T_TIMESTAMP},
        {"atz", TM_T_TIMESTAMPTZ}, {"day", TM_T_DATE}, {"ok", TM_T_BOOL}, {"f", TM_T_FLOAT64},
        {"raw", TM_T_BYTES}, {"doc", TM_T_JSON},
    };
    int n = (int)(sizeof(cols) / sizeof(cols[0]));
    tm_schema_t *s = tm_schema_new(n);
    tm_schema_set_str(&s->source_name, "divs");
    tm_schema_set_str(&s->namespace, "public");
    tm_schema_set_str(&s->table, "divs");
    for (int i = 0; i < n; i++) {
        tm_schema_set_str(&s->cols[i].name, cols[i].name);
        s->cols[i].type = cols[i].type;
        s->cols[i].scale = cols[i].type == TM_T_NUMERIC ? 2 : 0;
        s->cols[i].key_index = i == 0 ? 0 : -1;
    }
    tm_schema_finish(s);
    return s;
}

static void set_var(tm_batch_t *b, tm_row_t *r, int i, const char *text, size_t len)
{
    tm_row_set_null(r, i, false);
    TM_REQUIRE(tm_batch_set_var(b, &r->vals[i], text, len) == 0);
}

/* id 7, n 12.30, a text with a quote, a newline and non-ASCII, 2024-03-05 06:07:08.5, … */
static tm_row_t *wide_row(tm_batch_t *b, const tm_schema_t *s, int id, bool nulls)
{
    tm_row_t *r = tm_batch_new_row(b, s);
    for (int i = 0; i < s->ncols; i++)
        tm_row_set_null(r, i, true);
    tm_row_set_null(r, 0, false);
    r->vals[0].u.i64 = id;
    if (nulls)
        return r;
    tm_row_set_null(r, 1, false);
    TM_REQUIRE(tm_numeric_parse(b, &r->vals[1], "12.30", 5) == 0);
    set_var(b, r, 2, "o'hara \"x\"\nnaïve", strlen("o'hara \"x\"\nnaïve"));
    /* 2024-03-05T06:07:08.5: 19787 days after 1970-01-01. */
    int64_t us = INT64_C(19787) * 86400000000 + (6 * 3600 + 7 * 60 + 8) * INT64_C(1000000) +
                 500000;
    tm_row_set_null(r, 3, false);
    r->vals[3].u.i64 = us;
    tm_row_set_null(r, 4, false);
    r->vals[4].u.i64 = us;
    tm_row_set_null(r, 5, false);
    r->vals[5].u.i64 = 19787;
    tm_row_set_null(r, 6, false);
    r->vals[6].u.b = true;
    tm_row_set_null(r, 7, false);
    r->vals[7].u.f64 = 0.125;
    set_var(b, r, 8, "\x01\xff", 2);
    set_var(b, r, 9, "{\"k\":[1,2]}", strlen("{\"k\":[1,2]}"));
    return r;
}

static json_t *read_lines(const char *path, int *n)
{
    json_t *arr = json_array();
    FILE *f = fopen(path, "r");
    *n = 0;
    if (f == NULL)
        return arr;
    char line[8192];
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t len = strlen(line);
        TM_CHECK(len > 0 && line[len - 1] == '\n');
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);
        TM_CHECK(j != NULL);
        if (j != NULL)
            json_array_append_new(arr, j);
        (*n)++;
    }
    fclose(f);
    return arr;
}

static void test_file_name_replaces_slashes(void)
{
    char name[128];
    tm_dead_letter_file_name(name, sizeof(name), "agg/out/1-3fa2", 3);
    TM_CHECK_STR(name, "agg_out_1-3fa2-3.jsonl");
    tm_dead_letter_file_name(name, sizeof(name), "calc/out/1", 0);
    TM_CHECK_STR(name, "calc_out_1-0.jsonl");
}

static void test_lines_hold_every_field(void)
{
    char *dir = tst_tmpdir();
    char dl_dir[600], path[700];
    snprintf(dl_dir, sizeof(dl_dir), "%s/dead-letter", dir);
    tm_dead_letter_t *dl = tm_dead_letter_new(dl_dir, "job1", "calc/out/1", 1);
    TM_REQUIRE(dl != NULL);
    snprintf(path, sizeof(path), "%s/calc_out_1-1.jsonl", dl_dir);
    TM_CHECK_STR(tm_dead_letter_path(dl), path);
    /* Nothing is created before the first rejected row. */
    struct stat sb;
    TM_CHECK(stat(dl_dir, &sb) != 0);
    TM_CHECK_INT(tm_dead_letter_flush(dl, err, sizeof(err)), 0);
    TM_CHECK(stat(dl_dir, &sb) != 0);

    tm_schema_t *s = wide_schema();
    tm_batch_t *b = tm_batch_new();
    tm_record_t *ins = tm_batch_add(b, s, TM_OP_CREATE);
    ins->after = wide_row(b, s, 7, false);
    tm_record_t *upd = tm_batch_add(b, s, TM_OP_UPDATE);
    upd->before = wide_row(b, s, 8, true);
    upd->after = wide_row(b, s, 8, false);
    TM_CHECK_INT(tm_dead_letter_write(dl, ins, "division by zero", 1700000000123), 0);
    TM_CHECK_INT(tm_dead_letter_write(dl, upd, "numeric field overflow", 1700000000456), 0);
    TM_CHECK_INT((int)tm_dead_letter_count(dl), 2);
    TM_CHECK_INT(tm_dead_letter_flush(dl, err, sizeof(err)), 0);

    int n;
    json_t *lines = read_lines(path, &n);
    TM_REQUIRE(n == 2);
    json_t *l0 = json_array_get(lines, 0), *l1 = json_array_get(lines, 1);
    TM_CHECK_INT((int)(json_integer_value(json_object_get(l0, "ts_ms")) - 1700000000000), 123);
    TM_CHECK_STR(json_string_value(json_object_get(l0, "job")), "job1");
    TM_CHECK_STR(json_string_value(json_object_get(l0, "operator")), "calc/out/1");
    TM_CHECK_INT((int)json_integer_value(json_object_get(l0, "subtask")), 1);
    TM_CHECK_STR(json_string_value(json_object_get(l0, "reason")), "division by zero");
    TM_CHECK_STR(json_string_value(json_object_get(l0, "op")), "c");
    TM_CHECK_STR(json_string_value(json_object_get(l0, "source")), "public.divs");
    TM_CHECK(json_is_null(json_object_get(l0, "before")));
    json_t *a = json_object_get(l0, "after");
    TM_REQUIRE(json_is_object(a));
    TM_CHECK_INT((int)json_integer_value(json_object_get(a, "id")), 7);
    /* Exact numerics keep their scale, as strings. */
    TM_CHECK_STR(json_string_value(json_object_get(a, "n")), "12.30");
    TM_CHECK_STR(json_string_value(json_object_get(a, "label")), "o'hara \"x\"\nnaïve");
    TM_CHECK_STR(json_string_value(json_object_get(a, "at")), "2024-03-05T06:07:08.5");
    TM_CHECK_STR(json_string_value(json_object_get(a, "atz")), "2024-03-05T06:07:08.5Z");
    TM_CHECK_STR(json_string_value(json_object_get(a, "day")), "2024-03-05");
    TM_CHECK(json_is_true(json_object_get(a, "ok")));
    TM_CHECK(json_real_value(json_object_get(a, "f")) == 0.125);
    TM_CHECK_STR(json_string_value(json_object_get(a, "raw")), "\\x01ff");
    json_t *doc = json_object_get(a, "doc");
    TM_CHECK(json_is_array(json_object_get(doc, "k")));
    /* The update: both images, NULLs as JSON null. */
    TM_CHECK_STR(json_string_value(json_object_get(l1, "op")), "u");
    TM_CHECK_STR(json_string_value(json_object_get(l1, "reason")), "numeric field overflow");
    json_t *bef = json_object_get(l1, "before");
    TM_CHECK_INT((int)json_integer_value(json_object_get(bef, "id")), 8);
    TM_CHECK(json_is_null(json_object_get(bef, "n")));
    TM_CHECK_STR(json_string_value(json_object_get(json_object_get(l1, "after"), "n")), "12.30");
    json_decref(lines);

    /* A second writer on the same file (a restart) appends. */
    dl = tm_dead_letter_free(dl);
    dl = tm_dead_letter_new(dl_dir, "job1", "calc/out/1", 1);
    TM_CHECK_INT(tm_dead_letter_write(dl, ins, "again", 1), 0);
    dl = tm_dead_letter_free(dl); /* free flushes what it buffered */
    lines = read_lines(path, &n);
    TM_CHECK_INT(n, 3);
    TM_CHECK_STR(json_string_value(json_object_get(json_array_get(lines, 2), "reason")), "again");
    json_decref(lines);

    tm_batch_unref(b);
    tm_schema_unref(s);
    tst_rmdir(dir);
}

static void test_io_error_is_sticky_and_names_the_file(void)
{
    char *dir = tst_tmpdir();
    char blocker[600];
    /* The dead-letter directory's place is taken by a regular file. */
    snprintf(blocker, sizeof(blocker), "%s/dead-letter", dir);
    FILE *f = fopen(blocker, "w");
    TM_REQUIRE(f != NULL);
    fclose(f);
    uint64_t errors_before = tm_errors_total(TM_ERRKIND_DEAD_LETTER);
    tm_dead_letter_t *dl = tm_dead_letter_new(blocker, "j", "agg/out/1-ab", 0);
    tm_schema_t *s = wide_schema();
    tm_batch_t *b = tm_batch_new();
    tm_record_t *ins = tm_batch_add(b, s, TM_OP_CREATE);
    ins->after = wide_row(b, s, 1, true);
    TM_CHECK_INT(tm_dead_letter_write(dl, ins, "division by zero", 1), TM_EIO);
    TM_CHECK_INT(tm_dead_letter_write(dl, ins, "division by zero", 1), TM_EIO);
    TM_CHECK_INT((int)tm_dead_letter_count(dl), 0);
    /* tidemark_errors_total{kind="dead_letter"}: once, the error being sticky. */
    TM_CHECK_INT(tm_errors_total(TM_ERRKIND_DEAD_LETTER) - errors_before, 1);
    err[0] = '\0';
    TM_CHECK_INT(tm_dead_letter_flush(dl, err, sizeof(err)), TM_EIO);
    TM_CHECK(strstr(err, "agg_out_1-ab-0.jsonl") != NULL);
    TM_CHECK(strstr(err, "agg/out/1-ab") != NULL);
    err[0] = '\0';
    TM_CHECK_INT(tm_dead_letter_error(dl, err, sizeof(err)), TM_EIO);
    TM_CHECK(strstr(err, blocker) != NULL);
    tm_dead_letter_free(dl);
    tm_batch_unref(b);
    tm_schema_unref(s);
    tst_rmdir(dir);
}

int main(void)
{
    TM_RUN(test_file_name_replaces_slashes);
    TM_RUN(test_lines_hold_every_field);
    TM_RUN(test_io_error_is_sticky_and_names_the_file);
    return tm_test_done();
}
