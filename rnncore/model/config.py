"""The one source of truth for a model's architecture, shared by the Numba core and the PyTorch trainer.

Parameter layout follows PyTorch exactly so that a trained ``torch.nn.GRU`` (or RNN / LSTM) state dict
is the Numba model's weights without any reshuffling:

* recurrent stack, layer ``k`` (``G`` gates: rnn 1, gru 3 in order r,z,n; lstm 4 in order i,f,g,o)::

    rnn.weight_ih_l{k}  [G*H, I_k]   (I_0 = input_size, I_k = H for k > 0)
    rnn.weight_hh_l{k}  [G*H, H]
    rnn.bias_ih_l{k}    [G*H]
    rnn.bias_hh_l{k}    [G*H]

* forecast head on the last layer's hidden state: ``head.weight [2F, H]``, ``head.bias [2F]``;
  rows ``0..F-1`` give the forecast mean, rows ``F..2F-1`` the raw scale, mapped by
  ``scale = softplus(raw) + min_scale`` so that the Gaussian likelihood never divides by zero.

``F`` is ``n_features`` (values per event); the recurrent input is the normalised values plus, when
``time_delta_feature`` is on, one extra input ``log1p(dt / dt_scale)``.

Optional parts (the defaults are the plain causal model above, and every older artifact loads as one):

* ``direction="bidirectional"`` (offline rescoring only, non-causal; see ``rnncore.model.bidirectional``): a second,
  independent stack ``rnn_reverse.*`` (same names and shapes as ``rnn.*``) runs backwards in time, and the head
  reads ``[h_forward(t-1), h_backward(t+1)]``: ``head.weight [2F, 2H]``.
* ``attention_window = K > 0`` (see ``rnncore.model.attention``): ``attention.query.weight``,
  ``attention.key.weight``, ``attention.value.weight``, each ``[H, H]`` (no bias); the head reads
  ``[h_t, context_t]``: ``head.weight [2F, 2H]``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Literal

from rnncore.errors import ConfigError

CellType = Literal["rnn", "gru", "lstm"]
Direction = Literal["forward", "bidirectional"]
DIRECTIONS: tuple[Direction, ...] = ("forward", "bidirectional")
MAX_ATTENTION_WINDOW = 256
# Fields added after format 1 was frozen; ``to_dict`` leaves them out at these defaults.
_OPTIONAL_DEFAULTS: dict[str, Any] = {"direction": "forward", "attention_window": 0}
CELL_TYPES: tuple[CellType, ...] = ("rnn", "gru", "lstm")
GATES: dict[str, int] = {"rnn": 1, "gru": 3, "lstm": 4}


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Architecture and the per-stream preprocessing that is part of the model."""

    cell: CellType = "gru"
    n_features: int = 1
    hidden_size: int = 64
    num_layers: int = 1
    time_delta_feature: bool = False
    dt_scale: float = 1.0
    min_scale: float = 1e-3
    # Per-stream input normalisation: cumulative mean/variance for the first ``norm_window`` events,
    # exponential (alpha = 1/norm_window) after that, so a stream's scale can drift slowly.
    norm_window: int = 1000
    norm_eps: float = 1e-6
    input_clip: float = 10.0
    # "bidirectional" models score offline only (each event may use later events); never in the service/NAB.
    direction: Direction = "forward"
    # K > 0: the head attends over the stream's last K top-layer hidden states (a per-stream ring buffer).
    attention_window: int = 0

    def __post_init__(self) -> None:
        if self.cell not in CELL_TYPES:
            raise ConfigError(f"cell must be one of {CELL_TYPES}, got {self.cell!r}")
        if not 1 <= self.n_features <= 64:
            raise ConfigError(f"n_features must be in 1..64, got {self.n_features}")
        if not 1 <= self.num_layers <= 4:
            raise ConfigError(f"num_layers must be in 1..4, got {self.num_layers}")
        if not 1 <= self.hidden_size <= 1024:
            raise ConfigError(f"hidden_size must be in 1..1024, got {self.hidden_size}")
        if self.norm_window < 1:
            raise ConfigError(f"norm_window must be >= 1, got {self.norm_window}")
        if self.direction not in DIRECTIONS:
            raise ConfigError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if not 0 <= self.attention_window <= MAX_ATTENTION_WINDOW:
            raise ConfigError(
                f"attention_window must be in 0..{MAX_ATTENTION_WINDOW} (0 = off), got {self.attention_window}"
            )
        if self.attention_window and self.bidirectional:
            raise ConfigError("attention_window is for causal models; a bidirectional model cannot have it")

    def same_state_layout(self, other: ModelConfig) -> bool:
        """True when a model of ``other`` can take over the per-stream state of this one (hot reload, restore)."""
        key = ("cell", "hidden_size", "num_layers", "n_features", "attention_window")  # the ring is state too
        return all(getattr(self, name) == getattr(other, name) for name in key)

    @property
    def bidirectional(self) -> bool:
        """True for an offline, non-causal model (a score may use events after it)."""
        return self.direction == "bidirectional"

    @property
    def head_input_size(self) -> int:
        """Width the forecast head reads: H, or 2H with a backward stack or an attention context."""
        wide = self.bidirectional or self.attention_window > 0
        return 2 * self.hidden_size if wide else self.hidden_size

    @property
    def gates(self) -> int:
        """Gate blocks per layer in PyTorch order (rnn 1, gru 3, lstm 4)."""
        return GATES[self.cell]

    @property
    def input_size(self) -> int:
        """Width of the recurrent input: normalised values plus the optional time-delta input."""
        return self.n_features + int(self.time_delta_feature)

    @property
    def state_planes(self) -> int:
        """Recurrent state vectors per layer: h, plus c for an LSTM."""
        return 2 if self.cell == "lstm" else 1

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every parameter's name and shape, in PyTorch's naming and order."""
        H, G, F = self.hidden_size, self.gates, self.n_features
        shapes: dict[str, tuple[int, ...]] = {}
        stacks = ("rnn", "rnn_reverse") if self.bidirectional else ("rnn",)
        for stack in stacks:
            for k in range(self.num_layers):
                width = self.input_size if k == 0 else H
                shapes[f"{stack}.weight_ih_l{k}"] = (G * H, width)
                shapes[f"{stack}.weight_hh_l{k}"] = (G * H, H)
                shapes[f"{stack}.bias_ih_l{k}"] = (G * H,)
                shapes[f"{stack}.bias_hh_l{k}"] = (G * H,)
        if self.attention_window:
            for part in ("query", "key", "value"):
                shapes[f"attention.{part}.weight"] = (H, H)
        shapes["head.weight"] = (2 * F, self.head_input_size)
        shapes["head.bias"] = (2 * F,)
        return shapes

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (what ``model.json`` stores as ``architecture``); optional parts left at their default are
        omitted, so a plain model's file is unchanged and still readable by older rnnwatch versions."""
        data = dataclasses.asdict(self)
        for name, default in _OPTIONAL_DEFAULTS.items():
            if data[name] == default:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from a dict, refusing unknown keys so a typo in a file is not silently ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)
