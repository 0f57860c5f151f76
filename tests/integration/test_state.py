"""Keyed state in jobs: the upsert operator, workers, savepoints and restore.

A pipeline whose source declares a PRIMARY KEY runs through the upsert
operator (docs/sql.md), with its state in RocksDB over `parallelism`
workers, checkpointed at barriers and written to portable savepoints
through the admin API (docs/operations.md).
"""

import json
import re
from pathlib import Path

import pytest

from tidemark import (create_table, payload, read_jsonl, row_id, run_cli, wait_for_records,
                      wait_until)

ITEMS = """
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL);
INSERT INTO items SELECT g, 'item ' || g, g FROM generate_series(1, 200) g;
"""


def items_job(cdc, parallelism=2, sinks=("out",), snapshot="initial", interval="300ms",
              extra_source=None):
    """PostgreSQL items (declared key) → one file sink per name in `sinks`."""
    src = {"connector": "postgres-cdc", "dsn": cdc.dsn(), "table": "public.items",
           "slot": cdc.slot, "publication": cdc.publication, "snapshot": snapshot}
    src.update(extra_source or {})
    parts = [create_table("shop", src, "id int PRIMARY KEY, name text, qty int")]
    for name in sinks:
        out = cdc.dir / name
        out.mkdir(exist_ok=True)
        parts.append(create_table(name, {"connector": "file", "path": str(out),
                                         "schemas": False}))
        parts.append(f"INSERT INTO {name} SELECT * FROM shop;")
    parts.append(f"SET checkpoint_interval = '{interval}';")
    parts.append(f"SET parallelism = {parallelism};")
    parts.append("SET admin_address = '127.0.0.1:0';")
    return "\n".join(parts) + "\n"


def topic(cdc, sink="out") -> Path:
    return cdc.dir / sink / "shop.public.items.jsonl"


def replay(records):
    """The table a consumer builds by applying the change events in order."""
    table = {}
    for rec in records:
        p = payload(rec)
        if p["op"] == "d":
            table.pop(p["before"]["id"], None)
        else:
            table[p["after"]["id"]] = p["after"]
    return table


def db_rows(cdc):
    out = cdc.sql("SELECT id, name, qty FROM items ORDER BY id")
    rows = {}
    for line in out.splitlines():
        i, name, qty = line.split("|")
        rows[int(i)] = {"id": int(i), "name": name, "qty": int(qty)}
    return rows


def wait_replayed(cdc, tm, sink="out", timeout=120):
    want = db_rows(cdc)
    return wait_for_records(topic(cdc, sink), lambda recs: replay(recs) == want, timeout,
                            f"{sink} to replay to the table's {len(want)} rows", tm)


def state_dir(tm) -> Path:
    return tm.dir / "state"


def cli(tm, *args, timeout=120):
    return run_cli([*args, "--state-dir", str(state_dir(tm))], timeout=timeout)


def test_upsert_drops_duplicates_and_fills_before_images(cdc):
    cdc.sql(ITEMS)
    # REPLICA IDENTITY DEFAULT: PostgreSQL sends no before image; the operator has it.
    tm = cdc.start(items_job(cdc, parallelism=2))
    wait_for_records(topic(cdc), lambda r: len(r) == 200, 60, "the snapshot", tm)
    cdc.sql("UPDATE items SET qty = qty + 1000 WHERE id <= 5;"
            "UPDATE items SET name = name WHERE id BETWEEN 6 AND 10;"  # no change: dropped
            "DELETE FROM items WHERE id BETWEEN 11 AND 12;"
            "UPDATE items SET id = id + 1000 WHERE id = 13;")  # a primary-key change
    recs = wait_replayed(cdc, tm)
    assert tm.terminate() == 0, tm.log_tail()
    recs = read_jsonl(topic(cdc))
    changes = [payload(r) for r in recs[200:]]
    ops = sorted((p["op"], (p["after"] or p["before"])["id"]) for p in changes)
    assert ops == sorted([("u", i) for i in range(1, 6)] + [("d", 11), ("d", 12), ("d", 13),
                                                            ("c", 1013)]), ops
    for p in changes:
        if p["op"] == "u":
            assert p["before"] == {"id": p["after"]["id"], "name": f"item {p['after']['id']}",
                                   "qty": p["after"]["id"]}
        if p["op"] == "d":
            assert p["before"]["name"] == f"item {p['before']['id']}", p


def test_restart_after_kill_keeps_state(cdc):
    cdc.sql(ITEMS)
    tm = cdc.start(items_job(cdc, parallelism=2))
    wait_for_records(topic(cdc), lambda r: len(r) == 200, 60, "the snapshot", tm)
    # A checkpoint after the snapshot: its state holds all 200 rows.
    wait_until(lambda: len(re.findall(r'comp=checkpoint msg="completed"', tm.log_text())) >= 3,
               30, "completed checkpoints", tm)
    tm.kill9()
    cdc.sql("UPDATE items SET qty = -1 WHERE id = 7")
    tm.start()
    wait_replayed(cdc, tm)
    assert tm.terminate() == 0, tm.log_tail()
    recs = [payload(r) for r in read_jsonl(topic(cdc))]
    updates = [p for p in recs if p["op"] == "u"]
    # The state survived the kill: the update retracts the snapshot row, and nothing repeats.
    assert len(updates) == 1 and updates[0]["before"]["qty"] == 7, updates
    assert len(recs) == 201


def take_savepoint(tm, *extra):
    res = cli(tm, "savepoint", *extra)
    assert res.returncode == 0, res.stderr
    path = Path(res.stdout.strip().splitlines()[-1])
    assert (path / "_metadata").exists() and (path / "state.tmsp").exists(), path
    return path


def test_savepoint_restores_at_another_parallelism(cdc):
    cdc.sql(ITEMS)
    tm = cdc.start(items_job(cdc, parallelism=3))
    wait_for_records(topic(cdc), lambda r: len(r) == 200, 60, "the snapshot", tm)
    cdc.sql("UPDATE items SET qty = qty * 2 WHERE id % 3 = 0")
    wait_replayed(cdc, tm)
    res = cli(tm, "stop", "--savepoint", "--dir", "savepoints")
    assert res.returncode == 0, res.stderr
    sp = Path(res.stdout.strip().splitlines()[-1])
    assert tm.wait_exit(60) == 0, tm.log_tail()
    before = len(read_jsonl(topic(cdc)))

    info = run_cli(["inspect", str(sp)])
    assert info.returncode == 0, info.stderr
    assert "operator upsert/shop/out" in info.stdout
    assert "3 worker(s)" in info.stdout and "checksums verified" in info.stdout
    m = re.search(r"operator upsert/shop/out: \d+ key group\(s\), (\d+) records", info.stdout)
    assert m and int(m.group(1)) == 200, info.stdout

    # Changes while stopped, then a restore into one worker (and a fresh state directory).
    cdc.sql("UPDATE items SET qty = 0 WHERE id <= 3; DELETE FROM items WHERE id = 200")
    tm2 = cdc.tidemark(items_job(cdc, parallelism=1), name="tm2")
    tm2.start(["--from-savepoint", str(sp)])
    wait_replayed(cdc, tm2)
    assert tm2.terminate() == 0, tm2.log_tail()
    assert "restored keyed state" in tm2.log_text() and "workers=1" in tm2.log_text()
    recs = [payload(r) for r in read_jsonl(topic(cdc))]
    new = recs[before:]
    # Exactly the four changes, each retracting the row the savepoint's state held.
    assert sorted((p["op"], (p["before"] or {}).get("id")) for p in new) == [
        ("d", 200), ("u", 1), ("u", 2), ("u", 3)], new
    for p in new:
        assert p["before"]["qty"] == (p["before"]["id"] * (2 if p["before"]["id"] % 3 == 0 else 1))


def test_dropped_operator_is_refused_unless_allowed(cdc):
    cdc.sql(ITEMS)
    tm = cdc.start(items_job(cdc, sinks=("out", "extra")))
    wait_for_records(topic(cdc, "extra"), lambda r: len(r) == 200, 60, "the snapshot", tm)
    sp = take_savepoint(tm, "--dir", "sp")
    assert tm.terminate() == 0, tm.log_tail()

    job = items_job(cdc, sinks=("out",))
    tm2 = cdc.tidemark(job, name="tm2")
    tm2.start(["--from-savepoint", str(sp)])
    assert tm2.wait_exit(60) == 2
    err = tm2.log_text()
    assert "upsert/shop/extra" in err and "--allow-non-restored-state" in err, err

    tm3 = cdc.tidemark(job, name="tm3")
    tm3.start(["--from-savepoint", str(sp), "--allow-non-restored-state"])
    cdc.sql("UPDATE items SET qty = 5 WHERE id = 1")
    wait_replayed(cdc, tm3)
    assert tm3.terminate() == 0, tm3.log_tail()
    assert "skipped_operators=1" in tm3.log_text()


def test_backfill_a_new_sink_from_a_savepoint(cdc):
    """docs/operations.md's recipe: savepoint, add a sink, restore with snapshot = 'always'."""
    cdc.sql(ITEMS)
    tm = cdc.start(items_job(cdc, sinks=("out",)))
    wait_for_records(topic(cdc), lambda r: len(r) == 200, 60, "the snapshot", tm)
    res = cli(tm, "stop", "--savepoint", "--dir", "sp")
    assert res.returncode == 0, res.stderr
    sp = res.stdout.strip().splitlines()[-1]
    assert tm.wait_exit(60) == 0
    before = len(read_jsonl(topic(cdc)))

    cdc.sql("UPDATE items SET qty = 99 WHERE id = 50")
    job = items_job(cdc, sinks=("out", "backfill"), extra_source={"snapshot": "always"})
    tm2 = cdc.tidemark(job, name="tm2")
    tm2.start(["--from-savepoint", sp, "--state-dir", str(tm.dir / "state")])
    wait_replayed(cdc, tm2, sink="backfill")
    wait_replayed(cdc, tm2, sink="out")
    assert tm2.terminate() == 0, tm2.log_tail()
    # The new sink got the whole table; the old one only the change (the re-read rows
    # were duplicates of its restored state).
    new_out = [payload(r) for r in read_jsonl(topic(cdc))[before:]]
    assert [(p["op"], p["after"]["id"]) for p in new_out] == [("u", 50)], new_out
    backfill = [payload(r) for r in read_jsonl(topic(cdc, "backfill"))]
    assert len(backfill) == 200 and {p["op"] for p in backfill} <= {"r", "u", "c"}


def test_admin_api_health_metrics_and_checkpoints(cdc):
    import urllib.request
    cdc.sql(ITEMS)
    tm = cdc.start(items_job(cdc))
    wait_for_records(topic(cdc), lambda r: len(r) == 200, 60, "the snapshot", tm)
    addr_file = state_dir(tm) / "admin.addr"
    wait_until(addr_file.exists, 30, "admin.addr", tm)
    base = "http://" + addr_file.read_text().strip()

    def get(path):
        with urllib.request.urlopen(base + path, timeout=10) as r:
            return r.status, r.read().decode()

    assert get("/healthz")[0] == 200
    wait_until(lambda: get("/v1/checkpoints")[1].find('"latest"') >= 0, 30, "a checkpoint", tm)
    status, _ = get("/readyz")
    assert status == 200
    _, text = get("/metrics")
    assert re.search(r'^tidemark_source_events_total\{source="shop"\} 200$', text, re.M), text
    assert re.search(r"^tidemark_checkpoints_completed_total [1-9]", text, re.M), text
    assert re.search(r"^tidemark_state_memory_limit_bytes 268435456$", text, re.M), text[-600:]
    job = json.loads(get("/v1/job")[1])
    assert job["operators"] == ["upsert/shop/out"] and job["parallelism"] == 2
    assert tm.terminate() == 0
    assert not addr_file.exists()


def test_savepoint_without_checkpoints_is_refused(cdc):
    cdc.sql(ITEMS)
    tm = cdc.start(items_job(cdc).replace("SET checkpoint_interval = '300ms';", ""))
    wait_for_records(topic(cdc), lambda r: len(r) == 200, 60, "the snapshot", tm)
    res = cli(tm, "savepoint")
    assert res.returncode != 0
    assert "checkpoint_interval" in res.stderr, res.stderr
    assert tm.terminate() == 0


def test_checkpoint_interval_flag_overrides_the_job(cdc):
    cdc.sql(ITEMS)
    tm = cdc.tidemark(items_job(cdc).replace("SET checkpoint_interval = '300ms';", ""))
    tm.start(["--checkpoint-interval", "200ms"])
    wait_for_records(topic(cdc), lambda r: len(r) == 200, 60, "the snapshot", tm)
    wait_until(lambda: list((state_dir(tm) / "checkpoints").glob("chk-*/_metadata")), 30,
               "a checkpoint taken because of --checkpoint-interval", tm)
    assert tm.terminate() == 0, tm.log_tail()
    bad = run_cli(["run", str(tm.job_path), "--checkpoint-interval", "soon"])
    assert bad.returncode == 2 and "--checkpoint-interval 'soon'" in bad.stderr


def test_restart_with_another_parallelism_rescales_the_checkpoint(cdc):
    cdc.sql(ITEMS)
    tm = cdc.start(items_job(cdc, parallelism=2))
    wait_for_records(topic(cdc), lambda r: len(r) == 200, 60, "the snapshot", tm)
    wait_until(lambda: len(re.findall(r'comp=checkpoint msg="completed"', tm.log_text())) >= 3,
               30, "completed checkpoints", tm)
    assert tm.terminate() == 0, tm.log_tail()
    tm.job_path.write_text(items_job(cdc, parallelism=3))
    cdc.sql("UPDATE items SET qty = qty + 1 WHERE id <= 20")
    tm.start()
    wait_replayed(cdc, tm)
    assert tm.terminate() == 0, tm.log_tail()
    assert "rescaling checkpoint state" in tm.log_text() and "from=2 to=3" in tm.log_text()
    recs = [payload(r) for r in read_jsonl(topic(cdc))]
    assert len(recs) == 220
    assert all(p["op"] == "u" and p["before"]["qty"] == p["after"]["qty"] - 1 for p in recs[200:])


def test_dead_letters_in_files_metrics_and_explain(cdc):
    """on_error = 'dead-letter': the rejected rows in <state-dir>/dead-letter, counted in /metrics."""
    import urllib.request
    cdc.sql(ITEMS)
    src = {"connector": "postgres-cdc", "dsn": cdc.dsn(), "table": "public.items",
           "slot": cdc.slot, "publication": cdc.publication, "snapshot": "initial"}
    (cdc.dir / "out").mkdir(exist_ok=True)
    job = "\n".join([
        create_table("shop", src, "id int PRIMARY KEY, name text, qty int"),
        create_table("out", {"connector": "file", "path": str(cdc.dir / "out"),
                             "schemas": False}),
        # qty = id: the rows 5 and (after the update) 7 divide by zero.
        "INSERT INTO out SELECT id, 100 / (qty - 5) AS q FROM shop;",
        "SET checkpoint_interval = '300ms';",
        "SET parallelism = 2;",
        "SET on_error = 'dead-letter';",
        "SET admin_address = '127.0.0.1:0';",
    ]) + "\n"
    tm = cdc.tidemark(job)
    explain = run_cli(["explain", str(tm.job_path)])
    assert explain.returncode == 0, explain.stderr
    assert "<state-dir>/dead-letter/" in explain.stdout
    assert "calc/out/1: dead-letter/calc_out_1-{0..1}.jsonl" in explain.stdout, explain.stdout
    tm.start()
    out = cdc.dir / "out"
    wait_until(lambda: len(read_jsonl(next(out.glob("*.jsonl")))) == 199
               if list(out.glob("*.jsonl")) else False, 60, "the 199 good rows", tm)
    cdc.sql("UPDATE items SET qty = 5 WHERE id = 7")
    dl = state_dir(tm) / "dead-letter"

    def lines():
        return [json.loads(line) for f in sorted(dl.glob("*.jsonl"))
                for line in f.read_text().splitlines()]

    # The files are written at checkpoint barriers.
    wait_until(lambda: dl.is_dir() and len(lines()) == 2, 60, "two dead letters", tm)
    addr = (state_dir(tm) / "admin.addr").read_text().strip()
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as r:
        metrics = r.read().decode()
    assert re.search(r'^tidemark_operator_dead_letters_total\{operator="calc/out/1"\} 2$',
                     metrics, re.M), metrics
    assert tm.terminate() == 0, tm.log_tail()
    got = sorted((d["op"], (d["after"] or {}).get("id"), d["reason"]) for d in lines())
    assert got == [("r", 5, "division by zero"), ("u", 7, "division by zero")], got
    upd = [d for d in lines() if d["op"] == "u"][0]
    assert upd["before"] == {"id": 7, "name": "item 7", "qty": 7}, upd
    assert upd["after"] == {"id": 7, "name": "item 7", "qty": 5}, upd
    assert upd["source"] == "public.items" and upd["job"] == "job", upd
