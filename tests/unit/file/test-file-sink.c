/*
 * test-file-sink.c — the file sink against hostile topics, many tables and
 * torn files (issue 9 items 7, 12, 13).
 *
 * Each test drives tm_connector_file directly (new, open, write, flush, and
 * with checkpoints precommit/commit) in a fresh directory under /tmp and
 * looks at the files it leaves.
 *
 * Thread: main only.
 */
#include "core/buf.h"
#include "core/error.h"
#include "core/options.h"
#include "core/row.h"
#include "core/schema.h"
#include "runtime/connector.h"
#include "tm_test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

extern const tm_connector_t tm_connector_file;

static char tmpdir[256];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tm-file-sink-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        abort();
}

static void rm_tree(const char *path)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", path);
}

/* A sink writing to <tmpdir>/out; extra options as "k", "v" pairs ending with NULL. */
static tm_sink_t *sink_open(bool checkpointing, ...)
{
    char path[512], err[512];
    snprintf(path, sizeof(path), "%s/out", tmpdir);
    tm_options_t *o = tm_options_new();
    tm_options_set(o, "path", path);
    tm_options_set(o, "schemas", "false");
    va_list ap;
    va_start(ap, checkpointing);
    const char *k;
    while ((k = va_arg(ap, const char *)) != NULL)
        tm_options_set(o, k, va_arg(ap, const char *));
    va_end(ap);
    if (tm_options_validate(o, tm_connector_file.sink_options, NULL, "test", err, sizeof(err)) !=
        0) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
    tm_sink_config_t cfg = {"out", o, NULL, tmpdir, checkpointing, "job", checkpointing ? 1000 : 0};
    tm_sink_t *s = NULL;
    int rc = tm_connector_file.sink_new(&s, &cfg, err, sizeof(err));
    if (rc == 0)
        rc = tm_connector_file.sink_open(s, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
    /* The file sink copies what it needs from its options when it is made. */
    tm_options_free(o);
    return s;
}

static tm_schema_t *table_schema(const char *table, size_t len)
{
    tm_schema_t *s = tm_schema_new(1);
    tm_schema_set_str(&s->source_name, "p");
    tm_schema_set_str(&s->db, "d");
    tm_schema_set_str(&s->namespace, "s");
    s->table = strndup(table, len);
    tm_schema_set_str(&s->cols[0].name, "v");
    s->cols[0].type = TM_T_INT64;
    s->cols[0].nullable = false;
    tm_schema_finish(s);
    return s;
}

/* Adds one insert of v into `table` to the batch. */
static void add_row(tm_batch_t *b, tm_schema_t *s, int64_t v)
{
    tm_record_t *r = tm_batch_add(b, s, TM_OP_CREATE);
    r->after = tm_batch_new_row(b, s);
    tm_row_set_null(r->after, 0, false);
    r->after->vals[0].u.i64 = v;
}

static int write_batch(tm_sink_t *s, tm_batch_t *b, char *err, size_t errsz)
{
    int rc = tm_connector_file.sink_write(s, b, err, errsz);
    if (rc == 0)
        rc = tm_connector_file.sink_flush(s, err, errsz);
    return rc;
}

/* Reads a whole file (static buffer); "" if missing. */
static const char *slurp(const char *dir, const char *name)
{
    static char buf[1 << 16];
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    buf[0] = '\0';
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return buf;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

/* Every line of the file is a JSON object whose after.v is listed in order in want[]. */
static bool lines_are(const char *text, const int64_t *want, int nwant)
{
    int i = 0;
    for (const char *p = text; *p; i++) {
        const char *nl = strchr(p, '\n');
        if (nl == NULL || i >= nwant)
            return false;
        json_error_t e;
        json_t *j = json_loadb(p, (size_t)(nl - p), 0, &e);
        json_t *v = json_object_get(json_object_get(j, "after"), "v");
        bool ok = json_is_integer(v) && json_integer_value(v) == want[i];
        json_decref(j);
        if (!ok)
            return false;
        p = nl + 1;
    }
    return i == nwant;
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    if (d != NULL)
        closedir(d);
    return n;
}

/* Item 12: no table name, however hostile, stops the sink or leaves its directory. */
static void test_hostile_topics(void)
{
    make_tmpdir();
    char longname[5000];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    char longname2[5000];
    memcpy(longname2, longname, sizeof(longname2));
    longname2[4000] = 'y'; /* same 200-byte prefix, another table */
    static const struct {
        const char *table;
        const char *file; /* expected name in out/, NULL: check by count only */
    } cases[] = {
        /*
         * Debezium's topic names first: what Kafka refuses becomes '_' (one
         * per UTF-16 unit, one per ill-formed byte), a blank part is left out.
         */
        {"../../etc/x", "p.s..._.._etc_x.jsonl"},
        {"a/b", "p.s.a_b.jsonl"},
        {"line\nlevel=error", "p.s.line_level_error.jsonl"},
        {"caf\xe9", "p.s.caf_.jsonl"},
        {"\xc3\xa9t\xc3\xa9", "p.s._t_.jsonl"},
        {"caf\xf0\x9f\x8c\x8a", "p.s.caf__.jsonl"},
        {"100%", "p.s.100_.jsonl"},
        {"plain_table", "p.s.plain_table.jsonl"},
        {"", "p.s.jsonl"},
    };
    int n = (int)(sizeof(cases) / sizeof(cases[0]));
    tm_sink_t *s = sink_open(false, NULL);
    tm_batch_t *b = tm_batch_new();
    tm_schema_t *schemas[16];
    for (int i = 0; i < n; i++) {
        schemas[i] = table_schema(cases[i].table, strlen(cases[i].table));
        add_row(b, schemas[i], i);
    }
    schemas[n] = table_schema(longname, strlen(longname));
    add_row(b, schemas[n], 100);
    schemas[n + 1] = table_schema(longname2, strlen(longname2));
    add_row(b, schemas[n + 1], 101);
    char err[512] = "";
    int rc = write_batch(s, b, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    TM_CHECK_INT(rc, 0);
    char out[512];
    snprintf(out, sizeof(out), "%s/out", tmpdir);
    for (int i = 0; i < n; i++) {
        int64_t want = i;
        TM_CHECK(lines_are(slurp(out, cases[i].file), &want, 1));
    }
    /*
     * Two long names: Debezium cuts topics at 249 characters, so both land in
     * one topic, whose file name is cut below NAME_MAX; nothing outside out/.
     */
    TM_CHECK_INT(count_files(out), n + 1);
    TM_CHECK_INT(count_files(tmpdir), 1);
    DIR *d = opendir(out);
    struct dirent *e;
    int longs = 0;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, "%~") != NULL) {
            longs++;
            TM_CHECK(strlen(e->d_name) <= 255 - 26);
        }
    closedir(d);
    TM_CHECK_INT(longs, 1);
    tm_connector_file.sink_free(s);
    tm_batch_unref(b);
    for (int i = 0; i < n + 2; i++)
        tm_schema_unref(schemas[i]);
    rm_tree(tmpdir);
}

/* Item 13: more tables than descriptors; every file still gets every line. */
static void test_many_tables(bool checkpointing, const char *max_open)
{
    enum { NT = 400, ROUNDS = 3 };
    make_tmpdir();
    struct rlimit old, low;
    getrlimit(RLIMIT_NOFILE, &old);
    low = old;
    low.rlim_cur = 100;
    TM_REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);
    tm_sink_t *s = max_open ? sink_open(checkpointing, "max_open_files", max_open, NULL)
                            : sink_open(checkpointing, NULL);
    tm_schema_t **schemas = calloc(NT, sizeof(*schemas));
    for (int i = 0; i < NT; i++) {
        char name[32];
        snprintf(name, sizeof(name), "t%03d", i);
        schemas[i] = table_schema(name, strlen(name));
    }
    char err[512] = "";
    int rc = 0;
    for (int r = 0; r < ROUNDS && rc == 0; r++) {
        /* Records interleave tables, so each batch touches every file. */
        for (int base = 0; base < NT && rc == 0; base += 200) {
            tm_batch_t *b = tm_batch_new();
            for (int i = base; i < base + 200; i++)
                add_row(b, schemas[i], r);
            rc = tm_connector_file.sink_write(s, b, err, sizeof(err));
            tm_batch_unref(b);
        }
        if (rc == 0 && checkpointing) {
            tm_buf_t h;
            tm_buf_init(&h);
            rc = tm_connector_file.sink_precommit(s, (uint64_t)r + 1, &h, err, sizeof(err));
            if (rc == 0)
                rc = tm_connector_file.sink_commit(s, (uint64_t)r + 1, NULL, err, sizeof(err));
            tm_buf_release(&h);
        } else if (rc == 0) {
            rc = tm_connector_file.sink_flush(s, err, sizeof(err));
        }
    }
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    TM_CHECK_INT(rc, 0);
    setrlimit(RLIMIT_NOFILE, &old);
    char out[512];
    snprintf(out, sizeof(out), "%s/out", tmpdir);
    static const int64_t want[ROUNDS] = {0, 1, 2};
    int good = 0;
    for (int i = 0; i < NT; i++) {
        char name[64];
        snprintf(name, sizeof(name), "p.s.t%03d.jsonl", i);
        good += lines_are(slurp(out, name), want, ROUNDS);
    }
    TM_CHECK_INT(good, NT);
    tm_connector_file.sink_free(s);
    for (int i = 0; i < NT; i++)
        tm_schema_unref(schemas[i]);
    free(schemas);
    rm_tree(tmpdir);
}

static void test_many_tables_append(void)
{
    test_many_tables(false, NULL);
}

static void test_many_tables_small_pool(void)
{
    test_many_tables(false, "7");
}

static void test_many_tables_checkpoints(void)
{
    test_many_tables(true, "5");
}

/* Item 7: a torn last line is cut before the sink appends. */
static void test_torn_last_line(void)
{
    static const struct {
        const char *before, *after_cut;
    } cases[] = {
        {"{\"after\":{\"v\":7}}\n{\"after\":{\"v", "{\"after\":{\"v\":7}}\n"},
        {"{\"after\":{\"v\":7", ""},
        {"{\"after\":{\"v\":7}}\n", "{\"after\":{\"v\":7}}\n"},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        make_tmpdir();
        char out[512], path[600];
        snprintf(out, sizeof(out), "%s/out", tmpdir);
        mkdir(out, 0755);
        /* A long torn tail: more than one 4 KiB block to scan back over. */
        tm_buf_t text;
        tm_buf_init(&text);
        tm_buf_puts(&text, cases[k].before);
        if (k == 0)
            for (int i = 0; i < 10000; i++)
                tm_buf_putc(&text, '9');
        snprintf(path, sizeof(path), "%s/p.s.t.jsonl", out);
        FILE *f = fopen(path, "w");
        fwrite(text.data, 1, text.len, f);
        fclose(f);
        tm_buf_release(&text);

        tm_sink_t *s = sink_open(false, NULL);
        tm_schema_t *sc = table_schema("t", 1);
        tm_batch_t *b = tm_batch_new();
        add_row(b, sc, 8);
        char err[512] = "";
        TM_CHECK_INT(write_batch(s, b, err, sizeof(err)), 0);
        char want[256];
        snprintf(want, sizeof(want), "%s{\"before\":null,\"after\":{\"v\":8}", cases[k].after_cut);
        const char *got = slurp(out, "p.s.t.jsonl");
        TM_CHECK(strncmp(got, want, strlen(want)) == 0);
        int64_t vals[2] = {7, 8};
        TM_CHECK(lines_are(got, cases[k].after_cut[0] ? vals : vals + 1,
                           cases[k].after_cut[0] ? 2 : 1));
        tm_connector_file.sink_free(s);
        tm_batch_unref(b);
        tm_schema_unref(sc);
        rm_tree(tmpdir);
    }
}

/* With checkpoints: a torn line left by a run without them is cut at the first pre-commit. */
static void test_torn_last_line_checkpoints(void)
{
    make_tmpdir();
    char out[512], path[600];
    snprintf(out, sizeof(out), "%s/out", tmpdir);
    mkdir(out, 0755);
    snprintf(path, sizeof(path), "%s/p.s.t.jsonl", out);
    FILE *f = fopen(path, "w");
    fputs("{\"after\":{\"v\":7}}\n{\"after\":{\"v\":", f);
    fclose(f);
    tm_sink_t *s = sink_open(true, NULL);
    char err[512] = "";
    TM_CHECK_INT(tm_connector_file.sink_recover(s, 0, NULL, err, sizeof(err)), 0);
    tm_schema_t *sc = table_schema("t", 1);
    tm_batch_t *b = tm_batch_new();
    add_row(b, sc, 8);
    tm_buf_t h;
    tm_buf_init(&h);
    TM_CHECK_INT(tm_connector_file.sink_write(s, b, err, sizeof(err)), 0);
    TM_CHECK_INT(tm_connector_file.sink_precommit(s, 1, &h, err, sizeof(err)), 0);
    TM_CHECK_INT(tm_connector_file.sink_commit(s, 1, NULL, err, sizeof(err)), 0);
    int64_t vals[2] = {7, 8};
    TM_CHECK(lines_are(slurp(out, "p.s.t.jsonl"), vals, 2));
    tm_buf_release(&h);
    tm_connector_file.sink_free(s);
    tm_batch_unref(b);
    tm_schema_unref(sc);
    rm_tree(tmpdir);
}

/* ---- issue 10: what Debezium writes for truncates, key changes and deletes ---- */

/* A one-column table keyed on v. */
static tm_schema_t *keyed_schema(void)
{
    tm_schema_t *s = table_schema("k", 1);
    s->cols[0].key_index = 0;
    tm_schema_finish(s);
    return s;
}

static tm_row_t *row_of(tm_batch_t *b, tm_schema_t *s, int64_t v)
{
    tm_row_t *r = tm_batch_new_row(b, s);
    tm_row_set_null(r, 0, false);
    r->vals[0].u.i64 = v;
    return r;
}

/* insert 1, truncate, update 1 -> 2 (a key change), delete 2. */
static tm_batch_t *key_change_batch(tm_schema_t *s)
{
    tm_batch_t *b = tm_batch_new();
    tm_record_t *r = tm_batch_add(b, s, TM_OP_CREATE);
    r->after = row_of(b, s, 1);
    tm_batch_add(b, s, TM_OP_TRUNCATE);
    r = tm_batch_add(b, s, TM_OP_UPDATE);
    r->before = row_of(b, s, 1);
    r->after = row_of(b, s, 2);
    r = tm_batch_add(b, s, TM_OP_DELETE);
    r->before = row_of(b, s, 2);
    return b;
}

/*
 * Each line's summary: the op and the key (v of before for d, after
 * otherwise), "T<key>" for a tombstone, or "T" for a bare null line.
 */
static void summarize(const char *text, bool with_key, char *out, size_t outlen)
{
    size_t n = 0;
    out[0] = '\0';
    for (const char *p = text; *p && n + 16 < outlen;) {
        const char *nl = strchr(p, '\n');
        if (nl == NULL)
            break;
        json_error_t e;
        json_t *j = json_loadb(p, (size_t)(nl - p), JSON_DECODE_ANY, &e);
        json_t *val = with_key ? json_object_get(j, "value") : j;
        json_t *key = with_key ? json_object_get(json_object_get(j, "key"), "v") : NULL;
        if (json_is_null(val)) {
            n += (size_t)snprintf(out + n, outlen - n, "%sT%lld", n ? " " : "",
                                  (long long)json_integer_value(key));
        } else {
            const char *op = json_string_value(json_object_get(val, "op"));
            json_t *row = json_object_get(val, op && op[0] == 'd' ? "before" : "after");
            n += (size_t)snprintf(out + n, outlen - n, "%s%s%lld", n ? " " : "", op ? op : "?",
                                  (long long)json_integer_value(json_object_get(row, "v")));
            if (with_key && json_integer_value(key) !=
                                json_integer_value(json_object_get(row, "v")) &&
                op && op[0] != 't')
                n += (size_t)snprintf(out + n, outlen - n, "!key");
        }
        json_decref(j);
        p = nl + 1;
    }
}

static void check_key_change(const char *want, bool with_key, ...)
{
    make_tmpdir();
    char path[512], err[512] = "", got[256];
    snprintf(path, sizeof(path), "%s/out", tmpdir);
    const char *kv[8] = {NULL};
    va_list ap;
    va_start(ap, with_key);
    for (int i = 0; i < 6; i++)
        if ((kv[i] = va_arg(ap, const char *)) == NULL)
            break;
    va_end(ap);
    tm_sink_t *s = sink_open(false, "include_key", with_key ? "true" : "false", kv[0], kv[1],
                             kv[2], kv[3], kv[4], kv[5], NULL);
    tm_schema_t *sc = keyed_schema();
    tm_batch_t *b = key_change_batch(sc);
    TM_CHECK_INT(write_batch(s, b, err, sizeof(err)), 0);
    summarize(slurp(path, "p.s.k.jsonl"), with_key, got, sizeof(got));
    if (strcmp(got, want) != 0)
        fprintf(stderr, "want '%s', got '%s'\n", want, got);
    TM_CHECK(strcmp(got, want) == 0);
    tm_connector_file.sink_free(s);
    tm_batch_unref(b);
    tm_schema_unref(sc);
    rm_tree(tmpdir);
}

/*
 * Rows 3, 4 and 12: truncates are skipped unless skipped_operations says
 * otherwise, a key change is a delete and a create, and tombstones follow
 * deletes only when asked for.
 */
static void test_debezium_ops(void)
{
    /* Defaults: no truncate, no tombstones, the key change split. */
    check_key_change("c1 d1 c2 d2", false, NULL);
    check_key_change("c1 d1 c2 d2", true, NULL);
    check_key_change("c1 t0 d1 c2 d2", false, "skipped_operations", "none", NULL);
    check_key_change("c1 d1 T1 c2 d2 T2", true, "tombstones_on_delete", "true", NULL);
    check_key_change("c1 d1 T0 c2 d2 T0", false, "tombstones_on_delete", "true", NULL);
    /* Skipping u drops the key-changing update whole, as Debezium does. */
    check_key_change("c1 d2", false, "skipped_operations", "u, t", "tombstones_on_delete",
                     "false", NULL);
    check_key_change("d1 c2 d2", false, "skipped_operations", "c,t", NULL);
    check_key_change("c1 t0 d1 c2", true, "skipped_operations", "D", NULL);

    /* A bad list is refused when the sink is made, naming the option. */
    char path[512], err[512] = "";
    make_tmpdir();
    snprintf(path, sizeof(path), "%s/out", tmpdir);
    tm_options_t *o = tm_options_new();
    tm_options_set(o, "path", path);
    tm_options_set(o, "skipped_operations", "c,x");
    TM_CHECK_INT(tm_options_validate(o, tm_connector_file.sink_options, NULL, "t", err,
                                     sizeof(err)),
                 0);
    tm_sink_config_t cfg = {"out", o, NULL, tmpdir, false, "job", 0};
    tm_sink_t *s = NULL;
    TM_CHECK(tm_connector_file.sink_new(&s, &cfg, err, sizeof(err)) == TM_ECONFIG);
    TM_CHECK(strstr(err, "skipped_operations") != NULL && strstr(err, "'x'") != NULL);
    TM_CHECK(s == NULL);
    tm_options_free(o);
    rm_tree(tmpdir);
}

/* An insert of v into s at (xid, lsn); tx_lsn and commit_lsn as a PostgreSQL source sets them. */
static tm_record_t *add_tx_row(tm_batch_t *b, tm_schema_t *s, tm_op_t op, int64_t v, uint32_t xid,
                               uint64_t lsn, uint64_t tx_lsn, uint64_t commit_lsn)
{
    tm_record_t *r = tm_batch_add(b, s, op);
    if (op != TM_OP_TRUNCATE && op != TM_OP_MESSAGE) {
        r->after = tm_batch_new_row(b, s);
        tm_row_set_null(r->after, 0, false);
        r->after->vals[0].u.i64 = v;
    }
    r->src.kind = TM_SOURCE_POSTGRES;
    r->src.u.pg.xid = xid;
    r->src.pos = lsn;
    r->src.u.pg.tx_lsn = tx_lsn;
    r->src.u.pg.commit_lsn = commit_lsn;
    r->src.ts_us = 1700000000123456;
    return r;
}

/* The n-th line (0-based) of text, parsed; NULL past the end. */
static json_t *line_at(const char *text, int n)
{
    const char *p = text;
    for (int i = 0; i < n && p != NULL; i++)
        if ((p = strchr(p, '\n')) != NULL)
            p++;
    if (p == NULL || *p == '\0')
        return NULL;
    json_error_t e;
    return json_loadb(p, strcspn(p, "\n"), 0, &e);
}

static bool json_is(json_t *j, const char *want)
{
    char *got = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    bool ok = got != NULL && strcmp(got, want) == 0;
    if (!ok)
        fprintf(stderr, "want %s\n got %s\n", want, got ? got : "(null)");
    free(got);
    return ok;
}

/*
 * provide_transaction_metadata: BEGIN/END lines in p.transaction, in
 * Debezium 3.6's shapes (tests/compat/test_txmeta.py compares with the real
 * one), ends found three ways: the next transaction's commit_lsn, a
 * non-transactional message's tx_lsn, and a batch's ack_token.
 */
static void test_transaction_metadata(void)
{
    make_tmpdir();
    char out[512], err[512] = "";
    snprintf(out, sizeof(out), "%s/out", tmpdir);
    tm_sink_t *s = sink_open(false, "provide_transaction_metadata", "true", NULL);
    tm_schema_t *a = table_schema("a", 1), *bt = table_schema("b", 1);
    tm_schema_t *msg = tm_schema_new(0);
    tm_schema_set_str(&msg->source_name, "p");
    tm_batch_t *b = tm_batch_new();
    /* 700: a, b, a, a message; its BEGIN was at 100. */
    add_tx_row(b, a, TM_OP_CREATE, 1, 700, 110, 100, 90);
    add_tx_row(b, bt, TM_OP_CREATE, 2, 700, 120, 100, 90);
    add_tx_row(b, a, TM_OP_CREATE, 3, 700, 130, 100, 90);
    tm_record_t *m = add_tx_row(b, msg, TM_OP_MESSAGE, 0, 700, 140, 100, 90);
    m->msg_prefix = "x";
    m->msg_content = (const uint8_t *)"y";
    m->msg_len = 1;
    /* 701 (700 ended at 200): a truncate only, skipped; the batch's token ends it at 300. */
    add_tx_row(b, a, TM_OP_TRUNCATE, 0, 701, 210, 200, 200);
    b->ack_token = 300;
    TM_CHECK_INT(write_batch(s, b, err, sizeof(err)), 0);
    tm_batch_unref(b);
    /* 702, then a non-transactional message that says 702 ended at 400. */
    b = tm_batch_new();
    add_tx_row(b, bt, TM_OP_CREATE, 4, 702, 310, 300, 300);
    add_tx_row(b, msg, TM_OP_MESSAGE, 0, 0, 410, 400, 410);
    TM_CHECK_INT(write_batch(s, b, err, sizeof(err)), 0);
    tm_batch_unref(b);

    const char *tx = slurp(out, "p.transaction.jsonl");
    static const char *const want[] = {
        "{\"status\":\"BEGIN\",\"id\":\"700:100\",\"event_count\":null,\"data_collections\":null,"
        "\"ts_ms\":1700000000123}",
        /* Debezium's HashMap order: s.b's bucket (6) before s.a's (7), each message its own. */
        "{\"status\":\"END\",\"id\":\"700:200\",\"event_count\":4,\"data_collections\":["
        "{\"data_collection\":\"s.b\",\"event_count\":1},"
        "{\"data_collection\":\"s.a\",\"event_count\":2}],\"ts_ms\":1700000000123}",
        "{\"status\":\"BEGIN\",\"id\":\"701:200\",\"event_count\":null,\"data_collections\":null,"
        "\"ts_ms\":1700000000123}",
        "{\"status\":\"END\",\"id\":\"701:300\",\"event_count\":0,\"data_collections\":[],"
        "\"ts_ms\":1700000000123}",
        "{\"status\":\"BEGIN\",\"id\":\"702:300\",\"event_count\":null,\"data_collections\":null,"
        "\"ts_ms\":1700000000123}",
        "{\"status\":\"END\",\"id\":\"702:400\",\"event_count\":1,\"data_collections\":["
        "{\"data_collection\":\"s.b\",\"event_count\":1}],\"ts_ms\":1700000000123}",
    };
    for (int i = 0; i < 6; i++) {
        json_t *j = line_at(tx, i);
        if (i == 1) {
            /* The message's collection: Debezium's class name and a hash; take it out. */
            json_t *dcs = json_object_get(j, "data_collections");
            size_t k;
            json_t *e;
            int msgs = 0;
            json_array_foreach(dcs, k, e)
            {
                const char *n = json_string_value(json_object_get(e, "data_collection"));
                if (n != NULL && strstr(n, "LogicalDecodingMessageMonitor$LogicalDecodingMessageId@")) {
                    msgs++;
                    json_array_remove(dcs, k);
                    break;
                }
            }
            TM_CHECK_INT(msgs, 1);
        }
        TM_CHECK(j != NULL && json_is(j, want[i]));
        json_decref(j);
    }
    TM_CHECK(line_at(tx, 6) == NULL);
    /* The transaction block of each event: the event's own LSN, the orders. */
    const char *ta = slurp(out, "p.s.a.jsonl");
    json_t *j = line_at(ta, 1);
    TM_CHECK(json_is(json_object_get(j, "transaction"),
                     "{\"id\":\"700:130\",\"total_order\":3,\"data_collection_order\":2}"));
    json_decref(j);
    const char *tb = slurp(out, "p.s.b.jsonl");
    j = line_at(tb, 1);
    TM_CHECK(json_is(json_object_get(j, "transaction"),
                     "{\"id\":\"702:310\",\"total_order\":1,\"data_collection_order\":1}"));
    json_decref(j);
    const char *tm = slurp(out, "p.message.jsonl");
    j = line_at(tm, 0);
    TM_CHECK(json_is(json_object_get(j, "transaction"),
                     "{\"id\":\"700:140\",\"total_order\":4,\"data_collection_order\":1}"));
    json_decref(j);
    j = line_at(tm, 1);
    TM_CHECK(json_is(json_object_get(j, "transaction"), "null"));
    json_decref(j);
    tm_connector_file.sink_free(s);

    /* Off by default: no transaction topic, "transaction":null. */
    rm_tree(tmpdir);
    make_tmpdir();
    snprintf(out, sizeof(out), "%s/out", tmpdir);
    s = sink_open(false, NULL);
    b = tm_batch_new();
    add_tx_row(b, a, TM_OP_CREATE, 1, 700, 110, 100, 90);
    b->ack_token = 300;
    TM_CHECK_INT(write_batch(s, b, err, sizeof(err)), 0);
    TM_CHECK(slurp(out, "p.transaction.jsonl")[0] == '\0');
    j = line_at(slurp(out, "p.s.a.jsonl"), 0);
    TM_CHECK(json_is(json_object_get(j, "transaction"), "null"));
    json_decref(j);
    tm_connector_file.sink_free(s);
    tm_batch_unref(b);
    tm_schema_unref(a);
    tm_schema_unref(bt);
    tm_schema_unref(msg);
    rm_tree(tmpdir);
}

/* topic_prefix and topic_delimiter name every topic; heartbeats come from sink_poll. */
static void test_topic_prefix_and_heartbeats(void)
{
    make_tmpdir();
    char out[512], err[512] = "";
    snprintf(out, sizeof(out), "%s/out", tmpdir);
    tm_sink_t *s = sink_open(false, "topic_prefix", "shop", "topic_delimiter", "_",
                             "heartbeat_interval_ms", "50", "include_key", "true", NULL);
    tm_schema_t *a = table_schema("we ird", 6);
    tm_batch_t *b = tm_batch_new();
    add_row(b, a, 7);
    TM_CHECK_INT(write_batch(s, b, err, sizeof(err)), 0);
    int64_t seven = 7;
    json_t *j = line_at(slurp(out, "shop_s_we_ird.jsonl"), 0);
    TM_CHECK(json_integer_value(json_object_get(
                 json_object_get(json_object_get(j, "value"), "after"), "v")) == seven);
    json_decref(j);
    /* The first period starts with the first call; after it, one heartbeat per period. */
    TM_CHECK_INT(tm_connector_file.sink_poll(s, err, sizeof(err)), 0);
    usleep(80 * 1000);
    TM_CHECK_INT(tm_connector_file.sink_poll(s, err, sizeof(err)), 0);
    TM_CHECK_INT(tm_connector_file.sink_poll(s, err, sizeof(err)), 0);
    const char *hb = slurp(out, "__debezium-heartbeat_shop.jsonl");
    j = line_at(hb, 0);
    TM_CHECK(j != NULL);
    TM_CHECK(json_is(json_object_get(j, "key"), "{\"serverName\":\"shop\"}"));
    json_t *ts = json_object_get(json_object_get(j, "value"), "ts_ms");
    TM_CHECK(json_is_integer(ts) && json_integer_value(ts) > 1700000000000);
    TM_CHECK(json_object_size(json_object_get(j, "value")) == 1);
    json_decref(j);
    TM_CHECK(line_at(hb, 1) == NULL);
    tm_connector_file.sink_free(s);
    rm_tree(tmpdir);

    /* Off by default (heartbeat.interval.ms = 0); the prefix is the source's name. */
    make_tmpdir();
    snprintf(out, sizeof(out), "%s/out", tmpdir);
    s = sink_open(false, NULL);
    TM_CHECK_INT(write_batch(s, b, err, sizeof(err)), 0);
    TM_CHECK_INT(tm_connector_file.sink_poll(s, err, sizeof(err)), 0);
    usleep(20 * 1000);
    TM_CHECK_INT(tm_connector_file.sink_poll(s, err, sizeof(err)), 0);
    TM_CHECK_INT(count_files(out), 1);
    TM_CHECK(lines_are(slurp(out, "p.s.we_ird.jsonl"), &seven, 1));
    tm_connector_file.sink_free(s);
    tm_batch_unref(b);
    tm_schema_unref(a);
    rm_tree(tmpdir);
}

int main(void)
{
    TM_RUN(test_hostile_topics);
    TM_RUN(test_many_tables_append);
    TM_RUN(test_many_tables_small_pool);
    TM_RUN(test_many_tables_checkpoints);
    TM_RUN(test_torn_last_line);
    TM_RUN(test_torn_last_line_checkpoints);
    TM_RUN(test_debezium_ops);
    TM_RUN(test_transaction_metadata);
    TM_RUN(test_topic_prefix_and_heartbeats);
    return tm_test_done();
}
