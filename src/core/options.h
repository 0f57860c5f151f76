/*
 * options.h — connector options as tables, checked by one generic parser.
 *
 * Each connector declares its options as a table of tm_option_def_t (Redis's
 * standardConfig is the model).  The SQL layer collects the `WITH (k = 'v')`
 * pairs of a CREATE TABLE into a tm_options_t and tm_options_validate() checks
 * them against the table: unknown names, missing required options, bad enum
 * values, bad durations and sizes all produce an error that names the option,
 * the value and the reason.  Secrets given as `${env:NAME}` or `${file:PATH}`
 * are expanded here.
 *
 * Secrets are never shown: tm_option_display() masks the values of options
 * typed TM_OPT_SECRET (the table's way to flag a secret, whatever connector),
 * every secret keyword of a TM_OPT_DSN (read by libpq's own parser), and
 * any option whose name tm_option_name_is_secret() recognises (passthrough
 * options such as kafka.sasl.password, which no table declares).
 *
 * References: `${env:NAME}` and `${file:PATH}` expand; `$${` is a literal
 * `${`; any other `${` is an error.  A ${file:} is at most
 * TM_OPTIONS_FILE_MAX bytes and must not be a directory or hold a NUL byte.
 *
 * Ownership: a tm_options_t owns copies of all keys and values.
 */
#ifndef TM_CORE_OPTIONS_H
#define TM_CORE_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest ${file:} secret read; a larger file is an error, not a value. */
#define TM_OPTIONS_FILE_MAX (4 << 20)

typedef enum tm_opt_type {
    TM_OPT_STRING = 1,
    TM_OPT_INT,
    TM_OPT_BOOL,
    TM_OPT_DURATION, /* '10s', '500ms', '2m', '1h' or a bare number of ms */
    TM_OPT_SIZE,     /* '64MB', '1GiB', '4096' bytes */
    TM_OPT_ENUM,     /* one of def->choices, '|'-separated */
    TM_OPT_SECRET,   /* string, masked in explain and logs */
    TM_OPT_DSN,      /* libpq-style "k=v ..." connection string; password masked */
} tm_opt_type_t;

typedef struct tm_option_def {
    const char *name;
    tm_opt_type_t type;
    bool required;
    const char *def;     /* default value as text, or NULL */
    const char *choices; /* TM_OPT_ENUM: "a|b|c" */
    const char *doc;     /* one sentence for explain and docs */
} tm_option_def_t;

typedef struct tm_option_kv {
    char *key;
    char *value; /* after ${env:}/${file:} expansion */
    char *raw;   /* as written in the job */
    const tm_option_def_t *def;
} tm_option_kv_t;

typedef struct tm_options {
    tm_option_kv_t *kv;
    int n, cap;
    const tm_option_def_t *defs; /* set by tm_options_validate */
} tm_options_t;

tm_options_t *tm_options_new(void);
tm_options_t *tm_options_free(tm_options_t *opts);
int tm_options_set(tm_options_t *opts, const char *key, const char *value);
/* Raw lookup, without defaults: NULL if not set. */
const char *tm_options_lookup(const tm_options_t *opts, const char *key);

/*
 * Checks opts against defs (terminated by an entry with name == NULL).
 * `allow_prefix` names an option prefix passed through unchecked (e.g.
 * "kafka."), or NULL.  `where` names the table for messages ("table 'shop'").
 */
int tm_options_validate(tm_options_t *opts, const tm_option_def_t *defs,
                        const char *allow_prefix, const char *where, char *errstr,
                        size_t errstr_size);

/*
 * Typed getters.  They fall back to the def's default.  They assume
 * tm_options_validate() succeeded, so they do not fail: a missing optional
 * string with no default yields NULL.
 */
const char *tm_opt_str(const tm_options_t *opts, const char *name);
int64_t tm_opt_int(const tm_options_t *opts, const char *name);
bool tm_opt_bool(const tm_options_t *opts, const char *name);
int64_t tm_opt_duration_ms(const tm_options_t *opts, const char *name);
int64_t tm_opt_size(const tm_options_t *opts, const char *name);
/* True if the user wrote the option (not just a default). */
bool tm_opt_isset(const tm_options_t *opts, const char *name);

/*
 * Iterates a comma-separated option value ("a, b,c"): sets *item and *len to
 * the next entry with the blanks around it trimmed, advances *p past it, and
 * returns false when none is left.  Empty entries are skipped.  Commas inside
 * a pair of `quote` characters do not split (0: no quoting).
 */
bool tm_opt_next_item(const char **p, char quote, const char **item, size_t *len);

/* Parsers shared with the CLI.  Return 0 or TM_EINVAL. */
int tm_parse_duration_ms(const char *s, int64_t *out);
int tm_parse_size(const char *s, int64_t *out);
int tm_parse_bool(const char *s, bool *out);

/*
 * The DSN (key/value or URI form) as key=value text with every secret keyword
 * masked, or a fixed masked text if libpq cannot read it.  Caller frees;
 * NULL only when memory runs out.
 */
char *tm_dsn_mask(const char *dsn);
/* True if an option of this name holds a secret (sasl.password, kafka.ssl.key.password, …). */
bool tm_option_name_is_secret(const char *name);
/* The value to show for one option in explain/logs.  Caller frees. */
char *tm_option_display(const tm_option_kv_t *kv);

#endif
