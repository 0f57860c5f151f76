"""Interval joins and append-only Top-N over bounded inputs, checked against PostgreSQL.

A postgres-cdc source with `snapshot = 'initial_only'` reads its table once
and ends, so the planner takes it as an insert-only stream: the interval
join operator (not a regular join) and the Top-N operator's append-only
mode then run for real, and the job ends by itself once both inputs ended
(on_end pads the outer rows that never matched, as a watermark past every
row would).  Each query's folded output must equal PostgreSQL's answer to
the same SELECT, at parallelism 1 and 2; `explain` must show the operators.

The tables are seeded rows (bids within two hours of their auctions, so
ten-minute ranges match often; NULL keys and times included).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from sql_harness import (PG_TYPES, describe_difference, fold, output_lines, pg_answer,
                         type_mismatches)
from tidemark import Tidemark, run_cli

BASE = datetime(2026, 12, 7, 12, 0, 0)


def _ts(r: random.Random, tz: bool) -> str:
    if r.random() < 0.05:
        return "NULL"
    t = BASE + timedelta(seconds=r.randint(0, 7200), microseconds=r.choice([0, 500_000]))
    return f"'{t.strftime('%Y-%m-%d %H:%M:%S.%f')}{'+00' if tz else ''}'"


def _maybe(r: random.Random, v, p: float = 0.05) -> str:
    return "NULL" if r.random() < p else str(v)


def setup_sql(seed: int) -> str:
    r = random.Random(seed)
    out = ["CREATE TABLE auctions (id int PRIMARY KEY, seller int, category int, ts timestamp, "
           "tstz timestamptz);",
           "CREATE TABLE bids (id int PRIMARY KEY, auction int, bidder int, price numeric(10,2), "
           "ts timestamp, tstz timestamptz);"]
    for i in range(1, 31):
        out.append(f"INSERT INTO auctions VALUES ({i}, {_maybe(r, r.randint(1, 6))}, "
                   f"{r.randint(1, 3)}, {_ts(r, False)}, {_ts(r, True)});")
    for i in range(1, 301):
        price = f"{r.randint(100, 30000) / 100:.2f}"
        out.append(f"INSERT INTO bids VALUES ({i}, {_maybe(r, r.randint(1, 33))}, "
                   f"{r.randint(1, 12)}, {_maybe(r, price)}, {_ts(r, False)}, {_ts(r, True)});")
    return "\n".join(out)


BA = "FROM bids b {} auctions a ON b.auction = a.id AND "

QUERIES = {
    "ij_inner": "SELECT b.id, b.price, a.seller " + BA.format("JOIN") +
                "b.ts BETWEEN a.ts AND a.ts + INTERVAL '10 minutes'",
    "ij_left": "SELECT b.id, a.id AS aid, a.seller " + BA.format("LEFT JOIN") +
               "b.ts >= a.ts - INTERVAL '5 minutes' AND b.ts < a.ts + INTERVAL '15 minutes'",
    "ij_right": "SELECT b.id, a.id AS aid, a.category " + BA.format("RIGHT JOIN") +
                "a.ts BETWEEN b.ts - INTERVAL '20 minutes' AND b.ts - INTERVAL '1 minute'",
    "ij_full": "SELECT b.id, a.id AS aid " + BA.format("FULL JOIN") +
               "b.tstz BETWEEN a.tstz - INTERVAL '3 minutes' AND a.tstz + INTERVAL '3 minutes' "
               "AND b.price > 50",
    "ij_group_by": "SELECT a.seller, count(*) AS n, max(b.price) AS top " + BA.format("JOIN") +
                   "b.ts BETWEEN a.ts AND a.ts + INTERVAL '1 hour' GROUP BY a.seller",
    "topn_append": "SELECT * FROM (SELECT id, auction, price, row_number() OVER (PARTITION BY "
                   "auction ORDER BY price DESC, id) AS rn FROM bids) s WHERE rn <= 3",
    "topn_append_no_rn": "SELECT id, bidder FROM (SELECT id, bidder, row_number() OVER "
                         "(PARTITION BY bidder ORDER BY ts NULLS FIRST, id) AS rn FROM bids) s "
                         "WHERE rn <= 2",
    "dedup_last": "SELECT id, auction, ts FROM (SELECT *, row_number() OVER (PARTITION BY auction "
                  "ORDER BY ts DESC, id DESC) AS rn FROM bids) s WHERE rn = 1",
    "topn_over_agg": "SELECT * FROM (SELECT bidder, total, row_number() OVER (ORDER BY total "
                     "DESC, bidder) AS rn FROM (SELECT bidder, sum(price) AS total FROM bids "
                     "GROUP BY bidder) g) s WHERE rn <= 4",
}


def job_sql(pg, db: str, out: Path, parallelism: int) -> str:
    dsn = pg.dsn(db)
    parts = []
    for name, cols in (("auctions", "id int, seller int, category int, ts timestamp, "
                                    "tstz timestamptz"),
                       ("bids", "id int, auction int, bidder int, price numeric(10,2), "
                                "ts timestamp, tstz timestamptz")):
        slot = f"{db}_{name}"
        parts.append(f"CREATE TABLE {name} ({cols}, PRIMARY KEY (id)) WITH (connector = "
                     f"'postgres-cdc', dsn = '{dsn}', table = 'public.{name}', slot = '{slot}', "
                     f"publication = '{slot}', snapshot = 'initial_only');")
    for sink, query in QUERIES.items():
        parts.append(f"CREATE TABLE {sink} () WITH (connector = 'file', path = '{out / sink}');")
        parts.append(f"INSERT INTO {sink} {query};")
    parts.append(f"SET parallelism = {parallelism};")
    # With checkpoints: the job commits its output through the final checkpoint a bounded job
    # takes at the end of its input (runtime/pipeline.c invariant 8).  (A snapshot-only
    # PostgreSQL source first waits in its own run for a checkpoint to acknowledge its snapshot,
    # which comes after checkpoint_interval: keep it short.)
    parts.append("SET checkpoint_interval = '1s';")
    parts.append("SET admin_address = '127.0.0.1:0';")
    return "\n".join(parts) + "\n"


@pytest.mark.deadline(240)
@pytest.mark.parametrize("parallelism", [1, 2])
def test_bounded_interval_joins_and_topn(parallelism, sql_pg, sql_db, sql_bin, tmp_path):
    sql_pg.psql(setup_sql(20261207 + parallelism), db=sql_db)
    out = tmp_path / "out"
    text = job_sql(sql_pg, sql_db, out, parallelism)
    (tmp_path / "job.sql").write_text(text)

    # The plan: interval joins (not regular joins) and append-only Top-N.
    res = run_cli(["explain", tmp_path / "job.sql"], bin=sql_bin)
    assert res.returncode == 0, res.stdout + res.stderr
    plan = res.stdout
    assert plan.count("] interval_join ") == 5, plan
    assert "an interval join), but an input is not append-only" not in plan
    assert "at most 3 rows per partition (the input is insert-only)" in plan
    assert "upsert:" not in plan  # a snapshot-only source needs no changelog normalization

    tm = Tidemark(text, tmp_path / "tm", bin=sql_bin)
    tm.start()
    try:
        rc = tm.wait_exit(timeout=180)
    finally:
        tm.kill9()
    assert rc == 0, f"the bounded job exited with {rc}\n{tm.log_tail()}"

    problems = []
    for sink, query in QUERIES.items():
        oracle = pg_answer(sql_pg, sql_db, query)
        assert sum(oracle.rows.values()) > 0, f"{sink}: PostgreSQL returns no rows"
        kinds = [PG_TYPES[o][0] for o in oracle.oids]
        folded = fold(output_lines(out / sink), kinds)
        issues = (folded.errors + type_mismatches(oracle, folded.field_schemas, folded.names)
                  + describe_difference(oracle.rows, folded.rows, oracle.names, kinds=kinds))
        if issues:
            problems.append(f"{sink}: {query}\n  " + "\n  ".join(issues))
    assert not problems, "\n".join(problems) + f"\n--- job ---\n{text}\n{tm.log_tail()}"
