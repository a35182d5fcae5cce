"""BPTT windows: every training step is scored exactly once, in order, with state carried or reset correctly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnncore.errors import TrainingError
from rnncore.model.config import CellType, ModelConfig
from rnncore.training.module import ForecastRNN
from rnncore.training.windows import assign_lanes, count_batches, iterate_batches, make_segments


def _streams(lengths: list[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    # input = (stream id, step index) so a batch tells exactly which step it holds
    inputs = [np.stack([np.full(n, s), np.arange(n)], axis=1).astype(np.float32) for s, n in enumerate(lengths)]
    targets = [np.arange(n, dtype=np.float32)[:, None] for n in lengths]
    return inputs, targets


def test_segments_cover_each_training_step_once_with_warmup_before_later_ones() -> None:
    segments = make_segments([10, 25], segment_length=8, warmup=3)
    covered = {(s.stream, t) for s in segments for t in range(s.start, s.end)}
    assert covered == {(0, t) for t in range(10)} | {(1, t) for t in range(25)}
    assert sum(s.end - s.start for s in segments) == 35
    for s in segments:
        assert s.feed_start == (0 if s.start == 0 else s.start - 3)


@pytest.mark.parametrize("bptt,batch_size", [(4, 3), (5, 1), (16, 8)], ids=["L4-B3", "L5-B1", "L16-B8"])
def test_batches_score_every_step_once_in_stream_order(bptt: int, batch_size: int) -> None:
    lengths = [30, 7, 19, 50]
    inputs, targets = _streams(lengths)
    segments = make_segments([n - 1 for n in lengths], segment_length=2 * bptt, warmup=3)
    lanes = assign_lanes(segments, batch_size, bptt, np.random.default_rng(1))
    batches = list(iterate_batches(inputs, targets, lanes, bptt))
    assert len(batches) == count_batches(lanes, bptt)
    scored: list[tuple[int, int]] = []
    last_seen: dict[int, tuple[int, int]] = {}
    for batch in batches:
        for b in range(batch.inputs.shape[0]):
            for t in range(bptt):
                if np.isnan(batch.targets[b, t, 0]):
                    assert batch.mask[b, t] == 0
                    continue
                stream, step = int(batch.inputs[b, t, 0]), int(batch.inputs[b, t, 1])
                assert batch.targets[b, t, 0] == step
                if b in last_seen and not (t == 0 and batch.reset[b]):
                    assert (stream, step) == (last_seen[b][0], last_seen[b][1] + 1), "state carry broken"
                last_seen[b] = (stream, step)
                if batch.mask[b, t]:
                    scored.append((stream, step))
    assert sorted(scored) == [(s, t) for s, n in enumerate(lengths) for t in range(n - 1)]


def test_lanes_are_seeded_and_balanced() -> None:
    segments = make_segments([100] * 10, segment_length=20, warmup=0)
    a = assign_lanes(segments, 4, 10, np.random.default_rng(5))
    b = assign_lanes(segments, 4, 10, np.random.default_rng(5))
    assert a == b
    lengths = [sum(s.n_windows(10) for s in lane) for lane in a]
    assert max(lengths) - min(lengths) <= 2


def test_rejects_bad_parameters() -> None:
    with pytest.raises(TrainingError):
        make_segments([10], segment_length=0, warmup=0)
    with pytest.raises(TrainingError):
        assign_lanes([], batch_size=0, bptt=4, rng=np.random.default_rng(0))


@pytest.mark.torch
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_carrying_state_across_windows_equals_one_long_forward(cell: CellType) -> None:
    torch.manual_seed(0)
    module = ForecastRNN(ModelConfig(cell=cell, hidden_size=8, num_layers=2))
    x = torch.randn(2, 40, 1)
    with torch.no_grad():
        whole, _, _ = module(x)
        state, parts = None, []
        for lo in range(0, 40, 16):
            mu, _, state = module(x[:, lo : lo + 16], state)
            parts.append(mu)
    torch.testing.assert_close(torch.cat(parts, dim=1), whole, rtol=0, atol=1e-6)
