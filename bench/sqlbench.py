"""The shared harness of bench/sql_agg.py and bench/sql_join.py: tidemark against Flink 2.3 SQL.

Both drivers write Debezium JSON change events to topics of a throwaway Kafka broker, then
run the same SQL on Flink (bench/flink, SqlRun.java: one JVM with a local MiniCluster) and on
tidemark (`tidemark run`), and measure each run from outside.  This module holds what they
share:

  * the broker (`start_kafka`), the topic writer (`TopicWriter`) and the Debezium envelope
    (`debezium_event`);
  * `Runner.flink`: runs a Flink SQL script (the measured INSERT, or with verify=True a
    SELECT whose changelog Flink folds into final rows); timed from exec to exit;
  * `Runner.tidemark`: runs a tidemark job until its output settles: (1) /metrics says the
    sources have emitted every event of their topics, (2) each source's consumer group has
    committed the end offset of every partition (without checkpoints a source commits what
    the sinks have flushed: the lag is zero), and (3) the output (the file's size, or the
    output topic's high watermarks) has not changed for --quiet seconds.  The run's wall
    time ends at the last change of the output; then the daemon gets SIGTERM;
  * for both, CPU is getrusage of the reaped child (ru_utime + ru_stime: every thread, from
    exec to exit); peak RSS is the process's VmHWM, sampled during the run (not ru_maxrss:
    Linux carries the forking driver's own high-water mark over exec into the child's
    ru_maxrss, so a child smaller than this Python process showed the driver's size); a
    directory (a state directory) can be sampled during the run for its peak and last size;
  * `fold_changelog`: a Debezium JSON changelog folded into its final rows;
  * the report helpers (machine, versions, medians with their spread).

Not a test: nothing asserts a time.  bench/README.md describes both drivers.
"""
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FLINK_DIR = REPO / "bench" / "flink"
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests" / "lib"))
from pg_drain import cpu_model  # noqa: E402
from kafkaserver import KafkaServer, find_java, kafka_version  # noqa: E402

RUN_DEADLINE = 1800
POLL = 0.1
FLINK_JAR = "flink-sql-agg-1.jar"


# -- the machine and the versions ---------------------------------------------

def machine() -> str:
    mem = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    return (f"{os.cpu_count()} cores, {cpu_model()}, {mem:.0f} GiB, Linux {os.uname().release}; "
            f"load average now {os.getloadavg()[0]:.1f}")


def pom_property(name: str) -> str:
    m = re.search(rf"<{re.escape(name)}>([^<]+)</", (FLINK_DIR / "pom.xml").read_text())
    return m.group(1).strip() if m else "?"


def java_version(java: str) -> str:
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    return out.splitlines()[0] if out else "?"


def default_tidemark() -> str:
    for d in ("build-lead", "build"):
        if (REPO / d / "tidemark").exists():
            return str(REPO / d / "tidemark")
    return str(REPO / "build" / "tidemark")


def versions(runner: "Runner", args) -> str:
    return (f"Flink {runner.flink_version} (pom: flink {pom_property('flink.version')}, "
            f"flink-connector-kafka {pom_property('flink.kafka.version')}), "
            f"{java_version(runner.java or 'java')}, JVM heap "
            f"{args.flink_heap or 'default (a quarter of memory)'}"
            + (f", Flink options {' '.join(args.flink_conf)}" if args.flink_conf else "")
            + f"; Kafka {kafka_version()} (one KRaft node, heap {args.heap}) on the same box; "
            f"tidemark {args.tidemark}")


# -- the data -----------------------------------------------------------------

SOURCE_HEAD = ('"source":{"version":"2.7.0.Final","connector":"postgresql","name":"shop",'
               '"db":"shop","schema":"public","table":"')


def debezium_event(table: str, op: str, before: str, after: str, ts: int, lsn: int) -> bytes:
    """A Debezium change event in the bare-payload envelope (schemas.enable=false), as the
    PostgreSQL connector writes it; `before` and `after` are JSON objects or "null"."""
    return (f'{{"before":{before},"after":{after},{SOURCE_HEAD}{table}","ts_ms":{ts},'
            f'"lsn":{lsn}}},"op":"{op}","ts_ms":{ts}}}').encode()


def cents(c: int) -> str:
    """A JSON number with two decimals, as Debezium writes a numeric(10,2) with
    decimal.handling.mode=double."""
    return f"{c // 100}.{c % 100:02d}"


class TopicWriter:
    """Writes messages to one topic with confluent-kafka, idempotent, acks=all."""

    def __init__(self, kafka: KafkaServer, topic: str):
        from confluent_kafka import Producer
        self.topic = topic
        self.errors = []
        self.bytes = 0
        self.count = 0
        self.t0 = time.monotonic()
        self.p = Producer(kafka.client_conf(**{
            "linger.ms": 20, "batch.size": 1 << 20, "queue.buffering.max.messages": 500000,
            "queue.buffering.max.kbytes": 1 << 20, "acks": "all", "enable.idempotence": True}))

    def _delivered(self, err, msg):
        if err is not None and len(self.errors) < 5:
            self.errors.append(str(err))

    def send(self, key: bytes, value: bytes) -> None:
        self.bytes += len(key) + len(value)
        self.count += 1
        while True:
            try:
                self.p.produce(self.topic, value, key, on_delivery=self._delivered)
                break
            except BufferError:
                self.p.poll(0.05)
        if self.count % 10000 == 0:
            self.p.poll(0)

    def close(self) -> float:
        """Waits for every delivery; returns the seconds since the writer was made."""
        left = self.p.flush(300)
        if left or self.errors:
            raise RuntimeError(f"producing {self.topic}: {left} messages undelivered; "
                               f"{self.errors}")
        return time.monotonic() - self.t0


def seeded(seed: int, name: str) -> random.Random:
    return random.Random(f"{seed}/{name}")


# -- folding a changelog ------------------------------------------------------

def fold_changelog(path: Path, row_key) -> Counter:
    """Folds the Debezium JSON lines of a sink's output into the multiset of its final rows:
    an insert (c, r) adds `after`, a delete takes `before` away, an update does both.
    `row_key(dict)` turns a row image into the hashable value counted (numbers are parsed as
    Decimal).  A retraction of a row that is not there is counted under the key
    ("unmatched retraction", row)."""
    rows = Counter()
    with open(path, "rb") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            ev = json.loads(line, parse_float=Decimal)
            ev = ev.get("payload", ev)
            op = ev.get("op")
            if op in ("u", "d") and ev.get("before") is not None:
                k = row_key(ev["before"])
                if rows[k] > 0:
                    rows[k] -= 1
                    if rows[k] == 0:
                        del rows[k]
                else:
                    rows[("unmatched retraction", k)] += 1
            if op in ("c", "r", "u") and ev.get("after") is not None:
                rows[row_key(ev["after"])] += 1
    return rows


def compare_rows(got: Counter, want: Counter) -> str:
    """'ok', or MISMATCH with counts and a few differing rows."""
    if got == want:
        return "ok"
    missing = want - got
    extra = got - want
    return (f"MISMATCH: {sum(got.values()):,} rows, expected {sum(want.values()):,}; "
            f"{sum(missing.values()):,} missing (e.g. {list(missing)[:3]}), "
            f"{sum(extra.values()):,} unexpected (e.g. {list(extra)[:3]})")


# -- processes ----------------------------------------------------------------

def wait4_child(proc: subprocess.Popen, timeout: float):
    """Reaps `proc` and returns its rusage (ru_utime, ru_stime, ru_maxrss in KiB)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return ru
        if time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(proc.args, timeout)
        time.sleep(0.02)


def dir_bytes(path: Path) -> int:
    """The bytes of the regular files under `path` (0 when it does not exist); files that
    vanish while it walks are skipped."""
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def vm_hwm_kib(pid: int) -> int:
    """The peak resident set of a live process since its exec (VmHWM), in KiB; 0 if gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class DirSampler:
    """Samples a directory's size every `interval` seconds on a thread: the peak and the
    last sample (a state directory: RocksDB's SST files, manifests and logs); with `pid` set,
    also that process's VmHWM (the peak RSS, which only grows: the last sample before the
    exit is within `interval` of the true peak)."""

    def __init__(self, path: Path, interval: float = 0.5):
        self.path = path
        self.interval = interval
        self.peak = 0
        self.last = 0
        self.pid = None
        self.hwm_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def sample(self) -> int:
        if self.pid is not None:
            self.hwm_kib = max(self.hwm_kib, vm_hwm_kib(self.pid))
        self.last = dir_bytes(self.path)
        self.peak = max(self.peak, self.last)
        return self.last

    def _run(self):
        while not self._stop.wait(self.interval):
            self.sample()

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class RunFailed(RuntimeError):
    pass


class Runner:
    """Runs Flink and tidemark jobs against one broker and measures them."""

    def __init__(self, args, kafka: KafkaServer, tmp: Path):
        self.args = args
        self.kafka = kafka
        self.tmp = tmp
        self.procs = []
        self.java = find_java()
        self.classpath = None
        self.flink_version = "?"

    def cleanup(self) -> None:
        for proc in list(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def broker_cpu(self) -> float:
        try:
            with open(f"/proc/{self.kafka.pid}/stat") as f:
                st = f.read().rsplit(")", 1)[1].split()
            return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError):
            return 0.0

    def run_dir(self, run: str) -> Path:
        d = self.tmp / run
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        return d

    def drop_topic(self, topic: str) -> None:
        admin = self.kafka.admin()
        for f in admin.delete_topics([topic], operation_timeout=30).values():
            try:
                f.result(60)
            except Exception as e:
                print(f"warning: deleting {topic}: {e}", file=sys.stderr)

    def out_topic(self, run: str):
        """A fresh output topic for a run with --sink kafka, else None."""
        if self.args.sink != "kafka":
            return None
        topic = f"out-{run}"
        self.kafka.create_topic(topic, partitions=self.args.partitions)
        return topic

    # -- Flink --------------------------------------------------------------

    def build_flink(self) -> None:
        """Compiles bench/flink and resolves its classpath (tests/lib/maven.py)."""
        from maven import module_classpath
        self.classpath = module_classpath(FLINK_DIR, FLINK_JAR,
                                          log=lambda m: print(m, flush=True))

    def flink_cmd(self, script: Path, parallelism: int, conf: list, verify: bool) -> list:
        cmd = [self.java]
        if self.args.flink_heap:
            cmd.append(f"-Xmx{self.args.flink_heap}")
        cmd += ["-cp", self.classpath, "io.tidemark.bench.SqlRun", "--script", str(script),
                "--parallelism", str(parallelism)]
        for kv in list(self.args.flink_conf) + list(conf):
            cmd += ["--conf", kv]
        if verify:
            cmd.append("--verify")
        return cmd

    def flink_verify(self, script_text: str, run: str) -> list:
        """Runs a script whose last statement is a SELECT; returns its final rows (lists of
        strings or None), as Flink folded them."""
        d = self.run_dir(run)
        script = d / "flink.sql"
        script.write_text(script_text)
        log = self.tmp / f"{run}.log"
        with open(log, "wb") as err:
            r = subprocess.run(self.flink_cmd(script, 1, [], True), stdout=subprocess.PIPE,
                               stderr=err, timeout=RUN_DEADLINE)
        if r.returncode != 0:
            raise RunFailed(f"Flink's check ({run}) failed ({r.returncode}); see {log}:\n"
                            + log.read_text(errors="replace")[-3000:])
        return json.loads(r.stdout.decode().strip().splitlines()[-1])["verify"]

    def flink(self, script_text: str, parallelism: int, run: str, conf: list = (),
              state_dir: Path = None, out_topic: str = None) -> dict:
        """Runs a script whose last statement is the measured INSERT.  With `state_dir`,
        samples that directory's size during the run (Flink deletes it at the end)."""
        d = self.run_dir(run)
        script = d / "flink.sql"
        script.write_text(script_text)
        log = self.tmp / f"{run}.log"
        cmd = self.flink_cmd(script, parallelism, conf, False)
        broker0 = self.broker_cpu()
        sampler = DirSampler(state_dir if state_dir else d / "none")
        t0 = time.monotonic()
        with sampler, open(log, "wb") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
            sampler.pid = proc.pid
            self.procs.append(proc)
            stdout = proc.stdout.read()  # until the JVM exits and closes it
            ru = wait4_child(proc, RUN_DEADLINE)
        wall = time.monotonic() - t0
        self.procs.remove(proc)
        if proc.returncode != 0:
            raise RunFailed(f"Flink ({run}) exited {proc.returncode}; see {log}:\n"
                            + log.read_text(errors="replace")[-3000:])
        inner = json.loads(stdout.decode().strip().splitlines()[-1])
        self.flink_version = inner.get("flink", "?")
        out_records = self.topic_records(out_topic) if out_topic else None
        if out_topic:
            self.drop_topic(out_topic)
        return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime,
                "rss_kib": sampler.hwm_kib or ru.ru_maxrss, "job_wall": inner["job_wall_s"], "job_cpu": inner["job_cpu_s"],
                "plan_cpu": inner["plan_cpu_s"] + inner["submit_cpu_s"],
                "broker_cpu": self.broker_cpu() - broker0,
                "state_peak": sampler.peak if state_dir else None,
                "state_end": sampler.last if state_dir else None,
                "out_records": out_records}

    # -- tidemark -----------------------------------------------------------

    def tidemark_explain(self, job_text: str) -> tuple:
        """(True, plan) if this tidemark plans the job, else (False, its error)."""
        d = self.tmp / "explain"
        d.mkdir(exist_ok=True)
        job = d / "job.sql"
        job.write_text(job_text)
        try:
            r = subprocess.run([self.args.tidemark, "explain", str(job)], capture_output=True,
                               text=True, timeout=60)
        except OSError as e:
            return False, f"cannot run it: {e}"
        if r.returncode != 0:
            lines = (r.stderr.strip() or r.stdout.strip() or "?").splitlines()
            return False, lines[-1]
        return True, r.stdout

    @staticmethod
    def metrics(admin: str) -> str:
        try:
            with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as resp:
                return resp.read().decode()
        except OSError:
            return ""

    @staticmethod
    def metric(text: str, name: str, labels: str = None) -> int:
        """The sum of a metric's samples (with `labels`, only that sample); -1 if absent."""
        pat = (rf'^{re.escape(name)}\{{{re.escape(labels)}\}} (\d+)' if labels
               else rf'^{re.escape(name)}(?:\{{[^}}]*\}})? (\d+)')
        vals = [int(v) for v in re.findall(pat, text, re.M)]
        return sum(vals) if vals else -1

    def group_lag(self, consumer, topic: str, ends: list) -> int:
        from confluent_kafka import TopicPartition
        tps = [TopicPartition(topic, p) for p in range(len(ends))]
        try:
            committed = consumer.committed(tps, timeout=5)
        except Exception:
            return -1
        return sum(e - max(tp.offset, 0) for tp, e in zip(committed, ends))

    def end_offsets(self, topic: str) -> list:
        from confluent_kafka import Consumer, TopicPartition
        c = Consumer(self.kafka.client_conf(**{"group.id": f"bench-ends-{os.getpid()}",
                                                 "enable.auto.commit": False}))
        try:
            n = len(c.list_topics(topic, timeout=10).topics[topic].partitions)
            return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    for p in range(n)]
        finally:
            c.close()

    def topic_records(self, topic: str) -> int:
        return sum(self.end_offsets(topic))

    def tidemark(self, job_text: str, run: str, sources: list, events: int,
                 out_topic: str = None) -> dict:
        """Runs a job until its output settles (see the module docstring).  `sources` lists
        (source table, topic, consumer group) of the job; `events` is the number of events
        in all their topics.  The state directory's size is sampled during the run, once more
        at the end, before SIGTERM (its memtables, not on disk: tidemark writes no WAL, are read
        from /metrics then), and after the daemon has exited."""
        from confluent_kafka import Consumer, TopicPartition

        a = self.args
        run_dir = self.run_dir(run)
        job = run_dir / "job.sql"
        job.write_text(job_text)
        ends = {topic: self.end_offsets(topic) for _, topic, _ in sources}
        out_file = run_dir / "out.jsonl"
        log_path = run_dir / "tidemark.log"
        state = run_dir / "st"
        cmd = [a.tidemark, "run", str(job), "--state-dir", str(state)]
        if a.perf:
            # A profile, not a measurement: perf's own CPU lands in the rusage.
            cmd = ["perf", "record", "-g", "-q", "-o", f"{a.perf}.{run}", "--"] + cmd
        groups = [(Consumer(self.kafka.client_conf(**{"group.id": g,
                                                        "enable.auto.commit": False})), topic)
                  for _, topic, g in sources]
        hw = None
        if out_topic:
            hw = Consumer(self.kafka.client_conf(**{"group.id": f"bench-hw-{run}",
                                                      "enable.auto.commit": False}))
        broker0 = self.broker_cpu()
        sampler = DirSampler(state)
        t0 = time.monotonic()
        with open(out_file, "wb") as out, open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=out, stderr=log)
        sampler.pid = proc.pid  # with --perf, perf's: a profile is not a measurement
        self.procs.append(proc)
        admin = None
        last_size = -1
        last_change = t0
        read_all = lag_zero = False
        deadline = t0 + RUN_DEADLINE
        memtables = -1
        try:
            with sampler:
                while True:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        why = re.findall(r'msg="job failed" error="(.*)"',
                                         log_path.read_text(errors="replace"))
                        raise RunFailed(f"tidemark ({run}) "
                                        + ("stopped by itself" if proc.poll() is not None
                                           else f"did not finish in {RUN_DEADLINE}s")
                                        + (f": {why[-1]}" if why else "")
                                        + f" (log: {log_path})")
                    if admin is None:
                        m = re.search(r'msg="listening" address=(\S+)',
                                      log_path.read_text(errors="replace"))
                        if m:
                            admin = m.group(1)
                    now = time.monotonic()
                    size = (sum(hw.get_watermark_offsets(TopicPartition(out_topic, p),
                                                         timeout=10, cached=False)[1]
                                for p in range(a.partitions))
                            if hw else out_file.stat().st_size)
                    if size != last_size:
                        last_size, last_change = size, now
                    if admin and not read_all:
                        text = self.metrics(admin)
                        read_all = sum(max(self.metric(text, "tidemark_source_events_total",
                                                       f'source="{s}"'), 0)
                                       for s, _, _ in sources) >= events
                    if read_all and not lag_zero:
                        lag_zero = all(self.group_lag(c, topic, ends[topic]) == 0
                                       for c, topic in groups)
                    if read_all and lag_zero and now - last_change >= a.quiet:
                        break
                    time.sleep(POLL)
                wall = last_change - t0
                sampler.sample()
                if admin:
                    memtables = self.metric(self.metrics(admin), "tidemark_state_memtable_bytes")
        finally:
            for c, _ in groups:
                c.close()
            if hw is not None:
                hw.close()
        proc.send_signal(signal.SIGTERM)
        ru = wait4_child(proc, 120)
        self.procs.remove(proc)
        broker = self.broker_cpu() - broker0
        # RocksDB flushes its memtables when the daemon closes its stores (tidemark writes no
        # WAL, so a clean close must): the directory now holds the whole state in SST files.
        state_after = dir_bytes(state)
        if proc.returncode != 0:
            print(f"warning: tidemark ({run}) exited {proc.returncode} after SIGTERM; "
                  f"log: {log_path}", file=sys.stderr)
        if out_topic:
            self.drop_topic(out_topic)
        return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime,
                "rss_kib": sampler.hwm_kib or ru.ru_maxrss, "broker_cpu": broker, "out_file": out_file, "out_size": last_size,
                "state_peak": sampler.peak, "state_end": sampler.last,
                "memtables": memtables, "state_after": state_after, "state_dir": state}


# -- reporting ----------------------------------------------------------------

def med(xs):
    return statistics.median(xs) if xs else None


def med_spread(xs: list, fmt: str) -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    m = statistics.median(xs)
    if len(xs) == 1:
        return format(m, fmt)
    return f"{format(m, fmt)} ({format(min(xs), fmt)}–{format(max(xs), fmt)})"


def parse_list(text: str) -> list:
    out = []
    for part in text.split(","):
        out.append(parse_count(part))
    return out


def parse_count(text: str) -> int:
    part = text.strip().lower().replace("_", "")
    mult = 1
    if part.endswith("k"):
        part, mult = part[:-1], 1000
    elif part.endswith("m"):
        part, mult = part[:-1], 1_000_000
    return int(float(part) * mult)


# -- the driver's frame -------------------------------------------------------

def add_common_args(ap) -> None:
    """The options both drivers take."""
    ap.add_argument("--rounds", type=int, default=3,
                    help="measurements per configuration, rotating the order; medians reported")
    ap.add_argument("--parallelism", default="1,2", help="parallelisms to run (default 1,2)")
    ap.add_argument("--partitions", type=int, default=2,
                    help="partitions of every topic (default 2, so that 2 Flink source "
                         "subtasks both read)")
    ap.add_argument("--sink", choices=["null", "kafka"], default="kafka",
                    help="kafka (default, the issue's setup): both write their changelog to a "
                         "topic in debezium-json; null: Flink's blackhole sink, tidemark's stdout "
                         "sink into a file (tidemark still encodes every change, Flink nothing)")
    ap.add_argument("--tidemark", default=default_tidemark())
    ap.add_argument("--flink-heap", metavar="SIZE",
                    help="-Xmx of Flink's JVM (default: the JVM's own, a quarter of memory)")
    ap.add_argument("--flink-conf", action="append", default=[], metavar="KEY=VALUE",
                    help="a Flink option for every Flink run (repeatable), e.g. "
                         "table.exec.mini-batch.enabled=true")
    ap.add_argument("--only", choices=["flink", "tidemark"], help="measure one side only")
    ap.add_argument("--quiet", type=float, default=1.0,
                    help="seconds without output change that end a tidemark run once its input "
                         "is read (default 1.0; the stdout and Kafka sinks flush every 200 ms)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--perf", metavar="PREFIX",
                    help="record each tidemark run with perf record -g into PREFIX.<run> "
                         "(its figures then include perf's overhead)")
    ap.add_argument("--heap", default="1g", help="the broker's heap (default 1g)")
    ap.add_argument("--keep", metavar="DIR", help="keep logs and job files in DIR")


def run_main(args, prefix: str, body) -> int:
    """Starts the broker and a Runner, calls body(runner, kafka), and cleans up whatever
    happens: the child processes, the broker, the temporary directory (its logs and job
    files copied to --keep first)."""
    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    kafka = runner = None
    try:
        kafka = KafkaServer(heap=args.heap, fast_start=False,
                            extra_conf={"log.segment.delete.delay.ms": "1000",
                                        "broker.heartbeat.interval.ms": "2000",
                                        "broker.session.timeout.ms": "9000"})
        kafka.start()
        runner = Runner(args, kafka, tmp)
        return body(runner, kafka)
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    except Exception:
        if kafka is not None and kafka.basedir is not None:
            print(f"--- the broker's log (tail) ---\n{kafka.log_tail(3000)}", file=sys.stderr)
        raise
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if runner is not None:
            runner.cleanup()
        if args.keep:
            keep = Path(args.keep)
            keep.mkdir(parents=True, exist_ok=True)
            for f in tmp.glob("*.log"):
                shutil.copy(f, keep / f.name)
            for f in tmp.glob("*/job.sql"):
                shutil.copy(f, keep / f"{f.parent.name}.job.sql")
            for f in tmp.glob("*/flink.sql"):
                shutil.copy(f, keep / f"{f.parent.name}.flink.sql")
            for f in tmp.glob("*/tidemark.log"):
                shutil.copy(f, keep / f"{f.parent.name}.tidemark.log")
        if kafka is not None:
            kafka.stop()
        shutil.rmtree(tmp, ignore_errors=True)
