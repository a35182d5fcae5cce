"""Truncated-BPTT batches across many streams: lanes of consecutive windows, hidden state carried between them.

Policy (documented choice): each stream's training range is cut into *segments* of ``segment_length`` steps.
A segment is fed as consecutive ``bptt``-step windows in one batch lane, the hidden state carried from
window to window (gradients stop at window edges). The first segment of a stream starts from the zero state
at the stream's first event, exactly like a new row online. Later segments start from the zero state
``warmup`` steps earlier and mask the loss over that warm-up prefix, so the state they learn from resembles
a long-running row. Segments are shuffled (seeded) and packed into ``batch_size`` lanes, balancing lane
lengths; a lane that runs out is padded with loss mask 0.

No torch here: batches are numpy arrays; the trainer turns them into tensors.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from rnncore.errors import TrainingError


@dataclass(frozen=True)
class Segment:
    """Steps [start, end) of stream ``stream`` carry loss; feeding starts at ``feed_start`` (warm-up before)."""

    stream: int
    feed_start: int
    start: int
    end: int

    def n_windows(self, bptt: int) -> int:
        """Number of ``bptt``-step windows needed to feed this segment including its warm-up."""
        return -(-(self.end - self.feed_start) // bptt)


@dataclass(frozen=True)
class Batch:
    """One training step: inputs [B, L, I], targets [B, L, F], loss mask [B, L], lanes to reset to zero [B]."""

    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray
    reset: np.ndarray

    @property
    def fed_steps(self) -> int:
        """Event-steps actually run (loss or warm-up), the unit of training throughput."""
        return int(self.fed.sum())

    @property
    def fed(self) -> np.ndarray:
        """[B, L] True where a real event (not padding) was fed."""
        return ~np.isnan(self.targets[..., 0])


def make_segments(train_steps: Sequence[int], segment_length: int, warmup: int) -> list[Segment]:
    """Cut every stream's first ``train_steps[i]`` steps into segments (warm-up before all but the first)."""
    if segment_length < 1 or warmup < 0:
        raise TrainingError(f"segment_length must be >= 1 and warmup >= 0, got {segment_length}, {warmup}")
    segments = []
    for stream, n in enumerate(train_steps):
        for start in range(0, n, segment_length):
            end = min(start + segment_length, n)
            segments.append(Segment(stream, max(0, start - warmup), start, end))
    return segments


def assign_lanes(
    segments: Sequence[Segment], batch_size: int, bptt: int, rng: np.random.Generator
) -> list[list[Segment]]:
    """Shuffle segments and give each to the currently shortest lane (ties: lowest lane), seeded."""
    if batch_size < 1 or bptt < 1:
        raise TrainingError(f"batch_size and bptt must be >= 1, got {batch_size}, {bptt}")
    lanes: list[list[Segment]] = [[] for _ in range(min(batch_size, max(1, len(segments))))]
    lengths = np.zeros(len(lanes), dtype=np.int64)
    for index in rng.permutation(len(segments)):
        lane = int(np.argmin(lengths))
        lanes[lane].append(segments[index])
        lengths[lane] += segments[index].n_windows(bptt)
    return lanes


def iterate_batches(
    inputs: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    lanes: Sequence[Sequence[Segment]],
    bptt: int,
) -> Iterator[Batch]:
    """Yield the lanes' windows in lock-step; ``inputs[s]`` [T, I] and ``targets[s]`` [T, F] per stream.

    Padding steps have NaN targets and mask 0; a lane's ``reset`` is set on the first window of a segment.
    """
    B = len(lanes)
    I, F = inputs[0].shape[1], targets[0].shape[1]
    plans = [[(seg, w) for seg in lane for w in range(seg.n_windows(bptt))] for lane in lanes]
    n_batches = max((len(p) for p in plans), default=0)
    for j in range(n_batches):
        x = np.zeros((B, bptt, I), dtype=np.float32)
        y = np.full((B, bptt, F), np.nan, dtype=np.float32)
        mask = np.zeros((B, bptt), dtype=np.float32)
        reset = np.zeros(B, dtype=bool)
        for b, plan in enumerate(plans):
            if j >= len(plan):
                reset[b] = True
                continue
            seg, w = plan[j]
            reset[b] = w == 0
            lo = seg.feed_start + w * bptt
            hi = min(lo + bptt, seg.end)
            n = hi - lo
            x[b, :n] = inputs[seg.stream][lo:hi]
            y[b, :n] = targets[seg.stream][lo:hi]
            mask[b, max(seg.start - lo, 0) : n] = 1.0
        yield Batch(inputs=x, targets=y, mask=mask, reset=reset)


def count_batches(lanes: Sequence[Sequence[Segment]], bptt: int) -> int:
    """Number of batches ``iterate_batches`` will yield for these lanes."""
    return max((sum(seg.n_windows(bptt) for seg in lane) for lane in lanes), default=0)
