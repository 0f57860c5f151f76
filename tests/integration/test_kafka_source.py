"""The Kafka source (connector = 'kafka') against a real broker.

Every test produces Debezium events to topics of its own on the session's
KRaft broker (the `kafka` fixture), runs tidemark with a file sink, and reads
what the sink wrote.  What they pin down (docs/connectors/kafka.md, Source):

  * every real Debezium vector (tests/data/debezium, the same files as
    ../shared/vectors) comes out with the vector's op and row images;
  * tombstones are skipped, events with and without the schema part decode;
  * startup earliest / latest / timestamp / group;
  * malformed records go to the dead-letter topic with their error headers,
    or stop the job (on_error = 'fail'), or are skipped;
  * with checkpoints, a graceful stop or a kill -9 and a restart give every
    event exactly once in the file sink;
  * read_committed: records of aborted transactions never appear.
"""

from __future__ import annotations

import base64
import itertools
import json
import random
import re
import threading
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from tidemark import (EXIT_CONFIG, EXIT_SOURCE, REPO_ROOT, Tidemark, create_table, payload,
                      read_jsonl, run_cli, wait_until)

VECTORS = REPO_ROOT / "tests" / "data" / "debezium"

# (file, kind, the README's op counts r/c/u/d): kind says how events are stored.
VECTOR_FILES = [
    ("flink/debezium-postgres-data-schema-include.txt", "jsonl", (9, 2, 4, 1)),
    ("flink/debezium-postgres-data-schema-exclude.txt", "jsonl", (9, 2, 4, 1)),
    ("flink/debezium-postgres-data-replica-identity.txt", "jsonl", (9, 2, 4, 1)),
    ("flink/debezium-data-schema-include.txt", "jsonl", (0, 11, 4, 1)),
    ("flink-cdc/debezium-data-schema-exclude.json", "pair", (1, 0, 1, 0)),
    ("flink-cdc/debezium-data-schema-exclude-with-numeric-decimal.json", "pair", (1, 0, 1, 0)),
    ("debezium/serde-with-schema.json", "doc", (0, 1, 0, 0)),
    ("debezium/serde-without-schema.json", "doc", (0, 1, 0, 0)),
    ("debezium/serde-update.json", "doc", (0, 0, 1, 0)),
    ("risingwave/debezium_log.1", "jsonl", (4, 2, 3, 1)),
]

_names = itertools.count(1)


def _unique(what: str) -> str:
    return f"tmks-{what}-{next(_names)}-{uuid.uuid4().hex[:6]}"


def vector_events(rel: str, kind: str) -> list:
    """The raw text of every event of a vector file, in file order."""
    text = (VECTORS / rel).read_text()
    if kind == "doc":
        return [text]
    if kind == "pair":
        # Two events under keys; their raw spans keep numbers beyond int64 intact.
        decoder = json.JSONDecoder()
        events = []
        for key in ("expected_snapshot", "expected_binlog"):
            at = text.index(f'"{key}"')
            at = text.index(":", at) + 1
            while text[at].isspace():
                at += 1
            _, end = decoder.raw_decode(text, at)
            events.append(text[at:end])
        return events
    return [line for line in text.split("\n") if line.strip()]


def exact(text_or_obj):
    """JSON with numbers as Decimal, so 3.140000104904175 and big integers compare exactly."""
    if isinstance(text_or_obj, str):
        return json.loads(text_or_obj, parse_float=Decimal, parse_int=Decimal)
    return json.loads(json.dumps(text_or_obj), parse_float=Decimal, parse_int=Decimal)


def variable_scale_decimal(v):
    """Debezium's VariableScaleDecimal {"scale": s, "value": base64 unscaled} as a Decimal."""
    unscaled = int.from_bytes(base64.b64decode(v["value"]), "big", signed=True)
    return Decimal(unscaled).scaleb(-int(v["scale"]))


def same_row(want, have) -> bool:
    """Row images equal column by column, exactly, in the vector's terms.

    Two wire forms differ from the vector's while the value is the same:
      * tidemark has no struct type: a column whose values are JSON objects
        (MySQL geometry as {"wkb","srid"} in the flink-cdc vectors) is a JSON
        column, written as io.debezium.data.Json, a string holding that JSON;
      * a number beyond int64 in an event without schema (BIGINT UNSIGNED
        18446744073709551615) is an exact NUMERIC of no fixed scale, written
        (decimal_handling precise) as Debezium's VariableScaleDecimal.
    """
    if want is None or have is None:
        return want == have
    if set(want) != set(have):
        return False
    for k, v in want.items():
        h = have[k]
        if isinstance(v, (dict, list)) and isinstance(h, str):
            h = exact(h)
        elif isinstance(v, Decimal) and isinstance(h, dict) and set(h) == {"scale", "value"}:
            h = variable_scale_decimal(h)
        if h != v:
            return False
    return True


class KafkaCase:
    """One test's topics, daemons and output directories on the session broker."""

    def __init__(self, kafka, tmp_path: Path, tidemark_bin: Path):
        self.kafka = kafka
        self.dir = tmp_path
        self.bin = tidemark_bin
        self.daemons: list = []
        self._producer = None

    def topic(self, what: str, partitions: int = 1) -> str:
        name = _unique(what)
        self.kafka.create_topic(name, partitions=partitions)
        return name

    def producer(self):
        if self._producer is None:
            from confluent_kafka import Producer

            self._producer = Producer(self.kafka.client_conf(**{
                "acks": "all", "enable.idempotence": True, "linger.ms": 5}))
        return self._producer

    def produce(self, topic: str, messages, partition=None) -> None:
        """Produces (key, value) pairs in order (value None: a tombstone), then flushes."""
        p = self.producer()
        errors = []

        def delivered(err, msg):
            if err is not None:
                errors.append(err)

        for i, (key, value) in enumerate(messages):
            kw = {"key": key, "value": value, "on_delivery": delivered}
            if partition is not None:
                kw["partition"] = partition(i) if callable(partition) else partition
            while True:
                try:
                    p.produce(topic, **kw)
                    break
                except BufferError:
                    p.poll(0.1)
            p.poll(0)
        assert p.flush(60) == 0, "messages not delivered within 60s"
        assert not errors, f"produce to {topic} failed: {errors[:3]}"

    def source(self, topic: str, **extra) -> dict:
        opts = {"connector": "kafka", "bootstrap_servers": self.kafka.bootstrap,
                "topic": topic, "group_id": _unique("group")}
        opts.update(extra)
        return opts

    def out(self, name: str = "out") -> Path:
        path = self.dir / name
        path.mkdir(exist_ok=True)
        return path

    def job(self, pipelines, settings: str = "") -> str:
        """pipelines: [(source name, source options, columns, sink name, out dir)]."""
        lines = []
        for src, opts, columns, snk, out in pipelines:
            lines.append(create_table(src, opts, columns))
            lines.append(create_table(snk, {"connector": "file", "path": str(out),
                                            "schemas": False}))
            lines.append(f"INSERT INTO {snk} SELECT * FROM {src};")
        return "\n".join(lines) + "\n" + settings + "\n"

    def simple_job(self, topic: str, out: Path, columns: str = "", settings: str = "",
                   **opts) -> str:
        return self.job([("src", self.source(topic, **opts), columns, "sink", out)], settings)

    def tidemark(self, job_sql: str, name: str = "tm") -> Tidemark:
        daemon = Tidemark(job_sql, self.dir / name, bin=self.bin)
        self.daemons.append(daemon)
        return daemon

    def start(self, job_sql: str, name: str = "tm") -> Tidemark:
        return self.tidemark(job_sql, name).start()

    def cleanup(self, failed: bool) -> None:
        for daemon in self.daemons:
            daemon.kill9()
            if failed:
                print(f"\n=== {daemon.dir} ===\n{daemon.log_tail()}")


@pytest.fixture
def kcase(kafka, tmp_path, tidemark_bin, request):
    case = KafkaCase(kafka, tmp_path, tidemark_bin)
    yield case
    rep = getattr(request.node, "rep_call", None)
    case.cleanup(rep is None or rep.failed)


def records_in(out: Path) -> list:
    """Every record the file sink wrote under out, over all its topic files."""
    recs = []
    for path in sorted(out.glob("*.jsonl")):
        recs.extend(read_jsonl(path))
    return recs


def wait_records(out: Path, n: int, tm, timeout: float = 60, what: str = "") -> list:
    """Waits until the sink wrote at least n records; returns them."""
    seen = []

    def enough():
        seen[:] = records_in(out)
        return len(seen) >= n

    wait_until(enough, timeout, f"{n} records in {out}{' ' + what if what else ''} "
                                f"(have {len(seen)})", tm)
    return seen


def wait_assigned(tm, timeout: float = 60) -> None:
    wait_until(lambda: "partitions assigned" in tm.log_text(), timeout,
               "the Kafka source to assign its partitions", tm)


def stop_counts(tm) -> dict:
    """The counters of the last 'source stopped' line."""
    lines = [line for line in tm.log_text().splitlines() if 'msg="source stopped"' in line]
    assert lines, f"no 'source stopped' line\n{tm.log_tail()}"
    return {k: int(v) for k, v in re.findall(r" (\w+)=(\d+)", lines[-1])}


def event(op: str, before=None, after=None, table: str = "orders") -> str:
    return json.dumps({"before": before, "after": after, "op": op, "ts_ms": 1700000000000,
                       "source": {"version": "2.7.0.Final", "connector": "postgresql",
                                  "name": "shop", "db": "shop", "schema": "public",
                                  "table": table}})


def order(i: int, amount: str = "1.00", status: str = "new") -> dict:
    return {"id": i, "amount": amount, "status": status}


def ids_of(records) -> list:
    out = []
    for r in records:
        p = payload(r)
        image = p.get("after") or p.get("before") or {}
        out.append(image.get("id"))
    return out


# -- decoding ---------------------------------------------------------------


def test_every_vector_file_decodes_into_the_vectors_rows(kcase):
    """Each vector file goes to a topic of its own; one job reads them all."""
    pipelines, expected = [], []
    for n, (rel, kind, counts) in enumerate(VECTOR_FILES):
        events = vector_events(rel, kind)
        assert len(events) == sum(counts), rel
        topic = kcase.topic(f"vec{n}")
        kcase.produce(topic, [(f"k{i}".encode(), e.encode()) for i, e in enumerate(events)])
        out = kcase.out(f"v{n}")
        pipelines.append((f"v{n}", kcase.source(topic), "", f"o{n}", out))
        expected.append((rel, counts, events, out))
    tm = kcase.start(kcase.job(pipelines))
    for rel, counts, events, out in expected:
        got = wait_records(out, len(events), tm, what=f"from {rel}")
        assert len(got) == len(events), f"{rel}: {len(got)} records for {len(events)} events"
        ops = Counter(payload(r)["op"] for r in got)
        assert (ops["r"], ops["c"], ops["u"], ops["d"]) == counts, f"{rel}: ops {ops}"
        for i, (text, rec) in enumerate(zip(events, got)):
            want, have = exact(text), exact(payload(rec))
            want = want.get("payload", want) if "payload" in want else want
            assert have["op"] == want["op"], f"{rel} event {i}: op {have['op']} != {want['op']}"
            for field in ("before", "after"):
                assert same_row(want.get(field), have.get(field)), (
                    f"{rel} event {i}: {field} differs\n  vector:   {want.get(field)}\n"
                    f"  tidemark: {have.get(field)}")
            if "source" in want and want["source"]:
                for field in ("name", "db", "table"):
                    if field in want["source"]:
                        assert have["source"].get(field) == want["source"][field], (rel, i, field)
    assert tm.terminate() == 0, tm.log_tail()
    counts = stop_counts(tm)
    assert counts["malformed"] == 0 and counts["tombstones"] == 0, counts


def test_schema_forms_and_tombstones(kcase):
    topic = kcase.topic("forms")
    with_schema = json.dumps({
        "schema": {"type": "struct", "name": "shop.public.orders.Envelope", "fields": [
            {"type": "struct", "optional": True, "field": "before", "fields": [
                {"type": "int64", "optional": False, "field": "id"},
                {"type": "string", "optional": True, "field": "status"}]},
            {"type": "struct", "optional": True, "field": "after", "fields": [
                {"type": "int64", "optional": False, "field": "id"},
                {"type": "string", "optional": True, "field": "status"}]},
            {"type": "string", "optional": False, "field": "op"}]},
        "payload": {"before": None, "after": {"id": 1, "status": "schema"}, "op": "c",
                    "source": {"name": "shop", "schema": "public", "table": "orders"}}})
    without_schema = event("c", after={"id": 2, "status": "bare"})
    envelope_tombstone = json.dumps({"schema": None, "payload": None})
    kcase.produce(topic, [
        (b"1", with_schema.encode()),
        (b"1", None),                      # Kafka tombstone: no value at all
        (b"2", without_schema.encode()),
        (b"2", envelope_tombstone.encode()),
        (b"3", b""),                       # an empty value counts as one too
        (b"3", b"null"),
        (b"4", event("d", before={"id": 2, "status": "bare"}).encode()),
    ])
    out = kcase.out()
    tm = kcase.start(kcase.simple_job(topic, out, startup="earliest"))
    got = wait_records(out, 3, tm)
    assert [(payload(r)["op"], ids_of([r])[0]) for r in got] == [("c", 1), ("c", 2), ("d", 2)]
    assert payload(got[0])["after"] == {"id": 1, "status": "schema"}
    assert payload(got[1])["after"] == {"id": 2, "status": "bare"}
    assert tm.terminate() == 0, tm.log_tail()
    counts = stop_counts(tm)
    assert counts["records"] == 3 and counts["tombstones"] == 4, counts
    assert counts["malformed"] == 0, counts


def test_events_without_a_source_block_are_named_after_their_topic(kcase):
    # Flink's debezium-json writes no source block; the topic name supplies the table.
    topic = _unique("flinkout") + ".public.items"
    kcase.kafka.create_topic(topic)
    kcase.produce(topic, [(b"1", json.dumps({"before": None, "after": {"id": 1},
                                            "op": "c"}).encode())])
    out = kcase.out()
    tm = kcase.start(kcase.simple_job(topic, out))
    wait_records(out, 1, tm)
    assert [p.name for p in out.glob("*.jsonl")] == [f"{topic}.jsonl"]
    assert tm.terminate() == 0, tm.log_tail()


# -- startup modes ------------------------------------------------------------


def test_startup_earliest_and_latest(kcase):
    topic = kcase.topic("startup", partitions=2)
    kcase.produce(topic, [(str(i).encode(), event("c", after=order(i)).encode())
                          for i in range(1, 5)], partition=lambda i: i % 2)
    early, late = kcase.out("early"), kcase.out("late")
    job = kcase.job([
        ("e", kcase.source(topic, startup="earliest"), "", "eo", early),
        ("l", kcase.source(topic, startup="latest"), "", "lo", late),
    ])
    tm = kcase.start(job)
    wait_until(lambda: tm.log_text().count("partitions assigned") == 2, 60,
               "both sources to assign their partitions", tm)
    kcase.produce(topic, [(str(i).encode(), event("c", after=order(i)).encode())
                          for i in range(5, 8)], partition=lambda i: i % 2)
    assert sorted(ids_of(wait_records(early, 7, tm))) == list(range(1, 8))
    assert sorted(ids_of(wait_records(late, 3, tm))) == [5, 6, 7]
    assert tm.terminate() == 0, tm.log_tail()
    assert sorted(ids_of(records_in(late))) == [5, 6, 7], \
        "startup = 'latest' read records from before it started"


def test_startup_timestamp(kcase):
    topic = kcase.topic("ts")
    kcase.produce(topic, [(b"1", event("c", after=order(1)).encode())])
    # Message timestamps are the producer's clock (CreateTime), the same clock as ours.
    time.sleep(0.05)
    cut_ms = int(time.time() * 1000)
    time.sleep(0.05)
    kcase.produce(topic, [(b"2", event("c", after=order(2)).encode())])
    out = kcase.out()
    tm = kcase.start(kcase.simple_job(topic, out, startup="timestamp",
                                      startup_timestamp=str(cut_ms)))
    wait_assigned(tm)
    kcase.produce(topic, [(b"3", event("c", after=order(3)).encode())])
    assert sorted(ids_of(wait_records(out, 2, tm))) == [2, 3]
    assert tm.terminate() == 0, tm.log_tail()
    assert sorted(ids_of(records_in(out))) == [2, 3]


def test_startup_group_resumes_from_committed_offsets(kcase):
    """Without checkpoints, offsets the sinks flushed are committed to the group."""
    from confluent_kafka import Consumer, TopicPartition

    topic = kcase.topic("group", partitions=2)
    group = _unique("group")
    kcase.produce(topic, [(str(i).encode(), event("c", after=order(i)).encode())
                          for i in range(1, 7)], partition=lambda i: i % 2)
    first = kcase.out("first")
    tm = kcase.start(kcase.simple_job(topic, first, group_id=group, startup="group"), "tm1")
    wait_records(first, 6, tm)
    assert tm.terminate() == 0, tm.log_tail()
    consumer = Consumer(kcase.kafka.client_conf(**{"group.id": group}))
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in (0, 1)], timeout=30)
    finally:
        consumer.close()
    assert {c.partition: c.offset for c in committed} == kcase.kafka.end_offsets(topic)

    kcase.produce(topic, [(str(i).encode(), event("c", after=order(i)).encode())
                          for i in range(7, 9)], partition=lambda i: i % 2)
    second = kcase.out("second")
    # A fresh state directory: only the group knows where the first run stopped.
    tm2 = kcase.start(kcase.simple_job(topic, second, group_id=group, startup="group"), "tm2")
    assert sorted(ids_of(wait_records(second, 2, tm2))) == [7, 8]
    assert tm2.terminate() == 0, tm2.log_tail()
    assert sorted(ids_of(records_in(second))) == [7, 8]


# -- malformed records ----------------------------------------------------------

COLUMNS = "id bigint PRIMARY KEY, amount numeric(10,2), status text"


def malformed_batch():
    """Good and bad records; (key, value, expected error words) for the bad ones."""
    good = [(b"1", event("c", after=order(1)).encode(), None),
            (b"2", event("c", after=order(2, "2.50")).encode(), None)]
    bad = [
        (b"x1", b'{"op":"c","after":{"id":', "invalid JSON"),
        (b"x2", event("c", after={"id": "seven", "amount": "1.00", "status": "s"}).encode(),
         "after.id"),
        (b"x3", event("c", after={"id": 3, "amount": True, "status": "s"}).encode(),
         "amount"),
        (b"x4", event("c", after={"amount": "1.00", "status": "no key"}).encode(),
         "primary-key column 'id'"),
    ]
    tail = [(b"5", event("c", after=order(5)).encode(), None)]
    return good[:1] + bad[:2] + good[1:] + bad[2:] + tail, bad


def test_malformed_records_go_to_the_dead_letter_topic(kcase):
    topic = kcase.topic("dlq")
    dlq = f"{topic}.dlq"
    kcase.kafka.create_topic(dlq)
    messages, bad = malformed_batch()
    kcase.produce(topic, [(k, v) for k, v, _ in messages])
    out = kcase.out()
    tm = kcase.start(kcase.simple_job(topic, out, columns=COLUMNS, decimal_handling="string"))
    got = wait_records(out, 3, tm)
    assert ids_of(got) == [1, 2, 5]
    dead = wait_until(lambda: (lambda m: m if len(m) >= len(bad) else None)(
        kcase.kafka.consume_all(dlq)), 60, f"{len(bad)} records in {dlq}", tm)
    assert [(m.key, m.value) for m in dead] == [(k, v) for k, v, _ in bad]
    offsets = {k: i for i, (k, _, _) in enumerate(messages)}
    for m, (key, _, words) in zip(dead, bad):
        headers = dict(m.headers)
        assert set(headers) >= {"tidemark.error", "tidemark.topic", "tidemark.partition",
                                "tidemark.offset"}, headers
        assert words in headers["tidemark.error"].decode(), headers
        assert headers["tidemark.topic"].decode() == topic
        assert headers["tidemark.partition"] == b"0"
        assert int(headers["tidemark.offset"]) == offsets[key]
    assert tm.terminate() == 0, tm.log_tail()
    counts = stop_counts(tm)
    assert (counts["records"], counts["malformed"], counts["dead_lettered"]) == (3, 4, 4), counts
    assert "malformed record" in tm.log_text()


def test_on_error_fail_stops_the_job(kcase):
    topic = kcase.topic("fail")
    kcase.produce(topic, [(b"1", event("c", after=order(1)).encode()),
                          (b"2", b"{this is not json")])
    out = kcase.out()
    tm = kcase.start(kcase.simple_job(topic, out, columns=COLUMNS, on_error="fail"))
    assert tm.wait_exit(60) == EXIT_SOURCE, tm.log_tail()
    log = tm.log_text()
    assert re.search(rf"malformed record in topic '{topic}' partition 0 at offset 1: "
                     r"invalid JSON", log), log[-3000:]
    assert "on_error = 'fail'" in log


def test_on_error_skip_continues(kcase):
    topic = kcase.topic("skip")
    messages, bad = malformed_batch()
    kcase.produce(topic, [(k, v) for k, v, _ in messages])
    out = kcase.out()
    tm = kcase.start(kcase.simple_job(topic, out, columns=COLUMNS, on_error="skip",
                                      decimal_handling="string"))
    assert ids_of(wait_records(out, 3, tm)) == [1, 2, 5]
    assert tm.terminate() == 0, tm.log_tail()
    counts = stop_counts(tm)
    assert (counts["malformed"], counts["skipped"], counts["dead_lettered"]) == (4, 4, 0), counts
    # Listing every topic (not asking for one) cannot create it by accident.
    assert f"{topic}.dlq" not in kcase.kafka.admin().list_topics(timeout=10).topics


# -- checkpoints ----------------------------------------------------------------


def checkpointed(kcase, topic, out, **opts) -> str:
    return kcase.simple_job(topic, out, settings="SET checkpoint_interval = '500ms';", **opts)


def assert_exactly_once(records, expected):
    counts = Counter(ids_of(records))
    twice = sorted(i for i, n in counts.items() if n > 1)
    assert not twice, f"ids written more than once: {twice[:20]}"
    assert set(counts) == set(expected), (
        f"missing: {sorted(set(expected) - set(counts))[:20]}, "
        f"unexpected: {sorted(set(counts) - set(expected))[:20]}")


def produce_orders(kcase, topic, ids, partitions=3):
    """Order events for ids (a list), event i in partition i % partitions."""
    kcase.produce(topic, [(str(i).encode(), event("c", after=order(i)).encode()) for i in ids],
                  partition=lambda n: ids[n] % partitions)


@pytest.mark.parametrize("columns", ["", COLUMNS], ids=["undeclared", "declared-key"])
def test_graceful_stop_and_restart_give_each_event_once(kcase, columns):
    # With a declared primary key the pipeline runs through the stateful upsert operator.
    topic = kcase.topic("chk", partitions=3)
    produce_orders(kcase, topic, list(range(1, 101)))
    out = kcase.out()
    tm = kcase.start(checkpointed(kcase, topic, out, columns=columns,
                                  decimal_handling="string"))
    wait_records(out, 100, tm)
    assert tm.terminate() == 0, tm.log_tail()
    shown = run_cli(["inspect", tm.dir / "state"], bin=kcase.bin)
    assert shown.returncode == 0, shown.stderr
    position = re.search(r"^\s+src\s+position (\{.*\}) \(token", shown.stdout, re.M)
    assert position, shown.stdout
    assert json.loads(position.group(1)) == {
        topic: {str(p): o for p, o in kcase.kafka.end_offsets(topic).items()}}

    produce_orders(kcase, topic, list(range(101, 201)))
    tm.start()
    wait_until(lambda: len(records_in(out)) >= 200, 90, "200 records after the restart", tm)
    assert tm.terminate() == 0, tm.log_tail()
    assert_exactly_once(records_in(out), range(1, 201))


class BackgroundProducer:
    """Produces order events first_id, first_id+1, ... at a steady pace on its own thread."""

    def __init__(self, kcase, topic, first_id, count, partitions=3, per_second=1000):
        from confluent_kafka import Producer

        self.producer = Producer(kcase.kafka.client_conf(**{"acks": "all",
                                                          "enable.idempotence": True}))
        self.topic, self.first, self.count = topic, first_id, count
        self.partitions, self.per_second = partitions, per_second
        self.errors = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        started = time.monotonic()
        for n in range(self.count):
            i = self.first + n
            self.producer.produce(self.topic, key=str(i).encode(),
                                  value=event("c", after=order(i)).encode(),
                                  partition=i % self.partitions,
                                  on_delivery=lambda err, msg: err and self.errors.append(err))
            self.producer.poll(0)
            # Paced, so that the crashes below land while events are still arriving.
            ahead = n / self.per_second - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)

    def start(self):
        self.thread.start()
        return self

    def finish(self):
        self.thread.join(120)
        assert not self.thread.is_alive(), "the background producer did not finish"
        assert self.producer.flush(60) == 0 and not self.errors, self.errors[:3]


def test_restore_with_many_partitions(kcase):
    """Offsets of 32 partitions make a long position; it must round-trip through _metadata."""
    topic = kcase.topic("wide", partitions=32)
    produce_orders(kcase, topic, list(range(1, 129)), partitions=32)
    out = kcase.out()
    tm = kcase.start(checkpointed(kcase, topic, out))
    wait_records(out, 128, tm)
    assert tm.terminate() == 0, tm.log_tail()
    produce_orders(kcase, topic, list(range(129, 161)), partitions=32)
    tm.start()
    wait_until(lambda: len(records_in(out)) >= 160, 60, "160 records after the restart", tm)
    assert tm.terminate() == 0, tm.log_tail()
    assert_exactly_once(records_in(out), range(1, 161))


@pytest.mark.deadline(600)
def test_kill9_and_restart_give_each_event_once(kcase):
    topic = kcase.topic("crash", partitions=3)
    out = kcase.out()
    tm = kcase.start(checkpointed(kcase, topic, out))
    writer = BackgroundProducer(kcase, topic, 1, 4000, per_second=800).start()
    rng = random.Random(20261122)
    try:
        # Kill it three times while events keep arriving, each time after at
        # least one more checkpoint completed (so that restores differ).
        for _ in range(3):
            before = tm.log_text().count('msg="completed" checkpoint=')
            wait_until(lambda: tm.log_text().count('msg="completed" checkpoint=') > before, 60,
                       "a completed checkpoint", tm)
            time.sleep(rng.uniform(0.0, 0.7))
            tm.kill9()
            tm.start()
    finally:
        writer.finish()
    produce_orders(kcase, topic, list(range(4001, 4011)))
    wait_until(lambda: len(set(ids_of(records_in(out)))) >= 4010, 180,
               "4010 distinct ids after the crashes", tm)
    assert tm.terminate() == 0, tm.log_tail()
    assert_exactly_once(records_in(out), range(1, 4011))
    # Each restart came after a completed checkpoint, so each resumed from one.
    assert tm.log_text().count("from=checkpoint") == 3, tm.log_tail()


def test_checkpoints_commit_offsets_to_the_group(kcase):
    from confluent_kafka import Consumer, TopicPartition

    topic = kcase.topic("commit", partitions=2)
    group = _unique("group")
    produce_orders(kcase, topic, list(range(1, 21)), partitions=2)
    out = kcase.out()
    tm = kcase.start(checkpointed(kcase, topic, out, group_id=group))
    wait_records(out, 20, tm)
    ends = kcase.kafka.end_offsets(topic)
    consumer = Consumer(kcase.kafka.client_conf(**{"group.id": group}))
    try:
        def committed():
            got = consumer.committed([TopicPartition(topic, p) for p in ends], timeout=10)
            return {c.partition: c.offset for c in got} == ends

        wait_until(committed, 30, f"group {group} to have committed {ends}", tm)
    finally:
        consumer.close()
    assert tm.terminate() == 0, tm.log_tail()


# -- transactions ---------------------------------------------------------------


def test_records_of_aborted_transactions_never_appear(kcase):
    from confluent_kafka import Producer

    topic = kcase.topic("txn")
    producer = Producer(kcase.kafka.client_conf(**{"transactional.id": _unique("txn")}))
    producer.init_transactions(30)

    def txn(ids, commit):
        producer.begin_transaction()
        for i in ids:
            producer.produce(topic, key=str(i).encode(), value=event("c", after=order(i)).encode())
        producer.flush(30)
        (producer.commit_transaction if commit else producer.abort_transaction)(30)

    txn([1, 2], True)
    txn([101, 102, 103], False)
    out = kcase.out()
    tm = kcase.start(kcase.simple_job(topic, out))
    wait_assigned(tm)
    txn([3], True)
    txn([104], False)
    # An open transaction holds read_committed back; its commit releases it.
    producer.begin_transaction()
    producer.produce(topic, key=b"4", value=event("c", after=order(4)).encode())
    producer.flush(30)
    wait_records(out, 3, tm)
    producer.commit_transaction(30)
    got = wait_records(out, 4, tm)
    assert ids_of(got) == [1, 2, 3, 4]
    assert tm.terminate() == 0, tm.log_tail()
    assert ids_of(records_in(out)) == [1, 2, 3, 4]
    # The aborted records are in the log: only read_committed kept them out.
    raw = kcase.kafka.consume_all(topic, isolation="read_uncommitted")
    assert len(raw) == 8


# -- volume, back-pressure, partitions --------------------------------------------


@pytest.mark.deadline(600)
def test_many_events_over_partitions_arrive_once_and_in_partition_order(kcase):
    topic = kcase.topic("volume", partitions=4)
    n = 20000
    kcase.produce(topic, [(str(i).encode(), event("c", after=order(i)).encode())
                          for i in range(n)], partition=lambda i: i % 4)
    out = kcase.out()
    tm = kcase.start(kcase.simple_job(topic, out))
    wait_records(out, n, tm, timeout=240)
    assert tm.terminate() == 0, tm.log_tail()
    ids = ids_of(records_in(out))
    assert len(ids) == n and set(ids) == set(range(n))
    for p in range(4):
        mine = [i for i in ids if i % 4 == p]
        assert mine == sorted(mine), f"partition {p} out of order"


def test_new_partitions_are_discovered(kcase):
    from confluent_kafka.admin import NewPartitions

    topic = kcase.topic("grow", partitions=1)
    kcase.produce(topic, [(b"1", event("c", after=order(1)).encode())])
    out = kcase.out()
    tm = kcase.start(kcase.simple_job(topic, out, partition_discovery_interval="1s"))
    wait_records(out, 1, tm)
    admin = kcase.kafka.admin()  # kept alive until the future resolves
    admin.create_partitions([NewPartitions(topic, 3)])[topic].result(30)
    wait_until(lambda: "new partitions assigned" in tm.log_text(), 60,
               "the new partitions to be assigned", tm)
    # The test's own producer must see the new partitions too before it can use them.
    wait_until(lambda: len(kcase.producer().list_topics(topic, timeout=5)
                           .topics[topic].partitions) == 3, 30,
               "the test producer to see 3 partitions")
    kcase.produce(topic, [(str(i).encode(), event("c", after=order(i)).encode())
                          for i in (2, 3)], partition=lambda n: n + 1)
    assert sorted(ids_of(wait_records(out, 3, tm))) == [1, 2, 3]
    assert tm.terminate() == 0, tm.log_tail()


# -- errors and explain ---------------------------------------------------------


@pytest.mark.deadline(600)
def test_a_broker_restart_is_ridden_out(kcase, tmp_path):
    """The broker goes away mid-stream and comes back: nothing is lost or doubled."""
    from kafkaserver import KafkaServer

    with KafkaServer(tmp_path / "broker", heap="256m") as broker:
        own = KafkaCase(broker, tmp_path, kcase.bin)
        kcase.daemons = own.daemons  # cleaned up (and logged) by the fixture
        topic = own.topic("restart", partitions=2)
        produce_orders(own, topic, list(range(1, 51)), partitions=2)
        out = own.out()
        tm = own.start(own.simple_job(topic, out))
        wait_records(out, 50, tm)
        own._producer = None
        broker.stop_process()
        wait_until(lambda: "Kafka client error" in tm.log_text(), 60,
                   "a log line about the lost broker", tm)
        broker.start_process()
        produce_orders(own, topic, list(range(51, 101)), partitions=2)
        wait_until(lambda: len(records_in(out)) >= 100, 120, "100 records after the restart",
                   tm)
        assert tm.terminate() == 0, tm.log_tail()
        assert_exactly_once(records_in(out), range(1, 101))


def test_missing_topic_fails_with_a_clear_message(kcase):
    topic = _unique("absent")
    out = kcase.out()
    tm = kcase.start(kcase.simple_job(topic, out))
    assert tm.wait_exit(60) == EXIT_SOURCE, tm.log_tail()
    log = tm.log_text()
    assert f"topic '{topic}' does not exist" in log and "create it first" in log, log[-2000:]


def test_unreachable_brokers_are_retried_with_log_lines(kcase, tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # With checkpoints, so that the final checkpoint of the stop must not wait for brokers.
    job = kcase.job([("src", {"connector": "kafka", "bootstrap_servers": f"127.0.0.1:{port}",
                              "topic": "anything"}, "", "sink", kcase.out())],
                    "SET checkpoint_interval = '500ms';")
    tm = kcase.start(job)
    wait_until(lambda: "waiting for the Kafka brokers" in tm.log_text(), 30,
               "a line saying tidemark waits for the brokers", tm)
    assert 'msg="completed" checkpoint=' in tm.log_text(), \
        "checkpoints should complete while the source waits: it has read nothing"
    started = time.monotonic()
    assert tm.terminate(timeout=30) == 0, tm.log_tail()
    assert time.monotonic() - started < 10, "stopping took too long while brokers were down"
    # The checkpoints say "nothing read"; a restart (still without brokers) accepts that.
    tm.start()
    wait_until(lambda: tm.log_text().count("waiting for the Kafka brokers") >= 2, 30,
               "the restarted source to wait for the brokers again", tm)
    assert tm.terminate(timeout=30) == 0, tm.log_tail()


@pytest.mark.parametrize("options, words", [
    ({"startup": "timestamp"}, "needs option 'startup_timestamp'"),
    ({"startup": "timestamp", "startup_timestamp": "yesterday"},
     "option 'startup_timestamp' = 'yesterday' is not a time"),
    ({"startup_timestamp": "1700000000000"}, "'startup_timestamp' is only used with startup"),
    ({"topic": "bad topic!"}, "invalid topic name 'bad topic!'"),
    ({"on_error": "ignore"}, "on_error"),
    # More than one dot: the name is quoted, as docs/connectors/kafka.md says.
    ({'"kafka.enable.auto.commit"': "true"}, "option 'kafka.enable.auto.commit' cannot be set"),
    ({'"kafka.group.id"': "g"}, "use the option 'group_id'"),
    ({"dead_letter_topic": "tmks-same"}, "is also a source topic; choose another "
                                         "'dead_letter_topic'"),
])
def test_bad_options_are_configuration_errors(kcase, options, words):
    opts = {"connector": "kafka", "bootstrap_servers": "127.0.0.1:9", "topic": "tmks-same"}
    opts.update(options)
    job = kcase.job([("src", opts, "", "sink", kcase.out())])
    path = kcase.dir / "job.sql"
    path.write_text(job)
    shown = run_cli(["explain", path], bin=kcase.bin)
    assert shown.returncode == EXIT_CONFIG, shown.stdout + shown.stderr
    assert words in shown.stderr, shown.stderr


def test_explain_describes_the_source(kcase):
    opts = {"connector": "kafka", "bootstrap_servers": "127.0.0.1:9", "topic": "a.b.c, d",
            "group_id": "etl", "startup": "latest", "idle_timeout": "5s"}
    path = kcase.dir / "job.sql"
    path.write_text(kcase.job([("src", opts, "", "sink", kcase.out())]))
    shown = run_cli(["explain", path], bin=kcase.bin)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    for words in ("topics a.b.c, d", "group etl", "startup latest", "on_error dead-letter",
                  "a.b.c.dlq", "idle_timeout 5000 ms: a partition without records"):
        assert words in text, text


def test_a_topic_deleted_while_read_stops_the_job(kcase):
    topic = kcase.topic("deleted")
    kcase.produce(topic, [(b"1", event("c", after=order(1)).encode())])
    out = kcase.out()
    tm = kcase.start(kcase.simple_job(topic, out))
    wait_records(out, 1, tm)
    admin = kcase.kafka.admin()
    admin.delete_topics([topic])[topic].result(30)
    assert tm.wait_exit(90) == EXIT_SOURCE, tm.log_tail()
    assert f"topic '{topic}' was deleted from the Kafka cluster while the job ran" in \
        tm.log_text(), tm.log_tail()
