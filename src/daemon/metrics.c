/*
 * metrics.c — the /metrics exposition from one table (see metrics.h).
 *
 * Names follow Prometheus' conventions with base units: _total for counters,
 * _seconds and _bytes for units; every name starts with tidemark_.
 * docs/operations.md, "Metrics reference", documents each family, and
 * tests/unit/daemon/metrics_docs.c keeps the two in step.
 *
 * Thread: the admin API's.
 */
#include "daemon/metrics.h"
#include "core/errcount.h"
#include "runtime/graph.h"
#include "state/store.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* ---- writing samples ---- */

/* A label value, escaped for the text format. */
static void put_label(tm_buf_t *out, const char *v)
{
    for (const char *p = v ? v : ""; *p; p++) {
        if (*p == '\\' || *p == '"')
            tm_buf_putc(out, '\\');
        if (*p == '\n') {
            tm_buf_puts(out, "\\n");
            continue;
        }
        tm_buf_putc(out, *p);
    }
}

/* name{k1="v1",k2="v2"} — labels as NULL-terminated (key, value) pairs. */
static void put_name(tm_buf_t *out, const char *name, const char *suffix, const char *const *kv)
{
    tm_buf_puts(out, name);
    if (suffix != NULL)
        tm_buf_puts(out, suffix);
    if (kv == NULL || kv[0] == NULL)
        return;
    tm_buf_putc(out, '{');
    for (int i = 0; kv[i] != NULL; i += 2) {
        tm_buf_appendf(out, "%s%s=\"", i ? "," : "", kv[i]);
        put_label(out, kv[i + 1]);
        tm_buf_putc(out, '"');
    }
    tm_buf_putc(out, '}');
}

static void sample_u(tm_buf_t *out, const tm_metric_family_t *f, const char *const *kv, uint64_t v)
{
    put_name(out, f->name, NULL, kv);
    tm_buf_appendf(out, " %" PRIu64 "\n", v);
}

static void sample_i(tm_buf_t *out, const tm_metric_family_t *f, const char *const *kv, int64_t v)
{
    put_name(out, f->name, NULL, kv);
    tm_buf_appendf(out, " %" PRId64 "\n", v);
}

static void sample_f(tm_buf_t *out, const tm_metric_family_t *f, const char *const *kv, double v)
{
    put_name(out, f->name, NULL, kv);
    tm_buf_appendf(out, " %.6f\n", v);
}

/* ---- process ---- */

static void c_build_info(const tm_metrics_src_t *m, const tm_metric_family_t *f, tm_buf_t *out)
{
    const char *kv[] = {"version", TM_VERSION, NULL};
    sample_u(out, f, kv, 1);
}

static void c_start_time(const tm_metrics_src_t *m, const tm_metric_family_t *f, tm_buf_t *out)
{
    sample_f(out, f, NULL, (double)m->started_wall_ms / 1000.0);
}

static void c_cpu(const tm_metrics_src_t *m, const tm_metric_family_t *f, tm_buf_t *out)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return;
    double s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    sample_f(out, f, NULL, s);
}

static void c_rss(const tm_metrics_src_t *m, const tm_metric_family_t *f, tm_buf_t *out)
{
    /* /proc/self/statm's second field: resident pages. */
    FILE *fp = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (fp == NULL)
        return;
    int n = fscanf(fp, "%lu %lu", &size, &resident);
    fclose(fp);
    if (n == 2)
        sample_u(out, f, NULL, (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE));
}

/* ---- sources ---- */

enum { SRC_EVENTS, SRC_BYTES, SRC_READY, SRC_WATERMARK, SRC_LAG_S, SRC_LAG_B };

static void source_metric(const tm_metrics_src_t *m, const tm_metric_family_t *f, tm_buf_t *out,
                          int which)
{
    tm_pipeline_t *p = m->pipeline;
    for (int i = 0; i < tm_pipeline_nsources(p); i++) {
        const char *kv[] = {"source", tm_pipeline_source_name(p, i), NULL};
        uint64_t ev, by;
        bool ready;
        int64_t wm, lag_us, lag_b;
        tm_pipeline_source_counts(p, i, &ev, &by, &ready);
        bool has_lag = tm_pipeline_source_lag(p, i, &lag_us, &lag_b);
        switch (which) {
        case SRC_EVENTS:
            sample_u(out, f, kv, ev);
            break;
        case SRC_BYTES:
            sample_u(out, f, kv, by);
            break;
        case SRC_READY:
            sample_u(out, f, kv, ready ? 1 : 0);
            break;
        case SRC_WATERMARK:
            /* A source appears here once it has emitted its first watermark. */
            if (tm_pipeline_source_watermark(p, i, &wm))
                sample_f(out, f, kv, (double)wm / 1e6);
            break;
        case SRC_LAG_S:
            if (has_lag)
                sample_f(out, f, kv, lag_us > 0 ? (double)lag_us / 1e6 : 0.0);
            break;
        case SRC_LAG_B:
            if (lag_b >= 0)
                sample_i(out, f, kv, lag_b);
            break;
        }
    }
}

#define SOURCE_COLLECTOR(fn, which)                                                                \
    static void fn(const tm_metrics_src_t *m, const tm_metric_family_t *f, tm_buf_t *out)          \
    {                                                                                              \
        source_metric(m, f, out, which);                                                           \
    }
SOURCE_COLLECTOR(c_src_events, SRC_EVENTS)
SOURCE_COLLECTOR(c_src_bytes, SRC_BYTES)
SOURCE_COLLECTOR(c_src_ready, SRC_READY)
SOURCE_COLLECTOR(c_src_watermark, SRC_WATERMARK)
SOURCE_COLLECTOR(c_src_lag_s, SRC_LAG_S)
SOURCE_COLLECTOR(c_src_lag_b, SRC_LAG_B)

enum { SNAP_ROWS, SNAP_EST, SNAP_TABLES };

static void snapshot_metric(const tm_metrics_src_t *m, const tm_metric_family_t *f,
                            tm_buf_t *out, int which)
{
    tm_pipeline_t *p = m->pipeline;
    for (int i = 0; i < tm_pipeline_nsources(p); i++) {
        tm_snapshot_progress_t sp;
        if (!tm_pipeline_source_snapshot(p, i, &sp))
            continue;
        const char *src = tm_pipeline_source_name(p, i);
        const char *kv[] = {"source", src, "table", sp.table, NULL};
        const char *kv1[] = {"source", src, NULL};
        if (which == SNAP_ROWS)
            sample_u(out, f, kv, sp.rows);
        else if (which == SNAP_EST && sp.estimate >= 0)
            sample_f(out, f, kv, sp.estimate);
        else if (which == SNAP_TABLES)
            sample_u(out, f, kv1, sp.tables_done);
    }
}

static void c_snap_rows(const tm_metrics_src_t *m, const tm_metric_family_t *f, tm_buf_t *out)
{
    snapshot_metric(m, f, out, SNAP_ROWS);
}

static void c_snap_est(const tm_metrics_src_t *m, const tm_metric_family_t *f, tm_buf_t *out)
{
    snapshot_metric(m, f, out, SNAP_EST);
}

static void c_snap_tables(const tm_metrics_src_t *m, const tm_metric_family_t *f, tm_buf_t *out)
{
    snapshot_metric(m, f, out, SNAP_TABLES);
}

/* ---- sinks ---- */

static void c_sink_records(const tm_metrics_src_t *m, const tm_metric_family_t *f, tm_buf_t *out)
{
    tm_pipeline_t *p = m->pipeline;
    for (int i = 0; i < tm_pipeline_nsinks(p); i++) {
        tm_sink_stats_t st;
        tm_pipeline_sink_stats(p, i, &st);
        const char *kv[] = {"sink", tm_pipeline_sink_name(p, i), NULL};
        sample_u(out, f, kv, st.records);
    }
}

static void c_sink_commit(const tm_metrics_src_t *m, const tm_metric_family_t *f, tm_buf_t *out)
{
    tm_pipeline_t *p = m->pipeline;
    for (int i = 0; i < tm_pipeline_nsinks(p); i++) {
        tm_sink_stats_t st;
        tm_pipeline_sink_stats(p, i, &st);
        const char *name = tm_pipeline_sink_name(p, i);
        for (int b = 0; b < TM_SINK_COMMIT_BUCKETS; b++) {
            char le[32];
            snprintf(le, sizeof(le), "%g", tm_sink_commit_bounds[b]);
            const char *kv[] = {"sink", name, "le", le, NULL};
            put_name(out, f->name, "_bucket", kv);
            tm_buf_appendf(out, " %" PRIu64 "\n", st.buckets[b]);
        }
        const char *inf[] = {"sink", name, "le", "+Inf", NULL};
        put_name(out, f->name, "_bucket", inf);
        tm_buf_appendf(out, " %" PRIu64 "\n", st.commits);
        const char *kv[] = {"sink", name, NULL};
        put_name(out, f->name, "_sum", kv);
        tm_buf_appendf(out, " %.6f\n", st.commit_seconds);
        put_name(out, f->name, "_count", kv);
        tm_buf_appendf(out, " %" PRIu64 "\n", st.commits);
    }
}

/* ---- checkpoints ---- */

enum { CHK_DONE, CHK_FAILED, CHK_LAST, CHK_DURATION, CHK_BYTES, CHK_NEW };

static void checkpoint_metric(const tm_metrics_src_t *m, const tm_metric_family_t *f,
                              tm_buf_t *out, int which)
{
    if (m->coord == NULL)
        return;
    tm_checkpoint_stats_t st;
    tm_coordinator_stats(m->coord, &st);
    switch (which) {
    case CHK_DONE:
        sample_u(out, f, NULL, st.completed);
        break;
    case CHK_FAILED:
        sample_u(out, f, NULL, st.failed);
        break;
    case CHK_LAST:
        sample_u(out, f, NULL, st.last_id);
        break;
    case CHK_DURATION:
        sample_f(out, f, NULL, (double)st.last_duration_ms / 1000.0);
        break;
    case CHK_BYTES:
        sample_u(out, f, NULL, st.last_state_bytes);
        break;
    case CHK_NEW:
        sample_u(out, f, NULL, st.last_state_bytes_new);
        break;
    }
}

#define CHECKPOINT_COLLECTOR(fn, which)                                                            \
    static void fn(const tm_metrics_src_t *m, const tm_metric_family_t *f, tm_buf_t *out)          \
    {                                                                                              \
        checkpoint_metric(m, f, out, which);                                                       \
    }
CHECKPOINT_COLLECTOR(c_chk_done, CHK_DONE)
CHECKPOINT_COLLECTOR(c_chk_failed, CHK_FAILED)
CHECKPOINT_COLLECTOR(c_chk_last, CHK_LAST)
CHECKPOINT_COLLECTOR(c_chk_duration, CHK_DURATION)
CHECKPOINT_COLLECTOR(c_chk_bytes, CHK_BYTES)
CHECKPOINT_COLLECTOR(c_chk_new, CHK_NEW)

/* ---- state ---- */

enum { MEM_LIMIT, MEM_CACHE, MEM_MEMTABLES };

static void memory_metric(const tm_metrics_src_t *m, const tm_metric_family_t *f, tm_buf_t *out,
                          int which)
{
    tm_pipeline_t *p = m->pipeline;
    int nstores = tm_pipeline_nstores(p);
    if (nstores == 0)
        return;
    tm_store_memory_t mem;
    tm_store_memory_usage(tm_pipeline_store(p, 0), &mem);
    uint64_t memtables = 0;
    for (int i = 0; i < nstores; i++) {
        tm_store_memory_t mw;
        tm_store_memory_usage(tm_pipeline_store(p, i), &mw);
        memtables += mw.memtables;
    }
    sample_u(out, f, NULL, which == MEM_LIMIT   ? mem.limit
                           : which == MEM_CACHE ? mem.cache_usage
                                                : memtables);
}

static void c_mem_limit(const tm_metrics_src_t *m, const tm_metric_family_t *f, tm_buf_t *out)
{
    memory_metric(m, f, out, MEM_LIMIT);
}

static void c_mem_cache(const tm_metrics_src_t *m, const tm_metric_family_t *f, tm_buf_t *out)
{
    memory_metric(m, f, out, MEM_CACHE);
}

static void c_mem_memtables(const tm_metrics_src_t *m, const tm_metric_family_t *f, tm_buf_t *out)
{
    memory_metric(m, f, out, MEM_MEMTABLES);
}

/* Per stateful operator: its column family's bytes, summed over the stores that hold it. */
static void c_state_bytes(const tm_metrics_src_t *m, const tm_metric_family_t *f, tm_buf_t *out)
{
    tm_pipeline_t *p = m->pipeline;
    for (int st = 0; st < tm_pipeline_nstages(p); st++)
        for (int k = 0; k < tm_pipeline_stage_nops(p, st); k++) {
            const char *uid = tm_pipeline_op_uid(p, st, k);
            uint64_t sum = 0;
            bool found = false;
            for (int i = 0; i < tm_pipeline_nstores(p); i++) {
                tm_pipeline_store_info_t si;
                tm_pipeline_store_info(p, i, &si);
                for (int u = 0; u < si.nuids; u++)
                    if (strcmp(si.uids[u], uid) == 0) {
                        sum += tm_store_cf_bytes(tm_pipeline_store(p, i), uid);
                        found = true;
                    }
            }
            if (found) {
                const char *kv[] = {"operator", uid, NULL};
                sample_u(out, f, kv, sum);
            }
        }
}

/* ---- operators ---- */

enum {
    OP_IN, OP_OUT, OP_ERRORS, OP_SKIPPED, OP_DEAD, OP_READS, OP_HITS, OP_MISSES, OP_QUERIES,
    OP_STATE_ROWS, OP_WATERMARK, OP_LATE,
};

static void operator_metric(const tm_metrics_src_t *m, const tm_metric_family_t *f,
                            tm_buf_t *out, int which)
{
    tm_pipeline_t *p = m->pipeline;
    for (int st = 0; st < tm_pipeline_nstages(p); st++)
        for (int k = 0; k < tm_pipeline_stage_nops(p, st); k++) {
            tm_operator_metrics_t om;
            tm_pipeline_op_metrics(p, st, k, &om);
            const char *uid = tm_pipeline_op_uid(p, st, k);
            const char *kv[] = {"operator", uid, NULL};
            switch (which) {
            case OP_IN:
                sample_u(out, f, kv, om.records_in);
                break;
            case OP_OUT:
                sample_u(out, f, kv, om.records_out);
                break;
            case OP_ERRORS:
                sample_u(out, f, kv, om.row_errors);
                break;
            case OP_SKIPPED:
                sample_u(out, f, kv, om.rows_skipped);
                break;
            case OP_DEAD:
                sample_u(out, f, kv, om.dead_letters);
                break;
            case OP_READS:
                sample_u(out, f, kv, om.state_reads);
                break;
            case OP_HITS:
                sample_u(out, f, kv, om.lookup_cache_hits);
                break;
            case OP_MISSES:
                sample_u(out, f, kv, om.lookup_cache_misses);
                break;
            case OP_QUERIES:
                sample_u(out, f, kv, om.lookup_queries);
                break;
            case OP_LATE:
                sample_u(out, f, kv, om.late_rows);
                break;
            case OP_STATE_ROWS:
                for (int i = 0; i < om.state_inputs && i < 2; i++) {
                    const char *kv2[] = {"operator", uid, "input", i == 0 ? "left" : "right",
                                         NULL};
                    sample_i(out, f, kv2, (int64_t)om.state_rows[i]);
                }
                break;
            case OP_WATERMARK: {
                /* An operator appears here once a watermark has reached it. */
                int64_t wm;
                if (tm_pipeline_op_watermark(p, st, k, &wm))
                    sample_f(out, f, kv, (double)wm / 1e6);
                break;
            }
            }
        }
}

#define OPERATOR_COLLECTOR(fn, which)                                                              \
    static void fn(const tm_metrics_src_t *m, const tm_metric_family_t *f, tm_buf_t *out)          \
    {                                                                                              \
        operator_metric(m, f, out, which);                                                         \
    }
OPERATOR_COLLECTOR(c_op_in, OP_IN)
OPERATOR_COLLECTOR(c_op_out, OP_OUT)
OPERATOR_COLLECTOR(c_op_errors, OP_ERRORS)
OPERATOR_COLLECTOR(c_op_skipped, OP_SKIPPED)
OPERATOR_COLLECTOR(c_op_dead, OP_DEAD)
OPERATOR_COLLECTOR(c_op_reads, OP_READS)
OPERATOR_COLLECTOR(c_op_hits, OP_HITS)
OPERATOR_COLLECTOR(c_op_misses, OP_MISSES)
OPERATOR_COLLECTOR(c_op_queries, OP_QUERIES)
OPERATOR_COLLECTOR(c_op_state_rows, OP_STATE_ROWS)
OPERATOR_COLLECTOR(c_op_watermark, OP_WATERMARK)

/* 1 while a source with generated watermarks is marked idle downstream (idle_timeout). */
static void c_src_idle(const tm_metrics_src_t *m, const tm_metric_family_t *f, tm_buf_t *out)
{
    tm_pipeline_t *p = m->pipeline;
    for (int i = 0; i < tm_pipeline_nsources(p); i++) {
        const char *kv[] = {"source", tm_pipeline_source_name(p, i), NULL};
        sample_u(out, f, kv, tm_pipeline_source_idle(p, i) ? 1 : 0);
    }
}

/* ---- errors ---- */

/* Every kind, 0 until it happens (core/errcount.h, invariant 2). */
static void c_errors(const tm_metrics_src_t *m, const tm_metric_family_t *f, tm_buf_t *out)
{
    (void)m;
    for (int k = 0; k < TM_ERRKIND_COUNT; k++) {
        const char *kv[] = {"kind", tm_errkind_name((tm_errkind_t)k), NULL};
        sample_u(out, f, kv, tm_errors_total((tm_errkind_t)k));
    }
}
OPERATOR_COLLECTOR(c_op_late, OP_LATE)

/* ---- the table ---- */

static const tm_metric_family_t families[] = {
    {"tidemark_build_info", "gauge", "Always 1; the version label says which tidemark runs.",
     c_build_info},
    {"tidemark_process_start_time_seconds", "gauge",
     "When the daemon started, in seconds since the epoch.", c_start_time},
    {"tidemark_process_cpu_seconds_total", "counter",
     "CPU time the daemon used, user and system, every thread.", c_cpu},
    {"tidemark_process_resident_memory_bytes", "gauge", "The daemon's resident set size.",
     c_rss},
    {"tidemark_source_events_total", "counter", "Change events emitted by a source.",
     c_src_events},
    {"tidemark_source_bytes_total", "counter",
     "Bytes a source read from its server (PostgreSQL: replication messages).", c_src_bytes},
    {"tidemark_source_ready", "gauge", "1 when the source is connected and streaming.",
     c_src_ready},
    {"tidemark_source_watermark_seconds", "gauge",
     "The last event-time watermark a source emitted, in seconds since the epoch.",
     c_src_watermark},
    {"tidemark_source_lag_seconds", "gauge",
     "How old the newest change of a source's last streamed batch was when it was emitted "
     "(emit time minus commit time).",
     c_src_lag_s},
    {"tidemark_source_lag_bytes", "gauge",
     "How far the server's WAL end is ahead of what the source has confirmed (PostgreSQL: "
     "the slot's distance).",
     c_src_lag_b},
    {"tidemark_snapshot_rows", "gauge", "Rows of the table a snapshot is reading, read so far.",
     c_snap_rows},
    {"tidemark_snapshot_rows_estimate", "gauge",
     "The database's estimate of the rows of the table a snapshot is reading.", c_snap_est},
    {"tidemark_snapshot_tables_done_total", "counter", "Tables a snapshot has read completely.",
     c_snap_tables},
    {"tidemark_sink_records_total", "counter", "Records written to a sink.", c_sink_records},
    {"tidemark_sink_commit_duration_seconds", "histogram",
     "How long a sink's commit took (two-phase commit sinks), or its flush (the others).",
     c_sink_commit},
    {"tidemark_checkpoints_completed_total", "counter", "Checkpoints completed.", c_chk_done},
    {"tidemark_checkpoints_failed_total", "counter", "Checkpoints that failed or were aborted.",
     c_chk_failed},
    {"tidemark_checkpoint_last_id", "gauge", "The id of the last completed checkpoint.",
     c_chk_last},
    {"tidemark_checkpoint_duration_seconds", "gauge",
     "How long the last completed checkpoint took, barrier to commit.", c_chk_duration},
    {"tidemark_checkpoint_state_bytes", "gauge",
     "Size of the last completed checkpoint's state files.", c_chk_bytes},
    {"tidemark_checkpoint_state_new_bytes", "gauge",
     "Of those, the bytes not shared with the checkpoint before it.", c_chk_new},
    {"tidemark_state_memory_limit_bytes", "gauge", "The state_memory budget of all stores.",
     c_mem_limit},
    {"tidemark_state_block_cache_bytes", "gauge", "RocksDB block cache in use.", c_mem_cache},
    {"tidemark_state_memtable_bytes", "gauge", "RocksDB memtables of every store.",
     c_mem_memtables},
    {"tidemark_state_bytes", "gauge",
     "An operator's state: its SST files and memtables, summed over its subtasks' stores.",
     c_state_bytes},
    {"tidemark_operator_records_in_total", "counter", "Records an operator consumed.", c_op_in},
    {"tidemark_operator_records_out_total", "counter", "Records an operator emitted.", c_op_out},
    {"tidemark_operator_row_errors_total", "counter", "Rows whose expressions failed.",
     c_op_errors},
    {"tidemark_operator_rows_skipped_total", "counter", "Failed rows dropped by on_error.",
     c_op_skipped},
    {"tidemark_operator_dead_letters_total", "counter",
     "Failed rows written to the dead-letter files (on_error = 'dead-letter').", c_op_dead},
    {"tidemark_operator_state_reads_total", "counter",
     "State accesses (one per key per batch when mini-batched).", c_op_reads},
    {"tidemark_operator_lookup_cache_hits_total", "counter",
     "Distinct keys of a batch a lookup join found in its cache.", c_op_hits},
    {"tidemark_operator_lookup_cache_misses_total", "counter",
     "Distinct keys of a batch a lookup join had to look up.", c_op_misses},
    {"tidemark_operator_lookup_queries_total", "counter",
     "Lookup queries (one round trip per input batch with misses).", c_op_queries},
    {"tidemark_operator_state_rows", "gauge",
     "Rows held in an operator's state per input (a join: left, right).", c_op_state_rows},
    {"tidemark_operator_watermark_seconds", "gauge",
     "The event-time watermark an operator last received, seconds since the epoch (the minimum "
     "over its subtasks).",
     c_op_watermark},
    {"tidemark_source_idle", "gauge",
     "1 while a source is marked idle downstream: every partition had no record for idle_timeout.",
     c_src_idle},
    {"tidemark_errors_total", "counter",
     "Errors by kind: source_connection, sink_connection, row_expression, decode, "
     "checkpoint_failed, dead_letter (docs/operations.md says what each means and what to do).",
     c_errors},
    {"tidemark_late_rows_total", "counter",
     "Rows (and retractions) a window aggregation got behind the watermark for all their "
     "windows: counted and logged, not applied.",
     c_op_late},
};

const tm_metric_family_t *tm_metrics_families(int *n)
{
    *n = (int)(sizeof(families) / sizeof(families[0]));
    return families;
}

void tm_metrics_render(const tm_metrics_src_t *m, tm_buf_t *out)
{
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        const tm_metric_family_t *f = &families[i];
        tm_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, f->type);
        f->collect(m, f, out);
    }
}
