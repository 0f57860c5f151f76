#!/usr/bin/env python3
"""Throwaway MariaDB 10.11 servers for tests, the demo and benchmarks.

Each MariaDbServer owns one temporary directory under /tmp (see serverproc.py
for the life cycle it shares with pgserver.py) holding the data directory, the
binlogs, the error log and the Unix socket.  The server listens on 127.0.0.1
on a free port and is configured as a binlog primary the way the mysql-cdc
source wants it:

    --log-bin --binlog-format=ROW --binlog-row-metadata=FULL --server-id=1

Callers override or add settings with extra_args (e.g. binlog_format=STATEMENT
to test the start checks).  root has no password and may connect over TCP.

Use from Python:

    with MariaDbServer() as my:
        my.sql("CREATE DATABASE shop")
        rows = my.query("SELECT 1")

Use from a shell (the server keeps running until `stop`):

    eval "$(python3 tests/lib/mariadbserver.py start)"  # sets MYSQL_HOST MYSQL_TCP_PORT ...
    python3 tests/lib/mariadbserver.py stop "$MARIADB_DIR"
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Mapping, Optional, Sequence

try:
    from serverproc import ServerProcess, free_port
except ImportError:  # imported as tests.lib.mariadbserver
    from .serverproc import ServerProcess, free_port

MARIADBD = os.environ.get("TIDEMARK_MARIADBD", "/usr/sbin/mariadbd")
STATE_FILE = "mariadbserver.json"

# The settings every server gets; extra_args override them by name.
BASE_ARGS = {
    "log-bin": "binlog",
    "binlog-format": "ROW",
    "binlog-row-metadata": "FULL",
    "binlog-row-image": "FULL",
    "server-id": "1",
    # Small and quick: the data is thrown away.
    "innodb-buffer-pool-size": "64M",
    "innodb-log-file-size": "16M",
    "innodb-flush-log-at-trx-commit": "2",
    "skip-name-resolve": None,
    "character-set-server": "utf8mb4",
    "collation-server": "utf8mb4_general_ci",
    "default-time-zone": "+00:00",
}


class MariaDbError(RuntimeError):
    """A server or client command failed; the message carries its output."""


def _client_env() -> dict:
    # Stray MYSQL_* variables (MYSQL_HOST, MYSQL_PWD...) would change what our
    # clients connect to.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYSQL")}
    env.setdefault("LC_ALL", "C.UTF-8")
    return env


class MariaDbServer(ServerProcess):
    """One throwaway MariaDB server; see the module docstring."""

    dir_prefix = "tidemark-mariadb-"

    def __init__(self, extra_args: Optional[Mapping[str, Optional[str]]] = None,
                 mariadbd: str = MARIADBD):
        super().__init__()
        self.extra_args = dict(extra_args or {})
        self.mariadbd = mariadbd
        self.proc: Optional[subprocess.Popen] = None
        self.pid: Optional[int] = None

    # -- paths -------------------------------------------------------------

    @property
    def datadir(self) -> Path:
        return self.basedir / "data"

    @property
    def logfile(self) -> Path:
        return self.basedir / "mariadb.log"

    @property
    def socket(self) -> Path:
        return self.basedir / "mysqld.sock"

    # -- life cycle --------------------------------------------------------

    def start(self) -> "MariaDbServer":
        """Creates the data directory (once) and starts the server; returns self."""
        if self.running:
            return self
        if self.basedir is None:
            self.make_basedir()
            self._install_db()
        last_error = None
        for _ in range(3):
            if self.port is None or last_error is not None:
                self.port = free_port()
            try:
                self._spawn()
                break
            except MariaDbError as e:
                last_error = e
                if "Address already in use" not in self.log_tail():
                    raise
        else:
            raise last_error
        self._save_state()
        return self

    def restart(self, extra_args: Optional[Mapping[str, Optional[str]]] = None) -> None:
        """Stops and starts the server on the same port with extra_args merged in."""
        if extra_args:
            self.extra_args.update(extra_args)
        if self.running:
            self._stop_process()
        self._spawn()
        self._save_state()

    def kill(self) -> None:
        """Kills the server with SIGKILL (crash tests); start it again with restart()."""
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._wait_exit(30)
        self.running = False

    def _stop_process(self) -> None:
        if self.pid is None:
            self.running = False
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        if not self._wait_exit(60):
            os.kill(self.pid, signal.SIGKILL)
            self._wait_exit(30)
        self.running = False
        self.pid = None

    def _process_gone(self) -> bool:
        return self.pid is None or not _alive(self.pid)

    def _wait_exit(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None:
                if self.proc.poll() is not None:
                    return True
            elif not _alive(self.pid):
                return True
            time.sleep(0.05)
        return False

    # -- clients -----------------------------------------------------------

    def client_args(self, user: str = "root", password: Optional[str] = None,
                    db: Optional[str] = None) -> List[str]:
        args = ["mariadb", "--no-defaults", "--protocol=TCP", "-h", self.host,
                "-P", str(self.port), "-u", user, "--batch", "--skip-column-names",
                "--raw", "--default-character-set=utf8mb4"]
        if password is not None:
            args.append(f"--password={password}")
        if db is not None:
            args.append(db)
        return args

    def sql(self, sql: str, db: Optional[str] = None, user: str = "root",
            password: Optional[str] = None, check: bool = True, timeout: float = 300) -> str:
        """Runs an SQL script through the mariadb client; returns its tab-separated output."""
        proc = subprocess.run(self.client_args(user, password, db), input=sql,
                              capture_output=True, text=True, env=_client_env(),
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise MariaDbError(f"mariadb failed (exit {proc.returncode}) as {user!r}:\n{sql}\n"
                               f"--- stderr ---\n{proc.stderr}")
        return proc.stdout.rstrip("\n")

    def query(self, sql: str, db: Optional[str] = None, **kw) -> List[List[Optional[str]]]:
        """Rows of one SELECT, each a list of strings (None for SQL NULL).

        The client's --raw batch mode writes NULL as the text NULL, so a string
        'NULL' cannot be told from it: tests that need that use HEX() or a CASE.
        """
        out = self.sql(sql, db=db, **kw)
        if out == "":
            return []
        return [[None if v == "NULL" else v for v in line.split("\t")]
                for line in out.split("\n")]

    def binlog_position(self) -> tuple:
        """(file, position, gtid_binlog_pos) of the server now."""
        rows = self.query("SHOW MASTER STATUS; SELECT @@gtid_binlog_pos;")
        return rows[0][0], int(rows[0][1]), (rows[1][0] if len(rows) > 1 else "")

    # -- internals ---------------------------------------------------------

    def _args(self) -> List[str]:
        conf = dict(BASE_ARGS)
        conf.update(self.extra_args)
        args = [self.mariadbd, "--no-defaults", f"--datadir={self.datadir}",
                f"--socket={self.socket}", f"--port={self.port}",
                f"--bind-address={self.host}", f"--pid-file={self.basedir / 'mysqld.pid'}",
                f"--log-error={self.logfile}", "--user=root"]
        for k, v in conf.items():
            if v is None:
                args.append(f"--{k}")
            elif v is not False:
                args.append(f"--{k}={v}")
        return args

    def _install_db(self) -> None:
        cmd = ["mariadb-install-db", "--no-defaults", f"--datadir={self.datadir}",
               "--user=root", "--auth-root-authentication-method=normal",
               "--skip-test-db", "--skip-name-resolve"]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=self.basedir,
                              env=_client_env(), timeout=300)
        if proc.returncode != 0:
            raise MariaDbError(f"mariadb-install-db failed (exit {proc.returncode}): "
                               f"{shlex.join(cmd)}\n--- stdout ---\n{proc.stdout}\n"
                               f"--- stderr ---\n{proc.stderr}")

    def _spawn(self) -> None:
        self.proc = subprocess.Popen(self._args(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     cwd=self.basedir, env=_client_env(),
                                     start_new_session=True)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.pid = None
                raise MariaDbError(f"mariadbd exited with {self.proc.returncode} at start:\n"
                                   f"{shlex.join(self._args())}\n--- log (tail) ---\n"
                                   f"{self.log_tail()}")
            probe = subprocess.run(self.client_args() + ["-e", "SELECT 1"],
                                   capture_output=True, text=True, env=_client_env(),
                                   timeout=30)
            if probe.returncode == 0:
                self.running = True
                return
            time.sleep(0.1)
        self._stop_process()
        raise MariaDbError(f"mariadbd did not accept connections within 120 s\n"
                           f"--- log (tail) ---\n{self.log_tail()}")

    def _save_state(self) -> None:
        state = {"port": self.port, "pid": self.pid, "extra_args": self.extra_args,
                 "mariadbd": self.mariadbd}
        (self.basedir / STATE_FILE).write_text(json.dumps(state))

    @classmethod
    def attach(cls, basedir: Path) -> "MariaDbServer":
        """Rebuilds a MariaDbServer for a directory that `start` left running."""
        state = json.loads((Path(basedir) / STATE_FILE).read_text())
        my = cls(extra_args=state["extra_args"], mariadbd=state["mariadbd"])
        my.basedir = Path(basedir)
        my.port = state["port"]
        my.pid = state["pid"]
        my.running = True
        return my


def _alive(pid: Optional[int]) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of another process still answers kill(0); its state says.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description="Start or stop a throwaway MariaDB.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_start = sub.add_parser("start", help="start a server and print shell variables for it")
    p_start.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                         help="extra mariadbd option without the dashes (repeatable)")
    p_stop = sub.add_parser("stop", help="stop a server started by `start` and delete it")
    p_stop.add_argument("dir", help="the MARIADB_DIR printed by `start`")
    args = parser.parse_args(argv)

    if args.command == "start":
        extra = {}
        for item in args.arg:
            k, sep, v = item.partition("=")
            extra[k.strip()] = v.strip() if sep else None
        my = MariaDbServer(extra_args=extra)
        my.start()
        my.detach()
        print(f"MYSQL_HOST={shlex.quote(my.host)}")
        print(f"MYSQL_TCP_PORT={my.port}")
        print(f"MARIADB_DIR={shlex.quote(str(my.basedir))}")
        print(f"MARIADB_LOG={shlex.quote(str(my.logfile))}")
        return 0

    basedir = Path(args.dir)
    if not (basedir / STATE_FILE).exists():
        print(f"mariadbserver: {basedir} holds no server started by this tool", file=sys.stderr)
        return 1
    my = MariaDbServer.attach(basedir)
    my.detach()
    my.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
