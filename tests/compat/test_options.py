"""Debezium options, set on both sides: the same small workload through
Debezium 3.6.1.Final's PostgreSQL connector with one connector option set
(`--set key=value` on DebeziumRunner) and through tidemark's file sink with
the same option under tidemark's name, compared with compare.py exactly as
test_compat.py compares the defaults.  docs/compat.md ("Debezium options
tidemark honours") lists the options; tests/unit/format/options.c pins each
one's value and schema.

Run with scripts/compat.sh -k options (or the whole tests/compat folder).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import compare  # noqa: E402
from pgserver import lsn_to_int  # noqa: E402
from test_compat import (PREFIX, PUBLICATION, TM_SLOT, make_slots,  # noqa: E402
                         publish_report, run_debezium, slot_lsn)
from tidemark import Tidemark, cdc_job, wait_until  # noqa: E402

SCHEMA = r"""
CREATE EXTENSION hstore;
CREATE TABLE opt (
    id    int PRIMARY KEY,
    code  text,
    name  text,
    b     bytea,
    iv    interval,
    h     hstore,
    bx    tid,
    n     int
);
CREATE TABLE other (k int PRIMARY KEY, v text);
"""

WORKLOAD = r"""
INSERT INTO opt VALUES (1, 'A-1', 'widget', '\xdeadbeeffbff', '1 year 2 mons 3 days 04:05:06.5',
                        '"a"=>"1", "b"=>NULL, "c\"q"=>"x", "aa"=>"2", "q"=>"3"', '(0,1)', 5);
INSERT INTO opt VALUES (2, 'B-1', NULL, '\x', '-1 mon', '', '(2,3)', NULL);
INSERT INTO opt VALUES (3, 'C-1', 'c', '\x00', '-2 days -03:00:00', NULL, NULL, 1);
INSERT INTO opt VALUES (4, 'D-1', 'd', NULL, '00:00:00.000001', '"k"=>"v"', NULL, 2);
UPDATE opt SET n = 6 WHERE id = 1;
UPDATE opt SET code = 'A-2' WHERE id = 1;
UPDATE opt SET id = 10 WHERE id = 3;
DELETE FROM opt WHERE id = 2;
INSERT INTO other VALUES (1, 'x');
UPDATE other SET v = 'y' WHERE k = 1;
-- A last transaction, so the slot has a commit to confirm.
INSERT INTO other VALUES (2, 'z');
"""

# (test id, Debezium connector properties, tidemark sink options): the same setting, by both names.
OPTIONS = [
    ("defaults", {}, {}),
    ("message_key_columns", {"message.key.columns": "public.opt:code,name"},
     {"message_key_columns": "public.opt:code,name"}),
    ("column_exclude_list", {"column.exclude.list": "public.opt.(name|b)"},
     {"column_exclude_list": "public.opt.(name|b)"}),
    ("column_include_list", {"column.include.list": "public.opt.(id|code|n),public.other.v"},
     {"column_include_list": "public.opt.(id|code|n),public.other.v"}),
    ("include_unknown_datatypes", {"include.unknown.datatypes": "true"},
     {"include_unknown_datatypes": True}),
    ("hstore_map", {"hstore.handling.mode": "map"}, {"hstore_handling_mode": "map"}),
    ("interval_string", {"interval.handling.mode": "string"},
     {"interval_handling_mode": "string"}),
    ("binary_base64", {"binary.handling.mode": "base64"}, {"binary_handling_mode": "base64"}),
    ("binary_base64_url_safe", {"binary.handling.mode": "base64-url-safe"},
     {"binary_handling_mode": "base64-url-safe"}),
    ("binary_hex", {"binary.handling.mode": "hex"}, {"binary_handling_mode": "hex"}),
    ("unknown_hex", {"include.unknown.datatypes": "true", "binary.handling.mode": "hex"},
     {"include_unknown_datatypes": True, "binary_handling_mode": "hex"}),
]


def run_tidemark(tidemark_bin, pg, db, workdir: Path, out_dir: Path, extra: dict) -> Tidemark:
    source = {"connector": "postgres-cdc", "dsn": pg.dsn(db), "tables": "public.*",
              "slot": TM_SLOT, "publication": PUBLICATION, "snapshot": "never"}
    sink = {"connector": "file", "path": str(out_dir), "format": "debezium-json",
            "schemas": True, "include_key": True, "tombstones_on_delete": True, **extra}
    return Tidemark(cdc_job(source, sink, source_name=PREFIX), workdir, bin=tidemark_bin).start()


@pytest.mark.deadline(600)
@pytest.mark.parametrize("name,dbz,tm", OPTIONS, ids=[o[0] for o in OPTIONS])
def test_option_matches_debezium(pg, db, tmp_path, tidemark_bin, debezium_cmd, name, dbz, tm):
    pg.psql(SCHEMA, db=db)
    make_slots(pg, db)
    pg.psql(WORKLOAD, db=db)
    end_lsn = lsn_to_int(pg.psql("SELECT pg_current_wal_lsn()", db=db))
    sets = [a for k, v in dbz.items() for a in ("--set", f"{k}={v}")]
    dbz_out, dbz_log = tmp_path / "debezium.jsonl", tmp_path / "debezium.log"
    tm_out = tmp_path / "tidemark-out"
    proc = run_debezium(debezium_cmd + sets, pg, db, dbz_out, dbz_log, "never", idle_ms=6000)
    daemon = None
    try:
        daemon = run_tidemark(tidemark_bin, pg, db, tmp_path / "tm", tm_out, tm)

        def confirmed():
            lsn = slot_lsn(pg, db, TM_SLOT)
            return lsn and lsn_to_int(lsn) >= end_lsn

        wait_until(confirmed, 120, f"tidemark to confirm LSN {end_lsn:X}", daemon)
        rc = proc.wait(timeout=300)
        assert rc == 0, (f"DebeziumRunner exited with {rc}:\n"
                         f"{dbz_log.read_text(errors='replace')[-6000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if daemon is not None:
            daemon.terminate()
    res = compare.compare(compare.read_debezium(dbz_out), compare.read_tidemark(tm_out))
    text = compare.report(res)
    publish_report(f"option-{name}", text, dbz_out, tm_out)
    assert sum(n for n, _ in res.counts.values()) > 0, "Debezium wrote no record"
    assert res.ok, f"tidemark's records differ from Debezium's with {dbz} (report above)"
