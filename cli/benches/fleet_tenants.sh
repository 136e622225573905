#!/usr/bin/env bash
# Benchmark: a database per tenant, the issue's case. TENANTS SQLite tenant files, each with
# ROWS people, get a chain of 20 migrations: the people table (already applied everywhere),
# the split-names component (a WebAssembly transform over every row, and its check), the drop
# of the old column, and 17 small SQL migrations (a table and a row each).
#
#   cargo build --release -p strata-cli
#   nice bash cli/benches/fleet_tenants.sh [STRATA] [TENANTS] [ROWS] [LOOP_TENANTS] [STATUS_TARGETS] [ROUNDS] [MEMORY_TARGETS]
#
# Defaults: target/release/strata, 1,000 tenants, 3,000 rows, loops over all tenants, status
# over 10,000 targets (STATUS_TARGETS may be a list, "1000 10000", each run three times), 1
# round, no memory series. Each round runs three modes, in an order rotated from round to
# round so that no mode always runs first or last on a shared machine:
# `strata fleet migrate` over TENANTS tenants (its rehearsal once, default workers), a shell
# loop of `strata migrate --no-rehearsal` (one process per tenant, one at a time) and the same
# loop with dbmate when it is on PATH (its migrations the same SQL with the split done in
# SQL). The loops may run over the first LOOP_TENANTS tenants only: their figures are then per
# tenant. Every mode starts from fresh copies of the same tenant file; afterwards every tenant
# must hold the whole chain and ROWS split names, or the script fails. Ratios are taken within
# one round. MEMORY_TARGETS (e.g. "100 1000 10000") runs `fleet migrate` once over each number
# of tenants for its peak resident memory. Needs sqlite3, bc and GNU time.
set -euo pipefail

strata=$(realpath "${1:-target/release/strata}")
tenants=${2:-1000}
rows=${3:-3000}
loop_tenants=${4:-$tenants}
status_targets=${5:-10000}
rounds=${6:-1}
memory_targets=${7:-}
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

seconds() { echo "$(date +%s.%N) - $1" | bc; }
# GNU time's figures of the last timed command: peak RSS (KiB) and CPU seconds (user + system).
timed() { /usr/bin/time -f '%M %U %S' -o "$work/time" "$@"; }
peak() { cut -d' ' -f1 "$work/time"; }
cpu() { echo "$(cut -d' ' -f2 "$work/time") + $(cut -d' ' -f3 "$work/time")" | bc; }
per() { echo "scale=1; 1000 * $1 / $2" | bc; }

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
    rm -rf "$dir"
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

# The fleet over $1 tenants: sets fleet_s, fleet_rss, fleet_cpu.
run_fleet() {
    local count=$1 start
    project "$work/fleet" "$count"
    cd "$work/fleet"
    start=$(date +%s.%N)
    timed "$strata" fleet migrate --targets 'tenants/*.db' -q > /dev/null
    fleet_s=$(seconds "$start")
    fleet_rss=$(peak)
    fleet_cpu=$(cpu)
    check "$work/fleet" strata_migration "$chain"
    rm -rf "$work/fleet"
}

# One `strata migrate --no-rehearsal` process per tenant, one at a time: sets loop_s, loop_cpu.
run_loop() {
    local start f
    project "$work/loop" "$loop_tenants"
    cd "$work/loop"
    : > "$work/loop_cpu"
    start=$(date +%s.%N)
    for f in tenants/*.db; do
        timed "$strata" migrate --no-rehearsal --db "$f" -q > /dev/null 2>&1
        cpu >> "$work/loop_cpu"
    done
    loop_s=$(seconds "$start")
    loop_cpu=$(paste -sd+ "$work/loop_cpu" | bc)
    check "$work/loop" strata_migration "$chain"
    rm -rf "$work/loop"
}

# dbmate, the same chain in SQL (the split done with substr/instr), one process per tenant:
# sets dbmate_s.
run_dbmate() {
    local start d f name stamp
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
            cat "$d/do.sql"
            if [ -f "$d/transform.wasm" ]; then
                echo "UPDATE people SET first_name = substr(full_name, 1, instr(full_name, ' ') - 1), last_name = substr(full_name, instr(full_name, ' ') + 1);"
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
    rm -rf "$work/dbmate"
}

have_dbmate=$(command -v dbmate > /dev/null && echo 1 || echo 0)
modes=(fleet loop)
[ "$have_dbmate" = 1 ] && modes+=(dbmate)
echo "strata fleet benchmark: $tenants tenants x $rows rows, a chain of $chain migrations (the first applied), $(nproc) cores, $(date -u '+%F %H:%M') UTC, load average $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$have_dbmate" = 1 ] || echo "dbmate is not on PATH: its loop is not run"

for round in $(seq 1 "$rounds"); do
    order=()
    for k in "${!modes[@]}"; do
        order+=("${modes[$(((k + round - 1) % ${#modes[@]}))]}")
    done
    echo "round $round (${order[*]}), load average $(cut -d' ' -f1-3 /proc/loadavg)"
    for mode in "${order[@]}"; do
        "run_$mode" "$tenants"
    done
    echo "  fleet migrate over $tenants tenants: ${fleet_s} s ($(per "$fleet_s" "$tenants") ms per tenant), CPU $(per "$fleet_cpu" "$tenants") ms per tenant, peak RSS ${fleet_rss} KiB"
    echo "  loop of strata migrate --no-rehearsal over $loop_tenants tenants: ${loop_s} s ($(per "$loop_s" "$loop_tenants") ms per tenant), CPU $(per "$loop_cpu" "$loop_tenants") ms per tenant"
    echo "  fleet vs strata loop: $(echo "scale=1; ($loop_s * $tenants) / ($fleet_s * $loop_tenants)" | bc) x the throughput; fleet CPU per tenant / loop CPU per tenant: $(echo "scale=2; ($fleet_cpu * $loop_tenants) / ($loop_cpu * $tenants)" | bc)"
    if [ "$have_dbmate" = 1 ]; then
        echo "  loop of dbmate up over $loop_tenants tenants: ${dbmate_s} s ($(per "$dbmate_s" "$loop_tenants") ms per tenant); fleet vs dbmate loop: $(echo "scale=1; ($dbmate_s * $tenants) / ($fleet_s * $loop_tenants)" | bc) x the throughput"
    fi
done

# Memory against the number of targets.
for count in $memory_targets; do
    run_fleet "$count"
    echo "fleet migrate over $count tenants: ${fleet_s} s ($(per "$fleet_s" "$count") ms per tenant), peak RSS ${fleet_rss} KiB, load average $(cut -d' ' -f1-3 /proc/loadavg)"
done

# fleet status over many targets: copies of one migrated tenant, for each number of targets
# in STATUS_TARGETS (e.g. "1000 10000", the copies added to those of the smaller numbers).
project "$work/one" 1
(cd "$work/one" && "$strata" migrate --no-rehearsal --db tenants/t1.db -q > /dev/null 2>&1)
mkdir -p "$work/status/tenants"
cp -r "$work/template/migrations" "$work/template/strata.toml" "$work/status/"
sqlite3 "$work/one/tenants/t1.db" "DELETE FROM people WHERE id > 10; VACUUM;"
made=0
for count in $status_targets; do
    for i in $(seq $((made + 1)) "$count"); do
        cp "$work/one/tenants/t1.db" "$work/status/tenants/s$i.db"
    done
    made=$count
    cd "$work/status"
    for k in 1 2 3; do
        start=$(date +%s.%N)
        timed "$strata" fleet status --targets 'tenants/*.db' --json > "$work/status.json"
        status=$(seconds "$start")
        up=$(grep -o '"up-to-date": *[0-9]*' "$work/status.json" | grep -o '[0-9]*$' || true)
        if [ "$up" != "$count" ]; then
            echo "fleet status found $up of $count targets up to date" >&2
            exit 1
        fi
        echo "fleet status over $count migrated targets (run $k): ${status} s, CPU $(cpu) s, peak RSS $(peak) KiB, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    done
done
