/*
 * fuzz_ddl.c — libFuzzer target for how the mysql-cdc source tells that a
 * binlog QUERY event's statement is DDL naming a captured table
 * (tm_my_catalog_ddl_names, connectors/mysql/my_catalog.c).  The statement
 * comes from the server's binlog: any bytes, not NUL-terminated.
 *
 * Input: the first byte is the length of the table name (mod 65), the name
 * follows, the rest is the statement.  The statement is copied to a buffer
 * of exactly its length, so reading past it is caught by ASan.
 *
 * Invariants: no crash, no read outside the statement, no undefined
 * behaviour; the answer does not depend on bytes after the statement's
 * length; a statement that is exactly "ALTER TABLE <name>" is always found.
 *
 * Thread: libFuzzer calls the target from one thread.
 */
#include "fuzz_util.h"

#include "mysql/mysql_int.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t tl = data[0] % 65;
    if (size < 1 + tl)
        return 0;
    char table[66];
    memcpy(table, data + 1, tl);
    table[tl] = '\0';
    size_t sl = size - 1 - tl;
    char *stmt = malloc(sl ? sl : 1);
    if (stmt == NULL)
        abort();
    memcpy(stmt, data + 1 + tl, sl);
    bool a = tm_my_catalog_ddl_names(stmt, sl, table);
    /* The same statement followed by other bytes, with the length given: the same answer. */
    char *longer = malloc(sl + 8);
    if (longer == NULL)
        abort();
    memcpy(longer, stmt, sl);
    memcpy(longer + sl, "orders ", 7);
    longer[sl + 7] = '\0';
    if (tm_my_catalog_ddl_names(longer, sl, table) != a)
        abort();
    free(longer);
    free(stmt);
    /* A plain ALTER of a name without a NUL inside is always seen. */
    if (tl > 0 && strlen(table) == tl) {
        char alter[96];
        int n = snprintf(alter, sizeof(alter), "ALTER TABLE %s", table);
        if (!tm_my_catalog_ddl_names(alter, (size_t)n, table))
            abort();
    }
    return 0;
}
