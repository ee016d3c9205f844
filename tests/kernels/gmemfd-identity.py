#!/usr/bin/env python3
"""Print what a guest_memfd looks like on the running kernel: the /proc link and the filesystem
(statfs f_type), for the check-kernels log. Says why when it cannot make one."""
import fcntl
import os
import struct
import subprocess

KVM_CREATE_VM = 0xAE01
KVM_CREATE_GUEST_MEMFD = 0xC040AED4  # _IOWR(KVMIO, 0xd4, struct kvm_create_guest_memfd): 64 bytes

try:
    kvm = os.open("/dev/kvm", os.O_RDWR)
    vm = fcntl.ioctl(kvm, KVM_CREATE_VM, 0)
    arg = bytearray(struct.pack("8Q", 1 << 16, 0, 0, 0, 0, 0, 0, 0))
    fd = fcntl.ioctl(vm, KVM_CREATE_GUEST_MEMFD, arg)
except OSError as e:
    print("no guest_memfd: %s" % e)
else:
    link = os.readlink("/proc/self/fd/%d" % fd)
    fs = subprocess.run(["stat", "-f", "-L", "-c", "%t %T", "/proc/%d/fd/%d" % (os.getpid(), fd)],
                        capture_output=True, text=True).stdout.strip()
    print("link %r f_type 0x%s" % (link, fs))
