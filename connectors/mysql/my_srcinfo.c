/*
 * my_srcinfo.c — the MySQL block of a record's source information
 * (tm_my_source_t, src/core/row.h) for rows that do not come from a rows
 * event: snapshot reads.
 *
 * Role: streamed rows get their block in my_stream.c (on_rows), from the
 * rows event.  A snapshot row has no event: Debezium's MySQL and MariaDB
 * connectors write the binlog position the snapshot is consistent with
 * (file and pos), row 0, server_id 0, and no GTID or thread
 * (tests/data/debezium/risingwave: "server_id":0,"file":"mysql-bin.000003",
 * "pos":157,"row":0).  This file fills that block so the snapshot code does
 * not repeat it.
 *
 * Invariants:
 *   1. The file name is interned (tm_intern): the block holds no pointer
 *      into the position or the batch.
 *   2. The ordering position (info->pos) is the position's token, as the
 *      streamed rows' (tm_my_pos_token).
 *
 * Thread: the source thread.
 */
#include "mysql/mysql_int.h"

#include "core/error.h"

#include <string.h>

int tm_my_snapshot_source(const tm_source_t *src, const tm_my_pos_t *pos, int64_t ts_us,
                          uint8_t snapshot, tm_source_info_t *info)
{
    memset(info, 0, sizeof(*info));
    info->ts_us = ts_us;
    info->pos = tm_my_pos_token(pos);
    info->snapshot = snapshot;
    info->kind = TM_SOURCE_MYSQL;
    tm_my_source_t *my = &info->u.my;
    my->mariadb = src->is_mariadb;
    my->event_pos = pos->offset <= UINT32_MAX ? (uint32_t)pos->offset : 0;
    if (pos->file[0] != '\0' && (my->file = tm_intern(pos->file, strlen(pos->file))) == NULL)
        return TM_ENOMEM;
    return 0;
}
