"""Shared fixtures: a real single-node Kafka broker for the session, unique topics and groups per test.

Set RNNWATCH_TEST_BOOTSTRAP=host:port to run the kafka tests against an existing broker instead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stream.local_broker import LocalBroker
from tests.kafka_helpers import MakeServiceTopics, service_topics, topic_maker, unique_name


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A command run in-process (`main(["serve", ...])`) replaces the root handlers with one bound to the test's
    captured stderr; put pytest's back, or later tests log into a closed stream ('--- Logging error ---')."""
    root, aiokafka = logging.getLogger(), logging.getLogger("aiokafka")
    handlers, level, aiokafka_level = list(root.handlers), root.level, aiokafka.level
    filters = list(aiokafka.filters)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    aiokafka.setLevel(aiokafka_level)
    aiokafka.filters[:] = filters


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker | None]:
    """The session's local broker (None when RNNWATCH_TEST_BOOTSTRAP names an existing one)."""
    if os.environ.get("RNNWATCH_TEST_BOOTSTRAP"):
        yield None
        return
    broker = LocalBroker(run_dir=tmp_path_factory.mktemp("kafka"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: LocalBroker | None) -> str:
    """Bootstrap address 'host:port' of the broker the kafka tests use."""
    if kafka_broker is None:
        return os.environ["RNNWATCH_TEST_BOOTSTRAP"]
    assert kafka_broker.bootstrap
    return kafka_broker.bootstrap


@pytest.fixture
def make_topic(kafka_bootstrap: str) -> Callable[..., str]:
    """Factory: create a uniquely named topic on the session's broker and return its name."""
    return topic_maker(kafka_bootstrap)


@pytest.fixture
def make_service_topics(make_topic: Callable[..., str]) -> MakeServiceTopics:
    """Factory: fresh input, output, dead-letter and changelog topics of a service (``service_topics``)."""
    return lambda partitions=1: service_topics(make_topic, partitions)


@pytest.fixture
def make_group() -> Callable[[], str]:
    """Factory: a consumer group id no other test uses."""
    return lambda: unique_name("g")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
