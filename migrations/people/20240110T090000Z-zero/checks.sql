-- Every email is lower case.
SELECT id, email FROM people WHERE email <> lower(email);
