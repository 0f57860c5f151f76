"""Binary pgoutput (option `binary`, PostgreSQL 14+): the same changes streamed with binary
values and with text values give identical records, and a captured column whose type has no
binary decoder makes the source stream text, at start or when the column appears mid-stream,
without losing or repeating a change.
"""

import json
import re

import pytest

from tidemark import payload, read_jsonl, wait_for_lines, wait_until

TYPES = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
CREATE TABLE public.everything (
    id int PRIMARY KEY,
    b bool, i2 int2, i4 int4, i8 int8, o oid, f4 float4, f8 float8,
    n numeric, n102 numeric(10,2), mo money,
    t text, vc varchar(10), bp char(5), nm name, ch "char", bt bit(8), vb varbit,
    by bytea, d date, tm time, tmz timetz, ts timestamp, tstz timestamptz, iv interval,
    u uuid, js json, jb jsonb, x xml, e mood, pi posint,
    a_i4 int4[], a_t text[], a_n numeric[], a_f4 float4[], a_d date[], a_tstz timestamptz[],
    a_iv interval[], a_u uuid[], a_jb jsonb[], a_by bytea[], a_e mood[], a_b bool[]);
ALTER TABLE everything REPLICA IDENTITY FULL;
"""

ROWS = r"""
INSERT INTO everything VALUES
 (1, true, 32767, 2147483647, 9223372036854775807, 4294967295, 0.1, 3.25,
  12345678901234567890.123456789, 12.34, '-$1,234.56', 'hello', 'varchar', 'ab', 'nm', 'a',
  B'10100101', B'101', '\x00ff10', '2024-02-29', '13:14:15.678', '10:00:00+05:30',
  '2024-02-29 13:14:15.123456', '2024-02-29 13:14:15.123456+01',
  '1 year 2 mons 3 days 04:05:06.5', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a" : [1, 2]}',
  '{"b": [1, 2], "a": null}', '<a>x</a>', 'happy', 7,
  '{{1,NULL},{3,4}}', '{"a b","c,d",NULL,"e\"f"}', '{1.5,NaN,-0.001,Infinity}',
  '{0.1,NaN,-Infinity}', '{2024-02-29,infinity,0001-01-01 BC}',
  '{"1999-12-31 23:59:59+00",-infinity}', '{"1 year -2 days",PT1.5S}',
  '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}', '{"{\"a\": 1}",null}', '{"\\x00ff","\\x"}',
  '{sad,NULL}', '{t,f,NULL}'),
 (2, false, -32768, -2147483648, -9223372036854775808, 0, -0.0, 'NaN', 'NaN', -0.01,
  '$92,233,720,368,547,758.07', '', 'é€😀', '', '', '\351', B'00000000', B'', '\x',
  '0001-01-01 BC', '24:00:00', '00:00:00-12', 'infinity', '-infinity',
  '-178000000 years -2147483648 days', '00000000-0000-0000-0000-000000000000', '[]', '{}',
  '<?xml version="1.0"?><a/>', 'sad', 1, '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}',
  '{}', '{}', '{}'),
 (3, NULL, NULL, NULL, NULL, NULL, 3.4028235e38, 1.7976931348623157e308,
  '-99999999999999999999999999999999999999999999999999.99999', NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, '5874897-12-31', NULL, NULL, '1900-02-28 01:02:03.000001',
  '200000-01-01 12:00:00+00', '-1.5 seconds', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, NULL, NULL, NULL, NULL, NULL, 'Infinity', '-Infinity', '-Infinity', NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, '-infinity', NULL, NULL, '-infinity', 'infinity', '0',
  NULL, NULL, NULL, NULL, NULL, NULL, '[0:2]={7,8,9}', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL);
INSERT INTO everything (id, f4, f8, n)
  SELECT 100 + g, ((random() - 0.5) * 10 ^ (random() * 60 - 30))::float4,
         (random() - 0.5) * 10 ^ (random() * 600 - 300), round((random() * 1e9)::numeric, g % 12)
  FROM generate_series(1, 200) g;
UPDATE everything SET t = 'changed', a_i4 = '{5}', n = 'Infinity' WHERE id = 1;
DELETE FROM everything WHERE id = 2;
"""
# 4 + 200 inserts, one update, one delete.
NCHANGES = 206

# Processing times differ from run to run; everything else must not.
VOLATILE = ("ts_ms", "ts_us", "ts_ns")


def strip_volatile(record: dict) -> dict:
    body = record.get("payload", record)
    for key in VOLATILE:
        body.pop(key, None)
    return record


def drain(cdc, slot: str, name: str, binary: bool, n: int) -> list:
    out = cdc.dir / f"out_{name}"
    out.mkdir()
    job = cdc.job(tables="public.everything",
                  source={"slot": slot, "binary": "true" if binary else "false"},
                  sink={"path": str(out)})
    tm = cdc.tidemark(job, name=name).start()
    path = out / "shop.public.everything.jsonl"
    records = wait_for_lines(path, n, proc=tm)
    tm.terminate()
    log = tm.log_text()
    values = re.findall(r"streaming started.*?values=(\w+)", log)
    assert values and values[0] == ("binary" if binary else "text"), \
        f"expected {('binary' if binary else 'text')} values, the log says {values}"
    return [strip_volatile(r) for r in read_jsonl(path)]


def test_binary_and_text_values_give_identical_records(cdc):
    cdc.sql(TYPES)
    cdc.sql(f"CREATE PUBLICATION {cdc.publication} FOR TABLE everything;")
    # Two slots at the same LSN: both hold exactly the same changes.
    for slot in ("bin", "txt"):
        cdc.sql(f"SELECT pg_create_logical_replication_slot('{cdc.slot}_{slot}', 'pgoutput');")
    cdc.sql(ROWS)
    with_binary = drain(cdc, f"{cdc.slot}_bin", "bin", True, NCHANGES)
    with_text = drain(cdc, f"{cdc.slot}_txt", "txt", False, NCHANGES)
    assert len(with_binary) == len(with_text) == NCHANGES
    for i, (b, t) in enumerate(zip(with_binary, with_text)):
        assert b == t, (f"record {i} differs:\n binary {json.dumps(payload(b))}\n"
                        f" text   {json.dumps(payload(t))}")
    # The values went through every decoder, not only NULLs.
    first = payload(with_binary[0])["after"]
    assert first["f4"] == 0.1 and first["a_i4"] == [[1, None], [3, 4]]
    assert first["a_e"] == ["sad", None] and first["x"] == "<a>x</a>"


def test_a_type_without_binary_decoder_streams_text(cdc):
    cdc.sql("CREATE TABLE public.shapes (id int PRIMARY KEY, p point);")
    tm = cdc.start(tables="public.shapes", sink={"schemas": False})
    cdc.wait_slot_ready(tm)
    cdc.sql("INSERT INTO shapes VALUES (1, '(1.5,2)'), (2, NULL);")
    records = wait_for_lines(cdc.topic_path("shapes"), 2, proc=tm)
    assert [payload(r)["after"] for r in records] == [{"id": 1, "p": "(1.5,2)"},
                                                      {"id": 2, "p": None}]
    log = tm.log_text()
    assert re.search(r"binary values off.*column=p type=point", log), tm.log_tail()
    assert "replication connection lost" not in log


@pytest.mark.parametrize("n, pad", [
    pytest.param(20, 0, id="small-transaction"),
    # Past logical_decoding_work_mem (64kB on the test server): the transaction is
    # streamed, spilled, and its Relation message met when the spill file is replayed.
    pytest.param(1500, 200, id="streamed-transaction"),
])
def test_a_column_added_mid_stream_switches_to_text_without_loss(cdc, n, pad):
    cdc.sql("CREATE TABLE public.orders (id int PRIMARY KEY, qty int, note text);")
    tm = cdc.start(tables="public.orders", sink={"schemas": False})
    cdc.wait_slot_ready(tm)
    cdc.sql("INSERT INTO orders SELECT g, g, 'before' FROM generate_series(1, 50) g;")
    wait_for_lines(cdc.topic_path("orders"), 50, proc=tm)
    wait_until(lambda: "values=binary" in tm.log_text(), 10, "binary values", tm)
    # One transaction: n changes in binary, then the new column's Relation message
    # mid-transaction, then changes that can only come as text.
    last = 50 + 2 * n
    cdc.sql(f"""
        BEGIN;
        INSERT INTO orders SELECT g, g, 'same tx' || repeat('x', {pad})
          FROM generate_series(51, {50 + n}) g;
        ALTER TABLE orders ADD COLUMN spot point;
        INSERT INTO orders SELECT g, g, 'after', point(g, g)
          FROM generate_series({51 + n}, {last}) g;
        UPDATE orders SET spot = '(0,0)' WHERE id = 1;
        COMMIT;
    """)
    records = wait_for_lines(cdc.topic_path("orders"), last + 1, proc=tm)
    ids = [payload(r)["after"]["id"] for r in records[:last + 1]]
    assert ids == list(range(1, last + 1)) + [1], "every change exactly once, in order"
    first_text = payload(records[50 + n])["after"]
    assert first_text["spot"] == f"({51 + n},{51 + n})" and first_text["note"] == "after"
    assert payload(records[last])["after"]["spot"] == "(0,0)"
    log = tm.log_text()
    assert re.search(r"binary values off.*column=spot type=point", log), tm.log_tail()
    assert "replication connection lost" not in log
    assert len(re.findall(r"streaming started.*values=text", log)) == 1
    # One schema change (the new column), not a spurious one from the restart.
    changes = re.findall(r"schema changed.*version=(\d+) columns=(\d+)", log)
    assert changes == [("2", "4")], changes
    if pad:
        # The server did stream it (in both sessions, binary and text).
        def streamed():
            out = cdc.sql("SELECT stream_txns FROM pg_stat_replication_slots "
                          f"WHERE slot_name = '{cdc.slot}'")
            return out.isdigit() and int(out) >= 2
        wait_until(streamed, 15, "the slot's statistics to count streamed transactions", tm)
    # No duplicate appears later either.
    cdc.sql("INSERT INTO orders VALUES (100000, 0, 'last', NULL);")
    wait_for_lines(cdc.topic_path("orders"), last + 2, proc=tm)
    assert len(read_jsonl(cdc.topic_path("orders"))) == last + 2
