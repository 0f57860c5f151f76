#!/usr/bin/env python3
"""The process life cycle the throwaway test servers share.

pgserver.py (PostgreSQL) and mariadbserver.py (MariaDB) each own one
temporary directory under /tmp that holds the server's data, its log and its
sockets; the server listens on 127.0.0.1 on a free port.  What they have in
common lives here, so a fix to it (a port race, a leaked directory at exit)
reaches every server:

- make_basedir(): a fresh /tmp/tidemark-<kind>-XXXX directory, handed to the
  unprivileged user the server runs as when we are root;
- free_port(): a port that is free when asked (start() retries on a bind race);
- the atexit hook that stops a server a test forgot, detach() for CLI use,
  the context manager, log_tail() for error messages;
- stop(): stop the process if it runs, then delete the directory, safe twice.

A subclass implements _stop_process() and starts the server however its
database wants it started.  kafkaserver.py predates this module and keeps its
own copy of these steps (its broker life cycle has more states); move it here
when it is next changed.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Optional

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on HOST that is free now.

    Another process could take it before the server binds it; callers retry
    start() with a new port when the server log says so.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class ServerProcess:
    """Base for one throwaway server in its own directory; see the module docstring."""

    #: The directory prefix under /tmp, e.g. "tidemark-pg-".
    dir_prefix = "tidemark-server-"
    #: The user the server runs as when we are root (None: run as we are).
    server_user: Optional[str] = None

    def __init__(self) -> None:
        self.host = HOST
        self.port: Optional[int] = None
        self.basedir: Optional[Path] = None
        self.running = False
        self._as_root = os.geteuid() == 0

    # -- paths -------------------------------------------------------------

    @property
    def logfile(self) -> Path:
        raise NotImplementedError

    # -- life cycle --------------------------------------------------------

    def make_basedir(self) -> Path:
        """Creates the server's directory and registers the exit hook."""
        # /tmp rather than $TMPDIR: when we are root the server's user must be
        # able to reach the directory, and /tmp is world-traversable.
        self.basedir = Path(tempfile.mkdtemp(prefix=self.dir_prefix, dir="/tmp"))
        os.chmod(self.basedir, 0o755)
        self.chown_to_server(self.basedir)
        atexit.register(self._atexit)
        return self.basedir

    def chown_to_server(self, path: Path) -> None:
        """Gives path to the server's user when we are root (no-op otherwise)."""
        if self._as_root and self.server_user is not None:
            pw = pwd.getpwnam(self.server_user)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _stop_process(self) -> None:
        """Stops the running server process; sets self.running = False."""
        raise NotImplementedError

    def _process_gone(self) -> bool:
        """True if the server is known to have died (so a failed stop is fine)."""
        return False

    def stop(self) -> None:
        """Stops the server and deletes its directory; safe to call twice."""
        if self.running:
            try:
                self._stop_process()
            except Exception:
                # A server that already died (killed, or crashed) has nothing
                # left to stop; anything else is worth reporting.
                if not self._process_gone():
                    raise
                self.running = False
        if self.basedir is not None:
            shutil.rmtree(self.basedir, ignore_errors=True)
            self.basedir = None
        atexit.unregister(self._atexit)

    def detach(self) -> None:
        """Leaves the server running when this Python process exits (CLI use)."""
        atexit.unregister(self._atexit)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self):
        raise NotImplementedError

    def _atexit(self) -> None:
        # A test run that dies without calling stop() must not leave a server
        # behind holding a port and a /tmp directory.
        try:
            self.stop()
        except Exception:
            pass

    def log_tail(self, nbytes: int = 8000) -> str:
        """The last nbytes of the server log, for error messages."""
        try:
            with open(self.logfile, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - nbytes))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""
