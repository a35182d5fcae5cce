"""State schema, packing and the fast tanh/sigmoid approximations."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from rnncore import kernels
from rnncore.config import CellType, ModelConfig
from rnncore.kernels import layout
from rnncore.kernels.fastmath import sigmoid_approx, tanh_approx
from rnncore.kernels.packing import IDX_LAYER0
from rnncore.model import ModelWeights


@njit
def _apply_tanh(x: np.ndarray, out: np.ndarray) -> None:
    for i in range(x.size):
        out[i] = tanh_approx(x[i])


@njit
def _apply_sigmoid(x: np.ndarray, out: np.ndarray) -> None:
    for i in range(x.size):
        out[i] = sigmoid_approx(x[i])


def test_tanh_and_sigmoid_approximations_are_float32_accurate() -> None:
    x = np.concatenate([np.linspace(-20, 20, 200_001), [0.0, 1e-8, -3e-4, 5e-4, 7.9, 8.0, 50.0]]).astype(np.float32)
    got = np.empty_like(x)
    _apply_tanh(x, got)
    assert np.abs(got - np.tanh(x.astype(np.float64))).max() < 4e-7
    assert np.all(np.abs(got) <= 1.0)
    _apply_sigmoid(x, got)
    assert np.abs(got - 1.0 / (1.0 + np.exp(-x.astype(np.float64)))).max() < 4e-7


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_state_schema_shapes_and_dtypes(cell: CellType) -> None:
    config = ModelConfig(cell=cell, n_features=3, hidden_size=16, num_layers=2)
    schema = kernels.state_schema(config)
    planes = 2 if cell == "lstm" else 1
    assert schema[layout.RECURRENT] == ((2, planes, 16), np.dtype(np.float32))
    assert schema[layout.NORM] == ((2, 3), np.dtype(np.float32))
    assert schema[layout.FORECAST] == ((2, 3), np.dtype(np.float32))
    assert schema[layout.LAST_TIME] == ((), np.dtype(np.float64))
    assert schema[layout.COUNT] == ((), np.dtype(np.int64))
    assert set(schema) == set(kernels.COLUMN_NAMES)
    assert kernels.bytes_per_row(config) == 4 * (2 * planes * 16 + 12) + 8 + 8 + 1


def test_pack_places_transposed_blocks_at_aligned_offsets() -> None:
    config = ModelConfig(cell="gru", n_features=2, hidden_size=5, num_layers=2, time_delta_feature=True)
    weights = ModelWeights.random(config, seed=2)
    model = kernels.pack(weights)
    assert model.weights.dtype == np.float32 and model.index.dtype == np.int64
    assert (model.index[6:] % 16 == 0).all()
    for k in range(2):
        width = 3 if k == 0 else 5
        start = model.index[IDX_LAYER0 + 4 * k]
        block = model.weights[start : start + width * 15].reshape(width, 15)
        np.testing.assert_array_equal(block, weights.params[f"rnn.weight_ih_l{k}"].T)
    head = model.weights[model.index[6] : model.index[6] + 5 * 4].reshape(5, 4)
    np.testing.assert_array_equal(head, weights.params["head.weight"].T)
    assert model.nbytes >= sum(p.nbytes for p in weights.params.values())


def test_step_output_empty_shapes() -> None:
    out = kernels.StepOutput.empty(7, 3)
    assert out.nll.shape == (7,) and out.mean.shape == (7, 3) and out.scale.shape == (7, 3)
    assert out.status.dtype == np.int8 and out.mean.dtype == np.float32


def test_scipy_blas_is_pinned_to_one_thread() -> None:
    from rnncore.kernels._blas import pin_scipy_blas_to_one_thread

    assert pin_scipy_blas_to_one_thread()


def test_non_contiguous_arrays_are_refused_with_a_hint() -> None:
    config = ModelConfig(cell="rnn", n_features=2, hidden_size=4)
    model = kernels.pack(ModelWeights.random(config))
    columns = layout.allocate_columns(config, 3)
    values = np.zeros((2, 4), np.float32)[:, ::2]
    with pytest.raises(kernels.KernelInputError, match="C-contiguous"):
        kernels.advance(model, columns, np.array([0, 1]), np.zeros(2), values, kernels.StepOutput.empty(2, 2))
    assert not columns[layout.COUNT].any()
