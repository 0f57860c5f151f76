"""Window TVFs at plan time (issue 13): what `tidemark explain` refuses, with the
position and an actionable message (exit 2, test_errors.py's convention), and
what it prints for a windowed query.

The windowed results themselves are checked against PostgreSQL by the harness
(sql_cases.py, the win_* cases); the operator by tests/unit/operators/window_agg.c.
"""

import pytest

from test_errors import POSITION, _locate
from tidemark import EXIT_CONFIG, run_cli

SOURCE = ("CREATE TABLE orders (id int, customer text, amount numeric(10,2), qty int,\n"
          "    created_at timestamptz, PRIMARY KEY (id))\n"
          "    WITH (connector = 'postgres-cdc', dsn = 'host=127.0.0.1 port=1 dbname=x "
          "user=postgres',\n"
          "          table = 'public.orders');\n"
          "CREATE TABLE out () WITH (connector = 'file', path = '{out}');\n")

T = "TUMBLE(orders, created_at, INTERVAL '1 minute')"
WS = "window_start, window_end"

# (id, the query after INSERT INTO out, the offending text, words that must all be in the
# message (case-insensitive), words of which one must be)
CASES = [
    ("unknown_function", f"SELECT {WS}, count(*) AS n FROM\n  TUMBLEX(orders, created_at, "
     f"INTERVAL '1 minute') GROUP BY {WS}", "TUMBLEX(orders", ["tumblex", "TUMBLE"],
     ["not supported"]),
    ("argument_count", f"SELECT {WS}, count(*) AS n FROM TUMBLE(orders, created_at) "
     f"GROUP BY {WS}", "TUMBLE(orders, created_at)", ["3 arguments", "size"], []),
    ("unknown_table", f"SELECT {WS}, count(*) AS n FROM TUMBLE(ordrs,\n created_at, "
     f"INTERVAL '1 minute') GROUP BY {WS}", "ordrs", ["ordrs"], ["does not exist", "not declared"]),
    ("unknown_time_column", f"SELECT {WS}, count(*) AS n FROM TUMBLE(orders, create_at, "
     f"INTERVAL '1 minute') GROUP BY {WS}", "create_at", ["create_at", "created_at"],
     ["does not exist"]),
    ("processing_time", f"SELECT {WS}, count(*) AS n FROM TUMBLE(orders, now(), "
     f"INTERVAL '1 minute') GROUP BY {WS}", "now()", ["processing-time", "not supported"],
     ["event time"]),
    ("rank_without_the_window", "SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY "
     f"customer ORDER BY amount DESC) AS rn FROM {T}) t WHERE rn <= 3", "row_number()",
     ["window_start", "window_end", "partition by"], []),
    ("rank_over_session", "SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY "
     f"{WS} ORDER BY amount DESC) AS rn FROM SESSION(orders, created_at, INTERVAL '1 minute'))"
     " t WHERE rn <= 3", "SESSION(", ["session", "window aggregation"], ["not supported"]),
    ("rank_over_changelog", "SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY "
     f"{WS} ORDER BY amount DESC) AS rn FROM {T}) t WHERE rn <= 3", "TUMBLE(",
     ["insert-only", "orders"], []),
    ("time_column_type", f"SELECT {WS}, count(*) AS n FROM HOP(orders, qty, "
     f"INTERVAL '1 minute', INTERVAL '2 minutes') GROUP BY {WS}", "qty",
     ["timestamp", "integer"], []),
    ("size_not_interval", f"SELECT {WS}, count(*) AS n FROM TUMBLE(orders, created_at, 60) "
     f"GROUP BY {WS}", "60", ["interval", "integer"], []),
    ("size_reads_a_column", f"SELECT {WS}, count(*) AS n FROM TUMBLE(orders, created_at,\n"
     f"  qty * INTERVAL '1 second') GROUP BY {WS}", "qty * INTERVAL '1 second'",
     ["constant interval"], []),
    ("size_not_positive", f"SELECT {WS}, count(*) AS n FROM SESSION(orders, created_at, "
     f"INTERVAL '-5 minutes') GROUP BY {WS}", "INTERVAL '-5 minutes'", ["gap", "positive"], []),
    ("size_in_months", f"SELECT {WS}, count(*) AS n FROM TUMBLE(orders, created_at, "
     f"INTERVAL '1 month') GROUP BY {WS}", "INTERVAL '1 month'", ["month"], ["cannot", "not supported"]),
    ("hop_not_a_multiple", f"SELECT {WS}, count(*) AS n FROM HOP(orders, created_at, "
     f"INTERVAL '7 minutes', INTERVAL '1 hour') GROUP BY {WS}", "INTERVAL '7 minutes'",
     ["multiple", "slide"], []),
    ("cumulate_too_many_windows", f"SELECT {WS}, count(*) AS n FROM CUMULATE(orders, "
     f"created_at, INTERVAL '1 second', INTERVAL '1 day') GROUP BY {WS}",
     "INTERVAL '1 second'", ["1000"], []),
    ("missing_window_end", f"SELECT window_start, count(*) AS n FROM {T}\n  GROUP BY "
     f"window_start", "window_start", ["window_end", "group by"], []),
    ("not_aggregated", f"SELECT * FROM\n  {T}", "TUMBLE(", ["group by window_start"],
     ["not built", "not supported"]),
    ("window_column_in_where", f"SELECT {WS}, count(*) AS n FROM {T}\n  WHERE window_end > "
     f"now() GROUP BY {WS}", "window_end > now()", ["where", "having"], []),
    ("window_column_aggregated", f"SELECT {WS}, max(window_time) AS m FROM {T} GROUP BY {WS}",
     "max(window_time)", ["aggregate"], ["not supported"]),
    ("window_column_in_group_expression", f"SELECT {WS}, count(*) AS n FROM {T}\n  GROUP BY "
     f"{WS}, date_trunc('hour', window_start)", "date_trunc('hour', window_start)",
     ["group by"], ["as they are"]),
    ("window_in_join", f"SELECT o.id FROM {T} JOIN\n  orders o ON o.id = orders.id",
     T, ["one item", "view"], []),
]


@pytest.mark.parametrize("name,query,offending,must,one_of", CASES, ids=[c[0] for c in CASES])
def test_window_errors(name, query, offending, must, one_of, sql_bin, tmp_path):
    job = SOURCE.format(out=tmp_path / "out") + f"INSERT INTO out {query};\n"
    path = tmp_path / "job.sql"
    path.write_text(job)
    res = run_cli(["explain", path], bin=sql_bin)
    said = (res.stdout + res.stderr).strip()
    context = f"\njob.sql:\n{job}\n--- tidemark said (exit {res.returncode}) ---\n{said}"
    for crash in ("AddressSanitizer", "runtime error:", "Segmentation", "Assertion"):
        assert crash not in said, f"tidemark crashed ({crash}){context}"
    assert res.returncode == EXIT_CONFIG, f"expected exit code {EXIT_CONFIG}{context}"
    lowered = said.lower()
    missing = [w for w in must if w.lower() not in lowered]
    assert not missing, f"the message should mention {missing}{context}"
    if one_of:
        assert any(w.lower() in lowered for w in one_of), \
            f"the message should say one of {one_of}{context}"
    m = POSITION.search(said)
    assert m, f"the message has no job.sql:LINE:COLUMN position{context}"
    line, first, last = _locate(job, offending)
    got_line, got_col = int(m.group(1)), int(m.group(2))
    assert (got_line, first <= got_col <= last) == (line, True), \
        (f"the position {got_line}:{got_col} should point into {offending!r} at line {line}, "
         f"columns {first}-{last}{context}")


def _explain(sql_bin, tmp_path, query, settings="", source=SOURCE):
    job = source.format(out=tmp_path / "out") + f"INSERT INTO out {query};\n{settings}"
    path = tmp_path / "job.sql"
    path.write_text(job)
    res = run_cli(["explain", path], bin=sql_bin)
    assert res.returncode == 0, f"exit {res.returncode}:\n{job}\n{res.stdout}\n{res.stderr}"
    return res.stdout


def test_explain_window_aggregation(sql_bin, tmp_path):
    out = _explain(sql_bin, tmp_path,
                   f"SELECT customer, {WS}, count(*) AS n, sum(amount) AS total FROM "
                   f"TUMBLE(orders, created_at, INTERVAL '1 minute') GROUP BY customer, {WS}",
                   "SET parallelism = 2;\n")
    assert "window_agg TUMBLE(created_at, INTERVAL '1 minute')" in out, out
    assert "group by customer, window_start, window_end" in out, out
    assert "input: hash(customer); parallelism 2" in out, out
    assert "changelog: insert-only (+I); unique key (customer, window_start, window_end)" \
        in out, out
    assert "uid window/out/1-" in out, out
    assert "a timer per window" in out and "tidemark_late_rows_total" in out, out
    assert "window aggregates (TUMBLE" not in out, "explain still lists windows as not built"


def test_explain_window_alone_is_single(sql_bin, tmp_path):
    out = _explain(sql_bin, tmp_path,
                   f"SELECT {WS}, count(*) AS n FROM SESSION(orders, created_at, "
                   f"INTERVAL '5 minutes') GROUP BY {WS}", "SET parallelism = 2;\n")
    assert "SESSION(created_at, gap INTERVAL '5 minutes', per group key)" in out, out
    assert "input: single; parallelism 1" in out, out


def test_explain_allowed_lateness_makes_a_changelog(sql_bin, tmp_path):
    out = _explain(sql_bin, tmp_path,
                   f"SELECT customer, {WS}, count(*) AS n FROM HOP(orders, created_at, "
                   f"INTERVAL '1 minute', INTERVAL '5 minutes') GROUP BY customer, {WS}",
                   "SET allowed_lateness = '30s';\n")
    assert "HOP(created_at, slide INTERVAL '1 minute', size INTERVAL '5 minutes')" in out, out
    assert "allowed_lateness INTERVAL '30 seconds'" in out, out
    assert "changelog: retract" in out, out


# -- SET late_data_sink ------------------------------------------------------------------------

TUMBLE_Q = (f"SELECT customer, {WS}, count(*) AS n, sum(amount) AS total FROM "
            f"TUMBLE(orders, created_at, INTERVAL '1 minute') GROUP BY customer, {WS}")


def test_explain_late_data_sink(sql_bin, tmp_path):
    out = _explain(sql_bin, tmp_path, TUMBLE_Q,
                   f"CREATE TABLE late () WITH (connector = 'file', path = '{tmp_path / 'l'}');\n"
                   "SET late_data_sink = 'late';\n")
    assert "late_data_sink late: every late row goes there too" in out, out
    assert "  late (connector file)" in out, "the late sink is not listed among the sinks\n" + out
    assert "SET late_data_sink" not in out.split("not built yet:")[-1], out


def test_late_data_sink_with_declared_columns(sql_bin, tmp_path):
    cols = ("created_at timestamptz, customer text, sum_arg1 numeric, operator text, "
            "window_start timestamptz, window_end timestamptz, watermark timestamptz, reason text")
    _explain(sql_bin, tmp_path, TUMBLE_Q,
             f"CREATE TABLE late ({cols}) WITH (connector = 'file', path = '{tmp_path / 'l'}');\n"
             "SET late_data_sink = 'late';\n")


@pytest.mark.parametrize("name,query,extra,words", [
    ("no_such_table", TUMBLE_Q, "SET late_data_sink = 'nope';\n",
     ["late_data_sink", "nope", "names no table"]),
    ("also_an_insert_target", TUMBLE_Q, "SET late_data_sink = 'out';\n",
     ["late_data_sink", "out", "insert into"]),
    ("no_window_aggregation", "SELECT customer, count(*) AS n FROM orders GROUP BY customer",
     "CREATE TABLE late () WITH (connector = 'file', path = '/tmp/x');\n"
     "SET late_data_sink = 'late';\n", ["late_data_sink", "no window aggregation"]),
    ("declared_columns_differ", TUMBLE_Q,
     "CREATE TABLE late (customer text) WITH (connector = 'file', path = '/tmp/x');\n"
     "SET late_data_sink = 'late';\n", ["late", "window_start", "reason", "declare exactly"]),
])
def test_late_data_sink_errors(name, query, extra, words, sql_bin, tmp_path):
    job = SOURCE.format(out=tmp_path / "out") + f"INSERT INTO out {query};\n{extra}"
    path = tmp_path / "job.sql"
    path.write_text(job)
    res = run_cli(["explain", path], bin=sql_bin)
    said = (res.stdout + res.stderr).strip()
    assert res.returncode == EXIT_CONFIG, f"exit {res.returncode}\n{job}\n{said}"
    missing = [w for w in words if w.lower() not in said.lower()]
    assert not missing, f"the message should mention {missing}\n{job}\n{said}"


RANKED = ("SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY {part} ORDER BY n DESC) "
          "AS rn FROM (SELECT customer, " + WS + ", count(*) AS n FROM TUMBLE(orders, "
          "created_at, INTERVAL '1 minute') GROUP BY customer, " + WS + ") a) t WHERE rn <= 3")


def _topn_node(out):
    """The explain lines of the (one) topn node."""
    lines = out.splitlines()
    start = next(i for i, l in enumerate(lines) if "] topn" in l)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("["))
    return "\n".join(lines[start:end])


def test_explain_window_top_n_is_insert_only(sql_bin, tmp_path):
    out = _explain(sql_bin, tmp_path, RANKED.format(part=WS), "SET parallelism = 2;\n")
    node = _topn_node(out)
    assert "the top 3 rows per window and partition (window Top-N)" in node, out
    assert "emits  insert-only" in node and "window_end" in node, out
    assert "input: hash(window_start, window_end); parallelism 2" in node, out
    assert "changelog: insert-only (+I); unique key (window_start, window_end, rn)" in node, out


def test_explain_top_n_without_the_window_stays_retracting(sql_bin, tmp_path):
    # Partitioned by window_start alone (not the window): the plain Top-N, retracting.
    out = _explain(sql_bin, tmp_path, RANKED.format(part="window_start"))
    node = _topn_node(out)
    assert "window Top-N" not in node and "changelog: retract" in node, out


def test_explain_window_dedup_over_the_tvf(sql_bin, tmp_path):
    # snapshot = 'initial_only': an insert-only read, which a window Top-N over the TVF needs.
    out = _explain(sql_bin, tmp_path,
                   "SELECT id, customer, window_start FROM (SELECT *, row_number() OVER "
                   f"(PARTITION BY {WS}, customer ORDER BY created_at DESC) AS rn FROM {T}) t "
                   "WHERE rn = 1", "SET parallelism = 2;\n",
                   source=SOURCE.replace("table = 'public.orders'",
                                         "table = 'public.orders', snapshot = 'initial_only'"))
    assert "window_tvf TUMBLE(created_at, INTERVAL '1 minute')" in out, out
    node = _topn_node(out)
    assert "the top 1 row per window and partition (window deduplication)" in node, out
    assert "changelog: insert-only (+I)" in node, out
