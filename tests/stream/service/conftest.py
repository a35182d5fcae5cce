"""Fixtures of the service's tests: a broker of a test's own, and a service set up on a watched model artifact."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rnncore.model.artifact import load_artifact, save_artifact
from rnncore.model.weights import ModelWeights
from stream.local_broker import LocalBroker
from tests.kafka_helpers import MakeServiceTopics
from tests.stream.service_harness import ProxiedBroker, ServeArtifact, ServedArtifact, config_for
from tests.stream.tcp_proxy import TcpProxy


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A broker this test may stop and resume (the session's broker is shared)."""
    broker = LocalBroker(run_dir=tmp_path / "kafka")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


# A PROXIED listener on its own port (@PROXIED_PORT@, filled in by broker.sh) advertised at the proxy's port.
PROXIED_LISTENER = """
listeners=PLAINTEXT://127.0.0.1:@PORT@,CONTROLLER://127.0.0.1:@CONTROLLER_PORT@,PROXIED://127.0.0.1:@PROXIED_PORT@
advertised.listeners=PLAINTEXT://127.0.0.1:@PORT@,PROXIED://127.0.0.1:{proxy_port}
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PROXIED:PLAINTEXT
"""


@pytest.fixture
def proxied_broker(tmp_path: Path) -> Iterator[ProxiedBroker]:
    """A broker of this test's own whose PROXIED listener is reached only through the returned proxy (``proxied``).

    Kafka clients reconnect to the addresses the metadata advertises, so a client that bootstraps from
    ``127.0.0.1:<proxy.port>`` reaches the broker only through the proxy (cut or black-holed by the test);
    ``broker.bootstrap`` (PLAINTEXT) is the direct path for everything else."""
    proxy = TcpProxy()
    extra = tmp_path / "proxied.properties.in"
    extra.write_text(PROXIED_LISTENER.format(proxy_port=proxy.port))
    broker = LocalBroker(run_dir=tmp_path / "kafka", extra_config=extra)
    try:
        broker.start()
        host, port = (tmp_path / "kafka" / "proxied_bootstrap").read_text().strip().rsplit(":", 1)
        proxy.target = (host, int(port))
        assert broker.bootstrap
        yield ProxiedBroker(broker, proxy, broker.bootstrap, f"127.0.0.1:{proxy.port}")
    finally:
        proxy.close()
        broker.stop()


@pytest.fixture
def serve_artifact(
    kafka_bootstrap: str,
    make_service_topics: MakeServiceTopics,
    make_group: Callable[[], str],
    tmp_path: Path,
) -> ServeArtifact:
    """Factory: save ``weights`` as ``version`` in tmp_path/model, load it back, configure a service on fresh
    topics that polls it every ``poll_seconds``."""

    def make(weights: ModelWeights, version: str, *, partitions: int = 1, poll_seconds: float = 0.05) -> ServedArtifact:
        model_dir = tmp_path / "model"
        topics = make_service_topics(partitions)
        save_artifact(model_dir, weights, {"version": version})
        config = config_for(
            kafka_bootstrap, topics, make_group(), model_dir=str(model_dir), model_poll_seconds=poll_seconds
        )
        return ServedArtifact(topics, model_dir, load_artifact(model_dir), config)

    return make
