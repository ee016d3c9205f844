#!/bin/bash
# Build the initramfs make check-kernels boots: one archive with the tree and what it runs on,
# and one per kernel with its KVM modules (the kernel takes the two concatenated).
#
#   mkinitramfs.sh base OUT.cpio.gz TESTS...     busybox, bash, python3, the tools the tests call,
#                                                systemd, every library ldd names, the build and
#                                                the tests
#   mkinitramfs.sh modules OUT.cpio.gz MODDIR    irqbypass, kvm, ccp, kvm-amd, zram and what they need,
#                                                decompressed (busybox insmod takes plain .ko)
#
# Runs from the top of the tree with BUILD set (default build).
set -euo pipefail
# the system's tools, not a user's shims (pyenv and the like)
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
cd "$(dirname "$0")/../.."
top=$(pwd)
BUILD=${BUILD:-build}

mode=${1:?usage: mkinitramfs.sh base|modules OUT ...}
out=${2:?usage: mkinitramfs.sh base|modules OUT ...}
shift 2
root=$(mktemp -d "${TMPDIR:-/tmp}/gmem-initramfs.XXXXXX")
trap 'rm -rf "$root"' EXIT

pack() {
        chmod 0755 "$root"
        (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 > "$out.tmp"
        mv "$out.tmp" "$out"
}

if [[ $mode == modules ]]; then
        moddir=${1:?modules: MODDIR}
        mkdir -p "$root/modules"
        : > "$root/modules/order"
        # kvm-amd and, depth first, the modules it depends on (the depends= of each module's
        # .modinfo: Debian's packages carry no modules.dep, depmod makes it at install time)
        declare -A seen=()
        want() {
                local name=$1 file dep
                [[ -n ${seen[$name]:-} ]] && return 0
                seen[$name]=1
                file=$(find "$moddir/kernel" \( -name "$name.ko" -o -name "$name.ko.*" -o -name "${name//-/_}.ko" \
                        -o -name "${name//-/_}.ko.*" \) | head -n 1)
                [[ -n $file ]] || { echo "mkinitramfs: no module $name in $moddir" >&2; return 1; }
                case $file in
                *.xz) xz -dc "$file" ;;
                *.zst) zstd -qdc "$file" ;;
                *.gz) gzip -dc "$file" ;;
                *) cat "$file" ;;
                esac > "$root/modules/$name.ko"
                for dep in $(tr '\0' '\n' < "$root/modules/$name.ko" | sed -n 's/^depends=//p' | tr ',' ' '); do
                        want "$dep" || return 1
                done
                echo "$name.ko" >> "$root/modules/order"
        }
        want kvm-amd || exit 1
        # a swap device for the torture harness (tests/torture.sh), where the kernel has one to load
        want zram || echo "mkinitramfs: no zram module in $moddir: the torture runs without swap" >&2
        pack
        exit 0
fi

[[ $mode == base ]] || { echo "mkinitramfs: unknown mode $mode" >&2; exit 2; }

# Debian 12 is merged-/usr: the same links inside, files at their real paths.
mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib,usr/lib64,proc,sys,dev,run,etc,root,gmem}
mkdir -m 1777 "$root/tmp"
ln -s usr/bin "$root/bin"
ln -s usr/sbin "$root/sbin"
ln -s usr/lib "$root/lib"
ln -s usr/lib64 "$root/lib64"

copy_file() {
        local f real
        for f in "$@"; do
                real=$(readlink -f "$f")
                # the build's own libraries travel with the tree
                [[ $real == "$top"/* || $real == "$root"/* || -e $root$real ]] && continue
                mkdir -p "$root$(dirname "$real")"
                cp -a "$real" "$root$real"
                # keep the name the program or the loader asks for
                if [[ $f != "$real" && ! -e $root$f ]]; then
                        mkdir -p "$root$(dirname "$f")"
                        ln -s "$real" "$root$f"
                fi
        done
}

copy_with_libs() {
        local f
        for f in "$@"; do
                copy_file "$f"
                # shellcheck disable=SC2046
                copy_file $(ldd "$f" 2>/dev/null | awk '/=> \// { print $3 } /^\t\// { print $1 }')
        done
}

# The tools the tests call (GNU ones where busybox's differ), found on this machine.
tools="bash python3 cmp diff grep sed awk gawk stat truncate head tail seq mktemp id timeout sleep dd wc sort
cut tr env chmod chown ln readlink realpath basename dirname sha256sum od printf tee touch cat cp mv rm
mkdir rmdir ls date kill setpriv nproc uname strace xargs find script mkswap swapon swapoff
unshare nsenter findmnt mount umount hostname jq systemctl systemd-sysusers"
for t in $tools; do
        p=$(command -v "$t" 2>/dev/null) || continue
        [[ $p == /* ]] || continue
        copy_with_libs "$p"
done
# systemd, for the torture harness's restarts of gmemd under it (tests/systemd/lib.sh runs it as
# PID 1 of a namespace; kernels without namespaces or cgroups skip that with the reason)
[[ -x /lib/systemd/systemd ]] && copy_with_libs /lib/systemd/systemd
# python's standard library, without what no test imports
py=$(readlink -f "$(command -v python3)")
pylib=/usr/lib/$(basename "$py")
if [[ -d $pylib ]]; then
        mkdir -p "$root$pylib"
        tar -C "$pylib" --exclude=./test --exclude=./idlelib --exclude=./tkinter --exclude=./ensurepip \
                --exclude=./lib2to3 --exclude=./turtledemo --exclude=./site-packages --exclude=./dist-packages \
                --exclude=./pydoc_data --exclude=./config-\* -cf - . | tar -C "$root$pylib" -xf -
        for so in "$root$pylib"/lib-dynload/*.so; do
                # shellcheck disable=SC2046
                copy_file $(ldd "$so" 2>/dev/null | awk '/=> \// { print $3 }')
        done
fi

# busybox for everything else (mount, insmod, poweroff, ...): applets where no real tool is
bb=$(command -v busybox)
copy_with_libs "$bb"
for a in $("$bb" --list-full); do
        [[ -e $root/$a || -L $root/$a ]] && continue
        d=$(dirname "$a")
        [[ -d $root/$d || -L $root/$d ]] || mkdir -p "$root/$d"
        ln -s "$bb" "$root/$a" 2> /dev/null || true
done

cat > "$root/etc/passwd" <<PW
root:x:0:0:root:/root:/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
PW
cat > "$root/etc/group" <<GR
root:x:0:
nogroup:x:65534:
GR
echo "hosts: files" > "$root/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n' > "$root/etc/hosts"

# the tree: the build, the tests and the scripts they source
cp -a "$BUILD" "$root/gmem/build"
rm -rf "$root/gmem/build/obj" "$root/gmem/build/kernels"
cp -a tests scripts systemd "$root/gmem/"
rm -rf "$root/gmem/tests/kernels/cache"
for t in "$@"; do
        echo "$t"
done > "$root/gmem/kernel-tests.list"
[[ -n ${GMEM_KERNEL_CMD:-} ]] && install -m 0755 "$GMEM_KERNEL_CMD" "$root/gmem/kernel-cmd"
cp tests/kernels/init.sh "$root/init"
chmod 0755 "$root/init"
# every library the build's programs need
for f in "$root"/gmem/build/bin/* "$root"/gmem/build/tests/*; do
        [[ -f $f && -x $f ]] || continue
        # shellcheck disable=SC2046
        copy_file $(ldd "$f" 2>/dev/null | awk '/=> \// { print $3 } /^\t\// { print $1 }')
done
pack
