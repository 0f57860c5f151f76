"""Every join case of sql_cases.py through `tidemark explain` (issue 11).

Needs no server and no join operator: the job each case would run (the
harness's own job text, with a DSN nobody listens on) must plan, and the
plan must show each join of the query with its type, keys, state views and
mode, hash-partitioned on its keys (or on one subtask for NOT IN's
null-aware anti join), at parallelism 1 and 2.
"""

from types import SimpleNamespace

import pytest

from sql_cases import JOIN_CASES
from sql_harness import CaseRun
from tidemark import run_cli


def _job(case, parallelism, tmp_path):
    pg = SimpleNamespace(dsn=lambda db: f"host=127.0.0.1 port=1 dbname={db} user=postgres")
    env = SimpleNamespace(pg=pg, db="explain", dir=tmp_path, bin=None, base_seed=1, nodeid="")
    run = CaseRun(case, "p1", env)
    path = tmp_path / f"job{parallelism}.sql"
    path.write_text(run.job_text(parallelism))
    return path


def _expected_joins(query: str) -> int:
    q = " " + " ".join(query.upper().replace("(", " ( ").split()) + " "
    explicit = q.count(" JOIN ")
    subqueries = q.count(" EXISTS ") + q.count(" IN ( SELECT")
    commas = 1 if " FROM ORDERS O, CUSTOMERS C " in q else 0
    return explicit + subqueries + commas


@pytest.mark.parametrize("parallelism", [1, 2])
@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in JOIN_CASES])
def test_join_case_explains(case, parallelism, sql_bin, tmp_path):
    path = _job(case, parallelism, tmp_path)
    res = run_cli(["explain", path], bin=sql_bin)
    out = res.stdout + res.stderr
    assert res.returncode == 0, f"explain failed (exit {res.returncode}):\n{path.read_text()}\n{out}"
    joins = [line for line in res.stdout.splitlines() if "] join " in line]
    want = _expected_joins(case.query)
    assert len(joins) == want, f"{want} joins expected, explain shows {len(joins)}:\n{out}"
    assert out.count("          on     ") == want, out
    assert out.count("left   state: ") == want and out.count("right  state: ") == want, out
    assert "not built yet: interval joins" in out and "lookup joins" not in out
    for line in res.stdout.splitlines():
        if line.startswith("          input: left "):
            if "null-aware" in out and "single" in line:
                assert "parallelism 1" in line, line
            else:
                assert "left hash(" in line and "right hash(" in line, line
                assert f"parallelism {parallelism}" in line, line
    # Each join is a stateful stage of its own, named by its uid.
    assert out.count("name join/out/") == want, out


def test_join_types_are_named(sql_bin, tmp_path):
    """The cases cover every join type, and explain names each one."""
    seen = set()
    for case in JOIN_CASES:
        res = run_cli(["explain", _job(case, 2, tmp_path)], bin=sql_bin)
        for line in res.stdout.splitlines():
            if "] join " in line:
                seen.add(line.split("] join ")[1].split(":")[0].split(" ")[0])
    assert seen >= {"inner", "left", "right", "full", "semi", "anti"}, seen
    assert len(JOIN_CASES) >= 40


def test_join_output_keyed_off_its_partitioning_gets_a_multiset_view(sql_bin, tmp_path):
    """A join's output whose unique key does not hold its join key reaches the next join
    out of order per key (two subtasks emit the retraction and the moved row), so the next
    join must not keep it in a unique-key view; a source keyed by its PRIMARY KEY may."""
    (case,) = [c for c in JOIN_CASES if c.name == "join_key_moves_then_join_group_by"]
    res = run_cli(["explain", _job(case, 2, tmp_path)], bin=sql_bin)
    assert res.returncode == 0, res.stdout + res.stderr
    left_states = [l for l in res.stdout.splitlines() if "left   state: " in l]
    assert len(left_states) == 2, res.stdout
    first, second = left_states  # plan order: the inner join first
    assert "unique-key view, one row per (id)" in first, first
    assert "multiset view" in second and "out of order" in second, second
