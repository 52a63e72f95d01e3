"""The small, validated description of an optimizee network that tasks hand to the engine."""

from __future__ import annotations

from dataclasses import dataclass

OUTPUTS = ("identity", "softmax")


@dataclass(frozen=True)
class NetworkSpec:
    """Dense layers with one activation between them, an optional softmax, then a loss.

    Validation happens here, at construction, so nothing half-built ever reaches the engine.
    """

    input_size: int
    layer_sizes: tuple[int, ...]
    activation: str = "relu"
    output: str = "identity"
    loss: str = "l2"

    def __post_init__(self) -> None:
        object.__setattr__(self, "layer_sizes", tuple(self.layer_sizes))
        if not isinstance(self.input_size, int) or self.input_size < 1:
            raise ValueError(f"input_size must be a positive integer, got {self.input_size!r}")
        if not self.layer_sizes:
            raise ValueError("layer_sizes must list at least one layer size")
        for i, size in enumerate(self.layer_sizes):
            if not isinstance(size, int) or size < 1:
                raise ValueError(f"layer_sizes[{i}] must be a positive integer, got {size!r}")
        # activation and loss are node types, possibly from plugins: build_network checks them
        # against the registry and lists the registered choices.
        for name in ("activation", "loss"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a node type name, got {getattr(self, name)!r}")
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}; got {self.output!r}")

    @property
    def output_size(self) -> int:
        return self.layer_sizes[-1]
