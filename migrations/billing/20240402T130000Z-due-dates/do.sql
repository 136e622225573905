-- billing / due-dates: invoices get a due date so overdue ones can be chased.
-- Added with ALTER TABLE ADD COLUMN (no rebuild needed: the column is nullable,
-- since drafts have no due date yet). Existing issued invoices are backfilled
-- with the standard terms, 30 days after issue; a partial index serves the
-- "open and overdue" query of the dunning job.

ALTER TABLE invoices ADD COLUMN due_on TEXT CHECK (due_on IS date(due_on));

UPDATE invoices
SET due_on = date(issued_on, '+30 days')
WHERE status <> 'draft' AND due_on IS NULL;

CREATE INDEX invoices_open_due_idx ON invoices(due_on) WHERE status = 'open';
