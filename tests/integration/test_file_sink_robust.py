"""The file sink and the state directory against hostile conditions (issue 9).

  * item 7:  a full disk without checkpoints tears the last line of a topic
             file; the restart cuts it before appending, so every line stays
             JSON (a 1 MiB tmpfs; skipped where mounting is not allowed);
  * item 8:  a second daemon on the same --state-dir is refused, and told
             which process holds it;
  * item 12: a Kafka record whose source.table is "../../x", "a/b", a
             newline or 3,000 bytes long gets a file of its own inside the
             sink's directory instead of stopping the sink on every restart;
  * item 13: a `public.*` source with 1,100 tables runs under `ulimit -n
             1024` (the sink keeps a bounded pool of open files);
  * item 14: a SQL_ASCII database's Latin-1 bytes reach the output as U+FFFD,
             so every line is valid UTF-8 JSON.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from tidemark import EXIT_CONFIG, read_jsonl, wait_for_lines, wait_until


def strict_lines(path: Path) -> list:
    """Every line of path, decoded as strict UTF-8 and parsed as JSON (raises otherwise)."""
    data = path.read_bytes()
    assert data.endswith(b"\n"), f"{path} ends in a torn line: {data[-80:]!r}"
    return [json.loads(line.decode("utf-8")) for line in data.split(b"\n")[:-1]]


# -- item 14 ------------------------------------------------------------------


def test_sql_ascii_bytes_become_replacement_characters(ascii_cdc):
    cdc = ascii_cdc
    conn = cdc.connect()
    cur = conn.cursor()
    # Raw Latin-1 bytes in a column name and in values: SQL_ASCII stores any byte.
    cur.execute(b'CREATE TABLE public.orders (id int PRIMARY KEY, "caf\xe9" text, note text)')
    tm = cdc.start()
    cdc.wait_slot_ready(tm)
    cur.execute(b"INSERT INTO public.orders VALUES (1, 'cr\xe8me br\xfbl\xe9e', 'ok'), "
                b"(2, 'utf8 caf\xc3\xa9', 'x\xff\xfey')")
    path = cdc.topic_path("orders")
    wait_until(lambda: path.exists() and path.read_bytes().count(b"\n") >= 2, 60,
               "two lines in the topic file", tm)
    lines = strict_lines(path)
    after = [line["payload"]["after"] for line in lines]
    assert after[0] == {"id": 1, "caf\ufffd": "cr\ufffdme br\ufffdl\ufffde", "note": "ok"}
    # Well-formed UTF-8 stays; each ill-formed byte is one U+FFFD (as Java's decoder).
    assert after[1] == {"id": 2, "caf\ufffd": "utf8 caf\u00e9", "note": "x\ufffd\ufffdy"}
    fields = lines[0]["schema"]["fields"][1]["fields"]
    assert "caf\ufffd" in [f["field"] for f in fields]
    assert tm.terminate() == 0, tm.log_tail()


# -- item 8 -------------------------------------------------------------------


def test_a_second_daemon_on_the_same_state_dir_is_refused(cdc):
    cdc.sql("CREATE TABLE public.orders (id int PRIMARY KEY);")
    first = cdc.start()
    cdc.wait_slot_ready(first)
    second = cdc.tidemark(cdc.job(), name="tm2")
    second.state_dir = first.state_dir
    second.start()
    assert second.wait_exit(60) == EXIT_CONFIG, second.log_tail()
    message = second.log_text()
    assert f"pid {first.proc.pid}" in message, message
    assert "in use" in message and "--state-dir" in message, message
    # The first one is unaffected: each row once.
    cdc.sql("INSERT INTO public.orders SELECT g FROM generate_series(1, 50) g;")
    lines = wait_for_lines(cdc.topic_path("orders"), 50, proc=first.proc)
    assert len(lines) == 50
    assert first.terminate() == 0, first.log_tail()
    # After it ends, the state directory is free again.
    second.start()
    cdc.sql("INSERT INTO public.orders VALUES (51);")
    wait_for_lines(cdc.topic_path("orders"), 51, proc=second.proc)
    assert second.terminate() == 0, second.log_tail()


# -- item 7 -------------------------------------------------------------------


def _mount_tmpfs(path: Path, size: str) -> bool:
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True)
    return r.returncode == 0


def test_a_full_disk_leaves_no_torn_line_after_restart(cdc):
    if not _mount_tmpfs(cdc.out_dir, "1m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        cdc.sql("CREATE TABLE public.orders (id int PRIMARY KEY, pad text);")
        tm = cdc.start()
        cdc.wait_slot_ready(tm)
        # About 2 MB of lines of odd lengths: the disk fills in the middle of one.
        cdc.sql("INSERT INTO public.orders SELECT g, repeat('x', 2000 + g % 97) "
                "FROM generate_series(1, 1000) g;")
        code = tm.wait_exit(90)
        assert code != 0, tm.log_tail()
        assert "No space left on device" in tm.log_text(), tm.log_tail()
        path = cdc.topic_path("orders")
        torn = not path.read_bytes().endswith(b"\n")
        subprocess.run(["mount", "-o", "remount,size=16m", str(cdc.out_dir)], check=True)
        tm.start()
        wait_until(lambda: {r["payload"]["after"]["id"] for r in read_jsonl(path)}
                   >= set(range(1, 1001)), 90, "every row in the topic file", tm)
        assert tm.terminate() == 0, tm.log_tail()
        ids = {r["payload"]["after"]["id"] for r in strict_lines(path)}
        assert ids == set(range(1, 1001))
        if torn:
            assert "cut a torn last line" in tm.log_text(), tm.log_tail()
    finally:
        for daemon in cdc.daemons:
            daemon.kill9()
        subprocess.run(["umount", "-l", str(cdc.out_dir)])


# -- item 13 ------------------------------------------------------------------


def test_over_a_thousand_tables_under_ulimit_1024(cdc, tmp_path):
    ntables = 1100
    cdc.sql("".join(f"CREATE TABLE public.t{i:04d} (id int PRIMARY KEY);" for i in range(ntables)))
    # The daemon itself runs with a soft and hard limit of 1024 descriptors.
    wrapper = tmp_path / "tidemark-ulimit"
    wrapper.write_text(f"#!/bin/sh\nulimit -n 1024 || exit 99\nexec '{cdc.bin}' \"$@\"\n")
    wrapper.chmod(0o755)
    cdc.bin = wrapper
    tm = cdc.start(tables="public.*")
    cdc.wait_slot_ready(tm, timeout=120)
    # Two rounds over every table: each file is closed and reopened at least once.
    for rnd in range(2):
        cdc.sql("".join(f"INSERT INTO public.t{i:04d} VALUES ({rnd});" for i in range(ntables)))

    def all_there():
        return all(p.exists() and p.read_bytes().count(b"\n") == 2
                   for p in (cdc.topic_path(f"t{i:04d}") for i in range(ntables)))

    wait_until(all_there, 180, f"two lines in each of {ntables} files", tm)
    assert "Too many open files" not in tm.log_text()
    assert tm.terminate() == 0, tm.log_tail()
    for i in (0, 517, ntables - 1):
        assert [r["payload"]["after"]["id"] for r in strict_lines(cdc.topic_path(f"t{i:04d}"))] \
            == [0, 1]


# -- item 12 ------------------------------------------------------------------


@pytest.fixture
def kafka_case(kafka, tmp_path, tidemark_bin, request):
    from test_kafka_source import KafkaCase

    case = KafkaCase(kafka, tmp_path, tidemark_bin)
    yield case
    rep = getattr(request.node, "rep_call", None)
    case.cleanup(rep is None or rep.failed)


def test_hostile_table_names_from_kafka_stay_inside_the_sink_directory(kafka_case, tmp_path):
    from test_kafka_source import wait_records

    kcase = kafka_case
    topic = kcase.topic("hostile")
    tables = ["../../escape", "a/b", "line\nlevel=error msg=forged", "x" * 3000, ".hidden",
              "plain"]

    def event(i, table):
        return json.dumps({"before": None, "after": {"id": i}, "op": "c",
                           "source": {"connector": "postgresql", "name": "src", "db": "d",
                                      "schema": "public", "table": table}}).encode()

    kcase.produce(topic, [(str(i).encode(), event(i, t)) for i, t in enumerate(tables)])
    out = kcase.out()
    tm = kcase.start(kcase.simple_job(topic, out))
    got = wait_records(out, len(tables), tm)
    assert sorted(r["after"]["id"] for r in got) == list(range(len(tables)))
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == len(tables), names
    # Debezium's topic names first (characters Kafka refuses become '_', issue 10), then
    # the file-name escaping for what is left (the 249-character name, cut and hashed).
    assert "src.public..._.._escape.jsonl" in names
    assert "src.public.a_b.jsonl" in names
    assert "src.public.line_level_error_msg_forged.jsonl" in names
    assert "src.public.plain.jsonl" in names
    assert all(len(n.encode()) < 256 for n in names)
    # Nothing was written outside the sink's directory.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", "tm"]), \
        list(tmp_path.iterdir())
    assert tm.terminate() == 0, tm.log_tail()
