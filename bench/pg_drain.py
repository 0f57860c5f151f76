#!/usr/bin/python3
"""PostgreSQL drain benchmark: tidemark against pg_recvlogical on identical slot contents.

One throwaway PostgreSQL 15 gets two logical slots created at the same LSN, then a
workload of inserts, updates and deletes (transactions of --txn-rows rows).  Both
slots therefore hold exactly the same changes.  Then, one after the other:

  * pg_recvlogical drains slot A with pgoutput to /dev/null and stops at the end LSN;
  * tidemark drains slot B into a file sink (Debezium JSON, schemas on) and is timed
    until every change is a line on disk.

It prints both rates in events/s, the ratio tidemark/pg_recvlogical, tidemark's peak
RSS, and the machine.  This is a benchmark, not a test: nothing here asserts a time.
The tidemark drain asks for text values (`binary = 'false'`); with --binary a third
drain per round asks for binary values (`binary = 'true'`, PostgreSQL 14+) on the same
slot contents, and the CPU time of tidemark and of the server's walsender per event is
printed for both.

    bench/pg_drain.py [--events 1000000] [--txn-rows 1000] [--repeat 3] [--no-schemas]
                      [--checkpoint-interval 1s [--commit append|rename]] [--binary]
                      [--perf FILE]
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
from pgserver import PgServer, lsn_to_int  # noqa: E402

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def workload(pg: PgServer, events: int, txn_rows: int) -> None:
    """Inserts 60%, updates 20%, deletes 20% of `events`, in transactions of txn_rows."""
    n_ins = events * 3 // 5
    n_upd = events // 5
    n_del = events - n_ins - n_upd
    pg.psql(f"""
DO $$
DECLARE s bigint;
BEGIN
  s := 0;
  WHILE s < {n_ins} LOOP
    INSERT INTO bench SELECT g, g % 1000, md5(g::text), (g % 100000) / 100.0,
                             timestamptz '2024-01-01' + g * interval '1 second'
      FROM generate_series(s + 1, least(s + {txn_rows}, {n_ins})) g;
    COMMIT;
    s := s + {txn_rows};
  END LOOP;
  s := 0;
  WHILE s < {n_upd} LOOP
    UPDATE bench SET a = a + 1, b = md5(b) WHERE id > s AND id <= least(s + {txn_rows}, {n_upd});
    COMMIT;
    s := s + {txn_rows};
  END LOOP;
  s := 0;
  WHILE s < {n_del} LOOP
    DELETE FROM bench WHERE id > {n_ins} - s - {txn_rows} AND id <= {n_ins} - s
                        AND id > {n_ins} - {n_del};
    COMMIT;
    s := s + {txn_rows};
  END LOOP;
END $$;
""", db="bench")


def count_lines(path: Path, state: dict) -> int:
    """Counts newlines incrementally (only the bytes added since the last call)."""
    total = 0
    # <topic>.jsonl, or <topic>/part-<N>.jsonl with commit = 'rename'.
    for f in list(path.glob("*.jsonl")) + list(path.glob("*/part-*.jsonl")):
        off = state.get(f, (0, 0))
        with open(f, "rb") as fh:
            fh.seek(off[0])
            data = fh.read()
        n = off[1] + data.count(b"\n")
        state[f] = (off[0] + len(data), n)
        total += n
    return total


def peak_rss_kib(pid: int) -> int:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


# CPU seconds (user + system) each drain's process used until its last line, by slot.
CPU: dict = {}
# CPU seconds of the walsender that served each tidemark drain, by slot.
WALSENDER_CPU: dict = {}


def cpu_seconds(pid: int) -> float:
    """utime + stime of a running process, from /proc (less sensitive to other load than wall time)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


BENCH_COLUMNS = "id bigint PRIMARY KEY, a int, b text, c numeric(10,2), d timestamptz"


def drain_tidemark(args, pg: PgServer, slot: str, run_dir: Path, checkpoint: str = None,
                   watermark: bool = False, binary: bool = False) -> tuple:
    """Runs tidemark on `slot` until every change is a line on disk.

    With --watermark the source declares its columns (both arms, so that the
    only difference is the option), and `watermark` adds the option.
    Returns (seconds, peak RSS KiB, output bytes)."""
    out = run_dir / "out"
    job = run_dir / "job.sql"
    cols = BENCH_COLUMNS if args.watermark else ""
    wm = (", watermark = '" + args.watermark.replace("'", "''") + "'") if watermark else ""
    job.write_text(f"""
CREATE TABLE bench ({cols}) WITH (connector = 'postgres-cdc',
  dsn = 'host={pg.host} port={pg.port} dbname=bench user=postgres',
  tables = 'public.bench', slot = '{slot}', publication = 'bench_pub', snapshot = 'never',
  binary = '{'true' if binary else 'false'}'{wm});
CREATE TABLE out () WITH (connector = 'file', path = '{out}', format = 'debezium-json',
  schemas = {'false' if args.no_schemas else 'true'}, commit = '{args.commit}');
INSERT INTO out SELECT * FROM bench;
""" + (f"SET checkpoint_interval = '{checkpoint}';\n" if checkpoint else ""))
    shutil.rmtree(run_dir / "st", ignore_errors=True)
    log = open(run_dir / "tidemark.log", "wb")
    cmd = [args.tidemark, "run", str(job), "--state-dir", str(run_dir / "st")]
    if args.perf:
        cmd = ["perf", "record", "-q", "-e", "cpu-clock", "-F", "2000", "-g", "-o", args.perf,
               "--"] + cmd
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    state: dict = {}
    rss = -1
    deadline = t0 + 1800
    while True:
        n = count_lines(out, state) if out.exists() else 0
        rss = max(rss, peak_rss_kib(proc.pid))
        if n >= args.events:
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"tidemark stopped early or timed out with {n} lines; "
                               f"log: {run_dir}/tidemark.log")
        time.sleep(0.02)
    seconds = time.monotonic() - t0
    rss = max(rss, peak_rss_kib(proc.pid))
    CPU[slot] = cpu_seconds(proc.pid)
    walsender = pg.psql(f"SELECT active_pid FROM pg_replication_slots WHERE slot_name = '{slot}'",
                        db="bench").strip()
    WALSENDER_CPU[slot] = cpu_seconds(int(walsender)) if walsender.isdigit() else float("nan")
    if args.perf:
        subprocess.run(["pkill", "-TERM", "-P", str(proc.pid)])
    else:
        proc.terminate()
    proc.wait(timeout=60)
    nbytes = sum(f.stat().st_size for f in out.glob("*.jsonl"))
    nbytes += sum(f.stat().st_size for f in out.glob("*/part-*.jsonl"))
    shutil.rmtree(out, ignore_errors=True)
    return seconds, rss, nbytes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--txn-rows", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3,
                    help="drains per tool, alternating which goes first; medians are reported")
    ap.add_argument("--tidemark", default=str(REPO / "build" / "tidemark"))
    ap.add_argument("--no-schemas", action="store_true",
                    help="write payloads only (schemas = false), as Flink's debezium-json reads them")
    ap.add_argument("--checkpoint-interval", metavar="DURATION",
                    help="also drain with checkpoints at this interval (exactly-once file sink) "
                         "and print the checkpoint overhead ratio")
    ap.add_argument("--commit", choices=["append", "rename"], default="append",
                    help="the file sink's commit mode under checkpoints (docs/connectors/file.md)")
    ap.add_argument("--watermark", metavar="EXPR",
                    help="adds a drain whose source has watermark = EXPR (e.g. \"d - INTERVAL "
                         "'5 seconds'\"): the cost of generating watermarks")
    ap.add_argument("--binary", action="store_true",
                    help="adds a tidemark drain with binary = 'true' (binary pgoutput values) to "
                         "each round, beside the text one, and prints both with their CPU per event")
    ap.add_argument("--perf", metavar="FILE",
                    help="profile tidemark with `perf record -e cpu-clock -g -o FILE`")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tm-bench-"))
    pg = PgServer(extra_conf={"max_wal_size": "4GB", "checkpoint_timeout": "30min"}).start()
    try:
        pg.psql("CREATE DATABASE bench")
        tools = (["recv", "tm"] + (["bin"] if args.binary else []) +
                 (["chk"] if args.checkpoint_interval else []) +
                 (["wm"] if args.watermark else []))
        slots = ["warm"] + [f"{tool}_{i}" for i in range(args.repeat) for tool in tools]
        pg.psql("""CREATE TABLE bench (id bigint PRIMARY KEY, a int, b text, c numeric(10,2),
                                       d timestamptz);
                   CREATE PUBLICATION bench_pub FOR TABLE bench;""", db="bench")
        for slot in slots:
            pg.psql(f"SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')", db="bench")
        t0 = time.monotonic()
        workload(pg, args.events, args.txn_rows)
        end_lsn = pg.psql("SELECT pg_current_wal_lsn()", db="bench").strip()
        print(f"workload: {args.events} events in {time.monotonic() - t0:.1f}s, end LSN {end_lsn}")
        env = dict(os.environ, PGHOST=pg.host, PGPORT=str(pg.port), PGUSER="postgres")

        def recvlogical(slot: str) -> float:
            t0 = time.monotonic()
            subprocess.run([str(PG_BIN / "pg_recvlogical"), "-d", "bench", "--slot", slot,
                            "--start", "-o", "proto_version=1",
                            "-o", "publication_names=bench_pub",
                            "-E", end_lsn, "--no-loop", "-f", "/dev/null"],
                           env=env, check=True)
            return time.monotonic() - t0

        # A first, unmeasured drain warms the page cache with the WAL, so that
        # no measured run pays for reading it from disk.
        pg.psql("CHECKPOINT", db="bench")
        recvlogical("warm")
        t_recv, t_tm, t_bin, t_chk, t_wm, rss, nbytes = [], [], [], [], [], 0, 0
        for i in range(args.repeat):
            # Rotate the order so that no tool always runs on a fresher machine.
            order = tools[i % len(tools):] + tools[:i % len(tools)]
            for tool in order:
                if tool == "recv":
                    t_recv.append(recvlogical(f"recv_{i}"))
                elif tool == "tm":
                    sec, r, nbytes = drain_tidemark(args, pg, f"tm_{i}", tmp)
                    t_tm.append(sec)
                    rss = max(rss, r)
                elif tool == "bin":
                    sec, r, nbytes_bin = drain_tidemark(args, pg, f"bin_{i}", tmp, binary=True)
                    t_bin.append(sec)
                    rss = max(rss, r)
                    if nbytes and nbytes_bin != nbytes:
                        print(f"warning: binary drain wrote {nbytes_bin} bytes, text {nbytes}")
                elif tool == "wm":
                    sec, r, _ = drain_tidemark(args, pg, f"wm_{i}", tmp, watermark=True)
                    t_wm.append(sec)
                    rss = max(rss, r)
                else:
                    sec, r, _ = drain_tidemark(args, pg, f"chk_{i}", tmp, args.checkpoint_interval)
                    t_chk.append(sec)
                    rss = max(rss, r)
            line = (f"run {i + 1}: pg_recvlogical {args.events / t_recv[-1]:,.0f} events/s, "
                    f"tidemark {args.events / t_tm[-1]:,.0f} events/s")
            if t_bin:
                line += f", tidemark binary {args.events / t_bin[-1]:,.0f} events/s"
            if t_chk:
                line += f", tidemark with checkpoints {args.events / t_chk[-1]:,.0f} events/s"
            if t_wm:
                line += f", tidemark with watermark {args.events / t_wm[-1]:,.0f} events/s"
            print(line)

        r_recv = args.events / statistics.median(t_recv)
        r_tm = args.events / statistics.median(t_tm)
        print(f"machine: {os.cpu_count()} cores, {cpu_model()}")
        print(f"events: {args.events} (60% insert, 20% update, 20% delete), "
              f"{args.txn_rows} rows per transaction; medians of {args.repeat} runs each")
        print(f"pg_recvlogical (pgoutput → /dev/null): {r_recv:,.0f} events/s")
        print(f"tidemark (pgoutput → Debezium JSON file, fsync, schemas "
              f"{'off' if args.no_schemas else 'on'}, {nbytes / args.events:.0f} bytes/event): "
              f"{r_tm:,.0f} events/s")
        print(f"ratio tidemark/pg_recvlogical: {r_tm / r_recv:.2f}")

        def spread(ts):
            return f"{args.events / max(ts):,.0f}-{args.events / min(ts):,.0f}"

        if t_bin:
            r_bin = args.events / statistics.median(t_bin)
            print(f"tidemark with binary values (binary = 'true'): {r_bin:,.0f} events/s")
            print(f"ratio tidemark binary/pg_recvlogical: {r_bin / r_recv:.2f}, "
                  f"binary/text: {r_bin / r_tm:.2f}")
            print(f"spreads (events/s, slowest-fastest round): pg_recvlogical {spread(t_recv)}, "
                  f"tidemark text {spread(t_tm)}, tidemark binary {spread(t_bin)}")
            for arm in ("tm", "bin"):
                c = statistics.median(CPU[f"{arm}_{i}"] for i in range(args.repeat))
                w = statistics.median(WALSENDER_CPU[f"{arm}_{i}"] for i in range(args.repeat))
                print(f"CPU per event, {'text  ' if arm == 'tm' else 'binary'}: tidemark "
                      f"{c / args.events * 1e6:.2f} µs, walsender {w / args.events * 1e6:.2f} µs")
        if t_chk:
            r_chk = args.events / statistics.median(t_chk)
            print(f"tidemark with checkpoint_interval = {args.checkpoint_interval} and commit = "
                  f"'{args.commit}' (exactly-once, "
                  f"timed until the last epoch is committed): {r_chk:,.0f} events/s")
            print(f"checkpoint overhead ratio (with / without checkpoints): {r_chk / r_tm:.2f}")
        if t_wm:
            r_wm = args.events / statistics.median(t_wm)
            print(f"tidemark with watermark = '{args.watermark}' (both drains declare the "
                  f"columns): {r_wm:,.0f} events/s")
            print(f"watermark cost ratio (with / without): {r_wm / r_tm:.2f}")
            c_tm = statistics.median(CPU[f"tm_{i}"] for i in range(args.repeat))
            c_wm = statistics.median(CPU[f"wm_{i}"] for i in range(args.repeat))
            print(f"CPU per event: tidemark {c_tm / args.events * 1e6:.2f} µs, with watermark "
                  f"{c_wm / args.events * 1e6:.2f} µs (ratio {c_wm / c_tm:.3f})")
        print(f"tidemark peak RSS: {rss / 1024:.1f} MiB")
        return 0
    finally:
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
