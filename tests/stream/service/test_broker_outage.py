"""A broker outage against a broker of its own, stopped and restarted: /readyz goes 503 with the reason and back
to 200, aiokafka's error lines are rate-limited and scoring resumes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiokafka.admin import NewTopic

from stream.local_broker import LocalBroker
from stream.service.app import Service
from tests.kafka_helpers import create_topics, run_sync, unique_name
from tests.stream.fake_detector import FakeDetector
from tests.stream.service_harness import config_for, event, publish

pytestmark = [pytest.mark.kafka, pytest.mark.faults, pytest.mark.timeout(240)]


def _topics(bootstrap: str) -> dict[str, str]:
    topics = {role: unique_name(role) for role in ("input", "output", "dlq", "changelog")}
    configs = {"changelog": {"cleanup.policy": "compact"}}
    run_sync(create_topics(bootstrap, [NewTopic(n, 1, 1, topic_configs=configs.get(r, {})) for r, n in topics.items()]))
    return topics


async def _until(condition: Callable[[], bool], task: asyncio.Task[None], what: str, timeout: float = 60) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            if task.done():
                task.result()
                raise AssertionError(f"service stopped before {what}")
            await asyncio.sleep(0.1)


def test_readiness_follows_a_broker_outage_and_scoring_resumes(
    own_broker: LocalBroker, caplog: pytest.LogCaptureFixture
) -> None:
    assert own_broker.bootstrap
    bootstrap = own_broker.bootstrap
    topics = _topics(bootstrap)
    config = config_for(bootstrap, topics, unique_name("g"))

    async def scenario() -> tuple[Service, list[str], int]:
        service = Service(config, make_detector=FakeDetector, n_features=1)
        scored = lambda: service.metrics.value("rnnwatch_events_scored_total")  # noqa: E731
        async with service:
            task = asyncio.create_task(service.run())
            try:
                await publish(bootstrap, topics["input"], [(b"a", event("a", 1.0, 1.0))])
                await _until(lambda: scored() == 1 and service.health.readiness().ok, task, "ready")
                await asyncio.to_thread(own_broker.stop)
                caplog.clear()
                await _until(lambda: not service.health.readiness().ok, task, "the outage is seen", timeout=20)
                down = service.health.readiness().reason
                await asyncio.sleep(8)  # the outage goes on
                logged = len([r for r in caplog.records if r.name.startswith("aiokafka")])
                reasons = [down, service.health.readiness().reason]
                await asyncio.to_thread(own_broker.resume)
                await _until(lambda: service.health.readiness().ok, task, "ready again", timeout=90)
                await publish(bootstrap, topics["input"], [(b"a", event("a", 2.0, 1.0))])
                await _until(lambda: scored() == 2, task, "scoring after the outage", timeout=90)
            finally:
                service.request_stop()
                await task
        return service, reasons, logged

    service, reasons, logged = run_sync(scenario())
    assert all("unreachable" in r and bootstrap in r for r in reasons), reasons
    assert logged < 40, f"{logged} aiokafka lines in ~8 s of outage"
    assert service.metrics.value("rnnwatch_events_scored_total") == 2
