#!/bin/bash
# The Rust binding (bindings/rust): its raw declarations (src/sys.rs) in step with gmem.h — every
# fn there exists in the header with the same parameter and return types, every constant has the
# header's value — and its tests, `cargo test --offline` against this build's libgmem and gmemd
# (regions, errors, a client of a real gmemd, a real KVM guest running on a Region). SKIP without
# cargo. Exit 0 pass, 77 skip, else fail.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src"
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$src/$BUILD
fail() { echo "FAIL: $*"; exit 1; }
cargo=$(command -v cargo || true)
[[ -z $cargo && -x $HOME/.cargo/bin/cargo ]] && cargo=$HOME/.cargo/bin/cargo
[[ -n $cargo ]] || { echo "no cargo here: the Rust binding is not tested"; exit 77; }
[[ -f $BUILD/lib/libgmem.so.0 ]] || { echo "libgmem is not built in $BUILD"; exit 77; }
T=$(mktemp -d /tmp/gmem-rust-XXXXXX) || exit 1
trap 'rm -rf "$T"' EXIT

# --- sys.rs against gmem.h ---------------------------------------------------------------------
${CC:-cc} -E -P -Iinclude include/gmem/gmem.h > "$T/gmem.i" || fail "preprocess gmem.h"
python3 - bindings/rust/src/sys.rs "$T/gmem.i" "$T/consts.c" << 'PY' || fail "src/sys.rs is out of step with gmem.h"
import re, sys
rs = open(sys.argv[1]).read()
h = re.sub(r"\s+", " ", open(sys.argv[2]).read())

def c_type(t):
    t = re.sub(r"\s+", " ", t.strip()).replace(" *", "*").replace("* ", "*")
    const = t.startswith("const ")
    if const:
        t = t[6:]
    stars = t.count("*")
    base = t.replace("*", "").strip()
    base = {"int": "c_int", "unsigned": "c_uint", "unsigned int": "c_uint", "uint64_t": "u64", "int64_t": "i64",
            "uint32_t": "u32", "int32_t": "i32", "size_t": "usize", "bool": "bool", "char": "c_char",
            "void": "c_void" if stars else "()"}.get(base, base)
    base = re.sub(r"^(struct|enum) ", "", base)
    if stars == 0:
        return base
    # the innermost pointer carries the const: "const char **" is *mut *const c_char
    out = ("*const " if const else "*mut ") + base
    for _ in range(stars - 1):
        out = "*mut " + out
    return out

def c_param(p):
    p = p.strip()
    if p in ("void", ""):
        return None
    m = re.match(r"(.*?)([A-Za-z_][A-Za-z0-9_]*)$", p)  # drop the name
    return c_type(m.group(1) if m and m.group(1).strip() else p)

def rs_type(t):
    return re.sub(r"\s+", " ", t.strip())

bad, n = [], 0
for m in re.finditer(r"pub fn (\w+)\((.*?)\)(?:\s*->\s*([^;]+))?;", rs, re.S):
    name, params, ret = m.group(1), m.group(2), m.group(3) or "()"
    if not name.startswith("gmem_"):
        continue
    n += 1
    d = re.search(r"([A-Za-z_][A-Za-z0-9_ \*]*?)\b" + name + r" ?\(([^)]*)\) ?;", h)
    if not d:
        bad.append(f"{name}: not declared in gmem.h")
        continue
    c_ret = c_type(d.group(1))
    c_params = [x for x in (c_param(p) for p in d.group(2).split(",")) if x]
    r_params = [rs_type(p.split(":", 1)[1]) for p in params.split(",") if ":" in p]
    if c_ret != rs_type(ret):
        bad.append(f"{name}: returns {d.group(1).strip()} ({c_ret}), sys.rs says {rs_type(ret)}")
    if c_params != r_params:
        bad.append(f"{name}: takes ({', '.join(c_params)}) in gmem.h, ({', '.join(r_params)}) in sys.rs")
declared = set(re.findall(r"\b(gmem_[a-z0-9_]+) ?\(", h))
bound = set(re.findall(r"pub fn (gmem_\w+)", rs))
consts = re.findall(r"pub const (GMEM_\w+): \w+ = (-?[0-9a-fx_]+);", rs)
with open(sys.argv[3], "w") as f:
    f.write('#include <stdio.h>\n#include "gmem/gmem.h"\nint main(void) {\n')
    for c, v in consts:
        f.write(f'  if ((long long) ({c}) != (long long) ({v.replace("_", "")}ULL)) {{ printf("{c} is %lld in gmem.h, {v} in sys.rs\\n", (long long) ({c})); return 1; }}\n')
    f.write("  return 0;\n}\n")
for b in bad:
    print(b)
print(f"sys.rs: {n} functions checked against gmem.h ({len(declared - bound)} of its {len(declared)} not bound), {len(consts)} constants")
sys.exit(1 if bad or n == 0 else 0)
PY
${CC:-cc} -Iinclude -o "$T/consts" "$T/consts.c" && "$T/consts" || fail "a constant of src/sys.rs differs from gmem.h"

# --- cargo test ---------------------------------------------------------------------------------
GMEM_LIB_DIR=$BUILD/lib GMEM_BUILD=$BUILD CARGO_TARGET_DIR=$BUILD/rust \
        "$cargo" test --offline --manifest-path bindings/rust/Cargo.toml > "$T/cargo.log" 2>&1 || {
        tail -n 40 "$T/cargo.log"
        fail "cargo test --offline"
}
grep -E '^test result:|SKIP' "$T/cargo.log"
grep -q 'a_real_guest_reads_its_memory_through_the_binding ... ok' "$T/cargo.log" || fail "the guest test did not run"
if [[ -c /dev/kvm ]] && grep -q 'SKIP: no usable /dev/kvm' "$T/cargo.log"; then
        fail "/dev/kvm is here but the guest test skipped"
fi
echo "ok: the Rust binding"
