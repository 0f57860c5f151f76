"""Every SQL case, checked against PostgreSQL as the oracle (sql_harness.py).

Each case runs at parallelism 1 (`p1`) and 2 (`p2`), once more through
kill -9s and restarts (`kill`), and through a savepoint and a rescale
(`sp12`: half the workload at parallelism 1, `tidemark stop --savepoint`,
the rest at parallelism 2 restored from it; `sp21` the reverse).  CI runs
the kill round on the cases marked kill_ci and the rescale round on those
marked rescale_ci; TIDEMARK_SQL_FULL=1 runs both on every case.
TIDEMARK_SQL_SEED sets the base seed (default fixed; 'random' draws one; every failure prints it).
"""

import os

import pytest

from sql_cases import CASES
from sql_harness import DEFAULT_SEED, CaseEnv, base_seed, run_case

FULL = os.environ.get("TIDEMARK_SQL_FULL", "") not in ("", "0")
BASE_SEED = base_seed()


def _params():
    for case in CASES:
        yield pytest.param(case, "p1", id=f"{case.name}-p1")
        yield pytest.param(case, "p2", id=f"{case.name}-p2")
        # A case that expects the job to fail has nothing to recover to.
        if (FULL or case.kill_ci) and not case.expect_failure:
            yield pytest.param(case, "kill", id=f"{case.name}-kill")
        # Half the workload, stop --savepoint, restore at the other parallelism.
        # (A bounded case ends by itself: there is nothing to stop with a savepoint.)
        if (FULL or case.rescale_ci) and not case.expect_failure and not case.bounded:
            yield pytest.param(case, "sp12", id=f"{case.name}-sp12")
            yield pytest.param(case, "sp21", id=f"{case.name}-sp21")


@pytest.mark.deadline(240)
@pytest.mark.parametrize("case,mode", list(_params()))
def test_sql_case(case, mode, sql_pg, sql_db, sql_bin, tmp_path, request):
    env = CaseEnv(pg=sql_pg, db=sql_db, dir=tmp_path, bin=sql_bin, base_seed=BASE_SEED,
                  nodeid=request.node.nodeid)
    run = run_case(case, mode, env)
    print(f"{case.name} [{mode}] seed {run.seed}: {getattr(run, 'summary', 'ok')}")


def test_cases_are_well_formed():
    """Names are unique, every case names its tables, and there are enough of them."""
    names = [c.name for c in CASES]
    dupes = {n for n in names if names.count(n) > 1}
    assert not dupes, f"case names must be unique: {sorted(dupes)}"
    assert len(CASES) >= 60, f"only {len(CASES)} cases"
    for c in CASES:
        assert c.tables, f"{c.name}: no source tables"
        assert c.query.strip().upper().startswith("SELECT"), f"{c.name}: not a SELECT"
        assert any(c.kill_ci for c in CASES), "no case runs in CI's kill round"
        assert any(c.rescale_ci for c in CASES), "no case runs in CI's rescale round"


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_case_is_valid_postgresql(case, sql_pg, sql_db, tmp_path):
    """Each case's workload applies and its queries run in PostgreSQL with comparable types.

    Needs no daemon: it keeps the cases honest while tidemark cannot run them yet.
    """
    from sql_harness import CaseRun

    run = CaseRun(case, "p1", CaseEnv(pg=sql_pg, db=sql_db, dir=tmp_path, bin=None,
                                      base_seed=BASE_SEED))
    result = run.oracle_only()
    # With the fixed seed every case must compare something; another seed may
    # leave, say, a HAVING with no group, which is no fault of the case.
    if case.expect_failure is None and BASE_SEED == DEFAULT_SEED:
        assert sum(result.rows.values()) > 0, \
            f"{case.name}: PostgreSQL returns no rows, so the case compares nothing"
