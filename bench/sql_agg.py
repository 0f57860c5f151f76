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

  * Flink 2.3: bench/flink (SqlRun.java), one JVM running a local MiniCluster; Kafka
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

The broker, the runs, the end detection and the measurement are bench/sqlbench.py's,
shared with bench/sql_join.py.  This is a benchmark, not a test: nothing asserts a time.
bench/README.md describes it.

    bench/sql_agg.py [--events 1000000] [--keys 10000,1000000] [--rounds 3]
                     [--parallelism 1,2] [--partitions 2] [--sink null|kafka]
                     [--flink-heap SIZE] [--flink-conf KEY=VALUE ...] [--keep DIR]
"""
import argparse
import os
import random
import re
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sqlbench import (RunFailed, Runner, TopicWriter, add_common_args, cents,  # noqa: E402
                      debezium_event, machine, med_spread, parse_list, run_main, versions)

QUERY = ("SELECT customer_id, count(*) AS cnt, sum(amount) AS total, min(amount) AS lo, "
         "max(amount) AS hi, avg(amount) AS mean FROM orders GROUP BY customer_id")
# --tidemark-passthrough: the harness check that runs before the SQL layer exists.
PASSTHROUGH = "SELECT * FROM orders"
STATUSES = ["new", "paid", "shipped", "delivered", "returned"]


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

    def produce(self, kafka, topic: str) -> float:
        rnd = random.Random(self.seed)
        w = TopicWriter(kafka, topic)
        cust = {}    # id -> customer_id
        amt = {}     # id -> cents
        stat = {}    # id -> status index
        live = []    # ids, for picking one at random
        where = {}   # id -> index in live
        next_id = 1
        ts = 1_700_000_000_000

        def row(i):
            return (f'{{"id":{i},"customer_id":{cust[i]},"amount":{cents(amt[i])},'
                    f'"status":"{STATUSES[stat[i]]}"}}')

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
            w.send(f'{{"id":{i}}}'.encode(), debezium_event("orders", op, before, after, ts, n + 1))
        seconds = w.close()
        self.bytes = w.bytes
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


# -- the jobs -----------------------------------------------------------------

def flink_source(k, topic: str) -> str:
    # amount arrives as a JSON number (Debezium decimal.handling.mode=double, written
    # exactly with two decimals); DECIMAL(10,2) reads it exactly.
    return f"""CREATE TABLE orders (
  id BIGINT, customer_id BIGINT, amount DECIMAL(10, 2), status STRING
) WITH (
  'connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{k.bootstrap}',
  'properties.group.id' = 'flink-{topic}-{time.monotonic_ns()}',
  'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset',
  'format' = 'debezium-json'
);
"""


def flink_script(k, topic: str, out_topic: str = None) -> str:
    """The measured job: the GROUP BY into a blackhole, or into a Kafka topic in
    debezium-json (the changelog: -U becomes a 'd' event, +U a 'c')."""
    if out_topic:
        sink = (f"'connector' = 'kafka', 'topic' = '{out_topic}', "
                f"'properties.bootstrap.servers' = '{k.bootstrap}', 'format' = 'debezium-json'")
    else:
        sink = "'connector' = 'blackhole'"
    # The result types Flink derives for the aggregates: sum of DECIMAL(10,2) is
    # DECIMAL(38,2), avg DECIMAL(38,6).
    return flink_source(k, topic) + f"""CREATE TABLE out_agg (
  customer_id BIGINT, cnt BIGINT, total DECIMAL(38, 2), lo DECIMAL(10, 2), hi DECIMAL(10, 2),
  mean DECIMAL(38, 6)
) WITH ({sink});
INSERT INTO out_agg {QUERY};
"""


def flink_check_script(k, topic: str) -> str:
    """A global aggregate over the changelog, folded by Flink into its final row."""
    return flink_source(k, topic) + ("SELECT count(*), sum(amount), count(DISTINCT customer_id) "
                                     "FROM orders;\n")


def job_text(args, k, topic: str, parallelism: int, out_topic: str = None) -> str:
    if out_topic:
        sink = (f"connector = 'kafka', bootstrap_servers = '{k.bootstrap}', "
                f"topic = '{out_topic}', format = 'debezium-json', schemas = false, "
                f"create_topics = false, delivery = 'at-least-once'")
    else:
        sink = "connector = 'stdout', schemas = false"
    return f"""-- bench/sql_agg.py: the GROUP BY of the Flink job.
CREATE TABLE orders (id bigint, customer_id bigint, amount numeric(10,2), status text)
WITH (connector = 'kafka', bootstrap_servers = '{k.bootstrap}', topic = '{topic}',
      format = 'debezium-json', startup = 'earliest', on_error = 'fail',
      decimal_handling = 'double', group_id = 'tidemark-{topic}-{time.monotonic_ns()}');
CREATE TABLE out_agg () WITH ({sink});
INSERT INTO out_agg {PASSTHROUGH if args.tidemark_passthrough else QUERY};
SET parallelism = {parallelism};
SET admin_address = '127.0.0.1:0';
"""


def tidemark_plans(args, runner: Runner, k) -> tuple:
    """(True, plan) if this tidemark plans the GROUP BY job, else (False, why)."""
    ok, out = runner.tidemark_explain(job_text(args, k, "orders", 1))
    # A build may accept the job and still plan no aggregation (one built while the
    # SQL layer was being merged explained this GROUP BY as `project: SELECT *
    # (every column, passthrough)`); only a plan with a group-by step counts.
    if ok and not args.tidemark_passthrough and not re.search(r"^\s+group by ", out, re.M):
        plan = [ln.strip() for ln in out.splitlines() if ln.startswith("    ")]
        return False, ("explain accepts the job but its plan has no group-by step: "
                       + " / ".join(plan[:3]))
    return ok, out


def run_tidemark(args, runner: Runner, k, topic: str, events: int, parallelism: int, run: str,
                 ds: DataSet = None) -> dict:
    """One measured tidemark run; with `ds`, also checks its output's final rows against
    the data set (with the stdout sink only)."""
    out_topic = runner.out_topic(run)
    text = job_text(args, k, topic, parallelism, out_topic)
    group = re.search(r"group_id = '([^']+)'", text).group(1)
    r = runner.tidemark(text, run, [("orders", topic, group)], events, out_topic)
    r["check"] = None
    if ds is not None and not out_topic and not args.tidemark_passthrough:
        r["check"] = check_output(r["out_file"], ds)
    r["out_file"].unlink()
    return r


def check_output(path: Path, ds: DataSet) -> str:
    """Folds the sink's changelog (Debezium JSON lines, keyed by customer_id) into the
    final rows and compares count and sum with the data set's live rows."""
    from sqlbench import fold_changelog
    final = fold_changelog(path, lambda r: (r["customer_id"], r["cnt"], r["total"]))
    if any(k[0] == "unmatched retraction" for k in final):
        return f"MISMATCH: the output retracts rows it never emitted ({path})"
    try:
        rows = sum(int(cnt) for _, cnt, _ in final)
        total = sum((Decimal(str(t)) for _, _, t in final), Decimal(0))
    except (KeyError, TypeError, ValueError) as e:
        return f"MISMATCH: the output rows are not the query's ({e!r} in {path})"
    return ds.check(rows, total, len(final))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000,
                    help="change events per data set (default 1,000,000)")
    ap.add_argument("--keys", default="10k,1m",
                    help="distinct group keys (customer_id drawn from 1..K), one data set each; "
                         "default 10k,1m")
    ap.add_argument("--tidemark-passthrough", action="store_true",
                    help="a check of this harness for builds without GROUP BY: tidemark runs "
                         "SELECT * FROM orders instead of the query (so its figures are NOT "
                         "comparable with Flink's and no ratio is printed), through the same "
                         "start, end detection and measurement")
    add_common_args(ap)
    args = ap.parse_args()
    if args.events < 1000:
        ap.error("--events must be at least 1000")
    return run_main(args, "tm-bench-agg-", lambda runner, kafka: bench(args, runner, kafka))


def bench(args, runner: Runner, kafka) -> int:
    keys = parse_list(args.keys)
    pars = parse_list(args.parallelism)
    do_flink = args.only != "tidemark"
    if do_flink:
        runner.build_flink()

    tm_ok, tm_why = False, "not measured (--only flink)"
    if args.only != "flink" and not os.access(args.tidemark, os.X_OK):
        tm_why = f"not measured: no tidemark binary at {args.tidemark} (build it, or --tidemark)"
        print(tm_why, flush=True)
    elif args.only != "flink":
        tm_ok, tm_why = tidemark_plans(args, runner, kafka)
        if not tm_ok:
            print(f"tidemark: SQL aggregation not available in this build "
                  f"({args.tidemark} explain: {tm_why})", flush=True)
    sides = ([] if not do_flink else ["flink"]) + (["tidemark"] if tm_ok else [])
    if not sides:
        print("nothing to measure")
        return 1

    results = {}   # (keys, side, parallelism) -> [run dicts]
    for k in keys:
        topic = f"orders-{k}"
        kafka.create_topic(topic, partitions=args.partitions)
        ds = DataSet(args.events, k, args.seed)
        sec = ds.produce(kafka, topic)
        print(f"\ndata set {k:,} keys: {args.events:,} events ({ds.counts['c']:,} inserts, "
              f"{ds.counts['u']:,} updates, {ds.counts['d']:,} deletes), "
              f"{ds.bytes / args.events:.0f} bytes per event, into {topic} "
              f"({args.partitions} partitions) in {sec:.1f}s; live at the end: "
              f"{ds.live_rows:,} rows in {ds.live_groups:,} groups", flush=True)
        if do_flink:
            t0 = time.monotonic()
            v = runner.flink_verify(flink_check_script(kafka, topic), f"flink-verify-{topic}")
            rows, total, groups = v[0] if v else (0, None, 0)
            res = ds.check(int(rows), Decimal(total or "0"), int(groups))
            print(f"  check through Flink (unmeasured): {res} ({rows} live rows in {groups} "
                  f"groups, {time.monotonic() - t0:.1f}s)", flush=True)
        configs = [(side, p) for p in pars for side in sides]
        checked = False
        for i in range(args.rounds):
            order = configs[i % len(configs):] + configs[:i % len(configs)]
            for side, p in order:
                run = f"{side}-k{k}-p{p}-r{i}"
                try:
                    if side == "flink":
                        out_topic = runner.out_topic(run)
                        r = runner.flink(flink_script(kafka, topic, out_topic), p, run,
                                         out_topic=out_topic)
                    else:
                        r = run_tidemark(args, runner, kafka, topic, args.events, p, run,
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

    # -- the report ----------------------------------------------------------
    print()
    print(f"machine: {machine()}")
    print(f"versions: {versions(runner, args)}")
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


if __name__ == "__main__":
    sys.exit(main())
