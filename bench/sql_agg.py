#!/usr/bin/python3
"""SQL GROUP BY benchmark: tidemark against Apache Flink 2.3 SQL, the same query on the same topic.

One throwaway single-node Kafka broker (KRaft, normal JIT).  For each data set (by
default 10,000 and 1,000,000 distinct group keys) this writes --events Debezium JSON
change events of rows (id, customer_id, amount, status) to a topic: 60 % inserts, 20 %
updates (with before images), 20 % deletes, in the bare-payload envelope (Kafka
Connect's schemas.enable=false, amount as a JSON number with two decimals, as Debezium
writes it with decimal.handling.mode=double), which both tidemark's Kafka source and
Flink's `debezium-json` format read.  Then both run

    SELECT customer_id, count(*), sum(amount), min(amount), max(amount), avg(amount)
    FROM orders GROUP BY customer_id

over the whole topic, once per --parallelism, for --rounds rounds with a rotating
order:

  * Flink 2.3: bench/flink (SqlAgg.java), one JVM running a local MiniCluster; Kafka
    source with 'format' = 'debezium-json', earliest offsets, bounded at the latest
    offsets so that the job ends after the data; blackhole sink (--sink kafka: a
    Kafka topic in debezium-json).  Timed from exec to exit.
  * tidemark: `tidemark run` of a job with a Kafka source (Debezium JSON), the same
    GROUP BY, and the stdout sink into a file (--sink kafka: the Kafka sink).  The
    input is bounded but the daemon does not stop by itself, so the run is over when
    (1) /metrics says the source has emitted every event of the topic, (2) the
    source's consumer group has committed the end offset of every partition (without
    checkpoints it commits what the sinks have flushed: the lag is zero), and (3) the
    output (the file's size, or the output topic's high watermark) has not changed for
    --quiet seconds.  The run's wall time ends at the last change of the output, not
    when the quiet period ends; then the daemon gets SIGTERM.

For both, CPU is getrusage of the reaped child (ru_utime + ru_stime: every thread,
from exec to exit, start-up, JIT, GC and shutdown included) and peak RSS its
ru_maxrss.  Flink also reports, from inside its JVM, the CPU and wall time of the job
alone (from submission to the end, without the JVM start and the planning).

The tidemark half needs the SQL layer (GROUP BY).  When `tidemark explain` rejects the
job, the benchmark says so ("tidemark: SQL aggregation not available in this build")
and measures Flink alone.

Before the rounds, each data set is checked once through Flink (unmeasured: it also
warms the page cache and the broker): a global count(*), sum(amount),
count(DISTINCT customer_id) over the changelog must equal what the generator left
live.  The first tidemark run of each data set has its output folded into final rows
and checked the same way.

This is a benchmark, not a test: nothing asserts a time.  bench/README.md describes it.

    bench/sql_agg.py [--events 1000000] [--keys 10000,1000000] [--rounds 3]
                     [--parallelism 1,2] [--partitions 2] [--sink null|kafka]
                     [--flink-heap SIZE] [--flink-conf KEY=VALUE ...] [--keep DIR]
"""
import argparse
import json
import os
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FLINK_DIR = REPO / "bench" / "flink"
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests" / "lib"))
from pg_drain import cpu_model  # noqa: E402
from kafkaserver import KafkaServer, find_java, kafka_version  # noqa: E402

QUERY = ("SELECT customer_id, count(*) AS cnt, sum(amount) AS total, min(amount) AS lo, "
         "max(amount) AS hi, avg(amount) AS mean FROM orders GROUP BY customer_id")
RUN_DEADLINE = 1800
POLL = 0.1
# --tidemark-passthrough: the harness check that runs before the SQL layer exists.
PASSTHROUGH = "SELECT * FROM orders"
STATUSES = ["new", "paid", "shipped", "delivered", "returned"]


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


# -- the data -----------------------------------------------------------------

class DataSet:
    """Writes the change events of one data set to a topic and remembers what is live.

    The operations follow the pattern insert, insert, update, insert, delete: exactly
    60/20/20 of --events, and there is always a live row to update or delete.  An
    update changes amount and status, and one in ten also moves the row to another
    customer (so a group loses a row and another gains it); its event carries the
    before image, as Debezium's does with REPLICA IDENTITY FULL.  Message keys are
    Debezium keys ({"id": N}), so every change of a row lands on one partition, in
    order."""

    PATTERN = "ccucd"

    def __init__(self, events: int, keys: int, seed: int):
        self.events = events
        self.keys = keys
        self.seed = seed
        self.counts = {"c": 0, "u": 0, "d": 0}
        self.live_rows = 0
        self.live_sum_cents = 0
        self.live_groups = 0
        self.bytes = 0

    def produce(self, kafka: KafkaServer, topic: str) -> float:
        from confluent_kafka import Producer

        rnd = random.Random(self.seed)
        p = Producer(kafka.client_conf(**{
            "linger.ms": 20, "batch.size": 1 << 20, "queue.buffering.max.messages": 500000,
            "queue.buffering.max.kbytes": 1 << 20, "acks": "all", "enable.idempotence": True}))
        errors = []

        def delivered(err, msg):
            if err is not None and len(errors) < 5:
                errors.append(str(err))

        cust = {}    # id -> customer_id
        amt = {}     # id -> cents
        stat = {}    # id -> status index
        live = []    # ids, for picking one at random
        where = {}   # id -> index in live
        next_id = 1
        ts = 1_700_000_000_000
        src_head = ('"source":{"version":"2.7.0.Final","connector":"postgresql","name":"shop",'
                    '"db":"shop","schema":"public","table":"orders","ts_ms":')

        def row(i):
            c = amt[i]
            return (f'{{"id":{i},"customer_id":{cust[i]},"amount":{c // 100}.{c % 100:02d},'
                    f'"status":"{STATUSES[stat[i]]}"}}')

        t0 = time.monotonic()
        for n in range(self.events):
            op = self.PATTERN[n % 5]
            ts += 1
            if op == "c":
                i = next_id
                next_id += 1
                cust[i] = rnd.randrange(self.keys) + 1
                amt[i] = rnd.randrange(100, 100_000)
                stat[i] = 0
                where[i] = len(live)
                live.append(i)
                before, after = "null", row(i)
            elif op == "u":
                i = live[rnd.randrange(len(live))]
                before = row(i)
                amt[i] = rnd.randrange(100, 100_000)
                stat[i] = rnd.randrange(1, len(STATUSES))
                if rnd.random() < 0.1:
                    cust[i] = rnd.randrange(self.keys) + 1
                after = row(i)
            else:
                k = rnd.randrange(len(live))
                i = live[k]
                before, after = row(i), "null"
                last = live.pop()
                if last != i:
                    live[k] = last
                    where[last] = k
                del where[i], cust[i], amt[i], stat[i]
            self.counts[op] += 1
            value = (f'{{"before":{before},"after":{after},{src_head}{ts},"lsn":{n + 1}}},'
                     f'"op":"{op}","ts_ms":{ts}}}').encode()
            key = f'{{"id":{i}}}'.encode()
            self.bytes += len(value) + len(key)
            while True:
                try:
                    p.produce(topic, value, key, on_delivery=delivered)
                    break
                except BufferError:
                    p.poll(0.05)
            if n % 10000 == 0:
                p.poll(0)
        left = p.flush(300)
        seconds = time.monotonic() - t0
        if left or errors:
            raise RuntimeError(f"producing {topic}: {left} messages undelivered; {errors}")
        self.live_rows = len(live)
        self.live_sum_cents = sum(amt.values())
        self.live_groups = len(set(cust.values()))
        return seconds

    @property
    def live_sum(self) -> Decimal:
        return Decimal(self.live_sum_cents) / 100

    def check(self, rows: int, total: Decimal, groups: int) -> str:
        want = (self.live_rows, self.live_sum, self.live_groups)
        got = (rows, total, groups)
        return "ok" if got == want else f"MISMATCH: got {got}, expected {want}"


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


class RunFailed(RuntimeError):
    pass


class Bench:
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

    # -- Flink --------------------------------------------------------------

    def build_flink(self) -> None:
        """Compiles bench/flink and resolves its classpath (tests/lib/maven.py)."""
        from maven import module_classpath
        self.classpath = module_classpath(FLINK_DIR, "flink-sql-agg-1.jar",
                                          log=lambda m: print(m, flush=True))

    def flink_cmd(self, topic: str, parallelism: int, verify: bool = False,
                  out_topic: str = None) -> list:
        a = self.args
        cmd = [self.java]
        if a.flink_heap:
            cmd.append(f"-Xmx{a.flink_heap}")
        cmd += ["-cp", self.classpath, "io.tidemark.bench.SqlAgg",
                "--bootstrap", self.kafka.bootstrap, "--topic", topic,
                "--parallelism", str(parallelism),
                "--group-id", f"flink-{topic}-{time.monotonic_ns()}"]
        if verify:
            cmd.append("--verify")
        elif a.sink == "kafka":
            cmd += ["--sink", "kafka", "--out-topic", out_topic]
        for kv in a.flink_conf:
            cmd += ["--conf", kv]
        return cmd

    def flink_verify(self, topic: str, ds: DataSet) -> str:
        log = self.tmp / f"flink-verify-{topic}.log"
        t0 = time.monotonic()
        with open(log, "wb") as err:
            r = subprocess.run(self.flink_cmd(topic, 1, verify=True), stdout=subprocess.PIPE,
                               stderr=err, timeout=RUN_DEADLINE)
        if r.returncode != 0:
            raise RuntimeError(f"Flink's check of {topic} failed ({r.returncode}); see {log}:\n"
                               + log.read_text(errors="replace")[-3000:])
        v = json.loads(r.stdout.decode().strip().splitlines()[-1])["verify"]
        res = ds.check(int(v["rows"]), Decimal(v["sum"] or "0"), int(v["groups"]))
        return f"{res} ({v['rows']} live rows in {v['groups']} groups, {time.monotonic() - t0:.1f}s)"

    def flink(self, topic: str, parallelism: int, run: str) -> dict:
        out_topic = None
        if self.args.sink == "kafka":
            out_topic = f"{topic}-out-{run}"
            self.kafka.create_topic(out_topic, partitions=self.args.partitions)
        log = self.tmp / f"{run}.log"
        cmd = self.flink_cmd(topic, parallelism, out_topic=out_topic)
        broker0 = self.broker_cpu()
        t0 = time.monotonic()
        with open(log, "wb") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
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
        if out_topic:
            self.drop_topic(out_topic)
        return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss_kib": ru.ru_maxrss,
                "job_wall": inner["job_wall_s"], "job_cpu": inner["job_cpu_s"],
                "plan_cpu": inner["plan_cpu_s"] + inner["submit_cpu_s"],
                "broker_cpu": self.broker_cpu() - broker0}

    # -- tidemark -----------------------------------------------------------

    def job_text(self, topic: str, parallelism: int, out_topic: str = None) -> str:
        k = self.kafka
        if out_topic:
            sink = (f"connector = 'kafka', bootstrap_servers = '{k.bootstrap}', "
                    f"topic = '{out_topic}', format = 'debezium-json', schemas = false, "
                    f"create_topics = false, delivery = 'at-least-once'")
        else:
            sink = "connector = 'stdout', schemas = false"
        return f"""-- bench/sql_agg.py: the GROUP BY of the Flink job (bench/flink/SqlAgg.java).
CREATE TABLE orders (id bigint, customer_id bigint, amount numeric(10,2), status text)
WITH (connector = 'kafka', bootstrap_servers = '{k.bootstrap}', topic = '{topic}',
      format = 'debezium-json', startup = 'earliest', on_error = 'fail',
      decimal_handling = 'double', group_id = 'tidemark-{topic}-{time.monotonic_ns()}');
CREATE TABLE out_agg () WITH ({sink});
INSERT INTO out_agg {PASSTHROUGH if self.args.tidemark_passthrough else QUERY};
SET parallelism = {parallelism};
SET admin_address = '127.0.0.1:0';
"""

    def tidemark_explain(self, topic: str) -> tuple:
        """(True, plan) if this tidemark plans the GROUP BY job, else (False, its error)."""
        d = self.tmp / "explain"
        d.mkdir(exist_ok=True)
        job = d / "job.sql"
        job.write_text(self.job_text(topic, 1))
        try:
            r = subprocess.run([self.args.tidemark, "explain", str(job)], capture_output=True,
                               text=True, timeout=60)
        except OSError as e:
            return False, f"cannot run it: {e}"
        if r.returncode != 0:
            lines = (r.stderr.strip() or r.stdout.strip() or "?").splitlines()
            return False, lines[-1]
        # A build may accept the job and still plan no aggregation (one built while the
        # SQL layer was being merged explained this GROUP BY as `project: SELECT *
        # (every column, passthrough)`); only a plan with a group-by step counts.
        if not self.args.tidemark_passthrough and \
                not re.search(r"^\s+group by ", r.stdout, re.M):
            plan = [ln.strip() for ln in r.stdout.splitlines() if ln.startswith("    ")]
            return False, ("explain accepts the job but its plan has no group-by step: "
                           + " / ".join(plan[:3]))
        return True, r.stdout

    def metrics_events(self, admin: str) -> int:
        try:
            with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as resp:
                text = resp.read().decode()
        except OSError:
            return -1
        m = re.search(r'^tidemark_source_events_total\{source="orders"\} (\d+)', text, re.M)
        return int(m.group(1)) if m else -1

    def group_lag(self, consumer, group_topic: str, ends: list) -> int:
        from confluent_kafka import TopicPartition
        tps = [TopicPartition(group_topic, p) for p in range(len(ends))]
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

    def tidemark(self, topic: str, events: int, parallelism: int, run: str,
                 ds: DataSet = None) -> dict:
        """Runs the job until the output settles (see the module docstring); with `ds`,
        also checks the output's final rows against the data set."""
        from confluent_kafka import Consumer, TopicPartition

        a = self.args
        run_dir = self.tmp / run
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir()
        out_topic = None
        if a.sink == "kafka":
            out_topic = f"{topic}-out-{run}"
            self.kafka.create_topic(out_topic, partitions=a.partitions)
        text = self.job_text(topic, parallelism, out_topic)
        group = re.search(r"group_id = '([^']+)'", text).group(1)
        job = run_dir / "job.sql"
        job.write_text(text)
        ends = self.end_offsets(topic)
        out_file = run_dir / "out.jsonl"
        log_path = run_dir / "tidemark.log"
        cmd = [a.tidemark, "run", str(job), "--state-dir", str(run_dir / "st")]
        if a.perf:
            # A profile, not a measurement: perf's own CPU lands in the rusage.
            cmd = ["perf", "record", "-g", "-q", "-o", f"{a.perf}.{run}", "--"] + cmd
        gc = Consumer(self.kafka.client_conf(**{"group.id": group, "enable.auto.commit": False}))
        hw = None
        if out_topic:
            hw = Consumer(self.kafka.client_conf(**{"group.id": f"bench-hw-{run}",
                                                      "enable.auto.commit": False}))
        broker0 = self.broker_cpu()
        t0 = time.monotonic()
        with open(out_file, "wb") as out, open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=out, stderr=log)
        self.procs.append(proc)
        admin = None
        last_size = -1
        last_change = t0
        read_all = lag_zero = False
        deadline = t0 + RUN_DEADLINE
        try:
            while True:
                if proc.poll() is not None or time.monotonic() > deadline:
                    why = re.findall(r'msg="job failed" error="(.*)"',
                                     log_path.read_text(errors="replace"))
                    raise RunFailed(f"tidemark ({run}) "
                                    + ("stopped by itself" if proc.poll() is not None
                                       else f"did not finish in {RUN_DEADLINE}s")
                                    + (f": {why[-1]}" if why else "") + f" (log: {log_path})")
                if admin is None:
                    m = re.search(r'msg="listening" address=(\S+)',
                                  log_path.read_text(errors="replace"))
                    if m:
                        admin = m.group(1)
                now = time.monotonic()
                size = (sum(hw.get_watermark_offsets(TopicPartition(out_topic, p), timeout=10,
                                                     cached=False)[1]
                            for p in range(a.partitions))
                        if hw else out_file.stat().st_size)
                if size != last_size:
                    last_size, last_change = size, now
                if admin and not read_all:
                    read_all = self.metrics_events(admin) >= events
                if read_all and not lag_zero:
                    lag_zero = self.group_lag(gc, topic, ends) == 0
                if read_all and lag_zero and now - last_change >= a.quiet:
                    break
                time.sleep(POLL)
            wall = last_change - t0
        finally:
            gc.close()
            if hw is not None:
                hw.close()
        proc.send_signal(signal.SIGTERM)
        ru = wait4_child(proc, 120)
        self.procs.remove(proc)
        broker = self.broker_cpu() - broker0
        if proc.returncode != 0:
            print(f"warning: tidemark ({run}) exited {proc.returncode} after SIGTERM; "
                  f"log: {log_path}", file=sys.stderr)
        check = None
        if ds is not None and not out_topic and not self.args.tidemark_passthrough:
            check = self.check_output(out_file, ds)
        if out_topic:
            self.drop_topic(out_topic)
        return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss_kib": ru.ru_maxrss,
                "broker_cpu": broker, "check": check, "out_bytes": last_size}

    @staticmethod
    def check_output(path: Path, ds: DataSet) -> str:
        """Folds the sink's changelog (Debezium JSON lines, keyed by customer_id) into the
        final rows and compares count and sum with the data set's live rows."""
        final = {}
        with open(path, "rb") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                ev = json.loads(line, parse_float=Decimal)
                ev = ev.get("payload", ev)
                if ev.get("op") in ("c", "r", "u"):
                    final[ev["after"]["customer_id"]] = ev["after"]
                elif ev.get("op") == "d":
                    final.pop(ev["before"]["customer_id"], None)
        try:
            rows = sum(int(r["cnt"]) for r in final.values())
            total = sum((Decimal(str(r["total"])) for r in final.values()), Decimal(0))
        except (KeyError, TypeError, ValueError) as e:
            return f"MISMATCH: the output rows are not the query's ({e!r} in {path})"
        return ds.check(rows, total, len(final))

    def drop_topic(self, topic: str) -> None:
        admin = self.kafka.admin()
        for f in admin.delete_topics([topic], operation_timeout=30).values():
            try:
                f.result(60)
            except Exception as e:
                print(f"warning: deleting {topic}: {e}", file=sys.stderr)


# -- reporting ----------------------------------------------------------------

def med_spread(xs: list, fmt: str) -> str:
    if not xs:
        return "-"
    m = statistics.median(xs)
    if len(xs) == 1:
        return format(m, fmt)
    return f"{format(m, fmt)} ({format(min(xs), fmt)}–{format(max(xs), fmt)})"


def parse_list(text: str) -> list:
    out = []
    for part in text.split(","):
        part = part.strip().lower().replace("_", "")
        mult = 1
        if part.endswith("k"):
            part, mult = part[:-1], 1000
        elif part.endswith("m"):
            part, mult = part[:-1], 1_000_000
        out.append(int(float(part) * mult))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000,
                    help="change events per data set (default 1,000,000)")
    ap.add_argument("--keys", default="10k,1m",
                    help="distinct group keys (customer_id drawn from 1..K), one data set each; "
                         "default 10k,1m")
    ap.add_argument("--rounds", type=int, default=3,
                    help="measurements per configuration, rotating the order; medians reported")
    ap.add_argument("--parallelism", default="1,2", help="parallelisms to run (default 1,2)")
    ap.add_argument("--partitions", type=int, default=2,
                    help="partitions of the input topic (default 2, so that 2 Flink source "
                         "subtasks both read)")
    ap.add_argument("--sink", choices=["null", "kafka"], default="kafka",
                    help="kafka (default, the issue's setup): both write their changelog to a "
                         "topic in debezium-json; null: Flink's blackhole sink, tidemark's stdout "
                         "sink into a file (tidemark still encodes every change, Flink nothing)")
    ap.add_argument("--tidemark", default=default_tidemark())
    ap.add_argument("--flink-heap", metavar="SIZE",
                    help="-Xmx of Flink's JVM (default: the JVM's own, a quarter of memory)")
    ap.add_argument("--flink-conf", action="append", default=[], metavar="KEY=VALUE",
                    help="a Flink option for the job (repeatable), e.g. "
                         "table.exec.mini-batch.enabled=true")
    ap.add_argument("--only", choices=["flink", "tidemark"],
                    help="measure one side only")
    ap.add_argument("--quiet", type=float, default=1.0,
                    help="seconds without output change that end a tidemark run once its input "
                         "is read (default 1.0; the stdout and Kafka sinks flush every 200 ms)")
    ap.add_argument("--tidemark-passthrough", action="store_true",
                    help="a check of this harness for builds without GROUP BY: tidemark runs "
                         "SELECT * FROM orders instead of the query (so its figures are NOT "
                         "comparable with Flink's and no ratio is printed), through the same "
                         "start, end detection and measurement")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--perf", metavar="PREFIX",
                    help="record each tidemark run with perf record -g into PREFIX.<run> "
                         "(its figures then include perf's overhead)")
    ap.add_argument("--heap", default="1g", help="the broker's heap (default 1g)")
    ap.add_argument("--keep", metavar="DIR", help="keep logs and job files in DIR")
    args = ap.parse_args()
    if args.events < 1000:
        ap.error("--events must be at least 1000")
    keys = parse_list(args.keys)
    pars = parse_list(args.parallelism)

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    tmp = Path(tempfile.mkdtemp(prefix="tm-bench-agg-"))
    kafka = bench = None
    try:
        kafka = KafkaServer(heap=args.heap, fast_start=False,
                            extra_conf={"log.segment.delete.delay.ms": "1000",
                                        "broker.heartbeat.interval.ms": "2000",
                                        "broker.session.timeout.ms": "9000"})
        kafka.start()
        bench = Bench(args, kafka, tmp)
        do_flink = args.only != "tidemark"
        if do_flink:
            bench.build_flink()

        tm_ok, tm_why = False, "not measured (--only flink)"
        if args.only != "flink" and not os.access(args.tidemark, os.X_OK):
            tm_why = f"not measured: no tidemark binary at {args.tidemark} (build it, or --tidemark)"
            print(tm_why, flush=True)
        elif args.only != "flink":
            tm_ok, tm_why = bench.tidemark_explain("orders")
            if not tm_ok:
                print(f"tidemark: SQL aggregation not available in this build "
                      f"({args.tidemark} explain: {tm_why})", flush=True)
        sides = ([] if not do_flink else ["flink"]) + (["tidemark"] if tm_ok else [])
        if not sides:
            print("nothing to measure")
            return 1

        results = {}   # (keys, side, parallelism) -> [run dicts]
        datasets = {}
        for k in keys:
            topic = f"orders-{k}"
            kafka.create_topic(topic, partitions=args.partitions)
            ds = DataSet(args.events, k, args.seed)
            sec = ds.produce(kafka, topic)
            datasets[k] = ds
            print(f"\ndata set {k:,} keys: {args.events:,} events ({ds.counts['c']:,} inserts, "
                  f"{ds.counts['u']:,} updates, {ds.counts['d']:,} deletes), "
                  f"{ds.bytes / args.events:.0f} bytes per event, into {topic} "
                  f"({args.partitions} partitions) in {sec:.1f}s; live at the end: "
                  f"{ds.live_rows:,} rows in {ds.live_groups:,} groups", flush=True)
            if do_flink:
                print(f"  check through Flink (unmeasured): {bench.flink_verify(topic, ds)}",
                      flush=True)
            configs = [(side, p) for p in pars for side in sides]
            checked = False
            for i in range(args.rounds):
                order = configs[i % len(configs):] + configs[:i % len(configs)]
                for side, p in order:
                    run = f"{side}-k{k}-p{p}-r{i}"
                    try:
                        if side == "flink":
                            r = bench.flink(topic, p, run)
                        else:
                            r = bench.tidemark(topic, args.events, p, run,
                                               ds if not checked else None)
                            if r["check"] is not None:
                                checked = True
                                print(f"  check of tidemark's output ({run}): {r['check']}",
                                      flush=True)
                    except RunFailed as e:
                        print(f"  FAILED: {e}", flush=True)
                        continue
                    results.setdefault((k, side, p), []).append(r)
                    extra = (f", job alone {args.events / r['job_cpu']:,.0f} events/CPU-s"
                             if side == "flink" else "")
                    print(f"  round {i + 1} {side} p={p}: {r['wall']:.1f}s wall, "
                          f"{r['cpu']:.1f} CPU-s, {args.events / r['cpu']:,.0f} events/CPU-s"
                          f"{extra}, peak RSS {r['rss_kib'] / 1024:,.0f} MiB", flush=True)
            kafka.admin().delete_topics([topic], operation_timeout=30)

        # -- the report ------------------------------------------------------
        print()
        print(f"machine: {machine()}")
        print(f"versions: Flink {bench.flink_version} (pom: flink {pom_property('flink.version')}, "
              f"flink-connector-kafka {pom_property('flink.kafka.version')}), "
              f"{java_version(bench.java or 'java')}, JVM heap "
              f"{args.flink_heap or 'default (a quarter of memory)'}"
              + (f", Flink options {' '.join(args.flink_conf)}" if args.flink_conf else "")
              + f"; Kafka {kafka_version()} (one KRaft node, heap {args.heap}) on the same box; "
              f"tidemark {args.tidemark}")
        print(f"query: {QUERY}")
        if args.tidemark_passthrough:
            print(f"tidemark ran {PASSTHROUGH} instead (--tidemark-passthrough): a check of the "
                  f"harness, not a comparison")
        print(f"sink: {'blackhole (Flink), stdout into a file (tidemark)' if args.sink == 'null' else 'Kafka, debezium-json'}; "
              f"{args.events:,} events per data set (60% insert, 20% update, 20% delete); "
              f"medians of {args.rounds} rounds, (min–max) in brackets")
        if not tm_ok and tm_why.startswith("not measured"):
            print(f"tidemark: {tm_why}")
        elif not tm_ok:
            print(f"tidemark: SQL aggregation not available in this build ({tm_why})")
        n = args.events
        for k in keys:
            for p in pars:
                print(f"\n{k:,} keys, parallelism {p}:")
                print(f"  {'':<10}{'events/CPU-s':>30}{'events/s (wall)':>30}{'peak RSS MiB':>22}"
                      f"{'broker CPU-s':>14}")
                for side in sides:
                    rs = results.get((k, side, p), [])
                    if not rs:
                        print(f"  {side:<10}  (no successful run)")
                        continue
                    print(f"  {side:<10}"
                          f"{med_spread([n / r['cpu'] for r in rs], ',.0f'):>30}"
                          f"{med_spread([n / r['wall'] for r in rs], ',.0f'):>30}"
                          f"{med_spread([r['rss_kib'] / 1024 for r in rs], ',.0f'):>22}"
                          f"{med_spread([r['broker_cpu'] for r in rs], '.1f'):>14}")
                    if side == "flink":
                        print(f"  {'  job only':<10}"
                              f"{med_spread([n / r['job_cpu'] for r in rs], ',.0f'):>30}"
                              f"{med_spread([n / r['job_wall'] for r in rs], ',.0f'):>30}"
                              f"   (from submission to the end; planning and JVM start: "
                              f"{statistics.median(r['cpu'] - r['job_cpu'] for r in rs):.1f} "
                              f"CPU-s)")
                fl = results.get((k, "flink", p))
                tm = results.get((k, "tidemark", p))
                if tm and args.tidemark_passthrough:
                    print("  tidemark / Flink: not compared (--tidemark-passthrough: tidemark ran "
                          "SELECT *, not the GROUP BY)")
                elif fl and tm:
                    cpu_ratio = (statistics.median(n / r["cpu"] for r in tm)
                                 / statistics.median(n / r["cpu"] for r in fl))
                    job_ratio = (statistics.median(n / r["cpu"] for r in tm)
                                 / statistics.median(n / r["job_cpu"] for r in fl))
                    wall_ratio = (statistics.median(n / r["wall"] for r in tm)
                                  / statistics.median(n / r["wall"] for r in fl))
                    rss_ratio = (statistics.median(r["rss_kib"] for r in tm)
                                 / statistics.median(r["rss_kib"] for r in fl))
                    print(f"  tidemark / Flink: events per CPU-second {cpu_ratio:.2f} "
                          f"(target ≥ 3; against Flink's job alone {job_ratio:.2f}), "
                          f"wall-clock rate {wall_ratio:.2f}, peak RSS {rss_ratio:.2f} "
                          f"(target ≤ 0.20)")
                elif fl:
                    if tm_ok:
                        print("  tidemark / Flink: no successful tidemark run")
                    elif tm_why.startswith("not measured"):
                        print("  tidemark / Flink: pending (tidemark not measured)")
                    else:
                        print("  tidemark / Flink: pending (tidemark: SQL aggregation not "
                              "available in this build)")
        return 0
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
        if bench is not None:
            bench.cleanup()
        if args.keep:
            keep = Path(args.keep)
            keep.mkdir(parents=True, exist_ok=True)
            for f in tmp.glob("*.log"):
                shutil.copy(f, keep / f.name)
            for f in tmp.glob("*/job.sql"):
                shutil.copy(f, keep / f"{f.parent.name}.job.sql")
            for f in tmp.glob("*/tidemark.log"):
                shutil.copy(f, keep / f"{f.parent.name}.tidemark.log")
        if kafka is not None:
            kafka.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
