#!/usr/bin/env bash
# The paper's recipe (MPLP.md §5), from scratch: sinusoid-5x10, stateful, k = 8, mean, per-layer
# learners, Adam 1e-4 on per-tensor unit-norm gradients, meta-batch 4, evaluated every 500
# meta-steps on the fixed 100 evaluation tasks. One torch thread. Resumable: re-running this
# command continues from checkpoint.pt.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 lbpbench train --task sinusoid-5x10 --learner stateful \
  --aggregator mean --message-size 8 --sharing layer --steps 40000 --eval-every 500 --eval-tasks 100 \
  --compile --quiet --out results/trained/sinusoid-5x10-paper
