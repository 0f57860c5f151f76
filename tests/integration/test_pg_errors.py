"""Bad configurations and unusable sources: tidemark stops and says what to do.

Each case must end the process with exit code 2 (configuration or SQL
error) or 3 (a source error that retrying cannot fix), rather than retry
forever, and print a message on stderr that names the problem.  Messages
are matched loosely, case-insensitively, on a few keywords, so that the
wording can improve without breaking the tests.
"""

import re
import subprocess

import pytest

from pgserver import PgServer
from tidemark import EXIT_CONFIG, EXIT_SOURCE, cdc_job, create_table, run_cli, wait_until

ORDERS = "CREATE TABLE public.orders (id int PRIMARY KEY, amount numeric(10,2), status text);"

# Long enough for any startup, short enough that a daemon that retries
# forever instead of failing is caught well within the test's deadline.
EXIT_TIMEOUT = 90


# Connection-string keys that a message may echo (masked or not).  They are
# blanked before the keyword checks, so that "password=****" or
# "replication=database" cannot pass for an explanation of the problem.
CONNINFO_KEYS = r"(?:host|hostaddr|port|dbname|user|password|replication|sslmode|application_name)"


def scrub(message, tmpdir=None):
    """The message without conninfo pairs and temporary paths (they hold test names)."""
    if tmpdir is not None:
        message = message.replace(str(tmpdir), "<tmp>")
    return re.sub(rf"\b{CONNINFO_KEYS}\s*=\s*('[^']*'|\S+)", "<conninfo>", message)


def expect_failure(tm, codes=(EXIT_CONFIG, EXIT_SOURCE), all_of=(), any_of=()):
    """Waits for the daemon to fail; checks its exit code and its message."""
    code = tm.wait_exit(EXIT_TIMEOUT)
    message = tm.log_text()
    assert code in codes, f"exit code {code}, expected one of {codes}\n{tm.log_tail()}"
    check_message(scrub(message, tm.dir.parent), all_of, any_of)
    return message


def check_message(message, all_of=(), any_of=()):
    """Checks for keywords, case-insensitively; message should be scrubbed first."""
    lowered = message.lower()
    for word in all_of:
        assert word.lower() in lowered, f"the error should mention {word!r}:\n{message}"
    if any_of:
        assert any(word.lower() in lowered for word in any_of), \
            f"the error should mention one of {list(any_of)}:\n{message}"


def test_wrong_password(cdc, pw_role):
    role, _ = pw_role
    cdc.sql(ORDERS)
    tm = cdc.start(source={"dsn": cdc.dsn(user=role, password="not-the-password")})
    message = expect_failure(tm, any_of=("password", "authentication"))
    assert "not-the-password" not in message, "a password must never appear in the log"


@pytest.fixture
def replica_level_pg():
    """A second server, restarted with wal_level = replica."""
    server = PgServer()
    server.start()
    try:
        server.restart({"wal_level": "replica"})
        yield server
    finally:
        server.stop()


def test_wal_level_not_logical(cdc, replica_level_pg):
    replica_level_pg.psql(ORDERS)
    tm = cdc.start(source={"dsn": replica_level_pg.dsn("postgres")})
    expect_failure(tm, all_of=("wal_level",))


def test_role_without_replication_attribute(cdc):
    # Roles belong to the whole (throwaway) server, so the name is made
    # unique per test and the role is simply left behind.
    role = f"{cdc.db}_norepl"
    cdc.sql(ORDERS + f"""
        CREATE ROLE "{role}" LOGIN;
        GRANT SELECT ON orders TO "{role}";
        CREATE PUBLICATION "{cdc.publication}" FOR TABLE orders;
    """)
    tm = cdc.start(source={"dsn": cdc.dsn(user=role)})
    expect_failure(tm, all_of=("replication",))


def test_missing_publication_with_create_false(cdc):
    cdc.sql(ORDERS + f"SELECT pg_create_logical_replication_slot('{cdc.slot}', 'pgoutput');")
    tm = cdc.start(source={"create": False})
    # A daemon that does not check at startup would meet the missing
    # publication when the server decodes this change; either way it must
    # stop with an error rather than reconnect forever.
    cdc.sql("INSERT INTO orders VALUES (1, 1.00, 'new');")
    expect_failure(tm, all_of=("publication",))


def test_slot_in_use_by_another_process(cdc):
    cdc.sql(ORDERS + f"""
        CREATE PUBLICATION "{cdc.publication}" FOR TABLE orders;
        SELECT pg_create_logical_replication_slot('{cdc.slot}', 'pgoutput');
    """)
    holder = subprocess.Popen(
        [str(cdc.pg.bindir / "pg_recvlogical"), "-d", cdc.dsn(), "--slot", cdc.slot,
         "--start", "--no-loop", "-f", "/dev/null",
         "-o", "proto_version=1", "-o", f"publication_names={cdc.publication}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def held():
            row = cdc.slot_row()
            return row is not None and row[0]

        wait_until(held, 30, f"pg_recvlogical to hold slot {cdc.slot}", holder)
        tm = cdc.start()
        expect_failure(tm, all_of=("slot",), any_of=("active", "in use"))
    finally:
        holder.terminate()
        holder.wait(timeout=30)


def test_table_that_does_not_exist(cdc):
    cdc.sql(ORDERS)
    tm = cdc.start(tables="public.orders, public.no_such_table")
    expect_failure(tm, all_of=("does not exist", "no_such_table"))


BAD_SYNTAX_JOB = """\
CREATE TABLE shop () WITH (connector = 'postgres-cdc', dsn = '{dsn}', tables = 'public.orders');
CREATE TABLE out () WITH (connector = 'file' path = '{path}', format = 'debezium-json');
INSERT INTO out SELECT * FROM shop;
"""


# The mistake (a missing comma) is on line 2; the message must call it a
# syntax error or point at the line, as "line 2" or "job.sql:2:".
SYNTAX_HINT = re.compile(r"syntax|line\s*2\b|:2(:\d+)?:", re.IGNORECASE)


@pytest.mark.parametrize("command", ["run", "explain"])
def test_sql_syntax_error(cdc, command):
    job = BAD_SYNTAX_JOB.format(dsn=cdc.dsn(), path=cdc.out_dir)
    tm = cdc.tidemark(job)
    if command == "run":
        tm.start()
        code = tm.wait_exit(EXIT_TIMEOUT)
        message = tm.log_text()
    else:
        result = run_cli(["explain", tm.job_path], bin=cdc.bin)
        code, message = result.returncode, result.stdout + result.stderr
    assert code == EXIT_CONFIG, f"exit code {code}, expected {EXIT_CONFIG}:\n{message}"
    assert SYNTAX_HINT.search(scrub(message, cdc.dir)), \
        f"the error should say 'syntax' or point at line 2:\n{message}"


@pytest.mark.parametrize("command", ["run", "explain"])
def test_unknown_option(cdc, command):
    cdc.sql(ORDERS)
    tm = cdc.tidemark(cdc.job(source={"slott": "typo"}))
    if command == "run":
        tm.start()
        expect_failure(tm, codes=(EXIT_CONFIG,), all_of=("slott",))
    else:
        result = run_cli(["explain", tm.job_path], bin=cdc.bin)
        message = result.stdout + result.stderr
        assert result.returncode == EXIT_CONFIG, message
        check_message(scrub(message, cdc.dir), all_of=("slott",))


def test_declared_column_missing_from_the_table(cdc):
    cdc.sql(ORDERS)
    source = {"connector": "postgres-cdc", "dsn": cdc.dsn(), "table": "public.orders",
              "slot": cdc.slot, "publication": cdc.publication, "snapshot": "never"}
    job = "\n".join([
        create_table("orders", source,
                     columns="id int PRIMARY KEY, amount numeric(10,2), no_such_column text"),
        create_table("out", cdc.file_sink()),
        "INSERT INTO out SELECT * FROM orders;",
    ])
    tm = cdc.tidemark(job).start()
    expect_failure(tm, codes=(EXIT_CONFIG,), all_of=("no_such_column",))


def test_sink_without_source_is_a_config_error(cdc):
    # The INSERT reads from a table that the job never declares.
    job = cdc_job(cdc.source(), cdc.file_sink()).replace("FROM shop", "FROM nowhere")
    tm = cdc.tidemark(job).start()
    expect_failure(tm, codes=(EXIT_CONFIG,), all_of=("nowhere",))
