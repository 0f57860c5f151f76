CREATE TABLE orders (id bigint PRIMARY KEY, amount int, created_at timestamptz, note text)
WITH (connector = 'postgres-cdc', dsn = 'host=127.0.0.1', table = 'public.orders',
      watermark = 'created_at - INTERVAL ''5 seconds''', idle_timeout = '30s');
CREATE TABLE out (id bigint PRIMARY KEY, amount int) WITH (connector = 'stdout');
INSERT INTO out SELECT id, amount FROM orders;
