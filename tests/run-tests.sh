#!/bin/bash
# Run test programs and scripts; end with one line: N passed, N failed, N skipped.
#  - Check programs (build/tests/test-*): Check's own summary gives the counts; tests that
#    skipped themselves are logged to $GMEM_TEST_SKIPLOG and counted as skipped, not passed.
#  - scripts (tests/check-*.sh): exit 0 passed, 77 skipped, anything else failed; a passing
#    script's lines that start with REPORT (what it covered) are shown.
set -u
passed=0 failed=0 skipped=0
log=$(mktemp)
hp=/proc/sys/vm/nr_hugepages
hp_saved=""
cleanup() {
        rm -f "$log" "$log.skip"
        [[ -n $hp_saved ]] && echo "$hp_saved" > "$hp"
}
trap cleanup EXIT

# As root, reserve a few 2 MiB huge pages for the run so the hugetlb paths are tested, and give
# them back afterwards. GMEM_TEST_HUGEPAGES=0 leaves the system alone.
want=${GMEM_TEST_HUGEPAGES:-32}
if [[ $(id -u) == 0 && $want -gt 0 && -w $hp ]]; then
        free=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages 2>/dev/null || echo 0)
        if ((free < want)); then
                hp_saved=$(cat "$hp")
                echo $((hp_saved + want - free)) > "$hp" 2>/dev/null || true
        fi
fi
export CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-300}

for t in "$@"; do
        name=$(basename "$t")
        : > "$log.skip"
        if [[ $t == *.sh ]]; then
                bash "$t" > "$log" 2>&1
                rc=$?
                case $rc in
                0) passed=$((passed + 1)); echo "PASS $name"; grep -E '^REPORT ' "$log" | sed 's/^/    /' ;;
                77) skipped=$((skipped + 1)); echo "SKIP $name: $(tail -n 1 "$log")" ;;
                *) failed=$((failed + 1)); echo "FAIL $name (exit $rc)"; sed 's/^/    /' "$log" ;;
                esac
                continue
        fi
        GMEM_TEST_SKIPLOG="$log.skip" CK_VERBOSITY=normal "$t" > "$log" 2>&1
        rc=$?
        summary=$(grep -E '^[0-9]+%: Checks: [0-9]+' "$log" | tail -n 1)
        if [[ -z $summary ]]; then
                failed=$((failed + 1))
                echo "FAIL $name: no Check summary (exit $rc)"
                sed 's/^/    /' "$log"
                continue
        fi
        checks=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<< "$summary")
        failures=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<< "$summary")
        errors=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<< "$summary")
        skips=$(wc -l < "$log.skip")
        bad=$((failures + errors))
        passed=$((passed + checks - bad - skips))
        failed=$((failed + bad))
        skipped=$((skipped + skips))
        echo "$( ((bad)) && echo FAIL || echo PASS) $name: $((checks - bad - skips)) passed, $bad failed, $skips skipped"
        grep -E '^SKIP ' "$log" | sed 's/^/    /'
        if ((bad)); then
                grep -vE '^(SKIP |Running suite)' "$log" | sed 's/^/    /'
        else
                # what a test found this kernel to do, and checked instead (tests print KERNEL lines)
                grep -E '^KERNEL ' "$log" | sed 's/^/    /'
        fi
done

echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
