#!/usr/bin/env bash
# MAML-style learned protocol (MPLP.md §5.2) with the fast recipe, from scratch: sinusoid-2x10,
# stateless learners + learned prior, held-out meta-loss; Adam 1e-3 on per-tensor unit-norm
# gradients, 200 warm-up steps then cosine decay, meta-batch 16, evaluated every 250 meta-steps on
# the fixed 100 evaluation tasks. One torch thread. Resumable: re-running continues from checkpoint.pt.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 lbpbench train --task sinusoid-2x10 --learner stateless \
  --learned-prior --meta-loss heldout --steps 3000 --meta-batch 16 --meta-lr 1e-3 \
  --lr-schedule cosine --warmup-steps 200 --grad-norm unit --eval-every 250 --eval-tasks 100 \
  --compile --quiet --out results/trained/sinusoid-2x10-maml-fast
