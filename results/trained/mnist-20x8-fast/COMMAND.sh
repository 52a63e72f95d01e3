#!/usr/bin/env bash
# Stateful learned protocol on MNIST 20x8 (MPLP.md §5.3: k = 4, hidden 7, per-layer learners),
# from scratch, with the fast recipe's outer loop: Adam 1e-3 on per-tensor unit-norm gradients,
# 100 warm-up steps then cosine decay over 2,000 meta-steps, one task per meta-step (the task's
# default), evaluated every 100 meta-steps on the fixed 100 evaluation tasks. One torch thread.
# Resumable: re-running continues from checkpoint.pt.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 lbpbench train --task mnist-20x8 --learner stateful \
  --message-size 4 --hidden-size 7 --steps 2000 --meta-lr 1e-3 --lr-schedule cosine \
  --warmup-steps 100 --grad-norm unit --eval-every 100 --eval-tasks 100 \
  --compile --quiet --out results/trained/mnist-20x8-fast
