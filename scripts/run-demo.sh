#!/bin/bash
# make run: gmemd on a private socket; the example VMM through it (3 regions — guest_memfd, or memfd
# where the kernel has none to use, as its first lines say — one at 4 GiB, populated by gmemd and
# checked by the guest on several vCPUs); then the VMM is killed
# while it runs, and gmemd still holds its memory. Arguments go to the VMM (see --help).
# Exits non-zero if the guest did not see exactly the image.
set -euo pipefail
BUILD=${BUILD:-build}
bin=$BUILD/bin

dir=$(mktemp -d /tmp/gmem-run-XXXXXX)
sock=$dir/gmemd.sock
vmm=
# shellcheck source=scripts/gmemd-lib.sh
. "$(dirname "$0")/gmemd-lib.sh"
stop() {
        [[ -n $vmm ]] && kill -KILL "$vmm" 2> /dev/null
        stop_gmemd
        rm -rf "$dir"
}
trap stop EXIT
start_gmemd "$sock" "$dir/gmemd.log"

vcpus=$(nproc)
((vcpus <= 4)) || vcpus=4
echo "== gmemctl caps"
"$bin/gmemctl" caps
echo
echo "== gmemd on $sock; the example VMM registers its regions, gmemd populates them,"
echo "   and its guest checks them on $vcpus vCPU(s), reporting on a serial port"
TMPDIR=$dir "$bin/gmem-example-vmm" --gmemd="$sock" --name vm --memory 512M --regions 3 --vcpus "$vcpus" \
        --hold 600 "$@" > "$dir/vmm.out" 2>&1 &
vmm=$!
# the VMM verifies, then holds its VM and memory until it is killed
while ! grep -q '^holding ' "$dir/vmm.out" && kill -0 "$vmm" 2> /dev/null; do
        sleep 0.1
done
cat "$dir/vmm.out"
echo
if kill -KILL "$vmm" 2> /dev/null; then
        wait "$vmm" 2> /dev/null || true
        echo "== SIGKILL to the VMM (pid $vmm) while it ran; gmemd still holds its memory"
else
        wait "$vmm" || exit # it failed before holding
        echo "== the VMM has exited; gmemd still holds its memory"
fi
vmm=
"$bin/gmemctl" --socket "$sock" list
echo
"$bin/gmemctl" --socket "$sock" info vm-1
grep -q '^verified ' "$dir/vmm.out" || exit 1

echo
echo "== a snapshot of the guest's memory, then two VMs restored from it: eagerly (the guest starts"
echo "   when all of it is in) and lazily (it starts at once; a userfaultfd page server fills its"
echo "   memory as it faults, the rest prefetched); each guest checks its memory as before"
TMPDIR=$dir "$bin/gmem-example-vmm" --memory 512M --regions 3 --vcpus "$vcpus" --snapshot "$dir/vm.snap" |
        grep -E '^(snapshot|verified|MISMATCH)' || exit 1
for how in "" "--lazy"; do
        TMPDIR=$dir "$bin/gmem-example-vmm" --memory 512M --regions 3 --vcpus "$vcpus" --restore "$dir/vm.snap" $how |
                grep -E '^(restore|lazy restore|verified|MISMATCH)' || exit 1
done
