"""The test harness itself: throwaway PostgreSQL servers and the fixtures.

These need no tidemark binary, so they run (and must pass) even before the
daemon builds; every other integration test stands on them.
"""

import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

from pgserver import PgServer

PGSERVER_PY = Path(__file__).resolve().parents[1] / "lib" / "pgserver.py"


def test_session_server_is_set_up_for_logical_replication(pg):
    assert pg.psql("SHOW wal_level") == "logical"
    assert pg.psql("SHOW max_prepared_transactions") == "10"
    assert pg.psql("SHOW max_replication_slots") == "20"
    assert pg.psql("SHOW logical_decoding_work_mem") == "64kB"
    assert pg.psql("SHOW listen_addresses") == "127.0.0.1"


def test_db_fixture_gives_a_database_of_our_own(pg, db):
    assert pg.psql("SELECT current_database()", db=db) == db
    conn = pg.connect(db)
    try:
        cur = conn.cursor()
        cur.execute("CREATE TABLE t (id int PRIMARY KEY)")
        cur.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (f"{db}_slot",))
    finally:
        conn.close()
    # The slot is left behind on purpose: the db fixture must drop it, or the
    # database could not be dropped.


def test_password_role_needs_its_password(pg, pw_role):
    role, password = pw_role
    conn = pg.connect("postgres", role, password=password)
    conn.close()
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        pg.connect("postgres", role, password="wrong-password")


def test_restart_applies_new_settings_and_stop_cleans_up():
    server = PgServer(fsync_off=True)
    try:
        server.start()
        assert server.psql("SHOW wal_level") == "logical"
        assert server.psql("SHOW fsync") == "off"
        port = server.port
        server.restart({"wal_level": "replica"})
        assert server.port == port
        assert server.psql("SHOW wal_level") == "replica"
        basedir = server.basedir
    finally:
        server.stop()
    assert not basedir.exists()
    server.stop()  # A second stop is harmless.


def test_command_line_start_and_stop():
    started = subprocess.run([sys.executable, str(PGSERVER_PY), "start"], capture_output=True,
                             text=True, timeout=120, check=True)
    values = dict(line.split("=", 1) for line in started.stdout.splitlines())
    basedir = Path(values["PGSERVER_DIR"])
    try:
        server = PgServer.attach(basedir)
        assert int(values["PGPORT"]) == server.port
        assert server.psql("SELECT 1") == "1"
    finally:
        subprocess.run([sys.executable, str(PGSERVER_PY), "stop", str(basedir)],
                       timeout=120, check=True)
    assert not basedir.exists()
