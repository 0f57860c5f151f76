"""A bounded job ends with a final checkpoint (issue 13; runtime/pipeline.c invariant 8).

A datagen source with `number_of_rows` ends its input.  With checkpoints on, a two-phase-commit
sink (the file sink, the Kafka sink with delivery = 'exactly-once') only makes visible what a
completed checkpoint covers, so the rows after the last periodic checkpoint used to stay
uncommitted when the job ended.  Now the source waits, after its last row, for a checkpoint
triggered at once (not after checkpoint_interval) and ends only when it completed: every row is
committed, the job exits by itself, and restarting it from that checkpoint emits nothing twice
(the final barrier carries the position after the last row).

checkpoint_interval is an hour, so the final checkpoint is the only one: without it nothing at
all would be committed, and a final checkpoint that waited for the interval would time out.
"""

import json
import time
import uuid

import pytest

from tidemark import Tidemark, read_jsonl

ROWS = 3000


def datagen_table(rows=ROWS, rate=3000):
    return (f"CREATE TABLE g (id bigint, v int) WITH (connector = 'datagen', number_of_rows = "
            f"'{rows}', rows_per_second = '{rate}', \"fields.id.kind\" = 'sequence', "
            f"\"fields.v.min\" = '0', \"fields.v.max\" = '9');\n")


SETTINGS = ("SET checkpoint_interval = '1h';\n"
            "SET admin_address = '127.0.0.1:0';\n")


def committed_rows(path):
    out = []
    for f in sorted(path.rglob("*.jsonl")):
        out += [r["payload"]["after"] if "payload" in r else r["after"] for r in read_jsonl(f)]
    return out


@pytest.mark.deadline(180)
def test_bounded_job_commits_its_last_stretch_to_the_file_sink(tmp_path, tidemark_bin):
    out, agg = tmp_path / "out", tmp_path / "agg"
    job = (datagen_table() +
           f"CREATE TABLE out () WITH (connector = 'file', path = '{out}');\n"
           "INSERT INTO out SELECT id, v FROM g;\n"
           f"CREATE TABLE agg () WITH (connector = 'file', path = '{agg}');\n"
           "INSERT INTO agg SELECT v, count(*) AS n FROM g GROUP BY v;\n" + SETTINGS)
    tm = Tidemark(job, tmp_path / "tm", bin=tidemark_bin).start()
    started = time.monotonic()
    assert tm.wait_exit(timeout=60) == 0, tm.log_tail()
    assert time.monotonic() - started < 30, "the final checkpoint waited for the interval"
    assert "waiting for the final checkpoint" in tm.log_text(), tm.log_tail()
    rows = committed_rows(out)
    ids = sorted(r["id"] for r in rows)
    assert ids == list(range(1, ROWS + 1)) or ids == list(range(ROWS)), \
        f"{len(ids)} rows committed of {ROWS}; first {ids[:5]} last {ids[-5:]}"
    # The aggregate's last values (an upsert stream: the newest row per v) add up to every row.
    last = {}
    for r in committed_rows(agg):
        if r is not None:
            last[r["v"]] = r["n"]
    assert sum(last.values()) == ROWS, last

    # Restarted from the final checkpoint: the input is complete, nothing is read twice.
    tm.start()
    assert tm.wait_exit(timeout=60) == 0, tm.log_tail()
    assert "restoring from checkpoint" in tm.log_text()
    assert sorted(r["id"] for r in committed_rows(out)) == ids


@pytest.mark.deadline(300)
def test_bounded_job_commits_its_last_stretch_to_kafka_exactly_once(tmp_path, tidemark_bin,
                                                                    kafka):
    prefix = f"bfc-{uuid.uuid4().hex[:10]}"
    topic = f"{prefix}.out"
    job = (datagen_table() +
           f"CREATE TABLE out () WITH (connector = 'kafka', bootstrap_servers = "
           f"'{kafka.bootstrap}', topic = '{topic}', progress_topic = '{prefix}.progress', "
           f"transactional_id_prefix = '{prefix}', delivery = 'exactly-once', "
           f"schemas = 'false', \"kafka.transaction.timeout.ms\" = '300000');\n"
           "INSERT INTO out SELECT id, v FROM g;\n"
           # Below the transaction timeout (the sink checks), still far above the job's length.
           "SET checkpoint_interval = '4min';\n"
           "SET admin_address = '127.0.0.1:0';\n")
    tm = Tidemark(job, tmp_path / "tm", bin=tidemark_bin).start()
    assert tm.wait_exit(timeout=120) == 0, tm.log_tail()
    got = kafka.consume_all(topic, isolation="read_committed", timeout=30)
    ids = sorted(json.loads(m.value)["after"]["id"] for m in got if m.value)
    assert len(ids) == ROWS and len(set(ids)) == ROWS, \
        f"{len(ids)} committed records ({len(set(ids))} distinct) of {ROWS}\n{tm.log_tail()}"
