#!/usr/bin/env python3
"""Captures the binlog byte vectors the mysql-cdc row-decoder unit tests read.

Run from the repository root (needs mariadb-server; takes a few seconds):

    /usr/bin/python3 tests/data/mysql/capture.py

It starts a throwaway MariaDB (tests/lib/mariadbserver.py: ROW format, FULL
row metadata, CRC32 checksums), creates the table in TYPES_DDL, runs the
statements in STATEMENTS, and reads the binlog file from the data directory.
Every TABLE_MAP and rows event of the table is written whole (common header,
body and checksum) as hex into types.json, next to the server's own text form
of each row image after each statement (SELECT with the EXPECT expressions),
so the unit test compares what the decoder makes of the bytes with what the
server says the values are.  The server version is recorded too.
"""

import json
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "lib"))
from mariadbserver import MariaDbServer  # noqa: E402

# (column name, SQL type, expression giving the server's text form of the value)
COLUMNS = [
    ("id", "INT NOT NULL PRIMARY KEY", None),
    ("c_tiny", "TINYINT", None),
    ("c_utiny", "TINYINT UNSIGNED", None),
    ("c_bool", "TINYINT(1)", None),
    ("c_small", "SMALLINT", None),
    ("c_usmall", "SMALLINT UNSIGNED", None),
    ("c_med", "MEDIUMINT", None),
    ("c_umed", "MEDIUMINT UNSIGNED", None),
    ("c_int", "INT", None),
    ("c_uint", "INT UNSIGNED", None),
    ("c_big", "BIGINT", None),
    ("c_ubig", "BIGINT UNSIGNED", None),
    ("c_dec", "DECIMAL(10,2)", None),
    ("c_dec0", "DECIMAL(5,0)", None),
    ("c_dec18", "DECIMAL(18,9)", None),
    ("c_decbig", "DECIMAL(65,30)", None),
    ("c_float", "FLOAT", "CAST({} AS DOUBLE)"),
    ("c_double", "DOUBLE", None),
    ("c_date", "DATE", None),
    ("c_dt0", "DATETIME", None),
    ("c_dt3", "DATETIME(3)", None),
    ("c_dt6", "DATETIME(6)", None),
    ("c_ts0", "TIMESTAMP NULL", None),
    ("c_ts6", "TIMESTAMP(6) NULL", None),
    ("c_time0", "TIME", None),
    ("c_time2", "TIME(2)", None),
    ("c_time4", "TIME(4)", None),
    ("c_time6", "TIME(6)", None),
    ("c_year", "YEAR", None),
    ("c_char", "CHAR(10)", None),
    ("c_varchar", "VARCHAR(300)", None),
    ("c_latin1", "VARCHAR(20) CHARACTER SET latin1", None),
    ("c_text", "TEXT", None),
    ("c_binary", "BINARY(4)", "HEX({})"),
    ("c_varbinary", "VARBINARY(10)", "HEX({})"),
    ("c_blob", "BLOB", "HEX({})"),
    ("c_longblob", "LONGBLOB", "HEX({})"),
    ("c_enum", "ENUM('red','green','blue')", None),
    ("c_set", "SET('a','b','c','d')", None),
    ("c_bit1", "BIT(1)", "{}+0"),
    ("c_bit12", "BIT(12)", "{}+0"),
    ("c_bit64", "BIT(64)", "{}+0"),
    ("c_json", "JSON", None),
    ("c_geom", "GEOMETRY", "HEX(ST_AsWKB({}))"),
]

TYPES_DDL = ("CREATE TABLE capture.types (" +
             ", ".join(f"{n} {t}" for n, t, _ in COLUMNS) + ") DEFAULT CHARSET=utf8mb4")

ROW1 = ("1, -5, 200, 1, -30000, 65000, -8000000, 16000000, -2000000000, 4000000000, "
        "-9000000000000000000, 18446744073709551615, 12345678.91, -12345, -123456789.123456789, "
        "'12345678901234567890123456789012345.123456789012345678901234567890', 1.5, "
        "3.141592653589793, '2024-02-29', '2024-02-29 13:14:15', '1999-12-31 23:59:59.123', "
        "'2038-01-19 03:14:07.999999', '2024-06-01 12:00:00', '1970-01-01 00:00:01.000001', "
        "'-838:59:59', '-00:00:01.50', '12:34:56.7890', '100:00:00.000001', 2155, "
        "'chär', 'ünïcødé ✓ 😀', 'café', 'long text', x'00ff10', x'deadbeef', x'', x'0102', "
        "'green', 'a,d', b'1', b'101010101010', b'1000000000000000000000000000000000000000000000000000000000000001', "
        "'{\"k\": [1, 2.5, \"x\"]}', ST_GeomFromText('POINT(1 2)')")
ROW2 = ("2, 127, 0, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, "
        "9223372036854775808, -0.01, 0, 0.000000001, "
        "'-0.000000000000000000000000000001', -0.25, -1e-300, '1000-01-01', "
        "'1000-01-01 00:00:00', '9999-12-31 23:59:59.999', '1970-01-01 00:00:00.000000', "
        "'1970-01-01 00:00:01', '2038-01-19 03:14:07.999999', "
        "'838:59:59', '00:00:00.01', '-00:00:00.0001', '-12:00:00.000001', 1901, "
        "'', '', 'ÿ', '', x'00', x'00', x'00ff', x'', 'red', '', b'0', b'0', b'0', "
        "'[]', ST_GeomFromText('LINESTRING(0 0, 1 1, 2 0)')")
ROW3 = "3" + ", NULL" * (len(COLUMNS) - 1)

STATEMENTS = [
    f"INSERT INTO capture.types VALUES ({ROW1}), ({ROW2}), ({ROW3})",
    "UPDATE capture.types SET c_int = c_int + 1, c_varchar = 'changed', c_ubig = 1, "
    "c_time6 = '-00:00:00.000001', c_dec = -99999999.99, c_bit12 = b'111111111111', "
    "c_json = NULL WHERE id = 1",
    "UPDATE capture.types SET c_tiny = 1, c_text = 'was null' WHERE id = 3",
    "DELETE FROM capture.types WHERE id = 2",
]


def select_sql() -> str:
    exprs = [(e.format(n) if e else n) for n, _, e in COLUMNS]
    return "SELECT " + ", ".join(exprs) + " FROM capture.types ORDER BY id"


def read_events(path: Path):
    data = path.read_bytes()
    assert data[:4] == b"\xfebin", "not a binlog file"
    off = 4
    while off + 19 <= len(data):
        _, etype, _, size, _, _ = struct.unpack_from("<IBIIIH", data, off)
        yield etype, data[off:off + size]
        off += size


def main() -> int:
    with MariaDbServer() as my:
        my.sql("CREATE DATABASE capture; SET time_zone = '+00:00'; " + TYPES_DDL)
        version = my.query("SELECT @@version")[0][0]
        snapshots = []
        for st in STATEMENTS:
            before = my.query("SET time_zone = '+00:00'; " + select_sql())
            my.sql("SET time_zone = '+00:00'; " + st)
            after = my.query("SET time_zone = '+00:00'; " + select_sql())
            snapshots.append({"statement": st, "before": before, "after": after})
        binlog = my.query("SHOW MASTER STATUS")[0][0]
        my.sql("FLUSH BINARY LOGS")
        events = []
        for etype, raw in read_events(my.datadir / binlog):
            # TABLE_MAP (19), rows v1 (23-25), rows v2 (30-32), and the
            # FORMAT_DESCRIPTION (15) that says the checksum algorithm.
            if etype in (15, 19, 23, 24, 25, 30, 31, 32):
                events.append({"type": etype, "hex": raw.hex()})
    out = {
        "made_by": "tests/data/mysql/capture.py",
        "server": version,
        "ddl": TYPES_DDL,
        "columns": [n for n, _, _ in COLUMNS],
        "statements": snapshots,
        "events": events,
    }
    (HERE / "types.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(events)} events from MariaDB {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
