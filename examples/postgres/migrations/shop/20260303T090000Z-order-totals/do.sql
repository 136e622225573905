-- A column added and backfilled in the same transaction, then a view over it.
ALTER TABLE customer ADD COLUMN lifetime_spend numeric(14, 2) NOT NULL DEFAULT 0;

UPDATE customer c
   SET lifetime_spend = t.total
  FROM (SELECT customer_id, sum(amount) AS total FROM orders GROUP BY customer_id) t
 WHERE t.customer_id = c.id;

CREATE VIEW top_customer AS
    SELECT id, name, lifetime_spend FROM customer ORDER BY lifetime_spend DESC LIMIT 10;
