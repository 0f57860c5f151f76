"""Row changes from PostgreSQL end up in the sinks as Debezium events.

Covers the plain paths: insert, update and delete under both replica
identities, truncate, logical decoding messages, the sink options (schemas,
include_key, stdout), table selection and declared columns, and the CLI's
explain, --version and --help.
"""

import json
import re

from tidemark import (assert_envelope, assert_pg_source, cdc_job, create_table, debezium_decimal,
                      payload, read_jsonl, run_cli, wait_for_lines, wait_for_records, wait_until)

ORDERS = """
CREATE TABLE public.orders (id int PRIMARY KEY, customer_id int, amount numeric(10,2), status text);
"""
CUSTOMERS = """
CREATE TABLE public.customers (id int PRIMARY KEY, name text, email text);
"""
ORDER_COLUMNS = {"id", "customer_id", "amount", "status"}


def order_row(id, customer_id, amount, status):
    return {"id": id, "customer_id": customer_id, "amount": debezium_decimal(amount, 2),
            "status": status}


def test_insert_update_delete_with_default_identity(cdc):
    cdc.sql(ORDERS)
    tm = cdc.start(snapshot="never")
    cdc.wait_slot_ready(tm)
    # psql runs each statement in its own transaction: four commits.
    cdc.sql("""
        INSERT INTO orders VALUES (1, 10, 12.34, 'new');
        INSERT INTO orders VALUES (2, 11, 5.00, 'new');
        UPDATE orders SET status = 'paid', amount = -12.34 WHERE id = 1;
        DELETE FROM orders WHERE id = 2;
    """)
    wait_for_lines(cdc.topic_path("orders"), 4, proc=tm)
    assert tm.terminate() == 0, tm.log_tail()

    records = read_jsonl(cdc.topic_path("orders"))
    payloads = [assert_envelope(r) for r in records]
    assert [p["op"] for p in payloads] == ["c", "c", "u", "d"]
    ins1, ins2, upd, dele = payloads

    assert ins1["before"] is None
    assert ins1["after"] == order_row(1, 10, "12.34", "new")
    assert ins2["after"] == order_row(2, 11, "5.00", "new")

    # With REPLICA IDENTITY DEFAULT the server sends no old row for an update
    # that keeps the key, so Debezium has nothing to put in before.
    assert upd["before"] is None
    assert upd["after"] == order_row(1, 10, "-12.34", "paid")

    # A delete carries the old key only; the other columns are null.
    assert dele["after"] is None
    assert dele["before"] == {"id": 2, "customer_id": None, "amount": None, "status": None}

    for p in payloads:
        assert_pg_source(p["source"], name="shop", db=cdc.db, schema="public", table="orders")
    # Each statement was its own transaction, and the stream is in commit order.
    tx_ids = [p["source"]["txId"] for p in payloads]
    assert tx_ids == sorted(tx_ids) and len(set(tx_ids)) == 4, tx_ids
    lsns = [p["source"]["lsn"] for p in payloads]
    assert lsns == sorted(lsns), lsns


def test_replica_identity_full_gives_whole_old_rows(cdc):
    cdc.sql(ORDERS + "ALTER TABLE orders REPLICA IDENTITY FULL;")
    tm = cdc.start(snapshot="never")
    cdc.wait_slot_ready(tm)
    cdc.sql("""
        INSERT INTO orders VALUES (1, 10, 12.34, 'new');
        UPDATE orders SET status = 'paid' WHERE id = 1;
        DELETE FROM orders WHERE id = 1;
    """)
    records = wait_for_lines(cdc.topic_path("orders"), 3, proc=tm)
    payloads = [payload(r) for r in records[:3]]
    assert [p["op"] for p in payloads] == ["c", "u", "d"]
    _, upd, dele = payloads
    assert upd["before"] == order_row(1, 10, "12.34", "new")
    assert upd["after"] == order_row(1, 10, "12.34", "paid")
    assert dele["before"] == order_row(1, 10, "12.34", "paid")
    assert dele["after"] is None


def test_one_transaction_gives_one_txid(cdc):
    cdc.sql(ORDERS)
    tm = cdc.start(snapshot="never")
    cdc.wait_slot_ready(tm)
    cdc.sql("""
        BEGIN;
        INSERT INTO orders VALUES (1, 10, 1.00, 'new');
        INSERT INTO orders VALUES (2, 10, 2.00, 'new');
        UPDATE orders SET status = 'x' WHERE id = 1;
        COMMIT;
    """)
    records = wait_for_lines(cdc.topic_path("orders"), 3, proc=tm)
    payloads = [payload(r) for r in records[:3]]
    assert [p["op"] for p in payloads] == ["c", "c", "u"]
    assert len({p["source"]["txId"] for p in payloads}) == 1, [p["source"] for p in payloads]


TRUNCATE_CHANGES = """
    INSERT INTO orders VALUES (1, 10, 1.00, 'new');
    INSERT INTO orders VALUES (2, 10, 2.00, 'new');
    TRUNCATE orders;
    INSERT INTO orders VALUES (3, 10, 3.00, 'new');
"""


def test_truncate_is_skipped_by_default(cdc):
    """Debezium's skipped.operations defaults to t: no truncate event (issue 10, row 3)."""
    cdc.sql(ORDERS)
    tm = cdc.start(snapshot="never")
    cdc.wait_slot_ready(tm)
    cdc.sql(TRUNCATE_CHANGES)
    records = wait_for_lines(cdc.topic_path("orders"), 3, proc=tm)
    payloads = [payload(r) for r in records]
    assert [p["op"] for p in payloads] == ["c", "c", "c"], payloads
    assert payloads[2]["after"]["id"] == 3


def test_truncate_gives_op_t_when_not_skipped(cdc):
    cdc.sql(ORDERS)
    tm = cdc.start(snapshot="never", sink={"skipped_operations": "none"})
    cdc.wait_slot_ready(tm)
    cdc.sql(TRUNCATE_CHANGES)
    records = wait_for_lines(cdc.topic_path("orders"), 4, proc=tm)
    payloads = [payload(r) for r in records[:4]]
    assert [p["op"] for p in payloads] == ["c", "c", "t", "c"]
    trunc = payloads[2]
    assert trunc.get("before") is None and trunc.get("after") is None, trunc
    assert trunc["source"]["table"] == "orders", trunc["source"]
    assert payloads[3]["after"]["id"] == 3


def test_transactional_logical_message_gives_op_m(cdc):
    cdc.sql(ORDERS)
    tm = cdc.start(snapshot="never")
    cdc.wait_slot_ready(tm)
    cdc.sql("""
        BEGIN;
        SELECT pg_logical_emit_message(true, 'tm-test', 'hello');
        INSERT INTO orders VALUES (1, 10, 1.00, 'new');
        COMMIT;
    """)
    # Debezium puts messages on a topic of their own; which file that is is
    # not part of this test, so look in every file the sink wrote.
    def our_messages():
        found = []
        for path in sorted(cdc.out_dir.glob("*.jsonl")):
            found += [payload(r) for r in read_jsonl(path)
                      if payload(r).get("op") == "m"
                      and (payload(r).get("message") or {}).get("prefix") == "tm-test"]
        return found

    wait_until(our_messages, 60, "an op 'm' event with prefix tm-test", tm)
    wait_for_lines(cdc.topic_path("orders"), 1, proc=tm)
    assert tm.terminate() == 0, tm.log_tail()
    messages = our_messages()
    assert len(messages) == 1, messages
    # Debezium carries the content as bytes, which JSON shows in base64.
    assert messages[0]["message"]["content"] in ("aGVsbG8=", "hello"), messages[0]
    assert messages[0]["source"]["connector"] == "postgresql"


def test_non_transactional_message_carries_the_last_commit(cdc):
    """As Debezium 3.6.1 writes it (tests/compat): the last commit's time, and its own LSN twice."""
    cdc.sql(ORDERS)
    tm = cdc.start(snapshot="never")
    cdc.wait_slot_ready(tm)
    cdc.sql("INSERT INTO orders VALUES (1, 10, 1.00, 'new');")
    cdc.sql("SELECT pg_sleep(0.3); SELECT pg_logical_emit_message(false, 'tm-nontx', 'x');")

    def ours():
        return [payload(r) for path in sorted(cdc.out_dir.glob("*.jsonl")) for r in read_jsonl(path)
                if (payload(r).get("message") or {}).get("prefix") == "tm-nontx"]

    wait_until(ours, 60, "the non-transactional message", tm)
    insert = payload(wait_for_lines(cdc.topic_path("orders"), 1, proc=tm)[0])
    assert tm.terminate() == 0, tm.log_tail()
    msg = ours()[0]
    lsn = msg["source"]["lsn"]
    assert json.loads(msg["source"]["sequence"]) == [str(lsn), str(lsn)], msg["source"]
    assert msg["source"]["ts_ms"] == insert["source"]["ts_ms"], (msg["source"], insert["source"])
    assert msg["source"]["txId"] is None, msg["source"]


def test_two_tables_go_to_their_own_topics(cdc):
    cdc.sql(ORDERS + CUSTOMERS)
    tm = cdc.start(tables="public.orders, public.customers", snapshot="never")
    cdc.wait_slot_ready(tm)
    cdc.sql("""
        INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com');
        INSERT INTO orders VALUES (1, 1, 9.99, 'new');
    """)
    orders = wait_for_lines(cdc.topic_path("orders"), 1, proc=tm)
    customers = wait_for_lines(cdc.topic_path("customers"), 1, proc=tm)
    assert payload(orders[0])["after"] == order_row(1, 1, "9.99", "new")
    assert payload(customers[0])["after"] == {"id": 1, "name": "Ada", "email": "ada@example.com"}
    assert_pg_source(payload(customers[0])["source"], name="shop", db=cdc.db,
                     schema="public", table="customers")


def test_schema_wildcard_selects_every_table(cdc):
    cdc.sql(ORDERS + CUSTOMERS + "CREATE TABLE public.notes (id int PRIMARY KEY, body text);")
    tm = cdc.start(tables="public.*", snapshot="never")
    cdc.wait_slot_ready(tm)
    cdc.sql("""
        INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com');
        INSERT INTO orders VALUES (1, 1, 9.99, 'new');
        INSERT INTO notes VALUES (1, 'hi');
    """)
    for table in ("orders", "customers", "notes"):
        records = wait_for_lines(cdc.topic_path(table), 1, proc=tm)
        assert payload(records[0])["after"]["id"] == 1


def test_schemas_false_writes_bare_payloads(cdc):
    cdc.sql(ORDERS)
    tm = cdc.start(snapshot="never", sink={"schemas": False})
    cdc.wait_slot_ready(tm)
    cdc.sql("INSERT INTO orders VALUES (1, 10, 12.34, 'new');")
    records = wait_for_lines(cdc.topic_path("orders"), 1, proc=tm)
    p = assert_envelope(records[0], schemas=False)
    assert p["op"] == "c"
    assert p["after"] == order_row(1, 10, "12.34", "new")


def test_schema_describes_the_envelope(cdc):
    cdc.sql(ORDERS)
    tm = cdc.start(snapshot="never")
    cdc.wait_slot_ready(tm)
    cdc.sql("INSERT INTO orders VALUES (1, 10, 12.34, 'new');")
    record = wait_for_lines(cdc.topic_path("orders"), 1, proc=tm)[0]
    schema = record["schema"]
    fields = {f["field"]: f for f in schema["fields"]}
    assert {"before", "after", "source", "op", "ts_ms", "transaction"} <= set(fields), schema
    after_fields = {f["field"]: f for f in fields["after"]["fields"]}
    assert set(after_fields) == ORDER_COLUMNS, fields["after"]
    amount = after_fields["amount"]
    assert amount.get("name") == "org.apache.kafka.connect.data.Decimal", amount
    assert str(amount.get("parameters", {}).get("scale")) == "2", amount


def test_include_key_and_no_tombstone_after_delete(cdc):
    cdc.sql(ORDERS)
    tm = cdc.start(snapshot="never", sink={"include_key": True, "schemas": False})
    cdc.wait_slot_ready(tm)
    cdc.sql("""
        INSERT INTO orders VALUES (7, 10, 12.34, 'new');
        DELETE FROM orders WHERE id = 7;
        INSERT INTO orders VALUES (8, 10, 1.00, 'new');
    """)
    wait_for_lines(cdc.topic_path("orders"), 3, proc=tm)
    assert tm.terminate() == 0, tm.log_tail()
    records = read_jsonl(cdc.topic_path("orders"))
    # Exactly three lines: the delete is not followed by a tombstone line.
    assert len(records) == 3, records
    for record in records:
        assert set(record) == {"key", "value"}, record
        assert record["value"] is not None, "the file sink writes no tombstones"
    assert [r["key"] for r in records] == [{"id": 7}, {"id": 7}, {"id": 8}]
    assert [r["value"]["op"] for r in records] == ["c", "d", "c"]


def test_key_change_is_delete_and_create_with_tombstones_on_request(cdc):
    """Issue 10 rows 4 and 12: Debezium's d + tombstone + c for a changed primary key."""
    cdc.sql(ORDERS)
    tm = cdc.start(snapshot="never", sink={"include_key": True, "schemas": False,
                                           "tombstones_on_delete": True})
    cdc.wait_slot_ready(tm)
    cdc.sql("""
        INSERT INTO orders VALUES (7, 10, 12.34, 'new');
        UPDATE orders SET id = 8, status = 'moved' WHERE id = 7;
        UPDATE orders SET status = 'kept' WHERE id = 8;
        DELETE FROM orders WHERE id = 8;
    """)
    wait_for_lines(cdc.topic_path("orders"), 7, proc=tm)
    assert tm.terminate() == 0, tm.log_tail()
    records = read_jsonl(cdc.topic_path("orders"))
    got = [(r["key"], r["value"]["op"] if r["value"] else None) for r in records]
    assert got == [({"id": 7}, "c"), ({"id": 7}, "d"), ({"id": 7}, None), ({"id": 8}, "c"),
                   ({"id": 8}, "u"), ({"id": 8}, "d"), ({"id": 8}, None)], got
    delete, create = records[1]["value"], records[3]["value"]
    assert delete["before"]["id"] == 7 and delete["after"] is None, delete
    assert create["before"] is None and create["after"]["status"] == "moved", create
    # Both halves keep the update's position in the source.
    assert delete["source"]["lsn"] == create["source"]["lsn"], (delete, create)


def test_table_without_primary_key_has_a_null_key(cdc):
    """Issue 10 row 5: Debezium's key of a table without a primary key (or unique index) is null."""
    cdc.sql("CREATE TABLE public.nopk (a int NOT NULL, b text); "
            "ALTER TABLE nopk REPLICA IDENTITY FULL;")
    tm = cdc.start(tables="public.nopk", snapshot="never",
                   sink={"include_key": True, "schemas": False, "tombstones_on_delete": True})
    cdc.wait_slot_ready(tm)
    cdc.sql("INSERT INTO nopk VALUES (1, 'x'); DELETE FROM nopk; INSERT INTO nopk VALUES (2, 'y');")
    wait_for_lines(cdc.topic_path("nopk"), 4, proc=tm)
    assert tm.terminate() == 0, tm.log_tail()
    records = read_jsonl(cdc.topic_path("nopk"))
    # No key; the delete is still followed by a tombstone, with a null key, as Debezium 3.6.1
    # writes it (tests/compat).
    assert [(r["key"], r["value"]["op"] if r["value"] else None) for r in records] == \
        [(None, "c"), (None, "d"), (None, None), (None, "c")], records


def test_replica_identity_index_is_the_key_without_a_primary_key(cdc):
    """Without a primary key Debezium keys on the unique index (here the replica identity's)."""
    cdc.sql("CREATE TABLE public.nopk (a int NOT NULL, b text); "
            "CREATE UNIQUE INDEX nopk_a ON nopk (a); "
            "ALTER TABLE nopk REPLICA IDENTITY USING INDEX nopk_a;")
    tm = cdc.start(tables="public.nopk", snapshot="never",
                   sink={"include_key": True, "schemas": False})
    cdc.wait_slot_ready(tm)
    cdc.sql("INSERT INTO nopk VALUES (1, 'x'); DELETE FROM nopk;")
    wait_for_lines(cdc.topic_path("nopk"), 2, proc=tm)
    assert tm.terminate() == 0, tm.log_tail()
    records = read_jsonl(cdc.topic_path("nopk"))
    assert [(r["key"], r["value"]["op"]) for r in records] == \
        [({"a": 1}, "c"), ({"a": 1}, "d")], records


def test_not_null_columns_missing_from_the_before_image_get_debeziums_fallbacks(cdc):
    """Issue 10 row 1: REPLICA IDENTITY DEFAULT deletes (and key changes) as Debezium writes them.

    The old tuple carries the key only; Kafka Connect refuses null in a
    required field, so Debezium fills NOT NULL columns with its converters'
    fallbacks, and so does tidemark.  Nullable columns stay null.
    """
    cdc.sql("CREATE TABLE public.nn (id int PRIMARY KEY, qty int NOT NULL, name text NOT NULL, "
            "price numeric(10,2) NOT NULL, at timestamptz NOT NULL, note text);")
    tm = cdc.start(tables="public.nn", snapshot="never", sink={"schemas": False})
    cdc.wait_slot_ready(tm)
    cdc.sql("""
        INSERT INTO nn VALUES (1, 42, 'x', 1.50, '2024-01-02 03:04:05+00', 'n');
        UPDATE nn SET id = 2 WHERE id = 1;
        DELETE FROM nn WHERE id = 2;
    """)
    records = wait_for_lines(cdc.topic_path("nn"), 4, proc=tm)
    payloads = [payload(r) for r in records]
    assert [p["op"] for p in payloads] == ["c", "d", "c", "d"], payloads
    fallback = {"qty": 0, "name": "", "price": "AA==", "at": "1970-01-01T00:00:00Z", "note": None}
    assert payloads[1]["before"] == dict(fallback, id=1), payloads[1]
    assert payloads[3]["before"] == dict(fallback, id=2), payloads[3]
    assert payloads[2]["after"]["qty"] == 42, payloads[2]


def test_stdout_sink_prints_events(cdc):
    cdc.sql(ORDERS)
    job = cdc_job(cdc.source(snapshot="never"),
                  {"connector": "stdout", "format": "debezium-json", "schemas": False})
    tm = cdc.tidemark(job).start()
    cdc.wait_slot_ready(tm)
    cdc.sql("INSERT INTO orders VALUES (1, 10, 12.34, 'new');")

    def has_insert(records):
        return any(payload(r).get("op") == "c"
                   and (payload(r).get("after") or {}).get("id") == 1 for r in records)

    # stdout carries events only (logs go to stderr), so every line parses.
    wait_for_records(tm.stdout_path, has_insert, 60, "the insert on stdout", tm)
    assert tm.terminate() == 0, tm.log_tail()


def test_explain_shows_plan_and_guarantee_and_masks_password(cdc):
    cdc.sql(ORDERS)
    source = cdc.source(snapshot="never", dsn=cdc.dsn(password="s3cret"))
    job = cdc_job(source, {"connector": "stdout", "format": "debezium-json"})
    tm = cdc.tidemark(job)
    result = run_cli(["explain", tm.job_path], bin=cdc.bin)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "shop" in output, output
    assert "at-least-once" in output.lower(), output
    assert "s3cret" not in output, "explain must mask the DSN's password:\n" + output


def test_version_and_help(tidemark_bin):
    version = run_cli(["--version"], bin=tidemark_bin)
    assert version.returncode == 0, version.stderr
    text = version.stdout + version.stderr
    assert "tidemark" in text.lower() and re.search(r"\d+\.\d+", text), text

    help_ = run_cli(["--help"], bin=tidemark_bin)
    assert help_.returncode == 0, help_.stderr
    text = help_.stdout + help_.stderr
    for word in ("run", "explain", "--state-dir"):
        assert word in text, f"--help should mention {word}:\n{text}"


def test_declared_columns(cdc):
    cdc.sql(ORDERS)
    source = {"connector": "postgres-cdc", "dsn": cdc.dsn(), "table": "public.orders",
              "slot": cdc.slot, "publication": cdc.publication, "snapshot": "never"}
    job = "\n".join([
        create_table("orders", source, columns="id int PRIMARY KEY, amount numeric(10,2)"),
        create_table("out", cdc.file_sink(schemas=False)),
        "INSERT INTO out SELECT * FROM orders;",
    ])
    tm = cdc.tidemark(job).start()
    cdc.wait_slot_ready(tm)
    cdc.sql("INSERT INTO orders VALUES (1, 10, 12.34, 'new');")
    # The topic is named after the job's table, which here is "orders".
    records = wait_for_lines(cdc.topic_path("orders", source_name="orders"), 1, proc=tm)
    after = payload(records[0])["after"]
    assert (after["id"], after["amount"]) == (1, "BNI="), after
