"""Running the tidemark daemon from tests, and reading what it wrote.

Every wait here is bounded and fails with a message that says what was
expected, what was seen, and the tail of the daemon's log, because a test that
hangs or fails with "assert False" costs its reader far more time than it
saves its writer.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Callable, List, Mapping, Optional, Sequence, Union

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO_ROOT / "build" / "tidemark"

# Exit codes from the CLI contract.
EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_SOURCE = 3

# Starts each run's section of stderr.log.  log_text() leaves these lines out,
# so a test that looks for words in what the daemon said is never fooled by
# the command line (whose paths carry the test's name).
START_MARKER = "---- tidemark-test: start"
# Failpoints (src/core/failpoint.h): names, and the seed of their draws.
FP_ENV = "TIDEMARK_FAILPOINTS"
FP_SEED_ENV = "TIDEMARK_FAILPOINT_SEED"

# How often the polling helpers look again.  Short enough that tests do not
# idle, long enough that polling a file costs nothing.
POLL_SECONDS = 0.1


def tidemark_bin() -> Path:
    """The binary under test: $TIDEMARK_BIN, else build/tidemark in this repo."""
    value = os.environ.get("TIDEMARK_BIN")
    # Resolved now: the daemon runs with its job directory as the working
    # directory, where a relative path would point elsewhere.
    return Path(value).resolve() if value else DEFAULT_BIN


class Tidemark:
    """One `tidemark run` process working in its own directory.

    The directory holds job.sql, the state directory (kept across restarts so
    a restarted daemon resumes), stdout.log and stderr.log.  Each start
    appends to the logs, with a marker line, so a failure after a restart
    still shows what the first run said.
    """

    def __init__(self, job_sql_text: str, tmpdir: Union[str, Path], bin: Optional[Path] = None):
        self.dir = Path(tmpdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.bin = Path(bin).resolve() if bin else tidemark_bin()
        self.job_path = self.dir / "job.sql"
        self.state_dir = self.dir / "state"
        self.stdout_path = self.dir / "stdout.log"
        self.stderr_path = self.dir / "stderr.log"
        self.job_path.write_text(job_sql_text)
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0

    # -- lifecycle ---------------------------------------------------------

    def start(self, extra_args: Sequence[str] = ()) -> "Tidemark":
        self.start_with(extra_args=extra_args)
        return self

    def start_with(self, failpoints: Optional[str] = None, seed: int = 0,
                   extra_args: Sequence[str] = ()) -> int:
        """Starts the daemon, with TIDEMARK_FAILPOINTS=failpoints (and its
        seed) if given; returns the offset in stderr.log where this start's
        output begins (see section()).

        The failpoints go into the daemon's own environment, never ours: a
        test's other threads may be inside libpq meanwhile, and an inherited
        TIDEMARK_FAILPOINTS is dropped.
        """
        assert self.proc is None or self.proc.poll() is not None, \
            "tidemark is already running; stop it before starting it again"
        env = {k: v for k, v in os.environ.items() if k not in (FP_ENV, FP_SEED_ENV)}
        if failpoints:
            env[FP_ENV] = failpoints
            env[FP_SEED_ENV] = str(seed)
        self.starts += 1
        cmd = [str(self.bin), "run", str(self.job_path), "--state-dir", str(self.state_dir),
               *extra_args]
        with open(self.stderr_path, "ab") as err, open(self.stdout_path, "ab") as out:
            offset = err.tell()
            note = f" {FP_ENV}={failpoints} {FP_SEED_ENV}={seed}" if failpoints else ""
            err.write(f"{START_MARKER} #{self.starts}:{note} {' '.join(cmd)}\n".encode())
            err.flush()
            # The daemon writes to files, never to pipes we would have to
            # drain: a full pipe would stall it and make the test time out.
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, cwd=self.dir, env=env)
        return offset

    def section(self, offset: int) -> str:
        """stderr.log from `offset` (a start_with() result) on."""
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc else None

    def poll(self) -> Optional[int]:
        """The exit code, or None while it runs (or before it started)."""
        return self.proc.poll() if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout: float = 60) -> int:
        """Waits for the daemon to exit by itself and returns its exit code."""
        assert self.proc is not None, "tidemark was never started"
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"tidemark (pid {self.proc.pid}) was expected to exit but still runs "
                f"after {timeout:.0f}s\n{self.log_tail()}") from None

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM (a graceful stop), then waits; returns the exit code."""
        assert self.proc is not None, "tidemark was never started"
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(
                f"tidemark did not stop within {timeout:.0f}s of SIGTERM and was killed\n"
                f"{self.log_tail()}") from None

    def kill9(self) -> None:
        """SIGKILL, as a crash would; waits until the process is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def admin_get(self, path: str, timeout: float = 30, context=None, headers=None) -> str:
        """The body of GET `path` from the admin API (the job sets admin_address).

        The address is the one this run wrote to <state-dir>/admin.addr; after
        a restart the file may still name the previous run's port for a
        moment, so callers that restart poll this with wait_until().  A TLS
        daemon writes "https://HOST:PORT"; `context` (an ssl.SSLContext) then
        says how to verify it, and `headers` may carry a bearer token.
        """
        addr = self.state_dir / "admin.addr"
        wait_until(addr.exists, timeout, "admin.addr", self)
        text = addr.read_text().strip()
        url = (text if text.startswith(("http://", "https://")) else "http://" + text) + path
        req = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(req, timeout=10, context=context) as r:
            return r.read().decode()

    # -- output ------------------------------------------------------------

    def log_text(self) -> str:
        """Everything the daemon wrote to stderr, over all its starts."""
        return "".join(line for line in self._stderr().splitlines(keepends=True)
                       if not line.startswith(START_MARKER))

    def _stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def stdout_text(self) -> str:
        try:
            return self.stdout_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, nchars: int = 6000) -> str:
        text = self._stderr()
        if len(text) > nchars:
            text = "...\n" + text[-nchars:]
        state = "running" if self.running() else f"exited with {self.poll()}"
        return f"--- tidemark ({state}) stderr ---\n{text}\n--- end of tidemark stderr ---"

    def assert_running(self, context: str = "") -> None:
        if not self.running():
            raise AssertionError(f"tidemark exited with {self.poll()} unexpectedly"
                                 f"{' ' + context if context else ''}\n{self.log_tail()}")


def run_cli(args: Sequence[str], timeout: float = 60, bin: Optional[Path] = None,
            cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    """Runs a short tidemark command (explain, --version...) and captures its output."""
    cmd = [str(bin or tidemark_bin()), *[str(a) for a in args]]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, cwd=cwd)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"`{' '.join(cmd)}` did not finish within {timeout:.0f}s; "
                             f"output so far:\n{e.stdout}\n{e.stderr}") from None


# -- job files ------------------------------------------------------------

def sql_literal(value) -> str:
    """Renders an option value: booleans and numbers bare, everything else quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def create_table(name: str, options: Mapping[str, object], columns: str = "") -> str:
    """`CREATE TABLE name (columns) WITH (k = v, ...);` with options in the given order."""
    opts = ", ".join(f"{k} = {sql_literal(v)}" for k, v in options.items())
    return f"CREATE TABLE {name} ({columns}) WITH ({opts});"


def cdc_job(source: Mapping[str, object], sink: Mapping[str, object],
            source_name: str = "shop", sink_name: str = "out", columns: str = "") -> str:
    """The usual three-statement job: one source, one sink, one INSERT between them."""
    return "\n".join([
        create_table(source_name, source, columns),
        create_table(sink_name, sink),
        f"INSERT INTO {sink_name} SELECT * FROM {source_name};",
        "",
    ])


# -- reading sink files -------------------------------------------------------

def _parts_dir(path: Path) -> Optional[Path]:
    """The file sink's `commit = 'rename'` layout: <path>/<topic>/part-<N>.jsonl."""
    d = path.with_suffix("") if path.suffix == ".jsonl" else path
    return d if d.is_dir() else None


def _complete_lines(path: Path) -> List[str]:
    """The lines of a file that end in a newline; a torn last line is left out.

    For a topic written with `commit = 'rename'` (no <topic>.jsonl, but a
    <topic>/ directory of part files) the parts are read in name order, which
    is commit order.
    """
    path = Path(path)
    parts = _parts_dir(path) if not path.is_file() else None
    try:
        if parts is not None:
            data = b"".join(p.read_bytes() for p in sorted(parts.glob("part-*.jsonl")))
        else:
            data = path.read_bytes()
    except FileNotFoundError:
        return []
    # Whatever follows the last newline is a line still being written, or
    # one torn by a crash; neither is a record yet.  Cutting before decoding
    # also keeps a half-written UTF-8 sequence out of the decoder.
    end = data.rfind(b"\n")
    if end < 0:
        return []
    return data[:end].decode("utf-8").split("\n")


def read_jsonl(path: Union[str, Path]) -> list:
    """Parses every complete line of a JSON-lines file; a missing file has none.

    A line in the middle that is not valid JSON is a real defect (a torn write
    that a restart appended to, say), so it fails loudly with its position.
    """
    records = []
    for number, line in enumerate(_complete_lines(Path(path)), start=1):
        if not line.strip():
            raise AssertionError(f"{path}:{number}: empty line in a JSON-lines file")
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise AssertionError(f"{path}:{number}: not valid JSON ({e}): {line[:300]!r}") from None
    return records


def _describe_proc(proc) -> str:
    if proc is None:
        return ""
    if hasattr(proc, "log_tail"):
        return "\n" + proc.log_tail()
    return f"\n(process exited with {proc.poll()})"


def _check_alive(proc, what: str) -> None:
    if proc is not None and proc.poll() is not None:
        raise AssertionError(f"tidemark exited with {proc.poll()} while waiting for {what}"
                             f"{_describe_proc(proc)}")


def wait_until(predicate: Callable[[], object], timeout: float, what: str, proc=None):
    """Polls predicate until it returns something truthy, and returns that.

    Fails after timeout seconds, or at once if proc (a Tidemark or a Popen)
    has exited, since then the condition can no longer become true.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            # The process may have written the last of what we wait for just
            # before it exited, so look once more before giving up.
            value = predicate()
            if value:
                return value
            _check_alive(proc, what)
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}"
                                 f"{_describe_proc(proc)}")
        time.sleep(POLL_SECONDS)


def wait_for_lines(path: Union[str, Path], n: int, timeout: float = 60, proc=None) -> list:
    """Waits until a JSON-lines file has at least n complete lines; returns them parsed."""
    path = Path(path)
    seen = [0]

    def enough():
        # Counting newlines, rather than parsing, keeps polling a file of a
        # hundred thousand events cheap.
        try:
            seen[0] = path.read_bytes().count(b"\n")
        except FileNotFoundError:
            seen[0] = 0
        return seen[0] >= n

    try:
        wait_until(enough, timeout, f"{n} lines in {path}", proc)
    except AssertionError as e:
        raise AssertionError(f"{e}\n(the file had {seen[0]} complete lines)") from None
    return read_jsonl(path)


def wait_for_records(path: Union[str, Path], predicate: Callable[[list], bool],
                     timeout: float, what: str, proc=None) -> list:
    """Waits until predicate(all records in the file) holds; returns the records."""
    path = Path(path)
    result: list = []

    def check():
        nonlocal result
        result = read_jsonl(path)
        return predicate(result)

    wait_until(check, timeout, what, proc)
    return result


# -- Debezium envelopes ---------------------------------------------------------

def payload(record: dict) -> dict:
    """The Debezium payload of one line, whichever form the line takes.

    Lines come with schemas (`{"schema":…, "payload":…}`), without them (the
    payload itself), or with include_key (`{"key":…, "value":…}`).
    """
    if "value" in record and "key" in record:
        record = record["value"]
    if isinstance(record, dict) and "payload" in record and "schema" in record:
        record = record["payload"]
    return record


def row_id(record: dict, column: str = "id"):
    """The key column of the row an event is about, from after or else before."""
    p = payload(record)
    image = p.get("after") or p.get("before") or {}
    return image.get(column)


def debezium_decimal(value, scale: int) -> str:
    """Debezium's precise decimal: base64 of the unscaled value, big-endian two's complement.

    The byte count is the minimal one that holds the sign bit, as Java's
    BigInteger.toByteArray() gives it: 12.34 at scale 2 -> 1234 -> 04 D2 -> "BNI=".
    """
    unscaled = int((Decimal(value) * (Decimal(10) ** scale)).to_integral_exact())
    magnitude_bits = unscaled.bit_length() if unscaled >= 0 else (~unscaled).bit_length()
    raw = unscaled.to_bytes(magnitude_bits // 8 + 1, "big", signed=True)
    return base64.b64encode(raw).decode("ascii")


def all_records(directory: Union[str, Path]) -> dict:
    """{file name: records} for every .jsonl file a file sink wrote."""
    return {p.name: read_jsonl(p) for p in sorted(Path(directory).glob("*.jsonl"))}


def assert_pg_source(source: dict, *, name: str, db: str, schema: str, table: str,
                     snapshot: Union[str, Sequence[str]] = "false") -> None:
    """Checks a PostgreSQL `source` block against Debezium's field list and types."""
    assert isinstance(source, dict), f"source block is not an object: {source!r}"
    expected = {"version", "connector", "name", "ts_ms", "snapshot", "db", "sequence",
                "schema", "table", "txId", "lsn", "xmin", "origin", "origin_lsn"}
    missing = expected - set(source)
    assert not missing, f"source block lacks {sorted(missing)}: {source}"
    assert isinstance(source["version"], str) and source["version"], source
    assert source["connector"] == "postgresql", source
    assert source["name"] == name, source
    assert isinstance(source["ts_ms"], int), source
    allowed = [snapshot] if isinstance(snapshot, str) else list(snapshot)
    assert source["snapshot"] in allowed, f"source.snapshot should be one of {allowed}: {source}"
    assert source["db"] == db, source
    assert (source["schema"], source["table"]) == (schema, table), source
    streamed = source["snapshot"] == "false"
    for field in ("txId", "lsn"):
        ok = isinstance(source[field], int) or (not streamed and source[field] is None)
        assert ok, f"source.{field} should be an integer: {source}"
    assert source["xmin"] is None or isinstance(source["xmin"], int), source
    # Debezium writes sequence as a string that itself holds a JSON array:
    # the LSN of the last commit (null before the first) and this event's LSN.
    assert isinstance(source["sequence"], str), f"source.sequence is not a string: {source}"
    sequence = json.loads(source["sequence"])
    assert isinstance(sequence, list) and len(sequence) == 2, source
    assert all(s is None or isinstance(s, str) for s in sequence), source
    if source["lsn"] is not None:
        assert sequence[1] == str(source["lsn"]), \
            f"source.sequence[1] should be the event's LSN {source['lsn']}: {source}"


def assert_envelope(record: dict, schemas: bool = True) -> dict:
    """Checks a value line's outer shape and returns its payload."""
    if schemas:
        assert set(record) == {"schema", "payload"}, \
            f"with schemas on a line is {{schema, payload}}, got keys {sorted(record)}"
        assert record["schema"].get("type") == "struct", record["schema"]
        p = record["payload"]
    else:
        assert "schema" not in record and "payload" not in record, \
            f"with schemas = false a line is the bare payload, got keys {sorted(record)}"
        p = record
    missing = {"before", "after", "source", "op", "ts_ms", "ts_us", "ts_ns", "transaction"} - set(p)
    if p.get("op") in ("m",):
        missing -= {"before", "after"}
    assert not missing, f"payload lacks {sorted(missing)}: {p}"
    for field in ("ts_ms", "ts_us", "ts_ns"):
        assert isinstance(p[field], int), f"payload.{field} should be an integer: {p}"
    assert p["transaction"] is None, f"transaction metadata is off, so null: {p}"
    return p


class RowWriter(threading.Thread):
    """Inserts rows (id, 'streamed') into `events`, one per transaction, from
    first_id on, until stopped (or `limit` ids): a stream that a crash or an
    outage lands in the middle of, rather than at a quiet moment."""

    def __init__(self, cdc, first_id: int = 1, limit: Optional[int] = None,
                 pause: float = 0.005):
        super().__init__(daemon=True)
        self.cdc = cdc
        self.next_id = first_id
        self.limit = limit
        self.pause = pause
        self.stop_event = threading.Event()
        self.error = None

    def run(self):
        try:
            conn = self.cdc.connect()
            cur = conn.cursor()
            while not self.stop_event.is_set() and (self.limit is None or
                                                    self.next_id < self.limit):
                cur.execute("INSERT INTO events VALUES (%s, 'streamed')", (self.next_id,))
                self.next_id += 1
                time.sleep(self.pause)
            conn.close()
        except Exception as e:  # Reported by finish(), in the test's thread.
            self.error = e

    def finish(self) -> int:
        """Stops the writer; returns the first id it did not write."""
        self.stop_event.set()
        self.join(timeout=60)
        assert not self.is_alive(), "the writer thread did not stop"
        assert self.error is None, f"the writer failed: {self.error!r}"
        return self.next_id


def daemon_under_test() -> Path:
    """The daemon the tests run, from $TIDEMARK_BIN (default build/tidemark);
    skips the test (pytest.skip) when there is none."""
    import pytest

    raw = os.environ.get("TIDEMARK_BIN")
    if raw == "":
        pytest.skip("TIDEMARK_BIN is empty: the build failed or did not run, "
                    "so there is no daemon to test")
    path = Path(raw).resolve() if raw else DEFAULT_BIN
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.skip(f"no tidemark binary at {path}; build it with scripts/setup.sh "
                    f"or point TIDEMARK_BIN at one")
    return path
