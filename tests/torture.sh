#!/bin/bash
# gmem-torture (tests/torture/) as hosts really are: gmemd under the real systemd (SIGKILLed and
# brought back from its fd store, mid lazy restore too) and guest memory under memory pressure (a
# zram swap device and a memory cgroup of this run's own that holds the harness — the VMM and the
# guest, whose pages are then pushed out to swap while gmemd dumps, snapshots and serves them).
# Whatever of that this machine cannot do is said (SKIP and why) and the rest runs; everything made
# is undone at the end (swap off, cgroup removed, systemd killed by its pid).
#
#   TORTURE_SECONDS (60)  how long;  TORTURE_SEED  a seed to run again (else a fresh one, printed)
#   TORTURE_ARGS          more arguments for gmem-torture: a failure's --length, --sequence, --keep
#   TORTURE_LIMIT (64M)   the memory cgroup's limit: the harness's regions (up to 88 MiB) can be larger
#                         (at 32M, memory cgroup v1 OOM-killed the harness now and then: its
#                         memfd_secret pages cannot be reclaimed, and v1 gives up on reclaim early)
#
# make torture runs it for 30 minutes; tests/check-torture.sh a bounded run inside make check.
# Exit 0 ok, 1 a failure (its seed and a shrunk sequence above), 77 nothing could run.
set -u
export LC_ALL=C
src=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$src/$BUILD
gmemd=$BUILD/bin/gmemd
torture=$BUILD/tests/gmem-torture
seconds=${TORTURE_SECONDS:-60}
limit=${TORTURE_LIMIT:-64M}
t0=$SECONDS

say() { printf '[%3ds] %s\n' $((SECONDS - t0)) "$*"; }
not_here=() # what of the host's misbehaviour this machine cannot make, and why (REPORT lines)
not_here() {
        say "SKIP $*"
        not_here+=("$*")
}
skip() {
        echo "$*"
        exit 77
}
[[ -x $torture && -x $gmemd ]] || skip "$torture or $gmemd is not built"

# --- memory pressure: zram swap and a memory cgroup -------------------------------------------
zram="" swapdev="" memcg="" memcg_parent="" pressure_why="" memcg_why=""
pressure_begin() {
        local n bytes
        case $limit in
        *K) bytes=$((${limit%K} << 10)) ;; *M) bytes=$((${limit%M} << 20)) ;; *G) bytes=$((${limit%G} << 30)) ;;
        *) bytes=$limit ;;
        esac
        [[ $(id -u) == 0 ]] || { pressure_why="not root: no swap device or memory cgroup can be made"; return 1; }
        [[ -e /proc/swaps ]] || { pressure_why="this kernel has no swap (CONFIG_SWAP off: no /proc/swaps)"; return 1; }
        [[ -e /sys/class/zram-control/hot_add ]] || modprobe zram num_devices=0 2> /dev/null
        [[ -e /sys/class/zram-control/hot_add ]] || { pressure_why="no zram on this kernel: no swap device to make"; return 1; }
        zram=$(cat /sys/class/zram-control/hot_add) || { pressure_why="zram hot_add failed"; return 1; }
        echo 1G > "/sys/block/zram$zram/disksize" || { pressure_why="zram$zram: disksize refused"; return 1; }
        for _ in $(seq 100); do [[ -b /dev/zram$zram ]] && break; sleep 0.01; done
        mkswap "/dev/zram$zram" > /dev/null 2>&1 && swapon "/dev/zram$zram" ||
                { pressure_why="mkswap/swapon /dev/zram$zram failed"; return 1; }
        swapdev=/dev/zram$zram
        # a memory cgroup for the harness, where there is one: swap is pressure enough without it
        # (the harness pushes pages out itself, MADV_PAGEOUT), and this is the busy host's share
        if [[ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ]]; then
                memcg_parent=/sys/fs/cgroup/memory
                memcg=$memcg_parent/gmem-torture-$$
                mkdir "$memcg" && echo "$bytes" > "$memcg/memory.limit_in_bytes" &&
                        echo 100 > "$memcg/memory.swappiness" || { memcg_why="cannot make memory cgroup $memcg"; memcg=""; }
        elif grep -qw memory /sys/fs/cgroup/cgroup.controllers 2> /dev/null; then
                memcg_parent=/sys/fs/cgroup
                echo +memory > /sys/fs/cgroup/cgroup.subtree_control 2> /dev/null
                memcg=$memcg_parent/gmem-torture-$$
                mkdir "$memcg" && echo "$bytes" > "$memcg/memory.max" || { memcg_why="cannot make memory cgroup $memcg"; memcg=""; }
        else
                memcg_why="no memory cgroup controller (neither cgroup v1's nor a cgroup2 with it)"
        fi
        return 0
}
pressure_end() {
        if [[ -n $memcg && -d $memcg ]]; then
                # the limit lifted first: swapoff brings the cgroup's pages back, and they must fit
                if [[ -f $memcg/memory.max ]]; then echo max > "$memcg/memory.max"
                else echo -1 > "$memcg/memory.limit_in_bytes"; fi
        fi
        [[ -n $swapdev ]] && { swapoff "$swapdev" || echo "WARNING: swapoff $swapdev failed"; }
        if [[ -n $memcg && -d $memcg ]]; then
                for _ in $(seq 50); do
                        [[ -z $(cat "$memcg/cgroup.procs" 2> /dev/null) ]] && break
                        while read -r p; do echo "$p" > "$memcg_parent/cgroup.procs"; done < "$memcg/cgroup.procs" 2> /dev/null
                        sleep 0.05
                done
                rmdir "$memcg" 2> /dev/null || echo "WARNING: could not remove $memcg"
        fi
        if [[ -n $zram ]]; then
                echo 1 > "/sys/block/zram$zram/reset" 2> /dev/null
                echo "$zram" > /sys/class/zram-control/hot_remove 2> /dev/null
        fi
        zram="" swapdev="" memcg=""
}
swapped() { # bytes of the cgroup's memory in swap now
        if [[ -f $memcg/memory.swap.current ]]; then cat "$memcg/memory.swap.current"
        else awk '$1 == "total_swap" || $1 == "swap" { print $2; exit }' "$memcg/memory.stat" 2> /dev/null; fi
}

# --- gmemd under systemd, or of the harness's own ----------------------------------------------
systemd=0 systemd_why=""
if [[ ${TORTURE_SYSTEMD:-1} == 1 ]]; then
        # shellcheck source=tests/systemd/lib.sh
        . "$src/tests/systemd/lib.sh"
        # skip() of the probes says why, and we go on without systemd
        systemd_why=$(
                skip() { echo "$*"; exit 77; }
                sd_probe
        ) && systemd=1 && sd_probe # again here, for what it finds (it passed)
fi

result=0 rc_override=0
# huge pages for the hugetlb regions (as tests/run-tests.sh does), given back at the end
hp=/proc/sys/vm/nr_hugepages hp_saved=""
if [[ $(id -u) == 0 && -w $hp ]]; then
        free=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages 2> /dev/null || echo 0)
        if ((free < 48)); then
                hp_saved=$(cat "$hp")
                echo $((hp_saved + 48 - free)) > "$hp" 2> /dev/null || true
        fi
fi
cleaned=1 own="" own_pid=""
finish() {
        ((systemd)) && cleanup
        if [[ -n $own_pid ]]; then
                kill "$own_pid" 2> /dev/null
                wait "$own_pid" 2> /dev/null
        fi
        [[ $own == /tmp/gmem-torture-* ]] && rm -rf "$own"
        pressure_end
        [[ -n $hp_saved ]] && echo "$hp_saved" > "$hp"
        return 0
}
trap finish EXIT
trap 'exit 130' INT TERM

if pressure_begin; then
        say "swap on $swapdev (zram): the harness pushes guest memory out to it (MADV_PAGEOUT)"
        if [[ -n $memcg ]]; then
                say "memory pressure: the harness in $memcg (limit $limit)"
        else
                not_here "memory pressure: $memcg_why"
        fi
else
        not_here "swap and memory pressure: $pressure_why"
        pressure_end
fi

args=(--seconds "$seconds")
[[ -n ${TORTURE_SEED:-} ]] && args+=(--seed "$TORTURE_SEED")
# a failure's "reproduce:" arguments (--length L --sequence K --keep I,J,...)
read -ra extra <<< "${TORTURE_ARGS:-}"
args+=("${extra[@]}")
if ((systemd)); then
        # no start limit: the harness kills gmemd far more often than a host would
        sd_extra_dropin=$'LimitMEMLOCK=infinity\n[Unit]\nStartLimitIntervalSec=0'
        sd_prepare gmem-torture # (cleaned=0 from here: cleanup has something to undo)
        sd_boot
        ns systemctl start gmemd.socket
        say "gmemd under systemd: SIGKILLed by the harness, brought back by systemd from its fd store"
        # the other uid that regions are granted to reaches the socket as a member of group gmem
        args+=(--socket /run/gmemd/gmemd.sock --dir /run/gmem-test --other-gid "$(awk -F: '$1 == "gmem" { print $3 }' "$T/etc-group")"
                --restart-cmd "systemctl kill --signal=KILL gmemd.service >/dev/null 2>&1 && sleep 0.05"
                --pid-cmd "systemctl show -p MainPID --value gmemd.service")
        run() { ns "$@"; }
else
        # gmemd of our own, started here: outside the memory cgroup, as under systemd
        not_here "restarts of gmemd: ${systemd_why:-TORTURE_SYSTEMD=0}"
        own=$(mktemp -d /tmp/gmem-torture-XXXXXX)
        chmod 0755 "$own"
        echo '{"limits":{"max_regions":64,"max_page_servers":16}}' > "$own/gmemd.json"
        "$gmemd" --socket "$own/gmemd.sock" --config "$own/gmemd.json" --bus none > "$own/gmemd.log" 2>&1 &
        own_pid=$!
        for _ in $(seq 100); do [[ -S $own/gmemd.sock ]] && break; sleep 0.05; done
        args+=(--socket "$own/gmemd.sock" --dir "$own" --pid-cmd "echo $own_pid"
                --no-restart "${systemd_why:-TORTURE_SYSTEMD=0}")
        T=$own
        run() { "$@"; }
fi

# the harness (and so the guest memory it writes) in the memory cgroup; gmemd is not
report_file=$(mktemp /tmp/gmem-torture-report-XXXXXX)
(
        [[ -n $memcg ]] && echo "$BASHPID" > "$memcg/cgroup.procs"
        BUILD=$BUILD run "$torture" "${args[@]}" | tee "$report_file"
        exit "${PIPESTATUS[0]}"
) &
hpid=$!
peak=0
while kill -0 "$hpid" 2> /dev/null; do
        if [[ -n $memcg ]]; then
                s=$(swapped)
                ((${s:-0} > peak)) && peak=${s:-0}
        fi
        sleep 1
done
wait "$hpid"
result=$?
((result == 137)) && [[ -n $memcg ]] &&
        echo "the harness was SIGKILLed: the OOM killer of $memcg (limit $limit; TORTURE_LIMIT sets it)? $(grep -h oom_kill "$memcg/memory.oom_control" "$memcg/memory.events" 2> /dev/null | tr '\n' ' ')"
# what it covered, for the test run's summary (tests/run-tests.sh shows REPORT lines)
sed -n 's/^gmem-torture: \(ok: \|regions made\)/REPORT torture: \1/p' "$report_file"
for w in "${not_here[@]}"; do echo "REPORT torture: SKIP $w"; done
rm -f "$report_file"
if [[ -n $memcg ]]; then
        maxuse=$(cat "$memcg/memory.max_usage_in_bytes" "$memcg/memory.peak" 2> /dev/null | head -n 1)
        say "memory pressure: the harness used up to $((${maxuse:-0} >> 20)) MiB of its $limit; up to $((peak >> 20)) MiB of it was in swap at once"
fi
if ((result != 0)); then
        if ((systemd)); then show_logs; else echo "---- gmemd ----"; tail -n 40 "$own/gmemd.log"; fi
fi
exit $result
