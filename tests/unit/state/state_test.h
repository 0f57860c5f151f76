/*
 * state_test.h — helpers shared by the state-layer unit tests: temporary
 * directories, a settable clock, a small table schema, and a dump of a
 * store's column family for comparing states.
 */
#ifndef TM_STATE_TEST_H
#define TM_STATE_TEST_H

#include "core/buf.h"
#include "core/error.h"
#include "core/row.h"
#include "core/schema.h"
#include "state/store.h"
#include "tm_test.h"

#include <dirent.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


/* A fresh directory under $TMPDIR (or /tmp); removed by tst_rmdir(). */
static inline char *tst_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof(tmpl), "%s/tm-state-XXXXXX", base && *base ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static inline void tst_rmtree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *de;
        while (d != NULL && (de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            char *child = NULL;
            if (asprintf(&child, "%s/%s", path, de->d_name) < 0)
                continue;
            tst_rmtree(child);
            free(child);
        }
        if (d != NULL)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static inline void tst_rmdir(char *dir)
{
    if (dir != NULL)
        tst_rmtree(dir);
    free(dir);
}

static inline const char *tst_path(char *buf, size_t n, const char *dir, const char *name)
{
    snprintf(buf, n, "%s/%s", dir, name);
    return buf;
}

/* A clock the test moves by hand; thread-safe because compactions read it. */
static _Atomic int64_t tst_clock_now = 1700000000000000LL;

static inline int64_t tst_clock(void *arg)
{
    (void)arg;
    return atomic_load(&tst_clock_now);
}

static inline tm_store_opts_t tst_opts(int64_t ttl_us)
{
    tm_store_opts_t o = {0};
    o.state_memory = (size_t)32 << 20;
    o.state_ttl_us = ttl_us;
    o.clock = tst_clock;
    return o;
}

static int tst_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A copy of `text` with its lines sorted (order-free comparison of outputs). */
static inline char *tst_sort_lines(const char *text)
{
    char *copy = strdup(text);
    size_t n = 0, cap = 16;
    char **lines = malloc(cap * sizeof(*lines));
    for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (n == cap)
            lines = realloc(lines, (cap *= 2) * sizeof(*lines));
        lines[n++] = l;
    }
    qsort(lines, n, sizeof(*lines), tst_cmp_str);
    size_t len = strlen(text) + 2;
    char *out = calloc(1, len), *at = out;
    for (size_t i = 0; i < n; i++)
        at += sprintf(at, "%s\n", lines[i]);
    free(lines);
    free(copy);
    return out;
}

static inline void tst_col(tm_schema_t *s, int i, const char *name, tm_type_t type, int key)
{
    tm_schema_set_str(&s->cols[i].name, name);
    s->cols[i].type = type;
    s->cols[i].key_index = (int16_t)key;
}

/* public.items(id int64 key, name text, price numeric, body text): the upsert tests' table. */
static inline tm_schema_t *tst_items_schema(void)
{
    tm_schema_t *s = tm_schema_new(4);
    tm_schema_set_str(&s->source_name, "shop");
    tm_schema_set_str(&s->db, "shopdb");
    tm_schema_set_str(&s->namespace, "public");
    tm_schema_set_str(&s->table, "items");
    tst_col(s, 0, "id", TM_T_INT64, 0);
    tst_col(s, 1, "name", TM_T_TEXT, -1);
    tst_col(s, 2, "price", TM_T_NUMERIC, -1);
    tst_col(s, 3, "body", TM_T_TEXT, -1);
    tm_schema_finish(s);
    s->version = 1;
    return s;
}

/* Appends one "key=value@ts\n" line per live entry of cf over all key groups. */
static inline void tst_dump_cf(tm_store_t *store, const char *uid, tm_buf_t *out)
{
    tm_store_cf_t *cf = tm_store_cf_find(store, uid);
    if (cf == NULL)
        return;
    tm_store_iter_t *it;
    if (tm_store_iter_new(store, cf, 0, tm_store_max_parallelism(store) - 1, NULL, 0, &it) != 0)
        return;
    tm_store_entry_t e;
    while (tm_store_iter_next(it, &e, NULL, 0) == 1) {
        tm_buf_appendf(out, "%d:", e.kg);
        for (size_t i = 0; i < e.klen; i++)
            tm_buf_appendf(out, "%02x", e.key[i]);
        tm_buf_puts(out, "=");
        for (size_t i = 0; i < e.vlen; i++)
            tm_buf_appendf(out, "%02x", e.val[i]);
        tm_buf_appendf(out, "@%lld\n", (long long)e.ts_us);
    }
    tm_store_iter_free(it);
}

/* Sorted lines of the dumps of every store, so layouts with different workers compare equal. */
static inline int tst_cmp_lines(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static inline char *tst_dump_all(tm_store_t *const *stores, int n, const char *uid)
{
    tm_buf_t all;
    tm_buf_init(&all);
    for (int i = 0; i < n; i++)
        tst_dump_cf(stores[i], uid, &all);
    tm_buf_putc(&all, '\0');
    size_t nl = 0;
    for (size_t i = 0; i < all.len; i++)
        nl += all.data[i] == '\n';
    char **lines = calloc(nl + 1, sizeof(char *));
    size_t k = 0;
    for (char *p = all.data, *q; (q = strchr(p, '\n')) != NULL; p = q + 1) {
        *q = '\0';
        lines[k++] = p;
    }
    qsort(lines, k, sizeof(char *), tst_cmp_lines);
    tm_buf_t out;
    tm_buf_init(&out);
    for (size_t i = 0; i < k; i++) {
        tm_buf_puts(&out, lines[i]);
        tm_buf_putc(&out, '\n');
    }
    tm_buf_putc(&out, '\0');
    free(lines);
    tm_buf_release(&all);
    return out.data;
}

#endif
