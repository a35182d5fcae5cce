"""Calibration kernel vs its reference, and the properties the service relies on."""

from __future__ import annotations

import numpy as np
import pytest

from rnncore.calibration import STATS_COLUMN, ScoringParams, calibrate, score_schema
from rnncore.errors import ScoringError
from tests.reference import calibrate_reference


def _columns(params: ScoringParams, capacity: int) -> dict[str, np.ndarray]:
    return {name: np.zeros((capacity, *shape), dtype) for name, (shape, dtype) in score_schema(params).items()}


def _run(fn, params, columns, rows, nll, status=None):
    rows = np.asarray(rows, dtype=np.int64)
    nll = np.asarray(nll, dtype=np.float32)
    status = np.zeros(rows.size, np.int8) if status is None else np.asarray(status, dtype=np.int8)
    out = np.full(rows.size, -1.0, dtype=np.float32)
    fn(params, columns, rows, nll, status, out)
    return out


def test_schema_is_float32_rows_of_seven() -> None:
    schema = score_schema(ScoringParams())
    assert schema == {STATS_COLUMN: ((7,), np.dtype(np.float32))}


@pytest.mark.parametrize("refractory", [0, 20], ids=["plain", "refractory"])
def test_kernel_matches_reference_on_random_interleaved_streams(refractory: int) -> None:
    rng = np.random.default_rng(0)
    params = ScoringParams(
        short_window=5, long_window=50, warmup_events=10, tail_floor=1e-100, refractory_events=refractory
    )
    fast, slow = _columns(params, 7), _columns(params, 7)
    for _ in range(20):
        B = 64
        rows = rng.integers(0, 7, B)
        nll = rng.normal(1.0, 1.0, B).astype(np.float32)
        nll[rng.random(B) < 0.05] = np.nan
        nll[rng.random(B) < 0.05] = 80.0  # above max_surprise: clipped
        status = (rng.random(B) < 0.1).astype(np.int8)
        a = _run(calibrate, params, fast, rows, nll, status)
        b = _run(calibrate_reference, params, slow, rows, nll, status)
        np.testing.assert_allclose(a, b, atol=2e-5)
        np.testing.assert_allclose(fast[STATS_COLUMN], slow[STATS_COLUMN], rtol=1e-5, atol=1e-5)


def test_batch_equals_one_event_at_a_time() -> None:
    rng = np.random.default_rng(1)
    params = ScoringParams(warmup_events=3, long_window=40)
    rows = rng.integers(0, 3, 300)
    nll = rng.normal(0.0, 1.0, 300).astype(np.float32)
    batched = _columns(params, 3)
    together = _run(calibrate, params, batched, rows, nll)
    single = _columns(params, 3)
    apart = np.concatenate([_run(calibrate, params, single, rows[i : i + 1], nll[i : i + 1]) for i in range(300)])
    np.testing.assert_array_equal(together, apart)
    np.testing.assert_array_equal(batched[STATS_COLUMN], single[STATS_COLUMN])


def test_scores_in_unit_interval_and_warmup_suppressed() -> None:
    rng = np.random.default_rng(2)
    params = ScoringParams(warmup_events=50, long_window=200)
    columns = _columns(params, 1)
    nll = np.concatenate([rng.normal(0, 1, 300), [40.0] * 5]).astype(np.float32)
    scores = _run(calibrate, params, columns, np.zeros(nll.size), nll)
    assert np.all((scores >= 0) & (scores <= 1))
    assert np.all(scores[:50] == 0)
    assert scores[300:].min() > 0.9  # a sustained surprise is flagged
    assert np.median(scores[60:300]) < 0.3  # ordinary noise is not


def test_skipped_events_leave_row_untouched_and_score_zero() -> None:
    params = ScoringParams(warmup_events=0)
    columns = _columns(params, 2)
    columns[STATS_COLUMN][1] = [5, 1.0, 1.0, 0.5, 1.0, 0.2, 0.0]
    before = columns[STATS_COLUMN].copy()
    scores = _run(calibrate, params, columns, [1, 1, 0], [np.nan, 3.0, 2.0], [0, 1, 0])
    assert scores[0] == 0 and scores[1] == 0
    np.testing.assert_array_equal(columns[STATS_COLUMN][1], before[1])
    assert columns[STATS_COLUMN][0, 0] == 1  # the accepted event advanced its own row


def test_calibration_is_per_stream() -> None:
    """A noisy stream's usual surprise must not look anomalous, and a quiet stream's spike must."""
    rng = np.random.default_rng(3)
    params = ScoringParams(warmup_events=20, short_window=1)
    columns = _columns(params, 2)
    quiet = rng.normal(0.0, 0.1, 500)
    noisy = rng.normal(5.0, 3.0, 500)
    rows = np.tile([0, 1], 500)
    nll = np.column_stack([quiet, noisy]).ravel().astype(np.float32)
    scores = _run(calibrate, params, columns, rows, nll)
    assert np.mean(scores[1::2][100:] > 0.5) < 0.05
    spike = _run(calibrate, params, columns, [0], [3.0])
    assert spike[0] > 0.9


def test_refractory_reports_onset_of_a_long_anomaly_once() -> None:
    rng = np.random.default_rng(4)
    nll = np.concatenate([rng.normal(0, 1, 300), [30.0] * 20, rng.normal(0, 1, 2000), [30.0] * 5]).astype(np.float32)
    plain = ScoringParams(warmup_events=50)
    damped = ScoringParams(warmup_events=50, refractory_events=200)
    flat = _run(calibrate, plain, _columns(plain, 1), np.zeros(nll.size), nll)
    once = _run(calibrate, damped, _columns(damped, 1), np.zeros(nll.size), nll)
    assert (flat[300:320] > 0.9).sum() >= 10
    assert once[300] > 0.9 and (once[301:320] > 0.5).sum() <= 1  # onset reported, the train suppressed
    assert once[2320] > 0.9  # after the running max has decayed, a new anomaly is reported again


def test_count_saturates_at_long_window() -> None:
    params = ScoringParams(short_window=2, long_window=10, warmup_events=0)
    columns = _columns(params, 1)
    _run(calibrate, params, columns, np.zeros(50), np.ones(50))
    assert columns[STATS_COLUMN][0, 0] == 10


@pytest.mark.parametrize(
    "kwargs",
    [
        {"short_window": 0},
        {"long_window": 5, "short_window": 10},
        {"warmup_events": -1},
        {"warmup_events": 3000, "long_window": 2000},
        {"min_var": 0.0},
        {"tail_floor": 0.0},
        {"refractory_events": -1},
    ],
    ids=["short0", "long<short", "warmup<0", "warmup>long", "min_var0", "floor0", "refractory<0"],
)
def test_bad_params_raise(kwargs: dict[str, float]) -> None:
    with pytest.raises(ScoringError):
        ScoringParams(**kwargs)  # type: ignore[arg-type]


def test_bad_arrays_raise() -> None:
    params = ScoringParams()
    with pytest.raises(ScoringError, match="score_stats"):
        _run(calibrate, params, {}, [0], [1.0])
    with pytest.raises(ScoringError, match="rows"):
        _run(calibrate, params, _columns(params, 2), [5], [1.0])
    with pytest.raises(ScoringError, match="nll"):
        calibrate(
            params,
            _columns(params, 2),
            np.zeros(2, np.int64),
            np.zeros(2),
            np.zeros(2, np.int8),
            np.zeros(2, np.float32),
        )


def test_log_upper_tail_is_the_log_of_the_normal_tail_and_stays_finite() -> None:
    import math

    from rnncore.calibration import log_upper_tail

    for z in (-3.0, 0.0, 2.0, 12.0, 29.9, 30.1, 35.0):
        assert log_upper_tail(z) == pytest.approx(math.log(0.5 * math.erfc(z / math.sqrt(2.0))), rel=1e-6)
    far = [log_upper_tail(z) for z in (40.0, 100.0, 1000.0)]  # erfc is 0 there; the log tail keeps falling
    assert all(math.isfinite(v) for v in far) and far[0] > far[1] > far[2]
    assert far[1] == pytest.approx(-0.5 * 100.0**2 - math.log(100.0 * math.sqrt(2.0 * math.pi)), rel=1e-6)


def test_rarity_is_minus_log10_of_one_minus_the_score_and_orders_saturated_scores() -> None:
    rng = np.random.default_rng(3)
    params = ScoringParams(warmup_events=20, long_window=200)
    columns = _columns(params, 1)
    nll = np.concatenate([rng.normal(0.0, 0.3, 300), [2.0, 5.0, 20.0, 40.0, 50.0]]).astype(np.float32)
    rows, status = np.zeros(nll.size, np.int64), np.zeros(nll.size, np.int8)
    scores, rarity = np.zeros(nll.size, np.float32), np.zeros(nll.size)
    calibrate(params, columns, rows, nll, status, scores, rarity)
    assert (rarity[:20] == 0).all() and (scores[:20] == 0).all()  # warm-up: both 0
    unsaturated = scores < 0.999
    expected = -np.log10(1.0 - scores[unsaturated].astype(np.float64))
    np.testing.assert_allclose(rarity[unsaturated], expected, atol=2e-3)
    np.testing.assert_array_equal(scores >= 0.99, rarity >= 2.0)
    tail = rarity[-4:]  # 5, 20, 40, 50 sigma-ish surprises: the float32 scores tie at 1, the rarity does not
    assert (scores[-3:] == 1.0).all() and (np.diff(tail) > 0).all()
    with pytest.raises(ScoringError, match="out_rarity"):
        calibrate(params, columns, rows, nll, status, scores, np.zeros(nll.size, np.float32))
