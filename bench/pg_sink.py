#!/usr/bin/python3
"""PostgreSQL sink benchmark: tidemark against the bulk-load ceiling and a naive consumer.

One throwaway PostgreSQL 15 and one throwaway Kafka broker.  --changes Debezium
change events (creates, then updates; --delete-pct of them deletes) over --keys
keys go to a topic (keyed by id, --partitions partitions).  Then, in the same run:

  * tidemark reads the topic (connector 'kafka', declared PRIMARY KEY) into a keyed
    PostgreSQL table with delivery = 'exactly-once' and SET checkpoint_interval =
    '1s', timed from process start until the target holds exactly the final rows
    (count and checksum) and no prepared transaction is left;
  * `psql \\copy` of the same final rows into an empty table with the same
    primary key: the bulk-load ceiling (what any loader of the final state costs);
  * a naive consumer: one connection, one `INSERT … ON CONFLICT DO UPDATE` (or
    DELETE) per change in autocommit, over the first --naive-changes events (it
    is slow), as a hand-written consumer would do.

It prints rows applied per second for each, tidemark's peak RSS, and the ratios
tidemark / \\copy (goal >= 0.5) and tidemark / naive (goal >= 10).  Debezium's
JDBC sink is not run yet (see the issue).  This is a benchmark, not a test.

    /usr/bin/python3 bench/pg_sink.py [--changes 1000000] [--keys 100000]
                                      [--naive-changes 100000] [--keep DIR]
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "lib"))
from pgserver import PgServer  # noqa: E402
from kafkaserver import KafkaServer  # noqa: E402

COLS = "id bigint PRIMARY KEY, customer bigint, amount numeric(14,2), note text"


def events(n, keys, delete_pct, seed=1):
    """(key, value JSON or None for a delete's value..., final rows) of n Debezium events."""
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
        new = {"id": k, "customer": rng.randrange(1000),
               "amount": f"{rng.randrange(1, 10**8) / 100:.2f}", "note": f"n{i}"}
        out.append((k, "u" if old else "c", old, new))
        rows[k] = new
    return out, rows


def envelope(op, before, after):
    return json.dumps({"before": before, "after": after, "op": op, "ts_ms": 1700000000000,
                       "source": {"version": "2.7.0.Final", "connector": "postgresql",
                                  "name": "bench", "db": "bench", "schema": "public",
                                  "table": "t"}}, separators=(",", ":"))


def peak_rss_kib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def checksum_sql(table):
    return (f"SELECT count(*), coalesce(sum(hashtext(id::text || '|' || customer::text || '|' || "
            f"amount::text || '|' || note)), 0) FROM {table}")


def expected_checksum(pg, rows, tmp):
    """Loads the final rows with \\copy into `ref` (timed: the ceiling); returns (secs, checksum)."""
    path = tmp / "final.tsv"
    with open(path, "w") as f:
        for r in rows.values():
            f.write(f"{r['id']}\t{r['customer']}\t{r['amount']}\t{r['note']}\n")
    pg.psql(f"CREATE TABLE ref ({COLS})", db="bench")
    cmd = [str(pg.bindir / "psql"), "-X", "-q", "-h", pg.host, "-p", str(pg.port), "-U",
           "postgres", "-d", "bench", "-c", f"\\copy ref FROM '{path}'"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    secs = time.perf_counter() - t0
    return secs, pg.psql(checksum_sql("ref"), db="bench")


def naive(pg, evs):
    conn = pg.connect("bench")
    cur = conn.cursor()
    cur.execute(f"CREATE TABLE naive ({COLS})")
    t0 = time.perf_counter()
    for k, op, before, after in evs:
        if op == "d":
            cur.execute("DELETE FROM naive WHERE id = %s", (k,))
        else:
            cur.execute("INSERT INTO naive VALUES (%(id)s, %(customer)s, %(amount)s, %(note)s) "
                        "ON CONFLICT (id) DO UPDATE SET customer = EXCLUDED.customer, "
                        "amount = EXCLUDED.amount, note = EXCLUDED.note", after)
    secs = time.perf_counter() - t0
    conn.close()
    return secs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--changes", type=int, default=1_000_000)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--delete-pct", type=float, default=5)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--naive-changes", type=int, default=100_000)
    ap.add_argument("--tidemark", default=os.environ.get("TIDEMARK_BIN", str(REPO / "build" / "tidemark")))
    ap.add_argument("--keep")
    a = ap.parse_args()
    tmp = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="pg_sink_bench."))
    tmp.mkdir(parents=True, exist_ok=True)
    evs, rows = events(a.changes, a.keys, a.delete_pct)
    print(f"{len(evs)} changes over {a.keys} keys, {len(rows)} final rows")
    with PgServer() as pg, KafkaServer() as kafka:
        pg.psql("CREATE DATABASE bench")
        topic = "bench-pg-sink"
        kafka.create_topic(topic, partitions=a.partitions)
        from confluent_kafka import Producer
        p = Producer(kafka.client_conf(acks="all", linger_ms=50))
        for k, op, before, after in evs:
            while True:
                try:
                    p.produce(topic, key=str(k).encode(), value=envelope(op, before, after).encode(),
                              partition=k % a.partitions)
                    break
                except BufferError:
                    p.poll(0.1)
        assert p.flush(120) == 0
        copy_secs, want = expected_checksum(pg, rows, tmp)

        job = "\n".join([
            f"CREATE TABLE src ({COLS}) WITH (connector = 'kafka', bootstrap_servers = "
            f"'{kafka.bootstrap}', topic = '{topic}', group_id = 'bench');",
            f"CREATE TABLE t ({COLS}) WITH (connector = 'postgres', dsn = '{pg.dsn('bench')}', "
            "create_table = true, delivery = 'exactly-once');",
            "INSERT INTO t SELECT id, customer, amount, note FROM src;",
            "SET checkpoint_interval = '1s';",
            "SET admin_address = '127.0.0.1:0';", ""])
        (tmp / "job.sql").write_text(job)
        log = open(tmp / "tidemark.log", "wb")
        t0 = time.perf_counter()
        proc = subprocess.Popen([a.tidemark, "run", str(tmp / "job.sql"), "--state-dir",
                                 str(tmp / "state")], stdout=log, stderr=log, cwd=tmp)
        rss = 0
        while True:
            rss = max(rss, peak_rss_kib(proc.pid))
            if proc.poll() is not None:
                sys.exit(f"tidemark stopped (exit {proc.returncode}); see {tmp / 'tidemark.log'}")
            try:
                got = pg.psql(checksum_sql("t"), db="bench")
            except Exception:
                got = None
            if got == want and pg.psql("SELECT count(*) FROM pg_prepared_xacts") == "0":
                break
            time.sleep(0.2)
        tm_secs = time.perf_counter() - t0
        proc.terminate()
        proc.wait(60)
        naive_evs = evs[:a.naive_changes]
        naive_secs = naive(pg, naive_evs)

    tm_rate = len(evs) / tm_secs
    copy_rate = len(rows) / copy_secs
    naive_rate = len(naive_evs) / naive_secs
    print(f"tidemark exactly-once  {tm_secs:8.2f} s  {tm_rate:10.0f} changes/s  "
          f"({len(rows) / tm_secs:.0f} final rows/s)  peak RSS {rss / 1024:.1f} MiB")
    print(f"psql \\copy final rows {copy_secs:8.2f} s  {copy_rate:10.0f} rows/s")
    print(f"naive per-change loop  {naive_secs:8.2f} s  {naive_rate:10.0f} changes/s "
          f"(first {len(naive_evs)} changes)")
    print(f"ratios: tidemark changes/s / \\copy rows/s = {tm_rate / copy_rate:.2f} (goal >= 0.5); "
          f"tidemark / naive = {tm_rate / naive_rate:.1f} (goal >= 10)")
    if not a.keep:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
