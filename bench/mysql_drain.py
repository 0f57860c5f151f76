#!/usr/bin/python3
"""MariaDB binlog drain benchmark: tidemark against mysqlbinlog and Debezium on one binlog.

One throwaway MariaDB 10.11 (tests/lib/mariadbserver.py) gets one table and a
workload of inserts, updates and deletes (--events row events: 60 % inserts,
20 % updates, 20 % deletes, in transactions of --txn-rows rows), all in one
binlog file.  Then every arm reads exactly that binlog, from the position
before the workload to its end, over TCP from the server:

  * raw: `mysqlbinlog --read-from-remote-server --raw` copies the binlog to a
    file, decoding nothing: the transport ceiling;
  * decode: `mysqlbinlog --read-from-remote-server -v --base64-output=decode-rows
    > /dev/null` decodes every row into pseudo-SQL: a decoding peer;
  * tidemark: `tidemark run` with the mysql-cdc source (snapshot = 'never',
    resuming at the workload's first position through its position file) into
    the file sink (Debezium JSON, schemas on, fsync before acknowledging),
    timed from process start until every change is a line on disk;
  * debezium: Debezium 3.6.1's MySQL connector (debezium-connector-mariadb is
    not on Maven Central) in its embedded engine (bench/dbzmysql), its offset
    store seeded with the same position, snapshot.mode = recovery (table
    definitions only), each change event's value as Kafka Connect's
    JsonConverter writes it, one line per event, into a file, timed from JVM
    start until the last line is flushed.

Rounds alternate which arm goes first; medians and spreads (min-max) are
printed, with CPU seconds (user + system of the arm's process) and peak RSS.
This is a benchmark, not a test: nothing here asserts a time.

    bench/mysql_drain.py [--events 1000000] [--txn-rows 1000] [--repeat 3] [--quick]
                         [--arms raw,decode,tidemark,debezium] [--no-schemas] [--perf FILE]
"""
import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "lib"))
from mariadbserver import MariaDbServer  # noqa: E402
from serverproc import free_port  # noqa: E402
from maven import module_classpath  # noqa: E402

DBZ_VERSION = "8.0.36-MariaDB-10.11-bench"
ARMS = ("raw", "decode", "tidemark", "debezium")
LABEL = {
    "raw": "mysqlbinlog --raw (transport)",
    "decode": "mysqlbinlog -v decode-rows",
    "tidemark": "tidemark (file sink)",
    "debezium": "Debezium 3.6.1 embedded",
}


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def peak_rss_kib(pid: int) -> int:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def cpu_seconds(pid: int) -> float:
    """utime + stime of a running process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def workload(my: MariaDbServer, events: int, txn_rows: int) -> None:
    """Inserts 60 %, updates 20 %, deletes 20 % of `events`, one statement per transaction.

    The sequence engine's seq_<a>_to_<b> tables make the rows on the server, so
    the client sends a few hundred short statements, not a million rows."""
    n_ins = events * 3 // 5
    n_upd = events // 5
    n_del = events - n_ins - n_upd
    stmts = []
    for s in range(0, n_ins, txn_rows):
        e = min(s + txn_rows, n_ins)
        stmts.append(f"INSERT INTO bench SELECT seq, seq % 1000, md5(seq), (seq % 100000) / 100.0,"
                     f" TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq SECOND"
                     f" FROM seq_{s + 1}_to_{e};")
    for s in range(0, n_upd, txn_rows):
        e = min(s + txn_rows, n_upd)
        stmts.append(f"UPDATE bench SET a = a + 1, b = md5(b) WHERE id > {s} AND id <= {e};")
    # Deletes from the top, so that they touch rows no update touched.
    for s in range(0, n_del, txn_rows):
        hi = n_ins - s
        lo = max(hi - txn_rows, n_ins - n_del)
        stmts.append(f"DELETE FROM bench WHERE id > {lo} AND id <= {hi};")
    my.sql("\n".join(stmts), db="bench", timeout=3600)


def count_lines(path: Path, state: dict) -> int:
    """Counts newlines incrementally (only the bytes added since the last call)."""
    total = 0
    for f in list(path.glob("*.jsonl")) + list(path.glob("*/part-*.jsonl")):
        off = state.get(f, (0, 0))
        with open(f, "rb") as fh:
            fh.seek(off[0])
            data = fh.read()
        n = off[1] + data.count(b"\n")
        state[f] = (off[0] + len(data), n)
        total += n
    return total


def run_wait4(cmd, stdout=subprocess.DEVNULL) -> tuple:
    """Runs cmd to its end; returns (seconds, CPU seconds, peak RSS KiB).

    CPU comes from wait4; the peak RSS from polling VmHWM, because wait4's
    ru_maxrss carries the forking Python process's own peak across exec."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE)
    rss = -1
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid != 0:
            break
        rss = max(rss, peak_rss_kib(proc.pid))
        time.sleep(0.005)
    seconds = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed (exit {proc.returncode}):\n{err[-2000:]}")
    return seconds, ru.ru_utime + ru.ru_stime, rss


class Bench:
    def __init__(self, args, my: MariaDbServer, tmp: Path, start: tuple):
        self.args = args
        self.my = my
        self.tmp = tmp
        self.file, self.pos, self.gtid = start
        self.runs = 0

    def server_for(self, arm: str) -> None:
        """Restarts the server with the version string the arm needs (not timed).

        Debezium 3.6's MySQL connector takes any version from 8.4 on (10.11 is)
        for MySQL 8.4 and asks for SHOW BINARY LOG STATUS, which MariaDB does not
        have; for its arm the server reports 8.0.36, keeping "MariaDB" (which the
        binlog client and MariaDB's JDBC driver look for).  mysqlbinlog refuses
        such a string, so the other arms get the server's own.  A restart starts
        a new binlog file; the workload's stays whole and cached."""
        want = DBZ_VERSION if arm == "debezium" else None
        if self.my.extra_args.get("version") == want:
            return
        if want is None:
            del self.my.extra_args["version"]
            self.my.restart()
        else:
            self.my.restart({"version": want})

    def mysqlbinlog(self, extra) -> list:
        return ["mysqlbinlog", "--no-defaults", "--read-from-remote-server", "--protocol=TCP",
                "--host", self.my.host, "--port", str(self.my.port), "--user", "root",
                f"--start-position={self.pos}", "--to-last-log"] + extra + [self.file]

    def raw(self) -> tuple:
        d = self.tmp / "raw"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        r = run_wait4(self.mysqlbinlog(["--raw", f"--result-file={d}/"]))
        shutil.rmtree(d, ignore_errors=True)
        return r

    def decode(self) -> tuple:
        return run_wait4(self.mysqlbinlog(["-v", "--base64-output=decode-rows"]))

    def tidemark(self) -> tuple:
        args = self.args
        run_dir = self.tmp / "tm"
        shutil.rmtree(run_dir, ignore_errors=True)
        out = run_dir / "out"
        st = run_dir / "st"
        # snapshot = 'never' resumes from the source's position file when it has one
        # (connectors/mysql/mysql.c): the workload's first transaction, as a restart would.
        (st / "mysql-bench").mkdir(parents=True)
        (st / "mysql-bench" / "position").write_text(
            f"file={self.file} pos={self.pos} gtid={self.gtid}\n")
        job = run_dir / "job.sql"
        self.runs += 1
        job.write_text(f"""
CREATE TABLE bench () WITH (connector = 'mysql-cdc', host = '{self.my.host}',
  port = {self.my.port}, user = 'root', tables = 'bench.bench',
  server_id = {5600 + self.runs}, snapshot = 'never');
CREATE TABLE out () WITH (connector = 'file', path = '{out}', format = 'debezium-json',
  schemas = {'false' if args.no_schemas else 'true'});
INSERT INTO out SELECT * FROM bench;
""")
        log = open(run_dir / "tidemark.log", "wb")
        cmd = [args.tidemark, "run", str(job), "--state-dir", str(st),
               "--admin-address", f"127.0.0.1:{free_port()}"]
        if args.perf:
            cmd = ["perf", "record", "-q", "-e", "cpu-clock", "-F", "2000", "-g", "-o",
                   args.perf, "--"] + cmd
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        state: dict = {}
        rss = -1
        deadline = t0 + 1800
        # perf's child is tidemark; read its /proc, not perf's.
        pid = proc.pid
        while True:
            if args.perf and pid == proc.pid:
                kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
                try:
                    k = kids.read_text().split()
                    pid = int(k[0]) if k else pid
                except OSError:
                    pass
            n = count_lines(out, state) if out.exists() else 0
            rss = max(rss, peak_rss_kib(pid))
            if n >= args.events:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tidemark stopped early or timed out with {n} lines of "
                                   f"{args.events}; log: {run_dir}/tidemark.log")
            time.sleep(0.01)
        seconds = time.monotonic() - t0
        rss = max(rss, peak_rss_kib(pid))
        cpu = cpu_seconds(pid)
        if args.perf:
            subprocess.run(["kill", "-TERM", str(pid)])
        else:
            proc.terminate()
        proc.wait(timeout=60)
        self.nbytes = sum(f.stat().st_size for f in out.glob("*.jsonl"))
        if n != args.events:
            raise RuntimeError(f"tidemark wrote {n} lines, expected {args.events}")
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
        return seconds, cpu, rss

    def debezium(self) -> tuple:
        args = self.args
        out = self.tmp / "dbz.jsonl"
        self.runs += 1
        # JVM options as Kafka Connect's scripts set them (-Xmx2g is connect-standalone's
        # default heap for a worker; G1).
        cmd = ["java", "-Xms256m", "-Xmx2g", "-XX:+UseG1GC", "-cp", self.classpath,
               "io.tidemark.bench.DrainMariaDb", "--host", self.my.host,
               "--port", str(self.my.port), "--user", "root", "--db", "bench",
               "--out", str(out), "--events", str(self.debezium_events),
               "--server-id", str(5600 + self.runs), "--file", self.file,
               "--pos", str(self.pos),
               "--set", "table.include.list=bench.bench",
               "--schemas", "false" if args.no_schemas else "true"]
        log = open(self.tmp / "debezium.log", "wb")
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        line = proc.stdout.readline().decode()
        seconds = time.monotonic() - t0
        rss = peak_rss_kib(proc.pid)
        cpu = cpu_seconds(proc.pid)
        proc.stdin.close()
        proc.wait(timeout=120)
        if not line.startswith("DONE"):
            raise RuntimeError(f"Debezium stopped early (exit {proc.returncode}): "
                               f"{(self.tmp / 'debezium.log').read_text()[-3000:]}")
        self.dbz_bytes = out.stat().st_size
        out.unlink()
        return seconds, cpu, rss


def fmt_spread(values) -> str:
    return f"{min(values):,.0f}-{max(values):,.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--txn-rows", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3,
                    help="rounds; each runs every arm once, rotating which goes first")
    ap.add_argument("--quick", action="store_true", help="100,000 events, one round")
    ap.add_argument("--arms", default=",".join(ARMS),
                    help="comma-separated subset of " + ",".join(ARMS))
    ap.add_argument("--tidemark", default=str(REPO / "build" / "tidemark"))
    ap.add_argument("--no-schemas", action="store_true",
                    help="tidemark writes payloads only (schemas = false) and Debezium's "
                         "JsonConverter schemas.enable=false")
    ap.add_argument("--perf", metavar="FILE",
                    help="profile tidemark with `perf record -e cpu-clock -g -o FILE`")
    ap.add_argument("--keep", action="store_true", help="keep tidemark's last run directory")
    args = ap.parse_args()
    if args.quick:
        args.events, args.repeat = 100_000, 1
    arms = [a for a in args.arms.split(",") if a]
    for a in arms:
        if a not in ARMS:
            ap.error(f"unknown arm {a!r}; the arms are {', '.join(ARMS)}")

    classpath = None
    if "debezium" in arms:
        classpath = module_classpath(REPO / "bench" / "dbzmysql", "debezium-mariadb-bench-1.jar",
                                     log=print)
    tmp = Path(tempfile.mkdtemp(prefix="tm-mybench-"))
    my = MariaDbServer(extra_args={"innodb-buffer-pool-size": "512M",
                                   "innodb-log-file-size": "256M",
                                   "max-binlog-size": "1G",
                                   "sync-binlog": "0"}).start()
    try:
        my.sql("CREATE DATABASE bench")
        my.sql("CREATE TABLE bench (id BIGINT PRIMARY KEY, a INT, b VARCHAR(64),"
               " c DECIMAL(10,2), d DATETIME(6))", db="bench")
        start = my.binlog_position()
        t0 = time.monotonic()
        workload(my, args.events, args.txn_rows)
        end = my.binlog_position()
        if end[0] != start[0]:
            raise RuntimeError(f"the workload spans binlogs {start[0]} to {end[0]}; "
                               f"raise max-binlog-size")
        nbinlog = end[1] - start[1]
        print(f"workload: {args.events} row events in {time.monotonic() - t0:.1f}s, "
              f"{start[0]} {start[1]}..{end[1]} ({nbinlog / 2**20:.0f} MiB of binlog)")
        bench = Bench(args, my, tmp, start)
        bench.classpath = classpath
        bench.debezium_events = args.events
        # An unmeasured raw copy puts the binlog in the page cache for every arm.
        bench.raw()
        res = {a: [] for a in arms}
        for i in range(args.repeat):
            order = arms[i % len(arms):] + arms[:i % len(arms)]
            for a in order:
                bench.server_for(a)
                res[a].append(getattr(bench, a)())
            print(f"round {i + 1} ({' '.join(order)}): " + ", ".join(
                f"{a} {args.events / res[a][-1][0]:,.0f}/s" for a in arms), flush=True)

        def med(a, k):
            return statistics.median(r[k] for r in res[a])

        bench.server_for("raw")
        print(f"machine: {os.cpu_count()} cores, {cpu_model()}, "
              f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB; "
              f"MariaDB {my.query('SELECT VERSION()')[0][0]}")
        print(f"events: {args.events} row events (60% insert, 20% update, 20% delete), "
              f"{args.txn_rows} rows per transaction, {nbinlog / 2**20:.0f} MiB of binlog; "
              f"medians of {args.repeat} round(s), spread min-max")
        print(f"{'arm':34} {'events/s':>10} {'spread':>19} {'CPU s':>7} {'peak RSS':>10}")
        for a in arms:
            rates = [args.events / r[0] for r in res[a]]
            print(f"{LABEL[a]:34} {args.events / med(a, 0):>10,.0f} {fmt_spread(rates):>19} "
                  f"{med(a, 1):>7.2f} {max(r[2] for r in res[a]) / 1024:>8.1f} MiB")
        if "tidemark" in arms:
            print(f"tidemark output: {bench.nbytes / args.events:.0f} bytes/event")
            r_tm = args.events / med("tidemark", 0)
            rss_tm = max(r[2] for r in res["tidemark"])
            if "raw" in arms:
                print(f"ratio tidemark/raw transport: {r_tm / (args.events / med('raw', 0)):.2f}"
                      f" (goal >= 0.8)")
            if "decode" in arms:
                print(f"ratio tidemark/mysqlbinlog decode: "
                      f"{r_tm / (args.events / med('decode', 0)):.2f}")
            if "debezium" in arms:
                rss_d = max(r[2] for r in res["debezium"])
                print(f"Debezium output: {bench.dbz_bytes / args.events:.0f} bytes/event")
                print(f"ratio tidemark/Debezium: {r_tm / (args.events / med('debezium', 0)):.2f}x "
                      f"events/s (goal >= 5), RSS {rss_tm / rss_d:.3f} (goal <= 0.1), "
                      f"CPU {med('tidemark', 1) / med('debezium', 1):.3f}")
        return 0
    finally:
        my.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
