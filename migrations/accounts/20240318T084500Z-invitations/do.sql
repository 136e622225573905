-- accounts / invitations: invite people to an org by email, and a new
-- "billing" role (proj-data) for finance staff who manage invoices but not
-- members. An invitation carries the role the invitee will get; at most one
-- invitation per (org, email) may be pending (partial unique index). If the
-- inviting user is deleted the invitation stays, with invited_by set to NULL.

CREATE TABLE invitations (
    id          INTEGER PRIMARY KEY,
    org_id      INTEGER NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    email       TEXT    NOT NULL COLLATE NOCASE,
    role        TEXT    NOT NULL REFERENCES roles(code) ON UPDATE CASCADE
                        CHECK (role <> 'owner'),   -- ownership is transferred, not invited
    invited_by  INTEGER REFERENCES users(id) ON DELETE SET NULL,
    token       TEXT    NOT NULL UNIQUE
                        CHECK (length(token) = 32 AND token NOT GLOB '*[^0-9a-f]*'),
    created_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
                        CHECK (strftime('%Y-%m-%dT%H:%M:%SZ', created_at) IS created_at),
    expires_at  TEXT    NOT NULL
                        CHECK (strftime('%Y-%m-%dT%H:%M:%SZ', expires_at) IS expires_at),
    accepted_at TEXT    CHECK (accepted_at IS NULL
                               OR strftime('%Y-%m-%dT%H:%M:%SZ', accepted_at) IS accepted_at)
) STRICT;

CREATE UNIQUE INDEX invitations_pending_uq ON invitations(org_id, email)
    WHERE accepted_at IS NULL;
CREATE INDEX invitations_role_idx ON invitations(role);
CREATE INDEX invitations_invited_by_idx ON invitations(invited_by);
