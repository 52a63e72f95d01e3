"""The numbers behind results/ablation/c_trained_summary.md that the report's tables do not show.

Run from the repository root:
python results/ablation/c_trained_numbers.py > results/ablation/c_trained_numbers.txt
"""

import pandas as pd

FOLDER = "results/ablation/c_mnist_trained/"
curves = pd.read_parquet(FOLDER + "curves.parquet")
runs = pd.read_parquet(FOLDER + "runs.parquet")
seeds = runs.set_index("run_id")[["baseline", "seed", "wall_time_s", "final"]]
acc = curves[curves.metric == "eval_accuracy"].join(seeds, on="run_id")
learned = acc[acc.baseline.fillna("") == ""]

print("accuracy after 20 steps on the fixed 100 evaluation tasks, per seed, during meta-training:")
during = learned[learned.phase == "meta_eval"].pivot_table(index="step", columns="seed", values="value")
print(during.round(3).to_string())
print("\nfinal evaluation (step 20) and transfers, per seed:")
final = learned[learned.step == 20].pivot_table(index="seed", columns="phase", values="value")
print(final.round(4).to_string())
untrained = learned[(learned.phase == "eval") & (learned.step == 0)].value.round(4)
print("\nbefore training (step 0):", sorted(untrained.unique()))
print("\nbaselines, final accuracy per seed and tuned learning rate:")
base = runs[runs.baseline.fillna("") != ""][["baseline", "seed", "final"]]
lr = curves[curves.phase == "selected"].join(seeds, on="run_id")[["baseline", "seed", "value"]]
print(base.merge(lr, on=["baseline", "seed"]).rename(columns={"value": "lr"}).to_string(index=False))
wall = curves[(curves.phase == "meta_eval") & (curves.metric == "wall_s")].join(seeds, on="run_id")
print("\nmeta-training seconds per seed (its share of the 3-seed batch, across sessions):",
      wall[wall.step == wall.step.max()].sort_values("seed").value.round(0).tolist())
