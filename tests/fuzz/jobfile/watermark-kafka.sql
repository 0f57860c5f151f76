CREATE TABLE src () WITH (connector = 'kafka', bootstrap_servers = '127.0.0.1:9', topic = 'a',
  watermark = 'ts - INTERVAL ''500 milliseconds''', idle_timeout = '5s');
CREATE TABLE bad (id int, ts timestamp, t text) WITH (connector = 'postgres-cdc', dsn = 'host=x',
  table = 'public.bad', watermark = 't - INTERVAL ''x''');
CREATE TABLE out () WITH (connector = 'stdout');
INSERT INTO out SELECT * FROM src;
