"""The crash harness's verdict for the mysql-cdc source (mysql_harness.py).

Independent of the daemon: it reads what the file sink committed (either
layout of its two-phase commit) and compares it with the workload's log of
committed transactions and with the database's final state, which the
workload read through the server's own client.  It says:

  missing          a committed change that is not in the output
  duplicated       a change that is in the output more than once
  unexpected       an output line that no committed transaction made (a
                   rolled-back transaction, or a row image that never was)
  out of order     a key's changes in another order than they were committed
  out of commit order
                   the changes of one topic (one table of the one source, one
                   ordered stream) in another order than the transactions'
  wrong before image
                   a before image that is not the row as it was
  replay differs from the database
                   upserting every `after` and deleting every deleted key does
                   not give the database's final rows
  torn line, uncommitted parts left behind, not valid JSON

A change is identified by (table, op, key, ver before, ver after): every
insert and update sets `ver` to a number never used before, so each row
image is unique and nothing legitimate can look like a duplicate.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from checker import Report  # the PostgreSQL checker's report: same text, same merge


@dataclass
class Change:
    """One committed row change, as the workload made it."""
    table: str
    op: str  # c, u, d
    key: tuple
    before: Optional[dict]
    after: Optional[dict]

    @property
    def ident(self) -> tuple:
        return (self.table, self.op, self.key, _ver(self.before), _ver(self.after))


@dataclass
class Line:
    """One line of the sink's output."""
    table: str
    op: str
    key: tuple
    before: Optional[dict]
    after: Optional[dict]
    where: str

    @property
    def ident(self) -> tuple:
        return (self.table, self.op, self.key, _ver(self.before), _ver(self.after))


def _ver(row: Optional[dict]):
    return None if row is None else row.get("ver")


def read_output(out_dir: Path, topics: Dict[str, str], keys: Dict[str, Sequence[str]],
                layout: str, report: Report) -> Dict[str, List[Line]]:
    """{table: lines in file order}; topics maps a table to its topic name."""
    out: Dict[str, List[Line]] = {}
    for table, topic in topics.items():
        lines: List[Line] = []
        base = Path(out_dir) / topic
        if layout == "append":
            files = [Path(str(base) + ".jsonl")]
        else:
            files = sorted(base.glob("part-*.jsonl"), key=lambda p: int(p.stem.split("-")[1]))
        for path in files:
            if not path.exists():
                continue
            name = path.name if layout == "append" else f"{topic}/{path.name}"
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):
                cut = data.rfind(b"\n") + 1
                report.add("torn line", f"{name} ends in {len(data) - cut} bytes after its "
                                        f"last newline")
                data = data[:cut]
            for n, text in enumerate(data.decode("utf-8").split("\n"), start=1):
                if not text:
                    continue
                try:
                    p = json.loads(text)
                except json.JSONDecodeError as e:
                    report.add("not valid JSON", f"{name}:{n}: {e}: {text[:200]!r}")
                    continue
                if "payload" in p and "schema" in p:
                    p = p["payload"]
                image = p.get("after") or p.get("before") or {}
                lines.append(Line(table, p.get("op"), tuple(image.get(k) for k in keys[table]),
                                  p.get("before"), p.get("after"), f"{name}:{n}"))
        out[table] = lines
    return out


def _show(row: Optional[dict], drop: Sequence[str]) -> Optional[dict]:
    return None if row is None else {k: v for k, v in row.items() if k not in drop}


def check(log: Sequence[Sequence[Change]], out_dir: Path, topics: Dict[str, str],
          keys: Dict[str, Sequence[str]], final_state: Dict[str, Dict[tuple, dict]],
          layout: str, compare_skip: Sequence[str] = ()) -> Report:
    """The verdict on one sink directory; log is the committed transactions in commit order.

    compare_skip names columns left out of the row comparison (their text form
    depends on the connector's type mapping options, not on delivery)."""
    report = Report()
    output = read_output(out_dir, topics, keys, layout, report)
    expected: Dict[str, List[Change]] = defaultdict(list)
    for tx in log:
        for ch in tx:
            expected[ch.table].append(ch)
    total = 0
    for table in topics:
        got = output.get(table, [])
        want = expected.get(table, [])
        total += len(got)
        want_ids = Counter(c.ident for c in want)
        got_ids = Counter(line.ident for line in got)
        by_ident = {c.ident: c for c in want}
        for ident, n in got_ids.items():
            if ident not in want_ids:
                where = next(x.where for x in got if x.ident == ident)
                report.add("unexpected", f"{table} key={ident[2]} op={ident[1]} "
                                         f"ver {ident[3]}->{ident[4]} at {where}")
            elif n > want_ids[ident]:
                wheres = [x.where for x in got if x.ident == ident]
                report.add("duplicated", f"{table} key={ident[2]} op={ident[1]} "
                                         f"ver {ident[3]}->{ident[4]} at {', '.join(wheres)}")
        for ident, n in want_ids.items():
            if got_ids.get(ident, 0) < n:
                report.add("missing", f"{table} key={ident[2]} op={ident[1]} "
                                      f"ver {ident[3]}->{ident[4]}")
        # Row images: after is the committed row, before the row as it was.
        for line in got:
            c = by_ident.get(line.ident)
            if c is None:
                continue
            if _show(line.after, compare_skip) != _show(c.after, compare_skip):
                report.add("wrong after image", f"{line.where}: {_show(line.after, compare_skip)}"
                                                f" != {_show(c.after, compare_skip)}")
            if _show(line.before, compare_skip) != _show(c.before, compare_skip):
                report.add("wrong before image", f"{line.where}: "
                                                 f"{_show(line.before, compare_skip)} != "
                                                 f"{_show(c.before, compare_skip)}")
        # Order: the topic is one ordered stream, so its lines follow commit order exactly
        # (checked on the lines that are expected, once each, so that one missing or
        # duplicated change is reported once, above, and not as a cascade here).
        seen = set()
        got_order = []
        for line in got:
            if line.ident in want_ids and line.ident not in seen:
                seen.add(line.ident)
                got_order.append(line)
        want_order = [c.ident for c in want if c.ident in seen]
        per_key_got: Dict[tuple, list] = defaultdict(list)
        per_key_want: Dict[tuple, list] = defaultdict(list)
        for line in got_order:
            per_key_got[line.key].append(line.ident)
        for ident in want_order:
            per_key_want[ident[2]].append(ident)
        for key, ids in per_key_got.items():
            if ids != per_key_want[key]:
                report.add("out of order", f"{table} key={key}: output {ids[:6]} committed "
                                           f"{per_key_want[key][:6]}")
        for i, (line, ident) in enumerate(zip(got_order, want_order)):
            if line.ident != ident:
                report.add("out of commit order", f"{table}: {line.where} is change "
                                                  f"{line.ident}, the commit order has {ident}")
                break
        # Replay.
        state: Dict[tuple, dict] = {}
        for line in got:
            if line.op == "d":
                state.pop(line.key, None)
            elif line.after is not None:
                state[line.key] = line.after
        want_state = final_state.get(table, {})
        if {k: _show(v, compare_skip) for k, v in state.items()} != \
                {k: _show(v, compare_skip) for k, v in want_state.items()}:
            extra = sorted(set(state) - set(want_state))[:5]
            lost = sorted(set(want_state) - set(state))[:5]
            differ = sorted(k for k in set(state) & set(want_state)
                            if _show(state[k], compare_skip) != _show(want_state[k], compare_skip))
            report.add("replay differs from the database",
                       f"{table}: keys only in the replay {extra}, only in the database {lost}, "
                       f"different rows {differ[:5]}")
    pending = sorted(p.name for p in (Path(out_dir) / ".pending").glob("*"))
    if pending:
        report.add("uncommitted parts left behind", ", ".join(pending[:10]))
    report.stats["output lines"] = total
    report.stats["committed changes"] = sum(len(v) for v in expected.values())
    return report


def merge_reports(reports: Dict[str, Report]) -> Report:
    from checker import merge
    return merge(reports)


__all__ = ["Change", "Line", "Report", "check", "merge_reports", "read_output"]
