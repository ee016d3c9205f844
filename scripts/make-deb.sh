#!/bin/bash
# make deb: build gmem's Debian packages from a copy of this tree (dpkg-buildpackage runs
# `debian/rules clean`, which must not touch the tree being worked in), check them with lintian,
# and leave the .debs, the .changes, the .buildinfo and lintian's report in OUT (default build/deb).
# Fails when lintian reports any error or warning, or when debian/changelog's version is not the
# one gmem.h says.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$src/build/deb}
[[ $out == /* ]] || out=$src/$out

version=$(sed -n 's/^#define GMEM_VERSION_STRING "\(.*\)"/\1/p' "$src/include/gmem/gmem.h")
deb_version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
if [[ $deb_version != "$version" ]]; then
        echo "make deb: debian/changelog says $deb_version, include/gmem/gmem.h says $version" >&2
        exit 1
fi

work=$(mktemp -d /tmp/gmem-deb-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/gmem-$version"
# the files of the tree, committed or not, without what .gitignore leaves out (build trees)
if git -C "$src" rev-parse --git-dir > /dev/null 2>&1; then
        (cd "$src" && git ls-files -z -c -o --exclude-standard) |
                (cd "$src" && xargs -0 cp --parents -a -t "$work/gmem-$version" 2> /dev/null || true)
        # deleted but not yet committed files are listed by ls-files -c: skipped above
else
        tar -C "$src" --exclude='./build*' --exclude=./.git -cf - . | tar -C "$work/gmem-$version" -xf -
fi

echo "make deb: dpkg-buildpackage -us -uc -b in $work/gmem-$version"
(cd "$work/gmem-$version" && dpkg-buildpackage -us -uc -b > "$work/build.log" 2>&1) || {
        tail -n 40 "$work/build.log" >&2
        echo "make deb: dpkg-buildpackage failed (the log's end is above)" >&2
        exit 1
}
changes=$(ls "$work"/gmem_"$version"_*.changes)
echo "make deb: lintian $(basename "$changes")"
lintian --info --display-info --pedantic "$changes" > "$work/lintian.txt" 2>&1 || true

mkdir -p "$out"
rm -f "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo
cp "$work"/*.deb "$changes" "$work"/*.buildinfo "$work/lintian.txt" "$work/build.log" "$out/"
for d in "$out"/*.deb; do
        echo "  $(basename "$d")"
done
if grep -E '^[EW]: ' "$work/lintian.txt" >&2; then
        echo "make deb: lintian reports the errors and warnings above (all of it in $out/lintian.txt)" >&2
        exit 1
fi
echo "make deb: lintian: no error, no warning ($(grep -c '^[IPX]: ' "$work/lintian.txt" || true) informational tags, in $out/lintian.txt)"
echo "make deb: the packages are in $out"
