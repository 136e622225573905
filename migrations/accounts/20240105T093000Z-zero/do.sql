-- accounts / zero: baseline of the accounts module.
-- Creates the identity side of the app: users, orgs (tenants), the roles a
-- user can hold in an org (reference data, loaded from proj-data), and the
-- memberships that tie a user to an org with one role.
-- Emails are stored lowercase by the app; the column is COLLATE NOCASE so
-- uniqueness is case-insensitive even if a bad write slips through, and
-- checks.sql reports any email that is not lowercase.

CREATE TABLE roles (
    code               TEXT    PRIMARY KEY
                               CHECK (code <> '' AND code NOT GLOB '*[^a-z_]*'),
    name               TEXT    NOT NULL UNIQUE,
    rank               INTEGER NOT NULL UNIQUE CHECK (rank > 0),  -- 1 = most powerful
    can_manage_members INTEGER NOT NULL CHECK (can_manage_members IN (0, 1)),
    can_manage_billing INTEGER NOT NULL CHECK (can_manage_billing IN (0, 1))
) STRICT;

CREATE TABLE users (
    id           INTEGER PRIMARY KEY,
    email        TEXT    NOT NULL COLLATE NOCASE UNIQUE,
    display_name TEXT    NOT NULL CHECK (length(trim(display_name)) > 0),
    created_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
                         CHECK (strftime('%Y-%m-%dT%H:%M:%SZ', created_at) IS created_at)
) STRICT;

CREATE TABLE orgs (
    id         INTEGER PRIMARY KEY,
    slug       TEXT    NOT NULL UNIQUE
                       CHECK (length(slug) BETWEEN 2 AND 40 AND slug NOT GLOB '*[^a-z0-9-]*'),
    name       TEXT    NOT NULL CHECK (length(trim(name)) > 0),
    created_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
                       CHECK (strftime('%Y-%m-%dT%H:%M:%SZ', created_at) IS created_at)
) STRICT;

CREATE TABLE memberships (
    org_id    INTEGER NOT NULL REFERENCES orgs(id)  ON DELETE CASCADE,
    user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role      TEXT    NOT NULL REFERENCES roles(code) ON UPDATE CASCADE,
    joined_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
                      CHECK (strftime('%Y-%m-%dT%H:%M:%SZ', joined_at) IS joined_at),
    PRIMARY KEY (org_id, user_id)
) STRICT;

-- The primary key serves lookups by org; these serve "orgs of a user" and the
-- foreign key on role (so deleting or renaming a role does not scan the table).
CREATE INDEX memberships_user_idx ON memberships(user_id);
CREATE INDEX memberships_role_idx ON memberships(role);
