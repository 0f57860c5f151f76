"""tidemark_errors_total{kind} moves where the error happens, once per occurrence (issue 16).

Each test provokes one kind for real against live servers and reads /metrics:

- source_connection: the replication connection's walsender is terminated, and
  the MySQL source's binlog dump thread is killed;
- sink_connection: the PostgreSQL sink's backend is terminated between flushes;
- row_expression: a division by zero with SET on_error = 'skip';
- decode: corrupt Debezium events on a Kafka topic, with on_error = 'skip';
- checkpoint_failed: a checkpoint held up by a long snapshot past checkpoint_timeout.

dead_letter is checked in tests/unit/runtime/deadletter.c (a dead-letter file
that cannot be created).

Every kind is exported at 0 from the start, and the kinds a test does not
provoke stay at 0, so a counter cannot move for the wrong reason unnoticed.
"""

import re

from tidemark import create_table, read_jsonl, wait_until

# The Kafka and MariaDB fixtures and helpers of the connectors' own tests.
from test_kafka_source import kcase, malformed_batch, wait_records  # noqa: F401 (fixture)
from test_mysql_cdc import case as mycase, my  # noqa: F401 (fixtures)

KINDS = ("source_connection", "sink_connection", "row_expression", "decode", "checkpoint_failed",
         "dead_letter")


def errors(tm) -> dict:
    """{kind: value} of tidemark_errors_total, which must list every kind."""
    text = tm.admin_get("/metrics")
    found = {m.group(1): int(m.group(2)) for m in
             re.finditer(r'^tidemark_errors_total\{kind="([a-z_]+)"\} (\d+)$', text, re.M)}
    assert set(found) == set(KINDS), text
    assert "# TYPE tidemark_errors_total counter" in text
    return found


def only(counts: dict, **want) -> bool:
    """True when the kinds in `want` have those values and every other kind is 0."""
    return all(counts[k] == want.get(k, 0) for k in KINDS)


def test_killed_replication_connection_counts_source_connection(cdc):
    cdc.sql("CREATE TABLE public.orders (id int PRIMARY KEY, amount numeric(10,2), status text);")
    tm = cdc.start(cdc.job(sink={"schemas": False}) + "SET admin_address = '127.0.0.1:0';\n")
    cdc.wait_slot_ready(tm.proc)
    assert only(errors(tm)), errors(tm)
    topic = cdc.topic_path("orders")
    for round_, row in enumerate((1, 2), start=1):
        wait_until(lambda: (cdc.slot_row() or (False,))[0], 60, "an active slot", tm)
        killed = cdc.pg.psql(f"SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                             f"WHERE slot_name = '{cdc.slot}' AND active_pid IS NOT NULL")
        assert killed == "t", killed
        cdc.sql(f"INSERT INTO orders VALUES ({row}, 1.00, 'after cut {round_}');")
        wait_until(lambda: topic.exists() and len(read_jsonl(topic)) == row, 120,
                   f"row {row} after the reconnect", tm)
        wait_until(lambda: errors(tm)["source_connection"] == round_, 30,
                   f"source_connection = {round_}", tm)
    assert only(errors(tm), source_connection=2), errors(tm)
    tm.assert_running()


def test_killed_sink_connection_counts_sink_connection(cdc):
    cdc.sql("CREATE TABLE public.orders (id int PRIMARY KEY, amount numeric(10,2), status text);")
    tdb = f"{cdc.db}_tgt"
    cdc.pg.psql(f'CREATE DATABASE "{tdb}"')
    try:
        job = "\n".join([
            create_table("shop", cdc.source()),
            create_table("out", {"connector": "postgres", "dsn": cdc.pg.dsn(tdb),
                                 "table": "public.orders_copy", "create_table": True,
                                 "delivery": "at-least-once"},
                         "id int PRIMARY KEY, amount numeric(10,2), status text"),
            "INSERT INTO out SELECT * FROM shop;",
            "SET admin_address = '127.0.0.1:0';", ""])
        tm = cdc.start(job)
        cdc.wait_slot_ready(tm.proc)

        def copied():
            out = cdc.pg.psql("SELECT count(*) FROM orders_copy", db=tdb, check=False)
            return int(out) if out.strip().isdigit() else 0

        cdc.sql("INSERT INTO orders VALUES (1, 1.00, 'before');")
        wait_until(lambda: copied() == 1, 60, "the first row in the target", tm)
        assert only(errors(tm)), errors(tm)
        killed = cdc.pg.psql(f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                             f"WHERE datname = '{tdb}' AND pid <> pg_backend_pid()")
        assert killed == "1", killed
        cdc.sql("INSERT INTO orders VALUES (2, 2.00, 'after');")
        wait_until(lambda: copied() == 2, 60, "the second row, after the retry", tm)
        counts = errors(tm)
        assert only(counts, sink_connection=1), counts
        assert "target failed, retrying" in tm.log_text()
        assert tm.terminate() == 0, tm.log_tail()
    finally:
        for d in cdc.daemons:
            d.kill9()
        cdc.pg.drop_database(tdb)


def test_row_expression_errors_with_on_error_skip(cdc):
    cdc.sql("CREATE TABLE public.items (id int PRIMARY KEY, qty int);"
            "INSERT INTO items SELECT g, g FROM generate_series(1, 20) g;")
    out = cdc.dir / "calc"
    out.mkdir()
    job = "\n".join([
        create_table("shop", cdc.source(tables="public.items", snapshot="initial"),
                     "id int PRIMARY KEY, qty int"),
        create_table("out", {"connector": "file", "path": str(out), "schemas": False}),
        # qty = id: row 5 divides by zero, and so does row 7 once updated.
        "INSERT INTO out SELECT id, 100 / (qty - 5) AS q FROM shop;",
        "SET on_error = 'skip';",
        "SET admin_address = '127.0.0.1:0';", ""])
    tm = cdc.start(job)

    def rows():
        files = list(out.glob("*.jsonl"))
        return read_jsonl(files[0]) if files else []

    wait_until(lambda: len(rows()) == 19, 60, "the 19 good rows", tm)
    wait_until(lambda: errors(tm)["row_expression"] == 1, 30, "row_expression = 1", tm)
    cdc.wait_slot_ready(tm.proc)
    cdc.sql("UPDATE items SET qty = 5 WHERE id = 7;")
    wait_until(lambda: errors(tm)["row_expression"] == 2, 60, "row_expression = 2", tm)
    counts = errors(tm)
    assert only(counts, row_expression=2), counts
    metrics = tm.admin_get("/metrics")
    assert re.search(r'^tidemark_operator_row_errors_total\{operator="[^"]+"\} 2$', metrics,
                     re.M), metrics
    assert tm.terminate() == 0, tm.log_tail()


def test_corrupt_kafka_events_count_decode(kcase):
    topic = kcase.topic("errkind")
    messages, bad = malformed_batch()
    kcase.produce(topic, [(k, v) for k, v, _ in messages])
    out = kcase.out()
    tm = kcase.start(kcase.simple_job(topic, out, columns="id bigint PRIMARY KEY, amount "
                                      "numeric(10,2), status text", on_error="skip",
                                      decimal_handling="string",
                                      settings="SET admin_address = '127.0.0.1:0';"))
    wait_records(out, 3, tm)
    wait_until(lambda: errors(tm)["decode"] == len(bad), 30, f"decode = {len(bad)}", tm)
    # Two more corrupt events later, one good one: counted as they come.
    kcase.produce(topic, [(b"y1", b"\x00\x01 not json"), (b"y2", b"[]"),
                          (b"9", messages[0][1].replace(b'"id": 1', b'"id": 9'))])
    wait_records(out, 4, tm)
    wait_until(lambda: errors(tm)["decode"] == len(bad) + 2, 30, "decode += 2", tm)
    counts = errors(tm)
    assert only(counts, decode=len(bad) + 2), counts
    assert tm.terminate() == 0, tm.log_tail()


def test_checkpoint_over_its_timeout_counts_checkpoint_failed(cdc):
    """A barrier held up by a long initial snapshot overruns checkpoint_timeout: counted once per
    checkpoint, like tidemark_checkpoints_failed_total."""
    cdc.sql("CREATE TABLE public.orders (id int PRIMARY KEY, note text);"
            "INSERT INTO orders SELECT g, repeat('x', 200) FROM generate_series(1, 300000) g;")
    tm = cdc.start(cdc.job(snapshot="initial", sink={"schemas": False}) +
                   "SET checkpoint_interval = '50ms';\nSET checkpoint_timeout = '1ms';\n"
                   "SET admin_address = '127.0.0.1:0';\n")

    def failed():
        text = tm.admin_get("/metrics")
        m = re.search(r"^tidemark_checkpoints_failed_total (\d+)$", text, re.M)
        return int(m.group(1)) if m else 0

    wait_until(lambda: failed() >= 1, 120, "a checkpoint over checkpoint_timeout", tm)
    assert "checkpoint is taking longer than checkpoint_timeout" in tm.log_text()
    counts = errors(tm)
    total = failed()
    # Read one after the other: the counter may have moved between the two reads.
    assert total - 1 <= counts["checkpoint_failed"] <= total, (counts, total)
    assert only(counts, checkpoint_failed=counts["checkpoint_failed"]), counts
    assert counts["checkpoint_failed"] >= 1


def test_killed_binlog_connection_counts_source_connection(mycase):
    """The MySQL source's binlog connection, killed on the server: one source_connection."""
    my, db = mycase.my, mycase.db
    my.sql(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, note VARCHAR(20))")
    tm = mycase.start(mycase.job(sink={"schemas": False}) + "SET admin_address = '127.0.0.1:0';\n")
    mycase.wait_started(tm)
    my.sql(f"INSERT INTO {db}.t VALUES (1, 'before')")
    path = mycase.topic("t")
    wait_until(lambda: path.exists() and len(read_jsonl(path)) == 1, 60, "the first row", tm)
    assert only(errors(tm)), errors(tm)
    rows = my.query("SELECT ID FROM information_schema.PROCESSLIST "
                    "WHERE COMMAND = 'Binlog Dump' AND USER = 'cdc'")
    assert len(rows) == 1, rows
    my.sql(f"KILL {rows[0][0]}", check=False)
    my.sql(f"INSERT INTO {db}.t VALUES (2, 'after')")
    wait_until(lambda: len(read_jsonl(path)) == 2, 120, "the row after the reconnect", tm)
    wait_until(lambda: errors(tm)["source_connection"] == 1, 30, "source_connection = 1", tm)
    assert only(errors(tm), source_connection=1), errors(tm)
    assert "binlog connection restored" in tm.log_text()
