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

from test_compat import make_slots, publish_report, run_both  # noqa: E402

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


@pytest.mark.deadline(600)
@pytest.mark.parametrize("name,dbz,tm", OPTIONS, ids=[o[0] for o in OPTIONS])
def test_option_matches_debezium(pg, db, tmp_path, tidemark_bin, debezium_cmd, name, dbz, tm):
    pg.psql(SCHEMA, db=db)
    make_slots(pg, db)
    pg.psql(WORKLOAD, db=db)
    res, text, dbz_out, tm_out = run_both(pg, db, tmp_path, tidemark_bin, debezium_cmd, "never",
                                          dbz_sets=dbz, sink_opts=tm, idle_ms=6000,
                                          tables="public.*")
    publish_report(f"option-{name}", text, dbz_out, tm_out)
    assert sum(n for n, _ in res.counts.values()) > 0, "Debezium wrote no record"
    assert res.ok, f"tidemark's records differ from Debezium's with {dbz} (report above)"
