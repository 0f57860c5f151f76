"""Kafka to file, and Kafka to Kafka, exactly-once through a crash (real broker).

One tidemark job reads Debezium JSON change events of one table from a Kafka
topic (connector = 'kafka', startup = 'earliest') and writes every event to
two sinks at once: an exactly-once Kafka sink (the job's decision log: a
checkpoint is complete once its Kafka transaction committed) and a file sink
(which commits each checkpoint after the Kafka sink did).  Checkpoints every
300 ms.

A background thread (DebeziumProducer) writes the table's change events to
the source topic (three partitions) with a transactional producer, about
one transaction in seven aborted.  Key k is always in partition k % 3, and
each key goes through create -> update ... -> delete (+ tombstone, as
Debezium writes it) -> create ...; every event carries a unique number (the
row's `seq` column and `source.lsn`), so an event written twice, lost or
taken from an aborted transaction is visible.  Some updates carry no before
image and some deletes only the key in it, as Debezium writes them under
REPLICA IDENTITY DEFAULT.

Meanwhile the test kills tidemark with SIGKILL about ten times: at random
moments (some during recovery, some after a checkpoint of the start
completed) and at the runtime failpoints around the commits (between the
pending _metadata and the Kafka commit, before and after a sink's commit,
after a pre-commit, before _metadata), restarting it after each.  At the end
the producer stops, the job catches up and is stopped with SIGTERM (a final
checkpoint; exit code 0).  Then:

  * the file sink's output and the read_committed output of the Kafka sink
    each hold every committed event exactly once and none of the aborted
    ones;
  * with their row images: `after` is the produced row; `before` is the
    produced before image (variant `partition-order`), or the key's previous
    row even where the event did not carry it (variant `keyed-upsert`: the
    source declares a PRIMARY KEY, so the upsert operator runs on two
    workers with keyed RocksDB state, restored at every crash);
  * in order: each source partition's events in offset order
    (`partition-order`), or each key's (`keyed-upsert`, where only that is
    promised);
  * both sinks hold the same sequence per partition / per key, and in Kafka
    every delete is followed by its tombstone;
  * every failpoint kill scheduled fired (one `failpoint fired` line each),
    and at least one restart recovered from the checkpoint the Kafka sink
    committed rather than from a newer pending one.

The seed is fixed and printed; the interleaving of kills with the daemon's
threads is up to the machine.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional

import pytest

from tidemark import create_table, read_jsonl, wait_until

# The Daemons helpers of the Kafka end-to-end tests (tests/integration is on
# sys.path: pytest puts a test file's directory there, as it has no __init__.py).
from test_kafka_e2e import daemons, unique  # noqa: F401

SEED = 20261122
PARTITIONS = 3
KEYS = 30
ABORT_EVERY = 7  # about one transaction in seven is aborted

# What tidemark logs (src/daemon/cli.c) when the decision log's newest
# committed checkpoint is older than the newest (pending) _metadata.
RECOVERED_FROM_DECISION_LOG = ("the newest checkpoint was not committed by the decision log; "
                               "recovering from the one it committed")

# The failpoint kills (src/core/failpoint.h), each once per run.
# checkpoint.after_metadata=kill@1: the first checkpoint of that start is
# written as pending and its Kafka transaction is open; the restart must
# discard it and recover from the one Kafka committed.
FAILPOINT_KILLS = [
    "checkpoint.after_metadata=kill@1",
    "sink.before_commit=kill@1",
    "sink.after_commit=kill@1",
    "sink.after_precommit=kill@2",
    "checkpoint.before_metadata=kill@1",
    "checkpoint.after_metadata=kill@3",
]
# Only a job with keyed state has workers that snapshot it.
KEYED_FAILPOINT_KILLS = ["worker.after_snapshot=kill@2"]
TIMED_KILLS = 5

COMPLETED = 'msg="completed" checkpoint='

KEYED_COLUMNS = "id bigint PRIMARY KEY, gen int, ver int, seq bigint, note text"


def compiled_failpoints(binary: Path, names) -> List[str]:
    """The failpoint names with a call site in the binary (as tests/crash/harness.py reads them)."""
    data = Path(binary).read_bytes()
    return [n for n in names if b"\0" + n.encode() + b"\0" in data]


# -- the producer -------------------------------------------------------------------


class Event(NamedTuple):
    seq: int                 # unique: the row's seq and the event's source.lsn
    key: int
    partition: int
    op: str                  # c, u, d
    before: Optional[dict]   # the before image as produced (None, partial or full)
    after: Optional[dict]
    previous: Optional[dict]  # the key's previous row (None for a create)


def row(key: int, gen: int, ver: int, seq: int) -> dict:
    return {"id": key, "gen": gen, "ver": ver, "seq": seq,
            "note": f"key {key} \"gen\" {gen} ver {ver} \u2713"}


def envelope(ev: Event, txid: int) -> bytes:
    """A Debezium (PostgreSQL connector) value envelope, without the schema part."""
    ts = int(time.time() * 1000)
    return json.dumps({
        "before": ev.before, "after": ev.after,
        "source": {"version": "2.7.0.Final", "connector": "postgresql", "name": "etl",
                   "ts_ms": ts, "snapshot": "false", "db": "shop",
                   "sequence": json.dumps([str(ev.seq - 1), str(ev.seq)]),
                   "schema": "public", "table": "items", "txId": txid, "lsn": ev.seq,
                   "xmin": None},
        "op": ev.op, "ts_ms": ts, "transaction": None}).encode()


class DebeziumProducer(threading.Thread):
    """Writes the table's change events in transactions until stopped.

    `committed` holds the events of committed transactions in produced order
    (so each partition's in offset order); `aborted` the seqs of the others.
    Its own Random, so that its draws do not depend on the test thread's.
    """

    def __init__(self, kafka, topic: str, seed: int):
        super().__init__(daemon=True)
        from confluent_kafka import Producer

        self.topic = topic
        self.rng = random.Random(seed)
        self.producer = Producer(kafka.client_conf(**{
            "transactional.id": unique("producer"), "linger.ms": 5}))
        self.rows: Dict[int, Optional[dict]] = {k: None for k in range(KEYS)}
        self.gens: Counter = Counter()
        self.next_seq = 1
        self.committed: List[Event] = []
        self.aborted: set = set()
        self.transactions = Counter()
        self.stop_event = threading.Event()
        self.error: Optional[BaseException] = None

    def _change(self, rows: dict, gens: Counter, key: int) -> Event:
        """The key's next change after rows (and gens: its creates so far), which it updates."""
        seq, self.next_seq = self.next_seq, self.next_seq + 1
        prev = rows[key]
        if prev is None:
            gens[key] += 1
            ev = Event(seq, key, key % PARTITIONS, "c", None, row(key, gens[key], 1, seq), None)
        elif self.rng.random() < 0.75:
            new = row(key, prev["gen"], prev["ver"] + 1, seq)
            # Debezium under REPLICA IDENTITY DEFAULT: no before image.
            before = None if self.rng.random() < 0.3 else dict(prev)
            ev = Event(seq, key, key % PARTITIONS, "u", before, new, prev)
        else:
            # Under REPLICA IDENTITY DEFAULT the before image holds only the key.
            before = dict(prev) if self.rng.random() < 0.7 else \
                {c: (key if c == "id" else None) for c in prev}
            ev = Event(seq, key, key % PARTITIONS, "d", before, None, prev)
        rows[key] = ev.after
        return ev

    def _transaction(self, txid: int) -> None:
        # The transaction's changes apply to copies; kept only if it commits.
        rows, gens = dict(self.rows), Counter(self.gens)
        events = [self._change(rows, gens, self.rng.randrange(KEYS))
                  for _ in range(self.rng.randint(1, 8))]
        abort = self.rng.randrange(ABORT_EVERY) == 0
        p = self.producer
        p.begin_transaction()
        for ev in events:
            key = json.dumps({"id": ev.key}).encode()
            p.produce(self.topic, key=key, value=envelope(ev, txid), partition=ev.partition)
            if ev.op == "d":
                p.produce(self.topic, key=key, value=None, partition=ev.partition)
            p.poll(0)
        # Every record delivered (so in the log) before the transaction ends: the
        # aborted records are then really there for read_committed to leave out,
        # and librdkafka 2.0 does not abort a transaction whose partitions were
        # not added yet (INVALID_TXN_STATE, confluentinc/librdkafka#4849).
        assert p.flush(60) == 0, "the producer's records were not delivered within 60 s"
        if abort:
            p.abort_transaction(60)
            self.aborted.update(ev.seq for ev in events)
            self.transactions["aborted"] += 1
        else:
            p.commit_transaction(60)
            self.rows, self.gens = rows, gens
            self.committed.extend(events)
            self.transactions["committed"] += 1

    def run(self):
        try:
            self.producer.init_transactions(60)
            txid = 1000
            while not self.stop_event.is_set():
                txid += 1
                self._transaction(txid)
                time.sleep(self.rng.uniform(0.0, 0.03))
        except BaseException as e:  # Reported by finish(), in the test's thread.
            self.error = e

    def finish(self) -> None:
        self.stop_event.set()
        self.join(timeout=120)
        assert not self.is_alive(), "the Debezium producer did not stop"
        assert self.error is None, f"the Debezium producer failed: {self.error!r}"


# -- reading the sinks ----------------------------------------------------------------


class Out(NamedTuple):
    seq: int          # source.lsn of the event this came from
    key: int
    op: str
    before: Optional[dict]
    after: Optional[dict]
    where: str        # for messages


def _out(p: dict, where: str) -> Out:
    image = p.get("after") or p.get("before") or {}
    lsn = (p.get("source") or {}).get("lsn")
    return Out(lsn, image.get("id"), p.get("op"), p.get("before"), p.get("after"), where)


def file_output(out_dir: Path) -> List[Out]:
    outs = []
    for path in sorted(out_dir.glob("*.jsonl")):
        for i, line in enumerate(read_jsonl(path), start=1):
            outs.append(_out(line, f"{path.name}:{i}"))
    return outs


def kafka_output(kafka, topic: str, keyed: bool) -> (List[Out], List[str]):
    """The sink topic's events (partitions one after the other, each in offset order),
    and what is wrong with its keys and tombstones."""
    msgs = kafka.consume_all(topic, isolation="read_committed", timeout=120, settle=True)
    outs, problems = [], []
    by_partition = defaultdict(list)
    for m in msgs:
        by_partition[m.partition].append(m)
    partition_of_key = {}
    for partition in sorted(by_partition):
        part = by_partition[partition]
        for i, m in enumerate(part):
            where = f"{m.topic}[{m.partition}]@{m.offset}"
            if m.value is None:
                prev = part[i - 1] if i > 0 else None
                if not (prev is not None and prev.key == m.key and prev.value is not None
                        and json.loads(prev.value).get("op") == "d"):
                    problems.append(f"{where}: tombstone that does not follow a delete of "
                                    f"its key {m.key!r}")
                continue
            o = _out(json.loads(m.value), where)
            outs.append(o)
            if keyed:
                if json.loads(m.key) != {"id": o.key}:
                    problems.append(f"{where}: key {m.key!r}, expected the primary key "
                                    f"{{'id': {o.key}}}")
                first = partition_of_key.setdefault(o.key, m.partition)
                if first != m.partition:
                    problems.append(f"key {o.key} on partitions {first} and {m.partition}")
            # Without a primary key the key is null (Debezium's), and a null key
            # gets no tombstone: there is nothing for compaction to drop.
            if o.op == "d" and keyed:
                nxt = part[i + 1] if i + 1 < len(part) else None
                if nxt is None or nxt.value is not None or nxt.key != m.key:
                    problems.append(f"{where}: delete (seq {o.seq}) not followed by a "
                                    f"tombstone of its key")
    return outs, problems


def check_sink(name: str, outs: List[Out], producer: DebeziumProducer, keyed: bool) -> list:
    """What is wrong with one sink's output, as a list of lines (empty: nothing)."""
    problems = []
    expected = {ev.seq: ev for ev in producer.committed}
    counts = Counter(o.seq for o in outs)
    twice = sorted(s for s, n in counts.items() if n > 1)
    missing = sorted(set(expected) - set(counts))
    aborted = sorted(set(counts) & producer.aborted)
    unknown = sorted(set(counts) - set(expected) - producer.aborted)
    if twice:
        problems.append(f"{len(twice)} events more than once, e.g. seq {twice[:15]}")
    if missing:
        problems.append(f"{len(missing)} committed events missing, e.g. seq {missing[:15]}")
    if aborted:
        problems.append(f"{len(aborted)} events of aborted transactions, e.g. seq {aborted[:15]}")
    if unknown:
        problems.append(f"{len(unknown)} events never produced, e.g. seq {unknown[:15]}")

    # Row images.
    bad_images = []
    for o in outs:
        ev = expected.get(o.seq)
        if ev is None:
            continue
        # The upsert operator's before is the stored row (the key's previous row),
        # whatever the event carried; without it the event's own before image.
        want_before = ev.previous if keyed else ev.before
        if (o.key, o.op, o.after, o.before) != (ev.key, ev.op, ev.after, want_before):
            bad_images.append(f"{o.where}: seq {o.seq} key {o.key} op {o.op} "
                              f"before {o.before} after {o.after}; produced: key {ev.key} "
                              f"op {ev.op} before {ev.before} after {ev.after}; "
                              f"expected before {want_before}")
    if bad_images:
        problems.append(f"{len(bad_images)} events with wrong op or row images:\n    " +
                        "\n    ".join(bad_images[:8]))

    # Order: each source partition's events in offset order, or each key's.
    group = (lambda e: e.key) if keyed else (lambda e: e.key % PARTITIONS)
    want, got = defaultdict(list), defaultdict(list)
    for ev in producer.committed:
        want[group(ev)].append(ev.seq)
    for o in outs:
        if o.seq in expected:
            got[group(expected[o.seq])].append(o.seq)
    what = "key" if keyed else "source partition"
    for g in sorted(want):
        if not twice and not missing and got[g] != want[g]:
            at = next((i for i, (a, b) in enumerate(zip(got[g], want[g])) if a != b), None)
            problems.append(f"{what} {g}: out of order at position {at}: got "
                            f"{got[g][max(0, (at or 0) - 3):(at or 0) + 4]}, produced "
                            f"{want[g][max(0, (at or 0) - 3):(at or 0) + 4]}")
    return [f"{name}: {p}" for p in problems]


def sequences(outs: List[Out], keyed: bool) -> dict:
    """{source partition or key: [(seq, op, before, after), ...]} in output order."""
    seqs = defaultdict(list)
    for o in outs:
        seqs[o.key if keyed else o.key % PARTITIONS].append((o.seq, o.op, o.before, o.after))
    return dict(seqs)


# -- the test --------------------------------------------------------------------------


@pytest.mark.deadline(600)
@pytest.mark.parametrize("keyed", [False, True], ids=["partition-order", "keyed-upsert"])
def test_kafka_to_file_and_kafka_exactly_once_through_kills(kafka, daemons, keyed):
    seed = SEED + (1 if keyed else 0)
    print(f"seed {seed} ({'keyed-upsert' if keyed else 'partition-order'})")
    rng = random.Random(seed)
    started = time.monotonic()

    prefix = unique("etl")
    source_topic = f"{prefix}.in"
    sink_topic = f"{prefix}.out"
    progress_topic = f"{prefix}.progress"
    kafka.create_topic(source_topic, partitions=PARTITIONS)
    # Without a primary key the sink's message key is null (Debezium's), which
    # scatters a source partition over the sink's partitions: one partition
    # keeps its order readable.  With one, the key's partition keeps it.
    kafka.create_topic(sink_topic, partitions=3 if keyed else 1)
    kafka.create_topic(progress_topic, partitions=1, config={"cleanup.policy": "compact"})
    out_dir = daemons.dir / "files"

    job = "\n".join([
        create_table("src", {"connector": "kafka", "bootstrap_servers": kafka.bootstrap,
                             "topic": source_topic, "format": "debezium-json",
                             "startup": "earliest", "group_id": prefix + "-group"},
                     KEYED_COLUMNS if keyed else ""),
        create_table("to_kafka", {"connector": "kafka", "bootstrap_servers": kafka.bootstrap,
                                  "topic": sink_topic, "format": "debezium-json",
                                  "delivery": "exactly-once", "schemas": False,
                                  "progress_topic": progress_topic,
                                  "transactional_id_prefix": prefix, "create_topics": False}),
        create_table("to_file", {"connector": "file", "path": str(out_dir),
                                 "format": "debezium-json", "schemas": False}),
        "INSERT INTO to_kafka SELECT * FROM src;",
        "INSERT INTO to_file SELECT * FROM src;",
        "SET checkpoint_interval = '300ms';",
        "SET admin_address = '127.0.0.1:0';",
        "SET parallelism = 2;" if keyed else "",
        "",
    ])
    tm = daemons.new(job)

    wanted = FAILPOINT_KILLS + (KEYED_FAILPOINT_KILLS if keyed else [])
    available = set(compiled_failpoints(tm.bin, {s.split("=")[0] for s in wanted}))
    assert "checkpoint.after_metadata" in available, \
        f"{tm.bin} has no checkpoint.after_metadata failpoint; this test needs it"
    schedule = [("failpoint", s) for s in wanted if s.split("=")[0] in available]
    schedule += [("timed", None)] * TIMED_KILLS
    rng.shuffle(schedule)
    print(f"kill schedule: {[s or k for k, s in schedule]}")

    producer = DebeziumProducer(kafka, source_topic, seed + 1000)
    producer.start()
    kinds = Counter()
    failpoint_kills = 0
    try:
        wait_until(lambda: producer.error or len(producer.committed) >= 50, 60,
                   "the producer's first 50 committed events")
        assert producer.error is None, producer.error
        for n, (kind, spec) in enumerate(schedule, start=1):
            assert producer.is_alive(), f"the producer stopped early: {producer.error!r}"
            if kind == "failpoint":
                offset = tm.start_with(spec, seed=rng.randrange(1 << 32))
                # The failpoint kills the daemon itself; a checkpoint every 300 ms
                # reaches any of them within a few seconds of a start.
                rc = tm.wait_exit(120)
                text = tm.section(offset)
                name = spec.split("=")[0]
                assert rc == -signal.SIGKILL and f'msg="failpoint fired" name={name} ' in text, \
                    f"start #{tm.starts} with {spec}: exit {rc}, failpoint not fired\n" \
                    f"{tm.log_tail()}"
                failpoint_kills += 1
                kinds[name] += 1
            else:
                offset = tm.start_with()
                if rng.random() < 0.35:
                    # Early: during recovery, the decision log's read or the first epoch.
                    kinds["timed (early)"] += 1
                    delay = rng.uniform(0.0, 1.5)
                else:
                    # After this start completed a checkpoint, so restores differ.
                    kinds["timed"] += 1
                    wait_until(lambda: COMPLETED in tm.section(offset),
                               120, "a completed checkpoint after the restart", tm)
                    delay = rng.uniform(0.0, 1.5)
                end = time.monotonic() + delay
                while time.monotonic() < end:
                    tm.assert_running(f"(start #{tm.starts}, before its timed kill)")
                    time.sleep(0.01)
                tm.assert_running(f"(start #{tm.starts}, before its timed kill)")
                tm.kill9()
            text = tm.section(offset)
            print(f"[{time.monotonic() - started:6.1f}s] kill {n}/{len(schedule)} "
                  f"{spec or kind}: checkpoints completed in this start "
                  f"{text.count(COMPLETED)}, "
                  f"committed events so far {len(producer.committed)}")
            time.sleep(rng.uniform(0.0, 0.4))
    finally:
        producer.finish()

    # The last start: no failpoints; it must catch up, then stop gracefully.
    expected = {ev.seq for ev in producer.committed}
    tm.start_with()

    def caught_up():
        return expected <= {o.seq for o in file_output(out_dir)}

    wait_until(caught_up, 240, f"all {len(expected)} committed events in the file sink", tm)
    assert tm.terminate(timeout=120) == 0, tm.log_tail()

    files = file_output(out_dir)
    topic_outs, kafka_problems = kafka_output(kafka, sink_topic, keyed)
    problems = (check_sink("file sink", files, producer, keyed) +
                check_sink("Kafka sink", topic_outs, producer, keyed) +
                [f"Kafka sink: {p}" for p in kafka_problems[:20]])
    if not problems:
        # Both sinks hold the same sequence, per source partition or per key.
        a, b = sequences(files, keyed), sequences(topic_outs, keyed)
        for g in sorted(set(a) | set(b)):
            if a.get(g) != b.get(g):
                problems.append(f"{'key' if keyed else 'partition'} {g}: the sinks differ: "
                                f"file {[x[0] for x in a.get(g, [])][:20]}, Kafka "
                                f"{[x[0] for x in b.get(g, [])][:20]}")

    log = tm.log_text()
    fired = log.count('msg="failpoint fired"')
    summary = (f"seed {seed}: {len(producer.committed)} committed events "
               f"({producer.transactions['committed']} transactions), {len(producer.aborted)} "
               f"aborted events ({producer.transactions['aborted']} transactions); "
               f"{sum(kinds.values())} kills {dict(kinds)}; {tm.starts} starts; "
               f"{log.count(COMPLETED)} checkpoints completed; "
               f"{log.count(RECOVERED_FROM_DECISION_LOG)} pending checkpoints discarded; "
               f"{time.monotonic() - started:.0f}s")
    print(summary)
    assert not problems, summary + "\n" + "\n".join(problems)
    scheduled = sum(1 for kind, _ in schedule if kind == "failpoint")
    assert failpoint_kills == scheduled, f"{failpoint_kills} failpoint kills of {scheduled}"
    assert fired == failpoint_kills, \
        f"{fired} 'failpoint fired' lines for {failpoint_kills} failpoint kills\n{tm.log_tail()}"
    assert RECOVERED_FROM_DECISION_LOG in log, \
        f"no restart recovered from the checkpoint the Kafka sink committed\n{tm.log_tail()}"
