"""deploy/grafana/tidemark.json: a dashboard over metrics that really exist, in valid PromQL.

- every tidemark_* name in a panel's query is a family a live daemon's
  /metrics exports (a histogram's _bucket/_sum/_count included);
- every query parses as PromQL: they are written into a rules file
  (Grafana's $__rate_interval and the $job/$instance variables filled in)
  and checked with Prometheus' own promtool;
- the panels cover what operators watch (DESIGN §9): throughput per source
  and operator, source lag, checkpoint duration and size, state memory, sink
  commit latency, errors, join state; ids are unique and the grid fits.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tidemark import wait_until

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "tidemark.json"
WATCHED = [
    "tidemark_source_events_total", "tidemark_operator_records_in_total",
    "tidemark_operator_records_out_total", "tidemark_source_lag_seconds",
    "tidemark_source_lag_bytes", "tidemark_checkpoint_duration_seconds",
    "tidemark_checkpoint_state_bytes", "tidemark_state_block_cache_bytes",
    "tidemark_state_bytes", "tidemark_sink_commit_duration_seconds",
    "tidemark_operator_row_errors_total", "tidemark_checkpoints_failed_total",
    "tidemark_operator_state_rows", "tidemark_errors_total", "tidemark_late_rows_total",
]


def queries() -> list:
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out.append((p["id"], t["refId"], t["expr"]))
    return out


def referenced(expr: str) -> set:
    names = set(re.findall(r"\btidemark_[a-z_]+", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", n) if n.endswith(("_bucket", "_sum", "_count"))
            else n for n in names}


def test_queries_use_only_exported_metrics(cdc):
    cdc.sql("CREATE TABLE orders (id int PRIMARY KEY, note text); INSERT INTO orders VALUES (1, 'a');")
    tm = cdc.start(cdc.job(snapshot="initial") +
                   "SET checkpoint_interval = '200ms';\nSET admin_address = '127.0.0.1:0';\n")
    text = wait_until(lambda: tm.admin_get("/metrics"), 30, "/metrics", tm)
    families = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    assert tm.terminate() == 0, tm.log_tail()
    used = set()
    for pid, ref, expr in queries():
        for name in referenced(expr):
            assert name in families, f"panel {pid} query {ref} uses {name}, which /metrics does not export"
            used.add(name)
    missing = [n for n in WATCHED if n not in used]
    assert not missing, f"the dashboard shows nothing of {missing}"


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool is not installed (scripts/setup.sh installs prometheus)")
def test_queries_are_valid_promql(tmp_path):
    rules = ["groups:", "  - name: tidemark-dashboard", "    rules:"]
    for pid, ref, expr in queries():
        e = (expr.replace("$__rate_interval", "5m").replace("$job", ".*")
             .replace("$instance", ".*"))
        assert "$" not in e, f"panel {pid}: an unknown variable in {expr}"
        rules += [f"      - record: tidemark_dashboard:panel{pid}_{ref}",
                  f"        expr: {json.dumps(e)}"]
    f = tmp_path / "rules.yml"
    f.write_text("\n".join(rules) + "\n")
    r = subprocess.run(["promtool", "check", "rules", str(f)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(queries())} rules found" in r.stdout, r.stdout


def test_layout():
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), ids
    names = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "job", "instance"} <= names
    for p in dash["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}", p["title"]
            assert p["targets"], p["title"]
