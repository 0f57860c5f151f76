/*
 * debezium_dec.c — the Debezium JSON decoder (DESIGN §3).
 *
 * Role: reads one Debezium value event — `{"schema":…,"payload":…}` or a bare
 * payload, Debezium 0.x to 2.x, PostgreSQL or MySQL shaped — into a
 * tm_record_t appended to a batch.
 *
 *   bytes ─► JSON DOM (scratch arena) ─► op, source block ─► row schema ─► rows
 *                                                              │
 *                 declared schema │ event schema part │ inferred from values
 *
 * The JSON parser is our own, not Jansson: Debezium events carry integers
 * beyond int64 (BIGINT UNSIGNED as 18446744073709551615) and decimals whose
 * exact text matters (123.4567 into a NUMERIC column), and Jansson rejects
 * the first and rounds the second through a double.  The DOM keeps every
 * number's text and every value's raw span.
 *
 * Column types come from, in order: the declared schema (fields matched by
 * name; missing → null; undeclared → ignored), the event's schema part
 * (Kafka Connect types and Debezium logical names mapped back), or the JSON
 * values themselves.  The wire form of each column (Decimal bytes or text,
 * milli- or microseconds, ...) comes from the schema part when there is one,
 * and otherwise from the decoder options, exactly as the encoder chose it.
 *
 * Invariants:
 *   1. Derived schemas are cached, keyed by how they were derived plus the
 *      stream identity (source name, db, schema, table), so a stream of events
 *      of one table yields one tm_schema_t.  The cache holds one reference per
 *      schema and is bounded (DEC_CACHE_MAX, least recently used goes).
 *   2. Nothing is appended to the batch unless the whole event decoded: rows
 *      are built first, the record is added last.
 *   3. Every input, however malformed, ends in a return code: recursion is
 *      depth-limited, every read is bounds-checked, all memory is either the
 *      scratch arena (reset per call), the batch arena, or the cache.
 *   4. An event's "schema" part that repeats, byte for byte, one of the last
 *      SCHEMA_TEXTS seen is not parsed again: its row schema's text, kept with
 *      it, is all the schema cache needs to find the derived schema.  Only a
 *      cache miss needs the parsed schema, and then the event is decoded
 *      again in full; the result is the same either way.
 *
 * Thread: a decoder belongs to one thread (a Kafka source's).
 */
#include "core/buf.h"
#include "core/error.h"
#include "format/debezium.h"
#include "format/debezium_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ======================================================================== */
/* A small JSON DOM                                                         */
/* ======================================================================== */

enum { JV_NULL, JV_FALSE, JV_TRUE, JV_NUM, JV_STR, JV_ARR, JV_OBJ };

typedef struct jkey {
    const char *s;
    uint32_t n;
} jkey_t;

typedef struct jv {
    uint8_t kind;
    bool num_int;     /* JV_NUM: no fraction and no exponent */
    uint32_t n;       /* JV_STR: bytes; JV_NUM: text length; JV_ARR/JV_OBJ: members */
    const char *s;    /* JV_STR: the decoded bytes; JV_NUM: the number's text */
    const char *raw;  /* the value as it stands in the input */
    uint32_t rawlen;
    struct jv *kids;  /* JV_ARR/JV_OBJ: n values */
    jkey_t *keys;     /* JV_OBJ: n keys */
} jv_t;

#define JSON_MAX_DEPTH 128

typedef struct jparser {
    const char *p, *start, *end;
    tm_arena_t *arena;
    /* Temporary stacks shared by all nesting levels; they belong to the decoder. */
    jv_t **vstack;
    size_t *vcap;
    size_t vlen;
    jkey_t **kstack;
    size_t *kcap;
    size_t klen;
    int depth;
    const char *err;
    /*
     * Invariant 4: the root's "schema" members seen last (NULL: parse every
     * member), and which of them this event repeats (-1 if none).
     */
    const struct schema_text *seen;
    int skipped;
    const char *skipped_at;
} jparser_t;

static bool jp_fail(jparser_t *jp, const char *why)
{
    if (jp->err == NULL)
        jp->err = why;
    return false;
}

static void jp_ws(jparser_t *jp)
{
    while (jp->p < jp->end &&
           (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r'))
        jp->p++;
}

static bool rd_hex4(jparser_t *jp, unsigned *out)
{
    if (jp->end - jp->p < 4)
        return jp_fail(jp, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = tm_hexval(jp->p[i]);
        if (h < 0)
            return jp_fail(jp, "bad \\u escape");
        v = v << 4 | (unsigned)h;
    }
    jp->p += 4;
    *out = v;
    return true;
}

static char *put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xc0 | cp >> 6);
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xe0 | cp >> 12);
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *o++ = (char)(0xf0 | cp >> 18);
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    }
    return o;
}

/* At the opening quote.  Strings without escapes point into the input. */
static bool jp_string(jparser_t *jp, const char **s, uint32_t *n)
{
    const char *q = ++jp->p;
    while (q < jp->end && *q != '"' && *q != '\\') {
        if ((unsigned char)*q < 0x20)
            return jp_fail(jp, "control character in string");
        q++;
    }
    if (q >= jp->end)
        return jp_fail(jp, "unterminated string");
    if (*q == '"') {
        if (q - jp->p > UINT32_MAX)
            return jp_fail(jp, "string too long");
        *s = jp->p;
        *n = (uint32_t)(q - jp->p);
        jp->p = q + 1;
        return true;
    }
    /* Escapes: decode into the arena; the output is never longer than the input. */
    size_t cap = (size_t)(jp->end - jp->p);
    char *buf = tm_arena_alloc(jp->arena, cap + 1);
    if (buf == NULL)
        return jp_fail(jp, "out of memory");
    char *o = buf;
    while (jp->p < jp->end && *jp->p != '"') {
        unsigned char c = (unsigned char)*jp->p;
        if (c < 0x20)
            return jp_fail(jp, "control character in string");
        if (c != '\\') {
            *o++ = (char)c;
            jp->p++;
            continue;
        }
        if (++jp->p >= jp->end)
            return jp_fail(jp, "unterminated string");
        char e = *jp->p++;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            *o++ = e;
            break;
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u': {
            unsigned cp, lo;
            if (!rd_hex4(jp, &cp))
                return false;
            if (cp >= 0xd800 && cp <= 0xdbff && jp->end - jp->p >= 6 && jp->p[0] == '\\' &&
                jp->p[1] == 'u') {
                const char *save = jp->p;
                jp->p += 2;
                if (!rd_hex4(jp, &lo))
                    return false;
                if (lo >= 0xdc00 && lo <= 0xdfff)
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                else
                    jp->p = save;
            }
            /* A lone surrogate has no UTF-8 form: U+FFFD, as Java's decoders do. */
            if (cp >= 0xd800 && cp <= 0xdfff)
                cp = 0xfffd;
            o = put_utf8(o, cp);
            break;
        }
        default:
            return jp_fail(jp, "bad escape");
        }
    }
    if (jp->p >= jp->end)
        return jp_fail(jp, "unterminated string");
    jp->p++;
    *o = '\0';
    *s = buf;
    *n = (uint32_t)(o - buf);
    return true;
}

static bool jp_number(jparser_t *jp, jv_t *v)
{
    const char *q = jp->p;
    bool isint = true;
    if (q < jp->end && *q == '-')
        q++;
    if (q >= jp->end || *q < '0' || *q > '9')
        return jp_fail(jp, "bad number");
    if (*q == '0')
        q++;
    else
        while (q < jp->end && *q >= '0' && *q <= '9')
            q++;
    if (q < jp->end && *q == '.') {
        isint = false;
        q++;
        if (q >= jp->end || *q < '0' || *q > '9')
            return jp_fail(jp, "bad number");
        while (q < jp->end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < jp->end && (*q == 'e' || *q == 'E')) {
        isint = false;
        q++;
        if (q < jp->end && (*q == '+' || *q == '-'))
            q++;
        if (q >= jp->end || *q < '0' || *q > '9')
            return jp_fail(jp, "bad number");
        while (q < jp->end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q - jp->p > UINT32_MAX)
        return jp_fail(jp, "number too long");
    v->kind = JV_NUM;
    v->num_int = isint;
    v->s = jp->p;
    v->n = (uint32_t)(q - jp->p);
    jp->p = q;
    return true;
}

static bool jp_lit(jparser_t *jp, const char *lit, size_t n, uint8_t kind, jv_t *v)
{
    if ((size_t)(jp->end - jp->p) < n || memcmp(jp->p, lit, n) != 0)
        return jp_fail(jp, "unexpected character");
    jp->p += n;
    v->kind = kind;
    return true;
}

static bool vpush(jparser_t *jp, const jv_t *v)
{
    if (jp->vlen == *jp->vcap) {
        size_t ncap = *jp->vcap ? *jp->vcap * 2 : 64;
        jv_t *p = realloc(*jp->vstack, ncap * sizeof(*p));
        if (p == NULL)
            return jp_fail(jp, "out of memory");
        *jp->vstack = p;
        *jp->vcap = ncap;
    }
    (*jp->vstack)[jp->vlen++] = *v;
    return true;
}

static bool kpush(jparser_t *jp, const char *s, uint32_t n)
{
    if (jp->klen == *jp->kcap) {
        size_t ncap = *jp->kcap ? *jp->kcap * 2 : 64;
        jkey_t *p = realloc(*jp->kstack, ncap * sizeof(*p));
        if (p == NULL)
            return jp_fail(jp, "out of memory");
        *jp->kstack = p;
        *jp->kcap = ncap;
    }
    (*jp->kstack)[jp->klen].s = s;
    (*jp->kstack)[jp->klen].n = n;
    jp->klen++;
    return true;
}

static bool jp_value(jparser_t *jp, jv_t *v);

/*
 * The text of a "schema" member of a JSON-with-schemas event (Kafka Connect's
 * JsonConverter with schemas.enable=true), kept so that the next events,
 * which nearly always repeat it byte for byte, skip parsing it (invariant 4).
 * `row` is the text of its row struct schema (row_schema_of), if it has one.
 */
#define SCHEMA_TEXTS 4
#define SCHEMA_TEXT_MAX (256 << 10)

typedef struct schema_text {
    char *text;
    size_t len;
    char *row;
    size_t rowlen;
} schema_text_t;

/* At the root's "schema" member: true if the input repeats a kept schema text (jp->skipped). */
static bool jp_skip_schema(jparser_t *jp, const char *key, uint32_t keylen, jv_t *v)
{
    if (jp->seen == NULL || jp->depth != 1 || keylen != 6 || memcmp(key, "schema", 6) != 0 ||
        jp->p >= jp->end || *jp->p != '{')
        return false;
    size_t left = (size_t)(jp->end - jp->p);
    for (int i = 0; i < SCHEMA_TEXTS; i++) {
        const schema_text_t *t = &jp->seen[i];
        if (t->text == NULL || t->len > left || memcmp(jp->p, t->text, t->len) != 0)
            continue;
        /* The same bytes parse to the same object, ending at the same place. */
        memset(v, 0, sizeof(*v));
        v->kind = JV_OBJ;
        v->raw = jp->p;
        v->rawlen = (uint32_t)t->len;
        jp->skipped_at = jp->p;
        jp->p += t->len;
        jp->skipped = i;
        return true;
    }
    return false;
}

/* Moves the top `count` stack entries of a finished container into the arena. */
static bool jp_close(jparser_t *jp, jv_t *v, size_t vbase, size_t kbase, bool obj)
{
    size_t count = jp->vlen - vbase;
    if (count > UINT32_MAX)
        return jp_fail(jp, "container too large");
    v->n = (uint32_t)count;
    if (count > 0) {
        v->kids = tm_arena_alloc(jp->arena, count * sizeof(jv_t));
        if (v->kids == NULL)
            return jp_fail(jp, "out of memory");
        memcpy(v->kids, *jp->vstack + vbase, count * sizeof(jv_t));
        if (obj) {
            v->keys = tm_arena_alloc(jp->arena, count * sizeof(jkey_t));
            if (v->keys == NULL)
                return jp_fail(jp, "out of memory");
            memcpy(v->keys, *jp->kstack + kbase, count * sizeof(jkey_t));
        }
    }
    jp->vlen = vbase;
    jp->klen = kbase;
    return true;
}

static bool jp_container(jparser_t *jp, jv_t *v, bool obj)
{
    if (++jp->depth > JSON_MAX_DEPTH)
        return jp_fail(jp, "nesting too deep");
    size_t vbase = jp->vlen, kbase = jp->klen;
    char close = obj ? '}' : ']';
    v->kind = obj ? JV_OBJ : JV_ARR;
    jp->p++;
    jp_ws(jp);
    if (jp->p < jp->end && *jp->p == close) {
        jp->p++;
        jp->depth--;
        return jp_close(jp, v, vbase, kbase, obj);
    }
    for (;;) {
        jv_t item;
        jp_ws(jp);
        if (obj) {
            const char *ks;
            uint32_t kn;
            if (jp->p >= jp->end || *jp->p != '"')
                return jp_fail(jp, "expected a member name");
            if (!jp_string(jp, &ks, &kn) || !kpush(jp, ks, kn))
                return false;
            jp_ws(jp);
            if (jp->p >= jp->end || *jp->p != ':')
                return jp_fail(jp, "expected ':'");
            jp->p++;
            jp_ws(jp);
            if (jp_skip_schema(jp, ks, kn, &item)) {
                if (!vpush(jp, &item))
                    return false;
                goto next;
            }
        }
        if (!jp_value(jp, &item) || !vpush(jp, &item))
            return false;
    next:
        jp_ws(jp);
        if (jp->p >= jp->end)
            return jp_fail(jp, "unterminated container");
        if (*jp->p == ',') {
            jp->p++;
            continue;
        }
        if (*jp->p != close)
            return jp_fail(jp, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        jp->p++;
        break;
    }
    jp->depth--;
    return jp_close(jp, v, vbase, kbase, obj);
}

static bool jp_value(jparser_t *jp, jv_t *v)
{
    memset(v, 0, sizeof(*v));
    jp_ws(jp);
    if (jp->p >= jp->end)
        return jp_fail(jp, "unexpected end of input");
    const char *start = jp->p;
    bool ok;
    switch (*jp->p) {
    case '{':
        ok = jp_container(jp, v, true);
        break;
    case '[':
        ok = jp_container(jp, v, false);
        break;
    case '"':
        v->kind = JV_STR;
        ok = jp_string(jp, &v->s, &v->n);
        break;
    case 't':
        ok = jp_lit(jp, "true", 4, JV_TRUE, v);
        break;
    case 'f':
        ok = jp_lit(jp, "false", 5, JV_FALSE, v);
        break;
    case 'n':
        ok = jp_lit(jp, "null", 4, JV_NULL, v);
        break;
    default:
        ok = jp_number(jp, v);
        break;
    }
    if (!ok)
        return false;
    if (jp->p - start > UINT32_MAX)
        return jp_fail(jp, "value too long");
    v->raw = start;
    v->rawlen = (uint32_t)(jp->p - start);
    return true;
}

/* ---- DOM accessors ---- */

static bool jv_eq(const char *s, uint32_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n == l && memcmp(s, lit, l) == 0;
}

static const jv_t *obj_get(const jv_t *o, const char *key)
{
    if (o == NULL || o->kind != JV_OBJ)
        return NULL;
    /* Length and first byte before memcmp: this runs for every envelope and source field. */
    size_t l = strlen(key);
    for (uint32_t i = 0; i < o->n; i++)
        if (o->keys[i].n == l && (l == 0 || o->keys[i].s[0] == key[0]) &&
            memcmp(o->keys[i].s, key, l) == 0)
            return &o->kids[i];
    return NULL;
}

static bool is_str(const jv_t *v, const char *lit)
{
    return v != NULL && v->kind == JV_STR && jv_eq(v->s, v->n, lit);
}

/* A number's text as a C string (numbers are short; long ones go to the arena). */
static const char *num_cstr(const jv_t *v, char *buf, size_t cap, tm_arena_t *arena)
{
    if (v->n < cap) {
        memcpy(buf, v->s, v->n);
        buf[v->n] = '\0';
        return buf;
    }
    return tm_arena_memdup(arena, v->s, v->n);
}

static bool num_double(const jv_t *v, tm_arena_t *arena, double *out)
{
    char buf[128];
    if (v == NULL || v->kind != JV_NUM)
        return false;
    const char *s = num_cstr(v, buf, sizeof(buf), arena);
    if (s == NULL)
        return false;
    *out = strtod(s, NULL);
    return true;
}

/* Integer value of a JSON number; reals are accepted when they are integral. */
static bool num_i64(const jv_t *v, tm_arena_t *arena, int64_t *out)
{
    if (v == NULL || v->kind != JV_NUM)
        return false;
    if (v->num_int) {
        uint32_t i = 0;
        bool neg = v->s[0] == '-';
        uint64_t m = 0;
        if (neg)
            i++;
        for (; i < v->n; i++) {
            unsigned dg = (unsigned)(v->s[i] - '0');
            if (m > (UINT64_MAX - dg) / 10)
                return false;
            m = m * 10 + dg;
        }
        if (neg ? m > (uint64_t)INT64_MAX + 1 : m > (uint64_t)INT64_MAX)
            return false;
        *out = neg ? (int64_t)(0 - m) : (int64_t)m;
        return true;
    }
    double d;
    if (!num_double(v, arena, &d) || d != floor(d) || d < -9223372036854775808.0 ||
        d >= 9223372036854775808.0)
        return false;
    *out = (int64_t)d;
    return true;
}

static bool get_i64(const jv_t *o, const char *key, tm_arena_t *arena, int64_t *out)
{
    return num_i64(obj_get(o, key), arena, out);
}

/* ======================================================================== */
/* The decoder                                                              */
/* ======================================================================== */

#define DEC_CACHE_MAX 256

/* Where a stream's records come from: source name, db, schema, table (any may be absent). */
typedef struct ident {
    const char *part[4];
    uint32_t len[4];
} ident_t;

typedef struct dec_entry {
    uint64_t hash;
    char *key;
    size_t keylen;
    char *ident; /* the identity part of key, for versioning */
    size_t identlen;
    tm_schema_t *schema; /* one reference */
    uint8_t *wire;       /* per column: tm_dbz_wire_t */
    int32_t *wscale;     /* per column: the Decimal scale on the wire */
    uint32_t *namelen;   /* per column: strlen(name) */
    uint64_t used;
} dec_entry_t;

struct tm_dbz_decoder {
    tm_dbz_opts_t opts;
    tm_schema_t *declared;
    tm_arena_t scratch;
    jv_t *vstack;
    size_t vcap;
    jkey_t *kstack;
    size_t kcap;
    dec_entry_t *cache;
    size_t ncache;
    uint64_t tick;
    tm_buf_t key;
    tm_buf_t tmp;
    schema_text_t seen[SCHEMA_TEXTS]; /* invariant 4 */
    int seen_next;
};

static void entry_release(dec_entry_t *e)
{
    tm_schema_unref(e->schema);
    free(e->key);
    free(e->wire);
    free(e->wscale);
    free(e->namelen);
    memset(e, 0, sizeof(*e));
}

tm_dbz_decoder_t *tm_dbz_decoder_new(const tm_dbz_opts_t *opts, tm_schema_t *declared)
{
    tm_dbz_decoder_t *dec = calloc(1, sizeof(*dec));
    if (dec == NULL)
        return NULL;
    dec->cache = calloc(DEC_CACHE_MAX, sizeof(*dec->cache));
    if (dec->cache == NULL) {
        free(dec);
        return NULL;
    }
    if (opts != NULL)
        dec->opts = *opts;
    /* The decoder keeps no pointers into the caller's options. */
    dec->opts.connector = NULL;
    dec->opts.version = NULL;
    dec->declared = tm_schema_ref(declared);
    tm_arena_init(&dec->scratch, 64 * 1024);
    return dec;
}

tm_dbz_decoder_t *tm_dbz_decoder_free(tm_dbz_decoder_t *dec)
{
    if (dec == NULL)
        return NULL;
    for (size_t i = 0; i < dec->ncache; i++)
        entry_release(&dec->cache[i]);
    free(dec->cache);
    for (int i = 0; i < SCHEMA_TEXTS; i++) {
        free(dec->seen[i].text);
        free(dec->seen[i].row);
    }
    tm_schema_unref(dec->declared);
    tm_arena_release(&dec->scratch);
    free(dec->vstack);
    free(dec->kstack);
    tm_buf_release(&dec->key);
    tm_buf_release(&dec->tmp);
    free(dec);
    return NULL;
}

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static int key_ident(tm_buf_t *key, const ident_t *id)
{
    for (int i = 0; i < 4; i++) {
        /* Presence and length first, so that adjacent parts cannot run together. */
        char hdr[5];
        uint32_t n = id->part[i] ? id->len[i] : 0;
        hdr[0] = id->part[i] ? 'y' : 'n';
        memcpy(hdr + 1, &n, 4);
        if (tm_buf_append(key, hdr, 5) != 0 || tm_buf_append(key, id->part[i], n) != 0)
            return TM_ENOMEM;
    }
    return 0;
}

static dec_entry_t *cache_find(tm_dbz_decoder_t *dec, const tm_buf_t *key, uint64_t h)
{
    for (size_t i = 0; i < dec->ncache; i++) {
        dec_entry_t *e = &dec->cache[i];
        if (e->hash == h && e->keylen == key->len && memcmp(e->key, key->data, key->len) == 0) {
            e->used = ++dec->tick;
            return e;
        }
    }
    return NULL;
}

/* The next version number for a stream identity: one more than any cached. */
static uint32_t cache_next_version(tm_dbz_decoder_t *dec, const char *ident, size_t identlen)
{
    uint32_t v = 0;
    for (size_t i = 0; i < dec->ncache; i++) {
        dec_entry_t *e = &dec->cache[i];
        if (e->identlen == identlen && memcmp(e->ident, ident, identlen) == 0 &&
            e->schema->version > v)
            v = e->schema->version;
    }
    return v + 1;
}

/* The most recently used row schema of a stream identity, or NULL. */
static dec_entry_t *cache_latest(tm_dbz_decoder_t *dec, const char *ident, size_t identlen)
{
    dec_entry_t *best = NULL;
    for (size_t i = 0; i < dec->ncache; i++) {
        dec_entry_t *e = &dec->cache[i];
        if (e->key[0] != 'M' && e->identlen == identlen &&
            memcmp(e->ident, ident, identlen) == 0 && (best == NULL || e->used > best->used))
            best = e;
    }
    if (best != NULL)
        best->used = ++dec->tick;
    return best;
}

/*
 * Takes over `schema` (one reference) and the wire arrays; returns the
 * entry, or NULL on out-of-memory (everything released).
 */
static dec_entry_t *cache_insert(tm_dbz_decoder_t *dec, const tm_buf_t *key, uint64_t h,
                                 size_t identlen, tm_schema_t *schema, uint8_t *wire,
                                 int32_t *wscale)
{
    dec_entry_t *e;
    uint32_t *namelen = calloc((size_t)schema->ncols + 1, sizeof(*namelen));
    char *k = malloc(key->len + 1);
    if (namelen == NULL || k == NULL) {
        free(namelen);
        free(k);
        free(wire);
        free(wscale);
        tm_schema_unref(schema);
        return NULL;
    }
    for (int i = 0; i < schema->ncols; i++)
        namelen[i] = schema->cols[i].name ? (uint32_t)strlen(schema->cols[i].name) : 0;
    memcpy(k, key->data, key->len);
    k[key->len] = '\0';
    if (dec->ncache < DEC_CACHE_MAX) {
        e = &dec->cache[dec->ncache++];
    } else {
        e = &dec->cache[0];
        for (size_t i = 1; i < dec->ncache; i++)
            if (dec->cache[i].used < e->used)
                e = &dec->cache[i];
        entry_release(e);
    }
    e->hash = h;
    e->key = k;
    e->keylen = key->len;
    e->ident = k + 1;
    e->identlen = identlen;
    e->schema = schema;
    e->wire = wire;
    e->wscale = wscale;
    e->namelen = namelen;
    e->used = ++dec->tick;
    return e;
}

static void set_strn(char **field, const char *s, size_t n)
{
    free(*field);
    *field = s != NULL ? strndup(s, n) : NULL;
}

static void schema_set_ident(tm_schema_t *s, const ident_t *id)
{
    char **fields[4] = {&s->source_name, &s->db, &s->namespace, &s->table};
    for (int i = 0; i < 4; i++)
        if (id->part[i] != NULL)
            set_strn(fields[i], id->part[i], id->len[i]);
}

/* ---- Kafka Connect schema → column ---- */

static bool name_is(const char *name, const char *want)
{
    return name != NULL && strcmp(name, want) == 0;
}

static int32_t param_int(const jv_t *params, const char *key, tm_arena_t *arena, int32_t dflt)
{
    const jv_t *v = obj_get(params, key);
    int64_t x;
    if (v == NULL)
        return dflt;
    if (v->kind == JV_STR) {
        char buf[24];
        if (v->n == 0 || v->n >= sizeof(buf))
            return dflt;
        memcpy(buf, v->s, v->n);
        buf[v->n] = '\0';
        char *end;
        long l = strtol(buf, &end, 10);
        return *end == '\0' && l >= INT16_MIN && l <= INT16_MAX ? (int32_t)l : dflt;
    }
    if (num_i64(v, arena, &x) && x >= INT16_MIN && x <= INT16_MAX)
        return (int32_t)x;
    return dflt;
}

/*
 * Maps one field of a Kafka Connect struct schema onto a column (type,
 * nullability, precision/scale, logical details) and its wire form.  Unknown
 * shapes become JSON columns, which keep the value's raw text.
 */
static void map_field(const jv_t *f, tm_column_t *col, uint8_t *wire, int32_t *wscale,
                      tm_arena_t *arena)
{
    const jv_t *tv = obj_get(f, "type"), *nv = obj_get(f, "name");
    const jv_t *opt = obj_get(f, "optional"), *params = obj_get(f, "parameters");
    char tbuf[16] = "", nbuf[64] = "";
    const char *name = NULL;
    if (tv != NULL && tv->kind == JV_STR && tv->n < sizeof(tbuf)) {
        memcpy(tbuf, tv->s, tv->n);
        tbuf[tv->n] = '\0';
    }
    if (nv != NULL && nv->kind == JV_STR && nv->n < sizeof(nbuf)) {
        memcpy(nbuf, nv->s, nv->n);
        nbuf[nv->n] = '\0';
        name = nbuf;
    }
    col->nullable = opt != NULL && opt->kind == JV_TRUE;
    col->precision = -1;
    col->scale = TM_SCALE_VARIABLE;
    *wire = TM_DBZ_W_PLAIN;
    *wscale = TM_SCALE_VARIABLE;
    const char *t = tbuf;

    if (strcmp(t, "boolean") == 0) {
        col->type = TM_T_BOOL;
    } else if (strcmp(t, "int8") == 0 || strcmp(t, "int16") == 0) {
        col->type = TM_T_INT16;
    } else if (strcmp(t, "int32") == 0) {
        col->type = TM_T_INT32;
        if (name_is(name, "io.debezium.time.Date") ||
            name_is(name, "org.apache.kafka.connect.data.Date")) {
            col->type = TM_T_DATE;
        } else if (name_is(name, "io.debezium.time.Time") ||
                   name_is(name, "org.apache.kafka.connect.data.Time")) {
            col->type = TM_T_TIME;
            col->precision = 3;
            *wire = TM_DBZ_W_MS;
        }
    } else if (strcmp(t, "int64") == 0) {
        col->type = TM_T_INT64;
        if (name_is(name, "io.debezium.time.Timestamp") ||
            name_is(name, "org.apache.kafka.connect.data.Timestamp")) {
            col->type = TM_T_TIMESTAMP;
            col->precision = 3;
            *wire = TM_DBZ_W_MS;
        } else if (name_is(name, "io.debezium.time.MicroTimestamp")) {
            col->type = TM_T_TIMESTAMP;
            col->precision = 6;
            *wire = TM_DBZ_W_US;
        } else if (name_is(name, "io.debezium.time.NanoTimestamp")) {
            col->type = TM_T_TIMESTAMP;
            col->precision = 6;
            *wire = TM_DBZ_W_NS;
        } else if (name_is(name, "io.debezium.time.MicroTime")) {
            col->type = TM_T_TIME;
            col->precision = 6;
            *wire = TM_DBZ_W_US;
        } else if (name_is(name, "io.debezium.time.NanoTime")) {
            col->type = TM_T_TIME;
            col->precision = 6;
            *wire = TM_DBZ_W_NS;
        } else if (name_is(name, "io.debezium.time.MicroDuration")) {
            col->type = TM_T_INTERVAL;
        }
    } else if (strcmp(t, "float") == 0 || strcmp(t, "float32") == 0) {
        col->type = TM_T_FLOAT32;
    } else if (strcmp(t, "double") == 0 || strcmp(t, "float64") == 0) {
        col->type = TM_T_FLOAT64;
    } else if (strcmp(t, "string") == 0) {
        col->type = TM_T_TEXT;
        if (name_is(name, TM_DBZ_JSON)) {
            col->type = TM_T_JSON;
        } else if (name_is(name, TM_DBZ_UUID)) {
            col->type = TM_T_UUID;
        } else if (name_is(name, TM_DBZ_ENUM) || name_is(name, "io.debezium.data.EnumSet")) {
            const jv_t *allowed = obj_get(params, "allowed");
            col->type = TM_T_ENUM;
            if (allowed != NULL && allowed->kind == JV_STR)
                set_strn(&col->enum_values, allowed->s, allowed->n);
            if (!name_is(name, TM_DBZ_ENUM))
                set_strn(&col->semantic, name, strlen(name));
        } else if (name_is(name, "io.debezium.time.ZonedTimestamp")) {
            col->type = TM_T_TIMESTAMPTZ;
        } else if (name_is(name, "io.debezium.time.ZonedTime")) {
            col->type = TM_T_TIMETZ;
        } else if (name != NULL) {
            set_strn(&col->semantic, name, strlen(name));
        }
    } else if (strcmp(t, "bytes") == 0) {
        col->type = TM_T_BYTES;
        if (name_is(name, TM_DBZ_BITS)) {
            /* A PostgreSQL bit string: back to its text, as the source gave it. */
            const jv_t *len = obj_get(params, "length");
            char buf[16];
            long l = -1;
            if (len != NULL && len->kind == JV_STR && len->n > 0 && len->n < sizeof(buf)) {
                char *end;
                memcpy(buf, len->s, len->n);
                buf[len->n] = '\0';
                l = strtol(buf, &end, 10);
                if (*end != '\0' || l < 2 || l > INT32_MAX)
                    l = -1;
            }
            col->type = TM_T_TEXT;
            col->type_oid = l == INT32_MAX ? 1562 : 1560;
            set_strn(&col->db_type, l == INT32_MAX ? "varbit" : "bit", l == INT32_MAX ? 6 : 3);
            col->length = l == INT32_MAX ? -1 : (int32_t)l;
            *wire = TM_DBZ_W_BITS;
            *wscale = (int32_t)l;
        } else if (name_is(name, TM_DBZ_DECIMAL)) {
            col->type = TM_T_NUMERIC;
            col->scale = param_int(params, "scale", arena, 0);
            col->precision = param_int(params, "connect.decimal.precision", arena, -1);
            *wire = TM_DBZ_W_DEC_BYTES;
            *wscale = col->scale;
        } else if (name != NULL) {
            set_strn(&col->semantic, name, strlen(name));
        }
    } else if (strcmp(t, "struct") == 0 && name_is(name, TM_DBZ_VSD)) {
        col->type = TM_T_NUMERIC;
        *wire = TM_DBZ_W_DEC_VSD;
    } else if (strcmp(t, "array") == 0) {
        tm_column_t elem;
        uint8_t w;
        int32_t ws;
        memset(&elem, 0, sizeof(elem));
        const jv_t *items = obj_get(f, "items");
        col->type = TM_T_ARRAY;
        col->elem_type = TM_T_TEXT;
        /* Nested arrays are described as text elements; one level is all PostgreSQL has. */
        if (items != NULL && items->kind == JV_OBJ && !is_str(obj_get(items, "type"), "array")) {
            map_field(items, &elem, &w, &ws, arena);
            col->elem_type = elem.type;
        }
        free(elem.semantic);
        free(elem.enum_values);
        free(elem.db_type);
    } else {
        /* Structs (geometry, ...), maps and unknown types keep their JSON text. */
        col->type = TM_T_JSON;
    }
}

/* The struct schema of the row images in an event's schema part, or NULL. */
static const jv_t *row_schema_of(const jv_t *schema_part)
{
    const jv_t *fields = obj_get(schema_part, "fields");
    if (fields == NULL || fields->kind != JV_ARR)
        return NULL;
    const jv_t *before = NULL;
    for (uint32_t i = 0; i < fields->n; i++) {
        const jv_t *f = &fields->kids[i];
        const jv_t *fl = obj_get(f, "fields");
        if (fl == NULL || fl->kind != JV_ARR)
            continue;
        if (is_str(obj_get(f, "field"), "after"))
            return f;
        if (is_str(obj_get(f, "field"), "before"))
            before = f;
    }
    return before;
}

static const jv_t *schema_field_named(const jv_t *row_schema, const char *name)
{
    const jv_t *fields = obj_get(row_schema, "fields");
    if (fields == NULL || fields->kind != JV_ARR || name == NULL)
        return NULL;
    for (uint32_t i = 0; i < fields->n; i++)
        if (is_str(obj_get(&fields->kids[i], "field"), name))
            return &fields->kids[i];
    return NULL;
}

/* ---- schema derivation, one function per source of truth ---- */

static int alloc_wire(int ncols, uint8_t **wire, int32_t **wscale)
{
    *wire = calloc((size_t)ncols + 1, sizeof(**wire));
    *wscale = calloc((size_t)ncols + 1, sizeof(**wscale));
    if (*wire == NULL || *wscale == NULL) {
        free(*wire);
        free(*wscale);
        return TM_ENOMEM;
    }
    return 0;
}

static tm_schema_t *derive_declared(tm_dbz_decoder_t *dec, const ident_t *id,
                                    const jv_t *row_schema, uint8_t **wire, int32_t **wscale)
{
    tm_schema_t *s = tm_schema_clone(dec->declared);
    if (s == NULL || alloc_wire(s->ncols, wire, wscale) != 0)
        return tm_schema_unref(s);
    schema_set_ident(s, id);
    for (int i = 0; i < s->ncols; i++) {
        const jv_t *f = schema_field_named(row_schema, s->cols[i].name);
        if (f != NULL) {
            /* The event says how it encoded the value; the declaration says what it is. */
            tm_column_t tmp;
            memset(&tmp, 0, sizeof(tmp));
            map_field(f, &tmp, &(*wire)[i], &(*wscale)[i], &dec->scratch);
            free(tmp.semantic);
            free(tmp.enum_values);
            free(tmp.db_type);
        } else {
            tm_dbz_coldesc_t desc;
            tm__dbz_col_desc(&s->cols[i], &dec->opts, &desc);
            (*wire)[i] = desc.wire;
            (*wscale)[i] = desc.wire == TM_DBZ_W_BITS ? desc.bits : desc.scale;
        }
    }
    return s;
}

static tm_schema_t *derive_from_schema(tm_dbz_decoder_t *dec, const ident_t *id,
                                       const jv_t *row_schema, uint8_t **wire, int32_t **wscale)
{
    const jv_t *fields = obj_get(row_schema, "fields");
    int n = 0;
    for (uint32_t i = 0; i < fields->n; i++)
        if (obj_get(&fields->kids[i], "field") != NULL &&
            obj_get(&fields->kids[i], "field")->kind == JV_STR)
            n++;
    tm_schema_t *s = tm_schema_new(n);
    if (s == NULL || alloc_wire(n, wire, wscale) != 0)
        return tm_schema_unref(s);
    schema_set_ident(s, id);
    int c = 0;
    for (uint32_t i = 0; i < fields->n && c < n; i++) {
        const jv_t *fname = obj_get(&fields->kids[i], "field");
        if (fname == NULL || fname->kind != JV_STR)
            continue;
        tm_column_t *col = &s->cols[c];
        set_strn(&col->name, fname->s, fname->n);
        map_field(&fields->kids[i], col, &(*wire)[c], &(*wscale)[c], &dec->scratch);
        c++;
    }
    return s;
}

/* Type letter of a JSON value for inference (and for the cache key). */
static char infer_letter(const jv_t *v, tm_arena_t *arena)
{
    int64_t x;
    switch (v->kind) {
    case JV_TRUE:
    case JV_FALSE:
        return 'b';
    case JV_NUM:
        if (!v->num_int)
            return 'f';
        /* Integers beyond int64 (BIGINT UNSIGNED) stay exact as NUMERIC. */
        return num_i64(v, arena, &x) ? 'i' : 'n';
    case JV_STR:
        return 's';
    case JV_ARR:
    case JV_OBJ:
        return 'j';
    default:
        return '0';
    }
}

/*
 * The type that holds a field's values in both images.  A guess must never
 * make its own event fail, so disagreements widen: int and real to double,
 * int and big integer to numeric, anything else to JSON text.
 */
static char infer_merge(char a, char b)
{
    if (a == '0' || a == b)
        return b == '0' ? a : b;
    if (b == '0')
        return a;
    if ((a == 'i' && b == 'f') || (a == 'f' && b == 'i'))
        return 'f';
    if ((a == 'i' && b == 'n') || (a == 'n' && b == 'i'))
        return 'n';
    return 'j';
}

static tm_type_t letter_type(char c)
{
    switch (c) {
    case 'b':
        return TM_T_BOOL;
    case 'i':
        return TM_T_INT64;
    case 'n':
        return TM_T_NUMERIC;
    case 'f':
        return TM_T_FLOAT64;
    case 'j':
        return TM_T_JSON;
    default:
        return TM_T_TEXT;
    }
}

/*
 * The inference signature: the union of both images' members (after first),
 * each with its type letter, taken from the first image where it is non-null.
 */
static int infer_signature(tm_dbz_decoder_t *dec, const jv_t *after, const jv_t *before,
                           tm_buf_t *key, int *ncols)
{
    const jv_t *imgs[2] = {after, before};
    *ncols = 0;
    for (int k = 0; k < 2; k++) {
        const jv_t *o = imgs[k];
        if (o == NULL || o->kind != JV_OBJ)
            continue;
        for (uint32_t i = 0; i < o->n; i++) {
            const jkey_t *name = &o->keys[i];
            bool seen = false;
            for (int j = 0; j < k && !seen; j++)
                for (uint32_t m = 0; imgs[j] && imgs[j]->kind == JV_OBJ && m < imgs[j]->n; m++)
                    if (imgs[j]->keys[m].n == name->n &&
                        memcmp(imgs[j]->keys[m].s, name->s, name->n) == 0) {
                        seen = true;
                        break;
                    }
            if (seen)
                continue;
            char letter = infer_letter(&o->kids[i], &dec->scratch);
            if (k == 0 && before != NULL) {
                const jv_t *other = NULL;
                for (uint32_t m = 0; before->kind == JV_OBJ && m < before->n; m++)
                    if (before->keys[m].n == name->n &&
                        memcmp(before->keys[m].s, name->s, name->n) == 0)
                        other = &before->kids[m];
                if (other != NULL)
                    letter = infer_merge(letter, infer_letter(other, &dec->scratch));
            }
            /* All-null so far reads as text; it must not split the stream's schema. */
            if (letter == '0')
                letter = 's';
            uint32_t n = name->n;
            if (tm_buf_putc(key, letter) != 0 || tm_buf_append(key, &n, 4) != 0 ||
                tm_buf_append(key, name->s, n) != 0)
                return TM_ENOMEM;
            (*ncols)++;
        }
    }
    return 0;
}

/* Builds the inferred schema back from its signature (the tail of the cache key). */
static tm_schema_t *derive_inferred(const ident_t *id, const char *sig, size_t siglen, int ncols,
                                    uint8_t **wire, int32_t **wscale)
{
    tm_schema_t *s = tm_schema_new(ncols);
    if (s == NULL || alloc_wire(ncols, wire, wscale) != 0)
        return tm_schema_unref(s);
    schema_set_ident(s, id);
    size_t p = 0;
    for (int c = 0; c < ncols && p + 5 <= siglen; c++) {
        uint32_t n;
        char letter = sig[p];
        memcpy(&n, sig + p + 1, 4);
        p += 5;
        set_strn(&s->cols[c].name, sig + p, n);
        p += n;
        s->cols[c].type = letter_type(letter);
        s->cols[c].nullable = true;
        (*wire)[c] = TM_DBZ_W_PLAIN;
        (*wscale)[c] = TM_SCALE_VARIABLE;
    }
    return s;
}

/* ======================================================================== */
/* Values                                                                   */
/* ======================================================================== */

typedef struct conv_ctx {
    tm_dbz_decoder_t *dec;
    tm_batch_t *batch;
    const char *image; /* "before" / "after" */
    char *errstr;
    size_t errstr_size;
} conv_ctx_t;

static const char *kind_name(const jv_t *v)
{
    static const char *const names[] = {"null",   "boolean", "boolean", "number",
                                        "string", "array",   "object"};
    return names[v->kind];
}

static int mismatch(conv_ctx_t *cx, const tm_column_t *col, const jv_t *v, const char *want)
{
    return tm_seterr(cx->errstr, cx->errstr_size, TM_ECORRUPT,
                     "field '%s.%s': expected %s for a %s column, got %s", cx->image,
                     col->name ? col->name : "", want, tm_type_name(col->type), kind_name(v));
}

static int out_of_range(conv_ctx_t *cx, const tm_column_t *col)
{
    return tm_seterr(cx->errstr, cx->errstr_size, TM_ECORRUPT,
                     "field '%s.%s': value out of range for a %s column", cx->image,
                     col->name ? col->name : "", tm_type_name(col->type));
}

static int set_var(conv_ctx_t *cx, tm_datum_t *d, const char *p, size_t n)
{
    if (n > UINT32_MAX)
        return TM_ENOMEM;
    return tm_batch_set_var(cx->batch, d, p, n);
}

/* Base64 text → bytes in the batch arena; -1 if it is not base64. */
static long b64_to_arena(conv_ctx_t *cx, const char *s, size_t n, uint8_t **out)
{
    size_t cap = n / 4 * 3 + 3;
    uint8_t *buf = tm_arena_alloc(&cx->batch->arena, cap + 1);
    if (buf == NULL)
        return -2;
    long len = tm_base64_decode(s, n, buf, cap);
    if (len < 0)
        return -1;
    buf[len] = '\0';
    *out = buf;
    return len;
}

/*
 * The widest Decimal accepted, in bytes: PostgreSQL's NUMERIC tops out near
 * 55 KB of magnitude.  The base conversion is quadratic, so a bound keeps a
 * hostile event from stalling the source.
 */
#define DEC_MAX_DECIMAL_BYTES 65536

/* Two's-complement big-endian unscaled bytes at `scale` → NUMERIC datum. */
static int numeric_from_bytes(conv_ctx_t *cx, const uint8_t *b, size_t n, int32_t scale,
                              tm_datum_t *d)
{
    if (n > DEC_MAX_DECIMAL_BYTES)
        return tm_seterr(cx->errstr, cx->errstr_size, TM_ECORRUPT,
                         "field '%s': decimal of %zu bytes is wider than NUMERIC allows",
                         cx->image, n);
    if (n <= 16 && scale >= 0 && scale <= 1000) {
        unsigned __int128 u = (n > 0 && (b[0] & 0x80)) ? ~(unsigned __int128)0 : 0;
        for (size_t i = 0; i < n; i++)
            u = u << 8 | b[i];
        d->u.dec = (__int128)u;
        d->scale = (int16_t)scale;
        d->flags = 0;
        return 0;
    }
    /* Wider than 128 bits (or an odd scale): through the decimal text. */
    tm_buf_t *t = &cx->dec->tmp;
    tm_buf_clear(t);
    int rc = tm__dbz_bytes_to_text(b, n, scale, t);
    if (rc != 0)
        return rc;
    return tm_numeric_parse(cx->batch, d, t->data, t->len);
}

static bool is_special_num_text(const jv_t *v)
{
    /* Most strings here are base64 digits: rule them out on the first byte. */
    if (v == NULL || v->kind != JV_STR || v->n < 3 ||
        (v->s[0] != 'N' && v->s[0] != 'I' && v->s[0] != '-'))
        return false;
    return is_str(v, "NaN") || is_str(v, "Infinity") || is_str(v, "-Infinity");
}

static int conv_numeric(conv_ctx_t *cx, const tm_column_t *col, uint8_t wire, int32_t wscale,
                        const jv_t *v, tm_datum_t *d)
{
    if (v->kind == JV_NUM) {
        if (tm_numeric_parse(cx->batch, d, v->s, v->n) != 0)
            return mismatch(cx, col, v, "a decimal number");
        return 0;
    }
    if (v->kind == JV_OBJ) {
        /* VariableScaleDecimal: {"scale": s, "value": base64}. */
        const jv_t *sv = obj_get(v, "scale"), *vv = obj_get(v, "value");
        int64_t scale;
        uint8_t *bytes;
        long n;
        /*
         * BigDecimal's scale of any value PostgreSQL holds: negative down to
         * -131072 (digits before the point, as in -1e44108's -44108, which
         * the encoder writes), at most 16383 after it.  Beyond, the value
         * would be no NUMERIC (numeric_from_bytes would also spell out that
         * many zeros).
         */
        if (!num_i64(sv, &cx->dec->scratch, &scale) || scale < -131072 || scale > 16383 ||
            vv == NULL || vv->kind != JV_STR)
            return mismatch(cx, col, v, "a VariableScaleDecimal {scale, value}");
        n = b64_to_arena(cx, vv->s, vv->n, &bytes);
        if (n == -2)
            return TM_ENOMEM;
        if (n < 0)
            return mismatch(cx, col, v, "base64 in VariableScaleDecimal.value");
        return numeric_from_bytes(cx, bytes, (size_t)n, (int32_t)scale, d);
    }
    if (v->kind != JV_STR)
        return mismatch(cx, col, v, "a decimal (base64, text or number)");

    /*
     * A string is base64 Decimal bytes in precise mode and decimal text in
     * string mode.  Digits-only text is valid base64 too, so the wire form
     * decides which reading comes first.
     */
    bool bytes_first = wire == TM_DBZ_W_DEC_BYTES && !is_special_num_text(v);
    int32_t scale = wscale != TM_SCALE_VARIABLE ? wscale : col->scale;
    for (int pass = 0; pass < 2; pass++) {
        if ((pass == 0) == bytes_first) {
            if (scale == TM_SCALE_VARIABLE)
                continue;
            uint8_t *bytes;
            long n = b64_to_arena(cx, v->s, v->n, &bytes);
            if (n == -2)
                return TM_ENOMEM;
            if (n >= 0)
                return numeric_from_bytes(cx, bytes, (size_t)n, scale, d);
        } else if (tm_numeric_parse(cx->batch, d, v->s, v->n) == 0) {
            return 0;
        }
    }
    return mismatch(cx, col, v, "a decimal (base64 bytes or decimal text)");
}

/* Integer time value on the wire → microseconds. */
static int time_units(conv_ctx_t *cx, const tm_column_t *col, uint8_t wire, const jv_t *v,
                      int64_t *us)
{
    int64_t x;
    if (!num_i64(v, &cx->dec->scratch, &x))
        return v->kind == JV_NUM ? out_of_range(cx, col) : mismatch(cx, col, v, "an integer");
    if (wire == TM_DBZ_W_MS) {
        if (__builtin_mul_overflow(x, 1000, us))
            return out_of_range(cx, col);
    } else if (wire == TM_DBZ_W_NS) {
        *us = tm__dbz_floordiv(x, 1000);
    } else {
        *us = x;
    }
    return 0;
}

static bool is_placeholder_array(const jv_t *v, tm_arena_t *arena)
{
    static const char ph[] = TM_DBZ_UNAVAILABLE;
    if (v->kind != JV_ARR)
        return false;
    if (v->n == 1)
        return is_str(&v->kids[0], TM_DBZ_UNAVAILABLE) ||
               is_str(&v->kids[0], TM_DBZ_UNAVAILABLE_UUID);
    if (v->n != sizeof(ph) - 1)
        return false;
    for (uint32_t i = 0; i < v->n; i++) {
        double x;
        if (!num_double(&v->kids[i], arena, &x) || x != (unsigned char)ph[i])
            return false;
    }
    return true;
}

/* Debezium's unchanged-TOAST placeholder, in any of the forms the encoder writes. */
static bool is_unavailable(const tm_column_t *col, const jv_t *v, tm_arena_t *arena)
{
    if (col->type == TM_T_BYTES)
        return is_str(v, "X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==");
    if (col->type == TM_T_ARRAY)
        return is_placeholder_array(v, arena);
    if (col->type == TM_T_UUID)
        return is_str(v, TM_DBZ_UNAVAILABLE_UUID);
    return is_str(v, TM_DBZ_UNAVAILABLE);
}

static int conv_value(conv_ctx_t *cx, const tm_column_t *col, uint8_t wire, int32_t wscale,
                      const jv_t *v, tm_datum_t *d)
{
    tm_arena_t *sa = &cx->dec->scratch;
    int64_t x;
    double f;
    memset(d, 0, sizeof(*d));
    if (is_unavailable(col, v, sa)) {
        d->flags = TM_DATUM_UNAVAILABLE;
        return 0;
    }
    if (wire == TM_DBZ_W_BIT1 && (v->kind == JV_TRUE || v->kind == JV_FALSE))
        return set_var(cx, d, v->kind == JV_TRUE ? "1" : "0", 1);
    if (wire == TM_DBZ_W_BITS && (col->type == TM_T_TEXT || col->type == TM_T_OTHER)) {
        uint8_t *bytes;
        long n;
        if (v->kind != JV_STR)
            return mismatch(cx, col, v, "a base64 string of bits");
        n = b64_to_arena(cx, v->s, v->n, &bytes);
        if (n == -2)
            return TM_ENOMEM;
        if (n < 0)
            return mismatch(cx, col, v, "a base64 string of bits");
        tm_buf_t text;
        tm_buf_init(&text);
        int rc = tm__dbz_bytes_to_bits(bytes, (size_t)n, wscale, &text);
        if (rc == 0)
            rc = set_var(cx, d, text.data, text.len);
        tm_buf_release(&text);
        return rc;
    }
    switch (col->type) {
    case TM_T_BOOL:
        if (v->kind == JV_TRUE || v->kind == JV_FALSE) {
            d->u.b = v->kind == JV_TRUE;
            return 0;
        }
        /* MySQL's TINYINT(1) booleans travel as 0/1. */
        if (num_i64(v, sa, &x) && (x == 0 || x == 1)) {
            d->u.b = x == 1;
            return 0;
        }
        return mismatch(cx, col, v, "a boolean");
    case TM_T_INT16:
    case TM_T_INT32:
    case TM_T_INT64:
        if (!num_i64(v, sa, &x))
            return v->kind == JV_NUM ? out_of_range(cx, col) : mismatch(cx, col, v, "an integer");
        if ((col->type == TM_T_INT16 && (x < INT16_MIN || x > INT16_MAX)) ||
            (col->type == TM_T_INT32 && (x < INT32_MIN || x > INT32_MAX)))
            return out_of_range(cx, col);
        d->u.i64 = x;
        return 0;
    case TM_T_FLOAT32:
    case TM_T_FLOAT64:
        if (v->kind == JV_STR) {
            /* Kafka Connect writes non-finite doubles as strings. */
            if (is_str(v, "NaN"))
                f = NAN;
            else if (is_str(v, "Infinity"))
                f = INFINITY;
            else if (is_str(v, "-Infinity"))
                f = -INFINITY;
            else
                return mismatch(cx, col, v, "a number");
        } else if (!num_double(v, sa, &f)) {
            return mismatch(cx, col, v, "a number");
        }
        d->u.f64 = col->type == TM_T_FLOAT32 ? (double)(float)f : f;
        return 0;
    case TM_T_NUMERIC:
        return conv_numeric(cx, col, wire, wscale, v, d);
    case TM_T_BYTES: {
        uint8_t *bytes;
        long n;
        if (v->kind != JV_STR)
            return mismatch(cx, col, v, "a base64 string");
        n = b64_to_arena(cx, v->s, v->n, &bytes);
        if (n == -2)
            return TM_ENOMEM;
        if (n < 0)
            return mismatch(cx, col, v, "a base64 string");
        d->u.var.ptr = (const char *)bytes;
        d->u.var.len = (uint32_t)n;
        return 0;
    }
    case TM_T_JSON:
        if (v->kind == JV_STR)
            return set_var(cx, d, v->s, v->n);
        return set_var(cx, d, v->raw, v->rawlen);
    case TM_T_ARRAY:
        if (v->kind != JV_ARR)
            return mismatch(cx, col, v, "an array");
        return set_var(cx, d, v->raw, v->rawlen);
    case TM_T_DATE:
        if (v->kind == JV_STR) {
            /* An ISO date ("2020-07-17"), as string-typed date columns carry it. */
            char iso[40];
            if (v->n != 10)
                return mismatch(cx, col, v, "days since 1970 or an ISO date");
            snprintf(iso, sizeof(iso), "%.10sT00:00:00Z", v->s);
            if (tm__dbz_parse_zoned_ts(iso, strlen(iso), &x) != 0)
                return mismatch(cx, col, v, "days since 1970 or an ISO date");
            d->u.i64 = tm__dbz_floordiv(x, INT64_C(86400000000));
            return 0;
        }
        /* fall through */
    case TM_T_INTERVAL:
        if (!num_i64(v, sa, &x))
            return v->kind == JV_NUM ? out_of_range(cx, col) : mismatch(cx, col, v, "an integer");
        /* Debezium's ±infinity dates (debezium_int.h) are PostgreSQL's again. */
        d->u.i64 = col->type == TM_T_DATE ? tm__dbz_date_in(x) : x;
        return 0;
    case TM_T_TIMESTAMP: {
        /* A ZonedTimestamp string into a zone-less column: its UTC wall clock. */
        if (v->kind == JV_STR && tm__dbz_parse_zoned_ts(v->s, v->n, &d->u.i64) == 0)
            return 0;
        int rc = time_units(cx, col, wire, v, &d->u.i64);
        if (rc == 0 && wire != TM_DBZ_W_NS)
            d->u.i64 = tm__dbz_ts_in(d->u.i64);
        return rc;
    }
    case TM_T_TIME:
        return time_units(cx, col, wire, v, &d->u.i64);
    case TM_T_TIMESTAMPTZ:
        if (v->kind == JV_NUM)
            return time_units(cx, col, wire, v, &d->u.i64);
        if (is_str(v, "infinity") || is_str(v, "-infinity")) {
            d->u.i64 = v->s[0] == '-' ? TM__DBZ_TS_NINF_IN : TM__DBZ_TS_INF_IN;
            return 0;
        }
        if (v->kind != JV_STR || tm__dbz_parse_zoned_ts(v->s, v->n, &d->u.i64) != 0)
            return mismatch(cx, col, v, "an ISO-8601 timestamp string");
        return 0;
    case TM_T_TIMETZ:
        if (v->kind != JV_STR || tm__dbz_parse_zoned_time(v->s, v->n, &d->u.i64) != 0)
            return mismatch(cx, col, v, "an ISO-8601 time string");
        return 0;
    default: /* TEXT, UUID, ENUM, OTHER */
        if (v->kind != JV_STR)
            return mismatch(cx, col, v, "a string");
        return set_var(cx, d, v->s, v->n);
    }
}

/* One row image: JSON object → row of `e->schema`, members matched to columns by name. */
static int decode_row(conv_ctx_t *cx, const dec_entry_t *e, const jv_t *obj, tm_row_t **out)
{
    const tm_schema_t *s = e->schema;
    *out = NULL;
    if (obj == NULL || obj->kind == JV_NULL)
        return 0;
    if (obj->kind != JV_OBJ)
        return tm_seterr(cx->errstr, cx->errstr_size, TM_ECORRUPT,
                         "field '%s': expected an object or null, got %s", cx->image,
                         kind_name(obj));
    tm_row_t *row = tm_batch_new_row(cx->batch, s);
    if (row == NULL)
        return TM_ENOMEM;
    for (uint32_t k = 0; k < obj->n; k++) {
        const jkey_t *name = &obj->keys[k];
        int c = -1;
        /* Events list fields in column order, so position k is the usual match. */
        if (k < (uint32_t)s->ncols && e->namelen[k] == name->n && s->cols[k].name != NULL &&
            memcmp(s->cols[k].name, name->s, name->n) == 0) {
            c = (int)k;
        } else {
            for (int i = 0; i < s->ncols; i++)
                if (e->namelen[i] == name->n && s->cols[i].name != NULL &&
                    memcmp(s->cols[i].name, name->s, name->n) == 0) {
                    c = i;
                    break;
                }
        }
        const jv_t *v = &obj->kids[k];
        if (c < 0 || v->kind == JV_NULL)
            continue;
        int rc = conv_value(cx, &s->cols[c], e->wire[c], e->wscale[c], v, &row->vals[c]);
        if (rc != 0)
            return rc;
        tm_row_set_null(row, c, false);
    }
    *out = row;
    return 0;
}

/* ======================================================================== */
/* Envelope                                                                 */
/* ======================================================================== */

static void ident_part(ident_t *id, int i, const jv_t *v)
{
    if (v != NULL && v->kind == JV_STR) {
        id->part[i] = v->s;
        id->len[i] = v->n;
    }
}

static uint64_t parse_u64(const char *s, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - 9) / 10)
            return 0;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    return v;
}

/* The commit LSN from `sequence`: a JSON string holding ["<commit lsn>","<lsn>"]. */
static uint64_t sequence_commit_lsn(tm_dbz_decoder_t *dec, const jv_t *seq)
{
    if (seq == NULL || seq->kind != JV_STR)
        return 0;
    jparser_t jp = {.p = seq->s,
                    .start = seq->s,
                    .end = seq->s + seq->n,
                    .arena = &dec->scratch,
                    .vstack = &dec->vstack,
                    .vcap = &dec->vcap,
                    .kstack = &dec->kstack,
                    .kcap = &dec->kcap};
    jv_t arr;
    if (!jp_value(&jp, &arr) || arr.kind != JV_ARR || arr.n < 1)
        return 0;
    const jv_t *c = &arr.kids[0];
    if (c->kind == JV_STR)
        return parse_u64(c->s, c->n);
    if (c->kind == JV_NUM && c->num_int)
        return parse_u64(c->s, c->n);
    return 0;
}

/*
 * Reads the source block.  It is metadata: fields of an unexpected type are
 * ignored rather than failing the event (Debezium's block has changed shape
 * across versions, e.g. `snapshot` was a boolean in 0.x).
 */
/* The source block's fields read_source uses, found in one pass over its keys. */
enum { SF_NAME, SF_DB, SF_SCHEMA, SF_TABLE, SF_TS_US, SF_TS_MS, SF_TS_NS, SF_LSN, SF_TXID,
       SF_SEQUENCE, SF_SNAPSHOT, SF_CONNECTOR, SF_FILE, SF_POS, SF_ROW, SF_SERVER_ID, SF_THREAD,
       SF_GTID, SF_N };

static const char *const source_fields[SF_N] = {
    "name",     "db",        "schema", "table", "ts_us", "ts_ms",     "ts_ns",  "lsn",  "txId",
    "sequence", "snapshot",  "connector", "file", "pos", "row", "server_id", "thread", "gtid"};

/* A non-negative integer field that fits `max`, or 0. */
static uint64_t source_uint(tm_dbz_decoder_t *dec, const jv_t *v, uint64_t max)
{
    int64_t x;
    return num_i64(v, &dec->scratch, &x) && x > 0 && (uint64_t)x <= max ? (uint64_t)x : 0;
}

/*
 * The binlog fields of a MySQL or MariaDB connector's block into the MySQL
 * part (row.h), so a sink writes them again.  A file name that cannot be
 * interned (the table is full) is left out, as Debezium's empty file.
 */
static void read_binlog_source(tm_dbz_decoder_t *dec, const jv_t *const *f, bool mariadb,
                               tm_source_info_t *info)
{
    tm_my_source_t *my = &info->u.my;
    memset(&info->u, 0, sizeof(info->u));
    info->kind = TM_SOURCE_MYSQL;
    my->mariadb = mariadb;
    if (f[SF_FILE]->n > 0)
        my->file = tm_intern(f[SF_FILE]->s, f[SF_FILE]->n);
    my->event_pos = (uint32_t)source_uint(dec, f[SF_POS], UINT32_MAX);
    my->row = (uint32_t)source_uint(dec, f[SF_ROW], UINT32_MAX);
    my->server_id = (uint32_t)source_uint(dec, f[SF_SERVER_ID], UINT32_MAX);
    my->thread = (uint32_t)source_uint(dec, f[SF_THREAD], UINT32_MAX);
    if (f[SF_GTID] != NULL && f[SF_GTID]->kind == JV_STR)
        tm_my_source_set_gtid(my, f[SF_GTID]->s, f[SF_GTID]->n);
}

static void read_source(tm_dbz_decoder_t *dec, const jv_t *src, ident_t *id,
                        tm_source_info_t *info)
{
    tm_arena_t *sa = &dec->scratch;
    int64_t x;
    memset(id, 0, sizeof(*id));
    if (src == NULL || src->kind != JV_OBJ)
        return;
    /*
     * One pass over the block's keys (a dozen or more), instead of a search
     * per field: this runs for every event.  The first occurrence of a key
     * wins, as obj_get's would.
     */
    const jv_t *f[SF_N] = {NULL};
    for (uint32_t i = 0; i < src->n; i++) {
        const jkey_t *k = &src->keys[i];
        for (int j = 0; j < SF_N; j++) {
            const char *name = source_fields[j];
            if (f[j] == NULL && k->n > 0 && name[0] == k->s[0] && strlen(name) == k->n &&
                memcmp(name, k->s, k->n) == 0) {
                f[j] = &src->kids[i];
                break;
            }
        }
    }
    ident_part(id, 0, f[SF_NAME]);
    ident_part(id, 1, f[SF_DB]);
    ident_part(id, 2, f[SF_SCHEMA]);
    ident_part(id, 3, f[SF_TABLE]);
    if (num_i64(f[SF_TS_US], sa, &x))
        info->ts_us = x;
    else if (num_i64(f[SF_TS_MS], sa, &x) && !__builtin_mul_overflow(x, 1000, &x))
        info->ts_us = x;
    else if (num_i64(f[SF_TS_NS], sa, &x))
        info->ts_us = tm__dbz_floordiv(x, 1000);
    if (num_i64(f[SF_LSN], sa, &x) && x > 0)
        info->pos = (uint64_t)x;
    if (num_i64(f[SF_TXID], sa, &x) && x > 0)
        info->u.pg.xid = (uint32_t)x;
    info->u.pg.commit_lsn = sequence_commit_lsn(dec, f[SF_SEQUENCE]);
    /*
     * A binlog connector's block (connector "mysql" or "mariadb" with a
     * file) keeps its binlog fields; a block with PostgreSQL's positions is
     * PostgreSQL's; others keep only the common part.
     */
    bool mariadb = is_str(f[SF_CONNECTOR], "mariadb");
    if ((mariadb || is_str(f[SF_CONNECTOR], "mysql")) && f[SF_FILE] != NULL &&
        f[SF_FILE]->kind == JV_STR)
        read_binlog_source(dec, f, mariadb, info);
    else if (info->pos != 0 || info->u.pg.xid != 0 || info->u.pg.commit_lsn != 0)
        info->kind = TM_SOURCE_POSTGRES;
    else
        memset(&info->u, 0, sizeof(info->u));
    const jv_t *snap = f[SF_SNAPSHOT];
    if (snap == NULL)
        return;
    if (snap->kind == JV_TRUE || is_str(snap, "true"))
        info->snapshot = TM_SNAPSHOT_TRUE;
    else if (is_str(snap, "first"))
        info->snapshot = TM_SNAPSHOT_FIRST;
    else if (is_str(snap, "first_in_data_collection"))
        info->snapshot = TM_SNAPSHOT_FIRST_IN_DATA_COLLECTION;
    else if (is_str(snap, "last_in_data_collection"))
        info->snapshot = TM_SNAPSHOT_LAST_IN_DATA_COLLECTION;
    else if (is_str(snap, "last"))
        info->snapshot = TM_SNAPSHOT_LAST;
    else if (is_str(snap, "incremental"))
        info->snapshot = TM_SNAPSHOT_INCREMENTAL;
}

static int64_t envelope_us(tm_dbz_decoder_t *dec, const jv_t *payload)
{
    int64_t x;
    if (get_i64(payload, "ts_us", &dec->scratch, &x))
        return x;
    if (get_i64(payload, "ts_ms", &dec->scratch, &x) && !__builtin_mul_overflow(x, 1000, &x))
        return x;
    if (get_i64(payload, "ts_ns", &dec->scratch, &x))
        return tm__dbz_floordiv(x, 1000);
    return 0;
}

/* Finds or derives the schema entry for an event (invariant 1). */
/*
 * `row_schema` is the event's row struct schema, or NULL; `unparsed` says it
 * is only its text (invariant 4), and then a cache miss returns DEC_REPARSE.
 */
#define DEC_REPARSE 1

static int resolve_schema(tm_dbz_decoder_t *dec, char tag, const ident_t *id,
                          const jv_t *row_schema, bool unparsed, const jv_t *after,
                          const jv_t *before, dec_entry_t **out, char *errstr,
                          size_t errstr_size)
{
    tm_buf_t *key = &dec->key;
    if (tag == 'M')
        row_schema = NULL;
    int ninfer = 0;
    tm_buf_clear(key);
    if (tag != 'M')
        tag = dec->declared ? 'D' : row_schema ? 'S' : 'I';
    if (tm_buf_putc(key, tag) != 0 || key_ident(key, id) != 0)
        return TM_ENOMEM;
    size_t identlen = key->len - 1;
    size_t sigstart = key->len;
    if ((tag == 'D' || tag == 'S') && row_schema != NULL &&
        tm_buf_append(key, row_schema->raw, row_schema->rawlen) != 0)
        return TM_ENOMEM;
    if (tag == 'I' && infer_signature(dec, after, before, key, &ninfer) != 0)
        return TM_ENOMEM;

    uint64_t h = fnv1a(key->data, key->len);
    dec_entry_t *e = cache_find(dec, key, h);
    if (e != NULL) {
        *out = e;
        return 0;
    }
    if (tag == 'I' && ninfer == 0 && (e = cache_latest(dec, key->data + 1, identlen)) != NULL) {
        /*
         * Nothing to infer from (a truncate, or a delete without a before
         * image): the event belongs to whatever its stream looked like last.
         */
        *out = e;
        return 0;
    }
    if (unparsed && row_schema != NULL)
        return DEC_REPARSE;
    uint8_t *wire = NULL;
    int32_t *wscale = NULL;
    tm_schema_t *s;
    switch (tag) {
    case 'D':
        s = derive_declared(dec, id, row_schema, &wire, &wscale);
        break;
    case 'S':
        s = derive_from_schema(dec, id, row_schema, &wire, &wscale);
        break;
    case 'I':
        s = derive_inferred(id, key->data + sigstart, key->len - sigstart, ninfer, &wire, &wscale);
        break;
    default:
        s = tm_schema_new(0);
        if (s != NULL && alloc_wire(0, &wire, &wscale) != 0)
            s = tm_schema_unref(s);
        if (s != NULL)
            schema_set_ident(s, id);
        break;
    }
    if (s == NULL)
        return TM_ENOMEM;
    int rc = tm_schema_finish(s);
    if (rc != 0) {
        free(wire);
        free(wscale);
        tm_schema_unref(s);
        return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                         "the declared schema's key columns are inconsistent");
    }
    s->version = cache_next_version(dec, key->data + 1, identlen);
    e = cache_insert(dec, key, h, identlen, s, wire, wscale);
    if (e == NULL)
        return TM_ENOMEM;
    *out = e;
    return 0;
}

static int decode_message(tm_dbz_decoder_t *dec, const jv_t *payload, tm_batch_t *batch,
                          tm_record_t *rec, char *errstr, size_t errstr_size)
{
    const jv_t *m = obj_get(payload, "message");
    if (m == NULL || m->kind != JV_OBJ)
        return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                         "field 'message': expected an object in a message event");
    const jv_t *prefix = obj_get(m, "prefix"), *content = obj_get(m, "content");
    if (prefix != NULL && prefix->kind == JV_STR) {
        rec->msg_prefix = tm_arena_memdup(&batch->arena, prefix->s, prefix->n);
        if (rec->msg_prefix == NULL)
            return TM_ENOMEM;
    }
    if (content != NULL && content->kind == JV_STR) {
        size_t cap = content->n / 4 * 3 + 3;
        uint8_t *buf = tm_arena_alloc(&batch->arena, cap + 1);
        if (buf == NULL)
            return TM_ENOMEM;
        long n = tm_base64_decode(content->s, content->n, buf, cap);
        if (n < 0)
            return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                             "field 'message.content': expected base64");
        rec->msg_content = buf;
        rec->msg_len = (uint32_t)n;
    } else if (content != NULL && content->kind != JV_NULL) {
        return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                         "field 'message.content': expected a base64 string, got %s",
                         kind_name(content));
    }
    return 0;
}

/* Keeps the text of a parsed "schema" part and of its row schema (invariant 4). */
static void remember_schema(tm_dbz_decoder_t *dec, const jv_t *schema_part, const jv_t *row)
{
    if (schema_part->rawlen > SCHEMA_TEXT_MAX)
        return;
    schema_text_t *t = &dec->seen[dec->seen_next];
    char *text = malloc(schema_part->rawlen);
    char *rtext = row != NULL ? malloc(row->rawlen ? row->rawlen : 1) : NULL;
    if (text == NULL || (row != NULL && rtext == NULL)) {
        free(text);
        free(rtext);
        return;
    }
    memcpy(text, schema_part->raw, schema_part->rawlen);
    if (row != NULL)
        memcpy(rtext, row->raw, row->rawlen);
    free(t->text);
    free(t->row);
    t->text = text;
    t->len = schema_part->rawlen;
    t->row = rtext;
    t->rowlen = row != NULL ? row->rawlen : 0;
    dec->seen_next = (dec->seen_next + 1) % SCHEMA_TEXTS;
}

static int decode_event(tm_dbz_decoder_t *dec, const char *json, size_t len, bool skip_schema,
                        tm_batch_t *batch, tm_record_t **out, char *errstr, size_t errstr_size)
{
    jparser_t jp = {.p = json,
                    .start = json,
                    .end = json + len,
                    .arena = &dec->scratch,
                    .vstack = &dec->vstack,
                    .vcap = &dec->vcap,
                    .kstack = &dec->kstack,
                    .kcap = &dec->kcap,
                    .seen = skip_schema ? dec->seen : NULL,
                    .skipped = -1};
    /* A UTF-8 byte order mark is tolerated. */
    if (len >= 3 && memcmp(json, "\xEF\xBB\xBF", 3) == 0)
        jp.p += 3;
    jp_ws(&jp);
    if (jp.p == jp.end)
        return TM_ENOTFOUND;
    jv_t root;
    if (!jp_value(&jp, &root) || (jp_ws(&jp), jp.p != jp.end)) {
        const char *why = jp.err ? jp.err : "trailing characters after the event";
        return tm_seterr(errstr, errstr_size, TM_ECORRUPT, "invalid JSON at byte %zu: %s",
                         (size_t)(jp.p - jp.start), why);
    }
    if (root.kind == JV_NULL)
        return TM_ENOTFOUND;
    if (root.kind != JV_OBJ)
        return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                         "event: expected a JSON object, got %s", kind_name(&root));

    const jv_t *payload = &root, *schema_part = NULL, *row_schema = NULL;
    jv_t row_text;
    const jv_t *p = obj_get(&root, "payload");
    if (p != NULL) {
        /* The schemas.enable=true form; {"schema":…,"payload":null} is a tombstone. */
        if (p->kind == JV_NULL)
            return TM_ENOTFOUND;
        if (p->kind != JV_OBJ)
            return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                             "field 'payload': expected an object, got %s", kind_name(p));
        payload = p;
        schema_part = obj_get(&root, "schema");
        if (schema_part != NULL && schema_part->kind != JV_OBJ)
            schema_part = NULL;
        if (schema_part != NULL && jp.skipped >= 0 && schema_part->raw == jp.skipped_at) {
            /* Not parsed (invariant 4): its row schema is the kept text. */
            const schema_text_t *t = &dec->seen[jp.skipped];
            if (t->row != NULL) {
                memset(&row_text, 0, sizeof(row_text));
                row_text.kind = JV_OBJ;
                row_text.raw = t->row;
                row_text.rawlen = (uint32_t)t->rowlen;
                row_schema = &row_text;
            }
        } else if (schema_part != NULL) {
            row_schema = row_schema_of(schema_part);
            if (skip_schema)
                remember_schema(dec, schema_part, row_schema);
        }
    }

    const jv_t *opv = obj_get(payload, "op");
    if (opv == NULL || opv->kind != JV_STR || opv->n != 1 || strchr("crudtm", opv->s[0]) == NULL)
        return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                         "field 'op': expected one of \"c\", \"r\", \"u\", \"d\", \"t\", \"m\"");
    tm_op_t op = (tm_op_t)opv->s[0];

    tm_source_info_t info;
    ident_t id;
    memset(&info, 0, sizeof(info));
    read_source(dec, obj_get(payload, "source"), &id, &info);

    if (tm_batch_full(batch))
        return tm_seterr(errstr, errstr_size, TM_EAGAIN, "the batch is full");

    const jv_t *before = obj_get(payload, "before"), *after = obj_get(payload, "after");
    dec_entry_t *e = NULL;
    int rc = resolve_schema(dec, op == TM_OP_MESSAGE ? 'M' : '?', &id, row_schema,
                            jp.skipped >= 0, after, before, &e, errstr, errstr_size);
    if (rc != 0)
        return rc;

    /* Rows first, the record last (invariant 2). */
    tm_row_t *brow = NULL, *arow = NULL;
    conv_ctx_t cx = {dec, batch, "before", errstr, errstr_size};
    if (op != TM_OP_MESSAGE && op != TM_OP_TRUNCATE) {
        if ((rc = decode_row(&cx, e, before, &brow)) != 0)
            return rc;
        cx.image = "after";
        if ((rc = decode_row(&cx, e, after, &arow)) != 0)
            return rc;
    }
    tm_record_t tmp;
    memset(&tmp, 0, sizeof(tmp));
    if (op == TM_OP_MESSAGE && (rc = decode_message(dec, payload, batch, &tmp, errstr,
                                                    errstr_size)) != 0)
        return rc;

    tm_record_t *rec = tm_batch_add(batch, e->schema, op);
    if (rec == NULL)
        return TM_ENOMEM;
    rec->before = brow;
    rec->after = arow;
    rec->proc_us = envelope_us(dec, payload);
    rec->src = info;
    rec->msg_prefix = tmp.msg_prefix;
    rec->msg_content = tmp.msg_content;
    rec->msg_len = tmp.msg_len;
    if (out != NULL)
        *out = rec;
    return 0;
}

int tm_dbz_decode(tm_dbz_decoder_t *dec, const char *json, size_t len, tm_batch_t *batch,
                  tm_record_t **out, char *errstr, size_t errstr_size)
{
    if (out != NULL)
        *out = NULL;
    if (json == NULL || len == 0)
        return TM_ENOTFOUND;
    tm_arena_reset(&dec->scratch);
    int rc = decode_event(dec, json, len, true, batch, out, errstr, errstr_size);
    if (rc == DEC_REPARSE) {
        tm_arena_reset(&dec->scratch);
        rc = decode_event(dec, json, len, false, batch, out, errstr, errstr_size);
    }
    if (rc == TM_ENOMEM)
        tm_seterr(errstr, errstr_size, rc, "out of memory while decoding a Debezium event");
    return rc;
}
