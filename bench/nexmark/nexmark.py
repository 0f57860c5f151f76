#!/usr/bin/python3
"""Nexmark q0-q22: tidemark (datagen -> blackhole) against Apache Flink 2.3 SQL in the same run.

For every query (bench/nexmark/queries.py) and parallelism, runs the query on tidemark
(`tidemark run`, the datagen source's Nexmark tables, `events` events in all, flat out,
into a blackhole sink; the job ends at the end of its bounded input) and on Flink 2.3
(bench/nexmark/flink: NexmarkRun in one JVM with a local MiniCluster, fed by the
`tm-nexmark` connector, a Java port of the same generator), and prints per query:

  * events per CPU-second: events / CPU seconds.  tidemark: getrusage of the reaped child
    (user + system, all threads, exec to exit).  Flink: the JVM's process CPU time
    (OperatingSystemMXBean) from the INSERT's submission to the job's end ("job"); the
    whole process including JVM start and planning is printed too ("proc");
  * the wall-clock rate (events / wall seconds, same spans);
  * peak RSS (VmHWM sampled during the run);
  * the ratio tidemark / Flink of events per CPU-second (Flink's job CPU).

`events` counts events of all three types (Nexmark's events.num); a query reads only the
tables it names and only those are generated, on both engines.  Queries tidemark cannot
plan yet are listed as "not supported yet" with the planner's error; Flink still runs
them when it can.

Before the queries it prints a sanity line: per table, the row count and integer sums of
its columns over the same events, computed by both engines, which must be equal (the two
generators agree).

Not a test: nothing asserts a time.  The machine is shared; see bench/README.md.

  bench/nexmark/nexmark.py                                  # all queries, p = 1 and 2
  bench/nexmark/nexmark.py --events 2000000 --queries q0,q1,q2 --parallelism 1
  bench/nexmark/nexmark.py --smoke                          # a few seconds: 20,000 events,
                                                            # q0 and q3, tidemark only
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
FLINK_DIR = HERE / "flink"
FLINK_JAR = "flink-nexmark-1.jar"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests" / "lib"))
from queries import (FLINK_113_PER_CORE, FLINK_COLUMNS, FLINK_WATERMARK, ORDER, Q,  # noqa: E402
                     SANITY, TIDEMARK_COLUMNS, TIDEMARK_WATERMARK)

RUN_DEADLINE = 3600


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def machine() -> str:
    mem = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    return (f"{os.cpu_count()} cores, {cpu_model()}, {mem:.0f} GiB, Linux {os.uname().release}; "
            f"load average now {os.getloadavg()[0]:.1f}")


def default_tidemark() -> str:
    for d in ("build-lead", "build", "build-d"):
        if (REPO / d / "tidemark").exists():
            return str(REPO / d / "tidemark")
    return str(REPO / "build" / "tidemark")


def vm_hwm_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class Run:
    """One child process, measured: wall time, rusage CPU, peak RSS (VmHWM sampled)."""

    def __init__(self, cmd, log: Path, cwd=None):
        self.log = log
        self.t0 = time.monotonic()
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, cwd=cwd)
        self.hwm = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._sample, daemon=True)
        self._t.start()

    def _sample(self):
        while not self._stop.wait(0.1):
            self.hwm = max(self.hwm, vm_hwm_kib(self.proc.pid))

    def finish(self):
        out = self.proc.stdout.read()
        deadline = time.monotonic() + RUN_DEADLINE
        while True:
            pid, status, ru = os.wait4(self.proc.pid, os.WNOHANG)
            if pid == self.proc.pid:
                break
            if time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"{self.proc.args[0]} did not finish; see {self.log}")
            self.hwm = max(self.hwm, vm_hwm_kib(self.proc.pid))
            time.sleep(0.02)
        self._stop.set()
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return {"rc": self.proc.returncode, "wall": time.monotonic() - self.t0,
                "cpu": ru.ru_utime + ru.ru_stime, "rss_kib": self.hwm or ru.ru_maxrss,
                "stdout": out.decode(errors="replace")}


class Bench:
    def __init__(self, args, tmp: Path):
        self.args = args
        self.tmp = tmp
        self.classpath = None
        self.java = shutil.which("java") or "java"

    # -- tidemark -----------------------------------------------------------

    def tidemark_job(self, tables, select, events, parallelism, sink="blackhole") -> str:
        lines = []
        for t in tables:
            lines.append(f"CREATE TABLE {t} ({TIDEMARK_COLUMNS[t]}) WITH (connector = 'datagen', "
                         f"kind = 'nexmark', table = '{t}', events = '{events}', "
                         f"seed = '{self.args.seed}', watermark = '{TIDEMARK_WATERMARK}');")
        if sink == "blackhole":
            lines.append("CREATE TABLE nexmark_out () WITH (connector = 'blackhole');")
        else:
            lines.append(f"CREATE TABLE nexmark_out () WITH (connector = 'file', path = '{sink}', "
                         "schemas = 'false', topic = 'out');")
        lines.append(f"INSERT INTO nexmark_out {select};")
        lines.append(f"SET parallelism = {parallelism};")
        lines.append("SET admin_address = '127.0.0.1:0';")
        return "\n".join(lines) + "\n"

    def tidemark_explain(self, job_text: str):
        d = self.tmp / "explain"
        d.mkdir(exist_ok=True)
        (d / "job.sql").write_text(job_text)
        r = subprocess.run([self.args.tidemark, "explain", str(d / "job.sql")],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            text = (r.stderr.strip() or r.stdout.strip() or "?").splitlines()
            return False, " ".join(x.strip() for x in text[:2])
        return True, r.stdout

    def tidemark_run(self, job_text: str, name: str) -> dict:
        d = self.tmp / name
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        (d / "job.sql").write_text(job_text)
        run = Run([self.args.tidemark, "run", str(d / "job.sql"), "--state-dir", str(d / "state"),
                   "--log-level", "warn"], self.tmp / f"{name}.log", cwd=d)
        res = run.finish()
        if res["rc"] != 0:
            raise RuntimeError(f"tidemark ({name}) exited {res['rc']}; see {run.log}:\n"
                               + run.log.read_text(errors="replace")[-2000:])
        return res

    # -- Flink --------------------------------------------------------------

    def build_flink(self):
        from maven import module_classpath
        self.classpath = module_classpath(FLINK_DIR, FLINK_JAR,
                                          log=lambda m: print(m, flush=True))

    def flink_script(self, tables, select, events) -> str:
        lines = []
        for t in tables:
            lines.append(f"CREATE TABLE {t} ({FLINK_COLUMNS[t]}{FLINK_WATERMARK}) WITH ('connector' = 'tm-nexmark', "
                         f"'table' = '{t}', 'events' = '{events}', 'seed' = '{self.args.seed}');")
        lines.append(select + ";")
        return "\n".join(lines) + "\n"

    def flink_run(self, script: str, parallelism: int, name: str, verify=False) -> dict:
        path = self.tmp / f"{name}.flink.sql"
        path.write_text(script)
        cmd = [self.java]
        if self.args.flink_heap:
            cmd.append(f"-Xmx{self.args.flink_heap}")
        cmd += ["-cp", self.classpath, "io.tidemark.nexmark.NexmarkRun", "--script", str(path),
                "--parallelism", str(parallelism)]
        if verify:
            cmd.append("--verify")
        run = Run(cmd, self.tmp / f"{name}.flink.log")
        res = run.finish()
        if res["rc"] != 0:
            log = run.log.read_text(errors="replace")
            m = re.search(r"^(?:Exception in thread \"main\" )?(\S*Exception: .*)$", log, re.M)
            raise RuntimeError(m.group(1)[:300] if m else f"Flink exited {res['rc']}; see {run.log}")
        res["inner"] = json.loads(res["stdout"].strip().splitlines()[-1])
        return res

    # -- the generator sanity check -----------------------------------------

    def sanity(self):
        events = min(self.args.events, self.args.sanity_events)
        lines = []
        for table, (count, cols) in SANITY.items():
            exprs_tm = [count] + [f"CAST(sum({c}) AS bigint)" for c in cols]
            out = self.tmp / f"sanity-{table}"
            shutil.rmtree(out, ignore_errors=True)
            select = "SELECT " + ", ".join(f"{e} AS c{i}" for i, e in enumerate(exprs_tm)) + \
                     f" FROM {table}"
            self.tidemark_run(self.tidemark_job([table], select, events, 1, sink=str(out)),
                              f"sanity-{table}")
            last = [json.loads(x) for x in (out / "out.jsonl").read_text().splitlines() if x]
            after = last[-1]["after"]
            tm = [str(after[f"c{i}"]) for i in range(len(exprs_tm))]
            if self.classpath:
                fcols = [c.replace("dateTime", "`dateTime`") for c in cols]
                fsel = "SELECT " + ", ".join([count] + [f"CAST(SUM({c}) AS BIGINT)" for c in fcols]) \
                       + f" FROM {table}"
                rows = self.flink_run(self.flink_script([table], fsel, events), 1,
                                      f"sanity-{table}", verify=True)["inner"]["verify"]
                fl = [str(x) for x in rows[0]]
                verdict = "equal" if fl == tm else f"DIFFER: tidemark {tm}, Flink {fl}"
            else:
                verdict = "(Flink not run)"
            lines.append(f"{table} {tm[0]} rows, sums of {', '.join(cols)}: {verdict}")
        print(f"generators agree? first {events:,} events:")
        for line in lines:
            print("  " + line)
        return all("DIFFER" not in x for x in lines)


def fmt_rate(x):
    if x is None:
        return "-"
    return f"{x / 1e3:,.0f}K" if x >= 1e4 else f"{x:,.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=2_000_000,
                    help="events of all three types per run (default 2,000,000)")
    ap.add_argument("--queries", default=",".join(ORDER), help="comma-separated, e.g. q0,q1")
    ap.add_argument("--parallelism", default="1,2")
    ap.add_argument("--rounds", type=int, default=1, help="runs per engine and query (medians)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tidemark", default=default_tidemark())
    ap.add_argument("--flink-heap", default="1g")
    ap.add_argument("--no-flink", action="store_true", help="tidemark only")
    ap.add_argument("--sanity-events", type=int, default=200_000)
    ap.add_argument("--smoke", action="store_true",
                    help="a few seconds, untimed: 20,000 events, q0 and q3, p = 1, tidemark only")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    args.tidemark = str(Path(args.tidemark).resolve())
    if args.smoke:
        args.events, args.queries, args.parallelism, args.no_flink = 20000, "q0,q3,q5", "1", True
        args.sanity_events = 20000
    queries = [x.strip() for x in args.queries.split(",") if x.strip()]
    for name in queries:
        if name not in Q:
            ap.error(f"unknown query {name}; known: {', '.join(ORDER)}")
    pars = [int(x) for x in args.parallelism.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="nexmark-"))
    bench = Bench(args, tmp)
    print(f"machine: {machine()}")
    print(f"tidemark: {args.tidemark}; events per run: {args.events:,}; seed {args.seed}; "
          f"parallelism {args.parallelism}; rounds {args.rounds}")
    if not args.no_flink:
        bench.build_flink()
        print(f"Flink: bench/nexmark/flink (Flink 2.3, in-process MiniCluster), "
              f"{subprocess.run([bench.java, '-version'], capture_output=True, text=True).stderr.splitlines()[0]}, "
              f"heap {args.flink_heap}")
    ok = bench.sanity()
    print()
    hdr = (f"{'query':6} {'p':>2} | {'tidemark ev/CPU-s':>17} {'wall ev/s':>10} {'RSS':>8} | "
           f"{'Flink ev/CPU-s job':>18} {'(proc)':>8} {'wall ev/s':>10} {'RSS':>8} | {'ratio':>5} | "
           f"{'Flink 1.13/core':>15}")
    print(hdr)
    print("-" * len(hdr))
    results = []
    for name in queries:
        qd = Q[name]
        ok_plan, plan = bench.tidemark_explain(
            bench.tidemark_job(qd["tables"], qd["tidemark"], args.events, 1))
        for p in pars:
            tm = fl = None
            tm_err = fl_err = None
            if not ok_plan:
                tm_err = f"not supported yet: {plan}"
            if not qd["flink"]:
                fl_err = "not run"
            tms, fls = [], []
            for r in range(args.rounds):
                order = ["tm", "fl"] if r % 2 == 0 else ["fl", "tm"]
                for who in order:
                    if who == "tm" and tm_err is None:
                        try:
                            tms.append(bench.tidemark_run(
                                bench.tidemark_job(qd["tables"], qd["tidemark"], args.events, p),
                                f"{name}-p{p}-r{r}"))
                        except RuntimeError as e:
                            tm_err = f"failed: {str(e).splitlines()[0][:200]}"
                    if who == "fl" and fl_err is None and not args.no_flink:
                        try:
                            fls.append(bench.flink_run(
                                bench.flink_script(qd["tables"], qd["flink"], args.events), p,
                                f"{name}-p{p}-r{r}"))
                        except RuntimeError as e:
                            fl_err = f"failed: {str(e)[:200]}"
            ev = args.events
            if tms:
                tm = {"cpu_rate": statistics.median(ev / x["cpu"] for x in tms),
                      "wall_rate": statistics.median(ev / x["wall"] for x in tms),
                      "rss": max(x["rss_kib"] for x in tms) / 1024,
                      "spread": (min(ev / x["cpu"] for x in tms), max(ev / x["cpu"] for x in tms))}
            if fls:
                fl = {"cpu_rate": statistics.median(ev / x["inner"]["job_cpu_s"] for x in fls),
                      "proc_rate": statistics.median(ev / x["cpu"] for x in fls),
                      "wall_rate": statistics.median(ev / x["inner"]["job_wall_s"] for x in fls),
                      "rss": max(x["rss_kib"] for x in fls) / 1024,
                      "spread": (min(ev / x["inner"]["job_cpu_s"] for x in fls),
                                 max(ev / x["inner"]["job_cpu_s"] for x in fls))}
            ratio = f"{tm['cpu_rate'] / fl['cpu_rate']:.2f}" if tm and fl else "-"
            pub = FLINK_113_PER_CORE.get(name)
            line = (f"{name:6} {p:>2} | "
                    + (f"{fmt_rate(tm['cpu_rate']):>17} {fmt_rate(tm['wall_rate']):>10} "
                       f"{tm['rss']:>6.0f}Mi" if tm else f"{'-':>17} {'-':>10} {'-':>8}")
                    + " | "
                    + (f"{fmt_rate(fl['cpu_rate']):>18} {fmt_rate(fl['proc_rate']):>8} "
                       f"{fmt_rate(fl['wall_rate']):>10} {fl['rss']:>6.0f}Mi"
                       if fl else f"{'-':>18} {'-':>8} {'-':>10} {'-':>8}")
                    + f" | {ratio:>5} | {fmt_rate(pub) if pub and p == 1 else '':>15}")
            print(line, flush=True)
            if tm_err and p == pars[0]:
                print(f"       tidemark: {tm_err}")
            if fl_err and p == pars[0] and not args.no_flink:
                print(f"       Flink: {fl_err}")
            if qd["note"] and p == pars[0]:
                print(f"       note: {qd['note']}")
            results.append({"query": name, "parallelism": p, "tidemark": tm, "flink": fl,
                            "tidemark_error": tm_err, "flink_error": fl_err})
    print("\nq6 is not run (optional in the issue; Flink's Nexmark does not run it either).")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.keep:
        print(f"work directory kept: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
