"""`rnnwatch topics create` against the real broker: an existing changelog narrower than the input is refused, a new
one follows the existing input's partition count (the rest of the command is tested in test_topics.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka.admin import NewTopic

from stream.cli import main
from tests.kafka_helpers import create_topics, run_sync, unique_name

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


def _config_file(tmp_path: Path, bootstrap: str) -> tuple[Path, dict[str, str]]:
    names = {f"{role}_topic": unique_name(f"topics-{role.replace('_', '-')}")
             for role in ("input", "output", "dead_letter", "changelog")}  # fmt: skip
    path = tmp_path / "rnnwatch.toml"
    path.write_text(f'bootstrap_servers = "{bootstrap}"\n' + "".join(f'{k} = "{v}"\n' for k, v in names.items()))
    return path, names


def test_a_changelog_narrower_than_the_input_is_refused(
    kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, names = _config_file(tmp_path, kafka_bootstrap)
    run_sync(
        create_topics(kafka_bootstrap, [NewTopic(names["input_topic"], 4, 1), NewTopic(names["changelog_topic"], 2, 1)])
    )
    assert main(["topics", "create", "--config", str(config)]) == 2
    assert "has 2 partitions, the input topic 4" in capsys.readouterr().err


def test_a_new_changelog_gets_the_existing_input_topics_partition_count(
    kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    config, names = _config_file(tmp_path, kafka_bootstrap)
    run_sync(create_topics(kafka_bootstrap, [NewTopic(names["input_topic"], 6, 1)]))
    assert main(["topics", "create", "--config", str(config), "--partitions", "2"]) == 0

    async def partitions(name: str) -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            for _ in range(50):  # a just-created topic's metadata can come back empty for a moment
                described = await admin.describe_topics([name])
                if described and described[0]["partitions"]:
                    return len(described[0]["partitions"])
                await asyncio.sleep(0.2)
            return 0
        finally:
            await admin.close()

    assert run_sync(partitions(names["changelog_topic"])) == 6
    assert run_sync(partitions(names["output_topic"])) == 2
