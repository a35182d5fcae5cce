"""Root exception of the stream service package."""


class StreamError(Exception):
    """Base class for errors raised on purpose by the rnnwatch service and its tooling."""
