-- People with one full name, as an older version of the application kept them.
CREATE TABLE people (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    full_name text NOT NULL
);
