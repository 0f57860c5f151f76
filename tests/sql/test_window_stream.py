"""Streaming windowed queries with watermarks, out-of-order and late rows, against PostgreSQL
(issue 13).

A postgres-cdc source declares `watermark = 'ts - INTERVAL ''5 seconds'''`; rows are inserted in
a controlled order, one transaction at a time, of two kinds:

- an *advancing* transaction: rows sorted by time, all at or after the newest time so far, so none
  of them can be late whatever watermark the source emits while it reads them (a row's windows all
  end after its time, and the watermark stays 5 s behind the rows read);
- a *disorder* transaction: rows at or before the newest time, which do not move the watermark:
  some are within the delay (out of order but on time), some are behind it (late for some or all
  of their windows), some fall inside `allowed_lateness` (corrections).

After each advancing transaction the test waits until every window operator's watermark reached
the newest time minus 5 s, so the watermark each disorder row meets is known exactly.  A final row
a day later ends event time: every window of the rows before it fires.

The oracle is PostgreSQL: the rows go to a table `ev_o` with the watermark each met (`arr`), and
each query's answer is the windowed GROUP BY (tests/sql/sql_cases.py win_pg: TUMBLE by date_bin,
HOP and CUMULATE by generate_series, SESSION by gaps and islands) over the (row, window) pairs
that were not late: `window_end - 1µs + allowed_lateness > arr` (a SESSION row is late as a
whole).  The folded output of every query must equal it, the job's `late_data_sink` must hold
exactly the rows that PostgreSQL finds late for no window (by operator), and
`tidemark_late_rows_total` must equal the number of those rows.

Two jobs (allowed_lateness 0 and 10 s) with 5 and 4 windowed queries, at parallelism 1 and 2, and
the first job once more at parallelism 2 through kill -9 and recovery (the daemon is killed right
after an advancing transaction commits, before it is checkpointed, and restarted: the replay is
that transaction only, whose rows cannot be late).
"""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from sql_cases import win_pg
from sql_harness import PG_TYPES, describe_difference, fold, output_lines, pg_answer
from tidemark import Tidemark, create_table, wait_until

BASE = datetime(2026, 3, 1, 10, 0, 0)
DELAY = 5          # the source's watermark delay, seconds
FINAL_ID = 100000  # the row a day later that ends event time
WS = "window_start, window_end"
EPOCH_BASE = int((BASE - datetime(1970, 1, 1)).total_seconds())

# name -> (window function, sizes, select list, GROUP BY keys other than the window's)
QUERIES = {
    "tumble": ("TUMBLE", ["10 seconds"], "k, window_start, window_end, count(*) AS n, "
                                         "sum(v) AS total", ["k"]),
    "tumble_global": ("TUMBLE", ["7 seconds"], "window_start, window_end, count(*) AS n, "
                                               "max(v) AS top", []),
    "hop": ("HOP", ["5 seconds", "15 seconds"], "k, window_start, window_end, count(*) AS n, "
                                                "min(v) AS low", ["k"]),
    "cumulate": ("CUMULATE", ["5 seconds", "20 seconds"], "k, window_start, window_end, "
                                                          "count(*) AS n, sum(v) AS total", ["k"]),
    "session": ("SESSION", ["3 seconds"], "k, window_start, window_end, count(*) AS n, "
                                          "sum(v) AS total", ["k"]),
}
JOBS = {
    # allowed_lateness (s) -> the queries of that job
    0: ["tumble", "tumble_global", "hop", "cumulate", "session"],
    10: ["tumble", "hop", "cumulate", "session"],
}
SESSION_GAP = 3


def tvf(name: str) -> str:
    fn, sizes, _, _ = QUERIES[name]
    return f"{fn}(ev, ts, " + ", ".join(f"INTERVAL '{s}'" for s in sizes) + ")"


def query(name: str, from_item: str, where: str = "") -> str:
    _, _, select, keys = QUERIES[name]
    return (f"SELECT {select} FROM {from_item} {where} GROUP BY " +
            ", ".join(keys + ["window_start", "window_end"]))


def ts_text(sec: float) -> str:
    return (BASE + timedelta(seconds=sec)).strftime("%Y-%m-%d %H:%M:%S.%f")


def us(sec: int) -> int:
    """A time `sec` after BASE as Debezium's MicroTimestamp (µs since the epoch, no zone)."""
    return int((BASE + timedelta(seconds=sec) - datetime(1970, 1, 1)).total_seconds()) * 1_000_000


# -- the workload ---------------------------------------------------------------------------


def schedule(seed: int, lateness: int):
    """Transactions: (kind, [(id, k, v, seconds after BASE)]), advancing and disorder in turn.

    Disorder rows avoid, for SESSION, the times that would touch a session already fired and
    dropped (it cannot be merged with any more: the operator keeps no state of it, while gaps
    and islands over the rows would merge them): `wm - gap - lateness < t <= wm - lateness`.
    """
    r = random.Random(seed)
    txs = []
    nid = 1
    newest = 0
    for step in range(14):
        rows = []
        t = newest
        for _ in range(r.randint(2, 5)):
            t += r.choice([0, 1, 1, 2, 3])
            rows.append((nid, r.randint(1, 3), r.randint(-5, 50), t))
            nid += 1
        newest = max(newest, t)
        txs.append(("advance", rows))
        if step < 2:
            continue
        wm = newest - DELAY
        rows = []
        for _ in range(r.randint(1, 4)):
            for _attempt in range(50):
                back = r.choice([0, 1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 18, 22, 26])
                t = max(0, newest - back)
                if not (wm - SESSION_GAP - lateness < t <= wm - lateness):
                    break
            else:
                continue
            rows.append((nid, r.randint(1, 3), r.randint(-5, 50), t))
            nid += 1
        if rows:
            txs.append(("disorder", rows))
    return txs


def late_for_all(name: str, t: int, arr, lateness: int) -> bool:
    """Whether a row at t that met watermark `arr` (seconds, or None) is late for every window."""
    if arr is None:
        return False
    fn, sizes, _, _ = QUERIES[name]
    secs = [int(s.split()[0]) for s in sizes]
    # Windows are aligned to the epoch, not to BASE.
    t, arr = t + EPOCH_BASE, arr + EPOCH_BASE
    if fn == "TUMBLE":
        last_end = (t // secs[0]) * secs[0] + secs[0]
    elif fn == "HOP":
        last_end = (t // secs[0]) * secs[0] + secs[1]
    elif fn == "CUMULATE":
        last_end = (t // secs[1]) * secs[1] + secs[1]
    else:
        last_end = t + secs[0]
    # window_time + lateness <= watermark (whole seconds: end - 1µs + L <= arr <=> end + L <= arr)
    return last_end + lateness <= arr


# -- the job ------------------------------------------------------------------------------


def job_sql(pg, db: str, out: Path, lateness: int, parallelism: int) -> str:
    slot = f"{db}_ev"
    parts = [create_table("ev", {"connector": "postgres-cdc", "dsn": pg.dsn(db),
                                 "table": "public.ev", "slot": slot, "publication": slot,
                                 "watermark": f"ts - INTERVAL '{DELAY} seconds'"},
                          "id int, k int, v int, ts timestamp, PRIMARY KEY (id)")]
    for name in JOBS[lateness]:
        parts.append(create_table(name, {"connector": "file", "path": str(out / name),
                                         "format": "debezium-json"}))
        parts.append(f"INSERT INTO {name} {query(name, tvf(name))};")
    parts.append(create_table("late_rows", {"connector": "file", "path": str(out / "late_rows"),
                                            "format": "debezium-json"}))
    parts.append("SET late_data_sink = 'late_rows';")
    parts.append(f"SET allowed_lateness = '{lateness} seconds';")
    parts.append("SET checkpoint_interval = '500ms';")
    parts.append(f"SET parallelism = {parallelism};")
    parts.append("SET admin_address = '127.0.0.1:0';")
    return "\n".join(parts) + "\n"


def window_watermarks(tm: Tidemark):
    """The watermark (ms) of every window operator, or None for one without a watermark yet."""
    try:
        job = json.loads(tm.admin_get("/v1/job"))
    except OSError:
        return None  # restarting: admin.addr may still name the previous run's port
    return [o["watermark_ms"] for o in job["operator_watermarks"]
            if o["operator"].startswith("window/")]


def metric_values(tm: Tidemark, name: str) -> dict:
    out = {}
    for line in tm.admin_get("/metrics").splitlines():
        m = re.match(rf'{name}\{{operator="([^"]+)"\}} (\d+)', line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


def wait_watermark(tm: Tidemark, sec: int) -> None:
    # BASE is naive (a timestamp column): its epoch milliseconds, independent of the local zone.
    want = int((BASE + timedelta(seconds=sec) - datetime(1970, 1, 1)).total_seconds() * 1000)

    def reached():
        wms = window_watermarks(tm)
        return wms and all(w is not None and w >= want for w in wms)
    wait_until(reached, 60, f"the window operators' watermark to reach {ts_text(sec)}", tm)


def checkpoints_done(tm: Tidemark) -> int:
    try:
        text = tm.admin_get("/metrics")
    except OSError:
        return -1
    for line in text.splitlines():
        if line.startswith("tidemark_checkpoints_completed_total"):
            return int(line.split()[-1])
    return 0


def run_job(pg, db, bin, tmp: Path, lateness: int, parallelism: int, seed: int,
            kill: bool = False):
    pg.psql("CREATE TABLE ev (id int PRIMARY KEY, k int, v int, ts timestamp);"
            "ALTER TABLE ev REPLICA IDENTITY FULL;"
            "CREATE TABLE ev_o (id int PRIMARY KEY, k int, v int, ts timestamp, arr timestamp);",
            db=db)
    out = tmp / "out"
    text = job_sql(pg, db, out, lateness, parallelism)
    tm = Tidemark(text, tmp / "tm", bin=bin)
    tm.start()
    conn = pg.connect(db)
    conn.autocommit = False
    cur = conn.cursor()
    txs = schedule(seed, lateness)
    killed = False
    try:
        wait_until(lambda: pg.psql(f"SELECT count(*) FROM pg_replication_slots WHERE slot_name = "
                                   f"'{db}_ev' AND confirmed_flush_lsn IS NOT NULL",
                                   db=db).strip() == "1", 60, "the replication slot", tm)
        newest = None
        oracle_rows = []
        for i, (kind, rows) in enumerate(txs):
            arr = None if newest is None else newest - DELAY
            if kill and not killed and kind == "advance" and i > len(txs) // 2:
                # Everything before is checkpointed, so the replay is this transaction only.
                n = checkpoints_done(tm)
                wait_until(lambda: checkpoints_done(tm) >= n + 2, 60, "two checkpoints", tm)
            for (id_, k, v, t) in rows:
                cur.execute("INSERT INTO ev VALUES (%s, %s, %s, %s)", (id_, k, v, ts_text(t)))
                oracle_rows.append((id_, k, v, t, arr))
            conn.commit()
            if kill and not killed and kind == "advance" and i > len(txs) // 2:
                tm.kill9()
                killed = True
                tm.start()
            if kind == "advance":
                newest = max(t for (_, _, _, t) in rows) if newest is None else \
                    max([newest] + [t for (_, _, _, t) in rows])
                wait_watermark(tm, newest - DELAY)
        # The end of event time: every window of the rows above fires.
        cur.execute("INSERT INTO ev VALUES (%s, 1, 0, %s)", (FINAL_ID, ts_text(86400)))
        conn.commit()
        wait_watermark(tm, 86400 - DELAY)
        n = checkpoints_done(tm)
        wait_until(lambda: checkpoints_done(tm) >= n + 2, 60, "two checkpoints after the end", tm)
        late_metric = metric_values(tm, "tidemark_late_rows_total")
        assert tm.terminate() == 0, tm.log_tail()
    finally:
        tm.kill9()
        conn.close()

    # The oracle's table: every row with the watermark it met.
    pc = pg.connect(db)
    with pc.cursor() as c:
        for (id_, k, v, t, arr) in oracle_rows:
            c.execute("INSERT INTO ev_o VALUES (%s, %s, %s, %s, %s)",
                      (id_, k, v, ts_text(t), None if arr is None else ts_text(arr)))
    pc.close()

    problems = []
    late_lines = [rec for (_, _, rec) in output_lines(out / "late_rows")]
    late_got = Counter()
    for rec in late_lines:
        p = rec.get("payload", rec)
        after = p["after"]
        late_got[(after["operator"], after["ts"], after.get("k"), after["reason"])] += 1
    one = "INTERVAL '1 microsecond'"
    lat = f"INTERVAL '{lateness} seconds'"
    total_late = 0
    ops = Counter()
    for name in JOBS[lateness]:
        fn, sizes, _, keys = QUERIES[name]
        if fn == "SESSION":
            # A SESSION row is late as a whole: the sessions are those of the rows on time.
            pg.psql(f"CREATE TABLE ev_{name} AS SELECT * FROM ev_o WHERE arr IS NULL OR "
                    f"ts + INTERVAL '{sizes[0]}' - {one} + {lat} > arr", db=db)
            oq = query(name, win_pg(fn, f"ev_{name}", "ts", sizes, keys=keys))
        else:
            oq = query(name, win_pg(fn, "ev_o", "ts", sizes, keys=keys),
                       f"WHERE ev_o.window_end - {one} + {lat} > ev_o.arr OR ev_o.arr IS NULL")
        oracle = pg_answer(pg, db, oq)
        kinds = [PG_TYPES[o][0] for o in oracle.oids]
        folded = fold(output_lines(out / name), kinds)
        ops += folded.ops
        issues = folded.errors + describe_difference(oracle.rows, folded.rows, oracle.names,
                                                     kinds=kinds)
        if not oracle.rows:
            issues.append("PostgreSQL returns no rows")
        # Late rows: those late for every window, by the same rule.
        want_late = sorted((us(r[3]), r[1] if keys else None) for r in oracle_rows
                           if r[0] != FINAL_ID and late_for_all(name, r[3], r[4], lateness))
        total_late += len(want_late)
        got = sorted((ts, k) for (op, ts, k, reason), c in late_got.items()
                     for _ in range(c) if op.startswith(f"window/{name}/"))
        if got != want_late:
            issues.append(f"late_data_sink holds {len(got)} rows of this query, PostgreSQL "
                          f"finds {len(want_late)} late: {want_late}; got {got}")
        if not kill:
            m = sum(v for op, v in late_metric.items() if op.startswith(f"window/{name}/"))
            if m != len(want_late):
                issues.append(f"tidemark_late_rows_total says {m}, PostgreSQL finds "
                              f"{len(want_late)} late rows")
        if issues:
            problems.append(f"{name}: {oq}\n  " + "\n  ".join(issues))
    assert all(reason == "late" for (_, _, _, reason) in late_got), late_got
    assert sum(late_got.values()) == total_late, (late_got, total_late)
    assert total_late > 0, "the schedule produced no late rows"
    # With allowed_lateness, rows within it corrected fired windows (Debezium 'u' or 'd').
    assert (ops["u"] + ops["d"] > 0) == (lateness > 0), ops
    if kill:
        assert tm.starts == 2, "the daemon was not killed and restarted"
    assert not problems, "\n".join(problems) + f"\n--- job ---\n{text}\n{tm.log_tail()}"
    return total_late


@pytest.mark.deadline(300)
@pytest.mark.parametrize("parallelism", [1, 2])
@pytest.mark.parametrize("lateness", sorted(JOBS))
def test_window_stream_late_rows(lateness, parallelism, sql_pg, sql_db, sql_bin, tmp_path):
    run_job(sql_pg, sql_db, sql_bin, tmp_path, lateness, parallelism,
            seed=20261208 + lateness * 10 + parallelism)


@pytest.mark.deadline(300)
def test_window_stream_kill9(sql_pg, sql_db, sql_bin, tmp_path):
    run_job(sql_pg, sql_db, sql_bin, tmp_path, 0, 2, seed=4242, kill=True)
