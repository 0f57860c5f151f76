#!/usr/bin/env python3
"""The crash harness: kill -9 tidemark over and over, then compare with the truth.

A workload thread (workload.py) commits a random mix of inserts, updates,
deletes, multi-row and rolled-back transactions to a real PostgreSQL, while
tidemark runs a checkpointed job from that database into a file sink (two
sources: a stateless one, and one with a declared primary key whose pipeline
runs the upsert operator on keyed state).  The harness kills tidemark with
SIGKILL, restarts it, and does it again:

  snapshot     while the initial snapshot runs (the job starts after the
               tables hold rows, and the snapshot is read in small chunks)
  timed        at a random moment (some right after start: during recovery)
  mid-tx       while the workload is inside a multi-statement transaction,
               or inside a large one the server already streams to tidemark
  failpoint    at a named point (TIDEMARK_FAILPOINTS, kill@N or kill%P):
               before/after the checkpoint's _metadata, between a sink's
               pre-commit and commit, in the middle of the file sink's
               commit...  Only names compiled into the binary are used.

At the end the workload stops, a fence transaction is committed, tidemark
starts one last time without failpoints, runs until the fence is in the
output of both sources, and stops with SIGTERM.  checker.py then says
whether the output holds every committed change exactly once, in commit
order, and replays to the database.

    python3 tests/crash/harness.py --kills 500 --seed 7

A seed fixes the workload and the kill schedule (kinds, delays, failpoints);
the interleaving with the daemon's threads is up to the machine, so a seed
makes a failure likely to recur, not certain.  See README.md.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import List, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
sys.path.insert(0, str(HERE))

import checker  # noqa: E402
from pgserver import PgServer  # noqa: E402
from tidemark import Tidemark, create_table, tidemark_bin  # noqa: E402
from workload import Generator  # noqa: E402

# The job: `shop` streams four tables through a stateless pipeline (one
# ordered stream, the big snapshot, large streamed transactions); `keyed`
# declares ledger's PRIMARY KEY, so its pipeline runs the upsert operator with
# keyed state on `parallelism` workers.  Both feed one sink, which aligns
# their barriers.
GROUPS = [checker.Group("shop", ("accounts", "items", "bulk", "fence")),
          checker.Group("keyed", ("ledger",), keyed=True)]
# What the shop source's log lines say about its snapshot.
SHOP_LOG = {
    "opened": r'msg="source opened" source=shop ',
    "no snapshot": r'msg="source opened" source=shop .* snapshot=no ',
    "reading bulk": r'msg="snapshot of table started" source=shop table=public\.bulk ',
    "read": r'msg="snapshot read" source=shop ',
    "acknowledged": r'msg="snapshot acknowledged" source=shop ',
}
# Two file sinks get every change, one per commit mode of the file sink's
# two-phase commit: {sink name: commit mode (= the checker's layout)}.
SINKS = {"out": "append", "parts": "rename"}
KEYED_COLUMNS = ("acct int, n int, amount numeric(14,4), memo text, ver bigint, "
                 "PRIMARY KEY (acct, n)")

# Every failpoint the harness knows (src/core/failpoint.h lists them).
FAILPOINTS = [
    "checkpoint.before_metadata",
    "checkpoint.after_metadata",
    "sink.after_precommit",
    "sink.before_commit",
    "sink.after_commit",
    "file.precommit.mid",
    "file.commit.mid",
    "file.commit.appended",
    "worker.after_snapshot",
]
# Relative weights of the kill kinds after the snapshot phase.
KIND_WEIGHTS = {"timed": 4, "mid-tx": 2, "mid-large-tx": 1, "failpoint": 4}


def compiled_failpoints(binary: Path) -> List[str]:
    """The failpoint names whose string is in the binary, i.e. that have a call site."""
    data = Path(binary).read_bytes()
    return [name for name in FAILPOINTS if b"\0" + name.encode() + b"\0" in data]


class HarnessError(AssertionError):
    pass


class CrashRun:
    """One harness run: a database, a workload, a daemon, `kills` crashes, a verdict.

    kafka_harness.KafkaCrashRun reuses the kills and the loop; it overrides
    the job, the snapshot kills, the fixed failpoints and the verdict.
    """

    # A daemon found dead when a kill comes is a failure (subclasses may note it).
    tolerate_exit = False

    def __init__(self, pg: PgServer, workdir: Path, seed: int, kills: int,
                 bulk_rows: int = 20000, snapshot_kills: int = 2, snapshot_chunk: int = 10,
                 checkpoint_interval: str = "300ms", deadline: float = 3600,
                 binary: Optional[Path] = None, out=print):
        self.pg = pg
        self.workdir = Path(workdir)
        self.seed = seed
        self.kills_wanted = kills
        self.bulk_rows = bulk_rows
        self.snapshot_kills = min(snapshot_kills, kills)
        self.snapshot_chunk = snapshot_chunk
        self.checkpoint_interval = checkpoint_interval
        self.deadline = time.monotonic() + deadline
        self.binary = Path(binary) if binary else tidemark_bin()
        self.out = out
        self.rng = random.Random(seed)
        self.db = f"crash_{seed % 1_000_000}"
        self.kinds: Counter = Counter()
        self.fired: Counter = Counter()
        self.kills = 0
        self.started = time.monotonic()
        self.available = compiled_failpoints(self.binary)
        # Seconds the bulk table takes to read at the least: 2000 chunk queries
        # (20 000 rows by 10) take 0.5 s to 1 s here.
        self.snapshot_est = 0.5 * (bulk_rows / snapshot_chunk) / 2000
        self.gen: Optional[Generator] = None
        self.tm: Optional[Tidemark] = None

    # -- setup -----------------------------------------------------------------------

    def source_tables(self) -> List[str]:
        """The job's two postgres-cdc sources (GROUPS), each with its own slot."""
        def source(group: checker.Group, **extra) -> dict:
            opts = {"connector": "postgres-cdc", "dsn": self.pg.dsn(self.db),
                    "slot": f"{self.db}_{group.source}",
                    "publication": f"{self.db}_{group.source}", "snapshot": "initial"}
            opts.update(extra)
            return opts

        shop, keyed = GROUPS
        return [
            create_table(shop.source, source(shop, tables=",".join(
                f"public.{t}" for t in shop.tables), snapshot_chunk_size=self.snapshot_chunk)),
            create_table(keyed.source, source(keyed, table="public.ledger"), KEYED_COLUMNS),
        ]

    def job_sql(self) -> str:
        shop, keyed = GROUPS
        statements = [
            *self.source_tables(),
        ]
        for name, mode in SINKS.items():
            statements.append(create_table(name, {
                "connector": "file", "path": str(self.sink_dir(name)), "schemas": False,
                "commit": mode}))
            statements += [f"INSERT INTO {name} SELECT * FROM {g.source};" for g in GROUPS]
        return "\n".join(statements + [
            f"SET checkpoint_interval = '{self.checkpoint_interval}';",
            "SET parallelism = 2;",
            "SET admin_address = '127.0.0.1:0';",
            "",
        ])

    def sink_dir(self, sink: str) -> Path:
        return self.workdir / sink

    def sink_holds(self, sink: str, table: str, pattern: "re.Pattern") -> bool:
        """Whether the sink's committed files for `table` match pattern (either layout)."""
        group = next(g for g in GROUPS if table in g.tables)
        topic = self.sink_dir(sink) / group.topic_file(table)
        files = [topic] if SINKS[sink] == "append" else \
            sorted(topic.with_suffix("").glob("part-*.jsonl"))
        return any(f.exists() and pattern.search(f.read_bytes()) for f in files)

    def setup(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pg.psql(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE); '
                     f'CREATE DATABASE "{self.db}";')
        self.gen = Generator(lambda: self.pg.connect(self.db), seed=self.seed,
                             bulk_rows=self.bulk_rows,
                             log_path=self.workdir / "workload.jsonl")
        self.gen.create_schema()
        self.gen.populate()
        self.tm = Tidemark(self.job_sql(), self.workdir / "tm", bin=self.binary)

    # -- helpers -------------------------------------------------------------------------

    def say(self, text: str) -> None:
        line = f"[{time.monotonic() - self.started:7.1f}s] {text}"
        self.out(line)

    def check_time(self, what: str) -> None:
        if time.monotonic() > self.deadline:
            raise HarnessError(f"the harness ran out of time {what} after {self.kills} kills")

    def check_generator(self) -> None:
        if self.gen.error is not None:
            raise HarnessError(f"the workload failed: {self.gen.error!r}") from self.gen.error
        if not self.gen.is_alive():
            raise HarnessError("the workload stopped early")

    def sleep(self, seconds: float) -> bool:
        """Sleeps while the daemon runs; False if it exited meanwhile."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if not self.tm.running():
                return False
            time.sleep(min(0.01, max(0.0, end - time.monotonic())))
        return True

    def logged(self, offset: int, *patterns: str) -> bool:
        text = self.tm.section(offset)
        return any(re.search(p, text) for p in patterns)

    def wait_log(self, offset: int, *patterns: str, timeout: float) -> bool:
        """Waits until this start's log matches one of the regexes; False after timeout or exit."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.logged(offset, *patterns):
                return True
            if not self.tm.running():
                return self.logged(offset, *patterns)
            time.sleep(0.01)
        return False

    def died_by_itself(self, offset: int, expect_failpoint: bool) -> None:
        """The daemon exited without us: fine after a failpoint's kill, a failure otherwise."""
        rc = self.tm.poll()
        text = self.tm.section(offset)
        if rc == -signal.SIGKILL and "failpoint fired" in text and expect_failpoint:
            return
        raise HarnessError(f"tidemark exited by itself with {rc} (start #{self.tm.starts})\n"
                           f"{self.tm.log_tail()}")

    def kill(self, kind: str, offset: int, detail: str = "") -> None:
        was_running = self.tm.running()
        if not was_running and not self.tolerate_exit:
            self.died_by_itself(offset, False)
        self.tm.kill9()
        self.kills += 1
        self.kinds[kind] += 1
        checkpoints = self.tm.section(offset).count('msg="completed" checkpoint=')
        self.say(f"kill {self.kills:3d}/{self.kills_wanted} {kind:<34} {detail}"
                 f"{'' if was_running else ' (had exited)'} checkpoints={checkpoints} "
                 f"tx={len(self.gen.log)}")

    def downtime(self) -> None:
        time.sleep(self.rng.uniform(0.0, 0.4))

    # -- the kill kinds ---------------------------------------------------------------------

    def kill_in_snapshot(self, first: bool) -> bool:
        """One kill while the shop source's snapshot runs; False if it had finished."""
        offset = self.tm.start_with()
        if not self.wait_log(offset, SHOP_LOG["opened"], timeout=30):
            self.died_by_itself(offset, False)
            raise HarnessError(f"tidemark did not open its source within 30s\n"
                               f"{self.tm.log_tail()}")
        # Mostly while the bulk table is read (the long part); sometimes once
        # every row is read but before the checkpoint that commits them (not
        # the first time: a kill that comes too late ends the snapshot phase).
        if first or self.rng.random() < 0.75:
            mark, delay = "reading bulk", self.rng.uniform(0.0, self.snapshot_est)
        else:
            mark, delay = "read", self.rng.uniform(0.0, 0.2)
        # A snapshot that an earlier start finished is not read again.
        self.wait_log(offset, SHOP_LOG[mark], SHOP_LOG["no snapshot"], SHOP_LOG["acknowledged"],
                      timeout=30)
        if not self.sleep(delay):
            self.died_by_itself(offset, False)
        text = self.tm.section(offset)
        done = bool(re.search(SHOP_LOG["acknowledged"], text) or
                    re.search(SHOP_LOG["no snapshot"], text))
        if done:
            kind = "timed (after the snapshot)"
        elif 'msg="completed" checkpoint=' in text:
            kind = "snapshot (committed, unmarked)"
        elif re.search(SHOP_LOG["read"], text):
            kind = "snapshot (read, not committed)"
        else:
            kind = "snapshot (reading)"
        self.kill(kind, offset, f"{delay:.2f}s after '{mark}'")
        return not done

    def kill_timed(self) -> None:
        # Some kills come right after the start, while recovery runs.
        early = self.rng.random() < 0.2
        delay = self.rng.uniform(0.0, 0.25) if early else self.rng.uniform(0.25, 3.0)
        offset = self.tm.start_with()
        if not self.sleep(delay):
            self.died_by_itself(offset, False)
        self.kill("timed (early)" if early else "timed", offset, f"after {delay:.2f}s")

    def kill_mid_tx(self, large: bool) -> None:
        offset = self.tm.start_with()
        if not self.sleep(self.rng.uniform(0.2, 1.5)):
            self.died_by_itself(offset, False)
        flag = self.gen.in_large_tx if large else self.gen.in_tx
        inside = flag.wait(timeout=20 if large else 5)
        if not self.tm.running():
            self.died_by_itself(offset, False)
        if inside:
            time.sleep(self.rng.uniform(0.0, 0.005))
        kind = ("mid-large-tx" if large else "mid-tx") if inside else "timed (no tx came)"
        self.kill(kind, offset)

    def failpoint_spec(self) -> str:
        name = self.rng.choice(self.available)
        if self.rng.random() < 0.6:
            return f"{name}=kill@{self.rng.randint(1, 6)}"
        return f"{name}=kill%{self.rng.choice([10, 25, 50])}"

    def kill_at_failpoint(self, spec: str, timeout: float = 8.0) -> None:
        fp_seed = self.rng.randrange(1 << 32)
        offset = self.tm.start_with(spec, fp_seed)
        end = time.monotonic() + timeout
        while self.tm.running() and time.monotonic() < end:
            time.sleep(0.01)
        if self.tm.running():
            self.kill("timed (failpoint idle)", offset, f"{spec} did not fire in {timeout:.0f}s")
            return
        self.died_by_itself(offset, True)
        self.tm.proc.wait()
        text = self.tm.section(offset)
        fired = re.search(r'msg="failpoint fired" name=(\S+) hit=(\d+)', text)
        name, hit = fired.group(1), fired.group(2)
        self.kills += 1
        self.fired[name] += 1
        self.kinds[f"failpoint {name}"] += 1
        checkpoints = text.count('msg="completed" checkpoint=')
        self.say(f"kill {self.kills:3d}/{self.kills_wanted} {'failpoint ' + name:<34} "
                 f"{spec} seed={fp_seed} (hit {hit}) checkpoints={checkpoints} "
                 f"tx={len(self.gen.log)}")

    # -- the run ------------------------------------------------------------------------------

    def banner(self) -> str:
        return (f"seed={self.seed} kills={self.kills_wanted} bulk_rows={self.bulk_rows} "
                f"binary={self.binary} workdir={self.workdir}")

    def run(self) -> checker.Report:
        self.say(self.banner())
        self.say(f"failpoints compiled in: {', '.join(self.available) or 'none'}")
        try:
            self.setup()
            self.gen.start()
            return self._run()
        finally:
            # Whatever went wrong, leave no daemon and no writer behind.
            if self.tm is not None:
                self.tm.kill9()
            if self.gen is not None and self.gen.is_alive():
                self.gen.stop_event.set()
                self.gen.join(30)

    def _run(self) -> checker.Report:
        try:
            for i in range(self.snapshot_kills):
                self.check_time("in the snapshot phase")
                in_snapshot = self.kill_in_snapshot(first=i == 0)
                self.downtime()
                if not in_snapshot:
                    break  # committed: later starts do not read the tables again
            # The first checkpoint after a snapshot commits it; crash right there once.
            if self.kills < self.kills_wanted and self.available:
                name = ("checkpoint.after_metadata" if "checkpoint.after_metadata" in
                        self.available else "file.commit.mid"
                        if "file.commit.mid" in self.available else self.available[0])
                self.kill_at_failpoint(f"{name}=kill@1")
                self.downtime()
            self.random_kills()
        finally:
            self.gen.finish()
        return self.finish()

    def random_kills(self) -> None:
        """Kills of random kinds (weighted) until there were kills_wanted."""
        kinds = [k for k in KIND_WEIGHTS if k != "failpoint" or self.available]
        weights = [KIND_WEIGHTS[k] for k in kinds]
        while self.kills < self.kills_wanted:
            self.check_time("in the kill loop")
            self.check_generator()
            kind = self.rng.choices(kinds, weights)[0]
            if kind == "timed":
                self.kill_timed()
            elif kind == "mid-tx":
                self.kill_mid_tx(large=False)
            elif kind == "mid-large-tx":
                self.kill_mid_tx(large=True)
            else:
                self.kill_at_failpoint(self.failpoint_spec())
            self.downtime()

    def stop_workload(self):
        """Ends the workload with a fence transaction (returned), whose rows mark the end."""
        token = f"fence-{self.seed}-{self.kills}"
        # One change per source, so that each source's stream carries the fence.
        fence = self.gen.fence(token, also=[g.tables[0] for g in GROUPS if "fence" not in g.tables])
        self.gen.close_log()
        self.say(f"workload stopped after {len(self.gen.log)} transactions "
                 f"({sum(len(t.changes) for t in self.gen.log)} changes, "
                 f"{self.gen.rolled_back} rolled back, "
                 f"{self.gen.savepoints_rolled_back} savepoints rolled back; "
                 f"{dict(self.gen.kinds)}); fence txId={fence.txid}")
        return fence

    def finish(self) -> checker.Report:
        fence = self.stop_workload()
        offset = self.tm.start_with()
        # Each fence change's row, by its unique ver: streamed, or read by a
        # snapshot if the last start had to take one again.
        fence_rows = [(sink, ch.table, re.compile(rb'"ver":%d[,}]' % ch.after["ver"]))
                      for ch in fence.changes for sink in SINKS]
        end = min(self.deadline, time.monotonic() + 300)
        while True:
            # A file being committed may show a partial epoch; the fence line
            # is whole once it is there, and the stop below commits the rest.
            if all(self.sink_holds(sink, table, row) for sink, table, row in fence_rows):
                break
            if not self.tm.running():
                self.died_by_itself(offset, False)
            if time.monotonic() > end:
                raise HarnessError(f"the fence (txId {fence.txid}) did not reach "
                                   f"every sink within the time left\n"
                                   f"{self.tm.log_tail()}")
            time.sleep(0.1)
        rc = self.tm.terminate(timeout=120)
        if rc != 0:
            raise HarnessError(f"tidemark exited with {rc} after SIGTERM\n{self.tm.log_tail()}")
        self.say(f"drained: the fence is in the output after {self.tm.starts} starts")
        final_state = self.gen.database_state()
        report = checker.merge({
            sink: checker.check_run(self.gen.log, self.sink_dir(sink), GROUPS, final_state, mode)
            for sink, mode in SINKS.items()})
        for table, rows in final_state.items():
            if rows != self.gen.model.rows[table]:
                report.add("harness error",
                           f"the workload's model of {table} differs from the database")
        log = self.tm.log_text()
        kinds = self.kinds.items()
        report.stats.update({
            "kills": f"{self.kills} ({', '.join(f'{k}: {v}' for k, v in sorted(kinds))})",
            "starts": self.tm.starts,
            "checkpoints completed": log.count('msg="completed" checkpoint='),
            "recoveries that discarded parts": log.count("discarded uncommitted output"),
            "snapshots restarted": log.count("dropping slot of an unfinished snapshot"),
            "seconds": f"{time.monotonic() - self.started:.0f}",
        })
        (self.workdir / "report.txt").write_text(report.text() + "\n")
        return report


def run_harness(pg: PgServer, workdir: Path, seed: int, kills: int, **kw) -> checker.Report:
    return CrashRun(pg, workdir, seed, kills, **kw).run()


def harness_main(argv, doc: str, label: str, tmp_prefix: str, servers, run) -> int:
    """The command line of a harness (this one's and kafka_harness.py's).

    servers(workdir) is a context manager that starts the servers and yields
    them; run(servers, workdir, seed, kills, **options) returns the Report.
    """
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=100, help="how many times to kill tidemark")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    ap.add_argument("--bulk-rows", type=int, default=20000,
                    help="rows of the bulk table, which the snapshot reads (default 20000)")
    ap.add_argument("--snapshot-kills", type=int, default=None,
                    help="kills during the initial snapshot (default: kills/25, at least 2)")
    ap.add_argument("--checkpoint-interval", default="300ms")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="keep everything here (default: a temporary directory, deleted "
                         "after a run that passed)")
    ap.add_argument("--deadline", type=float, default=6 * 3600, help="seconds (default 6h)")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1, 1 << 31)
    snapshot_kills = (args.snapshot_kills if args.snapshot_kills is not None
                      else max(2, args.kills // 25))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix=f"{tmp_prefix}{seed}-"))
    binary = tidemark_bin()
    if not binary.exists():
        print(f"no tidemark binary at {binary}; build it (ninja -C build) or set TIDEMARK_BIN",
              file=sys.stderr)
        return 2
    print(f"{label}: seed {seed}; reproduce with --seed {seed} --kills {args.kills}",
          flush=True)

    def terminated(signum, frame):
        raise SystemExit(f"stopped by signal {signum}")  # so the servers below are stopped

    signal.signal(signal.SIGTERM, terminated)
    with servers(workdir) as started:
        try:
            report = run(started, workdir, seed, args.kills, bulk_rows=args.bulk_rows,
                         snapshot_kills=snapshot_kills,
                         checkpoint_interval=args.checkpoint_interval,
                         deadline=args.deadline, out=lambda s: print(s, flush=True))
        except AssertionError as e:
            print(f"\nFAILED (seed {seed}): {e}\nkept: {workdir}", flush=True)
            return 1
    print("\n" + report.text())
    if report.ok:
        print(f"\nPASSED (seed {seed})")
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        return 0
    print(f"\nFAILED (seed {seed}); kept: {workdir}")
    return 1


def main(argv=None) -> int:
    return harness_main(
        argv, __doc__, "crash harness", "tidemark-crash-",
        lambda workdir: PgServer(extra_conf={"logical_decoding_work_mem": "64kB"}, fsync_off=True),
        lambda pg, *args, **kw: run_harness(pg, *args, **kw))


if __name__ == "__main__":
    sys.exit(main())
