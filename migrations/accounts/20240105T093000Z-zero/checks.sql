-- Each query returns the rows that break an invariant; no rows = pass.

-- Users whose email is not lowercase or does not look like an address.
-- (email is COLLATE NOCASE, so compare with BINARY or case is ignored.)
SELECT id, email
FROM users
WHERE email COLLATE BINARY <> lower(email)
   OR email NOT LIKE '_%@_%._%'
   OR email GLOB '*[ ]*';

-- Memberships with a role that is not in the roles reference table.
SELECT m.org_id, m.user_id, m.role
FROM memberships AS m
LEFT JOIN roles AS r ON r.code = m.role
WHERE r.code IS NULL;

-- Orgs without an owner: every org must have at least one.
SELECT o.id, o.slug
FROM orgs AS o
WHERE NOT EXISTS (SELECT 1 FROM memberships AS m
                  WHERE m.org_id = o.id AND m.role = 'owner');

-- Memberships that start before the user or the org existed.
SELECT m.org_id, m.user_id, m.joined_at
FROM memberships AS m
JOIN users AS u ON u.id = m.user_id
JOIN orgs  AS o ON o.id = m.org_id
WHERE m.joined_at < u.created_at OR m.joined_at < o.created_at;

-- The roles table must have exactly one top role (rank 1), and it must be
-- allowed to manage both members and billing (otherwise an org could lock
-- itself out).
SELECT count(*) AS top_roles
FROM roles
WHERE rank = 1 AND can_manage_members = 1 AND can_manage_billing = 1
HAVING count(*) <> 1;
