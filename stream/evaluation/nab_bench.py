"""`rnnwatch bench nab`: the product path (`rnnwatch train`, then `rnnwatch score`, CLI defaults) and NAB's own
baselines on the Numenta Anomaly Benchmark, scored by NAB's rules.

The product is reported two ways: NAB's protocol (one threshold per profile optimised over the files with the
labels, as every published NAB number is) and at the threshold a user gets (``score >= rnnwatch score``'s
default). Both sweep what `rnnwatch score` writes: the ``rarity`` field (``-log10(1 - score)``, unbounded, so
NAB's sweep can order the alarms whose float32 score is 1; ``score >= 0.99`` exactly when ``rarity >= 2``), on
the chosen split and, for ``--split all``, on each half. A per-category table says where the points are lost.
The last line is ``RESULT nab_standard=... nab_low_fp=... nab_low_fn=...`` (NAB's protocol)
``default_standard=... default_low_fp=... default_low_fn=... seconds=...`` (the default threshold).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rnncore.errors import RnnCoreError
from stream.errors import StreamError
from stream.evaluation.nab_data import NabFile


def run_nab(args: argparse.Namespace) -> int:
    """Run the benchmark on ``args.split``'s files; returns 0, or 2 with a message when the corpus cannot be read."""
    from stream.commands import progress
    from stream.errors import ProductPathError
    from stream.evaluation.nab_data import load_profiles, load_series, load_windows
    from stream.evaluation.nab_product import NabProductRun, train_and_score
    from stream.evaluation.nab_report import category_rows, format_categories, format_rows, short, subset_results
    from stream.evaluation.nab_split import file_split, in_split
    from stream.evaluation.runner import (
        CorpusDetector,
        baseline_detectors,
        evaluate,
        format_table,
        write_final_results,
        write_results,
    )

    start = time.perf_counter()
    split = args.split or "all"
    try:
        every = load_series(args.data)
        chosen = set(in_split([f.name for f in every], split))
        files = [f for f in every if f.name in chosen]
        windows = load_windows(args.data, files)
        profiles = load_profiles(args.data)
    except (RnnCoreError, StreamError) as error:
        print(f"rnnwatch bench nab: {error}", file=sys.stderr)
        return 2
    if not files:
        print(f"rnnwatch bench nab: no file of {args.data} falls in the {split} split", file=sys.stderr)
        return 2
    detectors: dict[str, CorpusDetector] = {} if args.no_baselines else dict(baseline_detectors())
    product: list[NabProductRun] = []
    with tempfile.TemporaryDirectory(prefix="rnnwatch-nab-") as tmp:

        def rnnwatch(corpus: Sequence[NabFile]) -> dict[str, np.ndarray]:
            product.append(train_and_score(corpus, Path(tmp), args.train_seconds))
            return product[-1].rarity

        detectors["rnnwatch"] = rnnwatch  # last: the RESULT line reports it
        runs = []
        # One line per detector on a terminal (rnnwatch's training and scoring bars below it); no time left: the
        # detectors take unequal times.
        stages = progress.bar(len(detectors), f"NAB {split}", "detectors", eta=False)
        try:
            with stages as stage:
                for name, detector in detectors.items():
                    stage.set_postfix_str(f"running {name}")
                    result = evaluate(name, detector, files, windows, profiles)
                    write_results(args.out, result, files, windows)
                    runs.append(result)
                    stage.update()
        except ProductPathError as error:
            print(f"rnnwatch bench nab: the product path failed: {error}", file=sys.stderr)
            return 2
        picture = None
        if getattr(args, "plot", None) is not None:  # recorded while the model and the test log exist
            from stream.evaluation.nab_plot import record_worst

            last = product[-1]
            picture = record_worst(files, windows, last.scores, last.artifact, Path(tmp) / "all.csv", last.threshold,
                                   args.plot_files)  # fmt: skip
    write_final_results(args.out, runs)
    ours, threshold = runs[-1], product[-1].rarity_threshold
    flagged = sum(int(v.sum()) for v in product[-1].flags.values())
    at_rarity = sum(int((v >= threshold).sum()) for v in product[-1].rarity.values())
    n_tune = sum(file_split(f.name) == "tune" for f in files)
    print(
        f"NAB ({split}): {len(files)} files ({n_tune} TUNE, {len(files) - n_tune} REPORT: SHA-1 of the name, even = "
        f"TUNE), {sum(f.values.size for f in files)} rows. rnnwatch = `rnnwatch train` on every file's "
        f"probationary rows, then `rnnwatch score` on all rows, each file one stream, CLI defaults"
        + ("" if args.train_seconds is None else f" (training budget --train-minutes {args.train_seconds / 60:g})")
    )
    for line in (product[-1].train_output + product[-1].score_output).splitlines():
        if line.startswith(("training:", "envelope:", "scored ")):
            print(f"  {line}")
    print("NAB's protocol (one threshold per profile optimised over these files with the labels):")
    print(format_table(runs, profiles))
    print(f"rows flagged by `rnnwatch score` (score >= {product[-1].threshold:g}): {flagged}; rows with rarity >= "
          f"{threshold:.4g}: {at_rarity}")  # fmt: skip
    default = f"default (>= {product[-1].threshold:g})"
    rows = [(split, "rnnwatch", "NAB best (labels)", ours.results)]
    rows.append((split, "rnnwatch", default, subset_results(ours.scores, windows, profiles, split, threshold)))
    float32 = subset_results(product[-1].scores, windows, profiles, split)  # what the sweep got before the rarity
    rows.append((split, "rnnwatch `score`", "NAB best (labels)", float32))
    if split == "all":
        for half in ("tune", "report"):
            for run in runs:
                rows.append((half, run.name, "NAB best (labels)", subset_results(run.scores, windows, profiles, half)))
            rows.append((half, "rnnwatch", default, subset_results(ours.scores, windows, profiles, half, threshold)))
    print("the product at its default threshold beside NAB's protocol" + (", and per half:" if split == "all" else ":"))
    print(format_rows(rows, profiles))
    standard = [p for p in profiles if p.name == "standard"] or list(profiles[:1])
    print(f"rnnwatch per NAB category at the default threshold ({standard[0].name} profile):")
    print(format_categories(category_rows(ours.scores, windows, standard[0], threshold)))
    print(f"results written to {args.out}")
    best, fixed = ours.results, rows[1][3]
    if picture is not None:
        from stream.evaluation.nab_plot import draw

        scores = ", ".join(f"{short(p.name).lower()} {fixed[p.name].normalised:.1f}" for p in profiles)
        title = f"rnnwatch bench nab ({split}), default threshold {threshold:g}: NAB {scores}; worst files"
        print(f"plot: {draw(args.plot, picture, threshold, title)} (the {len(picture.keys)} worst file(s))")
    nab = " ".join(f"nab_{short(p.name).lower()}={best[p.name].normalised:.2f}" for p in profiles)
    at_default = " ".join(f"default_{short(p.name).lower()}={fixed[p.name].normalised:.2f}" for p in profiles)
    print(f"RESULT {nab} {at_default} seconds={time.perf_counter() - start:.1f}")
    return 0
