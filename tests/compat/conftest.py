"""Fixtures for the Debezium comparison (tests/compat): a PostgreSQL 15
server, a fresh database per test, the daemon under test, and the Debezium
runner built from this folder's pom.xml.

scripts/test.sh runs this folder with the other pytest folders;
scripts/compat.sh runs it alone.  See docs/compat.md.
"""

from __future__ import annotations

import itertools
import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[0] / "lib"))

from deadline import deadline_fixture, register_marker  # noqa: E402,F401 (autouse)
from pgserver import PgServer  # noqa: E402
from tidemark import daemon_under_test  # noqa: E402

RUNNER_MAIN = "io.tidemark.compat.DebeziumRunner"


def pytest_configure(config):
    register_marker(config)


@pytest.fixture(scope="session")
def pg():
    server = PgServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


_db_counter = itertools.count(1)


@pytest.fixture
def db(pg):
    name = f"compat{next(_db_counter)}"
    pg.psql(f'CREATE DATABASE "{name}";')
    yield name
    pg.drop_database(name)


@pytest.fixture(scope="session")
def tidemark_bin():
    return daemon_under_test()


def build_runner() -> list:
    """Builds tests/compat (tests/lib/maven.py) and returns the java command line
    that starts DebeziumRunner."""
    from maven import MavenMissing, module_classpath
    try:
        cp = module_classpath(HERE, "debezium-compat-1.jar")
    except MavenMissing as e:
        pytest.skip(str(e))
    java = shutil.which("java") or "java"
    return [java, "-Xmx512m", "-cp", cp, RUNNER_MAIN]


@pytest.fixture(scope="session")
def debezium_cmd():
    return build_runner()
