/*
 * blackhole.c — the sink that discards every row ("blackhole"), as Flink's
 * blackhole connector: for benchmarks (the cost of a query without the cost
 * of an output) and for trying a job out.
 *
 * The runtime counts what reaches a sink (tidemark_sink_records_total), so
 * the sink itself only keeps a count for explain and its own tests.  It takes
 * part in checkpoints with no-op pre-commit and commit, so a job with
 * checkpoints and a blackhole sink still completes them (and their sources'
 * positions advance) exactly as with a real two-phase-commit sink.
 *
 * Invariants:
 *   1. Every hook succeeds; nothing is written anywhere.
 *
 * Thread: new/free on the main thread, write/flush/precommit/commit on the
 * sink thread.
 */
#include "core/error.h"
#include "runtime/connector.h"

#include <stdlib.h>
#include <string.h>

struct tm_sink {
    uint64_t records; /* rows received (sink thread) */
    uint64_t batches;
    uint64_t epoch;   /* the last pre-committed checkpoint */
};

static const tm_option_def_t bh_options[] = {
    {NULL, 0, false, NULL, NULL, NULL},
};

static int bh_sink_new(tm_sink_t **out, const tm_sink_config_t *cfg, char *errstr,
                       size_t errstr_size)
{
    (void)cfg;
    (void)errstr;
    (void)errstr_size;
    tm_sink_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return TM_ENOMEM;
    *out = s;
    return 0;
}

static int bh_sink_open(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    (void)s;
    (void)errstr;
    (void)errstr_size;
    return 0;
}

static int bh_sink_write(tm_sink_t *s, const tm_batch_t *batch, char *errstr, size_t errstr_size)
{
    (void)errstr;
    (void)errstr_size;
    s->records += batch->count;
    s->batches++;
    return 0;
}

static int bh_sink_flush(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    (void)s;
    (void)errstr;
    (void)errstr_size;
    return 0;
}

static int bh_sink_precommit(tm_sink_t *s, uint64_t epoch, tm_buf_t *handle, char *errstr,
                             size_t errstr_size)
{
    (void)handle;
    (void)errstr;
    (void)errstr_size;
    s->epoch = epoch;
    return 0;
}

static int bh_sink_commit(tm_sink_t *s, uint64_t epoch, const char *progress, char *errstr,
                          size_t errstr_size)
{
    (void)s;
    (void)epoch;
    (void)progress;
    (void)errstr;
    (void)errstr_size;
    return 0;
}

static int bh_sink_recover(tm_sink_t *s, uint64_t epoch, const char *handle, char *errstr,
                           size_t errstr_size)
{
    (void)handle;
    (void)errstr;
    (void)errstr_size;
    s->epoch = epoch;
    return 0;
}

static const char *bh_sink_delivery(const tm_sink_t *s, bool checkpointing)
{
    (void)s;
    (void)checkpointing;
    return "none: every row is discarded (blackhole)";
}

static void bh_sink_free(tm_sink_t *s)
{
    free(s);
}

const tm_connector_t tm_connector_blackhole = {
    .abi = TM_CONNECTOR_ABI,
    .name = "blackhole",
    .kinds = TM_CONNECTOR_SINK,
    .doc = "Discards every row (counted in tidemark_sink_records_total); for benchmarks and trials.",
    .sink_options = bh_options,
    .sink_new = bh_sink_new,
    .sink_open = bh_sink_open,
    .sink_write = bh_sink_write,
    .sink_flush = bh_sink_flush,
    .sink_precommit = bh_sink_precommit,
    .sink_commit = bh_sink_commit,
    .sink_recover = bh_sink_recover,
    .sink_delivery = bh_sink_delivery,
    .sink_free = bh_sink_free,
};
