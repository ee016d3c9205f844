#!/bin/bash
# make bench: libgmem and gmemd against their baselines, in one run, as ratios.
set -euo pipefail
BUILD=${BUILD:-build}
dir=$(mktemp -d /tmp/gmem-bench-XXXXXX)
"$BUILD/bin/gmemd" --socket "$dir/gmemd.sock" --bus none 2> "$dir/gmemd.log" &
pid=$!
trap 'kill $pid 2> /dev/null; wait $pid 2> /dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do [[ -S $dir/gmemd.sock ]] && break; sleep 0.05; done
"$BUILD/bin/gmem-bench" --backend memfd --socket "$dir/gmemd.sock" "$@"
"$BUILD/bin/gmem-bench" --backend guest_memfd "$@"
"$BUILD/bin/gmem-bench" --backend secret "$@"
