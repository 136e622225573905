-- Split full_name into first_name and last_name. The SQL adds the columns; the transform
-- (transform.wasm, built from guest-examples/split-names) fills them, streaming the table in
-- batches. It reads full_name, which the next migration drops: the committed component keeps
-- working because it is pinned here, whatever later migrations and SDK versions do.
ALTER TABLE people ADD COLUMN first_name TEXT;
ALTER TABLE people ADD COLUMN last_name TEXT;
