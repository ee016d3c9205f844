#!/bin/bash
# QEMU on memory that gmemd holds: `gmemctl exec` hands a region's fd to qemu-system-x86_64 as its
# RAM (memory-backend-file,mem-path=/proc/self/fd/{fd:NAME},share=on). The guest is
# guest/multiboot.S: it hashes a range gmemd populated, writes a marker into guest memory and exits
# through isa-debug-exit, which makes QEMU exit (code << 1) | 1: 1 match, 3 mismatch, 5 bad request.
#
#  - memfd: populated random bytes match (1); the marker the guest wrote is in gmemd's region
#    (read back with gmemctl dump); after punching a page the guest sees zeroes there (3), and
#    its hash is exactly the host's hash of the data with that page zeroed.
#  - the same region under TCG when the main run is KVM (the fallback path stays tested).
#  - hugetlb (2 MiB pages), when enough free huge pages exist (run-tests.sh reserves some as root).
#  - secret (memfd_secret): QEMU must fail at start, before the guest runs, saying which
#    /proc/self/fd path it could not open (ENXIO); the same fd works for a program that mmaps it.
#
# Accelerator: KVM when /dev/kvm is usable, TCG otherwise (accel=kvm:tcg lets QEMU fall back
# itself too). PVM (a paravirtual KVM) emulates the guest's 32-bit ring-0 code at ~2 MB/s, so
# under KVM the hashed range is 8 MiB; under TCG (~1 GB/s) it is 24 MiB. GMEM_QEMU_ACCEL and
# GMEM_QEMU_LEN override both; GMEM_QEMU_BIOS the firmware (default qboot.rom when installed:
# it boots in ~0.1 s where SeaBIOS takes ~4.5 s under PVM, and it leaves RAM above 1 MiB alone;
# SeaBIOS uses the top 16 MiB of RAM below 4 GiB while it boots — the range stays below that).
#
# Run from anywhere with BUILD set as for the build (default: build). Exit 0 pass, 77 skip, else fail.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
ctl=$BUILD/bin/gmemctl
gmemd=$BUILD/bin/gmemd
guest=$BUILD/guest/multiboot.elf
qemu=${QEMU:-qemu-system-x86_64}

fail() {
        echo "FAIL: $*"
        [[ -s ${tmp:-}/gmemd.log ]] && sed 's/^/    gmemd: /' "$tmp/gmemd.log" | tail -n 20
        exit 1
}
skip() { echo "$*"; exit 77; }
ok() { echo "ok: $*"; }

[[ -x $ctl ]] || skip "$ctl is not built (make $ctl)"
[[ -x $gmemd ]] || skip "$gmemd is not built (make $gmemd)"
[[ -f $guest ]] || skip "$guest is not built (make $guest)"
command -v "$qemu" > /dev/null || skip "no $qemu here (scripts/setup-deps.sh installs qemu-system-x86)"
for tool in python3 timeout head cmp; do
        command -v "$tool" > /dev/null || skip "no $tool here"
done

MiB=$((1024 * 1024))
RAM=64M                  # guest RAM = region size
GPA=$((16 * MiB))        # the hashed range starts here...
MARK=$((8 * MiB))        # ...and the guest leaves its 32-byte marker here
QEMU_TIMEOUT=${GMEM_QEMU_TIMEOUT:-120}

if [[ -n ${GMEM_QEMU_ACCEL:-} ]]; then
        accel=$GMEM_QEMU_ACCEL
elif [[ -c /dev/kvm && -r /dev/kvm && -w /dev/kvm ]]; then
        accel=kvm:tcg
else
        accel=tcg
fi
if [[ -n ${GMEM_QEMU_LEN:-} ]]; then
        LEN=$GMEM_QEMU_LEN
elif [[ $accel == kvm* ]]; then
        LEN=$((8 * MiB))
else
        LEN=$((24 * MiB))
fi
# SeaBIOS scribbles on [RAM - 16 MiB, RAM) while booting; 64M RAM leaves [16 MiB, 48 MiB)
((LEN > 0 && LEN % 4096 == 0 && GPA + LEN <= 48 * MiB)) || skip "GMEM_QEMU_LEN=$LEN: need a multiple of 4096 up to $((32 * MiB))"
if [[ -n ${GMEM_QEMU_BIOS+set} ]]; then
        bios=$GMEM_QEMU_BIOS
elif [[ -e /usr/share/qemu/qboot.rom ]]; then
        bios=qboot.rom
else
        bios=
fi

tmp=$(mktemp -d /tmp/gmem-check-qemu.XXXXXX)
# shellcheck source=scripts/gmemd-lib.sh
. scripts/gmemd-lib.sh
cleanup() {
        stop_gmemd
        rm -rf "$tmp"
}
trap cleanup EXIT

sock=$tmp/run/gmemd.sock
start_gmemd "$sock" "$tmp/gmemd.log" || fail "gmemd did not start"

g() { "$ctl" --socket "$sock" "$@"; }

# fnv FILE [ZERO_OFF ZERO_LEN]: the guest's hash (FNV-1a over little-endian dwords, as
# minivm_checksum_host()) of FILE, optionally with a byte range zeroed as a punch leaves it
fnv() {
        python3 - "$@" << 'EOF'
import struct, sys
d = bytearray(open(sys.argv[1], "rb").read())
if len(sys.argv) > 3:
    off, n = int(sys.argv[2]), int(sys.argv[3])
    d[off:off + n] = bytes(n)
h = 0x811c9dc5
for (x,) in struct.iter_unpack("<I", d):
    h = ((h ^ x) * 0x01000193) & 0xffffffff
print("0x%08x" % h)
EOF
}

# boot REGION TAG HASH [ACCEL]: QEMU on REGION through gmemctl exec, asked to check [GPA, GPA+LEN)
# against HASH. Sets rc and secs; keeps TAG.serial (COM1) and TAG.err (stderr) in $tmp.
boot() {
        local name=$1 tag=$2 hash=$3 acc=${4:-$accel} t0 t1
        local fw=()
        [[ -n $bios ]] && fw=(-bios "$bios")
        : > "$tmp/$tag.serial"
        t0=$(date +%s%N)
        g exec "$name" -- timeout "$QEMU_TIMEOUT" "$qemu" -nodefaults -no-user-config "${fw[@]}" \
                -machine "pc,accel=$acc,memory-backend=mem0" \
                -object "memory-backend-file,id=mem0,size=$RAM,mem-path=/proc/self/fd/{fd:$name},share=on" \
                -m "$RAM" -kernel "$guest" \
                -append "gpa=$(printf 0x%x $GPA) len=$(printf 0x%x "$LEN") hash=$hash mark=$(printf 0x%x $MARK)" \
                -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
                -display none -serial "file:$tmp/$tag.serial" -no-reboot \
                > "$tmp/$tag.out" 2> "$tmp/$tag.err"
        rc=$?
        t1=$(date +%s%N)
        secs=$(((t1 - t0) / 1000000))
        secs="$((secs / 1000)).$(printf %03d $((secs % 1000)))"
        grep -q 'falling back to tcg' "$tmp/$tag.err" && used=tcg || used=${acc%%:*}
        echo "   $tag: QEMU ($used) exited $rc after $secs s"
}

show_logs() {
        local tag=$1
        echo "    --- serial ($tag) ---"; sed 's/^/    /' "$tmp/$tag.serial"
        echo "    --- stderr ($tag) ---"; sed 's/^/    /' "$tmp/$tag.err"
}

# expect_boot WANT_RC TAG: exit status and the guest's verdict on COM1 (QEMU's own errors exit 1
# too, so status 1 alone does not prove a match)
expect_boot() {
        local want=$1 tag=$2 verdict
        case $want in
        1) verdict=" match" ;;
        3) verdict=" MISMATCH" ;;
        esac
        if ((rc != want)) || ! grep -q "^computed=0x[0-9a-f]*$verdict\$" "$tmp/$tag.serial"; then
                show_logs "$tag"
                fail "$tag: QEMU exited $rc, want $want ($verdict from the guest)"
        fi
}

# marker REGION RESULT COMPUTED EXPECTED: the guest's 32-byte marker, read back through gmemd
marker() {
        g dump "$1" --to "$tmp/mark" --offset "$MARK" --length 32 > /dev/null || fail "dump $1 marker"
        python3 - "$tmp/mark" "$2" "$3" "$4" "$GPA" "$LEN" << 'EOF' || fail "$1: the guest's marker is not in gmemd's region"
import struct, sys
m = open(sys.argv[1], "rb").read()
magic, res, comp, exp, gpa, ln, inv = struct.unpack("<8s6I", m)
want = [int(a, 0) for a in sys.argv[2:7]]
got = [res, comp, exp, gpa, ln]
if magic != b"GMEMBOOT" or got != want or inv != comp ^ 0xffffffff:
    sys.exit("marker %r result=%d computed=0x%08x expected=0x%08x gpa=0x%x len=0x%x inv=0x%08x; want %s" %
             (magic, res, comp, exp, gpa, ln, inv, [hex(x) for x in want]))
EOF
}

echo "accelerator: $accel; range [$(printf 0x%x $GPA), +$((LEN / MiB)) MiB); firmware: ${bios:-QEMU default}"
head -c "$LEN" /dev/urandom > "$tmp/data" || fail "random data"
want=$(fnv "$tmp/data") || fail "host hash"

# ---- memfd: match, marker, punch -> mismatch
g create ram0 --size "$RAM" --backend memfd > /dev/null || fail "create ram0"
g populate ram0 --from "$tmp/data" --offset "$GPA" > /dev/null || fail "populate ram0"
g dump ram0 --to "$tmp/mark0" --offset "$MARK" --length 32 > /dev/null || fail "dump ram0"
cmp -s "$tmp/mark0" <(head -c 32 /dev/zero) || fail "marker area not zero before boot"
boot ram0 memfd "$want"
expect_boot 1 memfd
marker ram0 0 "$want" "$want"
ok "memfd: the guest hashed gmemd's bytes ($want) and its marker is in gmemd's region"

if [[ $accel == kvm* ]]; then
        g punch ram0 --offset "$MARK" --length 4096 > /dev/null || fail "punch ram0 marker"
        boot ram0 memfd-tcg "$want" tcg
        expect_boot 1 memfd-tcg
        marker ram0 0 "$want" "$want"
        ok "memfd under TCG: the same verdict"
fi

# one page in the middle of the range reads back as zeroes after the punch
hole=$((LEN / 2))
g punch ram0 --offset $((GPA + hole)) --length 4096 > /dev/null || fail "punch ram0"
g punch ram0 --offset "$MARK" --length 4096 > /dev/null || fail "punch ram0 marker"
holed=$(fnv "$tmp/data" $hole 4096)
[[ $holed != "$want" ]] || fail "the punched page was all zeroes already"
boot ram0 memfd-punched "$want"
expect_boot 3 memfd-punched
marker ram0 1 "$holed" "$want"
ok "memfd: after punching page $(printf 0x%x $((GPA + hole))) the guest saw zeroes there (computed $holed)"

g release ram0 > /dev/null || fail "release ram0"

# ---- hugetlb with 2 MiB pages, when there are enough free ones
hp_free=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages 2> /dev/null || echo 0)
if ((hp_free >= 64 * MiB / (2 * MiB))); then
        g create huge0 --size "$RAM" --backend hugetlb --page-size 2M > /dev/null || fail "create huge0 ($hp_free free 2 MiB pages)"
        g populate huge0 --from "$tmp/data" --offset "$GPA" > /dev/null || fail "populate huge0"
        boot huge0 hugetlb "$want"
        expect_boot 1 hugetlb
        marker huge0 0 "$want" "$want"
        g release huge0 > /dev/null || fail "release huge0"
        ok "hugetlb (2 MiB pages): match and marker"
else
        echo "note: hugetlb part skipped: $hp_free free 2 MiB huge pages, need 32 (run as root through tests/run-tests.sh)"
fi

# ---- secret: QEMU's mem-path reopens the path, and a secretmem fd cannot be reopened
if g create sec0 --size "$RAM" --backend secret > /dev/null 2> "$tmp/sec.create"; then
        boot sec0 secret 0
        # QEMU's own errors exit 1 like a match; the guest must not have started
        if ((rc == 0 || rc == 3 || rc == 5)) || grep -q "gmem multiboot guest" "$tmp/secret.serial" ||
                ! grep -Eq "/proc/self/fd/[0-9]+.*No such device or address" "$tmp/secret.err"; then
                show_logs secret
                fail "secret: QEMU should fail to open /proc/self/fd/N with ENXIO before the guest runs (exit $rc)"
        fi
        ok "secret: QEMU refuses it: $(grep -m1 -E '/proc/self/fd/' "$tmp/secret.err")"

        # the reason, shown directly, and what works instead: the inherited fd itself, mmapped
        g exec sec0 -- python3 -c '
import errno, mmap, os, sys
fd = int(os.environ["GMEM_FD_SEC0"])
try:
    os.open("/proc/self/fd/%d" % fd, os.O_RDWR)
    sys.exit("reopening a secretmem fd worked")
except OSError as e:
    if e.errno != errno.ENXIO:
        sys.exit("reopen: %s, not ENXIO" % e)
m = mmap.mmap(fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=int(sys.argv[1]))
m[0:8] = b"GMEMSECR"
' "$MARK" > "$tmp/sec.py" 2>&1 || fail "secret: $(cat "$tmp/sec.py")"
        g dump sec0 --to "$tmp/sec.mark" --offset "$MARK" --length 8 > /dev/null || fail "dump sec0"
        [[ $(cat "$tmp/sec.mark") == GMEMSECR ]] || fail "secret: bytes written through the mmapped fd are not in gmemd's region"
        g release sec0 > /dev/null || fail "release sec0"
        ok "secret: /proc/self/fd reopen fails ENXIO; mmap of the inherited fd works"
else
        echo "note: secret part skipped: $(cat "$tmp/sec.create")"
fi

echo "all QEMU checks passed"
