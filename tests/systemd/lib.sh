# SPDX-License-Identifier: LGPL-2.1-or-later
# Sourced by tests/check-systemd.sh and tests/torture.sh: the real systemd 252 as PID 1 of a
# PID+mount(+UTS, IPC, net, cgroup) namespace of the test's own, with the project's units
# (ExecStart pointed at this build with --bus none; RestartSec and WatchdogSec shortened; more
# drop-in lines from $sd_extra_dropin), and everything to undo it.
#
# Safety (DESIGN.md §6): systemd sees only the test's own unit directory (SYSTEMD_UNIT_PATH, no
# trailing colon), no generators, private tmpfs on /run, /tmp and /dev/shm, a read-only root file
# system, /proc/sys and /sys, its own UTS/IPC/net/cgroup namespaces and cgroup subtree, and a pty
# as /dev/console (tests/systemd/ns-init.sh). It is killed by its own pid, and afterwards
# host_untouched checks that marker files in the host's /tmp and /run are still there, the hostname
# is the same, no mount and no cgroup was left behind.
#
# The caller defines say and skip (exit 77 with a reason), and sets src, BUILD and gmemd (the
# binary); fail and show_logs are here (redefine them after sourcing if need be). Use: sd_probe;
# sd_prepare PREFIX; sd_boot; then ns and sctl; cleanup when done (stop_systemd, host_untouched,
# and $T removed; rc_override=1 when the host was touched).
systemd_bin=/lib/systemd/systemd

sd_probe() {
        [[ $(id -u) == 0 ]] || skip "not root: running systemd as PID 1 in a namespace needs root"
        [[ -x $systemd_bin ]] || skip "no $systemd_bin"
        for c in unshare nsenter findmnt systemctl script; do
                command -v "$c" > /dev/null || skip "no $c"
        done
        grep -qw cgroup2 /proc/filesystems || skip "this kernel has no cgroup2 file system (CONFIG_CGROUPS off): systemd needs one"
        cg2=$(findmnt -n -t cgroup2 -o TARGET | head -n 1)
        [[ -n $cg2 ]] || skip "no cgroup2 hierarchy mounted: systemd in a namespace needs one"
        own=$(sed -n 's/^0:://p' /proc/self/cgroup)
        [[ -n $own && -d $cg2$own ]] || skip "cannot find this process's cgroup2 directory"
        unshare --pid --fork --mount --mount-proc --uts --ipc --net --cgroup true 2> /dev/null ||
                skip "unshare cannot make PID/mount/UTS/IPC/net/cgroup namespaces here"
}

# --- state the test owns; everything is undone in cleanup -------------------------------------
sd_prepare() { # PREFIX: /tmp/PREFIX-XXXXXX
        sd_prefix=$1
        T=$(mktemp -d "/tmp/$1-XXXXXX") || exit 1
        chmod 0755 "$T"
        cg=$cg2${own%/}/gmem-test-$$
        marker_tmp=$(mktemp "/tmp/$1-marker-XXXXXX")
        marker_run=$(mktemp "/run/$1-marker-XXXXXX")
        hostname_before=$(hostname)
        mounts_before=$(wc -l < /proc/self/mountinfo)
        scriptpid="" upid="" sdpid="" cleaned=0
        sd_units
}

# is $1 still the systemd we started (child of our unshare, in our cgroup)?
is_our_systemd() {
        [[ -n $1 && -n $upid ]] || return 1
        [[ $(awk '/^PPid:/ { print $2 }' "/proc/$1/status" 2> /dev/null) == "$upid" ]] || return 1
        grep -q "^0::.*/gmem-test-$$" "/proc/$1/cgroup" 2> /dev/null
}

stop_systemd() {
        if [[ -n $sdpid ]] && is_our_systemd "$sdpid"; then
                kill -KILL "$sdpid" 2> /dev/null
        fi
        if [[ -n $scriptpid ]]; then
                # unshare exits once its child, the namespace's PID 1, is gone; script with it
                wait "$scriptpid" 2> /dev/null
                scriptpid=""
        fi
        upid=""
        sdpid=""
        # every process of the namespace is gone with its PID 1; the cgroups it made remain
        if [[ $cg == "$cg2"*/gmem-test-$$ && -d $cg ]]; then
                for _ in $(seq 100); do
                        grep -q '^populated 0' "$cg/cgroup.events" 2> /dev/null && break
                        sleep 0.05
                done
                find "$cg" -depth -type d -exec rmdir {} + 2> /dev/null
                [[ -d $cg ]] && echo "WARNING: could not remove cgroup $cg"
        fi
}

host_untouched() {
        local bad=0
        [[ -f $marker_tmp ]] || { echo "HOST TOUCHED: $marker_tmp vanished from the host's /tmp"; bad=1; }
        [[ -f $marker_run ]] || { echo "HOST TOUCHED: $marker_run vanished from the host's /run"; bad=1; }
        [[ $(hostname) == "$hostname_before" ]] || { echo "HOST TOUCHED: hostname is now $(hostname)"; bad=1; }
        [[ $(wc -l < /proc/self/mountinfo) == "$mounts_before" ]] || { echo "HOST TOUCHED: mount table changed"; bad=1; }
        return $bad
}

cleanup() {
        ((cleaned)) && return
        cleaned=1
        stop_systemd
        host_untouched || rc_override=1
        rm -f "$marker_tmp" "$marker_run"
        if [[ ${GMEM_TEST_SYSTEMD_KEEP:-0} == 1 ]]; then
                echo "kept $T"
        elif [[ -n ${sd_prefix:-} && $T == /tmp/$sd_prefix-* ]]; then
                rm -rf "$T"
        fi
}

show_logs() {
        echo "---- systemd (console) ----"
        tail -n 40 "$T/console.log" 2> /dev/null | tr -d "\r"
        echo "---- gmemd (stdout/stderr of every run) ----"
        tail -n 60 "$T/gmemd.log" 2> /dev/null
}
fail() {
        echo "FAIL: $*"
        show_logs
        exit 1
}

# --- the unit directory: the project's units as `make install` writes them, plus test drop-ins --
sd_units() {
        units=$T/units
        mkdir -p "$units" "$T/generators"
        : > "$T/gmemd.log"
        # gmemd runs from a copy in the test directory (/run/gmem-test inside the namespace): the service
        # has PrivateTmp=yes, so a build under /tmp (a clean clone may be there) would be out of its sight
        mkdir -p "$T/sbin"
        cp "$gmemd" "$T/sbin/gmemd"
        sbin=/run/gmem-test/sbin
        for u in "$src"/systemd/gmemd.service "$src"/systemd/gmemd.socket; do
                [[ -f $u ]] || skip "no $u"
                # as `make install` does with SBINDIR=$sbin
                sed "s|@SBINDIR@|$sbin|g" "$u" > "$units/$(basename "$u")"
        done
        mkdir -p "$units/gmemd.service.d"
        cat > "$units/gmemd.service.d/50-test.conf" << EOF
# test only: no D-Bus in the namespace, quick restarts, output into the test's log
[Service]
ExecStart=
ExecStart=$sbin/gmemd --bus none
RestartSec=100ms
# short, so the test sees gmemd's WATCHDOG=1 pings (every WATCHDOG_USEC/2)
WatchdogSec=2s
StandardOutput=append:/run/gmem-test/gmemd.log
StandardError=inherit
${sd_extra_dropin:-}
EOF
        # the targets the units' default dependencies name, empty
        for t in sysinit basic sockets shutdown; do
                printf '[Unit]\nDescription=%s (gmem test)\nDefaultDependencies=no\n' "$t" > "$units/$t.target"
        done
        cat > "$units/gmem-test.target" << 'EOF'
[Unit]
Description=gmem systemd test
DefaultDependencies=no
Wants=gmem-hello.service gmemd.socket
EOF
        # proves systemd runs units here before gmemd is involved
        cat > "$units/gmem-hello.service" << 'EOF'
[Unit]
Description=gmem test: systemd starts services
DefaultDependencies=no
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'echo "hello from $$" > /run/gmem-test/hello'
EOF

        # the group the socket unit wants (SocketGroup=gmem): systemd-sysusers applies our sysusers.d
        # entry to a copy of the host's /etc without any gmem group; the resulting /etc/group is
        # bind-mounted over /etc/group inside
        mkdir -p "$T/sysroot/etc" "$T/sysroot/usr/lib/sysusers.d"
        for f in passwd group shadow gshadow; do
                [[ -f /etc/$f ]] && cp -p "/etc/$f" "$T/sysroot/etc/$f"
        done
        sed -i '/^gmem:/d' "$T/sysroot/etc/group" "$T/sysroot/etc/gshadow" 2> /dev/null
        command -v systemd-sysusers > /dev/null || skip "no systemd-sysusers"
        cp "$src/systemd/gmemd.sysusers" "$T/sysroot/usr/lib/sysusers.d/gmemd.conf"
        # a bare name is looked up in sysusers.d under --root
        systemd-sysusers --root="$T/sysroot" gmemd.conf > "$T/sysusers.out" 2>&1 ||
                fail "systemd-sysusers on gmemd.sysusers: $(cat "$T/sysusers.out")"
        grep -q '^gmem:' "$T/sysroot/etc/group" || fail "sysusers did not create group gmem: $(cat "$T/sysusers.out")"
        cp "$T/sysroot/etc/group" "$T/etc-group"
        # the namespace covers /tmp with a tmpfs of its own: ns-init.sh mounts the build back where it is
        # (a clean clone may well live under /tmp)
        printf '%s\n' "$BUILD" > "$T/build-path"
}

# --- boot ------------------------------------------------------------------------------------
sd_boot() {
        say "booting systemd as PID 1 in a new namespace (cgroup $cg)"
        mkdir "$cg" || skip "cannot create cgroup $cg"
        # script(1) gives the namespace a pty for its console and logs it; its child moves itself into
        # our cgroup and becomes unshare, whose child becomes systemd (through bash: busybox's sh, /bin/sh
        # in check-kernels' initramfs, would run its own unshare applet, not util-linux's)
        SHELL=/bin/bash script -q -e -f -c "echo \$\$ > $cg/cgroup.procs && exec unshare --pid --fork --mount \
                --mount-proc --uts --ipc --net --cgroup --propagation private -- /bin/bash $src/tests/systemd/ns-init.sh $T" \
                "$T/console.log" > /dev/null 2>&1 < /dev/null &
        scriptpid=$!

        for _ in $(seq 100); do
                upid=$(cat "/proc/$scriptpid/task/$scriptpid/children" 2> /dev/null | awk '{ print $1 }')
                if [[ -n $upid && $(cat "/proc/$upid/comm" 2> /dev/null) == unshare ]]; then
                        sdpid=$(cat "/proc/$upid/task/$upid/children" 2> /dev/null | awk '{ print $1 }')
                        [[ -n $sdpid ]] && break
                fi
                kill -0 "$scriptpid" 2> /dev/null || break
                sleep 0.05
        done
        [[ -n $sdpid ]] || skip "the namespace did not come up: $(tail -n 3 "$T/console.log" | tr -s '\r\n' '  ')"

        booted=0
        for _ in $(seq 200); do
                if ! is_our_systemd "$sdpid"; then
                        break
                fi
                state=$(sctl is-system-running 2> /dev/null)
                case $state in running | degraded)
                        booted=1
                        break ;;
                esac
                sleep 0.1
        done
        if ((!booted)); then
                show_logs
                skip "systemd did not boot in the namespace (state '${state:-none}'); see the log above"
        fi
        say "systemd $(sctl --version | awk 'NR == 1 { print $2 }') is PID 1 of the namespace (host pid $sdpid), state $state"
        [[ $(ns cat /run/gmem-test/hello 2> /dev/null) == "hello from "* ]] || fail "the trivial test unit did not run"
        [[ $(sctl show -p LoadState --value gmemd.service) == loaded ]] || fail "gmemd.service is not loaded: $(sctl status gmemd.service 2>&1)"
        # no generator ran, and only our unit directory is searched
        [[ -z $(ls -A "/proc/$sdpid/root/run/systemd/generator" 2> /dev/null) ]] || fail "generators ran in the namespace"
}

ns() { nsenter --target "$sdpid" --mount --pid --uts --ipc --net --cgroup -- "$@"; }
sctl() { ns systemctl --no-pager "$@"; }
