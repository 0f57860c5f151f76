"""The SQL correctness harness: run a query in tidemark and in PostgreSQL, compare.

One case (sql_cases.py) is a query over some source tables, the tables'
columns and value domains, and a seeded workload.  run_case() plays it:

  1. creates the tables in a fresh PostgreSQL database (REPLICA IDENTITY
     FULL or DEFAULT, as each table says) and loads their initial rows,
     which tidemark reads through its snapshot (snapshot = 'initial');
  2. starts `tidemark run` on a job with one postgres-cdc source per table
     (declared columns and PRIMARY KEY (id)), the case's views, and
     `INSERT INTO out <query>` into a file sink (debezium-json,
     decimal_handling = 'string'), with checkpoints on and the case's
     parallelism;
  3. applies the seeded workload (inserts, updates, key-changing updates,
     deletes, in transactions of one to a few statements), in the kill
     round with kill -9s and restarts of the daemon at random moments;
  4. waits until every source's slot has confirmed a position past the end
     of the workload (tidemark acknowledges only what a completed checkpoint
     covers, and its heartbeats move an idle slot on), then stops the daemon
     with SIGTERM (a final checkpoint; exit 0);
  5. folds the sink's changelog into a multiset of rows (c/r add `after`;
     u removes `before` and adds `after`; d removes `before`; removing a row
     that is not there is itself a failure), and compares it with what
     PostgreSQL returns for the same SELECT over the final tables (views
     created there too), both sides normalised through the Debezium JSON
     encoding: numerics as exact decimal text (scale included), timestamps
     and times as µs, dates as days, intervals as µs with a month of 30.4375
     days, JSON parsed, floats to 12 significant digits (6 for real);
  6. checks the output's column names and Debezium types against
     PostgreSQL's result types (integer is int32, bigint int64, numeric a
     decimal string, ...).

A failure raises CaseFailure whose message has the query, the seed, the
mode, the rows that differ (missing: PostgreSQL has them, tidemark not;
extra: the other way), paired by group key where a pair differs in a few
columns, the fold errors with file:line, type mismatches, the paths of the
job, workload, daemon log and output, and the command that reruns it.  The
same text goes to <case dir>/report.txt.

The module is named sql_harness (not harness) because tests/crash has a
harness module and pytest runs both directories in one interpreter.
"""

from __future__ import annotations

import base64
import json
import math
import os
import random
import re
import shlex
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from pgserver import lsn_to_int
from tidemark import Tidemark, create_table, read_jsonl, run_cli, wait_until

# The seed every case derives its own from (crc32 of the case name mixed in),
# so CI runs the same workloads every time; TIDEMARK_SQL_SEED picks another.
DEFAULT_SEED = 20261207
EPOCH_DATE = date(1970, 1, 1)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
US_PER_DAY = 86_400_000_000
# Debezium's MicroDuration counts a month as 30.4375 days (365.25 / 12).
US_PER_MONTH = 2_629_800_000_000
CHECKPOINT_INTERVAL = "200ms"
HEARTBEAT_INTERVAL = "200ms"
# Source watermarks (DESIGN §4): when True, a table that names a watermark
# (Table.watermark) declares it as its `watermark` option.  Off: the
# windowed cases run bounded (Case.bounded), where a snapshot read in any
# order would make rows late; the streaming windowed cases with watermarks,
# out-of-order and late rows are tests/sql/test_window_stream.py.
WATERMARKS = False


def base_seed() -> int:
    raw = os.environ.get("TIDEMARK_SQL_SEED", "")
    if raw == "random":
        return random.SystemRandom().randrange(1, 2**31)
    return int(raw) if raw else DEFAULT_SEED


def case_seed(base: int, name: str) -> int:
    return (base * 1_000_003 + zlib.crc32(name.encode())) % (2**31)


# =============================================================================
# Cases: tables, columns, workloads
# =============================================================================

# A generator renders one SQL literal (with a cast where the type needs one)
# for a column, or 'NULL'.
Gen = Callable[[random.Random], str]


@dataclass
class Column:
    name: str
    type: str                   # PostgreSQL type as declared on both sides, e.g. numeric(10,2)
    gen: Gen
    updatable: bool = True      # False: the workload never changes it after insert


@dataclass
class Table:
    """A source table: `id int PRIMARY KEY` plus the columns."""
    name: str
    columns: List[Column]
    replica_identity: str = "full"   # 'full' or 'default'
    initial_rows: int = 30           # loaded before tidemark starts: read by its snapshot
    key_space: int = 60              # ids are drawn from 1..key_space, so keys are reused
    watermark: Optional[str] = None  # its `watermark` option, declared when WATERMARKS is on

    def ddl(self) -> str:
        cols = ", ".join(f"{c.name} {c.type}" for c in self.columns)
        ident = "FULL" if self.replica_identity == "full" else "DEFAULT"
        return (f"CREATE TABLE public.{self.name} (id int PRIMARY KEY, {cols});\n"
                f"ALTER TABLE public.{self.name} REPLICA IDENTITY {ident};")

    def declared_columns(self) -> str:
        cols = ", ".join(f"{c.name} {c.type}" for c in self.columns)
        return f"id int, {cols}, PRIMARY KEY (id)"


@dataclass
class Workload:
    """The changes applied after tidemark started (the initial rows come first)."""
    changes: int = 240
    insert: int = 4          # relative weights of the kinds of change
    update: int = 5
    delete: int = 2
    key_change: int = 1      # UPDATE ... SET id = <new id>
    max_tx: int = 3          # statements per transaction: 1..max_tx
    # (column, 'min'|'max'): a third of the deletes remove the row holding
    # that column's extreme value (the case for retracting min/max).
    extreme_deletes: Optional[Tuple[str, str]] = None
    # Statements run after the random changes (e.g. deleting a whole group).
    final_sql: Sequence[str] = ()


@dataclass
class Case:
    name: str
    query: str                          # the SELECT; the job runs INSERT INTO out <query>
    tables: List[Table]
    views: Sequence[str] = ()           # CREATE VIEW statements, run on both sides
    settings: Dict[str, str] = field(default_factory=dict)   # extra SET name = value
    oracle_query: Optional[str] = None  # what PostgreSQL runs, when it must differ
    workload: Workload = field(default_factory=Workload)
    # The daemon must exit non-zero with this text in its log (a row error
    # under on_error = 'fail'); nothing is compared then.
    expect_failure: Optional[str] = None
    # Output columns left out of the comparison (processing-time values),
    # each with a check of its own: f(value, run) -> None or a complaint.
    volatile: Dict[str, Callable[[object, "RunInfo"], Optional[str]]] = \
        field(default_factory=dict)
    kill_ci: bool = False               # part of the kill round CI runs
    # Part of the savepoint-rescale round CI runs (sp12/sp21: half the
    # workload, stop with a savepoint, restore at the other parallelism).
    rescale_ci: bool = False
    # A check of its own after the comparison: f(run) -> a list of problems
    # (e.g. the dead-letter files of on_error = 'dead-letter').
    post_check: Optional[Callable[["CaseRun"], List[str]]] = None
    note: str = ""                      # what the case is about
    # Bounded: the whole workload is applied first, tidemark reads the final
    # tables through snapshot = 'initial_only' and the job ends by itself
    # (end of input fires every window, as Flink does at the end of a bounded
    # input).  For windowed cases while sources emit no watermarks.
    bounded: bool = False
    # False when the query uses tidemark's own syntax (window TVFs in FROM):
    # only the oracle query then runs in PostgreSQL.
    job_is_postgresql: bool = True

    def job_query(self) -> str:
        return self.query.strip().rstrip(";")

    def pg_query(self) -> str:
        return (self.oracle_query or self.query).strip().rstrip(";")


@dataclass
class RunInfo:
    started: float = 0.0     # wall-clock time the daemon first started
    finished: float = 0.0    # wall-clock time the workload ended


# -- value generators ---------------------------------------------------------

def nullable(gen: Gen, p: float = 0.15) -> Gen:
    return lambda r: "NULL" if r.random() < p else gen(r)


def ints(lo: int, hi: int, null: float = 0.0, cast: str = "") -> Gen:
    g = lambda r: f"{r.randint(lo, hi)}{cast}"  # noqa: E731
    return nullable(g, null) if null else g


def choice(values: Sequence[Optional[str]], cast: str = "") -> Gen:
    """One of the values (Python strings become quoted SQL literals, None NULL)."""
    def g(r):
        v = r.choice(values)
        if v is None:
            return "NULL"
        if isinstance(v, str):
            return "'" + v.replace("'", "''") + "'" + cast
        return f"{v}{cast}"
    return g


def decimals(lo: int, hi: int, scale: int, null: float = 0.0, cast: str = "") -> Gen:
    def g(r):
        unscaled = r.randint(lo * 10**scale, hi * 10**scale)
        return f"{Decimal(unscaled).scaleb(-scale)}{cast}"
    return nullable(g, null) if null else g


def floats(lo: float, hi: float, null: float = 0.0) -> Gen:
    # Values with few binary digits (multiples of 1/8), so that sums do
    # not depend on the order of addition and compare exactly.
    def g(r):
        return f"{r.randint(int(lo * 8), int(hi * 8)) / 8}::float8"
    return nullable(g, null) if null else g


def timestamps(null: float = 0.0, tz: bool = False) -> Gen:
    base = datetime(2024, 1, 1)
    cast = "::timestamptz" if tz else "::timestamp"

    def g(r):
        seconds = r.randint(0, 400 * 86400)
        micros = r.choice([0, 0, 0, 500_000, r.randint(0, 999_999)])
        t = (base + timedelta(seconds=seconds)).replace(microsecond=micros)
        text = t.strftime("%Y-%m-%d %H:%M:%S.%f")
        return f"'{text}{'+00' if tz else ''}'{cast}"
    return nullable(g, null) if null else g


def dates(null: float = 0.0) -> Gen:
    def g(r):
        d = date.fromordinal(date(2023, 1, 1).toordinal() + r.randint(0, 800))
        return f"'{d.isoformat()}'::date"
    return nullable(g, null) if null else g


def intervals(null: float = 0.0) -> Gen:
    def g(r):
        parts = r.choice([f"{r.randint(0, 30)} days", f"{r.randint(0, 48)} hours",
                          f"{r.randint(1, 14)} months {r.randint(0, 20)} days",
                          f"{r.randint(0, 90)} minutes {r.randint(0, 59)} seconds"])
        return f"'{parts}'::interval"
    return nullable(g, null) if null else g


def bools(null: float = 0.0) -> Gen:
    g = lambda r: r.choice(["true", "false"])  # noqa: E731
    return nullable(g, null) if null else g


def texts(null: float = 0.0) -> Gen:
    words = ["alpha", "Beta", "GAMMA", "delta x", "  padded  ", "o'hara", "a_b%c", "",
             "naïve café", "line\nbreak", "x-y-z", "10", "tab\there", "ZZ top"]
    g = choice(words)
    return nullable(g, null) if null else g


def jsons(null: float = 0.0) -> Gen:
    def g(r):
        doc = {"kind": r.choice(["a", "b", "c"]), "n": r.randint(0, 9),
               "tags": r.sample(["x", "y", "z"], r.randint(0, 3)),
               "inner": {"v": r.choice([1, 2.5, "s", None, True])}}
        if r.random() < 0.2:
            del doc["kind"]
        text = json.dumps(doc).replace("'", "''")
        return f"'{text}'::jsonb"
    return nullable(g, null) if null else g


# =============================================================================
# The workload
# =============================================================================

class WorkloadGen:
    """Seeded changes for a case: the initial rows, then the transactions.

    The generator tracks which ids are live, so updates and deletes touch
    existing rows, inserts use free ids (reusing deleted ones), and a
    key-changing update moves a row to a free id.
    """

    def __init__(self, case: Case, seed: int):
        self.case = case
        self.r = random.Random(seed)
        self.live: Dict[str, set] = {t.name: set() for t in case.tables}
        # Last value written per (table, id, column), for extreme deletes.
        self.values: Dict[Tuple[str, int], Dict[str, str]] = {}

    def _row_values(self, t: Table) -> Dict[str, str]:
        return {c.name: c.gen(self.r) for c in t.columns}

    def _free_id(self, t: Table) -> Optional[int]:
        free = [i for i in range(1, t.key_space + 1) if i not in self.live[t.name]]
        return self.r.choice(free) if free else None

    def insert(self, t: Table, rid: int) -> str:
        vals = self._row_values(t)
        self.live[t.name].add(rid)
        self.values[(t.name, rid)] = vals
        cols = ", ".join(["id"] + list(vals))
        return f"INSERT INTO {t.name} ({cols}) VALUES ({rid}, {', '.join(vals.values())})"

    def initial(self) -> List[str]:
        stmts = []
        for t in self.case.tables:
            for rid in self.r.sample(range(1, t.key_space + 1), min(t.initial_rows, t.key_space)):
                stmts.append(self.insert(t, rid))
        return stmts

    def _extreme_id(self, t: Table) -> Optional[int]:
        col, which = self.case.workload.extreme_deletes
        best = None
        for rid in self.live[t.name]:
            v = self.values.get((t.name, rid), {}).get(col, "NULL")
            num = _literal_number(v)
            if num is None:
                continue
            if best is None or (num > best[0] if which == "max" else num < best[0]):
                best = (num, rid)
        return best[1] if best else None

    def change(self) -> Optional[str]:
        w = self.case.workload
        t = self.r.choice(self.case.tables)
        live = sorted(self.live[t.name])
        kinds = ["insert"] * w.insert
        if live:
            kinds += ["update"] * w.update + ["delete"] * w.delete + ["key_change"] * w.key_change
        kind = self.r.choice(kinds)
        if kind == "insert":
            rid = self._free_id(t)
            if rid is None:
                kind = "delete"
            else:
                return self.insert(t, rid)
        if kind == "delete":
            rid = None
            if w.extreme_deletes and self.r.random() < 0.34:
                rid = self._extreme_id(t)
            rid = rid if rid is not None else self.r.choice(live)
            self.live[t.name].discard(rid)
            self.values.pop((t.name, rid), None)
            return f"DELETE FROM {t.name} WHERE id = {rid}"
        rid = self.r.choice(live)
        if kind == "key_change":
            new = self._free_id(t)
            if new is not None:
                self.live[t.name].discard(rid)
                self.live[t.name].add(new)
                self.values[(t.name, new)] = self.values.pop((t.name, rid), {})
                extra = ""
                upd = [c for c in t.columns if c.updatable]
                if upd and self.r.random() < 0.5:
                    c = self.r.choice(upd)
                    v = c.gen(self.r)
                    self.values[(t.name, new)][c.name] = v
                    extra = f", {c.name} = {v}"
                return f"UPDATE {t.name} SET id = {new}{extra} WHERE id = {rid}"
        upd = [c for c in t.columns if c.updatable]
        if not upd:
            return None
        cols = self.r.sample(upd, self.r.randint(1, min(3, len(upd))))
        sets = []
        for c in cols:
            v = c.gen(self.r)
            self.values.setdefault((t.name, rid), {})[c.name] = v
            sets.append(f"{c.name} = {v}")
        return f"UPDATE {t.name} SET {', '.join(sets)} WHERE id = {rid}"

    def transactions(self) -> List[List[str]]:
        """The streamed part: a list of transactions, each a list of statements."""
        w = self.case.workload
        txs: List[List[str]] = []
        n = 0
        while n < w.changes:
            tx = []
            for _ in range(self.r.randint(1, w.max_tx)):
                stmt = self.change()
                if stmt:
                    tx.append(stmt)
                    n += 1
            if tx:
                txs.append(tx)
        for stmt in w.final_sql:
            txs.append([stmt])
        return txs


def _literal_number(lit: str) -> Optional[Decimal]:
    m = re.match(r"^(-?\d+(?:\.\d+)?)", lit)
    return Decimal(m.group(1)) if m else None


# =============================================================================
# Normalisation: PostgreSQL text and Debezium JSON to one canonical form
# =============================================================================

# PostgreSQL type OIDs -> (our kind, the Debezium schema types tidemark may write).
PG_TYPES = {
    16: ("bool", {("boolean", None)}),
    21: ("int", {("int16", None)}),
    23: ("int", {("int32", None)}),
    20: ("int", {("int64", None)}),
    700: ("float4", {("float", None)}),
    701: ("float8", {("double", None)}),
    # decimal_handling 'string' (what the harness asks for), or 'precise' (docs examples).
    1700: ("numeric", {("string", None), ("bytes", "org.apache.kafka.connect.data.Decimal"),
                       ("struct", "io.debezium.data.VariableScaleDecimal")}),
    25: ("text", {("string", None)}),
    1043: ("text", {("string", None)}),
    1042: ("text", {("string", None)}),
    19: ("text", {("string", None)}),
    1082: ("date", {("int32", "io.debezium.time.Date")}),
    1083: ("time", {("int64", "io.debezium.time.MicroTime"), ("int32", "io.debezium.time.Time")}),
    1114: ("timestamp", {("int64", "io.debezium.time.MicroTimestamp"),
                         ("int64", "io.debezium.time.Timestamp")}),
    1184: ("timestamptz", {("string", "io.debezium.time.ZonedTimestamp")}),
    1186: ("interval", {("int64", "io.debezium.time.MicroDuration")}),
    114: ("json", {("string", "io.debezium.data.Json")}),
    3802: ("json", {("string", "io.debezium.data.Json")}),
    2950: ("uuid", {("string", "io.debezium.data.Uuid")}),
    17: ("bytea", {("bytes", None)}),
}
PG_TYPE_NAMES = {16: "boolean", 21: "smallint", 23: "integer", 20: "bigint", 700: "real",
                 701: "double precision", 1700: "numeric", 25: "text", 1043: "varchar",
                 1042: "char", 19: "name", 1082: "date", 1083: "time", 1114: "timestamp",
                 1184: "timestamptz", 1186: "interval", 114: "json", 3802: "jsonb",
                 2950: "uuid", 17: "bytea"}


class Undecodable:
    """A value one side wrote that cannot be read as the expected type."""

    def __init__(self, raw, why: str):
        self.raw, self.why = raw, why

    def __repr__(self):
        return f"<undecodable {self.raw!r}: {self.why}>"

    def __eq__(self, other):
        return isinstance(other, Undecodable) and repr(self) == repr(other)

    def __hash__(self):
        return hash(repr(self))

    def __lt__(self, other):
        return repr(self) < repr(other)


def canon_float(x: float, digits: int):
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return 0.0
    return float(f"{x:.{digits}g}")


def _ts_text_to_us(text: str) -> int:
    """'2024-01-02 03:04:05.5' (optionally with +00 / +00:00 / Z / T) -> µs since 1970."""
    s = text.strip().replace("T", " ")
    tz = None
    m = re.match(r"^(.*?)(Z|[+-]\d\d(?::?\d\d)?)$", s)
    if m and re.search(r"\d\d:\d\d", m.group(1)):
        s, tz = m.group(1), m.group(2)
    m = re.match(r"^(-?\d+)-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d+))?$", s)
    if not m:
        raise ValueError(f"not a timestamp: {text!r}")
    y, mo, d, h, mi, sec = (int(g) for g in m.groups()[:6])
    frac = (m.group(7) or "").ljust(6, "0")[:6]
    days = date(y, mo, d).toordinal() - EPOCH_DATE.toordinal()
    us = ((days * 24 + h) * 60 + mi) * 60 + sec
    us = us * 1_000_000 + int(frac or 0)
    if tz and tz != "Z":
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        off = int(digits[:2]) * 3600 + (int(digits[2:4]) * 60 if len(digits) > 2 else 0)
        us -= sign * off * 1_000_000
    return us


def _time_text_to_us(text: str) -> int:
    m = re.match(r"^(\d\d):(\d\d):(\d\d)(?:\.(\d+))?$", text)
    if not m:
        raise ValueError(f"not a time: {text!r}")
    h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3))
    return ((h * 60 + mi) * 60 + s) * 1_000_000 + int((m.group(4) or "").ljust(6, "0")[:6] or 0)


def _iso_interval_to_us(text: str) -> int:
    """IntervalStyle iso_8601 ('P1Y2M3DT4H5M6.5S', fields may be negative) -> µs."""
    m = re.match(r"^P(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)D)?"
                 r"(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?\d+(?:\.\d+)?)S)?)?$", text)
    if not m:
        raise ValueError(f"not an ISO 8601 interval: {text!r}")
    y, mo, d, h, mi = (int(g) if g else 0 for g in m.groups()[:5])
    sec = Decimal(m.group(6)) if m.group(6) else Decimal(0)
    us = int((((h * 60 + mi) * 60) + sec) * 1_000_000)
    return (y * 12 + mo) * US_PER_MONTH + d * US_PER_DAY + us


def canon_json(text: str):
    return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))


def pg_value(kind: str, text: Optional[str]):
    """A PostgreSQL result value (its text form) in canonical form."""
    if text is None:
        return None
    try:
        if kind == "bool":
            return text == "t"
        if kind == "int":
            return int(text)
        if kind in ("float4", "float8"):
            return canon_float(float(text), 6 if kind == "float4" else 12)
        if kind == "numeric":
            return text
        if kind == "date":
            if text in ("infinity", "-infinity"):
                # Debezium's POSITIVE/NEGATIVE_INFINITY_LOCAL_DATE (docs/connectors/postgres.md).
                return -2147472692 if text == "infinity" else -2147472691
            return date.fromisoformat(text).toordinal() - EPOCH_DATE.toordinal()
        if kind in ("timestamp", "timestamptz"):
            return _ts_text_to_us(text)
        if kind == "time":
            return _time_text_to_us(text)
        if kind == "interval":
            return _iso_interval_to_us(text)
        if kind == "json":
            return canon_json(text)
        if kind == "bytea":
            return bytes.fromhex(text[2:])
        return text
    except (ValueError, InvalidOperation) as e:
        return Undecodable(text, f"PostgreSQL value: {e}")


def _decode_decimal(value, field_schema: dict) -> str:
    """Decimal text from any of Debezium's three decimal encodings."""
    if isinstance(value, str) and field_schema.get("type") == "string":
        return value
    if isinstance(value, dict):  # VariableScaleDecimal
        scale = int(value["scale"])
        raw = base64.b64decode(value["value"])
    elif isinstance(value, str):  # Decimal bytes, scale in the schema parameters
        scale = int((field_schema.get("parameters") or {}).get("scale", 0))
        raw = base64.b64decode(value)
    else:
        return str(value)
    unscaled = int.from_bytes(raw, "big", signed=True)
    d = Decimal(unscaled).scaleb(-scale)
    return f"{d:.{scale}f}" if scale > 0 else str(unscaled * 10 ** (-scale))


def tm_value(kind: str, value, field_schema: dict):
    """A value from tidemark's Debezium JSON in canonical form."""
    if value is None:
        return None
    name = field_schema.get("name")
    try:
        if kind == "bool":
            if not isinstance(value, bool):
                raise ValueError("expected a JSON boolean")
            return value
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError("expected a JSON integer")
            return value
        if kind in ("float4", "float8"):
            x = float(value) if not isinstance(value, str) else float(value.replace("Infinity",
                                                                                  "inf"))
            return canon_float(x, 6 if kind == "float4" else 12)
        if kind == "numeric":
            return _decode_decimal(value, field_schema)
        if kind == "date":
            return int(value)
        if kind in ("timestamp", "time"):
            if isinstance(value, str):
                raise ValueError("expected an integer")
            return int(value) * (1000 if name in ("io.debezium.time.Timestamp",
                                                   "io.debezium.time.Time") else 1)
        if kind == "timestamptz":
            return _ts_text_to_us(value)
        if kind == "interval":
            return int(value)
        if kind == "json":
            return canon_json(value)
        if kind == "bytea":
            return base64.b64decode(value)
        if not isinstance(value, str):
            raise ValueError("expected a JSON string")
        return value
    except (ValueError, TypeError, KeyError, InvalidOperation) as e:
        return Undecodable(value, f"as {kind}: {e}")


# =============================================================================
# The oracle: PostgreSQL's answer
# =============================================================================

@dataclass
class PgResult:
    names: List[str]
    oids: List[int]
    rows: Counter


def pg_answer(pg, db: str, query: str) -> PgResult:
    """Runs the query and returns its rows in canonical form (and its column types)."""
    import psycopg2
    import psycopg2.extensions as ext

    conn = pg.connect(db)
    try:
        # Every value as text, parsed here: psycopg2's own conversions lose
        # what we compare (a month in an interval, a numeric's scale).
        as_text = ext.new_type(tuple(PG_TYPES) + (1000, 1005, 1007, 1016, 1009),
                               "SQLHARNESS_TEXT", lambda v, cur: v)
        ext.register_type(as_text, conn)
        cur = conn.cursor()
        cur.execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; "
                    "SET IntervalStyle = 'iso_8601'; SET extra_float_digits = 3")
        try:
            cur.execute(query)
        except psycopg2.Error as e:
            raise CaseFailure(f"PostgreSQL rejected the oracle query (a mistake in the case, "
                              f"not in tidemark):\n{query}\n{e}") from None
        names = [d.name for d in cur.description]
        oids = [d.type_code for d in cur.description]
        for name, oid in zip(names, oids):
            if oid not in PG_TYPES:
                raise CaseFailure(f"the case's query returns column {name!r} of PostgreSQL "
                                  f"type oid {oid}, which the harness cannot compare; cast it "
                                  f"to one of: {', '.join(sorted(set(PG_TYPE_NAMES.values())))}")
        rows = Counter()
        for row in cur.fetchall():
            rows[tuple(pg_value(PG_TYPES[o][0], v) for o, v in zip(oids, row))] += 1
        return PgResult(names, oids, rows)
    finally:
        conn.close()


# =============================================================================
# tidemark's answer: the sink's changelog, folded
# =============================================================================

@dataclass
class Folded:
    names: Optional[List[str]]
    field_schemas: Optional[List[dict]]
    rows: Counter
    errors: List[str]
    events: int
    ops: Counter


def output_lines(out_dir: Path) -> List[Tuple[str, int, dict]]:
    """(file, line number, record) for every committed line the file sink wrote."""
    result = []
    files = sorted(out_dir.glob("*.jsonl"))
    for part_dir in sorted(p for p in out_dir.iterdir() if p.is_dir() and not
                           p.name.startswith(".")) if out_dir.exists() else []:
        files += sorted(part_dir.glob("part-*.jsonl"))
    for f in files:
        for n, rec in enumerate(read_jsonl(f), start=1):
            result.append((f.name, n, rec))
    return result


def fold(lines, kinds: Optional[List[str]], drop: Sequence[str] = (),
         volatile_seen: Optional[Dict[str, list]] = None) -> Folded:
    """Applies the changelog to an empty multiset.

    kinds: the canonical kind of each output column (from PostgreSQL's
    result types), by position.  drop: column names left out (volatile
    columns); their values go to volatile_seen[name].
    """
    rows: Counter = Counter()
    errors: List[str] = []
    names = schemas = None
    ops: Counter = Counter()
    events = 0

    def image(p, which, where):
        nonlocal names, schemas
        img = p.get(which)
        if not isinstance(img, dict):
            errors.append(f"{where}: op {p.get('op')!r} without a `{which}` image "
                          f"(got {json.dumps(img)})")
            return None
        if names is None:
            names = list(img)
        elif list(img) != names:
            errors.append(f"{where}: `{which}` has columns {list(img)}, earlier events had "
                          f"{names}")
            return None
        vals = []
        for i, (col, v) in enumerate(img.items()):
            if col in drop:
                if volatile_seen is not None and which == "after":
                    volatile_seen.setdefault(col, []).append(v)
                continue
            kind = kinds[i] if kinds and i < len(kinds) else "raw"
            fs = schemas[i] if schemas and i < len(schemas) else {}
            vals.append(tm_value(kind, v, fs) if kind != "raw" else _hashable(v))
        return tuple(vals)

    for fname, lineno, rec in lines:
        where = f"{fname}:{lineno}"
        p = rec.get("payload", rec) if isinstance(rec, dict) else None
        if not isinstance(p, dict) or "op" not in p:
            errors.append(f"{where}: not a Debezium envelope: {json.dumps(rec)[:200]}")
            continue
        if schemas is None and isinstance(rec.get("schema"), dict):
            schemas = _after_fields(rec["schema"])
        events += 1
        op = p["op"]
        ops[op] += 1
        if op == "m":
            # A logical decoding message a SELECT * pipeline passes on: not a row.
            continue
        if op in ("c", "r"):
            after = image(p, "after", where)
            if after is not None:
                rows[after] += 1
        elif op in ("u", "d"):
            before = image(p, "before", where)
            if before is not None:
                if rows[before] > 0:
                    rows[before] -= 1
                    if rows[before] == 0:
                        del rows[before]
                else:
                    rows.pop(before, None)
                    errors.append(f"{where}: op {op!r} retracts a row that is not in the "
                                  f"result: {fmt_row(before, _kept(kinds, names, drop))}")
            if op == "u":
                after = image(p, "after", where)
                if after is not None:
                    rows[after] += 1
        else:
            errors.append(f"{where}: unexpected op {op!r} in a query's output")
    return Folded(names, schemas, rows, errors, events, ops)


def _kept(kinds, names, drop) -> List[str]:
    if not kinds or not names:
        return []
    return [k for k, n in zip(kinds, names) if n not in drop]


def _after_fields(schema: dict) -> Optional[List[dict]]:
    for f in schema.get("fields", []):
        if f.get("field") == "after":
            return f.get("fields")
    return None


def _hashable(v):
    return json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v


# =============================================================================
# Comparing and reporting
# =============================================================================

class CaseFailure(AssertionError):
    pass


def fmt_value(v, kind: str = "") -> str:
    """A canonical value as a person reads it (times back as ISO text)."""
    if v is None:
        return "NULL"
    if isinstance(v, int) and not isinstance(v, bool):
        try:
            if kind in ("timestamp", "timestamptz"):
                t = EPOCH + timedelta(microseconds=v)
                return t.strftime("%Y-%m-%d %H:%M:%S.%f").rstrip("0").rstrip(".") + \
                    ("Z" if kind == "timestamptz" else "")
            if kind == "date":
                return (EPOCH_DATE + timedelta(days=v)).isoformat()
            if kind == "interval":
                return f"{v}µs (= {v / US_PER_DAY:g} days)"
            if kind == "time":
                return str(timedelta(microseconds=v))
        except OverflowError:
            pass
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, bytes):
        return "\\x" + v.hex()
    return repr(v)


def fmt_row(row, kinds: Optional[Sequence[str]] = None) -> str:
    kinds = list(kinds or [])
    return "(" + ", ".join(fmt_value(v, kinds[i] if i < len(kinds) else "")
                           for i, v in enumerate(row)) + ")"


def _sort_key(row):
    def one(v):
        if v is None:
            return (0, 0, "")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return (1, v, "")
        return (2, 0, repr(v))
    return tuple(one(v) for v in row)


def _diff_columns(a, b, names, kinds=None) -> List[str]:
    out = []
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            hint = ""
            if isinstance(x, str) and isinstance(y, str):
                try:
                    if Decimal(x) == Decimal(y):
                        hint = " (equal as numbers: the scale differs)"
                except InvalidOperation:
                    pass
            name = names[i] if names and i < len(names) else f"#{i + 1}"
            kind = kinds[i] if kinds and i < len(kinds) else ""
            out.append(f"{name}: PostgreSQL {fmt_value(x, kind)}, tidemark "
                       f"{fmt_value(y, kind)}{hint}")
    return out


def describe_difference(expected: Counter, got: Counter, names: List[str],
                        limit: int = 25, kinds: Optional[List[str]] = None) -> List[str]:
    """Lines that say which rows differ; pairs rows that share their first column."""
    missing = expected - got
    extra = got - expected
    lines = []
    if not missing and not extra:
        return lines
    lines.append(f"rows: PostgreSQL {sum(expected.values())}, tidemark {sum(got.values())}; "
                 f"{sum(missing.values())} missing from tidemark, {sum(extra.values())} extra "
                 f"in tidemark")
    lines.append(f"columns: ({', '.join(names)})")
    # Pair a missing row with an extra one that has the same first column
    # (the group key or id in most cases) when that pairing is unique.
    by_first_m: Dict[object, list] = {}
    by_first_e: Dict[object, list] = {}
    for r in missing:
        by_first_m.setdefault(r[:1], []).append(r)
    for r in extra:
        by_first_e.setdefault(r[:1], []).append(r)
    paired = set()
    pairs = []
    for k, ms in by_first_m.items():
        es = by_first_e.get(k, [])
        if len(ms) == 1 and len(es) == 1 and len(ms[0]) > 1:
            pairs.append((ms[0], es[0]))
            paired.update({("m", ms[0]), ("e", es[0])})
    if pairs:
        lines.append(f"differing rows, paired by their first column ({len(pairs)}):")
        for m, e in sorted(pairs, key=lambda p: _sort_key(p[0]))[:limit]:
            lines.append(f"  PostgreSQL {fmt_row(m, kinds)}")
            lines.append(f"  tidemark   {fmt_row(e, kinds)}")
            for d in _diff_columns(m, e, names, kinds):
                lines.append(f"      {d}")
    rest_m = [r for r in missing if ("m", r) not in paired]
    rest_e = [r for r in extra if ("e", r) not in paired]
    if rest_m:
        lines.append(f"missing (PostgreSQL has them, tidemark does not): {len(rest_m)} distinct")
        for r in sorted(rest_m, key=_sort_key)[:limit]:
            lines.append(f"  - {fmt_row(r, kinds)}" + (f" x{missing[r]}" if missing[r] > 1 else ""))
        if len(rest_m) > limit:
            lines.append(f"  ... and {len(rest_m) - limit} more")
    if rest_e:
        lines.append(f"extra (tidemark has them, PostgreSQL does not): {len(rest_e)} distinct")
        for r in sorted(rest_e, key=_sort_key)[:limit]:
            lines.append(f"  + {fmt_row(r, kinds)}" + (f" x{extra[r]}" if extra[r] > 1 else ""))
        if len(rest_e) > limit:
            lines.append(f"  ... and {len(rest_e) - limit} more")
    return lines


def type_mismatches(pg: PgResult, field_schemas: Optional[List[dict]],
                    names: Optional[List[str]]) -> List[str]:
    problems = []
    if names is not None and len(names) != len(pg.names):
        problems.append(f"tidemark wrote {len(names)} columns {names}, PostgreSQL returns "
                        f"{len(pg.names)} {pg.names}")
        return problems
    if names is not None:
        for i, (a, b) in enumerate(zip(pg.names, names)):
            if a != "?column?" and a != b:
                problems.append(f"column {i + 1} is named {b!r} in tidemark's output, "
                                f"{a!r} in PostgreSQL's")
    if field_schemas is None:
        return problems
    for i, (oid, fs) in enumerate(zip(pg.oids, field_schemas)):
        allowed = PG_TYPES[oid][1]
        got = (fs.get("type"), fs.get("name"))
        if got not in allowed:
            want = " or ".join(f"{t}" + (f" ({n})" if n else "") for t, n in sorted(
                allowed, key=str))
            problems.append(f"column {pg.names[i]!r}: PostgreSQL's type is "
                            f"{PG_TYPE_NAMES[oid]}, so Debezium {want}; tidemark wrote "
                            f"{got[0]}" + (f" ({got[1]})" if got[1] else ""))
    return problems


# =============================================================================
# Running a case
# =============================================================================

MODES = ("p1", "p2", "kill", "sp12", "sp21")
# The savepoint-rescale modes: parallelism before and after the savepoint.
RESCALE = {"sp12": (1, 2), "sp21": (2, 1)}


@dataclass
class CaseEnv:
    """Where a case runs: the server, its database, a directory, the binary."""
    pg: object
    db: str
    dir: Path
    bin: Path
    base_seed: int = DEFAULT_SEED
    nodeid: str = ""


class CaseRun:
    def __init__(self, case: Case, mode: str, env: CaseEnv):
        assert mode in MODES, mode
        self.case, self.mode, self.env = case, mode, env
        self.seed = case_seed(env.base_seed, case.name)
        self.parallelism = 1 if mode == "p1" else 2
        if mode in RESCALE:
            self.parallelism = RESCALE[mode][0]
        self.savepoint: Optional[Path] = None
        self.inspect_text = ""
        self.daemons: List[Tidemark] = []    # every daemon of the run, in order
        self.out_dir = env.dir / "out"
        self.info = RunInfo()
        self.kill_log: List[str] = []
        self.daemon: Optional[Tidemark] = None
        self.workload_sql: List[str] = []

    # -- names ------------------------------------------------------------------

    def slot(self, t: Table) -> str:
        return f"{self.env.db}_{t.name}"[:63]

    def sql(self, text: str) -> str:
        return self.env.pg.psql(text, db=self.env.db)

    # -- the job ----------------------------------------------------------------

    def job_text(self, parallelism: Optional[int] = None) -> str:
        parallelism = parallelism or self.parallelism
        parts = []
        for t in self.case.tables:
            opts = {"connector": "postgres-cdc", "dsn": self.env.pg.dsn(self.env.db),
                    "table": f"public.{t.name}", "slot": self.slot(t),
                    "publication": self.slot(t), "snapshot": "initial",
                    "heartbeat_interval": HEARTBEAT_INTERVAL}
            if self.case.bounded:
                opts["snapshot"] = "initial_only"
            if WATERMARKS and t.watermark:
                opts["watermark"] = t.watermark
            parts.append(create_table(t.name, opts, t.declared_columns()))
        parts.append(create_table("out", {"connector": "file", "path": str(self.out_dir),
                                          "format": "debezium-json",
                                          "decimal_handling": "string", "topic": "result"}))
        for v in self.case.views:
            parts.append(v.strip().rstrip(";") + ";")
        parts.append(f"INSERT INTO out {self.case.job_query()};")
        parts.append(f"SET checkpoint_interval = '{CHECKPOINT_INTERVAL}';")
        parts.append(f"SET parallelism = {parallelism};")
        parts.append("SET admin_address = '127.0.0.1:0';")
        for k, v in self.case.settings.items():
            parts.append(f"SET {k} = {v};")
        return "\n".join(parts) + "\n"

    # -- phases -----------------------------------------------------------------

    def setup_database(self, gen: WorkloadGen) -> None:
        ddl = "\n".join(t.ddl() for t in self.case.tables)
        self.workload_sql.append("-- tables and views")
        self.workload_sql += [ddl] + [v.strip().rstrip(";") + ";" for v in self.case.views]
        self.sql(ddl)
        for v in self.case.views:
            self.sql(v.strip().rstrip(";") + ";")
        initial = gen.initial()
        self.workload_sql.append("-- initial rows (read by the snapshot)")
        self.workload_sql += [s + ";" for s in initial]
        if initial:
            self.sql("BEGIN;\n" + ";\n".join(initial) + ";\nCOMMIT;")

    def apply(self, txs: List[List[str]], pause: float = 0.0,
              stop: Optional[threading.Event] = None) -> None:
        conn = self.env.pg.connect(self.env.db)
        conn.autocommit = False
        try:
            cur = conn.cursor()
            for tx in txs:
                for stmt in tx:
                    cur.execute(stmt)
                conn.commit()
                if pause:
                    time.sleep(pause)
        finally:
            conn.close()

    def end_lsn(self) -> int:
        return lsn_to_int(self.sql("SELECT pg_current_wal_lsn()"))

    def wait_caught_up(self, lsn: int, timeout: float = 90) -> None:
        """Until every source's slot confirmed a position at or past lsn."""
        slots = [self.slot(t) for t in self.case.tables]
        state = {}

        def caught_up():
            out = self.sql("SELECT slot_name, confirmed_flush_lsn FROM pg_replication_slots "
                           "WHERE slot_name IN (" + ", ".join(f"'{s}'" for s in slots) + ")")
            state.clear()
            for line in out.splitlines():
                name, confirmed = line.split("|")
                state[name] = confirmed
            return all(state.get(s) and lsn_to_int(state[s]) >= lsn for s in slots)

        try:
            wait_until(caught_up, timeout, "the sources to confirm the end of the workload",
                       self.daemon)
        except AssertionError as e:
            raise CaseFailure(f"{e}\nwanted LSN {lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}; the slots "
                              f"are at {state}") from None

    def wait_slots_ready(self, timeout: float = 60) -> None:
        slots = [self.slot(t) for t in self.case.tables]

        def ready():
            out = self.sql("SELECT count(*) FROM pg_replication_slots WHERE slot_name IN (" +
                           ", ".join(f"'{s}'" for s in slots) +
                           ") AND confirmed_flush_lsn IS NOT NULL")
            return int(out) == len(slots)

        wait_until(ready, timeout, f"the replication slots {slots} to be created", self.daemon)

    def start_daemon(self) -> None:
        if self.daemon is None:
            self.daemon = Tidemark(self.job_text(), self.env.dir / "tm", bin=self.env.bin)
            self.daemons.append(self.daemon)
        self.daemon.start()

    def run(self) -> None:
        """Plays the case; raises CaseFailure (or AssertionError) on any difference."""
        self.env.dir.mkdir(parents=True, exist_ok=True)
        gen = WorkloadGen(self.case, self.seed)
        self.setup_database(gen)
        txs = gen.transactions()
        self.workload_sql.append("-- streamed changes, one transaction per line group")
        for tx in txs:
            self.workload_sql += ["BEGIN;"] + [s + ";" for s in tx] + ["COMMIT;"]
        (self.env.dir / "workload.sql").write_text("\n".join(self.workload_sql) + "\n")

        if self.case.bounded:
            self._run_bounded(txs)
            return
        self.info.started = time.time()
        self.start_daemon()
        (self.env.dir / "job.sql").write_text(self.daemon.job_path.read_text())
        # The changes must come after the slots' consistent points: then they
        # are streamed (not all read by the snapshot), and a slot confirming
        # the workload's end also means its snapshot was committed, since a
        # checkpoint covers what the source emitted before.
        if not self.case.expect_failure:
            # (A case that expects a row error may fail before its slot shows.)
            self.wait_slots_ready()
        if self.mode == "kill":
            self._apply_with_kills(txs)
        elif self.mode in RESCALE:
            self._apply_through_savepoint(txs)
        else:
            self.apply(txs)
        self.info.finished = time.time()

        if self.case.expect_failure:
            self._check_expected_failure()
            return
        self.wait_caught_up(self.end_lsn())
        rc = self.daemon.terminate()
        if rc != 0:
            raise CaseFailure(f"tidemark exited with {rc} on SIGTERM (expected 0)")
        self.compare()

    def _run_bounded(self, txs: List[List[str]]) -> None:
        """A bounded case: the final tables read once; the job must end by itself.

        In the kill round the daemon is killed (kill -9) and restarted up to
        three times at random moments while it runs; each restart recovers
        from the last completed checkpoint and reads the tables again.
        """
        self.apply(txs)
        self.info.started = time.time()
        self.start_daemon()
        (self.env.dir / "job.sql").write_text(self.daemon.job_path.read_text())
        if self.mode == "kill":
            r = random.Random(self.seed ^ 0x5EED)
            for _ in range(3):
                time.sleep(r.uniform(0.05, 0.8))
                if self.daemon.poll() is not None:
                    break
                self.daemon.kill9()
                self.kill_log.append(f"kill -9 at {time.time() - self.info.started:.2f}s")
                time.sleep(r.uniform(0.0, 0.2))
                self.daemon.start()
        rc = self.daemon.wait_exit(120)
        self.info.finished = time.time()
        if rc != 0:
            raise CaseFailure(f"tidemark exited with {rc} at the end of its bounded input "
                              f"(expected 0)")
        self.compare()

    def oracle_only(self) -> PgResult:
        """The case's workload and query in PostgreSQL alone (no daemon): checks the case.

        Both the oracle query and the query tidemark would run must be valid
        PostgreSQL with comparable result types, and the workload must apply.
        """
        self.env.dir.mkdir(parents=True, exist_ok=True)
        gen = WorkloadGen(self.case, self.seed)
        self.setup_database(gen)
        self.apply(gen.transactions())
        if self.case.expect_failure or "on_error" in self.case.settings:
            # The query itself must fail in PostgreSQL too, for the same reason.
            try:
                pg_answer(self.env.pg, self.env.db, self.case.job_query())
            except CaseFailure as e:
                want = self.case.expect_failure or "division by zero"
                if want not in str(e):
                    raise
            else:
                raise CaseFailure(f"{self.case.name}: the query succeeds in PostgreSQL, so it "
                                  f"tests no row error")
            if self.case.expect_failure:
                return PgResult([], [], Counter())
        result = pg_answer(self.env.pg, self.env.db, self.case.pg_query())
        if (self.case.oracle_query and "on_error" not in self.case.settings
                and self.case.job_is_postgresql):
            pg_answer(self.env.pg, self.env.db, self.case.job_query())
        return result

    def _apply_with_kills(self, txs: List[List[str]]) -> None:
        """The workload in a thread, slowed a little; kill -9 and restart meanwhile."""
        r = random.Random(self.seed ^ 0x5EED)
        error: List[BaseException] = []

        def work():
            try:
                self.apply(txs, pause=0.02)
            except BaseException as e:  # reported below, in the test's thread
                error.append(e)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        while thread.is_alive():
            delay = r.uniform(0.3, 1.2) if r.random() > 0.2 else r.uniform(0.02, 0.25)
            thread.join(timeout=delay)
            if not thread.is_alive() and r.random() < 0.5:
                break
            self.daemon.assert_running("before a kill")
            self.daemon.kill9()
            self.kill_log.append(f"kill -9 at {time.time() - self.info.started:.2f}s")
            time.sleep(r.uniform(0.0, 0.3))
            self.daemon.start()
        thread.join()
        if error:
            raise error[0]

    def _apply_through_savepoint(self, txs: List[List[str]]) -> None:
        """Half the workload, stop with a savepoint, restore at the other parallelism, the rest.

        The second daemon has a job file that differs only in SET
        parallelism and runs as docs/operations.md's upgrade recipe says:
        `tidemark run job.sql --state-dir <the same> --from-savepoint P`.
        Its keyed state comes from the savepoint, redistributed over the new
        number of workers; it appends to the same file sink.  (The same
        state directory matters: a postgres-cdc source restored into a new
        one reads its tables again, see tests/sql/README.md.)
        """
        half = len(txs) // 2
        self.apply(txs[:half])
        self.wait_caught_up(self.end_lsn())
        # Relative: below the daemon's savepoint root, <state-dir>/savepoints.
        res = run_cli(["stop", "--savepoint", "--dir", "savepoints", "--state-dir",
                       str(self.daemon.state_dir)], timeout=120, bin=self.env.bin)
        if res.returncode != 0:
            raise CaseFailure(f"`tidemark stop --savepoint` exited with {res.returncode}: "
                              f"{res.stderr.strip()}\n{self.daemon.log_tail(3000)}")
        self.savepoint = Path(res.stdout.strip().splitlines()[-1])
        rc = self.daemon.wait_exit(60)
        if rc != 0:
            raise CaseFailure(f"tidemark exited with {rc} after stop --savepoint (expected 0)")
        self.kill_log.append(f"stopped with savepoint {self.savepoint} after {half} of "
                             f"{len(txs)} transactions")
        info = run_cli(["inspect", str(self.savepoint)], bin=self.env.bin)
        self.inspect_text = info.stdout
        if info.returncode != 0:
            raise CaseFailure(f"`tidemark inspect {self.savepoint}` exited with "
                              f"{info.returncode}: {info.stderr.strip()}")
        uids = re.findall(r"operator (\S+):", info.stdout)
        if re.search(r"\b(count|sum|min|max|avg|bool_and|bool_or|string_agg)\s*\(",
                     self.case.job_query(), re.I) and not any(u.startswith("agg/") for u in uids):
            raise CaseFailure(f"`tidemark inspect` lists no aggregation operator (agg/...) in "
                              f"the savepoint; it lists {uids}:\n{info.stdout}")
        after = RESCALE[self.mode][1]
        self.parallelism = after
        self.daemon = Tidemark(self.job_text(after), self.env.dir / "tm2", bin=self.env.bin)
        self.daemons.append(self.daemon)
        (self.env.dir / "job2.sql").write_text(self.daemon.job_path.read_text())
        first = self.daemons[0]
        self.daemon.start(["--from-savepoint", str(self.savepoint), "--state-dir",
                           str(first.state_dir)])
        self.apply(txs[half:])

    def _check_expected_failure(self) -> None:
        rc = self.daemon.wait_exit(timeout=60)
        log = self.daemon.log_text()
        if rc == 0:
            raise CaseFailure(f"tidemark exited with 0; a row error under on_error = 'fail' "
                              f"must stop the job with a non-zero exit code")
        if self.case.expect_failure.lower() not in log.lower():
            hint = (" (exit 2 is a configuration error: the job was rejected before it ran)"
                    if rc == 2 else "")
            raise CaseFailure(f"tidemark exited with {rc}{hint}, but its log does not say "
                              f"{self.case.expect_failure!r}")

    # -- comparison -------------------------------------------------------------

    def compare(self) -> None:
        oracle = pg_answer(self.env.pg, self.env.db, self.case.pg_query())
        kinds = [PG_TYPES[o][0] for o in oracle.oids]
        lines = output_lines(self.out_dir)
        volatile_seen: Dict[str, list] = {}
        drop = set(self.case.volatile)
        folded = fold(lines, kinds, drop, volatile_seen)
        keep = [i for i, n in enumerate(oracle.names) if n not in drop]
        expected = Counter()
        for row, n in oracle.rows.items():
            expected[tuple(row[i] for i in keep)] += n
        names = [oracle.names[i] for i in keep]
        problems = []
        if folded.errors:
            problems.append(f"the changelog does not fold ({len(folded.errors)} errors):")
            problems += ["  " + e for e in folded.errors[:20]]
            if len(folded.errors) > 20:
                problems.append(f"  ... and {len(folded.errors) - 20} more")
        types = type_mismatches(oracle, folded.field_schemas, folded.names)
        if types:
            problems.append("result columns differ from PostgreSQL's:")
            problems += ["  " + t for t in types]
        diff = describe_difference(expected, folded.rows, names,
                                   kinds=[kinds[i] for i in keep])
        problems += diff
        undecodable = [v for row in folded.rows for v in row if isinstance(v, Undecodable)]
        if undecodable:
            problems.append(f"values tidemark wrote that do not decode as PostgreSQL's type: "
                            f"{undecodable[:5]}")
        if self.case.post_check is not None:
            problems += self.case.post_check(self)
        for col, check in self.case.volatile.items():
            for v in volatile_seen.get(col, []):
                complaint = check(v, self.info)
                if complaint:
                    problems.append(f"column {col}: {complaint}")
                    break
        if not lines and expected:
            problems.append("tidemark's sink wrote no events at all")
        if problems:
            raise CaseFailure("\n".join(problems), ) from None
        kills = sum(k.startswith("kill") for k in self.kill_log)
        self.summary = (f"{sum(expected.values())} rows match after {folded.events} events "
                        f"({dict(folded.ops)}); {kills} kills, "
                        f"{sum(d.starts for d in self.daemons)} starts"
                        + (f", through savepoint {self.savepoint}" if self.savepoint else ""))

    # -- the report ---------------------------------------------------------------

    def rerun_command(self) -> str:
        target = self.env.nodeid or f"tests/sql/test_sql.py::test_sql_case[{self.case.name}-" \
                                    f"{self.mode}]"
        env = f"TIDEMARK_SQL_SEED={self.env.base_seed} "
        if self.mode == "kill" or (self.mode in RESCALE and not self.case.rescale_ci):
            env += "TIDEMARK_SQL_FULL=1 "
        return (f"{env}TIDEMARK_BIN={shlex.quote(str(self.env.bin))} /usr/bin/python3 -m pytest "
                f"{shlex.quote(target)}")

    def report(self, failure: BaseException) -> str:
        c = self.case
        how = f"parallelism {self.parallelism}"
        if self.mode in RESCALE:
            how = (f"parallelism {RESCALE[self.mode][0]}, stop --savepoint, restored at "
                   f"parallelism {RESCALE[self.mode][1]}")
        head = [
            f"SQL case {c.name!r} failed ({self.mode}: {how}"
            f"{', with kill -9s' if self.mode == 'kill' else ''})",
            f"seed {self.seed} (base seed {self.env.base_seed})",
        ]
        if c.note:
            head.append(f"about: {c.note}")
        head += ["", "query (tidemark: INSERT INTO out <query>):", _indent(c.job_query())]
        if c.oracle_query:
            head += ["PostgreSQL runs instead:", _indent(c.pg_query())]
        if c.views:
            head += ["views:"] + [_indent(v.strip()) for v in c.views]
        if c.settings:
            head.append("settings: " + ", ".join(f"{k} = {v}" for k, v in c.settings.items()))
        head += ["", str(failure).rstrip()]
        if self.kill_log:
            head += ["", "kills and stops: " + "; ".join(self.kill_log)]
        head += ["", "files:",
                 f"  job        {self.env.dir / 'job.sql'}",
                 f"  workload   {self.env.dir / 'workload.sql'} (replayable with psql)",
                 f"  daemon log {self.env.dir / 'tm' / 'stderr.log'}"
                 + (f" and {self.env.dir / 'tm2' / 'stderr.log'} (after the savepoint)"
                    if self.mode in RESCALE else ""),
                 f"  output     {self.out_dir}",
                 f"  database   {self.env.db} (dropped after the test)",
                 "rerun:", "  " + self.rerun_command()]
        if self.daemon is not None and "--- tidemark (" not in str(failure):
            head += ["", self.daemon.log_tail(3000)]
        text = "\n".join(head)
        try:
            (self.env.dir / "report.txt").write_text(text + "\n")
        except OSError:
            pass
        return text


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.strip().splitlines())


def run_case(case: Case, mode: str, env: CaseEnv) -> "CaseRun":
    """Runs one case in one mode; raises CaseFailure with the full report on a difference."""
    run = CaseRun(case, mode, env)
    try:
        run.run()
    except CaseFailure as e:
        raise CaseFailure(run.report(e)) from None
    except AssertionError as e:
        # The shared helpers' timeouts and "exited unexpectedly" messages.
        raise CaseFailure(run.report(e)) from None
    finally:
        for d in run.daemons:
            d.kill9()
    return run
