/*
 * options.c — the generic option checker behind every connector's table.
 *
 * One parser for all connectors keeps the error messages uniform: each names
 * the table, the option, the value (masked if secret) and what is accepted.
 */
#include "core/options.h"
#include "core/buf.h"
#include "core/error.h"

#include <ctype.h>
#include <errno.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

tm_options_t *tm_options_new(void)
{
    return calloc(1, sizeof(tm_options_t));
}

tm_options_t *tm_options_free(tm_options_t *opts)
{
    if (opts == NULL)
        return NULL;
    for (int i = 0; i < opts->n; i++) {
        free(opts->kv[i].key);
        free(opts->kv[i].value);
        free(opts->kv[i].raw);
    }
    free(opts->kv);
    free(opts);
    return NULL;
}

static tm_option_kv_t *opts_find(const tm_options_t *opts, const char *key)
{
    for (int i = 0; i < opts->n; i++)
        if (strcasecmp(opts->kv[i].key, key) == 0)
            return &opts->kv[i];
    return NULL;
}

int tm_options_set(tm_options_t *opts, const char *key, const char *value)
{
    tm_option_kv_t *kv = opts_find(opts, key);
    if (kv == NULL) {
        if (opts->n == opts->cap) {
            int ncap = opts->cap ? opts->cap * 2 : 8;
            tm_option_kv_t *p = realloc(opts->kv, sizeof(*p) * (size_t)ncap);
            if (p == NULL)
                return TM_ENOMEM;
            opts->kv = p;
            opts->cap = ncap;
        }
        kv = &opts->kv[opts->n++];
        memset(kv, 0, sizeof(*kv));
        kv->key = strdup(key);
        for (char *c = kv->key; c && *c; c++)
            *c = (char)tolower((unsigned char)*c);
    } else {
        free(kv->value);
        free(kv->raw);
    }
    kv->value = strdup(value);
    kv->raw = strdup(value);
    if (kv->key == NULL || kv->value == NULL || kv->raw == NULL)
        return TM_ENOMEM;
    return 0;
}

const char *tm_options_lookup(const tm_options_t *opts, const char *key)
{
    tm_option_kv_t *kv = opts_find(opts, key);
    return kv ? kv->value : NULL;
}

int tm_parse_bool(const char *s, bool *out)
{
    if (!strcasecmp(s, "true") || !strcasecmp(s, "on") || !strcasecmp(s, "yes") ||
        !strcmp(s, "1")) {
        *out = true;
        return 0;
    }
    if (!strcasecmp(s, "false") || !strcasecmp(s, "off") || !strcasecmp(s, "no") ||
        !strcmp(s, "0")) {
        *out = false;
        return 0;
    }
    return TM_EINVAL;
}

int tm_parse_duration_ms(const char *s, int64_t *out)
{
    static const struct {
        const char *unit;
        double ms;
    } units[] = {
        {"ms", 1},      {"s", 1000},     {"sec", 1000},   {"seconds", 1000}, {"second", 1000},
        {"m", 60000},   {"min", 60000},  {"minutes", 60000}, {"minute", 60000},
        {"h", 3600000}, {"hours", 3600000}, {"hour", 3600000}, {"d", 86400000},
        {"days", 86400000}, {"day", 86400000}, {"", 1},
    };
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno != 0 || v < 0)
        return TM_EINVAL;
    while (*end == ' ')
        end++;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(end, units[i].unit) == 0) {
            double ms = v * units[i].ms;
            if (ms > 9.2e15)
                return TM_EINVAL;
            *out = (int64_t)ms;
            return 0;
        }
    }
    return TM_EINVAL;
}

int tm_parse_size(const char *s, int64_t *out)
{
    static const struct {
        const char *unit;
        double mult;
    } units[] = {
        {"", 1},           {"b", 1},         {"kb", 1e3},         {"mb", 1e6},
        {"gb", 1e9},       {"tb", 1e12},     {"kib", 1024.0},     {"mib", 1048576.0},
        {"gib", 1073741824.0}, {"tib", 1099511627776.0}, {"k", 1024.0}, {"m", 1048576.0},
        {"g", 1073741824.0},
    };
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno != 0 || v < 0)
        return TM_EINVAL;
    while (*end == ' ')
        end++;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(end, units[i].unit) == 0) {
            *out = (int64_t)(v * units[i].mult);
            return 0;
        }
    }
    return TM_EINVAL;
}

/* Reads a ${file:} secret: a regular file (or a pipe) of at most TM_OPTIONS_FILE_MAX bytes. */
static int read_secret_file(const char *path, char **out, size_t *outlen, char *errstr,
                            size_t errstr_size, const char *where, const char *key)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "%s: option '%s' refers to file %s, which cannot be read (%s)", where,
                         key, path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "%s: option '%s' refers to %s, which is a directory; name the file "
                         "that holds the value",
                         where, key, path);
    }
    /* Counted as read, so /dev/zero or a pipe cannot make it grow without bound. */
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    int rc = 0;
    while (buf != NULL) {
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0)
            break;
        if (len > TM_OPTIONS_FILE_MAX) {
            rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                           "%s: option '%s' refers to file %s, which is larger than %d MiB; "
                           "a secret file holds one value",
                           where, key, path, TM_OPTIONS_FILE_MAX >> 20);
            break;
        }
        if (len == cap) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    if (rc == 0 && buf != NULL && ferror(f))
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "%s: option '%s' refers to file %s, which cannot be read (%s)", where, key,
                       path, strerror(errno));
    fclose(f);
    if (buf == NULL)
        return TM_ENOMEM;
    if (rc == 0 && memchr(buf, '\0', len) != NULL)
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "%s: option '%s' refers to file %s, which holds a NUL byte; a secret "
                       "file holds one line of text",
                       where, key, path);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *outlen = len;
    return 0;
}

/*
 * Expands ${env:NAME} and ${file:PATH} references; `$${` is a literal `${`.
 * Every other use of `${` is an error (an unknown kind, no closing brace, an
 * empty name), so a mistyped reference never becomes a literal value.  A
 * file's trailing newline is dropped, as Kubernetes secrets mounted as files
 * usually end with one.  Messages name the reference, never its value.
 */
static int expand_secrets(const char *in, char **out, char *errstr, size_t errstr_size,
                          const char *where, const char *key)
{
    tm_buf_t b = {0};
    const char *p = in;
    int rc = 0;
    while (rc == 0 && *p) {
        if (p[0] == '$' && p[1] == '$' && p[2] == '{') {
            rc = tm_buf_append(&b, "${", 2);
            p += 3;
            continue;
        }
        if (!(p[0] == '$' && p[1] == '{')) {
            const char *next = strchr(p + 1, '$');
            size_t n = next ? (size_t)(next - p) : strlen(p);
            rc = tm_buf_append(&b, p, n);
            p += n;
            continue;
        }
        const char *close = strchr(p, '}');
        const char *colon = strchr(p, ':');
        if (close == NULL) {
            rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                           "%s: option '%s' has a '${' reference with no closing '}'; write "
                           "${env:NAME} or ${file:PATH}, or $${ for a literal '${'",
                           where, key);
            break;
        }
        size_t reflen = (size_t)(close - p - 2);
        char ref[PATH_MAX + 8];
        if (reflen >= sizeof(ref)) {
            rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                           "%s: option '%s' has a '${…}' reference longer than %zu bytes", where,
                           key, sizeof(ref) - 1);
            break;
        }
        memcpy(ref, p + 2, reflen);
        ref[reflen] = '\0';
        bool is_env = strncmp(ref, "env:", 4) == 0, is_file = strncmp(ref, "file:", 5) == 0;
        if (!is_env && !is_file) {
            size_t kl = colon != NULL && colon < close ? (size_t)(colon - p - 2) : reflen;
            rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                           "%s: option '%s' has an unknown reference '${%.*s…}'; write "
                           "${env:NAME} or ${file:PATH}, or $${ for a literal '${'",
                           where, key, (int)(kl > 32 ? 32 : kl), ref);
            break;
        }
        const char *name = ref + (is_env ? 4 : 5);
        if (*name == '\0') {
            rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                           "%s: option '%s' has an empty ${%s} reference; name the %s", where,
                           key, is_env ? "env:" : "file:",
                           is_env ? "environment variable" : "file");
            break;
        }
        if (is_env) {
            const char *val = getenv(name);
            if (val == NULL) {
                rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                               "%s: option '%s' refers to environment variable %s, which is "
                               "not set; export it or write the value in the job",
                               where, key, name);
                break;
            }
            rc = tm_buf_append(&b, val, strlen(val));
        } else {
            char *fbuf = NULL;
            size_t vlen = 0;
            rc = read_secret_file(name, &fbuf, &vlen, errstr, errstr_size, where, key);
            if (rc != 0)
                break;
            while (vlen > 0 && (fbuf[vlen - 1] == '\n' || fbuf[vlen - 1] == '\r'))
                vlen--;
            rc = tm_buf_append(&b, fbuf, vlen);
            free(fbuf);
        }
        p = close + 1;
    }
    if (rc == 0)
        rc = tm_buf_append(&b, "", 1);
    if (rc != 0) {
        tm_buf_release(&b);
        return rc;
    }
    *out = (char *)b.data;
    return 0;
}

static const tm_option_def_t *def_find(const tm_option_def_t *defs, const char *name)
{
    for (const tm_option_def_t *d = defs; d && d->name; d++)
        if (strcasecmp(d->name, name) == 0)
            return d;
    return NULL;
}

static bool choice_ok(const char *choices, const char *v)
{
    size_t vl = strlen(v);
    const char *p = choices;
    while (p && *p) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        if (l == vl && strncasecmp(p, v, l) == 0)
            return true;
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

static int check_value(const tm_option_def_t *d, const char *v, const char *where, char *errstr,
                       size_t errstr_size)
{
    int64_t i64;
    bool b;
    char *end;
    switch (d->type) {
    case TM_OPT_INT:
        errno = 0;
        i64 = strtoll(v, &end, 10);
        (void)i64;
        if (end == v || *end != '\0' || errno != 0)
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "%s: option '%s' = '%s' is not an integer", where, d->name, v);
        return 0;
    case TM_OPT_BOOL:
        if (tm_parse_bool(v, &b) != 0)
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "%s: option '%s' = '%s' is not a boolean; use true or false", where,
                             d->name, v);
        return 0;
    case TM_OPT_DURATION:
        if (tm_parse_duration_ms(v, &i64) != 0)
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "%s: option '%s' = '%s' is not a duration; write e.g. '500ms', "
                             "'10s', '5m' or '1h'",
                             where, d->name, v);
        return 0;
    case TM_OPT_SIZE:
        if (tm_parse_size(v, &i64) != 0)
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "%s: option '%s' = '%s' is not a size; write e.g. '64MB' or '1GiB'",
                             where, d->name, v);
        return 0;
    case TM_OPT_ENUM:
        if (!choice_ok(d->choices, v))
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "%s: option '%s' = '%s' is not one of %s", where, d->name, v,
                             d->choices);
        return 0;
    default:
        return 0;
    }
}

int tm_options_validate(tm_options_t *opts, const tm_option_def_t *defs, const char *allow_prefix,
                        const char *where, char *errstr, size_t errstr_size)
{
    opts->defs = defs;
    for (int i = 0; i < opts->n; i++) {
        tm_option_kv_t *kv = &opts->kv[i];
        kv->def = def_find(defs, kv->key);
        if (kv->def == NULL) {
            if (allow_prefix != NULL && strncmp(kv->key, allow_prefix, strlen(allow_prefix)) == 0)
                continue;
            /* Offer the closest known names to help with typos. */
            char known[1024];
            size_t n = 0;
            known[0] = '\0';
            for (const tm_option_def_t *d = defs; d && d->name && n + 40 < sizeof(known); d++)
                n += (size_t)snprintf(known + n, sizeof(known) - n, "%s%s", n ? ", " : "",
                                      d->name);
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "%s: unknown option '%s'; known options are: %s", where, kv->key,
                             known);
        }
        char *expanded = NULL;
        int rc = expand_secrets(kv->raw, &expanded, errstr, errstr_size, where, kv->key);
        if (rc != 0)
            return rc;
        free(kv->value);
        kv->value = expanded;
        rc = check_value(kv->def, kv->value, where, errstr, errstr_size);
        if (rc != 0)
            return rc;
    }
    for (const tm_option_def_t *d = defs; d && d->name; d++) {
        if (d->required && opts_find(opts, d->name) == NULL)
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "%s: option '%s' is required (%s)", where, d->name,
                             d->doc ? d->doc : "no default");
    }
    return 0;
}

static const char *opt_value(const tm_options_t *opts, const char *name)
{
    tm_option_kv_t *kv = opts_find(opts, name);
    if (kv != NULL)
        return kv->value;
    const tm_option_def_t *d = def_find(opts->defs, name);
    return d ? d->def : NULL;
}

const char *tm_opt_str(const tm_options_t *opts, const char *name)
{
    return opt_value(opts, name);
}

int64_t tm_opt_int(const tm_options_t *opts, const char *name)
{
    const char *v = opt_value(opts, name);
    return v ? strtoll(v, NULL, 10) : 0;
}

bool tm_opt_bool(const tm_options_t *opts, const char *name)
{
    const char *v = opt_value(opts, name);
    bool b = false;
    if (v)
        tm_parse_bool(v, &b);
    return b;
}

int64_t tm_opt_duration_ms(const tm_options_t *opts, const char *name)
{
    const char *v = opt_value(opts, name);
    int64_t ms = 0;
    if (v)
        tm_parse_duration_ms(v, &ms);
    return ms;
}

int64_t tm_opt_size(const tm_options_t *opts, const char *name)
{
    const char *v = opt_value(opts, name);
    int64_t sz = 0;
    if (v)
        tm_parse_size(v, &sz);
    return sz;
}

bool tm_opt_isset(const tm_options_t *opts, const char *name)
{
    return opts_find(opts, name) != NULL;
}

/*
 * Names of options that hold secrets, for options no table declares
 * (passthrough prefixes such as kafka.) and as a safety net for the rest.
 * Exact names first: librdkafka's sensitive properties, libpq's and MySQL's
 * password keywords; then words that mark a secret anywhere in a name.
 */
static const char *const secret_names[] = {
    "sasl.password", "sasl.jaas.config", "sasl.oauthbearer.config",
    "sasl.oauthbearer.client.secret", "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.oauthbearer.assertion.private.key.pem", "ssl.key.password", "ssl.key.pem", "ssl_key",
    "ssl.keystore.password", "ssl.truststore.password", "password", "sslpassword", "passwd",
    "ssl-password", "ssl_password", NULL,
};
static const char *const secret_words[] = {"password", "passwd", "secret", "token", "credential",
                                           "private", "passphrase", "key.pem", "jaas", NULL};

bool tm_option_name_is_secret(const char *name)
{
    if (name == NULL)
        return false;
    for (const char *const *n = secret_names; *n; n++) {
        if (strcasecmp(name, *n) == 0)
            return true;
        /* A prefixed name (kafka.sasl.password, mysql.password) matches its unprefixed form. */
        size_t nl = strlen(*n), l = strlen(name);
        if (l > nl && name[l - nl - 1] == '.' && strcasecmp(name + l - nl, *n) == 0)
            return true;
    }
    for (const char *const *w = secret_words; *w; w++)
        if (strcasestr(name, *w) != NULL)
            return true;
    return false;
}

/* Appends a conninfo value, quoted when libpq would need quotes to read it back. */
static int append_conninfo_value(tm_buf_t *b, const char *v)
{
    bool quote = *v == '\0';
    for (const char *c = v; *c && !quote; c++)
        if (isspace((unsigned char)*c) || *c == '\'' || *c == '\\')
            quote = true;
    if (!quote)
        return tm_buf_puts(b, v);
    int rc = tm_buf_putc(b, '\'');
    for (const char *c = v; rc == 0 && *c; c++) {
        if (*c == '\'' || *c == '\\')
            rc = tm_buf_putc(b, '\\');
        if (rc == 0)
            rc = tm_buf_putc(b, *c);
    }
    return rc == 0 ? tm_buf_putc(b, '\'') : rc;
}

/*
 * libpq reads the connection string (key=value or URI form) with its own
 * parser, PQconninfoParse, so the masked text is what libpq would use: a
 * quoted or backslash-escaped password is masked whole, and so is every
 * keyword libpq itself marks as secret (dispchar "*": password,
 * sslpassword, and any added later).  The result is always key=value form.
 * A string libpq cannot read is masked entirely: its parse error may quote
 * the password, so it is not shown either.
 */
char *tm_dsn_mask(const char *dsn)
{
    if (dsn == NULL || *dsn == '\0')
        return strdup("");
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn, &err);
    if (opts == NULL) {
        PQfreemem(err);
        return strdup("**** (a connection string libpq cannot read)");
    }
    tm_buf_t b = {0};
    int rc = 0;
    for (PQconninfoOption *o = opts; rc == 0 && o->keyword != NULL; o++) {
        if (o->val == NULL)
            continue;
        if (b.len > 0)
            rc = tm_buf_putc(&b, ' ');
        if (rc == 0)
            rc = tm_buf_puts(&b, o->keyword);
        if (rc == 0)
            rc = tm_buf_putc(&b, '=');
        bool secret = (o->dispchar != NULL && strchr(o->dispchar, '*') != NULL) ||
                      tm_option_name_is_secret(o->keyword);
        if (rc == 0)
            rc = secret ? tm_buf_puts(&b, "****") : append_conninfo_value(&b, o->val);
    }
    PQconninfoFree(opts);
    if (rc == 0)
        rc = tm_buf_putc(&b, '\0');
    if (rc != 0) {
        tm_buf_release(&b);
        return NULL;
    }
    return b.data;
}

char *tm_option_display(const tm_option_kv_t *kv)
{
    if (kv->def != NULL && kv->def->type == TM_OPT_SECRET)
        return strdup("****");
    if (kv->def != NULL && kv->def->type == TM_OPT_DSN)
        return tm_dsn_mask(kv->value);
    /* Anything that looks like a secret by name is masked too. */
    if (tm_option_name_is_secret(kv->key))
        return strdup("****");
    /* Show a ${env:}/${file:} reference as written, never its value. */
    if (kv->raw != NULL && strstr(kv->raw, "${") != NULL)
        return strdup(kv->raw);
    return strdup(kv->value);
}

bool tm_opt_next_item(const char **p, char quote, const char **item, size_t *len)
{
    const char *q = *p;
    while (*q == ' ' || *q == '\t' || *q == ',')
        q++;
    if (*q == '\0') {
        *p = q;
        return false;
    }
    const char *start = q;
    bool quoted = false;
    while (*q && (quoted || *q != ',')) {
        if (quote != 0 && *q == quote)
            quoted = !quoted;
        q++;
    }
    const char *end = q;
    while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *p = q;
    *item = start;
    *len = (size_t)(end - start);
    return true;
}
