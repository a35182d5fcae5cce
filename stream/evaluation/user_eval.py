"""Run the product path over a user's labelled files: one `rnnwatch train`, one `rnnwatch score`, per-file scores."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from stream.errors import ProductPathError
from stream.evaluation.product_path import train_and_score_logs
from stream.evaluation.user_data import EvalFile, write_logs
from stream.evaluation.user_report import Scored, scored


def score_files(files: Sequence[EvalFile], workdir: Path, train_seconds: float | None = None) -> list[Scored]:
    """Train one model on every file's training rows, score every file's test rows, at the CLI's defaults; a file
    that trains on its own head is scored whole and measured from its first label (:attr:`EvalFile.lead_rows`).

    ``train_seconds`` is `rnnwatch train --train-minutes` (a budget; nothing else is set). The logs, the model
    and the scores stay in ``workdir``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    train_log, test_log = workdir / "train.csv", workdir / "test.csv"
    write_logs(list(files), train_log, test_log)
    run = train_and_score_logs(train_log, test_log, workdir, train_seconds)
    out = []
    for f in files:
        score = run.scores.get(f.key)
        rows = f.lead_rows + f.labels.shape[0]
        if score is None or score.shape[0] != rows:
            got = 0 if score is None else score.shape[0]
            raise ProductPathError(f"{f.path}: rnnwatch score returned {got} scores for {rows} rows")
        out.append(scored(f.key, f.times, f.labels, score[f.lead_rows :], run.threshold))
    return out


def without_reference(artifact: Path, keys: Sequence[str]) -> list[str]:
    """Keys the artifact's frozen envelope has no reference for (too few normal rows for it): those streams are
    scored by the forecast alone, which the user should know when reading their numbers."""
    from rnncore.model.envelope_file import load_envelope

    envelope = load_envelope(artifact)
    return [] if envelope is None else [k for k in keys if k not in envelope.index]
