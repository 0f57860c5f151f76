#!/usr/bin/env bash
# A first run of tidemark, in one command.
#
# It builds tidemark (scripts/setup.sh), starts a throwaway PostgreSQL 15,
# creates a small "shop" database, and runs a job that streams every change
# of two tables to stdout as Debezium JSON, and keeps a live aggregate
# (revenue per customer, a GROUP BY over the orders changelog) in a file
# that the demo prints as a table after every change.  While the job runs
# it makes a few inserts, updates and deletes so you can watch them arrive
# and the view follow, then stops everything and deletes what it created.
# Running it again starts afresh.
#
# Events go to stdout; the demo's own commentary and tidemark's log go to
# stderr, so `scripts/demo.sh 2>/dev/null` shows only the events.
#
# `scripts/demo.sh --datagen` runs the server-less variant instead
# (scripts/demo-datagen.sh: tidemark over its datagen source, no PostgreSQL).
#
# Environment:
#   DEMO_SECONDS   roughly how long the changes take (default 10)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ "${1:-}" == "--datagen" ]]; then
    exec bash scripts/demo-datagen.sh
fi
ROOT=$PWD
PYTHON=/usr/bin/python3
PGBIN=/usr/lib/postgresql/15/bin
DEMO_SECONDS=${DEMO_SECONDS:-10}

if [[ -t 2 ]]; then
    bold=$'\e[1m' reset=$'\e[0m'
else
    bold="" reset=""
fi
say() { printf '%s[demo]%s %s\n' "$bold" "$reset" "$*" >&2; }
die() { say "error: $*"; exit 1; }

[[ "$DEMO_SECONDS" =~ ^[0-9]+$ ]] || die "DEMO_SECONDS must be a whole number of seconds"

say "installing packages and building tidemark (scripts/setup.sh)"
# Its output is commentary too: stdout is kept for the events alone.
bash scripts/setup.sh >&2
TIDEMARK="$ROOT/build/tidemark"
[[ -x "$TIDEMARK" ]] || die "the build did not produce $TIDEMARK"

workdir=$(mktemp -d /tmp/tidemark-demo.XXXXXX)
tidemark_pid=""
PGSERVER_DIR=""

# Stops tidemark if it still runs, then PostgreSQL, then deletes the temporary
# directory, however the script ends.
cleanup() {
    local status=$?
    if [[ -n "$tidemark_pid" ]] && kill -0 "$tidemark_pid" 2>/dev/null; then
        kill -KILL "$tidemark_pid" 2>/dev/null || true
        wait "$tidemark_pid" 2>/dev/null || true
    fi
    if [[ -n "$PGSERVER_DIR" ]]; then
        say "stopping PostgreSQL and removing $workdir"
        "$PYTHON" tests/lib/pgserver.py stop "$PGSERVER_DIR" || true
    fi
    rm -rf "$workdir"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "starting a throwaway PostgreSQL 15"
# Assigned first, so that a failing start stops the script (set -e does not
# see a failure inside `eval "$(...)"`).
pg_env=$("$PYTHON" tests/lib/pgserver.py start)
eval "$pg_env"
say "PostgreSQL listens on $PGHOST:$PGPORT (data in $PGSERVER_DIR)"

psql_in() {
    local db=$1
    shift
    "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U postgres -d "$db" "$@"
}

say "creating database shop with tables customers and orders, and a few rows"
psql_in postgres -c "CREATE DATABASE shop"
psql_in shop <<'SQL'
CREATE TABLE public.customers (id serial PRIMARY KEY, name text, email text);
CREATE TABLE public.orders (
    id serial PRIMARY KEY,
    customer_id int,
    amount numeric(10,2),
    status text,
    created_at timestamptz DEFAULT now()
);
INSERT INTO customers (name, email) VALUES
    ('Ada Lovelace', 'ada@example.com'),
    ('Alan Turing', 'alan@example.com');
INSERT INTO orders (customer_id, amount, status) VALUES (1, 12.34, 'new');
SQL

cat >"$workdir/job.sql" <<SQL
CREATE TABLE shop () WITH (connector = 'postgres-cdc', dsn = 'host=127.0.0.1 port=$PGPORT dbname=shop user=postgres', tables = 'public.orders, public.customers', slot = 'tidemark_demo', publication = 'tidemark_demo', snapshot = 'initial');
CREATE TABLE out () WITH (connector = 'stdout', format = 'debezium-json', schemas = false);
INSERT INTO out SELECT * FROM shop;

-- A live aggregate over the orders changelog: correct under updates and deletes.
CREATE TABLE orders (id int, customer_id int, amount numeric(10,2), status text, created_at timestamptz, PRIMARY KEY (id)) WITH (connector = 'postgres-cdc', dsn = 'host=127.0.0.1 port=$PGPORT dbname=shop user=postgres', table = 'public.orders', slot = 'tidemark_demo_orders', publication = 'tidemark_demo_orders', snapshot = 'initial');
CREATE TABLE revenue () WITH (connector = 'file', path = '$workdir/view', format = 'debezium-json', schemas = false, decimal_handling = 'string');
INSERT INTO revenue SELECT customer_id, count(*) AS orders, sum(amount) AS revenue, max(amount) AS biggest FROM orders WHERE status <> 'cancelled' GROUP BY customer_id;
SQL

# Prints the revenue view: the aggregate's changelog folded by its key.
show_view() {
    "$PYTHON" - "$workdir/view" <<'PY' >&2
import glob, json, sys
rows = {}
for path in sorted(glob.glob(sys.argv[1] + "/*.jsonl")):
    for line in open(path):
        line = line.strip()
        if not line or line == "null":
            continue
        p = json.loads(line)
        p = p.get("payload", p)
        if p.get("before") is not None:
            rows.pop(p["before"]["customer_id"], None)
        if p.get("after") is not None:
            rows[p["after"]["customer_id"]] = p["after"]
print("        view revenue (customer_id | orders | revenue | biggest):")
for k in sorted(rows, key=lambda v: (v is None, v)):
    r = rows[k]
    print(f"          {r['customer_id']!s:>11} | {r['orders']:>6} | {r['revenue']:>7} | {r['biggest']}")
PY
}
say "the job ($workdir/job.sql):"
sed 's/^/    /' "$workdir/job.sql" >&2

say "starting tidemark; the rows that exist now arrive first, as snapshot reads (op \"r\")"
"$TIDEMARK" run "$workdir/job.sql" --state-dir "$workdir/state" &
tidemark_pid=$!

# Changes count from the moment the replication slots exist, so wait for
# them (bounded) before making any.
for ((i = 0; i < 300; i++)); do
    kill -0 "$tidemark_pid" 2>/dev/null || die "tidemark exited early; its log is above"
    ready=$(psql_in shop -At -c "SELECT count(*) FROM pg_replication_slots
        WHERE slot_name IN ('tidemark_demo', 'tidemark_demo_orders')
          AND confirmed_flush_lsn IS NOT NULL")
    [[ "$ready" == 2 ]] && break
    sleep 0.1
done
[[ "${ready:-0}" == 2 ]] || die "tidemark did not create its replication slots within 30 seconds"

STATEMENTS=(
    "INSERT INTO customers (name, email) VALUES ('Grace Hopper', 'grace@example.com')"
    "INSERT INTO orders (customer_id, amount, status) VALUES (3, 42.00, 'new')"
    "INSERT INTO orders (customer_id, amount, status) VALUES (2, 19.99, 'new')"
    "UPDATE orders SET status = 'paid' WHERE id = 1"
    "UPDATE customers SET email = 'ada@lovelace.example' WHERE id = 1"
    "INSERT INTO orders (customer_id, amount, status) VALUES (1, 5.50, 'new')"
    "UPDATE orders SET status = 'shipped' WHERE id = 1"
    "DELETE FROM orders WHERE id = 3"
    "BEGIN; INSERT INTO orders (customer_id, amount, status) VALUES (2, 99.00, 'new'); UPDATE customers SET name = 'Alan M. Turing' WHERE id = 2; COMMIT"
    "UPDATE orders SET amount = amount + 1 WHERE status = 'new'"
    "INSERT INTO customers (name, email) VALUES ('Edsger Dijkstra', 'edsger@example.com')"
    "INSERT INTO orders (customer_id, amount, status) VALUES (4, 7.00, 'new')"
    "UPDATE orders SET status = 'paid' WHERE customer_id = 4"
    "DELETE FROM orders WHERE customer_id = 4"
    "DELETE FROM customers WHERE id = 4"
)
# Spread the statements over DEMO_SECONDS.
pause=$(awk -v s="$DEMO_SECONDS" -v n="${#STATEMENTS[@]}" 'BEGIN { printf "%.2f", s / n }')

say "making ${#STATEMENTS[@]} changes over about $DEMO_SECONDS seconds; watch them stream out"
for statement in "${STATEMENTS[@]}"; do
    say "sql> $statement"
    psql_in shop -c "$statement" >/dev/null
    # The view is printed after the pause, once the change has come through.
    sleep "$pause"
    show_view
done

# Give the last change a moment to come out before stopping.
sleep 2
say "stopping tidemark with SIGTERM (a graceful stop)"
kill -TERM "$tidemark_pid"
status=""
for ((i = 0; i < 300; i++)); do
    if ! kill -0 "$tidemark_pid" 2>/dev/null; then
        status=0
        wait "$tidemark_pid" || status=$?
        break
    fi
    sleep 0.1
done
tidemark_pid_was=$tidemark_pid
tidemark_pid=""
if [[ -z "$status" ]]; then
    kill -KILL "$tidemark_pid_was" 2>/dev/null || true
    die "tidemark did not stop within 30 seconds of SIGTERM and was killed"
fi
[[ "$status" == 0 ]] || die "tidemark exited with status $status"
say "tidemark stopped cleanly. Done: everything the demo created is being removed."
