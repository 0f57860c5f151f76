"""Fixtures for the integration tests: a real PostgreSQL 15 and the daemon.

One server (`pg`) serves the whole session, because starting one costs
seconds.  Tests stay independent anyway: each gets its own database (`db`),
and its own slot and publication names derived from that database's name,
so nothing one test leaves behind can be seen by another.  The `cdc` fixture
bundles what almost every test needs: that database, a job directory, a
file sink directory, and cleanup of any daemon the test started.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from deadline import deadline_fixture, register_marker  # noqa: E402,F401 (autouse)
from pgserver import PgServer, lsn_to_int  # noqa: E402
from tidemark import Tidemark, cdc_job, daemon_under_test, wait_until  # noqa: E402

# A role that must log in with a password, so that tests can check what
# tidemark says about a wrong one.  Every other role is trusted.
PW_ROLE = "pwuser"
PW_ROLE_PASSWORD = "right-password"



def pytest_configure(config):
    register_marker(config)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Teardown code reads these to decide whether to print the daemon's log.
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def _failed(request) -> bool:
    rep = getattr(request.node, "rep_call", None)
    return rep is None or rep.failed


# -- sanitizer reports ----------------------------------------------------------
# A daemon built with ASan and UBSan (scripts/test.sh, stage 4b) reports memory
# errors, leaks and undefined behaviour on stderr, or in files when
# ASAN_OPTIONS/UBSAN_OPTIONS set log_path.  Many tests would pass anyway: a
# report at exit comes after the test read what it needed, a daemon killed
# with SIGKILL never exits by itself, and UBSan carries on unless told to
# halt.  So every test ends by looking for reports, and fails with them.
SANITIZER_REPORTS_ENV = "TIDEMARK_SANITIZER_REPORTS"
# The first line of every report: ASan ("==12==ERROR: AddressSanitizer: ..."),
# LeakSanitizer, UBSan ("src/x.c:10:5: runtime error: ...") and TSan.  The
# UBSan form is anchored to its file:line:column so that a daemon message that
# merely contains the words cannot match.
SANITIZER_REPORT = re.compile(
    r"ERROR: (?:AddressSanitizer|LeakSanitizer)"
    r"|^\S+:\d+:\d+: runtime error: "
    r"|WARNING: ThreadSanitizer", re.MULTILINE)


def _report_files(directory: str) -> set:
    try:
        return set(os.listdir(directory))
    except FileNotFoundError:
        return set()


def _sanitizer_reports(request, report_dir, before) -> list:
    """(where, text) of every report this test's processes wrote."""
    found = []
    if report_dir:
        for name in sorted(_report_files(report_dir) - before):
            text = Path(report_dir, name).read_text(errors="replace")
            if text.strip():
                found.append((str(Path(report_dir, name)), text))
    # The daemons' stderr.log files (tests/lib/tidemark.py) live under the
    # test's tmp_path, which every daemon-running fixture uses.
    tmp_path = request.node.funcargs.get("tmp_path") if hasattr(request.node, "funcargs") else None
    if tmp_path is not None:
        for log in sorted(Path(tmp_path).rglob("*.log")):
            try:
                text = log.read_text(errors="replace")
            except OSError:
                continue
            match = SANITIZER_REPORT.search(text)
            if match:
                start = text.rfind("\n", 0, match.start()) + 1
                found.append((str(log), text[start:start + 8000]))
    return found


@pytest.fixture(autouse=True)
def sanitizer_report_check(request):
    """Fails the test if a sanitizer reported anything while it ran.

    Autouse fixtures are set up first and torn down last, so this looks
    after the cdc/kcase fixtures have stopped their daemons.
    """
    report_dir = os.environ.get(SANITIZER_REPORTS_ENV) or None
    before = _report_files(report_dir) if report_dir else set()
    yield
    found = _sanitizer_reports(request, report_dir, before)
    if found:
        text = "\n".join(f"=== {where} ===\n{body}" for where, body in found)
        pytest.fail(f"a sanitizer reported {len(found)} problem(s) while this test ran:\n{text}",
                    pytrace=False)


@pytest.fixture(scope="session")
def pg():
    """The session's PostgreSQL 15 server.

    logical_decoding_work_mem is at its minimum so that any transaction past
    64kB is streamed to tidemark before it commits (protocol v2 streaming),
    which is the path the streaming tests need to reach.
    """
    server = PgServer(
        extra_conf={"logical_decoding_work_mem": "64kB"},
        hba_lines=[f"host all {PW_ROLE} 127.0.0.1/32 scram-sha-256"],
    )
    server.start()
    try:
        server.psql(f"CREATE ROLE {PW_ROLE} LOGIN REPLICATION PASSWORD '{PW_ROLE_PASSWORD}';")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pw_role(pg):
    """(name, password) of the session server's role that logs in with a password."""
    return PW_ROLE, PW_ROLE_PASSWORD


_db_counter = itertools.count(1)


@pytest.fixture
def db(pg, request):
    """A fresh database for this test; dropped, with its slots, afterwards."""
    # The name deliberately leaves out the test's name: slot and publication
    # names derive from it and turn up in tidemark's messages, where a test
    # name such as test_wal_level_... would satisfy the error tests' keyword
    # checks by accident.  The database comment (\l+ in psql) names the test.
    name = f"tm{next(_db_counter)}"
    pg.psql(f'CREATE DATABASE "{name}"; COMMENT ON DATABASE "{name}" IS '
            f"'{request.node.nodeid.replace(chr(39), chr(39) * 2)}';")
    yield name
    pg.drop_database(name)


@pytest.fixture(scope="session")
def tidemark_bin():
    """The daemon under test, from $TIDEMARK_BIN (default build/tidemark)."""
    return daemon_under_test()


class CdcCase:
    """What one test needs to run a PostgreSQL CDC job against its database."""

    def __init__(self, pg: PgServer, db: str, tmp_path: Path, tidemark_bin: Path):
        self.pg = pg
        self.db = db
        self.dir = tmp_path
        self.bin = tidemark_bin
        self.out_dir = tmp_path / "out"
        self.out_dir.mkdir()
        self.slot = f"{db}_slot"
        self.publication = f"{db}_pub"
        self.source_name = "shop"
        self.daemons: list = []

    # -- database ------------------------------------------------------------

    def dsn(self, **kw) -> str:
        return self.pg.dsn(self.db, **kw)

    def sql(self, text: str) -> str:
        return self.pg.psql(text, db=self.db)

    def connect(self, user: str = "postgres"):
        return self.pg.connect(self.db, user)

    def slot_row(self):
        """(active, confirmed_flush_lsn) of this test's slot, or None if it does not exist."""
        out = self.pg.psql(f"SELECT active, confirmed_flush_lsn FROM pg_replication_slots "
                           f"WHERE slot_name = '{self.slot}'")
        if not out:
            return None
        active, lsn = out.split("|")
        return active == "t", (lsn or None)

    def confirmed_flush_lsn(self) -> int:
        row = self.slot_row()
        assert row is not None and row[1] is not None, f"slot {self.slot} has no confirmed LSN"
        return lsn_to_int(row[1])

    def current_lsn(self) -> int:
        return lsn_to_int(self.pg.psql("SELECT pg_current_wal_lsn()"))

    def wait_slot_ready(self, proc=None, timeout: float = 60) -> None:
        """Waits until the slot has reached its consistent point.

        From then on every committed change is decoded for the slot, so a test
        may make changes it expects to see streamed.  (A slot being created
        is already listed, but without a confirmed_flush_lsn.)
        """
        def ready():
            row = self.slot_row()
            return row is not None and row[1] is not None

        wait_until(ready, timeout, f"replication slot {self.slot} to be created", proc)

    def wait_confirmed_past(self, lsn: int, timeout: float, proc=None) -> int:
        """Waits until the slot's confirmed_flush_lsn is at or past lsn; returns it."""
        def past():
            row = self.slot_row()
            if row is None or row[1] is None:
                return None
            value = lsn_to_int(row[1])
            return value if value >= lsn else None

        return wait_until(past, timeout, f"slot {self.slot} to confirm LSN {lsn:X}", proc)

    # -- jobs -----------------------------------------------------------------

    def source(self, tables: str = "public.orders", snapshot: str = "never", **extra) -> dict:
        opts = {"connector": "postgres-cdc", "dsn": self.dsn(), "tables": tables,
                "slot": self.slot, "publication": self.publication, "snapshot": snapshot}
        opts.update(extra)
        return opts

    def file_sink(self, **extra) -> dict:
        opts = {"connector": "file", "path": str(self.out_dir), "format": "debezium-json"}
        opts.update(extra)
        return opts

    def job(self, tables: str = "public.orders", snapshot: str = "never",
            source: dict = None, sink: dict = None) -> str:
        """A job from this database to the file sink; source/sink add or override options."""
        return cdc_job(self.source(tables, snapshot, **(source or {})),
                       self.file_sink(**(sink or {})), source_name=self.source_name)

    def tidemark(self, job_sql: str, name: str = "tm") -> Tidemark:
        daemon = Tidemark(job_sql, self.dir / name, bin=self.bin)
        self.daemons.append(daemon)
        return daemon

    def start(self, job_sql: str = None, **job_kwargs) -> Tidemark:
        """Starts a daemon on job_sql, or on self.job(**job_kwargs)."""
        return self.tidemark(job_sql or self.job(**job_kwargs)).start()

    def topic_path(self, table: str, schema: str = "public", source_name: str = None) -> Path:
        """The file sink's file for one table: <path>/<source>.<schema>.<table>.jsonl."""
        return self.out_dir / f"{source_name or self.source_name}.{schema}.{table}.jsonl"

    def cleanup(self, failed: bool) -> None:
        for daemon in self.daemons:
            # Under sanitizers a daemon still running is stopped gracefully
            # first: LeakSanitizer checks at exit, which SIGKILL skips.
            if os.environ.get(SANITIZER_REPORTS_ENV) and daemon.running():
                try:
                    daemon.terminate(timeout=20)
                except AssertionError:
                    pass  # It did not stop, and terminate() killed it.
            daemon.kill9()
            if failed:
                print(f"\n=== {daemon.dir} ===\n{daemon.log_tail()}")
        if failed:
            print(f"\n=== PostgreSQL log (tail) ===\n{self.pg.log_tail(4000)}")


@pytest.fixture
def cdc(pg, db, tmp_path, tidemark_bin, request):
    case = CdcCase(pg, db, tmp_path, tidemark_bin)
    yield case
    # Runs before the db fixture's teardown, so no daemon holds the slot
    # while the database is dropped.
    case.cleanup(_failed(request))


@pytest.fixture
def ascii_cdc(pg, tmp_path, tidemark_bin, request):
    """A CdcCase on a SQL_ASCII database of its own (test_file_sink_robust.py)."""
    name = "tmascii" + str(os.getpid())
    pg.psql(f"CREATE DATABASE {name} WITH ENCODING 'SQL_ASCII' TEMPLATE template0 "
            f"LC_COLLATE 'C' LC_CTYPE 'C';")
    case = CdcCase(pg, name, tmp_path, tidemark_bin)
    yield case
    rep = getattr(request.node, "rep_call", None)
    case.cleanup(rep is None or rep.failed)
    pg.drop_database(name)


@pytest.fixture(scope="session")
def kafka():
    """The session's Apache Kafka broker (KRaft, one node, real transactions).

    Started once, because a JVM takes seconds.  Tests stay independent by
    using topics and transactional ids of their own.  A test that stops or
    kills a broker must start a KafkaServer of its own, not use this one.
    """
    from kafkaserver import STEADY_CONF, KafkaServer, missing_prerequisite

    why = missing_prerequisite()
    if why:
        pytest.skip(why)
    # Never restarted: Kafka's own heartbeats (STEADY_CONF), so a loaded
    # machine cannot get the broker fenced by its controller mid-test.
    server = KafkaServer(extra_conf=STEADY_CONF)
    server.start()
    try:
        yield server
    finally:
        server.stop()
