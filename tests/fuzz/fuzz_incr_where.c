/*
 * fuzz_incr_where.c — libFuzzer target for the row filter of incremental
 * snapshots (POST /v1/snapshots "where", a signal's additional-condition).
 *
 * Role: the filter is pasted into every chunk query of the PostgreSQL
 * source (connectors/postgres/pg_incr.c) as
 *
 *     SELECT cols FROM t WHERE (<where>) AND (pk) > ($1) ORDER BY pk LIMIT n
 *
 * so the check tm_pg_incr_request() makes must keep it inside its
 * parentheses.  Every input is tried as a filter; when the check accepts it
 * (no source is registered, so an accepted filter gets TM_ENOTFOUND), the
 * chunk query built around it must parse (libpg_query) as exactly one
 * statement whose WHERE clause is an AND ending in the key test: the filter cannot
 * end early, add a UNION, or start another statement.
 *
 * Invariants: no crash, no leak, no undefined behaviour on any input; the
 * property above holds (abort() otherwise, which libFuzzer reports).
 *
 * How to run it (tests/fuzz/meson.build builds it with -Dfuzz=true):
 *
 *   CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
 *   ninja -C build-fuzz tests/fuzz/fuzz-incr_where
 *   build-fuzz/tests/fuzz/fuzz-incr_where tests/fuzz/incr_where
 *
 * Thread: libFuzzer calls the target from one thread.
 */
#include "fuzz_util.h"

#include "core/buf.h"
#include "core/error.h"
#include "postgres/pg_incr.h"

#include <jansson.h>
#include <pg_query.h>
#include <stdbool.h>
#include <string.h>

/*
 * One SELECT (no set operation at the top), whose WHERE is an AND whose last
 * argument is our key test `id > $1` (the parser flattens a filter that is
 * itself an AND into the same list), and which keeps its ORDER BY and LIMIT.
 */
static bool one_and_statement(const char *sql)
{
    PgQueryParseResult r = pg_query_parse(sql);
    json_t *tree = r.error == NULL && r.parse_tree ? json_loads(r.parse_tree, 0, NULL) : NULL;
    pg_query_free_parse_result(r);
    json_t *stmts = json_object_get(tree, "stmts");
    json_t *sel = json_object_get(json_object_get(json_array_get(stmts, 0), "stmt"), "SelectStmt");
    json_t *where = json_object_get(json_object_get(sel, "whereClause"), "BoolExpr");
    json_t *args = json_object_get(where, "args");
    size_t nargs = json_array_size(args);
    json_t *key = nargs >= 2 ? json_object_get(json_array_get(args, nargs - 1), "A_Expr") : NULL;
    json_t *param = json_object_get(json_object_get(key, "rexpr"), "ParamRef");
    const char *op = json_string_value(json_object_get(sel, "op"));
    const char *boolop = json_string_value(json_object_get(where, "boolop"));
    bool ok = json_array_size(stmts) == 1 && op != NULL && strcmp(op, "SETOP_NONE") == 0 &&
              boolop != NULL && strcmp(boolop, "AND_EXPR") == 0 &&
              json_integer_value(json_object_get(param, "number")) == 1 &&
              json_object_get(sel, "limitCount") != NULL &&
              json_object_get(sel, "sortClause") != NULL;
    json_decref(tree);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *where = malloc(size + 1);
    if (where == NULL)
        return 0;
    memcpy(where, data, size);
    where[size] = '\0';
    /* The filter arrives in JSON (the API's body, a signal's data): valid UTF-8 only. */
    json_t *utf8 = json_stringn(where, size);
    if (strlen(where) != size || size == 0 || utf8 == NULL) {
        json_decref(utf8);
        free(where);
        return 0;
    }
    json_decref(utf8);
    const char *tables[] = {"public.orders"};
    char err[512];
    int64_t rc = tm_pg_incr_request(NULL, tables, 1, where, err, sizeof(err));
    if (rc != TM_EINVAL && rc != TM_ENOTFOUND)
        abort();
    if (rc == TM_ENOTFOUND) {
        char *sql = tm_asprintf("SELECT a, b FROM public.orders WHERE (%s) AND (id) > ($1) "
                                "ORDER BY id LIMIT 10",
                                where);
        if (sql != NULL && !one_and_statement(sql)) {
            fprintf(stderr, "accepted filter escapes its parentheses: %s\n", where);
            abort();
        }
        free(sql);
    }
    free(where);
    return 0;
}
