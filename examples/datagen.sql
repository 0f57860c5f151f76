-- Nexmark bids from the datagen source: no server, no setup.
--
--   tidemark run examples/datagen.sql          (or: scripts/demo.sh --datagen)
--
-- 46 of every 50 Nexmark events are bids; this table receives them, 2,000 a
-- second, and stops after the first 100,000 events (92,000 bids, 46 s).  The
-- query keeps a live aggregate per channel (the four "hot" channels and all
-- others), printed to stdout as Debezium JSON updates.  It is a plain GROUP BY
-- for now: once window functions land it becomes a per-10-second TUMBLE window
-- on dateTime (see docs/sql.md).
CREATE TABLE bid (auction bigint, bidder bigint, price bigint, channel text, dateTime timestamp)
WITH (connector = 'datagen', kind = 'nexmark', table = 'bid', rows_per_second = '2000',
      events = '100000');

CREATE TABLE per_channel () WITH (connector = 'stdout', schemas = 'false');

INSERT INTO per_channel
SELECT CASE WHEN channel IN ('Google', 'Facebook', 'Baidu', 'Apple') THEN channel ELSE 'other' END
           AS channel,
       count(*) AS bids,
       max(price) AS top_price,
       max(dateTime) AS latest
FROM bid
GROUP BY CASE WHEN channel IN ('Google', 'Facebook', 'Baidu', 'Apple') THEN channel ELSE 'other' END;

SET admin_address = '127.0.0.1:0';
