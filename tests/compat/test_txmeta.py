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
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import compare  # noqa: E402
from pgserver import lsn_to_int  # noqa: E402
from test_compat import (DBZ_SLOT, PREFIX, PUBLICATION, TM_SLOT, make_slots,  # noqa: E402
                         publish_report, slot_lsn)
from tidemark import Tidemark, cdc_job, wait_until  # noqa: E402

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


def run_debezium(debezium_cmd, pg, db, out: Path, log: Path, sets: dict, max_records: int = 0,
                 idle_ms: int = 10000) -> subprocess.Popen:
    cmd = debezium_cmd + [
        "--host", pg.host, "--port", str(pg.port), "--user", "postgres", "--db", db,
        "--slot", DBZ_SLOT, "--publication", PUBLICATION, "--prefix", PREFIX,
        "--snapshot", "no_data", "--out", str(out), "--idle-ms", str(idle_ms)]
    if max_records:
        cmd += ["--max", str(max_records)]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)


def run_both(pg, db, tmp_path, tidemark_bin, debezium_cmd, dbz_sets: dict, tm_opts: dict,
             max_records: int = 0):
    end_lsn = lsn_to_int(pg.psql("SELECT pg_current_wal_lsn()", db=db))
    dbz_out, dbz_log = tmp_path / "debezium.jsonl", tmp_path / "debezium.log"
    tm_out = tmp_path / "tidemark-out"
    proc = run_debezium(debezium_cmd, pg, db, dbz_out, dbz_log, dbz_sets, max_records)
    daemon = None
    try:
        source = {"connector": "postgres-cdc", "dsn": pg.dsn(db), "tables": "public.*, inv.*",
                  "slot": TM_SLOT, "publication": PUBLICATION, "snapshot": "never"}
        sink = {"connector": "file", "path": str(tm_out), "format": "debezium-json",
                "schemas": True, "include_key": True, "tombstones_on_delete": True, **tm_opts}
        daemon = Tidemark(cdc_job(source, sink, source_name=PREFIX), tmp_path / "tm",
                          bin=tidemark_bin).start()

        def confirmed():
            lsn = slot_lsn(pg, db, TM_SLOT)
            return lsn and lsn_to_int(lsn) >= end_lsn

        wait_until(confirmed, 180, f"tidemark to confirm LSN {end_lsn:X}", daemon)
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


@pytest.mark.deadline(900)
def test_transaction_metadata_matches_debezium(pg, db, tmp_path, tidemark_bin, debezium_cmd):
    """provide.transaction.metadata = true on both sides: the transaction topic (BEGIN/END
    with ids, counts, data collections in Debezium's order) and every event's transaction
    block match; topic names (sanitized) match too."""
    pg.psql(SCHEMA, db=db)
    make_slots(pg, db)
    pg.psql(WORKLOAD, db=db)
    dbz_out, tm_out = run_both(pg, db, tmp_path, tidemark_bin, debezium_cmd,
                               {"provide.transaction.metadata": "true"},
                               {"provide_transaction_metadata": True})
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
    dbz_out, tm_out = run_both(pg, db, tmp_path, tidemark_bin, debezium_cmd,
                               {"heartbeat.interval.ms": "500"},
                               {"heartbeat_interval_ms": 500}, max_records=10)
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
