"""Scoring a set of query images against the training set: exact pixel top-k, then transform-robust re-rank.

The training index has one entry per training image and, with flips, one more per mirrored image, interleaved
(entry ``2 j`` is image ``j``, entry ``2 j + 1`` its mirror), so ties go to the unflipped image.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from synthgate.audit.features import check_finite, hflip, pearson_features
from synthgate.audit.robust import Warp, align, shift_descriptors, transform_name, warp_views
from synthgate.audit.search import Backend, DbBlock, search_topk
from synthgate.data.imageset import ImageSet

logger = logging.getLogger(__name__)

#: The robust re-rank replaces the exact pixel match only when it gains more than this (float32 FFT noise).
ROBUST_MIN_GAIN = 1e-3


@dataclass(frozen=True)
class TrainIndex:
    """The training set as a streamed search database."""

    train: ImageSet
    channels: tuple[int, ...]
    label_channel: int | None
    flips: bool
    block_size: int
    groups: np.ndarray  # subject code of each training image
    set_name: str = "--train"

    @property
    def per_image(self) -> int:
        return 2 if self.flips else 1

    def _blocks(self, make: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]) -> Iterator[DbBlock]:
        m = self.per_image
        for start, block in self.train.iter_blocks(self.block_size):
            check_finite(block, self.train.ids, start, self.set_name)
            versions = [block, hflip(block)] if self.flips else [block]
            made = [make(b) for b in versions]
            vec = np.stack([v for v, _ in made], axis=1).reshape(len(block) * m, -1)
            valid = np.stack([ok for _, ok in made], axis=1).reshape(-1)
            groups = np.repeat(self.groups[start : start + len(block)], m)
            yield DbBlock(start * m, vec, valid, groups)

    def pixel_db(self) -> Iterator[DbBlock]:
        """Pearson feature vectors of the training images (and mirrors)."""

        def make(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            f = pearson_features(b, self.channels, self.label_channel)
            return f.vectors, f.valid

        return self._blocks(make)

    def descriptor_db(self) -> Iterator[DbBlock]:
        """Shift-invariant descriptors of the training images (and mirrors)."""

        def make(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return shift_descriptors(b, self.channels, self.label_channel), valid_images(b, self.channels,
                                                                                       self.label_channel)

        return self._blocks(make)

    def read_entries(self, entries: np.ndarray) -> np.ndarray:
        """Training images of index entries (mirrored where the entry is a mirror)."""
        rows = entries // self.per_image
        imgs = self.train.read_rows(rows)
        flip = (entries % self.per_image) == 1
        imgs[flip] = imgs[flip][..., ::-1]
        return imgs


def valid_images(block: np.ndarray, channels: tuple[int, ...], label_channel: int | None) -> np.ndarray:
    """False for zero-variance images (see :mod:`synthgate.audit.features`)."""
    return pearson_features(block, channels, label_channel).valid


@dataclass(frozen=True)
class MatchSettings:
    """What :func:`score_queries` searches."""

    k: int
    backend: Backend
    device: str
    warps: tuple[Warp, ...]  # empty: no geometric search
    max_shift: int  # pixels
    query_block: int


@dataclass(frozen=True)
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
    n_fallback: int

    @property
    def transforms(self) -> list[str]:
        return [
            "zero-variance" if not v else transform_name(bool(f), float(a), float(s), int(y), int(x))
            for v, f, a, s, y, x in zip(self.valid, self.flip, self.angle_deg, self.scale, self.shift_y,
                                        self.shift_x, strict=True)
        ]


def score_queries(
    queries: ImageSet,
    index: TrainIndex,
    settings: MatchSettings,
    set_name: str,
    rows: np.ndarray | None = None,
    query_groups: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SetScores:
    """Score the images ``rows`` of ``queries`` (all by default) against ``index``.

    With ``query_groups`` a query is never matched to a training image of its own group (subject).
    """
    rows = np.arange(len(queries)) if rows is None else np.asarray(rows, dtype=np.int64)
    n, k, m = len(rows), settings.k, index.per_image
    out = {
        "valid": np.zeros(n, bool), "score": np.full(n, np.nan), "train_row": np.full(n, -1),
        "flip": np.zeros(n, bool), "angle_deg": np.zeros(n), "scale": np.ones(n),
        "shift_y": np.zeros(n, np.int64), "shift_x": np.zeros(n, np.int64), "pixel_score": np.full(n, np.nan),
        "pixel_row": np.full(n, -1), "topk_scores": np.full((n, k), np.nan), "topk_rows": np.full((n, k), -1),
        "topk_flip": np.zeros((n, k), bool),
    }
    n_fallback = 0
    for a in range(0, n, settings.query_block):
        sel = rows[a : a + settings.query_block]
        block = queries.read_rows(sel)
        check_finite(block, [queries.ids[i] for i in sel], 0, set_name)
        feats = pearson_features(block, index.channels, index.label_channel)
        ok = np.flatnonzero(feats.valid)
        out["valid"][a + ok] = True
        if len(ok) == 0:
            continue
        groups = None if query_groups is None else query_groups[sel[ok]]
        top = search_topk(feats.vectors[ok], index.pixel_db, k, settings.backend, settings.device,
                          query_groups=groups)
        n_fallback += top.n_fallback
        found = top.indices >= 0
        out["topk_scores"][a + ok] = np.where(found, top.scores, np.nan)
        out["topk_rows"][a + ok] = np.where(found, top.indices // m, -1)
        out["topk_flip"][a + ok] = found & (top.indices % m == 1)
        cands = top.indices
        if settings.warps:
            cands = np.concatenate([cands, _descriptor_candidates(block[ok], index, settings, groups)], axis=1)
        for j, qi in enumerate(ok):
            _best_match(out, a + int(qi), block[qi], top.scores[j, 0], top.indices[j, 0], cands[j], index, settings)
        if progress is not None:
            progress(min(n, a + settings.query_block), n)
    return SetScores(n_fallback=n_fallback, **out)


def _descriptor_candidates(images: np.ndarray, index: TrainIndex, settings: MatchSettings,
                           groups: np.ndarray | None) -> np.ndarray:
    """n x k index entries nearest to each image by shift-invariant descriptor, over the image and its
    rotations in the warp grid (the descriptor is invariant to shifts, not to rotations)."""
    views = tuple(w for w in settings.warps if w.scale == 1.0)  # identity first
    desc = np.concatenate([
        shift_descriptors(warp_views(img, views), index.channels, index.label_channel) for img in images
    ])
    n, r, k = len(images), len(views), settings.k
    backend = Backend.TORCH if settings.backend is Backend.BF16 else settings.backend
    top = search_topk(desc, index.descriptor_db, k, backend, settings.device,
                      query_groups=None if groups is None else np.repeat(groups, r))
    scores = top.scores.reshape(n, r * k)
    entries = top.indices.reshape(n, r * k)
    out = np.full((n, k), -1, dtype=np.int64)
    for i in range(n):
        order = np.argsort(-scores[i], kind="stable")
        uniq = list(dict.fromkeys(int(e) for e in entries[i, order] if e >= 0))[:k]
        out[i, : len(uniq)] = uniq
    return out


def _best_match(out: dict[str, np.ndarray], i: int, query: np.ndarray, pixel_score: float, pixel_entry: int,
                cands: np.ndarray, index: TrainIndex, settings: MatchSettings) -> None:
    """Fill row ``i`` of ``out`` from the pixel top-1 and the robust re-rank of ``cands``."""
    m = index.per_image
    if pixel_entry < 0:
        return
    out["pixel_score"][i] = pixel_score
    out["pixel_row"][i] = pixel_entry // m
    out["score"][i] = pixel_score
    out["train_row"][i] = pixel_entry // m
    out["flip"][i] = pixel_entry % m == 1
    if not settings.warps or pixel_score >= 1.0 - ROBUST_MIN_GAIN:
        return  # nothing to gain: an alignment cannot beat the pixel match by more than ROBUST_MIN_GAIN
    entries = cands[cands >= 0]
    if m == 2:
        entries = np.concatenate([entries, entries ^ 1])  # a mirrored match may hide a rotated plain one
    entries = np.unique(entries)
    al = align(query, index.read_entries(entries), index.channels, index.label_channel, settings.warps,
               settings.max_shift)
    if al.candidate[0] >= 0 and al.score[0] > pixel_score + ROBUST_MIN_GAIN:
        e = int(entries[al.candidate[0]])
        out["score"][i] = float(al.score[0])
        out["train_row"][i] = e // m
        out["flip"][i] = e % m == 1
        out["angle_deg"][i] = float(al.angle_deg[0])
        out["scale"][i] = float(al.scale[0])
        out["shift_y"][i] = int(al.shift_y[0])
        out["shift_x"][i] = int(al.shift_x[0])
