"""The Kafka sink's Debezium options of issue 10 against a real broker:
provide_transaction_metadata (BEGIN/END on <source>.<topic_transaction>, the
transaction block in each event, at-least-once and exactly-once) and heartbeats
(heartbeat_interval_ms, also while idle).  The shapes are the ones
tests/compat/test_txmeta.py compares with the real Debezium on the file sink; the
encoder code is shared.  Every test uses topics of its own.
"""

import json

import pytest

from test_kafka_sink import kafka_job, unique, wait_messages


def test_transaction_metadata_on_kafka(cdc, kafka):
    prefix = unique("txmeta")
    txt = unique("tx")
    cdc.sql("CREATE TABLE public.orders (id int PRIMARY KEY, note text);")
    tm = cdc.start(kafka_job(cdc, kafka, prefix, sink={
        "schemas": False, "provide_transaction_metadata": True, "topic_transaction": txt}))
    cdc.wait_slot_ready(tm)
    cdc.sql("""
        BEGIN;
        INSERT INTO orders VALUES (1, 'a');
        INSERT INTO orders VALUES (2, 'b');
        COMMIT;
        DELETE FROM orders WHERE id = 1;
    """)
    txs = wait_messages(kafka, f"{cdc.source_name}.{txt}", 4, tm)
    data = wait_messages(kafka, f"{prefix}.public.orders", 4, tm)
    assert tm.terminate() == 0, tm.log_tail()
    vals = [json.loads(m.value) for m in txs]
    assert [v["status"] for v in vals] == ["BEGIN", "END", "BEGIN", "END"]
    assert [json.loads(m.key) for m in txs] == [{"id": v["id"]} for v in vals]
    assert vals[1]["event_count"] == 2 and vals[3]["event_count"] == 1
    assert vals[1]["data_collections"] == [{"data_collection": "public.orders", "event_count": 2}]
    events = [json.loads(m.value) for m in data if m.value is not None]
    blocks = [e["transaction"] for e in events]
    xid1 = vals[0]["id"].split(":")[0]
    assert [b["total_order"] for b in blocks] == [1, 2, 1]
    assert [b["id"] for b in blocks] == [f"{e['source']['txId']}:{e['source']['lsn']}"
                                          for e in events]
    assert blocks[0]["id"].startswith(xid1 + ":")
    # END's id is <txId>:<end LSN>, past the transaction's last event.
    assert int(vals[1]["id"].split(":")[1]) > events[1]["source"]["lsn"]


def test_heartbeats_on_kafka_while_idle(cdc, kafka):
    prefix = unique("hb")
    hbp = unique("heartbeat")
    cdc.sql("CREATE TABLE public.orders (id int PRIMARY KEY, note text);")
    tm = cdc.start(kafka_job(cdc, kafka, prefix, sink={
        "heartbeat_interval_ms": 300, "topic_heartbeat_prefix": hbp}))
    cdc.wait_slot_ready(tm)
    cdc.sql("INSERT INTO orders VALUES (1, 'a');")
    # After one record (which names the source) nothing more arrives: heartbeats go on.
    hb = wait_messages(kafka, f"{hbp}.{cdc.source_name}", 3, tm, timeout=60)
    assert tm.terminate() == 0, tm.log_tail()
    key = json.loads(hb[0].key)
    assert key["payload"] == {"serverName": cdc.source_name}
    assert key["schema"]["name"] == "io.debezium.connector.common.ServerNameKey"
    ts = [json.loads(m.value)["payload"]["ts_ms"] for m in hb]
    assert ts == sorted(ts) and ts[-1] - ts[0] >= 2 * 300 - 50
    assert json.loads(hb[0].value)["schema"]["name"] == "io.debezium.connector.common.Heartbeat"
