"""State schema, packing, the register-blocked gate product and the fast tanh/sigmoid/softplus approximations."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from rnncore import kernels
from rnncore.kernels import layout
from rnncore.kernels._gemm import gate_product
from rnncore.kernels.fastmath import sigmoid_approx, softplus_approx, tanh_approx
from rnncore.kernels.packing import IDX_LAYER0, gate_blocks, gate_columns, head_blocks, padded_width
from rnncore.model.config import CellType, ModelConfig
from rnncore.model.weights import ModelWeights


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


@njit
def _apply_softplus(x: np.ndarray, out: np.ndarray) -> None:
    for i in range(x.size):
        out[i] = softplus_approx(x[i])


def test_softplus_approximation_is_float32_accurate_down_to_denormals() -> None:
    x = np.concatenate([np.linspace(-110, 110, 400_001), np.logspace(-8, 1, 1001), -np.logspace(-8, 1, 1001)])
    x = x.astype(np.float32)
    got = np.empty_like(x)
    _apply_softplus(x, got)
    want = np.logaddexp(0.0, x.astype(np.float64))
    error = np.abs(got - want)
    assert error.max() < 1e-6  # float32 rounding of results up to 110
    normal = want > 1.2e-38
    assert (error[normal] / want[normal]).max() < 5e-7
    assert np.all(got[x < -104] == 0.0) and np.all(np.isfinite(got))


@pytest.mark.parametrize("n", [1, 5, 6, 7, 13, 66])
@pytest.mark.parametrize(("width", "K1", "K2"), [(16, 3, 0), (48, 0, 9), (64, 1, 64), (144, 9, 17)])
def test_gate_product_equals_bias_plus_both_products(n: int, width: int, K1: int, K2: int) -> None:
    rng = np.random.default_rng(n * width + K1)
    ldw, col = width + 32, 16  # a column window inside wider blocks, as the GRU's gate groups use it
    rows = (n + 5) // 6 * 6  # gate_product may compute (never-read) rows up to the next multiple of 6
    W1, W2 = rng.normal(size=(max(K1, 1), ldw)), rng.normal(size=(max(K2, 1), ldw))
    bias = rng.normal(size=ldw)
    weights = np.concatenate([bias, W1.ravel(), W2.ravel()]).astype(np.float32)
    A1 = rng.normal(size=(rows, max(K1, 1))).astype(np.float32)
    A2 = rng.normal(size=(rows, max(K2, 1))).astype(np.float32)
    P = np.full((rows, ldw), np.nan, np.float32)
    gate_product(n, P, col, width, weights, 0, A1, ldw, K1, A2, ldw + W1.size, K2, ldw)
    want = bias + A1[:, :K1] @ W1[:K1] + A2[:, :K2] @ W2[:K2]
    np.testing.assert_allclose(P[:n, col : col + width], want[:n, col : col + width], rtol=1e-5, atol=1e-4)
    assert np.isnan(P[:, :col]).all() and np.isnan(P[:, col + width :]).all()


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_fused_blocks_reproduce_the_gate_pre_activations(cell: CellType) -> None:
    config = ModelConfig(cell=cell, n_features=3, hidden_size=20, num_layers=2)
    weights = ModelWeights.random(config, seed=4)
    p = {name: value.astype(np.float64) for name, value in weights.params.items()}
    rng = np.random.default_rng(0)
    x, h = rng.normal(size=20), rng.normal(size=20)
    W1, W2, bias = gate_blocks(config, weights.params, 1)
    Hp = padded_width(20)
    assert W1.shape == W2.shape == (20, gate_columns(cell, 20)) and bias.shape == (gate_columns(cell, 20),)
    fused = bias + x @ W1 + h @ W2
    gi = p["rnn.weight_ih_l1"] @ x + p["rnn.bias_ih_l1"]
    gh = p["rnn.weight_hh_l1"] @ h + p["rnn.bias_hh_l1"]
    if cell == "gru":  # [r z n_h n_x]
        want = [gi[:20] + gh[:20], gi[20:40] + gh[20:40], gh[40:], gi[40:]]
    else:
        want = [(gi + gh)[g * 20 : (g + 1) * 20] for g in range(4 if cell == "lstm" else 1)]
    for g, block in enumerate(want):
        np.testing.assert_allclose(fused[g * Hp : g * Hp + 20], block, rtol=1e-5, atol=1e-5)
        assert not fused[g * Hp + 20 : (g + 1) * Hp].any()  # padding columns stay zero
    W, b = head_blocks(config, weights.params)
    assert W.shape == (20, 16) and b.shape == (16,)
    np.testing.assert_allclose(h @ W[:, :6] + b[:6], p["head.weight"] @ h + p["head.bias"], rtol=1e-5, atol=1e-5)


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
    assert schema[layout.PEAK_VAR] == ((3,), np.dtype(np.float32))
    assert set(schema) == set(kernels.COLUMN_NAMES)
    assert kernels.bytes_per_row(config) == 4 * (2 * planes * 16 + 12 + 3) + 8 + 8 + 1


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
