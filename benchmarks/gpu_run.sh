#!/usr/bin/env bash
# The GPU run of issue 7 (item 5), committed under results/benchmarks/: every engine path, the
# mnist-20x8 meta-step memory, 8 seeds as one seed batch against one seed, and cost growth.
# From the repository root on a CUDA machine: bash benchmarks/gpu_run.sh OUTDIR
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu_run.sh OUTDIR}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$out/nvidia_smi.csv" 2>&1
python3 -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())" \
    >"$out/torch.txt" 2>&1
PYTHONUNBUFFERED=1 python3 -m lbpbench bench --device cuda --seeds 8 --growth \
    --out "$out/gpu_bench.json" >"$out/gpu_bench.md" 2> >(tee "$out/gpu_bench.log" >&2)
