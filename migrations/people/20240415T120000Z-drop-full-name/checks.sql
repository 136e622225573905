SELECT id FROM people WHERE first_name IS NULL OR first_name = '';
