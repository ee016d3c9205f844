#!/bin/bash
# gmemd.json and its drop-ins through `gmemd --check-config`, and the daemon refusing what it
# refuses: unknown keys named (top level, limits, a pool), sizes with suffixes, JSON errors with
# line and column, drop-ins merged in the order of their names (only the keys a file names; pools
# replaced), a bad drop-in named, non-.json files and dot files ignored, a missing explicit file,
# the installed example accepted and equal to the defaults. Exit 0 pass, 77 skip, else fail.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
gmemd=$BUILD/bin/gmemd
fail() { echo "FAIL: $*"; exit 1; }
[[ -x $gmemd ]] || { echo "gmemd is not built"; exit 77; }
command -v python3 > /dev/null || { echo "no python3"; exit 77; }
T=$(mktemp -d /tmp/gmem-config-XXXXXX) || exit 1
trap 'rm -rf "$T"' EXIT

# refused: exit 1, one line on stderr containing $2
refused() {
        local file=$1 want=$2
        if "$gmemd" --check-config "$file" > "$T/out" 2> "$T/err"; then
                fail "accepted $(cat "$file")"
        fi
        [[ $(wc -l < "$T/err") == 1 ]] || fail "not one line for $(cat "$file"): $(cat "$T/err")"
        grep -qF -- "$want" "$T/err" || fail "error for $(cat "$file") does not say '$want': $(cat "$T/err")"
}
# accepted, and the python expression $2 over the JSON it prints (as j) holds
accepted() {
        local file=$1 expr=$2
        "$gmemd" --check-config "$file" > "$T/out" 2> "$T/err" || fail "refused $file: $(cat "$T/err")"
        python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)' "$T/out" "$expr" || fail "$file: ($expr) is false for $(cat "$T/out")"
}

echo '{"limits":{"max_regionz":5}}' > "$T/a.json"
refused "$T/a.json" "unknown key 'limits.max_regionz'"
echo '{"limit":{}}' > "$T/a.json"
refused "$T/a.json" "unknown key 'limit'"
echo '{"pools":[{"size":"1G","count":1,"prefault":true,"prefetch":true}]}' > "$T/a.json"
refused "$T/a.json" "unknown key 'pools[0].prefetch'"
printf '{\n  "workers": 2,\n  "limits": {\n    "max_jobs": 4,,\n  }\n}\n' > "$T/a.json"
refused "$T/a.json" "line 4, column"
printf '{"workers": 2' > "$T/a.json"
refused "$T/a.json" "line 1, column"
echo '[]' > "$T/a.json"
refused "$T/a.json" "is not a JSON object"
echo '{"limits":{"max_jobs":0}}' > "$T/a.json"
refused "$T/a.json" "limits.max_jobs = 0 outside [1, 4096]"
echo '{"limits":{"max_bytes_total":"12Q"}}' > "$T/a.json"
refused "$T/a.json" "'12Q' is not a size"
echo '{"limits":{"max_jobs":"16"}}' > "$T/a.json"
refused "$T/a.json" "max_jobs"
refused "$T/missing.json" "missing.json"
ok=$(printf '{"limits": {"max_bytes_total": "8G", "max_message_bytes": "128K", "max_queued_bytes": "1.5M"},'
        printf ' "pools": [{"size": "256M", "count": 2, "prefault": false}]}')
echo "$ok" > "$T/a.json"
accepted "$T/a.json" 'j["limits"]["max_bytes_total"] == 8 << 30 and j["limits"]["max_message_bytes"] == 128 << 10 and j["limits"]["max_queued_bytes"] == 3 << 19 and j["pools"][0]["size"] == 256 << 20 and len(j["files"]) == 1 and j["files"][0].endswith("/a.json")'

# drop-ins: in name order, each over the last; pools replaced; others ignored
mkdir "$T/a.json.d"
echo '{"workers": 3, "limits": {"max_jobs": 9}}' > "$T/a.json.d/10-first.json"
echo '{"workers": 5}' > "$T/a.json.d/20-second.json"
echo '{"pools": [{"backend": "memfd", "size": "2M", "count": 1, "prefault": true}]}' > "$T/a.json.d/30-pools.json"
echo '{"workers": 99}' > "$T/a.json.d/05-ignored.json.disabled"
echo '{"workers": 98}' > "$T/a.json.d/.hidden.json"
accepted "$T/a.json" 'j["workers"] == 5 and j["limits"]["max_jobs"] == 9 and j["limits"]["max_bytes_total"] == 8 << 30 and [p["size"] for p in j["pools"]] == [2 << 20] and [f.rsplit("/", 1)[1] for f in j["files"]] == ["a.json", "10-first.json", "20-second.json", "30-pools.json"]'
echo '{"limits": {"max_jbos": 1}}' > "$T/a.json.d/40-typo.json"
refused "$T/a.json" "40-typo.json': unknown key 'limits.max_jbos'"
rm "$T/a.json.d/40-typo.json"
# the pools must fit what the daemon may hold, whichever file set which
echo '{"limits": {"max_bytes_total": "1M"}}' > "$T/a.json.d/50-small.json"
refused "$T/a.json" "above limits.max_bytes_total"
rm "$T/a.json.d/50-small.json"

# the daemon itself refuses the same, with the same line, and starts with the drop-ins in force
echo '{"limits":{"max_regionz":5}}' > "$T/b.json"
if "$gmemd" --socket "$T/s.sock" --bus none --config "$T/b.json" 2> "$T/d.log"; then fail "gmemd started with an unknown key"; fi
grep -q "unknown key 'limits.max_regionz'" "$T/d.log" || fail "gmemd's error: $(cat "$T/d.log")"

# the example config: accepted, and every limit is the default
"$gmemd" --check-config > "$T/defaults" 2> "$T/err" --config /nonexistent-default-is-explicit && fail "an explicit missing --config was accepted"
accepted docs/gmemd.json.example 'True'
cp "$T/out" "$T/example"
echo '{}' > "$T/empty.json"
accepted "$T/empty.json" 'True'
python3 - "$T/example" "$T/out" << 'PY' || fail "the example's limits are not the defaults"
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:])
assert a["limits"] == b["limits"], (a["limits"], b["limits"])
assert a["socket_mode"] == b["socket_mode"] and a["pools"] == b["pools"] == []
PY
echo "ok: unknown keys, sizes, positions, drop-ins, the example"
