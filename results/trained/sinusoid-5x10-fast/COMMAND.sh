#!/usr/bin/env bash
# The `fast` preset from scratch (issue 13): sinusoid-5x10, stateful, k = 8, mean, per-layer
# learners; Adam 1e-3 on per-tensor unit-norm gradients, 200 warm-up steps then cosine decay over
# 4,000 meta-steps, 16 tasks per meta-step; evaluated every 250 meta-steps on the fixed 100
# evaluation tasks. One torch thread. Resumable: re-running continues from checkpoint.pt.
# This folder was trained as run 1 of results/search/fast_recipe_2.toml (the same settings: the
# sweep's [fixed] + meta_lr 1e-3 + meta_batch 16 are exactly what --preset fast --steps 4000 gives)
# and copied here; this command resumes or reproduces it.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 lbpbench train --preset fast --steps 4000 --eval-every 250 \
  --eval-tasks 100 --quiet --out results/trained/sinusoid-5x10-fast
