"""Fixtures for the Debezium comparison (tests/compat): a PostgreSQL 15
server, a fresh database per test, the daemon under test, and the Debezium
runner built from this folder's pom.xml.

This folder is not part of scripts/test.sh's run (which names its test
folders); scripts/compat.sh runs it.  See docs/compat.md.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
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
    """Builds tests/compat (mvn, offline first, then online) and returns the
    java command line that starts DebeziumRunner."""
    jar = HERE / "target" / "debezium-compat-1.jar"
    cpf = HERE / "target" / "classpath.txt"
    sources = [HERE / "pom.xml"] + list((HERE / "src").rglob("*"))
    newest = max(s.stat().st_mtime for s in sources)
    if not (jar.exists() and cpf.exists() and jar.stat().st_mtime >= newest
            and cpf.stat().st_mtime >= newest):
        mvn = shutil.which("mvn")
        if mvn is None:
            pytest.skip("no mvn to build tests/compat with (scripts/setup.sh installs it)")
        cmd = [mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(HERE / "pom.xml"),
               "package", "dependency:build-classpath", "-Dmdep.includeScope=runtime",
               f"-Dmdep.outputFile={cpf}"]
        out = ""
        for offline in (True, False):
            r = subprocess.run(cmd[:1] + (["-o"] if offline else []) + cmd[1:],
                               capture_output=True, text=True, timeout=1800)
            out = r.stdout + r.stderr
            if r.returncode == 0:
                break
        else:
            raise RuntimeError(f"mvn could not build tests/compat:\n{out[-4000:]}")
    java = shutil.which("java") or "java"
    return [java, "-Xmx512m", "-cp", f"{jar}{os.pathsep}{cpf.read_text().strip()}", RUNNER_MAIN]


@pytest.fixture(scope="session")
def debezium_cmd():
    return build_runner()
