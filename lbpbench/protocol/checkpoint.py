"""Flat learner vectors in the reference checkpoints' layout (LAYOUT.md §2-4), both directions.

The layout is derived from the network itself — node order, slot order, sharing — so the same code
maps the released checkpoints and any other network of the same family, and a length mismatch
means the network does not match the checkpoint.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lbpbench.protocol.network import MessagePassingNetwork, SlotEntry


def _std_tensors(block: str, net: MessagePassingNetwork, key: str) -> list[tuple[str, Tensor]]:
    std = net.standardizers[key]
    out = [(f"{block}.std.scale[{n}]", std.scale[i]) for i, n in enumerate(std.piece_names)]
    return out + [(f"{block}.std.shift[{n}]", std.shift[i]) for i, n in enumerate(std.piece_names)]


def _scale_tensors(block: str, net: MessagePassingNetwork, key: str) -> list[tuple[str, Tensor]]:
    scaling = net.scalings[key]
    return [(f"{block}.out_scale", scaling.out_scale), (f"{block}.out_mean", scaling.out_mean)]


def _shared_block_name(entry: SlotEntry) -> str:
    info = entry.info
    return f"shared_{info.slot}_net" if info.slot != "learner" else f"shared_{info.node_kind}_net"


def reference_layout(net: MessagePassingNetwork) -> list[tuple[str, Tensor]]:
    """(name, tensor) in checkpoint order; the tensors are views of the network's own storage.

    A block per slot in node order: its standardisation (scales then shifts), its core's tensors
    that precede out_scale, out_scale and out_mean, the core's remaining tensors. Anything shared
    by several slots (a shared core; under `all` also standardisation and scaling) follows at the
    end in a `shared_<slot>_net` block. Aggregator parameters (not in the reference) come last.
    """
    entries = net.slot_order()
    uses = Counter()
    for e in entries:
        uses[("core", e.core)] += 1
        if e.standardizer:
            uses[("std", e.standardizer)] += 1
        if e.scaling:
            uses[("scale", e.scaling)] += 1
    layout: list[tuple[str, Tensor]] = []
    shared: dict[str, SlotEntry] = {}
    for e in entries:
        block = e.info.reference_name
        pre, post = net.cores[e.core].reference_tensors()
        core_own = uses[("core", e.core)] == 1
        if e.standardizer and uses[("std", e.standardizer)] == 1:
            layout += _std_tensors(block, net, e.standardizer)
        if core_own:
            layout += [(f"{block}.{n}", t) for n, t in pre]
        if e.scaling and uses[("scale", e.scaling)] == 1:
            layout += _scale_tensors(block, net, e.scaling)
        if core_own:
            layout += [(f"{block}.{n}", t) for n, t in post]
        else:
            shared.setdefault(e.core, e)
    for core_key, e in shared.items():
        block = _shared_block_name(e)
        pre, post = net.cores[core_key].reference_tensors()
        if e.standardizer and uses[("std", e.standardizer)] > 1:
            layout += _std_tensors(block, net, e.standardizer)
        layout += [(f"{block}.{n}", t) for n, t in pre]
        if e.scaling and uses[("scale", e.scaling)] > 1:
            layout += _scale_tensors(block, net, e.scaling)
        layout += [(f"{block}.{n}", t) for n, t in post]
    for key, agg in net.aggregators.items():
        layout += [(f"aggregator.{key}.{n}", p) for n, p in agg.named_parameters()]
    return layout


def layout_table(net: MessagePassingNetwork) -> list[dict[str, object]]:
    """offset/size/shape/name rows, comparable with the reference's layout.json."""
    rows, offset = [], 0
    for name, t in reference_layout(net):
        rows.append({"offset": offset, "size": t.numel(), "shape": list(t.shape), "name": name})
        offset += t.numel()
    return rows


def export_vector(net: MessagePassingNetwork) -> np.ndarray:
    return np.concatenate([t.detach().reshape(-1).cpu().numpy() for _, t in reference_layout(net)]).astype(
        np.float32
    )


def load_vector(net: MessagePassingNetwork, vector: np.ndarray | Tensor) -> None:
    """Copy a flat float32 vector into the network's learners; the length must match exactly."""
    flat = torch.as_tensor(np.asarray(vector, dtype=np.float32)).reshape(-1)
    layout = reference_layout(net)
    expected = sum(t.numel() for _, t in layout)
    if flat.numel() != expected:
        raise ValueError(
            f"checkpoint length {flat.numel()} does not match the network: its learners "
            f"(learner={net.family.name}, sharing={net.sharing}, message_size={net.message_size}) "
            f"need {expected} values"
        )
    offset = 0
    with torch.no_grad():
        for _, t in layout:
            t.copy_(flat[offset : offset + t.numel()].reshape(t.shape))
            offset += t.numel()


def load_checkpoint_file(net: MessagePassingNetwork, path: str | Path) -> None:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    load_vector(net, np.load(path, allow_pickle=False))


def network_for_checkpoint(
    spec: object, vector: np.ndarray, learner: str, message_size: int, hidden_size: int, **options: object
) -> MessagePassingNetwork:
    """Build the network whose learner layout fits `vector`, trying each sharing mode in turn."""
    from lbpbench.protocol.builder import build_network
    from lbpbench.protocol.sharing import SHARINGS

    errors = []
    for sharing in SHARINGS:
        net = build_network(
            spec,
            learner=learner,
            message_size=message_size,
            hidden_size=hidden_size,
            sharing=sharing,
            **options,
        )
        try:
            load_vector(net, vector)
        except ValueError as e:
            errors.append(f"{sharing}: {e}")
            continue
        return net
    raise ValueError("checkpoint fits no sharing mode: " + "; ".join(errors))
