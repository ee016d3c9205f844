#!/bin/bash
# gmem-bench on a backend this kernel lacks (our machines' kernel has no guest_memfd; 6.1 and 6.12
# none to map): one SKIP row naming the reason, exit 0 — `make bench` must pass everywhere. Where
# the backend is there, one short row against its baseline in the same run.
set -u
BUILD=${BUILD:-build}
bench=$BUILD/bin/gmem-bench
[[ -x $bench ]] || { echo "$bench is not built"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
for b in guest_memfd secret hugetlb; do
        out=$("$bench" --backend "$b" --size 2 --trials 1 --only populate 2>&1) || fail "gmem-bench --backend $b failed: $out"
        if grep -q "SKIP" <<< "$out"; then
                grep -qE "^gmem-bench: $b: SKIP: .{10,}" <<< "$out" || fail "$b: a SKIP without its reason: $out"
                echo "$b: $(grep SKIP <<< "$out")"
        else
                grep -qE "^populate .*(speedup|slower) x[0-9.]+" <<< "$out" || fail "$b: neither a row nor a SKIP: $out"
                echo "$b: ran: $(grep '^populate' <<< "$out")"
        fi
        json=$("$bench" --backend "$b" --size 2 --trials 1 --only populate --json 2>/dev/null) || fail "$b --json failed"
        python3 -c 'import json, sys; json.loads(sys.stdin.read())' <<< "$json" || fail "$b --json is not JSON: $json"
done
echo ok
