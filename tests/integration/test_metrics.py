"""/metrics against a running job: every family of the table has real values.

The names are checked against docs/operations.md by a unit test
(tests/unit/daemon/metrics_docs.c); this test checks that the values mean
what the docs say: snapshot rows, source lag, sink records and the commit
histogram, per-operator state bytes, build and process figures.
"""

import json
import re

from tidemark import read_jsonl, wait_until


def parse(text: str) -> dict:
    """{(name, frozenset(labels)): value} of every sample."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-z_]+)(?:\{(.*)\})? (\S+)$', line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(samples: dict, name: str, **labels):
    return samples.get((name, frozenset(labels.items())))


def test_metrics_have_real_values(cdc):
    cdc.sql("CREATE TABLE orders (id int PRIMARY KEY, note text);"
            "INSERT INTO orders SELECT g, 'n' || g FROM generate_series(1, 1000) g; ANALYZE orders;")
    job = (f"CREATE TABLE shop (id int PRIMARY KEY, note text) WITH (connector = 'postgres-cdc', "
           f"dsn = '{cdc.dsn()}', \"table\" = 'public.orders', slot = '{cdc.slot}', "
           f"publication = '{cdc.publication}', snapshot = 'initial', heartbeat_interval = '200ms');\n"
           f"CREATE TABLE out () WITH (connector = 'file', path = '{cdc.out_dir}');\n"
           "INSERT INTO out SELECT * FROM shop;\n"
           "SET checkpoint_interval = '200ms';\n"
           "SET admin_address = '127.0.0.1:0';\n")
    tm = cdc.start(job)
    topic = cdc.topic_path("orders")
    wait_until(lambda: topic.exists() and len(read_jsonl(topic)) == 1000, 60, "the snapshot", tm)
    cdc.sql("UPDATE orders SET note = 'x' WHERE id <= 10;")
    wait_until(lambda: len(read_jsonl(topic)) == 1010, 60, "the updates", tm)

    def samples():
        return parse(tm.admin_get("/metrics"))

    # Commits happen per checkpoint; wait until the histogram has some.
    wait_until(lambda: (value(samples(), "tidemark_sink_commit_duration_seconds_count",
                              sink="out") or 0) >= 2, 30, "sink commits", tm)
    s = samples()
    assert value(s, "tidemark_build_info", version=re.search(
        r'tidemark_build_info\{version="([^"]+)"', tm.admin_get("/metrics")).group(1)) == 1
    assert value(s, "tidemark_source_events_total", source="shop") == 1010
    assert value(s, "tidemark_snapshot_rows", source="shop", table="public.orders") == 1000
    assert value(s, "tidemark_snapshot_rows_estimate", source="shop", table="public.orders") == 1000
    assert value(s, "tidemark_snapshot_tables_done_total", source="shop") == 1
    assert value(s, "tidemark_sink_records_total", sink="out") == 1010
    lag = value(s, "tidemark_source_lag_seconds", source="shop")
    assert lag is not None and 0 <= lag < 60, lag
    # The slot catches up once the checkpoints acknowledge everything; idle, it stays at 0.
    wait_until(lambda: value(samples(), "tidemark_source_lag_bytes", source="shop") == 0, 30,
               "the slot to catch up", tm)
    # The histogram is cumulative and ends with +Inf = _count.
    buckets = sorted((float(dict(k[1])["le"]), v) for k, v in s.items()
                     if k[0] == "tidemark_sink_commit_duration_seconds_bucket"
                     and dict(k[1])["le"] != "+Inf")
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), buckets
    total = value(s, "tidemark_sink_commit_duration_seconds_count", sink="out")
    assert value(s, "tidemark_sink_commit_duration_seconds_bucket", sink="out", le="+Inf") == total
    assert counts[-1] <= total
    # The upsert operator keeps one row per key: its state has bytes.
    assert (value(s, "tidemark_state_bytes", operator="upsert/shop/out") or 0) > 0, \
        [k for k in s if k[0] == "tidemark_state_bytes"]
    assert value(s, "tidemark_operator_state_reads_total", operator="upsert/shop/out") > 0
    assert value(s, "tidemark_process_resident_memory_bytes") > 1 << 20
    assert value(s, "tidemark_process_cpu_seconds_total") > 0
    assert value(s, "tidemark_checkpoints_completed_total") >= 2
    (src,) = json.loads(tm.admin_get("/v1/job"))["sources"]
    assert src["snapshot"] == {"table": "public.orders", "rows": 1000, "estimate": 1000,
                               "tables_done": 1, "done": True}, src
    assert src["lag_bytes"] == 0 and src["lag_ms"] >= 0, src
    assert tm.terminate() == 0, tm.log_tail()
