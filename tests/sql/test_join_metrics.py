"""The rows a join keeps in state per side, in /metrics, through changes and a crash.

tidemark_operator_state_rows{operator,input} counts every row of each side
the join's state holds: rows whose join key is NULL never match and are not
stored, deletes take rows out, and after kill -9 the restarted daemon counts
its restored state again.
"""

import re

import pytest

from tidemark import Tidemark, create_table, wait_until

JOB_QUERY = "SELECT o.id, c.name FROM orders o JOIN customers c ON o.cid = c.id"


def state_rows(tm) -> dict:
    """{"left": n, "right": n} of the job's one join, or {} while it is not up."""
    try:
        text = tm.admin_get("/metrics", timeout=5)
    except (OSError, AssertionError):
        return {}
    return {m.group(2): int(m.group(3)) for m in re.finditer(
        r'^tidemark_operator_state_rows\{operator="([^"]*join[^"]*)",input="(left|right)"\} '
        r'(-?\d+)$', text, re.M)}


@pytest.mark.deadline(180)
def test_join_state_rows_per_side(sql_pg, sql_db, sql_bin, tmp_path):
    pg = sql_pg
    pg.psql("CREATE TABLE customers (id int PRIMARY KEY, name text);"
            "CREATE TABLE orders (id int PRIMARY KEY, cid int);"
            "INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 20) g;"
            # 50 orders, 5 of them without a customer (NULL join key).
            "INSERT INTO orders SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE g % 25 END "
            "FROM generate_series(1, 50) g;", db=sql_db)
    parts = []
    for t, cols in (("orders", "id int PRIMARY KEY, cid int"),
                    ("customers", "id int PRIMARY KEY, name text")):
        parts.append(create_table(t, {"connector": "postgres-cdc", "dsn": pg.dsn(sql_db),
                                      "table": f"public.{t}", "slot": f"jm_{t}",
                                      "publication": f"jm_{t}", "snapshot": "initial",
                                      "heartbeat_interval": "200ms"}, cols))
    parts.append(create_table("out", {"connector": "file", "path": str(tmp_path / "out")}))
    parts += [f"INSERT INTO out {JOB_QUERY};", "SET checkpoint_interval = '200ms';",
              "SET parallelism = 2;", "SET admin_address = '127.0.0.1:0';"]
    tm = Tidemark("\n".join(parts) + "\n", tmp_path / "tm", bin=sql_bin).start()
    try:
        want = {"left": 45, "right": 20}
        wait_until(lambda: state_rows(tm) == want, 60, f"state rows {want}", tm)
        pg.psql("DELETE FROM orders WHERE id <= 3; DELETE FROM customers WHERE id IN (1, 2);"
                "UPDATE orders SET cid = NULL WHERE id = 4;"
                "INSERT INTO customers VALUES (21, 'c21');", db=sql_db)
        want = {"left": 41, "right": 19}
        wait_until(lambda: state_rows(tm) == want, 60, f"state rows {want}", tm)
        # Let a checkpoint cover the changes, then crash: the restart counts its restored state.
        pg.psql("INSERT INTO orders VALUES (51, 5);", db=sql_db)
        want = {"left": 42, "right": 19}
        wait_until(lambda: state_rows(tm) == want, 60, f"state rows {want}", tm)
        tm.kill9()
        tm.start()
        wait_until(lambda: state_rows(tm) == want, 60, f"state rows {want} after kill -9", tm)
        assert tm.terminate() == 0, tm.log_tail()
    finally:
        tm.kill9()
