"""Debezium options next to the real Debezium (issue 10): provide.transaction.metadata,
topic naming (topic.prefix, the characters Debezium replaces in topic names) and
heartbeats (heartbeat.interval.ms, topic.heartbeat.prefix).

The same slot contents go through Debezium 3.6.1.Final (DebeziumRunner with
--set key=value) and through tidemark's file sink with the matching sink options,
and compare.py compares them record by record, the transaction topic included
(BEGIN/END paired by their id).  Heartbeats are timed, so they are compared by
shape, not one by one.  See docs/compat.md, "Debezium options tidemark honours".

The workload has no column defaults (the comparison of defaults is
test_compat.py's), so any difference here is about these options.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import compare  # noqa: E402
from test_compat import PREFIX, make_slots, publish_report, run_pair  # noqa: E402

SCHEMA = r"""
CREATE TABLE a (id int PRIMARY KEY, v text);
CREATE TABLE b (id int PRIMARY KEY, n int);
CREATE TABLE "We-ird.T" (id int PRIMARY KEY);
CREATE TABLE "sp ace" (id int PRIMARY KEY);
CREATE TABLE "café" (id int PRIMARY KEY);
CREATE TABLE big (id int PRIMARY KEY, t text);
CREATE TABLE trunc_me (id int PRIMARY KEY);
CREATE TABLE nopk (x int);
ALTER TABLE nopk REPLICA IDENTITY FULL;
CREATE SCHEMA inv;
CREATE TABLE inv.items (sku text PRIMARY KEY);
"""

# Each statement outside BEGIN/COMMIT is a transaction of its own.
WORKLOAD = r"""
BEGIN;
INSERT INTO a VALUES (1, 'x');
INSERT INTO b VALUES (1, 1);
INSERT INTO a VALUES (2, 'y');
SELECT pg_logical_emit_message(true, 'p', 'in a transaction');
INSERT INTO inv.items VALUES ('A-1');
SELECT pg_logical_emit_message(true, 'p', 'another one');
COMMIT;
INSERT INTO b VALUES (2, 2);
SELECT pg_logical_emit_message(false, 'p', 'not transactional');
UPDATE a SET v = 'z' WHERE id = 1;
UPDATE a SET id = 10 WHERE id = 2;
DELETE FROM b WHERE id = 1;
INSERT INTO trunc_me VALUES (1);
TRUNCATE trunc_me;
INSERT INTO "We-ird.T" VALUES (1);
INSERT INTO "sp ace" VALUES (1);
INSERT INTO "café" VALUES (1);
-- A TOASTed value: the transaction's first WAL record is not the change's.
INSERT INTO big SELECT 1, string_agg(md5(i::text), '') FROM generate_series(1, 3000) i;
BEGIN;
INSERT INTO nopk VALUES (1), (2);
DELETE FROM nopk WHERE x = 1;
INSERT INTO a SELECT g, 'many' FROM generate_series(100, 130) g;
INSERT INTO b SELECT g, g FROM generate_series(100, 110) g;
COMMIT;
SELECT pg_logical_emit_message(false, 'p', 'last, not transactional');
INSERT INTO a VALUES (3, 'last');
"""


@pytest.mark.deadline(900)
def test_transaction_metadata_matches_debezium(pg, db, tmp_path, tidemark_bin, debezium_cmd):
    """provide.transaction.metadata = true on both sides: the transaction topic (BEGIN/END
    with ids, counts, data collections in Debezium's order) and every event's transaction
    block match; topic names (sanitized) match too."""
    pg.psql(SCHEMA, db=db)
    make_slots(pg, db)
    pg.psql(WORKLOAD, db=db)
    dbz_out, tm_out = run_pair(pg, db, tmp_path, tidemark_bin, debezium_cmd, "never",
                               dbz_sets={"provide.transaction.metadata": "true"},
                               sink_opts={"provide_transaction_metadata": True})
    deb, tm = compare.read_debezium(dbz_out), compare.read_tidemark(tm_out)
    res = compare.compare(deb, tm)
    text = compare.report(res)
    publish_report("txmeta", text, dbz_out, tm_out)
    tx = f"{PREFIX}.transaction"
    assert len(deb.get(tx, [])) >= 2 * 10, "Debezium wrote too few transaction events"
    assert [compare.kind(r) for r in deb[tx]].count("END") == \
        [compare.kind(r) for r in tm.get(tx, [])].count("END")
    # The names Debezium replaces characters in.
    assert f"{PREFIX}.public.sp_ace" in deb and f"{PREFIX}.public.caf_" in deb
    assert res.ok, "tidemark's records differ from Debezium's (report above)"


@pytest.mark.deadline(900)
def test_heartbeats_match_debezium(pg, db, tmp_path, tidemark_bin, debezium_cmd):
    """heartbeat.interval.ms on both sides: the heartbeat topic's name, key and value (schema
    and payload, but ts_ms, the time it was sent) are Debezium's; the data still matches."""
    pg.psql(SCHEMA, db=db)
    make_slots(pg, db)
    pg.psql("INSERT INTO a VALUES (1, 'x'); INSERT INTO b VALUES (1, 1);", db=db)
    # Debezium's heartbeats never let it go idle: stop it after a few of them.
    dbz_out, tm_out = run_pair(pg, db, tmp_path, tidemark_bin, debezium_cmd, "never",
                               dbz_sets={"heartbeat.interval.ms": "500"},
                               sink_opts={"heartbeat_interval_ms": 500}, max_records=10)
    deb, tm = compare.read_debezium(dbz_out), compare.read_tidemark(tm_out)
    topic = f"__debezium-heartbeat.{PREFIX}"
    dh, th = deb.pop(topic, []), tm.pop(topic, [])
    assert dh and th, f"heartbeats: Debezium {len(dh)}, tidemark {len(th)}"
    for rec in dh[:1] + th:
        assert set(rec) == {"key", "value"}
    want_key = json.dumps(compare.to_plain(dh[0]["key"]))
    for rec in th:
        assert json.dumps(compare.to_plain(rec["key"])) == want_key
        assert compare.to_plain(rec["value"]["schema"]) == \
            compare.to_plain(dh[0]["value"]["schema"])
        assert list(rec["value"]["payload"]) == ["ts_ms"]
        assert isinstance(rec["value"]["payload"]["ts_ms"], compare.Num)
    res = compare.compare(deb, tm)
    text = compare.report(res)
    publish_report("heartbeat", text, dbz_out, tm_out)
    assert res.ok, "tidemark's records differ from Debezium's (report above)"
