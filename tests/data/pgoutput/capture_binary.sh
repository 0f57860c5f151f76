#!/bin/bash
# capture_binary.sh — regenerates the binary/text pgoutput pairs in this directory.
#
# It starts a throwaway PostgreSQL 15 on 127.0.0.1 (as the `postgres` user when
# run as root), creates a table with a column of every type tidemark decodes in
# binary (and arrays of them, an enum, domains), two logical slots at the same
# LSN, and inserts rows of ordinary and edge-case values: numerics with many
# digits, NaN and infinities, floats at every power of two and random ones,
# dates and timestamps before 2000, BC and infinite, intervals with mixed signs,
# arrays with NULLs, several dimensions, explicit bounds and none at all.  Then
# it dumps both slots with pg_logical_slot_peek_binary_changes(), one with
# binary 'true' and one without, so the two files hold the same changes:
#
#   binary.txt        proto_version '1', binary 'true'
#   binary_text.txt   proto_version '1' (text values)
#   binary_types.txt  the user-defined types: "oid typtype typname elem base basetypmod labels"
#
# Each capture line is "<lsn> <xid> <hex bytes>" as in capture.sh.  A table with
# a point column (no binary decoder) is captured too, for the fallback test.
# The database is UTF8, the connection's client_encoding UTF8.
# Usage: tests/data/pgoutput/capture_binary.sh [PGBIN]
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

"${run_as[@]}" "$pgbin/initdb" -D "$tmp/data" -U postgres -A trust -E UTF8 --locale=C \
    --no-sync >/dev/null
"${run_as[@]}" "$pgbin/pg_ctl" -D "$tmp/data" -l "$tmp/log" -w -o \
    "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$tmp \
     -c wal_level=logical -c fsync=off" start >/dev/null

# The session settings tidemark's connections use (TM_PG_SESSION_OPTIONS).
export PGOPTIONS="-c datestyle=ISO -c timezone=UTC -c intervalstyle=iso_8601 -c bytea_output=hex \
-c lc_monetary=C -c extra_float_digits=3"
export PGCLIENTENCODING=UTF8
psql() {
    "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres "$@"
}

psql <<'SQL'
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
CREATE DOMAIN price AS numeric(10,2);
CREATE DOMAIN intlist AS int4[];
CREATE TABLE t_bin (
    id int PRIMARY KEY,
    b bool, i2 int2, i4 int4, i8 int8, o oid, f4 float4, f8 float8,
    n numeric, n102 numeric(10,2), mo money,
    t text, vc varchar(10), bp char(5), nm name, ch "char", bt bit(8), vb varbit,
    by bytea, d date, tm time, tmz timetz, ts timestamp, tstz timestamptz, iv interval,
    u uuid, js json, jb jsonb, x xml, rc refcursor, e mood, pi posint, pr price, il intlist,
    a_i4 int4[], a_i8 int8[], a_t text[], a_n numeric[], a_f4 float4[], a_f8 float8[],
    a_b bool[], a_d date[], a_ts timestamp[], a_tstz timestamptz[], a_iv interval[],
    a_u uuid[], a_jb jsonb[], a_by bytea[], a_e mood[], a_ch "char"[], a_bt bit(3)[],
    a_mo money[], a_tmz timetz[], a_tm time[], a_vc varchar[]);
CREATE TABLE t_float (id int PRIMARY KEY, f4 float4, f8 float8);
CREATE TABLE t_point (id int PRIMARY KEY, p point);
CREATE PUBLICATION p FOR ALL TABLES;
SELECT 'init' FROM pg_create_logical_replication_slot('sb', 'pgoutput');
SELECT 'init' FROM pg_create_logical_replication_slot('st', 'pgoutput');
SQL

psql <<'SQL'
INSERT INTO t_bin (id, b, i2, i4, i8, o, f4, f8, n, n102, mo, t, vc, bp, nm, ch, bt, vb, by, d, tm,
    tmz, ts, tstz, iv, u, js, jb, x, rc, e, pi, pr, il) VALUES
 (1, true, 32767, 2147483647, 9223372036854775807, 4294967295, 1.5, 3.25,
  12345678901234567890.123456789, 12.34, '-$1,234.56', 'hello', 'varchar', 'ab', 'a_name', 'a',
  B'10100101', B'101', '\x00ff10', '2024-02-29', '13:14:15.678', '10:00:00+05:30',
  '2024-02-29 13:14:15.123456', '2024-02-29 13:14:15.123456+01', '1 year 2 mons 3 days 04:05:06.5',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a" : [1, 2]}', '{"b": [1, 2], "a": null}', '<a>x</a>',
  'cur', 'happy', 7, 99.5, '{1,2}'),
 (2, false, -32768, -2147483648, -9223372036854775808, 0, -0.0, -0.0,
  -0.000001, -0.01, '$92,233,720,368,547,758.07', '', 'é€😀', '', '', '\351', B'00000000', B'',
  '\x', '1999-12-31', '00:00:00', '00:00:00-12', '1999-12-31 23:59:59', '1999-12-31 23:59:59.5-08',
  '-1 year -2 mons +3 days -04:05:06.5', '00000000-0000-0000-0000-000000000000', '[]', '{}',
  '<?xml version="1.0"?><a/>', '', 'sad', 1, -0.01, '{}'),
 (3, true, 0, 0, 0, 1, 'NaN', 'NaN', 'NaN', 0, '-$92,233,720,368,547,758.08', E'tab\there\nnl',
  'x', 'abcde', 'z', '', B'11111111', B'1111111111111111111', '\xdeadbeef', '0001-01-01 BC',
  '24:00:00', '23:59:59.999999+14', '0001-01-01 00:00:00 BC', '0001-01-01 00:00:00+00 BC',
  '0', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '"s"', '"s"', '<a b="1">t&amp;</a>', 'x', 'ok', 2,
  0, '{3}'),
 (4, NULL, 1, 1, 1, 2, 'Infinity', 'Infinity', 'Infinity', 1, '$0.00', 'x', 'x', 'x', 'x', 'x',
  B'00000001', B'0', '\x00', 'infinity', '23:59:59.999999', '12:00:00+05:45', 'infinity',
  'infinity', '178000000 years', NULL, 'null', 'null', NULL, NULL, NULL, NULL, NULL, NULL),
 (5, NULL, -1, -1, -1, 3, '-Infinity', '-Infinity', '-Infinity', -1, '$0.01', NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, '-infinity', NULL, '00:00:00+00', '-infinity', '-infinity',
  '-178000000 years', NULL, NULL, '[1, "a", {"k": [true, false, null]}, 1.50]', NULL, NULL, NULL,
  NULL, NULL, NULL),
 (6, NULL, NULL, NULL, NULL, NULL, 3.4028235e38, 1.7976931348623157e308,
  '99999999999999999999999999999999999999999999999999.99999', NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, '4713-01-01 BC', NULL, NULL, '4713-01-01 00:00:00 BC',
  '200000-01-01 12:00:00+00', '-1.5 seconds', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL),
 (7, NULL, NULL, NULL, NULL, NULL, 1e-45, 5e-324, '0.00000000000000000001', NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, '5874897-12-31', NULL, NULL, '1900-02-28 01:02:03.000001',
  '1969-12-31 23:59:59.999999+00', '1 mon -1 day', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL),
 (8, NULL, NULL, NULL, NULL, NULL, 0.1, 0.1, '1e30', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, '1970-01-01', NULL, NULL, '1970-01-01 00:00:00', '1970-01-01 00:00:00+00',
  '-178000000 years -2147483648 days -2562047788 hours', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL),
 (9, NULL, NULL, NULL, NULL, NULL, 1.17549435e-38, 2.2250738585072014e-308, '123.4500', NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2000-01-01', NULL, NULL,
  '2000-01-01 00:00:00', '2000-01-01 00:00:00+00', 'P0.5Y', NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL),
 (10, NULL, NULL, NULL, NULL, NULL, 16777217, 9007199254740993, '10000', NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, '2000-01-02', NULL, NULL, '2000-01-01 00:00:00.000001',
  '1999-12-31 23:59:59.999999+00', '1 day 25:00:00', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL),
 (11, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '0.0001', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL),
 (12, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '-1234567890123456789012345678901234567890.5',
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (13, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '0', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL),
 (14, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '0.000', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL),
 (15, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '1.5e-300', NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL),
 (16, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '170141183460469231731687303715884105727', NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (17, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '170141183460469231731687303715884105728', NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);

-- Arrays: NULL elements, several dimensions, explicit bounds, empty arrays.
INSERT INTO t_bin (id, a_i4, a_i8, a_t, a_n, a_f4, a_f8, a_b, a_d, a_ts, a_tstz, a_iv, a_u, a_jb,
    a_by, a_e, a_ch, a_bt, a_mo, a_tmz, a_tm, a_vc) VALUES
 (100, '{1,NULL,3}', '{9223372036854775807,-9223372036854775808}',
  '{"a b","c,d",NULL,"e\"f","NULL","",x}', '{1.5,NaN,-0.001,Infinity,NULL}',
  '{0.1,NaN,Infinity,-Infinity,-0}', '{0.1,1e300,NULL}', '{t,f,NULL}',
  '{2024-02-29,infinity,-infinity,0001-01-01 BC}', '{"2024-02-29 01:02:03.5",infinity}',
  '{"1999-12-31 23:59:59+00","0001-01-01 00:00:00+00 BC"}', '{"1 year -2 days",P1D}',
  '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}', '{"{\"a\": 1}","[1, 2]",null}',
  '{"\\x00ff",NULL,"\\x"}', '{sad,happy,NULL}', '{a,b}', '{101,000}', '{1.23,-4.56}',
  '{10:00:00+05:30,00:00:00-12}', '{00:00:00,24:00:00}', '{"x y","",NULL}'),
 (101, '{{1,2},{3,4}}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}',
  '{}', '{}', '{}', '{}', '{}', '{}', '{}'),
 (102, '[0:2]={7,8,9}', '{{{1},{2}},{{3},{4}}}', '{{a,NULL},{c,"d}"}}', '{{1.0},{2.00}}',
  '{{1.5,2.5}}', '{{NULL}}', '{{t},{f}}', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL),
 (103, '{NULL}', NULL, '{NULL,NULL}', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);

-- Every float4 power of two (normal and subnormal), float8 powers, and random values.
INSERT INTO t_float SELECT 1000 + k, (2::float8 ^ k)::float4, 2::float8 ^ (k * 7)
  FROM generate_series(-149, 127) k;
INSERT INTO t_float SELECT 2000 + k, -(2::float8 ^ k)::float4 * 3, (2::float8 ^ k) * 3
  FROM generate_series(-140, 120) k;
INSERT INTO t_float SELECT 3000 + k, -(2::float8 ^ k)::float4, -(2::float8 ^ (k * 7))
  FROM generate_series(-149, 127) k;
SELECT setseed(0.42);
INSERT INTO t_float SELECT 5000 + g, ((random() - 0.5) * 10 ^ (random() * 60 - 30))::float4,
                          (random() - 0.5) * 10 ^ (random() * 600 - 300)
  FROM generate_series(1, 2500) g;

UPDATE t_bin SET t = 'changed', a_i4 = '{5}' WHERE id = 1;
DELETE FROM t_bin WHERE id = 3;

INSERT INTO t_point VALUES (1, '(1.5,2)');
SQL

dump() {
    local slot=$1 out=$2
    shift 2
    psql -At -F ' ' -c "SELECT lsn, xid, encode(data, 'hex')
        FROM pg_logical_slot_peek_binary_changes('$slot', NULL, NULL, $*)" >"$out"
}
dump sb "$here/binary.txt" "'proto_version', '1', 'publication_names', 'p', 'binary', 'true'"
dump st "$here/binary_text.txt" "'proto_version', '1', 'publication_names', 'p'"
psql -At -F ' ' -c "SELECT t.oid, t.typtype, t.typname, t.typelem, t.typbasetype, t.typtypmod,
        coalesce((SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                  FROM pg_enum e WHERE e.enumtypid = t.oid), '-')
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'b') ORDER BY t.oid" \
    >"$here/binary_types.txt"
wc -l "$here/binary.txt" "$here/binary_text.txt" "$here/binary_types.txt"
