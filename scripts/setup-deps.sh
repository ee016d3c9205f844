#!/bin/sh
# Install the Debian packages gmem needs to build, test and run. Idempotent: does nothing when
# everything is present; runs `apt-get update` once when it has to install something.
set -eu

# build: compiler, pkg-config, libraries. tests: dbus-daemon and busctl/gdbus for the D-Bus API,
# systemd (PID 1 in a namespace) for socket activation and the fd store, setpriv/unshare/nsenter
# for other uids and namespaces, qemu-system-x86 for the real-VMM test (tests/check-qemu.sh),
# groff/man for the man pages, strace for the unit's system call filter, polkitd for the D-Bus
# test's callers outside group gmem (it runs the real polkitd on its private bus only).
PACKAGES="gcc make binutils pkg-config libc6-dev check libsubunit-dev libcjson-dev libevent-dev libsystemd-dev
dbus systemd libglib2.0-bin python3-dbus util-linux python3 qemu-system-x86 groff-base man-db strace polkitd"
# make check-kernels (`setup-deps.sh kernels`): busybox and cpio for the initramfs, xz and zstd for
# Debian's compressed modules, dpkg-deb and apt-get download for the kernel packages.
# The other compiler and the unoptimised build CI also checks (`setup-deps.sh clang`).
# make deb (`setup-deps.sh deb`): debhelper, lintian and the build dependencies debian/control names.
for extra in "$@"; do
        case "$extra" in
        kernels) PACKAGES="$PACKAGES busybox-static cpio xz-utils zstd gzip dpkg apt debian-archive-keyring" ;;
        clang) PACKAGES="$PACKAGES clang" ;;
        deb) PACKAGES="$PACKAGES debhelper lintian dpkg-dev fakeroot build-essential libdbus-1-dev" ;;
        *) echo "setup-deps.sh: unknown set '$extra' (kernels, clang, deb)" >&2; exit 2 ;;
        esac
done

missing=""
for p in $PACKAGES; do
        status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        case "$status" in
        "install ok installed") ;;
        *) missing="$missing $p" ;;
        esac
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
                SUDO="sudo -n"
        else
                echo "gmem needs these Debian packages:$missing" >&2
                echo "install them as root: apt-get install -y$missing" >&2
                exit 1
        fi
else
        SUDO=""
fi

echo "setup-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
