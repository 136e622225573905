-- billing / amount-cents: store money as integer cents instead of REAL.
-- REAL amounts drift (3 x 49.99 is 149.97000000000003) and made totals
-- disagree by a cent. SQLite cannot change a column's type in place, so both
-- money tables are rebuilt with SQLite's documented procedure: create the new
-- table, copy the rows converting dollars to cents (rounded, not truncated),
-- drop the old table, rename the new one, recreate the indexes.
-- strata runs this with foreign keys off and runs PRAGMA foreign_key_check
-- before commit, so line_items -> invoices is verified after the swap.

CREATE TABLE new_invoices (
    id           INTEGER PRIMARY KEY,
    org_id       INTEGER NOT NULL REFERENCES orgs(id) ON DELETE RESTRICT,
    number       TEXT    NOT NULL UNIQUE
                         CHECK (number GLOB 'INV-[0-9][0-9][0-9][0-9]-[0-9][0-9][0-9][0-9]'),
    currency     TEXT    NOT NULL REFERENCES currencies(code),
    status       TEXT    NOT NULL DEFAULT 'draft'
                         CHECK (status IN ('draft', 'open', 'paid', 'void')),
    issued_on    TEXT    NOT NULL CHECK (date(issued_on) IS issued_on),
    amount_cents INTEGER NOT NULL CHECK (amount_cents >= 0)
) STRICT;

INSERT INTO new_invoices (id, org_id, number, currency, status, issued_on, amount_cents)
SELECT id, org_id, number, currency, status, issued_on,
       CAST(round(amount * 100) AS INTEGER)
FROM invoices;

-- new_line_items references "invoices": after the swap below that name is the
-- rebuilt table.
CREATE TABLE new_line_items (
    id               INTEGER PRIMARY KEY,
    invoice_id       INTEGER NOT NULL REFERENCES invoices(id) ON DELETE CASCADE,
    position         INTEGER NOT NULL CHECK (position >= 1),
    description      TEXT    NOT NULL CHECK (length(trim(description)) > 0),
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_cents INTEGER NOT NULL CHECK (unit_price_cents >= 0),
    amount_cents     INTEGER NOT NULL CHECK (amount_cents = quantity * unit_price_cents),
    UNIQUE (invoice_id, position)
) STRICT;

INSERT INTO new_line_items (id, invoice_id, position, description, quantity,
                            unit_price_cents, amount_cents)
SELECT id, invoice_id, position, description, quantity,
       CAST(round(unit_price * 100) AS INTEGER),
       quantity * CAST(round(unit_price * 100) AS INTEGER)
FROM line_items;

DROP TABLE line_items;
DROP TABLE invoices;
ALTER TABLE new_invoices RENAME TO invoices;
ALTER TABLE new_line_items RENAME TO line_items;

CREATE INDEX invoices_org_idx ON invoices(org_id, issued_on);
CREATE INDEX invoices_currency_idx ON invoices(currency);
