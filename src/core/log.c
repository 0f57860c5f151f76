/*
 * log.c — logfmt/JSON lines on stderr (see log.h).
 *
 * Each line is formatted into a stack buffer and written with one write(2),
 * so concurrent threads never interleave within a line.
 */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int tm_log_level = TM_LOG_INFO;
int tm_log_json = 0;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int tm_log_set_level(const char *name)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            tm_log_level = i;
            return 0;
        }
    }
    return -1;
}

/* Appends s quoted for logfmt (or JSON), escaping quotes, backslashes and controls. */
static size_t put_quoted(char *o, size_t room, const char *s)
{
    size_t n = 0;
    if (room < 3)
        return 0;
    o[n++] = '"';
    for (; *s && n + 3 < room; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            o[n++] = '\\';
            o[n++] = (char)c;
        } else if (c == '\n') {
            o[n++] = '\\';
            o[n++] = 'n';
        } else if (c < 0x20) {
            o[n++] = ' ';
        } else {
            o[n++] = (char)c;
        }
    }
    o[n++] = '"';
    return n;
}

void tm_log_write(tm_log_level_t level, const char *comp, const char *msg, const char *fields_fmt,
                  ...)
{
    char line[4096];
    char fields[3000];
    struct timeval tv;
    struct tm tmv;
    size_t n;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tmv);

    va_list ap;
    va_start(ap, fields_fmt);
    vsnprintf(fields, sizeof(fields), fields_fmt, ap);
    va_end(ap);

    if (tm_log_json) {
        n = (size_t)snprintf(line, sizeof(line),
                             "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\","
                             "\"comp\":\"%s\",\"msg\":",
                             tmv.tm_year + 1900, tmv.tm_mon + 1, tmv.tm_mday, tmv.tm_hour,
                             tmv.tm_min, tmv.tm_sec, (long)(tv.tv_usec / 1000),
                             level_names[level], comp);
        n += put_quoted(line + n, sizeof(line) - n, msg);
        if (fields[0] && n + 12 < sizeof(line)) {
            memcpy(line + n, ",\"fields\":", 10);
            n += 10;
            n += put_quoted(line + n, sizeof(line) - n, fields);
        }
        if (n + 2 < sizeof(line))
            line[n++] = '}';
    } else {
        n = (size_t)snprintf(line, sizeof(line),
                             "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s comp=%s msg=",
                             tmv.tm_year + 1900, tmv.tm_mon + 1, tmv.tm_mday, tmv.tm_hour,
                             tmv.tm_min, tmv.tm_sec, (long)(tv.tv_usec / 1000),
                             level_names[level], comp);
        n += put_quoted(line + n, sizeof(line) - n, msg);
        if (fields[0]) {
            int k = snprintf(line + n, sizeof(line) - n, " %s", fields);
            if (k > 0)
                n += (size_t)k < sizeof(line) - n ? (size_t)k : sizeof(line) - n - 1;
        }
    }
    if (n >= sizeof(line) - 1)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}
