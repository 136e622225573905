-- Each query returns the rows that break an invariant; no rows = pass.
-- Amounts are REAL at this step, so comparisons allow half a cent of float noise.

-- Line items whose amount is not quantity x unit price.
SELECT id, invoice_id, quantity, unit_price, amount
FROM line_items
WHERE abs(amount - quantity * unit_price) > 0.005;

-- Invoices whose total differs from the sum of their line items.
SELECT i.id, i.number, i.amount, coalesce(sum(l.amount), 0) AS lines_total
FROM invoices AS i
LEFT JOIN line_items AS l ON l.invoice_id = i.id
GROUP BY i.id
HAVING abs(i.amount - coalesce(sum(l.amount), 0)) > 0.005;

-- Issued invoices (anything but a draft) must have at least one line item.
SELECT i.id, i.number, i.status
FROM invoices AS i
WHERE i.status <> 'draft'
  AND NOT EXISTS (SELECT 1 FROM line_items AS l WHERE l.invoice_id = i.id);

-- Line positions must run 1..n without gaps within an invoice.
SELECT invoice_id, count(*) AS lines, max(position) AS last_position
FROM line_items
GROUP BY invoice_id
HAVING max(position) <> count(*);

-- Invoices dated before the org they bill existed.
SELECT i.id, i.number, i.issued_on, o.created_at
FROM invoices AS i
JOIN orgs AS o ON o.id = i.org_id
WHERE i.issued_on < date(o.created_at);
