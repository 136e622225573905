# Sourced by .ci/run: installs PostgreSQL from Debian's packages, starts a throwaway cluster
# (initdb in a temporary folder, run as an unprivileged user since PostgreSQL refuses root,
# listening on 127.0.0.1 with password authentication and TLS) and exports its URL as
# STRATA_TEST_POSTGRES (and the authority that signed its certificate as STRATA_TEST_POSTGRES_CA)
# for the PostgreSQL tests. The cluster stops when the calling shell exits.

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

if [ -z "$(pg_bin)" ] || ! command -v pg_dump >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
    $SUDO apt-get update >/dev/null
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql postgresql-client >/dev/null
fi
PG_BIN="$(pg_bin)"

PG_DIR="$(mktemp -d /tmp/strata-pg.XXXXXX)"
PG_RUN=()
if [ "$(id -u)" -eq 0 ]; then
    id strata-pg >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin strata-pg
    chown strata-pg "$PG_DIR"
    PG_RUN=(runuser -u strata-pg --)
fi
PG_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
PG_PASSWORD="strata-ci-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
printf '%s\n' "$PG_PASSWORD" > "$PG_DIR/pwfile"
chmod 600 "$PG_DIR/pwfile"
[ "$(id -u)" -eq 0 ] && chown strata-pg "$PG_DIR/pwfile"
"${PG_RUN[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U strata --pwfile="$PG_DIR/pwfile" \
    --auth-host=scram-sha-256 --auth-local=trust -E UTF8 --locale=C.UTF-8 >/dev/null
# TLS for the sslmode=require tests: a throwaway authority and a server certificate for
# 127.0.0.1 (openssl comes with Debian's postgresql package).
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=strata CI authority" \
    -keyout "$PG_DIR/ca.key" -out "$PG_DIR/ca.crt" >/dev/null 2>&1
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$PG_DIR/server.key" -out "$PG_DIR/server.csr" >/dev/null 2>&1
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$PG_DIR/san.ext"
openssl x509 -req -in "$PG_DIR/server.csr" -CA "$PG_DIR/ca.crt" -CAkey "$PG_DIR/ca.key" \
    -CAcreateserial -days 2 -extfile "$PG_DIR/san.ext" -out "$PG_DIR/server.crt" >/dev/null 2>&1
chmod 600 "$PG_DIR/server.key"
# A client certificate from the same authority for the role strata_cert, which may log in over
# TLS with it and nothing else (the cert tests create the role).
openssl req -newkey rsa:2048 -nodes -subj "/CN=strata_cert" \
    -keyout "$PG_DIR/client.key" -out "$PG_DIR/client.csr" >/dev/null 2>&1
printf 'extendedKeyUsage=clientAuth\n' > "$PG_DIR/client.ext"   # an X.509 v3 certificate
openssl x509 -req -in "$PG_DIR/client.csr" -CA "$PG_DIR/ca.crt" -CAkey "$PG_DIR/ca.key" \
    -CAcreateserial -days 2 -extfile "$PG_DIR/client.ext" -out "$PG_DIR/client.crt" >/dev/null 2>&1
chmod 600 "$PG_DIR/client.key"
{ printf 'hostssl all strata_cert 127.0.0.1/32 cert\nhost all strata_cert 127.0.0.1/32 reject\n'
  cat "$PG_DIR/data/pg_hba.conf"; } > "$PG_DIR/hba.new"
mv "$PG_DIR/hba.new" "$PG_DIR/data/pg_hba.conf"
[ "$(id -u)" -eq 0 ] && chown strata-pg "$PG_DIR/data/pg_hba.conf"
[ "$(id -u)" -eq 0 ] && chown strata-pg "$PG_DIR/server.key" "$PG_DIR/server.crt"
"${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c fsync=off -c max_connections=200 -c ssl=on -c ssl_cert_file=$PG_DIR/server.crt -c ssl_key_file=$PG_DIR/server.key -c ssl_ca_file=$PG_DIR/ca.crt" start >/dev/null
rm -f "$PG_DIR/pwfile"
export STRATA_TEST_POSTGRES="postgres://strata:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres"
export STRATA_TEST_POSTGRES_CA="$PG_DIR/ca.crt"
export STRATA_TEST_POSTGRES_CLIENT_CERT="$PG_DIR/client.crt"
export STRATA_TEST_POSTGRES_CLIENT_KEY="$PG_DIR/client.key"
stop_postgres() { "${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$PG_DIR"; }
trap stop_postgres EXIT
echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT for the tests" >&2
