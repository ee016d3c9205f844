#!/bin/bash
# make bench: libgmem and gmemd against their baselines, in one run, as ratios.
set -euo pipefail
BUILD=${BUILD:-build}
dir=$(mktemp -d /tmp/gmem-bench-XXXXXX)
# shellcheck source=scripts/gmemd-lib.sh
. "$(dirname "$0")/gmemd-lib.sh"
trap 'stop_gmemd; rm -rf "$dir"' EXIT
# a warm pool of the benchmark's size (256 MiB unless --size says otherwise), for the pool row
size=$((256 << 20))
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do [[ ${args[i]} == --size ]] && size=$((${args[i + 1]} << 20)); done
echo "{\"pools\":[{\"backend\":\"memfd\",\"size\":$size,\"count\":1,\"prefault\":true}]}" > "$dir/gmemd.json"
start_gmemd "$dir/gmemd.sock" "$dir/gmemd.log" --config "$dir/gmemd.json"
GMEM_BENCH_POOL=1 "$BUILD/bin/gmem-bench" --backend memfd --socket "$dir/gmemd.sock" "$@"
echo "== loop latency under abuse: a trivial request while one client misbehaves"
"$BUILD/bin/gmem-bench" --socket "$dir/gmemd.sock" --latency --size 64
"$BUILD/bin/gmem-bench" --backend guest_memfd "$@"
"$BUILD/bin/gmem-bench" --backend secret "$@"
