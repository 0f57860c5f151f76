"""Exactly-once into the file sink with checkpoints (DESIGN §6).

With `SET checkpoint_interval`, the file sink stages each epoch in
.pending/<topic>.<N>.part, and appends it to <topic>.jsonl only once
checkpoint N's _metadata is written; the PostgreSQL source acknowledges only
positions that a completed checkpoint covers.  So after any number of kill -9
the topic file holds every committed change exactly once, in commit order.
"""

import random
import re
import time
from collections import Counter

import pytest

from pgserver import lsn_to_int
from test_pg_recovery import EVENTS, insert_events
from tidemark import RowWriter, payload, read_jsonl, row_id, run_cli, wait_for_records, wait_until


def checkpointed_job(cdc, interval="300ms", commit="append"):
    job = cdc.job(tables="public.events", snapshot="never",
                  sink={"schemas": False, "commit": commit})
    return job + f"\nSET checkpoint_interval = '{interval}';\n"


def wait_for_ids_once(cdc, tm, wanted, timeout=180):
    wanted = set(wanted)
    path = cdc.topic_path("events")
    return wait_for_records(path, lambda recs: wanted <= {row_id(r) for r in recs}, timeout,
                            f"{len(wanted)} ids in {path.name}", tm)


def assert_exactly_once(records, expected):
    counts = Counter(row_id(r) for r in records)
    twice = sorted(i for i, n in counts.items() if n > 1)
    assert not twice, f"ids written more than once: {twice[:20]}"
    assert set(counts) == set(expected), (
        f"missing: {sorted(set(expected) - set(counts))[:20]}, "
        f"unexpected: {sorted(set(counts) - set(expected))[:20]}")
    lsns = [payload(r)["source"]["lsn"] for r in records]
    assert lsns == sorted(lsns), "events are not in commit order"


@pytest.mark.deadline(900)
def test_kill9_repeatedly_gives_each_change_exactly_once(cdc):
    cdc.sql(EVENTS)
    tm = cdc.start(checkpointed_job(cdc))
    cdc.wait_slot_ready(tm)
    rng = random.Random(20261122)
    writer = RowWriter(cdc, first_id=1, limit=100_000)
    writer.start()
    kills = 0
    try:
        for _ in range(6):
            time.sleep(rng.uniform(0.3, 2.0))
            tm.kill9()
            kills += 1
            time.sleep(rng.uniform(0.0, 0.5))
            tm.start()
    finally:
        end = writer.finish()
    insert_events(cdc, range(end, end + 20), "after the last restart")
    expected = range(1, end + 20)
    wait_for_ids_once(cdc, tm, expected)
    assert tm.terminate() == 0, tm.log_tail()
    assert kills == 6
    records = read_jsonl(cdc.topic_path("events"))
    assert_exactly_once(records, expected)
    assert {payload(r)["op"] for r in records} == {"c"}
    assert not list((cdc.out_dir / ".pending").glob("*.part")), "uncommitted parts left behind"


def test_graceful_stop_commits_a_final_checkpoint(cdc):
    cdc.sql(EVENTS)
    # A long interval: only the final checkpoint at SIGTERM can commit these rows.
    tm = cdc.start(checkpointed_job(cdc, interval="1h"))
    cdc.wait_slot_ready(tm)
    insert_events(cdc, range(1, 11), "first run")
    assert tm.terminate() == 0, tm.log_tail()
    # Whatever the source had read when SIGTERM came is committed by the final
    # checkpoint; what it had not read yet comes after the restart.
    assert "msg=\"completed\" checkpoint=1" in tm.log_text(), tm.log_tail()
    checkpoints = sorted(p.name for p in (tm.dir / "state" / "checkpoints").iterdir())
    assert checkpoints == ["chk-1"], checkpoints
    shown = run_cli(["inspect", tm.dir / "state"], bin=cdc.bin)
    assert shown.returncode == 0, shown.stderr
    assert "checkpoint 1" in shown.stdout, shown.stdout
    match = re.search(r"^\s+shop\s+position ([0-9A-F]+/[0-9A-F]+) ", shown.stdout, re.M)
    assert match, shown.stdout
    # The slot was acknowledged at least up to the position the checkpoint
    # recorded (past it only over WAL that held nothing for this slot).
    assert lsn_to_int(cdc.slot_row()[1]) >= lsn_to_int(match.group(1)), shown.stdout
    first = read_jsonl(cdc.topic_path("events")) if cdc.topic_path("events").exists() else []
    assert len({row_id(r) for r in first}) == len(first) <= 10

    # The slot was acknowledged up to the final checkpoint: nothing comes back.
    tm = cdc.tidemark(checkpointed_job(cdc)).start()
    insert_events(cdc, range(11, 16), "second run")
    wait_for_ids_once(cdc, tm, range(1, 16), timeout=120)
    assert tm.terminate() == 0, tm.log_tail()
    assert_exactly_once(read_jsonl(cdc.topic_path("events")), range(1, 16))


def test_nothing_is_visible_before_its_checkpoint_completes(cdc):
    cdc.sql(EVENTS)
    tm = cdc.start(checkpointed_job(cdc, interval="1h"))
    cdc.wait_slot_ready(tm)
    insert_events(cdc, range(1, 6), "pending")
    part_glob = lambda: list((cdc.out_dir / ".pending").glob("*.part"))  # noqa: E731
    # Nothing flushes a part before a barrier, so wait on the process being up
    # and the rows having been read: the slot is active and the topic file
    # must still be absent.
    time.sleep(2)
    tm.assert_running("while the epoch is open")
    assert not cdc.topic_path("events").exists(), "output became visible before a checkpoint"
    tm.kill9()
    tm = cdc.tidemark(checkpointed_job(cdc)).start()
    insert_events(cdc, range(6, 8), "after the crash")
    wait_for_ids_once(cdc, tm, range(1, 8), timeout=120)
    assert tm.terminate() == 0, tm.log_tail()
    assert_exactly_once(read_jsonl(cdc.topic_path("events")), range(1, 8))
    assert not part_glob()


@pytest.mark.deadline(600)
def test_rename_commit_survives_kills_and_writes_parts(cdc):
    """commit = 'rename': each epoch becomes <topic>/part-<N>.jsonl, exactly once."""
    cdc.sql(EVENTS)
    tm = cdc.start(checkpointed_job(cdc, commit="rename"))
    cdc.wait_slot_ready(tm)
    rng = random.Random(7)
    writer = RowWriter(cdc, first_id=1, limit=50_000)
    writer.start()
    try:
        for _ in range(3):
            time.sleep(rng.uniform(0.3, 1.5))
            tm.kill9()
            tm.start()
    finally:
        end = writer.finish()
    insert_events(cdc, range(end, end + 10), "after the last restart")
    expected = range(1, end + 10)
    wait_for_ids_once(cdc, tm, expected)
    assert tm.terminate() == 0, tm.log_tail()
    topic_dir = cdc.topic_path("events").with_suffix("")
    parts = sorted(topic_dir.glob("part-*.jsonl"))
    assert parts and not cdc.topic_path("events").exists()
    assert all(re.fullmatch(r"part-\d{20}\.jsonl", p.name) for p in parts), parts
    assert_exactly_once(read_jsonl(cdc.topic_path("events")), expected)
    assert not list((cdc.out_dir / ".pending").glob("*.part"))
