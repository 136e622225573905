-- Every row a query returns is a violation; checks run in a savepoint that is rolled back.
SELECT id, email FROM customer WHERE email <> lower(trim(email));
