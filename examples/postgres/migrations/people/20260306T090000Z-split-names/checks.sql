-- The transform filled every row.
SELECT id FROM people WHERE first_name IS NULL OR last_name IS NULL;
-- Nothing was lost: the parts put back together give the full name.
SELECT id, full_name FROM people
 WHERE trim(first_name || ' ' || last_name) <> trim(full_name)
   AND last_name <> '';
