"""Hostile or careless inputs (issue 9, items 4, 5, 11 and 16).

Secrets never reach the log or `explain`; a table name cannot forge a log
line or shape a file name; job files and ${file:} secrets are bounded and
every ${...} reference is a value or an error; binary input is refused
without echoing its bytes; the "no connector" message lists every connector.
"""

import re

from tidemark import create_table, run_cli, wait_until

ORDERS = "CREATE TABLE public.orders (id int PRIMARY KEY, amount int, status text);"
SECRETS = ("s3cret", "tailE", "k3yPass0rd", "fr0mfile")
LOG_LINE = re.compile(r'^ts=\S+ level=(error|warn|info|debug) comp=\S+ msg="')


def explain(cdc, job_sql, name="job.sql"):
    path = cdc.dir / name
    path.write_text(job_sql)
    return run_cli(["explain", path], bin=cdc.bin, timeout=30)


def test_secrets_masked_in_source_opened_log_and_explain(cdc):
    cdc.sql(ORDERS)
    secret_file = cdc.dir / "sslpw"
    secret_file.write_text("fr0mfile\n")
    # The server trusts the test's user, so the passwords are carried but unused.
    dsn = (cdc.dsn() + r" password=s3cret\ tailE sslpassword=k3yPass0rd"
           + " application_name='tm ${file:%s}'" % secret_file)
    job = cdc.job(source={"dsn": dsn})
    out = explain(cdc, job)
    assert out.returncode == 0, out.stderr
    for secret in SECRETS[:3]:
        assert secret not in out.stdout + out.stderr, out.stdout
    assert "password=****" in out.stdout and "sslpassword=****" in out.stdout, out.stdout

    tm = cdc.start(job)
    wait_until(lambda: "source opened" in tm.log_text(), 60, "the source to open", tm)
    log = tm.log_text()
    opened = [line for line in log.splitlines() if "source opened" in line]
    assert opened and "password=****" in opened[0], opened
    for secret in SECRETS[:3]:
        assert secret not in log, f"{secret} in the log:\n{log}"


def test_table_name_cannot_forge_log_lines_or_file_names(cdc):
    evil = 'x\nts=2026-01-01T00:00:00.000Z level=error comp=main msg="forged" ../y'
    quoted = '"' + evil.replace('"', '""') + '"'
    cdc.sql(f"CREATE TABLE public.{quoted} (id int PRIMARY KEY, v text);"
            f"INSERT INTO public.{quoted} VALUES (1, 'a');")
    tm = cdc.start(tables="public.*", snapshot="initial")

    def written():
        files = [p for p in cdc.out_dir.rglob("*") if p.is_file() and p.stat().st_size > 0]
        return files or None

    files = wait_until(written, 60, "the snapshot row in the sink", tm)
    # One file, directly in the sink's directory, named without a newline or a path.
    assert all(p.parent == cdc.out_dir for p in files), files
    assert all("\n" not in p.name and "/" not in p.name for p in files), files
    # The topic is named as Debezium names it: every character Kafka refuses (the
    # newline, the spaces, '=', '"') is '_', so the file name is one plain word.
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", p.name) and "forged" in p.name
               for p in files), files
    log = tm.log_text()
    assert "forged" in log, "the table name should appear (escaped) in the log"
    for line in log.splitlines():
        assert LOG_LINE.match(line), f"a line that is not a log line: {line!r}\n{log}"
        assert not ("forged" in line and line.split(" msg=")[0].endswith("level=error")), line
    assert not any(line.startswith("ts=2026-01-01") for line in log.splitlines()), log


def test_job_file_bounds_and_binary_input(cdc):
    cases = {
        "/dev/zero": "larger than 4 MiB",
        str(cdc.dir): "is a directory",
    }
    nul = cdc.dir / "nul.sql"
    nul.write_bytes(b"SELECT 1;\n\x00\x01")
    cases[str(nul)] = ":2:1: the job file holds a NUL byte"
    binary = cdc.dir / "binary.sql"
    binary.write_bytes(b"SELECT '\xff\xfe\x1b[2J';")
    cases[str(binary)] = "not UTF-8 (0xff)"
    for path, words in cases.items():
        out = run_cli(["explain", path], bin=cdc.bin, timeout=30)
        assert out.returncode != 0, path
        assert words in out.stderr, (path, out.stderr)
        assert "\x1b" not in out.stderr and "\x00" not in out.stderr, out.stderr


def test_references_are_values_or_errors(cdc):
    secret_dir = cdc.dir / "secrets"
    secret_dir.mkdir()
    cases = {
        "${file:%s}" % secret_dir: "is a directory",
        "${file:/dev/zero}": "larger than 4 MiB",
        "${env:TM_NOT_CLOSED": "no closing",
        "${foo:bar}": "unknown reference",
    }
    for value, words in cases.items():
        job = cdc.job(source={"dsn": cdc.dsn() + " application_name=" + value})
        out = explain(cdc, job)
        assert out.returncode == 2, (value, out.stdout, out.stderr)
        assert words in out.stderr and "'dsn'" in out.stderr, (value, out.stderr)


def test_no_connector_lists_every_connector(cdc):
    job = "\n".join([
        "CREATE TABLE shop (id int) WITH (tables = 'public.orders');",
        create_table("out", cdc.file_sink()),
        "INSERT INTO out SELECT * FROM shop;",
    ])
    out = explain(cdc, job)
    assert out.returncode == 2, out.stderr
    for name in ("postgres-cdc", "file", "stdout", "kafka"):
        assert name in out.stderr, out.stderr


def test_many_inserts_explain_quickly(cdc):
    import time
    parts = [create_table("shop", cdc.source(), "id int PRIMARY KEY, amount int"),
             create_table("out", cdc.file_sink())]
    parts += [f"INSERT INTO out SELECT id, amount FROM shop WHERE id = {i};"
              for i in range(20000)]
    started = time.monotonic()
    out = explain(cdc, "\n".join(parts))
    elapsed = time.monotonic() - started
    assert out.returncode == 0, out.stderr[-2000:]
    assert elapsed < 20, f"20,000 INSERTs took {elapsed:.1f} s to explain"

