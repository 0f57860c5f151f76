"""The lookup join against a real PostgreSQL (issue 11): a CDC stream of events
enriched from dimension tables in another database through
`connector = 'postgres'` with `lookup = true`.

- INNER and LEFT joins, a composite key, a condition on the dimension and a
  residual: the folded output equals PostgreSQL's answer of the same query
  while the dimensions do not change;
- the dimensions change under the running job (a label updated, a row
  deleted, a missing row inserted): later events see the new values at once
  with the cache off and after lookup_ttl with it on, earlier output is not
  retracted, and a retraction is looked up again (it carries the new values);
- batching: one lookup query per input batch (the lookup_queries metric);
- the lookup server stopped mid-run: retries, then a job error naming the
  table; restarted with the server back, the job resumes from its checkpoint
  and the output is complete and exactly once;
- declarations and queries the planner refuses, with their position.
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from pgserver import PgServer, lsn_to_int
from sql_harness import fold, output_lines
from tidemark import EXIT_CONFIG, EXIT_SOURCE, Tidemark, create_table, run_cli, wait_until

EVENTS_DDL = "CREATE TABLE events (id int PRIMARY KEY, dim_id int, region text, code int, amount int)"
DIMS_DDL = ("CREATE TABLE dims (id int PRIMARY KEY, label text, active boolean);\n"
            "CREATE TABLE dims2 (region text, code int, label text, min_amount int, "
            "PRIMARY KEY (region, code));")
DIMS_ROWS = ("INSERT INTO dims VALUES (1, 'one', true), (2, 'two', false), (3, 'th\"r\\ee''s', true),"
             " (5, NULL, true);\n"
             "INSERT INTO dims2 VALUES ('eu', 1, 'eu-1', 0), ('eu', 2, 'eu-2', 50), "
             "('us', 1, 'us-1', 10), ('x\"y\\z''s', 3, 'weird', 0);")

Q_LEFT = "SELECT e.id, e.dim_id, d.label FROM events e LEFT JOIN dims d ON e.dim_id = d.id"
Q_INNER = ("SELECT e.id, d.label FROM events e JOIN dims d ON e.dim_id = d.id AND d.active")
Q_COMP = ("SELECT e.id, d.label, d.min_amount FROM events e LEFT JOIN dims2 d "
          "ON e.region = d.region AND e.code = d.code AND e.amount > d.min_amount")


WEIRD = 'x"y\\z\'s'  # a text key with a quote, a backslash and an apostrophe


def _lit(v):
    return "NULL" if v is None else "'" + v.replace("'", "''") + "'"


def _events(first: int, n: int) -> str:
    regions = ["eu", "us", None, WEIRD]
    vals = []
    for i in range(first, first + n):
        dim = "NULL" if i % 11 == 0 else str(i % 6 + 1)  # 1..6, 4 and 6 missing at first
        vals.append(f"({i}, {dim}, {_lit(regions[i % 4])}, {i % 3 + 1}, {(i * 7) % 100})")
    return "INSERT INTO events VALUES " + ", ".join(vals) + ";"


class Env:
    def __init__(self, pg, db, dim_pg, dim_db, bin, tmp: Path):
        self.pg, self.db, self.dim_pg, self.dim_db, self.bin, self.tmp = (
            pg, db, dim_pg, dim_db, bin, tmp)

    def sql(self, text):
        return self.pg.psql(text, db=self.db)

    def dims(self, text):
        """Changes the dimensions in their own database, and the oracle's copy alike."""
        self.dim_pg.psql(text, db=self.dim_db)
        self.pg.psql(text, db=self.db)

    def job(self, *, left_cache="lookup_cache_rows = 0", retries=3, extra=""):
        dim_dsn = self.dim_pg.dsn(self.dim_db)
        src = {"connector": "postgres-cdc", "dsn": self.pg.dsn(self.db), "table": "public.events",
               "slot": f"{self.db}_ev", "publication": f"{self.db}_ev",
               "heartbeat_interval": "200ms"}
        parts = [
            create_table("events", src, "id int PRIMARY KEY, dim_id int, region text, code int, "
                                         "amount int"),
            f"CREATE TABLE dims (id int PRIMARY KEY, label text, active boolean) WITH ("
            f"connector = 'postgres', dsn = '{dim_dsn}', table = 'public.dims', lookup = true, "
            f"{left_cache}, lookup_max_retries = {retries});",
            f"CREATE TABLE dims_c (id int PRIMARY KEY, label text, active boolean) WITH ("
            f"connector = 'postgres', dsn = '{dim_dsn}', table = 'dims', lookup = true, "
            f"lookup_ttl = '1s', lookup_max_retries = {retries});",
            f"CREATE TABLE dims2 (region text, code int, label text, min_amount int, "
            f"PRIMARY KEY (region, code)) WITH (connector = 'postgres', dsn = '{dim_dsn}', "
            f"table = 'public.dims2', lookup = true, lookup_ttl = '1s', "
            f"lookup_max_retries = {retries});",
        ]
        for sink in ("out_left", "out_inner", "out_comp"):
            parts.append(create_table(sink, {"connector": "file", "path": str(self.tmp / sink)}))
        parts += [
            f"INSERT INTO out_left {Q_LEFT};",
            f"INSERT INTO out_inner {Q_INNER.replace('JOIN dims d', 'JOIN dims_c d')};",
            f"INSERT INTO out_comp {Q_COMP};",
            "SET checkpoint_interval = '200ms';",
            "SET admin_address = '127.0.0.1:0';",
            extra,
        ]
        return "\n".join(parts) + "\n"

    def wait_slot(self, tm):
        def ready():
            out = self.sql("SELECT confirmed_flush_lsn FROM pg_replication_slots "
                           f"WHERE slot_name = '{self.db}_ev' AND confirmed_flush_lsn IS NOT NULL")
            return out.strip() != ""
        wait_until(ready, 60, "the events slot", tm)

    def wait_caught_up(self, tm, timeout=90):
        end = lsn_to_int(self.sql("SELECT pg_current_wal_lsn()"))

        def done():
            out = self.sql("SELECT confirmed_flush_lsn FROM pg_replication_slots "
                           f"WHERE slot_name = '{self.db}_ev'").strip()
            return out and lsn_to_int(out) >= end
        wait_until(done, timeout, "the job to catch up with the events", tm)

    def answer(self, query, where=""):
        conn = self.pg.connect(self.db)
        try:
            cur = conn.cursor()
            cur.execute(f"SELECT * FROM ({query}) q {where}")
            return Counter(tuple(r) for r in cur.fetchall())
        finally:
            conn.close()

    def wait_equal(self, tm, sink, q, where="", keep=None, timeout=30):
        """Until the folded output of `sink` is PostgreSQL's answer (files commit at checkpoints)."""
        want = self.answer(q, where)
        deadline = time.time() + timeout
        while True:
            got = self.folded(sink, keep)
            if got == want:
                return
            if time.time() > deadline:
                assert got == want, f"{sink} differs from PostgreSQL's {q} {where}"
            tm.assert_running(sink)
            time.sleep(0.2)

    def folded(self, sink, keep=None):
        lines = output_lines(self.tmp / sink)
        if keep is not None:
            lines = [ln for ln in lines if keep(_row_id(ln[2]))]
        f = fold(lines, None)
        assert not f.errors, f"{sink}: {f.errors[:5]}"
        return f.rows


def _row_id(rec):
    p = rec.get("payload", rec)
    img = p.get("after") or p.get("before") or {}
    return img.get("id")


def _metric(tm, name, operator):
    addr = (tm.state_dir / "admin.addr").read_text().strip()
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(rf'^{name}{{operator="{re.escape(operator)}"}} (\d+)$', text, re.M)
    assert m, f"{name} for {operator} not in /metrics:\n{text}"
    return int(m.group(1))


@pytest.fixture
def env(sql_pg, sql_db, sql_bin, tmp_path):
    dim_db = f"{sql_db}_dims"
    sql_pg.psql(f'CREATE DATABASE "{dim_db}"')
    e = Env(sql_pg, sql_db, sql_pg, dim_db, sql_bin, tmp_path)
    e.sql(EVENTS_DDL + ";\n" + DIMS_DDL + "\n" + DIMS_ROWS)  # dims here: the oracle's copy
    sql_pg.psql(DIMS_DDL + "\n" + DIMS_ROWS, db=dim_db)
    yield e
    sql_pg.drop_database(dim_db)


@pytest.mark.parametrize("parallelism", [1, 2])
def test_lookup_joins_enrich_and_follow_dimension_changes(env, parallelism):
    env.sql(_events(1, 40))  # read by the snapshot
    tm = Tidemark(env.job(extra=f"SET parallelism = {parallelism};"), env.tmp / "tm", bin=env.bin)
    explain = run_cli(["explain", tm.job_path], bin=env.bin)
    assert explain.returncode == 0, explain.stderr
    assert "lookup_join left with lookup table dims (connector postgres)" in explain.stdout
    assert "key    dims2.region = stream.region AND dims2.code = stream.code" in explain.stdout
    assert "processing-time lookup" in explain.stdout
    assert "cache  off (lookup_cache_rows = 0)" in explain.stdout
    tm.start()
    try:
        env.wait_slot(tm)
        # Streamed: one large transaction (batches of many keys), updates and deletes.
        for k in range(4):
            env.sql(_events(100 + 100 * k, 100))
        env.sql("UPDATE events SET dim_id = 3, amount = amount + 60 WHERE id % 5 = 0; "
                "DELETE FROM events WHERE id % 7 = 0; "
                "UPDATE events SET dim_id = NULL WHERE id = 101;")
        env.wait_caught_up(tm)
        # Phase 1: the dimensions did not change, so the output is PostgreSQL's answer.
        for sink, q in (("out_left", Q_LEFT), ("out_inner", Q_INNER), ("out_comp", Q_COMP)):
            env.wait_equal(tm, sink, q)
        # Batching: far fewer queries than looked-up changes.
        queries = _metric(tm, "tidemark_operator_lookup_queries_total", "lookup/out_left/1-dims")
        misses = _metric(tm, "tidemark_operator_lookup_cache_misses_total",
                         "lookup/out_left/1-dims")
        assert 1 <= queries <= 40, queries  # for 440 events, their updates and deletes
        assert queries <= misses <= 6 * queries, (queries, misses)  # distinct keys per batch
        hits = _metric(tm, "tidemark_operator_lookup_cache_hits_total", "lookup/out_inner/1-dims_c")
        assert hits > 0, hits

        # Phase 2: the dimensions change under the running job.
        env.dims("UPDATE dims SET label = 'ONE' WHERE id = 1; DELETE FROM dims WHERE id = 2; "
                 "INSERT INTO dims VALUES (4, 'four', true); "
                 "UPDATE dims2 SET label = 'EU-1' WHERE region = 'eu' AND code = 1;")
        time.sleep(1.5)  # past lookup_ttl = '1s' of dims_c and dims2
        q0 = _metric(tm, "tidemark_operator_lookup_queries_total", "lookup/out_left/1-dims")
        env.sql(_events(1000, 60))
        env.wait_caught_up(tm)
        # 60 events of one transaction: one batch, so one query per subtask.
        q1 = _metric(tm, "tidemark_operator_lookup_queries_total", "lookup/out_left/1-dims")
        assert 1 <= q1 - q0 <= 2, (q0, q1)
        # A retraction is looked up again: event 1 (dim 2) was emitted with 'two', and dims
        # row 2 is gone now.
        env.sql("DELETE FROM events WHERE id = 1")
        env.wait_caught_up(tm)
        new = lambda i: i is not None and i >= 1000  # noqa: E731
        for sink, q in (("out_left", Q_LEFT), ("out_inner", Q_INNER), ("out_comp", Q_COMP)):
            env.wait_equal(tm, sink, q, "WHERE id >= 1000", keep=new)
        # Earlier output is not retracted: events 2..999 keep the values of their lookup.
        old = env.folded("out_left", keep=lambda i: i is not None and 1 < i < 1000)
        assert any(r[2] == "one" for r in old) and not any(r[2] == "ONE" for r in old)
        assert any(r[1] == 2 and r[2] == "two" for r in old)
        # Event 1's delete carries the label of its new lookup, not the one it was emitted with.
        recs = [ln[2].get("payload", ln[2]) for ln in output_lines(env.tmp / "out_left")]
        mine = [p for p in recs if (p.get("before") or p.get("after") or {}).get("id") == 1]
        assert mine[0]["op"] in ("r", "c") and mine[0]["after"] == {"id": 1, "dim_id": 2,
                                                                    "label": "two"}, mine
        assert mine[-1]["op"] == "d" and mine[-1]["before"] == {"id": 1, "dim_id": 2,
                                                                "label": None}, mine
        rc = tm.terminate()
        assert rc == 0, tm.log_tail()
    finally:
        tm.kill9()


def test_lookup_server_lost_then_job_resumes(sql_pg, sql_db, sql_bin, tmp_path):
    """The lookup server stops: retries, a clear job error; restarted, the job resumes."""
    dim_pg = PgServer(fsync_off=True)
    dim_pg.start()
    try:
        dim_pg.psql(f'CREATE DATABASE "{sql_db}_dims"')
        env = Env(sql_pg, sql_db, dim_pg, f"{sql_db}_dims", sql_bin, tmp_path)
        env.sql(EVENTS_DDL + ";\n" + DIMS_DDL + "\n" + DIMS_ROWS)
        dim_pg.psql(DIMS_DDL + "\n" + DIMS_ROWS, db=env.dim_db)
        env.sql(_events(1, 30))
        tm = Tidemark(env.job(retries=2), tmp_path / "tm", bin=sql_bin)
        tm.start()
        try:
            env.wait_slot(tm)
            env.sql(_events(100, 50))
            env.wait_caught_up(tm)
            time.sleep(0.5)  # a checkpoint after the first part
            dim_pg._pg_ctl_stop()
            dim_pg.running = False
            env.sql(_events(200, 50))
            rc = tm.wait_exit(60)
            log = tm.log_text()
            assert rc == EXIT_SOURCE, f"exit {rc}\n{tm.log_tail()}"
            assert re.search(r"lookup table 'dims[_c2]*' \(public\.dims2?\): the lookup failed "
                             r"after 2 retries: .*", log), tm.log_tail()
            assert "lookup connection lost, retrying" in log
            # The server comes back; the job resumes from its last checkpoint.
            dim_pg._pg_ctl_start()
            dim_pg.running = True
            tm.start()
            env.wait_caught_up(tm)
            assert tm.terminate() == 0, tm.log_tail()
            for sink, q in (("out_left", Q_LEFT), ("out_inner", Q_INNER), ("out_comp", Q_COMP)):
                assert env.folded(sink) == env.answer(q), f"{sink} differs after the restart"
        finally:
            tm.kill9()
    finally:
        dim_pg.stop()


def test_lookup_table_checked_at_start(env):
    """Declarations that do not fit the table stop the job before it reads anything."""
    cases = [
        ("dims (id int PRIMARY KEY, labl text)", "declared column 'labl' does not exist"),
        ("dims (id int PRIMARY KEY, label int)", "declared column 'label' has type"),
        ("dims (id int, label text PRIMARY KEY)", "is not the primary key or a unique index"),
    ]
    for i, (decl, want) in enumerate(cases):
        on = "e.region = d.label" if "label text PRIMARY" in decl else "e.dim_id = d.id"
        job = "\n".join([
            create_table("events", {"connector": "postgres-cdc", "dsn": env.pg.dsn(env.db),
                                    "table": "public.events", "slot": f"{env.db}_bad{i}",
                                    "publication": f"{env.db}_bad{i}"},
                         "id int PRIMARY KEY, dim_id int, region text, code int, amount int"),
            f"CREATE TABLE {decl} WITH (connector = 'postgres', dsn = "
            f"'{env.dim_pg.dsn(env.dim_db)}', table = 'public.dims', lookup = true);",
            create_table("out", {"connector": "file", "path": str(env.tmp / f"bad{i}")}),
            f"INSERT INTO out SELECT e.id, d.id AS x FROM events e JOIN dims d ON {on};",
            "SET admin_address = '127.0.0.1:0';",
        ]) + "\n"
        tm = Tidemark(job, env.tmp / f"tm{i}", bin=env.bin)
        tm.start()
        rc = tm.wait_exit(60)
        assert rc != 0 and want in tm.log_text(), f"{decl}: exit {rc}\n{tm.log_tail()}"
        assert rc in (EXIT_CONFIG, EXIT_SOURCE), rc


SRC = ("CREATE TABLE events (id int PRIMARY KEY, dim_id bigint, region text, code int)\n"
       "  WITH (connector = 'postgres-cdc', dsn = 'host=127.0.0.1 port=1 dbname=x', "
       "table = 'public.events');\n"
       "CREATE TABLE dims (id int PRIMARY KEY, label text) WITH (connector = 'postgres',\n"
       "  dsn = 'host=127.0.0.1 port=1 dbname=x', table = 'public.dims', lookup = true);\n"
       "CREATE TABLE dims2 (region text, code int, label text, PRIMARY KEY (region, code))\n"
       "  WITH (connector = 'postgres', dsn = 'host=127.0.0.1 port=1 dbname=x', "
       "table = 'dims2', lookup = true);\n"
       "CREATE TABLE out () WITH (connector = 'file', path = '/tmp/out');\n")

# (id, query after INSERT INTO out, the offending text, words the message must hold)
PLAN_ERRORS = [
    ("scan_alone", "SELECT * FROM dims", "SELECT * FROM dims", ["lookup table", "join it"]),
    ("scan_in_subquery", "SELECT x.id FROM (SELECT id FROM dims) x JOIN events e ON e.id = x.id",
     "SELECT id FROM dims", ["lookup table", "scanned"]),
    ("preserved_side_left", "SELECT d.id FROM dims d LEFT JOIN events e ON e.dim_id = d.id",
     "dims d", ["preserved side", "right of the LEFT JOIN"]),
    ("preserved_side_right", "SELECT e.id FROM events e RIGHT JOIN dims d ON e.dim_id = d.id",
     "dims d", ["preserved side"]),
    ("full_join", "SELECT e.id FROM events e FULL JOIN dims d ON e.dim_id = d.id", "dims d",
     ["FULL JOIN"]),
    ("missing_key_column", "SELECT e.id FROM events e JOIN dims2 d ON e.region = d.region",
     "dims2 d ON e.region = d.region", ["every column of its PRIMARY KEY", "code"]),
    ("key_on_other_column", "SELECT e.id FROM events e JOIN dims d ON e.region = d.label",
     "dims d ON e.region = d.label", ["PRIMARY KEY (id)"]),
    ("in_exists", "SELECT e.id FROM events e WHERE EXISTS (SELECT 1 FROM dims d WHERE d.id = "
     "e.dim_id)", "dims d", ["EXISTS", "join it"]),
    ("two_lookups", "SELECT d.id FROM dims d JOIN dims2 x ON d.label = x.region AND d.id = x.code",
     "dims2 x", ["two lookup tables"]),
]


@pytest.mark.parametrize("case", PLAN_ERRORS, ids=[c[0] for c in PLAN_ERRORS])
def test_lookup_planning_errors(case, sql_bin, tmp_path):
    name, query, offending, words = case
    path = tmp_path / "job.sql"
    text = SRC + f"INSERT INTO out {query};\n"
    path.write_text(text)
    res = run_cli(["explain", path], bin=sql_bin)
    msg = res.stderr
    assert res.returncode == EXIT_CONFIG, f"{name}: exit {res.returncode}\n{res.stdout}{msg}"
    m = re.search(r"\.sql:(\d+):(\d+):", msg)
    assert m, f"{name}: no position in {msg!r}"
    line, col = int(m.group(1)), int(m.group(2))
    lines = text.split("\n")
    start = lines[line - 1].find(offending.split("\n")[0])
    assert start >= 0 and start + 1 <= col <= start + len(offending) + 1, \
        f"{name}: position {line}:{col} is not inside {offending!r}: {msg}"
    for w in words:
        assert w.lower() in msg.lower(), f"{name}: {w!r} not in {msg!r}"


def test_postgres_without_lookup_explains_itself(sql_bin, tmp_path):
    path = tmp_path / "job.sql"
    for text, words in [
        (SRC.replace(", lookup = true);\nCREATE TABLE dims2", ");\nCREATE TABLE dims2")
         + "INSERT INTO out SELECT e.id FROM events e JOIN dims d ON e.dim_id = d.id;\n",
         ["lookup = true", "sink (INSERT INTO)", "postgres-cdc"]),
        # A lookup table written to: as a sink, its lookup options are not sink options.
        (SRC + "CREATE TABLE pgsink (id int) WITH (connector = 'postgres', dsn = 'x', "
               "table = 't', lookup = true);\nINSERT INTO pgsink SELECT id FROM events;\n",
         ["unknown option 'lookup'"]),
        (SRC.replace("lookup = true);\nCREATE TABLE dims2", "lookup = true, lookup_ttl = 'x');"
                     "\nCREATE TABLE dims2")
         + "INSERT INTO out SELECT e.id FROM events e JOIN dims d ON e.dim_id = d.id;\n",
         ["lookup_ttl", "duration"]),
    ]:
        path.write_text(text)
        res = run_cli(["explain", path], bin=sql_bin)
        assert res.returncode == EXIT_CONFIG, res.stdout + res.stderr
        for w in words:
            assert w in res.stderr, f"{w!r} not in {res.stderr!r}"
