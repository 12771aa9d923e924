-- The `ecommerce` database the Postgres source captures (created by POSTGRES_DB).
-- The test suite loads this file into a fresh database on the local Postgres too.
CREATE TABLE public.customers (
  id SERIAL PRIMARY KEY,
  email TEXT NOT NULL UNIQUE,
  full_name TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE public.orders (
  id BIGSERIAL PRIMARY KEY,
  customer_id INT NOT NULL REFERENCES public.customers (id),
  status TEXT NOT NULL DEFAULT 'placed',
  total NUMERIC(12, 2) NOT NULL,
  placed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE public.order_lines (
  order_id BIGINT NOT NULL REFERENCES public.orders (id),
  line_no INT NOT NULL,
  sku TEXT NOT NULL,
  quantity INT NOT NULL,
  unit_price NUMERIC(10, 2) NOT NULL,
  PRIMARY KEY (order_id, line_no)
);

-- Full before-images for updates and deletes (Debezium's advice for every captured table).
ALTER TABLE public.customers REPLICA IDENTITY FULL;
ALTER TABLE public.orders REPLICA IDENTITY FULL;
ALTER TABLE public.order_lines REPLICA IDENTITY FULL;

INSERT INTO public.customers (email, full_name) VALUES
  ('ada@example.com', 'Ada Lovelace'),
  ('grace@example.com', 'Grace Hopper'),
  ('edsger@example.com', 'Edsger Dijkstra');

INSERT INTO public.orders (customer_id, status, total) VALUES
  (1, 'placed', 42.50),
  (2, 'shipped', 19.99),
  (3, 'delivered', 7.25);

INSERT INTO public.order_lines VALUES
  (1, 1, 'BOOK-001', 1, 30.00),
  (1, 2, 'PEN-002', 5, 2.50),
  (2, 1, 'MUG-003', 1, 19.99),
  (3, 1, 'TEA-004', 1, 7.25);

-- The publication the source streams from (created here by the table owner, so the cdc role
-- needs no ownership; the connector runs with publication.autocreate.mode=disabled).
CREATE PUBLICATION tributary_ecommerce FOR TABLE public.customers, public.orders, public.order_lines;
