/*
 * snapprog.c — the snapshot progress text shared by the PostgreSQL and MySQL
 * snapshots (snapprog.h).
 *
 * Thread: the source's.
 */
#include "common/snapprog.h"

#include "core/clock.h"
#include "core/log.h"

#include <inttypes.h>
#include <stdio.h>

void tm_snapprog_log(const tm_snapprog_t *p, uint64_t rows, uint64_t total, bool done)
{
    double secs = (double)(tm_mono_us() - p->start_us) / 1e6;
    double pct = done ? 100.0 : p->estimate > 0 ? 100.0 * (double)rows / p->estimate : 0.0;
    if (pct > 100.0)
        pct = done ? 100.0 : 99.9;
    TM_INFO(p->comp, "snapshot progress",
            "source=%s table=%s.%s rows=%" PRIu64 " pct=%.1f rate=%.0f total=%" PRIu64
            " done=%s",
            p->source, p->ns, p->table, rows, pct, secs > 0 ? (double)rows / secs : 0.0, total,
            done ? "true" : "false");
}

/* Appends n with thousands separators ("1,234,567"). */
static void put_count(char *buf, size_t len, uint64_t n)
{
    char digits[32];
    int nd = snprintf(digits, sizeof(digits), "%" PRIu64, n);
    size_t k = 0;
    for (int i = 0; i < nd && k + 2 < len; i++) {
        if (i > 0 && (nd - i) % 3 == 0)
            buf[k++] = ',';
        buf[k++] = digits[i];
    }
    buf[k] = '\0';
}

void tm_snapprog_line(const tm_snapprog_t *p, uint64_t rows)
{
    double secs = (double)(tm_mono_us() - p->start_us) / 1e6;
    double rate = secs > 0 ? (double)rows / secs : 0.0;
    char done[40], total[40], per[40], line[512];
    put_count(done, sizeof(done), rows);
    put_count(per, sizeof(per), (uint64_t)rate);
    if (p->estimate > 0) {
        double frac = (double)rows / p->estimate;
        if (frac > 0.999)
            frac = 0.999; /* an estimate: never claim the end before it comes */
        char bar[21];
        for (int i = 0; i < 20; i++)
            bar[i] = i < (int)(frac * 20) ? '#' : ' ';
        bar[20] = '\0';
        put_count(total, sizeof(total), (uint64_t)p->estimate);
        double left =
            rate > 0 && p->estimate > (double)rows ? (p->estimate - (double)rows) / rate : 0.0;
        char eta[32];
        if (left >= 7200)
            snprintf(eta, sizeof(eta), "~%.0f h", left / 3600);
        else if (left >= 120)
            snprintf(eta, sizeof(eta), "~%.0f min", left / 60);
        else
            snprintf(eta, sizeof(eta), "~%.0f s", left);
        snprintf(line, sizeof(line),
                 "snapshot %s %s.%s [%s] %2.0f%% %s of ~%s rows, %s rows/s, %s left", p->source,
                 p->ns, p->table, bar, frac * 100, done, total, per, eta);
    } else {
        snprintf(line, sizeof(line), "snapshot %s %s.%s: %s rows, %s rows/s", p->source, p->ns,
                 p->table, done, per);
    }
    tm_log_progress(line);
}
