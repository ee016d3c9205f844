#!/bin/bash
# gmemd's D-Bus API (docs/dbus.md) on a private dbus-daemon that runs the project's own policy
# (dbus/test-bus.conf includes dbus/org.gmem.Broker1.conf), driven with the real busctl, gdbus and,
# where a returned fd must be used, python3-dbus:
#  - introspection of the manager, a region and a job matches dbus/org.gmem.Broker1.xml
#  - list, create (also with prefault), get, properties, the node enumerator, name escaping
#  - populate and dump with fds passed over the bus, JobProgress/JobFinished/PropertiesChanged,
#    content checked through the socket (gmemctl dump) and through the fd OpenRegion returns
#  - punch, prefault, register, grant/revoke by uid and by gid (groups as the bus daemon reports
#    them), Job.Cancel and CancelJob, release (also under a running job), GetCapabilities
#  - named errors for every failure; other uids: the bus policy stops callers outside group gmem
#    (they may still read properties), gmemd's own checks stop gmem members on others' regions
#  - a second gmemd, a bad address, no bus, a non-root owner: clear start-up errors
#  - a stopped bus does not stop the socket, and the signals queued meanwhile all arrive in order
#  - gmemd survives the bus going away
# Needs root (other uids, group gmem). Exit 0 pass, 77 skip, else fail. BUILD as for the build.
set -uo pipefail

cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
gmemd=$BUILD/bin/gmemd
ctl=$BUILD/bin/gmemctl
top=$PWD

fail() {
        echo "FAIL: $*"
        [[ -s ${tmp:-}/gmemd.log ]] && sed 's/^/    gmemd: /' "$tmp/gmemd.log" | tail -n 25
        [[ -s ${tmp:-}/signals ]] && sed 's/^/    signal: /' "$tmp/signals" | tail -n 15
        exit 1
}
skip() { echo "$*"; exit 77; }
ok() { echo "ok: $*"; }
note() { echo "note: $*"; }

[[ $(id -u) == 0 ]] || skip "not root: the test calls as other uids and needs group gmem"
[[ -x $gmemd && -x $ctl ]] || skip "$gmemd or $ctl is not built"
for tool in dbus-daemon busctl gdbus setpriv python3 cmp truncate getent; do
        command -v "$tool" > /dev/null || skip "no $tool here"
done
# python3-dbus takes the fds OpenRegion returns; Debian's python3 has it, a pyenv one may not
pydbus=
for py in /usr/bin/python3 python3; do
        if "$py" -c 'import dbus' 2> /dev/null; then
                pydbus=$py
                break
        fi
done

tmp=$(mktemp -d /tmp/gmem-check-dbus.XXXXXX)
chmod 0711 "$tmp" # other uids reach the bus socket in here
bus_pid= gmemd_pid= mon_pid= made_group=
cleanup() {
        [[ -n $mon_pid ]] && kill "$mon_pid" 2> /dev/null
        for pid in ${ugmemd_pid:-} ${ubus_pid:-} ${fakepk_pid:-} ${caller_pid:-}; do
                kill "$pid" 2> /dev/null
        done
        if [[ -n ${pk_pid:-} ]]; then
                kill -CONT "$pk_pid" 2> /dev/null
                kill "$pk_pid" 2> /dev/null
        fi
        # a stopped dbus-daemon would hold the gmemd waiting for it, and its own SIGTERM
        [[ -n $bus_pid ]] && kill -CONT "$bus_pid" 2> /dev/null
        if [[ -n $gmemd_pid ]]; then
                kill -TERM "$gmemd_pid" 2> /dev/null
                wait "$gmemd_pid" 2> /dev/null
        fi
        [[ -n $bus_pid ]] && kill "$bus_pid" 2> /dev/null
        [[ -n $made_group ]] && groupdel gmem 2> /dev/null
        rm -rf "$tmp"
}
trap cleanup EXIT

# the policy lets group gmem call; the group must exist before the bus reads its configuration
if ! getent group gmem > /dev/null; then
        groupadd --system gmem || skip "cannot create group gmem"
        made_group=1
fi
gmem_gid=$(getent group gmem | cut -d: -f3)
nobody=65534

addr=unix:path=$tmp/bus
dbus-daemon --config-file="$top/dbus/test-bus.conf" --address="$addr" --nofork --print-address=1 \
        > "$tmp/bus.addr" 2> "$tmp/bus.log" &
bus_pid=$!
for _ in $(seq 250); do
        [[ -s $tmp/bus.addr ]] && break
        kill -0 "$bus_pid" 2> /dev/null || fail "dbus-daemon exited: $(cat "$tmp/bus.log")"
        sleep 0.02
done
[[ -S $tmp/bus ]] || fail "dbus-daemon did not listen on $tmp/bus: $(cat "$tmp/bus.log")"

B() { busctl --address="$addr" "$@"; }
M() { B call org.gmem.Broker1 /org/gmem/Broker1 org.gmem.Broker1.Manager "$@"; }
G() { gdbus call --address "$addr" --dest org.gmem.Broker1 --object-path /org/gmem/Broker1 \
        --method "org.gmem.Broker1.Manager.$1" "${@:2}"; }
as_nobody() { setpriv --reuid=$nobody --regid=$nobody --clear-groups "$@"; }
as_member() { setpriv --reuid=$nobody --regid=$nobody --groups="$gmem_gid${extra_groups:+,$extra_groups}" "$@"; }
prop() { B get-property org.gmem.Broker1 "$1" "org.gmem.Broker1.$2" "$3"; }

# want OUTPUT CMD...: CMD succeeds and prints exactly OUTPUT
want() {
        local expect=$1 out
        shift
        out=$("$@" 2> "$tmp/err") || fail "'$*' failed: $(cat "$tmp/err")"
        [[ $out == "$expect" ]] || fail "'$*' printed '$out', not '$expect'"
}
# error NAME CMD...: CMD (a gdbus call) fails with that D-Bus error
error() {
        local name=$1
        shift
        "$@" > "$tmp/out" 2> "$tmp/err" && fail "'$*' succeeded: $(cat "$tmp/out")"
        grep -q "GDBus.Error:$name: " "$tmp/err" || fail "'$*' did not fail with $name: $(cat "$tmp/err")"
}
# wait_signal REGEX: a line of the signal log matches, within 15 s
wait_signal() {
        for _ in $(seq 1500); do
                grep -qE "$1" "$tmp/signals" && return 0
                sleep 0.01
        done
        fail "no signal matching '$1' within 15 s"
}
job_of() { sed -nE "s|.*objectpath '(/org/gmem/Broker1/job/[0-9]+)'.*|\1|p" <<< "$1"; }

"$gmemd" --bus "$addr" --socket "$tmp/gmemd.sock" -v > "$tmp/gmemd.log" 2>&1 &
gmemd_pid=$!
for _ in $(seq 250); do
        [[ $(B call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus NameHasOwner s org.gmem.Broker1 \
                2> /dev/null) == "b true" ]] && break
        kill -0 "$gmemd_pid" 2> /dev/null || fail "gmemd exited at start"
        sleep 0.02
done
[[ $(B call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus NameHasOwner s org.gmem.Broker1) == "b true" ]] ||
        fail "gmemd did not take org.gmem.Broker1 within 5 s"
grep -q 'D-Bus: org.gmem.Broker1 on unix:path=' "$tmp/gmemd.log" || fail "gmemd does not log its bus"

gdbus monitor --address "$addr" --dest org.gmem.Broker1 > "$tmp/signals" 2>&1 &
mon_pid=$!
wait_signal "is owned by"
ok "gmemd owns org.gmem.Broker1 on a private bus with the project's policy"

# --- introspection matches the checked-in XML --------------------------------------------------------
# Compare interface by interface: methods (argument names, types, directions), signals, properties
# (type, access, EmitsChangedSignal).
introspect_cmp() { # IFACE PATH
        B --xml-interface introspect org.gmem.Broker1 "$2" > "$tmp/live.xml" || return 1
        python3 - "$top/dbus/org.gmem.Broker1.xml" "$tmp/live.xml" "$1" << 'EOF'
import sys, xml.etree.ElementTree as ET
def members(path, iface):
    root = ET.parse(path).getroot()
    found = [i for i in root.findall('interface') if i.get('name') == iface]
    if len(found) != 1:
        sys.exit('%s: %d interfaces %s' % (path, len(found), iface))
    out = set()
    for m in found[0].findall('method'):
        out.add(('method', m.get('name'), tuple((a.get('direction', 'in'), a.get('type'), a.get('name')) for a in m.findall('arg'))))
    for s in found[0].findall('signal'):
        out.add(('signal', s.get('name'), tuple((a.get('type'), a.get('name')) for a in s.findall('arg'))))
    for p in found[0].findall('property'):
        emits = {a.get('name'): a.get('value') for a in p.findall('annotation')}.get('org.freedesktop.DBus.Property.EmitsChangedSignal', 'true')
        out.add(('property', p.get('name'), p.get('type'), p.get('access'), emits))
    return out
want, live = members(sys.argv[1], sys.argv[3]), members(sys.argv[2], sys.argv[3])
for x in sorted(want - live):
    print('  only in the XML file:', x)
for x in sorted(live - want):
    print('  only in gmemd:', x)
sys.exit(want != live)
EOF
}
introspect_cmp org.gmem.Broker1.Manager /org/gmem/Broker1 || fail "the Manager interface differs from dbus/org.gmem.Broker1.xml"
python3 -c 'import sys, xml.etree.ElementTree as ET
names = {i.get("name") for i in ET.parse(sys.argv[1]).getroot().findall("interface")}
assert names == {"org.gmem.Broker1.Manager", "org.gmem.Broker1.Region", "org.gmem.Broker1.Job"}, names' \
        dbus/org.gmem.Broker1.xml || fail "the XML file does not hold exactly the three interfaces"
ok "Manager interface matches the XML"

# --- list, create, get, properties ------------------------------------------------------------------
want "a(sstuso) 0" M ListRegions
want 'u 0' B get-property org.gmem.Broker1 /org/gmem/Broker1 org.gmem.Broker1.Manager RegionCount
want "s \"$(sed -n 's/^#define GMEM_VERSION_STRING "\(.*\)"/\1/p' include/gmem/gmem.h)\"" B get-property org.gmem.Broker1 /org/gmem/Broker1 org.gmem.Broker1.Manager Version
want 'oo "/org/gmem/Broker1/region/ram0" "/"' M CreateRegion 'ssta{sv}' ram0 memfd $((64 << 20)) 0
want 'oo "/org/gmem/Broker1/region/vm_2d1_2ea" "/"' M CreateRegion 'ssta{sv}' vm-1.a "" $((2 << 20)) 1 policy s keep
want 'o "/org/gmem/Broker1/region/ram0"' M GetRegion s ram0
want 'o "/org/gmem/Broker1/region/vm_2d1_2ea"' M GetRegion s vm-1.a
want 'a(sstuso) 2 "ram0" "memfd" 67108864 0 "empty" "/org/gmem/Broker1/region/ram0" "vm-1.a" "memfd" 2097152 0 "empty" "/org/gmem/Broker1/region/vm_2d1_2ea"' \
        M ListRegions
want 't 67108864' prop /org/gmem/Broker1/region/ram0 Region Size
want 's "memfd"' prop /org/gmem/Broker1/region/ram0 Region Backend
want 's "empty"' prop /org/gmem/Broker1/region/ram0 Region State
want 'u 0' prop /org/gmem/Broker1/region/ram0 Region OwnerUID
want 's "vm-1.a"' prop /org/gmem/Broker1/region/vm_2d1_2ea Region Name
want 't 0' prop /org/gmem/Broker1/region/vm_2d1_2ea Region ResidentBytes
want 'u 2' B get-property org.gmem.Broker1 /org/gmem/Broker1 org.gmem.Broker1.Manager RegionCount
want "t $((66 << 20))" B get-property org.gmem.Broker1 /org/gmem/Broker1 org.gmem.Broker1.Manager TotalBytes
wait_signal "RegionAdded \('ram0', objectpath '/org/gmem/Broker1/region/ram0'\)"
wait_signal "RegionAdded \('vm-1.a', objectpath '/org/gmem/Broker1/region/vm_2d1_2ea'\)"
wait_signal "InterfacesAdded \(objectpath '/org/gmem/Broker1/region/ram0'"
wait_signal "'org.gmem.Broker1.Manager', \{'RegionCount': <uint32 2>, 'TotalBytes': <uint64 $((66 << 20))>\}"
# the node enumerator: introspecting the parent lists the regions
B call org.gmem.Broker1 /org/gmem/Broker1/region org.freedesktop.DBus.Introspectable Introspect > "$tmp/nodes" ||
        fail "introspect /org/gmem/Broker1/region"
grep -q '<node name=\\"ram0\\"/>' "$tmp/nodes" && grep -q '<node name=\\"vm_2d1_2ea\\"/>' "$tmp/nodes" ||
        fail "introspection of /org/gmem/Broker1/region does not list the regions: $(cat "$tmp/nodes")"
B tree org.gmem.Broker1 > "$tmp/tree" || fail "busctl tree"
grep -q '/org/gmem/Broker1/region/ram0' "$tmp/tree" || fail "busctl tree: $(cat "$tmp/tree")"
# only the canonical escaping names an object
B get-property org.gmem.Broker1 /org/gmem/Broker1/region/_72am0 org.gmem.Broker1.Region Size > /dev/null 2>&1 &&
        fail "a non-canonical path names a region"
introspect_cmp org.gmem.Broker1.Region /org/gmem/Broker1/region/ram0 || fail "the Region interface differs from dbus/org.gmem.Broker1.xml"
B call org.gmem.Broker1 /org/gmem/Broker1 org.freedesktop.DBus.ObjectManager GetManagedObjects > "$tmp/objects" ||
        fail "GetManagedObjects"
grep -q '"/org/gmem/Broker1/region/vm_2d1_2ea"' "$tmp/objects" || fail "GetManagedObjects: $(head -c 300 "$tmp/objects")"
ok "list, create, get, properties, node enumeration, name escaping, Region interface matches the XML"

# create with prefault: (region, job) at once; the region appears when the job finished
out=$(G CreateRegion pf memfd $((4 << 20)) "{'prefault': <true>}") || fail "CreateRegion with prefault"
job=$(job_of "$out")
[[ -n $job && $out == *"'/org/gmem/Broker1/region/pf'"* ]] || fail "CreateRegion with prefault answered: $out"
wait_signal "JobFinished \(objectpath '$job', 'pf', true, uint64 $((4 << 20)), ''\)"
wait_signal "RegionAdded \('pf'"
want 'o "/org/gmem/Broker1/region/pf"' M GetRegion s pf
want "t $((4 << 20))" prop /org/gmem/Broker1/region/pf Region ResidentBytes
ok "CreateRegion with prefault: job, then the region"

# --- populate from an fd, signals, content --------------------------------------------------------------
len=$((10 * 1024 * 1024 + 123))
head -c "$len" /dev/urandom > "$tmp/src"
# busctl cannot send fds (252: "UNIX file descriptor not supported as type"); gdbus passes its own fd 3
out=$(G PopulateRegion ram0 '@h 3' 0 0 0 3< "$tmp/src") || fail "PopulateRegion"
job=$(job_of "$out")
[[ -n $job ]] || fail "PopulateRegion returned '$out', not a job path"
wait_signal "JobProgress \(objectpath '$job', 'ram0', uint64 [0-9]+, uint64 $len\)"
wait_signal "JobFinished \(objectpath '$job', 'ram0', true, uint64 $len, ''\)"
wait_signal "/org/gmem/Broker1/region/ram0: org.freedesktop.DBus.Properties.PropertiesChanged \('org.gmem.Broker1.Region', \{.*'State': <'populating'>"
wait_signal "/org/gmem/Broker1/region/ram0: org.freedesktop.DBus.Properties.PropertiesChanged \('org.gmem.Broker1.Region', \{.*'State': <'populated'>, 'PopulatedBytes': <uint64 $len>"
want 's "populated"' prop /org/gmem/Broker1/region/ram0 Region State
"$ctl" --socket "$tmp/gmemd.sock" dump ram0 --to "$tmp/dump" --length "$len" || fail "gmemctl dump"
cmp "$tmp/src" "$tmp/dump" || fail "the region's bytes differ from the populated file"
# offsets and a length: 8K of the source from 4K on, into vm-1.a at 1M
G PopulateRegion vm-1.a '@h 3' $((1 << 20)) 4096 8192 3< "$tmp/src" > "$tmp/out" || fail "PopulateRegion with offsets"
wait_signal "JobFinished \(objectpath '$(job_of "$(cat "$tmp/out")")', 'vm-1.a', true, uint64 8192, ''\)"
"$ctl" --socket "$tmp/gmemd.sock" dump vm-1.a --to "$tmp/dump2" --offset 1M --length 8K || fail "gmemctl dump vm-1.a"
cmp -s -i 4096:0 -n 8192 "$tmp/src" "$tmp/dump2" || fail "populate with offsets put the wrong bytes"
# DumpRegion over the bus into a file of ours
: > "$tmp/dump3"
out=$(G DumpRegion ram0 '@h 4' 0 $((1 << 20)) 0 4<> "$tmp/dump3") || fail "DumpRegion"
wait_signal "JobFinished \(objectpath '$(job_of "$out")', 'ram0', true, uint64 $((1 << 20)), ''\)"
cmp -n $((1 << 20)) "$tmp/src" "$tmp/dump3" || fail "DumpRegion wrote the wrong bytes"
ok "PopulateRegion and DumpRegion with fds, JobProgress, JobFinished, PropertiesChanged, content"

# SnapshotRegion and RestoreRegion: a snapshot of ram0 over the bus, restored as ram0-copy
: > "$tmp/snap"
out=$(G SnapshotRegion ram0 '@h 4' 4<> "$tmp/snap") || fail "SnapshotRegion"
wait_signal "JobFinished \(objectpath '$(job_of "$out")', 'ram0', true, uint64 [0-9]+, ''\)"
out=$(G RestoreRegion ram0-copy '@h 5' '@a{sv} {"policy": <"keep">}' 5< "$tmp/snap") || fail "RestoreRegion"
wait_signal "JobFinished \(objectpath '[^']*', 'ram0-copy', true, uint64 [0-9]+, ''\)"
"$ctl" --socket "$tmp/gmemd.sock" dump ram0-copy --to "$tmp/dump4" --length "$len" || fail "gmemctl dump ram0-copy"
cmp "$tmp/src" "$tmp/dump4" || fail "the region restored over D-Bus differs"
"$ctl" --socket "$tmp/gmemd.sock" release ram0-copy || fail "release ram0-copy"
if G RestoreRegion ram0-bad '@h 5' '@a{sv} {}' 5< "$tmp/src" > "$tmp/out" 2>&1; then fail "a file that is no snapshot was restored"; fi
grep -q "not a gmem snapshot" "$tmp/out" || fail "RestoreRegion of a non-snapshot: $(cat "$tmp/out")"
ok "SnapshotRegion and RestoreRegion with fds, and a file that is no snapshot refused"

# --- OpenRegion hands out the region's fd -------------------------------------------------------------
want "(handle 0,)" G OpenRegion ram0
cp "$tmp/src" "$tmp/expected"
open_check() { # [RUNNER...]: OpenRegion ram0 through python3-dbus; the fd maps the populated bytes
        "$@" "$pydbus" - "$addr" "$tmp/expected" << 'EOF'
import dbus, mmap, os, sys
bus = dbus.bus.BusConnection(sys.argv[1])
mgr = dbus.Interface(bus.get_object('org.gmem.Broker1', '/org/gmem/Broker1'), 'org.gmem.Broker1.Manager')
fd = mgr.OpenRegion('ram0').take()
assert os.readlink('/proc/self/fd/%d' % fd).startswith('/memfd:'), os.readlink('/proc/self/fd/%d' % fd)
assert os.fstat(fd).st_size == 64 << 20
src = open(sys.argv[2], 'rb').read()
m = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ)
assert m[:len(src)] == src, 'the fd does not show the populated bytes'
EOF
}
if [[ -n $pydbus ]]; then
        open_check || fail "OpenRegion's fd is not the region's memory"
        "$ctl" --socket "$tmp/gmemd.sock" --json info ram0 | grep -q '"role":"opened"' ||
                fail "no 'opened' holder after OpenRegion"
        ok "OpenRegion returns an fd on the region's memory"
else
        note "no python3 with the dbus module: OpenRegion's fd not checked beyond gdbus"
fi

# --- punch, capabilities ------------------------------------------------------------------------------
want "" M PunchHole stt ram0 4096 4096
"$ctl" --socket "$tmp/gmemd.sock" dump ram0 --to "$tmp/punched" --length 16K || fail "dump after punch"
cmp -s -n 4096 "$tmp/src" "$tmp/punched" && cmp -s -i 4096:0 -n 4096 "$tmp/punched" /dev/zero &&
        cmp -s -i 8192:8192 -n 8192 "$tmp/src" "$tmp/punched" || fail "PunchHole did not zero exactly its page"
dd if=/dev/zero of="$tmp/expected" bs=4096 seek=1 count=1 conv=notrunc status=none
# the caps typed: every member of the socket's JSON (nulls left out) with the type its value has
B --json=short call org.gmem.Broker1 /org/gmem/Broker1 org.gmem.Broker1.Manager GetCapabilities > "$tmp/caps" ||
        fail "GetCapabilities"
"$ctl" --socket "$tmp/gmemd.sock" --json caps > "$tmp/caps.json" || fail "gmemctl caps --json"
python3 - "$tmp/caps" "$tmp/caps.json" << 'EOF' || fail "GetCapabilities' a{sv} is not the caps: $(head -c 300 "$tmp/caps")"
import json, sys
bus = json.load(open(sys.argv[1]))
assert bus["type"] == "a{sv}", bus["type"]
def plain(t, v):  # busctl's JSON of a typed value, back to plain JSON; checks each type
    if t == "a{sv}":
        return {k: plain(x["type"], x["data"]) for k, x in v.items()}
    if t == "aa{sv}":
        return [plain("a{sv}", x) for x in v]
    if t in ("as", "at"):
        return v
    assert t in ("b", "s", "t"), t
    assert isinstance(v, {"b": bool, "s": str, "t": int}[t]), (t, v)
    return v
def drop_nulls(o):
    if isinstance(o, dict):
        return {k: drop_nulls(v) for k, v in o.items() if v is not None}
    if isinstance(o, list):
        return [drop_nulls(v) for v in o]
    return o
got, want = plain("a{sv}", bus["data"][0]), drop_nulls(json.load(open(sys.argv[2])))
# free huge pages may change between the two calls
for h in got.get("hugetlb", []) + want.get("hugetlb", []):
    h.pop("free_pages", None)
assert got == want, (got, want)
assert isinstance(got["kvm"]["usable"], bool) and isinstance(got["kernel"]["release"], str)
EOF
ok "PunchHole, GetCapabilities: the caps as a typed a{sv}, member for member the socket's JSON"

# --- errors ---------------------------------------------------------------------------------------------
E=org.gmem.Broker1.Error
D=org.freedesktop.DBus.Error
error $E.NoSuchRegion G GetRegion nosuch
error $E.NoSuchRegion G OpenRegion nosuch
error $E.NoSuchRegion G ReleaseRegion nosuch
error $E.NoSuchRegion G PopulateRegion nosuch '@h 3' 0 0 0 3< "$tmp/src"
error $D.InvalidArgs G GetRegion 'a/b'
error $E.Exists G CreateRegion ram0 memfd 4096 '{}'
error $D.InvalidArgs G CreateRegion bad/name memfd 4096 '{}'
error $D.InvalidArgs G CreateRegion x floppy 4096 '{}'
error $D.InvalidArgs G CreateRegion x memfd 4096 "{'colour': <'red'>}"
error $D.InvalidArgs G CreateRegion x memfd 4096 "{'prefault': <'yes'>}"
# an option given twice: which was meant is not guessed
error $D.InvalidArgs G CreateRegion x memfd 4096 "{'policy': <'keep'>, 'policy': <'connection'>}"
error $D.InvalidArgs G CreateRegion x memfd 4096 "{'page_size': <uint64 2097152>}"
error $D.InvalidArgs G CreateRegion x guest_memfd 4096 '{}'
error $D.InvalidArgs G CreateRegion x memfd 4096 "{'policy': <'sometimes'>}"
error $D.LimitsExceeded G CreateRegion x memfd $((1 << 62)) '{}'
error $D.InvalidArgs G PunchHole ram0 $((64 << 20)) 4096
error $D.InvalidArgs G PunchHole ram0 0 0
error $D.InvalidArgs G GrantRegion ram0 user 1
: > "$tmp/empty"
error $E.ShortSource G PopulateRegion ram0 '@h 3' 0 0 0 3< "$tmp/empty"
error $E.NoSuchJob G CancelJob /org/gmem/Broker1/job/999999
error $E.NoSuchJob G CancelJob /org/gmem/Broker1/region/ram0
grep -q "GDBus.Error:$E.NoSuchJob: no job 999999" <(G CancelJob /org/gmem/Broker1/job/999999 2>&1) ||
        fail "NoSuchJob's message does not say which job"
want 'u 3' B get-property org.gmem.Broker1 /org/gmem/Broker1 org.gmem.Broker1.Manager RegionCount
ok "named errors with messages: the standard names where D-Bus has them"

# --- policy "connection": a region lives as long as the bus peer that made it --------------------------
want "(objectpath '/org/gmem/Broker1/region/conn1', objectpath '/')" G CreateRegion conn1 memfd 4096 "{'policy': <'connection'>}"
# that gdbus has left the bus: the region went with it
wait_signal "RegionRemoved \('conn1'"
error $E.NoSuchRegion G GetRegion conn1
if [[ -n $pydbus ]]; then
        # a peer that stays: its region is there for others until it leaves
        "$pydbus" - "$addr" << 'EOF' || fail "a region with policy connection did not stay while its peer was on the bus"
import dbus, subprocess, sys
bus = dbus.bus.BusConnection(sys.argv[1])
m = dbus.Interface(bus.get_object('org.gmem.Broker1', '/org/gmem/Broker1'), 'org.gmem.Broker1.Manager')
m.CreateRegion('conn2', 'memfd', dbus.UInt64(4096), {'policy': dbus.String('connection')}, signature='ssta{sv}')
out = subprocess.run(['gdbus', 'call', '--address', sys.argv[1], '--dest', 'org.gmem.Broker1', '--object-path',
                      '/org/gmem/Broker1', '--method', 'org.gmem.Broker1.Manager.GetRegion', 'conn2'],
                     capture_output=True, text=True)
sys.exit(0 if 'region/conn2' in out.stdout else 1)
EOF
        wait_signal "RegionRemoved \('conn2'"
        error $E.NoSuchRegion G GetRegion conn2
fi
ok "policy connection over D-Bus: the region goes when its peer leaves the bus"

# --- other uids -------------------------------------------------------------------------------------
# outside group gmem, without polkit: the calls reach gmemd, which refuses all but those that only
# look (and show nothing that is not the caller's); properties and introspection are readable.
# (No polkitd on the bus yet: "polkit cannot be asked".)
as_nobody gdbus call --address "$addr" --dest org.gmem.Broker1 --object-path /org/gmem/Broker1 \
        --method org.gmem.Broker1.Manager.ReleaseRegion ram0 > "$tmp/out" 2> "$tmp/err" && fail "uid $nobody released ram0"
grep -q "GDBus.Error:$D.AccessDenied: uid $nobody is neither root nor in group gmem, and polkit cannot be asked" "$tmp/err" ||
        fail "gmemd did not refuse uid $nobody outside group gmem: $(cat "$tmp/err")"
as_nobody gdbus call --address "$addr" --dest org.gmem.Broker1 --object-path /org/gmem/Broker1/region/ram0 \
        --method org.gmem.Broker1.Region.Open > "$tmp/out" 2> "$tmp/err" && fail "uid $nobody opened ram0"
grep -q "GDBus.Error:$D.AccessDenied: " "$tmp/err" || fail "Region.Open by uid $nobody: $(cat "$tmp/err")"
want 'a(sstuso) 0' as_nobody busctl --address="$addr" call org.gmem.Broker1 /org/gmem/Broker1 org.gmem.Broker1.Manager ListRegions
as_nobody gdbus call --address "$addr" --dest org.gmem.Broker1 --object-path /org/gmem/Broker1 \
        --method org.gmem.Broker1.Manager.GetRegion ram0 > "$tmp/out" 2> "$tmp/err" && fail "uid $nobody got root's region"
grep -q "GDBus.Error:$D.AccessDenied: " "$tmp/err" || fail "GetRegion by uid $nobody: $(cat "$tmp/err")"
as_nobody busctl --address="$addr" call org.gmem.Broker1 /org/gmem/Broker1 org.gmem.Broker1.Manager GetCapabilities > /dev/null ||
        fail "uid $nobody cannot read the caps"
want 't 67108864' as_nobody busctl --address="$addr" get-property org.gmem.Broker1 /org/gmem/Broker1/region/ram0 org.gmem.Broker1.Region Size
want 'u 3' as_nobody busctl --address="$addr" get-property org.gmem.Broker1 /org/gmem/Broker1 org.gmem.Broker1.Manager RegionCount
as_nobody busctl --address="$addr" introspect org.gmem.Broker1 /org/gmem/Broker1 > /dev/null || fail "uid $nobody cannot introspect"
as_nobody busctl --address="$addr" call org.gmem.Broker1 /org/gmem/Broker1 org.freedesktop.DBus.ObjectManager GetManagedObjects > /dev/null ||
        fail "uid $nobody cannot list the objects"
# properties are read-only: the policy does not even let Set through
as_nobody busctl --address="$addr" set-property org.gmem.Broker1 /org/gmem/Broker1/region/ram0 org.gmem.Broker1.Region State s x \
        > /dev/null 2> "$tmp/err" && fail "uid $nobody set a property"
grep -q "Access denied" "$tmp/err" || fail "Set by uid $nobody: $(cat "$tmp/err")"
ok "outside group gmem without polkit: refused by gmemd (AccessDenied), looking allowed, properties and introspection readable"

# in group gmem: the calls reach gmemd, which refuses what uid 65534 may not do to root's region
NG() { as_member gdbus call --address "$addr" --dest org.gmem.Broker1 --object-path /org/gmem/Broker1 \
        --method "org.gmem.Broker1.Manager.$1" "${@:2}"; }
error $D.AccessDenied NG ReleaseRegion ram0
grep -q "uid $nobody may not release" "$tmp/err" || fail "PermissionDenied does not say who: $(cat "$tmp/err")"
error $D.AccessDenied NG OpenRegion ram0
error $D.AccessDenied NG PunchHole ram0 0 4096
error $D.AccessDenied NG GrantRegion ram0 uid $nobody
error $D.AccessDenied NG PopulateRegion ram0 '@h 3' 0 0 0 3< "$tmp/src"
# a member's region is its own
want "(objectpath '/org/gmem/Broker1/region/mine', objectpath '/')" NG CreateRegion mine memfd $((1 << 20)) '{}'
want "u $nobody" prop /org/gmem/Broker1/region/mine Region OwnerUID
want "()" NG ReleaseRegion mine
error $E.NoSuchRegion G GetRegion mine
ok "in group gmem: gmemd's own checks (PermissionDenied), own regions"

# grants: by uid, then by gid (the groups come from the bus daemon)
want "()" G GrantRegion ram0 uid $nobody
want "au 1 $nobody" prop /org/gmem/Broker1/region/ram0 Region GrantedUIDs
wait_signal "'GrantedUIDs': <\[uint32 $nobody\]>"
want "(handle 0,)" NG OpenRegion ram0
if [[ -n $pydbus ]]; then
        open_check as_member || fail "uid $nobody with a grant: OpenRegion's fd is not the region's memory"
fi
error $D.AccessDenied NG ReleaseRegion ram0
want "()" G RevokeRegion ram0 uid $nobody
error $D.AccessDenied NG OpenRegion ram0
want "()" G GrantRegion ram0 gid 4242
want "au 1 4242" prop /org/gmem/Broker1/region/ram0 Region GrantedGIDs
error $D.AccessDenied NG OpenRegion ram0
extra_groups=4242
want "(handle 0,)" NG OpenRegion ram0
extra_groups=
want "()" G RevokeRegion ram0 gid 4242
ok "GrantRegion/RevokeRegion by uid and by gid"

# --- the Region's own methods: the Manager's by-name calls on the object --------------------------------
# (R, NR, PR take names with letters, digits and "-"; "-" is escaped as _2d)
R() { # NAME METHOD ARGS...: a Region method on NAME's object, as root
        gdbus call --address "$addr" --dest org.gmem.Broker1 --object-path "/org/gmem/Broker1/region/${1//-/_2d}" \
                --method "org.gmem.Broker1.Region.$2" "${@:3}"
}
NR() { as_member gdbus call --address "$addr" --dest org.gmem.Broker1 --object-path "/org/gmem/Broker1/region/${1//-/_2d}" \
        --method "org.gmem.Broker1.Region.$2" "${@:3}"; }
want "(objectpath '/org/gmem/Broker1/region/obj', objectpath '/')" G CreateRegion obj memfd $((1 << 20)) '{}'
out=$(R obj Populate '@h 3' 0 0 0 3< "$tmp/src") || fail "Region.Populate"
wait_signal "JobFinished \(objectpath '$(job_of "$out")', 'obj', true, uint64 $((1 << 20)), ''\)"
"$ctl" --socket "$tmp/gmemd.sock" dump obj --to "$tmp/obj" || fail "gmemctl dump obj"
cmp -n $((1 << 20)) "$tmp/src" "$tmp/obj" || fail "Region.Populate put the wrong bytes"
out=$(R obj Prefault 0 0) || fail "Region.Prefault"
wait_signal "JobFinished \(objectpath '$(job_of "$out")', 'obj', true, uint64 $((1 << 20)), ''\)"
want "()" R obj PunchHole 0 4096
: > "$tmp/obj-dump"
out=$(R obj Dump '@h 4' 0 8192 0 4<> "$tmp/obj-dump") || fail "Region.Dump"
wait_signal "JobFinished \(objectpath '$(job_of "$out")', 'obj', true, uint64 [0-9]+, ''\)"
cmp -s -n 4096 "$tmp/obj-dump" /dev/zero && cmp -s -i 4096:4096 -n 4096 "$tmp/src" "$tmp/obj-dump" ||
        fail "Region.PunchHole/Dump: the first page is not a hole or the second not the source's"
: > "$tmp/obj-snap"
out=$(R obj Snapshot '@h 4' 4<> "$tmp/obj-snap") || fail "Region.Snapshot"
wait_signal "JobFinished \(objectpath '$(job_of "$out")', 'obj', true, uint64 [0-9]+, ''\)"
error $D.AccessDenied NR obj Open
want "()" R obj Grant uid $nobody
want "(handle 0,)" NR obj Open
error $D.AccessDenied NR obj Release
error $D.AccessDenied NR obj Grant uid 4242
want "()" R obj Revoke uid $nobody
error $D.AccessDenied NR obj Open
error $D.InvalidArgs R obj PunchHole 0 0
error $D.InvalidArgs R obj Grant user 1
want "(handle 0,)" R obj Open
want "()" R obj Release
wait_signal "RegionRemoved \('obj'"
error $D.UnknownObject R obj Open
ok "Region methods: Populate, Prefault, PunchHole, Dump, Snapshot, Grant, Revoke, Open, Release, with the Manager's rights and errors"

# --- polkit: callers that are neither root nor in group gmem ------------------------------------------
# The real polkitd on the test bus, in a mount namespace of its own where the actions directory holds
# only polkit/org.gmem.Broker1.policy (the installed file) and the rules are the test's: uid 65534
# (no groups) may manage regions named pk-*, must authenticate to open one; uid 1 (daemon) gets NO.
polkitd=/usr/lib/polkit-1/polkitd
pkconf=/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf
pk_pid=
if [[ ! -x $polkitd || ! -f $pkconf ]] || ! getent passwd polkitd > /dev/null || ! getent passwd daemon > /dev/null ||
        ! command -v unshare > /dev/null; then
        note "SKIP polkit: no polkitd here (Debian: polkitd); callers outside group gmem were checked without it only"
else
        mkdir -p "$tmp/pk/actions" "$tmp/pk/rules" "$tmp/pk/rules-usr"
        cp polkit/org.gmem.Broker1.policy "$tmp/pk/actions/"
        cat > "$tmp/pk/rules/50-gmem-test.rules" << 'EOF'
polkit.addRule(function(action, subject) {
        if (subject.user == "daemon")
                return polkit.Result.NO;
        if (subject.user != "nobody")
                return polkit.Result.NOT_HANDLED;
        if (action.id == "org.gmem.broker1.manage-regions" && (action.lookup("region") || "").indexOf("pk-") == 0)
                return polkit.Result.YES;
        if (action.id == "org.gmem.broker1.open-region")
                return polkit.Result.AUTH_ADMIN;
});
EOF
        chmod -R a+rX "$tmp/pk"
        DBUS_SYSTEM_BUS_ADDRESS=$addr unshare -m --propagation private sh -ec '
                mount --bind "$1/actions" /usr/share/polkit-1/actions
                mount --bind "$1/rules" /etc/polkit-1/rules.d
                mount --bind "$1/rules-usr" /usr/share/polkit-1/rules.d
                exec "$2" --no-debug' sh "$tmp/pk" "$polkitd" > "$tmp/polkitd.log" 2>&1 &
        pk_pid=$!
        for _ in $(seq 250); do
                [[ $(B call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus NameHasOwner s org.freedesktop.PolicyKit1 \
                        2> /dev/null) == "b true" ]] && break
                kill -0 "$pk_pid" 2> /dev/null || fail "polkitd exited: $(cat "$tmp/polkitd.log")"
                sleep 0.02
        done
        [[ $(B call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus NameHasOwner s org.freedesktop.PolicyKit1) == "b true" ]] ||
                fail "polkitd did not take its name within 5 s: $(cat "$tmp/polkitd.log")"
        PG() { as_nobody gdbus call --address "$addr" --dest org.gmem.Broker1 --object-path /org/gmem/Broker1 \
                --method "org.gmem.Broker1.Manager.$1" "${@:2}"; }
        PR() { as_nobody gdbus call --address "$addr" --dest org.gmem.Broker1 --object-path "/org/gmem/Broker1/region/${1//-/_2d}" \
                --method "org.gmem.Broker1.Region.$2" "${@:3}"; }
        # authorized: its region is its own, and it acts on it
        want "(objectpath '/org/gmem/Broker1/region/pk_2da', objectpath '/')" PG CreateRegion pk-a memfd $((1 << 20)) '{}'
        want "u $nobody" prop /org/gmem/Broker1/region/pk_2da Region OwnerUID
        out=$(PR pk-a Populate '@h 3' 0 0 0 3< "$tmp/src") || fail "Region.Populate by uid $nobody with polkit"
        wait_signal "JobFinished \(objectpath '$(job_of "$out")', 'pk-a', true, uint64 $((1 << 20)), ''\)"
        want "()" PR pk-a PunchHole 0 4096
        # polkit wants a password for open-region, and gdbus did not allow interaction: also for
        # what copies the memory out
        error $D.InteractiveAuthorizationRequired PR pk-a Open
        : > "$tmp/pk-dump"
        chmod 0666 "$tmp/pk-dump"
        error $D.InteractiveAuthorizationRequired PR pk-a Dump '@h 4' 0 4096 0 4<> "$tmp/pk-dump"
        error $D.InteractiveAuthorizationRequired PR pk-a Snapshot '@h 4' 4<> "$tmp/pk-dump"
        # an action the rules do not grant falls to the policy's defaults: authenticate
        error $D.InteractiveAuthorizationRequired PG CreateRegion other memfd 4096 '{}'
        # polkit lets it in, gmemd's rules still decide: root's pk-root is not its to release
        want "(objectpath '/org/gmem/Broker1/region/pk_2droot', objectpath '/')" G CreateRegion pk-root memfd 4096 '{}'
        error $D.AccessDenied PR pk-root Release
        grep -q "uid $nobody may not release" "$tmp/err" || fail "gmemd's rules did not refuse: $(cat "$tmp/err")"
        # polkit says no
        as_daemon() { setpriv --reuid=1 --regid=1 --clear-groups "$@"; }
        as_daemon gdbus call --address "$addr" --dest org.gmem.Broker1 --object-path /org/gmem/Broker1 \
                --method org.gmem.Broker1.Manager.CreateRegion pk-b memfd 4096 '{}' > "$tmp/out" 2> "$tmp/err" &&
                fail "uid 1 created a region against polkit"
        grep -q "GDBus.Error:$D.AccessDenied: uid 1 is neither root nor in group gmem, and polkit does not authorize it for org.gmem.broker1.manage-regions" "$tmp/err" ||
                fail "polkit's NO: $(cat "$tmp/err")"
        # a caller cannot pile up polkit checks: with polkitd stopped, 16 wait and the rest are refused
        kill -STOP "$pk_pid"
        pile=()
        for i in $(seq 20); do
                PR pk-a PunchHole 0 4096 > "$tmp/pile.$i" 2>&1 &
                pile+=($!)
        done
        for _ in $(seq 1500); do
                (($(grep -l "$D.LimitsExceeded" "$tmp"/pile.* 2> /dev/null | wc -l) >= 4)) && break
                sleep 0.01
        done
        kill -CONT "$pk_pid"
        wait "${pile[@]}"
        limited=$(grep -l "GDBus.Error:$D.LimitsExceeded: uid $nobody has 16 calls waiting for polkit" "$tmp"/pile.* | wc -l)
        done_ok=$(grep -lx "()" "$tmp"/pile.* | wc -l)
        ((limited == 4 && done_ok == 16)) || fail "20 calls while polkitd stood still: $limited refused, $done_ok done (want 4 and 16)"
        want "()" PR pk-a Release
        want "()" G ReleaseRegion pk-root
        kill "$pk_pid"
        wait "$pk_pid" 2> /dev/null
        pk_pid=
        ok "polkit (the real polkitd): authorized callers act as owners within gmemd's rules; NO, authentication required and a pile-up refused"
fi

# --- cancel, and the Job interface --------------------------------------------------------------------
# 4 GiB populated from a sparse file takes seconds: the job is caught running (where it is not, on a
# fast machine, the checks that need it running are noted, not failed)
truncate -s 4G "$tmp/sparse"
start_big() { # NAME: sets $job
        want "(objectpath '/org/gmem/Broker1/region/$1', objectpath '/')" G CreateRegion "$1" memfd $((4 << 30)) '{}'
        out=$(G PopulateRegion "$1" '@h 3' 0 0 0 3< "$tmp/sparse") || fail "PopulateRegion $1"
        job=$(job_of "$out")
        [[ -n $job ]] || fail "PopulateRegion $1 returned '$out'"
}
finished() { grep -q "JobFinished (objectpath '$job'" "$tmp/signals"; }
# refused NAME CMD...: CMD fails with that error, or the job was over before it ran
refused() {
        local name=$1
        shift
        "$@" > "$tmp/out" 2> "$tmp/err" && fail "'$*' succeeded"
        grep -q "GDBus.Error:$name: " "$tmp/err" || finished || fail "'$*' did not fail with $name: $(cat "$tmp/err")"
}
cancelled() { # REGION HOW
        wait_signal "JobFinished \(objectpath '$job', '$1', "
        if grep -q "JobFinished (objectpath '$job', '$1', false, uint64 0, \"populate '$1': cancelled" "$tmp/signals"; then
                ok "$2 ends the job: JobFinished(ok=false, cancelled)"
        else
                note "the 4 GiB populate finished before $2 reached it; cancellation not exercised"
        fi
}

start_big big
if introspect_cmp org.gmem.Broker1.Job "$job" 2> "$tmp/err"; then
        ok "Job interface matches the XML"
elif finished; then
        note "the 4 GiB populate finished before its job could be introspected"
else
        fail "the Job interface differs from dbus/org.gmem.Broker1.xml: $(cat "$tmp/err")"
fi
B get-property org.gmem.Broker1 "$job" org.gmem.Broker1.Job Operation Region Offset Length > "$tmp/out" 2> /dev/null &&
        { [[ $(tr '\n' ' ' < "$tmp/out") == 's "populate" s "big" t 0 t 4294967296 ' ]] ||
                fail "Job properties: $(cat "$tmp/out")"; }
refused $D.AccessDenied as_member gdbus call --address "$addr" --dest org.gmem.Broker1 --object-path "$job" \
        --method org.gmem.Broker1.Job.Cancel
B call org.gmem.Broker1 "$job" org.gmem.Broker1.Job Cancel > /dev/null 2>&1 || finished || fail "Job.Cancel failed"
cancelled big "Job.Cancel"
want "()" G ReleaseRegion big

start_big big2
refused $D.AccessDenied NG CancelJob "$job"
G CancelJob "$job" > /dev/null 2> "$tmp/err" || finished || fail "CancelJob: $(cat "$tmp/err")"
cancelled big2 "Manager.CancelJob"
want "()" G ReleaseRegion big2

# a job whose region is released ends with JobFinished too
start_big big3
want "()" G ReleaseRegion big3
wait_signal "RegionRemoved \('big3', objectpath '/org/gmem/Broker1/region/big3'\)"
wait_signal "JobFinished \(objectpath '$job', 'big3', "
ok "a D-Bus job hears of its end after its region was released"

# --- release ----------------------------------------------------------------------------------------------
want "()" G ReleaseRegion ram0
wait_signal "RegionRemoved \('ram0', objectpath '/org/gmem/Broker1/region/ram0'\)"
wait_signal "InterfacesRemoved \(objectpath '/org/gmem/Broker1/region/ram0'"
error $E.NoSuchRegion G GetRegion ram0
B get-property org.gmem.Broker1 /org/gmem/Broker1/region/ram0 org.gmem.Broker1.Region Size > /dev/null 2>&1 &&
        fail "the released region's object is still there"
want 'a(sstuso) 2 "pf" "memfd" 4194304 0 "empty" "/org/gmem/Broker1/region/pf" "vm-1.a" "memfd" 2097152 0 "populated" "/org/gmem/Broker1/region/vm_2d1_2ea"' \
        M ListRegions
wait_signal "'org.gmem.Broker1.Manager', \{'RegionCount': <uint32 2>, 'TotalBytes': <uint64 $((6 << 20))>\}"
ok "ReleaseRegion: RegionRemoved, InterfacesRemoved, the object gone, counts updated"

# --- RegisterRegion, PrefaultRegion --------------------------------------------------------------------------
# a memfd of the caller's, passed as fd 3 to gdbus
register() { # NAME SEALABLE
        python3 - "$addr" "$1" "$2" << 'EOF'
import os, sys
fd = os.memfd_create("vmram", os.MFD_ALLOW_SEALING if sys.argv[3] == "1" else 0)
os.ftruncate(fd, 1 << 20)
os.pwrite(fd, b"registered!", 0)
os.dup2(fd, 3)
os.execvp("gdbus", ["gdbus", "call", "--address", sys.argv[1], "--dest", "org.gmem.Broker1", "--object-path",
                    "/org/gmem/Broker1", "--method", "org.gmem.Broker1.Manager.RegisterRegion", sys.argv[2], "@h 3", "{}"])
EOF
}
want "(objectpath '/org/gmem/Broker1/region/reg',)" register reg 1
want 's "memfd"' prop /org/gmem/Broker1/region/reg Region Backend
want "t $((1 << 20))" prop /org/gmem/Broker1/region/reg Region Size
prop /org/gmem/Broker1/region/reg Region Holders | grep -q '"registered"' || fail "no 'registered' holder"
"$ctl" --socket "$tmp/gmemd.sock" dump reg --to "$tmp/reg" --length 4K || fail "dump reg"
[[ $(head -c 11 "$tmp/reg") == "registered!" ]] || fail "the registered memfd's bytes are not the region's"
error $D.AccessDenied register unsealable 0
error $E.Exists register reg 1
want "()" G ReleaseRegion reg
out=$(M PrefaultRegion stt vm-1.a 0 0) || fail "PrefaultRegion"
job=${out#o }
job=${job//\"/}
wait_signal "JobFinished \(objectpath '$job', 'vm-1.a', true, uint64 $((2 << 20)), ''\)"
want "t $((2 << 20))" prop /org/gmem/Broker1/region/vm_2d1_2ea Region ResidentBytes
ok "RegisterRegion takes custody of a sealable memfd (and refuses an unsealable one), PrefaultRegion"

# --- start-up failures ------------------------------------------------------------------------------------
"$gmemd" --bus "$addr" --socket "$tmp/second.sock" > "$tmp/second.log" 2>&1
rc=$?
((rc != 0)) || fail "a second gmemd on the same bus started"
grep -q 'org.gmem.Broker1 is owned by another process' "$tmp/second.log" || fail "second gmemd's message: $(cat "$tmp/second.log")"
"$gmemd" --bus bogus --socket "$tmp/third.sock" > "$tmp/third.log" 2>&1 && fail "gmemd --bus bogus started"
grep -q "not system, user, none or a D-Bus address" "$tmp/third.log" || fail "--bus bogus message: $(cat "$tmp/third.log")"
"$gmemd" --bus "unix:path=$tmp/nothing-here" --socket "$tmp/fourth.sock" > "$tmp/fourth.log" 2>&1 &&
        fail "gmemd started without its bus"
grep -q "cannot connect to the bus" "$tmp/fourth.log" || fail "no-bus message: $(cat "$tmp/fourth.log")"
# the policy lets only root own the name
mkdir -m 0777 "$tmp/nobody"
as_nobody "$gmemd" --bus "$addr" --socket "$tmp/nobody/gmemd.sock" > "$tmp/fifth.log" 2>&1 &&
        fail "gmemd as uid $nobody took the name"
grep -q "the bus policy does not let uid $nobody own org.gmem.Broker1" "$tmp/fifth.log" ||
        fail "policy message: $(cat "$tmp/fifth.log")"
ok "a second gmemd, a bad --bus, a missing bus and a non-root owner are refused with clear messages"

# --- a user's own gmemd on its session bus serves that user, no polkit needed ---------------------------
# setpriv itself, not the as_nobody function, in the background: $! is then the daemon's own pid
nobody_cmd=(setpriv --reuid=$nobody --regid=$nobody --clear-groups)
"${nobody_cmd[@]}" dbus-daemon --session --address="unix:path=$tmp/nobody/ubus" --nofork > /dev/null 2> "$tmp/ubus.log" &
ubus_pid=$!
for _ in $(seq 250); do
        [[ -S $tmp/nobody/ubus ]] && break
        sleep 0.02
done
"${nobody_cmd[@]}" "$gmemd" --bus "unix:path=$tmp/nobody/ubus" --socket "$tmp/nobody/gmemd.sock" > "$tmp/user-gmemd.log" 2>&1 &
ugmemd_pid=$!
for _ in $(seq 250); do
        grep -q 'D-Bus: org.gmem.Broker1 on' "$tmp/user-gmemd.log" && break
        kill -0 "$ugmemd_pid" 2> /dev/null || break
        sleep 0.02
done
UG() { as_nobody gdbus call --address "unix:path=$tmp/nobody/ubus" --dest org.gmem.Broker1 --object-path /org/gmem/Broker1 \
        --method "org.gmem.Broker1.Manager.$1" "${@:2}"; }
out=$(UG CreateRegion mine memfd 4096 '{}' 2>&1)
rc=$?
[[ $(UG ReleaseRegion mine 2>&1) == "()" ]] || rc=1
kill "$ugmemd_pid" "$ubus_pid" 2> /dev/null
wait "$ugmemd_pid" "$ubus_pid" 2> /dev/null
ugmemd_pid= ubus_pid=
((rc == 0)) || fail "a user's gmemd on its own bus refused its user: $out $(cat "$tmp/user-gmemd.log")"
ok "a user's own gmemd on its session bus: its uid acts without polkit"

# --- a stalled bus does not stall gmemd ---------------------------------------------------------------------
# With dbus-daemon stopped, the socket is served as usual while the signals fill the connection's
# socket buffer (sd-bus makes it 8 MiB) and then sd-bus's queue; once the bus runs again the queue
# drains through the write event, every signal in order. One socket client, 5000 regions made and
# released: about 15 MiB of signals.
# flood SOCKET N PREFIX: one socket client makes and releases N regions (6 signals each)
flood() {
        timeout 60 python3 - "$@" << 'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
serial = 0
def call(req):
    global serial
    serial += 1
    req["id"] = serial
    s.send(json.dumps(req).encode())
    while True:
        r = json.loads(s.recv(65536))
        if "event" not in r:
            break
    if not r["ok"]:
        sys.exit("failed: %r" % r)
call({"op": "hello", "version": 1})
for i in range(1, int(sys.argv[2]) + 1):
    call({"op": "create", "name": "%s%d" % (sys.argv[3], i), "size": 4096})
    call({"op": "release", "name": "%s%d" % (sys.argv[3], i)})
EOF
}
n=5000
kill -STOP "$bus_pid"
flood "$tmp/gmemd.sock" "$n" stall || { kill -CONT "$bus_pid"; fail "the socket stalled while the bus was stopped"; }
kill -CONT "$bus_pid"
wait_signal "RegionRemoved \('stall$n'"
grep -o "Region[A-Za-z]* ('stall[0-9]*'" "$tmp/signals" | python3 -c 'import sys
got = [l.strip() for l in sys.stdin]
want = ["Region%s (\x27stall%d\x27" % (w, i) for i in range(1, int(sys.argv[1]) + 1) for w in ("Added", "Removed")]
if got != want:
    sys.exit("%d signals, not %d, or out of order" % (len(got), len(want)))' "$n" || fail "the signals queued during the stall"
want "a(sstuso) 2 \"pf\" \"memfd\" 4194304 0 \"empty\" \"/org/gmem/Broker1/region/pf\" \"vm-1.a\" \"memfd\" 2097152 0 \"populated\" \"/org/gmem/Broker1/region/vm_2d1_2ea\"" \
        M ListRegions
ok "a stopped bus does not stop the socket; the queued signals all arrive, in order"

# --- the bus goes away; gmemd keeps serving its socket ------------------------------------------------------
# a peer on the bus holds a region with policy connection: it goes with the bus
if [[ -n $pydbus ]]; then
        "$pydbus" -c '
import dbus, sys, time
bus = dbus.bus.BusConnection(sys.argv[1])
m = dbus.Interface(bus.get_object("org.gmem.Broker1", "/org/gmem/Broker1"), "org.gmem.Broker1.Manager")
m.CreateRegion("held", "memfd", dbus.UInt64(4096), {"policy": dbus.String("connection")}, signature="ssta{sv}")
print("made", flush=True)
time.sleep(600)' "$addr" > "$tmp/holder.out" 2>&1 &
        caller_pid=$!
        for _ in $(seq 250); do
                grep -q made "$tmp/holder.out" && break
                sleep 0.02
        done
        "$ctl" --socket "$tmp/gmemd.sock" list | grep -q '^held ' || fail "no region 'held': $(cat "$tmp/holder.out")"
fi
kill "$mon_pid" 2> /dev/null
mon_pid=
kill "$bus_pid"
wait "$bus_pid" 2> /dev/null
bus_pid=
for _ in $(seq 250); do
        grep -q 'D-Bus.*the connection is gone' "$tmp/gmemd.log" && break
        sleep 0.02
done
grep -q 'D-Bus.*the connection is gone' "$tmp/gmemd.log" || fail "gmemd did not notice the bus going away"
kill -0 "$gmemd_pid" 2> /dev/null || fail "gmemd died with the bus"
"$ctl" --socket "$tmp/gmemd.sock" create after --size 1M > /dev/null || fail "gmemd's socket stopped serving without the bus"
"$ctl" --socket "$tmp/gmemd.sock" list > "$tmp/after" || fail "list after the bus went away"
grep -q '^after ' "$tmp/after" || fail "list after the bus went away: $(cat "$tmp/after")"
if [[ -n $pydbus ]]; then
        grep -q '^held ' "$tmp/after" && fail "a region with policy connection outlived its peer's bus"
        kill "$caller_pid" 2> /dev/null
        wait "$caller_pid" 2> /dev/null
        caller_pid=
fi
kill -TERM "$gmemd_pid"
wait "$gmemd_pid"
rc=$?
gmemd_pid=
((rc == 0)) || fail "gmemd exited $rc on SIGTERM after losing the bus"
ok "gmemd survives the bus going away and exits cleanly"

# --- a frozen bus does not hold up gmemd's exit -------------------------------------------------------------
# signals queued for a stopped bus daemon are given a second to go out, not for ever
addr=unix:path=$tmp/bus2
dbus-daemon --config-file="$top/dbus/test-bus.conf" --address="$addr" --nofork > /dev/null 2> "$tmp/bus2.log" &
bus_pid=$!
for _ in $(seq 250); do
        [[ -S $tmp/bus2 ]] && break
        sleep 0.02
done
"$gmemd" --bus "$addr" --socket "$tmp/gmemd2.sock" > "$tmp/gmemd.log" 2>&1 &
gmemd_pid=$!
for _ in $(seq 250); do
        grep -q 'D-Bus: org.gmem.Broker1 on' "$tmp/gmemd.log" && [[ -S $tmp/gmemd2.sock ]] && break
        kill -0 "$gmemd_pid" 2> /dev/null || fail "the second gmemd exited at start"
        sleep 0.02
done
kill -STOP "$bus_pid"
flood "$tmp/gmemd2.sock" "$n" frozen || { kill -CONT "$bus_pid"; fail "the socket stalled while the bus was stopped"; }
kill -TERM "$gmemd_pid"
for _ in $(seq 100); do
        kill -0 "$gmemd_pid" 2> /dev/null || break
        sleep 0.05
done
kill -0 "$gmemd_pid" 2> /dev/null && { kill -CONT "$bus_pid"; fail "gmemd did not exit within 5 s of SIGTERM with the bus stopped"; }
wait "$gmemd_pid"
rc=$?
gmemd_pid=
kill -CONT "$bus_pid"
((rc == 0)) || fail "gmemd exited $rc on SIGTERM with the bus stopped"
ok "gmemd exits promptly on SIGTERM while the bus is stopped"

# --- gmemd stops while a call waits for polkit: the call is answered, gmemd exits at once ---------------
# A stand-in that owns polkit's name (as user polkitd, as polkit's bus policy wants) and never answers.
if [[ -n $pydbus ]] && getent passwd polkitd > /dev/null && [[ -f /usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf ]]; then
        kill -CONT "$bus_pid"
        setpriv --reuid=polkitd --regid="$(id -g polkitd)" --clear-groups "$pydbus" -c '
import dbus, sys, time
bus = dbus.bus.BusConnection(sys.argv[1])
assert bus.request_name("org.freedesktop.PolicyKit1") == dbus.bus.REQUEST_NAME_REPLY_PRIMARY_OWNER
print("owned", flush=True)
time.sleep(600)' "$addr" > "$tmp/fakepk.out" 2>&1 &
        fakepk_pid=$!
        # the bus was stopped when the last gmemd left: it may not have dropped its name yet
        for _ in $(seq 250); do
                [[ $(B call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus NameHasOwner s org.gmem.Broker1 \
                        2> /dev/null) == "b false" ]] && break
                sleep 0.02
        done
        "$gmemd" --bus "$addr" --socket "$tmp/gmemd3.sock" > "$tmp/gmemd.log" 2>&1 &
        gmemd_pid=$!
        for _ in $(seq 250); do
                grep -q owned "$tmp/fakepk.out" && grep -q 'D-Bus: org.gmem.Broker1 on' "$tmp/gmemd.log" && break
                kill -0 "$gmemd_pid" 2> /dev/null || fail "the third gmemd exited at start"
                sleep 0.02
        done
        grep -q owned "$tmp/fakepk.out" || fail "the polkit stand-in did not take the name: $(cat "$tmp/fakepk.out")"
        setpriv --reuid=$nobody --regid=$nobody --clear-groups gdbus call --address "$addr" --dest org.gmem.Broker1 \
                --object-path /org/gmem/Broker1 --method org.gmem.Broker1.Manager.CreateRegion waits memfd 4096 '{}' \
                > "$tmp/waiting" 2>&1 &
        caller_pid=$!
        sleep 0.5
        kill -0 "$caller_pid" 2> /dev/null || fail "the call did not wait for polkit: $(cat "$tmp/waiting")"
        kill -TERM "$gmemd_pid"
        for _ in $(seq 100); do
                kill -0 "$gmemd_pid" 2> /dev/null || break
                sleep 0.05
        done
        kill -0 "$gmemd_pid" 2> /dev/null && fail "gmemd did not exit within 5 s of SIGTERM with a call waiting for polkit"
        wait "$gmemd_pid"
        rc=$?
        gmemd_pid=
        ((rc == 0)) || fail "gmemd exited $rc on SIGTERM with a call waiting for polkit"
        wait "$caller_pid"
        caller_pid=
        grep -q "GDBus.Error:org.freedesktop.DBus.Error.Failed: gmemd is stopping" "$tmp/waiting" ||
                fail "the waiting call was not answered: $(cat "$tmp/waiting")"
        kill "$fakepk_pid"
        wait "$fakepk_pid" 2> /dev/null
        fakepk_pid=
        ok "gmemd stops with a call waiting for polkit: the call is answered (gmemd is stopping), gmemd exits cleanly"
else
        note "SKIP stopping with a call waiting for polkit: needs python3-dbus and polkitd's user"
fi
