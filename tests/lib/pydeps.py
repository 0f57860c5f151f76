"""The tests' PyPI packages (tests/requirements.txt), installed by scripts/setup.sh.

They live in a directory of their own (DIR), outside the system's site-packages: Debian's python
refuses pip installs there, and the system's pytest, psycopg2 and attrs must stay what they are.
Tests therefore never import these packages; they run them in a process of their own with
PYTHONPATH=DIR (run()), where the newer versions they need come first.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Sequence

DIR = Path(os.environ.get("TIDEMARK_PYDEPS", Path.home() / ".cache" / "tidemark" / "pydeps"))


def run(module: str, args: Sequence[str], timeout: float = 300,
        **kw) -> subprocess.CompletedProcess:
    """`python3 -m module args…` with the PyPI packages; fails clearly when they are missing."""
    if not (DIR / ".stamp").exists():
        raise AssertionError(f"the tests' PyPI packages are not installed in {DIR}: "
                             "run scripts/setup.sh (tests/requirements.txt)")
    env = dict(os.environ, PYTHONPATH=str(DIR))
    return subprocess.run(["/usr/bin/python3", "-m", module, *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout, **kw)
