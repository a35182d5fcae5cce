"""The few streams a picture shows, scored again as `rnnwatch score` scored them, for the forecast band.

`rnnwatch evaluate --plot` and `bench nab --plot` have score's output file, which holds no forecast; a stream's
scores depend on its own events only, so scoring the plotted streams alone through score's loop and defaults
gives the same scores (``tests/stream/evaluation/test_score_plot.py`` holds them equal) and the forecast too.
A module of its own: `rnnwatch score` imports the plot, this imports `rnnwatch score`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from stream.evaluation.score_plot import ScoreRecorder


def rescore(model_dir: Path, logs: Sequence[Path], keys: Sequence[str], threshold: float) -> ScoreRecorder:
    """``keys``' events in ``logs`` scored again as `rnnwatch score` scored them (its loop, its defaults, the
    model's envelope), recorded for the plot."""
    from rnncore.model.artifact import load_artifact
    from rnncore.model.envelope_file import load_envelope
    from rnncore.scorer import build_scorer
    from stream.commands import progress
    from stream.commands.config_flags import flag_for
    from stream.commands.score import score_events
    from stream.data.eventlog import read_event_logs

    wanted = set(keys)
    records, _ = read_event_logs([str(p) for p in logs])
    records = [r for r in records if r.key in wanted]
    scorer = build_scorer(
        load_artifact(model_dir),
        load_envelope(model_dir),
        pipeline=flag_for("scoring_pipeline").default,
        max_streams=max(1, len(wanted)),
        warmup_events=flag_for("warmup_events").default,
    )
    recorder = ScoreRecorder()
    with progress.bar(len(records), "re-scoring for the plot", "event") as shown:
        score_events(records, scorer, threshold, 1024, lambda *row: None, recorder, shown.update)
    return recorder
