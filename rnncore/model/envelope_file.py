"""The envelope's file in the model artifact (``envelope.npz`` beside the weights and ``model.json``): save and load.

Kept with the artifact's other file I/O (``rnncore.model.artifact``) so that the rest of rnncore opens no file.
``load_envelope`` checks the bytes it reads against the ``envelope_sha256`` that ``model.json`` records (when it
records one), so a file replaced after ``load_artifact`` verified the artifact is refused too.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from rnncore.errors import EnvelopeError
from rnncore.model.store import resolve_model_dir
from rnncore.stages.crossfit import CrossFit, CrossParams
from rnncore.stages.envelope import ENVELOPE_FILE, Envelope, EnvelopeParams

__all__ = ["ENVELOPE_FILE", "load_envelope", "save_envelope"]


def save_envelope(envelope: Envelope, directory: str | Path) -> Path:
    """Write ``envelope.npz`` into an artifact directory (a temporary name, then renamed: a service that
    reloads never reads half a file; `rnnwatch train` writes it before ``model.json``, which is renamed last)."""
    path = Path(directory) / ENVELOPE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = np.array(sorted(envelope.index, key=envelope.index.__getitem__), dtype=str)
    p = envelope.params
    tmp = path.with_name(path.name + ".tmp")
    cross: dict[str, Any] = {}  # Any: numpy's stub types savez's **kwds like its allow_pickle flag
    if envelope.cross is not None:
        c = envelope.cross
        cross = {"cross_dmu": c.dmu, "cross_dsd": c.dsd, "cross_beta": c.beta, "cross_rmu": c.rmu,
                 "cross_ricov": c.ricov, "cross_cut": c.cut,
                 "cross_params": np.array([c.params.lag_window, c.params.smooth_window, c.params.ridge])}  # fmt: skip
    with tmp.open("wb") as handle:
        np.savez(handle, keys=keys, mu=envelope.mu, icov=envelope.icov, wmu=envelope.wmu, wicov=envelope.wicov,
                 cuts=envelope.cuts, params=np.array([p.window, p.false_alarm, p.fit_fraction, p.warmup,
                                                     p.alarm_score]), **cross)  # fmt: skip
    os.replace(tmp, path)
    return path


def load_envelope(directory: str | Path) -> Envelope | None:
    """The artifact's envelope (a store's at its ``current`` version), or None when it has none (an artifact from
    before issue 16)."""
    artifact = resolve_model_dir(directory)  # one resolution: the envelope and the model.json that records it
    path = artifact / ENVELOPE_FILE
    if not path.is_file():
        return None
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise EnvelopeError(f"{path} cannot be read ({exc}); retrain with rnnwatch train") from exc
    recorded = _recorded_digest(artifact)
    if recorded is not None and hashlib.sha256(raw).hexdigest() != recorded:
        raise EnvelopeError(
            f"{path} is not the envelope model.json records (sha256 {recorded[:12]}...): corrupt, truncated or "
            "from another artifact; write the artifact again with rnnwatch train"
        )
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as data:
            window, false_alarm, fit_fraction, warmup, alarm_score = data["params"].tolist()
            params = EnvelopeParams(window=int(window), false_alarm=false_alarm, fit_fraction=fit_fraction,
                                    warmup=int(warmup), alarm_score=alarm_score)  # fmt: skip
            index = {str(k): i for i, k in enumerate(data["keys"].tolist())}
            cross = _load_cross(data) if "cross_cut" in data.files else None  # absent: written before them
            return Envelope(params, index, data["mu"], data["icov"], data["wmu"], data["wicov"], data["cuts"],
                            cross=cross)  # fmt: skip
    except (OSError, KeyError, ValueError, TypeError, OverflowError) as exc:  # int(inf) raises OverflowError
        raise EnvelopeError(f"{path} cannot be read as an envelope ({exc}); retrain with rnnwatch train") from exc


def _load_cross(data: np.lib.npyio.NpzFile) -> CrossFit:
    """The cross-sensor references of an envelope file (``CrossFit`` checks their shapes and values)."""
    lag, smooth, ridge = data["cross_params"].tolist()
    if lag != int(lag) or smooth != int(smooth):
        raise ValueError(f"cross-sensor windows must be whole numbers of events, got {lag}, {smooth}")
    params = CrossParams(lag_window=int(lag), smooth_window=int(smooth), ridge=float(ridge))
    names = ("dmu", "dsd", "beta", "rmu", "ricov", "cut")
    arrays = [np.asarray(data[f"cross_{name}"], dtype=np.float64) for name in names]
    return CrossFit(params, *arrays)


def _recorded_digest(directory: Path) -> str | None:
    """The ``envelope_sha256`` of the directory's ``model.json``, or None when it records none or cannot be read
    (``load_artifact`` refuses such an artifact with the reason)."""
    try:
        value = json.loads((directory / "model.json").read_text(encoding="utf-8")).get("envelope_sha256")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
