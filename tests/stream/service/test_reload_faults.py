"""Hot reload against the real broker: broken model.json fields are refused by name before any state is touched,
and an artifact whose model.json came before its weights is taken once it is complete."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from rnncore.model.artifact import METADATA_FILE, WEIGHTS_FILE, save_artifact
from rnncore.model.artifact_schema import ARTIFACT_CHECKSUM, canonical_checksum
from stream.cli import main
from stream.service.app import Service
from tests.stream.service.test_service_reload import NEW, OLD
from tests.stream.service_harness import (
    ServeArtifact,
    feed,
    reload_refusals,
    reloads,
    serve_through,
    stream_events,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.faults, pytest.mark.timeout(180)]


def _resealed(model_dir: Path, field: str, value: Any) -> str:
    """model.json with one architecture field changed and its checksum recomputed (valid JSON, bad schema)."""
    document = json.loads((model_dir / METADATA_FILE).read_text())
    document["architecture"][field] = value
    document[ARTIFACT_CHECKSUM] = canonical_checksum(document)
    return json.dumps(document)


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def test_broken_fields_are_refused_by_name_and_an_incomplete_artifact_is_taken_once_complete(
    serve_artifact: ServeArtifact, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    served = serve_artifact(OLD, "v1", partitions=1)
    model_dir = served.model_dir
    staging = tmp_path / "staging"
    save_artifact(staging, NEW, {"version": "v2"})
    original_json = (model_dir / METADATA_FILE).read_bytes()
    events = stream_events(n_keys=3, per_key=20)

    async def scenario(service: Service, task: asyncio.Task[None]) -> None:
        await feed(service, task, events[:30], 30, "the first events")
        for n, (field, bad) in enumerate((("norm_eps", None), ("dt_scale", {})), start=1):
            _replace(model_dir / METADATA_FILE, _resealed(model_dir, field, bad).encode())
            await wait_until(lambda n=n: reloads(service, "refused") == n, task, f"the refusal of {field}")
            _replace(model_dir / METADATA_FILE, original_json)  # v1 again: reloaded as it is
            await wait_until(lambda n=n: reloads(service, "loaded") == n, task, "the reload of v1")
        shutil.copyfile(staging / METADATA_FILE, model_dir / ".m")  # model.json of v2 before its weights
        os.replace(model_dir / ".m", model_dir / METADATA_FILE)
        await wait_until(lambda: reloads(service, "refused") == 3, task, "the refusal of the incomplete artifact")
        shutil.copyfile(staging / WEIGHTS_FILE, model_dir / ".w")
        os.replace(model_dir / ".w", model_dir / WEIGHTS_FILE)
        await wait_until(lambda: reloads(service, "loaded") == 3, task, "the completed artifact")
        await feed(service, task, events[30:], len(events), "the rest")

    service = serve_through(served, scenario)
    assert reloads(service, "refused") == 3
    refusals = reload_refusals(caplog)
    assert "architecture field 'norm_eps' must be a number" in refusals[0]
    assert "architecture field 'dt_scale' must be a number" in refusals[1]
    assert "corrupt or truncated" in refusals[2]
    got = served.published_scores(len(events))
    for scores in got.values():
        assert [s["model_version"] for s in scores] == ["v1"] * 10 + ["v2"] * 10
        assert all(s["mean"] is not None and abs(s["mean"]) < 1e6 for s in scores)  # no NaN state


@pytest.mark.parametrize(("field", "bad"), [("norm_eps", None), ("dt_scale", {})], ids=["norm_eps-null", "dt_scale-{}"])
def test_serve_refuses_a_resealed_hostile_field_at_start_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, bad: Any
) -> None:
    """Item 6's restart: the same directory used to hang (``/readyz`` 503 forever) or crash; now exit 2 before any
    connection, one line naming the field."""
    model_dir = tmp_path / "model"
    save_artifact(model_dir, OLD)
    _replace(model_dir / METADATA_FILE, _resealed(model_dir, field, bad).encode())
    argv = ["serve", "--model-dir", str(model_dir), "--bootstrap-servers", "127.0.0.1:1", "--metrics-port", "0"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "cannot start" in line]
    assert len(lines) == 1 and f"architecture field '{field}' must be a number" in lines[0], err
    assert "Traceback" not in err
