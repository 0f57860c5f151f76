#!/usr/bin/python3
"""Recovery-time benchmark: restart after kill -9 to first output, with ~1 GB of upsert state.

One throwaway PostgreSQL 15 gets a table `items (id int PRIMARY KEY, v int, payload text)` with
--row-bytes of incompressible hex payload per row, enough rows for --state-mb of keyed state.
tidemark snapshots it through a job whose source declares the PRIMARY KEY, so the upsert
operator keeps every row in RocksDB (SET parallelism = 2), checkpointed every
--checkpoint-interval into a file sink (schemas off).  Then, --repeat times:

  * kill -9 the daemon, commit one UPDATE (a unique marker in one row's payload; committed
    before the restart so that psql's own start-up is never timed), restart it with the same
    command and state directory, and time (a) restart -> the log's `msg="running"` (keyed
    state restored, pipeline started) and (b) restart -> the UPDATE as a line in the sink's
    file (first output after recovery).  The UPDATE must come out as an update with the
    before image the upsert operator keeps in state, or a warning says so.

The peers, measured in the same rounds on the same machine:

  * the same job without keyed state (source declared with `()` and `tables = ...`: no upsert
    operator, no RocksDB), killed and restarted the same way;
  * pg_recvlogical (pgoutput) started on a fresh slot that holds the same kind of UPDATE: process
    start -> the UPDATE in its output file, the floor for "restart to first output" of any
    logical-replication consumer.

With checkpoints the file sink makes lines visible when their epoch's checkpoint commits, so (b)
includes the first checkpoint after the restart (one interval after it, plus the checkpoint's
own duration); the rounds are repeated with --fast-interval (default 200ms) to show that part.
Each daemon cycle starts the job (unmeasured), waits for a checkpoint, kills it, and stops the
restarted daemon gracefully afterwards, so only one daemon runs at a time.  It prints medians,
ratios, the start-up steps from the daemon's log, the checkpointed state size (from
`tidemark inspect`) and the machine.  This is a benchmark, not a test: nothing asserts a time.

    bench/recovery_time.py [--state-mb 1024] [--row-bytes 1000] [--repeat 3]
                           [--checkpoint-interval 1s] [--fast-interval 200ms|'']
                           [--state-memory 256MiB] [--keep DIR]
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "lib"))
from pgserver import PgServer  # noqa: E402

PG_BIN = Path("/usr/lib/postgresql/15/bin")
POLL = 0.005          # seconds between looks at a log or an output file
STEP_TIMEOUT = 600    # the longest any single wait may take (except the snapshot)
TOPIC = "shop.public.items.jsonl"


def log(msg: str) -> None:
    print(msg, flush=True)


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mem_gib() -> float:
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def fmt_bytes(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB" if n < 2**30 else f"{n / 2**30:,.2f} GiB"


def wait_for(cond, timeout: float, what: str, on_fail=None):
    """Polls cond() until it returns something truthy; bounded."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}"
                               + (f"\n{on_fail()}" if on_fail else ""))
        time.sleep(POLL)


class Daemon:
    """One tidemark job: its job file, state directory, output directory and log.

    Every start appends to the same log; `mark` is the log's length at the start, so a
    search for `msg="running"` only sees what this start said."""

    def __init__(self, args, name: str, job_text, run_dir: Path):
        self.args = args
        self.name = name
        self.job_text = job_text        # a function of the checkpoint interval
        self.dir = run_dir / name
        self.dir.mkdir(parents=True)
        self.job = self.dir / "job.sql"
        self.state = self.dir / "state"
        self.out = self.dir / "out"
        self.out.mkdir()
        self.logfile = self.dir / "tidemark.log"
        self.proc = None
        self.mark = 0

    @property
    def topic(self) -> Path:
        return self.out / TOPIC

    def write_job(self, interval: str) -> None:
        self.job.write_text(self.job_text(interval))

    def cmd(self) -> list:
        return [self.args.tidemark, "run", str(self.job), "--state-dir", str(self.state)]

    def start(self) -> float:
        assert self.proc is None or self.proc.poll() is not None
        binary = Path(self.args.tidemark)
        # Other engineers may be rebuilding build/tidemark; wait for it to come back.
        wait_for(lambda: binary.exists() and os.access(binary, os.X_OK), 300,
                 f"{binary} to exist (being rebuilt?)")
        self.mark = self.logfile.stat().st_size if self.logfile.exists() else 0
        with open(self.logfile, "ab") as f:
            t0 = time.monotonic()
            self.t0_wall = time.time()
            # Its own session: a Ctrl-C in the terminal reaches only this script, which
            # then kills the daemon itself.
            self.proc = subprocess.Popen(self.cmd(), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=f, cwd=self.dir,
                                         start_new_session=True)
        return t0

    def text(self) -> str:
        """What the daemon logged since its last start."""
        try:
            with open(self.logfile, "rb") as f:
                f.seek(self.mark)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def tail(self, n: int = 4000) -> str:
        return f"--- {self.logfile} (tail) ---\n" + self.text()[-n:]

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"tidemark ({self.name}) exited with {self.proc.returncode}\n"
                               + self.tail())

    def running_line(self):
        """What the `running` line says was restored, or None before that line.

        `keyed_state` describes keyed state ("none" for a job without any); a checkpoint that
        only held positions and sink handles shows in `restored_checkpoint`."""
        self.check_alive()
        text = self.text()
        m = re.search(r'msg="running".*?restored_checkpoint=(\d+) keyed_state="([^"]*)"', text)
        if not m:
            return None
        if m.group(2) == "none" and m.group(1) != "0":
            return f"checkpoint {m.group(1)}, no keyed state"
        return m.group(2)

    def phases(self, t0_wall: float) -> dict:
        """Seconds from the process start (wall clock) to each startup step in the log."""
        steps = {"starting": 'msg="starting"', "restoring": 'msg="restoring from checkpoint"',
                 "source_opened": 'msg="source opened"', "running": 'msg="running"',
                 "streaming": 'msg="streaming started"'}
        out = {}
        text = self.text()
        for name, needle in steps.items():
            m = re.search(r"^ts=(\S+) .*" + re.escape(needle), text, re.M)
            if m:
                ts = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ")
                ts = ts.replace(tzinfo=datetime.timezone.utc).timestamp()
                out[name] = ts - t0_wall
        return out

    def completed_checkpoints(self) -> list:
        return [int(x) for x in re.findall(r'comp=checkpoint msg="completed".*?checkpoint=(\d+)',
                                           self.text())]

    def wait_checkpoint_after(self, after: int, timeout: float = STEP_TIMEOUT) -> int:
        def done():
            self.check_alive()
            ids = [c for c in self.completed_checkpoints() if c > after]
            return ids[-1] if ids else None
        return wait_for(done, timeout, f"a checkpoint after {after} ({self.name})", self.tail)

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=60)

    def stop(self) -> None:
        """SIGTERM (graceful: final checkpoint), then SIGKILL if it takes too long."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            log(f"warning: tidemark ({self.name}) ignored SIGTERM for 120 s; killed")
            self.kill9()


def topic_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def file_has(path: Path, needle: bytes, start: int) -> bool:
    """Whether `needle` appears in path at or after byte `start` (clamped to the file's size:
    recovery may truncate a topic file to its committed length)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(min(start, size))
            return needle in f.read()
    except FileNotFoundError:
        return False


def marker_line(path: Path, needle: bytes, start: int) -> str:
    with open(path, "rb") as f:
        f.seek(min(start, os.fstat(f.fileno()).st_size))
        for raw in f:
            if needle in raw:
                return raw.decode("utf-8", "replace")
    return ""


def count_lines(path: Path, st: dict) -> int:
    """Newlines in path, counting only the bytes added since the last call."""
    size = topic_size(path)
    if size < st.get("off", 0):
        st.clear()
    if size == st.get("off", 0):
        return st.get("n", 0)
    with open(path, "rb") as f:
        f.seek(st.get("off", 0))
        n = st.get("n", 0)
        off = st.get("off", 0)
        while True:
            chunk = f.read(1 << 22)
            if not chunk:
                break
            n += chunk.count(b"\n")
            off += len(chunk)
    st["off"], st["n"] = off, n
    return n


def inspect(args, state_dir: Path) -> tuple:
    """(checkpoint id, [bytes per worker], raw text) of the newest checkpoint."""
    res = subprocess.run([args.tidemark, "inspect", str(state_dir)], capture_output=True,
                         text=True, timeout=300)
    if res.returncode != 0:
        raise RuntimeError(f"tidemark inspect failed: {res.stderr}")
    m = re.search(r"^checkpoint (\d+)", res.stdout, re.M)
    workers = [int(x) for x in re.findall(r"^\s*worker \d+: key groups [^,]*, (\d+) bytes",
                                          res.stdout, re.M)]
    return (int(m.group(1)) if m else -1), workers, res.stdout


def populate(pg: PgServer, rows: int, row_bytes: int) -> None:
    """rows of `row_bytes` hex characters each: the hex of a slice cut at a pseudo-random offset
    out of a 1 MiB pool of md5 output, so that RocksDB's block compression finds little to
    compress, and below PostgreSQL's TOAST threshold (2 kB) so that pgoutput sends every value
    inline.  A pool rather than md5s per row keeps generating 1 GB to about a minute."""
    pool = 2**20          # bytes of md5 output to cut the payloads from
    half = row_bytes // 2
    assert 16 <= row_bytes <= 1900, "rows over ~2 kB would be TOASTed"
    pg.psql(f"""
CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL, payload text NOT NULL);
ALTER TABLE items ALTER COLUMN payload SET STORAGE PLAIN;
INSERT INTO items
  WITH pool AS MATERIALIZED (
    SELECT decode(string_agg(md5(i::text), ''), 'hex') AS b
    FROM generate_series(1, {pool // 16}) i)
  SELECT g, g, encode(substring(p.b from 1 + ((g::bigint * 7919) % ({pool} - {half}))::int
                                for {half}), 'hex')
  FROM generate_series(1, {rows}) g, pool p;
VACUUM ANALYZE items;
CREATE PUBLICATION bench_pub FOR TABLE items;
""", db="bench", timeout=3600)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--state-mb", type=int, default=1024,
                    help="keyed state to build, in MiB (default 1024)")
    ap.add_argument("--row-bytes", type=int, default=1000,
                    help="payload characters per row (default 1000)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="kill/restart cycles per tool and interval; medians are reported")
    ap.add_argument("--checkpoint-interval", default="1s")
    ap.add_argument("--fast-interval", default="200ms",
                    help="also measure with this checkpoint interval ('' to skip)")
    ap.add_argument("--parallelism", type=int, default=2)
    ap.add_argument("--state-memory", default="256MiB")
    ap.add_argument("--snapshot-timeout", type=float, default=3600,
                    help="give up if the initial snapshot takes longer (seconds)")
    ap.add_argument("--tidemark", default=str(REPO / "build" / "tidemark"))
    ap.add_argument("--keep", metavar="DIR",
                    help="work in DIR and keep it (logs, state) instead of a temporary directory")
    args = ap.parse_args()
    args.tidemark = str(Path(args.tidemark).resolve())

    # Ctrl-C and SIGTERM both unwind through the finally below.
    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    if args.keep:
        tmp = Path(args.keep).resolve()
        tmp.mkdir(parents=True, exist_ok=False)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="tm-recovery-"))
    pg = None
    daemons = []
    recv_proc = None
    try:
        pg = PgServer(fsync_off=True, extra_conf={
            "max_wal_size": "8GB", "checkpoint_timeout": "30min", "shared_buffers": "256MB",
            "max_slot_wal_keep_size": "-1"}).start()
        pg.psql("CREATE DATABASE bench")
        rows = -(-args.state_mb * 2**20 // args.row_bytes)
        t0 = time.monotonic()
        populate(pg, rows, args.row_bytes)
        table_bytes = int(pg.psql("SELECT pg_table_size('items')", db="bench"))
        log(f"table: {rows:,} rows of {args.row_bytes} payload bytes, {fmt_bytes(table_bytes)} "
            f"in PostgreSQL, written in {time.monotonic() - t0:.1f}s")
        dsn = f"host={pg.host} port={pg.port} dbname=bench user=postgres"

        def with_state(interval: str) -> str:
            return f"""
CREATE TABLE shop (id int PRIMARY KEY, v int, payload text) WITH (connector = 'postgres-cdc',
  dsn = '{dsn}', table = 'public.items', slot = 'tm_state', publication = 'bench_pub',
  snapshot = 'initial');
CREATE TABLE out () WITH (connector = 'file', path = '{tmp / "state" / "out"}', schemas = false);
INSERT INTO out SELECT * FROM shop;
SET checkpoint_interval = '{interval}';
SET parallelism = {args.parallelism};
SET state_memory = '{args.state_memory}';
SET admin_address = '127.0.0.1:0';
"""

        def without_state(interval: str) -> str:
            # No declared key: no upsert operator, no keyed state.  snapshot = 'never': this
            # peer only needs the slot; what a restart does no longer depends on the snapshot.
            return f"""
CREATE TABLE shop () WITH (connector = 'postgres-cdc',
  dsn = '{dsn}', tables = 'public.items', slot = 'tm_nostate', publication = 'bench_pub',
  snapshot = 'never');
CREATE TABLE out () WITH (connector = 'file', path = '{tmp / "nostate" / "out"}', schemas = false);
INSERT INTO out SELECT * FROM shop;
SET checkpoint_interval = '{interval}';
SET parallelism = {args.parallelism};
SET state_memory = '{args.state_memory}';
SET admin_address = '127.0.0.1:0';
"""

        st = Daemon(args, "state", with_state, tmp)
        ns = Daemon(args, "nostate", without_state, tmp)
        daemons += [st, ns]

        # ---- the initial snapshot into keyed state ----------------------------------------
        st.write_job(args.checkpoint_interval)
        t0 = st.start()
        counter: dict = {}
        last_report = t0
        deadline = t0 + args.snapshot_timeout
        while True:
            st.check_alive()
            n = count_lines(st.topic, counter)
            now = time.monotonic()
            if n >= rows:
                break
            if now - last_report >= 30:
                # The file shows rows only once the checkpoint spanning the snapshot commits
                # (no barrier passes a snapshot in progress), so report what the source read.
                read = re.findall(r'msg="snapshot progress".* rows=(\d+)', st.text())
                log(f"  snapshot: {int(read[-1]) if read else 0:,} / {rows:,} rows read after "
                    f"{now - t0:.0f}s, {n:,} in the file")
                last_report = now
            if now > deadline:
                raise RuntimeError(f"snapshot not done after {args.snapshot_timeout:.0f}s: "
                                   f"{n:,} of {rows:,} rows ({n / (now - t0):,.0f} rows/s)\n"
                                   + st.tail())
            time.sleep(0.2)
        t_snap = time.monotonic() - t0
        out_bytes = topic_size(st.topic)
        # The rows are on disk once their epoch committed, i.e. its checkpoint completed; one
        # more checkpoint makes sure the newest one holds everything.
        done = st.completed_checkpoints()
        chk = st.wait_checkpoint_after(done[-1] if done else 0)
        chk_id, workers, raw = inspect(args, st.state)
        state_bytes = sum(workers)
        log(f"snapshot: {rows:,} rows through tidemark in {t_snap:.1f}s "
            f"({rows / t_snap:,.0f} rows/s, {out_bytes / t_snap / 2**20:,.1f} MiB/s of output); "
            f"checkpoint {chk_id} holds {fmt_bytes(state_bytes)} of keyed state "
            f"({', '.join(fmt_bytes(w) for w in workers)} per worker)")
        if state_bytes < args.state_mb * 2**20:
            log(f"warning: checkpointed state {fmt_bytes(state_bytes)} is below the "
                f"{args.state_mb} MiB target")
        if not workers:
            log("warning: `tidemark inspect` showed no worker state:\n" + raw)
        st.stop()

        # The stateless peer: first start creates its slot; one checkpoint, then stop.
        ns.write_job(args.checkpoint_interval)
        ns.start()
        wait_for(ns.running_line, STEP_TIMEOUT, "the stateless job to run", ns.tail)
        ns.wait_checkpoint_after(0)
        ns.stop()

        env = dict(os.environ, PGHOST=pg.host, PGPORT=str(pg.port), PGUSER="postgres")
        marker_no = [0]

        def update() -> bytes:
            """Commits one UPDATE whose new payload starts with a unique marker."""
            marker_no[0] += 1
            marker = f"MARK{marker_no[0]:06d}Z"
            row = 1 + (marker_no[0] * 104729) % rows
            pg.psql(f"UPDATE items SET v = v + 1, payload = overlay(payload placing '{marker}' "
                    f"from 1) WHERE id = {row}", db="bench")
            return marker.encode()

        def cycle(d: Daemon, interval: str) -> dict:
            """Warm start, a checkpoint, kill -9, UPDATE, timed restart.

            Returns seconds from the restart to `running` and to the UPDATE in the file, what
            was restored, and the startup steps from the log."""
            d.write_job(interval)
            d.start()
            restored0 = wait_for(d.running_line, STEP_TIMEOUT, f"{d.name} to run", d.tail)
            m = re.match(r"checkpoint (\d+)", restored0)
            d.wait_checkpoint_after(int(m.group(1)) if m else 0)
            d.kill9()
            # The UPDATE is committed before the restart rather than just after it, so that
            # psql's own start-up (tens of ms) is never on the measured path, for tidemark as
            # for pg_recvlogical: every tool is timed from its process start to the change.
            marker = update()
            offset = topic_size(d.topic)
            t0 = d.start()
            restored = wait_for(d.running_line, STEP_TIMEOUT, f"{d.name} to run", d.tail)
            t_run = time.monotonic() - t0
            wait_for(lambda: d.check_alive() or file_has(d.topic, marker, offset),
                     STEP_TIMEOUT, f"the UPDATE in {d.topic}", d.tail)
            t_out = time.monotonic() - t0
            ph = d.phases(d.t0_wall)
            rec = json.loads(marker_line(d.topic, marker, offset))
            if d is st and not (rec.get("op") == "u" and rec.get("before")):
                # The upsert operator fills the before image from its state; without it the
                # restart did not have the state it claims to have restored.
                log(f"warning: the UPDATE came out without a before image from state: "
                    f"{json.dumps(rec)[:300]}")
            d.stop()
            return {"run": t_run, "out": t_out, "restored": restored, **ph}

        def recvlogical(i: int) -> float:
            nonlocal recv_proc
            slot = f"recv_{i}"
            pg.psql(f"SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')",
                    db="bench")
            marker = update()
            out = tmp / f"recv_{i}.out"
            t0 = time.monotonic()
            recv_proc = subprocess.Popen(
                [str(PG_BIN / "pg_recvlogical"), "-d", "bench", "--slot", slot, "--start",
                 "--no-loop", "-o", "proto_version=1", "-o", "publication_names=bench_pub",
                 "-f", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                start_new_session=True)

            def seen():
                if recv_proc.poll() is not None:
                    raise RuntimeError("pg_recvlogical exited: " + recv_proc.stderr.read().decode())
                return file_has(out, marker, 0)
            wait_for(seen, STEP_TIMEOUT, "the UPDATE from pg_recvlogical")
            t = time.monotonic() - t0
            recv_proc.terminate()
            recv_proc.wait(timeout=60)
            recv_proc = None
            pg.psql(f"SELECT pg_drop_replication_slot('{slot}')", db="bench")
            out.unlink()
            return t

        # ---- the measured rounds ----------------------------------------------------------
        intervals = [args.checkpoint_interval]
        if args.fast_interval and args.fast_interval != args.checkpoint_interval:
            intervals.append(args.fast_interval)
        res = {iv: {"state": [], "nostate": []} for iv in intervals}
        recv = []
        tools = ["state", "nostate", "recv"]
        for iv in intervals:
            for i in range(args.repeat):
                # Rotate the order so that no tool always runs on a fresher machine.
                order = tools[i % 3:] + tools[:i % 3]
                parts = []
                for tool in order:
                    if tool == "recv":
                        t = recvlogical(len(recv))
                        recv.append(t)
                        parts.append(f"pg_recvlogical {t:.2f}s")
                    else:
                        r = cycle(st if tool == "state" else ns, iv)
                        res[iv][tool].append(r)
                        parts.append(f"{tool}: running {r['run']:.2f}s, output {r['out']:.2f}s "
                                     f"(restored {r['restored']})")
                log(f"interval {iv} round {i + 1}: " + "; ".join(parts))

        # ---- report -----------------------------------------------------------------------
        def med(rs: list, key: str) -> float:
            vals = [r[key] for r in rs if key in r]
            return statistics.median(vals) if vals else float("nan")

        def steps(rs: list) -> str:
            exec_ = med(rs, "starting")
            opened = med(rs, "source_opened") - med(rs, "starting")
            run = med(rs, "running") - med(rs, "source_opened")
            out = med(rs, "out") - med(rs, "run")
            return (f"exec to log {exec_:.2f}s, to source opened (checkpoint, keyed state, "
                    f"PostgreSQL connection and slot) +{opened:.2f}s, to running +{run:.2f}s, "
                    f"to the UPDATE on disk +{out:.2f}s")

        r_recv = statistics.median(recv)
        pg_version = subprocess.run([str(PG_BIN / "postgres"), "--version"], capture_output=True,
                                    text=True).stdout.strip()
        log("")
        log(f"machine: {os.cpu_count()} cores, {cpu_model()}, {mem_gib():.0f} GiB; "
            f"{pg_version}; load average {os.getloadavg()[0]:.1f}")
        log(f"state: {rows:,} rows x {args.row_bytes} B payload; checkpoint {chk_id} held "
            f"{fmt_bytes(state_bytes)} of keyed state over {len(workers)} workers "
            f"(parallelism {args.parallelism}, state_memory {args.state_memory}); "
            f"medians of {args.repeat} kill -9/restart cycles per tool and interval")
        log(f"snapshot through tidemark: {t_snap:.1f}s, {rows / t_snap:,.0f} rows/s, "
            f"{out_bytes / t_snap / 2**20:,.1f} MiB/s of output")
        for iv in intervals:
            s_, n_ = res[iv]["state"], res[iv]["nostate"]
            log(f"checkpoint_interval {iv}:")
            log(f"  with {fmt_bytes(state_bytes)} of state: {med(s_, 'run'):.2f}s to running, "
                f"{med(s_, 'out'):.2f}s to first output")
            log(f"    {steps(s_)}")
            log(f"  without state: {med(n_, 'run'):.2f}s to running, "
                f"{med(n_, 'out'):.2f}s to first output")
            log(f"    {steps(n_)}")
            log(f"  ratio with/without state: {med(s_, 'run') / med(n_, 'run'):.2f} to running, "
                f"{med(s_, 'out') / med(n_, 'out'):.2f} to first output")
            log(f"  first output / pg_recvlogical's: with state "
                f"{med(s_, 'out') / r_recv:.1f}, without state {med(n_, 'out') / r_recv:.1f}")
        log(f"pg_recvlogical on a fresh slot, process start to the UPDATE in its file: "
            f"{r_recv:.2f}s (median of {len(recv)})")
        log("with checkpoints the file sink makes a line visible when its epoch's checkpoint "
            "commits: first output comes with the first checkpoint after the restart, one "
            "interval after running plus that checkpoint's duration and commit")
        target = med(res[intervals[0]]["state"], "out")
        log(f"target (first output < 5 s after a restart with ~1 GB of state): "
            f"{'met' if target < 5 else 'NOT met'}: {target:.2f}s at checkpoint_interval "
            f"{intervals[0]} with {fmt_bytes(state_bytes)}")
        return 0
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # let the cleanup finish
        for d in daemons:
            try:
                d.kill9()
            except Exception as e:  # noqa: BLE001 -- keep cleaning up
                log(f"cleanup: {e}")
        if recv_proc is not None and recv_proc.poll() is None:
            recv_proc.kill()
            recv_proc.wait()
        if pg is not None:
            try:
                pg.stop()
            except Exception as e:  # noqa: BLE001
                log(f"cleanup: {e}")
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
