#!/usr/bin/env bash
# Benchmark: one chain over many SQLite tenant files, `strata fleet migrate` against a shell
# loop of `strata migrate --no-rehearsal` (one process per tenant).
#
#   cargo build --release -p strata-cli
#   bash cli/benches/fleet.sh [STRATA_BINARY] [TENANTS] [MIGRATIONS]
#
# Defaults: target/release/strata, 1,000 tenants, 10 migrations (each a small CREATE TABLE and
# an INSERT). Each mode runs on fresh copies of the same empty tenant files; afterwards every
# tenant must hold MIGRATIONS ledger rows, or the script fails. Prints wall-clock seconds and the
# peak resident memory of the fleet process (GNU time). Needs sqlite3 for the check.
set -euo pipefail

strata=$(realpath "${1:-target/release/strata}")
tenants=${2:-1000}
migrations=${3:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A project with the chain and $tenants empty tenant files in tenants/.
project() {
    local dir=$1
    mkdir -p "$dir/tenants"
    touch "$dir/strata.toml"
    for m in $(seq 1 "$migrations"); do
        local step
        step="$dir/migrations/app/$(printf '20260101T%06dZ' "$m")-step$m"
        mkdir -p "$step"
        printf 'CREATE TABLE t%d (id INTEGER PRIMARY KEY, v TEXT NOT NULL);\nINSERT INTO t%d VALUES (1, %s);\n' \
            "$m" "$m" "'x'" > "$step/do.sql"
    done
    for i in $(seq -w 1 "$tenants"); do
        : > "$dir/tenants/t$i.db"
    done
}

# Fails unless every tenant of the project holds the whole chain.
check() {
    local dir=$1 bad=0
    for f in "$dir"/tenants/*.db; do
        n=$(sqlite3 "$f" 'SELECT count(*) FROM strata_migration')
        [ "$n" = "$migrations" ] || bad=$((bad + 1))
    done
    if [ "$bad" != 0 ]; then
        echo "$bad tenant(s) lack migrations in $dir" >&2
        exit 1
    fi
}

seconds() {
    local start=$1 end
    end=$(date +%s.%N)
    echo "$end - $start" | bc
}

echo "strata fleet benchmark: $tenants tenants, $migrations migrations, $(nproc) cores, $(date -u +%F)"

project "$work/loop"
cd "$work/loop"
start=$(date +%s.%N)
for f in tenants/*.db; do
    "$strata" migrate --no-rehearsal --db "$f" -q > /dev/null 2>&1
done
loop=$(seconds "$start")
check "$work/loop"
echo "shell loop of strata migrate --no-rehearsal: ${loop} s"

project "$work/fleet"
cd "$work/fleet"
start=$(date +%s.%N)
/usr/bin/time -f '%M' -o "$work/rss" "$strata" fleet migrate --targets 'tenants/*.db' --no-rehearsal -q > /dev/null
fleet=$(seconds "$start")
check "$work/fleet"
echo "strata fleet migrate --no-rehearsal: ${fleet} s, peak RSS $(cat "$work/rss") KiB"

project "$work/rehearsed"
cd "$work/rehearsed"
start=$(date +%s.%N)
"$strata" fleet migrate --targets 'tenants/*.db' -q > /dev/null 2>&1
rehearsed=$(seconds "$start")
check "$work/rehearsed"
echo "strata fleet migrate (rehearsal once): ${rehearsed} s"

start=$(date +%s.%N)
"$strata" fleet status --targets 'tenants/*.db' -q > /dev/null
status=$(seconds "$start")
echo "strata fleet status over the migrated fleet: ${status} s"

echo "fleet vs loop: $(echo "scale=1; $loop / $fleet" | bc) x the throughput"
