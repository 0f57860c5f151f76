"""The crash harness's workload: a random mix of changes, and its ground truth.

A Generator thread writes to PostgreSQL through one connection, so the order
in which its transactions commit is the order in which it sees COMMIT return.
It keeps a model of every table (what the database holds, key by key) to pick
changes that always do something: an update of a row that exists and that
changes at least one column (every insert and update sets `ver` to a new,
globally unique number), a delete of a row that exists, an insert of a key
that does not.  Keys come from small spaces, so the same key is inserted,
updated and deleted again and again.

What it commits is appended to `log`, one Tx per transaction, in commit
order, with each change's key and the row it left behind (from RETURNING,
already rendered as tidemark renders it in Debezium JSON).  Rolled-back
transactions and savepoints that were rolled back leave nothing in the log.
That log, with the database's final state, is the ground truth the checker
compares the sink's output with.

Transaction kinds (weights in KIND_WEIGHTS):
  single     one change
  multi      2-10 changes over several tables, with short pauses between
             statements (a kill then lands while a transaction is open), and
             sometimes a SAVEPOINT whose changes are rolled back
  range      one UPDATE statement that changes a range of rows
  rollback   a multi-change transaction that ends in ROLLBACK
  large      hundreds of changes to the bulk table in several statements,
             more than logical_decoding_work_mem, so the server streams it
             to tidemark before it commits; sometimes rolled back
"""

from __future__ import annotations

import datetime
import json
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from tidemark import debezium_decimal  # noqa: E402

EPOCH = datetime.date(1970, 1, 1)


# -- tables -------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # int, text, bool, date, numeric
    scale: int = 0

    def render(self, value):
        """The value as tidemark writes it in Debezium JSON (schemas=false, precise decimals)."""
        if value is None:
            return None
        if self.kind == "int":
            return int(value)
        if self.kind == "numeric":
            return debezium_decimal(value, self.scale)
        if self.kind == "bool":
            return bool(value)
        if self.kind == "date":
            return (value - EPOCH).days
        return str(value)

    def fallback(self):
        """What Debezium (and so tidemark) writes for a NOT NULL column the source left out of a
        delete's before image (REPLICA IDENTITY DEFAULT): the type's zero (issue 10 row 1)."""
        return {"int": 0, "bool": False, "date": 0, "text": ""}.get(self.kind) \
            if self.kind != "numeric" else debezium_decimal(Decimal(0), self.scale)


@dataclass(frozen=True)
class Table:
    name: str
    columns: Tuple[Column, ...]
    key: Tuple[str, ...]
    ddl: str
    full_identity: bool = False
    not_null: Tuple[str, ...] = ()

    @property
    def column_names(self) -> List[str]:
        return [c.name for c in self.columns]

    def render_row(self, row: dict) -> dict:
        return {c.name: c.render(row[c.name]) for c in self.columns}

    def key_of(self, rendered: dict) -> tuple:
        return tuple(rendered[k] for k in self.key)

    def delete_before(self, rendered: dict) -> dict:
        """`before` of a delete: the whole row with REPLICA IDENTITY FULL, else the key, with
        Debezium's fallbacks in the other NOT NULL columns and null in the rest."""
        if self.full_identity:
            return dict(rendered)
        return {c.name: (rendered[c.name] if c.name in self.key
                         else c.fallback() if c.name in self.not_null else None)
                for c in self.columns}


def _cols(*spec) -> Tuple[Column, ...]:
    return tuple(Column(*s) for s in spec)


TABLES: Dict[str, Table] = {t.name: t for t in [
    Table("accounts",
          _cols(("id", "int"), ("balance", "numeric", 2), ("owner", "text"), ("active", "bool"),
                ("opened", "date"), ("ver", "int")),
          ("id",),
          "CREATE TABLE accounts (id int PRIMARY KEY, balance numeric(12,2) NOT NULL, owner text, "
          "active bool, opened date, ver bigint NOT NULL); "
          "ALTER TABLE accounts REPLICA IDENTITY FULL;",
          full_identity=True),
    Table("items",
          _cols(("sku", "text"), ("qty", "int"), ("price", "numeric", 3), ("note", "text"),
                ("ver", "int")),
          ("sku",),
          "CREATE TABLE items (sku text PRIMARY KEY, qty int NOT NULL, price numeric(10,3), "
          "note text, ver bigint NOT NULL);",
          not_null=("qty", "ver")),
    Table("ledger",
          _cols(("acct", "int"), ("n", "int"), ("amount", "numeric", 4), ("memo", "text"),
                ("ver", "int")),
          ("acct", "n"),
          "CREATE TABLE ledger (acct int, n int, amount numeric(14,4) NOT NULL, memo text, "
          "ver bigint NOT NULL, PRIMARY KEY (acct, n));",
          not_null=("amount", "ver")),
    Table("bulk",
          _cols(("id", "int"), ("payload", "text"), ("ver", "int")),
          ("id",),
          "CREATE TABLE bulk (id bigint PRIMARY KEY, payload text NOT NULL, ver bigint NOT NULL);",
          not_null=("payload", "ver")),
    # One row per fence: the harness's "everything up to here" marker.
    Table("fence",
          _cols(("id", "int"), ("token", "text"), ("ver", "int")),
          ("id",),
          "CREATE TABLE fence (id int PRIMARY KEY, token text NOT NULL, ver bigint NOT NULL);",
          not_null=("token", "ver")),
]}

# Tables whose keys the generator picks at random (bulk has its own key space).
SMALL_TABLES = ("accounts", "items", "ledger")

KIND_WEIGHTS = {"single": 40, "multi": 34, "range": 7, "rollback": 7, "large": 2}

# Text that exercises JSON escaping: quotes, backslashes, control characters,
# non-ASCII and a character outside the BMP.
ODD_TEXT = ['say "hi"', "back\\slash", "tab\tand\nnewline", "naïve café", "✓ 𝄞 ∑", "",
            "'single'", "{\"json\": [1, 2]}"]


# -- the log --------------------------------------------------------------------

@dataclass
class Change:
    table: str
    op: str                 # c, u, d (as Debezium names them)
    key: tuple
    after: Optional[dict]   # rendered row after the change; None for a delete
    before: Optional[dict]  # rendered row before it; None for an insert


@dataclass
class Tx:
    index: int              # position in commit order
    txid: int
    kind: str
    changes: List[Change] = field(default_factory=list)
    # The server's WAL insert position right after COMMIT returned: the
    # commit record ends at or before it (for reading tidemark's logs).
    lsn_after: str = ""

    def to_json(self) -> dict:
        return {"index": self.index, "txid": self.txid, "kind": self.kind,
                "lsn_after": self.lsn_after,
                "changes": [[c.table, c.op, list(c.key), c.after, c.before] for c in self.changes]}


class Model:
    """What the database holds, rendered, per table and key; with an undo log
    so that a rolled-back savepoint or transaction can be taken back."""

    def __init__(self):
        self.rows: Dict[str, Dict[tuple, dict]] = {name: {} for name in TABLES}
        self._undo: List[Tuple[str, tuple, Optional[dict]]] = []

    def get(self, table: str, key: tuple) -> Optional[dict]:
        return self.rows[table].get(key)

    def put(self, table: str, key: tuple, row: Optional[dict]) -> None:
        self._undo.append((table, key, self.rows[table].get(key)))
        if row is None:
            self.rows[table].pop(key, None)
        else:
            self.rows[table][key] = row

    def mark(self) -> int:
        return len(self._undo)

    def rollback_to(self, mark: int) -> None:
        while len(self._undo) > mark:
            table, key, old = self._undo.pop()
            if old is None:
                self.rows[table].pop(key, None)
            else:
                self.rows[table][key] = old

    def commit(self) -> None:
        self._undo.clear()


# -- the generator ----------------------------------------------------------------

class Generator(threading.Thread):
    """Writes random transactions until stopped or until max_tx; see the module docstring.

    Attributes the harness reads while it runs:
      in_tx        set while a transaction with several statements is open
      in_large_tx  set while a large (streamed) transaction is open and has
                   already written more than logical_decoding_work_mem
      log          committed transactions, in commit order
    """

    def __init__(self, connect, seed: int, bulk_rows: int, max_tx: int = 1_000_000,
                 pace: Tuple[float, float] = (0.002, 0.02), log_path: Optional[Path] = None):
        super().__init__(name="workload", daemon=True)
        self.connect = connect
        self.rng = random.Random(seed)
        self.bulk_rows = bulk_rows
        self.max_tx = max_tx
        self.pace = pace
        self.model = Model()
        self.log: List[Tx] = []
        self.log_lock = threading.Lock()
        self.ver = 0
        self.stop_event = threading.Event()
        self.in_tx = threading.Event()
        self.in_large_tx = threading.Event()
        self.error: Optional[BaseException] = None
        self.rolled_back = 0
        self.savepoints_rolled_back = 0
        self.kinds: Dict[str, int] = {k: 0 for k in KIND_WEIGHTS}
        self._log_file = open(log_path, "w") if log_path else None
        self.conn = None
        self.cur = None

    # -- setup, in the caller's thread ---------------------------------------------

    def create_schema(self) -> None:
        conn = self.connect()
        try:
            cur = conn.cursor()
            for t in TABLES.values():
                cur.execute(t.ddl)
        finally:
            conn.close()

    def populate(self) -> None:
        """The rows that exist before tidemark first starts (its snapshot reads them)."""
        self._open()
        try:
            self._begin("populate")
            for i in range(1, self.bulk_rows + 1, 2000):
                hi = min(i + 1999, self.bulk_rows)
                base = self.ver
                self.ver += hi - i + 1
                self.cur.execute(
                    "INSERT INTO bulk SELECT g, repeat(md5(g::text), 2), %s + g - %s "
                    "FROM generate_series(%s, %s) g RETURNING *", (base + 1, i, i, hi))
                for row in self.cur.fetchall():
                    self._record("bulk", "c", row)
            self._commit()
            for _ in range(60):
                self._begin("populate")
                self._random_change(self.rng.choice(SMALL_TABLES))
                self._commit()
        finally:
            self._close()

    # -- the thread ---------------------------------------------------------------

    def run(self) -> None:
        try:
            self._open()
            while not self.stop_event.is_set() and len(self.log) < self.max_tx:
                kind = self.rng.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()))[0]
                getattr(self, f"_tx_{kind}")()
                self.kinds[kind] += 1
                time.sleep(self.rng.uniform(*self.pace))
        except BaseException as e:  # Reported by finish(), in the harness's thread.
            self.error = e
        finally:
            self.in_tx.clear()
            self.in_large_tx.clear()
            self._close()

    def finish(self, timeout: float = 60) -> None:
        self.stop_event.set()
        self.join(timeout)
        if self.is_alive():
            raise AssertionError("the workload generator did not stop")
        if self.error is not None:
            raise AssertionError(f"the workload generator failed: {self.error!r}") from self.error

    def fence(self, token: str, also: Sequence[str] = ()) -> Tx:
        """Commits a fence row, and a change to each table in `also` (so that every
        job source sees the fence transaction), after the generator stopped."""
        self._open()
        try:
            self._begin("fence")
            n = len(self.model.rows["fence"]) + 1
            self.ver += 1
            self.cur.execute("INSERT INTO fence VALUES (%s, %s, %s) RETURNING *",
                             (n, token, self.ver))
            self._record("fence", "c", self.cur.fetchone())
            for table in also:
                self._random_change(table, allow_delete=False)
            return self._commit()
        finally:
            self._close()

    # -- transactions ---------------------------------------------------------------

    def _tx_single(self) -> None:
        self._begin("single")
        self._random_change(self._pick_table())
        self._commit()

    def _tx_multi(self) -> None:
        self._begin("multi")
        self.in_tx.set()
        n = self.rng.randint(2, 10)
        savepoint_at = self.rng.randint(1, n - 1) if self.rng.random() < 0.2 else None
        for i in range(n):
            if i == savepoint_at:
                self._rolled_back_savepoint()
            self._random_change(self._pick_table())
            self._pause()
        self._commit()

    def _tx_range(self) -> None:
        self._begin("range")
        table = self.rng.choice(["accounts", "bulk"])
        key_hi = 40 if table == "accounts" else self.bulk_rows
        lo = self.rng.randint(1, key_hi)
        hi = min(key_hi, lo + self.rng.randint(1, 12))
        base = self.ver
        self.ver += hi - lo + 1
        if table == "accounts":
            self.cur.execute(
                "UPDATE accounts SET balance = balance + 1.25, ver = %s + id "
                "WHERE id BETWEEN %s AND %s RETURNING *", (base - lo + 1, lo, hi))
        else:
            self.cur.execute(
                "UPDATE bulk SET payload = 'range ' || %s, ver = %s + id "
                "WHERE id BETWEEN %s AND %s RETURNING *", (str(base), base - lo + 1, lo, hi))
        for row in self.cur.fetchall():
            self._record(table, "u", row)
        self._commit()

    def _tx_rollback(self) -> None:
        self._begin("rollback")
        self.in_tx.set()
        for _ in range(self.rng.randint(1, 6)):
            self._random_change(self._pick_table())
            self._pause()
        self._rollback()

    def _tx_large(self) -> None:
        """Hundreds of bulk updates in a few statements: streamed before commit."""
        self._begin("large")
        self.in_tx.set()
        statements = self.rng.randint(2, 4)
        for s in range(statements):
            lo = self.rng.randint(1, max(1, self.bulk_rows - 200))
            hi = min(self.bulk_rows, lo + 150)
            base = self.ver
            self.ver += hi - lo + 1
            # About 150 rows of 200 bytes per statement: two statements pass 64kB.
            self.cur.execute(
                "UPDATE bulk SET payload = repeat(md5((%s + id)::text), 6), ver = %s + id "
                "WHERE id BETWEEN %s AND %s RETURNING *", (base, base - lo + 1, lo, hi))
            for row in self.cur.fetchall():
                self._record("bulk", "u", row)
            if s >= 1:
                self.in_large_tx.set()
            self._pause(0.05)
        if self.rng.random() < 0.25:
            self._rollback()
        else:
            self._commit()

    def _rolled_back_savepoint(self) -> None:
        self.cur.execute("SAVEPOINT sp")
        mark = self.model.mark()
        pending = len(self._pending)
        for _ in range(self.rng.randint(1, 3)):
            self._random_change(self._pick_table())
        self.cur.execute("ROLLBACK TO SAVEPOINT sp")
        self.model.rollback_to(mark)
        del self._pending[pending:]
        self.savepoints_rolled_back += 1

    # -- changes ---------------------------------------------------------------------

    def _pick_table(self) -> str:
        return "bulk" if self.rng.random() < 0.15 else self.rng.choice(SMALL_TABLES)

    def _random_key(self, table: str) -> tuple:
        r = self.rng
        if table == "accounts":
            return (r.randint(1, 40),)
        if table == "items":
            return (f"sku-{r.randint(0, 39):02d}",)
        if table == "ledger":
            return (r.randint(1, 8), r.randint(1, 6))
        # Bulk: mostly a handful of hot keys, so they see many changes.
        return (r.randint(1, 30) if r.random() < 0.7 else r.randint(1, self.bulk_rows),)

    def _random_change(self, table: str, allow_delete: bool = True) -> None:
        key = self._random_key(table)
        exists = self.model.get(table, key) is not None
        if not exists:
            self._insert_row(table, key)
        elif allow_delete and self.rng.random() < 0.3:
            self._delete_row(table, key)
        else:
            self._update_row(table, key)

    def _values(self, table: str) -> dict:
        """Fresh values for every non-key column; `ver` alone makes them differ from before."""
        r = self.rng
        self.ver += 1
        text = (lambda: r.choice(ODD_TEXT) if r.random() < 0.2
                else "".join(r.choice("abcdefghij ") for _ in range(r.randint(0, 24))))
        if table == "accounts":
            return {"balance": Decimal(r.randint(-10**9, 10**9)) / 100,
                    "owner": None if r.random() < 0.15 else text(),
                    "active": None if r.random() < 0.1 else r.random() < 0.5,
                    "opened": None if r.random() < 0.1
                    else EPOCH + datetime.timedelta(days=r.randint(-5000, 25000)),
                    "ver": self.ver}
        if table == "items":
            return {"qty": r.randint(-1000, 100000),
                    "price": None if r.random() < 0.15 else Decimal(r.randint(0, 10**8)) / 1000,
                    "note": None if r.random() < 0.3 else text(),
                    "ver": self.ver}
        if table == "ledger":
            return {"amount": Decimal(r.randint(-10**12, 10**12)) / 10000,
                    "memo": None if r.random() < 0.3 else text(),
                    "ver": self.ver}
        return {"payload": text() + f" v{self.ver}", "ver": self.ver}

    def _insert_row(self, table: str, key: tuple) -> None:
        t = TABLES[table]
        row = dict(zip(t.key, key))
        row.update(self._values(table))
        cols = t.column_names
        self.cur.execute(
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))}) "
            f"RETURNING *", [row[c] for c in cols])
        self._record(table, "c", self.cur.fetchone())

    def _update_row(self, table: str, key: tuple) -> None:
        t = TABLES[table]
        values = self._values(table)
        # Sometimes only some columns change (ver always does).
        names = [n for n in values if n == "ver" or self.rng.random() < 0.6]
        sets = ", ".join(f"{n} = %s" for n in names)
        where = " AND ".join(f"{k} = %s" for k in t.key)
        self.cur.execute(f"UPDATE {table} SET {sets} WHERE {where} RETURNING *",
                         [values[n] for n in names] + list(key))
        row = self.cur.fetchone()
        assert row is not None, f"update of {table}{key} found no row; the model is wrong"
        self._record(table, "u", row)

    def _delete_row(self, table: str, key: tuple) -> None:
        t = TABLES[table]
        where = " AND ".join(f"{k} = %s" for k in t.key)
        self.cur.execute(f"DELETE FROM {table} WHERE {where} RETURNING *", list(key))
        row = self.cur.fetchone()
        assert row is not None, f"delete of {table}{key} found no row; the model is wrong"
        self._record(table, "d", row)

    def _record(self, table: str, op: str, row: tuple) -> None:
        t = TABLES[table]
        names = [d[0] for d in self.cur.description]
        rendered = t.render_row(dict(zip(names, row)))
        key = t.key_of(rendered)
        before = self.model.get(table, key)
        after = None if op == "d" else rendered
        if op == "c":
            assert before is None, f"insert of {table}{key} over an existing row"
        self.model.put(table, key, after)
        self._pending.append(Change(table, op, key, after, before))

    # -- transaction plumbing ------------------------------------------------------------

    def _open(self) -> None:
        self.conn = self.connect()  # autocommit: BEGIN/COMMIT are ours
        self.cur = self.conn.cursor()
        self._pending: List[Change] = []

    def _close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = self.cur = None

    def _begin(self, kind: str) -> None:
        self.cur.execute("BEGIN")
        self.cur.execute("SELECT txid_current()")
        self._txid = self.cur.fetchone()[0]
        self._kind = kind
        self._pending = []

    def _commit(self) -> Tx:
        self.cur.execute("COMMIT")
        self.cur.execute("SELECT pg_current_wal_insert_lsn()")
        lsn_after = self.cur.fetchone()[0]
        self.model.commit()
        with self.log_lock:
            tx = Tx(len(self.log), self._txid, self._kind, self._pending, lsn_after)
            self.log.append(tx)
        if self._log_file is not None:
            self._log_file.write(json.dumps(tx.to_json()) + "\n")
            self._log_file.flush()
        self._pending = []
        self.in_tx.clear()
        self.in_large_tx.clear()
        return tx

    def _rollback(self) -> None:
        self.cur.execute("ROLLBACK")
        self.model.rollback_to(0)
        self._pending = []
        self.rolled_back += 1
        self.in_tx.clear()
        self.in_large_tx.clear()

    def _pause(self, upto: float = 0.015) -> None:
        time.sleep(self.rng.uniform(0, upto))

    # -- the truth at the end --------------------------------------------------------------

    def database_state(self) -> Dict[str, Dict[tuple, dict]]:
        """Every table as the database holds it now, rendered like the model."""
        conn = self.connect()
        try:
            cur = conn.cursor()
            state = {}
            for name, t in TABLES.items():
                cur.execute(f"SELECT * FROM {name}")
                names = [d[0] for d in cur.description]
                rows = {}
                for row in cur.fetchall():
                    rendered = t.render_row(dict(zip(names, row)))
                    rows[t.key_of(rendered)] = rendered
                state[name] = rows
            return state
        finally:
            conn.close()

    def close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
