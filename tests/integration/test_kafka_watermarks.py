"""Per-partition watermarks of the Kafka source, against a real broker.

What they pin down (docs/connectors/kafka.md, Watermarks), reading the
values the daemon reports in /v1/job (watermark_ms) and /metrics
(tidemark_source_watermark_seconds):

  * the source's watermark is the minimum over its partitions of the newest
    event time (source.ts_ms, else the envelope's ts_ms) minus
    watermark_delay;
  * with idle_timeout, a partition without records for that long stops
    holding the watermark back, and the watermark moves on with the others;
    without it, the same partition holds it back for good;
  * a partition that never had a record holds the watermark back (none is
    emitted) until idle_timeout makes it idle;
  * watermark events pass the stateful workers and checkpoint barriers
    without losing records or stalling checkpoints.
"""

from __future__ import annotations

import itertools
import json
import re

import pytest

from test_kafka_source import KafkaCase
from tidemark import Tidemark, create_table, run_cli, wait_until

T0 = 1_700_000_000_000  # ms since the epoch
def event(i: int, ts_ms=None, source_ts_ms=None) -> bytes:
    """A Debezium create event; ts_ms None leaves the envelope's ts_ms out."""
    source = {"version": "2.7.0.Final", "connector": "postgresql", "name": "shop",
              "db": "shop", "schema": "public", "table": "orders"}
    if source_ts_ms is not None:
        source["ts_ms"] = source_ts_ms
    ev = {"before": None, "after": {"id": i, "status": "new"}, "op": "c", "source": source}
    if ts_ms is not None:
        ev["ts_ms"] = ts_ms
    return json.dumps(ev).encode()


class Case(KafkaCase):
    """test_kafka_source's KafkaCase, with jobs that expose the admin API."""

    def produce_to(self, topic: str, partition: int, values) -> None:
        self.produce(topic, [(b"k", v) for v in values], partition=partition)

    def start(self, name: str, topic: str, columns: str = "", settings: str = "",
              **opts) -> Tidemark:
        out = self.dir / name / "out"
        out.mkdir(parents=True)
        job = "\n".join([
            create_table("src", self.source(topic, **opts), columns),
            create_table("sink", {"connector": "file", "path": str(out), "schemas": False}),
            "INSERT INTO sink SELECT * FROM src;",
            "SET admin_address = '127.0.0.1:0';",
            settings,
        ]) + "\n"
        return self.tidemark(job, name).start()


@pytest.fixture
def wcase(kafka, tmp_path, tidemark_bin, request):
    case = Case(kafka, tmp_path, tidemark_bin)
    yield case
    rep = getattr(request.node, "rep_call", None)
    case.cleanup(rep is None or rep.failed)


def admin_get(tm, path: str) -> str:
    return tm.admin_get(path)


def source_status(tm) -> dict:
    job = json.loads(admin_get(tm, "/v1/job"))
    (src,) = job["sources"]
    assert src["name"] == "src" and "watermark_ms" in src, job
    return src


def metric_watermark_ms(tm):
    """The gauge in milliseconds, or None while the source has emitted none."""
    text = admin_get(tm, "/metrics")
    assert "# TYPE tidemark_source_watermark_seconds gauge" in text, text
    m = re.search(r'^tidemark_source_watermark_seconds\{source="src"\} (\S+)$', text, re.M)
    return None if m is None else round(float(m.group(1)) * 1000)


def wait_watermark(tm, want_ms: int, what: str, keep_alive=None) -> None:
    """Waits for watermark_ms == want_ms; keep_alive() runs on every poll."""
    seen = []

    def reached():
        if keep_alive is not None:
            keep_alive()
        seen[:] = [source_status(tm)["watermark_ms"]]
        return seen[0] == want_ms

    wait_until(reached, 60, f"{what}: watermark_ms {want_ms} (have {seen})", tm)
    assert metric_watermark_ms(tm) == want_ms


def wait_events(tm, n: int) -> dict:
    seen = []

    def enough():
        seen[:] = [source_status(tm)]
        return seen[0]["events"] >= n

    wait_until(enough, 60, f"{n} events read (have {seen})", tm)
    return seen[0]


def test_min_over_partitions_and_idle_timeout(wcase):
    topic = wcase.topic("wm", partitions=2)
    ids = itertools.count(1)
    sent = [0]

    def produce(partition, *ts_ms):
        wcase.produce_to(topic, partition, [event(next(ids), ts) for ts in ts_ms])
        sent[0] += len(ts_ms)

    # Partition 1 is behind partition 0; the watermark is its newest ts_ms minus the delay.
    produce(0, T0 + 8_000, T0 + 10_000)
    produce(1, T0 + 5_000, T0 + 3_000)
    idle = wcase.start("idle", topic, watermark_delay="1s", idle_timeout="5s")
    held = wcase.start("held", topic, watermark_delay="1s")
    for tm in (idle, held):
        wait_watermark(tm, T0 + 4_000, "min over partitions minus watermark_delay")

    # Only partition 0 moves on (and keeps getting records, so it never idles
    # itself); partition 1 gets nothing more.
    produce(0, T0 + 20_000, T0 + 30_000)
    # With idle_timeout, partition 1 stops holding the watermark back.
    wait_watermark(idle, T0 + 29_000, "partition 1 idle",
                   keep_alive=lambda: produce(0, T0 + 30_000))
    # Without it, the same records leave the watermark at partition 1's.
    status = wait_events(held, sent[0])
    assert status["watermark_ms"] == T0 + 4_000, status
    assert metric_watermark_ms(held) == T0 + 4_000

    # Partition 1 counts again once it has records, but the watermark never goes back.
    produce(1, T0 + 6_000)
    status = wait_events(idle, sent[0])
    assert status["watermark_ms"] == T0 + 29_000, status
    # Partition 1 catching up releases the job without idle_timeout.
    produce(1, T0 + 40_000)
    wait_watermark(held, T0 + 29_000, "partition 1 caught up")
    for tm in (idle, held):
        assert tm.terminate() == 0


def test_a_partition_without_records_holds_the_watermark_until_idle(wcase):
    topic = wcase.topic("wm", partitions=2)
    ids = itertools.count(1)
    sent = [0]

    def produce_p0():
        # Only source.ts_ms: that is the event time.
        wcase.produce_to(topic, 0, [event(next(ids), None, source_ts_ms=T0 + 10_000)])
        sent[0] += 1

    produce_p0()
    idle = wcase.start("idle", topic, idle_timeout="3s")
    held = wcase.start("held", topic)
    # Partition 1 never had a record and never becomes idle: no watermark at all.
    status = wait_events(held, sent[0])
    assert status["watermark_ms"] is None, status
    assert metric_watermark_ms(held) is None
    # With idle_timeout the empty partition stops holding it back (partition 0
    # keeps getting records, so it is not idle itself).
    wait_watermark(idle, T0 + 10_000, "the empty partition idle", keep_alive=produce_p0)
    # Still none for the job without idle_timeout, after everything was read.
    status = wait_events(held, sent[0])
    assert status["watermark_ms"] is None, status
    assert metric_watermark_ms(held) is None
    for tm in (idle, held):
        assert tm.terminate() == 0


def test_watermarks_pass_workers_and_checkpoint_barriers(wcase):
    # A declared key puts the upsert operator (two workers) between source and
    # sink: watermark events interleave with batches and barriers there.
    topic = wcase.topic("wm", partitions=2)
    n = 400
    for part in (0, 1):
        wcase.produce_to(topic, part, [event(i, T0 + i) for i in range(part, n, 2)])
    tm = wcase.start("keyed", topic, columns="id bigint PRIMARY KEY, status text",
                     settings="SET checkpoint_interval = '200ms';\nSET parallelism = 2;")
    wait_watermark(tm, T0 + n - 2, "both partitions read")
    assert wait_events(tm, n)["events"] == n
    out = tm.dir / "out"

    def all_written():
        ids = set()
        for path in out.glob("*.jsonl"):
            for line in path.read_text().splitlines():
                ids.add(json.loads(line)["after"]["id"])
        return ids == set(range(n))

    wait_until(all_written, 60, "every record in the sink, committed by a checkpoint", tm)
    done = json.loads(admin_get(tm, "/v1/checkpoints"))["completed"]
    wait_until(lambda: json.loads(admin_get(tm, "/v1/checkpoints"))["completed"] >= done + 2,
               60, "two more checkpoints", tm)
    assert tm.terminate() == 0


def test_explain_shows_the_watermark_settings(tmp_path, tidemark_bin):
    src = {"connector": "kafka", "bootstrap_servers": "127.0.0.1:9", "topic": "a",
           "watermark_delay": "5s", "idle_timeout": "1m"}
    path = tmp_path / "job.sql"
    path.write_text("\n".join([
        create_table("src", src),
        create_table("sink", {"connector": "file", "path": str(tmp_path / "out")}),
        "INSERT INTO sink SELECT * FROM src;"]) + "\n")
    shown = run_cli(["explain", path], bin=tidemark_bin)
    assert shown.returncode == 0, shown.stderr
    assert "minus watermark_delay 5000 ms" in shown.stdout, shown.stdout
    assert "idle_timeout 60000 ms: a partition without records for that long stops holding " \
           "the watermark back" in shown.stdout, shown.stdout


def iso(ms: int) -> str:
    import datetime
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).isoformat()


def column_event(i: int, created_ms, source_ts_ms: int) -> bytes:
    """A create event whose created_at column differs from its commit time (source.ts_ms)."""
    source = {"version": "2.7.0.Final", "connector": "postgresql", "name": "shop",
              "db": "shop", "schema": "public", "table": "orders", "ts_ms": source_ts_ms}
    after = {"id": i, "status": "new", "created_at": None if created_ms is None else iso(created_ms)}
    return json.dumps({"before": None, "after": after, "op": "c", "source": source}).encode()


def test_watermark_on_a_column(wcase):
    """With `watermark`, the column is the event time (per partition, minimum), not source.ts_ms."""
    topic = wcase.topic("wmcol", partitions=2)
    ids = itertools.count(1)
    far = T0 + 1_000_000  # commit times far ahead: they must not be the event time

    def produce(partition, *created):
        wcase.produce_to(topic, partition, [column_event(next(ids), c, far) for c in created])

    produce(0, T0 + 10_000, T0 + 7_000, None)
    produce(1, T0 + 5_000)
    tm = wcase.start("col", topic, "id int PRIMARY KEY, status text, created_at timestamptz",
                     watermark="created_at - INTERVAL '2 seconds'")
    wait_watermark(tm, T0 + 3_000, "min over partitions of created_at minus 2 s")
    # Partition 1 moves past partition 0: partition 0 decides now; a NULL moves nothing.
    produce(1, T0 + 50_000, None)
    wait_watermark(tm, T0 + 8_000, "partition 0's created_at")
    produce(0, T0 + 60_000)
    wait_watermark(tm, T0 + 48_000, "partition 1's created_at")
    assert tm.terminate() == 0


def test_watermark_and_watermark_delay_are_exclusive(tmp_path, tidemark_bin):
    src = {"connector": "kafka", "bootstrap_servers": "127.0.0.1:9", "topic": "a",
           "watermark": "ts - INTERVAL '1 second'", "watermark_delay": "5s"}
    path = tmp_path / "job.sql"
    path.write_text("\n".join([
        create_table("src", src, "id int, ts timestamptz"),
        create_table("sink", {"connector": "file", "path": str(tmp_path / "out")}),
        "INSERT INTO sink SELECT * FROM src;"]) + "\n")
    shown = run_cli(["explain", path], bin=tidemark_bin)
    assert shown.returncode != 0
    assert "'watermark_delay' applies to the commit-time watermark only" in shown.stderr, \
        shown.stderr
