"""Parity: the online core running exported weights forecasts what the torch module forecasts (<= 1e-5).

Engines: the per-event numpy reference of the contract (always), and the Numba kernels (``rnncore.kernels``:
``pack``, ``state_schema``, ``StepOutput``, ``advance``) whenever that package is present. Forecasts are
compared in original units (mean, scale) on held-out sequences, event by event and in whole batches.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import numpy as np
import pytest
import torch

from rnncore.kernels.preprocess import normalise_sequence
from rnncore.model.config import ModelConfig
from rnncore.training.dataset import build_dataset
from rnncore.training.module import export_weights, from_weights
from rnncore.training.trainer import TrainConfig, predict, train
from stream.data.synthetic import generate_fleet
from tests.reference import reference_forecasts

pytestmark = pytest.mark.torch

Engine = Callable[..., tuple[np.ndarray, np.ndarray]]
TOLERANCE = 1e-5


def _numpy_engine(weights, streams: list[tuple[np.ndarray, np.ndarray]], batched: bool):
    out = []
    for values, times in streams:
        mu, sigma = reference_forecasts(weights, values, times)
        seq = normalise_sequence(values, times, weights.config)
        out.append((seq.mean + mu * seq.std, sigma * seq.std))
    return out


def _kernel_engine(weights, streams: list[tuple[np.ndarray, np.ndarray]], batched: bool):
    kernels = importlib.import_module("rnncore.kernels")
    config = weights.config
    model = kernels.pack(weights)
    schema = kernels.state_schema(config)
    columns = {name: np.zeros((len(streams), *shape), dtype=dtype) for name, (shape, dtype) in schema.items()}
    # interleave the streams' events in time order, as a consumer would see them
    rows = np.concatenate([np.full(len(t), r) for r, (_, t) in enumerate(streams)])
    index = np.concatenate([np.arange(len(t)) for _, t in streams])
    times = np.concatenate([t for _, t in streams])
    values = np.concatenate([v for v, _ in streams]).astype(np.float32)
    order = np.lexsort((rows, times))
    rows, index, times, values = rows[order], index[order], times[order], values[order]
    F = config.n_features
    means = [np.empty((len(t), F)) for _, t in streams]
    scales = [np.empty((len(t), F)) for _, t in streams]
    size = len(rows) if batched else 1
    for lo in range(0, len(rows), size):
        sl = slice(lo, lo + size)
        out = kernels.StepOutput.empty(len(rows[sl]), F)
        batch_rows, batch_values = np.ascontiguousarray(rows[sl]), np.ascontiguousarray(values[sl])
        kernels.advance(model, columns, batch_rows, times[sl], batch_values, out)
        for j, (r, i) in enumerate(zip(rows[sl], index[sl], strict=True)):
            means[r][i] = np.asarray(out.mean).reshape(-1, F)[j]
            scales[r][i] = np.asarray(out.scale).reshape(-1, F)[j]
    return list(zip(means, scales, strict=True))


def _kernels_present() -> bool:
    """True once ``rnncore.kernels`` exposes the step API (it is written in parallel with this test)."""
    if importlib.util.find_spec("rnncore.kernels") is None:
        return False
    module = importlib.import_module("rnncore.kernels")
    return all(hasattr(module, name) for name in ("pack", "state_schema", "StepOutput", "advance"))


ENGINES = [pytest.param(_numpy_engine, id="numpy-reference")]
if _kernels_present():
    ENGINES.append(pytest.param(_kernel_engine, id="numba-kernels"))


def _held_out(config: ModelConfig, n_streams: int, n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    streams = []
    for _ in range(n_streams):
        # float32-representable values of order 1, so float32 online stats cost well under the tolerance
        values = (np.cumsum(rng.normal(0, 0.1, size=(n, config.n_features)), axis=0) + 1.0).astype(np.float32)
        values[n // 2] += 5.0  # an outlier that reaches the input clip
        times = 1.7e9 + np.cumsum(rng.exponential(30.0, size=n))
        streams.append((values.astype(np.float64), times))
    return streams


def _torch_forecasts(weights, streams):
    module = from_weights(weights)
    out = []
    for values, times in streams:
        seq = normalise_sequence(values, times, weights.config)
        with torch.no_grad():
            mu, sigma, _ = module(torch.from_numpy(seq.inputs)[None])
        out.append((seq.mean + mu[0].double().numpy() * seq.std, sigma[0].double().numpy() * seq.std))
    return out


def _max_error(a, b) -> float:
    pairs = [(x, y) for (xm, xs), (ym, ys) in zip(a, b, strict=True) for x, y in ((xm, ym), (xs, ys))]
    return max(float(np.max(np.abs(x - y))) for x, y in pairs)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("batched", [False, True], ids=["one-at-a-time", "batched"])
@pytest.mark.parametrize(
    "config",
    [
        pytest.param(ModelConfig(cell="rnn", hidden_size=16, norm_window=40), id="rnn-L1-F1"),
        pytest.param(ModelConfig(cell="gru", hidden_size=16, num_layers=2, n_features=2), id="gru-L2-F2"),
        pytest.param(
            ModelConfig(cell="lstm", hidden_size=16, num_layers=2, time_delta_feature=True, dt_scale=30.0),
            id="lstm-L2-dt",
        ),
    ],
)
def test_exported_random_weights_forecast_the_same(engine: Engine, batched: bool, config: ModelConfig) -> None:
    torch.manual_seed(0)
    weights = export_weights(from_weights(_random(config)))
    streams = _held_out(config, n_streams=3, n=150, seed=1)
    assert _max_error(engine(weights, streams, batched), _torch_forecasts(weights, streams)) <= TOLERANCE


def _random(config: ModelConfig):
    from rnncore.model.weights import ModelWeights

    return ModelWeights.random(config, seed=5, scale=0.5)


@pytest.mark.parametrize("engine", ENGINES)
def test_trained_weights_forecast_the_same_on_held_out_streams(engine: Engine) -> None:
    config = ModelConfig(cell="gru", hidden_size=16, norm_window=100)
    fleet = generate_fleet(4, 300, seed=8)
    dataset = build_dataset(fleet.records(), config)
    settings = TrainConfig(epochs=2, batch_size=8, bptt=16, segment_length=64, threads=1, progress=False)
    result = train(dataset, config, settings)
    fresh = generate_fleet(2, 200, seed=99).streams
    held_out = [(s.values.astype(np.float32).astype(np.float64), s.times) for s in fresh]
    expected = _torch_forecasts(result.weights, held_out)
    assert _max_error(engine(result.weights, held_out, True), expected) <= TOLERANCE
    # the trainer's padded, chunked prediction path (used for validation) agrees with one plain forward
    batched = predict(result.module, dataset, batch_size=3, chunk=50)  # padding + chunked state carry
    for stream, forecast in zip(dataset.streams, batched, strict=True):
        with torch.no_grad():
            mu, sigma, _ = result.module(torch.from_numpy(stream.seq.inputs)[None])
        np.testing.assert_allclose(forecast[:, 0], mu[0].numpy(), rtol=0, atol=TOLERANCE)
        np.testing.assert_allclose(forecast[:, 1], sigma[0].numpy(), rtol=0, atol=TOLERANCE)


def test_trained_weights_give_the_same_surprise_and_scores_as_the_torch_model() -> None:
    """The Detector's per-event NLL and calibrated score equal the torch module's Gaussian NLL of each next value
    (run through the same online calibration) on held-out streams fed interleaved."""
    from rnncore.calibration import ScoringParams, calibrate, score_schema
    from rnncore.detector import Detector
    from rnncore.training.module import gaussian_nll

    config = ModelConfig(cell="gru", hidden_size=16, num_layers=2, norm_window=100)
    dataset = build_dataset(generate_fleet(4, 300, seed=8).records(), config)
    settings = TrainConfig(epochs=2, batch_size=8, bptt=16, segment_length=64, threads=1, progress=False)
    weights = train(dataset, config, settings).weights
    params = ScoringParams(warmup_events=20, short_window=5)
    held_out = generate_fleet(3, 400, anomalies_per_stream=0, seed=99).streams
    module = from_weights(weights)
    expected: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for stream in held_out:
        values = stream.values.astype(np.float32).astype(np.float64)
        seq = normalise_sequence(values, stream.times, config)
        # the next value in the units of each forecast; not clipped (training clips its targets, surprise does not)
        targets = torch.from_numpy((values[1:] - seq.mean[:-1]) / seq.std[:-1])
        with torch.no_grad():
            mu, sigma, _ = module(torch.from_numpy(seq.inputs)[None])
            nll = gaussian_nll(mu[0, :-1].double(), sigma[0, :-1].double(), targets).numpy()
        surprise = np.concatenate([[np.nan], nll]).astype(np.float32)  # no forecast before the first event
        columns = {name: np.zeros((1, *shape), dtype=dtype) for name, (shape, dtype) in score_schema(params).items()}
        scores = np.zeros(surprise.size, dtype=np.float32)
        status = np.zeros(surprise.size, dtype=np.int8)
        calibrate(params, columns, np.zeros(surprise.size, dtype=np.int64), surprise, status, scores)
        expected[stream.key] = (surprise, scores)

    detector = Detector(weights, max_streams=10, scoring=params)
    events = sorted(((t, s.key, v) for s in held_out for t, v in zip(s.times, s.values, strict=True)))
    got: dict[str, list[tuple[float, float]]] = {}
    for lo in range(0, len(events), 97):  # batches that cut across streams
        chunk = events[lo : lo + 97]
        result = detector.step([k for _, k, _ in chunk], np.array([t for t, _, _ in chunk]),
                               np.array([v for _, _, v in chunk], dtype=np.float32))  # fmt: skip
        for (_, key, _), nll, score in zip(chunk, result.nll, result.scores, strict=True):
            got.setdefault(key, []).append((float(nll), float(score)))
    for key, (surprise, scores) in expected.items():
        pairs = np.array(got[key])
        # NLL is float32 and reaches thousands on a stream's second event: 1e-5 absolute or float32 relative
        np.testing.assert_allclose(pairs[:, 0], surprise, rtol=1e-6, atol=TOLERANCE, equal_nan=True, err_msg=key)
        np.testing.assert_allclose(pairs[:, 1], scores, rtol=0, atol=TOLERANCE, err_msg=key)
    assert max(float(s.max()) for _, s in expected.values()) > 0.05  # past warm-up: not a comparison of zeros


@pytest.mark.parametrize("engine", ENGINES)
def test_weights_trained_with_dropout_forecast_the_same_and_dropout_is_off_in_eval(engine: Engine) -> None:
    """Dropout between stacked layers changes training only: the returned module is in eval mode, two eval passes
    agree exactly (two train-mode passes do not), and the exported weights keep kernel/torch parity."""
    config = ModelConfig(cell="gru", hidden_size=16, num_layers=2, norm_window=100)
    dataset = build_dataset(generate_fleet(4, 300, seed=8).records(), config)
    settings = TrainConfig(epochs=2, batch_size=8, bptt=16, segment_length=64, threads=1, progress=False, dropout=0.5)
    result = train(dataset, config, settings)
    assert not result.module.training
    x = torch.from_numpy(dataset.streams[0].seq.inputs)[None]
    with torch.no_grad():
        first, again = result.module(x)[0], result.module(x)[0]
        torch.testing.assert_close(first, again, rtol=0, atol=0)
        result.module.train()
        assert not torch.equal(result.module(x)[0], result.module(x)[0])  # dropout acts in training mode
        result.module.eval()
    fresh = generate_fleet(2, 200, seed=99).streams
    held_out = [(s.values.astype(np.float32).astype(np.float64), s.times) for s in fresh]
    expected = _torch_forecasts(result.weights, held_out)
    assert _max_error(engine(result.weights, held_out, True), expected) <= TOLERANCE
    np.testing.assert_allclose(expected[0][0], _torch_forecasts(export_weights(result.module), held_out)[0][0])
