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
  amount_cents INTEGER NOT NULL CHECK (amount_cents >= 0),
  due_on TEXT CHECK (due_on IS date(due_on))
) STRICT;
CREATE INDEX invoices_currency_idx ON invoices (currency);
CREATE INDEX invoices_open_due_idx ON invoices (due_on) WHERE status = 'open';
CREATE INDEX invoices_org_idx ON invoices (org_id, issued_on);

CREATE TABLE line_items (
  id INTEGER PRIMARY KEY,
  invoice_id INTEGER NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
  position INTEGER NOT NULL CHECK (position >= 1),
  description TEXT NOT NULL CHECK (length(trim(description)) > 0),
  quantity INTEGER NOT NULL CHECK (quantity > 0),
  unit_price_cents INTEGER NOT NULL CHECK (unit_price_cents >= 0),
  amount_cents INTEGER NOT NULL CHECK (amount_cents = quantity * unit_price_cents),
  UNIQUE (invoice_id, position)
) STRICT;

CREATE TABLE plans (
  id INTEGER PRIMARY KEY,
  code TEXT NOT NULL CHECK (code <> '' AND code NOT GLOB '*[^a-z_]*'),
  name TEXT NOT NULL,
  currency TEXT NOT NULL REFERENCES currencies (code),
  seat_price_cents INTEGER NOT NULL CHECK (seat_price_cents >= 0),
  max_seats INTEGER CHECK (max_seats IS NULL OR max_seats > 0),
  UNIQUE (code, currency)
) STRICT;
CREATE INDEX plans_currency_idx ON plans (currency);

CREATE TABLE subscriptions (
  org_id INTEGER PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
  plan_id INTEGER NOT NULL REFERENCES plans (id) ON DELETE RESTRICT,
  seats INTEGER NOT NULL CHECK (seats > 0),
  started_on TEXT NOT NULL CHECK (date(started_on) IS started_on)
) STRICT;
CREATE INDEX subscriptions_plan_idx ON subscriptions (plan_id);
