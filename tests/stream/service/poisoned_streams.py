"""Three live streams, the model that scores them and the checks of the fault tests that slip bad records in among
their good events (test_poison_cases, test_key_flood): read the dead letters back with their source offsets, and
check every stream scores as on a clean run (its good events alone, offline, through the same scorer)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from rnncore.scorer import build_scorer
from stream.service.codec import SOURCE_HEADER, header_value
from stream.service.config import ServiceConfig
from tests.kafka_helpers import run_sync
from tests.stream.service_harness import offline_rows, published_rows, read_all, reasons

WEIGHTS = ModelWeights.random(ModelConfig(cell="gru", n_features=1, hidden_size=8), seed=3)
STREAMS = ("sensor-0", "sensor-1", "sensor-2")
STEPS = 80
SPIKE_AT = 60  # a spike of every stream, after the poison: it must stand out as on a clean run
SPIKE = {step: 8.0 if step == SPIKE_AT else 0.0 for step in range(STEPS)}


def good_events() -> list[tuple[str, float, float]]:
    """:data:`STEPS` events of each of :data:`STREAMS`, interleaved, one spike each at :data:`SPIKE_AT`."""
    rng = np.random.default_rng(17)
    return [
        (key, 1000.0 + step + k / 10, float(np.sin(step / 6 + k) + 0.2 * rng.standard_normal() + SPIKE[step]))
        for step in range(STEPS)
        for k, key in enumerate(STREAMS)
    ]


def clean_run(good: Sequence[tuple[str, float, float]], config: ServiceConfig) -> dict[str, np.ndarray]:
    """Per stream [score, nll, mean, scale] of the good events alone, one at a time through the same scorer."""
    scorer = build_scorer(
        WEIGHTS,
        None,
        max_streams=config.max_streams_per_partition,
        idle_ttl_seconds=config.idle_ttl_seconds,
        warmup_events=config.warmup_events,
    )
    return offline_rows(scorer, good)


def assert_scored_as_on_a_clean_run(
    scored: dict[str, list[dict[str, Any]]], good: Sequence[tuple[str, float, float]], config: ServiceConfig
) -> dict[str, np.ndarray]:
    """Every one of :data:`STREAMS` published the rows of :func:`clean_run` (to 1e-5); returns them per stream."""
    clean = clean_run(good, config)
    rows = {}
    for key in STREAMS:
        got = published_rows(scored[key])
        assert got.shape == clean[key].shape, key
        np.testing.assert_allclose(got, clean[key], rtol=1e-5, atol=1e-5, err_msg=key)
        rows[key] = got
    return rows


class DeadLetter(NamedTuple):
    """A record of the dead-letter topic: the input offset it came from, its reason and its value."""

    offset: int
    reason: str | None
    value: bytes | None


def read_dead_letters(bootstrap: str, topic: str, expected: int) -> list[DeadLetter]:
    """The dead-letter ``topic``'s records as :func:`read_all` reads them (``expected`` of them), in order."""
    records = run_sync(read_all(bootstrap, topic, expected))
    offsets = [int(str(header_value(list(r.headers), SOURCE_HEADER)).rsplit("/", 1)[1]) for r in records]
    return [DeadLetter(o, why, r.value) for o, why, r in zip(offsets, reasons(records), records, strict=True)]
