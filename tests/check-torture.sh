#!/bin/bash
# A bounded run of the torture harness (tests/torture.sh: gmemd under systemd, memory pressure, a
# reference model of every byte, seeded and shrunk): GMEM_TORTURE_SECONDS (45; 30 inside the
# kernel matrix, where TCG makes each step slow). `make torture` runs it for 30 minutes.
# Exit 0 pass, 77 skip (last line says why), 1 fail (the seed and a shrunk sequence above).
set -u
here=$(cd "$(dirname "$0")" && pwd)
default=45
[[ -n ${GMEM_IN_KERNEL_MATRIX:-} ]] && default=30
TORTURE_SECONDS=${GMEM_TORTURE_SECONDS:-$default} exec bash "$here/torture.sh"
