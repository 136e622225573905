SELECT c.id, c.lifetime_spend, coalesce(sum(o.amount), 0) AS expected
  FROM customer c LEFT JOIN orders o ON o.customer_id = c.id
 GROUP BY c.id, c.lifetime_spend
HAVING c.lifetime_spend <> coalesce(sum(o.amount), 0);
