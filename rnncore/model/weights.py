"""A model's weights as named float32 numpy arrays in PyTorch's layout, validated against its config.

This is what both sides exchange: the trainer exports a torch state dict into it, the Numba core packs
it for the kernels, and the artifact file stores it. No torch import here: the service runs without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rnncore.errors import ModelError
from rnncore.model.config import ModelConfig


@dataclass(frozen=True)
class ModelWeights:
    """A configuration plus one float32 C-contiguous array per parameter (PyTorch names and shapes)."""

    config: ModelConfig
    params: Mapping[str, np.ndarray]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        expected = self.config.param_shapes()
        missing = sorted(set(expected) - set(self.params))
        extra = sorted(set(self.params) - set(expected))
        if missing or extra:
            raise ModelError(f"parameters do not match {self.config.cell} config: missing {missing}, extra {extra}")
        clean: dict[str, np.ndarray] = {}
        for name, shape in expected.items():
            array = np.ascontiguousarray(self.params[name], dtype=np.float32)
            if array.shape != shape:
                raise ModelError(f"parameter {name} has shape {array.shape}, config needs {shape}")
            if not np.all(np.isfinite(array)):
                raise ModelError(f"parameter {name} contains NaN or infinity")
            clean[name] = array
        object.__setattr__(self, "params", clean)

    @classmethod
    def random(cls, config: ModelConfig, seed: int = 0, scale: float | None = None) -> ModelWeights:
        """Weights drawn like PyTorch's default init, U(-1/sqrt(H), 1/sqrt(H)), from a fixed seed."""
        rng = np.random.default_rng(seed)
        bound = scale if scale is not None else 1.0 / np.sqrt(config.hidden_size)
        params = {
            name: rng.uniform(-bound, bound, size=shape).astype(np.float32)
            for name, shape in config.param_shapes().items()
        }
        return cls(config=config, params=params)

    def is_compatible_with(self, other: ModelWeights) -> bool:
        """True when ``other`` can take over this model's per-stream state (same state layout)."""
        return self.config.same_state_layout(other.config)
