#!/usr/bin/env bash
# Benchmark: a database per tenant, the issue's case. TENANTS SQLite tenant files, each with
# ROWS people, get a chain of 20 migrations: the people table (already applied everywhere),
# the split-names component (a WebAssembly transform over every row, and its check), the drop
# of the old column, and 17 small SQL migrations (a table and a row each).
#
#   cargo build --release -p strata-cli
#   nice bash cli/benches/fleet_tenants.sh [STRATA] [TENANTS] [ROWS] [LOOP_TENANTS] [STATUS_TARGETS]
#
# Defaults: target/release/strata, 1,000 tenants, 3,000 rows, loops over all tenants, status
# over 10,000 targets. The loops (one `strata migrate --no-rehearsal` process per tenant, and
# the same with dbmate when it is on PATH, its migrations the same SQL with the split done in
# SQL) may run over the first LOOP_TENANTS tenants only: their figure is then per tenant.
# Every mode starts from fresh copies of the same tenant file; afterwards every tenant must hold
# the whole chain and ROWS split names, or the script fails. Needs sqlite3, bc and GNU time.
set -euo pipefail

strata=$(realpath "${1:-target/release/strata}")
tenants=${2:-1000}
rows=${3:-3000}
loop_tenants=${4:-$tenants}
status_targets=${5:-10000}
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

seconds() { echo "$(date +%s.%N) - $1" | bc; }
peak() { cat "$work/rss"; }

# The project: the example's people migrations (with their committed components) and 17 more.
mkdir -p "$work/template/migrations"
cp -r "$repo/migrations/people" "$work/template/migrations/people"
rm -rf "$work/template/migrations/people/LATEST"
touch "$work/template/strata.toml"
for m in $(seq 1 17); do
    step="$work/template/migrations/people/$(printf '20240501T%06dZ' "$m")-extra$m"
    mkdir -p "$step"
    printf 'CREATE TABLE extra%d (id INTEGER PRIMARY KEY, v TEXT NOT NULL);\nINSERT INTO extra%d VALUES (1, %s);\n' \
        "$m" "$m" "'x'" > "$step/do.sql"
done
chain=$(find "$work/template/migrations/people" -mindepth 1 -maxdepth 1 -type d | wc -l)
zero=$(basename "$work"/template/migrations/people/*-zero | cut -d- -f1)

# One tenant at the first migration with $rows people, copied for every tenant.
(cd "$work/template" && "$strata" migrate --no-rehearsal --db tenant.db --to "$zero" -q > /dev/null)
sqlite3 "$work/template/tenant.db" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $rows)
    INSERT INTO people (id, full_name, email) SELECT i, 'Person' || i || ' Family' || i, 'p' || i || '@example.test' FROM n;"

project() {
    local dir=$1 count=$2
    mkdir -p "$dir/tenants"
    cp -r "$work/template/migrations" "$work/template/strata.toml" "$dir/"
    for i in $(seq -w 1 "$count"); do
        cp "$work/template/tenant.db" "$dir/tenants/t$i.db"
    done
}

# Fails unless every tenant of the project holds the whole chain and every name split.
check() {
    local dir=$1 ledger=$2 bad=0 f n s
    for f in "$dir"/tenants/*.db; do
        n=$(sqlite3 "$f" "SELECT count(*) FROM $ledger")
        s=$(sqlite3 "$f" "SELECT count(*) FROM people WHERE first_name LIKE 'Person%' AND last_name LIKE 'Family%'")
        { [ "$n" = "$3" ] && [ "$s" = "$rows" ]; } || bad=$((bad + 1))
    done
    if [ "$bad" != 0 ]; then
        echo "$bad tenant(s) of $dir lack migrations or split names" >&2
        exit 1
    fi
}

echo "strata fleet benchmark: $tenants tenants x $rows rows, a chain of $chain migrations (the first applied), $(nproc) cores, $(date -u '+%F %H:%M') UTC"

# The fleet, twice the tenants of the loops at most: its wall clock per tenant.
project "$work/fleet" "$tenants"
cd "$work/fleet"
start=$(date +%s.%N)
/usr/bin/time -f '%M' -o "$work/rss" "$strata" fleet migrate --targets 'tenants/*.db' -q > /dev/null
fleet=$(seconds "$start")
fleet_rss=$(peak)
check "$work/fleet" strata_migration "$chain"
echo "strata fleet migrate (rehearsal once, default workers): ${fleet} s, peak RSS ${fleet_rss} KiB"

# Memory against the number of targets: the same run over a tenth of the tenants.
project "$work/small" "$((tenants / 10))"
cd "$work/small"
/usr/bin/time -f '%M' -o "$work/rss" "$strata" fleet migrate --targets 'tenants/*.db' -q > /dev/null
echo "strata fleet migrate over $((tenants / 10)) tenants: peak RSS $(peak) KiB"

# One process per tenant, one at a time.
project "$work/loop" "$loop_tenants"
cd "$work/loop"
start=$(date +%s.%N)
for f in tenants/*.db; do
    "$strata" migrate --no-rehearsal --db "$f" -q > /dev/null 2>&1
done
loop=$(seconds "$start")
check "$work/loop" strata_migration "$chain"
echo "shell loop of strata migrate --no-rehearsal over $loop_tenants tenants: ${loop} s"

# dbmate, the same chain in SQL (the split done with substr/instr), one process per tenant.
if command -v dbmate > /dev/null; then
    project "$work/dbmate" "$loop_tenants"
    mkdir -p "$work/dbmate/db/migrations"
    cd "$work/dbmate"
    for d in migrations/people/*/; do
        name=$(basename "$d")
        stamp=${name%%Z-*}
        stamp=${stamp//T/}
        [ "$name" = "$(basename "$work"/template/migrations/people/*-zero)" ] && continue
        {
            echo "-- migrate:up"
            if [ -f "$d/transform.wasm" ]; then
                cat "$d/do.sql"
                echo "UPDATE people SET first_name = substr(full_name, 1, instr(full_name, ' ') - 1), last_name = substr(full_name, instr(full_name, ' ') + 1);"
            else
                cat "$d/do.sql"
            fi
            echo
            echo "-- migrate:down"
        } > "db/migrations/${stamp}_${name#*-}.sql"
    done
    start=$(date +%s.%N)
    for f in tenants/*.db; do
        DATABASE_URL="sqlite:$f" dbmate --no-dump-schema up > /dev/null 2>&1
    done
    dbmate_s=$(seconds "$start")
    check "$work/dbmate" schema_migrations "$((chain - 1))"
    echo "shell loop of dbmate up over $loop_tenants tenants: ${dbmate_s} s"
else
    echo "dbmate is not on PATH: its loop was not run"
fi

# fleet status over many targets: copies of one migrated tenant.
mkdir -p "$work/status/tenants"
cp -r "$work/template/migrations" "$work/template/strata.toml" "$work/status/"
cp "$work/fleet/tenants/t$(printf "%0${#tenants}d" 1).db" "$work/status/one.db"
sqlite3 "$work/status/one.db" "DELETE FROM people WHERE id > 10; VACUUM;"
for i in $(seq -w 1 "$status_targets"); do
    cp "$work/status/one.db" "$work/status/tenants/s$i.db"
done
cd "$work/status"
start=$(date +%s.%N)
/usr/bin/time -f '%M' -o "$work/rss" "$strata" fleet status --targets 'tenants/*.db' -q > /dev/null
status=$(seconds "$start")
echo "strata fleet status over $status_targets migrated targets: ${status} s, peak RSS $(peak) KiB"

echo "per tenant: fleet $(echo "scale=1; 1000 * $fleet / $tenants" | bc) ms, strata loop $(echo "scale=1; 1000 * $loop / $loop_tenants" | bc) ms"
echo "fleet vs strata loop: $(echo "scale=1; ($loop * $tenants) / ($fleet * $loop_tenants)" | bc) x the throughput"
if [ -n "${dbmate_s:-}" ]; then
    echo "per tenant: dbmate loop $(echo "scale=1; 1000 * $dbmate_s / $loop_tenants" | bc) ms; fleet vs dbmate loop: $(echo "scale=1; ($dbmate_s * $tenants) / ($fleet * $loop_tenants)" | bc) x the throughput"
fi
