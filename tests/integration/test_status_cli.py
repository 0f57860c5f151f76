"""`tidemark status`: the running job in readable lines, and the --live / --ready probes.

The probes are what deploy/kubernetes uses as exec probes: the kubelet cannot
send a bearer token from a Secret, so the command reads TIDEMARK_ADMIN_TOKEN.
"""

import os
import re
import subprocess

from tidemark import read_jsonl, wait_until

TOKEN = "s3cret-token-for-status"


def status(tm, *args, token=None, timeout=30):
    env = dict(os.environ)
    env.pop("TIDEMARK_ADMIN_TOKEN", None)
    if token is not None:
        env["TIDEMARK_ADMIN_TOKEN"] = token
    return subprocess.run([str(tm.bin), "status", "--state-dir", str(tm.state_dir), *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_status_and_probes(cdc):
    cdc.sql("CREATE TABLE orders (id int PRIMARY KEY, note text); INSERT INTO orders VALUES (1, 'a');")
    job = cdc.job(snapshot="initial") + (
        "SET admin_address = '127.0.0.1:0';\n"
        f"SET admin_token = '{TOKEN}';\n")
    tm = cdc.start(job)
    topic = cdc.topic_path("orders")
    wait_until(lambda: topic.exists() and len(read_jsonl(topic)) == 1, 60, "the snapshot row", tm)
    wait_until(lambda: status(tm, "--ready", token=TOKEN).returncode == 0, 60, "readiness", tm)

    live = status(tm, "--live", token=TOKEN)
    assert live.returncode == 0 and live.stdout.strip() == "ok", live
    r = status(tm, token=TOKEN)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"job job ({tm.job_path}), tidemark "), r.stdout
    assert "no operator stages, checkpoints off" in r.stdout, r.stdout
    assert "source shop: streaming, 1 events" in r.stdout, r.stdout
    assert "sink out" in r.stdout, r.stdout

    # Without the token the daemon answers 401, and the command says what to do.
    bad = status(tm, "--live")
    assert bad.returncode == 1 and "TIDEMARK_ADMIN_TOKEN" in bad.stderr, bad
    wrong = status(tm, "--ready", token="wrong")
    assert wrong.returncode == 1 and "401" in wrong.stderr, wrong
    # Usage errors exit 2.
    both = status(tm, "--live", "--ready", token=TOKEN)
    assert both.returncode == 2 and "not both" in both.stderr, both

    assert tm.terminate() == 0, tm.log_tail()
    gone = status(tm, "--live", token=TOKEN)
    assert gone.returncode == 1, gone
    assert "is tidemark running" in gone.stderr or "cannot read" in gone.stderr, gone.stderr


def test_checkpoints_lists_checkpoints_and_savepoints(cdc, tmp_path):
    """`tidemark checkpoints`: every completed checkpoint and savepoint, oldest first, with positions."""
    cdc.sql("CREATE TABLE orders (id int PRIMARY KEY, note text);"
            "INSERT INTO orders SELECT g, 'n' FROM generate_series(1, 100) g;")
    job = (f"CREATE TABLE shop (id int PRIMARY KEY, note text) WITH (connector = 'postgres-cdc', "
           f"dsn = '{cdc.dsn()}', \"table\" = 'public.orders', slot = '{cdc.slot}', "
           f"publication = '{cdc.publication}', snapshot = 'initial');\n"
           f"CREATE TABLE out () WITH (connector = 'file', path = '{cdc.out_dir}');\n"
           "INSERT INTO out SELECT * FROM shop;\n"
           "SET checkpoint_interval = '200ms';\nSET admin_address = '127.0.0.1:0';\n")
    tm = cdc.start(job)
    wait_until(lambda: len(list(tm.state_dir.glob("checkpoints/chk-*/_metadata"))) >= 1, 60,
               "a checkpoint", tm)
    sp = subprocess.run([str(tm.bin), "stop", "--savepoint", "--state-dir", str(tm.state_dir)],
                        capture_output=True, text=True, timeout=120)
    assert sp.returncode == 0, sp.stderr
    sp_path = sp.stdout.strip()
    tm.wait_exit(60)
    r = subprocess.run([str(tm.bin), "checkpoints", "--state-dir", str(tm.state_dir)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["KIND", "ID", "COMPLETED"], r.stdout
    rows = [l.split() for l in lines[1::2]]
    paths = [l.strip() for l in lines[2::2]]
    kinds = [row[0] for row in rows]
    assert "checkpoint" in kinds and kinds[-1] == "savepoint", r.stdout
    assert paths[-1] == sp_path, r.stdout
    chk_ids = [int(row[1]) for row in rows if row[0] == "checkpoint"]
    assert chk_ids == sorted(chk_ids), r.stdout
    # Positions are the source's LSNs; the upsert operator's state has a size.
    assert all(re.search(r"shop=[0-9A-F]+/[0-9A-F]+", l) for l in lines[1::2]), r.stdout
    assert any(row[0] == "checkpoint" and (row[5], row[6]) != ("0", "B") for row in rows), r.stdout
    missing = subprocess.run([str(tm.bin), "checkpoints", "--state-dir", str(tmp_path / "nope")],
                             capture_output=True, text=True, timeout=30)
    assert missing.returncode == 2 and "does not exist" in missing.stderr, missing
