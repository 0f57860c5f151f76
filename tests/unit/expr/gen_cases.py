#!/usr/bin/env python3
"""Regenerates cases.inc: runs every expression of CASES on a PostgreSQL 15
server (TimeZone=UTC, --locale=C) and records pg_typeof and the value as
text, or the error message.  Usage: gen_cases.py 'psql args...' > cases.inc.
The test evaluates the same SQL through a small binder over libpg_query."""
import subprocess, sys

ROW = ("select 7::int4 as i, 2.50::numeric as n, 'Hello'::text as t, null::int4 as z, "
       "1.5::float8 as f, '2024-01-31'::date as d, '2024-01-02 03:04:05.5'::timestamp as ts, "
       "'2024-01-02 03:04:05+00'::timestamptz as tz, true as b, null::bool as bn, "
       "'{\"a\": {\"b\": [1, \"x\", null]}, \"c\": \"d\"}'::json as j, "
       "9223372036854775807::int8 as big, 32767::int2 as s, null::text as tn, "
       "'1 day 02:00:00'::interval as iv, 'héllo wörld'::text as u, 1.5::float4 as r")

CASES = open(sys.argv[2]).read().split("\n") if len(sys.argv) > 2 else []

def run(expr):
    q = f"select pg_typeof({expr})::text, ({expr})::text from ({ROW}) as r"
    p = subprocess.run(sys.argv[1].split() + ["-AtF", "\x01", "-P", "null=<NULL>", "-c", q], capture_output=True, text=True)
    if p.returncode != 0 or p.stderr.startswith("ERROR"):
        msg = p.stderr.split("\n")[0]
        msg = msg[len("ERROR:  "):] if msg.startswith("ERROR:  ") else msg
        return ("!", msg)
    typ, _, val = p.stdout.rstrip("\n").partition("\x01")
    return (typ, None if val == "<NULL>" else val)

def c(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

for line in CASES:
    e = line.strip()
    if not e or e.startswith("#"):
        continue
    typ, val = run(e)
    # An empty second field is NULL only when psql printed nothing: NULL prints as empty.
    print(f"    {{{c(e)}, {c(typ)}, {c(val) if val is not None else 'NULL'}}},")
