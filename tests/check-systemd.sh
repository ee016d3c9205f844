#!/bin/bash
# gmemd under the real systemd: systemd 252 boots as PID 1 of a PID+mount namespace with the
# project's units (ExecStart pointed at this build with --bus none; RestartSec and WatchdogSec
# shortened), and:
#  - the first client socket-activates gmemd (socket 0660 root:gmem, group from our sysusers.d),
#    which reaches active/running (READY=1), sends STATUS= and WATCHDOG=1;
#  - regions are made and populated from random files: memfd (with a hole punched and grants to
#    uid 1234 and gid 2345), secret, hugetlb when there are free huge pages, an empty one, and a
#    guest_memfd that a real VMM registers and has gmemd populate; one fd each in the fd store;
#  - gmemd is SIGKILLed, then SIGABRTed, then `systemctl restart`ed: each time every region must
#    come back with the same backend, size, flags, owner, grants, policy and state and the same
#    bytes (sha256 of `gmemctl dump`);
#  - a real guest restored lazily through gmemd's page server (faults only) survives a SIGKILL of
#    gmemd in the middle: its faults wait, the next gmemd resumes serving from the fd store (uffd,
#    snapshot, the VMM's pidfd, the server's state) and the guest verifies every byte; with the
#    snapshot damaged while gmemd was down, a watcher gets a job-finished error and the guest
#    stays in its fault (never zeroes); the servers leave the store when the VMM exits; the same
#    for a Firecracker VM served from its memory file (a Python stand-in speaks its handshake);
#  - release takes the fd out of the store and deletes the metadata; fds in the store that gmemd
#    does not recognise (put there by an ExecStartPre= of the test) are dropped; `systemctl stop`
#    empties the store and the next activation starts with nothing, stale metadata removed.
#
# Safety (DESIGN.md §6): systemd sees only the test's own unit directory (SYSTEMD_UNIT_PATH, no
# trailing colon), no generators, private tmpfs on /run, /tmp and /dev/shm, a read-only root file
# system, /proc/sys and /sys, its own UTS/IPC/net/cgroup namespaces and cgroup subtree, and a pty
# as /dev/console (see tests/systemd/ns-init.sh). It is killed by its own pid, and afterwards the
# test checks that marker files in the host's /tmp and /run are still there, the hostname is the
# same, no mount and no cgroup was left behind. GMEM_TEST_SYSTEMD_KEEP=1 keeps the test directory
# (logs, dumps, units); GMEM_TEST_SYSTEMD_HARNESS_ONLY=1 only boots and stops systemd.
#
# Exit 0 pass, 77 skip (last line says why), anything else fail.
set -u
export LC_ALL=C
src=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$src/$BUILD
gmemd=$BUILD/bin/gmemd
gmemctl=$BUILD/bin/gmemctl
vmm=$BUILD/bin/gmem-example-vmm
sock=/run/gmemd/gmemd.sock
t0=$SECONDS

say() { printf '[%3ds] %s\n' $((SECONDS - t0)) "$*"; }
skip() {
        echo "$*"
        exit 77
}

# --- probes: can this machine run the test at all? -------------------------------------------
[[ $(id -u) == 0 ]] || skip "not root: running systemd as PID 1 in a namespace needs root"
for b in "$gmemd" "$gmemctl"; do
        [[ -x $b ]] || skip "$b is not built"
done
for c in jq sha256sum; do
        command -v "$c" > /dev/null || skip "no $c"
done
# shellcheck source=tests/systemd/lib.sh
. "$src/tests/systemd/lib.sh"
sd_probe
sd_prepare gmem-systemd
rc_override=0
trap 'cleanup; [[ $rc_override == 1 ]] && exit 1' EXIT
trap 'exit 130' INT TERM
gmem_gid=$(awk -F: '$1 == "gmem" { print $3 }' "$T/etc-group")

# random sources for the regions; the namespace sees this directory as /run/gmem-test
head -c 16M /dev/urandom > "$T/src-memfd"
head -c 8M /dev/urandom > "$T/src-secret"
head -c 4M /dev/urandom > "$T/src-hugetlb"
chmod 0644 "$T"/src-*

sd_boot

if [[ ${GMEM_TEST_SYSTEMD_HARNESS_ONLY:-0} == 1 ]]; then
        say "harness only (GMEM_TEST_SYSTEMD_HARNESS_ONLY=1): stopping systemd"
        stop_systemd
        host_untouched || fail "the host was touched"
        echo "ok (harness only)"
        exit 0
fi

# --- socket activation -------------------------------------------------------------------------
for _ in $(seq 100); do
        [[ $(sctl show -p ActiveState --value gmemd.socket) == active ]] && break
        sleep 0.05
done
[[ $(sctl show -p ActiveState --value gmemd.socket) == active ]] || fail "gmemd.socket is not listening"
st=$(ns stat -c '%a %U %G %F' "$sock")
[[ $st == "660 root gmem socket" ]] || fail "socket is '$st', want '660 root gmem socket'"
[[ $(sctl show -p ActiveState --value gmemd.service) == inactive ]] || fail "gmemd started before anyone connected"
say "gmemd.socket listens on $sock (0660 root:gmem); gmemd.service not started yet"

gc() { ns "$gmemctl" --socket "$sock" "$@"; }
gc list > /dev/null || fail "first connection (socket activation) failed"
for _ in $(seq 100); do
        [[ $(sctl show -p ActiveState --value gmemd.service) == active ]] && break
        sleep 0.05
done
show() { sctl show -p "$1" --value gmemd.service; }
[[ $(show ActiveState)/$(show SubState) == active/running ]] ||
        fail "gmemd.service did not reach active/running (READY=1): $(show ActiveState)/$(show SubState)"
pid1=$(show MainPID)
status1=$(show StatusText)
[[ -n $status1 ]] || fail "gmemd sent no STATUS="
[[ $(show WatchdogUSec) != 0 && -n $(show WatchdogUSec) ]] || fail "no watchdog configured"
say "socket-activated: gmemd pid $pid1 (namespace pid) is ready, status: $status1"
grep -q 'without systemd\|not started by systemd\|do not survive' "$T/gmemd.log" &&
        fail "gmemd under systemd claims regions do not survive a restart"
wd1=$(show WatchdogTimestampMonotonic)
sleep 1.5
wd2=$(show WatchdogTimestampMonotonic)
((wd2 > wd1)) || fail "no WATCHDOG=1 from gmemd in 1.5 s with WatchdogSec=2s ($wd1 -> $wd2)"
[[ $(show MainPID) == "$pid1" ]] || fail "gmemd was restarted while idle (watchdog?)"
say "watchdog: gmemd pings (WatchdogSec=2s in the test)"

# --- regions -------------------------------------------------------------------------------------
caps=$(gc --json caps) || fail "caps"
# DevicePolicy=closed with DeviceAllow=/dev/kvm: gmemd still reaches KVM
if [[ -c /dev/kvm ]]; then
        jq -e '.kvm.usable == true' <<< "$caps" > /dev/null || fail "gmemd cannot use /dev/kvm under its unit: $(jq -c .kvm <<< "$caps")"
fi
names=(r-memfd)
gc create r-memfd --size 16M --backend memfd > /dev/null || fail "create r-memfd"
gc populate r-memfd --from /run/gmem-test/src-memfd > /dev/null || fail "populate r-memfd"
gc punch r-memfd --offset 4M --length 1M > /dev/null || fail "punch r-memfd"
gc grant r-memfd --uid 1234 > /dev/null || fail "grant uid"
gc grant r-memfd --gid 2345 > /dev/null || fail "grant gid"
if gc create r-secret --size 8M --backend secret > "$T/secret.out" 2>&1; then
        names+=(r-secret)
        gc populate r-secret --from /run/gmem-test/src-secret > /dev/null || fail "populate r-secret"
        gc grant r-secret --gid "$gmem_gid" > /dev/null || fail "grant r-secret"
else
        say "no secret region here: $(cat "$T/secret.out")"
fi
free_huge=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages 2> /dev/null || echo 0)
if ((free_huge >= 4)) && gc create r-hugetlb --size 4M --backend hugetlb > "$T/huge.out" 2>&1; then
        names+=(r-hugetlb)
        gc populate r-hugetlb --from /run/gmem-test/src-hugetlb > /dev/null || fail "populate r-hugetlb"
else
        say "no hugetlb region here (free 2M pages: $free_huge) $(cat "$T/huge.out" 2> /dev/null)"
fi
gc create r-empty --size 2M > /dev/null || fail "create r-empty"
names+=(r-empty)
# a user who is not root but in group gmem reaches the system socket by default (no --socket,
# no $GMEMD_SOCKET, $XDG_RUNTIME_DIR set: a user's own gmemd only with --user); one not in gmem
# does not get past the socket's mode
ns setpriv --reuid 1234 --regid 1234 --groups "$gmem_gid" env -u GMEMD_SOCKET XDG_RUNTIME_DIR=/run/user/1234 \
        "$gmemctl" list > "$T/user.out" 2>&1 || fail "uid 1234 in group gmem: gmemctl list: $(cat "$T/user.out")"
grep -q r-memfd "$T/user.out" || fail "uid 1234 (granted r-memfd) does not see it: $(cat "$T/user.out")"
if ns setpriv --reuid 4321 --regid 4321 --clear-groups env -u GMEMD_SOCKET "$gmemctl" list > "$T/other.out" 2>&1 ||
        ! grep -q "connect to gmemd at '/run/gmemd/gmemd.sock'.*Permission denied" "$T/other.out"; then
        fail "uid 4321 outside group gmem: $(cat "$T/other.out")"
fi
say "group gmem reaches the system socket by default; others are refused by its mode"
# a guest_memfd made by a real VMM on its own VM, registered and populated through gmemd; the
# VMM exits and gmemd (then systemd's fd store) is all that holds the guest's memory
if [[ -x $vmm ]] && jq -e '.guest_memfd.supported == true' <<< "$caps" > /dev/null 2>&1; then
        if ns env TMPDIR=/tmp "$vmm" --memory 16M --gmemd="$sock" --name vm0 --regions 1 > "$T/vmm.out" 2>&1; then
                names+=(vm0-0)
        else
                fail "example VMM with --gmemd: $(tail -n 5 "$T/vmm.out")"
        fi
fi

# what a region is, minus what legitimately changes with the process (holders, jobs, residency)
norm() { jq -S '.region // . | del(.holders, .jobs, .resident_bytes)'; }
declare -A info_before sum_before
for n in "${names[@]}"; do
        info_before[$n]=$(gc --json info "$n" | norm) || fail "info $n"
        gc dump "$n" --to "/run/gmem-test/dump-$n-before" > /dev/null || fail "dump $n"
        sum_before[$n]=$(sha256sum < "$T/dump-$n-before" | cut -d' ' -f1)
done
# the dumps are what was written (the punched MiB reads back as zeroes)
cp "$T/src-memfd" "$T/expect-memfd"
dd if=/dev/zero of="$T/expect-memfd" bs=1M seek=4 count=1 conv=notrunc status=none
cmp -s "$T/expect-memfd" "$T/dump-r-memfd-before" || fail "r-memfd does not hold what was populated"
if [[ " ${names[*]} " == *" r-secret "* ]]; then
        cmp -s "$T/src-secret" "$T/dump-r-secret-before" || fail "r-secret does not hold what was populated"
fi
[[ $(jq -r '.owner_uid' <<< "${info_before[r-memfd]}") == 0 ]] || fail "r-memfd owner: ${info_before[r-memfd]}"
[[ $(jq -c '.grants' <<< "${info_before[r-memfd]}") == '{"gids":[2345],"uids":[1234]}' ]] ||
        fail "r-memfd grants: $(jq -c .grants <<< "${info_before[r-memfd]}")"
say "regions ${names[*]}: populated, granted, dumped ($(for n in "${names[@]}"; do printf '%s=%.12s ' "$n" "${sum_before[$n]}"; done))"

nstore=$(show NFileDescriptorStore)
[[ $nstore == "${#names[@]}" ]] || fail "fd store holds $nstore fds, want ${#names[@]} (one per region)"
for n in "${names[@]}"; do
        [[ -f /proc/$sdpid/root/run/gmemd/regions/$n.json ]] || fail "no metadata file for $n in /run/gmemd/regions"
done
say "fd store: $nstore fds; metadata in /run/gmemd/regions: $(ls "/proc/$sdpid/root/run/gmemd/regions" | tr '\n' ' ')"

# --- crash: SIGKILL, systemd restarts gmemd with the fd store ----------------------------------
wait_restarted() { # old-pid: until a new main pid is active/running
        for _ in $(seq 200); do
                local p
                p=$(show MainPID)
                if [[ $p != 0 && $p != "$1" && $(show ActiveState)/$(show SubState) == active/running ]]; then
                        echo "$p"
                        return 0
                fi
                sleep 0.05
        done
        return 1
}
check_regions_back() { # what: every region, same metadata and content
        local n list
        list=$(gc --json list) || fail "list after $1"
        for n in "${names[@]}"; do
                local now sum
                now=$(gc --json info "$n" | norm) || fail "$n is gone after $1; list: $list"
                [[ $now == "${info_before[$n]}" ]] ||
                        fail "$n changed across $1: $(diff <(echo "${info_before[$n]}") <(echo "$now") | tr '\n' ' ')"
                rm -f "$T/dump-$n-after"
                gc dump "$n" --to "/run/gmem-test/dump-$n-after" > /dev/null || fail "dump $n after $1"
                sum=$(sha256sum < "$T/dump-$n-after" | cut -d' ' -f1)
                if [[ $sum != "${sum_before[$n]}" ]]; then
                        local res
                        res=$(gc --json info "$n" | jq -c '.region // . | {state, populated_bytes, resident_bytes}')
                        if cmp -s "$T/dump-$n-after" <(head -c "$(stat -c %s "$T/dump-$n-after")" /dev/zero); then
                                fail "$n reads back as all zeroes after $1 (now $res; the dump left holes for every" \
                                        "page: is residency judged from the new process's page tables?)"
                        fi
                        fail "$n content changed across $1 (now $res): $(cmp "$T/dump-$n-before" "$T/dump-$n-after" | head -n 1)"
                fi
        done
        [[ $(jq 'if type == "array" then length else (.regions | length) end' <<< "$list") == "${#names[@]}" ]] ||
                fail "after $1 gmemd has other regions than before: $list"
}

ns kill -KILL "$pid1" || fail "kill gmemd"
say "SIGKILLed gmemd (pid $pid1)"
pid2=$(wait_restarted "$pid1") || fail "systemd did not restart gmemd after SIGKILL"
[[ $(show NRestarts) -ge 1 ]] || fail "NRestarts is $(show NRestarts)"
say "systemd restarted gmemd: pid $pid2, status: $(show StatusText)"
check_regions_back "a SIGKILL"
[[ $(show NFileDescriptorStore) == "${#names[@]}" ]] || fail "fd store holds $(show NFileDescriptorStore) after the restart"
say "every region is back with the same owner, grants, flags, state and content"
bad=$(grep -naP '[^\t\x20-\x7e]' "$T/gmemd.log" | head -n 3 | cat -v)
[[ -z $bad ]] || fail "gmemd logged unprintable bytes: $bad"

# a watchdog-style abort is a crash like any other
ns kill -ABRT "$pid2" || fail "kill -ABRT gmemd"
pid3=$(wait_restarted "$pid2") || fail "systemd did not restart gmemd after SIGABRT"
check_regions_back "a SIGABRT"
say "and again after SIGABRT (pid $pid3)"

# an operator's restart (SIGTERM, then a new gmemd): the store is kept across the restart job
sctl restart gmemd.service || fail "systemctl restart gmemd.service"
pid3b=$(wait_restarted "$pid3") || fail "gmemd not back after systemctl restart"
check_regions_back "systemctl restart"
say "and after systemctl restart (pid $pid3b)"

# --- a config file broken while gmemd holds guest memory: the next gmemd must not exit over it (the
# start limit would empty the fd store and release every region); it runs with the configuration
# its predecessor saved in /run/gmemd/config.json and says so
printf '{ "workers": 3 }\n' > "$T/gmemd.json"
cat > "$units/gmemd.service.d/55-config.conf" << EOF
[Service]
ExecStart=
ExecStart=$sbin/gmemd --bus none --config /run/gmem-test/gmemd.json
EOF
sctl daemon-reload || fail "daemon-reload"
sctl restart gmemd.service || fail "systemctl restart gmemd.service with a config file"
pid_cf=$(wait_restarted "$pid3b") || fail "gmemd not back with a config file"
check_regions_back "a restart with a config file"
jq -e '.workers == 3' "/proc/$sdpid/root/run/gmemd/config.json" > /dev/null ||
        fail "the configuration in force was not saved: $(cat "/proc/$sdpid/root/run/gmemd/config.json" 2>&1)"
printf '{ "workers": "many" }\n' > "$T/gmemd.json"
ns kill -KILL "$pid_cf" || fail "kill gmemd"
pid_cf2=$(wait_restarted "$pid_cf") || fail "gmemd did not come back with a broken config file and regions held"
check_regions_back "a restart with a broken config file"
grep -q 'running with the configuration of the gmemd before this one' "$T/gmemd.log" ||
        fail "gmemd did not say it runs with its predecessor's configuration"
jq -e '.workers == 3' "/proc/$sdpid/root/run/gmemd/config.json" > /dev/null ||
        fail "the saved configuration was overwritten by a broken one"
printf '{ "workers": 2 }\n' > "$T/gmemd.json"
sctl restart gmemd.service || fail "systemctl restart gmemd.service after fixing the config file"
pid3b=$(wait_restarted "$pid_cf2") || fail "gmemd not back after the config file was fixed"
check_regions_back "a restart with the fixed config file"
jq -e '.workers == 2' "/proc/$sdpid/root/run/gmemd/config.json" > /dev/null || fail "the fixed configuration was not saved"
rm -f "$units/gmemd.service.d/55-config.conf"
sctl daemon-reload || fail "daemon-reload"
say "a config file broken under a running gmemd: the next one kept custody with the saved configuration (pid $pid_cf2)"

# wait_line FILE PID: until FILE (a process's output) has its "waiting" line, or PID is gone
wait_line() {
        for _ in $(seq 600); do
                grep -q '^waiting' "$1" && return 0
                kill -0 "$2" 2> /dev/null || break
                sleep 0.05
        done
        grep -q '^waiting' "$1"
}
# wait_store N: until the fd store holds N fds (5 s); false if it does not
wait_store() {
        for _ in $(seq 100); do
                [[ $(show NFileDescriptorStore) == "$1" ]] && return 0
                sleep 0.05
        done
        return 1
}

# --- a page server that never hurts its guest: a real guest restored lazily through gmemd (faults
# only, no prefetch, so the restore is certainly unfinished), gmemd SIGKILLed in the middle. The
# guest's memory faults wait; the next gmemd gets the uffds, snapshots, the VMM's pidfds and the
# servers' state back from the fd store and serves them; the guest verifies every byte.
if [[ -x $vmm ]] && [[ -c /dev/kvm ]]; then
        ns env TMPDIR=/tmp "$vmm" --memory 32M --regions 2 --snapshot /run/gmem-test/lz.snap > "$T/lz-snap.out" 2>&1 ||
                fail "example VMM --snapshot: $(tail -n 3 "$T/lz-snap.out")"
        rm -f "$T/lz-go"
        ns env TMPDIR=/tmp "$vmm" --memory 32M --regions 2 --gmemd="$sock" --name lz --restore /run/gmem-test/lz.snap \
                --lazy --no-prefetch --wait-file /run/gmem-test/lz-go > "$T/lz.out" 2>&1 &
        lz_pid=$!
        wait_line "$T/lz.out" "$lz_pid" || fail "the lazily restored VMM did not get going: $(tail -n 5 "$T/lz.out")"
        grep -q 'served by gmemd' "$T/lz.out" || fail "gmemd does not serve the VMM's memory: $(tail -n 5 "$T/lz.out")"
        want=$((${#names[@]} + 2 + 2 * 4)) # the regions, lz-0 and lz-1, and 4 fds per page server
        [[ $(show NFileDescriptorStore) == "$want" ]] ||
                fail "fd store holds $(show NFileDescriptorStore) fds while serving, want $want"
        pid_lz=$(show MainPID)
        ns kill -KILL "$pid_lz" || fail "kill gmemd mid-restore"
        pid_lz2=$(wait_restarted "$pid_lz") || fail "systemd did not restart gmemd after a SIGKILL mid-restore"
        for _ in $(seq 100); do
                (($(grep -c 'resumed from the fd store' "$T/gmemd.log") >= 2)) && break
                sleep 0.05
        done
        (($(grep -c 'resumed from the fd store' "$T/gmemd.log") >= 2)) ||
                fail "the page servers were not resumed: $(grep -i 'page server\|serve' "$T/gmemd.log" | tail -n 4)"
        say "gmemd SIGKILLed mid-restore (pid $pid_lz); pid $pid_lz2 resumed both page servers from the fd store"
        touch "$T/lz-go"
        wait "$lz_pid"
        lz_rc=$?
        ((lz_rc == 0)) || fail "the guest restored across a gmemd crash failed (exit $lz_rc): $(tail -n 6 "$T/lz.out")"
        grep -q '^verified .* match the image' "$T/lz.out" || fail "the guest did not verify its memory: $(tail -n 4 "$T/lz.out")"
        # the VMM is gone: its pidfd ends the resumed jobs, which leave the store
        want=$((${#names[@]} + 2))
        wait_store "$want" ||
                fail "fd store holds $(show NFileDescriptorStore) fds after the VMM exited, want $want"
        gc release lz-0 > /dev/null && gc release lz-1 > /dev/null || fail "release lz-0, lz-1"
        say "the guest verified every byte after the crash; the page servers left the store when the VMM exited"

        # the same, with the snapshot damaged while gmemd was down: the resumed server refuses to
        # serve it — a job-finished event with the error for a watcher, the guest left waiting in
        # its fault (never given zeroes: it does not verify, it does not go on)
        cp "$T/lz.snap" "$T/lz2.snap" && cp "$T/lz.snap.1" "$T/lz2.snap.1" || fail "copy the snapshot"
        rm -f "$T/lz-go"
        ns env TMPDIR=/tmp "$vmm" --memory 32M --regions 2 --gmemd="$sock" --name lz2 --restore /run/gmem-test/lz2.snap \
                --lazy --no-prefetch --wait-file /run/gmem-test/lz-go > "$T/lz2.out" 2>&1 &
        lz_pid=$!
        wait_line "$T/lz2.out" "$lz_pid" || fail "the second lazily restored VMM did not get going: $(tail -n 5 "$T/lz2.out")"
        pid_lz=$(show MainPID)
        ns kill -KILL "$pid_lz" || fail "kill gmemd"
        # one byte of the first page of region 0's data: the guest reads it, the VMM did not
        printf 'X' | dd of="$T/lz2.snap" bs=1 seek=$((4096 + 4096)) conv=notrunc status=none
        pid_lz2=$(wait_restarted "$pid_lz") || fail "systemd did not restart gmemd"
        ns "$gmemctl" --socket "$sock" watch > "$T/lz2-watch.out" 2>&1 &
        watch_pid=$!
        sleep 0.5
        touch "$T/lz-go"
        for _ in $(seq 200); do
                grep -q '"job-finished"' "$T/lz2-watch.out" && break
                sleep 0.05
        done
        grep '"job-finished"' "$T/lz2-watch.out" | grep -q '"ok":false' ||
                fail "no job-finished event with an error for the damaged snapshot: $(tail -n 3 "$T/lz2-watch.out")"
        grep -q 'does not match its checksum' "$T/lz2-watch.out" ||
                fail "the error event does not say why: $(grep job-finished "$T/lz2-watch.out" | head -n 1)"
        sleep 1
        kill -0 "$lz_pid" 2> /dev/null || fail "the VMM went on past a fault nobody served: $(tail -n 4 "$T/lz2.out")"
        grep -q '^verified' "$T/lz2.out" && fail "the guest verified memory from a damaged snapshot"
        # the VMM itself (nsenter's child, its pid in the namespace on the waiting line)
        vmm_ns_pid=$(sed -n 's/^waiting .*(pid \([0-9]*\);.*/\1/p' "$T/lz2.out")
        [[ -n $vmm_ns_pid ]] || fail "the VMM did not say its pid: $(grep ^waiting "$T/lz2.out")"
        ns kill -KILL "$vmm_ns_pid" || fail "kill the VMM"
        wait "$lz_pid" 2> /dev/null
        kill "$watch_pid" 2> /dev/null
        wait "$watch_pid" 2> /dev/null
        want=$((${#names[@]} + 2))
        wait_store "$want" ||
                fail "fd store holds $(show NFileDescriptorStore) fds after the damaged restore, want $want"
        gc release lz2-0 > /dev/null && gc release lz2-1 > /dev/null || fail "release lz2-0, lz2-1"
        say "a snapshot damaged across the crash: an error event, the guest kept waiting, never served zeroes"
fi

# --- the same for a Firecracker VM served from its memory file (tests/systemd/fake-firecracker.py
# speaks Firecracker's documented handshake: no Firecracker binary runs here)
if command -v python3 > /dev/null; then
        head -c 6M /dev/urandom > "$T/fc.mem"
        rm -f "$T/fc-go" "$T/fc.sock"
        gc firecracker fcvm --listen /run/gmem-test/fc.sock --from /run/gmem-test/fc.mem --raw --no-prefetch > "$T/fc-ctl.out" 2>&1 ||
                fail "gmemctl firecracker: $(cat "$T/fc-ctl.out")"
        # the namespace sees the build and the test directory, not the source tree
        cp "$src/tests/systemd/fake-firecracker.py" "$T/fake-firecracker.py" || fail "copy the Firecracker stand-in"
        ns python3 /run/gmem-test/fake-firecracker.py /run/gmem-test/fc.sock /run/gmem-test/fc.mem /run/gmem-test/fc-go \
                > "$T/fc.out" 2>&1 &
        fc_pid=$!
        wait_line "$T/fc.out" "$fc_pid" || fail "the Firecracker stand-in did not get going: $(tail -n 5 "$T/fc.out")"
        want=$((${#names[@]} + 4))
        wait_store "$want" ||
                fail "fd store holds $(show NFileDescriptorStore) fds while serving the VM, want $want"
        pid_fc=$(show MainPID)
        ns kill -KILL "$pid_fc" || fail "kill gmemd while it serves the VM"
        pid_fc2=$(wait_restarted "$pid_fc") || fail "systemd did not restart gmemd"
        for _ in $(seq 100); do
                grep -q "page server for VM 'fcvm' resumed" "$T/gmemd.log" && break
                sleep 0.05
        done
        grep -q "page server for VM 'fcvm' resumed" "$T/gmemd.log" ||
                fail "the VM's page server was not resumed: $(grep -i 'firecracker\|serve' "$T/gmemd.log" | tail -n 4)"
        touch "$T/fc-go"
        wait "$fc_pid"
        fc_rc=$?
        ((fc_rc == 0)) || fail "the Firecracker stand-in failed after the crash (exit $fc_rc): $(tail -n 4 "$T/fc.out")"
        grep -qx verified "$T/fc.out" || fail "the VM's memory differs from its memory file: $(tail -n 2 "$T/fc.out")"
        want=${#names[@]}
        wait_store "$want" ||
                fail "fd store holds $(show NFileDescriptorStore) fds after the VM hung up, want $want"
        say "a Firecracker VM's page server: gmemd SIGKILLed (pid $pid_fc), resumed by pid $pid_fc2, the VM's memory verified"
fi

# --- release: out of the fd store and the metadata directory -----------------------------------
gc release r-empty > /dev/null || fail "release r-empty"
mapfile -t names < <(printf '%s\n' "${names[@]}" | grep -vx r-empty)
for _ in $(seq 50); do
        [[ $(show NFileDescriptorStore) == "${#names[@]}" ]] && break
        sleep 0.05
done
[[ $(show NFileDescriptorStore) == "${#names[@]}" ]] || fail "released region still in the fd store ($(show NFileDescriptorStore) fds)"
[[ ! -e /proc/$sdpid/root/run/gmemd/regions/r-empty.json ]] || fail "released region's metadata left behind"
say "release: FDSTOREREMOVE'd and its metadata deleted"

# --- foreign fds in the store are dropped: inject some before the next start ------------------
py=/usr/bin/python3
if [[ -x $py ]]; then
        cat > "$T/inject.py" << 'EOF'
import array, os, socket
# put fds gmemd does not know into its fd store: a name it does not use, and a region name
# without metadata
path = os.environ["NOTIFY_SOCKET"]
if path.startswith("@"):
    path = "\0" + path[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(path)
for name in ("bogus-thing", "region-orphan"):
    fd = os.memfd_create(name)
    os.ftruncate(fd, 4096)
    s.sendmsg([("FDSTORE=1\nFDNAME=%s" % name).encode()],
              [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
    os.close(fd)
EOF
        cat > "$units/gmemd.service.d/60-inject.conf" << EOF
[Service]
NotifyAccess=all
ExecStartPre=+$py /run/gmem-test/inject.py
EOF
        sctl daemon-reload || fail "daemon-reload"
        pid=$(show MainPID)
        ns kill -KILL "$pid"
        pid4=$(wait_restarted "$pid") || fail "no restart after the injection"
        check_regions_back "foreign fds in the store"
        for _ in $(seq 50); do
                [[ $(show NFileDescriptorStore) == "${#names[@]}" ]] && break
                sleep 0.05
        done
        [[ $(show NFileDescriptorStore) == "${#names[@]}" ]] ||
                fail "foreign fds stayed in the fd store: $(show NFileDescriptorStore) fds for ${#names[@]} regions"
        [[ ! -e /proc/$sdpid/root/run/gmemd/regions/orphan.json ]] || fail "metadata made up for an unknown fd"
        rm -f "$units/gmemd.service.d/60-inject.conf"
        sctl daemon-reload || fail "daemon-reload"
        say "fds gmemd did not recognise (bogus-thing, region-orphan) were dropped from the store (pid $pid4)"
else
        say "no $py: foreign fd store entries not tested"
fi

# --- stop: the store is emptied; the next activation starts clean --------------------------------
# (systemctl warns that the socket can still activate the service: that is the point)
sctl stop gmemd.service 2> "$T/stop.err" || fail "systemctl stop gmemd.service: $(cat "$T/stop.err")"
[[ $(show NFileDescriptorStore) == 0 ]] || fail "fd store not emptied by stop"
[[ $(sctl show -p ActiveState --value gmemd.socket) == active ]] || fail "the socket went away with the service"
ns test -S "$sock" || fail "stopping the service removed the socket"
list=$(gc --json list) || fail "socket activation after stop"
[[ $(jq 'if type == "array" then length else (.regions | length) end' <<< "$list") == 0 ]] || fail "regions survived a stop: $list"
[[ -z $(ls -A "/proc/$sdpid/root/run/gmemd/regions" 2> /dev/null) ]] ||
        fail "stale metadata after a stop and start: $(ls "/proc/$sdpid/root/run/gmemd/regions")"
say "stop empties the store; the next activation starts with no regions and no stale metadata"

sctl stop gmemd.socket gmemd.service 2> /dev/null
say "stopping systemd (host pid $sdpid)"
stop_systemd
host_untouched || fail "the host was touched"
say "host /tmp, /run, hostname and mounts untouched; no process or cgroup left"
echo "ok"
