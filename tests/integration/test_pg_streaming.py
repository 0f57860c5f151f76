"""Large transactions, which the server streams before they end (protocol v2).

The session's server runs with logical_decoding_work_mem = 64kB, so each
transaction here is far past the limit and the server streams it to tidemark
in chunks while it is still open.  tidemark must hold those chunks until the
transaction's fate is known: emit them at Stream Commit, in commit order, and
drop them at Stream Abort, including the parts that a rolled-back savepoint
undid.
"""

import pytest

from tidemark import payload, read_jsonl, row_id, wait_for_lines, wait_for_records, wait_until

BIG = "CREATE TABLE public.big (id int PRIMARY KEY, note text);"


def streamed_transactions(cdc) -> int:
    """How many transactions the server has streamed through this test's slot."""
    out = cdc.pg.psql("SELECT stream_txns FROM pg_stat_replication_slots "
                      f"WHERE slot_name = '{cdc.slot}'")
    return int(out or 0)


def assert_server_streamed(cdc, tm) -> None:
    # Without this a test could pass with streaming off, through the server
    # spilling the transaction to disk and sending it whole at commit.
    wait_until(lambda: streamed_transactions(cdc) > 0, 60,
               "the server to report a streamed transaction on the slot "
               "(does tidemark start replication with streaming 'on'?)", tm)


def start_streaming_job(cdc):
    tm = cdc.start(tables="public.big", snapshot="never", sink={"schemas": False})
    cdc.wait_slot_ready(tm)
    return tm


@pytest.mark.deadline(600)
def test_large_committed_transaction_delivers_every_row(cdc):
    n = 100_000
    cdc.sql(BIG)
    tm = start_streaming_job(cdc)
    cdc.sql(f"INSERT INTO big SELECT g, 'row ' || g FROM generate_series(1, {n}) g;")

    wait_for_lines(cdc.topic_path("big"), n, timeout=400, proc=tm)
    assert_server_streamed(cdc, tm)
    assert tm.terminate() == 0, tm.log_tail()

    records = read_jsonl(cdc.topic_path("big"))
    assert len(records) == n, f"expected {n} events, got {len(records)}"
    payloads = [payload(r) for r in records]
    assert {p["op"] for p in payloads} == {"c"}
    assert sorted(p["after"]["id"] for p in payloads) == list(range(1, n + 1))
    assert len({p["source"]["txId"] for p in payloads}) == 1, "one transaction, one txId"
    assert payloads[-1]["after"] == {"id": payloads[-1]["after"]["id"],
                                     "note": f"row {payloads[-1]['after']['id']}"}


@pytest.mark.deadline(600)
def test_large_rolled_back_transaction_delivers_nothing(cdc):
    n = 100_000
    cdc.sql(BIG)
    tm = start_streaming_job(cdc)
    cdc.sql(f"""
        BEGIN;
        INSERT INTO big SELECT g, 'doomed' FROM generate_series(1, {n}) g;
        ROLLBACK;
    """)
    assert_server_streamed(cdc, tm)
    # Committed after the rollback: once it is out, the rollback has been
    # decoded, so anything of the doomed transaction would be out too.
    cdc.sql("INSERT INTO big VALUES (0, 'sentinel');")
    wait_for_records(cdc.topic_path("big"), lambda rs: any(row_id(r) == 0 for r in rs),
                     300, "the sentinel row", tm)
    assert tm.terminate() == 0, tm.log_tail()
    records = read_jsonl(cdc.topic_path("big"))
    leaked = [row_id(r) for r in records if row_id(r) != 0]
    assert not leaked, f"{len(leaked)} rows of a rolled-back transaction were emitted, " \
                       f"e.g. {leaked[:10]}"
    assert [payload(r)["op"] for r in records] == ["c"]


def test_rolled_back_savepoint_inside_streamed_transaction(cdc):
    cdc.sql(BIG)
    tm = start_streaming_job(cdc)
    cdc.sql("""
        BEGIN;
        INSERT INTO big SELECT g, 'kept' FROM generate_series(1, 20000) g;
        SAVEPOINT undone;
        INSERT INTO big SELECT g, 'undone' FROM generate_series(20001, 40000) g;
        ROLLBACK TO SAVEPOINT undone;
        INSERT INTO big VALUES (40001, 'kept too');
        COMMIT;
    """)
    cdc.sql("INSERT INTO big VALUES (0, 'sentinel');")
    wait_for_records(cdc.topic_path("big"), lambda rs: any(row_id(r) == 0 for r in rs),
                     300, "the sentinel row", tm)
    assert_server_streamed(cdc, tm)
    assert tm.terminate() == 0, tm.log_tail()

    records = read_jsonl(cdc.topic_path("big"))
    ids = [row_id(r) for r in records]
    expected = list(range(1, 20001)) + [40001, 0]
    assert len(ids) == len(expected), f"expected {len(expected)} events, got {len(ids)}"
    assert sorted(ids) == sorted(expected)
    assert ids[-1] == 0, "the sentinel committed last, so it comes last"
    assert all(payload(r)["after"]["note"] != "undone" for r in records)


def test_transaction_committed_during_a_streamed_one_comes_first(cdc):
    n = 20_000
    cdc.sql(BIG)
    tm = start_streaming_job(cdc)
    big = cdc.connect()
    cur = big.cursor()
    cur.execute("BEGIN")
    cur.execute("INSERT INTO big SELECT g, 'big' FROM generate_series(1, %s) g", (n,))
    # The server streams the open transaction's changes before this small one
    # commits, but the small one commits first, so it must come out first.
    assert_server_streamed(cdc, tm)
    cdc.sql("INSERT INTO big VALUES (0, 'small');")
    cur.execute("COMMIT")
    big.close()

    wait_for_lines(cdc.topic_path("big"), n + 1, timeout=300, proc=tm)
    assert tm.terminate() == 0, tm.log_tail()
    ids = [row_id(r) for r in read_jsonl(cdc.topic_path("big"))]
    assert ids[0] == 0, f"events must follow commit order; the first event is id {ids[0]}"
    assert sorted(ids) == list(range(0, n + 1))
