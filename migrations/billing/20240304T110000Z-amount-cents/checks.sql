-- Each query returns the rows that break an invariant; no rows = pass.
-- Amounts are exact integers now: no tolerance.

-- Invoices whose total differs from the sum of their line items
-- (this is what catches a conversion that rounded lines and totals apart).
SELECT i.id, i.number, i.amount_cents, coalesce(sum(l.amount_cents), 0) AS lines_cents
FROM invoices AS i
LEFT JOIN line_items AS l ON l.invoice_id = i.id
GROUP BY i.id
HAVING i.amount_cents <> coalesce(sum(l.amount_cents), 0);

-- Issued invoices (anything but a draft) must have at least one line item
-- and a positive total.
SELECT i.id, i.number, i.status, i.amount_cents
FROM invoices AS i
WHERE i.status <> 'draft'
  AND (i.amount_cents = 0
       OR NOT EXISTS (SELECT 1 FROM line_items AS l WHERE l.invoice_id = i.id));

-- Line positions must run 1..n without gaps within an invoice.
SELECT invoice_id, count(*) AS lines, max(position) AS last_position
FROM line_items
GROUP BY invoice_id
HAVING max(position) <> count(*);

-- The rebuild must not leave its scratch tables behind.
SELECT name FROM sqlite_schema WHERE name IN ('new_invoices', 'new_line_items');
