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
