#!/bin/bash
# gmem-example-vmm end to end, with real guests on /dev/kvm:
#  1. in-process: 3 regions (one at 4 GiB or above), 2 vCPUs on 2 threads; the guest's
#     serial report has every range, each matching the host's hash, and the VMM says "verified";
#  2. through a real gmemd: the VMM registers NAME-0..2, gmemd populates them from an image file;
#     SIGKILLed while it holds, the VMM leaves every region with gmemd (populated, its holder
#     disconnected), and `gmemctl dump` of each gives back exactly its slice of the image;
#  3. the --corrupt self-test: one flipped byte makes the VMM print MISMATCH and exit 1.
# Run from anywhere with BUILD set as for the build (default: build). Exit 0 pass, 77 skip, else fail.
set -uo pipefail

cd "$(dirname "$0")/.." || exit
BUILD=${BUILD:-build}
vmm=$BUILD/bin/gmem-example-vmm
ctl=$BUILD/bin/gmemctl
gmemd=$BUILD/bin/gmemd

fail() {
        echo "FAIL: $*"
        for f in "${tmp:-}"/*.out "${tmp:-}/gmemd.log"; do
                [[ -s $f ]] && { echo "--- $f"; tail -n 25 "$f"; }
        done
        exit 1
}
skip() { echo "$*"; exit 77; }
ok() { echo "ok: $*"; }

for b in "$vmm" "$ctl" "$gmemd"; do
        [[ -x $b ]] || skip "$b is not built (make)"
done
[[ -r /dev/kvm && -w /dev/kvm ]] || skip "no usable /dev/kvm here"
command -v python3 > /dev/null || skip "no python3 here"
# guest_memfd where the kernel can map a shared one for a default VM, memfd elsewhere (6.1, 6.12)
backend=$("$ctl" --json caps | python3 -c 'import json, sys; print(json.load(sys.stdin)["guest_memory"]["backend"])') ||
        fail "gmemctl caps does not say what guest memory runs on"

tmp=$(mktemp -d /tmp/gmem-check-example-vmm.XXXXXX)
export TMPDIR=$tmp # where the VMM puts its generated images
vmm_pid=
# shellcheck source=scripts/gmemd-lib.sh
. scripts/gmemd-lib.sh
cleanup() {
        [[ -n $vmm_pid ]] && kill -KILL "$vmm_pid" 2> /dev/null && wait "$vmm_pid" 2> /dev/null
        stop_gmemd
        rm -rf "$tmp"
}
trap cleanup EXIT

MiB=$((1024 * 1024))

# check_report FILE VCPUS RANGES: the report in FILE has RANGES range lines that all match, from
# vCPUs 0..VCPUS-1, each of which said done; one range at 4 GiB or above; the VMM ran on what
# gmemctl caps says guest memory runs on here (the best guest_memfd flags, or memfd and why, in one
# line); the verdict is "verified".
check_report() {
        python3 - "$@" "$("$ctl" --json caps)" << 'EOF' || fail "the report in $1 is not right"
import json, re, sys
path, vcpus, want, caps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
text = open(path).read()
ranges = re.findall(r"^  vcpu (\d+) range (\d+) gpa=0x([0-9a-f]+) len=0x([0-9a-f]+) hash=0x([0-9a-f]{8}) +host: (\w+)$",
                    text, re.M)
def bad(why):
    sys.exit(f"{why}\n{text}")
if len(ranges) != want:
    bad(f"{len(ranges)} range lines, want {want}")
if any(r[5] != "match" for r in ranges):
    bad("a range does not match")
if sorted(int(r[1]) for r in ranges) != list(range(want)):
    bad("range ids are not 0..%d" % (want - 1))
if {int(r[0]) for r in ranges} != set(range(vcpus)):
    bad(f"ranges do not come from vCPUs 0..{vcpus - 1}")
if not any(int(r[2], 16) >= 1 << 32 for r in ranges):
    bad("no range at or above 4 GiB")
for v in range(vcpus):
    if f"\n  vcpu {v} done\n" not in text:
        bad(f"vcpu {v} did not say done")
pick = caps["guest_memory"]
if pick["backend"] == "guest_memfd":
    best, flags = caps["guest_memfd"]["best_flags"], pick["flags"]
    if flags & best != best or not re.search(rf"^guest_memfd +flags {flags:#x} = .*; {re.escape(pick['reason'])}$", text, re.M):
        bad(f"the VMM did not use the best flags, {best:#x} (with WRITE where write() works: {flags:#x}), or did not say why")
    if caps["guest_memfd"]["flags"]["no_direct_map"] and "NO_DIRECT_MAP" not in text:
        bad("the kernel has NO_DIRECT_MAP, the VMM did not use it")
elif len(re.findall(rf"^memfd +guest memory on memfd, not guest_memfd: {re.escape(pick['reason'])}$", text, re.M)) != 1:
    bad(f"the VMM did not say in one line why it runs on memfd ({pick['reason']})")
if not re.search(rf"^vm +\d+ vCPUs?, \d+ {pick['backend']} regions?;", text, re.M):
    bad(f"the VM is not on {pick['backend']} regions")
if not re.search(rf"^verified +{want} of {want} ranges match the image", text, re.M) or "MISMATCH" in text:
    bad("no 'verified' verdict")
EOF
}

# --- 1. in-process -------------------------------------------------------------------------------
"$vmm" --memory 64M --regions 3 --vcpus 2 > "$tmp/inproc.out" 2>&1 || fail "in-process VMM exited $?"
check_report "$tmp/inproc.out" 2 6
ok "in-process: 3 regions, 2 vCPUs, 6 ranges (one at or above 4 GiB) verified by the guest"

# --- 2. through gmemd, and killed while holding --------------------------------------------------
sock=$tmp/gmemd.sock
start_gmemd "$sock" "$tmp/gmemd.log" || fail "gmemd did not start"
g() { "$ctl" --socket "$sock" "$@"; }

# 64 MiB in 3 regions: 22, 22 and 20 MiB, each populated with its slice of the image
sizes=(22 22 20)
head -c $((64 * MiB)) /dev/urandom > "$tmp/image"
"$vmm" --gmemd="$sock" --name vm --memory 64M --regions 3 --vcpus 2 --image "$tmp/image" --hold 30 > "$tmp/held.out" 2>&1 &
vmm_pid=$!
for _ in $(seq 300); do
        grep -q '^holding ' "$tmp/held.out" && break
        kill -0 "$vmm_pid" 2> /dev/null || fail "the VMM exited before holding"
        sleep 0.1
done
grep -q '^holding ' "$tmp/held.out" || fail "the VMM did not verify and hold within 30 s"
check_report "$tmp/held.out" 2 6
kill -KILL "$vmm_pid"
wait "$vmm_pid" 2> /dev/null
status=$?
pid=$vmm_pid
vmm_pid=
((status == 128 + 9)) || fail "the VMM was not killed by SIGKILL mid-hold (status $status)"
ok "through gmemd: verified, then SIGKILLed while holding"

off=0
for i in 0 1 2; do
        size=$((sizes[i] * MiB))
        g --json info "vm-$i" > "$tmp/info.json" 2> "$tmp/info.err" || fail "gmemctl info vm-$i: $(cat "$tmp/info.err")"
        python3 - "$tmp/info.json" "$pid" "$size" "$backend" << 'EOF' || fail "gmemctl info vm-$i after the VMM was killed"
import json, sys
j, pid, size = json.load(open(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3])
j = j.get("region", j)
want = {"backend": sys.argv[4], "state": "populated", "size": size, "populated_bytes": size}
for k, v in want.items():
    if j.get(k) != v:
        sys.exit(f"{k} is {j.get(k)!r}, want {v!r}: {json.dumps(j)}")
h = j["holders"]
if len(h) != 1 or h[0]["pid"] != pid or h[0]["connected"] is not False:
    sys.exit(f"holders {h}, want only the killed VMM {pid}, disconnected")
EOF
        g dump "vm-$i" --to "$tmp/dump" > /dev/null 2> "$tmp/dump.err" || fail "gmemctl dump vm-$i: $(cat "$tmp/dump.err")"
        [[ $(stat -c %s "$tmp/dump") == "$size" ]] || fail "the dump of vm-$i has $(stat -c %s "$tmp/dump") bytes, not $size"
        cmp -s -i "0:$off" -n "$size" "$tmp/dump" "$tmp/image" || fail "the dump of vm-$i is not bytes $off+$size of the image"
        off=$((off + size))
done
g list | grep -Eq "^vm-0 +$backend .* $pid\(gone\)$" || fail "gmemctl list does not show vm-0 held for the gone VMM: $(g list)"
ok "after the kill, gmemd still holds vm-0..2, populated, the VMM's holder disconnected; dumps equal the image slices"
for i in 0 1 2; do
        g release "vm-$i" || fail "release vm-$i"
done

# --- 3. the self-test: a corrupted byte must fail the check ----------------------------------------
"$vmm" --memory 16M --regions 2 --vcpus 2 --corrupt > "$tmp/corrupt.out" 2>&1
status=$?
((status == 1)) || fail "with --corrupt the VMM exited $status, not 1"
grep -Eq '^  vcpu [0-9]+ range [0-9]+ .* MISMATCH: host 0x[0-9a-f]{8}$' "$tmp/corrupt.out" || fail "no range line says MISMATCH"
[[ $(grep -c 'MISMATCH: host' "$tmp/corrupt.out") == 1 ]] || fail "more than the corrupted range mismatches"
grep -q '^MISMATCH ' "$tmp/corrupt.out" || fail "no MISMATCH verdict"
grep -q '^verified' "$tmp/corrupt.out" && fail "'verified' despite the corruption"
ok "--corrupt: one range MISMATCH, exit status 1"

# --- 4. snapshot, eager and lazy restore: the guest verifies the restored memory ------------------
"$vmm" --memory 32M --regions 2 --vcpus 2 --snapshot "$tmp/vm.snap" > "$tmp/snap.out" 2>&1 || fail "--snapshot: $(tail -n 3 "$tmp/snap.out")"
[[ -s $tmp/vm.snap && -s $tmp/vm.snap.1 ]] || fail "--snapshot did not write vm.snap and vm.snap.1"
"$vmm" --memory 32M --regions 2 --vcpus 2 --restore "$tmp/vm.snap" > "$tmp/restore.out" 2>&1 ||
        fail "--restore: $(tail -n 3 "$tmp/restore.out")"
grep -q '^verified .* match the image' "$tmp/restore.out" || fail "the guest did not verify the eagerly restored memory"
grep -q '^restore  *eager' "$tmp/restore.out" || fail "no eager restore line"
if "$vmm" --memory 32M --regions 2 --restore "$tmp/vm.snap" --lazy > "$tmp/lazy.out" 2>&1; then
        grep -q '^verified .* match the image' "$tmp/lazy.out" || fail "the guest did not verify the lazily restored memory"
        grep -q '^restore  *lazy .*the guest may start after' "$tmp/lazy.out" || fail "no time to the guest's start"
        grep -q '^restore  *fully resident after' "$tmp/lazy.out" || fail "no time to fully resident"
        # the blocks the guest faulted on (none if the prefetch was faster) become the hot list
        if ! grep -q '^restore  *fully resident after .*, 0 faults served' "$tmp/lazy.out"; then
                grep -q '^restore  *hot list: [1-9][0-9]* blocks' "$tmp/lazy.out" || fail "the lazy restore left no hot list"
        fi
        # the next one prefetches those blocks first; the snapshot (its header rewritten) still serves
        "$vmm" --memory 32M --regions 2 --restore "$tmp/vm.snap" --lazy > "$tmp/lazy2.out" 2>&1 ||
                fail "--restore --lazy with a hot list: $(tail -n 3 "$tmp/lazy2.out")"
        grep -q '^verified .* match the image' "$tmp/lazy2.out" || fail "the guest did not verify memory restored hot-first"
        ok "--snapshot, --restore and --restore --lazy (twice, the second hot-first): the guest verifies every range"
elif grep -q "userfaultfd" "$tmp/lazy.out"; then
        echo "SKIP lazy restore: $(grep userfaultfd "$tmp/lazy.out" | head -n 1)"
else
        fail "--restore --lazy: $(tail -n 3 "$tmp/lazy.out")"
fi
# a damaged snapshot: refused eagerly, never served lazily (the VM is stopped, not given zeroes)
printf 'X' | dd of="$tmp/vm.snap" bs=1 seek=$((4096 + 4096)) conv=notrunc status=none
"$vmm" --memory 32M --regions 2 --restore "$tmp/vm.snap" > "$tmp/bad.out" 2>&1 && fail "a damaged snapshot was restored"
grep -q "does not match its checksum" "$tmp/bad.out" || fail "the damaged snapshot's refusal does not say why: $(tail -n 2 "$tmp/bad.out")"
grep -q '^verified' "$tmp/bad.out" && fail "'verified' from a damaged snapshot"
timeout 60 "$vmm" --memory 32M --regions 2 --restore "$tmp/vm.snap" --lazy > "$tmp/badlazy.out" 2>&1 && fail "a damaged snapshot was served"
grep -q "verified" "$tmp/badlazy.out" && fail "'verified' from a damaged snapshot served lazily"
ok "a damaged snapshot: refused by the eager restore, the lazy one stops the VM"

