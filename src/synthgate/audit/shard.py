"""The training index sharded over torchrun ranks (``audit memorization --shard-index``).

Each rank streams one contiguous row range of the training store and caches only its features, so reading and
featurising the training set, the memory of the index and the candidate GEMM all divide over the ranks. Every
rank then runs the same query blocks:

* **search**: each rank finds the exact top-k of its own rows (its rows are re-scored exactly by the rank that
  owns them), the ranks all-gather these lists, and each merges them by (exact score, then lowest row): the
  global exact top-k, the same as one process's because a pair's exact score does not depend on who computes it;
* **alignment and scores** read candidate features through :meth:`ShardedIndex.rows`, a collective: the owner of
  each row contributes it and an all-reduce (one non-zero term per value, so exact) gives every rank the rows.

The small per-row arrays (validity, subject codes, shift and window descriptors) are gathered whole on every
rank. The results, hence the calibration and the outputs, equal a single process's; alignment work is
replicated, not divided (spreading query blocks, :mod:`synthgate.audit.spread`, divides it but replicates the
index).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from synthgate import distributed
from synthgate.audit.backend import Backend
from synthgate.audit.index import FeatureCache, IndexSettings, build_feature_cache, build_on_every_rank
from synthgate.audit.search import DbBlock, TopK, best_first, search_topk
from synthgate.data.imageset import ImageSet
from synthgate.data.manifest import remember_manifest, set_manifest


def shard_range(n: int, rank: int, world: int) -> tuple[int, int]:
    """Rows ``start .. stop`` of ``rank``: contiguous ranges in rank order, sizes within one of each other."""
    return n * rank // world, n * (rank + 1) // world


@dataclass
class ShardedIndex:
    """This rank's :class:`~synthgate.audit.index.FeatureCache` of its row range, seen as the whole index.

    Attributes:
        local: the features of rows ``offset .. offset + local.n``.
        offset: the first training row this rank owns.
        valid, groups, descriptors, windows: of every training row (gathered; ``windows`` on the device, or
            ``None`` when not built).
    """

    local: FeatureCache
    offset: int
    valid: np.ndarray
    groups: np.ndarray
    descriptors: np.ndarray
    windows: Any = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.local.shape

    @property
    def device(self) -> str:
        return self.local.device

    @property
    def dim(self) -> int:
        return self.local.dim

    @property
    def where(self) -> str:
        return f"{self.local.where} (sharded over {distributed.world_size()} ranks)"

    def __enter__(self) -> ShardedIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.local.close()

    def _blocks(self) -> Iterator[DbBlock]:
        for b in self.local.blocks():  # this rank's rows, numbered as in the training set
            yield DbBlock(self.offset + b.start, b.vectors, b.valid, b.groups, b.norms)

    def _own_stored_rows(self, rows: np.ndarray) -> Any:
        return self.local.stored_rows(np.asarray(rows, np.int64) - self.offset)

    def topk(self, queries: np.ndarray, k: int, backend: Backend, device: str,
             query_groups: np.ndarray | None = None, mirrors: bool = False) -> TopK:
        """The exact top-``k`` over every rank's rows (see the module docstring); every rank returns it."""
        def local() -> tuple[np.ndarray, np.ndarray, int, int]:  # inside gather_checked: a failure stops every rank
            mine = search_topk(queries, self._blocks, k, backend, device, query_groups=query_groups,
                               rows=self._own_stored_rows,
                               mirror_at=self.local.sym_columns if mirrors else None)
            return mine.scores, mine.indices, mine.n_fallback, mine.n_exact

        parts = distributed.gather_checked(local)
        scores = np.concatenate([p[0] for p in parts], axis=1)
        indices = np.concatenate([p[1] for p in parts], axis=1)
        order = best_first(scores, indices)[:, :k]
        return TopK(scores=np.take_along_axis(scores, order, 1), indices=np.take_along_axis(indices, order, 1),
                    n_fallback=sum(p[2] for p in parts), n_exact=sum(p[3] for p in parts))

    def rows(self, rows: np.ndarray) -> Any:
        """Image-order feature vectors of ``rows`` from whichever rank owns each: a collective, every rank calls it
        with the same rows (they all run the same query blocks)."""
        import torch
        import torch.distributed as dist

        rows = np.asarray(rows, np.int64)
        out = torch.zeros((len(rows), self.dim), dtype=torch.float32, device=self.device)
        own = (rows >= self.offset) & (rows < self.offset + self.local.n)

        def fill() -> None:  # a failed read on one rank stops every rank instead of leaving them in the all-reduce
            if own.any():
                sel = torch.from_numpy(np.flatnonzero(own)).to(out.device)
                out[sel] = self.local.rows(rows[own] - self.offset).to(out.device)

        distributed.gather_checked(fill)
        dist.all_reduce(out)  # each value has one non-zero term: the sum is that value, exactly
        return out


def build_sharded_index(
    train: ImageSet,
    channels: tuple[int, ...],
    groups: np.ndarray,
    settings: IndexSettings,
    progress: Callable[[int, int], None] | None = None,
) -> ShardedIndex:
    """Read this rank's row range of ``train`` once into its feature cache; gather the per-row arrays and the
    content digests (so the whole set's manifest is known without another read)."""
    start, stop = shard_range(len(train), distributed.rank(), distributed.world_size())
    part = train.row_range(start, stop)
    local, pieces = build_on_every_rank(
        lambda: build_feature_cache(part, channels, groups[start:stop], settings, progress=progress),
        lambda cache: (cache.valid, cache.descriptors, set_manifest(part).digests,
                       None if cache.windows is None else cache.windows.cpu()),
    )
    remember_manifest(train, [d for p in pieces for d in p[2]])
    descriptors = [p[1] for p in pieces if len(p[0])]
    windows = None
    if settings.windows:
        import torch

        windows = torch.cat([p[3] for p in pieces if p[3] is not None], dim=1).to(settings.device)
        local.windows = None  # its rows are in the gathered copy: not held twice
    return ShardedIndex(
        local=local, offset=start, valid=np.concatenate([p[0] for p in pieces]),
        groups=np.asarray(groups, np.int64),
        descriptors=np.concatenate(descriptors) if descriptors else np.zeros((0, 1), np.float32), windows=windows,
    )
