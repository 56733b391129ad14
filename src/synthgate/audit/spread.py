"""The memorization audit over torchrun ranks: the query blocks spread over the ranks, results gathered.

Every rank builds the whole training index (its feature cache) and scores the query blocks it owns (block ``b``
on rank ``b % world``): the same blocks as one process, each scored whole on one rank against the whole index,
so the gathered :class:`~synthgate.audit.match.SetScores` equal a single process's and so do the calibration and
the outputs. The search and the alignment, the audit's cost, divide over the ranks; reading the training set and
computing its features do not (every rank does them), nor does the memory of the index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import fields
from typing import Any

import numpy as np

from synthgate import distributed
from synthgate.audit.index import FeatureCache, TrainingIndex, build_feature_cache, build_on_every_rank
from synthgate.audit.match import MatchSettings, QueryBlock, SetScores, score_queries
from synthgate.audit.shard import ShardedIndex


def build_replicated_index(*args: Any, **kwargs: Any) -> FeatureCache:
    """:func:`~synthgate.audit.index.build_feature_cache` (same arguments) on every rank, as this mode replicates
    the index, agreeing on failure (:func:`~synthgate.audit.index.build_on_every_rank`). Without a process group it
    is ``build_feature_cache``."""
    return build_on_every_rank(lambda: build_feature_cache(*args, **kwargs), lambda _cache: None)[0]


def score_spread(
    blocks: Iterator[QueryBlock],
    n: int,
    cache: TrainingIndex,
    settings: MatchSettings,
    progress: Callable[[str, int, int], None] | None = None,
) -> SetScores:
    """:func:`~synthgate.audit.match.score_queries` with the query blocks spread over the ranks (every rank
    returns the whole result). Without a process group, or over a sharded index (every rank takes part in every
    block, :mod:`synthgate.audit.shard`), it is ``score_queries``."""
    world, rank = distributed.world_size(), distributed.rank()
    if world == 1 or isinstance(cache, ShardedIndex):
        return score_queries(blocks, n, cache, settings, progress)
    owned: list[np.ndarray] = []

    def mine() -> Iterator[QueryBlock]:
        for b, qb in enumerate(blocks):
            if b % world == rank:
                owned.append(qb.positions)
                yield qb

    def score() -> tuple[np.ndarray, SetScores]:
        part = score_queries(mine(), n, cache, settings, progress)
        return (np.concatenate(owned) if owned else np.zeros(0, np.int64)), part

    out = SetScores.empty(n, settings.k)
    for positions, part in distributed.gather_checked(score):
        for f in fields(SetScores):
            value = getattr(part, f.name)
            if isinstance(value, np.ndarray):
                getattr(out, f.name)[positions] = value[positions]
        out.n_fallback += part.n_fallback
        out.n_exact += part.n_exact
        for step, seconds in part.seconds.items():  # the slowest rank's wall time
            out.seconds[step] = max(out.seconds.get(step, 0.0), seconds)
    return out
