-- Split full_name into first_name and last_name. The SQL adds the columns; the transform fills
-- them. transform.wasm is the very file the SQLite example commits (built once from
-- guest-examples/split-names, `?` placeholders and all): a component sees the database only
-- through strata's SQL host API, so the same bytes run on SQLite and on PostgreSQL, here under a
-- role that may touch `people` and nothing else.
ALTER TABLE people ADD COLUMN first_name text, ADD COLUMN last_name text;
