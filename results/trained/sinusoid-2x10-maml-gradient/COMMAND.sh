#!/usr/bin/env bash
# MAML-style learned protocol from scratch with an exact-error loss node (search round 10):
# sinusoid-2x10, stateless learners + learned prior, held-out meta-loss, loss_rule = "gradient"
# (the loss node sends x - t in every channel, no learner), the fast outer loop (Adam 1e-3 on
# per-tensor unit-norm gradients, 200 warm-up steps then cosine decay over 3,000 meta-steps,
# meta-batch 16), evaluated every 250 meta-steps on the fixed 100 evaluation tasks. One torch thread.
# This folder is seed 1 of the 2-seed batch of results/search/fast_recipe_7.toml, copied here; the
# command below re-runs that batch exactly (resumable) and copies seed 1's run folder again.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OMP_NUM_THREADS=1 lbpbench sweep run results/search/fast_recipe_7.toml --out results/search/fast_recipe_7 \
  --seed-batch --workers 1 --no-report
cp results/search/fast_recipe_7/runs/sinusoid-2x10_stateless-mean_s1_02767bd54af9/* results/trained/sinusoid-2x10-maml-gradient/
