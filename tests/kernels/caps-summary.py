#!/usr/bin/env python3
"""One line from `gmemctl caps --json` (stdin): what a kernel offers, for the check-kernels matrix."""
import json
import sys


def summary(c):
    g = c.get("guest_memfd", {})
    parts = []
    if not c.get("kvm", {}).get("usable"):
        parts.append("no KVM")
    if not g.get("supported"):
        parts.append("guest_memfd no")
    elif not g.get("usable", True):
        parts.append("guest_memfd unusable (%s)" % g.get("error", "?"))
    else:
        names = [n for n in ("mmap", "init_shared", "no_direct_map", "write") if g.get("flags", {}).get(n)]
        parts.append("guest_memfd 0x%x %s best 0x%x" % (g.get("flags_mask", 0), "+".join(names) or "-",
                                                       g.get("best_flags", 0)))
        uffd = [m for m, on in g.get("userfaultfd", {}).items() if on]
        feats = [n for n, k in (("numa", "numa_policy"), ("write()", "write_syscall")) if g.get(k)]
        if uffd:
            feats.append("uffd " + "+".join(uffd))
        if g.get("default_vm") is False:
            feats.append("not on default VMs")
        if feats:
            parts.append(",".join(feats))
    types = []
    for t in c.get("vm_types", []):
        types.append(t["name"] + ("(private)" if t.get("private_memory") else ""))
    parts.append("vm " + ",".join(types or ["-"]))
    conv = c.get("conversion", {})
    if conv.get("in_place"):
        parts.append("in-place conversion")
    parts.append("secret " + ("yes" if c.get("memfd_secret", {}).get("supported") else "no"))
    parts.append("profile " + c.get("kernel", {}).get("profile", "?"))
    pick = c.get("guest_memory")
    if pick:
        parts.append("guests on %s%s" % (pick["backend"], " 0x%x" % pick["flags"] if pick["flags"] else ""))
    return "; ".join(parts)


if __name__ == "__main__":
    text = sys.stdin.read().strip()
    print(summary(json.loads(text)))
