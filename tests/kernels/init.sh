#!/bin/bash
# /init of the make check-kernels initramfs: mount what the tests need, load KVM, print the
# kernel's caps, run the tests listed in /gmem/kernel-tests.list, power off. The host reads the
# lines that start with GMEM- from the serial console.
export PATH=/usr/sbin:/usr/bin HOME=/root LANG=C.UTF-8
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2> /dev/null
mkdir -p /dev/pts /dev/shm /dev/hugepages
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t hugetlbfs hugetlbfs /dev/hugepages
# a cgroup2 hierarchy: the memory controller for the tests under memory pressure
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2> /dev/null
ln -sf /proc/self/fd /dev/fd

if [[ -f /modules/order ]]; then
        while read -r m; do
                insmod "/modules/$m" || echo "GMEM-WARN insmod $m failed"
        done < /modules/order
fi
# Without a clock source the tests' timeouts still work; give date a sane start anyway.
echo "GMEM-RELEASE $(uname -r)"
echo "GMEM-CMDLINE $(cat /proc/cmdline)"
cd /gmem || poweroff -f
echo "GMEM-CAPS $(build/bin/gmemctl caps --json 2>&1)"
echo "GMEM-GMEMFD $(python3 tests/kernels/gmemfd-identity.py 2>&1)"
build/bin/gmemctl caps 2>&1 | sed 's/^/GMEM-CAPS-TEXT /'

if [[ -x kernel-cmd ]]; then
        # a developer's own command instead of the suite (GMEM_KERNEL_CMD=script make check-kernels)
        ./kernel-cmd 2>&1
        echo "GMEM-DONE"
        sync
        poweroff -f
fi
mapfile -t tests < kernel-tests.list
if [[ -n ${gmem_only:-} ]]; then
        # gmem_only=NAME[,NAME...] on the kernel command line: run just those
        IFS=, read -ra only <<< "$gmem_only"
        sel=()
        for t in "${tests[@]}"; do
                for o in "${only[@]}"; do
                        [[ $(basename "$t") == "$o" ]] && sel+=("$t")
                done
        done
        tests=("${sel[@]}")
fi
export CK_FORK=yes GMEM_IN_KERNEL_MATRIX=1
BUILD=build bash tests/run-tests.sh "${tests[@]}" 2>&1 | while IFS= read -r line; do
        echo "$line"
        # when each test ended, in seconds since boot: where a kernel's minutes go
        [[ $line =~ ^(PASS|FAIL|SKIP)\ ([^: ]+) ]] && echo "GMEM-TIME $(cut -d' ' -f1 /proc/uptime) ${BASH_REMATCH[2]}"
        [[ $line =~ ^[0-9]+\ passed,\ [0-9]+\ failed,\ [0-9]+\ skipped$ ]] && echo "GMEM-RESULT $line"
done
# Where a guest_memfd has a write() path besides its mapping (the secret-hiding series), which one
# populates faster, from a file and from a buffer, measured here against each other.
if build/bin/gmemctl --json caps | python3 -c \
        'import json, sys; sys.exit(not json.load(sys.stdin)["guest_memfd"]["write_syscall"])' 2> /dev/null; then
        build/bin/gmem-bench --backend guest_memfd --size 64 --trials 3 2>&1 | sed 's/^/GMEM-BENCH /'
fi
echo "GMEM-DONE"
sync
poweroff -f
