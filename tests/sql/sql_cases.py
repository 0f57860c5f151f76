"""The SQL cases: queries, their source tables and workloads, as data.

Each Case says what tidemark runs (`INSERT INTO out <query>`), over which
tables (created in PostgreSQL with REPLICA IDENTITY FULL or DEFAULT and read
through postgres-cdc sources that declare their columns and PRIMARY KEY
(id)), and how the seeded workload changes them.  sql_harness.py plays a case
and compares the folded output with PostgreSQL's answer to the same SELECT
over the final tables.

Conventions:
  * Every output column is named (AS …) unless PostgreSQL's own name is the
    function's (count, sum, …): the harness checks names as well as values.
  * An expression whose PostgreSQL type is only well-defined with a cast
    gets one; string_agg is compared with string_agg(x, sep ORDER BY x),
    because tidemark orders string_agg's values by value.
  * now() is never compared: a case that uses it lists the column as
    volatile with a check of its own.
  * Module name: sql_cases (tests/crash has modules named like ours).

The issue's five example queries were not at hand when this file was
written; issue_example_1..5 are the issue's own queries over its orders
table (the sink names are the harness's).
"""

from __future__ import annotations

import json
import re

from datetime import datetime, timedelta

from sql_harness import (Case, Column, Table, Workload, bools, choice, dates, decimals, floats,
                         intervals, ints, jsons, nullable, texts, timestamps)

# -- tables ---------------------------------------------------------------------

CUSTOMERS = ["ann", "bob", "cy", "dee", None]
REGIONS = ["north", "south", "east", None]


def orders(identity: str = "full", key_space: int = 60, initial: int = 30,
           amount_updatable: bool = True) -> Table:
    """Orders: text group keys with NULLs, exact and approximate numbers, times."""
    return Table("orders", [
        Column("customer", "text", choice(CUSTOMERS)),
        Column("region", "text", choice(REGIONS)),
        Column("amount", "numeric(10,2)", decimals(-50, 500, 2, null=0.1),
               updatable=amount_updatable),
        Column("qty", "int", ints(0, 20, null=0.1)),
        Column("price", "float8", floats(0, 100, null=0.1)),
        Column("paid", "boolean", bools(null=0.15)),
        Column("note", "text", texts(null=0.1)),
        Column("created_at", "timestamp", timestamps(null=0.1)),
        Column("day", "date", dates(null=0.1)),
    ], replica_identity=identity, key_space=key_space, initial_rows=initial)


def events(identity: str = "default", key_space: int = 60) -> Table:
    """Events: bigint, unconstrained numeric, timestamptz, interval, jsonb."""
    return Table("events", [
        Column("kind", "text", choice(["click", "view", "buy", None])),
        Column("user_id", "int", ints(1, 8, null=0.1)),
        Column("score", "int", ints(-5, 10, null=0.15)),
        Column("big", "bigint", ints(-10**12, 10**12, null=0.1)),
        Column("ratio", "numeric", decimals(0, 10, 4, null=0.1)),
        Column("ts", "timestamptz", timestamps(null=0.1, tz=True)),
        Column("dur", "interval", intervals(null=0.1)),
        Column("payload", "jsonb", jsons(null=0.1)),
        Column("flag", "boolean", bools(null=0.1)),
    ], replica_identity=identity, key_space=key_space)


def divs(identity: str = "full") -> Table:
    """For row errors: d is 0 in some rows and never changes after insert."""
    return Table("divs", [
        Column("n", "numeric(8,2)", decimals(-100, 100, 2)),
        Column("d", "int", ints(0, 3), updatable=False),
        Column("label", "text", choice(["p", "q", "r"])),
    ], replica_identity=identity, key_space=40, initial_rows=15)


def shop_orders(identity: str = "default") -> Table:
    """The issue's orders table: customer_id, amount, status, created_at."""
    return Table("orders", [
        Column("customer_id", "int", ints(1, 12, null=0.05)),
        Column("amount", "numeric(10,2)", decimals(0, 400, 2, null=0.05)),
        Column("status", "text", choice(["new", "paid", "shipped", "cancelled", None])),
        Column("created_at", "timestamp", timestamps(null=0.05)),
    ], replica_identity=identity, key_space=80, initial_rows=30)


def W(**kw) -> Workload:
    return Workload(**kw)


def _now_check(value, info):
    """now() must be the time the row was processed: between start and the end (+ slack)."""
    from sql_harness import _ts_text_to_us
    try:
        us = _ts_text_to_us(value)
    except (TypeError, ValueError) as e:
        return f"now() gave {value!r}, not a timestamptz ({e})"
    lo, hi = (info.started - 30) * 1e6, (info.finished + 120) * 1e6
    if not lo <= us <= hi:
        return (f"now() gave {value!r}, outside the run's wall-clock window "
                f"({info.started:.0f}..{info.finished:.0f} s since 1970)")
    return None


def _dead_letters_are_the_bad_rows(run) -> list:
    """The dead-letter files of a division-by-zero job hold exactly the rows with d = 0.

    Every change of a row whose divisor is 0 fails (d never changes after
    insert), so the rejected records are that row's whole changelog: folded
    (c/r add `after`, u swaps, d removes `before`), the files must give
    PostgreSQL's `SELECT id, n, d, label FROM divs WHERE d = 0`.  Each line
    must also say why and where: reason, job, operator, subtask, source.
    In the kill round delivery is at-least-once (a replay after a crash
    appends again), so there every image must have d = 0 and every bad row
    of the final table must be some line's `after`, duplicates allowed.
    """
    from collections import Counter
    from decimal import Decimal

    problems = []
    files = []
    for d in run.daemons:
        files += sorted((d.state_dir / "dead-letter").glob("*.jsonl"))
    if not files:
        return [f"on_error = 'dead-letter' wrote no files under "
                f"{[str(d.state_dir / 'dead-letter') for d in run.daemons]}"]
    net = Counter()
    images = set()

    def key(img, where):
        try:
            k = (int(img["id"]), str(Decimal(img["n"])), int(img["d"]), img["label"])
            if k[2] != 0:
                problems.append(f"{where}: a row whose divisor is {k[2]}, not 0: {img}")
            return k
        except (KeyError, TypeError, ValueError) as e:
            problems.append(f"{where}: an image without the source's columns ({e}): {img}")
            return None

    for path in files:
        m = re.match(r"^(.+)-(\d+)\.jsonl$", path.name)
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            where = f"{path}:{lineno}"
            try:
                rec = json.loads(line)
            except ValueError as e:
                problems.append(f"{where}: not JSON ({e})")
                continue
            if rec.get("reason") != "division by zero":
                problems.append(f"{where}: reason {rec.get('reason')!r}, not 'division by zero'")
            if rec.get("job") != "job" or rec.get("source") != "public.divs" or \
                    not str(rec.get("operator", "")).startswith("calc/") or \
                    not isinstance(rec.get("ts_ms"), int) or m is None or \
                    rec.get("subtask") != int(m.group(2)) or \
                    rec.get("operator", "").replace("/", "_") != m.group(1):
                problems.append(f"{where}: job/source/operator/subtask/ts_ms do not say where "
                                f"the row failed: {line[:300]}")
            op, before, after = rec.get("op"), rec.get("before"), rec.get("after")
            if op in ("c", "r", "u"):
                k = key(after, where)
                if k:
                    net[k] += 1
                    images.add(k)
            if op in ("u", "d"):
                k = key(before, where)
                if k:
                    net[k] -= 1
            if op not in ("c", "r", "u", "d"):
                problems.append(f"{where}: op {op!r}")
    got = Counter({k: n for k, n in net.items() if n != 0})
    want = Counter()
    for line in run.sql("SELECT id, n, d, label FROM divs WHERE d = 0").splitlines():
        i, n, d, label = line.split("|")
        want[(int(i), str(Decimal(n)), int(d), label)] += 1
    if getattr(run, "mode", "") == "kill":
        missing = sorted(set(want) - images)
        if missing:
            problems.append(f"rows with d = 0 that no dead letter holds: {missing}")
    elif got != want:
        problems.append(f"the dead letters fold to {sorted(got.items())}, but the rows with "
                        f"d = 0 are {sorted(want.items())} (files: {[str(f) for f in files]})")
    return problems


CASES = [
    # -- SELECT *: the pipeline that runs today --------------------------------------
    Case("select_star_full", "SELECT * FROM orders", [orders("full")], kill_ci=True,
         note="the passthrough pipeline under REPLICA IDENTITY FULL"),
    Case("select_star_default", "SELECT * FROM events", [events("default")], kill_ci=True,
         note="REPLICA IDENTITY DEFAULT: before images come from the upsert operator's state; "
              "bigint, numeric, timestamptz, interval, jsonb"),
    Case("select_star_key_changes", "SELECT * FROM orders", [orders("default", key_space=40)],
         workload=W(insert=2, update=2, delete=1, key_change=5),
         note="primary-key-changing updates under REPLICA IDENTITY DEFAULT"),
    Case("select_star_drain", "SELECT * FROM events", [events("full")],
         workload=W(final_sql=["DELETE FROM events WHERE id % 2 = 0",
                               "UPDATE events SET score = score + 1 WHERE id % 3 = 0"]),
         note="range deletes and range updates at the end"),

    # -- projection and arithmetic ----------------------------------------------------
    Case("arith_int",
         "SELECT id, qty + 1 AS a, qty - 3 AS b, qty * 2 AS c, qty / 3 AS d, qty % 4 AS e, "
         "-qty AS f, +qty AS g FROM orders",
         [orders()], note="integer arithmetic stays integer; / truncates"),
    Case("arith_numeric",
         "SELECT id, amount + 1 AS a, amount - 0.5 AS b, amount * qty AS c, amount / 3 AS d, "
         "amount % 7 AS e, -amount AS f FROM orders",
         [orders()], note="numeric keeps PostgreSQL's scale (division's scale rule included)"),
    Case("arith_mixed_types",
         "SELECT id, score + ratio AS num, score * 1.5::float8 AS dbl, big * 2 AS bg, "
         "score + big AS bg2, score::smallint + 1::smallint AS sm, ratio * score AS rn, "
         "big / 7 AS bdiv, score / 2.0 AS half FROM events",
         [events()], note="int+numeric is numeric, int*float8 float8, smallint+smallint smallint"),
    Case("numeric_precision",
         "SELECT id, amount * amount AS sq, round(amount / 7, 4) AS r4, amount::numeric(12,4) AS "
         "wide, (amount * 1.005)::numeric(10,2) AS rounded, amount / 3.0 AS third, "
         "1.10 * amount AS scaled FROM orders",
         [orders()], note="exact scales; casts round half away from zero"),
    Case("float_arith",
         "SELECT id, price * 2 AS a, price / 4 AS b, price + qty AS c, price - 0.25 AS d, "
         "-price AS e FROM orders",
         [orders()]),
    Case("comparisons",
         "SELECT id, qty > 5 AS gt, qty = 10 AS eq, amount <> 0 AS ne, note < 'M' AS lt, "
         "amount >= qty AS ge, price <= 50 AS le, created_at > '2024-06-01'::timestamp AS late "
         "FROM orders",
         [orders()], note="comparisons across types; NULL in, NULL out"),
    Case("bool_logic_nulls",
         "SELECT id, paid AND qty > 5 AS a, paid OR qty > 5 AS o, NOT paid AS n, "
         "paid AND NULL::boolean AS an, paid OR NULL::boolean AS onull, "
         "(paid OR qty IS NULL) AND NOT (amount > 0) AS mix FROM orders",
         [orders()], note="three-valued logic"),
    Case("is_null_tests",
         "SELECT id, amount IS NULL AS a, note IS NOT NULL AS b, paid IS TRUE AS c, "
         "paid IS NOT FALSE AS d, paid IS FALSE AS e, paid IS NOT TRUE AS f, "
         "(qty > 5) IS NULL AS g FROM orders",
         [orders()]),
    Case("is_distinct_from",
         "SELECT id, customer IS DISTINCT FROM 'ann' AS a, qty IS NOT DISTINCT FROM 5 AS b, "
         "qty IS DISTINCT FROM NULL AS c, customer IS NOT DISTINCT FROM region AS d "
         "FROM orders",
         [orders()]),
    Case("in_lists",
         "SELECT id, qty IN (1, 2, 3) AS a, customer IN ('ann', 'bob') AS b, "
         "customer NOT IN ('ann', NULL) AS c, qty IN (1, NULL) AS d, "
         "amount NOT IN (0, 10.5) AS e FROM orders",
         [orders()], note="IN and NOT IN with NULLs in the list"),
    Case("between",
         "SELECT id, qty BETWEEN 3 AND 9 AS a, amount NOT BETWEEN 0 AND 100 AS b, "
         "created_at BETWEEN '2024-03-01'::timestamp AND '2024-06-01'::timestamp AS c, "
         "note BETWEEN 'a' AND 'm' AS d FROM orders",
         [orders()]),
    Case("like_ilike",
         "SELECT id, note LIKE 'a%' AS a, note ILIKE '%a%' AS b, note NOT LIKE '%\\_%' AS c, "
         "note LIKE '_eta' AS d, note NOT ILIKE 'ZZ%' AS e, note LIKE '%' AS f FROM orders",
         [orders()], note="wildcards, escapes, case-insensitivity"),
    Case("case_searched",
         "SELECT id, CASE WHEN qty > 10 THEN 'big' WHEN qty > 5 THEN 'mid' ELSE 'small' END AS "
         "size, CASE WHEN paid THEN amount END AS paid_amount, "
         "CASE WHEN amount IS NULL THEN -1 WHEN amount < 0 THEN 0 ELSE amount END AS clamp "
         "FROM orders",
         [orders()], note="no ELSE gives NULL; integer and numeric branches give numeric"),
    Case("case_simple",
         "SELECT id, CASE customer WHEN 'ann' THEN 1 WHEN 'bob' THEN 2 ELSE 0 END AS code, "
         "CASE qty WHEN 0 THEN 'zero' WHEN 1 THEN 'one' END AS word FROM orders",
         [orders()]),
    Case("coalesce_nullif",
         "SELECT id, coalesce(amount, 0) AS a, coalesce(customer, region, 'none') AS b, "
         "nullif(qty, 0) AS c, nullif(customer, 'ann') AS d, coalesce(qty, amount) AS e "
         "FROM orders",
         [orders()]),
    Case("greatest_least",
         "SELECT id, greatest(qty, 5) AS a, least(amount, 100.00) AS b, "
         "greatest(qty, NULL, 3) AS c, least(customer, region) AS d, greatest(price, qty) AS e "
         "FROM orders",
         [orders()], note="GREATEST/LEAST ignore NULLs and unify types"),
    Case("casts_numbers",
         "SELECT id, qty::text AS a, amount::int AS b, amount::float8 AS c, qty::bigint AS d, "
         "qty::numeric(6,1) AS e, CAST(qty AS real) AS f, price::int AS g, "
         "'42'::int + qty AS h, amount::text AS i, price::numeric(10,3) AS j FROM orders",
         [orders()], note="numeric->int rounds half away from zero, float->int half to even"),
    Case("casts_other",
         "SELECT id, paid::text AS a, created_at::date AS b, day::timestamp AS c, "
         "CAST(day AS text) AS d, created_at::text AS e, ts::timestamp AS f, "
         "score::boolean AS g, kind::varchar(3) AS h FROM orders_events_view",
         [events()],
         views=["CREATE VIEW orders_events_view AS SELECT id, flag AS paid, ts::timestamp AS "
                "created_at, ts::date AS day, ts, score, kind FROM events"],
         note="casts among text, bool, date, timestamp, timestamptz, varchar(n)"),
    Case("string_funcs_case_length",
         "SELECT id, lower(note) AS lo, upper(note) AS up, length(note) AS len, "
         "concat(customer, '-', qty) AS cat, customer || '/' || region AS pipe, "
         "note || qty AS mixed FROM orders",
         [orders()], note="concat skips NULLs; || propagates them"),
    Case("string_funcs_substring",
         "SELECT id, substring(note from 2 for 3) AS a, substring(note, 2) AS b, "
         "substring(note from 3) AS c, position('a' in note) AS d, replace(note, 'a', 'A') AS e, "
         "split_part(note, ' ', 1) AS f, split_part(note, '-', 2) AS g FROM orders",
         [orders()]),
    Case("string_funcs_trim",
         "SELECT id, trim(note) AS a, ltrim(note) AS b, rtrim(note) AS c, "
         "trim(both 'x' from note) AS d, left(note, 3) AS e, right(note, 2) AS f, "
         "left(note, -1) AS g FROM orders",
         [orders()]),
    Case("string_funcs_pad_md5",
         "SELECT id, lpad(customer, 6, '*') AS a, rpad(customer, 6) AS b, lpad(note, 3) AS c, "
         "md5(note) AS d, md5(coalesce(note, '')) AS e, rpad(region, 2, 'ab') AS f FROM orders",
         [orders()], note="pad truncates longer strings; md5 of multibyte text"),
    Case("math_funcs",
         "SELECT id, abs(amount) AS a, abs(qty - 10) AS b, round(amount) AS c, "
         "round(amount, 1) AS d, round(price) AS e, floor(amount) AS f, ceil(amount) AS g, "
         "ceiling(price) AS h, mod(qty, 3) AS i, mod(amount, 7) AS j, floor(price) AS k "
         "FROM orders",
         [orders()], note="result types follow the argument (numeric stays numeric)"),
    Case("power_sqrt",
         "SELECT id, power(qty, 2) AS a, power(amount, 2) AS b, sqrt(abs(price)) AS c, "
         "sqrt(abs(amount)) AS d, power(2, qty) AS e FROM orders",
         [orders()], note="power(int, int) is double precision; numeric sqrt keeps PG's scale"),
    Case("date_trunc",
         "SELECT id, date_trunc('day', created_at) AS d, date_trunc('month', created_at) AS m, "
         "date_trunc('hour', created_at) AS h, date_trunc('year', created_at) AS y, "
         "date_trunc('week', created_at) AS w FROM orders",
         [orders()]),
    Case("date_trunc_tz",
         "SELECT id, date_trunc('day', ts) AS d, date_trunc('minute', ts) AS mi FROM events",
         [events()], note="timestamptz truncates in UTC (the session zone of the oracle)"),
    Case("extract_date_part",
         "SELECT id, extract(year FROM created_at) AS y, extract(dow FROM day) AS dow, "
         "date_part('hour', created_at) AS h, extract(epoch FROM created_at) AS ep, "
         "extract(month FROM day) AS mo, date_part('doy', day) AS doy FROM orders",
         [orders()], note="extract is numeric, date_part double precision (PostgreSQL 15)"),
    Case("make_date",
         "SELECT id, make_date(2024, qty % 12 + 1, 1) AS a, make_date(2020 + qty % 5, 2, 28) "
         "AS b FROM orders WHERE qty IS NOT NULL",
         [orders()]),
    Case("interval_arith",
         "SELECT id, created_at + interval '1 day' AS a, created_at - interval '2 hours' AS b, "
         "day + 7 AS c, day - '2024-01-01'::date AS d, created_at - '2024-01-01'::timestamp AS e, "
         "day + interval '36 hours' AS f FROM orders",
         [orders()], note="timestamp +/- interval, date + int, date - date, timestamp - timestamp"),
    Case("interval_arith_tz",
         "SELECT id, ts + dur AS a, dur * 2 AS b, dur + interval '1 hour' AS c, -dur AS d, "
         "ts - interval '1 month' AS e FROM events",
         [events()]),
    Case("to_timestamp",
         "SELECT id, to_timestamp(qty * 86400 + 0.5) AS a, to_timestamp(big / 1000) AS b "
         "FROM orders_and_big",
         [events()],
         views=["CREATE VIEW orders_and_big AS SELECT id, score AS qty, big FROM events "
                "WHERE big BETWEEN 0 AND 4000000000000"],
         note="to_timestamp(double precision) is timestamptz"),
    Case("json_ops",
         "SELECT id, payload -> 'kind' AS a, payload ->> 'kind' AS b, "
         "payload #>> '{inner,v}' AS c, payload -> 'tags' -> 0 AS d, "
         "(payload ->> 'n')::int + 1 AS e, payload -> 'inner' AS f FROM events",
         [events()], note="-> gives jsonb, ->> and #>> text"),
    Case("where_simple", "SELECT id, customer, amount FROM orders WHERE amount > 100",
         [orders()], kill_ci=True,
         note="updates move rows into and out of the filter (update -> insert/delete)"),
    Case("where_complex",
         "SELECT id, customer, qty FROM orders WHERE (customer = 'ann' OR region = 'north') "
         "AND NOT paid AND qty BETWEEN 2 AND 15",
         [orders("default")]),
    Case("where_null_semantics",
         "SELECT id, qty FROM orders WHERE NOT (qty > 5) OR paid IS NOT TRUE",
         [orders()], note="a NULL predicate drops the row"),
    Case("projection_subset", "SELECT id, customer FROM orders", [orders("default")],
         note="updates that change no projected column produce nothing"),
    Case("projection_duplicates", "SELECT customer, region FROM orders", [orders()],
         note="no key in the output: the multiset holds duplicates"),
    Case("projection_key_changes",
         "SELECT id * 10 AS id10, upper(customer) AS c FROM orders",
         [orders("default", key_space=40)],
         workload=W(insert=2, update=2, delete=1, key_change=5)),
    Case("now_within_bounds", "SELECT id, now() AS seen FROM orders", [orders()],
         volatile={"seen": _now_check},
         note="now() is processing time: checked against the run's clock, not compared"),

    # -- aggregates --------------------------------------------------------------------
    Case("count_star_group", "SELECT customer, count(*) FROM orders GROUP BY customer",
         [orders()], kill_ci=True, note="NULL is a group of its own"),
    Case("count_col_distinct",
         "SELECT region, count(qty) AS c, count(DISTINCT qty) AS cd, "
         "count(DISTINCT customer) AS cc FROM orders GROUP BY region",
         [orders()], rescale_ci=True,
         note="count(DISTINCT) keeps per-value counts in state: they must survive a rescale"),
    Case("sum_types",
         "SELECT customer, sum(qty) AS s_int, sum(amount) AS s_num, sum(price) AS s_dbl, "
         "sum(qty::smallint) AS s_small FROM orders GROUP BY customer",
         [orders()], note="sum(int) bigint, sum(numeric) numeric, sum(float8) float8"),
    Case("sum_bigint_numeric",
         "SELECT user_id, sum(big) AS s_big, avg(big) AS a_big, sum(ratio) AS s_ratio, "
         "avg(ratio) AS a_ratio FROM events GROUP BY user_id",
         [events()], note="sum(bigint) is numeric; avg's scale"),
    Case("min_max",
         "SELECT region, min(amount) AS lo, max(amount) AS hi, min(note) AS first_note, "
         "max(created_at) AS latest, min(day) AS first_day FROM orders GROUP BY region",
         [orders()], workload=W(extreme_deletes=("amount", "max")), kill_ci=True,
         rescale_ci=True, note="deleting the maximum must bring back the next one"),
    Case("min_max_extreme_min",
         "SELECT customer, min(qty) AS lo, max(qty) AS hi FROM orders GROUP BY customer",
         [orders("default")], workload=W(extreme_deletes=("qty", "min"), delete=4)),
    Case("min_max_tz_text",
         "SELECT kind, min(ts) AS first_ts, max(ts) AS last_ts, max(user_id) AS u "
         "FROM events GROUP BY kind",
         [events()]),
    Case("avg_types",
         "SELECT customer, avg(qty) AS a_int, avg(amount) AS a_num, avg(price) AS a_dbl "
         "FROM orders GROUP BY customer",
         [orders()], note="avg(int) and avg(numeric) are numeric at PostgreSQL's scale"),
    Case("bool_aggs",
         "SELECT region, bool_and(paid) AS all_paid, bool_or(paid) AS any_paid, "
         "bool_and(qty > 3) AS all_big FROM orders GROUP BY region",
         [orders()]),
    Case("string_agg",
         "SELECT region, string_agg(customer, ',') AS names FROM orders GROUP BY region",
         [orders()],
         oracle_query="SELECT region, string_agg(customer, ',' ORDER BY customer) AS names "
                      "FROM orders GROUP BY region",
         note="tidemark orders string_agg by value"),
    Case("string_agg_distinct_note",
         "SELECT customer, string_agg(DISTINCT note, '|') AS notes FROM orders GROUP BY customer",
         [orders()],
         oracle_query="SELECT customer, string_agg(DISTINCT note, '|' ORDER BY note) AS notes "
                      "FROM orders GROUP BY customer"),
    Case("having",
         "SELECT customer, count(*) AS n, sum(qty) AS s FROM orders GROUP BY customer "
         "HAVING count(*) > 3 AND sum(qty) > 20",
         [orders()], kill_ci=True, note="groups move into and out of HAVING"),
    Case("having_on_unselected_agg",
         "SELECT region FROM orders GROUP BY region HAVING max(amount) > 300",
         [orders()]),
    Case("group_by_expression",
         "SELECT qty % 3 AS bucket, count(*) AS n FROM orders GROUP BY qty % 3",
         [orders()]),
    Case("group_by_ordinal",
         "SELECT upper(customer) AS c, count(*) AS n, max(qty) AS m FROM orders GROUP BY 1",
         [orders()]),
    Case("group_by_date_trunc",
         "SELECT date_trunc('month', created_at) AS month, count(*) AS n, sum(amount) AS total "
         "FROM orders GROUP BY 1",
         [orders()]),
    Case("group_by_two_keys",
         "SELECT customer, region, count(*) AS n, sum(amount) AS total FROM orders "
         "GROUP BY customer, region",
         [orders("default")]),
    Case("group_by_bool_and_json",
         "SELECT flag, payload ->> 'kind' AS k, count(*) AS n FROM events GROUP BY 1, 2",
         [events()]),
    Case("global_aggregate",
         "SELECT count(*) AS n, sum(amount) AS total, min(qty) AS lo, max(qty) AS hi, "
         "avg(price) AS mean FROM orders",
         [orders()], kill_ci=True, note="one group, no key"),
    Case("global_aggregate_emptied",
         "SELECT count(*) AS n, count(amount) AS na, sum(amount) AS total, max(note) AS m "
         "FROM orders",
         [orders()], workload=W(final_sql=["DELETE FROM orders"]),
         note="an emptied table: count 0, sum NULL, as PostgreSQL returns"),
    Case("agg_of_agg_view",
         "SELECT count(*) AS customers, sum(total) AS grand, max(n) AS most FROM per_customer",
         [orders()],
         views=["CREATE VIEW per_customer AS SELECT customer, sum(amount) AS total, "
                "count(*) AS n FROM orders GROUP BY customer"],
         kill_ci=True, note="an aggregate over an aggregate's retractions"),
    Case("agg_of_agg_grouped",
         "SELECT region, max(n) AS most, sum(n) AS total, count(*) AS groups FROM per_pair "
         "GROUP BY region",
         [orders("default")],
         views=["CREATE VIEW per_pair AS SELECT customer, region, count(*) AS n FROM orders "
                "GROUP BY customer, region"]),
    Case("view_filter_then_group",
         "SELECT customer, count(*) AS n FROM big_orders GROUP BY customer",
         [orders()],
         views=["CREATE VIEW big_orders AS SELECT id, customer, amount FROM orders "
                "WHERE amount > 50"]),
    Case("empty_groups",
         "SELECT customer, count(*) AS n, sum(amount) AS total FROM orders GROUP BY customer",
         [orders()],
         workload=W(final_sql=["DELETE FROM orders WHERE customer = 'ann'",
                               "DELETE FROM orders WHERE customer IS NULL"]),
         note="groups whose rows are all deleted disappear"),
    Case("nulls_everywhere",
         "SELECT customer, count(note) AS c, sum(qty) AS s, min(note) AS lo, max(amount) AS hi, "
         "avg(qty) AS a, bool_and(paid) AS b, count(DISTINCT paid) AS d FROM orders "
         "GROUP BY customer",
         [orders()], note="NULL keys and NULL arguments in every aggregate"),
    Case("null_only_group",
         "SELECT region, sum(amount) AS s, min(amount) AS lo, avg(amount) AS a, "
         "count(amount) AS c FROM nullish GROUP BY region",
         [orders()],
         views=["CREATE VIEW nullish AS SELECT region, CASE WHEN region = 'east' THEN NULL "
                "ELSE amount END AS amount FROM orders"],
         note="a group whose arguments are all NULL: sum/min/avg NULL, count 0"),
    Case("group_key_updates",
         "SELECT region, count(*) AS n, sum(qty) AS s FROM orders GROUP BY region",
         [orders("default", key_space=30)],
         workload=W(insert=1, update=8, delete=1, key_change=2, changes=300),
         note="updates of the grouping column move rows between groups"),
    Case("agg_over_filter",
         "SELECT region, sum(amount) AS total, count(*) AS n FROM orders WHERE paid "
         "GROUP BY region",
         [orders()]),
    Case("agg_expression_args",
         "SELECT customer, sum(qty * amount) AS revenue, max(length(note)) AS longest, "
         "sum(CASE WHEN paid THEN amount ELSE 0 END) AS paid_total FROM orders "
         "GROUP BY customer",
         [orders()]),
    Case("expressions_over_aggs",
         "SELECT customer, sum(qty) / count(*) AS mean_int, max(qty) - min(qty) AS spread, "
         "round(avg(amount), 2) AS mean, count(*) * 2 AS twice FROM orders GROUP BY customer",
         [orders()]),
    Case("distinct_aggs",
         "SELECT kind, count(DISTINCT user_id) AS users, count(DISTINCT score) AS scores, "
         "sum(DISTINCT score) AS sd, avg(DISTINCT score) AS ad FROM events GROUP BY kind",
         [events()]),

    # -- row errors ----------------------------------------------------------------------
    Case("division_by_zero_skip", "SELECT id, n / d AS q, label FROM divs", [divs()],
         settings={"on_error": "'skip'"},
         oracle_query="SELECT id, n / d AS q, label FROM divs WHERE d <> 0",
         workload=W(final_sql=["INSERT INTO divs VALUES (999, 1.00, 0, 'z')"]),
         note="on_error = 'skip' drops the rows whose expression fails"),
    Case("division_by_zero_dead_letter", "SELECT id, n / d AS q, label FROM divs", [divs()],
         settings={"on_error": "'dead-letter'"},
         oracle_query="SELECT id, n / d AS q, label FROM divs WHERE d <> 0",
         workload=W(final_sql=["INSERT INTO divs VALUES (999, 1.00, 0, 'z')"]),
         post_check=lambda run: _dead_letters_are_the_bad_rows(run),
         note="on_error = 'dead-letter': the output is PostgreSQL's over the good rows, and the "
              "dead-letter files fold to exactly the rows whose divisor is 0"),
    Case("division_by_zero_fail", "SELECT id, n / d AS q FROM divs", [divs()],
         workload=W(final_sql=["INSERT INTO divs VALUES (999, 1.00, 0, 'z')"]),
         expect_failure="division by zero",
         note="the default on_error = 'fail' stops the job, naming the error"),

    # -- the issue's examples (see the module docstring) ----------------------------------
    # The issue's own five queries (issue 8, section 2), over its orders table.
    Case("issue_example_1",
         "SELECT id, customer_id, amount * 1.2 AS gross, upper(status) AS status, "
         "date_trunc('hour', created_at) AS hour FROM orders "
         "WHERE amount > 100 AND status <> 'cancelled'",
         [shop_orders("default")], kill_ci=True, note="projection, filter, expressions"),
    Case("issue_example_2",
         "SELECT customer_id, count(*) AS n, sum(amount) AS total, min(amount) AS lo, "
         "max(amount) AS hi, avg(amount) AS mean, count(DISTINCT status) AS statuses "
         "FROM orders GROUP BY customer_id HAVING count(*) > 1",
         [shop_orders("default")], kill_ci=True, rescale_ci=True,
         note="plain aggregation over a changelog, with HAVING"),
    Case("issue_example_3",
         "SELECT floor(total / 100) AS bucket, count(*) AS customers FROM per_customer GROUP BY 1",
         [shop_orders("full")],
         views=["CREATE VIEW per_customer AS SELECT customer_id, sum(amount) AS total "
                "FROM orders GROUP BY customer_id"],
         rescale_ci=True, note="an aggregate of an aggregate through a view"),
    Case("issue_example_4",
         "SELECT count(*) AS n, sum(amount) AS total FROM orders",
         [shop_orders("default")], rescale_ci=True, note="a global aggregate"),
    Case("issue_example_5",
         "SELECT customer_id, sum(amount) AS total FROM orders GROUP BY customer_id",
         [shop_orders("full")], note="the view of example 3 on its own"),
]


# -- joins (issue 11) -------------------------------------------------------------------
# Four small tables whose join columns share a key space, so that keys match, miss, repeat
# on both sides and are NULL: customers (1..15), orders.customer_id (1..16 and NULL),
# products (1..10), order_lines.order_id (bigint: a key pair of different types).

def customers(identity: str = "full", key_space: int = 15, initial: int = 10) -> Table:
    return Table("customers", [
        Column("name", "text", choice(["ann", "bob", "cy", "dee", "eve", None])),
        Column("country", "text", choice(["se", "fi", "no", None])),
        Column("active", "boolean", bools(null=0.1)),
        Column("tier", "int", ints(0, 12, null=0.1)),
        Column("fav_product", "int", ints(1, 10, null=0.2)),
    ], replica_identity=identity, key_space=key_space, initial_rows=initial)


def jorders(identity: str = "default", key_space: int = 60, initial: int = 30,
            customer_null: float = 0.1) -> Table:
    return Table("orders", [
        Column("customer_id", "int", ints(1, 16, null=customer_null)),
        Column("product_id", "int", ints(1, 10, null=0.05)),
        Column("amount", "numeric(10,2)", decimals(0, 400, 2, null=0.05)),
        Column("status", "text", choice(["new", "paid", "shipped", None])),
        Column("qty", "int", ints(0, 12, null=0.1)),
    ], replica_identity=identity, key_space=key_space, initial_rows=initial)


def products(identity: str = "full") -> Table:
    return Table("products", [
        Column("title", "text", choice(["pen", "ink", "pad", "cup", None])),
        Column("price", "numeric(8,2)", decimals(1, 90, 2, null=0.05)),
        Column("category", "text", choice(["office", "home", None])),
    ], replica_identity=identity, key_space=10, initial_rows=8)


def order_lines(identity: str = "default") -> Table:
    return Table("order_lines", [
        Column("order_id", "bigint", ints(1, 60, null=0.05)),
        Column("product_id", "int", ints(1, 10, null=0.05)),
        Column("qty", "int", ints(1, 9, null=0.05)),
    ], replica_identity=identity, key_space=80, initial_rows=40)


# Updates of the join columns (customer_id moves an order to another customer) weigh more
# than usual, and key changes (SET id = …) move a row's primary key on either side.
JOIN_W = dict(insert=4, update=6, delete=3, key_change=2)

OC = "FROM orders o JOIN customers c ON o.customer_id = c.id"

JOIN_CASES = [
    # -- inner ---------------------------------------------------------------------------
    Case("join_inner", "SELECT o.id, o.amount, c.name, c.country " + OC,
         [jorders(), customers()], workload=W(**JOIN_W), kill_ci=True,
         note="orders with their customer; NULL customer_id matches nothing"),
    Case("join_inner_where",
         "SELECT o.id, o.amount, c.name " + OC + " WHERE c.country = 'se' AND o.amount > 100",
         [jorders(), customers()], workload=W(**JOIN_W),
         note="single-side WHERE conditions after an inner join"),
    Case("join_comma_where",
         "SELECT o.id, c.name, o.status FROM orders o, customers c "
         "WHERE o.customer_id = c.id AND c.active",
         [jorders(), customers()], workload=W(**JOIN_W),
         note="FROM a, b WHERE a.x = b.y: the WHERE equality is the join key"),
    Case("join_inner_residual",
         "SELECT o.id, o.qty, c.tier " + OC + " AND o.qty > c.tier",
         [jorders(), customers()], workload=W(**JOIN_W),
         note="a non-equi condition over both sides (the residual)"),
    Case("join_inner_expression_key",
         "SELECT o.id, c.name FROM orders o JOIN customers c ON o.customer_id + 1 = c.id + 1",
         [jorders(), customers()], workload=W(**JOIN_W),
         note="keys that are expressions, computed before the join"),
    Case("join_inner_cast_key",
         "SELECT l.id AS line_id, o.id AS order_id, l.qty, o.status "
         "FROM order_lines l JOIN orders o ON l.order_id = o.id",
         [order_lines(), jorders()], workload=W(**JOIN_W),
         note="bigint = integer: the integer side is cast to bigint before the join"),
    Case("join_inner_two_keys",
         "SELECT o.id, c.id AS cid FROM orders o JOIN customers c "
         "ON o.customer_id = c.id AND o.qty % 2 = c.tier % 2",
         [jorders(customer_null=0.05), customers()], workload=W(**JOIN_W),
         note="a composite join key, one pair computed on both sides"),
    Case("join_inner_duplicates_both_sides",
         "SELECT o.id, l.id AS line_id, l.qty FROM orders o JOIN order_lines l "
         "ON o.product_id = l.product_id",
         [jorders(key_space=30, initial=20), order_lines()], workload=W(**JOIN_W),
         note="many-to-many: duplicate keys on both sides"),
    Case("join_inner_text_key_self",
         "SELECT a.id AS a_id, b.id AS b_id FROM orders a JOIN orders b "
         "ON a.status = b.status AND a.id < b.id",
         [jorders(key_space=30, initial=20)], workload=W(**JOIN_W),
         note="a self-join on a text key with NULLs, and a residual"),
    Case("join_self_customer",
         "SELECT a.id AS a_id, b.id AS b_id, a.customer_id FROM orders a JOIN orders b "
         "ON a.customer_id = b.customer_id AND a.id <> b.id",
         [jorders(key_space=40, initial=25)], workload=W(**JOIN_W), kill_ci=True,
         note="a self-join: one source feeds both sides"),
    Case("join_inner_key_changes",
         "SELECT o.id, o.customer_id, c.name " + OC,
         [jorders(key_space=30), customers("default")],
         workload=W(insert=2, update=8, delete=2, key_change=6, changes=300),
         note="updates of the join key and of the primary key on both sides"),
    Case("join_inner_last_match_deleted",
         "SELECT o.id, c.name " + OC,
         [jorders(), customers()], workload=W(**JOIN_W, final_sql=[
             "DELETE FROM customers WHERE id <= 5",
             "DELETE FROM orders WHERE customer_id BETWEEN 6 AND 8"]),
         note="deleting every match of a key on one side, then the other"),

    # -- left ----------------------------------------------------------------------------
    Case("join_left", "SELECT o.id, o.amount, c.name, c.country "
         "FROM orders o LEFT JOIN customers c ON o.customer_id = c.id",
         [jorders(), customers()], workload=W(**JOIN_W), kill_ci=True,
         note="null-padded rows, retracted when a match arrives, back when it goes"),
    Case("join_left_on_filter",
         "SELECT o.id, o.amount, c.name, c.country FROM orders o LEFT JOIN customers c "
         "ON o.customer_id = c.id AND c.active",
         [jorders(), customers()], workload=W(**JOIN_W),
         note="the issue's enrichment: a right-side condition in ON (a filter before the join)"),
    Case("join_left_left_condition_in_on",
         "SELECT o.id, o.amount, c.name FROM orders o LEFT JOIN customers c "
         "ON o.customer_id = c.id AND o.amount > 100",
         [jorders(), customers()], workload=W(**JOIN_W),
         note="a left-side condition in a LEFT join's ON pads instead of dropping"),
    Case("join_left_is_null",
         "SELECT o.id, o.customer_id FROM orders o LEFT JOIN customers c "
         "ON o.customer_id = c.id WHERE c.id IS NULL",
         [jorders(), customers()], workload=W(**JOIN_W),
         note="the orders without a customer, through the padded rows"),
    Case("join_left_last_match_deleted",
         "SELECT o.id, c.name FROM orders o LEFT JOIN customers c ON o.customer_id = c.id",
         [jorders(), customers()], workload=W(**JOIN_W, final_sql=[
             "DELETE FROM customers WHERE id % 2 = 0",
             "UPDATE customers SET id = id + 100 WHERE id = 3"]),
         note="the null-padded row comes back when the last match goes"),
    Case("join_left_coalesce",
         "SELECT o.id, coalesce(c.name, 'none') AS name, coalesce(c.tier, -1) AS tier "
         "FROM orders o LEFT JOIN customers c ON o.customer_id = c.id",
         [jorders(), customers()], workload=W(**JOIN_W),
         note="expressions over the null-padded side"),
    Case("join_left_residual",
         "SELECT o.id, c.id AS cid FROM orders o LEFT JOIN customers c "
         "ON o.customer_id = c.id AND o.qty >= c.tier",
         [jorders(), customers()], workload=W(**JOIN_W),
         note="matches that come and go as either side's residual columns change"),

    # -- right and full ------------------------------------------------------------------
    Case("join_right",
         "SELECT o.id, c.id AS cid, c.name FROM orders o RIGHT JOIN customers c "
         "ON o.customer_id = c.id",
         [jorders(), customers()], workload=W(**JOIN_W),
         note="customers without orders are padded on the left"),
    Case("join_right_on_filter",
         "SELECT o.id, c.id AS cid FROM orders o RIGHT JOIN customers c "
         "ON o.customer_id = c.id AND o.status = 'paid'",
         [jorders(), customers()], workload=W(**JOIN_W),
         note="a condition on the padded (left) side of a RIGHT join filters before it"),
    Case("join_full",
         "SELECT o.id, o.customer_id, c.id AS cid, c.name FROM orders o FULL JOIN customers c "
         "ON o.customer_id = c.id",
         [jorders(), customers()], workload=W(**JOIN_W), kill_ci=True,
         note="padded rows on both sides"),
    Case("join_full_residual",
         "SELECT o.id, c.id AS cid FROM orders o FULL OUTER JOIN customers c "
         "ON o.customer_id = c.id AND o.qty > c.tier",
         [jorders(), customers()], workload=W(**JOIN_W)),
    Case("join_full_deletes",
         "SELECT o.id, c.id AS cid FROM orders o FULL JOIN customers c ON o.customer_id = c.id",
         [jorders(), customers()], workload=W(**JOIN_W, final_sql=[
             "DELETE FROM customers WHERE id % 3 = 0",
             "DELETE FROM orders WHERE customer_id % 3 = 1"]),
         note="both sides lose their last matches"),
    Case("join_full_self",
         "SELECT a.id AS a_id, b.id AS b_id FROM orders a FULL JOIN orders b "
         "ON a.customer_id = b.id",
         [jorders(key_space=20, initial=15)], workload=W(**JOIN_W),
         note="a self-join on different columns of each side"),

    # -- several joins, and aggregates after them -------------------------------------------
    Case("join_three_way",
         "SELECT l.id AS line_id, o.id AS order_id, c.name, l.qty FROM order_lines l "
         "JOIN orders o ON l.order_id = o.id JOIN customers c ON o.customer_id = c.id",
         [order_lines(), jorders(), customers()], workload=W(**JOIN_W)),
    Case("join_four_way_group_by",
         "SELECT c.country, count(*) AS orders, sum(l.qty * p.price) AS revenue "
         "FROM order_lines l JOIN orders o ON l.order_id = o.id "
         "JOIN customers c ON o.customer_id = c.id JOIN products p ON l.product_id = p.id "
         "GROUP BY c.country",
         [order_lines(), jorders(), customers(), products()], workload=W(**JOIN_W),
         kill_ci=True, note="the issue's query: three joins, then an aggregate on another key"),
    Case("join_group_by_customer",
         "SELECT c.name, count(*) AS n, sum(o.amount) AS total " + OC + " GROUP BY c.name",
         [jorders(), customers()], workload=W(**JOIN_W),
         note="re-partition from the join key to the group key"),
    Case("join_left_group_by_count",
         "SELECT c.id, count(o.id) AS n, sum(o.qty) AS q FROM customers c "
         "LEFT JOIN orders o ON o.customer_id = c.id GROUP BY c.id",
         [customers(), jorders()], workload=W(**JOIN_W),
         note="count(o.id) is 0 for a customer whose only row is padded"),
    Case("join_key_moves_then_join_group_by",
         "SELECT c.country, count(*) AS orders, sum(o.qty * p.price) AS revenue "
         "FROM orders o JOIN customers c ON o.customer_id = c.id "
         "JOIN products p ON o.product_id = p.id GROUP BY c.country",
         [jorders(key_space=120, initial=80, customer_null=0.0), customers(), products()],
         workload=W(insert=3, update=12, delete=2, key_change=1), kill_ci=True,
         note="orders moving between customers: the first join's output is keyed by the order "
              "but partitioned by the customer, so the second join keeps it in a multiset view "
              "(a unique-key view let a late retraction delete the moved row: bench/sql_join.py "
              "found it at parallelism 2)"),
    Case("join_inner_then_left",
         "SELECT o.id, c.name, p.title FROM orders o JOIN customers c ON o.customer_id = c.id "
         "LEFT JOIN products p ON o.product_id = p.id",
         [jorders(), customers(), products()], workload=W(**JOIN_W)),
    Case("join_view",
         "SELECT b.id, b.amount, c.name FROM big_orders b JOIN customers c "
         "ON b.customer_id = c.id",
         [jorders(), customers()], workload=W(**JOIN_W),
         views=["CREATE VIEW big_orders AS SELECT id, customer_id, amount FROM orders "
                "WHERE amount > 100"],
         note="a view as a join input"),
    Case("join_aggregate_view",
         "SELECT c.id, c.name, t.total, t.n FROM customers c JOIN per_customer t "
         "ON t.customer_id = c.id",
         [jorders(), customers()], workload=W(**JOIN_W),
         views=["CREATE VIEW per_customer AS SELECT customer_id, sum(amount) AS total, "
                "count(*) AS n FROM orders GROUP BY customer_id"],
         note="joining an aggregate's updates (its before images retract the old pair)"),
    Case("join_subquery_in_from",
         "SELECT o.id, c.name FROM (SELECT id, customer_id FROM orders WHERE status = 'paid') o "
         "JOIN customers c ON o.customer_id = c.id",
         [jorders(), customers()], workload=W(**JOIN_W)),

    # -- semi and anti joins -------------------------------------------------------------
    Case("exists",
         "SELECT c.id, c.name FROM customers c "
         "WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)",
         [customers(), jorders()], workload=W(**JOIN_W), kill_ci=True,
         note="a customer appears with its first order and goes with its last"),
    Case("not_exists",
         "SELECT c.id, c.name FROM customers c "
         "WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)",
         [customers(), jorders()], workload=W(**JOIN_W)),
    Case("exists_with_filter",
         "SELECT c.id FROM customers c WHERE c.active IS NOT FALSE AND EXISTS "
         "(SELECT 1 FROM orders o WHERE o.customer_id = c.id AND o.amount > 200)",
         [customers(), jorders()], workload=W(**JOIN_W)),
    Case("exists_residual",
         "SELECT c.id, c.tier FROM customers c WHERE EXISTS "
         "(SELECT 1 FROM orders o WHERE o.customer_id = c.id AND o.qty > c.tier)",
         [customers(), jorders()], workload=W(**JOIN_W),
         note="a correlated condition besides the key"),
    Case("exists_self",
         "SELECT o.id, o.customer_id FROM orders o WHERE EXISTS "
         "(SELECT 1 FROM orders p WHERE p.customer_id = o.customer_id AND p.id <> o.id)",
         [jorders(key_space=40, initial=25)], workload=W(**JOIN_W),
         note="orders whose customer has another order"),
    Case("in_subquery",
         "SELECT c.id, c.country FROM customers c WHERE c.id IN (SELECT customer_id FROM orders)",
         [customers(), jorders()], workload=W(**JOIN_W)),
    Case("in_subquery_filtered",
         "SELECT c.id FROM customers c WHERE c.id IN "
         "(SELECT customer_id FROM orders WHERE status = 'paid') AND c.country IS NOT NULL",
         [customers(), jorders()], workload=W(**JOIN_W)),
    Case("not_in_with_nulls",
         "SELECT c.id FROM customers c WHERE c.id NOT IN (SELECT customer_id FROM orders)",
         [customers(), jorders(customer_null=0.15)],
         workload=W(**JOIN_W, final_sql=["DELETE FROM orders WHERE customer_id IS NULL",
                                         "DELETE FROM orders WHERE customer_id > 10"]),
         note="NOT IN's NULL rule: one NULL customer_id empties the result until it goes"),
    Case("not_in_nullable_outer",
         "SELECT o.id, o.customer_id FROM orders o WHERE o.customer_id NOT IN "
         "(SELECT id FROM customers WHERE active)",
         [jorders(), customers()], workload=W(**JOIN_W),
         note="a NULL outer key passes only while the subquery is empty"),
    Case("not_in_not_null",
         "SELECT c.id FROM customers c WHERE c.id NOT IN (SELECT p.id FROM products p)",
         [customers(), products()], workload=W(**JOIN_W),
         note="neither side can be NULL: a plain anti join, hash-partitioned"),
    Case("exists_and_not_exists",
         "SELECT c.id FROM customers c "
         "WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id) "
         "AND NOT EXISTS (SELECT 1 FROM products p WHERE p.id = c.fav_product)",
         [customers(), jorders(), products()], workload=W(**JOIN_W),
         note="a semi join then an anti join, left-deep"),
    Case("exists_then_group_by",
         "SELECT c.country, count(*) AS n FROM customers c "
         "WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id AND o.status = 'paid') "
         "GROUP BY c.country",
         [customers(), jorders()], workload=W(**JOIN_W)),
]

CASES += JOIN_CASES


# -- windows (issue 13): window TVFs and window aggregation ---------------------
#
# Each windowed case runs bounded (Case.bounded: the final tables are read
# through snapshot = 'initial_only' and the end of input fires every window)
# until the sources emit watermarks.  PostgreSQL answers the same query with
# the window function replaced by its definition over the table (win_pg):
# TUMBLE by date_bin, HOP and CUMULATE by generate_series over each row's
# windows, SESSION by gaps and islands per group key.  Rows whose time is NULL
# are in no window on both sides.

PAGES = ["home", "cart", "help", "shop", None]


def narrow_ts(minutes: int = 120, tz: bool = False, null: float = 0.05):
    """Times within `minutes` of 2026-03-01 10:00, some exactly on 5-minute boundaries."""
    import random as _random  # noqa: F401 (the generator gets the workload's Random)
    from datetime import datetime as _dt, timedelta as _td
    base = _dt(2026, 3, 1, 10, 0, 0)
    cast = "::timestamptz" if tz else "::timestamp"

    def g(r):
        if r.random() < null:
            return "NULL"
        if r.random() < 0.15:
            t = base + _td(minutes=5 * r.randint(0, minutes // 5))
        else:
            t = base + _td(seconds=r.randint(0, minutes * 60),
                           microseconds=r.choice([0, 0, 500_000, r.randint(0, 999_999)]))
        return f"'{t.strftime('%Y-%m-%d %H:%M:%S.%f')}{'+00' if tz else ''}'{cast}"
    return g


def clicks(key_space: int = 60, initial: int = 40) -> Table:
    """Clicks: a few users and pages (with NULLs), numbers, two times two hours wide."""
    return Table("clicks", [
        Column("user_id", "int", ints(1, 4, null=0.1)),
        Column("page", "text", choice(PAGES)),
        Column("amount", "numeric(8,2)", decimals(-20, 200, 2, null=0.1)),
        Column("n", "int", ints(0, 9, null=0.1)),
        Column("ts", "timestamp", narrow_ts()),
        Column("tstz", "timestamptz", narrow_ts(tz=True)),
        Column("ok", "boolean", bools(null=0.1)),
    ], key_space=key_space, initial_rows=initial, watermark="ts - INTERVAL '5 seconds'")


def win_pg(fn: str, table: str, col: str, sizes, tz: bool = False, keys=()) -> str:
    """PostgreSQL's FROM item for tidemark's FN(table, col, sizes…): the table with its windows."""
    o = "'1970-01-01 00:00:00+00'::timestamptz" if tz else "'1970-01-01 00:00:00'::timestamp"
    iv = [f"INTERVAL '{s}'" for s in sizes]
    one = "INTERVAL '1 microsecond'"
    c = f"src.{col}"
    if fn == "TUMBLE":
        size = iv[0]
        ws = f"date_bin({size}, {c}, {o})"
        return (f"(SELECT src.*, {ws} AS window_start, {ws} + {size} AS window_end, "
                f"{ws} + {size} - {one} AS window_time FROM {table} src "
                f"WHERE {c} IS NOT NULL) AS {table}")
    if fn == "HOP":
        slide, size = iv
        last = f"date_bin({slide}, {c}, {o})"
        return (f"(SELECT src.*, s.ws AS window_start, s.ws + {size} AS window_end, "
                f"s.ws + {size} - {one} AS window_time FROM {table} src, "
                f"generate_series({last} - {size} + {slide}, {last}, {slide}) AS s(ws) "
                f"WHERE {c} IS NOT NULL) AS {table}")
    if fn == "CUMULATE":
        step, size = iv
        ws = f"date_bin({size}, {c}, {o})"
        return (f"(SELECT src.*, {ws} AS window_start, e.we AS window_end, "
                f"e.we - {one} AS window_time FROM {table} src, "
                f"generate_series(date_bin({step}, {c}, {o}) + {step}, {ws} + {size}, {step}) "
                f"AS e(we) WHERE {c} IS NOT NULL) AS {table}")
    assert fn == "SESSION", fn
    gap = iv[0]
    part = lambda a: ("PARTITION BY " + ", ".join(f"{a}.{k}" for k in keys)) if keys else ""  # noqa
    grp = lambda a: ("PARTITION BY " + ", ".join([f"{a}.{k}" for k in keys] + [f"{a}.grp__"]))  # noqa
    # lag and the running sum must order ties alike (by id), or a tie's break lands on the wrong row.
    inner = (f"SELECT src.*, CASE WHEN {c} - lag({c}) OVER ({part('src')} ORDER BY {c}, src.id) "
             f"<= {gap} "
             f"THEN 0 ELSE 1 END AS brk__ FROM {table} src WHERE {c} IS NOT NULL")
    mid = (f"SELECT y.*, sum(y.brk__) OVER ({part('y')} ORDER BY y.{col}, y.id ROWS UNBOUNDED "
           f"PRECEDING) AS grp__ FROM ({inner}) y")
    return (f"(SELECT x.*, min(x.{col}) OVER ({grp('x')}) AS window_start, "
            f"max(x.{col}) OVER ({grp('x')}) + {gap} AS window_end, "
            f"max(x.{col}) OVER ({grp('x')}) + {gap} - {one} AS window_time "
            f"FROM ({mid}) x) AS {table}")


def wcase(name: str, query: str, fn: str, sizes, col: str = "ts", keys=(), oracle: str = None,
          table: str = "clicks", tables=None, views=(), workload=None, note: str = "",
          kill_ci: bool = False, post_check=None) -> Case:
    """A windowed case: `query` (and `oracle`, default the same) with {W} for the FROM item."""
    tz = col.endswith("tz")
    tvf = f"{fn}({table}, {col}, " + ", ".join(f"INTERVAL '{s}'" for s in sizes) + ")"
    pg = win_pg(fn, table, col, sizes, tz=tz, keys=keys)
    return Case(f"win_{name}", query.format(W=tvf), tables or [clicks()], views=views,
                oracle_query=(oracle or query).format(W=pg), bounded=True,
                job_is_postgresql=False,
                workload=workload or W(), note=note, kill_ci=kill_ci, post_check=post_check)


WS = "window_start, window_end"

WINDOW_CASES = [
    wcase("tumble_count", f"SELECT {WS}, count(*) AS n FROM {{W}} GROUP BY {WS}",
          "TUMBLE", ["10 minutes"], kill_ci=True,
          note="the window alone is the key: one subtask (SINGLE)"),
    wcase("tumble_by_user_sums",
          f"SELECT user_id, {WS}, count(*) AS n, sum(amount) AS total, sum(n) AS sn "
          f"FROM {{W}} GROUP BY user_id, {WS}", "TUMBLE", ["10 minutes"], kill_ci=True),
    wcase("tumble_min_max",
          f"SELECT page, {WS}, min(amount) AS lo, max(amount) AS hi, min(n) AS nlo, "
          f"max(ts) AS last_ts FROM {{W}} GROUP BY page, {WS}", "TUMBLE", ["15 minutes"]),
    wcase("tumble_avg", f"SELECT user_id, {WS}, avg(amount) AS a, avg(n) AS an "
          f"FROM {{W}} GROUP BY user_id, {WS}", "TUMBLE", ["20 minutes"]),
    wcase("tumble_distinct",
          f"SELECT {WS}, count(DISTINCT page) AS pages, count(DISTINCT user_id) AS users, "
          f"sum(DISTINCT n) AS sdn FROM {{W}} GROUP BY {WS}", "TUMBLE", ["10 minutes"]),
    wcase("tumble_string_agg",
          f"SELECT user_id, {WS}, string_agg(page, ',') AS pages FROM {{W}} "
          f"GROUP BY user_id, {WS}", "TUMBLE", ["30 minutes"],
          oracle=f"SELECT user_id, {WS}, string_agg(page, ',' ORDER BY page) AS pages "
                 f"FROM {{W}} GROUP BY user_id, {WS}"),
    wcase("tumble_bool", f"SELECT page, {WS}, bool_and(ok) AS all_ok, bool_or(ok) AS any_ok "
          f"FROM {{W}} GROUP BY page, {WS}", "TUMBLE", ["10 minutes"]),
    wcase("tumble_timestamptz", f"SELECT user_id, {WS}, count(*) AS n, sum(amount) AS total "
          f"FROM {{W}} GROUP BY user_id, {WS}", "TUMBLE", ["15 minutes"], col="tstz",
          kill_ci=True),
    wcase("tumble_having", f"SELECT user_id, {WS}, count(*) AS n FROM {{W}} "
          f"GROUP BY user_id, {WS} HAVING count(*) > 1", "TUMBLE", ["10 minutes"]),
    wcase("tumble_where", f"SELECT page, {WS}, sum(amount) AS total FROM {{W}} "
          f"WHERE amount > 0 AND n IS NOT NULL GROUP BY page, {WS}", "TUMBLE", ["10 minutes"]),
    wcase("tumble_expression_key",
          f"SELECT user_id % 2 AS parity, {WS}, count(*) AS n FROM {{W}} "
          f"GROUP BY user_id % 2, {WS}", "TUMBLE", ["10 minutes"]),
    wcase("tumble_select_expressions",
          f"SELECT window_end - window_start AS len, count(*) * 2 AS n2, "
          f"coalesce(sum(n), 0) + 1 AS s1 FROM {{W}} GROUP BY {WS}", "TUMBLE", ["5 minutes"]),
    wcase("tumble_window_time",
          f"SELECT window_start, window_time, count(*) AS n FROM {{W}} "
          f"GROUP BY window_start, window_end, window_time", "TUMBLE", ["10 minutes"]),
    wcase("tumble_key_not_selected",
          f"SELECT window_start, count(*) AS n FROM {{W}} GROUP BY page, {WS}",
          "TUMBLE", ["10 minutes"], note="several rows per window: one per (hidden) page"),
    wcase("tumble_columns_reordered",
          f"SELECT count(*) AS n, window_end, user_id, window_start FROM {{W}} "
          f"GROUP BY window_end, user_id, window_start", "TUMBLE", ["10 minutes"]),
    wcase("tumble_two_keys", f"SELECT user_id, page, {WS}, count(*) AS n, max(amount) AS hi "
          f"FROM {{W}} GROUP BY user_id, page, {WS}", "TUMBLE", ["30 minutes"], kill_ci=True),
    wcase("tumble_one_minute", f"SELECT {WS}, count(*) AS n, sum(n) AS sn FROM {{W}} "
          f"GROUP BY {WS}", "TUMBLE", ["1 minute"]),
    wcase("tumble_count_column", f"SELECT user_id, {WS}, count(amount) AS c, count(*) AS n "
          f"FROM {{W}} GROUP BY user_id, {WS}", "TUMBLE", ["1 hour"]),
    wcase("tumble_over_view",
          f"SELECT user_id, {WS}, count(*) AS n, sum(amount) AS total FROM {{W}} "
          f"GROUP BY user_id, {WS}", "TUMBLE", ["10 minutes"], table="paid",
          views=["CREATE VIEW paid AS SELECT id, user_id, amount, ts FROM clicks WHERE ok"],
          note="the TVF's table is a view"),
    wcase("tumble_changes_before_read",
          f"SELECT user_id, {WS}, count(*) AS n, min(amount) AS lo FROM {{W}} "
          f"GROUP BY user_id, {WS}", "TUMBLE", ["10 minutes"],
          workload=W(changes=300, insert=5, update=6, delete=3, key_change=2),
          note="updates, deletes and key changes, all before the bounded read"),
    wcase("hop_count", f"SELECT {WS}, count(*) AS n FROM {{W}} GROUP BY {WS}",
          "HOP", ["5 minutes", "15 minutes"], kill_ci=True,
          note="every row in three windows"),
    wcase("hop_by_user", f"SELECT user_id, {WS}, sum(amount) AS total, max(n) AS mx "
          f"FROM {{W}} GROUP BY user_id, {WS}", "HOP", ["10 minutes", "30 minutes"]),
    wcase("hop_distinct", f"SELECT {WS}, count(DISTINCT page) AS pages FROM {{W}} "
          f"GROUP BY {WS}", "HOP", ["5 minutes", "20 minutes"]),
    wcase("hop_timestamptz", f"SELECT page, {WS}, avg(n) AS an, count(*) AS n FROM {{W}} "
          f"GROUP BY page, {WS}", "HOP", ["10 minutes", "30 minutes"], col="tstz"),
    wcase("hop_having", f"SELECT user_id, {WS}, sum(n) AS sn FROM {{W}} "
          f"GROUP BY user_id, {WS} HAVING sum(n) > 10", "HOP", ["5 minutes", "10 minutes"]),
    wcase("cumulate_count", f"SELECT {WS}, count(*) AS n FROM {{W}} GROUP BY {WS}",
          "CUMULATE", ["10 minutes", "30 minutes"], kill_ci=True),
    wcase("cumulate_by_page", f"SELECT page, {WS}, min(amount) AS lo, max(amount) AS hi "
          f"FROM {{W}} GROUP BY page, {WS}", "CUMULATE", ["5 minutes", "20 minutes"]),
    wcase("cumulate_timestamptz",
          f"SELECT user_id, {WS}, sum(amount) AS total, string_agg(page, '|') AS pages "
          f"FROM {{W}} GROUP BY user_id, {WS}", "CUMULATE", ["15 minutes", "1 hour"],
          col="tstz",
          oracle=f"SELECT user_id, {WS}, sum(amount) AS total, "
                 f"string_agg(page, '|' ORDER BY page) AS pages FROM {{W}} "
                 f"GROUP BY user_id, {WS}"),
    wcase("session_global", f"SELECT {WS}, count(*) AS n, max(ts) AS last_ts FROM {{W}} "
          f"GROUP BY {WS}", "SESSION", ["2 minutes"], kill_ci=True,
          note="no group key: one session stream over all rows"),
    wcase("session_by_user", f"SELECT user_id, {WS}, count(*) AS n, sum(amount) AS total "
          f"FROM {{W}} GROUP BY user_id, {WS}", "SESSION", ["5 minutes"], keys=["user_id"],
          kill_ci=True),
    wcase("session_by_page_timestamptz",
          f"SELECT page, {WS}, count(*) AS n, min(n) AS lo FROM {{W}} GROUP BY page, {WS}",
          "SESSION", ["4 minutes"], col="tstz", keys=["page"]),
    wcase("session_distinct", f"SELECT user_id, {WS}, count(DISTINCT page) AS pages "
          f"FROM {{W}} GROUP BY user_id, {WS}", "SESSION", ["6 minutes"], keys=["user_id"]),
    wcase("session_min_max_bool",
          f"SELECT user_id, {WS}, min(amount) AS lo, max(page) AS hi, bool_or(ok) AS any_ok "
          f"FROM {{W}} GROUP BY user_id, {WS}", "SESSION", ["10 minutes"], keys=["user_id"]),
    wcase("session_two_keys", f"SELECT user_id, page, {WS}, count(*) AS n FROM {{W}} "
          f"GROUP BY user_id, page, {WS}", "SESSION", ["15 minutes"],
          keys=["user_id", "page"]),
]

CASES += WINDOW_CASES

# -- window Top-N (issue 13): row_number() over a window aggregation ------------------------
# PARTITION BY window_start, window_end [, k] over a window aggregate plans a window Top-N
# (insert-only, each window's top N once it closes); PostgreSQL ranks the same aggregate over
# the floored windows.  Ties: a case that orders by a column with ties selects only columns
# the tie cannot change (PostgreSQL ranks ties in no promised order).


def _wagg(keys: str, aggs: str = "count(*) AS n, sum(amount) AS total") -> str:
    k = keys + ", " if keys else ""
    return f"SELECT {k}{WS}, {aggs} FROM {{W}} GROUP BY {k}{WS}"


def _insert_only(run) -> list:
    """A window Top-N emits each window's rows once: inserts only, never an update or delete."""
    from sql_harness import output_lines
    ops = {}
    for _f, _n, rec in output_lines(run.out_dir):
        p = rec.get("payload", rec)
        ops[p.get("op")] = ops.get(p.get("op"), 0) + 1
    bad = {k: v for k, v in ops.items() if k not in ("c", "r")}
    return [f"a window Top-N must be insert-only, but the output has {bad}"] if bad else []


def _wrank(select: str, part: str, order: str, where: str, agg: str) -> str:
    return (f"SELECT {select} FROM (SELECT *, row_number() OVER (PARTITION BY {WS}{part} "
            f"ORDER BY {order}) AS rn FROM ({agg}) a) t WHERE {where}")


WINRANK_CASES = [
    wcase("rank_tumble_top2", _wrank("*", "", "n DESC, user_id NULLS LAST", "rn <= 2",
                                     _wagg("user_id")), "TUMBLE", ["10 minutes"], kill_ci=True,
          post_check=_insert_only,
          note="the top 2 users per window by rows, with their rank"),
    wcase("rank_ties", _wrank(f"{WS}, n, rn", "", "n DESC", "rn <= 2", _wagg("user_id")),
          "TUMBLE", ["15 minutes"],
          note="ties in n: the tied user is not selected, so either order gives these rows"),
    wcase("rank_partition_k", _wrank("*", ", page", "total DESC NULLS LAST, user_id NULLS LAST",
                                     "rn <= 1", _wagg("page, user_id")),
          "TUMBLE", ["20 minutes"], post_check=_insert_only,
          note="PARTITION BY the window and a key: top 1 per page"),
    wcase("rank_n_larger_than_groups", _wrank("*", "", "total ASC NULLS FIRST, user_id",
                                              "rn <= 50", _wagg("user_id")),
          "TUMBLE", ["10 minutes"], note="N above the groups of any window: every group, ranked"),
    wcase("rank_hop", _wrank("user_id, window_start, n, rn", "", "n DESC, user_id NULLS LAST",
                             "rn < 3", _wagg("user_id")),
          "HOP", ["5 minutes", "15 minutes"], kill_ci=True, post_check=_insert_only,
          note="a row is in three windows: ranked in each"),
    wcase("rank_cumulate", _wrank("*", "", "total DESC NULLS LAST, page NULLS LAST", "rn <= 2",
                                  _wagg("page")),
          "CUMULATE", ["10 minutes", "30 minutes"]),
    wcase("rank_not_selected", _wrank("page, window_end, total", "", "total DESC NULLS LAST, "
                                      "page NULLS LAST", "rn <= 2", _wagg("page")),
          "TUMBLE", ["10 minutes"], note="rn not read by the outer query"),
    wcase("rank_timestamptz", _wrank("*", "", "n DESC, user_id NULLS LAST", "rn = 1",
                                     _wagg("user_id")), "TUMBLE", ["15 minutes"], col="tstz"),
    wcase("rank_session", _wrank("*", "", "n DESC", "rn <= 1", _wagg("user_id")),
          "SESSION", ["5 minutes"], keys=["user_id"],
          note="sessions per user: every window holds one user, so no ties"),
    wcase("rank_global_aggregate", _wrank("*", "", "n DESC", "rn <= 3", _wagg("")),
          "HOP", ["10 minutes", "20 minutes"], note="one row per window: ranked 1"),
]


# Window Top-N and deduplication straight over the window TVF (no aggregation): every row
# of the table ranked within each of its windows.  ORDER BY ends with id (unique).


def _tvf_rank(select: str, part: str, order: str, where: str, inner_where: str = "") -> str:
    w = f" WHERE {inner_where}" if inner_where else ""
    return (f"SELECT {select} FROM (SELECT *, row_number() OVER (PARTITION BY {WS}{part} "
            f"ORDER BY {order}) AS rn FROM {{W}}{w}) t WHERE {where}")


TVF_ROWS = "id, user_id, page, amount, ts, window_start, window_end"

WINRANK_CASES += [
    wcase("dedup_first", _tvf_rank(f"{TVF_ROWS}, rn", ", user_id", "ts, id", "rn = 1"),
          "TUMBLE", ["10 minutes"], kill_ci=True, post_check=_insert_only,
          note="window deduplication, first row per (window, user)"),
    wcase("dedup_last", _tvf_rank(TVF_ROWS, ", user_id", "ts DESC, id DESC", "rn <= 1"),
          "TUMBLE", ["15 minutes"], post_check=_insert_only,
          note="window deduplication, last row per (window, user); rn not selected"),
    wcase("tvf_top_hop", _tvf_rank(f"{TVF_ROWS}, rn", "", "amount DESC NULLS LAST, id",
                                   "rn <= 3"),
          "HOP", ["5 minutes", "15 minutes"], kill_ci=True, post_check=_insert_only,
          note="the top 3 rows per HOP window: a row is ranked in each of its 3 windows"),
    wcase("tvf_top_cumulate_where",
          _tvf_rank(f"{TVF_ROWS}, rn", ", page", "n DESC NULLS LAST, id", "rn < 3",
                    inner_where="amount > 0"),
          "CUMULATE", ["10 minutes", "30 minutes"], post_check=_insert_only,
          note="WHERE before ranking; PARTITION BY the window and page"),
    wcase("tvf_top_timestamptz", _tvf_rank("id, tstz, window_end, rn", "", "tstz DESC, id",
                                           "rn <= 2"),
          "TUMBLE", ["20 minutes"], col="tstz"),
]

CASES += WINRANK_CASES
# -- Top-N and deduplication (issue 13) ----------------------------------------------------
# Every ORDER BY ends with a unique column (id, or the group key), because PostgreSQL ranks
# ties in no promised order; tidemark ranks them by the row's bytes (docs/sql.md).

def _ranked(select: str, over: str, where: str, inner: str = "*", source: str = "orders") -> str:
    return (f"SELECT {select} FROM (SELECT {inner}, row_number() OVER ({over}) AS rn "
            f"FROM {source}) s WHERE {where}")


TOPN_W = dict(insert=4, update=6, delete=3, key_change=1)

TOPN_CASES = [
    Case("topn_rank_number",
         _ranked("*", "PARTITION BY customer ORDER BY amount DESC, id", "rn <= 3"),
         [orders()], workload=W(**TOPN_W, extreme_deletes=("amount", "max")), kill_ci=True,
         note="the top 3 per customer with their rank; deleting a leader moves the 4th up"),
    Case("topn_no_rank_number",
         _ranked("id, customer, amount", "PARTITION BY customer ORDER BY amount DESC, id",
                 "rn <= 2", inner="id, customer, amount"),
         [orders()], workload=W(**TOPN_W, extreme_deletes=("amount", "max")), kill_ci=True,
         note="rn not selected: rows entering and leaving the top 2 only"),
    Case("topn_lt_asc_nulls_first",
         _ranked("id, customer, qty, rn", "PARTITION BY customer ORDER BY qty ASC NULLS FIRST, id",
                 "rn < 4"),
         [orders()], workload=W(**TOPN_W, extreme_deletes=("qty", "min")),
         note="rn < N, ascending with NULLs first"),
    Case("topn_global",
         _ranked("id, amount, rn", "ORDER BY amount DESC NULLS LAST, id", "rn <= 5"),
         [orders()], workload=W(**TOPN_W),
         note="no PARTITION BY: one partition on one subtask"),
    Case("topn_two_partition_columns_float",
         _ranked("id, customer, region, price, rn",
                 "PARTITION BY customer, region ORDER BY price DESC, id", "2 >= rn"),
         [orders()], workload=W(**TOPN_W),
         note="a composite partition key (with NULLs), a float order key, N >= rn"),
    Case("topn_hidden_order_column",
         _ranked("id, customer", "PARTITION BY customer ORDER BY qty DESC, id", "rn <= 2",
                 inner="id, customer"),
         [orders()], workload=W(**TOPN_W),
         note="ORDER BY a column the subquery does not select"),
    Case("topn_between_and_filter",
         _ranked("id, region, amount, rn", "PARTITION BY region ORDER BY amount, id",
                 "rn BETWEEN 1 AND 3 AND amount > 0"),
         [orders()], workload=W(**TOPN_W),
         note="rn BETWEEN 1 AND N, and another condition after ranking"),
    Case("topn_where_before_rank",
         _ranked("id, customer, note, rn", "PARTITION BY customer ORDER BY note DESC, id",
                 "rn <= 2", source="orders WHERE paid"),
         [orders()], workload=W(**TOPN_W),
         note="WHERE inside the subquery filters before ranking; text order key"),
    Case("topn_over_aggregate",
         _ranked("*", "PARTITION BY region ORDER BY total DESC, customer", "rn <= 2",
                 inner="region, customer, total",
                 source="(SELECT region, customer, sum(amount) AS total FROM orders "
                        "GROUP BY region, customer) a"),
         [orders()], workload=W(**TOPN_W), kill_ci=True,
         note="the issue's plain Top-N: the best customers per region by revenue, over an "
              "aggregate's updates"),
    Case("dedup_keep_first",
         _ranked("id, customer, created_at", "PARTITION BY customer ORDER BY created_at, id",
                 "rn = 1"),
         [orders()], workload=W(**TOPN_W),
         note="deduplication: the first row per customer by time"),
    Case("dedup_keep_last",
         _ranked("id, customer, amount, created_at",
                 "PARTITION BY customer ORDER BY created_at DESC, id DESC", "rn = 1"),
         [orders()], workload=W(**TOPN_W), kill_ci=True,
         note="deduplication: the last row per customer by time"),
    Case("dedup_keep_last_by_id",
         _ranked("id, kind, user_id, score", "PARTITION BY kind, user_id ORDER BY id DESC",
                 "rn = 1", source="events"),
         [events("default")], workload=W(**TOPN_W),
         note="the latest event per (kind, user) under REPLICA IDENTITY DEFAULT"),
    # Over an insert-only input (a bounded snapshot read): the operator keeps N rows per
    # partition and merges each batch of inserts into them in memory (topn.c, merge_part).
    Case("topn_append_only",
         _ranked("*", "PARTITION BY customer ORDER BY amount DESC, id", "rn <= 3"),
         [orders(initial=120)], bounded=True, kill_ci=True,
         note="insert-only input: by rank, batches of many inserts per partition"),
    Case("topn_append_only_no_rank_number",
         _ranked("id, region, qty", "PARTITION BY region ORDER BY qty ASC NULLS FIRST, id",
                 "rn <= 4", inner="id, region, qty"),
         [orders(initial=120)], bounded=True,
         note="insert-only input, rows entering and leaving the top 4 only"),
    Case("dedup_append_only_last",
         _ranked("id, customer, created_at", "PARTITION BY customer ORDER BY created_at DESC, "
                 "id DESC", "rn = 1"),
         [orders(initial=120)], bounded=True,
         note="insert-only input: the last row per customer; later rows replace the first"),
]

CASES += TOPN_CASES


# -- interval joins (issue 13) ----------------------------------------------------------------
# Bids and auctions whose times fall within two hours, so that 10-minute ranges match often.
# PostgreSQL sources are changelogs, not append-only streams: tidemark plans these as regular
# joins with the time bounds as a condition (explain says so), as Flink does; the interval join
# operator itself runs over insert-only inputs (tests/unit/operators/interval_join.c).

def near_times(span_minutes: int = 120, null: float = 0.0, tz: bool = False):
    base = datetime(2026, 12, 7, 12, 0, 0)
    cast = "::timestamptz" if tz else "::timestamp"

    def g(r):
        t = base + timedelta(seconds=r.randint(0, span_minutes * 60),
                             microseconds=r.choice([0, 0, 500_000, r.randint(0, 999_999)]))
        return f"'{t.strftime('%Y-%m-%d %H:%M:%S.%f')}{'+00' if tz else ''}'{cast}"
    return nullable(g, null) if null else g


def auctions(tz: bool = False) -> Table:
    ty = "timestamptz" if tz else "timestamp"
    return Table("auctions", [
        Column("seller", "int", ints(1, 9, null=0.05)),
        Column("category", "int", ints(1, 4)),
        Column("ts", ty, near_times(null=0.05, tz=tz)),
    ], replica_identity="full", key_space=20, initial_rows=14)


def bids(tz: bool = False) -> Table:
    ty = "timestamptz" if tz else "timestamp"
    return Table("bids", [
        Column("auction", "int", ints(1, 22, null=0.05)),
        Column("bidder", "int", ints(1, 12)),
        Column("price", "numeric(10,2)", decimals(1, 300, 2, null=0.05)),
        Column("ts", ty, near_times(null=0.05, tz=tz)),
    ], replica_identity="default", key_space=90, initial_rows=50)


IJ_W = dict(insert=6, update=4, delete=2, key_change=1)
BA = "FROM bids b {} auctions a ON b.auction = a.id AND "

INTERVAL_JOIN_CASES = [
    Case("ij_between",
         "SELECT b.id, b.price, a.seller " + BA.format("JOIN") +
         "b.ts BETWEEN a.ts AND a.ts + INTERVAL '10 minutes'",
         [bids(), auctions()], workload=W(**IJ_W), kill_ci=True,
         note="the issue's interval join: bids within 10 minutes after their auction"),
    Case("ij_strict_minus",
         "SELECT b.id, a.id AS aid, b.ts AS bts, a.ts AS ats " + BA.format("JOIN") +
         "b.ts > a.ts - INTERVAL '5 minutes' AND b.ts < a.ts + INTERVAL '15 minutes'",
         [bids(), auctions()], workload=W(**IJ_W),
         note="strict bounds on both sides, one of them before the other side's time"),
    Case("ij_reversed_sides",
         "SELECT b.id, a.seller " + BA.format("JOIN") +
         "a.ts BETWEEN b.ts - INTERVAL '20 minutes' AND b.ts - INTERVAL '1 minute'",
         [bids(), auctions()], workload=W(**IJ_W),
         note="the bound written on the right side's time column"),
    Case("ij_left",
         "SELECT b.id, b.price, a.id AS aid, a.seller " + BA.format("LEFT JOIN") +
         "b.ts BETWEEN a.ts AND a.ts + INTERVAL '10 minutes'",
         [bids(), auctions()], workload=W(**IJ_W), kill_ci=True,
         note="bids without an auction in range are padded"),
    Case("ij_right",
         "SELECT b.id, a.id AS aid, a.category " + BA.format("RIGHT JOIN") +
         "b.ts >= a.ts AND b.ts <= a.ts + INTERVAL '30 minutes'",
         [bids(), auctions()], workload=W(**IJ_W),
         note="auctions without a bid in range are padded"),
    Case("ij_full_residual",
         "SELECT b.id, a.id AS aid " + BA.format("FULL JOIN") +
         "b.ts BETWEEN a.ts - INTERVAL '3 minutes' AND a.ts + INTERVAL '3 minutes' "
         "AND b.price > 50",
         [bids(), auctions()], workload=W(**IJ_W),
         note="a condition besides the time range, both sides padded"),
    Case("ij_timestamptz_group_by",
         "SELECT a.seller, count(*) AS n, max(b.price) AS top " + BA.format("JOIN") +
         "b.ts BETWEEN a.ts AND a.ts + INTERVAL '1 hour' GROUP BY a.seller",
         [bids(tz=True), auctions(tz=True)], workload=W(**IJ_W),
         note="timestamptz bounds, then an aggregate over the matches"),
]

CASES += INTERVAL_JOIN_CASES
