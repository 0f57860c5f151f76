/*
 * pg_capture.h — loads the captured pgoutput messages of tests/data/pgoutput.
 *
 * Each capture file (written by tests/data/pgoutput/capture.sh) has one
 * message per line: "<lsn> <xid> <hex bytes>".  The loader keeps them in
 * stream order with their LSNs.
 *
 * Thread: tests are single-threaded.
 */
#ifndef TM_TEST_PG_CAPTURE_H
#define TM_TEST_PG_CAPTURE_H

#include "postgres/pgoutput.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct capmsg {
    uint64_t lsn;
    uint32_t xid;
    uint8_t *data;
    size_t len;
} capmsg_t;

typedef struct capture {
    capmsg_t *v;
    size_t n;
} capture_t;

static inline int cap_hex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Returns 0, or -1 if the file is missing or malformed. */
static inline int capture_load(const char *path, capture_t *cap)
{
    memset(cap, 0, sizeof(*cap));
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char *line = NULL;
    size_t linecap = 0, cap_n = 0;
    ssize_t got;
    int rc = 0;
    while ((got = getline(&line, &linecap, f)) > 0) {
        char lsn[32], *hex;
        unsigned long xid;
        int off = 0;
        if (sscanf(line, "%31s %lu %n", lsn, &xid, &off) != 2) {
            rc = -1;
            break;
        }
        hex = line + off;
        size_t hlen = strcspn(hex, "\r\n");
        if (hlen % 2 != 0) {
            rc = -1;
            break;
        }
        if (cap->n == cap_n) {
            cap_n = cap_n ? cap_n * 2 : 256;
            cap->v = realloc(cap->v, cap_n * sizeof(capmsg_t));
        }
        capmsg_t *m = &cap->v[cap->n++];
        m->xid = (uint32_t)xid;
        tm_pg_lsn_parse(lsn, &m->lsn);
        m->len = hlen / 2;
        m->data = malloc(m->len ? m->len : 1);
        for (size_t i = 0; i < m->len; i++)
            m->data[i] = (uint8_t)(cap_hex(hex[2 * i]) << 4 | cap_hex(hex[2 * i + 1]));
    }
    free(line);
    fclose(f);
    return rc;
}

static inline void capture_free(capture_t *cap)
{
    for (size_t i = 0; i < cap->n; i++)
        free(cap->v[i].data);
    free(cap->v);
    memset(cap, 0, sizeof(*cap));
}

#endif
