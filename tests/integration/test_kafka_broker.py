"""The Kafka test harness itself: a real single-node KRaft broker.

These need no tidemark binary.  They show that the broker the other tests
stand on really does what exactly-once delivery rests on: aborted
transactions are invisible to read_committed consumers, an open transaction
holds them back at the last stable offset, transactional offset commits are
kept, and committed data survives a restart and a crash (DESIGN.md §11; the
librdkafka mock cluster does none of this).
"""

import itertools
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from kafkaserver import KafkaError, KafkaServer

KAFKASERVER_PY = Path(__file__).resolve().parents[1] / "lib" / "kafkaserver.py"

_names = itertools.count(1)


def _name(what: str) -> str:
    # Topics and transactional ids of its own keep a test independent of the
    # others on the session broker.
    return f"harness-{what}-{next(_names)}-{uuid.uuid4().hex[:8]}"


def _txn_producer(kafka, **extra):
    from confluent_kafka import Producer

    conf = {"transactional.id": _name("txn")}
    conf.update(extra)
    producer = Producer(kafka.client_conf(**conf))
    producer.init_transactions(30)
    return producer


def _values(messages):
    return [m.value for m in messages]


def test_produce_and_consume_round_trip(kafka):
    topic = _name("roundtrip")
    kafka.create_topic(topic, partitions=3)
    sent = []
    for i in range(9):
        key, value = f"k{i}".encode(), f"v{i}".encode()
        headers = [("op", b"c"), ("seq", str(i).encode())]
        partition, offset = kafka.produce(topic, key, value, headers=headers, partition=i % 3)
        assert partition == i % 3
        sent.append((partition, offset, key, value, headers))
    partition, offset = kafka.produce(topic, None, None, partition=0)  # A tombstone.
    sent.append((partition, offset, None, None, []))

    for isolation in ("read_committed", "read_uncommitted"):
        got = kafka.consume_all(topic, isolation=isolation)
        assert [(m.partition, m.offset, m.key, m.value, m.headers) for m in got] == sorted(
            sent, key=lambda s: s[:2])
        assert all(m.topic == topic and m.timestamp > 0 for m in got)
    assert kafka.end_offsets(topic) == {0: 4, 1: 3, 2: 3}


def test_consume_all_of_an_empty_topic_returns_at_once(kafka):
    topic = _name("empty")
    kafka.create_topic(topic, partitions=2)
    assert kafka.consume_all(topic, timeout=20) == []


def test_read_committed_hides_aborted_and_open_transactions(kafka):
    topic = _name("txn")
    kafka.create_topic(topic)
    producer = _txn_producer(kafka)

    producer.begin_transaction()
    for v in (b"aborted-1", b"aborted-2"):
        producer.produce(topic, key=b"k", value=v)
    producer.flush(30)
    producer.abort_transaction(30)

    producer.begin_transaction()
    for v in (b"committed-1", b"committed-2"):
        producer.produce(topic, key=b"k", value=v)
    producer.commit_transaction(30)

    # The aborted messages are in the log (read_uncommitted sees them), so
    # their absence under read_committed is the broker's and the consumer's
    # doing, not the harness's.
    assert _values(kafka.consume_all(topic, "read_uncommitted")) == [
        b"aborted-1", b"aborted-2", b"committed-1", b"committed-2"]
    assert _values(kafka.consume_all(topic, "read_committed", settle=True)) == [
        b"committed-1", b"committed-2"]

    # An open transaction: read_committed stops at the last stable offset,
    # before it, and still returns; read_uncommitted reads on.
    producer.begin_transaction()
    producer.produce(topic, key=b"k", value=b"open-1")
    producer.flush(30)
    assert _values(kafka.consume_all(topic, "read_committed")) == [b"committed-1", b"committed-2"]
    assert _values(kafka.consume_all(topic, "read_uncommitted"))[-1] == b"open-1"
    with pytest.raises(KafkaError, match="open transactions"):
        kafka.wait_settled(topic, timeout=1)
    lso = kafka.end_offsets(topic, "read_committed")
    assert lso[0] < kafka.end_offsets(topic, "read_uncommitted")[0]

    producer.commit_transaction(30)
    assert _values(kafka.consume_all(topic, "read_committed", settle=True)) == [
        b"committed-1", b"committed-2", b"open-1"]

    # A log that ends in an aborted transaction: no message's offset + 1
    # reaches the end, and consume_all must still see that it is there.
    producer.begin_transaction()
    producer.produce(topic, key=b"k", value=b"aborted-3")
    producer.flush(30)
    producer.abort_transaction(30)
    assert _values(kafka.consume_all(topic, "read_committed", settle=True)) == [
        b"committed-1", b"committed-2", b"open-1"]
    assert kafka.end_offsets(topic, "read_committed") == kafka.end_offsets(topic,
                                                                           "read_uncommitted")


def test_transactional_offset_commits_are_kept_only_on_commit(kafka):
    from confluent_kafka import Consumer, TopicPartition

    topic, group = _name("eos"), _name("group")
    kafka.create_topic(topic)
    consumer = Consumer(kafka.client_conf(**{"group.id": group, "enable.auto.commit": False}))
    try:
        producer = _txn_producer(kafka)
        for offset, commit in ((5, False), (7, True)):
            producer.begin_transaction()
            producer.produce(topic, value=b"x")
            producer.send_offsets_to_transaction([TopicPartition(topic, 0, offset)],
                                                 consumer.consumer_group_metadata(), 30)
            if commit:
                producer.commit_transaction(30)
            else:
                producer.abort_transaction(30)
            # The broker writes the transaction's markers just after it answers the
            # commit, so the committed offset may become readable a moment later.
            want = 7 if commit else -1001  # -1001: none (OFFSET_INVALID)
            deadline = time.monotonic() + 30
            while True:
                committed = consumer.committed([TopicPartition(topic, 0)], timeout=30)[0]
                if (committed.error is None and committed.offset == want) or \
                        time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert committed.error is None
            assert committed.offset == want
    finally:
        consumer.close()


# These start brokers of their own; requesting the session's broker makes them
# skip as it does, when there is no java or mvn.
@pytest.mark.usefixtures("kafka")
def test_restart_and_crash_keep_data_and_ports(tmp_path):
    topic = "kept"
    with KafkaServer(tmp_path / "kafka") as kafka:
        kafka.create_topic(topic)
        kafka.produce(topic, b"k", b"before-restart")
        txn_id = _name("txn")
        producer = _txn_producer(kafka, **{"transactional.id": txn_id})
        producer.begin_transaction()
        producer.produce(topic, key=b"k", value=b"committed-before-restart")
        producer.commit_transaction(30)
        del producer
        bootstrap = kafka.bootstrap

        kafka.restart()
        assert kafka.bootstrap == bootstrap
        # A clean stop: SIGTERM was enough, and the broker says it finished.
        log = kafka.log_tail(10**7)
        assert "[BrokerServer id=1] shut down completed" in log
        assert "SIGKILL" not in log
        # settle: the broker may have stopped before it wrote the commit
        # markers, and writes them now that it is back.
        assert _values(kafka.consume_all(topic, settle=True)) == [b"before-restart",
                                                                 b"committed-before-restart"]
        kafka.produce(topic, b"k", b"after-restart")

        # A paused broker keeps its connections and answers nothing.
        kafka.pause()
        with pytest.raises(KafkaError, match="not acknowledged"):
            kafka.produce(topic, b"k", b"while-paused", timeout=2)
        kafka.resume()
        kafka.produce(topic, b"k", b"after-pause")

        # A crash with a transaction open, as the daemon will see one.
        producer = _txn_producer(kafka, **{"transactional.id": txn_id})
        producer.begin_transaction()
        producer.produce(topic, key=b"k", value=b"open-at-crash")
        producer.flush(30)
        kafka.kill()
        assert not kafka.running
        del producer
        kafka.start_process()
        assert kafka.bootstrap == bootstrap

        # The next producer with the same transactional id fences the old
        # one and aborts its transaction, which read_committed never shows.
        producer = _txn_producer(kafka, **{"transactional.id": txn_id})
        producer.begin_transaction()
        producer.produce(topic, key=b"k", value=b"after-crash")
        producer.commit_transaction(30)
        assert _values(kafka.consume_all(topic, settle=True)) == [
            b"before-restart", b"committed-before-restart", b"after-restart", b"while-paused",
            b"after-pause", b"after-crash"]
        assert b"open-at-crash" in _values(kafka.consume_all(topic, "read_uncommitted"))
        basedir = kafka.basedir
    assert not basedir.exists()


@pytest.mark.usefixtures("kafka")
def test_command_line_start_and_stop(tmp_path):
    basedir = tmp_path / "cli"
    started = subprocess.run([sys.executable, str(KAFKASERVER_PY), "start", str(basedir)],
                             capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stderr
    bootstrap = started.stdout.strip()
    try:
        kafka = KafkaServer.attach(basedir)
        assert kafka.bootstrap == bootstrap
        kafka.create_topic("cli")
        kafka.produce("cli", b"k", b"v")
        assert _values(kafka.consume_all("cli")) == [b"v"]
    finally:
        subprocess.run([sys.executable, str(KAFKASERVER_PY), "stop", str(basedir)],
                       timeout=120, check=True)
    assert not basedir.exists()
