"""Start-up refuses missing topics with the command that creates them; `rnnwatch topics create` makes them all."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from stream.cli import main
from stream.errors import ConfigError, ServiceError
from stream.service.config import ServiceConfig
from tests.kafka_helpers import run_sync, unique_name
from tests.stream.fake_detector import FakeDetector
from tests.stream.service_harness import config_for, run_service_until


def test_auto_offset_reset_is_a_setting() -> None:
    assert ServiceConfig().auto_offset_reset == "earliest"
    assert ServiceConfig(auto_offset_reset="latest").auto_offset_reset == "latest"
    with pytest.raises(ConfigError, match="auto_offset_reset must be one of"):
        ServiceConfig(auto_offset_reset="newest")  # type: ignore[arg-type]


@pytest.mark.kafka
@pytest.mark.timeout(120)
@pytest.mark.parametrize("role", ["output", "dlq"])
def test_a_missing_written_topic_stops_start_up_with_the_command_to_create_it(
    kafka_bootstrap: str, make_topic: Callable[..., str], make_group: Callable[[], str], role: str
) -> None:
    topics = {name: make_topic(prefix=name) for name in ("input", "output", "dlq", "changelog")}
    topics[role] = unique_name("absent")
    config = config_for(kafka_bootstrap, topics, make_group())
    expected = "output" if role == "output" else "dead-letter"
    with pytest.raises(
        ServiceError, match=rf"{expected} topic '{topics[role]}' does not exist.*rnnwatch topics create"
    ):
        run_sync(run_service_until(config, lambda s: True, make_detector=FakeDetector, n_features=1))


async def _cleanup_policy(bootstrap: str, topic: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, {"cleanup.policy": None})
        (response,) = await admin.describe_configs([resource])
        (entry,) = response.to_object()["resources"]
        return str(entry["config_entries"][0]["config_value"])
    finally:
        await admin.close()


@pytest.mark.kafka
@pytest.mark.timeout(120)
def test_topics_create_makes_every_topic_the_service_needs(
    kafka_bootstrap: str, make_group: Callable[[], str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = {role: unique_name(role) for role in ("input", "output", "dlq", "changelog")}
    config_file = tmp_path / "rnnwatch.toml"
    config_file.write_text(
        f'bootstrap_servers = "{kafka_bootstrap}"\ninput_topic = "{names["input"]}"\n'
        f'output_topic = "{names["output"]}"\ndead_letter_topic = "{names["dlq"]}"\n'
        f'changelog_topic = "{names["changelog"]}"\n'
    )
    assert main(["topics", "create", "--config", str(config_file), "--partitions", "2"]) == 0
    assert sorted(capsys.readouterr().out.split("\n")[:-1]) == sorted(f"created: {n}" for n in names.values())
    assert main(["topics", "create", "--config", str(config_file)]) == 0
    assert sorted(capsys.readouterr().out.split("\n")[:-1]) == sorted(f"exists: {n}" for n in names.values())
    assert run_sync(_cleanup_policy(kafka_bootstrap, names["changelog"])) == "compact"
    config = config_for(kafka_bootstrap, names, make_group())
    service = run_sync(
        run_service_until(
            config,
            lambda s: s.metrics.value("rnnwatch_assigned_partitions") == 2,
            make_detector=FakeDetector,
            n_features=1,
        )
    )
    assert service.batches == 0  # started against the created topics and took both partitions
