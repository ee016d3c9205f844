#!/usr/bin/env python3
"""The check-kernels matrix from build/kernels/matrix.tsv (stdin), as text or as the README's
Markdown table (`matrix.py markdown`). Columns: name, release, caps summary, passed, failed,
skipped, boot time or the reason for a skip."""
import sys


def rows():
    for line in sys.stdin:
        f = line.rstrip("\n").split("\t")
        if len(f) >= 7:
            yield f


def text(rs):
    head = ("kernel", "release", "passed", "failed", "skipped", "time", "caps")
    table = [head] + [(r[0], r[1], r[3], r[4], r[5], r[6], r[2]) for r in rs]
    widths = [max(len(t[i]) for t in table) for i in range(len(head) - 1)]
    for t in table:
        print("  ".join(t[i].ljust(widths[i]) for i in range(len(widths))) + "  " + t[-1])


def markdown(rs):
    print("| kernel | release | what gmem finds there | passed | failed | skipped |")
    print("|---|---|---|---|---|---|")
    for r in rs:
        print("| %s | %s | %s | %s | %s | %s |" % (r[0], r[1], r[2], r[3], r[4], r[5]))


if __name__ == "__main__":
    rs = list(rows())
    (markdown if sys.argv[1:] == ["markdown"] else text)(rs)
