#!/usr/bin/python3
"""PostgreSQL to Kafka benchmark: tidemark against kcat and pg_recvlogical, in the same run.

One throwaway PostgreSQL 15 and one throwaway single-node Kafka broker (KRaft, real
transactions, normal JIT).  PostgreSQL gets one logical slot per measured drain, all
created before the workload of bench/pg_drain.py (60 % inserts, 20 % updates, 20 %
deletes), so every slot holds exactly the same changes.  Then, --repeat rounds with
a rotating order:

  * pg_recvlogical drains a slot with pgoutput to /dev/null, as in pg_drain.py: the
    ceiling, since nothing can consume a slot faster than PostgreSQL's own client;
  * tidemark drains a slot into a fresh topic with `delivery = 'at-least-once'`,
    timed from process start until the topic's high watermark counts every message;
  * tidemark drains a slot into a fresh topic with `delivery = 'exactly-once'` and
    `SET checkpoint_interval = '1s'`, timed from process start until the Kafka
    transaction that holds the last change is committed;
  * `kcat -P` produces the very messages tidemark produced (keys, values,
    tombstones) from a file into a fresh topic, timed from exec to exit.

  * with --kcat-transactional, `kcat -P` again with every message in one transaction.

It prints the absolute rates (median of the rounds), the ratios exactly-once /
pg_recvlogical, exactly-once / at-least-once and at-least-once / kcat, the
checkpoints that completed while exactly-once drained, tidemark's peak RSS, the CPU
seconds each party (tool, PostgreSQL, broker, this script) used per run, and the
machine.  A tidemark run that stops by itself is reported as failed, with the
daemon's error, and left out of the medians.  This is a benchmark, not a test:
nothing here asserts a time.  bench/README.md describes it and its results.

    bench/pg_kafka.py [--events 1000000] [--txn-rows 1000] [--repeat 3]
                      [--partitions 1] [--no-schemas] [--kcat-transactional]
                      [--linger-ms MS] [--perf DIR] [--log-level debug] [--keep DIR]
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests" / "lib"))
from pg_drain import PG_BIN, cpu_model, peak_rss_kib, workload  # noqa: E402
from pgserver import PgServer, lsn_to_int  # noqa: E402
from kafkaserver import KafkaServer, kafka_version  # noqa: E402

# kcat's key delimiter in its input file.  JSON never holds a raw control
# character (RFC 8259 makes them \u-escapes), nor a raw newline, so this byte
# between key and value and a newline after each message split it exactly.
KEY_SEP = b"\x1f"
# Every wait has a deadline; a drain of a million events takes well under a minute.
RUN_DEADLINE = 1800
# How often the end of a run is looked for.  Polling is not free for the broker, which
# shares the two cores: a ListOffsets request every 20 ms, or a read_committed consumer
# with fetch.wait.max.ms = 20, cost it 0.1 to 0.2 of a core.  Every 100 ms (and a
# consumer long-polling with librdkafka's default 500 ms, which the broker answers as
# soon as the last stable offset moves) costs nothing measurable and adds at most
# 0.1 s to a run of 20 s or more.
POLL = 0.1


def default_tidemark() -> str:
    lead = REPO / "build-lead" / "tidemark"
    return str(lead if lead.exists() else REPO / "build" / "tidemark")


def counts(events: int) -> tuple:
    """(inserts, updates, deletes) as pg_drain.workload() makes them."""
    n_ins = events * 3 // 5
    n_upd = events // 5
    return n_ins, n_upd, events - n_ins - n_upd


TICK = os.sysconf("SC_CLK_TCK")


def proc_stat(pid: int) -> list:
    """/proc/<pid>/stat from field 3 (state) on, or [] if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def cpu_seconds(pid: int, reaped: bool = False) -> float:
    """User + system CPU of a process (all its threads); with reaped, also that of
    the children it has waited for (utime, stime, cutime, cstime: fields 14 to 17)."""
    st = proc_stat(pid)
    if not st:
        return 0.0
    return sum(int(x) for x in st[11:15 if reaped else 13]) / TICK


def tree_cpu(root: int) -> float:
    """CPU of a process, of the children it reaped, and of its live children: for the
    postmaster, every backend, walsender and autovacuum worker past and present."""
    total = cpu_seconds(root, reaped=True)
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if len(st) > 1 and st[1] == str(root):
                total += cpu_seconds(int(d))
    return total


# Signals that should stop the benchmark.  The handler raises KeyboardInterrupt, but
# confluent_kafka can run it inside one of its callbacks and swallow the exception, so
# it also leaves a note here that every loop checks (check_stop).
STOP_SIGNALS = []


def on_signal(signum, frame):
    STOP_SIGNALS.append(signum)
    raise KeyboardInterrupt(f"signal {signum}")


def check_stop() -> None:
    if STOP_SIGNALS:
        raise KeyboardInterrupt(f"signal {STOP_SIGNALS[0]}")


def wait_child(proc, seconds: float) -> None:
    """proc.wait(), a little at a time so that a signal stops the wait."""
    deadline = time.monotonic() + seconds
    while True:
        check_stop()
        try:
            proc.wait(timeout=0.2)
            return
        except subprocess.TimeoutExpired:
            if time.monotonic() > deadline:
                raise


class RunFailed(RuntimeError):
    """A measured tidemark run that did not deliver everything: reported, not timed."""


def child_of(pid: int, deadline: float) -> int:
    """The first child of `pid` (perf's tidemark), waiting for it to be forked."""
    while time.monotonic() < deadline:
        try:
            kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            kids = []
        if kids:
            return int(kids[0])
        time.sleep(0.005)
    raise RuntimeError(f"process {pid} started no child")


class PidProc:
    """Enough of Popen's interface to watch a process that is not our child."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode = None

    def poll(self):
        return None if proc_stat(self.pid) and proc_stat(self.pid)[0] != "Z" else -1


class Bench:
    def __init__(self, args, pg: PgServer, kafka: KafkaServer, tmp: Path):
        self.args = args
        self.pg = pg
        self.kafka = kafka
        self.tmp = tmp
        self.procs = []           # every process we started, for the cleanup
        _, _, n_del = counts(args.events)
        # Each delete is followed by a tombstone (the sink's default), so the
        # topic holds one message per event plus one per delete.
        self.messages = args.events + n_del
        self.deletes = n_del
        self.end_lsn = None       # pg_current_wal_lsn() after the workload
        self.last_change_lsn = 0  # the greatest source.lsn tidemark wrote
        self.kcat_file = tmp / "kcat-input.bin"
        self.kcat_bytes = 0
        # Per exactly-once run: the checkpoints that completed while it drained (before
        # the SIGTERM), each as its duration_ms (trigger to pre-committed).
        self.ckpts = []
        self.eos_verified = False
        self.cpu = {}             # tool -> [{"tool": s, "postgres": s, "broker": s, ...}]
        self.postmaster = int((pg.datadir / "postmaster.pid").read_text().split()[0])

    # -- helpers -------------------------------------------------------------

    def start(self, cmd, log_path: Path, **kw) -> subprocess.Popen:
        log = open(log_path, "ab")
        try:
            proc = subprocess.Popen(cmd, stdout=kw.pop("stdout", subprocess.DEVNULL),
                                    stderr=log, **kw)
        finally:
            log.close()
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, sig=signal.SIGTERM, timeout=120) -> int:
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
        if proc in self.procs:
            self.procs.remove(proc)
        return proc.returncode

    def cleanup(self) -> None:
        for proc in list(self.procs):
            try:
                self.stop(proc, signal.SIGTERM, timeout=20)
            except Exception:
                pass

    def new_topic(self, name: str, partitions: int, compact: bool = False) -> None:
        self.kafka.create_topic(name, partitions=partitions,
                                config={"cleanup.policy": "compact"} if compact else None)

    def drop_topics(self, *names) -> None:
        """Deletes topics (the broker removes their files a second later) so that a run
        of millions of messages does not leave gigabytes behind for the next one."""
        admin = self.kafka.admin()  # kept alive until the futures are done
        fs = admin.delete_topics(list(names), operation_timeout=30)
        for f in fs.values():
            try:
                f.result(60)
            except Exception as e:
                print(f"warning: deleting a topic: {e}", file=sys.stderr)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            check_stop()
            left = set(names) & set(admin.list_topics(timeout=10).topics)
            if not left:
                break
            time.sleep(0.2)
        time.sleep(2)  # log.segment.delete.delay.ms (1 s): let the files go

    def watermarks(self, consumer, topic: str) -> list:
        """End offsets per partition (the consumer's isolation level says which).

        Retries for a minute: a broker starved of CPU on a shared machine can miss its
        KRaft heartbeats, be fenced, and answer NOT_LEADER_FOR_PARTITION for a moment."""
        from confluent_kafka import KafkaException, TopicPartition
        deadline = time.monotonic() + 60
        while True:
            try:
                return [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10,
                                                       cached=False)[1]
                        for p in range(self.args.partitions)]
            except KafkaException as e:
                if time.monotonic() > deadline:
                    raise
                print(f"warning: reading {topic}'s offsets: {e}; retrying", file=sys.stderr)
                time.sleep(0.5)

    def offsets_consumer(self, isolation: str):
        from confluent_kafka import Consumer
        return Consumer(self.kafka.client_conf(**{
            "group.id": f"bench-offsets-{os.getpid()}-{time.monotonic_ns()}",
            "enable.auto.commit": False, "isolation.level": isolation}))

    def count_committed(self, topic: str) -> tuple:
        """(messages, null values) a read_committed consumer sees, counted by kcat."""
        out = subprocess.run(
            ["kcat", "-C", "-b", self.kafka.bootstrap, "-t", topic, "-o", "beginning", "-e",
             "-q", "-X", "isolation.level=read_committed", "-f", "%S\n"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=900, check=True).stdout
        sizes = out.split()
        return len(sizes), sum(1 for s in sizes if s == b"-1")

    def cpu_mark(self) -> dict:
        ru_self = resource.getrusage(resource.RUSAGE_SELF)
        ru_kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {"postgres": tree_cpu(self.postmaster),
                "broker": cpu_seconds(self.kafka.pid),
                "bench": ru_self.ru_utime + ru_self.ru_stime,
                "children": ru_kids.ru_utime + ru_kids.ru_stime}

    def cpu_note(self, tool: str, before: dict, tool_cpu: float = None) -> None:
        """Records the CPU each party used during one timed run.  tool_cpu is the tool's
        own (read from /proc before it exits); else it is the children reaped since
        `before` (the tool, which was waited for)."""
        after = self.cpu_mark()
        d = {k: after[k] - before[k] for k in ("postgres", "broker", "bench")}
        d["tool"] = tool_cpu if tool_cpu is not None else after["children"] - before["children"]
        self.cpu.setdefault(tool, []).append(d)

    # -- the drains ----------------------------------------------------------

    def recvlogical(self, slot: str) -> float:
        env = dict(os.environ, PGHOST=self.pg.host, PGPORT=str(self.pg.port), PGUSER="postgres")
        cmd = [str(PG_BIN / "pg_recvlogical"), "-d", "bench", "--slot", slot, "--start",
               "-o", "proto_version=1", "-o", "publication_names=bench_pub",
               "-E", self.end_lsn, "--no-loop", "-f", "/dev/null"]
        mark = self.cpu_mark()
        t0 = time.monotonic()
        proc = self.start(cmd, self.tmp / "pg_recvlogical.log", env=env)
        try:
            wait_child(proc, RUN_DEADLINE)
        except subprocess.TimeoutExpired:
            self.stop(proc, signal.SIGKILL)
            raise RuntimeError(f"pg_recvlogical on {slot} timed out")
        seconds = time.monotonic() - t0
        self.cpu_note("recv", mark)
        self.procs.remove(proc)
        if proc.returncode != 0:
            raise RuntimeError(f"pg_recvlogical failed ({proc.returncode}); "
                               f"see {self.tmp}/pg_recvlogical.log")
        return seconds

    def job_text(self, slot: str, topic: str, eos: bool, name: str) -> str:
        a, pg, k = self.args, self.pg, self.kafka
        sink = (f"connector = 'kafka', bootstrap_servers = '{k.bootstrap}', topic = '{topic}', "
                f"format = 'debezium-json', schemas = {'false' if a.no_schemas else 'true'}, "
                f"create_topics = false")
        if a.linger_ms is not None:
            sink += f", linger_ms = {a.linger_ms}"
        if eos:
            sink += (f", delivery = 'exactly-once', progress_topic = '{topic}.progress', "
                     f"transactional_id_prefix = '{name}'")
        else:
            sink += ", delivery = 'at-least-once'"
        return (f"""
CREATE TABLE bench () WITH (connector = 'postgres-cdc',
  dsn = 'host={pg.host} port={pg.port} dbname=bench user=postgres',
  tables = 'public.bench', slot = '{slot}', publication = 'bench_pub', snapshot = 'never');
CREATE TABLE out () WITH ({sink});
INSERT INTO out SELECT * FROM bench;
SET admin_address = '127.0.0.1:0';
SET log_level = '{a.log_level}';
""" + ("SET checkpoint_interval = '1s';\n" if eos else ""))

    def tidemark(self, mode: str, slot: str, run: str) -> tuple:
        """Drains `slot` into a fresh topic; returns (seconds, peak RSS KiB, topic).

        at-least-once is done when the topic's high watermarks add up to every message
        (nothing but messages takes an offset there).  exactly-once is done when a
        committed progress record (in the same Kafka transaction as the data) names a
        source position at or past the last change's LSN, and the data topic's last
        stable offsets have caught up with its high watermarks (the coordinator writes
        the commit markers of each partition after it answers the commit).  Its
        offsets also count one commit marker per transaction, so they are not compared
        with the message count; the first run's messages are counted with a
        read_committed consumer afterwards.
        """
        from confluent_kafka import Consumer, TopicPartition

        a = self.args
        eos = mode == "eos"
        run_dir = self.tmp / run
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir()
        topic = f"bench-{run}"
        progress = f"{topic}.progress"
        # Created beforehand, as for kcat, so that neither pays for it when timed.
        self.new_topic(topic, a.partitions)
        if eos:
            self.new_topic(progress, 1, compact=True)
        job = run_dir / "job.sql"
        job.write_text(self.job_text(slot, topic, eos, run))
        hw = self.offsets_consumer("read_uncommitted")
        lso = self.offsets_consumer("read_committed") if eos else None
        pc = None
        if eos:
            pc = Consumer(self.kafka.client_conf(**{
                "group.id": f"bench-progress-{run}", "enable.auto.commit": False,
                "isolation.level": "read_committed"}))
            pc.assign([TopicPartition(progress, 0, 0)])
        cmd = [a.tidemark, "run", str(job), "--state-dir", str(run_dir / "st")]
        if a.perf:
            # perf starts tidemark, so that every thread is sampled from the first.
            cmd = ["perf", "record", "-q", "-e", "cpu-clock", "-F", "1000", "-g",
                   "-o", str(Path(a.perf) / f"{run}.data"), "--"] + cmd
        mark = self.cpu_mark()
        t0 = time.monotonic()
        top = self.start(cmd, run_dir / "tidemark.log")
        proc = top
        if a.perf:
            proc = PidProc(child_of(top.pid, time.monotonic() + 30))
        rss = -1
        deadline = t0 + RUN_DEADLINE
        committed_pos = 0
        seen = 0
        try:
            while True:
                check_stop()
                rss = max(rss, peak_rss_kib(proc.pid))
                if eos:
                    msg = pc.poll(POLL)
                    if msg is not None and msg.error() is None and msg.value():
                        v = json.loads(msg.value())
                        pos = v.get("sources", {}).get("bench")
                        if pos:
                            committed_pos = max(committed_pos, lsn_to_int(pos))
                    if committed_pos >= self.last_change_lsn:
                        w = self.watermarks(hw, topic)
                        if all(s >= h for s, h in zip(self.watermarks(lso, topic), w)):
                            seen = sum(w)
                            break
                else:
                    seen = sum(self.watermarks(hw, topic))
                    if seen >= self.messages:
                        break
                    time.sleep(POLL)
                if proc.poll() is not None or time.monotonic() > deadline:
                    stopped = proc.poll() is not None
                    self.stop(top, timeout=30)
                    hw.close()
                    if lso is not None:
                        lso.close()
                    log = (run_dir / "tidemark.log").read_text(errors="replace")
                    why = re.findall(r'msg="job failed" error="(.*)"', log)
                    raise RunFailed(
                        f"tidemark {mode} ({run}) "
                        + (f"stopped by itself after {time.monotonic() - t0:.1f}s"
                           if stopped else f"did not finish in {RUN_DEADLINE}s")
                        + (f": {why[-1]}" if why else "") + f" (log: {run_dir}/tidemark.log)")
            seconds = time.monotonic() - t0
            rss = max(rss, peak_rss_kib(proc.pid))
            if run != "warm":
                self.cpu_note(mode, mark, cpu_seconds(proc.pid))
        finally:
            if pc is not None:
                pc.close()
        if a.perf:
            # tidemark first; perf writes its file and exits when tidemark has.
            os.kill(proc.pid, signal.SIGTERM)
            until = time.monotonic() + 120
            while proc.poll() is None and time.monotonic() < until:
                time.sleep(0.05)
        rc = self.stop(top)  # SIGTERM: exactly-once takes a final (empty) checkpoint
        if rc != 0 and not a.perf:
            print(f"warning: tidemark ({mode}) exited {rc} after SIGTERM; "
                  f"log: {run_dir}/tidemark.log", file=sys.stderr)
        log = (run_dir / "tidemark.log").read_text(errors="replace")
        if eos:
            draining = log.split('msg="SIGTERM', 1)[0]
            self.ckpts.append([int(x) for x in re.findall(
                r'msg="completed".*?duration_ms=(\d+)', draining)])
            if not self.eos_verified:
                self.eos_verified = True
                n, nulls = self.count_committed(topic)
                ok = "ok" if (n, nulls) == (self.messages, self.deletes) else "MISMATCH"
                print(f"  check ({run}): {n} committed messages ({nulls} tombstones) for "
                      f"read_committed consumers, expected {self.messages} ({self.deletes}): {ok}")
        else:
            final = sum(self.watermarks(hw, topic))
            if final != self.messages:
                print(f"warning: {topic} holds {final} messages, expected {self.messages}",
                      file=sys.stderr)
        hw.close()
        if lso is not None:
            lso.close()
        return seconds, rss, topic

    def warm_transactions(self) -> None:
        from confluent_kafka import Producer
        self.new_topic("bench-txn-warm", 1)
        p = Producer(self.kafka.client_conf(**{"transactional.id": "bench-txn-warm"}))
        p.init_transactions(60)
        p.begin_transaction()
        p.produce("bench-txn-warm", b"warm")
        p.commit_transaction(60)
        self.drop_topics("bench-txn-warm")

    def kcat(self, run: str, txn: bool = False) -> float:
        """kcat -P produces the reference messages into a fresh topic; timed exec to exit.

        With txn, all of them in one Kafka transaction, committed before kcat exits."""
        a = self.args
        topic = f"bench-{run}"
        self.new_topic(topic, a.partitions)
        cmd = self.kcat_cmd(topic, run if txn else None)
        if a.perf:
            cmd = ["perf", "record", "-q", "-e", "cpu-clock", "-F", "1000", "-g",
                   "-o", str(Path(a.perf) / f"{run}.data"), "--"] + cmd
        mark = self.cpu_mark()
        t0 = time.monotonic()
        proc = self.start(cmd, self.tmp / "kcat.log")
        try:
            wait_child(proc, RUN_DEADLINE)
        except subprocess.TimeoutExpired:
            self.stop(proc, signal.SIGKILL)
            raise RuntimeError("kcat timed out")
        seconds = time.monotonic() - t0
        self.cpu_note("kcatx" if txn else "kcat", mark)
        self.procs.remove(proc)
        if proc.returncode != 0:
            raise RuntimeError(f"kcat failed ({proc.returncode}); see {self.tmp}/kcat.log")
        hw = self.offsets_consumer("read_uncommitted")
        final = sum(self.watermarks(hw, topic))
        hw.close()
        if txn:
            lso = self.offsets_consumer("read_committed")
            stable = sum(self.watermarks(lso, topic))
            lso.close()
            # Offsets: every message plus one commit marker per partition.
            if stable != final or final != self.messages + a.partitions:
                print(f"warning: kcat's transactional topic has last stable offsets {stable}, "
                      f"high watermarks {final}, expected {self.messages + a.partitions}",
                      file=sys.stderr)
        elif final != self.messages:
            print(f"warning: kcat's topic holds {final} messages, expected {self.messages}",
                  file=sys.stderr)
        self.drop_topics(topic)
        return seconds

    def kcat_cmd(self, topic: str, txn_id: str = None) -> list:
        # The settings tidemark's at-least-once producer runs with (docs/connectors/kafka.md):
        # idempotence (hence acks=all), messages that never time out, Java's murmur2
        # placement; linger.ms, batch sizes and compression (none) are librdkafka's
        # defaults for both.  -Z turns an empty value (a tombstone) back into a null.
        cmd = ["kcat", "-P", "-q", "-b", self.kafka.bootstrap, "-t", topic,
               "-K", "\\x1f", "-Z",
               "-X", "enable.idempotence=true", "-X", "acks=all",
               "-X", "partitioner=murmur2_random"]
        if self.args.linger_ms is not None:
            cmd += ["-X", f"linger.ms={self.args.linger_ms}"]
        if txn_id:
            # One transaction for everything; -m bounds the commit (which first waits
            # for every message), and the broker must not abort it meanwhile.
            cmd += ["-X", f"transactional.id={txn_id}", "-X", "transaction.timeout.ms=600000",
                    "-m", "300"]
        else:
            cmd += ["-X", "message.timeout.ms=0"]
        return cmd + ["-l", str(self.kcat_file)]

    def reference(self, topic: str) -> None:
        """Writes kcat's input from the messages tidemark produced into `topic`, and
        finds the greatest source LSN among them (the last change of the workload)."""
        from confluent_kafka import Consumer, KafkaError as CKError, TopicPartition

        c = Consumer(self.kafka.client_conf(**{
            "group.id": f"bench-reference-{os.getpid()}", "enable.auto.commit": False,
            "enable.partition.eof": True, "auto.offset.reset": "earliest",
            "isolation.level": "read_uncommitted"}))
        c.assign([TopicPartition(topic, p, 0) for p in range(self.args.partitions)])
        pending = set(range(self.args.partitions))
        n = nulls = 0
        deadline = time.monotonic() + RUN_DEADLINE
        with open(self.kcat_file, "wb") as out:
            while pending:
                check_stop()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"reading {topic} back timed out after {n} messages")
                for m in c.consume(num_messages=10000, timeout=1.0):
                    err = m.error()
                    if err is not None:
                        if err.code() == CKError._PARTITION_EOF:
                            pending.discard(m.partition())
                            continue
                        raise RuntimeError(f"reading {topic}: {err}")
                    key, value = m.key(), m.value()
                    if key is None or KEY_SEP in key or b"\n" in key or \
                            (value is not None and (KEY_SEP in value or b"\n" in value)):
                        raise RuntimeError(f"message {m.partition()}/{m.offset()} cannot be "
                                           f"written in kcat's line format")
                    out.write(key + KEY_SEP + (value or b"") + b"\n")
                    n += 1
                    if value is None:
                        nulls += 1
                    else:
                        # source.lsn is near the end of the envelope; parse only when needed.
                        i = value.rfind(b'"lsn":')
                        if i >= 0:
                            j = i + 6
                            k = j
                            while k < len(value) and value[k:k + 1].isdigit():
                                k += 1
                            if k > j:
                                self.last_change_lsn = max(self.last_change_lsn, int(value[j:k]))
        c.close()
        self.kcat_bytes = self.kcat_file.stat().st_size
        if n != self.messages or nulls != self.deletes:
            raise RuntimeError(f"{topic} holds {n} messages ({nulls} tombstones); expected "
                               f"{self.messages} ({self.deletes}): the counts this benchmark "
                               f"waits for would be wrong")
        if self.last_change_lsn == 0:
            raise RuntimeError(f"no source.lsn found in {topic}'s values")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--txn-rows", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3,
                    help="measurements per tool, rotating which goes first; medians are reported")
    ap.add_argument("--partitions", type=int, default=1,
                    help="partitions of every data topic (tidemark's and kcat's); default 1")
    ap.add_argument("--tidemark", default=default_tidemark())
    ap.add_argument("--no-schemas", action="store_true",
                    help="keys and values without the Kafka Connect schema part (schemas = false)")
    ap.add_argument("--heap", default="1g", help="the broker's JVM heap (default 1g)")
    ap.add_argument("--perf", metavar="DIR",
                    help="profile every tidemark run with `perf record -g -p` into DIR/<run>.data "
                         "(use with --repeat 1: perf slows what it watches)")
    ap.add_argument("--kcat-transactional", action="store_true",
                    help="also time kcat -P producing the same messages in one Kafka "
                         "transaction (the transactional peer of exactly-once)")
    ap.add_argument("--linger-ms", type=int, metavar="MS",
                    help="linger.ms for tidemark's producer (linger_ms) and kcat's alike "
                         "(default: librdkafka's, 5)")
    ap.add_argument("--log-level", default="info", choices=["debug", "info", "warn", "error"],
                    help="tidemark's log level (debug shows each checkpoint's trigger and "
                         "commit; read the logs with --keep)")
    ap.add_argument("--keep", metavar="DIR",
                    help="keep the daemons' logs and jobs in DIR (created)")
    args = ap.parse_args()
    if args.events < 1000:
        ap.error("--events must be at least 1000")
    if args.perf:
        Path(args.perf).mkdir(parents=True, exist_ok=True)

    # Ctrl-C, SIGTERM and SIGHUP unwind through the finally below.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    tmp = Path(tempfile.mkdtemp(prefix="tm-bench-kafka-"))
    pg = kafka = bench = None
    try:
        pg = PgServer(extra_conf={"max_wal_size": "4GB", "checkpoint_timeout": "30min"})
        pg.start()
        # Normal JIT (C2): fast_start's C1-only JVM starts sooner but runs slower.
        # Deleted topics' files go after a second instead of a minute.
        # Kafka's own broker session defaults, not the tests' short ones (4 s), which a
        # broker busy with gigabytes of writes on a shared machine can miss.
        kafka = KafkaServer(heap=args.heap, fast_start=False,
                            extra_conf={"log.segment.delete.delay.ms": "1000",
                                        "broker.heartbeat.interval.ms": "2000",
                                        "broker.session.timeout.ms": "9000"})
        kafka.start()
        bench = Bench(args, pg, kafka, tmp)
        pg.psql("CREATE DATABASE bench")
        tools = ["recv", "alo", "eos", "kcat"] + (["kcatx"] if args.kcat_transactional else [])
        slots = ["warm"] + [f"{t}_{i}" for i in range(args.repeat) for t in tools if t in ("recv", "alo", "eos")]
        pg.psql("""CREATE TABLE bench (id bigint PRIMARY KEY, a int, b text, c numeric(10,2),
                                       d timestamptz);
                   CREATE PUBLICATION bench_pub FOR TABLE bench;""", db="bench")
        for slot in slots:
            pg.psql(f"SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')", db="bench")
        t0 = time.monotonic()
        workload(pg, args.events, args.txn_rows)
        bench.end_lsn = pg.psql("SELECT pg_current_wal_lsn()", db="bench").strip()
        print(f"workload: {args.events} events ({bench.deletes} deletes, so {bench.messages} "
              f"Kafka messages with tombstones) in {time.monotonic() - t0:.1f}s, "
              f"end LSN {bench.end_lsn}", flush=True)
        pg.psql("CHECKPOINT", db="bench")

        # Warm-up, unmeasured: an at-least-once drain of the warm slot reads the WAL
        # into the page cache, warms the broker's JIT, and its topic is the
        # reference: kcat's input and the last change's LSN.
        sec, _, topic = bench.tidemark("alo", "warm", "warm")
        print(f"warm-up (tidemark at-least-once, unmeasured): {args.events / sec:,.0f} events/s",
              flush=True)
        t0 = time.monotonic()
        bench.reference(topic)
        bench.drop_topics(topic)
        print(f"reference: {bench.messages} messages, {bench.kcat_bytes / 1e6:,.0f} MB in "
              f"kcat's format, last change at LSN {bench.last_change_lsn:X} "
              f"(read in {time.monotonic() - t0:.1f}s)", flush=True)

        # The first transactional producer on a broker makes it create and load
        # __transaction_state (half a second here); no measured run should pay for that.
        bench.warm_transactions()

        t = {tool: [] for tool in tools}
        rounds = [{} for _ in range(args.repeat)]
        failed = []
        rss = {"alo": 0, "eos": 0}
        names = {"recv": "pg_recvlogical", "alo": "at-least-once", "eos": "exactly-once",
                 "kcat": "kcat -P", "kcatx": "kcat -P, one transaction"}
        for i in range(args.repeat):
            order = tools[i % len(tools):] + tools[:i % len(tools)]
            for tool in order:
                check_stop()
                sec = None
                if tool == "recv":
                    sec = bench.recvlogical(f"recv_{i}")
                elif tool in ("kcat", "kcatx"):
                    sec = bench.kcat(f"{tool}_{i}", txn=tool == "kcatx")
                else:
                    topic = f"bench-{tool}_{i}"
                    try:
                        sec, r, topic = bench.tidemark(tool, f"{tool}_{i}", f"{tool}_{i}")
                        rss[tool] = max(rss[tool], r)
                    except RunFailed as e:
                        failed.append(str(e))
                        print(f"  FAILED: {e}", flush=True)
                    topics = [topic] + ([f"{topic}.progress"] if tool == "eos" else [])
                    bench.drop_topics(*topics)
                if sec is not None:
                    t[tool].append(sec)
                rounds[i][tool] = args.events / sec if sec else None
            print(f"run {i + 1} ({' '.join(order)}): " + ", ".join(
                f"{names[tool]} " + (f"{rounds[i][tool]:,.0f} events/s" if rounds[i][tool]
                                     else "FAILED") for tool in tools), flush=True)

        if failed:
            print(f"\n{len(failed)} run(s) failed and are left out of the medians:")
            for f in failed:
                print(f"  {f}")
        r = {tool: args.events / statistics.median(t[tool]) for tool in tools if t[tool]}
        for tool in tools:
            if tool not in r:
                r[tool] = float("nan")
        print()
        print(f"machine: {os.cpu_count()} cores, {cpu_model()}, "
              f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB; "
              f"PostgreSQL {pg.psql('SHOW server_version', db='bench').strip()} and Kafka "
              f"{kafka_version()} (one KRaft node, heap {args.heap}) on the same box; "
              f"load average at the end {os.getloadavg()[0]:.1f}")
        print(f"tidemark: {args.tidemark}")
        print(f"events: {args.events} (60% insert, 20% update, 20% delete), {args.txn_rows} "
              f"rows per transaction; {bench.messages} Kafka messages (a tombstone after "
              f"each delete), {bench.kcat_bytes / bench.messages:.0f} bytes each on average "
              f"(key + value, schemas {'off' if args.no_schemas else 'on'}); topics of "
              f"{args.partitions} partition(s); medians of {args.repeat} runs each")
        for tool, label in (("recv", "pg_recvlogical (pgoutput → /dev/null)"),
                            ("alo", "tidemark → Kafka, at-least-once"),
                            ("eos", "tidemark → Kafka, exactly-once, 1 s checkpoints"),
                            ("kcat", "kcat -P, the same messages from a file"),
                            ("kcatx", "kcat -P, the same, in one transaction")):
            if tool in r:
                extra = "" if tool == "recv" or not t[tool] else \
                    f"  ({bench.messages / statistics.median(t[tool]):,.0f} messages/s)"
                print(f"{label + ':':<50}{r[tool]:>10,.0f} events/s{extra}")
        print(f"ratio exactly-once / pg_recvlogical:  {r['eos'] / r['recv']:.2f}  (target ≥ 0.8)")
        print(f"ratio exactly-once / at-least-once:   {r['eos'] / r['alo']:.2f}  (target ≥ 0.9)")
        print(f"ratio at-least-once / kcat -P:        {r['alo'] / r['kcat']:.2f}")
        print(f"ratio at-least-once / pg_recvlogical: {r['alo'] / r['recv']:.2f}")
        if "kcatx" in r:
            print(f"ratio exactly-once / kcat -P in one transaction: "
                  f"{r['eos'] / r['kcatx']:.2f}")
        print(f"exactly-once: checkpoints completed while draining, per run: "
              + ", ".join(f"{len(c)} ({', '.join(f'{d} ms' for d in c) or '-'})"
                          for c in bench.ckpts)
              + " (duration: trigger to pre-commit)")
        print(f"tidemark peak RSS: at-least-once {rss['alo'] / 1024:.1f} MiB, "
              f"exactly-once {rss['eos'] / 1024:.1f} MiB")
        print(f"CPU seconds per run (medians; {os.cpu_count()} cores × wall is all there is):")
        print(f"  {'':<26}{'wall':>7}{'tool':>7}{'postgres':>10}{'broker':>8}{'bench':>7}"
              f"{'sum':>7}")
        for tool in tools:
            if not t[tool] or not bench.cpu.get(tool):
                continue
            c = {k: statistics.median(x[k] for x in bench.cpu[tool])
                 for k in ("tool", "postgres", "broker", "bench")}
            print(f"  {names[tool]:<26}{statistics.median(t[tool]):>7.1f}{c['tool']:>7.1f}"
                  f"{c['postgres']:>10.1f}{c['broker']:>8.1f}{c['bench']:>7.1f}"
                  f"{sum(c.values()):>7.1f}")
        print(f"kcat command: {' '.join(bench.kcat_cmd('<topic>'))}")
        if "kcatx" in r:
            print(f"kcat command, one transaction: "
                  f"{' '.join(bench.kcat_cmd('<topic>', '<txn id>'))}")
        return 0
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    except Exception:
        if kafka is not None and kafka.basedir is not None:
            print(f"--- the broker's log (tail) ---\n{kafka.log_tail(4000)}", file=sys.stderr)
        raise
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if bench is not None:
            bench.cleanup()
        if args.keep:
            keep = Path(args.keep)
            keep.mkdir(parents=True, exist_ok=True)
            for f in tmp.glob("*/job.sql"):
                shutil.copy(f, keep / f"{f.parent.name}.job.sql")
            for f in tmp.glob("*/tidemark.log"):
                shutil.copy(f, keep / f"{f.parent.name}.tidemark.log")
            for f in tmp.glob("*.log"):
                shutil.copy(f, keep / f.name)
            if kafka is not None and kafka.basedir is not None and kafka.logfile.exists():
                shutil.copy(kafka.logfile, keep / "kafka.log")
        if kafka is not None:
            kafka.stop()
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
