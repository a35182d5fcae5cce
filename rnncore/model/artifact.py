"""Model artifacts: ``model.safetensors`` (weights) plus ``model.json`` (architecture and provenance), no torch.

``model.json`` holds the format version, the ``ModelConfig`` (``architecture``), the weights file's sha256,
parameter shapes, the model ``version`` (given, or creation time + digest prefix), rnnwatch version, creation
time and whatever the trainer adds (features, normalisation, training data summary, validation loss),
``envelope_sha256`` (the sha256 of the ``envelope.npz`` beside them, or null when the artifact has none) and
``artifact_sha256`` over all of it (format 2, see ``rnncore.model.artifact_schema``): one checksum over weights,
metadata and envelope. ``load_artifact`` refuses a missing, corrupt, truncated, edited, mistyped or mismatched
artifact (a swapped or truncated envelope too) with ``ArtifactError`` naming the file, the field and the
problem, before any weight is used.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from rnncore.errors import ArtifactError, ConfigError, ModelError
from rnncore.model.artifact_schema import (
    ARTIFACT_CHECKSUM,
    FORMAT_VERSION,
    canonical_checksum,
    check_document,
    parse_document,
)
from rnncore.model.config import ModelConfig
from rnncore.model.store import resolve_model_dir
from rnncore.model.weights import ModelWeights
from rnncore.stages.envelope import ENVELOPE_FILE

WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "model.json"
ENVELOPE_DIGEST = "envelope_sha256"
__all__ = [
    "FORMAT_VERSION",
    "METADATA_FILE",
    "RESERVED_METADATA",
    "WEIGHTS_FILE",
    "load_artifact",
    "read_metadata",
    "save_artifact",
]
RESERVED_METADATA = (  # keys save_artifact writes itself; a caller's metadata may not set them
    "format_version",
    "architecture",
    "weights_sha256",
    "parameters",
    "rnnwatch_version",
    "created_at",
    ENVELOPE_DIGEST,
    ARTIFACT_CHECKSUM,
)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _package_version() -> str:
    try:
        return importlib_metadata.version("rnnwatch")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def _write_atomically(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_artifact(directory: str | Path, weights: ModelWeights, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write weights and metadata into ``directory`` (created if needed); returns the ``model.json`` path.

    Each file is written to a temporary name and renamed, weights first, so a reader never pairs new
    metadata with old weights. An ``envelope.npz`` in ``directory`` now is part of the artifact (its sha256 is
    recorded): write it before, as `rnnwatch train` does (which also removes a stale one).
    """
    extra = dict(metadata or {})
    clash = sorted(set(extra) & set(RESERVED_METADATA))
    if clash:
        raise ArtifactError(f"metadata keys {clash} are reserved for the artifact itself")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights_path = directory / WEIGHTS_FILE
    params = {name: np.ascontiguousarray(array) for name, array in weights.params.items()}
    _write_atomically(weights_path, lambda p: save_file(params, str(p), metadata={"format": "pt"}))
    created, digest = datetime.now(UTC), _sha256(weights_path)
    envelope_path = directory / ENVELOPE_FILE
    document = {
        "format_version": FORMAT_VERSION,
        "architecture": weights.config.to_dict(),
        "parameters": {name: list(array.shape) for name, array in params.items()},
        "weights_sha256": digest,
        "rnnwatch_version": _package_version(),
        "created_at": created.isoformat(),
        ENVELOPE_DIGEST: _sha256(envelope_path) if envelope_path.is_file() else None,
        # The model's own version (what the service reports): the caller's, or creation time + weights digest.
        "version": str(extra.pop("version", f"{created:%Y%m%dT%H%M%SZ}-{digest[:12]}")),
        **extra,
    }
    try:
        document = json.loads(json.dumps(document, allow_nan=False))  # as a reader will see it (tuples -> lists)
        document[ARTIFACT_CHECKSUM] = canonical_checksum(document)
        text = json.dumps(document, indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"metadata is not plain JSON (no NaN, no objects): {exc}") from exc
    check_document(document, f"{directory / METADATA_FILE} (being written)")
    metadata_path = directory / METADATA_FILE
    _write_atomically(metadata_path, lambda p: p.write_text(text + "\n", encoding="utf-8"))
    return metadata_path


def read_metadata(directory: str | Path) -> dict[str, Any]:
    """Parse ``model.json`` and check every field against the schema (and its checksum); no weights are read.
    A versioned store (``rnncore.model.store``) is read at its ``current`` version."""
    path = resolve_model_dir(directory) / METADATA_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing: not a model artifact directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path} cannot be read ({exc}); the artifact is corrupt") from exc
    document = parse_document(text, str(path))
    check_document(document, str(path))
    return document


def check_envelope(directory: str | Path, document: Mapping[str, Any]) -> None:
    """Refuse an ``envelope.npz`` that is not the one ``model.json`` records (swapped, truncated, missing, or present
    beside an artifact written without one). An artifact written before the envelope was checksummed (no
    ``envelope_sha256``) is not checked: write it again with `rnnwatch train` to have it checked."""
    path = Path(directory) / ENVELOPE_FILE
    if ENVELOPE_DIGEST not in document:
        return
    recorded = document[ENVELOPE_DIGEST]
    if recorded is None:
        if path.is_file():
            raise ArtifactError(
                f"{path} is not part of this artifact ({METADATA_FILE} records no envelope): remove it, or write "
                "the artifact again with rnnwatch train"
            )
        return
    if not path.is_file():
        raise ArtifactError(f"{path} is missing, but {METADATA_FILE} records one; copy the whole artifact directory")
    actual = _sha256(path)
    if actual != recorded:
        raise ArtifactError(
            f"{path} is corrupt, truncated or from another artifact: sha256 {actual[:12]}... does not match the "
            f"recorded {str(recorded)[:12]}...; write the artifact again with rnnwatch train"
        )


def load_artifact(directory: str | Path, expected: ModelConfig | None = None) -> ModelWeights:
    """Load and verify an artifact (checksum, envelope, names, shapes, dtype, finiteness); metadata rides along.

    With ``expected``, also refuse an artifact whose architecture differs from it. A versioned store
    (``rnncore.model.store``) is read at its ``current`` version.
    """
    directory = resolve_model_dir(directory)
    document = read_metadata(directory)
    try:
        config = ModelConfig.from_dict(document["architecture"])
    except (ConfigError, TypeError) as exc:
        raise ArtifactError(f"{directory / METADATA_FILE}: bad architecture: {exc}") from exc
    recorded = document.get("parameters")
    if recorded is not None and recorded != {name: list(shape) for name, shape in config.param_shapes().items()}:
        raise ArtifactError(f"{directory / METADATA_FILE}: 'parameters' does not list the shapes its architecture has")
    if expected is not None and config != expected:
        raise ArtifactError(f"artifact {directory} has architecture {config}, but {expected} is required")
    weights_path = directory / WEIGHTS_FILE
    if not weights_path.is_file():
        raise ArtifactError(f"{weights_path} is missing")
    actual = _sha256(weights_path)
    if actual != document["weights_sha256"]:
        raise ArtifactError(
            f"{weights_path} is corrupt or truncated: sha256 {actual[:12]}... does not match the recorded "
            f"{str(document['weights_sha256'])[:12]}...; re-export the model"
        )
    check_envelope(directory, document)
    try:
        params = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(f"{weights_path} cannot be read as safetensors: {exc}") from exc
    wrong_dtype = sorted(name for name, array in params.items() if array.dtype != np.float32)
    if wrong_dtype:
        raise ArtifactError(f"{weights_path}: parameters {wrong_dtype} are not float32")
    try:
        return ModelWeights(config=config, params=params, metadata=document)
    except ModelError as exc:
        raise ArtifactError(f"{weights_path} does not match its architecture: {exc}") from exc
