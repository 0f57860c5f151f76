"""Progress of an initial snapshot: a live line on a terminal, plain log lines elsewhere.

On a pseudo-terminal the daemon draws one progress line (rows, percent of
PostgreSQL's estimate, rate, time left) that each redraw replaces with
"\\r\\033[K", keeps log lines above it, and erases it when the table is done.
Into a file (the usual case: a service manager, a pipe) no escape sequence is
ever written, only the logfmt lines.
"""

import os
import pty
import re
import select
import subprocess
import time

from tidemark import create_table, read_jsonl, wait_until

ROWS = 200_000


def job_text(cdc, out):
    return "\n".join([
        create_table("shop", {"connector": "postgres-cdc", "dsn": cdc.dsn(),
                              "table": "public.orders", "slot": cdc.slot,
                              "publication": cdc.publication, "snapshot": "initial",
                              "snapshot_chunk_size": "1000"}),
        create_table("out", {"connector": "file", "path": str(out)}),
        "INSERT INTO out SELECT * FROM shop;", ""])


def make_table(cdc):
    cdc.sql(f"CREATE TABLE orders (id int PRIMARY KEY, note text);"
            f"INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, {ROWS}) g;"
            f"ANALYZE orders;")


def test_progress_line_on_a_terminal(cdc, tmp_path):
    make_table(cdc)
    job = tmp_path / "job.sql"
    job.write_text(job_text(cdc, tmp_path / "out"))
    master, slave = pty.openpty()
    # 3 ms per chunk of 1,000 rows: the snapshot lasts at least 0.6 s, so the line (redrawn every
    # 200 ms) is drawn more than once however fast the machine reads the table.
    env = dict(os.environ, TIDEMARK_FAILPOINTS="pg.snapshot.chunk=sleep(3)")
    proc = subprocess.Popen([str(cdc.bin), "run", str(job), "--state-dir", str(tmp_path / "state")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave,
                            env=env)
    os.close(slave)
    out = b""
    try:
        deadline = time.monotonic() + 90
        while b"done=true" not in out and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    out += os.read(master, 65536)
                except OSError:
                    break
            assert proc.poll() is None, out.decode(errors="replace")[-3000:]
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        os.close(master)
    text = out.decode(errors="replace")
    assert "done=true" in text, text[-3000:]
    draws = re.findall(r"\r\x1b\[Ksnapshot shop public\.orders \[[# ]{20}\] +(\d+)% ([\d,]+) of "
                       r"~200,000 rows, [\d,]+ rows/s, ~\d+ (?:s|min|h) left", text)
    assert len(draws) >= 2, text[-3000:]
    counts = [int(n.replace(",", "")) for _, n in draws]
    assert counts == sorted(counts) and counts[-1] < ROWS, counts
    # The log line that ends the table is printed on a clean line, after the last draw.
    assert re.search(r"\r\x1b\[Kts=\S+ level=info comp=postgres msg=\"snapshot progress\" .*"
                     r"rows=200000 .*done=true", text), text[-2000:]


def test_no_escape_sequences_in_a_log_file(cdc, tmp_path):
    make_table(cdc)
    tm = cdc.start(job_text(cdc, cdc.out_dir))
    wait_until(lambda: "done=true" in tm.log_text(), 90, "the end of the snapshot", tm)
    assert tm.terminate() == 0, tm.log_tail()
    log = tm.log_text()
    assert "\x1b" not in log and "\r" not in log, repr(log[-2000:])
    assert re.search(r'msg="snapshot progress" .*rows=200000 .*done=true', log), log[-2000:]
