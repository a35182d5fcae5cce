"""Helpers for service tests against the real broker: publish events, run a service, read what it published."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from rnncore.calibration import ScoringParams
from rnncore.contract import StreamScorer
from rnncore.detector import Detector
from rnncore.model.weights import ModelWeights
from stream.local_broker import LocalBroker
from stream.service.app import Service
from stream.service.codec import decode_score, header_value
from stream.service.config import ServiceConfig
from tests.kafka_helpers import run_sync
from tests.stream.tcp_proxy import TcpProxy

SCORING = ScoringParams(warmup_events=5, short_window=3)  # scores are 0 during warm-up: keep it short here


def make_detector_of(weights: ModelWeights) -> Callable[[], Detector]:
    """Factory of the service tests' Detector of ``weights`` (up to 1000 streams, :data:`SCORING`): what the
    service under test makes per partition, and the offline run its scores are compared with."""
    return lambda: Detector(weights, max_streams=1000, scoring=SCORING)


def event(key: str, t: float, value: float | list[float]) -> bytes:
    return orjson.dumps({"key": key, "time": t, "value": value})


def messages_of(events: Sequence[tuple[str, float, float | list[float]]]) -> list[tuple[bytes, bytes]]:
    """(key, value) messages of (key, time, value) events, keyed by the stream key."""
    return [(k.encode(), event(k, t, v)) for k, t, v in events]


def stream_events(n_keys: int, per_key: int, seed: int = 0) -> list[tuple[str, float, float]]:
    """Interleaved events of several sine-like streams, one spike each."""
    rng = np.random.default_rng(seed)
    events = []
    for step in range(per_key):
        for k in range(n_keys):
            value = float(np.sin(step / 5 + k) + 0.1 * rng.standard_normal() + (8.0 if step == per_key // 2 else 0))
            events.append((f"sensor-{k}", 1000.0 + step + k / 100, value))
    return events


async def publish(bootstrap: str, topic: str, messages: Sequence[tuple[bytes | None, bytes | None]]) -> None:
    """Send (key, value) messages in order and wait for every acknowledgement."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=value, key=key) for key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topic: str, expected: int, timeout: float = 60.0, settle: float = 1.0) -> list[Any]:
    """Read a topic from the start (read_committed) until ``expected`` records came and ``settle`` s passed quietly."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(timeout):
            quiet = 0.0
            while len(records) < expected or quiet < settle:
                batch = await consumer.getmany(timeout_ms=250)
                got = [m for messages in batch.values() for m in messages]
                records.extend(got)
                quiet = 0.0 if got or len(records) < expected else quiet + 0.25
    finally:
        await consumer.stop()
    return records


def scores_by_key(records: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """Score records grouped by stream key, in input-offset order."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        score = decode_score(record.value)
        grouped.setdefault(score["key"], []).append(score)
    for scores in grouped.values():
        scores.sort(key=lambda s: (s["partition"], s["offset"]))
    return grouped


def read_scores(bootstrap: str, topic: str, expected: int) -> dict[str, list[dict[str, Any]]]:
    """The score records of ``topic``, read from a sync test as :func:`read_all` reads them, grouped by key."""
    return scores_by_key(run_sync(read_all(bootstrap, topic, expected)))


def offline_rows(scorer: StreamScorer, events: Sequence[tuple[str, float, float]]) -> dict[str, np.ndarray]:
    """Per-key [score, nll, mean, scale] rows of ``events`` fed one at a time through ``scorer``: the offline run
    a served stream's score records must match."""
    rows: dict[str, list[list[float]]] = {}
    for key, t, v in events:
        r = scorer.step([key], np.array([t]), np.array([v], dtype=np.float32))
        rows.setdefault(key, []).append([float(r.scores[0]), float(r.nll[0]), float(r.mean[0]), float(r.scale[0])])
    return {k: np.array(v) for k, v in rows.items()}


def offline_scores(scorer: StreamScorer, events: Sequence[tuple[str, float, float]]) -> dict[str, np.ndarray]:
    """Per-key scores alone of the same one-at-a-time run (the fake detector and the pipeline: scores only)."""
    scores: dict[str, list[float]] = {}
    for key, t, v in events:
        scores.setdefault(key, []).append(float(scorer.step([key], np.array([t]), np.array([v])).scores[0]))
    return {k: np.array(v) for k, v in scores.items()}


def published_rows(scores: list[dict[str, Any]]) -> np.ndarray:
    """The four columns of :func:`offline_rows` from score records (null nll -> NaN)."""
    rows = [[s["score"], np.nan if s["nll"] is None else s["nll"], s["mean"], s["scale"]] for s in scores]
    return np.array(rows, dtype=np.float64)


def assert_matches_offline(got: dict[str, list[dict[str, Any]]], expected: dict[str, np.ndarray]) -> None:
    """The same stream keys, and every key's published rows equal to its :func:`offline_rows` (to 1e-5)."""
    assert sorted(got) == sorted(expected)
    for key, scores in got.items():
        np.testing.assert_allclose(published_rows(scores), expected[key], rtol=1e-5, atol=1e-5, err_msg=key)


def assert_scores_match(got: dict[str, list[dict[str, Any]]], expected: dict[str, np.ndarray]) -> None:
    """Every published key's scores equal to its :func:`offline_scores` (to 1e-6)."""
    for key, scores in got.items():
        np.testing.assert_allclose([s["score"] for s in scores], expected[key], atol=1e-6, err_msg=key)


def reasons(records: list[Any]) -> list[str | None]:
    return [header_value(list(r.headers), "rnnwatch-reason") for r in records]


@contextlib.asynccontextmanager
async def running(service: Service) -> AsyncIterator[asyncio.Task[None]]:
    """Start ``service`` and its run loop; on leaving, stop it cleanly and wait for the loop (its error re-raised)."""
    async with service:
        task = asyncio.create_task(service.run())
        try:
            yield task
        finally:
            service.request_stop()
            await task


async def wait_until(condition: Callable[[], bool], task: asyncio.Task[None], what: str, timeout: float = 60) -> None:
    """Poll ``condition`` every 50 ms; fail if the service's run loop ``task`` ended first or ``timeout`` passed."""
    async with asyncio.timeout(timeout):
        while not condition():
            if task.done():
                task.result()
                raise AssertionError(f"service stopped before {what}")
            await asyncio.sleep(0.05)


async def feed(
    service: Service,
    task: asyncio.Task[None],
    events: Sequence[tuple[str, float, float | list[float]]],
    scored: int,
    what: str,
) -> None:
    """Publish ``events`` to the service's input topic, then wait (as :func:`wait_until`) until it has scored
    ``scored`` events in all."""
    await publish(service.config.bootstrap_servers, service.config.input_topic, messages_of(events))
    await wait_until(lambda: service.metrics.value("rnnwatch_events_scored_total") >= scored, task, what)


def reloads(service: Service, result: str) -> float:
    """How many model artifacts the service took (``result="loaded"``) or refused (``"refused"``) so far."""
    return service.metrics.value("rnnwatch_model_reloads_total", {"result": result})


def reload_refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The service's "model reload refused" log lines, in order."""
    return [r.getMessage() for r in caplog.records if "model reload refused" in r.getMessage()]


async def run_service_until(
    config: ServiceConfig, done: Callable[[Service], bool], *, timeout: float = 60.0, **service_args: Any
) -> Service:
    """Run a service until ``done(service)`` is true, then stop it cleanly."""
    service = Service(config, **service_args)
    async with running(service) as task:
        await wait_until(lambda: done(service), task, "it was done", timeout)
    return service


def serve_until_consumed(
    config: ServiceConfig, consumed: int, *, timeout: float = 60.0, **service_args: Any
) -> Service:
    """From a sync test: run a service on ``config`` until it has consumed ``consumed`` input messages, then stop
    it cleanly (:func:`run_service_until`)."""
    done = lambda s: s.metrics.value("rnnwatch_events_consumed_total") >= consumed  # noqa: E731
    return run_sync(run_service_until(config, done, timeout=timeout, **service_args))


def serve_in_two_runs(
    config: ServiceConfig,
    messages: Sequence[tuple[bytes | None, bytes | None]],
    *,
    between: Callable[[], None] = lambda: None,
    **service_args: Any,
) -> tuple[Service, Service]:
    """The restart scenario: publish the first half of ``messages`` and serve until it is consumed, run
    ``between`` (the service is down), publish the rest and serve it with a new service, which restores the
    state from the changelog. Returns both services (stopped), for their metrics."""
    half = len(messages) // 2
    run_sync(publish(config.bootstrap_servers, config.input_topic, messages[:half]))
    first = serve_until_consumed(config, half, **service_args)
    between()
    run_sync(publish(config.bootstrap_servers, config.input_topic, messages[half:]))
    return first, serve_until_consumed(config, len(messages) - half, **service_args)


def config_for(bootstrap: str, topics: dict[str, str], group: str, **overrides: Any) -> ServiceConfig:
    return ServiceConfig(
        bootstrap_servers=bootstrap,
        input_topic=topics["input"],
        output_topic=topics["output"],
        dead_letter_topic=topics["dlq"],
        changelog_topic=topics["changelog"],
        group_id=group,
        instance_id="test",
        max_batch_wait_ms=20,
        metrics_port=0,
        **overrides,
    )


class ServedArtifact(NamedTuple):
    """A service set-up that serves the artifact in ``model_dir`` and polls it for new versions."""

    topics: dict[str, str]
    model_dir: Path
    weights: ModelWeights  # as `rnnwatch serve` loads it: with its version
    config: ServiceConfig

    def published_scores(self, expected: int) -> dict[str, list[dict[str, Any]]]:
        """The score records on the output topic, as :func:`read_scores` reads them: ``expected`` of them."""
        return read_scores(self.config.bootstrap_servers, self.topics["output"], expected)


ServeArtifact = Callable[..., ServedArtifact]
Scenario = Callable[[Service, asyncio.Task[None]], Awaitable[None]]


def serve_through(served: ServedArtifact, scenario: Scenario) -> Service:
    """Run a service of ``served`` (its Detector :func:`make_detector_of` the artifact's weights) while
    ``scenario(service, task)`` runs, then stop it cleanly (the run loop's error re-raised) and return it."""

    async def run() -> Service:
        service = Service(served.config, served.weights, make_detector=make_detector_of(served.weights))
        async with running(service) as task:
            await scenario(service, task)
        return service

    return run_sync(run())


class ProxiedBroker(NamedTuple):
    """A broker of a test's own and the proxy in front of its PROXIED listener, with both addresses."""

    broker: LocalBroker
    proxy: TcpProxy
    bootstrap: str  # the broker's own PLAINTEXT listener: the direct path
    proxied: str  # the proxy's address: a client bootstrapped here reaches the broker only through the proxy
