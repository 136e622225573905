CREATE TABLE invitations (
  id INTEGER PRIMARY KEY,
  org_id INTEGER NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  email TEXT NOT NULL COLLATE NOCASE,
  role TEXT NOT NULL REFERENCES roles (code) ON UPDATE CASCADE CHECK (role <> 'owner'),
  invited_by INTEGER REFERENCES users (id) ON DELETE SET NULL,
  token TEXT NOT NULL UNIQUE CHECK (length(token) = 32 AND token NOT GLOB '*[^0-9a-f]*'),
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')) CHECK (strftime('%Y-%m-%dT%H:%M:%SZ', created_at) IS created_at),
  expires_at TEXT NOT NULL CHECK (strftime('%Y-%m-%dT%H:%M:%SZ', expires_at) IS expires_at),
  accepted_at TEXT CHECK (accepted_at IS NULL OR strftime('%Y-%m-%dT%H:%M:%SZ', accepted_at) IS accepted_at)
) STRICT;
CREATE INDEX invitations_invited_by_idx ON invitations (invited_by);
CREATE UNIQUE INDEX invitations_pending_uq ON invitations (org_id, email) WHERE accepted_at IS NULL;
CREATE INDEX invitations_role_idx ON invitations (role);

CREATE TABLE memberships (
  org_id INTEGER NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role TEXT NOT NULL REFERENCES roles (code) ON UPDATE CASCADE,
  joined_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')) CHECK (strftime('%Y-%m-%dT%H:%M:%SZ', joined_at) IS joined_at),
  PRIMARY KEY (org_id, user_id)
) STRICT;
CREATE INDEX memberships_role_idx ON memberships (role);
CREATE INDEX memberships_user_idx ON memberships (user_id);

CREATE TABLE orgs (
  id INTEGER PRIMARY KEY,
  slug TEXT NOT NULL UNIQUE CHECK (length(slug) BETWEEN 2 AND 40 AND slug NOT GLOB '*[^a-z0-9-]*'),
  name TEXT NOT NULL CHECK (length(trim(name)) > 0),
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')) CHECK (strftime('%Y-%m-%dT%H:%M:%SZ', created_at) IS created_at),
  billing_email TEXT
) STRICT;

CREATE TABLE roles (
  code TEXT PRIMARY KEY CHECK (code <> '' AND code NOT GLOB '*[^a-z_]*'),
  name TEXT NOT NULL UNIQUE,
  rank INTEGER NOT NULL UNIQUE CHECK (rank > 0),
  can_manage_members INTEGER NOT NULL CHECK (can_manage_members IN (0, 1)),
  can_manage_billing INTEGER NOT NULL CHECK (can_manage_billing IN (0, 1))
) STRICT;

CREATE TABLE users (
  id INTEGER PRIMARY KEY,
  email TEXT NOT NULL COLLATE NOCASE UNIQUE,
  display_name TEXT NOT NULL CHECK (length(trim(display_name)) > 0),
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')) CHECK (strftime('%Y-%m-%dT%H:%M:%SZ', created_at) IS created_at)
) STRICT;
