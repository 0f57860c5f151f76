"""A crash right after the checkpoint that commits the initial snapshot.

The first checkpoint after a snapshot commits its rows to the sink.  The
PostgreSQL source writes snapshot.done only when it sees that checkpoint's
acknowledgement, a moment later, on its own thread.  A crash in between (here
at the failpoint `checkpoint.after_metadata`, the first hit) leaves a
completed checkpoint that holds the whole snapshot, and no snapshot.done.
The restart must recover that checkpoint and stream on; it must not drop the
slot and read the tables again, which would write every row a second time
and never delete the rows deleted in between (the crash harness found this:
seed 3, `python3 tests/crash/harness.py --kills 6 --seed 3`).
"""

import time
from collections import Counter

import pytest

from harness import compiled_failpoints
from tidemark import Tidemark, create_table, payload, read_jsonl

TABLE = "CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL);"


def job(pg, db, out):
    src = {"connector": "postgres-cdc", "dsn": pg.dsn(db), "tables": "public.t",
           "slot": f"{db}_slot", "publication": f"{db}_pub", "snapshot": "initial"}
    return "\n".join([create_table("src", src), create_table("out", {
        "connector": "file", "path": str(out), "schemas": False}),
        "INSERT INTO out SELECT * FROM src;", "SET checkpoint_interval = '300ms';",
        "SET admin_address = '127.0.0.1:0';", ""])


@pytest.mark.deadline(120)
def test_crash_after_the_snapshots_checkpoint_does_not_read_it_again(crash_pg, crash_bin,
                                                                       tmp_path):
    if "checkpoint.after_metadata" not in compiled_failpoints(crash_bin):
        pytest.skip("the binary has no checkpoint.after_metadata failpoint")
    db = "snapcrash"
    crash_pg.psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE); CREATE DATABASE "{db}";')
    crash_pg.psql(TABLE + "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 50) g;",
                  db=db)
    out = tmp_path / "out"
    tm = Tidemark(job(crash_pg, db, out), tmp_path / "tm", bin=crash_bin)
    try:
        offset = tm.start_with("checkpoint.after_metadata=kill@1", seed=1)
        rc = tm.wait_exit(60)
        assert rc == -9 and "failpoint fired" in tm.section(offset), tm.log_tail()
        # Changed while the daemon is down: the restart must stream these.
        crash_pg.psql("DELETE FROM t WHERE id <= 5; UPDATE t SET v = 'changed' WHERE id = 6;",
                      db=db)
        tm.start_with()
        topic = out / "src.public.t.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            recs = read_jsonl(topic) if topic.exists() else []
            # Row 6 as changed, whether streamed (right) or read again (wrong).
            if any((payload(r)["after"] or {}).get("v") == "changed" for r in recs):
                break
            tm.assert_running("while waiting for the change of row 6")
            time.sleep(0.1)
        assert tm.terminate() == 0, tm.log_tail()
    finally:
        tm.kill9()
    records = [payload(r) for r in read_jsonl(topic)]
    reads = Counter(p["after"]["id"] for p in records if p["op"] == "r")
    twice = sorted(i for i, n in reads.items() if n > 1)
    assert not twice, (f"rows read by the snapshot twice (the snapshot was taken again after a "
                       f"checkpoint had committed it): {twice[:10]}...\n{tm.log_tail(1500)}")
    assert sorted(reads) == list(range(1, 51)), sorted(reads)
    assert [(p["op"], (p["after"] or p["before"])["id"]) for p in records if p["op"] != "r"] == \
        [("d", 1), ("d", 2), ("d", 3), ("d", 4), ("d", 5), ("u", 6)]
