"""The initial snapshot: consistent with the slot, and taken exactly once.

The central property (test_changes_during_snapshot_replay_to_final_state) is
the one Debezium users rely on: replaying the `r` events and the streamed
events after them, key by key and in order, rebuilds exactly the table's
final contents, and no key is read twice by the snapshot.  It holds whatever
the interleaving of the snapshot and the concurrent writes turns out to be,
so the test is deterministic even though that interleaving is not.
"""

import random
from collections import Counter

import pytest

from tidemark import payload, read_jsonl, row_id, wait_for_lines, wait_for_records

ORDERS = "CREATE TABLE public.orders (id int PRIMARY KEY, customer_id int, status text);"
CUSTOMERS = "CREATE TABLE public.customers (id int PRIMARY KEY, name text);"


def snapshot_flags(records):
    return [payload(r)["source"]["snapshot"] for r in records if payload(r)["op"] == "r"]


def test_initial_snapshot_then_streaming(cdc):
    cdc.sql(ORDERS + CUSTOMERS + """
        INSERT INTO orders SELECT g, g % 20, 'new' FROM generate_series(1, 500) g;
        INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 20) g;
    """)
    tm = cdc.start(tables="public.orders, public.customers", snapshot="initial")
    orders = wait_for_lines(cdc.topic_path("orders"), 500, timeout=120, proc=tm)
    customers = wait_for_lines(cdc.topic_path("customers"), 20, timeout=120, proc=tm)

    assert all(payload(r)["op"] == "r" for r in orders + customers)
    assert sorted(row_id(r) for r in orders) == list(range(1, 501))
    assert sorted(row_id(r) for r in customers) == list(range(1, 21))
    for r in orders:
        assert payload(r)["after"] == {"id": row_id(r), "customer_id": row_id(r) % 20,
                                       "status": "new"}
    assert all(payload(r)["before"] is None for r in orders + customers)
    # Debezium's markers, tables in the order of `tables`: the first read of the
    # whole snapshot "first", the last "last", each table's first and last read
    # "first_in_data_collection" / "last_in_data_collection", the rest "true".
    assert snapshot_flags(orders) == ["first"] + ["true"] * 498 + ["last_in_data_collection"], \
        Counter(snapshot_flags(orders))
    assert snapshot_flags(customers) == ["first_in_data_collection"] + ["true"] * 18 + ["last"], \
        Counter(snapshot_flags(customers))
    # All reads carry the snapshot transaction's id, as Debezium's do.
    txids = {payload(r)["source"]["txId"] for r in orders + customers}
    assert len(txids) == 1 and isinstance(next(iter(txids)), int), txids

    cdc.sql("INSERT INTO orders VALUES (501, 1, 'new');")
    records = wait_for_lines(cdc.topic_path("orders"), 501, proc=tm)
    streamed = payload(records[500])
    assert (streamed["op"], streamed["after"]["id"]) == ("c", 501)
    assert streamed["source"]["snapshot"] == "false"


def test_snapshot_is_not_repeated_after_restart(cdc):
    cdc.sql(ORDERS + "INSERT INTO orders SELECT g, 1, 'new' FROM generate_series(1, 50) g;")
    tm = cdc.start(snapshot="initial")
    wait_for_lines(cdc.topic_path("orders"), 50, proc=tm)
    assert tm.terminate() == 0, tm.log_tail()

    cdc.sql("INSERT INTO orders VALUES (51, 1, 'while stopped');")
    tm.start()
    cdc.sql("INSERT INTO orders VALUES (52, 1, 'after restart');")

    def has_52(records):
        return any(row_id(r) == 52 for r in records)

    records = wait_for_records(cdc.topic_path("orders"), has_52, 60, "order 52", tm)
    reads = Counter(row_id(r) for r in records if payload(r)["op"] == "r")
    assert set(reads) == set(range(1, 51)) and set(reads.values()) == {1}, \
        f"each existing row is read exactly once, over both runs: {reads}"
    inserted = [row_id(r) for r in records if payload(r)["op"] == "c"]
    assert 51 in inserted and 52 in inserted, inserted


def test_snapshot_never_streams_only_new_changes(cdc):
    cdc.sql(ORDERS + "INSERT INTO orders SELECT g, 1, 'old' FROM generate_series(1, 10) g;")
    tm = cdc.start(snapshot="never")
    cdc.wait_slot_ready(tm)
    cdc.sql("INSERT INTO orders VALUES (11, 1, 'new'); UPDATE orders SET status = 'x' WHERE id = 3;")
    wait_for_lines(cdc.topic_path("orders"), 2, proc=tm)
    assert tm.terminate() == 0, tm.log_tail()
    records = read_jsonl(cdc.topic_path("orders"))
    assert [(payload(r)["op"], row_id(r)) for r in records] == [("c", 11), ("u", 3)]


def test_initial_only_reads_then_exits(cdc):
    cdc.sql(ORDERS + "INSERT INTO orders SELECT g, 1, 'old' FROM generate_series(1, 10) g;")
    tm = cdc.start(snapshot="initial_only")
    # initial_only is a bounded job: once the snapshot is delivered there is
    # nothing more to do, so the daemon ends by itself, successfully.
    assert tm.wait_exit(timeout=120) == 0, tm.log_tail()
    records = read_jsonl(cdc.topic_path("orders"))
    assert [payload(r)["op"] for r in records] == ["r"] * 10
    assert sorted(row_id(r) for r in records) == list(range(1, 11))


def test_when_needed_snapshots_when_there_is_no_position(cdc):
    cdc.sql(ORDERS + "INSERT INTO orders SELECT g, 1, 'old' FROM generate_series(1, 10) g;")
    tm = cdc.start(snapshot="when_needed")
    # A first run has no stored position, so it needs, and takes, a snapshot.
    records = wait_for_lines(cdc.topic_path("orders"), 10, proc=tm)
    assert [payload(r)["op"] for r in records] == ["r"] * 10
    assert tm.terminate() == 0, tm.log_tail()

    # A restart has one, so it streams on from it.
    cdc.sql("INSERT INTO orders VALUES (11, 1, 'new');")
    tm.start()
    records = wait_for_records(cdc.topic_path("orders"),
                               lambda rs: any(row_id(r) == 11 for r in rs), 60, "order 11", tm)
    reads = Counter(row_id(r) for r in records if payload(r)["op"] == "r")
    assert set(reads.values()) == {1} and len(reads) == 10, reads


SENTINEL_ID = 1_000_000


@pytest.mark.deadline(600)
def test_changes_during_snapshot_replay_to_final_state(cdc):
    cdc.sql("""
        CREATE TABLE public.accounts (id int PRIMARY KEY, balance int NOT NULL);
        INSERT INTO accounts SELECT g, g FROM generate_series(1, 20000) g;
    """)
    tm = cdc.start(tables="public.accounts", snapshot="initial")

    # Write while the snapshot is being taken.  The seed fixes which writes
    # happen; how they interleave with the snapshot varies from run to run,
    # which is the point: the property must hold for any interleaving.
    rng = random.Random(20240102)
    conn = cdc.connect()
    cur = conn.cursor()
    next_id = 20001
    for _ in range(400):
        choice = rng.random()
        if choice < 0.5:
            cur.execute("UPDATE accounts SET balance = %s WHERE id = %s",
                        (rng.randint(-10**6, 10**6), rng.randint(1, next_id - 1)))
        elif choice < 0.7:
            cur.execute("DELETE FROM accounts WHERE id = %s", (rng.randint(1, next_id - 1),))
        elif choice < 0.9:
            cur.execute("INSERT INTO accounts VALUES (%s, %s)", (next_id, rng.randint(0, 100)))
            next_id += 1
        else:
            # A few multi-row transactions, so that transaction boundaries and
            # the snapshot's point in the WAL can fall between their parts.
            low = rng.randint(1, 19000)
            cur.execute("BEGIN")
            cur.execute("UPDATE accounts SET balance = balance + 1 WHERE id BETWEEN %s AND %s",
                        (low, low + 500))
            cur.execute("INSERT INTO accounts VALUES (%s, 0)", (next_id,))
            next_id += 1
            cur.execute("COMMIT")
    # The sentinel commits last; the stream is in commit order, so once it is
    # out every earlier change is too.
    cur.execute("INSERT INTO accounts VALUES (%s, 0)", (SENTINEL_ID,))
    cur.execute("SELECT id, balance FROM accounts")
    truth = dict(cur.fetchall())
    conn.close()

    path = cdc.topic_path("accounts")
    wait_for_records(path, lambda rs: any(row_id(r) == SENTINEL_ID for r in rs),
                     300, "the sentinel row after the snapshot and the writes", tm)
    assert tm.terminate() == 0, tm.log_tail()

    replayed = {}
    reads = Counter()
    for record in read_jsonl(path):
        p = payload(record)
        if p["op"] == "r":
            reads[p["after"]["id"]] += 1
            replayed[p["after"]["id"]] = p["after"]["balance"]
        elif p["op"] in ("c", "u"):
            replayed[p["after"]["id"]] = p["after"]["balance"]
        elif p["op"] == "d":
            replayed.pop(p["before"]["id"], None)
        else:
            pytest.fail(f"unexpected op in the accounts topic: {p}")

    twice = {k: n for k, n in reads.items() if n > 1}
    assert not twice, f"the snapshot read these keys more than once: {dict(list(twice.items())[:20])}"
    missing = truth.keys() - replayed.keys()
    extra = replayed.keys() - truth.keys()
    wrong = {k: (replayed[k], truth[k]) for k in truth.keys() & replayed.keys()
             if replayed[k] != truth[k]}
    assert not (missing or extra or wrong), (
        f"replaying the events does not give the table: {len(missing)} keys missing "
        f"(e.g. {sorted(missing)[:10]}), {len(extra)} extra (e.g. {sorted(extra)[:10]}), "
        f"{len(wrong)} with a wrong balance (e.g. {dict(list(wrong.items())[:10])})")
