"""The runnable examples of docs/sql.md, run (the convention is in tests/sql/README.md).

A ```sql block preceded by one of these comments (blank lines between are
allowed) is an example the tests execute:

  <!-- example: explain -->  a whole job; `tidemark explain` must accept it (exit 0).
  <!-- example: setup -->    SQL for PostgreSQL: tables and rows, for the next `run` block.
  <!-- example: changes -->  SQL for PostgreSQL applied after the job started (streamed).
  <!-- example: run -->      a whole job, run against the test PostgreSQL after the setup
                             block; each `INSERT INTO sink <select>` is compared with
                             PostgreSQL's answer to <select> over the final tables.

Before running, the tests rewrite what cannot be known when writing docs:
every postgres-cdc source's `dsn`, `slot` and `publication` (the test's own),
and every file sink's `path` (a directory per sink).  Source tables must be
named as the PostgreSQL tables they capture, so that the SELECT means the
same on both sides.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

from pgserver import lsn_to_int
from sql_harness import (PG_TYPES, CaseFailure, describe_difference, fold, output_lines,
                         pg_answer, type_mismatches)
from tidemark import Tidemark, run_cli, wait_until

DOC = Path(__file__).resolve().parents[2] / "docs" / "sql.md"
MARKER = re.compile(r"<!--\s*example:\s*(explain|setup|changes|run)\s*-->")


# -- reading the markdown ----------------------------------------------------------

class Example:
    def __init__(self, kind: str, sql: str, line: int, setup: str = "", changes: str = ""):
        self.kind, self.sql, self.line = kind, sql, line
        self.setup, self.changes = setup, changes

    @property
    def id(self) -> str:
        return f"{self.kind}@line{self.line}"


def examples(markdown: str) -> List[Example]:
    """The marked blocks, each run block with the setup/changes blocks before it."""
    lines = markdown.split("\n")
    found: List[Example] = []
    pending_kind: Optional[str] = None
    setup = changes = ""
    i = 0
    while i < len(lines):
        m = MARKER.search(lines[i])
        if m:
            pending_kind = m.group(1)
            i += 1
            continue
        if lines[i].strip().startswith("```"):
            fence = lines[i].strip()
            start = i
            i += 1
            body = []
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            if pending_kind and fence.startswith("```sql"):
                text = "\n".join(body) + "\n"
                if pending_kind == "setup":
                    setup, changes = text, ""
                elif pending_kind == "changes":
                    changes = text
                elif pending_kind == "run":
                    found.append(Example("run", text, start + 1, setup, changes))
                    setup = changes = ""
                else:
                    found.append(Example("explain", text, start + 1))
            pending_kind = None
        i += 1
    return found


# -- rewriting a job ---------------------------------------------------------------

def split_statements(sql: str) -> List[str]:
    """Statements split at top-level semicolons (quotes and -- comments respected)."""
    out, cur, i, quote = [], [], 0, None
    while i < len(sql):
        c = sql[i]
        if quote:
            cur.append(c)
            if c == quote:
                if i + 1 < len(sql) and sql[i + 1] == quote:
                    cur.append(sql[i + 1])
                    i += 1
                else:
                    quote = None
        elif c in "'\"":
            quote = c
            cur.append(c)
        elif c == "-" and sql[i:i + 2] == "--":
            j = sql.find("\n", i)
            i = len(sql) if j < 0 else j
            continue
        elif c == ";":
            if "".join(cur).strip():
                out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return out


def _with_span(stmt: str) -> Optional[Tuple[int, int]]:
    """(start, end) of the option list inside the last top-level WITH ( ... )."""
    depth, quote, last = 0, None, None
    for m in re.finditer(r"'|\(|\)|\bWITH\s*\(", stmt, re.IGNORECASE):
        tok = m.group(0)
        if quote:
            if tok == "'":
                quote = None
            continue
        if tok == "'":
            quote = "'"
        elif tok == "(":
            depth += 1
        elif tok == ")":
            depth -= 1
        elif depth == 0:
            last = m.end()
            depth += 1
    if last is None:
        return None
    depth, quote = 1, False
    for j in range(last, len(stmt)):
        c = stmt[j]
        if c == "'":
            quote = not quote
        elif not quote and c == "(":
            depth += 1
        elif not quote and c == ")":
            depth -= 1
            if depth == 0:
                return last, j
    return None


def parse_options(text: str) -> List[Tuple[str, str]]:
    opts, cur, quote, depth = [], "", False, 0
    for c in text + ",":
        if c == "'":
            quote = not quote
        if c == "," and not quote and depth == 0:
            if cur.strip():
                k, _, v = cur.partition("=")
                opts.append((k.strip().lower(), v.strip()))
            cur = ""
            continue
        depth += (c == "(") - (c == ")") if not quote else 0
        cur += c
    return opts


def quote(v: str) -> str:
    return "'" + v.replace("'", "''") + "'"


class Job:
    """A doc job, parsed just enough to rewrite it and to know what to compare."""

    def __init__(self, sql: str):
        self.statements = split_statements(sql)
        self.sources: Dict[str, List[Tuple[str, str]]] = {}
        self.sinks: Dict[str, List[Tuple[str, str]]] = {}
        self.lookups: Dict[str, List[Tuple[str, str]]] = {}
        self.views: List[str] = []
        self.inserts: List[Tuple[str, str]] = []   # (sink, select)
        for s in self.statements:
            if re.match(r"(?is)^CREATE\s+(OR\s+REPLACE\s+)?VIEW\b", s):
                self.views.append(s)
            elif re.match(r"(?is)^CREATE\s+TABLE\b", s):
                name = re.match(r"(?is)^CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([\w.\"]+)",
                                s).group(1)
                span = _with_span(s)
                opts = parse_options(s[span[0]:span[1]]) if span else []
                conn = dict(opts).get("connector", "").strip("'")
                if conn == "postgres":
                    self.lookups[name] = opts  # a lookup table: only its dsn is rewritten
                else:
                    (self.sources if conn.startswith("postgres") else self.sinks)[name] = opts
            elif re.match(r"(?is)^INSERT\s+INTO\b", s):
                m = re.match(r"(?is)^INSERT\s+INTO\s+([\w.\"]+)\s+(.*)$", s)
                self.inserts.append((m.group(1), m.group(2)))

    def rewritten(self, dsn: str, db: str, out_root: Path) -> str:
        parts = []
        has_interval = False
        for s in self.statements:
            if re.match(r"(?is)^CREATE\s+TABLE\b", s):
                name = re.match(r"(?is)^CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([\w.\"]+)",
                                s).group(1)
                span = _with_span(s)
                if span:
                    opts = dict(parse_options(s[span[0]:span[1]]))
                    if name in self.sources:
                        slot = f"{db}_{name.strip(chr(34)).lower()}"[:63]
                        opts.update(dsn=quote(dsn), slot=quote(slot), publication=quote(slot))
                        # Moves the slot on when the example's tables are idle.
                        opts.setdefault("heartbeat_interval", "'200ms'")
                    elif name in self.lookups:
                        opts["dsn"] = quote(dsn)
                    elif opts.get("connector", "").strip("'") == "file":
                        opts["path"] = quote(str(out_root / name.strip('"')))
                    body = ", ".join(f"{k} = {v}" for k, v in opts.items())
                    s = s[:span[0]] + body + s[span[1]:]
            if re.match(r"(?is)^SET\s+checkpoint_interval\b", s):
                has_interval = True
            if re.match(r"(?is)^SET\s+admin_address\b", s):
                continue
            parts.append(s + ";")
        if not has_interval:
            parts.append("SET checkpoint_interval = '200ms';")
        parts.append("SET admin_address = '127.0.0.1:0';")
        return "\n".join(parts) + "\n"

    def slots(self, db: str) -> List[str]:
        return [f"{db}_{n.strip(chr(34)).lower()}"[:63] for n in self.sources]


# -- running ---------------------------------------------------------------------------

def explain_example(ex: Example, bin, tmp_path: Path, dsn: str) -> None:
    job = Job(ex.sql).rewritten(dsn, "docs", tmp_path / "out")
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "example.sql"
    path.write_text(job)
    res = run_cli(["explain", path], bin=bin)
    assert res.returncode == 0, (f"docs/sql.md:{ex.line}: `tidemark explain` rejects the example "
                                 f"(exit {res.returncode}):\n{ex.sql}\n--- said ---\n"
                                 f"{res.stdout}{res.stderr}")


def run_example(ex: Example, pg, db: str, bin, tmp_path: Path, where: str,
                compare: Optional[List[Tuple[str, str]]] = None) -> None:
    """Runs a run example; compare replaces the (sink, select) pairs checked (self-tests)."""
    job = Job(ex.sql)
    assert job.inserts, f"{where}: a run example needs an INSERT INTO <sink> SELECT ..."
    if ex.setup:
        pg.psql(ex.setup, db=db)
    for v in job.views:
        pg.psql(v + ";", db=db)
    text = job.rewritten(pg.dsn(db), db, tmp_path / "out")
    tm = Tidemark(text, tmp_path / "tm", bin=bin)
    tm.start()
    try:
        slots = job.slots(db)

        def slot_lsns():
            out = pg.psql("SELECT slot_name, confirmed_flush_lsn FROM pg_replication_slots "
                          "WHERE confirmed_flush_lsn IS NOT NULL", db=db)
            return dict(line.split("|") for line in out.splitlines() if line)

        wait_until(lambda: all(s in slot_lsns() for s in slots), 60,
                   f"{where}: the example's slots {slots}", tm)
        if ex.changes:
            pg.psql(ex.changes, db=db)
        end = lsn_to_int(pg.psql("SELECT pg_current_wal_lsn()", db=db))
        wait_until(lambda: all(lsn_to_int(slot_lsns().get(s, "0/0")) >= end for s in slots), 90,
                   f"{where}: the example's sources to catch up", tm)
        rc = tm.terminate()
        assert rc == 0, f"{where}: tidemark exited with {rc} on SIGTERM\n{tm.log_tail()}"
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- job ---\n{text}\n{tm.log_tail()}") from None
    finally:
        tm.kill9()
    problems = []
    for sink, select in compare or job.inserts:
        oracle = pg_answer(pg, db, select)
        kinds = [PG_TYPES[o][0] for o in oracle.oids]
        folded = fold(output_lines(tmp_path / "out" / sink.strip('"')), kinds)
        diff = describe_difference(oracle.rows, folded.rows, oracle.names, kinds=kinds)
        issues = folded.errors + type_mismatches(oracle, folded.field_schemas, folded.names) + diff
        if issues:
            problems.append(f"INSERT INTO {sink} {select}\n  " + "\n  ".join(issues))
    if problems:
        raise CaseFailure(f"{where}: the example's output differs from PostgreSQL's answer\n"
                          + "\n".join(problems) + f"\n--- job as run ---\n{text}")


# -- the tests -----------------------------------------------------------------------------

DOC_EXAMPLES = examples(DOC.read_text()) if DOC.exists() else []


@pytest.mark.parametrize("ex", DOC_EXAMPLES or [None],
                         ids=[e.id for e in DOC_EXAMPLES] or ["none"])
def test_docs_sql_example(ex, sql_pg, sql_db, sql_bin, tmp_path):
    if ex is None:
        pytest.skip("docs/sql.md marks no runnable example yet (see tests/sql/README.md)")
    where = f"docs/sql.md:{ex.line}"
    if ex.kind == "explain":
        explain_example(ex, sql_bin, tmp_path, sql_pg.dsn(sql_db))
    else:
        run_example(ex, sql_pg, sql_db, sql_bin, tmp_path, where)


SELF_TEST_DOC = """
Some prose.

<!-- example: explain -->
```sql
CREATE TABLE orders (id int PRIMARY KEY, amount numeric(10,2))
WITH (connector = 'postgres-cdc', dsn = '…', table = 'public.orders');
CREATE TABLE out () WITH (connector = 'file', path = '/var/lib/tidemark/out');
INSERT INTO out SELECT * FROM orders;
```

Not an example:

```sql
SELECT this is not run;
```

<!-- example: setup -->
```sql
CREATE TABLE orders (id int PRIMARY KEY, amount numeric(10,2), note text);
INSERT INTO orders VALUES (1, 10.50, 'a;b'), (2, NULL, 'it''s');
```

<!-- example: changes -->
```sql
UPDATE orders SET amount = 11.00 WHERE id = 1;
INSERT INTO orders VALUES (3, 3.25, NULL);
DELETE FROM orders WHERE id = 2;
```

<!-- example: run -->
```sql
CREATE TABLE orders (id int, amount numeric(10,2), note text, PRIMARY KEY (id))
WITH (connector = 'postgres-cdc', dsn = 'host=db.example port=5432 dbname=shop',
      table = 'public.orders', slot = 'prod_slot');
CREATE TABLE out () WITH (connector = 'file', path = '/somewhere', decimal_handling = 'precise');
INSERT INTO out SELECT * FROM orders; -- a comment; with a semicolon
```
"""


def test_convention_reads_and_runs_marked_blocks(sql_pg, sql_db, sql_bin, tmp_path):
    """The machinery on a document of our own, with a job that runs today."""
    found = examples(SELF_TEST_DOC)
    assert [e.kind for e in found] == ["explain", "run"], [e.id for e in found]
    run = found[1]
    assert "INSERT INTO orders VALUES (1, 10.50, 'a;b')" in run.setup
    assert "DELETE FROM orders WHERE id = 2" in run.changes
    job = Job(run.sql)
    assert list(job.sources) == ["orders"] and list(job.sinks) == ["out"]
    assert job.inserts == [("out", "SELECT * FROM orders")]
    explain_example(found[0], sql_bin, tmp_path / "explain", sql_pg.dsn(sql_db))
    run_example(run, sql_pg, sql_db, sql_bin, tmp_path / "run", "self-test")


def test_convention_catches_a_wrong_answer(sql_pg, sql_db, sql_bin, tmp_path):
    """A run example whose output does not match PostgreSQL fails, naming the rows."""
    run = examples(SELF_TEST_DOC)[1]
    ex = Example("run", run.sql, run.line,
                 run.setup + "CREATE VIEW nothing AS SELECT * FROM orders WHERE false;\n",
                 run.changes)
    with pytest.raises(CaseFailure) as info:
        run_example(ex, sql_pg, sql_db, sql_bin, tmp_path, "self-test (wrong answer)",
                    compare=[("out", "SELECT * FROM nothing")])
    assert "extra (tidemark has them" in str(info.value), str(info.value)
