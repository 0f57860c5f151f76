CREATE TABLE src (id int PRIMARY KEY, v text) WITH (connector = 'kafka', bootstrap_servers = 'h:1', topic = 'a');
CREATE VIEW v1 AS SELECT id, upper(v) AS u FROM src;
CREATE TABLE out () WITH (connector = 'stdout');
INSERT INTO out SELECT id, u FROM v1 WHERE id % 2 = 0;
