/*
 * options.c — the generic option checker behind every connector's table.
 *
 * One parser for all connectors keeps the error messages uniform: each names
 * the table, the option, the value (masked if secret) and what is accepted.
 */
#include "core/options.h"
#include "core/error.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/*
 * Expands ${env:NAME} and ${file:PATH} references.  A file's trailing newline
 * is dropped, as Kubernetes secrets mounted as files usually end with one.
 */
static int expand_secrets(const char *in, char **out, char *errstr, size_t errstr_size,
                          const char *where, const char *key)
{
    size_t cap = strlen(in) + 1, len = 0;
    char *res = malloc(cap);
    if (res == NULL)
        return TM_ENOMEM;
    const char *p = in;
    while (*p) {
        const char *val = NULL;
        char *fbuf = NULL;
        size_t vlen = 0;
        if (p[0] == '$' && p[1] == '{') {
            const char *close = strchr(p, '}');
            if (close == NULL)
                goto literal;
            size_t reflen = (size_t)(close - p - 2);
            char ref[512];
            if (reflen >= sizeof(ref))
                goto literal;
            memcpy(ref, p + 2, reflen);
            ref[reflen] = '\0';
            if (strncmp(ref, "env:", 4) == 0) {
                val = getenv(ref + 4);
                if (val == NULL) {
                    free(res);
                    return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                                     "%s: option '%s' refers to environment variable %s, which is "
                                     "not set; export it or write the value in the job",
                                     where, key, ref + 4);
                }
                vlen = strlen(val);
            } else if (strncmp(ref, "file:", 5) == 0) {
                FILE *f = fopen(ref + 5, "rb");
                if (f == NULL) {
                    free(res);
                    return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                                     "%s: option '%s' refers to file %s, which cannot be read (%s)",
                                     where, key, ref + 5, strerror(errno));
                }
                size_t fcap = 4096;
                fbuf = malloc(fcap);
                while (fbuf != NULL) {
                    size_t r = fread(fbuf + vlen, 1, fcap - vlen, f);
                    vlen += r;
                    if (r == 0)
                        break;
                    if (vlen == fcap) {
                        char *nb = realloc(fbuf, fcap * 2);
                        if (nb == NULL) {
                            free(fbuf);
                            fbuf = NULL;
                            break;
                        }
                        fbuf = nb;
                        fcap *= 2;
                    }
                }
                fclose(f);
                if (fbuf == NULL) {
                    free(res);
                    return TM_ENOMEM;
                }
                while (vlen > 0 && (fbuf[vlen - 1] == '\n' || fbuf[vlen - 1] == '\r'))
                    vlen--;
                val = fbuf;
            } else {
                goto literal;
            }
            if (len + vlen + 1 > cap) {
                cap = len + vlen + strlen(close) + 1;
                char *nr = realloc(res, cap);
                if (nr == NULL) {
                    free(res);
                    free(fbuf);
                    return TM_ENOMEM;
                }
                res = nr;
            }
            memcpy(res + len, val, vlen);
            len += vlen;
            free(fbuf);
            p = close + 1;
            continue;
        }
    literal:
        if (len + 2 > cap) {
            cap = cap * 2 + 2;
            char *nr = realloc(res, cap);
            if (nr == NULL) {
                free(res);
                return TM_ENOMEM;
            }
            res = nr;
        }
        res[len++] = *p++;
    }
    res[len] = '\0';
    *out = res;
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

char *tm_dsn_mask(const char *dsn)
{
    if (dsn == NULL)
        return strdup("");
    size_t len = strlen(dsn);
    /* Masking can lengthen a short password ("password=x" becomes 13 bytes). */
    char *out = malloc(len * 2 + 16);
    if (out == NULL)
        return NULL;
    /* URI form: postgresql://user:secret@host/db */
    const char *scheme = strstr(dsn, "://");
    if (scheme != NULL) {
        const char *at = strchr(scheme + 3, '@');
        const char *colon = strchr(scheme + 3, ':');
        if (at != NULL && colon != NULL && colon < at) {
            size_t pre = (size_t)(colon - dsn) + 1;
            memcpy(out, dsn, pre);
            memcpy(out + pre, "****", 4);
            strcpy(out + pre + 4, at);
        } else {
            strcpy(out, dsn);
        }
        /* Also mask a password=... query parameter. */
        char *q = strstr(out, "password=");
        if (q != NULL) {
            char *e = q + 9;
            while (*e && *e != '&')
                e++;
            memmove(q + 13, e, strlen(e) + 1);
            memcpy(q + 9, "****", 4);
        }
        return out;
    }
    /* key=value form; values may be quoted with single quotes. */
    size_t o = 0;
    const char *p = dsn;
    while (*p) {
        if ((p == dsn || isspace((unsigned char)p[-1])) && strncasecmp(p, "password", 8) == 0) {
            const char *q = p + 8;
            while (*q == ' ')
                q++;
            if (*q == '=') {
                q++;
                while (*q == ' ')
                    q++;
                memcpy(out + o, "password=****", 13);
                o += 13;
                if (*q == '\'') {
                    q++;
                    while (*q && *q != '\'') {
                        if (*q == '\\' && q[1])
                            q++;
                        q++;
                    }
                    if (*q == '\'')
                        q++;
                } else {
                    while (*q && !isspace((unsigned char)*q))
                        q++;
                }
                p = q;
                continue;
            }
        }
        out[o++] = *p++;
    }
    out[o] = '\0';
    return out;
}

char *tm_option_display(const tm_option_kv_t *kv)
{
    if (kv->def != NULL && kv->def->type == TM_OPT_SECRET)
        return strdup("****");
    if (kv->def != NULL && kv->def->type == TM_OPT_DSN)
        return tm_dsn_mask(kv->value);
    /* Anything that looks like a secret by name is masked too. */
    if (strstr(kv->key, "password") || strstr(kv->key, "secret") || strstr(kv->key, "token") ||
        strstr(kv->key, "sasl.jaas") || strstr(kv->key, "key.pem") || strstr(kv->key, "ssl_key") ||
        strstr(kv->key, "private"))
        return strdup("****");
    /* Show a ${env:}/${file:} reference as written, never its value. */
    if (kv->raw != NULL && strstr(kv->raw, "${") != NULL)
        return strdup(kv->raw);
    return strdup(kv->value);
}
