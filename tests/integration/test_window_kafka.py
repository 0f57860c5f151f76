"""Window aggregation fired by real watermarks (issue 13), against a real broker.

The Kafka source emits per-partition watermarks (newest event time minus
watermark_delay, docs/connectors/kafka.md); a TUMBLE window aggregation over
it must fire a window once the watermark passes its window_time (not only at
the end of input), emit it once, insert-only, and count a row that arrives
for a fired window in tidemark_late_rows_total instead of applying it.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest

from test_kafka_source import KafkaCase, records_in
from tidemark import create_table, payload, wait_until

T0 = 1_700_000_000_000  # ms since the epoch; a multiple of 10 s


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(i: int, t_ms: int, amount: int, op: str = "c", old_amount=None,
          ts_ms=None) -> bytes:
    """A Debezium change whose envelope ts_ms (the source's event time) is the row's time."""
    row = {"id": i, "amount": amount, "t": iso(t_ms)}
    before = None if op == "c" else {"id": i, "amount": old_amount, "t": iso(t_ms)}
    return json.dumps({"before": before, "after": None if op == "d" else row,
                       "op": op, "ts_ms": ts_ms or t_ms,
                       "source": {"version": "2.7.0.Final", "connector": "postgresql",
                                  "name": "shop", "db": "shop", "schema": "public",
                                  "table": "orders"}}).encode()


@pytest.fixture
def kcase(kafka, tmp_path, tidemark_bin, request):
    case = KafkaCase(kafka, tmp_path, tidemark_bin)
    yield case
    rep = getattr(request.node, "rep_call", None)
    case.cleanup(rep is None or rep.failed)


def late_rows(tm) -> int:
    text = tm.admin_get("/metrics")
    m = re.search(r'^tidemark_late_rows_total\{operator="(window/[^"]+)"\} (\d+)$', text, re.M)
    assert m, f"no tidemark_late_rows_total for the window operator in /metrics:\n{text}"
    return int(m.group(2))


def test_tumble_fires_on_watermark_and_counts_late_rows(kcase):
    topic = kcase.topic("win")
    out = kcase.out()
    job = "\n".join([
        create_table("src", kcase.source(topic, watermark_delay="1s"),
                     "id bigint PRIMARY KEY, amount int, t timestamptz"),
        create_table("sink", {"connector": "file", "path": str(out), "schemas": False}),
        "INSERT INTO sink SELECT window_start, window_end, count(*) AS n, sum(amount) AS total "
        "FROM TUMBLE(src, t, INTERVAL '10 seconds') GROUP BY window_start, window_end;",
        "SET admin_address = '127.0.0.1:0';",
    ]) + "\n"
    tm = kcase.start(job)
    # Out of order within the first window; nothing fires while the watermark is behind it.
    kcase.produce(topic, [(b"k", event(1, T0 + 3_000, 1)), (b"k", event(2, T0 + 1_000, 2)),
                          (b"k", event(3, T0 + 9_500, 4)), (b"k", event(7, T0 + 8_000, 32))])
    # A changelog: an update and a delete of rows whose window has not fired retract them.
    kcase.produce(topic, [(b"k", event(2, T0 + 1_000, 3, op="u", old_amount=2,
                                       ts_ms=T0 + 9_600)),
                          (b"k", event(7, T0 + 8_000, 32, op="d", old_amount=32,
                                       ts_ms=T0 + 9_700))])
    # T0 + 12 s: the watermark (12 s - 1 s = 11 s) passes window_time T0 + 9.999999 s.
    kcase.produce(topic, [(b"k", event(4, T0 + 12_000, 8))])
    wait_until(lambda: len(records_in(out)) >= 1, 60, "the first window to fire", tm)
    recs = records_in(out)
    assert len(recs) == 1, recs
    row = payload(recs[0])
    assert row["op"] == "c", recs[0]
    assert row["after"]["n"] == 3 and row["after"]["total"] == 8, row
    # A row for the fired window is late: counted, not applied, nothing emitted.
    kcase.produce(topic, [(b"k", event(5, T0 + 2_000, 100))])
    wait_until(lambda: late_rows(tm) == 1, 60, "tidemark_late_rows_total to count 1", tm)
    # The second window fires when the watermark passes T0 + 20 s.
    kcase.produce(topic, [(b"k", event(6, T0 + 25_000, 16))])
    wait_until(lambda: len(records_in(out)) >= 2, 60, "the second window to fire", tm)
    recs = records_in(out)
    assert len(recs) == 2, recs
    second = payload(recs[1])["after"]
    assert second["n"] == 1 and second["total"] == 8, recs[1]
    assert all(payload(r)["op"] == "c" for r in recs), recs
    assert late_rows(tm) == 1


def test_stop_does_not_fire_windows_and_restart_continues(kcase):
    """SIGTERM is not the end of the input: the window stays in the final checkpoint."""
    topic = kcase.topic("winstop")
    out = kcase.out()
    job = "\n".join([
        create_table("src", kcase.source(topic, watermark_delay="1s"),
                     "id bigint PRIMARY KEY, amount int, t timestamptz"),
        create_table("sink", {"connector": "file", "path": str(out), "schemas": False}),
        "INSERT INTO sink SELECT window_start, window_end, count(*) AS n, sum(amount) AS total "
        "FROM TUMBLE(src, t, INTERVAL '10 seconds') GROUP BY window_start, window_end;",
        "SET admin_address = '127.0.0.1:0';",
        "SET checkpoint_interval = '200ms';",
    ]) + "\n"
    tm = kcase.start(job)
    kcase.produce(topic, [(b"k", event(1, T0 + 1_000, 1)), (b"k", event(2, T0 + 2_000, 2))])

    def read_both():
        job_status = json.loads(tm.admin_get("/v1/job"))
        return job_status["sources"][0]["events"] >= 2

    wait_until(read_both, 60, "the source to read both rows", tm)
    assert tm.terminate() == 0, tm.log_tail()
    assert records_in(out) == [], "a stop fired a window"
    # The restart resumes after the two rows: they come back only from the window's state.
    tm.start()
    kcase.produce(topic, [(b"k", event(3, T0 + 15_000, 4))])
    wait_until(lambda: len(records_in(out)) >= 1, 60, "the window to fire after the restart", tm)
    recs = records_in(out)
    assert len(recs) == 1, recs
    after = payload(recs[0])["after"]
    assert after["n"] == 2 and after["total"] == 3, recs


def test_stop_without_checkpoints_fires_nothing(kcase):
    """Without checkpoints the file sink flushes what arrives before the end: still no window."""
    topic = kcase.topic("winstop0")
    out = kcase.out()
    job = "\n".join([
        create_table("src", kcase.source(topic, watermark_delay="1s"),
                     "id bigint PRIMARY KEY, amount int, t timestamptz"),
        create_table("sink", {"connector": "file", "path": str(out), "schemas": False}),
        "INSERT INTO sink SELECT window_start, window_end, count(*) AS n "
        "FROM TUMBLE(src, t, INTERVAL '10 seconds') GROUP BY window_start, window_end;",
        "SET admin_address = '127.0.0.1:0';",
    ]) + "\n"
    tm = kcase.start(job)
    kcase.produce(topic, [(b"k", event(1, T0 + 1_000, 1)), (b"k", event(2, T0 + 2_000, 2))])
    wait_until(lambda: json.loads(tm.admin_get("/v1/job"))["sources"][0]["events"] >= 2, 60,
               "the source to read both rows", tm)
    assert tm.terminate() == 0, tm.log_tail()
    assert records_in(out) == [], "a stop fired a window"


def test_allowed_lateness_emits_corrections(kcase):
    """With allowed_lateness a late row within it updates the fired window's row."""
    topic = kcase.topic("winlate")
    out = kcase.out()
    job = "\n".join([
        create_table("src", kcase.source(topic, watermark_delay="1s"),
                     "id bigint PRIMARY KEY, amount int, t timestamptz"),
        create_table("sink", {"connector": "file", "path": str(out), "schemas": False}),
        "INSERT INTO sink SELECT window_start, window_end, count(*) AS n, sum(amount) AS total "
        "FROM TUMBLE(src, t, INTERVAL '10 seconds') GROUP BY window_start, window_end;",
        "SET admin_address = '127.0.0.1:0';",
        "SET allowed_lateness = '5s';",
    ]) + "\n"
    tm = kcase.start(job)
    kcase.produce(topic, [(b"k", event(1, T0 + 1_000, 1)), (b"k", event(2, T0 + 12_000, 2))])
    wait_until(lambda: len(records_in(out)) >= 1, 60, "the first window to fire", tm)
    # Within the lateness (watermark 11 s < window_time 9.999999 s + 5 s): a correction.
    kcase.produce(topic, [(b"k", event(3, T0 + 4_000, 10, ts_ms=T0 + 13_000))])
    wait_until(lambda: len(records_in(out)) >= 2, 60, "the correction", tm)
    recs = [payload(r) for r in records_in(out)]
    assert recs[0]["op"] == "c" and recs[0]["after"]["n"] == 1, recs
    assert recs[1]["op"] == "u", recs
    assert recs[1]["before"]["n"] == 1 and recs[1]["before"]["total"] == 1, recs
    assert recs[1]["after"]["n"] == 2 and recs[1]["after"]["total"] == 11, recs
    # Past it (watermark 20 s >= 14.999999 s) the window's state is gone: late, counted.
    kcase.produce(topic, [(b"k", event(4, T0 + 21_000, 0))])
    wait_until(lambda: (json.loads(tm.admin_get("/v1/job"))["sources"][0]["watermark_ms"] or 0)
               >= T0 + 20_000, 60, "the watermark to pass 20 s", tm)
    kcase.produce(topic, [(b"k", event(5, T0 + 5_000, 100, ts_ms=T0 + 21_000))])
    wait_until(lambda: late_rows(tm) == 1, 60, "the row past the lateness to be counted", tm)
    # Nothing else comes out but the second window, fired by the same watermark.
    wait_until(lambda: len(records_in(out)) >= 3, 60, "the second window", tm)
    recs = [payload(r) for r in records_in(out)]
    assert len(recs) == 3, recs
    assert recs[2]["op"] == "c" and recs[2]["after"]["n"] == 1 and \
        recs[2]["after"]["total"] == 2, recs
