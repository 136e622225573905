-- full_name is now first_name + last_name; drop it. The split-names transform of the previous
-- migration still reads full_name: it runs before this step on any database, from its
-- committed component.
ALTER TABLE people DROP COLUMN full_name;
