"""Window Top-N on a running stream (issue 13): datagen's watermarks close the windows.

The SQL oracle cases (tests/sql, win_rank_* and win_dedup_*) check window Top-N
results over bounded inputs, where the end of input closes every window.  Here
the stream does not end: each window's top rows must be emitted once, as
inserts, when the watermark passes the window's end, at parallelism 2, and equal
the ranking of the same bids computed here from a copy of the stream written by
a second INSERT of the same job.
"""

from collections import defaultdict

import pytest

from tidemark import Tidemark, read_jsonl, wait_until

BID_COLUMNS = "event_id bigint, auction bigint, bidder bigint, price bigint, dateTime timestamp"
SECOND = 1_000_000


def _job(out):
    return (f"CREATE TABLE bid ({BID_COLUMNS}) WITH (connector = 'datagen', kind = 'nexmark', "
            "table = 'bid', rows_per_second = '20000', first_event_rate = '1000', "
            "watermark = 'dateTime - INTERVAL ''1 second''');\n"
            f"CREATE TABLE raw () WITH (connector = 'file', path = '{out}/raw', "
            "schemas = 'false', topic = 'raw');\n"
            f"CREATE TABLE top () WITH (connector = 'file', path = '{out}/top', "
            "schemas = 'false', topic = 'top');\n"
            f"CREATE TABLE last () WITH (connector = 'file', path = '{out}/last', "
            "schemas = 'false', topic = 'last');\n"
            "INSERT INTO raw SELECT event_id, auction, bidder, price, dateTime FROM bid;\n"
            # The top 3 auctions of each second by bids (a window aggregation, then its ranking).
            "INSERT INTO top SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY "
            "window_start, window_end ORDER BY n DESC, auction) AS rn FROM (SELECT auction, "
            "window_start, window_end, count(*) AS n FROM TUMBLE(bid, dateTime, "
            "INTERVAL '1 second') GROUP BY auction, window_start, window_end) a) t "
            "WHERE rn <= 3;\n"
            # Window deduplication straight over the TVF: each bidder's last bid of a second.
            "INSERT INTO last SELECT event_id, bidder, window_start FROM (SELECT *, "
            "row_number() OVER (PARTITION BY window_start, window_end, bidder ORDER BY "
            "dateTime DESC, event_id DESC) AS rn FROM TUMBLE(bid, dateTime, "
            "INTERVAL '1 second')) t WHERE rn = 1;\n"
            "SET parallelism = 2;\n"
            "SET checkpoint_interval = '200ms';\n"
            "SET admin_address = '127.0.0.1:0';\n")


def _records(path):
    return list(read_jsonl(path)) if path.exists() else []


@pytest.mark.deadline(180)
def test_window_top_n_fires_once_per_window_on_watermarks(tmp_path, tidemark_bin):
    out = tmp_path / "out"
    tm = Tidemark(_job(out), tmp_path / "tm", bin=tidemark_bin).start()
    top_path, last_path = out / "top" / "top.jsonl", out / "last" / "last.jsonl"
    try:
        wait_until(lambda: len({r["after"]["window_start"] for r in _records(top_path)}) >= 3,
                   90, "three windows' top 3 fired by watermarks", tm.proc)
        assert tm.running(), tm.log_tail()
    finally:
        assert tm.terminate() == 0, tm.log_tail()
    top, last = _records(top_path), _records(last_path)
    raw = [r["after"] for r in _records(out / "raw" / "raw.jsonl")]
    for recs, name in ((top, "top"), (last, "last")):
        ops = {r["op"] for r in recs}
        assert ops == {"c"}, f"{name}: a window Top-N is insert-only, got ops {ops}"

    # The expected rankings, from the raw copy, for each window that fired.
    by_window = defaultdict(list)
    for b in raw:
        by_window[b["datetime"] // SECOND * SECOND].append(b)
    fired = defaultdict(list)
    for r in top:
        a = r["after"]
        fired[a["window_start"]].append((a["rn"], a["auction"], a["n"]))
    assert len(fired) >= 3
    for ws, got in fired.items():
        counts = defaultdict(int)
        for b in by_window[ws]:
            counts[b["auction"]] += 1
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        want = [(i + 1, a, n) for i, (a, n) in enumerate(ranked)]
        assert sorted(got) == want, f"window {ws}: got {sorted(got)}, want {want}"

    fired_last = defaultdict(dict)
    for r in last:
        a = r["after"]
        assert a["bidder"] not in fired_last[a["window_start"]], f"bidder twice in a window: {a}"
        fired_last[a["window_start"]][a["bidder"]] = a["event_id"]
    assert len(fired_last) >= 3
    for ws, got in fired_last.items():
        want = {}
        for b in sorted(by_window[ws], key=lambda b: (b["datetime"], b["event_id"])):
            want[b["bidder"]] = b["event_id"]
        assert got == want, f"window {ws}: {len(got)} bidders emitted, {len(want)} expected"
