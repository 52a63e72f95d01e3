"""Issue 13, search round 5: which part of a seed decides whether the fast preset leaves the plateau?

A run's seed sets three things: the learner's initial weights (I), the calibration (C: the task and
initial network the untrained learner's input statistics and out_mean are measured on) and the
meta-training stream (S: the tasks and initial networks of every meta-step). Ablation (a)'s first
cell (fast preset, 2,500 meta-steps, k = 8, per-layer) left the plateau with seed 0 and not with
seeds 1 and 2. This script meta-trains members that mix the factors of two seeds, e.g. I=0 C=0 S=1,
on exactly that cell's settings and schedule, to meta-step STOP, and evaluates every 250 on the
fixed 100 evaluation tasks. Resumable: each member checkpoints to OUT/i<I>c<C>s<S>/.

Round 6 narrows "the learner's initial weights" down to learners: a member spec I,C,S:D=a+b takes
the initial weights of the learners (cores) a and b from seed D instead of I, e.g.
1,1,1:0=loss+dense3_W is seed 1 with seed 0's initial loss-node and last-layer-weight learners.

Run: OMP_NUM_THREADS=1 python results/search/seed_factors.py OUT STOP SPEC [SPEC ...]
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from lbpbench.harness import defaults
from lbpbench.harness.config import RunConfig
from lbpbench.harness.driver import resume, save
from lbpbench.harness.members import ProtocolMember
from lbpbench.harness.population import Population
from lbpbench.harness.presets import apply_preset
from lbpbench.harness.run import _evaluate_during_training, run_files

CELL = dict(task="sinusoid-5x10", learner="stateful", aggregator="mean", message_size=8, sharing="layer",
            preset="fast", meta_steps=2500, eval_every=250, eval_tasks=100)


def config(seed: int) -> RunConfig:
    return RunConfig.from_dict(apply_preset({**CELL, "seed": seed}))


def mixed_member(init: int, calib: int, stream: int, donor: int | None = None,
                 donated: tuple[str, ...] = ()) -> ProtocolMember:
    """A member with seed `stream`'s task stream and init pool, `init`'s initial learner weights
    (those of the cores in `donated` from seed `donor`) and the calibration seed `calib`'s run would
    make (its task and initial network), measured on that untrained learner."""
    member = ProtocolMember(config(stream))
    source = dict(ProtocolMember(config(init)).net.named_parameters())  # seed `init`'s untrained learner
    given = dict(ProtocolMember(config(donor)).net.named_parameters()) if donated else {}
    unknown = set(donated) - {n.split(".")[1] for n in member._trained if n.startswith("cores.")}
    if unknown:
        raise ValueError(f"no learner core named {sorted(unknown)}")
    trained = set(member._trained)
    with torch.no_grad():
        for name, p in member.net.named_parameters():
            if name in trained:
                from_donor = name.startswith("cores.") and name.split(".")[1] in donated
                p.copy_((given if from_donor else source)[name])
    for m in [*member.net.standardizers.values(), *member.net.scalings.values()]:
        m.reset_statistics()
    g = torch.Generator().manual_seed(calib)
    passes, blend = defaults.calibration(member.family)
    calibration = member.family.sample(passes, g, split="train")
    member.net.calibrate(calibration.train_x, calibration.train_y, blend=blend, generator=g)
    return member


def check_unmixed_is_the_seed() -> None:
    """Sanity: mixing a seed with itself rebuilds that seed's member bit for bit."""
    a, b = mixed_member(1, 1, 1), ProtocolMember(config(1))
    for (n, x), (_, y) in zip(a.net.state_dict().items(), b.net.state_dict().items(), strict=True):
        assert torch.equal(x, y), n
    for k in a.pool:
        assert torch.equal(a.pool[k], b.pool[k]), k


def parse(spec: str) -> tuple[str, ProtocolMember]:
    """"I,C,S" or "I,C,S:D=core+core" -> (folder name, member)."""
    seeds, _, donation = spec.partition(":")
    init, calib, stream = (int(x) for x in seeds.split(","))
    name = f"i{init}c{calib}s{stream}"
    if not donation:
        return name, mixed_member(init, calib, stream)
    donor, _, cores = donation.partition("=")
    donated = tuple(cores.split("+"))
    return f"{name}_d{donor}-{'+'.join(donated)}", mixed_member(init, calib, stream, int(donor), donated)


def main(out: str, stop: int, specs: list[str]) -> None:
    torch.set_num_threads(1)
    check_unmixed_is_the_seed()
    names, members = (list(x) for x in zip(*(parse(s) for s in specs), strict=True))
    files = [run_files(Path(out) / n) for n in names]
    resume(members, files)
    population = Population(members)
    started, last = time.monotonic(), time.monotonic()
    while population.step < stop:
        population.meta_step()
        if population.step % CELL["eval_every"] == 0:
            for i, member in enumerate(population.members):
                population.sync(i)
                values = _evaluate_during_training(member)
                row = {"member": names[i], "step": member.step, "wall_s": round(member.train_seconds, 1),
                       **{k: round(v, 6) for k, v in values.items()}}
                with open(Path(out) / "progress.jsonl", "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(row, flush=True)
            save(population, files)
        if time.monotonic() - last > 300:
            save(population, files)
            last = time.monotonic()
    save(population, files)
    print(f"done at meta-step {population.step} in {time.monotonic() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
