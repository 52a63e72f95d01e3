#!/usr/bin/env bash
# End-to-end GPU check of the sweep path (issue 7, item 5): the embedded default sweep on CUDA, once
# with --seed-batch and once run by run; wall times and the largest difference of the final
# metrics between the two. From the repository root: bash benchmarks/gpu_sweep_check.sh OUTDIR
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu_sweep_check.sh OUTDIR}
mkdir -p "$out"
for mode in seed-batch loop; do
    extra=(); [ "$mode" = seed-batch ] && extra=(--seed-batch)
    start=$EPOCHREALTIME
    python3 -m lbpbench sweep run --set device=cuda --out "results/gpu_$mode" --no-report --no-progress \
        "${extra[@]}" >"$out/sweep_$mode.log" 2>&1
    code=$?
    echo "$mode exit $code wall_s $(python3 -c "print(round($EPOCHREALTIME - $start, 1))")" | tee -a "$out/sweep_times.txt"
done
python3 - "$out" <<'PY'
import sys, pandas as pd
a = pd.read_parquet("results/gpu_seed-batch/runs.parquet").set_index("run_id")
b = pd.read_parquet("results/gpu_loop/runs.parquet").set_index("run_id")
df = a[["method", "seed", "status", "final", "wall_time_s"]].join(
    b[["status", "final", "wall_time_s"]], rsuffix="_loop").sort_values(["method", "seed"])
df["rel_diff"] = (df["final"] - df["final_loop"]).abs() / df["final_loop"].abs()
open(sys.argv[1] + "/sweep_compare.txt", "w").write(df.to_string(index=False) + "\n")
print(df.to_string(index=False))
PY
