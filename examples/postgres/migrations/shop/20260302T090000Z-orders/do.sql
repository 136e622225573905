CREATE TABLE orders (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customer (id),
    placed_at   timestamptz NOT NULL DEFAULT now(),
    amount      numeric(12, 2) NOT NULL CHECK (amount >= 0)
);
CREATE INDEX orders_customer ON orders (customer_id);
