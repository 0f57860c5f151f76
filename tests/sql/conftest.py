"""Fixtures for the SQL correctness suite: one PostgreSQL 15 per session, one database per test.

The server is this directory's own (tests/integration and tests/crash have
theirs): starting one costs seconds, a database costs milliseconds, and a
database per test keeps every test's tables, views and replication slots
apart.  Slots are dropped with the database.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
sys.path.insert(0, str(HERE))

from deadline import deadline_fixture, register_marker  # noqa: E402,F401 (autouse)
from pgserver import PgServer  # noqa: E402
from tidemark import daemon_under_test  # noqa: E402


def pytest_configure(config):
    register_marker(config)


@pytest.fixture(scope="session")
def sql_pg():
    """The suite's PostgreSQL 15.  fsync is off: PostgreSQL is never what crashes here."""
    server = PgServer(extra_conf={"max_replication_slots": "40", "max_wal_senders": "40"},
                      fsync_off=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sql_bin():
    """The daemon under test, from $TIDEMARK_BIN (default build/tidemark)."""
    return daemon_under_test()


_db_counter = itertools.count(1)


@pytest.fixture
def sql_db(sql_pg, request):
    """A fresh database; dropped afterwards with its replication slots."""
    name = f"sq{next(_db_counter)}"
    comment = request.node.nodeid.replace("'", "''")
    sql_pg.psql(f'CREATE DATABASE "{name}"; COMMENT ON DATABASE "{name}" IS \'{comment}\';')
    yield name
    sql_pg.drop_database(name)
