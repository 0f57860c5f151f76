#!/usr/bin/env python3
"""The crash harness for the mysql-cdc source: kill -9 tidemark, then compare with the truth.

A workload thread commits a random mix of inserts, updates, deletes,
multi-statement, rolled-back and large transactions to a real MariaDB 10.11
(tests/lib/mariadbserver.py) through one session of the server's own client,
while tidemark streams the binlog (snapshot = 'never') into two file sinks
with checkpoints (two-phase commit: commit = 'append' and commit = 'rename').
The harness kills tidemark with SIGKILL, restarts it, and does it again, with
the kinds of harness.py:

  timed        at a random moment (some right after start: during recovery)
  mid-tx       while the workload is inside a multi-statement transaction,
               or inside a large one (hundreds of rows, one binlog group)
  failpoint    at a named point (TIDEMARK_FAILPOINTS, kill@N or kill%P): the
               checkpoint's _metadata, the sinks' pre-commit and commit, the
               file sink's commit, a rows event arriving at the source

At the end the workload stops, a fence row is committed, tidemark starts one
last time, runs until the fence is in both sinks, and stops with SIGTERM.
mysql_checker.py then says whether each sink holds every committed change
exactly once, in commit order, with the right row images, and replays to the
database's final state.

    python3 tests/crash/mysql_harness.py --kills 200 --seed 7

The first start runs until a checkpoint completes before the workload
begins: with snapshot = 'never' the stream starts where the server is at the
first start, and the checkpoint is what later starts resume from.
"""

from __future__ import annotations

import contextlib
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
sys.path.insert(0, str(HERE))

import mysql_checker  # noqa: E402
from harness import FAILPOINTS, CrashRun, HarnessError, harness_main  # noqa: E402
from mariadbserver import MariaDbServer, _client_env  # noqa: E402
from tidemark import Tidemark, create_table  # noqa: E402

SOURCE = "shop"
TABLES = {
    # table: (key columns, DDL)
    "acct": (("id",), "id INT PRIMARY KEY, n INT, amount DECIMAL(14,4), memo VARCHAR(200), "
                      "ver BIGINT NOT NULL"),
    "items": (("k",), "k VARCHAR(20) PRIMARY KEY, qty BIGINT, note TEXT, ver BIGINT NOT NULL"),
    "fence": (("id",), "id INT PRIMARY KEY, token VARCHAR(64), ver BIGINT NOT NULL"),
}
SINKS = {"out": "append", "parts": "rename"}
# Its text depends on decimal_handling, not on delivery: the checker leaves it out.
SKIP = ("amount",)
MY_FAILPOINTS = FAILPOINTS + ["mysql.stream.rows"]
MEMOS = ["plain", "it's \"quoted\"", "back\\slash", "two\nlines", "tab\there", "ünïcødé",
         "emoji \U0001F600", "", None]


def sql_str(v: Optional[str]) -> str:
    if v is None:
        return "NULL"
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Session:
    """One session of the mariadb client: statements in, a marker line back when they are done."""

    def __init__(self, my: MariaDbServer, db: str):
        self.proc = subprocess.Popen(my.client_args(db=db) + ["--unbuffered"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, encoding="utf-8",
                                     env=_client_env())
        self.n = 0

    def run(self, sql: str) -> None:
        """Runs statements and returns once the server has answered all of them."""
        self.n += 1
        mark = f"SYNC{self.n}"
        self.proc.stdin.write(f"{sql}\nSELECT '{mark}';\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if line == "":
                raise RuntimeError(f"the mariadb client exited: {self.proc.stderr.read()}")
            if line.rstrip("\n") == mark:
                return

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.proc.stdin.close()
        self.proc.wait(30)


class Workload(threading.Thread):
    """Random transactions through one session; log holds the committed ones, in commit order."""

    def __init__(self, my: MariaDbServer, db: str, seed: int):
        super().__init__(name="mysql-workload", daemon=True)
        self.my = my
        self.db = db
        self.rng = random.Random(seed ^ 0x5EED)
        self.rows: Dict[str, Dict[tuple, dict]] = {t: {} for t in TABLES}
        self.log: List[List[mysql_checker.Change]] = []
        self.kinds: Counter = Counter()
        self.rolled_back = 0
        self.ver = 0
        self.error: Optional[BaseException] = None
        self.stop_event = threading.Event()
        self.in_tx = threading.Event()
        self.in_large_tx = threading.Event()
        self.session: Optional[Session] = None
        self.lock = threading.Lock()

    # -- the thread ------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self.session = Session(self.my, self.db)
            while not self.stop_event.is_set():
                kind = self.rng.choices(["single", "multi", "rollback", "large"],
                                        [6, 4, 1, 1])[0]
                self.kinds[kind] += 1
                getattr(self, f"_tx_{kind}")()
                time.sleep(self.rng.uniform(0, 0.01))
        except BaseException as e:  # noqa: BLE001 (reported by the harness)
            self.error = e
        finally:
            self.in_tx.clear()
            self.in_large_tx.clear()

    def finish(self, timeout: float = 60) -> None:
        self.stop_event.set()
        self.join(timeout)

    # -- changes ---------------------------------------------------------------------------

    def _next_ver(self) -> int:
        self.ver += 1
        return self.ver

    def _row(self, table: str, key: tuple) -> dict:
        v = self._next_ver()
        if table == "acct":
            return {"id": key[0], "n": self.rng.randint(-1000, 1000),
                    "amount": f"{self.rng.randint(-10**9, 10**9) / 10**4:.4f}",
                    "memo": self.rng.choice(MEMOS), "ver": v}
        return {"k": key[0], "qty": self.rng.randint(0, 2**40),
                "note": self.rng.choice(MEMOS), "ver": v}

    def _key(self, table: str) -> tuple:
        if table == "acct":
            return (self.rng.randint(1, 60),)
        return (f"k{self.rng.randint(1, 60):03d}",)

    def _change(self, table: str, key: tuple, pending: dict, out: list,
                stmts: list) -> None:
        """One random change of key, against the rows as this transaction left them."""
        cur = pending.get((table, key), self.rows[table].get(key))
        if cur is None:
            row = self._row(table, key)
            cols = ", ".join(row)
            vals = ", ".join(self._lit(table, c, row[c]) for c in row)
            stmts.append(f"INSERT INTO {table} ({cols}) VALUES ({vals});")
            out.append(mysql_checker.Change(table, "c", key, None, self._render(table, row)))
            pending[(table, key)] = row
        elif self.rng.random() < 0.3:
            kc = TABLES[table][0][0]
            stmts.append(f"DELETE FROM {table} WHERE {kc} = {self._lit(table, kc, key[0])};")
            out.append(mysql_checker.Change(table, "d", key, self._render(table, cur), None))
            pending[(table, key)] = None
        else:
            row = self._row(table, key)
            kc = TABLES[table][0][0]
            sets = ", ".join(f"{c} = {self._lit(table, c, row[c])}" for c in row if c != kc)
            stmts.append(f"UPDATE {table} SET {sets} WHERE {kc} = {self._lit(table, kc, key[0])};")
            out.append(mysql_checker.Change(table, "u", key, self._render(table, cur),
                                            self._render(table, row)))
            pending[(table, key)] = row

    @staticmethod
    def _lit(table: str, col: str, v) -> str:
        if v is None:
            return "NULL"
        if isinstance(v, str) and col != "amount":
            return sql_str(v)
        return str(v)

    @staticmethod
    def _render(table: str, row: dict) -> dict:
        """The row as tidemark's Debezium JSON (schemas off) shows it, amount aside."""
        return dict(row)

    def _apply(self, pending: dict) -> None:
        for (table, key), row in pending.items():
            if row is None:
                self.rows[table].pop(key, None)
            else:
                self.rows[table][key] = row

    def _commit_tx(self, stmts: list, changes: list, pending: dict, pauses: bool,
                   large: bool = False) -> None:
        if not pauses:
            self.session.run("BEGIN;\n" + "\n".join(stmts) + "\nCOMMIT;")
        else:
            self.in_tx.set()
            if large:
                self.in_large_tx.set()
            self.session.run("BEGIN;")
            for s in stmts:
                self.session.run(s)
                time.sleep(self.rng.uniform(0, 0.01))
            self.session.run("COMMIT;")
        with self.lock:
            self._apply(pending)
            self.log.append(changes)
        self.in_tx.clear()
        self.in_large_tx.clear()

    def _tx_single(self) -> None:
        table = self.rng.choice(["acct", "items"])
        stmts, changes, pending = [], [], {}
        self._change(table, self._key(table), pending, changes, stmts)
        self.session.run("\n".join(stmts))
        with self.lock:
            self._apply(pending)
            self.log.append(changes)

    def _tx_multi(self) -> None:
        stmts, changes, pending = [], [], {}
        for _ in range(self.rng.randint(2, 8)):
            table = self.rng.choice(["acct", "items"])
            self._change(table, self._key(table), pending, changes, stmts)
        self._commit_tx(stmts, changes, pending, pauses=True)

    def _tx_rollback(self) -> None:
        stmts, changes, pending = [], [], {}
        for _ in range(self.rng.randint(1, 5)):
            table = self.rng.choice(["acct", "items"])
            self._change(table, self._key(table), pending, changes, stmts)
        self.in_tx.set()
        self.session.run("BEGIN;\n" + "\n".join(stmts))
        time.sleep(self.rng.uniform(0, 0.02))
        self.session.run("ROLLBACK;")
        self.rolled_back += 1
        self.in_tx.clear()

    def _tx_large(self) -> None:
        stmts, changes, pending = [], [], {}
        for _ in range(self.rng.randint(200, 600)):
            table = self.rng.choice(["acct", "items"])
            self._change(table, self._key(table), pending, changes, stmts)
        # Sent in a few chunks, so that a kill can come while it is open.
        self.in_tx.set()
        self.in_large_tx.set()
        self.session.run("BEGIN;")
        step = max(1, len(stmts) // 4)
        for i in range(0, len(stmts), step):
            self.session.run("\n".join(stmts[i:i + step]))
        self.session.run("COMMIT;")
        with self.lock:
            self._apply(pending)
            self.log.append(changes)
        self.in_tx.clear()
        self.in_large_tx.clear()

    # -- the end ---------------------------------------------------------------------------

    def fence(self, token: str) -> int:
        """Commits the fence row (after finish()); returns its ver."""
        s = Session(self.my, self.db)
        try:
            row = {"id": 1, "token": token, "ver": self._next_ver()}
            had = self.rows["fence"].get((1,))
            if had is None:
                s.run(f"INSERT INTO fence VALUES (1, {sql_str(token)}, {row['ver']});")
                ch = mysql_checker.Change("fence", "c", (1,), None, row)
            else:
                s.run(f"UPDATE fence SET token = {sql_str(token)}, ver = {row['ver']} "
                      f"WHERE id = 1;")
                ch = mysql_checker.Change("fence", "u", (1,), had, row)
            self.rows["fence"][(1,)] = row
            self.log.append([ch])
            return row["ver"]
        finally:
            s.close()

    def database_state(self) -> Dict[str, Dict[tuple, dict]]:
        """Every table's rows as the server has them now, read with its own client."""
        state: Dict[str, Dict[tuple, dict]] = {}
        q = {
            "acct": "SELECT id, n, amount, HEX(memo), memo IS NULL, ver FROM acct",
            "items": "SELECT k, qty, HEX(note), note IS NULL, ver FROM items",
            "fence": "SELECT id, HEX(token), token IS NULL, ver FROM fence",
        }
        for table, sql in q.items():
            rows = {}
            for r in self.my.query(sql, db=self.db):
                if table == "acct":
                    row = {"id": int(r[0]), "n": None if r[1] is None else int(r[1]),
                           "amount": r[2], "memo": None if r[4] == "1" else
                           bytes.fromhex(r[3]).decode(), "ver": int(r[5])}
                    rows[(row["id"],)] = row
                elif table == "items":
                    row = {"k": r[0], "qty": None if r[1] is None else int(r[1]),
                           "note": None if r[3] == "1" else bytes.fromhex(r[2]).decode(),
                           "ver": int(r[4])}
                    rows[(row["k"],)] = row
                else:
                    row = {"id": int(r[0]), "token": None if r[2] == "1" else
                           bytes.fromhex(r[1]).decode(), "ver": int(r[3])}
                    rows[(row["id"],)] = row
            state[table] = rows
        return state


class MyCrashRun(CrashRun):
    """harness.CrashRun's kills and loop, on a MariaDB workload; no snapshot phase."""

    def __init__(self, my: MariaDbServer, workdir: Path, seed: int, kills: int,
                 checkpoint_interval: str = "300ms", deadline: float = 3600,
                 binary: Optional[Path] = None, out=print, **_ignored):
        super().__init__(None, workdir, seed, kills, snapshot_kills=0,
                         checkpoint_interval=checkpoint_interval, deadline=deadline,
                         binary=binary, out=out)
        self.my = my
        self.available = [n for n in MY_FAILPOINTS
                          if b"\0" + n.encode() + b"\0" in Path(self.binary).read_bytes()]
        self.server_id = 7000 + seed % 1000

    def topics(self) -> Dict[str, str]:
        return {t: f"{SOURCE}.{self.db}.{t}" for t in TABLES}

    def job_sql(self) -> str:
        statements = [create_table(SOURCE, {
            "connector": "mysql-cdc", "host": self.my.host, "port": self.my.port,
            "user": "root", "tables": f"{self.db}.*", "server_id": self.server_id,
            "snapshot": "never"})]
        for name, mode in SINKS.items():
            statements.append(create_table(name, {
                "connector": "file", "path": str(self.sink_dir(name)), "schemas": False,
                "commit": mode}))
            statements.append(f"INSERT INTO {name} SELECT * FROM {SOURCE};")
        return "\n".join(statements + [
            f"SET checkpoint_interval = '{self.checkpoint_interval}';",
            "SET admin_address = '127.0.0.1:0';",
            "",
        ])

    def setup(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.my.sql(f"DROP DATABASE IF EXISTS {self.db}; CREATE DATABASE {self.db};")
        for table, (_, ddl) in TABLES.items():
            self.my.sql(f"CREATE TABLE {table} ({ddl})", db=self.db)
        self.gen = Workload(self.my, self.db, self.seed)
        self.tm = Tidemark(self.job_sql(), self.workdir / "tm", bin=self.binary)
        # snapshot = 'never' starts where the server is: a first checkpoint pins that
        # position before any change is made, so every later start resumes from it.
        offset = self.tm.start_with()
        if not self.wait_log(offset, r'msg="completed" checkpoint=', timeout=60):
            raise HarnessError(f"the first start completed no checkpoint within 60 s\n"
                               f"{self.tm.log_tail()}")
        rc = self.tm.terminate(timeout=60)
        if rc != 0:
            raise HarnessError(f"the first start exited with {rc}\n{self.tm.log_tail()}")

    def _run(self):
        try:
            self.random_kills()
        finally:
            self.gen.finish()
        return self.finish()

    def finish(self):
        if self.gen.error is not None:
            raise HarnessError(f"the workload failed: {self.gen.error!r}")
        if self.gen.session is not None:
            self.gen.session.close()
        token = f"fence-{self.seed}-{self.kills}"
        fence_ver = self.gen.fence(token)
        self.say(f"workload stopped after {len(self.gen.log)} transactions "
                 f"({sum(len(t) for t in self.gen.log)} changes, {self.gen.rolled_back} "
                 f"rolled back; {dict(self.gen.kinds)}); fence ver={fence_ver}")
        offset = self.tm.start_with()
        needle = f'"ver":{fence_ver}'.encode()
        fence_topic = self.topics()["fence"]
        end = min(self.deadline, time.monotonic() + 300)

        def holds(sink: str) -> bool:
            base = self.sink_dir(sink) / fence_topic
            files = [Path(str(base) + ".jsonl")] if SINKS[sink] == "append" else \
                sorted(base.glob("part-*.jsonl"))
            return any(f.exists() and needle in f.read_bytes() for f in files)

        while not all(holds(s) for s in SINKS):
            if not self.tm.running():
                self.died_by_itself(offset, False)
            if time.monotonic() > end:
                raise HarnessError(f"the fence (ver {fence_ver}) did not reach every sink "
                                   f"within the time left\n{self.tm.log_tail()}")
            time.sleep(0.1)
        rc = self.tm.terminate(timeout=120)
        if rc != 0:
            raise HarnessError(f"tidemark exited with {rc} after SIGTERM\n{self.tm.log_tail()}")
        self.say(f"drained: the fence is in the output after {self.tm.starts} starts")
        final_state = self.gen.database_state()
        keys = {t: TABLES[t][0] for t in TABLES}
        report = mysql_checker.merge_reports({
            sink: mysql_checker.check(self.gen.log, self.sink_dir(sink), self.topics(), keys,
                                      final_state, mode, compare_skip=SKIP)
            for sink, mode in SINKS.items()})
        for table, rows in final_state.items():
            model = {k: {c: v for c, v in r.items() if c not in SKIP}
                     for k, r in self.gen.rows[table].items()}
            db = {k: {c: v for c, v in r.items() if c not in SKIP} for k, r in rows.items()}
            if model != db:
                report.add("harness error", f"the workload's model of {table} differs from the "
                                            f"database")
        log = self.tm.log_text()
        report.stats.update({
            "kills": f"{self.kills} ("
                     f"{', '.join(f'{k}: {v}' for k, v in sorted(self.kinds.items()))})",
            "starts": self.tm.starts,
            "checkpoints completed": log.count('msg="completed" checkpoint='),
            "seconds": f"{time.monotonic() - self.started:.0f}",
        })
        (self.workdir / "report.txt").write_text(report.text() + "\n")
        return report


def run_harness(my: MariaDbServer, workdir: Path, seed: int, kills: int, **kw):
    return MyCrashRun(my, workdir, seed, kills, **kw).run()


def main(argv=None) -> int:
    return harness_main(argv, __doc__, "mysql crash harness", "tidemark-mycrash-",
                        lambda workdir: MariaDbServer(), run_harness)


if __name__ == "__main__":
    sys.exit(main())
