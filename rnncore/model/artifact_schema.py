"""The schema of ``model.json``: every field's type and range, and the checksum that covers the whole artifact.

A ``model.json`` that parses is not yet a model: ``"norm_eps": null`` turned every forecast into NaN (and the
NaN state was checkpointed), ``"dt_scale": {}`` raised a TypeError deep in the kernels. ``check_document``
refuses any such file before a single weight is used, with an ``ArtifactError`` naming the field.

Format 2 adds ``artifact_sha256``: the sha256 of the canonical JSON of every other field. That document holds
``weights_sha256`` and ``envelope_sha256`` (checked against the weights and envelope files), so this one
checksum covers weights, metadata and envelope together; an edited ``model.json`` is refused as corrupt. Format 1
(no ``artifact_sha256``) is still read, with the schema check, so artifacts written before format 2 keep loading;
so is a format 2 artifact written before ``envelope_sha256`` existed (its envelope is not checked). The optional
``calibration_prior`` (:mod:`rnncore.calibration_prior`) is checked part by part: finite moments in range,
non-negative variances, counts, rates in [0, 1].
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from rnncore.calibration_prior import PRIOR_FIELD, check_prior
from rnncore.errors import ArtifactError
from rnncore.model.config import CELL_TYPES, DIRECTIONS, MAX_ATTENTION_WINDOW, ModelConfig

FORMAT_VERSION = 2  # what save_artifact writes
READABLE_FORMATS = (1, 2)
ARTIFACT_CHECKSUM = "artifact_sha256"
_HEX64 = re.compile(r"[0-9a-f]{64}")
MAX_TEXT = 256  # version strings and the like


Check = Callable[[Any], str | None]  # None when the value is acceptable, else what is wrong with it


def _integer(low: int, high: int) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an integer in {low}..{high}, got {value!r}"
        return None if low <= value <= high else f"must be in {low}..{high}, got {value}"

    return check


def _positive(high: float) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a number in (0, {high:g}], got {value!r}"
        if not math.isfinite(value) or not 0 < value <= high:
            return f"must be a finite number in (0, {high:g}], got {value!r}"
        return None

    return check


def _choice(options: tuple[str, ...]) -> Check:
    return lambda value: (
        None if isinstance(value, str) and value in options else f"must be one of {options}, got {value!r}"
    )


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, got {value!r}"


def _text(value: Any) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= MAX_TEXT:
        return None
    return f"must be a non-empty string of at most {MAX_TEXT} characters, got {str(value)[:40]!r}"


def _sha256(value: Any) -> str | None:
    return None if isinstance(value, str) and _HEX64.fullmatch(value) else "must be 64 lower-case hex digits"


def _timestamp(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"must be an ISO 8601 time string, got {value!r}"
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return f"must be an ISO 8601 time string, got {value[:40]!r}"
    return None


def _shapes(value: Any) -> str | None:
    if not isinstance(value, dict) or not value:
        return "must be an object of parameter name -> shape"
    for name, shape in value.items():
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            return f"shape of {name!r} must be a list of non-negative integers, got {shape!r}"
    return None


# Every field of ModelConfig, with the range rnncore can run (ModelConfig's own limits, plus finite, positive
# floats: a zero or NaN norm_eps, min_scale, dt_scale or input_clip makes every forecast NaN or infinite).
ARCHITECTURE: dict[str, Check] = {
    "cell": _choice(CELL_TYPES),
    "n_features": _integer(1, 64),
    "hidden_size": _integer(1, 1024),
    "num_layers": _integer(1, 4),
    "time_delta_feature": _boolean,
    "dt_scale": _positive(1e12),
    "min_scale": _positive(1e3),
    "norm_window": _integer(1, 10**9),
    "norm_eps": _positive(1.0),
    "input_clip": _positive(1e6),
    "direction": _choice(DIRECTIONS),
    "attention_window": _integer(0, MAX_ATTENTION_WINDOW),
}
_OPTIONAL_ARCHITECTURE = ("direction", "attention_window")  # omitted at their defaults (ModelConfig.to_dict)

# Top-level fields the artifact itself writes; anything else is the trainer's provenance (any finite JSON).
DOCUMENT: dict[str, Check] = {
    "format_version": lambda v: None if type(v) is int and v in READABLE_FORMATS else f"must be in {READABLE_FORMATS}",
    "weights_sha256": _sha256,
    "parameters": _shapes,
    "version": _text,
    "rnnwatch_version": _text,
    "created_at": _timestamp,
    "envelope_sha256": lambda v: None if v is None else _sha256(v),  # null: the artifact has no envelope
    PRIOR_FIELD: check_prior,  # optional: absent in artifacts from before it (new streams then warm up as before)
    ARTIFACT_CHECKSUM: _sha256,
}
_REQUIRED = ("format_version", "architecture", "weights_sha256")
_REQUIRED_V2 = ("parameters", "version", "rnnwatch_version", "created_at", ARTIFACT_CHECKSUM)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a finite JSON number")


def parse_document(text: str, where: str) -> dict[str, Any]:
    """Parse ``model.json`` text, refusing NaN and Infinity anywhere (Python's json accepts them by default)."""
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise ArtifactError(f"{where} is not valid JSON ({exc}); the artifact is corrupt") from exc
    if not isinstance(document, dict):
        raise ArtifactError(f"{where} must hold a JSON object")
    return document


def canonical_checksum(document: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of every field but ``artifact_sha256`` (which covers ``weights_sha256``)."""
    body = {key: value for key, value in document.items() if key != ARTIFACT_CHECKSUM}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def check_document(document: Mapping[str, Any], where: str) -> None:
    """Refuse a ``model.json`` with a missing, mistyped or out-of-range field, or (format 2) a wrong checksum."""
    version = document.get("format_version")
    if version not in READABLE_FORMATS or type(version) is not int:
        raise ArtifactError(f"{where} has format_version {version!r}; this rnnwatch reads {READABLE_FORMATS}")
    required = _REQUIRED + (_REQUIRED_V2 if version >= 2 else ())
    for key in required:
        if key not in document:
            raise ArtifactError(f"{where} lacks {key!r}; the artifact is incomplete")
    for key, check in DOCUMENT.items():
        if key in document and (problem := check(document[key])) is not None:
            raise ArtifactError(f"{where}: field {key!r} {problem}")
    architecture = document["architecture"]
    if not isinstance(architecture, dict):
        raise ArtifactError(f"{where}: field 'architecture' must be an object, got {architecture!r}")
    unknown = sorted(set(architecture) - {f.name for f in dataclasses.fields(ModelConfig)})
    if unknown:
        raise ArtifactError(f"{where}: unknown architecture fields {unknown}")
    for key, check in ARCHITECTURE.items():
        if key not in architecture:
            if key in _OPTIONAL_ARCHITECTURE:
                continue
            raise ArtifactError(f"{where}: architecture lacks {key!r}; the artifact is incomplete")
        if (problem := check(architecture[key])) is not None:
            raise ArtifactError(f"{where}: architecture field {key!r} {problem}")
    if version >= 2:
        expected, actual = document[ARTIFACT_CHECKSUM], canonical_checksum(document)
        if actual != expected:
            raise ArtifactError(
                f"{where} is corrupt or was edited: its content has sha256 {actual[:12]}..., the recorded "
                f"{ARTIFACT_CHECKSUM} is {str(expected)[:12]}...; re-export the model"
            )
