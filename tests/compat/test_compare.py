"""The comparison itself (compare.py), on records written by hand: it must
pass identical records, pass only the allowed differences, and report every
other one.  Needs neither Debezium nor a server."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare  # noqa: E402


def rec(op="c", lsn=100, after=None, ts=1, version="3.6.1.Final", key=1):
    value = {"schema": {"type": "struct", "fields": [
                {"type": "int32", "optional": False, "field": "n", "default": 42}]},
             "payload": {"op": op, "ts_ms": ts, "after": after if after is not None else {"n": 1},
                         "source": {"version": version, "lsn": lsn}}}
    text = compare.to_plain(value)
    return {"key": {"payload": {"id": key}}, "value": compare.loads(text)}


def tombstone():
    return {"key": {"payload": {"id": 1}}, "value": None}


def run(a, b):
    return compare.compare({"t": a}, {"t": b})


def test_identical_records_match():
    res = run([rec(), tombstone()], [rec(), tombstone()])
    assert res.ok and res.matched == 2 and not res.allowed


def test_allowed_differences_are_counted_not_failed():
    res = run([rec(ts=1, version="3.6.1.Final")], [rec(ts=2, version="0.1.0")])
    assert res.ok
    assert {p for _, _, p, *_ in res.allowed} == {"value.payload.ts_ms",
                                                  "value.payload.source.version"}


def test_value_difference_is_reported():
    res = run([rec(after={"n": 42})], [rec(after={"n": None})])
    assert not res.ok
    assert [(p, compare.to_plain(x), compare.to_plain(y)) for _, _, p, x, y in res.unexplained] \
        == [("value.payload.after.n", "42", "null")]


def test_bool_is_not_a_number_and_absent_is_not_null():
    res = run([rec(after={"n": 1, "m": None})], [rec(after={"n": True})])
    paths = sorted(p for _, _, p, *_ in res.unexplained)
    assert paths == ["value.payload.after.m", "value.payload.after.n"]


def test_schema_fields_compared_by_name():
    a, b = rec(), rec()
    del b["value"]["schema"]["fields"][0]["default"]
    res = run([a], [b])
    assert [p for _, _, p, *_ in res.unexplained] == ["value.schema.fields[n].default"]


def test_missing_tombstone_and_split_update_show_as_records():
    res = run([rec("d", 5), tombstone(), rec("c", 5, key=2), rec("c", 6)],
              [rec("u", 5, key=2), rec("c", 6)])
    assert res.matched == 1
    assert [compare.kind(r) for _, _, r in res.only_debezium] == ["d", "tombstone", "c"]
    assert [compare.kind(r) for _, _, r in res.only_tidemark] == ["u"]


def test_number_spelling_is_allowed_but_other_numbers_are_not():
    res = run([rec(after={"n": compare.Num("1.0E308")})], [rec(after={"n": compare.Num("1e+308")})])
    assert res.ok and res.allowed[0][5] == "number spelling"
    res = run([rec(after={"n": compare.Num("0.1")})],
              [rec(after={"n": compare.Num("0.10000000149011612")})])
    assert not res.ok


def test_key_order_is_reported():
    a, b = rec(), rec()
    b["value"]["payload"] = dict(reversed(list(b["value"]["payload"].items())))
    res = run([a], [b])
    assert [p for _, _, p, *_ in res.unexplained] == ["value.payload<key order>"]


def test_snapshot_reads_paired_by_key_and_their_clock_allowed():
    a = [rec("r", 7, key=2, after={"n": 2}), rec("r", 7, key=1, after={"n": 1})]
    b = [rec("r", 7, key=1, after={"n": 1}), rec("r", 7, key=2, after={"n": 2})]
    for r, t in zip(b, (5, 6)):
        r["value"]["payload"]["source"]["ts_ms"] = t
    res = run(a, b)
    assert res.ok, compare.report(res)
    paths = {p for _, _, p, *_ in res.allowed}
    assert paths == {"<snapshot row order>", "value.payload.source.ts_ms"}
    # In streaming the commit time comes from the WAL and must match.
    a, b = [rec("c")], [rec("c")]
    b[0]["value"]["payload"]["source"]["ts_ms"] = 5
    assert not run(a, b).ok


def test_snapshot_position_may_differ_but_not_be_missing():
    res = run([rec("r", 7)], [rec("r", 9)])
    assert res.ok and res.matched == 1
    res = run([rec("r", 7)], [rec("r", None)])
    assert [p for _, _, p, *_ in res.unexplained] == ["value.payload.source.lsn"]
    assert not run([rec("c", 7)], [rec("c", 9)]).ok


def test_snapshot_markers_compared_in_emission_order():
    def reads(keys, markers):
        out = [rec("r", 7, key=k, after={"n": k}) for k in keys]
        for r, m in zip(out, markers):
            r["value"]["payload"]["source"]["snapshot"] = m
        return out

    # Other row order, same markers in the same places: fine.
    res = run(reads([3, 1, 2], ["first_in_data_collection", "true", "last_in_data_collection"]),
              reads([1, 2, 3], ["first_in_data_collection", "true", "last_in_data_collection"]))
    assert res.ok, compare.report(res)
    # A marker missing from its place is a difference, whatever the rows.
    res = run(reads([1, 2], ["first_in_data_collection", "last_in_data_collection"]),
              reads([1, 2], ["true", "last"]))
    assert not res.ok
    assert "value.payload.source.snapshot (in emission order)" in \
        [p for _, _, p, *_ in res.unexplained]
