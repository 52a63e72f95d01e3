"""Replay a golden trajectory file (LAYOUT.md §5) with a reference checkpoint and measure errors.

The network, learner type, message size, hidden size and sharing are inferred from the golden file
and the checkpoint's length, so any file of the same format verifies, not only the public three.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lbpbench.protocol.checkpoint import network_for_checkpoint
from lbpbench.protocol.network import MessagePassingNetwork
from lbpbench.tasks.network_spec import NetworkSpec

# LAYOUT.md §8 suggested tolerances.
REGRESSION_TOLERANCES = {"params": 1e-4, "messages": 1e-4, "carries": 1e-4, "eval_rtol": 1e-3}
CLASSIFICATION_TOLERANCES = {
    "first_kernel": 5e-3,
    "params": 1e-3,
    "messages": 1e-4,
    "carries": 1e-4,
    "eval_ce": 1e-3,
    "eval_acc": 0.01,
}


@dataclass
class GoldenSetup:
    spec: NetworkSpec
    learner: str
    message_size: int
    hidden_size: int
    classification: bool
    checkpoint: Path
    n_layers: int


@dataclass
class StepErrors:
    step: int
    params: dict[str, float] = field(default_factory=dict)
    messages: dict[str, float] = field(default_factory=dict)
    carries: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class VerifyReport:
    setup: GoldenSetup
    sharing: str
    steps: list[StepErrors]
    failures: list[str]

    @property
    def ok(self) -> bool:
        return not self.failures

    def max_errors(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for s in self.steps:
            for group in ("params", "messages", "carries", "metrics"):
                for k, v in getattr(s, group).items():
                    out[f"{group}:{k}"] = max(out.get(f"{group}:{k}", 0.0), v)
        return out


def _one_line(exc: BaseException) -> str:
    return (" ".join(str(exc).split()) or type(exc).__name__)[:200]


def _open(golden: Path) -> dict[str, np.ndarray]:
    """Every array of a golden .npz; an empty, truncated, bit-flipped or foreign file is a
    ValueError naming the file and the problem (np.load and zipfile check each member's CRC)."""
    if not golden.is_file():
        raise FileNotFoundError(f"golden file not found: {golden}")
    if golden.stat().st_size == 0:
        raise ValueError(f"{golden}: empty file, not a golden .npz")
    try:
        loaded = np.load(golden, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with loaded as data:
            return {k: data[k] for k in data.files}
    except Exception as exc:  # noqa: BLE001 - zipfile, zlib, numpy header errors: all mean "damaged"
        raise ValueError(f"{golden}: damaged or not a golden .npz file ({type(exc).__name__}: "
                         f"{_one_line(exc)})") from None


def _check_complete(data: dict[str, np.ndarray], golden: Path) -> None:
    """The arrays verify_golden reads, present and numeric (an incomplete file is named, not a KeyError)."""
    n_layers = len([k for k in data if re.fullmatch(r"W\d+", k)])
    required = ["train_x", "train_y", "eval_x", "eval_y", "msg_out_loss"]
    required += [f"{p}{i}" for i in range(1, n_layers + 1) for p in ("W", "b")]
    classification = "eval_ce" in data or "eval_acc" in data
    required += ["eval_ce", "eval_acc"] if classification else ["eval_loss", "eval_pred"]
    missing = [k for k in required if k not in data]
    if n_layers == 0:
        missing.insert(0, "W1")
    if missing:
        raise ValueError(f"{golden}: incomplete golden file: missing array(s) {', '.join(missing)}")
    bad = [k for k in required if data[k].dtype.kind not in "fiub"]
    if bad:
        raise ValueError(f"{golden}: array(s) {', '.join(bad)} are not numeric")
    if data["train_x"].ndim < 3:
        raise ValueError(f"{golden}: train_x has shape {data['train_x'].shape}; "
                         "expected [tasks, steps, batch, inputs]")


def infer_setup(data: dict[str, np.ndarray], golden: Path, checkpoint: Path | None) -> GoldenSetup:
    """Read the network and learner shape off the golden file's arrays."""
    n_layers = len([k for k in data if re.fullmatch(r"W\d+", k)])
    if n_layers == 0 or "train_x" not in data:
        raise ValueError(f"{golden}: not a golden trajectory file (needs train_x and W1..Wn)")
    sizes = tuple(int(data[f"W{i}"].shape[-1]) for i in range(1, n_layers + 1))
    classification = "eval_ce" in data
    k = int(data["msg_out_loss"].shape[-1])
    stateful = any(key.startswith("carry_shape_") for key in data)
    hidden = 0
    if stateful:
        act = next(key for key in data if key.startswith("carry_shape_") and not key.endswith(("_W", "_b")))
        hidden = int(data[act][-1]) - k
    spec = NetworkSpec(
        input_size=int(data["W1"].shape[-2]),
        layer_sizes=sizes,
        activation="sigmoid" if classification else "relu",
        output="softmax" if classification else "identity",
        loss="cross_entropy" if classification else "l2",
    )
    if checkpoint is None:
        config = json.loads(str(data["config_json"])) if "config_json" in data else {}
        name = config.get("checkpoint")
        if not name:
            raise ValueError(f"{golden}: names no checkpoint; pass --checkpoint FILE")
        candidates = [golden.parent / "checkpoints" / name, golden.parent / name]
        checkpoint = next((c for c in candidates if c.is_file()), None)
        if checkpoint is None:
            raise FileNotFoundError(
                f"checkpoint {name} not found beside {golden} (looked in {', '.join(map(str, candidates))})"
            )
    return GoldenSetup(
        spec, "stateful" if stateful else "stateless", k, hidden, classification, checkpoint, n_layers
    )


def load_reference_network(setup: GoldenSetup) -> tuple[MessagePassingNetwork, str]:
    """Build the network and load the checkpoint, choosing the sharing whose layout length fits."""
    try:
        vector = np.load(setup.checkpoint, allow_pickle=False)
        if not isinstance(vector, np.ndarray) or vector.dtype.kind not in "fiu":
            raise ValueError("not a numeric .npy array")
    except Exception as exc:  # noqa: BLE001 - truncated, garbage, pickled: all unusable
        raise ValueError(f"{setup.checkpoint}: damaged or not a .npy checkpoint ({type(exc).__name__}: "
                         f"{_one_line(exc)})") from None
    try:
        net = network_for_checkpoint(
            setup.spec,
            vector,
            setup.learner,
            setup.message_size,
            setup.hidden_size,
            aggregator="mean",
            untrained_message_mlp=setup.learner == "stateless",
        )
    except ValueError as e:
        raise ValueError(f"{setup.checkpoint}: {e}") from e
    return net.eval(), net.sharing


def _golden_key(param: str) -> str:
    """lbpbench's parameter name -> the golden file's array: dense12.W -> W12."""
    layer, kind = param.split(".")
    return f"{kind}{layer.removeprefix('dense')}"


def _max_abs(a: Tensor, b: np.ndarray) -> float:
    return float((a.detach().double() - torch.as_tensor(b).double()).abs().max())


def _eval_metrics(
    net: MessagePassingNetwork, params: dict[str, Tensor], data: dict, classification: bool
) -> dict:
    T = data["train_x"].shape[0]
    eval_x = torch.as_tensor(data["eval_x"])
    if eval_x.dim() == 2:
        eval_x = eval_x.expand(T, *eval_x.shape)
    eval_y = torch.as_tensor(data["eval_y"])
    pred = net(params, eval_x)
    if classification:
        p = pred.clamp(1e-7, 1 - 1e-7)
        ce = -(eval_y * torch.log(p)).sum(-1).mean(-1)
        acc = (pred.argmax(-1) == eval_y.argmax(-1)).float().mean(-1)
        return {"eval_ce": ce, "eval_acc": acc}
    return {"eval_loss": (0.5 * (eval_y - pred) ** 2).mean(dim=(1, 2)), "eval_pred": pred}


def verify_golden(golden: Path | str, checkpoint: Path | str | None = None) -> VerifyReport:
    """Replay every task of the golden file at once (task axis) and compare after every step."""
    golden = Path(golden)
    data = _open(golden)
    _check_complete(data, golden)
    try:
        setup = infer_setup(data, golden, Path(checkpoint) if checkpoint else None)
    except (KeyError, IndexError, StopIteration, TypeError) as exc:
        raise ValueError(f"{golden}: inconsistent golden file "
                         f"({type(exc).__name__}: {_one_line(exc)})") from None
    net, sharing = load_reference_network(setup)
    try:
        return _replay(golden, data, setup, net, sharing)
    except (RuntimeError, IndexError, KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"{golden}: inconsistent golden file: its arrays do not fit together "
                         f"({type(exc).__name__}: {_one_line(exc)})") from None


def _replay(golden: Path, data: dict[str, np.ndarray], setup: GoldenSetup, net: MessagePassingNetwork,
            sharing: str) -> VerifyReport:
    tol = CLASSIFICATION_TOLERANCES if setup.classification else REGRESSION_TOLERANCES
    T, S, B = data["train_x"].shape[:3]
    names = [f"dense{i}.{p}" for i in range(1, setup.n_layers + 1) for p in ("W", "b")]
    params = {n: torch.as_tensor(data[_golden_key(n)][:, 0]) for n in names}
    carries = net.init_carries(T, B)
    msg_tasks = list(data.get("msg_task_index", np.arange(0)))
    msg_steps = list(data.get("msg_step_index", np.arange(0)))
    steps: list[StepErrors] = []
    failures: list[str] = []

    def check(errors: StepErrors, group: str, name: str, value: float, bound: float) -> None:
        getattr(errors, group)[name] = value
        if not value <= bound:  # also catches NaN
            failures.append(f"step {errors.step}: {group} {name} error {value:.3g} > {bound:g}")

    def check_metrics(errors: StepErrors, step: int) -> None:
        metrics = _eval_metrics(net, params, data, setup.classification)
        if setup.classification:
            check(
                errors,
                "metrics",
                "eval_ce",
                _max_abs(metrics["eval_ce"], data["eval_ce"][:, step]),
                tol["eval_ce"],
            )
            check(
                errors,
                "metrics",
                "eval_acc",
                _max_abs(metrics["eval_acc"], data["eval_acc"][:, step]),
                tol["eval_acc"],
            )
        else:
            ref = torch.as_tensor(data["eval_loss"][:, step]).double()
            rel = float(((metrics["eval_loss"].double() - ref).abs() / ref.abs().clamp_min(1e-12)).max())
            check(errors, "metrics", "eval_loss_rel", rel, tol["eval_rtol"])
            check(
                errors,
                "metrics",
                "eval_pred",
                _max_abs(metrics["eval_pred"], data["eval_pred"][:, step]),
                tol["params"],
            )

    with torch.no_grad():
        errors = StepErrors(0)
        check_metrics(errors, 0)
        steps.append(errors)
        for s in range(S):
            x = torch.as_tensor(data["train_x"][:, s])
            y = torch.as_tensor(data["train_y"][:, s])
            out = net.inner_step(params, carries, x, y, trace=True)
            params, carries = out.params, out.carries
            errors = StepErrors(s + 1)
            for n in names:
                bound = tol.get("first_kernel", tol["params"]) if n == "dense1.W" else tol["params"]
                check(errors, "params", n, _max_abs(params[n], data[_golden_key(n)][:, s + 1]), bound)
            if s in msg_steps and msg_tasks:
                si = msg_steps.index(s)
                for key, msg in out.messages.items():
                    ref_key = f"msg_out_{key}"
                    if ref_key in data:
                        check(
                            errors,
                            "messages",
                            key,
                            _max_abs(msg[msg_tasks], data[ref_key][:, si]),
                            tol["messages"],
                        )
            for key, carry in carries.items():
                ref_key = f"task0_after_step{s + 1}_carry_{key}"
                if ref_key in data:
                    check(errors, "carries", key, _max_abs(carry[0], data[ref_key]), tol["carries"])
            batch_key = "train_ce_batch" if setup.classification else "train_loss_batch"
            if batch_key in data:
                element = net.optimizee.element_loss(params, x, y)
                value = element.sum(-1).mean(-1) if setup.classification else element.flatten(1).mean(1)
                check(
                    errors,
                    "metrics",
                    batch_key,
                    _max_abs(value, data[batch_key][:, s]),
                    tol.get("eval_ce", tol["params"]),
                )
            check_metrics(errors, s + 1)
            steps.append(errors)
    return VerifyReport(setup, sharing, steps, failures)
