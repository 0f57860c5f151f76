CREATE TABLE orders (id int, customer text, amount numeric(10,2), qty int, created_at timestamp, PRIMARY KEY (id))
  WITH (connector = 'postgres-cdc', dsn = 'host=127.0.0.1 port=1 dbname=x user=postgres', table = 'public.orders');
CREATE TABLE top3 () WITH (connector = 'stdout');
CREATE TABLE firsts () WITH (connector = 'stdout');
CREATE VIEW ranked AS SELECT id, customer, amount, row_number() OVER (PARTITION BY customer ORDER BY amount DESC NULLS LAST, id) AS rn FROM orders WHERE qty > 0;
INSERT INTO top3 SELECT * FROM ranked WHERE rn <= 3 AND amount > 1;
INSERT INTO firsts SELECT id, customer FROM (SELECT id, customer, row_number() OVER (PARTITION BY customer ORDER BY created_at, id) AS rn FROM orders) s WHERE rn = 1;
INSERT INTO top3 SELECT * FROM (SELECT customer, total, row_number() OVER (ORDER BY total DESC) AS rn FROM (SELECT customer, sum(amount) AS total FROM orders GROUP BY customer) a) t WHERE rn BETWEEN 1 AND 5;
