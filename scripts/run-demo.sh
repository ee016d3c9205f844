#!/bin/bash
# make run: gmemd on a private socket, the example VMM through it, what the daemon then holds.
set -euo pipefail
BUILD=${BUILD:-build}
bin=$BUILD/bin

dir=$(mktemp -d /tmp/gmem-run-XXXXXX)
sock=$dir/gmemd.sock
"$bin/gmemd" --socket "$sock" --bus none 2> "$dir/gmemd.log" &
pid=$!
stop() {
        kill "$pid" 2> /dev/null && wait "$pid" || true
        rm -rf "$dir"
}
trap stop EXIT
for _ in $(seq 100); do
        [[ -S $sock ]] && break
        kill -0 "$pid" 2> /dev/null || { cat "$dir/gmemd.log" >&2; exit 1; }
        sleep 0.05
done

echo "== gmemctl caps"
"$bin/gmemctl" caps
echo
echo "== gmemd on $sock; the example VMM registers its guest_memfd and gmemd populates it"
"$bin/gmem-example-vmm" --gmemd="$sock" --name vm0 "$@"
echo
echo "== the VMM has exited; gmemd still holds its memory"
"$bin/gmemctl" --socket "$sock" list
echo
"$bin/gmemctl" --socket "$sock" info vm0
