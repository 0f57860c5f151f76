"""The checker catches what it is there to catch (no servers needed).

Each test builds a small committed history, renders the output a perfect
sink would write for it, breaks that output in one way, and checks that the
report names the break: the kind, the table and the key.
"""

import copy
import json

import checker
from workload import TABLES, Change, Tx


def row(i, ver, balance="AQ=="):
    return {"id": i, "balance": balance, "owner": f"o{i}", "active": True, "opened": 1,
            "ver": ver}


def item(sku, ver):
    return {"sku": sku, "qty": ver, "price": None, "note": None, "ver": ver}


def history():
    """Two rows before the snapshot, then inserts, updates, deletes and a multi-row tx."""
    return [
        Tx(0, 100, "single", [Change("accounts", "c", (1,), row(1, 1), None)]),
        Tx(1, 101, "single", [Change("accounts", "c", (2,), row(2, 2), None)]),
        # --- the snapshot's cut is here (after 2 transactions)
        Tx(2, 102, "multi", [Change("accounts", "u", (1,), row(1, 3), row(1, 1)),
                             Change("items", "c", ("a",), item("a", 4), None),
                             Change("accounts", "u", (1,), row(1, 5), row(1, 3))]),
        Tx(3, 103, "single", [Change("accounts", "d", (2,), None, row(2, 2))]),
        Tx(4, 104, "multi", [Change("items", "u", ("a",), item("a", 6), item("a", 4)),
                             Change("accounts", "c", (2,), row(2, 7), None)]),
        Tx(5, 105, "single", [Change("items", "d", ("a",), None, item("a", 6))]),
    ]


CUT = 2
GROUPS = [checker.Group("shop", tuple(TABLES))]


def final_state(log):
    state = {name: {} for name in TABLES}
    for tx in log:
        for ch in tx.changes:
            if ch.after is None:
                state[ch.table].pop(ch.key, None)
            else:
                state[ch.table][ch.key] = ch.after
    return state


def perfect_output(log, cut=CUT, group=GROUPS[0]):
    """{table: events} as an exactly-once sink writes them."""
    events = {name: [] for name in TABLES}
    line = {name: 0 for name in TABLES}

    def add(table, op, txid, key, before, after):
        line[table] += 1
        events[table].append(checker.Event(table, op, txid, 1000 + line[table], key, before,
                                           after, f"{table}:{line[table]}"))

    for table, rows in final_state(log[:cut]).items():
        for key, r in sorted(rows.items()):
            add(table, "r", None, key, None, r)
    for tx in log[cut:]:
        for ch in tx.changes:
            add(ch.table, ch.op, tx.txid, ch.key, checker._expected_before(group, ch), ch.after)
    return events


def run(events, log=None, state=None, groups=GROUPS):
    log = log or history()
    return checker.check(log, events, state if state is not None else final_state(log), groups)


def test_a_perfect_output_passes():
    report = run(perfect_output(history()))
    assert report.ok, report.text()
    assert "consistent with the state after 2 of 6" in report.text()


def test_a_lost_change_is_reported_as_missing():
    events = perfect_output(history())
    lost = events["accounts"].pop(3)  # accounts 1: the second update of tx 102
    assert (lost.op, lost.txid, lost.after["ver"]) == ("u", 102, 5)
    report = run(events)
    assert report.counts["missing"] == 1, report.text()
    assert "accounts key=1: u txId=102 ver=5" in report.text()
    # And the rows no longer replay to the database.
    assert report.counts["replay differs from the database"] == 1


def test_a_change_written_twice_is_reported_as_duplicated():
    events = perfect_output(history())
    events["items"].append(copy.copy(events["items"][1]))  # items a: the update of tx 104
    events["items"][-1].where = "items:99"
    report = run(events)
    assert report.counts["duplicated"] == 1, report.text()
    assert ("items key=a: u txId=104 lsn=1002 ver=6 at items:99 is a second copy of the event "
            "at items:2") in report.text()


def test_a_snapshot_emitted_twice_is_reported():
    events = perfect_output(history())
    events["accounts"].extend(copy.copy(e) for e in events["accounts"][:2])
    report = run(events)
    assert report.counts["duplicated"] == 2, report.text()
    assert "snapshot read more than once" in report.text()


def test_changes_of_one_key_out_of_order_are_reported():
    events = perfect_output(history())
    acc = events["accounts"]
    acc[2], acc[3] = acc[3], acc[2]  # the two updates of accounts 1 in tx 102
    report = run(events)
    assert report.counts["out of order"] == 1, report.text()
    assert "accounts key=1: event 2 of 3 is u txId=102 lsn=1004 ver=5" in report.text()


def test_transactions_out_of_commit_order_are_reported():
    events = perfect_output(history())
    acc = events["accounts"]
    # Delete of 2 (tx 103) after the re-insert of 2 (tx 104): wrong per key too.
    acc[4], acc[5] = acc[5], acc[4]
    report = run(events)
    assert report.counts["out of commit order"] == 1, report.text()
    assert report.counts["out of order"] == 1


def test_a_rolled_back_change_is_reported_as_unexpected():
    events = perfect_output(history())
    ghost = copy.copy(events["accounts"][2])
    ghost.txid, ghost.after = 999, row(1, 42)
    events["accounts"].insert(3, ghost)
    report = run(events)
    assert report.counts["unexpected"] == 1, report.text()
    assert "txId=999" in report.text() and "never committed" in report.text()


def test_a_snapshot_from_no_single_moment_is_reported():
    events = perfect_output(history())
    # Row 1 as after tx 102, row 2 as before it: no prefix of the log gives both.
    events["accounts"][0] = checker.Event("accounts", "r", None, 1, (1,), None, row(1, 5),
                                          "accounts:1")
    report = run(events)
    assert report.counts["snapshot is not a consistent cut"] == 1, report.text()


def test_a_wrong_before_image_is_reported():
    events = perfect_output(history())
    events["accounts"][2].before = row(1, 99)
    report = run(events)
    assert report.counts["wrong before image"] == 1, report.text()


def test_a_replay_that_misses_the_database_is_reported():
    log = history()
    state = final_state(log)
    state["accounts"][(3,)] = row(3, 77)  # a row the database has and the output never made
    report = run(perfect_output(log), log, state)
    assert report.counts["replay differs from the database"] == 1, report.text()
    assert "accounts key=3: database has" in report.text()


def test_files_are_read_and_leftover_parts_are_reported(tmp_path):
    log = history()
    out = tmp_path / "out"
    (out / ".pending").mkdir(parents=True)
    for table, evs in perfect_output(log).items():
        with open(out / f"shop.public.{table}.jsonl", "w") as f:
            for e in evs:
                f.write(json.dumps({"before": e.before, "after": e.after, "op": e.op,
                                    "source": {"txId": e.txid, "lsn": e.lsn}}) + "\n")
    assert checker.check_run(log, out, GROUPS, final_state(log)).ok
    (out / ".pending" / "shop.public.items.7.part").write_text("{}\n")
    with open(out / "shop.public.items.jsonl", "a") as f:
        f.write('{"op": "u", "af')
    report = checker.check_run(log, out, GROUPS, final_state(log))
    assert report.counts["uncommitted parts left behind"] == 1, report.text()
    assert report.counts["unreadable output"] == 1, report.text()
    assert "torn line" in report.text()


def test_keyed_pipelines_carry_whole_before_images_and_order_only_per_key():
    keyed = [checker.Group("keyed", ("items",), keyed=True),
             checker.Group("shop", ("accounts", "ledger", "bulk", "fence"))]
    log = history()
    events = perfect_output(log, group=keyed[0])
    # The upsert operator fills before from state, even under REPLICA IDENTITY DEFAULT.
    update = events["items"][1]
    assert update.op == "u" and update.before == item("a", 4)
    assert run(events, log, groups=keyed).ok
    # Default identity without the operator: that before would be wrong.
    assert run(events, log).counts["wrong before image"] == 2
    # Each group has its own snapshot cut: an items snapshot taken later is fine.
    late = perfect_output(log, cut=4, group=keyed[0])
    events["items"] = late["items"]
    assert run(events, log, groups=keyed).ok, run(events, log, groups=keyed).text()


def test_rename_layout_is_read_part_by_part_in_name_order(tmp_path):
    log = history()
    out = tmp_path / "parts"
    events = perfect_output(log)
    for table, evs in events.items():
        topic = out / f"shop.public.{table}"
        topic.mkdir(parents=True)
        # Two epochs per topic, the second one first on disk: names decide.
        half = len(evs) // 2
        for n, chunk in ((2, evs[half:]), (1, evs[:half])):
            with open(topic / f"part-{n:020d}.jsonl", "w") as f:
                for e in chunk:
                    f.write(json.dumps({"before": e.before, "after": e.after, "op": e.op,
                                        "source": {"txId": e.txid, "lsn": e.lsn}}) + "\n")
    report = checker.check_run(log, out, GROUPS, final_state(log), layout="rename")
    assert report.ok, report.text()
    # An epoch committed twice (a part copied under the next number) is caught.
    accounts = out / "shop.public.accounts"
    (accounts / f"part-{3:020d}.jsonl").write_bytes(
        (accounts / f"part-{2:020d}.jsonl").read_bytes())
    report = checker.check_run(log, out, GROUPS, final_state(log), layout="rename")
    merged = checker.merge({"out": run(perfect_output(log)), "parts": report})
    assert merged.counts["parts: duplicated"] > 0, merged.text()
    assert "parts: duplicated" in merged.text() and "out: " in merged.text()
