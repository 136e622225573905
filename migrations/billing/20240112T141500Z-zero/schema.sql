CREATE TABLE currencies (
  code TEXT PRIMARY KEY CHECK (length(code) = 3 AND code NOT GLOB '*[^A-Z]*'),
  name TEXT NOT NULL UNIQUE,
  symbol TEXT NOT NULL CHECK (symbol <> '')
) STRICT;

CREATE TABLE invoices (
  id INTEGER PRIMARY KEY,
  org_id INTEGER NOT NULL REFERENCES orgs (id) ON DELETE RESTRICT,
  number TEXT NOT NULL UNIQUE CHECK (number GLOB 'INV-[0-9][0-9][0-9][0-9]-[0-9][0-9][0-9][0-9]'),
  currency TEXT NOT NULL REFERENCES currencies (code),
  status TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'open', 'paid', 'void')),
  issued_on TEXT NOT NULL CHECK (date(issued_on) IS issued_on),
  amount REAL NOT NULL CHECK (amount >= 0)
) STRICT;
CREATE INDEX invoices_currency_idx ON invoices (currency);
CREATE INDEX invoices_org_idx ON invoices (org_id, issued_on);

CREATE TABLE line_items (
  id INTEGER PRIMARY KEY,
  invoice_id INTEGER NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
  position INTEGER NOT NULL CHECK (position >= 1),
  description TEXT NOT NULL CHECK (length(trim(description)) > 0),
  quantity INTEGER NOT NULL CHECK (quantity > 0),
  unit_price REAL NOT NULL CHECK (unit_price >= 0),
  amount REAL NOT NULL CHECK (amount >= 0),
  UNIQUE (invoice_id, position)
) STRICT;
