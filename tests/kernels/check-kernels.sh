#!/bin/bash
# make check-kernels: boot every kernel VMM hosts run under QEMU TCG with emulated SVM (KVM works
# inside), run the suite there, print one row per kernel and the line N passed, N failed, N skipped.
#
# Kernels: Debian's 6.1, 6.12, the newest 6.18 and 7.x (tests/kernels/fetch-kernels.sh, cached in
# $GMEM_KERNEL_CACHE, default ~/.cache/gmem/kernels), every bzImage-* under $GMEM_SHARED_KERNELS
# (default ../shared/kernels beside the tree) and each image in $GMEM_TEST_KERNELS (a list, built
# in, no modules). A kernel that cannot be had is a SKIP row with the reason, counted as skipped.
#
# Environment: GMEM_KERNEL_JOBS (boots at once, default: the number of CPUs, at most 3),
# GMEM_KERNEL_TIMEOUT (seconds per boot, default 1200), GMEM_KERNELS (only the kernels whose names
# contain one of these words), GMEM_KERNEL_TESTS (only these test names, comma-separated),
# GMEM_KERNEL_CMD (a script to run inside instead of the suite, for investigating a kernel).
set -uo pipefail
cd "$(dirname "$0")/../.."
top=$(pwd)
BUILD=${BUILD:-build}
work=$BUILD/kernels
mkdir -p "$work"
cache=${GMEM_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gmem/kernels}
shared=${GMEM_SHARED_KERNELS:-$top/../shared/kernels}
ncpu=$(nproc)
jobs=${GMEM_KERNEL_JOBS:-$((ncpu > 3 ? 3 : ncpu))}
boot_timeout=${GMEM_KERNEL_TIMEOUT:-1200}
qemu=${QEMU:-qemu-system-x86_64}

# What runs inside: the Check programs, and the scripts that need only gmemd, gmemctl and KVM.
# (The D-Bus, systemd, QEMU-in-the-guest, ABI and documentation checks do not depend on the kernel
# under test; make check runs them on the host.)
tests=("$BUILD"/tests/test-* tests/check-gmemd-socket.sh tests/check-gmemctl.sh tests/check-example-vmm.sh tests/check-torture.sh)

start=$(date +%s)
command -v "$qemu" > /dev/null || { echo "check-kernels: $qemu not found (scripts/setup-deps.sh kernels)" >&2; exit 1; }

# name<TAB>image<TAB>modules-dir ("-" for none) or name<TAB>SKIP<TAB>reason
list=$work/kernels.list
tests/kernels/fetch-kernels.sh "$cache" > "$list"
found_shared=0
for img in "$shared"/bzImage-*; do
        [[ -e $img ]] || continue
        found_shared=1
        printf '%s\t%s\t-\n' "$(basename "$img" | sed 's/^bzImage-//')" "$(readlink -f "$img")" >> "$list"
done
((found_shared)) || printf 'secret-hiding\tSKIP\tno bzImage-* in %s\n' "$shared" >> "$list"
for img in ${GMEM_TEST_KERNELS:-}; do
        if [[ -r $img ]]; then
                printf '%s\t%s\t-\n' "$(basename "$img")" "$(readlink -f "$img")" >> "$list"
        else
                printf '%s\tSKIP\tcannot read %s\n' "$(basename "$img")" "$img" >> "$list"
        fi
done
if [[ -n ${GMEM_KERNELS:-} ]]; then
        pat=$(tr ' ,' '||' <<< "$GMEM_KERNELS")
        grep -E "^[^	]*($pat)" "$list" > "$list.sel" || true
        mv "$list.sel" "$list"
fi

echo "check-kernels: building the initramfs"
BUILD=$BUILD tests/kernels/mkinitramfs.sh base "$work/base.cpio.gz" "${tests[@]}" || exit 1

boot() {
        local name=$1 image=$2 moddir=$3 initrd=$work/base.cpio.gz log=$work/$1.log
        if [[ $moddir != - ]]; then
                BUILD=$BUILD tests/kernels/mkinitramfs.sh modules "$work/$name.modules.cpio.gz" "$moddir" ||
                        { echo "GMEM-ERROR could not build the modules archive from $moddir" > "$log"; return; }
                cat "$work/base.cpio.gz" "$work/$name.modules.cpio.gz" > "$work/$name.initrd"
                initrd=$work/$name.initrd
        fi
        # 32 MiB of 2 MiB huge pages: the hugetlb tests run on every kernel, not skip
        local append="console=ttyS0 panic=-1 quiet loglevel=4 mitigations=off secretmem.enable=1 hugepages=16"
        [[ -n ${GMEM_KERNEL_TESTS:-} ]] && append+=" gmem_only=$GMEM_KERNEL_TESTS"
        local t0=$SECONDS
        timeout -k 10 "$boot_timeout" "$qemu" -accel tcg,thread=multi -M q35 -cpu EPYC,+svm,+npt -smp 1 -m 4G \
                -kernel "$image" -initrd "$initrd" -nodefaults -display none -no-reboot -monitor none \
                -serial "file:$log" -append "$append" < /dev/null > "$work/$name.qemu.log" 2>&1
        local rc=$?
        echo "GMEM-BOOT-SECONDS $((SECONDS - t0)) exit $rc" >> "$log"
        rm -f "$work/$name.initrd" "$work/$name.modules.cpio.gz"
}

echo "check-kernels: $(grep -vc '	SKIP	' "$list") kernels, $jobs at a time"
running=0
while IFS=$'\t' read -r name image moddir; do
        [[ $image == SKIP ]] && continue
        rm -f "$work/$name.log"
        boot "$name" "$image" "$moddir" &
        running=$((running + 1))
        if ((running >= jobs)); then
                wait -n
                running=$((running - 1))
        fi
done < "$list"
wait

# The matrix: one row per kernel.
tp=0 tf=0 ts=0
rows=$work/matrix.tsv
: > "$rows"
while IFS=$'\t' read -r name image moddir; do
        if [[ $image == SKIP ]]; then
                echo "SKIP $name: $moddir"
                printf '%s\t-\t-\t0\t0\t1\tSKIP: %s\n' "$name" "$moddir" >> "$rows"
                ts=$((ts + 1))
                continue
        fi
        log=$work/$name.log
        release=$(sed -n 's/^GMEM-RELEASE //p' "$log" 2>/dev/null | tr -d '\r' | head -n 1)
        caps=$(sed -n 's/^GMEM-CAPS //p' "$log" 2>/dev/null | tr -d '\r' | head -n 1)
        summary=$(python3 tests/kernels/caps-summary.py <<< "$caps" 2>/dev/null || echo "caps unreadable")
        result=$(sed -n 's/^GMEM-RESULT //p' "$log" 2>/dev/null | tr -d '\r' | tail -n 1)
        secs=$(sed -n 's/^GMEM-BOOT-SECONDS \([0-9]*\).*/\1/p' "$log" 2>/dev/null | tail -n 1)
        if [[ $result =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed,\ ([0-9]+)\ skipped ]]; then
                p=${BASH_REMATCH[1]} f=${BASH_REMATCH[2]} s=${BASH_REMATCH[3]}
        else
                p=0 f=1 s=0
                echo "FAIL $name: the suite did not finish (log: $log)"
                tail -n 30 "$log" 2>/dev/null | sed 's/^/    /'
        fi
        tp=$((tp + p)) tf=$((tf + f)) ts=$((ts + s))
        # what failed or skipped inside, with the test's own words
        grep -E '^(FAIL|SKIP) |^    ' "$log" 2>/dev/null | tr -d '\r' | grep -vE '^    SKIP ' | head -n 200 |
                sed "s/^/[$name] /"
        # measurements taken inside (init.sh: populate through write() against the mapping)
        sed -n 's/^GMEM-BENCH //p' "$log" 2>/dev/null | tr -d '\r' | sed "s/^/[$name] bench: /"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%ss\n' "$name" "${release:-?}" "$summary" "$p" "$f" "$s" "${secs:-?}" >> "$rows"
done < "$list"

echo
python3 tests/kernels/matrix.py text < "$rows"
echo "check-kernels: $(( $(date +%s) - start )) s; logs in $work/"
echo "$tp passed, $tf failed, $ts skipped"
((tf == 0))
