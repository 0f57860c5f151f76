CREATE TABLE shop (id int PRIMARY KEY, customer text, amount int) WITH (
  connector = 'postgres-cdc',
  dsn = 'host=127.0.0.1 dbname=shop user=cdc password=s3cret\ tailE sslpassword=k',
  tables = 'public.orders'
);
CREATE TABLE agg () WITH (connector = 'kafka', bootstrap_servers = '127.0.0.1:9092', topic = 't', "kafka.sasl.password" = '${env:TM_FUZZ}');
INSERT INTO agg SELECT customer, count(*) AS n, sum(amount) AS total FROM shop WHERE amount > 0 GROUP BY customer;
SET checkpoint_interval = '10s';
