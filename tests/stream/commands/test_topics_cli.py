"""`rnnwatch topics create` against the real broker: every topic, the changelog compacted and as wide as the
input, idempotent, and a too-narrow existing changelog refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from stream.cli import main
from tests.kafka_helpers import create_topics, run_sync, unique_name

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


def _config_file(tmp_path: Path, bootstrap: str) -> tuple[Path, dict[str, str]]:
    names = {f"{role}_topic": unique_name(f"topics-{role.replace('_', '-')}")
             for role in ("input", "output", "dead_letter", "changelog")}  # fmt: skip
    path = tmp_path / "rnnwatch.toml"
    path.write_text(f'bootstrap_servers = "{bootstrap}"\n' + "".join(f'{k} = "{v}"\n' for k, v in names.items()))
    return path, names


async def _describe(bootstrap: str, names: list[str]) -> tuple[dict[str, int], dict[str, str]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        policies: dict[str, str] = {}
        partitions: dict[str, int] = {}
        for _ in range(50):  # a just-created topic's metadata and configs can come back empty for a moment
            partitions = {d["topic"]: len(d["partitions"]) for d in await admin.describe_topics(names)}
            for response in await admin.describe_configs(resources):
                for _, _, _, topic, entries in response.resources:
                    policy = [value for name, value, *_ in entries if name == "cleanup.policy"]
                    if policy:
                        policies[topic] = policy[0]
            if len(policies) == len(names) and all(partitions.values()):
                break
            await asyncio.sleep(0.2)
        return partitions, policies
    finally:
        await admin.close()


def test_creates_every_topic_once_with_a_compacted_changelog(
    kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, names = _config_file(tmp_path, kafka_bootstrap)
    assert main(["topics", "create", "--config", str(config), "--partitions", "3"]) == 0
    assert capsys.readouterr().out.count("created") == 4
    partitions, policies = run_sync(_describe(kafka_bootstrap, list(names.values())))
    assert set(partitions.values()) == {3}
    assert policies[names["changelog_topic"]] == "compact" and policies[names["input_topic"]] == "delete"
    assert main(["topics", "create", "--config", str(config)]) == 0
    assert capsys.readouterr().out.count("exists") == 4


def test_a_changelog_narrower_than_the_input_is_refused(
    kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, names = _config_file(tmp_path, kafka_bootstrap)
    run_sync(
        create_topics(kafka_bootstrap, [NewTopic(names["input_topic"], 4, 1), NewTopic(names["changelog_topic"], 2, 1)])
    )
    assert main(["topics", "create", "--config", str(config)]) == 2
    assert "has 2 partitions, the input topic 4" in capsys.readouterr().err
