"""mysql_checker catches what it is there to catch (no servers needed).

A small committed history is written out as a perfect exactly-once sink
would write it (Debezium JSON, schemas off), then broken in one way; the
report must name the break.
"""

import json

import mysql_checker
from mysql_checker import Change

TOPICS = {"acct": "shop.db.acct"}
KEYS = {"acct": ("id",)}


def row(i, ver, memo="m"):
    return {"id": i, "n": ver * 10, "memo": memo, "ver": ver}


def history():
    return [
        [Change("acct", "c", (1,), None, row(1, 1))],
        [Change("acct", "c", (2,), None, row(2, 2)),
         Change("acct", "u", (1,), row(1, 1), row(1, 3))],
        [Change("acct", "d", (2,), row(2, 2), None)],
        [Change("acct", "u", (1,), row(1, 3), row(1, 4, "it's\nnew"))],
    ]


def state(log):
    s = {"acct": {}}
    for tx in log:
        for ch in tx:
            if ch.after is None:
                s["acct"].pop(ch.key, None)
            else:
                s["acct"][ch.key] = ch.after
    return s


def lines(log):
    return [{"before": ch.before, "after": ch.after, "op": ch.op, "source": {}}
            for tx in log for ch in tx]


def verdict(tmp_path, out_lines, log=None, layout="append", tail=b""):
    log = log if log is not None else history()
    if layout == "append":
        path = tmp_path / "shop.db.acct.jsonl"
    else:
        (tmp_path / "shop.db.acct").mkdir()
        path = tmp_path / "shop.db.acct" / "part-1.jsonl"
    path.write_bytes(b"".join(json.dumps(x).encode() + b"\n" for x in out_lines) + tail)
    return mysql_checker.check(log, tmp_path, TOPICS, KEYS, state(log), layout)


def test_perfect_output_passes(tmp_path):
    r = verdict(tmp_path, lines(history()))
    assert r.ok, r.text()


def test_perfect_output_passes_in_parts(tmp_path):
    r = verdict(tmp_path, lines(history()), layout="rename")
    assert r.ok, r.text()


def test_missing_change(tmp_path):
    out = lines(history())
    del out[2]  # the update of key 1 to ver 3
    r = verdict(tmp_path, out)
    assert r.counts["missing"] == 1 and "key=(1,) op=u ver 1->3" in r.text()


def test_duplicated_change(tmp_path):
    out = lines(history())
    out.insert(3, out[1])
    r = verdict(tmp_path, out)
    assert r.counts["duplicated"] == 1 and "key=(2,)" in r.text()


def test_rolled_back_change_is_unexpected(tmp_path):
    out = lines(history()) + [{"before": None, "after": row(9, 99), "op": "c"}]
    r = verdict(tmp_path, out)
    assert r.counts["unexpected"] == 1 and "key=(9,)" in r.text()
    assert r.counts["replay differs from the database"] == 1


def test_out_of_order(tmp_path):
    out = lines(history())
    out[2], out[4] = out[4], out[2]  # key 1: ver 3 after ver 4
    r = verdict(tmp_path, out)
    assert r.counts["out of order"] == 1
    assert r.counts["out of commit order"] == 1


def test_commit_order_across_keys(tmp_path):
    out = lines(history())
    out[1], out[2] = out[2], out[1]  # one transaction's two keys swapped: order per key holds
    r = verdict(tmp_path, out)
    assert r.counts["out of order"] == 0
    assert r.counts["out of commit order"] == 1


def test_wrong_images(tmp_path):
    out = lines(history())
    out[4]["after"]["memo"] = "other"
    out[3]["before"]["n"] = 0
    r = verdict(tmp_path, out)
    assert r.counts["wrong after image"] == 1
    assert r.counts["wrong before image"] == 1


def test_torn_line_and_pending_parts(tmp_path):
    (tmp_path / ".pending").mkdir()
    (tmp_path / ".pending" / "shop.db.acct.7.part").write_text("{}")
    r = verdict(tmp_path, lines(history()), tail=b'{"op":"c"')
    assert r.counts["torn line"] == 1
    assert r.counts["uncommitted parts left behind"] == 1
