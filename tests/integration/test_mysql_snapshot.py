"""The mysql-cdc source's initial snapshot, GTID resume and purged binlogs (MariaDB 10.11).

Covers: a snapshot of every type of capture.py's table gives the same records
(values and schema) as the binlog gives for the same rows; a snapshot under
concurrent writes hands over to the stream at exactly its position (each
change once, the final state equal to the table); initial_only ends the job;
kill -9 in the middle of a snapshot, then a restart that reads the tables
again without duplicates downstream (checkpoints); a GTID resume that does
not need the file offset; a purged binlog's message, and when_needed's new
snapshot instead.
"""

import threading
import time

import pytest

from tidemark import Tidemark, read_jsonl, wait_for_lines, wait_until
from test_mysql_cdc import EXIT_TIMEOUT, PASSWORD, MyCase, _ids, capture, my  # noqa: F401


@pytest.fixture
def case(my, tmp_path, tidemark_bin, request):  # noqa: F811
    name = "".join(ch if ch.isalnum() else "_" for ch in request.node.name.replace("test_", ""))
    c = MyCase(my, tmp_path, tidemark_bin, "s_" + name[:50])
    yield c
    c.cleanup()


def payloads(path):
    return [r.get("payload", r) for r in read_jsonl(path) if r is not None and
            r.get("payload", r) is not None]


def _purge_up_to_now(my, needed):
    """Purges binlogs until `needed` is gone; returns the server's newest file."""
    def purged():
        my.sql("FLUSH BINARY LOGS")
        newest = my.query("SHOW MASTER STATUS")[0][0]
        my.sql(f"PURGE BINARY LOGS TO '{newest}'")
        return newest if all(r[0] != needed for r in my.query("SHOW BINARY LOGS")) else None
    return wait_until(purged, 30, f"{needed} to be purged")


def test_snapshot_of_every_type_equals_the_streamed_values(case):
    """The same rows read by the snapshot (op r) and from the binlog (op c): same JSON."""
    my = case.my
    ddl = capture.TYPES_DDL.replace("capture.", f"{case.db}.")
    my.sql("SET time_zone = '+00:00'; " + ddl)
    # capture.py's three rows, and a fourth of values whose text is not exact at 6 digits.
    insert = capture.STATEMENTS[0].replace("capture.", f"{case.db}.") + (
        f"; INSERT INTO {case.db}.types (id, c_float, c_double, c_dec18, c_ts6, c_time6, c_bit64,"
        " c_ubig) VALUES (4, 1.2345678, 0.1 + 0.2, -0.000000001, '2000-02-29 23:59:59.999999',"
        " '-838:59:58.999999', 18446744073709551615, 18446744073709551614)")
    my.sql("SET time_zone = '+00:00'; " + insert)
    opts = {"source": {"snapshot": "initial", "bigint_unsigned_handling": "precise"},
            "sink": {"decimal_handling": "string", "binary_handling_mode": "hex"}}
    tm = case.start(**opts)
    case.wait_started(tm)
    snap = wait_for_lines(case.topic("types"), 4, proc=tm)
    # The same rows again, through the binlog this time.
    my.sql(f"DELETE FROM {case.db}.types")
    my.sql("SET time_zone = '+00:00'; " + insert)

    def records():
        # Deletes may be followed by tombstones (null lines): count the events only.
        rs = [r for r in read_jsonl(case.topic("types"))
              if r is not None and r.get("payload") is not None]
        return rs if len(rs) >= 12 else None

    wait_until(records, 60, "12 events", proc=tm.proc)
    assert tm.terminate() == 0, tm.log_tail()
    recs = records()
    ops = [r["payload"]["op"] for r in recs]
    assert ops == ["r"] * 4 + ["d"] * 4 + ["c"] * 4, ops
    snap, streamed = recs[:4], recs[8:12]
    for s, c in zip(snap, streamed):
        assert s["payload"]["after"] == c["payload"]["after"], \
            {k: (v, c["payload"]["after"][k]) for k, v in s["payload"]["after"].items()
             if c["payload"]["after"][k] != v}
        sf = [f for f in s["schema"]["fields"] if f["field"] == "after"][0]
        cf = [f for f in c["schema"]["fields"] if f["field"] == "after"][0]
        assert sf["fields"] == cf["fields"]
    marks = [r["payload"]["source"]["snapshot"] for r in snap]
    assert marks == ["first", "true", "true", "last"], marks
    assert all(r["payload"]["source"]["snapshot"] == "false" for r in streamed)
    # The streamed deletes' before images are what the snapshot read.
    for s, d in zip(snap, recs[4:8]):
        assert d["payload"]["before"] == s["payload"]["after"]
    assert "snapshot read" in tm.log_text()


@pytest.mark.deadline(300)
def test_snapshot_under_concurrent_writes_each_change_once(case):
    """Writers run while the (slowed) snapshot reads: the file ends equal to the table."""
    my = case.my
    db = case.db
    my.sql(f"CREATE TABLE {db}.acc (id INT PRIMARY KEY, v INT NOT NULL)")
    my.sql(f"INSERT INTO {db}.acc SELECT seq, 0 FROM {db}.seq_1_to_3000")
    job = case.job(source={"snapshot": "initial", "snapshot_chunk_size": 200},
                   sink={"schemas": False}) + "SET admin_address = '127.0.0.1:0';\n"
    tm = Tidemark(job, case.dir / "tm", bin=case.bin)
    case.daemons.append(tm)
    tm.start_with(failpoints="mysql.snapshot.chunk=sleep(150)")
    stop = threading.Event()
    writes = [0]

    def writer():
        i = 0
        while not stop.is_set():
            i += 1
            # Updates all over the key range (before and after the snapshot's cursor),
            # inserts past the end, and deletes.
            k = (i * 7919) % 3000 + 1
            my.sql(f"UPDATE {db}.acc SET v = v + 1 WHERE id = {k};"
                   f"INSERT INTO {db}.acc VALUES ({3000 + i}, {i});"
                   f"DELETE FROM {db}.acc WHERE id = {(i * 104729) % 3000 + 1}")
            writes[0] = i
            time.sleep(0.01)

    t = threading.Thread(target=writer, daemon=True)
    wait_until(lambda: "snapshot of table started" in tm.log_text() or None, 30,
               "the snapshot to start", proc=tm.proc)
    t.start()

    def progress_metric():
        text = tm.admin_get("/metrics")
        return [ln for ln in text.splitlines()
                if ln.startswith("tidemark_snapshot_rows{") and f"{db}.acc" in ln] or None

    # The snapshot's progress is in the metrics while it runs.
    lines = wait_until(progress_metric, 60, "tidemark_snapshot_rows", proc=tm.proc)
    assert float(lines[0].split()[-1]) >= 200, lines
    wait_until(lambda: "snapshot read" in tm.log_text() or None, 120, "the snapshot to end",
               proc=tm.proc)
    time.sleep(1.0)
    stop.set()
    t.join(30)
    assert writes[0] > 20, "the writer should have run during the snapshot"
    table = {int(r[0]): int(r[1]) for r in my.query(f"SELECT id, v FROM {db}.acc")}

    def state():
        rows = {}
        for p in payloads(case.topic("acc")):
            if p["op"] == "d":
                rows.pop(p["before"]["id"], None)
            else:
                rows[p["after"]["id"]] = p["after"]["v"]
        return rows

    wait_until(lambda: state() == table or None, 90, "the output to equal the table",
               proc=tm.proc)
    assert tm.terminate() == 0, tm.log_tail()
    ps = payloads(case.topic("acc"))
    reads = [p["after"]["id"] for p in ps if p["op"] == "r"]
    assert len(reads) == len(set(reads)), "a row read twice by the snapshot"
    inserts = [p["after"]["id"] for p in ps if p["op"] == "c"]
    # Each insert once, and never both read by the snapshot and streamed as an insert.
    assert len(inserts) == len(set(inserts)) and not set(inserts) & set(reads)
    # Each change exactly once: every update and delete follows on from the row's previous
    # record (its before image is the value last emitted, the update adds one), so none is
    # missing or repeated, whether it happened before, during or after the snapshot's point.
    last = {}
    for p in ps:
        if p["op"] in ("r", "c"):
            assert p["after"]["id"] not in last, p
            last[p["after"]["id"]] = p["after"]["v"]
        elif p["op"] == "u":
            k = p["after"]["id"]
            assert p["before"]["v"] == last[k] and p["after"]["v"] == last[k] + 1, p
            last[k] = p["after"]["v"]
        else:
            assert p["before"]["v"] == last.pop(p["before"]["id"]), p
    assert last == table
    assert "snapshot progress" in tm.log_text()


def test_initial_only_ends_the_job(case):
    my = case.my
    db = case.db
    my.sql(f"CREATE TABLE {db}.a (id INT PRIMARY KEY, s VARCHAR(10));"
           f"CREATE TABLE {db}.nokey (x INT, y TEXT);"
           f"INSERT INTO {db}.a SELECT seq, CONCAT('v', seq) FROM {db}.seq_1_to_25;"
           f"INSERT INTO {db}.nokey VALUES (1, 'one'), (2, NULL);"
           # Composite keys of strings (quotes, backslashes, non-ASCII) and bytes, in chunks.
           f"CREATE TABLE {db}.ck (s VARCHAR(20), b VARBINARY(4), n INT, PRIMARY KEY (s, b, n));"
           f"INSERT INTO {db}.ck VALUES ('a', x'00', 1), ('a', x'00', 2), ('a', x'ff', 1), "
           f"('it''s', x'27', 1), ('b\\\\c', x'5c', 1), ('é', x'', 1), ('é', x'', 2), "
           f"('z', x'01', 9), ('z', x'01', 10), ('z', x'02', 0), ('zz', x'00', 0)")
    tm = case.start(source={"snapshot": "initial_only", "snapshot_chunk_size": 10})
    assert tm.wait_exit(EXIT_TIMEOUT) == 0, tm.log_tail()
    a = payloads(case.topic("a"))
    assert [p["after"]["id"] for p in a] == list(range(1, 26))
    assert all(p["op"] == "r" for p in a)
    n = payloads(case.topic("nokey"))
    assert sorted((p["after"]["x"], p["after"]["y"]) for p in n) == [(1, "one"), (2, None)]
    ck = payloads(case.topic("ck"))
    got = sorted((p["after"]["s"], p["after"]["b"], p["after"]["n"]) for p in ck)
    want = sorted((r[0], r[1], int(r[2])) for r in
                  my.query(f"SELECT s, TO_BASE64(b), n FROM {db}.ck"))
    assert len(ck) == 11 and got == want, (got, want)
    marks = [p["source"]["snapshot"] for p in a + ck + n]
    assert marks[0] == "first" and marks[-1] == "last"
    assert "snapshot complete; initial_only source finished" in tm.log_text()
    assert (tm.state_dir / "mysql-inv" / "snapshot.done").exists()
    # A second run has nothing to do.
    tm.start()
    assert tm.wait_exit(EXIT_TIMEOUT) == 0, tm.log_tail()
    assert "snapshot already done; nothing to do" in tm.log_text()
    assert len(payloads(case.topic("a"))) == 25


@pytest.mark.deadline(300)
def test_kill9_mid_snapshot_then_restart(case):
    """kill -9 while the snapshot is half read; with checkpoints the restart reads the tables
    again and every row reaches the file exactly once, then streaming goes on."""
    my = case.my
    db = case.db
    my.sql(f"CREATE TABLE {db}.big (id INT PRIMARY KEY, pad CHAR(20))")
    my.sql(f"INSERT INTO {db}.big SELECT seq, 'x' FROM {db}.seq_1_to_2000")
    job = case.job(source={"snapshot": "initial", "snapshot_chunk_size": 100},
                   sink={"schemas": False}) + "\nSET checkpoint_interval = '200ms';\n"
    tm = Tidemark(job, case.dir / "tm", bin=case.bin)
    case.daemons.append(tm)
    tm.start_with(failpoints="mysql.snapshot.chunk=sleep(300)")
    wait_until(lambda: tm.log_text().count("failpoint fired") >= 4 or None, 60,
               "a few chunks", proc=tm.proc)
    tm.kill9()
    tm.start()
    path = case.topic("big")
    wait_for_lines(path, 2000, timeout=120, proc=tm)
    my.sql(f"INSERT INTO {db}.big VALUES (2001, 'after')")
    wait_until(lambda: 2001 in _ids(path) or None, 60, "the streamed insert", proc=tm.proc)
    assert tm.terminate() == 0, tm.log_tail()
    ps = payloads(path)
    reads = [p["after"]["id"] for p in ps if p["op"] == "r"]
    assert sorted(reads) == list(range(1, 2001)), \
        f"{len(reads)} reads, {len(reads) - len(set(reads))} duplicates"
    assert [p["after"]["id"] for p in ps if p["op"] == "c"] == [2001]
    assert tm.log_text().count("snapshot started") >= 2


def test_gtid_resume_after_restart(case):
    """The position file's offset is made useless; the GTID set alone resumes exactly."""
    my = case.my
    db = case.db
    my.sql(f"CREATE TABLE {db}.g (id INT PRIMARY KEY)")
    tm = case.start()  # snapshot = 'never'
    case.wait_started(tm)
    my.sql("".join(f"INSERT INTO {db}.g VALUES ({i});" for i in range(1, 11)))
    wait_for_lines(case.topic("g"), 10, proc=tm)
    assert tm.terminate() == 0
    posfile = tm.state_dir / "mysql-inv" / "position"
    position = posfile.read_text().split()
    gtid = position[2][5:]
    assert gtid == my.query("SELECT @@gtid_binlog_pos")[0][0], position
    # Offset 4: by file it would read the whole file again (duplicates).
    posfile.write_text(f"{position[0]} pos=4 gtid={gtid}\n")
    my.sql("".join(f"INSERT INTO {db}.g VALUES ({i});" for i in range(11, 21)))
    tm.start()
    wait_for_lines(case.topic("g"), 20, proc=tm)
    my.sql(f"INSERT INTO {db}.g VALUES (21)")
    wait_until(lambda: 21 in _ids(case.topic("g")) or None, 30, "id 21", proc=tm.proc)
    assert tm.terminate() == 0, tm.log_tail()
    assert _ids(case.topic("g")) == list(range(1, 22))
    assert "by=gtid" in tm.log_text()
    # The position file holds the GTID set after the last transaction.
    assert posfile.read_text().split()[2][5:] == my.query("SELECT @@gtid_binlog_pos")[0][0]


def test_purged_binlog_error_names_the_range_and_the_recovery(case):
    my = case.my
    db = case.db
    my.sql(f"CREATE TABLE {db}.p (id INT PRIMARY KEY)")
    tm = case.start(name="purge")
    case.wait_started(tm)
    my.sql(f"INSERT INTO {db}.p VALUES (1)")
    wait_for_lines(case.topic("p"), 1, proc=tm)
    assert tm.terminate() == 0
    position = (tm.state_dir / "mysql-inv" / "position").read_text().split()
    needed, gtid = position[0][5:], position[2][5:]
    my.sql(f"INSERT INTO {db}.p VALUES (2)")  # a change that the purge takes away
    _purge_up_to_now(my, needed)
    oldest = my.query("SHOW BINARY LOGS")[0][0]
    tm.start()
    code = tm.wait_exit(EXIT_TIMEOUT)
    text = tm.log_text()
    assert code != 0, tm.log_tail()
    for w in (needed, gtid, f"oldest binlog is {oldest}", "starting after GTID 0-1-", "snapshot = 'when_needed'",
              "new job"):
        assert w in text, f"{w!r} missing:\n{tm.log_tail()}"


def test_purged_binlog_when_needed_snapshots_again(case):
    my = case.my
    db = case.db
    my.sql(f"CREATE TABLE {db}.w (id INT PRIMARY KEY, v INT)")
    my.sql(f"INSERT INTO {db}.w VALUES (1, 1)")
    tm = case.start(name="wn", source={"snapshot": "when_needed"})
    case.wait_started(tm)
    wait_for_lines(case.topic("w"), 1, proc=tm)
    assert payloads(case.topic("w"))[0]["op"] == "r"
    my.sql(f"INSERT INTO {db}.w VALUES (2, 2)")
    wait_for_lines(case.topic("w"), 2, proc=tm)
    assert tm.terminate() == 0
    needed = (tm.state_dir / "mysql-inv" / "position").read_text().split()[0][5:]
    my.sql(f"UPDATE {db}.w SET v = 20 WHERE id = 2; INSERT INTO {db}.w VALUES (3, 3)")
    _purge_up_to_now(my, needed)
    tm.start()
    wait_until(lambda: len(payloads(case.topic("w"))) >= 5 or None, 60, "a new snapshot",
               proc=tm.proc)
    my.sql(f"INSERT INTO {db}.w VALUES (4, 4)")
    wait_until(lambda: len(payloads(case.topic("w"))) >= 6 or None, 30, "streaming after it",
               proc=tm.proc)
    assert tm.terminate() == 0, tm.log_tail()
    ps = payloads(case.topic("w"))
    assert [(p["op"], p["after"]["id"], p["after"]["v"]) for p in ps[2:]] == \
        [("r", 1, 1), ("r", 2, 20), ("r", 3, 3), ("c", 4, 4)]
    assert "binlog needed to resume is gone; taking a new snapshot" in tm.log_text()


def test_empty_snapshot_then_restart_streams_without_a_new_snapshot(case):
    """A snapshot of no rows emits nothing; its position is the resume point at once."""
    my = case.my
    db = case.db
    my.sql(f"CREATE TABLE {db}.e (id INT PRIMARY KEY)")
    tm = case.start(source={"snapshot": "initial"})
    wait_until(lambda: "snapshot read" in tm.log_text() or None, 30, "the snapshot",
               proc=tm.proc)
    my.sql(f"INSERT INTO {db}.e VALUES (1)")
    wait_for_lines(case.topic("e"), 1, proc=tm)
    assert tm.terminate() == 0, tm.log_tail()
    my.sql(f"INSERT INTO {db}.e VALUES (2)")
    tm.start()
    wait_for_lines(case.topic("e"), 2, proc=tm)
    assert tm.terminate() == 0, tm.log_tail()
    assert [(p["op"], p["after"]["id"]) for p in payloads(case.topic("e"))] == [("c", 1), ("c", 2)]
    log = tm.log_text()
    assert log.count("snapshot started") == 1 and 'from="position file"' in log
