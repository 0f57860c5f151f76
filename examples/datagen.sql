-- Nexmark bids from the datagen source: no server, no setup.
--
--   tidemark run examples/datagen.sql          (or: scripts/demo.sh --datagen)
--
-- 46 of every 50 Nexmark events are bids; this table receives them, 2,000 a
-- second, and stops after the first 100,000 events (92,000 bids, 46 s).  Event
-- time (dateTime) advances at about the same pace (first_event_rate), and the
-- watermark trails it by 2 seconds.  The query counts bids and finds the top
-- price per channel (the four "hot" channels and all others) in 10-second
-- tumbling windows of event time; each window is printed to stdout, as
-- Debezium JSON inserts, once the watermark passes its end.
CREATE TABLE bid (auction bigint, bidder bigint, price bigint, channel text, dateTime timestamp)
WITH (connector = 'datagen', kind = 'nexmark', table = 'bid', rows_per_second = '2000',
      events = '100000', first_event_rate = '2174',
      watermark = 'dateTime - INTERVAL ''2 seconds''');

CREATE TABLE per_channel () WITH (connector = 'stdout', schemas = 'false');

INSERT INTO per_channel
SELECT window_start, window_end,
       CASE WHEN channel IN ('Google', 'Facebook', 'Baidu', 'Apple') THEN channel ELSE 'other' END
           AS channel,
       count(*) AS bids,
       max(price) AS top_price
FROM TUMBLE(bid, dateTime, INTERVAL '10 seconds')
GROUP BY window_start, window_end,
         CASE WHEN channel IN ('Google', 'Facebook', 'Baidu', 'Apple') THEN channel ELSE 'other' END;

SET admin_address = '127.0.0.1:0';
