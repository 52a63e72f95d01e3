#!/usr/bin/env bash
# sinusoid-5x10, stateful, k = 8, per-layer learners, the `attention` aggregator (learned attention
# pooling over the fan-out), the `fast` preset (Adam 1e-3 on per-tensor unit-norm gradients, 200
# warm-up steps then cosine decay over 4,000 meta-steps, 16 tasks per meta-step), evaluated every 250
# meta-steps on the fixed 100 evaluation tasks, restarts at meta-step 750 (abandon_plateau_at), seed 1.
# One torch thread. Resumable: re-running continues from checkpoint.pt.
# This folder was trained as ablation (b)'s stateful/attention seed 1
# (results/ablation/b_aggregator_learner_trained.toml, run sinusoid-5x10_stateful-attention_s1_eab0b70da15f;
# seed 0 of that cell was abandoned at 750) and copied here. The command below builds the same
# RunConfig (config.json compared key by key with the sweep's: identical) and reproduces it.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 lbpbench train --preset fast --steps 4000 --eval-every 250 \
  --eval-tasks 100 --aggregator attention --seed 1 --abandon-plateau-at 750 --quiet \
  --out results/trained/sinusoid-5x10-attention
