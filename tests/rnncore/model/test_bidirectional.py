"""Bidirectional rescoring: the scorer equals the torch module run directly, it never sees the value it
forecasts, it does use later events, and causal paths refuse it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnncore.errors import ConfigError, NonCausalModelError
from rnncore.kernels.preprocess import normalise_sequence
from rnncore.model.artifact import load_artifact, save_artifact
from rnncore.model.bidirectional import backward_inputs, ensure_causal
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from rnncore.training.bidirectional import bidirectional_from_weights, score_records
from stream.data.eventlog import EventRecord

pytestmark = pytest.mark.torch

CONFIG = ModelConfig(cell="gru", hidden_size=6, n_features=2, direction="bidirectional", time_delta_feature=True)


def _records(lengths: tuple[int, ...] = (40, 25, 9), seed: int = 0) -> list[EventRecord]:
    rng = np.random.default_rng(seed)
    records = []
    for s, n in enumerate(lengths):
        times = np.cumsum(rng.uniform(0.5, 2.0, n))
        records += [EventRecord(f"s{s}", float(t), tuple(rng.normal(size=2).tolist())) for t in times]
    return [records[i] for i in rng.permutation(len(records))]  # interleaved, not in time order


def _direct_nll(weights: ModelWeights, values: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Surprise per event from one unpadded forward pass of the module, computed by hand."""
    module = bidirectional_from_weights(weights)
    seq = normalise_sequence(values, times, weights.config)
    xb = backward_inputs(values, times, weights.config)
    with torch.no_grad():
        mu, sigma = module(torch.from_numpy(seq.inputs)[None], torch.from_numpy(xb)[None])
    mu, sigma = mu[0].double().numpy(), sigma[0].double().numpy()
    nll = [math.nan]
    for t in range(1, len(times)):
        z = (seq.targets[t - 1] - mu[t - 1]) / sigma[t - 1]
        nll.append(float(np.mean(0.5 * z**2 + np.log(sigma[t - 1]) + 0.5 * math.log(2 * math.pi))))
    return np.array(nll)


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_scorer_equals_running_the_module_directly(cell: str) -> None:
    weights = ModelWeights.random(ModelConfig(**{**CONFIG.to_dict(), "cell": cell}), seed=4)
    records = _records()
    result = score_records(weights, records, batch_size=2)  # padding of unequal streams inside a batch
    for key in ("s0", "s1", "s2"):
        idx = sorted((i for i, r in enumerate(records) if r.key == key), key=lambda i: records[i].time)
        values = np.array([records[i].values for i in idx])
        times = np.array([records[i].time for i in idx])
        np.testing.assert_allclose(result.nll[idx], _direct_nll(weights, values, times), rtol=1e-5, atol=1e-5)
    assert np.all((result.scores >= 0) & (result.scores <= 1))


def test_forecast_of_an_event_does_not_depend_on_its_own_value() -> None:
    weights = ModelWeights.random(CONFIG, seed=1, scale=0.8)
    module = bidirectional_from_weights(weights)
    rng = np.random.default_rng(2)
    values, times = rng.normal(size=(30, 2)), np.arange(30.0)

    def forecasts(v: np.ndarray) -> np.ndarray:
        seq = normalise_sequence(v, times, CONFIG)
        xb = backward_inputs(v, times, CONFIG)
        with torch.no_grad():
            mu, sigma = module(torch.from_numpy(seq.inputs)[None], torch.from_numpy(xb)[None])
        return torch.cat([mu, sigma], dim=-1)[0].numpy()

    changed = values.copy()
    changed[12] = [40.0, -25.0]  # a huge anomaly at event 12
    before, after = forecasts(values), forecasts(changed)
    np.testing.assert_array_equal(before[11], after[11])  # row 11 forecasts event 12: blind to it
    assert not np.allclose(before[10], after[10])  # other rows may use it (it is later for row 10)
    assert not np.allclose(before[13], after[13])


def test_backward_inputs_use_only_the_events_from_there_on() -> None:
    rng = np.random.default_rng(3)
    values, times = rng.normal(size=(20, 2)), np.cumsum(rng.uniform(0.1, 3.0, 20))
    full = backward_inputs(values, times, CONFIG)
    tail = backward_inputs(values[7:], times[7:], CONFIG)
    np.testing.assert_array_equal(full[7:], tail)
    np.testing.assert_allclose(full[:-1, 2], np.log1p(np.diff(times) / CONFIG.dt_scale), rtol=1e-6)


def test_later_events_change_earlier_scores() -> None:
    weights = ModelWeights.random(CONFIG, seed=5, scale=0.8)
    records = sorted(_records((30,), seed=1), key=lambda r: r.time)
    base = score_records(weights, records).nll
    edited = records.copy()
    edited[20] = EventRecord("s0", records[20].time, (9.0, 9.0))
    assert not np.isclose(base[15], score_records(weights, edited).nll[15])


def test_causal_paths_refuse_a_bidirectional_model_with_a_clear_message() -> None:
    ensure_causal(ModelConfig(), "the service")  # causal: fine
    with pytest.raises(NonCausalModelError, match=r"the service needs a causal model.*--bidirectional"):
        ensure_causal(CONFIG, "the service")


def test_bidirectional_artifact_round_trip(tmp_path: object) -> None:
    weights = ModelWeights.random(CONFIG, seed=2)
    assert weights.params["head.weight"].shape == (4, 12)
    assert weights.params["rnn_reverse.weight_hh_l0"].shape == (18, 6)
    save_artifact(tmp_path, weights)  # type: ignore[arg-type]
    loaded = load_artifact(tmp_path)  # type: ignore[arg-type]
    assert loaded.config == CONFIG
    for name, array in weights.params.items():
        np.testing.assert_array_equal(loaded.params[name], array)


def test_plain_config_dict_is_unchanged_and_old_dicts_load() -> None:
    plain = ModelConfig(hidden_size=8).to_dict()
    assert "direction" not in plain and "attention_window" not in plain
    assert ModelConfig.from_dict(plain) == ModelConfig(hidden_size=8)
    assert ModelConfig.from_dict(CONFIG.to_dict()) == CONFIG
    with pytest.raises(ConfigError, match="direction"):
        ModelConfig(direction="sideways")  # type: ignore[arg-type]
