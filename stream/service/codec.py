"""Wire formats of the service: input events in, score records and dead letters out.

Input event: one JSON object per Kafka message value (UTF-8), by the wire rules of ``stream.data.wire``
(the same rules the event-log readers and topic replay apply)::

    {"key": "sensor-17", "time": 1700000000.25, "value": 3.2}

A message that cannot be used is not scored; it gets one dead-letter reason (``RejectReason``):
``oversized`` (more than ``max_message_bytes``), ``invalid_json``, ``missing_field``, ``bad_type``,
``non_finite_value`` (NaN, infinity, or outside float32 range), ``wrong_vector_length``,
``key_too_long``, and ``decoder_error`` for a failure of the decoder itself (a bug, never a crash).
Events the detector rejects are dead-lettered under its own reasons (``stream_table_full``, ``invalid_key``).

Score record (Kafka key = stream key)::

    {"key", "time", "score", "rarity", "anomaly", "nll", "mean", "scale", "model_version", "partition", "offset"}

``rarity`` is ``-log10(1 - score)`` computed before the score's float32 rounding (``StepResult.rarity``), cut
down to 4 decimals: unbounded, so alarms above the threshold keep their order where ``score`` reads 1;
``score >= 0.99`` when ``rarity >= 2`` (up to the score's float32 rounding).
``mean``/``scale`` are the forecast of the stream's next value (a number for one feature, else a list);
``nll`` is null for a stream's first event; ``partition``/``offset`` locate the input message. A multi-feature
stream's record also has ``contributions`` after ``scale``: one share per feature of what drives the score
(summing to 1; nulls before the stream's envelope is frozen); a single-feature record has no such field.
A dead letter is the original message bytes and key, with headers ``rnnwatch-reason`` (the reason),
``rnnwatch-detail`` and ``rnnwatch-source`` (``topic/partition/offset``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from rnncore.contract import rarity_of
from stream.data.wire import DEFAULT_MAX_KEY_BYTES, FLOAT32_MAX, RejectReason, loads, parse_event
from stream.errors import CodecError, EventRejectedError

REASON_HEADER = "rnnwatch-reason"
DETAIL_HEADER = "rnnwatch-detail"
SOURCE_HEADER = "rnnwatch-source"
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
_NUMBER = (int, float)  # exact types: bool is not a number here


@dataclass(frozen=True)
class Rejected:
    """One message that was not decoded: its position in the batch, the reason and a short detail."""

    index: int
    reason: str
    detail: str


@dataclass
class DecodedBatch:
    """Columnar events of one micro-batch: ``keys[i]``, ``times[i]``, ``values[i]`` came from message ``index[i]``."""

    keys: list[str]
    times: np.ndarray  # float64 [n]
    values: np.ndarray  # float32 [n, F]
    index: np.ndarray  # int64 [n], positions in the input batch
    rejected: list[Rejected] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.keys)


class EventDecoder:
    """Decodes a micro-batch of JSON event payloads into columnar arrays plus per-message rejections."""

    def __init__(
        self,
        n_features: int,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_key_bytes: int = DEFAULT_MAX_KEY_BYTES,
    ) -> None:
        if n_features < 1 or max_message_bytes < 1 or max_key_bytes < 1:
            raise CodecError(
                f"n_features, max_message_bytes and max_key_bytes must be >= 1, got "
                f"{n_features}, {max_message_bytes}, {max_key_bytes}"
            )
        self.n_features = n_features
        self.max_message_bytes = max_message_bytes
        self.max_key_bytes = max_key_bytes

    def _decode_one(self, payload: bytes | None, message_key: bytes | None) -> tuple[str, float, list[float]]:
        """One message -> (key, time, values) by the wire rules; raises ``EventRejectedError`` with the reason."""
        if payload is None:
            raise EventRejectedError(RejectReason.MISSING_FIELD, "message has no value")
        if len(payload) > self.max_message_bytes:
            raise EventRejectedError(RejectReason.OVERSIZED, f"{len(payload)} bytes > {self.max_message_bytes}")
        record = parse_event(loads(payload), message_key, n_features=self.n_features, max_key_bytes=self.max_key_bytes)
        return record.key, record.time, list(record.values)

    def decode_batch(
        self, payloads: Sequence[bytes | None], message_keys: Sequence[bytes | None] | None = None
    ) -> DecodedBatch:
        """Decode every payload; good ones become columns (in message order), bad ones a ``Rejected`` with the reason.

        Fast path: messages of the common shape (a JSON object with a string key, a numeric time and F numeric
        values) are checked column-wise with numpy; everything else, and anything the column checks reject,
        goes through ``_decode_one``, which names the exact reason.
        """
        n_features = self.n_features
        fast_index, fast_keys, fast_times, fast_values = self._fast_candidates(payloads, n_features)
        times = np.asarray(fast_times, dtype=np.float64)
        values = np.asarray(fast_values, dtype=np.float64).reshape(len(fast_keys), n_features)
        ok = np.isfinite(times) & np.all(np.isfinite(values) & (np.abs(values) <= FLOAT32_MAX), axis=1)
        fast_set = set(fast_index)
        if not ok.all():
            fast_set.difference_update(np.asarray(fast_index, dtype=np.int64)[~ok].tolist())
        if len(fast_set) == len(payloads):  # every message took the fast path
            return DecodedBatch(
                keys=fast_keys,
                times=times,
                values=values.astype(np.float32),
                index=np.arange(len(payloads), dtype=np.int64),
            )
        return self._merge_with_slow_path(payloads, message_keys, fast_index, fast_keys, times, values, ok)

    def _fast_candidates(
        self, payloads: Sequence[bytes | None], n_features: int
    ) -> tuple[list[int], list[str], list[Any], list[Any]]:
        """Messages whose parsed shape needs no per-field checks beyond the column-wise finite/range test."""
        max_bytes, max_key_chars = self.max_message_bytes, self.max_key_bytes // 4  # <= 4 UTF-8 bytes a char
        loads, decode_error = orjson.loads, orjson.JSONDecodeError
        index: list[int] = []
        keys: list[str] = []
        times: list[Any] = []
        values: list[Any] = []
        for i, payload in enumerate(payloads):
            if payload is None or len(payload) > max_bytes:
                continue
            try:
                obj = loads(payload)
            except decode_error:
                continue
            if type(obj) is not dict:
                continue
            key, event_time = obj.get("key"), obj.get("time")
            value = obj["value"] if "value" in obj else obj.get("values")
            if type(key) is not str or not 0 < len(key) <= max_key_chars or type(event_time) not in _NUMBER:
                continue
            if type(value) is list:
                if len(value) != n_features or not all(type(v) in _NUMBER for v in value):
                    continue
                values.append(value[0] if n_features == 1 else value)
            elif n_features == 1 and type(value) in _NUMBER:
                values.append(value)
            else:
                continue
            index.append(i)
            keys.append(key)
            times.append(event_time)
        return index, keys, times, values

    def _merge_with_slow_path(
        self,
        payloads: Sequence[bytes | None],
        message_keys: Sequence[bytes | None] | None,
        fast_index: list[int],
        fast_keys: list[str],
        fast_times: np.ndarray,
        fast_values: np.ndarray,
        fast_ok: np.ndarray,
    ) -> DecodedBatch:
        """Decode the messages the fast path left out one by one, and merge both in message order."""
        by_index = {
            i: (fast_keys[j], float(fast_times[j]), fast_values[j].tolist())
            for j, i in enumerate(fast_index)
            if fast_ok[j]
        }
        keys: list[str] = []
        times: list[float] = []
        values: list[list[float]] = []
        index: list[int] = []
        rejected: list[Rejected] = []
        for i, payload in enumerate(payloads):
            decoded = by_index.get(i)
            if decoded is None:
                try:
                    decoded = self._decode_one(payload, message_keys[i] if message_keys else None)
                except EventRejectedError as reject:
                    rejected.append(Rejected(i, reject.reason, reject.detail))
                    continue
                except Exception as error:  # last resort: no message's bytes may stop the service
                    rejected.append(Rejected(i, RejectReason.DECODER_ERROR.value, repr(error)[:120]))
                    continue
            keys.append(decoded[0])
            times.append(decoded[1])
            values.append(decoded[2])
            index.append(i)
        return DecodedBatch(
            keys=keys,
            times=np.asarray(times, dtype=np.float64),
            values=np.asarray(values, dtype=np.float32).reshape(len(keys), self.n_features),
            index=np.asarray(index, dtype=np.int64),
            rejected=rejected,
        )


def encode_scores(
    *,
    keys: Sequence[str],
    times: np.ndarray,
    scores: np.ndarray,
    anomalies: np.ndarray,
    nll: np.ndarray,
    mean: np.ndarray,
    scale: np.ndarray,
    model_version: str | None,
    partition: int,
    offsets: Sequence[int],
    only: np.ndarray | None = None,
    contributions: np.ndarray | None = None,
    rarity: np.ndarray | None = None,
) -> list[bytes | None]:
    """A batch's score records as JSON bytes (see the module docstring); NaN and infinity become null.

    Columns in, one record per event out (None where ``only`` is given and false). ``mean``/``scale`` are [n] or
    [n, F] (lists for F > 1); ``contributions`` [n, F] is written for F > 1 only (``StepResult.contributions``);
    ``rarity`` [n] (None: derived from ``scores``, :meth:`StepResult.rarities`).
    For one feature the numeric columns are serialised whole by ``orjson`` and split at their commas (numbers,
    booleans and nulls hold none), then each record is one bytes formatting of its cells: 3x cheaper than a dict
    and an ``orjson.dumps`` per event, byte for byte the same output.
    """
    n = len(keys)
    if n == 0:
        return []
    if rarity is None:
        rarity = rarity_of(np.asarray(scores))
    column_mean, column_scale = mean.reshape(n, -1), scale.reshape(n, -1)
    if column_mean.shape[1] != 1 or column_scale.shape[1] != 1:
        return _encode_scores_per_event(
            keys,
            times,
            scores,
            rarity,
            anomalies,
            nll,
            _per_event(mean, n),
            _per_event(scale, n),
            model_version,
            partition,
            offsets,
            only,
            None if contributions is None else contributions.reshape(n, -1).tolist(),
        )
    dumps = orjson.dumps
    columns = [
        dumps(column)[1:-1].split(b",")
        for column in (
            times.tolist(),
            scores.tolist(),
            _rounded(rarity),
            anomalies.tolist(),
            nll.tolist(),
            column_mean[:, 0].tolist(),
            column_scale[:, 0].tolist(),
            list(offsets),
        )
    ]
    if any(len(column) != n for column in columns):  # offsets of the wrong length, or a non-scalar cell
        raise CodecError(f"score columns must all have {n} entries, got {[len(c) for c in columns]}")
    constant = b',"model_version":' + dumps(model_version) + b',"partition":' + dumps(partition) + b',"offset":'
    template = (
        b'{"key":%b,"time":%b,"score":%b,"rarity":%b,"anomaly":%b,"nll":%b,"mean":%b,"scale":%b'
        + constant.replace(b"%", b"%%")
        + b"%b}"
    )
    rows = zip(_json_strings(keys), *columns, strict=True)
    if only is None:
        return [template % row for row in rows]
    return [template % row if want else None for row, want in zip(rows, only.tolist(), strict=True)]


def _json_strings(texts: Sequence[str]) -> list[bytes]:
    """Each text as a JSON string: one ``orjson.dumps`` of the list, split at its commas when no text holds one.

    (An ``orjson.dumps`` per key allocates a large buffer each time: in a busy heap it cost ~1.7 µs, not 50 ns.)"""
    whole = orjson.dumps(list(texts))
    if whole.count(b",") == len(texts) - 1:  # every comma separates two elements
        return whole[1:-1].split(b",")
    return [orjson.dumps(text) for text in texts]


def _encode_scores_per_event(
    keys: Sequence[str],
    times: np.ndarray,
    scores: np.ndarray,
    rarity: np.ndarray,
    anomalies: np.ndarray,
    nll: np.ndarray,
    means: list[Any],
    scales: list[Any],
    model_version: str | None,
    partition: int,
    offsets: Sequence[int],
    only: np.ndarray | None,
    contributions: list[Any] | None = None,
) -> list[bytes | None]:
    """``encode_scores`` for vector forecasts: a dict and an ``orjson.dumps`` per event (``contributions`` after
    ``scale`` when given)."""
    wanted = [True] * len(keys) if only is None else only.tolist()
    dumps = orjson.dumps
    shares: list[Any] = [None] * len(keys) if contributions is None else contributions
    records: list[bytes | None] = []
    for key, t, sc, ra, an, nl, mu, sg, share, off, want in zip(
        keys,
        times.tolist(),
        scores.tolist(),
        _rounded(rarity),
        anomalies.tolist(),
        nll.tolist(),
        means,
        scales,
        shares,
        offsets,
        wanted,
        strict=True,
    ):
        if not want:
            records.append(None)
            continue
        head = {"key": key, "time": t, "score": sc, "rarity": ra, "anomaly": an, "nll": nl, "mean": mu, "scale": sg}
        tail = {"model_version": model_version, "partition": partition, "offset": off}
        records.append(dumps(head | tail if contributions is None else head | {"contributions": share} | tail))
    return records


def encode_score(
    *,
    key: str,
    time: float,
    score: float,
    anomaly: bool,
    nll: float,
    mean: float | list[float],
    scale: float | list[float],
    model_version: str | None,
    partition: int,
    offset: int,
    rarity: float | None = None,
) -> bytes:
    """One score record (the single-event form of ``encode_scores``, for tools and tests; ``rarity`` None: from
    ``score``)."""
    mean_column = np.asarray([mean], dtype=np.float64)
    scale_column = np.asarray([scale], dtype=np.float64)
    [record] = encode_scores(
        keys=[key],
        times=np.asarray([time]),
        scores=np.asarray([score]),
        anomalies=np.asarray([anomaly]),
        nll=np.asarray([nll]),
        mean=mean_column,
        scale=scale_column,
        model_version=model_version,
        partition=partition,
        offsets=[offset],
        rarity=None if rarity is None else np.asarray([rarity], dtype=np.float64),
    )
    assert record is not None
    return record


def _rounded(rarity: np.ndarray) -> list[float]:
    """The rarity cut down to 4 decimals (enough to order alarms; fewer bytes; down, so a rarity just below the
    threshold's, e.g. 1.99997, is not written as 2), values beyond 1e12 as they are."""
    with np.errstate(invalid="ignore"):
        small = np.abs(rarity) < 1e12
    return np.where(small, np.floor(np.where(small, rarity, 0.0) * 1e4) / 1e4, rarity).tolist()


def _per_event(column: np.ndarray, n: int) -> list[Any]:
    """A forecast column as one number per event for one feature, else one list per event."""
    column = column.reshape(n, -1)
    return column[:, 0].tolist() if column.shape[1] == 1 else column.tolist()


def decode_score(payload: bytes) -> dict[str, Any]:
    """Parse a score record back (for tests, tools and downstream consumers written in Python)."""
    record: dict[str, Any] = orjson.loads(payload)
    return record


def dead_letter_headers(reason: str, detail: str, topic: str, partition: int, offset: int) -> list[tuple[str, bytes]]:
    """Kafka headers of a dead letter: reason, detail and where the original message came from."""
    return [
        (REASON_HEADER, reason.encode()),
        (DETAIL_HEADER, detail[:200].encode("utf-8", errors="replace")),
        (SOURCE_HEADER, f"{topic}/{partition}/{offset}".encode()),
    ]


def header_value(headers: Sequence[tuple[str, bytes]], name: str) -> str | None:
    """The first header called ``name`` as text, or None (for reading dead letters back)."""
    for header_name, value in headers:
        if header_name == name:
            return value.decode("utf-8", errors="replace")
    return None
