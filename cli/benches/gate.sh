#!/usr/bin/env bash
# The regression gate of issue 22 in one table: runs the four speed benches (each measures its
# baseline in the same run, rounds rotated, results verified) and prints every ratio they gate
# beside its target. A ratio over its target is MISSED; the script exits 1 if any is.
#
#   bash cli/benches/gate.sh [N_MIGRATIONS] [ROWS]
#
# Defaults: 1,000 migrations, 1,000,000 rows. The PostgreSQL benches need STRATA_TEST_POSTGRES
# (a superuser URL); without it their rows say "not run". Every bench's full output is kept in
# a temporary folder whose name is printed.
set -uo pipefail

n=${1:-1000}
rows=${2:-1000000}
out=$(mktemp -d)
echo "full outputs in $out"

run() {
    local name=$1
    shift
    echo "running $name ..." >&2
    if ! "$@" > "$out/$name.txt" 2>&1; then
        echo "  $name failed: see $out/$name.txt" >&2
        echo "FAILED" >> "$out/$name.txt"
    fi
}

run migrations cargo bench -q -p strata-cli --bench migrations -- "$n" --rounds 3
run split_names cargo bench -q -p strata-engine --bench split_names -- "$rows"
if [ -n "${STRATA_TEST_POSTGRES:-}" ]; then
    run postgres cargo bench -q -p strata-cli --bench postgres -- "$n" --rounds 3
    run postgres_component cargo bench -q -p strata-cli --bench postgres_component -- "$rows"
else
    for b in postgres postgres_component; do
        echo "not run: STRATA_TEST_POSTGRES is not set" > "$out/$b.txt"
    done
fi

echo
echo "regression gate (ratio / target), $(date -u +%Y-%m-%dT%H:%MZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
missed=0
for b in migrations split_names postgres postgres_component; do
    echo "[$b]"
    if grep -q '^regression gate' "$out/$b.txt"; then
        # Each gate's heading and its indented ratio lines.
        awk '/^regression gate/ { on = 1; print "  " $0; next }
             on && /^  / { print "  " $0; next }
             { on = 0 }' "$out/$b.txt"
        grep -q 'MISSED' "$out/$b.txt" && missed=1
    else
        echo "  no gate printed: $(tail -n 1 "$out/$b.txt")"
        missed=1
    fi
done
exit $missed
