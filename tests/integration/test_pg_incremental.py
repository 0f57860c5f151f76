"""Incremental snapshots (DBLog) of the PostgreSQL source, and tables added to a running job.

An incremental snapshot re-reads a table in primary-key chunks while streaming goes on: each
chunk is read between two watermarks written with pg_logical_emit_message, and the rows the log
changes between them are dropped from the chunk.  The tests check the guarantee through the
upsert view of the output (each record folded by key in the order the sink got them: c/u/r set
the row, d removes it), which must equal the table, with every row read once at most.
"""

import json
import random
import threading
import time
import urllib.error
import urllib.request

import pytest

from tidemark import create_table, read_jsonl, run_cli, wait_until

ROWS = 6000


def post(tm, path, body=None, timeout=30):
    """(status, parsed body) of POST `path` on the daemon's admin API."""
    addr = tm.state_dir / "admin.addr"
    wait_until(addr.exists, 30, "admin.addr", tm)
    url = "http://" + addr.read_text().strip() + path
    data = json.dumps(body if body is not None else {}).encode()
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read().decode() or "{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode() or "{}")


def snapshots(tm):
    """GET /v1/snapshots; None while the daemon's address is not known yet (a restart)."""
    try:
        return json.loads(tm.admin_get("/v1/snapshots"))["snapshots"]
    except (urllib.error.URLError, ConnectionError):
        return None


def snapshot_state(tm, sid):
    for s in snapshots(tm) or []:
        if s["id"] == sid:
            return s
    return None


def wait_snapshot(tm, sid, state="done", timeout=120):
    def reached():
        s = snapshot_state(tm, sid)
        if s is not None and s["state"] in ("failed", "cancelled", "done") and s["state"] != state:
            raise AssertionError(f"snapshot {sid} ended {s['state']}: {s}")
        return s if s is not None and s["state"] == state else None
    return wait_until(reached, timeout, f"incremental snapshot {sid} to be {state}", tm)


def job_text(cdc, tables="public.orders", chunk=500, extra=None, interval="300ms"):
    opts = {"connector": "postgres-cdc", "dsn": cdc.dsn(), "tables": tables, "slot": cdc.slot,
            "publication": cdc.publication, "snapshot": "never", "snapshot_chunk_size": chunk,
            "heartbeat_interval": "200ms"}
    opts.update(extra or {})
    return "\n".join([
        create_table("shop", opts),
        create_table("out", {"connector": "file", "path": str(cdc.out_dir),
                             "format": "debezium-json"}),
        "INSERT INTO out SELECT * FROM shop;",
        f"SET checkpoint_interval = '{interval}';",
        "SET admin_address = '127.0.0.1:0';", ""])


def fold(records):
    """The upsert view of a topic: {id: after} in the order the records came; and the ids read."""
    view, reads = {}, []
    for rec in records:
        if rec is None:
            continue  # tombstone
        p = rec["payload"] if "payload" in rec else rec
        op = p["op"]
        if op in ("c", "u", "r"):
            view[p["after"]["id"]] = p["after"]
            if op == "r":
                reads.append((p["after"]["id"], p["source"]["snapshot"]))
        elif op == "d":
            view.pop(p["before"]["id"], None)
    return view, reads


def table_rows(cdc, table="orders"):
    conn = cdc.connect()
    cur = conn.cursor()
    cur.execute(f"SELECT id, v FROM {table} ORDER BY id")
    rows = {r[0]: r[1] for r in cur.fetchall()}
    conn.close()
    return rows


def wait_equal(cdc, tm, table="orders", timeout=90):
    path = cdc.topic_path(table)

    def same():
        want = table_rows(cdc, table)
        view, _ = fold(read_jsonl(path)) if path.exists() else ({}, [])
        got = {k: v["v"] for k, v in view.items()}
        return got == want or None
    try:
        wait_until(same, timeout, f"the output of {table} to equal the table", tm)
    except AssertionError:
        want = table_rows(cdc, table)
        view, _ = fold(read_jsonl(path))
        got = {k: v["v"] for k, v in view.items()}
        missing = sorted(set(want) - set(got))[:10]
        extra = sorted(set(got) - set(want))[:10]
        wrong = sorted(k for k in want if k in got and got[k] != want[k])[:10]
        raise AssertionError(f"missing {missing} extra {extra} wrong {wrong} "
                             f"(want {len(want)} rows, got {len(got)})\n{tm.log_tail()}")


class Writer(threading.Thread):
    """Random inserts, updates and deletes on `orders`, one small transaction at a time."""

    def __init__(self, cdc, seed, max_id=ROWS + 2000, table="orders"):
        super().__init__(daemon=True)
        self.cdc, self.rng, self.max_id, self.table = cdc, random.Random(seed), max_id, table
        self.stop_event = threading.Event()
        self.error = None
        self.n = 0

    def run(self):
        try:
            conn = self.cdc.connect()
            conn.autocommit = True
            cur = conn.cursor()
            while not self.stop_event.is_set():
                k = self.rng.randrange(1, self.max_id)
                r = self.rng.random()
                if r < 0.6:
                    cur.execute(f"UPDATE {self.table} SET v = v + 1 WHERE id = %s", (k,))
                elif r < 0.8:
                    cur.execute(f"DELETE FROM {self.table} WHERE id = %s", (k,))
                else:
                    cur.execute(f"INSERT INTO {self.table} VALUES (%s, 0) ON CONFLICT (id) DO "
                                f"UPDATE SET v = {self.table}.v + 100", (k,))
                self.n += 1
                time.sleep(0.001)
            conn.close()
        except Exception as e:  # noqa: BLE001 (reported in the test's thread)
            self.error = e

    def finish(self):
        self.stop_event.set()
        self.join(timeout=60)
        assert self.error is None, f"the writer failed: {self.error!r}"
        return self.n


def make_orders(cdc, rows=ROWS, table="orders"):
    cdc.sql(f"CREATE TABLE {table} (id int PRIMARY KEY, v int NOT NULL);"
            f"INSERT INTO {table} SELECT g, 0 FROM generate_series(1, {rows}) g; ANALYZE {table};")


def reads_of(cdc, table="orders", n=1, tm=None):
    """The `after` of every op-r record of `table`, once at least n are there."""
    path = cdc.topic_path(table)

    def enough():
        got = [r["payload"]["after"] for r in (read_jsonl(path) if path.exists() else [])
               if r is not None and r["payload"]["op"] == "r"]
        return got if len(got) >= n else None
    return wait_until(enough, 30, f"{n} snapshot reads of {table}", tm)


def assert_read_once(reads):
    ids = [i for i, _ in reads]
    assert len(ids) == len(set(ids)), "a row was read twice by the incremental snapshot"
    assert all(s == "incremental" for _, s in reads), set(s for _, s in reads)


def test_concurrent_changes_appear_once_with_their_final_value(cdc):
    make_orders(cdc)
    tm = cdc.tidemark(job_text(cdc))
    # Each chunk's window stays open 30 ms, so the writer's changes land inside windows.
    tm.start_with(failpoints="pg.snapshot.chunk=sleep(30)")
    cdc.wait_slot_ready(tm)
    writer = Writer(cdc, 1)
    writer.start()
    time.sleep(0.5)
    status, body = post(tm, "/v1/snapshots", {"tables": ["public.orders"]})
    assert status == 202, body
    done = wait_snapshot(tm, body["id"])
    n = writer.finish()
    assert n > 100, n
    assert done["chunks"] >= ROWS // 500 and done["percent"] == 100.0, done
    wait_equal(cdc, tm)
    _, reads = fold(read_jsonl(cdc.topic_path("orders")))
    assert_read_once(reads)
    # Rows the writer changed inside a chunk's window were dropped from the chunk.
    assert len(reads) < ROWS + 2000
    job = json.loads(tm.admin_get("/v1/job"))
    assert job["incremental_snapshots"][0]["state"] == "done", job["incremental_snapshots"]
    metrics = tm.admin_get("/metrics")
    assert 'tidemark_snapshot_rows{source="shop",table="public.orders"}' in metrics, metrics[:3000]
    assert tm.terminate() == 0, tm.log_tail()
    assert "incremental snapshot done" in tm.log_text()


def test_where_filter_and_validation(cdc):
    make_orders(cdc, 2000)
    tm = cdc.start(job_text(cdc))
    cdc.wait_slot_ready(tm)
    status, body = post(tm, "/v1/snapshots", {"tables": ["public.orders"],
                                               "where": "nope > 3"})
    assert status == 400 and "nope" in body["error"], body
    status, body = post(tm, "/v1/snapshots", {"tables": ["public.orders"],
                                               "where": "true); DROP TABLE orders; SELECT (1"})
    assert status == 400, body
    status, body = post(tm, "/v1/snapshots", {"tables": ["public.other"]})
    assert status == 404, body
    status, body = post(tm, "/v1/snapshots", {"tables": ["public.orders"], "where": "id % 10 = 0"})
    assert status == 202, body
    wait_snapshot(tm, body["id"])
    ids = sorted(a["id"] for a in reads_of(cdc, n=200, tm=tm))
    assert ids == list(range(10, 2001, 10))
    assert tm.terminate() == 0, tm.log_tail()


def test_cli_pause_resume_cancel(cdc):
    make_orders(cdc, 3000)
    job = job_text(cdc, chunk=100)
    tm = cdc.tidemark(job)
    tm.start_with(failpoints="pg.snapshot.chunk=sleep(100)")
    cdc.wait_slot_ready(tm)
    out = run_cli(["snapshot", "--table", "public.orders", "--state-dir", tm.state_dir],
                  bin=cdc.bin)
    assert out.returncode == 0, out.stderr
    sid = int(out.stdout.split()[2])
    wait_until(lambda: (snapshot_state(tm, sid) or {}).get("chunks", 0) >= 2, 60,
               "two chunks", tm)
    out = run_cli(["snapshot", "--pause", "--state-dir", tm.state_dir], bin=cdc.bin)
    assert out.returncode == 0, out.stderr
    wait_until(lambda: snapshot_state(tm, sid)["state"] == "paused", 30, "paused", tm)
    chunks = snapshot_state(tm, sid)["chunks"]
    time.sleep(1.5)
    assert snapshot_state(tm, sid)["chunks"] <= chunks + 1
    out = run_cli(["snapshot", "--status", "--state-dir", tm.state_dir], bin=cdc.bin)
    assert f"snapshot {sid} source=shop state=paused" in out.stdout, out.stdout
    assert run_cli(["snapshot", "--resume", "--state-dir", tm.state_dir],
                   bin=cdc.bin).returncode == 0
    wait_until(lambda: snapshot_state(tm, sid)["chunks"] >= chunks + 3, 60, "more chunks", tm)
    assert run_cli(["snapshot", "--cancel", "--state-dir", tm.state_dir],
                   bin=cdc.bin).returncode == 0
    wait_until(lambda: snapshot_state(tm, sid)["state"] == "cancelled", 30, "cancelled", tm)
    reads = [r for r in read_jsonl(cdc.topic_path("orders")) if r["payload"]["op"] == "r"]
    assert 0 < len(reads) < 3000
    # The CLI without a table is a usage error.
    assert run_cli(["snapshot", "--state-dir", tm.state_dir], bin=cdc.bin).returncode == 2
    assert tm.terminate() == 0, tm.log_tail()


def test_kill9_mid_snapshot_resumes_from_the_last_chunk(cdc):
    make_orders(cdc, 4000)
    tm = cdc.tidemark(job_text(cdc, chunk=200, interval="200ms"))
    tm.start_with(failpoints="pg.snapshot.chunk=sleep(150)")
    cdc.wait_slot_ready(tm)
    status, body = post(tm, "/v1/snapshots", {"tables": ["public.orders"]})
    assert status == 202, body
    sid = body["id"]
    wait_until(lambda: (snapshot_state(tm, sid) or {}).get("chunks", 0) >= 6, 60, "six chunks",
               tm)
    time.sleep(0.5)  # a checkpoint covers some chunks
    tm.kill9()
    offset = tm.start_with()
    wait_snapshot(tm, sid)
    text = tm.section(offset)
    assert "incremental snapshot resumed from the checkpoint" in text, text[-3000:]
    wait_equal(cdc, tm)
    records = read_jsonl(cdc.topic_path("orders"))
    ids = [r["payload"]["after"]["id"] for r in records if r["payload"]["op"] == "r"]
    # Every row is there; rows of the chunks after the last checkpoint may come twice, but the
    # resumed run did not start from the beginning.
    assert set(ids) == set(range(1, 4001))
    assert len(ids) < 4000 + 2000, len(ids)
    again = [i for i in ids[ids.index(1) + 1:] if i == 1]
    assert again == [], "the resumed snapshot read the table from its start again"
    assert tm.terminate() == 0, tm.log_tail()


def test_signal_table_starts_a_snapshot(cdc):
    make_orders(cdc, 1000)
    cdc.sql("CREATE TABLE debezium_signal (id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, "
            "data varchar(2048));")
    tm = cdc.start(job_text(cdc, extra={"signal_table": "public.debezium_signal"}))
    cdc.wait_slot_ready(tm)
    cdc.sql("INSERT INTO debezium_signal VALUES ('s1', 'execute-snapshot', "
            "'{\"data-collections\": [\"public.orders\"], \"type\": \"incremental\"}')")
    wait_until(lambda: any(s["state"] == "done" for s in snapshots(tm) or []), 60, "the snapshot",
               tm)
    wait_equal(cdc, tm)
    # The signal table is not captured: none of its rows is emitted.
    assert not cdc.topic_path("debezium_signal").exists()
    assert tm.terminate() == 0, tm.log_tail()


def test_table_added_by_alter_publication(cdc):
    make_orders(cdc, 500)
    make_orders(cdc, 700, table="items")
    cdc.sql(f"CREATE PUBLICATION {cdc.publication} FOR TABLE orders;"
            f"SELECT pg_create_logical_replication_slot('{cdc.slot}', 'pgoutput');")
    tm = cdc.start(job_text(cdc, tables="public.*", extra={"create": "false"}))
    cdc.wait_slot_ready(tm)
    cdc.sql("UPDATE orders SET v = 5 WHERE id = 1")
    wait_until(lambda: cdc.topic_path("orders").exists(), 30, "the orders topic", tm)
    writer = Writer(cdc, 7, max_id=900, table="items")
    writer.start()
    cdc.sql(f"ALTER PUBLICATION {cdc.publication} ADD TABLE items;")
    wait_until(lambda: any(s["state"] == "done" and s["added_tables"]
                           for s in snapshots(tm) or []),
               60, "the added table's snapshot", tm)
    writer.finish()
    wait_equal(cdc, tm, "items")
    # orders was not read again.
    assert [r for r in read_jsonl(cdc.topic_path("orders")) if r["payload"]["op"] == "r"] == []
    assert tm.terminate() == 0, tm.log_tail()
    assert "table joined the capture" in tm.log_text()


def test_tables_option_changed_between_runs(cdc):
    make_orders(cdc, 300)
    make_orders(cdc, 400, table="items")
    tm = cdc.start(job_text(cdc, tables="public.orders"))
    cdc.wait_slot_ready(tm)
    cdc.sql("UPDATE orders SET v = 1 WHERE id = 1; UPDATE items SET v = 1 WHERE id = 1")
    wait_until(lambda: cdc.topic_path("orders").exists(), 30, "the orders topic", tm)
    assert tm.terminate() == 0, tm.log_tail()
    assert not cdc.topic_path("items").exists()
    tm.job_path.write_text(job_text(cdc, tables="public.orders, public.items"))
    offset = tm.start_with()
    wait_until(lambda: any(s["state"] == "done" for s in snapshots(tm) or []), 60,
               "the snapshot", tm)
    cdc.sql("UPDATE items SET v = 7 WHERE id = 2")
    wait_equal(cdc, tm, "items")
    assert [r for r in read_jsonl(cdc.topic_path("orders")) if r["payload"]["op"] == "r"] == []
    assert tm.terminate() == 0, tm.log_tail()
    # A third run does not read items again; dropping orders from the option stops it.
    tm.job_path.write_text(job_text(cdc, tables="public.items"))
    offset = tm.start_with()
    wait_until(lambda: "streaming started" in tm.section(offset), 30, "streaming", tm)
    cdc.sql("UPDATE orders SET v = 9 WHERE id = 3; UPDATE items SET v = 9 WHERE id = 3")
    wait_equal(cdc, tm, "items")
    time.sleep(1)
    assert not any(r["payload"]["op"] == "u" and r["payload"]["after"]["id"] == 3
                   for r in read_jsonl(cdc.topic_path("orders")))
    assert "table left the capture" in tm.section(offset)
    assert snapshots(tm) == [], snapshots(tm)
    assert tm.terminate() == 0, tm.log_tail()


def test_schema_changes_give_events_before_and_after(cdc):
    cdc.sql("CREATE TABLE orders (id int PRIMARY KEY, v int NOT NULL, note text);"
            "INSERT INTO orders VALUES (1, 1, 'a');")
    tm = cdc.start(job_text(cdc))
    cdc.wait_slot_ready(tm)
    cdc.sql("INSERT INTO orders VALUES (2, 2, 'b');")
    cdc.sql("ALTER TABLE orders ADD COLUMN extra int NOT NULL DEFAULT 42;"
            "INSERT INTO orders VALUES (3, 3, 'c', 7); UPDATE orders SET v = 10 WHERE id = 1;")
    cdc.sql("ALTER TABLE orders DROP COLUMN note; INSERT INTO orders VALUES (4, 4, 8);")
    cdc.sql("ALTER TABLE orders ALTER COLUMN v TYPE bigint; "
            "INSERT INTO orders VALUES (5, 5000000000, 9);")
    path = cdc.topic_path("orders")
    wait_until(lambda: path.exists() and len(read_jsonl(path)) >= 5, 30, "five records", tm)
    recs = [r for r in read_jsonl(path) if r is not None]
    after = [r["payload"]["after"] for r in recs]
    assert after[0] == {"id": 2, "v": 2, "note": "b"}
    assert after[1] == {"id": 3, "v": 3, "note": "c", "extra": 7}
    assert after[2] == {"id": 1, "v": 10, "note": "a", "extra": 42}
    assert after[3] == {"id": 4, "v": 4, "extra": 8}
    assert after[4] == {"id": 5, "v": 5000000000, "extra": 9}
    fields = [[f["field"] for f in r["schema"]["fields"][1]["fields"]] for r in recs]
    types = {f["field"]: f["type"] for f in recs[4]["schema"]["fields"][1]["fields"]}
    assert fields[0] == ["id", "v", "note"] and fields[3] == ["id", "v", "extra"], fields
    assert types["v"] == "int64", types
    assert tm.log_text().count("schema changed") >= 3
    # An incremental snapshot after the changes reads the new shape.
    status, body = post(tm, "/v1/snapshots", {"tables": ["orders"]})
    assert status == 202, body
    wait_snapshot(tm, body["id"])
    reads = reads_of(cdc, n=5, tm=tm)
    assert sorted(reads, key=lambda a: a["id"]) == [
        {"id": 1, "v": 10, "extra": 42}, {"id": 2, "v": 2, "extra": 42},
        {"id": 3, "v": 3, "extra": 7}, {"id": 4, "v": 4, "extra": 8},
        {"id": 5, "v": 5000000000, "extra": 9}]
    assert tm.terminate() == 0, tm.log_tail()


@pytest.mark.parametrize("bad", [{"tables": []}, {"tables": "public.orders"},
                                 {"tables": ["x"], "where": 3}, {"what": 1}])
def test_bad_requests(cdc, bad):
    make_orders(cdc, 10)
    tm = cdc.start(job_text(cdc))
    cdc.wait_slot_ready(tm)
    status, body = post(tm, "/v1/snapshots", bad)
    assert status == 400, body
    assert tm.terminate() == 0, tm.log_tail()


def test_backfill_a_new_sink_with_an_incremental_snapshot(cdc):
    """docs/operations.md's recipe: savepoint, add a sink, restore, `tidemark snapshot`: the new
    sink gets the whole table while streaming goes on; the old sink's upsert operator drops the
    re-read rows as duplicates of its restored state."""
    cdc.sql("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL);"
            "INSERT INTO items SELECT g, 'item ' || g, g FROM generate_series(1, 200) g;")

    def job(sinks):
        parts = [create_table("shop", {"connector": "postgres-cdc", "dsn": cdc.dsn(),
                                       "table": "public.items", "slot": cdc.slot,
                                       "publication": cdc.publication, "snapshot": "initial",
                                       "snapshot_chunk_size": 50},
                              "id int PRIMARY KEY, name text, qty int")]
        for name in sinks:
            (cdc.dir / name).mkdir(exist_ok=True)
            parts.append(create_table(name, {"connector": "file", "path": str(cdc.dir / name),
                                             "schemas": False}))
            parts.append(f"INSERT INTO {name} SELECT * FROM shop;")
        parts += ["SET checkpoint_interval = '300ms';", "SET admin_address = '127.0.0.1:0';", ""]
        return "\n".join(parts)

    def topic(sink):
        return cdc.dir / sink / "shop.public.items.jsonl"

    def replayed(sink):
        want = {int(i): {"id": int(i), "name": n, "qty": int(q)} for i, n, q in
                (line.split("|") for line in cdc.sql("SELECT id, name, qty FROM items")
                 .splitlines())}

        def same():
            view = {}
            for r in read_jsonl(topic(sink)) if topic(sink).exists() else []:
                if r is None:
                    continue
                if r["op"] == "d":
                    view.pop(r["before"]["id"], None)
                else:
                    view[r["after"]["id"]] = r["after"]
            return view == want or None
        wait_until(same, 90, f"{sink} to equal the table", tm2)

    tm = cdc.start(job(("out",)))
    wait_until(lambda: topic("out").exists() and len(read_jsonl(topic("out"))) == 200, 60,
               "the initial snapshot", tm)
    res = run_cli(["stop", "--savepoint", "--dir", "sp", "--state-dir", str(tm.state_dir)],
                  bin=cdc.bin, timeout=120)
    assert res.returncode == 0, res.stderr
    sp = res.stdout.strip().splitlines()[-1]
    assert tm.wait_exit(60) == 0
    before = len(read_jsonl(topic("out")))

    cdc.sql("UPDATE items SET qty = 99 WHERE id = 50")
    tm2 = cdc.tidemark(job(("out", "backfill")), name="tm2")
    tm2.start(["--from-savepoint", sp, "--state-dir", str(tm.state_dir)])
    wait_until(lambda: (tm.state_dir / "admin.addr").exists(), 30, "the admin API", tm2)
    writer_sql = "UPDATE items SET qty = qty + 1000 WHERE id IN (10, 150)"
    res = run_cli(["snapshot", "--table", "public.items", "--wait", "--state-dir",
                   str(tm.state_dir)], bin=cdc.bin, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "state=done" in res.stdout, res.stdout
    cdc.sql(writer_sql)
    replayed("backfill")
    replayed("out")
    assert tm2.terminate() == 0, tm2.log_tail()
    new_out = [(r["op"], r["after"]["id"]) for r in read_jsonl(topic("out"))[before:]]
    assert new_out == [("u", 50), ("u", 10), ("u", 150)], new_out
    backfill = read_jsonl(topic("backfill"))
    # Row 50 came as the streamed update first; its re-read was a duplicate for the new sink too.
    reads = sorted(r["after"]["id"] for r in backfill if r["op"] == "r")
    assert reads == [i for i in range(1, 201) if i != 50], reads


def test_through_the_postgres_sink_the_target_equals_the_table(cdc):
    """The upsert path end to end: a keyed source fed to the PostgreSQL sink, an incremental
    snapshot under a concurrent writer; the target table ends equal to the source table."""
    make_orders(cdc, 4000)
    tdb = f"{cdc.db}_tgt"
    cdc.pg.psql(f'CREATE DATABASE "{tdb}"')
    try:
        job = "\n".join([
            create_table("shop", {"connector": "postgres-cdc", "dsn": cdc.dsn(),
                                  "table": "public.orders", "slot": cdc.slot,
                                  "publication": cdc.publication, "snapshot": "never",
                                  "snapshot_chunk_size": 300, "heartbeat_interval": "200ms"},
                         "id int PRIMARY KEY, v int"),
            create_table("view_out", {"connector": "postgres", "dsn": cdc.pg.dsn(tdb),
                                      "table": "public.view_out", "create_table": True,
                                      "delivery": "exactly-once"}, "id int PRIMARY KEY, v int"),
            "INSERT INTO view_out SELECT id, v FROM shop;",
            "SET checkpoint_interval = '300ms';", "SET admin_address = '127.0.0.1:0';", ""])
        tm = cdc.tidemark(job)
        tm.start_with(failpoints="pg.snapshot.chunk=sleep(20)")
        cdc.wait_slot_ready(tm)
        writer = Writer(cdc, 3, max_id=4500)
        writer.start()
        time.sleep(0.3)
        status, body = post(tm, "/v1/snapshots", {"tables": ["public.orders"]})
        assert status == 202, body
        wait_snapshot(tm, body["id"])
        writer.finish()

        def target():
            out = cdc.pg.psql("SELECT id, v FROM view_out ORDER BY id", db=tdb)
            return {int(i): int(v) for i, v in (line.split("|") for line in out.splitlines())}
        want = table_rows(cdc)
        try:
            wait_until(lambda: target() == want or None, 90, "the target to equal the table", tm)
        except AssertionError:
            got = target()
            diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))[:10]
            raise AssertionError(f"differ at {[(k, want.get(k), got.get(k)) for k in diff]}\n"
                                 f"{tm.log_tail(3000)}")
        assert tm.terminate() == 0, tm.log_tail()
    finally:
        for d in cdc.daemons:
            d.kill9()
        cdc.pg.drop_database(tdb)
