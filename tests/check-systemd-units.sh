#!/bin/bash
# The systemd units and their install contract:
#  - `systemd-analyze verify` is clean on gmemd.service and gmemd.socket (with @SBINDIR@ pointed at
#    this build, as `make install` substitutes it): no error and no warning at all;
#  - `systemd-analyze security --offline` keeps gmemd.service's exposure at or below 2.5 ("OK");
#  - the properties the daemon and the fd store depend on are there (Type=notify, Restart=always,
#    NotifyAccess=main, FileDescriptorStoreMax >= limits.max_regions, RuntimeDirectory=gmemd
#    preserved, the socket's name and path, group gmem, mode 0660, ...);
#  - the system call filter allows everything a real gmemd calls: gmemd runs under strace through
#    every kind of operation and each system call it made must pass the unit's filter;
#  - without systemd (no NOTIFY_SOCKET), gmemd says that regions do not survive a restart;
#  - `make install DESTDIR=... PREFIX=/usr` puts the units where systemd.pc says (/lib/systemd/system on Debian 12) with
#    ExecStart=/usr/sbin/gmemd, and sysusers.d/tmpfiles.d entries where systemd-sysusers and
#    systemd-tmpfiles find them: run against the installed tree (--root), they create group gmem
#    and /run/gmemd 0755 root:root.
# Nothing is filtered out of verify's output. Exit 0 pass, 77 skip (last line says why), else fail.
set -uo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.." || exit 1
src=$PWD
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$src/$BUILD
gmemd=$BUILD/bin/gmemd
gmemctl=$BUILD/bin/gmemctl

fail() {
        echo "FAIL: $*"
        exit 1
}
skip() {
        echo "$*"
        exit 77
}

command -v systemd-analyze > /dev/null || skip "no systemd-analyze here"
[[ -x $gmemd && -x $gmemctl ]] || skip "$gmemd is not built (make tools BUILD=$BUILD)"
for f in gmemd.service gmemd.socket gmemd.sysusers gmemd.tmpfiles; do
        [[ -f systemd/$f ]] || fail "no systemd/$f"
done

tmp=$(mktemp -d /tmp/gmem-units-XXXXXX)
pids=()
cleanup() {
        for p in "${pids[@]}"; do kill -KILL "$p" 2> /dev/null; done
        [[ $tmp == /tmp/gmem-units-* ]] && rm -rf "$tmp"
}
trap cleanup EXIT

# --- systemd-analyze verify ----------------------------------------------------------------------
mkdir "$tmp/units"
for u in gmemd.service gmemd.socket; do
        sed "s|@SBINDIR@|$BUILD/bin|g" "systemd/$u" > "$tmp/units/$u"
done
grep -q '@[A-Z]*@' "$tmp"/units/* && fail "placeholders other than @SBINDIR@ in the units: $(grep -h '@[A-Z]*@' "$tmp"/units/*)"
# The units' own directory comes first in verify's search path, the system's after it (for
# sysinit.target, sockets.target, dbus.socket): every warning counts, so the output must be empty.
out=$(cd "$tmp/units" && systemd-analyze verify --man=no gmemd.socket gmemd.service 2>&1)
rc=$?
[[ $rc == 0 && -z $out ]] || fail "systemd-analyze verify (exit $rc): $out"
echo "ok: systemd-analyze verify is clean"

out=$(cd "$tmp/units" && systemd-analyze security --offline=yes --threshold=25 --no-pager gmemd.service 2>&1)
rc=$?
level=$(sed -n 's/.*Overall exposure level for gmemd.service: \([0-9.]*\).*/\1/p' <<< "$out")
[[ $rc == 0 && -n $level ]] || fail "systemd-analyze security: exposure ${level:-?} above 2.5 (exit $rc): $(grep '✗' <<< "$out")"
echo "ok: systemd-analyze security: exposure $level"

# --- the properties the rest of gmem relies on ----------------------------------------------------
# last assignment of KEY in a unit file (systemd's rule for single-valued settings)
prop() { sed -n "s/^$2=//p" "systemd/$1" | tail -n 1; }
props() { sed -n "s/^$2=//p" "systemd/$1" | tr '\n' ' '; }
want() { # unit key value
        [[ $(prop "$1" "$2") == "$3" ]] || fail "$1: $2 is '$(prop "$1" "$2")', want '$3'"
}
want gmemd.service Type notify
want gmemd.service NotifyAccess main
want gmemd.service Restart always
want gmemd.service RuntimeDirectory gmemd
want gmemd.service RuntimeDirectoryPreserve yes
want gmemd.service DevicePolicy closed
want gmemd.service DeviceAllow "/dev/kvm rw"
want gmemd.service ProtectSystem strict
want gmemd.service NoNewPrivileges yes
want gmemd.service RestrictAddressFamilies AF_UNIX
want gmemd.service LimitMEMLOCK infinity
want gmemd.service SystemCallErrorNumber EPERM
[[ $(prop gmemd.service ExecStart) == "@SBINDIR@/gmemd --bus system" ]] ||
        fail "gmemd.service: ExecStart is '$(prop gmemd.service ExecStart)'"
[[ -n $(prop gmemd.service WatchdogSec) && $(prop gmemd.service WatchdogSec) != 0 ]] || fail "gmemd.service: no WatchdogSec"
[[ $(props gmemd.service SystemCallFilter) == "@system-service "* ]] || fail "gmemd.service: the filter does not start from @system-service"
# the default limits.max_regions (gmemd/config.c) and clients must fit
max_regions=1024 max_clients=256
(($(prop gmemd.service FileDescriptorStoreMax) >= max_regions)) ||
        fail "FileDescriptorStoreMax=$(prop gmemd.service FileDescriptorStoreMax) is below limits.max_regions ($max_regions)"
(($(prop gmemd.service LimitNOFILE) >= max_regions + max_clients + 64)) ||
        fail "LimitNOFILE=$(prop gmemd.service LimitNOFILE) leaves no room for $max_regions regions and $max_clients clients"
want gmemd.socket ListenSequentialPacket /run/gmemd/gmemd.sock
want gmemd.socket FileDescriptorName gmemd
want gmemd.socket SocketMode 0660
want gmemd.socket SocketGroup gmem
grep -qx 'g gmem -' systemd/gmemd.sysusers || fail "gmemd.sysusers does not create group gmem"
grep -qE '^d[[:space:]]+/run/gmemd[[:space:]]+0755[[:space:]]+root[[:space:]]+root[[:space:]]+-' systemd/gmemd.tmpfiles ||
        fail "gmemd.tmpfiles does not make /run/gmemd 0755 root root"
echo "ok: unit properties"

# --- the system call filter against a real gmemd ---------------------------------------------------
expand() { # a syscall-filter group, recursively, one name per line
        systemd-analyze syscall-filter "$1" 2> /dev/null | sed -n '2,$p' | grep -v '^[[:space:]]*#' |
                awk 'NF { print $1 }' | while read -r x; do
                if [[ $x == @* ]]; then expand "$x"; else echo "$x"; fi
        done
}
# the allow lists, minus the ~deny lists, as systemd combines them
: > "$tmp/allow"
: > "$tmp/deny"
while read -r line; do
        if [[ $line == "~"* ]]; then list=deny line=${line#"~"}; else list=allow; fi
        for x in $line; do
                if [[ $x == @* ]]; then expand "$x"; else echo "$x"; fi
        done >> "$tmp/$list"
done < <(sed -n 's/^SystemCallFilter=//p' systemd/gmemd.service)
sort -u -o "$tmp/allow" "$tmp/allow"
sort -u -o "$tmp/deny" "$tmp/deny"
[[ -s $tmp/allow ]] || fail "could not expand the system call filter"
for s in memfd_secret mincore memfd_create fallocate ioctl mmap; do
        grep -qx "$s" "$tmp/allow" && ! grep -qx "$s" "$tmp/deny" || fail "the filter does not allow $s"
done

if ! command -v strace > /dev/null; then
        echo "no strace: the filter is not checked against a running gmemd"
else
        head -c 4M /dev/urandom > "$tmp/src"
        sock=$tmp/run/gmemd.sock
        env -u NOTIFY_SOCKET strace -f -qq -c -o "$tmp/strace" "$gmemd" --bus none --socket "$sock" 2> "$tmp/gmemd.log" &
        tracer=$!
        pids+=("$tracer")
        for _ in $(seq 200); do [[ -S $sock ]] && break; sleep 0.05; done
        [[ -S $sock ]] || fail "gmemd under strace did not listen: $(cat "$tmp/gmemd.log")"
        # gmemd itself too: killing strace alone would leave it running, detached, if a check fails
        gpid=$(cat "/proc/$tracer/task/$tracer/children" 2> /dev/null | awk '{ print $1 }')
        [[ -n $gpid ]] || fail "cannot find gmemd under strace"
        pids+=("$gpid")
        gc() { "$gmemctl" --socket "$sock" "$@" > /dev/null || fail "gmemctl $*"; }
        gc caps
        gc create a --size 4M --backend memfd
        gc populate a --from "$tmp/src"
        gc prefault a
        gc punch a --offset 0 --length 4K
        gc grant a --uid 1234
        gc revoke a --uid 1234
        gc dump a --to "$tmp/dump"
        gc list
        gc info a
        gc exec a -- true
        if "$gmemctl" --socket "$sock" create s --size 4M --backend secret > /dev/null 2>&1; then
                gc populate s --from "$tmp/src"
                gc prefault s
                gc release s
        fi
        if "$gmemctl" --socket "$sock" create h --size 4M --backend hugetlb > /dev/null 2>&1; then
                gc populate h --from "$tmp/src"
                gc release h
        fi
        if [[ -x $BUILD/bin/gmem-example-vmm && -r /dev/kvm && -w /dev/kvm ]]; then
                TMPDIR=$tmp "$BUILD/bin/gmem-example-vmm" --memory 8M --gmemd="$sock" --name vm0 --regions 1 > "$tmp/vmm.log" 2>&1 ||
                        fail "example VMM through gmemd: $(tail -n 3 "$tmp/vmm.log")"
                gc dump vm0-0 --to "$tmp/dump-vm0"
                gc release vm0-0
        fi
        gc release a
        # SIGTERM to gmemd itself (strace's child), so strace writes its summary and exits
        kill -TERM "$gpid"
        wait "$tracer"
        pids=()
        awk '$NF ~ /^[a-z_0-9]+$/ && $NF != "total" && $NF != "syscall" { print $NF }' "$tmp/strace" | sort -u > "$tmp/used"
        [[ -s $tmp/used ]] || fail "strace recorded no system calls"
        # execve is gmemd's own start, made before systemd applies the filter
        missing=$(comm -23 "$tmp/used" "$tmp/allow" | grep -vx execve | tr '\n' ' ')
        denied=$(comm -12 "$tmp/used" "$tmp/deny" | tr '\n' ' ')
        [[ -z $missing ]] || fail "gmemd calls what SystemCallFilter= does not allow: $missing"
        [[ -z $denied ]] || fail "gmemd calls what SystemCallFilter=~ denies: $denied"
        echo "ok: SystemCallFilter= allows all $(wc -l < "$tmp/used") system calls gmemd made"

        grep -q 'not started by systemd.*do not survive a restart' "$tmp/gmemd.log" ||
                fail "gmemd without NOTIFY_SOCKET does not say that regions do not survive a restart: $(head -n 3 "$tmp/gmemd.log")"
        echo "ok: without systemd, gmemd says regions do not survive a restart"
fi

# --- make install ------------------------------------------------------------------------------
root=$tmp/root
if ! make --no-print-directory -C "$src" BUILD="$BUILD" DESTDIR="$root" PREFIX=/usr install > "$tmp/install.log" 2>&1; then
        tail -n 20 "$tmp/install.log"
        fail "make install DESTDIR=$root PREFIX=/usr failed"
fi
# where systemd.pc says units go (/lib/systemd/system on Debian 12, /usr/lib/systemd/system later)
sysunitdir=$(pkg-config --variable=systemdsystemunitdir systemd 2> /dev/null)
sysunitdir=${sysunitdir:-/usr/lib/systemd/system}
unitdir=$root$sysunitdir
for u in gmemd.service gmemd.socket; do
        [[ -f $unitdir/$u ]] || fail "make install did not install $sysunitdir/$u"
        cmp -s <(sed 's|@SBINDIR@|/usr/sbin|g' "systemd/$u") "$unitdir/$u" ||
                fail "installed $u differs from systemd/$u with @SBINDIR@=/usr/sbin: $(diff <(sed 's|@SBINDIR@|/usr/sbin|g' "systemd/$u") "$unitdir/$u")"
done
grep -qx 'ExecStart=/usr/sbin/gmemd --bus system' "$unitdir/gmemd.service" || fail "installed ExecStart is not /usr/sbin/gmemd"
[[ -x $root/usr/sbin/gmemd ]] || fail "make install did not install /usr/sbin/gmemd"
cmp -s systemd/gmemd.sysusers "$root/usr/lib/sysusers.d/gmemd.conf" || fail "no /usr/lib/sysusers.d/gmemd.conf"
cmp -s systemd/gmemd.tmpfiles "$root/usr/lib/tmpfiles.d/gmemd.conf" || fail "no /usr/lib/tmpfiles.d/gmemd.conf"
for f in gmemd.service gmemd.socket; do
        [[ $(stat -c %a "$unitdir/$f") == 644 ]] || fail "$f installed with mode $(stat -c %a "$unitdir/$f")"
done
echo "ok: make install puts the units, sysusers.d and tmpfiles.d entries in place"

# systemd's own tools find and apply the installed entries: a bare name is looked up in
# sysusers.d/tmpfiles.d under --root, so this also proves the install location
if [[ $(id -u) != 0 ]]; then
        echo "not root: systemd-sysusers and systemd-tmpfiles are not run on the installed tree"
elif ! command -v systemd-sysusers > /dev/null || ! command -v systemd-tmpfiles > /dev/null; then
        echo "no systemd-sysusers or systemd-tmpfiles: the installed entries are not applied"
else
        mkdir -p "$root/etc"
        for f in passwd group shadow gshadow; do
                [[ -f /etc/$f ]] && cp -p "/etc/$f" "$root/etc/$f"
        done
        sed -i '/^gmem:/d' "$root/etc/group" "$root/etc/gshadow" 2> /dev/null
        [[ -d $root/usr/lib/tmpfiles.d && $root == /tmp/gmem-units-*/root ]] || fail "bad install root '$root'"
        systemd-sysusers --root="$root" gmemd.conf > "$tmp/sysusers.log" 2>&1 ||
                fail "systemd-sysusers --root: $(cat "$tmp/sysusers.log")"
        grep -q '^gmem:x:[0-9]*:' "$root/etc/group" || fail "systemd-sysusers did not create group gmem: $(cat "$tmp/sysusers.log")"
        systemd-tmpfiles --root="$root" --create gmemd.conf > "$tmp/tmpfiles.log" 2>&1 ||
                fail "systemd-tmpfiles --root: $(cat "$tmp/tmpfiles.log")"
        st=$(stat -c '%a %U %G' "$root/run/gmemd" 2> /dev/null)
        [[ $st == "755 root root" ]] || fail "systemd-tmpfiles made /run/gmemd '$st', want '755 root root'"
        echo "ok: systemd-sysusers creates group gmem, systemd-tmpfiles creates /run/gmemd from the installed tree"
fi
echo "ok"
