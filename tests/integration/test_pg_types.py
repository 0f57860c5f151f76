"""Every common PostgreSQL 15 built-in type, encoded as Debezium encodes it.

The expected values are written out by hand from Debezium's documented
mappings (decimal.handling.mode=precise, time.precision.mode=adaptive by
default), so a mistake in tidemark's encoder cannot hide behind the same
mistake in a test helper.  The values avoid the cases where Debezium's own
output is ambiguous (floats that are not exact in binary, intervals with
months, fractional seconds with trailing zeros).
"""

import calendar
import datetime
import hashlib
import json

import pytest

from tidemark import payload, read_jsonl, wait_for_lines

EVERYTHING = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE public.everything (
    id            int PRIMARY KEY,
    c_int2        int2,
    c_int4        int4,
    c_int8        int8,
    c_float4      float4,
    c_float8      float8,
    c_numeric     numeric(10,2),
    c_numeric_any numeric,
    c_bool        bool,
    c_text        text,
    c_varchar     varchar(20),
    c_char        char(3),
    c_bytea       bytea,
    c_date        date,
    c_time        time,
    c_timetz      timetz,
    c_timestamp   timestamp,
    c_timestamptz timestamptz,
    c_interval    interval,
    c_uuid        uuid,
    c_json        json,
    c_jsonb       jsonb,
    c_int4_array  int4[],
    c_text_array  text[],
    c_inet        inet,
    c_cidr        cidr,
    c_macaddr     macaddr,
    c_money       money,
    c_point       point,
    c_xml         xml,
    c_tsvector    tsvector,
    c_mood        mood
);
-- FULL, so that update and delete events carry the old row and every type
-- is decoded from old tuples as well as new ones.
ALTER TABLE everything REPLICA IDENTITY FULL;
"""

INSERT_ROW_1 = r"""
INSERT INTO everything VALUES (
    1, 32767, 2147483647, 9223372036854775807, 1.5, 3.25,
    12.34, 3.14159, true, 'hello', 'varchar', 'ab', '\xdeadbeef',
    '2024-01-02', '03:04:05.123456', '03:04:05+02',
    '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.123456+00',
    '1 day 02:03:04.5', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    '{"a": 1}', '{"b": [1, 2]}', '{1,2,3}', '{a,"b c"}',
    '192.168.0.1', '10.0.0.0/8', '08:00:2b:01:02:03', 12.34, '(1,2)',
    '<a>1</a>', 'a fat cat', 'happy');
"""

COLUMNS = ["id", "c_int2", "c_int4", "c_int8", "c_float4", "c_float8", "c_numeric",
           "c_numeric_any", "c_bool", "c_text", "c_varchar", "c_char", "c_bytea", "c_date",
           "c_time", "c_timetz", "c_timestamp", "c_timestamptz", "c_interval", "c_uuid",
           "c_json", "c_jsonb", "c_int4_array", "c_text_array", "c_inet", "c_cidr",
           "c_macaddr", "c_money", "c_point", "c_xml", "c_tsvector", "c_mood"]

# Types whose Debezium form is not pinned down by the spec: they must arrive
# as something non-null, and the string-typed ones as strings.
LOOSE_STRINGS = ["c_timetz", "c_tsvector"]
LOOSE_ANY = ["c_money", "c_point"]


def epoch_micros(*args) -> int:
    """Microseconds since the epoch of a UTC date-time, in integer arithmetic."""
    dt = datetime.datetime(*args)
    return calendar.timegm(dt.timetuple()) * 1_000_000 + dt.microsecond


EXPECTED_ROW_1 = {
    "id": 1,
    "c_int2": 32767,
    "c_int4": 2147483647,
    "c_int8": 9223372036854775807,
    "c_float4": 1.5,
    "c_float8": 3.25,
    "c_numeric": "BNI=",                                  # 1234 -> 04 D2
    "c_numeric_any": {"scale": 5, "value": "BMsv"},       # 314159 -> 04 CB 2F
    "c_bool": True,
    "c_text": "hello",
    "c_varchar": "varchar",
    "c_bytea": "3q2+7w==",                                # DE AD BE EF
    "c_date": 19724,                                      # days from 1970-01-01
    "c_time": ((3 * 60 + 4) * 60 + 5) * 1_000_000 + 123456,
    "c_timestamp": epoch_micros(2024, 1, 2, 3, 4, 5, 123456),
    "c_timestamptz": "2024-01-02T03:04:05.123456Z",
    "c_interval": (86400 + 2 * 3600 + 3 * 60 + 4) * 1_000_000 + 500_000,
    "c_uuid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    "c_int4_array": [1, 2, 3],
    "c_text_array": ["a", "b c"],
    "c_inet": "192.168.0.1",
    "c_cidr": "10.0.0.0/8",
    "c_macaddr": "08:00:2b:01:02:03",
    "c_xml": "<a>1</a>",
    "c_mood": "happy",
}

# After the update below.
EXPECTED_ROW_1_UPDATED = dict(
    EXPECTED_ROW_1,
    c_int4=-1,
    c_numeric="+y4=",                                     # -1234 -> FB 2E
    c_timestamptz="2024-01-02T01:04:05.000000Z",          # the column's 6 digits, as Debezium pads
    c_int4_array=[None, 4],
    c_text_array=[],
)


def check_row(after: dict, expected: dict) -> None:
    """Compares one row image with the expectations, column by column."""
    assert set(after) == set(COLUMNS), \
        f"columns differ: missing {set(COLUMNS) - set(after)}, extra {set(after) - set(COLUMNS)}"
    problems = []
    for column, value in expected.items():
        if after[column] != value:
            problems.append(f"{column}: expected {value!r}, got {after[column]!r}")
    # char(n) pads with blanks; whether Debezium keeps them is not the point.
    if not (isinstance(after["c_char"], str) and after["c_char"].rstrip() == "ab"):
        problems.append(f"c_char: expected 'ab' (blank-padded or not), got {after['c_char']!r}")
    # json and jsonb arrive as strings that hold the JSON text.
    for column, value in (("c_json", {"a": 1}), ("c_jsonb", {"b": [1, 2]})):
        if not (isinstance(after[column], str) and json.loads(after[column]) == value):
            problems.append(f"{column}: expected a string holding {value}, got {after[column]!r}")
    for column in LOOSE_STRINGS:
        if not (isinstance(after[column], str) and after[column]):
            problems.append(f"{column}: expected a non-empty string, got {after[column]!r}")
    for column in LOOSE_ANY:
        if after[column] is None:
            problems.append(f"{column}: expected a value, got null")
    assert not problems, "wrong encodings:\n  " + "\n  ".join(problems)


def test_every_type_through_insert_update_delete(cdc):
    cdc.sql(EVERYTHING)
    tm = cdc.start(tables="public.everything", snapshot="never", sink={"schemas": False})
    cdc.wait_slot_ready(tm)
    cdc.sql(INSERT_ROW_1)
    cdc.sql("INSERT INTO everything (id) VALUES (2);")
    cdc.sql("""
        UPDATE everything
           SET c_int4 = -1, c_numeric = -12.34,
               c_timestamptz = '2024-01-02 03:04:05+02',
               c_int4_array = '{NULL,4}', c_text_array = '{}'
         WHERE id = 1;
    """)
    cdc.sql("DELETE FROM everything WHERE id = 1;")
    cdc.sql("DELETE FROM everything WHERE id = 2;")

    records = wait_for_lines(cdc.topic_path("everything"), 5, proc=tm)
    payloads = [payload(r) for r in records[:5]]
    assert [p["op"] for p in payloads] == ["c", "c", "u", "d", "d"]
    insert1, insert2, update1, delete1, delete2 = payloads

    check_row(insert1["after"], EXPECTED_ROW_1)
    assert insert2["after"] == {c: (2 if c == "id" else None) for c in COLUMNS}, \
        "a row of NULLs must come through as nulls"
    check_row(update1["before"], EXPECTED_ROW_1)
    check_row(update1["after"], EXPECTED_ROW_1_UPDATED)
    check_row(delete1["before"], EXPECTED_ROW_1_UPDATED)
    assert delete1["after"] is None
    assert delete2["before"] == insert2["after"]


def test_logical_type_names_in_schema(cdc):
    cdc.sql(EVERYTHING)
    tm = cdc.start(tables="public.everything", snapshot="never")
    cdc.wait_slot_ready(tm)
    cdc.sql(INSERT_ROW_1)
    record = wait_for_lines(cdc.topic_path("everything"), 1, proc=tm)[0]
    envelope_fields = {f["field"]: f for f in record["schema"]["fields"]}
    fields = {f["field"]: f for f in envelope_fields["after"]["fields"]}
    expected_names = {
        "c_numeric": "org.apache.kafka.connect.data.Decimal",
        "c_numeric_any": "io.debezium.data.VariableScaleDecimal",
        "c_date": "io.debezium.time.Date",
        "c_time": "io.debezium.time.MicroTime",
        "c_timestamp": "io.debezium.time.MicroTimestamp",
        "c_timestamptz": "io.debezium.time.ZonedTimestamp",
        "c_interval": "io.debezium.time.MicroDuration",
        "c_uuid": "io.debezium.data.Uuid",
        "c_json": "io.debezium.data.Json",
        "c_jsonb": "io.debezium.data.Json",
        "c_mood": "io.debezium.data.Enum",
    }
    wrong = {c: fields[c].get("name") for c, n in expected_names.items()
             if fields[c].get("name") != n}
    assert not wrong, f"logical type names differ from Debezium's: {wrong}"
    assert str(fields["c_numeric"]["parameters"]["scale"]) == "2", fields["c_numeric"]
    assert fields["id"]["optional"] is False and fields["c_text"]["optional"] is True


@pytest.mark.parametrize("mode, expected_fixed, expected_any", [
    pytest.param("precise", "BNI=", {"scale": 5, "value": "BMsv"}, id="precise"),
    pytest.param("string", "12.34", "3.14159", id="string"),
    pytest.param("double", 12.34, 3.14159, id="double"),
])
def test_decimal_handling(cdc, mode, expected_fixed, expected_any):
    cdc.sql("CREATE TABLE public.amounts (id int PRIMARY KEY, fixed numeric(10,2), "
            "any_scale numeric);")
    tm = cdc.start(tables="public.amounts", snapshot="never",
                   source={"decimal_handling": mode}, sink={"schemas": False})
    cdc.wait_slot_ready(tm)
    cdc.sql("INSERT INTO amounts VALUES (1, 12.34, 3.14159);")
    after = payload(wait_for_lines(cdc.topic_path("amounts"), 1, proc=tm)[0])["after"]
    assert after == {"id": 1, "fixed": expected_fixed, "any_scale": expected_any}


@pytest.mark.parametrize("mode, expected", [
    # adaptive: the column's precision (6 by default) picks microseconds.
    pytest.param("adaptive", {"t": 11045123456, "ts": epoch_micros(2024, 1, 2, 3, 4, 5, 123456)},
                 id="adaptive"),
    # connect: Kafka Connect's own Time and Timestamp, in milliseconds.
    pytest.param("connect", {"t": 11045123, "ts": epoch_micros(2024, 1, 2, 3, 4, 5, 123456) // 1000},
                 id="connect"),
])
def test_time_precision(cdc, mode, expected):
    cdc.sql("CREATE TABLE public.times (id int PRIMARY KEY, t time, ts timestamp, d date);")
    tm = cdc.start(tables="public.times", snapshot="never",
                   source={"time_precision": mode}, sink={"schemas": False})
    cdc.wait_slot_ready(tm)
    cdc.sql("INSERT INTO times VALUES (1, '03:04:05.123456', '2024-01-02 03:04:05.123456', "
            "'2024-01-02');")
    after = payload(wait_for_lines(cdc.topic_path("times"), 1, proc=tm)[0])["after"]
    assert after == {"id": 1, "d": 19724, **expected}


def test_unchanged_toast_value_is_a_placeholder(cdc):
    # STORAGE EXTERNAL stores the value out of line without compression, so
    # that it is TOASTed whatever the compressor would have made of it.
    cdc.sql("""
        CREATE TABLE public.docs (id int PRIMARY KEY, title text, body text);
        ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
    """)
    tm = cdc.start(tables="public.docs", snapshot="never", sink={"schemas": False})
    cdc.wait_slot_ready(tm)
    cdc.sql("""
        INSERT INTO docs SELECT 1, 'first', string_agg(md5(g::text), '' ORDER BY g)
          FROM generate_series(1, 400) g;
        UPDATE docs SET title = 'second' WHERE id = 1;
        UPDATE docs SET body = 'short now' WHERE id = 1;
        DELETE FROM docs WHERE id = 1;
    """)
    body = "".join(hashlib.md5(str(g).encode()).hexdigest() for g in range(1, 401))
    records = wait_for_lines(cdc.topic_path("docs"), 4, proc=tm)
    insert, untouched, touched, delete = [payload(r) for r in records[:4]]
    assert [insert["op"], untouched["op"], touched["op"], delete["op"]] == ["c", "u", "u", "d"]
    assert insert["after"] == {"id": 1, "title": "first", "body": body}
    # The update left body alone; with REPLICA IDENTITY DEFAULT the server
    # does not send an unchanged out-of-line value, and Debezium says so.
    assert untouched["after"] == {"id": 1, "title": "second",
                                  "body": "__debezium_unavailable_value"}
    assert touched["after"] == {"id": 1, "title": "second", "body": "short now"}
    assert delete["before"] == {"id": 1, "title": None, "body": None}


def test_snapshot_rows_use_the_same_encodings(cdc):
    cdc.sql(EVERYTHING + INSERT_ROW_1)
    tm = cdc.start(tables="public.everything", snapshot="initial", sink={"schemas": False})
    record = payload(wait_for_lines(cdc.topic_path("everything"), 1, proc=tm)[0])
    assert record["op"] == "r"
    check_row(record["after"], EXPECTED_ROW_1)
    assert tm.terminate() == 0, tm.log_tail()
    assert len(read_jsonl(cdc.topic_path("everything"))) == 1


BITS = """
CREATE TABLE public.bits (id int PRIMARY KEY, b4 bit(4), b1 bit, vb varbit, vb1 varbit(1),
                          b16 bit(16));
"""


def test_bit_strings_as_debezium_bits(cdc):
    """Issue 10 row 2: bit(n>1)/varbit are io.debezium.data.Bits bytes, bit(1) a boolean.

    The bytes are java.util.BitSet.toByteArray() of the string read with its
    last character as bit 0, as Debezium's PostgresValueConverter builds them.
    """
    cdc.sql(BITS)
    tm = cdc.start(tables="public.bits", snapshot="never")
    cdc.wait_slot_ready(tm)
    cdc.sql("INSERT INTO bits VALUES (1, B'1010', B'1', B'100000000', B'0', "
            "B'1111111100000001');")
    record = wait_for_lines(cdc.topic_path("bits"), 1, proc=tm)[0]
    after = record["payload"]["after"]
    assert after == {"id": 1, "b4": "Cg==", "b1": True, "vb": "AAE=", "vb1": False,
                     "b16": "Af8="}, after
    envelope_fields = {f["field"]: f for f in record["schema"]["fields"]}
    fields = {f["field"]: f for f in envelope_fields["after"]["fields"]}
    for column, length in (("b4", "4"), ("vb", "2147483647"), ("b16", "16")):
        f = fields[column]
        assert (f["type"], f.get("name"), f.get("version"), f.get("parameters")) == \
            ("bytes", "io.debezium.data.Bits", 1, {"length": length}), f
    assert fields["b1"]["type"] == "boolean" and "name" not in fields["b1"], fields["b1"]
    assert fields["vb1"]["type"] == "boolean", fields["vb1"]


def test_infinity_as_debezium_writes_it(cdc):
    """Issue 10 row 10: Debezium's sentinels for dates and timestamps, "infinity" for timestamptz."""
    cdc.sql("CREATE TABLE public.inf (id int PRIMARY KEY, d date, ts timestamp, ts3 timestamp(3), "
            "tstz timestamptz);")
    tm = cdc.start(tables="public.inf", snapshot="never", sink={"schemas": False})
    cdc.wait_slot_ready(tm)
    cdc.sql("INSERT INTO inf VALUES (1, 'infinity', 'infinity', 'infinity', 'infinity'), "
            "(2, '-infinity', '-infinity', '-infinity', '-infinity');")
    records = wait_for_lines(cdc.topic_path("inf"), 2, proc=tm)
    rows = [payload(r)["after"] for r in records]
    assert rows == [
        {"id": 1, "d": -2147472692, "ts": 9223372036825200000, "ts3": 9223372036825200,
         "tstz": "infinity"},
        {"id": 2, "d": -2147472691, "ts": -9223372036832400000, "ts3": -9223372036832400,
         "tstz": "-infinity"},
    ], rows
