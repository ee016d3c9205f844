#!/bin/bash
# Fetch Debian's kernel packages for make check-kernels and unpack them into a cache; print one
# line per kernel: "NAME<TAB>VMLINUZ<TAB>MODULES_DIR" or "NAME<TAB>SKIP<TAB>reason".
#
# A private apt configuration under the cache (its own sources, lists and archives) adds
# trixie-backports beside bookworm: the system's /etc/apt is never changed. Packages are only
# downloaded (apt-get download) and unpacked with dpkg-deb -x, never installed. What was fetched
# once is reused; `apt-get update` runs again when the lists are older than a day.
#
#   fetch-kernels.sh CACHE_DIR
set -u
cache=${1:?usage: fetch-kernels.sh CACHE_DIR}
mkdir -p "$cache/apt/lists/partial" "$cache/apt/archives/partial" "$cache/debs" "$cache/root"
cache=$(cd "$cache" && pwd)
log=$cache/fetch.log
: > "$log"

mirror=${GMEM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${GMEM_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
kr=/usr/share/keyrings/debian-archive-keyring.gpg
cat > "$cache/apt/sources.list" <<SRC
deb [signed-by=$kr] $mirror bookworm main
deb [signed-by=$kr] $security bookworm-security main
deb [signed-by=$kr] $mirror trixie-backports main
SRC
apt_opts=(-o Dir::Etc::sourcelist="$cache/apt/sources.list" -o Dir::Etc::sourceparts=/nonexistent
        -o Dir::State::Lists="$cache/apt/lists" -o Dir::Cache="$cache/apt"
        -o Dir::State::status=/var/lib/dpkg/status -o APT::Get::List-Cleanup=0
        -o Debug::NoLocking=1 -o APT::Sandbox::User=root -q)

stamp=$cache/apt/lists/.updated
if [[ ! -e $stamp || -n $(find "$stamp" -mmin +1440 2>/dev/null) ]]; then
        if apt-get "${apt_opts[@]}" update >> "$log" 2>&1; then
                touch "$stamp"
        elif [[ ! -e $stamp ]]; then
                echo "fetch-kernels: apt-get update failed (see $log)" >&2
        fi
fi

# newest package whose name matches a pattern (versions sort by the kernel's own numbering)
newest() {
        apt-cache "${apt_opts[@]}" pkgnames 2>/dev/null | grep -E "^$1\$" | sort -V | tail -n 1
}

# download a package into the cache (once) and unpack it into DIR
fetch_unpack() {
        local pkg=$1 dir=$2 deb
        deb=$(ls "$cache/debs/${pkg}_"*.deb 2>/dev/null | sort -V | tail -n 1)
        if [[ -z $deb ]]; then
                (cd "$cache/debs" && apt-get "${apt_opts[@]}" download "$pkg") >> "$log" 2>&1 || return 1
                deb=$(ls "$cache/debs/${pkg}_"*.deb 2>/dev/null | sort -V | tail -n 1)
                [[ -n $deb ]] || return 1
        fi
        if [[ ! -e $dir/.unpacked-$(basename "$deb") ]]; then
                mkdir -p "$dir"
                dpkg-deb -x "$deb" "$dir" >> "$log" 2>&1 || return 1
                touch "$dir/.unpacked-$(basename "$deb")"
        fi
}

# NAME PATTERN [MODULES_PREFIX]: the image package and, from 7.x where Debian splits them, the
# modules package: MODULES_PREFIX + the image package's name after linux-binary-
kernel() {
        local name=$1 pat=$2 modpat=${3:-} pkg modpkg dir vmlinuz moddir
        pkg=$(newest "$pat")
        if [[ -z $pkg ]]; then
                # offline and never fetched: use what the cache has
                pkg=$(ls "$cache/debs" 2>/dev/null | sed -n 's/_.*//p' | grep -E "^$pat\$" | sort -V | tail -n 1)
        fi
        if [[ -z $pkg ]]; then
                printf '%s\tSKIP\tno package matching %s in the archive (apt-get update: see %s)\n' "$name" "$pat" "$log"
                return
        fi
        dir=$cache/root/$pkg
        if ! fetch_unpack "$pkg" "$dir"; then
                printf '%s\tSKIP\tcould not download %s (see %s)\n' "$name" "$pkg" "$log"
                return
        fi
        if [[ -n $modpat ]]; then
                modpkg=$modpat${pkg#linux-binary-}
                if ! fetch_unpack "$modpkg" "$dir"; then
                        printf '%s\tSKIP\tcould not download %s (see %s)\n' "$name" "$modpkg" "$log"
                        return
                fi
        fi
        vmlinuz=$(ls "$dir"/boot/vmlinuz-* "$dir"/usr/lib/modules/*/vmlinuz 2>/dev/null | head -n 1)
        moddir=$(ls -d "$dir"/lib/modules/* "$dir"/usr/lib/modules/* 2>/dev/null | head -n 1)
        if [[ -z $vmlinuz || -z $moddir ]]; then
                printf '%s\tSKIP\t%s has no kernel image or modules\n' "$name" "$pkg"
                return
        fi
        printf '%s\t%s\t%s\n' "$name" "$vmlinuz" "$moddir"
}

kernel debian-6.1 'linux-image-6\.1\.0-[0-9]+-amd64'
kernel debian-6.12 'linux-image-6\.12\.[0-9]+\+deb12-amd64'
kernel debian-6.18 'linux-image-6\.18\.[0-9]+\+deb13-amd64'
kernel debian-7.x 'linux-binary-7\.[0-9]+\.[0-9]+\+deb13-amd64' linux-modules-
