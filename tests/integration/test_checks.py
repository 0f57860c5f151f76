"""Settings are checked before anything has a side effect (issue 9, items 9 and 12).

A job whose settings cannot work must be refused by `tidemark explain` and by
`tidemark run` before the state directory, a replication slot, a publication
or a connection to a broker exists: a refused job leaves nothing behind that
retains WAL or holds a transactional id.  The messages say what to do.
"""

import socket
import uuid

from tidemark import (EXIT_CONFIG, EXIT_SOURCE, Tidemark, create_table, run_cli, wait_for_lines,
                      wait_until)

# A failure that needs no server answers at once; this only bounds a hang.
QUICK = 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _refused(cdc, job_sql, *words):
    """Runs explain and run on job_sql; both exit 2 naming `words`, and nothing was created."""
    path = cdc.dir / "check.sql"
    path.write_text(job_sql)
    res = run_cli(["explain", path], bin=cdc.bin)
    said = (res.stdout + res.stderr).lower()
    assert res.returncode == EXIT_CONFIG, f"explain exit {res.returncode}:\n{said}"
    for w in words:
        assert w.lower() in said, f"explain should mention {w!r}:\n{said}"
    tm = cdc.tidemark(job_sql)
    tm.start()
    code = tm.wait_exit(QUICK)
    log = tm.log_text().lower()
    assert code == EXIT_CONFIG, f"run exit {code}:\n{tm.log_tail()}"
    for w in words:
        assert w.lower() in log, f"run should mention {w!r}:\n{tm.log_tail()}"
    assert cdc.slot_row() is None, "a refused job must not create the replication slot"
    pubs = cdc.sql(f"SELECT count(*) FROM pg_publication WHERE pubname = '{cdc.publication}'")
    assert pubs == "0", "a refused job must not create the publication"
    assert not tm.state_dir.exists(), "a refused job must not create its state directory"
    return log


def test_wildcard_admin_address_without_token_leaves_no_slot(cdc):
    cdc.sql("CREATE TABLE public.orders (id int PRIMARY KEY);")
    job = f"SET admin_address = '0.0.0.0:{_free_port()}';\n" + cdc.job()
    _refused(cdc, job, "admin_token", "loopback")


def test_admin_port_out_of_range_leaves_no_slot(cdc):
    cdc.sql("CREATE TABLE public.orders (id int PRIMARY KEY);")
    job = "SET admin_address = '127.0.0.1:99999';\n" + cdc.job()
    _refused(cdc, job, "127.0.0.1:99999", "host:port")


def test_admin_port_taken_fails_before_the_slot(cdc):
    """A port that cannot be bound is found by binding first (explain cannot know it)."""
    cdc.sql("CREATE TABLE public.orders (id int PRIMARY KEY);")
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        tm = cdc.tidemark(f"SET admin_address = '127.0.0.1:{port}';\n" + cdc.job())
        tm.start()
        code = tm.wait_exit(QUICK)
    assert code == EXIT_CONFIG, f"exit {code}:\n{tm.log_tail()}"
    assert "another admin address" in tm.log_text(), tm.log_tail()
    assert cdc.slot_row() is None, "the slot was created before the admin API was bound"


def test_two_decision_logs_refused_before_the_broker(cdc):
    """Two exactly-once Kafka sinks: refused by explain, and by run without a broker."""
    cdc.sql("CREATE TABLE public.orders (id int PRIMARY KEY);")
    # Nothing listens on port 1: a check that needed the broker would hang or fail otherwise.
    kafka = {"connector": "kafka", "bootstrap_servers": "127.0.0.1:1",
             "delivery": "exactly-once"}
    job = "\n".join([
        "SET checkpoint_interval = '5s';",
        create_table("shop", cdc.source()),
        create_table("k1", {**kafka, "topic": "t1"}),
        create_table("k2", {**kafka, "topic": "t2"}),
        "INSERT INTO k1 SELECT * FROM shop;",
        "INSERT INTO k2 SELECT * FROM shop;",
        "",
    ])
    log = _refused(cdc, job, "'k1' and 'k2'", "decision log", "at-least-once")
    assert "broker" not in log and "transport" not in log, log


def test_parallelism_zero_names_the_setting(cdc):
    cdc.sql("CREATE TABLE public.orders (id int PRIMARY KEY, customer text);")
    job = "SET parallelism = 0;\n" + "\n".join([
        create_table("shop", cdc.source(), "id int, customer text, PRIMARY KEY (id)"),
        create_table("out", cdc.file_sink()),
        "INSERT INTO out SELECT customer, count(*) AS n FROM shop GROUP BY customer;",
        "",
    ])
    log = _refused(cdc, job, "parallelism = 0", "at least 1")
    assert "store" not in log, log


def test_dropped_publication_says_what_to_do(cdc):
    """Item 12: a publication dropped under a running job.

    PostgreSQL decodes a slot's changes with the catalog as of each change, so
    a publication created again later is invisible to the changes before it:
    with create = true the restart recreates it and fails the same way.  Both
    failures must exit 3 and say how to recover (drop the slot or use a new one).
    """
    cdc.sql("CREATE TABLE public.orders (id int PRIMARY KEY);")
    tm = cdc.start()
    cdc.wait_slot_ready(tm.proc)
    cdc.sql("INSERT INTO public.orders VALUES (1);")
    wait_for_lines(cdc.topic_path("orders"), 1, proc=tm.proc)
    cdc.sql(f"DROP PUBLICATION {cdc.publication}; INSERT INTO public.orders VALUES (2);")
    code = tm.wait_exit(QUICK * 3)
    first = tm.log_text()
    assert code == EXIT_SOURCE, f"exit {code}:\n{tm.log_tail()}"
    for words in (first,):
        assert "pg_drop_replication_slot" in words and "new slot" in words, tm.log_tail()
    # The restart recreates the publication (create = true) and must fail as clearly.
    offset = tm.start_with()
    code = tm.wait_exit(QUICK * 3)
    again = tm.section(offset)
    assert code == EXIT_SOURCE, f"exit {code}:\n{tm.log_tail()}"
    assert "pg_drop_replication_slot" in again and "new slot" in again, again


def test_oversized_dead_letter_is_truncated_not_wedged(kafka, tmp_path, tidemark_bin):
    """Item 12: a malformed record too large for the dead-letter topic.

    A 5 MB record is over the dead-letter producer's own limit (1 MB), and a
    600 kB one over the topic's max.message.bytes (300 kB, so the broker
    refuses it).  Each goes to the dead-letter topic cut to its first 64 KiB,
    with header tidemark.truncated = its size, and the job carries on.
    """
    from confluent_kafka import Producer

    from test_kafka_source import COLUMNS, event, ids_of, order, records_in

    run = uuid.uuid4().hex[:8]
    topic, dlq = f"tmck-big-{run}", f"tmck-big-{run}.dlq"
    kafka.create_topic(topic, config={"max.message.bytes": 8 * 1024 * 1024})
    kafka.create_topic(dlq, config={"max.message.bytes": 300_000})
    big, medium = b"{" + b"x" * 5_000_000, b"[" + b"y" * 600_000
    p = Producer(kafka.client_conf(**{"acks": "all", "message.max.bytes": 10_000_000}))
    for key, value in ((b"1", big), (b"2", medium), (b"3", event("c", after=order(3)).encode())):
        p.produce(topic, key=key, value=value)
    assert p.flush(60) == 0
    out = tmp_path / "out"
    out.mkdir()
    source = {"connector": "kafka", "bootstrap_servers": kafka.bootstrap, "topic": topic,
              "group_id": f"tmck-{run}", "dead_letter_topic": dlq,
              "decimal_handling": "string"}
    job = "\n".join([create_table("src", source, COLUMNS),
                     create_table("sink", {"connector": "file", "path": str(out),
                                           "schemas": False}),
                     "INSERT INTO sink SELECT * FROM src;", ""])
    tm = Tidemark(job, tmp_path / "tm", bin=tidemark_bin).start()
    try:
        wait_until(lambda: ids_of(records_in(out)) == [3], 60, "record 3 in the sink", tm.proc)
        dead = wait_until(lambda: (lambda m: m if len(m) >= 2 else None)(
            kafka.consume_all(dlq)), 60, f"2 records in {dlq}", tm.proc)
        for m, original in zip(dead, (big, medium)):
            headers = dict(m.headers)
            assert headers.get("tidemark.truncated") == str(len(original)).encode(), headers
            assert m.value == original[:64 * 1024]
            assert "invalid JSON" in headers["tidemark.error"].decode(), headers
        assert tm.running(), tm.log_tail()
        assert "sent truncated" in tm.log_text(), tm.log_tail()
        assert tm.terminate() == 0, tm.log_tail()
    finally:
        tm.kill9()
