-- The `inventory` schema the MySQL source captures (after Debezium's tutorial database).
-- Plain SQL that MySQL 8 and MariaDB both run: the test suite loads it into MariaDB too.
CREATE DATABASE IF NOT EXISTS inventory;
USE inventory;

CREATE TABLE products (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(255) NOT NULL,
  description VARCHAR(512),
  weight DECIMAL(10, 3),
  price DECIMAL(12, 2) NOT NULL DEFAULT 0
) AUTO_INCREMENT = 101;

CREATE TABLE products_on_hand (
  product_id INT NOT NULL PRIMARY KEY,
  quantity INT NOT NULL,
  FOREIGN KEY (product_id) REFERENCES products (id)
);

CREATE TABLE customers (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  first_name VARCHAR(255) NOT NULL,
  last_name VARCHAR(255) NOT NULL,
  email VARCHAR(255) NOT NULL UNIQUE KEY,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
) AUTO_INCREMENT = 1001;

CREATE TABLE orders (
  order_number INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  order_date DATE NOT NULL,
  purchaser INT NOT NULL,
  quantity INT NOT NULL,
  product_id INT NOT NULL,
  status ENUM('placed', 'shipped', 'delivered', 'cancelled') NOT NULL DEFAULT 'placed',
  FOREIGN KEY (purchaser) REFERENCES customers (id),
  FOREIGN KEY (product_id) REFERENCES products (id)
) AUTO_INCREMENT = 10001;

INSERT INTO products (name, description, weight, price) VALUES
  ('scooter', 'Small 2-wheel scooter', 3.140, 89.00),
  ('car battery', '12V car battery', 8.100, 129.50),
  ('12-pack drill bits', '12-pack of drill bits with sizes ranging from #40 to #3', 0.800, 19.99),
  ('hammer', '12oz carpenter''s hammer', 0.750, 14.25),
  ('hammer', '14oz carpenter''s hammer', 0.875, 15.75),
  ('hammer', '16oz carpenter''s hammer', 1.000, 17.00),
  ('rocks', 'box of assorted rocks', 5.300, 9.99),
  ('jacket', 'water resistent black wind breaker', 0.100, 59.00),
  ('spare tire', '24 inch spare tire', 22.200, 74.00);

INSERT INTO products_on_hand VALUES
  (101, 3), (102, 8), (103, 18), (104, 4), (105, 5), (106, 0), (107, 44), (108, 2), (109, 5);

INSERT INTO customers (first_name, last_name, email) VALUES
  ('Sally', 'Thomas', 'sally.thomas@acme.com'),
  ('George', 'Bailey', 'gbailey@foobar.com'),
  ('Edward', 'Walker', 'ed@walker.com'),
  ('Anne', 'Kretchmar', 'annek@noanswer.org');

INSERT INTO orders (order_date, purchaser, quantity, product_id, status) VALUES
  ('2016-01-16', 1001, 1, 102, 'delivered'),
  ('2016-01-17', 1002, 2, 105, 'shipped'),
  ('2016-02-19', 1002, 2, 106, 'placed'),
  ('2016-02-21', 1003, 1, 107, 'placed');
