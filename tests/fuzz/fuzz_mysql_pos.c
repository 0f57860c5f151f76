/*
 * fuzz_mysql_pos.c — libFuzzer target for the mysql-cdc source's positions
 * and GTID sets (connectors/mysql/mysql.c: tm_my_pos_parse, my_gtid.c).
 *
 * Role: a position string comes back from a checkpoint's _metadata or the
 * position file, and a GTID list from the server's oldest binlog; neither is
 * trusted.  An input is split at its first newline:
 *
 *     line 1     parsed as a position ("file=… pos=… gtid=…"); its GTID set,
 *                when it parses, is the set the rest works on
 *     the rest   each comma-separated item is put into the set with
 *                tm_my_gtid_set_update (into a small buffer, so "does not
 *                fit" is exercised too), and the whole rest is checked as
 *                an oldest-binlog GTID list with tm_my_gtid_covered
 *
 * Invariants: no crash, no read or write out of bounds, a set that stays
 * NUL-terminated within its buffer.
 *
 * How to run it (tests/fuzz/meson.build builds it with -Dfuzz=true):
 *
 *   CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
 *   ninja -C build-fuzz tests/fuzz/fuzz-mysql_pos
 *   build-fuzz/tests/fuzz/fuzz-mysql_pos tests/fuzz/mysql_pos
 *
 * Seeds in tests/fuzz/mysql_pos/: positions and lists as the server and the
 * tests write them.
 *
 * Thread: libFuzzer calls the target from one thread.
 */
#include "mysql/mysql_int.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *nl = strchr(text, '\n');
    char *rest = nl != NULL ? nl + 1 : text + strlen(text);
    if (nl != NULL)
        *nl = '\0';
    tm_my_pos_t pos;
    char set[48] = "";
    if (tm_my_pos_parse(text, &pos) == 0) {
        char buf[600];
        tm_my_pos_format(&pos, buf, sizeof(buf));
        (void)tm_my_pos_token(&pos);
        if (strlen(pos.gtid) < sizeof(set))
            memcpy(set, pos.gtid, strlen(pos.gtid) + 1);
    }
    char why[128];
    (void)tm_my_gtid_covered(set, rest, why, sizeof(why));
    (void)tm_my_gtid_covered(rest, set, why, sizeof(why));
    char *item = rest;
    while (*item != '\0') {
        size_t n = strcspn(item, ",");
        char one[80];
        if (n < sizeof(one)) {
            memcpy(one, item, n);
            one[n] = '\0';
            (void)tm_my_gtid_set_update(set, sizeof(set), one);
        }
        item += n;
        if (*item == ',')
            item++;
    }
    if (memchr(set, '\0', sizeof(set)) == NULL)
        abort();
    free(text);
    return 0;
}
