CREATE OR REPLACE FUNCTION public.customer_normalize()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    NEW.email := lower(trim(NEW.email));
    NEW.name := trim(NEW.name);
    RETURN NEW;
END;
$function$;

CREATE TABLE public.customer (
    id bigint NOT NULL GENERATED ALWAYS AS IDENTITY,
    email text NOT NULL,
    name text NOT NULL,
    vip boolean NOT NULL DEFAULT false,
    signed_up date NOT NULL DEFAULT CURRENT_DATE,
    prefs jsonb NOT NULL DEFAULT '{}'::jsonb,
    lifetime_spend numeric(14,2) NOT NULL DEFAULT 0,
    CONSTRAINT customer_email_key UNIQUE (email),
    CONSTRAINT customer_pkey PRIMARY KEY (id)
);

CREATE TABLE public.orders (
    id bigint NOT NULL GENERATED ALWAYS AS IDENTITY,
    customer_id bigint NOT NULL,
    placed_at timestamp with time zone NOT NULL DEFAULT now(),
    amount numeric(12,2) NOT NULL,
    CONSTRAINT orders_amount_check CHECK ((amount >= (0)::numeric)),
    CONSTRAINT orders_pkey PRIMARY KEY (id)
);

ALTER TABLE public.orders ADD CONSTRAINT orders_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES public.customer(id);

CREATE VIEW public.top_customer AS
 SELECT customer.id,
    customer.name,
    customer.lifetime_spend
   FROM public.customer
  ORDER BY customer.lifetime_spend DESC
 LIMIT 10;

CREATE INDEX orders_customer ON public.orders USING btree (customer_id);

CREATE TRIGGER customer_normalize BEFORE INSERT OR UPDATE ON public.customer FOR EACH ROW EXECUTE FUNCTION public.customer_normalize();
