"""Every error the stream package raises on purpose, in one place: catch ``StreamError`` for all of them, or a
subclass to branch. Each docstring says when it is raised and what to do."""


class StreamError(Exception):
    """Root of the service's and its tooling's own errors: catch it to report any of them in one place."""


class ConfigError(StreamError, ValueError):
    """The service configuration is invalid; fix the field the message names, where it says the value came from."""


class CodecError(StreamError, ValueError):
    """A codec was configured with impossible limits (e.g. n_features < 1); fix the setting."""


class EventRejectedError(StreamError, ValueError):
    """One event broke a wire rule; ``reason`` names the rule (a ``RejectReason`` or a reader's own counter):
    count or dead-letter the event and go on."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = str(reason)
        self.detail = detail


class EventLogError(StreamError, ValueError):
    """An event log cannot be used (missing file, unknown format, no usable row); fix the path or the file."""


class ReplayError(StreamError):
    """A topic cannot be replayed (unknown topic or partition, broker unreachable, an inverted range)."""


class SyntheticError(StreamError, ValueError):
    """Parameters of the synthetic fleet are out of range; change the parameter the message names."""


class KafkaConnectError(StreamError):
    """Kafka could not be reached or refused the credentials; check what the message names and retry."""


class TopicError(StreamError):
    """A topic the service needs is missing or set up in a way it cannot work with; create or fix the topic."""


class PartitionFencedError(StreamError):
    """Another replica took over the input partition (its producer fenced this one); nothing of the batch is
    visible and this replica must drop the partition."""

    def __init__(self, partition: int, transactional_id: str) -> None:
        super().__init__(
            f"partition {partition} was taken over by another replica: producer {transactional_id!r} "
            "is fenced, its transaction aborted"
        )
        self.partition = partition


class DeadLetterLimitError(StreamError):
    """The dead-letter topic's size limit cannot hold even a dead letter's headers; raise the limit."""


class ChangelogError(StreamError):
    """A changelog record is corrupt or of another format; the message names the record key."""


class ServiceError(StreamError):
    """The service cannot start or continue (missing topic, failed publish); restart it once the cause is fixed."""


class ArtifactMovedError(ServiceError, ValueError):
    """The weights in hand and the artifact directory read for the envelope are different versions (a store's
    ``current`` pointer moved, or a plain directory was rewritten, between the two reads); a reload is refused and
    retried on the next change, a start loads the model again (a few times, then fails with this message)."""


class EvaluationError(StreamError, ValueError):
    """A benchmark corpus, label file or detector output is malformed; fix the file or field the message names."""


class UserDataError(StreamError, ValueError):
    """A labelled file cannot be evaluated; the message names the file and what to change."""


class ProductPathError(StreamError, RuntimeError):
    """`rnnwatch train` or `rnnwatch score` refused the logs; the message carries the CLI's own output."""


class BrokerError(StreamError):
    """The local broker could not be fetched, started or stopped; the message is broker.sh's own line."""


class DemoError(StreamError):
    """The demo cannot run (no broker, training failed, the service stopped); the message says why."""
