#!/bin/bash
# The fuzz corpus as a regression test: every input in fuzz/corpus/<target> runs once through its
# target (a real gmemd server in-process for "request", the fd-store parser for "metadata", gmemd's
# D-Bus side on a private dbus-daemon for "dbus", the Firecracker handshake and the page server it
# feeds for "firecracker", every reader of a snapshot's header and extent table for "snapshot") and
# must neither crash nor hang. `make fuzz` grows the corpus; inputs that found bugs are kept there.
set -eu
build=${BUILD:-build}
skipped=""
for target in request metadata dbus firecracker snapshot; do
        bin=$build/tests/fuzz-$target-replay
        [[ -x $bin ]] || { echo "no $bin: build it with make"; exit 77; }
        n=$(find fuzz/corpus/$target -type f | wc -l)
        ((n > 0)) || { echo "fuzz/corpus/$target is empty"; exit 1; }
        out=$(timeout 300 "$bin" fuzz/corpus/$target 2>&1) || { echo "$target: the replay failed: $out"; exit 1; }
        if grep -q "SKIP" <<< "$out"; then # the target cannot run here (no dbus-daemon): it says why
                echo "$target: $out"
                skipped="$skipped $target"
                continue
        fi
        grep -q "replayed $n inputs" <<< "$out" || { echo "$target: $out (expected $n)"; exit 1; }
        echo "$target: $out"
done
[[ -z $skipped ]] || { echo "SKIP:$skipped could not run here (see above)"; exit 77; }
