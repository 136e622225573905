-- Each query returns the rows that break an invariant; no rows = pass.

-- Issued invoices without a due date (the backfill must have covered them).
SELECT id, number, status
FROM invoices
WHERE status <> 'draft' AND due_on IS NULL;

-- Drafts with a due date: terms start when the invoice is issued.
SELECT id, number
FROM invoices
WHERE status = 'draft' AND due_on IS NOT NULL;

-- Due dates before the issue date.
SELECT id, number, issued_on, due_on
FROM invoices
WHERE due_on < issued_on;

-- Invoices still balanced after the new column (total = sum of lines).
SELECT i.id, i.number, i.amount_cents, coalesce(sum(l.amount_cents), 0) AS lines_cents
FROM invoices AS i
LEFT JOIN line_items AS l ON l.invoice_id = i.id
GROUP BY i.id
HAVING i.amount_cents <> coalesce(sum(l.amount_cents), 0);
