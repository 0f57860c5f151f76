CREATE TABLE orders (id int PRIMARY KEY, amount int)
    WITH (connector = 'postgres-cdc', dsn = 'host=127.0.0.1 port=1 dbname=x user=postgres',
          table = 'public.orders');
CREATE TABLE out () WITH (connector = 'file', path = '/tmp/inp/out');
INSERT INTO out SELECT id, amount FROM orders WHERE id = 0;
INSERT INTO out SELECT id, amount FROM orders WHERE id = 1;
INSERT INTO out SELECT id, amount FROM orders WHERE id = 2;
INSERT INTO out SELECT id, amount FROM orders WHERE id = 3;
INSERT INTO out SELECT id, amount FROM orders WHERE id = 4;
INSERT INTO out SELECT id, amount FROM orders WHERE id = 5;
INSERT INTO out SELECT id, amount FROM orders WHERE id = 6;
INSERT INTO out SELECT id, amount FROM orders WHERE id = 7;
