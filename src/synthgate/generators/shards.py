"""Which training images each rank reads at each step: epochs of seeded permutations, split over the ranks.

The training images form one stream: epoch ``e`` is a permutation of the ``n`` images seeded by the run seed and
``e``, epochs follow each other. A step consumes the next ``per_rank x world`` images of the stream (the global
batch); rank ``r`` reads the ``r``-th slice of them, so within every epoch each rank reads its own shard and
together the ranks read every image once. A run's place in the stream is one integer (``position``, images
consumed), so a checkpoint written on 2 ranks resumes on 1 and the reverse.
"""

from __future__ import annotations

import numpy as np


class EpochStream:
    """The stream of training-image indices ``0 .. n-1``, one seeded permutation per epoch."""

    def __init__(self, n: int, seed: int):
        if n < 1:
            raise ValueError(f"EpochStream needs n >= 1, got {n}")
        self.n, self.seed = n, seed
        self._epoch, self._perm = -1, np.empty(0, dtype=np.int64)

    def permutation(self, epoch: int) -> np.ndarray:
        """Epoch ``epoch``'s order of the images (the same on every rank and in every process)."""
        if epoch != self._epoch:
            self._epoch = epoch
            self._perm = np.random.default_rng([self.seed % 2**64, epoch]).permutation(self.n)
        return self._perm

    def take(self, position: int, count: int) -> np.ndarray:
        """The ``count`` indices of the stream from ``position`` on (crossing epochs where needed)."""
        out = np.empty(count, dtype=np.int64)
        done = 0
        while done < count:
            epoch, offset = divmod(position + done, self.n)
            chunk = self.permutation(epoch)[offset : offset + count - done]
            out[done : done + len(chunk)] = chunk
            done += len(chunk)
        return out

    def rank_batch(self, position: int, per_rank: int, rank: int) -> np.ndarray:
        """Rank ``rank``'s share of the global batch that starts at ``position``."""
        return self.take(position + rank * per_rank, per_rank)


def step_seed(seed: int, step: int, rank: int) -> int:
    """The seed of every random draw of ``step`` on ``rank`` (noise, timesteps, latents, augmentation).

    A function of the step, not a carried state, so a resumed run (on any number of ranks) draws what an
    uninterrupted one would, and ranks draw differently from each other.
    """
    state = np.random.SeedSequence([seed % 2**64, step, rank]).generate_state(1, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))
