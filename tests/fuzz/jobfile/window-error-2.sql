CREATE TABLE o (id int PRIMARY KEY, c text, a int, t timestamptz, u timestamp) WITH (connector = 'postgres-cdc', dsn = 'host=127.0.0.1 dbname=x', table = 'public.o');
CREATE TABLE s () WITH (connector = 'file', path = '/tmp/fuzz-out');
CREATE VIEW v AS SELECT id, c, t FROM o WHERE a > 0;
INSERT INTO s SELECT window_start, window_end FROM SESSION(o, t, INTERVAL '-1 minute') GROUP BY window_start, window_end;
