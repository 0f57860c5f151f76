"""The PostgreSQL sink (connector = 'postgres'): views kept equal to their query.

A PostgreSQL CDC source reads `orders` (and `customers`) in one database; the
sink keeps a table in another database (or on another server) equal to a
GROUP BY or JOIN query over them.  After a random workload of inserts,
updates and deletes the target table must equal the same query run on the
source database, row for row, and no prepared transaction may be left
behind.  Exactly-once is checked through kill -9 (two-phase commit on a
server with max_prepared_transactions > 0, and the decision log on one with
max_prepared_transactions = 0); faults through a target server restarted in
the middle of the stream.
"""

import random
import time
from decimal import Decimal
from pathlib import Path

import pytest

from pgserver import PgServer
from tidemark import create_table, run_cli, wait_until

ORDERS = ("CREATE TABLE public.orders (id int PRIMARY KEY, customer_id int NOT NULL, "
          "amount numeric(12,2) NOT NULL, note text);")
CUSTOMERS = ("CREATE TABLE public.customers (id int PRIMARY KEY, region text NOT NULL);")

REVENUE_QUERY = ("SELECT customer_id, count(*) AS orders, sum(amount) AS revenue "
                 "FROM orders GROUP BY customer_id")
REGION_QUERY = ("SELECT c.region, count(*) AS orders, sum(o.amount) AS revenue "
                "FROM orders o JOIN customers c ON o.customer_id = c.id GROUP BY c.region")


class SinkCase:
    """A source database, a target database and the job between them."""

    def __init__(self, pg, db, tmp_path, bin, target_pg=None):
        self.pg = pg
        self.db = db
        self.dir = tmp_path
        self.bin = bin
        self.target_pg = target_pg or pg
        self.tdb = f"{db}_tgt"
        self.target_pg.psql(f'CREATE DATABASE "{self.tdb}"')
        self.daemons = []

    def src(self, sql):
        return self.pg.psql(sql, db=self.db)

    def tgt(self, sql):
        return self.target_pg.psql(sql, db=self.tdb)

    def job(self, query, sink_cols, sink_opts=None, tables="public.orders", sources=None,
            parallelism=1, interval="300ms"):
        parts = []
        for name, cols in (sources or {"orders": "id int PRIMARY KEY, customer_id int, "
                                                 "amount numeric(12,2), note text"}).items():
            parts.append(create_table(name, {
                "connector": "postgres-cdc", "dsn": self.pg.dsn(self.db),
                "tables": f"public.{name}", "slot": f"{self.db}_{name}",
                "publication": f"{self.db}_{name}", "snapshot": "initial",
                "heartbeat_interval": "200ms"}, cols))
        opts = {"connector": "postgres", "dsn": self.target_pg.dsn(self.tdb),
                "table": "public.view_out", "create_table": True, "delivery": "exactly-once"}
        opts.update(sink_opts or {})
        parts.append(create_table("view_out", opts, sink_cols))
        parts.append(f"INSERT INTO view_out {query};")
        parts.append(f"SET checkpoint_interval = '{interval}';")
        parts.append(f"SET parallelism = {parallelism};")
        parts.append("SET admin_address = '127.0.0.1:0';")
        return "\n".join(parts) + "\n"

    def tidemark(self, job_sql, name="tm"):
        from tidemark import Tidemark
        t = Tidemark(job_sql, self.dir / name, bin=self.bin)
        self.daemons.append(t)
        return t

    def rows(self, pg, db, sql):
        conn = pg.connect(db)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return sorted(cur.fetchall(), key=repr)
        finally:
            conn.close()

    def truth(self, query):
        return self.rows(self.pg, self.db, query)

    def target(self, cols="*"):
        """The target's rows, or None while the sink has not created it yet."""
        import psycopg2
        try:
            return self.rows(self.target_pg, self.tdb, f"SELECT {cols} FROM public.view_out")
        except psycopg2.errors.UndefinedTable:
            return None

    def prepared(self):
        out = self.target_pg.psql("SELECT gid FROM pg_prepared_xacts", db=self.tdb)
        return [g for g in out.splitlines() if g]

    def wait_equal(self, query, tm=None, timeout=120):
        last = {}

        def equal():
            last["truth"], last["target"] = self.truth(query), self.target()
            return last["truth"] == last["target"]

        try:
            wait_until(equal, timeout, "the target table to equal the query", tm.proc if tm else None)
        except AssertionError:
            t, g = set(last.get("truth") or []), set(last.get("target") or [])
            raise AssertionError(f"target differs from the query: missing {sorted(t - g, key=repr)[:10]}, "
                                 f"extra {sorted(g - t, key=repr)[:10]}\n"
                                 + (tm.log_tail() if tm else ""))

    def cleanup(self, failed):
        for d in self.daemons:
            d.kill9()
            if failed:
                print(f"\n=== {d.dir} ===\n{d.log_tail()}")
        # Prepared transactions would keep the database from being dropped.
        for gid in self.prepared():
            self.target_pg.psql(f"ROLLBACK PREPARED '{gid}'", db=self.tdb, check=False)
        self.target_pg.drop_database(self.tdb)


def sink_case_on(target_pg, pg, db, tmp_path, tidemark_bin, request):
    """A SinkCase writing to target_pg (None: the source's server), cleaned up afterwards."""
    c = SinkCase(pg, db, tmp_path, tidemark_bin, target_pg=target_pg)
    yield c
    rep = getattr(request.node, "rep_call", None)
    c.cleanup(rep is None or rep.failed)


@pytest.fixture
def case(pg, db, tmp_path, tidemark_bin, request):
    yield from sink_case_on(None, pg, db, tmp_path, tidemark_bin, request)


class Workload:
    """Random inserts, updates (amount, customer, key) and deletes of orders."""

    def __init__(self, case, seed, customers=8):
        self.case = case
        self.rng = random.Random(seed)
        self.ids = set()
        self.next_id = 1
        self.customers = customers

    def statement(self):
        r = self.rng
        roll = r.random()
        if not self.ids or roll < 0.45:
            i = self.next_id
            self.next_id += 1
            self.ids.add(i)
            return (f"INSERT INTO orders VALUES ({i}, {r.randrange(self.customers)}, "
                    f"{r.randrange(1, 100000) / 100}, 'n{i}')")
        i = r.choice(sorted(self.ids))
        if roll < 0.70:
            return f"UPDATE orders SET amount = {r.randrange(1, 100000) / 100} WHERE id = {i}"
        if roll < 0.80:
            return f"UPDATE orders SET customer_id = {r.randrange(self.customers)} WHERE id = {i}"
        if roll < 0.85:
            new = self.next_id
            self.next_id += 1
            self.ids.discard(i)
            self.ids.add(new)
            return f"UPDATE orders SET id = {new} WHERE id = {i}"
        self.ids.discard(i)
        return f"DELETE FROM orders WHERE id = {i}"

    def run(self, transactions, per_txn=4):
        for _ in range(transactions):
            stmts = [self.statement() for _ in range(self.rng.randrange(1, per_txn + 1))]
            self.case.src("BEGIN;\n" + ";\n".join(stmts) + ";\nCOMMIT;")


REVENUE_COLS = "customer_id int PRIMARY KEY, orders bigint, revenue numeric(14,2)"


def test_group_by_view_equals_the_query_at_parallelism_2(case):
    case.src(ORDERS)
    w = Workload(case, 1207)
    w.run(30)  # read by the snapshot
    tm = case.tidemark(case.job(REVENUE_QUERY, REVENUE_COLS, parallelism=2)).start()
    w.run(150)
    case.wait_equal(REVENUE_QUERY, tm)
    assert tm.terminate() == 0, tm.log_tail()
    assert case.prepared() == []
    # The target was created with the declared types (numeric precision kept).
    types = case.tgt("SELECT string_agg(format_type(atttypid, atttypmod), ',' ORDER BY attnum) "
                     "FROM pg_attribute WHERE attrelid = 'public.view_out'::regclass "
                     "AND attnum > 0")
    assert types == "integer,bigint,numeric(14,2)"
    assert "two-phase commit" in tm.log_text()


def test_join_view_equals_the_query(case):
    case.src(ORDERS + CUSTOMERS +
             "INSERT INTO customers SELECT g, 'r' || (g % 3) FROM generate_series(0, 7) g;")
    sources = {"orders": "id int PRIMARY KEY, customer_id int, amount numeric(12,2), note text",
               "customers": "id int PRIMARY KEY, region text"}
    job = case.job(REGION_QUERY.replace("FROM orders o JOIN customers c",
                                        "FROM orders AS o JOIN customers AS c"),
                   "region text PRIMARY KEY, orders bigint, revenue numeric(14,2)",
                   sources=sources)
    w = Workload(case, 77)
    w.run(20)
    tm = case.tidemark(job).start()
    w.run(80)
    case.src("UPDATE customers SET region = 'r9' WHERE id = 1;")
    w.run(20)
    case.wait_equal(REGION_QUERY, tm)
    assert tm.terminate() == 0, tm.log_tail()
    assert case.prepared() == []


ORDER_REGION_QUERY = ("SELECT o.id, o.amount, c.region FROM orders AS o "
                      "JOIN customers AS c ON o.customer_id = c.id")


def test_join_view_keyed_by_another_column_than_its_partitioning(case):
    """The join runs hash(customer_id) at parallelism 2 while the sink's key is the order id:
    an order moving to another customer is retracted by one join subtask and added by the
    other, and the two reach the sink in either order.  The fold cancels each retraction
    against the image it retracts, so the target still ends equal to the query."""
    case.src(ORDERS + CUSTOMERS +
             "INSERT INTO customers SELECT g, 'r' || g FROM generate_series(0, 7) g;")
    sources = {"orders": "id int PRIMARY KEY, customer_id int, amount numeric(12,2), note text",
               "customers": "id int PRIMARY KEY, region text"}
    job = case.job(ORDER_REGION_QUERY, "id int PRIMARY KEY, amount numeric(12,2), region text",
                   sources=sources, parallelism=2, interval="1s")
    w = Workload(case, 2026)
    w.run(40)
    tm = case.tidemark(job).start()
    rng = random.Random(8)
    for _ in range(30):
        # Each transaction moves several orders between customers (join partitions).
        ids = sorted(w.ids)
        moves = [f"UPDATE orders SET customer_id = {rng.randrange(8)} WHERE id = {i}"
                 for i in rng.sample(ids, min(5, len(ids)))]
        case.src("BEGIN;\n" + ";\n".join(moves) + ";\nCOMMIT;")
        w.run(2)
    case.wait_equal(ORDER_REGION_QUERY, tm)
    assert tm.terminate() == 0, tm.log_tail()


def test_keyless_sink_with_a_retracting_query_is_a_planning_error(case):
    case.src(ORDERS)
    job = case.job("SELECT id, amount FROM orders", "id int, amount numeric(12,2)")
    (case.dir / "job.sql").write_text(job)
    out = run_cli(["explain", case.dir / "job.sql"], bin=case.bin)
    assert out.returncode != 0
    assert "no PRIMARY KEY" in out.stderr and "view_out" in out.stderr, out.stderr


def crash_at(case, tm, w, failpoint, transactions=40):
    """Runs the workload under a failpoint that SIGKILLs tidemark; restarts it afterwards."""
    tm.start_with(failpoints=f"{failpoint}=kill@2")
    for _ in range(20):
        w.run(transactions // 4 or 1)
        if tm.poll() is not None:
            break
        time.sleep(0.1)
    code = tm.wait_exit(60)
    assert code == -9, f"tidemark did not die at {failpoint} (exit {code})\n{tm.log_tail()}"
    assert f"msg=\"failpoint fired\" name={failpoint}" in tm.log_text()


# Two-phase commit: killed with epoch N prepared but its checkpoint not yet
# complete (rolled back at recovery), complete but not committed (committed at
# recovery), in the middle of writing an epoch, and right after a commit.
TWO_PC_KILLS = ["pgsink.before_prepare", "sink.after_precommit", "checkpoint.after_metadata",
                "pgsink.before_commit_prepared", "sink.after_commit"]


def test_kill9_leaves_the_view_exact_and_nothing_prepared(case):
    case.src(ORDERS)
    tm = case.tidemark(case.job(REVENUE_QUERY, REVENUE_COLS, interval="200ms"))
    w = Workload(case, 99)
    w.run(20)
    for fp in TWO_PC_KILLS:
        crash_at(case, tm, w, fp)
    tm.start()
    w.run(30)
    case.wait_equal(REVENUE_QUERY, tm)
    assert tm.terminate() == 0, tm.log_tail()
    assert case.prepared() == [], "prepared transactions left behind"
    log = tm.log_text()
    # Both recovery paths ran: a prepared epoch committed, and one rolled back.
    assert "recovered prepared transactions" in log, log[-4000:]
    assert "committed=1" in log and "rolled_back=1" in log, log[-4000:]


PROJECTION_QUERY = "SELECT id, customer_id, amount * 2 AS amount2, note FROM orders"
PROJECTION_COLS = "id int PRIMARY KEY, customer_id int, amount2 numeric(14,2), note text"


@pytest.mark.parametrize("identity", ["default", "full"])
def test_projection_of_a_keyed_source_is_applied_in_order_through_kill9(case, identity):
    """A projection of a keyed source into a sink with the same key: no upsert operator; the
    sink applies the source's changes in order by key (REPLICA IDENTITY DEFAULT sends updates
    without a before image), key-changing updates included, exact through kill -9s."""
    case.src(ORDERS)
    case.src(f"ALTER TABLE orders REPLICA IDENTITY {identity.upper()}")
    job = case.job(PROJECTION_QUERY, PROJECTION_COLS, interval="200ms")
    path = case.dir / "projection.sql"
    path.write_text(job)
    out = run_cli(["explain", path], bin=case.bin)
    assert out.returncode == 0, out.stderr
    assert "no upsert operator" in out.stdout, out.stdout
    assert "upsert/orders" not in out.stdout, out.stdout
    tm = case.tidemark(job)
    w = Workload(case, 7)
    w.run(20)
    for fp in TWO_PC_KILLS[:3]:
        crash_at(case, tm, w, fp)
    tm.start()
    # Many changes of the same keys inside one epoch: the newest image must win.
    for _ in range(5):
        ids = sorted(w.ids)[:5]
        case.src("BEGIN;\n" + "".join(f"UPDATE orders SET amount = amount + 1 WHERE id = {i};\n"
                                        for i in ids) + "COMMIT;")
    w.run(30)
    case.wait_equal(PROJECTION_QUERY, tm)
    assert tm.terminate() == 0, tm.log_tail()
    assert case.prepared() == [], "prepared transactions left behind"
    assert "more than one live row" not in tm.log_text()


def test_a_filtered_projection_keeps_the_upsert_operator(case):
    """A WHERE over a keyed source needs the old row to retract a row that stops matching, so
    the upsert operator stays in front of the sink, and the view stays exact."""
    case.src(ORDERS)
    query = "SELECT id, customer_id, amount * 2 AS amount2, note FROM orders WHERE amount > 300"
    job = case.job(query, PROJECTION_COLS, interval="200ms")
    path = case.dir / "filtered.sql"
    path.write_text(job)
    out = run_cli(["explain", path], bin=case.bin)
    assert out.returncode == 0, out.stderr
    assert "upsert/orders" in out.stdout and "no upsert operator" not in out.stdout, out.stdout
    tm = case.tidemark(job).start()
    w = Workload(case, 8)
    w.run(40)
    case.wait_equal(query, tm)
    assert tm.terminate() == 0, tm.log_tail()


def test_create_table_false_and_a_mismatched_target_fail_clearly(case):
    case.src(ORDERS)
    tm = case.tidemark(case.job(REVENUE_QUERY, REVENUE_COLS, {"create_table": False}), "a").start()
    assert tm.wait_exit(60) != 0
    assert "does not exist" in tm.log_text() and "create_table = true" in tm.log_text()

    case.tgt("CREATE TABLE public.view_out (customer_id int PRIMARY KEY, orders bigint, "
             "revenue date)")
    tm = case.tidemark(case.job(REVENUE_QUERY, REVENUE_COLS, {"create_table": False}), "b").start()
    assert tm.wait_exit(60) != 0
    text = tm.log_text()
    assert '"revenue"' in text and "date" in text and "numeric" in text, text[-3000:]


def test_at_least_once_without_checkpoints(case):
    case.src(ORDERS)
    job = case.job(REVENUE_QUERY, REVENUE_COLS, {"delivery": "at-least-once"})
    job = job.replace("SET checkpoint_interval = '300ms';\n", "")
    tm = case.tidemark(job).start()
    w = Workload(case, 3)
    w.run(60)
    case.wait_equal(REVENUE_QUERY, tm)
    assert tm.terminate() == 0, tm.log_tail()


@pytest.fixture
def nopre_pg():
    with PgServer(extra_conf={"max_prepared_transactions": 0}) as server:
        yield server


@pytest.fixture
def dl_case(pg, db, tmp_path, tidemark_bin, nopre_pg, request):
    yield from sink_case_on(nopre_pg, pg, db, tmp_path, tidemark_bin, request)


DL_KILLS = ["sink.after_precommit", "checkpoint.after_metadata", "pgsink.before_dl_commit",
            "sink.after_commit"]


def test_decision_log_mode_through_kill9(dl_case):
    case = dl_case
    case.src(ORDERS)
    tm = case.tidemark(case.job(REVENUE_QUERY, REVENUE_COLS, interval="200ms"))
    w = Workload(case, 4242)
    w.run(20)
    for fp in DL_KILLS:
        crash_at(case, tm, w, fp)
    tm.start()
    w.run(30)
    case.wait_equal(REVENUE_QUERY, tm)
    assert tm.terminate() == 0, tm.log_tail()
    log = tm.log_text()
    assert "max_prepared_transactions = 0" in log
    # A checkpoint whose _metadata was written but whose progress row was not
    # committed is not the one recovery restores.
    assert "recovering from the one it committed" in log, log[-4000:]
    row = case.tgt("SELECT job, sink, checkpoint > 0 FROM tidemark_progress")
    assert row == "job|view_out|t", row


@pytest.fixture
def other_pg():
    with PgServer() as server:
        yield server


@pytest.fixture
def remote_case(pg, db, tmp_path, tidemark_bin, other_pg, request):
    yield from sink_case_on(other_pg, pg, db, tmp_path, tidemark_bin, request)


def test_target_server_restarted_and_stopped_mid_stream(remote_case):
    case = remote_case
    case.src(ORDERS)
    tm = case.tidemark(case.job(REVENUE_QUERY, REVENUE_COLS, {"retry_timeout": "60s"})).start()
    w = Workload(case, 31)
    w.run(40)
    case.wait_equal(REVENUE_QUERY, tm)
    case.target_pg.restart()
    w.run(40)
    case.wait_equal(REVENUE_QUERY, tm)
    # Stopped for a few seconds: the sink blocks and retries, nothing is lost.
    case.target_pg._pg_ctl_stop()
    w.run(40)
    time.sleep(3)
    tm.assert_running("while the target is down")
    case.target_pg._pg_ctl_start()
    w.run(20)
    case.wait_equal(REVENUE_QUERY, tm)
    assert tm.terminate() == 0, tm.log_tail()
    assert case.prepared() == []
    assert "retrying" in tm.log_text()


def test_select_star_copy_with_add_columns(case):
    """`SELECT *` from an undeclared source into an undeclared sink: the target is created from the
    first record's columns, keyed by the source's primary key (REPLICA IDENTITY DEFAULT, so
    deletes carry only the key), and a column added at the source is added to the target."""
    case.src(ORDERS)
    w = Workload(case, 555)
    w.run(10)
    job = "\n".join([
        create_table("shop", {"connector": "postgres-cdc", "dsn": case.pg.dsn(case.db),
                              "tables": "public.orders", "slot": f"{case.db}_s",
                              "publication": f"{case.db}_p", "snapshot": "initial"}),
        create_table("view_out", {"connector": "postgres", "dsn": case.target_pg.dsn(case.tdb),
                                  "create_table": True, "delivery": "exactly-once",
                                  "schema_evolution": "add_columns"}),
        "INSERT INTO view_out SELECT * FROM shop;",
        "SET checkpoint_interval = '300ms';", ""])
    tm = case.tidemark(job).start()
    w.run(60)
    case.wait_equal("SELECT * FROM orders", tm)
    case.src("ALTER TABLE orders ADD COLUMN extra int; UPDATE orders SET extra = id * 2 "
             "WHERE id % 3 = 0;")
    w.run(30)
    case.wait_equal("SELECT id, customer_id, amount, note, extra FROM orders", tm)
    assert tm.terminate() == 0, tm.log_tail()
    assert "adding a column to the target" in tm.log_text()
    assert case.prepared() == []


def test_explain_names_the_delivery(case):
    case.src(ORDERS)
    for delivery, words in (("exactly-once", "PREPARE TRANSACTION"),
                            ("at-least-once", "at-least-once (committed at every checkpoint")):
        path = case.dir / f"{delivery}.sql"
        path.write_text(case.job(REVENUE_QUERY, REVENUE_COLS, {"delivery": delivery}))
        out = run_cli(["explain", path], bin=case.bin)
        assert out.returncode == 0, out.stderr
        assert words in out.stdout, out.stdout


def test_target_down_at_start_is_waited_for(remote_case):
    case = remote_case
    case.src(ORDERS)
    case.target_pg._pg_ctl_stop()
    tm = case.tidemark(case.job(REVENUE_QUERY, REVENUE_COLS, {"retry_timeout": "60s"})).start()
    time.sleep(3)
    tm.assert_running("while the target is down at start")
    assert "target unreachable, retrying" in tm.log_text(), tm.log_tail()
    case.target_pg._pg_ctl_start()
    w = Workload(case, 11)
    w.run(30)
    case.wait_equal(REVENUE_QUERY, tm)
    assert tm.terminate() == 0, tm.log_tail()


def test_a_rejected_row_fails_the_job_with_the_row_and_the_message(case):
    case.src(ORDERS + "INSERT INTO orders VALUES (1, 1, 10, 'a'), (2, 2, 5000, 'b');")
    case.tgt("CREATE TABLE public.view_out (customer_id int PRIMARY KEY, orders bigint, "
             "revenue numeric(14,2) CHECK (revenue < 1000))")
    tm = case.tidemark(case.job(REVENUE_QUERY, REVENUE_COLS, {"create_table": False})).start()
    assert tm.wait_exit(90) != 0
    text = tm.log_text()
    assert "violates check constraint" in text, text[-3000:]
    assert "5000.00" in text, text[-3000:]  # the failing row, from the server's context
    assert "SET on_error = 'skip' or 'dead-letter'" in text, text[-3000:]
    # Nothing of the failed epoch is visible, and nothing stays prepared.
    assert case.target() == []
    assert case.prepared() == []


@pytest.mark.parametrize("policy", ["skip", "dead-letter"])
def test_rows_the_target_rejects_follow_on_error(case, policy):
    """on_error = 'skip' / 'dead-letter': the rows a CHECK constraint rejects are set aside (into
    the dead-letter file with the server's message), the rest of every epoch is written, through
    a kill -9, and the job keeps running."""
    case.src(ORDERS + "INSERT INTO orders SELECT g, g % 5, g * 10, 'n' || g "
             "FROM generate_series(1, 300) g;")
    case.tgt("CREATE TABLE public.view_out (id int PRIMARY KEY, customer_id int, "
             "amount2 numeric(14,2) CHECK (amount2 < 5000), note text)")
    job = case.job(PROJECTION_QUERY, PROJECTION_COLS, {"create_table": False}, interval="300ms")
    tm = case.tidemark(job + f"SET on_error = '{policy}';\n").start()
    good = "SELECT id, customer_id, amount * 2 AS amount2, note FROM orders WHERE amount * 2 < 5000"
    case.wait_equal(good, tm)
    # Updates that make rows rejectable, and rejected rows made acceptable again.
    case.src("UPDATE orders SET amount = 9000 WHERE id IN (3, 4)")
    case.src("UPDATE orders SET amount = 1 WHERE id IN (290, 291)")
    tm.kill9()
    tm.start()
    case.src("INSERT INTO orders VALUES (1000, 1, 4000, 'big'), (1001, 1, 10, 'small')")
    # Rows the target refused stay as they were: 3 and 4 keep their old values.
    expect = sorted(case.truth(good) + [(3, 3, 60, "n3"), (4, 4, 80, "n4")], key=repr)
    wait_until(lambda: case.target() == expect, 90, "the target to hold every acceptable row",
               tm.proc)
    assert tm.running()
    text = tm.log_text()
    assert "the target rejected a row" in text and "violates check constraint" in text, text[-3000:]
    assert case.prepared() == []
    dl = tm.state_dir / "dead-letter" / "sink_view_out-0.jsonl"
    if policy == "skip":
        assert not dl.exists()
        return
    import json
    lines = [json.loads(x) for x in dl.read_text().splitlines() if x.strip()]
    ids = {int(x["after"]["id"]) for x in lines}
    # 251..300 at start (amount2 >= 5000), 3 and 4 updated, 1000 inserted; replays may repeat some.
    assert ids >= set(range(251, 301)) | {3, 4, 1000}, sorted(ids)
    assert ids <= set(range(250, 301)) | {3, 4, 1000}, sorted(ids)
    first = next(x for x in lines if x["after"]["id"] == "1000")
    assert first["op"] == "u" and first["operator"] == "sink/view_out", first
    assert "violates check constraint" in first["reason"], first
    assert first["after"]["note"] == "big" and first["after"]["amount2"] == "8000.00", first


def verify(case, tm, *extra):
    return run_cli(["verify", tm.job_path, "--sink", "view_out", "--state-dir", tm.state_dir,
                    "--timeout", "90s", *extra], bin=case.bin, timeout=120)


def test_verify_compares_the_view_with_its_query_while_the_job_runs(case):
    """tidemark verify: the target at a checkpoint placed at a source LSN against the query on
    a snapshot exported at that LSN, while the workload keeps writing; a tampered target row is
    reported with its key, and exit 1."""
    import threading
    case.src(ORDERS)
    case.src(CUSTOMERS + "INSERT INTO customers SELECT g, 'r' || (g % 3) FROM generate_series(0, 7) g;")
    sources = {"orders": "id int PRIMARY KEY, customer_id int, amount numeric(12,2), note text",
               "customers": "id int PRIMARY KEY, region text"}
    # A view, a join and an aggregate: verify runs the whole query on the source.
    job = case.job(REGION_QUERY.replace("FROM orders o", "FROM big o"), "region text PRIMARY KEY, "
                   "orders bigint, revenue numeric(14,2)", sources=sources, interval="300ms")
    job = job.replace("INSERT INTO view_out",
                      "CREATE VIEW big AS SELECT * FROM orders WHERE amount > 100;\n"
                      "INSERT INTO view_out", 1)
    tm = case.tidemark(job).start()
    w = Workload(case, 11)
    w.run(30)
    query = REGION_QUERY.replace("FROM orders o", "FROM (SELECT * FROM orders WHERE amount > 100) o")
    case.wait_equal(query, tm)
    stop = threading.Event()

    def writer():
        while not stop.is_set():
            w.run(2)
            time.sleep(0.02)

    t = threading.Thread(target=writer)
    t.start()
    try:
        out = verify(case, tm)
    finally:
        stop.set()
        t.join()
    assert out.returncode == 0, out.stdout + out.stderr + tm.log_tail()
    assert "EQUAL" in out.stdout and "at checkpoint" in out.stdout, out.stdout
    assert "checkpoint at a position requested" in tm.log_text()
    case.wait_equal(query, tm)
    # A row changed behind the job's back is found, by its key.
    region = case.target()[0][0]
    case.tgt(f"UPDATE public.view_out SET revenue = revenue + 1 WHERE region = '{region}'")
    out = verify(case, tm)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "DIFFERENT" in out.stdout and "1 different" in out.stdout, out.stdout
    assert f"({region}, " in out.stdout, out.stdout
    assert tm.running()
    assert tm.terminate() == 0, tm.log_tail()


def test_verify_refuses_what_it_cannot_compare(case):
    """An at-least-once sink has no point to compare at; an unknown sink is named."""
    case.src(ORDERS)
    tm = case.tidemark(case.job(REVENUE_QUERY, REVENUE_COLS, {"delivery": "at-least-once"}))
    out = verify(case, tm)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "delivery = 'exactly-once'" in out.stderr, out.stderr
    out = run_cli(["verify", tm.job_path, "--sink", "nope", "--state-dir", tm.state_dir],
                  bin=case.bin)
    assert out.returncode == 2 and "no sink named 'nope'" in out.stderr, out.stderr


def dbz(op, before=None, after=None):
    import json
    return json.dumps({"before": before, "after": after, "op": op, "ts_ms": 1700000000000,
                       "source": {"version": "2.7.0.Final", "connector": "postgresql",
                                  "name": "shop", "db": "shop", "schema": "public",
                                  "table": "orders"}})


def test_debezium_topic_into_a_warehouse_table(case, kafka):
    """Kafka-to-warehouse ETL: Debezium change events on a topic, applied by key."""
    import uuid
    topic = f"tmpgsink-{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, partitions=2)
    rng = random.Random(12)
    rows, events = {}, []
    for n in range(400):
        i = rng.randrange(60)
        old = rows.get(i)
        if old is not None and rng.random() < 0.2:
            events.append((str(i), dbz("d", before=old)))
            del rows[i]
            continue
        new = {"id": i, "amount": f"{rng.randrange(1, 10**6) / 100:.2f}", "status": f"s{n}"}
        events.append((str(i), dbz("u" if old else "c", before=old, after=new)))
        rows[i] = new
    for key, value in events:
        kafka.produce(topic, key, value, partition=int(key) % 2)
    job = "\n".join([
        create_table("src", {"connector": "kafka", "bootstrap_servers": kafka.bootstrap,
                             "topic": topic, "group_id": f"g-{topic}"},
                     "id int PRIMARY KEY, amount numeric(10,2), status text"),
        create_table("view_out", {"connector": "postgres", "dsn": case.target_pg.dsn(case.tdb),
                                  "create_table": True, "delivery": "exactly-once"},
                     "id int PRIMARY KEY, amount numeric(10,2), status text"),
        "INSERT INTO view_out SELECT id, amount, status FROM src;",
        "SET checkpoint_interval = '300ms';", ""])
    tm = case.tidemark(job).start()
    want = sorted((r["id"], Decimal(r["amount"]), r["status"]) for r in rows.values())
    wait_until(lambda: sorted(case.target() or []) == want, 120, "the warehouse table", tm.proc)
    assert tm.terminate() == 0, tm.log_tail()
    assert case.prepared() == []


TYPES_TABLE = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE public.orders (
    id int PRIMARY KEY, i2 smallint, i8 bigint, f4 real, f8 double precision,
    n numeric(10,3), nv numeric, t text, vc varchar(20), b bytea, j jsonb, js json, u uuid,
    d date, tm time, ttz timetz, ts timestamp, tstz timestamptz, iv interval, ok boolean,
    m mood);
ALTER TABLE public.orders REPLICA IDENTITY FULL;
"""

TYPES_ROWS = [
    "(1, 1, 9000000000, 1.5, 2.25, 12.345, 1e20, 'tab\tnew\nline back\\slash', 'v', "
    "'\\x00ff'::bytea, '{\"a\": [1, 2]}', '{\"b\":1}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', "
    "'2024-02-29', '12:34:56.789', '12:00:00+02', '2024-01-01 00:00:00.5', "
    "'2024-06-01 12:00:00+00', '1 mon 2 days 03:04:05', true, 'happy')",
    "(2, -32768, -1, 'NaN', '-Infinity', -0.001, 'NaN', '', NULL, '', '[]', 'null', NULL, "
    "'infinity', '00:00', '23:59:59-08', '-infinity', 'infinity', '-1 year -3 days', false, 'sad')",
    "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
    "NULL, NULL, NULL, NULL, NULL, NULL)",
]


def test_every_type_round_trips_through_a_created_table(case):
    """SELECT * into a created table: every value reads back as it was (COPY text, escapes,
    ±infinity, NaN, interval months, NULLs); the created columns keep numeric precision."""
    case.src(TYPES_TABLE + "INSERT INTO orders VALUES " + ", ".join(TYPES_ROWS[:2]) + ";")
    job = "\n".join([
        create_table("shop", {"connector": "postgres-cdc", "dsn": case.pg.dsn(case.db),
                              "tables": "public.orders", "slot": f"{case.db}_s",
                              "publication": f"{case.db}_p", "snapshot": "initial"}),
        create_table("view_out", {"connector": "postgres", "dsn": case.target_pg.dsn(case.tdb),
                                  "create_table": True, "delivery": "exactly-once"}),
        "INSERT INTO view_out SELECT * FROM shop;",
        "SET checkpoint_interval = '300ms';", ""])
    tm = case.tidemark(job).start()
    case.src("INSERT INTO orders VALUES " + TYPES_ROWS[2] + ";"
             "UPDATE orders SET t = t || '!', iv = iv + interval '1 mon' WHERE id = 1;")
    # tidemark's model keeps a timetz as UTC and json as parsed JSON (schema.h, pg_types.h):
    # compare those as instants and as jsonb (and NaN as text: Python's NaN is not equal to itself).
    cols = ("id, i2, i8, f4::text, f8::text, n, nv::text, t, vc, encode(b, 'hex'), j, js::jsonb, u, d, tm, "
            "timezone('UTC', ttz), ts, tstz, iv, ok, m::text")
    deadline = time.monotonic() + 60
    while True:
        got, want = case.target(cols), case.truth(f"SELECT {cols} FROM orders")
        if got == want or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert got == want, "\n".join(f"target {g}\nsource {w}" for g, w in zip(got or [], want))
    assert tm.terminate() == 0, tm.log_tail()
    types = case.tgt("SELECT string_agg(format_type(atttypid, atttypmod), ',' ORDER BY attnum) "
                     "FROM pg_attribute WHERE attrelid = 'public.view_out'::regclass "
                     "AND attnum > 0")
    assert types.startswith("integer,smallint,bigint,real,double precision,numeric(10,3),"
                            "numeric,text,character varying(20),bytea,jsonb,json,uuid,date"), types


GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guides" / "materialised-view.md"


def guide_blocks(lang):
    """The guide's fenced code blocks of one language, in order."""
    import re
    return re.findall(rf"```{lang}\n(.*?)```", GUIDE.read_text(), re.S)


def test_the_materialised_view_guide_runs_as_written(tmp_path, tidemark_bin, monkeypatch):
    """docs/guides/materialised-view.md, step by step: its SQL runs as written on a shop and a
    warehouse database (one throwaway server; only host and port in the DSNs are changed),
    with its least-privilege roles, and the view ends equal to the query."""
    sql = guide_blocks("sql")
    shop_setup, warehouse_setup, job, view, query = sql[0], sql[1], sql[2], sql[3], sql[4]
    assert "CREATE PUBLICATION" in shop_setup and "CREATE SCHEMA analytics" in warehouse_setup
    assert "INSERT INTO customer_revenue" in job
    with PgServer() as server:
        server.psql("CREATE DATABASE shop; CREATE DATABASE warehouse;")
        server.psql(shop_setup, db="shop")
        server.psql(warehouse_setup, db="warehouse")
        server.psql("INSERT INTO orders SELECT g, g % 5, g * 1.25 FROM generate_series(1, 50) g;",
                    db="shop")
        where = f"host={server.host} port={server.port}"
        job = job.replace("host=shop-db", where).replace("host=warehouse", where)
        monkeypatch.setenv("SHOP_PASSWORD", "change-me")
        monkeypatch.setenv("DW_PASSWORD", "change-me")
        from tidemark import Tidemark
        tm = Tidemark(job, tmp_path / "tm", bin=tidemark_bin)
        explained = run_cli(["explain", tm.job_path], bin=tidemark_bin)
        assert explained.returncode == 0, explained.stderr
        assert "PREPARE TRANSACTION" in explained.stdout
        tm.start()
        try:
            server.psql("UPDATE orders SET amount = amount * 2 WHERE id % 3 = 0; "
                        "DELETE FROM orders WHERE customer_id = 4; "
                        "INSERT INTO orders VALUES (100, 7, 99.99);", db="shop")

            def equal():
                try:
                    got = server.psql(view, db="warehouse", user="etl")
                except Exception:
                    return False
                return got == server.psql(query, db="shop") and got
            wait_until(equal, 120, "the view to equal the query", tm.proc)
            assert "|" in server.psql(view, db="warehouse", user="etl")
            # Step 4's verify, with the guide's job file, sink and state directory swapped in.
            cmd = next(b for b in guide_blocks("sh") if "tidemark verify" in b).split()
            assert cmd[:5] == ["tidemark", "verify", "revenue.sql", "--sink", "customer_revenue"]
            out = run_cli(["verify", tm.job_path, *cmd[3:5], "--state-dir", tm.state_dir],
                          bin=tidemark_bin, timeout=150)
            assert out.returncode == 0, out.stdout + out.stderr + tm.log_tail()
            assert "0 missing, 0 extra, 0 different: EQUAL" in out.stdout, out.stdout
            assert tm.terminate() == 0, tm.log_tail()
        finally:
            tm.kill9()
        assert "exactly-once with two-phase commit" in tm.log_text()


def kill_rounds(case, tm, w, failpoints, kills, seed):
    """`kills` crashes, alternating a failpoint of the protocol and a kill -9 at a random moment,
    with the workload running throughout; returns the number of kills."""
    rng = random.Random(seed)
    done = 0
    for i in range(kills):
        if i % 2 == 0:
            fp = failpoints[(i // 2) % len(failpoints)]
            tm.start_with(failpoints=f"{fp}=kill@{1 + rng.randrange(3)}")
            for _ in range(40):
                w.run(3)
                if tm.poll() is not None:
                    break
                time.sleep(0.05)
            if tm.poll() is None:
                tm.kill9()  # the failpoint was not reached in time: a timed kill instead
        else:
            tm.start()
            w.run(rng.randrange(5, 30))
            time.sleep(rng.uniform(0.1, 1.2))
            tm.kill9()
        done += 1
    return done


@pytest.mark.deadline(900)
def test_twenty_kills_two_phase_commit(case):
    case.src(ORDERS)
    tm = case.tidemark(case.job(REVENUE_QUERY, REVENUE_COLS, interval="200ms", parallelism=2))
    w = Workload(case, 2020)
    w.run(20)
    assert kill_rounds(case, tm, w, TWO_PC_KILLS, 20, 7) == 20
    tm.start()
    w.run(20)
    case.wait_equal(REVENUE_QUERY, tm)
    assert tm.terminate() == 0, tm.log_tail()
    assert case.prepared() == [], "prepared transactions left behind"
    log = tm.log_text()
    assert "committed=1" in log and "rolled_back=1" in log, "recovery never had work to do"


@pytest.mark.deadline(900)
def test_twenty_kills_decision_log(dl_case):
    case = dl_case
    case.src(ORDERS)
    tm = case.tidemark(case.job(REVENUE_QUERY, REVENUE_COLS, interval="200ms", parallelism=2))
    w = Workload(case, 2021)
    w.run(20)
    assert kill_rounds(case, tm, w, DL_KILLS, 20, 8) == 20
    tm.start()
    w.run(20)
    case.wait_equal(REVENUE_QUERY, tm)
    assert tm.terminate() == 0, tm.log_tail()
    assert "recovering from the one it committed" in tm.log_text()


def test_a_target_name_in_unicode_with_a_staging_table_cut_on_a_character(case):
    """The staging table's name holds 30 bytes of the target's: cut on a UTF-8 boundary."""
    case.src(ORDERS)
    name = "x" + "ö" * 20
    job = case.job(REVENUE_QUERY, REVENUE_COLS, {"table": f"public.{name}"})
    tm = case.tidemark(job).start()
    Workload(case, 5).run(30)
    want = case.truth(REVENUE_QUERY)
    def equal():
        try:
            return case.rows(case.target_pg, case.tdb, f'SELECT * FROM "{name}"') == want
        except Exception:  # not created yet
            return False
    wait_until(equal, 60, "the unicode-named target", tm.proc)
    assert tm.terminate() == 0, tm.log_tail()
    stage = case.tgt("SELECT relname FROM pg_class WHERE relname LIKE 'tidemark_stage_%'")
    assert stage.startswith("tidemark_stage_x" + "ö" * 14 + "_"), stage
