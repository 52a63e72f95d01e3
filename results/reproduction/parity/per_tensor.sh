#!/usr/bin/env bash
# Per-tensor maximum errors (over all steps and tasks) of the three golden files, from the same
# replay as `lbpbench reference verify` (whose table prints only the largest parameter / message /
# carry error per step). Usage: bash results/reproduction/parity/per_tensor.sh [REFERENCE_DIR]
# (default /work/shared/reference); prints per_tensor.txt's body.
set -euo pipefail
ref=${1:-/work/shared/reference}
for n in sinusoid_stateful_5x10 maml_stateless_2x10 mnist_stateful_20x8; do
    echo "== golden_$n.npz"
    python -c "
import sys
from lbpbench.reference.golden import verify_golden
r = verify_golden(sys.argv[1])
for g in ('params', 'messages', 'carries', 'metrics'):
    for name in sorted({k for s in r.steps for k in getattr(s, g)}):
        print(g, name, '%.3g' % max(getattr(s, g).get(name, 0.0) for s in r.steps))
print('ok', r.ok)
" "$ref/golden_$n.npz"
done
