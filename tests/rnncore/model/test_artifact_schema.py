"""model.json is checked field by field and covered by one checksum with the weights, before any weight is used."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from rnncore.errors import ArtifactError
from rnncore.model.artifact import METADATA_FILE, load_artifact, save_artifact
from rnncore.model.artifact_schema import ARCHITECTURE, ARTIFACT_CHECKSUM, canonical_checksum
from rnncore.model.config import ModelConfig
from rnncore.model.weights import ModelWeights

CONFIG = ModelConfig(cell="gru", hidden_size=4, n_features=1)


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    save_artifact(tmp_path, ModelWeights.random(CONFIG, seed=1), {"validation_loss": 0.25})
    return tmp_path


def _document(directory: Path) -> dict[str, Any]:
    return json.loads((directory / METADATA_FILE).read_text())


def _write(directory: Path, document: dict[str, Any], *, reseal: bool = True) -> None:
    if reseal:
        document[ARTIFACT_CHECKSUM] = canonical_checksum(document)
    (directory / METADATA_FILE).write_text(json.dumps(document))


def _as_format_1(document: dict[str, Any]) -> dict[str, Any]:
    """What `rnnwatch train` wrote before format 2: no whole-artifact checksum."""
    document = dict(document, format_version=1)
    document.pop(ARTIFACT_CHECKSUM)
    return document


def test_the_schema_covers_every_model_config_field() -> None:
    assert set(ARCHITECTURE) == {f.name for f in dataclasses.fields(ModelConfig)}


def test_an_edited_model_json_is_refused_by_the_checksum_over_weights_and_metadata(directory: Path) -> None:
    document = _document(directory)
    document["architecture"]["norm_eps"] = 0.5  # valid by the schema, but not what was saved
    _write(directory, document, reseal=False)
    with pytest.raises(ArtifactError, match="corrupt or was edited"):
        load_artifact(directory)


def test_a_format_1_artifact_without_the_whole_checksum_still_loads(directory: Path) -> None:
    _write(directory, _as_format_1(_document(directory)), reseal=False)
    assert load_artifact(directory).config == CONFIG


@pytest.mark.parametrize("fmt", [1, 2], ids=["format1", "format2-resealed"])
@pytest.mark.parametrize(
    "field,value,message",
    [
        ("norm_eps", None, "must be a number"),
        ("norm_eps", 0.0, "must be a finite number in"),
        ("dt_scale", {}, "must be a number"),
        ("dt_scale", -1.0, "must be a finite number in"),
        ("min_scale", "small", "must be a number"),
        ("input_clip", True, "must be a number"),
        ("hidden_size", 8.0, "must be an integer"),
        ("n_features", True, "must be an integer"),
        ("num_layers", 9, "must be in 1..4"),
        ("norm_window", 0, "must be in"),
        ("time_delta_feature", 1, "must be true or false"),
        ("cell", "transformer", "must be one of"),
        ("attention_window", -1, "must be in"),
    ],
)
def test_every_architecture_field_is_checked_by_type_and_range(
    directory: Path, fmt: int, field: str, value: Any, message: str
) -> None:
    document = _document(directory)
    document["architecture"][field] = value
    if fmt == 1:
        document = _as_format_1(document)
    _write(directory, document, reseal=fmt == 2)
    with pytest.raises(ArtifactError, match=rf"architecture field '{field}' {message}"):
        load_artifact(directory)


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("format_version", True, "format_version True"),
        ("weights_sha256", 7, "field 'weights_sha256' must be 64"),
        ("version", "", "field 'version' must be a non-empty string"),
        ("created_at", "yesterday", "field 'created_at' must be an ISO 8601"),
        ("parameters", {"head.bias": [2.5]}, "field 'parameters' shape of 'head.bias'"),
    ],
)
def test_top_level_fields_are_checked(directory: Path, field: str, value: Any, message: str) -> None:
    document = _document(directory)
    document[field] = value
    _write(directory, document)
    with pytest.raises(ArtifactError, match=message):
        load_artifact(directory)


def test_non_finite_numbers_are_refused_anywhere_in_the_file(directory: Path) -> None:
    text = (directory / METADATA_FILE).read_text().replace('"validation_loss": 0.25', '"validation_loss": NaN')
    (directory / METADATA_FILE).write_text(text)
    with pytest.raises(ArtifactError, match="NaN is not a finite JSON number"):
        load_artifact(directory)


def test_unknown_architecture_fields_and_a_missing_one_are_refused(directory: Path) -> None:
    document = _document(directory)
    document["architecture"]["dropout"] = 0.1
    _write(directory, document)
    with pytest.raises(ArtifactError, match=r"unknown architecture fields \['dropout'\]"):
        load_artifact(directory)
    del document["architecture"]["dropout"], document["architecture"]["norm_eps"]
    _write(directory, document)
    with pytest.raises(ArtifactError, match="architecture lacks 'norm_eps'"):
        load_artifact(directory)
