# Sourced by scripts and tests that need a gmemd of their own (bash).
# BUILD: the build directory (default build).

# start_gmemd SOCKET LOG [ARGS...]: start the build's gmemd on SOCKET (no D-Bus), logging to LOG,
# and wait up to 5 s until it answers. Sets GMEMD_PID. Returns 1, with a reason on stderr, if it
# exits or never answers.
start_gmemd() {
        local sock=$1 log=$2 bin=${BUILD:-build}/bin
        shift 2
        "$bin/gmemd" --socket "$sock" --bus none "$@" 2> "$log" &
        GMEMD_PID=$!
        for _ in $(seq 250); do
                [[ -S $sock ]] && "$bin/gmemctl" --socket "$sock" list > /dev/null 2>&1 && return 0
                if ! kill -0 "$GMEMD_PID" 2> /dev/null; then
                        echo "gmemd exited at start: $(tail -n 3 "$log")" >&2
                        return 1
                fi
                sleep 0.02
        done
        echo "gmemd did not answer on $sock within 5 s" >&2
        return 1
}

# stop_gmemd: SIGTERM to the gmemd start_gmemd started, and wait for it.
stop_gmemd() {
        if [[ -n ${GMEMD_PID:-} ]]; then
                kill -TERM "$GMEMD_PID" 2> /dev/null
                wait "$GMEMD_PID" 2> /dev/null
                GMEMD_PID=
        fi
}
