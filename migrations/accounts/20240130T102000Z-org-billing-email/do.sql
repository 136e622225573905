-- accounts / org-billing-email: give every org an address invoices are sent to.
-- Until now invoices went to whoever owned the org; finance teams asked for a
-- shared mailbox instead. The column is added nullable (ALTER TABLE ADD COLUMN
-- cannot add a NOT NULL column without a default) and backfilled with the
-- email of the org's earliest owner; checks.sql then requires it to be set.

ALTER TABLE orgs ADD COLUMN billing_email TEXT;

UPDATE orgs
SET billing_email = (
    SELECT u.email
    FROM memberships AS m
    JOIN users AS u ON u.id = m.user_id
    WHERE m.org_id = orgs.id AND m.role = 'owner'
    ORDER BY m.joined_at, m.user_id
    LIMIT 1
)
WHERE billing_email IS NULL;
