/*
 * debezium_opts.c — Debezium connector options that change what the encoder
 * writes (docs/compat.md, "Debezium options tidemark honours").
 *
 * Role: the pieces of the encoder that only a non-default option reaches,
 * kept apart from debezium_enc.c so that the hot path stays as it was:
 *
 *   message.key.columns        custom message keys, per table regex
 *   column.include/exclude.list  which columns a value carries
 *   include.unknown.datatypes  PostgreSQL types Debezium has no converter for
 *   hstore.handling.mode       hstore text → JSON object text
 *   interval.handling.mode     interval → ISO-8601 "PnYnMnDTnHnMnS"
 *   binary.handling.mode       bytes → base64, base64-url-safe or hex text
 *
 * Invariants:
 *   1. Names are matched as Debezium matches them: a regular expression
 *      (POSIX extended here, Java's in Debezium; the common subset agrees)
 *      against the whole fully-qualified name, ignoring case.
 *   2. The filter is immutable after tm__dbz_filter_new(); the encoder that
 *      owns it is its only reader.
 *   3. Nothing here crashes on any column text: malformed hstore text is
 *      TM_EINVAL, and the encoder writes null for it.
 *
 * Thread: reentrant; a filter belongs to its encoder's thread.
 */
#include "core/error.h"
#include "format/debezium.h"
#include "format/debezium_int.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TRY(x)                                                                                     \
    do {                                                                                           \
        int tm__rc = (x);                                                                          \
        if (tm__rc != 0)                                                                           \
            return tm__rc;                                                                         \
    } while (0)

/* One compiled regular expression of a list. */
typedef struct filt_re {
    regex_t re;
    bool ok;
} filt_re_t;

typedef struct filt_list {
    filt_re_t *re;
    int n;
} filt_list_t;

struct tm__dbz_filter {
    filt_list_t include; /* column.include.list */
    filt_list_t exclude; /* column.exclude.list */
    filt_list_t keys;    /* message.key.columns, as "<table regex>.<column regex>" */
};

static void list_free(filt_list_t *l)
{
    for (int i = 0; i < l->n; i++)
        if (l->re[i].ok)
            regfree(&l->re[i].re);
    free(l->re);
    l->re = NULL;
    l->n = 0;
}

/* Compiles `^(text)$`, case-insensitive, into the next slot of l. */
static int list_add(filt_list_t *l, const char *text, size_t len, const char *option, char *errstr,
                    size_t errstr_size)
{
    filt_re_t *re = realloc(l->re, (size_t)(l->n + 1) * sizeof(*l->re));
    if (re == NULL)
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    l->re = re;
    char *pat = malloc(len + 5);
    if (pat == NULL)
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    snprintf(pat, len + 5, "^(%.*s)$", (int)len, text);
    filt_re_t *r = &l->re[l->n];
    int rc = regcomp(&r->re, pat, REG_EXTENDED | REG_ICASE | REG_NOSUB);
    free(pat);
    r->ok = rc == 0;
    l->n++;
    if (rc != 0)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "%s: '%.*s' is not a regular expression; write one regular expression "
                         "per entry, separated by commas",
                         option, (int)len, text);
    return 0;
}

/*
 * Splits a Debezium regex list on commas, as Debezium's Strings.setOfRegex:
 * a comma inside {m,n} or escaped with a backslash does not split.  Blank
 * entries are skipped.  `prefix` (may be empty) is put before each entry.
 */
static int list_parse(filt_list_t *l, const char *spec, size_t speclen, const char *prefix,
                      const char *option, char *errstr, size_t errstr_size)
{
    size_t i = 0;
    while (i <= speclen) {
        size_t start = i;
        int brace = 0;
        while (i < speclen && !(spec[i] == ',' && brace == 0)) {
            if (spec[i] == '\\' && i + 1 < speclen)
                i++;
            else if (spec[i] == '{')
                brace++;
            else if (spec[i] == '}' && brace > 0)
                brace--;
            i++;
        }
        size_t a = start, b = i;
        while (a < b && (spec[a] == ' ' || spec[a] == '\t'))
            a++;
        while (b > a && (spec[b - 1] == ' ' || spec[b - 1] == '\t'))
            b--;
        if (b > a) {
            size_t plen = strlen(prefix);
            char *e = malloc(plen + (b - a) + 1);
            if (e == NULL)
                return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
            memcpy(e, prefix, plen);
            memcpy(e + plen, spec + a, b - a);
            e[plen + b - a] = '\0';
            int rc = list_add(l, e, plen + (b - a), option, errstr, errstr_size);
            free(e);
            TRY(rc);
        }
        i++;
    }
    return 0;
}

static bool blank(const char *s)
{
    if (s == NULL)
        return true;
    while (*s == ' ' || *s == '\t')
        s++;
    return *s == '\0';
}

/*
 * message.key.columns: "<table regex>:<col>,<col>;<table regex>:<col>", which
 * Debezium's Key.CustomKeyMapper turns into one column regex per column,
 * "<table regex>.<col>", matched against "schema.table.column".
 */
static int keys_parse(filt_list_t *l, const char *spec, char *errstr, size_t errstr_size)
{
    const char *p = spec;
    while (*p != '\0') {
        const char *end = strchr(p, ';');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *colon = memchr(p, ':', n);
        bool empty = true;
        for (size_t i = 0; i < n; i++)
            if (p[i] != ' ' && p[i] != '\t')
                empty = false;
        if (!empty) {
            if (colon == NULL || colon == p || colon + 1 == p + n)
                return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                                 "message_key_columns: '%.*s' is not '<table regex>:<column>"
                                 "[,<column>…]'; separate tables with ';'",
                                 (int)n, p);
            size_t tl = (size_t)(colon - p);
            while (tl > 0 && (p[tl - 1] == ' ' || p[tl - 1] == '\t'))
                tl--;
            const char *t = p;
            while (tl > 0 && (*t == ' ' || *t == '\t'))
                t++, tl--;
            char *prefix = malloc(tl + 2);
            if (prefix == NULL)
                return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
            memcpy(prefix, t, tl);
            prefix[tl] = '.';
            prefix[tl + 1] = '\0';
            int rc = list_parse(l, colon + 1, (size_t)(p + n - colon - 1), prefix,
                                "message_key_columns", errstr, errstr_size);
            free(prefix);
            TRY(rc);
        }
        p += n;
        if (*p == ';')
            p++;
    }
    return 0;
}

tm__dbz_filter_t *tm__dbz_filter_free(tm__dbz_filter_t *f)
{
    if (f == NULL)
        return NULL;
    list_free(&f->include);
    list_free(&f->exclude);
    list_free(&f->keys);
    free(f);
    return NULL;
}

int tm__dbz_filter_new(const tm_dbz_opts_t *opts, tm__dbz_filter_t **out, char *errstr,
                       size_t errstr_size)
{
    *out = NULL;
    if (blank(opts->column_include) && blank(opts->column_exclude) && blank(opts->key_columns))
        return 0;
    if (!blank(opts->column_include) && !blank(opts->column_exclude))
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "column_include_list and column_exclude_list are both set; set one of "
                         "them, as in Debezium");
    tm__dbz_filter_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    int rc = 0;
    if (!blank(opts->column_include))
        rc = list_parse(&f->include, opts->column_include, strlen(opts->column_include), "",
                        "column_include_list", errstr, errstr_size);
    if (rc == 0 && !blank(opts->column_exclude))
        rc = list_parse(&f->exclude, opts->column_exclude, strlen(opts->column_exclude), "",
                        "column_exclude_list", errstr, errstr_size);
    if (rc == 0 && !blank(opts->key_columns))
        rc = keys_parse(&f->keys, opts->key_columns, errstr, errstr_size);
    if (rc != 0) {
        tm__dbz_filter_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

/* "schema.table.column" (the db in place of a missing schema, as MySQL's names). */
static void column_id(const tm_schema_t *s, int i, char *buf, size_t size)
{
    const char *ns = s->namespace != NULL ? s->namespace : s->db;
    snprintf(buf, size, "%s%s%s.%s", ns ? ns : "", ns ? "." : "", s->table ? s->table : "",
             s->cols[i].name ? s->cols[i].name : "");
}

static bool list_match(const filt_list_t *l, const char *id)
{
    for (int k = 0; k < l->n; k++)
        if (l->re[k].ok && regexec(&l->re[k].re, id, 0, NULL, 0) == 0)
            return true;
    return false;
}

bool tm__dbz_filter_column(const tm__dbz_filter_t *f, const tm_schema_t *s, int i)
{
    if (f == NULL || (f->include.n == 0 && f->exclude.n == 0))
        return true;
    char id[1024];
    column_id(s, i, id, sizeof(id));
    if (f->include.n > 0)
        return list_match(&f->include, id);
    return !list_match(&f->exclude, id);
}

int tm__dbz_filter_key(const tm__dbz_filter_t *f, const tm_schema_t *s, int *cols)
{
    if (f == NULL || f->keys.n == 0)
        return 0;
    int n = 0;
    char id[1024];
    /* Table order, not the order of the option: Debezium filters table.columns(). */
    for (int i = 0; i < s->ncols; i++) {
        column_id(s, i, id, sizeof(id));
        if (list_match(&f->keys, id))
            cols[n++] = i;
    }
    return n;
}

/* ---- Types ---- */

bool tm__dbz_is_hstore(const tm_column_t *col)
{
    return (col->type == TM_T_OTHER || col->type == TM_T_TEXT) && col->db_type != NULL &&
           strcmp(col->db_type, "hstore") == 0;
}

bool tm__dbz_pg_unknown(const tm_column_t *col)
{
    /*
     * PostgreSQL types Debezium 3.6's PostgresValueConverter has no schema
     * for (its oid switch and the JDBC fallback both return null): without
     * include.unknown.datatypes it leaves such columns out.  Extension types
     * count too, except the ones Debezium knows by name.
     */
    static const char *const unknown[] = {
        "regproc",      "tid",          "xid",          "cid",           "lseg",
        "path",         "box",          "polygon",      "line",          "circle",
        "aclitem",      "regprocedure", "regoper",      "regoperator",   "regclass",
        "regtype",      "txid_snapshot", "pg_lsn",      "tsquery",       "regconfig",
        "regdictionary", "jsonpath",    "regnamespace", "regrole",       "regcollation",
        "int4multirange", "nummultirange", "tsmultirange", "tstzmultirange",
        "datemultirange", "int8multirange", "pg_snapshot", "xid8", NULL};
    static const char *const known_ext[] = {"hstore", "citext", "ltree", "geometry",
                                            "geography", "isbn", "vector", "halfvec",
                                            "sparsevec", NULL};
    if (col->type != TM_T_OTHER || col->db_type == NULL)
        return false;
    for (int i = 0; unknown[i] != NULL; i++)
        if (strcmp(col->db_type, unknown[i]) == 0)
            return true;
    if (col->type_oid < 16384)
        return false;
    for (int i = 0; known_ext[i] != NULL; i++)
        if (strcmp(col->db_type, known_ext[i]) == 0)
            return false;
    return true;
}

/* ---- Values ---- */

int tm__dbz_append_binary(tm_buf_t *out, int mode, const void *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *b = p;
    TRY(tm_buf_putc(out, '"'));
    if (mode == TM_BINARY_HEX) {
        TRY(tm_buf_reserve(out, 2 * n + 2));
        for (size_t i = 0; i < n; i++) {
            out->data[out->len++] = hex[b[i] >> 4];
            out->data[out->len++] = hex[b[i] & 15];
        }
    } else {
        size_t start = out->len;
        TRY(tm_buf_append_base64(out, p, n));
        /* java.util.Base64.getUrlEncoder(): the URL alphabet, padding kept. */
        if (mode == TM_BINARY_BASE64_URL)
            for (size_t i = start; i < out->len; i++)
                out->data[i] = out->data[i] == '+' ? '-' : out->data[i] == '/' ? '_' : out->data[i];
    }
    return tm_buf_putc(out, '"');
}

#define US_PER_SEC INT64_C(1000000)
#define US_PER_DAY INT64_C(86400000000)
#define US_PER_MONTH INT64_C(2629800000000)

/*
 * BigDecimal.valueOf(d).setScale(9, DOWN) when its scale exceeds 9, then
 * stripTrailingZeros().toPlainString(): the shortest text that reads back as
 * d (Double.toString), as plain decimal, cut toward zero to 9 digits.
 */
static void dbz_plain_seconds(double d, char *out, size_t size)
{
    char e[48];
    for (int p = 1; p <= 17; p++) {
        snprintf(e, sizeof(e), "%.*e", p - 1, d);
        if (strtod(e, NULL) == d)
            break;
    }
    /* e is "[-]d.ddde±XX": collect the digits and where the point goes. */
    char digits[24];
    size_t nd = 0;
    const char *q = e;
    bool neg = *q == '-';
    if (neg)
        q++;
    for (; *q != '\0' && *q != 'e' && nd < sizeof(digits) - 1; q++)
        if (*q >= '0' && *q <= '9')
            digits[nd++] = *q;
    long exp10 = *q == 'e' ? strtol(q + 1, NULL, 10) : 0;
    long pos = exp10 + 1; /* digits before the point */
    char plain[128];
    size_t n = 0;
    if (neg)
        plain[n++] = '-';
    if (pos <= 0) {
        plain[n++] = '0';
        plain[n++] = '.';
        for (long z = 0; z < -pos && n < 100; z++)
            plain[n++] = '0';
        for (size_t k = 0; k < nd && n < 120; k++)
            plain[n++] = digits[k];
    } else {
        for (long k = 0; k < pos && n < 100; k++)
            plain[n++] = (size_t)k < nd ? digits[k] : '0';
        if ((size_t)pos < nd) {
            plain[n++] = '.';
            for (size_t k = (size_t)pos; k < nd && n < 120; k++)
                plain[n++] = digits[k];
        }
    }
    plain[n] = '\0';
    char *dot = strchr(plain, '.');
    if (dot != NULL) {
        if (strlen(dot + 1) > 9)
            dot[10] = '\0';
        size_t m = strlen(plain);
        while (m > 0 && plain[m - 1] == '0')
            plain[--m] = '\0';
        if (m > 0 && plain[m - 1] == '.')
            plain[--m] = '\0';
    }
    snprintf(out, size, "%s", plain);
}

int tm__dbz_interval_iso(int64_t us, int32_t months, tm_buf_t *out)
{
    /*
     * Debezium's Interval.toIsoString(years, months, days, hours, minutes,
     * BigDecimal.valueOf(pgInterval.getSeconds())): the seconds are the
     * double whole + micros / 1e6 (dbz_plain_seconds).  The record keeps
     * months apart but holds days and time as one count, so the days are its
     * whole days (docs/compat.md: "25 hours" reads as 1 day 1 hour here).
     */
    __int128 rest = (__int128)us - (__int128)months * US_PER_MONTH;
    int64_t days = (int64_t)(rest / US_PER_DAY);
    int64_t t = (int64_t)(rest % US_PER_DAY);
    int64_t hours = t / (3600 * US_PER_SEC);
    t %= 3600 * US_PER_SEC;
    int64_t minutes = t / (60 * US_PER_SEC);
    t %= 60 * US_PER_SEC;
    int64_t whole = t / US_PER_SEC, micros = t % US_PER_SEC;
    double secs = (double)whole + (double)micros / 1000000.0;
    char sbuf[128];
    dbz_plain_seconds(secs, sbuf, sizeof(sbuf));
    if (strcmp(sbuf, "-0") == 0)
        strcpy(sbuf, "0");
    return tm_buf_appendf(out, "\"P%dY%dM%lldDT%lldH%lldM%sS\"", (int)(months / 12),
                          (int)(months % 12), (long long)days, (long long)hours,
                          (long long)minutes, sbuf);
}

/* ---- hstore ---- */

typedef struct hs_pair {
    size_t k_off, k_len, v_off, v_len; /* into the unescaped text buffer */
    bool v_null;
    int32_t hash;
    size_t order;
    size_t bucket;
} hs_pair_t;

/* Reads one "…" token with \" and \\ escapes into buf; returns the position after it. */
static bool hs_quoted(const char *s, size_t n, size_t *i, tm_buf_t *buf, size_t *off,
                      size_t *len)
{
    if (*i >= n || s[*i] != '"')
        return false;
    (*i)++;
    *off = buf->len;
    while (*i < n && s[*i] != '"') {
        if (s[*i] == '\\' && *i + 1 < n)
            (*i)++;
        if (tm_buf_putc(buf, s[*i]) != 0)
            return false;
        (*i)++;
    }
    if (*i >= n)
        return false;
    (*i)++;
    *len = buf->len - *off;
    return true;
}

/* java.lang.String.hashCode() of UTF-8 text (over its UTF-16 code units). */
static int32_t java_hash(const unsigned char *s, size_t n)
{
    uint32_t h = 0;
    for (size_t i = 0; i < n;) {
        uint32_t c = s[i];
        size_t k = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if (i + k > n)
            k = 1;
        if (k == 2)
            c = ((c & 0x1F) << 6) | (s[i + 1] & 0x3F);
        else if (k == 3)
            c = ((c & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
        else if (k == 4)
            c = ((c & 0x07) << 18) | ((s[i + 1] & 0x3F) << 12) | ((s[i + 2] & 0x3F) << 6) |
                (s[i + 3] & 0x3F);
        i += k;
        if (c >= 0x10000) {
            c -= 0x10000;
            h = 31 * h + (0xD800 + (c >> 10));
            h = 31 * h + (0xDC00 + (c & 0x3FF));
        } else {
            h = 31 * h + c;
        }
    }
    return (int32_t)h;
}

static int hs_cmp(const void *a, const void *b)
{
    const hs_pair_t *x = a, *y = b;
    if (x->bucket != y->bucket)
        return x->bucket < y->bucket ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order ? 1 : 0;
}

int tm__dbz_hstore_json(const char *s, size_t n, tm_buf_t *out)
{
    /*
     * PostgreSQL's hstore output is `"k"=>"v", "k2"=>NULL`.  Debezium reads it
     * with pgjdbc's HStoreConverter into a java.util.HashMap and writes the
     * map's entries in iteration order: by bucket of the keys' String hash in
     * a table of 16 doubled while more than 3/4 full, then insertion order.
     * A later duplicate key replaces the value in place.
     */
    tm_buf_t text;
    tm_buf_init(&text);
    hs_pair_t *pairs = NULL;
    size_t np = 0, cap = 0, i = 0;
    int rc = 0;
    while (rc == 0) {
        while (i < n && (s[i] == ' ' || s[i] == ','))
            i++;
        if (i >= n)
            break;
        hs_pair_t p;
        memset(&p, 0, sizeof(p));
        if (!hs_quoted(s, n, &i, &text, &p.k_off, &p.k_len)) {
            rc = TM_EINVAL;
            break;
        }
        while (i < n && s[i] == ' ')
            i++;
        if (i + 1 >= n || s[i] != '=' || s[i + 1] != '>') {
            rc = TM_EINVAL;
            break;
        }
        i += 2;
        while (i < n && s[i] == ' ')
            i++;
        if (i + 4 <= n && strncasecmp(s + i, "NULL", 4) == 0) {
            p.v_null = true;
            i += 4;
        } else if (!hs_quoted(s, n, &i, &text, &p.v_off, &p.v_len)) {
            rc = TM_EINVAL;
            break;
        }
        p.hash = java_hash((const unsigned char *)text.data + p.k_off, p.k_len);
        size_t dup = np;
        for (size_t k = 0; k < np; k++)
            if (pairs[k].k_len == p.k_len &&
                memcmp(text.data + pairs[k].k_off, text.data + p.k_off, p.k_len) == 0)
                dup = k;
        if (dup < np) {
            pairs[dup].v_null = p.v_null;
            pairs[dup].v_off = p.v_off;
            pairs[dup].v_len = p.v_len;
            continue;
        }
        if (np == cap) {
            size_t nc = cap ? cap * 2 : 16;
            hs_pair_t *np2 = realloc(pairs, nc * sizeof(*pairs));
            if (np2 == NULL) {
                rc = TM_ENOMEM;
                break;
            }
            pairs = np2;
            cap = nc;
        }
        p.order = np;
        pairs[np++] = p;
    }
    if (rc == 0) {
        size_t buckets = 16;
        while (np > buckets / 4 * 3)
            buckets *= 2;
        for (size_t k = 0; k < np; k++) {
            uint32_t h = (uint32_t)pairs[k].hash;
            pairs[k].bucket = (h ^ (h >> 16)) & (buckets - 1);
        }
        qsort(pairs, np, sizeof(*pairs), hs_cmp);
        rc = tm_buf_putc(out, '{');
        for (size_t k = 0; k < np && rc == 0; k++) {
            if (k > 0)
                rc = tm_buf_putc(out, ',');
            if (rc == 0)
                rc = tm_buf_append_json_str(out, text.data + pairs[k].k_off, pairs[k].k_len);
            if (rc == 0)
                rc = tm_buf_putc(out, ':');
            if (rc == 0)
                rc = pairs[k].v_null ? tm_buf_puts(out, "null")
                                     : tm_buf_append_json_str(out, text.data + pairs[k].v_off,
                                                              pairs[k].v_len);
        }
        if (rc == 0)
            rc = tm_buf_putc(out, '}');
    }
    free(pairs);
    tm_buf_release(&text);
    return rc;
}
