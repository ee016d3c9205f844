#!/bin/bash
# gmemd's socket lifecycle: a live daemon's socket is refused with a clear message, a stale one
# (left by a daemon killed with SIGKILL) is replaced, SIGTERM removes the socket and exits 0,
# and a bad config or path is one clear line and a non-zero exit.
set -euo pipefail
BUILD=${BUILD:-build}
gmemd=$BUILD/bin/gmemd
dir=$(mktemp -d /tmp/gmem-sock-XXXXXX)
pids=()
cleanup() {
        for p in "${pids[@]}"; do kill -9 "$p" 2> /dev/null || true; done
        rm -rf "$dir"
}
trap cleanup EXIT
sock=$dir/run/gmemd/gmemd.sock   # the directories do not exist yet: gmemd makes them
fail() { echo "FAIL: $*"; exit 1; }

wait_socket() {
        for _ in $(seq 200); do [[ -S $1 ]] && return 0; sleep 0.025; done
        fail "no socket at $1"
}

"$gmemd" --socket "$sock" --bus none 2> "$dir/a.log" & a=$!; pids+=("$a")
wait_socket "$sock"
[[ $(stat -c %a "$(dirname "$sock")") == 755 ]] || fail "socket directory mode $(stat -c %a "$(dirname "$sock")")"

# a second daemon on the same socket: refused, and the first keeps serving
if "$gmemd" --socket "$sock" --bus none 2> "$dir/b.log"; then fail "a second gmemd started on a live socket"; fi
grep -q "another gmemd is listening on '$sock'" "$dir/b.log" || fail "unclear refusal: $(cat "$dir/b.log")"
"$BUILD/bin/gmemctl" --socket "$sock" list > /dev/null || fail "the first daemon stopped serving"

# SIGKILL leaves the socket file behind: the next daemon replaces it
kill -9 "$a"; wait "$a" 2> /dev/null || true
[[ -S $sock ]] || fail "expected a stale socket file"
"$gmemd" --socket "$sock" --bus none 2> "$dir/c.log" & c=$!; pids+=("$c")
for _ in $(seq 200); do grep -q "listening" "$dir/c.log" && break; sleep 0.025; done
grep -q "replacing stale socket" "$dir/c.log" || fail "stale socket not reported: $(cat "$dir/c.log")"
"$BUILD/bin/gmemctl" --socket "$sock" create r1 --size 1M > /dev/null || fail "the new daemon does not serve"

# SIGTERM: exit 0 and the socket is gone
kill -TERM "$c"
rc=0; wait "$c" || rc=$?
[[ $rc == 0 ]] || fail "gmemd exited $rc on SIGTERM"
[[ ! -e $sock ]] || fail "socket left behind after SIGTERM"

# bad configuration: one line on stderr, non-zero exit, no socket
echo '{"limits":{"max_clients":0}}' > "$dir/bad.json"
if "$gmemd" --socket "$sock" --bus none --config "$dir/bad.json" 2> "$dir/d.log"; then fail "started with a bad config"; fi
[[ $(wc -l < "$dir/d.log") == 1 ]] && grep -q "max_clients" "$dir/d.log" || fail "unclear config error: $(cat "$dir/d.log")"
if "$gmemd" --socket "$sock" --bus none --config "$dir/missing.json" 2> "$dir/e.log"; then fail "started with a missing explicit config"; fi
grep -q "missing.json" "$dir/e.log" || fail "unclear missing-config error: $(cat "$dir/e.log")"
long=$dir/$(printf 'x%.0s' $(seq 120))
if "$gmemd" --socket "$long" --bus none 2> "$dir/f.log"; then fail "started on a too-long path"; fi
grep -q "longer than" "$dir/f.log" || fail "unclear path error: $(cat "$dir/f.log")"
[[ ! -e $sock ]] || fail "a failed start left a socket"
# an abstract socket ("@name"): served, and nothing to create or remove on disk
abs="@gmem-test-$$"
"$gmemd" --socket "$abs" --bus none 2> "$dir/g.log" & g=$!; pids+=("$g")
for _ in $(seq 200); do "$BUILD/bin/gmemctl" --socket "$abs" list > /dev/null 2>&1 && break; sleep 0.025; done
"$BUILD/bin/gmemctl" --socket "$abs" create abs1 --size 1M > /dev/null || fail "no service on the abstract socket $abs"
kill -TERM "$g"; rc=0; wait "$g" || rc=$?
[[ $rc == 0 ]] || fail "gmemd on an abstract socket exited $rc on SIGTERM"

# kernel_profile in the config: refused when unknown, in force (and said to be set) when known
echo '{"kernel_profile":"no-such-series"}' > "$dir/kp-bad.json"
if "$gmemd" --socket "$sock" --bus none --config "$dir/kp-bad.json" 2> "$dir/h.log"; then fail "started with a bad kernel_profile"; fi
grep -q "kernel_profile" "$dir/h.log" || fail "unclear kernel_profile error: $(cat "$dir/h.log")"
echo '{"kernel_profile":"secret-hiding"}' > "$dir/kp.json"
"$gmemd" --socket "$sock" --bus none --config "$dir/kp.json" 2> "$dir/i.log" & i=$!; pids+=("$i")
wait_socket "$sock"
python3 - "$sock" <<'PY' || fail "the daemon's caps do not show the configured profile"
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
for req in ({"op": "hello", "id": 1, "version": 1}, {"op": "caps", "id": 2}):
    s.send(json.dumps(req).encode())
    reply = json.loads(s.recv(1 << 20))
    assert reply["ok"], reply
kernel = reply["caps"]["kernel"]
assert kernel["profile"] == "secret-hiding" and kernel["profile_source"] == "explicit", kernel
PY
kill -TERM "$i"; wait "$i" || true

# warm pools: a bad one refused naming it; a create that fits handed a ready region, refilled
echo '{"pools":[{"backend":"guest_memfd","size":1048576,"count":1,"prefault":true}]}' > "$dir/pool-bad.json"
if "$gmemd" --socket "$sock" --bus none --config "$dir/pool-bad.json" 2> "$dir/p.log"; then fail "started with a bad pool"; fi
grep -q "pool 0: backend 'guest_memfd'" "$dir/p.log" || fail "unclear pool error: $(cat "$dir/p.log")"
echo '{"pools":[{"backend":"memfd","size":8388608,"count":1,"prefault":true}]}' > "$dir/pool.json"
"$gmemd" --socket "$sock" --bus none --config "$dir/pool.json" -v 2> "$dir/w.log" & w=$!; pids+=("$w")
wait_socket "$sock"
pool_ready() { # the caps reply's warm pool state: ready regions of pool 0
        python3 - "$sock" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
for req in ({"op": "hello", "id": 1, "version": 1}, {"op": "caps", "id": 2}):
    s.send(json.dumps(req).encode())
    reply = json.loads(s.recv(1 << 20))
print(reply["warm"]["pools"][0]["ready"])
PY
}
for _ in $(seq 100); do [[ $(pool_ready) == 1 ]] && break; sleep 0.05; done
[[ $(pool_ready) == 1 ]] || fail "the warm pool did not fill"
"$BUILD/bin/gmemctl" --socket "$sock" create warm1 --size 8M --prefault > /dev/null || fail "create from the pool"
grep -q "region 'warm1': handed a prefaulted region from a warm pool" "$dir/w.log" || fail "warm1 did not come from the pool"
[[ $("$BUILD/bin/gmemctl" --socket "$sock" --json info warm1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["resident_bytes"])') == 8388608 ]] ||
        fail "a prefaulted pooled region is not resident"
for _ in $(seq 100); do [[ $(pool_ready) == 1 ]] && break; sleep 0.05; done
[[ $(pool_ready) == 1 ]] || fail "the warm pool was not refilled"
"$BUILD/bin/gmemctl" --socket "$sock" create cold1 --size 4M --prefault > /dev/null || fail "create of another size"
grep -q "region 'cold1': handed" "$dir/w.log" && fail "a region of another size came from the pool"
kill -TERM "$w"; wait "$w" || true
echo "ok"
