"""The wire event, parsed by one set of rules: what the service scores is what event logs and replays train on.

One event is a JSON object::

    {"key": "sensor-17", "time": 1700000000.25, "value": 3.2}
    {"key": "sensor-17", "time": "2023-11-14T22:13:20.25Z", "value": [3.2, 0.1]}

* ``key``: non-empty string (an integer is turned into text), at most ``max_key_bytes`` UTF-8 bytes; when
  absent, the Kafka message key is used.
* ``time``: seconds since the epoch (a number or numeric string) or an ISO-8601 string (no zone means UTC).
* ``value`` (alias ``values``; ``value`` wins when both are there): a number or a list of numbers, each
  finite and inside float32 range. Numeric strings are refused: a producer that quotes its numbers has a bug.

A violation raises ``EventRejectedError`` with one ``RejectReason``, the dead-letter reason and skip counter.
The service's codec, the event-log readers and topic replay all call ``parse_event``.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import numpy as np
import orjson

from rnncore.contract import EventRecord
from stream.errors import EventRejectedError

DEFAULT_MAX_KEY_BYTES = 256  # the state snapshot format's limit (rnncore.state.snapshot.MAX_KEY_BYTES)
FLOAT32_MAX = float(np.finfo(np.float32).max)


class RejectReason(StrEnum):
    """Why an event cannot be used; the value is the dead-letter header, the metrics label and the skip counter."""

    INVALID_JSON = "invalid_json"
    MISSING_FIELD = "missing_field"
    BAD_TYPE = "bad_type"
    NON_FINITE_VALUE = "non_finite_value"
    WRONG_VECTOR_LENGTH = "wrong_vector_length"
    OVERSIZED = "oversized"
    KEY_TOO_LONG = "key_too_long"
    DECODER_ERROR = "decoder_error"  # the decoder itself failed on these bytes (a bug): dead-lettered, not raised


def loads(payload: bytes | str) -> Any:
    """JSON text -> object; ``invalid_json`` (or ``non_finite_value`` for NaN/Infinity literals) on failure."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        if "depth" in str(error):  # orjson stops at 1024 levels; the stdlib would recurse into RecursionError
            raise EventRejectedError(RejectReason.INVALID_JSON, "nested deeper than 1024 levels") from None
        raw = payload.encode("utf-8", errors="replace") if isinstance(payload, str) else payload
        if "infinity" in str(error) or b"NaN" in raw or b"Infinity" in raw:
            try:  # the stdlib reads NaN / Infinity / 1e999, which orjson refuses: name the real problem
                json.loads(raw)
            except (ValueError, RecursionError):  # RecursionError is not a ValueError
                pass
            else:
                raise EventRejectedError(RejectReason.NON_FINITE_VALUE, "NaN or infinity in the message") from None
        raise EventRejectedError(RejectReason.INVALID_JSON, str(error)[:120]) from None


def parse_time(raw: Any) -> float:
    """Event time as float seconds since the epoch from a number or a numeric / ISO-8601 string."""
    if isinstance(raw, bool) or raw is None:
        raise EventRejectedError(RejectReason.BAD_TYPE, f"time must be a number or ISO-8601 string, got {raw!r}")
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(raw.strip().replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                raise EventRejectedError(RejectReason.BAD_TYPE, f"time {raw[:64]!r} is not ISO-8601") from None
            value = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    else:
        raise EventRejectedError(RejectReason.BAD_TYPE, f"time must be a number or string, got {type(raw).__name__}")
    if not math.isfinite(value):
        raise EventRejectedError(RejectReason.NON_FINITE_VALUE, f"time {raw!r} is not finite")
    return value


def checked_value(value: float, raw: Any) -> float:
    """``value`` if it is finite and inside float32 range (what the kernels store), else ``non_finite_value``."""
    if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
        raise EventRejectedError(RejectReason.NON_FINITE_VALUE, f"value {raw!r} is not a finite float32")
    return value


def parse_values(raw: Any, n_features: int | None = None) -> tuple[float, ...]:
    """A number or a list of numbers -> floats; exactly ``n_features`` of them when it is given."""
    items = raw if isinstance(raw, list) else [raw]
    out: list[float] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise EventRejectedError(RejectReason.BAD_TYPE, f"value items must be numbers, got {type(item).__name__}")
        out.append(checked_value(float(item), item))
    if not out or (n_features is not None and len(out) != n_features):
        needs = f"the model needs {n_features}" if n_features is not None else "at least one is needed"
        raise EventRejectedError(RejectReason.WRONG_VECTOR_LENGTH, f"{len(out)} values, {needs}")
    return tuple(out)


def parse_key(raw: Any, max_key_bytes: int = DEFAULT_MAX_KEY_BYTES) -> str:
    """A non-empty stream key of at most ``max_key_bytes`` UTF-8 bytes; integers are turned into their text."""
    if isinstance(raw, bool) or not isinstance(raw, str | int) or raw == "":
        raise EventRejectedError(RejectReason.BAD_TYPE, f"key must be a non-empty string, got {raw!r}"[:120])
    key = str(raw)
    if len(key) > max_key_bytes or len(key.encode("utf-8", errors="surrogatepass")) > max_key_bytes:
        raise EventRejectedError(RejectReason.KEY_TOO_LONG, f"key longer than {max_key_bytes} UTF-8 bytes")
    return key


def parse_event(
    obj: Any,
    message_key: bytes | None = None,
    *,
    n_features: int | None = None,
    max_key_bytes: int = DEFAULT_MAX_KEY_BYTES,
) -> EventRecord:
    """A decoded JSON event -> record; the Kafka ``message_key`` stands in for a missing ``key``."""
    if not isinstance(obj, dict):
        raise EventRejectedError(RejectReason.BAD_TYPE, f"event must be a JSON object, got {type(obj).__name__}")
    raw_key = obj.get("key")
    if raw_key is None and message_key is not None:
        raw_key = message_key.decode("utf-8", errors="replace")
    raw_values = obj["value"] if "value" in obj else obj.get("values")
    raw_time = obj.get("time")
    if raw_key is None or raw_time is None or raw_values is None:
        fields = (("key", raw_key), ("time", raw_time), ("value", raw_values))
        missing = ", ".join(name for name, raw in fields if raw is None)
        raise EventRejectedError(RejectReason.MISSING_FIELD, f"missing {missing}")
    key = parse_key(raw_key, max_key_bytes)
    return EventRecord(key, parse_time(raw_time), parse_values(raw_values, n_features))
