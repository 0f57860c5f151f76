/*
 * log.c — logfmt/JSON lines on stderr (see log.h).
 *
 * Each line is formatted into a stack buffer and written with one write(2),
 * so concurrent threads never interleave within a line.
 *
 * Invariants:
 *   1. A line is exactly one line: no value, whatever bytes it holds (a table
 *      named "x\nlevel=error"), can put a newline, a carriage return or any
 *      other control character into the output.
 *   2. A value cannot forge a field: in logfmt, a value that holds a space,
 *      '=', '"', '\' or anything not printable is written quoted, with '"'
 *      and '\' escaped, so a parser reads it back as one value of its key.
 *   3. JSON lines are valid JSON: controls are \u00XX and bytes that are not
 *      UTF-8 become U+FFFD.
 *
 * The fields format is the caller's printf format, read piece by piece:
 * literal text is structure (`key=`, spaces) written as is, and every
 * conversion is a value.  Conversions after `key=` up to the next literal
 * space (`table=%s.%s`) form one value; conversions inside literal quotes
 * (`error="%s"`) form one quoted value.  A conversion anywhere else is a
 * fragment of structure supplied by code (`"%s", ""`), written as is except
 * that its controls and non-UTF-8 bytes are escaped (invariant 1 still holds).
 *
 * Thread: any.
 */
#include "core/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* The progress line (tm_log_progress); progress_mu orders its writes with log lines. */
static pthread_mutex_t progress_mu = PTHREAD_MUTEX_INITIALIZER;
static char progress_text[512];
static _Atomic bool progress_shown;
static _Atomic int stderr_tty = -1; /* unknown until asked */

static void write_above_progress(const char *line, size_t n);

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

/*
 * An output buffer.  out_put writes a piece whole or not at all, and after
 * the first piece that does not fit it writes nothing more, so an escape
 * sequence is never cut in two; out_put_some copies as much as fits.
 */
typedef struct out {
    char *p;
    size_t n, cap;
    bool full;
} out_t;

static void out_put(out_t *o, const char *s, size_t len)
{
    if (o->full || len > o->cap - o->n) {
        o->full = true;
        return;
    }
    memcpy(o->p + o->n, s, len);
    o->n += len;
}

static void out_putc(out_t *o, char c)
{
    out_put(o, &c, 1);
}

static void out_put_some(out_t *o, const char *s, size_t len)
{
    size_t room = o->cap - o->n;
    out_put(o, s, len < room ? len : room);
}

/*
 * Opens and closes a quoted string around `body`: the closing quote's byte is
 * held back while the body is written, so a truncated string is still closed.
 */
static bool out_open_quote(out_t *o)
{
    if (o->full || o->cap - o->n < 2) {
        o->full = true;
        return false;
    }
    o->p[o->n++] = '"';
    o->cap--;
    return true;
}

static void out_close_quote(out_t *o)
{
    o->cap++;
    o->p[o->n++] = '"';
}

/*
 * Appends s escaped for the inside of a quoted value: logfmt (Go's %q
 * conventions: \xNN for control and ill-formed bytes) or, with `json`, a JSON
 * string (\u00NN, and U+FFFD for ill-formed UTF-8).  Quotes and backslashes
 * are escaped when `escape_quotes` (always in JSON).
 */
static void put_escaped_as(out_t *o, const char *s, size_t len, bool escape_quotes, bool json)
{
    char esc[8];
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        size_t k = tm_utf8_seqlen(s + i, len - i);
        if (k == 0) {
            if (json) {
                out_put(o, "\\ufffd", 6);
            } else {
                snprintf(esc, sizeof(esc), "\\x%02x", c);
                out_put(o, esc, 4);
            }
            i++;
            continue;
        }
        if (k > 1) {
            out_put(o, s + i, k);
        } else if ((c == '"' || c == '\\') && (escape_quotes || json)) {
            esc[0] = '\\';
            esc[1] = (char)c;
            out_put(o, esc, 2);
        } else if (c == '\n') {
            out_put(o, "\\n", 2);
        } else if (c == '\r') {
            out_put(o, "\\r", 2);
        } else if (c == '\t') {
            out_put(o, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            int n = snprintf(esc, sizeof(esc), json ? "\\u%04x" : "\\x%02x", c);
            out_put(o, esc, (size_t)n);
        } else {
            out_putc(o, (char)c);
        }
        i += k;
    }
}

static void put_escaped(out_t *o, const char *s, size_t len, bool escape_quotes)
{
    put_escaped_as(o, s, len, escape_quotes, false);
}

/* True if a logfmt value must be quoted to be read back as one value. */
static bool needs_quotes(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        size_t k = tm_utf8_seqlen(s + i, len - i);
        if (k == 0 || c <= ' ' || c == '=' || c == '"' || c == '\\' || c == 0x7f)
            return true;
        i += k;
    }
    return false;
}

static void put_value(out_t *o, const char *s, size_t len, bool quoted)
{
    if (quoted || needs_quotes(s, len)) {
        if (out_open_quote(o)) {
            put_escaped(o, s, len, true);
            out_close_quote(o);
        }
    } else {
        out_put(o, s, len);
    }
}

/* Appends s as a JSON string, quotes included. */
static void put_json(out_t *o, const char *s)
{
    if (out_open_quote(o)) {
        put_escaped_as(o, s, strlen(s), true, true);
        out_close_quote(o);
    }
}

/*
 * Formats one printf conversion, `spec` (from '%' to the conversion letter),
 * taking its arguments from ap.  Returns the text in buf (or, for a plain
 * %s, the argument itself) and its length in *len.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static const char *format_one(const char *spec, size_t speclen, va_list *ap, char *buf,
                              size_t bufsize, size_t *len)
{
    char f[32];
    int star[2], nstar = 0;
    if (speclen >= sizeof(f)) {
        *len = 0;
        return "";
    }
    memcpy(f, spec, speclen);
    f[speclen] = '\0';
    for (size_t i = 1; i + 1 < speclen; i++)
        if (f[i] == '*' && nstar < 2)
            star[nstar++] = va_arg(*ap, int);
    char conv = f[speclen - 1];
    /* The length modifier is whatever sits between the precision and the conversion. */
    const char *lm = f + speclen - 1;
    while (lm > f && strchr("hlLqjzt", lm[-1]) != NULL)
        lm--;
    size_t lml = (size_t)(f + speclen - 1 - lm);
    bool l1 = lml == 1 && lm[0] == 'l', ll = lml == 2 && lm[0] == 'l';
    bool z = lml == 1 && lm[0] == 'z', j = lml == 1 && lm[0] == 'j';
    bool t = lml == 1 && lm[0] == 't', big = lml == 1 && (lm[0] == 'L' || lm[0] == 'q');
    int k = 0;
#define TM_LOG_FMT(val)                                                                            \
    (nstar == 0   ? snprintf(buf, bufsize, f, val)                                                 \
     : nstar == 1 ? snprintf(buf, bufsize, f, star[0], val)                                        \
                  : snprintf(buf, bufsize, f, star[0], star[1], val))
    switch (conv) {
    case 'd':
    case 'i':
        if (ll || big)
            k = TM_LOG_FMT(va_arg(*ap, long long));
        else if (l1)
            k = TM_LOG_FMT(va_arg(*ap, long));
        else if (z)
            k = TM_LOG_FMT(va_arg(*ap, ssize_t));
        else if (j)
            k = TM_LOG_FMT(va_arg(*ap, intmax_t));
        else if (t)
            k = TM_LOG_FMT(va_arg(*ap, ptrdiff_t));
        else
            k = TM_LOG_FMT(va_arg(*ap, int));
        break;
    case 'u':
    case 'o':
    case 'x':
    case 'X':
        if (ll || big)
            k = TM_LOG_FMT(va_arg(*ap, unsigned long long));
        else if (l1)
            k = TM_LOG_FMT(va_arg(*ap, unsigned long));
        else if (z)
            k = TM_LOG_FMT(va_arg(*ap, size_t));
        else if (j)
            k = TM_LOG_FMT(va_arg(*ap, uintmax_t));
        else if (t)
            k = TM_LOG_FMT(va_arg(*ap, ptrdiff_t));
        else
            k = TM_LOG_FMT(va_arg(*ap, unsigned int));
        break;
    case 'c':
        k = TM_LOG_FMT(va_arg(*ap, int));
        break;
    case 'e':
    case 'E':
    case 'f':
    case 'F':
    case 'g':
    case 'G':
    case 'a':
    case 'A':
        if (big)
            k = TM_LOG_FMT(va_arg(*ap, long double));
        else
            k = TM_LOG_FMT(va_arg(*ap, double));
        break;
    case 'p':
        k = TM_LOG_FMT(va_arg(*ap, void *));
        break;
    case 's': {
        const char *s = va_arg(*ap, const char *);
        if (s == NULL)
            s = "(null)";
        if (speclen == 2) {
            *len = strlen(s);
            return s;
        }
        k = TM_LOG_FMT(s);
        break;
    }
    default:
        /* %n and unknown conversions are not honoured; the format checker rejects most. */
        k = 0;
        break;
    }
#undef TM_LOG_FMT
    if (k < 0)
        k = 0;
    *len = (size_t)k < bufsize ? (size_t)k : bufsize - 1;
    return buf;
}
#pragma GCC diagnostic pop

enum { ST_OUT, ST_VAL, ST_QVAL };

/* Writes the caller's fields, escaping every value (see the file header). */
static void format_fields(out_t *o, const char *fmt, va_list *ap)
{
    char valbuf[2048];
    out_t val = {valbuf, 0, sizeof(valbuf), false};
    char piece[1024];
    int st = ST_OUT;
    for (const char *p = fmt; *p;) {
        if (*p == '%' && p[1] != '%' && p[1] != '\0') {
            const char *e = p + 1;
            while (*e && strchr("diouxXeEfFgGaAcspn", *e) == NULL)
                e++;
            if (*e == '\0')
                break;
            size_t len;
            const char *s = format_one(p, (size_t)(e - p + 1), ap, piece, sizeof(piece), &len);
            if (st == ST_OUT)
                put_escaped(o, s, len, false);
            else
                out_put_some(&val, s, len);
            p = e + 1;
            continue;
        }
        char c = *p;
        if (c == '%')
            p++; /* "%%" is a literal '%'. */
        p++;
        if (st == ST_OUT) {
            out_putc(o, c);
            if (c == '=') {
                st = *p == '"' ? ST_QVAL : ST_VAL;
                if (st == ST_QVAL)
                    p++;
                val.n = 0;
                val.full = false;
            }
        } else if (st == ST_VAL && c == ' ') {
            put_value(o, valbuf, val.n, false);
            out_putc(o, ' ');
            st = ST_OUT;
        } else if (st == ST_QVAL && c == '"') {
            put_value(o, valbuf, val.n, true);
            st = ST_OUT;
        } else {
            out_put_some(&val, &c, 1);
        }
    }
    if (st != ST_OUT)
        put_value(o, valbuf, val.n, st == ST_QVAL);
}

void tm_log_write(tm_log_level_t level, const char *comp, const char *msg, const char *fields_fmt,
                  ...)
{
    char line[4096];
    char fields[3000];
    struct timeval tv;
    struct tm tmv;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tmv);
    if ((int)level < 0 || level > TM_LOG_DEBUG)
        level = TM_LOG_ERROR;

    out_t fo = {fields, 0, sizeof(fields) - 1, false};
    va_list ap;
    va_start(ap, fields_fmt);
    format_fields(&fo, fields_fmt, &ap);
    va_end(ap);

    /* The newline's byte, and the JSON object's closing brace's, are held back. */
    out_t o = {line, 0, sizeof(line) - 2, false};
    char head[96];
    if (tm_log_json) {
        int k = snprintf(head, sizeof(head),
                         "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\","
                         "\"comp\":",
                         tmv.tm_year + 1900, tmv.tm_mon + 1, tmv.tm_mday, tmv.tm_hour, tmv.tm_min,
                         tmv.tm_sec, (long)(tv.tv_usec / 1000), level_names[level]);
        out_put(&o, head, k > 0 ? (size_t)k : 0);
        put_json(&o, comp);
        out_put(&o, ",\"msg\":", 7);
        put_json(&o, msg);
        if (fo.n > 0) {
            fields[fo.n] = '\0';
            out_put(&o, ",\"fields\":", 10);
            put_json(&o, fields);
        }
        line[o.n++] = '}';
    } else {
        int k = snprintf(head, sizeof(head),
                         "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s comp=",
                         tmv.tm_year + 1900, tmv.tm_mon + 1, tmv.tm_mday, tmv.tm_hour, tmv.tm_min,
                         tmv.tm_sec, (long)(tv.tv_usec / 1000), level_names[level]);
        out_put(&o, head, k > 0 ? (size_t)k : 0);
        put_value(&o, comp, strlen(comp), false);
        out_put(&o, " msg=", 5);
        put_value(&o, msg, strlen(msg), true);
        if (fo.n > 0) {
            out_putc(&o, ' ');
            out_put_some(&o, fields, fo.n);
        }
    }
    line[o.n++] = '\n';
    if (progress_shown) {
        write_above_progress(line, o.n);
        return;
    }
    ssize_t w = write(STDERR_FILENO, line, o.n);
    (void)w;
}

/* ---- the progress line ---- */

bool tm_log_is_terminal(void)
{
    int t = atomic_load_explicit(&stderr_tty, memory_order_relaxed);
    if (t < 0) {
        t = isatty(STDERR_FILENO) ? 1 : 0;
        atomic_store_explicit(&stderr_tty, t, memory_order_relaxed);
    }
    return t == 1;
}

/* Writes all of buf (a terminal may take it in pieces). */
static void write_all(const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        buf += w;
        n -= (size_t)w;
    }
}

/* A log line while a progress line is shown: erase it, print the line, draw it again. */
static void write_above_progress(const char *line, size_t n)
{
    char buf[4096 + sizeof(progress_text) + 16];
    pthread_mutex_lock(&progress_mu);
    size_t k = 0;
    memcpy(buf + k, "\r\033[K", 4);
    k += 4;
    memcpy(buf + k, line, n);
    k += n;
    size_t plen = strlen(progress_text);
    memcpy(buf + k, progress_text, plen);
    k += plen;
    write_all(buf, k);
    pthread_mutex_unlock(&progress_mu);
}

void tm_log_progress(const char *text)
{
    if (!tm_log_is_terminal())
        return;
    pthread_mutex_lock(&progress_mu);
    char buf[sizeof(progress_text) + 8];
    size_t k = 0;
    memcpy(buf, "\r\033[K", 4);
    k = 4;
    if (text == NULL) {
        progress_text[0] = '\0';
        atomic_store_explicit(&progress_shown, false, memory_order_relaxed);
    } else {
        /* Printable bytes only: a table name must not move the cursor or set colours. */
        size_t n = 0;
        for (const unsigned char *p = (const unsigned char *)text;
             *p != '\0' && n < sizeof(progress_text) - 1; p++)
            progress_text[n++] = (char)(*p < 0x20 || *p == 0x7f ? '?' : *p);
        progress_text[n] = '\0';
        memcpy(buf + k, progress_text, n);
        k += n;
        atomic_store_explicit(&progress_shown, true, memory_order_relaxed);
    }
    write_all(buf, k);
    pthread_mutex_unlock(&progress_mu);
}
