"""Causal normalisation: the Numba kernel equals the per-event reference and the contract's formulas."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnncore.kernels.errors import KernelInputError
from rnncore.kernels.preprocess import normalise_sequence
from rnncore.model.config import ModelConfig
from tests.reference import normalise_sequence_reference


def _assert_same(a, b) -> None:
    np.testing.assert_allclose(a.inputs, b.inputs, rtol=0, atol=1e-6)
    np.testing.assert_allclose(a.targets, b.targets, rtol=0, atol=1e-6)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a.std, b.std, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("time_delta", [False, True], ids=["values", "values+dt"])
@pytest.mark.parametrize("n_features", [1, 3], ids=["F1", "F3"])
def test_kernel_matches_reference(time_delta: bool, n_features: int) -> None:
    rng = np.random.default_rng(3)
    config = ModelConfig(n_features=n_features, time_delta_feature=time_delta, dt_scale=30.0, norm_window=20)
    values = rng.normal(5.0, 3.0, size=(200, n_features))
    values[50] += 100.0  # a spike that must be clipped
    times = np.cumsum(rng.uniform(0, 60, size=200))
    times[70] = times[69] - 5.0  # out of order: dt clamps at 0
    _assert_same(normalise_sequence(values, times, config), normalise_sequence_reference(values, times, config))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=40), st.integers(1, 10))
def test_kernel_matches_reference_on_any_values(raw: list[float], window: int) -> None:
    config = ModelConfig(norm_window=window, time_delta_feature=True)
    values = np.asarray(raw)
    times = np.arange(len(raw), dtype=np.float64)
    _assert_same(normalise_sequence(values, times, config), normalise_sequence_reference(values, times, config))


def test_contract_values_for_a_short_sequence() -> None:
    config = ModelConfig(time_delta_feature=True, dt_scale=10.0, norm_eps=1e-12, input_clip=10.0)
    seq = normalise_sequence(np.array([2.0, 4.0, 6.0]), np.array([0.0, 10.0, 30.0]), config)
    # after event 0: m=2, var=0 -> x=0 ; after event 1: m=3, var=1 -> x=(4-3)/1=1
    np.testing.assert_allclose(seq.mean[:, 0], [2.0, 3.0, 4.0])
    np.testing.assert_allclose(seq.inputs[:, 0], [0.0, 1.0, 2.0 / np.sqrt(8.0 / 3.0)], atol=1e-6)
    np.testing.assert_allclose(seq.inputs[:, 1], [0.0, np.log1p(1.0), np.log1p(2.0)], atol=1e-6)
    # target of step 1 is the next value normalised by the stats after step 1: (6 - 3) / 1, clipped at 10
    assert seq.targets[1, 0] == pytest.approx(3.0)
    assert seq.targets[0, 0] == pytest.approx(10.0)  # (4 - 2) / sqrt(0) clipped
    assert np.isnan(seq.targets[-1, 0])


@pytest.mark.parametrize(
    "values,times",
    [
        (np.array([1.0, np.nan]), np.array([0.0, 1.0])),
        (np.array([1.0, 2.0]), np.array([0.0, np.inf])),
        (np.zeros((3, 2)), np.arange(3.0)),
        (np.zeros(0), np.zeros(0)),
        (np.zeros(3), np.arange(4.0)),
    ],
    ids=["nan-value", "inf-time", "wrong-F", "empty", "length-mismatch"],
)
def test_rejects_bad_sequences(values: np.ndarray, times: np.ndarray) -> None:
    with pytest.raises(KernelInputError):
        normalise_sequence(values, times, ModelConfig())
