"""kill -9 tidemark's mysql-cdc job many times under a random workload; nothing lost, nothing twice.

The CI-sized run of mysql_harness.py (see README.md): TIDEMARK_MYSQL_CRASH_KILLS
kills (default 24), with a fixed seed (the workload and the kill schedule)
unless TIDEMARK_MYSQL_CRASH_SEED picks another; TIDEMARK_MYSQL_CRASH_SEED=random
draws one.  The seed is printed first and repeated in the failure message, with
the command that reruns it.
"""

import os
import random

import pytest

from mysql_harness import MyCrashRun

CI_KILLS = 24
CI_SEED = 20261208


@pytest.mark.deadline(330)
def test_mysql_kill9_at_random_points_loses_and_repeats_nothing(crash_my, crash_bin, tmp_path):
    wanted = os.environ.get("TIDEMARK_MYSQL_CRASH_SEED") or str(CI_SEED)
    seed = random.randrange(1, 1 << 31) if wanted == "random" else int(wanted)
    kills = int(os.environ.get("TIDEMARK_MYSQL_CRASH_KILLS") or CI_KILLS)
    rerun = f"python3 tests/crash/mysql_harness.py --seed {seed} --kills {kills}"
    print(f"mysql crash test seed {seed}; rerun with: {rerun}", flush=True)
    run = MyCrashRun(crash_my, tmp_path, seed, kills, binary=crash_bin, deadline=290,
                     out=lambda line: print(line, flush=True))
    try:
        report = run.run()
    except AssertionError as e:
        raise AssertionError(f"seed {seed} ({rerun}); files in {tmp_path}:\n{e}") from None
    print(report.text(), flush=True)
    assert report.ok, (f"seed {seed} ({rerun}); files in {tmp_path}\n{report.text()}\n"
                       f"{run.tm.log_tail(3000)}")
    assert run.kills == kills
