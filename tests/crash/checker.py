"""Compares what the file sink committed with the workload's ground truth.

Checks, each reported with the table, the key and the events involved:

1. **The snapshot is one consistent cut.**  The `r` events must equal the
   database's state after some prefix of the committed transactions (the
   slot's consistent point), at or before the first transaction that was
   streamed.  Everything committed before the cut is in the snapshot,
   everything after it in the stream.
2. **Every committed change exactly once, in commit order per key.**  For
   each key the expected events are its snapshot row (if it had one at the
   cut) followed by every change of a transaction after the cut, in commit
   order.  The events in the output must be exactly those: none missing,
   none twice, none that was never committed (a rolled-back transaction or
   savepoint), in the same order.  An event is identified by its operation,
   its transaction id and the row it carries (`ver` makes each row unique).
3. **Transactions in commit order overall.**  Along each output file of a
   pipeline without keyed operators the transactions appear in the order
   they committed.  (Keyed pipelines spread keys over worker threads, so
   only the order per key is promised there.)
4. **Row images.**  `after` is the row the change left; `before` is the old
   row (REPLICA IDENTITY FULL, or any table behind the upsert operator,
   which keeps the last row of every key), the key only (a delete under
   DEFAULT) or null (an update under DEFAULT).
5. **Replay reproduces the database.**  Applying the output (c/r/u upsert
   `after`, d deletes the key) gives the database's final state row for row.

Each job source has its own slot, so its own snapshot and cut: a Group names
a source and its tables.  The functions take plain data (the workload's Tx
log, a {table: rows} state and the output events), so test_checker.py can
feed them crafted outputs.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from workload import TABLES, Tx

# How many examples of each kind of difference a report shows.
MAX_EXAMPLES = 12


@dataclass(frozen=True)
class Group:
    """One source of the job: its name (the topic prefix), its tables, and
    whether its pipeline runs through the keyed upsert operator."""
    source: str
    tables: Tuple[str, ...]
    keyed: bool = False

    def topic_file(self, table: str) -> str:
        return f"{self.source}.public.{table}.jsonl"


@dataclass
class Event:
    """One line of the sink's output."""
    table: str
    op: str
    txid: Optional[int]
    lsn: Optional[int]
    key: tuple
    before: Optional[dict]
    after: Optional[dict]
    where: str  # file:line

    @property
    def ident(self) -> tuple:
        return ident(self.op, self.txid, self.after)

    def describe(self) -> str:
        row = self.after if self.after is not None else self.before
        return (f"{self.op} txId={self.txid} lsn={self.lsn} ver={_ver(row)} at {self.where}")


def ident(op: str, txid: Optional[int], after: Optional[dict]) -> tuple:
    # A snapshot read has no transaction; a delete has no after (its txId and
    # position among the key's events identify it).
    return (op, txid if op != "r" else None,
            json.dumps(after, sort_keys=True) if after is not None else None)


def _ver(row: Optional[dict]):
    return None if row is None else row.get("ver")


def _payload(record: dict) -> dict:
    if "value" in record and "key" in record:
        record = record["value"]
    if "payload" in record and "schema" in record:
        record = record["payload"]
    return record


def read_output(out_dir: Path, groups: Sequence[Group], layout: str = "append"
                ) -> Tuple[Dict[str, List[Event]], List[str]]:
    """{table: events in commit order} from a file sink's directory, and problems found.

    layout "append" (commit = 'append'): one <source>.public.<table>.jsonl per
    topic; "rename" (commit = 'rename'): <source>.public.<table>/part-<N>.jsonl,
    one file per committed epoch, in name order.
    """
    events: Dict[str, List[Event]] = {}
    problems: List[str] = []
    for group in groups:
        for name in group.tables:
            events[name] = []
            topic = Path(out_dir) / group.topic_file(name)
            if layout == "append":
                files = [topic] if topic.exists() else []
            else:
                files = sorted(topic.with_suffix("").glob("part-*.jsonl"))
            for path in files:
                _read_file(path, name, events[name], problems)
    return events, problems


def _read_file(path: Path, name: str, evs: List[Event], problems: List[str]) -> None:
    t = TABLES[name]
    where_name = f"{path.parent.name}/{path.name}" if path.name.startswith("part-") else path.name
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        torn = len(data) - data.rfind(b"\n") - 1
        problems.append(f"{where_name}: the file ends in a torn line ({torn} bytes after the "
                        f"last newline)")
        data = data[:data.rfind(b"\n") + 1]
    for number, line in enumerate(data.decode("utf-8").split("\n"), start=1):
        if not line:
            continue
        where = f"{where_name}:{number}"
        try:
            p = _payload(json.loads(line))
        except json.JSONDecodeError as e:
            problems.append(f"{where}: not valid JSON ({e}): {line[:200]!r}")
            continue
        src = p.get("source") or {}
        image = p.get("after") or p.get("before") or {}
        evs.append(Event(name, p.get("op"), src.get("txId"), src.get("lsn"),
                         tuple(image.get(k) for k in t.key), p.get("before"), p.get("after"),
                         where))


# -- expected events -------------------------------------------------------------------

@dataclass
class Expected:
    op: str
    txid: Optional[int]
    tx_index: int  # -1 for a snapshot read
    after: Optional[dict]
    before: Optional[dict]

    @property
    def ident(self) -> tuple:
        return ident(self.op, self.txid, self.after)

    lsn_after: str = ""

    def describe(self) -> str:
        row = self.after if self.after is not None else self.before
        where = ("snapshot" if self.op == "r" else f"tx #{self.tx_index}" +
                 (f", committed by {self.lsn_after}" if self.lsn_after else ""))
        return f"{self.op} txId={self.txid} ver={_ver(row)} ({where})"


@dataclass
class Report:
    problems: Dict[str, List[str]] = field(default_factory=lambda: defaultdict(list))
    counts: Counter = field(default_factory=Counter)
    stats: Dict[str, object] = field(default_factory=dict)

    def add(self, kind: str, text: str) -> None:
        self.counts[kind] += 1
        if len(self.problems[kind]) < MAX_EXAMPLES:
            self.problems[kind].append(text)

    @property
    def ok(self) -> bool:
        return not self.counts

    def text(self) -> str:
        lines = []
        if self.ok:
            lines.append("output matches the ground truth")
        for kind in sorted(self.counts):
            lines.append(f"{kind}: {self.counts[kind]}")
            lines.extend(f"    {p}" for p in self.problems[kind])
            if self.counts[kind] > len(self.problems[kind]):
                lines.append(f"    ... and {self.counts[kind] - len(self.problems[kind])} more")
        for k, v in self.stats.items():
            lines.append(f"{k}: {v}")
        return "\n".join(lines)


def _find_cut(log: Sequence[Tx], group: Group, snapshot: Dict[str, Dict[tuple, dict]],
              first_streamed: int, report: Report) -> int:
    """The prefix of the log whose state the group's snapshot shows (check 1)."""
    state: Dict[str, Dict[tuple, dict]] = {name: {} for name in group.tables}
    # Keys where state and snapshot differ; the cut is where there are none.
    differ = {(table, key) for table, rows in snapshot.items() for key in rows}
    candidates = [0] if not differ else []
    for i in range(first_streamed):
        for ch in log[i].changes:
            if ch.table not in state:
                continue
            rows = state[ch.table]
            if ch.after is None:
                rows.pop(ch.key, None)
            else:
                rows[ch.key] = ch.after
            if rows.get(ch.key) == snapshot[ch.table].get(ch.key):
                differ.discard((ch.table, ch.key))
            else:
                differ.add((ch.table, ch.key))
        if not differ:
            candidates.append(i + 1)
    if candidates:
        return candidates[-1]
    report.add("snapshot is not a consistent cut",
               f"source {group.source}: the snapshot rows equal the database state after no "
               f"prefix of the {first_streamed} transactions before the first streamed one; "
               f"against the state just before it, {len(differ)} keys differ, e.g. " +
               "; ".join(f"{t}{k}: snapshot {snapshot[t].get(k)} vs {state[t].get(k)}"
                         for t, k in sorted(differ, key=str)[:5]))
    return first_streamed


def _expected_before(group: Group, ch) -> Optional[dict]:
    t = TABLES[ch.table]
    if ch.op == "c":
        return None
    if group.keyed or t.full_identity:
        # The upsert operator fills `before` from its state: the whole old row.
        return ch.before
    return t.delete_before(ch.before) if ch.op == "d" else None


def check(log: Sequence[Tx], events: Dict[str, List[Event]],
          final_state: Dict[str, Dict[tuple, dict]], groups: Sequence[Group]) -> Report:
    report = Report()
    for group in groups:
        _check_group(report, log, group, events, final_state)
    return report


def _check_group(report: Report, log: Sequence[Tx], group: Group,
                 all_events: Dict[str, List[Event]],
                 final_state: Dict[str, Dict[tuple, dict]]) -> None:
    events = {name: all_events.get(name, []) for name in group.tables}
    tx_by_id = {tx.txid: tx for tx in log}
    label_prefix = f"{group.source}: "

    # -- 1. the snapshot cut
    snapshot: Dict[str, Dict[tuple, dict]] = {name: {} for name in group.tables}
    first_streamed = len(log)
    for table, evs in events.items():
        for e in evs:
            if e.op == "r":
                snapshot[table].setdefault(e.key, e.after)
            elif e.txid in tx_by_id:
                first_streamed = min(first_streamed, tx_by_id[e.txid].index)
    n_snapshot = sum(len(r) for r in snapshot.values())
    reads = Counter((table, e.key) for table, evs in events.items() for e in evs if e.op == "r")
    if reads and max(reads.values()) > 1:
        report.stats[label_prefix + "snapshot read more than once"] = (
            f"{sum(1 for n in reads.values() if n > 1)} keys have up to "
            f"{max(reads.values())} snapshot reads (a snapshot emitted again after it was "
            f"committed?)")
    cut = _find_cut(log, group, snapshot, first_streamed, report) if n_snapshot else 0
    report.stats[label_prefix + "snapshot"] = (
        f"{n_snapshot} rows, consistent with the state after {cut} of {len(log)} transactions")

    # -- expected events per key
    expected: Dict[Tuple[str, tuple], List[Expected]] = defaultdict(list)
    state: Dict[str, Dict[tuple, dict]] = {name: {} for name in group.tables}
    for tx in log[:cut]:
        for ch in tx.changes:
            if ch.table not in state:
                continue
            if ch.after is None:
                state[ch.table].pop(ch.key, None)
            else:
                state[ch.table][ch.key] = ch.after
    if n_snapshot:
        for table, rows in state.items():
            for key, row in rows.items():
                expected[(table, key)].append(Expected("r", None, -1, row, None))
    n_changes = 0
    for tx in log[cut:]:
        for ch in tx.changes:
            if ch.table not in state:
                continue
            expected[(ch.table, ch.key)].append(
                Expected(ch.op, tx.txid, tx.index, ch.after, _expected_before(group, ch),
                         tx.lsn_after))
            n_changes += 1

    # -- output events per key, and check 3 along each file
    actual: Dict[Tuple[str, tuple], List[Event]] = defaultdict(list)
    for table, evs in events.items():
        last_index, last_event = -1, None
        for e in evs:
            actual[(table, e.key)].append(e)
            if e.op == "r" or e.txid not in tx_by_id or group.keyed:
                continue  # an event nobody committed is reported per key below
            index = tx_by_id[e.txid].index
            if index < last_index:
                report.add("out of commit order",
                           f"{table}: {e.describe()} (tx #{index}) comes after "
                           f"{last_event.describe()} (tx #{last_index})")
            else:
                last_index, last_event = index, e
    report.stats[label_prefix + "events"] = (
        f"{sum(len(v) for v in events.values())} in the output; expected {n_snapshot} "
        f"snapshot reads and {n_changes} changes")

    # -- 2. and 4. per key
    for table_key in sorted(set(expected) | set(actual), key=lambda k: (k[0], str(k[1]))):
        table, key = table_key
        exp = expected.get(table_key, [])
        act = actual.get(table_key, [])
        label = f"{table} key={_key_text(key)}"
        if [x.ident for x in exp] != [e.ident for e in act]:
            _diagnose(report, label, exp, act)
            continue
        for x, e in zip(exp, act):
            if x.op != "r" and e.before != x.before:
                report.add("wrong before image",
                           f"{label}: {e.describe()}: before={e.before}, expected {x.before}")

    # -- 5. replay
    for table, evs in events.items():
        replayed: Dict[tuple, dict] = {}
        for e in evs:
            if e.op in ("c", "r", "u"):
                replayed[e.key] = e.after
            elif e.op == "d":
                replayed.pop(e.key, None)
            else:
                report.add("unexpected operation", f"{table}: {e.describe()}")
        want = final_state.get(table, {})
        for key in sorted(set(want) | set(replayed), key=str):
            if want.get(key) != replayed.get(key):
                report.add("replay differs from the database",
                           f"{table} key={_key_text(key)}: database has {want.get(key)}, "
                           f"replaying the output gives {replayed.get(key)}")


def _key_text(key: tuple) -> str:
    return str(key[0]) if len(key) == 1 else str(key)


def _diagnose(report: Report, label: str, exp: List[Expected], act: List[Event]) -> None:
    """Says how one key's output differs from what was committed."""
    exp_count = Counter(x.ident for x in exp)
    act_count = Counter(e.ident for e in act)
    first_exp = {}
    for x in exp:
        first_exp.setdefault(x.ident, x)
    found = False
    for x in exp:
        if act_count[x.ident] < exp_count[x.ident] and first_exp[x.ident] is x:
            found = True
            report.add("missing", f"{label}: {x.describe()} was committed but is not in the "
                                  f"output" + _context(exp, x))
    seen = Counter()
    for e in act:
        seen[e.ident] += 1
        if seen[e.ident] <= exp_count[e.ident]:
            continue
        found = True
        if exp_count[e.ident]:
            first = next(o for o in act if o.ident == e.ident)
            report.add("duplicated", f"{label}: {e.describe()} is a second copy of the event at "
                                     f"{first.where}")
        elif e.op == "r":
            report.add("unexpected", f"{label}: snapshot read {e.describe()} does not match "
                                     f"the row at the snapshot's cut")
        else:
            report.add("unexpected", f"{label}: {e.describe()} was never committed (rolled "
                                     f"back, or a row that never existed)")
    if found:
        return
    # Same events, different order.
    for i, (x, e) in enumerate(zip(exp, act)):
        if x.ident != e.ident:
            report.add("out of order", f"{label}: event {i + 1} of {len(exp)} is "
                                       f"{e.describe()}, expected {x.describe()}")
            return


def _context(exp: List[Expected], x: Expected) -> str:
    i = exp.index(x)
    before = exp[i - 1].describe() if i > 0 else "(first)"
    after = exp[i + 1].describe() if i + 1 < len(exp) else "(last)"
    return f"; between {before} and {after}"


def check_run(log: Sequence[Tx], out_dir: Path, groups: Sequence[Group],
              final_state: Dict[str, Dict[tuple, dict]], layout: str = "append") -> Report:
    events, problems = read_output(out_dir, groups, layout)
    report = check(log, events, final_state, groups)
    for p in problems:
        report.add("unreadable output", p)
    pending = sorted(p.name for p in (Path(out_dir) / ".pending").glob("*"))
    if pending:
        report.add("uncommitted parts left behind", ", ".join(pending[:10]))
    return report


def merge(reports: Dict[str, Report]) -> Report:
    """One report for several sinks, each line prefixed with the sink's name."""
    if len(reports) == 1:
        return next(iter(reports.values()))
    out = Report()
    for sink, r in reports.items():
        for kind, n in r.counts.items():
            out.counts[f"{sink}: {kind}"] += n
            out.problems[f"{sink}: {kind}"].extend(r.problems[kind])
        for k, v in r.stats.items():
            out.stats[f"{sink}: {k}"] = v
    return out
