#!/bin/bash
# gmemctl against a real gmemd on a private socket: every command, its human and --json output,
# data round trips checked with cmp, exec's fd hand-over, Ctrl-C cancelling a job, and the error
# contract (exit 1 with exactly one line on stderr; usage errors exit 2).
# Run from anywhere with BUILD set as for the build (default: build). Exit 0 pass, 77 skip, else fail.
set -uo pipefail

cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ctl=$BUILD/bin/gmemctl
gmemd=$BUILD/bin/gmemd

fail() { echo "FAIL: $*"; [[ -s ${tmp:-}/gmemd.log ]] && sed 's/^/    gmemd: /' "$tmp/gmemd.log" | tail -n 20; exit 1; }
skip() { echo "$*"; exit 77; }
ok() { echo "ok: $*"; }

[[ -x $ctl ]] || skip "$ctl is not built (make $ctl)"
[[ -x $gmemd ]] || skip "$gmemd is not built (make $gmemd)"
for tool in python3 cmp truncate head; do
        command -v "$tool" > /dev/null || skip "no $tool here"
done

tmp=$(mktemp -d /tmp/gmem-check-gmemctl.XXXXXX)
# shellcheck source=scripts/gmemd-lib.sh
. scripts/gmemd-lib.sh
cleanup() {
        stop_gmemd
        [[ -n ${watch_pid:-} ]] && kill "$watch_pid" 2> /dev/null
        rm -rf "$tmp"
}
trap cleanup EXIT

# gmemd creates the socket's directory itself
sock=$tmp/run/gmemd.sock
start_gmemd "$sock" "$tmp/gmemd.log" || fail "gmemd did not start"
pid=$GMEMD_PID

g() { "$ctl" --socket "$sock" "$@"; }

# run CMD...; it must exit with $1; failures must say exactly one line on stderr
expect() {
        local want=$1 rc lines
        shift
        "$@" > "$tmp/out" 2> "$tmp/err"
        rc=$?
        ((rc == want)) || fail "'$*' exited $rc, not $want; stderr: $(cat "$tmp/err")"
        if ((want != 0)); then
                lines=$(wc -l < "$tmp/err")
                ((lines == 1)) || fail "'$*' wrote $lines lines to stderr, not 1: $(cat "$tmp/err")"
                [[ $(cat "$tmp/err") == gmemctl:* ]] || fail "'$*': stderr does not start with 'gmemctl:': $(cat "$tmp/err")"
        fi
}

# jcheck EXPR CMD...: CMD prints JSON; the python expression EXPR over it (as `j`) must be true
jcheck() {
        local expr=$1
        shift
        "$@" > "$tmp/json" 2> "$tmp/json.err" || fail "'$*' failed: $(cat "$tmp/json.err")"
        python3 -c 'import json, sys
j = json.load(open(sys.argv[2]))
if not eval(sys.argv[1], {"j": j}):
    sys.exit("false: " + sys.argv[1] + "\n    got: " + json.dumps(j)[:600])' "$expr" "$tmp/json" ||
                fail "JSON check failed for '$*'"
}

# cmp a byte range of two files: range_eq FILE1 OFF1 FILE2 OFF2 LEN
range_eq() {
        cmp -s -i "$2:$4" -n "$5" "$1" "$3" || fail "bytes $2+$5 of $1 differ from $4+$5 of $3"
}

MiB=$((1024 * 1024))

# --- create, list, info ------------------------------------------------------------------------
expect 0 g create ram0 --size 64M
expect 0 g create ram1 --size 1.5M --backend memfd --policy keep
expect 0 g create vm-1.a --size 2MiB
expect 0 g create sec --size 4096K --backend secret
ok "create with suffix sizes"

expect 0 g list
grep -qE '^NAME +BACKEND +SIZE +RESIDENT +OWNER +STATE +HOLDERS$' "$tmp/out" || fail "list header: $(head -n 1 "$tmp/out")"
grep -qE '^ram0 +memfd +64M +0B +[a-z0-9_]+ +empty ' "$tmp/out" || fail "list row for ram0: $(cat "$tmp/out")"
grep -qE '^ram1 +memfd +1\.5M ' "$tmp/out" || fail "list row for ram1: $(cat "$tmp/out")"
grep -qE '^sec +secret +4M ' "$tmp/out" || fail "list row for sec: $(cat "$tmp/out")"
[[ $(wc -l < "$tmp/out") == 5 ]] || fail "list has $(wc -l < "$tmp/out") lines, not 5"
# columns line up: SIZE is right-aligned under its header
h=$(head -n 1 "$tmp/out")
prefix=${h%%SIZE*}
end=$((${#prefix} + 4))
while IFS= read -r row; do
        [[ ${row:end-1:1} != " " ]] || fail "SIZE column not aligned in: '$row'"
done < <(tail -n +2 "$tmp/out")
ok "list table"

jcheck "list(j) == ['regions'] and sorted(r['name'] for r in j['regions']) == ['ram0', 'ram1', 'sec', 'vm-1.a']" g --json list
jcheck "[r['size'] for r in j['regions'] if r['name'] == 'ram1'] == [1572864]" g list --json
jcheck "all(r['owner_uid'] == $(id -u) and r['state'] == 'empty' for r in j['regions'])" g --json list
ok "list --json"

expect 0 g info ram0
grep -qE '^size: +64M \(67108864 bytes\)$' "$tmp/out" || fail "info size line: $(cat "$tmp/out")"
grep -qE '^backend: +memfd$' "$tmp/out" || fail "info backend line"
grep -qE '^state: +empty$' "$tmp/out" || fail "info state line"
jcheck "j['name'] == 'ram0' and j['size'] == 64 * $MiB and j['backend'] == 'memfd' and j['policy'] == 'keep'" g --json info ram0
jcheck "j['backend'] == 'secret' and j['size'] == 4 * $MiB" g --json info sec
ok "info"

# --- populate, dump, punch -------------------------------------------------------------------
len=$((10 * MiB + 123))
head -c "$len" /dev/urandom > "$tmp/src"
expect 0 g populate ram0 --from "$tmp/src"
expect 0 g dump ram0 --to "$tmp/out.bin"
[[ $(stat -c %s "$tmp/out.bin") == $((64 * MiB)) ]] || fail "dump file is $(stat -c %s "$tmp/out.bin") bytes"
[[ $(stat -c %a "$tmp/out.bin") == 600 ]] || fail "dump file mode is $(stat -c %a "$tmp/out.bin"), not 600"
cmp -n "$len" "$tmp/src" "$tmp/out.bin" || fail "dump differs from the populated file"
cmp -s -i "$len:0" -n $((64 * MiB - len)) "$tmp/out.bin" /dev/zero || fail "dump is not zero after the populated bytes"
jcheck "j['state'] == 'populated' and j['populated_bytes'] >= $len" g --json info ram0
ok "populate from a file and dump it back"

# --- snapshot, restore ----------------------------------------------------------------------
jcheck "j['bytes'] >= $len and j['bytes'] < $len + 2 * $MiB" g --json snapshot ram0 --to "$tmp/ram0.snap"
[[ $(stat -c %a "$tmp/ram0.snap") == 600 ]] || fail "snapshot file mode is $(stat -c %a "$tmp/ram0.snap"), not 600"
(( $(stat -c %b "$tmp/ram0.snap") * 512 < 20 * MiB )) || fail "the snapshot of 10M in a 64M region is not sparse"
jcheck "j['name'] == 'ram0r' and j['size'] == 64 * $MiB and j['state'] == 'populated'" g --json restore ram0r --from "$tmp/ram0.snap"
expect 0 g dump ram0r --to "$tmp/out2.bin"
cmp "$tmp/out.bin" "$tmp/out2.bin" || fail "the restored region differs from the one snapshotted"
expect 0 g release ram0r
# a damaged snapshot: one line naming what is wrong, and no region
cp "$tmp/ram0.snap" "$tmp/bad.snap"
printf 'X' | dd of="$tmp/bad.snap" bs=1 seek=$((4096 + 4096)) conv=notrunc status=none
expect 1 g restore ram0r --from "$tmp/bad.snap"
grep -q "checksum" "$tmp/err" || fail "a damaged snapshot is not refused for its checksum: $(cat "$tmp/err")"
expect 1 g info ram0r
expect 1 g restore ram0r --from "$tmp/src"
grep -q "not a gmem snapshot" "$tmp/err" || fail "a file that is no snapshot: $(cat "$tmp/err")"
# gmemd's words name the file the user gave, never gmemd's own fd number
grep -q "snapshot '$tmp/src': not a gmem snapshot" "$tmp/err" && ! grep -q "fd [0-9]" "$tmp/err" ||
        fail "the error does not name the user's file: $(cat "$tmp/err")"
expect 1 g dump ram0 --to /dev/full --length 4K
grep -q "destination '/dev/full' is not a seekable file" "$tmp/err" && ! grep -q "fd [0-9]" "$tmp/err" ||
        fail "dump's error does not name the user's file: $(cat "$tmp/err")"
expect 1 g restore ram0r --from "$tmp/no-such-file"
grep -q "no-such-file" "$tmp/err" || fail "a missing snapshot file is not named: $(cat "$tmp/err")"
expect 2 g restore ram0r
ok "snapshot to a sparse file, restore it, refuse a damaged one"

# --- firecracker: the socket is made here and handed over; gmemd waits for the VM (the page
# serving itself is tested in test-client and test-firecracker, which play Firecracker's part)
jcheck "j['job'] > 0 and j['vm'] == 'fc1' and j['listen'] == '$tmp/fc.sock'" \
        g --json firecracker fc1 --listen "$tmp/fc.sock" --from "$tmp/ram0.snap" --timeout 1
[[ -S $tmp/fc.sock ]] || fail "firecracker: no socket at $tmp/fc.sock"
expect 1 g firecracker fc2 --listen "$tmp/fc.sock" --from "$tmp/ram0.snap"
grep -q "bind '$tmp/fc.sock'" "$tmp/err" || fail "firecracker on a path that exists: $(cat "$tmp/err")"
expect 1 g firecracker fc2 --listen "$tmp/fc2.sock" --from "$tmp/src"
grep -q "not a gmem snapshot" "$tmp/err" || fail "firecracker from a file that is no snapshot: $(cat "$tmp/err")"
[[ ! -e $tmp/fc2.sock ]] || fail "firecracker left its socket behind after a refusal"
expect 1 g firecracker fc2 --listen "$tmp/fc2.sock" --from "$tmp/no-such-file"
grep -q "no-such-file" "$tmp/err" || fail "firecracker: a missing memory file is not named: $(cat "$tmp/err")"
expect 2 g firecracker fc2 --from "$tmp/src"
expect 2 g firecracker fc2 --listen "$tmp/fc2.sock" --from "$tmp/src" --timeout 0
rm -f "$tmp/fc.sock"
ok "firecracker: hands a socket it made to gmemd, refuses what cannot be served"

# offsets: 8K of the source from 4K on, into the region at 1M
expect 0 g populate ram1 --from "$tmp/src" --offset 1M --src-offset 4K --length 8K
expect 0 g dump ram1 --to "$tmp/ram1.bin" --offset 1M --length 16K
range_eq "$tmp/ram1.bin" 0 "$tmp/src" 4096 8192
cmp -s -i 8192:0 -n 8192 "$tmp/ram1.bin" /dev/zero || fail "ram1 not zero after its populated range"
[[ $(stat -c %s "$tmp/ram1.bin") == 16384 ]] || fail "partial dump file is $(stat -c %s "$tmp/ram1.bin") bytes"
# an image larger than the room is refused, nothing copied: 10M of source into a 1.5M region
expect 1 g populate ram1 --from "$tmp/src"
grep -q -- "--clip" "$tmp/err" || fail "the refusal does not say how to clip: $(cat "$tmp/err")"
expect 0 g dump ram1 --to "$tmp/ram1.bin"
cmp -s -n $((1024 * 1024)) "$tmp/ram1.bin" /dev/zero || fail "a refused populate wrote into ram1"
# ... unless asked to clip, which says what it left out
expect 0 g populate ram1 --from "$tmp/src" --clip
grep -q "left out" "$tmp/err" || fail "--clip does not say what it left out: $(cat "$tmp/err")"
expect 0 g dump ram1 --to "$tmp/ram1.bin"
cmp -n $((1536 * 1024)) "$tmp/src" "$tmp/ram1.bin" || fail "clipped populate differs"
ok "populate and dump with offsets and lengths; an image too large is refused unless --clip"

expect 0 g punch ram0 --offset 4K --length 4K
expect 0 g dump ram0 --to "$tmp/punched.bin"
range_eq "$tmp/punched.bin" 0 "$tmp/src" 0 4096
cmp -s -i 4096:0 -n 4096 "$tmp/punched.bin" /dev/zero || fail "the punched page does not read back as zeroes"
range_eq "$tmp/punched.bin" 8192 "$tmp/src" 8192 $((len - 8192))
ok "punch"

expect 0 g prefault vm-1.a
expect 0 g prefault ram0 --offset 16M --length 4M
jcheck "j['resident_bytes'] == 2 * $MiB" g --json info vm-1.a
ok "prefault"

# --- grant, revoke -------------------------------------------------------------------------------
expect 0 g grant ram0 --uid 1234
expect 0 g grant ram0 --gid 4321
jcheck "j['grants']['uids'] == [1234] and j['grants']['gids'] == [4321]" g --json info ram0
expect 0 g revoke ram0 --uid 1234
jcheck "j['grants']['uids'] == [] and j['grants']['gids'] == [4321]" g --json info ram0
expect 2 g grant ram0
expect 2 g grant ram0 --uid 1 --gid 1
ok "grant and revoke"

# --- exec ----------------------------------------------------------------------------------------
expect 0 g exec ram0 -- sh -c 'test -e /proc/self/fd/$GMEM_FD_RAM0 && readlink /proc/self/fd/{fd:ram0}'
grep -q '^/memfd:' "$tmp/out" || fail "exec: the child's fd is not a memfd: $(cat "$tmp/out")"
expect 0 g exec ram0 vm-1.a -- sh -c 'echo "$GMEM_FD_RAM0 $GMEM_FD_VM_1_A {fd:ram0} {fd:vm-1.a}"'
read -r e1 e2 a1 a2 < "$tmp/out"
[[ -n $e1 && -n $e2 && $e1 == "$a1" && $e2 == "$a2" && $e1 != "$e2" ]] || fail "exec: env and {fd:} disagree: $(cat "$tmp/out")"
# the child reads what was populated through its inherited fd
expect 0 g exec ram0 -- sh -c 'head -c 4096 /proc/self/fd/$GMEM_FD_RAM0'
cmp -s -n 4096 "$tmp/out" "$tmp/src" || fail "exec: the child does not see the region's data"
expect 127 g exec ram0 -- /nonexistent/program
expect 1 g exec nosuch -- true
expect 2 g exec ram0 -- echo '{fd:other}'
expect 2 g exec ram0
ok "exec"

# --- watch -----------------------------------------------------------------------------------------
g watch > "$tmp/events" 2> "$tmp/watch.err" &
watch_pid=$!
sleep 0.3
expect 0 g create w1 --size 1M
expect 0 g release w1
for _ in $(seq 100); do
        grep -q '"region-removed"' "$tmp/events" && break
        sleep 0.05
done
kill "$watch_pid"
wait "$watch_pid" 2> /dev/null
watch_pid=
python3 -c "import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
names = [(e['event'], e.get('region')) for e in ev]
assert ('region-added', 'w1') in names and ('region-removed', 'w1') in names, names" "$tmp/events" ||
        fail "watch did not print the events as JSON lines: $(cat "$tmp/events")"
ok "watch"

# --- release -------------------------------------------------------------------------------------
expect 0 g release ram1
expect 1 g info ram1
[[ $(cat "$tmp/err") == "gmemctl: info ram1: "* ]] || fail "error line: $(cat "$tmp/err")"
jcheck "'ram1' not in [r['name'] for r in j['regions']]" g --json list
ok "release"

# --- Ctrl-C cancels a running job ---------------------------------------------------------------
# 4 GiB from a sparse file (a quarter of RAM where that is less: gmemd's default limit is the
# machine's RAM): long enough to be caught running; SIGINT once gmemd says it is populating
big_mib=$(awk '/^MemTotal:/ { m = int($2 / 1024 / 4); print (m < 4096 ? m : 4096) }' /proc/meminfo)
truncate -s "${big_mib}M" "$tmp/sparse"
expect 0 g create big --size "${big_mib}M"
# gmemctl itself must get the signal, with SIGINT not ignored (as a shell's background job has it)
python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])' "$ctl" --socket "$sock" populate big --from "$tmp/sparse" 2> "$tmp/cancel.err" &
job=$!
for _ in $(seq 500); do
        g --json info big > "$tmp/state.json" 2> /dev/null
        grep -q '"state":"populating"' "$tmp/state.json" && break
        kill -0 "$job" 2> /dev/null || break
        sleep 0.01
done
sleep 0.05
kill -INT "$job" 2> /dev/null
wait "$job"
rc=$?
if ((rc == 0)); then
        echo "note: the ${big_mib} MiB populate finished before Ctrl-C reached it; cancellation not exercised"
else
        ((rc == 130)) || fail "populate after SIGINT exited $rc, not 130: $(cat "$tmp/cancel.err")"
        [[ $(cat "$tmp/cancel.err") == "gmemctl: populate big: cancelled" ]] || fail "cancel message: $(cat "$tmp/cancel.err")"
        jcheck "j['state'] != 'populating' and j['jobs'] == []" g --json info big
        ok "SIGINT cancels a populate (exit 130)"
fi
expect 0 g release big

# --- progress bar on a terminal --------------------------------------------------------------------
if command -v script > /dev/null; then
        expect 0 g create tty0 --size 256M
        script -qec "$ctl --socket $sock populate tty0 --from $tmp/sparse --length 256M" /dev/null > "$tmp/tty" ||
                fail "populate on a pseudo-terminal failed: $(cat "$tmp/tty")"
        grep -q 'populate tty0 \[' "$tmp/tty" && grep -q '%' "$tmp/tty" ||
                fail "no progress bar on a terminal: $(cat -v "$tmp/tty" | head -c 300)"
        # one size notation: the bar writes sizes as the table does ("256M"), rates too
        size=$("$ctl" --socket "$sock" --no-legend list | awk '$1 == "tty0" { print $3 }')
        [[ $size == 256M ]] || fail "the table writes 256 MiB as '$size'"
        tr '\r' '\n' < "$tmp/tty" | grep -qE "100%  $size/$size  [0-9]+(\.[0-9])?[BKMGTPE]/s" ||
                fail "the progress bar's sizes are not the table's: $(tr '\r' '\n' < "$tmp/tty" | cat -v | tail -n 2)"
        # and none when stderr is not one
        expect 0 g populate tty0 --from "$tmp/sparse" --length 64M
        [[ ! -s $tmp/err ]] || fail "progress output on a non-terminal: $(cat -v "$tmp/err" | head -c 200)"
        ok "progress bar on a terminal only"
fi

# --- errors ----------------------------------------------------------------------------------------
expect 1 g info missing
[[ $(cat "$tmp/err") == "gmemctl: info missing: "* ]] || fail "error line: $(cat "$tmp/err")"
expect 1 g release missing
expect 1 g populate missing --from "$tmp/src"
expect 1 g populate ram0 --from "$tmp/does-not-exist"
expect 1 g create ram0 --size 1M
expect 1 g punch ram0 --offset 1 --length 4K
expect 1 g cancel 999999
expect 2 g create bad --size 12Q
expect 2 g create bad --size ''
expect 2 g create bad --size 1.5.5G
expect 2 g create bad --size 99999999999T
expect 2 g create bad
expect 2 g create bad --size 1M --backend floppy
expect 2 g populate ram0
expect 2 g punch ram0 --offset 0
expect 2 g info
expect 2 g info a b
expect 2 g list --bogus
expect 2 g frobnicate
expect 2 "$ctl"
expect 1 "$ctl" --socket "$tmp/none.sock" list
[[ $(cat "$tmp/err") == "gmemctl: list: connect to gmemd at '$tmp/none.sock': "* ]] || fail "connect error: $(cat "$tmp/err")"
ok "errors: exit 1 or 2 with one line"

# --version, help, COMMAND --help: exit 0 with the synopsis on stdout; global flags anywhere
expect 0 "$ctl" --version
# (the kernel VMs run this without the source tree: there the form only; check-version.sh
# compares the number with gmem.h)
[[ $(cat "$tmp/out") =~ ^gmemctl\ ([0-9]+\.[0-9]+)\ \(libgmem\ ([0-9]+\.[0-9]+)\)$ ]] || fail "--version: $(cat "$tmp/out")"
if [[ -f include/gmem/gmem.h ]]; then
        [[ ${BASH_REMATCH[1]} == $(sed -n 's/^#define GMEM_VERSION_STRING "\(.*\)"/\1/p' include/gmem/gmem.h) ]] ||
                fail "--version: $(cat "$tmp/out") is not gmem.h's"
fi
expect 0 "$ctl" --help
grep -q '^usage: gmemctl' "$tmp/out" || fail "--help: $(head -2 "$tmp/out")"
expect 0 "$ctl" help
grep -q '^  create ' "$tmp/out" || fail "help: no command list"
for c in create list populate dump snapshot restore firecracker exec; do
        expect 0 "$ctl" help "$c"
        grep -q "^usage: gmemctl .* $c" "$tmp/out" || fail "help $c: $(head -1 "$tmp/out")"
        cp "$tmp/out" "$tmp/help.$c"
        expect 0 "$ctl" "$c" --help
        cmp -s "$tmp/out" "$tmp/help.$c" || fail "$c --help differs from help $c"
        expect 0 "$ctl" "$c" -h
done
expect 2 "$ctl" help frobnicate
expect 2 "$ctl" help create list
# -j / --json after the command, as the man page allows; the socket too
jcheck 'any(r["name"] == "ram0" for r in j["regions"])' "$ctl" list -j --socket "$sock"
jcheck 'j["name"] == "ram0"' "$ctl" info ram0 --json --socket "$sock"
# a "--" ends them: exec's command keeps its own -j and --help
expect 0 g exec ram0 -- echo -j --help
[[ $(cat "$tmp/out") == "-j --help" ]] || fail "exec's command lost its arguments: $(cat "$tmp/out")"
ok "--version, help, COMMAND --help, global flags anywhere"

# every command that changes something says what it did as one JSON object under --json
head -c 1M /dev/urandom > "$tmp/js.src"
jcheck 'j["name"] == "js0"' g create js0 --size 2M --json
jcheck 'j == {"region": "js0", "offset": 4096, "bytes": 1048576, "from": "'"$tmp/js.src"'"}' g populate js0 --from "$tmp/js.src" --offset 4K --json
jcheck 'j["region"] == "js0" and j["offset"] == 0 and "bytes" not in j' g prefault js0 -j
jcheck 'j == {"region": "js0", "offset": 8192, "bytes": 4096}' g punch js0 --offset 8K --length 4K --json
jcheck 'j["region"] == "js0" and j["file"].endswith("js \"q\".bin")' g dump js0 --to "$tmp/js \"q\".bin" --json
jcheck 'j == {"region": "js0", "released": True}' g release js0 --json
ok "--json: one object from every command"
g list > "$tmp/legend"
g list --no-legend > "$tmp/nolegend"
[[ $(head -1 "$tmp/legend") == NAME* ]] || fail "list has no header: $(head -1 "$tmp/legend")"
diff <(tail -n +2 "$tmp/legend") "$tmp/nolegend" > /dev/null || fail "--no-legend is not the table without its header"
ok "--no-legend"

kill -0 "$pid" || fail "gmemd died during the test"
echo "all gmemctl checks passed"
