#!/usr/bin/env python3
"""Throwaway Apache Kafka brokers (KRaft, one node) for tests and benchmarks.

The broker comes from Maven Central: tests/kafka/pom.xml names it, mvn
resolves it into ~/.m2, and its classpath is cached in
~/.cache/tidemark/kafka-classpath-<version>-<pom hash>.txt, outside build/
so that a clean build keeps it.  scripts/setup.sh fills that cache (through
`kafkaserver.py fetch`); when it is missing, the first KafkaServer fills it.

Each KafkaServer owns one directory that holds the broker's configuration,
its data (the KRaft metadata log and the topics) and its log, kafka.log.  The
broker runs in combined mode (broker and controller in one JVM) on
127.0.0.1, on two free ports, one for clients and one for the controller.
It is set up so that transactions and consumer groups work on a single node:
every internal topic has one replica and needs one in-sync replica.

Invariants:
  1. Nothing outside the server's directory is written, except ~/.m2 and
     the cache in ~/.cache/tidemark (the classpath, and a class-data-sharing
     archive that makes later JVMs start faster).  Several servers can run
     side by side.
  2. The ports are chosen once, by the first start.  restart() and
     start_process() reuse them and the data, so bootstrap addresses handed
     out before stay valid and committed data survives.
  3. A JVM started for a test dies with the Python process that started it
     (PR_SET_PDEATHSIG), even when that process is killed -9; only the
     command line's `start` leaves a broker running on purpose.

Use from Python:

    with KafkaServer() as kafka:
        kafka.create_topic("orders", partitions=3)
        kafka.produce("orders", b"k", b"v")
        assert [m.value for m in kafka.consume_all("orders")] == [b"v"]

Use from a shell (the broker keeps running until `stop`):

    BOOTSTRAP=$(python3 tests/lib/kafkaserver.py start /tmp/kafka1)
    python3 tests/lib/kafkaserver.py stop /tmp/kafka1

The clients here use confluent_kafka (Debian's python3-confluent-kafka);
only fetch, start and stop need nothing but the JDK and mvn.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import ctypes
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

ROOT = Path(__file__).resolve().parents[2]
POM = ROOT / "tests" / "kafka" / "pom.xml"
HOST = "127.0.0.1"
NODE_ID = 1
STATE_FILE = "kafkaserver.json"
CONFIG_FILE = "server.properties"
LOG_FILE = "kafka.log"

# The broker's settings.  Callers may override any of them through
# extra_conf, e.g. auto.create.topics.enable=false.
# For a broker that is never restarted, and so needs no quick re-registration
# after a kill: Kafka's own heartbeat settings rather than BASE_CONF's 4 s
# session, which on a loaded machine lapses, so that the controller fences its
# only broker ("All brokers are currently fenced"): topics then can neither
# be created nor led, and producers stall.
STEADY_CONF = {"broker.heartbeat.interval.ms": 2000, "broker.session.timeout.ms": 9000}

BASE_CONF = {
    # A single node: every internal topic lives on it alone.  Without these
    # the transaction coordinator and the group coordinator wait forever for
    # replicas that do not exist.
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    # The defaults (50 partitions each) create 50 logs on the first group
    # or transaction, which costs seconds and gains nothing on one node.
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.num.partitions": "1",
    "group.initial.rebalance.delay.ms": "0",
    # A producer killed inside a transaction holds back read_committed
    # consumers until the coordinator aborts it; check every second rather
    # than every ten, so that crash tests wait for transaction.timeout.ms
    # and not much longer.
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
    # A broker that comes back after kill -9 cannot register again until
    # the session of its previous incarnation expires (9 s by default), so
    # crash tests would wait that long on every restart.
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "4000",
    # Sized for a small shared test machine and a 512 MB heap: the log
    # cleaner (which compacts the offsets and transaction topics) would
    # otherwise take 128 MB of it for its dedupe buffer.
    "num.network.threads": "2",
    "num.io.threads": "4",
    "background.threads": "4",
    "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
    "num.partitions": "1",
}

# The heap comes from KafkaServer(heap=...).
JVM_OPTS = [
    "-Xms128m",
    "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
    "-Djava.net.preferIPv4Stack=true",
]

# fast_start: C1 only.  Measured on Java 17, a broker then uses 40% less CPU
# to get ready (about 4 s instead of 6.6 s), which is most of its start time
# on a busy two-core machine; in exchange its steady state is slower, which
# tests do not notice and benchmarks would.
FAST_START_OPTS = ["-XX:TieredStopAtLevel=1"]

# log4j 1 (reload4j), as Kafka 3.9 uses.  Everything goes to stdout, which
# start_process() sends to kafka.log together with anything the JVM prints.
LOG4J_PROPERTIES = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.clients=WARN
"""

# A dynamic class-data-sharing archive of the broker's classes, made by the
# first broker that finds none (when it stops cleanly) and mapped by every
# later one: it saves another 40% of the CPU a start takes.  The name
# carries a hash of the classpath and of the JVM, so an updated JDK or broker
# makes a new archive instead of meeting one it would reject.  A claim file
# keeps brokers that run at the same time from dumping it together.
CDS_CLAIM_STALE_SECONDS = 600

# Variables that would change the JVM's settings behind our back.
JVM_ENV_DROP = ("JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH",
                "KAFKA_HEAP_OPTS", "KAFKA_OPTS", "KAFKA_LOG4J_OPTS")

STORAGE_TOOL = "kafka.tools.StorageTool"
BROKER_MAIN = "kafka.Kafka"

PR_SET_PDEATHSIG = 1


class KafkaError(RuntimeError):
    """The broker or a client call failed; the message carries what to read."""


class KafkaMessage(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]
    headers: List[Tuple[str, bytes]]
    timestamp: int


def say(msg: str) -> None:
    print(f"==> {msg}", file=sys.stderr, flush=True)


# -- the broker's jars ------------------------------------------------------

def kafka_version(pom: Path = POM) -> str:
    """The broker version tests/kafka/pom.xml asks for (its kafka.version)."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(pom).getroot().find("m:properties/m:kafka.version", ns)
    if node is None or not (node.text or "").strip():
        raise KafkaError(f"{pom} sets no <kafka.version> property")
    return node.text.strip()


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tidemark"


def classpath_file(pom: Path = POM) -> Path:
    """Where the classpath for this pom is cached.

    The name carries a hash of the pom, so that any edit to it (another
    version, another logging jar) makes a fresh resolution.
    """
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:12]
    return cache_dir() / f"kafka-classpath-{kafka_version(pom)}-{digest}.txt"


def _read_classpath(path: Path) -> Optional[List[str]]:
    """The jars a cache file names, or None if it is missing or any jar is gone."""
    try:
        jars = [j for j in path.read_text().strip().split(os.pathsep) if j]
    except OSError:
        return None
    if not jars or not all(os.path.isfile(j) for j in jars):
        return None
    return jars


def resolve_classpath(pom: Path = POM) -> List[str]:
    """The broker's classpath: from the cache, or from mvn, which fills the cache.

    mvn runs offline first, which takes seconds when ~/.m2 already holds
    every jar (a CI cache of ~/.m2, say), and online only when that fails.
    A lock keeps two callers from running mvn on the same cache at once.
    """
    path = classpath_file(pom)
    jars = _read_classpath(path)
    if jars:
        return jars
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / ".kafka-classpath.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        jars = _read_classpath(path)  # Another caller may have just filled it.
        if jars:
            return jars
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaError(f"no cached Kafka classpath at {path} and no mvn to make one; "
                             f"install maven (scripts/setup.sh does)")
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        cmd = [mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(pom),
               "dependency:build-classpath", "-Dmdep.includeScope=runtime",
               f"-Dmdep.outputFile={tmp}"]
        outputs = []
        for offline in (True, False):
            say(f"resolving Apache Kafka {kafka_version(pom)} with mvn "
                f"({'offline, from ~/.m2' if offline else 'from Maven Central'})")
            proc = subprocess.run(cmd[:1] + (["-o"] if offline else []) + cmd[1:],
                                  capture_output=True, text=True, cwd=pom.parent,
                                  timeout=1800)
            outputs.append(proc.stdout + proc.stderr)
            if proc.returncode == 0:
                break
        else:
            tmp.unlink(missing_ok=True)
            raise KafkaError(f"mvn could not resolve {pom}:\n"
                             + re.sub(r"\x1b\[[0-9;]*m", "", outputs[-1])[-4000:])
        os.replace(tmp, path)
    jars = _read_classpath(path)
    if not jars:
        raise KafkaError(f"mvn wrote a classpath to {path} that names missing jars")
    return jars


def cds_archive_file(java: str, classpath: Sequence[str]) -> Path:
    """Where the class-data-sharing archive for this JVM and classpath goes."""
    real = Path(java).resolve()
    libjvm = real.parents[1] / "lib" / "server" / "libjvm.so"
    stamp = libjvm if libjvm.exists() else real
    st = stamp.stat()
    key = "\0".join([str(real), str(st.st_size), str(st.st_mtime_ns)] + list(classpath))
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cache_dir() / f"kafka-cds-{digest}.jsa"


def _claim_cds_dump(archive: Path) -> bool:
    """True if this caller may dump the archive: nobody else is doing so."""
    claim = archive.with_name(archive.name + ".dumping")
    for _ in range(2):
        try:
            os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            return True
        except FileExistsError:
            try:
                if time.time() - claim.stat().st_mtime < CDS_CLAIM_STALE_SECONDS:
                    return False
                claim.unlink()  # Left by a broker that was killed; take over.
            except FileNotFoundError:
                pass
        except OSError:
            return False
    return False


def _finish_cds_dump(archive: Path, tmp: Path) -> None:
    # The JVM writes the archive as it exits; a broker that was killed
    # writes none, or only part of one, and the next broker tries again.
    try:
        if tmp.exists() and tmp.stat().st_size > 0:
            os.replace(tmp, archive)
    finally:
        tmp.unlink(missing_ok=True)
        archive.with_name(archive.name + ".dumping").unlink(missing_ok=True)


def missing_prerequisite() -> Optional[str]:
    """Why no broker can be started here (a reason to skip a test with), or None."""
    if find_java() is None:
        return "no java: install openjdk-17-jdk-headless (scripts/setup.sh does)"
    if shutil.which("mvn") is None and not classpath_file().exists():
        return "no mvn to fetch the Kafka broker with: install maven (scripts/setup.sh does)"
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        return "no confluent_kafka: install python3-confluent-kafka (scripts/setup.sh does)"
    return None


def find_java() -> Optional[str]:
    """$JAVA_HOME/bin/java if set, else java on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and os.access(Path(home) / "bin" / "java", os.X_OK):
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


# -- helpers -----------------------------------------------------------------

def _free_port() -> int:
    # The port is free when we look; another process could take it before the
    # broker binds it, which start() handles by retrying with new ports.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _cluster_id() -> str:
    # What `kafka-storage random-uuid` prints: a UUID in URL-safe base64
    # without padding.  Kafka avoids a leading '-' for the command line's sake.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _die_with_parent() -> None:
    # Runs in the child between fork and exec.  The kernel sends SIGKILL to
    # the JVM when the thread that started it dies, so a test run killed -9
    # cannot leave a broker behind holding ports and half a gigabyte.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _to_bytes(v: Union[str, bytes, None]) -> Optional[bytes]:
    return v.encode() if isinstance(v, str) else v


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited but still has a pid; only its parent can reap it.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class KafkaServer:
    """One throwaway single-node Kafka broker; see the module docstring."""

    def __init__(
        self,
        basedir: Union[str, Path, None] = None,
        extra_conf: Optional[Mapping[str, object]] = None,
        heap: str = "512m",
        ready_timeout: float = 120,
        stop_timeout: float = 30,
        die_with_parent: bool = True,
        fast_start: bool = True,
    ):
        """basedir, if given, must be missing or empty: stop() deletes it.

        extra_conf overrides server.properties settings (BASE_CONF).  heap is
        the JVM's -Xmx.  die_with_parent=False lets the broker outlive this
        process (the command line's `start`).  fast_start runs the JVM with
        C1 only (FAST_START_OPTS): quicker to start, slower when busy; turn
        it off for benchmarks.
        """
        self._requested_basedir = Path(basedir).resolve() if basedir is not None else None
        self.extra_conf = {k: str(v) for k, v in (extra_conf or {}).items()}
        self.heap = heap
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.die_with_parent = die_with_parent
        self.fast_start = fast_start
        self.host = HOST
        self.port: Optional[int] = None
        self.controller_port: Optional[int] = None
        self.cluster_id: Optional[str] = None
        self.basedir: Optional[Path] = None
        self.pid: Optional[int] = None
        self._proc: Optional[subprocess.Popen] = None
        self._producer = None
        self._classpath: Optional[List[str]] = None
        # (archive, file being dumped) while this broker's JVM dumps the
        # class-data-sharing archive at its exit.
        self._cds_dump: Optional[Tuple[Path, Path]] = None

    # -- paths ---------------------------------------------------------------

    @property
    def datadir(self) -> Path:
        return self.basedir / "data"

    @property
    def logfile(self) -> Path:
        return self.basedir / LOG_FILE

    @property
    def config_file(self) -> Path:
        return self.basedir / CONFIG_FILE

    @property
    def bootstrap(self) -> str:
        """host:port for bootstrap.servers."""
        if self.port is None:
            raise KafkaError("the broker has not been started")
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.pid is not None and _pid_alive(self.pid)

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> "KafkaServer":
        """Formats the storage (once) and starts the broker; returns self.

        Returns when a client can fetch metadata that lists the broker.
        """
        if self.running:
            return self
        if self.basedir is not None:
            # Stopped by stop_process() or kill(): keep the ports and data.
            return self.start_process()
        self._classpath = resolve_classpath()
        self._make_basedir()
        atexit.register(self._atexit)
        self.cluster_id = _cluster_id()
        last_error = None
        # Ports picked by _free_port() can be taken before the broker binds
        # them; a few fresh ones make that race harmless.  The ports are not
        # part of the formatted storage, so changing them needs no reformat.
        for attempt in range(3):
            self.port, self.controller_port = _free_port(), _free_port()
            while self.controller_port == self.port:
                self.controller_port = _free_port()
            self._write_config()
            if attempt == 0:
                self._format_storage()
            try:
                return self.start_process()
            except KafkaError as e:
                last_error = e
                if "Address already in use" not in self.log_tail():
                    raise
                self._terminate(signal.SIGKILL, 10)
        raise last_error

    def start_process(self) -> "KafkaServer":
        """Starts the JVM on the existing data and ports and waits until it is ready."""
        if self.basedir is None or not self.config_file.exists():
            raise KafkaError("start_process() needs a broker that start() has set up")
        if self.running:
            return self
        java = find_java()
        if java is None:
            raise KafkaError("no java on PATH (install openjdk-17-jdk-headless; "
                             "scripts/setup.sh does)")
        if self._classpath is None:
            self._classpath = resolve_classpath()
        cmd = [java, f"-Xmx{self.heap}"] + JVM_OPTS
        if self.fast_start:
            cmd += FAST_START_OPTS
        cmd += self._cds_opts(java)
        cmd += [f"-Dlog4j.configuration=file:{self.basedir / 'log4j.properties'}",
                "-cp", os.pathsep.join(self._classpath), BROKER_MAIN, str(self.config_file)]
        self._log_note("starting the broker")
        with open(self.logfile, "ab") as log:
            self._proc = subprocess.Popen(
                cmd, cwd=self.basedir, env=self._jvm_env(), stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent if self.die_with_parent else None)
        self.pid = self._proc.pid
        self._save_state()
        try:
            self.wait_ready(self.ready_timeout)
        except BaseException:
            self._terminate(signal.SIGKILL, 10)
            raise
        return self

    def wait_ready(self, timeout: float) -> None:
        """Waits until the broker answers a metadata request that lists itself."""
        deadline = time.monotonic() + timeout
        self._wait(lambda: self._port_open(), deadline, "to accept connections")
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(self.client_conf())

        def listed():
            try:
                md = admin.list_topics(timeout=max(0.5, min(5.0, deadline - time.monotonic())))
            except Exception:
                return False
            return NODE_ID in md.brokers

        self._wait(listed, deadline, "to list itself in its metadata")

    def stop_process(self) -> bool:
        """Stops the broker cleanly (SIGTERM, then SIGKILL past stop_timeout).

        The data directory and the ports stay; start_process() brings the
        broker back with everything that was committed.  Returns False if
        the broker had to be killed, True otherwise.
        """
        self._drop_clients()
        return self._terminate(signal.SIGTERM, self.stop_timeout)

    def kill(self) -> None:
        """SIGKILLs the broker, as a crash would; the data stays for start_process()."""
        self._drop_clients()
        self._terminate(signal.SIGKILL, 30)

    def restart(self) -> "KafkaServer":
        """stop_process() then start_process(): same ports, same data."""
        self.stop_process()
        return self.start_process()

    def pause(self) -> None:
        """SIGSTOPs the broker: connections stay open and nothing answers."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONTs a paused broker."""
        self._signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stops the broker and deletes its directory; safe to call twice."""
        self.stop_process()
        if self.basedir is not None:
            shutil.rmtree(self.basedir, ignore_errors=True)
            self.basedir = None
        atexit.unregister(self._atexit)

    def detach(self) -> None:
        """Leaves the broker running when this Python process exits (CLI use)."""
        atexit.unregister(self._atexit)

    def __enter__(self) -> "KafkaServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _atexit(self) -> None:
        try:
            self.stop()
        except Exception:
            pass

    # -- clients -------------------------------------------------------------

    def client_conf(self, **extra) -> dict:
        """librdkafka settings for this broker; keywords use '_' for '.'."""
        conf = {"bootstrap.servers": self.bootstrap}
        conf.update({k.replace("_", "."): v for k, v in extra.items()})
        return conf

    def admin(self):
        from confluent_kafka.admin import AdminClient

        return AdminClient(self.client_conf())

    def create_topic(self, name: str, partitions: int = 1,
                     config: Optional[Mapping[str, object]] = None,
                     timeout: float = 30) -> None:
        """Creates a topic and waits until every partition has a leader."""
        from confluent_kafka.admin import NewTopic

        admin = self.admin()
        topic = NewTopic(name, num_partitions=partitions, replication_factor=1,
                         config={k: str(v) for k, v in (config or {}).items()})
        future = admin.create_topics([topic], operation_timeout=timeout)[name]
        try:
            future.result(timeout)
        except Exception as e:
            raise KafkaError(f"creating topic {name!r} failed: {e}") from None

        def led():
            md = admin.list_topics(name, timeout=5).topics.get(name)
            return (md is not None and md.error is None and len(md.partitions) == partitions
                    and all(p.leader == NODE_ID for p in md.partitions.values()))

        self._wait(led, time.monotonic() + timeout, f"to elect leaders for topic {name!r}")

    def partitions(self, topic: str, timeout: float = 10) -> List[int]:
        """The topic's partition numbers; KafkaError if it does not exist."""
        md = self.admin().list_topics(topic, timeout=timeout).topics.get(topic)
        if md is None or md.error is not None:
            raise KafkaError(f"topic {topic!r}: {md.error if md else 'not in metadata'}")
        return sorted(md.partitions)

    def produce(self, topic: str, key: Union[str, bytes, None], value: Union[str, bytes, None],
                headers: Union[Mapping[str, bytes], Sequence[Tuple[str, bytes]], None] = None,
                partition: Optional[int] = None, timeout: float = 30) -> Tuple[int, int]:
        """Produces one message outside any transaction; returns (partition, offset)."""
        if self._producer is None:
            from confluent_kafka import Producer

            self._producer = Producer(self.client_conf(acks="all"))
        result = {}

        def delivered(err, msg):
            result["err"], result["msg"] = err, msg

        kwargs = {"key": _to_bytes(key), "value": _to_bytes(value), "on_delivery": delivered}
        if headers:
            kwargs["headers"] = list(headers.items()) if isinstance(headers, Mapping) \
                else list(headers)
        if partition is not None:
            kwargs["partition"] = partition
        self._producer.produce(topic, **kwargs)
        self._producer.flush(timeout)
        if "msg" not in result:
            raise KafkaError(f"producing to {topic!r} was not acknowledged in {timeout}s")
        if result["err"] is not None:
            raise KafkaError(f"producing to {topic!r} failed: {result['err']}")
        return result["msg"].partition(), result["msg"].offset()

    def consume_all(self, topic: str, isolation: str = "read_committed",
                    timeout: float = 30, settle: bool = False) -> List[KafkaMessage]:
        """Every message of every partition, from the beginning to the end.

        The end is the last stable offset for read_committed (so an open
        transaction hides what follows it) and the high watermark for
        read_uncommitted.  It is the end the broker reports when the
        consumer gets there, known from librdkafka's partition-EOF event,
        which also fires when the log ends in aborted messages or in a
        transaction marker, where no message's offset + 1 reaches it.
        Messages come ordered by (partition, offset).

        A transaction can still be hidden for a moment after its
        commit_transaction() has returned: the coordinator writes the
        commit markers into the partitions after it answers, and a broker
        that restarts in between writes them once it is up again.
        settle=True first waits for that (wait_settled), so that everything
        committed before the call is read; it fails on a transaction that
        stays open.
        """
        from confluent_kafka import Consumer, KafkaError as CKError, TopicPartition

        if isolation not in ("read_committed", "read_uncommitted"):
            raise ValueError(f"isolation must be read_committed or read_uncommitted, "
                             f"not {isolation!r}")
        deadline = time.monotonic() + timeout
        if settle:
            self.wait_settled(topic, timeout)
        parts = self.partitions(topic)
        consumer = Consumer(self.client_conf(**{
            "group.id": f"kafkaserver-consume-all-{uuid.uuid4().hex}",
            "enable.auto.commit": False, "enable.partition.eof": True,
            "isolation.level": isolation, "auto.offset.reset": "earliest",
            # The end of a partition is known from a fetch reply; the
            # default (500 ms) would make every call wait that long.
            "fetch.wait.max.ms": 10}))
        messages: List[KafkaMessage] = []
        pending = set(parts)
        try:
            # Offset 0 rather than OFFSET_BEGINNING, which librdkafka first
            # resolves with a ListOffsets request scheduled about half a
            # second later.  A partition whose start has been deleted
            # answers out-of-range, and auto.offset.reset takes it to the
            # earliest offset.
            consumer.assign([TopicPartition(topic, p, 0) for p in parts])
            while pending:
                if time.monotonic() > deadline:
                    raise KafkaError(
                        f"consume_all({topic!r}, {isolation}) did not reach the end of "
                        f"partitions {sorted(pending)} in {timeout}s; "
                        f"read {len(messages)} messages")
                msg = consumer.poll(0.2)
                if msg is None:
                    continue
                err = msg.error()
                if err is not None:
                    if err.code() == CKError._PARTITION_EOF:
                        pending.discard(msg.partition())
                        continue
                    raise KafkaError(f"consuming {topic!r}: {err}")
                messages.append(KafkaMessage(msg.topic(), msg.partition(), msg.offset(),
                                             msg.key(), msg.value(), list(msg.headers() or []),
                                             msg.timestamp()[1]))
        finally:
            consumer.close()
        messages.sort(key=lambda m: (m.partition, m.offset))
        return messages

    def end_offsets(self, topic: str, isolation: str = "read_committed",
                    timeout: float = 10) -> dict:
        """{partition: end offset}: the last stable offset, or the high watermark."""
        consumer = self._offsets_consumer(isolation)
        try:
            return self._end_offsets(consumer, topic, self.partitions(topic), timeout)
        finally:
            consumer.close()

    def wait_settled(self, topic: str, timeout: float = 30) -> None:
        """Waits until every transaction with data in the topic now has ended.

        That is, until each partition's last stable offset has reached the
        high watermark it has when called: the commit or abort markers of
        those transactions are written.  KafkaError past timeout, which
        means a transaction stayed open.
        """
        deadline = time.monotonic() + timeout
        parts = self.partitions(topic)
        committed = self._offsets_consumer("read_committed")
        uncommitted = self._offsets_consumer("read_uncommitted")
        try:
            target = self._end_offsets(uncommitted, topic, parts, timeout)
            while True:
                stable = self._end_offsets(committed, topic, parts, timeout)
                if all(stable[p] >= target[p] for p in parts):
                    return
                if time.monotonic() > deadline:
                    raise KafkaError(f"topic {topic!r} still has open transactions after "
                                     f"{timeout}s: last stable offsets {stable}, "
                                     f"high watermarks {target}")
                time.sleep(0.05)
        finally:
            committed.close()
            uncommitted.close()

    def _offsets_consumer(self, isolation: str):
        from confluent_kafka import Consumer

        # librdkafka asks for the last stable offset or the high watermark
        # according to the consumer's isolation level.
        return Consumer(self.client_conf(**{
            "group.id": f"kafkaserver-offsets-{uuid.uuid4().hex}",
            "enable.auto.commit": False, "isolation.level": isolation}))

    @staticmethod
    def _end_offsets(consumer, topic: str, parts: Sequence[int], timeout: float) -> dict:
        from confluent_kafka import TopicPartition

        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout,
                                                  cached=False)[1] for p in parts}

    def log_tail(self, nbytes: int = 8000) -> str:
        try:
            with open(self.logfile, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - nbytes))
                return f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    # -- internals -----------------------------------------------------------

    def _make_basedir(self) -> None:
        if self._requested_basedir is None:
            self.basedir = Path(tempfile.mkdtemp(prefix="tidemark-kafka-", dir="/tmp"))
            return
        d = self._requested_basedir
        if d.exists() and any(d.iterdir()):
            raise KafkaError(f"{d} is not empty; KafkaServer needs a directory of its own, "
                             f"which stop() deletes")
        d.mkdir(parents=True, exist_ok=True)
        self.basedir = d

    def _conf(self) -> dict:
        conf = {
            "process.roles": "broker,controller",
            "node.id": str(NODE_ID),
            "controller.quorum.voters": f"{NODE_ID}@{HOST}:{self.controller_port}",
            "listeners": (f"PLAINTEXT://{HOST}:{self.port},"
                          f"CONTROLLER://{HOST}:{self.controller_port}"),
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.datadir),
        }
        conf.update(BASE_CONF)
        conf.update(self.extra_conf)
        return conf

    def _write_config(self) -> None:
        text = "# Written by tests/lib/kafkaserver.py.\n"
        text += "".join(f"{k}={v}\n" for k, v in self._conf().items())
        self.config_file.write_text(text)
        (self.basedir / "log4j.properties").write_text(LOG4J_PROPERTIES)

    def _format_storage(self) -> None:
        java = find_java()
        if java is None:
            raise KafkaError("no java on PATH (install openjdk-17-jdk-headless; "
                             "scripts/setup.sh does)")
        cmd = [java, "-Xmx256m", "-XX:TieredStopAtLevel=1"] + self._cds_opts(java, False)
        cmd += [f"-Dlog4j.configuration=file:{self.basedir / 'log4j.properties'}",
                "-cp", os.pathsep.join(self._classpath), STORAGE_TOOL,
                "format", "-t", self.cluster_id, "-c", str(self.config_file)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=self.basedir,
                              env=self._jvm_env(), timeout=120)
        if proc.returncode != 0:
            raise KafkaError(f"kafka-storage format failed (exit {proc.returncode}):\n"
                             f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")

    def _cds_opts(self, java: str, may_dump: bool = True) -> List[str]:
        try:
            archive = cds_archive_file(java, self._classpath)
            if archive.exists():
                return [f"-XX:SharedArchiveFile={archive}"]
            if may_dump and self._cds_dump is None and _claim_cds_dump(archive):
                tmp = archive.with_name(f"{archive.name}.{os.getpid()}.{id(self)}.tmp")
                self._cds_dump = (archive, tmp)
            if self._cds_dump is not None:
                return [f"-XX:ArchiveClassesAtExit={self._cds_dump[1]}"]
        except OSError:
            pass  # No archive is only slower.
        return []

    def _jvm_env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in JVM_ENV_DROP}
        env.setdefault("LC_ALL", "C.UTF-8")
        return env

    def _port_open(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1):
                return True
        except OSError:
            return False

    def _wait(self, ready, deadline: float, what: str) -> None:
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise KafkaError(f"the broker exited (status {self._proc.returncode}) while "
                                 f"waiting for it {what}\n--- {self.logfile} (tail) ---\n"
                                 f"{self.log_tail()}")
            if ready():
                return
            if time.monotonic() > deadline:
                raise KafkaError(f"the broker at {self.bootstrap} failed {what} in time\n"
                                 f"--- {self.logfile} (tail) ---\n{self.log_tail()}")
            time.sleep(0.1)

    def _signal(self, sig: int) -> None:
        if not self.running:
            raise KafkaError("the broker is not running")
        os.kill(self.pid, sig)

    def _owns_pid(self) -> bool:
        # The CLI's `stop` knows the broker only by the pid in the state file;
        # make sure that pid is still our JVM and not a recycled one.
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return str(self.config_file).encode() in cmdline

    def _terminate(self, sig: int, timeout: float) -> bool:
        """Sends sig, then SIGKILL past timeout; False if SIGKILL was needed."""
        if self.pid is None:
            return True
        if self._proc is None and not self._owns_pid():
            self.pid = None
            return True
        self._log_note(f"sending {signal.Signals(sig).name} to pid {self.pid}")
        try:
            os.kill(self.pid, signal.SIGCONT)  # A paused JVM cannot act on SIGTERM.
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while self._alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        clean = not self._alive()
        if not clean:
            self._log_note(f"pid {self.pid} still running after {timeout}s; sending SIGKILL")
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            while self._alive():
                time.sleep(0.05)
        self.pid = None
        self._proc = None
        if self._cds_dump is not None:
            _finish_cds_dump(*self._cds_dump)
            self._cds_dump = None
        if self.basedir is not None and self.basedir.exists():
            self._save_state()
        return clean

    def _log_note(self, text: str) -> None:
        # Marks in kafka.log what we did to the broker, for whoever reads it
        # after a failure.
        try:
            with open(self.logfile, "a") as log:
                log.write(f"=== kafkaserver.py: {time.strftime('%Y-%m-%d %H:%M:%S')} {text} ===\n")
        except (OSError, TypeError):
            pass

    def _alive(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return _pid_alive(self.pid)

    def _drop_clients(self) -> None:
        # The cached producer would keep reconnecting to a stopped broker.
        self._producer = None

    def _save_state(self) -> None:
        # Lets `kafkaserver.py stop DIR` find a broker that another process started.
        state = {"port": self.port, "controller_port": self.controller_port,
                 "cluster_id": self.cluster_id, "pid": self.pid,
                 "extra_conf": self.extra_conf, "heap": self.heap,
                 "fast_start": self.fast_start,
                 "cds_dump": [str(p) for p in self._cds_dump] if self._cds_dump else None,
                 "classpath_file": str(classpath_file())}
        (self.basedir / STATE_FILE).write_text(json.dumps(state))

    @classmethod
    def attach(cls, basedir: Union[str, Path]) -> "KafkaServer":
        """Rebuilds a KafkaServer for a directory that `start` left running."""
        basedir = Path(basedir).resolve()
        state = json.loads((basedir / STATE_FILE).read_text())
        kafka = cls(extra_conf=state["extra_conf"], heap=state["heap"], die_with_parent=False,
                    fast_start=state["fast_start"])
        if state["cds_dump"]:
            kafka._cds_dump = tuple(Path(p) for p in state["cds_dump"])
        kafka.basedir = basedir
        kafka.port = state["port"]
        kafka.controller_port = state["controller_port"]
        kafka.cluster_id = state["cluster_id"]
        kafka.pid = state["pid"]
        return kafka


def _parse_conf_args(items: Iterable[str]) -> dict:
    conf = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--conf expects KEY=VALUE, got {item!r}")
        conf[key.strip()] = value.strip()
    return conf


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        description="Start or stop a throwaway single-node Apache Kafka broker (KRaft).")
    sub = parser.add_subparsers(dest="command", required=True)
    p_start = sub.add_parser("start", help="start a broker in DIR and print its bootstrap address")
    p_start.add_argument("dir", help="a missing or empty directory for the broker; "
                                     "`stop` deletes it")
    p_start.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                         help="extra server.properties setting (repeatable)")
    p_start.add_argument("--heap", default="512m", help="the JVM's -Xmx (default 512m)")
    p_start.add_argument("--fast-start", action="store_true",
                         help="run the JVM with C1 only: starts sooner, runs slower "
                              "(the tests' setting; leave it off for benchmarks)")
    p_stop = sub.add_parser("stop", help="stop the broker `start` left in DIR and delete DIR")
    p_stop.add_argument("dir")
    sub.add_parser("fetch", help="resolve the broker with mvn (once) and print the "
                                 "classpath file")
    args = parser.parse_args(argv)

    try:
        if args.command == "fetch":
            resolve_classpath()
            print(classpath_file())
            return 0
        if args.command == "start":
            kafka = KafkaServer(args.dir, extra_conf=_parse_conf_args(args.conf),
                                heap=args.heap, die_with_parent=False,
                                fast_start=args.fast_start)
            kafka.start()
            kafka.detach()
            print(kafka.bootstrap)
            return 0
        basedir = Path(args.dir)
        if not (basedir / STATE_FILE).exists():
            print(f"kafkaserver: {basedir} holds no broker started by this tool", file=sys.stderr)
            return 1
        kafka = KafkaServer.attach(basedir)
        kafka.detach()
        kafka.stop()
        return 0
    except KafkaError as e:
        print(f"kafkaserver: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
