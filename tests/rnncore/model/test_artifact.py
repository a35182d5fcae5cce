"""Artifacts round-trip exactly and refuse corrupt, truncated, mismatched or incomplete files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from rnncore.errors import ArtifactError
from rnncore.model.artifact import METADATA_FILE, WEIGHTS_FILE, load_artifact, read_metadata, save_artifact
from rnncore.model.artifact_schema import ARTIFACT_CHECKSUM, canonical_checksum
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights

CONFIG = ModelConfig(cell="lstm", hidden_size=8, num_layers=2, n_features=2)


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, ModelWeights]:
    weights = ModelWeights.random(CONFIG, seed=3)
    save_artifact(tmp_path, weights, {"validation_loss": 0.5, "features": {"names": ["a", "b"]}})
    return tmp_path, weights


def test_round_trip_keeps_weights_config_and_metadata(saved: tuple[Path, ModelWeights]) -> None:
    directory, weights = saved
    loaded = load_artifact(directory, expected=CONFIG)
    assert loaded.config == CONFIG
    for name, array in weights.params.items():
        np.testing.assert_array_equal(loaded.params[name], array)
    assert loaded.metadata["validation_loss"] == 0.5
    assert loaded.metadata["features"] == {"names": ["a", "b"]}
    for key in ("weights_sha256", "created_at", "rnnwatch_version", "architecture", "parameters"):
        assert key in loaded.metadata
    assert loaded.metadata["version"].endswith("-" + loaded.metadata["weights_sha256"][:12])
    assert sorted(p.name for p in directory.iterdir()) == [METADATA_FILE, WEIGHTS_FILE]


def _flip_a_byte(data: bytes) -> bytes:
    return data[:-5] + bytes([data[-5] ^ 0xFF]) + data[-4:]


@pytest.mark.parametrize("damage", [_flip_a_byte, lambda data: data[:-100]], ids=["corrupt", "truncated"])
def test_refuses_a_damaged_weights_file(saved: tuple[Path, ModelWeights], damage: Callable[[bytes], bytes]) -> None:
    directory, _ = saved
    path = directory / WEIGHTS_FILE
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ArtifactError, match="corrupt or truncated"):
        load_artifact(directory)


def test_refuses_truncated_safetensors_even_when_the_checksum_was_updated(saved: tuple[Path, ModelWeights]) -> None:
    directory, _ = saved
    path = directory / WEIGHTS_FILE
    path.write_bytes(path.read_bytes()[:-100])
    _rewrite_checksum(directory)
    with pytest.raises(ArtifactError, match="safetensors"):
        load_artifact(directory)


def _rewrite_checksum(directory: Path) -> None:
    import hashlib

    document = json.loads((directory / METADATA_FILE).read_text())
    document["weights_sha256"] = hashlib.sha256((directory / WEIGHTS_FILE).read_bytes()).hexdigest()
    _write_resealed(directory, document)


def _write_resealed(directory: Path, document: dict) -> None:
    """Write ``model.json`` with its whole-artifact checksum recomputed (as a tool that edits it on purpose would)."""
    document[ARTIFACT_CHECKSUM] = canonical_checksum(document)
    (directory / METADATA_FILE).write_text(json.dumps(document))


def test_refuses_an_architecture_mismatch(saved: tuple[Path, ModelWeights]) -> None:
    directory, _ = saved
    with pytest.raises(ArtifactError, match="required"):
        load_artifact(directory, expected=ModelConfig(cell="gru", hidden_size=8, num_layers=2, n_features=2))
    document = json.loads((directory / METADATA_FILE).read_text())
    document["architecture"]["hidden_size"] = 16  # metadata now disagrees with the stored shapes
    _write_resealed(directory, document)
    with pytest.raises(ArtifactError, match="'parameters' does not list the shapes"):
        load_artifact(directory)
    wider = ModelConfig.from_dict(document["architecture"])
    document["parameters"] = {name: list(shape) for name, shape in wider.param_shapes().items()}
    _write_resealed(directory, document)
    with pytest.raises(ArtifactError, match="does not match its architecture"):
        load_artifact(directory)


def test_refuses_wrong_dtype(saved: tuple[Path, ModelWeights]) -> None:
    directory, weights = saved
    save_file({k: v.astype(np.float64) for k, v in weights.params.items()}, str(directory / WEIGHTS_FILE))
    _rewrite_checksum(directory)
    with pytest.raises(ArtifactError, match="float32"):
        load_artifact(directory)


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda d: (d / METADATA_FILE).unlink(), "missing"),
        (lambda d: (d / WEIGHTS_FILE).unlink(), "missing"),
        (lambda d: (d / METADATA_FILE).write_text("{not json"), "not valid JSON"),
        (lambda d: (d / METADATA_FILE).write_text('{"format_version": 99}'), "format_version"),
        (lambda d: (d / METADATA_FILE).write_text('{"format_version": 1}'), "lacks"),
    ],
    ids=["no-json", "no-weights", "bad-json", "future-version", "incomplete"],
)
def test_refuses_incomplete_artifacts(saved: tuple[Path, ModelWeights], damage, message: str) -> None:
    directory, _ = saved
    damage(directory)
    with pytest.raises(ArtifactError, match=message):
        load_artifact(directory)


def test_metadata_must_be_plain_json_and_not_reserved(tmp_path: Path) -> None:
    weights = ModelWeights.random(CONFIG)
    with pytest.raises(ArtifactError, match="reserved"):
        save_artifact(tmp_path, weights, {"weights_sha256": "x"})
    with pytest.raises(ArtifactError, match="plain JSON"):
        save_artifact(tmp_path, weights, {"loss": float("nan")})
    save_artifact(tmp_path, weights, {"version": "v7"})
    assert read_metadata(tmp_path)["architecture"] == CONFIG.to_dict()
    assert read_metadata(tmp_path)["version"] == "v7"


# ------------------------------------------------------------------ the envelope inside the checksum
ENVELOPE = "envelope.npz"


def _with_envelope(directory: Path, payload: bytes = b"envelope bytes v1") -> ModelWeights:
    """An artifact whose directory held an envelope file when it was saved (its content is not parsed here)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ENVELOPE).write_bytes(payload)
    weights = ModelWeights.random(CONFIG, seed=4)
    save_artifact(directory, weights, {"version": "with-envelope"})
    return weights


def test_the_envelope_digest_is_recorded_inside_the_one_checksum(tmp_path: Path) -> None:
    _with_envelope(tmp_path)
    document = read_metadata(tmp_path)
    assert len(document["envelope_sha256"]) == 64
    assert document[ARTIFACT_CHECKSUM] == canonical_checksum(document)
    assert load_artifact(tmp_path).metadata["version"] == "with-envelope"
    save_artifact(tmp_path / "plain", ModelWeights.random(CONFIG, seed=5))
    assert read_metadata(tmp_path / "plain")["envelope_sha256"] is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.write_bytes(b"envelope bytes v2"), "corrupt, truncated or from another artifact"),  # swapped
        (lambda p: p.write_bytes(p.read_bytes()[:5]), "corrupt, truncated or from another artifact"),  # truncated
        (lambda p: p.unlink(), "is missing, but model.json records one"),
    ],
    ids=["swapped", "truncated", "removed"],
)
def test_a_swapped_truncated_or_missing_envelope_is_refused(tmp_path: Path, change: Any, message: str) -> None:
    _with_envelope(tmp_path)
    change(tmp_path / ENVELOPE)
    with pytest.raises(ArtifactError, match=message):
        load_artifact(tmp_path)


def test_an_envelope_beside_an_artifact_written_without_one_is_refused(tmp_path: Path) -> None:
    save_artifact(tmp_path, ModelWeights.random(CONFIG, seed=5))
    (tmp_path / ENVELOPE).write_bytes(b"dropped in later")
    with pytest.raises(ArtifactError, match="not part of this artifact"):
        load_artifact(tmp_path)


def test_an_artifact_from_before_the_envelope_digest_loads_unchecked(tmp_path: Path) -> None:
    """Written by an earlier rnnwatch: no envelope_sha256 (and a checksum without it); its envelope is not
    checked until the artifact is written again."""
    weights = _with_envelope(tmp_path)
    document = json.loads((tmp_path / METADATA_FILE).read_text())
    del document["envelope_sha256"]
    document[ARTIFACT_CHECKSUM] = canonical_checksum(document)
    (tmp_path / METADATA_FILE).write_text(json.dumps(document))
    (tmp_path / ENVELOPE).write_bytes(b"anything")
    np.testing.assert_array_equal(load_artifact(tmp_path).params["head.weight"], weights.params["head.weight"])


def test_removing_the_envelope_digest_from_a_new_artifact_breaks_its_checksum(tmp_path: Path) -> None:
    _with_envelope(tmp_path)
    document = json.loads((tmp_path / METADATA_FILE).read_text())
    del document["envelope_sha256"]
    (tmp_path / METADATA_FILE).write_text(json.dumps(document))
    with pytest.raises(ArtifactError, match="corrupt or was edited"):
        load_artifact(tmp_path)


def test_load_envelope_refuses_a_file_replaced_after_the_artifact_was_verified(tmp_path: Path) -> None:
    """The service reads the envelope again after load_artifact: those bytes are checked against model.json too."""
    from rnncore.errors import EnvelopeError
    from rnncore.model.envelope_file import load_envelope, save_envelope
    from rnncore.stages.envelope import EnvelopeParams, fit_envelope
    from stream.data.eventlog import EventRecord

    rng = np.random.default_rng(0)
    short = EnvelopeParams(min_history=0)
    first = fit_envelope([EventRecord("a", float(t), (float(v),)) for t, v in enumerate(rng.standard_normal(900))],
                         short)  # fmt: skip
    other = fit_envelope([EventRecord("b", float(t), (float(v),)) for t, v in enumerate(rng.standard_normal(900))],
                         short)  # fmt: skip
    save_envelope(first, tmp_path)
    save_artifact(tmp_path, ModelWeights.random(ModelConfig(n_features=1, hidden_size=4), seed=1))
    loaded = load_envelope(tmp_path)
    assert loaded is not None and loaded.index == first.index
    save_envelope(other, tmp_path)  # a valid envelope, of another artifact
    with pytest.raises(EnvelopeError, match="not the envelope model.json records"):
        load_envelope(tmp_path)
