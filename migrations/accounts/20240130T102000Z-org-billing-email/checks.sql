-- Each query returns the rows that break an invariant; no rows = pass.

-- Orgs without a billing email (the backfill must have reached every org).
SELECT id, slug
FROM orgs
WHERE billing_email IS NULL OR trim(billing_email) = '';

-- Billing emails that are not lowercase or do not look like an address.
SELECT id, slug, billing_email
FROM orgs
WHERE billing_email <> lower(billing_email)
   OR billing_email NOT LIKE '_%@_%._%';

-- Orgs without an owner (still true after this step's new test org).
SELECT o.id, o.slug
FROM orgs AS o
WHERE NOT EXISTS (SELECT 1 FROM memberships AS m
                  WHERE m.org_id = o.id AND m.role = 'owner');
