"""One input partition's processing: decode a micro-batch, step its detector, build every record to publish.

Pure with respect to Kafka: it returns the score records, dead letters and changelog records of a batch and
the next input offset; the service sends them (in one transaction in exactly-once mode).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, cast

import numpy as np

from rnncore.contract import StreamScorer, status_reason
from stream.service.changelog import ChangelogPosition, ChangelogWriter
from stream.service.codec import DecodedBatch, EventDecoder, dead_letter_headers, encode_scores
from stream.service.dead_letter import DEFAULT_MAX_MESSAGE_BYTES, fit_dead_letter
from stream.service.metrics import ServiceMetrics
from stream.service.watermark import EventTimeWatermark


class MessageLike(Protocol):
    """The fields of an aiokafka ``ConsumerRecord`` used here."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int  # ms since the epoch: the producer's CreateTime or the broker's LogAppendTime


class OutRecord(NamedTuple):
    """A record to send: topic, key, value (None = tombstone), headers, and a partition when it is fixed.

    A named tuple: one is made per scored event, and a tuple costs a third of a dataclass to build."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()
    partition: int | None = None


class ScoreRecords(NamedTuple):
    """A batch's score records as columns (one key and one value per record), all for one topic.

    Kept apart from ``OutRecord``s: building one object per scored event costs more than encoding it."""

    topic: str
    keys: list[bytes]
    values: list[bytes]


@dataclass
class BatchOutcome:
    """Everything one partition batch produced, and the input offset to commit."""

    dead_letters: list[OutRecord]  # messages not scored, each with its reason
    next_offset: int
    changelog: list[OutRecord] = field(default_factory=list)  # this batch's state: snapshot chunks or a delta
    scores: ScoreRecords | None = None
    consumed: int = 0
    scored: int = 0
    dead_lettered: int = 0
    changelog_bytes: int = 0
    snapshot_seconds: float | None = None
    events: tuple[list[str], np.ndarray, np.ndarray] | None = None  # scored (keys, times, values), if kept
    touched: list[str] = field(default_factory=list)  # streams scored, until ``finish`` writes their delta

    def merged_with(self, later: BatchOutcome) -> BatchOutcome:
        """This outcome followed by ``later``'s (the next poll of the same partition), both not yet finished:
        one transaction publishes both, its offset the later one's."""
        scores = self.scores
        if later.scores is not None:
            scores = (
                later.scores
                if scores is None
                else ScoreRecords(scores.topic, scores.keys + later.scores.keys, scores.values + later.scores.values)
            )
        events = self.events
        if later.events is not None:
            events = (
                later.events
                if events is None
                else (
                    events[0] + later.events[0],
                    np.concatenate([events[1], later.events[1]]),
                    np.concatenate([events[2], later.events[2]]),
                )
            )
        return BatchOutcome(
            dead_letters=self.dead_letters + later.dead_letters, next_offset=later.next_offset, scores=scores,
            consumed=self.consumed + later.consumed, scored=self.scored + later.scored,
            dead_lettered=self.dead_lettered + later.dead_lettered, events=events,
            touched=self.touched + later.touched,
        )  # fmt: skip

    def all_records(self) -> list[OutRecord]:
        """Every record as an ``OutRecord``, score records last (for tests and tools; the service sends columns)."""
        scores = self.scores
        extra = (
            []
            if scores is None
            else [OutRecord(scores.topic, k, v) for k, v in zip(scores.keys, scores.values, strict=True)]
        )
        return [*self.dead_letters, *self.changelog, *extra]


@dataclass(frozen=True, kw_only=True)
class PartitionSettings:
    """Topics and policies one partition processor needs (a subset of ServiceConfig)."""

    output_topic: str
    dead_letter_topic: str
    changelog_topic: str
    publish_all: bool
    anomaly_threshold: float
    snapshot_every: int
    changelog_chunk_bytes: int
    idle_ttl_seconds: float | None
    keep_events: bool = False  # hand the scored events to the caller (for the event archive)
    dead_letter_max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES  # the dead-letter topic's max.message.bytes


class PartitionProcessor:
    """Detector, decoder and changelog writer of one input partition."""

    def __init__(
        self,
        partition: int,
        detector: StreamScorer,
        decoder: EventDecoder,
        settings: PartitionSettings,
        metrics: ServiceMetrics,
        position: ChangelogPosition | None = None,
    ) -> None:
        self.partition = partition
        self.detector = detector
        self.decoder = decoder
        self.settings = settings
        self.metrics = metrics
        self.writer = ChangelogWriter(
            snapshot_every=settings.snapshot_every,
            chunk_bytes=settings.changelog_chunk_bytes,
            row_bytes=detector.table.row_nbytes,
            position=position or ChangelogPosition(),
        )
        self.next_offset = self.writer.position.next_offset  # -1 until known
        self.watermark = EventTimeWatermark()  # event time idle streams are measured against (idle_ttl_seconds)
        envelope = getattr(detector, "envelope", None)  # the enveloped Detector's (rnncore.scorer): export its meaning
        if envelope is not None:
            params = envelope.params
            metrics.false_alarm_target.labels(threshold=f"{params.alarm_score:g}").set(params.false_alarm)

    def process(self, messages: Sequence[MessageLike], *, finish: bool = True) -> BatchOutcome:
        """Score one batch (messages in offset order); messages below ``next_offset`` were seen and are skipped.

        ``finish=False`` leaves the changelog records out (``finish`` adds them): the caller may merge the
        outcome with the next poll's first (``BatchOutcome.merged_with``), so that one delta covers both."""
        if self.next_offset >= 0 and messages and messages[0].offset < self.next_offset:
            messages = [m for m in messages if m.offset >= self.next_offset]
        if not messages:
            return BatchOutcome(dead_letters=[], next_offset=self.next_offset)
        s = self.settings
        batch = self.decoder.decode_batch([m.value for m in messages], [m.key for m in messages])
        dead_letters: list[OutRecord] = []
        dead = 0
        for rejected in batch.rejected:
            dead_letters.append(self._dead_letter(messages[rejected.index], rejected.reason, rejected.detail))
            dead += 1
        scored = 0
        touched: list[str] = []
        events = None
        scores = None
        if len(batch):
            result = self.detector.step(batch.keys, batch.times, batch.values)
            anomalous = result.scores >= s.anomaly_threshold
            status = result.status
            now = time.time()
            if len(batch) == len(messages):  # every message decoded: batch.index is 0..n-1
                offsets = [m.offset for m in messages]
            else:
                offsets = [messages[i].offset for i in batch.index.tolist()]
            ok = status == 0
            all_ok = bool(ok.all())
            wanted = (None if all_ok else ok) if s.publish_all else anomalous & ok  # None: a record per event
            encoded = encode_scores(
                keys=batch.keys,
                times=batch.times,
                scores=result.scores,
                anomalies=anomalous,
                nll=result.nll,
                mean=result.mean,
                scale=result.scale,
                model_version=self.detector.model_version,
                partition=self.partition,
                offsets=offsets,
                only=wanted,
                contributions=result.contributions,
                rarity=result.rarity,
            )
            if all_ok:  # the common case: no per-event branching
                scored, touched = len(batch), batch.keys
                kept = None if wanted is None else [j for j, value in enumerate(encoded) if value is not None]
                score_keys = (
                    [key.encode() for key in batch.keys] if kept is None else [batch.keys[j].encode() for j in kept]
                )
                score_values = cast("list[bytes]", encoded if kept is None else [encoded[j] for j in kept])
            else:
                touched, score_keys, score_values = self._drop_rejected(messages, batch, status, encoded, dead_letters)
                scored = len(touched)
                dead += len(batch) - scored
            scores = ScoreRecords(s.output_topic, score_keys, score_values)
            if s.keep_events and scored:
                kept_rows = np.flatnonzero(ok)
                events = ([batch.keys[i] for i in kept_rows.tolist()], batch.times[kept_rows], batch.values[kept_rows])
            if scored:
                good_times = batch.times if all_ok else batch.times[ok]
                self.metrics.event_to_score_latency.observe_many(now - good_times)
                self.metrics.scores.observe_many(result.scores if all_ok else result.scores[ok])
                self.watermark.observe(good_times)
            self.metrics.anomalies.inc(int(np.count_nonzero(anomalous & ok)))
        stamps = np.fromiter((m.timestamp for m in messages), dtype=np.float64, count=len(messages))
        self.metrics.ingest_to_score_latency.observe_many(time.time() - stamps[stamps > 0] / 1000.0)
        next_offset = messages[-1].offset + 1
        outcome = BatchOutcome(
            dead_letters=dead_letters, next_offset=next_offset, consumed=len(messages), scored=scored,
            dead_lettered=dead, events=events, scores=scores,
        )  # fmt: skip
        outcome.touched = list(touched)
        if finish:
            self.finish(outcome)
        self.next_offset = next_offset
        self.metrics.events_consumed.inc(len(messages))
        self.metrics.events_scored.inc(scored)
        self.metrics.batch_size.observe(len(messages))
        return outcome

    def _drop_rejected(
        self,
        messages: Sequence[MessageLike],
        batch: DecodedBatch,
        status: np.ndarray,
        encoded: list[bytes | None],
        dead_letters: list[OutRecord],
    ) -> tuple[list[str], list[bytes], list[bytes]]:
        """Dead-letter the events the detector rejected (appended to ``dead_letters``); the rest's keys and records."""
        touched: list[str] = []
        score_keys: list[bytes] = []
        score_values: list[bytes] = []
        index, codes = batch.index.tolist(), status.tolist()
        for j, key in enumerate(batch.keys):
            if codes[j] != 0:
                reason = status_reason(codes[j])
                detail = f"detector rejected the event: {reason}"
                dead_letters.append(self._dead_letter(messages[index[j]], reason, detail))
                continue
            touched.append(key)
            value = encoded[j]
            if value is not None:
                score_keys.append(key.encode())
                score_values.append(value)
        return touched, score_keys, score_values

    def finish(self, outcome: BatchOutcome) -> None:
        """Add the state records of everything ``outcome`` scored (the rows as they are now, with its offset)."""
        self._changelog(outcome, list(dict.fromkeys(outcome.touched)), outcome.next_offset)
        outcome.touched = []

    def _changelog(self, outcome: BatchOutcome, touched: list[str], next_offset: int) -> None:
        """Append this batch's state records: a full snapshot when one is due, else a delta of the touched rows."""
        topic, partition = self.settings.changelog_topic, self.partition
        if self.writer.needs_snapshot():
            started = time.perf_counter()
            ttl = self.settings.idle_ttl_seconds
            watermark = self.watermark.value() if ttl is not None else -np.inf
            if ttl is not None and np.isfinite(watermark):
                self.detector.evict_idle(watermark, ttl)
            pairs: list[tuple[bytes, bytes | None]] = list(
                self.writer.snapshot(self.detector, self.detector.table.keys(), next_offset)
            )
            outcome.snapshot_seconds = time.perf_counter() - started
        elif touched:
            pairs = list(self.writer.delta(self.detector, touched, next_offset))
        else:
            return
        for key, value in pairs:
            outcome.changelog.append(OutRecord(topic, key, value, partition=partition))
            outcome.changelog_bytes += len(value or b"")

    def _dead_letter(self, message: MessageLike, reason: str, detail: str) -> OutRecord:
        self.metrics.events_dead_lettered.labels(reason=reason).inc()
        headers = dead_letter_headers(reason, detail, message.topic, message.partition, message.offset)
        key, value, headers = fit_dead_letter(
            message.key,
            message.value,
            headers,
            message.partition,
            message.offset,
            max_bytes=self.settings.dead_letter_max_bytes,
        )
        return OutRecord(self.settings.dead_letter_topic, key, value, headers)
