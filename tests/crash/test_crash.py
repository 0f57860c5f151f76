"""kill -9 tidemark many times under a random workload; nothing lost, nothing twice.

The CI-sized run of harness.py (see README.md): TIDEMARK_CRASH_KILLS kills
(default 24), with a fixed seed (the workload and the kill schedule) unless
TIDEMARK_CRASH_SEED picks another; TIDEMARK_CRASH_SEED=random draws one.  The
seed is printed first and repeated in the failure message, with the command
that reruns it.  How kills interleave with the daemon's threads still varies
from run to run, which is the point of a crash test.
"""

import os
import random

import pytest

from harness import CrashRun

CI_KILLS = 24
CI_SEED = 20261122


@pytest.mark.deadline(330)
def test_kill9_at_random_points_loses_and_repeats_nothing(crash_pg, crash_bin, tmp_path):
    wanted = os.environ.get("TIDEMARK_CRASH_SEED") or str(CI_SEED)
    seed = random.randrange(1, 1 << 31) if wanted == "random" else int(wanted)
    kills = int(os.environ.get("TIDEMARK_CRASH_KILLS") or CI_KILLS)
    rerun = f"python3 tests/crash/harness.py --seed {seed} --kills {kills}"
    print(f"crash test seed {seed}; rerun with: {rerun}", flush=True)
    run = CrashRun(crash_pg, tmp_path, seed, kills, binary=crash_bin, deadline=290,
                   out=lambda line: print(line, flush=True))
    try:
        report = run.run()
    except AssertionError as e:
        raise AssertionError(f"seed {seed} ({rerun}); files in {tmp_path}:\n{e}") from None
    print(report.text(), flush=True)
    assert report.ok, (f"seed {seed} ({rerun}); files in {tmp_path}\n{report.text()}\n"
                       f"{run.tm.log_tail(3000)}")
    assert run.kills == kills
