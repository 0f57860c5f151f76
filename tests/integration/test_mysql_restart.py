"""A mysql-cdc job killed with kill -9 and restarted at once resumes (tests/lib/mariadbserver.py).

The server keeps a killed replica's registration until its dump thread
notices the closed connection, at the next heartbeat write; a restart within
that window (up to a heartbeat period, 5 s here) used to fail with
"server_id ... is already used by a replica".
It now waits up to two heartbeat periods for its own previous connection to
go, and resumes: the rows committed around the kill arrive, none twice.
"""

import pytest

from mariadbserver import MariaDbServer
from tidemark import Tidemark, cdc_job, read_jsonl, wait_for_lines, wait_until


@pytest.fixture(scope="module")
def my():
    with MariaDbServer() as server:
        yield server


def test_restart_right_after_kill9_resumes(my, tmp_path, tidemark_bin):
    my.sql("DROP DATABASE IF EXISTS rk; CREATE DATABASE rk; "
           "CREATE TABLE rk.t (id INT PRIMARY KEY, v INT)")
    out = tmp_path / "out"
    job = cdc_job({"connector": "mysql-cdc", "host": my.host, "port": my.port, "user": "root",
                   "tables": "rk.t", "server_id": 5471, "snapshot": "never",
                   "heartbeat_interval": "5s"},
                  {"connector": "file", "path": str(out), "format": "debezium-json"},
                  source_name="inv") + "SET checkpoint_interval = '200ms';\n"
    tm = Tidemark(job, tmp_path / "tm", bin=tidemark_bin)
    tm.start()
    wait_until(lambda: 'msg="completed" checkpoint=' in tm.log_text() or None, 30,
               "a first checkpoint", proc=tm.proc)
    my.sql("INSERT INTO rk.t VALUES (1, 1), (2, 2)")
    topic = out / "inv.rk.t.jsonl"
    wait_for_lines(topic, 2, proc=tm.proc)
    wait_until(lambda: any(r[0] == "5471" for r in my.query("SHOW SLAVE HOSTS")) or None, 30,
               "the job is a registered replica", proc=tm.proc)
    tm.kill9()
    # Still registered: the restart comes before the server noticed the kill (no event
    # is written meanwhile: one would wake the dump thread, which would then notice).
    assert any(r[0] == "5471" for r in my.query("SHOW SLAVE HOSTS"))
    offset = tm.start_with()
    wait_until(lambda: 'msg="source opened"' in tm.section(offset) or None, 30,
               "the restarted job opened its source", proc=tm.proc)
    my.sql("INSERT INTO rk.t VALUES (3, 3)")
    my.sql("UPDATE rk.t SET v = 30 WHERE id = 3")
    lines = wait_for_lines(topic, 4, proc=tm.proc)
    assert tm.running(), tm.log_tail()
    ops = [(x["payload"]["op"], x["payload"]["after"]["id"]) for x in read_jsonl(topic)]
    assert ops == [("c", 1), ("c", 2), ("c", 3), ("u", 3)], ops
    assert len(lines) == 4
    assert tm.terminate() == 0
