"""Record-by-record, field-by-field comparison of Debezium's output with
tidemark's, and the readable report of what differs.

Both sides are read into {topic: [record, ...]} where a record is
{"key": <JsonConverter JSON or None>, "value": <JsonConverter JSON or None>}
(value None is a tombstone).  Within one topic the two sequences are aligned
by (kind, lsn), kind being the envelope's op or "tombstone", so that one
record too many or too few on one side (a tombstone, a key change written as
two events) shows as that record and does not shift every later pair.

Invariants:
  1. Every difference is reported, except the paths in ALLOWED, each with its
     reason, and numbers that are equal but spelt differently (1.50 / 1.5),
     which JSON parsers cannot tell apart.  Allowed differences are counted
     and listed separately, never silently dropped.
  2. Numbers are compared as exact decimals from their JSON text, so a float
     that prints with more digits on one side is a difference.
  3. true and 1 are different values; an absent field and a null field are
     different; the same keys in another order are a difference too.

Use on saved outputs:  python3 tests/compat/compare.py DEBEZIUM.jsonl TIDEMARK_DIR
"""

from __future__ import annotations

import copy
import difflib
import json
import sys
from collections import OrderedDict
from decimal import Decimal, InvalidOperation
from pathlib import Path

ABSENT = "<absent>"

# Path (with field names, without record numbers) -> why it may differ.
ALLOWED = {
    "value.payload.source.version":
        "the connector's own version string (Debezium's release vs tidemark's); a consumer "
        "cannot rely on it to be any particular value",
    "value.payload.ts_ms":
        "the time the connector processed the event, not a property of the change: two "
        "processes reading the same slot at different times differ",
    "value.payload.ts_us": "as ts_ms, in microseconds",
    "value.payload.ts_ns": "as ts_ms, in nanoseconds",
}

# The same, for snapshot reads (op r) only.
ALLOWED_SNAPSHOT = {
    "value.payload.source.ts_ms":
        "a snapshot read has no commit time: it is the clock time of the snapshot, which two "
        "snapshots taken at different moments cannot share (in streaming it is the commit's "
        "time from the WAL and must match)",
    "value.payload.source.ts_us": "as source.ts_ms of a snapshot read, in microseconds",
    "value.payload.source.ts_ns": "as source.ts_ms of a snapshot read, in nanoseconds",
}

# For snapshot reads, these may differ when both sides have a value (null on
# one side is still a difference).
ALLOWED_SNAPSHOT_IF_SET = {
    "value.payload.source.lsn":
        "a snapshot read's lsn is the server's WAL position when that snapshot was taken; two "
        "snapshots of a slot that already exists are taken at different moments (the slot's "
        "exported snapshot only exists when the slot is created)",
    "value.payload.source.txId":
        "a snapshot read's txId is the id of the transaction that read it; two snapshots are "
        "two transactions",
    "value.payload.source.sequence":
        "a snapshot read's sequence is [null, its lsn]: see source.lsn",
}

SNAPSHOT_ORDER = ("the order of rows within one table's snapshot is the order of the server's "
                  "scan; neither Debezium (SELECT * without ORDER BY) nor PostgreSQL defines it, "
                  "so snapshot reads are paired by key")


class Num:
    """A JSON number that keeps its text, so spelling can be compared too."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def value(self):
        try:
            return Decimal(self.text)
        except InvalidOperation:
            return self.text

    def __repr__(self):
        return self.text


def loads(text: str):
    return json.loads(text, parse_float=Num, parse_int=Num,
                      parse_constant=lambda c: Num(c))


def to_plain(v):
    """A value as JSON text again, for the report."""
    if isinstance(v, Num):
        return v.text
    if isinstance(v, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{to_plain(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ",".join(to_plain(x) for x in v) + "]"
    if v is ABSENT:
        return ABSENT
    return json.dumps(v, ensure_ascii=False)


def short(v, n: int = 140) -> str:
    s = to_plain(v)
    return s if len(s) <= n else s[: n - 3] + "..."


# -- reading ------------------------------------------------------------------

def read_debezium(path) -> "OrderedDict[str, list]":
    topics: "OrderedDict[str, list]" = OrderedDict()
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        rec = loads(line)
        topics.setdefault(rec["topic"], []).append({"key": rec["key"], "value": rec["value"]})
    return topics


def read_tidemark(directory) -> "OrderedDict[str, list]":
    """The file sink's output with include_key: <topic>.jsonl, lines {"key":…,"value":…}."""
    topics: "OrderedDict[str, list]" = OrderedDict()
    for f in sorted(Path(directory).glob("*.jsonl")):
        recs = []
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = loads(line)
                recs.append({"key": rec.get("key", ABSENT), "value": rec.get("value", ABSENT)})
        topics[f.name[: -len(".jsonl")]] = recs
    return topics


# -- aligning -----------------------------------------------------------------

def _get(rec, *path):
    v = rec
    for p in path:
        if not isinstance(v, dict) or p not in v:
            return None
        v = v[p]
    return v


def kind(rec) -> str:
    if rec["value"] is None:
        return "tombstone"
    op = _get(rec, "value", "payload", "op")
    if not isinstance(op, str):
        # Transaction metadata (provide.transaction.metadata): BEGIN / END.
        status = _get(rec, "value", "payload", "status")
        return status if isinstance(status, str) else "?"
    return op


TX_KINDS = ("BEGIN", "END")
# A logical message's data collection in an END event: Debezium names it after a new
# Java object per message (Object.toString(): class name, '@', identity hash).
MSG_COLLECTION = ("io.debezium.connector.postgresql.LogicalDecodingMessageMonitor"
                  "$LogicalDecodingMessageId@")
MSG_COLLECTION_WHY = (
    "Debezium names a logical message's data collection after a new Java object per message "
    "(class name, '@', its identity hash) and files it in a HashMap by that name's hash: the "
    "name and its place among the data collections are random; only their number and counts "
    "are compared")


def normalize_end(rec):
    """An END event with the logical messages' data collections taken out of the array
    (compared as a count) and the rest in order; (record, whether anything changed)."""
    dcs = _get(rec, "value", "payload", "data_collections")
    if kind(rec) != "END" or not isinstance(dcs, list):
        return rec, False
    msgs = [d for d in dcs if isinstance(d, dict)
            and str(d.get("data_collection", "")).startswith(MSG_COLLECTION)]
    if not msgs:
        return rec, False
    rec = copy.deepcopy(rec)
    payload = rec["value"]["payload"]
    payload["data_collections"] = [d for d in payload["data_collections"]
                                   if not str(d.get("data_collection", ""))
                                   .startswith(MSG_COLLECTION)]
    payload["logical_message_collections"] = Num(str(len(msgs)))
    return rec, True


def signatures(records) -> list:
    out, last_lsn = [], None
    for rec in records:
        lsn = _get(rec, "value", "payload", "source", "lsn")
        lsn = lsn.text if isinstance(lsn, Num) else lsn
        if rec["value"] is None:
            lsn = last_lsn
        elif kind(rec) == "r":
            lsn = None  # see ALLOWED_SNAPSHOT_IF_SET
        elif kind(rec) in TX_KINDS:
            lsn = _get(rec, "value", "payload", "id")  # "<txId>:<LSN>"
        last_lsn = lsn
        out.append((kind(rec), lsn))
    return out


# -- diffing ------------------------------------------------------------------

def _is_field_list(v) -> bool:
    return isinstance(v, list) and v and all(isinstance(x, dict) and "field" in x for x in v)


def diff(a, b, path: str, out: list) -> None:
    """Appends (path, debezium value, tidemark value) for every difference."""
    if isinstance(a, Num) and isinstance(b, Num):
        if a.text != b.text:
            if a.value() == b.value():
                out.append((path, a, b, "number spelling"))
            else:
                out.append((path, a, b, None))
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a.keys()) + [k for k in b.keys() if k not in a]:
            diff(a.get(k, ABSENT), b.get(k, ABSENT), f"{path}.{k}", out)
        # JSON objects are unordered for a parser, but the bytes differ, and
        # the contract is byte for byte: report the order of shared keys.
        common_a = [k for k in a if k in b]
        common_b = [k for k in b if k in a]
        if common_a != common_b:
            out.append((f"{path}<key order>", common_a, common_b, None))
        return
    if _is_field_list(a) and _is_field_list(b):
        an = [x["field"] for x in a]
        bn = [x["field"] for x in b]
        am = {x["field"]: x for x in a}
        bm = {x["field"]: x for x in b}
        for name in an + [n for n in bn if n not in am]:
            diff(am.get(name, ABSENT), bm.get(name, ABSENT), f"{path}[{name}]", out)
        common_a = [n for n in an if n in bm]
        common_b = [n for n in bn if n in am]
        if common_a != common_b:
            out.append((f"{path}<order>", an, bn, None))
        return
    if isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            diff(a[i] if i < len(a) else ABSENT, b[i] if i < len(b) else ABSENT,
                 f"{path}[{i}]", out)
        return
    if type(a) is not type(b) or a != b:
        out.append((path, a, b, None))


def allowed_reason(path: str, op: str, a=None, b=None):
    if op in TX_KINDS:
        return None  # a transaction event's ts_ms is the commit's time: it must match
    if op == "r" and path in ALLOWED_SNAPSHOT:
        return ALLOWED_SNAPSHOT[path]
    if (op == "r" and path in ALLOWED_SNAPSHOT_IF_SET and type(a) is type(b)
            and isinstance(a, (Num, str))):
        return ALLOWED_SNAPSHOT_IF_SET[path]
    return ALLOWED.get(path)


SNAPSHOT_MARKERS = ("snapshot markers (first, first_in_data_collection, true, "
                    "last_in_data_collection, last) belong to positions in a table's snapshot, "
                    "not to rows: they are compared in emission order, and matched there")


def _markers(records) -> list:
    """The source.snapshot values of the snapshot reads, in emission order."""
    return [_get(r, "value", "payload", "source", "snapshot") for r in records if kind(r) == "r"]


def _key_text(rec) -> str:
    key = rec.get("key")
    return to_plain(key.get("payload") if isinstance(key, dict) else key)


def sort_snapshot_reads(records) -> list:
    """The records with each run of snapshot reads (op r) sorted by key."""
    out, run = [], []
    for rec in records + [None]:
        if rec is not None and kind(rec) == "r":
            run.append(rec)
            continue
        out += sorted(run, key=_key_text)
        run = []
        if rec is not None:
            out.append(rec)
    return out


# -- the whole comparison -----------------------------------------------------

class Result:
    def __init__(self):
        self.unexplained = []   # (topic, label, path, a, b)
        self.allowed = []       # (topic, label, path, a, b, reason)
        self.only_debezium = []  # (topic, index, record)
        self.only_tidemark = []
        self.matched = 0
        self.counts = {}        # topic -> (debezium, tidemark)

    @property
    def ok(self) -> bool:
        return not (self.unexplained or self.only_debezium or self.only_tidemark)


def compare(deb: dict, tm: dict) -> Result:
    res = Result()
    for topic in list(deb.keys()) + [t for t in tm.keys() if t not in deb]:
        a, b = deb.get(topic, []), tm.get(topic, [])
        res.counts[topic] = (len(a), len(b))
        # Markers go with positions: compare them in emission order, before
        # the reads are sorted by key for pairing.
        markers_ok = _markers(a) == _markers(b)
        if not markers_ok:
            res.unexplained.append((topic, "snapshot", "value.payload.source.snapshot "
                                    "(in emission order)", _markers(a), _markers(b)))
        a_sorted, b_sorted = sort_snapshot_reads(a), sort_snapshot_reads(b)
        if ([_key_text(r) for r in a] != [_key_text(r) for r in a_sorted]
                or [_key_text(r) for r in b] != [_key_text(r) for r in b_sorted]):
            if [_key_text(r) for r in a] != [_key_text(r) for r in b]:
                res.allowed.append((topic, "snapshot", "<snapshot row order>",
                                    [_key_text(r) for r in a if kind(r) == "r"],
                                    [_key_text(r) for r in b if kind(r) == "r"], SNAPSHOT_ORDER))
        a, b = a_sorted, b_sorted
        sm = difflib.SequenceMatcher(None, signatures(a), signatures(b), autojunk=False)
        for tag, i1, i2, j1, j2 in sm.get_opcodes():
            if tag == "equal":
                for i, j in zip(range(i1, i2), range(j1, j2)):
                    res.matched += 1
                    label = f"#{i + 1}/#{j + 1} {kind(a[i])}"
                    found = []
                    ra, na = normalize_end(a[i])
                    rb, nb = normalize_end(b[j])
                    if na or nb:
                        res.allowed.append((topic, label, "value.payload.data_collections",
                                            a[i]["value"]["payload"]["data_collections"],
                                            b[j]["value"]["payload"]["data_collections"],
                                            MSG_COLLECTION_WHY))
                    diff(ra["key"], rb["key"], "key", found)
                    diff(ra["value"], rb["value"], "value", found)
                    for path, x, y, why in found:
                        if (path == "value.payload.source.snapshot" and kind(a[i]) == "r"
                                and markers_ok):
                            why = why or SNAPSHOT_MARKERS
                        why = why or allowed_reason(path, kind(a[i]), x, y)
                        if why:
                            res.allowed.append((topic, label, path, x, y, why))
                        else:
                            res.unexplained.append((topic, label, path, x, y))
            else:
                res.only_debezium += [(topic, i, a[i]) for i in range(i1, i2)]
                res.only_tidemark += [(topic, j, b[j]) for j in range(j1, j2)]
    return res


def _record_line(rec) -> str:
    key = _get(rec, "key", "payload") if isinstance(rec.get("key"), dict) else rec.get("key")
    lsn = _get(rec, "value", "payload", "source", "lsn")
    return f"{kind(rec)} lsn={to_plain(lsn) if lsn is not None else '-'} key={short(key, 100)}"


def _generic(path: str) -> str:
    return path


def report(res: Result, verbose: bool = True) -> str:
    lines = ["Debezium vs tidemark: records per topic (debezium / tidemark)"]
    for topic, (n, m) in res.counts.items():
        mark = "" if n == m else "   <-- differs"
        lines.append(f"  {topic}: {n} / {m}{mark}")
    lines.append(f"matched pairs: {res.matched}; unexplained field differences: "
                 f"{len(res.unexplained)}; only in Debezium: {len(res.only_debezium)}; "
                 f"only in tidemark: {len(res.only_tidemark)}; allowed: {len(res.allowed)}")

    # Summary: one line per distinct (path, debezium value, tidemark value) kind.
    lines.append("")
    lines.append("== Differences by field (path: debezium -> tidemark [where]) ==")
    groups: "OrderedDict[str, list]" = OrderedDict()
    for topic, label, path, x, y in res.unexplained:
        groups.setdefault(path, []).append((topic, label, x, y))
    for path, items in groups.items():
        distinct = OrderedDict()
        for topic, label, x, y in items:
            distinct.setdefault((short(x, 90), short(y, 90)), []).append(f"{topic} {label}")
        for (x, y), where in distinct.items():
            more = f" (+{len(where) - 1} more)" if len(where) > 1 else ""
            lines.append(f"  {path}: {x} -> {y}   [{where[0]}{more}]")

    if res.only_debezium or res.only_tidemark:
        lines.append("")
        lines.append("== Records on one side only ==")
        for topic, i, rec in res.only_debezium:
            lines.append(f"  only Debezium  {topic} #{i + 1}: {_record_line(rec)}")
        for topic, j, rec in res.only_tidemark:
            lines.append(f"  only tidemark  {topic} #{j + 1}: {_record_line(rec)}")

    lines.append("")
    lines.append("== Allowed differences (counted, not failures) ==")
    seen = OrderedDict()
    for topic, label, path, x, y, why in res.allowed:
        key = path if why != "number spelling" else f"{path} (number spelling)"
        seen.setdefault(key, [0, why, short(x, 60), short(y, 60)])[0] += 1
    for key, (n, why, x, y) in seen.items():
        lines.append(f"  {key}: {n}x, e.g. {x} -> {y}: {why}")
    return "\n".join(lines)


def main(argv) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    res = compare(read_debezium(argv[1]), read_tidemark(argv[2]))
    print(report(res))
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
