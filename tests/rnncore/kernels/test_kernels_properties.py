"""Property tests: for any shape (H, L, F, B, streams), the fast kernel equals the reference."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rnncore.model.config import CellType, ModelConfig
from tests.rnncore.kernels.test_kernels import random_batch, run_both


@settings(max_examples=30, deadline=None)
@given(
    cell=st.sampled_from(["rnn", "gru", "lstm"]),
    hidden=st.integers(1, 80),
    layers=st.integers(1, 4),
    features=st.integers(1, 20),
    time_feature=st.booleans(),
    batch=st.integers(0, 600),
    n_streams=st.integers(1, 300),
    seed=st.integers(0, 2**31 - 1),
)
def test_any_shape_matches_reference(
    cell: CellType, hidden: int, layers: int, features: int, time_feature: bool, batch: int, n_streams: int, seed: int
) -> None:
    config = ModelConfig(
        cell=cell, n_features=features, hidden_size=hidden, num_layers=layers, time_delta_feature=time_feature
    )
    rng = np.random.default_rng(seed)
    batches = [random_batch(rng, batch, n_streams, features, 0.0, bad_fraction=0.03)]
    batches.append(random_batch(rng, max(1, batch // 3), n_streams, features, 1e3))
    run_both(config, batches, n_streams, seed=seed % 1000)
