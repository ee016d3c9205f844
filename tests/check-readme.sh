#!/bin/bash
# The README's C example compiles and links against the library as built.
set -euo pipefail
BUILD=${BUILD:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk '/^```c$/ { on = 1; next } /^```$/ { on = 0 } on' README.md > "$tmp/example.c"
[[ -s $tmp/example.c ]] || { echo "no C example in README.md"; exit 1; }
cat >> "$tmp/example.c" <<'C'
int main(void) { return load_guest(-1, -1, 0, 0) == -EINVAL ? 0 : 1; }
C
sed -i '1i #include <errno.h>' "$tmp/example.c"
# TEST_LDFLAGS: the sanitizers, when the library was built with them (make asan)
cc -std=gnu11 -Wall -Wextra -Werror -Iinclude "$tmp/example.c" -o "$tmp/example" ${TEST_LDFLAGS:-} -L"$BUILD/lib" -lgmem
# a VM fd of -1 must be refused cleanly, without touching anything
LD_LIBRARY_PATH="$BUILD/lib" "$tmp/example"
