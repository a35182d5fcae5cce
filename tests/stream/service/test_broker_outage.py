"""A broker outage against a broker of its own, stopped and restarted: /readyz goes 503 with the reason and back
to 200, aiokafka's error lines are rate-limited and scoring resumes."""

from __future__ import annotations

import asyncio

import pytest

from stream.local_broker import LocalBroker
from stream.service.app import Service
from tests.kafka_helpers import run_sync, service_topics, topic_maker, unique_name
from tests.stream.fake_detector import FakeDetector
from tests.stream.service_harness import config_for, event, publish, running, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.faults, pytest.mark.timeout(240)]


def test_readiness_follows_a_broker_outage_and_scoring_resumes(
    own_broker: LocalBroker, caplog: pytest.LogCaptureFixture
) -> None:
    assert own_broker.bootstrap
    bootstrap = own_broker.bootstrap
    topics = service_topics(topic_maker(bootstrap))
    config = config_for(bootstrap, topics, unique_name("g"))

    async def scenario() -> tuple[Service, list[str], int]:
        service = Service(config, make_detector=FakeDetector, n_features=1)
        scored = lambda: service.metrics.value("rnnwatch_events_scored_total")  # noqa: E731
        async with running(service) as task:
            await publish(bootstrap, topics["input"], [(b"a", event("a", 1.0, 1.0))])
            await wait_until(lambda: scored() == 1 and service.health.readiness().ok, task, "ready")
            await asyncio.to_thread(own_broker.stop)
            caplog.clear()
            await wait_until(lambda: not service.health.readiness().ok, task, "the outage is seen", timeout=20)
            down = service.health.readiness().reason
            await asyncio.sleep(8)  # the outage goes on
            logged = len([r for r in caplog.records if r.name.startswith("aiokafka")])
            reasons = [down, service.health.readiness().reason]
            await asyncio.to_thread(own_broker.resume)
            await wait_until(lambda: service.health.readiness().ok, task, "ready again", timeout=90)
            await publish(bootstrap, topics["input"], [(b"a", event("a", 2.0, 1.0))])
            await wait_until(lambda: scored() == 2, task, "scoring after the outage", timeout=90)
        return service, reasons, logged

    service, reasons, logged = run_sync(scenario())
    assert all("unreachable" in r and bootstrap in r for r in reasons), reasons
    assert logged < 40, f"{logged} aiokafka lines in ~8 s of outage"
    assert service.metrics.value("rnnwatch_events_scored_total") == 2
