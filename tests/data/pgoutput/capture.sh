#!/bin/bash
# capture.sh — regenerates the captured pgoutput messages in this directory.
#
# It starts a throwaway PostgreSQL 15 on 127.0.0.1 in a temporary directory (as
# the `postgres` user, because the server refuses to run as root), runs a small
# workload that exercises every pgoutput message kind, and dumps the binary
# messages of one logical slot per protocol version with
# pg_logical_slot_peek_binary_changes().  Each output file holds one message per
# line as "<lsn> <xid> <hex bytes>", in stream order.
#
#   v1.txt  proto_version '1', no streaming
#   v2.txt  proto_version '2', streaming 'on', messages 'true'
#
# logical_decoding_work_mem is set to its minimum (64kB) so that the large
# transactions of the workload are streamed in Stream Start/Stop blocks under
# protocol 2.  Usage: tests/data/pgoutput/capture.sh [PGBIN]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
pgbin=${1:-/usr/lib/postgresql/15/bin}
run_as=()
if [ "$(id -u)" = 0 ]; then
    run_as=(runuser -u postgres --)
fi

tmp=$(mktemp -d /tmp/tm-pgcapture.XXXXXX)
chmod 755 "$tmp"
[ ${#run_as[@]} -gt 0 ] && chown postgres "$tmp"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

cleanup() {
    "${run_as[@]}" "$pgbin/pg_ctl" -D "$tmp/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

"${run_as[@]}" "$pgbin/initdb" -D "$tmp/data" -U postgres -A trust --no-sync >/dev/null
"${run_as[@]}" "$pgbin/pg_ctl" -D "$tmp/data" -l "$tmp/log" -w -o \
    "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$tmp \
     -c wal_level=logical -c logical_decoding_work_mem=64kB -c fsync=off" start >/dev/null

psql() {
    "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres "$@"
}

psql <<'SQL'
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE t_default (id int PRIMARY KEY, name text, price numeric(10,2), big text, m mood);
CREATE TABLE t_full (id int PRIMARY KEY, v text);
ALTER TABLE t_full REPLICA IDENTITY FULL;
CREATE TABLE t_nokey (a int, b text);
CREATE TABLE t_types (
    id bigint PRIMARY KEY, b bool, i2 int2, f4 float4, f8 float8, n numeric, mo money,
    d date, t time(3), tz timetz, ts timestamp, tstz timestamptz, iv interval,
    u uuid, j jsonb, x xml, by bytea, arr int[], tarr text[], ip inet, vc varchar(5));
CREATE PUBLICATION p FOR ALL TABLES;
SELECT 'init' FROM pg_create_logical_replication_slot('s1', 'pgoutput');
SELECT 'init' FROM pg_create_logical_replication_slot('s2', 'pgoutput');
SQL

psql <<'SQL'
-- Plain inserts, an update that keeps the key, an update that changes it, a delete.
INSERT INTO t_default VALUES (1, 'apple', 1.50, NULL, 'ok'), (2, 'pear', NULL, NULL, NULL);
UPDATE t_default SET price = 2.25 WHERE id = 1;
UPDATE t_default SET id = 3 WHERE id = 2;
DELETE FROM t_default WHERE id = 3;
-- REPLICA IDENTITY FULL: old tuples carry the whole row.
INSERT INTO t_full VALUES (1, 'one'), (2, 'two');
UPDATE t_full SET v = 'uno' WHERE id = 1;
DELETE FROM t_full WHERE id = 2;
-- TOAST: a large incompressible value, then an update that leaves it unchanged.
INSERT INTO t_default SELECT 10, 'toast', 0, string_agg(md5(g::text), '') FROM generate_series(1, 200) g;
UPDATE t_default SET name = 'toast2' WHERE id = 10;
-- Every kind of value once, and NULLs.
INSERT INTO t_types VALUES (1, true, -7, 1.5, 'NaN', '12345678901234567890.123456789', '-$1,234.56',
    '2024-02-29', '13:14:15.678', '10:00:00+05:30', '2024-02-29 13:14:15.123456',
    '2024-02-29 13:14:15.123456+01', '1 year 2 mons 3 days 04:05:06.5', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    '{"a": [1, 2]}', '<a>x</a>', '\x00ff10', '{1,NULL,3}', '{"a b","c,d",NULL,"e\"f"}', '10.0.0.1/8', 'abc');
INSERT INTO t_types (id) VALUES (2);
INSERT INTO t_nokey VALUES (1, 'x');
TRUNCATE t_full, t_nokey;
SELECT pg_logical_emit_message(true, 'test', 'hello');
SELECT pg_logical_emit_message(false, 'tidemark_heartbeat', '');
SQL

psql <<'SQL'
-- A large transaction with a rolled-back subtransaction: streamed under protocol 2.
BEGIN;
INSERT INTO t_nokey SELECT g, repeat('x', 100) FROM generate_series(1, 400) g;
SAVEPOINT s;
INSERT INTO t_nokey SELECT g, repeat('y', 100) FROM generate_series(1001, 1400) g;
ROLLBACK TO SAVEPOINT s;
INSERT INTO t_nokey VALUES (5000, 'after');
COMMIT;
-- A large transaction that aborts: streamed, then Stream Abort.
BEGIN;
INSERT INTO t_nokey SELECT g, repeat('z', 100) FROM generate_series(1, 400) g;
ROLLBACK;
-- A schema change mid-stream: a new Relation message for the same relation.
ALTER TABLE t_full ADD COLUMN extra int;
INSERT INTO t_full VALUES (7, 'seven', 7);
SQL

dump() {
    local slot=$1 out=$2
    shift 2
    psql -At -F ' ' -c "SELECT lsn, xid, encode(data, 'hex')
        FROM pg_logical_slot_peek_binary_changes('$slot', NULL, NULL, $*)" >"$out"
}
dump s1 "$here/v1.txt" "'proto_version', '1', 'publication_names', 'p', 'messages', 'true'"
dump s2 "$here/v2.txt" "'proto_version', '2', 'publication_names', 'p', 'streaming', 'on', 'messages', 'true'"
wc -l "$here/v1.txt" "$here/v2.txt"
