"""The calibration prior: kernel vs reference, a new stream's warm-up with and without it, and the artifact field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rnncore.calibration import STATS_COLUMN, ScoringParams, calibrate, score_schema
from rnncore.calibration_prior import PRIOR_FIELD, CalibrationPrior, prior_of
from rnncore.detector import Detector
from rnncore.errors import ArtifactError, ScoringError
from rnncore.model.artifact import load_artifact, save_artifact
from rnncore.model.artifact_schema import canonical_checksum
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights
from tests.reference import calibrate_reference

PRIOR = CalibrationPrior(mean_surprise=1.0, var_surprise=0.5, mean_short=1.0, var_short=0.05, events=900, streams=3)
RANDOM = ModelWeights.random(ModelConfig(cell="gru", hidden_size=8), seed=3)


def _with_prior(weights: ModelWeights, prior: CalibrationPrior = PRIOR) -> ModelWeights:
    return ModelWeights(weights.config, weights.params, {**weights.metadata, PRIOR_FIELD: prior.to_dict()})


def _columns(params: ScoringParams, capacity: int) -> dict[str, np.ndarray]:
    return {name: np.zeros((capacity, *shape), dtype) for name, (shape, dtype) in score_schema(params).items()}


def test_kernel_matches_reference_with_a_prior() -> None:
    rng = np.random.default_rng(4)
    params = ScoringParams(
        short_window=5, long_window=120, warmup_events=20, prior_events=40, prior_warmup_events=6, tail_floor=1e-100
    )
    fast, slow = _columns(params, 5), _columns(params, 5)
    for _ in range(15):
        rows = rng.integers(0, 5, 48).astype(np.int64)
        nll = rng.normal(1.0, 0.8, 48).astype(np.float32)
        nll[rng.random(48) < 0.05] = np.nan
        nll[rng.random(48) < 0.05] = 30.0  # an outlier: winsorised against the prior from the first event
        status = (rng.random(48) < 0.1).astype(np.int8)
        a, b = np.zeros(48, np.float32), np.zeros(48, np.float32)
        calibrate(params, fast, rows, nll, status, a, None, PRIOR)
        calibrate_reference(params, slow, rows, nll, status, b, None, PRIOR)
        np.testing.assert_allclose(a, b, atol=2e-5)
        np.testing.assert_allclose(fast[STATS_COLUMN], slow[STATS_COLUMN], rtol=1e-5, atol=1e-5)


def test_a_fresh_row_starts_at_the_prior_with_its_pseudo_count() -> None:
    params = ScoringParams(prior_events=100)
    columns = _columns(params, 2)
    out = np.zeros(1, np.float32)
    calibrate(params, columns, np.array([1]), np.array([1.0], np.float32), np.zeros(1, np.int8), out, None, PRIOR)
    n, short, mean_s, var_s, mean_a, var_a, _ = columns[STATS_COLUMN][1].tolist()
    assert n == 101 and out[0] == 0.0  # one surprise of its own on top of the prior's 100
    assert mean_s == pytest.approx(1.0) and var_s == pytest.approx(0.5 * 100 / 101, rel=1e-5)
    assert short == pytest.approx(1.0) and mean_a == pytest.approx(1.0) and var_a == pytest.approx(0.05 * 100 / 101)
    assert not columns[STATS_COLUMN][0].any()  # the other row is untouched


def test_a_prior_that_does_not_fit_the_long_window_is_refused() -> None:
    params = ScoringParams(long_window=100, warmup_events=50, prior_events=90, prior_warmup_events=20)
    with pytest.raises(ScoringError, match="prior_events \\+ prior_warmup_events"):
        calibrate(params, _columns(params, 1), np.zeros(1, np.int64), np.ones(1, np.float32), np.zeros(1, np.int8),
                  np.zeros(1, np.float32), None, PRIOR)  # fmt: skip


def _first_scored(detector: Detector, events: int = 400, spike_at: int | None = None) -> tuple[int, np.ndarray]:
    """Index of a stream's first event with a score above 0 (-1: none; a noisy sine), and all its scores."""
    t = np.arange(events, dtype=np.float64)
    values = np.sin(t / 7.0) + 0.1 * np.random.default_rng(0).normal(size=events)
    if spike_at is not None:
        values[spike_at] += 25.0
    scores = np.array([detector.step(["s"], [t[k]], [values[k]]).scores[0] for k in range(events)])
    scored = np.flatnonzero(scores > 0)
    return (int(scored[0]) if scored.size else -1), scores


def test_a_new_stream_scores_from_its_warm_up_on_with_the_prior() -> None:
    scoring = ScoringParams()
    detector = Detector(_with_prior(RANDOM), max_streams=4)
    first, scores = _first_scored(detector, spike_at=scoring.prior_warmup_events + 5)
    assert detector.prior == PRIOR and detector.warmup_events == scoring.prior_warmup_events + 1
    assert first == scoring.prior_warmup_events + 1  # event 0 has no surprise, then prior_warmup_events unscored
    assert scores[scoring.prior_warmup_events + 5] >= 0.99  # a spike in the first tens of events is flagged


def test_without_a_prior_a_new_stream_warms_up_as_before() -> None:
    scoring = ScoringParams()
    detector = Detector(RANDOM, max_streams=4)  # ModelWeights.random: no metadata, no prior
    first, scores = _first_scored(detector, spike_at=scoring.prior_warmup_events + 5)
    assert detector.prior is None and detector.warmup_events == scoring.warmup_events + 1 == 201
    assert first == scoring.warmup_events + 1 and scores[scoring.prior_warmup_events + 5] == 0.0


def test_reload_takes_the_new_models_prior_for_new_streams_only() -> None:
    detector = Detector(RANDOM, max_streams=4)
    assert _first_scored(detector, events=50)[0] == -1  # stream "s" is 50 events into its 200-event warm-up
    detector.reload(_with_prior(RANDOM))
    assert detector.prior == PRIOR
    assert detector.table.columns[STATS_COLUMN][detector.table.lookup(["s"])[0], 0] == 49  # its own statistics kept


def _saved(tmp_path: Path, prior: CalibrationPrior | None = PRIOR) -> Path:
    metadata = {} if prior is None else {PRIOR_FIELD: prior.to_dict()}
    save_artifact(tmp_path, RANDOM, metadata)
    return tmp_path


def test_the_prior_round_trips_through_the_artifact(tmp_path: Path) -> None:
    weights = load_artifact(_saved(tmp_path, PRIOR))
    assert prior_of(weights.metadata) == PRIOR and Detector(weights, max_streams=2).prior == PRIOR


def test_an_artifact_without_a_prior_loads_and_keeps_the_old_warm_up(tmp_path: Path) -> None:
    weights = load_artifact(_saved(tmp_path, None))
    assert PRIOR_FIELD not in weights.metadata and Detector(weights, max_streams=2).warmup_events == 201


def _rewrite(directory: Path, edit: object, recompute: bool = True) -> None:
    """Put ``edit`` (a value, or a callable on the stored field) into model.json, with a valid checksum if asked."""
    path = directory / "model.json"
    document = json.loads(path.read_text())
    document[PRIOR_FIELD] = edit(document[PRIOR_FIELD]) if callable(edit) else edit
    if recompute:
        document["artifact_sha256"] = canonical_checksum(document)
    path.write_text(json.dumps(document))


def _edited(part: str, key: str, value: object):  # type: ignore[no-untyped-def]
    def edit(field: dict) -> dict:  # type: ignore[type-arg]
        field[part] = value if key == "" else {**field[part], key: value}
        return field

    return edit


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        pytest.param(_edited("surprise", "var", -1.0), "var_surprise must be in", id="negative-variance"),
        pytest.param(_edited("surprise", "mean", 1e300), "mean_surprise must be finite with", id="absurd-mean"),
        pytest.param(_edited("short_average", "var", "1"), "must be a number", id="string"),
        pytest.param(_edited("events", "", 0), "needs >= 1 event", id="no-events"),
        pytest.param(_edited("false_alarm", "new_streams", 3.0), "rates must be in", id="rate-above-one"),
        pytest.param(
            lambda field: {k: v for k, v in field.items() if k != "surprise"}, "lacks 'surprise'", id="missing"
        ),  # fmt: skip
        pytest.param([1, 2], "must be an object", id="not-an-object"),
        pytest.param(lambda field: {**field, "extra": 1}, "unknown parts", id="unknown-part"),
    ],
)
def test_a_hostile_prior_is_refused_even_with_a_valid_checksum(tmp_path: Path, edit: object, problem: str) -> None:
    _rewrite(_saved(tmp_path), edit)
    with pytest.raises(ArtifactError, match=f"calibration_prior.*{problem}"):
        load_artifact(tmp_path)


def test_an_edited_prior_breaks_the_checksum(tmp_path: Path) -> None:
    _rewrite(_saved(tmp_path), _edited("surprise", "mean", 5.0), recompute=False)
    with pytest.raises(ArtifactError, match="corrupt or was edited"):
        load_artifact(tmp_path)


def test_nan_in_the_prior_is_refused(tmp_path: Path) -> None:
    path = _saved(tmp_path) / "model.json"
    path.write_text(path.read_text().replace('"var": 0.5', '"var": NaN'))
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_artifact(tmp_path)


def test_build_scorer_takes_both_warm_ups() -> None:
    from rnncore.scorer import build_scorer

    scorer = build_scorer(_with_prior(RANDOM), None, prior_warmup_events=5, max_streams=2)
    assert scorer.scoring.prior_warmup_events == 5 and scorer.warmup_events == 6  # type: ignore[union-attr]
    plain = build_scorer(RANDOM, None, warmup_events=7, max_streams=2)
    assert plain.warmup_events == 8 and plain.scoring.prior_warmup_events == ScoringParams().prior_warmup_events  # type: ignore[union-attr]
