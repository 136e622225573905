CREATE TABLE people (
  id INTEGER PRIMARY KEY,
  full_name TEXT NOT NULL CHECK (length(trim(full_name)) > 0),
  email TEXT NOT NULL UNIQUE
) STRICT;
