-- billing / plans: price list and per-org subscriptions.
-- Plans are reference data (proj-data), one row per plan and currency, priced
-- per seat per month in integer cents (new tables use cents from the start;
-- invoices follow in amount-cents). An org has at most one subscription;
-- it goes away with the org. A plan in use cannot be deleted.
-- Depends on accounts/20240105T093000Z-zero (orgs) and billing zero (currencies).

CREATE TABLE plans (
    id               INTEGER PRIMARY KEY,
    code             TEXT    NOT NULL CHECK (code <> '' AND code NOT GLOB '*[^a-z_]*'),
    name             TEXT    NOT NULL,
    currency         TEXT    NOT NULL REFERENCES currencies(code),
    seat_price_cents INTEGER NOT NULL CHECK (seat_price_cents >= 0),
    max_seats        INTEGER CHECK (max_seats IS NULL OR max_seats > 0),  -- NULL = unlimited
    UNIQUE (code, currency)
) STRICT;

CREATE INDEX plans_currency_idx ON plans(currency);

CREATE TABLE subscriptions (
    org_id     INTEGER PRIMARY KEY REFERENCES orgs(id) ON DELETE CASCADE,
    plan_id    INTEGER NOT NULL REFERENCES plans(id) ON DELETE RESTRICT,
    seats      INTEGER NOT NULL CHECK (seats > 0),
    started_on TEXT    NOT NULL CHECK (date(started_on) IS started_on)
) STRICT;

CREATE INDEX subscriptions_plan_idx ON subscriptions(plan_id);
