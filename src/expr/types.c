/*
 * types.c — type names, type parsing, and PostgreSQL's typing rules that
 * the builders apply: type categories, preferred types and the implicit
 * cast graph (pg_cast rows with castcontext 'i' among the supported types).
 *
 * Invariants:
 *   1. tm__can_implicit(t, t) is true; the graph is PostgreSQL 15's
 *      restricted to tm's types (int2 -> int4 -> int8 -> numeric -> float4
 *      -> float8 in that direction only; date -> timestamp -> timestamptz;
 *      varchar/enum/other -> text).
 *   2. Type names printed are PostgreSQL's format_type() names.
 *
 * Thread: any; constant tables only.
 */
#include "expr/expr_int.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

char tm__type_category(tm_type_t t)
{
    switch (t) {
    case TM_T_BOOL:
        return 'B';
    case TM_T_INT16:
    case TM_T_INT32:
    case TM_T_INT64:
    case TM_T_FLOAT32:
    case TM_T_FLOAT64:
    case TM_T_NUMERIC:
        return 'N';
    case TM_T_TEXT:
    case TM_T_ENUM:
    case TM_T_OTHER:
        return 'S';
    case TM_T_DATE:
    case TM_T_TIME:
    case TM_T_TIMETZ:
    case TM_T_TIMESTAMP:
    case TM_T_TIMESTAMPTZ:
        return 'D';
    case TM_T_INTERVAL:
        return 'T';
    case TM_T_ARRAY:
        return 'A';
    default:
        return 'U';
    }
}

bool tm__type_preferred(tm_type_t t)
{
    return t == TM_T_FLOAT64 || t == TM_T_TEXT || t == TM_T_TIMESTAMPTZ || t == TM_T_INTERVAL ||
           t == TM_T_BOOL;
}

int tm__num_rank(tm_type_t t)
{
    switch (t) {
    case TM_T_INT16:
        return 1;
    case TM_T_INT32:
        return 2;
    case TM_T_INT64:
        return 3;
    case TM_T_NUMERIC:
        return 4;
    case TM_T_FLOAT32:
        return 5;
    case TM_T_FLOAT64:
        return 6;
    default:
        return 0;
    }
}

bool tm__can_implicit(tm_type_t from, tm_type_t to)
{
    if (from == to || to == TM__T_ANY)
        return true;
    int rf = tm__num_rank(from), rt = tm__num_rank(to);
    if (rf && rt)
        return rf < rt;
    switch (from) {
    case TM_T_DATE:
        return to == TM_T_TIMESTAMP || to == TM_T_TIMESTAMPTZ;
    case TM_T_TIMESTAMP:
        return to == TM_T_TIMESTAMPTZ;
    case TM_T_TIME:
        return to == TM_T_INTERVAL || to == TM_T_TIMETZ;
    case TM_T_ENUM:
    case TM_T_OTHER:
    case TM_T_UUID:
        /* enum and unmapped values are text here; uuid -> text is assignment in PG. */
        return to == TM_T_TEXT && from != TM_T_UUID;
    default:
        return false;
    }
}

tm_expr_type_t tm__etype(tm_type_t t)
{
    tm_expr_type_t et = {.type = t, .elem_type = 0, .precision = -1, .scale = TM_SCALE_VARIABLE};
    return et;
}

const char *tm__type_sql_name(tm_type_t t)
{
    switch (t) {
    case TM_T_BOOL:
        return "boolean";
    case TM_T_INT16:
        return "smallint";
    case TM_T_INT32:
        return "integer";
    case TM_T_INT64:
        return "bigint";
    case TM_T_FLOAT32:
        return "real";
    case TM_T_FLOAT64:
        return "double precision";
    case TM_T_NUMERIC:
        return "numeric";
    case TM_T_TEXT:
        return "text";
    case TM_T_BYTES:
        return "bytea";
    case TM_T_JSON:
        return "json";
    case TM_T_UUID:
        return "uuid";
    case TM_T_DATE:
        return "date";
    case TM_T_TIME:
        return "time without time zone";
    case TM_T_TIMETZ:
        return "time with time zone";
    case TM_T_TIMESTAMP:
        return "timestamp without time zone";
    case TM_T_TIMESTAMPTZ:
        return "timestamp with time zone";
    case TM_T_INTERVAL:
        return "interval";
    case TM_T_ARRAY:
        return "text[]";
    case TM_T_ENUM:
        return "enum";
    case TM_T_OTHER:
        return "text";
    default:
        return "unknown";
    }
}

const char *tm_expr_type_name(const tm_expr_type_t *t, char *buf, size_t buflen)
{
    if (t->type == TM_T_NUMERIC && t->precision > 0)
        snprintf(buf, buflen, "numeric(%d,%d)", t->precision, t->scale < 0 ? 0 : t->scale);
    else if (t->type == TM_T_TEXT && t->precision > 0)
        snprintf(buf, buflen, "character varying(%d)", t->precision);
    else if (t->type == TM_T_ARRAY)
        snprintf(buf, buflen, "%s[]", t->elem_type ? tm__type_sql_name(t->elem_type) : "text");
    else
        snprintf(buf, buflen, "%s", tm__type_sql_name(t->type));
    return buf;
}

static const struct {
    const char *name;
    tm_type_t type;
} type_aliases[] = {
    {"bool", TM_T_BOOL},
    {"boolean", TM_T_BOOL},
    {"int2", TM_T_INT16},
    {"smallint", TM_T_INT16},
    {"int4", TM_T_INT32},
    {"int", TM_T_INT32},
    {"integer", TM_T_INT32},
    {"int8", TM_T_INT64},
    {"bigint", TM_T_INT64},
    {"float4", TM_T_FLOAT32},
    {"real", TM_T_FLOAT32},
    {"float8", TM_T_FLOAT64},
    {"double precision", TM_T_FLOAT64},
    {"float", TM_T_FLOAT64},
    {"numeric", TM_T_NUMERIC},
    {"decimal", TM_T_NUMERIC},
    {"text", TM_T_TEXT},
    {"varchar", TM_T_TEXT},
    {"character varying", TM_T_TEXT},
    {"bpchar", TM_T_TEXT},
    {"char", TM_T_TEXT},
    {"character", TM_T_TEXT},
    {"name", TM_T_TEXT},
    {"bytea", TM_T_BYTES},
    {"json", TM_T_JSON},
    {"jsonb", TM_T_JSON},
    {"uuid", TM_T_UUID},
    {"date", TM_T_DATE},
    {"time", TM_T_TIME},
    {"timetz", TM_T_TIMETZ},
    {"timestamp", TM_T_TIMESTAMP},
    {"timestamptz", TM_T_TIMESTAMPTZ},
    {"interval", TM_T_INTERVAL},
};

int tm_expr_type_parse(const char *name, const int32_t *typmods, int ntypmods, bool array,
                       tm_expr_type_t *out, char *errstr, size_t errstr_size)
{
    tm_type_t t = 0;
    for (size_t i = 0; i < sizeof(type_aliases) / sizeof(type_aliases[0]); i++)
        if (strcasecmp(type_aliases[i].name, name) == 0)
            t = type_aliases[i].type;
    if (!t)
        return tm_seterr(errstr, errstr_size, TM_ESQL, "type \"%s\" does not exist", name);
    *out = tm__etype(t);
    if (t == TM_T_FLOAT64 && strcasecmp(name, "float") == 0 && ntypmods == 1) {
        if (typmods[0] < 1 || typmods[0] > 53)
            return tm_seterr(errstr, errstr_size, TM_ESQL,
                             "precision for type float must be between 1 and 53 bits");
        if (typmods[0] <= 24)
            out->type = TM_T_FLOAT32;
    } else if (t == TM_T_NUMERIC && ntypmods > 0) {
        int p = typmods[0], s = ntypmods > 1 ? typmods[1] : 0;
        if (ntypmods > 2)
            return tm_seterr(errstr, errstr_size, TM_ESQL, "invalid NUMERIC type modifier");
        if (p < 1 || p > 1000)
            return tm_seterr(errstr, errstr_size, TM_ESQL,
                             "NUMERIC precision %d must be between 1 and 1000", p);
        if (s < 0 || s > p)
            return tm_seterr(errstr, errstr_size, TM_ESQL,
                             "NUMERIC scale %d must be between 0 and precision %d", s, p);
        out->precision = p;
        out->scale = s;
    } else if (t == TM_T_TEXT && ntypmods > 0 && strcasecmp(name, "text") != 0) {
        if (typmods[0] < 1)
            return tm_seterr(errstr, errstr_size, TM_ESQL,
                             "length for type %s must be at least 1", name);
        out->precision = typmods[0];
    } else if (ntypmods > 0 && (t == TM_T_TIMESTAMP || t == TM_T_TIMESTAMPTZ || t == TM_T_TIME ||
                                t == TM_T_TIMETZ || t == TM_T_INTERVAL)) {
        if (typmods[ntypmods - 1] < 0 || typmods[ntypmods - 1] > 6)
            return tm_seterr(errstr, errstr_size, TM_ESQL,
                             "%s precision must be between 0 and 6", name);
        out->precision = typmods[ntypmods - 1];
    } else if (ntypmods > 0 && !(t == TM_T_TEXT)) {
        return tm_seterr(errstr, errstr_size, TM_ESQL, "type modifier is not allowed for type \"%s\"",
                         name);
    }
    if (array) {
        out->elem_type = out->type;
        out->type = TM_T_ARRAY;
        out->precision = -1;
        out->scale = TM_SCALE_VARIABLE;
    }
    return 0;
}

void tm_expr_type_to_column(const tm_expr_type_t *t, tm_column_t *col)
{
    col->type = t->type;
    col->elem_type = t->elem_type;
    col->precision = t->type == TM_T_NUMERIC ? t->precision : -1;
    col->scale = t->type == TM_T_NUMERIC ? t->scale : TM_SCALE_VARIABLE;
    col->length = t->type == TM_T_TEXT && t->precision > 0 ? t->precision : -1;
}

void tm_expr_type_from_column(const tm_column_t *col, tm_expr_type_t *t)
{
    *t = tm__etype(col->type);
    t->elem_type = col->elem_type;
    if (col->type == TM_T_NUMERIC) {
        t->precision = col->precision;
        t->scale = col->precision > 0 ? col->scale : TM_SCALE_VARIABLE;
    }
}
