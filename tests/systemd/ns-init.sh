#!/bin/bash
# PID 1 of a fresh PID+mount(+UTS, IPC, net, cgroup) namespace made by tests/check-systemd.sh:
# fence the host off, then exec systemd as this namespace's PID 1.
#
#   ns-init.sh HOSTDIR
#
# HOSTDIR is the test's directory on the host; it holds units/, an empty generators/ directory and
# etc-group (the host's /etc/group plus what sysusers.d/gmemd.conf adds). Inside, it appears at
# /run/gmem-test. Standard input and output are a pty that `script` logs (systemd logs to the
# console only if it is a terminal): it becomes /dev/console, so systemd never writes to the
# host's console. What systemd can reach of the host afterwards is read-only: the root file
# system, /sys and /proc/sys; /run, /tmp, /var/tmp and /dev/shm are private tmpfs; the cgroup tree is our
# own subtree (cgroup namespace) of the host's cgroup2 hierarchy.
set -eu
hostdir=$1

fail() {
        echo "ns-init: $*" >&2
        exit 1
}
[[ $$ == 1 ]] || fail "not PID 1 of a new PID namespace (pid $$)"
[[ -d $hostdir/units && -f $hostdir/etc-group ]] || fail "bad test dir '$hostdir'"
console=$(tty) || fail "standard input is not a terminal"

# nothing mounted below here may propagate back to the host's mount namespace
mount --make-rprivate /

mount -t tmpfs -o mode=0755,nosuid,nodev,size=64m gmem-test-run /run
mkdir /run/gmem-test
mount --bind "$hostdir" /run/gmem-test
# the build directory (units and clients run its binaries) is kept in sight: stashed before the
# private /tmp covers it, put back at the same path after
build=$(cat /run/gmem-test/build-path)
[[ $build == /* && -d $build ]] || fail "bad build path '$build'"
mkdir /run/gmem-build
mount --bind "$build" /run/gmem-build
mount -t tmpfs -o mode=1777,nosuid,nodev,size=64m gmem-test-tmp /tmp
if [[ ! -d $build/bin ]]; then
        mkdir -p "$build"
        mount --bind /run/gmem-build "$build"
fi
[[ -x $build/bin/gmemd ]] || fail "the build at '$build' is not visible in the namespace"
mount -t tmpfs -o mode=1777,nosuid,nodev,size=16m gmem-test-shm /dev/shm
# PrivateTmp= units make their directories in /var/tmp too: a private one (check-kernels' initramfs
# has none, and the host's is not ours to write)
[[ -d /var/tmp ]] || mkdir -p /var/tmp
mount -t tmpfs -o mode=1777,nosuid,nodev,size=16m gmem-test-vartmp /var/tmp

mount --bind /run/gmem-test/etc-group /etc/group
mount --bind "$console" /dev/console

# our cgroup namespace's root is the subtree the test made for us (where the hierarchy is already
# mounted right there, as in check-kernels' VMs, the same superblock cannot be mounted on top of
# itself: that mount goes first, in this private mount namespace only)
[[ $(findmnt -n -o FSTYPE /sys/fs/cgroup) == cgroup2 ]] && umount -l /sys/fs/cgroup
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup

# read-only from here: remount,bind changes only this namespace's mount, never the superblock
mount -o remount,bind,ro /
mount --bind /proc/sys /proc/sys
mount -o remount,bind,ro /proc/sys
mount -o remount,bind,ro,nosuid,nodev,noexec /sys

# prove the fences hold before handing over
if touch /etc/.gmem-test-rw 2>/dev/null; then
        rm -f /etc/.gmem-test-rw
        fail "the root file system is still writable"
fi
# (the last mount at a path is the one on top: in check-kernels' VMs a tmpfs lies beneath ours)
[[ $(findmnt -n -o FSTYPE /run | tail -n 1) == tmpfs && $(findmnt -n -o FSTYPE /tmp | tail -n 1) == tmpfs ]] || fail "/run or /tmp is not private"

exec env -i \
        container=gmem-test \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LANG=C.UTF-8 \
        SYSTEMD_UNIT_PATH=/run/gmem-test/units \
        SYSTEMD_GENERATOR_PATH=/run/gmem-test/generators \
        SYSTEMD_ENVIRONMENT_GENERATOR_PATH=/run/gmem-test/generators \
        /lib/systemd/systemd --unit=gmem-test.target --log-target=console --log-level=info \
        --show-status=no --log-color=no
