#!/usr/bin/env python3
"""How the PostgreSQL sink should write a batch: COPY + one merge, or multi-row statements.

Applies the same batch to a keyed table in one transaction, three ways, and
prints the time of each (best of --repeat):

  copy-merge   COPY into an unlogged staging table, one INSERT … SELECT … ON
               CONFLICT (id) DO UPDATE, one DELETE … USING, TRUNCATE staging
               (what connectors/postgres/pg_sink.c does)
  multi-row    INSERT … VALUES (…),(…) ON CONFLICT DO UPDATE and DELETE …
               WHERE id = ANY(…) in statements of --rows-per-stmt rows
  per-row      one INSERT … ON CONFLICT per change (the naive consumer)

The batch is --rows changes over a table that already holds --rows rows:
90 % updates of existing keys, 5 % new keys, 5 % deletes.  Starts its own
PostgreSQL server (tests/lib/pgserver.py).

    /usr/bin/python3 bench/pg_sink_merge.py --rows 100000
"""

import argparse
import io
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "lib"))
from pgserver import PgServer  # noqa: E402

COLS = "id bigint PRIMARY KEY, customer bigint, amount numeric(14,2), note text"


def batch(n, rng):
    ups, dels = [], []
    for i in range(n):
        r = rng.random()
        if r < 0.05:
            dels.append(rng.randrange(n))
        else:
            key = rng.randrange(n) if r < 0.95 else n + i
            ups.append((key, rng.randrange(1000), f"{rng.randrange(10**7) / 100:.2f}", f"n{i}"))
    # The sink folds per key: one image per key, and no key both upserted and deleted.
    folded = {u[0]: u for u in ups}
    dels = sorted(set(dels) - set(folded))
    return list(folded.values()), dels


def reset(cur, n):
    cur.execute("DROP TABLE IF EXISTS t; DROP TABLE IF EXISTS t_stage")
    cur.execute(f"CREATE TABLE t ({COLS})")
    cur.execute(f"INSERT INTO t SELECT g, g % 1000, g * 1.5, 'x' FROM generate_series(0, {n - 1}) g")
    cur.execute("CREATE UNLOGGED TABLE t_stage AS SELECT false AS del, * FROM t WITH NO DATA")
    cur.execute("VACUUM ANALYZE t")


def copy_merge(cur, ups, dels):
    buf = io.StringIO()
    for u in ups:
        buf.write(f"f\t{u[0]}\t{u[1]}\t{u[2]}\t{u[3]}\n")
    for d in dels:
        buf.write(f"t\t{d}\t\\N\t\\N\t\\N\n")
    buf.seek(0)
    cur.copy_expert("COPY t_stage (del, id, customer, amount, note) FROM STDIN", buf)
    cur.execute("INSERT INTO t (id, customer, amount, note) SELECT id, customer, amount, note "
                "FROM t_stage WHERE NOT del ON CONFLICT (id) DO UPDATE SET customer = "
                "EXCLUDED.customer, amount = EXCLUDED.amount, note = EXCLUDED.note")
    cur.execute("DELETE FROM t USING t_stage s WHERE s.del AND t.id = s.id")
    cur.execute("TRUNCATE t_stage")


def multi_row(cur, ups, dels, per):
    for i in range(0, len(ups), per):
        part = ups[i:i + per]
        values = ",".join(["(%s,%s,%s,%s)"] * len(part))
        cur.execute(f"INSERT INTO t (id, customer, amount, note) VALUES {values} ON CONFLICT (id) "
                    "DO UPDATE SET customer = EXCLUDED.customer, amount = EXCLUDED.amount, "
                    "note = EXCLUDED.note", [x for u in part for x in u])
    for i in range(0, len(dels), per):
        cur.execute("DELETE FROM t WHERE id = ANY(%s)", (dels[i:i + per],))


def per_row(cur, ups, dels):
    for u in ups:
        cur.execute("INSERT INTO t (id, customer, amount, note) VALUES (%s,%s,%s,%s) ON CONFLICT "
                    "(id) DO UPDATE SET customer = EXCLUDED.customer, amount = EXCLUDED.amount, "
                    "note = EXCLUDED.note", u)
    for d in dels:
        cur.execute("DELETE FROM t WHERE id = %s", (d,))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--rows-per-stmt", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-per-row", action="store_true")
    a = ap.parse_args()
    rng = random.Random(1)
    ups, dels = batch(a.rows, rng)
    with PgServer() as pg:
        conn = pg.connect()
        cur = conn.cursor()
        ways = [("copy-merge", lambda: copy_merge(cur, ups, dels)),
                ("multi-row", lambda: multi_row(cur, ups, dels, a.rows_per_stmt))]
        if not a.skip_per_row:
            ways.append(("per-row", lambda: per_row(cur, ups, dels)))
        print(f"batch: {len(ups)} upserts, {len(dels)} deletes over {a.rows} rows")
        for name, fn in ways:
            best = None
            for _ in range(a.repeat):
                reset(cur, a.rows)
                cur.execute("BEGIN")
                t0 = time.perf_counter()
                fn()
                cur.execute("COMMIT")
                dt = time.perf_counter() - t0
                best = dt if best is None else min(best, dt)
            n = len(ups) + len(dels)
            print(f"{name:11s} {best:7.3f} s  {n / best:10.0f} rows/s")


if __name__ == "__main__":
    main()
