CREATE TABLE public.people (
    id bigint NOT NULL GENERATED ALWAYS AS IDENTITY,
    full_name text NOT NULL,
    first_name text,
    last_name text,
    CONSTRAINT people_pkey PRIMARY KEY (id)
);
