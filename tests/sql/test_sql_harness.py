"""The harness itself: that it folds, normalises and reports as it claims.

A comparison that cannot fail proves nothing, so these tests break things on
purpose: a changelog that retracts a row it never added, values that differ
only in a numeric's scale, a deliberately wrong oracle against the real
daemon, and expect the report to say so.
"""

import json
from collections import Counter

import pytest

from sql_cases import orders
from sql_harness import (Case, CaseEnv, CaseFailure, PgResult, Workload, _decode_decimal,
                         _iso_interval_to_us, _ts_text_to_us, describe_difference, fold,
                         pg_value, run_case, tm_value, type_mismatches)


def ev(op, before=None, after=None):
    return {"payload": {"op": op, "before": before, "after": after}}


def lines(*events):
    return [("result.jsonl", i + 1, e) for i, e in enumerate(events)]


def test_fold_applies_inserts_updates_and_deletes():
    out = fold(lines(ev("r", after={"k": "a", "n": 1}),
                     ev("c", after={"k": "b", "n": 1}),
                     ev("c", after={"k": "b", "n": 1}),
                     ev("u", {"k": "a", "n": 1}, {"k": "a", "n": 2}),
                     ev("d", {"k": "b", "n": 1})), ["text", "int"])
    assert out.errors == []
    assert out.rows == Counter({("a", 2): 1, ("b", 1): 1})
    assert out.names == ["k", "n"]


def test_fold_reports_a_retraction_of_a_missing_row_with_its_line():
    out = fold(lines(ev("c", after={"k": "a"}), ev("d", {"k": "zz"})), ["text"])
    assert len(out.errors) == 1
    assert "result.jsonl:2" in out.errors[0] and "'zz'" in out.errors[0], out.errors


def test_fold_reports_an_update_without_before_and_unknown_ops():
    out = fold(lines(ev("u", None, {"k": "a"}), ev("t")), ["text"])
    assert any("without a `before` image" in e for e in out.errors), out.errors
    assert any("unexpected op 't'" in e for e in out.errors), out.errors


def test_fold_drops_volatile_columns_and_collects_them():
    seen = {}
    out = fold(lines(ev("c", after={"id": 1, "t": "x"}),
                     ev("u", {"id": 1, "t": "y"}, {"id": 1, "t": "z"})),
               ["int", "timestamptz"], drop={"t"}, volatile_seen=seen)
    assert out.errors == [] and out.rows == Counter({(1,): 1})
    assert seen == {"t": ["x", "z"]}


def test_normalisation_matches_debezium_and_postgresql_forms():
    # Timestamps: PostgreSQL text (UTC session) and Debezium µs / ISO text.
    assert pg_value("timestamp", "1970-01-02 00:00:01.5") == 86_401_500_000
    assert pg_value("timestamptz", "2024-01-01 00:00:00+00") == \
        tm_value("timestamptz", "2024-01-01T00:00:00Z", {})
    assert _ts_text_to_us("2024-01-01T02:00:00+02:00") == _ts_text_to_us("2024-01-01 00:00:00Z")
    # Intervals: a month is 30.4375 days, as Debezium's MicroDuration.
    assert _iso_interval_to_us("P1M") == 2_629_800_000_000
    assert _iso_interval_to_us("P1DT-1H") == 23 * 3600 * 1_000_000
    assert pg_value("date", "1970-01-11") == 10
    assert pg_value("json", '{"b": 1, "a": [1, 2]}') == tm_value("json", '{"a":[1,2],"b":1}', {})
    assert pg_value("float8", "0.30000000000000004") == tm_value("float8", 0.3, {})
    assert pg_value("numeric", "12.30") != tm_value("numeric", "12.3", {"type": "string"})
    assert tm_value("int", "1", {}).why  # a string where an integer belongs
    assert tm_value("bool", 1, {}).why


def test_precise_decimals_decode_to_text_with_their_scale():
    assert _decode_decimal("BNI=", {"type": "bytes", "parameters": {"scale": "2"}}) == "12.34"
    assert _decode_decimal({"scale": 3, "value": "/w=="}, {"type": "struct"}) == "-0.001"
    assert _decode_decimal("-1.50", {"type": "string"}) == "-1.50"


def test_difference_pairs_rows_and_points_at_a_scale_difference():
    text = "\n".join(describe_difference(Counter({("ann", "12.30"): 1, ("bob", "1"): 1}),
                                         Counter({("ann", "12.3"): 1, ("cy", "2"): 2}),
                                         ["customer", "total"]))
    assert "1 missing" not in text and "2 missing from tidemark" in text, text
    assert "total: PostgreSQL '12.30', tidemark '12.3' (equal as numbers: the scale differs)" \
        in text, text
    assert "- ('bob', '1')" in text and "+ ('cy', '2') x2" in text, text


def test_type_check_names_the_postgresql_type():
    pg = PgResult(["n", "?column?"], [20, 1700], Counter())
    problems = type_mismatches(pg, [{"type": "int32"}, {"type": "string"}], ["n", "x"])
    assert problems == ["column 'n': PostgreSQL's type is bigint, so Debezium int64; "
                        "tidemark wrote int32"], problems
    assert type_mismatches(pg, [{"type": "int64"}, {"type": "string"}], ["m", "x"]) == \
        ["column 1 is named 'm' in tidemark's output, 'n' in PostgreSQL's"]


# -- against the daemon: a wrong oracle must fail, with a useful report -----------------

def test_a_wrong_oracle_fails_with_the_rows_that_differ(sql_pg, sql_db, sql_bin, tmp_path):
    case = Case("harness_self_check_wrong_oracle", "SELECT * FROM orders", [orders()],
                oracle_query="SELECT * FROM orders WHERE id % 5 <> 0",
                workload=Workload(changes=60))
    with pytest.raises(CaseFailure) as info:
        run_case(case, "p1", CaseEnv(sql_pg, sql_db, tmp_path, sql_bin))
    report = str(info.value)
    for needle in ("harness_self_check_wrong_oracle", "seed ", "SELECT * FROM orders",
                   "extra (tidemark has them, PostgreSQL does not)", "rerun:",
                   "workload.sql", "PostgreSQL runs instead"):
        assert needle in report, f"{needle!r} not in the report:\n{report}"
    assert (tmp_path / "report.txt").read_text().startswith("SQL case")


def test_a_tampered_changelog_fails_to_fold(sql_pg, sql_db, sql_bin, tmp_path, monkeypatch):
    """The fold catches a retraction of a row that was never added (here: one we forge)."""
    import sql_harness

    real = sql_harness.output_lines

    def tampered(out_dir):
        result = real(out_dir)
        fname, _, rec = result[0]
        forged = json.loads(json.dumps(rec))
        p = forged["payload"]
        p["op"], p["before"] = "d", dict(p["after"], note="never written")
        p["after"] = None
        return result + [(fname, len(result) + 1, forged)]

    monkeypatch.setattr(sql_harness, "output_lines", tampered)
    case = Case("harness_self_check_tampered", "SELECT * FROM orders", [orders()],
                workload=Workload(changes=20))
    with pytest.raises(CaseFailure) as info:
        run_case(case, "p1", CaseEnv(sql_pg, sql_db, tmp_path, sql_bin))
    report = str(info.value)
    assert "the changelog does not fold" in report and "never written" in report, report


class _FakeDaemon:
    def __init__(self, state_dir):
        self.state_dir = state_dir


class _FakeRun:
    """What the dead-letter post-check reads: the daemons' state dirs and PostgreSQL."""

    def __init__(self, state_dir, bad_rows):
        self.daemons = [_FakeDaemon(state_dir)]
        self._bad = bad_rows

    def sql(self, text):
        assert "d = 0" in text
        return "\n".join("|".join(str(v) for v in row) for row in self._bad)


def _dl_line(op, before=None, after=None, reason="division by zero", subtask=0):
    return json.dumps({"ts_ms": 1, "job": "job", "operator": "calc/out/1", "subtask": subtask,
                       "reason": reason, "op": op, "before": before, "after": after,
                       "source": "public.divs"})


def test_dead_letter_check_folds_the_files_and_catches_differences(tmp_path):
    """The on_error = 'dead-letter' case's check passes on the right files and fails otherwise."""
    from sql_cases import _dead_letters_are_the_bad_rows as check
    dl = tmp_path / "state" / "dead-letter"
    dl.mkdir(parents=True)
    r1 = {"id": 1, "n": "2.50", "d": 0, "label": "p"}
    r1b = {"id": 1, "n": "3.00", "d": 0, "label": "p"}
    r2 = {"id": 2, "n": "1.00", "d": 0, "label": "q"}
    good = [_dl_line("r", after=r1), _dl_line("u", r1, r1b), _dl_line("c", after=r2),
            _dl_line("d", before=r2)]
    (dl / "calc_out_1-0.jsonl").write_text("\n".join(good) + "\n")
    run = _FakeRun(tmp_path / "state", [(1, "3.00", 0, "p")])
    assert check(run) == []
    # A bad row that never reached the files.
    assert any("fold to" in p for p in check(_FakeRun(tmp_path / "state",
                                                      [(1, "3.00", 0, "p"), (5, "1.00", 0, "r")])))
    # The scale of a numeric matters, as in the comparison.
    assert check(_FakeRun(tmp_path / "state", [(1, "3.0", 0, "p")])) != []
    # Another reason, or a line in the wrong subtask's file.
    (dl / "calc_out_1-1.jsonl").write_text(_dl_line("c", after=r2, reason="oops", subtask=1)
                                           + "\n" + _dl_line("d", before=r2, subtask=0) + "\n")
    problems = check(run)
    assert any("reason 'oops'" in p for p in problems), problems
    assert any("calc_out_1-1.jsonl:2" in p and "subtask" in p for p in problems), problems
    # No files at all.
    assert "wrote no files" in check(_FakeRun(tmp_path / "nothing", []))[0]


def test_dead_letter_check_allows_replays_only_in_the_kill_round(tmp_path):
    from sql_cases import _dead_letters_are_the_bad_rows as check
    dl = tmp_path / "state" / "dead-letter"
    dl.mkdir(parents=True)
    r1 = {"id": 1, "n": "2.50", "d": 0, "label": "p"}
    # A replay after a crash wrote the insert twice.
    (dl / "calc_out_1-0.jsonl").write_text(_dl_line("c", after=r1) + "\n" +
                                           _dl_line("c", after=r1) + "\n")
    run = _FakeRun(tmp_path / "state", [(1, "2.50", 0, "p")])
    assert any("fold to" in p for p in check(run))
    run.mode = "kill"
    assert check(run) == []
    # Even then, a good row (d <> 0) is never a dead letter.
    (dl / "calc_out_1-1.jsonl").write_text(
        _dl_line("c", after={"id": 2, "n": "1.00", "d": 3, "label": "q"}, subtask=1) + "\n")
    assert any("divisor is 3" in p for p in check(run))
