#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Firecracker's side of its page-fault handler handshake, for tests/check-systemd.sh (no
Firecracker binary can run here): guest memory as two anonymous private mappings (the halves of
MEMFILE), one userfaultfd registered on both (MISSING), a connect to SOCKET and one message — the
JSON array of regions as Firecracker sends it and the uffd as SCM_RIGHTS (its
docs/snapshotting/handling-page-faults-on-snapshot-resume.md). It touches a byte of each region,
prints "waiting PID", waits for GOFILE, then reads all of its memory (every page a fault the
handler must serve) and prints "verified" if it is MEMFILE's bytes, else "MISMATCH".

usage: fake-firecracker.py SOCKET MEMFILE GOFILE"""
import ctypes
import json
import mmap
import os
import socket
import struct
import sys
import time

SYS_USERFAULTFD = 323  # x86-64
UFFD_API = 0xAA
UFFDIO_API = 0xC018AA3F       # _IOWR(0xAA, 0x3F, struct uffdio_api)
UFFDIO_REGISTER = 0xC020AA00  # _IOWR(0xAA, 0x00, struct uffdio_register)
UFFDIO_REGISTER_MODE_MISSING = 1

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def ioctl(fd, request, payload):
    buf = ctypes.create_string_buffer(payload, len(payload))
    if libc.ioctl(fd, ctypes.c_ulong(request), buf) < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"ioctl {request:#x}: {os.strerror(err)}")
    return buf.raw


def address(m):
    return ctypes.addressof(ctypes.c_char.from_buffer(m))


def main():
    sock_path, mem_file, go_file = sys.argv[1:4]
    size = os.path.getsize(mem_file)
    half = size // 2 // 4096 * 4096
    regions = [mmap.mmap(-1, half, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS),
               mmap.mmap(-1, size - half, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)]
    uffd = libc.syscall(SYS_USERFAULTFD, os.O_CLOEXEC | os.O_NONBLOCK)
    if uffd < 0:
        sys.exit(f"userfaultfd: {os.strerror(ctypes.get_errno())}")
    ioctl(uffd, UFFDIO_API, struct.pack("QQQ", UFFD_API, 0, 0))
    for m in regions:
        ioctl(uffd, UFFDIO_REGISTER, struct.pack("QQQQ", address(m), len(m), UFFDIO_REGISTER_MODE_MISSING, 0))
    mappings = [{"base_host_virt_addr": address(regions[0]), "size": half, "offset": 0,
                 "page_size": 4096, "page_size_kib": 4096},
                {"base_host_virt_addr": address(regions[1]), "size": size - half, "offset": half,
                 "page_size": 4096, "page_size_kib": 4096}]
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(sock_path)
    socket.send_fds(conn, [json.dumps(mappings).encode()], [uffd])
    touched = regions[0][0] ^ regions[1][0]  # served now, by whichever handler there is
    print(f"waiting {os.getpid()} (touched {touched})", flush=True)
    deadline = time.monotonic() + 300
    while not os.path.exists(go_file):
        if time.monotonic() > deadline:
            sys.exit(f"{go_file} did not appear")
        time.sleep(0.01)
    with open(mem_file, "rb") as f:
        want = f.read()
    got = regions[0][:] + regions[1][:]
    print("verified" if got == want else "MISMATCH", flush=True)
    sys.exit(0 if got == want else 1)


if __name__ == "__main__":
    main()
