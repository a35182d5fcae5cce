"""One contract suite over every ``StreamScorer`` (as river's ``check_estimator`` does): the Detector, the staged
pipeline and the service tests' fake all keep the promises the service relies on (``rnncore/contract.py``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from rnncore.contract import EventRecord, EventStatus, StreamScorer
from rnncore.detector import Detector
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from rnncore.stages.envelope import Envelope, EnvelopeParams, fit_envelope
from rnncore.stages.enveloped import EnvelopedDetector
from rnncore.stages.pipeline import ScoringPipeline
from rnncore.stages.selffit import SelfFitParams
from tests.stream.fake_detector import FakeDetector

WEIGHTS = ModelWeights.random(ModelConfig(cell="gru", hidden_size=8, n_features=1), seed=4)


def _normal_history() -> list[EventRecord]:
    """Clean training rows for s0..s3 (the envelope's frozen references), earlier than the test events."""
    rng = np.random.default_rng(9)
    return [
        EventRecord(f"s{k}", 1.0e9 + 60.0 * j, (float(np.sin(j / 20) + 0.1 * rng.standard_normal()),))
        for k in range(4)
        for j in range(1500)
    ]


ENVELOPE = fit_envelope(_normal_history())
# no training reference: each stream fits its own, provisional after 140 of the suite's ~300 events per stream, final
# after 230 (the snapshot test cuts at ~175: mid second stage)
UNTRAINED = Envelope.empty(1, EnvelopeParams(warmup=50))
SELF_FIT = SelfFitParams(fit_events=60, held_events=30, final_fit_events=60, final_held_events=30)

SCORERS: dict[str, Callable[[int], StreamScorer]] = {
    "detector": lambda max_streams: Detector(WEIGHTS, max_streams=max_streams),
    "enveloped": lambda max_streams: EnvelopedDetector(WEIGHTS, ENVELOPE, max_streams=max_streams),
    "self_fitted": lambda max_streams: EnvelopedDetector(
        WEIGHTS, UNTRAINED, self_fit=SELF_FIT, max_streams=max_streams
    ),
    "pipeline": lambda max_streams: ScoringPipeline(WEIGHTS, max_streams=max_streams),
    "fake": lambda max_streams: FakeDetector(max_streams=max_streams),
}


@pytest.fixture(params=list(SCORERS), ids=list(SCORERS))
def make(request: pytest.FixtureRequest) -> Callable[[int], StreamScorer]:
    return SCORERS[request.param]


def _events(n: int = 1200, streams: int = 4, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Interleaved streams, one minute apart each, noisy daily-ish cycles with a spike per stream."""
    rng = np.random.default_rng(seed)
    keys = [f"s{rng.integers(streams)}" for _ in range(n)]
    seen: dict[str, int] = {}
    times, values = np.empty(n), np.empty(n, dtype=np.float32)
    for i, key in enumerate(keys):
        j = seen[key] = seen.get(key, -1) + 1
        times[i] = 1.7e9 + 60.0 * j
        values[i] = np.sin(j / 20) + 0.1 * rng.standard_normal() + (6.0 if j == 250 else 0.0)
    return keys, times, values


def _run(scorer: StreamScorer, keys: list[str], times: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    scores = [
        scorer.step(keys[a : a + size], times[a : a + size], values[a : a + size]).scores
        for a in range(0, len(keys), size)
    ]
    return np.concatenate(scores) if scores else np.empty(0, np.float32)


def test_outputs_have_one_entry_per_event(make: Callable[[int], StreamScorer]) -> None:
    keys, times, values = _events(50)
    result = make(64).step(keys, times, values)
    assert len(result.scores) == len(result.status) == len(result.nll) == 50
    assert ((result.scores >= 0) & (result.scores <= 1)).all()
    assert (result.status == EventStatus.OK).all()
    empty = make(64).step([], np.empty(0), np.empty(0, np.float32))
    assert len(empty.scores) == 0


def test_a_batch_equals_its_events_one_at_a_time(make: Callable[[int], StreamScorer]) -> None:
    keys, times, values = _events()
    np.testing.assert_array_equal(_run(make(64), keys, times, values, 97), _run(make(64), keys, times, values, 1))


def test_snapshot_restore_then_continue_equals_an_uninterrupted_run(make: Callable[[int], StreamScorer]) -> None:
    keys, times, values = _events()
    whole = _run(make(64), keys, times, values, 50)
    assert whole.max() > 0.5  # past warm-up: the equality below compares real scores
    first = make(64)
    head = _run(first, keys[:700], times[:700], values[:700], 50)
    resumed = make(64)
    assert resumed.restore(first.snapshot()) == first.n_streams == 4
    tail = _run(resumed, keys[700:], times[700:], values[700:], 50)
    np.testing.assert_array_equal(np.concatenate([head, tail]), whole)


def test_a_partial_snapshot_moves_only_the_named_streams(make: Callable[[int], StreamScorer]) -> None:
    keys, times, values = _events()
    scorer = make(64)
    _run(scorer, keys, times, values, 50)
    other = make(64)
    assert other.restore(scorer.snapshot(["s1", "s3"])) == 2
    assert sorted(other.table.keys()) == ["s1", "s3"]


def test_a_full_table_refuses_new_streams_and_leaves_the_known_ones_alone(make: Callable[[int], StreamScorer]) -> None:
    keys, times, values = _events()
    control = _run(make(4), keys, times, values, 40)
    assert control.max() > 0.5
    flooded = make(4)
    out = []
    for a in range(0, len(keys), 40):
        flood = [f"new-{a}-{i}" for i in range(10)]
        batch_keys = keys[a : a + 40] + flood
        batch_times = np.concatenate([times[a : a + 40], np.full(10, times[a])])
        batch_values = np.concatenate([values[a : a + 40], np.zeros(10, np.float32)])
        result = flooded.step(batch_keys, batch_times, batch_values)
        assert (result.status[-10:] == EventStatus.TABLE_FULL).all()
        assert (result.scores[-10:] == 0).all()
        out.append(result.scores[:-10])
    np.testing.assert_array_equal(np.concatenate(out), control)
    assert flooded.n_streams == 4


def test_evicted_streams_are_forgotten_and_come_back_fresh(make: Callable[[int], StreamScorer]) -> None:
    keys, times, values = _events()
    scorer = make(64)
    _run(scorer, keys, times, values, 50)
    last = float(times.max())
    scorer.step(["late"], np.array([last + 3600.0]), np.array([0.0], np.float32))
    assert scorer.evict_idle(last + 3600.0, ttl_seconds=60.0) == 4
    assert list(scorer.table.keys()) == ["late"]
    fresh = make(64)
    again = _run(scorer, keys, times + 7200.0, values, 50)
    np.testing.assert_array_equal(again, _run(fresh, keys, times + 7200.0, values, 50))
