#!/usr/bin/env bash
# The GPU check of issue 13, item 6, prepared for a session that is lent a GPU (none has been since
# the graphs mode was written, so none of this has run on a GPU yet):
#   1. the sinusoid-5x10 stateful meta-step eager against `--compile-mode graphs` (the whole
#      meta-loss compiled with mode="reduce-overhead": forward and backward replayed as CUDA graphs);
#      target <= 15 ms;
#   2. the convergence run from scratch with the `fast` preset and graphs, until its time runs out:
#      wall seconds to eval L2 0.0025 after 5 steps (the CPU zoo learner results/trained/
#      sinusoid-5x10-fast: meta-step 2,250 at 2,965 s on one core).
# Every step has its own time limit, so the whole script stays under ~9.5 minutes of device time.
# From the repository root: bash benchmarks/gpu_graphs_check.sh OUTDIR  [DEVICE=cpu for a dry run]
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu_graphs_check.sh OUTDIR}
device=${DEVICE:-cuda}
budget=${TRAIN_SECONDS:-300}
mkdir -p "$out"
python3 -c "import torch; print(torch.__version__, torch.version.cuda,
torch.cuda.get_device_name() if torch.cuda.is_available() else 'no cuda')" >"$out/torch.txt" 2>&1
for mode in eager graphs; do
    timeout 150 python3 -m lbpbench.bench.compile_variants "$mode" 1 --device "$device" \
        >>"$out/meta_step.txt" 2>"$out/meta_step_$mode.log" || echo "$mode: exit $?" >>"$out/meta_step.txt"
done
cat "$out/meta_step.txt"
timeout "$budget" python3 -m lbpbench train --preset fast --steps 4000 --eval-every 250 --eval-tasks 100 \
    --device "$device" --compile-mode graphs --quiet --out "$out/sinusoid-5x10-graphs" \
    >"$out/train.log" 2>&1
echo "train: exit $? after at most ${budget}s (124: its time ran out; re-running resumes it)" | tee -a "$out/train.log"
python3 - "$out/sinusoid-5x10-graphs" <<'PY' | tee "$out/time_to_quality.txt"
import sys
from pathlib import Path
from lbpbench.harness.progress import progress_frame
frame = progress_frame(Path(sys.argv[1]))
evals = frame[frame.phase == "meta_eval"].pivot_table(index="step", columns="metric", values="value")
print(evals[["eval_loss", "wall_s"]].to_string())
reached = evals[evals.eval_loss <= 0.0025]
print("reached 0.0025 at meta-step %d, %.0f s" % (reached.index[0], reached.wall_s.iloc[0])
      if len(reached) else "not reached 0.0025 in this budget")
PY
