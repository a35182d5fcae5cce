"""Wire formats of the service: input events in, score records and dead letters out.

Input event (one JSON object per Kafka message value, UTF-8)::

    {"key": "sensor-17", "time": 1700000000.25, "value": 3.2}
    {"key": "sensor-17", "time": "2023-11-14T22:13:20.25Z", "value": [3.2, 0.1]}

* ``key``: non-empty string (numbers are accepted and turned into text), at most ``max_key_bytes`` UTF-8
  bytes; when absent, the Kafka message key is used.
* ``time``: event time, a number of seconds since the epoch or an ISO-8601 string (no zone means UTC).
* ``value`` (alias ``values``): a number, or a list of exactly ``n_features`` numbers.

A message that cannot be used is not scored; it gets one dead-letter reason (``DeadLetterReason``):
``oversized`` (more than ``max_message_bytes``), ``invalid_json``, ``missing_field``, ``bad_type``,
``non_finite_value`` (NaN, infinity, or outside float32 range), ``wrong_vector_length`` and
``key_too_long``. Events the detector rejects are dead-lettered under its own reasons
(``stream_table_full``, ``invalid_key``).

Score record (Kafka key = stream key)::

    {"key", "time", "score", "anomaly", "nll", "mean", "scale", "model_version", "partition", "offset"}

``mean``/``scale`` are the forecast of the stream's next value (a number for one feature, else a list);
``nll`` is null for a stream's first event; ``partition``/``offset`` locate the input message.
A dead letter is the original message bytes and key, with headers ``rnnwatch-reason`` (the reason),
``rnnwatch-detail`` and ``rnnwatch-source`` (``topic/partition/offset``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import numpy as np
import orjson

from stream.errors import StreamError

REASON_HEADER = "rnnwatch-reason"
DETAIL_HEADER = "rnnwatch-detail"
SOURCE_HEADER = "rnnwatch-source"
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
DEFAULT_MAX_KEY_BYTES = 256  # the state snapshot format's limit (rnncore.snapshot.MAX_KEY_BYTES)
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class CodecError(StreamError, ValueError):
    """A codec was configured with impossible limits (e.g. n_features < 1)."""


class DeadLetterReason(StrEnum):
    """Why a message was not scored; the value is the dead-letter header and the metrics label."""

    INVALID_JSON = "invalid_json"
    MISSING_FIELD = "missing_field"
    BAD_TYPE = "bad_type"
    NON_FINITE_VALUE = "non_finite_value"
    WRONG_VECTOR_LENGTH = "wrong_vector_length"
    OVERSIZED = "oversized"
    KEY_TOO_LONG = "key_too_long"


class _RejectError(Exception):
    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


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


def _parse_time(raw: Any) -> float:
    if isinstance(raw, bool) or raw is None:
        raise _RejectError(DeadLetterReason.BAD_TYPE, f"time must be a number or ISO-8601 string, got {raw!r}")
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(raw.strip().replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                raise _RejectError(DeadLetterReason.BAD_TYPE, f"time {raw[:64]!r} is not ISO-8601") from None
            value = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    else:
        raise _RejectError(DeadLetterReason.BAD_TYPE, f"time must be a number or string, got {type(raw).__name__}")
    if not math.isfinite(value):
        raise _RejectError(DeadLetterReason.NON_FINITE_VALUE, f"time {raw!r} is not finite")
    return value


def _parse_values(raw: Any, n_features: int) -> list[float]:
    items = raw if isinstance(raw, list) else [raw]
    out: list[float] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise _RejectError(DeadLetterReason.BAD_TYPE, f"value items must be numbers, got {type(item).__name__}")
        value = float(item)
        if not math.isfinite(value) or abs(value) > _FLOAT32_MAX:
            raise _RejectError(DeadLetterReason.NON_FINITE_VALUE, f"value {item!r} is not a finite float32")
        out.append(value)
    if len(out) != n_features:
        raise _RejectError(DeadLetterReason.WRONG_VECTOR_LENGTH, f"{len(out)} values, the model needs {n_features}")
    return out


def _loads(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        if "infinity" in str(error) or b"NaN" in payload or b"Infinity" in payload:
            try:  # the stdlib reads NaN / Infinity / 1e999, which orjson refuses: name the real problem
                json.loads(payload)
            except ValueError:
                pass
            else:
                raise _RejectError(DeadLetterReason.NON_FINITE_VALUE, "NaN or infinity in the message") from None
        raise _RejectError(DeadLetterReason.INVALID_JSON, str(error)[:120]) from None


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
        """One message -> (key, time, values); raises ``_RejectError`` with the dead-letter reason."""
        if payload is None:
            raise _RejectError(DeadLetterReason.MISSING_FIELD, "message has no value")
        if len(payload) > self.max_message_bytes:
            raise _RejectError(DeadLetterReason.OVERSIZED, f"{len(payload)} bytes > {self.max_message_bytes}")
        obj = _loads(payload)
        if not isinstance(obj, dict):
            raise _RejectError(DeadLetterReason.BAD_TYPE, f"event must be a JSON object, got {type(obj).__name__}")
        raw_key = obj.get("key")
        if raw_key is None and message_key is not None:
            raw_key = message_key.decode("utf-8", errors="replace")
        raw_values = obj["value"] if "value" in obj else obj.get("values")
        raw_time = obj.get("time")
        if raw_key is None or raw_time is None or raw_values is None:
            fields = (("key", raw_key), ("time", raw_time), ("value", raw_values))
            missing = ", ".join(name for name, raw in fields if raw is None)
            raise _RejectError(DeadLetterReason.MISSING_FIELD, f"missing {missing}")
        if isinstance(raw_key, bool) or not isinstance(raw_key, str | int) or raw_key == "":
            raise _RejectError(DeadLetterReason.BAD_TYPE, f"key must be a non-empty string, got {raw_key!r}"[:120])
        key = str(raw_key)
        if len(key) > self.max_key_bytes or len(key.encode("utf-8", errors="surrogatepass")) > self.max_key_bytes:
            raise _RejectError(DeadLetterReason.KEY_TOO_LONG, f"key longer than {self.max_key_bytes} UTF-8 bytes")
        return key, _parse_time(raw_time), _parse_values(raw_values, self.n_features)

    def decode_batch(
        self, payloads: Sequence[bytes | None], message_keys: Sequence[bytes | None] | None = None
    ) -> DecodedBatch:
        """Decode every payload; good ones become columns, bad ones a ``Rejected`` with the reason."""
        keys: list[str] = []
        times: list[float] = []
        values: list[list[float]] = []
        index: list[int] = []
        rejected: list[Rejected] = []
        for i, payload in enumerate(payloads):
            try:
                key, event_time, event_values = self._decode_one(payload, message_keys[i] if message_keys else None)
            except _RejectError as reject:
                rejected.append(Rejected(i, reject.reason.value, reject.detail))
                continue
            keys.append(key)
            times.append(event_time)
            values.append(event_values)
            index.append(i)
        return DecodedBatch(
            keys=keys,
            times=np.asarray(times, dtype=np.float64),
            values=np.asarray(values, dtype=np.float32).reshape(len(keys), self.n_features),
            index=np.asarray(index, dtype=np.int64),
            rejected=rejected,
        )


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
) -> bytes:
    """One score record as JSON bytes (see the module docstring); NaN and infinity become null.

    Takes plain Python numbers (``ndarray.tolist()`` of a batch's columns): this runs once per event.
    """
    return orjson.dumps({
        "key": key,
        "time": time,
        "score": score,
        "anomaly": anomaly,
        "nll": nll,
        "mean": mean,
        "scale": scale,
        "model_version": model_version,
        "partition": partition,
        "offset": offset,
    })


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
