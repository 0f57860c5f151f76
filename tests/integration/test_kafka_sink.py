"""The Kafka sink, against a real broker, with PostgreSQL as the source.

At-least-once: inserts, updates and deletes arrive keyed by the Debezium key,
on the partition a Java client would pick, a delete followed by a tombstone
(or not, with tombstones = false); a topic template routes each table to its
own topic, which the sink creates; the json and upsert formats; a broker
outage stalls the job, acknowledges nothing, and loses nothing.

Exactly-once: nothing is visible to read_committed consumers before its
checkpoint commits, a graceful stop commits a final checkpoint, a restart
adds nothing twice, each commit writes a progress record; under load (with
records held between pre-commit and commit) and across kill -9 every change
is committed exactly once, in order.  The configuration checks (transaction
timeout, checkpoints), fencing by a second instance, and secrets kept out of
logs and explain.

Every test uses topics, a progress topic and a transactional id prefix of its
own, so tests on the session broker never see each other's records.
"""

import json
import random
import time
import uuid

import pytest

from kafkaserver import KafkaServer
from tidemark import EXIT_CONFIG, cdc_job, create_table, run_cli, wait_until

ORDERS = "CREATE TABLE public.orders (id int PRIMARY KEY, customer_id int, status text);"
CUSTOMERS = "CREATE TABLE public.customers (id int PRIMARY KEY, name text);"
EVENTS = "CREATE TABLE public.events (id int PRIMARY KEY, note text);"


def unique(what: str) -> str:
    return f"ks-{what}-{uuid.uuid4().hex[:10]}"


def kafka_sink(kafka, prefix: str, **extra) -> dict:
    """Sink options with this test's own topics, progress topic and transactional ids."""
    opts = {"connector": "kafka", "bootstrap_servers": kafka.bootstrap,
            "topic": prefix + ".{schema}.{table}",
            "progress_topic": prefix + ".progress",
            "transactional_id_prefix": prefix}
    opts.update(extra)
    return opts


def kafka_job(cdc, kafka, prefix, tables="public.orders", sink=None, source=None,
              settings=""):
    job = cdc_job(cdc.source(tables, "never", **(source or {})),
                  kafka_sink(kafka, prefix, **(sink or {})), source_name=cdc.source_name)
    return job + settings


def messages(kafka, topic, isolation="read_committed"):
    """Every message of a topic, or [] while it does not exist yet.

    Existence is checked on the list of all topics: asking the broker about
    one topic would make it create the topic (auto.create.topics.enable),
    before the sink could create it as configured.
    """
    if topic not in kafka.admin().list_topics(timeout=10).topics:
        return []
    return kafka.consume_all(topic, isolation=isolation, timeout=30)


def wait_messages(kafka, topic, n, tm, timeout=90, isolation="read_committed"):
    """Waits until a topic holds at least n messages; returns them all."""
    got = []

    def enough():
        nonlocal got
        got = messages(kafka, topic, isolation)
        return len(got) >= n

    try:
        wait_until(enough, timeout, f"{n} messages in topic {topic} ({isolation})", tm)
    except AssertionError as e:
        raise AssertionError(f"{e}\n(the topic had {len(got)}: {summary(got)})") from None
    return got


def decode(m):
    key = json.loads(m.key) if m.key is not None else None
    value = json.loads(m.value) if m.value is not None else None
    return key, value


def summary(msgs):
    return [(m.partition, m.key and m.key[:60], m.value and m.value[:60]) for m in msgs][:20]


def key_payload(m):
    key = json.loads(m.key)
    return key["payload"] if "payload" in key and "schema" in key else key


def insert_events(cdc, ids):
    for i in ids:
        cdc.sql(f"INSERT INTO events VALUES ({i}, 'n{i}');")


def event_ids(msgs):
    return [json.loads(m.value)["after"]["id"] for m in msgs if m.value is not None]


def murmur2(data: bytes) -> int:
    """Kafka's Utils.murmur2, as the Java producer's default partitioner uses it."""
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(length // 4):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail, rest = length & ~3, length % 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def java_partition(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


# -- at-least-once ---------------------------------------------------------------


def test_changes_arrive_keyed_partitioned_and_followed_by_tombstones(cdc, kafka):
    prefix = unique("alo")
    topic = f"{prefix}.public.orders"
    # Created beforehand with four partitions, so placement by key shows.
    kafka.create_topic(topic, partitions=4)
    cdc.sql(ORDERS)
    tm = cdc.start(kafka_job(cdc, kafka, prefix))
    cdc.wait_slot_ready(tm)
    cdc.sql("""
        INSERT INTO orders SELECT g, 100 + g, 'new' FROM generate_series(1, 8) g;
        UPDATE orders SET status = 'paid' WHERE id = 3;
        DELETE FROM orders WHERE id = 5;
    """)
    got = wait_messages(kafka, topic, 8 + 1 + 2, tm)
    assert tm.terminate() == 0, tm.log_tail()
    assert len(got) == 11, summary(got)

    by_id = {}
    for m in got:
        key = json.loads(m.key)
        # The Debezium key: the primary key with its Kafka Connect schema.
        assert key["schema"]["type"] == "struct", key
        assert key["schema"]["name"] == "shop.public.orders.Key", key
        assert [f["field"] for f in key["schema"]["fields"]] == ["id"], key
        assert set(key["payload"]) == {"id"}, key
        # murmur2 over the key bytes: the partition a Java producer picks.
        assert m.partition == java_partition(m.key, 4), (m.key, m.partition)
        by_id.setdefault(key["payload"]["id"], []).append(m)

    assert sorted(by_id) == list(range(1, 9))
    ops = {i: [json.loads(m.value)["payload"]["op"] if m.value else None for m in ms]
           for i, ms in by_id.items()}
    assert ops[3] == ["c", "u"], ops
    # A delete, then its tombstone: the same key with a null value.
    assert ops[5] == ["c", "d", None], ops
    tomb = by_id[5][2]
    assert tomb.key == by_id[5][1].key and tomb.value is None
    for i in (1, 2, 4, 6, 7, 8):
        assert ops[i] == ["c"], ops
    after = json.loads(by_id[3][1].value)["payload"]["after"]
    assert after == {"id": 3, "customer_id": 103, "status": "paid"}
    source = json.loads(by_id[3][1].value)["payload"]["source"]
    assert (source["connector"], source["schema"], source["table"]) == \
        ("postgresql", "public", "orders")
    # Each key's changes are on one partition, in commit order.
    for ms in by_id.values():
        assert len({m.partition for m in ms}) == 1
        assert [m.offset for m in ms] == sorted(m.offset for m in ms)


def test_tombstones_false_writes_no_tombstone(cdc, kafka):
    prefix = unique("notomb")
    topic = f"{prefix}.public.orders"
    cdc.sql(ORDERS)
    tm = cdc.start(kafka_job(cdc, kafka, prefix, sink={"tombstones": False, "schemas": False}))
    cdc.wait_slot_ready(tm)
    cdc.sql("""
        INSERT INTO orders VALUES (1, 10, 'new');
        DELETE FROM orders WHERE id = 1;
        INSERT INTO orders VALUES (2, 20, 'last');
    """)
    got = wait_messages(kafka, topic, 3, tm)
    assert tm.terminate() == 0, tm.log_tail()
    assert [m.value is None for m in got] == [False, False, False], summary(got)
    values = [json.loads(m.value) for m in got]
    # schemas = false: the bare payload, and a bare key.
    assert [v["op"] for v in values] == ["c", "d", "c"]
    assert [key_payload(m) for m in got] == [{"id": 1}, {"id": 1}, {"id": 2}]
    assert json.loads(got[0].key) == {"id": 1}


def test_topic_template_routes_tables_to_topics_it_creates(cdc, kafka):
    prefix = unique("route")
    cdc.sql(ORDERS + CUSTOMERS)
    job = kafka_job(cdc, kafka, prefix, tables="public.orders,public.customers",
                    sink={"topic_partitions": 2, "schemas": False})
    tm = cdc.start(job)
    cdc.wait_slot_ready(tm)
    cdc.sql("""
        INSERT INTO orders VALUES (1, 7, 'new');
        INSERT INTO customers VALUES (7, 'Ada');
        INSERT INTO orders VALUES (2, 7, 'new');
    """)
    orders = wait_messages(kafka, f"{prefix}.public.orders", 2, tm)
    customers = wait_messages(kafka, f"{prefix}.public.customers", 1, tm)
    assert tm.terminate() == 0, tm.log_tail()
    assert sorted(json.loads(m.value)["after"]["id"] for m in orders) == [1, 2]
    assert [json.loads(m.value)["after"] for m in customers] == [{"id": 7, "name": "Ada"}]
    # The sink created both topics, with topic_partitions partitions.
    assert kafka.partitions(f"{prefix}.public.orders") == [0, 1]
    assert kafka.partitions(f"{prefix}.public.customers") == [0, 1]
    assert "created topic" in tm.log_text()


def test_json_and_upsert_formats(cdc, kafka):
    prefix = unique("fmt")
    cdc.sql(ORDERS)
    source = cdc.source("public.orders", "never")
    # skipped_operations = none hands the truncate to the json sink, which cannot express it.
    json_sink = kafka_sink(kafka, prefix, topic=f"{prefix}.json", format="json", schemas=False,
                           skipped_operations="none")
    upsert_sink = kafka_sink(kafka, prefix, topic=f"{prefix}.upsert", format="upsert")
    job = cdc_job(source, json_sink, source_name="shop", sink_name="flat")
    job += "\n".join([create_table("ups", upsert_sink), "INSERT INTO ups SELECT * FROM shop;", ""])
    tm = cdc.start(job)
    cdc.wait_slot_ready(tm)
    cdc.sql("""
        INSERT INTO orders VALUES (1, 10, 'new');
        UPDATE orders SET status = 'paid' WHERE id = 1;
        DELETE FROM orders WHERE id = 1;
        INSERT INTO orders VALUES (2, 20, 'new');
        UPDATE orders SET id = 3 WHERE id = 2;
        TRUNCATE orders;
    """)
    # json: c, u, d + tombstone, c, then the key change as d + tombstone + c.
    flat = wait_messages(kafka, f"{prefix}.json", 8, tm)
    # upsert: row, row, tombstone, row, then tombstone of the old key + new row.
    ups = wait_messages(kafka, f"{prefix}.upsert", 6, tm)
    assert tm.terminate() == 0, tm.log_tail()

    rows = [(key_payload(m), json.loads(m.value) if m.value else None) for m in flat]
    assert rows == [
        ({"id": 1}, {"id": 1, "customer_id": 10, "status": "new", "__deleted": "false"}),
        ({"id": 1}, {"id": 1, "customer_id": 10, "status": "paid", "__deleted": "false"}),
        # REPLICA IDENTITY DEFAULT: the before image carries the key only.
        ({"id": 1}, {"id": 1, "customer_id": None, "status": None, "__deleted": "true"}),
        ({"id": 1}, None),
        ({"id": 2}, {"id": 2, "customer_id": 20, "status": "new", "__deleted": "false"}),
        ({"id": 2}, {"id": 2, "customer_id": None, "status": None, "__deleted": "true"}),
        ({"id": 2}, None),
        ({"id": 3}, {"id": 3, "customer_id": 20, "status": "new", "__deleted": "false"}),
    ], rows
    # The key change is marked as Debezium marks it.
    assert ("__debezium.newkey", b'{"id":3}') in flat[5].headers, flat[5].headers
    assert ("__debezium.oldkey", b'{"id":2}') in flat[7].headers, flat[7].headers

    # upsert with schemas: Kafka Connect JSON, {"schema": row struct, "payload": row}.
    got = []
    for m in ups:
        value = json.loads(m.value) if m.value is not None else None
        if value is not None:
            assert value["schema"]["type"] == "struct", value
            assert value["schema"]["name"] == "shop.public.orders.Value", value
            assert [f["field"] for f in value["schema"]["fields"]] == \
                ["id", "customer_id", "status"], value
            value = value["payload"]
        got.append((key_payload(m), value))
    assert got == [
        ({"id": 1}, {"id": 1, "customer_id": 10, "status": "new"}),
        ({"id": 1}, {"id": 1, "customer_id": 10, "status": "paid"}),
        ({"id": 1}, None),
        ({"id": 2}, {"id": 2, "customer_id": 20, "status": "new"}),
        ({"id": 2}, None),
        ({"id": 3}, {"id": 3, "customer_id": 20, "status": "new"}),
    ], got
    # Neither flat format can express the truncate; that is said once.
    assert "skipping records the format cannot express" in tm.log_text()


@pytest.mark.deadline(480)
def test_broker_outage_stalls_the_job_and_loses_nothing(cdc, kafka, tmp_path):
    # This test stops its broker, so it runs one of its own (`kafka` is here
    # for its checks that java, mvn and confluent_kafka are installed).
    server = KafkaServer(basedir=tmp_path / "broker")
    server.start()
    try:
        prefix = unique("outage")
        topic = f"{prefix}.public.events"
        cdc.sql(EVENTS)
        job = cdc_job(cdc.source("public.events", "never"),
                      kafka_sink(server, prefix, schemas=False), source_name=cdc.source_name)
        tm = cdc.start(job)
        cdc.wait_slot_ready(tm)
        insert_events(cdc, range(1, 6))
        wait_messages(server, topic, 5, tm)

        server.stop_process()
        insert_events(cdc, range(6, 16))
        written = cdc.current_lsn()
        # The job waits for the broker, says so, and acknowledges nothing meanwhile.
        wait_until(lambda: "waiting for Kafka" in tm.log_text(), 60,
                   "the sink to report that it waits for Kafka", tm)
        tm.assert_running("while the broker is down")
        assert cdc.confirmed_flush_lsn() < written, "the slot was acknowledged past " \
            "changes that Kafka had not acknowledged"

        server.start_process()
        got = []

        def all_there():
            nonlocal got
            got = messages(server, topic)
            return set(range(1, 16)) <= set(event_ids(got))

        wait_until(all_there, 180, "ids 1..15 after the broker came back", tm)
        assert tm.terminate() == 0, tm.log_tail()
        ids = event_ids(messages(server, topic))
        # At-least-once: every change is there, in commit order, none lost.
        assert sorted(set(ids)) == list(range(1, 16)), ids
        assert ids == sorted(ids), ids
    finally:
        server.stop()


# -- exactly-once ----------------------------------------------------------------


def exactly_once_job(cdc, kafka, prefix, interval, **sink):
    return kafka_job(cdc, kafka, prefix, tables="public.events",
                     sink={"delivery": "exactly-once", "schemas": False, **sink},
                     settings=f"SET checkpoint_interval = '{interval}';\n")


def progress_records(kafka, prefix):
    return [(json.loads(m.key), json.loads(m.value))
            for m in messages(kafka, f"{prefix}.progress")]


@pytest.mark.deadline(400)
def test_exactly_once_commits_at_checkpoints_and_survives_restart(cdc, kafka):
    prefix = unique("eos")
    topic = f"{prefix}.public.events"
    cdc.sql(EVENTS)
    # A long interval (and a transaction timeout above it): only the final
    # checkpoint at SIGTERM commits.
    tm = cdc.start(exactly_once_job(cdc, kafka, prefix, "4min",
                                    **{'"kafka.transaction.timeout.ms"': 300000}))
    cdc.wait_slot_ready(tm)
    assert "decision log read" in tm.log_text(), tm.log_tail()
    insert_events(cdc, range(1, 11))
    # The records are in Kafka, inside the open transaction ...
    wait_messages(kafka, topic, 10, tm, isolation="read_uncommitted")
    # ... and invisible to read_committed consumers until it commits.
    assert messages(kafka, topic) == []
    assert tm.terminate() == 0, tm.log_tail()
    first = messages(kafka, topic)
    assert event_ids(first) == list(range(1, 11)), summary(first)

    records = progress_records(kafka, prefix)
    assert records, "no progress record was committed"
    key, value = records[-1]
    assert key == {"job": "job", "sink": "out"}
    assert value["job"] == "job" and value["sink"] == "out"
    assert value["transactional_id"] == f"{prefix}-job-out"
    assert value["checkpoint"] >= 1 and "sources" in value and "shop" in value["sources"], value
    last = value["checkpoint"]

    # The restart reads the decision, resumes after it, and adds nothing twice.
    tm = cdc.tidemark(exactly_once_job(cdc, kafka, prefix, "500ms"), name="tm").start()
    insert_events(cdc, range(11, 21))
    got = []

    def all_committed():
        nonlocal got
        got = messages(kafka, topic)
        return set(range(1, 21)) <= set(event_ids(got))

    wait_until(all_committed, 120, "ids 1..20 committed", tm)
    assert tm.terminate() == 0, tm.log_tail()
    got = messages(kafka, topic)
    assert event_ids(got) == list(range(1, 21)), summary(got)
    log = tm.log_text()
    assert f"last_committed_checkpoint={last}" in log, log[-3000:]
    records = progress_records(kafka, prefix)
    checkpoints = [v["checkpoint"] for _, v in records]
    assert checkpoints == sorted(checkpoints) and checkpoints[-1] > last, checkpoints


@pytest.mark.deadline(600)
def test_exactly_once_under_load_with_frequent_checkpoints(cdc, kafka):
    prefix = unique("load")
    topic = f"{prefix}.public.events"
    cdc.sql(EVENTS)
    job = exactly_once_job(cdc, kafka, prefix, "200ms") + "SET log_level = 'debug';\n"
    tm = cdc.start(job)
    cdc.wait_slot_ready(tm)
    total, step = 3000, 50
    for first in range(1, total + 1, step):
        cdc.sql(f"INSERT INTO events SELECT g, 'n' || g FROM generate_series({first}, "
                f"{first + step - 1}) g;")
    got = []

    def all_committed():
        nonlocal got
        got = messages(kafka, topic)
        return len(got) >= total

    wait_until(all_committed, 180, f"{total} committed events", tm)
    assert tm.terminate() == 0, tm.log_tail()
    ids = event_ids(messages(kafka, topic))
    assert ids == list(range(1, total + 1)), \
        f"{len(ids)} events; first differences: {[i for i in ids if ids.count(i) > 1][:10]}"
    log = tm.log_text()
    assert log.count('msg="completed"') >= 3, "expected several checkpoints under load"
    # Records of the next epoch that arrived before the commit were held and
    # then produced into the next transaction (the path this test is for).
    assert "producing held records" in log, "the held-records path was not taken"


@pytest.mark.deadline(600)
def test_exactly_once_after_kill9_restarts(cdc, kafka):
    # The crash harness (tests/crash) goes further; this is the sink's own
    # check that a crash mid-epoch leaves nothing twice and loses nothing.
    from tidemark import RowWriter

    prefix = unique("kill")
    topic = f"{prefix}.public.events"
    cdc.sql(EVENTS)
    job = exactly_once_job(cdc, kafka, prefix, "300ms")
    tm = cdc.start(job)
    cdc.wait_slot_ready(tm)
    rng = random.Random(20261122)
    writer = RowWriter(cdc, first_id=1, limit=100_000)
    writer.start()
    try:
        for _ in range(3):
            # Wait for some commits in this run, then crash mid-stream.
            before = len(messages(kafka, topic))
            wait_until(lambda: len(messages(kafka, topic)) > before, 90,
                       "new committed events before the crash", tm)
            # Not a synchronisation: it moves the crash to a random point of an epoch.
            time.sleep(rng.uniform(0.0, 1.0))
            tm.kill9()
            tm.start()
    finally:
        end = writer.finish()
    got = []

    def all_committed():
        nonlocal got
        got = messages(kafka, topic)
        return set(range(1, end)) <= set(event_ids(got))

    wait_until(all_committed, 180, f"ids 1..{end - 1} committed", tm)
    assert tm.terminate() == 0, tm.log_tail()
    ids = event_ids(messages(kafka, topic))
    twice = sorted({i for i in ids if ids.count(i) > 1})
    assert not twice, f"ids committed more than once: {twice[:20]}"
    assert ids == list(range(1, end)), "events are missing or out of commit order"
    # Each restart fenced the crashed run and took its decision from Kafka.
    assert tm.log_text().count('msg="decision log read"') == 4, tm.log_tail()


def test_exactly_once_refuses_a_checkpoint_interval_near_the_transaction_timeout(cdc, kafka):
    prefix = unique("tmo")
    cdc.sql(EVENTS)
    tm = cdc.start(exactly_once_job(cdc, kafka, prefix, "55s"))
    assert tm.wait_exit(60) == EXIT_CONFIG, tm.log_tail()
    err = tm.log_text() + tm.stdout_text()
    assert "checkpoint_interval (55000 ms)" in err, err
    assert "transaction.timeout.ms (60000 ms)" in err, err

    # Raising the transaction timeout makes the same interval acceptable.
    job = exactly_once_job(cdc, kafka, prefix, "55s",
                           **{'"kafka.transaction.timeout.ms"': "120000"})
    (cdc.dir / "ok.sql").write_text(job)
    shown = run_cli(["explain", cdc.dir / "ok.sql"], bin=cdc.bin)
    assert shown.returncode == 0, shown.stderr
    assert "decision log" in shown.stdout, shown.stdout


def test_exactly_once_needs_checkpoints(cdc, kafka):
    prefix = unique("nochk")
    cdc.sql(EVENTS)
    tm = cdc.start(kafka_job(cdc, kafka, prefix, tables="public.events",
                             sink={"delivery": "exactly-once"}))
    assert tm.wait_exit(60) == EXIT_CONFIG, tm.log_tail()
    assert "SET checkpoint_interval" in tm.log_text(), tm.log_tail()


@pytest.mark.deadline(300)
def test_second_instance_fences_the_first(cdc, kafka):
    prefix = unique("fence")
    topic = f"{prefix}.public.events"
    cdc.sql(EVENTS)
    first = cdc.start(exactly_once_job(cdc, kafka, prefix, "300ms"))
    cdc.wait_slot_ready(first)
    insert_events(cdc, [1])
    wait_until(lambda: event_ids(messages(kafka, topic)) == [1], 60, "id 1 committed", first)

    # The same job and sink (so the same transactional id), its own state
    # directory, and its own slot so that its source can start too.
    job = exactly_once_job(cdc, kafka, prefix, "300ms")
    job = job.replace(f"'{cdc.slot}'", f"'{cdc.slot}_b'")
    job = job.replace(f"'{cdc.publication}'", f"'{cdc.publication}_b'")
    second = cdc.tidemark(job, name="second").start()

    code = first.wait_exit(90)
    assert code != 0, first.log_tail()
    log = first.log_text()
    assert f"another tidemark instance with transactional id '{prefix}-job-out' took over " \
           "(fenced); this instance stops" in log, first.log_tail()
    # It said so and stopped: no retry loop.
    assert log.count("took over (fenced)") <= 3, first.log_tail()

    second.assert_running("after fencing the first instance")

    def slot_b_ready():
        return cdc.pg.psql(f"SELECT confirmed_flush_lsn IS NOT NULL FROM pg_replication_slots "
                           f"WHERE slot_name = '{cdc.slot}_b'") == "t"

    wait_until(slot_b_ready, 60, f"slot {cdc.slot}_b to be created", second)
    insert_events(cdc, [2])
    wait_until(lambda: 2 in event_ids(messages(kafka, topic)), 60, "id 2 committed by the second",
               second)
    assert second.terminate() == 0, second.log_tail()
    ids = event_ids(messages(kafka, topic))
    assert ids.count(1) == 1 and ids.count(2) == 1, ids


# -- secrets -------------------------------------------------------------------


def test_sasl_password_never_appears_in_logs_or_explain(cdc, kafka):
    prefix = unique("secret")
    secret = "s3cr3t-" + uuid.uuid4().hex
    cdc.sql(ORDERS)
    # PLAINTEXT ignores the SASL settings, so the job really runs with them.
    sink = {'"kafka.sasl.username"': "tidemark", '"kafka.sasl.password"': secret,
            "schemas": False}
    job = kafka_job(cdc, kafka, prefix, sink=sink, settings="SET log_level = 'debug';\n")
    tm = cdc.start(job)
    cdc.wait_slot_ready(tm)
    cdc.sql("INSERT INTO orders VALUES (1, 10, 'new');")
    wait_messages(kafka, f"{prefix}.public.orders", 1, tm)
    assert tm.terminate() == 0, tm.log_tail()
    shown = run_cli(["explain", tm.job_path], bin=cdc.bin)
    assert shown.returncode == 0, shown.stderr
    assert "kafka.sasl.password" in shown.stdout and "****" in shown.stdout, shown.stdout
    for where, text in (("the log", tm.log_text()), ("stdout", tm.stdout_text()),
                        ("explain", shown.stdout + shown.stderr)):
        assert secret not in text, f"the SASL password appears in {where}"
