#!/usr/bin/env bash
# MAML-style learned protocol from scratch (search round 13): sinusoid-2x10, stateless learners +
# learned prior, held-out meta-loss, loss_rule = "gradient" (the loss node sends x - t in every
# channel, no learner), Adam 1e-3 on per-tensor unit-norm gradients, 200 warm-up steps then cosine
# decay over 8,000 meta-steps, meta-batch 16, evaluated every 250 meta-steps on the fixed 100
# evaluation tasks, restarts at meta-step 750 (abandon_plateau_at). One torch thread.
# This folder is seed 1 of results/search/fast_recipe_10.toml (seed 0 was abandoned at 750), copied;
# the command below re-runs that sweep (resumable) and copies seed 1's run folder again.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OMP_NUM_THREADS=1 lbpbench sweep run results/search/fast_recipe_10.toml --out results/search/fast_recipe_10 \
  --workers 1 --no-report
cp results/search/fast_recipe_10/runs/sinusoid-2x10_stateless-mean_s1_2cecbd9afa63/* results/trained/sinusoid-2x10-maml-restarts/
