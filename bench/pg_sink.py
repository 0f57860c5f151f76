#!/usr/bin/python3
"""PostgreSQL sink benchmark: tidemark against Debezium's JDBC sink, the bulk-load ceiling
and a naive consumer.

One throwaway PostgreSQL 15 and one throwaway Kafka broker.  --changes Debezium change
events (creates, then updates; --delete-pct of them deletes) over --keys keys go to ONE
topic (--partitions partitions, partitioned by key), in Kafka Connect's JsonConverter form
with schemas (`schemas.enable=true`): the value is {"schema": <the Debezium envelope's
schema>, "payload": <the envelope>}, the key {"schema": <struct id int64>, "payload":
{"id": k}}, the amount a Connect Decimal (base64 of the unscaled value, Debezium's
default decimal.handling.mode=precise).  Deletes come without a tombstone after them
(Debezium's tombstones.on.delete=false).  Every engine that reads Kafka reads those same
bytes.  Then, for each of --rounds rounds, each engine of --engines runs (the order
reversed every other round), each into a fresh table of its own in the same database:

  * tidemark: reads the topic (connector 'kafka', a fresh group_id) into a keyed table
    with delivery = 'exactly-once' and SET checkpoint_interval = '1s';
  * jdbc: Debezium's JDBC sink connector (debezium-connector-jdbc 3.6.0.Final, see
    bench/connect/pom.xml for why not 3.6.1) in a Kafka Connect standalone worker
    (ConnectStandalone, connect-runtime of the broker's version, JVM options as
    connect-standalone.sh sets them), insert.mode=upsert, primary.key.mode=record_key,
    delete.enabled=true, schema.evolution=basic, into a table created beforehand with
    the same columns: at-least-once, idempotent upserts;
  * copy: `psql \\copy` of the final rows into an empty table with the same primary key:
    the bulk-load ceiling (what any loader of the final state costs);
  * naive: one connection, one `INSERT … ON CONFLICT DO UPDATE` (or DELETE) per change
    in autocommit, over the first --naive-changes events (it is slow).

tidemark and jdbc are timed from process start until the target table's count and
checksum equal the final rows' (and, for tidemark, no prepared transaction is left),
polled every --poll seconds; copy and naive from their first statement to the last.
For each: wall time, changes (or rows) applied per second, the process's CPU seconds
(utime + stime of every thread, from /proc/PID/stat at the moment the table was right,
so a JVM's shutdown is not counted; psql's and the Python loop's from getrusage), its
peak RSS (VmHWM, sampled), and PostgreSQL's CPU over the run (every server process,
exited backends included; the bench's own checksum polls are part of it).  Medians
with (min–max) over the rounds, and the ratios tidemark / jdbc, tidemark / copy and
tidemark / naive from the medians.  This is a benchmark, not a test.

    /usr/bin/python3 bench/pg_sink.py [--changes 1000000] [--keys 100000]
        [--engines tidemark,jdbc,copy,naive] [--rounds 1] [--naive-changes 100000]
        [--jdbc-heap 2g] [--jdbc-tasks 1] [--jdbc-conf KEY=VALUE ...]
        [--jdbc-worker-conf KEY=VALUE ...] [--poll 0.2] [--verify-topic] [--keep DIR]
"""
import argparse
import base64
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONNECT_DIR = REPO / "bench" / "connect"
CONNECT_JAR = "jdbc-sink-bench-1.jar"
sys.path.insert(0, str(REPO / "tests" / "lib"))
sys.path.insert(0, str(REPO / "bench"))
from pgserver import PgServer  # noqa: E402
from kafkaserver import KafkaServer, _die_with_parent, find_java, kafka_version  # noqa: E402
from pg_drain import cpu_model  # noqa: E402

COLS = "id bigint PRIMARY KEY, customer bigint, amount numeric(14,2), note text"
ENGINES = ("tidemark", "jdbc", "copy", "naive")
GUARANTEE = {"tidemark": "exactly-once", "jdbc": "at-least-once (idempotent upserts)",
             "copy": "bulk load of the final rows", "naive": "per-change autocommit"}
CLK_TCK = os.sysconf("SC_CLK_TCK")
TOPIC = "bench-pg-sink"

# -- the events ---------------------------------------------------------------

ROW_FIELDS = [
    {"type": "int64", "optional": False, "field": "id"},
    {"type": "int64", "optional": True, "field": "customer"},
    {"type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal",
     "version": 1, "parameters": {"scale": "2", "connect.decimal.precision": "14"},
     "field": "amount"},
    {"type": "string", "optional": True, "field": "note"},
]
VALUE_SCHEMA = {
    "type": "struct", "optional": False, "name": "bench.public.t.Envelope", "version": 2,
    "fields": [
        {"type": "struct", "fields": ROW_FIELDS, "optional": True,
         "name": "bench.public.t.Value", "field": "before"},
        {"type": "struct", "fields": ROW_FIELDS, "optional": True,
         "name": "bench.public.t.Value", "field": "after"},
        {"type": "struct", "optional": False, "name": "io.debezium.connector.postgresql.Source",
         "field": "source", "fields": [
             {"type": "string", "optional": False, "field": "version"},
             {"type": "string", "optional": False, "field": "connector"},
             {"type": "string", "optional": False, "field": "name"},
             {"type": "int64", "optional": False, "field": "ts_ms"},
             {"type": "string", "optional": False, "field": "db"},
             {"type": "string", "optional": False, "field": "schema"},
             {"type": "string", "optional": False, "field": "table"}]},
        {"type": "string", "optional": False, "field": "op"},
        {"type": "int64", "optional": True, "field": "ts_ms"},
    ]}
KEY_SCHEMA = {"type": "struct", "optional": False, "name": "bench.public.t.Key",
              "fields": [{"type": "int64", "optional": False, "field": "id"}]}
SOURCE = {"version": "3.6.1.Final", "connector": "postgresql", "name": "bench",
          "ts_ms": 1700000000000, "db": "bench", "schema": "public", "table": "t"}


def events(n, keys, delete_pct, seed=1):
    """(key, op, before, after) of n Debezium events, and the final rows by key.  A row's
    amount is kept in cents (an int); its text form is cents_text(cents)."""
    rng = random.Random(seed)
    rows = {}
    out = []
    for i in range(n):
        k = rng.randrange(keys)
        old = rows.get(k)
        if old is not None and rng.random() * 100 < delete_pct:
            out.append((k, "d", old, None))
            del rows[k]
            continue
        new = {"id": k, "customer": rng.randrange(1000), "amount": rng.randrange(1, 10**8),
               "note": f"n{i}"}
        out.append((k, "u" if old else "c", old, new))
        rows[k] = new
    return out, rows


def cents_text(c):
    return f"{c // 100}.{c % 100:02d}"


def connect_decimal(c):
    """A Connect Decimal's JSON form: base64 of the unscaled value, big-endian two's
    complement in as few bytes as hold it (BigInteger.toByteArray)."""
    return base64.b64encode(c.to_bytes(c.bit_length() // 8 + 1, "big", signed=True)).decode()


def row_json(r):
    if r is None:
        return None
    return {"id": r["id"], "customer": r["customer"], "amount": connect_decimal(r["amount"]),
            "note": r["note"]}


def key_bytes(k):
    return json.dumps({"schema": KEY_SCHEMA, "payload": {"id": k}},
                      separators=(",", ":")).encode()


VALUE_HEAD = '{"schema":' + json.dumps(VALUE_SCHEMA, separators=(",", ":")) + ',"payload":'


def value_bytes(op, before, after):
    payload = json.dumps({"before": row_json(before), "after": row_json(after),
                          "source": SOURCE, "op": op, "ts_ms": 1700000000000},
                         separators=(",", ":"))
    return (VALUE_HEAD + payload + "}").encode()


def produce(kafka, evs, partitions):
    """Writes the events to TOPIC, idempotent and acks=all: without idempotence a retried
    batch can land after a later one (or twice), and the topic's final rows would no longer
    be the events' (seen here on a loaded machine).  Checks every delivery and the topic's
    end offsets; returns the bytes written."""
    from confluent_kafka import Producer
    p = Producer(kafka.client_conf(**{"acks": "all", "enable.idempotence": True,
                                      "linger.ms": 50, "batch.size": 1 << 20}))
    errors = []

    def delivered(err, msg):
        if err is not None and len(errors) < 5:
            errors.append(str(err))

    nbytes = 0
    for k, op, before, after in evs:
        key, value = key_bytes(k), value_bytes(op, before, after)
        nbytes += len(key) + len(value)
        while True:
            try:
                p.produce(TOPIC, key=key, value=value, partition=k % partitions,
                          on_delivery=delivered)
                break
            except BufferError:
                p.poll(0.1)
    left = p.flush(300)
    if left or errors:
        raise RuntimeError(f"producing {TOPIC}: {left} events undelivered; {errors}")
    ends = kafka.end_offsets(TOPIC)
    if sum(ends.values()) != len(evs):
        raise RuntimeError(f"{TOPIC} holds {sum(ends.values())} records, expected {len(evs)}")
    return nbytes


def verify_topic(kafka, rows):
    """Reads the topic back and folds it per key in offset order: a topic whose changes
    fold to other rows than the generator's would make every engine miss the final rows,
    and this tells that apart from an engine's fault.  Holds the whole topic in memory
    (about 1.9 KiB an event): for runs of up to a few 100k changes."""
    got = {}
    msgs = kafka.consume_all(TOPIC, timeout=600)
    for m in msgs:
        key = json.loads(m.key)["payload"]["id"]
        payload = json.loads(m.value)["payload"]
        after = payload["after"]
        if payload["op"] == "d":
            got.pop(key, None)
        else:
            got[key] = (after["customer"], int.from_bytes(base64.b64decode(after["amount"]),
                                                          "big", signed=True), after["note"])
    want = {k: (r["customer"], r["amount"], r["note"]) for k, r in rows.items()}
    if got != want:
        bad = [k for k in set(got) | set(want) if got.get(k) != want.get(k)]
        raise RuntimeError(f"the topic's {len(msgs)} records fold to {len(got)} rows, not the "
                           f"{len(want)} generated; {len(bad)} keys differ, e.g. {sorted(bad)[:5]}")
    print(f"topic verified: {len(msgs)} records fold to the {len(want)} final rows")


# -- measuring ----------------------------------------------------------------

def proc_cpu(pid):
    """utime + stime of a live process (every thread), in seconds; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read().rsplit(")", 1)[1].split()
        return (int(st[11]) + int(st[12])) / CLK_TCK
    except (OSError, ValueError, IndexError):
        return None


def vm_hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class PgCpu:
    """The CPU seconds of a PostgreSQL server so far: every live server process's utime +
    stime, plus the postmaster's cutime + cstime (the backends it has reaped)."""

    def __init__(self, pg):
        self.pid = int((pg.datadir / "postmaster.pid").read_text().split()[0])

    def total(self):
        secs = 0.0
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                st = f.read().rsplit(")", 1)[1].split()
            secs += (int(st[13]) + int(st[14])) / CLK_TCK
            kids = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        except OSError:
            return secs
        for pid in [self.pid] + [int(k) for k in kids]:
            secs += proc_cpu(pid) or 0.0
        return secs


class HwmSampler:
    """Samples a process's VmHWM on a thread every 0.2 s; the peak only grows, so the last
    sample before the process is stopped is within 0.2 s of the true peak."""

    def __init__(self, pid):
        self.pid = pid
        self.kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            self.kib = max(self.kib, vm_hwm_kib(self.pid))
            if self._stop.wait(0.2):
                return

    def stop(self):
        self.kib = max(self.kib, vm_hwm_kib(self.pid))
        self._stop.set()
        self._thread.join()
        return self.kib


def checksum_sql(table):
    return (f"SELECT count(*), coalesce(sum(hashtext(id::text || '|' || customer::text || '|' || "
            f"amount::text || '|' || note)), 0) FROM {table}")


def table_exists(pg, table):
    return pg.psql(f"SELECT to_regclass('public.{table}') IS NOT NULL", db="bench") == "t"


def table_diff(pg, table, limit=5):
    """A few rows that differ between `table` and the final rows (table ref)."""
    try:
        if not table_exists(pg, table):
            return f"{table} does not exist"
        out = []
        for a, b, what in ((table, "ref", "unexpected"), ("ref", table, "missing")):
            rows = pg.psql(f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT SELECT * FROM {b}) x; "
                           f"(SELECT * FROM {a} EXCEPT SELECT * FROM {b}) ORDER BY id LIMIT {limit}",
                           db="bench")
            out.append(f"{what} in {table}: {rows}")
        return "\n".join(out)
    except Exception as e:  # The diff is a diagnosis; its own failure must not hide the first.
        return f"(no diff: {e})"


def checksum(conn, table):
    """`table`'s count and checksum as psql -At prints them ("count|sum"), or None while
    the table does not exist.  One psycopg2 connection for every poll: a psql per poll
    would cost a fork, an exec and a backend each time, on the machine being measured."""
    import psycopg2
    try:
        with conn.cursor() as cur:
            cur.execute(checksum_sql(table))
            n, total = cur.fetchone()
            return f"{n}|{total}"
    except psycopg2.errors.UndefinedTable:
        return None


def wait_until_right(pg, proc, table, want, poll, deadline, log, extra_check=None):
    """Polls `table` until its checksum is `want` (and extra_check() holds); the caller
    reads the clock right after.  Returns the time.perf_counter() of the first poll that
    saw a row in the table (the end of the engine's start-up: its first write committed),
    and whether that poll already saw the final rows (then there is no rate after it).
    Raises if the process stops or the deadline passes."""
    first = got = None
    conn = pg.connect("bench")
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args[0]} stopped (exit {proc.returncode}); see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{table} did not reach the final rows in time "
                                   f"(count|checksum {got}, expected {want}); see {log}\n"
                                   f"{table_diff(pg, table)}")
            got = checksum(conn, table)
            at_once = False
            if first is None and got is not None and not got.startswith("0|"):
                first = time.perf_counter()
                at_once = True
            if got == want and (extra_check is None or extra_check()):
                return first, at_once
            time.sleep(poll)
    finally:
        conn.close()


def stop(proc, timeout=60):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the engines ----------------------------------------------------------------

class Bench:
    def __init__(self, a, pg, kafka, tmp, evs, rows, want):
        self.a, self.pg, self.kafka, self.tmp = a, pg, kafka, tmp
        self.evs, self.rows, self.want = evs, rows, want
        self.pgcpu = PgCpu(pg)
        self.procs = []
        self.classpath = None

    def _spawn(self, cmd, log, **kw):
        """Starts an engine's process, its output into `log`; it gets SIGKILL when this
        driver dies (PR_SET_PDEATHSIG), so a killed run leaves no JVM or daemon behind."""
        out = open(log, "wb")
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=_die_with_parent, **kw)
        out.close()
        self.procs.append(proc)
        return proc

    def cleanup(self):
        for proc in self.procs:
            stop(proc, 20)

    def _result(self, wall, n, cpu, rss_kib, pg0, note="", first=None, at_once=False):
        """One measurement.  `first`: seconds from the start to the first row seen in the
        target (start-up); the steady rate is then the changes over the rest of the run
        (a slight overestimate: the first write already holds some changes), none when
        the first rows seen were already the final ones (`at_once`)."""
        steady = None
        if first is not None and not at_once and wall - first > 0:
            steady = n / (wall - first)
        return {"wall": wall, "n": n, "rate": n / wall, "cpu": cpu,
                "rss_mib": None if rss_kib is None else rss_kib / 1024,
                "pg_cpu": self.pgcpu.total() - pg0, "note": note, "first": first,
                "steady": steady}

    def tidemark(self, rnd):
        d = self.tmp / f"tidemark-r{rnd}"
        d.mkdir()
        table = f"tm_r{rnd}"
        job = "\n".join([
            f"CREATE TABLE src ({COLS}) WITH (connector = 'kafka', bootstrap_servers = "
            f"'{self.kafka.bootstrap}', topic = '{TOPIC}', group_id = 'bench-tm-r{rnd}', "
            "startup = 'earliest');",
            f"CREATE TABLE t ({COLS}) WITH (connector = 'postgres', dsn = "
            f"'{self.pg.dsn('bench')}', table = '{table}', create_table = true, "
            "delivery = 'exactly-once');",
            "INSERT INTO t SELECT id, customer, amount, note FROM src;",
            "SET checkpoint_interval = '1s';",
            "SET admin_address = '127.0.0.1:0';", ""])
        (d / "job.sql").write_text(job)
        log = d / "tidemark.log"
        pg0 = self.pgcpu.total()
        t0 = time.perf_counter()
        proc = self._spawn([self.a.tidemark, "run", str(d / "job.sql"), "--state-dir",
                            str(d / "state")], log, cwd=d)
        hwm = HwmSampler(proc.pid)
        no_prepared = lambda: self.pg.psql("SELECT count(*) FROM pg_prepared_xacts") == "0"  # noqa: E731
        first, at_once = wait_until_right(self.pg, proc, table, self.want, self.a.poll,
                                          time.monotonic() + self.a.timeout, log, no_prepared)
        wall = time.perf_counter() - t0
        cpu = proc_cpu(proc.pid)
        res = self._result(wall, len(self.evs), cpu, hwm.stop(), pg0, first=first - t0,
                           at_once=at_once)
        stop(proc)
        self.pg.psql(f"DROP TABLE {table}", db="bench")
        return res

    def build_connect(self):
        if self.classpath is None:
            m = re.search(r"<connect\.version>([^<]+)</", (CONNECT_DIR / "pom.xml").read_text())
            if m is None or m.group(1).strip() != kafka_version():
                print(f"note: bench/connect/pom.xml's connect.version "
                      f"({m.group(1) if m else 'unset'}) is not the broker's {kafka_version()}",
                      file=sys.stderr)
            from maven import module_classpath
            self.classpath = module_classpath(CONNECT_DIR, CONNECT_JAR,
                                              log=lambda m: print(m, file=sys.stderr))
        return self.classpath

    def jdbc(self, rnd):
        cp = self.build_connect()
        d = self.tmp / f"jdbc-r{rnd}"
        d.mkdir()
        table = f"jdbc_r{rnd}"
        self.pg.psql(f"CREATE TABLE {table} ({COLS})", db="bench")
        (d / "log4j.properties").write_text(
            "log4j.rootLogger=INFO, stdout\n"
            "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
            "log4j.logger.org.reflections=ERROR\n")
        worker = {
            "bootstrap.servers": self.kafka.bootstrap,
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable": "true",
            "value.converter.schemas.enable": "true",
            "offset.storage.file.filename": str(d / "connect.offsets"),
            "offset.flush.interval.ms": "10000",
            "listeners": f"http://127.0.0.1:{free_port()}",
            # The connector jar and Connect's own plugins carry ServiceLoader manifests
            # (KIP-898), so no reflective scan of the classpath (15 s here) is needed.
            "plugin.discovery": "service_load",
        }
        conn = {
            "name": f"jdbc-r{rnd}",
            "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
            "tasks.max": str(self.a.jdbc_tasks),
            "topics": TOPIC,
            "connection.url": f"jdbc:postgresql://{self.pg.host}:{self.pg.port}/bench",
            "connection.username": "postgres",
            "connection.password": "",
            # Hibernate's own pool: Agroal's is not on Maven Central (bench/connect/pom.xml).
            "connection.provider": "org.hibernate.engine.jdbc.connections.internal."
                                   "DriverManagerConnectionProviderImpl",
            "insert.mode": "upsert",
            "primary.key.mode": "record_key",
            "delete.enabled": "true",
            "schema.evolution": "basic",
            "collection.name.format": table,
        }
        for props, extra in ((conn, self.a.jdbc_conf), (worker, self.a.jdbc_worker_conf)):
            for kv in extra:
                k, _, v = kv.partition("=")
                props[k.strip()] = v.strip()
        for name, props in (("worker.properties", worker), ("jdbc-sink.properties", conn)):
            (d / name).write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        # The JVM options connect-standalone.sh (kafka-run-class.sh) gives a worker.
        cmd = [find_java() or "java", "-Xms256m", f"-Xmx{self.a.jdbc_heap}", "-server",
               "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
               "-XX:+ExplicitGCInvokesConcurrent", "-XX:MaxInlineLevel=15",
               "-Djava.awt.headless=true", f"-Dlog4j.configuration=file:{d / 'log4j.properties'}",
               "-cp", cp, "org.apache.kafka.connect.cli.ConnectStandalone",
               str(d / "worker.properties"), str(d / "jdbc-sink.properties")]
        log = d / "connect.log"
        pg0 = self.pgcpu.total()
        t0 = time.perf_counter()
        proc = self._spawn(cmd, log, cwd=d)
        hwm = HwmSampler(proc.pid)
        first, at_once = wait_until_right(self.pg, proc, table, self.want, self.a.poll,
                                          time.monotonic() + self.a.timeout, log)
        wall = time.perf_counter() - t0
        cpu = proc_cpu(proc.pid)
        res = self._result(wall, len(self.evs), cpu, hwm.stop(), pg0, first=first - t0,
                           at_once=at_once)
        stop(proc)
        self.pg.psql(f"DROP TABLE {table}", db="bench")
        return res

    def copy(self, rnd):
        table = f"copy_r{rnd}"
        self.pg.psql(f"CREATE TABLE {table} ({COLS})", db="bench")
        cmd = [str(self.pg.bindir / "psql"), "-X", "-q", "-h", self.pg.host, "-p",
               str(self.pg.port), "-U", "postgres", "-d", "bench", "-c",
               f"\\copy {table} FROM '{self.tmp / 'final.tsv'}'"]
        pg0 = self.pgcpu.total()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd)
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"psql \\copy failed (exit {proc.returncode})")
        # No RSS: psql's ru_maxrss would be this driver's, carried over fork and exec.
        res = self._result(wall, len(self.rows), ru.ru_utime + ru.ru_stime, None, pg0)
        got = self.pg.psql(checksum_sql(table), db="bench")
        if got != self.want:
            raise RuntimeError(f"\\copy loaded {got}, expected {self.want}")
        self.pg.psql(f"DROP TABLE {table}", db="bench")
        return res

    def naive(self, rnd):
        table = f"naive_r{rnd}"
        evs = self.evs[:self.a.naive_changes]
        conn = self.pg.connect("bench")
        cur = conn.cursor()
        cur.execute(f"CREATE TABLE {table} ({COLS})")
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        pg0 = self.pgcpu.total()
        t0 = time.perf_counter()
        for k, op, before, after in evs:
            if op == "d":
                cur.execute(f"DELETE FROM {table} WHERE id = %s", (k,))
            else:
                cur.execute(f"INSERT INTO {table} VALUES (%s, %s, %s, %s) "
                            "ON CONFLICT (id) DO UPDATE SET customer = EXCLUDED.customer, "
                            "amount = EXCLUDED.amount, note = EXCLUDED.note",
                            (after["id"], after["customer"], cents_text(after["amount"]),
                             after["note"]))
        wall = time.perf_counter() - t0
        ru = resource.getrusage(resource.RUSAGE_SELF)
        cpu = ru.ru_utime + ru.ru_stime - ru0.ru_utime - ru0.ru_stime
        res = self._result(wall, len(evs), cpu, None, pg0,
                           f"first {len(evs)} changes; CPU is this Python loop's")
        cur.execute(f"DROP TABLE {table}")
        conn.close()
        return res


# -- reporting ----------------------------------------------------------------

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def med_spread(xs, fmt):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    m = statistics.median(xs)
    if len(xs) == 1:
        return format(m, fmt)
    return f"{format(m, fmt)} ({format(min(xs), fmt)}–{format(max(xs), fmt)})"


def machine():
    return (f"{os.cpu_count()} cores (nproc), {cpu_model()}, Linux {os.uname().release}; "
            f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def report(results, a):
    print(f"\nmedians (min–max) over {a.rounds} round(s):")
    units = {"copy": "rows/s"}
    for e in a.engines:
        rs = results[e]
        if not rs:
            continue
        rate = med_spread([r["rate"] for r in rs], ",.0f")
        print(f"  {e:9s} {GUARANTEE[e]}")
        rss = ("" if rs[0]["rss_mib"] is None else
               f"peak RSS {med_spread([r['rss_mib'] for r in rs], '.1f')} MiB, ")
        print(f"            wall {med_spread([r['wall'] for r in rs], '.2f')} s, "
              f"{rate} {units.get(e, 'changes/s')}, "
              f"CPU {med_spread([r['cpu'] for r in rs], '.2f')} s, {rss}"
              f"PostgreSQL CPU {med_spread([r['pg_cpu'] for r in rs], '.2f')} s"
              + (f"  [{rs[0]['note']}]" if rs[0]["note"] else ""))
        if rs[0]["first"] is not None:
            print(f"            start-up (first rows seen) "
                  f"{med_spread([r['first'] for r in rs], '.2f')} s, after it "
                  f"{med_spread([r['steady'] for r in rs], ',.0f')} changes/s")
    tm = results.get("tidemark")
    if not tm:
        return
    tm_rate = med([r["rate"] for r in tm])
    tm_cpu = med([r["cpu"] for r in tm])
    tm_pg = med([r["pg_cpu"] for r in tm])
    print("ratios (of medians):")
    if results.get("jdbc"):
        j = results["jdbc"]
        tm_steady, j_steady = med([r["steady"] for r in tm]), med([r["steady"] for r in j])
        steady = ("" if tm_steady is None or j_steady is None else
                  f" (after start-up {tm_steady / j_steady:.2f})")
        print(f"  tidemark / JDBC sink: changes/s {tm_rate / med([r['rate'] for r in j]):.2f}"
              f"{steady}, "
              f"wall {med([r['wall'] for r in tm]) / med([r['wall'] for r in j]):.2f}, "
              f"process CPU {tm_cpu / med([r['cpu'] for r in j]):.2f}, "
              f"PostgreSQL CPU {tm_pg / med([r['pg_cpu'] for r in j]):.2f}, "
              f"peak RSS {med([r['rss_mib'] for r in tm]) / med([r['rss_mib'] for r in j]):.2f}"
              f"  (exactly-once vs at-least-once)")
    if results.get("copy"):
        print(f"  tidemark changes/s / \\copy rows/s = "
              f"{tm_rate / med([r['rate'] for r in results['copy']]):.2f} (goal >= 0.5)")
    if results.get("naive"):
        print(f"  tidemark / naive changes/s = "
              f"{tm_rate / med([r['rate'] for r in results['naive']]):.1f} (goal >= 10)")


def run_rounds(bench, a, results):
    if "jdbc" in a.engines:
        bench.build_connect()
    for rnd in range(a.rounds):
        order = a.engines if rnd % 2 == 0 else list(reversed(a.engines))
        for e in order:
            r = getattr(bench, e)(rnd)
            results[e].append(r)
            rss = "-" if r["rss_mib"] is None else f"{r['rss_mib']:.1f} MiB"
            first = ""
            if r["first"] is not None:
                then = ("all at once" if r["steady"] is None else
                        f"then {r['steady']:,.0f} /s")
                first = f"  (first rows at {r['first']:.2f} s, {then})"
            print(f"round {rnd + 1} {e:9s} wall {r['wall']:8.2f} s  {r['rate']:10,.0f} /s  "
                  f"CPU {r['cpu']:7.2f} s  peak RSS {rss:>11s}  "
                  f"PostgreSQL CPU {r['pg_cpu']:6.2f} s{first}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--changes", type=int, default=1_000_000)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--delete-pct", type=float, default=5)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--naive-changes", type=int, default=100_000)
    ap.add_argument("--engines", default=",".join(ENGINES),
                    help="comma-separated, from tidemark,jdbc,copy,naive (default: all)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="rounds; every other round runs the engines in reverse order")
    ap.add_argument("--poll", type=float, default=0.2,
                    help="seconds between checksum polls of a streaming engine's table")
    ap.add_argument("--timeout", type=float, default=1800,
                    help="seconds an engine may take to reach the final rows")
    ap.add_argument("--jdbc-heap", default="2g",
                    help="the Connect worker's -Xmx (default 2g, connect-standalone.sh's)")
    ap.add_argument("--jdbc-tasks", type=int, default=1, help="the JDBC sink's tasks.max")
    ap.add_argument("--jdbc-conf", action="append", default=[], metavar="KEY=VALUE",
                    help="an extra JDBC sink connector setting (repeatable), e.g. batch.size=2000")
    ap.add_argument("--jdbc-worker-conf", action="append", default=[], metavar="KEY=VALUE",
                    help="an extra Connect worker setting (repeatable), e.g. "
                         "consumer.max.poll.records=2000")
    ap.add_argument("--tidemark", default=os.environ.get("TIDEMARK_BIN",
                                                         str(REPO / "build" / "tidemark")))
    ap.add_argument("--verify-topic", action="store_true",
                    help="read the topic back and check that it folds to the final rows "
                         "(holds the topic in memory: for small runs)")
    ap.add_argument("--keep", help="keep the job files and logs in DIR")
    a = ap.parse_args()
    a.tidemark = str(Path(a.tidemark).resolve())
    a.engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    bad = [e for e in a.engines if e not in ENGINES]
    if bad or not a.engines:
        ap.error(f"unknown engine(s) {bad}; choose from {','.join(ENGINES)}")

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    tmp = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="pg_sink_bench."))
    tmp.mkdir(parents=True, exist_ok=True)
    evs, rows = events(a.changes, a.keys, a.delete_pct)
    print(f"{len(evs)} changes over {a.keys} keys, {len(rows)} final rows; "
          f"engines {','.join(a.engines)}, {a.rounds} round(s)")
    print(f"machine: {machine()} (at start)")
    print(f"versions: Kafka {kafka_version()} broker and Connect worker, "
          "debezium-connector-jdbc 3.6.0.Final (+ debezium-sink 3.6.1.Final), tidemark "
          f"{a.tidemark}")
    if "jdbc" in a.engines:
        extra = " ".join(a.jdbc_conf + a.jdbc_worker_conf)
        print(f"JDBC sink: tasks.max={a.jdbc_tasks}, -Xmx{a.jdbc_heap}, settings beyond the "
              f"bench's: {extra or 'none (batch.size 500, max.poll.records 500: the defaults)'}")
    results = {e: [] for e in a.engines}
    try:
        with PgServer() as pg, KafkaServer() as kafka:
            pg.psql("CREATE DATABASE bench")
            with open(tmp / "final.tsv", "w") as f:
                for r in rows.values():
                    f.write(f"{r['id']}\t{r['customer']}\t{cents_text(r['amount'])}\t"
                            f"{r['note']}\n")
            pg.psql(f"CREATE TABLE ref ({COLS})", db="bench")
            pg.psql(f"\\copy ref FROM '{tmp / 'final.tsv'}'", db="bench")
            want = pg.psql(checksum_sql("ref"), db="bench")
            if any(e in a.engines for e in ("tidemark", "jdbc")):
                kafka.create_topic(TOPIC, partitions=a.partitions)
                t0 = time.perf_counter()
                nbytes = produce(kafka, evs, a.partitions)
                print(f"topic {TOPIC}: {len(evs)} events, {nbytes / 2**20:.1f} MiB "
                      f"(keys + values, JSON with schemas), written in "
                      f"{time.perf_counter() - t0:.1f} s")
                if a.verify_topic:
                    verify_topic(kafka, rows)
            bench = Bench(a, pg, kafka, tmp, evs, rows, want)
            try:
                run_rounds(bench, a, results)
            finally:
                bench.cleanup()
        report(results, a)
        print(f"machine: {machine()} (at end)")
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
