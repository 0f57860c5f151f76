"""The mysql-cdc source's Debezium contract against a real MariaDB 10.11.

Covers: the `source` block of streamed rows, field by field against the
server's own view (binlog file and event position from SHOW BINLOG EVENTS,
GTID, server id, row numbers within a rows event) and in Debezium 3's MariaDB
connector shape; `tidemark_source_lag_seconds` measured from the events'
time; ALTER TABLE that the binlog shape does not show (a renamed column)
under MINIMAL metadata, with a new schema version downstream and none for a
DDL that changes nothing; GEOMETRY and POINT columns as Debezium's Geometry and
Point structs, with and without the binlog's metadata.

The fixtures (one MariaDB per module, one database per test) come from
test_mysql_cdc.py.
"""

import base64
import re
import struct
import time

import pytest

from test_mysql_cdc import MyCase, case, my  # noqa: F401  (fixtures)
from tidemark import read_jsonl, wait_for_lines, wait_until

# Debezium 3's MariaDB/MySQL source block, in its order.
SOURCE_KEYS = ["version", "connector", "name", "ts_ms", "snapshot", "db", "sequence", "ts_us",
               "ts_ns", "table", "server_id", "gtid", "file", "pos", "row", "thread", "query"]


def _payloads(path):
    return [r["payload"] for r in read_jsonl(path) if r is not None and r.get("payload")]


def _source_schema(record):
    for f in record["schema"]["fields"]:
        if f["field"] == "source":
            return f
    raise AssertionError("no source in the schema")


def test_source_block_matches_the_binlog(case):
    my = case.my
    db = case.db
    my.sql(f"CREATE TABLE {db}.c (id INT PRIMARY KEY, v VARCHAR(10))")
    tm = case.start()
    case.wait_started(tm)
    server_id = int(my.query("SELECT @@server_id")[0][0])
    t0 = time.time()
    my.sql(f"INSERT INTO {db}.c VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    gtid_insert = my.query("SELECT @@gtid_binlog_pos")[0][0]
    my.sql(f"UPDATE {db}.c SET v = 'x' WHERE id = 2")
    gtid_update = my.query("SELECT @@gtid_binlog_pos")[0][0]
    records = wait_for_lines(case.topic("c"), 4, proc=tm)
    assert tm.terminate() == 0, tm.log_tail()
    file = my.query("SHOW MASTER STATUS")[0][0]
    events = {int(r[1]): r[2] for r in my.query(f"SHOW BINLOG EVENTS IN '{file}'")}

    srcs = [r["payload"]["source"] for r in records]
    for s in srcs:
        assert list(s) == SOURCE_KEYS, list(s)
        assert s["connector"] == "mariadb" and s["name"] == "inv"
        assert s["db"] == db and s["table"] == "c"
        assert s["snapshot"] == "false" and s["sequence"] is None and s["query"] is None
        assert s["server_id"] == server_id
        assert s["file"] == file
        # MariaDB's GTID event carries no thread id and no BEGIN query is written.
        assert s["thread"] is None
        # The binlog stores seconds: ts_ms is whole seconds, ts_us and ts_ns the same instant.
        assert s["ts_ms"] % 1000 == 0 and s["ts_us"] == s["ts_ms"] * 1000
        assert s["ts_ns"] == s["ts_ms"] * 1000000
        assert t0 - 2 <= s["ts_ms"] / 1000 <= time.time() + 1
    # pos is where the row's rows event starts; row numbers the rows within it.
    assert [events.get(s["pos"]) for s in srcs] == \
        ["Write_rows_v1"] * 3 + ["Update_rows_v1"], (srcs, events)
    assert srcs[0]["pos"] == srcs[1]["pos"] == srcs[2]["pos"] < srcs[3]["pos"]
    assert [s["row"] for s in srcs] == [0, 1, 2, 0]
    # The GTID of each row's transaction, in MariaDB's domain-server-seq form.
    assert [s["gtid"] for s in srcs] == [gtid_insert] * 3 + [gtid_update]
    assert re.fullmatch(r"0-\d+-\d+", gtid_insert) and gtid_insert != gtid_update

    schema = _source_schema(records[0])
    assert schema["name"] == "io.debezium.connector.mariadb.Source"
    assert [(f["field"], f["type"], f["optional"]) for f in schema["fields"]] == [
        ("version", "string", False), ("connector", "string", False), ("name", "string", False),
        ("ts_ms", "int64", False), ("snapshot", "string", True), ("db", "string", False),
        ("sequence", "string", True), ("ts_us", "int64", True), ("ts_ns", "int64", True),
        ("table", "string", True), ("server_id", "int64", False), ("gtid", "string", True),
        ("file", "string", False), ("pos", "int64", False), ("row", "int32", False),
        ("thread", "int64", True), ("query", "string", True)]


def _metric(text, name, **labels):
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        key, value = line.rsplit(" ", 1)
        m = re.fullmatch(r"([a-z_]+)(\{(.*)\})?", key)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        if got == labels:
            return float(value)
    return None


def test_source_lag_is_measured_from_the_events_time(case):
    """Changes read late report their age: lag is now minus the event's time, not read time."""
    my = case.my
    db = case.db
    my.sql(f"CREATE TABLE {db}.l (id INT PRIMARY KEY)")
    job = case.job() + "SET admin_address = '127.0.0.1:0';\n"
    tm = case.start(job=job)
    case.wait_started(tm)
    my.sql(f"INSERT INTO {db}.l VALUES (1)")
    wait_for_lines(case.topic("l"), 1, proc=tm)
    lag = _metric(tm.admin_get("/metrics"), "tidemark_source_lag_seconds", source="inv")
    assert lag is not None and 0 <= lag < 30, lag
    assert tm.terminate() == 0, tm.log_tail()
    # Written while the job is down, read 4 s later: the lag says so.
    my.sql(f"INSERT INTO {db}.l VALUES (2)")
    time.sleep(4)
    tm.start()
    wait_for_lines(case.topic("l"), 2, proc=tm)
    lag = _metric(tm.admin_get("/metrics"), "tidemark_source_lag_seconds", source="inv")
    assert lag is not None and 3 <= lag < 60, lag
    assert tm.terminate() == 0, tm.log_tail()


def test_alter_the_binlog_shape_does_not_show(case):
    """Under MINIMAL metadata a renamed column keeps the binlog shape: the DDL event makes the
    source read the catalog again; a DDL that changes nothing makes no new schema version."""
    my = case.my
    db = case.db
    my.sql(f"CREATE TABLE {db}.s (id INT PRIMARY KEY, a VARCHAR(10))")
    my.sql("SET GLOBAL binlog_row_metadata = 'MINIMAL'")
    try:
        tm = case.start()
        case.wait_started(tm)
        my.sql(f"INSERT INTO {db}.s VALUES (1, 'one')")
        wait_for_lines(case.topic("s"), 1, proc=tm)
        # One step at a time, as a live stream sees them: the catalog is read when the
        # table's next TABLE_MAP comes, and must still describe that event (see the docs).
        steps = [f"ALTER TABLE {db}.s RENAME COLUMN a TO name; INSERT INTO {db}.s VALUES (2, 'two')",
                 f"ALTER TABLE {db}.s COMMENT 'nothing changes for the rows';"
                 f"INSERT INTO {db}.s VALUES (3, 'three')",
                 f"ALTER TABLE {db}.s DROP COLUMN name, ADD COLUMN title VARCHAR(10);"
                 f"INSERT INTO {db}.s VALUES (4, 'four'); UPDATE {db}.s SET title = 'vier' WHERE id = 4"]
        for n, step in zip((2, 3, 5), steps):
            my.sql(step)
            records = wait_for_lines(case.topic("s"), n, proc=tm)
        assert tm.terminate() == 0, tm.log_tail()
    finally:
        my.sql("SET GLOBAL binlog_row_metadata = 'FULL'")
    p = [r["payload"] for r in records]
    assert [x["op"] for x in p] == ["c", "c", "c", "c", "u"]
    assert p[0]["after"] == {"id": 1, "a": "one"}
    assert p[1]["after"] == {"id": 2, "name": "two"}
    assert p[2]["after"] == {"id": 3, "name": "three"}
    assert p[3]["after"] == {"id": 4, "title": "four"}
    assert p[4]["before"] == {"id": 4, "title": "four"} and p[4]["after"]["title"] == "vier"
    fields = [[f["field"] for f in r["schema"]["fields"][1]["fields"]] for r in records]
    assert fields[0] == ["id", "a"] and fields[1] == ["id", "name"] and fields[3] == ["id", "title"]
    log = tm.log_text()
    assert "DDL on a captured table" in log
    # Two real changes, two new versions (after 0: 1 and 2) sent downstream; the COMMENT none.
    versions = re.findall(r'table shape changed.*?version=(\d+)', log)
    assert versions == ["1", "2"], versions


@pytest.mark.parametrize("metadata", ["FULL", "NO_LOG"])
def test_geometry_and_point(case, metadata):
    """Spatial columns as Debezium's Geometry {wkb, srid} and Point {x, y, wkb, srid}."""
    my = case.my
    db = case.db
    my.sql(f"CREATE TABLE {db}.g (id INT PRIMARY KEY, shape GEOMETRY, p POINT, "
           f"s GEOMETRY REF_SYSTEM_ID=4326)")
    my.sql(f"SET GLOBAL binlog_row_metadata = '{metadata}'")
    try:
        tm = case.start(sink={"binary_handling_mode": "hex"})
        case.wait_started(tm)
        my.sql(f"INSERT INTO {db}.g VALUES (1, ST_GeomFromText('LINESTRING(0 0, 1 1, 2 0)'), "
               f"ST_GeomFromText('POINT(1.5 -2)'), ST_GeomFromText('POINT(3 4)', 4326));"
               f"INSERT INTO {db}.g VALUES (2, NULL, NULL, NULL)")
        records = wait_for_lines(case.topic("g"), 2, proc=tm)
        assert tm.terminate() == 0, tm.log_tail()
    finally:
        my.sql("SET GLOBAL binlog_row_metadata = 'FULL'")
    want = my.query(f"SELECT HEX(ST_AsWKB(shape)), HEX(ST_AsWKB(p)), HEX(ST_AsWKB(s)), "
                    f"ST_SRID(s) FROM {db}.g WHERE id = 1")[0]
    after = records[0]["payload"]["after"]
    # Whatever binary.handling.mode says, wkb is base64 bytes (the struct's own schema).
    assert base64.b64decode(after["shape"]["wkb"]).hex().upper() == want[0]
    assert after["shape"]["srid"] is None
    assert set(after["shape"]) == {"wkb", "srid"}
    assert list(after["p"]) == ["x", "y", "wkb", "srid"]
    assert (after["p"]["x"], after["p"]["y"]) == (1.5, -2.0)
    assert base64.b64decode(after["p"]["wkb"]).hex().upper() == want[1]
    assert after["s"]["srid"] == int(want[3]) == 4326
    assert base64.b64decode(after["s"]["wkb"]).hex().upper() == want[2]
    x, y = struct.unpack("<dd", base64.b64decode(after["s"]["wkb"])[5:])
    assert (x, y) == (3.0, 4.0)
    assert records[1]["payload"]["after"] == {"id": 2, "shape": None, "p": None, "s": None}
    fields = {f["field"]: f for f in records[0]["schema"]["fields"][1]["fields"]}
    assert fields["shape"]["name"] == "io.debezium.data.geometry.Geometry"
    assert fields["s"]["name"] == "io.debezium.data.geometry.Geometry"
    assert fields["p"]["name"] == "io.debezium.data.geometry.Point"
    assert [(f["field"], f["type"]) for f in fields["p"]["fields"]] == \
        [("x", "double"), ("y", "double"), ("wkb", "bytes"), ("srid", "int32")]
    assert [(f["field"], f["type"], f["optional"]) for f in fields["shape"]["fields"]] == \
        [("wkb", "bytes", False), ("srid", "int32", True)]
