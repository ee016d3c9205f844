#!/bin/bash
# The Debian packages, built and installed as an operator would have them:
#  - `scripts/make-deb.sh` (what `make deb` runs) builds them from a copy of this tree with
#    dpkg-buildpackage and fails on any lintian error or warning (--pedantic, infos shown);
#  - the binaries carry dpkg-buildflags' hardening (PIE, full RELRO, bind-now, stack protector,
#    fortified calls) and no RPATH; every package holds what it should and nothing of the
#    others; the developer tools are out of $PATH;
#  - the packages are installed with dpkg -i, maintainer scripts and all, into a chroot: an
#    overlay of this machine's root in a private mount namespace, so nothing of the host changes
#    (its writes land in the test's directory; /run, /tmp are private tmpfs); then the group
#    gmem, /run/gmemd and the enabled socket must be there;
#  - gmemd from the package, started by socket activation (systemd-socket-activate passes the
#    listening socket named as the installed gmemd.socket names it), serves the installed
#    gmemctl: create, populate, list, release;
#  - a reinstall (dpkg runs the upgrade paths of prerm and postinst) and a removal leave
#    nothing broken behind: dpkg --purge removes every file of the packages.
# The chroot is my choice over systemd as PID 1 (tests/check-systemd.sh covers the units
# themselves under real systemd). Exit 0 pass, 77 skip (last line says why), anything else fail.
set -u
export LC_ALL=C
src=$(cd "$(dirname "$0")/.." && pwd)
t0=$SECONDS
say() { printf '[%3ds] %s\n' $((SECONDS - t0)) "$*"; }
skip() {
        echo "$*"
        exit 77
}
fail() {
        echo "FAIL: $*"
        exit 1
}

[[ $(id -u) == 0 ]] || skip "not root: dpkg -i into a chroot needs root"
[[ -f $src/debian/control ]] || skip "no debian/ in $src"
for c in dpkg-buildpackage lintian dh readelf unshare chroot systemd-socket-activate; do
        command -v "$c" > /dev/null || skip "no $c (scripts/setup-deps.sh deb installs the packaging tools)"
done
grep -qw overlay /proc/filesystems || modprobe overlay 2> /dev/null
grep -qw overlay /proc/filesystems || skip "no overlayfs: the chroot is an overlay of /"

T=$(mktemp -d /tmp/gmem-deb-test-XXXXXX) || exit 1
trap 'rm -rf "$T"' EXIT

# --- build and lintian --------------------------------------------------------------------------
say "make deb (dpkg-buildpackage -us -uc -b, lintian --pedantic)"
"$src/scripts/make-deb.sh" "$T/deb" > "$T/make-deb.log" 2>&1 || {
        tail -n 30 "$T/make-deb.log"
        fail "make deb failed"
}
grep 'make deb: lintian:' "$T/make-deb.log"
debs=()
for p in libgmem0 libgmem-dev gmemd gmemctl gmem-tools; do
        d=$(ls "$T"/deb/"${p}"_*.deb 2> /dev/null)
        [[ -f $d ]] || fail "no package $p in $(ls "$T/deb")"
        debs+=("$d")
done

# --- contents -----------------------------------------------------------------------------------
mkdir "$T/x"
for d in "${debs[@]}"; do
        dpkg-deb -x "$d" "$T/x/$(basename "$d" | cut -d_ -f1)"
done
has() { # package path...
        local p=$1
        shift
        for f in "$@"; do
                [[ -e $T/x/$p/$f || -L $T/x/$p/$f ]] || fail "package $p lacks $f: $(cd "$T/x/$p" && find . -type f | head -30 | tr '\n' ' ')"
        done
}
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
unitdir=$(pkg-config --variable=systemdsystemunitdir systemd)
has libgmem0 "usr/lib/$ma/libgmem.so.0" "usr/lib/$ma/libgmem.so.0.2.0"
has libgmem-dev usr/include/gmem/gmem.h "usr/lib/$ma/libgmem.so" "usr/lib/$ma/libgmem.a" "usr/lib/$ma/pkgconfig/libgmem.pc" \
        usr/share/man/man3/libgmem.3.gz
has gmemd usr/sbin/gmemd "$unitdir/gmemd.service" "$unitdir/gmemd.socket" usr/lib/sysusers.d/gmemd.conf \
        usr/lib/tmpfiles.d/gmemd.conf usr/share/dbus-1/system.d/org.gmem.Broker1.conf \
        usr/share/dbus-1/system-services/org.gmem.Broker1.service usr/share/polkit-1/actions/org.gmem.Broker1.policy usr/share/man/man8/gmemd.8.gz \
        usr/share/man/man5/gmemd.json.5.gz usr/share/doc/gmemd/copyright
has gmemctl usr/bin/gmemctl usr/share/man/man1/gmemctl.1.gz usr/share/bash-completion/completions/gmemctl
has gmem-tools usr/libexec/gmem/gmem-bench usr/libexec/gmem/gmem-example-vmm
[[ -z $(find "$T/x" -path '*/usr/bin/gmem-*') ]] || fail "a developer tool is in /usr/bin"
grep -q "^Version: 0\.2$" "$T/x/libgmem-dev/usr/lib/$ma/pkgconfig/libgmem.pc" ||
        fail "libgmem.pc: $(grep Version "$T/x/libgmem-dev/usr/lib/$ma/pkgconfig/libgmem.pc")"
grep -q "^ExecStart=/usr/sbin/gmemd " "$T/x/gmemd/$unitdir/gmemd.service" || fail "gmemd.service does not run /usr/sbin/gmemd"
# no file is in two packages
dups=$(cd "$T/x" && find . -type f | cut -d/ -f3- | sort | uniq -d)
[[ -z $dups ]] || fail "files in more than one package: $dups"
say "contents: every package has its files, none twice, dev tools in /usr/libexec/gmem"

# --- hardening ----------------------------------------------------------------------------------
for b in gmemd/usr/sbin/gmemd gmemctl/usr/bin/gmemctl "libgmem0/usr/lib/$ma/libgmem.so.0.2.0" \
        gmem-tools/usr/libexec/gmem/gmem-bench; do
        f=$T/x/$b
        readelf -h "$f" | grep -q 'Type:.*DYN' || fail "$b is not position-independent"
        readelf -lW "$f" | grep -q GNU_RELRO || fail "$b has no RELRO"
        readelf -dW "$f" | grep -qE 'BIND_NOW|FLAGS.*NOW' || fail "$b is not bind-now (partial RELRO only)"
        ! readelf -dW "$f" | grep -qE 'RPATH|RUNPATH' || fail "$b has an RPATH: $(readelf -dW "$f" | grep -E 'RPATH|RUNPATH')"
        readelf -sW --dyn-syms "$f" | grep -q '__stack_chk_fail' || fail "$b has no stack protector"
done
# fortify: the daemon and the library call the checked variants (_FORTIFY_SOURCE from CPPFLAGS)
for b in gmemd/usr/sbin/gmemd "libgmem0/usr/lib/$ma/libgmem.so.0.2.0"; do
        readelf -sW --dyn-syms "$T/x/$b" | grep -qE '__[a-z]+_chk@' || fail "$b calls no fortified function"
done
say "hardening: PIE, full RELRO, bind-now, stack protector, fortify; no RPATH"

# --- install into a chroot: an overlay of / ----------------------------------------------------
mkdir -p "$T/upper" "$T/work" "$T/root" "$T/pkgs"
cp "${debs[@]}" "$T/pkgs/"
cat > "$T/inside.sh" << 'EOF'
#!/bin/bash
# runs in a private mount namespace: the overlay root, its /proc, /dev, private /run and /tmp
set -eu
T=$1
mount --make-rprivate /
mount -t overlay overlay -o "lowerdir=/,upperdir=$T/upper,workdir=$T/work" "$T/root"
r=$T/root
mount -t proc proc "$r/proc"
mount --rbind /dev "$r/dev"
mount -t tmpfs -o mode=0755 run "$r/run"
mount -t tmpfs -o mode=1777 tmp "$r/tmp"
mkdir -p "$r/pkgs"
mount --bind "$T/pkgs" "$r/pkgs"
# the packages' own group must come from their sysusers.d entry, not from the host
sed -i '/^gmem:/d' "$r/etc/group" "$r/etc/gshadow" 2> /dev/null || true
for p in libgmem0 libgmem-dev gmemd gmemctl gmem-tools; do
        chroot "$r" dpkg --purge "$p" > /dev/null 2>&1 || true
done
exec chroot "$r" /bin/bash /pkgs/steps.sh
EOF
cat > "$T/pkgs/steps.sh" << 'EOF'
#!/bin/bash
# in the chroot
set -u
fail() { echo "FAIL: $*"; exit 1; }
step() { echo "-- $*"; }
export DEBIAN_FRONTEND=noninteractive
step "dpkg -i"
dpkg -i /pkgs/*.deb > /tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -i"; }
for p in libgmem0 libgmem-dev gmemd gmemctl gmem-tools; do
        [[ $(dpkg-query -W -f='${Status}' "$p") == "install ok installed" ]] || fail "$p is not installed"
done
getent group gmem > /dev/null || fail "postinst (sysusers) made no group gmem"
[[ -d /run/gmemd ]] || fail "postinst (tmpfiles) made no /run/gmemd"
[[ -L /etc/systemd/system/sockets.target.wants/gmemd.socket ]] || fail "gmemd.socket is not enabled"
[[ ! -e /etc/systemd/system/multi-user.target.wants/gmemd.service ]] || fail "gmemd.service is enabled by itself"
command -v gmemctl > /dev/null || fail "no gmemctl in PATH"
! command -v gmem-bench > /dev/null || fail "gmem-bench is in PATH"
pkg-config --modversion libgmem | grep -qx 0.2 || fail "pkg-config libgmem: $(pkg-config --modversion libgmem)"
# a program built against the installed library
printf '#include <gmem/gmem.h>\n#include <stdio.h>\nint main(void){puts(gmem_version());return 0;}\n' > /tmp/v.c
cc -o /tmp/v /tmp/v.c $(pkg-config --cflags --libs libgmem) || fail "building against libgmem-dev"
[[ $(/tmp/v) == 0.2 ]] || fail "gmem_version() from the installed library: $(/tmp/v)"

step "socket activation of the installed gmemd, as gmemd.socket names it"
unit=$(pkg-config --variable=systemdsystemunitdir systemd)/gmemd.socket
path=$(sed -n 's/^ListenSequentialPacket=//p' "$unit")
name=$(sed -n 's/^FileDescriptorName=//p' "$unit")
[[ $path == /run/gmemd/gmemd.sock && $name == gmemd ]] || fail "gmemd.socket: $path $name"
systemd-socket-activate --seqpacket -l "$path" --fdname="$name" /usr/sbin/gmemd --bus none > /tmp/gmemd.log 2>&1 &
act=$!
for _ in $(seq 100); do [[ -S $path ]] && break; sleep 0.05; done
[[ -S $path ]] || fail "no socket at $path: $(cat /tmp/gmemd.log)"
head -c 4M /dev/urandom > /tmp/src
gmemctl create deb0 --size 4M --backend memfd || fail "gmemctl create (first connection activates gmemd): $(tail -5 /tmp/gmemd.log)"
gmemctl populate deb0 --from /tmp/src || fail "gmemctl populate"
gmemctl dump deb0 --to /tmp/back || fail "gmemctl dump"
cmp /tmp/src /tmp/back || fail "the region's bytes differ from the source"
gmemctl list | grep -q deb0 || fail "gmemctl list: $(gmemctl list)"
grep -q "serving the socket systemd passed in: $path" /tmp/gmemd.log || fail "gmemd did not take the passed socket: $(cat /tmp/gmemd.log)"
gmemctl release deb0 || fail "gmemctl release"
kill "$act" 2> /dev/null
for _ in $(seq 100); do kill -0 "$act" 2> /dev/null || break; sleep 0.05; done
pkill -f '^/usr/sbin/gmemd --bus none' 2> /dev/null || true

step "reinstall (prerm upgrade, postinst configure with the old version), then purge"
dpkg -i /pkgs/*.deb > /tmp/dpkg2.log 2>&1 || { cat /tmp/dpkg2.log; fail "reinstall"; }
[[ -L /etc/systemd/system/sockets.target.wants/gmemd.socket ]] || fail "gmemd.socket no longer enabled after a reinstall"
dpkg --purge gmem-tools gmemctl gmemd libgmem-dev libgmem0 > /tmp/dpkg3.log 2>&1 || { cat /tmp/dpkg3.log; fail "purge"; }
for f in /usr/sbin/gmemd /usr/bin/gmemctl /usr/lib/*/libgmem.so.0 /usr/include/gmem/gmem.h \
        /etc/systemd/system/sockets.target.wants/gmemd.socket; do
        [[ ! -e $f ]] || fail "$f is still there after purge"
done
echo "-- all steps passed"
EOF
say "dpkg -i into an overlay chroot of / (private mount namespace)"
unshare --mount --propagation private -- /bin/bash "$T/inside.sh" "$T" > "$T/inside.log" 2>&1
rc=$?
cat "$T/inside.log"
[[ $rc == 0 ]] || fail "in the chroot (exit $rc)"
grep -q -- '-- all steps passed' "$T/inside.log" || fail "the chroot's steps did not all run"
# the host saw none of it
for f in /usr/sbin/gmemd /usr/bin/gmemctl; do
        if [[ -e $f ]] && dpkg -S "$f" > /dev/null 2>&1; then
                fail "the host has $f from a package now"
        fi
done
say "installed, activated, served, reinstalled and purged in the chroot; the host untouched"
echo "PASS"
