"""tidemark's records fed to real Debezium consumers, next to Debezium's own:
Kafka Connect's JsonConverter.toConnectData (schemas.enable=true) and Flink's
debezium-json deserializer (flink-json 2.3.0, schema-include=true).  Every
record of test_compat's workload, streaming and snapshot, must be accepted by
both and decode to the same values as the Debezium record it pairs with.
docs/compat.md ("Real consumers") says what is checked and why.

The workload runs once per mode, as in test_compat.py (its SCHEMA, WORKLOAD and
run_both are imported, not copied); ConsumerCheck (tests/compat/src) decodes
both outputs, and the records are paired as compare.py pairs them (per topic,
by op and lsn; snapshot reads by key).

Known differences that the lead is fixing in parallel (issue 10: NOT NULL
defaults in delete before-images, column defaults in the schema, snapshot
markers) and one more that docs/compat.md lists (±infinity dates in a
snapshot) are taken out of the main assertions by KNOWN, printed in the
report, and each asserted on its own in test_known_difference, marked
xfail(strict=True): once fixed, that test passes, fails as XPASS, and its
mark (one line of KNOWN) goes.

Outputs: tests/compat/target/consumers-<mode>.jsonl (ConsumerCheck's output)
and consumers-<mode>-report.txt.
"""

from __future__ import annotations

import difflib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import compare  # noqa: E402
from pgserver import lsn_to_int  # noqa: E402
from test_compat import (DBZ_SLOT, PREFIX, PUBLICATION, SCHEMA, WORKLOAD,  # noqa: E402
                         make_slots, run_both, slot_lsn)
from tidemark import Tidemark, cdc_job, wait_until  # noqa: E402

CHECK_MAIN = "io.tidemark.compat.ConsumerCheck"
JDBC_MAIN = "io.tidemark.compat.JdbcSinkCheck"
# A third slot, a copy of Debezium's, for tidemark's Kafka sink (streaming).
KAFKA_SLOT = "compat_tmk"
MODES = ("streaming", "snapshot")
TIDEMARK_SNAPSHOT = {"streaming": "never", "snapshot": "initial"}

# The topics the JDBC sink writes (every keyed table; a keyless table and the
# message topic have no place in a keyed upsert sink): topic -> (source table,
# the table the sink names after the topic).
JDBC_TOPICS = {
    "shop.public.everything": ("public.everything", "shop_public_everything"),
    "shop.public.defaults": ("public.defaults", "shop_public_defaults"),
    "shop.public.full_ident": ("public.full_ident", "shop_public_full_ident"),
    "shop.public.trunc_me": ("public.trunc_me", "shop_public_trunc_me"),
    "shop.public.Mixed": ('public."Mixed"', "shop_public_mixed"),
    "shop.inv.items": ("inv.items", "shop_inv_items"),
}
# Target tables that must equal their source table.  The others differ from
# the source for Debezium's own records as much as for tidemark's (and must
# equal what the sink made of Debezium's records): shop.public.everything
# through the sink's own type mappings (±infinity, the TOAST placeholder
# written as a value, the row with time '24:00:00', which the sink cannot
# write: "Invalid value for NanoOfDay"); trunc_me in streaming, since
# Debezium's default skips the TRUNCATE.
JDBC_SOURCE_EQUAL = {
    "streaming": ("shop.public.defaults", "shop.public.full_ident", "shop.public.Mixed",
                  "shop.inv.items"),
    "snapshot": ("shop.public.defaults", "shop.public.full_ident", "shop.public.Mixed",
                 "shop.inv.items", "shop.public.trunc_me"),
}


@dataclass(frozen=True)
class Known:
    """A difference being fixed elsewhere: which mode, what it is, and which
    differences it covers (a predicate over one difference)."""
    mode: str
    slug: str
    name: str
    covers: object = field(compare=False)


KNOWN: list = [
    # Empty: every difference these consumers found is fixed (issue 10 rows 1 and 7,
    # the snapshot's infinity dates, sequence after a non-transactional message).
    # A new one gets an entry here, e.g.
    #   Known("streaming", "slug", "what differs and why", lambda d: d.path == "..."),
]


@dataclass
class Diff:
    topic: str
    op: str
    key: str
    consumer: str   # connect-key, connect-value, connect-schema, flink
    path: str
    debezium: object
    tidemark: object

    def line(self) -> str:
        return (f"{self.topic} {self.op} key={self.key} [{self.consumer}] {self.path}: "
                f"{json.dumps(self.debezium)} -> {json.dumps(self.tidemark)}")


def jdiff(a, b, path: str, out: list) -> None:
    """(path, a, b) for every difference between two plain JSON trees."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            jdiff(a.get(k, compare.ABSENT), b.get(k, compare.ABSENT), f"{path}.{k}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            # A struct's fields are [name, schema] pairs: name the path after the field.
            name = x[0] if (isinstance(x, list) and len(x) == 2 and isinstance(x[0], str)
                            and isinstance(y, list) and y[:1] == x[:1]) else None
            if name is not None:
                jdiff(x[1], y[1], f"{path}.{name}", out)
            else:
                jdiff(x, y, f"{path}[{i}]", out)
    elif type(a) is not type(b) or a != b:
        out.append((path, a, b))


@dataclass
class Outcome:
    mode: str
    checked: list            # ConsumerCheck's output lines
    pairs: list              # (topic, op, key text, debezium line, tidemark line)
    unpaired: list           # (side, topic, op, key text)
    diffs: list = field(default_factory=list)        # unexplained
    jdbc: dict = field(default_factory=dict)         # run_jdbc's result
    jdbc_diffs: list = field(default_factory=list)   # unexplained, JDBC sink
    known: dict = field(default_factory=dict)        # Known -> [Diff]
    allowed: dict = field(default_factory=dict)      # path -> count
    report: str = ""


def pair_records(deb: dict, tm: dict):
    """compare.compare's pairing (per topic, by (op, lsn); snapshot reads by
    key), returning the pairs' indexes in each side's file order."""
    pairs, unpaired = [], []
    for topic in list(deb) + [t for t in tm if t not in deb]:
        a = [dict(r, _idx=i) for i, r in enumerate(deb.get(topic, []))]
        b = [dict(r, _idx=i) for i, r in enumerate(tm.get(topic, []))]
        a, b = compare.sort_snapshot_reads(a), compare.sort_snapshot_reads(b)
        sm = difflib.SequenceMatcher(None, compare.signatures(a), compare.signatures(b),
                                     autojunk=False)
        for tag, i1, i2, j1, j2 in sm.get_opcodes():
            if tag == "equal":
                pairs += [(topic, compare.kind(a[i]), compare._key_text(a[i]), a[i]["_idx"],
                           b[j]["_idx"]) for i, j in zip(range(i1, i2), range(j1, j2))]
            else:
                unpaired += [("debezium", topic, compare.kind(a[i]), compare._key_text(a[i]))
                             for i in range(i1, i2)]
                unpaired += [("tidemark", topic, compare.kind(b[j]), compare._key_text(b[j]))
                             for j in range(j1, j2)]
    return pairs, unpaired


def classify(out: Outcome, diff: Diff, unexplained: list) -> None:
    """Counts an allowed difference, files a known one under KNOWN, or adds
    it to unexplained."""
    why = compare.allowed_reason(diff.path, diff.op, diff.debezium, diff.tidemark)
    if diff.op == "r" and diff.path == "value.payload.source.snapshot":
        # Markers belong to positions, not rows: test_compat checks them in
        # emission order (compare.SNAPSHOT_MARKERS); here reads pair by key.
        why = compare.SNAPSHOT_MARKERS
    if why:
        out.allowed[diff.path] = out.allowed.get(diff.path, 0) + 1
        return
    known = next((k for k in KNOWN if k.mode == out.mode and k.covers(diff)), None)
    if known is None:
        unexplained.append(diff)
    else:
        out.known.setdefault(known, []).append(diff)


def _failed_record(f: dict) -> dict:
    return {"key": compare.loads(f["key"]) if f.get("key") is not None else None,
            "value": compare.loads(f["value"]) if f.get("value") is not None else None}


def jdbc_diffs(mode: str, jdbc: dict) -> list:
    """The JDBC sink's results for tidemark's records (from the file sink, and
    from the Kafka sink's topics when a broker ran) against those for
    Debezium's: the records it failed on, the rows and the columns of every
    target table; and tidemark's target tables against the source."""
    found = []
    for side in [s for s in ("tidemark", "kafka") if s in jdbc["failures"]]:
        who = "jdbc" if side == "tidemark" else "jdbc-kafka"
        failed = {}
        for s in ("debezium", side):
            for f in jdbc["failures"][s]:
                rec = _failed_record(f)
                sig = (f["topic"], compare.kind(rec), compare._key_text(rec))
                failed.setdefault(sig, {})[s] = f["error"]
        for (topic, op, key), errs in failed.items():
            if errs.get("debezium") != errs.get(side):
                found.append(Diff(topic, op, key, f"{who}-put", f"{who}.put",
                                  errs.get("debezium"), errs.get(side)))
        for topic, t in jdbc["tables"].items():
            table = JDBC_TOPICS[topic][1]
            d_rows, t_rows = t["debezium"], t[side]
            if d_rows != t_rows:
                found.append(Diff(topic, "-", "-", f"{who}-table", f"{who}.{table}.rows",
                                  [r for r in d_rows if r not in t_rows],
                                  [r for r in t_rows if r not in d_rows]))
            if topic in JDBC_SOURCE_EQUAL[mode] and t["source"] != t_rows:
                found.append(Diff(topic, "-", "-", f"{who}-source",
                                  f"{who}.{table}.rows vs source",
                                  [r for r in t["source"] if r not in t_rows],
                                  [r for r in t_rows if r not in t["source"]]))
            d_cols = {c[0]: c for c in t["ddl_debezium"]}
            t_cols = {c[0]: c for c in t[f"ddl_{side}"]}
            for name in list(d_cols) + [c for c in t_cols if c not in d_cols]:
                dc, tc = d_cols.get(name), t_cols.get(name)
                for i, attr in enumerate(("column_name", "data_type", "is_nullable",
                                          "column_default")):
                    x = dc[i] if dc else None
                    y = tc[i] if tc else None
                    if x != y:
                        found.append(Diff(topic, "-", name, f"{who}-ddl",
                                          f"{who}.{table}.{name}.{attr}", x, y))
    return found


def analyse(mode: str, checked: list, deb: dict, tm: dict, jdbc: dict = None) -> Outcome:
    by = {(c["side"], c["topic"], c["index"]): c for c in checked}
    raw_pairs, unpaired = pair_records(deb, tm)
    out = Outcome(mode, checked, [], unpaired)
    for topic, op, key, i, j in raw_pairs:
        d, t = by[("debezium", topic, i)], by[("tidemark", topic, j)]
        out.pairs.append((topic, op, key, d, t))
        found = []
        for part in ("key", "value"):
            dc, tc = d["connect"][part], t["connect"][part]
            if dc.get("accepted") and tc.get("accepted"):
                for p, x, y in _diffs(dc["schema"], tc["schema"], f"{part}.schema"):
                    found.append(Diff(topic, op, key, "connect-schema", p, x, y))
                for p, x, y in _diffs(dc["value"], tc["value"], f"{part}.payload"):
                    found.append(Diff(topic, op, key, f"connect-{part}", p, x, y))
            elif dc != tc:
                found.append(Diff(topic, op, key, f"connect-{part}", f"{part}<accepted>",
                                  dc.get("error", "accepted"), tc.get("error", "accepted")))
        for p, x, y in _diffs(d["flink"], t["flink"], "flink"):
            found.append(Diff(topic, op, key, "flink", p, x, y))
        for diff in found:
            classify(out, diff, out.diffs)
    if jdbc:
        out.jdbc = jdbc
        for diff in jdbc_diffs(mode, jdbc):
            classify(out, diff, out.jdbc_diffs)
    out.report = report(out)
    return out


def _diffs(a, b, path):
    found = []
    jdiff(a, b, path, found)
    return found


def accepted(c: dict) -> bool:
    return bool(c["connect"]["key"]["accepted"] and c["connect"]["value"]["accepted"])


def report(o: Outcome) -> str:
    lines = [f"Real consumers, {o.mode}: {len(o.checked)} records decoded, {len(o.pairs)} pairs, "
             f"{len(o.unpaired)} unpaired; unexplained differences: {len(o.diffs)}"]
    lines.append("")
    lines.append("== Per pair: Connect (key/value) and Flink on Debezium's record | tidemark's ==")
    for topic, op, key, d, t in o.pairs:
        def state(c):
            conn = "ok" if accepted(c) else "REJECTED"
            fl = c["flink"]
            flink = ("".join(r["kind"] for r in fl["rows"]) or "(none)") if fl["accepted"] \
                else "rejected: " + fl["error"].split(" / caused by ")[-1][:90]
            return f"connect {conn}, flink {flink}"
        lines.append(f"  {topic} {op} key={key[:40]}: {state(d)} | {state(t)}")
    if o.unpaired:
        lines.append("")
        lines.append("== Unpaired records (test_compat reports these in detail) ==")
        lines += [f"  only {side}: {topic} {op} key={key}" for side, topic, op, key in o.unpaired]
    lines.append("")
    lines.append("== Unexplained differences ==")
    lines += [f"  {d.line()}" for d in o.diffs] or ["  none"]
    if o.jdbc:
        lines.append("")
        lines.append("== Debezium's JDBC sink: records it failed on, per producer ==")
        for side in o.jdbc["failures"]:
            for f in o.jdbc["failures"][side]:
                lines.append(f"  {side}: {f['topic']} #{f['index'] + 1}: {f['error'][:200]}")
        lines.append("== Debezium's JDBC sink: target tables from tidemark's records (file sink; "
                     "Kafka sink) vs from Debezium's, and vs the source ==")
        if o.jdbc.get("kafka_skipped"):
            lines.append(f"  (no Kafka broker: {o.jdbc['kafka_skipped']})")
        for topic, t in o.jdbc["tables"].items():
            for side in [s for s in ("tidemark", "kafka") if s in t]:
                same = "same rows" if t["debezium"] == t[side] else "DIFFERENT rows"
                src = ("= source" if t[side] == t["source"] else
                       "differs from source" + ("" if topic in JDBC_SOURCE_EQUAL[o.mode]
                                                else " (as Debezium's; see JDBC_SOURCE_EQUAL)"))
                lines.append(f"  {JDBC_TOPICS[topic][1]} from {side}: {len(t[side])} rows "
                             f"({len(t['debezium'])} from Debezium's), {same}; {src}")
        lines.append("== Unexplained JDBC sink differences ==")
        lines += [f"  {d.line()}" for d in o.jdbc_diffs] or ["  none"]
    lines.append("")
    lines.append("== Known differences (being fixed; test_known_difference, xfail strict) ==")
    for k in KNOWN:
        if k.mode == o.mode:
            got = o.known.get(k, [])
            per = {}
            for d in got:
                per[d.consumer] = per.get(d.consumer, 0) + 1
            lines.append(f"  {k.name}: {len(got)} difference(s) "
                         f"({', '.join(f'{c} {n}' for c, n in per.items())})")
            lines += [f"      {d.line()}" for d in got[:12]]
            if len(got) > 12:
                lines.append(f"      ... {len(got) - 12} more")
    lines.append("")
    lines.append("== Allowed differences (compare.ALLOWED*) ==")
    lines += [f"  {p}: {n}x" for p, n in o.allowed.items()] or ["  none"]
    return "\n".join(lines)


def _rows(pg, db: str, sql: str) -> list:
    return sorted(line for line in pg.psql(sql, db=db).splitlines() if line)


def run_jdbc(pg, db: str, dbz_out: Path, tm_out: Path, debezium_cmd, tmp_path: Path,
             kafka_bootstrap: str = None) -> dict:
    """Debezium's JDBC sink (JdbcSinkCheck) on each producer's records, into
    a database of its own; returns the records it failed on and, per topic,
    the rows of the source table and of both target tables, and the target
    tables' columns."""
    res = {"failures": {}, "tables": {t: {} for t in JDBC_TOPICS}}
    sides = [("debezium", ["--debezium", str(dbz_out)]), ("tidemark", ["--tidemark", str(tm_out)])]
    if kafka_bootstrap:
        sides.append(("kafka", ["--kafka", kafka_bootstrap]))
    try:
        for side, arg in sides:
            target = f"{db}_jdbc_{side}"
            pg.psql(f'DROP DATABASE IF EXISTS "{target}"; CREATE DATABASE "{target}";')
            failures, log = tmp_path / f"jdbc-{side}.jsonl", tmp_path / f"jdbc-{side}.log"
            cmd = debezium_cmd[:-1] + [JDBC_MAIN] + arg + [
                "--topics", ",".join(JDBC_TOPICS), "--url",
                f"jdbc:postgresql://{pg.host}:{pg.port}/{target}", "--user", "postgres",
                "--out", str(failures)]
            r = subprocess.run(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, timeout=600)
            assert r.returncode == 0, (f"JdbcSinkCheck ({side}) exited with {r.returncode}:\n"
                                       f"{log.read_text(errors='replace')[-6000:]}")
            res["failures"][side] = [json.loads(line) for line in
                                     failures.read_text().splitlines() if line]
            for topic, (source, table) in JDBC_TOPICS.items():
                t = res["tables"][topic]
                t[side] = _rows(pg, target, f'SELECT * FROM "{table}"')
                t[f"ddl_{side}"] = [line.split("|") for line in pg.psql(
                    "SELECT column_name, data_type, is_nullable, column_default "
                    "FROM information_schema.columns "
                    f"WHERE table_name = '{table}' ORDER BY ordinal_position",
                    db=target).splitlines() if line]
                t["source"] = _rows(pg, db, f"SELECT * FROM {source}")
    finally:
        for side, _ in sides:
            pg.psql(f'DROP DATABASE IF EXISTS "{db}_jdbc_{side}";', check=False)
    return res


def run_kafka_sink(pg, db: str, tidemark_bin, kafka, tmp_path: Path, end_lsn: int) -> None:
    """tidemark with its Kafka sink (Debezium's defaults: schemas, keys,
    tombstones, the {source}.{schema}.{table} topics) on KAFKA_SLOT, until it
    has confirmed end_lsn."""
    source = {"connector": "postgres-cdc", "dsn": pg.dsn(db), "tables": "public.*, inv.*",
              "slot": KAFKA_SLOT, "publication": PUBLICATION, "snapshot": "never"}
    sink = {"connector": "kafka", "bootstrap_servers": kafka.bootstrap, "schemas": True}
    daemon = Tidemark(cdc_job(source, sink, source_name=PREFIX), tmp_path / "tm-kafka",
                      bin=tidemark_bin).start()
    try:
        def confirmed():
            lsn = slot_lsn(pg, db, KAFKA_SLOT)
            return lsn and lsn_to_int(lsn) >= end_lsn
        wait_until(confirmed, 180, f"tidemark's Kafka sink to confirm LSN {end_lsn:X}", daemon)
    finally:
        daemon.terminate()


def run_mode(mode, pg, tmp_path, tidemark_bin, debezium_cmd, kafka=None) -> Outcome:
    db = f"consumers_{mode}"
    pg.psql(f'DROP DATABASE IF EXISTS "{db}"; CREATE DATABASE "{db}";')
    try:
        pg.psql(SCHEMA, db=db)
        if mode == "streaming":
            make_slots(pg, db)
            if kafka is not None:
                pg.psql(f"SELECT pg_copy_logical_replication_slot('{DBZ_SLOT}', '{KAFKA_SLOT}');",
                        db=db)
            pg.psql(WORKLOAD, db=db)
        else:
            # As test_snapshot_matches_debezium: the workload's rows, without its
            # messages and truncate, as the snapshot's contents.
            pg.psql("\n".join(line for line in WORKLOAD.splitlines()
                              if "pg_logical_emit_message" not in line
                              and "TRUNCATE" not in line), db=db)
            make_slots(pg, db)
        _, _, dbz_out, tm_out = run_both(pg, db, tmp_path, tidemark_bin, debezium_cmd,
                                         TIDEMARK_SNAPSHOT[mode])
        bootstrap = None
        if mode == "streaming" and kafka is not None:
            end_lsn = lsn_to_int(pg.psql("SELECT pg_current_wal_lsn()", db=db))
            run_kafka_sink(pg, db, tidemark_bin, kafka, tmp_path, end_lsn)
            bootstrap = kafka.bootstrap
        jdbc = run_jdbc(pg, db, dbz_out, tm_out, debezium_cmd, tmp_path, bootstrap)
        if mode == "streaming" and kafka is None:
            jdbc["kafka_skipped"] = KAFKA_MISSING
    finally:
        pg.drop_database(db)
    checked_out, log = tmp_path / "consumers.jsonl", tmp_path / "consumers.log"
    cmd = debezium_cmd[:-1] + [CHECK_MAIN, "--debezium", str(dbz_out), "--tidemark", str(tm_out),
                               "--out", str(checked_out)]
    r = subprocess.run(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, timeout=300)
    assert r.returncode == 0, (f"ConsumerCheck exited with {r.returncode}:\n"
                               f"{log.read_text(errors='replace')[-6000:]}")
    checked = [json.loads(line) for line in checked_out.read_text().splitlines() if line]
    o = analyse(mode, checked, compare.read_debezium(dbz_out), compare.read_tidemark(tm_out),
                jdbc)
    target = HERE / "target"
    target.mkdir(exist_ok=True)
    shutil.copyfile(checked_out, target / f"consumers-{mode}.jsonl")
    (target / f"consumers-{mode}-report.txt").write_text(o.report + "\n")
    print(f"\n{o.report}\n\nConsumerCheck's output: {target / f'consumers-{mode}.jsonl'}")
    return o


KAFKA_MISSING = ""


@pytest.fixture(scope="module")
def kafka_broker():
    """A Kafka broker for the Kafka sink's records (tests/lib/kafkaserver.py),
    or None when one cannot run here (the JDBC sink then reads the files only,
    and test_jdbc_sink_from_kafka skips)."""
    global KAFKA_MISSING
    from kafkaserver import STEADY_CONF, KafkaServer, missing_prerequisite
    KAFKA_MISSING = missing_prerequisite() or ""
    if KAFKA_MISSING:
        yield None
        return
    server = KafkaServer(extra_conf=STEADY_CONF)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def outcome(pg, tidemark_bin, debezium_cmd, tmp_path_factory, kafka_broker):
    """outcome(mode): the workload through both producers and all consumers,
    run once per mode on first use."""
    cache = {}

    def get(mode):
        if mode not in cache:
            try:
                cache[mode] = run_mode(mode, pg, tmp_path_factory.mktemp(f"consumers-{mode}"),
                                       tidemark_bin, debezium_cmd, kafka_broker)
            except BaseException as e:
                cache[mode] = e
                raise
        if isinstance(cache[mode], BaseException):
            pytest.fail(f"the {mode} run failed in an earlier test: {cache[mode]!r}")
        return cache[mode]
    return get


@pytest.mark.deadline(900)
@pytest.mark.parametrize("mode", MODES)
def test_every_record_accepted(outcome, mode):
    """Connect accepts every record's key and value, Debezium's and tidemark's.
    Flink accepts every tidemark record, except where it rejects the paired
    Debezium record in the same words: Flink's debezium-json refuses an
    update whose before is null (REPLICA IDENTITY DEFAULT; Flink's docs ask
    for FULL) and any op it does not know (logical messages, op m)."""
    o = outcome(mode)
    assert o.checked, "ConsumerCheck decoded nothing"
    tm = [c for c in o.checked if c["side"] == "tidemark"]
    deb = [c for c in o.checked if c["side"] == "debezium"]
    assert tm and deb and not o.unpaired, \
        f"records do not pair one to one (test_compat reports why):\n{o.report}"

    bad = [f"{c['side']} {c['topic']} #{c['index']}: "
           f"{c['connect']['key'].get('error') or c['connect']['value'].get('error')}"
           for c in o.checked if not accepted(c)]
    assert not bad, "Kafka Connect's JsonConverter rejected records:\n" + "\n".join(bad)

    flink_bad = []
    for topic, op, key, d, t in o.pairs:
        if t["flink"]["accepted"]:
            continue
        if not d["flink"]["accepted"] and d["flink"]["error"] == t["flink"]["error"]:
            continue  # Flink refuses Debezium's own record the same way.
        flink_bad.append(f"{topic} {op} key={key}: {t['flink']['error']}")
    assert not flink_bad, ("Flink's debezium-json rejected tidemark records:\n"
                           + "\n".join(flink_bad))
    # The rule above must not hide everything: most records decode.
    assert sum(1 for c in tm if c["flink"]["accepted"]) > len(tm) // 2


@pytest.mark.deadline(900)
@pytest.mark.parametrize("mode", MODES)
def test_same_values(outcome, mode):
    """Every paired record decodes to the same Connect key, Connect value
    (Struct values, each primitive with its type), Connect schemas and Flink
    rows (values and RowKind) as Debezium's, except compare.py's allowed
    differences (timing fields, version; a snapshot's lsn and txId) and the
    KNOWN ones, each asserted by test_known_difference."""
    o = outcome(mode)
    assert o.pairs, "no record pairs"
    assert not o.diffs, (f"tidemark's records decode differently from Debezium's "
                         f"({len(o.diffs)} differences):\n" + "\n".join(d.line() for d in o.diffs)
                         + f"\n\n{o.report}")


@pytest.mark.deadline(900)
@pytest.mark.parametrize("known", [
    pytest.param(k, id=f"{k.mode}-{k.slug}",
                 marks=pytest.mark.xfail(strict=True, reason="known tidemark difference, "
                                         f"drop this KNOWN entry once fixed: {k.name}"))
    for k in KNOWN])
def test_known_difference(outcome, known):
    """One known difference; fails today (xfail, strict), passes once fixed."""
    o = outcome(known.mode)
    got = o.known.get(known, [])
    assert not got, f"{known.name}:\n" + "\n".join(d.line() for d in got)


@pytest.mark.deadline(900)
@pytest.mark.parametrize("mode", MODES)
def test_jdbc_sink(outcome, mode):
    """Debezium's JDBC sink (upsert, deletes, key from the record key, tables
    created from the schemas) fed tidemark's records writes the same target
    tables, rows and columns, as when fed Debezium's, and fails on exactly the
    records it fails on for Debezium; the target tables in JDBC_SOURCE_EQUAL
    equal their source table."""
    o = outcome(mode)
    assert o.jdbc, "the JDBC sink did not run"
    assert any(t["tidemark"] for t in o.jdbc["tables"].values()), "the sink wrote no row"
    assert not o.jdbc_diffs, (f"the JDBC sink's results for tidemark's records differ "
                              f"({len(o.jdbc_diffs)}):\n"
                              + "\n".join(d.line() for d in o.jdbc_diffs) + f"\n\n{o.report}")


@pytest.mark.deadline(900)
def test_jdbc_sink_from_kafka(outcome):
    """The same through Kafka: tidemark's Kafka sink writes the streaming
    workload's topics on a real broker, the JDBC sink reads them there, and
    writes what it writes from Debezium's records (checked by test_jdbc_sink
    with the other differences; this test says whether the Kafka leg ran)."""
    o = outcome("streaming")
    if "kafka" not in o.jdbc["failures"]:
        pytest.skip(f"no Kafka broker here: {o.jdbc.get('kafka_skipped')}")
    assert any(t["kafka"] for t in o.jdbc["tables"].values()), "the sink wrote no row from Kafka"
    bad = [d for d in o.jdbc_diffs if d.consumer.startswith("jdbc-kafka")]
    assert not bad, "\n".join(d.line() for d in bad)
