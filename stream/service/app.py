"""The rnnwatch service: consume events, score them per partition, publish scores, dead letters and state.

``async with Service(config, weights) as service: await service.run()`` joins the consumer group on the input
topic; each assigned partition gets its own detector, restored from the changelog before its first batch.
Every ``getmany`` micro-batch is processed partition by partition and published by ``stream.service.checkpoint``
(the batch in flight) while the next one is scored (``stream.service.scoring`` lets the batch in flight's round
trips go on between partitions); polls scored while a batch is in flight (up to ``PENDING_POLLS``) are published
together as the next batch, one changelog delta of their rows per partition:

* ``exactly_once``: per input partition, its score records, dead letters, changelog records and next input
  offset in one Kafka transaction (read_committed consumers see each output once, and state always matches the
  offsets). Each partition has a transactional producer of its own whose id moves with the partition
  (``stream.service.fencing``): a new owner fences the previous one before it restores, so a replica that froze
  past its session timeout cannot commit for a partition it lost; its batch is aborted and it drops the
  partition.
* ``at_least_once``: outputs are sent and acknowledged, then the changelog, then the offsets are committed;
  a crash may repeat outputs but never loses one, and the state resumes at the changelog's own offset.

A failed publish stops the service with ``ServiceError`` (in-memory state may be ahead of what Kafka holds);
a restart restores from the changelog. ``request_stop()`` (wired to SIGTERM/SIGINT by ``rnnwatch serve``)
finishes the batch in flight and leaves the group within ``shutdown_timeout_seconds`` (``stream.service.shutdown``):
what the broker has not taken by then is abandoned uncommitted.

Between batches the service picks up a new model artifact in ``model_dir`` (polled every
``model_poll_seconds``, or at once after ``request_reload()``, wired to SIGHUP): every partition's detector
takes the new weights and keeps its stream state; an unreadable or incompatible artifact is refused with one
log line and ``rnnwatch_model_reloads_total{result="refused"}``, and the old model goes on serving. With
``archive_dir`` set, each committed batch's scored events are appended to rolling JSON Lines files.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from rnncore.contract import StreamScorer
from rnncore.errors import ArtifactError, IncompatibleModelError, SnapshotError
from rnncore.model.weights import ModelWeights
from stream.data.archive import EventArchive
from stream.errors import (
    ConfigError,
    DeadLetterLimitError,
    KafkaConnectError,
    ServiceError,
    TopicError,
)
from stream.service.broker_probe import BrokerProbe, rate_limit_aiokafka_logs, remove_filter
from stream.service.changelog import restore_from_records
from stream.service.checkpoint import Checkpointer
from stream.service.codec import EventDecoder
from stream.service.config import ServiceConfig
from stream.service.connection import explained_connection_errors
from stream.service.fencing import PartitionProducers, transactional_id_for
from stream.service.health import HealthState
from stream.service.metrics import MetricsServer, ServiceMetrics
from stream.service.partition import BatchOutcome, PartitionProcessor, PartitionSettings
from stream.service.reload import ModelWatcher, swap_all
from stream.service.restore import read_changelog_partitions
from stream.service.scoring import score_partitions
from stream.service.serving_model import DetectorFactory, detector_factory, serving_model
from stream.service.shutdown import MIN_STEP_SECONDS, ShutdownClock, close_within, quiet_abandoned_futures
from stream.service.status_log import StatusLog
from stream.service.topics import (
    PRODUCER_BATCH_BYTES,
    check_written_topics,
    dead_letter_limit,
    ensure_changelog_topic,
    producer_batch_bytes,
)
from stream.service.tuning import freeze_startup_heap, shorten_transaction_retry, thaw_heap

logger = logging.getLogger(__name__)

# While a batch is being published, up to this many polls' worth of events (max_batch_size each) are scored and
# kept for the next transaction, which then writes one delta of their rows instead of one per poll: under a
# backlog or a slow broker transactions grow and the changelog's bytes per event fall (issue 15).
PENDING_POLLS = 4


class _RebalanceListener(ConsumerRebalanceListener):
    def __init__(self, service: Service) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.service._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.service._on_assigned(assigned)


class Service:
    """The streaming scorer as an async context manager (``start``/``stop``) with ``run()`` as its main loop."""

    def __init__(
        self,
        config: ServiceConfig,
        weights: ModelWeights | None = None,
        *,
        make_detector: DetectorFactory | None = None,
        n_features: int | None = None,
        metrics: ServiceMetrics | None = None,
        health: HealthState | None = None,
        serve_http: bool = False,
    ) -> None:
        self.metrics = metrics if metrics is not None else ServiceMetrics()
        self._factory_from_weights = make_detector is None
        self._with_envelope = False
        serving_dir = None  # the artifact version the weights and envelope were read from (a store's, resolved once)
        if make_detector is None:
            if weights is None:
                raise ServiceError("Service needs model weights or a make_detector factory")
            model = serving_model(weights, config, self.metrics)  # retried while model_dir moves under the load
            weights, serving_dir, make_detector = model.weights, model.directory, model.make_detector
            self._with_envelope = model.with_envelope
        features = n_features if n_features is not None else (weights.config.n_features if weights else None)
        if features is None:
            raise ServiceError("Service needs n_features when it is given a make_detector factory without weights")
        self.config = config
        self.weights = weights
        self.health = health if health is not None else HealthState()
        self._status = StatusLog(self.metrics, config.status_log_seconds)
        self._make_detector = make_detector
        self._decoder = EventDecoder(
            features, max_message_bytes=config.max_message_bytes, max_key_bytes=config.max_key_bytes
        )
        self._settings = PartitionSettings(
            output_topic=config.output_topic,
            dead_letter_topic=config.dead_letter_topic,
            changelog_topic=config.changelog_topic,
            publish_all=config.publish == "all",
            anomaly_threshold=config.anomaly_threshold,
            snapshot_every=config.snapshot_every,
            changelog_chunk_bytes=config.changelog_chunk_bytes,
            idle_ttl_seconds=config.idle_ttl_seconds,
            keep_events=config.archive_dir is not None,
        )
        self._watcher = (
            ModelWatcher(config.model_dir, config.model_poll_seconds, serving=serving_dir)
            if config.model_dir and weights
            else None
        )
        self._archive: EventArchive | None = None
        self._serve_http = serve_http
        self._http: MetricsServer | None = None
        self._partitions: dict[int, PartitionProcessor] = {}
        self._retained: dict[int, PartitionProcessor] = {}  # revoked, reusable if nobody advanced the partition
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._shutdown = ShutdownClock(config.shutdown_timeout_seconds)
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None  # at_least_once; exactly_once: one per partition
        self._batch_bytes = PRODUCER_BATCH_BYTES  # the producers' max_batch_size, sized to the topics at start
        self._txn_producers: PartitionProducers | None = None
        self._restorer: AIOKafkaConsumer | None = None
        self._checkpoint: Checkpointer | None = None  # the batch in flight (publish and commit)
        self._pending: dict[TopicPartition, BatchOutcome] = {}  # scored polls waiting for the batch in flight
        self._pending_since = 0.0  # when the first of them was scored
        self._pending_limit = PENDING_POLLS * config.max_batch_size  # events: past it, wait for the batch in flight
        self._fetching = False  # run() is waiting in getmany
        self._running_step: asyncio.Task[None] | None = None  # run()'s current iteration
        self._starting: asyncio.Future[None] | None = None  # start() in progress (a stop request cancels it)
        self._probe: asyncio.Task[None] | None = None
        self._log_filter: logging.Filter | None = None
        self._failure: ServiceError | None = None
        self.batches = 0

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Service:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _client_options(self) -> dict[str, Any]:
        return {"bootstrap_servers": self.config.bootstrap_servers, **self.config.security.kafka_options()}

    async def start(self) -> None:
        """Check topics, start the clients, then join the group.

        A stop request during the start (SIGTERM while aiokafka waits on a broker that does not answer, which its
        bootstrap and coordinator lookups do for up to ``request_timeout_ms`` or without end) cuts it short at once:
        ``start`` then returns, ``run()`` returns at once and ``stop()`` closes what was started, all within
        ``shutdown_timeout_seconds``. Nothing was consumed yet, so nothing is lost."""
        if self._stop.is_set():
            logger.info("stop requested before the start: not connecting")
            return
        logger.info("connecting to Kafka at %s (%s)", self.config.bootstrap_servers, self.config.security.protocol)
        self._starting = asyncio.ensure_future(self._explained_start())
        try:
            await self._starting
        except asyncio.CancelledError:
            own = asyncio.current_task()
            if not self._starting.cancelled() or (own is not None and own.cancelling()):
                await self.stop()
                raise  # start() itself is cancelled
            logger.info("stop requested while starting: the start is abandoned (nothing was consumed)")
        except BaseException:
            await self.stop()
            raise
        finally:
            self._starting = None

    async def _explained_start(self) -> None:
        try:
            async with explained_connection_errors(self.config):
                await self._start()
            freeze_startup_heap()  # imports, kernels and model stay out of every later full collection
        except (KafkaConnectError, ConfigError) as error:  # e.g. a TLS file that cannot be read
            raise ServiceError(str(error)) from error

    async def _start(self) -> None:
        c = self.config
        if self._serve_http:
            self._http = MetricsServer(self.metrics, self.health, c.metrics_host, c.metrics_port).start()
        self.health.set_ready(False, "starting")
        if self.weights is not None:
            self._show_model(self.weights)
        if c.archive_dir is not None:
            self._archive = EventArchive(
                c.archive_dir,
                max_bytes=c.archive_max_bytes,
                max_age_seconds=c.archive_max_age_seconds,
                metrics=self.metrics,
            )
        await self._check_topics()
        exactly_once = c.guarantee == "exactly_once"
        if exactly_once:
            shorten_transaction_retry()
        if exactly_once:  # producers are started per partition on assignment, before its state is restored
            self._txn_producers = PartitionProducers(self._make_producer, c.group_id, c.input_topic)
        else:
            self._producer = self._make_producer(None)
            await self._producer.start()
        self._restorer = AIOKafkaConsumer(
            **self._client_options(), group_id=None, enable_auto_commit=False, isolation_level="read_committed"
        )
        await self._restorer.start()
        self._consumer = AIOKafkaConsumer(
            **self._client_options(),
            group_id=c.group_id,
            enable_auto_commit=False,
            auto_offset_reset=c.auto_offset_reset,
            isolation_level="read_committed",
            max_partition_fetch_bytes=max(1 << 20, c.max_message_bytes),
            session_timeout_ms=c.session_timeout_ms,
            heartbeat_interval_ms=min(3000, c.session_timeout_ms // 3),
        )
        await self._consumer.start()
        self._checkpoint = Checkpointer(
            self.metrics, self._committed, txn=self._txn_producers, producer=self._producer, consumer=self._consumer
        )
        self._consumer.subscribe([c.input_topic], listener=_RebalanceListener(self))
        self._log_filter = rate_limit_aiokafka_logs()
        probe_client = getattr(self._restorer, "_client", None)  # aiokafka's client of the restore consumer
        if probe_client is not None:
            self._probe = asyncio.create_task(BrokerProbe(probe_client, self.health, c.bootstrap_servers).run())
        logger.info(
            "service started: group=%s input=%s guarantee=%s transactional ids=%s",
            c.group_id,
            c.input_topic,
            c.guarantee,
            transactional_id_for(c.group_id, c.input_topic, "*") if exactly_once else None,
        )

    def _make_producer(self, transactional_id: str | None) -> AIOKafkaProducer:
        """A producer with the service's batching settings; transactional when given an id."""
        return AIOKafkaProducer(
            **self._client_options(),
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=self._batch_bytes,
            max_request_size=max(1 << 20, 2 * self.config.changelog_chunk_bytes),
            transactional_id=transactional_id,
            transaction_timeout_ms=self.config.transaction_timeout_ms,
        )

    async def stop(self) -> None:
        """Leave the group and close every client (idempotent), within ``shutdown_timeout_seconds`` of the stop
        request: a client the broker keeps waiting is abandoned with a warning (see ``stream.service.shutdown``)."""
        self._stop.set()
        self._shutdown.start()
        quiet_abandoned_futures(asyncio.get_running_loop())
        self.health.set_ready(False, "stopping")
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(BaseException):
                await self._probe
            self._probe = None
        if self._checkpoint is not None:  # run() did not finish: the batch's outcome is unknown, abandon it
            await self._checkpoint.abandon(self._shutdown.remaining(MIN_STEP_SECONDS))
            self._checkpoint = None
        for name in ("_consumer", "_restorer", "_producer"):
            client = getattr(self, name)
            setattr(self, name, None)
            if client is None:
                continue
            what = name.strip("_")
            if not await close_within(what, client.stop(), self._shutdown.remaining(MIN_STEP_SECONDS)):
                connections = getattr(client, "_client", None)  # what aiokafka's stop skipped after its error
                if connections is not None:
                    await close_within(f"{what} connections", connections.close(), MIN_STEP_SECONDS)
        if self._txn_producers is not None:
            producers = self._txn_producers
            self._txn_producers = None
            await close_within("transactional producers", producers.close(), self._shutdown.remaining(MIN_STEP_SECONDS))
        if self._http is not None:
            self._http.stop()
            self._http = None
        if self._archive is not None:
            self._archive.close()
            self._archive = None
        self._partitions.clear()
        self._retained.clear()
        self._pending.clear()  # scored, never published: the partitions' next owner scores them again
        if self._log_filter is not None:
            remove_filter(self._log_filter)
            self._log_filter = None
        thaw_heap()
        logger.info("service stopped after %d batches", self.batches)

    def request_stop(self) -> None:
        """Ask ``run()`` to return after the batch in flight, and start the ``shutdown_timeout_seconds`` clock
        (signal-handler safe)."""
        if not self._stop.is_set():
            logger.info(
                "stop requested: the batch in flight is committed, then the service leaves the group "
                "(within shutdown_timeout_seconds=%g)",
                self.config.shutdown_timeout_seconds,
            )
        self._begin_stop()

    def _begin_stop(self) -> None:
        """Set the stop flag and start the shutdown clock; cut the running iteration short (``_cut_step``)."""
        self._shutdown.start()
        self._stop.set()
        self._cut_step()

    def _cut_step(self) -> None:
        """Cancel a start in progress at once, and the running iteration of ``run()``: at once while it waits in
        ``getmany`` (which has no bound while the group cannot be rejoined, e.g. its coordinator unreachable in a
        broker outage; nothing fetched is lost, offsets are committed only with what was processed), else at the
        shutdown deadline, when its batch is abandoned uncommitted."""
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
        step = self._running_step
        if step is None or step.done():
            return
        if self._fetching:
            step.cancel()
        else:
            asyncio.get_running_loop().call_later(self._shutdown.remaining(), _cancel_if_running, step)

    def request_reload(self) -> None:
        """Check ``model_dir`` for a new artifact before the next batch (signal-handler safe; SIGHUP)."""
        if self._watcher is None:
            logger.warning("reload requested but the service has no model_dir to reload from")
            return
        self._watcher.request()

    def _show_model(self, weights: ModelWeights) -> None:
        m = weights.config
        self.metrics.model_info.info(
            {
                "version": str(weights.metadata.get("version", "unknown")),
                "cell": m.cell,
                "hidden_size": str(m.hidden_size),
                "num_layers": str(m.num_layers),
                "n_features": str(m.n_features),
            }
        )
        self.metrics.show_stated_false_alarm(weights.metadata)

    async def _maybe_reload(self) -> None:
        """Swap in a new model artifact if one appeared; refuse (log + metric) one that is unreadable or would not
        fit the stream state, keeping the model in use."""
        watcher = self._watcher
        if watcher is None or not watcher.due():
            return
        try:
            weights = await asyncio.to_thread(watcher.load_if_changed)
        except ArtifactError as error:
            self.metrics.model_reloads.labels(result="refused").inc()
            logger.error("model reload refused, the current model goes on serving: %s", error)
            return
        if weights is None:
            return
        async with self._lock:
            detectors = [p.detector for p in (*self._partitions.values(), *self._retained.values())]
            try:
                if self.weights is not None and not self.weights.is_compatible_with(weights):
                    raise IncompatibleModelError(
                        f"{weights.config.cell} H={weights.config.hidden_size} L={weights.config.num_layers} "
                        f"F={weights.config.n_features} cannot take over the state of the model in use"
                    )
                directory = watcher.loaded_from  # the one version the weights came from: the envelope too
                factory = self._reload_factory(weights, directory)  # before any swap: a refused one keeps the model
                swap_all(detectors, weights, self.weights)  # every partition or none (rolled back on a refusal)
                self._refresh_envelopes(detectors, directory)
            except (IncompatibleModelError, ValueError, TypeError) as error:
                watcher.refused()
                self.metrics.model_reloads.labels(result="refused").inc()
                logger.error("model reload refused, the current model goes on serving: %s", error)
                return
            self.weights = weights
            if factory is not None:
                self._make_detector = factory
        self._show_model(weights)
        self.metrics.model_reloads.labels(result="loaded").inc()
        logger.info(
            "model reloaded: version %s in %d partitions, stream state kept",
            weights.metadata.get("version", "unknown"),
            len(detectors),
        )

    def _reload_factory(self, weights: ModelWeights, directory: Path | None) -> DetectorFactory | None:
        """The factory for the new weights (None when the service was given its own), keeping the envelope layout
        the running partitions have; the envelope read from ``directory``, the version the weights came from."""
        if not self._factory_from_weights:
            return None
        return detector_factory(weights, self.config, use_envelope=self._with_envelope, directory=directory)

    def _refresh_envelopes(self, detectors: list[StreamScorer], directory: Path | None) -> None:
        """Hand the new artifact's envelope (from ``directory``, the version the weights came from) to the running
        enveloped partitions (their stream state is kept)."""
        from rnncore.model.envelope_file import load_envelope
        from rnncore.stages.enveloped import EnvelopedDetector

        enveloped = [d for d in detectors if isinstance(d, EnvelopedDetector)]
        envelope = load_envelope(str(directory)) if enveloped and directory is not None else None
        for detector in enveloped:
            if envelope is not None:
                detector.replace_envelope(envelope)

    async def _check_topics(self) -> None:
        """Create the changelog if needed, check the output and dead-letter topics exist, and size dead letters to
        the dead-letter topic's limit: a missing topic is a one-line error now, not a failed transaction later."""
        admin = AIOKafkaAdminClient(**self._client_options())
        await admin.start()
        try:
            await ensure_changelog_topic(admin, self.config)
            written_limits = await check_written_topics(admin, self.config)
            limit = await dead_letter_limit(admin, self.config)
        except (TopicError, DeadLetterLimitError) as error:
            raise ServiceError(str(error)) from error
        finally:
            await admin.close()
        self._settings = dataclasses.replace(self._settings, dead_letter_max_bytes=limit)
        self._batch_bytes = producer_batch_bytes([*written_limits, limit])

    # ------------------------------------------------------------------ rebalancing
    async def _on_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        revoked = list(revoked)
        async with self._lock:
            try:  # what was scored commits before the partitions go, where this replica's producers still hold
                await self._settle()  # their ids; one whose partition another replica took over is aborted (fenced)
            except ServiceError as error:  # raised again by run(): the listener's caller would only log it
                self._failure = error
                self._begin_stop()
            dropped = []
            for tp in revoked:
                processor = self._partitions.pop(tp.partition, None)
                if processor is not None:
                    self._retained[tp.partition] = processor
                    dropped.append(tp.partition)
            if self._txn_producers is not None:  # nothing of a revoked partition is published after this
                await self._txn_producers.release(tp.partition for tp in revoked)
        for partition in dropped:
            with contextlib.suppress(KeyError):  # no lag was reported for it yet
                self.metrics.consumer_lag.remove(str(partition))
        self.metrics.rebalances.labels(kind="revoked").inc()
        self.metrics.assigned_partitions.set(len(self._partitions))
        self.health.set_ready(False, "rebalancing")
        logger.info("partitions revoked: %s", dropped)

    async def _on_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        assigned = list(assigned)
        self.health.set_ready(False, f"restoring the state of partitions {sorted(tp.partition for tp in assigned)}")
        async with self._lock:
            try:
                await self._fence(assigned)
                to_restore = []
                for tp in assigned:
                    owned = tp.topic != self.config.input_topic or tp.partition in self._partitions
                    if not owned and not await self._keep_retained(tp):
                        to_restore.append(tp)
                self._retained.clear()
                await self._restore_partitions(to_restore)
            except Exception as error:  # raised again by run(): the listener's caller would only log it (and hang)
                failure = (
                    error
                    if isinstance(error, ServiceError)
                    else ServiceError(
                        f"restoring partitions {[tp.partition for tp in to_restore]} failed "
                        f"({type(error).__name__}: {error}); fix the cause and restart"
                    )
                )
                logger.error("%s", failure)
                self.health.set_failed(str(failure))
                self._failure = failure
                self._begin_stop()
                return
        self.metrics.rebalances.labels(kind="assigned").inc()
        self.metrics.assigned_partitions.set(len(self._partitions))
        self.health.set_ready(True)
        logger.info("partitions assigned: %s", sorted(self._partitions))

    async def _fence(self, assigned: Iterable[TopicPartition]) -> None:
        """Start the assigned partitions' transactional producers (exactly-once), fencing their previous owners:
        must come before the committed offsets and the changelog are read."""
        if self._txn_producers is None:
            return
        partitions = [tp.partition for tp in assigned if tp.topic == self.config.input_topic]
        try:
            await self._txn_producers.acquire(partitions)
        except Exception as error:
            ids = transactional_id_for(self.config.group_id, self.config.input_topic, "*")
            raise ServiceError(
                f"cannot start the transactional producers of partitions {sorted(partitions)} "
                f"({type(error).__name__}: {error}); check the broker and the ACLs of the "
                f"transactional ids {ids}"
            ) from error

    async def _keep_retained(self, tp: TopicPartition) -> bool:
        """Reuse the state held before the rebalance if nobody processed the partition since (same offset)."""
        assert self._consumer is not None
        retained = self._retained.pop(tp.partition, None)
        if retained is None or retained.next_offset < 0:
            return False
        committed = await self._consumer.committed(tp)
        if committed != retained.next_offset:
            return False
        self._partitions[tp.partition] = retained
        self._consumer.seek(tp, committed)  # the consumer's own committed point may predate the fencing
        logger.info("kept partition=%d state across the rebalance (offset %d)", tp.partition, committed)
        return True

    async def _restore_partitions(self, tps: list[TopicPartition]) -> None:
        """Fresh detectors loaded from the changelog; the consumer resumes where the state left off."""
        if not tps:
            return
        assert self._consumer is not None and self._restorer is not None
        started = time.perf_counter()
        limit = self.config.restore_timeout_seconds
        try:
            async with asyncio.timeout(limit):
                changelogs = await read_changelog_partitions(
                    self._restorer, self.config.changelog_topic, [tp.partition for tp in tps]
                )
        except TimeoutError:
            raise ServiceError(
                f"reading changelog {self.config.changelog_topic!r} for partitions {[tp.partition for tp in tps]} "
                f"did not finish within restore_timeout_seconds={limit:g}; check the changelog's brokers, or raise it"
            ) from None
        for tp in tps:
            detector = self._make_detector()
            try:
                position = restore_from_records(changelogs[tp.partition], detector)
            except SnapshotError as error:
                raise ServiceError(
                    f"the state of partition {tp.partition} in changelog {self.config.changelog_topic!r} cannot be "
                    f"restored into this service's state table ({error}); was scoring_pipeline or the model's state "
                    "layout changed? Go back to the previous setting, or start fresh with a new changelog_topic "
                    "and group_id"
                ) from error
            if position.skipped:
                self.metrics.changelog_skipped.inc(position.skipped)
                logger.warning(
                    "skipped %d records of changelog %s partition %d that are not rnnwatch state records",
                    position.skipped,
                    self.config.changelog_topic,
                    tp.partition,
                )
            committed = await self._consumer.committed(tp)
            resume = max(-1 if committed is None else committed, position.next_offset)
            if resume >= 0:  # state may be ahead of the group offset (at-least-once); the consumer's own committed
                self._consumer.seek(tp, resume)  # point was read before the fencing and may be out of date
            processor = PartitionProcessor(
                tp.partition, detector, self._decoder, self._settings, self.metrics, position
            )
            processor.next_offset = resume
            self._partitions[tp.partition] = processor
            logger.info(
                "restored partition=%d streams=%d changelog_records=%d generation=%d resume_offset=%d committed=%s",
                tp.partition,
                detector.n_streams,
                len(changelogs[tp.partition]),
                position.generation,
                resume,
                committed,
            )
        seconds = time.perf_counter() - started
        self.metrics.restore_duration.observe(seconds)
        logger.info("restored %d partitions in %.3f s", len(tps), seconds)

    # ------------------------------------------------------------------ main loop
    async def run(self) -> None:
        """Consume, score and publish until ``request_stop()``; raises ``ServiceError`` on a failed publish.

        Batches are pipelined: batch k+1 is fetched and scored while batch k is being published (its
        transaction or acknowledgements and offset commit); batch k+1 is published only after k completed.
        Each iteration runs as a task that a stop request can cancel (``_cut_step``): a stop ends in
        ``shutdown_timeout_seconds`` even while aiokafka or a commit waits on an unreachable broker.
        """
        if self._stop.is_set() and self._consumer is None:
            return  # stopped before or while starting (start() was cut short): nothing to run or drain
        assert self._consumer is not None, "use `async with Service(...)` or call start() first"
        consumer = self._consumer
        try:
            while not self._stop.is_set():
                step = self._running_step = asyncio.ensure_future(self._step(consumer))
                try:
                    await step
                except asyncio.CancelledError:
                    own = asyncio.current_task()
                    if not step.cancelled() or (own is not None and own.cancelling()):
                        raise  # run() itself is cancelled
                    break  # cut short by the stop request (_cut_step)
                finally:
                    self._running_step = None
            await self._final_drain()
            if self._failure is not None:
                raise self._failure
        except ServiceError as error:
            self.health.set_failed(str(error))
            raise

    async def _step(self, consumer: AIOKafkaConsumer) -> None:
        """One iteration: a model reload if due, one ``getmany`` micro-batch, scored and handed to publishing."""
        await self._maybe_reload()
        if self._stop.is_set():
            return
        self._fetching = True
        try:
            batches = await consumer.getmany(
                timeout_ms=self.config.max_batch_wait_ms, max_records=self.config.max_batch_size
            )
        finally:
            self._fetching = False
        self.health.heartbeat()
        self._status.maybe_log()
        if batches:
            await self._process(batches)
        elif self._pending or (self._checkpoint is not None and self._checkpoint.in_flight):
            async with self._lock:
                await self._settle()

    async def _final_drain(self) -> None:
        """Commit the batch in flight and the polls scored since before stopping, within
        ``shutdown_timeout_seconds`` of the stop request: what the broker has not taken by then is abandoned
        uncommitted (Kafka never shows it; the partitions' next owner scores its events again), so a stop during a
        broker outage ends in time."""
        self._shutdown.start()
        if not self._pending and (self._checkpoint is None or not self._checkpoint.in_flight):
            return  # nothing to commit: no waiting for the lock a restore from an unreachable broker may hold
        seconds = self._shutdown.remaining()
        try:
            async with asyncio.timeout(seconds):
                async with self._lock:  # a rebalance listener restoring from an unreachable broker holds it
                    await self._settle()
        except TimeoutError:
            logger.warning(
                "the batch in flight was not committed within shutdown_timeout_seconds=%g (is the broker "
                "reachable?): abandoned uncommitted, its events are scored again by the partitions' next owner",
                self.config.shutdown_timeout_seconds,
            )

    async def _process(self, batches: dict[TopicPartition, list[Any]]) -> None:
        async with self._lock:
            started = time.perf_counter()
            work = [
                (tp, processor, messages)
                for tp, messages in batches.items()
                if messages and (processor := self._partitions.get(tp.partition)) is not None
            ]  # a partition without a processor was revoked while the batch was fetched
            outcomes = await score_partitions(work)  # lets the batch in flight's round trips go on between partitions
            if not self._pending:
                self._pending_since = started
            for tp, outcome in outcomes.items():
                earlier = self._pending.get(tp)
                self._pending[tp] = outcome if earlier is None else earlier.merged_with(outcome)
            waiting = sum(o.consumed for o in self._pending.values())
            if self._checkpoint is not None and self._checkpoint.busy and waiting < self._pending_limit:
                return  # the next poll joins these in one transaction: one delta of their rows, not one each
            await self._publish_pending()

    async def _publish_pending(self) -> None:
        """Wait for the batch in flight, then start publishing every scored poll since as one batch (its state
        records added now, of the rows as they are); call with the lock held."""
        await self._drain()  # the previous batch's publish must complete before this one starts
        pending, self._pending = self._pending, {}
        outcomes = {tp: o for tp, o in pending.items() if tp.partition in self._partitions}  # none fenced
        for tp, outcome in outcomes.items():
            self._partitions[tp.partition].finish(outcome)
        if outcomes and self._checkpoint is not None:
            self._checkpoint.start(outcomes, self._pending_since)

    async def _settle(self) -> None:
        """Publish what was scored and wait until it is committed (call with the lock held)."""
        if self._pending:
            await self._publish_pending()
        await self._drain()

    async def _drain(self) -> None:
        """Wait for the batch being published and drop the partitions it found fenced; any other failure becomes
        ``ServiceError`` (call with the lock held)."""
        if self._checkpoint is None or not self._checkpoint.in_flight:
            return
        try:
            fenced = await self._checkpoint.wait()
        except Exception as error:
            raise ServiceError(
                f"publishing a batch failed ({type(error).__name__}: {error}); "
                "stopping so that a restart resumes from the committed state"
            ) from error
        if fenced:
            await self._drop_fenced(fenced)

    async def _drop_fenced(self, partitions: set[int]) -> None:
        """Forget partitions another replica took over: their state is ahead of what was committed (never kept for
        a later assignment), their producers are fenced; the group's next rebalance tells this replica what it owns."""
        assert self._consumer is not None and self._txn_producers is not None
        for partition in sorted(partitions):
            self._partitions.pop(partition, None)
            self._retained.pop(partition, None)
            self._pending.pop(TopicPartition(self.config.input_topic, partition), None)
            tp = TopicPartition(self.config.input_topic, partition)
            if tp in self._consumer.assignment():
                self._consumer.pause(tp)  # its records would only be skipped; a new assignment resumes it
            with contextlib.suppress(KeyError):
                self.metrics.consumer_lag.remove(str(partition))
            self.metrics.rebalances.labels(kind="fenced").inc()
        await self._txn_producers.release(partitions)
        self.metrics.assigned_partitions.set(len(self._partitions))
        if any(TopicPartition(self.config.input_topic, p) in self._consumer.assignment() for p in partitions):
            self._request_rejoin()  # fenced by the transaction timeout, not a new owner: let the group reassign
        logger.warning(
            "partitions %s were fenced while this one was not heard from (frozen or cut off past session_timeout_ms: "
            "taken over by another replica, or their transaction aborted by the broker past transaction_timeout_ms="
            "%d): their last batch was aborted and they are dropped",
            sorted(partitions),
            self.config.transaction_timeout_ms,
        )

    def _request_rejoin(self) -> None:
        """Ask the group for a new assignment, so that a dropped partition the group still gives this replica is
        taken up again (with a new producer and a restore). aiokafka has no public call for it: this is the one
        its coordinator uses itself when the subscription's metadata changes."""
        coordinator = getattr(self._consumer, "_coordinator", None)
        request = getattr(coordinator, "request_rejoin", None)
        if request is None:
            logger.error(
                "cannot ask the group to rebalance (aiokafka changed); restart the replica to take up its "
                "dropped partitions again"
            )
            return
        request()

    def _committed(self, outcomes: dict[TopicPartition, BatchOutcome], seconds: float) -> None:
        """A batch was committed (its fenced partitions left out): count it, archive its events, observe it."""
        self.batches += 1
        if self.batches == 1:  # again, now that the first batch has compiled (or loaded) the kernels; no collection
            freeze_startup_heap(collect=False)  # (a full one here costs a stall of ~40 ms)
        if self._archive is not None:
            for outcome in outcomes.values():
                if outcome.events is not None:
                    self._archive.write(*outcome.events)
        self._observe(outcomes, seconds)

    def _observe(self, outcomes: dict[TopicPartition, BatchOutcome], seconds: float) -> None:
        m = self.metrics
        m.processing_latency.observe(seconds)
        for tp, outcome in outcomes.items():
            m.changelog_bytes.inc(outcome.changelog_bytes)
            if outcome.snapshot_seconds is not None:
                m.checkpoint_duration.observe(outcome.snapshot_seconds)
            assert self._consumer is not None
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                m.consumer_lag.labels(partition=str(tp.partition)).set(max(0, highwater - outcome.next_offset))
        detectors = [p.detector for p in self._partitions.values()]
        m.active_streams.set(sum(d.n_streams for d in detectors))
        m.state_bytes.set(sum(d.state_bytes for d in detectors))


def _cancel_if_running(task: asyncio.Task[None]) -> None:
    if not task.done():
        task.cancel()
