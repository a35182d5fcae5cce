"""Tables of one NAB run: each detector under NAB's protocol and the product at its own default threshold, on
the TUNE / REPORT halves, and per NAB category (where the product loses its points)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from stream.evaluation.nab_scorer import Profile, ProfileResult, score_corpus
from stream.evaluation.nab_split import in_split

SHORT = {"standard": "standard", "reward_low_FP_rate": "low_FP", "reward_low_FN_rate": "low_FN"}


def short(profile: str) -> str:
    """``reward_low_FP_rate`` -> ``low_FP`` (table headers and the RESULT line)."""
    return SHORT.get(profile, profile)


def subset_results(
    scores: Mapping[str, np.ndarray],
    windows: Mapping[str, Sequence[tuple[int, int]]],
    profiles: Sequence[Profile],
    split: str,
    threshold: float | None = None,
) -> dict[str, ProfileResult]:
    """Score the files of ``split`` on their own: NAB's threshold optimised over them (``threshold`` None) or
    the given one."""
    names = in_split(sorted(scores), split)
    return score_corpus({n: scores[n] for n in names}, {n: windows[n] for n in names}, profiles, threshold)


def format_rows(rows: Sequence[tuple[str, str, str, Mapping[str, ProfileResult]]], profiles: Sequence[Profile]) -> str:
    """Aligned table of (split, detector, threshold rule, results): the normalised score per profile, then the
    standard profile's windows detected / missed and false-positive points."""
    header = (
        f"{'split':<8}{'detector':<18}{'threshold':<22}"
        + "".join(f"{short(p.name):>10}" for p in profiles)
        + f"{'detected':>10}{'missed':>8}{'FP rows':>9}"
    )
    lines = [header, "-" * len(header)]
    for split, name, rule, results in rows:
        first = results[profiles[0].name].best
        cells = "".join(f"{results[p.name].normalised:>10.2f}" for p in profiles)
        lines.append(f"{split:<8}{name:<18}{rule:<22}{cells}{first.tp:>10}{first.fn:>8}{first.fp:>9}")
    return "\n".join(lines)


@dataclass(frozen=True)
class CategoryRow:
    """One NAB category under one profile at a fixed threshold: its files, its result, and the raw points it
    loses against the perfect detector (additive over categories at a fixed threshold)."""

    category: str
    files: int
    result: ProfileResult

    @property
    def lost(self) -> float:
        """Raw NAB points below the perfect detector."""
        return self.result.perfect_raw - self.result.best.raw


def category_rows(
    scores: Mapping[str, np.ndarray],
    windows: Mapping[str, Sequence[tuple[int, int]]],
    profile: Profile,
    threshold: float,
) -> list[CategoryRow]:
    """Every category (the folder under ``data/``) scored on its own at ``threshold``, most points lost first."""
    categories = sorted({name.split("/", 1)[0] for name in scores})
    rows = []
    for category in categories:
        names = [n for n in scores if n.split("/", 1)[0] == category]
        result = score_corpus({n: scores[n] for n in names}, {n: windows[n] for n in names}, [profile], threshold)
        rows.append(CategoryRow(category, len(names), result[profile.name]))
    return sorted(rows, key=lambda r: -r.lost)


def format_categories(rows: Sequence[CategoryRow]) -> str:
    """Aligned table of :func:`category_rows` with each category's share of the points lost."""
    total = sum(r.lost for r in rows) or 1.0
    header = (
        f"{'category':<24}{'files':>6}{'windows':>8}{'detected':>9}{'FP rows':>9}{'score':>9}{'lost':>9}{'share':>7}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        b = r.result.best
        lines.append(
            f"{r.category:<24}{r.files:>6}{b.tp + b.fn:>8}{b.tp:>9}{b.fp:>9}{r.result.normalised:>9.1f}"
            f"{r.lost:>9.1f}{100 * r.lost / total:>6.0f}%"
        )
    return "\n".join(lines)
