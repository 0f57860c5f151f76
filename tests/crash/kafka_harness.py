#!/usr/bin/env python3
"""The crash harness with the Kafka sink: PostgreSQL -> Kafka, exactly-once.

The sidecar use of DESIGN §1 under kill -9.  It runs harness.py's workload
(workload.py) and job sources, kills tidemark the way harness.py does, and
judges the output with checker.py; what changes is the sink and how its
output is read:

  * the job's sink is `connector = 'kafka'`, `delivery = 'exactly-once'`, so
    it is the job's decision log (DESIGN §6): checkpoint N completes only
    when its Kafka transaction (N's records plus the progress record)
    commits, after chk-N/_metadata was written as *pending*;
  * the kills include every runtime failpoint (the file sink's are left out,
    there is no file sink): each once at a fixed hit first
    (`checkpoint.after_metadata`, between the pending _metadata and the Kafka
    commit; `sink.after_commit`, Kafka committed and the runtime never learnt
    it; `sink.before_commit`, `sink.after_precommit`,
    `checkpoint.before_metadata`, `worker.after_snapshot`), then mixed at
    random with timed kills and kills inside transactions;
  * at the end a `read_committed` consumer reads every topic; the messages
    become checker.Event objects, and checker.check() compares them with the
    workload's log exactly as it does for the file sink (every committed
    change once, in commit order per key and, on single-partition topics,
    along the topic; row images; the snapshot cut; replay = database).
    On top: each message's key is the row's primary key, each delete is
    followed by its tombstone (same key, same partition) and each tombstone
    follows a delete, and each key stays on one partition.

The shop tables' topics have one partition (so commit order along a topic is
checked); the keyed ledger table's topic has three (so per-key order is
checked across partitions, with the upsert operator's parallelism 2).

KafkaCrashRun extends harness.py's CrashRun: the kills (timed, inside
transactions, at failpoints) and their random loop are shared, so both
harnesses crash the daemon the same way; the job, the snapshot kills, the
fixed failpoints and the verdict (read back from Kafka) are this file's.

    python3 tests/crash/kafka_harness.py --kills 200 --seed 7

starts its own PostgreSQL 15 and Kafka broker.  A seed fixes the workload and
the kill schedule (kinds, delays, failpoints and their seeds); how the kills
interleave with the daemon's threads is up to the machine.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
sys.path.insert(0, str(HERE))

import checker  # noqa: E402
from harness import (GROUPS, CrashRun,  # noqa: E402
                     HarnessError, harness_main)
from tidemark import create_table  # noqa: E402
from workload import TABLES  # noqa: E402

# The runtime's failpoints; the file sink's (file.*) have no call site on the
# Kafka path.
KAFKA_FAILPOINTS = [
    "checkpoint.before_metadata",
    "checkpoint.after_metadata",
    "sink.after_precommit",
    "sink.before_commit",
    "sink.after_commit",
    "worker.after_snapshot",
]

# Each run kills at these first (those compiled in), once each, after the
# snapshot phase.  checkpoint.after_metadata=kill@1: the first checkpoint of a
# start has its _metadata pending and its Kafka transaction open; the restart
# must discard it.  sink.after_commit=kill@1: Kafka committed it and the
# runtime never learnt it; the restart must restore it, not an older one.
FORCED_FAILPOINTS = [
    "checkpoint.after_metadata=kill@1",
    "sink.after_commit=kill@1",
    "sink.before_commit=kill@2",
    "sink.after_precommit=kill@2",
    "checkpoint.before_metadata=kill@3",
    "checkpoint.after_metadata=kill@4",
    "worker.after_snapshot=kill@3",
    "sink.after_commit=kill@3",
]

# Partitions of each table's topic.
PARTITIONS = {"accounts": 1, "items": 1, "bulk": 1, "fence": 1, "ledger": 3}

# What the sources log about their snapshots.
LOG = {
    "reading bulk": r'msg="snapshot of table started" source=shop table=public\.bulk ',
    "shop read": r'msg="snapshot read" source=shop ',
}
# Once a source's snapshot is committed and marked done (snapshot.done): when
# its checkpoint is acknowledged, when a restart finds it committed by the
# restored checkpoint, or when it starts with the marker there already.
MARKED = {g.source: (rf'msg="snapshot acknowledged" source={g.source} ',
                     rf'msg="snapshot was committed by the restored checkpoint; marking it done" '
                     rf'source={g.source} ',
                     rf'msg="source opened" source={g.source} .* snapshot=no ')
          for g in GROUPS}


class KafkaCrashRun(CrashRun):
    """One run: a database, a workload, a daemon with an exactly-once Kafka sink,
    `kills` crashes, and the checker's verdict on what Kafka committed.

    The kills and their loop are CrashRun's; the job, the snapshot kills, the
    fixed failpoints and the verdict are this class's own.
    """

    # A kill may find the daemon gone (noted in the kill's line, not a failure).
    tolerate_exit = True

    def __init__(self, pg, kafka, workdir: Path, seed: int, kills: int, **kw):
        super().__init__(pg, workdir, seed, kills, **kw)
        self.kafka = kafka
        # Its own database (so slots) and topics, apart from any other run.
        self.db = f"kcrash_{seed % 1_000_000}"
        self.prefix = f"kc{seed % 1_000_000}-{uuid.uuid4().hex[:8]}"
        self.available = [n for n in self.available if n in KAFKA_FAILPOINTS]
        # Seconds the bulk table takes to read, at the least (2000 chunk queries).
        self.snapshot_est = 0.25 * (self.bulk_rows / self.snapshot_chunk) / 2000

    # -- the job ------------------------------------------------------------------

    def topic(self, group: checker.Group, table: str) -> str:
        return f"{self.prefix}.{group.source}.public.{table}"

    @property
    def progress_topic(self) -> str:
        return f"{self.prefix}.progress"

    def job_sql(self) -> str:
        shop, keyed = GROUPS
        sink = {"connector": "kafka", "bootstrap_servers": self.kafka.bootstrap,
                "topic": self.prefix + ".{source}.{schema}.{table}",
                "delivery": "exactly-once", "schemas": False,
                "progress_topic": self.progress_topic,
                "transactional_id_prefix": self.prefix,
                # The topics exist (setup); a missing one is a harness error.
                "create_topics": False}
        return "\n".join([
            *self.source_tables(),
            create_table("out", sink),
            f"INSERT INTO out SELECT * FROM {shop.source};",
            f"INSERT INTO out SELECT * FROM {keyed.source};",
            f"SET checkpoint_interval = '{self.checkpoint_interval}';",
            "SET parallelism = 2;",
            "SET admin_address = '127.0.0.1:0';",
            "",
        ])

    def setup(self) -> None:
        for group in GROUPS:
            for table in group.tables:
                self.kafka.create_topic(self.topic(group, table), partitions=PARTITIONS[table])
        self.kafka.create_topic(self.progress_topic, partitions=1,
                                config={"cleanup.policy": "compact"})
        super().setup()  # the database, the workload and the daemon, with this job

    # -- helpers -------------------------------------------------------------------------

    def snapshots_marked(self, offset: int) -> bool:
        return all(self.logged(offset, *pats) for pats in MARKED.values())

    # -- the kill kinds ---------------------------------------------------------------------

    def kill_in_snapshot(self) -> bool:
        """One kill around the shop source's snapshot; False once it is marked done.

        Mostly while the bulk table is read; sometimes after it is read,
        before or after the checkpoint that commits it (its Kafka
        transaction) and before the source marks it done (snapshot.done):
        the restart must then stream on, not read the tables again.
        """
        offset = self.tm.start_with()
        if not self.wait_log(offset, LOG["reading bulk"], *MARKED["shop"], timeout=60):
            if not self.tm.running():
                self.died_by_itself(offset, False)
            raise HarnessError(f"the snapshot did not start within 60s\n{self.tm.log_tail()}")
        delay = self.rng.uniform(0.0, 3 * self.snapshot_est)
        if not self.sleep(delay):
            self.died_by_itself(offset, False)
        text = self.tm.section(offset)
        if self.snapshots_marked(offset):
            kind = "timed (after the snapshot)"
        elif 'msg="completed" checkpoint=' in text:
            kind = "snapshot (checkpoint written, unmarked)"
        elif re.search(LOG["shop read"], text):
            kind = "snapshot (read, not committed)"
        else:
            kind = "snapshot (reading)"
        self.kill(kind, offset, f"{delay:.2f}s after 'reading bulk'")
        return kind != "timed (after the snapshot)"

    # -- the run ------------------------------------------------------------------------------

    def banner(self) -> str:
        return f"{super().banner()} topics={self.prefix}.*"

    def _run(self) -> checker.Report:
        try:
            for _ in range(self.snapshot_kills):
                self.check_time("in the snapshot phase")
                in_snapshot = self.kill_in_snapshot()
                self.downtime()
                if not in_snapshot:
                    break  # marked done: later starts do not read the tables again
            for spec in FORCED_FAILPOINTS:
                if self.kills >= self.kills_wanted:
                    break
                if spec.split("=", 1)[0] not in self.available:
                    continue
                self.check_time("at the fixed failpoints")
                self.check_generator()
                self.kill_at_failpoint(spec)
                self.downtime()
            self.random_kills()
        finally:
            self.gen.finish()
        return self.finish()

    # -- the end ------------------------------------------------------------------------

    def finish(self) -> checker.Report:
        fence = self.stop_workload()
        offset = self.tm.start_with()
        # Each fence change's row, by its unique ver, committed in Kafka.
        wanted = {}
        for ch in fence.changes:
            group = next(g for g in GROUPS if ch.table in g.tables)
            wanted[self.topic(group, ch.table)] = re.compile(rb'"ver":%d[,}]' % ch.after["ver"])
        reader = TopicReader(self.kafka, list(wanted))
        try:
            end = min(self.deadline, time.monotonic() + 300)
            while True:
                reader.poll(0.3)
                if all(any(v is not None and row.search(v) for v in reader.read[t])
                       for t, row in wanted.items()):
                    break
                if not self.tm.running():
                    self.died_by_itself(offset, False)
                if time.monotonic() > end:
                    raise HarnessError(f"the fence (txId {fence.txid}) was not committed to "
                                       f"{sorted(wanted)} within the time left\n"
                                       f"{self.tm.log_tail()}")
        finally:
            reader.close()
        rc = self.tm.terminate(timeout=120)
        if rc != 0:
            raise HarnessError(f"tidemark exited with {rc} after SIGTERM\n{self.tm.log_tail()}")
        self.say(f"drained: the fence is committed in Kafka after {self.tm.starts} starts")
        final_state = self.gen.database_state()
        report = self.check_topics(final_state)
        for table, rows in final_state.items():
            if rows != self.gen.model.rows[table]:
                report.add("harness error",
                           f"the workload's model of {table} differs from the database")
        log = self.tm.log_text()
        kinds = ", ".join(f"{k}: {v}" for k, v in sorted(self.kinds.items()))
        report.stats.update({
            "kills": f"{self.kills} ({kinds})",
            "starts": self.tm.starts,
            "checkpoints completed": log.count('msg="completed" checkpoint='),
            "decision log reads": log.count('msg="decision log read"'),
            "pending checkpoints discarded by the decision log": log.count(
                "the newest checkpoint was not committed by the decision log"),
            "snapshots restarted": log.count("dropping slot of an unfinished snapshot"),
            "snapshots found committed by the restored checkpoint": log.count(
                "snapshot was committed by the restored checkpoint"),
            "seconds": f"{time.monotonic() - self.started:.0f}",
        })
        (self.workdir / "report.txt").write_text(report.text() + "\n")
        return report

    def check_topics(self, final_state) -> checker.Report:
        events: Dict[str, List[checker.Event]] = {}
        extra: List[Tuple[str, str]] = []
        counts = Counter()
        for group in GROUPS:
            for table in group.tables:
                topic = self.topic(group, table)
                msgs = self.kafka.consume_all(topic, isolation="read_committed", timeout=120,
                                              settle=True)
                evs, problems, n = messages_to_events(table, msgs)
                events[table] = evs
                extra.extend(problems)
                counts.update(n)
        report = checker.check(self.gen.log, events, final_state, GROUPS)
        for kind, text in extra:
            report.add(kind, text)
        report.stats["kafka messages"] = (f"{counts['events']} events, "
                                          f"{counts['tombstones']} tombstones")
        aborted = sum(len(self.kafka.consume_all(self.topic(g, t), "read_uncommitted",
                                                 timeout=120))
                      for g in GROUPS for t in g.tables)
        report.stats["records in aborted transactions (read_uncommitted only)"] = \
            aborted - counts["events"] - counts["tombstones"]
        return report


# -- Kafka messages as checker events ----------------------------------------------------

def messages_to_events(table: str, msgs) -> Tuple[List[checker.Event], List[Tuple[str, str]],
                                                  Counter]:
    """The events of one topic (partitions one after the other, each in offset order),
    and what is wrong with keys and tombstones."""
    t = TABLES[table]
    events: List[checker.Event] = []
    problems: List[Tuple[str, str]] = []
    counts = Counter()
    by_partition = defaultdict(list)
    for m in msgs:
        by_partition[m.partition].append(m)
    partition_of_key: Dict[tuple, int] = {}
    for partition in sorted(by_partition):
        part = by_partition[partition]
        for i, m in enumerate(part):
            where = f"{m.topic}[{m.partition}]@{m.offset}"
            try:
                key = json.loads(m.key) if m.key is not None else None
            except ValueError as e:
                problems.append(("unreadable output", f"{where}: key is not JSON ({e})"))
                continue
            if m.value is None:
                counts["tombstones"] += 1
                prev = part[i - 1] if i > 0 else None
                ok = prev is not None and prev.key == m.key and prev.value is not None \
                    and json.loads(prev.value).get("op") == "d"
                if not ok:
                    problems.append(("tombstone without its delete",
                                     f"{table} {where}: tombstone for key {key} does not follow "
                                     f"a delete of that key"))
                continue
            counts["events"] += 1
            try:
                p = checker._payload(json.loads(m.value))
            except ValueError as e:
                problems.append(("unreadable output", f"{where}: value is not JSON ({e}): "
                                                      f"{m.value[:200]!r}"))
                continue
            src = p.get("source") or {}
            image = p.get("after") or p.get("before") or {}
            row_key = tuple(image.get(k) for k in t.key)
            ev = checker.Event(table, p.get("op"), src.get("txId"), src.get("lsn"), row_key,
                               p.get("before"), p.get("after"), where)
            events.append(ev)
            want_key = {k: image.get(k) for k in t.key}
            if key != want_key:
                problems.append(("wrong message key",
                                 f"{table} {where}: key {key}, expected the primary key "
                                 f"{want_key} ({ev.describe()})"))
            first = partition_of_key.setdefault(row_key, m.partition)
            if first != m.partition:
                problems.append(("key on two partitions",
                                 f"{table} key={row_key}: on partitions {first} and "
                                 f"{m.partition} ({ev.describe()})"))
            if ev.op == "d":
                nxt = part[i + 1] if i + 1 < len(part) else None
                if nxt is None or nxt.value is not None or nxt.key != m.key:
                    problems.append(("delete without its tombstone",
                                     f"{table} {where}: {ev.describe()} is not followed by a "
                                     f"tombstone of its key"))
    return events, problems, counts


class TopicReader:
    """A read_committed consumer over every partition of some topics, from offset 0."""

    def __init__(self, kafka, topics: Sequence[str]):
        from confluent_kafka import Consumer, TopicPartition

        self.consumer = Consumer(kafka.client_conf(**{
            "group.id": f"kcrash-reader-{uuid.uuid4().hex}", "enable.auto.commit": False,
            "isolation.level": "read_committed", "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 50}))
        self.consumer.assign([TopicPartition(t, p, 0) for t in topics
                              for p in kafka.partitions(t)])
        self.read: Dict[str, list] = {t: [] for t in topics}  # values, in arrival order

    def poll(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            m = self.consumer.poll(0.05)
            if m is None or m.error() is not None:
                continue
            self.read[m.topic()].append(m.value())

    def close(self) -> None:
        self.consumer.close()


def run_kafka_harness(pg, kafka, workdir: Path, seed: int, kills: int, **kw) -> checker.Report:
    return KafkaCrashRun(pg, kafka, workdir, seed, kills, **kw).run()


@contextlib.contextmanager
def servers(workdir: Path):
    """PostgreSQL and a Kafka broker for a command-line run, as (pg, kafka)."""
    from kafkaserver import STEADY_CONF, KafkaServer
    from pgserver import PgServer

    with PgServer(extra_conf={"logical_decoding_work_mem": "64kB"}, fsync_off=True) as pg, \
            KafkaServer(workdir / "broker", extra_conf=STEADY_CONF) as kafka:
        yield pg, kafka


def main(argv=None) -> int:
    return harness_main(argv, __doc__, "Kafka crash harness", "tidemark-kcrash-", servers,
                        lambda both, *args, **kw: run_kafka_harness(*both, *args, **kw))


if __name__ == "__main__":
    sys.exit(main())
