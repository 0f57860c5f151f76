/*
 * binlog_gtid.c — GTID event bodies of MariaDB and MySQL (see binlog_gtid.h).
 *
 * Role: the MariaDB form is seq_no (8), domain_id (4), flags2 (1), ...; the
 * MySQL form (libbinlogevents' Gtid_event) is flags (1), SID (16), GNO (8),
 * then optionally the logical clock: typecode (1, = 2), last_committed (8),
 * sequence_number (8), followed by timestamps and lengths we do not need.
 * All integers are little-endian.
 *
 * Invariants: see binlog_gtid.h.
 *
 * Thread: any.
 */
#include "mysql/binlog_gtid.h"

#include "core/error.h"
#include "mysql/binlog_rows.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* MariaDB GTID flags2: the group has no XID/COMMIT (a DDL statement). */
#define MARIADB_FL_STANDALONE 1
/* MySQL's logical clock typecode. */
#define MYSQL_LOGICAL_CLOCK 2

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

int tm_my_gtid_parse(uint8_t type, const uint8_t *body, size_t len, uint32_t server_id,
                     tm_my_gtid_t *out, char *errstr, size_t errstr_size)
{
    memset(out, 0, sizeof(*out));
    if (type == TM_MY_EV_GTID) {
        if (len < 13)
            return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                             "MariaDB GTID event of %zu bytes is shorter than its 13 fixed bytes",
                             len);
        out->seq = le(body, 8);
        out->domain = (uint32_t)le(body + 8, 4);
        out->standalone = (body[12] & MARIADB_FL_STANDALONE) != 0;
        snprintf(out->text, sizeof(out->text), "%" PRIu32 "-%" PRIu32 "-%" PRIu64, out->domain,
                 server_id, out->seq);
        return 0;
    }
    if (type != TM_MY_EV_MYSQL_GTID && type != TM_MY_EV_MYSQL_ANONYMOUS_GTID)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "binlog event type %u is not a GTID",
                         type);
    if (len < 25)
        return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                         "MySQL GTID event of %zu bytes is shorter than its 25 fixed bytes", len);
    out->mysql = true;
    const uint8_t *sid = body + 1;
    out->seq = le(body + 17, 8);
    if (len >= 42 && body[25] == MYSQL_LOGICAL_CLOCK) {
        out->last_committed = le(body + 26, 8);
        out->sequence_number = le(body + 34, 8);
    }
    if (type == TM_MY_EV_MYSQL_ANONYMOUS_GTID)
        return 0;
    if (out->seq == 0 || out->seq > (uint64_t)INT64_MAX)
        return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                         "MySQL GTID event has GNO %" PRIu64 ", outside 1 to 2^63-1", out->seq);
    static const char hex[] = "0123456789abcdef";
    char *o = out->text;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[sid[i] >> 4];
        *o++ = hex[sid[i] & 15];
    }
    snprintf(o, sizeof(out->text) - (size_t)(o - out->text), ":%" PRIu64, out->seq);
    return 0;
}
