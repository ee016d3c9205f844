#!/bin/bash
# One version, written once in include/gmem/gmem.h (GMEM_VERSION_STRING): everything else that
# states one must agree — libgmem.pc, debian/changelog, NEWS's newest heading, the man pages,
# gmemd --version, gmemctl --version — and the library's file name and the Rust crate's version
# are VERSION.0.
# Exit 0 pass, 77 skip, else fail.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
fail() { echo "FAIL: $*"; exit 1; }
[[ -x $BUILD/bin/gmemd && -x $BUILD/bin/gmemctl ]] || { echo "gmemd and gmemctl are not built"; exit 77; }

v=$(sed -n 's/^#define GMEM_VERSION_STRING "\(.*\)"/\1/p' include/gmem/gmem.h)
[[ $v =~ ^[0-9]+\.[0-9]+$ ]] || fail "gmem.h's version '$v' is not MAJOR.MINOR"
major=$(sed -n 's/^#define GMEM_VERSION_MAJOR //p' include/gmem/gmem.h)
minor=$(sed -n 's/^#define GMEM_VERSION_MINOR //p' include/gmem/gmem.h)
[[ $v == "$major.$minor" ]] || fail "GMEM_VERSION_STRING $v, MAJOR.MINOR $major.$minor"

pc=$(sed -n 's/^Version: //p' "$BUILD/lib/pkgconfig/libgmem.pc")
[[ $pc == "$v" ]] || fail "libgmem.pc says $pc"
[[ -f $BUILD/lib/libgmem.so.$v.0 ]] || fail "no $BUILD/lib/libgmem.so.$v.0: $(ls "$BUILD/lib")"
if [[ -f debian/changelog ]]; then
        d=$(head -n 1 debian/changelog | sed -n 's/^gmem (\([^)]*\)).*/\1/p')
        [[ $d == "$v" ]] || fail "debian/changelog's newest entry is $d"
fi
n=$(grep -m 1 -E '^[0-9]+\.[0-9]+( |$)' NEWS | cut -d' ' -f1)
[[ $n == "$v" ]] || fail "NEWS's newest heading is $n"
for m in man/*.[1-8]; do
        t=$(sed -n 's/^\.TH .*"gmem \([^"]*\)".*/\1/p' "$m")
        [[ $t == "$v" ]] || fail "$m says gmem $t"
done
c=$(sed -n 's/^version = "\(.*\)"/\1/p' bindings/rust/Cargo.toml)
[[ $c == "$v.0" ]] || fail "bindings/rust/Cargo.toml says $c (the crate is $v.0)"
[[ $("$BUILD/bin/gmemd" --version) == "gmemd $v" ]] || fail "gmemd --version: $("$BUILD/bin/gmemd" --version)"
[[ $("$BUILD/bin/gmemctl" --version) == "gmemctl $v (libgmem $v)" ]] || fail "gmemctl --version: $("$BUILD/bin/gmemctl" --version)"
echo "version $v everywhere"
