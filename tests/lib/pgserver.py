#!/usr/bin/env python3
"""Throwaway PostgreSQL 15 servers for tests, the demo and benchmarks.

Each PgServer owns one temporary directory under /tmp that holds the data
directory, the server log and the Unix socket.  The server listens on
127.0.0.1 on a free port, trusts local connections, and is configured for
logical replication.  Nothing outside that directory is touched, so several
servers can run side by side and a crashed test leaves nothing behind but a
directory in /tmp.

PostgreSQL refuses to run as root.  When this process is root, every server
command (initdb, pg_ctl) runs as the `postgres` user through
`runuser -u postgres --`, and the temporary directory is handed to that user.
Client commands (psql, pg_recvlogical) need no such care and run as we are.

Use from Python:

    with PgServer(extra_conf={"logical_decoding_work_mem": "64kB"}) as pg:
        pg.psql("CREATE DATABASE shop")
        conn = pg.connect("shop")

Use from a shell (the server keeps running until `stop`):

    eval "$(python3 tests/lib/pgserver.py start)"   # sets PGHOST PGPORT PGSERVER_DIR
    python3 tests/lib/pgserver.py stop "$PGSERVER_DIR"
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import time
import sys
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

try:
    from serverproc import HOST, ServerProcess, free_port
except ImportError:  # imported as tests.lib.pgserver
    from .serverproc import HOST, ServerProcess, free_port

PG_BINDIR = Path(os.environ.get("TIDEMARK_PG_BINDIR", "/usr/lib/postgresql/15/bin"))
SERVER_USER = "postgres"

# The settings every server gets.  Callers may override any of them through
# extra_conf, e.g. wal_level=replica to test how tidemark reports it.
BASE_CONF = {
    "listen_addresses": HOST,
    "wal_level": "logical",
    "max_wal_senders": "20",
    "max_replication_slots": "20",
    "max_prepared_transactions": "10",
    "logging_collector": "off",
    # The log is the first thing to read when a test fails, so make it say
    # who connected and which statement failed.
    "log_connections": "on",
    "log_min_error_statement": "error",
    "log_line_prefix": "%m [%p] %q%u@%d ",
}

# Appended after the caller's hba_lines.  pg_hba.conf is matched top-down, so
# a caller's password rule for one role wins over these trust rules.
TRUST_HBA = [
    "local all all trust",
    "local replication all trust",
    f"host all all {HOST}/32 trust",
    f"host replication all {HOST}/32 trust",
]

STATE_FILE = "pgserver.json"


class PgError(RuntimeError):
    """A server or client command failed; the message carries its output."""


def _conf_value(value) -> str:
    """Quotes a value for postgresql.conf; PostgreSQL accepts quotes on every type."""
    if isinstance(value, bool):
        value = "on" if value else "off"
    return "'" + str(value).replace("'", "''") + "'"


def _client_env() -> dict:
    # Stray PG* variables from the caller's shell (PGDATABASE, PGSERVICE,
    # PGSSLMODE...) would silently change what our clients connect to.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGCONNECT_TIMEOUT"] = "10"
    env.setdefault("LC_ALL", "C.UTF-8")
    return env


class PgServer(ServerProcess):
    """One throwaway PostgreSQL 15 server; see the module docstring."""

    dir_prefix = "tidemark-pg-"
    server_user = SERVER_USER

    def __init__(
        self,
        extra_conf: Optional[Mapping[str, object]] = None,
        hba_lines: Optional[Sequence[str]] = None,
        fsync_off: bool = False,
        bindir: Path = PG_BINDIR,
    ):
        super().__init__()
        self.extra_conf = dict(extra_conf or {})
        self.hba_lines = list(hba_lines or [])
        self.fsync_off = fsync_off
        self.bindir = Path(bindir)

    # -- paths -------------------------------------------------------------

    @property
    def datadir(self) -> Path:
        return self.basedir / "data"

    @property
    def logfile(self) -> Path:
        return self.basedir / "postgresql.log"

    @property
    def socket_dir(self) -> Path:
        return self.basedir

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> "PgServer":
        """Creates the cluster (once) and starts the server; returns self."""
        if self.running:
            return self
        if self.basedir is None:
            self.make_basedir()
            self._initdb()
        last_error = None
        # A port picked by _free_port() can be taken before the server binds
        # it; a few fresh ports make that race harmless.
        for _ in range(3):
            self.port = free_port()
            self._write_conf()
            try:
                self._pg_ctl_start()
                break
            except PgError as e:
                last_error = e
                if "could not bind" not in self.log_tail():
                    raise
        else:
            raise last_error
        self.running = True
        self._save_state()
        return self

    def _stop_process(self) -> None:
        self._pg_ctl_stop()

    def _process_gone(self) -> bool:
        return not (self.datadir / "postmaster.pid").exists()

    def restart(self, extra_conf: Optional[Mapping[str, object]] = None) -> None:
        """Restarts with extra_conf merged into the current settings.

        The port stays the same so DSNs handed out before remain valid.
        """
        if extra_conf:
            self.extra_conf.update(extra_conf)
        if self.running:
            self._pg_ctl_stop()
        self._write_conf()
        self._pg_ctl_start()
        self.running = True
        self._save_state()

    # -- clients -----------------------------------------------------------

    def dsn(self, dbname: str = "postgres", user: str = "postgres", **kw) -> str:
        """A libpq key=value DSN; extra keywords (password=..., ...) are appended."""
        parts = {"host": self.host, "port": self.port, "dbname": dbname, "user": user}
        parts.update(kw)
        return " ".join(f"{k}={_dsn_value(v)}" for k, v in parts.items())

    def psql(self, sql: str, db: str = "postgres", user: str = "postgres",
             check: bool = True, timeout: float = 300) -> str:
        """Runs SQL as a psql script and returns its unaligned, tuples-only output.

        The SQL goes through stdin rather than -c, so statements run one by one
        and CREATE DATABASE or VACUUM work next to other statements.
        """
        cmd = [str(self.bindir / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-At",
               "-h", self.host, "-p", str(self.port), "-U", user, "-d", db, "-f", "-"]
        proc = subprocess.run(cmd, input=sql, capture_output=True, text=True,
                              env=_client_env(), timeout=timeout)
        if check and proc.returncode != 0:
            raise PgError(f"psql failed (exit {proc.returncode}) on database {db!r} "
                          f"as {user!r}:\n{sql}\n--- stderr ---\n{proc.stderr}")
        return proc.stdout.rstrip("\n")

    def connect(self, db: str = "postgres", user: str = "postgres", **kw):
        """A psycopg2 connection in autocommit mode."""
        import psycopg2  # Imported here so the CLI works without psycopg2.

        conn = psycopg2.connect(host=self.host, port=self.port, dbname=db, user=user,
                                connect_timeout=10, **kw)
        conn.autocommit = True
        return conn

    def drop_database(self, name: str, timeout: float = 30) -> None:
        """Drops database `name` and its replication slots.

        A database with slots cannot be dropped, nor can an active slot, so the
        walsenders end first, then the slots go (bounded by `timeout`), then the
        database.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.psql(f"""
                SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
                 WHERE database = '{name}' AND active_pid IS NOT NULL;
                SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                 WHERE database = '{name}' AND NOT active;""", check=False)
            if self.psql(f"SELECT count(*) FROM pg_replication_slots "
                         f"WHERE database = '{name}'") == "0":
                break
            if time.monotonic() >= deadline:
                raise AssertionError(f"the replication slots of database {name} were not dropped "
                                     f"within {timeout:.0f} s")
            time.sleep(0.1)
        self.psql(f'DROP DATABASE "{name}" WITH (FORCE);')

    # -- internals ---------------------------------------------------------

    def _server_cmd(self, args: Sequence[str]) -> list:
        cmd = [str(a) for a in args]
        if self._as_root:
            return ["runuser", "-u", SERVER_USER, "--"] + cmd
        return cmd

    def _run_server_cmd(self, args: Sequence[str], what: str, timeout: float = 120) -> None:
        cmd = self._server_cmd(args)
        # Run from the base directory: the postgres user may not be able to
        # read the caller's working directory, and initdb complains if so.
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=self.basedir,
                              env=_client_env(), timeout=timeout)
        if proc.returncode != 0:
            raise PgError(f"{what} failed (exit {proc.returncode}): {shlex.join(cmd)}\n"
                          f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}\n"
                          f"--- server log (tail) ---\n{self.log_tail()}")

    def _initdb(self) -> None:
        # --no-sync: the cluster is thrown away, so flushing it at creation
        # only costs time.  It does not affect fsync while the server runs.
        self._run_server_cmd([self.bindir / "initdb", "-D", self.datadir, "-U", "postgres",
                              "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
                             "initdb")
        with open(self.datadir / "postgresql.conf", "a") as f:
            f.write("\n# Managed by tests/lib/pgserver.py; rewritten on every start.\n"
                    "include 'tidemark.conf'\n")

    def _write_conf(self) -> None:
        conf = dict(BASE_CONF)
        conf["port"] = self.port
        conf["unix_socket_directories"] = str(self.socket_dir)
        conf["fsync"] = "off" if self.fsync_off else "on"
        conf.update(self.extra_conf)
        text = "".join(f"{k} = {_conf_value(v)}\n" for k, v in conf.items())
        hba = "".join(line + "\n" for line in list(self.hba_lines) + TRUST_HBA)
        self._write_server_file(self.datadir / "tidemark.conf", text)
        self._write_server_file(self.datadir / "pg_hba.conf", hba)

    def _write_server_file(self, path: Path, text: str) -> None:
        path.write_text(text)
        self.chown_to_server(path)

    def _pg_ctl_start(self) -> None:
        self._run_server_cmd([self.bindir / "pg_ctl", "-D", self.datadir, "-l", self.logfile,
                              "-w", "-t", "60", "start"], "pg_ctl start")

    def _pg_ctl_stop(self) -> None:
        self._run_server_cmd([self.bindir / "pg_ctl", "-D", self.datadir, "-m", "fast",
                              "-w", "-t", "60", "stop"], "pg_ctl stop")
        self.running = False

    def _save_state(self) -> None:
        # Lets `pgserver.py stop DIR` find the server a separate process started.
        state = {"port": self.port, "extra_conf": self.extra_conf,
                 "hba_lines": self.hba_lines, "fsync_off": self.fsync_off,
                 "bindir": str(self.bindir)}
        (self.basedir / STATE_FILE).write_text(json.dumps(state))

    @classmethod
    def attach(cls, basedir: Path) -> "PgServer":
        """Rebuilds a PgServer for a directory that `start` left running."""
        state = json.loads((Path(basedir) / STATE_FILE).read_text())
        pg = cls(extra_conf=state["extra_conf"], hba_lines=state["hba_lines"],
                 fsync_off=state["fsync_off"], bindir=Path(state["bindir"]))
        pg.basedir = Path(basedir)
        pg.port = state["port"]
        pg.running = True
        return pg


def lsn_to_int(lsn: str) -> int:
    """'16/B374D848' -> an integer that orders as the LSN does."""
    hi, lo = lsn.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def _dsn_value(v) -> str:
    s = str(v)
    if s and not any(c in s for c in " '\\"):
        return s
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _parse_conf_args(items: Iterable[str]) -> dict:
    conf = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--conf expects KEY=VALUE, got {item!r}")
        conf[key.strip()] = value.strip()
    return conf


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description="Start or stop a throwaway PostgreSQL 15.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_start = sub.add_parser("start", help="start a server and print shell variables for it")
    p_start.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                         help="extra postgresql.conf setting (repeatable)")
    p_start.add_argument("--fsync-off", action="store_true",
                         help="run with fsync=off (faster, for benchmarks of other things)")
    p_stop = sub.add_parser("stop", help="stop a server started by `start` and delete it")
    p_stop.add_argument("dir", help="the PGSERVER_DIR printed by `start`")
    args = parser.parse_args(argv)

    if args.command == "start":
        pg = PgServer(extra_conf=_parse_conf_args(args.conf), fsync_off=args.fsync_off)
        pg.start()
        pg.detach()
        print(f"PGHOST={shlex.quote(pg.host)}")
        print(f"PGPORT={pg.port}")
        print(f"PGSERVER_DIR={shlex.quote(str(pg.basedir))}")
        print(f"PGSERVER_LOG={shlex.quote(str(pg.logfile))}")
        return 0

    basedir = Path(args.dir)
    if not (basedir / STATE_FILE).exists():
        print(f"pgserver: {basedir} holds no server started by this tool", file=sys.stderr)
        return 1
    pg = PgServer.attach(basedir)
    pg.detach()
    pg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
