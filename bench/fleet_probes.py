"""Issue 16 item 3: probes of candidate "notions of normal a fault cannot absorb" on fleet seeds.

For each seed, `rnnwatch train` fits the model on the clean rows (the product path,
``stream.evaluation.fleet.product``); then the trained model's own Detector is run over each unit's train rows
followed by its test rows (one event per unit per batch), once as shipped (running normalisation) and once
with the normalisation frozen per stream at the end of the training rows. From those passes every candidate
is a distance from a reference fitted on the first FIT_END training rows and never updated:

* ``raw_t2``: Hotelling T² of the raw values;
* ``hidden_t2`` / ``hidden_t2_frozen``: T² of the top-layer GRU hidden state (running / frozen norm);
* ``resid_t2`` / ``resid_t2_frozen``: T² of the standardised one-step forecast residual vector;
* ``window_resid_frozen``: T² of [window mean, log window mean square] of the residuals over WINDOW events;
* ``window_raw``: T² of [window mean, log window variance] of the raw values;
* ``product``: `rnnwatch score` as shipped (adaptive calibration; its own 0.99 threshold);
* ``combo_*``: the max of candidates, each scaled by its own cut.

Every candidate's default cut is the (1 - FALSE_ALARM_TARGET) quantile of its scores on the held-out normal
rows FIT_END..n_train (labels never used); 'best' is the label-chosen cut (an upper bound).

    flock /tmp/rnnwatch-bench.lock .venv/bin/python bench/fleet_probes.py --split tune --seeds 8

``--new-streams`` (issue 16: a notion of normal for every stream): the realistic case of a new sensor joining the
fleet. After `rnnwatch train`, every unit is replayed under a renamed key, so no stream has a training reference:
its last ``--history`` clean training rows (its own early history, never scored; a list: one replay each after
the same training) and then its test rows. Three kinds of scorer see the same events: ``detector_alone`` (the
bare Detector), one per ``--fit`` candidate (the envelope fitted online from the stream's own history,
``rnncore.stages.selffit``: ``self_fit_<fit>_<held>`` one stage, ``two_stage_skip<ratio>`` the provisional
200:100 reference replaced by a 900:400 one; ``--fit default`` is what ``build_scorer`` runs for such a stream)
and ``training_envelope`` (the same replay under the unit's own key, so it uses its reference from
``envelope.npz``: the upper line). All at the default threshold.
Each scorer is run again, with fresh state, on the same rows without their faults (``FleetUnit.clean_test``): the
real false-alarm rate on normal data that the stated 0.5 % held-out rate stands for.

    flock /tmp/rnnwatch-bench.lock .venv/bin/python bench/fleet_probes.py --new-streams --split tune --seeds 4
    nice -n 10 .venv/bin/python bench/fleet_probes.py --new-streams --split tune --history 1500,700 \
        --fit 200:100,900:400,200:100+900:400@4,200:100+900:400@inf
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from detector_probes import boxcar  # bench/, first on sys.path

from rnncore.detector import Detector
from rnncore.kernels import layout
from rnncore.model.artifact import load_artifact
from rnncore.model.envelope_file import load_envelope
from rnncore.model.weights import ModelWeights
from rnncore.stages.envelope import Envelope
from rnncore.stages.enveloped import EnvelopedDetector
from rnncore.stages.selffit import SelfFitParams
from stream.evaluation.fleet.generator import FleetUnit, make_fleet
from stream.evaluation.fleet.product import train_and_score
from stream.evaluation.fleet.report import COLUMNS, Pooled, format_table
from stream.evaluation.fleet.runner import add_fleet_arguments, split_seeds

WARMUP = 200  # first training rows left out of every reference (state and normalisation settling)
FIT_FRACTION = 0.7  # of the training rows: reference fit; the rest is held-out normal for the cut
WINDOW = 32
FALSE_ALARM_TARGET = 0.005
COMBOS = {
    "combo_hidden_window": ("hidden_t2_frozen", "window_resid_frozen", "window_raw"),
    "combo_all_frozen": ("hidden_t2_frozen", "resid_t2_frozen", "window_resid_frozen", "window_raw", "raw_t2"),
    "combo_raw_window": ("raw_t2", "window_raw"),
}


def _t2(fit: np.ndarray, x: np.ndarray) -> np.ndarray:
    """T² of rows of ``x`` against mean/covariance of ``fit`` (ridge 1e-3 of the mean variance)."""
    mu = fit.mean(axis=0)
    cov = np.atleast_2d(np.cov(fit, rowvar=False))
    cov += np.eye(cov.shape[0]) * (1e-3 * np.trace(cov) / cov.shape[0] + 1e-9)
    d = x - mu
    return np.asarray(np.einsum("ij,jk,ik->i", d, np.linalg.inv(cov), d))


def _passes(weights: object, units: Sequence[FleetUnit], frozen: bool) -> tuple[np.ndarray, np.ndarray]:
    """(top-layer hidden states [U, T, H], standardised residuals [U, T, F]) over train then test rows."""
    detector = Detector(weights, max_streams=len(units))  # type: ignore[arg-type]
    keys = [u.name for u in units]
    values = np.stack([np.concatenate([u.train, u.test]) for u in units])  # [U, T, F]
    times = np.stack([np.concatenate([u.train_times, u.test_times]) for u in units])
    U, T, F = values.shape
    n_train = units[0].train.shape[0]
    columns = detector.table.columns
    rows, _ = detector.table.rows_for(keys)
    hidden = np.zeros((U, T, detector.weights.config.hidden_size), dtype=np.float32)
    resid = np.zeros((U, T, F), dtype=np.float64)
    mean, scale = np.zeros((U, F)), np.ones((U, F))
    saved = None
    for t in range(T):
        if frozen and t == n_train:
            saved = columns[layout.NORM][rows].copy()
        if saved is not None:
            columns[layout.NORM][rows] = saved
        out = detector.step(keys, times[:, t], values[:, t])
        resid[:, t] = (values[:, t] - mean) / scale
        mean, scale = out.mean.reshape(U, F), np.maximum(out.scale.reshape(U, F), 1e-6)
        hidden[:, t] = columns[layout.RECURRENT][rows, -1, 0]
    resid[:, 0] = 0.0
    return hidden, resid


def candidates(unit: FleetUnit, hidden: dict[str, np.ndarray], resid: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every candidate's score over the unit's train+test rows (references fitted on the fit rows only)."""
    n = unit.train.shape[0]
    fit = slice(WARMUP, int(n * FIT_FRACTION))
    raw = np.concatenate([unit.train, unit.test])
    out = {"raw_t2": _t2(raw[fit], raw)}
    for tag, key in (("", "running"), ("_frozen", "frozen")):
        out["hidden_t2" + tag] = _t2(hidden[key][fit].astype(np.float64), hidden[key].astype(np.float64))
        out["resid_t2" + tag] = _t2(resid[key][fit], resid[key])
    wr = boxcar(resid["frozen"], WINDOW, log_of_square=True)
    out["window_resid_frozen"] = _t2(wr[fit], wr)
    wx = boxcar(raw, WINDOW)
    out["window_raw"] = _t2(wx[fit], wx)
    return out


def _cut(score: np.ndarray, n_train: int) -> float:
    held = score[int(n_train * FIT_FRACTION) : n_train]
    return float(np.quantile(held, 1 - FALSE_ALARM_TARGET)) + 1e-12


def probe_seed(seed: int, args: argparse.Namespace, workdir: Path, pooled: dict[str, Pooled]) -> None:
    """Train (product path) and add every candidate's test scores of every unit of this seed to the pools."""
    units = make_fleet(seed, args.streams, args.machines, args.n_train, args.n_test)
    for width in sorted({u.test.shape[1] for u in units}):
        group = [u for u in units if u.test.shape[1] == width]
        run = train_and_score(group, workdir / f"s{seed}f{width}", args.train_seconds)
        weights = load_artifact(run.artifact)
        passes = {key: _passes(weights, group, key == "frozen") for key in ("running", "frozen")}
        for i, u in enumerate(group):
            n = u.train.shape[0]
            scores = candidates(u, {k: p[0][i] for k, p in passes.items()}, {k: p[1][i] for k, p in passes.items()})
            scaled = {name: s / _cut(s, n) for name, s in scores.items()}
            for name, parts in COMBOS.items():
                combo = np.max(np.stack([scaled[p] for p in parts]), axis=0)
                scaled[name] = combo / _cut(combo, n)
            scaled["product"] = np.concatenate([np.zeros(n), run.scores[u.name] / run.threshold])
            for name, s in scaled.items():
                pooled.setdefault(name, Pooled(name)).add(u, s[n:], 1.0)


def _replay(
    scorer: Detector, keys: list[str], units: Sequence[FleetUnit], history: int, clean: bool = False
) -> np.ndarray:
    """Scores [U, history + T_test]: each unit's last ``history`` training rows then its test rows (``clean``: as
    they were before the faults), one event per unit per batch, under ``keys``."""
    values = np.stack(
        [np.concatenate([u.train[u.train.shape[0] - history :], u.clean_test if clean else u.test]) for u in units]
    )
    times = np.stack([np.concatenate([u.train_times[u.train.shape[0] - history :], u.test_times]) for u in units])
    return np.stack([scorer.step(keys, times[:, t], values[:, t]).scores for t in range(values.shape[1])], axis=1)


def _fit_candidate(text: str) -> SelfFitParams:
    """One ``--fit`` candidate: ``200:100`` (one stage), ``200:100+900:400`` (a second stage, default skip ratio),
    ``200:100+900:400@4`` (its ``final_skip_ratio``; ``@inf``: only the Detector's flags), ``default``."""
    if text == "default":
        return SelfFitParams()
    stages, _, skip = text.partition("@")
    first, _, second = stages.partition("+")
    fit, held = (int(v) for v in first.split(":"))
    final_fit, final_held = (int(v) for v in second.split(":")) if second else (0, 1)
    extra = {"final_skip_ratio": float(skip)} if skip else {}
    return SelfFitParams(fit_events=fit, held_events=held, final_fit_events=final_fit, final_held_events=final_held,
                         **extra)  # fmt: skip


def _fit_candidates(text: str) -> list[SelfFitParams]:
    """``--fit 200:100,200:100+900:400@4,...``: the online fits to compare (:func:`_fit_candidate`)."""
    return [_fit_candidate(part) for part in text.split(",") if part]


def fit_name(fit: SelfFitParams) -> str:
    """The scorer's name in the table (21 characters at most): ``self_fit_200_100`` (one stage), ``two_stage_skip4``
    (the default stage lengths) or ``two_stage_300_100_900_400_skip4``."""
    if not fit.two_stage:
        return f"self_fit_{fit.fit_events}_{fit.held_events}"
    lengths = (fit.fit_events, fit.held_events, fit.final_fit_events, fit.final_held_events)
    defaults = SelfFitParams()
    if lengths != (defaults.fit_events, defaults.held_events, defaults.final_fit_events, defaults.final_held_events):
        return "two_stage_" + "_".join(str(v) for v in lengths) + f"_skip{fit.final_skip_ratio:g}"
    return f"two_stage_skip{fit.final_skip_ratio:g}"


def _scorers(
    weights: ModelWeights, envelope: Envelope | None, own: list[str], renamed: list[str], fits: str
) -> dict[str, tuple[Detector, list[str]]]:
    """Fresh scorers for one group, each with the keys it is replayed under."""
    n = len(own)
    made: dict[str, tuple[Detector, list[str]]] = {
        "detector_alone": (Detector(weights, max_streams=n), renamed),
        "training_envelope": (EnvelopedDetector(weights, envelope, max_streams=n), own),
    }
    for fit in _fit_candidates(fits):
        made[fit_name(fit)] = (EnvelopedDetector(weights, envelope, self_fit=fit, max_streams=n), renamed)
    return made


def new_stream_seed(
    seed: int, args: argparse.Namespace, workdir: Path, pooled: dict[str, Pooled], clean: dict[str, list[float]]
) -> None:
    """Train (product path), then replay every unit as a new stream through each scorer after each ``--history``
    (one training for all); pool the test rows, and add the flag rate of each scorer on the same rows without
    their faults to ``clean``. With several histories each name ends in ``_h<history>``."""
    units = make_fleet(seed, args.streams, args.machines, args.n_train, args.n_test)
    histories = _histories(args.history)
    for width in sorted({u.test.shape[1] for u in units}):
        group = [u for u in units if u.test.shape[1] == width]
        run = train_and_score(group, workdir / f"s{seed}f{width}", args.train_seconds)
        weights = load_artifact(run.artifact)
        envelope = load_envelope(run.artifact)
        own, renamed = [u.name for u in group], [f"new-{u.name}" for u in group]
        for history in histories:
            tag = f"_h{history}" if len(histories) > 1 else ""
            for name, (scorer, keys) in _scorers(weights, envelope, own, renamed, args.fit).items():
                scores = _replay(scorer, keys, group, history)
                for i, u in enumerate(group):
                    pooled.setdefault(name + tag, Pooled(name + tag)).add(u, scores[i, history:], run.threshold)
            # fresh state: the same rows without their faults
            for name, (scorer, keys) in _scorers(weights, envelope, own, renamed, args.fit).items():
                flags = _replay(scorer, keys, group, history, clean=True)[:, history:] >= run.threshold
                clean.setdefault(name + tag, []).extend(flags.mean(axis=1).tolist())


def _histories(text: str) -> list[int]:
    """``--history 1500,700``: the clean rows before the test rows, one replay each."""
    return [int(part) for part in text.split(",") if part]


def main(argv: list[str] | None = None) -> int:
    """Run the probes on one split and print the table (default and best cut per candidate) and a RESULT line."""
    parser = argparse.ArgumentParser(description="issue 16 probes")
    add_fleet_arguments(parser)
    parser.add_argument("--train-seconds", type=float, default=None)
    parser.add_argument("--new-streams", action="store_true", help="replay every unit as a stream unseen in training")
    parser.add_argument(
        "--history", default="1500", help="--new-streams: clean rows before the test rows (a list: one replay each)"
    )
    parser.add_argument(
        "--fit",
        default="default",
        help="--new-streams: online fits to compare, e.g. 200:100,900:400,200:100+900:400@4 (default: the product's)",
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    pooled: dict[str, Pooled] = {}
    clean: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="rnnwatch-probe-") as tmp:
        for seed in split_seeds(args.split, args.seeds):
            if args.new_streams:
                new_stream_seed(seed, args, Path(tmp), pooled, clean)
            else:
                probe_seed(seed, args, Path(tmp), pooled)
    rows = [
        (name, which, p.measure(1.0 if which == "default" else None))
        for name, p in pooled.items()
        for which in ("default", "best")
    ]
    cut = (
        f"new streams ({args.history} clean rows of history, then the test rows); 'default' = score >= 0.99"
        if args.new_streams
        else f"cut = held-out normal {1 - FALSE_ALARM_TARGET:.3f} quantile ('default')"
    )
    seeds = list(split_seeds(args.split, args.seeds))
    print(f"probes: {args.split} seeds {seeds}; {cut} or label-chosen ('best'); columns {COLUMNS}")
    print(format_table(rows))
    for name, rates in clean.items():
        r = np.asarray(rates)
        print(
            f"false alarms on the test rows without their faults, {name}: {r.mean():.2%} of events "
            f"(per unit: median {np.median(r):.2%}, worst {r.max():.1%})"
        )
    best = max((r for r in rows if r[1] == "default"), key=lambda r: r[2]["event_f1"] + r[2]["f1"])
    print(
        f"RESULT split={args.split} leader={best[0]} event_f1={best[2]['event_f1']:.3f} "
        f"point_f1={best[2]['f1']:.3f} false_alarm={best[2]['false_alarm']:.4f} "
        f"seconds={time.perf_counter() - start:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
