"""The model a service serves: its weights, the one artifact version they came from, and the scorer factory built
from that same version (weights and envelope never from two versions).

``rnnwatch serve`` loads the weights, then the service reads the envelope: a store's ``current`` pointer moved in
between (``rnnwatch train`` committing a version, ``rnnwatch model use``) or a plain directory rewritten in place
makes the two reads disagree (``ArtifactMovedError``). A reload has always been retried at the artifact's next
change; a start now retries too (``serving_model``): it loads the version the pointer names now, at most
``START_ATTEMPTS`` times with ``START_RETRY_SECONDS`` between, logging each retry and counting it in
``rnnwatch_model_reloads_total{result="start_retried"}``, and refuses only when the artifact keeps changing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rnncore.contract import StreamScorer
from rnncore.errors import ArtifactError
from rnncore.model.weights import ModelWeights
from stream.errors import ArtifactMovedError, ServiceError
from stream.service.config import ServiceConfig
from stream.service.metrics import ServiceMetrics

logger = logging.getLogger(__name__)

DetectorFactory = Callable[[], StreamScorer]

START_ATTEMPTS = 5  # loads of the artifact at start before a directory that keeps changing is refused
START_RETRY_SECONDS = 0.2  # between them: a copy tool writing the files one by one has time to finish


def artifact_dir(config: ServiceConfig) -> Path | None:
    """The artifact directory the configured ``model_dir`` means now (a store's ``current`` version resolved once),
    or None without a model_dir or with a dangling pointer (``load_artifact`` names it)."""
    if not config.model_dir:
        return None
    from rnncore.errors import ModelStoreError
    from rnncore.model.store import resolve_model_dir

    try:
        return resolve_model_dir(str(config.model_dir))
    except ModelStoreError:
        return None


def envelope_in_artifact(config: ServiceConfig, directory: Path | None = None) -> bool:
    """Whether the artifact (``directory``, default the configured one) carries an envelope the Detector path uses."""
    from rnncore.model.envelope_file import ENVELOPE_FILE

    directory = directory if directory is not None else artifact_dir(config)
    return directory is not None and config.scoring_pipeline == "detector" and (directory / ENVELOPE_FILE).is_file()


def check_same_version(weights: ModelWeights, directory: Path) -> None:
    """Refuse a directory whose model.json is not the one ``weights`` were loaded from (weights built in memory,
    without a recorded checksum, are not checked)."""
    from rnncore.model.artifact import read_metadata

    key = next((k for k in ("artifact_sha256", "weights_sha256") if k in weights.metadata), None)
    if key is None:
        return
    recorded = weights.metadata[key]  # the whole artifact's checksum (format 2), else the weights'
    try:
        there = read_metadata(directory).get(key)
    except ArtifactError as error:
        raise ArtifactMovedError(f"{directory} changed while its model was loaded ({error})") from error
    if there != recorded:
        raise ArtifactMovedError(
            f"{directory} is no longer the artifact the weights were loaded from (its model.json records another "
            f"{key}): the model directory changed between the two reads"
        )


def detector_factory(
    weights: ModelWeights, config: ServiceConfig, use_envelope: bool | None = None, directory: Path | None = None
) -> DetectorFactory:
    """Fresh scorer per partition, sized by ``max_streams_per_partition``, from :func:`rnncore.scorer.build_scorer`
    (the one place that decides what scores an event): with the ``envelope.npz`` that `rnnwatch train` writes in
    ``model_dir`` when there is one, or the ``scoring_pipeline = "seasonal"`` pipeline.

    ``directory`` is the artifact directory ``weights`` came from (default: ``model_dir`` resolved once here); the
    envelope is read from that same version, never from wherever a store's ``current`` points a moment later, and
    a directory whose model.json records other weights raises ``ArtifactMovedError``.

    The state layout no longer depends on ``envelope.npz`` (every stream without a training reference fits its
    own envelope), so the artifact's envelope is always used when it has one. ``use_envelope`` is what the service
    started with: True with an artifact lacking ``envelope.npz`` raises EnvelopeError, a ValueError, and the hot
    reload is refused (the running partitions would keep the old references while new ones had none)."""
    from rnncore.errors import EnvelopeError, ScorerError
    from rnncore.model.envelope_file import load_envelope
    from rnncore.scorer import build_scorer, check_scorer

    directory = directory if directory is not None else artifact_dir(config)
    envelope = None
    if directory is not None:
        check_same_version(weights, directory)  # with or without an envelope: the version is the one served
    if directory is not None and envelope_in_artifact(config, directory):
        try:
            envelope = load_envelope(str(directory))
        except EnvelopeError as error:
            raise ServiceError(str(error)) from error
    if use_envelope and envelope is None:
        raise EnvelopeError(
            f"{config.model_dir} has no envelope.npz but this service scores with one (its state layout): write "
            "the artifact with rnnwatch train, or restart the service to drop the envelope"
        )
    try:
        check_scorer(weights, envelope, config.scoring_pipeline)
    except ScorerError as error:
        raise ServiceError(str(error) if envelope is None else f"{config.model_dir}: {error}") from error

    def make() -> StreamScorer:
        return build_scorer(
            weights,
            envelope,
            pipeline=config.scoring_pipeline,
            max_streams=config.max_streams_per_partition,
            idle_ttl_seconds=config.idle_ttl_seconds,
            warmup_events=config.warmup_events,
            prior_warmup_events=config.prior_warmup_events,
        )

    return make


@dataclass(frozen=True)
class ServingModel:
    """What a service starts serving: ``weights``, the artifact ``directory`` (a store's version) they and the
    envelope were read from (None without a model_dir), its scorer factory and whether it scores with an envelope."""

    weights: ModelWeights
    directory: Path | None
    make_detector: DetectorFactory
    with_envelope: bool


def serving_model(
    weights: ModelWeights,
    config: ServiceConfig,
    metrics: ServiceMetrics,
    *,
    attempts: int = START_ATTEMPTS,
    retry_seconds: float = START_RETRY_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> ServingModel:
    """The model to start with: ``weights`` (as the caller loaded them from ``model_dir``) with the envelope of the
    same version; when ``model_dir`` moved on since they were loaded, the version it names now, loaded again.

    Each retry is logged and counted; after ``attempts`` loads that kept finding a changed directory (or a new
    version that cannot be loaded, e.g. a plain directory still being written) the last reason is raised as
    ``ArtifactMovedError``, a ``ServiceError``."""
    from rnncore.model.artifact import load_artifact
    from rnncore.model.bidirectional import ensure_causal

    problem: Exception | None = None  # why the last attempt did not start
    for attempt in range(1, attempts + 1):
        directory = artifact_dir(config)  # resolved once per attempt: weights and envelope are read there
        if problem is not None:
            metrics.model_reloads.labels(result="start_retried").inc()
            logger.warning(
                "model_dir %s changed while the service loaded its model (%s): loading it again, attempt %d of %d",
                config.model_dir,
                problem,
                attempt,
                attempts,
            )
            sleep(retry_seconds)
            try:
                weights = load_artifact(str(directory or config.model_dir))
                ensure_causal(weights.config, f"rnnwatch serve (model_dir {config.model_dir})")
            except ArtifactError as error:  # a version not whole yet (a plain directory being copied), or refused
                problem = error
                continue
        try:
            factory = detector_factory(weights, config, directory=directory)
        except ArtifactMovedError as error:
            problem = error
            continue
        return ServingModel(weights, directory, factory, envelope_in_artifact(config, directory))
    raise ArtifactMovedError(
        f"{config.model_dir} kept changing while the service loaded its model ({attempts} attempts, last: "
        f"{problem}); start again once it is written"
    )
