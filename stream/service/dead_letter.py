"""Dead letters that always fit in the dead-letter topic, whatever the size of the message they carry.

A dead letter is the original key and value plus headers (reason, detail, source). An input message close to
the broker's limit (``max.message.bytes``, about 1 MiB by default) was accepted, but with the headers added its
dead letter is not: the broker answers MessageSizeTooLargeError and the batch's transaction fails, on every
restart. ``fit_dead_letter`` cuts the value (and, if even that is not enough, the key) so the record batch
holding the dead letter stays under the limit, and says so in headers: ``rnnwatch-truncated: true``, the
original value and key sizes, and the original partition and offset as separate headers (also in
``rnnwatch-source``), so the full message can still be fetched from the input topic while it is retained.
"""

from __future__ import annotations

from collections.abc import Sequence

from stream.errors import DeadLetterLimitError

TRUNCATED_HEADER = "rnnwatch-truncated"
ORIGINAL_SIZE_HEADER = "rnnwatch-original-size"  # bytes of the original value
ORIGINAL_KEY_SIZE_HEADER = "rnnwatch-original-key-size"
ORIGINAL_PARTITION_HEADER = "rnnwatch-original-partition"
ORIGINAL_OFFSET_HEADER = "rnnwatch-original-offset"

# Kafka's v2 record batch header (61 bytes) plus the worst case of a record's own varints (attributes,
# timestamp delta, offset delta, length, key and value lengths, header count: 21 bytes), as aiokafka's
# DefaultRecordBatchBuilder.estimate_size_in_bytes counts them.
BATCH_OVERHEAD_BYTES = 61 + 21
_VARINT_MAX_BYTES = 5
# The broker's default message.max.bytes: the limit assumed when the topic's own cannot be read.
DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
MIN_DEAD_LETTER_BYTES = 4096  # room for the headers and a useful prefix of the value

Headers = list[tuple[str, bytes]]


def record_bytes(key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> int:
    """An upper bound on the bytes of a record batch holding just this record (no compression)."""
    size = BATCH_OVERHEAD_BYTES + len(key or b"") + len(value or b"")
    for name, header_value in headers:
        size += 2 * _VARINT_MAX_BYTES + len(name.encode()) + len(header_value)
    return size


def fit_dead_letter(
    key: bytes | None, value: bytes | None, headers: Headers, partition: int, offset: int, *, max_bytes: int
) -> tuple[bytes | None, bytes | None, Headers]:
    """The dead letter's (key, value, headers), cut to fit a record batch of ``max_bytes``.

    Unchanged when it fits. Otherwise the value is cut to a prefix, then the key if needed, and the truncation
    headers are added. Raises ``DeadLetterLimitError`` when ``max_bytes`` cannot hold the headers themselves.
    """
    if record_bytes(key, value, headers) <= max_bytes:
        return key, value, headers
    marked = [
        *headers,
        (TRUNCATED_HEADER, b"true"),
        (ORIGINAL_SIZE_HEADER, str(len(value or b"")).encode()),
        (ORIGINAL_KEY_SIZE_HEADER, str(len(key or b"")).encode()),
        (ORIGINAL_PARTITION_HEADER, str(partition).encode()),
        (ORIGINAL_OFFSET_HEADER, str(offset).encode()),
    ]
    room = max_bytes - record_bytes(None, None, marked)
    if room < 0:
        raise DeadLetterLimitError(
            f"a dead letter's headers alone take {record_bytes(None, None, marked)} bytes, more than the "
            f"dead-letter topic's limit of {max_bytes} bytes; raise the topic's max.message.bytes"
        )
    key_bytes = key or b""
    if len(key_bytes) > room:  # a key this large leaves no room for any value
        return key_bytes[:room], b"" if value is not None else None, marked
    value_room = room - len(key_bytes)
    return key, (value or b"")[:value_room] if value is not None else None, marked


def dead_letter_budget(topic_max_message_bytes: int | None) -> int:
    """The record batch budget of one dead letter: the topic's ``max.message.bytes``, or the broker default."""
    limit = DEFAULT_MAX_MESSAGE_BYTES if topic_max_message_bytes is None else topic_max_message_bytes
    if limit < MIN_DEAD_LETTER_BYTES:
        raise DeadLetterLimitError(
            f"the dead-letter topic allows records of only {limit} bytes (max.message.bytes); rnnwatch needs at "
            f"least {MIN_DEAD_LETTER_BYTES} to write a dead letter with its headers: raise it"
        )
    return limit
