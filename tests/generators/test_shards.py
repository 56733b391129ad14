"""The training-image stream: seeded permutations per epoch, split over ranks."""

from __future__ import annotations

import numpy as np
import pytest

from synthgate.generators.shards import EpochStream, step_seed


def test_every_epoch_is_a_new_seeded_permutation() -> None:
    s = EpochStream(7, seed=3)
    epochs = [s.permutation(e).copy() for e in range(3)]
    assert all(sorted(p) == list(range(7)) for p in epochs)
    assert not np.array_equal(epochs[0], epochs[1])
    np.testing.assert_array_equal(EpochStream(7, seed=3).permutation(1), epochs[1])
    assert not np.array_equal(EpochStream(7, seed=4).permutation(0), epochs[0])
    np.testing.assert_array_equal(s.take(5, 6), np.concatenate([epochs[0][5:], epochs[1][:4]]))


@pytest.mark.parametrize("world", [1, 2, 3])
def test_ranks_split_each_global_batch_and_read_every_image_once_per_epoch(world: int) -> None:
    n, per_rank = 12, 2
    s = EpochStream(n, seed=0)
    position, seen = 0, []
    for _ in range(n // (per_rank * world)):  # one epoch of steps
        parts = [s.rank_batch(position, per_rank, r) for r in range(world)]
        np.testing.assert_array_equal(np.concatenate(parts), s.take(position, per_rank * world))
        seen += [int(i) for p in parts for i in p]
        position += per_rank * world
    assert sorted(seen) == list(range(n))


def test_the_stream_does_not_depend_on_the_world_size() -> None:
    """A run trained on 2 ranks and resumed on 1 continues the same stream from its position."""
    s = EpochStream(10, seed=1)
    two = np.concatenate([s.rank_batch(0, 2, 0), s.rank_batch(0, 2, 1)])
    np.testing.assert_array_equal(two, s.rank_batch(0, 4, 0))


def test_step_seeds_differ_by_step_and_rank() -> None:
    seeds = {step_seed(0, step, rank) for step in range(50) for rank in range(4)}
    assert len(seeds) == 200 and all(0 <= x < 2**63 for x in seeds)
    assert step_seed(5, 3, 1) == step_seed(5, 3, 1)


def test_negative_seeds_work() -> None:
    assert sorted(EpochStream(5, seed=-3).permutation(0)) == list(range(5))
    assert step_seed(-3, 0, 0) != step_seed(3, 0, 0)
