/*
 * pg_types.c — PostgreSQL type metadata and text-format value parsers.
 *
 * The builtin table lists every PostgreSQL 15 base type that can appear in a
 * user table, with its array type.  Oids of built-in types are fixed by
 * PostgreSQL's catalog (pg_type.dat), so no lookup is needed for them.
 *
 * Invariants:
 *   1. Parsers never read outside [s, s + len) and never crash on any input:
 *      text they do not understand yields TM_EPROTO.
 *   2. Nothing here depends on the process locale: numbers are parsed by
 *      hand or with strtod on a copied, validated string in the "C" form
 *      PostgreSQL prints.
 *
 * Thread: the builtin table is immutable; a type cache belongs to one thread.
 */
#include "postgres/pg_types.h"

#include "core/buf.h"
#include "core/error.h"
#include "postgres/pg_binary.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define US_PER_SEC INT64_C(1000000)
#define US_PER_DAY INT64_C(86400000000)
/* Debezium's MicroDuration month: 365.25 / 12 = 30.4375 days = 2 629 800 s exactly. */
#define US_PER_MONTH INT64_C(2629800000000)

typedef struct builtin {
    uint32_t oid;
    uint32_t array_oid;
    const char *name;
    tm_type_t type;
    uint8_t kind;
    const char *semantic;
} builtin_t;

static const builtin_t builtins[] = {
    {16, 1000, "bool", TM_T_BOOL, TM_PG_K_BOOL, NULL},
    {17, 1001, "bytea", TM_T_BYTES, TM_PG_K_BYTEA, NULL},
    {18, 1002, "char", TM_T_TEXT, TM_PG_K_TEXT, NULL},
    {19, 1003, "name", TM_T_TEXT, TM_PG_K_TEXT, NULL},
    {20, 1016, "int8", TM_T_INT64, TM_PG_K_INT, NULL},
    {21, 1005, "int2", TM_T_INT16, TM_PG_K_INT, NULL},
    {23, 1007, "int4", TM_T_INT32, TM_PG_K_INT, NULL},
    {24, 1008, "regproc", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {25, 1009, "text", TM_T_TEXT, TM_PG_K_TEXT, NULL},
    {26, 1028, "oid", TM_T_INT64, TM_PG_K_INT, NULL},
    {27, 1010, "tid", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {28, 1011, "xid", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {29, 1012, "cid", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {114, 199, "json", TM_T_JSON, TM_PG_K_JSON, "io.debezium.data.Json"},
    {142, 143, "xml", TM_T_TEXT, TM_PG_K_TEXT, "io.debezium.data.Xml"},
    {600, 1017, "point", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {601, 1018, "lseg", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {602, 1019, "path", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {603, 1020, "box", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {604, 1027, "polygon", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {628, 629, "line", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {650, 651, "cidr", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {700, 1021, "float4", TM_T_FLOAT32, TM_PG_K_FLOAT, NULL},
    {701, 1022, "float8", TM_T_FLOAT64, TM_PG_K_FLOAT, NULL},
    {718, 719, "circle", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {774, 775, "macaddr8", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {790, 791, "money", TM_T_NUMERIC, TM_PG_K_MONEY, NULL},
    {829, 1040, "macaddr", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {869, 1041, "inet", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {1033, 1034, "aclitem", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {1042, 1014, "bpchar", TM_T_TEXT, TM_PG_K_TEXT, NULL},
    {1043, 1015, "varchar", TM_T_TEXT, TM_PG_K_TEXT, NULL},
    {1082, 1182, "date", TM_T_DATE, TM_PG_K_DATE, NULL},
    {1083, 1183, "time", TM_T_TIME, TM_PG_K_TIME, NULL},
    {1114, 1115, "timestamp", TM_T_TIMESTAMP, TM_PG_K_TIMESTAMP, NULL},
    {1184, 1185, "timestamptz", TM_T_TIMESTAMPTZ, TM_PG_K_TIMESTAMPTZ, NULL},
    {1186, 1187, "interval", TM_T_INTERVAL, TM_PG_K_INTERVAL, NULL},
    {1266, 1270, "timetz", TM_T_TIMETZ, TM_PG_K_TIMETZ, NULL},
    {1560, 1561, "bit", TM_T_TEXT, TM_PG_K_TEXT, NULL},
    {1562, 1563, "varbit", TM_T_TEXT, TM_PG_K_TEXT, NULL},
    {1700, 1231, "numeric", TM_T_NUMERIC, TM_PG_K_NUMERIC, NULL},
    {1790, 2201, "refcursor", TM_T_TEXT, TM_PG_K_TEXT, NULL},
    {2202, 2207, "regprocedure", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {2203, 2208, "regoper", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {2204, 2209, "regoperator", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {2205, 2210, "regclass", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {2206, 2211, "regtype", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {2950, 2951, "uuid", TM_T_UUID, TM_PG_K_UUID, "io.debezium.data.Uuid"},
    {2970, 2949, "txid_snapshot", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {3220, 3221, "pg_lsn", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {3614, 3643, "tsvector", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {3615, 3645, "tsquery", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {3734, 3735, "regconfig", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {3769, 3770, "regdictionary", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {3802, 3807, "jsonb", TM_T_JSON, TM_PG_K_JSON, "io.debezium.data.Json"},
    {3904, 3905, "int4range", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {3906, 3907, "numrange", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {3908, 3909, "tsrange", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {3910, 3911, "tstzrange", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {3912, 3913, "daterange", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {3926, 3927, "int8range", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {4072, 4073, "jsonpath", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {4089, 4090, "regnamespace", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {4096, 4097, "regrole", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {4191, 4192, "regcollation", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {4451, 6150, "int4multirange", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {4532, 6151, "nummultirange", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {4533, 6152, "tsmultirange", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {4534, 6153, "tstzmultirange", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {4535, 6155, "datemultirange", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {4536, 6157, "int8multirange", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {5038, 5039, "pg_snapshot", TM_T_OTHER, TM_PG_K_OTHER, NULL},
    {5069, 271, "xid8", TM_T_OTHER, TM_PG_K_OTHER, NULL},
};

#define NBUILTINS (sizeof(builtins) / sizeof(builtins[0]))

/* Looks oid up as a scalar (*is_array false) or as the array of a builtin. */
static const builtin_t *builtin_find(uint32_t oid, bool *is_array)
{
    for (size_t i = 0; i < NBUILTINS; i++) {
        if (builtins[i].oid == oid) {
            *is_array = false;
            return &builtins[i];
        }
        if (builtins[i].array_oid == oid) {
            *is_array = true;
            return &builtins[i];
        }
    }
    return NULL;
}

bool tm_pg_type_is_builtin(uint32_t oid)
{
    bool is_array;
    return builtin_find(oid, &is_array) != NULL;
}

/* ---- Type cache ---- */

struct tm_pg_typecache {
    tm_pg_typeinfo_t *v;
    size_t n, cap;
};

tm_pg_typecache_t *tm_pg_typecache_new(void)
{
    return calloc(1, sizeof(tm_pg_typecache_t));
}

static void info_release(tm_pg_typeinfo_t *t)
{
    free(t->name);
    free(t->nspname);
    free(t->enum_labels);
}

tm_pg_typecache_t *tm_pg_typecache_free(tm_pg_typecache_t *tc)
{
    if (tc == NULL)
        return NULL;
    for (size_t i = 0; i < tc->n; i++)
        info_release(&tc->v[i]);
    free(tc->v);
    free(tc);
    return NULL;
}

static tm_pg_typeinfo_t *cache_find(const tm_pg_typecache_t *tc, uint32_t oid)
{
    if (tc == NULL)
        return NULL;
    for (size_t i = 0; i < tc->n; i++)
        if (tc->v[i].oid == oid)
            return &tc->v[i];
    return NULL;
}

const tm_pg_typeinfo_t *tm_pg_typecache_get(const tm_pg_typecache_t *tc, uint32_t oid)
{
    return cache_find(tc, oid);
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static tm_pg_typeinfo_t *cache_slot(tm_pg_typecache_t *tc, uint32_t oid)
{
    tm_pg_typeinfo_t *t = cache_find(tc, oid);
    if (t != NULL)
        return t;
    if (tc->n == tc->cap) {
        size_t ncap = tc->cap ? tc->cap * 2 : 16;
        tm_pg_typeinfo_t *v = realloc(tc->v, ncap * sizeof(*v));
        if (v == NULL)
            return NULL;
        tc->v = v;
        tc->cap = ncap;
    }
    t = &tc->v[tc->n++];
    memset(t, 0, sizeof(*t));
    t->oid = oid;
    return t;
}

int tm_pg_typecache_put(tm_pg_typecache_t *tc, const tm_pg_typeinfo_t *info)
{
    tm_pg_typeinfo_t copy = *info;
    copy.name = dup_or_null(info->name);
    copy.nspname = dup_or_null(info->nspname);
    copy.enum_labels = dup_or_null(info->enum_labels);
    if ((info->name && !copy.name) || (info->nspname && !copy.nspname) ||
        (info->enum_labels && !copy.enum_labels)) {
        info_release(&copy);
        return TM_ENOMEM;
    }
    if (copy.delim == '\0')
        copy.delim = ',';
    tm_pg_typeinfo_t *t = cache_slot(tc, info->oid);
    if (t == NULL) {
        info_release(&copy);
        return TM_ENOMEM;
    }
    info_release(t);
    *t = copy;
    return 0;
}

int tm_pg_typecache_note_name(tm_pg_typecache_t *tc, uint32_t oid, const char *nspname,
                              const char *name)
{
    tm_pg_typeinfo_t *t = cache_slot(tc, oid);
    if (t == NULL)
        return TM_ENOMEM;
    /*
     * A Type message names the *base* type of a domain (pgoutput resolves it
     * with getBaseType), so it never overrides what the catalog said; it only
     * names a type the catalog has not been asked about (typtype stays 0).
     */
    if (t->typtype != 0)
        return 0;
    char *n = strdup(name), *ns = strdup(nspname);
    if (n == NULL || ns == NULL) {
        free(n);
        free(ns);
        return TM_ENOMEM;
    }
    free(t->name);
    free(t->nspname);
    t->name = n;
    t->nspname = ns;
    return 0;
}

uint32_t tm_pg_type_missing(const tm_pg_typecache_t *tc, uint32_t oid)
{
    /* Domains over arrays of domains are legal; the depth bound keeps corrupt caches finite. */
    for (int depth = 0; depth < 8 && oid != 0; depth++) {
        if (tm_pg_type_is_builtin(oid))
            return 0;
        const tm_pg_typeinfo_t *t = cache_find(tc, oid);
        if (t == NULL || t->typtype == 0)
            return oid;
        if (t->typtype == 'd')
            oid = t->base_oid;
        else if (t->elem_oid != 0)
            oid = t->elem_oid;
        else
            return 0;
    }
    return 0;
}

/* ---- Column description ---- */

static int set_str(char **field, const char *value)
{
    tm_schema_set_str(field, value);
    return (value != NULL && *field == NULL) ? TM_ENOMEM : 0;
}

/* Scalar description of a resolved, non-array type. */
typedef struct scalar {
    tm_type_t type;
    uint8_t kind;
    const char *semantic;
    const char *name;
    const char *enum_labels;
    uint32_t oid;
} scalar_t;

/* Resolves domains; returns false for arrays (then elem_oid and delim are set). */
static bool resolve(const tm_pg_typecache_t *tc, uint32_t oid, int32_t *typmod, scalar_t *sc,
                    uint32_t *elem_oid, char *delim)
{
    memset(sc, 0, sizeof(*sc));
    sc->type = TM_T_OTHER;
    sc->kind = TM_PG_K_OTHER;
    sc->oid = oid;
    for (int depth = 0; depth < 8; depth++) {
        bool is_array;
        const builtin_t *b = builtin_find(oid, &is_array);
        if (b != NULL) {
            if (is_array) {
                *elem_oid = b->oid;
                *delim = b->oid == 603 ? ';' : ',';
                return false;
            }
            sc->type = b->type;
            sc->kind = b->kind;
            sc->semantic = b->semantic;
            sc->oid = oid;
            if (sc->name == NULL)
                sc->name = b->name;
            return true;
        }
        const tm_pg_typeinfo_t *t = cache_find(tc, oid);
        if (t == NULL)
            return true;
        if (sc->name == NULL)
            sc->name = t->name;
        if (t->typtype == 'd' && t->base_oid != 0) {
            if (*typmod < 0)
                *typmod = t->base_typmod;
            oid = t->base_oid;
            continue;
        }
        if (t->elem_oid != 0) {
            *elem_oid = t->elem_oid;
            *delim = t->delim ? t->delim : ',';
            return false;
        }
        if (t->typtype == 'e') {
            sc->type = TM_T_ENUM;
            sc->kind = TM_PG_K_ENUM;
            sc->semantic = "io.debezium.data.Enum";
            sc->enum_labels = t->enum_labels;
        }
        return true;
    }
    return true;
}

/* Precision, scale and length from a typmod (PostgreSQL's typmod encodings). */
static void apply_typmod(tm_column_t *col, uint32_t oid, uint8_t kind, int32_t typmod)
{
    col->precision = -1;
    col->scale = TM_SCALE_VARIABLE;
    col->length = -1;
    switch (kind) {
    case TM_PG_K_NUMERIC:
        if (typmod >= 4) {
            int32_t t = typmod - 4;
            col->precision = (t >> 16) & 0xffff;
            /* PostgreSQL 15 stores the scale as an 11-bit signed field (negative scales). */
            col->scale = ((t & 0x7ff) ^ 1024) - 1024;
        }
        break;
    case TM_PG_K_MONEY:
        col->scale = 2;
        break;
    case TM_PG_K_TIME:
    case TM_PG_K_TIMETZ:
    case TM_PG_K_TIMESTAMP:
    case TM_PG_K_TIMESTAMPTZ:
        if (typmod >= 0)
            col->precision = typmod;
        break;
    case TM_PG_K_INTERVAL:
        if (typmod >= 0 && (typmod & 0xffff) != 0xffff)
            col->precision = typmod & 0xffff;
        break;
    case TM_PG_K_TEXT:
        if ((oid == 1042 || oid == 1043) && typmod >= 4)
            col->length = typmod - 4;
        else if ((oid == 1560 || oid == 1562) && typmod >= 0)
            col->length = typmod;
        break;
    default:
        break;
    }
}

int tm_pg_column_describe(const tm_pg_typecache_t *tc, uint32_t oid, int32_t typmod,
                          tm_column_t *col, tm_pg_coltype_t *ct)
{
    scalar_t sc;
    uint32_t elem_oid = 0;
    char delim = ',';
    int32_t tm = typmod;
    int rc;
    const char *db_type;

    memset(ct, 0, sizeof(*ct));
    col->type_oid = oid;
    col->typmod = typmod;
    col->elem_type = 0;
    if (resolve(tc, oid, &tm, &sc, &elem_oid, &delim)) {
        col->type = sc.type;
        ct->kind = sc.kind;
        ct->bin = tm_pg_binary_format(sc.oid, sc.kind);
        apply_typmod(col, sc.oid, sc.kind, tm);
        db_type = sc.name;
    } else {
        /* An array: describe the element, then wrap it. */
        const tm_pg_typeinfo_t *t = cache_find(tc, oid);
        bool is_array;
        const builtin_t *b = builtin_find(oid, &is_array);
        int32_t etm = tm;
        scalar_t esc;
        uint32_t e2 = 0;
        char d2 = ',';
        if (!resolve(tc, elem_oid, &etm, &esc, &e2, &d2)) {
            /* Arrays of arrays do not exist in PostgreSQL; keep the text. */
            esc.type = TM_T_OTHER;
            esc.kind = TM_PG_K_OTHER;
            esc.semantic = NULL;
            esc.enum_labels = NULL;
        }
        col->type = TM_T_ARRAY;
        col->elem_type = esc.type;
        ct->kind = TM_PG_K_ARRAY;
        ct->elem_kind = esc.kind;
        ct->delim = delim;
        ct->elem_bin = tm_pg_binary_format(esc.oid, esc.kind);
        ct->bin = ct->elem_bin != TM_PG_BIN_NONE ? TM_PG_BIN_ARRAY : TM_PG_BIN_NONE;
        apply_typmod(col, esc.oid, esc.kind, etm);
        sc = esc;
        sc.semantic = NULL;
        db_type = t != NULL && t->name != NULL ? t->name : NULL;
        char namebuf[80];
        if (db_type == NULL && b != NULL) {
            snprintf(namebuf, sizeof(namebuf), "_%s", b->name);
            db_type = namebuf;
        }
        if ((rc = set_str(&col->db_type, db_type != NULL ? db_type : "unknown")) != 0)
            return rc;
        if ((rc = set_str(&col->semantic, NULL)) != 0)
            return rc;
        return set_str(&col->enum_values, esc.enum_labels);
    }
    char unknown[32];
    if (db_type == NULL) {
        snprintf(unknown, sizeof(unknown), "oid:%" PRIu32, oid);
        db_type = unknown;
    }
    if ((rc = set_str(&col->db_type, db_type)) != 0 ||
        (rc = set_str(&col->semantic, sc.semantic)) != 0 ||
        (rc = set_str(&col->enum_values, sc.enum_labels)) != 0)
        return rc;
    return 0;
}

/* ---- Scalar parsers ---- */

static int bad(char *errstr, size_t errstr_size, const char *what, const char *s, size_t len)
{
    return tm_seterr(errstr, errstr_size, TM_EPROTO, "invalid %s value \"%.*s\"", what,
                     (int)(len > 64 ? 64 : len), s);
}

int64_t tm_pg_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    /* Howard Hinnant's days_from_civil, valid for the whole proleptic calendar. */
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Reads 1..max digits into *out; returns number of digits read. */
static size_t digits(const char *s, size_t len, size_t max, int64_t *out)
{
    size_t i = 0;
    int64_t v = 0;
    while (i < len && i < max && s[i] >= '0' && s[i] <= '9') {
        v = v * 10 + (s[i] - '0');
        i++;
    }
    *out = v;
    return i;
}

static bool eq_ci(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len == n && strncasecmp(s, lit, n) == 0;
}

/* "YYYY-MM-DD"; returns characters consumed or 0. */
static size_t parse_ymd(const char *s, size_t len, int64_t *y, int64_t *mo, int64_t *d)
{
    size_t i = digits(s, len, 7, y);
    if (i < 1 || i >= len || s[i] != '-')
        return 0;
    i++;
    size_t n = digits(s + i, len - i, 2, mo);
    if (n != 2 || i + n >= len || s[i + n] != '-')
        return 0;
    i += n + 1;
    n = digits(s + i, len - i, 2, d);
    if (n != 2)
        return 0;
    if (*mo < 1 || *mo > 12 || *d < 1 || *d > 31)
        return 0;
    return i + n;
}

/* "HH:MM[:SS[.ffffff]]"; returns characters consumed or 0. */
static size_t parse_hms(const char *s, size_t len, int64_t *us)
{
    int64_t h, m, sec = 0, frac = 0;
    size_t i = digits(s, len, 2, &h);
    if (i != 2 || i >= len || s[i] != ':')
        return 0;
    i++;
    size_t n = digits(s + i, len - i, 2, &m);
    if (n != 2)
        return 0;
    i += n;
    if (i < len && s[i] == ':') {
        i++;
        n = digits(s + i, len - i, 2, &sec);
        if (n != 2)
            return 0;
        i += n;
        if (i < len && s[i] == '.') {
            i++;
            size_t start = i;
            int64_t scale = 100000;
            while (i < len && s[i] >= '0' && s[i] <= '9') {
                /* Digits past microseconds cannot occur in PostgreSQL output; ignore them. */
                frac += (s[i] - '0') * scale;
                scale /= 10;
                i++;
            }
            if (i == start)
                return 0;
        }
    }
    if (h > 24 || m > 59 || sec > 60 || (h == 24 && (m != 0 || sec != 0 || frac != 0)))
        return 0;
    *us = ((h * 60 + m) * 60 + sec) * US_PER_SEC + frac;
    return i;
}

/* "+HH[:MM[:SS]]" or "-…" or "Z"; returns characters consumed or 0. */
static size_t parse_offset(const char *s, size_t len, int64_t *off_sec)
{
    if (len >= 1 && (s[0] == 'Z' || s[0] == 'z')) {
        *off_sec = 0;
        return 1;
    }
    if (len < 2 || (s[0] != '+' && s[0] != '-'))
        return 0;
    int sign = s[0] == '-' ? -1 : 1;
    int64_t h, m = 0, sec = 0;
    size_t i = 1, n = digits(s + 1, len - 1, 2, &h);
    if (n == 0)
        return 0;
    i += n;
    if (i < len && s[i] == ':') {
        n = digits(s + i + 1, len - i - 1, 2, &m);
        if (n != 2)
            return 0;
        i += 1 + n;
        if (i < len && s[i] == ':') {
            n = digits(s + i + 1, len - i - 1, 2, &sec);
            if (n != 2)
                return 0;
            i += 1 + n;
        }
    }
    *off_sec = sign * ((h * 60 + m) * 60 + sec);
    return i;
}

static bool ends_with_bc(const char *s, size_t *len)
{
    if (*len >= 3 && memcmp(s + *len - 3, " BC", 3) == 0) {
        *len -= 3;
        return true;
    }
    return false;
}

int tm_pg_parse_date(const char *s, size_t len, int64_t *days)
{
    if (eq_ci(s, len, "infinity")) {
        *days = TM_PG_DATE_POS_INF;
        return 0;
    }
    if (eq_ci(s, len, "-infinity")) {
        *days = TM_PG_DATE_NEG_INF;
        return 0;
    }
    bool bc = ends_with_bc(s, &len);
    int64_t y, m, d;
    size_t n = parse_ymd(s, len, &y, &m, &d);
    if (n == 0 || n != len)
        return TM_EPROTO;
    if (bc)
        y = 1 - y;
    *days = tm_pg_days_from_civil(y, (unsigned)m, (unsigned)d);
    return 0;
}

int tm_pg_parse_time(const char *s, size_t len, int64_t *us)
{
    size_t n = parse_hms(s, len, us);
    return n != 0 && n == len ? 0 : TM_EPROTO;
}

int tm_pg_parse_timetz(const char *s, size_t len, int64_t *utc_us)
{
    int64_t us, off;
    size_t n = parse_hms(s, len, &us);
    if (n == 0)
        return TM_EPROTO;
    size_t m = parse_offset(s + n, len - n, &off);
    if (m == 0 || n + m != len)
        return TM_EPROTO;
    int64_t v = (us - off * US_PER_SEC) % US_PER_DAY;
    if (v < 0)
        v += US_PER_DAY;
    *utc_us = v;
    return 0;
}

int tm_pg_parse_timestamp(const char *s, size_t len, bool with_tz, int64_t *us)
{
    if (eq_ci(s, len, "infinity")) {
        *us = TM_PG_TS_POS_INF;
        return 0;
    }
    if (eq_ci(s, len, "-infinity")) {
        *us = TM_PG_TS_NEG_INF;
        return 0;
    }
    bool bc = ends_with_bc(s, &len);
    int64_t y, mo, d, tod = 0, off = 0;
    size_t i = parse_ymd(s, len, &y, &mo, &d);
    if (i == 0)
        return TM_EPROTO;
    if (i < len && (s[i] == ' ' || s[i] == 'T')) {
        size_t n = parse_hms(s + i + 1, len - i - 1, &tod);
        if (n == 0)
            return TM_EPROTO;
        i += 1 + n;
    }
    if (i < len) {
        /* An offset on a timestamp without time zone would be a server bug; reject it. */
        size_t n = with_tz ? parse_offset(s + i, len - i, &off) : 0;
        if (n == 0)
            return TM_EPROTO;
        i += n;
    }
    if (i != len)
        return TM_EPROTO;
    if (bc)
        y = 1 - y;
    __int128 v = (__int128)tm_pg_days_from_civil(y, (unsigned)mo, (unsigned)d) * US_PER_DAY + tod -
                 (__int128)off * US_PER_SEC;
    /* Keep the infinity sentinels unambiguous: no finite value may reach them. */
    if (v >= TM_PG_TS_POS_INF || v <= TM_PG_TS_NEG_INF)
        return TM_EPROTO;
    *us = (int64_t)v;
    return 0;
}

/* The calendar months of an interval (row.h u.iv.months), saturated like clamp_us. */
static int32_t clamp_months(__int128 v)
{
    return v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int32_t)v;
}

/* Saturating conversion of a 128-bit microsecond count. */
static int64_t clamp_us(__int128 v)
{
    if (v > INT64_MAX)
        return INT64_MAX;
    if (v < INT64_MIN)
        return INT64_MIN;
    return (int64_t)v;
}

/* Reads a signed decimal with optional fraction; value in micro-units. */
static size_t signed_micro(const char *s, size_t len, __int128 *out)
{
    size_t i = 0;
    int sign = 1;
    if (i < len && (s[i] == '-' || s[i] == '+')) {
        sign = s[i] == '-' ? -1 : 1;
        i++;
    }
    size_t start = i;
    __int128 whole = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9' && i - start < 20) {
        whole = whole * 10 + (s[i] - '0');
        i++;
    }
    int64_t frac = 0, scale = 100000;
    bool anyfrac = false;
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            frac += (s[i] - '0') * scale;
            scale /= 10;
            anyfrac = true;
            i++;
        }
    }
    if (i == start || (i == start + 1 && s[start] == '.' && !anyfrac))
        return 0;
    *out = sign * (whole * 1000000 + frac);
    return i;
}

/* ISO 8601 "P1Y2M3DT4H5M6.5S" with per-field signs, as IntervalStyle iso_8601 prints. */
static int parse_interval_iso(const char *s, size_t len, int64_t *us, int32_t *months_out)
{
    size_t i = 0;
    bool neg_all = false;
    if (i < len && s[i] == '-') {
        neg_all = true;
        i++;
    }
    if (i >= len || s[i] != 'P')
        return TM_EPROTO;
    i++;
    __int128 months = 0, days = 0, micros = 0;
    bool time_part = false, any = false;
    while (i < len) {
        if (s[i] == 'T') {
            if (time_part)
                return TM_EPROTO;
            time_part = true;
            i++;
            continue;
        }
        __int128 v;
        size_t n = signed_micro(s + i, len - i, &v);
        if (n == 0 || i + n >= len)
            return TM_EPROTO;
        i += n;
        char unit = s[i++];
        any = true;
        if (!time_part) {
            /* Only seconds may carry a fraction in PostgreSQL's output. */
            switch (unit) {
            case 'Y': months += v / 1000000 * 12; break;
            case 'M': months += v / 1000000; break;
            case 'W': days += v / 1000000 * 7; break;
            case 'D': days += v / 1000000; break;
            default: return TM_EPROTO;
            }
        } else {
            switch (unit) {
            case 'H': micros += v * 3600; break;
            case 'M': micros += v * 60; break;
            case 'S': micros += v; break;
            default: return TM_EPROTO;
            }
        }
    }
    if (!any)
        return TM_EPROTO;
    __int128 total = months * US_PER_MONTH + days * US_PER_DAY + micros;
    *us = clamp_us(neg_all ? -total : total);
    *months_out = clamp_months(neg_all ? -months : months);
    return 0;
}

/* postgres style: "1 year 2 mons -3 days +04:05:06.5", "00:00:00", "-00:00:01". */
static int parse_interval_pg(const char *s, size_t len, int64_t *us, int32_t *months_out)
{
    size_t i = 0;
    __int128 total = 0, months = 0;
    bool any = false;
    while (i < len) {
        while (i < len && s[i] == ' ')
            i++;
        if (i >= len)
            break;
        size_t j = i;
        if (s[j] == '-' || s[j] == '+')
            j++;
        size_t k = j;
        while (k < len && s[k] >= '0' && s[k] <= '9')
            k++;
        if (k < len && s[k] == ':') {
            /* The time-of-day part: [-]HH:MM:SS[.f], hours may exceed 24. */
            int sign = s[i] == '-' ? -1 : 1;
            int64_t h, m;
            if (k == j || digits(s + j, len - j, 18, &h) != k - j)
                return TM_EPROTO;
            k++;
            size_t n = digits(s + k, len - k, 2, &m);
            if (n != 2)
                return TM_EPROTO;
            k += n;
            __int128 frac = 0;
            if (k < len && s[k] == ':') {
                if (k + 1 >= len || s[k + 1] == '-' || s[k + 1] == '+')
                    return TM_EPROTO;
                n = signed_micro(s + k + 1, len - k - 1, &frac);
                if (n == 0)
                    return TM_EPROTO;
                k += 1 + n;
            }
            total += sign * (((__int128)h * 3600 + m * 60) * US_PER_SEC + frac);
            i = k;
            any = true;
            continue;
        }
        __int128 v;
        size_t n = signed_micro(s + i, len - i, &v);
        if (n == 0)
            return TM_EPROTO;
        i += n;
        while (i < len && s[i] == ' ')
            i++;
        size_t w = i;
        while (i < len && isalpha((unsigned char)s[i]))
            i++;
        size_t wl = i - w;
        const char *word = s + w;
        if (wl >= 4 && strncmp(word, "year", 4) == 0) {
            total += v / 1000000 * 12 * US_PER_MONTH;
            months += v / 1000000 * 12;
        } else if (wl >= 3 && strncmp(word, "mon", 3) == 0) {
            total += v / 1000000 * US_PER_MONTH;
            months += v / 1000000;
        }
        else if (wl >= 3 && strncmp(word, "day", 3) == 0)
            total += v / 1000000 * US_PER_DAY;
        else
            return TM_EPROTO;
        any = true;
    }
    if (!any)
        return TM_EPROTO;
    *us = clamp_us(total);
    *months_out = clamp_months(months);
    return 0;
}

int tm_pg_parse_interval(const char *s, size_t len, int64_t *us, int32_t *months)
{
    int32_t m = 0;
    int rc;
    if (len > 0 && (s[0] == 'P' || (len > 1 && s[0] == '-' && s[1] == 'P')))
        rc = parse_interval_iso(s, len, us, &m);
    else
        rc = parse_interval_pg(s, len, us, &m);
    if (months)
        *months = rc == 0 ? m : 0;
    return rc;
}

static int parse_int(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (len == 0)
        return TM_EPROTO;
    if (s[0] == '-' || s[0] == '+') {
        neg = s[0] == '-';
        i++;
    }
    if (i == len)
        return TM_EPROTO;
    uint64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return TM_EPROTO;
        unsigned dgt = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - dgt) / 10)
            return TM_EPROTO;
        v = v * 10 + dgt;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1)
            return TM_EPROTO;
        *out = (int64_t)(0 - v);
    } else {
        if (v > (uint64_t)INT64_MAX)
            return TM_EPROTO;
        *out = (int64_t)v;
    }
    return 0;
}

static int parse_float(const char *s, size_t len, double *out)
{
    if (eq_ci(s, len, "NaN")) {
        *out = NAN;
        return 0;
    }
    if (eq_ci(s, len, "Infinity")) {
        *out = INFINITY;
        return 0;
    }
    if (eq_ci(s, len, "-Infinity")) {
        *out = -INFINITY;
        return 0;
    }
    char buf[64];
    if (len == 0 || len >= sizeof(buf))
        return TM_EPROTO;
    /* Only the characters of a C-locale float literal reach strtod. */
    for (size_t i = 0; i < len; i++)
        if (!isdigit((unsigned char)s[i]) && strchr("+-.eE", s[i]) == NULL)
            return TM_EPROTO;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    *out = strtod(buf, &end);
    return *end == '\0' ? 0 : TM_EPROTO;
}

/* Money in lc_monetary=C ("$1,234.56", "-$1.00") or other locales' simple forms. */
static int parse_money(tm_batch_t *batch, const char *s, size_t len, tm_datum_t *d)
{
    char buf[64];
    size_t n = 0;
    bool neg = false, any = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') {
            if (n >= sizeof(buf) - 2)
                return TM_EPROTO;
            buf[1 + n++] = c;
            any = true;
        } else if (c == '.') {
            if (n >= sizeof(buf) - 2)
                return TM_EPROTO;
            buf[1 + n++] = c;
        } else if (c == '-' || c == '(') {
            neg = true;
        } else if (c == ',' || c == '$' || c == ' ' || c == ')') {
            continue;
        } else {
            return TM_EPROTO;
        }
    }
    if (!any)
        return TM_EPROTO;
    buf[0] = '-';
    const char *start = neg ? buf : buf + 1;
    size_t total = neg ? n + 1 : n;
    return tm_numeric_parse(batch, d, start, total) == 0 ? 0 : TM_EPROTO;
}

static int parse_bytea(tm_batch_t *batch, const char *s, size_t len, tm_datum_t *d)
{
    uint8_t *out;
    size_t n = 0;
    if (len >= 2 && s[0] == '\\' && s[1] == 'x') {
        if ((len - 2) % 2 != 0)
            return TM_EPROTO;
        out = tm_arena_alloc(&batch->arena, (len - 2) / 2 + 1);
        if (out == NULL)
            return TM_ENOMEM;
        for (size_t i = 2; i < len; i += 2) {
            int hi = tm_hexval(s[i]), lo = tm_hexval(s[i + 1]);
            if (hi < 0 || lo < 0)
                return TM_EPROTO;
            out[n++] = (uint8_t)(hi << 4 | lo);
        }
    } else {
        /* bytea_output = escape: "\\" is a backslash, "\ooo" an octal byte. */
        out = tm_arena_alloc(&batch->arena, len + 1);
        if (out == NULL)
            return TM_ENOMEM;
        long m = tm_bytea_escape_decode(s, len, out);
        if (m < 0)
            return TM_EPROTO;
        n = (size_t)m;
    }
    out[n] = 0;
    d->u.var.ptr = (const char *)out;
    d->u.var.len = (uint32_t)n;
    return 0;
}

static int parse_scalar(tm_batch_t *batch, uint8_t kind, const char *s, size_t len,
                        tm_datum_t *d)
{
    int rc;
    switch (kind) {
    case TM_PG_K_BOOL:
        if (eq_ci(s, len, "t") || eq_ci(s, len, "true"))
            d->u.b = true;
        else if (eq_ci(s, len, "f") || eq_ci(s, len, "false"))
            d->u.b = false;
        else
            return TM_EPROTO;
        return 0;
    case TM_PG_K_INT:
        return parse_int(s, len, &d->u.i64);
    case TM_PG_K_FLOAT:
        return parse_float(s, len, &d->u.f64);
    case TM_PG_K_NUMERIC:
        rc = tm_numeric_parse(batch, d, s, len);
        return rc == TM_ENOMEM ? rc : rc != 0 ? TM_EPROTO : 0;
    case TM_PG_K_MONEY:
        return parse_money(batch, s, len, d);
    case TM_PG_K_BYTEA:
        return parse_bytea(batch, s, len, d);
    case TM_PG_K_DATE:
        return tm_pg_parse_date(s, len, &d->u.i64);
    case TM_PG_K_TIME:
        return tm_pg_parse_time(s, len, &d->u.i64);
    case TM_PG_K_TIMETZ:
        return tm_pg_parse_timetz(s, len, &d->u.i64);
    case TM_PG_K_TIMESTAMP:
        return tm_pg_parse_timestamp(s, len, false, &d->u.i64);
    case TM_PG_K_TIMESTAMPTZ:
        return tm_pg_parse_timestamp(s, len, true, &d->u.i64);
    case TM_PG_K_INTERVAL:
        return tm_pg_parse_interval(s, len, &d->u.iv.us, &d->u.iv.months);
    default:
        return tm_batch_set_var(batch, d, s, len) == 0 ? 0 : TM_ENOMEM;
    }
}

/* ---- Arrays ---- */

static const char *kind_name(uint8_t kind)
{
    static const char *const names[] = {
        [TM_PG_K_OTHER] = "text",          [TM_PG_K_BOOL] = "boolean",
        [TM_PG_K_INT] = "integer",         [TM_PG_K_FLOAT] = "floating-point",
        [TM_PG_K_NUMERIC] = "numeric",     [TM_PG_K_MONEY] = "money",
        [TM_PG_K_TEXT] = "text",           [TM_PG_K_BYTEA] = "bytea",
        [TM_PG_K_DATE] = "date",           [TM_PG_K_TIME] = "time",
        [TM_PG_K_TIMETZ] = "timetz",       [TM_PG_K_TIMESTAMP] = "timestamp",
        [TM_PG_K_TIMESTAMPTZ] = "timestamptz", [TM_PG_K_INTERVAL] = "interval",
        [TM_PG_K_UUID] = "uuid",           [TM_PG_K_JSON] = "json",
        [TM_PG_K_ENUM] = "enum",           [TM_PG_K_ARRAY] = "array",
    };
    return kind < sizeof(names) / sizeof(names[0]) && names[kind] ? names[kind] : "value";
}

/* Appends "HH:MM:SS[.ffffff]" for µs since midnight. */
static int append_time(tm_buf_t *out, int64_t us)
{
    int64_t s = us / US_PER_SEC, f = us % US_PER_SEC;
    int rc = tm_buf_appendf(out, "%02d:%02d:%02d", (int)(s / 3600), (int)(s / 60 % 60),
                            (int)(s % 60));
    if (rc == 0 && f != 0)
        rc = tm_buf_appendf(out, ".%06d", (int)f);
    return rc;
}

/* Civil date from days since epoch (Hinnant's civil_from_days). */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const int64_t doe = z - era * 146097;
    const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const int64_t mp = (5 * doy + 2) / 153;
    *d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    *m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* Appends one converted element as JSON. */
/*
 * A wide numeric's text (which the numeric parser accepted, so: sign, digits,
 * an optional point and fraction, an optional exponent) as a JSON number:
 * no '+', no leading zeros, a digit on both sides of the point.  PostgreSQL
 * never sends "0333" or ".5", but a fuzzer did, and JSON refuses them.
 */
static int append_json_decimal(tm_buf_t *out, const char *s, size_t len)
{
    size_t i = 0;
    int rc = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i < len && (s[i] == '-' || s[i] == '+')) {
        if (s[i] == '-')
            rc = tm_buf_putc(out, '-');
        i++;
    }
    while (i < len && s[i] == '0')
        i++;
    size_t d1 = i;
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++;
    rc = rc ? rc : d1 == i ? tm_buf_putc(out, '0') : tm_buf_append(out, s + d1, i - d1);
    if (rc == 0 && i < len && s[i] == '.') {
        size_t f0 = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i > f0) {
            rc = tm_buf_putc(out, '.');
            rc = rc ? rc : tm_buf_append(out, s + f0, i - f0);
        }
    }
    if (rc == 0 && i < len && (s[i] == 'e' || s[i] == 'E')) {
        size_t e0 = i;
        while (i < len && s[i] != ' ' && s[i] != '\t')
            i++;
        rc = tm_buf_append(out, s + e0, i - e0);
    }
    return rc;
}

static int append_elem_json(tm_buf_t *out, tm_batch_t *batch, uint8_t kind, const tm_datum_t *d)
{
    char tmp[160];
    switch (kind) {
    case TM_PG_K_BOOL:
        return tm_buf_puts(out, d->u.b ? "true" : "false");
    case TM_PG_K_INT:
    case TM_PG_K_DATE:
    case TM_PG_K_TIME:
    case TM_PG_K_TIMESTAMP:
    case TM_PG_K_INTERVAL:
        return tm_buf_append_i64(out, d->u.i64);
    case TM_PG_K_FLOAT:
        if (isnan(d->u.f64))
            return tm_buf_puts(out, "\"NaN\"");
        if (isinf(d->u.f64))
            return tm_buf_puts(out, d->u.f64 > 0 ? "\"Infinity\"" : "\"-Infinity\"");
        return tm_buf_appendf(out, "%.17g", d->u.f64);
    case TM_PG_K_NUMERIC:
    case TM_PG_K_MONEY:
        if (d->flags & (TM_DATUM_WIDE | TM_DATUM_NAN)) {
            if (d->flags & TM_DATUM_NAN)
                return tm_buf_append_json_str(out, d->u.var.ptr, d->u.var.len);
            return append_json_decimal(out, d->u.var.ptr, d->u.var.len);
        } else {
            size_t n = tm_numeric_format(d, tmp, sizeof(tmp));
            return tm_buf_append(out, tmp, n);
        }
    case TM_PG_K_BYTEA:
        if (tm_buf_putc(out, '"') != 0 ||
            tm_buf_append_base64(out, d->u.var.ptr, d->u.var.len) != 0)
            return TM_ENOMEM;
        return tm_buf_putc(out, '"');
    case TM_PG_K_TIMETZ: {
        /* io.debezium.time.ZonedTime: ISO local time in UTC with a Z. */
        int rc = tm_buf_putc(out, '"');
        if (rc == 0)
            rc = append_time(out, d->u.i64);
        return rc == 0 ? tm_buf_puts(out, "Z\"") : rc;
    }
    case TM_PG_K_TIMESTAMPTZ: {
        /* io.debezium.time.ZonedTimestamp: ISO-8601 in UTC. */
        if (d->u.i64 == TM_PG_TS_POS_INF)
            return tm_buf_puts(out, "\"infinity\"");
        if (d->u.i64 == TM_PG_TS_NEG_INF)
            return tm_buf_puts(out, "\"-infinity\"");
        int64_t days = d->u.i64 / US_PER_DAY, tod = d->u.i64 % US_PER_DAY;
        if (tod < 0) {
            tod += US_PER_DAY;
            days--;
        }
        int64_t y;
        unsigned m, dd;
        civil_from_days(days, &y, &m, &dd);
        int rc = tm_buf_appendf(out, "\"%04" PRId64 "-%02u-%02uT", y, m, dd);
        if (rc == 0)
            rc = append_time(out, tod);
        return rc == 0 ? tm_buf_puts(out, "Z\"") : rc;
    }
    default:
        (void)batch;
        return tm_buf_append_json_str(out, d->u.var.ptr, d->u.var.len);
    }
}

int tm_pg_elem_json(tm_buf_t *out, uint8_t kind, const tm_datum_t *d)
{
    return append_elem_json(out, NULL, kind, d);
}

typedef struct arr_parser {
    const char *s;
    size_t len, i;
    uint8_t elem_kind;
    char delim;
    tm_batch_t *batch;
    tm_buf_t *out;
    tm_buf_t elem; /* unescaped element text */
    char *errstr;
    size_t errstr_size;
} arr_parser_t;

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int arr_err(arr_parser_t *p, const char *why)
{
    return tm_seterr(p->errstr, p->errstr_size, TM_EPROTO,
                     "invalid array literal at offset %zu: %s", p->i, why);
}

static int arr_level(arr_parser_t *p, int depth);

static int arr_element(arr_parser_t *p, int depth)
{
    while (p->i < p->len && is_space(p->s[p->i]))
        p->i++;
    if (p->i >= p->len)
        return arr_err(p, "unexpected end");
    if (p->s[p->i] == '{')
        return arr_level(p, depth + 1);
    tm_buf_clear(&p->elem);
    bool quoted = false, any_escaped = false;
    if (p->s[p->i] == '"') {
        quoted = true;
        p->i++;
        for (;;) {
            if (p->i >= p->len)
                return arr_err(p, "unterminated quoted element");
            char c = p->s[p->i++];
            if (c == '"')
                break;
            if (c == '\\') {
                if (p->i >= p->len)
                    return arr_err(p, "dangling backslash");
                c = p->s[p->i++];
            }
            if (tm_buf_putc(&p->elem, c) != 0)
                return TM_ENOMEM;
        }
        while (p->i < p->len && is_space(p->s[p->i]))
            p->i++;
    } else {
        size_t last_significant = 0;
        while (p->i < p->len && p->s[p->i] != p->delim && p->s[p->i] != '}') {
            char c = p->s[p->i++];
            if (c == '"' || c == '{')
                return arr_err(p, "unexpected character in unquoted element");
            if (c == '\\') {
                if (p->i >= p->len)
                    return arr_err(p, "dangling backslash");
                c = p->s[p->i++];
                any_escaped = true;
                if (tm_buf_putc(&p->elem, c) != 0)
                    return TM_ENOMEM;
                last_significant = p->elem.len;
                continue;
            }
            if (tm_buf_putc(&p->elem, c) != 0)
                return TM_ENOMEM;
            if (!is_space(c))
                last_significant = p->elem.len;
        }
        p->elem.len = last_significant;
        if (p->elem.len == 0 && !any_escaped)
            return arr_err(p, "empty unquoted element");
    }
    if (!quoted && !any_escaped && eq_ci(p->elem.data, p->elem.len, "NULL"))
        return tm_buf_puts(p->out, "null");
    tm_datum_t d;
    memset(&d, 0, sizeof(d));
    const char *txt = p->elem.len ? p->elem.data : "";
    int rc = parse_scalar(p->batch, p->elem_kind, txt, p->elem.len, &d);
    if (rc == TM_ENOMEM)
        return rc;
    if (rc != 0)
        return tm_seterr(p->errstr, p->errstr_size, TM_EPROTO,
                         "invalid %s array element \"%.*s\"", kind_name(p->elem_kind),
                         (int)(p->elem.len > 64 ? 64 : p->elem.len), txt);
    return append_elem_json(p->out, p->batch, p->elem_kind, &d);
}

static int arr_level(arr_parser_t *p, int depth)
{
    if (depth > 16)
        return arr_err(p, "nested too deeply");
    if (p->i >= p->len || p->s[p->i] != '{')
        return arr_err(p, "expected '{'");
    p->i++;
    if (tm_buf_putc(p->out, '[') != 0)
        return TM_ENOMEM;
    while (p->i < p->len && is_space(p->s[p->i]))
        p->i++;
    if (p->i < p->len && p->s[p->i] == '}') {
        p->i++;
        return tm_buf_putc(p->out, ']');
    }
    for (bool first = true;; first = false) {
        if (!first && tm_buf_putc(p->out, ',') != 0)
            return TM_ENOMEM;
        int rc = arr_element(p, depth);
        if (rc != 0)
            return rc;
        while (p->i < p->len && is_space(p->s[p->i]))
            p->i++;
        if (p->i >= p->len)
            return arr_err(p, "unexpected end");
        char c = p->s[p->i++];
        if (c == '}')
            return tm_buf_putc(p->out, ']');
        if (c != p->delim)
            return arr_err(p, "expected delimiter or '}'");
    }
}

static int parse_array(tm_batch_t *batch, const tm_pg_coltype_t *ct, const char *s, size_t len,
                       tm_datum_t *d, char *errstr, size_t errstr_size)
{
    tm_buf_t out;
    tm_buf_init(&out);
    arr_parser_t p = {s, len, 0, ct->elem_kind, ct->delim ? ct->delim : ',', batch, &out,
                      {0}, errstr, errstr_size};
    tm_buf_init(&p.elem);
    /* Explicit bounds ("[0:2]={…}") precede the braces when the lower bound is not 1. */
    if (len > 0 && s[0] == '[') {
        const char *eq = memchr(s, '=', len);
        if (eq == NULL) {
            tm_buf_release(&p.elem);
            return arr_err(&p, "bounds without '='");
        }
        p.i = (size_t)(eq - s) + 1;
    }
    int rc = arr_level(&p, 1);
    if (rc == 0) {
        while (p.i < len && is_space(s[p.i]))
            p.i++;
        if (p.i != len)
            rc = arr_err(&p, "trailing characters");
    }
    if (rc == 0)
        rc = tm_batch_set_var(batch, d, out.len ? out.data : "", out.len) == 0 ? 0 : TM_ENOMEM;
    tm_buf_release(&out);
    tm_buf_release(&p.elem);
    return rc;
}

int tm_pg_value_parse(tm_batch_t *batch, const tm_pg_coltype_t *ct, const char *s, size_t len,
                      tm_datum_t *d, char *errstr, size_t errstr_size)
{
    memset(d, 0, sizeof(*d));
    if (ct->kind == TM_PG_K_ARRAY)
        return parse_array(batch, ct, s, len, d, errstr, errstr_size);
    int rc = parse_scalar(batch, ct->kind, s, len, d);
    if (rc == TM_EPROTO)
        return bad(errstr, errstr_size, kind_name(ct->kind), s, len);
    return rc;
}

/* ---- Column defaults, read as Debezium reads them ---- */

typedef struct {
    const char *name;        /* typname of a built-in type */
    const char *placeholder; /* the value of a function-call default */
    bool trim;               /* Debezium trims the expression first */
} dflt_rule_t;

/* Debezium's list of types with a default (PostgresDefaultValueConverter); nothing else has one. */
static const dflt_rule_t dflt_rules[] = {
    {"bit", "00", true},
    {"varbit", "0", true},
    {"bool", "false", true},
    {"bpchar", "", false},
    {"varchar", "", false},
    {"text", "", false},
    {"numeric", "0.0", true},
    {"float4", "0.0", true},
    {"float8", "0.0", true},
    {"int2", "0", true},
    {"int4", "0", true},
    {"int8", "0", true},
    {"json", "{}", false},
    {"jsonb", "{}", false},
    {"xml", "", false},
    {"uuid", "00000000-0000-0000-0000-000000000000", true},
    {"date", "1970-01-01", true},
    {"time", "00:00", true},
    {"timestamp", "1970-01-01", true},
    {"timestamptz", "1970-01-01", true},
    {"interval", "epoch", true},
};

/*
 * Debezium's test for a generated default: an optional '(', a word, '(' and
 * a ')' later on the same line (`nextval('s'::regclass)`, `now()`).
 */
static bool dflt_is_call(const char *s)
{
    const char *p = s + (*s == '(');
    const char *q = p;
    while (isalnum((unsigned char)*q) || *q == '_' || *q == '.')
        q++;
    if (q == p || *q != '(')
        return false;
    for (q++; *q != '\0' && *q != '\n'; q++)
        if (*q == ')')
            return true;
    return false;
}

/* The SQL-standard time functions written without parentheses, which Debezium counts as calls. */
static bool dflt_is_clock(const char *s, size_t len)
{
    static const char *const names[] = {"current_timestamp", "current_time", "current_date",
                                        "localtime", "localtimestamp"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == len && strncasecmp(s, names[i], len) == 0)
            return true;
    return false;
}

/*
 * An enum's default is only the form `'label'::type` with the column's own
 * type after the cast (schema-qualified or quoted alike); anything else has
 * no default, as in Debezium.
 */
static bool dflt_enum_label(const tm_column_t *col, const char *expr, const char **lit,
                            size_t *len)
{
    const char *cast = NULL;
    for (const char *p = strstr(expr, "::"); p != NULL; p = strstr(p + 2, "::"))
        cast = p;
    if (cast == NULL || cast - expr < 2 || expr[0] != '\'' || cast[-1] != '\'')
        return false;
    const char *tn = cast + 2;
    const char *dot = strrchr(tn, '.');
    if (dot != NULL)
        tn = dot + 1;
    size_t tl = strlen(tn);
    if (tl >= 2 && tn[0] == '"' && tn[tl - 1] == '"') {
        tn++;
        tl -= 2;
    }
    if (strlen(col->db_type) != tl || strncmp(col->db_type, tn, tl) != 0)
        return false;
    *lit = expr + 1;
    *len = (size_t)(cast - 1 - *lit);
    return true;
}

int tm_pg_default_parse(tm_batch_t *batch, const tm_column_t *col, const tm_pg_coltype_t *ct,
                        const char *expr, tm_datum_t *d, bool *has)
{
    *has = false;
    memset(d, 0, sizeof(*d));
    if (expr == NULL || col->db_type == NULL || ct->kind == TM_PG_K_ARRAY)
        return 0;
    char err[128];
    const char *lit = expr;
    size_t len = strlen(expr);
    if (ct->kind == TM_PG_K_ENUM) {
        if (!dflt_enum_label(col, expr, &lit, &len))
            return 0;
        int rc = tm_pg_value_parse(batch, ct, lit, len, d, err, sizeof(err));
        *has = rc == 0;
        return rc == TM_ENOMEM ? rc : 0;
    }
    if (!tm_pg_type_is_builtin(col->type_oid))
        return 0;
    const dflt_rule_t *rule = NULL;
    for (size_t i = 0; i < sizeof(dflt_rules) / sizeof(dflt_rules[0]); i++)
        if (strcmp(dflt_rules[i].name, col->db_type) == 0)
            rule = &dflt_rules[i];
    if (rule == NULL)
        return 0;
    /* Debezium trims the text for every type but the string ones. */
    if (rule->trim) {
        while (len > 0 && isspace((unsigned char)*lit)) {
            lit++;
            len--;
        }
        while (len > 0 && isspace((unsigned char)lit[len - 1]))
            len--;
    }
    if (len >= 6 && strncmp(lit, "NULL::", 6) == 0)
        return 0;
    if (dflt_is_call(lit) || dflt_is_clock(lit, len)) {
        lit = rule->placeholder;
        len = strlen(lit);
    } else {
        /* The first quoted literal, or the whole text when it has none. */
        const char *q = memchr(lit, '\'', len);
        if (q != NULL) {
            const char *end = lit + len;
            const char *e = q + 1;
            while (e < end && *e != '\'' && *e != '\n')
                e++;
            if (e == end || *e != '\'')
                return 0;
            lit = q + 1;
            len = (size_t)(e - lit);
        }
    }
    int rc;
    if (ct->kind == TM_PG_K_BOOL) {
        /* Java's Boolean.parseBoolean: "true" in any case, anything else is false. */
        d->u.b = len == 4 && strncasecmp(lit, "true", 4) == 0;
        *has = true;
        return 0;
    }
    rc = tm_pg_value_parse(batch, ct, lit, len, d, err, sizeof(err));
    if (rc == TM_ENOMEM)
        return rc;
    if (rc != 0)
        return 0;
    if (col->type == TM_T_NUMERIC) {
        /* BigDecimal takes no NaN, and a value with more decimals than the column fails. */
        if ((d->flags & TM_DATUM_NAN) != 0 ||
            (col->scale != TM_SCALE_VARIABLE && d->scale > col->scale))
            return 0;
    }
    *has = true;
    return 0;
}
