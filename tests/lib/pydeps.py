"""The tests' PyPI packages (tests/requirements.txt), installed by scripts/setup.sh.

They live in their own directory, outside the system's site-packages (Debian's python refuses pip
installs there, and the system's pytest and psycopg2 must stay what they are).  Tests run their
tools in a process of their own with PYTHONPATH=DIR (a package from PyPI may need newer versions
of what pytest already loaded from Debian); `require()` imports one in-process where that is safe,
and fails with a pointer to setup.sh when it is missing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DIR = Path(os.environ.get("TIDEMARK_PYDEPS", Path.home() / ".cache" / "tidemark" / "pydeps"))


def use() -> Path:
    if str(DIR) not in sys.path:
        sys.path.insert(0, str(DIR))
    return DIR


def require(module: str):
    """Imports `module` from the pydeps directory, or fails saying how to install it."""
    use()
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise AssertionError(f"the test needs the Python package of module '{module}' "
                             f"(tests/requirements.txt) in {DIR}: run scripts/setup.sh ({e})") from None
