CREATE TABLE o (id int PRIMARY KEY, c text, a int, t timestamptz, u timestamp) WITH (connector = 'postgres-cdc', dsn = 'host=127.0.0.1 dbname=x', table = 'public.o');
CREATE TABLE s () WITH (connector = 'file', path = '/tmp/fuzz-out');
CREATE VIEW v AS SELECT id, c, t FROM o WHERE a > 0;
INSERT INTO s SELECT window_start, window_time, count(DISTINCT c) FROM HOP(o, u, INTERVAL '10 seconds', INTERVAL '1 minute') GROUP BY window_start, window_end, window_time;
INSERT INTO s SELECT c, window_start, window_end, max(a) FROM CUMULATE(v, t, INTERVAL '1 hour', INTERVAL '1 day') AS x GROUP BY c, window_start, window_end;
