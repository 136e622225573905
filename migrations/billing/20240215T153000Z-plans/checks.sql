-- Each query returns the rows that break an invariant; no rows = pass.

-- Subscriptions with more seats than their plan allows.
SELECT s.org_id, p.code, s.seats, p.max_seats
FROM subscriptions AS s
JOIN plans AS p ON p.id = s.plan_id
WHERE p.max_seats IS NOT NULL AND s.seats > p.max_seats;

-- Orgs with more members than the seats they pay for.
SELECT s.org_id, s.seats, count(m.user_id) AS members
FROM subscriptions AS s
JOIN memberships AS m ON m.org_id = s.org_id
GROUP BY s.org_id
HAVING count(m.user_id) > s.seats;

-- Subscriptions that start before their org existed.
SELECT s.org_id, s.started_on, o.created_at
FROM subscriptions AS s
JOIN orgs AS o ON o.id = s.org_id
WHERE s.started_on < date(o.created_at);

-- Every plan code must be offered in USD (the fallback currency).
SELECT DISTINCT p.code
FROM plans AS p
WHERE NOT EXISTS (SELECT 1 FROM plans AS q WHERE q.code = p.code AND q.currency = 'USD');
