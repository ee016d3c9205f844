#!/bin/bash
# make fuzz: build each target with clang's libFuzzer, ASan and UBSan, and run it for FUZZ_SECONDS
# on a copy of its corpus (new inputs land in $BUILD/corpus/<target>; copy the interesting ones
# into fuzz/corpus/<target> to keep them). Prints each target's executions and the total.
set -eu
BUILD=${BUILD:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-120}
FUZZ_TARGETS=${FUZZ_TARGETS:-request metadata dbus firecracker snapshot}
command -v clang > /dev/null || { echo "make fuzz needs clang (scripts/setup-deps.sh clang)" >&2; exit 1; }
mkdir -p "$BUILD"
pc() { pkg-config "$@" libcjson libevent libevent_pthreads libsystemd; }
sanitize="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
# gmemd's core as the Makefile links it (GMEMD_CORE_OBJS): its sources but main.c, and the size parser
srcs="$(ls libgmem/*.c gmemd/*.c | grep -v '^gmemd/main.c$') tools/parse-size.c"
total=0
for t in $FUZZ_TARGETS; do
        echo "== fuzz-$t: building"
        clang -std=gnu11 -O1 -g $sanitize -D_GNU_SOURCE -pthread -Iinclude -Ilibgmem -Itools $(pc --cflags) \
                -o "$BUILD/fuzz-$t" "fuzz/fuzz-$t.c" $srcs $(pc --libs)
        mkdir -p "$BUILD/corpus/$t"
        cp -n fuzz/corpus/$t/* "$BUILD/corpus/$t/" 2> /dev/null || true
        echo "== fuzz-$t: ${FUZZ_SECONDS}s"
        log=$BUILD/fuzz-$t.log
        ASAN_OPTIONS=detect_leaks=0 "$BUILD/fuzz-$t" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 -max_len=4096 \
                -timeout=10 -artifact_prefix="$BUILD/crash-$t-" "$BUILD/corpus/$t" > "$log" 2>&1 || {
                tail -n 40 "$log"
                echo "fuzz-$t FAILED: reproducer in $BUILD/crash-$t-*" >&2
                exit 1
        }
        n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        echo "fuzz-$t: ${n:-0} executions, $(grep -c . <(ls "$BUILD/corpus/$t")) inputs in the corpus"
        total=$((total + ${n:-0}))
done
echo "fuzz: $total executions in all"
