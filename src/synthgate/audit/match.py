"""Matching one set of query images against the training index: exact pixel top-k, then alignment.

A query block goes through the steps in order: features -> exact pixel search over the feature cache (queries
and their mirrors; entry ``2 j + 1`` is training image ``j`` mirrored, so ties go to the unmirrored image) ->
candidates (pixel top-k, shift-invariant descriptor proposals, mirror partners) -> batched alignment -> the best
match -> the structure and partial scores of the best match, the first pixel candidate and the window proposals
(:mod:`synthgate.audit.windows`). Results are typed arrays in query order (:class:`SetScores`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from synthgate.audit.align import Alignment, align_block
from synthgate.audit.backend import Backend
from synthgate.audit.basis import to_mirror_basis
from synthgate.audit.candidates import descriptor_candidates, descriptor_images, descriptor_sym_size, descriptors
from synthgate.audit.features import check_finite, pearson_features
from synthgate.audit.index import TrainingIndex
from synthgate.audit.plan import ALIGN_WORK_BYTES
from synthgate.audit.refine import refine, warp_candidates
from synthgate.audit.scores import structure_and_partial
from synthgate.audit.transforms import ZERO_VARIANCE, Warp, transform_name, warp_views
from synthgate.audit.windows import WINDOW_CANDIDATES, window_candidates, window_descriptors
from synthgate.data.imageset import ImageSet

logger = logging.getLogger(__name__)

#: Descriptor proposals per query always searched over the whole warp grid (a zoomed or rotated copy can
#: correlate poorly with its source before the warp). Four, not three: a slice zoomed out by 0.91 looks like a
#: slice 10 mm higher, whose neighbours took the first three proposals of a real copy.
PROPOSALS_REFINED = 4
#: The alignment replaces the exact pixel match only when it gains more than this (float32 FFT noise).
ROBUST_MIN_GAIN = 1e-3
#: Work per refinement batch (full-resolution pairs); below glibc's mmap threshold, like every work array.
REFINE_WORK_BYTES = 24 << 20


@dataclass(frozen=True)
class MatchSettings:
    """What :func:`score_queries` searches, and in what block sizes."""

    k: int
    backend: Backend
    device: str
    flips: bool
    warps: tuple[Warp, ...]  # empty: no geometric search
    max_shift: int  # pixels
    query_block: int
    align_block: int
    refine: tuple[bool, bool, bool] = (False, False, False)  # rotation, zoom, shift free in the refinement
    extra_scores: bool = True  # structure and partial scores
    window_candidates: bool = False  # extra scores also for the window proposals (synthgate.audit.windows)

    @property
    def per_image(self) -> int:
        return 2 if self.flips else 1

    @property
    def robust(self) -> bool:
        return bool(self.warps)


@dataclass
class SetScores:
    """Best training match of each query image (arrays of length n, in query order).

    ``valid`` is false for zero-variance queries: their score is NaN, their rows -1.
    """

    valid: np.ndarray
    score: np.ndarray
    train_row: np.ndarray
    flip: np.ndarray
    angle_deg: np.ndarray
    scale: np.ndarray
    shift_y: np.ndarray
    shift_x: np.ndarray
    pixel_score: np.ndarray
    pixel_row: np.ndarray
    topk_scores: np.ndarray  # n x k exact pixel Pearson
    topk_rows: np.ndarray  # n x k training rows
    topk_flip: np.ndarray  # n x k bools
    structure: np.ndarray  # structure score of the best pair (see synthgate.audit.scores); NaN if not computed
    structure_row: np.ndarray
    partial: np.ndarray  # partial score: the best small windows' mean (see synthgate.audit.scores)
    partial_row: np.ndarray
    n_fallback: int = 0
    n_exact: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def empty(cls, n: int, k: int) -> SetScores:
        return cls(
            valid=np.zeros(n, bool), score=np.full(n, np.nan), train_row=np.full(n, -1), flip=np.zeros(n, bool),
            angle_deg=np.zeros(n), scale=np.ones(n), shift_y=np.zeros(n), shift_x=np.zeros(n),
            pixel_score=np.full(n, np.nan), pixel_row=np.full(n, -1), topk_scores=np.full((n, k), np.nan),
            topk_rows=np.full((n, k), -1), topk_flip=np.zeros((n, k), bool), structure=np.full(n, np.nan),
            structure_row=np.full(n, -1), partial=np.full(n, np.nan), partial_row=np.full(n, -1),
        )

    def concat(self, other: SetScores) -> SetScores:
        """These queries' scores followed by ``other``'s (same k): a null pooled from two sets of images."""
        arrays = {f.name: np.concatenate([getattr(self, f.name), getattr(other, f.name)])
                  for f in fields(self) if isinstance(getattr(self, f.name), np.ndarray)}
        seconds = {k: self.seconds.get(k, 0.0) + other.seconds.get(k, 0.0) for k in {*self.seconds, *other.seconds}}
        return replace(self, **arrays, n_fallback=self.n_fallback + other.n_fallback,
                       n_exact=self.n_exact + other.n_exact, seconds=seconds)

    @property
    def transforms(self) -> list[str]:
        return [
            ZERO_VARIANCE if not v else transform_name(bool(f), float(a), float(s), float(y), float(x))
            for v, f, a, s, y, x in zip(self.valid, self.flip, self.angle_deg, self.scale, self.shift_y,
                                        self.shift_x, strict=True)
        ]


@dataclass(frozen=True)
class QueryBlock:
    """Features of a block of query images: positions in the result, n x d float32 vectors, validity."""

    positions: np.ndarray
    vectors: np.ndarray
    valid: np.ndarray
    groups: np.ndarray | None = None


def balanced_block(n: int, block: int) -> int:
    """The block size that splits ``n`` queries into as few blocks as ``block`` allows, of equal size: every block
    is one pass over the feature cache, so a small last block would cost a pass for a few queries."""
    return max(1, -(-n // max(1, -(-n // max(1, block)))))


def image_queries(images: ImageSet, channels: tuple[int, ...], block: int, set_name: str) -> Iterator[QueryBlock]:
    """Query blocks of a set of images, read once block by block."""
    for start, raw in images.iter_blocks(balanced_block(len(images), block)):
        check_finite(raw, images.ids, start, set_name)
        f = pearson_features(raw, channels, images.label_channel)
        yield QueryBlock(np.arange(start, start + len(raw)), f.vectors, f.valid)


def cached_queries(cache: TrainingIndex, rows: np.ndarray, block: int) -> Iterator[QueryBlock]:
    """Query blocks of training images (the subject-disjoint null), from the feature cache: no second read."""
    block = balanced_block(len(rows), block)
    for a in range(0, len(rows), block):
        sel = rows[a : a + block]
        vec = cache.rows(sel).float().cpu().numpy()
        yield QueryBlock(np.arange(a, a + len(sel)), vec, cache.valid[sel], cache.groups[sel])


def score_queries(
    blocks: Iterator[QueryBlock], n: int, cache: TrainingIndex, settings: MatchSettings,
    progress: Callable[[str, int, int], None] | None = None,
) -> SetScores:
    """Best training match of ``n`` queries given as feature blocks (:func:`image_queries`,
    :func:`cached_queries`). With query groups a query never gets a training image of its own group."""
    import time

    out = SetScores.empty(n, settings.k)
    timing = {"search": 0.0, "align": 0.0, "scores": 0.0}
    done = 0
    for qb in blocks:
        ok = np.flatnonzero(qb.valid)
        out.valid[qb.positions[ok]] = True
        t0 = time.perf_counter()
        if len(ok):
            groups = None if qb.groups is None else qb.groups[ok]
            entries, scores = _pixel_topk(qb.vectors[ok], groups, cache, settings, out)
            pos = qb.positions[ok]
            found = entries >= 0
            m = settings.per_image
            out.topk_scores[pos] = np.where(found, scores, np.nan)
            out.topk_rows[pos] = np.where(found, entries // m, -1)
            out.topk_flip[pos] = found & (entries % m == 1)
            top1 = entries[:, 0]
            has = top1 >= 0
            out.pixel_score[pos[has]] = scores[has, 0]
            out.pixel_row[pos[has]] = top1[has] // m
            out.score[pos[has]] = scores[has, 0]
            out.train_row[pos[has]] = top1[has] // m
            out.flip[pos[has]] = top1[has] % m == 1
            t1 = time.perf_counter()
            timing["search"] += t1 - t0
            if settings.robust:
                _align(qb.vectors[ok], groups, pos, entries, scores, cache, settings, out)
            t2 = time.perf_counter()
            timing["align"] += t2 - t1
            if settings.extra_scores:
                extra = entries[:, :EXTRA_PIXEL_CANDIDATES]
                if settings.window_candidates and cache.windows is not None:
                    extra = np.concatenate([extra, _window_proposals(qb.vectors[ok], groups, cache, settings)], axis=1)
                _extra_scores(qb.vectors[ok], pos, extra, cache, settings, out)
            timing["scores"] += time.perf_counter() - t2
        done += len(qb.positions)
        if progress is not None:
            progress("align" if settings.robust else "search", done, n)
    out.seconds = timing
    return out


def _pixel_topk(vectors: np.ndarray, groups: np.ndarray | None, cache: TrainingIndex, settings: MatchSettings,
                out: SetScores) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k index entries (and scores) of each query over training images and their mirrors."""
    q = to_mirror_basis(vectors, cache.shape).numpy()  # the basis of the index: one GEMM scores both mirrors
    top = cache.topk(q, settings.k, settings.backend, settings.device, groups, mirrors=settings.flips)
    out.n_fallback += top.n_fallback
    out.n_exact += top.n_exact
    return top.indices, top.scores  # entries: 2 j (+1 mirrored) with flips, j without


def _align(vectors: np.ndarray, groups: np.ndarray | None, pos: np.ndarray, entries: np.ndarray,
           scores: np.ndarray, cache: TrainingIndex, settings: MatchSettings, out: SetScores) -> None:
    """Re-rank each query's candidates by alignment (grid, then refinement); keep it where it beats the pixel
    match. Two starting points per query are refined: the grid's winner and, where it is another pair, the best
    candidate at the identity warp (:func:`~synthgate.audit.align.align_block`); the better refined pair wins.

    The grid runs in alignment blocks; the refinement of every aligned query of the query block then runs in
    larger batches (its work at ~48 px is small, and its cost is per step, not per pair).
    """
    import torch

    m = settings.per_image
    shape = cache.shape
    # an alignment cannot beat a pixel score within ROBUST_MIN_GAIN of 1 (an exact copy): such queries are
    # neither proposed for nor aligned
    aligned = ~(scores[:, 0] >= 1.0 - ROBUST_MIN_GAIN) & (entries[:, 0] >= 0)
    proposals = np.full((len(vectors), settings.k), -1, np.int64)
    if aligned.any():
        proposals[aligned] = _proposals(vectors[aligned], None if groups is None else groups[aligned], cache, settings)
    found: list[tuple[np.ndarray, Alignment]] = []  # (rows of ``vectors``, their grid alignment)
    for a in range(0, len(vectors), settings.align_block):
        sl = slice(a, a + settings.align_block)
        todo = aligned[sl]
        if not todo.any():
            continue
        imgs = torch.from_numpy(np.ascontiguousarray(vectors[sl])).to(cache.device).reshape(-1, *shape)
        ent = entries[sl]
        props = proposals[sl]
        cands = [ent, props]
        if m == 2:
            cands.append(np.where(ent >= 0, ent ^ 1, -1))  # a mirrored match may hide a rotated plain one
        merged = _unique_rows(np.concatenate(cands, axis=1))
        always = np.array([np.isin(row, p[:PROPOSALS_REFINED]) & (row >= 0) for row, p in zip(merged, props,
                                                                                            strict=True)])
        both = align_block(imgs, todo, merged, lambda e: _read_entries(cache, e, m), settings.warps,
                           settings.max_shift, always=always, identity_starts=True)
        query = np.tile(np.arange(len(merged)), 2)  # rows n .. 2n - 1 are the same queries' second starts
        have = np.flatnonzero(todo[query] & (both.entry >= 0))
        if len(have):
            found.append((a + query[have], both.subset(have)))
    if not found:
        return
    rows = np.concatenate([r for r, _ in found])  # a query may have two starting points: the better refined one wins
    al = Alignment.concat([x for _, x in found])
    best = scores[:, 0] + ROBUST_MIN_GAIN
    per_pair = 4 * int(np.prod(shape)) * 8  # full-resolution float32 images of a pair and their float64 score
    batch = max(1, REFINE_WORK_BYTES // per_pair)
    for b in range(0, len(rows), batch):
        r, part = rows[b : b + batch], al.subset(np.arange(b, min(b + batch, len(rows))))
        imgs = torch.from_numpy(np.ascontiguousarray(vectors[r])).to(cache.device).reshape(-1, *shape)
        cand = _read_entries(cache, part.entry, m)
        ref = refine(imgs, cand, part.angle_deg, part.scale, part.shift_y, part.shift_x, free=settings.refine)
        for j in range(len(r)):
            if not ref.score[j] > best[r[j]]:
                continue
            best[r[j]] = ref.score[j]
            i = pos[r[j]]
            out.score[i] = ref.score[j]
            out.train_row[i] = part.entry[j] // m
            out.flip[i] = part.entry[j] % m == 1
            out.angle_deg[i] = ref.angle_deg[j]
            out.scale[i] = ref.scale[j]
            out.shift_y[i] = ref.shift_y[j]
            out.shift_x[i] = ref.shift_x[j]


#: Pixel candidates per query also scored by the structure and partial scores (at identity).
EXTRA_PIXEL_CANDIDATES = 1


def _extra_scores(vectors: np.ndarray, pos: np.ndarray, entries: np.ndarray, cache: TrainingIndex,
                  settings: MatchSettings, out: SetScores) -> None:
    """Structure and partial scores of each query's best aligned match and of its ``entries`` (n x c index
    entries scored as they are: the first pixel candidates, and the window candidates)."""
    import torch

    m, shape = settings.per_image, cache.shape
    for a in range(0, len(vectors), settings.align_block):
        sl = slice(a, a + settings.align_block)
        p = pos[sl]
        imgs = torch.from_numpy(np.ascontiguousarray(vectors[sl])).to(cache.device).reshape(-1, *shape)
        # pairs: the best match (moved by its transform) and the other candidates (as they are); a best match
        # that is not moved and is one of those candidates is the same pair, scored once
        best_entry = np.where(out.train_row[p] >= 0, out.train_row[p] * m + (out.flip[p] if m == 2 else 0), -1)
        as_is = _unique_rows(entries[sl])  # a window candidate may also be a pixel candidate
        unmoved = (out.angle_deg[p] == 0) & (out.scale[p] == 1) & (out.shift_y[p] == 0) & (out.shift_x[p] == 0)
        best_entry = np.where(unmoved & (as_is == best_entry[:, None]).any(axis=1), -1, best_entry)
        pairs = np.concatenate([best_entry[:, None], as_is], axis=1)
        qi, col = np.nonzero(pairs >= 0)
        if not len(qi):
            continue
        ent = pairs[qi, col]
        moved = _read_entries(cache, ent, m)
        first = col == 0
        if first.any():
            f = np.flatnonzero(first)
            ft = torch.from_numpy(f).to(moved.device)
            moved[ft] = warp_candidates(moved[ft], *(torch.tensor(np.asarray(v, np.float32), device=moved.device)
                                                      for v in (out.angle_deg[p[qi[f]]], np.log(out.scale[p[qi[f]]]),
                                                                out.shift_y[p[qi[f]]], out.shift_x[p[qi[f]]])))
        st, pa = structure_and_partial(imgs, moved, torch.from_numpy(qi).to(imgs.device))
        for values, score_field, row_field in ((st, out.structure, out.structure_row),
                                               (pa, out.partial, out.partial_row)):
            for j in range(len(qi)):
                i = p[qi[j]]
                if not np.isfinite(score_field[i]) or values[j] > score_field[i]:
                    score_field[i] = values[j]
                    row_field[i] = ent[j] // m


#: Most queries whose descriptor views are searched together: the product reads the training descriptors once per
#: chunk (it is memory-bound for a few queries); the chunk's score array also stays below ALIGN_WORK_BYTES.
PROPOSAL_QUERIES = 32


def _proposals(vectors: np.ndarray, groups: np.ndarray | None, cache: TrainingIndex,
               settings: MatchSettings) -> np.ndarray:
    """Descriptor candidates of every query (n x C*H*W features) over its views warped back by every rotation and
    zoom, and over their mirrors (a sign in the descriptor's basis).

    The views are warped at the descriptor's resolution (the images are pooled first, then warped): the descriptor
    keeps only the lowest frequencies, which a warp of the pooled image reproduces, at a sixteenth of the work at
    128 px, so the proposals of many queries are made together.
    """
    import torch

    out = []
    per_query = 4 * 2 * len(settings.warps) * max(1, len(cache.valid))  # its float32 scores, mirrors included
    chunk = max(1, min(PROPOSAL_QUERIES, ALIGN_WORK_BYTES // per_query))
    for a in range(0, len(vectors), chunk):
        sl = slice(a, a + chunk)
        imgs = torch.from_numpy(np.ascontiguousarray(vectors[sl])).to(cache.device).reshape(-1, *cache.shape)
        views = warp_views(descriptor_images(imgs), settings.warps)  # the descriptor is invariant to shifts only
        c, h, w = (int(x) for x in views.shape[-3:])
        d = descriptors(views.reshape(-1, c, h, w), (c, h, w))
        out.append(descriptor_candidates(d, cache.descriptors, cache.valid, settings.k, settings.per_image,
                                         len(settings.warps),
                                         descriptor_sym_size(cache.shape) if settings.flips else None,
                                         cache.groups, None if groups is None else groups[sl], settings.device))
    return np.concatenate(out) if out else np.zeros((0, settings.k), np.int64)


def _window_proposals(vectors: np.ndarray, groups: np.ndarray | None, cache: TrainingIndex,
                      settings: MatchSettings) -> np.ndarray:
    """n x :data:`~synthgate.audit.windows.WINDOW_CANDIDATES` entries whose windows best match each query's (and,
    with mirrors, its mirror's), over the whole training set."""
    import torch

    db = cache.windows
    imgs = torch.from_numpy(np.ascontiguousarray(vectors)).to(db.device).reshape(-1, *cache.shape)
    pooled = descriptor_images(imgs)
    mirrors = window_descriptors(pooled, mirrored=True, dtype=db.dtype) if settings.flips else None
    return window_candidates(window_descriptors(pooled, dtype=db.dtype), mirrors, db, cache.valid,
                             WINDOW_CANDIDATES, settings.per_image, cache.groups, groups)


def _unique_rows(entries: np.ndarray) -> np.ndarray:
    """Each row's distinct entries first (order kept), -1 after."""
    out = np.full_like(entries, -1)
    for i, row in enumerate(entries):
        u = list(dict.fromkeys(int(e) for e in row if e >= 0))
        out[i, : len(u)] = u
    return out


def _read_entries(cache: TrainingIndex, entries: np.ndarray, per_image: int) -> Any:
    import torch

    x = cache.rows(entries // per_image).reshape(-1, *cache.shape)
    flip = torch.from_numpy(entries % per_image == 1).to(x.device)
    if bool(flip.any()):
        x[flip] = torch.flip(x[flip], dims=(-1,))
    return x
