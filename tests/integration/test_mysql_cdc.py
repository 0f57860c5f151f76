"""The mysql-cdc source against a real MariaDB 10.11 (tests/lib/mariadbserver.py).

Covers: every column type through insert, update and delete, read back from
the file sink and compared value by value with the server's own text of each
value (SELECT before and after each statement); multi-row and multi-table
transactions and a rolled-back one; a restart that resumes exactly (changes
made while the job was down arrive once, nothing before them again); and the
start checks, each with its message.
"""

import base64
import datetime
import decimal
import os
import sys
from pathlib import Path

import pytest

from mariadbserver import MariaDbServer
from tidemark import Tidemark, cdc_job, read_jsonl, wait_for_lines, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data" / "mysql"))
import capture  # noqa: E402  (the column list and rows the unit vectors were made from)

EXIT_TIMEOUT = 90
PASSWORD = "cdc-pw"


@pytest.fixture(scope="module")
def my():
    with MariaDbServer() as server:
        server.sql(f"CREATE USER cdc@'%' IDENTIFIED BY '{PASSWORD}';"
                   "GRANT REPLICATION SLAVE, BINLOG MONITOR, SELECT ON *.* TO cdc@'%';"
                   "CREATE USER nopriv@'%' IDENTIFIED BY 'x'; GRANT SELECT ON *.* TO nopriv@'%';")
        yield server


class MyCase:
    """One test's database, output directory and daemons."""

    def __init__(self, my, tmp_path, tidemark_bin, name):
        self.my = my
        self.db = name
        self.dir = tmp_path
        self.bin = tidemark_bin
        self.out = tmp_path / "out"
        self.out.mkdir()
        self.daemons = []
        my.sql(f"DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}")

    def source(self, **extra):
        opts = {"connector": "mysql-cdc", "host": self.my.host, "port": self.my.port,
                "user": "cdc", "password": PASSWORD, "tables": f"{self.db}.*",
                "server_id": 5401, "snapshot": "never"}
        opts.update(extra)
        return {k: v for k, v in opts.items() if v is not None}

    def job(self, source=None, sink=None):
        snk = {"connector": "file", "path": str(self.out), "format": "debezium-json"}
        snk.update(sink or {})
        return cdc_job(self.source(**(source or {})), snk, source_name="inv")

    def start(self, job=None, name="tm", **kw):
        daemon = Tidemark(job or self.job(**kw), self.dir / name, bin=self.bin)
        self.daemons.append(daemon)
        daemon.start()
        return daemon

    def wait_started(self, tm):
        wait_until(lambda: "source opened" in tm.log_text(), 30, "the mysql source opened",
                   proc=tm.proc)

    def topic(self, table):
        return self.out / f"inv.{self.db}.{table}.jsonl"

    def cleanup(self):
        for d in self.daemons:
            if d.running():
                d.terminate(timeout=20)


@pytest.fixture
def case(my, tmp_path, tidemark_bin, request):
    name = "".join(ch if ch.isalnum() else "_" for ch in request.node.name.replace("test_", ""))
    c = MyCase(my, tmp_path, tidemark_bin, "t_" + name[:50])
    yield c
    c.cleanup()


# -- Debezium JSON back to the server's text ------------------------------------

def _fields(record, image):
    for f in record["schema"]["fields"]:
        if f["field"] == image:
            return {x["field"]: x for x in f["fields"]}
    raise AssertionError(f"no {image} in the schema")


def _frac(us, digits):
    return "" if digits == 0 else "." + f"{us:06d}"[:digits]


def _fsp(sqltype):
    return int(sqltype.split("(")[1].split(")")[0]) if "(" in sqltype else 0


def server_text(value, field, sqltype):
    """The mariadb client's text for a value of SQL type sqltype, from its Debezium JSON."""
    if value is None:
        return None
    name = field.get("name", "")
    t = sqltype.split()[0].upper()
    if t.startswith("DECIMAL"):
        return value  # decimal_handling = 'string'
    if t.startswith("BIGINT") and "UNSIGNED" in sqltype:
        return value  # bigint_unsigned_handling = 'precise' with decimal_handling = 'string'
    if t.startswith(("TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT", "YEAR")):
        return str(value)
    if t in ("FLOAT", "DOUBLE"):
        return value  # compared as floats
    if t == "DATE":
        return (datetime.date(1970, 1, 1) + datetime.timedelta(days=value)).isoformat()
    if t.startswith("DATETIME"):
        us = value * 1000 if name == "io.debezium.time.Timestamp" else value
        dt = datetime.datetime(1970, 1, 1) + datetime.timedelta(microseconds=us)
        return dt.strftime("%Y-%m-%d %H:%M:%S") + _frac(dt.microsecond, _fsp(sqltype))
    if t.startswith("TIMESTAMP"):
        assert name == "io.debezium.time.ZonedTimestamp", field
        dt = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return dt.strftime("%Y-%m-%d %H:%M:%S") + _frac(dt.microsecond, _fsp(sqltype))
    if t.startswith("TIME"):
        us = value * 1000 if name == "io.debezium.time.Time" else value
        neg = us < 0
        us = abs(us)
        s = (f"{'-' if neg else ''}{us // 3600000000:02d}:{us // 60000000 % 60:02d}:"
             f"{us // 1000000 % 60:02d}" + _frac(us % 1000000, _fsp(sqltype)))
        return s
    if t.startswith("BIT"):
        if isinstance(value, bool):
            return "1" if value else "0"
        raw = bytes.fromhex(value)  # binary_handling_mode = 'hex'; Bits are little-endian
        return str(int.from_bytes(raw, "little"))
    if t.startswith("GEOMETRY"):
        # Debezium's Geometry struct: the WKB (always base64 bytes) and the SRID (0: null).
        assert name == "io.debezium.data.geometry.Geometry" and value["srid"] is None, value
        return base64.b64decode(value["wkb"]).hex().upper()
    if t.startswith(("BINARY", "VARBINARY", "BLOB", "LONGBLOB")):
        return value.upper()
    return value  # CHAR, VARCHAR, TEXT, ENUM, SET, JSON


def check_image(record, image, want, context):
    fields = _fields(record, image)
    got = record["payload"][image]
    assert got is not None, f"{context}: no {image} image"
    for (col, sqltype, _), w in zip(capture.COLUMNS, want):
        g = server_text(got[col], fields[col], sqltype)
        if sqltype.split()[0] in ("FLOAT", "DOUBLE") and g is not None and w is not None:
            assert float(g) == float(w), f"{context}: {col}: got {g!r}, want {w!r}"
        else:
            assert g == w, f"{context}: {col} ({sqltype}): got {g!r}, want {w!r}"


@pytest.mark.parametrize("metadata", ["FULL", "MINIMAL", "NO_LOG"])
def test_every_type_insert_update_delete(case, metadata):
    """The capture.py table and statements, end to end, value by value.

    With binlog_row_metadata FULL the binlog describes every column; with
    MINIMAL and NO_LOG (MariaDB's default) names, signedness, charsets, labels
    and the key come from information_schema.
    """
    my = case.my
    ddl = capture.TYPES_DDL.replace("capture.", f"{case.db}.")
    my.sql("SET time_zone = '+00:00'; " + ddl)
    my.sql(f"SET GLOBAL binlog_row_metadata = '{metadata}'")
    try:
        tm = case.start(source={"bigint_unsigned_handling": "precise"},
                        sink={"decimal_handling": "string", "binary_handling_mode": "hex"})
        case.wait_started(tm)
        _every_type(case, tm)
    finally:
        my.sql("SET GLOBAL binlog_row_metadata = 'FULL'")
    if metadata != "FULL":
        assert "binlog_row_metadata is not FULL" in tm.log_text()


def _every_type(case, tm):
    my = case.my
    select = capture.select_sql().replace("capture.", f"{case.db}.")
    expected = []
    for st in capture.STATEMENTS:
        st = st.replace("capture.", f"{case.db}.")
        before = my.query("SET time_zone = '+00:00'; " + select)
        my.sql("SET time_zone = '+00:00'; " + st)
        after = my.query("SET time_zone = '+00:00'; " + select)
        expected.append((st, {r[0]: r for r in before}, {r[0]: r for r in after}))
    # 3 inserts, 2 updates, 1 delete (plus the delete's tombstone, if the sink writes one).
    records = wait_for_lines(case.topic("types"), 6, proc=tm)
    records = [r for r in records if r is not None and r.get("payload") is not None]
    assert [r["payload"]["op"] for r in records] == ["c", "c", "c", "u", "u", "d"]
    which = [0, 0, 0, 1, 2, 3]
    for rec, si in zip(records, which):
        st, before, after = expected[si]
        p = rec["payload"]
        key = str((p["after"] or p["before"])["id"])
        if p["op"] in ("u", "d"):
            check_image(rec, "before", before[key], f"{st[:30]} before id={key}")
        if p["op"] in ("c", "u"):
            check_image(rec, "after", after[key], f"{st[:30]} after id={key}")
        assert p["source"]["name"] == "inv" and p["source"]["db"] == case.db
        assert p["source"]["table"] == "types"
    assert tm.terminate() == 0, tm.log_tail()
    # Every event was checked against its CRC32.
    assert "checksums=crc32" in tm.log_text(), tm.log_tail()


def test_transactions_multi_table_and_rollback(case):
    my = case.my
    db = case.db
    my.sql(f"CREATE TABLE {db}.a (id INT PRIMARY KEY, v VARCHAR(10));"
           f"CREATE TABLE {db}.b (id INT PRIMARY KEY, w INT);"
           f"CREATE TABLE {db}.skipped (id INT PRIMARY KEY)")
    tm = case.start(source={"tables": f"{db}.a, `{db}`.`b`"})
    case.wait_started(tm)
    my.sql(f"""
        START TRANSACTION;
        INSERT INTO {db}.a VALUES (1, 'x'), (2, 'y'), (3, 'z');
        INSERT INTO {db}.b VALUES (10, 100);
        INSERT INTO {db}.skipped VALUES (1);
        UPDATE {db}.a SET v = 'x2' WHERE id = 1;
        COMMIT;
        START TRANSACTION;
        INSERT INTO {db}.a VALUES (99, 'gone');
        INSERT INTO {db}.b VALUES (99, 0);
        ROLLBACK;
        DELETE FROM {db}.b WHERE id = 10;
    """)
    a = wait_for_lines(case.topic("a"), 4, proc=tm)
    b = wait_for_lines(case.topic("b"), 2, proc=tm)
    assert [(r["payload"]["op"], (r["payload"]["after"] or {}).get("id")) for r in a] == \
        [("c", 1), ("c", 2), ("c", 3), ("u", 1)]
    assert a[3]["payload"]["before"]["v"] == "x" and a[3]["payload"]["after"]["v"] == "x2"
    assert [r["payload"]["op"] for r in b if r["payload"]] == ["c", "d"]
    assert not case.topic("skipped").exists()
    assert tm.terminate() == 0, tm.log_tail()
    # Nothing of the rolled-back transaction, ever.
    for r in read_jsonl(case.topic("a")) + read_jsonl(case.topic("b")):
        p = r["payload"]
        assert 99 not in ((p["after"] or {}).get("id"), (p["before"] or {}).get("id"))


def test_restart_resumes_exactly(case):
    """Changes made while the job is down arrive once after the restart; nothing repeats."""
    my = case.my
    db = case.db
    my.sql(f"CREATE TABLE {db}.seq (id INT PRIMARY KEY, note VARCHAR(20))")
    tm = case.start()
    case.wait_started(tm)
    my.sql("".join(f"INSERT INTO {db}.seq VALUES ({i}, 'first');" for i in range(1, 41)))
    wait_for_lines(case.topic("seq"), 40, proc=tm)
    assert tm.terminate() == 0, tm.log_tail()
    position = (tm.state_dir / "mysql-inv" / "position").read_text()
    assert position.startswith("file=binlog.") and " gtid=0-1-" in position, position
    # While it is down: inserts, an update and a delete, in separate transactions.
    my.sql("".join(f"INSERT INTO {db}.seq VALUES ({i}, 'down');" for i in range(41, 81)))
    my.sql(f"UPDATE {db}.seq SET note = 'changed' WHERE id = 5; DELETE FROM {db}.seq WHERE id = 6")
    tm.start()
    wait_for_lines(case.topic("seq"), 82, proc=tm)
    my.sql(f"INSERT INTO {db}.seq VALUES (81, 'after')")
    records = wait_for_lines(case.topic("seq"), 83, proc=tm)
    assert tm.terminate() == 0, tm.log_tail()
    records = read_jsonl(case.topic("seq"))
    payloads = [r["payload"] for r in records if r.get("payload")]
    inserts = [p["after"]["id"] for p in payloads if p["op"] == "c"]
    assert inserts == list(range(1, 82)), inserts
    assert [p["op"] for p in payloads[80:]] == ["u", "d", "c"]
    assert "resuming" in tm.log_text() and 'from="position file"' in tm.log_text()


# -- start checks ------------------------------------------------------------------

def expect_failure(tm, *words):
    code = tm.wait_exit(EXIT_TIMEOUT)
    text = tm.log_text()
    assert code != 0, f"the job should have failed:\n{tm.log_tail()}"
    for w in words:
        assert w.lower() in text.lower(), f"the error should mention {w!r}:\n{tm.log_tail()}"
    assert PASSWORD not in text, "the password must never be logged"
    return text


def test_binlog_format_must_be_row(case):
    case.my.sql("SET GLOBAL binlog_format = 'STATEMENT'")
    try:
        tm = case.start(name="fmt")
        expect_failure(tm, "binlog_format is STATEMENT", "ROW")
    finally:
        case.my.sql("SET GLOBAL binlog_format = 'ROW'")


def test_catalog_that_no_longer_matches_stops_the_job(case):
    """Without FULL metadata, events older than an ALTER cannot be described: a clear stop."""
    my = case.my
    db = case.db
    my.sql(f"CREATE TABLE {db}.m (id INT PRIMARY KEY, a INT)")
    my.sql("SET GLOBAL binlog_row_metadata = 'MINIMAL'")
    try:
        tm = case.start(name="meta")
        case.wait_started(tm)
        my.sql(f"INSERT INTO {db}.m VALUES (1, 1)")
        wait_for_lines(case.topic("m"), 1, proc=tm)
        assert tm.terminate() == 0
        # While the job is down: an event for the old shape, then the shape changes.
        my.sql(f"UPDATE {db}.m SET a = 2 WHERE id = 1; ALTER TABLE {db}.m ADD COLUMN b INT")
        tm.start()
        expect_failure(tm, f"{db}.m", "binlog_row_metadata = FULL")
    finally:
        my.sql("SET GLOBAL binlog_row_metadata = 'FULL'")


def test_binlog_row_image_minimal_warns(case):
    case.my.sql("SET GLOBAL binlog_row_image = 'MINIMAL'")
    try:
        tm = case.start(name="img")
        case.wait_started(tm)
        wait_until(lambda: "binlog_row_image is not FULL" in tm.log_text() or None, 30,
                   "the warning", proc=tm.proc)
        assert tm.terminate() == 0
    finally:
        case.my.sql("SET GLOBAL binlog_row_image = 'FULL'")


def test_missing_privileges(case):
    tm = case.start(name="priv", source={"user": "nopriv", "password": "x"})
    expect_failure(tm, "nopriv", "REPLICATION SLAVE", "GRANT")


def test_wrong_password(case):
    tm = case.start(name="pw", source={"password": "not-it"})
    expect_failure(tm, "cannot log in", "cdc")


def test_server_id_of_the_server_itself(case):
    tm = case.start(name="sid", source={"server_id": 1})
    expect_failure(tm, "server_id 1", "choose another")


def test_server_id_used_by_another_replica(case):
    """A second job with the same server_id sees the first registered and refuses to start."""
    case.my.sql(f"CREATE TABLE {case.db}.x (id INT PRIMARY KEY)")
    first = case.start(name="first")
    case.wait_started(first)
    # The first one is registered as a replica once its dump runs.
    wait_until(lambda: any(r[0] == "5401" for r in case.my.query("SHOW SLAVE HOSTS")) or None,
               30, "the first job is a registered replica", proc=first.proc)
    second = Tidemark(case.job(source={"user": "root", "password": None}), case.dir / "second",
                      bin=case.bin)
    case.daemons.append(second)
    second.start()
    expect_failure(second, "server_id 5401", "already used")
    assert first.running()


def test_snapshot_chunk_size_out_of_range(case):
    tm = case.start(name="snap", source={"snapshot": "initial", "snapshot_chunk_size": 0})
    expect_failure(tm, "snapshot_chunk_size", "1 to 10000000")


def test_missing_table(case):
    tm = case.start(name="tbl", source={"tables": f"{case.db}.nope"})
    expect_failure(tm, f"{case.db}.nope", "does not exist")


def test_purged_binlog_on_resume(case):
    """The file the position names is purged, but no transaction after the position was
    (none happened): MariaDB resumes by the GTID set, nothing lost.  test_mysql_snapshot.py
    covers the purge that loses changes (the error and when_needed)."""
    my = case.my
    my.sql(f"CREATE TABLE {case.db}.p (id INT PRIMARY KEY)")
    tm = case.start(name="purge")
    case.wait_started(tm)
    my.sql(f"INSERT INTO {case.db}.p VALUES (1)")
    wait_for_lines(case.topic("p"), 1, proc=tm)
    assert tm.terminate() == 0
    needed = (tm.state_dir / "mysql-inv" / "position").read_text().split()[0][5:]

    def purged():
        # The server keeps a file until InnoDB's binlog checkpoint has moved past it.
        my.sql("FLUSH BINARY LOGS")
        newest = my.query("SHOW MASTER STATUS")[0][0]
        my.sql(f"PURGE BINARY LOGS TO '{newest}'")
        return newest if all(r[0] != needed for r in my.query("SHOW BINARY LOGS")) else None

    newest = wait_until(purged, 30, f"{needed} to be purged")
    assert newest != needed
    tm.start()
    my.sql(f"INSERT INTO {case.db}.p VALUES (2)")
    wait_for_lines(case.topic("p"), 2, proc=tm)
    assert tm.terminate() == 0, tm.log_tail()
    assert _ids(case.topic("p")) == [1, 2]
    assert "by=gtid" in tm.log_text()


# -- failures mid-stream ---------------------------------------------------------------

def _ids(path):
    """Ids of the inserts in a sink file, with or without the schema part (schemas = false)."""
    out = []
    for r in read_jsonl(path):
        p = r.get("payload", r) if r is not None else None
        if p and p.get("op") == "c":
            out.append(p["after"]["id"])
    return out


def test_server_restart_mid_stream_loses_nothing(case):
    """The server stops and comes back: the job reconnects and resumes at the last transaction."""
    my = case.my
    db = case.db
    my.sql(f"CREATE TABLE {db}.r (id INT PRIMARY KEY)")
    tm = case.start(source={"heartbeat_interval": "500ms"})
    case.wait_started(tm)
    my.sql("".join(f"INSERT INTO {db}.r VALUES ({i});" for i in range(1, 21)))
    wait_for_lines(case.topic("r"), 20, proc=tm)
    my.restart()
    my.sql("".join(f"INSERT INTO {db}.r VALUES ({i});" for i in range(21, 41)))
    wait_for_lines(case.topic("r"), 40, timeout=90, proc=tm)
    assert tm.terminate() == 0, tm.log_tail()
    assert _ids(case.topic("r")) == list(range(1, 41))
    assert "binlog connection restored" in tm.log_text(), tm.log_tail()


@pytest.mark.deadline(600)
def test_kill9_with_checkpoints_gives_each_change_exactly_once(case):
    """kill -9 at random points under load; checkpoints make the file sink exactly-once."""
    import random
    import threading
    import time

    my = case.my
    db = case.db
    my.sql(f"CREATE TABLE {db}.ev (id INT PRIMARY KEY, pad VARCHAR(40))")
    job = case.job(sink={"schemas": False}) + "\nSET checkpoint_interval = '300ms';\n"
    tm = case.start(job=job)
    case.wait_started(tm)
    stop = threading.Event()
    next_id = [1]

    def writer():
        while not stop.is_set():
            first = next_id[0]
            # Small multi-row transactions: a kill lands inside and between them.
            stmts = "".join(
                f"START TRANSACTION; INSERT INTO {db}.ev VALUES ({i}, 'x'), ({i + 1}, 'y'); COMMIT;"
                for i in range(first, first + 40, 2))
            my.sql(stmts)
            next_id[0] = first + 40

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    rng = random.Random(20261207)
    kills = 0
    try:
        for _ in range(6):
            time.sleep(rng.uniform(0.3, 1.5))
            tm.kill9()
            kills += 1
            time.sleep(rng.uniform(0.0, 0.4))
            tm.start()
    finally:
        stop.set()
        t.join(60)
    end = next_id[0]
    path = case.topic("ev")

    def all_there():
        try:
            return set(range(1, end)) <= set(_ids(path))
        except AssertionError:
            return False

    wait_until(all_there, 180, f"ids 1..{end - 1} in {path.name}", proc=tm)
    assert tm.terminate() == 0, tm.log_tail()
    ids = _ids(path)
    dup = sorted({i for i in ids if ids.count(i) > 1})
    assert not dup, f"written more than once: {dup[:20]}"
    assert sorted(ids) == list(range(1, end)), "missing or unexpected ids"
    assert ids == sorted(ids), "not in binlog order"
    assert kills == 6
    assert 'from="checkpoint"' in tm.log_text(), tm.log_tail()


def test_alter_table_mid_stream(case):
    """Rows before and after ADD/DROP/RENAME/MODIFY COLUMN each carry the columns of their time."""
    my = case.my
    db = case.db
    my.sql(f"CREATE TABLE {db}.s (id INT PRIMARY KEY, a VARCHAR(10), b INT)")
    tm = case.start()
    case.wait_started(tm)
    my.sql(f"""
        INSERT INTO {db}.s VALUES (1, 'one', 10);
        ALTER TABLE {db}.s ADD COLUMN c DECIMAL(6,2) AFTER a;
        INSERT INTO {db}.s VALUES (2, 'two', 2.50, 20);
        ALTER TABLE {db}.s DROP COLUMN b;
        UPDATE {db}.s SET a = 'uno' WHERE id = 1;
        ALTER TABLE {db}.s RENAME COLUMN a TO name;
        ALTER TABLE {db}.s MODIFY COLUMN c DECIMAL(10,4);
        INSERT INTO {db}.s VALUES (3, 'three', 3.1234);
    """)
    recs = wait_for_lines(case.topic("s"), 4, proc=tm)
    assert tm.terminate() == 0, tm.log_tail()
    p = [r["payload"] for r in recs]
    assert [x["op"] for x in p] == ["c", "c", "u", "c"]
    assert set(p[0]["after"]) == {"id", "a", "b"}
    assert set(p[1]["after"]) == {"id", "a", "c", "b"}
    assert p[2]["before"] == {"id": 1, "a": "one", "c": None}
    assert p[2]["after"]["a"] == "uno"
    assert set(p[3]["after"]) == {"id", "name", "c"} and p[3]["after"]["name"] == "three"
    # The decimal's scale follows the column's new type.
    scales = [f["parameters"]["scale"] for f in _fields(recs[3], "after").values()
              if f.get("name") == "org.apache.kafka.connect.data.Decimal"]
    assert scales == ["4"], scales
    assert "table shape changed" in tm.log_text()


def test_full_metadata_events_older_than_the_catalog(case):
    """With FULL metadata, events written before an ALTER decode after it (names match by name)."""
    my = case.my
    db = case.db
    my.sql(f"CREATE TABLE {db}.o (id INT PRIMARY KEY, doc JSON, a INT)")
    tm = case.start()
    case.wait_started(tm)
    my.sql(f"INSERT INTO {db}.o VALUES (1, '{{\"k\": 1}}', 1)")
    wait_for_lines(case.topic("o"), 1, proc=tm)
    assert tm.terminate() == 0
    # While the job is down: a row of the old shape, then a column goes before `doc`.
    my.sql(f"INSERT INTO {db}.o VALUES (2, '[2]', 2);"
           f"ALTER TABLE {db}.o ADD COLUMN z INT FIRST;"
           f"INSERT INTO {db}.o VALUES (9, 3, '\"three\"', 3)")
    tm.start()
    recs = wait_for_lines(case.topic("o"), 3, proc=tm)
    assert tm.terminate() == 0, tm.log_tail()
    after = [r["payload"]["after"] for r in recs]
    assert after[1] == {"id": 2, "doc": "[2]", "a": 2}
    assert after[2] == {"z": 9, "id": 3, "doc": "\"three\"", "a": 3}
    # The JSON column is still recognised (its check matched by name, not position).
    for r in recs[1:]:
        assert _fields(r, "after")["doc"].get("name") == "io.debezium.data.Json"


def test_big_transaction_and_a_lost_connection_inside_it(case):
    """One 100 000-row transaction streams through in batches; the binlog connection is
    killed while it is being read, and the rows already emitted are not emitted again."""
    my = case.my
    db = case.db
    n = 100_000
    my.sql(f"CREATE TABLE {db}.big (id INT PRIMARY KEY, pad CHAR(50))")
    tm = Tidemark(case.job(sink={"schemas": False}), case.dir / "tm", bin=case.bin)
    case.daemons.append(tm)
    # A slow source (5 ms per rows event of about 100 rows), so the kill lands while the
    # transaction is still being read.
    tm.start_with(failpoints="mysql.stream.rows=sleep(5)")
    case.wait_started(tm)
    my.sql(f"INSERT INTO {db}.big SELECT seq, REPEAT('p', 50) FROM {db}.seq_1_to_{n}")
    path = case.topic("big")

    def some_lines():
        try:
            k = path.read_bytes().count(b"\n")
        except FileNotFoundError:
            return None
        return k if 0 < k < n else None

    wait_until(some_lines, 60, "the transaction to be partly written", proc=tm)
    killed = 0
    for row in my.query("SELECT ID FROM information_schema.PROCESSLIST "
                        "WHERE COMMAND = 'Binlog Dump' AND USER = 'cdc'"):
        my.sql(f"KILL {row[0]}", check=False)
        killed += 1
    assert killed == 1
    wait_for_lines(path, n, timeout=240, proc=tm)
    my.sql(f"INSERT INTO {db}.big VALUES ({n + 1}, 'after')")
    wait_for_lines(path, n + 1, timeout=60, proc=tm)
    assert tm.terminate() == 0, tm.log_tail()
    ids = _ids(path)
    assert len(ids) == n + 1 and ids == list(range(1, n + 2)), \
        f"{len(ids)} rows, {len(ids) - len(set(ids))} duplicates"
    assert "binlog connection restored" in tm.log_text(), tm.log_tail()
    assert "resuming inside a transaction" in tm.log_text(), tm.log_tail()


def test_binlog_checksum_changed_mid_stream(case):
    """binlog_checksum set to NONE and back: each file's FORMAT_DESCRIPTION says what to check."""
    my = case.my
    db = case.db
    my.sql(f"CREATE TABLE {db}.k (id INT PRIMARY KEY)")
    tm = case.start()
    case.wait_started(tm)
    try:
        my.sql(f"INSERT INTO {db}.k VALUES (1)")
        my.sql("SET GLOBAL binlog_checksum = 'NONE'")
        my.sql(f"INSERT INTO {db}.k VALUES (2)")
        my.sql("SET GLOBAL binlog_checksum = 'CRC32'")
        my.sql(f"INSERT INTO {db}.k VALUES (3)")
        wait_for_lines(case.topic("k"), 3, proc=tm)
    finally:
        my.sql("SET GLOBAL binlog_checksum = 'CRC32'")
    assert tm.terminate() == 0, tm.log_tail()
    assert _ids(case.topic("k")) == [1, 2, 3]
    log = tm.log_text()
    assert "checksums=none" in log and log.rindex("checksums=crc32") > log.index("checksums=none")


def test_watermark_column(case):
    """`watermark` on a mysql-cdc table: the runtime's watermark follows the column (one partition)."""
    import json
    case.my.sql(f"CREATE TABLE {case.db}.ev (id INT PRIMARY KEY, ts DATETIME(6))")
    src = case.source(tables=f"{case.db}.ev", watermark="ts - INTERVAL '1 second'")
    snk = {"connector": "file", "path": str(case.out), "format": "debezium-json"}
    # mysql-cdc takes no declared columns yet: the column is found per table at run time.
    job = cdc_job(src, snk, source_name="inv")
    job += "SET admin_address = '127.0.0.1:0';\n"
    tm = case.start(job)
    case.wait_started(tm)

    def wm():
        (s,) = json.loads(tm.admin_get("/v1/job"))["sources"]
        return s["watermark_ms"]

    case.my.sql(f"INSERT INTO {case.db}.ev VALUES (1, '2026-12-01 10:00:05'), "
                f"(2, '2026-12-01 10:00:03'), (3, NULL)")
    t = int(datetime.datetime(2026, 12, 1, 10, 0, 4, tzinfo=datetime.timezone.utc).timestamp()
            * 1000)
    wait_until(lambda: wm() == t, 30, f"watermark_ms {t}", proc=tm.proc)
    case.my.sql(f"UPDATE {case.db}.ev SET ts = '2026-12-01 10:01:00' WHERE id = 2")
    wait_until(lambda: wm() == t + 55_000, 30, "watermark after the update", proc=tm.proc)
    assert tm.terminate() == 0
