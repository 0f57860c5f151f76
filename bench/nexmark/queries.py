"""Nexmark q0-q22 as tidemark SQL (PostgreSQL grammar) and as Flink SQL.

Each query is a SELECT over the tables `person`, `auction` and `bid` (the driver
declares them: datagen on tidemark, tm-nexmark on Flink, same generator) whose
rows go into a blackhole sink.  The Flink texts are the Nexmark suite's
(nexmark/nexmark, as Flink runs it), written against these tables; where a
function has another name in PostgreSQL's grammar the tidemark text says the
same thing with tidemark's functions, and `note` says so.  Window, Top-N and
interval-join queries are written as the issue's SQL will accept them
(TUMBLE/HOP/SESSION table functions, row_number()); a query the planner refuses
(q12's processing-time window) is printed with its error as "not supported".

`events_of` lists the tables a query reads: only those are generated, on both
engines.
"""

# Column lists of the three tables, as both engines declare them.
TIDEMARK_COLUMNS = {
    "person": "id bigint, name text, emailAddress text, creditCard text, city text, state text, "
              "dateTime timestamp, extra text",
    "auction": "id bigint, itemName text, description text, initialBid bigint, reserve bigint, "
               "dateTime timestamp, expires timestamp, seller bigint, category bigint, extra text",
    "bid": "auction bigint, bidder bigint, price bigint, channel text, url text, "
           "dateTime timestamp, extra text",
}
FLINK_COLUMNS = {
    "person": "id BIGINT, name STRING, emailAddress STRING, creditCard STRING, city STRING, "
              "state STRING, `dateTime` TIMESTAMP(3), extra STRING",
    "auction": "id BIGINT, itemName STRING, description STRING, initialBid BIGINT, reserve BIGINT, "
               "`dateTime` TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT, "
               "extra STRING",
    "bid": "auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, "
           "`dateTime` TIMESTAMP(3), extra STRING",
}
# Nexmark's watermark, on every table of both engines as the suite declares it (window TVFs
# need a time attribute; windows fire as the watermark passes them, not all at the end).
FLINK_WATERMARK = ", WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND"
# The same as the datagen table option (a string literal's quotes doubled in the job file).
TIDEMARK_WATERMARK = "dateTime - INTERVAL ''4 seconds''"

DAY_TM = "CAST(CAST(dateTime AS date) AS text)"
HHMM_TM = ("concat(lpad(CAST(extract(hour FROM dateTime) AS text), 2, '0'), ':', "
           "lpad(CAST(extract(minute FROM dateTime) AS text), 2, '0'))")

Q = {}


def q(name, tables, tidemark, flink, note=""):
    Q[name] = {"tables": tables, "tidemark": tidemark.strip(), "flink": flink.strip(),
               "note": note}


q("q0", ["bid"],
  "SELECT auction, bidder, price, dateTime, extra FROM bid",
  "SELECT auction, bidder, price, `dateTime`, extra FROM bid")

q("q1", ["bid"],
  "SELECT auction, bidder, 0.908 * price AS price, dateTime, extra FROM bid",
  "SELECT auction, bidder, 0.908 * price AS price, `dateTime`, extra FROM bid")

q("q2", ["bid"],
  "SELECT auction, price FROM bid WHERE mod(auction, 123) = 0",
  "SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0")

q("q3", ["auction", "person"],
  "SELECT P.name, P.city, P.state, A.id FROM auction AS A JOIN person AS P ON A.seller = P.id "
  "WHERE A.category = 10 AND (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA')",
  "SELECT P.name, P.city, P.state, A.id FROM auction AS A INNER JOIN person AS P "
  "ON A.seller = P.id WHERE A.category = 10 AND (P.state = 'OR' OR P.state = 'ID' "
  "OR P.state = 'CA')")

q("q4", ["auction", "bid"],
  "SELECT Q.category, avg(Q.final) AS avg_final FROM (SELECT max(B.price) AS final, A.category "
  "FROM auction A JOIN bid B ON A.id = B.auction "
  "WHERE B.dateTime BETWEEN A.dateTime AND A.expires GROUP BY A.id, A.category) Q "
  "GROUP BY Q.category",
  "SELECT Q.category, AVG(Q.final) FROM (SELECT MAX(B.price) AS final, A.category "
  "FROM auction A, bid B WHERE A.id = B.auction AND B.`dateTime` BETWEEN A.`dateTime` "
  "AND A.expires GROUP BY A.id, A.category) Q GROUP BY Q.category")

q("q5", ["bid"],
  "SELECT AuctionBids.auction, AuctionBids.num FROM ("
  " SELECT auction, count(*) AS num, window_start AS starttime, window_end AS endtime"
  " FROM HOP(bid, dateTime, INTERVAL '2 seconds', INTERVAL '10 seconds')"
  " GROUP BY auction, window_start, window_end) AS AuctionBids JOIN ("
  " SELECT max(CountBids.num) AS maxn, CountBids.starttime, CountBids.endtime FROM ("
  "  SELECT count(*) AS num, window_start AS starttime, window_end AS endtime"
  "  FROM HOP(bid, dateTime, INTERVAL '2 seconds', INTERVAL '10 seconds')"
  "  GROUP BY auction, window_start, window_end) AS CountBids"
  " GROUP BY CountBids.starttime, CountBids.endtime) AS MaxBids"
  " ON AuctionBids.starttime = MaxBids.starttime AND AuctionBids.endtime = MaxBids.endtime"
  " AND AuctionBids.num >= MaxBids.maxn",
  "SELECT AuctionBids.auction, AuctionBids.num FROM ("
  " SELECT auction, count(*) AS num, window_start AS starttime, window_end AS endtime"
  " FROM TABLE(HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '10' SECOND))"
  " GROUP BY auction, window_start, window_end) AS AuctionBids JOIN ("
  " SELECT max(CountBids.num) AS maxn, CountBids.starttime, CountBids.endtime FROM ("
  "  SELECT count(*) AS num, window_start AS starttime, window_end AS endtime"
  "  FROM TABLE(HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '10' SECOND))"
  "  GROUP BY auction, window_start, window_end) AS CountBids"
  " GROUP BY CountBids.starttime, CountBids.endtime) AS MaxBids"
  " ON AuctionBids.starttime = MaxBids.starttime AND AuctionBids.endtime = MaxBids.endtime"
  " AND AuctionBids.num >= MaxBids.maxn")

q("q7", ["bid"],
  "SELECT B.auction, B.price, B.bidder, B.dateTime, B.extra FROM bid B JOIN ("
  " SELECT max(price) AS maxprice, window_end AS dateTime"
  " FROM TUMBLE(bid, dateTime, INTERVAL '10 seconds') GROUP BY window_start, window_end) B1"
  " ON B.price = B1.maxprice"
  " WHERE B.dateTime BETWEEN B1.dateTime - INTERVAL '10 seconds' AND B1.dateTime",
  "SELECT B.auction, B.price, B.bidder, B.`dateTime`, B.extra FROM bid B JOIN ("
  " SELECT MAX(price) AS maxprice, window_end AS `dateTime`"
  " FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))"
  " GROUP BY window_start, window_end) B1 ON B.price = B1.maxprice"
  " WHERE B.`dateTime` BETWEEN B1.`dateTime` - INTERVAL '10' SECOND AND B1.`dateTime`")

q("q8", ["person", "auction"],
  "SELECT P.id, P.name, P.starttime FROM ("
  " SELECT id, name, window_start AS starttime, window_end AS endtime"
  " FROM TUMBLE(person, dateTime, INTERVAL '10 seconds')"
  " GROUP BY id, name, window_start, window_end) P JOIN ("
  " SELECT seller, window_start AS starttime, window_end AS endtime"
  " FROM TUMBLE(auction, dateTime, INTERVAL '10 seconds')"
  " GROUP BY seller, window_start, window_end) A"
  " ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime",
  "SELECT P.id, P.name, P.starttime FROM ("
  " SELECT id, name, window_start AS starttime, window_end AS endtime"
  " FROM TABLE(TUMBLE(TABLE person, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))"
  " GROUP BY id, name, window_start, window_end) P JOIN ("
  " SELECT seller, window_start AS starttime, window_end AS endtime"
  " FROM TABLE(TUMBLE(TABLE auction, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))"
  " GROUP BY seller, window_start, window_end) A"
  " ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime")

q("q9", ["auction", "bid"],
  "SELECT id, itemName, description, initialBid, reserve, dateTime, expires, seller, category,"
  " extra, auction, bidder, price, bid_dateTime, bid_extra FROM ("
  " SELECT A.*, B.auction, B.bidder, B.price, B.dateTime AS bid_dateTime, B.extra AS bid_extra,"
  "  row_number() OVER (PARTITION BY A.id ORDER BY B.price DESC, B.dateTime ASC) AS rownum"
  " FROM auction A JOIN bid B ON A.id = B.auction"
  " AND B.dateTime BETWEEN A.dateTime AND A.expires) t WHERE rownum <= 1",
  "SELECT id, itemName, description, initialBid, reserve, `dateTime`, expires, seller, category,"
  " extra, auction, bidder, price, bid_dateTime, bid_extra FROM ("
  " SELECT A.*, B.auction, B.bidder, B.price, B.`dateTime` AS bid_dateTime, B.extra AS bid_extra,"
  "  ROW_NUMBER() OVER (PARTITION BY A.id ORDER BY B.price DESC, B.`dateTime` ASC) AS rownum"
  " FROM auction A, bid B WHERE A.id = B.auction"
  " AND B.`dateTime` BETWEEN A.`dateTime` AND A.expires) WHERE rownum <= 1")

q("q10", ["bid"],
  f"SELECT auction, bidder, price, dateTime, extra, {DAY_TM} AS dt, {HHMM_TM} AS hm FROM bid",
  "SELECT auction, bidder, price, `dateTime`, extra, DATE_FORMAT(`dateTime`, 'yyyy-MM-dd'),"
  " DATE_FORMAT(`dateTime`, 'HH:mm') FROM bid",
  note="into a blackhole instead of Nexmark's partitioned filesystem sink; tidemark formats "
       "the day and minute with casts and lpad (no to_char yet)")

q("q11", ["bid"],
  "SELECT bidder, count(*) AS bid_count, window_start AS starttime, window_end AS endtime"
  " FROM SESSION(bid, dateTime, INTERVAL '10 seconds') GROUP BY bidder, window_start, window_end",
  "SELECT bidder, count(*) AS bid_count, window_start AS starttime, window_end AS endtime"
  " FROM TABLE(SESSION(TABLE bid PARTITION BY bidder, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))"
  " GROUP BY bidder, window_start, window_end")

q("q12", ["bid"],
  "SELECT bidder, count(*) AS bid_count, window_start, window_end"
  " FROM TUMBLE(bid, now(), INTERVAL '10 seconds') GROUP BY bidder, window_start, window_end",
  "SELECT bidder, count(*) AS bid_count, window_start, window_end FROM TABLE(TUMBLE("
  "(SELECT *, PROCTIME() AS p_time FROM bid), DESCRIPTOR(p_time), INTERVAL '10' SECOND))"
  " GROUP BY bidder, window_start, window_end",
  note="processing-time windows")

q("q13", ["bid"],
  "SELECT B.auction, B.bidder, B.price, B.dateTime, S.value FROM bid B JOIN side_input S"
  " ON mod(B.auction, 10000) = S.key",
  "",
  note="needs a bounded side-input table (Nexmark writes a file first); not run on either side")

q("q14", ["bid"],
  "SELECT auction, bidder, 0.908 * price AS price, CASE"
  " WHEN extract(hour FROM dateTime) >= 8 AND extract(hour FROM dateTime) <= 18 THEN 'dayTime'"
  " WHEN extract(hour FROM dateTime) <= 6 OR extract(hour FROM dateTime) >= 20 THEN 'nightTime'"
  " ELSE 'otherTime' END AS bidTimeType, dateTime, extra,"
  " char_length(extra) - char_length(replace(extra, 'c', '')) AS c_counts FROM bid"
  " WHERE 0.908 * price > 1000000 AND 0.908 * price < 50000000",
  "SELECT auction, bidder, 0.908 * price AS price, CASE"
  " WHEN HOUR(`dateTime`) >= 8 AND HOUR(`dateTime`) <= 18 THEN 'dayTime'"
  " WHEN HOUR(`dateTime`) <= 6 OR HOUR(`dateTime`) >= 20 THEN 'nightTime'"
  " ELSE 'otherTime' END AS bidTimeType, `dateTime`, extra,"
  " CHAR_LENGTH(extra) - CHAR_LENGTH(REPLACE(extra, 'c', '')) AS c_counts FROM bid"
  " WHERE 0.908 * price > 1000000 AND 0.908 * price < 50000000",
  note="Nexmark's count_char UDF is written as char_length - char_length(replace) on both sides")

_RANKS = [("", ""), (" FILTER (WHERE price < 10000)", "rank1"),
          (" FILTER (WHERE price >= 10000 AND price < 1000000)", "rank2"),
          (" FILTER (WHERE price >= 1000000)", "rank3")]


def _stats(prefix_cols, tidemark=False):
    """The counts of q15/q16.  tidemark has no aggregate FILTER yet: count(CASE WHEN c THEN x
    END) counts the same rows (count skips NULL), with DISTINCT as well."""
    def agg(what, f, distinct):
        if not tidemark or not f:
            return f"count({'DISTINCT ' if distinct else ''}{what}){f}"
        cond = f[len(" FILTER (WHERE "):-1]
        return f"count({'DISTINCT ' if distinct else ''}CASE WHEN {cond} THEN {what} END)"
    cols = []
    for f, r in _RANKS:
        cols.append(f"{agg('*' if not (tidemark and f) else '1', f, False)} AS {r or 'total'}_bids")
    for f, r in _RANKS:
        cols.append(f"{agg('bidder', f, True)} AS {r or 'total'}_bidders")
    for f, r in _RANKS:
        cols.append(f"{agg('auction', f, True)} AS {r or 'total'}_auctions")
    return ", ".join(prefix_cols + cols)


FILTER_NOTE = ("tidemark has no aggregate FILTER yet: count(CASE WHEN … THEN x END) on its side, "
               "which counts the same rows")


q("q15", ["bid"],
  f"SELECT {_stats([f'{DAY_TM} AS day'], True)} FROM bid GROUP BY {DAY_TM}",
  f"SELECT {_stats(['DATE_FORMAT(`dateTime`, ' + repr('yyyy-MM-dd') + ') AS `day`'])} FROM bid "
  "GROUP BY DATE_FORMAT(`dateTime`, 'yyyy-MM-dd')", note=FILTER_NOTE)

q("q16", ["bid"],
  f"SELECT {_stats(['channel', f'{DAY_TM} AS day', f'max({HHMM_TM}) AS minute'], True)} FROM bid "
  f"GROUP BY channel, {DAY_TM}",
  f"SELECT {_stats(['channel', 'DATE_FORMAT(`dateTime`, ' + repr('yyyy-MM-dd') + ') AS `day`', 'max(DATE_FORMAT(`dateTime`, ' + repr('HH:mm') + ')) AS `minute`'])} "
  "FROM bid GROUP BY channel, DATE_FORMAT(`dateTime`, 'yyyy-MM-dd')", note=FILTER_NOTE)

q("q17", ["bid"],
  f"SELECT auction, {DAY_TM} AS day, count(*) AS total_bids,"
  " count(CASE WHEN price < 10000 THEN 1 END) AS rank1_bids,"
  " count(CASE WHEN price >= 10000 AND price < 1000000 THEN 1 END) AS rank2_bids,"
  " count(CASE WHEN price >= 1000000 THEN 1 END) AS rank3_bids,"
  " min(price) AS min_price, max(price) AS max_price, avg(price) AS avg_price,"
  f" sum(price) AS sum_price FROM bid GROUP BY auction, {DAY_TM}",
  "SELECT auction, DATE_FORMAT(`dateTime`, 'yyyy-MM-dd') AS `day`, count(*) AS total_bids,"
  " count(*) FILTER (WHERE price < 10000) AS rank1_bids,"
  " count(*) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bids,"
  " count(*) FILTER (WHERE price >= 1000000) AS rank3_bids,"
  " min(price) AS min_price, max(price) AS max_price, avg(price) AS avg_price,"
  " sum(price) AS sum_price FROM bid GROUP BY auction, DATE_FORMAT(`dateTime`, 'yyyy-MM-dd')",
  note=FILTER_NOTE)

q("q18", ["bid"],
  "SELECT auction, bidder, price, channel, url, dateTime, extra FROM ("
  " SELECT *, row_number() OVER (PARTITION BY bidder, auction ORDER BY dateTime DESC) AS rank_number"
  " FROM bid) t WHERE rank_number <= 1",
  "SELECT auction, bidder, price, channel, url, `dateTime`, extra FROM ("
  " SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction ORDER BY `dateTime` DESC)"
  " AS rank_number FROM bid) WHERE rank_number <= 1")

q("q19", ["bid"],
  "SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY auction ORDER BY price DESC)"
  " AS rank_number FROM bid) t WHERE rank_number <= 10",
  "SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC)"
  " AS rank_number FROM bid) WHERE rank_number <= 10")

q("q20", ["bid", "auction"],
  "SELECT auction, bidder, price, channel, url, B.dateTime AS bid_dateTime, B.extra AS bid_extra,"
  " itemName, description, initialBid, reserve, A.dateTime AS auction_dateTime, expires, seller,"
  " category, A.extra AS auction_extra FROM bid AS B JOIN auction AS A ON B.auction = A.id"
  " WHERE A.category = 10",
  "SELECT auction, bidder, price, channel, url, B.`dateTime`, B.extra, itemName, description,"
  " initialBid, reserve, A.`dateTime`, expires, seller, category, A.extra"
  " FROM bid AS B INNER JOIN auction AS A ON B.auction = A.id WHERE A.category = 10")

q("q21", ["bid"],
  "SELECT auction, bidder, price, channel, CASE WHEN lower(channel) = 'apple' THEN '0'"
  " WHEN lower(channel) = 'google' THEN '1' WHEN lower(channel) = 'facebook' THEN '2'"
  " WHEN lower(channel) = 'baidu' THEN '3' ELSE split_part(url, 'channel_id=', 2) END"
  " AS channel_id FROM bid WHERE strpos(url, 'channel_id=') > 0"
  " OR lower(channel) IN ('apple', 'google', 'facebook', 'baidu')",
  "SELECT auction, bidder, price, channel, CASE WHEN lower(channel) = 'apple' THEN '0'"
  " WHEN lower(channel) = 'google' THEN '1' WHEN lower(channel) = 'facebook' THEN '2'"
  " WHEN lower(channel) = 'baidu' THEN '3' ELSE REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2)"
  " END AS channel_id FROM bid WHERE REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2) IS NOT NULL"
  " OR lower(channel) IN ('apple', 'google', 'facebook', 'baidu')",
  note="tidemark has no regexp_extract yet: split_part/strpos, which give the same channel ids "
       "for the generator's URLs")

q("q22", ["bid"],
  "SELECT auction, bidder, price, channel, split_part(url, '/', 4) AS dir1,"
  " split_part(url, '/', 5) AS dir2, split_part(url, '/', 6) AS dir3 FROM bid",
  "SELECT auction, bidder, price, channel, SPLIT_INDEX(url, '/', 3) AS dir1,"
  " SPLIT_INDEX(url, '/', 4) AS dir2, SPLIT_INDEX(url, '/', 5) AS dir3 FROM bid")

ORDER = ["q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8", "q9", "q10", "q11", "q12", "q13",
         "q14", "q15", "q16", "q17", "q18", "q19", "q20", "q21", "q22"]

# Flink 1.13's published Nexmark figures, events/s per core (nexmark/nexmark README).
FLINK_113_PER_CORE = {"q0": 155e3, "q1": 158e3, "q2": 175e3, "q3": 152e3, "q4": 34.3e3,
                      "q5": 22.1e3, "q7": 12.3e3, "q8": 146e3}

# The generator sanity check: per table, integer sums both engines compute.
SANITY = {
    "person": ("count(*)", ["id", "char_length(name)", "char_length(emailAddress)",
                            "char_length(extra)"]),
    "auction": ("count(*)", ["id", "seller", "category", "initialBid", "reserve",
                             "char_length(description)", "char_length(extra)"]),
    "bid": ("count(*)", ["auction", "bidder", "price", "char_length(url)", "char_length(extra)"]),
}
