#!/bin/bash
# gmemd's log where it goes:
#  - on a terminal (a pty from script(1)): plain lines, no "<N>" priority prefixes;
#  - into a file or pipe: lines with the prefixes (syslog-aware collectors file them);
#  - on the journal (stderr is the stream $JOURNAL_STREAM names): native entries, read here by a
#    stand-in for journald bound at /run/systemd/journal/socket in a private mount namespace
#    (this machine runs no journald the test could read back; the stand-in receives exactly the
#    datagrams sd_journal_send() sends): PRIORITY=, SYSLOG_IDENTIFIER=gmemd, and REGION=,
#    CLIENT_UID=, OP= on region events, ERRNO= on a failed request (at -v); nothing on stderr.
# Exit 0 pass, 77 skip, else fail.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$src/$BUILD
gmemd=$BUILD/bin/gmemd
ctl=$BUILD/bin/gmemctl
fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "$*"; exit 77; }
[[ -x $gmemd && -x $ctl ]] || skip "gmemd and gmemctl are not built"
for c in script python3 unshare; do
        command -v "$c" > /dev/null || skip "no $c"
done

T=$(mktemp -d /tmp/gmem-logs-XXXXXX) || exit 1
trap 'rm -rf "$T"' EXIT

wait_sock() {
        for _ in $(seq 250); do
                [[ -S $1 ]] && "$ctl" --socket "$1" list > /dev/null 2>&1 && return 0
                sleep 0.02
        done
        return 1
}

# --- a terminal -----------------------------------------------------------------------------------
script -q -e -c "exec $gmemd --socket $T/tty.sock --bus none" "$T/tty.log" > /dev/null 2>&1 < /dev/null &
spid=$!
wait_sock "$T/tty.sock" || fail "gmemd on a pty did not come up: $(cat "$T/tty.log")"
"$ctl" --socket "$T/tty.sock" create t0 --size 1M > /dev/null || fail "create on the pty gmemd"
pkill -TERM -f "^$gmemd --socket $T/tty.sock" 2> /dev/null
wait "$spid" 2> /dev/null
tr -d '\r' < "$T/tty.log" > "$T/tty.txt"
grep -q "listening on $T/tty.sock" "$T/tty.txt" || fail "no start line on the terminal: $(cat "$T/tty.txt")"
grep -q "^region 't0'" "$T/tty.txt" || fail "no plain region line on the terminal: $(cat "$T/tty.txt")"
! grep -q '^<[0-7]>' "$T/tty.txt" || fail "priority prefixes on a terminal: $(grep '^<' "$T/tty.txt" | head -2)"
echo "ok: a terminal gets plain lines"

# --- a file -------------------------------------------------------------------------------------
"$gmemd" --socket "$T/file.sock" --bus none 2> "$T/file.log" &
fpid=$!
wait_sock "$T/file.sock" || fail "gmemd did not come up: $(cat "$T/file.log")"
kill -TERM "$fpid"
wait "$fpid"
grep -q "^<5>gmemd .* listening on $T/file.sock" "$T/file.log" || fail "a file gets no prefixed lines: $(cat "$T/file.log")"
echo "ok: a file gets lines with priority prefixes"

# --- the journal ----------------------------------------------------------------------------------
cat > "$T/journal.py" << 'EOF'
# a stand-in for journald's native socket: every datagram, parsed (KEY=value lines, and the
# binary form KEY\n<le64 length><value>\n), as one JSON object per line
import json, os, socket, struct, sys
path, out, ready = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
open(ready, "w").close()
s.settimeout(30)
with open(out, "w") as f:
    while True:
        try:
            d = s.recv(1 << 20)
        except socket.timeout:
            break
        if d == b"STOP":
            break
        e, i = {}, 0
        while i < len(d):
            nl = d.index(b"\n", i)
            line = d[i:nl]
            if b"=" in line:
                k, v = line.split(b"=", 1)
                i = nl + 1
            else:
                k = line
                n = struct.unpack("<Q", d[nl + 1:nl + 9])[0]
                v = d[nl + 9:nl + 9 + n]
                i = nl + 9 + n + 1
            e[k.decode()] = v.decode(errors="replace")
        f.write(json.dumps(e) + "\n")
        f.flush()
EOF
cat > "$T/inside.sh" << 'EOF'
set -u
T=$1 gmemd=$2 ctl=$3
mount --make-rprivate /
mount -t tmpfs -o mode=0755 run /run
mkdir -p /run/systemd/journal
python3 "$T/journal.py" /run/systemd/journal/socket "$T/journal.jsonl" "$T/ready" &
jpid=$!
for _ in $(seq 250); do [[ -e $T/ready ]] && break; sleep 0.02; done
[[ -e $T/ready ]] || { echo "the journal stand-in did not start"; exit 1; }
: > "$T/stderr"
stream=$(stat -c '%d:%i' "$T/stderr")
JOURNAL_STREAM=$stream "$gmemd" --socket "$T/j.sock" --bus none -v 2>> "$T/stderr" &
gpid=$!
for _ in $(seq 250); do [[ -S $T/j.sock ]] && "$ctl" --socket "$T/j.sock" list > /dev/null 2>&1 && break; sleep 0.02; done
"$ctl" --socket "$T/j.sock" create jr0 --size 1M > /dev/null || echo "create failed"
"$ctl" --socket "$T/j.sock" info no-such-region > /dev/null 2>&1
"$ctl" --socket "$T/j.sock" release jr0 > /dev/null || echo "release failed"
kill -TERM "$gpid"
wait "$gpid"
python3 -c 'import socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.sendto(b"STOP", "/run/systemd/journal/socket")'
wait "$jpid"
EOF
unshare --mount --propagation private -- /bin/bash "$T/inside.sh" "$T" "$gmemd" "$ctl" > "$T/inside.log" 2>&1 ||
        fail "in the namespace: $(cat "$T/inside.log")"
[[ -s $T/journal.jsonl ]] || fail "nothing reached the journal: $(cat "$T/inside.log") stderr: $(cat "$T/stderr")"
python3 - "$T/journal.jsonl" "$T/j.sock" << 'EOF' || fail "journal entries: $(cat "$T/journal.jsonl")"
import json, sys
es = [json.loads(l) for l in open(sys.argv[1])]
def find(**want):
    for e in es:
        if all(e.get(k) == v if v is not None else k in e for k, v in want.items()):
            return e
    sys.exit("no entry with %s among %d" % (want, len(es)))
for e in es:
    assert e.get("SYSLOG_IDENTIFIER") == "gmemd" and e.get("PRIORITY", "").isdigit(), e
start = [e for e in es if "listening on " + sys.argv[2] in e.get("MESSAGE", "")]
assert start and start[0]["PRIORITY"] == "5", start
find(REGION="jr0", OP="create", CLIENT_UID=str(__import__("os").getuid()))
find(REGION="jr0", OP="release")
err = find(OP="info", REGION="no-such-region", ERRNO=None)
assert err["ERRNO"] == "2" and err["PRIORITY"] == "7", err  # ENOENT, at debug
EOF
[[ ! -s $T/stderr ]] || fail "gmemd wrote to stderr with the journal there: $(head -3 "$T/stderr")"
echo "ok: the journal gets native entries with PRIORITY, REGION, CLIENT_UID, OP and ERRNO; stderr stays empty"
