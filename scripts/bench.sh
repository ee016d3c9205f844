#!/bin/bash
# make bench: libgmem and gmemd against their baselines, in one run, as ratios.
set -euo pipefail
BUILD=${BUILD:-build}
dir=$(mktemp -d /tmp/gmem-bench-XXXXXX)
# shellcheck source=scripts/gmemd-lib.sh
. "$(dirname "$0")/gmemd-lib.sh"
trap 'stop_gmemd; rm -rf "$dir"' EXIT
start_gmemd "$dir/gmemd.sock" "$dir/gmemd.log"
"$BUILD/bin/gmem-bench" --backend memfd --socket "$dir/gmemd.sock" "$@"
echo "== loop latency under abuse: a trivial request while one client misbehaves"
"$BUILD/bin/gmem-bench" --socket "$dir/gmemd.sock" --latency --size 64
"$BUILD/bin/gmem-bench" --backend guest_memfd "$@"
"$BUILD/bin/gmem-bench" --backend secret "$@"
