"""Every error rnncore raises on purpose, in one place: catch ``RnnCoreError`` for all of them, or a subclass to
branch. Each docstring says when it is raised and what to do; the message names the field, array or file."""


class RnnCoreError(Exception):
    """Root of rnncore's own errors: catch it to handle any refusal of the library in one place."""


class ConfigError(RnnCoreError, ValueError):
    """A model or stage setting is outside what rnncore supports; change the field the message names."""


class ModelError(RnnCoreError, ValueError):
    """Weights do not fit their configuration, or lack a part asked for (no attention head); retrain or re-export."""


class ArtifactError(RnnCoreError, ValueError):
    """A model artifact cannot be written or loaded; fix or replace the file the message names."""


class NonCausalModelError(ArtifactError):
    """A look-ahead (bidirectional) model reached a causal path, or a causal one the bidirectional scorer; a hot
    reload counts it as a refused artifact: deploy a forward model there."""


class ModelStoreError(ArtifactError):
    """A model directory's ``current`` pointer is broken, a version is missing or unnamed; repair the store."""


class StateError(RnnCoreError, ValueError):
    """A state table cannot be built or used as asked (bad column schema or size, a column the call needs)."""


class TableFullError(StateError):
    """An import needs more free rows than the table has; raise max_streams or evict idle streams first."""


class SnapshotError(RnnCoreError, ValueError):
    """A snapshot is corrupt, truncated, of another format or schema; restore from another one or start empty."""


class ScoringError(RnnCoreError, ValueError):
    """Scoring parameters or arrays are inconsistent; fix the field or array the message names."""


class EnvelopeError(RnnCoreError, ValueError):
    """Envelope parameters are out of range, a stream has too little normal data, or the envelope file is bad."""


class ScorerError(RnnCoreError, ValueError):
    """Weights, envelope and pipeline cannot make a scorer together (unknown pipeline, widths differ)."""


class DetectorError(RnnCoreError):
    """A detector call cannot be carried out as asked; the message says what to pass instead."""


class BatchShapeError(DetectorError, ValueError):
    """keys, times and values of a batch disagree in length, or values have the wrong feature count; reshape them."""


class IncompatibleModelError(DetectorError):
    """New weights cannot take over the running per-stream state (cell, sizes or features differ); keep the old
    model or start a new detector."""


class TrainingError(RnnCoreError, ValueError):
    """Training cannot run with these settings or events (window sizes, too few or too short streams)."""
