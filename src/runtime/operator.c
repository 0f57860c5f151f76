/*
 * operator.c — the runtime's side of operator.h: the row-error policy.
 *
 * Thread: the calling operator's (metrics are atomics; the log's rate limit
 * is per process and only approximately exact across threads).
 */
#include "runtime/operator.h"
#include "core/clock.h"
#include "core/errcount.h"
#include "core/error.h"
#include "core/log.h"

#include <inttypes.h>
#include <stdio.h>

/* At most one warning per second about skipped rows, with the count since the last. */
static _Atomic int64_t last_warn_ms;
static _Atomic uint64_t unlogged;

static void warn_skipped(const tm_operator_ctx_t *ctx, const char *reason, bool no_output)
{
    int64_t now = tm_mono_ms();
    int64_t last = atomic_load(&last_warn_ms);
    uint64_t n = atomic_fetch_add(&unlogged, 1) + 1;
    if (now - last < 1000 || !atomic_compare_exchange_strong(&last_warn_ms, &last, now))
        return;
    atomic_fetch_sub(&unlogged, n);
    TM_WARN("operator",
            no_output ? "rows failed and were skipped (on_error = 'dead-letter', but the job has "
                        "no dead-letter output configured)"
                      : "rows failed and were skipped (on_error = 'skip')",
            "operator=%s subtask=%d rows=%" PRIu64 " last_error=\"%s\"", ctx->uid, ctx->subtask,
            n, reason);
}

int tm_operator_row_error(const tm_operator_ctx_t *ctx, const tm_record_t *rec,
                          const char *reason, char *errstr, size_t errstr_size)
{
    atomic_fetch_add_explicit(&ctx->metrics->row_errors, 1, memory_order_relaxed);
    tm_errors_count(TM_ERRKIND_ROW_EXPRESSION);
    switch (ctx->on_error) {
    case TM_ON_ERROR_SKIP:
        atomic_fetch_add_explicit(&ctx->metrics->rows_skipped, 1, memory_order_relaxed);
        warn_skipped(ctx, reason, false);
        return 0;
    case TM_ON_ERROR_DEAD_LETTER:
        atomic_fetch_add_explicit(&ctx->metrics->rows_skipped, 1, memory_order_relaxed);
        if (ctx->dead_letter != NULL) {
            atomic_fetch_add_explicit(&ctx->metrics->dead_letters, 1, memory_order_relaxed);
            ctx->dead_letter(ctx->dead_letter_arg, ctx->uid, rec, reason);
        } else
            warn_skipped(ctx, reason, true);
        return 0;
    case TM_ON_ERROR_FAIL:
    default:
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "operator %s: %s; set on_error = 'skip' or 'dead-letter' to go on past "
                         "such rows", ctx->uid, reason);
    }
}
