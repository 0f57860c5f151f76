"""tidemark against the real Debezium: the same slot contents through
Debezium 3.6.1.Final's PostgreSQL connector (embedded engine, Kafka Connect's
JsonConverter with schemas on, default settings) and through tidemark's file
sink (debezium-json, schemas on, include_key), compared record by record and
field by field (compare.py).  The contract, the allowed differences and how
to run this are in docs/compat.md; scripts/compat.sh runs it.

Both consumers read slots created at the same LSN (the second one is a copy
of the first, pg_copy_logical_replication_slot), with one publication FOR ALL
TABLES (Debezium's default publication.autocreate.mode), after the whole
workload was committed, so both see exactly the same changes.

The report goes to stdout and to tests/compat/target/<test>-report.txt, next
to both raw outputs (<test>-debezium.jsonl, <test>-tidemark/).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import compare  # noqa: E402
from pgserver import lsn_to_int  # noqa: E402
from tidemark import Tidemark, cdc_job, wait_until  # noqa: E402

PREFIX = "shop"          # Debezium's topic.prefix, tidemark's source table name
PUBLICATION = "compat_pub"
DBZ_SLOT = "compat_dbz"
TM_SLOT = "compat_tm"
# tidemark's snapshot mode -> Debezium's name for it (3.x calls 'never' no_data).
DBZ_SNAPSHOT = {"never": "no_data", "initial": "initial"}

SCHEMA = r"""
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE everything (
    id              int PRIMARY KEY,
    c_int2          int2,
    c_int4          int4,
    c_int8          int8,
    c_float4        float4,
    c_float8        float8,
    c_numeric       numeric(10,2),
    c_numeric_any   numeric,
    c_bool          bool,
    c_text          text,
    c_varchar       varchar(20),
    c_char          char(3),
    c_bytea         bytea,
    c_date          date,
    c_time          time,
    c_time3         time(3),
    c_timetz        timetz,
    c_timestamp     timestamp,
    c_timestamp3    timestamp(3),
    c_timestamptz   timestamptz,
    c_timestamptz3  timestamptz(3),
    c_interval      interval,
    c_uuid          uuid,
    c_json          json,
    c_jsonb         jsonb,
    c_int4_array    int4[],
    c_text_array    text[],
    c_bit4          bit(4),
    c_bit1          bit(1),
    c_varbit        varbit,
    c_money         money,
    c_mood          mood,
    c_inet          inet,
    c_cidr          cidr,
    c_macaddr       macaddr,
    c_xml           xml,
    c_oid           oid
);
-- REPLICA IDENTITY DEFAULT: NOT NULL non-key columns with defaults, whose
-- value a delete or key change does not carry.
CREATE TABLE defaults (
    id    int PRIMARY KEY,
    n     int NOT NULL DEFAULT 42,
    s     text NOT NULL DEFAULT '',
    d     numeric(5,2) NOT NULL DEFAULT 1.50,
    b     bool NOT NULL DEFAULT true,
    note  text
);
-- Every way Debezium reads a DEFAULT: literals of each type it maps, casts,
-- function calls (placeholders), NULL::, expressions it cannot evaluate, and
-- types it has no reader for.  NOT NULL where a delete must fill them in.
CREATE TABLE default_kinds (
    id       serial PRIMARY KEY,
    i2       int2 NOT NULL DEFAULT -3,
    i8       int8 NOT NULL DEFAULT '9223372036854775807',
    f4       float4 DEFAULT 1.5,
    f8       float8 NOT NULL DEFAULT 2.25,
    nm       numeric(8,3) NOT NULL DEFAULT 2.5,
    nany     numeric DEFAULT 3.5,
    nnull    numeric DEFAULT NULL,
    bo       bool NOT NULL DEFAULT false,
    vc       varchar(10) NOT NULL DEFAULT 'v',
    ch       char(3) DEFAULT 'ab',
    tnull    text DEFAULT NULL,
    tquote   text DEFAULT 'it''s',
    tcall    text DEFAULT md5('x'),
    dt       date NOT NULL DEFAULT '2020-01-02',
    tm       time DEFAULT '01:02:03',
    ts       timestamp NOT NULL DEFAULT '2020-01-02 03:04:05',
    tsnow    timestamp DEFAULT now(),
    tscur    timestamp DEFAULT CURRENT_TIMESTAMP,
    tstz     timestamptz NOT NULL DEFAULT '2020-01-02 03:04:05+00',
    tstz3    timestamptz(3) DEFAULT '2020-01-02 03:04:05.5+00',
    iv       interval DEFAULT '1 hour',
    uu       uuid NOT NULL DEFAULT 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    uugen    uuid DEFAULT gen_random_uuid(),
    js       json DEFAULT '{}',
    jsb      jsonb NOT NULL DEFAULT '{"a": 1}',
    b4       bit(4) DEFAULT B'1010',
    b1       bit(1) NOT NULL DEFAULT B'1',
    vb       varbit DEFAULT B'101',
    x        xml DEFAULT '<a/>',
    by       bytea DEFAULT '\x00',
    mo       mood DEFAULT 'ok',
    arr      int4[] DEFAULT '{1,2}',
    mon      money DEFAULT 1.5,
    ip       inet DEFAULT '10.0.0.1',
    note     text
);
CREATE TABLE full_ident (
    id  int PRIMARY KEY,
    n   int NOT NULL,
    s   text,
    t   timestamptz
);
ALTER TABLE full_ident REPLICA IDENTITY FULL;
CREATE TABLE nopk (a int, b text);
ALTER TABLE nopk REPLICA IDENTITY FULL;
CREATE TABLE trunc_me (id int PRIMARY KEY, v text);
CREATE TABLE "Mixed" (id bigint PRIMARY KEY, "Val" text);
CREATE SCHEMA inv;
CREATE TABLE inv.items (sku text PRIMARY KEY, qty int NOT NULL DEFAULT 0);
"""

# Each statement outside BEGIN/COMMIT is a transaction of its own.
WORKLOAD = r"""
INSERT INTO everything VALUES (
    1, 32767, 2147483647, 9223372036854775807, 1.5, 3.25,
    12.34, 3.14159, true, 'hello', 'varchar', 'ab', '\xdeadbeef',
    '2024-01-02', '03:04:05.123456', '03:04:05.5', '03:04:05+02',
    '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.1', '2024-01-02 03:04:05.123456+00',
    '2024-01-02 03:04:05+00',
    '1 day 02:03:04.5', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    '{"a": 1}', '{"b": [1, 2]}', '{1,2,3}', '{a,"b c"}',
    B'1010', B'1', B'110011001', 12.34, 'happy',
    '192.168.0.1', '10.0.0.0/8', '08:00:2b:01:02:03', '<a>1</a>', 12345);
INSERT INTO everything (id) VALUES (2);
INSERT INTO everything VALUES (
    3, -32768, -2147483648, -9223372036854775808, 0.1, 1e308,
    -99999999.99, 'NaN', false, '', '', '', '\x',
    'infinity', '00:00:00', '23:59:59.999', '00:00:00-14',
    'infinity', '-infinity', 'infinity', '-infinity',
    '-1 mon 2 days -00:00:00.000001', '00000000-0000-0000-0000-000000000000',
    'null', '[]', '{}', '{NULL,"x"}',
    B'0000', B'0', B'', -92233720368547758.08, 'sad',
    '::1', '::/0', '00:00:00:00:00:00', '', 4294967295);
INSERT INTO everything VALUES (
    4, 0, 0, 0, 'Infinity', '-Infinity',
    0, '123456789012345678901234567890.123456789', NULL,
    E'h\u00e9llo \U0001F30A "q" \n\t\\', 'x', 'x', '\x00ff',
    '0001-01-01', '24:00:00', '12:00:00.5', '23:59:59.999999+14',
    '1970-01-01 00:00:00', '1969-12-31 23:59:59.999', '2024-06-30 23:59:59.5+05:30',
    '2000-02-29 12:00:00.123+00',
    '178000000 years', NULL, '{"k": "v\u00e9"}', '{"z": 1, "a": [true, null, 1.50]}',
    '{}', '{}', B'1111', B'1', B'1', 0, 'ok',
    '10.1.2.3/24', '192.168.0.0/16', 'ff:ff:ff:ff:ff:ff', '<x a="1"/>', 0);
INSERT INTO everything (id, c_date, c_timestamp, c_timestamptz)
    VALUES (6, '-infinity', '4713-01-01 00:00:00 BC', '0001-01-01 00:00:00+00 BC');
-- A TOASTed value: incompressible enough to be stored out of line.
INSERT INTO everything (id, c_int4, c_text)
    SELECT 5, 1, string_agg(md5(i::text), '') FROM generate_series(1, 3000) i;
-- An update that leaves the TOASTed value alone: pgoutput does not send it.
UPDATE everything SET c_int4 = 2 WHERE id = 5;
UPDATE everything SET c_text = 'changed', c_bit4 = B'0101', c_numeric = 0.5 WHERE id = 1;
DELETE FROM everything WHERE id = 2;

INSERT INTO defaults (id, n, s, d, b, note) VALUES (1, 5, 'a', 2.25, false, 'first');
INSERT INTO defaults (id) VALUES (2);
UPDATE defaults SET n = 6 WHERE id = 1;
UPDATE defaults SET id = 10 WHERE id = 1;
DELETE FROM defaults WHERE id = 2;

INSERT INTO default_kinds (note) VALUES ('all defaults');
INSERT INTO default_kinds (id, i2, i8, f8, nm, bo, vc, dt, ts, tstz, uu, jsb, b1)
    VALUES (7, 1, 2, 3, 4, true, 'w', '2021-01-01', '2021-01-01 00:00:00',
            '2021-01-01 00:00:00+00', '00000000-0000-0000-0000-000000000001', '[]', B'0');
DELETE FROM default_kinds WHERE id = 7;

BEGIN;
INSERT INTO full_ident VALUES (1, 1, 'one', '2024-01-01 00:00:00+00');
INSERT INTO full_ident VALUES (2, 2, NULL, NULL);
INSERT INTO defaults (id, note) VALUES (3, 'same transaction');
SELECT pg_logical_emit_message(true, 'compat', 'inside a transaction');
COMMIT;
UPDATE full_ident SET s = 'uno' WHERE id = 1;
UPDATE full_ident SET id = 11 WHERE id = 1;
DELETE FROM full_ident WHERE id = 2;

INSERT INTO nopk VALUES (1, 'a'), (2, NULL);
UPDATE nopk SET b = 'b' WHERE a = 1;
DELETE FROM nopk WHERE a = 2;

INSERT INTO trunc_me VALUES (1, 'x'), (2, 'y');
TRUNCATE trunc_me;

INSERT INTO "Mixed" VALUES (1, 'M');
INSERT INTO inv.items (sku) VALUES ('A-1');
UPDATE inv.items SET qty = 3 WHERE sku = 'A-1';

SELECT pg_logical_emit_message(false, 'compat', 'not transactional');
SELECT pg_logical_emit_message(false, 'bin', '\x00ff'::bytea);
-- A last transaction after the non-transactional messages, so the slot
-- has a commit to confirm past them.
INSERT INTO trunc_me VALUES (3, 'z');
"""


def run_debezium(debezium_cmd, pg, db, out: Path, log: Path, snapshot: str,
                 idle_ms: int = 10000, sets: dict = None,
                 max_records: int = 0) -> subprocess.Popen:
    """DebeziumRunner with Debezium's defaults but `sets` (Debezium's option
    names); it stops after idle_ms without a record, or after max_records."""
    cmd = debezium_cmd + [
        "--host", pg.host, "--port", str(pg.port), "--user", "postgres", "--db", db,
        "--slot", DBZ_SLOT, "--publication", PUBLICATION, "--prefix", PREFIX,
        "--snapshot", DBZ_SNAPSHOT[snapshot], "--out", str(out), "--idle-ms", str(idle_ms)]
    if max_records:
        cmd += ["--max", str(max_records)]
    for k, v in (sets or {}).items():
        cmd += ["--set", f"{k}={v}"]
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)


def run_tidemark(tidemark_bin, pg, db, workdir: Path, out_dir: Path, snapshot: str,
                 sink_opts: dict = None, tables: str = "inv.*, public.*") -> Tidemark:
    """The daemon with a file sink writing Debezium's records, and `sink_opts`
    (tidemark's option names) on top."""
    # Debezium, given no table.include.list, snapshots every table in name order; tidemark
    # snapshots in the order of `tables` (Debezium's order with an include list), by name
    # within a pattern: so the schemas are listed in name order here.
    source = {"connector": "postgres-cdc", "dsn": pg.dsn(db), "tables": tables,
              "slot": TM_SLOT, "publication": PUBLICATION, "snapshot": snapshot}
    # Tombstones are Debezium's default on Kafka; the file sink leaves them off unless asked
    # (docs/compat.md), so the comparison asks, as a user who wants Debezium's records would.
    sink = {"connector": "file", "path": str(out_dir), "format": "debezium-json",
            "schemas": True, "include_key": True, "tombstones_on_delete": True,
            **(sink_opts or {})}
    return Tidemark(cdc_job(source, sink, source_name=PREFIX), workdir, bin=tidemark_bin).start()


def slot_lsn(pg, db, slot) -> str:
    return pg.psql(f"SELECT confirmed_flush_lsn FROM pg_replication_slots "
                   f"WHERE slot_name = '{slot}'", db=db)


def make_slots(pg, db) -> None:
    """Two slots at the same LSN: the second is a copy of the first."""
    pg.psql(f"CREATE PUBLICATION {PUBLICATION} FOR ALL TABLES;", db=db)
    pg.psql(f"SELECT pg_create_logical_replication_slot('{DBZ_SLOT}', 'pgoutput');", db=db)
    pg.psql(f"SELECT pg_copy_logical_replication_slot('{DBZ_SLOT}', '{TM_SLOT}');", db=db)
    a, b = slot_lsn(pg, db, DBZ_SLOT), slot_lsn(pg, db, TM_SLOT)
    assert a and a == b, f"slots not at the same LSN: {a} / {b}"


def run_pair(pg, db, tmp_path, tidemark_bin, debezium_cmd, snapshot: str, dbz_sets: dict = None,
             sink_opts: dict = None, idle_ms: int = 10000, max_records: int = 0,
             tables: str = "inv.*, public.*"):
    """Runs Debezium and tidemark side by side over what is committed now, each
    with its options (run_debezium, run_tidemark), until tidemark has confirmed
    the current WAL position and Debezium has stopped; returns both outputs."""
    end_lsn = lsn_to_int(pg.psql("SELECT pg_current_wal_lsn()", db=db))
    dbz_out, dbz_log = tmp_path / "debezium.jsonl", tmp_path / "debezium.log"
    tm_out = tmp_path / "tidemark-out"
    proc = run_debezium(debezium_cmd, pg, db, dbz_out, dbz_log, snapshot, idle_ms, dbz_sets,
                        max_records)
    daemon = None
    try:
        daemon = run_tidemark(tidemark_bin, pg, db, tmp_path / "tm", tm_out, snapshot, sink_opts,
                              tables)

        def confirmed():
            lsn = slot_lsn(pg, db, TM_SLOT)
            return lsn and lsn_to_int(lsn) >= end_lsn

        wait_until(confirmed, 180, f"tidemark to confirm LSN {end_lsn:X}", daemon)
        # Debezium stops by itself once it has been idle for a while.
        rc = proc.wait(timeout=300)
        assert rc == 0, (f"DebeziumRunner exited with {rc}:\n"
                         f"{dbz_log.read_text(errors='replace')[-6000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if daemon is not None:
            daemon.terminate()
    return dbz_out, tm_out


def run_both(pg, db, tmp_path, tidemark_bin, debezium_cmd, snapshot: str, **options):
    """run_pair, then the comparison: its result, the report text and both outputs."""
    dbz_out, tm_out = run_pair(pg, db, tmp_path, tidemark_bin, debezium_cmd, snapshot, **options)
    res = compare.compare(compare.read_debezium(dbz_out), compare.read_tidemark(tm_out))
    text = compare.report(res)
    return res, text, dbz_out, tm_out


def publish_report(name: str, text: str, dbz_out: Path, tm_out: Path) -> None:
    """Prints the report and keeps it, with both raw outputs, in
    tests/compat/target/ (pytest removes old tmp_paths)."""
    target = HERE / "target"
    target.mkdir(exist_ok=True)
    (target / f"{name}-report.txt").write_text(text + "\n")
    kept_dbz, kept_tm = target / f"{name}-debezium.jsonl", target / f"{name}-tidemark"
    shutil.copyfile(dbz_out, kept_dbz)
    shutil.rmtree(kept_tm, ignore_errors=True)
    shutil.copytree(tm_out, kept_tm)
    print(f"\n{text}\n\nraw outputs: Debezium {kept_dbz}, tidemark {kept_tm}/\n"
          f"rerun the comparison: python3 tests/compat/compare.py {kept_dbz} {kept_tm}")


@pytest.mark.deadline(900)
def test_streaming_matches_debezium(pg, db, tmp_path, tidemark_bin, debezium_cmd):
    pg.psql(SCHEMA, db=db)
    make_slots(pg, db)
    pg.psql(WORKLOAD, db=db)
    res, text, dbz_out, tm_out = run_both(pg, db, tmp_path, tidemark_bin, debezium_cmd, "never")
    publish_report("streaming", text, dbz_out, tm_out)
    assert sum(n for n, _ in res.counts.values()) > 0, "Debezium wrote no record"
    assert res.ok, "tidemark's records differ from Debezium's (report above)"


@pytest.mark.deadline(900)
def test_snapshot_matches_debezium(pg, db, tmp_path, tidemark_bin, debezium_cmd):
    """The initial snapshot of the same tables (op r), then nothing else."""
    pg.psql(SCHEMA, db=db)
    # The workload's rows, without its messages and truncate, as the
    # snapshot's contents.
    rows = "\n".join(line for line in WORKLOAD.splitlines()
                     if "pg_logical_emit_message" not in line and "TRUNCATE" not in line)
    pg.psql(rows, db=db)
    make_slots(pg, db)
    res, text, dbz_out, tm_out = run_both(pg, db, tmp_path, tidemark_bin, debezium_cmd, "initial")
    publish_report("snapshot", text, dbz_out, tm_out)
    assert sum(n for n, _ in res.counts.values()) > 0, "Debezium wrote no record"
    assert res.ok, "tidemark's records differ from Debezium's (report above)"
