-- Customers, with a trigger written in PL/pgSQL (its body's semicolons stay inside $$).
CREATE TABLE customer (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email      text NOT NULL UNIQUE,
    name       text NOT NULL,
    vip        boolean NOT NULL DEFAULT false,
    signed_up  date NOT NULL DEFAULT current_date,
    prefs      jsonb NOT NULL DEFAULT '{}'
);

CREATE FUNCTION customer_normalize() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.email := lower(trim(NEW.email));
    NEW.name := trim(NEW.name);
    RETURN NEW;
END;
$$;

CREATE TRIGGER customer_normalize BEFORE INSERT OR UPDATE ON customer
    FOR EACH ROW EXECUTE FUNCTION customer_normalize();
