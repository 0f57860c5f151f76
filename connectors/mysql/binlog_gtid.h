/*
 * binlog_gtid.h — GTID events of both servers, as the text each prints.
 *
 * Role: decodes the body of a GTID event into the transaction's GTID text
 * and whether the group is a standalone statement (no XID/COMMIT follows):
 *
 *     MariaDB GTID_EVENT (162)         domain-server-seq     e.g. 0-1-42
 *     MySQL GTID_LOG_EVENT (33)        uuid:seq              e.g. 3e11fa47-71ca-11e1-9e33-c80aa9429562:23
 *     MySQL ANONYMOUS_GTID_LOG_EVENT   (no GTID: gtid_mode = OFF) empty text
 *
 * Invariants:
 *   1. Bytes from the network are never trusted: a body shorter than its
 *      fixed part is TM_ECORRUPT with a message, never a read past the end.
 *   2. The text is what the server itself prints (SHOW BINLOG EVENTS,
 *      @@gtid_binlog_pos / @@gtid_executed), so positions compare as text.
 *
 * Thread: pure functions, any thread.
 */
#ifndef TM_MYSQL_BINLOG_GTID_H
#define TM_MYSQL_BINLOG_GTID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* MySQL's anonymous GTID event (gtid_mode = OFF): framing like GTID_LOG_EVENT, no GTID. */
#define TM_MY_EV_MYSQL_ANONYMOUS_GTID 34

typedef struct tm_my_gtid {
    char text[64];   /* "d-s-n" or "uuid:n"; empty for an anonymous GTID */
    bool standalone; /* MariaDB FL_STANDALONE: a DDL group without XID/COMMIT */
    bool mysql;      /* the MySQL form */
    uint64_t seq;    /* seq_no / gno */
    uint32_t domain; /* MariaDB domain id (0 for MySQL) */
    uint64_t last_committed, sequence_number; /* MySQL logical clock (0 if absent) */
} tm_my_gtid_t;

/*
 * Decodes a GTID event body (after the 19-byte header, without the checksum)
 * of type 162, 33 or 34; server_id is the event header's (MariaDB's GTID
 * names it).  Returns 0, TM_EINVAL for another type, or TM_ECORRUPT.
 */
int tm_my_gtid_parse(uint8_t type, const uint8_t *body, size_t len, uint32_t server_id,
                     tm_my_gtid_t *out, char *errstr, size_t errstr_size);

#endif
