#!/usr/bin/python3
"""SQL join benchmark: tidemark against Apache Flink 2.3 SQL, the same joins over the same topics.

One throwaway single-node Kafka broker (KRaft).  Three topics of Debezium JSON change
events (bare payload, amounts as JSON numbers with two decimals, message key {"id": N}),
each of at least --events changes by default:

  * orders (id, customer_id, product_id, qty, amount, status): --events changes in the
    pattern insert, insert, update, insert, delete (60/20/20) on rows picked at random;
    an update changes qty, amount and status, and one in ten also moves the order to
    another customer, one in ten to another product; customer_id is drawn from
    1..--customers, product_id from 1..--products;
  * customers (id, name, country, active): first one insert per key (--customers keys),
    then changes up to --customer-events: 90 % updates of a live customer (a new name;
    one in four also a new country, one in ten flips active), 5 % deletes, 5 % inserts
    again of a deleted key (an update when none is deleted);
  * products (id, price): the same over --products keys and --product-events changes
    (updates change the price).

Every update and delete carries the full before image (REPLICA IDENTITY FULL).  Two
queries, identical on both engines:

  join2:  SELECT o.id, o.amount, c.name, c.country
          FROM orders o JOIN customers c ON o.customer_id = c.id
  join3:  SELECT c.country, count(*) AS orders, sum(o.qty * p.price) AS revenue
          FROM orders o JOIN customers c ON o.customer_id = c.id
          JOIN products p ON o.product_id = p.id GROUP BY c.country

Each is run at every --parallelism for --rounds rounds with a rotating order, on:

  * flink: bench/flink (SqlRun.java), one JVM with a local MiniCluster, Kafka sources
    ('format' = 'debezium-json', earliest offsets, bounded at the latest), Flink's
    defaults (heap state backend); sink: a Kafka topic in debezium-json (--sink null:
    blackhole).  Timed from exec to exit;
  * flink-rocksdb: the same with 'state.backend.type' = 'rocksdb' and its local
    directory in the run's directory, sampled during the run for its size on disk
    (Flink deletes it when the job ends);
  * tidemark: `tidemark run` of the same query (Kafka sources, debezium-json, columns
    declared), the Kafka sink at-least-once (--sink null: stdout into a file); the end
    of a run is detected as bench/sqlbench.py describes.  The state directory is sampled
    during the run and at the end; tidemark writes no RocksDB WAL, so the state still in
    memtables at the end is read from /metrics (tidemark_state_memtable_bytes).

Sources declare no PRIMARY KEY on either engine (as bench/sql_agg.py); --primary-key
declares PRIMARY KEY (id) on every source of both (Flink: NOT ENFORCED; tidemark then
reads each source through its upsert operator, which Flink does not add for a
debezium-json source).

Before the rounds, each query is checked once per data set (unmeasured): Flink folds the
query's changelog into its final rows (collect), and a tidemark run with the stdout sink
has its output folded the same way; both must equal the result the generator computes
from the rows it left live.  A mismatch prints MISMATCH with examples.

Events per CPU-second counts the input events of the topics a query reads (orders and
customers for join2, all three for join3).  The work also depends on how the engines
interleave the topics (an update of a customer retracts and re-emits that customer's
joined orders, and how many there are depends on how far the orders topic has been
read), so each run also prints the records its sink wrote (with the Kafka sink).

    bench/sql_join.py [--events 1m] [--customers 100k] [--products 100k]
                      [--customer-events N] [--product-events N] [--queries join2,join3]
                      [--engines flink,flink-rocksdb,tidemark] [--rounds 3]
                      [--parallelism 1,2] [--partitions 2] [--sink kafka|null]
                      [--primary-key] [--flink-heap SIZE] [--flink-conf KEY=VALUE ...]
                      [--perf PREFIX] [--no-check] [--keep DIR]
"""
import argparse
import os
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sqlbench import (RunFailed, Runner, TopicWriter, add_common_args, cents,  # noqa: E402
                      compare_rows, debezium_event, fold_changelog, machine, med, med_spread,
                      parse_count, parse_list, run_main, seeded, versions)

QUERIES = {
    "join2": ("SELECT o.id, o.amount, c.name, c.country "
              "FROM orders o JOIN customers c ON o.customer_id = c.id"),
    "join3": ("SELECT c.country, count(*) AS orders, sum(o.qty * p.price) AS revenue "
              "FROM orders o JOIN customers c ON o.customer_id = c.id "
              "JOIN products p ON o.product_id = p.id GROUP BY c.country"),
}
OUT_COLUMNS = {"join2": ["id", "amount", "name", "country"],
               "join3": ["country", "orders", "revenue"]}
TABLES = {"join2": ["orders", "customers"], "join3": ["orders", "customers", "products"]}
# The sink's columns on Flink, as Flink types the query's: sum of INT * DECIMAL(10,2) is
# DECIMAL(38,2).
FLINK_SINK_COLUMNS = {
    "join2": "id BIGINT, amount DECIMAL(10, 2), name STRING, country STRING",
    "join3": "country STRING, orders BIGINT, revenue DECIMAL(38, 2)",
}
COLUMNS = {
    # table: [(name, tidemark type, Flink type)]
    "orders": [("id", "bigint", "BIGINT"), ("customer_id", "bigint", "BIGINT"),
               ("product_id", "bigint", "BIGINT"), ("qty", "int", "INT"),
               ("amount", "numeric(10,2)", "DECIMAL(10, 2)"), ("status", "text", "STRING")],
    "customers": [("id", "bigint", "BIGINT"), ("name", "text", "STRING"),
                  ("country", "text", "STRING"), ("active", "boolean", "BOOLEAN")],
    "products": [("id", "bigint", "BIGINT"), ("price", "numeric(10,2)", "DECIMAL(10, 2)")],
}
STATUSES = ["new", "paid", "shipped", "delivered", "returned"]
COUNTRIES = ["AR", "AT", "AU", "BE", "BR", "CA", "CH", "CL", "CN", "DE", "DK", "ES", "FI", "FR",
             "GB", "IE", "IN", "IT", "JP", "MX", "NL", "NO", "NZ", "PL", "PT", "SE", "US", "ZA"]
ENGINES = ["flink", "flink-rocksdb", "tidemark"]


# -- the data -----------------------------------------------------------------

class LiveSet:
    """The live keys of a table, with a uniform pick in O(1)."""

    def __init__(self):
        self.keys = []
        self.where = {}

    def __len__(self):
        return len(self.keys)

    def add(self, k: int) -> None:
        self.where[k] = len(self.keys)
        self.keys.append(k)

    def remove(self, k: int) -> None:
        i = self.where.pop(k)
        last = self.keys.pop()
        if last != k:
            self.keys[i] = last
            self.where[last] = i

    def pick(self, rnd) -> int:
        return self.keys[rnd.randrange(len(self.keys))]


class Table:
    """Writes one table's change events to a topic and keeps its live rows (id -> dict).

    `rows(rnd)` yields the operations as (op, id); `make(rnd, id, old)` returns a new row
    image for an insert (old None) or an update."""

    def __init__(self, name: str, seed: int):
        self.name = name
        self.rnd = seeded(seed, name)
        self.rows = {}
        self.live = LiveSet()
        self.counts = Counter()
        self.bytes = 0
        self.seconds = 0.0

    def render(self, row: dict) -> str:
        parts = []
        for col, ttype, _ in COLUMNS[self.name]:
            v = row[col]
            if ttype.startswith("numeric"):
                parts.append(f'"{col}":{cents(v)}')
            elif ttype == "text":
                parts.append(f'"{col}":"{v}"')
            elif ttype == "boolean":
                parts.append(f'"{col}":{"true" if v else "false"}')
            else:
                parts.append(f'"{col}":{v}')
        return "{" + ",".join(parts) + "}"

    def write(self, w: TopicWriter, op: str, i: int, before: dict, after: dict) -> None:
        self.counts[op] += 1
        n = sum(self.counts.values())
        w.send(f'{{"id":{i}}}'.encode(),
               debezium_event(self.name, op, "null" if before is None else self.render(before),
                              "null" if after is None else self.render(after),
                              1_700_000_000_000 + n, n))

    def insert(self, w, i: int, row: dict) -> None:
        self.rows[i] = row
        self.live.add(i)
        self.write(w, "c", i, None, row)

    def update(self, w, i: int, row: dict) -> None:
        before = self.rows[i]
        self.rows[i] = row
        self.write(w, "u", i, before, row)

    def delete(self, w, i: int) -> None:
        before = self.rows.pop(i)
        self.live.remove(i)
        self.write(w, "d", i, before, None)


class Orders(Table):
    PATTERN = "ccucd"

    def __init__(self, events: int, customers: int, products: int, seed: int):
        super().__init__("orders", seed)
        self.events, self.customers, self.products = events, customers, products

    def produce(self, kafka, topic: str) -> None:
        rnd, w = self.rnd, TopicWriter(kafka, topic)
        next_id = 1
        for n in range(self.events):
            op = self.PATTERN[n % 5]
            if op == "c":
                self.insert(w, next_id, {
                    "id": next_id, "customer_id": rnd.randrange(self.customers) + 1,
                    "product_id": rnd.randrange(self.products) + 1, "qty": rnd.randrange(1, 10),
                    "amount": rnd.randrange(100, 100_000), "status": STATUSES[0]})
                next_id += 1
            elif op == "u":
                i = self.live.pick(rnd)
                row = dict(self.rows[i], qty=rnd.randrange(1, 10),
                           amount=rnd.randrange(100, 100_000),
                           status=STATUSES[rnd.randrange(1, len(STATUSES))])
                if rnd.random() < 0.1:
                    row["customer_id"] = rnd.randrange(self.customers) + 1
                if rnd.random() < 0.1:
                    row["product_id"] = rnd.randrange(self.products) + 1
                self.update(w, i, row)
            else:
                self.delete(w, self.live.pick(rnd))
        self.seconds = w.close()
        self.bytes = w.bytes


class Dimension(Table):
    """customers or products: one insert per key, then updates, deletes, re-inserts."""

    def __init__(self, name: str, keys: int, events: int, seed: int):
        super().__init__(name, seed)
        self.keys, self.events = keys, events
        self.versions = Counter()

    def make(self, i: int, old: dict) -> dict:
        rnd = self.rnd
        self.versions[i] += 1
        if self.name == "products":
            return {"id": i, "price": rnd.randrange(100, 50_000)}
        row = {"id": i, "name": f"customer {i} v{self.versions[i]}",
               "country": COUNTRIES[rnd.randrange(len(COUNTRIES))], "active": True}
        if old is not None:
            if rnd.random() >= 0.25:
                row["country"] = old["country"]
            row["active"] = (not old["active"]) if rnd.random() < 0.1 else old["active"]
        return row

    def produce(self, kafka, topic: str) -> None:
        rnd, w = self.rnd, TopicWriter(kafka, topic)
        deleted = LiveSet()
        for n in range(self.events):
            if n < self.keys:
                self.insert(w, n + 1, self.make(n + 1, None))
                continue
            x = rnd.random()
            if x < 0.05 and len(self.live) > 1:
                i = self.live.pick(rnd)
                self.delete(w, i)
                deleted.add(i)
            elif x < 0.10 and len(deleted):
                i = deleted.pick(rnd)
                deleted.remove(i)
                self.insert(w, i, self.make(i, None))
            else:
                i = self.live.pick(rnd)
                self.update(w, i, self.make(i, self.rows[i]))
        self.seconds = w.close()
        self.bytes = w.bytes


def expected(query: str, orders: Orders, customers: Dimension, products: Dimension) -> Counter:
    """The query's result over the live rows, as row tuples (see row_key)."""
    out = Counter()
    if query == "join2":
        for o in orders.rows.values():
            c = customers.rows.get(o["customer_id"])
            if c is not None:
                out[(o["id"], Decimal(o["amount"]) / 100, c["name"], c["country"])] += 1
        return out
    groups = {}
    for o in orders.rows.values():
        c = customers.rows.get(o["customer_id"])
        p = products.rows.get(o["product_id"])
        if c is not None and p is not None:
            n, s = groups.get(c["country"], (0, 0))
            groups[c["country"]] = (n + 1, s + o["qty"] * p["price"])
    for country, (n, s) in groups.items():
        out[(country, n, Decimal(s) / 100)] += 1
    return out


def row_key(query: str, values: list) -> tuple:
    """A result row (a list in the query's column order, numbers as Decimal, int or str) as
    the tuple `expected` makes."""
    if query == "join2":
        i, amount, name, country = values
        return (int(i), Decimal(str(amount)), name, country)
    country, n, revenue = values
    return (country, int(n), Decimal(str(revenue)))


# -- the jobs -----------------------------------------------------------------

class JoinJobs:
    """The Flink scripts and tidemark jobs of one query."""

    def __init__(self, args, kafka, query: str, topics: dict):
        self.args, self.kafka, self.query, self.topics = args, kafka, query, topics

    def flink_script(self, run: str, out_topic: str = None, verify: bool = False) -> str:
        k = self.kafka
        out = []
        for t in TABLES[self.query]:
            cols = ", ".join(f"{c} {ft}" for c, _, ft in COLUMNS[t])
            if self.args.primary_key:
                cols += ", PRIMARY KEY (id) NOT ENFORCED"
            out.append(f"""CREATE TABLE {t} ({cols}) WITH (
  'connector' = 'kafka', 'topic' = '{self.topics[t]}',
  'properties.bootstrap.servers' = '{k.bootstrap}', 'properties.group.id' = 'flink-{run}-{t}',
  'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset',
  'format' = 'debezium-json'
);""")
        if verify:
            out.append(QUERIES[self.query] + ";")
            return "\n".join(out) + "\n"
        if out_topic:
            sink = (f"'connector' = 'kafka', 'topic' = '{out_topic}', "
                    f"'properties.bootstrap.servers' = '{k.bootstrap}', "
                    f"'format' = 'debezium-json'")
        else:
            sink = "'connector' = 'blackhole'"
        out.append(f"CREATE TABLE out_{self.query} ({FLINK_SINK_COLUMNS[self.query]}) "
                   f"WITH ({sink});")
        out.append(f"INSERT INTO out_{self.query} {QUERIES[self.query]};")
        return "\n".join(out) + "\n"

    def sources(self, run: str) -> list:
        """(source table, topic, consumer group) of the tidemark job of `run`."""
        return [(t, self.topics[t], f"tidemark-{run}-{t}") for t in TABLES[self.query]]

    def tidemark_job(self, run: str, parallelism: int, out_topic: str = None,
                     stdout: bool = False) -> str:
        k = self.kafka
        out = [f"-- bench/sql_join.py: {self.query}, as the Flink job runs it."]
        for t, topic, group in self.sources(run):
            cols = ", ".join(f"{c} {tt}" for c, tt, _ in COLUMNS[t])
            if self.args.primary_key:
                cols += ", PRIMARY KEY (id)"
            out.append(f"""CREATE TABLE {t} ({cols})
WITH (connector = 'kafka', bootstrap_servers = '{k.bootstrap}', topic = '{topic}',
      format = 'debezium-json', startup = 'earliest', on_error = 'fail',
      decimal_handling = 'double', group_id = '{group}');""")
        if out_topic and not stdout:
            sink = (f"connector = 'kafka', bootstrap_servers = '{k.bootstrap}', "
                    f"topic = '{out_topic}', format = 'debezium-json', schemas = false, "
                    f"create_topics = false, delivery = 'at-least-once'")
        else:
            sink = "connector = 'stdout', schemas = false"
        out.append(f"CREATE TABLE out_{self.query} () WITH ({sink});")
        out.append(f"INSERT INTO out_{self.query} {QUERIES[self.query]};")
        out.append(f"SET parallelism = {parallelism};")
        out.append("SET admin_address = '127.0.0.1:0';")
        return "\n".join(out) + "\n"


# -- the runs -----------------------------------------------------------------

def run_one(args, runner: Runner, jobs: JoinJobs, engine: str, p: int, run: str,
            events: int) -> dict:
    out_topic = runner.out_topic(run)
    if engine == "tidemark":
        r = runner.tidemark(jobs.tidemark_job(run, p, out_topic), run, jobs.sources(run), events,
                            out_topic)
        if out_topic:
            r["out_records"] = r["out_size"]
        else:
            with open(r["out_file"], "rb") as f:
                r["out_records"] = sum(1 for _ in f)
        r["out_file"].unlink()
        return r
    conf = []
    state_dir = None
    if engine == "flink-rocksdb":
        state_dir = runner.tmp / run / "rocksdb"
        conf = ["state.backend.type=rocksdb", f"state.backend.rocksdb.localdir={state_dir}"]
    # The run directory is made by runner.flink; the sampler waits for Flink to create
    # the RocksDB directory inside it.
    return runner.flink(jobs.flink_script(run, out_topic), p, run, conf=conf,
                        state_dir=state_dir, out_topic=out_topic)


def check(args, runner: Runner, jobs: JoinJobs, want: Counter, engines: list,
          events: int) -> None:
    q = jobs.query
    if "flink" in engines or "flink-rocksdb" in engines:
        t0 = time.monotonic()
        try:
            rows = runner.flink_verify(jobs.flink_script(f"verify-{q}", verify=True),
                                       f"flink-verify-{q}")
            got = Counter(row_key(q, r) for r in rows)
            res = compare_rows(got, want)
        except RunFailed as e:
            res = f"FAILED: {e}"
        print(f"  {q}: check through Flink (unmeasured): {res} "
              f"({time.monotonic() - t0:.1f}s)", flush=True)
    if "tidemark" in engines:
        run = f"tidemark-check-{q}"
        t0 = time.monotonic()
        try:
            r = runner.tidemark(jobs.tidemark_job(run, args.check_parallelism, stdout=True), run,
                                jobs.sources(run), events)
            cols = OUT_COLUMNS[q]
            got = fold_changelog(r["out_file"], lambda row: row_key(q, [row[c] for c in cols]))
            res = compare_rows(got, want)
            r["out_file"].unlink()
        except (RunFailed, KeyError) as e:
            res = f"FAILED: {e!r}"
        print(f"  {q}: check of tidemark's output (unmeasured, parallelism "
              f"{args.check_parallelism}): {res} "
              f"({time.monotonic() - t0:.1f}s)", flush=True)


def mib(b):
    return None if b is None or b < 0 else b / 2**20


def report(args, runner, results: dict, events: dict, engines: list, pars: list) -> None:
    print()
    print(f"machine: {machine()}")
    print(f"versions: {versions(runner, args)}")
    print(f"sink: {'blackhole (Flink), stdout into a file (tidemark)' if args.sink == 'null' else 'Kafka, debezium-json'}; "
          f"sources {'with' if args.primary_key else 'without'} PRIMARY KEY; medians of "
          f"{args.rounds} rounds, (min–max) in brackets")
    print("* state MiB: the state directory's size on disk, peak during the run / at the end; "
          "tidemark's end is after the daemon exited (its memtables flushed: the whole state), "
          "Flink's RocksDB directory is gone by the end (its peak leaves out its memtables)")
    for q in args.queries:
        n = events[q]
        print(f"\n{q}: {QUERIES[q]}\n  ({n:,} input events)")
        for p in pars:
            print(f"  parallelism {p}:")
            print(f"    {'':<14}{'events/CPU-s':>28}{'job only':>10}{'events/s wall':>16}"
                  f"{'peak RSS MiB':>14}{'state MiB peak/end*':>20}{'out records':>13}"
                  f"{'in+out/CPU-s':>16}{'broker CPU-s':>13}")
            for e in engines:
                rs = results.get((q, e, p), [])
                if not rs:
                    print(f"    {e:<14}  (no successful run)")
                    continue
                job = (f"{med([n / r['job_cpu'] for r in rs]):,.0f}" if "job_cpu" in rs[0]
                       else "")
                if e == "flink":
                    state = "in heap"
                else:
                    pk, en = med([mib(r["state_peak"]) for r in rs]), \
                        med([mib(r["state_end"]) for r in rs])
                    state = f"{pk:,.1f}/{en:,.1f}"
                    if e == "tidemark":
                        # After the exit: the memtables flushed, the whole state in SST files.
                        state = f"{pk:,.1f}/{med([mib(r['state_after']) for r in rs]):,.1f}"
                outr = [r["out_records"] for r in rs if r.get("out_records") is not None]
                # The work depends on the interleaving (see the docstring): input plus output
                # records per CPU-second puts the engines' different output volumes on one scale.
                inout = med([(n + r["out_records"]) / r["cpu"] for r in rs
                             if r.get("out_records") is not None])
                print(f"    {e:<14}{med_spread([n / r['cpu'] for r in rs], ',.0f'):>28}"
                      f"{job:>10}{med([n / r['wall'] for r in rs]):>16,.0f}"
                      f"{med([r['rss_kib'] / 1024 for r in rs]):>14,.0f}{state:>20}"
                      f"{(f'{med(outr):,.0f}' if outr else '-'):>13}"
                      f"{(f'{inout:,.0f}' if inout else '-'):>16}"
                      f"{med([r['broker_cpu'] for r in rs]):>13.1f}")
            tm = results.get((q, "tidemark", p))
            for e in ("flink", "flink-rocksdb"):
                fl = results.get((q, e, p))
                if not (tm and fl):
                    continue
                cpu = med([n / r["cpu"] for r in tm]) / med([n / r["cpu"] for r in fl])
                job = med([n / r["cpu"] for r in tm]) / med([n / r["job_cpu"] for r in fl])
                rss = med([r["rss_kib"] for r in tm]) / med([r["rss_kib"] for r in fl])
                line = (f"    tidemark / {e}: events per CPU-second {cpu:.2f} (target ≥ 3; "
                        f"against Flink's job alone {job:.2f}), peak RSS {rss:.2f}")
                if e == "flink-rocksdb":
                    fp = max(1, med([r["state_peak"] for r in fl]))
                    line += (f", state on disk {med([r['state_after'] for r in tm]) / fp:.2f} "
                             f"(tidemark's after exit against Flink's peak; peaks "
                             f"{med([r['state_peak'] for r in tm]) / fp:.2f})")
                print(line)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=parse_count, default=1_000_000,
                    help="changes of orders (default 1m); also the default of "
                         "--customer-events and --product-events")
    ap.add_argument("--customers", type=parse_count, default=100_000,
                    help="customer keys (default 100k)")
    ap.add_argument("--products", type=parse_count, default=100_000,
                    help="product keys (default 100k)")
    ap.add_argument("--customer-events", type=parse_count,
                    help="changes of customers (default --events)")
    ap.add_argument("--product-events", type=parse_count,
                    help="changes of products (default --events)")
    ap.add_argument("--queries", default="join2,join3",
                    help="which of join2, join3 to run (default both)")
    ap.add_argument("--engines", default=",".join(ENGINES),
                    help="which of flink, flink-rocksdb, tidemark to run (default all)")
    ap.add_argument("--no-check", action="store_true",
                    help="skip the unmeasured checks of the results (for --perf runs)")
    ap.add_argument("--check-parallelism", type=int, default=2,
                    help="the parallelism of tidemark's check run (default 2)")
    ap.add_argument("--primary-key", action="store_true",
                    help="declare PRIMARY KEY (id) on every source of both engines")
    add_common_args(ap)
    args = ap.parse_args()
    args.customer_events = args.customer_events or args.events
    args.product_events = args.product_events or args.events
    args.queries = [q.strip() for q in args.queries.split(",")]
    engines = [e.strip() for e in args.engines.split(",")]
    if args.only == "flink":
        engines = [e for e in engines if e != "tidemark"]
    elif args.only == "tidemark":
        engines = [e for e in engines if e == "tidemark"]
    bad = [q for q in args.queries if q not in QUERIES] + [e for e in engines if e not in ENGINES]
    if bad:
        ap.error(f"unknown query or engine: {', '.join(bad)}")
    if args.customer_events < args.customers or args.product_events < args.products:
        ap.error("--customer-events and --product-events must be at least the number of keys")
    return run_main(args, "tm-bench-join-",
                    lambda runner, kafka: bench(args, runner, kafka, engines))


def bench(args, runner: Runner, kafka, engines: list) -> int:
    pars = parse_list(args.parallelism)
    if any(e.startswith("flink") for e in engines):
        runner.build_flink()
    if "tidemark" in engines and not os.access(args.tidemark, os.X_OK):
        print(f"no tidemark binary at {args.tidemark} (build it, or --tidemark); "
              f"tidemark not measured", flush=True)
        engines = [e for e in engines if e != "tidemark"]

    orders = Orders(args.events, args.customers, args.products, args.seed)
    customers = Dimension("customers", args.customers, args.customer_events, args.seed)
    products = Dimension("products", args.products, args.product_events, args.seed)
    topics = {}
    needed = sorted({t for q in args.queries for t in TABLES[q]},
                    key=["orders", "customers", "products"].index)
    for t in needed:
        table = {"orders": orders, "customers": customers, "products": products}[t]
        topics[t] = f"{t}-{args.seed}"
        kafka.create_topic(topics[t], partitions=args.partitions)
        table.produce(kafka, topics[t])
        print(f"{t}: {sum(table.counts.values()):,} events ({table.counts['c']:,} inserts, "
              f"{table.counts['u']:,} updates, {table.counts['d']:,} deletes), "
              f"{table.bytes / max(1, sum(table.counts.values())):.0f} bytes per event, into "
              f"{topics[t]} ({args.partitions} partitions) in {table.seconds:.1f}s; "
              f"{len(table.rows):,} rows live at the end", flush=True)
    events = {q: sum(sum({"orders": orders, "customers": customers,
                          "products": products}[t].counts.values()) for t in TABLES[q])
              for q in args.queries}

    results = {}
    for q in args.queries:
        jobs = JoinJobs(args, kafka, q, topics)
        if "tidemark" in engines:
            ok, why = runner.tidemark_explain(jobs.tidemark_job("explain", 1))
            if not ok:
                print(f"  {q}: tidemark cannot plan it ({why}); tidemark not measured",
                      flush=True)
        want = expected(q, orders, customers, products)
        print(f"\n{q}: {sum(want.values()):,} result rows expected", flush=True)
        if not args.no_check:
            check(args, runner, jobs, want, engines, events[q])
        configs = [(e, p) for p in pars for e in engines]
        for i in range(args.rounds):
            order = configs[i % len(configs):] + configs[:i % len(configs)]
            for e, p in order:
                run = f"{q}-{e}-p{p}-r{i}"
                try:
                    r = run_one(args, runner, jobs, e, p, run, events[q])
                except RunFailed as ex:
                    print(f"  FAILED: {ex}", flush=True)
                    continue
                results.setdefault((q, e, p), []).append(r)
                n = events[q]
                extra = f", job alone {n / r['job_cpu']:,.0f}" if "job_cpu" in r else ""
                st = ""
                if r.get("state_peak") is not None:
                    st = (f", state dir peak {mib(r['state_peak']):,.1f} MiB, end "
                          f"{mib(r['state_end']):,.1f} MiB")
                    if r.get("memtables", -1) >= 0:
                        st += f" + {mib(r['memtables']):,.1f} MiB memtables"
                    if r.get("state_after") is not None:
                        st += f", after exit {mib(r['state_after']):,.1f} MiB"
                outr = (f", {r['out_records']:,} output records"
                        if r.get("out_records") is not None else "")
                print(f"  round {i + 1} {q} {e} p={p}: {r['wall']:.1f}s wall, {r['cpu']:.1f} "
                      f"CPU-s, {n / r['cpu']:,.0f} events/CPU-s{extra}, peak RSS "
                      f"{r['rss_kib'] / 1024:,.0f} MiB{st}{outr}", flush=True)
    report(args, runner, results, events, engines, pars)
    return 0


if __name__ == "__main__":
    sys.exit(main())
