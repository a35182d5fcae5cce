"""`rnnwatch train` writes the envelope beside model.json, records it there, never pairs weights with an old one."""

from __future__ import annotations

import json

import pytest

from tests.stream.commands.small_training import SmallStore

pytestmark = pytest.mark.timeout(240)


def test_train_records_the_envelope_and_never_keeps_a_stale_one(small_store: SmallStore) -> None:
    printed = small_store.train(streams=3, events=1600)
    assert "envelope: 3 streams; default threshold: score >= 0.99 = beyond what 0.5% of a stream's held-out" in printed
    assert "streams not in these logs or with fewer than 132 rows in them fit their own online from" in printed
    current = small_store.out / "current"
    described = json.loads((current / "model.json").read_text())["envelope"]
    assert described["false_alarm_target_per_event"] == 0.005 and described["streams"] == 3
    assert (current / "envelope.npz").is_file() and not (current / "envelope.npz.tmp").exists()
    first = current.resolve()
    # retrained into the same store on streams too short for an envelope: the new version has none
    printed = small_store.train(streams=3, events=125)
    assert "envelope: none" in printed and "every stream fits its own online" in printed
    assert current.resolve() != first and (first / "envelope.npz").is_file()  # the old version is kept whole
    assert not (current / "envelope.npz").exists()
    assert "envelope" not in json.loads((current / "model.json").read_text())
