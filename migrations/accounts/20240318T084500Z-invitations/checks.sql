-- Each query returns the rows that break an invariant; no rows = pass.

-- Invitation emails that are not lowercase or do not look like an address
-- (email is COLLATE NOCASE, so compare with BINARY or case is ignored).
SELECT id, email
FROM invitations
WHERE email COLLATE BINARY <> lower(email) OR email NOT LIKE '_%@_%._%';

-- Invitations that expire before they were created, or were accepted
-- outside their validity window.
SELECT id, created_at, expires_at, accepted_at
FROM invitations
WHERE expires_at <= created_at
   OR (accepted_at IS NOT NULL
       AND (accepted_at < created_at OR accepted_at > expires_at));

-- Pending invitations for someone who is already a member of that org.
SELECT i.id, i.org_id, i.email
FROM invitations AS i
JOIN users AS u ON u.email = i.email
JOIN memberships AS m ON m.org_id = i.org_id AND m.user_id = u.id
WHERE i.accepted_at IS NULL;

-- Invitations sent by a user who may not manage that org's members.
SELECT i.id, i.org_id, i.invited_by, m.role
FROM invitations AS i
LEFT JOIN memberships AS m ON m.org_id = i.org_id AND m.user_id = i.invited_by
LEFT JOIN roles AS r ON r.code = m.role
WHERE i.invited_by IS NOT NULL
  AND coalesce(r.can_manage_members, 0) = 0;

-- Orgs with no member allowed to manage billing (the new role must not
-- replace the owner's rights; every org keeps someone who can pay).
SELECT o.id, o.slug
FROM orgs AS o
WHERE NOT EXISTS (SELECT 1 FROM memberships AS m
                  JOIN roles AS r ON r.code = m.role
                  WHERE m.org_id = o.id AND r.can_manage_billing = 1);
