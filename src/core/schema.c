/*
 * schema.c — column/type descriptions shared by rows (see schema.h).
 *
 * Invariant: a published schema is never mutated; only its refcount changes.
 */
#include "core/schema.h"
#include "core/datum.h"
#include "core/error.h"

#include <stdlib.h>
#include <string.h>

static const struct {
    tm_type_t type;
    const char *name;
} type_names[] = {
    {TM_T_BOOL, "bool"},       {TM_T_INT16, "int16"},
    {TM_T_INT32, "int32"},     {TM_T_INT64, "int64"},
    {TM_T_FLOAT32, "float32"}, {TM_T_FLOAT64, "float64"},
    {TM_T_NUMERIC, "numeric"}, {TM_T_TEXT, "text"},
    {TM_T_BYTES, "bytes"},     {TM_T_JSON, "json"},
    {TM_T_UUID, "uuid"},       {TM_T_DATE, "date"},
    {TM_T_TIME, "time"},       {TM_T_TIMETZ, "timetz"},
    {TM_T_TIMESTAMP, "timestamp"}, {TM_T_TIMESTAMPTZ, "timestamptz"},
    {TM_T_INTERVAL, "interval"}, {TM_T_ARRAY, "array"},
    {TM_T_ENUM, "enum"},       {TM_T_OTHER, "other"},
};

const char *tm_type_name(tm_type_t type)
{
    for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
        if (type_names[i].type == type)
            return type_names[i].name;
    return "unknown";
}

tm_type_t tm_type_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
        if (strcmp(type_names[i].name, name) == 0)
            return type_names[i].type;
    return (tm_type_t)0;
}

tm_schema_t *tm_schema_new(int ncols)
{
    tm_schema_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    atomic_init(&s->refcount, 1);
    s->ncols = ncols;
    if (ncols > 0) {
        s->cols = calloc((size_t)ncols, sizeof(tm_column_t));
        if (s->cols == NULL) {
            free(s);
            return NULL;
        }
        for (int i = 0; i < ncols; i++) {
            s->cols[i].key_index = -1;
            s->cols[i].precision = -1;
            s->cols[i].scale = TM_SCALE_VARIABLE;
            s->cols[i].length = -1;
            s->cols[i].nullable = true;
        }
    }
    return s;
}

tm_schema_t *tm_schema_ref(tm_schema_t *schema)
{
    if (schema != NULL)
        atomic_fetch_add_explicit(&schema->refcount, 1, memory_order_relaxed);
    return schema;
}

tm_schema_t *tm_schema_unref(tm_schema_t *s)
{
    if (s == NULL)
        return NULL;
    if (atomic_fetch_sub_explicit(&s->refcount, 1, memory_order_acq_rel) != 1)
        return NULL;
    for (int i = 0; i < s->ncols; i++) {
        free(s->cols[i].name);
        free(s->cols[i].db_type);
        free(s->cols[i].semantic);
        free(s->cols[i].enum_values);
        free(s->cols[i].default_value);
    }
    free(s->cols);
    free(s->key_cols);
    free(s->source_name);
    free(s->db);
    free(s->namespace);
    free(s->table);
    free(s);
    return NULL;
}

int tm_schema_finish(tm_schema_t *s)
{
    int nkeys = 0;
    for (int i = 0; i < s->ncols; i++)
        if (s->cols[i].key_index >= 0)
            nkeys++;
    free(s->key_cols);
    s->key_cols = NULL;
    s->nkeys = nkeys;
    if (nkeys == 0)
        return 0;
    s->key_cols = malloc(sizeof(int) * (size_t)nkeys);
    if (s->key_cols == NULL)
        return TM_ENOMEM;
    for (int k = 0; k < nkeys; k++)
        s->key_cols[k] = -1;
    for (int i = 0; i < s->ncols; i++) {
        int k = s->cols[i].key_index;
        if (k < 0)
            continue;
        if (k >= nkeys || s->key_cols[k] != -1)
            return TM_EINVAL;
        s->key_cols[k] = i;
    }
    return 0;
}

int tm_schema_find(const tm_schema_t *s, const char *name)
{
    for (int i = 0; i < s->ncols; i++)
        if (s->cols[i].name != NULL && strcmp(s->cols[i].name, name) == 0)
            return i;
    return -1;
}

void tm_schema_set_str(char **field, const char *value)
{
    free(*field);
    *field = value != NULL ? strdup(value) : NULL;
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

tm_schema_t *tm_schema_clone(const tm_schema_t *src)
{
    tm_schema_t *s = tm_schema_new(src->ncols);
    if (s == NULL)
        return NULL;
    s->version = src->version;
    s->source_name = dup_or_null(src->source_name);
    s->db = dup_or_null(src->db);
    s->namespace = dup_or_null(src->namespace);
    s->table = dup_or_null(src->table);
    s->relid = src->relid;
    s->full_identity = src->full_identity;
    for (int i = 0; i < src->ncols; i++) {
        tm_column_t *d = &s->cols[i];
        *d = src->cols[i];
        d->name = dup_or_null(src->cols[i].name);
        d->db_type = dup_or_null(src->cols[i].db_type);
        d->semantic = dup_or_null(src->cols[i].semantic);
        d->enum_values = dup_or_null(src->cols[i].enum_values);
        d->default_value = NULL;
        if (tm_column_set_default(d, src->cols[i].default_value) != 0)
            return tm_schema_unref(s);
    }
    if (tm_schema_finish(s) != 0)
        return tm_schema_unref(s);
    return s;
}

static bool str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

bool tm_schema_equal_shape(const tm_schema_t *a, const tm_schema_t *b)
{
    if (a->ncols != b->ncols || a->nkeys != b->nkeys || a->full_identity != b->full_identity)
        return false;
    for (int i = 0; i < a->ncols; i++) {
        const tm_column_t *x = &a->cols[i], *y = &b->cols[i];
        if (!str_eq(x->name, y->name) || x->type != y->type || x->elem_type != y->elem_type ||
            x->precision != y->precision || x->scale != y->scale || x->nullable != y->nullable ||
            x->key_index != y->key_index || x->type_oid != y->type_oid ||
            !str_eq(x->enum_values, y->enum_values) || !str_eq(x->db_type, y->db_type))
            return false;
    }
    return true;
}

/* True when the datum's value lives in u.var (and must be copied with it). */
static bool default_is_var(tm_type_t type, const tm_datum_t *d)
{
    tm_storage_t st = tm_type_storage(type);
    return st == TM_STORAGE_VAR ||
           (st == TM_STORAGE_NUMERIC && (d->flags & (TM_DATUM_WIDE | TM_DATUM_NAN)) != 0);
}

int tm_column_set_default(tm_column_t *col, const tm_datum_t *d)
{
    free(col->default_value);
    col->default_value = NULL;
    if (d == NULL)
        return 0;
    bool var = default_is_var(col->type, d);
    size_t extra = var ? (size_t)d->u.var.len + 1 : 0;
    tm_datum_t *copy = malloc(sizeof(*copy) + extra);
    if (copy == NULL)
        return TM_ENOMEM;
    *copy = *d;
    if (var) {
        char *bytes = (char *)(copy + 1);
        if (d->u.var.len > 0)
            memcpy(bytes, d->u.var.ptr, d->u.var.len);
        bytes[d->u.var.len] = '\0';
        copy->u.var.ptr = bytes;
    }
    col->default_value = copy;
    return 0;
}

bool tm_column_default_equal(const tm_column_t *a, const tm_column_t *b)
{
    if (a->default_value == NULL || b->default_value == NULL)
        return a->default_value == b->default_value;
    return a->type == b->type && a->default_value->flags == b->default_value->flags &&
           tm_datum_equal(a->type, a->default_value, b->default_value);
}
