CREATE TABLE bids (id bigint, auction bigint, price numeric(10,2), ts timestamp, PRIMARY KEY (id))
  WITH (connector = 'postgres-cdc', dsn = 'host=127.0.0.1 port=1 dbname=x user=postgres', table = 'public.bids');
CREATE TABLE auctions (id bigint, seller bigint, ts timestamp, PRIMARY KEY (id))
  WITH (connector = 'postgres-cdc', dsn = 'host=127.0.0.1 port=1 dbname=x user=postgres', table = 'public.auctions');
CREATE TABLE matched () WITH (connector = 'stdout');
INSERT INTO matched SELECT b.auction, b.price, a.seller FROM bids b FULL JOIN auctions a ON b.auction = a.id AND b.ts BETWEEN a.ts - INTERVAL '1 minute' AND a.ts + INTERVAL '10 minutes' AND b.price > 2;
INSERT INTO matched SELECT b.auction, b.price, a.seller FROM bids b JOIN auctions a ON b.auction = a.id AND a.ts < b.ts + INTERVAL '5 seconds' AND a.ts >= b.ts - INTERVAL '1 hour';
