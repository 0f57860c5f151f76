"""Fixtures for the crash tests: a PostgreSQL 15 of their own, the daemon, a deadline.

The server is separate from tests/integration's: the crash run creates and
drops its own database, and its settings (fsync off: PostgreSQL is never the
process that crashes here) are its own.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
sys.path.insert(0, str(HERE))

from deadline import deadline_fixture, register_marker  # noqa: E402,F401 (autouse)
from mariadbserver import MariaDbServer  # noqa: E402
from pgserver import PgServer  # noqa: E402
from tidemark import daemon_under_test  # noqa: E402



def pytest_configure(config):
    register_marker(config)


@pytest.fixture(scope="session")
def crash_pg():
    """A PostgreSQL 15 for the crash tests; transactions over 64kB are streamed."""
    server = PgServer(extra_conf={"logical_decoding_work_mem": "64kB"}, fsync_off=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def crash_my():
    """A MariaDB 10.11 for the mysql-cdc crash test (mysql_harness.py)."""
    server = MariaDbServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def crash_bin():
    """The daemon under test, from $TIDEMARK_BIN (default build/tidemark)."""
    return daemon_under_test()
