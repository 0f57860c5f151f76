"""Kafka end to end, on real brokers: outages, crashes, and the format round trip.

  * A broker that stops (SIGTERM) or crashes (SIGKILL) mid-stream under a
    PostgreSQL -> Kafka exactly-once job while PostgreSQL keeps committing:
    the job rides a short outage out; an outage past the transaction timeout
    (the broker then aborts the open transaction) stops it, and a restart
    recovers.  Either way read_committed consumers see every row once, in
    commit order, and nothing is acknowledged to PostgreSQL that Kafka has
    not committed.  (Brokers of their own: the session's is never stopped.)
    That stop is a connection error (exit 3) or a failed checkpoint (exit
    4) naming the broker, not the interval.  A SIGTERM while the Kafka sink
    still waits for its brokers at start stops the daemon gracefully (exit 0).
  * The format round trip: PostgreSQL -> Kafka (Debezium JSON with schemas)
    read back by the Kafka source into a file sink gives the same changelog
    as PostgreSQL -> file directly (ops, before/after images of every type,
    source blocks, value schemas), but for the documented split of a
    primary-key change into delete + create.

Kafka -> file and Kafka -> Kafka through kill -9 is test_kafka_etl_crash.py;
fencing by a second instance is test_kafka_sink.py's
test_second_instance_fences_the_first, and dead letters are in
test_kafka_source.py; they are not repeated here.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from tidemark import RowWriter, Tidemark, cdc_job, create_table, read_jsonl, wait_until

EVENTS = "CREATE TABLE public.events (id int PRIMARY KEY, note text);"

# Exit codes a job may stop with when Kafka goes away (docs/connectors/kafka.md):
# 3, the connection (unavailable_timeout, or retries exhausted); 4, a failed
# checkpoint (an abortable transaction error).  Anything else, and any death by
# a signal, is a defect.
EXIT_SOURCE_OR_SINK_CONNECTION = 3
EXIT_CHECKPOINT = 4


def unique(what: str) -> str:
    return f"e2e-{what}-{uuid.uuid4().hex[:10]}"


class Daemons:
    """Daemons a test started; killed at teardown, their logs printed on failure."""

    def __init__(self, tmp_path: Path, bin: Path):
        self.dir = tmp_path
        self.bin = bin
        self.all = []

    def new(self, job_sql: str, name: str = "tm") -> Tidemark:
        tm = Tidemark(job_sql, self.dir / name, bin=self.bin)
        self.all.append(tm)
        return tm


@pytest.fixture
def daemons(tmp_path, tidemark_bin, request):
    d = Daemons(tmp_path, tidemark_bin)
    yield d
    rep = getattr(request.node, "rep_call", None)
    for tm in d.all:
        tm.kill9()
        if rep is None or rep.failed:
            print(f"\n=== {tm.dir} ===\n{tm.log_tail()}")


def existing_topics(kafka) -> set:
    return set(kafka.admin().list_topics(timeout=10).topics)


def committed(kafka, topic: str, settle: bool = False) -> list:
    """Every message read_committed sees in topic ([] while it does not exist)."""
    if topic not in existing_topics(kafka):
        return []
    return kafka.consume_all(topic, isolation="read_committed", timeout=60, settle=settle)


def value_ids(msgs) -> list:
    return [json.loads(m.value)["after"]["id"] for m in msgs if m.value is not None]


def describe_ids(ids, expected) -> str:
    counts = Counter(ids)
    twice = sorted(i for i, n in counts.items() if n > 1)
    missing = sorted(set(expected) - set(counts))
    extra = sorted(set(counts) - set(expected))
    out_of_order = next((f"{a} before {b}" for a, b in zip(ids, ids[1:]) if a > b), None)
    return (f"{len(ids)} ids; twice: {twice[:20]}; missing: {missing[:20]}; "
            f"never written: {extra[:20]}; first out of order: {out_of_order}")


# -- 1. a broker outage under an exactly-once PostgreSQL -> Kafka job -----------------


def own_broker(tmp_path: Path):
    """A broker of the test's own, which it may stop and kill.

    With Kafka's own heartbeats (STEADY_CONF): the restarts here wait for the
    old session to lapse, but a 4 s session on a loaded machine would get the
    only broker fenced by its controller mid-test.
    """
    from kafkaserver import STEADY_CONF, KafkaServer

    return KafkaServer(basedir=tmp_path / "broker", heap="384m", extra_conf=STEADY_CONF)


def eos_sink(server, prefix: str, txn_timeout_ms: int) -> dict:
    """An exactly-once Kafka sink on `server`, with topics and ids of this test's own."""
    return {"connector": "kafka", "bootstrap_servers": server.bootstrap,
            "topic": prefix + ".{schema}.{table}", "progress_topic": prefix + ".progress",
            "transactional_id_prefix": prefix, "delivery": "exactly-once", "schemas": False,
            '"kafka.transaction.timeout.ms"': txn_timeout_ms}


# The outages: the broker stopped cleanly (SIGTERM), or killed (SIGKILL), and
# started again, well within the sink's transaction timeout (5 min here, so
# that a broker slow to come back on a loaded machine is still a short outage:
# with librdkafka's default of 60 s, messages time out and the transaction
# aborts); or stopped for longer than the transaction timeout, so that the
# open transaction cannot commit (its messages time out, and the broker
# aborts it and bumps the producer's epoch): the job must stop or recover,
# and the restart must replay the epoch.
OUTAGES = {
    "stop": dict(down=lambda s: s.stop_process(), seconds=0, txn_timeout_ms=300000),
    "kill": dict(down=lambda s: s.kill(), seconds=0, txn_timeout_ms=300000),
    "past-txn-timeout": dict(down=lambda s: s.stop_process(), seconds=14,
                             txn_timeout_ms=11000),
}


@pytest.mark.deadline(600)
@pytest.mark.parametrize("outage", list(OUTAGES))
def test_broker_outage_under_exactly_once_loses_and_repeats_nothing(cdc, kafka, tmp_path,
                                                                     outage):
    # This test stops its broker, so it runs one of its own (`kafka` is here
    # for its checks that java, mvn and confluent_kafka are installed).
    spec = OUTAGES[outage]
    server = own_broker(tmp_path)
    server.start()
    try:
        prefix = unique("outage")
        topic = f"{prefix}.public.events"
        server.create_topic(topic, partitions=1)
        cdc.sql(EVENTS)
        sink = eos_sink(server, prefix, spec["txn_timeout_ms"])
        job = cdc_job(cdc.source("public.events", "never"), sink,
                      source_name=cdc.source_name) + "SET checkpoint_interval = '300ms';\n"
        tm = cdc.start(job)
        cdc.wait_slot_ready(tm)
        writer = RowWriter(cdc, pause=0.004)
        writer.start()
        exits = []
        try:
            wait_until(lambda: len(committed(server, topic)) >= 100, 120,
                       "100 rows committed to Kafka before the outage", tm)
            spec["down"](server)
            down_at = time.monotonic()
            stopped_lsn = cdc.current_lsn()
            at_stop = writer.next_id
            # PostgreSQL goes on committing while Kafka is away (for at least
            # `seconds`: past the transaction timeout).
            wait_until(lambda: writer.error or (writer.next_id >= at_stop + 300 and
                                                time.monotonic() - down_at >= spec["seconds"]),
                       60, f"300 more rows committed to PostgreSQL while the broker is down "
                           f"(for {spec['seconds']}s at least)")
            assert writer.error is None, writer.error
            # No checkpoint can complete without Kafka's commit, so the slot must
            # not have been acknowledged past what was there at the stop.
            assert cdc.confirmed_flush_lsn() <= stopped_lsn, \
                "the slot was acknowledged past changes Kafka had not committed"
            server.start_process()
            at_start = writer.next_id

            def progressing():
                if not tm.running():
                    rc = tm.poll()
                    exits.append(rc)
                    # Any orderly exit (the code is the next test's business), never
                    # a death by a signal.
                    assert rc is not None and rc > 0, (
                        f"after the broker {outage}, tidemark exited with {rc}\n"
                        f"{tm.log_tail()}")
                    assert len(exits) <= 3, f"tidemark keeps exiting: {exits}\n{tm.log_tail()}"
                    tm.start()
                    return False
                return at_start in value_ids(committed(server, topic))

            wait_until(progressing, 240, f"row {at_start}, written after the broker came "
                                         f"back, to be committed to Kafka")
        finally:
            end = writer.finish()
        expected = list(range(1, end))

        def all_there():
            tm.assert_running("while draining after the outage")
            return set(expected) <= set(value_ids(committed(server, topic)))

        wait_until(all_there, 180, f"ids 1..{end - 1} committed to Kafka", tm)
        assert tm.terminate() == 0, tm.log_tail()
        ids = value_ids(committed(server, topic, settle=True))
        assert ids == expected, f"after the broker {outage}: {describe_ids(ids, expected)}"
        print(f"broker {outage}: {len(ids)} rows; tidemark exits: {exits}")
        if not spec["seconds"]:
            # A short outage is ridden out: the sink waits (up to
            # unavailable_timeout) and the open transaction goes on.
            assert exits == [], f"tidemark stopped during a short outage\n{tm.log_tail()}"
        else:
            assert exits, "the broker aborted the open transaction, yet the job went on"
            assert 'msg="job failed"' in tm.log_text(), tm.log_tail()
    finally:
        server.stop()


@pytest.mark.deadline(300)
def test_outage_past_the_transaction_timeout_stops_with_a_documented_exit(cdc, kafka, tmp_path):
    server = own_broker(tmp_path)
    server.start()
    try:
        prefix = unique("txnto")
        topic = f"{prefix}.public.events"
        server.create_topic(topic, partitions=1)
        cdc.sql(EVENTS)
        sink = eos_sink(server, prefix, 20000)
        # A long interval: right after a commit, the next checkpoint (and
        # commit) is seconds away, so the outage (a kill: it begins at once)
        # finds the sink with a record in an open transaction, and then in
        # the pre-commit flush.
        job = cdc_job(cdc.source("public.events", "never"), sink,
                      source_name=cdc.source_name) + "SET checkpoint_interval = '8s';\n"
        tm = cdc.start(job)
        cdc.wait_slot_ready(tm)
        cdc.sql("INSERT INTO events VALUES (1, 'before');")
        wait_until(lambda: value_ids(committed(server, topic)) == [1], 60, "row 1 committed", tm)
        commits = len(committed(server, prefix + ".progress"))
        wait_until(lambda: len(committed(server, prefix + ".progress")) > commits, 30,
                   "the next checkpoint's commit", tm)
        server.kill()
        cdc.sql("INSERT INTO events VALUES (2, 'during the outage');")
        rc = tm.wait_exit(120)
        failure = [line for line in tm.log_text().splitlines() if 'msg="job failed"' in line]
        assert failure, tm.log_tail()
        # The broker's outage is the cause: a connection error (3) or an
        # aborted checkpoint (4) that names the brokers, never advice to
        # change the interval, and never "another instance took over".
        assert rc in (EXIT_SOURCE_OR_SINK_CONNECTION, EXIT_CHECKPOINT), f"exit code {rc}; {failure}"
        text = "".join(failure)
        assert "checkpoint_interval" not in text and "took over" not in text, failure
        assert server.bootstrap in text or "transaction.timeout.ms" in text, failure
    finally:
        server.stop()


@pytest.mark.deadline(120)
def test_sigterm_while_the_kafka_sink_starts_stops_gracefully(daemons):
    import socket

    # A port nobody listens on: the sink waits for its brokers (30 s at most).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        nobody = f"127.0.0.1:{sock.getsockname()[1]}"
    tm = daemons.new("\n".join([
        create_table("src", {"connector": "kafka", "bootstrap_servers": nobody, "topic": "in"}),
        create_table("out", {"connector": "kafka", "bootstrap_servers": nobody, "topic": "out",
                             "delivery": "exactly-once"}),
        "INSERT INTO out SELECT * FROM src;", "SET checkpoint_interval = '1s';", ""]))
    tm.start()
    wait_until(lambda: 'msg="starting"' in tm.log_text(), 30, "tidemark to start", tm)
    tm.proc.send_signal(signal.SIGTERM)
    # Well before the sink's own 30 s limit: the wait sees the stop.
    rc = tm.wait_exit(25)
    assert rc == 0, f"SIGTERM during start: exit {rc}\n{tm.log_tail()}"
    assert "stopping gracefully" in tm.log_text(), tm.log_tail()
    assert "cannot start the job" not in tm.log_text(), tm.log_tail()


# -- 3. the Debezium format round trip ----------------------------------------------------

TYPES_DDL = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE public.rt_full (
  id int PRIMARY KEY, i2 smallint, i8 bigint, f4 real, f8 double precision,
  n numeric(12,3), nv numeric, t text, vc varchar(20), b bool, d date, tm time,
  ts timestamp, tstz timestamptz, iv interval, j json, jb jsonb, u uuid, by bytea,
  m mood, arr int[]);
ALTER TABLE public.rt_full REPLICA IDENTITY FULL;
CREATE TABLE public.rt_default (k text PRIMARY KEY, v int, note text);
"""

TYPES_CHANGES = r"""
INSERT INTO rt_full VALUES
  (1, 1, 9223372036854775807, 1.5, 2.25, 123456789.125, 1e-20, 'plain', 'vc', true,
   '2024-02-29', '12:34:56.789', '2024-05-01 12:00:00.123456', '2024-05-01 12:00:00+02',
   '1 year 2 mons 3 days 04:05:06', '{"a": [1, 2]}', '{"b": null}',
   'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\xdeadbeef', 'happy', '{1,2,3}'),
  (2, -32768, -9223372036854775808, 'NaN', '-Infinity', -0.001, 12345678901234567890.5,
   E'quote " back \\ tab \t nl \n ✓ 𝄞', '', false, '1970-01-01', '00:00:00',
   '1969-12-31 23:59:59.999999', '1900-01-01 00:00:00+00', '-1 days', '[]', '{}',
   '00000000-0000-0000-0000-000000000000', '\x', 'sad', '{}'),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO rt_default VALUES ('a', 1, 'one'), ('b', 2, NULL), ('c', 3, 'three');
UPDATE rt_full SET t = 'changed', n = 0, arr = '{4}' WHERE id = 1;
UPDATE rt_full SET f4 = 'Infinity', d = 'infinity' WHERE id = 2;
UPDATE rt_default SET v = 20, note = 'two' WHERE k = 'b';
DELETE FROM rt_full WHERE id = 3;
DELETE FROM rt_default WHERE k = 'a';
BEGIN;
INSERT INTO rt_full (id, t) VALUES (4, 'in a transaction');
UPDATE rt_default SET note = NULL WHERE k = 'c';
COMMIT;
UPDATE rt_default SET k = 'z' WHERE k = 'c';
UPDATE rt_full SET id = 40, t = 'moved' WHERE id = 4;
TRUNCATE rt_default;
"""

def lines_by_file(out: Path) -> dict:
    return {p.name: read_jsonl(p) for p in sorted(out.glob("*.jsonl"))}


@pytest.mark.deadline(300)
def test_debezium_round_trip_through_kafka_equals_the_direct_changelog(cdc, kafka, daemons,
                                                                       tmp_path):
    prefix = unique("rt")
    cdc.sql(TYPES_DDL)
    direct = tmp_path / "direct"
    back = tmp_path / "back"
    tables = "public.rt_full,public.rt_default"
    # Job 1: PostgreSQL to a file sink and to Kafka (Debezium JSON with schemas).
    job1 = "\n".join([
        create_table("shop", cdc.source(tables, "never")),
        # Truncates are skipped by default (Debezium's skipped.operations = t); keep them here.
        create_table("direct", {"connector": "file", "path": str(direct),
                                "skipped_operations": "none"}),
        create_table("topics", {"connector": "kafka", "bootstrap_servers": kafka.bootstrap,
                                "topic": prefix + ".{source}.{schema}.{table}",
                                "skipped_operations": "none"}),
        "INSERT INTO direct SELECT * FROM shop;",
        "INSERT INTO topics SELECT * FROM shop;",
        "",
    ])
    tm1 = daemons.new(job1, "pg")
    tm1.start()
    cdc.wait_slot_ready(tm1)
    cdc.sql(TYPES_CHANGES)
    # Inserts, updates, deletes, the transaction's two, two key changes (each a
    # delete and a create, as Debezium writes them), a truncate.
    n_direct = 6 + 3 + 2 + 2 + 2 * 2 + 1
    wait_until(lambda: sum(len(v) for v in lines_by_file(direct).values()) >= n_direct, 60,
               f"{n_direct} lines from PostgreSQL to the file sink", tm1)
    topics = [f"{prefix}.shop.public.rt_full", f"{prefix}.shop.public.rt_default"]
    # Each delete, the two of the key changes too, is followed by a tombstone in Kafka.
    n_kafka = n_direct + 2 + 2
    wait_until(lambda: sum(len(committed(kafka, t)) for t in topics) >= n_kafka, 60,
               f"{n_kafka} messages in Kafka", tm1)
    assert tm1.terminate() == 0, tm1.log_tail()

    # Job 2: those topics, read back by the Kafka source, to a file sink.
    job2 = "\n".join([
        create_table("replay", {"connector": "kafka", "bootstrap_servers": kafka.bootstrap,
                                "topic": ",".join(topics), "group_id": prefix + "-group"}),
        create_table("back", {"connector": "file", "path": str(back),
                              "skipped_operations": "none"}),
        "INSERT INTO back SELECT * FROM replay;",
        "",
    ])
    tm2 = daemons.new(job2, "kafka")
    tm2.start()
    n_back = n_direct
    wait_until(lambda: sum(len(v) for v in lines_by_file(back).values()) >= n_back, 60,
               f"{n_back} lines from Kafka to the file sink", tm2)
    assert tm2.terminate() == 0, tm2.log_tail()

    want = lines_by_file(direct)
    got = lines_by_file(back)
    ops = Counter(line["payload"]["op"] for lines in got.values() for line in lines)
    assert ops == {"c": 9, "u": 4, "d": 4, "t": 1}, ops
    # The record keeps its event's source block, so the default topic template
    # names the files as the direct job did.
    assert sorted(got) == sorted(want), f"files {sorted(got)}, expected {sorted(want)}"
    for name in want:
        w, g = want[name], got[name]
        assert len(g) == len(w), f"{name}: {len(g)} lines, expected {len(w)}"
        for i, (a, b) in enumerate(zip(w, g)):
            pa, pb = a["payload"], b["payload"]
            for field in ("op", "before", "after"):
                assert pb[field] == pa[field], (
                    f"{name} line {i + 1}: {field} differs after the round trip:\n"
                    f"  direct:     {pa[field]}\n  via Kafka:  {pb[field]}")
            assert pb["source"] == pa["source"], (
                f"{name} line {i + 1}: the source block differs:\n"
                f"  direct:     {pa['source']}\n  via Kafka:  {pb['source']}")
            assert b["schema"] == a["schema"], (
                f"{name} line {i + 1}: the value schema differs:\n"
                f"  direct:     {json.dumps(a['schema'])[:1500]}\n"
                f"  via Kafka:  {json.dumps(b['schema'])[:1500]}")
