/*
 * log.h — structured logging to stderr, logfmt or JSON.
 *
 * A line is a message plus key=value fields:
 *
 *     TM_INFO("postgres", "snapshot progress", "table=%s rows=%" PRIu64, t, n);
 *
 * prints
 *
 *     ts=2026-11-22T10:00:00.123Z level=info comp=postgres msg="snapshot progress" table=public.orders rows=10
 *
 * Every value is escaped: a value that holds a space, '=', a quote, a control
 * character or bytes that are not UTF-8 is written quoted and escaped, so no
 * value can end a line or forge a field (see log.c for how the format's
 * `key=%s` and `key="%s"` are told apart).  Pass structure in the format, not
 * in arguments: an argument written after `key=` is one value.
 *
 * The macros test the level before evaluating their arguments.  Never pass a
 * secret: DSNs go through tm_dsn_mask() first.
 *
 * Thread: any; one write(2) per line so lines do not interleave (with a
 * progress line on a terminal, a mutex keeps the line and its redraw together).
 */
#ifndef TM_CORE_LOG_H
#define TM_CORE_LOG_H

#include "core/buf.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum tm_log_level {
    TM_LOG_ERROR = 0,
    TM_LOG_WARN,
    TM_LOG_INFO,
    TM_LOG_DEBUG,
} tm_log_level_t;

extern int tm_log_level;
extern int tm_log_json;

void tm_log_write(tm_log_level_t level, const char *comp, const char *msg, const char *fields_fmt,
                  ...) __attribute__((format(printf, 4, 5)));

#define TM_LOG(level, comp, msg, ...)                                                              \
    do {                                                                                           \
        if ((int)(level) <= tm_log_level)                                                          \
            tm_log_write((level), (comp), (msg), __VA_ARGS__);                                     \
    } while (0)

#define TM_ERROR(comp, msg, ...) TM_LOG(TM_LOG_ERROR, comp, msg, __VA_ARGS__)
#define TM_WARN(comp, msg, ...) TM_LOG(TM_LOG_WARN, comp, msg, __VA_ARGS__)
#define TM_INFO(comp, msg, ...) TM_LOG(TM_LOG_INFO, comp, msg, __VA_ARGS__)
#define TM_DEBUG(comp, msg, ...) TM_LOG(TM_LOG_DEBUG, comp, msg, __VA_ARGS__)


/*
 * A live progress line for a terminal.  When stderr is a terminal,
 * tm_log_progress(text) draws `text` (one line; control bytes are shown as
 * '?') on the last line of the screen, replacing the previous one, and every
 * log line written meanwhile is printed above it; tm_log_progress(NULL)
 * erases it.  When stderr is not a terminal (a file, a pipe, the journal)
 * both do nothing: callers log periodic lines instead (tm_log_is_terminal()).
 */
void tm_log_progress(const char *text);
bool tm_log_is_terminal(void);

/* Parses "error|warn|info|debug"; returns 0 or -1. */
int tm_log_set_level(const char *name);

#endif
