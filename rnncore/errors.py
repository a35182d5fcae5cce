"""Root exception of rnncore; every error the library raises on purpose derives from it."""


class RnnCoreError(Exception):
    """Base class for rnncore errors, so callers can catch the library's own failures in one place."""
