/*
 * my_gtid.c — MariaDB GTID sets, as the mysql-cdc source records and checks them.
 *
 * Role: a MariaDB GTID is domain-server-seq; a GTID *set* (a replication
 * position, as @@gtid_binlog_pos and @slave_connect_state write it) holds the
 * last GTID of each replication domain, comma-separated: "0-1-7,1-2-30".
 * The stream keeps the set of its acknowledged position up to date one
 * transaction at a time (tm_my_gtid_set_update), and the start checks ask
 * whether the server's oldest binlog still holds everything after a set
 * (tm_my_gtid_covered).  Pure string work, no I/O, so the unit tests cover it
 * whole.
 *
 * Invariants:
 *   1. A set has at most one entry per domain; an update never grows the
 *      string past `cap` (it fails instead, leaving the set as it was).
 *   2. Malformed input gives TM_EINVAL, never a read past the string.
 *
 * Thread: no shared state; any thread.
 */
#include "mysql/mysql_int.h"

#include "core/error.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct gtid {
    uint32_t domain;
    uint32_t server;
    uint64_t seq;
} gtid_t;

/* Parses one domain-server-seq of n bytes. */
static int parse_one(const char *s, size_t n, gtid_t *g)
{
    char buf[64];
    while (n > 0 && (*s == ' ' || *s == '['))
        s++, n--;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == ']'))
        n--;
    if (n == 0 || n >= sizeof(buf))
        return TM_EINVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    uint64_t part[3];
    const char *p = buf;
    for (int i = 0; i < 3; i++) {
        if (*p < '0' || *p > '9')
            return TM_EINVAL;
        char *end;
        part[i] = strtoull(p, &end, 10);
        if (i < 2 && (*end != '-' || part[i] > UINT32_MAX))
            return TM_EINVAL;
        if (i == 2 && *end != '\0')
            return TM_EINVAL;
        p = end + 1;
    }
    g->domain = (uint32_t)part[0];
    g->server = (uint32_t)part[1];
    g->seq = part[2];
    return 0;
}

/* Calls fn for each entry of a set; stops at the first non-zero return. */
static int each(const char *set, int (*fn)(const gtid_t *g, void *arg), void *arg)
{
    const char *p = set;
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        /* Blank entries (an empty set, "[]") are no error. */
        size_t k = strspn(p, " []");
        if (k < n) {
            gtid_t g;
            if (parse_one(p, n, &g) != 0)
                return TM_EINVAL;
            int rc = fn(&g, arg);
            if (rc != 0)
                return rc;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

typedef struct find {
    uint32_t domain;
    bool found;
    gtid_t g;
} find_t;

static int find_fn(const gtid_t *g, void *arg)
{
    find_t *f = arg;
    if (g->domain == f->domain) {
        f->found = true;
        f->g = *g;
    }
    return 0;
}

typedef struct rebuild {
    char *out;
    size_t cap, len;
    const gtid_t *put;
    bool placed;
} rebuild_t;

static int append(rebuild_t *r, const gtid_t *g)
{
    int n = snprintf(r->out + r->len, r->cap - r->len, "%s%" PRIu32 "-%" PRIu32 "-%" PRIu64,
                     r->len ? "," : "", g->domain, g->server, g->seq);
    if (n < 0 || (size_t)n >= r->cap - r->len)
        return TM_EINVAL;
    r->len += (size_t)n;
    return 0;
}

static int rebuild_fn(const gtid_t *g, void *arg)
{
    rebuild_t *r = arg;
    if (g->domain == r->put->domain) {
        r->placed = true;
        return append(r, r->put);
    }
    return append(r, g);
}

int tm_my_gtid_set_update(char *set, size_t cap, const char *gtid)
{
    gtid_t g;
    if (parse_one(gtid, strlen(gtid), &g) != 0 || cap == 0)
        return TM_EINVAL;
    char tmp[1024];
    rebuild_t r = {tmp, cap < sizeof(tmp) ? cap : sizeof(tmp), 0, &g, false};
    tmp[0] = '\0';
    int rc = each(set, rebuild_fn, &r);
    if (rc == 0 && !r.placed)
        rc = append(&r, &g);
    if (rc != 0)
        return rc;
    memcpy(set, tmp, r.len + 1);
    return 0;
}

typedef struct cover {
    const char *need;
    char *why;
    size_t whylen;
    bool missing;
} cover_t;

static int cover_fn(const gtid_t *old, void *arg)
{
    cover_t *c = arg;
    find_t f = {old->domain, false, {0, 0, 0}};
    int rc = each(c->need, find_fn, &f);
    if (rc != 0)
        return rc;
    if (f.found && f.g.seq >= old->seq)
        return 0;
    c->missing = true;
    if (f.found)
        snprintf(c->why, c->whylen,
                 "domain %" PRIu32 ": needed from after %" PRIu32 "-%" PRIu32 "-%" PRIu64
                 ", the oldest binlog starts after %" PRIu32 "-%" PRIu32 "-%" PRIu64,
                 old->domain, f.g.domain, f.g.server, f.g.seq, old->domain, old->server,
                 old->seq);
    else
        snprintf(c->why, c->whylen,
                 "domain %" PRIu32 ": needed from its start, the oldest binlog starts after "
                 "%" PRIu32 "-%" PRIu32 "-%" PRIu64,
                 old->domain, old->domain, old->server, old->seq);
    return 1;
}

int tm_my_gtid_covered(const char *need, const char *oldest, char *why, size_t whylen)
{
    if (whylen > 0)
        why[0] = '\0';
    /* The needed set must parse on its own, even where oldest has no domain to compare. */
    find_t probe = {UINT32_MAX, false, {0, 0, 0}};
    if (each(need, find_fn, &probe) != 0)
        return TM_EINVAL;
    cover_t c = {need, why, whylen, false};
    int rc = each(oldest, cover_fn, &c);
    if (rc < 0)
        return rc;
    return c.missing ? 0 : 1;
}
